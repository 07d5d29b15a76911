//! The two databases behind one set of queries: SQLite (the default, one node) and PostgreSQL
//! (several relays sharing a store). Both are reached through sqlx's `Any` driver, so each query
//! is written once, with `$1`, `$2` … placeholders, which SQLite accepts as well as PostgreSQL.
//!
//! What `Any` cannot do is kept here: connecting with SQLite's settings (WAL, synchronous=FULL,
//! busy timeout, foreign keys) as PRAGMAs on each new connection, choosing the migrations, and
//! [`Sql`], a query builder that numbers its placeholders (sqlx's `QueryBuilder<Any>` writes `?`,
//! which PostgreSQL refuses).

use std::fmt::Write as _;
use std::path::Path;
use std::time::Duration;

use sqlx::any::{AnyArguments, AnyPoolOptions};
use sqlx::query::Query;
use sqlx::{Any, AnyPool, Arguments, AssertSqlSafe, Encode, Executor, Type};

use crate::error::StoreError;

/// How long a statement waits for another connection or process to finish writing (SQLite), or
/// for a connection from the pool.
pub(crate) const BUSY_TIMEOUT: Duration = Duration::from_secs(30);
/// SQLite writes one at a time; a few connections let reads go on beside a write.
const SQLITE_CONNECTIONS: u32 = 4;
/// PostgreSQL writes concurrently; each relay keeps a modest pool (the server's default limit is
/// 100 connections for all relays and tools together).
const POSTGRES_CONNECTIONS: u32 = 16;

/// Which database a [`crate::Store`] is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// The embedded store, `<[storage] path>/hallpass.db`: one relay.
    Sqlite,
    /// A shared store (`[storage] url = "postgres://…"`): one or more relays.
    Postgres,
}

impl Backend {
    /// The statement that opens a write transaction: SQLite takes its write lock at once, so a
    /// transaction never fails half-way because another writer got there first.
    pub(crate) fn begin_write(self) -> &'static str {
        match self {
            Backend::Sqlite => "BEGIN IMMEDIATE",
            Backend::Postgres => "BEGIN",
        }
    }
}

fn install_drivers() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(sqlx::any::install_default_drivers);
}

/// Opens `db` (an existing file, already made private by the caller) in WAL mode and brings its
/// schema up to date.
pub(crate) async fn connect_sqlite(db: &Path) -> Result<AnyPool, StoreError> {
    install_drivers();
    // The URL must hold an absolute path: `sqlite://data/x.db` reads `data` as a host, and
    // `config/../data` would lose its `..` to URL normalisation. The file exists (the caller
    // made it), so its real path is known.
    let db = db
        .canonicalize()
        .map_err(|e| StoreError::io(format!("finding the database file {}", db.display()), e))?;
    let path = db
        .to_str()
        .ok_or_else(|| StoreError::Settings(format!("{} is not UTF-8", db.display())))?;
    // Percent-encode what a URL would read as its query, fragment or an escape.
    let mut encoded = String::with_capacity(path.len());
    for c in path.chars() {
        match c {
            '%' | '?' | '#' => {
                let _ = write!(encoded, "%{:02X}", c as u32);
            }
            c => encoded.push(c),
        }
    }
    let url = format!("sqlite://{encoded}?mode=rwc");
    let pool = AnyPoolOptions::new()
        .max_connections(SQLITE_CONNECTIONS)
        .acquire_timeout(BUSY_TIMEOUT)
        .after_connect(|conn, _| {
            Box::pin(async move {
                conn.execute(sqlx::raw_sql(concat!(
                    "PRAGMA busy_timeout = 30000; PRAGMA foreign_keys = ON; ",
                    "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL;"
                )))
                .await?;
                Ok(())
            })
        })
        .connect(&url)
        .await?;
    sqlx::migrate!("./migrations/sqlite").run(&pool).await?;
    Ok(pool)
}

/// Connects to the PostgreSQL database at `url` and brings its schema up to date (several relays
/// starting at once take turns: sqlx holds an advisory lock while it migrates).
pub(crate) async fn connect_postgres(url: &str) -> Result<AnyPool, StoreError> {
    install_drivers();
    if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
        return Err(StoreError::Settings(
            "[storage] url must start with postgres:// or postgresql://".into(),
        ));
    }
    let pool = AnyPoolOptions::new()
        .max_connections(POSTGRES_CONNECTIONS)
        .acquire_timeout(BUSY_TIMEOUT)
        .connect(url)
        .await?;
    sqlx::migrate!("./migrations/postgres").run(&pool).await?;
    Ok(pool)
}

/// A query built in pieces, with numbered placeholders (`$1`, `$2` …) that both databases read.
pub(crate) struct Sql {
    text: String,
    args: AnyArguments,
    n: usize,
}

impl Sql {
    pub(crate) fn new(text: &str) -> Sql {
        Sql {
            text: text.to_string(),
            args: AnyArguments::default(),
            n: 0,
        }
    }

    /// Appends SQL text.
    pub(crate) fn push(&mut self, text: &str) -> &mut Sql {
        self.text.push_str(text);
        self
    }

    /// Appends a placeholder bound to `value`.
    pub(crate) fn bind<'q, T>(&mut self, value: T) -> &mut Sql
    where
        T: Encode<'q, Any> + Type<Any>,
    {
        self.n += 1;
        let _ = write!(self.text, "${}", self.n);
        // Encoding into Any's buffer only copies the value; it cannot fail for the types used.
        let _ = self.args.add(value);
        self
    }

    /// Appends `(p1, p2, …)` bound to `values` (at least one).
    pub(crate) fn bind_list<'q, T, I>(&mut self, values: I) -> &mut Sql
    where
        T: Encode<'q, Any> + Type<Any>,
        I: IntoIterator<Item = T>,
    {
        self.push("(");
        for (i, v) in values.into_iter().enumerate() {
            if i > 0 {
                self.push(", ");
            }
            self.bind(v);
        }
        self.push(")")
    }

    pub(crate) fn build(self) -> Query<'static, Any, AnyArguments> {
        sqlx::query_with(AssertSqlSafe(self.text), self.args)
    }
}
