//! End-to-end tests of `hallpass serve`: the real binary, real SMTP on
//! 127.0.0.1, a real spool and store in a temp folder, and either a `dir:`
//! outbox or a small SMTP sink standing in for the school's mail server.
//! Every wait is bounded; nothing here asserts a speed.

mod common;
use common::*;

use std::collections::HashMap;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rustls::{ClientConnection, StreamOwned};

// ---- tests ------------------------------------------------------------------

#[test]
fn a_clean_message_is_delivered_byte_for_byte_with_a_received_header() {
    let dir = temp_dir("clean");
    let relay = Relay::start(&dir, "dir:outbox", "");
    let data = message(
        "colleague@lumen.sch.uk",
        "",
        "lunch",
        "See you at lunch.\r\n.leading dot\r\nBye",
    );
    let r = send(
        relay.addr,
        "teacher@lumen.sch.uk",
        &["colleague@lumen.sch.uk"],
        &data,
    );
    assert_eq!(r.0, 250, "{r:?}");
    assert!(r.1.contains("2.0.0"), "{r:?}");
    let files = eventually("delivery", || {
        Some(outbox_files(&relay.outbox())).filter(|f| !f.is_empty())
    });
    assert_eq!(files.len(), 1);
    let (bytes, env) = &files[0];
    assert!(
        bytes.starts_with(b"Received: from client.test"),
        "{}",
        String::from_utf8_lossy(bytes)
    );
    assert!(bytes.ends_with(&data), "the message is forwarded exactly");
    assert!(env.contains("MAIL FROM:<teacher@lumen.sch.uk>"), "{env}");
    assert!(env.contains("RCPT TO:<colleague@lumen.sch.uk>"), "{env}");
    // The spool is emptied once the copy is delivered.
    eventually("spool cleaned", || {
        let n = std::fs::read_dir(dir.join("data/spool"))
            .map(|d| {
                d.filter(|e| {
                    e.as_ref()
                        .is_ok_and(|e| e.path().extension().is_some_and(|x| x == "eml"))
                })
                .count()
            })
            .unwrap_or(0);
        (n == 0).then_some(())
    });
}

#[test]
fn personal_data_for_a_parent_is_held_and_the_colleague_copy_goes_on() {
    let dir = temp_dir("held");
    let relay = Relay::start(&dir, "dir:outbox", "");
    let data = message(
        "parent@example.com, colleague@lumen.sch.uk",
        "",
        "record",
        &pupil_record(),
    );
    let r = send(
        relay.addr,
        "teacher@lumen.sch.uk",
        &["parent@example.com", "colleague@lumen.sch.uk"],
        &data,
    );
    assert_eq!(r.0, 250, "{r:?}");
    assert!(r.1.contains("held"), "the client is told: {r:?}");

    let files = eventually("the colleague's copy", || {
        Some(outbox_files(&relay.outbox())).filter(|f| !f.is_empty())
    });
    assert_eq!(files.len(), 1);
    assert!(files[0].1.contains("colleague@lumen.sch.uk"));
    assert!(!files[0].1.contains("parent@example.com"));

    let held = relay.held();
    assert_eq!(held.len(), 1, "{held:?}");
    let h = &held[0];
    assert_eq!(h["rcpt"], serde_json::json!(["parent@example.com"]));
    assert_eq!(h["from"], "teacher@lumen.sch.uk");
    assert_eq!(h["status"], "held");
    assert_eq!(h["message_id"], "record@lumen.sch.uk");
    assert_eq!(h["rules"], serde_json::json!(["personal_data_external"]));
    let detectors: Vec<&str> = h["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["detector"].as_str().unwrap())
        .collect();
    assert!(detectors.contains(&"uk_nhs_number"), "{detectors:?}");
    let keys: Vec<&str> = h.as_object().unwrap().keys().map(String::as_str).collect();
    assert_eq!(
        keys,
        [
            "id",
            "received",
            "from",
            "rcpt",
            "message_id",
            "rules",
            "findings",
            "status"
        ]
    );
    // No value leaks into the list, the log or the show output.
    let listed = h.to_string();
    let nhs = hallpass_fixtures::nhs_number(&mut hallpass_fixtures::Rng::new(7));
    assert!(!listed.contains(&nhs) && !listed.contains(&nhs.replace(' ', "")));
    assert!(!relay.log.lock().unwrap().contains(&nhs));

    let id = h["id"].as_str().unwrap().to_string();
    let show = relay.hallpass(&["held", "show", &id], "");
    assert!(show.status.success());
    let show = String::from_utf8_lossy(&show.stdout);
    assert!(
        show.contains("uk_nhs_number") && show.contains("Subject:"),
        "{show}"
    );

    let out = relay.hallpass(&["held", "release", &id], "");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let files = eventually("the released copy", || {
        Some(outbox_files(&relay.outbox())).filter(|f| f.len() == 2)
    });
    assert!(
        files
            .iter()
            .any(|f| f.1.contains("RCPT TO:<parent@example.com>"))
    );
    assert!(files.iter().all(|f| f.0.ends_with(&data)));

    // A second release does nothing and names who did it.
    let again = relay.hallpass(&["held", "release", &id], "");
    assert_eq!(again.status.code(), Some(1));
    let err = String::from_utf8_lossy(&again.stderr);
    assert!(err.contains("already released by cli:"), "{err}");
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(outbox_files(&relay.outbox()).len(), 2, "delivered once");
    assert!(relay.held().is_empty());
    let all = relay.hallpass(&["held", "list", "--json", "--all"], "");
    assert!(String::from_utf8_lossy(&all.stdout).contains("\"status\":\"released\""));
}

#[test]
fn a_held_message_can_be_rejected_and_is_never_delivered() {
    let dir = temp_dir("reject-held");
    let relay = Relay::start(&dir, "dir:outbox", "");
    let data = message("parent@example.com", "", "record", &pupil_record());
    send_to_parent(relay.addr, &data);
    let id = relay.held()[0]["id"].as_str().unwrap().to_string();
    let out = relay.hallpass(&["held", "reject", &id, "--reason", "wrong parent"], "");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let release = relay.hallpass(&["held", "release", &id], "");
    assert_eq!(release.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&release.stderr).contains("already rejected"));
    std::thread::sleep(Duration::from_millis(1500));
    assert!(outbox_files(&relay.outbox()).is_empty());
}

#[test]
fn visible_parent_addresses_are_moved_to_bcc_and_the_body_is_untouched() {
    let dir = temp_dir("cc");
    let relay = Relay::start(&dir, "dir:outbox", "");
    let parents: Vec<String> = (1..=6).map(|i| format!("parent{i}@example.com")).collect();
    let rcpts: Vec<&str> = parents.iter().map(String::as_str).collect();
    let body = "Dear parents,\r\nthe trip leaves at nine.";
    let data = message(&parents.join(", "), "", "trip", body);
    let r = send(relay.addr, "teacher@lumen.sch.uk", &rcpts, &data);
    assert_eq!(r.0, 250, "{r:?}");
    let files = eventually("the rewritten copy", || {
        Some(outbox_files(&relay.outbox())).filter(|f| !f.is_empty())
    });
    assert_eq!(files.len(), 1);
    let text = String::from_utf8_lossy(&files[0].0).into_owned();
    let (head, delivered_body) = text.split_once("\r\n\r\n").unwrap();
    assert!(head.contains("X-Hallpass-Rewrite: cc_exposure"), "{head}");
    assert!(head.contains("To: undisclosed-recipients:;"), "{head}");
    assert!(!head.contains("parent1@example.com"), "{head}");
    assert_eq!(delivered_body, format!("{body}\r\n"));
    for p in &parents {
        assert!(
            files[0].1.contains(&format!("RCPT TO:<{p}>")),
            "everyone still gets it"
        );
    }
}

#[test]
fn a_reject_rule_refuses_the_message_with_550_and_keeps_nothing() {
    let dir = temp_dir("reject");
    let relay = Relay::start(
        &dir,
        "dir:outbox",
        "[rules.misdirected_domain]\naction = \"reject\"\n",
    );
    let data = message("head@lumen.sch.co.uk", "", "minutes", "Minutes attached.");
    let r = send(
        relay.addr,
        "teacher@lumen.sch.uk",
        &["head@lumen.sch.co.uk"],
        &data,
    );
    assert_eq!(r.0, 550, "{r:?}");
    assert!(
        r.1.contains("5.7.1") && r.1.contains("misdirected_domain"),
        "{r:?}"
    );
    std::thread::sleep(Duration::from_millis(500));
    assert!(outbox_files(&relay.outbox()).is_empty());
    assert!(relay.held().is_empty());
}

#[test]
fn an_unwritable_spool_answers_451_and_recovers() {
    let dir = temp_dir("spool");
    let relay = Relay::start(&dir, "dir:outbox", "");
    let spool = dir.join("data/spool");
    let moved = dir.join("data/spool-away");
    std::fs::rename(&spool, &moved).unwrap();
    std::fs::write(&spool, b"not a folder").unwrap();
    let data = message("colleague@lumen.sch.uk", "", "x", "hello");
    let r = send(
        relay.addr,
        "teacher@lumen.sch.uk",
        &["colleague@lumen.sch.uk"],
        &data,
    );
    assert_eq!(r.0, 451, "{r:?}");
    assert!(r.1.contains("4.3.0"), "{r:?}");
    std::fs::remove_file(&spool).unwrap();
    std::fs::rename(&moved, &spool).unwrap();
    let r = send(
        relay.addr,
        "teacher@lumen.sch.uk",
        &["colleague@lumen.sch.uk"],
        &data,
    );
    assert_eq!(r.0, 250, "{r:?}");
}

#[test]
fn relaying_needs_an_allowed_network_or_a_relay_account() {
    let dir = temp_dir("auth");
    let relay = Relay::start(
        &dir,
        "dir:outbox",
        "[smtp]\nallowed_networks = [\"192.0.2.0/24\"]\n",
    );
    let data = message("colleague@lumen.sch.uk", "", "x", "hello");
    let r = send(
        relay.addr,
        "teacher@lumen.sch.uk",
        &["colleague@lumen.sch.uk"],
        &data,
    );
    assert_eq!(r.0, 554, "{r:?}");
    assert!(r.1.contains("5.7.1"), "{r:?}");

    relay.add_user("mailserver", "relay", "a long relay secret");
    let (mut c, _) = Client::connect(relay.addr);
    let ehlo = c.cmd("EHLO mta.lumen.sch.uk");
    assert!(
        ehlo.1.contains("AUTH"),
        "AUTH is offered on loopback: {ehlo:?}"
    );
    let bad = base64(b"\0mailserver\0wrong password");
    assert_eq!(c.cmd(&format!("AUTH PLAIN {bad}")).0, 535);
    let good = base64(b"\0mailserver\0a long relay secret");
    assert_eq!(c.cmd(&format!("AUTH PLAIN {good}")).0, 235);
    let r = c.send("teacher@lumen.sch.uk", &["colleague@lumen.sch.uk"], &data);
    assert_eq!(r.0, 250, "{r:?}");
}

#[test]
fn the_sender_window_holds_the_message_that_passes_it() {
    let dir = temp_dir("window");
    let relay = Relay::start(
        &dir,
        "dir:outbox",
        "[rules.bulk_send]\nwindow_recipients = 3\nwindow_seconds = 3600\n",
    );
    let first = message("teacher@lumen.sch.uk", "", "one", "Hello.");
    let r = send(
        relay.addr,
        "teacher@lumen.sch.uk",
        &["a@example.com", "b@example.com"],
        &first,
    );
    assert_eq!(r.0, 250, "{r:?}");
    let second = message("teacher@lumen.sch.uk", "", "two", "Hello again.");
    let r = send(
        relay.addr,
        "teacher@lumen.sch.uk",
        &["c@example.com", "d@example.com"],
        &second,
    );
    assert_eq!(r.0, 250, "{r:?}");
    let held = relay.held();
    assert_eq!(held.len(), 1, "{held:?}");
    assert_eq!(held[0]["rules"], serde_json::json!(["bulk_send"]));
    assert_eq!(held[0]["message_id"], "two@lumen.sch.uk");
}

/// A message answered 451 is not accepted: the client sends it again, and it counts once in the
/// sender's window, however many times it was refused.
#[test]
fn a_message_refused_with_451_counts_once_in_the_sender_window() {
    let dir = temp_dir("window-451");
    let relay = Relay::start(
        &dir,
        "dir:outbox",
        "[rules.bulk_send]\nwindow_recipients = 3\nwindow_seconds = 3600\n",
    );
    let spool = dir.join("data/spool");
    let moved = dir.join("data/spool-away");
    std::fs::rename(&spool, &moved).unwrap();
    std::fs::write(&spool, b"not a folder").unwrap();
    let data = message("a@example.com", "", "again", "Hello.");
    let rcpts = ["a@example.com", "b@example.com"];
    for _ in 0..3 {
        let r = send(relay.addr, "teacher@lumen.sch.uk", &rcpts, &data);
        assert_eq!(r.0, 451, "{r:?}");
    }
    std::fs::remove_file(&spool).unwrap();
    std::fs::rename(&moved, &spool).unwrap();
    let r = send(relay.addr, "teacher@lumen.sch.uk", &rcpts, &data);
    assert_eq!(r.0, 250, "{r:?}");
    assert!(
        !r.1.contains("held"),
        "2 recipients within a window of 3: {r:?}"
    );
    assert_eq!(relay.held(), Vec::<serde_json::Value>::new());
    // The window still works: two more pass it.
    let more = message("c@example.com", "", "more", "Hello again.");
    let r = send(
        relay.addr,
        "teacher@lumen.sch.uk",
        &["c@example.com", "d@example.com"],
        &more,
    );
    assert_eq!(r.0, 250, "{r:?}");
    let held = relay.held();
    assert_eq!(held.len(), 1, "{held:?}");
    assert_eq!(held[0]["message_id"], "more@lumen.sch.uk");
}

/// With `bulk_send` set to refuse, the message that passes the window is refused (550) and is
/// not counted: the sender, told to send to fewer people, can still send within the limit.
#[test]
fn a_message_refused_with_550_is_not_counted_in_the_sender_window() {
    let dir = temp_dir("window-550");
    let relay = Relay::start(
        &dir,
        "dir:outbox",
        "[rules.bulk_send]\naction = \"reject\"\nwindow_recipients = 3\nwindow_seconds = 3600\n",
    );
    let send_to = |subject: &str, rcpts: &[&str]| {
        let data = message(rcpts[0], "", subject, "Hello.");
        send(relay.addr, "teacher@lumen.sch.uk", rcpts, &data)
    };
    let r = send_to("first", &["a@example.com", "b@example.com"]);
    assert_eq!(r.0, 250, "{r:?}");
    for _ in 0..3 {
        let r = send_to("too-many", &["c@example.com", "d@example.com"]);
        assert_eq!(r.0, 550, "2 + 2 passes 3: {r:?}");
    }
    let r = send_to("one-more", &["c@example.com"]);
    assert_eq!(r.0, 250, "2 + 1 is within 3, whatever was refused: {r:?}");
    let r = send_to("and-another", &["d@example.com"]);
    assert_eq!(r.0, 550, "the window still counts what went: {r:?}");
}

#[test]
fn a_message_acknowledged_before_a_kill_is_delivered_after_restart() {
    let dir = temp_dir("crash");
    // The upstream is down: nothing listens on this port.
    let dead = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = dead.local_addr().unwrap().port();
    drop(dead);
    let mut relay = Relay::start(&dir, &format!("127.0.0.1:{port}"), "");
    let data = message("colleague@lumen.sch.uk", "", "crash", "Keep me.");
    let r = send(
        relay.addr,
        "teacher@lumen.sch.uk",
        &["colleague@lumen.sch.uk"],
        &data,
    );
    assert_eq!(r.0, 250, "{r:?}");
    relay.kill(); // SIGKILL: no chance to flush anything

    let sink = Sink::start(port, |_, _| "250 2.1.5 Ok".into());
    let _relay = Relay::start(&dir, &format!("127.0.0.1:{port}"), "");
    let got = eventually("delivery after restart", || {
        let m = sink.messages();
        (!m.is_empty()).then_some(m)
    });
    assert_eq!(got.len(), 1);
    assert!(got[0].data.ends_with(&data));
    assert_eq!(got[0].rcpts, ["colleague@lumen.sch.uk"]);
}

#[test]
fn upstream_refusals_are_retried_or_bounced_per_recipient() {
    let dir = temp_dir("upstream");
    let port = free_port();
    // soft@ is refused for a while, then accepted; hard@ is refused for good.
    let sink = Sink::start(port, |rcpt, attempt| match rcpt {
        r if r.starts_with("soft@") && attempt < 2 => "451 4.2.0 try later".into(),
        r if r.starts_with("hard@") => "550 5.1.1 no such user".into(),
        _ => "250 2.1.5 Ok".into(),
    });
    let relay = Relay::start(&dir, &format!("127.0.0.1:{port}"), "");
    let data = message("ok@lumen.sch.uk", "", "upstream", "Hello.");
    let r = send(
        relay.addr,
        "teacher@lumen.sch.uk",
        &["ok@lumen.sch.uk", "soft@lumen.sch.uk", "hard@lumen.sch.uk"],
        &data,
    );
    assert_eq!(r.0, 250, "{r:?}");
    let got = eventually("the retry and the bounce", || {
        let m = sink.messages();
        let soft = m
            .iter()
            .any(|m| m.rcpts.contains(&"soft@lumen.sch.uk".to_string()));
        let bounce = m.iter().any(|m| m.from.is_empty());
        (soft && bounce).then_some(m)
    });
    let normal: Vec<_> = got.iter().filter(|m| !m.from.is_empty()).collect();
    let delivered: Vec<&String> = normal.iter().flat_map(|m| &m.rcpts).collect();
    assert_eq!(
        delivered
            .iter()
            .filter(|r| r.as_str() == "ok@lumen.sch.uk")
            .count(),
        1,
        "ok@ gets exactly one copy: {delivered:?}"
    );
    assert!(!delivered.iter().any(|r| r.starts_with("hard@")));
    let bounce = got.iter().find(|m| m.from.is_empty()).unwrap();
    assert_eq!(bounce.rcpts, ["teacher@lumen.sch.uk"]);
    let text = String::from_utf8_lossy(&bounce.data);
    assert!(text.contains("multipart/report"), "{text}");
    assert!(
        text.contains("hard@lumen.sch.uk") && text.contains("5.1.1"),
        "{text}"
    );
    assert!(
        !text.contains("Hello."),
        "the bounce does not copy the body"
    );
}

#[test]
fn sigterm_stops_the_relay_cleanly() {
    let dir = temp_dir("sigterm");
    let mut relay = Relay::start(&dir, "dir:outbox", "");
    let pid = relay.child.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(s) = relay.child.try_wait().unwrap() {
            break s;
        }
        assert!(Instant::now() < deadline, "the relay did not stop");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "{status:?}");
}

#[test]
fn the_size_limit_is_advertised_and_enforced_and_the_session_goes_on() {
    let dir = temp_dir("size");
    let relay = Relay::start(&dir, "dir:outbox", "[smtp]\nmax_message_size = 100000\n");
    let (mut c, _) = Client::connect(relay.addr);
    let ehlo = c.cmd("EHLO client.test");
    assert_eq!(ehlo.0, 250, "{ehlo:?}");
    assert!(ehlo.1.contains("250-SIZE 100000\r\n"), "{ehlo:?}");

    // Announced too big: refused at MAIL, before any data is sent.
    let r = c.cmd("MAIL FROM:<teacher@lumen.sch.uk> SIZE=200000");
    assert_eq!(r.0, 552, "{r:?}");
    assert!(r.1.contains("5.3.4"), "{r:?}");

    // Not announced, but too big: refused once the data has ended.
    let line = "The quick brown fox jumps over the lazy dog, again and again.\r\n";
    let big = message(
        "colleague@lumen.sch.uk",
        "",
        "big",
        &line.repeat(200_000 / line.len()),
    );
    assert!(big.len() > 100_000);
    let r = c.send("teacher@lumen.sch.uk", &["colleague@lumen.sch.uk"], &big);
    assert_eq!(r.0, 552, "{r:?}");
    assert!(r.1.contains("5.3.4"), "{r:?}");

    // The same session goes on, and a small message is taken.
    let small = message("colleague@lumen.sch.uk", "", "small", "Short and sweet.");
    let r = c.send("teacher@lumen.sch.uk", &["colleague@lumen.sch.uk"], &small);
    assert_eq!(r.0, 250, "{r:?}");
    assert_eq!(c.cmd("QUIT").0, 221);

    eventually("the small message", || {
        (!outbox_files(&relay.outbox()).is_empty()).then_some(())
    });
    std::thread::sleep(Duration::from_millis(500));
    let files = outbox_files(&relay.outbox());
    assert_eq!(files.len(), 1, "only the small message is delivered");
    assert!(files[0].0.ends_with(&small));
}

#[test]
fn pipelined_commands_are_answered_in_order() {
    let dir = temp_dir("pipelining");
    let relay = Relay::start(&dir, "dir:outbox", "");
    let (mut c, _) = Client::connect(relay.addr);
    let ehlo = c.cmd("EHLO client.test");
    assert!(ehlo.1.contains("PIPELINING"), "{ehlo:?}");

    // MAIL, RCPT, RCPT, DATA in one write; four replies, in that order.
    c.write(
        b"MAIL FROM:<teacher@lumen.sch.uk>\r\n\
          RCPT TO:<colleague@lumen.sch.uk>\r\n\
          RCPT TO:<head@lumen.sch.uk>\r\n\
          DATA\r\n",
    )
    .unwrap();
    let replies: Vec<(u16, String)> = (0..4).map(|_| c.reply()).collect();
    let codes: Vec<u16> = replies.iter().map(|r| r.0).collect();
    assert_eq!(codes, [250, 250, 250, 354], "{replies:?}");
    assert!(replies[0].1.contains("2.1.0"), "MAIL first: {replies:?}");
    assert!(replies[1].1.contains("2.1.5") && replies[2].1.contains("2.1.5"));
    let data = message(
        "colleague@lumen.sch.uk, head@lumen.sch.uk",
        "",
        "pipelined",
        "Sent in one go.",
    );
    c.write(&dot_stuffed(&data)).unwrap();
    let r = c.reply();
    assert_eq!(r.0, 250, "{r:?}");

    // A refusal in the middle of a group keeps its place, and the rest of
    // the group is still answered.
    c.write(
        b"MAIL FROM:<teacher@lumen.sch.uk>\r\n\
          RCPT TO:<colleague@lumen.sch.uk> NOTIFY=NEVER\r\n\
          RCPT TO:<office@lumen.sch.uk>\r\n\
          DATA\r\n",
    )
    .unwrap();
    let replies: Vec<(u16, String)> = (0..4).map(|_| c.reply()).collect();
    let codes: Vec<u16> = replies.iter().map(|r| r.0).collect();
    assert_eq!(codes, [250, 555, 250, 354], "{replies:?}");
    let second = message("office@lumen.sch.uk", "", "pipelined-2", "Second.");
    c.write(&dot_stuffed(&second)).unwrap();
    assert_eq!(c.reply().0, 250);
    assert_eq!(c.cmd("QUIT").0, 221);

    let files = eventually("both messages", || {
        Some(outbox_files(&relay.outbox())).filter(|f| f.len() == 2)
    });
    let first = files.iter().find(|f| f.0.ends_with(&data)).unwrap();
    assert!(first.1.contains("RCPT TO:<colleague@lumen.sch.uk>"));
    assert!(first.1.contains("RCPT TO:<head@lumen.sch.uk>"));
    let other = files.iter().find(|f| f.0.ends_with(&second)).unwrap();
    assert!(other.1.contains("RCPT TO:<office@lumen.sch.uk>"));
    assert!(!other.1.contains("colleague@"), "{}", other.1);
}

const SMTPLIB_STARTTLS: &str = r#"
import smtplib, ssl, sys
port, user, password = int(sys.argv[1]), sys.argv[2], sys.argv[3]
msg = (b"From: Teacher <teacher@lumen.sch.uk>\r\nTo: colleague@lumen.sch.uk\r\n"
       b"Subject: smtplib\r\nMessage-ID: <smtplib@lumen.sch.uk>\r\n\r\n"
       b"Sent by smtplib over STARTTLS.\r\n")
s = smtplib.SMTP("127.0.0.1", port, timeout=30)
s.ehlo("pc1.lumen.sch.uk")
assert s.has_extn("starttls"), s.esmtp_features
code, _ = s.starttls(context=ssl._create_unverified_context())
assert code == 220, code
s.ehlo("pc1.lumen.sch.uk")
assert not s.has_extn("starttls"), s.esmtp_features
code, _ = s.login(user, password)
assert code == 235, code
refused = s.sendmail("teacher@lumen.sch.uk", ["colleague@lumen.sch.uk"], msg)
assert refused == {}, refused
s.quit()
"#;

#[test]
fn starttls_then_auth_login_lets_a_relay_account_send_and_not_a_dpo() {
    let dir = temp_dir("starttls");
    let (smtp, cert_der) = certificate(&dir);
    let relay = Relay::start(&dir, "dir:outbox", &smtp);
    for (name, role) in [("mailserver", "relay"), ("dpo", "dpo")] {
        relay.add_user(name, role, "correct horse battery staple");
    }
    let login = |c: &mut Client<StreamOwned<ClientConnection, TcpStream>>, user: &str| {
        let r = c.cmd("AUTH LOGIN");
        assert_eq!(r, (334, "334 VXNlcm5hbWU6\r\n".to_string()), "Username:");
        let r = c.cmd(&base64(user.as_bytes()));
        assert_eq!(r, (334, "334 UGFzc3dvcmQ6\r\n".to_string()), "Password:");
        c.cmd(&base64(b"correct horse battery staple"))
    };

    let (mut c, _) = Client::connect(relay.addr);
    let ehlo = c.cmd("EHLO mta.lumen.sch.uk");
    assert!(ehlo.1.contains("STARTTLS"), "{ehlo:?}");
    // Not authenticated and not in allowed_networks: no relaying.
    let data = message("colleague@lumen.sch.uk", "", "tls", "Over TLS.");
    let r = c.send("teacher@lumen.sch.uk", &["colleague@lumen.sch.uk"], &data);
    assert_eq!(r.0, 554, "{r:?}");
    assert_eq!(c.cmd("RSET").0, 250);
    let mut c = c.starttls(&cert_der);
    let ehlo = c.cmd("EHLO mta.lumen.sch.uk");
    assert_eq!(ehlo.0, 250, "{ehlo:?}");
    assert!(!ehlo.1.contains("STARTTLS"), "offered once only: {ehlo:?}");
    assert!(ehlo.1.contains("AUTH PLAIN LOGIN"), "{ehlo:?}");
    let r = login(&mut c, "mailserver");
    assert_eq!(r.0, 235, "{r:?}");
    let r = c.send("teacher@lumen.sch.uk", &["colleague@lumen.sch.uk"], &data);
    assert_eq!(r.0, 250, "{r:?}");
    assert_eq!(c.cmd("QUIT").0, 221);
    let files = eventually("the message sent over TLS", || {
        Some(outbox_files(&relay.outbox())).filter(|f| !f.is_empty())
    });
    assert!(files[0].0.ends_with(&data));
    let head = String::from_utf8_lossy(&files[0].0[..200]).into_owned();
    assert!(
        head.contains("with ESMTPSA"),
        "TLS and AUTH are recorded: {head}"
    );

    // A console account is not a relay account.
    let (c, _) = Client::connect(relay.addr);
    let mut c = c.starttls(&cert_der);
    assert_eq!(c.cmd("EHLO mta.lumen.sch.uk").0, 250);
    let r = login(&mut c, "dpo");
    assert_eq!(r.0, 535, "{r:?}");
    let r = c.send("teacher@lumen.sch.uk", &["colleague@lumen.sch.uk"], &data);
    assert_eq!(r.0, 554, "still not allowed to relay: {r:?}");
    drop(c);

    // A stock client: Python's smtplib.
    if Command::new("python3").arg("--version").output().is_err() {
        println!("skipping the smtplib part: python3 is not installed");
        return;
    }
    let out = Command::new("python3")
        .arg("-c")
        .arg(SMTPLIB_STARTTLS)
        .arg(relay.addr.port().to_string())
        .arg("mailserver")
        .arg("correct horse battery staple")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "smtplib failed:\nstdout: {}\nstderr: {}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let files = eventually("the message smtplib sent", || {
        Some(outbox_files(&relay.outbox())).filter(|f| f.len() == 2)
    });
    let py = files
        .iter()
        .find(|f| String::from_utf8_lossy(&f.0).contains("Message-ID: <smtplib@lumen.sch.uk>"))
        .expect("smtplib's message is delivered");
    assert!(py.0.ends_with(b"Sent by smtplib over STARTTLS.\r\n"));
    assert!(py.1.contains("RCPT TO:<colleague@lumen.sch.uk>"));
}

#[test]
fn messages_wait_while_the_upstream_is_down_and_go_once_it_is_up() {
    let dir = temp_dir("outage");
    let port = free_port();
    let relay = Relay::start(&dir, &format!("127.0.0.1:{port}"), "");
    let ids: Vec<String> = (1..=3).map(|i| format!("outage-{i}")).collect();
    for id in &ids {
        let data = message(
            "colleague@lumen.sch.uk",
            "",
            id,
            "Waiting for the upstream.",
        );
        let r = send(
            relay.addr,
            "teacher@lumen.sch.uk",
            &["colleague@lumen.sch.uk"],
            &data,
        );
        assert_eq!(r.0, 250, "{r:?}");
    }
    // The relay has tried and been turned away (nothing listens yet).
    eventually("a deferred attempt", || {
        let log = relay.log.lock().unwrap();
        (log.contains("deferred=1") || log.contains("transient=1")).then_some(())
    });
    std::thread::sleep(Duration::from_secs(2));

    let sink = Sink::start(port, |_, _| "250 2.1.5 Ok".into());
    let want: Vec<String> = ids.iter().map(|i| format!("{i}@lumen.sch.uk")).collect();
    eventually("all three after the upstream came up", || {
        let n = counts_by_message_id(&sink);
        want.iter().all(|w| n.contains_key(w)).then_some(())
    });
    // Longer than the longest back-off: a copy sent twice would show by now.
    std::thread::sleep(Duration::from_secs(3));
    let n = counts_by_message_id(&sink);
    for w in &want {
        assert_eq!(n.get(w), Some(&1), "{w} exactly once: {n:?}");
    }
    assert_eq!(sink.messages().len(), 3, "{n:?}");
}

/// One client of the load test: up to `count` messages on one connection,
/// every third with personal data for a parent (held), the rest to a
/// colleague. Records each message whose data got 250; stops at the first
/// broken connection (the relay was killed).
fn load_client(
    addr: SocketAddr,
    client: usize,
    count: usize,
    replies: &AtomicUsize,
    accepted: &Mutex<Vec<(String, bool)>>,
) {
    let Ok((mut c, greeting)) = Client::try_connect(addr) else {
        return;
    };
    if greeting.0 != 220 || !c.try_cmd("EHLO client.test").is_ok_and(|r| r.0 == 250) {
        return;
    }
    let record = pupil_record();
    for i in 0..count {
        let id = format!("load-{client}-{i}");
        let personal = i % 3 == 0;
        let (to, body) = if personal {
            ("parent@example.com", record.as_str())
        } else {
            ("colleague@lumen.sch.uk", "Clean note to a colleague.")
        };
        let data = message(to, "", &id, body);
        match c.try_send(&format!("teacher{client}@lumen.sch.uk"), &[to], &data) {
            Ok((250, _)) => {
                accepted
                    .lock()
                    .unwrap()
                    .push((format!("{id}@lumen.sch.uk"), personal));
                replies.fetch_add(1, Ordering::SeqCst);
            }
            // The connection is gone: the relay was killed.
            Ok((0, _)) | Err(_) => return,
            Ok(r) => {
                // A refusal (451 under load, say) is allowed: the client
                // keeps the message. It must not turn up anywhere.
                println!("{id}: {r:?}");
                replies.fetch_add(1, Ordering::SeqCst);
            }
        }
    }
    let _ = c.try_cmd("QUIT");
}

#[test]
fn kill_9_under_load_loses_no_accepted_message_and_resends_only_copies_in_flight() {
    const CLIENTS: usize = 4;
    const EACH: usize = 75;
    let dir = temp_dir("kill9");
    let port = free_port();
    let sink = Sink::start(port, |_, _| "250 2.1.5 Ok".into());
    let mut relay = Relay::start(&dir, &format!("127.0.0.1:{port}"), "");
    let replies = Arc::new(AtomicUsize::new(0));
    let accepted = Arc::new(Mutex::new(Vec::new()));
    let clients: Vec<_> = (0..CLIENTS)
        .map(|n| {
            let (replies, accepted) = (replies.clone(), accepted.clone());
            let addr = relay.addr;
            std::thread::spawn(move || load_client(addr, n, EACH, &replies, &accepted))
        })
        .collect();
    // Kill in the middle of the load, with no chance to flush anything.
    let deadline = Instant::now() + Duration::from_secs(300);
    while replies.load(Ordering::SeqCst) < 100 {
        assert!(
            Instant::now() < deadline,
            "the load did not get going: {} replies",
            replies.load(Ordering::SeqCst)
        );
        assert!(
            !clients.iter().all(|c| c.is_finished()),
            "every client stopped before the kill"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    relay.kill();
    for c in clients {
        c.join().unwrap();
    }
    let accepted = accepted.lock().unwrap().clone();
    assert!(
        accepted.len() < CLIENTS * EACH,
        "the kill came while the clients were sending"
    );
    let config = relay.config.clone();
    drop(relay);
    // What the killed relay handed over before it died.
    let before_restart = sink.messages().len();

    // Same storage, same configuration; a new port.
    let relay = Relay::start_with(&dir, config);
    let clean: Vec<&String> = accepted.iter().filter(|a| !a.1).map(|a| &a.0).collect();
    let personal: Vec<&String> = accepted.iter().filter(|a| a.1).map(|a| &a.0).collect();
    assert!(!clean.is_empty() && !personal.is_empty(), "{accepted:?}");
    eventually_within(
        Duration::from_secs(120),
        "every accepted clean message",
        || {
            let n = counts_by_message_id(&sink);
            clean.iter().all(|c| n.contains_key(*c)).then_some(())
        },
    );
    // Let the queue drain: nothing new at the sink for longer than the
    // longest back-off.
    let mut last = sink.messages().len();
    let mut quiet_since = Instant::now();
    eventually_within(Duration::from_secs(120), "the queue to drain", || {
        let now = sink.messages().len();
        if now != last {
            last = now;
            quiet_since = Instant::now();
        }
        (quiet_since.elapsed() > Duration::from_secs(3)).then_some(())
    });

    // A copy goes out twice only when the kill fell between the upstream's
    // 250 and the relay's record of it: the restarted relay finds the
    // recipient still `sending`, cannot know the upstream has it, and sends
    // it again (a duplicate rather than a loss, as RFC 5321 6.1 asks). Such a
    // copy arrived once from the killed relay and once from the new one, and
    // the new one counted it among the deliveries it resumed. Any other
    // duplicate is a bug.
    let arrivals: Vec<Option<String>> = sink
        .messages()
        .iter()
        .map(|m| message_id_of(&m.data))
        .collect();
    let at_sink = counts_by_message_id(&sink);
    let resumed = resumed_deliveries(&relay.log.lock().unwrap());
    let twice: Vec<&String> = at_sink
        .iter()
        .filter(|(_, n)| **n > 1)
        .map(|(id, _)| id)
        .collect();
    for id in &twice {
        let at: Vec<usize> = (0..arrivals.len())
            .filter(|&i| arrivals[i].as_ref() == Some(*id))
            .collect();
        assert!(
            at.len() == 2 && at[0] < before_restart && at[1] >= before_restart,
            "{id} was delivered more than once, not only across the kill: \
             arrivals {at:?}, {before_restart} before the restart"
        );
    }
    assert!(
        twice.len() <= resumed,
        "{} sent twice but only {resumed} deliveries were resumed: {twice:?}",
        twice.len()
    );
    if !twice.is_empty() {
        println!(
            "sent again after the kill (the upstream had them, the relay had not recorded it): {twice:?}"
        );
    }
    for c in &clean {
        let n = at_sink.get(*c).copied().unwrap_or(0);
        assert!(
            n == 1 || (n == 2 && twice.contains(c)),
            "{c} at the sink {n} times"
        );
    }
    // Besides the clean mail, only hallpass's notices to the sender (from <>) go out.
    for m in sink.messages() {
        if m.from.is_empty() {
            assert!(
                m.rcpts.len() == 1 && m.rcpts[0].starts_with("teacher"),
                "a notice goes to the sender: {:?}",
                m.rcpts
            );
            assert!(String::from_utf8_lossy(&m.data).contains("waiting for a check"));
            continue;
        }
        assert_eq!(
            m.rcpts,
            ["colleague@lumen.sch.uk"],
            "only clean mail goes out"
        );
    }
    let held = relay.held_all();
    let mut held_ids: HashMap<String, usize> = HashMap::new();
    for h in &held {
        *held_ids
            .entry(h["message_id"].as_str().unwrap().to_string())
            .or_insert(0) += 1;
        assert_eq!(h["rcpt"], serde_json::json!(["parent@example.com"]), "{h}");
        assert_eq!(h["status"], "held", "{h}");
    }
    for p in &personal {
        assert_eq!(held_ids.get(*p), Some(&1), "{p} held once: {held_ids:?}");
        assert!(!at_sink.contains_key(*p), "{p} was not delivered");
    }
    for c in &clean {
        assert!(!held_ids.contains_key(*c), "{c} was not held");
    }
}

/// N in the restarted relay's "resuming deliveries … recipients=N" (0 when
/// none were interrupted).
fn resumed_deliveries(log: &str) -> usize {
    log.lines()
        .filter(|l| l.contains("resuming deliveries interrupted"))
        .filter_map(|l| l.split("recipients=").nth(1))
        .filter_map(|n| n.split_whitespace().next()?.parse::<usize>().ok())
        .sum()
}

#[test]
fn user_commands_add_change_token_and_remove_accounts() {
    let dir = temp_dir("users");
    let relay = Relay::start(
        &dir,
        "dir:outbox",
        "[smtp]\nallowed_networks = [\"192.0.2.0/24\"]\n",
    );
    let user = |args: &[&str], stdin: &str| {
        let out = relay.hallpass(args, stdin);
        let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
        (out.status.code(), text(&out.stdout), text(&out.stderr))
    };
    let auth = |password: &str| {
        let (mut c, _) = Client::connect(relay.addr);
        assert_eq!(c.cmd("EHLO mta.lumen.sch.uk").0, 250);
        let plain = base64(format!("\0mailserver\0{password}").as_bytes());
        c.cmd(&format!("AUTH PLAIN {plain}")).0
    };

    let (code, out, err) = user(
        &["user", "add", "mailserver", "--role", "relay"],
        "first long password\n",
    );
    assert_eq!(code, Some(0), "{err}");
    assert!(out.contains("mailserver"), "{out}");
    assert_eq!(auth("first long password"), 235);

    let (code, _, err) = user(
        &["user", "add", "mailserver", "--role", "relay"],
        "another long password\n",
    );
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("exists"), "{err}");
    assert_eq!(auth("first long password"), 235, "unchanged by the refusal");

    let (code, _, err) = user(&["user", "add", "shorty", "--role", "dpo"], "eleven char\n");
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("at least 12"), "{err}");
    let (code, _, err) = user(&["user", "passwd", "mailserver"], "too short\n");
    assert_eq!(code, Some(2), "{err}");
    assert_eq!(auth("first long password"), 235, "unchanged by the refusal");

    let (code, _, err) = user(&["user", "passwd", "mailserver"], "second long password\n");
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(auth("first long password"), 535);
    assert_eq!(auth("second long password"), 235);

    let (code, token, err) = user(&["user", "token", "mailserver"], "");
    assert_eq!(code, Some(0), "{err}");
    let token = token.trim();
    assert!(token.starts_with("hp_") && token.len() > 20, "{token}");
    let (_, again, _) = user(&["user", "token", "mailserver"], "");
    assert_ne!(again.trim(), token, "each token is new");

    let (code, list, _) = user(&["user", "list"], "");
    assert_eq!(code, Some(0));
    assert!(
        list.contains("mailserver") && list.contains("relay"),
        "{list}"
    );
    assert!(!list.contains("shorty"), "{list}");

    let (code, _, err) = user(&["user", "remove", "mailserver"], "");
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(auth("second long password"), 535);
    let (code, _, err) = user(&["user", "remove", "mailserver"], "");
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("no user mailserver"), "{err}");
    let (code, _, _) = user(&["user", "token", "mailserver"], "");
    assert_eq!(code, Some(1));
}

#[test]
fn the_console_runs_beside_the_relay_and_a_release_there_is_delivered() {
    let dir = temp_dir("console");
    let relay = Relay::start(&dir, "dir:outbox", "");
    let data = message("parent@example.com", "", "console", &pupil_record());
    send_to_parent(relay.addr, &data);

    let (status, _, _) = http(relay.console, "GET", "/api/held", &[], "");
    assert_eq!(status, 401, "no credentials, no data");
    let (status, head, _) = http(relay.console, "GET", "/held", &[], "");
    assert_eq!(status, 303, "pages send people to the login form");
    assert!(
        head.to_ascii_lowercase().contains("location: /login"),
        "{head}"
    );

    relay.add_user("dpo", "dpo", "a long dpo password");
    let out = relay.hallpass(&["user", "token", "dpo"], "");
    let token = String::from_utf8(out.stdout).unwrap().trim().to_string();
    let bearer = format!("Bearer {token}");
    let auth = [("Authorization", bearer.as_str())];

    let (status, head, body) = http(relay.console, "GET", "/api/held", &auth, "");
    assert_eq!(status, 200, "{head}\n{body}");
    assert!(
        head.contains("X-Frame-Options: DENY")
            || head.to_ascii_lowercase().contains("x-frame-options: deny"),
        "{head}"
    );
    let list: Vec<serde_json::Value> = serde_json::from_str(&body).unwrap();
    assert_eq!(list.len(), 1);
    // The console and `held list --json` agree.
    assert_eq!(list, relay.held());
    let id = list[0]["id"].as_str().unwrap().to_string();

    let (status, _, body) = http(
        relay.console,
        "POST",
        &format!("/api/held/{id}/release"),
        &[auth[0], ("Content-Type", "application/json")],
        "{}",
    );
    assert_eq!(status, 200, "{body}");
    let files = eventually("the copy released in the console", || {
        Some(outbox_files(&relay.outbox())).filter(|f| !f.is_empty())
    });
    assert!(files[0].1.contains("RCPT TO:<parent@example.com>"));
    let (status, _, body) = http(
        relay.console,
        "POST",
        &format!("/api/held/{id}/release"),
        &[auth[0], ("Content-Type", "application/json")],
        "{}",
    );
    assert_eq!(status, 409, "released once: {body}");
    assert!(
        body.contains("dpo"),
        "the second release is told who did it: {body}"
    );
    let (status, _, body) = http(relay.console, "GET", "/api/audit", &auth, "");
    assert_eq!(status, 200);
    assert!(body.contains("release"), "{body}");
    // The sender hears twice: held, then sent on by the DPO.
    let told = eventually("the release notice", || {
        Some(notices(&relay.outbox())).filter(|n| n.len() == 2)
    });
    assert!(
        told.iter()
            .any(|(b, _)| String::from_utf8_lossy(b).contains("has been sent on")),
        "a release notice"
    );
}

/// A decision owes the sender a notice until it is queued: when the spool cannot take it (a full
/// or read-only disk), the relay tries again and the sender is told once the disk is back.
#[test]
fn a_notice_that_cannot_be_queued_is_sent_once_the_disk_is_back() {
    let dir = temp_dir("notice-owed");
    let relay = Relay::start(&dir, "dir:outbox", "");
    send_to_parent(
        relay.addr,
        &message("parent@example.com", "", "owed", &pupil_record()),
    );
    eventually("the held notice", || {
        (notices(&relay.outbox()).len() == 1).then_some(())
    });
    let id = relay.held()[0]["id"].as_str().unwrap().to_string();
    relay.add_user("dpo", "dpo", "a long dpo password");
    let out = relay.hallpass(&["user", "token", "dpo"], "");
    let bearer = format!("Bearer {}", String::from_utf8(out.stdout).unwrap().trim());

    let spool = dir.join("data/spool");
    let moved = dir.join("data/spool-away");
    std::fs::rename(&spool, &moved).unwrap();
    std::fs::write(&spool, b"not a folder").unwrap();
    let (status, _, body) = http(
        relay.console,
        "POST",
        &format!("/api/held/{id}/reject"),
        &[
            ("Authorization", &bearer),
            ("Content-Type", "application/json"),
        ],
        r#"{"reason":"the wrong parent"}"#,
    );
    assert_eq!(status, 200, "the decision does not need the disk: {body}");
    eventually("a failed try at the notice", || {
        relay
            .log
            .lock()
            .unwrap()
            .contains("cannot queue the sender's notice")
            .then_some(())
    });
    assert_eq!(notices(&relay.outbox()).len(), 1, "not yet");

    std::fs::remove_file(&spool).unwrap();
    std::fs::rename(&moved, &spool).unwrap();
    let all = eventually("the rejection notice", || {
        Some(notices(&relay.outbox())).filter(|n| n.len() == 2)
    });
    let texts: Vec<String> = all
        .iter()
        .map(|(b, _)| String::from_utf8_lossy(b).into_owned())
        .collect();
    let rejected = texts
        .iter()
        .find(|t| t.contains("was not sent"))
        .unwrap_or_else(|| panic!("{texts:?}"));
    assert!(rejected.contains("the wrong parent"), "{rejected}");
    assert!(
        rejected.contains("\"owed\""),
        "the subject, from the spool: {rejected}"
    );
    // Told once: nothing more comes.
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(notices(&relay.outbox()).len(), 2);
}

#[test]
fn a_release_from_the_terminal_can_move_parents_to_bcc_and_mark_a_false_positive() {
    let dir = temp_dir("release-bcc");
    let relay = Relay::start(&dir, "dir:outbox", "");
    let parents = ["p1@example.com", "p2@example.com"];
    let data = message(&parents.join(", "), "", "bcc", &pupil_record());
    let r = send(relay.addr, "teacher@lumen.sch.uk", &parents, &data);
    assert_eq!(r.0, 250, "{r:?}");
    let id = relay.held()[0]["id"].as_str().unwrap().to_string();
    let out = relay.hallpass(
        &[
            "held",
            "release",
            &id,
            "--rewrite",
            "bcc",
            "--false-positive",
        ],
        "",
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let files = eventually("the rewritten release", || {
        Some(outbox_files(&relay.outbox())).filter(|f| !f.is_empty())
    });
    let text = String::from_utf8_lossy(&files[0].0).into_owned();
    let (head, _) = text.split_once("\r\n\r\n").unwrap();
    assert!(head.contains("To: undisclosed-recipients:;"), "{head}");
    assert!(!head.contains("p1@example.com"), "{head}");
    for p in parents {
        assert!(files[0].1.contains(&format!("RCPT TO:<{p}>")));
    }
    let (status, _, body) = {
        let out = relay.hallpass(
            &["user", "add", "dpo", "--role", "dpo"],
            "a long dpo password\n",
        );
        assert!(out.status.success());
        let token =
            String::from_utf8(relay.hallpass(&["user", "token", "dpo"], "").stdout).unwrap();
        let bearer = format!("Bearer {}", token.trim());
        http(
            relay.console,
            "GET",
            "/api/audit",
            &[("Authorization", bearer.as_str())],
            "",
        )
    };
    assert_eq!(status, 200);
    assert!(body.contains("false-positive"), "{body}");
}

#[test]
fn the_sender_is_told_when_a_message_is_held_and_when_it_is_rejected() {
    let dir = temp_dir("notices");
    let relay = Relay::start(&dir, "dir:outbox", "");
    let data = message("parent@example.com", "", "notice", &pupil_record());
    send_to_parent(relay.addr, &data);
    let held = eventually("the held notice", || {
        Some(notices(&relay.outbox())).filter(|n| n.len() == 1)
    });
    let (bytes, env) = &held[0];
    assert!(env.contains("RCPT TO:<teacher@lumen.sch.uk>"), "{env}");
    let text = String::from_utf8_lossy(bytes);
    assert!(text.contains("waiting for a check"), "{text}");
    assert!(text.contains("NHS numbers"), "{text}");
    assert!(text.contains("Auto-Submitted: auto-generated"), "{text}");
    let nhs = hallpass_fixtures::nhs_number(&mut hallpass_fixtures::Rng::new(7));
    assert!(
        !text.contains(&nhs) && !text.contains(&nhs.replace(' ', "")),
        "no value in a notice"
    );

    let id = relay.held()[0]["id"].as_str().unwrap().to_string();
    let out = relay.hallpass(&["held", "reject", &id, "--reason", "the wrong family"], "");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let both = eventually("the rejection notice", || {
        Some(notices(&relay.outbox())).filter(|n| n.len() == 2)
    });
    let rejected = both
        .iter()
        .map(|(b, _)| String::from_utf8_lossy(b).into_owned())
        .find(|t| t.contains("was not sent"))
        .expect("a rejection notice");
    assert!(rejected.contains("the wrong family"), "{rejected}");
    assert!(
        outbox_files(&relay.outbox()).is_empty(),
        "the message itself never left"
    );
}

#[test]
fn notices_can_be_switched_off_and_reworded() {
    let dir = temp_dir("notices-off");
    let relay = Relay::start(&dir, "dir:outbox", "[notifications]\nenabled = false\n");
    let data = message("parent@example.com", "", "quiet", &pupil_record());
    send_to_parent(relay.addr, &data);
    std::thread::sleep(Duration::from_millis(1500));
    assert!(notices(&relay.outbox()).is_empty());
    drop(relay);

    let dir = temp_dir("notices-reworded");
    std::fs::create_dir_all(dir.join("templates")).unwrap();
    std::fs::write(
        dir.join("templates/held.txt"),
        "Subject: Held: {{subject}}\n\nOur own words about {{findings}}\n",
    )
    .unwrap();
    let relay = Relay::start(&dir, "dir:outbox", "");
    send_to_parent(relay.addr, &data);
    let n = eventually("the reworded notice", || {
        Some(notices(&relay.outbox())).filter(|n| !n.is_empty())
    });
    let text = String::from_utf8_lossy(&n[0].0);
    assert!(text.contains("Subject: Held: quiet"), "{text}");
    assert!(text.contains("Our own words about - "), "{text}");
    assert!(text.contains("- NHS numbers (1), in the message"), "{text}");
}

/// The README's way: a configuration found by a relative path, its `[storage] path` relative to
/// it (the store's URL once lost such a path to URL parsing).
#[test]
fn a_relative_configuration_path_opens_the_store_beside_it() {
    let dir = temp_dir("relative");
    write_config(&dir, "dir:outbox", "");
    let nested = dir.join("config");
    std::fs::create_dir_all(&nested).unwrap();
    std::fs::copy(dir.join("hallpass.toml"), nested.join("hallpass.toml")).unwrap();
    let run = |args: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_hallpass"))
            .current_dir(&dir)
            .env_remove("HALLPASS_CONFIG")
            .args(["--config", "config/../config/hallpass.toml"])
            .args(args)
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap()
    };
    let out = run(&["held", "list"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        nested.join("data").join("hallpass.db").is_file(),
        "the store is beside the configuration"
    );
}
