//! The walk over real MIME, built by hand here so each case shows its bytes.

use super::*;

fn limits() -> Limits {
    Limits {
        max_text_bytes: 1 << 20,
        ..hallpass_core::Config::defaults_for(&["lumen.sch.uk"], &[]).limits
    }
}

fn read(raw: &str) -> (Vec<(String, String, View)>, MessageInfo) {
    read_with(raw, &limits())
}

fn read_with(raw: &str, limits: &Limits) -> (Vec<(String, String, View)>, MessageInfo) {
    let mut segs = Vec::new();
    let info = read_message(raw.as_bytes(), limits, &mut |s| {
        segs.push((s.location.to_string(), s.text.to_string(), s.view))
    });
    (segs, info)
}

fn text_at(segs: &[(String, String, View)], loc: &str) -> String {
    segs.iter()
        .filter(|s| s.0 == loc)
        .map(|s| s.1.as_str())
        .collect::<Vec<_>>()
        .join("|")
}

#[test]
fn encoded_subject_and_quoted_printable_body() {
    let (segs, info) = read(
        "From: a@lumen.sch.uk\r\nTo: Parent <P@Example.com>, b@example.org\r\nCc: c@example.net\r\nSubject: =?utf-8?q?NHS_no_943_476_5919?=\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\nDOB =3D 04/05/2014=\r\n, thanks\r\n",
    );
    assert_eq!(text_at(&segs, "subject"), "NHS no 943 476 5919");
    assert_eq!(text_at(&segs, "body"), "DOB = 04/05/2014, thanks\r\n");
    assert_eq!(info.to, vec!["p@example.com", "b@example.org"]);
    assert_eq!(info.cc, vec!["c@example.net"]);
    assert!(info.unscannable.is_empty());
}

#[test]
fn alternatives_are_marked_so_they_are_not_counted_twice() {
    let (segs, _) = read(
        "Subject: x\r\nContent-Type: multipart/alternative; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nplain 1\r\n--b\r\nContent-Type: text/html\r\n\r\n<p>html&nbsp;1</p>\r\n--b--\r\n",
    );
    let body: Vec<_> = segs
        .iter()
        .filter(|s| s.0 == "body")
        .map(|s| (s.1.trim().to_string(), s.2))
        .collect();
    assert_eq!(
        body,
        vec![
            ("plain 1".to_string(), View::TextBody),
            ("html 1".to_string(), View::HtmlBody)
        ]
    );
}

#[test]
fn csv_attachment_by_name_with_base64() {
    // "Name,DOB\r\nAmy,04/05/2014\r\n" in base64, declared as octet-stream.
    let (segs, info) = read(
        "Subject: list\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nSee attached\r\n--b\r\nContent-Type: application/octet-stream; name=\"class.csv\"\r\nContent-Disposition: attachment; filename=\"class.csv\"\r\nContent-Transfer-Encoding: base64\r\n\r\nTmFtZSxET0INCkFteSwwNC8wNS8yMDE0DQo=\r\n--b--\r\n",
    );
    assert!(
        text_at(&segs, "attachment:class.csv").contains("DOB: 04/05/2014"),
        "{segs:?}"
    );
    assert_eq!(info.attachments.len(), 1);
    assert_eq!(info.attachments[0].kind, "csv");
    assert!(info.attachments[0].scanned);
}

#[test]
fn forwarded_messages_are_walked_with_nested_locations() {
    let (segs, info) = read(
        "Subject: fwd\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nFYI\r\n--b\r\nContent-Type: message/rfc822\r\nContent-Disposition: attachment; filename=\"referral.eml\"\r\n\r\nSubject: inner\r\nContent-Type: multipart/mixed; boundary=c\r\n\r\n--c\r\nContent-Type: text/plain\r\n\r\nNHS 943 476 5919\r\n--c\r\nContent-Type: text/csv; name=\"x.csv\"\r\nContent-Disposition: attachment; filename=\"x.csv\"\r\n\r\nUPN\r\nA820200114001\r\n--c--\r\n--b--\r\n",
    );
    assert!(
        text_at(&segs, "attachment:referral.eml").contains("NHS 943 476 5919"),
        "{segs:?}"
    );
    assert!(text_at(&segs, "attachment:referral.eml").contains("inner"));
    assert!(
        text_at(&segs, "attachment:referral.eml/x.csv").contains("A820200114001"),
        "{segs:?}"
    );
    assert_eq!(
        info.attachments
            .iter()
            .map(|a| a.location.as_str())
            .collect::<Vec<_>>(),
        vec!["attachment:referral.eml", "attachment:referral.eml/x.csv"]
    );
}

#[test]
fn binary_formats_without_a_reader_are_unscannable_but_pictures_are_not() {
    let (_, info) = read(
        "Subject: x\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: application/pdf; name=\"r.pdf\"\r\nContent-Transfer-Encoding: base64\r\n\r\nJVBERi0xLjcK\r\n--b\r\nContent-Type: image/png; name=\"p.png\"\r\nContent-Transfer-Encoding: base64\r\n\r\niVBORw0KGgoAAAA=\r\n--b--\r\n",
    );
    let pdf = &info.attachments[0];
    assert_eq!((pdf.kind, pdf.scanned), ("pdf", false));
    assert!(pdf.unscannable.is_some());
    let png = &info.attachments[1];
    assert_eq!(
        (png.kind, png.scanned, png.unscannable.is_none()),
        ("image", false, true)
    );
    assert_eq!(info.unscannable.len(), 1);
}

#[test]
fn text_without_headers_is_still_scanned_and_flagged() {
    let (segs, info) = read("\r\n\r\njust 943 476 5919 no headers");
    assert!(text_at(&segs, "body").contains("943 476 5919"), "{segs:?}");
    assert_eq!(info.unscannable.len(), 1);
}

#[test]
fn too_deep_nesting_is_unscannable_not_a_crash() {
    let mut m = "Subject: bottom\r\n\r\nNHS 943 476 5919\r\n".to_string();
    for i in 0..8 {
        m = format!(
            "Subject: level {i}\r\nContent-Type: multipart/mixed; boundary=b{i}\r\n\r\n--b{i}\r\nContent-Type: message/rfc822\r\n\r\n{m}\r\n--b{i}--\r\n"
        );
    }
    let (_, info) = read(&m);
    assert!(
        info.unscannable.iter().any(|(_, r)| r.contains("nested")),
        "{:?}",
        info.unscannable
    );
}

#[test]
fn many_parts_stop_at_the_limit() {
    let mut m = "Subject: x\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n".to_string();
    for i in 0..50 {
        m.push_str(&format!("--b\r\nContent-Type: text/plain; name=\"f{i}.txt\"\r\nContent-Disposition: attachment\r\n\r\nfile {i}\r\n"));
    }
    m.push_str("--b--\r\n");
    let (_, info) = read_with(
        &m,
        &Limits {
            max_parts: 10,
            ..limits()
        },
    );
    assert!(info.attachments.len() <= 10);
    assert!(
        info.unscannable
            .iter()
            .any(|(_, r)| r.contains("more than 10 parts")),
        "{:?}",
        info.unscannable
    );
}

#[test]
fn text_over_the_limit_is_cut_and_flagged() {
    let body = "x".repeat(5000);
    let (segs, info) = read_with(
        &format!("Subject: s\r\n\r\n{body}"),
        &Limits {
            max_text_bytes: 1000,
            ..limits()
        },
    );
    assert!(segs.iter().map(|s| s.1.len()).sum::<usize>() <= 1000);
    assert!(info.unscannable.iter().any(|(l, _)| l.as_str() == "body"));
}

#[test]
fn broken_base64_marks_the_part_unscannable() {
    let (_, info) = read(
        "Subject: x\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: text/csv; name=\"a.csv\"\r\nContent-Transfer-Encoding: base64\r\n\r\n!!!! not base64 @@@@\r\n--b--\r\n",
    );
    // mail-parser decodes leniently; whatever it makes of it, the walk must
    // not crash, and an undecodable part must not pass as scanned text.
    for a in &info.attachments {
        assert!(a.scanned || a.unscannable.is_some());
    }
}

#[test]
fn over_the_time_budget_the_rest_is_unscannable() {
    let raw = "Subject: x\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nhello\r\n--b\r\nContent-Type: text/csv; name=\"a.csv\"\r\nContent-Disposition: attachment; filename=\"a.csv\"\r\n\r\nUPN\r\nX\r\n--b--\r\n";
    let calls = std::cell::Cell::new(0);
    // The budget runs out after the first part.
    let over = || {
        calls.set(calls.get() + 1);
        calls.get() > 1
    };
    let info = read_message_within(raw.as_bytes(), &limits(), &over, &mut |_| {});
    assert!(
        info.unscannable
            .iter()
            .any(|(_, r)| r.contains("time budget")),
        "{:?}",
        info.unscannable
    );
}

/// Found by `fuzz/` (target `message`): mail-parser 0.11 panics ("Invalid
/// part ID, could not find multipart") on a forwarded message inside a
/// forwarded message whose multipart never closes properly. A panic there
/// escaped `read_message` and would take the relay's worker with it.
const MAIL_PARSER_PANIC: &str = "Content-Type:multipart/\n boundary==_hallpass_forwarded_rfc822_nested_csv_1\n\n--=_hallpass_forwarded_rfc822_nested_csv_1Content-Type:message/rfc822\n\nContent-Type:message/rfc822\n\n\n--=_hallpass_forwarded_rfc822_nested_csv_1--";

#[test]
fn a_panic_in_the_mime_parser_makes_the_message_unscannable_not_a_crash() {
    let (segs, info) = read(MAIL_PARSER_PANIC);
    assert_eq!(
        info.unscannable,
        vec![(
            Location::body(),
            "the message's MIME structure could not be read".to_string()
        )]
    );
    // What is there is still scanned, as text.
    assert!(
        text_at(&segs, "body").contains("message/rfc822"),
        "{segs:?}"
    );
}

#[test]
fn a_panic_in_the_mime_parser_inside_an_attachment_costs_that_attachment() {
    let raw = format!(
        "From: a@lumen.sch.uk\r\nSubject: fwd\r\nContent-Type: multipart/mixed; boundary=outer\r\n\r\n--outer\r\nContent-Type: text/plain\r\n\r\nsee attached\r\n--outer\r\nContent-Type: application/octet-stream; name=\"old.eml\"\r\nContent-Disposition: attachment; filename=\"old.eml\"\r\nContent-Transfer-Encoding: base64\r\n\r\n{}\r\n--outer--\r\n",
        hallpass_fixtures::base64(MAIL_PARSER_PANIC.as_bytes())
    );
    let (segs, info) = read(&raw);
    assert_eq!(text_at(&segs, "body"), "see attached");
    let old = Location::attachment("old.eml");
    assert_eq!(
        info.unscannable,
        vec![(
            old.clone(),
            "the message's MIME structure could not be read".to_string()
        )]
    );
    let a = info.attachments.iter().find(|a| a.location == old).unwrap();
    assert!(!a.scanned);
}
