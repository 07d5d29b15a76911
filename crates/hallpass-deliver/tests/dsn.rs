//! Bounces, read back with mail-parser as a mail client would.

use hallpass_deliver::{Dsn, dsn};
use mail_parser::{MessageParser, MimeHeaders, PartType};

/// Synthetic: the NHS number is in the never-issued 999 range.
const ORIGINAL: &[u8] = b"From: Ms Teacher <teacher@lumen.sch.uk>\r\n\
To: parent@example.com, nobody@example.org\r\n\
Subject: Referral for Sam\r\n\
Message-ID: <abc123@lumen.sch.uk>\r\n\
Content-Type: text/plain; charset=utf-8\r\n\
\r\n\
Dear parent, Sam's NHS number is 999 123 4560 and the referral is attached.\r\n\
Date of birth: 01/02/2015\r\n";

const BODY_TEXT: &[&str] = &[
    "Dear parent",
    "999 123 4560",
    "Date of birth",
    "referral is attached",
];

fn failed() -> Vec<(String, String)> {
    vec![
        (
            "nobody@example.org".to_string(),
            "550 5.1.1 <nobody@example.org>: Recipient address rejected".to_string(),
        ),
        (
            "parent@example.com".to_string(),
            "554 transaction failed".to_string(),
        ),
    ]
}

fn report(failed: &[(String, String)], expired: bool) -> Vec<u8> {
    dsn(&Dsn {
        reporting_mta: "relay.lumen.sch.uk",
        postmaster: "postmaster@lumen.sch.uk",
        original_sender: "teacher@lumen.sch.uk",
        queue_id: "01JQ7Z3K4M",
        arrival_unix: 1_795_000_000,
        now_unix: 1_795_000_000 + 5 * 86_400 + 3_600,
        failed,
        original: ORIGINAL,
        expired,
    })
}

fn text(part: &mail_parser::MessagePart<'_>) -> String {
    String::from_utf8_lossy(part.contents()).into_owned()
}

#[test]
fn dsn_is_a_multipart_report_with_three_parts() {
    let bytes = report(&failed(), false);
    let message = MessageParser::default().parse(&bytes).expect("parses");

    let content_type = message.content_type().unwrap();
    assert_eq!(content_type.ctype(), "multipart");
    assert_eq!(content_type.subtype(), Some("report"));
    assert_eq!(
        content_type.attribute("report-type"),
        Some("delivery-status")
    );
    assert_eq!(
        message.from().unwrap().first().unwrap().address(),
        Some("postmaster@lumen.sch.uk")
    );
    assert_eq!(
        message.to().unwrap().first().unwrap().address(),
        Some("teacher@lumen.sch.uk")
    );
    assert_eq!(
        message.subject(),
        Some("Undelivered Mail Returned to Sender")
    );
    assert_eq!(
        message.header_raw("Auto-Submitted").map(str::trim),
        Some("auto-replied")
    );
    assert!(message.message_id().unwrap().contains("01JQ7Z3K4M"));

    let PartType::Multipart(children) = &message.parts[0].body else {
        panic!("root is not multipart");
    };
    assert_eq!(children.len(), 3);
    let part = |i: usize| &message.parts[children[i] as usize];
    let types: Vec<String> = (0..3)
        .map(|i| {
            let ct = part(i).content_type().unwrap();
            format!("{}/{}", ct.ctype(), ct.subtype().unwrap_or(""))
        })
        .collect();
    assert_eq!(
        types,
        [
            "text/plain",
            "message/delivery-status",
            "text/rfc822-headers"
        ]
    );

    let human = text(part(0));
    assert!(human.contains("<nobody@example.org>"), "{human}");
    assert!(human.contains("<parent@example.com>"), "{human}");
    assert!(
        human.contains("The receiving server said: 550 5.1.1"),
        "{human}"
    );
    assert!(human.contains("What you can do"), "{human}");

    let status = text(part(1));
    for expected in [
        "Reporting-MTA: dns; relay.lumen.sch.uk",
        "X-Hallpass-Queue-ID: 01JQ7Z3K4M",
        "Arrival-Date: ",
        "Final-Recipient: rfc822; nobody@example.org\r\nAction: failed\r\nStatus: 5.1.1\r\n\
         Diagnostic-Code: smtp; 550 5.1.1 <nobody@example.org>: Recipient address rejected\r\n",
        "Final-Recipient: rfc822; parent@example.com\r\nAction: failed\r\nStatus: 5.0.0\r\n\
         Diagnostic-Code: smtp; 554 transaction failed\r\n",
    ] {
        assert!(
            status.contains(expected),
            "missing {expected:?} in\n{status}"
        );
    }
    // One per-message block, then one block per recipient, separated by blank lines.
    assert_eq!(status.split("\r\n\r\n").count(), 3, "{status}");

    let headers = text(part(2));
    assert!(
        headers.contains("Subject: Referral for Sam\r\n"),
        "{headers}"
    );
    assert!(
        headers.contains("Message-ID: <abc123@lumen.sch.uk>\r\n"),
        "{headers}"
    );
    assert!(!headers.contains("\r\n\r\n"), "{headers}");
}

#[test]
fn dsn_never_carries_the_original_body() {
    for expired in [false, true] {
        let bytes = report(&failed(), expired);
        let raw = String::from_utf8_lossy(&bytes);
        let message = MessageParser::default().parse(&bytes).unwrap();
        for needle in BODY_TEXT {
            assert!(!raw.contains(needle), "{needle:?} in the raw report");
            for part in &message.parts {
                assert!(!text(part).contains(needle), "{needle:?} in a part");
            }
        }
    }
}

#[test]
fn expired_dsn_says_how_long_it_tried() {
    let failed = vec![(
        "parent@example.com".to_string(),
        "451 4.4.1 no answer from host".to_string(),
    )];
    let bytes = report(&failed, true);
    let message = MessageParser::default().parse(&bytes).unwrap();
    let human = message.body_text(0).unwrap();
    assert!(human.contains("for 5 days"), "{human}");
    assert!(
        human.contains("try again later") || human.contains("Try sending"),
        "{human}"
    );
    let raw = String::from_utf8_lossy(&bytes);
    assert!(raw.contains("Status: 4.4.1\r\n"), "{raw}");
    assert!(raw.contains("Diagnostic-Code: smtp; 451 4.4.1 no answer from host\r\n"));
}

#[test]
fn a_failure_without_an_smtp_reply_is_not_labelled_smtp() {
    let failed = vec![(
        "parent@example.com".to_string(),
        "connection refused".to_string(),
    )];
    let raw = String::from_utf8(report(&failed, true)).unwrap();
    assert!(raw.contains("Status: 5.0.0\r\n"), "{raw}");
    assert!(
        raw.contains("Diagnostic-Code: X-Hallpass; connection refused\r\n"),
        "{raw}"
    );
    assert!(raw.contains("What went wrong: connection refused"), "{raw}");
}

#[test]
fn a_reply_cannot_inject_fields() {
    let failed = vec![(
        "parent@example.com".to_string(),
        "550 5.1.1 bad\r\nFinal-Recipient: rfc822; forged@example.org".to_string(),
    )];
    let raw = String::from_utf8(report(&failed, false)).unwrap();
    assert!(
        !raw.contains("\r\nFinal-Recipient: rfc822; forged@example.org"),
        "{raw}"
    );
}

#[test]
fn non_ascii_recipient_makes_a_global_report() {
    let failed = vec![(
        "zoë@example.org".to_string(),
        "550 5.1.1 unknown".to_string(),
    )];
    let bytes = report(&failed, false);
    let message = MessageParser::default().parse(&bytes).unwrap();
    let content_type = message.content_type().unwrap();
    assert_eq!(
        content_type.attribute("report-type"),
        Some("global-delivery-status")
    );
    let raw = String::from_utf8(bytes.clone()).unwrap();
    assert!(
        raw.contains("Content-Type: message/global-delivery-status"),
        "{raw}"
    );
    assert!(
        raw.contains("Final-Recipient: utf-8; zoë@example.org\r\n"),
        "{raw}"
    );
}
