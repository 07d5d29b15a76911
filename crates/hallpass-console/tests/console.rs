//! The console through its router (`tower::ServiceExt::oneshot`, no socket) and once through
//! `serve` on a real loopback socket, on a real store in a temporary folder seeded with held
//! copies and their spool files. Addresses and names are synthetic.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{HeaderMap, Method, Request, StatusCode, header};
use axum::response::Response;
use hallpass_console::{ConsoleState, router, serve};
use hallpass_store::{
    AuditFilter, AuditRecord, CopyKind, FindingRecord, HeldStatus, NewCopy, NewMessage, Role,
    Store, new_id,
};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tower::ServiceExt;

const PASSWORD: &str = "correct horse battery staple";
/// The client address most requests come from (TEST-NET-1).
const CLIENT: &str = "192.0.2.10";
/// 2026-11-23T09:14:02Z
const T0: i64 = 1_795_425_242_000;

/// A folder under the system temp dir, removed (with its contents) when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        TempDir(std::env::temp_dir().join(format!(
            "hallpass-console-{name}-{}-{}",
            std::process::id(),
            new_id()
        )))
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A console on a fresh store with accounts dpo1 and dpo2 (dpo), admin1 (admin), relay1 (relay)
/// and metrics1 (metrics).
/// (held id, rejection reason) for each decision the relay was told about.
type Told = Arc<std::sync::Mutex<Vec<(String, Option<String>)>>>;

struct Console {
    _dir: TempDir,
    store: Store,
    wake: Arc<tokio::sync::Notify>,
    /// What the relay was told was decided.
    decided: Told,
    app: Router,
    state: ConsoleState,
    dpo_token: String,
    relay_token: String,
    metrics_token: String,
}

/// The test's stand-in for the engine's `hide_recipients`: outside addresses leave To/Cc.
fn hide_outside(bytes: &[u8]) -> Option<Vec<u8>> {
    let text = std::str::from_utf8(bytes).ok()?;
    let (head, body) = text.split_once("\r\n\r\n")?;
    let mut changed = false;
    let mut out = Vec::new();
    for line in head.split("\r\n") {
        let lower = line.to_ascii_lowercase();
        if (lower.starts_with("to:") || lower.starts_with("cc:"))
            && (lower.contains("@example.com") || lower.contains("@example.org"))
        {
            changed = true;
            if lower.starts_with("to:") {
                out.push("To: undisclosed-recipients:;".to_string());
            }
        } else {
            out.push(line.to_string());
        }
    }
    if !changed {
        return None;
    }
    out.push("X-Hallpass-Rewritten: cc_exposure".into());
    Some(format!("{}\r\n\r\n{body}", out.join("\r\n")).into_bytes())
}

impl Console {
    async fn new(name: &str) -> Console {
        Console::with_cookies(name, false).await
    }

    async fn with_cookies(name: &str, secure_cookies: bool) -> Console {
        let dir = TempDir::new(name);
        let store = Store::open(dir.path()).await.unwrap();
        store.user_add("dpo1", Role::Dpo, PASSWORD).await.unwrap();
        store.user_add("dpo2", Role::Dpo, PASSWORD).await.unwrap();
        store
            .user_add("admin1", Role::Admin, PASSWORD)
            .await
            .unwrap();
        store
            .user_add("relay1", Role::Relay, PASSWORD)
            .await
            .unwrap();
        let dpo_token = store.user_new_token("dpo1").await.unwrap();
        let relay_token = store.user_new_token("relay1").await.unwrap();
        store
            .user_add("metrics1", Role::Metrics, PASSWORD)
            .await
            .unwrap();
        let metrics_token = store.user_new_token("metrics1").await.unwrap();
        let wake = Arc::new(tokio::sync::Notify::new());
        let decided = Arc::new(std::sync::Mutex::new(Vec::new()));
        let seen = decided.clone();
        let state = ConsoleState {
            spool: store.spool().clone(),
            store: store.clone(),
            rewrite: Arc::new(hide_outside),
            wake: wake.clone(),
            decided: Arc::new(move |held, reason| {
                seen.lock().unwrap().push((held.id, reason));
                Box::pin(async {})
            }),
            // The engine's part is tested in tests/held_page.rs: here texts pass unmasked.
            names: Arc::new(|id: &str| match id {
                "uk_upn" => "Unique Pupil Numbers".to_string(),
                other => other.to_string(),
            }),
            inspect: Arc::new(|_, _, texts| hallpass_console::Inspection {
                masked: texts.to_vec(),
                ..Default::default()
            }),
            secure_cookies,
            organisation: "Lumen Learning Trust".into(),
            trusted_proxies: vec!["192.0.2.10/32".parse().unwrap()],
        };
        Console {
            _dir: dir,
            app: router(state.clone()),
            store,
            wake,
            decided,
            state,
            dpo_token,
            relay_token,
            metrics_token,
        }
    }

    /// Holds a message (spool file + store record) and returns the held copy's id.
    async fn hold(&self, h: Held<'_>) -> String {
        let msg = new_id();
        let copy = new_id();
        let bytes = format!(
            "From: Ann Teacher <{from}>\r\nTo: {to}\r\nCc: {cc}\r\nSubject: {subject}\r\n\
             Date: Mon, 23 Nov 2026 09:14:02 +0000\r\nMessage-ID: <{msg}@lumen.sch.uk>\r\n\r\n\
             Please find the class list attached.\r\n",
            from = h.from,
            to = h.rcpt.join(", "),
            cc = h.cc,
            subject = h.subject,
        );
        self.store
            .spool()
            .write(&msg, bytes.as_bytes())
            .await
            .unwrap();
        self.store
            .accept(&NewMessage {
                id: msg.clone(),
                received_ms: h.received_ms,
                sender: h.from.into(),
                message_id: Some(format!("{msg}@lumen.sch.uk")),
                size: bytes.len() as u64,
                spool_ids: vec![msg.clone()],
                copies: vec![NewCopy {
                    id: copy.clone(),
                    kind: CopyKind::Hold,
                    spool_id: msg,
                    recipients: h.rcpt.iter().map(|r| r.to_string()).collect(),
                    rules: h.rules.iter().map(|r| r.to_string()).collect(),
                    findings: h.findings.clone(),
                }],
            })
            .await
            .unwrap();
        copy
    }

    /// A plain held message.
    async fn hold_one(&self) -> String {
        self.hold(Held::default()).await
    }

    async fn send(&self, req: Request<Body>) -> Response {
        self.app.clone().oneshot(req).await.unwrap()
    }

    /// Logs in with JSON from CLIENT; returns (cookie, csrf token).
    async fn login(&self, user: &str) -> (String, String) {
        let r = self
            .send(
                req(Method::POST, "/login")
                    .json(&json!({"username": user, "password": PASSWORD}))
                    .build(),
            )
            .await;
        assert_eq!(r.status(), StatusCode::OK, "login as {user}");
        let cookie = session_cookie(r.headers()).expect("a session cookie");
        let body = json_body(r).await;
        (cookie, body["csrf_token"].as_str().unwrap().to_string())
    }

    async fn audit(&self, action: &str) -> Vec<AuditRecord> {
        self.store
            .audit_list(&AuditFilter {
                action: Some(action.into()),
                ..AuditFilter::default()
            })
            .await
            .unwrap()
    }
}

#[derive(Clone)]
struct Held<'a> {
    from: &'a str,
    rcpt: Vec<&'a str>,
    cc: &'a str,
    subject: &'a str,
    rules: Vec<&'a str>,
    findings: Vec<FindingRecord>,
    received_ms: i64,
}

impl Default for Held<'_> {
    fn default() -> Self {
        Held {
            from: "teacher@lumen.sch.uk",
            rcpt: vec!["parent@example.com", "carer@example.org"],
            cc: "head@lumen.sch.uk",
            subject: "Class list",
            rules: vec!["personal_data_external"],
            findings: vec![
                finding("uk_upn", "attachment:class.xlsx", 28),
                finding("date_of_birth", "attachment:class.xlsx", 28),
                finding("uk_upn", "body", 1),
            ],
            received_ms: T0,
        }
    }
}

fn finding(detector: &str, location: &str, count: u32) -> FindingRecord {
    FindingRecord {
        detector: detector.into(),
        location: location.into(),
        count,
        confidence: "high".into(),
    }
}

/// A request builder that always says where the client is (as `serve` does).
struct Req {
    builder: axum::http::request::Builder,
    body: Body,
    client: SocketAddr,
}

fn req(method: Method, uri: &str) -> Req {
    Req {
        builder: Request::builder().method(method).uri(uri),
        body: Body::empty(),
        client: format!("{CLIENT}:50000").parse().unwrap(),
    }
}

impl Req {
    fn header(mut self, name: &str, value: &str) -> Req {
        self.builder = self.builder.header(name, value);
        self
    }

    fn cookie(self, cookie: &str) -> Req {
        self.header("cookie", cookie)
    }

    fn bearer(self, token: &str) -> Req {
        self.header("authorization", &format!("Bearer {token}"))
    }

    fn client_ip(mut self, ip: &str) -> Req {
        self.client = format!("{ip}:50000").parse().unwrap();
        self
    }

    fn json(mut self, v: &Value) -> Req {
        self.builder = self.builder.header("content-type", "application/json");
        self.body = Body::from(v.to_string());
        self
    }

    fn form(mut self, pairs: &[(&str, &str)]) -> Req {
        let encoded: Vec<String> = pairs
            .iter()
            .map(|(k, v)| format!("{}={}", enc(k), enc(v)))
            .collect();
        self.builder = self
            .builder
            .header("content-type", "application/x-www-form-urlencoded");
        self.body = Body::from(encoded.join("&"));
        self
    }

    fn build(self) -> Request<Body> {
        let mut r = self.builder.body(self.body).unwrap();
        r.extensions_mut().insert(ConnectInfo(self.client));
        r
    }
}

fn enc(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() {
                char::from(b).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// `hallpass_session=...` from a response's Set-Cookie, ready for a Cookie header.
fn session_cookie(h: &HeaderMap) -> Option<String> {
    h.get_all(header::SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with("hallpass_session=") && !v.contains("Max-Age=0"))
        .map(|v| v.split(';').next().unwrap().to_string())
}

async fn body_text(r: Response) -> String {
    let bytes = axum::body::to_bytes(r.into_body(), 16 << 20).await.unwrap();
    String::from_utf8(bytes.to_vec()).unwrap()
}

async fn json_body(r: Response) -> Value {
    let text = body_text(r).await;
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

fn keys(v: &Value) -> Vec<&str> {
    v.as_object().unwrap().keys().map(String::as_str).collect()
}

fn location(r: &Response) -> &str {
    r.headers()
        .get(header::LOCATION)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
}

// ---------------------------------------------------------------- login

#[tokio::test]
async fn login_gives_a_strict_http_only_session_cookie_and_is_audited() {
    let c = Console::new("login-ok").await;
    let r = c
        .send(
            req(Method::POST, "/login")
                .json(&json!({"username": "dpo1", "password": PASSWORD}))
                .build(),
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    let set = r.headers()[header::SET_COOKIE]
        .to_str()
        .unwrap()
        .to_string();
    let id = set
        .strip_prefix("hallpass_session=")
        .unwrap()
        .split(';')
        .next()
        .unwrap();
    assert_eq!(id.len(), 64, "256 random bits in hex: {set}");
    assert!(set.contains("; HttpOnly"), "{set}");
    assert!(set.contains("; SameSite=Strict"), "{set}");
    assert!(set.contains("; Path=/"), "{set}");
    assert!(!set.contains("Secure"), "not asked for: {set}");
    let body = json_body(r).await;
    assert_eq!(keys(&body), ["user", "role", "csrf_token"]);
    assert_eq!(body["user"], "dpo1");
    assert_eq!(body["role"], "dpo");

    // The cookie opens the API and the pages.
    let cookie = format!("hallpass_session={id}");
    let r = c
        .send(req(Method::GET, "/api/held").cookie(&cookie).build())
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    let r = c
        .send(req(Method::GET, "/held").cookie(&cookie).build())
        .await;
    assert_eq!(r.status(), StatusCode::OK);

    let audit = c.audit("login").await;
    assert_eq!(audit.len(), 1);
    assert_eq!(audit[0].actor.name, "dpo1");
    assert_eq!(audit[0].actor.address.as_deref(), Some(CLIENT));
}

#[tokio::test]
async fn secure_cookies_are_marked_secure() {
    let c = Console::with_cookies("login-secure", true).await;
    let r = c
        .send(
            req(Method::POST, "/login")
                .form(&[("username", "admin1"), ("password", PASSWORD)])
                .build(),
        )
        .await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&r), "/held");
    let set = r.headers()[header::SET_COOKIE].to_str().unwrap();
    assert!(set.ends_with("; Secure"), "{set}");
    assert!(set.contains("HttpOnly") && set.contains("SameSite=Strict"));
}

#[tokio::test]
async fn a_form_login_redirects_and_a_wrong_password_shows_the_form_again() {
    let c = Console::new("login-form").await;
    let r = c.send(req(Method::GET, "/login").build()).await;
    assert_eq!(r.status(), StatusCode::OK);
    let page = body_text(r).await;
    assert!(page.contains("Lumen Learning Trust"));
    assert!(page.contains(r#"action="/login""#));

    let r = c
        .send(
            req(Method::POST, "/login")
                .form(&[("username", "dpo1"), ("password", "not it")])
                .build(),
        )
        .await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert!(session_cookie(r.headers()).is_none());
    let page = body_text(r).await;
    assert!(page.contains("Wrong user name or password."));
    assert!(!page.contains("not it"), "the password is never echoed");

    let r = c
        .send(
            req(Method::POST, "/login")
                .form(&[("username", "dpo1"), ("password", PASSWORD)])
                .build(),
        )
        .await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let cookie = session_cookie(r.headers()).unwrap();
    // Logged in already: the login page sends you on.
    let r = c
        .send(req(Method::GET, "/login").cookie(&cookie).build())
        .await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&r), "/held");
}

#[tokio::test]
async fn failed_logins_are_refused_and_audited_without_what_was_typed() {
    let c = Console::new("login-bad").await;
    for (user, password) in [("dpo1", "wrong"), ("nosuchperson", PASSWORD)] {
        let r = c
            .send(
                req(Method::POST, "/login")
                    .json(&json!({"username": user, "password": password}))
                    .build(),
            )
            .await;
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
        assert!(session_cookie(r.headers()).is_none());
        let body = json_body(r).await;
        assert!(body["error"].is_string());
    }
    let failed = c.audit("login-failed").await;
    assert_eq!(failed.len(), 2);
    // Newest first: the unknown name is not written down (it may be a mistyped password).
    assert_eq!(failed[0].actor.name, "unknown");
    assert_eq!(failed[0].detail, "no such account");
    assert!(!format!("{failed:?}").contains("nosuchperson"));
    assert_eq!(failed[1].actor.name, "dpo1");
    assert_eq!(failed[1].detail, "wrong password");
    assert_eq!(failed[1].actor.address.as_deref(), Some(CLIENT));

    let r = c
        .send(
            req(Method::POST, "/login")
                .json(&json!({"username": "dpo1"}))
                .build(),
        )
        .await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn relay_and_disabled_accounts_cannot_log_in() {
    let c = Console::new("login-relay").await;
    c.store.user_set_disabled("dpo2", true).await.unwrap();
    for user in ["relay1", "dpo2"] {
        let r = c
            .send(
                req(Method::POST, "/login")
                    .json(&json!({"username": user, "password": PASSWORD}))
                    .build(),
            )
            .await;
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "{user}");
        assert!(session_cookie(r.headers()).is_none());
    }
    let failed = c.audit("login-failed").await;
    assert_eq!(failed[1].actor.name, "relay1");
    assert_eq!(
        failed[1].detail,
        "relay accounts cannot log in to the console"
    );
    assert_eq!(failed[0].actor.name, "dpo2");
    assert_eq!(failed[0].detail, "the account is disabled");
}

#[tokio::test]
async fn guesses_from_several_addresses_lock_the_account_even_against_the_right_password() {
    let c = Console::new("login-throttle-account").await;
    // Twenty guesses, five from each of four addresses (each address is stopped at five).
    for i in 0..20 {
        let r = c
            .send(
                req(Method::POST, "/login")
                    .client_ip(&format!("198.51.100.{}", i / 5))
                    .json(&json!({"username": "dpo1", "password": "guess"}))
                    .build(),
            )
            .await;
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "attempt {i}");
    }
    let r = c
        .send(
            req(Method::POST, "/login")
                .client_ip("198.51.100.77")
                .json(&json!({"username": "dpo1", "password": PASSWORD}))
                .build(),
        )
        .await;
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    let retry: i64 = r.headers()[header::RETRY_AFTER]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=900).contains(&retry), "{retry}");
    assert!(session_cookie(r.headers()).is_none());
    let body = json_body(r).await;
    assert!(body["error"].as_str().unwrap().contains("too many"));

    // Another account is not locked.
    c.login("dpo2").await;
    let locked = c.audit("login-locked").await;
    assert_eq!(locked.len(), 5, "four addresses and the account");
    assert!(locked.iter().all(|l| l.actor.name == "dpo1"));
    assert_eq!(
        locked
            .iter()
            .filter(|l| l.detail.starts_with("20 failed logins") && l.detail.contains("account"))
            .count(),
        1
    );
}

#[tokio::test]
async fn five_failures_from_one_address_lock_that_address_and_not_the_dpo() {
    let c = Console::new("login-throttle-address").await;
    // Guesses at the DPO's account and at others, all from one machine.
    for i in 0..5 {
        let user = if i % 2 == 0 {
            "dpo1".to_string()
        } else {
            format!("guess{i}")
        };
        let r = c
            .send(
                req(Method::POST, "/login")
                    .client_ip("203.0.113.5")
                    .json(&json!({"username": user, "password": "x"}))
                    .build(),
            )
            .await;
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    }
    let r = c
        .send(
            req(Method::POST, "/login")
                .client_ip("203.0.113.5")
                .form(&[("username", "dpo1"), ("password", PASSWORD)])
                .build(),
        )
        .await;
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(r.headers().contains_key(header::RETRY_AFTER));
    assert!(body_text(r).await.contains("too many failed logins"));
    // The same account from elsewhere is fine.
    c.login("dpo1").await;
    let locked = c.audit("login-locked").await;
    assert_eq!(locked.len(), 1);
    assert!(
        locked[0].detail.contains("203.0.113.5"),
        "{}",
        locked[0].detail
    );
}

#[tokio::test]
async fn logout_ends_the_session() {
    let c = Console::new("logout").await;
    let (cookie, csrf) = c.login("dpo1").await;
    // Without the CSRF token the session survives.
    let r = c
        .send(req(Method::POST, "/logout").cookie(&cookie).build())
        .await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let r = c
        .send(
            req(Method::POST, "/logout")
                .cookie(&cookie)
                .form(&[("csrf", &csrf)])
                .build(),
        )
        .await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&r), "/login");
    let cleared = r.headers()[header::SET_COOKIE].to_str().unwrap();
    assert!(cleared.contains("Max-Age=0"), "{cleared}");
    let r = c
        .send(req(Method::GET, "/api/held").cookie(&cookie).build())
        .await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(c.audit("logout").await.len(), 1);
}

#[tokio::test]
async fn a_session_stops_working_when_its_account_is_disabled_or_removed() {
    let c = Console::new("session-revoked").await;
    let (dpo, _) = c.login("dpo1").await;
    let (admin, _) = c.login("admin1").await;
    c.store.user_set_disabled("dpo1", true).await.unwrap();
    c.store.user_remove("admin1").await.unwrap();
    for cookie in [&dpo, &admin] {
        let r = c
            .send(req(Method::GET, "/api/held").cookie(cookie).build())
            .await;
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    }
    // Nor does the session come back with the account.
    c.store.user_set_disabled("dpo1", false).await.unwrap();
    let r = c
        .send(req(Method::GET, "/api/held").cookie(&dpo).build())
        .await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
}

// ---------------------------------------------------------------- tokens and CSRF

#[tokio::test]
async fn a_bearer_token_works_without_csrf_and_a_bad_one_does_not() {
    let c = Console::new("bearer").await;
    let id = c.hold_one().await;
    let r = c
        .send(req(Method::GET, "/api/held").bearer(&c.dpo_token).build())
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    let r = c
        .send(
            req(Method::POST, &format!("/api/held/{id}/release"))
                .bearer(&c.dpo_token)
                .build(),
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);

    for auth in [
        "Bearer hp_0000",
        "Bearer ",
        "Basic ZHBvMTpwYXNz",
        &format!("Token {}", c.dpo_token),
    ] {
        let r = c
            .send(
                req(Method::GET, "/api/held")
                    .header("authorization", auth)
                    .build(),
            )
            .await;
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "{auth}");
        assert!(r.headers().contains_key(header::WWW_AUTHENTICATE));
    }
    // A new token replaces the old one.
    c.store.user_new_token("dpo1").await.unwrap();
    let r = c
        .send(req(Method::GET, "/api/held").bearer(&c.dpo_token).build())
        .await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn posts_with_the_cookie_need_the_csrf_token() {
    let c = Console::new("csrf").await;
    let (cookie, csrf) = c.login("dpo1").await;
    let id = c.hold_one().await;
    let url = format!("/api/held/{id}/release");

    let r = c
        .send(req(Method::POST, &url).cookie(&cookie).build())
        .await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    assert!(
        json_body(r).await["error"]
            .as_str()
            .unwrap()
            .contains("CSRF")
    );
    let r = c
        .send(
            req(Method::POST, &url)
                .cookie(&cookie)
                .header("x-csrf-token", &"0".repeat(64))
                .build(),
        )
        .await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let r = c
        .send(
            req(Method::POST, &url)
                .cookie(&cookie)
                .form(&[("csrf", "wrong")])
                .build(),
        )
        .await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    // Another session's token is no good either.
    let (_, other_csrf) = c.login("dpo2").await;
    let r = c
        .send(
            req(Method::POST, &url)
                .cookie(&cookie)
                .header("x-csrf-token", &other_csrf)
                .build(),
        )
        .await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let h = c.store.held_get(&id).await.unwrap().unwrap();
    assert_eq!(h.status, HeldStatus::Held, "nothing was done");

    let r = c
        .send(
            req(Method::POST, &url)
                .cookie(&cookie)
                .header("x-csrf-token", &csrf)
                .build(),
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);
}

// ---------------------------------------------------------------- every route, every role

#[tokio::test]
async fn every_route_as_dpo_admin_relay_metrics_and_nobody() {
    let c = Console::new("matrix").await;
    let (dpo_cookie, dpo_csrf) = c.login("dpo1").await;
    let (admin_cookie, admin_csrf) = c.login("admin1").await;

    #[derive(Clone, Copy, Debug)]
    enum Who {
        Dpo,
        Admin,
        DpoToken,
        Relay,
        Metrics,
        Nobody,
    }
    let ok = |who: Who| matches!(who, Who::Dpo | Who::Admin | Who::DpoToken);
    for who in [
        Who::Dpo,
        Who::Admin,
        Who::DpoToken,
        Who::Relay,
        Who::Metrics,
        Who::Nobody,
    ] {
        let id = c.hold_one().await;
        let with = |r: Req| -> Req {
            match who {
                Who::Dpo => r.cookie(&dpo_cookie).header("x-csrf-token", &dpo_csrf),
                Who::Admin => r.cookie(&admin_cookie).header("x-csrf-token", &admin_csrf),
                Who::DpoToken => r.bearer(&c.dpo_token),
                Who::Relay => r.bearer(&c.relay_token),
                Who::Metrics => r.bearer(&c.metrics_token),
                Who::Nobody => r,
            }
        };
        let page = |who: Who| match who {
            Who::Dpo | Who::Admin | Who::DpoToken => StatusCode::OK,
            Who::Relay | Who::Metrics => StatusCode::FORBIDDEN,
            Who::Nobody => StatusCode::SEE_OTHER,
        };
        let api = |who: Who| match who {
            Who::Dpo | Who::Admin | Who::DpoToken => StatusCode::OK,
            Who::Relay | Who::Metrics => StatusCode::FORBIDDEN,
            Who::Nobody => StatusCode::UNAUTHORIZED,
        };
        let admin_page = |who: Who| match who {
            Who::Admin => StatusCode::OK,
            Who::Dpo | Who::DpoToken | Who::Relay | Who::Metrics => StatusCode::FORBIDDEN,
            Who::Nobody => StatusCode::SEE_OTHER,
        };
        let admin_api = |who: Who| match who {
            Who::Admin => StatusCode::OK,
            Who::Dpo | Who::DpoToken | Who::Relay | Who::Metrics => StatusCode::FORBIDDEN,
            Who::Nobody => StatusCode::UNAUTHORIZED,
        };
        let routes: Vec<(Method, String, StatusCode)> = vec![
            (Method::GET, "/".into(), StatusCode::SEE_OTHER),
            (Method::GET, "/static/style.css".into(), StatusCode::OK),
            (
                Method::GET,
                "/login".into(),
                if ok(who) {
                    StatusCode::SEE_OTHER
                } else {
                    StatusCode::OK
                },
            ),
            (Method::GET, "/held".into(), page(who)),
            (Method::GET, format!("/held/{id}"), page(who)),
            (Method::GET, "/audit".into(), page(who)),
            (Method::GET, "/dashboard".into(), page(who)),
            (Method::GET, "/audit.csv".into(), page(who)),
            (Method::GET, "/api/held".into(), api(who)),
            (Method::GET, format!("/api/held/{id}"), api(who)),
            (Method::GET, format!("/held/{id}/eml"), page(who)),
            (Method::GET, format!("/api/held/{id}/eml"), api(who)),
            (Method::GET, "/api/audit".into(), api(who)),
            (Method::POST, format!("/api/held/{id}/reject"), api(who)),
            // Accounts: admins only.
            (Method::GET, "/users".into(), admin_page(who)),
            (Method::GET, "/api/users".into(), admin_api(who)),
            (
                Method::POST,
                "/api/users/dpo2/password".into(),
                admin_api(who),
            ),
        ];
        for (method, uri, want) in routes {
            let mut r = with(req(method.clone(), &uri));
            if uri.ends_with("/password") {
                r = r.json(&json!({"password": PASSWORD}));
            }
            let r = c.send(r.build()).await;
            assert_eq!(r.status(), want, "{who:?} {method} {uri}");
            if want == StatusCode::SEE_OTHER && uri != "/" && uri != "/login" {
                assert_eq!(location(&r), "/login", "{who:?} {uri}");
            }
            if uri.starts_with("/api/") && want != StatusCode::OK {
                assert!(json_body(r).await["error"].is_string(), "{who:?} {uri}");
            }
        }
        // The release routes on fresh messages (the reject above decided `id` when allowed).
        for action in ["release", "false-positive"] {
            let id = c.hold_one().await;
            let uri = format!("/api/held/{id}/{action}");
            let r = c.send(with(req(Method::POST, &uri)).build()).await;
            assert_eq!(r.status(), api(who), "{who:?} POST {uri}");
            let status = c.store.held_get(&id).await.unwrap().unwrap().status;
            let want = if ok(who) {
                HeldStatus::Released
            } else {
                HeldStatus::Held
            };
            assert_eq!(status, want, "{who:?} POST {uri}");
        }
        // Logout: a session thing.
        let r = c.send(with(req(Method::POST, "/logout")).build()).await;
        let want = match who {
            Who::Dpo | Who::Admin => StatusCode::NO_CONTENT,
            Who::DpoToken => StatusCode::NO_CONTENT,
            Who::Relay | Who::Metrics => StatusCode::FORBIDDEN,
            Who::Nobody => StatusCode::UNAUTHORIZED,
        };
        assert_eq!(r.status(), want, "{who:?} POST /logout");
        if let Who::Dpo | Who::Admin = who {
            // Logged out now: the same cookie is nobody.
            let r = c.send(with(req(Method::GET, "/api/held")).build()).await;
            assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
        }
    }
    // An unknown route is a 404 for everyone, in the API's or the pages' form.
    let r = c.send(req(Method::GET, "/api/nothing").build()).await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    assert!(json_body(r).await["error"].is_string());
    let r = c.send(req(Method::GET, "/nothing").build()).await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
}

// ---------------------------------------------------------------- JSON shapes

#[tokio::test]
async fn held_list_is_the_contract_shape_newest_first_with_filters() {
    let c = Console::new("list").await;
    let older = c
        .hold(Held {
            received_ms: T0 - 86_400_000,
            from: "bursar@lumen.sch.uk",
            rules: vec!["misdirected_domain"],
            findings: vec![],
            ..Held::default()
        })
        .await;
    let newer = c.hold_one().await;
    let decided = c
        .hold(Held {
            received_ms: T0 + 1000,
            ..Held::default()
        })
        .await;
    c.store
        .reject(
            &decided,
            &hallpass_store::Actor {
                name: "cli:root".into(),
                address: None,
            },
            "",
            T0 + 2000,
        )
        .await
        .unwrap();

    let get = |uri: &str| c.send(req(Method::GET, uri).bearer(&c.dpo_token).build());
    let r = get("/api/held").await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(
        r.headers()[header::CONTENT_TYPE].to_str().unwrap(),
        "application/json"
    );
    let list = json_body(r).await;
    let list = list.as_array().unwrap();
    assert_eq!(list.len(), 2, "held ones only by default");
    assert_eq!(list[0]["id"], newer.as_str());
    assert_eq!(list[1]["id"], older.as_str());
    assert_eq!(
        keys(&list[0]),
        [
            "id",
            "received",
            "from",
            "rcpt",
            "message_id",
            "rules",
            "findings",
            "status"
        ]
    );
    assert_eq!(list[0]["received"], "2026-11-23T09:14:02Z");
    assert_eq!(list[0]["from"], "teacher@lumen.sch.uk");
    assert_eq!(
        list[0]["rcpt"],
        json!(["parent@example.com", "carer@example.org"])
    );
    assert!(
        list[0]["message_id"]
            .as_str()
            .unwrap()
            .ends_with("@lumen.sch.uk")
    );
    assert_eq!(list[0]["rules"], json!(["personal_data_external"]));
    assert_eq!(list[0]["status"], "held");
    let f = &list[0]["findings"][0];
    assert_eq!(keys(f), ["detector", "where", "count", "confidence"]);
    assert_eq!(
        *f,
        json!({"detector":"uk_upn","where":"attachment:class.xlsx","count":28,"confidence":"high"})
    );

    let ids = |v: Value| -> Vec<String> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|h| h["id"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(
        ids(json_body(get("/api/held?rule=misdirected_domain").await).await),
        [older.as_str()]
    );
    assert_eq!(
        ids(json_body(get("/api/held?sender=BURSAR@lumen.sch.uk").await).await),
        [older.as_str()]
    );
    assert_eq!(
        ids(json_body(get("/api/held?since=2026-11-23").await).await),
        [newer.as_str()]
    );
    assert_eq!(
        ids(json_body(get("/api/held?since=2026-11-23T09:14:03Z").await).await),
        Vec::<String>::new()
    );
    assert_eq!(
        ids(json_body(get("/api/held?since=2026-11-23T10:14:02%2B01:00").await).await),
        [newer.as_str()]
    );
    assert_eq!(
        ids(json_body(get("/api/held?rule=&sender=&since=").await).await),
        [newer.clone(), older.clone()]
    );
    assert_eq!(
        ids(json_body(get("/api/held?status=all").await).await),
        [decided.clone(), newer.clone(), older.clone()]
    );
    assert_eq!(
        ids(json_body(get("/api/held?detector=date_of_birth").await).await),
        [newer.as_str()]
    );
    for bad in [
        "/api/held?since=yesterday",
        "/api/held?status=lost",
        "/api/held?limit=-1",
    ] {
        let r = get(bad).await;
        assert_eq!(r.status(), StatusCode::BAD_REQUEST, "{bad}");
        assert!(json_body(r).await["error"].is_string());
    }
}

#[tokio::test]
async fn one_held_message_has_envelope_headers_findings_and_decision() {
    let c = Console::new("detail").await;
    let id = c
        .hold(Held {
            subject: "=?utf-8?q?Caf=C3=A9_trip_consent?=",
            ..Held::default()
        })
        .await;
    let r = c
        .send(
            req(Method::GET, &format!("/api/held/{id}"))
                .bearer(&c.dpo_token)
                .build(),
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    let m = json_body(r).await;
    assert_eq!(
        keys(&m),
        [
            "id",
            "received",
            "from",
            "rcpt",
            "message_id",
            "rules",
            "findings",
            "status",
            "headers",
            "decided_by",
            "decided_at",
            "reason",
            "size",
            // What the engine made of the content now (tests/held_page.rs).
            "matches",
            "matches_more",
            "attachments",
            "note"
        ]
    );
    assert_eq!(
        m["headers"],
        json!([
            {"name": "From", "value": "Ann Teacher <teacher@lumen.sch.uk>"},
            {"name": "To", "value": "parent@example.com, carer@example.org"},
            {"name": "Cc", "value": "head@lumen.sch.uk"},
            {"name": "Subject", "value": "Café trip consent"},
            {"name": "Date", "value": "2026-11-23T09:14:02Z"},
        ])
    );
    assert_eq!(m["findings"].as_array().unwrap().len(), 3);
    assert_eq!(m["findings"][2]["where"], "body");
    assert_eq!(m["decided_by"], Value::Null);
    assert_eq!(m["decided_at"], Value::Null);
    assert!(m["size"].as_u64().unwrap() > 100);

    let r = c
        .send(
            req(Method::GET, "/api/held/01JNOSUCHMESSAGE0000000000")
                .bearer(&c.dpo_token)
                .build(),
        )
        .await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    assert_eq!(json_body(r).await, json!({"error": "no such held message"}));
    let r = c
        .send(
            req(Method::GET, "/api/held/..%2F..%2Fetc")
                .bearer(&c.dpo_token)
                .build(),
        )
        .await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
}

// ---------------------------------------------------------------- decisions

#[tokio::test]
async fn release_queues_the_recipients_wakes_the_worker_and_is_audited() {
    let c = Console::new("release").await;
    let (cookie, csrf) = c.login("dpo1").await;
    let id = c.hold_one().await;
    let r = c
        .send(
            req(Method::POST, &format!("/api/held/{id}/release"))
                .cookie(&cookie)
                .header("x-csrf-token", &csrf)
                .build(),
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    let body = json_body(r).await;
    assert_eq!(body["status"], "released");
    assert_eq!(body["decided_by"], "dpo1");
    assert_eq!(body["rewritten"], false);
    assert!(body["decided_at"].is_string());

    let h = c.store.held_get(&id).await.unwrap().unwrap();
    assert_eq!(h.status, HeldStatus::Released);
    assert_eq!(h.decided_by.as_deref(), Some("dpo1"));
    // The worker was rung (a stored permit: this returns at once; the timeout only guards
    // against hanging if it was not).
    tokio::time::timeout(Duration::from_secs(30), c.wake.notified())
        .await
        .expect("the delivery worker was woken");
    let batches = c
        .store
        .claim_due("test-worker", i64::MAX / 2, 60_000, 10)
        .await
        .unwrap();
    assert_eq!(batches.len(), 1);
    assert_eq!(batches[0].copy_id, id);
    assert_eq!(batches[0].spool_id, h.spool_id, "the bytes as held");
    let mut rcpts: Vec<&str> = batches[0]
        .recipients
        .iter()
        .map(|(_, a)| a.as_str())
        .collect();
    rcpts.sort();
    assert_eq!(rcpts, ["carer@example.org", "parent@example.com"]);

    let audit = c.audit("release").await;
    assert_eq!(audit.len(), 1);
    assert_eq!(audit[0].target.as_deref(), Some(id.as_str()));
    assert_eq!(audit[0].actor.name, "dpo1");
    assert_eq!(audit[0].actor.address.as_deref(), Some(CLIENT));
}

#[tokio::test]
async fn release_with_bcc_sends_a_rewritten_copy_without_outside_addresses() {
    let c = Console::new("release-bcc").await;
    let id = c
        .hold(Held {
            rules: vec!["cc_exposure"],
            cc: "gran@example.org, uncle@example.com",
            ..Held::default()
        })
        .await;
    let r = c
        .send(
            req(Method::POST, &format!("/api/held/{id}/release"))
                .bearer(&c.dpo_token)
                .json(&json!({"rewrite": "bcc"}))
                .build(),
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    let body = json_body(r).await;
    assert_eq!(body["rewritten"], true);
    let held = c.store.held_get(&id).await.unwrap().unwrap();
    let batches = c
        .store
        .claim_due("test-worker", i64::MAX / 2, 60_000, 10)
        .await
        .unwrap();
    assert_eq!(batches.len(), 1);
    assert_ne!(
        batches[0].spool_id, held.spool_id,
        "a rewritten file is sent"
    );
    let sent =
        String::from_utf8(c.store.spool().read(&batches[0].spool_id).await.unwrap()).unwrap();
    let head = sent.split("\r\n\r\n").next().unwrap();
    for line in head.lines() {
        let lower = line.to_ascii_lowercase();
        if lower.starts_with("to:") || lower.starts_with("cc:") {
            assert!(
                !lower.contains("@example.com") && !lower.contains("@example.org"),
                "outside address left in {line:?}"
            );
        }
    }
    assert!(head.contains("To: undisclosed-recipients:;"));
    // The envelope still has every recipient; the held copy is unchanged for the record.
    assert_eq!(batches[0].recipients.len(), 2);
    let original = String::from_utf8(c.store.spool().read(&held.spool_id).await.unwrap()).unwrap();
    assert!(original.contains("gran@example.org"));
    let audit = c.audit("release").await;
    assert!(audit[0].detail.contains("rewritten"), "{}", audit[0].detail);

    // Nothing to move: released as it is.
    let id = c
        .hold(Held {
            rcpt: vec!["head@lumen.sch.uk"],
            cc: "deputy@lumen.sch.uk",
            ..Held::default()
        })
        .await;
    let r = c
        .send(
            req(Method::POST, &format!("/api/held/{id}/release"))
                .bearer(&c.dpo_token)
                .json(&json!({"rewrite": "bcc"}))
                .build(),
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(json_body(r).await["rewritten"], false);

    let id = c.hold_one().await;
    let r = c
        .send(
            req(Method::POST, &format!("/api/held/{id}/release"))
                .bearer(&c.dpo_token)
                .json(&json!({"rewrite": "cc"}))
                .build(),
        )
        .await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert_eq!(
        c.store.held_get(&id).await.unwrap().unwrap().status,
        HeldStatus::Held
    );
}

#[tokio::test]
async fn reject_keeps_the_reason_and_never_queues() {
    let c = Console::new("reject").await;
    let (cookie, csrf) = c.login("admin1").await;
    let id = c.hold_one().await;
    let r = c
        .send(
            req(Method::POST, &format!("/api/held/{id}/reject"))
                .cookie(&cookie)
                .header("x-csrf-token", &csrf)
                .json(&json!({"reason": "Wrong parent: send it to the right family"}))
                .build(),
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    let body = json_body(r).await;
    assert_eq!(body["status"], "rejected");
    assert_eq!(body["reason"], "Wrong parent: send it to the right family");
    let h = c.store.held_get(&id).await.unwrap().unwrap();
    assert_eq!(h.status, HeldStatus::Rejected);
    assert_eq!(h.decided_by.as_deref(), Some("admin1"));
    assert!(
        c.store
            .claim_due("w", i64::MAX / 2, 60_000, 10)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        *c.decided.lock().unwrap(),
        [(
            id.clone(),
            Some("Wrong parent: send it to the right family".to_string())
        )],
        "the relay is told, to notify the sender"
    );
    let audit = c.audit("reject").await;
    assert_eq!(audit.len(), 1);
    assert_eq!(audit[0].actor.name, "admin1");
    assert_eq!(audit[0].actor.address.as_deref(), Some(CLIENT));
    assert!(audit[0].detail.contains("Wrong parent"));

    // Decided already: 409, saying by whom and when.
    let r = c
        .send(
            req(Method::POST, &format!("/api/held/{id}/release"))
                .bearer(&c.dpo_token)
                .build(),
        )
        .await;
    assert_eq!(r.status(), StatusCode::CONFLICT);
    let body = json_body(r).await;
    let error = body["error"].as_str().unwrap();
    assert!(
        error.starts_with("already rejected by admin1 at 20"),
        "{error}"
    );
    assert_eq!(body["decided_by"], "admin1");

    let r = c
        .send(
            req(Method::POST, "/api/held/01JNOSUCHMESSAGE0000000000/reject")
                .bearer(&c.dpo_token)
                .json(&json!({"reason": "x"}))
                .build(),
        )
        .await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    let r = c
        .send(
            req(
                Method::POST,
                &format!("/api/held/{}/reject", c.hold_one().await),
            )
            .bearer(&c.dpo_token)
            .header("content-type", "text/plain")
            .build(),
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK, "an empty body is no options");
    let r = c
        .send(
            Request::builder()
                .method(Method::POST)
                .uri(format!("/api/held/{}/reject", c.hold_one().await))
                .header("authorization", format!("Bearer {}", c.dpo_token))
                .header("content-type", "text/plain")
                .body(Body::from("reason"))
                .unwrap(),
        )
        .await;
    assert_eq!(r.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let r = c
        .send(
            req(
                Method::POST,
                &format!("/api/held/{}/reject", c.hold_one().await),
            )
            .bearer(&c.dpo_token)
            .header("content-type", "application/json")
            .build(),
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);
}

#[tokio::test]
async fn false_positive_releases_and_counts_each_detector() {
    let c = Console::new("false-positive").await;
    let id = c.hold_one().await;
    let r = c
        .send(
            req(Method::POST, &format!("/api/held/{id}/false-positive"))
                .bearer(&c.dpo_token)
                .build(),
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(json_body(r).await["status"], "released");
    let mut counts = c.store.false_positive_counts().await.unwrap();
    counts.sort();
    assert_eq!(
        counts,
        [("date_of_birth".to_string(), 1), ("uk_upn".to_string(), 1)]
    );
    assert_eq!(
        c.store
            .claim_due("w", i64::MAX / 2, 60_000, 10)
            .await
            .unwrap()
            .len(),
        1
    );
    let fp = c.audit("false-positive").await;
    assert_eq!(fp.len(), 1);
    assert_eq!(fp[0].actor.name, "dpo1");
    assert_eq!(fp[0].actor.address.as_deref(), Some(CLIENT));
    assert_eq!(c.audit("release").await.len(), 1);
}

#[tokio::test]
async fn two_releases_at_once_deliver_once_and_the_second_hears_who() {
    let c = Console::new("race").await;
    let (dpo, dpo_csrf) = c.login("dpo1").await;
    let (admin, admin_csrf) = c.login("admin1").await;
    for _ in 0..3 {
        let id = c.hold_one().await;
        let url = format!("/api/held/{id}/release");
        let a = c.send(
            req(Method::POST, &url)
                .cookie(&dpo)
                .header("x-csrf-token", &dpo_csrf)
                .build(),
        );
        let b = c.send(
            req(Method::POST, &url)
                .cookie(&admin)
                .header("x-csrf-token", &admin_csrf)
                .json(&json!({"rewrite": "bcc"}))
                .build(),
        );
        let (a, b) = tokio::join!(a, b);
        let mut statuses = [a.status(), b.status()];
        statuses.sort();
        assert_eq!(statuses, [StatusCode::OK, StatusCode::CONFLICT]);
        let (winner, loser) = if a.status() == StatusCode::OK {
            (a, b)
        } else {
            (b, a)
        };
        let winner = json_body(winner).await["decided_by"]
            .as_str()
            .unwrap()
            .to_string();
        let error = json_body(loser).await["error"]
            .as_str()
            .unwrap()
            .to_string();
        assert!(
            error.starts_with(&format!("already released by {winner} at ")),
            "{error}"
        );
        let batches = c
            .store
            .claim_due("w", i64::MAX / 2, 60_000, 10)
            .await
            .unwrap();
        assert_eq!(batches.len(), 1, "delivered once");
        assert_eq!(batches[0].recipients.len(), 2);
    }
    // Three releases, three audit entries: the refused ones wrote nothing.
    assert_eq!(c.audit("release").await.len(), 3);
    // And the relay was told three times, once per message actually released.
    let told = c.decided.lock().unwrap().clone();
    assert_eq!(told.len(), 3, "{told:?}");
    assert!(told.iter().all(|(_, reason)| reason.is_none()));
    // No rewritten file was left behind by a losing release with Bcc.
    let unknown = c
        .store
        .unknown_spool_ids(
            &c.store
                .spool()
                .ids_older_than(Duration::ZERO)
                .await
                .unwrap(),
        )
        .await
        .unwrap();
    assert!(unknown.is_empty(), "orphan spool files: {unknown:?}");
}

// ---------------------------------------------------------------- pages

#[tokio::test]
async fn page_forms_post_with_csrf_and_redirect_back_with_the_outcome() {
    let c = Console::new("forms").await;
    let (cookie, csrf) = c.login("dpo1").await;
    let id = c.hold_one().await;
    let page = c
        .send(
            req(Method::GET, &format!("/held/{id}"))
                .cookie(&cookie)
                .build(),
        )
        .await;
    assert_eq!(page.status(), StatusCode::OK);
    let html = body_text(page).await;
    assert!(html.contains(&format!(r#"action="/api/held/{id}/release""#)));
    assert!(html.contains(&format!(r#"action="/api/held/{id}/reject""#)));
    assert!(html.contains(&format!(r#"action="/api/held/{id}/false-positive""#)));
    assert!(html.contains(&format!(r#"name="csrf" value="{csrf}""#)));
    assert!(html.contains(r#"name="rewrite" value="bcc""#));

    let r = c
        .send(
            req(Method::POST, &format!("/api/held/{id}/reject"))
                .cookie(&cookie)
                .form(&[("csrf", &csrf), ("reason", "Send it encrypted")])
                .build(),
        )
        .await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&r), format!("/held/{id}"));
    let html = body_text(
        c.send(
            req(Method::GET, &format!("/held/{id}"))
                .cookie(&cookie)
                .build(),
        )
        .await,
    )
    .await;
    assert!(html.contains("Rejected: it will not be delivered."));
    assert!(html.contains("Send it encrypted"));
    assert!(!html.contains(r#"/release""#), "no decisions left to make");
    // The message is shown once.
    let html = body_text(
        c.send(
            req(Method::GET, &format!("/held/{id}"))
                .cookie(&cookie)
                .build(),
        )
        .await,
    )
    .await;
    assert!(!html.contains("Rejected: it will not be delivered."));

    // Too late: back to the page, told why.
    let r = c
        .send(
            req(Method::POST, &format!("/api/held/{id}/release"))
                .cookie(&cookie)
                .form(&[("csrf", &csrf), ("rewrite", "bcc")])
                .build(),
        )
        .await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let html = body_text(
        c.send(
            req(Method::GET, &format!("/held/{id}"))
                .cookie(&cookie)
                .build(),
        )
        .await,
    )
    .await;
    assert!(html.contains("Already rejected by dpo1 at "), "{html}");

    // A form without the token is refused with a page.
    let other = c.hold_one().await;
    let r = c
        .send(
            req(Method::POST, &format!("/api/held/{other}/release"))
                .cookie(&cookie)
                .form(&[("rewrite", "")])
                .build(),
        )
        .await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    assert!(body_text(r).await.contains("CSRF"));
}

#[tokio::test]
async fn held_page_lists_newest_first_with_counts_filters_and_pages() {
    let c = Console::new("held-page").await;
    let (cookie, _) = c.login("dpo1").await;
    for i in 0..51 {
        c.hold(Held {
            received_ms: T0 + i * 1000,
            from: if i == 50 {
                "newest@lumen.sch.uk"
            } else {
                "teacher@lumen.sch.uk"
            },
            rules: if i % 2 == 0 {
                vec!["personal_data_external"]
            } else {
                vec!["bulk_send", "personal_data_external"]
            },
            ..Held::default()
        })
        .await;
    }
    let get = |uri: &str| c.send(req(Method::GET, uri).cookie(&cookie).build());
    let html = body_text(get("/held").await).await;
    assert!(html.contains("51 waiting for a decision"));
    // Newest first, 50 to a page, a link to the next.
    let first_row = html.find("<tbody>").unwrap();
    assert!(html[first_row..].find("newest@lumen.sch.uk").is_some());
    assert!(html.contains("2026-11-23 09:14:52 UTC"));
    assert!(
        !html.contains("2026-11-23 09:14:02 UTC"),
        "the oldest is on page 2"
    );
    assert!(
        html.contains(r#"href="/held?status=held&#38;page=2""#),
        "{html}"
    );
    // Counts per rule; each row's detectors summed over locations.
    assert!(html.contains(r#"personal_data_external</a> <span class="n">51</span>"#));
    assert!(html.contains(r#"bulk_send</a> <span class="n">25</span>"#));
    // Shown by their plain names, the id on hover.
    assert!(
        html.contains(r#"<span class="tag" title="uk_upn">Unique Pupil Numbers × 29</span>"#),
        "{html}"
    );
    assert!(html.contains("date_of_birth × 28"));

    let html = body_text(get("/held?page=2").await).await;
    assert!(html.contains("2026-11-23 09:14:02 UTC"));
    assert!(html.contains("← Newer"));

    let html = body_text(get("/held?rule=bulk_send").await).await;
    assert_eq!(html.matches("<tr>").count() - 1, 25, "header row + 25");
    let html = body_text(get("/held?sender=newest@lumen.sch.uk").await).await;
    assert_eq!(html.matches("<tr>").count() - 1, 1);
    let html = body_text(get("/held?status=released").await).await;
    assert!(html.contains("Nothing matches."));
    let r = get("/held?since=soon").await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn message_content_is_escaped_in_pages() {
    let c = Console::new("escape").await;
    let (cookie, csrf) = c.login("dpo1").await;
    let id = c
        .hold(Held {
            subject: "<script>alert('x')</script> & \"quotes\"",
            from: "teacher@lumen.sch.uk",
            ..Held::default()
        })
        .await;
    let html = body_text(
        c.send(
            req(Method::GET, &format!("/held/{id}"))
                .cookie(&cookie)
                .build(),
        )
        .await,
    )
    .await;
    assert!(!html.contains("<script>"), "{html}");
    assert!(
        html.contains("&#60;script&#62;alert(&#39;x&#39;)&#60;/script&#62;"),
        "{html}"
    );
    // A reason typed by a DPO is escaped too, on the message and in the audit trail.
    let r = c
        .send(
            req(Method::POST, &format!("/api/held/{id}/reject"))
                .cookie(&cookie)
                .form(&[("csrf", &csrf), ("reason", "<img src=x onerror=alert(1)>")])
                .build(),
        )
        .await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    for page in [format!("/held/{id}"), "/audit".to_string()] {
        let html = body_text(
            c.send(req(Method::GET, &page).cookie(&cookie).build())
                .await,
        )
        .await;
        assert!(!html.contains("<img"), "{page}: {html}");
        assert!(
            html.contains("&#60;img src=x onerror=alert(1)&#62;"),
            "{page}"
        );
    }
}

#[tokio::test]
async fn audit_page_filters_and_exports_csv() {
    let c = Console::new("audit-page").await;
    let (cookie, _) = c.login("dpo1").await;
    let released = c.hold_one().await;
    let rejected = c.hold_one().await;
    let post = |uri: String, body: Value| {
        c.send(
            req(Method::POST, &uri)
                .bearer(&c.dpo_token)
                .json(&body)
                .build(),
        )
    };
    assert_eq!(
        post(format!("/api/held/{released}/release"), json!({}))
            .await
            .status(),
        StatusCode::OK
    );
    assert_eq!(
        post(
            format!("/api/held/{rejected}/reject"),
            json!({"reason": "=cmd|' /C calc'!A0, \"quoted\""})
        )
        .await
        .status(),
        StatusCode::OK
    );

    let r = c
        .send(req(Method::GET, "/api/audit").bearer(&c.dpo_token).build())
        .await;
    let list = json_body(r).await;
    let list = list.as_array().unwrap();
    assert_eq!(list.len(), 3, "login, release, reject");
    assert_eq!(
        keys(&list[0]),
        [
            "seq", "at", "actor", "address", "action", "target", "detail"
        ]
    );
    assert_eq!(list[0]["action"], "reject");
    assert_eq!(list[1]["action"], "release");
    assert_eq!(list[2]["action"], "login");
    let r = c
        .send(
            req(Method::GET, &format!("/api/audit?target={released}"))
                .bearer(&c.dpo_token)
                .build(),
        )
        .await;
    assert_eq!(json_body(r).await.as_array().unwrap().len(), 1);

    let html = body_text(
        c.send(
            req(Method::GET, "/audit?action=release")
                .cookie(&cookie)
                .build(),
        )
        .await,
    )
    .await;
    assert!(html.contains(&format!(r#"href="/held/{released}""#)));
    assert!(!html.contains(&rejected));
    assert!(html.contains(r#"href="/audit.csv?action=release""#));

    let r = c
        .send(req(Method::GET, "/audit.csv").cookie(&cookie).build())
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(
        r.headers()[header::CONTENT_TYPE].to_str().unwrap(),
        "text/csv; charset=utf-8"
    );
    assert!(
        r.headers()[header::CONTENT_DISPOSITION]
            .to_str()
            .unwrap()
            .starts_with("attachment")
    );
    let csv = body_text(r).await;
    let lines: Vec<&str> = csv.split("\r\n").filter(|l| !l.is_empty()).collect();
    assert_eq!(lines[0], "seq,at,actor,address,action,target,detail");
    assert_eq!(lines.len(), 4);
    assert!(
        lines[1].contains(&format!(",dpo1,{CLIENT},reject,")),
        "{}",
        lines[1]
    );
    assert!(
        lines[1].ends_with(r#","rejected: =cmd|' /C calc'!A0, ""quoted""""#),
        "{}",
        lines[1]
    );
    assert!(
        lines[3].contains(&format!(",dpo1,{CLIENT},login,")),
        "{}",
        lines[3]
    );
    let csv = body_text(
        c.send(
            req(Method::GET, "/audit.csv?action=login")
                .cookie(&cookie)
                .build(),
        )
        .await,
    )
    .await;
    assert_eq!(csv.split("\r\n").filter(|l| !l.is_empty()).count(), 2);
}

// ---------------------------------------------------------------- users

/// Logs in with a given password; returns the status.
async fn try_login(c: &Console, user: &str, password: &str) -> StatusCode {
    c.send(
        req(Method::POST, "/login")
            .json(&json!({"username": user, "password": password}))
            .build(),
    )
    .await
    .status()
}

/// The one-time message on the users page after a form post.
async fn users_page(c: &Console, cookie: &str) -> String {
    let r = c
        .send(req(Method::GET, "/users").cookie(cookie).build())
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    body_text(r).await
}

#[tokio::test]
async fn users_page_lists_accounts_and_marks_relay_ones() {
    let c = Console::new("users-page").await;
    c.store.user_set_disabled("dpo2", true).await.unwrap();
    let (cookie, csrf) = c.login("admin1").await;
    let page = users_page(&c, &cookie).await;
    for name in ["dpo1", "dpo2", "admin1", "relay1", "metrics1"] {
        assert!(page.contains(&format!("<td>{name}")), "{name} listed");
    }
    // The relay and metrics accounts are marked; dpo2 is disabled (and can be enabled), the rest
    // active.
    assert_eq!(page.matches("cannot log in to the console").count(), 2);
    assert_eq!(page.matches(">disabled</span>").count(), 1);
    assert_eq!(page.matches(">active</span>").count(), 4);
    assert!(page.contains("action=\"/api/users/dpo2/enable\""));
    assert!(page.contains("action=\"/api/users/dpo1/disable\""));
    // No disable button for oneself.
    assert!(!page.contains("action=\"/api/users/admin1/disable\""));
    // Every form carries the CSRF token.
    let forms = page.matches("<form method=\"post\"").count();
    let tokens = page
        .matches(&format!("name=\"csrf\" value=\"{csrf}\""))
        .count();
    assert!(forms >= 9, "{forms} forms");
    assert_eq!(forms, tokens);
    // The navigation shows Users to admins only.
    assert!(page.contains("href=\"/users\""));
    let (dpo_cookie, _) = c.login("dpo1").await;
    let r = c
        .send(req(Method::GET, "/held").cookie(&dpo_cookie).build())
        .await;
    assert!(!body_text(r).await.contains("href=\"/users\""));
}

#[tokio::test]
async fn an_admin_adds_disables_enables_and_resets_users_through_the_forms() {
    let c = Console::new("users-forms").await;
    let (cookie, csrf) = c.login("admin1").await;
    let post = |uri: &str, pairs: &[(&str, &str)]| {
        let mut all = vec![("csrf", csrf.as_str())];
        all.extend_from_slice(pairs);
        req(Method::POST, uri).cookie(&cookie).form(&all).build()
    };
    let new_password = "a long enough passphrase";

    // Add.
    let r = c
        .send(post(
            "/api/users",
            &[
                ("name", "dpo3"),
                ("role", "dpo"),
                ("password", new_password),
            ],
        ))
        .await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&r), "/users");
    assert!(users_page(&c, &cookie).await.contains("Added dpo3 (dpo)."));
    assert_eq!(try_login(&c, "dpo3", new_password).await, StatusCode::OK);
    let a = c.audit("user-add:dpo").await;
    assert_eq!(a.len(), 1);
    assert_eq!(a[0].actor.name, "admin1");
    assert_eq!(a[0].actor.address.as_deref(), Some(CLIENT));
    assert_eq!(a[0].target.as_deref(), Some("dpo3"));

    // Refused: a short password, a taken name, a bad role; each told on the page, none audited.
    for (pairs, told) in [
        (
            [
                ("name", "dpo4"),
                ("role", "dpo"),
                ("password", "elevenchars"),
            ],
            "at least 12 characters",
        ),
        (
            [
                ("name", "dpo3"),
                ("role", "dpo"),
                ("password", new_password),
            ],
            "already exists",
        ),
        (
            [
                ("name", "dpo5"),
                ("role", "root"),
                ("password", new_password),
            ],
            "dpo, admin, relay or metrics",
        ),
    ] {
        let r = c.send(post("/api/users", &pairs)).await;
        assert_eq!(r.status(), StatusCode::SEE_OTHER);
        let page = users_page(&c, &cookie).await;
        assert!(
            page.contains("flash-error") && page.contains(told),
            "{told}"
        );
    }
    let names: Vec<String> = c
        .store
        .user_list()
        .await
        .unwrap()
        .into_iter()
        .map(|u| u.name)
        .collect();
    assert!(!names.contains(&"dpo4".to_string()) && !names.contains(&"dpo5".to_string()));
    assert_eq!(c.audit("user-add:dpo").await.len(), 1);

    // Disable: the account can no longer log in.
    let r = c.send(post("/api/users/dpo3/disable", &[])).await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(
        try_login(&c, "dpo3", new_password).await,
        StatusCode::UNAUTHORIZED
    );
    let a = c.audit("user-disable").await;
    assert_eq!((a.len(), a[0].target.as_deref()), (1, Some("dpo3")));
    assert_eq!(a[0].actor.name, "admin1");

    // Enable: it can again.
    let r = c.send(post("/api/users/dpo3/enable", &[])).await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(try_login(&c, "dpo3", new_password).await, StatusCode::OK);
    assert_eq!(c.audit("user-enable").await.len(), 1);

    // Reset the password: the old one stops working, and so do sessions opened with it; the
    // audit trail never holds a password.
    let r = c
        .send(
            req(Method::POST, "/login")
                .json(&json!({"username": "dpo3", "password": new_password}))
                .build(),
        )
        .await;
    let dpo3_cookie = session_cookie(r.headers()).expect("a session cookie");
    let r = c
        .send(req(Method::GET, "/api/held").cookie(&dpo3_cookie).build())
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    let newer = "another long passphrase";
    let r = c
        .send(post("/api/users/dpo3/password", &[("password", newer)]))
        .await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert!(
        users_page(&c, &cookie)
            .await
            .contains("new password for dpo3")
    );
    assert_eq!(
        try_login(&c, "dpo3", new_password).await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(try_login(&c, "dpo3", newer).await, StatusCode::OK);
    let r = c
        .send(req(Method::GET, "/api/held").cookie(&dpo3_cookie).build())
        .await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    // The admin's own session is untouched.
    assert!(users_page(&c, &cookie).await.contains("dpo3"));
    let a = c.audit("user-passwd").await;
    assert_eq!((a.len(), a[0].target.as_deref()), (1, Some("dpo3")));
    let everything = c.store.audit_list(&AuditFilter::default()).await.unwrap();
    assert!(
        everything
            .iter()
            .all(|e| !e.detail.contains(newer) && !e.detail.contains(new_password))
    );

    // A short new password and an unknown account are refused.
    let r = c
        .send(post("/api/users/dpo3/password", &[("password", "short")]))
        .await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert!(
        users_page(&c, &cookie)
            .await
            .contains("at least 12 characters")
    );
    let r = c.send(post("/api/users/nobody9/disable", &[])).await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert!(users_page(&c, &cookie).await.contains("No such user"));
    assert_eq!(c.audit("user-passwd").await.len(), 1);
    assert_eq!(c.audit("user-disable").await.len(), 1);

    // An admin cannot lock themselves out.
    let r = c.send(post("/api/users/admin1/disable", &[])).await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert!(users_page(&c, &cookie).await.contains("your own account"));
    assert_eq!(try_login(&c, "admin1", PASSWORD).await, StatusCode::OK);
}

#[tokio::test]
async fn user_changes_need_the_csrf_token_and_an_admin() {
    let c = Console::new("users-csrf").await;
    let (cookie, _) = c.login("admin1").await;
    let r = c
        .send(
            req(Method::POST, "/api/users/dpo1/disable")
                .cookie(&cookie)
                .form(&[("csrf", "forged")])
                .build(),
        )
        .await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let r = c
        .send(
            req(Method::POST, "/api/users")
                .cookie(&cookie)
                .form(&[("name", "x1"), ("role", "admin"), ("password", PASSWORD)])
                .build(),
        )
        .await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    // A dpo with a valid token and CSRF is still not an admin.
    let (dpo_cookie, dpo_csrf) = c.login("dpo1").await;
    let r = c
        .send(
            req(Method::POST, "/api/users/dpo2/disable")
                .cookie(&dpo_cookie)
                .form(&[("csrf", &dpo_csrf)])
                .build(),
        )
        .await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let users = c.store.user_list().await.unwrap();
    assert!(users.iter().all(|u| !u.disabled));
    assert!(!users.iter().any(|u| u.name == "x1"));
    let everything = c.store.audit_list(&AuditFilter::default()).await.unwrap();
    assert!(everything.iter().all(|e| !e.action.starts_with("user-")));
}

#[tokio::test]
async fn users_api_lists_and_changes_accounts_as_json() {
    let c = Console::new("users-api").await;
    let token = c.store.user_new_token("admin1").await.unwrap();
    let r = c
        .send(req(Method::GET, "/api/users").bearer(&token).build())
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    let v = json_body(r).await;
    let list = v.as_array().unwrap();
    assert_eq!(list.len(), 5);
    let metrics = list.iter().find(|u| u["name"] == "metrics1").unwrap();
    assert_eq!(metrics["console"], false);
    let relay = list.iter().find(|u| u["name"] == "relay1").unwrap();
    assert_eq!(
        keys(relay),
        ["name", "role", "disabled", "console", "created"]
    );
    assert_eq!(relay["role"], "relay");
    assert_eq!(relay["console"], false);
    assert!(relay["created"].as_str().unwrap().ends_with('Z'));

    let r = c
        .send(
            req(Method::POST, "/api/users")
                .bearer(&token)
                .json(&json!({"name": "relay2", "role": "relay", "password": PASSWORD}))
                .build(),
        )
        .await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let v = json_body(r).await;
    assert_eq!(
        (v["name"].as_str(), v["disabled"].as_bool()),
        (Some("relay2"), Some(false))
    );
    assert_eq!(c.audit("user-add:relay").await.len(), 1);

    let r = c
        .send(
            req(Method::POST, "/api/users")
                .bearer(&token)
                .json(&json!({"name": "relay2", "role": "relay", "password": PASSWORD}))
                .build(),
        )
        .await;
    assert_eq!(r.status(), StatusCode::CONFLICT);
    assert!(json_body(r).await["error"].is_string());

    let r = c
        .send(
            req(Method::POST, "/api/users/relay2/disable")
                .bearer(&token)
                .build(),
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(json_body(r).await["disabled"], true);
    let r = c
        .send(
            req(Method::POST, "/api/users/ghost/enable")
                .bearer(&token)
                .build(),
        )
        .await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    let r = c
        .send(
            req(Method::POST, "/api/users/relay2/password")
                .bearer(&token)
                .json(&json!({"password": "tiny"}))
                .build(),
        )
        .await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
}

// ---------------------------------------------------------------- dashboard

const DAY_MS: i64 = 86_400_000;

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// The table row of one detector on the dashboard, as its cells' texts.
fn detector_cells(page: &str, detector: &str) -> Vec<String> {
    let start = page
        .find(&format!("<tr data-detector=\"{detector}\">"))
        .unwrap_or_else(|| panic!("a row for {detector}"));
    let row = &page[start..start + page[start..].find("</tr>").unwrap()];
    row.split("<td")
        .skip(1)
        .map(|cell| {
            let inner = &cell[cell.find('>').unwrap() + 1..];
            let inner = inner.split("</td>").next().unwrap();
            // Drop a link's tags.
            let mut text = String::new();
            let mut in_tag = false;
            for ch in inner.chars() {
                match ch {
                    '<' => in_tag = true,
                    '>' => in_tag = false,
                    c if !in_tag => text.push(c),
                    _ => {}
                }
            }
            text
        })
        .collect()
}

#[tokio::test]
async fn dashboard_charts_holds_per_day_and_rule_and_rates_detectors() {
    let c = Console::new("dashboard").await;
    let now = now_ms();
    let hold = |days_ago: i64, rules: Vec<&'static str>, findings: Vec<FindingRecord>| Held {
        received_ms: now - days_ago * DAY_MS,
        rules,
        findings,
        ..Held::default()
    };
    let upn_dob = || {
        vec![
            finding("uk_upn", "attachment:class.xlsx", 28),
            finding("date_of_birth", "attachment:class.xlsx", 28),
            finding("uk_upn", "body", 1),
        ]
    };
    // Today: two copies, one of them under two rules.
    let first = c
        .hold(hold(0, vec!["personal_data_external"], upn_dob()))
        .await;
    c.hold(hold(
        0,
        vec!["bulk_send", "personal_data_external"],
        vec![finding("credential", "body", 1)],
    ))
    .await;
    // Three days ago: two copies.
    c.hold(hold(
        3,
        vec!["misdirected_domain"],
        vec![finding("uk_nino", "body", 2)],
    ))
    .await;
    c.hold(hold(3, vec!["personal_data_external"], upn_dob()))
        .await;
    // Forty days ago: outside the chart, but its detectors count.
    c.hold(hold(40, vec!["personal_data_external"], upn_dob()))
        .await;
    // A false positive on today's first copy: uk_upn and date_of_birth, once each.
    let spool = c.store.held_get(&first).await.unwrap().unwrap().spool_id;
    let actor = hallpass_store::Actor {
        name: "dpo1".into(),
        address: None,
    };
    c.store
        .release(&first, &actor, &spool, true, now)
        .await
        .unwrap();
    // A delivery waiting for three hours and twenty minutes, to two recipients.
    let msg = new_id();
    c.store
        .spool()
        .write(&msg, b"Subject: x\r\n\r\nx\r\n")
        .await
        .unwrap();
    c.store
        .accept(&NewMessage {
            id: msg.clone(),
            received_ms: now - (3 * 60 + 20) * 60_000,
            sender: "teacher@lumen.sch.uk".into(),
            message_id: None,
            size: 16,
            spool_ids: vec![msg.clone()],
            copies: vec![NewCopy {
                id: new_id(),
                kind: CopyKind::Deliver,
                spool_id: msg,
                recipients: vec!["a@example.com".into(), "b@example.org".into()],
                rules: vec![],
                findings: vec![],
            }],
        })
        .await
        .unwrap();

    let (cookie, _) = c.login("dpo1").await;
    let r = c
        .send(req(Method::GET, "/dashboard").cookie(&cookie).build())
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    let page = body_text(r).await;

    // One bar group per day with data, with that day's total, stacked per rule.
    let day = |days_ago: i64| -> String {
        let ms = now - days_ago * DAY_MS;
        hallpass_store::fmt_utc(ms)[..10].to_string()
    };
    assert_eq!(page.matches("<g class=\"day\"").count(), 2);
    assert!(page.contains(&format!("data-day=\"{}\" data-total=\"3\"", day(0))));
    assert!(page.contains(&format!("data-day=\"{}\" data-total=\"2\"", day(3))));
    assert!(!page.contains(&format!("data-day=\"{}\"", day(40))));
    for (d, rule, n) in [
        (0, "personal_data_external", 2),
        (0, "bulk_send", 1),
        (3, "misdirected_domain", 1),
        (3, "personal_data_external", 1),
    ] {
        assert!(
            page.contains(&format!("<title>{} {rule}: {n}</title>", day(d))),
            "{rule} on day -{d}"
        );
    }
    assert_eq!(page.matches("<rect x=").count(), 4);
    // Drawn with presentation attributes only.
    assert!(page.contains("fill=\"#"));
    assert!(!page.contains(" style="));
    assert!(!page.contains("<script"));

    // Detectors: held copies (any status, any age), false positives and their rate.
    assert_eq!(
        detector_cells(&page, "uk_upn"),
        ["Unique Pupil Numbers uk_upn", "3", "1", "33.3%"]
    );
    assert_eq!(
        detector_cells(&page, "date_of_birth"),
        ["date_of_birth", "3", "1", "33.3%"]
    );
    assert_eq!(
        detector_cells(&page, "credential"),
        ["credential", "1", "0", "0%"]
    );
    assert_eq!(
        detector_cells(&page, "uk_nino"),
        ["uk_nino", "1", "0", "0%"]
    );
    // Most held first.
    assert!(
        page.find("data-detector=\"date_of_birth\"") < page.find("data-detector=\"credential\"")
    );

    // The queue: 2 released + 2 delivering; 4 still held; the oldest waits since 3 h 20 min.
    assert!(page.contains("<span class=\"waiting\">4</span>"));
    assert!(page.contains("<span class=\"queued\">4</span>"));
    assert!(page.contains("<span class=\"oldest\">3 h "));

    // Counts only: no address or subject on the page.
    assert!(!page.contains("parent@example.com") && !page.contains("Class list"));
}

#[tokio::test]
async fn an_empty_dashboard_renders_without_bars() {
    let c = Console::new("dashboard-empty").await;
    let (cookie, _) = c.login("admin1").await;
    let r = c
        .send(req(Method::GET, "/dashboard").cookie(&cookie).build())
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    let page = body_text(r).await;
    assert_eq!(page.matches("<g class=\"day\"").count(), 0);
    assert!(page.contains("Nothing has been held yet."));
    assert!(!page.contains("class=\"oldest\""));
}

// ---------------------------------------------------------------- headers

#[tokio::test]
async fn every_response_carries_the_security_headers() {
    let c = Console::new("headers").await;
    let (cookie, _) = c.login("dpo1").await;
    let id = c.hold_one().await;
    let requests = vec![
        req(Method::GET, "/login").build(),
        req(Method::GET, "/held").build(),
        req(Method::GET, "/held").cookie(&cookie).build(),
        req(Method::GET, &format!("/held/{id}"))
            .cookie(&cookie)
            .build(),
        req(Method::GET, "/audit").cookie(&cookie).build(),
        req(Method::GET, "/audit.csv").cookie(&cookie).build(),
        req(Method::GET, "/api/held").build(),
        req(Method::GET, "/api/held").cookie(&cookie).build(),
        req(Method::GET, &format!("/api/held/{id}"))
            .cookie(&cookie)
            .build(),
        req(Method::GET, "/api/audit").cookie(&cookie).build(),
        req(Method::GET, "/nothing-here").build(),
        req(Method::POST, "/login")
            .json(&json!({"username": "x", "password": "y"}))
            .build(),
        req(Method::GET, "/static/style.css").build(),
    ];
    for r in requests {
        let what = format!("{} {}", r.method(), r.uri());
        let r = c.send(r).await;
        let h = r.headers();
        let get = |name: &str| {
            h.get(name)
                .unwrap_or_else(|| panic!("{what}: no {name}"))
                .to_str()
                .unwrap()
        };
        assert_eq!(
            get("content-security-policy"),
            "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; \
             frame-ancestors 'none'; base-uri 'none'",
            "{what}"
        );
        assert_eq!(get("x-frame-options"), "DENY", "{what}");
        assert_eq!(get("referrer-policy"), "no-referrer", "{what}");
        assert_eq!(get("x-content-type-options"), "nosniff", "{what}");
        if what.ends_with("style.css") {
            assert_eq!(get("content-type"), "text/css; charset=utf-8");
        } else {
            assert_eq!(get("cache-control"), "no-store", "{what}");
        }
    }
}

#[tokio::test]
async fn pages_load_nothing_from_elsewhere_and_run_no_script() {
    let c = Console::new("no-external").await;
    c.hold_one().await;
    let (cookie, _) = c.login("admin1").await;
    let id = c.hold_one().await;
    for page in [
        "/login".to_string(),
        "/held".into(),
        format!("/held/{id}"),
        "/audit".into(),
        "/dashboard".into(),
        "/users".into(),
    ] {
        let r = if page == "/login" {
            req(Method::GET, &page)
        } else {
            req(Method::GET, &page).cookie(&cookie)
        };
        let r = c.send(r.build()).await;
        assert_eq!(r.status(), StatusCode::OK, "{page}");
        let html = body_text(r).await;
        assert!(!html.contains("<script"), "{page}");
        assert!(
            !html.contains("http://") && !html.contains("https://"),
            "{page}"
        );
        assert!(
            !html.contains(" style="),
            "{page}: inline styles break the CSP"
        );
        assert!(html.contains(r#"<link rel="stylesheet" href="/static/style.css">"#));
    }
}

// ---------------------------------------------------------------- a real socket

/// One HTTP/1.1 request on a fresh connection; the whole response as text.
async fn raw_http(addr: SocketAddr, request: &str) -> String {
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(request.as_bytes()).await.unwrap();
    let mut out = Vec::new();
    tokio::time::timeout(Duration::from_secs(60), s.read_to_end(&mut out))
        .await
        .expect("the console answered")
        .unwrap();
    String::from_utf8(out).unwrap()
}

#[tokio::test]
async fn serve_answers_on_a_socket_records_the_peer_address_and_stops_on_request() {
    let c = Console::new("serve").await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(serve(listener, c.state.clone(), async move {
        let _ = stop_rx.await;
    }));

    let page = raw_http(
        addr,
        "GET /login HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(page.starts_with("HTTP/1.1 200"), "{page}");
    assert!(
        page.to_ascii_lowercase()
            .contains("content-security-policy: default-src 'none'")
    );

    let body = format!("username=dpo1&password={}", enc(PASSWORD));
    let answer = raw_http(
        addr,
        &format!(
            "POST /login HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\
             Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        ),
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 303"), "{answer}");
    let login = c.audit("login").await;
    assert_eq!(login[0].actor.address.as_deref(), Some("127.0.0.1"));

    stop_tx.send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(60), server)
        .await
        .expect("serve returned after the shutdown signal")
        .unwrap()
        .unwrap();
}

/// The navigation's links and their `aria-current`, in order.
fn nav_links(page: &str) -> Vec<(String, Option<String>)> {
    let start = page
        .find("<nav aria-label=\"Console\">")
        .expect("the navigation");
    let end = start + page[start..].find("</nav>").unwrap();
    page[start..end]
        .split("<a ")
        .skip(1)
        .map(|a| {
            let attr = |name: &str| {
                let at = a.find(&format!("{name}=\""))? + name.len() + 2;
                Some(a[at..at + a[at..].find('"')?].to_string())
            };
            (attr("href").unwrap(), attr("aria-current"))
        })
        .collect()
}

#[tokio::test]
async fn the_navigation_marks_the_page_shown() {
    let c = Console::new("nav-current").await;
    let id = c.hold_one().await;
    let (cookie, _) = c.login("admin1").await;
    let held_one = format!("/held/{id}");
    for (path, marked, how) in [
        ("/held", "/held", "page"),
        ("/held?status=all", "/held", "page"),
        (held_one.as_str(), "/held", "true"),
        ("/dashboard", "/dashboard", "page"),
        ("/audit", "/audit", "page"),
        ("/users", "/users", "page"),
    ] {
        let r = c.send(req(Method::GET, path).cookie(&cookie).build()).await;
        assert_eq!(r.status(), StatusCode::OK, "{path}");
        let links = nav_links(&body_text(r).await);
        let hrefs: Vec<&str> = links.iter().map(|(h, _)| h.as_str()).collect();
        assert_eq!(hrefs, ["/held", "/dashboard", "/audit", "/users"], "{path}");
        let current: Vec<(&str, &str)> = links
            .iter()
            .filter_map(|(h, a)| Some((h.as_str(), a.as_deref()?)))
            .collect();
        assert_eq!(current, [(marked, how)], "{path}");
    }
    // A dpo has no Users link.
    let (cookie, _) = c.login("dpo1").await;
    let r = c
        .send(req(Method::GET, "/audit").cookie(&cookie).build())
        .await;
    let links = nav_links(&body_text(r).await);
    assert_eq!(links.len(), 3, "{links:?}");
    assert!(links.iter().all(|(h, _)| h != "/users"));
    // The style shows it.
    assert!(include_str!("../static/style.css").contains("nav a[aria-current]"));
}

/// Accepts a message with the given copies (kind, rules), received `days_ago`.
async fn accept_copies(c: &Console, days_ago: i64, copies: &[(CopyKind, &[&str])]) {
    let msg = new_id();
    c.store
        .spool()
        .write(&msg, b"Subject: x\r\n\r\nx\r\n")
        .await
        .unwrap();
    c.store
        .accept(&NewMessage {
            id: msg.clone(),
            received_ms: now_ms() - days_ago * DAY_MS,
            sender: "teacher@lumen.sch.uk".into(),
            message_id: None,
            size: 16,
            spool_ids: vec![msg.clone()],
            copies: copies
                .iter()
                .map(|(kind, rules)| NewCopy {
                    id: new_id(),
                    kind: *kind,
                    spool_id: msg.clone(),
                    recipients: vec!["parent@example.com".into()],
                    rules: rules.iter().map(|r| r.to_string()).collect(),
                    findings: vec![finding("uk_nhs_number", "body", 1)],
                })
                .collect(),
        })
        .await
        .unwrap();
}

#[tokio::test]
async fn the_dashboard_shows_what_monitored_rules_would_have_held() {
    let c = Console::new("dashboard-monitor").await;
    let (cookie, _) = c.login("dpo1").await;
    async fn page(c: &Console, cookie: &str) -> String {
        let r = c
            .send(req(Method::GET, "/dashboard").cookie(cookie).build())
            .await;
        assert_eq!(r.status(), StatusCode::OK);
        body_text(r).await
    }
    let html = page(&c, &cookie).await;
    assert!(
        html.contains("No rule fired on mail that went through"),
        "{html}"
    );
    assert_eq!(html.matches("<g class=\"through\"").count(), 0);

    let pde: &[&str] = &["personal_data_external"];
    // Monitor week: delivered with the rule's hit, two today and one two days ago.
    accept_copies(&c, 0, &[(CopyKind::Deliver, pde)]).await;
    accept_copies(
        &c,
        0,
        &[(CopyKind::Deliver, &["personal_data_external", "bulk_send"])],
    )
    .await;
    accept_copies(&c, 2, &[(CopyKind::Deliver, pde)]).await;
    // Held for the outside recipient, delivered to the inside one: the rule held it, not counted.
    accept_copies(&c, 0, &[(CopyKind::Deliver, pde), (CopyKind::Hold, pde)]).await;
    // Delivered with no rule hit, and a hit older than 30 days: not counted.
    accept_copies(&c, 0, &[(CopyKind::Deliver, &[])]).await;
    accept_copies(&c, 40, &[(CopyKind::Deliver, pde)]).await;

    let html = page(&c, &cookie).await;
    let day =
        |days_ago: i64| hallpass_store::fmt_utc(now_ms() - days_ago * DAY_MS)[..10].to_string();
    assert_eq!(html.matches("<g class=\"through\"").count(), 2, "{html}");
    assert!(
        html.contains(&format!("data-day=\"{}\" data-hits=\"3\"", day(0))),
        "{html}"
    );
    assert!(
        html.contains(&format!("data-day=\"{}\" data-hits=\"1\"", day(2))),
        "{html}"
    );
    for (d, rule, n) in [
        (0, "personal_data_external", 2),
        (0, "bulk_send", 1),
        (2, "personal_data_external", 1),
    ] {
        assert!(
            html.contains(&format!(
                "<title>{} {rule} would have held: {n}</title>",
                day(d)
            )),
            "{rule} on day -{d}: {html}"
        );
    }
    assert!(html.contains("(4 in all)"), "{html}");
    // The held chart counts only the held copy.
    assert_eq!(html.matches("<g class=\"day\"").count(), 1);
}

#[tokio::test]
async fn behind_a_trusted_proxy_the_forwarded_client_is_audited_and_throttled() {
    // The console's state trusts 192.0.2.10 (CLIENT) as a reverse proxy.
    let c = Console::new("proxy").await;
    let attempt = |from: &'static str, forwarded: &'static str| {
        req(Method::POST, "/login")
            .client_ip(from)
            .header("x-forwarded-for", forwarded)
            .json(&json!({"username": "dpo1", "password": "wrong"}))
            .build()
    };
    // Through the proxy: the nearest untrusted address on the right is the client's; what the
    // client put to its left is not believed.
    let r = c.send(attempt(CLIENT, "203.0.113.9, 198.51.100.7")).await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    // Not through the proxy: the header is the client's own claim and ignored.
    let r = c.send(attempt("198.51.100.99", "203.0.113.50")).await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    // A header that does not parse: the proxy's own address.
    let r = c.send(attempt(CLIENT, "not an address")).await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    // Rubbish the client wrote to the left of what the proxy appended changes nothing.
    let r = c.send(attempt(CLIENT, "rubbish, 198.51.100.8")).await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let failed = c.audit("login-failed").await;
    let addresses: Vec<Option<&str>> = failed
        .iter()
        .rev()
        .map(|e| e.actor.address.as_deref())
        .collect();
    assert_eq!(
        addresses,
        [
            Some("198.51.100.7"),
            Some("198.51.100.99"),
            Some(CLIENT),
            Some("198.51.100.8")
        ]
    );
    // The throttle counts per client too: a guesser behind the proxy does not lock out a
    // colleague whose requests come through the same proxy.
    for _ in 0..6 {
        c.send(attempt(CLIENT, "203.0.113.66")).await;
    }
    let r = c
        .send(
            req(Method::POST, "/login")
                .client_ip(CLIENT)
                .header("x-forwarded-for", "203.0.113.77")
                .json(&json!({"username": "dpo2", "password": PASSWORD}))
                .build(),
        )
        .await;
    assert!(r.status().is_success(), "{}", r.status());
}

#[tokio::test]
async fn the_health_check_needs_no_login_and_says_when_the_store_is_gone() {
    let c = Console::new("health").await;
    let r = c.send(req(Method::GET, "/healthz").build()).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(json_body(r).await, json!({"status": "ok"}));
    c.store.close().await;
    let r = c.send(req(Method::GET, "/healthz").build()).await;
    assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(json_body(r).await, json!({"status": "store unavailable"}));
}
