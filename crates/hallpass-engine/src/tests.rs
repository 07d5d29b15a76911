//! The shipped detectors through the whole pipeline, one behaviour per test.

use super::*;
use std::path::Path;

fn engine() -> Engine {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let mut config = Config::defaults_for(&["lumen.sch.uk"], &["council.gov.uk"]);
    config.detectors.path = root.join("detectors");
    Engine::load(config).unwrap_or_else(|e| panic!("{e}"))
}

const OPTS: ScanOptions = ScanOptions {
    today: (2026, 11, 23),
    explain: true,
    sender_window_count: None,
};

fn scan(body: &str) -> Report {
    let e = engine();
    let mut ws = e.workspace();
    let raw =
        format!("From: t@lumen.sch.uk\r\nTo: p@example.com\r\nSubject: note\r\n\r\n{body}\r\n");
    e.scan(&mut ws, raw.as_bytes(), None, &OPTS)
}

/// Detector ids found in a body, with confidence.
fn found(body: &str) -> Vec<(String, Confidence)> {
    let mut v: Vec<_> = scan(body)
        .findings
        .iter()
        .map(|f| (f.detector.to_string(), f.confidence))
        .collect();
    v.sort();
    v
}

fn ids(body: &str) -> Vec<String> {
    found(body).into_iter().map(|(d, _)| d).collect()
}

#[test]
fn nhs_number_with_context_is_high() {
    assert_eq!(
        found("Her NHS number is 943 476 5919."),
        vec![("uk_nhs_number".into(), Confidence::High)]
    );
}

#[test]
fn phone_numbers_are_not_nhs_numbers() {
    assert!(ids("Tel: 943 476 5919").is_empty());
    assert!(ids("Call me on 07700 900461 or +44 7700 900461").is_empty());
    assert!(ids("Mob 0161 496 0000").is_empty());
}

#[test]
fn split_identifiers_are_found() {
    assert_eq!(ids("NI number AB 12 34 56 C"), vec!["uk_nino"]);
    assert_eq!(ids("NI: AB-12-34-56-C"), vec!["uk_nino"]);
}

#[test]
fn bad_checksums_and_prefixes_are_not_findings() {
    assert!(ids("NHS number 943 476 5918").is_empty());
    assert!(ids("NI number GB 12 34 56 A").is_empty());
    assert!(ids("NI number QQ 12 34 56 C").is_empty());
}

#[test]
fn vat_invoice_and_order_numbers_are_not_findings() {
    assert!(
        ids("VAT reg no GB 123 4567 89").is_empty(),
        "{:?}",
        found("VAT reg no GB 123 4567 89")
    );
    assert!(ids("Invoice 4539 1488 0343 6467 due").is_empty());
    assert!(
        ids("Order ref 4000123412341234").is_empty(),
        "{:?}",
        found("Order ref 4000123412341234")
    );
}

#[test]
fn cards_ibans_and_bank_accounts() {
    assert_eq!(
        found("Card: 4111 1111 1111 1111 exp 12/27"),
        vec![("payment_card".into(), Confidence::High)]
    );
    assert_eq!(
        found("IBAN GB82 WEST 1234 5698 7654 32"),
        vec![("iban".into(), Confidence::High)]
    );
    assert_eq!(
        found("Sort code 40-12-34, account number 31926819"),
        vec![("uk_bank_account".into(), Confidence::High)]
    );
    assert!(ids("On 12-05-24 we met.").is_empty());
    // The digits of a foreign IBAN can pass for a card; the IBAN label says otherwise.
    assert_eq!(ids("IBAN DE89 3704 0044 0532 0130 00"), vec!["iban"]);
}

#[test]
fn dates_need_birth_context() {
    assert_eq!(ids("DOB: 04/05/2014"), vec!["date_of_birth"]);
    assert_eq!(ids("Amy was born on 4th May 2014."), vec!["date_of_birth"]);
    assert!(ids("Sports day is on 12/07/2026 and the deadline was 03/03/2025.").is_empty());
}

#[test]
fn passport_and_driving_licence() {
    assert_eq!(
        ids("Passport number 123456789 expires 2030"),
        vec!["uk_passport"]
    );
    assert!(ids("Room booking 123456789").is_empty());
    assert_eq!(
        found("Driving licence MORGA753116SM9IJ"),
        vec![("uk_driving_licence".into(), Confidence::High)]
    );
}

#[test]
fn upn_and_uln() {
    let body = b"820200114001";
    let sum: u32 = body
        .iter()
        .enumerate()
        .map(|(i, c)| u32::from(c - b'0') * (i as u32 + 2))
        .sum();
    let upn = format!(
        "{}820200114001",
        hallpass_detect::validators::UPN_ALPHABET[(sum % 23) as usize] as char
    );
    assert_eq!(
        found(&format!("UPN {upn}")),
        vec![("uk_upn".into(), Confidence::High)]
    );
    assert_eq!(
        found("ULN: 9276308686"),
        vec![("uk_uln".into(), Confidence::High)]
    );
}

#[test]
fn special_category_needs_a_person_not_a_policy() {
    assert_eq!(
        found("Tom has a diagnosis of ADHD and his medication is kept in the office."),
        vec![("special_category".into(), Confidence::Medium)]
    );
    assert!(ids("Please read our Supporting Pupils with Medical Conditions policy and the safeguarding training dates.").is_empty());
}

#[test]
fn credentials_but_not_sentences_about_passwords() {
    assert_eq!(ids("The password is Tulip42"), vec!["credential"]);
    assert_eq!(
        found("-----BEGIN RSA PRIVATE KEY-----"),
        vec![("credential".into(), Confidence::High)]
    );
    assert!(ids("I've reset your password. Passwords must be 8 characters.").is_empty());
    assert!(ids("Forgot your password? The password is below.").is_empty());
}

#[test]
fn the_same_body_in_plain_and_html_counts_once() {
    let e = engine();
    let mut ws = e.workspace();
    let raw = "To: p@example.com\r\nContent-Type: multipart/alternative; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nNHS 943 476 5919\r\n--b\r\nContent-Type: text/html\r\n\r\n<p>NHS 943&nbsp;476 5919</p>\r\n--b--\r\n";
    let r = e.scan(&mut ws, raw.as_bytes(), None, &OPTS);
    assert_eq!(r.findings.len(), 1);
    assert_eq!(r.findings[0].count, 1);
}

#[test]
fn explain_masks_values() {
    let r = scan("NHS number 943 476 5919");
    assert_eq!(r.explained.len(), 1);
    assert_eq!(r.explained[0].masked, "*******919");
    assert_eq!(r.explained[0].context.as_deref(), Some("nhs number"));
}

#[test]
fn explained_matches_carry_masked_context() {
    let r = scan(
        "Dear Mrs Example, the referral for Sam gives NHS no. 943 476 5919 for the clinic \
         appointment next week; his sister's is 401 023 2137.",
    );
    let e = &r.explained[0];
    assert_eq!(e.masked, "*******919");
    assert_eq!(e.before, "…for Sam gives NHS no. ");
    assert_eq!(e.after, " for the clinic appointment…");
    // Whatever else is near, no digits but the match's last three show.
    for e in &r.explained {
        let all = format!("{}{}{}", e.before, e.masked, e.after);
        assert_eq!(all.chars().filter(char::is_ascii_digit).count(), 3, "{all}");
    }
}

#[test]
fn a_body_in_two_renderings_is_explained_once() {
    let e = engine();
    let mut ws = e.workspace();
    let raw = "To: p@example.com\r\nContent-Type: multipart/alternative; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nNHS 943 476 5919\r\n--b\r\nContent-Type: text/html\r\n\r\n<p>NHS 943&nbsp;476 5919</p><p>NHS 401 023 2137</p>\r\n--b--\r\n";
    let r = e.scan(&mut ws, raw.as_bytes(), None, &OPTS);
    assert_eq!(r.findings[0].count, 2);
    // The HTML rendering has more matches: its two, not three.
    assert_eq!(r.explained.len(), 2, "{:?}", r.explained);
    assert_eq!(r.explained[1].masked, "*******137");
}

#[test]
fn mask_text_hides_matches_and_long_digit_runs_in_place() {
    let e = engine();
    let mut ws = e.workspace();
    let text = "NHS number 943 476 5919, NI number AB 12 34 56 C, ref 401023 2137, year 2014.";
    let masked = e.mask_text(&mut ws, text, OPTS.today);
    assert_eq!(masked.chars().count(), text.chars().count());
    assert_eq!(
        masked,
        "NHS number *** *** *919, NI number ** ** ** 56 C, ref ****** *137, year 2014."
    );
}

#[test]
fn envelope_recipients_win_over_headers() {
    let e = engine();
    let mut ws = e.workspace();
    let raw = b"To: p@example.com\r\nSubject: x\r\n\r\nNHS 943 476 5919\r\n";
    let env = Envelope {
        sender: "t@lumen.sch.uk".into(),
        recipients: vec!["head@lumen.sch.uk".into()],
    };
    let r = e.scan(&mut ws, raw, Some(&env), &OPTS);
    assert_eq!(r.verdict, Verdict::Deliver);
    assert_eq!(
        r.counts,
        RecipientCounts {
            internal: 1,
            partner: 0,
            external: 0
        }
    );
}

#[test]
fn dates_from_days() {
    assert_eq!(civil_from_days(0), (1970, 1, 1));
    assert_eq!(civil_from_days(20_780), (2026, 11, 23));
    assert_eq!(civil_from_days(11_016), (2000, 2, 29));
}
