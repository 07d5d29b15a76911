//! Writes `fixtures/attachments/`: messages with attachments in every format
//! hallpass reads, with their expected verdicts in `manifest.toml`.
//!
//! `cargo run -p hallpass-fixtures --bin make-fixtures` from the repository
//! root. The output is deterministic except for AES salts and initialisation
//! vectors, which the zip crate and lopdf draw at random.

use std::fmt::Write as _;
use std::path::Path;

use hallpass_fixtures::*;

struct Fixture {
    file: &'static str,
    about: &'static str,
    verdict: &'static str,
    rules: &'static [&'static str],
    detectors: &'static [&'static str],
    bytes: Vec<u8>,
}

const PARENT: &str = "Parent <parent@example.com>";
const COLLEAGUE: &str = "Head <head@lumen.sch.uk>";

fn class_rows(rng: &mut Rng, n: usize) -> (String, Vec<Vec<Cell>>) {
    let mut csv = String::from("Name,UPN,Date of birth\r\n");
    let mut rows = vec![vec![
        Cell::Text("Name".into()),
        Cell::Text("UPN".into()),
        Cell::Text("Date of birth".into()),
    ]];
    for i in 0..n {
        let (upn, (dob, serial)) = (upn(rng), date_of_birth(rng));
        let name = format!("Pupil {}", i + 1);
        let _ = write!(csv, "{name},{upn},{dob}\r\n");
        rows.push(vec![Cell::Text(name), Cell::Text(upn), Cell::Date(serial)]);
    }
    (csv, rows)
}

fn main() {
    let out = Path::new("fixtures/attachments");
    std::fs::create_dir_all(out)
        .expect("fixtures/attachments can be created (run from the repository root)");
    let mut rng = Rng::new(2026);
    let (csv, rows) = class_rows(&mut rng, 28);
    let nhs = nhs_number(&mut rng);
    let nino = nino(&mut rng);
    let sen_report = [
        "SEN support review - Year 5".to_string(),
        format!("Child: Amy Example. NHS number {nhs}."),
        "Amy has a diagnosis of dyslexia and her EHCP review is due in March.".to_string(),
    ];
    let sen: Vec<&str> = sen_report.iter().map(String::as_str).collect();
    let xlsx_list = xlsx("Class 4B", &rows);
    // A generator of its own, so the fixtures made before these keep their
    // bytes.
    let mut more = Rng::new(4);
    let (dob, _) = date_of_birth(&mut more);
    let referral_nhs = nhs_number(&mut more);
    let referral_lines = [
        "Lumen Primary School - Pupil Services".to_string(),
        "Referral to the school nursing team".to_string(),
        "Pupil: Amy Example, Year 5".to_string(),
        format!("Date of birth: {dob}"),
        format!("NHS number: {referral_nhs}"),
        "Reason for referral: mental health - low mood and anxiety since September.".to_string(),
        "Referred by: Mrs T Teacher, SENCo".to_string(),
    ];
    let referral: Vec<&str> = referral_lines.iter().map(String::as_str).collect();
    let referral_pdf = |lock| pdf(&[&referral], lock);
    let fair: &[&str] = &[
        "Lumen Primary School - Summer Fair",
        "Saturday 4 July, 12 noon to 3pm, on the school field.",
        "Cake stall, tombola and a bouncy castle. All welcome.",
    ];
    let slides: [&[&str]; 2] = [
        &["Transition briefing", "Year 6 to Year 7"],
        &[
            "Pupils needing support",
            "Amy Example has an EHCP for autism; speech and language therapy weekly.",
            &sen_report[1],
        ],
    ];
    let newsletter = [
        "Autumn newsletter",
        "The book fair opens on Monday in the library.",
        "Thank you to all our volunteers.",
    ];

    let fixtures = vec![
        Fixture {
            file: "xlsx_class_list_to_parent.eml",
            about: "XLSX class list (UPN, DOB as date serials) sent to one parent",
            verdict: "hold",
            rules: &["personal_data_external"],
            detectors: &["date_of_birth", "uk_upn"],
            bytes: message_with(
                "Class list",
                PARENT,
                "Here is the list you asked for.",
                "class 4B.xlsx",
                &xlsx_list,
            ),
        },
        Fixture {
            file: "xlsx_class_list_internal.eml",
            about: "the same XLSX class list to a colleague",
            verdict: "deliver",
            rules: &[],
            detectors: &["date_of_birth", "uk_upn"],
            bytes: message_with(
                "Class list",
                COLLEAGUE,
                "Class list for Monday.",
                "class 4B.xlsx",
                &xlsx_list,
            ),
        },
        Fixture {
            file: "xlsx_no_personal_data.eml",
            about: "XLSX of lunch choices with no identifiers",
            verdict: "deliver",
            rules: &[],
            detectors: &[],
            bytes: message_with(
                "Lunch",
                PARENT,
                "Menu attached.",
                "menu.xlsx",
                &xlsx(
                    "Menu",
                    &[
                        vec![Cell::Text("Day".into()), Cell::Text("Main".into())],
                        vec![Cell::Text("Monday".into()), Cell::Text("Pasta bake".into())],
                        vec![Cell::Text("Price".into()), Cell::Number(2.45)],
                    ],
                ),
            ),
        },
        Fixture {
            file: "docx_sen_report_to_parent.eml",
            about: "DOCX SEN report with an NHS number and diagnosis, to a parent",
            verdict: "hold",
            rules: &["personal_data_external"],
            detectors: &["special_category", "uk_nhs_number"],
            bytes: message_with(
                "Review",
                PARENT,
                "Please see the report.",
                "Amy review.docx",
                &docx(&sen, "Lumen Primary"),
            ),
        },
        Fixture {
            file: "docx_renamed_pdf.eml",
            about: "a DOCX renamed .pdf: read by content",
            verdict: "hold",
            rules: &["personal_data_external"],
            detectors: &["special_category", "uk_nhs_number"],
            bytes: message_with(
                "Review",
                PARENT,
                "Report attached.",
                "review.pdf",
                &docx(&sen, "Lumen Primary"),
            ),
        },
        Fixture {
            file: "docx_newsletter.eml",
            about: "DOCX newsletter, no personal data",
            verdict: "deliver",
            rules: &[],
            detectors: &[],
            bytes: message_with(
                "Newsletter",
                PARENT,
                "Our newsletter.",
                "newsletter.docx",
                &docx(&newsletter, "Lumen Primary, 1 Example Road"),
            ),
        },
        Fixture {
            file: "odt_payroll_nino.eml",
            about: "ODT letter with a National Insurance number to an external accountant",
            verdict: "hold",
            rules: &["personal_data_external"],
            detectors: &["uk_nino"],
            bytes: message_with(
                "Payroll",
                "Accounts <accounts@example.org>",
                "Letter attached.",
                "letter.odt",
                &odt(&[&format!("NI number: {nino}")]),
            ),
        },
        Fixture {
            file: "rtf_bank_details.eml",
            about: "RTF with a sort code and account number to a supplier",
            verdict: "hold",
            rules: &["personal_data_external"],
            detectors: &["uk_bank_account"],
            bytes: message_with(
                "Refund",
                "Supplier <sales@example.net>",
                "Details attached.",
                "refund.rtf",
                &rtf(&["Please refund to sort code 40-47-84, account number 70872490."]),
            ),
        },
        Fixture {
            file: "legacy_doc_nhs.eml",
            about: "legacy Word .doc with an NHS number to a parent",
            verdict: "hold",
            rules: &["personal_data_external"],
            detectors: &["uk_nhs_number"],
            bytes: message_with(
                "Letter",
                PARENT,
                "Old letter attached.",
                "letter.doc",
                &legacy_doc(&format!(
                    "Referral letter. Patient NHS number {nhs} seen at clinic."
                )),
            ),
        },
        Fixture {
            file: "zip_nested_reports.eml",
            about: "ZIP holding a ZIP holding the class list CSV and a DOCX",
            verdict: "hold",
            rules: &["personal_data_external"],
            detectors: &[
                "date_of_birth",
                "special_category",
                "uk_nhs_number",
                "uk_upn",
            ],
            bytes: message_with(
                "Reports",
                PARENT,
                "All reports attached.",
                "reports.zip",
                &zip_of(
                    &[(
                        "inner.zip",
                        &zip_of(
                            &[
                                ("class.csv", csv.as_bytes()),
                                ("review.docx", &docx(&sen, "x")),
                            ],
                            Protection::None,
                        ),
                    )],
                    Protection::None,
                ),
            ),
        },
        Fixture {
            file: "aes_zip_no_password.eml",
            about: "AES-encrypted ZIP of the class list, password sent separately",
            verdict: "deliver",
            rules: &[],
            detectors: &[],
            bytes: message_with(
                "Class list",
                PARENT,
                "The list is attached; I will send the password separately.",
                "class.zip",
                &zip_of(
                    &[("class.csv", csv.as_bytes())],
                    Protection::Aes("Tulip-Garden-42"),
                ),
            ),
        },
        Fixture {
            file: "aes_zip_password_in_body.eml",
            about: "AES ZIP with its password in the body: confirmed, decrypted content scanned",
            verdict: "hold",
            rules: &["personal_data_external", "password_in_same_message"],
            detectors: &["credential", "date_of_birth", "uk_upn"],
            bytes: message_with(
                "Class list",
                PARENT,
                "The password is Tulip-Garden-42",
                "class.zip",
                &zip_of(
                    &[("class.csv", csv.as_bytes())],
                    Protection::Aes("Tulip-Garden-42"),
                ),
            ),
        },
        Fixture {
            file: "zipcrypto_password_in_subject.eml",
            about: "ZipCrypto ZIP with 'pw: ...' in the subject",
            verdict: "hold",
            rules: &["personal_data_external", "password_in_same_message"],
            detectors: &["date_of_birth", "uk_upn"],
            bytes: message_with(
                "Class list (pw: Blue-Door-7)",
                PARENT,
                "Attached.",
                "class.zip",
                &zipcrypto("class.csv", csv.as_bytes(), b"Blue-Door-7"),
            ),
        },
        Fixture {
            file: "zipcrypto_wrong_password.eml",
            about: "ZipCrypto ZIP with a stated password that does not open it: medium",
            verdict: "hold",
            rules: &["personal_data_external", "password_in_same_message"],
            detectors: &["credential"],
            bytes: message_with(
                "Class list",
                PARENT,
                "Password: Red-Door-8",
                "class.zip",
                &zipcrypto("class.csv", csv.as_bytes(), b"Blue-Door-7"),
            ),
        },
        Fixture {
            file: "encrypted_docx_password_separately.eml",
            about: "password-protected Word document, password to follow by phone",
            verdict: "deliver",
            rules: &[],
            detectors: &[],
            bytes: message_with(
                "Report",
                PARENT,
                "The report is protected; I will phone you with the password.",
                "report.docx",
                &encrypted_office(&mut rng),
            ),
        },
        Fixture {
            file: "encrypted_docx_password_in_body.eml",
            about: "password-protected Word document with its password in the body",
            verdict: "hold",
            rules: &["personal_data_external", "password_in_same_message"],
            detectors: &["credential"],
            bytes: message_with(
                "Report",
                PARENT,
                "The password is Summer-Fete-2026.",
                "report.docx",
                &encrypted_office(&mut rng),
            ),
        },
        Fixture {
            file: "zip_bomb_to_parent.eml",
            about: "a 50 MiB-of-zeros ZIP bomb to an external address",
            verdict: "hold",
            rules: &["unscannable"],
            detectors: &[],
            bytes: message_with("Files", PARENT, "Files.", "files.zip", &zip_bomb(50)),
        },
        Fixture {
            file: "zip_bomb_internal.eml",
            about: "the same bomb to a colleague: unscannable but internal",
            verdict: "deliver",
            rules: &[],
            detectors: &[],
            bytes: message_with("Files", COLLEAGUE, "Files.", "files.zip", &zip_bomb(50)),
        },
        Fixture {
            file: "zip_nested_too_deep.eml",
            about: "a class list ZIP nested 8 levels deep",
            verdict: "hold",
            rules: &["unscannable"],
            detectors: &[],
            bytes: message_with(
                "Files",
                PARENT,
                "Files.",
                "deep.zip",
                &nested_zip(
                    8,
                    &zip_of(&[("class.csv", csv.as_bytes())], Protection::None),
                ),
            ),
        },
        Fixture {
            file: "zip_truncated.eml",
            about: "a damaged (truncated) ZIP",
            verdict: "hold",
            rules: &["unscannable"],
            detectors: &[],
            bytes: message_with("Files", PARENT, "Files.", "broken.zip", &{
                let mut z = zip_of(&[("class.csv", csv.as_bytes())], Protection::None);
                z.truncate(z.len() / 2);
                z
            }),
        },
        Fixture {
            file: "pdf_referral_to_external.eml",
            about: "PDF referral with an NHS number, date of birth and health details, to an external address",
            verdict: "hold",
            rules: &["personal_data_external"],
            detectors: &["date_of_birth", "special_category", "uk_nhs_number"],
            bytes: message_with(
                "Referral",
                "Referrals <referrals@example.org>",
                "Please find the referral attached.",
                "referral.pdf",
                &referral_pdf(PdfLock::None),
            ),
        },
        Fixture {
            file: "pdf_no_personal_data.eml",
            about: "PDF poster with no personal data, to a parent",
            verdict: "deliver",
            rules: &[],
            detectors: &[],
            bytes: message_with(
                "Summer fair",
                PARENT,
                "Poster attached.",
                "fair.pdf",
                &pdf(&[fair], PdfLock::None),
            ),
        },
        Fixture {
            file: "pdf_encrypted_password_in_body.eml",
            about: "the referral PDF with a user password (RC4 128-bit), the password in the body: opened and scanned",
            verdict: "hold",
            rules: &["personal_data_external", "password_in_same_message"],
            detectors: &[
                "credential",
                "date_of_birth",
                "special_category",
                "uk_nhs_number",
            ],
            bytes: message_with(
                "Referral",
                "Referrals <referrals@example.org>",
                "The referral is attached. The password is Marigold-73",
                "referral.pdf",
                &referral_pdf(PdfLock::Rc4_128 {
                    owner: "Owner-Key-5581",
                    user: "Marigold-73",
                }),
            ),
        },
        Fixture {
            file: "pdf_encrypted_password_separately.eml",
            about: "the referral PDF with a user password (AES-256), password sent separately",
            verdict: "deliver",
            rules: &[],
            detectors: &[],
            bytes: message_with(
                "Referral",
                "Referrals <referrals@example.org>",
                "The referral is attached; I will send the password separately.",
                "referral.pdf",
                &referral_pdf(PdfLock::Aes256 {
                    owner: "Owner-Key-5581",
                    user: "Marigold-73",
                }),
            ),
        },
        Fixture {
            file: "pdf_owner_password_only.eml",
            about: "the referral PDF with only an owner password (RC4 40-bit): any reader opens it, so not protection",
            verdict: "hold",
            rules: &["personal_data_external"],
            detectors: &["date_of_birth", "special_category", "uk_nhs_number"],
            bytes: message_with(
                "Referral",
                "Referrals <referrals@example.org>",
                "The referral is attached; it cannot be edited.",
                "referral.pdf",
                &referral_pdf(PdfLock::Rc4_40 {
                    owner: "Owner-Key-5581",
                    user: "",
                }),
            ),
        },
        Fixture {
            file: "pdf_truncated_to_external.eml",
            about: "a damaged (truncated) PDF to an external address",
            verdict: "hold",
            rules: &["unscannable"],
            detectors: &[],
            bytes: message_with(
                "Referral",
                "Referrals <referrals@example.org>",
                "Please find the referral attached.",
                "referral.pdf",
                &{
                    let mut p = referral_pdf(PdfLock::None);
                    p.truncate(p.len() / 2);
                    p
                },
            ),
        },
        Fixture {
            file: "pdf_bomb_to_parent.eml",
            about: "a PDF whose page inflates to 256 MiB, past the limit of 200 MiB per message",
            verdict: "hold",
            rules: &["unscannable"],
            detectors: &[],
            bytes: message_with("Invoice", PARENT, "Invoice.", "invoice.pdf", &pdf_bomb(256)),
        },
        Fixture {
            file: "ods_class_list_to_parent.eml",
            about: "ODS class list (UPN, dates of birth as date cells) sent to one parent",
            verdict: "hold",
            rules: &["personal_data_external"],
            detectors: &["date_of_birth", "uk_upn"],
            bytes: message_with(
                "Class list",
                PARENT,
                "Here is the list you asked for.",
                "class 4B.ods",
                &ods("Class 4B", &rows),
            ),
        },
        Fixture {
            file: "pptx_transition_briefing_to_parent.eml",
            about: "PPTX slides naming a pupil's EHCP, diagnosis and NHS number, to a parent",
            verdict: "hold",
            rules: &["personal_data_external"],
            detectors: &["special_category", "uk_nhs_number"],
            bytes: message_with(
                "Transition",
                PARENT,
                "Slides from the meeting.",
                "transition.pptx",
                &pptx(&slides),
            ),
        },
        Fixture {
            file: "csv_class_list_to_parent.eml",
            about: "CSV class list with a header row (Name, UPN, Date of birth) sent to one parent",
            verdict: "hold",
            rules: &["personal_data_external"],
            detectors: &["date_of_birth", "uk_upn"],
            bytes: message_with(
                "Class list",
                PARENT,
                "Here is the list you asked for.",
                "class 4B.csv",
                csv.as_bytes(),
            ),
        },
        Fixture {
            file: "rar_encrypted_headers.eml",
            about: "a RAR archive with encrypted headers: recognised protection",
            verdict: "deliver",
            rules: &[],
            detectors: &[],
            bytes: message_with(
                "Files",
                PARENT,
                "Files.",
                "files.rar",
                b"Rar!\x1A\x07\x00\xCF\x90\x73\x80\x00\x0D\x00\x00\x00\x00\x00\x00\x00",
            ),
        },
    ];

    let mut manifest = String::from(
        "# Expected outcome of `hallpass scan` for each file in this folder.\n# Generated by `cargo run -p hallpass-fixtures --bin make-fixtures`; do not edit by hand.\n",
    );
    for f in &fixtures {
        std::fs::write(out.join(f.file), &f.bytes).expect("fixture written");
        let list = |v: &[&str]| {
            v.iter()
                .map(|s| format!("{s:?}"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let _ = write!(
            manifest,
            "\n[[message]]\nfile = {:?}\nabout = {:?}\nverdict = {:?}\nrules = [{}]\ndetectors = [{}]\n",
            f.file,
            f.about,
            f.verdict,
            list(f.rules),
            list(f.detectors)
        );
    }
    std::fs::write(out.join("manifest.toml"), manifest).expect("manifest written");
    println!("wrote {} fixtures to {}", fixtures.len(), out.display());
}
