//! The pages a DPO uses: held messages, one message with its decisions, and the audit trail
//! (with a CSV export). Server-rendered (askama escapes every value), no JavaScript, nothing
//! loaded from elsewhere; forms post to the API's routes with the session's CSRF token.

use std::fmt::Write as _;

use askama::Template;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderValue, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use hallpass_core::RuleId;
use hallpass_store::{AuditFilter, HeldFilter, HeldRecord, HeldStatus};

use crate::App;
use crate::api::{AuditQuery, HeldQuery, bad_query, given};
use crate::auth::{Caller, PageCaller};
use crate::clock;
use crate::error::{Failure, PageError};
use crate::inspect::Inspected;
use crate::session::Flash;
use crate::wire::HeldDetailJson;

/// Held messages per page.
const HELD_PER_PAGE: u32 = 50;
/// Audit entries per page.
const AUDIT_PER_PAGE: u32 = 100;
/// The most held copies counted for the per-rule figures.
const COUNT_CAP: u32 = 10_000;
/// The most audit entries in one CSV export.
const CSV_CAP: u32 = 100_000;

/// What every page's header shows.
pub(crate) struct Nav {
    pub organisation: String,
    pub user: String,
    pub role: &'static str,
    /// For the logout form; empty for a bearer-token caller.
    pub csrf: String,
    pub flash: Option<Flash>,
    /// The section of the page shown, marked in the navigation.
    pub current: Section,
}

/// The sections the navigation links to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Section {
    /// `/held` (`exact`: the list itself, not one message).
    Held { exact: bool },
    /// `/dashboard`.
    Dashboard,
    /// `/audit`.
    Audit,
    /// `/users`.
    Users,
}

impl Section {
    /// `aria-current` for the link to `href`: `page` on the page itself, `true` on a page
    /// within its section (one held message), none elsewhere.
    pub fn aria(&self, href: &str) -> &'static str {
        match (self, href) {
            (Section::Held { exact: true }, "/held")
            | (Section::Dashboard, "/dashboard")
            | (Section::Audit, "/audit")
            | (Section::Users, "/users") => "page",
            (Section::Held { exact: false }, "/held") => "true",
            _ => "",
        }
    }
}

impl App {
    pub(crate) async fn nav(&self, caller: &Caller, current: Section) -> Nav {
        let flash = match &caller.session {
            Some(s) => self.sessions().take_flash(&s.id).await,
            None => None,
        };
        Nav {
            organisation: self.console.organisation.clone(),
            user: caller.name.clone(),
            role: caller.role.as_str(),
            csrf: caller.csrf().to_string(),
            flash,
            current,
        }
    }
}

pub(crate) fn html(t: &impl Template) -> Result<Response, PageError> {
    Ok(Html(t.render().map_err(Failure::from)?).into_response())
}

/// An error page.
#[derive(Template)]
#[template(path = "error.html")]
pub(crate) struct ErrorPage {
    pub code: u16,
    pub title: &'static str,
    pub message: String,
}

/// `GET /`.
pub(crate) async fn home() -> Redirect {
    Redirect::to("/held")
}

/// A row of the held list.
pub(crate) struct HeldRow {
    pub href: String,
    pub when: String,
    pub from: String,
    pub rcpt_count: usize,
    pub rules: String,
    pub detectors: Vec<Count>,
    pub status: &'static str,
}

/// A name and a number (a rule's held copies, a detector's hits).
pub(crate) struct Count {
    /// The rule or detector id (filters and links use it).
    pub name: String,
    /// What the page shows: a detector's plain name, a rule's id.
    pub label: String,
    pub count: u64,
    pub href: String,
    pub selected: bool,
}

/// A choice in a `<select>`.
pub(crate) struct Choice {
    pub value: &'static str,
    pub selected: bool,
}

/// The held list's filters, as given.
#[derive(Default)]
pub(crate) struct HeldForm {
    pub rule: String,
    pub detector: String,
    pub sender: String,
    pub since: String,
    pub status: String,
}

#[derive(Template)]
#[template(path = "held_list.html")]
pub(crate) struct HeldListPage {
    pub nav: Nav,
    pub form: HeldForm,
    pub statuses: Vec<Choice>,
    pub rule_counts: Vec<Count>,
    pub counts_capped: bool,
    pub rows: Vec<HeldRow>,
    pub page: u32,
    pub prev: Option<String>,
    pub next: Option<String>,
    pub waiting: u64,
    pub queued: u64,
    pub false_positives: Vec<Count>,
}

/// `GET /held`: the quarantine, newest first, with filters, counts per rule and pages.
pub(crate) async fn held_list(
    State(app): State<App>,
    PageCaller(caller): PageCaller,
    query: Result<Query<HeldQuery>, QueryRejection>,
) -> Result<Response, PageError> {
    let Query(q) = query.map_err(|e| bad_query(&e))?;
    let mut filter = HeldQuery {
        limit: None,
        offset: None,
        ..q.clone()
    }
    .filter()?;
    let page = page_number(&q.page)?;
    filter.limit = HELD_PER_PAGE + 1;
    filter.offset = (page - 1).saturating_mul(HELD_PER_PAGE);
    let mut records = app.held_list(&filter).await?;
    let more = records.len() > HELD_PER_PAGE as usize;
    records.truncate(HELD_PER_PAGE as usize);

    // Counts per rule under the other filters, so each count says what choosing it would show.
    let counted = app
        .held_list(&HeldFilter {
            rule: None,
            limit: COUNT_CAP,
            offset: 0,
            ..filter.clone()
        })
        .await?;
    let form = HeldForm {
        rule: given(&q.rule).unwrap_or_default(),
        detector: given(&q.detector).unwrap_or_default(),
        sender: given(&q.sender).unwrap_or_default(),
        since: given(&q.since).unwrap_or_default(),
        status: given(&q.status).unwrap_or_else(|| "held".into()),
    };
    let held_href = |rule: &str, page: u32| {
        let page = if page > 1 {
            page.to_string()
        } else {
            String::new()
        };
        format!(
            "/held{}",
            query_string(&[
                ("status", &form.status),
                ("rule", rule),
                ("detector", &form.detector),
                ("sender", &form.sender),
                ("since", &form.since),
                ("page", &page),
            ])
        )
    };
    let mut rules: Vec<String> = RuleId::ALL.iter().map(|r| r.as_str().to_string()).collect();
    for r in counted.iter().flat_map(|h| &h.rules) {
        if !rules.contains(r) {
            rules.push(r.clone());
        }
    }
    let rule_counts = rules
        .into_iter()
        .map(|rule| Count {
            count: counted.iter().filter(|h| h.rules.contains(&rule)).count() as u64,
            href: held_href(&rule, 1),
            selected: rule == form.rule,
            label: rule.clone(),
            name: rule,
        })
        .collect();

    let stats = app
        .console
        .store
        .queue_stats(clock::now_ms())
        .await
        .map_err(Failure::from)?;
    let false_positives = app
        .console
        .store
        .false_positive_counts()
        .await
        .map_err(Failure::from)?
        .into_iter()
        .map(|(name, count)| Count {
            href: held_href_detector(&name),
            label: (app.console.names)(&name),
            name,
            count,
            selected: false,
        })
        .collect();
    let statuses = ["held", "released", "rejected", "all"]
        .into_iter()
        .map(|value| Choice {
            value,
            selected: value == form.status,
        })
        .collect();
    let t = HeldListPage {
        nav: app.nav(&caller, Section::Held { exact: true }).await,
        rows: records
            .iter()
            .map(|h| held_row(h, &app.console.names))
            .collect(),
        prev: (page > 1).then(|| held_href(&form.rule, page - 1)),
        next: more.then(|| held_href(&form.rule, page + 1)),
        page,
        rule_counts,
        counts_capped: counted.len() >= COUNT_CAP as usize,
        statuses,
        waiting: stats.held,
        queued: stats.queued,
        false_positives,
        form,
    };
    html(&t)
}

fn held_href_detector(detector: &str) -> String {
    format!(
        "/held{}",
        query_string(&[("status", "all"), ("detector", detector)])
    )
}

fn held_row(h: &HeldRecord, names: &crate::Names) -> HeldRow {
    HeldRow {
        href: format!("/held/{}", path_segment(&h.id)),
        when: clock::human(h.received_ms),
        from: if h.from.is_empty() {
            "<>".into()
        } else {
            h.from.clone()
        },
        rcpt_count: h.rcpt.len(),
        rules: h.rules.join(", "),
        detectors: detector_totals(h, names),
        status: h.status.as_str(),
    }
}

/// Hits per detector over all locations, in the order first found.
fn detector_totals(h: &HeldRecord, names: &crate::Names) -> Vec<Count> {
    let mut out: Vec<Count> = Vec::new();
    for f in &h.findings {
        match out.iter_mut().find(|c| c.name == f.detector) {
            Some(c) => c.count += u64::from(f.count),
            None => out.push(Count {
                name: f.detector.clone(),
                label: names(&f.detector),
                count: u64::from(f.count),
                href: String::new(),
                selected: false,
            }),
        }
    }
    out
}

fn page_number(v: &Option<String>) -> Result<u32, Failure> {
    match given(v) {
        None => Ok(1),
        Some(s) => s
            .parse::<u32>()
            .ok()
            .filter(|&p| (1..=1_000_000).contains(&p))
            .ok_or_else(|| Failure::BadRequest("page: a number from 1".into())),
    }
}

#[derive(Template)]
#[template(path = "held_one.html")]
pub(crate) struct HeldPage {
    pub nav: Nav,
    pub m: HeldDetailJson,
    pub received: String,
    pub decided_at: Option<String>,
    pub is_held: bool,
    pub action_base: String,
    /// Matches in context, attachments, the body's preview.
    pub i: Inspected,
    pub eml_href: String,
    pub names: crate::Names,
}

impl HeldPage {
    /// A detector's plain name (`NHS numbers`).
    fn name_of(&self, detector: &str) -> String {
        (self.names)(detector)
    }
}

/// `GET /held/{id}`: one message, and what can be done with it.
pub(crate) async fn held_one(
    State(app): State<App>,
    PageCaller(caller): PageCaller,
    Path(id): Path<String>,
) -> Result<Response, PageError> {
    let h = app.held(&id).await?;
    let i = app.inspect(&h).await;
    let mut m = HeldDetailJson::new(&h, Vec::new());
    m.headers = i.headers.clone();
    m.reason = app.masked_reason(m.reason.take()).await;
    let t = HeldPage {
        nav: app.nav(&caller, Section::Held { exact: false }).await,
        received: clock::human(h.received_ms),
        decided_at: h.decided_ms.map(clock::human),
        is_held: h.status == HeldStatus::Held,
        action_base: format!("/api/held/{}", path_segment(&h.id)),
        eml_href: format!("/held/{}/eml", path_segment(&h.id)),
        names: app.console.names.clone(),
        i,
        m,
    };
    html(&t)
}

/// The audit page's filters, as given.
#[derive(Default)]
pub(crate) struct AuditForm {
    pub actor: String,
    pub action: String,
    pub target: String,
    pub since: String,
}

/// A row of the audit page.
pub(crate) struct AuditRow {
    pub seq: i64,
    pub at: String,
    pub actor: String,
    pub address: String,
    pub action: String,
    pub target: String,
    pub target_href: Option<String>,
    pub detail: String,
}

#[derive(Template)]
#[template(path = "audit.html")]
pub(crate) struct AuditPage {
    pub nav: Nav,
    pub form: AuditForm,
    pub rows: Vec<AuditRow>,
    pub page: u32,
    pub prev: Option<String>,
    pub next: Option<String>,
    pub csv: String,
}

/// `GET /audit`: the audit trail, newest first, with filters and pages.
pub(crate) async fn audit(
    State(app): State<App>,
    PageCaller(caller): PageCaller,
    query: Result<Query<AuditQuery>, QueryRejection>,
) -> Result<Response, PageError> {
    let Query(q) = query.map_err(|e| bad_query(&e))?;
    let page = page_number(&q.page)?;
    let filter = AuditFilter {
        limit: AUDIT_PER_PAGE + 1,
        offset: (page - 1).saturating_mul(AUDIT_PER_PAGE),
        ..audit_filter(&q)?
    };
    let mut list = app
        .console
        .store
        .audit_list(&filter)
        .await
        .map_err(Failure::from)?;
    let more = list.len() > AUDIT_PER_PAGE as usize;
    list.truncate(AUDIT_PER_PAGE as usize);
    let details = app
        .masked_details(list.iter().map(|a| (a.action.as_str(), a.detail.clone())))
        .await;
    let form = AuditForm {
        actor: given(&q.actor).unwrap_or_default(),
        action: given(&q.action).unwrap_or_default(),
        target: given(&q.target).unwrap_or_default(),
        since: given(&q.since).unwrap_or_default(),
    };
    let href = |path: &str, page: u32| {
        let page = if page > 1 {
            page.to_string()
        } else {
            String::new()
        };
        format!(
            "{path}{}",
            query_string(&[
                ("actor", &form.actor),
                ("action", &form.action),
                ("target", &form.target),
                ("since", &form.since),
                ("page", &page),
            ])
        )
    };
    let rows = list
        .iter()
        .zip(details)
        .map(|(a, detail)| AuditRow {
            seq: a.seq,
            at: clock::human(a.at_ms),
            actor: a.actor.name.clone(),
            address: a.actor.address.clone().unwrap_or_default(),
            action: a.action.clone(),
            target_href: a
                .target
                .as_ref()
                .filter(|_| is_message_action(&a.action))
                .map(|t| format!("/held/{}", path_segment(t))),
            target: a.target.clone().unwrap_or_default(),
            detail,
        })
        .collect();
    let t = AuditPage {
        nav: app.nav(&caller, Section::Audit).await,
        rows,
        prev: (page > 1).then(|| href("/audit", page - 1)),
        next: more.then(|| href("/audit", page + 1)),
        csv: href("/audit.csv", 1),
        page,
        form,
    };
    html(&t)
}

fn is_message_action(action: &str) -> bool {
    matches!(
        action,
        "release" | "reject" | "false-positive" | "purge" | crate::download::ACTION
    )
}

fn audit_filter(q: &AuditQuery) -> Result<AuditFilter, Failure> {
    AuditQuery {
        limit: None,
        offset: None,
        ..q.clone()
    }
    .filter()
}

/// `GET /audit.csv`: the audit trail (same filters as the page) as CSV, newest first.
pub(crate) async fn audit_csv(
    State(app): State<App>,
    PageCaller(_): PageCaller,
    query: Result<Query<AuditQuery>, QueryRejection>,
) -> Result<Response, PageError> {
    let Query(q) = query.map_err(|e| bad_query(&e))?;
    let filter = AuditFilter {
        limit: CSV_CAP,
        offset: 0,
        ..audit_filter(&q)?
    };
    let list = app
        .console
        .store
        .audit_list(&filter)
        .await
        .map_err(Failure::from)?;
    let details = app
        .masked_details(list.iter().map(|a| (a.action.as_str(), a.detail.clone())))
        .await;
    let mut out = String::from("seq,at,actor,address,action,target,detail\r\n");
    for (a, detail) in list.iter().zip(details) {
        let fields = [
            a.seq.to_string(),
            clock::rfc3339(a.at_ms),
            a.actor.name.clone(),
            a.actor.address.clone().unwrap_or_default(),
            a.action.clone(),
            a.target.clone().unwrap_or_default(),
            detail,
        ];
        let line: Vec<String> = fields.iter().map(|f| csv_field(f)).collect();
        out.push_str(&line.join(","));
        out.push_str("\r\n");
    }
    let mut response = out.into_response();
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/csv; charset=utf-8"),
    );
    h.insert(
        header::CONTENT_DISPOSITION,
        HeaderValue::from_static("attachment; filename=\"hallpass-audit.csv\""),
    );
    Ok(response)
}

/// One CSV field (RFC 4180 quoting). A field a spreadsheet would take for a formula is
/// prefixed with `'`, so an audit export opened in Excel cannot run anything.
fn csv_field(s: &str) -> String {
    let s = if s.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{s}")
    } else {
        s.to_string()
    };
    if s.contains([',', '"', '\r', '\n']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s
    }
}

/// `?a=1&b=2` of the non-empty pairs, percent-encoded; empty when none.
pub(crate) fn query_string(pairs: &[(&str, &str)]) -> String {
    let mut out = String::new();
    for (k, v) in pairs.iter().filter(|(_, v)| !v.is_empty()) {
        out.push(if out.is_empty() { '?' } else { '&' });
        out.push_str(&percent(k));
        out.push('=');
        out.push_str(&percent(v));
    }
    out
}

/// An id as one path segment.
pub(crate) fn path_segment(s: &str) -> String {
    percent(s)
}

fn percent(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(b));
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

/// `GET /static/style.css`: the one stylesheet, from the binary.
pub(crate) async fn stylesheet() -> Response {
    let mut r = include_str!("../static/style.css").into_response();
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/css; charset=utf-8"),
    );
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=3600"),
    );
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_fields_are_quoted_and_defused() {
        assert_eq!(csv_field("plain"), "plain");
        assert_eq!(csv_field("a,b"), "\"a,b\"");
        assert_eq!(csv_field("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(csv_field("line\nbreak"), "\"line\nbreak\"");
        assert_eq!(csv_field("=HYPERLINK(1)"), "'=HYPERLINK(1)");
        assert_eq!(csv_field("-1"), "'-1");
    }

    #[test]
    fn query_strings_skip_empty_values_and_encode() {
        assert_eq!(query_string(&[("a", ""), ("b", "")]), "");
        assert_eq!(
            query_string(&[("sender", "a+b@example.com"), ("rule", ""), ("page", "2")]),
            "?sender=a%2Bb%40example.com&page=2"
        );
        assert_eq!(path_segment("01J/../x"), "01J%2F..%2Fx");
    }
}
