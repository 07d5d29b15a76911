//! Figures for the console's dashboard: held copies per day and rule, and per detector how many
//! held copies it was in and how many of those a DPO called a false positive. Counts only; no
//! address or value.

use sqlx::Row;

use crate::error::StoreError;
use crate::store::{Store, to_u64};

/// Milliseconds in a day.
const MS_PER_DAY: i64 = 86_400_000;

/// Held copies of one UTC day under one rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DayRuleCount {
    /// The day's start (midnight UTC), in milliseconds since the Unix epoch.
    pub day_ms: i64,
    /// The rule id.
    pub rule: String,
    /// Held copies received that day that the rule concerns (whatever their status now).
    pub held: u64,
}

/// One detector's record in the quarantine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DetectorStats {
    /// The detector id.
    pub detector: String,
    /// Held copies (any status, ever) with at least one finding of this detector.
    pub held: u64,
    /// Of those, how many a DPO released as a false positive.
    pub false_positives: u64,
}

impl Store {
    /// Held copies per UTC day and rule, received at or after `since_ms`, oldest day first and
    /// rules by name within a day. A copy held under two rules counts under each.
    pub async fn held_per_day(&self, since_ms: i64) -> Result<Vec<DayRuleCount>, StoreError> {
        let rows = sqlx::query(
            "SELECT (m.received_ms / $1) * $2 AS day_ms, cr.rule AS rule, COUNT(*) AS n \
             FROM copies c \
             JOIN messages m ON m.id = c.message_id \
             JOIN copy_rules cr ON cr.copy_id = c.id \
             WHERE c.kind = 'hold' AND m.received_ms >= $3 \
             GROUP BY day_ms, cr.rule ORDER BY day_ms, cr.rule",
        )
        .bind(MS_PER_DAY)
        .bind(MS_PER_DAY)
        .bind(since_ms)
        .fetch_all(&self.pool)
        .await?;
        day_rule_counts(&rows)
    }

    /// Messages per UTC day and rule that the rule fired on but held for none of their
    /// recipients, received at or after `since_ms` (in [`DayRuleCount::held`]), oldest day
    /// first: what rules set to `monitor` would have held (and what `cc_exposure` rewrote).
    /// Only messages still on record count: delivered mail's records go after
    /// `[storage] decided_retention_days`.
    pub async fn let_through_per_day(
        &self,
        since_ms: i64,
    ) -> Result<Vec<DayRuleCount>, StoreError> {
        let rows = sqlx::query(
            "SELECT (m.received_ms / $1) * $2 AS day_ms, cr.rule AS rule, \
                    COUNT(DISTINCT m.id) AS n \
             FROM copies c \
             JOIN messages m ON m.id = c.message_id \
             JOIN copy_rules cr ON cr.copy_id = c.id \
             WHERE c.kind = 'deliver' AND m.received_ms >= $3 \
             AND NOT EXISTS (SELECT 1 FROM copies h \
                             JOIN copy_rules hr ON hr.copy_id = h.id \
                             WHERE h.message_id = m.id AND h.kind = 'hold' AND hr.rule = cr.rule) \
             GROUP BY day_ms, cr.rule ORDER BY day_ms, cr.rule",
        )
        .bind(MS_PER_DAY)
        .bind(MS_PER_DAY)
        .bind(since_ms)
        .fetch_all(&self.pool)
        .await?;
        day_rule_counts(&rows)
    }

    /// Per detector: held copies with a finding of it and false positives recorded against it,
    /// most held first. Findings outlive retention purges, so these are the figures since the
    /// store began.
    pub async fn detector_stats(&self) -> Result<Vec<DetectorStats>, StoreError> {
        let rows = sqlx::query(
            "SELECT d.detector AS detector, d.held AS held, COALESCE(fp.n, 0) AS fp \
             FROM (SELECT f.detector AS detector, COUNT(DISTINCT f.copy_id) AS held \
                   FROM findings f JOIN copies c ON c.id = f.copy_id \
                   WHERE c.kind = 'hold' GROUP BY f.detector) d \
             LEFT JOIN (SELECT detector, COUNT(*) AS n FROM false_positives \
                        GROUP BY detector) fp ON fp.detector = d.detector \
             ORDER BY d.held DESC, d.detector",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(DetectorStats {
                    detector: r.try_get("detector")?,
                    held: to_u64(r.try_get("held")?),
                    false_positives: to_u64(r.try_get("fp")?),
                })
            })
            .collect()
    }
}

/// Rows of `day_ms`, `rule`, `n` as counts per day and rule.
fn day_rule_counts(rows: &[sqlx::any::AnyRow]) -> Result<Vec<DayRuleCount>, StoreError> {
    rows.iter()
        .map(|r| {
            Ok(DayRuleCount {
                day_ms: r.try_get("day_ms")?,
                rule: r.try_get("rule")?,
                held: to_u64(r.try_get("n")?),
            })
        })
        .collect()
}
