//! Synthetic test data for hallpass, made in code: identifiers with valid
//! check digits (never a real person's: NHS numbers from the 999 range, which
//! is never issued), and attachments in the formats schools send (ZIP plain
//! and encrypted, DOCX, XLSX, ODT, encrypted Office, legacy Word, RTF),
//! wrapped in MIME messages.
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
    zip_of(
        &[
            ("[Content_Types].xml", br#"<?xml version="1.0"?><Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types"><Default Extension="xml" ContentType="application/xml"/><Override PartName="/word/document.xml" ContentType="application/vnd.openxmlformats-officedocument.wordprocessingml.document.main+xml"/></Types>"#),
            ("word/document.xml", doc.as_bytes()),
            ("word/footer1.xml", foot.as_bytes()),
        ],
        Protection::None,
    )
}

/// A cell of [`xlsx`]: text or a number.
#[derive(Debug, Clone)]
pub enum Cell {
    /// Inline string.
    Text(String),
    /// Numeric cell.
    Number(f64),
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
    let mut w = zip::ZipWriter::new(Cursor::new(Vec::new()));
    // The mimetype comes first and stored, as the format requires.
    w.start_file(
        "mimetype",
        SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored),
    )
    .expect("in memory");
    w.write_all(b"application/vnd.oasis.opendocument.text")
        .expect("in memory");
    w.start_file(
        "content.xml",
        SimpleFileOptions::default().compression_method(zip::CompressionMethod::Deflated),
    )
    .expect("in memory");
    w.write_all(content.as_bytes()).expect("in memory");
    w.finish().expect("in memory").into_inner()
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
    }
}
