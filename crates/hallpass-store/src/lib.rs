//! hallpass's durable state for one node: the spool of message files and the store (delivery
//! queue, quarantine, audit trail, users, per-sender counters) in SQLite, both under the folder
//! of `[storage] path`.
//!
//! - [`Spool`]: `<path>/spool/<id>.eml`, written durably (file fsync, rename, folder fsync shared
//!   by concurrent writers) before the SMTP reply.
//! - [`Store`]: `<path>/hallpass.db` in WAL mode with `synchronous=FULL`. [`Store::accept`]
//!   records a message and its copies in one transaction; [`Store::claim_due`] leases due
//!   recipients to a delivery worker and [`Store::record`] writes what happened;
//!   [`Store::release`] and [`Store::reject`] decide held copies exactly once, with an audit
//!   entry in the same transaction. The audit trail is append-only (the schema refuses updates
//!   and deletes).
//! - [`Counters`]: the sliding window behind the `bulk_send` rule; [`RedisCounters`] keeps it in
//!   Redis for several relays, with the store as the fallback ([`WindowCounters`] is either).
//!
//! Files are created 0600 and folders 0700. Nothing here logs but the Redis counters (when Redis goes
//! away and comes back, never a sender); errors carry ids and paths, never message content.
//!
//! ```no_run
//! # async fn demo() -> Result<(), hallpass_store::StoreError> {
//! use hallpass_store::{CopyKind, NewCopy, NewMessage, Store, new_id};
//!
//! let store = Store::open(std::path::Path::new("data")).await?;
//! let (msg, copy) = (new_id(), new_id());
//! store.spool().write(&msg, b"Subject: hello\r\n\r\nhi\r\n").await?;
//! store
//!     .accept(&NewMessage {
//!         id: msg.clone(),
//!         received_ms: 1_795_425_242_000,
//!         sender: "teacher@lumen.sch.uk".into(),
//!         message_id: None,
//!         size: 23,
//!         spool_ids: vec![msg.clone()],
//!         copies: vec![NewCopy {
//!             id: copy,
//!             kind: CopyKind::Deliver,
//!             spool_id: msg,
//!             recipients: vec!["parent@example.com".into()],
//!             rules: vec![],
//!             findings: vec![],
//!         }],
//!     })
//!     .await?;
//! // ... now the client may hear 250.
//! # Ok(()) }
//! ```
#![deny(missing_docs)]

mod audit;
mod counters;
mod db;
mod error;
mod forget;
mod group;
mod held;
mod id;
mod notices;
mod redis_counters;
mod retention;
mod sessions;
mod shared;
mod spool;
mod state;
mod stats;
mod store;
mod time;
mod types;
mod users;

pub use counters::Counters;
pub use db::Backend;
pub use error::StoreError;
pub use id::new_id;
pub use redis_counters::{REDIS_TIMEOUT, RETRY_EVERY, RedisCounters, WindowCounters};
pub use retention::RETENTION_REASON;
pub use sessions::{ConsoleSession, PasswordStamp, SessionFlash};
pub use spool::Spool;
pub use stats::{DayRuleCount, DetectorStats};
pub use store::{DB_FILE, SPOOL_DIR, Store};
pub use time::fmt_utc;
pub use types::{
    Actor, AuditEntry, AuditFilter, AuditRecord, Batch, CopyKind, FindingRecord, HeldFilter,
    HeldRecord, HeldStatus, NewCopy, NewMessage, Outcome, QueueStats, Role, UnknownValue, User,
};
