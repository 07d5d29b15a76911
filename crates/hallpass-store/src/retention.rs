//! Retention: held mail does not stay for ever. A held copy nobody decided on within the held
//! retention period is rejected; a decided copy whose review period has passed is purged, which
//! lets its spool file go ([`Store::finished_spool_ids`]). The rows stay (findings feed the
//! dashboard; the audit trail refers to them); only the message file goes.

use sqlx::Row;

use crate::error::StoreError;
use crate::held::insert_audit;
use crate::store::{Store, finished};
use crate::time::fmt_utc;
use crate::types::{Actor, AuditEntry};

/// The reason a held copy rejected for its age is given.
pub const RETENTION_REASON: &str = "retention period passed";

impl Store {
    /// Applies the retention periods at `now_ms`, in one transaction:
    ///
    /// - held copies received more than `held_older_than_ms` ago become `rejected` (reason
    ///   [`RETENTION_REASON`], decided by `actor`), their recipients `rejected`, and are purged;
    /// - released and rejected copies decided more than `decided_older_than_ms` ago are purged.
    ///
    /// Each purged copy gets a `purge` audit entry (target: the copy id). Returns the spool ids
    /// of purged copies that nothing needs any more, as [`Store::finished_spool_ids`] would
    /// (a released copy still being delivered keeps its file until its recipients are final).
    /// The caller deletes each file, then calls [`Store::forget_spool`].
    pub async fn purge(
        &self,
        now_ms: i64,
        held_older_than_ms: i64,
        decided_older_than_ms: i64,
        actor: &Actor,
    ) -> Result<Vec<String>, StoreError> {
        let held_cut = now_ms.saturating_sub(held_older_than_ms.max(0));
        let decided_cut = now_ms.saturating_sub(decided_older_than_ms.max(0));
        let mut tx = self.begin_write().await?;

        let expired: Vec<String> = sqlx::query_scalar(
            "SELECT c.id FROM copies c JOIN messages m ON m.id = c.message_id \
             WHERE c.kind = 'hold' AND c.status = 'held' AND m.received_ms < ? \
             ORDER BY m.received_ms, c.id",
        )
        .bind(held_cut)
        .fetch_all(&mut *tx)
        .await?;
        for id in &expired {
            sqlx::query(
                "UPDATE copies SET status = 'rejected', decided_by = ?, decided_ms = ?, \
                 reason = ?, purged_ms = ? WHERE id = ? AND status = 'held'",
            )
            .bind(&actor.name)
            .bind(now_ms)
            .bind(RETENTION_REASON)
            .bind(now_ms)
            .bind(id)
            .execute(&mut *tx)
            .await?;
            sqlx::query(
                "UPDATE recipients SET state = 'rejected', updated_ms = ? \
                 WHERE copy_id = ? AND state = 'held'",
            )
            .bind(now_ms)
            .bind(id)
            .execute(&mut *tx)
            .await?;
            let detail = format!(
                "held past the retention period (received before {}): rejected, {RETENTION_REASON}",
                fmt_utc(held_cut)
            );
            insert_audit(&mut tx, &entry(actor, id, detail, now_ms)).await?;
        }

        let decided = sqlx::query(
            "SELECT id, status FROM copies \
             WHERE kind = 'hold' AND status IN ('released', 'rejected') \
             AND purged_ms IS NULL AND decided_ms < ? ORDER BY decided_ms, id",
        )
        .bind(decided_cut)
        .fetch_all(&mut *tx)
        .await?;
        let mut purged = expired;
        for row in &decided {
            let id: String = row.try_get("id")?;
            let status: String = row.try_get("status")?;
            sqlx::query("UPDATE copies SET purged_ms = ? WHERE id = ? AND purged_ms IS NULL")
                .bind(now_ms)
                .bind(&id)
                .execute(&mut *tx)
                .await?;
            let detail = format!(
                "{status} before {}: past the retention period, message file released",
                fmt_utc(decided_cut)
            );
            insert_audit(&mut tx, &entry(actor, &id, detail, now_ms)).await?;
            purged.push(id);
        }

        let mut unreferenced = Vec::new();
        for id in &purged {
            let ids: Vec<String> = sqlx::query_scalar(concat!(
                "SELECT s.spool_id FROM spool_files s \
                 WHERE s.spool_id IN (SELECT spool_id FROM copies WHERE id = ? \
                                      UNION SELECT send_spool_id FROM copies WHERE id = ?) \
                 AND ",
                finished!(),
                " ORDER BY s.spool_id"
            ))
            .bind(id)
            .bind(id)
            .fetch_all(&mut *tx)
            .await?;
            for s in ids {
                if !unreferenced.contains(&s) {
                    unreferenced.push(s);
                }
            }
        }
        tx.commit().await?;
        Ok(unreferenced)
    }
}

fn entry(actor: &Actor, id: &str, detail: String, now_ms: i64) -> AuditEntry {
    AuditEntry {
        at_ms: now_ms,
        actor: actor.clone(),
        action: "purge".into(),
        target: Some(id.to_string()),
        detail,
    }
}
