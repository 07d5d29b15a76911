//! End-to-end tests of `/metrics` and of the Redis counters: the real binary, real SMTP and
//! HTTP on 127.0.0.1. The metrics are scraped as Prometheus would, and parsed.
//! The two-relay test needs the Redis at 127.0.0.1:6379: without it, it says so and passes,
//! unless `HALLPASS_REQUIRE_REDIS=1` (CI), where it fails.

mod common;
use common::*;

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

/// Samples of a Prometheus text exposition: `name{labels}` → value.
fn parse(text: &str) -> HashMap<String, f64> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .filter_map(|l| {
            let (series, value) = l.rsplit_once(' ')?;
            Some((series.to_string(), value.parse().ok()?))
        })
        .collect()
}

fn value(samples: &HashMap<String, f64>, series: &str) -> f64 {
    *samples
        .get(series)
        .unwrap_or_else(|| panic!("no {series} in the metrics: {samples:?}"))
}

fn scrape(relay: &Relay, auth: &[(&str, &str)]) -> HashMap<String, f64> {
    let (status, head, body) = http(relay.console, "GET", "/metrics", auth, "");
    assert_eq!(status, 200, "{head}\n{body}");
    assert!(
        head.to_ascii_lowercase()
            .contains("content-type: text/plain; version=0.0.4"),
        "{head}"
    );
    parse(&body)
}

fn token(relay: &Relay, name: &str) -> String {
    token_as(relay, name, "dpo")
}

fn token_as(relay: &Relay, name: &str, role: &str) -> String {
    relay.add_user(name, role, "a long password");
    let out = relay.hallpass(&["user", "token", name], "");
    assert!(out.status.success());
    format!("Bearer {}", String::from_utf8(out.stdout).unwrap().trim())
}

#[test]
fn metrics_are_scraped_with_a_token_and_count_what_the_relay_did() {
    let dir = temp_dir("metrics");
    let relay = Relay::start(&dir, "dir:outbox", "");
    let pupil = pupil_record();

    let clean = message("parent@example.com", "", "trip", "The trip leaves at nine.");
    send_to_parent(relay.addr, &clean);
    for subject in ["referral-a", "referral-b"] {
        let held = message("parent@example.com", "", subject, &pupil);
        let r = send_to_parent(relay.addr, &held);
        assert!(r.1.contains("held"), "{r:?}");
    }

    // Protected like /api.
    let (status, head, _) = http(relay.console, "GET", "/metrics", &[], "");
    assert_eq!(status, 401, "{head}");
    let (status, _, _) = http(
        relay.console,
        "GET",
        "/metrics",
        &[("Authorization", "Bearer hp_not_a_token")],
        "",
    );
    assert_eq!(status, 401);
    let bearer = token(&relay, "dpo");
    let auth = [("Authorization", bearer.as_str())];

    let m = scrape(&relay, &auth);
    assert_eq!(
        value(&m, r#"hallpass_messages_total{verdict="deliver"}"#),
        1.0
    );
    assert_eq!(value(&m, r#"hallpass_messages_total{verdict="hold"}"#), 2.0);
    assert_eq!(
        value(&m, r#"hallpass_messages_total{verdict="reject"}"#),
        0.0
    );
    assert_eq!(
        value(
            &m,
            r#"hallpass_rule_hits_total{rule="personal_data_external"}"#
        ),
        2.0
    );
    assert_eq!(
        value(&m, r#"hallpass_rule_hits_total{rule="bulk_send"}"#),
        0.0
    );
    assert_eq!(
        value(
            &m,
            r#"hallpass_detector_hits_total{detector="uk_nhs_number"}"#
        ),
        2.0
    );
    assert_eq!(
        value(&m, r#"hallpass_detector_hits_total{detector="iban"}"#),
        0.0
    );
    assert_eq!(value(&m, "hallpass_scan_seconds_count"), 3.0);
    assert!(m.contains_key(r#"hallpass_scan_seconds_bucket{le="+Inf"}"#));
    assert_eq!(value(&m, "hallpass_smtp_sessions_total"), 3.0);
    // Each session: greeting, EHLO, MAIL, RCPT, DATA's 354 … final 250, QUIT.
    assert_eq!(value(&m, r#"hallpass_smtp_replies_total{code="220"}"#), 3.0);
    assert_eq!(value(&m, r#"hallpass_smtp_replies_total{code="354"}"#), 3.0);
    assert_eq!(value(&m, r#"hallpass_smtp_replies_total{code="221"}"#), 3.0);
    assert_eq!(
        value(&m, r#"hallpass_smtp_replies_total{code="250"}"#),
        12.0
    );
    assert_eq!(value(&m, r#"hallpass_reloads_total{result="ok"}"#), 0.0);
    assert_eq!(value(&m, "hallpass_releases_total"), 0.0);

    // The gauges follow the store; the delivery of the clean copy is counted.
    let m = eventually("the held gauge and the delivery", || {
        let m = scrape(&relay, &auth);
        (m.get("hallpass_held") == Some(&2.0)
            && m.get(r#"hallpass_delivery_attempts_total{class="2xx"}"#) >= Some(&1.0)
            && m.get("hallpass_smtp_sessions") == Some(&0.0))
        .then_some(m)
    });
    assert!(m.contains_key("hallpass_queue_depth"));
    assert!(m.contains_key("hallpass_queue_oldest_age_seconds"));
    assert_eq!(
        value(&m, r#"hallpass_delivery_failures_total{class="5xx"}"#),
        0.0
    );

    // The DPO's decisions in the console.
    let (status, _, body) = http(relay.console, "GET", "/api/held", &auth, "");
    assert_eq!(status, 200, "{body}");
    let list: Vec<serde_json::Value> = serde_json::from_str(&body).unwrap();
    assert_eq!(list.len(), 2);
    let post = |path: String, body: &str| {
        let (status, _, text) = http(
            relay.console,
            "POST",
            &path,
            &[auth[0], ("Content-Type", "application/json")],
            body,
        );
        assert_eq!(status, 200, "{text}");
    };
    post(
        format!(
            "/api/held/{}/false-positive",
            list[0]["id"].as_str().unwrap()
        ),
        "{}",
    );
    post(
        format!("/api/held/{}/reject", list[1]["id"].as_str().unwrap()),
        r#"{"reason":"please send it through the secure portal"}"#,
    );
    let m = eventually("the quarantine emptied", || {
        let m = scrape(&relay, &auth);
        (m.get("hallpass_held") == Some(&0.0)).then_some(m)
    });
    assert_eq!(value(&m, "hallpass_releases_total"), 1.0);
    assert_eq!(value(&m, "hallpass_false_positives_total"), 1.0);
    assert_eq!(value(&m, "hallpass_rejections_total"), 1.0);

    // No personal data in any label or value.
    let (_, _, text) = http(relay.console, "GET", "/metrics", &auth, "");
    for secret in ["example.com", "lumen", "teacher", "referral", "trip"] {
        assert!(!text.contains(secret), "{secret} in the metrics");
    }
    let nhs = pupil
        .lines()
        .find_map(|l| l.strip_prefix("NHS number: "))
        .unwrap()
        .trim();
    assert!(!text.contains(nhs));
    assert!(!text.contains(&nhs.replace(' ', "")));
}

#[test]
fn metrics_can_be_public_and_are_refused_to_relay_accounts_otherwise() {
    let dir = temp_dir("metrics-public");
    let relay = Relay::start(&dir, "dir:outbox", "[console]\nmetrics_public = true\n");
    let m = scrape(&relay, &[]);
    assert_eq!(value(&m, r#"hallpass_messages_total{verdict="hold"}"#), 0.0);
    drop(relay);

    let dir = temp_dir("metrics-relay-account");
    let relay = Relay::start(&dir, "dir:outbox", "");
    let out = relay.hallpass(
        &["user", "add", "mailserver", "--role", "relay"],
        "a long relay password\n",
    );
    assert!(out.status.success());
    let out = relay.hallpass(&["user", "token", "mailserver"], "");
    let bearer = format!("Bearer {}", String::from_utf8(out.stdout).unwrap().trim());
    let (status, _, _) = http(
        relay.console,
        "GET",
        "/metrics",
        &[("Authorization", bearer.as_str())],
        "",
    );
    assert_eq!(status, 403, "a relay account is not a console account");

    // A scraper's account: its token reads /metrics and nothing else, and it cannot log in.
    let scraper = token_as(&relay, "prometheus", "metrics");
    let auth = [("Authorization", scraper.as_str())];
    let m = scrape(&relay, &auth);
    assert_eq!(value(&m, r#"hallpass_messages_total{verdict="hold"}"#), 0.0);
    for (method, path) in [
        ("GET", "/api/held"),
        ("GET", "/api/audit"),
        ("GET", "/held"),
    ] {
        let (status, _, _) = http(relay.console, method, path, &auth, "");
        assert_eq!(status, 403, "{method} {path} with a metrics token");
    }
    let (status, _, _) = http(
        relay.console,
        "POST",
        "/login",
        &[("Content-Type", "application/x-www-form-urlencoded")],
        "username=prometheus&password=a+long+password",
    );
    assert_ne!(
        status, 303,
        "a metrics account cannot log in to the console"
    );
}

/// Whether the test Redis answers; panics when it must (`HALLPASS_REQUIRE_REDIS=1`).
fn redis_here() -> bool {
    let required = std::env::var("HALLPASS_REQUIRE_REDIS").is_ok_and(|v| v == "1");
    let ping = || -> std::io::Result<bool> {
        let mut s =
            TcpStream::connect_timeout(&"127.0.0.1:6379".parse().unwrap(), Duration::from_secs(5))?;
        s.set_read_timeout(Some(Duration::from_secs(5)))?;
        s.write_all(b"PING\r\n")?;
        let mut buf = [0u8; 7];
        s.read_exact(&mut buf)?;
        Ok(&buf == b"+PONG\r\n")
    };
    match ping() {
        Ok(true) => true,
        other if required => {
            panic!(
                "HALLPASS_REQUIRE_REDIS=1 but the Redis at 127.0.0.1:6379 does not answer: {other:?}"
            )
        }
        other => {
            eprintln!(
                "note: skipping: no Redis at 127.0.0.1:6379 ({other:?}); set HALLPASS_REQUIRE_REDIS=1 to make that a failure"
            );
            false
        }
    }
}

#[test]
fn two_relays_share_a_senders_bulk_window_through_redis() {
    if !redis_here() {
        return;
    }
    let prefix = format!(
        "hallpass-test:relays:{}:{}:",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    );
    let extra = format!(
        "[counters]\nurl = \"redis://127.0.0.1:6379/\"\nprefix = \"{prefix}\"\n\
         [rules.bulk_send]\nwindow_recipients = 3\nwindow_seconds = 3600\n"
    );
    let dir_a = temp_dir("metrics-redis-a");
    let dir_b = temp_dir("metrics-redis-b");
    let a = Relay::start(&dir_a, "dir:outbox", &extra);
    let b = Relay::start(&dir_b, "dir:outbox", &extra);
    let rcpts_a = ["parent1@example.com", "parent2@example.com"];
    let rcpts_b = ["parent3@example.com", "parent4@example.com"];
    let data = message(
        &rcpts_a.join(", "),
        "",
        "club-a",
        "Chess club is on Tuesday.",
    );
    let r = send(a.addr, "teacher@lumen.sch.uk", &rcpts_a, &data);
    assert_eq!(r.0, 250, "{r:?}");
    assert!(!r.1.contains("held"), "2 of 3 in the window: {r:?}");
    // Relay B has never seen this sender, but Redis has: 4 > 3.
    let data = message(
        &rcpts_b.join(", "),
        "",
        "club-b",
        "Chess club is on Tuesday.",
    );
    let r = send(b.addr, "Teacher@lumen.sch.uk", &rcpts_b, &data);
    assert_eq!(r.0, 250, "{r:?}");
    assert!(r.1.contains("held"), "4 of 3 across both relays: {r:?}");
    let held = b.held();
    assert_eq!(held.len(), 1);
    assert_eq!(held[0]["rules"], serde_json::json!(["bulk_send"]));
    assert!(a.held().is_empty());
    // Nothing in Redis names the sender.
    let mut s = TcpStream::connect("127.0.0.1:6379").unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(format!("KEYS {prefix}*\r\n").as_bytes())
        .unwrap();
    let mut buf = [0u8; 4096];
    let n = s.read(&mut buf).unwrap();
    let keys = String::from_utf8_lossy(&buf[..n]).to_string();
    assert!(keys.contains(&format!("{prefix}window:")), "{keys}");
    assert!(
        !keys.contains("teacher") && !keys.contains("lumen"),
        "{keys}"
    );
    for k in keys.lines().filter(|l| l.starts_with(&prefix)) {
        s.write_all(format!("DEL {k}\r\n").as_bytes()).unwrap();
        let _ = s.read(&mut buf).unwrap();
    }
}
