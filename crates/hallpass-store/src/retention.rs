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
    /// (a released copy still being delivered keeps its file until its recipients are final),
    /// and only files in this node's spool (each relay removes its own).
    /// The caller deletes each file, then calls [`Store::forget_spools`].
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
        // The database's copy of the bytes of every file nothing needs any more goes, whichever
        // relay's spool holds the file: a relay that is gone for good must not keep a purged
        // message in the store for ever. Done at the start of a sweep, so the copies this sweep
        // purges keep their bytes until the next one (their senders' notices are written from
        // them meanwhile).
        sqlx::query(concat!(
            "DELETE FROM spool_bytes WHERE spool_id IN (SELECT s.spool_id FROM spool_files s WHERE ",
            finished!(),
            ")"
        ))
        .execute(&mut *tx)
        .await?;

        let expired: Vec<String> = sqlx::query_scalar(
            "SELECT c.id FROM copies c JOIN messages m ON m.id = c.message_id \
             WHERE c.kind = 'hold' AND c.status = 'held' AND m.received_ms < $1 \
             ORDER BY m.received_ms, c.id",
        )
        .bind(held_cut)
        .fetch_all(&mut *tx)
        .await?;
        for id in &expired {
            sqlx::query(
                "UPDATE copies SET status = 'rejected', decided_by = $1, decided_ms = $2, \
                 reason = $3, purged_ms = $4, notice_due_ms = $4 WHERE id = $5 AND status = 'held'",
            )
            .bind(&actor.name)
            .bind(now_ms)
            .bind(RETENTION_REASON)
            .bind(now_ms)
            .bind(id)
            .execute(&mut *tx)
            .await?;
            sqlx::query(
                "UPDATE recipients SET state = 'rejected', updated_ms = $1 \
                 WHERE copy_id = $2 AND state = 'held'",
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
             AND purged_ms IS NULL AND decided_ms < $1 ORDER BY decided_ms, id",
        )
        .bind(decided_cut)
        .fetch_all(&mut *tx)
        .await?;
        let mut purged = expired;
        for row in &decided {
            let id: String = row.try_get("id")?;
            let status: String = row.try_get("status")?;
            sqlx::query("UPDATE copies SET purged_ms = $1 WHERE id = $2 AND purged_ms IS NULL")
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
                 WHERE s.spool_id IN (SELECT spool_id FROM copies WHERE id = $1 \
                                      UNION SELECT send_spool_id FROM copies WHERE id = $2) \
                 AND s.node = $3 AND ",
                finished!(),
                " ORDER BY s.spool_id"
            ))
            .bind(id)
            .bind(id)
            .bind(&self.node)
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
