//! Bounces: the delivery status notification (RFC 3464) sent to the original sender for the
//! recipients that failed.
//!
//! The report carries the original message's headers and never its body: a DLP product does
//! not copy personal data into bounces.

use mail_builder::MessageBuilder;
use mail_builder::headers::content_type::ContentType;
use mail_builder::headers::date::Date;
use mail_builder::headers::raw::Raw;
use mail_builder::mime::{BodyPart, MimePart};

/// The original headers kept in a report, at most (whole header fields only).
const MAX_HEADERS: usize = 64 * 1024;
/// A reply longer than this is cut in the report (a line must stay under 998 bytes).
const MAX_REPLY: usize = 900;

/// What [`dsn()`] needs to write a bounce.
#[derive(Debug, Clone, Copy)]
pub struct Dsn<'a> {
    /// This relay's host name (`Reporting-MTA: dns; ...`).
    pub reporting_mta: &'a str,
    /// The address the report comes from (`From:`), such as `postmaster@lumen.sch.uk`.
    pub postmaster: &'a str,
    /// The envelope sender of the original message: the report goes to this address. Never
    /// the null sender: a bounce is not bounced.
    pub original_sender: &'a str,
    /// The original message's queue id (`X-Hallpass-Queue-ID`, and the report's Message-ID).
    pub queue_id: &'a str,
    /// When the original message arrived (Unix seconds).
    pub arrival_unix: i64,
    /// Now (Unix seconds): the report's date and the last attempt's.
    pub now_unix: i64,
    /// The recipients that failed, each with the upstream's reply or what failed.
    pub failed: &'a [(String, String)],
    /// The whole original message; only its headers are used.
    pub original: &'a [u8],
    /// `true` when the message is returned because it could not be delivered in time (after
    /// transient failures), `false` when it was refused.
    pub expired: bool,
}

/// Writes the delivery status notification (RFC 3464 `multipart/report;
/// report-type=delivery-status`) for `d.failed`, addressed to `d.original_sender`:
///
/// 1. a plain-language part: who could not be reached, the upstream's reply, what to do;
/// 2. a `message/delivery-status` part: `Reporting-MTA`, `Arrival-Date`, and for each recipient
///    `Final-Recipient`, `Action: failed`, `Status` (the enhanced code in the reply, else
///    `4.0.0`/`5.0.0` after the reply's class, else `5.0.0`) and `Diagnostic-Code: smtp; ...`
///    (`X-Hallpass; ...` when the text is not an SMTP reply, such as `connection refused`);
/// 3. a `text/rfc822-headers` part with the original's header fields, never its body.
///
/// `From:` is the postmaster; the envelope sender of the report must be the null sender `<>`
/// (the caller sends it). With a non-ASCII recipient address the status part is
/// `message/global-delivery-status` (RFC 6533).
pub fn dsn(d: &Dsn<'_>) -> Vec<u8> {
    let status = delivery_status(d);
    let headers = original_headers(d.original);
    let global = !status.is_ascii();
    let (status_type, report_type) = if global {
        ("message/global-delivery-status", "global-delivery-status")
    } else {
        ("message/delivery-status", "delivery-status")
    };
    let parts = vec![
        MimePart::new("text/plain", human_text(d)),
        MimePart::new(status_type, BodyPart::Binary(status.into_bytes().into()))
            .transfer_encoding(if global { "8bit" } else { "7bit" }),
        MimePart::new(
            "text/rfc822-headers",
            BodyPart::Binary(headers.clone().into()),
        )
        .transfer_encoding(if headers.is_ascii() { "7bit" } else { "8bit" }),
    ];
    let subject = if d.expired {
        "Undelivered Mail Returned to Sender (delivery time expired)"
    } else {
        "Undelivered Mail Returned to Sender"
    };
    let message_id = format!(
        "{}.{}.dsn@{}",
        id_part(d.queue_id),
        d.now_unix,
        id_part(d.reporting_mta)
    );
    MessageBuilder::new()
        .from(("Mail Delivery System", d.postmaster))
        .to(d.original_sender)
        .subject(subject)
        .date(Date::new(d.now_unix))
        .message_id(message_id)
        .header("Auto-Submitted", Raw::new("auto-replied"))
        .body(MimePart::new(
            ContentType::new("multipart/report").attribute("report-type", report_type),
            parts,
        ))
        .write_to_vec()
        .unwrap_or_default()
}

/// The first part, for the person who sent the message.
fn human_text(d: &Dsn<'_>) -> String {
    let mut text = format!(
        "This is the mail system at {}.\r\n\r\n",
        one_line(d.reporting_mta)
    );
    let (them, they) = if d.failed.len() == 1 {
        ("the recipient below", "That recipient has")
    } else {
        ("the recipients below", "Those recipients have")
    };
    if d.expired {
        text.push_str(&format!(
            "Your message could not be delivered to {them} for {},\r\n\
             so it is returned to you. {they} not received it.\r\n\r\n",
            period(d.now_unix.saturating_sub(d.arrival_unix))
        ));
    } else {
        text.push_str(&format!(
            "Your message could not be delivered to {them}: the receiving\r\n\
             mail server refused it. {they} not received it.\r\n\r\n"
        ));
    }
    for (rcpt, reply) in d.failed {
        text.push_str(&format!("    <{}>\r\n", one_line(rcpt)));
        let reply = short(&one_line(reply));
        if smtp_code(&reply).is_some() {
            text.push_str(&format!(
                "        The receiving server said: {reply}\r\n\r\n"
            ));
        } else {
            text.push_str(&format!("        What went wrong: {reply}\r\n\r\n"));
        }
    }
    text.push_str("What you can do:\r\n");
    if d.expired {
        text.push_str(
            "  - The receiving mail server could not be reached, or kept asking us\r\n    \
             to try later. Try sending your message again later, or contact the\r\n    \
             recipient another way.\r\n  \
             - If this keeps happening, please tell your IT team.\r\n",
        );
    } else {
        text.push_str(
            "  - Check each address above for a typing mistake, and send your\r\n    \
             message again to the corrected address.\r\n  \
             - If the address is right, the recipient's mail server may not accept\r\n    \
             this message; contact the recipient another way, or ask your IT team\r\n    \
             for help.\r\n",
        );
    }
    text.push_str(
        "\r\nRecipients not listed above are not affected by this notice.\r\n\r\n\
         The headers of your original message are attached for reference; the\r\n\
         message itself is not included in this notice.\r\n",
    );
    text
}

/// "3 days", "1 day", "5 hours", "1 hour".
fn period(seconds: i64) -> String {
    let days = seconds / 86_400;
    let hours = (seconds / 3_600).max(1);
    match days {
        1 => "1 day".into(),
        d if d > 1 => format!("{d} days"),
        _ if hours == 1 => "1 hour".into(),
        _ => format!("{hours} hours"),
    }
}

/// The second part, for machines (RFC 3464 section 2).
fn delivery_status(d: &Dsn<'_>) -> String {
    let mut out = format!(
        "Reporting-MTA: dns; {}\r\nX-Hallpass-Queue-ID: {}\r\nArrival-Date: {}\r\n",
        one_line(d.reporting_mta),
        one_line(d.queue_id),
        Date::new(d.arrival_unix).to_rfc822()
    );
    let last_attempt = Date::new(d.now_unix).to_rfc822();
    for (rcpt, reply) in d.failed {
        let rcpt = one_line(rcpt);
        let reply = short(&one_line(reply));
        let address_type = if rcpt.is_ascii() { "rfc822" } else { "utf-8" };
        let diagnostic_type = if smtp_code(&reply).is_some() {
            "smtp"
        } else {
            "X-Hallpass"
        };
        out.push_str(&format!(
            "\r\nFinal-Recipient: {address_type}; {rcpt}\r\n\
             Action: failed\r\n\
             Status: {}\r\n\
             Diagnostic-Code: {diagnostic_type}; {reply}\r\n\
             Last-Attempt-Date: {last_attempt}\r\n",
            status(&reply)
        ));
    }
    out
}

/// The basic reply code at the start of `reply`, when it is an SMTP reply.
fn smtp_code(reply: &str) -> Option<&str> {
    let code = reply.split_whitespace().next()?;
    let bytes = code.as_bytes();
    (bytes.len() == 3
        && (b'2'..=b'5').contains(&bytes[0])
        && code.bytes().all(|b| b.is_ascii_digit()))
    .then_some(code)
}

/// The RFC 3463 status for a failed recipient.
fn status(reply: &str) -> String {
    let Some(code) = smtp_code(reply) else {
        return "5.0.0".into();
    };
    if let Some(enhanced) = reply.split_whitespace().nth(1).filter(|w| is_enhanced(w)) {
        return enhanced.to_string();
    }
    if code.starts_with('4') {
        "4.0.0".into()
    } else {
        "5.0.0".into()
    }
}

/// `class.subject.detail`: class 2, 4 or 5; subject and detail of one to three digits.
fn is_enhanced(word: &str) -> bool {
    let mut parts = word.split('.');
    let (Some(class), Some(subject), Some(detail), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return false;
    };
    let number = |s: &str| (1..=3).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_digit());
    matches!(class, "2" | "4" | "5") && number(subject) && number(detail)
}

/// Control characters (a CR or LF would end the field) become spaces.
fn one_line(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect::<String>()
        .trim()
        .to_string()
}

/// At most [`MAX_REPLY`] bytes, cut at a character boundary.
fn short(text: &str) -> String {
    if text.len() <= MAX_REPLY {
        return text.to_string();
    }
    let mut end = MAX_REPLY;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}...", &text[..end])
}

/// Characters safe in a Message-ID's left or right part.
fn id_part(text: &str) -> String {
    let kept: String = text
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'))
        .collect();
    if kept.is_empty() {
        "hallpass".into()
    } else {
        kept
    }
}

/// The header section of `message` as complete header fields with CRLF line ends, at most
/// [`MAX_HEADERS`] bytes. Reading stops at the empty line that starts the body, and also at
/// the first line that is neither a header field nor its continuation: without a proper empty
/// line the body must still never come along.
fn original_headers(message: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut field: Vec<u8> = Vec::new();
    for line in message.split_inclusive(|&b| b == b'\n') {
        let content = line
            .strip_suffix(b"\n")
            .map(|l| l.strip_suffix(b"\r").unwrap_or(l))
            .unwrap_or(line);
        if content.is_empty() {
            break;
        }
        if matches!(content.first(), Some(b' ' | b'\t')) && !field.is_empty() {
            field.extend_from_slice(content);
            field.extend_from_slice(b"\r\n");
        } else if is_field_start(content) {
            if !take_field(&mut out, &mut field) {
                return out;
            }
            field.extend_from_slice(content);
            field.extend_from_slice(b"\r\n");
        } else {
            break;
        }
    }
    take_field(&mut out, &mut field);
    out
}

/// Moves `field` into `out` unless that would pass [`MAX_HEADERS`]; `false` when full.
fn take_field(out: &mut Vec<u8>, field: &mut Vec<u8>) -> bool {
    if out.len() + field.len() > MAX_HEADERS {
        return false;
    }
    out.append(field);
    true
}

/// `Name:` with a name of printable ASCII other than `:` (RFC 5322 section 2.2).
fn is_field_start(line: &[u8]) -> bool {
    match line.iter().position(|&b| b == b':') {
        Some(0) | None => false,
        Some(colon) => line[..colon].iter().all(|b| (33..=126).contains(b)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_comes_from_the_enhanced_code_else_the_reply_class() {
        assert_eq!(status("550 5.1.1 no such user"), "5.1.1");
        assert_eq!(status("552 5.3.4 too big"), "5.3.4");
        assert_eq!(status("554 transaction failed"), "5.0.0");
        assert_eq!(status("451 4.3.0 try later"), "4.3.0");
        assert_eq!(status("421 closing"), "4.0.0");
        assert_eq!(status("connection refused"), "5.0.0");
        assert_eq!(status("550 5.1 odd"), "5.0.0");
    }

    #[test]
    fn headers_stop_at_the_empty_line() {
        let message = b"From: a@lumen.sch.uk\r\nSubject: hello\r\n  folded\r\n\r\nBody: text\r\n";
        assert_eq!(
            original_headers(message),
            b"From: a@lumen.sch.uk\r\nSubject: hello\r\n  folded\r\n"
        );
    }

    #[test]
    fn headers_stop_at_a_line_that_is_not_a_header() {
        let message =
            b"From: a@lumen.sch.uk\nSubject: hi\nthe body started without an empty line\nX: y\n";
        assert_eq!(
            original_headers(message),
            b"From: a@lumen.sch.uk\r\nSubject: hi\r\n"
        );
        assert_eq!(original_headers(b" leading continuation\r\n\r\n"), b"");
        assert_eq!(original_headers(b"From a@x Mon Jan 1\r\nA: b\r\n\r\n"), b"");
    }

    #[test]
    fn huge_header_sections_keep_whole_fields_only() {
        let mut message = Vec::new();
        for i in 0..10_000 {
            message.extend_from_slice(format!("Received: from host{i}.example.org\r\n").as_bytes());
        }
        message.extend_from_slice(b"\r\nbody\r\n");
        let headers = original_headers(&message);
        assert!(headers.len() <= MAX_HEADERS && headers.len() > MAX_HEADERS - 64);
        assert!(headers.ends_with(b".example.org\r\n"));
    }

    #[test]
    fn periods_read_naturally() {
        assert_eq!(period(5 * 86_400 + 10), "5 days");
        assert_eq!(period(86_400), "1 day");
        assert_eq!(period(7_200), "2 hours");
        assert_eq!(period(60), "1 hour");
    }
}
