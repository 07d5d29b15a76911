//! Per-sender sliding-window counters (the `bulk_send` rule), kept in the store.

use std::future::Future;

use crate::error::StoreError;
use crate::group::Work;
use crate::store::{Conn, Store, to_u64};

/// The PostgreSQL advisory lock key of the per-sender window ("hallpass" in ASCII).
const COUNTERS_LOCK: i64 = 0x6861_6c6c_7061_7373;

/// Per-sender sliding-window counter (bulk_send): kept by the [`Store`], or in Redis by
/// [`crate::RedisCounters`] when several relays share it.
pub trait Counters: Send + Sync {
    /// Adds `n` external recipients for `sender` at `now_ms` as the event `event` (the message's
    /// queue id); returns the total within the last `window_ms` (events after
    /// `now_ms - window_ms`) including this one. Old events are pruned.
    fn add_event_and_count(
        &self,
        sender: &str,
        event: &str,
        n: u64,
        now_ms: i64,
        window_ms: i64,
    ) -> impl Future<Output = Result<u64, StoreError>> + Send;

    /// Takes the event `event` of `n` recipients back out of `sender`'s window: its message was
    /// not accepted after all (a `451`; the client will send it again and it will count then).
    /// Nothing happens when the event has already left the window.
    fn take_back(
        &self,
        sender: &str,
        event: &str,
        n: u64,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// [`Counters::add_event_and_count`] as an event of its own, that is never taken back.
    fn add_and_count(
        &self,
        sender: &str,
        n: u64,
        now_ms: i64,
        window_ms: i64,
    ) -> impl Future<Output = Result<u64, StoreError>> + Send {
        async move {
            self.add_event_and_count(sender, &crate::id::new_id(), n, now_ms, window_ms)
                .await
        }
    }
}

impl Counters for Store {
    /// Senders are compared case-insensitively. Pruning drops every sender's events older than
    /// the window, so senders who stop sending leave nothing behind.
    async fn add_event_and_count(
        &self,
        sender: &str,
        event: &str,
        n: u64,
        now_ms: i64,
        window_ms: i64,
    ) -> Result<u64, StoreError> {
        let sender = sender.to_lowercase();
        if self.backend != crate::db::Backend::Postgres {
            // SQLite: shares a transaction (one fsync) with whatever else is being written.
            return self
                .group_write(Work::Count {
                    sender,
                    event: event.to_string(),
                    n,
                    now_ms,
                    window_ms,
                })
                .await;
        }
        let mut tx = self.begin_write().await?;
        // Relays count one at a time, as SQLite's write lock makes them: otherwise two relays
        // adding at once would each miss the other's recipients.
        sqlx::query("SELECT pg_advisory_xact_lock($1)")
            .bind(COUNTERS_LOCK)
            .execute(&mut *tx)
            .await?;
        let total = count_rows(&mut tx, &sender, event, n, now_ms, window_ms).await?;
        tx.commit().await?;
        Ok(total)
    }

    async fn take_back(&self, sender: &str, event: &str, _n: u64) -> Result<(), StoreError> {
        let mut tx = self.begin_write().await?;
        sqlx::query("DELETE FROM counter_events WHERE sender = $1 AND event = $2")
            .bind(sender.to_lowercase())
            .bind(event)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }
}

/// Prunes the window, adds `n` for `sender` (lower-cased already) and returns its total.
pub(crate) async fn count_rows(
    tx: &mut Conn,
    sender: &str,
    event: &str,
    n: u64,
    now_ms: i64,
    window_ms: i64,
) -> Result<u64, StoreError> {
    let start = now_ms.saturating_sub(window_ms);
    sqlx::query("DELETE FROM counter_events WHERE at_ms <= $1")
        .bind(start)
        .execute(&mut *tx)
        .await?;
    if n > 0 {
        sqlx::query("INSERT INTO counter_events (sender, at_ms, n, event) VALUES ($1, $2, $3, $4)")
            .bind(sender)
            .bind(now_ms)
            .bind(i64::try_from(n).unwrap_or(i64::MAX))
            .bind(event)
            .execute(&mut *tx)
            .await?;
    }
    let total: Option<i64> = sqlx::query_scalar(
        "SELECT CAST(SUM(n) AS BIGINT) FROM counter_events WHERE sender = $1 AND at_ms > $2",
    )
    .bind(sender)
    .bind(start)
    .fetch_one(&mut *tx)
    .await?;
    Ok(to_u64(total.unwrap_or(0)))
}
