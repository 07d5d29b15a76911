//! PDF attachments: the text of every page, handed on one page at a time.
//!
//! lopdf (re-exported by pdf-extract) parses the file and decrypts it;
//! pdf-extract turns each page's glyphs into text, spacing words and lines by
//! where they sit on the page. pdf-extract trusts its input, though: it panics
//! on malformed objects, recurses without bound (page-tree parents, a form
//! that draws itself, nested brackets in a font's character map) and re-reads
//! a form or font every time it is used. A panic can be caught; a stack
//! overflow aborts the process and runaway work hangs the relay. So before
//! pdf-extract sees a document, this file walks what it will walk:
//!
//! - [`defuse`] empties what carries no text (pictures, TrueType programs),
//!   decompresses font data once and checks its nesting;
//! - [`PageCheck`] follows each page's drawing instructions as pdf-extract
//!   will (fonts, forms within forms), counting every byte it will read
//!   against the message's budget, and pins each page's inherited attributes
//!   on the page itself so pdf-extract never climbs the page tree;
//! - a page that fails is blanked and named in the reason, and the rest of
//!   the document is still read.
//!
//! What pdf-extract still panics on (fonts it does not support, odd operands)
//! costs the page it happened on: [`output`] catches it, blanks the pages
//! already read and carries on from the next one.
//!
//! Encryption: a PDF that opens with the empty user password (an
//! owner-password-only PDF, which restricts printing or copying) is read like
//! any other. One that needs a password is marked encrypted and tried with
//! the passwords written in the message; unopened, it is not unscannable: it
//! is what the school's policy asks staff to do.

use std::cell::RefCell;
use std::collections::{HashMap, HashSet};
use std::io;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::rc::Rc;

use hallpass_core::Location;
use pdf_extract::content::{Content, Operation};
use pdf_extract::{
    Dictionary, Document, LoadOptions, MediaBox, Object, ObjectId, OutputDev, OutputError,
    PlainTextOutput, Stream, Transform,
};

use crate::{Extractor, View, Walk};

mod unpack;

/// Reads PDF attachments.
pub(crate) struct Pdf;

const DAMAGED: &str = "the PDF is damaged and could not be read";

/// A page tree deeper than this is not a real one (they are a few levels).
const MAX_TREE_DEPTH: usize = 64;
/// Forms drawn within forms: pdf-extract recurses once per level.
const MAX_FORM_DEPTH: usize = 16;
/// Forms drawn on one page, counting repeats: pdf-extract re-reads a form
/// each time it is drawn, so a few forms drawing each other twice over make
/// exponential work out of a small file.
const MAX_DRAWS_PER_PAGE: u32 = 10_000;
/// Drawing instructions on one page, forms included. A dense page of text
/// has tens of thousands; each costs memory in lopdf and in pdf-extract.
const MAX_OPS_PER_PAGE: usize = 1_000_000;
/// Unclosed saves of the graphics state (`q`) in one stream: pdf-extract
/// copies the whole state for each.
const MAX_SAVES: usize = 1_000;
/// Brackets nested in a font's character map or Type 1 header. The parsers
/// pdf-extract uses recurse once per level and overflow a 2 MiB thread stack
/// at 300 to 1,000 levels in a debug build (1,000 to 3,000 in release); real
/// files nest two or three deep.
const MAX_NESTING: usize = 64;
/// After pdf-extract has panicked on this many pages, hallpass stops trying.
const MAX_FAILED_PAGES: usize = 8;
/// US Letter, what readers assume for a page with no size.
const DEFAULT_MEDIA_BOX: [f32; 4] = [0.0, 0.0, 612.0, 792.0];
/// An empty character map and Type 1 header that pdf-extract's parsers
/// accept, to stand in for one that is too deeply nested to parse.
const EMPTY_CMAP: &[u8] = b"begincmap endcmap";
const EMPTY_TYPE1: &[u8] = b"/FontName /Empty def";

impl Extractor for Pdf {
    fn extract(&self, data: &[u8], location: &Location, walk: &mut Walk<'_>) -> Result<(), String> {
        let max = walk.limits().max_pdf_objects as usize;
        // Counted in the raw bytes so an oversized file is refused before
        // lopdf builds it; objects packed in object streams are counted
        // again once loaded.
        if object_headers(data) > max {
            return Err(too_many_objects(max));
        }
        // lopdf unpacks streams whole, some of them while it loads: what they
        // unpack to is counted first (`unpack`).
        let room = walk.decompression_room();
        let checked = unpack::check_file(data, room, &mut || walk.in_time(location));
        let unpacks_on_load = checked.map_err(|r| refusal(r, walk))?;
        let probe = match unpacks_on_load {
            true => Some(unpack::probe(data).ok_or(DAMAGED)?),
            false => None,
        };
        if let Some(p) = &probe {
            // lopdf opens a PDF whose user password is empty by itself while
            // it loads, and decrypts nothing of one that needs a password.
            let password = match (p.trailer.has(b"Encrypt"), p.authenticate_password("")) {
                (false, _) => Some(None),
                (true, Ok(())) => Some(Some("")),
                (true, Err(_)) => None,
            };
            if let Some(password) = password {
                let counted =
                    unpack::load_time_bytes(p, password, room, &mut || walk.in_time(location));
                let bytes = counted.map_err(|r| refusal(r, walk))?;
                walk.decompressed(bytes)?;
            }
        }
        let mut doc = Document::load_mem(data).map_err(|_| DAMAGED.to_string())?;
        // lopdf drops /Encrypt from the trailer of a PDF it opened; one still
        // there needs a password.
        if doc.trailer.has(b"Encrypt") {
            if doc.get_encrypted().is_err() {
                // An /Encrypt that leads nowhere protects nothing a reader
                // would honour: refuse it rather than call it encrypted.
                return Err(DAMAGED.to_string());
            }
            walk.mark_encrypted(location);
            // Mentioned nowhere in the raw bytes, lopdf found encryption:
            // something disguised it, and its streams cannot be counted.
            let probe = probe.as_ref().ok_or(DAMAGED)?;
            match unlock(&doc, probe, data, location, walk)? {
                Some(opened) => {
                    doc = opened;
                    walk.password_opened(location);
                }
                None => return Ok(()),
            }
        }
        if doc.objects.len() > max {
            return Err(too_many_objects(max));
        }
        read(&mut doc, location, walk)
    }
}

/// What the DPO is told when `unpack` refuses a PDF.
fn refusal(why: unpack::Refused, walk: &Walk<'_>) -> String {
    let max = walk.limits().max_decompressed_bytes;
    match why {
        unpack::Refused::TooBig => {
            format!("the PDF would unpack to more than the limit of {max} bytes per message")
        }
        unpack::Refused::Nested => {
            "the PDF compresses data inside compressed data, which hallpass does not unpack".into()
        }
        unpack::Refused::ManyChains => {
            "the PDF uses more kinds of compression than hallpass reads in one file".into()
        }
        unpack::Refused::Disguised => {
            "the PDF disguises how it is built, so it could not be read safely".into()
        }
        unpack::Refused::Late => "reading this message took longer than the time budget".into(),
    }
}

fn too_many_objects(max: usize) -> String {
    format!("the PDF has more than {max} objects")
}

/// Indirect objects written in the file (`12 0 obj`), counted without
/// parsing. `endobj` does not count: its `obj` follows a letter.
fn object_headers(data: &[u8]) -> usize {
    memchr::memmem::find_iter(data, b"obj")
        .filter(|&i| {
            i > 0
                && data[i - 1].is_ascii_whitespace()
                && data.get(i + 3).is_none_or(|b| !b.is_ascii_alphanumeric())
        })
        .count()
}

/// The document opened with the first password from the message that
/// authenticates, as the user or as the owner (either opens it in a
/// reader). What lopdf will unpack while it decrypts is counted on `probe`
/// first, with that password.
fn unlock(
    locked: &Document,
    probe: &Document,
    data: &[u8],
    location: &Location,
    walk: &mut Walk<'_>,
) -> Result<Option<Document>, String> {
    for password in walk.passwords().to_vec() {
        if locked.authenticate_password(&password).is_err() {
            continue;
        }
        let room = walk.decompression_room();
        let counted =
            unpack::load_time_bytes(probe, Some(&password), room, &mut || walk.in_time(location));
        let bytes = counted.map_err(|r| refusal(r, walk))?;
        if let Ok(doc) =
            Document::load_mem_with_options(data, LoadOptions::with_password(&password))
            && !doc.trailer.has(b"Encrypt")
        {
            walk.decompressed(bytes)?;
            return Ok(Some(doc));
        }
    }
    Ok(None)
}

/// Reads an open document: defuses it, checks every page, then extracts.
fn read(doc: &mut Document, location: &Location, walk: &mut Walk<'_>) -> Result<(), String> {
    let mut trouble = Trouble::default();
    defuse(doc, walk, &mut trouble)?;
    let pages: Vec<ObjectId> = doc.get_pages().into_values().collect();
    if pages.is_empty() {
        return Err("the PDF has no pages that could be read".into());
    }
    if declared_pages(doc).is_some_and(|n| n > pages.len() as i64) {
        trouble.note("some of the PDF's pages could not be found");
    }
    // Past the budget, the pages already checked are still read and the
    // budget is the reason given.
    let mut over_budget = None;
    for (i, &id) in pages.iter().enumerate() {
        if over_budget.is_some() {
            blank(doc, id);
            continue;
        }
        match check_page(doc, id, walk) {
            Ok(fix) => {
                if fix.missing_content {
                    trouble.page(i + 1, "part of its content is missing");
                }
                fix.apply(doc, id);
            }
            Err(Stop::Budget(reason)) => {
                over_budget = Some(reason);
                blank(doc, id);
            }
            Err(Stop::Page(why)) => {
                trouble.page(i + 1, why);
                blank(doc, id);
            }
        }
    }
    output(doc, &pages, location, walk, &mut trouble);
    match over_budget {
        Some(reason) => Err(reason),
        None => trouble.into_result(),
    }
}

/// The page count the document declares, to notice pages lopdf could not
/// find (a page tree pointing at missing objects).
fn declared_pages(doc: &Document) -> Option<i64> {
    let root = doc.catalog().ok()?.get(b"Pages").ok()?;
    let (_, root) = doc.dereference(root).ok()?;
    root.as_dict().ok()?.get(b"Count").ok()?.as_i64().ok()
}

/// What went wrong while reading, kept for the one reason given to the DPO.
#[derive(Default)]
struct Trouble {
    first: Option<String>,
    more: usize,
}

impl Trouble {
    fn note(&mut self, what: impl Into<String>) {
        if self.first.is_none() {
            self.first = Some(what.into());
        } else {
            self.more += 1;
        }
    }

    fn page(&mut self, number: usize, why: &str) {
        self.note(format!("page {number} of the PDF could not be read: {why}"));
    }

    fn into_result(self) -> Result<(), String> {
        match (self.first, self.more) {
            (None, _) => Ok(()),
            (Some(first), 0) => Err(first),
            (Some(first), more) => Err(format!("{first} (and {more} more problems)")),
        }
    }
}

/// Which part of a font a stream is, by the key that points at it.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum FontPart {
    /// A Type 1 font program: pdf-extract reads the encoding in its
    /// cleartext header.
    Type1,
    /// A TrueType font program: pdf-extract decompresses it and drops it.
    TrueType,
    /// A compact (CFF) font program: parsed by cff-parser, which limits its
    /// own recursion.
    Compact,
    /// A character map (`ToUnicode`, or a Type 0 font's `Encoding`).
    CMap,
}

const FONT_KEYS: [(&[u8], FontPart); 5] = [
    (b"FontFile", FontPart::Type1),
    (b"FontFile2", FontPart::TrueType),
    (b"FontFile3", FontPart::Compact),
    (b"ToUnicode", FontPart::CMap),
    (b"Encoding", FontPart::CMap),
];

/// Prepares the whole document once, before any page is read: pictures are
/// emptied (no OCR here, and pdf-extract would parse their pixels as drawing
/// instructions), TrueType programs too (pdf-extract only decompresses them),
/// and every other font stream is decompressed once, counted, and checked for
/// nesting its parser cannot survive.
fn defuse(doc: &mut Document, walk: &mut Walk<'_>, trouble: &mut Trouble) -> Result<(), String> {
    let mut parts: Vec<(ObjectId, FontPart)> = Vec::new();
    for object in doc.objects.values() {
        // Font dictionaries may sit directly inside other dictionaries, so
        // every container is searched; lopdf bounds their nesting.
        let mut stack = vec![object];
        while let Some(object) = stack.pop() {
            let dict = match object {
                Object::Dictionary(d) => d,
                Object::Stream(s) => &s.dict,
                Object::Array(items) => {
                    stack.extend(items);
                    continue;
                }
                _ => continue,
            };
            for (key, value) in dict.iter() {
                match (FONT_KEYS.iter().find(|(k, _)| *k == key.as_slice()), value) {
                    (Some(&(_, part)), Object::Reference(id)) => parts.push((*id, part)),
                    _ => stack.push(value),
                }
            }
        }
    }
    for object in doc.objects.values_mut() {
        if let Object::Stream(s) = object
            && s.dict
                .get(b"Subtype")
                .and_then(Object::as_name)
                .is_ok_and(|n| n == b"Image")
        {
            set_plain(s, Vec::new());
        }
    }
    parts.sort_unstable();
    parts.dedup();
    let mut malformed = false;
    for (id, part) in parts {
        let Some(Object::Stream(s)) = doc.objects.get_mut(&id) else {
            continue;
        };
        if part == FontPart::TrueType {
            set_plain(s, Vec::new());
            continue;
        }
        // On failure pdf-extract falls back to the raw bytes, and so do we.
        if s.filters().is_ok()
            && let Ok(plain) = s.decompressed_content()
        {
            walk.decompressed(plain.len() as u64)?;
            set_plain(s, plain);
        }
        match part {
            FontPart::Type1 => {
                // Only the cleartext header is needed, and the encrypted
                // program after `eexec` is binary that the PostScript lexer
                // would otherwise wander through.
                if let Some(at) = memchr::memmem::find(&s.content, b"eexec") {
                    let header = s.content[..at + 5].to_vec();
                    s.set_content(header);
                }
                if nesting(&s.content) > MAX_NESTING {
                    s.set_content(EMPTY_TYPE1.to_vec());
                    malformed = true;
                }
            }
            FontPart::CMap if nesting(&s.content) > MAX_NESTING => {
                s.set_content(EMPTY_CMAP.to_vec());
                malformed = true;
            }
            _ => {}
        }
    }
    if malformed {
        trouble.note("a font in the PDF is malformed, so some of its text may be missing");
    }
    Ok(())
}

/// Stores `content` as the stream's bytes, with no filter left to undo.
fn set_plain(s: &mut Stream, content: Vec<u8>) {
    s.set_content(content);
    s.dict.remove(b"Filter");
    s.dict.remove(b"DecodeParms");
}

/// How deeply brackets (arrays, strings, dictionaries, procedures) nest in
/// PostScript-like bytes. Approximate, and never under: escapes are skipped
/// but strings are not told apart from code.
fn nesting(bytes: &[u8]) -> usize {
    let (mut depth, mut deepest) = (0usize, 0usize);
    let mut escaped = false;
    for &b in bytes {
        if escaped {
            escaped = false;
            continue;
        }
        match b {
            b'\\' => escaped = true,
            b'[' | b'(' | b'<' | b'{' => {
                depth += 1;
                deepest = deepest.max(depth);
            }
            b']' | b')' | b'>' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    deepest
}

/// Why a page check stopped.
enum Stop {
    /// The message's decompression budget ran out: stop reading altogether.
    Budget(String),
    /// This page cannot be read safely: blank it and say why.
    Page(&'static str),
}

const MISSING_RESOURCE: &str = "it uses a font or picture the file does not contain";
const BAD_CONTENT: &str = "its drawing instructions are damaged";

/// What a page needs before pdf-extract reads it.
struct Fix {
    media_box: [f32; 4],
    resources: Object,
    /// Streams decompressed during the check, stored back so pdf-extract
    /// does not decompress them again.
    inflated: HashMap<ObjectId, Vec<u8>>,
    missing_content: bool,
}

impl Fix {
    fn apply(self, doc: &mut Document, page: ObjectId) {
        if let Ok(dict) = doc.get_dictionary_mut(page) {
            // Set on the page itself, pdf-extract finds them without
            // climbing a page tree that might loop.
            dict.set("MediaBox", media_box(self.media_box));
            dict.set("Resources", self.resources);
            // pdf-extract reads the ArtBox (panicking on a malformed one)
            // but its plain-text output ignores it.
            dict.remove(b"ArtBox");
        }
        for (id, bytes) in self.inflated {
            if let Some(Object::Stream(s)) = doc.objects.get_mut(&id) {
                set_plain(s, bytes);
            }
        }
    }
}

fn media_box(b: [f32; 4]) -> Object {
    Object::Array(b.iter().map(|&v| Object::Real(v)).collect())
}

/// Leaves a page with nothing to read, so pdf-extract passes over it.
fn blank(doc: &mut Document, page: ObjectId) {
    if let Ok(dict) = doc.get_dictionary_mut(page) {
        dict.remove(b"Contents");
        dict.remove(b"ArtBox");
        dict.set("Resources", Dictionary::new());
        dict.set("MediaBox", media_box(DEFAULT_MEDIA_BOX));
    }
}

/// Checks one page as pdf-extract will read it, and says what to fix.
fn check_page(doc: &Document, id: ObjectId, walk: &mut Walk<'_>) -> Result<Fix, Stop> {
    let page = doc
        .get_dictionary(id)
        .map_err(|_| Stop::Page(BAD_CONTENT))?;
    let lineage = lineage(doc, page);
    let media_box = lineage
        .iter()
        .find_map(|d| d.get(b"MediaBox").ok().and_then(|b| page_box(doc, b)))
        .unwrap_or(DEFAULT_MEDIA_BOX);
    let (resources, resources_dict) = lineage
        .iter()
        .find_map(|d| {
            let value = d.get(b"Resources").ok()?;
            let (_, target) = doc.dereference(value).ok()?;
            Some((value.clone(), target.as_dict().ok()?))
        })
        .map_or((Object::Dictionary(Dictionary::new()), None), |(v, d)| {
            (v, Some(d))
        });
    let empty = Dictionary::new();
    let mut check = PageCheck {
        doc,
        walk,
        inflated: HashMap::new(),
        fonts: HashSet::new(),
        draws: 0,
        ops: 0,
        missing_content: false,
    };
    let mut content = Vec::new();
    // The page's content streams, joined as lopdf joins them for pdf-extract.
    for stream_id in doc.get_page_contents(id) {
        match doc.get_object(stream_id).and_then(Object::as_stream) {
            Ok(s) => {
                content.extend(check.stream_bytes(stream_id, s));
                content.push(b'\n');
            }
            Err(_) => check.missing_content = true,
        }
    }
    check.count(content.len())?;
    let ops = Content::decode(&content)
        .map_err(|_| Stop::Page(BAD_CONTENT))?
        .operations;
    drop(content);
    check.operations(&ops, resources_dict.unwrap_or(&empty), &mut Vec::new())?;
    Ok(Fix {
        media_box,
        resources,
        inflated: check.inflated,
        missing_content: check.missing_content,
    })
}

/// A page and its ancestors, nearest first, stopping where the chain loops
/// or goes deeper than any real page tree.
fn lineage<'d>(doc: &'d Document, page: &'d Dictionary) -> Vec<&'d Dictionary> {
    let mut chain = vec![page];
    let mut seen = HashSet::new();
    let mut node = page;
    while let Ok(parent) = node.get(b"Parent").and_then(Object::as_reference) {
        if !seen.insert(parent) || chain.len() > MAX_TREE_DEPTH {
            break;
        }
        match doc.get_dictionary(parent) {
            Ok(d) => {
                chain.push(d);
                node = d;
            }
            Err(_) => break,
        }
    }
    chain
}

/// A page box: an array of four numbers, each possibly by reference.
fn page_box(doc: &Document, value: &Object) -> Option<[f32; 4]> {
    let (_, value) = doc.dereference(value).ok()?;
    let items = value.as_array().ok()?;
    let mut out = [0.0; 4];
    for (slot, item) in out.iter_mut().zip(items) {
        *slot = doc.dereference(item).ok()?.1.as_float().ok()?;
    }
    (items.len() >= 4).then_some(out)
}

/// One page's walk through its drawing instructions.
struct PageCheck<'d, 'w, 's> {
    doc: &'d Document,
    walk: &'w mut Walk<'s>,
    inflated: HashMap<ObjectId, Vec<u8>>,
    /// Fonts pdf-extract will have loaded on this page: it caches them by
    /// name for the page, forms included.
    fonts: HashSet<Vec<u8>>,
    draws: u32,
    ops: usize,
    missing_content: bool,
}

impl<'d> PageCheck<'d, '_, '_> {
    /// Counts bytes pdf-extract will read. Each reading counts: a form drawn
    /// twice is read twice, so the budget bounds the work, not just memory.
    fn count(&mut self, bytes: usize) -> Result<(), Stop> {
        self.walk.decompressed(bytes as u64).map_err(Stop::Budget)
    }

    /// The bytes pdf-extract will read from a stream, decompressing it once.
    fn stream_bytes(&mut self, id: ObjectId, s: &Stream) -> Vec<u8> {
        if let Some(bytes) = self.inflated.get(&id) {
            return bytes.clone();
        }
        if s.filters().is_err() {
            return s.content.clone();
        }
        match s.decompressed_content() {
            Ok(bytes) => {
                self.inflated.insert(id, bytes.clone());
                bytes
            }
            // pdf-extract reads the raw bytes when decompression fails.
            Err(_) => s.content.clone(),
        }
    }

    /// Walks one content stream; `forms` are the forms being drawn, outermost
    /// first.
    fn operations(
        &mut self,
        ops: &[Operation],
        resources: &'d Dictionary,
        forms: &mut Vec<Option<ObjectId>>,
    ) -> Result<(), Stop> {
        let mut saves = 0usize;
        for op in ops {
            self.ops += 1;
            if self.ops > MAX_OPS_PER_PAGE {
                return Err(Stop::Page(
                    "it has more drawing instructions than hallpass reads",
                ));
            }
            match op.operator.as_str() {
                "q" => {
                    saves += 1;
                    if saves > MAX_SAVES {
                        return Err(Stop::Page(BAD_CONTENT));
                    }
                }
                "Q" => saves = saves.saturating_sub(1),
                "Tf" => self.font(op, resources)?,
                "Do" => self.draw(op, resources, forms)?,
                _ => {}
            }
        }
        Ok(())
    }

    /// A named resource (`/Font /F1`, `/XObject /Im0`), as pdf-extract looks
    /// it up; it panics where this returns `None`.
    fn resource(
        &self,
        resources: &'d Dictionary,
        category: &[u8],
        op: &Operation,
    ) -> Option<(Option<ObjectId>, &'d Object)> {
        let name = op.operands.first()?.as_name().ok()?;
        let (_, entries) = self.doc.dereference(resources.get(category).ok()?).ok()?;
        self.doc
            .dereference(entries.as_dict().ok()?.get(name).ok()?)
            .ok()
    }

    /// Counts what pdf-extract reads to load a font, once per page.
    fn font(&mut self, op: &Operation, resources: &'d Dictionary) -> Result<(), Stop> {
        let font = self
            .resource(resources, b"Font", op)
            .and_then(|(_, f)| f.as_dict().ok())
            .ok_or(Stop::Page(MISSING_RESOURCE))?;
        let name = op
            .operands
            .first()
            .and_then(|o| o.as_name().ok())
            .unwrap_or_default();
        if !self.fonts.insert(name.to_vec()) {
            return Ok(());
        }
        let doc = self.doc;
        let stream_len = |dict: &Dictionary, key: &[u8]| {
            dict.get(key)
                .ok()
                .and_then(|v| doc.dereference(v).ok())
                .and_then(|(_, v)| v.as_stream().ok())
                .map_or(0, |s| s.content.len())
        };
        let mut bytes = stream_len(font, b"ToUnicode") + stream_len(font, b"Encoding");
        if let Some(descriptor) = font
            .get(b"FontDescriptor")
            .ok()
            .and_then(|v| doc.dereference(v).ok())
            .and_then(|(_, v)| v.as_dict().ok())
        {
            bytes += stream_len(descriptor, b"FontFile") + stream_len(descriptor, b"FontFile3");
        }
        self.count(bytes)
    }

    /// Follows a `Do` into the form it draws, with the form's resources.
    fn draw(
        &mut self,
        op: &Operation,
        resources: &'d Dictionary,
        forms: &mut Vec<Option<ObjectId>>,
    ) -> Result<(), Stop> {
        let (id, object) = self
            .resource(resources, b"XObject", op)
            .ok_or(Stop::Page(MISSING_RESOURCE))?;
        let form = object
            .as_stream()
            .map_err(|_| Stop::Page(MISSING_RESOURCE))?;
        if form
            .dict
            .get(b"Subtype")
            .and_then(Object::as_name)
            .is_ok_and(|n| n == b"Image")
        {
            // Emptied by `defuse`: pdf-extract reads nothing from it.
            return Ok(());
        }
        self.draws += 1;
        if self.draws > MAX_DRAWS_PER_PAGE {
            return Err(Stop::Page("it draws the same pictures too many times"));
        }
        if id.is_some() && forms.contains(&id) {
            return Err(Stop::Page("it draws a picture that contains itself"));
        }
        if forms.len() >= MAX_FORM_DEPTH {
            return Err(Stop::Page("its pictures are nested too deeply"));
        }
        let bytes = match id {
            Some(id) => self.stream_bytes(id, form),
            None => form.content.clone(),
        };
        self.count(bytes.len())?;
        let ops = Content::decode(&bytes)
            .map_err(|_| Stop::Page(BAD_CONTENT))?
            .operations;
        drop(bytes);
        let inner = match form.dict.get(b"Resources") {
            Err(_) => resources,
            Ok(value) => match self.doc.dereference(value) {
                Ok((_, Object::Dictionary(d))) => d,
                Ok(_) => resources,
                // pdf-extract panics on a reference to nothing.
                Err(_) => return Err(Stop::Page(MISSING_RESOURCE)),
            },
        };
        forms.push(id);
        self.operations(&ops, inner, forms)?;
        forms.pop();
        Ok(())
    }
}

/// Runs pdf-extract over the checked document, handing on each page's text.
/// A panic costs the page it happened on: the pages read so far are blanked
/// and the run starts again, so it resumes after the failed page.
fn output(
    doc: &mut Document,
    pages: &[ObjectId],
    location: &Location,
    walk: &mut Walk<'_>,
    trouble: &mut Trouble,
) {
    let text = Rc::new(RefCell::new(Vec::new()));
    let mut writer = SharedText(Rc::clone(&text));
    let max_page_text = usize::try_from(walk.limits().max_text_bytes).unwrap_or(usize::MAX);
    let mut sink = PageSink {
        plain: PlainTextOutput::new(&mut writer as &mut dyn io::Write),
        text,
        walk,
        location,
        current: 0,
        ended: 0,
        full: false,
        max_page_text,
    };
    let mut failed = 0;
    loop {
        sink.current = 0;
        sink.ended = 0;
        let run = catch_unwind(AssertUnwindSafe(|| pdf_extract::output_doc(doc, &mut sink)));
        match run {
            Ok(Ok(())) => return,
            // The message's text limit: `emit` has already said so.
            Ok(Err(_)) if sink.full => return,
            Ok(Err(_)) => {
                trouble.note("the PDF could not be read to the end");
                return;
            }
            Err(_) => {
                // Text of the failed page read before the panic is still scanned.
                let _ = sink.flush();
                if sink.full {
                    return;
                }
                let page = sink.ended as usize + 1;
                trouble.page(page, "the PDF reader failed on it");
                failed += 1;
                if failed == MAX_FAILED_PAGES {
                    trouble.note(format!(
                        "hallpass stopped reading the PDF after {MAX_FAILED_PAGES} pages failed"
                    ));
                    return;
                }
                for &id in pages.iter().take(page) {
                    blank(doc, id);
                }
            }
        }
    }
}

/// The buffer pdf-extract's plain-text output writes into, shared so each
/// page's text can be taken out at its end.
struct SharedText(Rc<RefCell<Vec<u8>>>);

impl io::Write for SharedText {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.borrow_mut().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// pdf-extract's own plain-text layout (spaces and line breaks from glyph
/// positions), with the text handed on at the end of each page.
struct PageSink<'o, 'w, 's> {
    plain: PlainTextOutput<&'o mut dyn io::Write>,
    text: Rc<RefCell<Vec<u8>>>,
    walk: &'w mut Walk<'s>,
    location: &'w Location,
    /// The page being read, and the last one finished, in this run.
    current: u32,
    ended: u32,
    /// The message's text limit was reached.
    full: bool,
    /// The most text held before it is handed on, even mid-page: the
    /// message's text limit, so one huge page cannot grow without bound.
    max_page_text: usize,
}

impl PageSink<'_, '_, '_> {
    fn flush(&mut self) -> Result<(), OutputError> {
        let bytes = std::mem::take(&mut *self.text.borrow_mut());
        if !self
            .walk
            .emit(self.location, &String::from_utf8_lossy(&bytes), View::Whole)
        {
            self.full = true;
            return Err(OutputError::FormatError(std::fmt::Error));
        }
        Ok(())
    }
}

impl OutputDev for PageSink<'_, '_, '_> {
    fn begin_page(
        &mut self,
        page_num: u32,
        media_box: &MediaBox,
        art_box: Option<(f64, f64, f64, f64)>,
    ) -> Result<(), OutputError> {
        self.current = page_num;
        self.plain.begin_page(page_num, media_box, art_box)
    }

    fn end_page(&mut self) -> Result<(), OutputError> {
        self.plain.end_page()?;
        self.ended = self.current;
        self.flush()
    }

    fn output_character(
        &mut self,
        trm: &Transform,
        width: f64,
        spacing: f64,
        font_size: f64,
        char: &str,
    ) -> Result<(), OutputError> {
        self.plain
            .output_character(trm, width, spacing, font_size, char)?;
        if self.text.borrow().len() > self.max_page_text {
            self.flush()?;
        }
        Ok(())
    }

    fn begin_word(&mut self) -> Result<(), OutputError> {
        self.plain.begin_word()
    }

    fn end_word(&mut self) -> Result<(), OutputError> {
        self.plain.end_word()
    }

    fn end_line(&mut self) -> Result<(), OutputError> {
        self.plain.end_line()
    }
}

#[cfg(test)]
mod tests {
    //! PDFs built in code with lopdf and sent through `read_message` as real
    //! MIME attachments, so the whole path is tested.

    use std::collections::BTreeMap;
    use std::sync::Arc;
    use std::time::Instant;

    use hallpass_core::config::Limits;
    use hallpass_core::{AttachmentInfo, Confidence};
    use pdf_extract::encryption::crypt_filters::{Aes256CryptFilter, CryptFilter};
    use pdf_extract::{EncryptionState, EncryptionVersion, Permissions, dictionary};

    use super::*;
    use crate::{MessageInfo, read_message};

    const LOCATION: &str = "attachment:report.pdf";

    fn limits() -> Limits {
        hallpass_core::Config::defaults_for(&["lumen.sch.uk"], &[]).limits
    }

    struct Read {
        text: Vec<(String, String)>,
        info: MessageInfo,
    }

    impl Read {
        fn text(&self) -> String {
            self.text
                .iter()
                .filter(|(l, _)| l == LOCATION)
                .map(|(_, t)| t.as_str())
                .collect::<Vec<_>>()
                .join("\n")
        }
        fn pdf(&self) -> &AttachmentInfo {
            let found = self
                .info
                .attachments
                .iter()
                .find(|a| a.location.as_str() == LOCATION);
            found.unwrap_or_else(|| panic!("no PDF in {:?}", self.info.attachments))
        }
        fn reason(&self) -> &str {
            self.pdf().unscannable.as_deref().unwrap_or_default()
        }
    }

    fn read(pdf: &[u8], body: &str) -> Read {
        read_with(pdf, body, &limits())
    }

    fn read_with(pdf: &[u8], body: &str, limits: &Limits) -> Read {
        let raw =
            hallpass_fixtures::message_with("files", "p@example.com", body, "report.pdf", pdf);
        let mut text = Vec::new();
        let info = read_message(&raw, limits, &mut |s| {
            text.push((s.location.to_string(), s.text.to_string()))
        });
        Read { text, info }
    }

    /// Lines drawn in `font` from the top of the page down.
    fn lines_in(font: &str, lines: &[&str]) -> Vec<Operation> {
        let mut ops = vec![
            Operation::new("BT", vec![]),
            Operation::new("Tf", vec![font.into(), 12.into()]),
            Operation::new("TL", vec![14.into()]),
            Operation::new("Td", vec![72.into(), 720.into()]),
        ];
        for line in lines {
            ops.push(Operation::new("Tj", vec![Object::string_literal(*line)]));
            ops.push(Operation::new("T*", vec![]));
        }
        ops.push(Operation::new("ET", vec![]));
        ops
    }

    fn lines(lines: &[&str]) -> Vec<Operation> {
        lines_in("F1", lines)
    }

    fn compressed(dict: Dictionary, ops: Vec<Operation>) -> Object {
        let mut stream = Stream::new(dict, Content { operations: ops }.encode().unwrap());
        stream.compress().unwrap();
        Object::Stream(stream)
    }

    /// A document whose pages draw `pages` (each a compressed content
    /// stream), sharing one resource dictionary: Helvetica as `/F1`, plus
    /// whatever `more` adds to the document and returns as resources.
    fn document(
        pages: &[Vec<Operation>],
        more: impl FnOnce(&mut Document) -> Dictionary,
    ) -> Document {
        let mut doc = Document::with_version("1.7");
        let pages_id = doc.new_object_id();
        let font = doc.add_object(dictionary! {
            "Type" => "Font", "Subtype" => "Type1", "BaseFont" => "Helvetica",
        });
        let mut resources = dictionary! { "Font" => dictionary! { "F1" => font } };
        for (key, value) in more(&mut doc) {
            match (resources.get_mut(&key), value) {
                (Ok(Object::Dictionary(have)), Object::Dictionary(add)) => have.extend(&add),
                (_, value) => resources.set(key, value),
            }
        }
        let resources = doc.add_object(resources);
        let kids: Vec<Object> = pages
            .iter()
            .map(|ops| {
                let content = doc.add_object(compressed(Dictionary::new(), ops.clone()));
                doc.add_object(dictionary! {
                    "Type" => "Page", "Parent" => pages_id, "Contents" => content,
                    "Resources" => resources, "MediaBox" => vec![0.into(), 0.into(), 612.into(), 792.into()],
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
        doc
    }

    fn plain(pages: &[Vec<Operation>]) -> Document {
        document(pages, |_| Dictionary::new())
    }

    fn save(mut doc: Document) -> Vec<u8> {
        let mut out = Vec::new();
        doc.save_to(&mut out).unwrap();
        // Same length, so every offset holds.
        for at in memchr::memmem::find_iter(&out.clone(), b"/ObjStq") {
            out[at..at + 7].copy_from_slice(b"/ObjStm");
        }
        out
    }

    /// Encrypts with AES-256 (revision 6, what current readers write).
    fn encrypt(doc: &mut Document, owner: &str, user: &str) {
        let id = Object::string_literal(b"hallpass-test-id".to_vec());
        doc.trailer.set("ID", vec![id.clone(), id]);
        let filter: Arc<dyn CryptFilter> = Arc::new(Aes256CryptFilter);
        let key = [7u8; 32];
        let state = EncryptionState::try_from(EncryptionVersion::V5 {
            encrypt_metadata: true,
            crypt_filters: BTreeMap::from([(b"StdCF".to_vec(), filter)]),
            file_encryption_key: &key,
            stream_filter: b"StdCF".to_vec(),
            string_filter: b"StdCF".to_vec(),
            owner_password: owner,
            user_password: user,
            permissions: Permissions::PRINTABLE,
        })
        .unwrap();
        doc.encrypt(&state).unwrap();
    }

    /// One page, its content stream compressed (the letterhead makes it long
    /// enough for lopdf to find compression worthwhile).
    fn nhs_letter() -> Document {
        let letterhead = "Lumen Primary School, Pupil Services";
        let doc = plain(&[lines(&[
            letterhead,
            letterhead,
            letterhead,
            "Referral for Amy Pond",
            "NHS number 943 476 5919",
        ])]);
        let compressed = doc
            .objects
            .values()
            .filter_map(|o| o.as_stream().ok())
            .all(|s| s.filters().is_ok());
        assert!(compressed, "the content stream should be compressed");
        doc
    }

    #[test]
    fn a_compressed_page_is_read() {
        let r = read(&save(nhs_letter()), "See attached");
        assert!(r.text().contains("NHS number 943 476 5919"), "{:?}", r.text);
        assert!(r.text().contains("Referral for Amy Pond"), "{:?}", r.text);
        let pdf = r.pdf();
        assert_eq!((pdf.kind, pdf.scanned, pdf.encrypted), ("pdf", true, false));
        assert_eq!(pdf.unscannable, None);
        assert!(r.info.unscannable.is_empty(), "{:?}", r.info.unscannable);
        assert_eq!(r.info.password_in_message, None);
    }

    #[test]
    fn every_page_is_read_and_handed_on_page_by_page() {
        let r = read(
            &save(plain(&[
                lines(&["first page"]),
                lines(&["second page"]),
                lines(&["third page"]),
            ])),
            "",
        );
        let pages: Vec<&str> = r
            .text
            .iter()
            .filter(|(l, _)| l == LOCATION)
            .map(|(_, t)| t.trim())
            .collect();
        assert_eq!(pages, ["first page", "second page", "third page"]);
        assert!(r.pdf().scanned);
    }

    #[test]
    fn a_truncated_pdf_is_damaged() {
        let bytes = save(nhs_letter());
        let r = read(&bytes[..bytes.len() / 2], "");
        assert_eq!((r.pdf().kind, r.pdf().scanned), ("pdf", false));
        assert_eq!(r.reason(), DAMAGED);
        assert_eq!(r.text(), "");
    }

    #[test]
    fn more_objects_than_the_limit_are_refused_unread() {
        let limits = Limits {
            max_pdf_objects: 3,
            ..limits()
        };
        let r = read_with(&save(nhs_letter()), "", &limits);
        assert_eq!(r.reason(), "the PDF has more than 3 objects");
        assert_eq!(r.text(), "");
    }

    #[test]
    fn the_decompression_budget_stops_reading_and_says_so() {
        let body: Vec<String> = (0..40)
            .map(|i| format!("line {i} of a long page"))
            .collect();
        let body: Vec<&str> = body.iter().map(String::as_str).collect();
        let limits = Limits {
            max_decompressed_bytes: 1500,
            ..limits()
        };
        let r = read_with(
            &save(plain(&[lines(&body), lines(&body), lines(&body)])),
            "",
            &limits,
        );
        assert!(r.reason().contains("bytes unpacked"), "{}", r.reason());
        // The pages read within the budget are still scanned.
        assert!(r.text().contains("line 39 of a long page"), "{:?}", r.text);
        assert!(!r.pdf().scanned);
    }

    #[test]
    fn a_user_password_pdf_is_encrypted_and_opened_by_the_password_in_the_message() {
        let mut doc = nhs_letter();
        encrypt(&mut doc, "owner-secret", "Tulip42");
        let bytes = save(doc);
        assert!(bytes.windows(8).any(|w| w == b"/Encrypt"));
        let r = read(&bytes, "The password is Tulip42");
        assert!(r.text().contains("NHS number 943 476 5919"), "{:?}", r.text);
        let pdf = r.pdf();
        assert_eq!(
            (pdf.encrypted, pdf.scanned, pdf.unscannable.as_deref()),
            (true, true, None)
        );
        assert_eq!(r.info.password_in_message, Some(Confidence::High));
    }

    #[test]
    fn the_owner_password_opens_it_too() {
        let mut doc = nhs_letter();
        encrypt(&mut doc, "Owner-77", "Tulip42");
        let r = read(&save(doc), "pw: Owner-77");
        assert!(r.text().contains("NHS number 943 476 5919"), "{:?}", r.text);
        assert_eq!((r.pdf().encrypted, r.pdf().scanned), (true, true));
    }

    #[test]
    fn a_wrong_password_leaves_it_encrypted_not_unscannable() {
        let mut doc = nhs_letter();
        encrypt(&mut doc, "owner-secret", "Tulip42");
        let r = read(&save(doc), "The password is Daffodil9");
        assert_eq!(r.text(), "");
        let pdf = r.pdf();
        assert_eq!(
            (pdf.encrypted, pdf.scanned, pdf.unscannable.as_deref()),
            (true, false, None)
        );
        assert!(r.info.unscannable.is_empty(), "{:?}", r.info.unscannable);
        assert_eq!(r.info.password_in_message, Some(Confidence::Medium));
    }

    #[test]
    fn without_a_password_in_the_message_it_is_only_encrypted() {
        let mut doc = nhs_letter();
        encrypt(&mut doc, "owner-secret", "Tulip42");
        let r = read(&save(doc), "See attached");
        assert_eq!((r.pdf().encrypted, r.pdf().scanned), (true, false));
        assert_eq!(r.info.password_in_message, None);
    }

    #[test]
    fn an_owner_password_only_pdf_is_read_like_any_other() {
        // It opens without a password; the owner password only restricts
        // printing and copying, which protects nothing in transit.
        let mut doc = nhs_letter();
        encrypt(&mut doc, "owner-secret", "");
        let r = read(&save(doc), "");
        assert!(r.text().contains("NHS number 943 476 5919"), "{:?}", r.text);
        let pdf = r.pdf();
        assert_eq!(
            (pdf.encrypted, pdf.scanned, pdf.unscannable.as_deref()),
            (false, true, None)
        );
    }

    #[test]
    fn pictures_are_not_read_as_drawing_instructions() {
        // pdf-extract would decode these pixels as drawing instructions,
        // where `BI` starts an inline image that does not parse, and panic.
        let doc = document(
            &[[
                lines(&["above the logo"]),
                vec![Operation::new("Do", vec!["Im0".into()])],
            ]
            .concat()],
            |doc| {
                let pixels = Stream::new(
                    dictionary! { "Type" => "XObject", "Subtype" => "Image", "Width" => 4, "Height" => 4,
                    "ColorSpace" => "DeviceGray", "BitsPerComponent" => 8 },
                    b"BI \xff\xfe\x00\x07".to_vec(),
                );
                dictionary! { "XObject" => dictionary! { "Im0" => doc.add_object(pixels) } }
            },
        );
        let r = read(&save(doc), "");
        assert!(r.text().contains("above the logo"), "{:?}", r.text);
        assert_eq!(
            (r.pdf().scanned, r.pdf().unscannable.as_deref()),
            (true, None)
        );
    }

    #[test]
    fn a_form_that_draws_itself_costs_its_page_not_the_process() {
        // Unchecked, pdf-extract recurses until the stack overflows, which
        // aborts the process: no catch_unwind can stop that.
        let doc = document(
            &[
                [
                    lines(&["page one"]),
                    vec![Operation::new("Do", vec!["Fm0".into()])],
                ]
                .concat(),
                lines(&["page two 943 476 5919"]),
            ],
            |doc| {
                let form = doc.new_object_id();
                let dict = dictionary! { "Type" => "XObject", "Subtype" => "Form",
                "BBox" => vec![0.into(), 0.into(), 10.into(), 10.into()],
                "Resources" => dictionary! { "XObject" => dictionary! { "Fm0" => form } } };
                doc.objects.insert(
                    form,
                    compressed(dict, vec![Operation::new("Do", vec!["Fm0".into()])]),
                );
                dictionary! { "XObject" => dictionary! { "Fm0" => form } }
            },
        );
        let r = read(&save(doc), "");
        assert!(r.text().contains("page two 943 476 5919"), "{:?}", r.text);
        assert!(!r.text().contains("page one"));
        assert_eq!(
            r.reason(),
            "page 1 of the PDF could not be read: it draws a picture that contains itself"
        );
    }

    #[test]
    fn forms_that_multiply_are_stopped_before_the_work_explodes() {
        // Each form draws the next three times: 3^12 draws from 12 small forms.
        let doc = document(
            &[[
                lines(&["cover"]),
                vec![Operation::new("Do", vec!["F0".into()])],
            ]
            .concat()],
            |doc| {
                let mut next: Option<ObjectId> = None;
                for _ in 0..12 {
                    let (ops, resources) = match next {
                        Some(id) => (
                            vec![Operation::new("Do", vec!["F0".into()]); 3],
                            dictionary! { "XObject" => dictionary! { "F0" => id } },
                        ),
                        None => (vec![], Dictionary::new()),
                    };
                    let dict = dictionary! { "Type" => "XObject", "Subtype" => "Form",
                    "BBox" => vec![0.into(), 0.into(), 10.into(), 10.into()], "Resources" => resources };
                    next = Some(doc.add_object(compressed(dict, ops)));
                }
                dictionary! { "XObject" => dictionary! { "F0" => next.unwrap() } }
            },
        );
        let r = read(&save(doc), "");
        assert!(r.reason().contains("too many times"), "{}", r.reason());
    }

    #[test]
    fn a_page_tree_that_loops_does_not_recurse_forever() {
        // The page has no MediaBox of its own and its parent is its own
        // parent: pdf-extract would climb forever looking for one.
        let mut doc = nhs_letter();
        let pages_id = doc
            .catalog()
            .unwrap()
            .get(b"Pages")
            .unwrap()
            .as_reference()
            .unwrap();
        for (_, page) in doc.get_pages() {
            doc.get_dictionary_mut(page).unwrap().remove(b"MediaBox");
        }
        doc.get_dictionary_mut(pages_id)
            .unwrap()
            .set("Parent", pages_id);
        let r = read(&save(doc), "");
        assert!(r.text().contains("NHS number 943 476 5919"), "{:?}", r.text);
        assert_eq!(r.pdf().unscannable, None);
    }

    #[test]
    fn a_deeply_nested_character_map_is_not_parsed() {
        // adobe-cmap-parser recurses per bracket and overflows the stack.
        let doc = document(
            &[
                lines_in("F2", &["odd font"]),
                lines(&["plain page 943 476 5919"]),
            ],
            |doc| {
                let cmap = format!("{}{}", "[".repeat(5000), "]".repeat(5000));
                let cmap = doc.add_object(Stream::new(Dictionary::new(), cmap.into_bytes()));
                let font = doc.add_object(dictionary! {
                "Type" => "Font", "Subtype" => "Type1", "BaseFont" => "Helvetica", "ToUnicode" => cmap,
            });
                dictionary! { "Font" => dictionary! { "F2" => font } }
            },
        );
        let r = read(&save(doc), "");
        assert!(r.text().contains("plain page 943 476 5919"), "{:?}", r.text);
        assert!(
            r.reason().contains("font in the PDF is malformed"),
            "{}",
            r.reason()
        );
    }

    #[test]
    fn a_page_pdf_extract_panics_on_costs_that_page_only() {
        // pdf-extract panics on a Type 0 font with a predefined CJK encoding.
        let doc = document(
            &[
                lines_in("F3", &["AB"]),
                lines(&["second page"]),
                lines(&["third page"]),
            ],
            |doc| {
                let descendant = doc.add_object(dictionary! {
                    "Type" => "Font", "Subtype" => "CIDFontType2", "BaseFont" => "MSGothic",
                });
                let font = doc.add_object(dictionary! {
                    "Type" => "Font", "Subtype" => "Type0", "BaseFont" => "MSGothic",
                    "Encoding" => "UniJIS-UCS2-H", "DescendantFonts" => vec![descendant.into()],
                });
                dictionary! { "Font" => dictionary! { "F3" => font } }
            },
        );
        let r = read(&save(doc), "");
        assert!(r.text().contains("second page"), "{:?}", r.text);
        assert!(r.text().contains("third page"), "{:?}", r.text);
        assert_eq!(
            r.reason(),
            "page 1 of the PDF could not be read: the PDF reader failed on it"
        );
    }

    /// A stream of `mib` MiB of spaces, deflated: a few kilobytes each MiB.
    fn deflated_spaces(dict: Dictionary, mib: usize, prefix: &[u8]) -> Stream {
        use std::io::Write as _;
        let mut e = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::best());
        e.write_all(prefix).unwrap();
        let chunk = vec![b' '; 1 << 20];
        for _ in 0..mib {
            e.write_all(&chunk).unwrap();
        }
        let mut dict = dict;
        dict.set("Filter", "FlateDecode");
        Stream::new(dict, e.finish().unwrap())
    }

    /// The letter plus an object stream that inflates to `mib` MiB: lopdf
    /// unpacks it while it loads the file. Typed `/ObjStq` here because
    /// lopdf does not save object streams it did not make; [`save`] names
    /// it `/ObjStm`.
    fn with_object_stream_bomb(mut doc: Document, mib: usize) -> Document {
        let dict = dictionary! { "Type" => "ObjStq", "N" => 1, "First" => 4 };
        doc.add_object(deflated_spaces(dict, mib, b"90 0 null"));
        doc
    }

    fn small_budget() -> Limits {
        Limits {
            max_decompressed_bytes: 4 << 20,
            ..limits()
        }
    }

    const TOO_BIG: &str =
        "the PDF would unpack to more than the limit of 4194304 bytes per message";

    #[test]
    fn a_deflated_page_bomb_is_refused_before_it_is_unpacked() {
        let doc = document(&[lines(&["cover"])], |doc| {
            let bomb = doc.add_object(deflated_spaces(Dictionary::new(), 64, b""));
            let page_two = doc.add_object(dictionary! { "Type" => "Page", "Contents" => bomb });
            dictionary! { "Unused" => page_two }
        });
        let r = read_with(&save(doc), "", &small_budget());
        assert_eq!(r.reason(), TOO_BIG);
        assert_eq!(r.text(), "");
        assert!(!r.pdf().scanned);
    }

    #[test]
    fn an_object_stream_bomb_is_refused_before_lopdf_loads_it() {
        let bytes = save(with_object_stream_bomb(nhs_letter(), 16));
        let r = read_with(&bytes, "", &small_budget());
        assert_eq!(r.reason(), TOO_BIG);
        // With the room, the same file is read, the object stream counted.
        let r = read_with(&bytes, "", &limits());
        assert!(r.text().contains("NHS number 943 476 5919"), "{:?}", r.text);
        assert_eq!(r.pdf().unscannable, None);
    }

    #[test]
    fn an_encrypted_bomb_is_counted_with_the_password_that_opens_it() {
        let mut doc = with_object_stream_bomb(nhs_letter(), 16);
        encrypt(&mut doc, "owner-secret", "Tulip42");
        let bytes = save(doc);
        let r = read_with(&bytes, "The password is Tulip42", &small_budget());
        assert_eq!(r.reason(), TOO_BIG);
        assert_eq!(r.text(), "");
        // Without the password lopdf decrypts nothing: only encrypted.
        let r = read_with(&bytes, "See attached", &small_budget());
        let pdf = r.pdf();
        assert_eq!(
            (pdf.encrypted, pdf.scanned, pdf.unscannable.as_deref()),
            (true, false, None)
        );
    }

    #[test]
    fn an_owner_password_only_bomb_is_counted_before_lopdf_opens_it() {
        let mut doc = with_object_stream_bomb(nhs_letter(), 16);
        encrypt(&mut doc, "owner-secret", "");
        let r = read_with(&save(doc), "", &small_budget());
        assert_eq!(r.reason(), TOO_BIG);
    }

    #[test]
    fn many_small_streams_add_up_when_lopdf_unpacks_them_all() {
        let mut doc = nhs_letter();
        for _ in 0..8 {
            doc = with_object_stream_bomb(doc, 1);
        }
        let r = read_with(&save(doc), "", &small_budget());
        assert_eq!(r.reason(), TOO_BIG);
    }

    #[test]
    fn an_lzw_bomb_is_refused() {
        let doc = document(&[lines(&["cover"])], |doc| {
            let text = vec![b' '; 32 << 20];
            let packed = weezl::encode::Encoder::with_tiff_size_switch(weezl::BitOrder::Msb, 8)
                .encode(&text)
                .unwrap();
            let bomb = doc.add_object(Stream::new(dictionary! { "Filter" => "LZWDecode" }, packed));
            dictionary! { "Unused" => bomb }
        });
        let r = read_with(&save(doc), "", &small_budget());
        assert_eq!(r.reason(), TOO_BIG);
    }

    #[test]
    fn deflate_inside_deflate_is_refused() {
        let doc = document(&[lines(&["cover"])], |doc| {
            let mut inner = deflated_spaces(Dictionary::new(), 1, b"");
            inner.dict.set(
                "Filter",
                vec![Object::from("FlateDecode"), Object::from("FlateDecode")],
            );
            dictionary! { "Unused" => doc.add_object(inner) }
        });
        let r = read(&save(doc), "");
        assert_eq!(
            r.reason(),
            "the PDF compresses data inside compressed data, which hallpass does not unpack"
        );
    }

    /// Not a timed assertion: prints how long ten full pages take, for
    /// `cargo test --release -p hallpass-extract pdf -- --nocapture`.
    #[test]
    fn ten_pages_read_time() {
        let pages: Vec<Vec<Operation>> = (1..=10)
            .map(|p| {
                let text: Vec<String> = (1..=45)
                    .map(|l| format!("Page {p} line {l}: pupil Amy Pond, NHS number 943 476 5919, DOB 04/05/2014"))
                    .collect();
                lines(&text.iter().map(String::as_str).collect::<Vec<_>>())
            })
            .collect();
        let bytes = save(plain(&pages));
        let started = Instant::now();
        let r = read(&bytes, "");
        let elapsed = started.elapsed();
        println!("pdf: 10 pages, {} bytes, read in {elapsed:?}", bytes.len());
        assert!(
            r.text().contains("Page 10 line 45: pupil Amy Pond"),
            "{:?}",
            r.text
        );
        assert_eq!(r.text.iter().filter(|(l, _)| l == LOCATION).count(), 10);
    }
}
