//! The DATA receiver: dot-unstuffing, the end of data, and the smuggling guard.
//!
//! smtp-proto's `DataReceiver` is not used: it does not report bare line ends,
//! and that report is the whole defence against SMTP smuggling. Only
//! `<CRLF>.<CRLF>` ends the data here. A bare LF or a bare CR anywhere in the
//! content (a line end other than CRLF, which RFC 5321 2.3.8 forbids) is
//! remembered and the message is refused once its real end arrives, as Postfix
//! does with `smtpd_forbid_bare_newline` and sendmail 8.18 does by default for
//! both. Refusing rather than normalising means no next hop, however lenient
//! about line ends, ever receives a message whose boundaries it could read
//! differently from us; honest clients always send CRLF.

use memchr::memchr2;

/// Why received data cannot be passed on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// Over the size limit.
    TooBig,
    /// A LF without a CR before it.
    BareLf,
    /// A CR without a LF after it.
    BareCr,
}

/// Receives one message's data, streaming and bounded.
#[derive(Debug)]
pub(crate) struct DataReceiver {
    /// The bytes so far ended a line with CRLF (true at the start).
    line_start: bool,
    /// The current line began with a dot (removed) and nothing has followed.
    dot_line: bool,
    /// The last byte was a CR that has not been written out yet.
    cr: bool,
    bare_lf: bool,
    bare_cr: bool,
    size: u64,
    limit: u64,
    too_big: bool,
    data: Vec<u8>,
}

impl DataReceiver {
    /// A receiver that keeps at most `limit` bytes of content.
    pub(crate) fn new(limit: u64) -> DataReceiver {
        DataReceiver {
            line_start: true,
            dot_line: false,
            cr: false,
            bare_lf: false,
            bare_cr: false,
            size: 0,
            limit,
            too_big: false,
            data: Vec::new(),
        }
    }

    /// Consumes input; returns how many bytes were used and whether the end of
    /// data (`<CRLF>.<CRLF>`) was reached within them.
    pub(crate) fn feed(&mut self, input: &[u8]) -> (usize, bool) {
        let mut i = 0;
        while i < input.len() {
            let b = input[i];
            if self.cr {
                self.cr = false;
                if b == b'\n' {
                    i += 1;
                    if self.dot_line {
                        return (i, true);
                    }
                    self.emit(b"\r\n");
                    self.line_start = true;
                    continue;
                }
                // A bare CR; the byte after it is looked at afresh.
                self.bare_cr = true;
                self.emit(b"\r");
                self.dot_line = false;
                continue;
            }
            if self.line_start {
                self.line_start = false;
                if b == b'.' {
                    self.dot_line = true;
                    i += 1;
                    continue;
                }
            }
            match b {
                b'\r' => {
                    self.cr = true;
                    i += 1;
                }
                b'\n' => {
                    // Not a line start: `\n.\n` and `\n.\r\n` end nothing.
                    self.bare_lf = true;
                    self.dot_line = false;
                    self.emit(b"\n");
                    i += 1;
                }
                _ => {
                    let end = memchr2(b'\r', b'\n', &input[i..]).map_or(input.len(), |p| i + p);
                    self.dot_line = false;
                    self.emit(&input[i..end]);
                    i = end;
                }
            }
        }
        (input.len(), false)
    }

    fn emit(&mut self, bytes: &[u8]) {
        self.size = self.size.saturating_add(bytes.len() as u64);
        if self.size > self.limit {
            if !self.too_big {
                self.too_big = true;
                // Keep reading to the end, storing nothing more.
                self.data = Vec::new();
            }
        } else {
            self.data.extend_from_slice(bytes);
        }
    }

    /// The content, or why it cannot be passed on.
    pub(crate) fn finish(self) -> Result<Vec<u8>, Refusal> {
        if self.too_big {
            Err(Refusal::TooBig)
        } else if self.bare_lf {
            Err(Refusal::BareLf)
        } else if self.bare_cr {
            Err(Refusal::BareCr)
        } else {
            Ok(self.data)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{DataReceiver, Refusal};

    /// Feeds whole and byte by byte; both must agree.
    fn receive(input: &[u8], limit: u64) -> (usize, Result<Vec<u8>, Refusal>) {
        let mut whole = DataReceiver::new(limit);
        let (used, done) = whole.feed(input);
        assert!(done, "end of data not found");
        let mut bytes = DataReceiver::new(limit);
        let mut used_bytes = 0;
        for b in input {
            used_bytes += 1;
            let (n, done) = bytes.feed(std::slice::from_ref(b));
            assert_eq!(n, 1);
            if done {
                break;
            }
        }
        assert_eq!(used, used_bytes);
        let a = whole.finish();
        assert_eq!(a, bytes.finish());
        (used, a)
    }

    #[test]
    fn unstuffs_dots_and_stops_at_the_terminator() {
        let input = b"Subject: x\r\n\r\n..leading dot\r\n.\r\nQUIT\r\n";
        let (used, data) = receive(input, 1000);
        assert_eq!(used, input.len() - b"QUIT\r\n".len());
        assert_eq!(data.unwrap(), b"Subject: x\r\n\r\n.leading dot\r\n");
    }

    #[test]
    fn empty_message_and_dot_only_lines() {
        assert_eq!(receive(b".\r\n", 10).1.unwrap(), b"");
        assert_eq!(receive(b"..\r\n.\r\n", 10).1.unwrap(), b".\r\n");
        assert_eq!(receive(b". \r\n.\r\n", 10).1.unwrap(), b" \r\n");
    }

    #[test]
    fn bare_line_ends_never_end_data_and_are_refused() {
        for (payload, why) in [
            (&b"a\n.\nb\r\n.\r\n"[..], Refusal::BareLf),
            (b"a\r\n.\nb\r\n.\r\n", Refusal::BareLf),
            (b"a\n.\r\nb\r\n.\r\n", Refusal::BareLf),
            (b"a\r.\r\nb\r\n.\r\n", Refusal::BareCr),
            (b"a\r\n.\rb\r\n.\r\n", Refusal::BareCr),
            (b"a\r.\rb\r\n.\r\n", Refusal::BareCr),
        ] {
            let (used, data) = receive(payload, 1000);
            assert_eq!(used, payload.len(), "{payload:?}");
            assert_eq!(data, Err(why), "{payload:?}");
        }
    }

    #[test]
    fn over_the_limit_is_read_to_the_end_but_not_kept() {
        let mut input = b"x".repeat(100);
        input.extend_from_slice(b"\r\n.\r\n");
        let mut rx = DataReceiver::new(50);
        let (used, done) = rx.feed(&input);
        assert!(done);
        assert_eq!(used, input.len());
        assert!(rx.data.is_empty());
        assert_eq!(rx.finish(), Err(Refusal::TooBig));
        assert_eq!(receive(b"12345\r\n.\r\n", 7).1.unwrap(), b"12345\r\n");
        assert_eq!(receive(b"123456\r\n.\r\n", 7).1, Err(Refusal::TooBig));
    }
}
