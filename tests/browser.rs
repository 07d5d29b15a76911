//! The DPO console in a real browser: `hallpass serve` with an SMTP sink as the
//! upstream, messages held for different rules, then `tests/browser/console.mjs`
//! drives Debian's chromium (through playwright-core) to log in, filter, open,
//! release and reject, and read the audit trail; it screenshots each page at laptop
//! and tablet sizes and records each page's weight in `target/browser/`. Back here,
//! the sink must have exactly the released copy and the senders their notices.
//!
//! Needs `/usr/bin/chromium` (or `HALLPASS_CHROMIUM`), Node.js 20+ and
//! `tests/browser/node_modules`: `bash tests/browser/setup.sh` installs what is missing.

mod common;
use common::*;

use std::path::{Path, PathBuf};
use std::process::Command;

const SETUP: &str = "run `bash tests/browser/setup.sh` (it installs Debian's chromium with \
                     apt-get and playwright-core with `npm ci` in tests/browser)";

/// The browser to drive; fails with how to install what is missing.
fn prerequisites() -> PathBuf {
    let chromium = std::env::var_os("HALLPASS_CHROMIUM")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/chromium"));
    assert!(
        chromium.is_file(),
        "the browser test needs Chromium at {}: {SETUP}",
        chromium.display()
    );
    let node = Command::new("node").arg("--version").output();
    assert!(
        node.as_ref().is_ok_and(|o| o.status.success()),
        "the browser test needs Node.js 20 or later as `node` on the PATH \
         (Debian: apt-get install nodejs npm), then {SETUP}"
    );
    assert!(
        root()
            .join("tests/browser/node_modules/playwright-core/package.json")
            .is_file(),
        "the browser test needs tests/browser/node_modules: {SETUP}"
    );
    chromium
}

/// Where screenshots and page-weight.txt go: `target/browser/` (the target folder in use).
fn out_dir() -> PathBuf {
    let target = Path::new(env!("CARGO_TARGET_TMPDIR")).parent().unwrap();
    let out = target.join("browser");
    std::fs::create_dir_all(&out).unwrap();
    out
}

/// An identifier as written and without its spaces: neither may show.
fn both_forms(v: &str) -> [String; 2] {
    [v.to_string(), v.replace(' ', "")]
}

#[test]
fn a_dpo_filters_releases_and_rejects_in_chromium_and_no_identifier_shows() {
    let chromium = prerequisites();
    let dir = temp_dir("browser");
    let port = free_port();
    let sink = Sink::start(port, |_, _| "250 2.1.5 Ok".into());
    let relay = Relay::start(
        &dir,
        &format!("127.0.0.1:{port}"),
        "[rules.bulk_send]\nmax_recipients = 3\n\n\
         [rules.cc_exposure]\naction = \"hold\"\nthreshold = 2\n",
    );

    // Synthetic identifiers, made here with valid check digits.
    let mut rng = hallpass_fixtures::Rng::new(2026);
    let (nhs_a1, nhs_a2) = (
        hallpass_fixtures::nhs_number(&mut rng),
        hallpass_fixtures::nhs_number(&mut rng),
    );
    let (nhs_b, upn_b) = (
        hallpass_fixtures::nhs_number(&mut rng),
        hallpass_fixtures::upn(&mut rng),
    );
    let (dob_b, _) = hallpass_fixtures::date_of_birth(&mut rng);
    let values_a: Vec<String> = [&nhs_a1, &nhs_a2]
        .iter()
        .flat_map(|v| both_forms(v))
        .collect();
    let values_b: Vec<String> = [&nhs_b, &upn_b]
        .iter()
        .flat_map(|v| both_forms(v))
        .collect();

    let from = |who: &str| format!("{who}@lumen.sch.uk");
    let mail = |sender: &str, to: &str, cc: &str, id: &str, subject: &str, body: &str| {
        let cc = if cc.is_empty() {
            String::new()
        } else {
            format!("Cc: {cc}\r\n")
        };
        format!(
            "From: {sender}\r\nTo: {to}\r\n{cc}Subject: {subject}\r\nMessage-ID: <{id}@lumen.sch.uk>\r\n\
             Date: Mon, 23 Nov 2026 09:00:00 +0000\r\n\r\n{body}\r\n"
        )
        .into_bytes()
    };
    // (sender, envelope recipients, message): four held for different rules, one clean.
    let parents4 = [
        "p1@example.com",
        "p2@example.com",
        "p3@example.com",
        "p4@example.com",
    ];
    let sends: Vec<(String, Vec<&str>, Vec<u8>)> = vec![
        (
            from("teacher"),
            vec!["parent.a@example.com"],
            mail(
                &from("teacher"),
                "parent.a@example.com",
                "",
                "to-reject",
                "Referral details",
                &format!(
                    "Referral for the two children.\r\nNHS number: {nhs_a1}\r\nNHS number: {nhs_a2}\r\n"
                ),
            ),
        ),
        (
            from("head"),
            vec!["parent.b@example.com"],
            mail(
                &from("head"),
                "parent.b@example.com",
                "",
                "to-release",
                "Pupil record",
                &format!(
                    "Pupil record as requested.\r\nUPN: {upn_b}\r\nNHS number: {nhs_b}\r\nDate of birth: {dob_b}\r\n"
                ),
            ),
        ),
        (
            from("office"),
            parents4.to_vec(),
            mail(
                &from("office"),
                "undisclosed-recipients:;",
                "",
                "bulk",
                "Museum trip",
                "The coach leaves at nine; bring a packed lunch.",
            ),
        ),
        (
            from("clerk"),
            vec!["p5@example.com", "p6@example.com"],
            mail(
                &from("clerk"),
                "p5@example.com",
                "p6@example.com",
                "cc",
                "Parents' evening",
                "Appointments are on Thursday from four.",
            ),
        ),
        (
            from("teacher"),
            vec!["colleague@lumen.sch.uk"],
            mail(
                &from("teacher"),
                "colleague@lumen.sch.uk",
                "",
                "clean",
                "Staff meeting",
                "See you in the hall at half three.",
            ),
        ),
    ];
    for (sender, rcpts, data) in &sends {
        let r = send(relay.addr, sender, rcpts, data);
        assert_eq!(r.0, 250, "{r:?}");
    }

    let held = eventually("four held messages", || {
        Some(relay.held()).filter(|h| h.len() == 4)
    });
    let id_of = |mid: &str| {
        held.iter()
            .find(|h| h["message_id"] == format!("{mid}@lumen.sch.uk"))
            .unwrap_or_else(|| panic!("{mid} is held: {held:?}"))["id"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let rules_of = |mid: &str| {
        held.iter()
            .find(|h| h["message_id"] == format!("{mid}@lumen.sch.uk"))
            .unwrap()["rules"]
            .clone()
    };
    assert_eq!(rules_of("bulk"), serde_json::json!(["bulk_send"]));
    assert_eq!(rules_of("cc"), serde_json::json!(["cc_exposure"]));
    assert_eq!(
        rules_of("to-reject"),
        serde_json::json!(["personal_data_external"])
    );

    let (dpo_password, admin_password) = ("a long dpo password here", "a long admin password");
    for (name, role, password) in [
        ("dpo", "dpo", dpo_password),
        ("admin", "admin", admin_password),
    ] {
        let out = relay.hallpass(
            &["user", "add", name, "--role", role],
            &format!("{password}\n"),
        );
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    let reason = "Wrong family: check the contact list";
    let values: Vec<&String> = values_a.iter().chain(&values_b).collect();
    let spec = serde_json::json!({
        "dpo": {"user": "dpo", "password": dpo_password},
        "admin": {"user": "admin", "password": admin_password},
        "values": values,
        "held": {
            "reject": id_of("to-reject"),
            "release": id_of("to-release"),
            "bulk": id_of("bulk"),
            "cc": id_of("cc"),
        },
        "senders": {"reject": from("teacher")},
        "reason": reason,
    });
    let out = out_dir();
    let script = Command::new("node")
        .arg(root().join("tests/browser/console.mjs"))
        .current_dir(root().join("tests/browser"))
        .env("HALLPASS_URL", format!("http://{}", relay.console))
        .env("HALLPASS_SPEC", spec.to_string())
        .env("HALLPASS_OUT", &out)
        .env("HALLPASS_CHROMIUM", &chromium)
        .output()
        .expect("node runs");
    let stdout = String::from_utf8_lossy(&script.stdout);
    let stderr = String::from_utf8_lossy(&script.stderr);
    println!("{stdout}");
    assert!(
        script.status.success(),
        "the browser script failed ({}):\n{stdout}\n{stderr}",
        script.status
    );
    let weight = std::fs::read_to_string(out.join("page-weight.txt")).unwrap();
    println!("screenshots in {}\n{weight}", out.display());

    // The released copy arrives once; the senders hear of each decision.
    let notices_to = |sender: &str, text: &str| {
        sink.messages()
            .into_iter()
            .filter(|m| m.from.is_empty() && m.rcpts == [sender.to_string()])
            .filter(|m| String::from_utf8_lossy(&m.data).contains(text))
            .count()
    };
    eventually("the released copy and the decision notices", || {
        let counts = counts_by_message_id(&sink);
        (counts.contains_key("to-release@lumen.sch.uk")
            && notices_to(&from("head"), "has been sent on") == 1
            && notices_to(&from("teacher"), "was not sent") == 1)
            .then_some(())
    });
    let counts = counts_by_message_id(&sink);
    assert_eq!(
        counts.get("to-release@lumen.sch.uk"),
        Some(&1),
        "{counts:?}"
    );
    assert_eq!(counts.get("clean@lumen.sch.uk"), Some(&1), "{counts:?}");
    for still_held in ["to-reject", "bulk", "cc"] {
        assert_eq!(
            counts.get(&format!("{still_held}@lumen.sch.uk")),
            None,
            "{still_held} never left: {counts:?}"
        );
    }
    let messages = sink.messages();
    let released: Vec<_> = messages
        .iter()
        .filter(|m| message_id_of(&m.data).as_deref() == Some("to-release@lumen.sch.uk"))
        .collect();
    assert_eq!(released[0].rcpts, ["parent.b@example.com"]);
    assert_eq!(released[0].from, from("head"));
    for m in &messages {
        let text = String::from_utf8_lossy(&m.data);
        assert!(
            values_a.iter().all(|v| !text.contains(v.as_str())),
            "nothing of the rejected message reached the sink"
        );
        if m.from.is_empty() {
            assert!(
                values.iter().all(|v| !text.contains(v.as_str())),
                "no identifier in a notice"
            );
        }
    }

    // Held notices to all four senders, then the decisions: addressed to the sender.
    for sender in ["teacher", "head", "office", "clerk"] {
        assert_eq!(
            notices_to(&from(sender), "waiting for a check"),
            1,
            "{sender} was told their message is held"
        );
    }
    assert_eq!(
        notices_to(&from("teacher"), reason),
        1,
        "the reason is passed on"
    );
    assert_eq!(notices_to(&from("head"), "was not sent"), 0);
    assert_eq!(notices_to(&from("teacher"), "has been sent on"), 0);
    let notices = messages.iter().filter(|m| m.from.is_empty()).count();
    assert_eq!(notices, 6, "four held notices, one release, one rejection");
}
