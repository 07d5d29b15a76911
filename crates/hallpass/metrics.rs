//! The relay's metrics: the Prometheus recorder (served by the console at `GET /metrics`, no
//! listener of its own), every metric's name and help text, and the few functions the relay
//! calls to count. docs/metrics.md lists them for admins.
//!
//! The `metrics` facade is to metrics what `tracing` is to logs: the SMTP shell
//! (`hallpass-smtp`: sessions, replies) and the console (`hallpass-console`: releases,
//! rejections, false positives) emit through it, and it costs nothing until this binary installs
//! the recorder. Label values are verdicts, rule and detector ids, reply codes and reply classes:
//! never an address, a subject or a value.

use std::time::Duration;

use hallpass_core::{RuleId, Verdict};
use hallpass_deliver::RcptOutcome;
use hallpass_engine::{Engine, Report};
use hallpass_store::Store;
use metrics::{Unit, counter, describe_counter, describe_gauge, describe_histogram, gauge};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

use crate::clock;

/// Messages answered with a verdict, by verdict.
pub const MESSAGES: &str = "hallpass_messages_total";
/// Messages on which a rule fired (whatever its action), by rule.
pub const RULE_HITS: &str = "hallpass_rule_hits_total";
/// Matches found, by detector.
pub const DETECTOR_HITS: &str = "hallpass_detector_hits_total";
/// Time to scan one message.
pub const SCAN_SECONDS: &str = "hallpass_scan_seconds";
/// SMTP sessions open now (emitted by hallpass-smtp).
pub const SMTP_SESSIONS: &str = "hallpass_smtp_sessions";
/// SMTP sessions since start (emitted by hallpass-smtp).
pub const SMTP_SESSIONS_TOTAL: &str = "hallpass_smtp_sessions_total";
/// SMTP replies sent, by code (emitted by hallpass-smtp).
pub const SMTP_REPLIES: &str = "hallpass_smtp_replies_total";
/// Recipients queued or being sent.
pub const QUEUE_DEPTH: &str = "hallpass_queue_depth";
/// Age of the oldest copy in the queue.
pub const QUEUE_OLDEST: &str = "hallpass_queue_oldest_age_seconds";
/// Copies waiting in the quarantine.
pub const HELD: &str = "hallpass_held";
/// Delivery attempts, one per recipient, by the upstream's reply class.
pub const DELIVERY_ATTEMPTS: &str = "hallpass_delivery_attempts_total";
/// Recipients given up on (bounced), by the class of the last reply.
pub const DELIVERY_FAILURES: &str = "hallpass_delivery_failures_total";
/// Held copies released by a DPO in the console (emitted by hallpass-console).
pub const RELEASES: &str = "hallpass_releases_total";
/// Held copies rejected by a DPO in the console (emitted by hallpass-console).
pub const REJECTIONS: &str = "hallpass_rejections_total";
/// Releases recorded as false positives (emitted by hallpass-console).
pub const FALSE_POSITIVES: &str = "hallpass_false_positives_total";
/// Configuration reloads, by result.
pub const RELOADS: &str = "hallpass_reloads_total";

/// Upper bounds of the scan time histogram, in seconds.
const SCAN_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// Reply classes of delivery results: `connect` when there was no SMTP reply (connection, TLS,
/// or a `dir:` target that could not be written).
const CLASSES: [&str; 4] = ["2xx", "4xx", "5xx", "connect"];

/// How often the queue gauges are read from the store.
const GAUGES_EVERY: Duration = Duration::from_secs(2);

/// Installs the process's recorder and describes every metric; each starts at zero (with the
/// label values known in advance), so a scrape shows them all from the first second.
pub fn install(engine: &Engine) -> anyhow::Result<PrometheusHandle> {
    let handle = PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Full(SCAN_SECONDS.into()), SCAN_BUCKETS)?
        .install_recorder()?;
    describe();
    for v in [
        Verdict::Deliver,
        Verdict::Rewrite,
        Verdict::Hold,
        Verdict::Reject,
    ] {
        counter!(MESSAGES, "verdict" => v.as_str()).absolute(0);
    }
    for r in RuleId::ALL {
        counter!(RULE_HITS, "rule" => r.as_str()).absolute(0);
    }
    for d in engine.detectors().detectors() {
        counter!(DETECTOR_HITS, "detector" => d.id().as_str().to_string()).absolute(0);
    }
    for c in CLASSES {
        counter!(DELIVERY_ATTEMPTS, "class" => c).absolute(0);
        counter!(DELIVERY_FAILURES, "class" => c).absolute(0);
    }
    gauge!(SMTP_SESSIONS).set(0.0);
    counter!(SMTP_SESSIONS_TOTAL).absolute(0);
    gauge!(QUEUE_DEPTH).set(0.0);
    gauge!(QUEUE_OLDEST).set(0.0);
    gauge!(HELD).set(0.0);
    counter!(RELEASES).absolute(0);
    counter!(REJECTIONS).absolute(0);
    counter!(FALSE_POSITIVES).absolute(0);
    counter!(RELOADS, "result" => "ok").absolute(0);
    counter!(RELOADS, "result" => "refused").absolute(0);
    Ok(handle)
}

fn describe() {
    describe_counter!(
        MESSAGES,
        "Messages answered with a verdict (250 or 550), by verdict"
    );
    describe_counter!(
        RULE_HITS,
        "Messages on which a rule fired, whatever its action (monitor included), by rule"
    );
    describe_counter!(
        DETECTOR_HITS,
        "Matches found in messages answered with a verdict, by detector"
    );
    describe_histogram!(SCAN_SECONDS, Unit::Seconds, "Time to scan one message");
    describe_gauge!(SMTP_SESSIONS, "SMTP sessions open now");
    describe_counter!(SMTP_SESSIONS_TOTAL, "SMTP sessions since start");
    describe_counter!(SMTP_REPLIES, "SMTP replies sent to clients, by code");
    describe_gauge!(QUEUE_DEPTH, "Recipients queued or being sent upstream");
    describe_gauge!(
        QUEUE_OLDEST,
        Unit::Seconds,
        "Age of the oldest copy in the delivery queue (0 when empty)"
    );
    describe_gauge!(HELD, "Copies waiting in the quarantine for a decision");
    describe_counter!(
        DELIVERY_ATTEMPTS,
        "Delivery attempts, one per recipient, by upstream reply class (2xx, 4xx, 5xx, connect)"
    );
    describe_counter!(
        DELIVERY_FAILURES,
        "Recipients given up on (refused for good or expired; the sender is sent a bounce), by class of the last reply"
    );
    describe_counter!(RELEASES, "Held copies released in this relay's console");
    describe_counter!(REJECTIONS, "Held copies rejected in this relay's console");
    describe_counter!(
        FALSE_POSITIVES,
        "Releases in this relay's console recorded as false positives"
    );
    describe_counter!(RELOADS, "Configuration reloads, by result (ok, refused)");
}

/// One scan's time.
pub fn scanned(took: Duration) {
    metrics::histogram!(SCAN_SECONDS).record(took.as_secs_f64());
}

/// A message answered with its verdict (accepted or refused).
pub fn answered(report: &Report, rules: &[RuleId]) {
    counter!(MESSAGES, "verdict" => report.verdict.as_str()).increment(1);
    for r in rules {
        counter!(RULE_HITS, "rule" => r.as_str()).increment(1);
    }
    for f in &report.findings {
        counter!(DETECTOR_HITS, "detector" => f.detector.as_str().to_string())
            .increment(u64::from(f.count));
    }
}

/// The reply class of a delivery result.
fn class(outcome: &RcptOutcome) -> &'static str {
    match reply_class(outcome.text()) {
        Some(c) => c,
        None if outcome.is_delivered() => "2xx",
        None => "connect",
    }
}

/// `2xx`, `4xx` or `5xx` from an SMTP reply's text; `None` when it is not one.
fn reply_class(text: &str) -> Option<&'static str> {
    let b = text.as_bytes();
    if b.len() < 3 || !b[..3].iter().all(u8::is_ascii_digit) {
        return None;
    }
    match b[0] {
        b'2' => Some("2xx"),
        b'4' => Some("4xx"),
        b'5' => Some("5xx"),
        _ => None,
    }
}

/// One delivery attempt's results, per recipient.
pub fn delivered(outcomes: &[RcptOutcome]) {
    for o in outcomes {
        counter!(DELIVERY_ATTEMPTS, "class" => class(o)).increment(1);
    }
}

/// Recipients given up on, with the last reply each had.
pub fn gave_up(failed: &[(String, String)]) {
    for (_, reply) in failed {
        let class = reply_class(reply).unwrap_or("connect");
        counter!(DELIVERY_FAILURES, "class" => class).increment(1);
    }
}

/// Reads the queue and quarantine gauges from the store every few seconds, and lets the
/// recorder drain its histograms, until `stop` turns true.
pub async fn gauges(
    store: Store,
    handle: PrometheusHandle,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    loop {
        match store.queue_stats(clock::now_ms()).await {
            Ok(s) => {
                gauge!(QUEUE_DEPTH).set(s.queued as f64);
                gauge!(QUEUE_OLDEST).set(s.oldest_age_ms.unwrap_or(0) as f64 / 1000.0);
                gauge!(HELD).set(s.held as f64);
            }
            Err(e) => tracing::warn!(error = %e, "cannot read the queue for the metrics"),
        }
        handle.run_upkeep();
        tokio::select! {
            _ = tokio::time::sleep(GAUGES_EVERY) => {}
            _ = stop.changed() => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reply_classes() {
        let c = |o: RcptOutcome| class(&o);
        assert_eq!(c(RcptOutcome::Delivered("250 2.0.0 ok".into())), "2xx");
        assert_eq!(c(RcptOutcome::Delivered("written to outbox".into())), "2xx");
        assert_eq!(c(RcptOutcome::Transient("451 4.3.0 later".into())), "4xx");
        assert_eq!(
            c(RcptOutcome::Transient("connection refused".into())),
            "connect"
        );
        assert_eq!(c(RcptOutcome::Permanent("550 5.1.1 no".into())), "5xx");
        assert_eq!(reply_class("25"), None);
    }
}
