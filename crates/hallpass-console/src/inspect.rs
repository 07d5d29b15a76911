//! What a DPO sees of a held message's content, never a matched value unmasked: each match
//! masked in a short context window, the attachments with their flags, and a safe preview of the
//! body. The relay's engine does the scanning through the [`Inspect`] hook (the console knows no
//! detectors); the console sanitises the HTML (ammonia: no scripts, styles, forms, links or
//! images) and asks the engine to mask every match in the text of what it will show.
//!
//! One inspection per page view, on a blocking thread. When it fails (a panic, the time limit)
//! the page shows the stored findings, the headers with every digit hidden, no preview, and says
//! so: nothing is shown that was not masked.

use std::collections::HashSet;
use std::sync::{Arc, LazyLock};
use std::time::Duration;

use hallpass_core::Envelope;
use hallpass_store::HeldRecord;
use serde::Serialize;

use crate::App;
use crate::wire::{HeaderJson, summary_headers};

/// Matches shown on a page (and in `GET /api/held/{id}`); the rest are counted.
pub(crate) const MATCHES_SHOWN: usize = 50;
/// Summary headers shown as they are: `Date` is the parser's RFC 3339 rendering of the header,
/// a time and nothing a person wrote (masked, its digits would be hidden as a long number).
const UNMASKED_HEADERS: &[&str] = &["Date"];

/// A header's value as shown: `masked`, unless it is one of [`UNMASKED_HEADERS`].
fn header_shown(name: &'static str, value: &str, masked: String) -> HeaderJson {
    let value = if UNMASKED_HEADERS.contains(&name) {
        value.to_string()
    } else {
        masked
    };
    HeaderJson { name, value }
}

/// Bytes of a body shown in the preview.
pub(crate) const PREVIEW_BYTES: usize = 20 * 1024;
/// Longest wait for an inspection. The engine keeps to its own time budget; this only guards
/// against a parser that never returns.
const INSPECT_LIMIT: Duration = Duration::from_secs(30);

/// The engine's look at a held message for its page (the relay builds it from its engine:
/// `Engine::scan_within` with `explain`, and `Engine::mask_text`). Given the message's bytes, its
/// envelope, and texts the console will show, it returns the matches explained and each text
/// with every match masked, character for character (so a text keeps its length in characters).
/// It runs on a blocking thread.
pub type Inspect = Arc<dyn Fn(&[u8], &Envelope, &[String]) -> Inspection + Send + Sync>;

/// What the engine made of a message. Holds no value unmasked.
#[derive(Debug, Clone, Default)]
pub struct Inspection {
    /// Each match, masked, in reading order.
    pub matches: Vec<Match>,
    /// Every attachment, nested ones included.
    pub attachments: Vec<Attachment>,
    /// The texts asked for, in the same order, every match masked in place.
    pub masked: Vec<String>,
    /// The scan stopped at its time budget: matches may be missing.
    pub partial: bool,
}

/// One match: its masked form and masked context, never the value.
#[derive(Debug, Clone, Default)]
pub struct Match {
    /// Detector id.
    pub detector: String,
    /// `subject`, `body`, `attachment:NAME`…
    pub location: String,
    /// The value with all but its last three letters and digits hidden.
    pub masked: String,
    /// Masked text just before it (`…` first when cut).
    pub before: String,
    /// Masked text just after it (`…` last when cut).
    pub after: String,
    /// `low`, `medium` or `high`.
    pub confidence: String,
    /// The context word that raised it.
    pub context: Option<String>,
}

/// An attachment as the engine read it.
#[derive(Debug, Clone, Default)]
pub struct Attachment {
    /// `attachment:NAME` (nested: `attachment:outer.zip/inner.docx`).
    pub location: String,
    /// Kind from its content (`pdf`, `csv`, `zip`…).
    pub kind: String,
    /// Decoded size in bytes.
    pub size: u64,
    /// Protected by a password or encryption.
    pub encrypted: bool,
    /// Its text was read and scanned.
    pub scanned: bool,
    /// Why it could not be scanned.
    pub unscannable: Option<String>,
}

/// A match in the API and on the page.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct MatchJson {
    pub detector: String,
    #[serde(rename = "where")]
    pub location: String,
    pub masked: String,
    pub before: String,
    pub after: String,
    pub confidence: String,
    pub context: Option<String>,
}

/// An attachment in the API and on the page.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct AttachmentJson {
    pub name: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub size: u64,
    pub encrypted: bool,
    pub scanned: bool,
    pub reason: Option<String>,
}

/// The body as it may be shown.
#[derive(Debug, Clone, Default)]
pub(crate) struct Preview {
    /// Sanitised, masked HTML (safe to insert as it is); empty for a text body.
    pub html: String,
    /// Masked plain text (to be escaped); empty for an HTML body.
    pub text: String,
    /// Only the first [`PREVIEW_BYTES`] are shown.
    pub truncated: bool,
    /// The body parts beyond the first (not shown).
    pub more_parts: usize,
}

/// Everything the page (and `GET /api/held/{id}`) shows of a message's content.
#[derive(Debug, Clone, Default)]
pub(crate) struct Inspected {
    /// The summary headers, every match masked (or every digit hidden when the scan failed).
    pub headers: Vec<HeaderJson>,
    /// At most [`MATCHES_SHOWN`].
    pub matches: Vec<MatchJson>,
    /// Matches found but not shown.
    pub more: u64,
    pub attachments: Vec<AttachmentJson>,
    /// None when there is no body to show, or it could not be masked.
    pub preview: Option<Preview>,
    /// Said on the page when something could not be done.
    pub note: Option<String>,
}

impl App {
    /// The message's content for its page: one inspection by the engine, on a blocking thread.
    pub(crate) async fn inspect(&self, h: &HeldRecord) -> Inspected {
        let bytes = match self.console.spool.read(&h.spool_id).await {
            Ok(b) => b,
            Err(e) => {
                tracing::warn!(id = %h.id, error = %e, "cannot read a held message's spool file");
                return Inspected {
                    note: Some(
                        "The message's file could not be read (it may have been purged): only \
                         the stored findings are shown."
                            .into(),
                    ),
                    ..Inspected::default()
                };
            }
        };
        let envelope = Envelope {
            sender: h.from.clone(),
            recipients: h.rcpt.clone(),
        };
        let stored: u64 = h.findings.iter().map(|f| u64::from(f.count)).sum();
        let inspect = self.console.inspect.clone();
        let bytes = Arc::new(bytes);
        let raw = bytes.clone();
        let task = tokio::task::spawn_blocking(move || inspected(&raw, &envelope, &inspect));
        match tokio::time::timeout(INSPECT_LIMIT, task).await {
            Ok(Ok(mut i)) => {
                i.more = i.more.max(stored.saturating_sub(i.matches.len() as u64));
                i
            }
            failed => {
                let why: &str = match failed {
                    // Never the panic's own message: it may quote the mail.
                    Ok(Err(e)) if e.is_panic() => "a panic while reading",
                    Ok(Err(_)) => "cancelled",
                    _ => "timed out",
                };
                tracing::warn!(id = %h.id, error = %why, "cannot inspect a held message");
                Inspected {
                    headers: digits_hidden(summary_headers(&bytes)),
                    note: Some(
                        "The message could not be scanned again just now: the stored findings \
                         are shown, without their context or a preview of the body."
                            .into(),
                    ),
                    ..Inspected::default()
                }
            }
        }
    }
}

impl App {
    /// Texts shown outside a message's page (the headers in a decision's answer, a DPO's reason,
    /// the audit trail's reasons) as the page shows its own: every match the engine finds masked
    /// in place. When the engine cannot mask them, every digit is hidden instead.
    pub(crate) async fn mask_texts(&self, texts: Vec<String>) -> Vec<String> {
        if texts.iter().all(|t| t.trim().is_empty()) {
            return texts;
        }
        let inspect = self.console.inspect.clone();
        let given = texts.clone();
        // No message: the engine only masks the texts.
        let task =
            tokio::task::spawn_blocking(move || inspect(b"", &Envelope::default(), &given).masked);
        match tokio::time::timeout(INSPECT_LIMIT, task).await {
            Ok(Ok(masked))
                if masked.len() == texts.len()
                    && texts
                        .iter()
                        .zip(&masked)
                        .all(|(t, m)| t.chars().count() == m.chars().count()) =>
            {
                masked
            }
            _ => {
                tracing::warn!("the engine could not mask texts: digits hidden instead");
                texts.iter().map(|t| hide_digits(t)).collect()
            }
        }
    }

    /// The summary headers of a held copy's file, masked as on its page (none when the file
    /// cannot be read).
    pub(crate) async fn masked_headers(&self, h: &HeldRecord) -> Vec<HeaderJson> {
        let headers = match self.console.spool.read(&h.spool_id).await {
            Ok(bytes) => summary_headers(&bytes),
            Err(e) => {
                tracing::warn!(id = %h.id, error = %e, "cannot read a held message's spool file");
                return Vec::new();
            }
        };
        let masked = self
            .mask_texts(headers.iter().map(|(_, v)| v.clone()).collect())
            .await;
        headers
            .iter()
            .zip(masked)
            .map(|(&(name, ref value), masked)| header_shown(name, value, masked))
            .collect()
    }

    /// The details of audit entries, in order, with the free text a person typed (a
    /// rejection's reason, from the console or `hallpass held reject`) masked; the rest are
    /// written by hallpass and hold no values.
    pub(crate) async fn masked_details<'a>(
        &self,
        entries: impl Iterator<Item = (&'a str, String)>,
    ) -> Vec<String> {
        let mut out = Vec::new();
        let mut typed = Vec::new();
        for (i, (action, detail)) in entries.enumerate() {
            if action == "reject" {
                typed.push((i, detail.clone()));
            }
            out.push(detail);
        }
        let masked = self
            .mask_texts(typed.iter().map(|(_, d)| d.clone()).collect())
            .await;
        for ((i, _), m) in typed.into_iter().zip(masked) {
            out[i] = m;
        }
        out
    }

    /// A DPO's reason for a rejection, masked.
    pub(crate) async fn masked_reason(&self, reason: Option<String>) -> Option<String> {
        let r = reason?;
        self.mask_texts(vec![r]).await.pop()
    }
}

/// `s` with every digit hidden.
fn hide_digits(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_numeric() { '*' } else { c })
        .collect()
}

/// The blocking part of [`App::inspect`].
fn inspected(raw: &[u8], envelope: &Envelope, inspect: &Inspect) -> Inspected {
    let headers = summary_headers(raw);
    let draft = draft_preview(raw);
    let mut texts: Vec<String> = Vec::with_capacity(headers.len() + 1);
    texts.push(draft.as_ref().map(|d| d.flat.clone()).unwrap_or_default());
    texts.extend(headers.iter().map(|(_, v)| v.clone()));
    let i = inspect(raw, envelope, &texts);

    let same_length = i.masked.len() == texts.len()
        && texts
            .iter()
            .zip(&i.masked)
            .all(|(t, m)| t.chars().count() == m.chars().count());
    let mut note = None;
    let (headers, preview) = if same_length {
        let headers = headers
            .iter()
            .zip(&i.masked[1..])
            .map(|(&(name, ref value), masked)| header_shown(name, value, masked.clone()))
            .collect();
        let preview = draft.map(|d| d.masked_with(&i.masked[0]));
        (headers, preview)
    } else {
        // Nothing unmasked is shown: headers without digits, no preview.
        tracing::warn!("the inspection did not mask the texts it was given");
        note = Some("The body could not be masked: it is not shown.".to_string());
        (digits_hidden(headers), None)
    };
    if i.partial {
        note =
            Some("The scan stopped at its time limit: some matches may not be listed.".to_string());
    }
    let more = i.matches.len().saturating_sub(MATCHES_SHOWN) as u64;
    Inspected {
        headers,
        matches: i
            .matches
            .into_iter()
            .take(MATCHES_SHOWN)
            .map(|m| MatchJson {
                detector: m.detector,
                location: m.location,
                masked: m.masked,
                before: m.before,
                after: m.after,
                confidence: m.confidence,
                context: m.context,
            })
            .collect(),
        more,
        attachments: i
            .attachments
            .into_iter()
            .map(|a| AttachmentJson {
                name: a
                    .location
                    .strip_prefix("attachment:")
                    .unwrap_or(&a.location)
                    .to_string(),
                kind: a.kind,
                size: a.size,
                encrypted: a.encrypted,
                scanned: a.scanned,
                reason: a.unscannable,
            })
            .collect(),
        preview,
        note,
    }
}

/// Headers with every digit hidden: all that can be shown when the engine could not mask them.
fn digits_hidden(headers: Vec<(&'static str, String)>) -> Vec<HeaderJson> {
    headers
        .into_iter()
        .map(|(name, v)| header_shown(name, &v, hide_digits(&v)))
        .collect()
}

/// A body ready to be masked: its text as a person would read it (`flat`), and for HTML where
/// each of its characters sits in the sanitised markup.
struct Draft {
    /// Sanitised HTML; None for a plain-text body.
    html: Option<String>,
    /// The text: for HTML, the text of the sanitised markup with entities decoded, a line break
    /// for each block element and nothing for inline ones (so a value split by `<b>` is whole).
    flat: String,
    /// For HTML: per character of `flat`, its byte offset in `html` (None for a line break added,
    /// or a character from an entity, which is never a letter or digit).
    sources: Vec<Option<usize>>,
    truncated: bool,
    more_parts: usize,
}

impl Draft {
    /// The preview with every character the engine masked in `flat` masked where it sits.
    fn masked_with(self, masked: &str) -> Preview {
        let Some(html) = self.html else {
            return Preview {
                text: masked.to_string(),
                truncated: self.truncated,
                more_parts: self.more_parts,
                ..Preview::default()
            };
        };
        let hide: HashSet<usize> = self
            .flat
            .chars()
            .zip(masked.chars())
            .zip(&self.sources)
            .filter(|((was, now), _)| *now == '*' && *was != '*')
            .filter_map(|(_, src)| *src)
            .collect();
        let html = html
            .char_indices()
            .map(|(i, c)| if hide.contains(&i) { '*' } else { c })
            .collect();
        Preview {
            html,
            truncated: self.truncated,
            more_parts: self.more_parts,
            ..Preview::default()
        }
    }
}

/// The first body of the message: its HTML sanitised when it has one, else its plain text; at
/// most [`PREVIEW_BYTES`].
fn draft_preview(raw: &[u8]) -> Option<Draft> {
    let m = mail_parser::MessageParser::default().parse(raw)?;
    let html_body = m.html_part(0).is_some_and(|p| p.is_text_html());
    let (body, parts) = if html_body {
        (m.body_html(0)?, m.html_body_count())
    } else {
        (m.body_text(0)?, m.text_body_count())
    };
    let (body, truncated) = cut(&body, PREVIEW_BYTES);
    let more_parts = parts.saturating_sub(1);
    if !html_body {
        return Some(Draft {
            html: None,
            flat: body.to_string(),
            sources: Vec::new(),
            truncated,
            more_parts,
        });
    }
    let html = sanitise(body);
    let (flat, sources) = flatten(&html);
    Some(Draft {
        html: Some(html),
        flat,
        sources,
        truncated,
        more_parts,
    })
}

/// `s` cut to at most `max` bytes on a character boundary; whether it was cut.
fn cut(s: &str, max: usize) -> (&str, bool) {
    if s.len() <= max {
        return (s, false);
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    (&s[..end], true)
}

/// Elements kept (without any attribute); everything else is dropped, its text kept, except
/// [`DROPPED_WITH_CONTENT`]. No `a` (links are not clickable), no `img` (no remote images, nor
/// any other), no forms, no styles.
const KEPT: &[&str] = &[
    "p",
    "br",
    "div",
    "span",
    "b",
    "strong",
    "i",
    "em",
    "u",
    "s",
    "small",
    "sub",
    "sup",
    "code",
    "pre",
    "blockquote",
    "q",
    "cite",
    "ul",
    "ol",
    "li",
    "dl",
    "dt",
    "dd",
    "table",
    "caption",
    "thead",
    "tbody",
    "tfoot",
    "tr",
    "td",
    "th",
    "h1",
    "h2",
    "h3",
    "h4",
    "h5",
    "h6",
    "hr",
];

/// Elements dropped with everything in them.
const DROPPED_WITH_CONTENT: &[&str] = &[
    "script", "style", "title", "head", "noscript", "template", "object", "embed", "iframe",
    "frame", "frameset", "svg", "math", "select", "textarea", "button",
];

/// Elements whose boundaries are line breaks in the flat text.
const BLOCKS: &[&str] = &[
    "p",
    "br",
    "div",
    "pre",
    "blockquote",
    "ul",
    "ol",
    "li",
    "dl",
    "dt",
    "dd",
    "table",
    "caption",
    "thead",
    "tbody",
    "tfoot",
    "tr",
    "td",
    "th",
    "h1",
    "h2",
    "h3",
    "h4",
    "h5",
    "h6",
    "hr",
];

static SANITISER: LazyLock<ammonia::Builder<'static>> = LazyLock::new(|| {
    let mut b = ammonia::Builder::empty();
    b.tags(KEPT.iter().copied().collect())
        .clean_content_tags(DROPPED_WITH_CONTENT.iter().copied().collect())
        .generic_attributes(HashSet::new())
        .tag_attributes(Default::default())
        .url_schemes(HashSet::new())
        .link_rel(None)
        .strip_comments(true);
    b
});

/// The HTML with nothing left that runs, loads, submits or styles: only [`KEPT`] elements,
/// without attributes.
pub(crate) fn sanitise(html: &str) -> String {
    SANITISER.clean(html).to_string()
}

/// The text of sanitised markup (see [`Draft::flat`]) and where each character sits.
fn flatten(html: &str) -> (String, Vec<Option<usize>>) {
    let mut flat = String::with_capacity(html.len());
    let mut sources = Vec::with_capacity(html.len());
    let mut i = 0;
    while i < html.len() {
        let rest = &html[i..];
        if rest.starts_with('<') {
            let end = rest.find('>').map_or(html.len(), |e| i + e + 1);
            let name: String = html[i + 1..end]
                .trim_start_matches('/')
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric())
                .collect::<String>()
                .to_ascii_lowercase();
            if BLOCKS.contains(&name.as_str()) && !flat.ends_with('\n') {
                flat.push('\n');
                sources.push(None);
            }
            i = end;
        } else if rest.starts_with('&')
            && let Some((c, len)) = entity(rest)
        {
            flat.push(c);
            sources.push(None);
            i += len;
        } else {
            let c = rest.chars().next().unwrap_or(' ');
            flat.push(c);
            sources.push(Some(i));
            i += c.len_utf8();
        }
    }
    (flat, sources)
}

/// The character an entity at the start of `s` stands for, and its length. The serialiser
/// writes only these in text.
fn entity(s: &str) -> Option<(char, usize)> {
    for (name, c) in [
        ("&amp;", '&'),
        ("&lt;", '<'),
        ("&gt;", '>'),
        ("&quot;", '"'),
        ("&nbsp;", '\u{a0}'),
        ("&#39;", '\''),
    ] {
        if s.starts_with(name) {
            return Some((c, name.len()));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sanitising_drops_what_runs_loads_submits_or_styles() {
        let dirty = r#"<html><head><title>t</title><style>p{color:red}</style></head><body>
            <p style="color:red" onclick="x()">Hello <a href="https://example.com/x">link text</a></p>
            <script>alert(1)</script><img src="https://example.com/p.png"><img src="cid:x">
            <form action="https://example.com/f"><input name="q"><button>Go</button></form>
            <iframe src="https://example.com/"></iframe><!-- note --><table><tr><td>a</td></tr></table>
            </body></html>"#;
        let clean = sanitise(dirty);
        for bad in [
            "<script", "alert", "<style", "color", "<img", "<form", "<input", "<a ", "href",
            "onclick", "<iframe", "note", "Go", "https://",
        ] {
            assert!(!clean.contains(bad), "{bad} in {clean}");
        }
        assert!(clean.contains("<p>Hello link text</p>"), "{clean}");
        assert!(clean.contains("<td>a</td>"), "{clean}");
    }

    #[test]
    fn the_flat_text_joins_inline_markup_and_breaks_at_blocks() {
        let html = sanitise("<p>NHS <b>943</b>&nbsp;476<i>5919</i></p><p>A &amp; B</p>");
        let (flat, sources) = flatten(&html);
        assert_eq!(flat, "\nNHS 943\u{a0}4765919\nA & B\n");
        assert_eq!(flat.chars().count(), sources.len());
        // Every letter and digit points at itself in the markup.
        for (c, src) in flat.chars().zip(&sources) {
            if let Some(at) = src {
                assert_eq!(html[*at..].chars().next(), Some(c));
            }
        }
    }

    #[test]
    fn masking_the_flat_text_masks_the_markup_in_place() {
        let html = sanitise("<p>NHS <b>943</b> 476 <i>59</i>19 &amp; more</p>");
        let (flat, sources) = flatten(&html);
        let masked: String = flat
            .chars()
            .map(|c| if c.is_ascii_digit() { '*' } else { c })
            .collect();
        let draft = Draft {
            html: Some(html),
            flat,
            sources,
            truncated: false,
            more_parts: 0,
        };
        let p = draft.masked_with(&masked);
        assert_eq!(p.html, "<p>NHS <b>***</b> *** <i>**</i>** &amp; more</p>");
    }

    #[test]
    fn cuts_on_a_character_boundary() {
        assert_eq!(cut("abc", 5), ("abc", false));
        assert_eq!(cut("aé", 2), ("a", true));
    }
}
