//! The audit trail: append-only. There is no update or delete API, and triggers in the schema
//! refuse both.

use sqlx::Row;

use crate::db::Sql;

use crate::error::StoreError;
use crate::held::insert_audit;
use crate::store::Store;
use crate::types::{Actor, AuditEntry, AuditFilter, AuditRecord};

impl Store {
    /// Appends an entry to the audit trail.
    pub async fn audit(&self, e: &AuditEntry) -> Result<(), StoreError> {
        let mut conn = self.read_conn().await?;
        insert_audit(&mut conn, e).await
    }

    /// Audit entries matching `f`, newest first.
    pub async fn audit_list(&self, f: &AuditFilter) -> Result<Vec<AuditRecord>, StoreError> {
        let mut q = Sql::new(
            "SELECT seq, at_ms, actor_name, actor_address, action, target, detail \
             FROM audit WHERE 1 = 1",
        );
        if let Some(actor) = &f.actor {
            q.push(" AND actor_name = ").bind(actor.clone());
        }
        if let Some(action) = &f.action {
            q.push(" AND action = ").bind(action.clone());
        }
        if let Some(target) = &f.target {
            q.push(" AND target = ").bind(target.clone());
        }
        if let Some(since) = f.since_ms {
            q.push(" AND at_ms >= ").bind(since);
        }
        q.push(" ORDER BY seq DESC LIMIT ")
            .bind(i64::from(f.limit))
            .push(" OFFSET ")
            .bind(i64::from(f.offset));
        let rows = q.build().fetch_all(&self.pool).await?;
        rows.into_iter()
            .map(|row| {
                Ok(AuditRecord {
                    seq: row.try_get("seq")?,
                    at_ms: row.try_get("at_ms")?,
                    actor: Actor {
                        name: row.try_get("actor_name")?,
                        address: row.try_get("actor_address")?,
                    },
                    action: row.try_get("action")?,
                    target: row.try_get("target")?,
                    detail: row.try_get("detail")?,
                })
            })
            .collect()
    }
}
