//! The SMTP session as a sans-IO state machine.
//!
//! No sockets, no tokio, no clock: bytes come in through
//! [`Session::handle_input`], time through `now` arguments, and what the
//! session wants done comes out of [`Session::poll_reply`] (bytes to write),
//! [`Session::poll_event`] (work for the relay: check a password, judge a
//! message, start TLS) and [`Session::poll_timeout`]. The results of that work
//! come back through [`Session::handle_auth`], [`Session::handle_verdict`]
//! and [`Session::tls_started`].
//!
//! Commands are answered strictly in order. While an event is out, input is
//! kept (not parsed) and taken up again when its result arrives, so pipelined
//! commands are neither lost nor reordered. Input that arrives after STARTTLS
//! and before the handshake is thrown away (CVE-2011-0411).

use std::borrow::Cow;
use std::collections::VecDeque;
use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use smtp_proto::{Error as ParseError, MailFrom, RcptTo, Request};

use crate::data::{DataReceiver, Refusal};
use crate::{Reply, Settings, base64};

/// Input kept while an event is out, beyond one command line. The tokio
/// driver never reads while an event is out, so it never comes near this.
const MAX_PENDING_INPUT: usize = 64 * 1024;

/// The envelope of one message, as the client gave it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Envelope {
    /// The client's address.
    pub peer: SocketAddr,
    /// The name the client gave in HELO/EHLO.
    pub helo: String,
    /// `MAIL FROM`, `""` for the null sender `<>`.
    pub mail_from: String,
    /// `RCPT TO`, in order, without duplicates.
    pub rcpt_to: Vec<String>,
    /// The relay account the client authenticated as, if any.
    pub authenticated: Option<String>,
    /// True when the message came over TLS.
    pub tls: bool,
    /// True when the client asked for SMTPUTF8.
    pub smtputf8: bool,
    /// True when the client declared `BODY=8BITMIME`.
    pub eight_bit: bool,
}

/// Work the session needs done before it can go on.
#[non_exhaustive]
pub enum Event {
    /// Check a relay account's credentials, then call
    /// [`Session::handle_auth`].
    Authenticate {
        /// The account name.
        user: String,
        /// The password, as given.
        password: String,
    },
    /// A complete message: judge it, then call [`Session::handle_verdict`].
    Message {
        /// Who sent it to whom.
        envelope: Envelope,
        /// The content after dot-unstuffing, with CRLF line ends, without the
        /// terminating `.CRLF`.
        data: Vec<u8>,
    },
    /// Write the pending replies (the `220` to STARTTLS is among them), run
    /// the TLS handshake as server, then call [`Session::tls_started`]; on
    /// failure, close the connection.
    StartTls,
}

impl fmt::Debug for Event {
    // Never the password, never the content.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Event::Authenticate { .. } => f.write_str("Authenticate { .. }"),
            Event::Message { data, .. } => f
                .debug_struct("Message")
                .field("bytes", &data.len())
                .finish_non_exhaustive(),
            Event::StartTls => f.write_str("StartTls"),
        }
    }
}

/// What the session is doing with incoming bytes.
#[derive(Debug)]
enum Phase {
    /// Reading command lines.
    Command,
    /// `AUTH PLAIN` was sent without an initial response; reading it.
    AuthPlain,
    /// `AUTH LOGIN`: reading the user name.
    AuthLoginUser,
    /// `AUTH LOGIN`: reading the password.
    AuthLoginPassword { user: String },
    /// Reading message content.
    Data(Box<DataReceiver>),
    /// An event is out; input waits.
    Waiting(Wait),
    /// Done; input is ignored.
    Closed,
}

#[derive(Debug)]
enum Wait {
    Auth { user: String },
    Verdict,
    Tls,
}

#[derive(Debug)]
struct Transaction {
    mail_from: String,
    rcpt_to: Vec<String>,
    smtputf8: bool,
    eight_bit: bool,
}

/// One SMTP server session, from greeting to close, without I/O.
pub struct Session {
    settings: Arc<Settings>,
    peer: SocketAddr,
    phase: Phase,
    input: Vec<u8>,
    /// A command line over the limit is being skipped up to its LF.
    discarding_line: bool,
    out: Vec<u8>,
    events: VecDeque<Event>,
    deadline: Instant,
    helo: Option<String>,
    tls: bool,
    authenticated: Option<String>,
    tx: Option<Transaction>,
    bad_commands: u32,
    shutting_down: bool,
}

impl fmt::Debug for Session {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Session")
            .field("peer", &self.peer)
            .field("phase", &self.phase_name())
            .field("tls", &self.tls)
            .field("bad_commands", &self.bad_commands)
            .finish_non_exhaustive()
    }
}

impl Session {
    /// A new session for a client at `peer`; the `220` greeting is ready in
    /// [`Session::poll_reply`].
    pub fn new(now: Instant, settings: Arc<Settings>, peer: SocketAddr) -> Session {
        let deadline = now + settings.command_timeout;
        let mut session = Session {
            settings,
            peer,
            phase: Phase::Command,
            input: Vec::new(),
            discarding_line: false,
            out: Vec::new(),
            events: VecDeque::new(),
            deadline,
            helo: None,
            tls: false,
            authenticated: None,
            tx: None,
            bad_commands: 0,
            shutting_down: false,
        };
        let greeting = Reply::plain(220, format!("{} ESMTP hallpass", session.settings.hostname));
        session.send(&greeting);
        session
    }

    /// Bytes received from the client.
    pub fn handle_input(&mut self, now: Instant, bytes: &[u8]) {
        match &self.phase {
            Phase::Closed => return,
            // Plaintext after STARTTLS, before the handshake: never commands.
            Phase::Waiting(Wait::Tls) => return,
            Phase::Waiting(_) => {
                if self.input.len() + bytes.len()
                    > MAX_PENDING_INPUT + self.settings.max_line_length
                {
                    self.close_with(&Reply::new(
                        421,
                        "4.7.0",
                        format!("{} Too much pipelined input", self.settings.hostname),
                    ));
                    return;
                }
                self.input.extend_from_slice(bytes);
                return;
            }
            Phase::Data(_) => self.deadline = now + self.settings.data_timeout,
            _ => self.deadline = now + self.settings.command_timeout,
        }
        self.input.extend_from_slice(bytes);
        self.process(now);
    }

    /// The next bytes to write to the client, all pending replies at once.
    pub fn poll_reply(&mut self) -> Option<Vec<u8>> {
        if self.out.is_empty() {
            None
        } else {
            Some(std::mem::take(&mut self.out))
        }
    }

    /// The next piece of work for the relay.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// When [`Session::handle_timeout`] should be called, if the session is
    /// waiting on the client (not while an event is out, nor once closed).
    pub fn poll_timeout(&self) -> Option<Instant> {
        match self.phase {
            Phase::Waiting(_) | Phase::Closed => None,
            _ => Some(self.deadline),
        }
    }

    /// Time has passed; closes with `421 4.4.2` when the client has been idle
    /// too long.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.poll_timeout().is_some_and(|deadline| now >= deadline) {
            tracing::debug!(peer = %self.peer, phase = self.phase_name(), "timeout");
            self.close_with(&Reply::new(
                421,
                "4.4.2",
                format!("{} Error: timeout exceeded", self.settings.hostname),
            ));
        }
    }

    /// The relay's answer to [`Event::Authenticate`].
    pub fn handle_auth(&mut self, now: Instant, ok: bool) {
        let user = match std::mem::replace(&mut self.phase, Phase::Command) {
            Phase::Waiting(Wait::Auth { user }) => user,
            other => {
                self.phase = other;
                return;
            }
        };
        self.deadline = now + self.settings.command_timeout;
        if ok {
            self.authenticated = Some(user);
            self.send(&Reply::new(235, "2.7.0", "Authentication successful"));
        } else {
            self.reject(&Reply::new(
                535,
                "5.7.8",
                "Authentication credentials invalid",
            ));
        }
        self.process(now);
    }

    /// The relay's answer to [`Event::Message`], sent to the client as it is.
    /// The transaction ends either way; a `421` also ends the session.
    pub fn handle_verdict(&mut self, now: Instant, reply: Reply) {
        if !matches!(self.phase, Phase::Waiting(Wait::Verdict)) {
            return;
        }
        self.phase = Phase::Command;
        self.tx = None;
        self.deadline = now + self.settings.command_timeout;
        if reply.code == 421 {
            // The relay is going away: say so and close, as RFC 5321 4.2.2 says.
            self.close_with(&reply);
            return;
        }
        self.send(&reply);
        self.process(now);
    }

    /// The TLS handshake after [`Event::StartTls`] succeeded. The session
    /// starts over as RFC 3207 says: HELO, transaction and AUTH are forgotten.
    pub fn tls_started(&mut self, now: Instant) {
        if !matches!(self.phase, Phase::Waiting(Wait::Tls)) {
            return;
        }
        self.phase = Phase::Command;
        self.tls = true;
        self.helo = None;
        self.tx = None;
        self.authenticated = None;
        self.input.clear();
        self.discarding_line = false;
        self.deadline = now + self.settings.command_timeout;
        self.process(now);
    }

    /// The server is shutting down: a session is told `421 4.3.2` and closes
    /// now, unless it is receiving DATA or waiting for a verdict (or for an
    /// AUTH or TLS result); then it closes as soon as that is answered.
    pub fn handle_shutdown(&mut self, now: Instant) {
        self.shutting_down = true;
        self.process(now);
    }

    /// True once the session is over: write what [`Session::poll_reply`]
    /// still gives, then close the connection.
    pub fn is_closed(&self) -> bool {
        matches!(self.phase, Phase::Closed)
    }

    /// True when the session runs over TLS.
    pub fn is_tls(&self) -> bool {
        self.tls
    }

    /// The account the client authenticated as, if any.
    pub fn authenticated(&self) -> Option<&str> {
        self.authenticated.as_deref()
    }

    /// Works through the buffered input until it runs out or an event is out.
    fn process(&mut self, now: Instant) {
        let input = std::mem::take(&mut self.input);
        let mut pos = 0;
        loop {
            // In flight means in DATA or waiting for its verdict. A client
            // between MAIL and DATA has been promised nothing; it gets 421 and
            // keeps its message.
            if self.shutting_down
                && !matches!(
                    self.phase,
                    Phase::Data(_) | Phase::Waiting(_) | Phase::Closed
                )
            {
                self.close_with(&Reply::new(
                    421,
                    "4.3.2",
                    format!("{} shutting down", self.settings.hostname),
                ));
            }
            match &mut self.phase {
                Phase::Closed => {
                    pos = input.len();
                    break;
                }
                Phase::Waiting(Wait::Tls) => {
                    // Whatever followed STARTTLS in the same packet is dropped.
                    pos = input.len();
                    break;
                }
                Phase::Waiting(_) => break,
                Phase::Data(rx) => {
                    let (used, done) = rx.feed(&input[pos..]);
                    pos += used;
                    if !done {
                        break;
                    }
                    self.end_of_data(now);
                }
                Phase::Command
                | Phase::AuthPlain
                | Phase::AuthLoginUser
                | Phase::AuthLoginPassword { .. } => {
                    let rest = &input[pos..];
                    let max = self.settings.max_line_length;
                    match memchr::memchr(b'\n', rest) {
                        Some(lf) => {
                            let line = &rest[..=lf];
                            pos += lf + 1;
                            if self.discarding_line || line.len() > max {
                                self.discarding_line = false;
                                self.reject(&Reply::new(500, "5.5.2", "Line too long"));
                            } else {
                                self.line(now, line);
                            }
                        }
                        None => {
                            if self.discarding_line || rest.len() > max {
                                self.discarding_line = true;
                                pos = input.len();
                            }
                            break;
                        }
                    }
                }
            }
        }
        let mut input = input;
        input.drain(..pos);
        self.input = input;
    }

    /// One complete line (with its line end) in a command or SASL phase.
    fn line(&mut self, now: Instant, line: &[u8]) {
        match std::mem::replace(&mut self.phase, Phase::Command) {
            Phase::Command => self.command(now, line),
            Phase::AuthPlain => self.sasl_plain(trim_eol(line)),
            Phase::AuthLoginUser => self.sasl_login_user(trim_eol(line)),
            Phase::AuthLoginPassword { user } => self.sasl_login_password(user, trim_eol(line)),
            other => self.phase = other,
        }
    }

    fn command(&mut self, now: Instant, line: &[u8]) {
        if std::str::from_utf8(line).is_err() {
            self.reject(&Reply::new(500, "5.5.2", "Invalid UTF-8 in command"));
            return;
        }
        let request = match Request::parse(&mut line.iter()) {
            Ok(request) => request,
            Err(e) => {
                let reply = parse_error_reply(&e);
                self.reject(&reply);
                return;
            }
        };
        tracing::trace!(peer = %self.peer, command = request.name(), "command");
        match request {
            Request::Ehlo { host } => self.ehlo(host.into_owned()),
            Request::Helo { host } => {
                self.helo = Some(host.into_owned());
                self.tx = None;
                self.send(&Reply::plain(250, self.settings.hostname.clone()));
            }
            Request::Mail { from } => self.mail(from),
            Request::Rcpt { to } => self.rcpt(to),
            Request::Data => self.data(now),
            Request::Rset => {
                self.tx = None;
                self.send(&Reply::new(250, "2.0.0", "OK"));
            }
            Request::Noop { .. } => self.send(&Reply::new(250, "2.0.0", "OK")),
            Request::Quit => self.close_with(&Reply::plain(
                221,
                format!("{} closing connection", self.settings.hostname),
            )),
            Request::Vrfy { .. } => self.send(&Reply::new(
                252,
                "2.5.0",
                "Cannot VRFY user, but will accept message and attempt delivery",
            )),
            Request::Expn { .. } => {
                self.reject(&Reply::new(502, "5.5.1", "EXPN not available"));
            }
            Request::Help { .. } => self.send(&Reply::new(
                214,
                "2.0.0",
                "Commands: EHLO HELO MAIL RCPT DATA RSET NOOP QUIT VRFY STARTTLS AUTH HELP",
            )),
            Request::StartTls => self.starttls(),
            Request::Auth {
                mechanism,
                initial_response,
            } => self.auth(mechanism, &initial_response),
            Request::Lhlo { .. }
            | Request::Bdat { .. }
            | Request::Etrn { .. }
            | Request::Atrn { .. }
            | Request::Burl { .. } => {
                self.reject(&Reply::new(502, "5.5.1", "Command not implemented"));
            }
        }
    }

    fn ehlo(&mut self, host: String) {
        self.helo = Some(host);
        self.tx = None;
        let mut lines = vec![
            self.settings.hostname.clone(),
            format!("SIZE {}", self.settings.max_message_size),
            "8BITMIME".into(),
            "SMTPUTF8".into(),
            "PIPELINING".into(),
            "ENHANCEDSTATUSCODES".into(),
        ];
        if self.starttls_offered() {
            lines.push("STARTTLS".into());
        }
        if self.auth_offered() {
            lines.push("AUTH PLAIN LOGIN".into());
        }
        // EHLO keywords must not carry an enhanced status code.
        self.send(&Reply::plain(250, lines.join("\n")));
    }

    fn mail(&mut self, from: MailFrom<Cow<'_, str>>) {
        if self.helo.is_none() {
            self.reject(&Reply::new(503, "5.5.1", "Send HELO/EHLO first"));
            return;
        }
        if self.tx.is_some() {
            self.reject(&Reply::new(503, "5.5.1", "Nested MAIL command"));
            return;
        }
        if from.flags & smtp_proto::MAIL_BODY_BINARYMIME != 0 {
            self.reject(&Reply::new(
                555,
                "5.5.4",
                "BODY=BINARYMIME needs CHUNKING, which is not offered",
            ));
            return;
        }
        let unsupported_flags = smtp_proto::MAIL_RET_FULL
            | smtp_proto::MAIL_RET_HDRS
            | smtp_proto::MAIL_REQUIRETLS
            | smtp_proto::MAIL_CONPERM
            | smtp_proto::MAIL_BY_NOTIFY
            | smtp_proto::MAIL_BY_RETURN
            | smtp_proto::MAIL_BY_TRACE;
        if from.flags & unsupported_flags != 0
            || from.trans_id.is_some()
            || from.env_id.is_some()
            || from.solicit.is_some()
            || from.mtrk.is_some()
            || from.hold_for != 0
            || from.hold_until != 0
            || from.mt_priority != 0
            || from.by != 0
        {
            self.reject(&Reply::new(555, "5.5.4", "Unsupported MAIL parameter"));
            return;
        }
        if from.size as u64 > self.settings.max_message_size {
            self.reject(&Reply::new(
                552,
                "5.3.4",
                "Message size exceeds fixed maximum message size",
            ));
            return;
        }
        let smtputf8 = from.flags & smtp_proto::MAIL_SMTPUTF8 != 0;
        let address = from.address.into_owned();
        if !smtputf8 && !address.is_ascii() {
            self.reject(&Reply::new(
                553,
                "5.6.7",
                "Non-ASCII sender address needs SMTPUTF8",
            ));
            return;
        }
        if self.settings.restrict_senders
            && !address.is_empty()
            && !is_internal(&address, &self.settings.internal_domains)
        {
            self.reject(&Reply::new(
                553,
                "5.7.1",
                "Sender address rejected: not in the organisation's domains",
            ));
            return;
        }
        self.tx = Some(Transaction {
            mail_from: address,
            rcpt_to: Vec::new(),
            smtputf8,
            eight_bit: from.flags & smtp_proto::MAIL_BODY_8BITMIME != 0,
        });
        self.send(&Reply::new(250, "2.1.0", "OK"));
    }

    fn rcpt(&mut self, to: RcptTo<Cow<'_, str>>) {
        let relay_allowed = self.relay_allowed();
        let max = self.settings.max_recipients;
        let Some(tx) = &self.tx else {
            self.reject(&Reply::new(503, "5.5.1", "Need MAIL command"));
            return;
        };
        if to.flags != 0 || to.orcpt.is_some() || to.rrvs != 0 {
            self.reject(&Reply::new(555, "5.5.4", "Unsupported RCPT parameter"));
            return;
        }
        let address = to.address.into_owned();
        if address.is_empty() {
            self.reject(&Reply::new(501, "5.1.3", "Bad recipient address syntax"));
            return;
        }
        if !tx.smtputf8 && !address.is_ascii() {
            self.reject(&Reply::new(
                553,
                "5.6.7",
                "Non-ASCII recipient address needs SMTPUTF8",
            ));
            return;
        }
        if !relay_allowed {
            self.reject(&Reply::new(554, "5.7.1", "Relay access denied"));
            return;
        }
        let duplicate = tx.rcpt_to.contains(&address);
        if !duplicate && tx.rcpt_to.len() >= max {
            self.send(&Reply::new(452, "4.5.3", "Too many recipients"));
            return;
        }
        if let Some(tx) = &mut self.tx
            && !duplicate
        {
            tx.rcpt_to.push(address);
        }
        self.send(&Reply::new(250, "2.1.5", "OK"));
    }

    fn data(&mut self, now: Instant) {
        match &self.tx {
            None => self.reject(&Reply::new(503, "5.5.1", "Need MAIL command")),
            Some(tx) if tx.rcpt_to.is_empty() => {
                self.reject(&Reply::new(554, "5.5.1", "No valid recipients"));
            }
            Some(_) => {
                self.phase =
                    Phase::Data(Box::new(DataReceiver::new(self.settings.max_message_size)));
                self.deadline = now + self.settings.data_timeout;
                self.send(&Reply::plain(354, "End data with <CR><LF>.<CR><LF>"));
            }
        }
    }

    fn end_of_data(&mut self, now: Instant) {
        let Phase::Data(rx) = std::mem::replace(&mut self.phase, Phase::Command) else {
            return;
        };
        self.deadline = now + self.settings.command_timeout;
        let Some(tx) = self.tx.take() else {
            return;
        };
        match rx.finish() {
            Ok(data) => {
                let envelope = Envelope {
                    peer: self.peer,
                    helo: self.helo.clone().unwrap_or_default(),
                    mail_from: tx.mail_from,
                    rcpt_to: tx.rcpt_to,
                    authenticated: self.authenticated.clone(),
                    tls: self.tls,
                    smtputf8: tx.smtputf8,
                    eight_bit: tx.eight_bit,
                };
                self.events.push_back(Event::Message { envelope, data });
                self.phase = Phase::Waiting(Wait::Verdict);
            }
            Err(Refusal::TooBig) => self.send(&Reply::new(
                552,
                "5.3.4",
                "Message size exceeds fixed maximum message size",
            )),
            Err(Refusal::BareLf) => {
                tracing::info!(peer = %self.peer, "message refused: bare LF in data");
                self.send(&Reply::new(550, "5.5.2", "bare <LF> received"));
            }
            Err(Refusal::BareCr) => {
                tracing::info!(peer = %self.peer, "message refused: bare CR in data");
                self.send(&Reply::new(550, "5.5.2", "bare <CR> received"));
            }
        }
    }

    fn starttls(&mut self) {
        if self.tls {
            self.reject(&Reply::new(503, "5.5.1", "Already running TLS"));
            return;
        }
        if self.settings.tls.is_none() {
            self.reject(&Reply::new(502, "5.5.1", "STARTTLS not available"));
            return;
        }
        self.send(&Reply::plain(220, "Ready to start TLS"));
        self.phase = Phase::Waiting(Wait::Tls);
        self.events.push_back(Event::StartTls);
    }

    fn auth(&mut self, mechanism: u64, initial: &str) {
        if !self.auth_offered() {
            if self.starttls_offered() {
                self.reject(&Reply::new(
                    538,
                    "5.7.11",
                    "Must issue a STARTTLS command first",
                ));
            } else {
                self.reject(&Reply::new(503, "5.5.1", "Authentication not available"));
            }
            return;
        }
        if self.helo.is_none() {
            self.reject(&Reply::new(503, "5.5.1", "Send EHLO first"));
            return;
        }
        if self.authenticated.is_some() {
            self.reject(&Reply::new(503, "5.5.1", "Already authenticated"));
            return;
        }
        if self.tx.is_some() {
            self.reject(&Reply::new(
                503,
                "5.5.1",
                "AUTH not allowed during a mail transaction",
            ));
            return;
        }
        match mechanism {
            smtp_proto::AUTH_PLAIN if initial.is_empty() => {
                self.phase = Phase::AuthPlain;
                self.send(&Reply::plain(334, ""));
            }
            smtp_proto::AUTH_PLAIN => self.sasl_plain(initial.as_bytes()),
            smtp_proto::AUTH_LOGIN if initial.is_empty() => {
                self.phase = Phase::AuthLoginUser;
                self.send(&Reply::plain(334, "VXNlcm5hbWU6"));
            }
            smtp_proto::AUTH_LOGIN => self.sasl_login_user(initial.as_bytes()),
            _ => self.reject(&Reply::new(
                504,
                "5.5.4",
                "Unrecognized authentication type",
            )),
        }
    }

    /// Decodes one SASL response; `None` after replying when it was `*` or
    /// not base64 of UTF-8.
    fn sasl_response(&mut self, line: &[u8]) -> Option<String> {
        if line == b"*" {
            self.reject(&Reply::new(501, "5.7.0", "Authentication cancelled"));
            return None;
        }
        // RFC 4954: "=" is an empty initial response.
        let decoded = if line == b"=" {
            Some(Vec::new())
        } else {
            base64::decode(line)
        };
        match decoded.map(String::from_utf8) {
            Some(Ok(text)) => Some(text),
            _ => {
                self.reject(&Reply::new(501, "5.5.2", "Cannot decode response"));
                None
            }
        }
    }

    fn sasl_plain(&mut self, line: &[u8]) {
        let Some(text) = self.sasl_response(line) else {
            return;
        };
        let mut parts = text.split('\0');
        let (Some(authzid), Some(user), Some(password), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            self.reject(&Reply::new(501, "5.5.2", "Cannot decode response"));
            return;
        };
        if user.is_empty() || (!authzid.is_empty() && authzid != user) {
            self.reject(&Reply::new(
                535,
                "5.7.8",
                "Authentication credentials invalid",
            ));
            return;
        }
        self.ask_auth(user.to_string(), password.to_string());
    }

    fn sasl_login_user(&mut self, line: &[u8]) {
        let Some(user) = self.sasl_response(line) else {
            return;
        };
        self.phase = Phase::AuthLoginPassword { user };
        self.send(&Reply::plain(334, "UGFzc3dvcmQ6"));
    }

    fn sasl_login_password(&mut self, user: String, line: &[u8]) {
        let Some(password) = self.sasl_response(line) else {
            return;
        };
        if user.is_empty() {
            self.reject(&Reply::new(
                535,
                "5.7.8",
                "Authentication credentials invalid",
            ));
            return;
        }
        self.ask_auth(user, password);
    }

    fn ask_auth(&mut self, user: String, password: String) {
        self.events.push_back(Event::Authenticate {
            user: user.clone(),
            password,
        });
        self.phase = Phase::Waiting(Wait::Auth { user });
    }

    fn starttls_offered(&self) -> bool {
        self.settings.tls.is_some() && !self.tls
    }

    fn auth_offered(&self) -> bool {
        self.tls || self.peer.ip().to_canonical().is_loopback()
    }

    fn relay_allowed(&self) -> bool {
        self.authenticated.is_some()
            || self
                .settings
                .allowed_networks
                .iter()
                .any(|net| net.contains(self.peer.ip()))
    }

    /// Queues a reply.
    fn send(&mut self, reply: &Reply) {
        tracing::debug!(peer = %self.peer, code = reply.code, "reply");
        self.out.extend_from_slice(&reply.to_bytes());
    }

    /// Queues an error reply to a command, and closes after too many.
    fn reject(&mut self, reply: &Reply) {
        self.send(reply);
        self.bad_commands = self.bad_commands.saturating_add(1);
        if self.bad_commands >= self.settings.max_bad_commands {
            tracing::info!(peer = %self.peer, "too many errors; closing");
            self.close_with(&Reply::new(
                421,
                "4.7.0",
                format!("{} Too many errors", self.settings.hostname),
            ));
        }
    }

    fn close_with(&mut self, reply: &Reply) {
        if self.is_closed() {
            return;
        }
        self.send(reply);
        self.phase = Phase::Closed;
        self.tx = None;
        self.input = Vec::new();
        self.events.clear();
    }

    fn phase_name(&self) -> &'static str {
        match self.phase {
            Phase::Command => "command",
            Phase::AuthPlain | Phase::AuthLoginUser | Phase::AuthLoginPassword { .. } => "auth",
            Phase::Data(_) => "data",
            Phase::Waiting(Wait::Auth { .. }) => "waiting for auth",
            Phase::Waiting(Wait::Verdict) => "waiting for verdict",
            Phase::Waiting(Wait::Tls) => "waiting for TLS",
            Phase::Closed => "closed",
        }
    }
}

fn trim_eol(line: &[u8]) -> &[u8] {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    line.strip_suffix(b"\r").unwrap_or(line)
}

fn parse_error_reply(e: &ParseError) -> Reply {
    match e {
        ParseError::UnknownCommand => Reply::new(500, "5.5.2", "Command unrecognized"),
        ParseError::InvalidSenderAddress => Reply::new(501, "5.1.7", "Bad sender address syntax"),
        ParseError::InvalidRecipientAddress => {
            Reply::new(501, "5.1.3", "Bad recipient address syntax")
        }
        ParseError::SyntaxError { syntax } => Reply::new(501, "5.5.4", format!("Syntax: {syntax}")),
        ParseError::InvalidParameter { param } => {
            Reply::new(501, "5.5.4", format!("Invalid {param} parameter"))
        }
        ParseError::UnsupportedParameter { .. } => {
            Reply::new(555, "5.5.4", "Unsupported parameter")
        }
        ParseError::NeedsMoreData { .. }
        | ParseError::ResponseTooLong
        | ParseError::InvalidResponse { .. } => Reply::new(501, "5.5.4", "Syntax error"),
    }
}

/// True when the address's domain is one of `domains` or a subdomain of one.
fn is_internal(address: &str, domains: &[String]) -> bool {
    let Some((_, domain)) = address.rsplit_once('@') else {
        return false;
    };
    let domain = domain.trim_end_matches('.').as_bytes();
    domains.iter().any(|parent| {
        let parent = parent.as_bytes();
        domain.eq_ignore_ascii_case(parent)
            || (domain.len() > parent.len()
                && domain[domain.len() - parent.len() - 1] == b'.'
                && domain[domain.len() - parent.len()..].eq_ignore_ascii_case(parent))
    })
}

#[cfg(test)]
mod tests {
    use super::{Event, MAX_PENDING_INPUT, Session, is_internal};
    use crate::Settings;
    use std::sync::Arc;
    use std::time::Instant;

    fn session() -> Session {
        let mut settings = Settings::new("relay.lumen.sch.uk".into());
        settings.internal_domains = vec!["lumen.sch.uk".into()];
        settings.allowed_networks = vec!["192.0.2.0/24".parse().unwrap()];
        Session::new(
            Instant::now(),
            Arc::new(settings),
            "192.0.2.1:1000".parse().unwrap(),
        )
    }

    #[test]
    fn a_line_without_end_is_not_kept() {
        let mut s = session();
        let now = Instant::now();
        let chunk = [b'A'; 8192];
        for _ in 0..128 {
            s.handle_input(now, &chunk);
            assert!(s.input.len() <= s.settings.max_line_length);
        }
        s.handle_input(now, b"\r\nNOOP\r\n");
        let replies = String::from_utf8(s.poll_reply().unwrap()).unwrap();
        assert!(
            replies.ends_with("500 5.5.2 Line too long\r\n250 2.0.0 OK\r\n"),
            "{replies}"
        );
    }

    #[test]
    fn a_big_message_is_not_kept_twice_and_pipelined_floods_are_cut() {
        let mut s = session();
        let now = Instant::now();
        s.handle_input(
            now,
            b"EHLO a\r\nMAIL FROM:<a@lumen.sch.uk>\r\nRCPT TO:<b@example.com>\r\nDATA\r\n",
        );
        let line = b"0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcde\r\n";
        for _ in 0..1000 {
            s.handle_input(now, line);
            assert!(s.input.is_empty());
        }
        s.handle_input(now, b".\r\n");
        assert!(matches!(s.poll_event(), Some(Event::Message { .. })));
        // The client floods without waiting for the verdict.
        let flood = vec![b'N'; 16 * 1024];
        for _ in 0..(MAX_PENDING_INPUT / flood.len() + 1) {
            s.handle_input(now, &flood);
        }
        assert!(s.is_closed());
        assert!(s.input.is_empty());
        assert!(
            String::from_utf8(s.poll_reply().unwrap())
                .unwrap()
                .ends_with("421 4.7.0 relay.lumen.sch.uk Too much pipelined input\r\n")
        );
    }

    #[test]
    fn internal_domains_include_subdomains_only() {
        let d = vec!["lumen.sch.uk".to_string()];
        assert!(is_internal("a@lumen.sch.uk", &d));
        assert!(is_internal("a@LUMEN.sch.uk.", &d));
        assert!(is_internal("a@staff.lumen.sch.uk", &d));
        assert!(!is_internal("a@illumen.sch.uk", &d));
        assert!(!is_internal("a@lumen.sch.uk.example.com", &d));
        assert!(!is_internal("lumen.sch.uk", &d));
        assert!(!is_internal("a@é.lumen.sch.uk.org", &d));
    }
}
