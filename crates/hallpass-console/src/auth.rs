//! Who is asking: a session cookie (people) or `Authorization: Bearer TOKEN` (scripts); only dpo
//! and admin accounts get in. And the CSRF check that every state-changing request made with the
//! cookie must pass.

use std::net::{IpAddr, SocketAddr};

use axum::extract::{ConnectInfo, FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use hallpass_core::config::Cidr;
use hallpass_store::{Actor, Role};

use crate::App;
use crate::clock;
use crate::error::{ApiError, Failure, PageError};
use crate::input::{Input, WithCsrf};
use crate::session::same_secret;

/// Name of the session cookie.
pub(crate) const COOKIE: &str = "hallpass_session";
/// Header that carries the CSRF token for JSON requests made with the cookie.
pub(crate) const CSRF_HEADER: &str = "x-csrf-token";

/// An authenticated dpo or admin.
#[derive(Debug, Clone)]
pub(crate) struct Caller {
    /// Account name.
    pub name: String,
    /// Dpo or admin (never relay).
    pub role: Role,
    /// The client's IP address, when known.
    pub address: Option<IpAddr>,
    /// Set when the request came with the session cookie.
    pub session: Option<SessionRef>,
}

/// The session a request came with.
#[derive(Debug, Clone)]
pub(crate) struct SessionRef {
    /// Session id (the cookie's value).
    pub id: String,
    /// The session's CSRF token.
    pub csrf: String,
}

impl Caller {
    /// For the audit trail.
    pub fn actor(&self) -> Actor {
        Actor {
            name: self.name.clone(),
            address: self.address.map(|a| a.to_string()),
        }
    }

    /// The CSRF token to put in forms (empty for a bearer-token caller, who needs none).
    pub fn csrf(&self) -> &str {
        self.session.as_ref().map_or("", |s| s.csrf.as_str())
    }
}

/// The client's IP address, from the connection (`serve` provides it).
/// The client's address: the peer's, or, when the peer is a trusted reverse proxy, the nearest
/// address in `X-Forwarded-For` that is not itself a trusted proxy (proxies append on the right,
/// so what is left of the first untrusted entry may be made up by the client).
pub(crate) fn client_address(parts: &Parts, trusted: &[Cidr]) -> Option<IpAddr> {
    let peer = parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(a)| a.ip())?;
    let is_trusted = |ip: IpAddr| trusted.iter().any(|c| c.contains(ip));
    if !is_trusted(peer) {
        return Some(peer);
    }
    // From the right: skip our own proxies; the first other entry is the client as the
    // nearest trusted proxy saw it. Entries further left are the client's own claims.
    let entries: Vec<&str> = parts
        .headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .collect();
    for entry in entries.iter().rev() {
        match entry.parse::<IpAddr>() {
            Ok(ip) if is_trusted(ip) => continue,
            Ok(ip) => return Some(ip),
            // Not an address where a trusted proxy should have written one: the proxy's own.
            Err(_) => break,
        }
    }
    Some(peer)
}

/// The session cookie's value, if the request has one.
pub(crate) fn session_cookie(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE)
        .map(|(_, value)| value.trim_matches('"'))
}

/// `Set-Cookie` for a new session.
pub(crate) fn session_set_cookie(id: &str, secure: bool) -> HeaderValue {
    let secure = if secure { "; Secure" } else { "" };
    HeaderValue::try_from(format!(
        "{COOKIE}={id}; HttpOnly; SameSite=Strict; Path=/{secure}"
    ))
    .unwrap_or_else(|_| HeaderValue::from_static("hallpass_session=; Max-Age=0; Path=/"))
}

/// `Set-Cookie` that removes the session cookie.
pub(crate) fn session_clear_cookie(secure: bool) -> HeaderValue {
    if secure {
        HeaderValue::from_static(
            "hallpass_session=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0; Secure",
        )
    } else {
        HeaderValue::from_static("hallpass_session=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0")
    }
}

impl App {
    /// Resolves the caller of a request: bearer token first, then the session cookie.
    pub(crate) async fn caller(&self, parts: &Parts) -> Result<Caller, Failure> {
        let address = client_address(parts, &self.console.trusted_proxies);
        if parts.headers.contains_key(header::AUTHORIZATION) {
            let token = bearer_token(parts).ok_or(Failure::Unauthenticated)?;
            let user = self
                .console
                .store
                .user_by_token(token)
                .await?
                .ok_or(Failure::Unauthenticated)?;
            return match user.role {
                Role::Dpo | Role::Admin => Ok(Caller {
                    name: user.name,
                    role: user.role,
                    address,
                    session: None,
                }),
                Role::Relay => Err(relay_refused()),
                Role::Metrics => Err(Failure::Forbidden(
                    "a metrics account's token reads /metrics only".into(),
                )),
            };
        }
        let id = session_cookie(&parts.headers).ok_or(Failure::Unauthenticated)?;
        let s = self
            .sessions()
            .touch(id, clock::now_ms())
            .await?
            .ok_or(Failure::Unauthenticated)?;
        let (name, csrf) = (s.user, s.csrf);
        // The account may have been removed, disabled or changed since the login: the store
        // decides on every request, not the session.
        let user = self
            .console
            .store
            .user_list()
            .await?
            .into_iter()
            .find(|u| u.name == name && !u.disabled);
        match user.map(|u| u.role) {
            Some(role @ (Role::Dpo | Role::Admin)) => Ok(Caller {
                name,
                role,
                address,
                session: Some(SessionRef {
                    id: id.to_string(),
                    csrf,
                }),
            }),
            _ => {
                self.sessions().remove(id).await?;
                Err(Failure::Unauthenticated)
            }
        }
    }
}

impl App {
    /// Who may read `/metrics`: a dpo's or admin's session or token, or a metrics account's
    /// token (a scraper's token that can do nothing else).
    pub(crate) async fn metrics_reader(&self, parts: &Parts) -> Result<(), Failure> {
        if let Some(token) = bearer_token(parts)
            && let Some(user) = self.console.store.user_by_token(token).await?
            && user.role == Role::Metrics
        {
            return Ok(());
        }
        self.caller(parts).await.map(drop)
    }
}

/// The token of an `Authorization: Bearer TOKEN` header, if that is what the request has.
fn bearer_token(parts: &Parts) -> Option<&str> {
    let v = parts.headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = v.trim().split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

fn relay_refused() -> Failure {
    Failure::Forbidden("relay accounts cannot use the console: use a dpo or admin account".into())
}

/// Proof that an `/api/*` request comes from a dpo or admin: failures are told as JSON.
#[derive(Debug)]
pub(crate) struct ApiAccess;

impl FromRequestParts<App> for ApiAccess {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, app: &App) -> Result<Self, Self::Rejection> {
        app.caller(parts).await?;
        Ok(ApiAccess)
    }
}

/// A caller of a page: without a session they are sent to the login page.
#[derive(Debug)]
pub(crate) struct PageCaller(pub Caller);

impl FromRequestParts<App> for PageCaller {
    type Rejection = PageError;

    async fn from_request_parts(parts: &mut Parts, app: &App) -> Result<Self, Self::Rejection> {
        Ok(PageCaller(app.caller(parts).await?))
    }
}

/// A state-changing request: the caller, the body (JSON, a form, or nothing), and the CSRF check
/// done when the cookie was used. `form` says that a browser form sent it, to be answered with
/// a redirect back rather than with JSON.
#[derive(Debug)]
pub(crate) struct Posted<T> {
    /// Who.
    pub caller: Caller,
    /// What they sent.
    pub input: T,
    /// Sent by an HTML form.
    pub form: bool,
}

impl<T> FromRequest<App> for Posted<T>
where
    T: WithCsrf + serde::de::DeserializeOwned + Default + Send + 'static,
{
    type Rejection = Response;

    async fn from_request(req: Request, app: &App) -> Result<Self, Self::Rejection> {
        let form = crate::input::is_form(req.headers());
        let reject = |f: Failure| {
            if form {
                PageError(f).into_response()
            } else {
                ApiError(f).into_response()
            }
        };
        let (parts, body) = req.into_parts();
        let caller = app.caller(&parts).await.map_err(reject)?;
        let header_token = parts
            .headers
            .get(CSRF_HEADER)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let Input(input) = Input::<T>::from_request(Request::from_parts(parts, body), app)
            .await
            .map_err(reject)?;
        if let Some(session) = &caller.session {
            let sent = input.csrf().map(str::to_string).or(header_token);
            if !sent.is_some_and(|t| same_secret(&t, &session.csrf)) {
                return Err(reject(Failure::Forbidden(
                    "missing or wrong CSRF token: reload the page and try again".into(),
                )));
            }
        }
        Ok(Posted {
            caller,
            input,
            form,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_session_cookie_among_others() {
        let mut h = HeaderMap::new();
        h.insert(
            header::COOKIE,
            HeaderValue::from_static("theme=dark; hallpass_session=abc123; other=1"),
        );
        assert_eq!(session_cookie(&h), Some("abc123"));
        h.insert(
            header::COOKIE,
            HeaderValue::from_static("hallpass_sessionx=1"),
        );
        assert_eq!(session_cookie(&h), None);
    }

    #[test]
    fn cookie_flags() {
        let c = session_set_cookie("abc", true);
        assert_eq!(
            c.to_str().unwrap(),
            "hallpass_session=abc; HttpOnly; SameSite=Strict; Path=/; Secure"
        );
        let c = session_set_cookie("abc", false);
        assert!(!c.to_str().unwrap().contains("Secure"));
    }
}
