//! Small named facts kept between restarts (the `state` table), such as the day of the last
//! digest to the DPO. The same SQL on SQLite and PostgreSQL (`$N` placeholders, an upsert).

use crate::error::StoreError;
use crate::store::Store;

impl Store {
    /// The value recorded under `key`, if any.
    pub async fn state_get(&self, key: &str) -> Result<Option<String>, StoreError> {
        Ok(sqlx::query_scalar("SELECT value FROM state WHERE key = $1")
            .bind(key)
            .fetch_optional(&self.pool)
            .await?)
    }

    /// Records `day` (`YYYY-MM-DD`) under `key` if it is later than what is there, in one
    /// statement: true for exactly one caller per day, however many relays share the store.
    pub async fn claim_day(&self, key: &str, day: &str) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "INSERT INTO state (key, value) VALUES ($1, $2) \
             ON CONFLICT (key) DO UPDATE SET value = excluded.value \
             WHERE state.value < excluded.value",
        )
        .bind(key)
        .bind(day)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Puts back what was under `key` before a claim whose work then failed (`None`: nothing),
    /// so the next attempt may claim the day again.
    pub async fn unclaim_day(&self, key: &str, previous: Option<&str>) -> Result<(), StoreError> {
        match previous {
            Some(v) => {
                sqlx::query("UPDATE state SET value = $1 WHERE key = $2")
                    .bind(v)
                    .bind(key)
                    .execute(&self.pool)
                    .await?;
            }
            None => {
                sqlx::query("DELETE FROM state WHERE key = $1")
                    .bind(key)
                    .execute(&self.pool)
                    .await?;
            }
        }
        Ok(())
    }
}
