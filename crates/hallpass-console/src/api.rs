//! The JSON API of CONTRACT.md ("Console HTTP API"). The pages' forms post to the same
//! state-changing routes: a form post is answered with a redirect back to the message (303) and a
//! one-time message on that page; anything else with JSON.

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Redirect, Response};
use hallpass_store::{AuditFilter, HeldFilter, HeldStatus};
use serde::Deserialize;

use crate::App;
use crate::actions::Released;
use crate::auth::{ApiAccess, Caller, Posted};
use crate::clock;
use crate::error::{ApiError, Failure, PageError};
use crate::input::{RejectInput, ReleaseInput};
use crate::session::Flash;
use crate::wire::{AuditJson, HeldJson, HeldViewJson, ReleasedJson};

/// The most entries one request lists.
const MAX_LIMIT: u32 = 10_000;
/// Entries listed when the request does not say.
const DEFAULT_LIMIT: u32 = 1_000;

/// `?rule=&sender=&since=` and the console's further filters.
#[derive(Debug, Clone, Default, Deserialize)]
pub(crate) struct HeldQuery {
    /// Rule id.
    pub rule: Option<String>,
    /// Envelope sender.
    pub sender: Option<String>,
    /// `2026-11-23` or an RFC 3339 time.
    pub since: Option<String>,
    /// Detector id.
    pub detector: Option<String>,
    /// `held` (default), `released`, `rejected` or `all`.
    pub status: Option<String>,
    /// At most this many.
    pub limit: Option<String>,
    /// Skip this many.
    pub offset: Option<String>,
    /// Page number (the pages).
    pub page: Option<String>,
}

/// `?actor=&action=&target=&since=`.
#[derive(Debug, Clone, Default, Deserialize)]
pub(crate) struct AuditQuery {
    /// Who.
    pub actor: Option<String>,
    /// What (`release`, `reject`, `login`…).
    pub action: Option<String>,
    /// Which message or user.
    pub target: Option<String>,
    /// `2026-11-23` or an RFC 3339 time.
    pub since: Option<String>,
    /// At most this many.
    pub limit: Option<String>,
    /// Skip this many.
    pub offset: Option<String>,
    /// Page number (the pages).
    pub page: Option<String>,
}

/// A filter value: `None` when absent or blank.
pub(crate) fn given(v: &Option<String>) -> Option<String> {
    v.as_deref()
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .map(str::to_string)
}

fn number(name: &str, v: &Option<String>, default: u32, max: u32) -> Result<u32, Failure> {
    match given(v) {
        None => Ok(default),
        Some(s) => s
            .parse::<u32>()
            .ok()
            .filter(|n| *n <= max)
            .ok_or_else(|| Failure::BadRequest(format!("{name}: a whole number up to {max}"))),
    }
}

fn since(v: &Option<String>) -> Result<Option<i64>, Failure> {
    given(v)
        .map(|s| {
            clock::parse_since(&s).ok_or_else(|| {
                Failure::BadRequest(
                    "since: use a day (2026-11-23) or an RFC 3339 time (2026-11-23T09:14:02Z)"
                        .into(),
                )
            })
        })
        .transpose()
}

impl HeldQuery {
    /// The store filter (limit and offset from the query, or the defaults).
    pub fn filter(&self) -> Result<HeldFilter, Failure> {
        let status = match given(&self.status).as_deref() {
            None => Some(HeldStatus::Held),
            Some("all") => None,
            Some(s) => Some(s.parse::<HeldStatus>().map_err(|_| {
                Failure::BadRequest("status: held, released, rejected or all".into())
            })?),
        };
        Ok(HeldFilter {
            status,
            rule: given(&self.rule),
            sender: given(&self.sender),
            since_ms: since(&self.since)?,
            detector: given(&self.detector),
            limit: number("limit", &self.limit, DEFAULT_LIMIT, MAX_LIMIT)?,
            offset: number("offset", &self.offset, 0, u32::MAX)?,
        })
    }
}

impl AuditQuery {
    /// The store filter (limit and offset from the query, or the defaults).
    pub fn filter(&self) -> Result<AuditFilter, Failure> {
        Ok(AuditFilter {
            actor: given(&self.actor),
            action: given(&self.action),
            target: given(&self.target),
            since_ms: since(&self.since)?,
            limit: number("limit", &self.limit, DEFAULT_LIMIT, MAX_LIMIT)?,
            offset: number("offset", &self.offset, 0, u32::MAX)?,
        })
    }
}

/// A malformed query string, as a 400.
pub(crate) fn bad_query(e: &QueryRejection) -> Failure {
    Failure::BadRequest(format!("query string: {}", e.body_text()))
}

/// `GET /api/held`: held messages, newest first.
pub(crate) async fn held_list(
    State(app): State<App>,
    _: ApiAccess,
    query: Result<Query<HeldQuery>, QueryRejection>,
) -> Result<Json<Vec<HeldJson>>, ApiError> {
    let Query(q) = query.map_err(|e| bad_query(&e))?;
    let list = app.held_list(&q.filter()?).await?;
    Ok(Json(list.iter().map(HeldJson::from).collect()))
}

/// `GET /api/held/{id}`: one message in full.
pub(crate) async fn held_get(
    State(app): State<App>,
    _: ApiAccess,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let h = app.held(&id).await?;
    let inspected = app.inspect(&h).await;
    let mut view = HeldViewJson::new(&h, &inspected);
    view.detail.reason = app.masked_reason(view.detail.reason.take()).await;
    Ok(Json(view).into_response())
}

/// `POST /api/held/{id}/release` (`{"rewrite":"bcc"}` optional).
pub(crate) async fn release(
    State(app): State<App>,
    Path(id): Path<String>,
    posted: Posted<ReleaseInput>,
) -> Response {
    let result = match posted.input.bcc() {
        Ok(bcc) => app.release(&posted.caller, &id, bcc, false).await,
        Err(e) => Err(e),
    };
    released(&app, &posted, &id, result, false).await
}

/// `POST /api/held/{id}/false-positive`: release, and record the findings as false positives.
pub(crate) async fn false_positive(
    State(app): State<App>,
    Path(id): Path<String>,
    posted: Posted<ReleaseInput>,
) -> Response {
    let result = match posted.input.bcc() {
        Ok(bcc) => app.release(&posted.caller, &id, bcc, true).await,
        Err(e) => Err(e),
    };
    released(&app, &posted, &id, result, true).await
}

/// `POST /api/held/{id}/reject` (`{"reason":"..."}`).
pub(crate) async fn reject(
    State(app): State<App>,
    Path(id): Path<String>,
    posted: Posted<RejectInput>,
) -> Response {
    let result = match posted.input.reason() {
        Ok(reason) => app.reject(&posted.caller, &id, &reason).await,
        Err(e) => Err(e),
    };
    match result {
        Ok(record) => {
            if posted.form {
                return back(
                    &app,
                    &posted.caller,
                    &id,
                    Ok("Rejected: it will not be delivered.".into()),
                )
                .await;
            }
            Json(app.detail(&record).await).into_response()
        }
        Err(e) => failed(&app, &posted, &id, e).await,
    }
}

async fn released<T>(
    app: &App,
    posted: &Posted<T>,
    id: &str,
    result: Result<Released, Failure>,
    false_positive: bool,
) -> Response {
    match result {
        Ok(Released { record, rewritten }) => {
            if posted.form {
                let mut text = format!(
                    "Released: queued for delivery to {} recipient(s).",
                    record.rcpt.len()
                );
                if rewritten {
                    text.push_str(" Outside addresses were moved from To/Cc to Bcc.");
                }
                if false_positive {
                    text.push_str(" Recorded as a false positive, for tuning.");
                }
                return back(app, &posted.caller, id, Ok(text)).await;
            }
            let message = app.detail(&record).await;
            Json(ReleasedJson { message, rewritten }).into_response()
        }
        Err(e) => failed(app, posted, id, e).await,
    }
}

/// A decision that could not be made: told as JSON, or on the message's page after a form post.
async fn failed<T>(app: &App, posted: &Posted<T>, id: &str, e: Failure) -> Response {
    if !posted.form {
        return ApiError(e).into_response();
    }
    match e {
        Failure::AlreadyDecided { .. } | Failure::BadRequest(_) => {
            let text = e.message();
            back(app, &posted.caller, id, Err(capitalised(&text))).await
        }
        e => PageError(e).into_response(),
    }
}

/// 303 to the message's page, with the outcome shown there once.
async fn back(app: &App, caller: &Caller, id: &str, outcome: Result<String, String>) -> Response {
    if let Some(s) = &caller.session {
        let (error, text) = match outcome {
            Ok(t) => (false, t),
            Err(t) => (true, t),
        };
        app.sessions().set_flash(&s.id, Flash { error, text }).await;
    }
    Redirect::to(&format!("/held/{}", crate::pages::path_segment(id))).into_response()
}

pub(crate) fn capitalised(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(first) => first.to_uppercase().chain(c).collect(),
        None => String::new(),
    }
}

/// `GET /api/audit`: who did what to which message, when; newest first.
pub(crate) async fn audit(
    State(app): State<App>,
    _: ApiAccess,
    query: Result<Query<AuditQuery>, QueryRejection>,
) -> Result<Json<Vec<AuditJson>>, ApiError> {
    let Query(q) = query.map_err(|e| bad_query(&e))?;
    let list = app.console.store.audit_list(&q.filter()?).await?;
    let mut out: Vec<AuditJson> = list.iter().map(AuditJson::from).collect();
    let details = app
        .masked_details(out.iter().map(|a| (a.action.as_str(), a.detail.clone())))
        .await;
    for (a, d) in out.iter_mut().zip(details) {
        a.detail = d;
    }
    Ok(Json(out))
}
