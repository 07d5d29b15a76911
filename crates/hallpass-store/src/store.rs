//! The store: SQLite in WAL mode under `[storage] path`, beside the spool, or PostgreSQL shared
//! by several relays (`[storage] url`). Opening, accepting a message, and the delivery queue.

use std::collections::{BTreeSet, HashMap};
use std::fs::{self, OpenOptions, Permissions};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;
use std::sync::Arc;

use sqlx::{Any, AnyConnection, AnyPool, Row, Transaction};

use crate::db::{Backend, Sql};
use crate::error::StoreError;
use crate::group::{Waiting, Work};
use crate::spool::{FILE_MODE, Spool, check_id, make_private_dir};
use crate::types::{Batch, CopyKind, NewMessage, Outcome, QueueStats};

/// File name of the database inside the storage folder.
pub const DB_FILE: &str = "hallpass.db";
/// Name of the spool folder inside the storage folder.
pub const SPOOL_DIR: &str = "spool";

/// The relay's durable state: queue, quarantine, audit trail, users and counters in SQLite (one
/// node) or PostgreSQL (shared by several relays), and this node's spool of message files. Cheap
/// to clone (clones share the pool and the spool).
#[derive(Debug, Clone)]
pub struct Store {
    pub(crate) pool: AnyPool,
    pub(crate) spool: Spool,
    pub(crate) backend: Backend,
    /// This relay's node id in `spool_files.node` ('' on SQLite, where there is one node).
    pub(crate) node: String,
    /// This process's writers take turns here before they ask SQLite for its write lock: a
    /// writer that finds the database locked sleeps in SQLite's busy handler (1, 2, 5, 10 … ms)
    /// instead of waking when the lock frees, which under load costs more than the writes.
    write_turn: Arc<tokio::sync::Mutex<()>>,
    /// Writes waiting for the next group commit (`group.rs`).
    waiting: Arc<std::sync::Mutex<Vec<Waiting>>>,
    /// On a shared store, the connection holding this relay's node lock ([`Store::claim_node`]).
    node_lock: Arc<tokio::sync::Mutex<Option<sqlx::AnyConnection>>>,
}

/// A write transaction holding this process's write turn; derefs to the connection.
pub(crate) struct WriteTx {
    tx: Transaction<'static, Any>,
    /// None on PostgreSQL, whose writers do not queue behind one another.
    _turn: Option<tokio::sync::OwnedMutexGuard<()>>,
}

impl WriteTx {
    pub(crate) async fn commit(self) -> Result<(), sqlx::Error> {
        self.tx.commit().await
    }

    pub(crate) async fn rollback(self) -> Result<(), sqlx::Error> {
        self.tx.rollback().await
    }
}

impl std::ops::Deref for WriteTx {
    type Target = AnyConnection;
    fn deref(&self) -> &AnyConnection {
        &self.tx
    }
}

impl std::ops::DerefMut for WriteTx {
    fn deref_mut(&mut self) -> &mut AnyConnection {
        &mut self.tx
    }
}

impl Store {
    /// Opens or creates `<dir>/hallpass.db` (WAL, synchronous=FULL, busy_timeout, foreign keys),
    /// creating `<dir>` (0700) and running migrations, and opens the spool at `<dir>/spool`.
    /// Works while another process (`hallpass held list` beside `hallpass serve`) has it open.
    pub async fn open(dir: &Path) -> Result<Store, StoreError> {
        make_private_dir(dir)?;
        let db = dir.join(DB_FILE);
        create_private_file(&db)?;
        let pool = crate::db::connect_sqlite(&db).await?;
        let spool = Spool::open(&dir.join(SPOOL_DIR))?;
        Ok(Store {
            pool,
            spool,
            backend: Backend::Sqlite,
            node: String::new(),
            write_turn: Arc::default(),
            waiting: Arc::default(),
            node_lock: Arc::default(),
        })
    }

    /// Opens the shared store at `url` (`postgres://…`), bringing its schema up to date, and this
    /// relay's spool at `<dir>/spool` (creating `<dir>`, 0700). `node` names this relay's spool
    /// in the shared store: the relay delivers the copies whose files are in its spool, and any
    /// held copy (whose bytes the store keeps) once it is released. It must stay the same across
    /// restarts and differ between relays.
    pub async fn open_shared(dir: &Path, url: &str, node: &str) -> Result<Store, StoreError> {
        if node.is_empty() {
            return Err(StoreError::Settings("[storage] node is empty".into()));
        }
        make_private_dir(dir)?;
        let pool = crate::db::connect_postgres(url).await?;
        let spool = Spool::open(&dir.join(SPOOL_DIR))?.with_shared(pool.clone());
        Ok(Store {
            pool,
            spool,
            backend: Backend::Postgres,
            node: node.to_string(),
            write_turn: Arc::default(),
            waiting: Arc::default(),
            node_lock: Arc::default(),
        })
    }

    /// Makes sure no other relay runs as this node: on a shared store, takes a PostgreSQL
    /// session lock named after the node and keeps it for as long as the process lives (the
    /// database frees it when the connection goes, also after `kill -9`). Two relays with one
    /// node name would requeue each other's deliveries in flight and send them twice. `serve`
    /// calls this; the terminal commands beside it do not. Nothing to do on SQLite.
    pub async fn claim_node(&self) -> Result<(), StoreError> {
        if self.backend != Backend::Postgres {
            return Ok(());
        }
        let mut held = self.node_lock.lock().await;
        if held.is_some() {
            return Ok(());
        }
        let mut conn = self.pool.acquire().await?.detach();
        let got: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock(hashtext($1))")
            .bind(format!("hallpass node {}", self.node))
            .fetch_one(&mut conn)
            .await?;
        if !got {
            return Err(StoreError::Settings(format!(
                "another relay is running as node {:?} on this store; give each relay its own [storage] node",
                self.node
            )));
        }
        *held = Some(conn);
        Ok(())
    }

    /// Which database this store is on.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// This relay's node id in a shared store ('' on SQLite).
    pub fn node(&self) -> &str {
        &self.node
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
    /// because another writer got there first (it waits up to the busy timeout instead). Writers
    /// of this process take turns first (see `write_turn`); other processes, such as `hallpass
    /// held release` beside `hallpass serve`, meet them at SQLite's lock.
    pub(crate) async fn begin_write(&self) -> Result<WriteTx, StoreError> {
        if self.backend == Backend::Postgres {
            let tx = self.pool.begin_with(self.backend.begin_write()).await?;
            return Ok(WriteTx { tx, _turn: None });
        }
        let turn = self.write_turn.clone().lock_owned().await;
        let tx = self.pool.begin_with(self.backend.begin_write()).await?;
        Ok(WriteTx {
            tx,
            _turn: Some(turn),
        })
    }

    /// Records an accepted message, its spool files, copies, recipients, rules and findings in
    /// ONE transaction. Deliver, bounce and notice copies are queued (due at `received_ms`);
    /// hold copies wait in the quarantine.
    ///
    /// Group commit: messages accepted at the same moment by concurrent sessions share one
    /// transaction (one fsync). Whoever gets the write turn writes everything waiting; if that
    /// transaction fails, each message is written on its own so that one bad record cannot
    /// refuse the others. This returns only once the message's own record is committed (or has
    /// failed); if the call is dropped first, the record may still be committed, as a record
    /// whose client never heard 250 (it sends again; see DESIGN.md).
    pub async fn accept(&self, m: &NewMessage) -> Result<(), StoreError> {
        for id in m
            .spool_ids
            .iter()
            .chain(m.copies.iter().map(|c| &c.spool_id))
        {
            check_id(id)?;
        }
        if self.backend == Backend::Postgres {
            return self.accept_shared(m).await;
        }
        self.group_write(Work::Accept(m.clone())).await.map(drop)
    }

    /// Accepted messages and delivery results waiting for the next group commit.
    pub(crate) fn waiting(&self) -> std::sync::MutexGuard<'_, Vec<Waiting>> {
        self.waiting
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// This process's turn to write (SQLite).
    pub(crate) fn write_turn(&self) -> Arc<tokio::sync::Mutex<()>> {
        self.write_turn.clone()
    }

    /// Claims up to `limit` due copies: recipients in state queued with next_attempt <= now_ms
    /// become `sending` with a lease (owner, lease_until = now+lease_ms) in one UPDATE, so two
    /// workers (or two relays) never take the same recipient. Grouped by copy, oldest copy
    /// first. On a shared store, only copies this node can send: its file is in this node's
    /// spool, or the store keeps its bytes (a held copy, released on any relay).
    /// On PostgreSQL the UPDATE re-checks `state = 'queued'` on each row it waits for, so a
    /// relay that loses a race for a recipient simply does not get it.
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
        let claimed = sqlx::query(concat!(
            "UPDATE recipients \
             SET state = 'sending', lease_owner = $1, lease_until_ms = $2, updated_ms = $3 \
             WHERE state = 'queued' AND next_attempt_ms <= $4 AND copy_id IN ( \
                 SELECT r.copy_id FROM recipients r \
                 WHERE r.state = 'queued' AND r.next_attempt_ms <= $5 AND ",
            claimable!("$7"),
            " GROUP BY r.copy_id ORDER BY MIN(r.next_attempt_ms), r.copy_id LIMIT $6) \
             RETURNING id, copy_id, ord, address, attempts"
        ))
        .bind(owner)
        .bind(now_ms.saturating_add(lease_ms))
        .bind(now_ms)
        .bind(now_ms)
        .bind(now_ms)
        .bind(i64::from(limit))
        .bind(&self.node)
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
        let mut q = Sql::new(
            "SELECT c.id, COALESCE(c.send_spool_id, c.spool_id) AS spool_id, c.kind, \
             c.queued_ms, m.sender \
             FROM copies c JOIN messages m ON m.id = c.message_id WHERE c.id IN ",
        );
        q.bind_list(by_copy.keys().cloned())
            .push(" ORDER BY c.queued_ms, c.id");
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
        if self.backend == Backend::Postgres {
            let mut tx = self.begin_write().await?;
            record_rows(&mut tx, results, now_ms).await?;
            tx.commit().await?;
            return Ok(());
        }
        self.group_write(Work::Record(results.to_vec(), now_ms))
            .await
            .map(drop)
    }

    /// Recipients left `sending` whose lease expired (a crash mid-send) go back to `queued`,
    /// due at once. Called at start-up and periodically. Returns how many.
    pub async fn requeue_expired(&self, now_ms: i64) -> Result<u64, StoreError> {
        let mut tx = self.begin_write().await?;
        let done = sqlx::query(
            "UPDATE recipients SET state = 'queued', lease_owner = NULL, lease_until_ms = NULL, \
             updated_ms = $1 WHERE state = 'sending' AND lease_until_ms <= $2",
        )
        .bind(now_ms)
        .bind(now_ms)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(done.rows_affected())
    }

    /// Earliest next_attempt among queued recipients this node can deliver (for the worker's
    /// sleep), if any.
    pub async fn next_due(&self) -> Result<Option<i64>, StoreError> {
        let next: Option<i64> = sqlx::query_scalar(concat!(
            "SELECT MIN(r.next_attempt_ms) FROM recipients r WHERE r.state = 'queued' AND ",
            claimable!("$1")
        ))
        .bind(&self.node)
        .fetch_one(&self.pool)
        .await?;
        Ok(next)
    }

    /// Whether the database answers a query (for a health check).
    pub async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
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

    /// Spool ids in this node's spool that nothing needs any more: no recipient of a copy sent from the file is still
    /// held, queued or being sent, and no held copy that a DPO may still review (one not purged
    /// by [`Store::purge`]) was accepted with it. The caller deletes the file, then calls
    /// [`Store::forget_spools`].
    pub async fn finished_spool_ids(&self, limit: u32) -> Result<Vec<String>, StoreError> {
        let ids: Vec<String> = sqlx::query_scalar(concat!(
            "SELECT s.spool_id FROM spool_files s WHERE s.node = $2 AND ",
            finished!(),
            " ORDER BY s.spool_id LIMIT $1"
        ))
        .bind(i64::from(limit))
        .bind(&self.node)
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
                sqlx::query_scalar("SELECT spool_id FROM spool_files WHERE spool_id = $1")
                    .bind(id)
                    .fetch_optional(&self.pool)
                    .await?;
            if known.is_none() {
                unknown.push(id.clone());
            }
        }
        Ok(unknown)
    }

    /// Forgets spool files the caller has deleted (one transaction).
    pub async fn forget_spools(&self, spool_ids: &[String]) -> Result<(), StoreError> {
        if spool_ids.is_empty() {
            return Ok(());
        }
        let mut tx = self.begin_write().await?;
        for id in spool_ids {
            sqlx::query("DELETE FROM spool_files WHERE spool_id = $1")
                .bind(id)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// A connection for a group of reads.
    pub(crate) async fn read_conn(&self) -> Result<sqlx::pool::PoolConnection<Any>, StoreError> {
        Ok(self.pool.acquire().await?)
    }
}

/// The per-recipient results of delivery attempts (see [`Store::record`]).
pub(crate) async fn record_rows(
    tx: &mut Conn,
    results: &[(i64, Outcome)],
    now_ms: i64,
) -> Result<(), StoreError> {
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
                "UPDATE recipients SET state = $1, last_reply = $2, next_attempt_ms = $3, \
                 attempts = attempts + 1, lease_owner = NULL, lease_until_ms = NULL, updated_ms = $4 \
                 WHERE id = $5 AND state IN ('queued', 'sending')",
            )
            .bind(state)
            .bind(reply)
            .bind(next)
            .bind(now_ms)
            .bind(id)
            .execute(&mut *tx)
            .await?;
    }
    Ok(())
}

/// The rows of one accepted message (see [`Store::accept`]).
pub(crate) async fn insert_message(tx: &mut Conn, m: &NewMessage) -> Result<(), StoreError> {
    sqlx::query(
            "INSERT INTO messages (id, received_ms, sender, message_id, size) VALUES ($1, $2, $3, $4, $5)",
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
            "INSERT INTO spool_files (spool_id, message_id) VALUES ($1, $2) \
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
                 VALUES ($1, $2, $3, $4, $5, $6)",
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
                     VALUES ($1, $2, $3, $4, $5, $6)",
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
                "INSERT INTO copy_rules (copy_id, rule) VALUES ($1, $2) \
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
                     VALUES ($1, $2, $3, $4, $5, $6)",
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
    Ok(())
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

/// The condition on `recipients r` under which this node can send the recipient's copy: `$N`
/// is the node ('' on SQLite: one node, every copy). The copy's file is in this node's spool,
/// or the store keeps its bytes.
macro_rules! claimable {
    ($node:literal) => {
        concat!(
            "(",
            $node,
            " = '' OR EXISTS ( \
                 SELECT 1 FROM copies cc \
                 JOIN spool_files sf ON sf.spool_id = COALESCE(cc.send_spool_id, cc.spool_id) \
                 WHERE cc.id = r.copy_id AND (sf.node = ",
            $node,
            " OR EXISTS (SELECT 1 FROM spool_bytes sb WHERE sb.spool_id = sf.spool_id))))"
        )
    };
}
pub(crate) use claimable;

/// So that helpers can take either a transaction or a pooled connection.
pub(crate) type Conn = AnyConnection;
