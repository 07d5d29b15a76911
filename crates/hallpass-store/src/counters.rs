//! Per-sender sliding-window counters (the `bulk_send` rule), kept in the store.

use std::future::Future;

use crate::error::StoreError;
use crate::store::{Store, to_u64};

/// Per-sender sliding-window counter (bulk_send). A trait because a later issue adds Redis.
pub trait Counters: Send + Sync {
    /// Adds `n` external recipients for `sender` at `now_ms`; returns the total within the last
    /// `window_ms` (events after `now_ms - window_ms`) including this one. Old events are pruned.
    fn add_and_count(
        &self,
        sender: &str,
        n: u64,
        now_ms: i64,
        window_ms: i64,
    ) -> impl Future<Output = Result<u64, StoreError>> + Send;
}

impl Counters for Store {
    /// Senders are compared case-insensitively. Pruning drops every sender's events older than
    /// the window, so senders who stop sending leave nothing behind.
    async fn add_and_count(
        &self,
        sender: &str,
        n: u64,
        now_ms: i64,
        window_ms: i64,
    ) -> Result<u64, StoreError> {
        let sender = sender.to_lowercase();
        let start = now_ms.saturating_sub(window_ms);
        let mut tx = self.begin_write().await?;
        sqlx::query("DELETE FROM counter_events WHERE at_ms <= ?")
            .bind(start)
            .execute(&mut *tx)
            .await?;
        if n > 0 {
            sqlx::query("INSERT INTO counter_events (sender, at_ms, n) VALUES (?, ?, ?)")
                .bind(&sender)
                .bind(now_ms)
                .bind(i64::try_from(n).unwrap_or(i64::MAX))
                .execute(&mut *tx)
                .await?;
        }
        let total: Option<i64> =
            sqlx::query_scalar("SELECT SUM(n) FROM counter_events WHERE sender = ? AND at_ms > ?")
                .bind(&sender)
                .bind(start)
                .fetch_one(&mut *tx)
                .await?;
        tx.commit().await?;
        Ok(to_u64(total.unwrap_or(0)))
    }
}
