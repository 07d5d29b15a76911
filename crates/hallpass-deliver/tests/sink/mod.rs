//! A small scripted SMTP server for the tests: listens on 127.0.0.1:0, answers each recipient
//! by the start of its local part, and records what it received (data un-dot-stuffed).
//!
//! Recipients: `busy…` → `451 4.2.1`, `nouser…` → `550 5.1.1`, anything else → `250 2.1.5`.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;
use tokio_rustls::TlsAcceptor;

/// How the sink behaves.
#[derive(Clone)]
pub struct Script {
    pub starttls: bool,
    pub pipelining: bool,
    pub eight_bit_mime: bool,
    pub smtputf8: bool,
    pub size: Option<usize>,
    pub mail_reply: &'static str,
    pub data_reply: &'static str,
    /// Drop the connection right after the reply to the final dot, without a word, as an
    /// upstream that times idle connections out does.
    pub close_after_data: bool,
    /// Answer a second MAIL FROM on the same connection with 421 and close, as an upstream
    /// shutting an idle connection down does.
    pub closing_on_second_mail: bool,
    /// Hold the reply to the final dot until this many connections are open at once (or
    /// 10 seconds have passed, so a broken test cannot hang).
    pub hold_data_until_connections: Option<usize>,
}

impl Default for Script {
    fn default() -> Self {
        Script {
            starttls: false,
            pipelining: true,
            eight_bit_mime: true,
            smtputf8: true,
            size: None,
            mail_reply: "250 2.1.0 Ok",
            data_reply: "250 2.0.0 Ok: queued as SINK1",
            close_after_data: false,
            closing_on_second_mail: false,
            hold_data_until_connections: None,
        }
    }
}

/// One transaction that reached the end of DATA.
#[derive(Debug, Clone)]
pub struct Received {
    /// The MAIL command's argument: `<a@example.com> SIZE=12 BODY=8BITMIME`.
    pub mail_from: String,
    /// Accepted recipients, without brackets.
    pub rcpts: Vec<String>,
    /// The message as it arrived, dot-stuffing undone, final CRLF included.
    pub data: Vec<u8>,
    /// Whether the transaction ran over TLS.
    pub tls: bool,
    /// Which connection (counting from 1) carried it.
    pub connection: usize,
}

#[derive(Default)]
pub struct Record {
    pub connections: usize,
    pub open: usize,
    pub max_open: usize,
    /// Every command line, in arrival order (all connections).
    pub commands: Vec<String>,
    pub received: Vec<Received>,
}

pub struct Sink {
    pub addr: SocketAddr,
    record: Arc<Mutex<Record>>,
}

impl Sink {
    pub async fn start(script: Script) -> Sink {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let record = Arc::new(Mutex::new(Record::default()));
        let acceptor = script.starttls.then(tls_acceptor);
        let shared = Arc::new(Shared {
            script,
            record: record.clone(),
            opened: Notify::new(),
            acceptor,
        });
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let number = {
                    let mut r = shared.record.lock().unwrap();
                    r.connections += 1;
                    r.open += 1;
                    r.max_open = r.max_open.max(r.open);
                    r.connections
                };
                shared.opened.notify_waiters();
                let shared = shared.clone();
                tokio::spawn(async move {
                    let mut counted = true;
                    let _ = session(stream, &shared, number, &mut counted).await;
                    if counted {
                        shared.record.lock().unwrap().open -= 1;
                    }
                });
            }
        });
        Sink { addr, record }
    }

    /// The target string for this sink: `127.0.0.1:PORT`.
    pub fn target(&self) -> String {
        self.addr.to_string()
    }

    pub fn record(&self) -> MutexGuard<'_, Record> {
        self.record.lock().unwrap()
    }

    pub fn received(&self) -> Vec<Received> {
        self.record().received.clone()
    }

    pub fn commands(&self) -> Vec<String> {
        self.record().commands.clone()
    }
}

struct Shared {
    script: Script,
    record: Arc<Mutex<Record>>,
    opened: Notify,
    acceptor: Option<TlsAcceptor>,
}

trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

async fn reply(io: &mut BufReader<Box<dyn Io>>, text: &str) -> std::io::Result<()> {
    io.get_mut()
        .write_all(format!("{text}\r\n").as_bytes())
        .await?;
    io.get_mut().flush().await
}

async fn session(
    stream: TcpStream,
    shared: &Shared,
    number: usize,
    counted: &mut bool,
) -> std::io::Result<()> {
    let script = &shared.script;
    stream.set_nodelay(true)?;
    let mut io: BufReader<Box<dyn Io>> = BufReader::new(Box::new(stream));
    let mut tls = false;
    let mut transaction: Option<Received> = None;
    let mut mails = 0;
    reply(&mut io, "220 sink.example.org ESMTP").await?;
    let mut line = Vec::new();
    loop {
        line.clear();
        if io.read_until(b'\n', &mut line).await? == 0 {
            return Ok(());
        }
        let command = String::from_utf8_lossy(&line).trim_end().to_string();
        shared.record.lock().unwrap().commands.push(command.clone());
        let upper = command.to_ascii_uppercase();
        if upper.starts_with("EHLO ") {
            let mut lines = vec!["sink.example.org".to_string()];
            if script.pipelining {
                lines.push("PIPELINING".into());
            }
            if script.eight_bit_mime {
                lines.push("8BITMIME".into());
            }
            if script.smtputf8 {
                lines.push("SMTPUTF8".into());
            }
            if let Some(size) = script.size {
                lines.push(format!("SIZE {size}"));
            }
            if script.starttls && !tls {
                lines.push("STARTTLS".into());
            }
            lines.push("ENHANCEDSTATUSCODES".into());
            let last = lines.len() - 1;
            let text: Vec<String> = lines
                .iter()
                .enumerate()
                .map(|(i, l)| format!("250{}{l}", if i == last { ' ' } else { '-' }))
                .collect();
            reply(&mut io, &text.join("\r\n")).await?;
        } else if upper.starts_with("HELO ") {
            reply(&mut io, "250 sink.example.org").await?;
        } else if upper == "STARTTLS" && script.starttls && !tls {
            reply(&mut io, "220 2.0.0 Ready to start TLS").await?;
            let acceptor = shared.acceptor.clone().unwrap();
            let plain = io.into_inner();
            let secure = acceptor.accept(plain).await?;
            io = BufReader::new(Box::new(secure));
            tls = true;
            transaction = None;
        } else if upper.starts_with("MAIL FROM:") {
            mails += 1;
            if script.closing_on_second_mail && mails > 1 {
                reply(
                    &mut io,
                    "421 4.4.2 sink.example.org closing idle connection",
                )
                .await?;
                return Ok(());
            }
            reply(&mut io, script.mail_reply).await?;
            if script.mail_reply.starts_with('2') {
                transaction = Some(Received {
                    mail_from: command["MAIL FROM:".len()..].to_string(),
                    rcpts: Vec::new(),
                    data: Vec::new(),
                    tls,
                    connection: number,
                });
            }
        } else if upper.starts_with("RCPT TO:") {
            let address = command["RCPT TO:".len()..]
                .trim_start_matches('<')
                .split('>')
                .next()
                .unwrap_or_default()
                .to_string();
            let Some(t) = transaction.as_mut() else {
                reply(&mut io, "503 5.5.1 MAIL first").await?;
                continue;
            };
            if address.starts_with("busy") {
                reply(&mut io, "451 4.2.1 mailbox busy, try again later").await?;
            } else if address.starts_with("nouser") {
                reply(&mut io, "550 5.1.1 no such user here").await?;
            } else {
                t.rcpts.push(address);
                reply(&mut io, "250 2.1.5 Ok").await?;
            }
        } else if upper == "DATA" {
            let Some(mut t) = transaction.take().filter(|t| !t.rcpts.is_empty()) else {
                reply(&mut io, "503 5.5.1 no valid recipients").await?;
                continue;
            };
            reply(&mut io, "354 End data with <CR><LF>.<CR><LF>").await?;
            loop {
                line.clear();
                if io.read_until(b'\n', &mut line).await? == 0 {
                    return Ok(());
                }
                if line == b".\r\n" {
                    break;
                }
                let unstuffed = line.strip_prefix(b".").unwrap_or(&line);
                t.data.extend_from_slice(unstuffed);
            }
            shared.record.lock().unwrap().received.push(t);
            if let Some(wanted) = script.hold_data_until_connections {
                let _ = tokio::time::timeout(Duration::from_secs(10), async {
                    loop {
                        let opened = shared.opened.notified();
                        if shared.record.lock().unwrap().open >= wanted {
                            return;
                        }
                        opened.await;
                    }
                })
                .await;
            }
            reply(&mut io, script.data_reply).await?;
            if script.close_after_data {
                return Ok(());
            }
        } else if upper == "RSET" {
            transaction = None;
            reply(&mut io, "250 2.0.0 Ok").await?;
        } else if upper == "NOOP" {
            reply(&mut io, "250 2.0.0 Ok").await?;
        } else if upper == "QUIT" {
            // Counted as closed before the reply, so the client can rely on it afterwards.
            shared.record.lock().unwrap().open -= 1;
            *counted = false;
            reply(&mut io, "221 2.0.0 Bye").await?;
            return Ok(());
        } else {
            reply(&mut io, "502 5.5.2 command not recognised").await?;
        }
    }
}

/// A self-signed certificate for `localhost`, made fresh for each sink.
fn tls_acceptor() -> TlsAcceptor {
    let certified = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(
        certified.signing_key.serialize_der(),
    ));
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(vec![certified.cert.der().clone()], key)
    .unwrap();
    TlsAcceptor::from(Arc::new(config))
}
