//! Forgetting delivered mail: the record of a message that is entirely done — every recipient
//! delivered, bounced or expired, no held copy, its spool files gone — is deleted once it is older
//! than the retention period. Without this the queue tables grow with every message for ever, and
//! they hold envelope addresses, which the school should not keep longer than it needs to.
//! Held messages' records stay: the quarantine's history (`Store::purge`) and the audit trail
//! refer to them.

use crate::error::StoreError;
use crate::store::Store;

/// What goes with a message, children first.
const FORGET: [&str; 5] = [
    "DELETE FROM findings WHERE copy_id IN (SELECT id FROM copies WHERE message_id = $1)",
    "DELETE FROM copy_rules WHERE copy_id IN (SELECT id FROM copies WHERE message_id = $1)",
    "DELETE FROM recipients WHERE copy_id IN (SELECT id FROM copies WHERE message_id = $1)",
    "DELETE FROM copies WHERE message_id = $1",
    "DELETE FROM messages WHERE id = $1",
];

impl Store {
    /// Deletes up to `limit` finished messages received before `cut_ms` (their copies,
    /// recipients, rules and findings) in one transaction; returns how many.
    pub async fn forget_delivered(&self, cut_ms: i64, limit: u32) -> Result<u64, StoreError> {
        let mut tx = self.begin_write().await?;
        let ids: Vec<String> = sqlx::query_scalar(
            "SELECT m.id FROM messages m WHERE m.received_ms < $1 \
             AND NOT EXISTS (SELECT 1 FROM copies c WHERE c.message_id = m.id AND c.kind = 'hold') \
             AND NOT EXISTS (SELECT 1 FROM copies c JOIN recipients r ON r.copy_id = c.id \
                 WHERE c.message_id = m.id AND r.state IN ('held', 'queued', 'sending')) \
             AND NOT EXISTS (SELECT 1 FROM spool_files s WHERE s.message_id = m.id) \
             ORDER BY m.received_ms, m.id LIMIT $2",
        )
        .bind(cut_ms)
        .bind(i64::from(limit))
        .fetch_all(&mut *tx)
        .await?;
        for id in &ids {
            for statement in FORGET {
                sqlx::query(statement).bind(id).execute(&mut *tx).await?;
            }
        }
        tx.commit().await?;
        Ok(ids.len() as u64)
    }
}
