//! Reads one email into pieces of text, each with its location, and notes what
//! could not be read.
//!
//! [`read_message`] parses with mail-parser (headers with RFC 2047 words, every
//! MIME part, any transfer encoding and charset), walks forwarded messages
//! (`message/rfc822`) recursively, turns HTML into text (tables as
//! `Header: value` lines), reads text and CSV attachments, and decides each
//! attachment's kind from its content ([`sniff`]). Binary formats are read by
//! an [`Extractor`] chosen by kind; a kind with no extractor is reported
//! unscannable rather than waved through.
//!
//! Invariants: never panics and never fails on bad mail: it returns what it
//! read and says what it could not ([`MessageInfo::unscannable`]). No I/O. It
//! knows nothing of detectors or policy: it hands out text and forgets it.
#![deny(missing_docs)]

mod archive;
pub mod html;
mod office;
mod ole;
pub mod passwords;
mod pdf;
pub mod sniff;
pub mod table;

use hallpass_core::config::Limits;
use hallpass_core::{AttachmentInfo, Location};
use mail_parser::{Address, Message, MessageParser, MimeHeaders, PartType};

pub use sniff::{Kind, sniff};

/// Which rendering of a body a piece of text is. A message often carries the
/// same body twice (plain and HTML); findings in the two are the same
/// findings, so the engine counts the larger of the two, not their sum.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum View {
    /// Not an alternative: counted as it is.
    Whole,
    /// The plain-text rendering of a body.
    TextBody,
    /// The HTML rendering of a body.
    HtmlBody,
    /// A part shared by both renderings.
    BothBodies,
}

/// One piece of text and where it came from.
#[derive(Debug, Clone, Copy)]
pub struct Segment<'a> {
    /// `subject`, `body`, `attachment:NAME`, …
    pub location: &'a Location,
    /// The text, decoded.
    pub text: &'a str,
    /// Which rendering of a body it is.
    pub view: View,
}

/// What was learnt about a message besides its text.
#[derive(Debug, Clone, Default)]
pub struct MessageInfo {
    /// `From:` address.
    pub from: Option<String>,
    /// `To:` addresses, lower-cased.
    pub to: Vec<String>,
    /// `Cc:` addresses, lower-cased.
    pub cc: Vec<String>,
    /// `Bcc:` addresses, lower-cased.
    pub bcc: Vec<String>,
    /// `Message-ID:` without angle brackets.
    pub message_id: Option<String>,
    /// Every attachment, nested ones included, in order.
    pub attachments: Vec<AttachmentInfo>,
    /// Locations that could not be read, with the reason (attachments among
    /// them are also marked `scanned: false`).
    pub unscannable: Vec<(Location, String)>,
    /// Bytes of text handed out.
    pub text_bytes: u64,
    /// Passwords written in the message ("the password is Tulip42"), to try
    /// on its encrypted attachments. Never printed or logged.
    pub password_candidates: Vec<String>,
    /// An encrypted attachment travels with its password: `High` when a
    /// candidate opened it, `Medium` when candidates sit beside an encrypted
    /// attachment that could not be tried or did not open.
    pub password_in_message: Option<hallpass_core::Confidence>,
}

/// Reads binary attachments of one kind into text. The seam for PDF, Office,
/// OpenDocument and archives: an extractor emits text through [`Walk::emit`]
/// and nested files through [`Walk::attachment`].
pub trait Extractor: Send + Sync {
    /// Reads `data` found at `location`. An `Err` marks it unscannable with
    /// that reason.
    fn extract(&self, data: &[u8], location: &Location, walk: &mut Walk<'_>) -> Result<(), String>;
}

/// The extractors for binary kinds. Text, CSV, HTML and messages are read by
/// the walk itself; images and media are not text and hold nothing hallpass
/// can read without OCR.
fn extractor_for(kind: Kind) -> Option<&'static dyn Extractor> {
    match kind {
        Kind::Zip => Some(&archive::Zip),
        Kind::SevenZip | Kind::Rar => Some(&archive::Other),
        Kind::Ole => Some(&ole::Ole),
        Kind::Pdf => Some(&pdf::Pdf),
        Kind::Rtf => Some(&office::Rtf),
        _ => None,
    }
}

/// Reads `raw` and hands every piece of text to `sink`.
pub fn read_message(raw: &[u8], limits: &Limits, sink: &mut dyn FnMut(Segment<'_>)) -> MessageInfo {
    read_message_within(raw, limits, &|| false, sink)
}

/// Like [`read_message`], asking `over_budget` between parts, archive members
/// and sheets whether the message's time is up; what is left then is
/// unscannable. The caller owns the clock, so this crate reads none.
pub fn read_message_within(
    raw: &[u8],
    limits: &Limits,
    over_budget: &dyn Fn() -> bool,
    sink: &mut dyn FnMut(Segment<'_>),
) -> MessageInfo {
    let mut walk = Walk {
        limits,
        sink,
        over_budget,
        parts: 0,
        depth: 0,
        stopped: false,
        decompressed: 0,
        opened: false,
        info: MessageInfo::default(),
    };
    match parse(raw) {
        Parsed::Message(msg) => {
            walk.info.password_candidates = passwords::from_message(&msg);
            walk.info.from = msg.from().and_then(first_address);
            walk.info.to = addresses(msg.to());
            walk.info.cc = addresses(msg.cc());
            walk.info.bcc = addresses(msg.bcc());
            walk.info.message_id = msg.message_id().map(str::to_string);
            walk.message(&msg, None);
        }
        unread => {
            // Not a message at all (no headers), or one the parser failed
            // on: scan what is there as text, and say the structure could
            // not be read.
            let body = Location::body();
            walk.unscannable(&body, unread.reason());
            let text = sniff::decode_text(raw);
            walk.emit(&body, &text, View::Whole);
        }
    }
    let encrypted = walk.info.attachments.iter().any(|a| a.encrypted);
    walk.info.password_in_message = match (
        encrypted,
        walk.opened,
        walk.info.password_candidates.is_empty(),
    ) {
        (true, true, _) => Some(hallpass_core::Confidence::High),
        (true, false, false) => Some(hallpass_core::Confidence::Medium),
        _ => None,
    };
    walk.info
}

/// What mail-parser made of some bytes.
enum Parsed<'x> {
    Message(Message<'x>),
    /// No headers: not a message.
    NoHeaders,
    /// The parser panicked (mail-parser 0.11 does on some malformed nested
    /// multiparts, found by fuzzing): contained here, as the extractors'
    /// library failures are, so it costs the part, not the process.
    Failed,
}

impl Parsed<'_> {
    fn reason(&self) -> &'static str {
        match self {
            Parsed::Failed => "the message's MIME structure could not be read",
            _ => "not a MIME message: no headers could be read",
        }
    }
}

fn parse(raw: &[u8]) -> Parsed<'_> {
    let parsed = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        MessageParser::default().parse(raw)
    }));
    match parsed {
        Ok(Some(msg)) if !msg.headers().is_empty() => Parsed::Message(msg),
        Ok(_) => Parsed::NoHeaders,
        Err(_) => Parsed::Failed,
    }
}

fn first_address(a: &Address<'_>) -> Option<String> {
    a.first()
        .and_then(|a| a.address())
        .map(|s| s.trim().to_ascii_lowercase())
}

fn addresses(a: Option<&Address<'_>>) -> Vec<String> {
    a.map(|a| {
        a.iter()
            .filter_map(|x| x.address())
            .map(|s| s.trim().to_ascii_lowercase())
            .filter(|s| !s.is_empty())
            .collect()
    })
    .unwrap_or_default()
}

/// The state of one walk over a message: limits, counts, and where text goes.
pub struct Walk<'s> {
    limits: &'s Limits,
    sink: &'s mut dyn FnMut(Segment<'_>),
    over_budget: &'s dyn Fn() -> bool,
    parts: u32,
    depth: u32,
    stopped: bool,
    decompressed: u64,
    opened: bool,
    info: MessageInfo,
}

impl Walk<'_> {
    /// The limits in force.
    pub fn limits(&self) -> &Limits {
        self.limits
    }

    /// Passwords written in the message, to try on encrypted attachments.
    pub fn passwords(&self) -> &[String] {
        &self.info.password_candidates
    }

    /// Marks the attachment at `location` as protected by a password or
    /// encryption hallpass recognises: what the school's policy asks for.
    pub fn mark_encrypted(&mut self, location: &Location) {
        if let Some(a) = self
            .info
            .attachments
            .iter_mut()
            .rev()
            .find(|a| &a.location == location)
        {
            a.encrypted = true;
            a.scanned = false;
        }
    }

    /// Names the attachment at `location` more precisely once its container
    /// has been looked into (`docx`, `xlsx`, `odt`, …).
    pub fn set_kind(&mut self, location: &Location, kind: &'static str) {
        if let Some(a) = self
            .info
            .attachments
            .iter_mut()
            .rev()
            .find(|a| &a.location == location)
        {
            a.kind = kind;
        }
    }

    /// Records that a password from the message opened the attachment at
    /// `location`; its content is then scanned like any other.
    pub fn password_opened(&mut self, location: &Location) {
        self.opened = true;
        if let Some(a) = self
            .info
            .attachments
            .iter_mut()
            .rev()
            .find(|a| &a.location == location)
        {
            a.scanned = true;
        }
    }

    /// Counts `bytes` against the message's decompression budget. An `Err`
    /// says which limit was passed; the caller stops and returns it.
    pub fn decompressed(&mut self, bytes: u64) -> Result<(), String> {
        self.decompressed = self.decompressed.saturating_add(bytes);
        if self.decompressed > self.limits.max_decompressed_bytes {
            Err(format!(
                "more than {} bytes unpacked from one message",
                self.limits.max_decompressed_bytes
            ))
        } else {
            Ok(())
        }
    }

    /// Bytes that may still be unpacked from this message before
    /// [`Walk::decompressed`] refuses: what a reader that cannot count as it
    /// unpacks (a library that inflates a whole stream at once) must check
    /// against beforehand.
    pub fn decompression_room(&self) -> u64 {
        self.limits
            .max_decompressed_bytes
            .saturating_sub(self.decompressed)
    }

    /// Reads a file found inside another (an archive member, a document's
    /// embedded file) one level deeper, within the depth limit.
    pub fn nested_file(&mut self, location: Location, data: &[u8], name: &str) {
        if self.depth + 1 > self.limits.max_depth {
            let reason = format!("nested more than {} levels deep", self.limits.max_depth);
            self.unscannable(&location, &reason);
            return;
        }
        self.depth += 1;
        self.attachment(location, data, name, "");
        self.depth -= 1;
    }

    /// Hands a piece of text on, within the limit on text per message. Returns
    /// false once the limit is reached (the location is then unscannable).
    pub fn emit(&mut self, location: &Location, text: &str, view: View) -> bool {
        if self.stopped {
            return false;
        }
        let room = self
            .limits
            .max_text_bytes
            .saturating_sub(self.info.text_bytes);
        let text = if text.len() as u64 > room {
            let mut cut = room as usize;
            while !text.is_char_boundary(cut) {
                cut -= 1;
            }
            self.unscannable(
                location,
                &format!(
                    "more text than the limit of {} bytes per message",
                    self.limits.max_text_bytes
                ),
            );
            self.stopped = true;
            &text[..cut]
        } else {
            text
        };
        self.info.text_bytes += text.len() as u64;
        if !text.is_empty() {
            (self.sink)(Segment {
                location,
                text,
                view,
            });
        }
        !self.stopped
    }

    /// Marks a location as not read, with the reason.
    pub fn unscannable(&mut self, location: &Location, reason: &str) {
        if let Some(a) = self
            .info
            .attachments
            .iter_mut()
            .rev()
            .find(|a| &a.location == location)
        {
            a.scanned = false;
            a.unscannable.get_or_insert_with(|| reason.to_string());
        }
        if !self.info.unscannable.iter().any(|(l, _)| l == location) {
            self.info
                .unscannable
                .push((location.clone(), reason.to_string()));
        }
    }

    /// Reads a file found at `location` (an attachment, or a member of an
    /// archive) by its content, recursing into messages and, through
    /// extractors, containers.
    pub fn attachment(&mut self, location: Location, data: &[u8], name: &str, mime: &str) {
        if !self.count_part(&location) {
            return;
        }
        let kind = sniff(data, name, mime);
        self.info.attachments.push(AttachmentInfo {
            location: location.clone(),
            kind: kind.as_str(),
            size: data.len() as u64,
            encrypted: false,
            scanned: true,
            unscannable: None,
        });
        match kind {
            Kind::Text => {
                let text = sniff::decode_text(data);
                self.emit(&location, &text, View::Whole);
            }
            Kind::Csv => {
                let text = table::csv_to_text(&sniff::decode_text(data));
                self.emit(&location, &text, View::Whole);
            }
            Kind::Html => {
                let text = html::to_text(&sniff::decode_text(data));
                self.emit(&location, &text, View::Whole);
            }
            Kind::Message => match parse(data) {
                Parsed::Message(msg) => self.nested(&msg, &location),
                unread => {
                    if let Parsed::Failed = unread {
                        self.unscannable(&location, unread.reason());
                    }
                    let text = sniff::decode_text(data);
                    self.emit(&location, &text, View::Whole);
                }
            },
            Kind::Image | Kind::Media => self.not_text(&location),
            _ => match extractor_for(kind) {
                Some(ex) => {
                    // A panic in a parser library must cost one attachment, not
                    // the message or the process.
                    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                        ex.extract(data, &location, self)
                    }));
                    match result {
                        Ok(Ok(())) => {}
                        Ok(Err(reason)) => self.unscannable(&location, &reason),
                        Err(_) => self.unscannable(
                            &location,
                            &format!("the {} reader failed on this file", kind.as_str()),
                        ),
                    }
                }
                None => self.unscannable(
                    &location,
                    &format!("hallpass has no reader for {} files", kind.as_str()),
                ),
            },
        }
    }

    /// Marks the most recent attachment at `location` as not text (a picture):
    /// not scanned, and not a problem.
    fn not_text(&mut self, location: &Location) {
        if let Some(a) = self
            .info
            .attachments
            .iter_mut()
            .rev()
            .find(|a| &a.location == location)
        {
            a.scanned = false;
        }
    }

    /// False once the message's time budget is spent (the location is then
    /// unscannable and the walk stops). Extractors call it between members.
    pub fn in_time(&mut self, location: &Location) -> bool {
        if self.stopped {
            return false;
        }
        if (self.over_budget)() {
            self.unscannable(
                location,
                "reading this message took longer than the time budget",
            );
            self.stopped = true;
            return false;
        }
        true
    }

    fn count_part(&mut self, location: &Location) -> bool {
        if !self.in_time(location) {
            return false;
        }
        self.parts += 1;
        if self.parts > self.limits.max_parts {
            if self.parts == self.limits.max_parts + 1 {
                let reason = format!("more than {} parts in one message", self.limits.max_parts);
                self.unscannable(location, &reason);
            }
            return false;
        }
        true
    }

    fn nested(&mut self, msg: &Message<'_>, location: &Location) {
        if self.depth + 1 > self.limits.max_depth {
            let reason = format!("nested more than {} levels deep", self.limits.max_depth);
            self.unscannable(location, &reason);
            return;
        }
        self.depth += 1;
        self.message(msg, Some(location));
        self.depth -= 1;
    }

    /// Walks a message: its subject, its body parts and its attachments. A
    /// nested message's subject and body are reported at its own location.
    fn message(&mut self, msg: &Message<'_>, base: Option<&Location>) {
        let subject_loc = base.cloned().unwrap_or_else(Location::subject);
        if let Some(s) = msg.subject() {
            self.emit(&subject_loc, s, View::Whole);
        }
        let body_loc = base.cloned().unwrap_or_else(Location::body);
        let mut body_parts: Vec<u32> = msg
            .text_body
            .iter()
            .chain(&msg.html_body)
            .copied()
            .collect();
        body_parts.sort_unstable();
        body_parts.dedup();
        for id in body_parts {
            let Some(part) = msg.parts.get(id as usize) else {
                continue;
            };
            let view = match (msg.text_body.contains(&id), msg.html_body.contains(&id)) {
                (true, true) => View::BothBodies,
                (true, false) => View::TextBody,
                _ => View::HtmlBody,
            };
            match &part.body {
                PartType::Text(t) => {
                    if !self.count_part(&body_loc) {
                        return;
                    }
                    self.emit(&body_loc, t, view);
                }
                PartType::Html(h) => {
                    if !self.count_part(&body_loc) {
                        return;
                    }
                    self.emit(&body_loc, &html::to_text(h), view);
                }
                // Inline pictures in a body are listed with the attachments too.
                _ => {}
            }
        }
        for &id in &msg.attachments {
            if self.stopped {
                return;
            }
            let Some(part) = msg.parts.get(id as usize) else {
                continue;
            };
            let name = match part.attachment_name() {
                Some(n) if !n.trim().is_empty() => n.to_string(),
                _ if matches!(part.body, PartType::Message(_)) => format!("part-{id}.eml"),
                _ => format!("part-{id}"),
            };
            let location = match base {
                Some(b) => b.child(&name),
                None => Location::attachment(&name),
            };
            let mime = part
                .content_type()
                .map(|ct| format!("{}/{}", ct.ctype(), ct.subtype().unwrap_or("")))
                .unwrap_or_default();
            if part.is_encoding_problem {
                if self.count_part(&location) {
                    self.info.attachments.push(AttachmentInfo {
                        location: location.clone(),
                        kind: "binary",
                        size: part.len() as u64,
                        encrypted: false,
                        scanned: false,
                        unscannable: None,
                    });
                    self.unscannable(&location, "its transfer encoding is broken (bad base64 or quoted-printable, or an unreadable forwarded message)");
                }
                continue;
            }
            match &part.body {
                PartType::Text(t) => {
                    // Already decoded from its charset by the parser.
                    let kind = sniff(t.as_bytes(), &name, &mime);
                    if !self.count_part(&location) {
                        return;
                    }
                    let (kind, text) = match kind {
                        Kind::Csv => (Kind::Csv, table::csv_to_text(t)),
                        Kind::Html => (Kind::Html, html::to_text(t)),
                        _ => (Kind::Text, t.to_string()),
                    };
                    self.push_info(&location, kind, t.len());
                    self.emit(&location, &text, View::Whole);
                }
                PartType::Html(h) => {
                    if !self.count_part(&location) {
                        return;
                    }
                    self.push_info(&location, Kind::Html, h.len());
                    self.emit(&location, &html::to_text(h), View::Whole);
                }
                PartType::Binary(b) | PartType::InlineBinary(b) => {
                    self.attachment(location, b, &name, &mime)
                }
                PartType::Message(m) => {
                    if !self.count_part(&location) {
                        return;
                    }
                    self.push_info(&location, Kind::Message, m.raw_message.len());
                    self.nested(m, &location);
                }
                PartType::Multipart(_) => {}
            }
        }
    }

    fn push_info(&mut self, location: &Location, kind: Kind, size: usize) {
        self.note_file(location, kind.as_str(), size as u64);
    }

    /// Lists a file found at `location` (an attachment or an archive member)
    /// that the walk has not listed yet: scanned until said otherwise.
    pub fn note_file(&mut self, location: &Location, kind: &'static str, size: u64) {
        self.info.attachments.push(AttachmentInfo {
            location: location.clone(),
            kind,
            size,
            encrypted: false,
            scanned: true,
            unscannable: None,
        });
    }
}

#[cfg(test)]
mod container_tests;
#[cfg(test)]
mod tests;
