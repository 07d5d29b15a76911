//! The store: SQLite in WAL mode under `[storage] path`, beside the spool. Opening, accepting a
//! message, and the delivery queue.

use std::collections::{BTreeSet, HashMap};
use std::fs::{self, OpenOptions, Permissions};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;
use std::time::Duration;

use sqlx::sqlite::{
    SqliteConnectOptions, SqliteConnection, SqliteJournalMode, SqlitePool, SqlitePoolOptions,
    SqliteSynchronous,
};
use sqlx::{QueryBuilder, Row, Sqlite, Transaction};

use crate::error::StoreError;
use crate::spool::{FILE_MODE, Spool, check_id, make_private_dir};
use crate::types::{Batch, CopyKind, NewMessage, Outcome, QueueStats};

/// File name of the database inside the storage folder.
pub const DB_FILE: &str = "hallpass.db";
/// Name of the spool folder inside the storage folder.
pub const SPOOL_DIR: &str = "spool";

/// How long a statement waits for another connection or process to finish writing.
const BUSY_TIMEOUT: Duration = Duration::from_secs(30);
/// SQLite writes one at a time; a few connections let reads go on beside a write.
const MAX_CONNECTIONS: u32 = 4;

/// The relay's durable state for one node: queue, quarantine, audit trail, users and counters in
/// SQLite, and the spool of message files. Cheap to clone (clones share the pool and the spool).
#[derive(Debug, Clone)]
pub struct Store {
    pub(crate) pool: SqlitePool,
    spool: Spool,
}

impl Store {
    /// Opens or creates `<dir>/hallpass.db` (WAL, synchronous=FULL, busy_timeout, foreign keys),
    /// creating `<dir>` (0700) and running migrations, and opens the spool at `<dir>/spool`.
    /// Works while another process (`hallpass held list` beside `hallpass serve`) has it open.
    pub async fn open(dir: &Path) -> Result<Store, StoreError> {
        make_private_dir(dir)?;
        let db = dir.join(DB_FILE);
        create_private_file(&db)?;
        let options = SqliteConnectOptions::new()
            .filename(&db)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(BUSY_TIMEOUT)
            .foreign_keys(true);
        let pool = SqlitePoolOptions::new()
            .max_connections(MAX_CONNECTIONS)
            .acquire_timeout(BUSY_TIMEOUT)
            .connect_with(options)
            .await?;
        sqlx::migrate!("./migrations/sqlite").run(&pool).await?;
        let spool = Spool::open(&dir.join(SPOOL_DIR))?;
        Ok(Store { pool, spool })
    }

    /// The spool at `<dir>/spool`.
    pub fn spool(&self) -> &Spool {
        &self.spool
    }

    /// Closes the pool, waiting for statements in flight (for a graceful shutdown).
    pub async fn close(&self) {
        self.pool.close().await;
    }

    /// A write transaction that takes SQLite's write lock at once, so it never fails half-way
    /// because another writer got there first (it waits up to the busy timeout instead).
    pub(crate) async fn begin_write(&self) -> Result<Transaction<'static, Sqlite>, StoreError> {
        Ok(self.pool.begin_with("BEGIN IMMEDIATE").await?)
    }

    /// Records an accepted message, its spool files, copies, recipients, rules and findings in
    /// ONE transaction. Deliver, bounce and notice copies are queued (due at `received_ms`);
    /// hold copies wait in the quarantine.
    pub async fn accept(&self, m: &NewMessage) -> Result<(), StoreError> {
        for id in m
            .spool_ids
            .iter()
            .chain(m.copies.iter().map(|c| &c.spool_id))
        {
            check_id(id)?;
        }
        let mut tx = self.begin_write().await?;
        sqlx::query(
            "INSERT INTO messages (id, received_ms, sender, message_id, size) VALUES (?, ?, ?, ?, ?)",
        )
        .bind(&m.id)
        .bind(m.received_ms)
        .bind(&m.sender)
        .bind(&m.message_id)
        .bind(to_i64(m.size))
        .execute(&mut *tx)
        .await?;
        let spool_ids: BTreeSet<&String> = m
            .spool_ids
            .iter()
            .chain(m.copies.iter().map(|c| &c.spool_id))
            .collect();
        for spool_id in spool_ids {
            sqlx::query(
                "INSERT INTO spool_files (spool_id, message_id) VALUES (?, ?) \
                 ON CONFLICT (spool_id) DO NOTHING",
            )
            .bind(spool_id)
            .bind(&m.id)
            .execute(&mut *tx)
            .await?;
        }
        for c in &m.copies {
            let held = c.kind == CopyKind::Hold;
            sqlx::query(
                "INSERT INTO copies (id, message_id, kind, spool_id, status, queued_ms) \
                 VALUES (?, ?, ?, ?, ?, ?)",
            )
            .bind(&c.id)
            .bind(&m.id)
            .bind(c.kind.as_str())
            .bind(&c.spool_id)
            .bind(held.then_some("held"))
            .bind((!held).then_some(m.received_ms))
            .execute(&mut *tx)
            .await?;
            for (ord, rcpt) in c.recipients.iter().enumerate() {
                sqlx::query(
                    "INSERT INTO recipients (copy_id, ord, address, state, next_attempt_ms, updated_ms) \
                     VALUES (?, ?, ?, ?, ?, ?)",
                )
                .bind(&c.id)
                .bind(to_i64(ord))
                .bind(rcpt)
                .bind(if held { "held" } else { "queued" })
                .bind((!held).then_some(m.received_ms))
                .bind(m.received_ms)
                .execute(&mut *tx)
                .await?;
            }
            for rule in &c.rules {
                sqlx::query(
                    "INSERT INTO copy_rules (copy_id, rule) VALUES (?, ?) \
                     ON CONFLICT (copy_id, rule) DO NOTHING",
                )
                .bind(&c.id)
                .bind(rule)
                .execute(&mut *tx)
                .await?;
            }
            for (ord, f) in c.findings.iter().enumerate() {
                sqlx::query(
                    "INSERT INTO findings (copy_id, ord, detector, location, count, confidence) \
                     VALUES (?, ?, ?, ?, ?, ?)",
                )
                .bind(&c.id)
                .bind(to_i64(ord))
                .bind(&f.detector)
                .bind(&f.location)
                .bind(i64::from(f.count))
                .bind(&f.confidence)
                .execute(&mut *tx)
                .await?;
            }
        }
        tx.commit().await?;
        Ok(())
    }

    /// Claims up to `limit` due copies: recipients in state queued with next_attempt <= now_ms
    /// become `sending` with a lease (owner, lease_until = now+lease_ms) in one UPDATE, so two
    /// workers (or two relays later) never take the same recipient. Grouped by copy, oldest
    /// copy first.
    pub async fn claim_due(
        &self,
        owner: &str,
        now_ms: i64,
        lease_ms: i64,
        limit: u32,
    ) -> Result<Vec<Batch>, StoreError> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let mut tx = self.begin_write().await?;
        let claimed = sqlx::query(
            "UPDATE recipients \
             SET state = 'sending', lease_owner = ?, lease_until_ms = ?, updated_ms = ? \
             WHERE state = 'queued' AND next_attempt_ms <= ? AND copy_id IN ( \
                 SELECT copy_id FROM recipients \
                 WHERE state = 'queued' AND next_attempt_ms <= ? \
                 GROUP BY copy_id ORDER BY MIN(next_attempt_ms), copy_id LIMIT ?) \
             RETURNING id, copy_id, ord, address, attempts",
        )
        .bind(owner)
        .bind(now_ms.saturating_add(lease_ms))
        .bind(now_ms)
        .bind(now_ms)
        .bind(now_ms)
        .bind(i64::from(limit))
        .fetch_all(&mut *tx)
        .await?;
        if claimed.is_empty() {
            tx.commit().await?;
            return Ok(Vec::new());
        }
        // copy id -> [(ord, row id, address, attempts)]
        let mut by_copy: HashMap<String, Vec<(i64, i64, String, i64)>> = HashMap::new();
        for row in &claimed {
            by_copy.entry(row.try_get("copy_id")?).or_default().push((
                row.try_get("ord")?,
                row.try_get("id")?,
                row.try_get("address")?,
                row.try_get("attempts")?,
            ));
        }
        let mut q = QueryBuilder::<Sqlite>::new(
            "SELECT c.id, COALESCE(c.send_spool_id, c.spool_id) AS spool_id, c.kind, \
             c.queued_ms, m.sender \
             FROM copies c JOIN messages m ON m.id = c.message_id WHERE c.id IN (",
        );
        let mut list = q.separated(", ");
        for id in by_copy.keys() {
            list.push_bind(id.clone());
        }
        q.push(") ORDER BY c.queued_ms, c.id");
        let copies = q.build().fetch_all(&mut *tx).await?;
        tx.commit().await?;

        let mut batches = Vec::with_capacity(copies.len());
        for row in copies {
            let copy_id: String = row.try_get("id")?;
            let kind: String = row.try_get("kind")?;
            let mut rcpts = by_copy.remove(&copy_id).unwrap_or_default();
            rcpts.sort();
            let attempts = rcpts.iter().map(|r| r.3).max().unwrap_or(0);
            batches.push(Batch {
                spool_id: row.try_get("spool_id")?,
                sender: row.try_get("sender")?,
                kind: kind.parse().map_err(corrupt)?,
                recipients: rcpts.into_iter().map(|(_, id, a, _)| (id, a)).collect(),
                attempts: u32::try_from(attempts).unwrap_or(u32::MAX),
                first_queued_ms: row.try_get::<Option<i64>, _>("queued_ms")?.unwrap_or(0),
                copy_id,
            });
        }
        Ok(batches)
    }

    /// Records per-recipient results of one attempt (one transaction). Each counts an attempt
    /// and keeps the reply. A recipient already in a final state (delivered, failed, expired,
    /// rejected) is left as it is, so recording the same result twice changes nothing.
    pub async fn record(&self, results: &[(i64, Outcome)], now_ms: i64) -> Result<(), StoreError> {
        if results.is_empty() {
            return Ok(());
        }
        let mut tx = self.begin_write().await?;
        for (id, outcome) in results {
            let (state, reply, next) = match outcome {
                Outcome::Delivered { reply } => ("delivered", reply, None),
                Outcome::Deferred {
                    reply,
                    next_attempt_ms,
                } => ("queued", reply, Some(*next_attempt_ms)),
                Outcome::Failed { reply } => ("failed", reply, None),
                Outcome::Expired { reply } => ("expired", reply, None),
            };
            sqlx::query(
                "UPDATE recipients SET state = ?, last_reply = ?, next_attempt_ms = ?, \
                 attempts = attempts + 1, lease_owner = NULL, lease_until_ms = NULL, updated_ms = ? \
                 WHERE id = ? AND state IN ('queued', 'sending')",
            )
            .bind(state)
            .bind(reply)
            .bind(next)
            .bind(now_ms)
            .bind(id)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Recipients left `sending` whose lease expired (a crash mid-send) go back to `queued`,
    /// due at once. Called at start-up and periodically. Returns how many.
    pub async fn requeue_expired(&self, now_ms: i64) -> Result<u64, StoreError> {
        let done = sqlx::query(
            "UPDATE recipients SET state = 'queued', lease_owner = NULL, lease_until_ms = NULL, \
             updated_ms = ? WHERE state = 'sending' AND lease_until_ms <= ?",
        )
        .bind(now_ms)
        .bind(now_ms)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected())
    }

    /// Earliest next_attempt among queued recipients (for the worker's sleep), if any.
    pub async fn next_due(&self) -> Result<Option<i64>, StoreError> {
        let next: Option<i64> = sqlx::query_scalar(
            "SELECT MIN(next_attempt_ms) FROM recipients WHERE state = 'queued'",
        )
        .fetch_one(&self.pool)
        .await?;
        Ok(next)
    }

    /// Queue depth (recipients queued or sending) and age of the oldest, and how many copies are
    /// held, for metrics and the console.
    pub async fn queue_stats(&self, now_ms: i64) -> Result<QueueStats, StoreError> {
        let row = sqlx::query(
            "SELECT COUNT(*) AS n, MIN(c.queued_ms) AS oldest FROM recipients r \
             JOIN copies c ON c.id = r.copy_id WHERE r.state IN ('queued', 'sending')",
        )
        .fetch_one(&self.pool)
        .await?;
        let queued: i64 = row.try_get("n")?;
        let oldest: Option<i64> = row.try_get("oldest")?;
        let held: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM copies WHERE kind = 'hold' AND status = 'held'",
        )
        .fetch_one(&self.pool)
        .await?;
        Ok(QueueStats {
            queued: to_u64(queued),
            oldest_age_ms: oldest.map(|t| now_ms.saturating_sub(t).max(0)),
            held: to_u64(held),
        })
    }

    /// Spool ids nothing needs any more: no recipient of a copy sent from the file is still
    /// held, queued or being sent, and no held copy that a DPO may still review (one not purged
    /// by [`Store::purge`]) was accepted with it. The caller deletes the file, then calls
    /// [`Store::forget_spool`].
    pub async fn finished_spool_ids(&self, limit: u32) -> Result<Vec<String>, StoreError> {
        let ids: Vec<String> = sqlx::query_scalar(concat!(
            "SELECT s.spool_id FROM spool_files s WHERE ",
            finished!(),
            " ORDER BY s.spool_id LIMIT ?"
        ))
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        Ok(ids)
    }

    /// Of `ids` (files found in the spool), those the store has no record of:
    /// written before a crash, or for a message that was then refused with
    /// 451 (the client still has it and will send it again).
    pub async fn unknown_spool_ids(&self, ids: &[String]) -> Result<Vec<String>, StoreError> {
        let mut unknown = Vec::new();
        for id in ids {
            let known: Option<String> =
                sqlx::query_scalar("SELECT spool_id FROM spool_files WHERE spool_id = ?")
                    .bind(id)
                    .fetch_optional(&self.pool)
                    .await?;
            if known.is_none() {
                unknown.push(id.clone());
            }
        }
        Ok(unknown)
    }

    /// Forgets a spool file the caller has deleted.
    pub async fn forget_spool(&self, spool_id: &str) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM spool_files WHERE spool_id = ?")
            .bind(spool_id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// A connection for a group of reads.
    pub(crate) async fn read_conn(&self) -> Result<sqlx::pool::PoolConnection<Sqlite>, StoreError> {
        Ok(self.pool.acquire().await?)
    }
}

/// Creates the database file 0600 before SQLite does (SQLite gives its `-wal` and `-shm` files
/// the database file's mode), and narrows an existing one.
fn create_private_file(path: &Path) -> Result<(), StoreError> {
    let ctx = |what: &str| format!("{what} database file {}", path.display());
    let f = OpenOptions::new()
        .append(true)
        .create(true)
        .mode(FILE_MODE)
        .open(path)
        .map_err(|e| StoreError::io(ctx("creating"), e))?;
    let mode = f
        .metadata()
        .map_err(|e| StoreError::io(ctx("reading"), e))?
        .permissions()
        .mode();
    if mode & 0o077 != 0 {
        fs::set_permissions(path, Permissions::from_mode(FILE_MODE))
            .map_err(|e| StoreError::io(ctx("making private (mode 0600)"), e))?;
    }
    Ok(())
}

pub(crate) fn to_i64<T: TryInto<i64>>(n: T) -> i64 {
    n.try_into().unwrap_or(i64::MAX)
}

pub(crate) fn to_u64(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}

pub(crate) fn corrupt(e: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(e.to_string())
}

/// The condition on `spool_files s` under which its file is no longer needed (see
/// [`Store::finished_spool_ids`]); a macro so that queries built with it stay `&'static str`.
macro_rules! finished {
    () => {
        "NOT EXISTS ( \
             SELECT 1 FROM copies c WHERE c.spool_id = s.spool_id \
             AND c.kind = 'hold' AND c.purged_ms IS NULL) \
         AND NOT EXISTS ( \
             SELECT 1 FROM copies c JOIN recipients r ON r.copy_id = c.id \
             WHERE c.send_spool_id IS NULL AND c.spool_id = s.spool_id \
             AND r.state IN ('held', 'queued', 'sending')) \
         AND NOT EXISTS ( \
             SELECT 1 FROM copies c JOIN recipients r ON r.copy_id = c.id \
             WHERE c.send_spool_id = s.spool_id \
             AND r.state IN ('held', 'queued', 'sending'))"
    };
}
pub(crate) use finished;

/// So that helpers can take either a transaction or a pooled connection.
pub(crate) type Conn = SqliteConnection;
