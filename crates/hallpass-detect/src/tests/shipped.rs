//! The shipped detector files (`detectors/*.toml`) on the sentences they were
//! tuned for: what they must find, and the look-alikes they must let go.

use std::path::Path;
use std::sync::LazyLock;

use super::*;

static SHIPPED: LazyLock<DetectorSet> = LazyLock::new(|| {
    DetectorSet::load_dir(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../../detectors"))
        .unwrap_or_else(|e| panic!("{e}"))
});

/// The detectors found in `text`, with their confidence.
fn found(text: &str) -> Vec<(String, Confidence)> {
    hits(&SHIPPED, text)
        .into_iter()
        .map(|(d, _, c)| (d, c))
        .collect()
}

/// The confidence `detector` gives `text`, when it fires once.
fn one(text: &str, detector: &str) -> Option<Confidence> {
    let all = found(text);
    let mine: Vec<_> = all.iter().filter(|(d, _)| d == detector).collect();
    assert!(mine.len() <= 1, "{detector} fired more than once: {all:?}");
    mine.first().map(|(_, c)| *c)
}

#[test]
fn nhs_number_in_a_table_row_before_a_tel_column() {
    let row = "Name: Amira Ashdown\nNHS number: 943 476 5919\nTel: 0161 496 0123\n\n";
    assert_eq!(one(row, "uk_nhs_number"), Some(Confidence::High));
    assert_eq!(one("Tel: 943 476 5919", "uk_nhs_number"), None);
}

#[test]
fn dots_separate_nhs_and_card_numbers() {
    assert_eq!(
        one("NHS no. 943.476.5919", "uk_nhs_number"),
        Some(Confidence::High)
    );
    assert_eq!(
        one(
            "Card number 4111.1111.1111.1111, expiry 04/29",
            "payment_card"
        ),
        Some(Confidence::High)
    );
    assert_eq!(
        one("Amex 3782.822463.10005", "payment_card"),
        Some(Confidence::High)
    );
}

#[test]
fn a_card_number_matched_by_two_patterns_counts_once() {
    assert_eq!(
        found("Card: 4111111111111111"),
        vec![("payment_card".into(), Confidence::High)]
    );
}

#[test]
fn iban_in_lower_case() {
    assert_eq!(
        one("IBAN gb82 west 1234 5698 7654 32", "iban"),
        Some(Confidence::High)
    );
    assert_eq!(
        one("IBAN Gb82West12345698765432", "iban"),
        Some(Confidence::High)
    );
    assert_eq!(one("iban gb82 west 1234 5698 7654 33", "iban"), None);
}

#[test]
fn dates_of_birth_with_month_names() {
    for text in [
        "DOB: 04-May-2014",
        "DOB 04-May-14",
        "Date of birth: 4th of May 2014",
        "born on 4 May 2014",
        "Date of birth: 4 May 2014",
        "D.O.B. 04 May, 2014",
        "Born May 4th, 2014",
    ] {
        assert_eq!(one(text, "date_of_birth"), Some(Confidence::High), "{text}");
    }
    assert_eq!(one("Trip on 4 May 2014", "date_of_birth"), None);
}

#[test]
fn birthdays_of_events_are_not_dates_of_birth() {
    for text in [
        "Birthday party: 04/10/2025",
        "The birthday celebration assembly was on 06/11/2025",
        "Born Free concert, 12-Mar-2025",
        "Birthday cake sale 4th of May 2025",
    ] {
        assert_eq!(one(text, "date_of_birth"), None, "{text}");
    }
    // The birth label next to the date wins over an event further along.
    assert_eq!(
        one("DOB: 04/05/2014 (trip list)", "date_of_birth"),
        Some(Confidence::High)
    );
}

#[test]
fn new_special_category_terms_about_a_person() {
    for text in [
        "She has an EHC plan from the council.",
        "His SEMH needs mean he works in the nurture room.",
        "He is on a child in need plan.",
        "Her CIN plan review is on Tuesday.",
        "He had two seizures at lunch.",
        "His epilepsy is well controlled.",
        "She told us she is transgender.",
        "We discussed his gender identity with mum.",
        "Her self-harm was disclosed to the DSL.",
        "Her eating disorder has been referred.",
        "He is a looked-after child.",
        "His LAC review is next week.",
        "She is LAC and her PEP is due.",
        "Her CLA status changed in June.",
    ] {
        assert_eq!(
            one(text, "special_category"),
            Some(Confidence::Medium),
            "{text}"
        );
    }
}

#[test]
fn look_alikes_of_the_new_terms_are_not_special_category() {
    for text in [
        "Wear spots for Children in Need on Friday; her class raised £40.",
        "Our CLA licence covers photocopying for his class.",
        "Please send her kit in a CIN-branded bag.",
        "The lac of the shirt is torn.",
    ] {
        assert_eq!(one(text, "special_category"), None, "{text}");
    }
}

#[test]
fn on_a_policy_line_the_exclusion_wins_over_a_nearer_person_word() {
    assert_eq!(
        one(
            "Under this policy, a pupil with asthma must keep his or her inhaler in class.",
            "special_category"
        ),
        None
    );
    // A letter about one pupil still counts.
    assert_eq!(
        one("Her asthma is worse this week.", "special_category"),
        Some(Confidence::Medium)
    );
}

#[test]
fn nino_shaped_part_numbers_are_not_ni_numbers() {
    for text in [
        "Part number AB123456C is out of stock.",
        "Model: AB 12 34 56 C",
        "Serial AB123456C",
        "SKU AB123456C",
        "Order ref AB123456C",
    ] {
        assert_eq!(one(text, "uk_nino"), None, "{text}");
    }
    assert_eq!(
        one("NI number AB 12 34 56 C", "uk_nino"),
        Some(Confidence::High)
    );
}

#[test]
fn credentials_are_values_not_sentences() {
    for text in [
        "Password: must be changed at first login",
        "password: reset-link sent to your email",
        "Password: Changed yesterday",
        "password is needed for the portal",
    ] {
        assert_eq!(one(text, "credential"), None, "{text}");
    }
    for text in [
        "Password: Kestrel-Lantern-7429",
        "password: kestrel-lantern",
        "password is Tulip42",
        "password: changeme",
    ] {
        assert_eq!(one(text, "credential"), Some(Confidence::Medium), "{text}");
    }
}

#[test]
fn every_shipped_detector_has_a_plain_name_for_teachers() {
    for d in SHIPPED.detectors() {
        let name = d.name();
        assert_ne!(name, d.id().as_str(), "{} needs a `name`", d.id().as_str());
        assert_ne!(name, d.description(), "{} needs a `name`", d.id().as_str());
        assert!(!name.contains('_'), "{name}: words, not an id");
    }
}
