//! What an attachment is, by its content rather than its name or declared type.

/// The kinds hallpass tells apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Plain text (any common encoding).
    Text,
    /// Comma/tab/semicolon-separated values (text, told by name or type).
    Csv,
    /// HTML.
    Html,
    /// An email message (`.eml`, `message/rfc822`).
    Message,
    /// PDF.
    Pdf,
    /// A ZIP container (plain ZIP, or Office Open XML / OpenDocument inside).
    Zip,
    /// An OLE compound file (legacy `.doc`/`.xls`, encrypted Office documents).
    Ole,
    /// Rich Text Format.
    Rtf,
    /// 7-Zip archive.
    SevenZip,
    /// RAR archive.
    Rar,
    /// gzip stream.
    Gzip,
    /// A picture: not text, and not a hiding place hallpass can read (no OCR).
    Image,
    /// Audio or video.
    Media,
    /// Anything else.
    Binary,
}

impl Kind {
    /// The short name used in scan output (`"type"`).
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Text => "text",
            Kind::Csv => "csv",
            Kind::Html => "html",
            Kind::Message => "message",
            Kind::Pdf => "pdf",
            Kind::Zip => "zip",
            Kind::Ole => "ole",
            Kind::Rtf => "rtf",
            Kind::SevenZip => "7z",
            Kind::Rar => "rar",
            Kind::Gzip => "gzip",
            Kind::Image => "image",
            Kind::Media => "media",
            Kind::Binary => "binary",
        }
    }
}

/// Decides the kind of `data`, using `name` and the declared `mime` type only
/// to tell text formats apart (CSV from plain text), never to trust a binary
/// format's claim.
pub fn sniff(data: &[u8], name: &str, mime: &str) -> Kind {
    let magic: &[(&[u8], Kind)] = &[
        (b"%PDF-", Kind::Pdf),
        (b"PK\x03\x04", Kind::Zip),
        (b"PK\x05\x06", Kind::Zip),
        (b"PK\x07\x08", Kind::Zip),
        (b"\xD0\xCF\x11\xE0\xA1\xB1\x1A\xE1", Kind::Ole),
        (b"{\\rtf", Kind::Rtf),
        (b"7z\xBC\xAF\x27\x1C", Kind::SevenZip),
        (b"Rar!\x1A\x07", Kind::Rar),
        (b"\x1F\x8B", Kind::Gzip),
        (b"\x89PNG\r\n\x1A\n", Kind::Image),
        (b"\xFF\xD8\xFF", Kind::Image),
        (b"GIF87a", Kind::Image),
        (b"GIF89a", Kind::Image),
        (b"BM", Kind::Image),
        (b"II*\x00", Kind::Image),
        (b"MM\x00*", Kind::Image),
        (b"ID3", Kind::Media),
        (b"OggS", Kind::Media),
        (b"fLaC", Kind::Media),
    ];
    // PDF readers accept the header anywhere in the first kilobyte.
    if memchr::memmem::find(&data[..data.len().min(1024)], b"%PDF-").is_some() {
        return Kind::Pdf;
    }
    for (m, k) in magic {
        if data.starts_with(m) {
            return *k;
        }
    }
    if data.len() >= 12 && &data[0..4] == b"RIFF" && matches!(&data[8..12], b"WEBP") {
        return Kind::Image;
    }
    if data.len() >= 12 && (&data[0..4] == b"RIFF" || &data[4..8] == b"ftyp") {
        return Kind::Media;
    }
    if !looks_like_text(data) {
        return Kind::Binary;
    }
    let lower_name = name.to_ascii_lowercase();
    let mime = mime.to_ascii_lowercase();
    let ext = lower_name.rsplit_once('.').map_or("", |(_, e)| e);
    if matches!(ext, "csv" | "tsv") || mime.contains("csv") || mime.contains("tab-separated") {
        return Kind::Csv;
    }
    if matches!(ext, "eml") || mime == "message/rfc822" {
        return Kind::Message;
    }
    let head = &data[..data.len().min(512)];
    let head_lower: Vec<u8> = head.iter().map(u8::to_ascii_lowercase).collect();
    if matches!(ext, "htm" | "html")
        || mime == "text/html"
        || memchr::memmem::find(&head_lower, b"<html").is_some()
        || head_lower.trim_ascii_start().starts_with(b"<!doctype html")
    {
        return Kind::Html;
    }
    Kind::Text
}

/// Text has no NUL bytes (UTF-16 with a byte-order mark aside) and few control
/// characters.
pub fn looks_like_text(data: &[u8]) -> bool {
    if data.starts_with(b"\xFF\xFE") || data.starts_with(b"\xFE\xFF") {
        return true;
    }
    let sample = &data[..data.len().min(8192)];
    if sample.contains(&0) {
        return false;
    }
    let control = sample
        .iter()
        .filter(|&&b| b < 0x20 && !matches!(b, b'\n' | b'\r' | b'\t' | 0x0c))
        .count();
    control * 100 <= sample.len()
}

/// Decodes text of unknown encoding: UTF-16 by its byte-order mark, UTF-8 when
/// valid, else Windows-1252 (what Excel and Notepad write on a school PC).
pub fn decode_text(data: &[u8]) -> std::borrow::Cow<'_, str> {
    if let Some(rest) = data.strip_prefix(b"\xEF\xBB\xBF") {
        return String::from_utf8_lossy(rest);
    }
    let utf16 = |rest: &[u8], le: bool| {
        let units = rest.chunks_exact(2).map(|c| {
            if le {
                u16::from_le_bytes([c[0], c[1]])
            } else {
                u16::from_be_bytes([c[0], c[1]])
            }
        });
        char::decode_utf16(units)
            .map(|r| r.unwrap_or('\u{FFFD}'))
            .collect::<String>()
            .into()
    };
    if let Some(rest) = data.strip_prefix(b"\xFF\xFE") {
        return utf16(rest, true);
    }
    if let Some(rest) = data.strip_prefix(b"\xFE\xFF") {
        return utf16(rest, false);
    }
    match std::str::from_utf8(data) {
        Ok(s) => s.into(),
        Err(_) => match mail_parser::decoders::charsets::map::charset_decoder(b"windows-1252") {
            Some(decode) => decode(data).into(),
            None => String::from_utf8_lossy(data),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_beats_the_name() {
        assert_eq!(sniff(b"%PDF-1.7\n...", "class.csv", "text/csv"), Kind::Pdf);
        assert_eq!(
            sniff(b"PK\x03\x04rest", "report.pdf", "application/pdf"),
            Kind::Zip
        );
        assert_eq!(
            sniff(b"Name,DOB\n", "list", "application/octet-stream"),
            Kind::Text
        );
        assert_eq!(
            sniff(b"Name,DOB\n", "list.csv", "application/octet-stream"),
            Kind::Csv
        );
        assert_eq!(
            sniff(b"\x00\x01\x02binary", "notes.txt", "text/plain"),
            Kind::Binary
        );
        assert_eq!(sniff(b"\x89PNG\r\n\x1a\nxxxx", "x", ""), Kind::Image);
    }

    #[test]
    fn text_encodings_are_decoded() {
        assert_eq!(decode_text(b"\xA3100 for the trip"), "£100 for the trip");
        assert_eq!(decode_text(b"\xFF\xFEA\x00B\x00"), "AB");
        assert_eq!(decode_text("é".as_bytes()), "é");
    }
}
