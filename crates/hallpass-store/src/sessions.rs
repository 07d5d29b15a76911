//! The console's login sessions, kept in the store: every relay's console knows them, so a DPO
//! behind a load balancer stays logged in whichever relay answers, and a password reset or an
//! account removed from the terminal ends that account's sessions everywhere. Only a SHA-256 of
//! each session id (the cookie's value) is kept, so reading the store gives no one a session.
//! When a session expires is the console's policy; the store only keeps the times.

use sqlx::Row;

use crate::error::StoreError;
use crate::store::{Conn, Store};
use crate::users::token_hash;

/// Proof of a password checked just now ([`Store::user_verify_stamped`]): a session started with
/// it ([`Store::session_create`]) is created only if the account still has that password and is
/// enabled, so a login racing a password reset or a disabling cannot outlive it.
#[derive(Clone)]
pub struct PasswordStamp(pub(crate) String);

impl std::fmt::Debug for PasswordStamp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PasswordStamp(..)")
    }
}

/// Ends `user`'s sessions but `keep`, within the caller's transaction (a password reset, a
/// disabling or a removal and the end of the sessions are one change).
pub(crate) async fn end_sessions(
    tx: &mut Conn,
    user: &str,
    keep: Option<&str>,
) -> Result<u64, StoreError> {
    let done = sqlx::query("DELETE FROM console_sessions WHERE user_name = $1 AND id_hash <> $2")
        .bind(user)
        .bind(keep.map(token_hash).unwrap_or_default())
        .execute(&mut *tx)
        .await?;
    Ok(done.rows_affected())
}

/// A login session as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsoleSession {
    /// The account name.
    pub user: String,
    /// The token state-changing requests of this session must carry.
    pub csrf: String,
    /// When it started.
    pub created_ms: i64,
    /// When it was last used (recorded at most every minute or so: see [`Store::session_seen`]).
    pub last_seen_ms: i64,
}

/// A one-time message for a session's next page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionFlash {
    /// An error (or refusal) rather than an outcome.
    pub error: bool,
    /// In words.
    pub text: String,
}

impl Store {
    /// Records a new session `id` (the cookie's value) for `user`, whose password `stamp` was
    /// checked: false (and no session) when the account's password has changed since, or it
    /// was disabled or removed.
    pub async fn session_create(
        &self,
        id: &str,
        user: &str,
        csrf: &str,
        now_ms: i64,
        stamp: &PasswordStamp,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "INSERT INTO console_sessions (id_hash, user_name, csrf, created_ms, last_seen_ms) \
             SELECT CAST($1 AS TEXT), CAST($2 AS TEXT), CAST($3 AS TEXT), \
                    CAST($4 AS BIGINT), CAST($4 AS BIGINT) \
             WHERE EXISTS (SELECT 1 FROM users \
                           WHERE name = $2 AND password_hash = $5 AND NOT disabled)",
        )
        .bind(token_hash(id))
        .bind(user)
        .bind(csrf)
        .bind(now_ms)
        .bind(&stamp.0)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// The session with this id, if there is one.
    pub async fn session_get(&self, id: &str) -> Result<Option<ConsoleSession>, StoreError> {
        let row = sqlx::query(
            "SELECT user_name, csrf, created_ms, last_seen_ms FROM console_sessions \
             WHERE id_hash = $1",
        )
        .bind(token_hash(id))
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| {
            Ok(ConsoleSession {
                user: r.try_get("user_name")?,
                csrf: r.try_get("csrf")?,
                created_ms: r.try_get("created_ms")?,
                last_seen_ms: r.try_get("last_seen_ms")?,
            })
        })
        .transpose()
    }

    /// Records that the session was used at `now_ms` (never moving the time back).
    pub async fn session_seen(&self, id: &str, now_ms: i64) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE console_sessions SET last_seen_ms = $1 \
             WHERE id_hash = $2 AND last_seen_ms < $1",
        )
        .bind(now_ms)
        .bind(token_hash(id))
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Ends a session; true when there was one.
    pub async fn session_remove(&self, id: &str) -> Result<bool, StoreError> {
        let done = sqlx::query("DELETE FROM console_sessions WHERE id_hash = $1")
            .bind(token_hash(id))
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() > 0)
    }

    /// Ends every session of `user` but `keep`; returns how many ended.
    pub async fn session_remove_user(
        &self,
        user: &str,
        keep: Option<&str>,
    ) -> Result<u64, StoreError> {
        let mut conn = self.pool.acquire().await?;
        end_sessions(&mut conn, user, keep).await
    }

    /// Ends the sessions last used at or before `idle_before_ms` or started at or before
    /// `started_before_ms`; returns how many ended.
    pub async fn session_prune(
        &self,
        idle_before_ms: i64,
        started_before_ms: i64,
    ) -> Result<u64, StoreError> {
        let done = sqlx::query(
            "DELETE FROM console_sessions WHERE last_seen_ms <= $1 OR created_ms <= $2",
        )
        .bind(idle_before_ms)
        .bind(started_before_ms)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected())
    }

    /// Sets the message for the session's next page (replacing one not yet shown).
    pub async fn session_set_flash(
        &self,
        id: &str,
        flash: &SessionFlash,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE console_sessions SET flash_error = $1, flash_text = $2 WHERE id_hash = $3",
        )
        .bind(i64::from(flash.error))
        .bind(&flash.text)
        .bind(token_hash(id))
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// The message for this page, once: whoever clears it takes it, so two pages loaded at once
    /// (or on two relays) cannot both show it.
    pub async fn session_take_flash(&self, id: &str) -> Result<Option<SessionFlash>, StoreError> {
        let hash = token_hash(id);
        let row = sqlx::query(
            "SELECT flash_error, flash_text FROM console_sessions \
             WHERE id_hash = $1 AND flash_text IS NOT NULL",
        )
        .bind(&hash)
        .fetch_optional(&self.pool)
        .await?;
        let Some(row) = row else { return Ok(None) };
        let flash = SessionFlash {
            error: row.try_get::<Option<i64>, _>("flash_error")?.unwrap_or(0) != 0,
            text: row.try_get("flash_text")?,
        };
        // Cleared only if it is still the same message: a page that loses the race shows none.
        let done = sqlx::query(
            "UPDATE console_sessions SET flash_error = NULL, flash_text = NULL \
             WHERE id_hash = $1 AND flash_text = $2",
        )
        .bind(&hash)
        .bind(&flash.text)
        .execute(&self.pool)
        .await?;
        Ok((done.rows_affected() == 1).then_some(flash))
    }
}
