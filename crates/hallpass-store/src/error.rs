//! The one error type of the store and the spool.

use std::io;

use crate::time::fmt_utc;
use crate::types::HeldStatus;

/// What went wrong in the store or the spool. Its `Display` says what was being done and, where
/// there is one, what to do about it; it never contains message content.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// A file or folder operation failed (disk full, read-only file system, permissions…).
    #[error("{context}: {error}")]
    Io {
        /// What was being done, with the path.
        context: String,
        /// The operating system's error.
        error: io::Error,
    },
    /// The database refused or failed.
    #[error("database error: {0}")]
    Db(sqlx::Error),
    /// The database schema could not be brought up to date.
    #[error(
        "could not update the database schema: {0} (is this store from a newer hallpass? restore it or use the matching version)"
    )]
    Migrate(sqlx::migrate::MigrateError),
    /// A quarantine decision was asked for a copy that was already decided.
    #[error("already {status}{}{}", by_text(.by), at_text(.at_ms))]
    AlreadyDecided {
        /// What was decided.
        status: HeldStatus,
        /// Who decided it.
        by: Option<String>,
        /// When (milliseconds since the Unix epoch).
        at_ms: Option<i64>,
    },
    /// No such held message, spool file or record.
    #[error("not found")]
    NotFound,
    /// A user of that name already exists.
    #[error("a user of that name already exists")]
    Exists,
    /// No user of that name.
    #[error("no such user")]
    NoSuchUser,
    /// An id used for a spool file name is not a plain id (letters, digits, `-`, `_`; 1 to 64).
    #[error("invalid id {0:?}: use letters, digits, '-' and '_' only (1 to 64 characters)")]
    InvalidId(String),
    /// A user name that cannot be stored.
    #[error(
        "invalid user name {0:?}: use 1 to 128 characters without spaces or control characters"
    )]
    InvalidUserName(String),
    /// An empty password was given.
    #[error("the password is empty")]
    EmptyPassword,
    /// Hashing or checking a password failed, or the system's random source failed.
    #[error("password hashing failed: {0}")]
    Crypto(String),
    /// The storage settings cannot work (a `[storage] url` that is not PostgreSQL's, an empty
    /// node name).
    #[error("{0}")]
    Settings(String),
    /// A value read from the database is not one this version understands.
    #[error("unexpected value in the database: {0}")]
    Corrupt(String),
    /// A write shared a transaction (group commit) that failed with this error.
    #[error("database error: {0}")]
    Shared(String),
    /// Redis (the shared counters) cannot be used: a bad URL, or no answer.
    #[error("Redis: {0}")]
    Redis(String),
}

fn by_text(by: &Option<String>) -> String {
    by.as_ref().map(|b| format!(" by {b}")).unwrap_or_default()
}

fn at_text(at: &Option<i64>) -> String {
    at.map(|ms| format!(" at {}", fmt_utc(ms)))
        .unwrap_or_default()
}

impl StoreError {
    pub(crate) fn io(context: impl Into<String>, error: io::Error) -> Self {
        StoreError::Io {
            context: context.into(),
            error,
        }
    }

    /// The operating system's error when this is a file or folder error.
    pub fn io_error(&self) -> Option<&io::Error> {
        match self {
            StoreError::Io { error, .. } => Some(error),
            _ => None,
        }
    }
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        StoreError::Db(e)
    }
}

impl From<sqlx::migrate::MigrateError> for StoreError {
    fn from(e: sqlx::migrate::MigrateError) -> Self {
        StoreError::Migrate(e)
    }
}
