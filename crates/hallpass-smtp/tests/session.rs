//! The session state machine without sockets: input in, replies out.
//!
//! Every scripted conversation is fed twice, whole and one byte at a time,
//! and must give the same replies and messages both ways (except STARTTLS
//! injection, where the split is the point).

mod common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{HOST, b64, settings, tls};
use hallpass_smtp::{Envelope, Event, Reply, Session, Settings};

const ALLOWED: &str = "192.0.2.10:40000";
const OUTSIDE: &str = "198.51.100.7:40000";
const LOOPBACK: &str = "127.0.0.1:40000";
const PASSWORD: &str = "correct horse battery staple";

/// What a conversation produced.
#[derive(Debug, Default, PartialEq)]
struct Transcript {
    wire: String,
    messages: Vec<(Envelope, Vec<u8>)>,
    auth_users: Vec<String>,
    closed: bool,
}

impl Transcript {
    /// Each reply's last line (the one with a space after the code).
    fn replies(&self) -> Vec<&str> {
        self.wire
            .split("\r\n")
            .filter(|line| line.len() >= 4 && line.as_bytes()[3] == b' ')
            .collect()
    }
}

/// Answers events the way a relay would: every message queued, the one
/// password right, TLS always succeeding.
fn pump(session: &mut Session, now: Instant, t: &mut Transcript) {
    loop {
        if let Some(bytes) = session.poll_reply() {
            t.wire.push_str(std::str::from_utf8(&bytes).unwrap());
            continue;
        }
        match session.poll_event() {
            Some(Event::Message { envelope, data }) => {
                t.messages.push((envelope, data));
                let id = t.messages.len();
                session.handle_verdict(
                    now,
                    Reply::new(250, "2.0.0", format!("Ok: queued as Q{id}")),
                );
            }
            Some(Event::Authenticate { user, password }) => {
                let ok = user == "teacher" && password == PASSWORD;
                t.auth_users.push(user);
                session.handle_auth(now, ok);
            }
            Some(Event::StartTls) => session.tls_started(now),
            Some(other) => panic!("unexpected event {other:?}"),
            None => break,
        }
    }
    t.closed = session.is_closed();
}

fn feed(settings: &Arc<Settings>, peer: &str, chunks: &[&[u8]]) -> Transcript {
    let now = Instant::now();
    let peer: SocketAddr = peer.parse().unwrap();
    let mut session = Session::new(now, Arc::clone(settings), peer);
    let mut t = Transcript::default();
    pump(&mut session, now, &mut t);
    for chunk in chunks {
        session.handle_input(now, chunk);
        pump(&mut session, now, &mut t);
    }
    t
}

/// Runs `input` whole and byte by byte; both must agree.
fn run_with(settings: Settings, peer: &str, input: &[u8]) -> Transcript {
    let settings = Arc::new(settings);
    let whole = feed(&settings, peer, &[input]);
    let bytes: Vec<&[u8]> = input.chunks(1).collect();
    let fragmented = feed(&settings, peer, &bytes);
    assert_eq!(whole, fragmented, "fed whole and in 1-byte fragments");
    whole
}

fn run(peer: &str, input: &str) -> Transcript {
    run_with(settings(), peer, input.as_bytes())
}

/// Asserts each reply's last line starts with the expected text.
fn expect(t: &Transcript, expected: &[&str]) {
    let replies = t.replies();
    assert_eq!(
        replies.len(),
        expected.len(),
        "replies {replies:#?}\nexpected {expected:#?}"
    );
    for (reply, want) in replies.iter().zip(expected) {
        assert!(
            reply.starts_with(want),
            "got {reply:?}, want {want:?}\nall: {replies:#?}"
        );
    }
}

const GREETING: &str = "220 relay.lumen.sch.uk ESMTP";

#[test]
fn a_whole_transaction_with_dot_unstuffing() {
    let t = run(
        ALLOWED,
        "EHLO pc1.lumen.sch.uk\r\n\
         MAIL FROM:<teacher@lumen.sch.uk> SIZE=120 BODY=8BITMIME\r\n\
         RCPT TO:<parent@example.com>\r\n\
         RCPT TO:<head@lumen.sch.uk>\r\n\
         RCPT TO:<parent@example.com>\r\n\
         DATA\r\n\
         Subject: trip\r\n\r\n..hidden dot\r\n...\r\n.\r\n\
         QUIT\r\n",
    );
    expect(
        &t,
        &[
            GREETING,
            "250 ENHANCEDSTATUSCODES",
            "250 2.1.0",
            "250 2.1.5",
            "250 2.1.5",
            "250 2.1.5",
            "354 End data with <CR><LF>.<CR><LF>",
            "250 2.0.0 Ok: queued as Q1",
            "221 relay.lumen.sch.uk",
        ],
    );
    assert!(t.closed);
    let (env, data) = &t.messages[0];
    assert_eq!(data, b"Subject: trip\r\n\r\n.hidden dot\r\n..\r\n");
    assert_eq!(
        env,
        &Envelope {
            peer: ALLOWED.parse().unwrap(),
            helo: "pc1.lumen.sch.uk".into(),
            mail_from: "teacher@lumen.sch.uk".into(),
            rcpt_to: vec!["parent@example.com".into(), "head@lumen.sch.uk".into()],
            authenticated: None,
            tls: false,
            smtputf8: false,
            eight_bit: true,
        }
    );
}

#[test]
fn ehlo_advertises_extensions_by_situation() {
    let ehlo = |settings: Settings, peer: &str| {
        let t = run_with(settings, peer, b"EHLO pc1\r\n");
        let start = t.wire.find("250-").unwrap();
        t.wire[start..].to_string()
    };
    let base = "250-relay.lumen.sch.uk\r\n250-SIZE 36700160\r\n250-8BITMIME\r\n\
                250-SMTPUTF8\r\n250-PIPELINING\r\n";
    // No TLS configured, not loopback: neither STARTTLS nor AUTH.
    assert_eq!(
        ehlo(settings(), OUTSIDE),
        format!("{base}250 ENHANCEDSTATUSCODES\r\n")
    );
    // Loopback may authenticate in the clear.
    assert_eq!(
        ehlo(settings(), LOOPBACK),
        format!("{base}250-ENHANCEDSTATUSCODES\r\n250 AUTH PLAIN LOGIN\r\n")
    );
    let mut with_tls = settings();
    with_tls.tls = Some(tls().0);
    with_tls.max_message_size = 1000;
    assert_eq!(
        ehlo(with_tls, OUTSIDE),
        "250-relay.lumen.sch.uk\r\n250-SIZE 1000\r\n250-8BITMIME\r\n250-SMTPUTF8\r\n\
         250-PIPELINING\r\n250-ENHANCEDSTATUSCODES\r\n250 STARTTLS\r\n"
    );
}

#[test]
fn pipelined_transactions_are_answered_in_order() {
    let t = run(
        ALLOWED,
        "EHLO pc1\r\nMAIL FROM:<a@lumen.sch.uk>\r\nRCPT TO:<x@example.com>\r\nDATA\r\n\
         one\r\n.\r\n\
         MAIL FROM:<b@lumen.sch.uk>\r\nRCPT TO:<y@example.org>\r\nNOOP\r\nDATA\r\n\
         two\r\n.\r\nRSET\r\nQUIT\r\n",
    );
    expect(
        &t,
        &[
            GREETING,
            "250 ENHANCEDSTATUSCODES",
            "250 2.1.0",
            "250 2.1.5",
            "354",
            "250 2.0.0 Ok: queued as Q1",
            "250 2.1.0",
            "250 2.1.5",
            "250 2.0.0 OK",
            "354",
            "250 2.0.0 Ok: queued as Q2",
            "250 2.0.0 OK",
            "221",
        ],
    );
    assert_eq!(t.messages[0].1, b"one\r\n");
    assert_eq!(t.messages[1].1, b"two\r\n");
    assert_eq!(t.messages[1].0.mail_from, "b@lumen.sch.uk");
    assert_eq!(t.messages[1].0.rcpt_to, ["y@example.org"]);
}

#[test]
fn input_arriving_while_a_verdict_is_pending_waits_its_turn() {
    let now = Instant::now();
    let mut s = Session::new(now, Arc::new(settings()), ALLOWED.parse().unwrap());
    s.handle_input(
        now,
        b"HELO pc1\r\nMAIL FROM:<a@lumen.sch.uk>\r\nRCPT TO:<x@example.com>\r\nDATA\r\nhi\r\n.\r\nRSET\r\nNOOP\r\n",
    );
    let before = String::from_utf8(s.poll_reply().unwrap()).unwrap();
    assert!(
        before.ends_with("354 End data with <CR><LF>.<CR><LF>\r\n"),
        "{before}"
    );
    let Some(Event::Message { data, .. }) = s.poll_event() else {
        panic!("no message")
    };
    assert_eq!(data, b"hi\r\n");
    // Nothing after the dot has been answered, nor is it timed.
    assert_eq!(s.poll_reply(), None);
    assert_eq!(s.poll_timeout(), None);
    s.handle_input(now, b"QUIT\r\n");
    assert_eq!(s.poll_reply(), None);
    s.handle_verdict(now, Reply::new(550, "5.7.1", "Refused: personal data"));
    assert_eq!(
        String::from_utf8(s.poll_reply().unwrap()).unwrap(),
        "550 5.7.1 Refused: personal data\r\n250 2.0.0 OK\r\n250 2.0.0 OK\r\n\
         221 relay.lumen.sch.uk closing connection\r\n"
    );
    assert!(s.is_closed());
}

/// The known SMTP smuggling end-of-data variants (SEC Consult, 2023): none
/// may end the message, and the message carrying them is refused.
#[test]
fn smuggling_payloads_never_end_data_early() {
    for separator in [
        "\n.\n", "\r\n.\n", "\n.\r\n", "\r.\r\n", "\r\n.\r", "\r.\r", "\n.\r", "\r.\n",
    ] {
        let input = format!(
            "EHLO pc1\r\nMAIL FROM:<teacher@lumen.sch.uk>\r\nRCPT TO:<parent@example.com>\r\n\
             DATA\r\nSubject: hello\r\n\r\nhello{separator}\
             MAIL FROM:<head@lumen.sch.uk>\r\nRCPT TO:<victim@example.com>\r\nDATA\r\n\
             Subject: smuggled\r\n\r\nsmuggled\r\n.\r\nQUIT\r\n"
        );
        let t = run(ALLOWED, &input);
        let why = if separator.starts_with('\n') || separator.ends_with(".\n") {
            "550 5.5.2 bare <LF> received"
        } else {
            "550 5.5.2 bare <CR> received"
        };
        expect(
            &t,
            &[
                GREETING,
                "250 ENHANCEDSTATUSCODES",
                "250 2.1.0",
                "250 2.1.5",
                "354",
                why,
                "221",
            ],
        );
        assert!(t.messages.is_empty(), "{separator:?}");
    }
}

#[test]
fn a_bare_lf_anywhere_refuses_the_message_but_not_the_session() {
    let t = run(
        ALLOWED,
        "EHLO pc1\r\nMAIL FROM:<a@lumen.sch.uk>\r\nRCPT TO:<x@example.com>\r\nDATA\r\n\
         line one\nline two\r\n.\r\n\
         MAIL FROM:<a@lumen.sch.uk>\r\nRCPT TO:<x@example.com>\r\nDATA\r\nclean\r\n.\r\n",
    );
    expect(
        &t,
        &[
            GREETING,
            "250 ENHANCEDSTATUSCODES",
            "250 2.1.0",
            "250 2.1.5",
            "354",
            "550 5.5.2 bare <LF> received",
            "250 2.1.0",
            "250 2.1.5",
            "354",
            "250 2.0.0 Ok: queued as Q1",
        ],
    );
    assert_eq!(t.messages.len(), 1);
    assert_eq!(t.messages[0].1, b"clean\r\n");
}

#[test]
fn commands_out_of_sequence_and_bad_syntax() {
    let t = run(
        ALLOWED,
        "MAIL FROM:<a@lumen.sch.uk>\r\n\
         EHLO pc1\r\n\
         RCPT TO:<x@example.com>\r\n\
         DATA\r\n\
         MAIL FROM:<a@lumen.sch.uk>\r\n\
         MAIL FROM:<a@lumen.sch.uk>\r\n\
         DATA\r\n\
         FROB\r\n\
         MAIL FROM:a@lumen.sch.uk\r\n\
         RCPT TO:<not an address>\r\n\
         EXPN staff\r\n\
         VRFY head\r\n\
         HELP\r\n\
         BDAT 10 LAST\r\n\
         RSET\r\n\
         HELO pc1\r\n\
         QUIT\r\n",
    );
    expect(
        &t,
        &[
            GREETING,
            "503 5.5.1 Send HELO/EHLO first",
            "250 ENHANCEDSTATUSCODES",
            "503 5.5.1 Need MAIL command",
            "503 5.5.1 Need MAIL command",
            "250 2.1.0",
            "503 5.5.1 Nested MAIL command",
            "554 5.5.1 No valid recipients",
            "500 5.5.2",
            // Syntax is checked before sequence.
            "501 5.5.4",
            "501 5.1.3",
            "502 5.5.1",
            "252 2.5.0",
            "214 2.0.0",
            // Too many errors now (10).
            "502 5.5.1",
            "421 4.7.0 relay.lumen.sch.uk Too many errors",
        ],
    );
    assert!(t.closed);
}

#[test]
fn syntax_errors_and_helo() {
    let t = run(
        ALLOWED,
        "HELO pc1\r\nMAIL FROM:a@lumen.sch.uk\r\nMAIL FROM:<a@lumen.sch.uk>\r\n\
         RCPT TO:<>\r\nRSET\r\nHELO\r\nNOOP\r\nQUIT\r\n",
    );
    expect(
        &t,
        &[
            GREETING,
            "250 relay.lumen.sch.uk",
            "501 5.5.4",
            "250 2.1.0",
            "501 5.1.3",
            "250 2.0.0 OK",
            "501 5.5.4",
            "250 2.0.0 OK",
            "221",
        ],
    );
}

#[test]
fn relay_is_denied_to_clients_neither_allowed_nor_authenticated() {
    for peer in [OUTSIDE, LOOPBACK] {
        let t = run(
            peer,
            "EHLO pc1\r\nMAIL FROM:<teacher@lumen.sch.uk>\r\nRCPT TO:<parent@example.com>\r\n\
             RCPT TO:<head@lumen.sch.uk>\r\nDATA\r\nQUIT\r\n",
        );
        expect(
            &t,
            &[
                GREETING,
                "250",
                "250 2.1.0",
                "554 5.7.1 Relay access denied",
                "554 5.7.1 Relay access denied",
                "554 5.5.1 No valid recipients",
                "221",
            ],
        );
    }
}

#[test]
fn senders_must_be_internal_or_null() {
    let t = run(
        ALLOWED,
        "EHLO pc1\r\nMAIL FROM:<someone@example.com>\r\nMAIL FROM:<x@lumen.sch.uk.example.com>\r\n\
         MAIL FROM:<>\r\nRSET\r\nMAIL FROM:<Office@Staff.Lumen.SCH.uk>\r\nRSET\r\n\
         MAIL FROM:<postmaster>\r\n",
    );
    expect(
        &t,
        &[
            GREETING,
            "250",
            "553 5.7.1",
            "553 5.7.1",
            "250 2.1.0",
            "250 2.0.0",
            "250 2.1.0",
            "250 2.0.0",
            "250 2.1.0",
        ],
    );
    let mut open = settings();
    open.restrict_senders = false;
    let t = run_with(
        open,
        ALLOWED,
        b"EHLO pc1\r\nMAIL FROM:<someone@example.com>\r\n",
    );
    expect(&t, &[GREETING, "250", "250 2.1.0"]);
}

#[test]
fn smtputf8_and_8bitmime_are_recorded() {
    let t = run(
        ALLOWED,
        "EHLO pc1\r\nMAIL FROM:<δοκιμή@lumen.sch.uk>\r\n\
         MAIL FROM:<δοκιμή@lumen.sch.uk> SMTPUTF8 BODY=8BITMIME\r\n\
         RCPT TO:<родитель@example.com>\r\nDATA\r\nСлава\r\n.\r\n\
         MAIL FROM:<a@lumen.sch.uk>\r\nRCPT TO:<родитель@example.com>\r\n",
    );
    expect(
        &t,
        &[
            GREETING,
            "250",
            "553 5.6.7",
            "250 2.1.0",
            "250 2.1.5",
            "354",
            "250 2.0.0",
            "250 2.1.0",
            "553 5.6.7",
        ],
    );
    let env = &t.messages[0].0;
    assert!(env.smtputf8 && env.eight_bit);
    assert_eq!(env.mail_from, "δοκιμή@lumen.sch.uk");
    assert_eq!(t.messages[0].1, "Слава\r\n".as_bytes());
}

#[test]
fn extensions_not_offered_are_refused_as_parameters() {
    let t = run(
        ALLOWED,
        "EHLO pc1\r\nMAIL FROM:<a@lumen.sch.uk> RET=FULL\r\nMAIL FROM:<a@lumen.sch.uk> BODY=BINARYMIME\r\n\
         MAIL FROM:<a@lumen.sch.uk> FROB=1\r\nMAIL FROM:<a@lumen.sch.uk> SIZE=1000 AUTH=<>\r\n\
         RCPT TO:<x@example.com> NOTIFY=NEVER\r\nRCPT TO:<x@example.com>\r\n",
    );
    expect(
        &t,
        &[
            GREETING,
            "250",
            "555 5.5.4",
            "555 5.5.4",
            "555 5.5.4",
            "250 2.1.0",
            "555 5.5.4",
            "250 2.1.5",
        ],
    );
}

#[test]
fn size_limits_in_mail_and_in_data() {
    let mut s = settings();
    s.max_message_size = 20;
    let mut input =
        b"EHLO pc1\r\nMAIL FROM:<a@lumen.sch.uk> SIZE=21\r\nMAIL FROM:<a@lumen.sch.uk> SIZE=20\r\n\
        RCPT TO:<x@example.com>\r\nDATA\r\n"
            .to_vec();
    input.extend_from_slice(&b"0123456789\r\n".repeat(1000));
    input.extend_from_slice(
        b".\r\nMAIL FROM:<a@lumen.sch.uk>\r\nRCPT TO:<x@example.com>\r\nDATA\r\n",
    );
    // Exactly 20 bytes after unstuffing: accepted.
    input.extend_from_slice(b"..23456789\r\n0123456\r\n.\r\n");
    let t = run_with(s, ALLOWED, &input);
    expect(
        &t,
        &[
            GREETING,
            "250",
            "552 5.3.4",
            "250 2.1.0",
            "250 2.1.5",
            "354",
            "552 5.3.4",
            "250 2.1.0",
            "250 2.1.5",
            "354",
            "250 2.0.0",
        ],
    );
    assert_eq!(t.messages.len(), 1);
    assert_eq!(t.messages[0].1, b".23456789\r\n0123456\r\n");
}

#[test]
fn too_many_recipients_get_a_temporary_refusal() {
    let mut s = settings();
    s.max_recipients = 2;
    let t = run_with(
        s,
        ALLOWED,
        b"EHLO pc1\r\nMAIL FROM:<a@lumen.sch.uk>\r\nRCPT TO:<x@example.com>\r\nRCPT TO:<y@example.com>\r\n\
          RCPT TO:<x@example.com>\r\nRCPT TO:<z@example.com>\r\nDATA\r\nhi\r\n.\r\n",
    );
    expect(
        &t,
        &[
            GREETING,
            "250",
            "250 2.1.0",
            "250 2.1.5",
            "250 2.1.5",
            "250 2.1.5",
            "452 4.5.3 Too many recipients",
            "354",
            "250 2.0.0",
        ],
    );
    assert_eq!(t.messages[0].0.rcpt_to, ["x@example.com", "y@example.com"]);
}

#[test]
fn overlong_command_lines_are_refused_without_being_kept() {
    let mut s = settings();
    s.max_line_length = 64;
    let mut input = b"EHLO pc1\r\nNOOP ".to_vec();
    input.extend_from_slice(&b"x".repeat(100_000));
    input.extend_from_slice(b"\r\nNOOP\r\n");
    let t = run_with(s, ALLOWED, &input);
    expect(
        &t,
        &[GREETING, "250", "500 5.5.2 Line too long", "250 2.0.0"],
    );
}

#[test]
fn too_many_bad_commands_close_the_session() {
    let mut s = settings();
    s.max_bad_commands = 3;
    let t = run_with(s, ALLOWED, b"FOO\r\nBAR\r\nBAZ\r\nNOOP\r\n");
    expect(
        &t,
        &[GREETING, "500 5.5.2", "500 5.5.2", "500 5.5.2", "421 4.7.0"],
    );
    assert!(t.closed);
}

#[test]
fn auth_plain_and_login_on_loopback() {
    let plain = b64(format!("\0teacher\0{PASSWORD}").as_bytes());
    let t = run(
        LOOPBACK,
        &format!(
            "EHLO pc1\r\nMAIL FROM:<teacher@lumen.sch.uk>\r\nRCPT TO:<x@example.com>\r\nRSET\r\n\
             AUTH PLAIN {plain}\r\nAUTH PLAIN {plain}\r\n\
             MAIL FROM:<teacher@lumen.sch.uk>\r\nRCPT TO:<x@example.com>\r\nDATA\r\nhi\r\n.\r\n"
        ),
    );
    expect(
        &t,
        &[
            GREETING,
            "250 AUTH PLAIN LOGIN",
            "250 2.1.0",
            "554 5.7.1",
            "250 2.0.0",
            "235 2.7.0 Authentication successful",
            "503 5.5.1 Already authenticated",
            "250 2.1.0",
            "250 2.1.5",
            "354",
            "250 2.0.0",
        ],
    );
    assert_eq!(t.messages[0].0.authenticated.as_deref(), Some("teacher"));

    // PLAIN without an initial response; LOGIN step by step, with the exact
    // challenge lines smtplib decodes.
    let t = run(LOOPBACK, &format!("EHLO pc1\r\nAUTH PLAIN\r\n{plain}\r\n",));
    assert!(t.wire.contains("\r\n334 \r\n235 2.7.0"), "{}", t.wire);
    let t = run(
        LOOPBACK,
        &format!(
            "EHLO pc1\r\nAUTH LOGIN\r\n{}\r\n{}\r\n",
            b64(b"teacher"),
            b64(PASSWORD.as_bytes())
        ),
    );
    assert!(
        t.wire.ends_with(
            "334 VXNlcm5hbWU6\r\n334 UGFzc3dvcmQ6\r\n235 2.7.0 Authentication successful\r\n"
        ),
        "{}",
        t.wire
    );
    // LOGIN with the user name as initial response, as smtplib sends it.
    let t = run(
        LOOPBACK,
        &format!(
            "EHLO pc1\r\nAUTH LOGIN {}\r\n{}\r\n",
            b64(b"teacher"),
            b64(PASSWORD.as_bytes())
        ),
    );
    assert!(
        t.wire
            .ends_with("334 UGFzc3dvcmQ6\r\n235 2.7.0 Authentication successful\r\n"),
        "{}",
        t.wire
    );
    assert_eq!(t.auth_users, ["teacher"]);
}

#[test]
fn auth_failures_cancel_and_garbage() {
    let t = run(
        LOOPBACK,
        &format!(
            "EHLO pc1\r\nAUTH PLAIN {}\r\nAUTH LOGIN\r\n*\r\nAUTH PLAIN\r\nnot base64!\r\n\
             AUTH CRAM-MD5\r\nAUTH PLAIN {}\r\nAUTH PLAIN {}\r\nMAIL FROM:<a@lumen.sch.uk>\r\n\
             RCPT TO:<x@example.com>\r\n",
            b64(b"\0teacher\0wrong"),
            b64(b"other\0teacher\0correct horse battery staple"),
            b64(b"only-two\0parts"),
        ),
    );
    expect(
        &t,
        &[
            GREETING,
            "250",
            "535 5.7.8",
            "334 VXNlcm5hbWU6",
            "501 5.7.0 Authentication cancelled",
            "334 ",
            "501 5.5.2",
            "504 5.5.4",
            // An authorisation identity other than the user is refused.
            "535 5.7.8",
            "501 5.5.2",
            "250 2.1.0",
            "554 5.7.1",
        ],
    );
    assert_eq!(t.auth_users, ["teacher"]);
}

#[test]
fn auth_is_not_offered_in_the_clear_to_a_remote_client() {
    // Without TLS configured.
    let t = run(
        OUTSIDE,
        &format!("EHLO pc1\r\nAUTH PLAIN {}\r\n", b64(b"\0teacher\0x")),
    );
    expect(&t, &[GREETING, "250 ENHANCEDSTATUSCODES", "503 5.5.1"]);
    // With TLS configured: STARTTLS first.
    let mut s = settings();
    s.tls = Some(tls().0);
    let t = run_with(
        s,
        OUTSIDE,
        format!(
            "EHLO pc1\r\nAUTH LOGIN\r\nAUTH PLAIN {}\r\n",
            b64(b"\0teacher\0x")
        )
        .as_bytes(),
    );
    expect(
        &t,
        &[
            GREETING,
            "250 STARTTLS",
            "538 5.7.11 Must issue a STARTTLS command first",
            "538 5.7.11 Must issue a STARTTLS command first",
        ],
    );
    assert!(t.auth_users.is_empty());
}

#[test]
fn starttls_resets_the_session_and_then_allows_auth() {
    let mut s = settings();
    s.tls = Some(tls().0);
    let plain = b64(format!("\0teacher\0{PASSWORD}").as_bytes());
    let t = run_with(
        s,
        OUTSIDE,
        b"EHLO pc1\r\nMAIL FROM:<a@lumen.sch.uk>\r\nSTARTTLS\r\n",
    );
    expect(
        &t,
        &[
            GREETING,
            "250 STARTTLS",
            "250 2.1.0",
            "220 Ready to start TLS",
        ],
    );

    let now = Instant::now();
    let mut s2 = settings();
    s2.tls = Some(tls().0);
    let mut session = Session::new(now, Arc::new(s2), OUTSIDE.parse().unwrap());
    let mut t = Transcript::default();
    session.handle_input(now, b"EHLO pc1\r\nSTARTTLS\r\n");
    pump(&mut session, now, &mut t);
    assert!(session.is_tls());
    for step in [
        "MAIL FROM:<a@lumen.sch.uk>\r\n".to_string(),
        "EHLO pc1\r\n".into(),
        "STARTTLS\r\n".into(),
        format!("AUTH PLAIN {plain}\r\n"),
        "MAIL FROM:<a@lumen.sch.uk>\r\nRCPT TO:<x@example.com>\r\nDATA\r\nhi\r\n.\r\n".into(),
    ] {
        session.handle_input(now, step.as_bytes());
        pump(&mut session, now, &mut t);
    }
    expect(
        &t,
        &[
            GREETING,
            "250 STARTTLS",
            "220 Ready to start TLS",
            // HELO was forgotten.
            "503 5.5.1 Send HELO/EHLO first",
            "250 AUTH PLAIN LOGIN",
            "503 5.5.1 Already running TLS",
            "235 2.7.0",
            "250 2.1.0",
            "250 2.1.5",
            "354",
            "250 2.0.0",
        ],
    );
    let env = &t.messages[0].0;
    assert!(env.tls);
    assert_eq!(env.authenticated.as_deref(), Some("teacher"));
    assert_eq!(env.helo, "pc1");
}

/// CVE-2011-0411: commands sent in the clear right behind STARTTLS must not
/// be run after the handshake as if they had come over TLS.
#[test]
fn input_behind_starttls_is_discarded() {
    let mut s = settings();
    s.tls = Some(tls().0);
    let now = Instant::now();
    let mut session = Session::new(now, Arc::new(s), LOOPBACK.parse().unwrap());
    let mut t = Transcript::default();
    let plain = b64(format!("\0teacher\0{PASSWORD}").as_bytes());
    session.handle_input(
        now,
        format!("EHLO pc1\r\nSTARTTLS\r\nEHLO evil\r\nAUTH PLAIN {plain}\r\n").as_bytes(),
    );
    let Some(Event::StartTls) = session.poll_event() else {
        panic!("no StartTls event")
    };
    // More plaintext arriving before the handshake is ignored as well.
    session.handle_input(now, b"MAIL FROM:<a@lumen.sch.uk>\r\n");
    session.tls_started(now);
    pump(&mut session, now, &mut t);
    expect(
        &t,
        &[GREETING, "250 AUTH PLAIN LOGIN", "220 Ready to start TLS"],
    );
    assert!(t.auth_users.is_empty());
    assert_eq!(session.authenticated(), None);
    session.handle_input(now, b"MAIL FROM:<a@lumen.sch.uk>\r\n");
    pump(&mut session, now, &mut t);
    assert!(
        t.wire.ends_with("503 5.5.1 Send HELO/EHLO first\r\n"),
        "{}",
        t.wire
    );
}

#[test]
fn starttls_is_refused_without_a_certificate() {
    let t = run(ALLOWED, "EHLO pc1\r\nSTARTTLS\r\nNOOP\r\n");
    expect(&t, &[GREETING, "250", "502 5.5.1", "250 2.0.0"]);
}

#[test]
fn idle_clients_time_out_in_commands_and_in_data() {
    let mut s = settings();
    s.command_timeout = Duration::from_secs(300);
    s.data_timeout = Duration::from_secs(180);
    let s = Arc::new(s);
    let t0 = Instant::now();
    let mut session = Session::new(t0, Arc::clone(&s), ALLOWED.parse().unwrap());
    session.poll_reply();
    assert_eq!(session.poll_timeout(), Some(t0 + Duration::from_secs(300)));
    session.handle_timeout(t0 + Duration::from_secs(299));
    assert_eq!(session.poll_reply(), None);
    let t1 = t0 + Duration::from_secs(200);
    session.handle_input(t1, b"EHLO pc1\r\n");
    session.poll_reply();
    assert_eq!(session.poll_timeout(), Some(t1 + Duration::from_secs(300)));
    session.handle_timeout(t1 + Duration::from_secs(300));
    assert_eq!(
        String::from_utf8(session.poll_reply().unwrap()).unwrap(),
        "421 4.4.2 relay.lumen.sch.uk Error: timeout exceeded\r\n"
    );
    assert!(session.is_closed());
    assert_eq!(session.poll_timeout(), None);

    let mut session = Session::new(t0, s, ALLOWED.parse().unwrap());
    session.handle_input(
        t0,
        b"EHLO pc1\r\nMAIL FROM:<a@lumen.sch.uk>\r\nRCPT TO:<x@example.com>\r\nDATA\r\npart",
    );
    session.poll_reply();
    assert_eq!(session.poll_timeout(), Some(t0 + Duration::from_secs(180)));
    let t2 = t0 + Duration::from_secs(100);
    session.handle_input(t2, b" more");
    assert_eq!(session.poll_timeout(), Some(t2 + Duration::from_secs(180)));
    session.handle_timeout(t2 + Duration::from_secs(179));
    assert!(!session.is_closed());
    session.handle_timeout(t2 + Duration::from_secs(180));
    assert!(session.is_closed());
    assert!(session.poll_event().is_none());
    assert!(
        String::from_utf8(session.poll_reply().unwrap())
            .unwrap()
            .starts_with("421 4.4.2")
    );
}

#[test]
fn shutdown_closes_idle_sessions_and_lets_a_transaction_finish() {
    let now = Instant::now();
    let s = Arc::new(settings());
    let mut idle = Session::new(now, Arc::clone(&s), ALLOWED.parse().unwrap());
    idle.handle_input(now, b"EHLO pc1\r\n");
    idle.poll_reply();
    idle.handle_shutdown(now);
    assert_eq!(
        String::from_utf8(idle.poll_reply().unwrap()).unwrap(),
        "421 4.3.2 relay.lumen.sch.uk shutting down\r\n"
    );
    assert!(idle.is_closed());

    // Between MAIL and DATA nothing has been promised: closed at once too.
    let mut between = Session::new(now, Arc::clone(&s), ALLOWED.parse().unwrap());
    between.handle_input(now, b"EHLO pc1\r\nMAIL FROM:<a@lumen.sch.uk>\r\n");
    between.poll_reply();
    between.handle_shutdown(now);
    assert!(between.is_closed());
    assert!(
        String::from_utf8(between.poll_reply().unwrap())
            .unwrap()
            .starts_with("421 4.3.2")
    );

    let mut busy = Session::new(now, s, ALLOWED.parse().unwrap());
    busy.handle_input(
        now,
        b"EHLO pc1\r\nMAIL FROM:<a@lumen.sch.uk>\r\nRCPT TO:<x@example.com>\r\nDATA\r\nhal",
    );
    busy.poll_reply();
    busy.handle_shutdown(now);
    assert_eq!(busy.poll_reply(), None);
    assert!(!busy.is_closed());
    busy.handle_input(now, b"f\r\n.\r\nMAIL FROM:<a@lumen.sch.uk>\r\n");
    let Some(Event::Message { data, .. }) = busy.poll_event() else {
        panic!("the message in flight was lost")
    };
    assert_eq!(data, b"half\r\n");
    busy.handle_verdict(now, Reply::new(250, "2.0.0", "Ok: queued as Q1"));
    assert_eq!(
        String::from_utf8(busy.poll_reply().unwrap()).unwrap(),
        "250 2.0.0 Ok: queued as Q1\r\n421 4.3.2 relay.lumen.sch.uk shutting down\r\n"
    );
    assert!(busy.is_closed());
}

#[test]
fn a_421_verdict_closes_the_session() {
    let now = Instant::now();
    let mut s = Session::new(now, Arc::new(settings()), ALLOWED.parse().unwrap());
    s.handle_input(
        now,
        b"EHLO pc1\r\nMAIL FROM:<a@lumen.sch.uk>\r\nRCPT TO:<x@example.com>\r\nDATA\r\nx\r\n.\r\nNOOP\r\n",
    );
    s.poll_reply();
    assert!(matches!(s.poll_event(), Some(Event::Message { .. })));
    s.handle_verdict(now, Reply::new(421, "4.3.0", "Service not available"));
    assert_eq!(
        String::from_utf8(s.poll_reply().unwrap()).unwrap(),
        "421 4.3.0 Service not available\r\n"
    );
    assert!(s.is_closed());
}

#[test]
fn events_never_show_passwords_or_content_in_debug() {
    let now = Instant::now();
    let mut s = Session::new(now, Arc::new(settings()), LOOPBACK.parse().unwrap());
    s.handle_input(
        now,
        format!("EHLO pc1\r\nAUTH PLAIN {}\r\n", b64(b"\0teacher\0hunter2")).as_bytes(),
    );
    let event = s.poll_event().unwrap();
    let shown = format!("{event:?}");
    assert!(!shown.contains("hunter2"), "{shown}");
}

#[test]
fn test_base64_helper_matches_rfc_4648() {
    assert_eq!(b64(b""), "");
    assert_eq!(b64(b"f"), "Zg==");
    assert_eq!(b64(b"fo"), "Zm8=");
    assert_eq!(b64(b"foobar"), "Zm9vYmFy");
    assert_eq!(HOST, "relay.lumen.sch.uk");
}
