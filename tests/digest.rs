//! The DPO's daily digest, end to end: the real `hallpass serve` with a `dir:` outbox, a held
//! message, and restarts. `digest_hour = 0` makes the day's digest due at once, without waiting
//! for a time of day.

mod common;

use std::time::{SystemTime, UNIX_EPOCH};

use common::*;

const DIGEST: &str = r#"
[notifications]
digest_to = ["dpo@lumen.sch.uk"]
digest_hour = 0
[console]
public_url = "https://hallpass.lumen.sch.uk/"
"#;

/// Copies in the outbox addressed to the DPO: (message as a mail client shows it, envelope).
fn digests(relay: &Relay) -> Vec<(String, String)> {
    outbox_all(&relay.outbox())
        .into_iter()
        .filter(|(_, env)| env.contains("RCPT TO:<dpo@lumen.sch.uk>"))
        .map(|(bytes, env)| (quoted_printable(&bytes), env))
        .collect()
}

/// Undoes quoted-printable (soft line breaks and `=XX`), as a mail client would.
fn quoted_printable(bytes: &[u8]) -> String {
    let s = String::from_utf8_lossy(bytes).replace("=\r\n", "");
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        match (b[i], s.get(i + 1..i + 3).map(|h| u8::from_str_radix(h, 16))) {
            (b'=', Some(Ok(v))) => {
                out.push(v);
                i += 3;
            }
            (c, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn utc_day() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
        / 86_400
}

fn wait_for_log(relay: &Relay, line: &str) {
    eventually(line, || {
        relay.log.lock().unwrap().contains(line).then_some(())
    });
}

#[test]
fn the_dpo_gets_one_digest_a_day_listing_what_waits_with_links_and_no_values() {
    let dir = temp_dir("digest");
    // First run: no digest configured; a message is held.
    let mut relay = Relay::start(&dir, "dir:outbox", "");
    let record = pupil_record();
    let nhs: String = record
        .lines()
        .find_map(|l| l.strip_prefix("NHS number: "))
        .unwrap()
        .to_string();
    let data = message("parent@example.com", "", "ReferralZeta", &record);
    send_to_parent(relay.addr, &data);
    let held = relay.held();
    assert_eq!(held.len(), 1);
    let id = held[0]["id"].as_str().unwrap().to_string();
    eventually("the sender's held notice", || {
        Some(notices(&relay.outbox())).filter(|n| n.len() == 1)
    });
    assert!(
        digests(&relay).is_empty(),
        "no digest when none is configured"
    );
    relay.kill();

    // Second run: the digest is on and due; it goes once.
    let day = utc_day();
    let mut relay = Relay::start(&dir, "dir:outbox", DIGEST);
    let got = eventually("the digest", || {
        Some(digests(&relay)).filter(|d| !d.is_empty())
    });
    wait_for_log(&relay, "daily digest: queued for the DPO");
    assert_eq!(got.len(), 1, "one digest");
    let (text, envelope) = &got[0];
    assert!(envelope.contains("MAIL FROM:<>"), "{envelope}");
    assert!(
        text.contains("From: \"Test School\" <postmaster@lumen.sch.uk>"),
        "{text}"
    );
    assert!(
        text.contains("Subject: 1 email(s) from staff waiting for your review"),
        "{text}"
    );
    assert!(
        text.contains("from teacher@lumen.sch.uk to 1 recipient(s)"),
        "{text}"
    );
    assert!(text.contains("Why: personal_data_external"), "{text}");
    assert!(
        text.contains("Found: NHS numbers x1, dates of birth x1"),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "Open: https://hallpass.lumen.sch.uk/held/{id}\r\n"
        )),
        "a link to the message's page: {text}"
    );
    let digits: String = nhs.chars().filter(char::is_ascii_digit).collect();
    assert_eq!(digits.len(), 10);
    for never in [
        nhs.as_str(),
        digits.as_str(),
        "04/05/2014",
        "parent@example.com",
        "ReferralZeta",
    ] {
        assert!(
            !text.contains(never),
            "the digest carries no value, subject or recipient: {text}"
        );
    }
    relay.kill();

    // Third run, same day: already sent, so nothing more.
    let relay = Relay::start(&dir, "dir:outbox", DIGEST);
    wait_for_log(&relay, "daily digest: already sent today");
    if utc_day() != day {
        eprintln!("the UTC day changed during the test: a new day's digest is right; not checking");
        return;
    }
    assert_eq!(
        digests(&relay).len(),
        1,
        "not a second digest on the same day"
    );
}

#[test]
fn no_digest_is_sent_when_nothing_waits() {
    let dir = temp_dir("digest-empty");
    let relay = Relay::start(&dir, "dir:outbox", DIGEST);
    wait_for_log(&relay, "daily digest: nothing waits; none sent");
    let r = send(
        relay.addr,
        "teacher@lumen.sch.uk",
        &["head@lumen.sch.uk"],
        &message("head@lumen.sch.uk", "", "Timetable", "See you at nine."),
    );
    assert_eq!(r.0, 250, "{r:?}");
    eventually("the clean message delivered", || {
        Some(outbox_files(&relay.outbox())).filter(|f| f.len() == 1)
    });
    assert!(
        digests(&relay).is_empty(),
        "no digest on a day nothing waited"
    );
}
