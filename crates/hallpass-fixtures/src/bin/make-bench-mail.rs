//! Writes the messages `bench/memory.sh` measures, into the folder named on
//! the command line (never into the repository: the large one is ~35 MB):
//!
//! - `large.eml`: a ~35 MB message (just under the 35 MiB SMTP size limit)
//!   with the attachments a school sends: a PDF report with photographs, a
//!   DOCX newsletter with pictures, an XLSX and a CSV class list, and a ZIP
//!   of more of the same. Most of its bytes are pictures, as in real mail;
//!   its text stays within the 64 MiB text limit, so all of it is read.
//! - `nested_bomb.eml`: a 42.zip-style bomb: ZIPs of 16 ZIPs, four levels
//!   deep, around a 1 GiB file of zeros (64 TiB if all were unpacked).
//! - `flat_bomb.eml`: one ZIP of 256 members, each 64 MiB of zeros.
//! - `pdf_bomb.eml`: a PDF whose page inflates to 1 GiB.
//! - `plain.eml`: a short plain-text message, the baseline.
//!
//! `cargo run --release -p hallpass-fixtures --bin make-bench-mail -- DIR`

use std::fmt::Write as _;
use std::io::{Cursor, Write as _};
use std::path::PathBuf;

use hallpass_fixtures::*;
use zip::write::SimpleFileOptions;

const PARENT: &str = "Parent <parent@example.com>";

/// `n` bytes that do not compress, standing in for JPEG photographs.
fn photo(rng: &mut Rng, n: usize) -> Vec<u8> {
    let mut v = Vec::with_capacity(n);
    v.extend_from_slice(b"\xFF\xD8\xFF\xE0");
    while v.len() < n {
        v.extend_from_slice(&rng.below(u64::MAX).to_le_bytes());
    }
    v.truncate(n);
    v
}

/// A class list of `n` pupils as CSV and as spreadsheet rows.
fn class_list(rng: &mut Rng, n: usize) -> (String, Vec<Vec<Cell>>) {
    let mut csv = String::from("Name,UPN,Date of birth,NHS number\r\n");
    let mut rows = vec![
        ["Name", "UPN", "Date of birth", "NHS number"]
            .iter()
            .map(|h| Cell::Text(h.to_string()))
            .collect::<Vec<_>>(),
    ];
    for i in 0..n {
        let (upn, (dob, serial), nhs) = (upn(rng), date_of_birth(rng), nhs_number(rng));
        let name = format!("Pupil {}", i + 1);
        let _ = write!(csv, "{name},{upn},{dob},{nhs}\r\n");
        rows.push(vec![
            Cell::Text(name),
            Cell::Text(upn),
            Cell::Date(serial),
            Cell::Text(nhs),
        ]);
    }
    (csv, rows)
}

/// A message from a member of staff with `attachments`.
fn message(subject: &str, to: &str, body: &str, attachments: &[(&str, &[u8])]) -> Vec<u8> {
    let mut m = format!(
        "From: Teacher <teacher@lumen.sch.uk>\r\nTo: {to}\r\nSubject: {subject}\r\nDate: Mon, 23 Nov 2026 09:00:00 +0000\r\nMessage-ID: <bench-{}@lumen.sch.uk>\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"hp-boundary\"\r\n\r\n--hp-boundary\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n{body}\r\n",
        subject.replace(' ', "-")
    );
    for (name, data) in attachments {
        let _ = write!(
            m,
            "--hp-boundary\r\nContent-Type: application/octet-stream; name=\"{name}\"\r\nContent-Disposition: attachment; filename=\"{name}\"\r\nContent-Transfer-Encoding: base64\r\n\r\n{}\r\n",
            base64(data)
        );
    }
    m.push_str("--hp-boundary--\r\n");
    m.into_bytes()
}

/// A one-member ZIP of `mib` MiB of zeros, deflated as it is written so the
/// zeros are never all in memory.
fn zeros_zip(name: &str, mib: usize) -> Vec<u8> {
    let mut w = zip::ZipWriter::new(Cursor::new(Vec::new()));
    let options = SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated)
        .large_file(mib >= 4096);
    w.start_file(name, options).expect("in memory");
    let chunk = vec![0u8; 1 << 20];
    for _ in 0..mib {
        w.write_all(&chunk).expect("in memory");
    }
    w.finish().expect("in memory").into_inner()
}

/// A ZIP of `copies` copies of `member`, named `name0.zip`, `name1.zip`, …
fn copies_zip(member: &[u8], copies: usize, prefix: &str) -> Vec<u8> {
    let names: Vec<String> = (0..copies).map(|i| format!("{prefix}{i}.zip")).collect();
    let files: Vec<(&str, &[u8])> = names.iter().map(|n| (n.as_str(), member)).collect();
    zip_of(&files, Protection::None)
}

fn large(rng: &mut Rng) -> Vec<u8> {
    let (csv, rows) = class_list(rng, 30_000);
    let (small_csv, small_rows) = class_list(rng, 2_000);
    let xlsx_list = xlsx("Whole school", &rows);
    let report_lines: Vec<String> = (1..=40)
        .map(|l| format!("Line {l}: attainment summary for Year 5, reading and writing on track."))
        .collect();
    let report_page: Vec<&str> = report_lines.iter().map(String::as_str).collect();
    let pages: Vec<&[&str]> = (0..30).map(|_| report_page.as_slice()).collect();
    let pictures: Vec<Vec<u8>> = (0..4).map(|_| photo(rng, 3_550_000)).collect();
    let picture_refs: Vec<&[u8]> = pictures.iter().map(Vec::as_slice).collect();
    let report = pdf_with_pictures(&pages, &picture_refs);
    let paragraphs: Vec<String> = (1..=3_000)
        .map(|p| {
            format!(
                "Paragraph {p}: news from around the school, trips, clubs and dates for the diary."
            )
        })
        .collect();
    let paragraphs: Vec<&str> = paragraphs.iter().map(String::as_str).collect();
    let media: Vec<(String, Vec<u8>)> = (1..=3)
        .map(|i| (format!("word/media/image{i}.jpeg"), photo(rng, 2_000_000)))
        .collect();
    let media: Vec<(&str, &[u8])> = media
        .iter()
        .map(|(n, d)| (n.as_str(), d.as_slice()))
        .collect();
    let newsletter = docx_with(&paragraphs, "Lumen Primary", &media);
    let zip_photos: Vec<Vec<u8>> = (0..2).map(|_| photo(rng, 1_500_000)).collect();
    let archive = zip_of(
        &[
            ("class.csv", small_csv.as_bytes()),
            ("class.xlsx", &xlsx("Class", &small_rows)),
            (
                "newsletter.docx",
                &docx(&paragraphs[..300], "Lumen Primary"),
            ),
            ("trip1.jpg", &zip_photos[0]),
            ("trip2.jpg", &zip_photos[1]),
        ],
        Protection::None,
    );
    message(
        "End of term pack",
        PARENT,
        "Everything for the end of term is attached.",
        &[
            ("report.pdf", &report),
            ("newsletter.docx", &newsletter),
            ("whole school.xlsx", &xlsx_list),
            ("whole school.csv", csv.as_bytes()),
            ("pack.zip", &archive),
        ],
    )
}

fn main() {
    let dir: PathBuf = std::env::args_os()
        .nth(1)
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            eprintln!("usage: make-bench-mail DIR");
            std::process::exit(2);
        });
    std::fs::create_dir_all(&dir).expect("the output folder can be created");
    let mut rng = Rng::new(35);
    let write = |name: &str, bytes: &[u8]| {
        let path = dir.join(name);
        std::fs::write(&path, bytes).expect("written");
        println!("{:>12} bytes  {}", bytes.len(), path.display());
    };

    write("large.eml", &large(&mut rng));

    // 42.zip: 16 × 16 × 16 × 16 copies of one deflated GiB of zeros.
    let mut nested = zeros_zip("zeros.bin", 1024);
    for level in 0..4 {
        nested = copies_zip(&nested, 16, &format!("level{level}-"));
    }
    write(
        "nested_bomb.eml",
        &message(
            "Photos",
            PARENT,
            "Photos attached.",
            &[("photos.zip", &nested)],
        ),
    );

    let member = zeros_zip("zeros.bin", 64);
    // The same deflated member, 256 times over under different names.
    let flat = {
        let mut w = zip::ZipWriter::new(Cursor::new(Vec::new()));
        let source = zip::ZipArchive::new(Cursor::new(member.as_slice())).expect("in memory");
        let mut source = source;
        for i in 0..256 {
            let file = source.by_index_raw(0).expect("in memory");
            w.raw_copy_file_rename(file, format!("part{i:03}.bin"))
                .expect("in memory");
        }
        w.finish().expect("in memory").into_inner()
    };
    write(
        "flat_bomb.eml",
        &message("Files", PARENT, "Files attached.", &[("files.zip", &flat)]),
    );

    write(
        "pdf_bomb.eml",
        &message(
            "Invoice",
            PARENT,
            "Invoice attached.",
            &[("invoice.pdf", &pdf_bomb(1024))],
        ),
    );

    write(
        "plain.eml",
        b"From: Teacher <teacher@lumen.sch.uk>\r\nTo: Parent <parent@example.com>\r\nSubject: Trip on Friday\r\nDate: Mon, 23 Nov 2026 09:00:00 +0000\r\nMessage-ID: <bench-plain@lumen.sch.uk>\r\n\r\nA reminder that the trip to the museum is on Friday. Please bring a packed lunch.\r\n",
    );
}
