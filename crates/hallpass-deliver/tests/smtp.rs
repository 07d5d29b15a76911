//! Delivery to an SMTP upstream: a scripted sink on 127.0.0.1 records what arrives.

mod sink;

use std::time::Duration;

use hallpass_deliver::{Deliverer, RcptOutcome, Settings, Target};
use sink::{Script, Sink};

fn settings() -> Settings {
    Settings {
        helo_name: "relay.lumen.sch.uk".into(),
        // Generous, only so that a broken test cannot hang; nothing asserts speed.
        timeout: Duration::from_secs(30),
        ..Settings::default()
    }
}

fn deliverer(sink: &Sink, settings: Settings) -> Deliverer {
    Deliverer::new(sink.target().parse().unwrap(), settings)
}

fn rcpts(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

const MESSAGE: &[u8] = b"From: teacher@lumen.sch.uk\r\nTo: parent@example.com\r\nSubject: Trip\r\n\r\nSee you on Friday.\r\n";

#[tokio::test]
async fn message_arrives_byte_identical_with_dot_lines() {
    let sink = Sink::start(Script::default()).await;
    let d = deliverer(&sink, settings());
    let message = b"From: teacher@lumen.sch.uk\r\nSubject: dots\r\n\r\n.\r\n..\r\n.leading dot\r\n...three\r\n. space\r\nmiddle . dot\r\n.\r\n";
    let outcomes = d
        .send(
            "teacher@lumen.sch.uk",
            &rcpts(&["parent@example.com"]),
            message,
            "m1",
        )
        .await;
    assert_eq!(
        outcomes,
        [RcptOutcome::Delivered(
            "250 2.0.0 Ok: queued as SINK1".into()
        )]
    );
    let received = sink.received();
    assert_eq!(received.len(), 1);
    assert_eq!(received[0].data, message);
    assert_eq!(received[0].rcpts, ["parent@example.com"]);
    assert!(received[0].mail_from.starts_with("<teacher@lumen.sch.uk>"));
}

#[tokio::test]
async fn large_message_arrives_byte_identical() {
    let sink = Sink::start(Script::default()).await;
    let d = deliverer(&sink, settings());
    let mut message = b"From: teacher@lumen.sch.uk\r\nSubject: big\r\n\r\n".to_vec();
    for i in 0..20_000 {
        let line = match i % 4 {
            0 => format!(".line {i} starts with a dot\r\n"),
            1 => format!("line {i} is ordinary text of some length\r\n"),
            2 => "\r\n".to_string(),
            _ => format!("..line {i}\r\n"),
        };
        message.extend_from_slice(line.as_bytes());
    }
    let outcomes = d
        .send(
            "teacher@lumen.sch.uk",
            &rcpts(&["parent@example.com"]),
            &message,
            "m1",
        )
        .await;
    assert!(outcomes[0].is_delivered(), "{outcomes:?}");
    assert_eq!(sink.received()[0].data, message);
}

#[tokio::test]
async fn message_without_final_crlf_arrives_with_one_added() {
    let sink = Sink::start(Script::default()).await;
    let d = deliverer(&sink, settings());
    let message = b"From: teacher@lumen.sch.uk\r\nSubject: x\r\n\r\nno line end at the end";
    let outcomes = d
        .send(
            "teacher@lumen.sch.uk",
            &rcpts(&["parent@example.com"]),
            message,
            "m1",
        )
        .await;
    assert!(outcomes[0].is_delivered());
    let mut expected = message.to_vec();
    expected.extend_from_slice(b"\r\n");
    assert_eq!(sink.received()[0].data, expected);
}

#[tokio::test]
async fn message_ending_with_a_blank_line_keeps_it() {
    let sink = Sink::start(Script::default()).await;
    let d = deliverer(&sink, settings());
    let message = b"Subject: x\r\n\r\nbody\r\n\r\n\r\n";
    d.send("a@example.com", &rcpts(&["b@example.org"]), message, "m1")
        .await;
    assert_eq!(sink.received()[0].data, message);
}

#[tokio::test]
async fn eight_bit_message_is_announced_and_sized() {
    let sink = Sink::start(Script::default()).await;
    let d = deliverer(&sink, settings());
    let message = "Subject: Café\r\n\r\nRésumé attached.\r\n".as_bytes();
    let outcomes = d
        .send(
            "teacher@lumen.sch.uk",
            &rcpts(&["parent@example.com"]),
            message,
            "m1",
        )
        .await;
    assert!(outcomes[0].is_delivered());
    let received = &sink.received()[0];
    assert_eq!(received.data, message);
    assert!(
        received.mail_from.contains("BODY=8BITMIME"),
        "{}",
        received.mail_from
    );
    assert!(
        received.mail_from.contains("SMTPUTF8"),
        "{}",
        received.mail_from
    );
}

#[tokio::test]
async fn size_is_declared_when_the_upstream_has_a_limit() {
    let sink = Sink::start(Script {
        size: Some(10_000),
        ..Script::default()
    })
    .await;
    let d = deliverer(&sink, settings());
    d.send("a@example.com", &rcpts(&["b@example.org"]), MESSAGE, "m1")
        .await;
    let received = &sink.received()[0];
    assert!(
        received
            .mail_from
            .contains(&format!("SIZE={}", MESSAGE.len())),
        "{}",
        received.mail_from
    );
    assert!(!received.mail_from.contains("BODY=8BITMIME"));
}

#[tokio::test]
async fn message_over_the_upstreams_size_limit_is_refused_without_sending() {
    let sink = Sink::start(Script {
        size: Some(50),
        ..Script::default()
    })
    .await;
    let d = deliverer(&sink, settings());
    let outcomes = d
        .send(
            "a@example.com",
            &rcpts(&["b@example.org", "c@example.org"]),
            MESSAGE,
            "m1",
        )
        .await;
    assert!(
        outcomes.iter().all(RcptOutcome::is_permanent),
        "{outcomes:?}"
    );
    assert!(outcomes[0].text().contains("up to 50 bytes"));
    assert!(!sink.commands().iter().any(|c| c.starts_with("MAIL")));
}

async fn mixed_recipients(pipelining: bool) {
    let sink = Sink::start(Script {
        pipelining,
        ..Script::default()
    })
    .await;
    let d = deliverer(&sink, settings());
    let list = rcpts(&[
        "ok1@example.org",
        "busy@example.org",
        "nouser@example.org",
        "ok2@example.org",
    ]);
    let outcomes = d.send("teacher@lumen.sch.uk", &list, MESSAGE, "m1").await;
    assert_eq!(
        outcomes,
        [
            RcptOutcome::Delivered("250 2.0.0 Ok: queued as SINK1".into()),
            RcptOutcome::Transient("451 4.2.1 mailbox busy, try again later".into()),
            RcptOutcome::Permanent("550 5.1.1 no such user here".into()),
            RcptOutcome::Delivered("250 2.0.0 Ok: queued as SINK1".into()),
        ]
    );
    let received = sink.received();
    assert_eq!(received.len(), 1);
    assert_eq!(received[0].rcpts, ["ok1@example.org", "ok2@example.org"]);
    assert_eq!(received[0].data, MESSAGE);
}

#[tokio::test]
async fn mixed_recipients_get_their_own_outcomes_with_pipelining() {
    mixed_recipients(true).await;
}

#[tokio::test]
async fn mixed_recipients_get_their_own_outcomes_without_pipelining() {
    mixed_recipients(false).await;
}

#[tokio::test]
async fn many_recipients_are_pipelined_in_batches() {
    let sink = Sink::start(Script::default()).await;
    let d = deliverer(&sink, settings());
    let list: Vec<String> = (0..250)
        .map(|i| {
            if i % 50 == 7 {
                format!("nouser{i}@example.org")
            } else {
                format!("pupil{i}@example.org")
            }
        })
        .collect();
    let outcomes = d.send("teacher@lumen.sch.uk", &list, MESSAGE, "m1").await;
    assert_eq!(outcomes.len(), 250);
    for (rcpt, outcome) in list.iter().zip(&outcomes) {
        assert_eq!(
            outcome.is_permanent(),
            rcpt.starts_with("nouser"),
            "{rcpt}: {outcome:?}"
        );
        assert_eq!(
            outcome.is_delivered(),
            rcpt.starts_with("pupil"),
            "{rcpt}: {outcome:?}"
        );
    }
    assert_eq!(sink.received()[0].rcpts.len(), 245);
}

#[tokio::test]
async fn no_accepted_recipient_means_no_data() {
    let sink = Sink::start(Script::default()).await;
    let d = deliverer(&sink, settings());
    let outcomes = d
        .send(
            "a@example.com",
            &rcpts(&["nouser@example.org", "busy@example.org"]),
            MESSAGE,
            "m1",
        )
        .await;
    assert!(
        outcomes[0].is_permanent() && outcomes[1].is_transient(),
        "{outcomes:?}"
    );
    assert!(!sink.commands().iter().any(|c| c == "DATA"));
    assert!(sink.received().is_empty());
}

#[tokio::test]
async fn connection_refused_is_transient_for_everyone() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let d = Deliverer::new(addr.to_string().parse().unwrap(), settings());
    let outcomes = d
        .send(
            "a@example.com",
            &rcpts(&["b@example.org", "c@example.org"]),
            MESSAGE,
            "m1",
        )
        .await;
    assert_eq!(
        outcomes,
        [
            RcptOutcome::Transient("connection refused".into()),
            RcptOutcome::Transient("connection refused".into()),
        ]
    );
}

#[tokio::test]
async fn data_refusal_is_permanent_for_the_accepted_recipients() {
    let sink = Sink::start(Script {
        data_reply: "554 5.7.1 message refused by policy",
        ..Script::default()
    })
    .await;
    let d = deliverer(&sink, settings());
    let outcomes = d
        .send(
            "a@example.com",
            &rcpts(&["ok1@example.org", "busy@example.org", "ok2@example.org"]),
            MESSAGE,
            "m1",
        )
        .await;
    assert_eq!(
        outcomes,
        [
            RcptOutcome::Permanent("554 5.7.1 message refused by policy".into()),
            RcptOutcome::Transient("451 4.2.1 mailbox busy, try again later".into()),
            RcptOutcome::Permanent("554 5.7.1 message refused by policy".into()),
        ]
    );
}

#[tokio::test]
async fn data_deferral_is_transient_for_the_accepted_recipients() {
    let sink = Sink::start(Script {
        data_reply: "451 4.3.0 try again later",
        ..Script::default()
    })
    .await;
    let d = deliverer(&sink, settings());
    let outcomes = d
        .send(
            "a@example.com",
            &rcpts(&["ok@example.org", "nouser@example.org"]),
            MESSAGE,
            "m1",
        )
        .await;
    assert_eq!(
        outcomes,
        [
            RcptOutcome::Transient("451 4.3.0 try again later".into()),
            RcptOutcome::Permanent("550 5.1.1 no such user here".into()),
        ]
    );
}

#[tokio::test]
async fn refused_sender_applies_to_every_recipient() {
    for (mail_reply, permanent) in [
        ("553 5.7.1 sender address rejected", true),
        ("451 4.3.2 not now", false),
    ] {
        let sink = Sink::start(Script {
            mail_reply,
            ..Script::default()
        })
        .await;
        let d = deliverer(&sink, settings());
        let outcomes = d
            .send(
                "a@example.com",
                &rcpts(&["ok1@example.org", "ok2@example.org"]),
                MESSAGE,
                "m1",
            )
            .await;
        assert_eq!(outcomes.len(), 2);
        for outcome in &outcomes {
            assert_eq!(outcome.text(), mail_reply);
            assert_eq!(outcome.is_permanent(), permanent);
            assert_eq!(outcome.is_transient(), !permanent);
        }
        assert!(sink.received().is_empty());
    }
}

#[tokio::test]
async fn null_sender_is_sent_as_an_empty_path() {
    let sink = Sink::start(Script::default()).await;
    let d = deliverer(&sink, settings());
    let outcomes = d
        .send("", &rcpts(&["teacher@lumen.sch.uk"]), MESSAGE, "m1")
        .await;
    assert!(outcomes[0].is_delivered());
    assert!(sink.received()[0].mail_from.starts_with("<>"));
}

#[tokio::test]
async fn connection_is_reused_for_the_next_message() {
    let sink = Sink::start(Script::default()).await;
    let d = deliverer(&sink, settings());
    for name in ["m1", "m2", "m3"] {
        let outcomes = d
            .send("a@example.com", &rcpts(&["ok@example.org"]), MESSAGE, name)
            .await;
        assert!(outcomes[0].is_delivered(), "{outcomes:?}");
    }
    let record = sink.record();
    assert_eq!(record.connections, 1);
    assert_eq!(record.received.len(), 3);
    assert_eq!(record.commands.iter().filter(|c| *c == "RSET").count(), 2);
    assert_eq!(
        record
            .commands
            .iter()
            .filter(|c| c.starts_with("EHLO"))
            .count(),
        1
    );
}

#[tokio::test]
async fn clones_share_the_pool() {
    let sink = Sink::start(Script::default()).await;
    let d = deliverer(&sink, settings());
    let clone = d.clone();
    d.send("a@example.com", &rcpts(&["ok@example.org"]), MESSAGE, "m1")
        .await;
    clone
        .send("a@example.com", &rcpts(&["ok@example.org"]), MESSAGE, "m2")
        .await;
    assert_eq!(sink.record().connections, 1);
}

#[tokio::test]
async fn idle_keep_zero_closes_each_connection() {
    let sink = Sink::start(Script::default()).await;
    let d = deliverer(
        &sink,
        Settings {
            idle_keep: Duration::ZERO,
            ..settings()
        },
    );
    for name in ["m1", "m2"] {
        d.send("a@example.com", &rcpts(&["ok@example.org"]), MESSAGE, name)
            .await;
    }
    let record = sink.record();
    assert_eq!(record.connections, 2);
    assert_eq!(record.commands.iter().filter(|c| *c == "QUIT").count(), 2);
    assert_eq!(record.open, 0);
}

#[tokio::test]
async fn close_idle_says_quit() {
    let sink = Sink::start(Script::default()).await;
    let d = deliverer(&sink, settings());
    d.send("a@example.com", &rcpts(&["ok@example.org"]), MESSAGE, "m1")
        .await;
    d.close_idle().await;
    let record = sink.record();
    assert_eq!(record.commands.last().map(String::as_str), Some("QUIT"));
    assert_eq!(record.open, 0);
}

#[tokio::test]
async fn stale_pooled_connection_is_replaced_by_a_fresh_one() {
    let sink = Sink::start(Script {
        close_after_data: true,
        ..Script::default()
    })
    .await;
    let d = deliverer(&sink, settings());
    for name in ["m1", "m2"] {
        let outcomes = d
            .send("a@example.com", &rcpts(&["ok@example.org"]), MESSAGE, name)
            .await;
        assert_eq!(
            outcomes,
            [RcptOutcome::Delivered(
                "250 2.0.0 Ok: queued as SINK1".into()
            )]
        );
    }
    let record = sink.record();
    assert_eq!(record.connections, 2);
    assert_eq!(record.received.len(), 2);
    assert_eq!(record.received[1].connection, 2);
}

#[tokio::test]
async fn pooled_connection_closing_with_421_is_replaced_by_a_fresh_one() {
    let sink = Sink::start(Script {
        closing_on_second_mail: true,
        ..Script::default()
    })
    .await;
    let d = deliverer(&sink, settings());
    for name in ["m1", "m2"] {
        let outcomes = d
            .send("a@example.com", &rcpts(&["ok@example.org"]), MESSAGE, name)
            .await;
        assert!(outcomes[0].is_delivered(), "{outcomes:?}");
    }
    let record = sink.record();
    assert_eq!(record.connections, 2);
    assert_eq!(record.received.len(), 2);
}

#[tokio::test]
async fn fresh_connection_closing_with_421_is_transient() {
    let sink = Sink::start(Script {
        mail_reply: "421 4.3.2 shutting down",
        ..Script::default()
    })
    .await;
    let d = deliverer(&sink, settings());
    let outcomes = d
        .send(
            "a@example.com",
            &rcpts(&["ok@example.org", "ok2@example.org"]),
            MESSAGE,
            "m1",
        )
        .await;
    assert_eq!(
        outcomes,
        vec![RcptOutcome::Transient("421 4.3.2 shutting down".into()); 2]
    );
    assert_eq!(sink.record().connections, 1);
}

#[tokio::test]
async fn never_more_connections_than_concurrency() {
    let sink = Sink::start(Script {
        // Each transaction waits until two connections are open, so the sends overlap.
        hold_data_until_connections: Some(2),
        ..Script::default()
    })
    .await;
    let d = deliverer(
        &sink,
        Settings {
            concurrency: 2,
            ..settings()
        },
    );
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..8 {
        let d = d.clone();
        tasks.spawn(async move {
            d.send(
                "a@example.com",
                &[format!("ok{i}@example.org")],
                MESSAGE,
                "m",
            )
            .await
        });
    }
    while let Some(outcomes) = tasks.join_next().await {
        assert!(outcomes.unwrap()[0].is_delivered());
    }
    let record = sink.record();
    assert_eq!(record.received.len(), 8);
    assert_eq!(record.max_open, 2);
    assert_eq!(record.connections, 2);
}

#[tokio::test]
async fn require_tls_without_starttls_is_transient() {
    let sink = Sink::start(Script::default()).await;
    let d = deliverer(
        &sink,
        Settings {
            require_tls: true,
            ..settings()
        },
    );
    let outcomes = d
        .send(
            "a@example.com",
            &rcpts(&["ok@example.org", "ok2@example.org"]),
            MESSAGE,
            "m1",
        )
        .await;
    assert_eq!(
        outcomes,
        vec![RcptOutcome::Transient("upstream does not offer STARTTLS".into()); 2]
    );
    assert!(!sink.commands().iter().any(|c| c.starts_with("MAIL")));
}

#[tokio::test]
async fn starttls_with_accept_invalid_certs_delivers_over_tls() {
    let sink = Sink::start(Script {
        starttls: true,
        ..Script::default()
    })
    .await;
    let d = Deliverer::new(
        Target::Smtp {
            host: "localhost".into(),
            port: sink.addr.port(),
        },
        Settings {
            require_tls: true,
            accept_invalid_certs: true,
            ..settings()
        },
    );
    let message = b"Subject: over TLS\r\n\r\n.dot\r\nbody\r\n";
    for name in ["m1", "m2"] {
        let outcomes = d
            .send("a@example.com", &rcpts(&["ok@example.org"]), message, name)
            .await;
        assert!(outcomes[0].is_delivered(), "{outcomes:?}");
    }
    let record = sink.record();
    assert_eq!(record.connections, 1);
    assert!(record.received.iter().all(|r| r.tls && r.data == message));
    // EHLO again after STARTTLS, as RFC 3207 requires.
    let ehlos = record
        .commands
        .iter()
        .filter(|c| c.starts_with("EHLO"))
        .count();
    assert_eq!(ehlos, 2);
}

#[tokio::test]
async fn starttls_is_used_whenever_offered() {
    let sink = Sink::start(Script {
        starttls: true,
        ..Script::default()
    })
    .await;
    let d = deliverer(
        &sink,
        Settings {
            accept_invalid_certs: true,
            ..settings()
        },
    );
    let outcomes = d
        .send("a@example.com", &rcpts(&["ok@example.org"]), MESSAGE, "m1")
        .await;
    assert!(outcomes[0].is_delivered(), "{outcomes:?}");
    assert!(sink.received()[0].tls);
}

#[tokio::test]
async fn self_signed_certificate_is_refused_by_default() {
    let sink = Sink::start(Script {
        starttls: true,
        ..Script::default()
    })
    .await;
    let d = Deliverer::new(
        Target::Smtp {
            host: "localhost".into(),
            port: sink.addr.port(),
        },
        settings(),
    );
    let outcomes = d
        .send("a@example.com", &rcpts(&["ok@example.org"]), MESSAGE, "m1")
        .await;
    assert!(outcomes[0].is_transient(), "{outcomes:?}");
    assert!(outcomes[0].text().contains("STARTTLS"), "{outcomes:?}");
    // No fallback to clear text.
    assert!(!sink.commands().iter().any(|c| c.starts_with("MAIL")));
}

#[tokio::test]
async fn non_ascii_address_needs_smtputf8() {
    let without = Sink::start(Script {
        smtputf8: false,
        ..Script::default()
    })
    .await;
    let d = deliverer(&without, settings());
    let outcomes = d
        .send("a@example.com", &rcpts(&["zoë@example.org"]), MESSAGE, "m1")
        .await;
    assert!(outcomes[0].is_permanent(), "{outcomes:?}");
    assert!(outcomes[0].text().contains("SMTPUTF8"));
    assert!(without.received().is_empty());

    let with = Sink::start(Script::default()).await;
    let d = deliverer(&with, settings());
    let outcomes = d
        .send("a@example.com", &rcpts(&["zoë@example.org"]), MESSAGE, "m1")
        .await;
    assert!(outcomes[0].is_delivered(), "{outcomes:?}");
    let received = &with.received()[0];
    assert_eq!(received.rcpts, ["zoë@example.org"]);
    assert!(received.mail_from.contains("SMTPUTF8"));
}

#[tokio::test]
async fn addresses_that_could_smuggle_commands_are_refused() {
    let sink = Sink::start(Script::default()).await;
    let d = deliverer(&sink, settings());
    let list = rcpts(&[
        "ok@example.org",
        "evil@example.org>\r\nRCPT TO:<other@example.org",
        "ok2@example.org",
    ]);
    let outcomes = d.send("a@example.com", &list, MESSAGE, "m1").await;
    assert!(outcomes[0].is_delivered(), "{outcomes:?}");
    assert!(outcomes[1].is_permanent(), "{outcomes:?}");
    assert!(outcomes[2].is_delivered(), "{outcomes:?}");
    assert_eq!(
        sink.received()[0].rcpts,
        ["ok@example.org", "ok2@example.org"]
    );

    let outcomes = d
        .send(
            "a@example.com>\r\nDATA",
            &rcpts(&["ok@example.org"]),
            MESSAGE,
            "m2",
        )
        .await;
    assert!(outcomes[0].is_permanent());
    assert_eq!(sink.received().len(), 1);
}

#[tokio::test]
async fn no_recipients_no_outcomes() {
    let sink = Sink::start(Script::default()).await;
    let d = deliverer(&sink, settings());
    assert!(d.send("a@example.com", &[], MESSAGE, "m1").await.is_empty());
    assert_eq!(sink.record().connections, 0);
}

#[tokio::test]
async fn greeting_refusal_is_transient() {
    // A server that greets with 554 (it does not want us now).
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        use tokio::io::AsyncWriteExt;
        while let Ok((mut stream, _)) = listener.accept().await {
            let _ = stream.write_all(b"554 5.3.2 too busy, go away\r\n").await;
        }
    });
    let d = Deliverer::new(addr.to_string().parse().unwrap(), settings());
    let outcomes = d
        .send("a@example.com", &rcpts(&["ok@example.org"]), MESSAGE, "m1")
        .await;
    assert!(outcomes[0].is_transient(), "{outcomes:?}");
    assert!(
        outcomes[0].text().contains("554 5.3.2 too busy"),
        "{outcomes:?}"
    );
}

#[tokio::test]
async fn silent_upstream_times_out_as_transient() {
    // Accepts the connection and never says a word.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let held = tokio::spawn(async move {
        let mut kept = Vec::new();
        while let Ok((stream, _)) = listener.accept().await {
            kept.push(stream);
        }
    });
    let d = Deliverer::new(
        addr.to_string().parse().unwrap(),
        Settings {
            timeout: Duration::from_millis(200),
            ..settings()
        },
    );
    let outcomes = d
        .send("a@example.com", &rcpts(&["ok@example.org"]), MESSAGE, "m1")
        .await;
    assert!(outcomes[0].is_transient(), "{outcomes:?}");
    assert!(outcomes[0].text().contains("timed out"), "{outcomes:?}");
    held.abort();
}
