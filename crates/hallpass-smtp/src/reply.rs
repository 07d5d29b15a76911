//! SMTP replies, written by hand.
//!
//! smtp-proto's reply writer puts an enhanced status code on every reply,
//! including `334` and `354`, whose text a client reads as data (Python's
//! smtplib base64-decodes the text of a `334`). Here the status is optional,
//! and the session leaves it off exactly where RFC 2034 and the SASL and DATA
//! exchanges need it absent.

use std::fmt;

/// One SMTP reply: a code, an optional enhanced status code and a text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    /// The three-digit reply code, such as 250.
    pub code: u16,
    /// The enhanced status code (RFC 3463), such as `"5.7.1"`; `None` for
    /// replies that must not carry one (greetings, `334`, `354`).
    pub status: Option<String>,
    /// Human-readable text; each `\n` starts another line of a multi-line reply.
    pub text: String,
}

impl Reply {
    /// A reply with an enhanced status code; an empty `status` means none.
    pub fn new(code: u16, status: &str, text: impl Into<String>) -> Reply {
        Reply {
            code,
            status: (!status.is_empty()).then(|| status.to_string()),
            text: text.into(),
        }
    }

    /// A reply without an enhanced status code.
    pub fn plain(code: u16, text: impl Into<String>) -> Reply {
        Reply {
            code,
            status: None,
            text: text.into(),
        }
    }

    /// The wire form: `code SP [status SP] text CRLF`, or, when the text has
    /// several lines, `code-…` on every line but the last. Carriage returns and
    /// other control characters in the text are replaced by spaces, so a text
    /// can never end a reply early or inject another one.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.text.len() + 16);
        let lines: Vec<&str> = self.text.split('\n').collect();
        for (i, line) in lines.iter().enumerate() {
            let sep = if i + 1 == lines.len() { ' ' } else { '-' };
            out.extend_from_slice(format!("{:03}{sep}", self.code).as_bytes());
            if let Some(status) = &self.status {
                out.extend_from_slice(status.as_bytes());
                out.push(b' ');
            }
            for ch in line.trim_end_matches('\r').chars() {
                if ch.is_control() {
                    out.push(b' ');
                } else {
                    let mut buf = [0u8; 4];
                    out.extend_from_slice(ch.encode_utf8(&mut buf).as_bytes());
                }
            }
            out.extend_from_slice(b"\r\n");
        }
        out
    }

    /// True for 2xx replies.
    pub fn is_positive(&self) -> bool {
        (200..300).contains(&self.code)
    }
}

impl fmt::Display for Reply {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&String::from_utf8_lossy(&self.to_bytes()))
    }
}

#[cfg(test)]
mod tests {
    use super::Reply;

    #[test]
    fn single_line_with_and_without_status() {
        assert_eq!(
            Reply::new(550, "5.7.1", "Relay access denied").to_bytes(),
            b"550 5.7.1 Relay access denied\r\n"
        );
        assert_eq!(
            Reply::plain(334, "VXNlcm5hbWU6").to_bytes(),
            b"334 VXNlcm5hbWU6\r\n"
        );
        assert_eq!(Reply::new(334, "", "").to_bytes(), b"334 \r\n");
    }

    #[test]
    fn multi_line_repeats_code_and_status() {
        assert_eq!(
            Reply::new(250, "2.0.0", "first\nsecond\nlast").to_bytes(),
            b"250-2.0.0 first\r\n250-2.0.0 second\r\n250 2.0.0 last\r\n"
        );
        assert_eq!(
            Reply::plain(250, "host\nSIZE 10").to_bytes(),
            b"250-host\r\n250 SIZE 10\r\n"
        );
    }

    #[test]
    fn control_characters_cannot_inject_a_reply() {
        assert_eq!(
            Reply::new(451, "4.3.0", "busy\r\r250 ok").to_bytes(),
            b"451 4.3.0 busy  250 ok\r\n"
        );
        assert_eq!(
            Reply::new(250, "2.0.0", "a\r\nb").to_bytes(),
            b"250-2.0.0 a\r\n250 2.0.0 b\r\n"
        );
    }
}
