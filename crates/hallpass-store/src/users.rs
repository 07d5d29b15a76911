//! Console (dpo, admin) and relay (SMTP AUTH) accounts: argon2id password hashes, and API tokens
//! stored as SHA-256 digests.

use std::sync::OnceLock;

use argon2::{Argon2, PasswordHash, PasswordHasher, PasswordVerifier};
use sha2::{Digest, Sha256};

use crate::sessions::{PasswordStamp, end_sessions};
use sqlx::Row;

use crate::error::StoreError;
use crate::held::insert_audit;
use crate::store::Store;
use crate::time::now_ms;
use crate::types::{Actor, AuditEntry, Role, User};

/// The columns of a [`User`]; `disabled` as 0 or 1, the one type both databases' `Any` rows
/// carry (SQLite's `BOOLEAN` is not one of them).
macro_rules! user_columns {
    () => {
        "name, role, CAST(CASE WHEN disabled THEN 1 ELSE 0 END AS BIGINT) AS disabled, created_ms"
    };
}

/// Prefix of API tokens, so a leaked one is recognisable in a secret scanner.
const TOKEN_PREFIX: &str = "hp_";

impl Store {
    /// Adds a user with an argon2id hash of `password`; `Err(Exists)` if the name is taken.
    pub async fn user_add(&self, name: &str, role: Role, password: &str) -> Result<(), StoreError> {
        check_name(name)?;
        let hash = hash_password(password).await?;
        let done = sqlx::query(
            "INSERT INTO users (name, role, password_hash, disabled, created_ms) \
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(name)
        .bind(role.as_str())
        .bind(hash)
        .bind(false)
        .bind(now_ms())
        .execute(&self.pool)
        .await;
        match done {
            Ok(_) => Ok(()),
            Err(sqlx::Error::Database(e)) if e.is_unique_violation() => Err(StoreError::Exists),
            Err(e) => Err(e.into()),
        }
    }

    /// Sets a new password; `Err(NoSuchUser)` for an unknown name.
    /// Every console session of the account ends: whoever knew the old password is logged out.
    pub async fn user_set_password(&self, name: &str, password: &str) -> Result<(), StoreError> {
        let hash = hash_password(password).await?;
        let mut tx = self.begin_write().await?;
        let done = sqlx::query("UPDATE users SET password_hash = $1 WHERE name = $2")
            .bind(hash)
            .bind(name)
            .execute(&mut *tx)
            .await?;
        one_user(done.rows_affected())?;
        end_sessions(&mut tx, name, None).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Removes a user (and so their token); `Err(NoSuchUser)` for an unknown name.
    /// Its console sessions end with it (an account made again under the name starts afresh).
    pub async fn user_remove(&self, name: &str) -> Result<(), StoreError> {
        let mut tx = self.begin_write().await?;
        let done = sqlx::query("DELETE FROM users WHERE name = $1")
            .bind(name)
            .execute(&mut *tx)
            .await?;
        one_user(done.rows_affected())?;
        end_sessions(&mut tx, name, None).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Disables or re-enables a user; `Err(NoSuchUser)` for an unknown name.
    /// Disabling ends the account's console sessions.
    pub async fn user_set_disabled(&self, name: &str, disabled: bool) -> Result<(), StoreError> {
        let mut tx = self.begin_write().await?;
        let done = sqlx::query("UPDATE users SET disabled = $1 WHERE name = $2")
            .bind(disabled)
            .bind(name)
            .execute(&mut *tx)
            .await?;
        one_user(done.rows_affected())?;
        if disabled {
            end_sessions(&mut tx, name, None).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// All users, by name.
    pub async fn user_list(&self) -> Result<Vec<User>, StoreError> {
        let rows = sqlx::query(concat!(
            "SELECT ",
            user_columns!(),
            " FROM users ORDER BY name"
        ))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(user_from_row).collect()
    }

    /// As [`Store::user_add`], by `actor` (an admin in the console), with an audit entry
    /// `user-add:<role>` (target: the new name) in the same transaction.
    pub async fn user_add_by(
        &self,
        name: &str,
        role: Role,
        password: &str,
        actor: &Actor,
        now_ms: i64,
    ) -> Result<(), StoreError> {
        check_name(name)?;
        let hash = hash_password(password).await?;
        let mut tx = self.begin_write().await?;
        let done = sqlx::query(
            "INSERT INTO users (name, role, password_hash, disabled, created_ms) \
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(name)
        .bind(role.as_str())
        .bind(hash)
        .bind(false)
        .bind(now_ms)
        .execute(&mut *tx)
        .await;
        match done {
            Ok(_) => {}
            Err(sqlx::Error::Database(e)) if e.is_unique_violation() => {
                return Err(StoreError::Exists);
            }
            Err(e) => return Err(e.into()),
        }
        let action = format!("user-add:{}", role.as_str());
        let e = user_entry(actor, &action, name, "account added", now_ms);
        insert_audit(&mut tx, &e).await?;
        tx.commit().await?;
        Ok(())
    }

    /// As [`Store::user_set_disabled`], by `actor`, with an audit entry `user-disable` or
    /// `user-enable` (target: the name) in the same transaction.
    pub async fn user_set_disabled_by(
        &self,
        name: &str,
        disabled: bool,
        actor: &Actor,
        now_ms: i64,
    ) -> Result<(), StoreError> {
        let mut tx = self.begin_write().await?;
        let done = sqlx::query("UPDATE users SET disabled = $1 WHERE name = $2")
            .bind(disabled)
            .bind(name)
            .execute(&mut *tx)
            .await?;
        one_user(done.rows_affected())?;
        if disabled {
            end_sessions(&mut tx, name, None).await?;
        }
        let (action, detail) = if disabled {
            ("user-disable", "account disabled")
        } else {
            ("user-enable", "account enabled")
        };
        insert_audit(&mut tx, &user_entry(actor, action, name, detail, now_ms)).await?;
        tx.commit().await?;
        Ok(())
    }

    /// As [`Store::user_set_password`], by `actor`, with an audit entry `user-passwd` (target:
    /// the name; never the password) in the same transaction.
    /// The account's console sessions end but `keep_session` (an admin resetting their own
    /// password keeps the session they are using).
    pub async fn user_set_password_by(
        &self,
        name: &str,
        password: &str,
        actor: &Actor,
        now_ms: i64,
        keep_session: Option<&str>,
    ) -> Result<(), StoreError> {
        let hash = hash_password(password).await?;
        let mut tx = self.begin_write().await?;
        let done = sqlx::query("UPDATE users SET password_hash = $1 WHERE name = $2")
            .bind(hash)
            .bind(name)
            .execute(&mut *tx)
            .await?;
        one_user(done.rows_affected())?;
        end_sessions(&mut tx, name, keep_session).await?;
        let e = user_entry(actor, "user-passwd", name, "password reset", now_ms);
        insert_audit(&mut tx, &e).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Verifies a password (argon2id, on a blocking thread); `None` when the user is unknown,
    /// disabled or the password wrong. An unknown user costs the same hashing time as a known
    /// one, so timing does not tell which names exist.
    pub async fn user_verify(
        &self,
        name: &str,
        password: &str,
    ) -> Result<Option<User>, StoreError> {
        Ok(self
            .user_verify_stamped(name, password)
            .await?
            .map(|(user, _)| user))
    }

    /// As [`Store::user_verify`], with the proof a console session is started with.
    pub async fn user_verify_stamped(
        &self,
        name: &str,
        password: &str,
    ) -> Result<Option<(User, PasswordStamp)>, StoreError> {
        let row = sqlx::query(concat!(
            "SELECT ",
            user_columns!(),
            ", password_hash FROM users WHERE name = $1"
        ))
        .bind(name)
        .fetch_optional(&self.pool)
        .await?;
        let (user, hash) = match &row {
            Some(row) => (
                Some(user_from_row(row)?),
                Some(row.try_get::<String, _>("password_hash")?),
            ),
            None => (None, None),
        };
        let password = password.to_string();
        let checked = hash.clone();
        let ok = tokio::task::spawn_blocking(move || {
            let hash = match checked {
                Some(h) => h,
                None => dummy_hash()?.to_string(),
            };
            verify_password(&password, &hash)
        })
        .await
        .map_err(|e| StoreError::Crypto(e.to_string()))??;
        Ok(user
            .zip(hash)
            .filter(|(u, _)| ok && !u.disabled)
            .map(|(u, h)| (u, PasswordStamp(h))))
    }

    /// A new random API token for the user (256 bits; returned once, stored as its SHA-256),
    /// replacing any previous one; `Err(NoSuchUser)` for an unknown name.
    pub async fn user_new_token(&self, name: &str) -> Result<String, StoreError> {
        let mut secret = [0u8; 32];
        getrandom::fill(&mut secret)
            .map_err(|e| StoreError::Crypto(format!("system random source: {e}")))?;
        let token = format!("{TOKEN_PREFIX}{}", hex(&secret));
        let done = sqlx::query("UPDATE users SET token_hash = $1 WHERE name = $2")
            .bind(token_hash(&token))
            .bind(name)
            .execute(&self.pool)
            .await?;
        one_user(done.rows_affected())?;
        Ok(token)
    }

    /// The user a token belongs to, unless unknown or disabled.
    pub async fn user_by_token(&self, token: &str) -> Result<Option<User>, StoreError> {
        let row = sqlx::query(concat!(
            "SELECT ",
            user_columns!(),
            " FROM users WHERE token_hash = $1"
        ))
        .bind(token_hash(token))
        .fetch_optional(&self.pool)
        .await?;
        let user = row.as_ref().map(user_from_row).transpose()?;
        Ok(user.filter(|u| !u.disabled))
    }
}

fn user_entry(actor: &Actor, action: &str, name: &str, detail: &str, now_ms: i64) -> AuditEntry {
    AuditEntry {
        at_ms: now_ms,
        actor: actor.clone(),
        action: action.to_string(),
        target: Some(name.to_string()),
        detail: detail.to_string(),
    }
}

fn one_user(rows: u64) -> Result<(), StoreError> {
    if rows == 0 {
        Err(StoreError::NoSuchUser)
    } else {
        Ok(())
    }
}

fn check_name(name: &str) -> Result<(), StoreError> {
    let ok = (1..=128).contains(&name.chars().count())
        && !name.chars().any(|c| c.is_whitespace() || c.is_control());
    if ok {
        Ok(())
    } else {
        Err(StoreError::InvalidUserName(name.to_string()))
    }
}

fn user_from_row(row: &sqlx::any::AnyRow) -> Result<User, StoreError> {
    let role: String = row.try_get("role")?;
    Ok(User {
        name: row.try_get("name")?,
        role: role.parse().map_err(crate::store::corrupt)?,
        disabled: row.try_get::<i64, _>("disabled")? != 0,
        created_ms: row.try_get("created_ms")?,
    })
}

async fn hash_password(password: &str) -> Result<String, StoreError> {
    if password.is_empty() {
        return Err(StoreError::EmptyPassword);
    }
    let password = password.to_string();
    tokio::task::spawn_blocking(move || {
        Argon2::default()
            .hash_password(password.as_bytes())
            .map(|h| h.to_string())
            .map_err(|e| StoreError::Crypto(e.to_string()))
    })
    .await
    .map_err(|e| StoreError::Crypto(e.to_string()))?
}

fn verify_password(password: &str, hash: &str) -> Result<bool, StoreError> {
    let parsed =
        PasswordHash::new(hash).map_err(|e| StoreError::Corrupt(format!("password hash: {e}")))?;
    match Argon2::default().verify_password(password.as_bytes(), &parsed) {
        Ok(()) => Ok(true),
        Err(argon2::password_hash::Error::PasswordInvalid) => Ok(false),
        Err(e) => Err(StoreError::Crypto(e.to_string())),
    }
}

/// A hash of a random password with the same parameters as real ones, checked against for
/// unknown users.
fn dummy_hash() -> Result<&'static str, StoreError> {
    static DUMMY: OnceLock<String> = OnceLock::new();
    if let Some(h) = DUMMY.get() {
        return Ok(h);
    }
    let mut secret = [0u8; 16];
    getrandom::fill(&mut secret)
        .map_err(|e| StoreError::Crypto(format!("system random source: {e}")))?;
    let hash = Argon2::default()
        .hash_password(hex(&secret).as_bytes())
        .map_err(|e| StoreError::Crypto(e.to_string()))?
        .to_string();
    Ok(DUMMY.get_or_init(|| hash))
}

pub(crate) fn token_hash(token: &str) -> String {
    hex(&Sha256::digest(token.as_bytes()))
}

fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(char::from(DIGITS[usize::from(b >> 4)]));
        s.push(char::from(DIGITS[usize::from(b & 15)]));
    }
    s
}
