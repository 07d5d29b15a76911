//! The quarantine: held copies, and the DPO's decisions on them (each audited in the same
//! transaction).

use std::collections::HashMap;

use sqlx::Row;

use crate::db::Sql;

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

    /// Releases the held copy `h` as [`Store::release`] does, sending `rewritten` (the copy with
    /// its outside addresses moved to Bcc) instead of the original when given: it is written to
    /// the spool as a new file first. When the release is refused because someone decided
    /// first, that new file is removed again; after any other error it stays (the release may
    /// have been committed all the same), for the orphan sweep, which removes it only if the
    /// store has no record of it. The console and `hallpass held release` both release this way.
    pub async fn release_held(
        &self,
        h: &HeldRecord,
        actor: &Actor,
        rewritten: Option<&[u8]>,
        false_positive: bool,
        now_ms: i64,
    ) -> Result<HeldRecord, StoreError> {
        let new_file = match rewritten {
            Some(bytes) => {
                let id = crate::new_id();
                self.spool.write(&id, bytes).await?;
                Some(id)
            }
            None => None,
        };
        let spool_id = new_file.as_deref().unwrap_or(&h.spool_id);
        let result = self
            .release(&h.id, actor, spool_id, false_positive, now_ms)
            .await;
        if let (Err(StoreError::AlreadyDecided { .. } | StoreError::NotFound), Some(id)) =
            (&result, &new_file)
        {
            // Nobody will send it: best effort, the sweep would remove it later anyway.
            let _ = self.spool.remove(id).await;
        }
        result
    }

    /// Atomically: the held copy `id` becomes released (only if still held, by a single
    /// `UPDATE … WHERE status = 'held'`; if it was already decided,
    /// `Err(StoreError::AlreadyDecided { status, by, at_ms })`), its recipients are queued for
    /// delivery (due at `now_ms`) from `spool_id` (the copy's own spool file, or a rewritten one
    /// the caller wrote first), an audit entry "release" is written, and the sender is owed a
    /// notice ([`Store::notices_due`]).
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
            "UPDATE copies SET status = 'released', decided_by = $1, decided_ms = $2, \
             send_spool_id = CASE WHEN spool_id = $3 THEN NULL ELSE $4 END, queued_ms = $5, \
             notice_due_ms = $5 \
             WHERE id = $6 AND kind = 'hold' AND status = 'held'",
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
            "INSERT INTO spool_files (spool_id, message_id, node) \
             SELECT $1, message_id, $3 FROM copies WHERE id = $2 \
             ON CONFLICT (spool_id) DO NOTHING",
        )
        .bind(spool_id)
        .bind(id)
        .bind(&self.node)
        .execute(&mut *tx)
        .await?;
        let queued = sqlx::query(
            "UPDATE recipients SET state = 'queued', next_attempt_ms = $1, updated_ms = $2 \
             WHERE copy_id = $3 AND state = 'held'",
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
                     VALUES ($1, $2, $3, $4)",
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
    /// with the reason is written. The sender's notice is then owed ([`Store::notices_due`]), as
    /// after a release.
    pub async fn reject(
        &self,
        id: &str,
        actor: &Actor,
        reason: &str,
        now_ms: i64,
    ) -> Result<HeldRecord, StoreError> {
        let mut tx = self.begin_write().await?;
        let done = sqlx::query(
            "UPDATE copies SET status = 'rejected', decided_by = $1, decided_ms = $2, reason = $3, \
             notice_due_ms = $2 WHERE id = $4 AND kind = 'hold' AND status = 'held'",
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
            "UPDATE recipients SET state = 'rejected', updated_ms = $1 \
             WHERE copy_id = $2 AND state = 'held'",
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
         VALUES ($1, $2, $3, $4, $5, $6)",
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
        "SELECT status, decided_by, decided_ms FROM copies WHERE id = $1 AND kind = 'hold'",
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

pub(crate) async fn fetch_one(conn: &mut Conn, id: &str) -> Result<Option<HeldRecord>, StoreError> {
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
    let mut q = Sql::new(
        "SELECT c.id, m.received_ms, m.sender, m.message_id, c.status, c.decided_by, \
         c.decided_ms, c.reason, c.spool_id, m.size \
         FROM copies c JOIN messages m ON m.id = c.message_id WHERE c.kind = 'hold'",
    );
    if let Some(id) = id {
        q.push(" AND c.id = ").bind(id.to_string());
    }
    if let Some(status) = f.status {
        q.push(" AND c.status = ").bind(status.as_str());
    }
    if let Some(rule) = &f.rule {
        q.push(" AND EXISTS (SELECT 1 FROM copy_rules cr WHERE cr.copy_id = c.id AND cr.rule = ")
            .bind(rule.clone())
            .push(")");
    }
    if let Some(sender) = &f.sender {
        q.push(" AND LOWER(m.sender) = LOWER(")
            .bind(sender.clone())
            .push(")");
    }
    if let Some(since) = f.since_ms {
        q.push(" AND m.received_ms >= ").bind(since);
    }
    if let Some(detector) = &f.detector {
        q.push(" AND EXISTS (SELECT 1 FROM findings fd WHERE fd.copy_id = c.id AND fd.detector = ")
            .bind(detector.clone())
            .push(")");
    }
    q.push(" ORDER BY m.received_ms DESC, c.id DESC LIMIT ")
        .bind(i64::from(f.limit))
        .push(" OFFSET ")
        .bind(i64::from(f.offset));
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
    for (i, row) in rows_by_copy(conn, "address FROM recipients", "ord", &out, &index).await? {
        out[i].rcpt.push(row.try_get("address")?);
    }
    for (i, row) in rows_by_copy(conn, "rule FROM copy_rules", "rule", &out, &index).await? {
        out[i].rules.push(row.try_get("rule")?);
    }
    let findings = "detector, location, count, confidence FROM findings";
    for (i, row) in rows_by_copy(conn, findings, "ord", &out, &index).await? {
        let count: i64 = row.try_get("count")?;
        out[i].findings.push(FindingRecord {
            detector: row.try_get("detector")?,
            location: row.try_get("location")?,
            count: u32::try_from(count).unwrap_or(u32::MAX),
            confidence: row.try_get("confidence")?,
        });
    }
    Ok(out)
}

/// `SELECT copy_id, {columns_from} WHERE copy_id IN (the records' ids) ORDER BY copy_id,
/// {order}`, each row with the index of its record.
async fn rows_by_copy(
    conn: &mut Conn,
    columns_from: &str,
    order: &str,
    records: &[HeldRecord],
    index: &HashMap<String, usize>,
) -> Result<Vec<(usize, sqlx::any::AnyRow)>, StoreError> {
    let mut q = Sql::new(&format!("SELECT copy_id, {columns_from} WHERE copy_id IN "));
    q.bind_list(records.iter().map(|r| r.id.clone()))
        .push(&format!(" ORDER BY copy_id, {order}"));
    let mut out = Vec::new();
    for row in q.build().fetch_all(&mut *conn).await? {
        let copy: String = row.try_get("copy_id")?;
        if let Some(&i) = index.get(&copy) {
            out.push((i, row));
        }
    }
    Ok(out)
}
