//! Accounts, for admins only (a dpo gets 403): the users page and its JSON twins under
//! `/api/users`. Add a user, disable or enable one, reset a password. Every change is audited
//! with the admin as the actor and the account's name as the target; a password never leaves
//! the request that carried it (not in the audit trail, not in the log, not in a response).

use askama::Template;
use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use hallpass_store::{Role, StoreError, User};
use serde::{Deserialize, Serialize};

use crate::App;
use crate::auth::{Caller, PageCaller, Posted};
use crate::clock;
use crate::error::{ApiError, Failure, PageError};
use crate::input::WithCsrf;
use crate::pages::{Nav, html, path_segment};
use crate::session::Flash;

/// The shortest password the console accepts (characters).
pub(crate) const MIN_PASSWORD: usize = 12;
/// The longest password the console accepts (characters): argon2 takes any length, but a
/// megabyte of password is an attack, not a password.
const MAX_PASSWORD: usize = 1024;

/// Only admins manage accounts.
fn admin_only(caller: &Caller) -> Result<(), Failure> {
    if caller.role == Role::Admin {
        Ok(())
    } else {
        Err(Failure::Forbidden(
            "only an admin can manage accounts".into(),
        ))
    }
}

fn check_password(password: &str) -> Result<(), Failure> {
    let n = password.chars().count();
    if n < MIN_PASSWORD {
        return Err(Failure::BadRequest(format!(
            "the password is too short: at least {MIN_PASSWORD} characters"
        )));
    }
    if n > MAX_PASSWORD {
        return Err(Failure::BadRequest(format!(
            "the password is too long: at most {MAX_PASSWORD} characters"
        )));
    }
    Ok(())
}

/// Store errors about accounts, told in words about accounts.
fn account_failure(e: StoreError) -> Failure {
    match e {
        StoreError::Exists => Failure::Conflict("a user of that name already exists".into()),
        StoreError::NoSuchUser => Failure::NotFound("no such user".into()),
        StoreError::InvalidUserName(_) => Failure::BadRequest(
            "the name must be 1 to 128 characters without spaces or control characters".into(),
        ),
        StoreError::EmptyPassword => Failure::BadRequest("the password is empty".into()),
        other => other.into(),
    }
}

/// An account as the API shows it.
#[derive(Debug, Serialize)]
pub(crate) struct UserJson {
    name: String,
    role: &'static str,
    disabled: bool,
    /// Whether the account may log in to the console (relay accounts never can).
    console: bool,
    created: String,
}

impl From<&User> for UserJson {
    fn from(u: &User) -> Self {
        UserJson {
            name: u.name.clone(),
            role: u.role.as_str(),
            disabled: u.disabled,
            console: matches!(u.role, Role::Dpo | Role::Admin),
            created: clock::rfc3339(u.created_ms),
        }
    }
}

/// `POST /api/users`: `name`, `role` (`dpo`, `admin`, `relay`, `metrics`), `password`.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct AddUserInput {
    #[serde(default)]
    name: String,
    #[serde(default)]
    role: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    csrf: Option<String>,
}

impl WithCsrf for AddUserInput {
    fn csrf(&self) -> Option<&str> {
        self.csrf.as_deref()
    }
}

/// `POST /api/users/{name}/password`: `password`.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct PasswordInput {
    #[serde(default)]
    password: String,
    #[serde(default)]
    csrf: Option<String>,
}

impl WithCsrf for PasswordInput {
    fn csrf(&self) -> Option<&str> {
        self.csrf.as_deref()
    }
}

/// A body with nothing but the CSRF token.
pub(crate) type NoInput = crate::input::CsrfOnly;

impl App {
    async fn user(&self, name: &str) -> Result<User, Failure> {
        self.console
            .store
            .user_list()
            .await?
            .into_iter()
            .find(|u| u.name == name)
            .ok_or_else(|| Failure::NotFound("no such user".into()))
    }

    async fn add_user(&self, caller: &Caller, input: &AddUserInput) -> Result<User, Failure> {
        admin_only(caller)?;
        let name = input.name.trim();
        let role: Role = input
            .role
            .trim()
            .parse()
            .map_err(|_| Failure::BadRequest("role: dpo, admin, relay or metrics".into()))?;
        check_password(&input.password)?;
        self.console
            .store
            .user_add_by(
                name,
                role,
                &input.password,
                &caller.actor(),
                clock::now_ms(),
            )
            .await
            .map_err(account_failure)?;
        tracing::info!(user = name, role = role.as_str(), by = %caller.name, "account added");
        self.user(name).await
    }

    async fn set_disabled(
        &self,
        caller: &Caller,
        name: &str,
        disabled: bool,
    ) -> Result<User, Failure> {
        admin_only(caller)?;
        if disabled && name == caller.name {
            return Err(Failure::BadRequest(
                "you cannot disable your own account: ask another admin".into(),
            ));
        }
        self.console
            .store
            .user_set_disabled_by(name, disabled, &caller.actor(), clock::now_ms())
            .await
            .map_err(account_failure)?;
        let action = if disabled { "disable" } else { "enable" };
        tracing::info!(user = name, by = %caller.name, action, "account changed");
        self.user(name).await
    }

    async fn set_password(
        &self,
        caller: &Caller,
        name: &str,
        password: &str,
    ) -> Result<User, Failure> {
        admin_only(caller)?;
        check_password(password)?;
        // Whoever knew the old password is logged out, in the same change; an admin resetting
        // their own keeps the session they are using.
        let keep = caller.session.as_ref().map(|s| s.id.as_str());
        self.console
            .store
            .user_set_password_by(name, password, &caller.actor(), clock::now_ms(), keep)
            .await
            .map_err(account_failure)?;
        tracing::info!(user = name, by = %caller.name, "account password reset");
        self.user(name).await
    }
}

/// The outcome of a change: JSON (`201` for a new account), or after a form post a redirect to
/// the users page with the outcome shown there once.
async fn answer<T>(
    app: &App,
    posted: &Posted<T>,
    result: Result<User, Failure>,
    created: bool,
    done: impl FnOnce(&User) -> String,
) -> Response {
    if !posted.form {
        return match result {
            Ok(u) if created => (StatusCode::CREATED, Json(UserJson::from(&u))).into_response(),
            Ok(u) => Json(UserJson::from(&u)).into_response(),
            Err(e) => ApiError(e).into_response(),
        };
    }
    let outcome = match result {
        Ok(u) => Ok(done(&u)),
        Err(e @ (Failure::BadRequest(_) | Failure::Conflict(_) | Failure::NotFound(_))) => {
            Err(e.message())
        }
        Err(e) => return PageError(e).into_response(),
    };
    if let Some(s) = &posted.caller.session {
        let (error, text) = match outcome {
            Ok(t) => (false, t),
            Err(t) => (true, crate::api::capitalised(&t)),
        };
        app.sessions().set_flash(&s.id, Flash { error, text }).await;
    }
    Redirect::to("/users").into_response()
}

/// `GET /api/users`: every account, by name.
pub(crate) async fn list(
    State(app): State<App>,
    caller: ApiCaller,
) -> Result<Json<Vec<UserJson>>, ApiError> {
    admin_only(&caller.0)?;
    let users = app.console.store.user_list().await?;
    Ok(Json(users.iter().map(UserJson::from).collect()))
}

/// `POST /api/users`: adds an account.
pub(crate) async fn add(State(app): State<App>, posted: Posted<AddUserInput>) -> Response {
    let result = app.add_user(&posted.caller, &posted.input).await;
    answer(&app, &posted, result, true, |u| {
        format!("Added {} ({}).", u.name, u.role.as_str())
    })
    .await
}

/// `POST /api/users/{name}/disable`.
pub(crate) async fn disable(
    State(app): State<App>,
    Path(name): Path<String>,
    posted: Posted<NoInput>,
) -> Response {
    let result = app.set_disabled(&posted.caller, &name, true).await;
    answer(&app, &posted, result, false, |u| {
        format!(
            "Disabled {}: it can no longer log in or use its token.",
            u.name
        )
    })
    .await
}

/// `POST /api/users/{name}/enable`.
pub(crate) async fn enable(
    State(app): State<App>,
    Path(name): Path<String>,
    posted: Posted<NoInput>,
) -> Response {
    let result = app.set_disabled(&posted.caller, &name, false).await;
    answer(&app, &posted, result, false, |u| {
        format!("Enabled {}.", u.name)
    })
    .await
}

/// `POST /api/users/{name}/password`: `password`.
pub(crate) async fn password(
    State(app): State<App>,
    Path(name): Path<String>,
    posted: Posted<PasswordInput>,
) -> Response {
    let result = app
        .set_password(&posted.caller, &name, &posted.input.password)
        .await;
    answer(&app, &posted, result, false, |u| {
        format!("Set a new password for {}.", u.name)
    })
    .await
}

/// A caller of an `/api/*` route, failures told as JSON.
#[derive(Debug)]
pub(crate) struct ApiCaller(pub Caller);

impl axum::extract::FromRequestParts<App> for ApiCaller {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        app: &App,
    ) -> Result<Self, Self::Rejection> {
        Ok(ApiCaller(app.caller(parts).await?))
    }
}

/// A row of the users page.
pub(crate) struct UserRow {
    pub name: String,
    pub role: &'static str,
    pub disabled: bool,
    pub console: bool,
    pub created: String,
    pub is_me: bool,
    /// `/api/users/{name}` (the forms add `/disable`, `/enable`, `/password`).
    pub action_base: String,
}

#[derive(Template)]
#[template(path = "users.html")]
pub(crate) struct UsersPage {
    pub nav: Nav,
    pub rows: Vec<UserRow>,
    pub min_password: usize,
}

/// `GET /users`: the accounts, with forms to change them.
pub(crate) async fn page(
    State(app): State<App>,
    PageCaller(caller): PageCaller,
) -> Result<Response, PageError> {
    admin_only(&caller)?;
    let users = app.console.store.user_list().await.map_err(Failure::from)?;
    let rows = users
        .iter()
        .map(|u| UserRow {
            name: u.name.clone(),
            role: u.role.as_str(),
            disabled: u.disabled,
            console: matches!(u.role, Role::Dpo | Role::Admin),
            created: clock::human(u.created_ms),
            is_me: u.name == caller.name,
            action_base: format!("/api/users/{}", path_segment(&u.name)),
        })
        .collect();
    let t = UsersPage {
        nav: app.nav(&caller, crate::pages::Section::Users).await,
        rows,
        min_password: MIN_PASSWORD,
    };
    html(&t)
}
