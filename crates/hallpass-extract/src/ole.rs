//! OLE compound files: legacy Word and Excel documents, and Office documents
//! encrypted with a password (which Office stores as an OLE file holding
//! `EncryptionInfo` and `EncryptedPackage`).
//!
//! Legacy `.xls` is read through calamine. Legacy `.doc` and `.ppt` keep their
//! text in runs of 8-bit or UTF-16 characters, which are read as they are;
//! their encrypted forms are recognised by their flags.

use std::io::{Cursor, Read};

use hallpass_core::Location;

use crate::{Extractor, View, Walk, office};

pub(crate) struct Ole;

impl Extractor for Ole {
    fn extract(&self, data: &[u8], location: &Location, walk: &mut Walk<'_>) -> Result<(), String> {
        let mut file = cfb::CompoundFile::open(Cursor::new(data))
            .map_err(|_| "the Office document is damaged and could not be opened".to_string())?;
        let has = |f: &cfb::CompoundFile<Cursor<&[u8]>>, n: &str| f.exists(n);
        if has(&file, "/EncryptionInfo") && has(&file, "/EncryptedPackage") {
            walk.set_kind(location, "office-encrypted");
            walk.mark_encrypted(location);
            return Ok(());
        }
        if has(&file, "/Workbook") || has(&file, "/Book") {
            walk.set_kind(location, "xls");
            let name = if has(&file, "/Workbook") {
                "/Workbook"
            } else {
                "/Book"
            };
            let stream = read_stream(&mut file, name, walk)?;
            if xls_encrypted(&stream) {
                walk.mark_encrypted(location);
                return Ok(());
            }
            return office::spreadsheet(data, location, walk);
        }
        if has(&file, "/WordDocument") {
            walk.set_kind(location, "doc");
            let stream = read_stream(&mut file, "/WordDocument", walk)?;
            // FIB flags at offset 10: bit 8 is fEncrypted.
            if stream.len() > 12 && u16::from_le_bytes([stream[10], stream[11]]) & 0x0100 != 0 {
                walk.mark_encrypted(location);
                return Ok(());
            }
            walk.emit(location, &text_runs(&stream), View::Whole);
            return Ok(());
        }
        if has(&file, "/PowerPoint Document") {
            walk.set_kind(location, "ppt");
            let stream = read_stream(&mut file, "/PowerPoint Document", walk)?;
            walk.emit(location, &text_runs(&stream), View::Whole);
            return Ok(());
        }
        Err("an OLE document of a kind hallpass cannot read".into())
    }
}

fn read_stream(
    file: &mut cfb::CompoundFile<Cursor<&[u8]>>,
    name: &str,
    walk: &mut Walk<'_>,
) -> Result<Vec<u8>, String> {
    let mut s = file
        .open_stream(name)
        .map_err(|_| "a stream of the Office document is damaged".to_string())?;
    let mut out = Vec::new();
    s.read_to_end(&mut out)
        .map_err(|_| "a stream of the Office document is damaged".to_string())?;
    walk.decompressed(out.len() as u64)?;
    Ok(out)
}

/// An encrypted legacy workbook has a FILEPASS record (type 0x002F) among its
/// first records.
fn xls_encrypted(stream: &[u8]) -> bool {
    let mut i = 0;
    for _ in 0..64 {
        let Some(h) = stream.get(i..i + 4) else {
            return false;
        };
        let (kind, len) = (
            u16::from_le_bytes([h[0], h[1]]),
            usize::from(u16::from_le_bytes([h[2], h[3]])),
        );
        if kind == 0x002F {
            return true;
        }
        i += 4 + len;
    }
    false
}

/// Runs of at least four printable characters, as Windows-1252 bytes or as
/// UTF-16LE, one per line.
fn text_runs(b: &[u8]) -> String {
    let printable = |c: u16| {
        (0x20..0x7F).contains(&c)
            || (0xA0..=0xFF).contains(&c)
            || (0x100..0xD800).contains(&c) && c >= 0x100
    };
    let mut out = String::new();
    // UTF-16LE runs.
    let mut run = String::new();
    for pair in b.chunks_exact(2) {
        let u = u16::from_le_bytes([pair[0], pair[1]]);
        if printable(u) || u == 0x0D || u == 0x09 {
            run.push(char::from_u32(u32::from(u)).unwrap_or(' '));
        } else {
            if run.trim().chars().count() >= 4 {
                out.push_str(run.trim());
                out.push('\n');
            }
            run.clear();
        }
    }
    if run.trim().chars().count() >= 4 {
        out.push_str(run.trim());
        out.push('\n');
    }
    // 8-bit runs.
    let mut start = None;
    for (i, &c) in b.iter().chain(std::iter::once(&0)).enumerate() {
        let ok = (0x20..0x7F).contains(&c) || c == b'\r' || c == b'\t' || c >= 0xA0;
        match (ok, start) {
            (true, None) => start = Some(i),
            (false, Some(s)) => {
                if i - s >= 4 {
                    out.push_str(&crate::sniff::decode_text(&b[s..i]));
                    out.push('\n');
                }
                start = None;
            }
            _ => {}
        }
    }
    out
}
