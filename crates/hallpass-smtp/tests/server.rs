//! The server on real sockets on 127.0.0.1, with a handler that records.

mod common;

use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{b64, settings, temp_dir, tls};
use hallpass_smtp::{Envelope, Handler, Reply, Settings, SmtpError, load_tls, serve};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

const PASSWORD: &str = "correct horse battery staple";
/// Only to keep a broken test from hanging; never asserted.
const PATIENCE: Duration = Duration::from_secs(30);

#[derive(Default)]
struct Recorder {
    messages: Mutex<Vec<(Envelope, Vec<u8>)>>,
}

impl Recorder {
    fn messages(&self) -> Vec<(Envelope, Vec<u8>)> {
        self.messages.lock().unwrap().clone()
    }
}

impl Handler for Recorder {
    async fn authenticate(&self, user: &str, password: &str) -> bool {
        user == "teacher" && password == PASSWORD
    }

    async fn message(&self, envelope: Envelope, data: Vec<u8>) -> Reply {
        let mut messages = self.messages.lock().unwrap();
        messages.push((envelope, data));
        Reply::new(250, "2.0.0", format!("Ok: queued as Q{}", messages.len()))
    }
}

struct Server {
    addr: SocketAddr,
    recorder: Arc<Recorder>,
    stop: Option<oneshot::Sender<()>>,
    join: JoinHandle<io::Result<()>>,
}

impl Server {
    async fn start(settings: Settings) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let recorder = Arc::new(Recorder::default());
        let (stop, stopped) = oneshot::channel::<()>();
        let join = tokio::spawn(serve(
            listener,
            Arc::new(settings),
            Arc::clone(&recorder),
            async {
                let _ = stopped.await;
            },
        ));
        Server {
            addr,
            recorder,
            stop: Some(stop),
            join,
        }
    }

    fn begin_shutdown(&mut self) {
        let _ = self.stop.take().unwrap().send(());
    }

    async fn shutdown(mut self) {
        if self.stop.is_some() {
            self.begin_shutdown();
        }
        tokio::time::timeout(PATIENCE, self.join)
            .await
            .expect("serve did not return")
            .unwrap()
            .unwrap();
    }

    async fn connect(&self) -> Client<TcpStream> {
        Client::new(TcpStream::connect(self.addr).await.unwrap())
    }
}

/// A line-oriented SMTP client for tests.
struct Client<S> {
    stream: BufReader<S>,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Client<S> {
    fn new(stream: S) -> Self {
        Client {
            stream: BufReader::new(stream),
        }
    }

    /// One whole reply, all its lines.
    async fn reply(&mut self) -> String {
        let mut reply = String::new();
        loop {
            let mut line = String::new();
            let n = tokio::time::timeout(PATIENCE, self.stream.read_line(&mut line))
                .await
                .expect("no reply")
                .unwrap();
            assert!(n > 0, "connection closed; got so far {reply:?}");
            reply.push_str(&line);
            if line.len() >= 4 && line.as_bytes()[3] == b' ' {
                return reply;
            }
        }
    }

    async fn send(&mut self, text: &str) {
        self.stream
            .get_mut()
            .write_all(text.as_bytes())
            .await
            .unwrap();
    }

    async fn cmd(&mut self, text: &str) -> String {
        self.send(text).await;
        self.reply().await
    }

    /// True when the server has closed the connection.
    async fn closed(&mut self) -> bool {
        let mut rest = Vec::new();
        match tokio::time::timeout(PATIENCE, self.stream.read_to_end(&mut rest)).await {
            Ok(Ok(_)) | Ok(Err(_)) => rest.is_empty(),
            Err(_) => false,
        }
    }

    fn into_inner(self) -> S {
        assert!(self.stream.buffer().is_empty(), "unread bytes");
        self.stream.into_inner()
    }
}

fn loopback_relays() -> Settings {
    let mut s = settings();
    s.allowed_networks = vec!["127.0.0.0/8".parse().unwrap()];
    s
}

#[tokio::test]
async fn a_whole_transaction_arrives_byte_exact() {
    let server = Server::start(loopback_relays()).await;
    let mut c = server.connect().await;
    assert_eq!(c.reply().await, "220 relay.lumen.sch.uk ESMTP hallpass\r\n");
    let ehlo = c.cmd("EHLO pc1.lumen.sch.uk\r\n").await;
    assert!(ehlo.contains("250-PIPELINING\r\n"), "{ehlo}");
    assert!(
        ehlo.contains("250-AUTH PLAIN LOGIN\r\n") || ehlo.ends_with("250 AUTH PLAIN LOGIN\r\n")
    );
    // Pipelined, in one write.
    c.send(
        "MAIL FROM:<teacher@lumen.sch.uk>\r\nRCPT TO:<parent@example.com>\r\n\
         RCPT TO:<head@lumen.sch.uk>\r\nDATA\r\n",
    )
    .await;
    assert_eq!(c.reply().await, "250 2.1.0 OK\r\n");
    assert_eq!(c.reply().await, "250 2.1.5 OK\r\n");
    assert_eq!(c.reply().await, "250 2.1.5 OK\r\n");
    assert_eq!(c.reply().await, "354 End data with <CR><LF>.<CR><LF>\r\n");
    c.send("From: teacher@lumen.sch.uk\r\nSubject: trip\r\n\r\n..starts with a dot\r\n")
        .await;
    c.send("binary \u{00e9}\u{0000} ok\r\n.\r\nQUIT\r\n").await;
    assert_eq!(c.reply().await, "250 2.0.0 Ok: queued as Q1\r\n");
    assert_eq!(
        c.reply().await,
        "221 relay.lumen.sch.uk closing connection\r\n"
    );
    assert!(c.closed().await);

    let messages = server.recorder.messages();
    assert_eq!(messages.len(), 1);
    let (env, data) = &messages[0];
    assert_eq!(
        data.as_slice(),
        "From: teacher@lumen.sch.uk\r\nSubject: trip\r\n\r\n.starts with a dot\r\nbinary \u{00e9}\u{0000} ok\r\n"
            .as_bytes()
    );
    assert_eq!(env.peer.ip().to_string(), "127.0.0.1");
    assert_eq!(env.helo, "pc1.lumen.sch.uk");
    assert_eq!(env.rcpt_to, ["parent@example.com", "head@lumen.sch.uk"]);
    assert_eq!(env.authenticated, None);
    assert!(!env.tls);
    server.shutdown().await;
}

#[tokio::test]
async fn relay_is_denied_to_a_client_outside_the_allowed_networks() {
    // 192.0.2.0/24 only: loopback is not allowed to relay without AUTH.
    let server = Server::start(settings()).await;
    let mut c = server.connect().await;
    c.reply().await;
    c.cmd("EHLO pc1\r\n").await;
    assert_eq!(
        c.cmd("MAIL FROM:<teacher@lumen.sch.uk>\r\n").await,
        "250 2.1.0 OK\r\n"
    );
    assert_eq!(
        c.cmd("RCPT TO:<parent@example.com>\r\n").await,
        "554 5.7.1 Relay access denied\r\n"
    );
    assert_eq!(c.cmd("DATA\r\n").await, "554 5.5.1 No valid recipients\r\n");
    assert!(server.recorder.messages().is_empty());
    server.shutdown().await;
}

async fn starttls(
    mut c: Client<TcpStream>,
    cert_der: &[u8],
) -> Client<tokio_rustls::client::TlsStream<TcpStream>> {
    assert_eq!(c.cmd("STARTTLS\r\n").await, "220 Ready to start TLS\r\n");
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(rustls::pki_types::CertificateDer::from(cert_der.to_vec()))
        .unwrap();
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let tls = connector.connect(name, c.into_inner()).await.unwrap();
    Client::new(tls)
}

#[tokio::test]
async fn starttls_then_auth_plain_and_auth_login() {
    let (config, cert_der) = tls();
    let mut s = settings();
    s.tls = Some(config);
    let server = Server::start(s).await;

    // AUTH PLAIN over TLS, then a message.
    let mut c = server.connect().await;
    c.reply().await;
    let ehlo = c.cmd("EHLO pc1\r\n").await;
    assert!(ehlo.contains("250-STARTTLS\r\n"), "{ehlo}");
    let mut c = starttls(c, &cert_der).await;
    let ehlo = c.cmd("EHLO pc1\r\n").await;
    assert!(!ehlo.contains("STARTTLS"), "{ehlo}");
    assert!(ehlo.ends_with("250 AUTH PLAIN LOGIN\r\n"), "{ehlo}");
    let wrong = b64(b"\0teacher\0wrong password");
    assert_eq!(
        c.cmd(&format!("AUTH PLAIN {wrong}\r\n")).await,
        "535 5.7.8 Authentication credentials invalid\r\n"
    );
    let plain = b64(format!("\0teacher\0{PASSWORD}").as_bytes());
    assert_eq!(
        c.cmd(&format!("AUTH PLAIN {plain}\r\n")).await,
        "235 2.7.0 Authentication successful\r\n"
    );
    c.cmd("MAIL FROM:<teacher@lumen.sch.uk>\r\n").await;
    assert_eq!(
        c.cmd("RCPT TO:<parent@example.com>\r\n").await,
        "250 2.1.5 OK\r\n"
    );
    c.cmd("DATA\r\n").await;
    assert_eq!(
        c.cmd("Subject: tls\r\n\r\nover tls\r\n.\r\n").await,
        "250 2.0.0 Ok: queued as Q1\r\n"
    );
    c.cmd("QUIT\r\n").await;

    // AUTH LOGIN step by step on a second connection.
    let mut c = server.connect().await;
    c.reply().await;
    c.cmd("EHLO pc2\r\n").await;
    let mut c = starttls(c, &cert_der).await;
    c.cmd("EHLO pc2\r\n").await;
    assert_eq!(c.cmd("AUTH LOGIN\r\n").await, "334 VXNlcm5hbWU6\r\n");
    assert_eq!(
        c.cmd(&format!("{}\r\n", b64(b"teacher"))).await,
        "334 UGFzc3dvcmQ6\r\n"
    );
    assert_eq!(
        c.cmd(&format!("{}\r\n", b64(PASSWORD.as_bytes()))).await,
        "235 2.7.0 Authentication successful\r\n"
    );
    c.cmd("QUIT\r\n").await;

    let messages = server.recorder.messages();
    assert_eq!(messages.len(), 1);
    let (env, data) = &messages[0];
    assert!(env.tls);
    assert_eq!(env.authenticated.as_deref(), Some("teacher"));
    assert_eq!(data, b"Subject: tls\r\n\r\nover tls\r\n");
    server.shutdown().await;
}

#[tokio::test]
async fn connections_over_the_per_client_limit_are_refused() {
    let mut s = loopback_relays();
    s.max_connections_per_client = 2;
    let server = Server::start(s).await;
    let mut first = server.connect().await;
    assert!(first.reply().await.starts_with("220 "));
    let mut second = server.connect().await;
    assert!(second.reply().await.starts_with("220 "));
    let mut third = server.connect().await;
    assert_eq!(
        third.reply().await,
        "421 4.7.0 relay.lumen.sch.uk Too many connections\r\n"
    );
    assert!(third.closed().await);
    // A slot frees when a session ends.
    first.cmd("QUIT\r\n").await;
    assert!(first.closed().await);
    let mut fourth = server.connect().await;
    assert!(fourth.reply().await.starts_with("220 "));
    second.cmd("QUIT\r\n").await;
    fourth.cmd("QUIT\r\n").await;
    server.shutdown().await;
}

#[tokio::test]
async fn an_idle_client_is_timed_out() {
    let mut s = loopback_relays();
    s.command_timeout = Duration::from_millis(200);
    let server = Server::start(s).await;
    let mut c = server.connect().await;
    c.reply().await;
    assert_eq!(
        c.reply().await,
        "421 4.4.2 relay.lumen.sch.uk Error: timeout exceeded\r\n"
    );
    assert!(c.closed().await);
    server.shutdown().await;
}

#[tokio::test]
async fn graceful_shutdown_finishes_data_in_flight_and_refuses_new_connections() {
    let mut server = Server::start(loopback_relays()).await;
    let mut idle = server.connect().await;
    idle.reply().await;
    idle.cmd("EHLO idle\r\n").await;

    let mut busy = server.connect().await;
    busy.reply().await;
    busy.cmd("EHLO busy\r\n").await;
    busy.cmd("MAIL FROM:<teacher@lumen.sch.uk>\r\n").await;
    busy.cmd("RCPT TO:<parent@example.com>\r\n").await;
    assert!(busy.cmd("DATA\r\n").await.starts_with("354"));
    busy.send("Subject: report\r\n\r\nfirst half\r\n").await;

    server.begin_shutdown();
    assert_eq!(
        idle.reply().await,
        "421 4.3.2 relay.lumen.sch.uk shutting down\r\n"
    );
    assert!(idle.closed().await);
    // The listener is gone once idle sessions are told.
    let refused = TcpStream::connect(server.addr).await;
    assert!(
        refused.is_err(),
        "a new connection was accepted during shutdown"
    );

    busy.send("second half\r\n.\r\n").await;
    assert_eq!(busy.reply().await, "250 2.0.0 Ok: queued as Q1\r\n");
    assert_eq!(
        busy.reply().await,
        "421 4.3.2 relay.lumen.sch.uk shutting down\r\n"
    );
    assert!(busy.closed().await);

    let messages = server.recorder.messages();
    server.shutdown().await;
    assert_eq!(messages.len(), 1);
    assert_eq!(
        messages[0].1,
        b"Subject: report\r\n\r\nfirst half\r\nsecond half\r\n"
    );
}

#[tokio::test]
async fn shutdown_grace_cuts_a_stalled_transaction() {
    let mut s = loopback_relays();
    s.shutdown_grace = Duration::from_millis(100);
    let mut server = Server::start(s).await;
    let mut busy = server.connect().await;
    busy.reply().await;
    busy.cmd("EHLO busy\r\n").await;
    busy.cmd("MAIL FROM:<teacher@lumen.sch.uk>\r\n").await;
    busy.cmd("RCPT TO:<parent@example.com>\r\n").await;
    busy.cmd("DATA\r\n").await;
    busy.send("never finished").await;
    server.begin_shutdown();
    // serve returns although the client never ends its data.
    let recorder = Arc::clone(&server.recorder);
    server.shutdown().await;
    assert!(busy.closed().await);
    assert!(recorder.messages().is_empty());
}

#[test]
fn load_tls_names_the_file_at_fault() {
    let dir = temp_dir("load-tls");
    let missing = dir.join("missing.pem");
    let err = load_tls(&missing, &missing).unwrap_err();
    assert!(matches!(err, SmtpError::Read { .. }));
    assert!(err.to_string().contains("missing.pem"), "{err}");

    let not_pem = dir.join("cert.pem");
    std::fs::write(&not_pem, "hello\n").unwrap();
    let err = load_tls(&not_pem, &missing).unwrap_err();
    assert!(err.to_string().contains("cert.pem"), "{err}");
    assert!(err.to_string().contains("no certificate found"), "{err}");

    let one = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    let other = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    let cert = dir.join("good-cert.pem");
    std::fs::write(&cert, one.cert.pem()).unwrap();
    // A certificate where the key should be.
    let err = load_tls(&cert, &cert).unwrap_err();
    assert!(err.to_string().contains("good-cert.pem"), "{err}");
    assert!(err.to_string().contains("private key"), "{err}");
    // A key that belongs to another certificate.
    let wrong_key = dir.join("other-key.pem");
    std::fs::write(&wrong_key, other.signing_key.serialize_pem()).unwrap();
    let err = load_tls(&cert, &wrong_key).unwrap_err();
    assert!(matches!(err, SmtpError::Tls { .. }), "{err}");
    assert!(err.to_string().contains("other-key.pem"), "{err}");

    let key = dir.join("key.pem");
    std::fs::write(&key, one.signing_key.serialize_pem()).unwrap();
    assert!(load_tls(&cert, &key).is_ok());
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Python's smtplib base64-decodes the text of a 334 reply; an enhanced
/// status code there breaks AUTH LOGIN. This drives the server with it.
const SMTPLIB_SCRIPT: &str = r#"
import smtplib, sys
port = int(sys.argv[1])
msg = b"From: teacher@lumen.sch.uk\r\nTo: parent@example.com\r\nSubject: trip\r\n\r\nhello\r\n.dot line\r\n"

s = smtplib.SMTP("127.0.0.1", port, timeout=30)
code, _ = s.ehlo("pc1.lumen.sch.uk")
assert code == 250
assert "LOGIN" in s.esmtp_features["auth"].split(), s.esmtp_features
s.user, s.password = "teacher", "correct horse battery staple"
challenges = []
def login(challenge=None):
    challenges.append(challenge)
    return s.auth_login(challenge)
code, resp = s.auth("LOGIN", login, initial_response_ok=False)
assert code == 235, (code, resp)
assert challenges == [b"Username:", b"Password:"], challenges
assert s.sendmail("teacher@lumen.sch.uk", ["parent@example.com"], msg) == {}
s.quit()

# LOGIN with the user name as initial response (smtplib's default).
s = smtplib.SMTP("127.0.0.1", port, timeout=30)
s.ehlo("pc1.lumen.sch.uk")
s.user, s.password = "teacher", "correct horse battery staple"
code, resp = s.auth("LOGIN", s.auth_login)
assert code == 235, (code, resp)
s.quit()

# Wrong password.
s = smtplib.SMTP("127.0.0.1", port, timeout=30)
s.ehlo("pc1.lumen.sch.uk")
try:
    s.login("teacher", "wrong")
    raise SystemExit("login with a wrong password succeeded")
except smtplib.SMTPAuthenticationError as e:
    assert e.smtp_code == 535, e
s.quit()
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_smtplib_auth_login_and_sendmail() {
    if std::process::Command::new("python3")
        .arg("--version")
        .output()
        .is_err()
    {
        println!("skipping python_smtplib_auth_login_and_sendmail: python3 is not installed");
        return;
    }
    // Loopback is not an allowed network here: the client must authenticate.
    let server = Server::start(settings()).await;
    let port = server.addr.port().to_string();
    let output = tokio::task::spawn_blocking(move || {
        std::process::Command::new("python3")
            .arg("-c")
            .arg(SMTPLIB_SCRIPT)
            .arg(port)
            .output()
    })
    .await
    .unwrap()
    .unwrap();
    assert!(
        output.status.success(),
        "smtplib failed:\nstdout: {}\nstderr: {}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    let messages = server.recorder.messages();
    assert_eq!(messages.len(), 1);
    let (env, data) = &messages[0];
    assert_eq!(env.authenticated.as_deref(), Some("teacher"));
    assert_eq!(env.mail_from, "teacher@lumen.sch.uk");
    assert_eq!(
        data,
        b"From: teacher@lumen.sch.uk\r\nTo: parent@example.com\r\nSubject: trip\r\n\r\nhello\r\n.dot line\r\n"
    );
    server.shutdown().await;
}
