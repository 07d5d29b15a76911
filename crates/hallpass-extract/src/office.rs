//! Documents: Office Open XML (DOCX, XLSX, PPTX), OpenDocument (ODT, ODS,
//! ODP) and RTF.
//!
//! Word-processing and presentation XML is read with quick-xml, which never
//! fetches external entities or expands entities declared in a document (a
//! "billion laughs" file is an error, not a hang). Tables come out as
//! `Header: value` lines like HTML tables. Spreadsheets are read through
//! calamine so a number stored as a number (an NHS number in a numeric cell)
//! or a date serial is seen as text; a column header is the context of every
//! cell under it.

use std::io::{Cursor, Read};

use calamine::{Data, Reader};
use hallpass_core::Location;
use quick_xml::Reader as XmlReader;
use quick_xml::events::Event;
use zip::ZipArchive;

use crate::table::Table;
use crate::{Extractor, View, Walk};

/// What a ZIP container holds, if it is a document.
pub(crate) fn container_kind(archive: &mut ZipArchive<Cursor<&[u8]>>) -> Option<&'static str> {
    let has = |a: &ZipArchive<Cursor<&[u8]>>, n: &str| a.index_for_name(n).is_some();
    if has(archive, "[Content_Types].xml") {
        if has(archive, "word/document.xml") {
            return Some("docx");
        }
        if has(archive, "xl/workbook.xml") {
            return Some("xlsx");
        }
        if has(archive, "ppt/presentation.xml") {
            return Some("pptx");
        }
    }
    if let Some(i) = archive.index_for_name("mimetype") {
        let mut m = String::new();
        if let Ok(f) = archive.by_index(i) {
            let _ = f.take(100).read_to_string(&mut m);
        }
        return match m.trim() {
            "application/vnd.oasis.opendocument.text" => Some("odt"),
            "application/vnd.oasis.opendocument.spreadsheet" => Some("ods"),
            "application/vnd.oasis.opendocument.presentation" => Some("odp"),
            _ => None,
        };
    }
    None
}

/// Reads a document of `kind` from its ZIP container.
pub(crate) fn read(
    kind: &'static str,
    data: &[u8],
    archive: &mut ZipArchive<Cursor<&[u8]>>,
    location: &Location,
    walk: &mut Walk<'_>,
) -> Result<(), String> {
    if kind.starts_with("od") && odf_encrypted(archive, walk)? {
        walk.mark_encrypted(location);
        return Ok(());
    }
    match kind {
        "xlsx" | "ods" => spreadsheet(data, location, walk),
        _ => {
            let names: Vec<String> = archive
                .file_names()
                .filter_map(|n| n.ok().map(|n| n.into_owned()))
                .collect();
            let mut parts: Vec<&String> = names.iter().filter(|n| is_text_part(kind, n)).collect();
            parts.sort_by_key(|n| part_order(n));
            for name in parts {
                let xml = member(archive, name, walk)?;
                let text = xml_to_text(&xml)
                    .map_err(|_| format!("the {kind} document's XML is damaged"))?;
                walk.emit(location, &text, View::Whole);
            }
            // Files embedded in the document (a spreadsheet in a Word file).
            for name in names.iter().filter(|n| {
                n.starts_with("word/embeddings/")
                    || n.starts_with("ppt/embeddings/")
                    || n.starts_with("xl/embeddings/")
            }) {
                let bytes = member(archive, name, walk)?;
                let short = name.rsplit('/').next().unwrap_or(name);
                walk.nested_file(location.child(short), &bytes, short);
            }
            Ok(())
        }
    }
}

fn is_text_part(kind: &str, n: &str) -> bool {
    match kind {
        "docx" => {
            n == "word/document.xml"
                || (n.starts_with("word/")
                    && n.ends_with(".xml")
                    && ["header", "footer", "comments", "footnotes", "endnotes"]
                        .iter()
                        .any(|p| n[5..].starts_with(p)))
        }
        "pptx" => {
            (n.starts_with("ppt/slides/slide")
                || n.starts_with("ppt/notesSlides/")
                || n.starts_with("ppt/comments/"))
                && n.ends_with(".xml")
        }
        "odt" | "odp" => n == "content.xml" || n == "styles.xml",
        _ => false,
    }
}

/// Slides in their numeric order (slide2 before slide10).
fn part_order(n: &str) -> (String, u32) {
    let digits: String = n.chars().filter(char::is_ascii_digit).collect();
    (
        n.trim_end_matches(|c: char| c.is_ascii_digit() || c == '.' || c.is_ascii_alphabetic())
            .to_string(),
        digits.parse().unwrap_or(0),
    )
}

/// Reads one member of the container within the message's unpacking budget.
fn member(
    archive: &mut ZipArchive<Cursor<&[u8]>>,
    name: &str,
    walk: &mut Walk<'_>,
) -> Result<Vec<u8>, String> {
    let max_ratio = u64::from(walk.limits().max_ratio);
    let file = archive
        .by_name(name)
        .map_err(|_| format!("the document's part {name} cannot be unpacked"))?;
    let cap = file
        .compressed_size()
        .saturating_mul(max_ratio)
        .max(1 << 20);
    let mut out = Vec::new();
    file.take(cap + 1)
        .read_to_end(&mut out)
        .map_err(|_| format!("the document's part {name} is damaged"))?;
    if out.len() as u64 > cap {
        return Err(format!(
            "a part of the document unpacks to more than {max_ratio} times its packed size (a zip bomb?)"
        ));
    }
    walk.decompressed(out.len() as u64)?;
    Ok(out)
}

/// An OpenDocument file encrypted with a password lists `encryption-data` in
/// its manifest.
fn odf_encrypted(
    archive: &mut ZipArchive<Cursor<&[u8]>>,
    walk: &mut Walk<'_>,
) -> Result<bool, String> {
    if archive.index_for_name("META-INF/manifest.xml").is_none() {
        return Ok(false);
    }
    let manifest = member(archive, "META-INF/manifest.xml", walk)?;
    Ok(memchr::memmem::find(&manifest, b"encryption-data").is_some())
}

/// The text of a WordprocessingML, PresentationML or OpenDocument XML part:
/// paragraphs on lines, tabs and line breaks kept, tables as `Header: value`.
pub(crate) fn xml_to_text(xml: &[u8]) -> Result<String, quick_xml::Error> {
    let mut reader = XmlReader::from_reader(xml);
    reader.config_mut().trim_text(false);
    let mut out = String::new();
    let mut tables: Vec<(Table, Vec<String>, Option<String>)> = Vec::new();
    let mut buf = Vec::new();
    loop {
        let event = reader.read_event_into(&mut buf)?;
        match event {
            Event::Eof => break,
            Event::Text(t) => {
                push(&mut out, &mut tables, &t);
            }
            Event::GeneralRef(r) => {
                let ch = match &*r {
                    "amp" => Some('&'),
                    "lt" => Some('<'),
                    "gt" => Some('>'),
                    "quot" => Some('"'),
                    "apos" => Some('\''),
                    _ => r.resolve_char_ref().ok().flatten(),
                };
                if let Some(c) = ch {
                    push(&mut out, &mut tables, c.encode_utf8(&mut [0; 4]));
                }
            }
            Event::CData(t) => push(&mut out, &mut tables, &t),
            Event::Start(e) | Event::Empty(e) => {
                let name = e.local_name();
                match name.as_ref() {
                    "tbl" | "table" => tables.push((Table::default(), Vec::new(), None)),
                    "tc" | "table-cell" => {
                        if let Some((_, row, cell)) = tables.last_mut() {
                            if let Some(c) = cell.take() {
                                row.push(c.trim().to_string());
                            }
                            *cell = Some(String::new());
                        }
                    }
                    "tab" => push(&mut out, &mut tables, "\t"),
                    "br" | "line-break" | "cr" => push(&mut out, &mut tables, "\n"),
                    "s" => push(&mut out, &mut tables, " "),
                    _ => {}
                }
            }
            Event::End(e) => match e.local_name().as_ref() {
                "p" | "h" => push(&mut out, &mut tables, "\n"),
                "tc" | "table-cell" => {
                    if let Some((_, row, cell)) = tables.last_mut()
                        && let Some(c) = cell.take()
                    {
                        row.push(c.trim().to_string());
                    }
                }
                "tr" | "table-row" => {
                    if let Some((t, row, _)) = tables.last_mut() {
                        t.row(std::mem::take(row), false);
                    }
                }
                "tbl" | "table" => {
                    if let Some((t, _, _)) = tables.pop() {
                        let rendered = t.finish();
                        push(&mut out, &mut tables, "\n");
                        push(&mut out, &mut tables, &rendered);
                    }
                }
                _ => {}
            },
            _ => {}
        }
        buf.clear();
    }
    Ok(out)
}

fn push(out: &mut String, tables: &mut [(Table, Vec<String>, Option<String>)], s: &str) {
    match tables.last_mut() {
        Some((_, _, Some(cell))) => cell.push_str(s),
        _ => out.push_str(s),
    }
}

/// A spreadsheet (XLSX or ODS, and legacy XLS from `ole`), every sheet as a
/// table. Numbers are written as people write them (9434765919, not
/// 9.434765919e9); date cells, and numbers under a birth-date header, as
/// dd/mm/yyyy.
pub(crate) fn spreadsheet(
    data: &[u8],
    location: &Location,
    walk: &mut Walk<'_>,
) -> Result<(), String> {
    let mut book = calamine::open_workbook_auto_from_rs(Cursor::new(data))
        .map_err(|_| "the spreadsheet is damaged or protected and could not be read".to_string())?;
    let names = book.sheet_names().to_vec();
    for name in names {
        if !walk.in_time(location) {
            return Ok(());
        }
        let range = match book.worksheet_range(&name) {
            Ok(r) => r,
            Err(_) => return Err(format!("the sheet {name:?} could not be read")),
        };
        let mut table = Table::default();
        let mut header: Vec<String> = Vec::new();
        for (r, row) in range.rows().enumerate() {
            let cells: Vec<String> = row
                .iter()
                .enumerate()
                .map(|(c, cell)| {
                    let birth = header.get(c).is_some_and(|h| {
                        let h = h.to_ascii_lowercase();
                        h.contains("dob") || h.contains("birth") || h.contains("d.o.b")
                    });
                    cell_text(cell, birth)
                })
                .collect();
            if r == 0 {
                header = cells.clone();
            }
            table.row(cells, false);
        }
        let text = format!("Sheet: {name}\n{}", table.finish());
        walk.decompressed(text.len() as u64)?;
        if !walk.emit(location, &text, View::Whole) {
            break;
        }
    }
    Ok(())
}

fn cell_text(cell: &Data, birth_column: bool) -> String {
    let serial_date = |serial: f64| {
        let days = serial.floor() as i64 - 25_569;
        let (y, m, d) = hallpass_core::date::civil_from_days(days);
        format!("{d:02}/{m:02}/{y}")
    };
    match cell {
        Data::Empty => String::new(),
        Data::String(s) => s.clone(),
        Data::Float(f) if birth_column && (1.0..80_000.0).contains(f) => serial_date(*f),
        Data::Float(f) if f.fract() == 0.0 && f.abs() < 1e17 => format!("{}", *f as i64),
        Data::Float(f) => f.to_string(),
        Data::Int(i) if birth_column && (1..80_000).contains(i) => serial_date(*i as f64),
        Data::Int(i) => i.to_string(),
        Data::Bool(b) => b.to_string(),
        Data::DateTime(dt) => serial_date(dt.as_f64()),
        Data::DateTimeIso(s) | Data::DurationIso(s) => s.clone(),
        Data::Error(_) => String::new(),
    }
}

/// Rich Text Format: control words and groups dropped, text kept, `\'hh`
/// escapes decoded as Windows-1252.
pub(crate) struct Rtf;

impl Extractor for Rtf {
    fn extract(&self, data: &[u8], location: &Location, walk: &mut Walk<'_>) -> Result<(), String> {
        let text = rtf_to_text(data);
        walk.emit(location, &text, View::Whole);
        Ok(())
    }
}

fn rtf_to_text(data: &[u8]) -> String {
    let mut bytes = Vec::with_capacity(data.len() / 2);
    let mut i = 0;
    // Destinations whose text is not shown (fonts, colours, styles, pictures).
    let mut skip_depth: Option<usize> = None;
    let mut depth = 0usize;
    while i < data.len() {
        match data[i] {
            b'{' => {
                depth += 1;
                i += 1;
                if data[i..].starts_with(b"\\*")
                    || [
                        &b"\\fonttbl"[..],
                        b"\\colortbl",
                        b"\\stylesheet",
                        b"\\pict",
                        b"\\info",
                    ]
                    .iter()
                    .any(|d| data[i..].starts_with(d))
                {
                    skip_depth.get_or_insert(depth);
                }
            }
            b'}' => {
                if skip_depth == Some(depth) {
                    skip_depth = None;
                }
                depth = depth.saturating_sub(1);
                i += 1;
            }
            b'\\' => {
                i += 1;
                match data.get(i) {
                    Some(b'\'') => {
                        if let Some(h) = data
                            .get(i + 1..i + 3)
                            .and_then(|h| std::str::from_utf8(h).ok())
                            .and_then(|h| u8::from_str_radix(h, 16).ok())
                            && skip_depth.is_none()
                        {
                            bytes.push(h);
                        }
                        i += 3;
                    }
                    Some(c) if c.is_ascii_alphabetic() => {
                        let start = i;
                        while i < data.len() && data[i].is_ascii_alphabetic() {
                            i += 1;
                        }
                        let word = &data[start..i];
                        while i < data.len() && (data[i].is_ascii_digit() || data[i] == b'-') {
                            i += 1;
                        }
                        if data.get(i) == Some(&b' ') {
                            i += 1;
                        }
                        if skip_depth.is_none()
                            && matches!(word, b"par" | b"line" | b"row" | b"sect" | b"page")
                        {
                            bytes.push(b'\n');
                        } else if skip_depth.is_none() && matches!(word, b"tab" | b"cell") {
                            bytes.push(b'\t');
                        }
                    }
                    Some(&c) => {
                        if skip_depth.is_none() && matches!(c, b'\\' | b'{' | b'}') {
                            bytes.push(c);
                        }
                        i += 1;
                    }
                    None => {}
                }
            }
            b'\r' | b'\n' => i += 1,
            c => {
                if skip_depth.is_none() {
                    bytes.push(c);
                }
                i += 1;
            }
        }
    }
    crate::sniff::decode_text(&bytes).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn word_xml_paragraphs_and_tables() {
        let xml = br#"<w:document xmlns:w="x"><w:body><w:p><w:r><w:t>Dear parent &amp; carer</w:t></w:r></w:p>
<w:tbl><w:tr><w:tc><w:p><w:r><w:t>Name</w:t></w:r></w:p></w:tc><w:tc><w:p><w:r><w:t>DOB</w:t></w:r></w:p></w:tc></w:tr>
<w:tr><w:tc><w:p><w:r><w:t>Amy</w:t></w:r></w:p></w:tc><w:tc><w:p><w:r><w:t>04/05/2014</w:t></w:r></w:p></w:tc></w:tr></w:tbl></w:body></w:document>"#;
        let t = xml_to_text(xml).unwrap();
        assert!(t.contains("Dear parent & carer\n"), "{t}");
        assert!(t.contains("DOB: 04/05/2014"), "{t}");
    }

    #[test]
    fn entity_bombs_are_errors_not_hangs() {
        let bomb = br#"<?xml version="1.0"?><!DOCTYPE l [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;"><!ENTITY c "&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;">]><w:t>&c;</w:t>"#;
        // Declared entities are not expanded: the text stays small.
        let t = xml_to_text(bomb).unwrap_or_default();
        assert!(t.len() < 100, "{}", t.len());
    }

    #[test]
    fn rtf_text_without_control_words() {
        let t = rtf_to_text(
            br"{\rtf1\ansi{\fonttbl{\f0 Arial;}}\f0 NHS number 943 476 5919\par Caf\'e9}",
        );
        assert_eq!(t, "NHS number 943 476 5919\nCafé");
    }
}
