//! Helpers shared by the store's tests: a private temp folder removed at the end, and message
//! builders with synthetic addresses.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use hallpass_store::{CopyKind, FindingRecord, NewCopy, NewMessage, new_id};

/// A folder under the system temp dir, removed (with its contents) when dropped.
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new(name: &str) -> TempDir {
        let p = std::env::temp_dir().join(format!(
            "hallpass-store-{name}-{}-{}",
            std::process::id(),
            new_id()
        ));
        TempDir(p)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

pub fn finding(detector: &str, location: &str, count: u32) -> FindingRecord {
    FindingRecord {
        detector: detector.into(),
        location: location.into(),
        count,
        confidence: "high".into(),
    }
}

pub fn copy(kind: CopyKind, spool_id: &str, rcpts: &[&str]) -> NewCopy {
    NewCopy {
        id: new_id(),
        kind,
        spool_id: spool_id.into(),
        recipients: rcpts.iter().map(|r| r.to_string()).collect(),
        rules: Vec::new(),
        findings: Vec::new(),
    }
}

pub fn held_copy(
    spool_id: &str,
    rcpts: &[&str],
    rules: &[&str],
    findings: Vec<FindingRecord>,
) -> NewCopy {
    NewCopy {
        rules: rules.iter().map(|r| r.to_string()).collect(),
        findings,
        ..copy(CopyKind::Hold, spool_id, rcpts)
    }
}

pub fn message(sender: &str, received_ms: i64, copies: Vec<NewCopy>) -> NewMessage {
    let id = new_id();
    let mut spool_ids: Vec<String> = copies.iter().map(|c| c.spool_id.clone()).collect();
    spool_ids.dedup();
    NewMessage {
        id,
        received_ms,
        sender: sender.into(),
        message_id: Some(format!("{}@lumen.sch.uk", new_id())),
        size: 1234,
        spool_ids,
        copies,
    }
}

/// The database behind a test's store. Tests written once run on both (see `both_backends!`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// The PostgreSQL server the tests use: `$HALLPASS_TEST_PG`, else the local one with trust auth.
/// Each test creates its own database there and drops it at the end.
pub fn pg_admin_url() -> String {
    std::env::var("HALLPASS_TEST_PG")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into())
}

/// `url` with its database name replaced by `name`.
fn pg_url_for(url: &str, name: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let after_scheme = base.find("://").map(|i| i + 3).unwrap_or(0);
    let base = match base[after_scheme..].find('/') {
        Some(i) => &base[..after_scheme + i],
        None => base,
    };
    match query {
        Some(q) => format!("{base}/{name}?{q}"),
        None => format!("{base}/{name}"),
    }
}

/// One test's store: a temp folder for the spool (and the SQLite file), and on PostgreSQL a
/// database of its own, dropped when this is dropped.
pub struct Db {
    pub backend: Backend,
    pub tmp: TempDir,
    pg: Option<(String, String)>,
}

impl Db {
    pub async fn sqlite(name: &str) -> Db {
        Db {
            backend: Backend::Sqlite,
            tmp: TempDir::new(name),
            pg: None,
        }
    }

    /// A fresh PostgreSQL database, or None (with a note) when the server cannot be reached,
    /// unless `HALLPASS_REQUIRE_PG=1`, when that fails the test (CI has PostgreSQL).
    pub async fn postgres(name: &str) -> Option<Db> {
        use sqlx::Connection as _;
        let admin = pg_admin_url();
        let mut conn = match sqlx::PgConnection::connect(&admin).await {
            Ok(c) => c,
            Err(e) => {
                if std::env::var("HALLPASS_REQUIRE_PG").as_deref() == Ok("1") {
                    panic!("HALLPASS_REQUIRE_PG=1 but PostgreSQL is unreachable: {e}");
                }
                eprintln!("note: skipping {name} on PostgreSQL (unreachable: {e})");
                return None;
            }
        };
        let db = format!("hp_{}", new_id().to_lowercase().replace('-', "_"));
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {db}")))
            .execute(&mut conn)
            .await
            .unwrap();
        let _ = conn.close().await;
        Some(Db {
            backend: Backend::Postgres,
            tmp: TempDir::new(name),
            pg: Some((admin.clone(), db.clone())),
        })
    }

    /// The url of this test's PostgreSQL database.
    pub fn pg_url(&self) -> Option<String> {
        self.pg.as_ref().map(|(admin, db)| pg_url_for(admin, db))
    }

    /// A store on this database (a second call gives a second handle, as a second relay or a
    /// `hallpass held` command beside the relay would have), with its spool in the temp folder.
    pub async fn open(&self) -> hallpass_store::Store {
        self.open_node("node-a").await
    }

    /// As [`Db::open`], as the relay named `node` (its own spool folder on PostgreSQL).
    pub async fn open_node(&self, node: &str) -> hallpass_store::Store {
        match self.pg_url() {
            None => hallpass_store::Store::open(self.tmp.path()).await.unwrap(),
            Some(url) => {
                hallpass_store::Store::open_shared(&self.tmp.path().join(node), &url, node)
                    .await
                    .unwrap()
            }
        }
    }

    /// A plain connection for looking at rows directly (`$1` placeholders on both).
    pub async fn raw(&self) -> sqlx::AnyConnection {
        use sqlx::Connection as _;
        sqlx::any::install_default_drivers();
        let url = match self.pg_url() {
            Some(url) => url,
            None => format!("sqlite://{}", self.tmp.path().join("hallpass.db").display()),
        };
        sqlx::AnyConnection::connect(&url).await.unwrap()
    }
}

impl Drop for Db {
    fn drop(&mut self) {
        let Some((admin, db)) = self.pg.take() else {
            return;
        };
        // Dropping runs outside any async context's reach: a thread with its own runtime.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async {
                use sqlx::Connection as _;
                if let Ok(mut conn) = sqlx::PgConnection::connect(&admin).await {
                    let _ = sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
                        "DROP DATABASE IF EXISTS {db} WITH (FORCE)"
                    )))
                    .execute(&mut conn)
                    .await;
                }
            });
        })
        .join();
    }
}

/// Runs each named `async fn NAME(db: Db)` once on SQLite and once on PostgreSQL, as the tests
/// `NAME::sqlite` and `NAME::postgres`.
#[allow(unused_macros)]
macro_rules! both_backends {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn sqlite() {
                super::$name($crate::common::Db::sqlite(stringify!($name)).await).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn postgres() {
                if let Some(db) = $crate::common::Db::postgres(stringify!($name)).await {
                    super::$name(db).await;
                }
            }
        }
    )*};
}

/// Accepting as the relay does: the held copies' spool files are written first (a shared store
/// keeps their bytes, read from the spool in the accepting transaction).
pub trait AcceptSpooled {
    fn accept_spooled(
        &self,
        m: &NewMessage,
    ) -> impl std::future::Future<Output = Result<(), hallpass_store::StoreError>> + Send;
}

impl AcceptSpooled for hallpass_store::Store {
    async fn accept_spooled(&self, m: &NewMessage) -> Result<(), hallpass_store::StoreError> {
        for c in m.copies.iter().filter(|c| c.kind == CopyKind::Hold) {
            if self.spool().read(&c.spool_id).await.is_err() {
                self.spool()
                    .write(
                        &c.spool_id,
                        b"Subject: synthetic\r\n\r\nheld for review\r\n",
                    )
                    .await?;
            }
        }
        self.accept(m).await
    }
}
