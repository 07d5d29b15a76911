//! Retention: a held message nobody decided within `[storage] held_retention_days` is rejected
//! and its file purged, and its sender is told, as for a DPO's rejection.

mod common;

use std::process::Command;

use common::*;

/// Moves every message's arrival `days` into the past, as if the relay had been running since.
fn age_messages(dir: &std::path::Path, days: i64) {
    let db = dir.join("data").join("hallpass.db");
    let status = Command::new("python3")
        .arg("-c")
        .arg(format!(
            "import sqlite3; c = sqlite3.connect({db:?}); \
             c.execute('UPDATE messages SET received_ms = received_ms - {ms}'); c.commit()",
            db = db.display().to_string(),
            ms = days * 86_400_000
        ))
        .status()
        .unwrap();
    assert!(status.success());
}

#[test]
fn a_held_message_past_its_period_is_rejected_and_the_sender_told() {
    let dir = temp_dir("retention");
    let mut relay = Relay::start(&dir, "dir:outbox", "");
    let data = message("parent@example.com", "", "old", &pupil_record());
    send_to_parent(relay.addr, &data);
    eventually("the held notice", || {
        Some(()).filter(|()| notices(&relay.outbox()).len() == 1)
    });
    let config = relay.config.clone();
    relay.kill();

    // Forty days later (the default period is 30): the sweep at start-up purges it.
    age_messages(&dir, 40);
    let relay = Relay::start_with(&dir, config);
    let both = eventually("the retention notice", || {
        Some(notices(&relay.outbox())).filter(|n| n.len() == 2)
    });
    let (bytes, env) = both
        .iter()
        .find(|(b, _)| String::from_utf8_lossy(b).contains("was not sent"))
        .expect("a rejection notice");
    assert!(env.contains("RCPT TO:<teacher@lumen.sch.uk>"), "{env}");
    let text = String::from_utf8_lossy(bytes);
    assert!(text.contains("retention period passed"), "{text}");
    let all = relay.held_all();
    assert_eq!(all.len(), 1);
    assert_eq!(all[0]["status"], "rejected");
    assert!(
        outbox_files(&relay.outbox()).is_empty(),
        "the message itself never left"
    );
}
