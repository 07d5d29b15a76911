//! Archives: ZIP (plain, ZipCrypto and AES), and the recognition of 7-Zip and
//! RAR archives with encrypted headers.
//!
//! Every member goes back through content sniffing one level deeper, so a
//! spreadsheet in a ZIP in a forwarded message is read like any other. Zip
//! bombs are stopped by three limits: the compression ratio of each member,
//! the bytes unpacked per message, and the number of members; nested bombs
//! (42.zip) also meet the depth limit.

use std::io::{Cursor, Read};

use hallpass_core::Location;
use zip::ZipArchive;

use crate::{Extractor, Walk, office};

pub(crate) struct Zip;

/// Members smaller than this are never judged by their ratio: a page of
/// repeated spaces compresses well and is harmless.
const RATIO_FLOOR: u64 = 1 << 20;

impl Extractor for Zip {
    fn extract(&self, data: &[u8], location: &Location, walk: &mut Walk<'_>) -> Result<(), String> {
        let mut archive = ZipArchive::new(Cursor::new(data))
            .map_err(|_| "the ZIP archive is damaged and could not be opened".to_string())?;
        if archive.len() > walk.limits().max_members as usize {
            return Err(format!(
                "the archive has {} files, more than the limit of {}",
                archive.len(),
                walk.limits().max_members
            ));
        }
        if let Some(kind) = office::container_kind(&mut archive) {
            walk.set_kind(location, kind);
            return office::read(kind, data, &mut archive, location, walk);
        }
        let first_encrypted =
            (0..archive.len()).find(|&i| archive.by_index_raw(i).is_ok_and(|f| f.encrypted()));
        let mut password: Option<Vec<u8>> = None;
        if let Some(i) = first_encrypted {
            walk.mark_encrypted(location);
            let candidates: Vec<String> = walk.passwords().to_vec();
            password = candidates
                .into_iter()
                .map(String::into_bytes)
                .find(|pw| opens(&mut archive, i, pw, walk.limits().max_ratio));
            if password.is_none() {
                // Protected as the school's policy asks: nothing to read, nothing wrong.
                return Ok(());
            }
            walk.password_opened(location);
        }
        for i in 0..archive.len() {
            let (name, is_dir, encrypted, compressed) = match archive.by_index_raw(i) {
                Ok(f) => (
                    f.name()
                        .map(|n| n.into_owned())
                        .unwrap_or_else(|_| format!("member-{i}")),
                    f.is_dir(),
                    f.encrypted(),
                    f.compressed_size(),
                ),
                Err(_) => return Err("the ZIP archive's directory is damaged".into()),
            };
            if is_dir {
                continue;
            }
            let member = location.child(&name);
            if !walk.in_time(&member) {
                return Ok(());
            }
            let pw = if encrypted { password.as_deref() } else { None };
            match read_member(&mut archive, i, pw, compressed, walk) {
                Ok(bytes) => walk.nested_file(member, &bytes, &name),
                Err(MemberError::Budget(reason)) => return Err(reason),
                Err(MemberError::Member(reason)) => {
                    walk.note_file(&member, "binary", 0);
                    walk.unscannable(&member, &reason);
                }
            }
        }
        Ok(())
    }
}

enum MemberError {
    /// The whole message's budget is spent: stop reading.
    Budget(String),
    /// This member cannot be read; the others may.
    Member(String),
}

/// Unpacks one member within the ratio limit and the message's budget.
fn read_member(
    archive: &mut ZipArchive<Cursor<&[u8]>>,
    i: usize,
    password: Option<&[u8]>,
    compressed: u64,
    walk: &mut Walk<'_>,
) -> Result<Vec<u8>, MemberError> {
    let max_ratio = u64::from(walk.limits().max_ratio);
    let file = match password {
        Some(pw) => archive.by_index_decrypt(i, pw),
        None => archive.by_index(i),
    };
    let mut file = file.map_err(|e| {
        MemberError::Member(match e {
            zip::result::ZipError::UnsupportedArchive(_) => {
                "this file in the archive uses a compression method hallpass cannot unpack"
                    .to_string()
            }
            _ => "this file in the archive is damaged".to_string(),
        })
    })?;
    let ratio_cap = compressed.saturating_mul(max_ratio).max(RATIO_FLOOR);
    // A bomb usually declares its size honestly: refuse it before unpacking a
    // byte, so memory stays flat. (A lying header is caught while reading.)
    let declared = file.size();
    if declared > ratio_cap {
        return Err(MemberError::Member(format!(
            "unpacks to more than {max_ratio} times its packed size (a zip bomb?)"
        )));
    }
    if declared > walk.decompression_room() {
        return Err(MemberError::Budget(format!(
            "more than {} bytes unpacked from one message",
            walk.limits().max_decompressed_bytes
        )));
    }
    let mut out = Vec::with_capacity(declared.min(1 << 20) as usize);
    let mut chunk = [0u8; 64 * 1024];
    loop {
        let n = file.read(&mut chunk).map_err(|_| {
            MemberError::Member(
                "this file in the archive is damaged or its password check failed".into(),
            )
        })?;
        if n == 0 {
            return Ok(out);
        }
        walk.decompressed(n as u64).map_err(MemberError::Budget)?;
        out.extend_from_slice(&chunk[..n]);
        if out.len() as u64 > ratio_cap {
            return Err(MemberError::Member(format!(
                "unpacks to more than {max_ratio} times its packed size (a zip bomb?)"
            )));
        }
    }
}

/// True when `password` opens member `i`: the whole member decrypts and its
/// checksum matches (a ZipCrypto check byte alone passes 1 wrong password in
/// 256).
fn opens(
    archive: &mut ZipArchive<Cursor<&[u8]>>,
    i: usize,
    password: &[u8],
    max_ratio: u32,
) -> bool {
    let compressed = archive.by_index_raw(i).map_or(0, |f| f.compressed_size());
    let Ok(file) = archive.by_index_decrypt(i, password) else {
        return false;
    };
    let cap = compressed
        .saturating_mul(u64::from(max_ratio))
        .max(RATIO_FLOOR);
    std::io::copy(&mut file.take(cap), &mut std::io::sink()).is_ok()
}

/// 7-Zip and RAR: hallpass does not unpack them, but recognises archives whose
/// headers are encrypted (the file list itself is protected): those are what
/// the policy asks for. Others cannot be read and are unscannable.
pub(crate) struct Other;

impl Extractor for Other {
    fn extract(&self, data: &[u8], location: &Location, walk: &mut Walk<'_>) -> Result<(), String> {
        let (encrypted, what) = if data.starts_with(b"7z\xBC\xAF\x27\x1C") {
            (seven_zip_headers_encrypted(data), "7-Zip")
        } else {
            (rar_headers_encrypted(data), "RAR")
        };
        if encrypted {
            walk.mark_encrypted(location);
            Ok(())
        } else {
            Err(format!(
                "hallpass cannot unpack {what} archives without encrypted headers; send a ZIP, or encrypt it"
            ))
        }
    }
}

/// 7-Zip: with encrypted headers the end header is an encoded header whose
/// coder is 7zAES (method id 06 F1 07 01).
fn seven_zip_headers_encrypted(data: &[u8]) -> bool {
    if data.len() < 32 {
        return false;
    }
    let offset = u64::from_le_bytes(data[12..20].try_into().expect("8 bytes"));
    let size = u64::from_le_bytes(data[20..28].try_into().expect("8 bytes"));
    let start = 32u64.saturating_add(offset);
    let end = start.saturating_add(size);
    let Some(header) = usize::try_from(start)
        .ok()
        .zip(usize::try_from(end).ok())
        .and_then(|(s, e)| data.get(s..e))
    else {
        return false;
    };
    header.first() == Some(&0x17)
        && memchr::memmem::find(header, &[0x06, 0xF1, 0x07, 0x01]).is_some()
}

/// RAR 5: the first header after the signature is an archive encryption
/// header (type 4). RAR 4: the main header has the "block headers are
/// encrypted" flag (0x0080).
fn rar_headers_encrypted(data: &[u8]) -> bool {
    if let Some(rest) = data.strip_prefix(b"Rar!\x1A\x07\x01\x00") {
        let Some(rest) = rest.get(4..) else {
            return false;
        };
        let (Some((_, n)), rest) = (vint(rest), rest) else {
            return false;
        };
        return vint(&rest[n..]).is_some_and(|(t, _)| t == 4);
    }
    if let Some(rest) = data.strip_prefix(b"Rar!\x1A\x07\x00") {
        return rest.len() >= 5
            && rest[2] == 0x73
            && u16::from_le_bytes([rest[3], rest[4]]) & 0x0080 != 0;
    }
    false
}

/// A RAR 5 variable-length integer: the value and how many bytes it took.
fn vint(b: &[u8]) -> Option<(u64, usize)> {
    let mut v = 0u64;
    for (i, &byte) in b.iter().enumerate().take(10) {
        v |= u64::from(byte & 0x7F) << (7 * i);
        if byte & 0x80 == 0 {
            return Some((v, i + 1));
        }
    }
    None
}
