use super::*;
use hallpass_core::{DetectorId, Location};

fn policy() -> Policy {
    Policy::new(&Config::defaults_for(
        &["lumen.sch.uk"],
        &["council.gov.uk"],
    ))
}

fn finding(confidence: Confidence) -> Finding {
    Finding {
        detector: DetectorId::new("uk_upn"),
        location: Location::attachment("class.csv"),
        count: 28,
        confidence,
    }
}

fn addrs(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

fn decide(p: &Policy, recipients: &[String], visible: &[String], findings: &[Finding]) -> Decision {
    p.decide(&Input {
        recipients,
        visible,
        findings,
        attachments: &[],
        unscannable: false,
        password_in_message: None,
        sender_window_count: None,
    })
}

#[test]
fn personal_data_holds_only_the_external_copy() {
    let r = addrs(&[
        "head@lumen.sch.uk",
        "parent@example.com",
        "sen@council.gov.uk",
    ]);
    let d = decide(&policy(), &r, &r, &[finding(Confidence::High)]);
    assert_eq!(d.verdict, Verdict::Hold);
    assert_eq!(
        d.per_recipient,
        vec![Verdict::Deliver, Verdict::Hold, Verdict::Deliver]
    );
    assert_eq!(
        d.rule_ids().collect::<Vec<_>>(),
        vec![RuleId::PersonalDataExternal]
    );
}

#[test]
fn low_confidence_findings_do_not_hold() {
    let r = addrs(&["parent@example.com"]);
    assert_eq!(
        decide(&policy(), &r, &r, &[finding(Confidence::Low)]).verdict,
        Verdict::Deliver
    );
}

#[test]
fn internal_mail_with_personal_data_goes_on() {
    let r = addrs(&["a@lumen.sch.uk", "b@staff.lumen.sch.uk"]);
    assert_eq!(
        decide(&policy(), &r, &r, &[finding(Confidence::High)]).verdict,
        Verdict::Deliver
    );
}

#[test]
fn lookalike_domains_are_held_even_without_findings() {
    let r = addrs(&["sen@counci1.gov.uk", "head@lumen.sch.uk"]);
    let d = decide(&policy(), &r, &r, &[]);
    assert_eq!(
        d.rule_ids().collect::<Vec<_>>(),
        vec![RuleId::MisdirectedDomain]
    );
    assert_eq!(d.per_recipient, vec![Verdict::Hold, Verdict::Deliver]);
}

#[test]
fn bulk_counts_recipients_outside_the_school() {
    let mut r: Vec<String> = (0..51).map(|i| format!("p{i}@example.com")).collect();
    let d = decide(&policy(), &r, &[], &[]);
    assert_eq!(d.verdict, Verdict::Hold);
    r.truncate(50);
    assert_eq!(decide(&policy(), &r, &[], &[]).verdict, Verdict::Deliver);
    // All-staff mail is not a bulk send.
    let staff: Vec<String> = (0..200).map(|i| format!("t{i}@lumen.sch.uk")).collect();
    assert_eq!(
        decide(&policy(), &staff, &[], &[]).verdict,
        Verdict::Deliver
    );
}

#[test]
fn the_sender_window_fires_bulk_send() {
    let r = addrs(&["p@example.com"]);
    let mut input = Input {
        recipients: &r,
        visible: &r,
        findings: &[],
        attachments: &[],
        unscannable: false,
        password_in_message: None,
        sender_window_count: Some(101),
    };
    assert_eq!(policy().decide(&input).verdict, Verdict::Hold);
    input.sender_window_count = Some(100);
    assert_eq!(policy().decide(&input).verdict, Verdict::Deliver);
}

#[test]
fn five_visible_parents_are_rewritten_four_are_not() {
    let five: Vec<String> = (0..5).map(|i| format!("p{i}@example.com")).collect();
    let d = decide(&policy(), &five, &five, &[]);
    assert_eq!(d.verdict, Verdict::Rewrite);
    let four = &five[..4];
    assert_eq!(decide(&policy(), four, four, &[]).verdict, Verdict::Deliver);
    // Bcc'd parents are not visible to each other.
    assert_eq!(decide(&policy(), &five, &[], &[]).verdict, Verdict::Deliver);
}

#[test]
fn the_strongest_action_wins_and_monitor_only_records() {
    let mut config = Config::defaults_for(&["lumen.sch.uk"], &[]);
    config.rules.cc_exposure.action = Action::Monitor;
    let p = Policy::new(&config);
    let five: Vec<String> = (0..5).map(|i| format!("p{i}@example.com")).collect();
    let d = decide(&p, &five, &five, &[finding(Confidence::Medium)]);
    assert_eq!(d.verdict, Verdict::Hold);
    assert_eq!(
        d.rule_ids().collect::<Vec<_>>(),
        vec![RuleId::PersonalDataExternal, RuleId::CcExposure]
    );
    let d = decide(&p, &five, &five, &[]);
    assert_eq!(
        d.verdict,
        Verdict::Deliver,
        "monitor records without acting"
    );
    assert_eq!(d.hits.len(), 1);
}

#[test]
fn unscannable_parts_hold_only_for_outside_recipients() {
    let r = addrs(&["a@lumen.sch.uk", "p@example.com"]);
    let d = policy().decide(&Input {
        recipients: &r,
        visible: &r,
        findings: &[],
        attachments: &[],
        unscannable: true,
        password_in_message: None,
        sender_window_count: None,
    });
    assert_eq!(d.per_recipient, vec![Verdict::Deliver, Verdict::Hold]);
}

#[test]
fn partners_can_be_untrusted() {
    let mut config = Config::defaults_for(&["lumen.sch.uk"], &["council.gov.uk"]);
    config.rules.personal_data_external.partners_allowed = false;
    let r = addrs(&["sen@council.gov.uk"]);
    assert_eq!(
        decide(&Policy::new(&config), &r, &r, &[finding(Confidence::High)]).verdict,
        Verdict::Hold
    );
}
