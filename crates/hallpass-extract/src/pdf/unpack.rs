//! What a PDF's compressed streams unpack to, counted before lopdf unpacks
//! them.
//!
//! lopdf inflates a stream whole, into memory, whenever it is asked for its
//! content, and some streams while it loads the file: cross-reference
//! streams, and object streams (`/Type /ObjStm`, or in an encrypted file the
//! containers its cross-reference table names), whose unpacked bytes then
//! stay in the document. A few hundred kilobytes of deflated zeros become
//! gigabytes before anything downstream can count them. So every stream is
//! first decoded here into a counting sink that stops at the room left in
//! the message's budget:
//!
//! 1. [`check_file`], on the raw bytes, before lopdf sees them: each stream
//!    alone must fit in the room. The file is not parsed (a second parser
//!    would disagree with lopdf's somewhere, and the disagreement would be
//!    the way in): every filter chain the file declares anywhere is tried on
//!    every stream, and the largest result counts.
//! 2. [`probe`] then loads a copy in which object streams and encryption are
//!    renamed away, so lopdf unpacks and decrypts nothing, and
//!    [`load_time_bytes`] counts, with each stream's own filters, what the
//!    real load will unpack: the object streams all together must fit. For
//!    an encrypted file this is done with the password that will open it,
//!    each stream decrypted first, since its bytes in the file say nothing.
//!
//! Only what lopdf decodes counts: `FlateDecode` (with lopdf's retry as raw
//! deflate), `LZWDecode` (both code-width conventions) and `ASCII85Decode`.
//! A chain naming anything else fails in lopdf and unpacks nothing. A chain
//! with two expanding filters (deflate inside deflate) multiplies their
//! ratios and is refused: no PDF writer makes one.

use std::borrow::Cow;
use std::collections::HashSet;
use std::io::{self, Read, Write};

use pdf_extract::encryption::decrypt_object;
use pdf_extract::xref::XrefEntry;
use pdf_extract::{Document, EncryptionState, Object, ObjectId, Stream};

/// Why a PDF is refused before lopdf reads it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Refused {
    /// It unpacks to more than the room left in the message's budget.
    TooBig,
    /// A stream is compressed inside compressed data.
    Nested,
    /// It declares more filter chains than any real file.
    ManyChains,
    /// A name lopdf acts on (`/Encrypt`, `/ObjStm`) is written with `#`
    /// escapes, which no PDF writer does: a file built to be read one way
    /// here and another way by lopdf.
    Disguised,
    /// The message's time ran out.
    Late,
}

/// A decoding filter lopdf applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Filter {
    Flate,
    Lzw,
    Ascii85,
}

impl Filter {
    fn from_name(name: &[u8]) -> Option<Filter> {
        match name {
            b"FlateDecode" => Some(Filter::Flate),
            b"LZWDecode" => Some(Filter::Lzw),
            b"ASCII85Decode" => Some(Filter::Ascii85),
            _ => None,
        }
    }

    fn expands(self) -> bool {
        matches!(self, Filter::Flate | Filter::Lzw)
    }
}

/// More distinct filter chains than this in one file is not a real file
/// (real ones declare one to three): each chain is tried on every stream.
const MAX_CHAINS: usize = 32;
/// How often, in streams, the message's clock is asked.
const CLOCK_EVERY: usize = 32;

/// Checks every stream of the raw file against `room`, each on its own.
/// `true` when the file mentions `/ObjStm` or `/Encrypt`: lopdf's load may
/// then unpack streams, and [`probe`] and [`load_time_bytes`] must count
/// them.
pub(super) fn check_file(
    data: &[u8],
    room: u64,
    in_time: &mut dyn FnMut() -> bool,
) -> Result<bool, Refused> {
    let names = unescape_names(data);
    let (encrypt, objstm) = (&b"/Encrypt"[..], &b"/ObjStm"[..]);
    for key in [encrypt, objstm] {
        if count(&names, key) > count(data, key) {
            return Err(Refused::Disguised);
        }
    }
    let chains = declared_chains(&names)?;
    let unpacks_on_load = count(data, objstm) > 0 || count(data, encrypt) > 0;
    drop(names);
    for (k, start) in stream_data_starts(data).enumerate() {
        if k % CLOCK_EVERY == 0 && !in_time() {
            return Err(Refused::Late);
        }
        for chain in &chains {
            chain_size(chain, &data[start..], room)?;
        }
    }
    Ok(unpacks_on_load)
}

/// The file loaded with its object streams and encryption renamed away
/// (`/ObjStx`, `/Encrypx`, same lengths so every offset holds): lopdf then
/// unpacks no object stream and decrypts nothing, and each stream's
/// dictionary and bytes are there to be counted. `/Encrypt` is put back in
/// the trailer so the encryption can be worked out from it.
pub(super) fn probe(data: &[u8]) -> Option<Document> {
    let mut copy = data.to_vec();
    rename(&mut copy, b"/ObjStm", b"/ObjStx");
    rename(&mut copy, b"/Encrypt", b"/Encrypx");
    let mut doc = Document::load_mem(&copy).ok()?;
    if let Some(encrypt) = doc.trailer.remove(b"Encrypx") {
        doc.trailer.set("Encrypt", encrypt);
    }
    Some(doc)
}

/// Bytes lopdf will unpack while it loads the file (opened with `password`
/// when it is encrypted), counted on `probe`. Every other stream is checked
/// against `room` too: lopdf or pdf-extract may unpack any of them later, and
/// in an encrypted file the raw check could not see their bytes.
pub(super) fn load_time_bytes(
    probe: &Document,
    password: Option<&str>,
    room: u64,
    in_time: &mut dyn FnMut() -> bool,
) -> Result<u64, Refused> {
    let encryption = match password {
        Some(p) => match EncryptionState::decode(probe, p) {
            Ok(state) => Some(state),
            // lopdf cannot work out the key either, so it decrypts nothing.
            Err(_) => return Ok(0),
        },
        None => None,
    };
    let encrypt_id = probe
        .trailer
        .get(b"Encrypt")
        .and_then(Object::as_reference)
        .ok();
    // Encrypted, lopdf unpacks the containers its cross-reference table
    // names, whatever their type; otherwise the streams typed as object
    // streams.
    let containers: HashSet<u32> = probe
        .reference_table
        .entries
        .values()
        .filter_map(|e| match e {
            XrefEntry::Compressed { container, .. } => Some(*container),
            _ => None,
        })
        .collect();
    let mut total = 0u64;
    for (k, (&id, object)) in probe.objects.iter().enumerate() {
        if k % CLOCK_EVERY == 0 && !in_time() {
            return Err(Refused::Late);
        }
        let Object::Stream(stream) = object else {
            continue;
        };
        if Some(id) == encrypt_id {
            continue;
        }
        let plain = match &encryption {
            Some(state) => decrypted(state, id, stream),
            None => Cow::Borrowed(stream),
        };
        let on_load = match encryption {
            Some(_) => containers.contains(&id.0),
            None => plain.dict.has_type(b"ObjStx"),
        };
        let Some(chain) = chain_of(&plain)? else {
            continue;
        };
        let cap = if on_load { room - total } else { room };
        let size = chain_size(&chain, &plain.content, cap)?;
        if on_load {
            total += size;
        }
    }
    Ok(total)
}

/// `stream` decrypted as lopdf decrypts it; on failure lopdf keeps the
/// bytes as they are, and so does this.
fn decrypted<'s>(state: &EncryptionState, id: ObjectId, stream: &'s Stream) -> Cow<'s, Stream> {
    let mut object = Object::Stream(stream.clone());
    let _ = decrypt_object(state, id, &mut object);
    match object {
        Object::Stream(s) => Cow::Owned(s),
        _ => Cow::Borrowed(stream),
    }
}

/// The filters lopdf will apply to `stream`, or `None` when it will apply
/// none or fail (a filter it does not have, a `/Filter` it cannot read).
fn chain_of(stream: &Stream) -> Result<Option<Vec<Filter>>, Refused> {
    let Ok(names) = stream.filters() else {
        return Ok(None);
    };
    let chain: Option<Vec<Filter>> = names.iter().map(|n| Filter::from_name(n)).collect();
    match chain {
        Some(c) if c.iter().filter(|f| f.expands()).count() > 1 => Err(Refused::Nested),
        Some(c) if !c.is_empty() => Ok(Some(c)),
        _ => Ok(None),
    }
}

/// Occurrences of `key` as a whole name (not a prefix of a longer one).
fn count(data: &[u8], key: &[u8]) -> usize {
    memchr::memmem::find_iter(data, key)
        .filter(|&i| data.get(i + key.len()).is_none_or(|&b| !is_regular(b)))
        .count()
}

/// Replaces whole-name occurrences of `from` by `to`, of the same length.
fn rename(data: &mut [u8], from: &[u8], to: &[u8]) {
    debug_assert_eq!(from.len(), to.len());
    let at: Vec<usize> = memchr::memmem::find_iter(data, from)
        .filter(|&i| data.get(i + from.len()).is_none_or(|&b| !is_regular(b)))
        .collect();
    for i in at {
        data[i..i + to.len()].copy_from_slice(to);
    }
}

/// A byte that continues a name: not white space, not a delimiter.
fn is_regular(b: u8) -> bool {
    !b.is_ascii_whitespace()
        && b != 0
        && b != 0x0c
        && !matches!(
            b,
            b'(' | b')' | b'<' | b'>' | b'[' | b']' | b'{' | b'}' | b'/' | b'%'
        )
}

/// The bytes with every `#hh` escape decoded, as lopdf decodes them in
/// names. Done everywhere, which finds more than there is, never less.
fn unescape_names(data: &[u8]) -> Cow<'_, [u8]> {
    if memchr::memchr(b'#', data).is_none() {
        return Cow::Borrowed(data);
    }
    let hex = |b: u8| (b as char).to_digit(16).map(|d| d as u8);
    let mut out = Vec::with_capacity(data.len());
    let mut i = 0;
    while i < data.len() {
        if data[i] == b'#'
            && let (Some(h), Some(l)) = (
                data.get(i + 1).copied().and_then(hex),
                data.get(i + 2).copied().and_then(hex),
            )
        {
            out.push(h << 4 | l);
            i += 3;
        } else {
            out.push(data[i]);
            i += 1;
        }
    }
    Cow::Owned(out)
}

/// Every distinct filter chain the file declares (`/Filter /FlateDecode`,
/// `/Filter [/ASCII85Decode /FlateDecode]`) that lopdf can decode.
fn declared_chains(names: &[u8]) -> Result<Vec<Vec<Filter>>, Refused> {
    let mut chains: Vec<Vec<Filter>> = Vec::new();
    for at in memchr::memmem::find_iter(names, b"/Filter") {
        let mut i = at + b"/Filter".len();
        if names.get(i).is_some_and(|&b| is_regular(b)) {
            continue;
        }
        skip_space(names, &mut i);
        let parsed = match names.get(i) {
            Some(b'/') => name(names, &mut i).map(|n| vec![n]),
            Some(b'[') => {
                i += 1;
                let mut list = Vec::new();
                loop {
                    skip_space(names, &mut i);
                    match names.get(i) {
                        Some(b']') => break Some(list),
                        Some(b'/') => match name(names, &mut i) {
                            Some(n) => list.push(n),
                            None => break None,
                        },
                        _ => break None,
                    }
                }
            }
            // A reference or anything else: lopdf's `filters()` fails and
            // the stream is used as it is.
            _ => None,
        };
        let Some(names) = parsed else { continue };
        let Some(chain) = names
            .iter()
            .map(|n| Filter::from_name(n))
            .collect::<Option<Vec<_>>>()
        else {
            continue;
        };
        if chain.iter().filter(|f| f.expands()).count() > 1 {
            return Err(Refused::Nested);
        }
        if !chain.is_empty() && !chains.contains(&chain) {
            chains.push(chain);
            if chains.len() > MAX_CHAINS {
                return Err(Refused::ManyChains);
            }
        }
    }
    Ok(chains)
}

fn skip_space(data: &[u8], i: &mut usize) {
    while let Some(&b) = data.get(*i) {
        if b.is_ascii_whitespace() || b == 0 || b == 0x0c {
            *i += 1;
        } else if b == b'%' {
            while data.get(*i).is_some_and(|&b| b != b'\r' && b != b'\n') {
                *i += 1;
            }
        } else {
            break;
        }
    }
}

/// A name at `*i` (which is `/`), without its slash.
fn name<'d>(data: &'d [u8], i: &mut usize) -> Option<&'d [u8]> {
    let start = *i + 1;
    *i = start;
    while data.get(*i).is_some_and(|&b| is_regular(b)) {
        *i += 1;
    }
    Some(&data[start..*i])
}

/// Where each stream's data starts, as lopdf's parser finds it: the keyword
/// `stream`, spaces or tabs, then one end of line. A keyword inside other
/// data only adds a place to try.
fn stream_data_starts(data: &[u8]) -> impl Iterator<Item = usize> + '_ {
    memchr::memmem::find_iter(data, b"stream").filter_map(move |i| {
        if i >= 3 && &data[i - 3..i] == b"end" {
            return None;
        }
        let mut j = i + b"stream".len();
        while data.get(j).is_some_and(|&b| b == b' ' || b == b'\t') {
            j += 1;
        }
        match data.get(j..)? {
            [b'\r', b'\n', ..] => Some(j + 2),
            [b'\n', ..] | [b'\r', ..] => Some(j + 1),
            _ => None,
        }
    })
}

/// The most memory lopdf holds to decode `input` through `chain` (the
/// largest output of one filter), or `TooBig` past `cap`. `input` may run on
/// past the stream's end: the decoders stop at their own end markers, and
/// more input only ever counts more.
fn chain_size(chain: &[Filter], input: &[u8], cap: u64) -> Result<u64, Refused> {
    let mut current: Cow<'_, [u8]> = Cow::Borrowed(input);
    let mut largest = 0u64;
    for (k, filter) in chain.iter().enumerate() {
        let size = match filter {
            Filter::Ascii85 => {
                let Some(out) = ascii85(&current, cap)? else {
                    // lopdf fails the whole chain.
                    return Ok(largest);
                };
                let n = out.len() as u64;
                current = Cow::Owned(out);
                n
            }
            Filter::Flate | Filter::Lzw => {
                let n = if *filter == Filter::Flate {
                    inflated(&current, cap)?
                } else {
                    lzw(&current, cap)?
                };
                // Only ASCII85 may follow (two expanding filters are
                // refused), and it gives at most four bytes for each in.
                let after = (chain.len() - k - 1) as u32;
                let n = n.saturating_mul(4u64.saturating_pow(after));
                largest = largest.max(n);
                if largest > cap {
                    return Err(Refused::TooBig);
                }
                return Ok(largest);
            }
        };
        largest = largest.max(size);
        if largest > cap {
            return Err(Refused::TooBig);
        }
    }
    Ok(largest)
}

/// Bytes lopdf's zlib decoding gives, with its retry as raw deflate after
/// the two-byte header when zlib fails (tried whenever it fails, which
/// counts at least as much).
fn inflated(input: &[u8], cap: u64) -> Result<u64, Refused> {
    let (n, failed) = read_count(flate2::read::ZlibDecoder::new(input), cap)?;
    if failed && input.len() > 2 {
        let (raw, _) = read_count(flate2::read::DeflateDecoder::new(&input[2..]), cap)?;
        return Ok(n.max(raw));
    }
    Ok(n)
}

/// Reads `r` to its end or first error, counting; `true` when it failed.
fn read_count(mut r: impl Read, cap: u64) -> Result<(u64, bool), Refused> {
    let mut buf = [0u8; 32 * 1024];
    let mut n = 0u64;
    loop {
        match r.read(&mut buf) {
            Ok(0) => return Ok((n, false)),
            Ok(k) => {
                n += k as u64;
                if n > cap {
                    return Err(Refused::TooBig);
                }
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => return Ok((n, true)),
        }
    }
}

/// Bytes lopdf's LZW decoding gives, with or without the early change of
/// code width (`/EarlyChange`), whichever is more.
fn lzw(input: &[u8], cap: u64) -> Result<u64, Refused> {
    use weezl::{BitOrder, decode::Decoder};
    let mut most = 0;
    for early in [true, false] {
        let mut decoder = if early {
            Decoder::with_tiff_size_switch(BitOrder::Msb, 8)
        } else {
            Decoder::new(BitOrder::Msb, 8)
        };
        let mut sink = Counter { n: 0, cap };
        let _ = decoder.into_stream(&mut sink).decode_all(input);
        if sink.n > cap {
            return Err(Refused::TooBig);
        }
        most = most.max(sink.n);
    }
    Ok(most)
}

/// A writer that only counts, and fails once past its cap.
struct Counter {
    n: u64,
    cap: u64,
}

impl Write for Counter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.n += buf.len() as u64;
        if self.n > self.cap {
            return Err(io::Error::other("over the cap"));
        }
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// ASCII85 decoded as lopdf decodes it (stopping at the first byte outside
/// the alphabet), or `None` where lopdf fails; `TooBig` past `cap`.
fn ascii85(input: &[u8], cap: u64) -> Result<Option<Vec<u8>>, Refused> {
    let mut out = Vec::new();
    let (mut group, mut count) = (0u32, 0usize);
    for &c in input {
        if out.len() as u64 > cap {
            return Err(Refused::TooBig);
        }
        if c == b'z' {
            if count != 0 {
                return Ok(None);
            }
            out.extend_from_slice(&[0; 4]);
            continue;
        }
        if c.is_ascii_whitespace() {
            continue;
        }
        if !(b'!'..=b'u').contains(&c) {
            break;
        }
        let Some(g) = group
            .checked_mul(85)
            .and_then(|g| g.checked_add(u32::from(c - b'!')))
        else {
            return Ok(None);
        };
        group = g;
        count += 1;
        if count == 5 {
            out.extend_from_slice(&group.to_be_bytes());
            (group, count) = (0, 0);
        }
    }
    if count > 0 {
        for _ in count..5 {
            let Some(g) = group.checked_mul(85).and_then(|g| g.checked_add(84)) else {
                return Ok(None);
            };
            group = g;
        }
        out.extend_from_slice(&group.to_be_bytes()[..count - 1]);
    }
    Ok(Some(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn deflate(data: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::best());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    fn never_late() -> impl FnMut() -> bool {
        || true
    }

    #[test]
    fn chains_are_read_from_names_and_arrays_escapes_and_comments() {
        let text = b"<< /Filter /FlateDecode >> << /Filter [ /ASCII85Decode %x\n /Fl#61teDecode ] >> << /Filter 7 0 R >> << /Filter [/DCTDecode] >> << /FilterX /LZWDecode >>";
        let chains = declared_chains(&unescape_names(text)).unwrap();
        assert_eq!(
            chains,
            [vec![Filter::Flate], vec![Filter::Ascii85, Filter::Flate]]
        );
    }

    #[test]
    fn deflate_inside_deflate_is_refused() {
        let text = b"<< /Filter [/FlateDecode /FlateDecode] >>";
        assert_eq!(declared_chains(text), Err(Refused::Nested));
    }

    #[test]
    fn streams_start_after_the_keyword_and_one_end_of_line() {
        let data = b"<<>> stream\r\nAB endstream <<>>stream \t\nCD endstream <<>>streamX";
        let starts: Vec<&[u8]> = stream_data_starts(data).map(|s| &data[s..s + 2]).collect();
        assert_eq!(starts, [b"AB", b"CD"]);
    }

    #[test]
    fn a_deflated_stream_counts_what_it_inflates_to() {
        let packed = deflate(&vec![b' '; 1 << 20]);
        assert_eq!(chain_size(&[Filter::Flate], &packed, 2 << 20), Ok(1 << 20));
        assert_eq!(
            chain_size(&[Filter::Flate], &packed, 1000),
            Err(Refused::TooBig)
        );
        // Trailing bytes past the stream change nothing.
        let mut more = packed.clone();
        more.extend_from_slice(b"\r\nendstream\nendobj\n");
        assert_eq!(chain_size(&[Filter::Flate], &more, 2 << 20), Ok(1 << 20));
    }

    #[test]
    fn raw_deflate_counts_as_lopdf_retries_it() {
        // A zlib header that fails its check, then raw deflate data.
        let mut e = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::best());
        e.write_all(&vec![0u8; 100_000]).unwrap();
        let mut data = b"\x78\x00".to_vec();
        data.extend(e.finish().unwrap());
        assert_eq!(chain_size(&[Filter::Flate], &data, 1 << 20), Ok(100_000));
    }

    #[test]
    fn an_lzw_stream_counts_what_it_decodes_to() {
        let text = vec![b'a'; 200_000];
        for early in [true, false] {
            let packed = if early {
                weezl::encode::Encoder::with_tiff_size_switch(weezl::BitOrder::Msb, 8)
                    .encode(&text)
                    .unwrap()
            } else {
                weezl::encode::Encoder::new(weezl::BitOrder::Msb, 8)
                    .encode(&text)
                    .unwrap()
            };
            assert!(chain_size(&[Filter::Lzw], &packed, 1 << 20).unwrap() >= 200_000);
            assert_eq!(
                chain_size(&[Filter::Lzw], &packed, 100_000),
                Err(Refused::TooBig)
            );
        }
    }

    #[test]
    fn ascii85_decodes_as_lopdf_does() {
        assert_eq!(
            ascii85(b"87cURD]j7BEbo80~>", 100),
            Ok(Some(b"Hello world!".to_vec()))
        );
        assert_eq!(ascii85(b"zz", 100), Ok(Some(vec![0; 8])));
        assert_eq!(ascii85(b"!z", 100), Ok(None));
        // Deflate hidden under ASCII85 is still counted.
        let packed = deflate(&vec![0u8; 1 << 20]);
        let mut a85 = Vec::new();
        for chunk in packed.chunks(4) {
            let mut b = [0u8; 4];
            b[..chunk.len()].copy_from_slice(chunk);
            let mut v = u32::from_be_bytes(b);
            let mut digits = [0u8; 5];
            for d in digits.iter_mut().rev() {
                *d = (v % 85) as u8 + b'!';
                v /= 85;
            }
            a85.extend_from_slice(&digits[..chunk.len() + 1]);
        }
        a85.extend_from_slice(b"~>");
        assert_eq!(
            chain_size(&[Filter::Ascii85, Filter::Flate], &a85, 2 << 20),
            Ok(1 << 20)
        );
    }

    #[test]
    fn a_file_is_checked_stream_by_stream_with_every_declared_chain() {
        let mut pdf = b"%PDF-1.4\n1 0 obj << /Length 9 /Filter /FlateDecode >> stream\n".to_vec();
        pdf.extend(deflate(&vec![b' '; 4 << 20]));
        pdf.extend_from_slice(b"\nendstream\nendobj\n");
        assert_eq!(
            check_file(&pdf, 1 << 20, &mut never_late()),
            Err(Refused::TooBig)
        );
        assert_eq!(check_file(&pdf, 8 << 20, &mut never_late()), Ok(false));
        // Declared nowhere, a filter is not applied: nothing to count.
        let plain = String::from_utf8_lossy(&pdf).replace("/Filter /FlateDecode", "");
        assert!(check_file(plain.as_bytes(), 1 << 20, &mut never_late()).is_ok());
    }

    #[test]
    fn escaped_names_lopdf_acts_on_are_refused() {
        let pdf = b"%PDF-1.5\ntrailer << /Encr#79pt 5 0 R >>";
        assert_eq!(
            check_file(pdf, 1 << 20, &mut never_late()),
            Err(Refused::Disguised)
        );
        let pdf = b"%PDF-1.5\n1 0 obj << /Type /Obj#53tm >>";
        assert_eq!(
            check_file(pdf, 1 << 20, &mut never_late()),
            Err(Refused::Disguised)
        );
        let pdf = b"%PDF-1.5\ntrailer << /Encrypt 5 0 R >> /EncryptMetadata";
        assert_eq!(check_file(pdf, 1 << 20, &mut never_late()), Ok(true));
    }

    #[test]
    fn the_clock_is_asked() {
        let pdf = b"%PDF-1.4\n1 0 obj << >> stream\nx\nendstream";
        assert_eq!(check_file(pdf, 1 << 20, &mut || false), Err(Refused::Late));
    }

    #[test]
    fn renaming_keeps_every_offset() {
        let mut data = b"/ObjStm /ObjStmX /Encrypt 1 0 R /EncryptMetadata".to_vec();
        let len = data.len();
        rename(&mut data, b"/ObjStm", b"/ObjStx");
        rename(&mut data, b"/Encrypt", b"/Encrypx");
        assert_eq!(data.len(), len);
        assert_eq!(
            data,
            b"/ObjStx /ObjStmX /Encrypx 1 0 R /EncryptMetadata".to_vec()
        );
    }
}
