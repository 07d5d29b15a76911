//! Logging in and out. Only dpo and admin accounts may; failures are throttled per account and
//! per client address, and every success, failure, lock-out and logout is audited.

use askama::Template;
use axum::Json;
use axum::extract::{FromRequest, Request, State};
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use hallpass_store::{Actor, AuditEntry, PasswordStamp, Role, User};
use serde::Serialize;

use crate::App;
use crate::auth::{self, Posted, client_address};
use crate::clock;
use crate::error::{ApiError, Failure, PageError};
use crate::input::{CsrfOnly, Input, LoginInput, is_form};
use crate::session::{Locked, MAX_FAILURES};

/// The longest account name and password looked at; longer ones fail without a lookup.
const MAX_NAME: usize = 128;
const MAX_PASSWORD: usize = 1024;

/// The login page.
#[derive(Template)]
#[template(path = "login.html")]
pub(crate) struct LoginPage {
    pub organisation: String,
    pub error: Option<String>,
    pub username: String,
}

/// The answer to a JSON login.
#[derive(Serialize)]
struct LoggedIn<'a> {
    user: &'a str,
    role: &'static str,
    /// Send it as `X-CSRF-Token` with every POST made with the session cookie.
    csrf_token: &'a str,
}

/// `GET /login`.
pub(crate) async fn page(State(app): State<App>, req: Request) -> Result<Response, PageError> {
    let (parts, _) = req.into_parts();
    if app.caller(&parts).await.is_ok() {
        return Ok(Redirect::to("/held").into_response());
    }
    let page = LoginPage {
        organisation: app.console.organisation.clone(),
        error: None,
        username: String::new(),
    };
    Ok(Html(page.render().map_err(Failure::from)?).into_response())
}

/// `POST /login`: form fields or JSON `username`, `password`.
pub(crate) async fn login(State(app): State<App>, req: Request) -> Response {
    let form = is_form(req.headers());
    let (parts, body) = req.into_parts();
    let address = client_address(&parts, &app.console.trusted_proxies);
    let old_session = auth::session_cookie(&parts.headers).map(str::to_string);
    // A login posted from another site would put the victim in the attacker's session.
    let cross_site = parts
        .headers
        .get("sec-fetch-site")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("cross-site"));
    if cross_site {
        let f = Failure::Forbidden("log in from the console's own page".into());
        return refuse(&app, form, f, "");
    }
    let input = Input::<LoginInput>::from_request(Request::from_parts(parts, body), &()).await;
    let input = match input {
        Ok(Input(i)) => i,
        Err(f) => return refuse(&app, form, f, ""),
    };
    let name = input.username.trim().to_string();
    if name.is_empty() || input.password.is_empty() {
        let f = Failure::BadRequest("give a user name and a password".into());
        return refuse(&app, form, f, &name);
    }
    let now = clock::now_ms();
    let attempt = match app.throttle().begin(&name, address, now) {
        Ok(a) => a,
        Err(wait_ms) => {
            let retry_after_s = (wait_ms + 999) / 1000;
            return refuse(
                &app,
                form,
                Failure::TooManyAttempts { retry_after_s },
                &name,
            );
        }
    };
    let verified = if name.chars().count() > MAX_NAME || input.password.len() > MAX_PASSWORD {
        Ok(None)
    } else {
        app.console
            .store
            .user_verify_stamped(&name, &input.password)
            .await
    };
    let actor = |name: &str| Actor {
        name: name.to_string(),
        address: address.map(|a| a.to_string()),
    };
    match verified {
        Err(e) => {
            app.throttle().abandoned(attempt);
            refuse(
                &app,
                form,
                Failure::internal("checking a password", e),
                &name,
            )
        }
        Ok(Some((u, stamp))) if matches!(u.role, Role::Dpo | Role::Admin) => {
            app.throttle().succeeded(attempt);
            // A session from before this login is replaced, not kept beside the new one.
            if let Some(old) = &old_session
                && let Err(f) = app.sessions().remove(old).await
            {
                return refuse(&app, form, f, &name);
            }
            match start_session(&app, form, &u, &stamp, actor(&u.name), now).await {
                Ok(response) => response,
                Err(f) => refuse(&app, form, f, &name),
            }
        }
        Ok(other) => {
            let other = other.map(|(u, _)| u);
            let locked = app.throttle().failed(attempt, now);
            // Only a real account's name goes into the audit trail: what people type into the
            // name field by mistake is sometimes their password.
            let known = match &other {
                Some(u) => Some(u.clone()),
                None => app.account(&name).await,
            };
            let who = actor(known.as_ref().map_or("unknown", |u| u.name.as_str()));
            let detail = match (&other, &known) {
                (Some(u), _) => format!("{} accounts cannot log in to the console", u.role),
                (None, Some(k)) if k.disabled => "the account is disabled".into(),
                (None, Some(_)) => "wrong password".into(),
                (None, None) => "no such account".into(),
            };
            app.audit(entry(&who, "login-failed", detail, now)).await;
            for l in locked {
                let detail = match l {
                    Locked::Account(_, n) => format!(
                        "{n} failed logins in 15 minutes: the account is locked for 15 minutes"
                    ),
                    Locked::Address(a) => format!(
                        "{MAX_FAILURES} failed logins in 15 minutes from {}: the address is locked for 15 minutes",
                        crate::session::shown(a)
                    ),
                };
                app.audit(entry(&who, "login-locked", detail, now)).await;
                tracing::warn!("console logins locked after repeated failures");
            }
            refuse(&app, form, Failure::Unauthenticated, &name)
        }
    }
}

/// Starts a session for a verified dpo or admin: audited first (no unaudited way in), then the
/// cookie; a form is sent on to the held messages, JSON gets the CSRF token.
async fn start_session(
    app: &App,
    form: bool,
    user: &User,
    stamp: &PasswordStamp,
    actor: Actor,
    now: i64,
) -> Result<Response, Failure> {
    // None: the password was changed, or the account disabled, while this one was checked.
    let (id, csrf) = app
        .sessions()
        .create(&user.name, now, stamp)
        .await?
        .ok_or(Failure::Unauthenticated)?;
    let detail = format!("logged in to the console as {}", user.role);
    if let Err(e) = app
        .console
        .store
        .audit(&entry(&actor, "login", detail, now))
        .await
    {
        // No login that is not in the audit trail.
        let _ = app.sessions().remove(&id).await;
        return Err(Failure::internal("auditing a login", e));
    }
    tracing::info!(user = %user.name, "console login");
    let mut response = if form {
        Redirect::to("/held").into_response()
    } else {
        Json(LoggedIn {
            user: &user.name,
            role: user.role.as_str(),
            csrf_token: &csrf,
        })
        .into_response()
    };
    let cookie = auth::session_set_cookie(&id, app.console.secure_cookies);
    response.headers_mut().append(header::SET_COOKIE, cookie);
    Ok(response)
}

/// A login that did not happen: JSON, or the login page again with the reason.
fn refuse(app: &App, form: bool, f: Failure, username: &str) -> Response {
    if !form {
        return ApiError(f).into_response();
    }
    let status = match f {
        Failure::Unauthenticated => StatusCode::UNAUTHORIZED,
        Failure::TooManyAttempts { .. } => StatusCode::TOO_MANY_REQUESTS,
        f => return PageError(f).into_response(),
    };
    let error = match &f {
        Failure::Unauthenticated => "Wrong user name or password.".into(),
        f => f.message(),
    };
    let page = LoginPage {
        organisation: app.console.organisation.clone(),
        error: Some(error),
        username: username.to_string(),
    };
    match page.render() {
        Ok(html) => {
            let mut r = (status, Html(html)).into_response();
            if let Failure::TooManyAttempts { retry_after_s } = f {
                r.headers_mut()
                    .insert(header::RETRY_AFTER, retry_after_s.into());
            }
            r
        }
        Err(e) => PageError(e.into()).into_response(),
    }
}

fn entry(actor: &Actor, action: &str, detail: String, now: i64) -> AuditEntry {
    AuditEntry {
        at_ms: now,
        actor: actor.clone(),
        action: action.into(),
        target: None,
        detail,
    }
}

/// `POST /logout`.
pub(crate) async fn logout(State(app): State<App>, posted: Posted<CsrfOnly>) -> Response {
    if let Some(s) = &posted.caller.session {
        if let Err(f) = app.sessions().remove(&s.id).await {
            return PageError(f).into_response();
        }
        let detail = "logged out of the console".into();
        app.audit(entry(
            &posted.caller.actor(),
            "logout",
            detail,
            clock::now_ms(),
        ))
        .await;
    }
    let mut response = if posted.form {
        Redirect::to("/login").into_response()
    } else {
        StatusCode::NO_CONTENT.into_response()
    };
    response.headers_mut().append(
        header::SET_COOKIE,
        auth::session_clear_cookie(app.console.secure_cookies),
    );
    response
}

impl App {
    /// Appends to the audit trail; a failure is logged (the action itself has happened).
    pub(crate) async fn audit(&self, entry: AuditEntry) {
        if let Err(e) = self.console.store.audit(&entry).await {
            tracing::error!(error = %e, action = %entry.action, "cannot write the audit trail");
        }
    }

    /// The account of that name, if there is one (disabled or not).
    async fn account(&self, name: &str) -> Option<User> {
        match self.console.store.user_list().await {
            Ok(users) => users.into_iter().find(|u| u.name == name),
            Err(e) => {
                tracing::error!(error = %e, "cannot list accounts");
                None
            }
        }
    }
}
