//! What only a shared store (PostgreSQL, several relays) does: recording which relay's spool
//! holds a message's files, and keeping held messages' bytes in the database so that whichever
//! relay releases one can deliver it.

use std::collections::BTreeMap;

use crate::error::StoreError;
use crate::store::{Store, insert_message};
use crate::types::{CopyKind, NewMessage};

impl Store {
    /// [`Store::accept`] on a shared store, in one transaction: the message's rows (the same
    /// statements as on SQLite), its spool files marked as this node's, and the bytes of each
    /// held copy's file. PostgreSQL commits concurrent transactions together by itself, so each
    /// message has its own transaction here.
    pub(crate) async fn accept_shared(&self, m: &NewMessage) -> Result<(), StoreError> {
        let mut held: BTreeMap<&str, Vec<u8>> = BTreeMap::new();
        for c in m.copies.iter().filter(|c| c.kind == CopyKind::Hold) {
            if !held.contains_key(c.spool_id.as_str()) {
                held.insert(&c.spool_id, self.spool.read_local(&c.spool_id).await?);
            }
        }
        let mut tx = self.begin_write().await?;
        insert_message(&mut tx, m).await?;
        sqlx::query("UPDATE spool_files SET node = $1 WHERE message_id = $2")
            .bind(&self.node)
            .bind(&m.id)
            .execute(&mut *tx)
            .await?;
        for (spool_id, bytes) in held {
            sqlx::query(
                "INSERT INTO spool_bytes (spool_id, bytes) VALUES ($1, $2) \
                 ON CONFLICT (spool_id) DO NOTHING",
            )
            .bind(spool_id)
            .bind(bytes)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }
}

impl Store {
    /// The lease owner a delivery worker of this relay writes on the recipients it claims: `who`
    /// on SQLite, `<node>/<who>` on a shared store, so that a relay restarted after a crash finds
    /// the deliveries it was in the middle of (see [`Store::resume_interrupted`]).
    pub fn lease_owner(&self, who: &str) -> String {
        if self.node.is_empty() {
            who.to_string()
        } else {
            format!("{}/{who}", self.node)
        }
    }

    /// At start-up: the recipients this relay was sending when it stopped (a crash, `kill -9`)
    /// go back to `queued`, due at once, without waiting for their leases to run out. On SQLite
    /// that is every recipient being sent (one relay); on a shared store only those leased by
    /// this node ([`Store::lease_owner`]): other relays are still sending theirs. They may be
    /// sent twice (the upstream's 250 may have come before the crash). Returns how many.
    pub async fn resume_interrupted(&self, now_ms: i64) -> Result<u64, StoreError> {
        let prefix = if self.node.is_empty() {
            String::new()
        } else {
            format!("{}/", self.node)
        };
        let mut tx = self.begin_write().await?;
        let done = sqlx::query(
            "UPDATE recipients SET state = 'queued', next_attempt_ms = $1, lease_owner = NULL, \
             lease_until_ms = NULL, updated_ms = $1 \
             WHERE state = 'sending' AND ($2 = '' OR SUBSTR(lease_owner, 1, LENGTH($2)) = $2)",
        )
        .bind(now_ms)
        .bind(prefix)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(done.rows_affected())
    }
}
