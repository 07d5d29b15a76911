//! Behaviour of the engine itself, on small detector sets written inline.

use super::*;

const CTX: ValidateCtx = ValidateCtx {
    today: (2026, 11, 23),
};

fn set(src: &str) -> DetectorSet {
    DetectorSet::from_toml_str("t.toml", src).unwrap_or_else(|e| panic!("{e}"))
}

fn hits(set: &DetectorSet, text: &str) -> Vec<(String, String, Confidence)> {
    let mut scratch = Scratch::new(set);
    let mut out = Vec::new();
    set.scan(&mut scratch, text, &CTX, |h| {
        out.push((
            set.id(h.detector).to_string(),
            text[h.span].to_string(),
            h.confidence,
        ))
    });
    out
}

const NHS_AND_ULN: &str = r#"
[[detector]]
id = "uk_nhs_number"
patterns = ['\b[1-9]\d{2}[ -]?\d{3}[ -]?\d{4}\b']
validator = "nhs_mod11"
context = ["nhs", "patient"]
exclude = ["tel", "mob"]
confidence_with_context = "high"
confidence_without_context = "low"

[[detector]]
id = "uk_uln"
patterns = ['\b[1-9]\d{9}\b']
validator = "uln"
context = ["uln"]
confidence_with_context = "high"
confidence_without_context = "none"
"#;

#[test]
fn context_raises_confidence_and_exclusion_drops() {
    let s = set(NHS_AND_ULN);
    assert_eq!(
        hits(&s, "NHS number 943 476 5919."),
        vec![(
            "uk_nhs_number".into(),
            "943 476 5919".into(),
            Confidence::High
        )]
    );
    assert_eq!(
        hits(&s, "ref 943 476 5919."),
        vec![(
            "uk_nhs_number".into(),
            "943 476 5919".into(),
            Confidence::Low
        )]
    );
    assert!(hits(&s, "Tel: 9434765919").is_empty());
    // The nearer word wins: the NHS label is closer than the phone label.
    assert_eq!(hits(&s, "tel 0161 496 0000, NHS 9434765919").len(), 1);
}

#[test]
fn two_detectors_can_match_the_same_characters() {
    let s = set(NHS_AND_ULN);
    // 9276308686 is a valid ULN; is it also a valid NHS number? Either way the
    // ULN must be found with its context, whatever the NHS detector says.
    let found = hits(&s, "ULN 9276308686");
    assert!(
        found
            .iter()
            .any(|(d, v, c)| d == "uk_uln" && v == "9276308686" && *c == Confidence::High),
        "{found:?}"
    );
}

#[test]
fn failed_checksums_are_not_findings() {
    let s = set(NHS_AND_ULN);
    assert!(hits(&s, "NHS number 943 476 5918").is_empty());
}

#[test]
fn words_inside_other_words_are_not_context() {
    let s = set(NHS_AND_ULN);
    // "uln" inside "vulnerable" is not the ULN label.
    assert!(hits(&s, "vulnerable 9276308686").is_empty());
}

#[test]
fn line_scope_keeps_context_on_its_line() {
    let s = set(r#"
[[detector]]
id = "date_of_birth"
patterns = ['\b\d{1,2}/\d{1,2}/\d{4}\b']
validator = "date_of_birth"
context = ["dob", "date of birth"]
context_scope = "line"
context_window = 60
confidence_with_context = "high"
confidence_without_context = "none"
"#);
    assert_eq!(hits(&s, "DOB: 04/05/2014").len(), 1);
    assert!(hits(&s, "DOB: 04/05/2014\nStart date: 03/09/2024").len() == 1);
    assert!(hits(&s, "Sports day is on 12/07/2025").is_empty());
}

#[test]
fn problems_are_reported_with_file_line_and_column() {
    let err = DetectorSet::from_toml_str(
        "d.toml",
        r#"
[[detector]]
id = "Bad-Id"
patterns = ['(unclosed']
validator = "nope"
confidence_with_context = "high"
confidence_without_context = "sometimes"
"#,
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("d.toml:3:6: detector id `Bad-Id`"), "{err}");
    assert!(err.contains("d.toml:4:13: bad regular expression"), "{err}");
    assert!(
        err.contains("d.toml:5:13: unknown validator `nope`"),
        "{err}"
    );
    assert!(err.contains("d.toml:7:30: confidence `sometimes`"), "{err}");
}

#[test]
fn unknown_keys_and_duplicates_are_refused() {
    let err = DetectorSet::from_toml_str("d.toml", "[[detector]]\nid = \"a\"\npattern = ['x']\n")
        .unwrap_err()
        .to_string();
    assert!(err.starts_with("d.toml:3:1:"), "{err}");
    let dup = "[[detector]]\nid = \"a\"\npatterns = ['x']\nconfidence_with_context = \"low\"\nconfidence_without_context = \"low\"\n";
    let err = DetectorSet::from_toml_str("d.toml", &format!("{dup}{dup}"))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("d.toml:7:6: detector `a` is already defined at d.toml:2"),
        "{err}"
    );
}

#[test]
fn patterns_matching_nothing_are_refused() {
    let err = DetectorSet::from_toml_str("d.toml", "[[detector]]\nid = \"a\"\npatterns = ['x*']\nconfidence_with_context = \"low\"\nconfidence_without_context = \"low\"\n").unwrap_err().to_string();
    assert!(err.contains("matches the empty string"), "{err}");
}

#[test]
fn masking_keeps_the_last_three() {
    assert_eq!(mask("943 476 5919"), "*******919");
    assert_eq!(mask("AB 12 34 56 C"), "******56C");
    assert_eq!(mask("ab"), "ab");
}

#[test]
fn exclusion_words_count_only_on_the_matchs_line() {
    let s = set(NHS_AND_ULN);
    // A CSV row read as `Header: value` lines: the next column's header is on
    // the next line and says nothing about this cell.
    assert_eq!(
        hits(
            &s,
            "Name: Amira Ashdown\nNHS number: 943 476 5919\nTel: 0161 496 0000\n"
        ),
        vec![(
            "uk_nhs_number".into(),
            "943 476 5919".into(),
            Confidence::High
        )]
    );
    assert_eq!(
        hits(&s, "943 476 5919\nmob"),
        vec![(
            "uk_nhs_number".into(),
            "943 476 5919".into(),
            Confidence::Low
        )]
    );
    // On its own line an exclusion word still drops the number.
    assert!(hits(&s, "NHS\nTel: 943 476 5919").is_empty());
    assert!(hits(&s, "Mob 943 476 5919\nSee you then").is_empty());
}

#[test]
fn exclude_scope_window_lets_exclusion_words_reach_other_lines() {
    let s = set(r#"
[[detector]]
id = "n"
patterns = ['\b[1-9]\d{9}\b']
validator = "nhs_mod11"
context = ["nhs"]
exclude = ["tel"]
exclude_scope = "window"
confidence_with_context = "high"
confidence_without_context = "low"
"#);
    assert!(hits(&s, "9434765919\nTel").is_empty());
    assert_eq!(
        hits(&s, "NHS 9434765919\nTel").len(),
        1,
        "the nearer label wins"
    );
}

#[test]
fn exclude_wins_on_the_line_even_when_context_is_nearer() {
    let s = set(r#"
[[detector]]
id = "special_category"
patterns = ['(?i)\basthma\b']
context = ["her", "his"]
exclude = ["policy"]
exclude_window = 300
exclude_scope = "window"
exclude_wins = true
confidence_with_context = "medium"
confidence_without_context = "low"
"#);
    assert!(
        hits(
            &s,
            "Under this policy a pupil with asthma keeps his or her inhaler in class."
        )
        .is_empty()
    );
    // On another line the nearer label still decides.
    assert_eq!(
        hits(&s, "See the policy.\nHer asthma is worse this week."),
        vec![(
            "special_category".into(),
            "asthma".into(),
            Confidence::Medium
        )]
    );
    assert!(hits(&s, "Policy:\nasthma").is_empty());
}

#[test]
fn a_detector_reports_one_hit_where_two_of_its_patterns_match() {
    let s = set(r#"
[[detector]]
id = "payment_card"
patterns = ['\b\d{4}[ -]?\d{4}[ -]?\d{4}[ -]?\d{4}\b', '\b\d{13,19}\b']
validator = "luhn_card"
context = ["card"]
confidence_with_context = "high"
confidence_without_context = "medium"

[[detector]]
id = "long_number"
patterns = ['\b\d{16}\b']
confidence_with_context = "low"
confidence_without_context = "low"
"#);
    let found = hits(&s, "Card 4111111111111111 and card 4111 1111 1111 1111");
    let cards: Vec<_> = found.iter().filter(|h| h.0 == "payment_card").collect();
    assert_eq!(cards.len(), 2, "{found:?}");
    // Another detector on the same characters is still its own finding.
    assert_eq!(found.iter().filter(|h| h.0 == "long_number").count(), 1);
}

#[test]
fn a_pattern_too_large_to_compile_is_a_problem_at_its_line() {
    let err = DetectorSet::from_toml_str(
        "big.toml",
        "[[detector]]\nid = \"big\"\npatterns = ['\\d{1000}{1000}']\nconfidence_with_context = \"low\"\nconfidence_without_context = \"low\"\n",
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.starts_with("big.toml:3:13: bad regular expression: too large"),
        "{err}"
    );
}

#[test]
fn patterns_too_large_together_are_a_problem_not_a_panic() {
    // Each compiles on its own; the automaton of all of them is over the
    // size limit. The problem points at the one that takes it over.
    let one = |id: &str| {
        format!(
            "[[detector]]\nid = \"{id}\"\npatterns = ['X\\d{{100}}{{1000}}']\nconfidence_with_context = \"low\"\nconfidence_without_context = \"low\"\n"
        )
    };
    let src = format!("{}\n{}", one("first"), one("second"));
    let err = DetectorSet::from_toml_str("big.toml", &src)
        .unwrap_err()
        .to_string();
    assert!(
        err.starts_with(
            "big.toml:9:13: all detectors' patterns together would compile to more than 10 MiB"
        ),
        "{err}"
    );
    assert_eq!(err.lines().count(), 1, "{err}");
}

#[test]
fn bad_exclude_scope_is_a_problem() {
    let err = DetectorSet::from_toml_str(
        "d.toml",
        "[[detector]]\nid = \"a\"\npatterns = ['x']\nexclude_scope = \"page\"\nconfidence_with_context = \"low\"\nconfidence_without_context = \"low\"\n",
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("d.toml:4:17: exclude_scope `page` must be line or window"),
        "{err}"
    );
}

#[test]
fn a_detector_is_named_by_its_name_then_its_description_then_its_id() {
    let s = set(
        "[[detector]]\nid = \"a\"\ndescription = \"Thing (with checks)\"\nname = \"things\"\npatterns = ['x\\d']\nconfidence_with_context = \"high\"\nconfidence_without_context = \"high\"\n\
         [[detector]]\nid = \"b\"\ndescription = \"Staff payroll number\"\npatterns = ['y\\d']\nconfidence_with_context = \"high\"\nconfidence_without_context = \"high\"\n\
         [[detector]]\nid = \"c\"\nname = \" \"\npatterns = ['z\\d']\nconfidence_with_context = \"high\"\nconfidence_without_context = \"high\"\n",
    );
    assert_eq!(s.name_of("a"), Some("things"));
    assert_eq!(s.name_of("b"), Some("Staff payroll number"));
    assert_eq!(s.name_of("c"), Some("c"));
    assert_eq!(s.name_of("gone"), None);
}

mod shipped;
