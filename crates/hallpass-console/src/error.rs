//! What can go wrong in a request, and how it is told: JSON `{"error": "..."}` for the API, a
//! page for people. Internal errors are logged with their cause and answered with a generic 500:
//! this is a data-protection product, and internals (paths, SQL) are nobody's business.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use hallpass_store::{HeldStatus, StoreError};
use serde::Serialize;

use crate::clock;

/// A request that cannot be done.
#[derive(Debug)]
pub(crate) enum Failure {
    /// 400: the request itself is wrong; the text says how.
    BadRequest(String),
    /// 401: no (valid) session or token.
    Unauthenticated,
    /// 403: authenticated, but not allowed; or a missing CSRF token.
    Forbidden(String),
    /// 404.
    NotFound(String),
    /// 409: something of that name exists already (an account).
    Conflict(String),
    /// 409: the held message was decided already.
    AlreadyDecided {
        /// What was decided.
        status: HeldStatus,
        /// By whom.
        by: Option<String>,
        /// When.
        at_ms: Option<i64>,
    },
    /// 415: neither JSON nor a form.
    UnsupportedMediaType,
    /// 429: too many failed logins; try again after this many seconds.
    TooManyAttempts {
        /// Seconds to wait.
        retry_after_s: i64,
    },
    /// 500: logged here, told to nobody.
    Internal(String),
}

impl Failure {
    /// An internal error with its cause, for the log.
    pub(crate) fn internal(what: &str, cause: impl std::fmt::Display) -> Failure {
        Failure::Internal(format!("{what}: {cause}"))
    }

    fn status(&self) -> StatusCode {
        match self {
            Failure::BadRequest(_) => StatusCode::BAD_REQUEST,
            Failure::Unauthenticated => StatusCode::UNAUTHORIZED,
            Failure::Forbidden(_) => StatusCode::FORBIDDEN,
            Failure::NotFound(_) => StatusCode::NOT_FOUND,
            Failure::Conflict(_) | Failure::AlreadyDecided { .. } => StatusCode::CONFLICT,
            Failure::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Failure::TooManyAttempts { .. } => StatusCode::TOO_MANY_REQUESTS,
            Failure::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// What the client is told.
    pub(crate) fn message(&self) -> String {
        match self {
            Failure::BadRequest(m)
            | Failure::Forbidden(m)
            | Failure::NotFound(m)
            | Failure::Conflict(m) => m.clone(),
            Failure::Unauthenticated => {
                "log in first (POST /login), or send Authorization: Bearer TOKEN".into()
            }
            Failure::AlreadyDecided { status, by, at_ms } => format!(
                "already {} by {} at {}",
                status.as_str(),
                by.as_deref().unwrap_or("someone"),
                at_ms.map_or_else(|| "an earlier time".into(), clock::rfc3339)
            ),
            Failure::UnsupportedMediaType => {
                "send JSON (Content-Type: application/json) or a form".into()
            }
            Failure::TooManyAttempts { retry_after_s } => format!(
                "too many failed logins: try again in {} minute(s)",
                (retry_after_s + 59) / 60
            ),
            Failure::Internal(_) => "internal error: the console's log has the details".into(),
        }
    }

    fn log(&self) {
        if let Failure::Internal(cause) = self {
            tracing::error!(error = %cause, "console request failed");
        }
    }

    fn extra_headers(&self, response: &mut Response) {
        match self {
            Failure::TooManyAttempts { retry_after_s } => {
                response
                    .headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from(*retry_after_s));
            }
            Failure::Unauthenticated => {
                response.headers_mut().insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("Bearer realm=\"hallpass\""),
                );
            }
            _ => {}
        }
    }
}

impl From<StoreError> for Failure {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound | StoreError::InvalidId(_) => {
                Failure::NotFound("no such held message".into())
            }
            StoreError::AlreadyDecided { status, by, at_ms } => {
                Failure::AlreadyDecided { status, by, at_ms }
            }
            other => Failure::internal("store", other),
        }
    }
}

impl From<askama::Error> for Failure {
    fn from(e: askama::Error) -> Self {
        Failure::internal("rendering a page", e)
    }
}

/// A failure told as JSON (the API).
#[derive(Debug)]
pub(crate) struct ApiError(pub Failure);

#[derive(Serialize)]
struct ErrorJson {
    error: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    status: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    decided_by: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    decided_at: Option<String>,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let f = self.0;
        f.log();
        let mut body = ErrorJson {
            error: f.message(),
            status: None,
            decided_by: None,
            decided_at: None,
        };
        if let Failure::AlreadyDecided { status, by, at_ms } = &f {
            body.status = Some(status.as_str());
            body.decided_by.clone_from(by);
            body.decided_at = at_ms.map(clock::rfc3339);
        }
        let mut response = (f.status(), Json(body)).into_response();
        f.extra_headers(&mut response);
        response
    }
}

impl<E: Into<Failure>> From<E> for ApiError {
    fn from(e: E) -> Self {
        ApiError(e.into())
    }
}

/// A failure told as a page (people): an unauthenticated one is sent to the login page.
#[derive(Debug)]
pub(crate) struct PageError(pub Failure);

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        let f = self.0;
        if matches!(f, Failure::Unauthenticated) {
            return Redirect::to("/login").into_response();
        }
        f.log();
        let status = f.status();
        let page = crate::pages::ErrorPage {
            code: status.as_u16(),
            title: status.canonical_reason().unwrap_or("Error"),
            message: f.message(),
        };
        let mut response = match askama::Template::render(&page) {
            Ok(html) => (status, Html(html)).into_response(),
            Err(e) => {
                tracing::error!(error = %e, "cannot render the error page");
                (status, f.message()).into_response()
            }
        };
        f.extra_headers(&mut response);
        response
    }
}

impl<E: Into<Failure>> From<E> for PageError {
    fn from(e: E) -> Self {
        PageError(e.into())
    }
}
