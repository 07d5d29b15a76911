//! Synthetic test data for hallpass, made in code: identifiers with valid
//! check digits (never a real person's: NHS numbers from the 999 range, which
//! is never issued), and attachments in the formats schools send (ZIP plain
//! and encrypted, DOCX, XLSX, PPTX, ODT, ODS, PDF plain and encrypted,
//! encrypted Office, legacy Word, RTF), and bombs, wrapped in MIME messages.
//!
//! Used by tests, and by `make-fixtures`, which writes `fixtures/attachments/`.

use std::io::{Cursor, Write};

use zip::write::SimpleFileOptions;

/// A small deterministic random source (xorshift), so generated files do not
/// change from run to run.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// Seeded.
    pub fn new(seed: u64) -> Rng {
        Rng(seed.max(1))
    }
    /// Next value below `n`.
    pub fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
    fn digits(&mut self, k: usize) -> Vec<u8> {
        (0..k).map(|_| self.below(10) as u8).collect()
    }
}

fn render(d: &[u8]) -> String {
    d.iter().map(|x| char::from(b'0' + x)).collect()
}

/// An NHS number in the never-issued 999 range, with its mod-11 check digit.
pub fn nhs_number(rng: &mut Rng) -> String {
    loop {
        let mut d = vec![9, 9, 9];
        d.extend(rng.digits(6));
        let s: u32 = d
            .iter()
            .enumerate()
            .map(|(i, &x)| u32::from(x) * (10 - i as u32))
            .sum();
        let c = match 11 - s % 11 {
            11 => 0,
            10 => continue,
            c => c as u8,
        };
        d.push(c);
        let t = render(&d);
        return format!("{} {} {}", &t[..3], &t[3..6], &t[6..]);
    }
}

/// A UPN with its check letter (LA 820, a real local-authority number).
pub fn upn(rng: &mut Rng) -> String {
    const ALPHABET: &[u8; 23] = b"ABCDEFGHJKLMNPQRTUVWXYZ";
    let mut body = vec![8, 2, 0];
    body.extend(rng.digits(9));
    let sum: u32 = body
        .iter()
        .enumerate()
        .map(|(i, &v)| u32::from(v) * (i as u32 + 2))
        .sum();
    format!("{}{}", ALPHABET[(sum % 23) as usize] as char, render(&body))
}

/// A National Insurance number with an issued prefix.
pub fn nino(rng: &mut Rng) -> String {
    const FIRST: &[u8] = b"ABCEGHJKLMNOPRSTWXYZ";
    const SECOND: &[u8] = b"ABCEGHJKLMNPRSTWXYZ";
    loop {
        let a = FIRST[rng.below(FIRST.len() as u64) as usize] as char;
        let b = SECOND[rng.below(SECOND.len() as u64) as usize] as char;
        let p = format!("{a}{b}");
        if ["BG", "GB", "KN", "NK", "NT", "TN", "ZZ"].contains(&p.as_str()) {
            continue;
        }
        let d = render(&rng.digits(6));
        let s = (b'A' + rng.below(4) as u8) as char;
        return format!("{p} {} {} {} {s}", &d[..2], &d[2..4], &d[4..]);
    }
}

/// A date of birth of a primary-school pupil, dd/mm/yyyy, and its Excel serial.
pub fn date_of_birth(rng: &mut Rng) -> (String, u32) {
    let (y, m, d) = (
        2014 + rng.below(5) as i64,
        1 + rng.below(12) as i64,
        1 + rng.below(28) as i64,
    );
    // Days from 1970-01-01 (Howard Hinnant's days_from_civil), then the Excel epoch.
    let y2 = if m <= 2 { y - 1 } else { y };
    let era = y2.div_euclid(400);
    let yoe = y2 - era * 400;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    (format!("{d:02}/{m:02}/{y}"), (days + 25_569) as u32)
}

/// A MIME message from a member of staff to `to`, with `body` and one
/// base64 attachment.
pub fn message_with(subject: &str, to: &str, body: &str, name: &str, data: &[u8]) -> Vec<u8> {
    format!(
        "From: Teacher <teacher@lumen.sch.uk>\r\nTo: {to}\r\nSubject: {subject}\r\nDate: Mon, 23 Nov 2026 09:00:00 +0000\r\nMessage-ID: <{}@lumen.sch.uk>\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"hp-boundary\"\r\n\r\n--hp-boundary\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n{body}\r\n--hp-boundary\r\nContent-Type: application/octet-stream; name=\"{name}\"\r\nContent-Disposition: attachment; filename=\"{name}\"\r\nContent-Transfer-Encoding: base64\r\n\r\n{}\r\n--hp-boundary--\r\n",
        name.replace(['.', ' '], "-"),
        base64(data)
    )
    .into_bytes()
}

/// Base64 in 76-character lines.
pub fn base64(data: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for (i, chunk) in data.chunks(3).enumerate() {
        let n = (u32::from(chunk[0]) << 16)
            | (u32::from(*chunk.get(1).unwrap_or(&0)) << 8)
            | u32::from(*chunk.get(2).unwrap_or(&0));
        for k in 0..4 {
            out.push(if k <= chunk.len() {
                A[((n >> (18 - 6 * k)) & 63) as usize] as char
            } else {
                '='
            });
        }
        if i % 19 == 18 {
            out.push_str("\r\n");
        }
    }
    out
}

/// How members of a ZIP are written.
#[derive(Debug, Clone, Copy)]
pub enum Protection<'a> {
    /// Not encrypted.
    None,
    /// WinZip AES-256.
    Aes(&'a str),
}

/// A ZIP of `files`, deflated.
pub fn zip_of(files: &[(&str, &[u8])], protection: Protection<'_>) -> Vec<u8> {
    let mut w = zip::ZipWriter::new(Cursor::new(Vec::new()));
    let base = SimpleFileOptions::default().compression_method(zip::CompressionMethod::Deflated);
    let options = match protection {
        Protection::None => base,
        Protection::Aes(pw) => base.with_aes_encryption(zip::AesMode::Aes256, pw),
    };
    for (name, data) in files {
        w.start_file(*name, options).expect("in memory");
        w.write_all(data).expect("in memory");
    }
    w.finish().expect("in memory").into_inner()
}

/// A one-member ZIP with traditional PKWARE (ZipCrypto) encryption, stored:
/// what Windows tools and 7-Zip write by default. The zip crate reads it but
/// writes only AES, so the writer is here.
pub fn zipcrypto(name: &str, data: &[u8], password: &[u8]) -> Vec<u8> {
    let mut table = [0u32; 256];
    for (i, v) in table.iter_mut().enumerate() {
        let mut c = i as u32;
        for _ in 0..8 {
            c = if c & 1 != 0 {
                0xEDB8_8320 ^ (c >> 1)
            } else {
                c >> 1
            };
        }
        *v = c;
    }
    let crc_byte = |crc: u32, b: u8| table[((crc ^ u32::from(b)) & 0xFF) as usize] ^ (crc >> 8);
    let crc = !data.iter().fold(!0u32, |c, &b| crc_byte(c, b));
    let mut keys = [0x1234_5678u32, 0x2345_6789, 0x3456_7890];
    let update = |keys: &mut [u32; 3], b: u8| {
        keys[0] = crc_byte(keys[0], b);
        keys[1] = keys[1]
            .wrapping_add(keys[0] & 0xFF)
            .wrapping_mul(134_775_813)
            .wrapping_add(1);
        keys[2] = crc_byte(keys[2], (keys[1] >> 24) as u8);
    };
    for &b in password {
        update(&mut keys, b);
    }
    let mut header = [0x5Au8; 12];
    header[11] = (crc >> 24) as u8;
    let mut enc = Vec::new();
    for &p in header.iter().chain(data) {
        let t = (keys[2] | 2) & 0xFFFF;
        enc.push(p ^ ((t * (t ^ 1)) >> 8) as u8);
        update(&mut keys, p);
    }
    let (n, c) = (data.len() as u32, enc.len() as u32);
    let mut z = Vec::new();
    z.extend_from_slice(&0x0403_4B50u32.to_le_bytes());
    z.extend_from_slice(&[20, 0, 1, 0, 0, 0, 0, 0, 0x21, 0]);
    for v in [crc, c, n] {
        z.extend_from_slice(&v.to_le_bytes());
    }
    z.extend_from_slice(&(name.len() as u16).to_le_bytes());
    z.extend_from_slice(&[0, 0]);
    z.extend_from_slice(name.as_bytes());
    z.extend_from_slice(&enc);
    let cd_start = z.len() as u32;
    z.extend_from_slice(&0x0201_4B50u32.to_le_bytes());
    z.extend_from_slice(&[20, 0, 20, 0, 1, 0, 0, 0, 0, 0, 0x21, 0]);
    for v in [crc, c, n] {
        z.extend_from_slice(&v.to_le_bytes());
    }
    z.extend_from_slice(&(name.len() as u16).to_le_bytes());
    z.extend_from_slice(&[0; 16]);
    z.extend_from_slice(name.as_bytes());
    let cd_len = z.len() as u32 - cd_start;
    z.extend_from_slice(&0x0605_4B50u32.to_le_bytes());
    z.extend_from_slice(&[0, 0, 0, 0, 1, 0, 1, 0]);
    z.extend_from_slice(&cd_len.to_le_bytes());
    z.extend_from_slice(&cd_start.to_le_bytes());
    z.extend_from_slice(&[0, 0]);
    z
}

fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// A DOCX whose body has one paragraph per entry of `paragraphs`, and a
/// footer.
pub fn docx(paragraphs: &[&str], footer: &str) -> Vec<u8> {
    docx_with(paragraphs, footer, &[])
}

/// A DOCX like [`docx`], with more members (pictures under `word/media/`,
/// files under `word/embeddings/`).
pub fn docx_with(paragraphs: &[&str], footer: &str, more: &[(&str, &[u8])]) -> Vec<u8> {
    let body: String = paragraphs
        .iter()
        .map(|p| {
            format!(
                "<w:p><w:r><w:t xml:space=\"preserve\">{}</w:t></w:r></w:p>",
                xml_escape(p)
            )
        })
        .collect();
    let doc = format!(
        r#"<?xml version="1.0" encoding="UTF-8" standalone="yes"?><w:document xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main"><w:body>{body}</w:body></w:document>"#
    );
    let foot = format!(
        r#"<?xml version="1.0" encoding="UTF-8"?><w:ftr xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main"><w:p><w:r><w:t>{}</w:t></w:r></w:p></w:ftr>"#,
        xml_escape(footer)
    );
    let mut files: Vec<(&str, &[u8])> = vec![
        ("[Content_Types].xml", br#"<?xml version="1.0"?><Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types"><Default Extension="xml" ContentType="application/xml"/><Override PartName="/word/document.xml" ContentType="application/vnd.openxmlformats-officedocument.wordprocessingml.document.main+xml"/></Types>"#),
        ("word/document.xml", doc.as_bytes()),
        ("word/footer1.xml", foot.as_bytes()),
    ];
    files.extend_from_slice(more);
    zip_of(&files, Protection::None)
}

/// A cell of [`xlsx`] and [`ods`]: text, a number or a date.
#[derive(Debug, Clone)]
pub enum Cell {
    /// Inline string.
    Text(String),
    /// Numeric cell.
    Number(f64),
    /// A date, as its Excel serial (days since 1899-12-30): a plain number
    /// in XLSX (as Excel stores it, the format living in a style), a date
    /// cell in ODS.
    Date(u32),
}

/// An XLSX with one sheet called `sheet`.
pub fn xlsx(sheet: &str, rows: &[Vec<Cell>]) -> Vec<u8> {
    let mut xml = String::from(
        r#"<?xml version="1.0" encoding="UTF-8"?><worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"><sheetData>"#,
    );
    for (r, row) in rows.iter().enumerate() {
        xml.push_str(&format!(r#"<row r="{}">"#, r + 1));
        for (c, cell) in row.iter().enumerate() {
            let reference = format!("{}{}", (b'A' + c as u8) as char, r + 1);
            match cell {
                Cell::Number(n) => xml.push_str(&format!(r#"<c r="{reference}"><v>{n}</v></c>"#)),
                Cell::Date(serial) => {
                    xml.push_str(&format!(r#"<c r="{reference}"><v>{serial}</v></c>"#))
                }
                Cell::Text(t) => xml.push_str(&format!(
                    r#"<c r="{reference}" t="inlineStr"><is><t>{}</t></is></c>"#,
                    xml_escape(t)
                )),
            }
        }
        xml.push_str("</row>");
    }
    xml.push_str("</sheetData></worksheet>");
    let workbook = format!(
        r#"<?xml version="1.0"?><workbook xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main" xmlns:r="http://schemas.openxmlformats.org/officeDocument/2006/relationships"><sheets><sheet name="{}" sheetId="1" r:id="rId1"/></sheets></workbook>"#,
        xml_escape(sheet)
    );
    zip_of(
        &[
            ("[Content_Types].xml", br#"<?xml version="1.0"?><Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types"><Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/><Default Extension="xml" ContentType="application/xml"/><Override PartName="/xl/workbook.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml"/><Override PartName="/xl/worksheets/sheet1.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.worksheet+xml"/></Types>"#),
            ("_rels/.rels", br#"<?xml version="1.0"?><Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships"><Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/officeDocument" Target="xl/workbook.xml"/></Relationships>"#),
            ("xl/workbook.xml", workbook.as_bytes()),
            ("xl/_rels/workbook.xml.rels", br#"<?xml version="1.0"?><Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships"><Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/worksheet" Target="worksheets/sheet1.xml"/></Relationships>"#),
            ("xl/worksheets/sheet1.xml", xml.as_bytes()),
        ],
        Protection::None,
    )
}

/// An ODT (OpenDocument text) with one paragraph per entry.
pub fn odt(paragraphs: &[&str]) -> Vec<u8> {
    let body: String = paragraphs
        .iter()
        .map(|p| format!("<text:p>{}</text:p>", xml_escape(p)))
        .collect();
    let content = format!(
        r#"<?xml version="1.0" encoding="UTF-8"?><office:document-content xmlns:office="urn:oasis:names:tc:opendocument:xmlns:office:1.0" xmlns:text="urn:oasis:names:tc:opendocument:xmlns:text:1.0"><office:body><office:text>{body}</office:text></office:body></office:document-content>"#
    );
    opendocument(
        "application/vnd.oasis.opendocument.text",
        &[("content.xml", content.as_bytes())],
    )
}

/// The civil date (year, month, day) of an Excel serial.
fn civil_from_serial(serial: u32) -> (i64, u32, u32) {
    // Howard Hinnant's civil_from_days, from 1970-01-01.
    let z = i64::from(serial) - 25_569 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

/// An ODS (OpenDocument spreadsheet) with one sheet called `sheet`, as
/// LibreOffice writes it: dates as date cells with their ISO value.
pub fn ods(sheet: &str, rows: &[Vec<Cell>]) -> Vec<u8> {
    let mut table = String::new();
    for row in rows {
        table.push_str("<table:table-row>");
        for cell in row {
            match cell {
                Cell::Text(t) => table.push_str(&format!(
                    r#"<table:table-cell office:value-type="string"><text:p>{}</text:p></table:table-cell>"#,
                    xml_escape(t)
                )),
                Cell::Number(n) => table.push_str(&format!(
                    r#"<table:table-cell office:value-type="float" office:value="{n}"><text:p>{n}</text:p></table:table-cell>"#
                )),
                Cell::Date(serial) => {
                    let (y, m, d) = civil_from_serial(*serial);
                    table.push_str(&format!(
                        r#"<table:table-cell office:value-type="date" office:date-value="{y:04}-{m:02}-{d:02}"><text:p>{d:02}/{m:02}/{y:04}</text:p></table:table-cell>"#
                    ))
                }
            }
        }
        table.push_str("</table:table-row>");
    }
    let content = format!(
        r#"<?xml version="1.0" encoding="UTF-8"?><office:document-content xmlns:office="urn:oasis:names:tc:opendocument:xmlns:office:1.0" xmlns:table="urn:oasis:names:tc:opendocument:xmlns:table:1.0" xmlns:text="urn:oasis:names:tc:opendocument:xmlns:text:1.0" office:version="1.2"><office:body><office:spreadsheet><table:table table:name="{}">{table}</table:table></office:spreadsheet></office:body></office:document-content>"#,
        xml_escape(sheet)
    );
    let manifest = br#"<?xml version="1.0" encoding="UTF-8"?><manifest:manifest xmlns:manifest="urn:oasis:names:tc:opendocument:xmlns:manifest:1.0" manifest:version="1.2"><manifest:file-entry manifest:full-path="/" manifest:media-type="application/vnd.oasis.opendocument.spreadsheet"/><manifest:file-entry manifest:full-path="content.xml" manifest:media-type="text/xml"/></manifest:manifest>"#;
    opendocument(
        "application/vnd.oasis.opendocument.spreadsheet",
        &[
            ("content.xml", content.as_bytes()),
            ("META-INF/manifest.xml", manifest),
        ],
    )
}

/// An OpenDocument container: the `mimetype` member first and stored, as
/// the format requires, then `parts` deflated.
fn opendocument(mimetype: &str, parts: &[(&str, &[u8])]) -> Vec<u8> {
    let mut w = zip::ZipWriter::new(Cursor::new(Vec::new()));
    w.start_file(
        "mimetype",
        SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored),
    )
    .expect("in memory");
    w.write_all(mimetype.as_bytes()).expect("in memory");
    for (name, data) in parts {
        w.start_file(
            *name,
            SimpleFileOptions::default().compression_method(zip::CompressionMethod::Deflated),
        )
        .expect("in memory");
        w.write_all(data).expect("in memory");
    }
    w.finish().expect("in memory").into_inner()
}

/// A PPTX with one slide per entry of `slides`, each a list of paragraphs.
pub fn pptx(slides: &[&[&str]]) -> Vec<u8> {
    const P: &str = "http://schemas.openxmlformats.org/presentationml/2006/main";
    const A: &str = "http://schemas.openxmlformats.org/drawingml/2006/main";
    const R: &str = "http://schemas.openxmlformats.org/officeDocument/2006/relationships";
    let mut parts: Vec<(String, Vec<u8>)> = Vec::new();
    let mut overrides = String::new();
    let mut ids = String::new();
    let mut rels = String::new();
    for (i, paragraphs) in slides.iter().enumerate() {
        let n = i + 1;
        let body: String = paragraphs
            .iter()
            .map(|p| format!("<a:p><a:r><a:t>{}</a:t></a:r></a:p>", xml_escape(p)))
            .collect();
        let slide = format!(
            r#"<?xml version="1.0" encoding="UTF-8" standalone="yes"?><p:sld xmlns:a="{A}" xmlns:p="{P}" xmlns:r="{R}"><p:cSld><p:spTree><p:sp><p:txBody><a:bodyPr/>{body}</p:txBody></p:sp></p:spTree></p:cSld></p:sld>"#
        );
        parts.push((format!("ppt/slides/slide{n}.xml"), slide.into_bytes()));
        overrides.push_str(&format!(r#"<Override PartName="/ppt/slides/slide{n}.xml" ContentType="application/vnd.openxmlformats-officedocument.presentationml.slide+xml"/>"#));
        ids.push_str(&format!(r#"<p:sldId id="{}" r:id="rId{n}"/>"#, 255 + n));
        rels.push_str(&format!(r#"<Relationship Id="rId{n}" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/slide" Target="slides/slide{n}.xml"/>"#));
    }
    let types = format!(
        r#"<?xml version="1.0"?><Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types"><Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/><Default Extension="xml" ContentType="application/xml"/><Override PartName="/ppt/presentation.xml" ContentType="application/vnd.openxmlformats-officedocument.presentationml.presentation.main+xml"/>{overrides}</Types>"#
    );
    let presentation = format!(
        r#"<?xml version="1.0"?><p:presentation xmlns:p="{P}" xmlns:r="{R}"><p:sldIdLst>{ids}</p:sldIdLst></p:presentation>"#
    );
    let presentation_rels = format!(
        r#"<?xml version="1.0"?><Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">{rels}</Relationships>"#
    );
    let mut files: Vec<(&str, &[u8])> = vec![
        ("[Content_Types].xml", types.as_bytes()),
        ("_rels/.rels", br#"<?xml version="1.0"?><Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships"><Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/officeDocument" Target="ppt/presentation.xml"/></Relationships>"#),
        ("ppt/presentation.xml", presentation.as_bytes()),
        ("ppt/_rels/presentation.xml.rels", presentation_rels.as_bytes()),
    ];
    files.extend(parts.iter().map(|(n, d)| (n.as_str(), d.as_slice())));
    zip_of(&files, Protection::None)
}

/// How a PDF is protected, with the standard security handler.
#[derive(Debug, Clone, Copy)]
pub enum PdfLock<'a> {
    /// Not encrypted.
    None,
    /// RC4 with a 40-bit key (revision 2), what old tools write.
    Rc4_40 {
        /// Opens it with every permission.
        owner: &'a str,
        /// Opens it; empty for an owner-password-only PDF, which any reader
        /// opens.
        user: &'a str,
    },
    /// RC4 with a 128-bit key (revision 3).
    Rc4_128 {
        /// Opens it with every permission.
        owner: &'a str,
        /// Opens it.
        user: &'a str,
    },
    /// AES-256 (revision 6), what current readers write.
    Aes256 {
        /// Opens it with every permission.
        owner: &'a str,
        /// Opens it.
        user: &'a str,
    },
}

/// A PDF with one page per entry of `pages`, each page its lines in
/// Helvetica from the top down, the page contents deflated.
pub fn pdf(pages: &[&[&str]], lock: PdfLock<'_>) -> Vec<u8> {
    use pdf_extract::content::{Content, Operation};
    use pdf_extract::{Object, Stream};
    let contents: Vec<Stream> = pages
        .iter()
        .map(|lines| {
            let mut ops = vec![
                Operation::new("BT", vec![]),
                Operation::new("Tf", vec!["F1".into(), 11.into()]),
                Operation::new("TL", vec![15.into()]),
                Operation::new("Td", vec![72.into(), 760.into()]),
            ];
            for line in *lines {
                ops.push(Operation::new("Tj", vec![Object::string_literal(*line)]));
                ops.push(Operation::new("T*", vec![]));
            }
            ops.push(Operation::new("ET", vec![]));
            let encoded = Content { operations: ops }.encode().expect("in memory");
            let mut stream = Stream::new(pdf_extract::Dictionary::new(), encoded);
            // lopdf leaves a stream too short to gain uncompressed.
            let _ = stream.compress();
            stream
        })
        .collect();
    pdf_of(contents, &[], lock)
}

/// A PDF like [`pdf`] whose first page also shows `pictures` (JPEG data,
/// which hallpass does not read: no OCR).
pub fn pdf_with_pictures(pages: &[&[&str]], pictures: &[&[u8]]) -> Vec<u8> {
    use pdf_extract::content::{Content, Operation};
    use pdf_extract::{Object, Stream};
    let contents: Vec<Stream> = pages
        .iter()
        .enumerate()
        .map(|(n, lines)| {
            let mut ops = Vec::new();
            if n == 0 {
                for i in 0..pictures.len() {
                    ops.push(Operation::new("q", vec![]));
                    let at: Vec<Object> = vec![
                        200.into(),
                        0.into(),
                        0.into(),
                        150.into(),
                        72.into(),
                        100.into(),
                    ];
                    ops.push(Operation::new("cm", at));
                    ops.push(Operation::new("Do", vec![format!("Im{i}").into()]));
                    ops.push(Operation::new("Q", vec![]));
                }
            }
            ops.extend([
                Operation::new("BT", vec![]),
                Operation::new("Tf", vec!["F1".into(), 11.into()]),
                Operation::new("TL", vec![15.into()]),
                Operation::new("Td", vec![72.into(), 760.into()]),
            ]);
            for line in *lines {
                ops.push(Operation::new("Tj", vec![Object::string_literal(*line)]));
                ops.push(Operation::new("T*", vec![]));
            }
            ops.push(Operation::new("ET", vec![]));
            let encoded = Content { operations: ops }.encode().expect("in memory");
            let mut stream = Stream::new(pdf_extract::Dictionary::new(), encoded);
            let _ = stream.compress();
            stream
        })
        .collect();
    pdf_of(contents, pictures, PdfLock::None)
}

/// A one-page PDF whose page content inflates to `mib` MiB (a line of text,
/// then spaces): about a kilobyte per MiB, streamed so the whole is never
/// held in memory here.
pub fn pdf_bomb(mib: usize) -> Vec<u8> {
    use flate2::{Compression, write::ZlibEncoder};
    let mut e = ZlibEncoder::new(Vec::new(), Compression::best());
    e.write_all(b"BT /F1 11 Tf 72 760 Td (Invoice attached) Tj ET\n")
        .expect("in memory");
    let spaces = vec![b' '; 1 << 20];
    for _ in 0..mib {
        e.write_all(&spaces).expect("in memory");
    }
    let mut dict = pdf_extract::Dictionary::new();
    dict.set("Filter", "FlateDecode");
    let content = pdf_extract::Stream::new(dict, e.finish().expect("in memory"));
    pdf_of(vec![content], &[], PdfLock::None)
}

/// A PDF whose pages draw `contents`, sharing Helvetica as `/F1` and
/// `pictures` as JPEG images `/Im0`, `/Im1`, …
fn pdf_of(contents: Vec<pdf_extract::Stream>, pictures: &[&[u8]], lock: PdfLock<'_>) -> Vec<u8> {
    use std::collections::BTreeMap;
    use std::sync::Arc;

    use pdf_extract::encryption::crypt_filters::{Aes256CryptFilter, CryptFilter};
    use pdf_extract::{
        Document, EncryptionState, EncryptionVersion, Object, Permissions, dictionary,
    };

    let mut doc = Document::with_version("1.7");
    let pages_id = doc.new_object_id();
    let font = doc.add_object(dictionary! {
        "Type" => "Font", "Subtype" => "Type1", "BaseFont" => "Helvetica",
        "Encoding" => "WinAnsiEncoding",
    });
    let mut images = pdf_extract::Dictionary::new();
    for (i, jpeg) in pictures.iter().enumerate() {
        let image = pdf_extract::Stream::new(
            dictionary! { "Type" => "XObject", "Subtype" => "Image", "Width" => 1600,
            "Height" => 1200, "ColorSpace" => "DeviceRGB", "BitsPerComponent" => 8,
            "Filter" => "DCTDecode" },
            jpeg.to_vec(),
        );
        images.set(format!("Im{i}"), doc.add_object(image));
    }
    let resources = match pictures.is_empty() {
        true => doc.add_object(dictionary! { "Font" => dictionary! { "F1" => font } }),
        false => doc.add_object(
            dictionary! { "Font" => dictionary! { "F1" => font }, "XObject" => images },
        ),
    };
    let kids: Vec<Object> = contents
        .into_iter()
        .map(|content| {
            let content = doc.add_object(content);
            doc.add_object(dictionary! {
                "Type" => "Page", "Parent" => pages_id, "Contents" => content,
                "Resources" => resources,
                "MediaBox" => vec![0.into(), 0.into(), 595.into(), 842.into()],
            })
            .into()
        })
        .collect();
    let count = kids.len() as i64;
    doc.objects.insert(
        pages_id,
        Object::Dictionary(dictionary! { "Type" => "Pages", "Kids" => kids, "Count" => count }),
    );
    let catalog = doc.add_object(dictionary! { "Type" => "Catalog", "Pages" => pages_id });
    doc.trailer.set("Root", catalog);
    let id = Object::string_literal(b"hallpass-fixture".to_vec());
    doc.trailer.set("ID", vec![id.clone(), id]);
    let permissions = Permissions::PRINTABLE;
    let state = match lock {
        PdfLock::None => None,
        PdfLock::Rc4_40 { owner, user } => Some(EncryptionVersion::V1 {
            document: &doc,
            owner_password: owner,
            user_password: user,
            permissions,
        }),
        PdfLock::Rc4_128 { owner, user } => Some(EncryptionVersion::V2 {
            document: &doc,
            owner_password: owner,
            user_password: user,
            key_length: 128,
            permissions,
        }),
        PdfLock::Aes256 { owner, user } => {
            let filter: Arc<dyn CryptFilter> = Arc::new(Aes256CryptFilter);
            Some(EncryptionVersion::V5 {
                encrypt_metadata: true,
                crypt_filters: BTreeMap::from([(b"StdCF".to_vec(), filter)]),
                // Fixed, so only the AES initialisation vectors vary.
                file_encryption_key: &[0x5a; 32],
                stream_filter: b"StdCF".to_vec(),
                string_filter: b"StdCF".to_vec(),
                owner_password: owner,
                user_password: user,
                permissions,
            })
        }
    }
    .map(|version| EncryptionState::try_from(version).expect("a valid encryption setup"));
    if let Some(state) = state {
        doc.encrypt(&state).expect("in memory");
    }
    let mut out = Vec::new();
    doc.save_to(&mut out).expect("in memory");
    out
}

/// An Office document encrypted with a password, as Office stores it: an OLE
/// file with `EncryptionInfo` and `EncryptedPackage` (the package here is
/// random bytes: hallpass recognises the container, it does not decrypt it).
pub fn encrypted_office(rng: &mut Rng) -> Vec<u8> {
    let mut c = cfb::CompoundFile::create(Cursor::new(Vec::new())).expect("in memory");
    // Agile encryption version 4.4.
    c.create_stream("/EncryptionInfo")
        .expect("in memory")
        .write_all(&[4, 0, 4, 0, 0x40, 0, 0, 0])
        .expect("in memory");
    let package: Vec<u8> = (0..4096).map(|_| rng.below(256) as u8).collect();
    c.create_stream("/EncryptedPackage")
        .expect("in memory")
        .write_all(&package)
        .expect("in memory");
    c.into_inner().into_inner()
}

/// A legacy Word file (OLE) whose WordDocument stream holds `text` as 8-bit
/// characters.
pub fn legacy_doc(text: &str) -> Vec<u8> {
    let mut c = cfb::CompoundFile::create(Cursor::new(Vec::new())).expect("in memory");
    let mut stream = vec![0u8; 32];
    stream[0] = 0xEC;
    stream[1] = 0xA5;
    stream.extend_from_slice(text.as_bytes());
    stream.extend_from_slice(&[0u8; 64]);
    c.create_stream("/WordDocument")
        .expect("in memory")
        .write_all(&stream)
        .expect("in memory");
    c.into_inner().into_inner()
}

/// An RTF document with one paragraph per entry.
pub fn rtf(paragraphs: &[&str]) -> Vec<u8> {
    let mut s = String::from(r"{\rtf1\ansi\deff0{\fonttbl{\f0 Arial;}}\f0\fs22 ");
    for p in paragraphs {
        s.push_str(
            &p.replace('\\', r"\\")
                .replace('{', r"\{")
                .replace('}', r"\}"),
        );
        s.push_str(r"\par ");
    }
    s.push('}');
    s.into_bytes()
}

/// A ZIP bomb: `mib` MiB of zeros deflated to a few kilobytes.
pub fn zip_bomb(mib: usize) -> Vec<u8> {
    zip_of(&[("zeros.txt", &vec![0u8; mib << 20])], Protection::None)
}

/// A ZIP nested `levels` deep around `inner`.
pub fn nested_zip(levels: usize, inner: &[u8]) -> Vec<u8> {
    let mut z = inner.to_vec();
    for i in 0..levels {
        z = zip_of(&[(&format!("level{i}.zip"), &z)], Protection::None);
    }
    z
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_identifiers_have_their_shapes() {
        let mut rng = Rng::new(7);
        let n = nhs_number(&mut rng);
        assert!(n.starts_with("999 ") && n.len() == 12, "{n}");
        assert_eq!(upn(&mut rng).len(), 13);
        assert_eq!(nino(&mut rng).len(), 13);
        let (dob, serial) = date_of_birth(&mut Rng::new(1));
        assert_eq!(dob.len(), 10);
        assert!((41_640..43_466).contains(&serial), "{serial}");
        assert_eq!(civil_from_serial(serial), {
            let (y, m, d) = (&dob[6..], &dob[3..5], &dob[..2]);
            (y.parse().unwrap(), m.parse().unwrap(), d.parse().unwrap())
        });
    }

    #[test]
    fn pdfs_open_as_their_lock_says() {
        use pdf_extract::{Document, LoadOptions};
        let plain = pdf(&[&["Hello"]], PdfLock::None);
        assert!(plain.starts_with(b"%PDF-1.7"));
        let doc = Document::load_mem(&plain).unwrap();
        assert_eq!(doc.get_pages().len(), 1);
        assert!(
            pdf_extract::extract_text_from_mem(&plain)
                .unwrap()
                .contains("Hello")
        );
        for lock in [
            PdfLock::Rc4_40 {
                owner: "o",
                user: "u-pw",
            },
            PdfLock::Rc4_128 {
                owner: "o",
                user: "u-pw",
            },
            PdfLock::Aes256 {
                owner: "o",
                user: "u-pw",
            },
        ] {
            let bytes = pdf(&[&["Hello"]], lock);
            // Without its password it stays locked; with it, it opens.
            assert!(
                Document::load_mem(&bytes).unwrap().trailer.has(b"Encrypt"),
                "{lock:?}"
            );
            let open = Document::load_mem_with_options(&bytes, LoadOptions::with_password("u-pw"))
                .unwrap();
            assert!(!open.trailer.has(b"Encrypt"), "{lock:?}");
        }
        // An owner password alone does not stop anyone opening it.
        let owner_only = pdf(
            &[&["Hello"]],
            PdfLock::Rc4_40 {
                owner: "o",
                user: "",
            },
        );
        assert!(
            !Document::load_mem(&owner_only)
                .unwrap()
                .trailer
                .has(b"Encrypt")
        );
    }

    #[test]
    fn a_pdf_bomb_is_small_and_inflates_hugely() {
        let bomb = pdf_bomb(64);
        assert!(bomb.len() < 100_000, "{}", bomb.len());
        let doc = pdf_extract::Document::load_mem(&bomb).unwrap();
        let page = *doc.get_pages().values().next().unwrap();
        assert!(doc.get_page_content(page).unwrap().len() > 64 << 20);
    }

    #[test]
    fn containers_hold_what_their_readers_look_for() {
        let names = |z: Vec<u8>| -> Vec<String> {
            let a = zip::ZipArchive::new(Cursor::new(z)).unwrap();
            a.file_names()
                .map(|n| n.expect("a valid name").into_owned())
                .collect()
        };
        let p = names(pptx(&[&["one"], &["two"]]));
        for n in [
            "[Content_Types].xml",
            "ppt/presentation.xml",
            "ppt/slides/slide2.xml",
        ] {
            assert!(p.iter().any(|x| x == n), "{n} in {p:?}");
        }
        let o = ods("Sheet", &[vec![Cell::Date(42_000)]]);
        assert_eq!(&o[30..38], b"mimetype");
        assert!(names(o).iter().any(|x| x == "content.xml"));
    }
}
