//! The harness shared by the end-to-end tests: temp folders, the relay
//! under test (`hallpass serve`), a small SMTP client and sink, and a raw
//! HTTP/1.1 client for the console. Each test file uses what it needs.

#![allow(dead_code)]

use std::collections::HashMap;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

use rustls::{ClientConnection, StreamOwned};

pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn temp_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("hallpass-relay-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Waits up to 20 s for `f` to give something.
pub fn eventually<T>(what: &str, f: impl FnMut() -> Option<T>) -> T {
    eventually_within(Duration::from_secs(20), what, f)
}

/// Waits up to `limit` for `f` to give something; the limit only stops a
/// hang, it is not a speed requirement.
pub fn eventually_within<T>(limit: Duration, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

// ---- the relay under test ---------------------------------------------------

pub struct Relay {
    pub child: Child,
    pub addr: SocketAddr,
    pub console: SocketAddr,
    pub dir: PathBuf,
    pub config: PathBuf,
    pub log: Arc<Mutex<String>>,
}

pub fn write_config(dir: &Path, upstream: &str, extra: &str) -> PathBuf {
    let config = dir.join("hallpass.toml");
    let text = format!(
        r#"[organisation]
name = "Test School"
internal_domains = ["lumen.sch.uk"]
partner_domains = ["council.gov.uk"]

[smtp]
listen = "127.0.0.1:0"
hostname = "relay.test"

[upstream]
address = "{upstream}"

[storage]
path = "data"

[console]
listen = "127.0.0.1:0"

[detectors]
path = "{detectors}"

[delivery]
min_backoff_seconds = 1
max_backoff_seconds = 2

"#,
        detectors = root().join("detectors").display()
    );
    // `extra` may name tables the base has ([smtp]): merge, its keys winning.
    let mut base: toml::Table = toml::from_str(&text).unwrap();
    let extra: toml::Table = toml::from_str(extra).unwrap();
    merge(&mut base, extra);
    std::fs::write(&config, toml::to_string(&base).unwrap()).unwrap();
    config
}

pub fn merge(into: &mut toml::Table, from: toml::Table) {
    for (k, v) in from {
        match (into.get_mut(&k), v) {
            (Some(toml::Value::Table(a)), toml::Value::Table(b)) => merge(a, b),
            (_, v) => {
                into.insert(k, v);
            }
        }
    }
}

impl Relay {
    pub fn start(dir: &Path, upstream: &str, extra: &str) -> Relay {
        let config = write_config(dir, upstream, extra);
        Relay::start_with(dir, config)
    }

    pub fn start_with(dir: &Path, config: PathBuf) -> Relay {
        let mut child = Command::new(env!("CARGO_BIN_EXE_hallpass"))
            .args(["--config", config.to_str().unwrap(), "serve"])
            .env_remove("HALLPASS_CONFIG")
            // Plain log lines, so tests can read the delivery attempts.
            .env("NO_COLOR", "1")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("the binary starts");
        let log = Arc::new(Mutex::new(String::new()));
        let (tx, rx) = mpsc::channel();
        let stderr = child.stderr.take().unwrap();
        let log2 = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if let Some(a) = line.strip_prefix("hallpass: smtp listening on ") {
                    let _ = tx.send(a.trim().parse::<SocketAddr>().unwrap());
                }
                if let Some(a) = line
                    .strip_prefix("hallpass: console listening on http://")
                    .or_else(|| line.strip_prefix("hallpass: console listening on https://"))
                {
                    let _ = tx.send(
                        a.trim()
                            .trim_end_matches('/')
                            .parse::<SocketAddr>()
                            .unwrap(),
                    );
                }
                let mut l = log2.lock().unwrap();
                l.push_str(&line);
                l.push('\n');
            }
        });
        let mut addrs = Vec::new();
        while addrs.len() < 2 {
            match rx.recv_timeout(Duration::from_secs(30)) {
                Ok(a) => addrs.push(a),
                Err(_) => {
                    let _ = child.kill();
                    panic!(
                        "the relay did not start listening:\n{}",
                        log.lock().unwrap()
                    );
                }
            }
        }
        Relay {
            child,
            addr: addrs[0],
            console: addrs[1],
            dir: dir.to_path_buf(),
            config,
            log,
        }
    }

    pub fn hallpass(&self, args: &[&str], stdin: &str) -> Output {
        hallpass(&self.config, args, stdin)
    }

    /// `hallpass user add NAME --role ROLE` with `password` on stdin; panics if it fails.
    pub fn add_user(&self, name: &str, role: &str, password: &str) {
        let out = self.hallpass(
            &["user", "add", name, "--role", role],
            &format!("{password}\n"),
        );
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// `held list --json`: the messages still held.
    pub fn held(&self) -> Vec<serde_json::Value> {
        self.held_list(&["held", "list", "--json"])
    }

    /// `held list --json --all`: released and rejected ones too.
    pub fn held_all(&self) -> Vec<serde_json::Value> {
        self.held_list(&["held", "list", "--json", "--all"])
    }

    pub fn held_list(&self, args: &[&str]) -> Vec<serde_json::Value> {
        let out = self.hallpass(args, "");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    pub fn outbox(&self) -> PathBuf {
        self.dir.join("outbox")
    }
}

/// Runs one `hallpass` command with `config`, `stdin` as its standard input.
pub fn hallpass(config: &Path, args: &[&str], stdin: &str) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_hallpass"))
        .arg("--config")
        .arg(config)
        .args(args)
        .env_remove("HALLPASS_CONFIG")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.kill();
        if std::thread::panicking() {
            eprintln!("relay log:\n{}", self.log.lock().unwrap());
        }
    }
}

/// Copies delivered into a `dir:` outbox, without hallpass's own notices to
/// senders (envelope sender `<>`): (message bytes, envelope text).
pub fn outbox_files(dir: &Path) -> Vec<(Vec<u8>, String)> {
    let mut files = outbox_all(dir);
    files.retain(|(_, env)| !env.contains("MAIL FROM:<>"));
    files
}

/// hallpass's notices to senders in a `dir:` outbox.
pub fn notices(dir: &Path) -> Vec<(Vec<u8>, String)> {
    let mut files = outbox_all(dir);
    files.retain(|(_, env)| env.contains("MAIL FROM:<>"));
    files
}

pub fn outbox_all(dir: &Path) -> Vec<(Vec<u8>, String)> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut names: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "eml"))
        .collect();
    names.sort();
    names
        .into_iter()
        .filter_map(|p| {
            let env = std::fs::read_to_string(p.with_extension("envelope")).ok()?;
            Some((std::fs::read(&p).ok()?, env))
        })
        .collect()
}

// ---- a small SMTP client ----------------------------------------------------

/// A line-at-a-time SMTP client over plain TCP or, after STARTTLS, TLS.
pub struct Client<S: Read + Write = TcpStream> {
    pub io: BufReader<S>,
}

impl Client {
    pub fn connect(addr: SocketAddr) -> (Client, (u16, String)) {
        Client::try_connect(addr).unwrap()
    }

    pub fn try_connect(addr: SocketAddr) -> io::Result<(Client, (u16, String))> {
        let s = TcpStream::connect(addr)?;
        s.set_read_timeout(Some(Duration::from_secs(60)))?;
        let mut c = Client {
            io: BufReader::new(s),
        };
        let greeting = c.try_reply()?;
        Ok((c, greeting))
    }

    /// STARTTLS, then a TLS handshake that trusts only `cert_der` (issued
    /// for `localhost`).
    pub fn starttls(mut self, cert_der: &[u8]) -> Client<StreamOwned<ClientConnection, TcpStream>> {
        let r = self.cmd("STARTTLS");
        assert_eq!(r.0, 220, "{r:?}");
        assert!(
            self.io.buffer().is_empty(),
            "nothing may follow the 220 in plaintext"
        );
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
        let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
        let conn = ClientConnection::new(Arc::new(config), name).unwrap();
        let mut tls = StreamOwned::new(conn, self.io.into_inner());
        // Complete the handshake now, so a failure shows here.
        while tls.conn.is_handshaking() {
            tls.conn
                .complete_io(&mut tls.sock)
                .expect("the TLS handshake");
        }
        Client {
            io: BufReader::new(tls),
        }
    }
}

impl<S: Read + Write> Client<S> {
    /// One (possibly multi-line) reply; code 0 when the server has closed.
    pub fn try_reply(&mut self) -> io::Result<(u16, String)> {
        let mut text = String::new();
        loop {
            let mut line = String::new();
            if self.io.read_line(&mut line)? == 0 {
                return Ok((0, text));
            }
            text.push_str(&line);
            if line.as_bytes().get(3) != Some(&b'-') {
                let code = line.get(..3).and_then(|c| c.parse().ok()).ok_or_else(|| {
                    io::Error::new(io::ErrorKind::InvalidData, format!("not a reply: {line:?}"))
                })?;
                return Ok((code, text));
            }
        }
    }

    pub fn reply(&mut self) -> (u16, String) {
        self.try_reply().unwrap()
    }

    /// Writes `bytes` in one go (one segment for small writes).
    pub fn write(&mut self, bytes: &[u8]) -> io::Result<()> {
        let s = self.io.get_mut();
        s.write_all(bytes)?;
        s.flush()
    }

    pub fn try_cmd(&mut self, line: &str) -> io::Result<(u16, String)> {
        self.write(format!("{line}\r\n").as_bytes())?;
        self.try_reply()
    }

    pub fn cmd(&mut self, line: &str) -> (u16, String) {
        self.try_cmd(line).unwrap()
    }

    /// MAIL, RCPT…, DATA; returns the first refusal or the reply to the data.
    pub fn try_send(
        &mut self,
        from: &str,
        rcpts: &[&str],
        data: &[u8],
    ) -> io::Result<(u16, String)> {
        let r = self.try_cmd(&format!("MAIL FROM:<{from}>"))?;
        if r.0 != 250 {
            return Ok(r);
        }
        for rc in rcpts {
            let r = self.try_cmd(&format!("RCPT TO:<{rc}>"))?;
            if r.0 != 250 {
                return Ok(r);
            }
        }
        let r = self.try_cmd("DATA")?;
        if r.0 != 354 {
            return Ok(r);
        }
        self.write(&dot_stuffed(data))?;
        self.try_reply()
    }

    pub fn send(&mut self, from: &str, rcpts: &[&str], data: &[u8]) -> (u16, String) {
        self.try_send(from, rcpts, data).unwrap()
    }
}

/// The message as DATA content: dot-stuffed and ended with `<CRLF>.<CRLF>`.
pub fn dot_stuffed(data: &[u8]) -> Vec<u8> {
    let mut stuffed = Vec::new();
    for line in data.split_inclusive(|&b| b == b'\n') {
        if line.starts_with(b".") {
            stuffed.push(b'.');
        }
        stuffed.extend_from_slice(line);
    }
    if !stuffed.ends_with(b"\r\n") {
        stuffed.extend_from_slice(b"\r\n");
    }
    stuffed.extend_from_slice(b".\r\n");
    stuffed
}

pub fn send(addr: SocketAddr, from: &str, rcpts: &[&str], data: &[u8]) -> (u16, String) {
    let (mut c, greeting) = Client::connect(addr);
    assert_eq!(greeting.0, 220, "{greeting:?}");
    assert_eq!(c.cmd("EHLO client.test").0, 250);
    let r = c.send(from, rcpts, data);
    c.cmd("QUIT");
    r
}

pub fn message(to: &str, cc: &str, subject: &str, body: &str) -> Vec<u8> {
    let cc = if cc.is_empty() {
        String::new()
    } else {
        format!("Cc: {cc}\r\n")
    };
    format!(
        "From: Teacher <teacher@lumen.sch.uk>\r\nTo: {to}\r\n{cc}Subject: {subject}\r\nMessage-ID: <{subject}@lumen.sch.uk>\r\nDate: Mon, 23 Nov 2026 09:00:00 +0000\r\n\r\n{body}\r\n"
    )
    .into_bytes()
}

pub fn pupil_record() -> String {
    let mut rng = hallpass_fixtures::Rng::new(7);
    format!(
        "Pupil record for the referral.\r\nNHS number: {}\r\nDate of birth: 04/05/2014\r\n.dotted line stays\r\n",
        hallpass_fixtures::nhs_number(&mut rng)
    )
}

// ---- certificates and message helpers ---------------------------------------

/// A self-signed certificate for `localhost`, written into `dir`; returns the
/// `[smtp]` lines that use it and the certificate's DER for a client to trust.
pub fn certificate(dir: &Path) -> (String, Vec<u8>) {
    let certified = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    let cert = dir.join("cert.pem");
    let key = dir.join("key.pem");
    std::fs::write(&cert, certified.cert.pem()).unwrap();
    std::fs::write(&key, certified.signing_key.serialize_pem()).unwrap();
    let smtp = format!(
        "[smtp]\ntls_cert = \"{}\"\ntls_key = \"{}\"\nallowed_networks = [\"192.0.2.0/24\"]\n",
        cert.display(),
        key.display()
    );
    (smtp, certified.cert.der().to_vec())
}

/// The `Message-ID` header's value (without brackets), if any.
pub fn message_id_of(data: &[u8]) -> Option<String> {
    let text = String::from_utf8_lossy(data);
    let head = text.split("\r\n\r\n").next()?;
    head.lines().find_map(|l| {
        let (name, value) = l.split_once(':')?;
        name.eq_ignore_ascii_case("message-id")
            .then(|| value.trim().trim_matches(['<', '>']).to_string())
    })
}

/// How many copies of each Message-ID the sink has.
pub fn counts_by_message_id(sink: &Sink) -> HashMap<String, usize> {
    let mut n = HashMap::new();
    for m in sink.messages() {
        if let Some(id) = message_id_of(&m.data) {
            *n.entry(id).or_insert(0) += 1;
        }
    }
    n
}

// ---- an upstream that records what it gets ----------------------------------

pub fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

#[derive(Clone, Debug)]
pub struct Received {
    pub from: String,
    pub rcpts: Vec<String>,
    pub data: Vec<u8>,
}

pub type Script = dyn Fn(&str, u32) -> String + Send + Sync;

pub struct Sink {
    pub got: Arc<Mutex<Vec<Received>>>,
}

impl Sink {
    /// Listens on `port`; `script(rcpt, times seen before)` answers each RCPT.
    pub fn start(port: u16, script: impl Fn(&str, u32) -> String + Send + Sync + 'static) -> Sink {
        let listener = TcpListener::bind(("127.0.0.1", port)).unwrap();
        let got = Arc::new(Mutex::new(Vec::new()));
        let seen = Arc::new(Mutex::new(HashMap::<String, u32>::new()));
        let script: Arc<Script> = Arc::new(script);
        let got2 = got.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { break };
                let (got, seen, script) = (got2.clone(), seen.clone(), script.clone());
                std::thread::spawn(move || {
                    let _ = serve_sink(stream, &got, &seen, &*script);
                });
            }
        });
        Sink { got }
    }

    pub fn messages(&self) -> Vec<Received> {
        self.got.lock().unwrap().clone()
    }
}

pub fn serve_sink(
    stream: TcpStream,
    got: &Mutex<Vec<Received>>,
    seen: &Mutex<HashMap<String, u32>>,
    script: &Script,
) -> std::io::Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(60)))?;
    let mut w = stream.try_clone()?;
    let mut r = BufReader::new(stream);
    w.write_all(b"220 sink.test ESMTP\r\n")?;
    let (mut from, mut rcpts) = (String::new(), Vec::new());
    loop {
        let mut line = String::new();
        if r.read_line(&mut line)? == 0 {
            return Ok(());
        }
        let upper = line.to_ascii_uppercase();
        let reply = if upper.starts_with("EHLO") {
            "250-sink.test\r\n250-PIPELINING\r\n250 8BITMIME".to_string()
        } else if upper.starts_with("MAIL FROM:") {
            from = addr(&line);
            rcpts.clear();
            "250 2.1.0 Ok".into()
        } else if upper.starts_with("RCPT TO:") {
            let rc = addr(&line);
            let n = {
                let mut s = seen.lock().unwrap();
                let n = s.entry(rc.clone()).or_insert(0);
                *n += 1;
                *n - 1
            };
            let reply = script(&rc, n);
            if reply.starts_with('2') {
                rcpts.push(rc);
            }
            reply
        } else if upper.starts_with("DATA") {
            w.write_all(b"354 go on\r\n")?;
            let mut data = Vec::new();
            loop {
                let mut l = Vec::new();
                let n = r.by_ref().take(1 << 20).read_until(b'\n', &mut l)?;
                if n == 0 {
                    // The client went away before the final dot (a relay
                    // killed mid-transfer): like any SMTP server, keep
                    // nothing. The relay will send the message again.
                    return Ok(());
                }
                if l == b".\r\n" {
                    break;
                }
                let l = if l.starts_with(b"..") {
                    &l[1..]
                } else {
                    &l[..]
                };
                data.extend_from_slice(l);
            }
            got.lock().unwrap().push(Received {
                from: from.clone(),
                rcpts: rcpts.clone(),
                data,
            });
            "250 2.0.0 Ok: queued".into()
        } else if upper.starts_with("QUIT") {
            w.write_all(b"221 2.0.0 Bye\r\n")?;
            return Ok(());
        } else {
            "250 2.0.0 Ok".into()
        };
        w.write_all(format!("{reply}\r\n").as_bytes())?;
    }
}

pub fn addr(line: &str) -> String {
    let start = line.find('<').map_or(0, |i| i + 1);
    let end = line[start..].find('>').map_or(line.len(), |i| start + i);
    line[start..end].to_string()
}

pub fn base64(data: &[u8]) -> String {
    hallpass_fixtures::base64(data).replace(['\r', '\n'], "")
}

// ---- the console, mounted by `serve` ------------------------------------------

/// One HTTP/1.1 request to the console; returns (status, headers, body).
pub fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> (u16, String, String) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    req.push_str(body);
    s.write_all(req.as_bytes()).unwrap();
    let mut resp = String::new();
    s.read_to_string(&mut resp).unwrap();
    let (head, body) = resp.split_once("\r\n\r\n").unwrap_or((&resp, ""));
    let status = head.get(9..12).and_then(|c| c.parse().ok()).unwrap_or(0);
    (status, head.to_string(), body.to_string())
}

/// Logs in with the form the login page posts; the session cookie.
pub fn login(console: SocketAddr, user: &str, password: &str) -> String {
    let body = format!("username={user}&password={}", password.replace(' ', "+"));
    let (status, head, _) = http(
        console,
        "POST",
        "/login",
        &[("Content-Type", "application/x-www-form-urlencoded")],
        &body,
    );
    assert!(status == 303 || status == 200, "login: {status}\n{head}");
    head.lines()
        .filter_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("set-cookie").then(|| v.trim())
        })
        .find(|v| v.starts_with("hallpass_session=") && !v.contains("Max-Age=0"))
        .and_then(|v| v.split(';').next())
        .expect("a session cookie")
        .to_string()
}

/// A teacher's message to a parent, which must be accepted (`250`); the reply.
pub fn send_to_parent(relay: SocketAddr, data: &[u8]) -> (u16, String) {
    let r = send(relay, "teacher@lumen.sch.uk", &["parent@example.com"], data);
    assert_eq!(r.0, 250, "{r:?}");
    r
}
