//! Notices owed to senders about decided held copies. A release, a rejection or a rejection for
//! age marks the copy (`notice_due_ms`) in the same transaction as the decision; a relay then
//! claims it for a while, queues the notice and clears the mark. A crash, a full disk or a relay
//! stopped in between delays the notice (the claim runs out and another try comes) but never
//! loses it; the one duplicate possible is a crash after the notice was queued and before the
//! mark was cleared.

use crate::error::StoreError;
use crate::held::fetch_one;
use crate::store::Store;
use crate::types::HeldRecord;

impl Store {
    /// Up to `limit` decided held copies whose senders are owed a notice now, oldest first.
    pub async fn notices_due(
        &self,
        now_ms: i64,
        limit: u32,
    ) -> Result<Vec<HeldRecord>, StoreError> {
        let mut conn = self.read_conn().await?;
        let ids: Vec<String> = sqlx::query_scalar(
            "SELECT id FROM copies WHERE notice_due_ms <= $1 ORDER BY notice_due_ms, id LIMIT $2",
        )
        .bind(now_ms)
        .bind(i64::from(limit))
        .fetch_all(&mut *conn)
        .await?;
        let mut records = Vec::with_capacity(ids.len());
        for id in ids {
            if let Some(r) = fetch_one(&mut conn, &id).await? {
                records.push(r);
            }
        }
        Ok(records)
    }

    /// Claims the notice of copy `id` until `until_ms`: true for exactly one caller while it is
    /// due, however many relays try at once.
    pub async fn notice_claim(
        &self,
        id: &str,
        now_ms: i64,
        until_ms: i64,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE copies SET notice_due_ms = $1 WHERE id = $2 AND notice_due_ms <= $3",
        )
        .bind(until_ms)
        .bind(id)
        .bind(now_ms)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// The notice of copy `id` is queued (or not wanted): nothing more is owed.
    pub async fn notice_done(&self, id: &str) -> Result<(), StoreError> {
        sqlx::query("UPDATE copies SET notice_due_ms = NULL WHERE id = $1")
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// The notice of copy `id` could not be queued: try again at `at_ms`.
    pub async fn notice_later(&self, id: &str, at_ms: i64) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE copies SET notice_due_ms = $1 WHERE id = $2 AND notice_due_ms IS NOT NULL",
        )
        .bind(at_ms)
        .bind(id)
        .execute(&self.pool)
        .await?;
        Ok(())
    }
}
