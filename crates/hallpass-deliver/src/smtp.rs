//! [`Deliverer`]: one message, its recipients, one outcome each.
//!
//! For an SMTP target, a transaction is MAIL FROM, RCPT TO for each recipient (pipelined when
//! the upstream offers PIPELINING), and DATA only when a recipient was accepted; the DATA
//! reply applies to every accepted recipient. Connections are opened with EHLO and upgraded
//! with STARTTLS when offered, kept after a transaction for [`Settings::idle_keep`] and reset
//! (RSET) before the next; a pooled connection that turns out to be dead is replaced once by a
//! fresh one before anything is reported. At most [`Settings::concurrency`] connections are
//! open at once (idle ones included).
//!
//! The bytes go out exactly: mail-send's `data()` dot-stuffs every `.` that starts a line and
//! ends the data with `CRLF.CRLF`, so the message's own final CRLF is taken off first. A
//! message that does not end with CRLF arrives with one added (SMTP cannot carry it otherwise).

use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};
use std::time::{Duration, Instant};

use mail_send::SmtpClient;
use smtp_proto::{EXT_8BIT_MIME, EXT_PIPELINING, EXT_SIZE, EXT_SMTP_UTF8, EXT_START_TLS, Response};
use tokio::io::{AsyncRead, AsyncWrite, BufWriter};
use tokio::net::TcpStream;
use tokio::sync::Semaphore;
use tokio_rustls::TlsConnector;

use crate::{RcptOutcome, Target, address_is_safe, dir};

/// How the [`Deliverer`] talks to its target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// The name given in EHLO (this relay's host name).
    pub helo_name: String,
    /// Connections to the upstream at once, idle ones included (at least 1; default 4). For a
    /// `dir:` target, messages written at once.
    pub concurrency: usize,
    /// Limit for connecting and for each SMTP command's reply (default 60 s). DATA gets twice
    /// this plus one second per 100 kB of message.
    pub timeout: Duration,
    /// Refuse to send in clear: without STARTTLS from the upstream every recipient is
    /// Transient (default false: STARTTLS whenever offered, plain text otherwise).
    pub require_tls: bool,
    /// Accept any certificate from the upstream (default false). Only for an upstream on the
    /// same host with a self-signed certificate. Without it a certificate that does not verify
    /// against the system's roots makes the attempt Transient: there is no fallback to clear.
    pub accept_invalid_certs: bool,
    /// How long an idle connection is kept for the next message (default 30 s; zero closes
    /// each connection after its transaction).
    pub idle_keep: Duration,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            helo_name: "localhost".to_string(),
            concurrency: 4,
            timeout: Duration::from_secs(60),
            require_tls: false,
            accept_invalid_certs: false,
            idle_keep: Duration::from_secs(30),
        }
    }
}

/// Sends messages to one [`Target`]. Cheap to clone: clones share the connection pool and the
/// limit on connections.
#[derive(Clone)]
pub struct Deliverer {
    inner: Arc<Inner>,
}

struct Inner {
    target: Target,
    settings: Settings,
    /// Built once; an error (no system CA certificates) is reported on each STARTTLS.
    tls: Result<TlsConnector, String>,
    permits: Semaphore,
    pool: Mutex<Pool>,
}

#[derive(Default)]
struct Pool {
    /// Oldest first.
    idle: Vec<Idle>,
    /// Whether a task is closing expired connections.
    sweeping: bool,
}

struct Idle {
    conn: Conn,
    since: Instant,
}

/// Anything a connection can run over: TCP, or TLS over TCP.
trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

type Stream = BufWriter<Box<dyn Io>>;

/// An open SMTP connection after EHLO (and STARTTLS).
struct Conn {
    client: SmtpClient<Stream>,
    capabilities: u32,
    /// The upstream's SIZE limit; 0 when it gave none.
    max_size: usize,
    tls: bool,
}

impl Conn {
    fn has(&self, extension: u32) -> bool {
        self.capabilities & extension != 0
    }
}

/// The message as the transaction needs it.
struct Outgoing<'a> {
    mail_from: &'a str,
    rcpts: &'a [String],
    /// The message without its final CRLF (mail-send writes `CRLF.CRLF`).
    data: &'a [u8],
    size: usize,
    eight_bit: bool,
    utf8_envelope: bool,
    utf8_headers: bool,
}

impl<'a> Outgoing<'a> {
    fn new(mail_from: &'a str, rcpts: &'a [String], bytes: &'a [u8]) -> Self {
        Outgoing {
            mail_from,
            rcpts,
            data: bytes.strip_suffix(b"\r\n").unwrap_or(bytes),
            size: bytes.len(),
            eight_bit: !bytes.is_ascii(),
            utf8_envelope: !mail_from.is_ascii() || rcpts.iter().any(|r| !r.is_ascii()),
            utf8_headers: !header_section(bytes).is_ascii(),
        }
    }
}

/// The message's header section: everything before the first empty line.
fn header_section(bytes: &[u8]) -> &[u8] {
    let crlf = bytes.windows(4).position(|w| w == b"\r\n\r\n");
    let lf = bytes.windows(2).position(|w| w == b"\n\n");
    match (crlf, lf) {
        (Some(a), Some(b)) => &bytes[..a.min(b)],
        (Some(a), None) | (None, Some(a)) => &bytes[..a],
        (None, None) => bytes,
    }
}

/// What one call to `send` did, for the log line.
struct Attempt {
    outcomes: Vec<RcptOutcome>,
    reused: bool,
    tls: bool,
    /// Why the connection failed, when it did (never a reply about a recipient).
    failure: Option<String>,
}

impl Attempt {
    fn all(n: usize, outcome: RcptOutcome, failure: Option<String>) -> Self {
        Attempt {
            outcomes: vec![outcome; n],
            reused: false,
            tls: false,
            failure,
        }
    }
}

/// The result of one transaction on one connection.
enum Tx {
    /// Every recipient has its answer.
    Done {
        outcomes: Vec<RcptOutcome>,
        reusable: bool,
    },
    /// The connection failed before DATA; `partial` holds the refusals already read.
    Broken {
        error: String,
        partial: Vec<Option<RcptOutcome>>,
    },
}

/// Commands sent at once when pipelining, so that neither side fills its buffers waiting.
const PIPELINE_BATCH: usize = 100;

impl Deliverer {
    /// A deliverer for `target`. Opens nothing yet.
    pub fn new(target: Target, settings: Settings) -> Deliverer {
        let tls = match target {
            Target::Smtp { .. } => crate::tls::connector(settings.accept_invalid_certs),
            Target::Dir(_) => Err("a dir: target does not use TLS".to_string()),
        };
        let permits = Semaphore::new(settings.concurrency.clamp(1, Semaphore::MAX_PERMITS));
        Deliverer {
            inner: Arc::new(Inner {
                target,
                settings,
                tls,
                permits,
                pool: Mutex::new(Pool::default()),
            }),
        }
    }

    /// Where this deliverer sends.
    pub fn target(&self) -> &Target {
        &self.inner.target
    }

    /// Sends `bytes` (the message exactly; CRLF line ends) from `mail_from` (`""` is the null
    /// sender `<>`) to `rcpts`. Returns one outcome per recipient, in order. Never panics; a
    /// connection or protocol failure before RCPT is a Transient outcome for every recipient.
    /// `name` is used by `dir:` targets for the file names (`<name>.eml`, `<name>.envelope`).
    ///
    /// An address with control characters or angle brackets is refused (Permanent) without
    /// being sent; the other recipients go on.
    pub async fn send(
        &self,
        mail_from: &str,
        rcpts: &[String],
        bytes: &[u8],
        name: &str,
    ) -> Vec<RcptOutcome> {
        if rcpts.is_empty() {
            return Vec::new();
        }
        let attempt = if !address_is_safe(mail_from) {
            let refused = RcptOutcome::Permanent(
                "invalid sender address (control characters or angle brackets)".into(),
            );
            Attempt::all(rcpts.len(), refused, None)
        } else if rcpts.iter().all(|r| address_is_safe(r)) {
            self.send_to_target(mail_from, rcpts, bytes, name).await
        } else {
            let valid: Vec<String> = rcpts
                .iter()
                .filter(|r| address_is_safe(r))
                .cloned()
                .collect();
            let mut attempt = if valid.is_empty() {
                Attempt::all(0, RcptOutcome::Transient(String::new()), None)
            } else {
                self.send_to_target(mail_from, &valid, bytes, name).await
            };
            let mut sent = std::mem::take(&mut attempt.outcomes).into_iter();
            attempt.outcomes = rcpts
                .iter()
                .map(|rcpt| match address_is_safe(rcpt) {
                    true => sent.next().unwrap_or_else(|| {
                        RcptOutcome::Transient("no outcome was produced".into())
                    }),
                    false => RcptOutcome::Permanent(
                        "invalid recipient address (control characters or angle brackets)".into(),
                    ),
                })
                .collect();
            attempt
        };
        self.log(&attempt);
        attempt.outcomes
    }

    /// Closes the idle connections (QUIT), for a graceful shutdown.
    pub async fn close_idle(&self) {
        let idle = std::mem::take(&mut self.inner.pool().idle);
        for idle in idle {
            quit(idle.conn, self.inner.settings.timeout).await;
        }
    }

    async fn send_to_target(
        &self,
        mail_from: &str,
        rcpts: &[String],
        bytes: &[u8],
        name: &str,
    ) -> Attempt {
        let Ok(_permit) = self.inner.permits.acquire().await else {
            let outcome = RcptOutcome::Transient("the deliverer is shutting down".into());
            return Attempt::all(rcpts.len(), outcome, None);
        };
        match &self.inner.target {
            Target::Dir(dir) => Attempt {
                outcomes: dir::deliver(dir, mail_from, rcpts, bytes, name).await,
                reused: false,
                tls: false,
                failure: None,
            },
            Target::Smtp { host, port } => {
                let message = Outgoing::new(mail_from, rcpts, bytes);
                self.send_smtp(host, *port, &message).await
            }
        }
    }

    /// One message over SMTP; the caller holds a permit.
    async fn send_smtp(&self, host: &str, port: u16, message: &Outgoing<'_>) -> Attempt {
        let settings = &self.inner.settings;
        if let Some(mut conn) = self.take_idle() {
            if conn.client.rset().await.is_ok() {
                match transaction(&mut conn, message, settings.timeout).await {
                    Tx::Done { outcomes, reusable } => {
                        let tls = conn.tls;
                        self.release(conn, reusable).await;
                        return Attempt {
                            outcomes,
                            reused: true,
                            tls,
                            failure: None,
                        };
                    }
                    // A stale connection; nothing was accepted for good. Start afresh.
                    Tx::Broken { error, .. } => {
                        tracing::debug!(upstream = %self.inner.target, %error, "pooled connection failed; opening a new one");
                    }
                }
            } else {
                tracing::debug!(upstream = %self.inner.target, "pooled connection did not answer RSET; opening a new one");
            }
        }
        let mut conn = match self.open(host, port).await {
            Ok(conn) => conn,
            Err(error) => {
                let error = error.to_string();
                let outcome = RcptOutcome::Transient(error.clone());
                return Attempt::all(message.rcpts.len(), outcome, Some(error));
            }
        };
        let tls = conn.tls;
        match transaction(&mut conn, message, settings.timeout).await {
            Tx::Done { outcomes, reusable } => {
                self.release(conn, reusable).await;
                Attempt {
                    outcomes,
                    reused: false,
                    tls,
                    failure: None,
                }
            }
            Tx::Broken { error, partial } => Attempt {
                outcomes: partial
                    .into_iter()
                    .map(|o| o.unwrap_or_else(|| RcptOutcome::Transient(error.clone())))
                    .collect(),
                reused: false,
                tls,
                failure: Some(error),
            },
        }
    }

    /// Connects, reads the greeting, says EHLO and upgrades with STARTTLS when offered.
    async fn open(&self, host: &str, port: u16) -> Result<Conn, ConnError> {
        let settings = &self.inner.settings;
        let timeout = settings.timeout;
        let stream = tokio::time::timeout(timeout, TcpStream::connect((host, port)))
            .await
            .map_err(|_| ConnError::Timeout("connecting"))?
            .map_err(|e| ConnError::Connect(io_text(&e)))?;
        let _ = stream.set_nodelay(true);
        let mut client = SmtpClient { stream, timeout };
        let greeting = tokio::time::timeout(timeout, client.read())
            .await
            .map_err(|_| ConnError::Timeout("the greeting"))?
            .map_err(|e| ConnError::Protocol(describe(&e)))?;
        if !is_positive(&greeting) {
            return Err(ConnError::Refused(format_reply(&greeting)));
        }
        let (capabilities, max_size) = hello(&mut client, &settings.helo_name).await?;
        if capabilities & EXT_START_TLS != 0 {
            let connector = self
                .inner
                .tls
                .as_ref()
                .map_err(|e| ConnError::Tls(e.clone()))?;
            let client = client
                .start_tls(connector, host)
                .await
                .map_err(|e| ConnError::Tls(describe(&e)))?;
            let mut client = SmtpClient {
                stream: BufWriter::new(Box::new(client.stream) as Box<dyn Io>),
                timeout,
            };
            let (capabilities, max_size) = hello(&mut client, &settings.helo_name).await?;
            Ok(Conn {
                client,
                capabilities,
                max_size,
                tls: true,
            })
        } else if settings.require_tls {
            let _ = tokio::time::timeout(timeout, client.quit()).await;
            Err(ConnError::NoStartTls)
        } else {
            let client = SmtpClient {
                stream: BufWriter::new(Box::new(client.stream) as Box<dyn Io>),
                timeout,
            };
            Ok(Conn {
                client,
                capabilities,
                max_size,
                tls: false,
            })
        }
    }

    /// The most recently used idle connection that has not expired; expired ones are closed.
    fn take_idle(&self) -> Option<Conn> {
        let keep = self.inner.settings.idle_keep;
        let mut pool = self.inner.pool();
        let newest = pool.idle.pop()?;
        if newest.since.elapsed() < keep {
            return Some(newest.conn);
        }
        // The newest has expired, so all have.
        let mut expired = std::mem::take(&mut pool.idle);
        drop(pool);
        expired.push(newest);
        let timeout = self.inner.settings.timeout;
        tokio::spawn(async move {
            for idle in expired {
                quit(idle.conn, timeout).await;
            }
        });
        None
    }

    /// Puts a connection back in the pool after a transaction, or closes it.
    async fn release(&self, conn: Conn, reusable: bool) {
        let settings = &self.inner.settings;
        if !reusable {
            return;
        }
        if settings.idle_keep.is_zero() {
            quit(conn, settings.timeout).await;
            return;
        }
        let (surplus, start_sweeper) = {
            let mut pool = self.inner.pool();
            pool.idle.push(Idle {
                conn,
                since: Instant::now(),
            });
            let surplus = if pool.idle.len() > settings.concurrency.max(1) {
                Some(pool.idle.remove(0))
            } else {
                None
            };
            let start = !pool.sweeping;
            pool.sweeping = true;
            (surplus, start)
        };
        if let Some(surplus) = surplus {
            quit(surplus.conn, settings.timeout).await;
        }
        if start_sweeper {
            tokio::spawn(sweep(Arc::downgrade(&self.inner)));
        }
    }

    fn log(&self, attempt: &Attempt) {
        let count = |f: fn(&RcptOutcome) -> bool| attempt.outcomes.iter().filter(|o| f(o)).count();
        let delivered = count(RcptOutcome::is_delivered);
        let transient = count(RcptOutcome::is_transient);
        let permanent = count(RcptOutcome::is_permanent);
        let upstream = &self.inner.target;
        let rcpts = attempt.outcomes.len();
        let (reused, tls) = (attempt.reused, attempt.tls);
        let error = attempt.failure.as_deref();
        if delivered == rcpts {
            tracing::info!(%upstream, rcpts, delivered, transient, permanent, reused, tls, "delivery attempt");
        } else {
            tracing::warn!(%upstream, rcpts, delivered, transient, permanent, reused, tls, error, "delivery attempt");
        }
    }
}

impl Inner {
    fn pool(&self) -> MutexGuard<'_, Pool> {
        // Nothing can leave the pool half-updated, so a poisoned lock is still usable.
        self.pool.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl std::fmt::Debug for Deliverer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Deliverer")
            .field("target", &self.inner.target)
            .field("settings", &self.inner.settings)
            .finish_non_exhaustive()
    }
}

/// Closes idle connections as they expire; ends when the pool is empty or the deliverer gone.
async fn sweep(inner: Weak<Inner>) {
    loop {
        let (expired, next, timeout) = {
            let Some(inner) = inner.upgrade() else { return };
            let keep = inner.settings.idle_keep;
            let mut pool = inner.pool();
            let now = Instant::now();
            let (expired, fresh): (Vec<Idle>, Vec<Idle>) = std::mem::take(&mut pool.idle)
                .into_iter()
                .partition(|idle| now.duration_since(idle.since) >= keep);
            pool.idle = fresh;
            let next = pool.idle.iter().map(|idle| idle.since + keep).min();
            if next.is_none() {
                pool.sweeping = false;
            }
            (expired, next, inner.settings.timeout)
        };
        for idle in expired {
            quit(idle.conn, timeout).await;
        }
        match next {
            Some(at) => tokio::time::sleep_until(tokio::time::Instant::from_std(at)).await,
            None => return,
        }
    }
}

async fn quit(conn: Conn, timeout: Duration) {
    let _ = tokio::time::timeout(timeout, conn.client.quit()).await;
}

/// EHLO, or HELO for a server that refuses EHLO. Returns the capabilities and the SIZE limit.
async fn hello<T: AsyncRead + AsyncWrite + Unpin>(
    client: &mut SmtpClient<T>,
    name: &str,
) -> Result<(u32, usize), ConnError> {
    match client.ehlo(name).await {
        Ok(ehlo) => Ok((ehlo.capabilities, ehlo.size)),
        Err(mail_send::Error::UnexpectedReply(reply)) if (500..600).contains(&reply.code) => {
            let reply = client
                .cmd(format!("HELO {name}\r\n"))
                .await
                .map_err(|e| ConnError::Protocol(describe(&e)))?;
            if is_positive(&reply) {
                Ok((0, 0))
            } else {
                Err(ConnError::Refused(format_reply(&reply)))
            }
        }
        Err(mail_send::Error::UnexpectedReply(reply)) => {
            Err(ConnError::Refused(format_reply(&reply)))
        }
        Err(e) => Err(ConnError::Protocol(describe(&e))),
    }
}

/// MAIL FROM, RCPT TO each, and DATA when a recipient was accepted.
async fn transaction(conn: &mut Conn, message: &Outgoing<'_>, timeout: Duration) -> Tx {
    let n = message.rcpts.len();
    if message.utf8_envelope && !conn.has(EXT_SMTP_UTF8) {
        return Tx::Done {
            outcomes: vec![
                RcptOutcome::Permanent(
                    "the upstream does not support SMTPUTF8, which a non-ASCII address needs"
                        .into()
                );
                n
            ],
            reusable: true,
        };
    }
    if conn.has(EXT_SIZE) && conn.max_size > 0 && message.size > conn.max_size {
        let text = format!(
            "the upstream accepts messages of up to {} bytes; this one has {}",
            conn.max_size, message.size
        );
        return Tx::Done {
            outcomes: vec![RcptOutcome::Permanent(text); n],
            reusable: true,
        };
    }

    let mut params = String::new();
    if conn.has(EXT_SIZE) {
        params.push_str(&format!(" SIZE={}", message.size));
    }
    if message.eight_bit && conn.has(EXT_8BIT_MIME) {
        params.push_str(" BODY=8BITMIME");
    }
    if (message.utf8_envelope || message.utf8_headers) && conn.has(EXT_SMTP_UTF8) {
        params.push_str(" SMTPUTF8");
    }
    let mut commands = Vec::with_capacity(n + 1);
    commands.push(format!("MAIL FROM:<{}>{params}\r\n", message.mail_from));
    commands.extend(message.rcpts.iter().map(|r| format!("RCPT TO:<{r}>\r\n")));

    // Replies to MAIL FROM and then to each RCPT TO, in order.
    let mut replies: Vec<Response<String>> = Vec::with_capacity(n + 1);
    let refusals_so_far = |replies: &[Response<String>]| -> Vec<Option<RcptOutcome>> {
        (0..n)
            .map(|i| replies.get(i + 1).filter(|r| !is_positive(r)).map(refusal))
            .collect()
    };
    if conn.has(EXT_PIPELINING) {
        for batch in commands.chunks(PIPELINE_BATCH) {
            match conn.client.cmds(batch).await {
                Ok(batch_replies) => replies.extend(batch_replies),
                Err(e) => {
                    return Tx::Broken {
                        error: describe(&e),
                        partial: refusals_so_far(&replies),
                    };
                }
            }
            if replies.first().is_some_and(|r| !is_positive(r)) {
                break;
            }
        }
    } else {
        for command in &commands {
            match conn.client.cmd(command).await {
                Ok(reply) => {
                    let mail_refused = replies.is_empty() && !is_positive(&reply);
                    replies.push(reply);
                    if mail_refused {
                        break;
                    }
                }
                Err(e) => {
                    return Tx::Broken {
                        error: describe(&e),
                        partial: refusals_so_far(&replies),
                    };
                }
            }
        }
    }

    let Some(mail_reply) = replies.first() else {
        return Tx::Broken {
            error: "the upstream did not answer MAIL FROM".into(),
            partial: vec![None; n],
        };
    };
    // 421: the upstream is closing this connection (an idle timeout, say); nothing was
    // refused, so a pooled connection is replaced by a fresh one.
    if mail_reply.code == 421 {
        return Tx::Broken {
            error: format_reply(mail_reply),
            partial: vec![None; n],
        };
    }
    if !is_positive(mail_reply) {
        return Tx::Done {
            outcomes: vec![refusal(mail_reply); n],
            reusable: true,
        };
    }
    if replies.len() < n + 1 {
        return Tx::Broken {
            error: "the upstream did not answer every RCPT TO".into(),
            partial: refusals_so_far(&replies),
        };
    }

    let mut outcomes = refusals_so_far(&replies);
    // 421 to a RCPT: the upstream is closing the connection; DATA cannot follow.
    if let Some(closing) = replies.iter().find(|r| r.code == 421) {
        let closing = refusal(closing);
        return Tx::Done {
            outcomes: outcomes
                .into_iter()
                .map(|o| o.unwrap_or_else(|| closing.clone()))
                .collect(),
            reusable: false,
        };
    }
    if outcomes.iter().all(Option::is_some) {
        return Tx::Done {
            outcomes: outcomes.into_iter().flatten().collect(),
            reusable: true,
        };
    }

    conn.client.timeout = data_timeout(timeout, message.data.len());
    let result = conn.client.data(message.data).await;
    conn.client.timeout = timeout;
    let (outcome, reusable) = match result {
        Ok(reply) => (RcptOutcome::Delivered(format_reply(&reply)), true),
        Err(mail_send::Error::UnexpectedReply(reply)) => (refusal(&reply), reply.code != 421),
        Err(e) => (RcptOutcome::Transient(describe(&e)), false),
    };
    for slot in &mut outcomes {
        if slot.is_none() {
            *slot = Some(outcome.clone());
        }
    }
    Tx::Done {
        outcomes: outcomes.into_iter().flatten().collect(),
        reusable,
    }
}

/// Time allowed for DATA: the command, the transfer (at 100 kB/s or better) and the reply.
fn data_timeout(timeout: Duration, len: usize) -> Duration {
    let transfer = Duration::from_secs(u64::try_from(len / 100_000).unwrap_or(u64::MAX));
    timeout.saturating_mul(2).saturating_add(transfer)
}

fn is_positive(reply: &Response<String>) -> bool {
    (200..300).contains(&reply.code)
}

/// The outcome of a negative reply: 5xx refuses for good, anything else is worth a retry.
fn refusal(reply: &Response<String>) -> RcptOutcome {
    if (500..600).contains(&reply.code) {
        RcptOutcome::Permanent(format_reply(reply))
    } else {
        RcptOutcome::Transient(format_reply(reply))
    }
}

/// A reply as the upstream wrote it, on one line: `550 5.1.1 mailbox unavailable`.
fn format_reply(reply: &Response<String>) -> String {
    let text = reply
        .message
        .split(['\r', '\n'])
        .map(str::trim)
        .filter(|line| !line.is_empty())
        .collect::<Vec<_>>()
        .join(" ");
    let mut out = reply.code.to_string();
    if reply.esc != [0, 0, 0] {
        let [class, subject, detail] = reply.esc;
        out.push_str(&format!(" {class}.{subject}.{detail}"));
    }
    if !text.is_empty() {
        out.push(' ');
        out.push_str(&text);
    }
    out
}

/// What a mail-send error means, in words fit for an outcome.
fn describe(error: &mail_send::Error) -> String {
    match error {
        mail_send::Error::Io(e) => io_text(e),
        mail_send::Error::Tls(e) => format!("TLS: {e}"),
        mail_send::Error::UnparseableReply => {
            "the upstream closed the connection or sent an unreadable reply".into()
        }
        mail_send::Error::UnexpectedReply(reply) => format_reply(reply),
        mail_send::Error::Timeout => "timed out waiting for the upstream".into(),
        other => other.to_string(),
    }
}

/// An I/O error in words: the kind for operating-system errors ("connection refused"), the
/// message otherwise (name resolution, TLS).
fn io_text(error: &std::io::Error) -> String {
    if error.raw_os_error().is_some() {
        error.kind().to_string()
    } else {
        error.to_string()
    }
}

/// Why no connection ready for MAIL FROM could be had.
#[derive(Debug, thiserror::Error)]
enum ConnError {
    #[error("{0}")]
    Connect(String),
    #[error("timed out {0}")]
    Timeout(&'static str),
    #[error("the upstream refused the session: {0}")]
    Refused(String),
    #[error("upstream does not offer STARTTLS")]
    NoStartTls,
    #[error("STARTTLS with the upstream failed: {0}")]
    Tls(String),
    #[error("{0}")]
    Protocol(String),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_one_final_crlf_is_taken_off() {
        let rcpts = ["b@example.org".to_string()];
        let m = Outgoing::new("a@example.com", &rcpts, b"A: b\r\n\r\nbody\r\n\r\n");
        assert_eq!(m.data, b"A: b\r\n\r\nbody\r\n");
        assert_eq!(m.size, 16);
        let m = Outgoing::new("a@example.com", &rcpts, b"A: b\r\n\r\nbody");
        assert_eq!(m.data, b"A: b\r\n\r\nbody");
    }

    #[test]
    fn needs_are_read_from_the_message_and_envelope() {
        let ascii = ["b@example.org".to_string()];
        let m = Outgoing::new(
            "a@example.com",
            &ascii,
            b"Subject: hi\r\n\r\ncaf\xc3\xa9\r\n",
        );
        assert!(m.eight_bit && !m.utf8_headers && !m.utf8_envelope);
        let m = Outgoing::new(
            "a@example.com",
            &ascii,
            "Subject: café\r\n\r\nx\r\n".as_bytes(),
        );
        assert!(m.eight_bit && m.utf8_headers && !m.utf8_envelope);
        let utf8 = ["zoë@example.org".to_string()];
        let m = Outgoing::new("a@example.com", &utf8, b"Subject: hi\r\n\r\nx\r\n");
        assert!(!m.eight_bit && m.utf8_envelope);
    }

    #[test]
    fn replies_are_written_on_one_line_with_their_enhanced_code() {
        let reply = Response::new(550, 5, 1, 1, "mailbox unavailable".to_string());
        assert_eq!(format_reply(&reply), "550 5.1.1 mailbox unavailable");
        let reply = Response::new(451, 0, 0, 0, "try again\nlater".to_string());
        assert_eq!(format_reply(&reply), "451 try again later");
        assert!(refusal(&reply).is_transient());
        let reply = Response::new(554, 5, 7, 1, "no".to_string());
        assert!(refusal(&reply).is_permanent());
    }

    #[test]
    fn data_gets_time_for_large_messages() {
        let minute = Duration::from_secs(60);
        assert_eq!(data_timeout(minute, 1000), Duration::from_secs(120));
        assert_eq!(data_timeout(minute, 35_000_000), Duration::from_secs(470));
    }
}
