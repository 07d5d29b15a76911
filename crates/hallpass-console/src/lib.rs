//! hallpass's DPO console: the quarantine and the audit trail over HTTP, as JSON for scripts
//! (CONTRACT.md, "Console HTTP API") and as server-rendered pages for people.
//!
//! - [`router`] builds the axum [`Router`] from a [`ConsoleState`]; [`serve`] runs it on a
//!   listener until a shutdown future resolves.
//! - People log in (`POST /login`) and get a session cookie (`HttpOnly; SameSite=Strict`, and
//!   `Secure` when asked), kept in memory for 8 idle hours; scripts send
//!   `Authorization: Bearer TOKEN` (`hallpass user token NAME`). Only dpo and admin accounts get
//!   in. Failed logins are throttled per account and per client address.
//! - Every state-changing request made with the cookie carries the session's CSRF token (a form
//!   field, or the `X-CSRF-Token` header).
//! - Decisions go through the store, which makes each exactly once and audits it with the
//!   account's name and the client's address.
//! - `/held/{id}` shows what the engine (the [`Inspect`] hook) makes of the message now: each
//!   match masked in its context, the attachments, and a preview of the body, sanitised and
//!   masked; `/held/{id}/eml` (and `/api/held/{id}/eml`) downloads it as spooled, audited
//!   (`download`).
//! - `/dashboard` (dpo, admin): holds per day and rule over 30 days as a server-drawn SVG chart,
//!   detectors with their false-positive rates, the delivery queue.
//! - `/users` and `/api/users` (admin only): add accounts, disable and enable them, reset
//!   passwords; each change audited (`user-add:<role>`, `user-disable`, `user-enable`,
//!   `user-passwd`).
//! - Every response carries a strict Content-Security-Policy and friends; nothing is cached.
//! - [`serve_tls`] serves the same over HTTPS only, with `Strict-Transport-Security`.
//! - `GET /metrics` (with [`router_with_metrics`] / [`serve_with_metrics`]): the relay's metrics
//!   in Prometheus text format, for a dpo or admin's session or Bearer token like `/api` (`401`
//!   without), or for anyone when [`Metrics::public`]. Releases, rejections and false positives
//!   are counted through the `metrics` facade (`hallpass_releases_total` …).
//!
//! The console holds no message content of its own and logs none: ids, account names and
//! counts only.
//!
//! ```no_run
//! # async fn demo(store: hallpass_store::Store) -> std::io::Result<()> {
//! use std::sync::Arc;
//! use hallpass_console::{ConsoleState, serve};
//!
//! let state = ConsoleState {
//!     spool: store.spool().clone(),
//!     store,
//!     rewrite: Arc::new(|_bytes: &[u8]| None),
//!     wake: Arc::new(tokio::sync::Notify::new()),
//!     decided: Arc::new(|_held, _reason| Box::pin(async {})),
//!     inspect: Arc::new(|_bytes, _envelope, _texts| hallpass_console::Inspection::default()),
//!     names: Arc::new(|id: &str| id.to_string()),
//!     secure_cookies: false,
//!     organisation: "Lumen Learning Trust".into(),
//!     trusted_proxies: Vec::new(),
//! };
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:8025").await?;
//! serve(listener, state, async { let _ = tokio::signal::ctrl_c().await; }).await
//! # }
//! ```
#![deny(missing_docs)]

mod actions;
mod api;
mod auth;
mod clock;
mod dashboard;
mod download;
mod error;
mod input;
mod inspect;
mod login;
mod pages;
mod session;
mod tls;
mod users;
mod wire;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use axum::Router;
use axum::extract::Request;
use axum::http::{HeaderName, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, get, post};
use hallpass_store::{Spool, Store};

use crate::error::{ApiError, Failure, PageError};
use crate::session::{Sessions, Throttle};

pub use inspect::{Attachment, Inspect, Inspection, Match};
pub use wire::summary_headers;

/// The rewrite of a held message's To/Cc for "release with Bcc": the engine's
/// `hide_recipients`. `None` when there is nothing to move.
pub type Rewrite = Arc<dyn Fn(&[u8]) -> Option<Vec<u8>> + Send + Sync>;

/// A detector's kind of data in plain words (`uk_nhs_number` → `NHS numbers`), from the
/// detector files in force: the `name` the pages show beside the id.
pub type Names = Arc<dyn Fn(&str) -> String + Send + Sync>;

/// Told after each release or rejection, so the relay can tell the sender:
/// the decided copy, and the reason when it was rejected.
pub type Decided = Arc<
    dyn Fn(
            hallpass_store::HeldRecord,
            Option<String>,
        ) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>
        + Send
        + Sync,
>;

/// What the console works on. Cheap to clone.
#[derive(Clone)]
pub struct ConsoleState {
    /// The store: quarantine, audit trail, users.
    pub store: Store,
    /// The spool the held messages' files are in (the store's).
    pub spool: Spool,
    /// The cc_exposure rewrite of a message (the engine's `hide_recipients`); None = nothing to move.
    pub rewrite: Rewrite,
    /// Rung after a release so the delivery worker looks at the queue at once.
    pub wake: Arc<tokio::sync::Notify>,
    /// Called after a release or a rejection (the relay queues the sender's notice).
    pub decided: Decided,
    /// The engine's look at a held message for its page: matches masked in context,
    /// attachments, and texts to show with every match masked.
    pub inspect: Inspect,
    /// Detectors' plain names, for the pages (the JSON API keeps the ids).
    pub names: Names,
    /// Mark the session cookie `Secure` (the console is reached over HTTPS, e.g. behind a proxy).
    pub secure_cookies: bool,
    /// The organisation's name, shown on every page.
    pub organisation: String,
    /// Reverse proxies whose `X-Forwarded-For` names the client (`[console] trusted_proxies`).
    pub trusted_proxies: Vec<hallpass_core::config::Cidr>,
}

impl std::fmt::Debug for ConsoleState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConsoleState")
            .field("store", &self.store)
            .field("spool", &self.spool)
            .field("secure_cookies", &self.secure_cookies)
            .field("organisation", &self.organisation)
            .finish_non_exhaustive()
    }
}

/// `GET /metrics`: what renders the relay's metrics, and whether they need a login.
#[derive(Clone)]
pub struct Metrics {
    /// The metrics in Prometheus text format, as they are now.
    pub render: Arc<dyn Fn() -> String + Send + Sync>,
    /// Served without a session or token (`[console] metrics_public`).
    pub public: bool,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics")
            .field("public", &self.public)
            .finish_non_exhaustive()
    }
}

/// The state every handler shares.
#[derive(Clone)]
pub(crate) struct App(Arc<Inner>);

pub(crate) struct Inner {
    pub console: ConsoleState,
    metrics: Option<Metrics>,
    sessions: Sessions,
    throttle: Mutex<Throttle>,
}

impl std::ops::Deref for App {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.0
    }
}

impl App {
    /// The console's login sessions (in the store).
    pub(crate) fn sessions(&self) -> &Sessions {
        &self.sessions
    }

    /// The login throttle (held only for short, synchronous work).
    pub(crate) fn throttle(&self) -> MutexGuard<'_, Throttle> {
        self.throttle.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The console's routes: the JSON API under `/api`, the pages, login and logout, and the
/// stylesheet. Client addresses (for the audit trail and the login throttle) come from
/// [`axum::extract::ConnectInfo`]`<SocketAddr>`, which [`serve`] provides.
pub fn router(state: ConsoleState) -> Router {
    router_with_metrics(state, None)
}

/// [`router`] with `GET /metrics` served from `metrics` (a 404 when `None`).
pub fn router_with_metrics(state: ConsoleState, metrics: Option<Metrics>) -> Router {
    let app = App(Arc::new(Inner {
        sessions: Sessions::new(state.store.clone()),
        console: state,
        metrics,
        throttle: Mutex::new(Throttle::default()),
    }));
    let mut routes = Router::new()
        .route("/", get(pages::home))
        .route("/login", get(login::page).post(login::login))
        .route("/logout", post(login::logout))
        .route("/held", get(pages::held_list))
        .route("/held/{id}", get(pages::held_one))
        .route("/held/{id}/eml", get(download::page))
        .route("/dashboard", get(dashboard::page))
        .route("/audit", get(pages::audit))
        .route("/audit.csv", get(pages::audit_csv))
        .route("/users", get(users::page))
        .route("/static/style.css", get(pages::stylesheet));
    for (path, route) in machine_routes() {
        routes = routes.route(path, route);
    }
    routes
        .fallback(not_found)
        .with_state(app)
        .layer(axum::middleware::map_response(security_headers))
}

/// The machine interface: the JSON API and `/metrics`. Every route here is described in
/// [`OPENAPI`] (a test holds the two together); add new ones here, not in the pages' list.
fn machine_routes() -> Vec<(&'static str, MethodRouter<App>)> {
    vec![
        ("/api/openapi.json", get(openapi)),
        ("/api/held", get(api::held_list)),
        ("/api/held/{id}", get(api::held_get)),
        ("/api/held/{id}/eml", get(download::api)),
        ("/api/held/{id}/release", post(api::release)),
        ("/api/held/{id}/reject", post(api::reject)),
        ("/api/held/{id}/false-positive", post(api::false_positive)),
        ("/api/audit", get(api::audit)),
        ("/api/users", get(users::list).post(users::add)),
        ("/api/users/{name}/disable", post(users::disable)),
        ("/api/users/{name}/enable", post(users::enable)),
        ("/api/users/{name}/password", post(users::password)),
        ("/metrics", get(metrics_text)),
        ("/healthz", get(healthz)),
    ]
}

/// `GET /healthz`: `200` when the store answers, `503` when it does not; no login, no data.
async fn healthz(axum::extract::State(app): axum::extract::State<App>) -> Response {
    match app.console.store.ping().await {
        Ok(()) => axum::Json(serde_json::json!({"status": "ok"})).into_response(),
        Err(e) => {
            tracing::warn!(error = %e, "health check: the store does not answer");
            (
                axum::http::StatusCode::SERVICE_UNAVAILABLE,
                axum::Json(serde_json::json!({"status": "store unavailable"})),
            )
                .into_response()
        }
    }
}

/// The paths of the machine interface (the JSON API and `/metrics`) as the router mounts them,
/// in axum's `{param}` syntax, which is OpenAPI's too.
pub fn api_paths() -> Vec<&'static str> {
    machine_routes().into_iter().map(|(path, _)| path).collect()
}

/// The OpenAPI 3.1 document of the JSON API, `/login`, `/logout` and `/metrics`, served at
/// `GET /api/openapi.json` without a login (it holds no data).
pub const OPENAPI: &str = include_str!("openapi.json");

async fn openapi() -> Response {
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        OPENAPI,
    )
        .into_response()
}

/// Serves the console on `listener` until `shutdown` resolves, then finishes the requests in
/// flight and returns.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: ConsoleState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    serve_with_metrics(listener, state, None, shutdown).await
}

/// [`serve`] with `GET /metrics` (see [`router_with_metrics`]).
pub async fn serve_with_metrics(
    listener: tokio::net::TcpListener,
    state: ConsoleState,
    metrics: Option<Metrics>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let service =
        router_with_metrics(state, metrics).into_make_service_with_connect_info::<SocketAddr>();
    axum::serve(listener, service)
        .with_graceful_shutdown(shutdown)
        .await
}

/// [`serve_with_metrics`] over HTTPS only, with `tls` (its ALPN set to HTTP/1.1): a client that
/// does not finish a TLS handshake is closed, so nothing is served in plain text on that port.
/// Every answer carries `Strict-Transport-Security`. Give it a [`ConsoleState`] with
/// `secure_cookies` set.
pub async fn serve_tls(
    listener: tokio::net::TcpListener,
    tls: Arc<rustls::ServerConfig>,
    state: ConsoleState,
    metrics: Option<Metrics>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let listener = tls::TlsListener::new(listener, tls)?;
    let service = router_with_metrics(state, metrics)
        .layer(axum::middleware::map_response(tls::hsts))
        .layer(axum::middleware::map_request(tls::peer_address))
        .into_make_service_with_connect_info::<tls::TlsPeer>();
    axum::serve(listener, service)
        .with_graceful_shutdown(shutdown)
        .await
}

/// `GET /metrics`: Prometheus text format; `401` without a session or token unless public.
async fn metrics_text(
    axum::extract::State(app): axum::extract::State<App>,
    req: Request,
) -> Response {
    let Some(m) = app.metrics.clone() else {
        return ApiError(Failure::NotFound("no such page".into())).into_response();
    };
    if !m.public {
        let (parts, _) = req.into_parts();
        if let Err(f) = app.metrics_reader(&parts).await {
            return ApiError(f).into_response();
        }
    }
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
        )],
        (m.render)(),
    )
        .into_response()
}

async fn not_found(req: Request) -> Response {
    let f = Failure::NotFound("no such page".into());
    if req.uri().path().starts_with("/api/") {
        ApiError(f).into_response()
    } else {
        PageError(f).into_response()
    }
}

const CSP: &str = "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; \
                   frame-ancestors 'none'; base-uri 'none'";

/// Headers on every response: no framing, no sniffing, no referrer, a strict CSP, and nothing
/// kept in caches (the stylesheet excepted: it sets its own).
async fn security_headers(mut response: Response) -> Response {
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        HeaderName::from_static("cross-origin-opener-policy"),
        HeaderValue::from_static("same-origin"),
    );
    if !h.contains_key(header::CACHE_CONTROL) {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    response
}

impl IntoResponse for Failure {
    fn into_response(self) -> Response {
        ApiError(self).into_response()
    }
}
