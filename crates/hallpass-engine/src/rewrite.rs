//! The `cc_exposure` rewrite: addresses that should not see each other leave
//! the `To:` and `Cc:` headers (they stay in the envelope, so they still get
//! the message, as Bcc recipients do). Every other byte of the message, the
//! body above all, is kept exactly.

use mail_parser::{Address, HeaderName, MessageParser};

/// Header recording what was done, so a recipient's mail administrator (and
/// the DPO) can tell.
pub const REWRITE_HEADER: &str = "X-Hallpass-Rewrite";

/// Rewrites `raw` so that the addresses for which `hide` is true no longer
/// appear in `To:` or `Cc:`. An emptied `To:` becomes
/// `undisclosed-recipients:;`; an emptied `Cc:` goes. Returns `None` when
/// nothing would change (or the headers cannot be read).
pub fn hide_addresses(raw: &[u8], hide: &dyn Fn(&str) -> bool) -> Option<Vec<u8>> {
    let (head_end, body_start) = header_end(raw)?;
    let message = MessageParser::default().parse_headers(&raw[..body_start])?;
    let keep = |a: Option<&Address<'_>>| -> (Vec<String>, usize) {
        let mut kept = Vec::new();
        let mut hidden = 0;
        for addr in a.into_iter().flat_map(|a| a.iter()) {
            let Some(email) = addr.address() else {
                continue;
            };
            if hide(&email.to_ascii_lowercase()) {
                hidden += 1;
            } else {
                kept.push(format_address(addr.name(), email));
            }
        }
        (kept, hidden)
    };
    let (to, hidden_to) = keep(message.to());
    let (cc, hidden_cc) = keep(message.cc());
    let hidden = hidden_to + hidden_cc;
    if hidden == 0 {
        return None;
    }
    let eol: &[u8] = if raw[..head_end].contains(&b'\r') {
        b"\r\n"
    } else {
        b"\n"
    };

    let mut out = Vec::with_capacity(raw.len());
    out.extend_from_slice(
        format!("{REWRITE_HEADER}: cc_exposure; {hidden} addresses moved from To/Cc to Bcc")
            .as_bytes(),
    );
    out.extend_from_slice(eol);
    let (mut wrote_to, mut wrote_cc) = (false, false);
    for field in fields(&raw[..head_end]) {
        let name = field_name(field);
        if name.eq_ignore_ascii_case(HeaderName::To.as_str()) {
            if !std::mem::replace(&mut wrote_to, true) {
                let value = if to.is_empty() {
                    "undisclosed-recipients:;".to_string()
                } else {
                    to.join(",\r\n ")
                };
                push_field(&mut out, "To", &value, eol);
            }
        } else if name.eq_ignore_ascii_case(HeaderName::Cc.as_str()) {
            if !std::mem::replace(&mut wrote_cc, true) && !cc.is_empty() {
                push_field(&mut out, "Cc", &cc.join(",\r\n "), eol);
            }
        } else {
            out.extend_from_slice(field);
        }
    }
    if !wrote_to {
        push_field(&mut out, "To", "undisclosed-recipients:;", eol);
    }
    out.extend_from_slice(&raw[head_end..]);
    Some(out)
}

/// End of the header lines (before the blank line) and start of the body.
fn header_end(raw: &[u8]) -> Option<(usize, usize)> {
    let crlf = memchr::memmem::find(raw, b"\r\n\r\n").map(|p| (p + 2, p + 4));
    let lf = memchr::memmem::find(raw, b"\n\n").map(|p| (p + 1, p + 2));
    match (crlf, lf) {
        (Some(a), Some(b)) => Some(if a.0 <= b.0 { a } else { b }),
        (a, b) => a.or(b),
    }
}

/// Header fields with their folded continuation lines and line ends.
fn fields(head: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut starts = vec![0];
    for (i, w) in head.windows(2).enumerate() {
        if w[0] == b'\n' && !matches!(w[1], b' ' | b'\t') {
            starts.push(i + 1);
        }
    }
    starts.push(head.len());
    starts
        .windows(2)
        .map(move |w| &head[w[0]..w[1]])
        .filter(|f| !f.is_empty())
        .collect::<Vec<_>>()
        .into_iter()
}

fn field_name(field: &[u8]) -> &str {
    let end = memchr::memchr(b':', field).unwrap_or(0);
    std::str::from_utf8(&field[..end]).unwrap_or("").trim()
}

fn push_field(out: &mut Vec<u8>, name: &str, value: &str, eol: &[u8]) {
    let value = if eol == b"\n" {
        value.replace("\r\n", "\n")
    } else {
        value.to_string()
    };
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(b": ");
    out.extend_from_slice(value.as_bytes());
    out.extend_from_slice(eol);
}

/// `"Name" <address>` when the name can be written as a plain quoted string,
/// otherwise the bare address.
fn format_address(name: Option<&str>, email: &str) -> String {
    match name {
        Some(n)
            if !n.is_empty()
                && n.bytes()
                    .all(|b| (0x20..0x7f).contains(&b) && b != b'"' && b != b'\\') =>
        {
            format!("\"{n}\" <{email}>")
        }
        _ => format!("<{email}>"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MSG: &[u8] = b"From: Head <head@lumen.sch.uk>\r\nTo: Ann <ann@example.com>,\r\n  bob@example.org\r\nCc: \"Deputy\" <deputy@lumen.sch.uk>, cat@example.net\r\nSubject: Trip\r\n\r\nBody line\r\nTo: not a header\r\n";

    fn external(a: &str) -> bool {
        !a.ends_with("@lumen.sch.uk")
    }

    #[test]
    fn external_addresses_leave_to_and_cc_and_the_body_is_untouched() {
        let out = hide_addresses(MSG, &external).expect("changed");
        let text = String::from_utf8(out).unwrap();
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        assert_eq!(body, "Body line\r\nTo: not a header\r\n");
        assert!(
            head.starts_with("X-Hallpass-Rewrite: cc_exposure; 3 addresses"),
            "{head}"
        );
        assert!(
            head.contains("\r\nTo: undisclosed-recipients:;\r\n"),
            "{head}"
        );
        assert!(
            head.contains("\r\nCc: \"Deputy\" <deputy@lumen.sch.uk>\r\n"),
            "{head}"
        );
        assert!(
            head.contains("From: Head <head@lumen.sch.uk>\r\nTo:"),
            "{head}"
        );
        for gone in ["ann@", "bob@", "cat@"] {
            assert!(!head.contains(gone), "{gone} still in {head}");
        }
    }

    #[test]
    fn nothing_to_hide_changes_nothing() {
        assert!(hide_addresses(MSG, &|_| false).is_none());
    }

    #[test]
    fn an_emptied_cc_goes_and_lf_messages_keep_lf() {
        let msg = b"To: a@lumen.sch.uk\nCc: x@example.com\nSubject: s\n\nbody\n";
        let out = String::from_utf8(hide_addresses(msg, &external).unwrap()).unwrap();
        assert!(!out.contains("Cc:"), "{out}");
        assert!(
            out.contains("\nTo: <a@lumen.sch.uk>\nSubject: s\n\nbody\n"),
            "{out}"
        );
        assert!(!out.contains('\r'));
    }
}
