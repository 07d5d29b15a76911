//! Request bodies: the same routes take JSON (scripts), an HTML form (the pages) or nothing at all
//! (`POST /api/held/{id}/release` with no options).

use axum::body::Bytes;
use axum::extract::{Form, FromRequest, Json, Request};
use axum::http::{HeaderMap, header};
use serde::Deserialize;
use serde::de::DeserializeOwned;

use crate::error::Failure;

/// A body of type `T`: JSON, a form, or empty (then `T::default()`).
#[derive(Debug)]
pub(crate) struct Input<T>(pub T);

/// Bodies that may carry the CSRF token (forms do; JSON requests send the header instead).
pub(crate) trait WithCsrf {
    /// The token sent in the body, if any.
    fn csrf(&self) -> Option<&str>;
}

fn content_type(headers: &HeaderMap) -> Option<String> {
    let v = headers.get(header::CONTENT_TYPE)?.to_str().ok()?;
    Some(
        v.split(';')
            .next()
            .unwrap_or_default()
            .trim()
            .to_ascii_lowercase(),
    )
}

/// Whether an HTML form sent this body.
pub(crate) fn is_form(headers: &HeaderMap) -> bool {
    content_type(headers).as_deref() == Some("application/x-www-form-urlencoded")
}

fn is_json(headers: &HeaderMap) -> bool {
    content_type(headers).is_some_and(|t| t == "application/json" || t.ends_with("+json"))
}

impl<S, T> FromRequest<S> for Input<T>
where
    S: Send + Sync,
    T: DeserializeOwned + Default + Send + 'static,
{
    type Rejection = Failure;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        if is_form(req.headers()) {
            let Form(v) = Form::<T>::from_request(req, state)
                .await
                .map_err(|e| Failure::BadRequest(e.body_text()))?;
            return Ok(Input(v));
        }
        let json = is_json(req.headers());
        let bytes = Bytes::from_request(req, state)
            .await
            .map_err(|e| Failure::BadRequest(e.body_text()))?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(Input(T::default()));
        }
        if !json {
            return Err(Failure::UnsupportedMediaType);
        }
        let Json(v) =
            Json::<T>::from_bytes(&bytes).map_err(|e| Failure::BadRequest(e.body_text()))?;
        Ok(Input(v))
    }
}

/// Login: `username`, `password`.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct LoginInput {
    /// Account name.
    #[serde(default)]
    pub username: String,
    /// Password.
    #[serde(default)]
    pub password: String,
}

/// A body with nothing but the CSRF token (logout, false positive).
#[derive(Debug, Default, Deserialize)]
pub(crate) struct CsrfOnly {
    #[serde(default)]
    csrf: Option<String>,
}

impl WithCsrf for CsrfOnly {
    fn csrf(&self) -> Option<&str> {
        self.csrf.as_deref()
    }
}

/// Release options: `{"rewrite":"bcc"}` moves outside addresses from To/Cc to Bcc first.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct ReleaseInput {
    /// `bcc`, or nothing.
    #[serde(default)]
    pub rewrite: Option<String>,
    #[serde(default)]
    csrf: Option<String>,
}

impl WithCsrf for ReleaseInput {
    fn csrf(&self) -> Option<&str> {
        self.csrf.as_deref()
    }
}

impl ReleaseInput {
    /// Whether to rewrite To/Cc; a value other than `bcc` is an error.
    pub fn bcc(&self) -> Result<bool, Failure> {
        match self.rewrite.as_deref().map(str::trim) {
            None | Some("") => Ok(false),
            Some(r) if r.eq_ignore_ascii_case("bcc") => Ok(true),
            Some(_) => Err(Failure::BadRequest(
                "unknown rewrite: the only one is \"bcc\"".into(),
            )),
        }
    }
}

/// Reject: `{"reason":"..."}`, which the sender is told.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct RejectInput {
    /// Why, in words.
    #[serde(default)]
    pub reason: Option<String>,
    #[serde(default)]
    csrf: Option<String>,
}

impl WithCsrf for RejectInput {
    fn csrf(&self) -> Option<&str> {
        self.csrf.as_deref()
    }
}

/// The longest reason kept (characters).
const MAX_REASON: usize = 2000;

impl RejectInput {
    /// The reason, trimmed, with control characters other than line ends refused.
    pub fn reason(&self) -> Result<String, Failure> {
        let r = self.reason.as_deref().unwrap_or_default().trim();
        if r.chars().count() > MAX_REASON {
            return Err(Failure::BadRequest(format!(
                "the reason is too long: at most {MAX_REASON} characters"
            )));
        }
        if r.chars()
            .any(|c| c.is_control() && c != '\n' && c != '\r' && c != '\t')
        {
            return Err(Failure::BadRequest(
                "the reason contains control characters".into(),
            ));
        }
        Ok(r.replace("\r\n", "\n"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rewrite_accepts_bcc_only() {
        let r = |v: Option<&str>| ReleaseInput {
            rewrite: v.map(str::to_string),
            csrf: None,
        };
        assert!(!r(None).bcc().unwrap());
        assert!(!r(Some("")).bcc().unwrap());
        assert!(r(Some("bcc")).bcc().unwrap());
        assert!(r(Some("BCC")).bcc().unwrap());
        assert!(r(Some("cc")).bcc().is_err());
    }

    #[test]
    fn reasons_are_trimmed_and_bounded() {
        let r = |v: &str| RejectInput {
            reason: Some(v.into()),
            csrf: None,
        };
        assert_eq!(r("  wrong parent \r\n").reason().unwrap(), "wrong parent");
        assert_eq!(r("a\r\nb").reason().unwrap(), "a\nb");
        assert!(r("bell\u{7}").reason().is_err());
        assert!(r(&"x".repeat(MAX_REASON + 1)).reason().is_err());
        assert_eq!(RejectInput::default().reason().unwrap(), "");
    }
}
