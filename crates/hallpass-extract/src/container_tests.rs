//! Archives and documents built in code, sent through `read_message` as real
//! MIME attachments.

use super::*;

fn limits() -> Limits {
    hallpass_core::Config::defaults_for(&["lumen.sch.uk"], &[]).limits
}

fn message_with(body: &str, name: &str, data: &[u8]) -> Vec<u8> {
    hallpass_fixtures::message_with("files", "p@example.com", body, name, data)
}

struct Read {
    text: Vec<(String, String)>,
    info: MessageInfo,
}

impl Read {
    fn at(&self, loc: &str) -> String {
        self.text
            .iter()
            .filter(|(l, _)| l == loc)
            .map(|(_, t)| t.as_str())
            .collect::<Vec<_>>()
            .join("\n")
    }
    fn attachment(&self, loc: &str) -> &hallpass_core::AttachmentInfo {
        self.info
            .attachments
            .iter()
            .find(|a| a.location.as_str() == loc)
            .unwrap_or_else(|| panic!("no {loc} in {:?}", self.info.attachments))
    }
}

fn read(raw: &[u8], limits: &Limits) -> Read {
    let mut text = Vec::new();
    let info = read_message(raw, limits, &mut |s| {
        text.push((s.location.to_string(), s.text.to_string()))
    });
    Read { text, info }
}

use hallpass_fixtures::{Cell, Protection, docx, xlsx, zip_of, zipcrypto};

const CSV: &[u8] = b"Name,NHS number\r\nAmy Pond,943 476 5919\r\n";

#[test]
fn zip_members_are_read_through_sniffing_with_nested_locations() {
    let inner = zip_of(&[("pupils/list.csv", CSV)], Protection::None);
    let outer = zip_of(
        &[("inner.zip", &inner), ("readme.txt", b"see inside")],
        Protection::None,
    );
    let r = read(
        &message_with("files attached", "reports.zip", &outer),
        &limits(),
    );
    assert!(
        r.at("attachment:reports.zip/inner.zip/pupils_list.csv")
            .contains("NHS number: 943 476 5919"),
        "{:?}",
        r.text
    );
    assert_eq!(r.attachment("attachment:reports.zip").kind, "zip");
    assert!(r.info.unscannable.is_empty(), "{:?}", r.info.unscannable);
}

#[test]
fn an_aes_zip_without_its_password_is_encrypted_not_unscannable() {
    let z = zip_of(&[("list.csv", CSV)], Protection::Aes("Tulip42"));
    let r = read(
        &message_with("Please find the list attached.", "list.zip", &z),
        &limits(),
    );
    let a = r.attachment("attachment:list.zip");
    assert!(
        a.encrypted && !a.scanned && a.unscannable.is_none(),
        "{a:?}"
    );
    assert!(r.at("attachment:list.zip/list.csv").is_empty());
    assert_eq!(r.info.password_in_message, None);
}

#[test]
fn the_password_in_the_same_message_opens_an_aes_zip() {
    let z = zip_of(&[("list.csv", CSV)], Protection::Aes("Tulip42"));
    let r = read(
        &message_with("The password is Tulip42.", "list.zip", &z),
        &limits(),
    );
    assert_eq!(
        r.info.password_in_message,
        Some(hallpass_core::Confidence::High)
    );
    assert!(
        r.at("attachment:list.zip/list.csv")
            .contains("943 476 5919"),
        "decrypted content is scanned"
    );
    assert!(r.attachment("attachment:list.zip").encrypted);
}

#[test]
fn zipcrypto_is_recognised_and_opened_by_the_right_password_only() {
    let z = zipcrypto("list.csv", CSV, b"Blue-Door-7");
    let wrong = read(&message_with("pw: Red-Door-8", "list.zip", &z), &limits());
    assert!(wrong.attachment("attachment:list.zip").encrypted);
    assert_eq!(
        wrong.info.password_in_message,
        Some(hallpass_core::Confidence::Medium),
        "a stated password that does not open it"
    );
    assert!(wrong.at("attachment:list.zip/list.csv").is_empty());
    let right = read(&message_with("pw: Blue-Door-7", "list.zip", &z), &limits());
    assert_eq!(
        right.info.password_in_message,
        Some(hallpass_core::Confidence::High)
    );
    assert!(
        right
            .at("attachment:list.zip/list.csv")
            .contains("943 476 5919")
    );
}

#[test]
fn a_high_ratio_member_is_refused_without_unpacking_it_all() {
    let bomb = hallpass_fixtures::zip_bomb(50);
    assert!(bomb.len() < 200_000, "the bomb is small: {}", bomb.len());
    let r = read(&message_with("x", "bomb.zip", &bomb), &limits());
    let reason = &r.attachment("attachment:bomb.zip/zeros.txt").unscannable;
    assert!(
        reason.as_deref().is_some_and(|x| x.contains("zip bomb")),
        "{:?}",
        r.info.attachments
    );
}

#[test]
fn nested_archives_stop_at_the_depth_limit() {
    let z = hallpass_fixtures::nested_zip(8, &zip_of(&[("list.csv", CSV)], Protection::None));
    let r = read(&message_with("x", "deep.zip", &z), &limits());
    assert!(
        r.info
            .unscannable
            .iter()
            .any(|(_, why)| why.contains("nested")),
        "{:?}",
        r.info.unscannable
    );
}

#[test]
fn the_message_budget_caps_many_modest_members() {
    let chunk = vec![b'a'; 1 << 20];
    let files: Vec<(String, &[u8])> = (0..30)
        .map(|i| (format!("f{i}.txt"), chunk.as_slice()))
        .collect();
    let refs: Vec<(&str, &[u8])> = files.iter().map(|(n, d)| (n.as_str(), *d)).collect();
    let z = zip_of(&refs, Protection::None);
    let l = Limits {
        max_decompressed_bytes: 8 << 20,
        ..limits()
    };
    let r = read(&message_with("x", "many.zip", &z), &l);
    assert!(
        r.info
            .unscannable
            .iter()
            .any(|(_, why)| why.contains("unpacked")),
        "{:?}",
        r.info.unscannable
    );
}

#[test]
fn a_damaged_zip_is_unscannable() {
    let mut z = zip_of(&[("list.csv", CSV)], Protection::None);
    z.truncate(z.len() / 2);
    let r = read(&message_with("x", "broken.zip", &z), &limits());
    assert!(r.attachment("attachment:broken.zip").unscannable.is_some());
}

#[test]
fn docx_text_comes_from_the_document_and_its_footers_even_when_renamed() {
    let d = docx(&["NHS number 943 476 5919"], "Pupil UPN in footer");
    let r = read(&message_with("report", "report.pdf", &d), &limits());
    assert_eq!(r.attachment("attachment:report.pdf").kind, "docx");
    let t = r.at("attachment:report.pdf");
    assert!(
        t.contains("NHS number 943 476 5919") && t.contains("Pupil UPN in footer"),
        "{t}"
    );
}

#[test]
fn xlsx_numbers_and_date_serials_are_read_as_people_write_them() {
    let text = |t: &str| Cell::Text(t.into());
    let (dob, serial) = hallpass_fixtures::date_of_birth(&mut hallpass_fixtures::Rng::new(3));
    let x = xlsx(
        "Class 4B",
        &[
            vec![text("Name"), text("NHS number"), text("DOB")],
            vec![
                text("Amy Pond"),
                Cell::Number(9434765919.0),
                Cell::Number(f64::from(serial)),
            ],
        ],
    );
    let r = read(&message_with("list", "class.xlsx", &x), &limits());
    assert_eq!(r.attachment("attachment:class.xlsx").kind, "xlsx");
    let t = r.at("attachment:class.xlsx");
    assert!(t.contains("Sheet: Class 4B"), "{t}");
    assert!(t.contains("NHS number: 9434765919"), "{t}");
    assert!(
        t.contains(&format!("DOB: {dob}")),
        "a date serial under a DOB header: {t}"
    );
}

#[test]
fn encrypted_office_documents_are_recognised() {
    let bytes = hallpass_fixtures::encrypted_office(&mut hallpass_fixtures::Rng::new(1));
    let r = read(
        &message_with("report attached, password to follow", "report.docx", &bytes),
        &limits(),
    );
    let a = r.attachment("attachment:report.docx");
    assert!(a.encrypted && a.unscannable.is_none(), "{a:?}");
    assert_eq!(
        r.info.password_in_message, None,
        "'password to follow' is not a password"
    );
}

#[test]
fn encrypted_office_with_a_stated_password_is_medium() {
    let bytes = hallpass_fixtures::encrypted_office(&mut hallpass_fixtures::Rng::new(2));
    let r = read(
        &message_with("The password is Summer2026", "report.docx", &bytes),
        &limits(),
    );
    assert_eq!(
        r.info.password_in_message,
        Some(hallpass_core::Confidence::Medium)
    );
}

#[test]
fn legacy_word_text_runs_are_read() {
    let bytes = hallpass_fixtures::legacy_doc("Referral for Amy, NHS number 943 476 5919");
    let r = read(&message_with("x", "old.doc", &bytes), &limits());
    assert_eq!(r.attachment("attachment:old.doc").kind, "doc");
    assert!(r.at("attachment:old.doc").contains("943 476 5919"));
}

#[test]
fn rar_and_7z_with_encrypted_headers_are_encrypted_others_unscannable() {
    // RAR 4 main header with the "headers encrypted" flag.
    let rar = b"Rar!\x1A\x07\x00\xCF\x90\x73\x80\x00\x0D\x00\x00\x00\x00\x00\x00\x00".to_vec();
    let r = read(&message_with("x", "a.rar", &rar), &limits());
    assert!(r.attachment("attachment:a.rar").encrypted);
    let plain = b"Rar!\x1A\x07\x00\xCF\x90\x73\x00\x00\x0D\x00\x00\x00\x00\x00\x00\x00".to_vec();
    let r = read(&message_with("x", "b.rar", &plain), &limits());
    assert!(r.attachment("attachment:b.rar").unscannable.is_some());
}
