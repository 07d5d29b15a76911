//! Live configuration: SIGHUP and file changes reload the rules without dropping a session; a
//! broken change is refused with FILE:LINE:COL and the last good configuration keeps running.

mod common;

use std::process::Command;

use common::*;

fn with_action(action: &str) -> String {
    format!("[rules.personal_data_external]\naction = \"{action}\"\n")
}

/// How many times the log says the configuration was reloaded.
fn reloads(relay: &Relay) -> usize {
    relay
        .log
        .lock()
        .unwrap()
        .matches("configuration reloaded")
        .count()
}

fn hangup(relay: &Relay) {
    let status = Command::new("kill")
        .args(["-HUP", &relay.child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

#[test]
fn rules_change_live_and_a_broken_change_keeps_the_last_good_one() {
    let dir = temp_dir("reload");
    let relay = Relay::start(&dir, "dir:outbox", &with_action("monitor"));
    let record = message("parent@example.com", "", "record", &pupil_record());
    let rcpt = ["parent@example.com"];

    // A session opened before any reload, kept open throughout.
    let (mut session, greeting) = Client::connect(relay.addr);
    assert_eq!(greeting.0, 220);
    assert_eq!(session.cmd("EHLO client.test").0, 250);

    // monitor: delivered.
    let r = session.send("teacher@lumen.sch.uk", &rcpt, &record);
    assert_eq!(r.0, 250, "{r:?}");
    assert!(!r.1.contains("held"), "{r:?}");
    eventually("the monitored message delivered", || {
        Some(()).filter(|()| outbox_files(&relay.outbox()).len() == 1)
    });

    // SIGHUP after switching the rule to hold: the same session now gets a hold.
    write_config(&dir, "dir:outbox", &with_action("hold"));
    hangup(&relay);
    eventually("the SIGHUP reload", || {
        let log = relay.log.lock().unwrap().clone();
        Some(()).filter(|()| log.contains("configuration reloaded trigger=\"SIGHUP\""))
    });
    let r = session.send("teacher@lumen.sch.uk", &rcpt, &record);
    assert_eq!(r.0, 250, "{r:?}");
    assert!(r.1.contains("held"), "the new rule is in force: {r:?}");
    assert_eq!(relay.held().len(), 1);

    // A broken change (a file watch picks it up, no signal): refused with FILE:LINE:COL, the
    // same line `hallpass check` prints, and the hold rule stays in force.
    write_config(&dir, "dir:outbox", &with_action("hld"));
    let check = relay.hallpass(&["check"], "");
    assert!(!check.status.success());
    let problem = String::from_utf8(check.stdout).unwrap();
    let problem = problem
        .lines()
        .find(|l| l.contains("hallpass.toml:"))
        .unwrap_or_else(|| panic!("check names the file: {problem}"))
        .to_string();
    let (location, _) = problem.split_once(": ").unwrap();
    assert!(
        location
            .rsplit(':')
            .take(2)
            .all(|n| n.parse::<u32>().is_ok()),
        "FILE:LINE:COL, got {location}"
    );
    eventually("the refusal in the log", || {
        let log = relay.log.lock().unwrap().clone();
        Some(()).filter(|()| log.contains("configuration change refused") && log.contains(&problem))
    });
    let r = session.send("teacher@lumen.sch.uk", &rcpt, &record);
    assert_eq!(r.0, 250, "{r:?}");
    assert!(
        r.1.contains("held"),
        "the last good rule still holds: {r:?}"
    );

    // Fixed by another edit, again picked up by the watch: reject now refuses.
    let before = reloads(&relay);
    write_config(&dir, "dir:outbox", &with_action("reject"));
    eventually("the file-change reload", || {
        Some(()).filter(|()| reloads(&relay) > before)
    });
    let r = session.send("teacher@lumen.sch.uk", &rcpt, &record);
    assert_eq!(r.0, 550, "{r:?}");
    assert_eq!(
        session.cmd("QUIT").0,
        221,
        "the session lived through three reloads"
    );

    // Nothing was lost on the way: one delivered, two held.
    assert_eq!(outbox_files(&relay.outbox()).len(), 1);
    assert_eq!(relay.held().len(), 2);
}

#[test]
fn a_detector_file_change_is_picked_up() {
    let dir = temp_dir("reload-detectors");
    // A private copy of the shipped detectors, so this test can edit one.
    let detectors = dir.join("detectors");
    std::fs::create_dir_all(&detectors).unwrap();
    for entry in std::fs::read_dir(root().join("detectors")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "toml") {
            std::fs::copy(&path, detectors.join(path.file_name().unwrap())).unwrap();
        }
    }
    let extra = format!("[detectors]\npath = \"{}\"\n", detectors.display());
    let relay = Relay::start(&dir, "dir:outbox", &extra);
    let codeword = message(
        "parent@example.com",
        "",
        "codeword",
        "Please find the notes on the Bluebird intervention group attached.",
    );
    let r = send_to_parent(relay.addr, &codeword);
    assert!(!r.1.contains("held"), "{r:?}");

    // A school adds its own detector for a confidential project's name.
    std::fs::write(
        detectors.join("school.toml"),
        r#"[[detector]]
id = "intervention_group"
description = "The name of a confidential intervention group"
certain_patterns = ['(?i)\bBluebird intervention\b']
confidence_with_context = "high"
confidence_without_context = "high"
"#,
    )
    .unwrap();
    eventually("the detector reload", || {
        Some(()).filter(|()| reloads(&relay) >= 1)
    });
    let r = send_to_parent(relay.addr, &codeword);
    assert!(r.1.contains("held"), "the new detector is in force: {r:?}");
}

#[test]
fn a_renewed_certificate_is_used_after_sighup_and_a_broken_one_is_not() {
    let dir = temp_dir("reload-tls");
    let (smtp, first) = certificate(&dir);
    let relay = Relay::start(&dir, "dir:outbox", &smtp);

    // A TLS session opened with the first certificate, kept open across the renewal.
    let (mut before, _) = Client::connect(relay.addr);
    before.cmd("EHLO client.test");
    let mut before = before.starttls(&first);
    assert_eq!(before.cmd("EHLO client.test").0, 250);

    // Renewed in place (as certbot does), then SIGHUP (systemctl reload).
    let (_, second) = certificate(&dir);
    assert_ne!(first, second);
    hangup(&relay);
    eventually("the renewal in the log", || {
        let log = relay.log.lock().unwrap().clone();
        Some(()).filter(|()| log.contains("TLS certificate renewed"))
    });
    let (mut after, _) = Client::connect(relay.addr);
    after.cmd("EHLO client.test");
    let mut after = after.starttls(&second);
    assert_eq!(
        after.cmd("EHLO client.test").0,
        250,
        "new handshakes get the new one"
    );
    assert_eq!(before.cmd("NOOP").0, 250, "the session from before goes on");

    // A key that does not match: refused, and the renewed certificate stays in use.
    let other = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    std::fs::write(dir.join("key.pem"), other.signing_key.serialize_pem()).unwrap();
    hangup(&relay);
    eventually("the refusal in the log", || {
        let log = relay.log.lock().unwrap().clone();
        Some(()).filter(|()| log.contains("the TLS certificate cannot be read again"))
    });
    let (mut again, _) = Client::connect(relay.addr);
    again.cmd("EHLO client.test");
    let mut again = again.starttls(&second);
    assert_eq!(again.cmd("EHLO client.test").0, 250);
}
