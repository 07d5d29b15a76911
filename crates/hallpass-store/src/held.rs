//! The quarantine: held copies, and the DPO's decisions on them (each audited in the same
//! transaction).

use std::collections::HashMap;

use sqlx::{QueryBuilder, Row, Sqlite};

use crate::error::StoreError;
use crate::spool::check_id;
use crate::store::{Conn, Store, corrupt, to_u64};
use crate::types::{Actor, AuditEntry, FindingRecord, HeldFilter, HeldRecord};

impl Store {
    /// Held copies matching `f`, newest first.
    pub async fn held_list(&self, f: &HeldFilter) -> Result<Vec<HeldRecord>, StoreError> {
        let mut conn = self.read_conn().await?;
        fetch_held(&mut conn, f, None).await
    }

    /// One held copy (whatever its status), if there is one with that id.
    pub async fn held_get(&self, id: &str) -> Result<Option<HeldRecord>, StoreError> {
        let mut conn = self.read_conn().await?;
        fetch_one(&mut conn, id).await
    }

    /// Atomically: the held copy `id` becomes released (only if still held, by a single
    /// `UPDATE … WHERE status = 'held'`; if it was already decided,
    /// `Err(StoreError::AlreadyDecided { status, by, at_ms })`), its recipients are queued for
    /// delivery (due at `now_ms`) from `spool_id` (the copy's own spool file, or a rewritten one
    /// the caller wrote first), and an audit entry "release" is written.
    /// `false_positive`: also records (copy id, each detector of its findings, actor, time) in
    /// the false_positives table and audits it as "false-positive".
    pub async fn release(
        &self,
        id: &str,
        actor: &Actor,
        spool_id: &str,
        false_positive: bool,
        now_ms: i64,
    ) -> Result<HeldRecord, StoreError> {
        check_id(spool_id)?;
        let mut tx = self.begin_write().await?;
        let done = sqlx::query(
            "UPDATE copies SET status = 'released', decided_by = ?, decided_ms = ?, \
             send_spool_id = CASE WHEN spool_id = ? THEN NULL ELSE ? END, queued_ms = ? \
             WHERE id = ? AND kind = 'hold' AND status = 'held'",
        )
        .bind(&actor.name)
        .bind(now_ms)
        .bind(spool_id)
        .bind(spool_id)
        .bind(now_ms)
        .bind(id)
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() == 0 {
            let err = why_not_held(&mut tx, id).await?;
            tx.rollback().await?;
            return Err(err);
        }
        // A rewritten file becomes the message's too, so it is cleaned up with the rest.
        sqlx::query(
            "INSERT INTO spool_files (spool_id, message_id) \
             SELECT ?, message_id FROM copies WHERE id = ? \
             ON CONFLICT (spool_id) DO NOTHING",
        )
        .bind(spool_id)
        .bind(id)
        .execute(&mut *tx)
        .await?;
        let queued = sqlx::query(
            "UPDATE recipients SET state = 'queued', next_attempt_ms = ?, updated_ms = ? \
             WHERE copy_id = ? AND state = 'held'",
        )
        .bind(now_ms)
        .bind(now_ms)
        .bind(id)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        let rec = fetch_one(&mut tx, id).await?.ok_or(StoreError::NotFound)?;
        let mut detail = format!("released for delivery to {queued} recipient(s)");
        if spool_id != rec.spool_id {
            detail.push_str(&format!(" from rewritten spool file {spool_id}"));
        }
        insert_audit(&mut tx, &entry(actor, "release", id, detail, now_ms)).await?;
        if false_positive {
            let mut detectors: Vec<&str> =
                rec.findings.iter().map(|f| f.detector.as_str()).collect();
            detectors.sort_unstable();
            detectors.dedup();
            for d in &detectors {
                sqlx::query(
                    "INSERT INTO false_positives (copy_id, detector, actor, at_ms) \
                     VALUES (?, ?, ?, ?)",
                )
                .bind(id)
                .bind(*d)
                .bind(&actor.name)
                .bind(now_ms)
                .execute(&mut *tx)
                .await?;
            }
            let detail = if detectors.is_empty() {
                "no findings".to_string()
            } else {
                format!("detectors: {}", detectors.join(", "))
            };
            insert_audit(&mut tx, &entry(actor, "false-positive", id, detail, now_ms)).await?;
        }
        tx.commit().await?;
        Ok(rec)
    }

    /// How many times each detector was marked a false positive (most first), for tuning.
    pub async fn false_positive_counts(&self) -> Result<Vec<(String, u64)>, StoreError> {
        let rows = sqlx::query(
            "SELECT detector, COUNT(*) AS n FROM false_positives \
             GROUP BY detector ORDER BY n DESC, detector",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| Ok((r.try_get("detector")?, to_u64(r.try_get("n")?))))
            .collect()
    }

    /// Atomically: the held copy `id` becomes rejected (only if still held, as for
    /// [`Store::release`]), its recipients will never be sent to, and an audit entry "reject"
    /// with the reason is written. Telling the sender is the caller's (a notice copy).
    pub async fn reject(
        &self,
        id: &str,
        actor: &Actor,
        reason: &str,
        now_ms: i64,
    ) -> Result<HeldRecord, StoreError> {
        let mut tx = self.begin_write().await?;
        let done = sqlx::query(
            "UPDATE copies SET status = 'rejected', decided_by = ?, decided_ms = ?, reason = ? \
             WHERE id = ? AND kind = 'hold' AND status = 'held'",
        )
        .bind(&actor.name)
        .bind(now_ms)
        .bind(reason)
        .bind(id)
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() == 0 {
            let err = why_not_held(&mut tx, id).await?;
            tx.rollback().await?;
            return Err(err);
        }
        sqlx::query(
            "UPDATE recipients SET state = 'rejected', updated_ms = ? \
             WHERE copy_id = ? AND state = 'held'",
        )
        .bind(now_ms)
        .bind(id)
        .execute(&mut *tx)
        .await?;
        let detail = if reason.is_empty() {
            "rejected".to_string()
        } else {
            format!("rejected: {reason}")
        };
        insert_audit(&mut tx, &entry(actor, "reject", id, detail, now_ms)).await?;
        let rec = fetch_one(&mut tx, id).await?.ok_or(StoreError::NotFound)?;
        tx.commit().await?;
        Ok(rec)
    }
}

fn entry(actor: &Actor, action: &str, id: &str, detail: String, now_ms: i64) -> AuditEntry {
    AuditEntry {
        at_ms: now_ms,
        actor: actor.clone(),
        action: action.to_string(),
        target: Some(id.to_string()),
        detail,
    }
}

pub(crate) async fn insert_audit(conn: &mut Conn, e: &AuditEntry) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO audit (at_ms, actor_name, actor_address, action, target, detail) \
         VALUES (?, ?, ?, ?, ?, ?)",
    )
    .bind(e.at_ms)
    .bind(&e.actor.name)
    .bind(&e.actor.address)
    .bind(&e.action)
    .bind(&e.target)
    .bind(&e.detail)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// After an UPDATE that found no held copy: was there none, or was it decided already?
async fn why_not_held(conn: &mut Conn, id: &str) -> Result<StoreError, StoreError> {
    let row = sqlx::query(
        "SELECT status, decided_by, decided_ms FROM copies WHERE id = ? AND kind = 'hold'",
    )
    .bind(id)
    .fetch_optional(&mut *conn)
    .await?;
    let Some(row) = row else {
        return Ok(StoreError::NotFound);
    };
    let status: String = row.try_get("status")?;
    Ok(StoreError::AlreadyDecided {
        status: status.parse().map_err(corrupt)?,
        by: row.try_get("decided_by")?,
        at_ms: row.try_get("decided_ms")?,
    })
}

async fn fetch_one(conn: &mut Conn, id: &str) -> Result<Option<HeldRecord>, StoreError> {
    let f = HeldFilter {
        status: None,
        limit: 1,
        ..HeldFilter::default()
    };
    Ok(fetch_held(conn, &f, Some(id)).await?.pop())
}

async fn fetch_held(
    conn: &mut Conn,
    f: &HeldFilter,
    id: Option<&str>,
) -> Result<Vec<HeldRecord>, StoreError> {
    let mut q = QueryBuilder::<Sqlite>::new(
        "SELECT c.id, m.received_ms, m.sender, m.message_id, c.status, c.decided_by, \
         c.decided_ms, c.reason, c.spool_id, m.size \
         FROM copies c JOIN messages m ON m.id = c.message_id WHERE c.kind = 'hold'",
    );
    if let Some(id) = id {
        q.push(" AND c.id = ").push_bind(id.to_string());
    }
    if let Some(status) = f.status {
        q.push(" AND c.status = ").push_bind(status.as_str());
    }
    if let Some(rule) = &f.rule {
        q.push(" AND EXISTS (SELECT 1 FROM copy_rules cr WHERE cr.copy_id = c.id AND cr.rule = ")
            .push_bind(rule.clone())
            .push(")");
    }
    if let Some(sender) = &f.sender {
        q.push(" AND LOWER(m.sender) = LOWER(")
            .push_bind(sender.clone())
            .push(")");
    }
    if let Some(since) = f.since_ms {
        q.push(" AND m.received_ms >= ").push_bind(since);
    }
    if let Some(detector) = &f.detector {
        q.push(" AND EXISTS (SELECT 1 FROM findings fd WHERE fd.copy_id = c.id AND fd.detector = ")
            .push_bind(detector.clone())
            .push(")");
    }
    q.push(" ORDER BY m.received_ms DESC, c.id DESC LIMIT ")
        .push_bind(i64::from(f.limit))
        .push(" OFFSET ")
        .push_bind(i64::from(f.offset));
    let rows = q.build().fetch_all(&mut *conn).await?;
    let mut out = Vec::with_capacity(rows.len());
    for row in rows {
        let status: String = row.try_get("status")?;
        out.push(HeldRecord {
            id: row.try_get("id")?,
            received_ms: row.try_get("received_ms")?,
            from: row.try_get("sender")?,
            rcpt: Vec::new(),
            message_id: row.try_get("message_id")?,
            rules: Vec::new(),
            findings: Vec::new(),
            status: status.parse().map_err(corrupt)?,
            decided_by: row.try_get("decided_by")?,
            decided_ms: row.try_get("decided_ms")?,
            reason: row.try_get("reason")?,
            spool_id: row.try_get("spool_id")?,
            size: to_u64(row.try_get("size")?),
        });
    }
    if out.is_empty() {
        return Ok(out);
    }
    let index: HashMap<String, usize> = out
        .iter()
        .enumerate()
        .map(|(i, r)| (r.id.clone(), i))
        .collect();

    let rows = in_list(
        "SELECT copy_id, address FROM recipients WHERE copy_id IN (",
        ") ORDER BY copy_id, ord",
        &out,
    )
    .build()
    .fetch_all(&mut *conn)
    .await?;
    for row in rows {
        let copy: String = row.try_get("copy_id")?;
        if let Some(&i) = index.get(&copy) {
            out[i].rcpt.push(row.try_get("address")?);
        }
    }
    let rows = in_list(
        "SELECT copy_id, rule FROM copy_rules WHERE copy_id IN (",
        ") ORDER BY copy_id, rule",
        &out,
    )
    .build()
    .fetch_all(&mut *conn)
    .await?;
    for row in rows {
        let copy: String = row.try_get("copy_id")?;
        if let Some(&i) = index.get(&copy) {
            out[i].rules.push(row.try_get("rule")?);
        }
    }
    let rows = in_list(
        "SELECT copy_id, detector, location, count, confidence FROM findings WHERE copy_id IN (",
        ") ORDER BY copy_id, ord",
        &out,
    )
    .build()
    .fetch_all(&mut *conn)
    .await?;
    for row in rows {
        let copy: String = row.try_get("copy_id")?;
        if let Some(&i) = index.get(&copy) {
            let count: i64 = row.try_get("count")?;
            out[i].findings.push(FindingRecord {
                detector: row.try_get("detector")?,
                location: row.try_get("location")?,
                count: u32::try_from(count).unwrap_or(u32::MAX),
                confidence: row.try_get("confidence")?,
            });
        }
    }
    Ok(out)
}

/// `head ?, ?, … tail` with the records' copy ids bound.
fn in_list(head: &str, tail: &str, records: &[HeldRecord]) -> QueryBuilder<Sqlite> {
    let mut q = QueryBuilder::<Sqlite>::new(head);
    let mut list = q.separated(", ");
    for r in records {
        list.push_bind(r.id.clone());
    }
    q.push(tail);
    q
}
