//! The held message's `.eml`, exactly as spooled: `GET /held/{id}/eml` for the page's link,
//! `GET /api/held/{id}/eml` for scripts. Each download is audited (`download`: who, when, from
//! which address) before a byte is sent; no audit, no download.

use axum::extract::{FromRequestParts, Path, State};
use axum::http::request::Parts;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use hallpass_store::{AuditEntry, StoreError};

use crate::App;
use crate::auth::{Caller, PageCaller};
use crate::clock;
use crate::error::{ApiError, Failure, PageError};

/// The audit trail's name for a download.
pub(crate) const ACTION: &str = "download";

/// An `/api/*` caller, kept for the audit trail (failures told as JSON).
pub(crate) struct ApiCaller(pub Caller);

impl FromRequestParts<App> for ApiCaller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, app: &App) -> Result<Self, Self::Rejection> {
        Ok(ApiCaller(app.caller(parts).await?))
    }
}

/// `GET /held/{id}/eml`.
pub(crate) async fn page(
    State(app): State<App>,
    PageCaller(caller): PageCaller,
    Path(id): Path<String>,
) -> Result<Response, PageError> {
    Ok(app.eml(&caller, &id).await?)
}

/// `GET /api/held/{id}/eml`.
pub(crate) async fn api(
    State(app): State<App>,
    ApiCaller(caller): ApiCaller,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    Ok(app.eml(&caller, &id).await?)
}

impl App {
    /// The spooled bytes of a held copy as an attachment, once the download is audited.
    async fn eml(&self, caller: &Caller, id: &str) -> Result<Response, Failure> {
        let h = self.held(id).await?;
        let bytes = self
            .console
            .spool
            .read(&h.spool_id)
            .await
            .map_err(|e| match e {
                StoreError::NotFound => {
                    Failure::NotFound("the message's file is gone (purged)".into())
                }
                e => Failure::internal("reading a held message", e),
            })?;
        self.console
            .store
            .audit(&AuditEntry {
                at_ms: clock::now_ms(),
                actor: caller.actor(),
                action: ACTION.into(),
                target: Some(h.id.clone()),
                detail: format!("{} bytes (.eml)", bytes.len()),
            })
            .await?;
        tracing::info!(id = %h.id, by = %caller.name, bytes = bytes.len(), "held message downloaded");
        let mut r = bytes.into_response();
        let headers = r.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("message/rfc822"),
        );
        let name: String =
            h.id.chars()
                .filter(|c| c.is_ascii_alphanumeric() || *c == '-')
                .collect();
        headers.insert(
            header::CONTENT_DISPOSITION,
            HeaderValue::try_from(format!("attachment; filename=\"held-{name}.eml\""))
                .unwrap_or(HeaderValue::from_static("attachment")),
        );
        Ok(r)
    }
}
