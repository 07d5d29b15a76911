//! Throughput of the engine on one core.
//!
//! - `detect_plain_text`: a large plain-text body (8 MiB of school prose with an
//!   identifier every few kilobytes) through every shipped detector. Target:
//!   at least 100 MB/s.
//! - `scan_typical_message`: synthetic 10 KB messages of typical school mail
//!   (plain, HTML alternatives, CSV attachments, a third carrying personal
//!   data) through parse + extract + detect + policy. Target: at least 3,000
//!   messages/s.
//!
//! Run with `cargo bench -p hallpass-engine`; divan prints bytes/s and items/s.

use std::path::Path;

use divan::counter::{BytesCount, ItemsCount};
use hallpass_core::Config;
use hallpass_engine::{Engine, ScanOptions};

fn main() {
    divan::main();
}

const OPTS: ScanOptions = ScanOptions {
    today: (2026, 11, 23),
    explain: false,
    sender_window_count: None,
};

fn engine() -> Engine {
    let mut config = Config::defaults_for(&["lumen.sch.uk"], &["council.gov.uk"]);
    config.detectors.path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../detectors");
    Engine::load(config).expect("shipped detectors load")
}

/// Prose of the kind a school sends, with dates, times, phone numbers, prices
/// and room numbers: the numbers the detectors must look at and let go.
const PROSE: &[&str] = &[
    "Dear parents and carers, thank you for your support with the Year 4 trip to the science museum on 12/03/2026. ",
    "The coach leaves at 08:45 and returns by 15:30; please bring a packed lunch and a waterproof coat. ",
    "If you have any questions please call the school office on 0161 496 0123 or reply to this email. ",
    "Payments of £12.50 can be made through the parent portal before Friday 6 March, reference TRIP-2026-04. ",
    "Our next INSET day is Monday 20 April and the school will be closed to pupils on that day. ",
    "Room 14 will be used for the book fair from 3.15pm; Mrs Patel's class will visit first. ",
    "Minutes of the governors' meeting held on 3 February are attached for information. ",
    "The new timetable for Key Stage 2 starts after half term; sets will be reviewed in July. ",
];

const PERSONAL: &[&str] = &[
    "NHS number 943 476 5919 for the referral. ",
    "DOB: 04/05/2014 ",
    "NI number AB 12 34 56 C. ",
    "Sort code 40-12-34, account number 31926819. ",
    "Tom's diagnosis of ADHD means his medication is given at lunch. ",
];

fn plain_text(size: usize) -> String {
    let mut s = String::with_capacity(size + 256);
    let mut i = 0;
    while s.len() < size {
        s.push_str(PROSE[i % PROSE.len()]);
        if i % 40 == 39 {
            s.push_str(PERSONAL[(i / 40) % PERSONAL.len()]);
        }
        if i % 6 == 5 {
            s.push('\n');
        }
        i += 1;
    }
    s
}

/// A 10 KB message; `n` picks its shape.
fn message(n: usize) -> Vec<u8> {
    let body = plain_text(6_000);
    let mut m = format!(
        "From: teacher{n}@lumen.sch.uk\r\nTo: parent{n}@example.com\r\nCc: office@lumen.sch.uk\r\nSubject: Year 4 news {n}\r\nMessage-ID: <{n}@lumen.sch.uk>\r\nDate: Mon, 23 Nov 2026 09:00:00 +0000\r\nMIME-Version: 1.0\r\n"
    );
    let personal = if n.is_multiple_of(3) {
        PERSONAL[n % PERSONAL.len()]
    } else {
        ""
    };
    match n % 4 {
        0 | 1 => {
            m.push_str("Content-Type: multipart/alternative; boundary=alt\r\n\r\n--alt\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n");
            m.push_str(&body[..4_000]);
            m.push_str(personal);
            m.push_str(
                "\r\n--alt\r\nContent-Type: text/html; charset=utf-8\r\n\r\n<html><body><p>",
            );
            m.push_str(&body[..4_000].replace('\n', "</p><p>"));
            m.push_str(personal);
            m.push_str("</p></body></html>\r\n--alt--\r\n");
        }
        2 => {
            m.push_str("Content-Type: multipart/mixed; boundary=mix\r\n\r\n--mix\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n");
            m.push_str(&body[..4_000]);
            m.push_str("\r\n--mix\r\nContent-Type: text/csv; name=\"list.csv\"\r\nContent-Disposition: attachment; filename=\"list.csv\"\r\n\r\nName,Class,Lunch\r\n");
            for r in 0..150 {
                m.push_str(&format!(
                    "Pupil {r},4B,{}\r\n",
                    if r % 2 == 0 { "school" } else { "packed" }
                ));
            }
            m.push_str(personal);
            m.push_str("\r\n--mix--\r\n");
        }
        _ => {
            m.push_str("Content-Type: text/plain; charset=utf-8\r\n\r\n");
            m.push_str(&body[..body.len().min(9_500)]);
            m.push_str(personal);
            m.push_str("\r\n");
        }
    }
    m.into_bytes()
}

#[divan::bench]
fn detect_plain_text(bencher: divan::Bencher) {
    let engine = engine();
    let text = plain_text(8 << 20);
    let set = engine.detectors();
    let mut scratch = hallpass_detect::Scratch::new(set);
    let ctx = hallpass_detect::ValidateCtx { today: OPTS.today };
    bencher
        .counter(BytesCount::new(text.len()))
        .bench_local(|| {
            let mut n = 0usize;
            set.scan(&mut scratch, divan::black_box(&text), &ctx, |_| n += 1);
            n
        });
}

/// A CSV export dense with numbers, dates and references: every line gives
/// the digit patterns several candidates to validate.
#[divan::bench]
fn detect_number_dense(bencher: divan::Bencher) {
    let engine = engine();
    let mut text = String::from("Ref,Date,Amount,Phone,Order\n");
    let mut i = 0u64;
    while text.len() < 2 << 20 {
        text.push_str(&format!(
            "{},{:02}/{:02}/2025,{}.{:02},0161 496 {:04},{}\n",
            1_000_000_000 + i * 7919,
            i % 28 + 1,
            i % 12 + 1,
            i * 37 % 1000,
            i % 100,
            i % 10_000,
            4_000_000_000_000_000u64 + i * 104_729
        ));
        i += 1;
    }
    let set = engine.detectors();
    let mut scratch = hallpass_detect::Scratch::new(set);
    let ctx = hallpass_detect::ValidateCtx { today: OPTS.today };
    bencher
        .counter(BytesCount::new(text.len()))
        .bench_local(|| {
            let mut n = 0usize;
            set.scan(&mut scratch, divan::black_box(&text), &ctx, |_| n += 1);
            n
        });
}

#[divan::bench]
fn scan_typical_message(bencher: divan::Bencher) {
    let engine = engine();
    let corpus: Vec<Vec<u8>> = (0..64).map(message).collect();
    let total: usize = corpus.iter().map(Vec::len).sum();
    let mut ws = engine.workspace();
    bencher
        .counter(ItemsCount::new(corpus.len()))
        .counter(BytesCount::new(total))
        .bench_local(|| {
            let mut held = 0;
            for m in &corpus {
                if engine
                    .scan(&mut ws, divan::black_box(m), None, &OPTS)
                    .verdict
                    != hallpass_core::Verdict::Deliver
                {
                    held += 1;
                }
            }
            held
        });
}

/// Messages with one large attachment each, through the whole pipeline.
mod attachments {
    use super::*;
    use hallpass_fixtures::{Cell, Rng, docx, message_with, xlsx};

    fn scan_one(bencher: divan::Bencher, raw: Vec<u8>) {
        let engine = engine();
        let mut ws = engine.workspace();
        bencher.counter(BytesCount::new(raw.len())).bench_local(|| {
            engine
                .scan(&mut ws, divan::black_box(&raw), None, &OPTS)
                .findings
                .len()
        });
    }

    /// A 2,000-row class list (name, UPN, date of birth as a date serial,
    /// NHS number as a number). Target: well under 100 ms.
    #[divan::bench(sample_count = 20)]
    fn xlsx_2000_rows(bencher: divan::Bencher) {
        let mut rng = Rng::new(1);
        let text = |t: &str| Cell::Text(t.to_string());
        let mut rows = vec![vec![
            text("Name"),
            text("UPN"),
            text("Date of birth"),
            text("NHS number"),
        ]];
        for i in 0..2000 {
            let (_, serial) = hallpass_fixtures::date_of_birth(&mut rng);
            let nhs: String = hallpass_fixtures::nhs_number(&mut rng)
                .chars()
                .filter(char::is_ascii_digit)
                .collect();
            rows.push(vec![
                text(&format!("Pupil {i}")),
                text(&hallpass_fixtures::upn(&mut rng)),
                Cell::Number(f64::from(serial)),
                Cell::Number(nhs.parse().unwrap()),
            ]);
        }
        scan_one(
            bencher,
            message_with(
                "List",
                "p@example.com",
                "List attached.",
                "list.xlsx",
                &xlsx("All pupils", &rows),
            ),
        );
    }

    /// A 50-page report (about 25,000 words). Target: well under 100 ms.
    #[divan::bench(sample_count = 20)]
    fn docx_50_pages(bencher: divan::Bencher) {
        let para = "The pupil has made good progress in reading this term and now reads fluently with expression; targets for next term focus on inference and writing at length. ";
        let paras: Vec<String> = (0..1000).map(|i| format!("{i}. {para}")).collect();
        let refs: Vec<&str> = paras.iter().map(String::as_str).collect();
        scan_one(
            bencher,
            message_with(
                "Reports",
                "p@example.com",
                "Reports attached.",
                "reports.docx",
                &docx(&refs, "Lumen Primary"),
            ),
        );
    }
}
