//! The tokio shell: accepts connections, enforces connection limits, drives
//! one [`Session`] per connection over TCP and then TLS, and shuts down
//! gracefully.
//!
//! It counts sessions and replies through the `metrics` facade (as it logs
//! through `tracing`): `hallpass_smtp_sessions` (open now),
//! `hallpass_smtp_sessions_total` and `hallpass_smtp_replies_total{code}`.
//! Without an installed recorder that costs nothing. Counting here rather than
//! in the relay's [`Handler`] sees every reply, including those the handler
//! never hears of (`554` to relaying, `421` over the limits).

use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::{Envelope, Event, Reply, Session, Settings};

/// Bytes read from a client at a time. The driver does not read while the
/// session waits for the relay, so this bounds the session's buffered input.
const READ_CHUNK: usize = 16 * 1024;

/// How long a refused client is given to take its `421`.
const REFUSAL_WRITE_TIMEOUT: Duration = Duration::from_secs(10);

/// What the relay supplies. The session never decides about message content.
pub trait Handler: Send + Sync + 'static {
    /// Checks a relay account's password (AUTH PLAIN / LOGIN).
    fn authenticate(&self, user: &str, password: &str) -> impl Future<Output = bool> + Send;
    /// The message after the final dot: `data` is the content exactly as the
    /// client sent it, after dot-unstuffing, CRLF line ends, without the
    /// terminating ".\r\n". The reply is sent to the client as is (250 with
    /// queue id / 550 5.7.1 / 451 4.3.0 ...).
    fn message(&self, envelope: Envelope, data: Vec<u8>) -> impl Future<Output = Reply> + Send;
}

/// Accepts connections until `shutdown` resolves; then stops accepting, tells
/// idle sessions `421 4.3.2 shutting down`, lets transactions in flight (in
/// DATA or waiting for their verdict) finish up to `shutdown_grace`, cuts
/// whatever is left, and returns. Errors only when the listener's address
/// cannot be read; failed accepts are logged and retried.
pub async fn serve<H: Handler>(
    listener: TcpListener,
    settings: Arc<Settings>,
    handler: Arc<H>,
    shutdown: impl Future<Output = ()> + Send,
) -> io::Result<()> {
    let local = listener.local_addr()?;
    tracing::info!(address = %local, "SMTP server listening");
    let (stop_tx, stop_rx) = watch::channel(false);
    let limits = Arc::new(Limits::new(
        settings.max_connections,
        settings.max_connections_per_client,
    ));
    let mut tasks = JoinSet::new();
    let mut shutdown = std::pin::pin!(shutdown);

    loop {
        tokio::select! {
            () = &mut shutdown => break,
            Some(done) = tasks.join_next(), if !tasks.is_empty() => {
                if let Err(e) = done
                    && e.is_panic()
                {
                    tracing::error!("an SMTP session task panicked");
                }
            }
            accepted = listener.accept() => {
                let (stream, peer) = match accepted {
                    Ok(accepted) => accepted,
                    Err(e) => {
                        // Out of file descriptors and the like: pause rather
                        // than spin; the listener itself stays usable.
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                };
                match limits.acquire(peer.ip()) {
                    Ok(permit) => {
                        tasks.spawn(connection(
                            stream,
                            peer,
                            Arc::clone(&settings),
                            Arc::clone(&handler),
                            stop_rx.clone(),
                            permit,
                        ));
                    }
                    Err(scope) => {
                        tracing::info!(peer = %peer, limit = scope, "connection refused: too many connections");
                        tasks.spawn(refuse(stream, settings.hostname.clone()));
                    }
                }
            }
        }
    }

    // New connections are refused from here on.
    drop(listener);
    tracing::info!(address = %local, sessions = tasks.len(), "SMTP server shutting down");
    // Sends can only fail when no session is left to hear.
    let _ = stop_tx.send(true);
    let drained = tokio::time::timeout(settings.shutdown_grace, async {
        while tasks.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tracing::warn!(
            sessions = tasks.len(),
            "shutdown grace over; cutting remaining connections"
        );
        tasks.abort_all();
        while tasks.join_next().await.is_some() {}
    }
    tracing::info!(address = %local, "SMTP server stopped");
    Ok(())
}

/// Tells a client over the limits so, and closes.
async fn refuse(mut stream: TcpStream, hostname: String) {
    let reply = Reply::new(421, "4.7.0", format!("{hostname} Too many connections")).to_bytes();
    count_replies(&reply);
    let _ = tokio::time::timeout(REFUSAL_WRITE_TIMEOUT, async {
        stream.write_all(&reply).await?;
        stream.shutdown().await
    })
    .await;
}

/// One client, from accept to close.
async fn connection<H: Handler>(
    stream: TcpStream,
    peer: SocketAddr,
    settings: Arc<Settings>,
    handler: Arc<H>,
    mut stop: watch::Receiver<bool>,
    permit: Permit,
) {
    tracing::info!(peer = %peer, "connection opened");
    let _open = OpenSession::new();
    let _ = stream.set_nodelay(true);
    let mut session = Session::new(Instant::now(), Arc::clone(&settings), peer);
    let mut driver = Driver {
        session: &mut session,
        handler: &*handler,
        stop: &mut stop,
        stop_seen: false,
        write_timeout: settings.command_timeout,
        buf: vec![0; READ_CHUNK],
    };
    let result = match driver.run(stream).await {
        Ok(Outcome::Closed(stream)) => {
            drop(permit);
            drop(stream);
            Ok(())
        }
        Ok(Outcome::StartTls(stream)) => match &settings.tls {
            Some(config) => {
                let acceptor = tokio_rustls::TlsAcceptor::from(Arc::clone(config));
                match tokio::time::timeout(settings.command_timeout, acceptor.accept(stream)).await
                {
                    Ok(Ok(tls)) => {
                        tracing::debug!(peer = %peer, "TLS established");
                        driver.session.tls_started(Instant::now());
                        match driver.run(tls).await {
                            Ok(Outcome::Closed(stream)) => {
                                drop(permit);
                                drop(stream);
                                Ok(())
                            }
                            // The session never asks for TLS twice.
                            Ok(Outcome::StartTls(_)) => Ok(()),
                            Err(e) => Err(e),
                        }
                    }
                    Ok(Err(e)) => Err(e),
                    Err(_) => Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        "TLS handshake timed out",
                    )),
                }
            }
            // The session offers STARTTLS only with a configuration.
            None => Ok(()),
        },
        Err(e) => Err(e),
    };
    match result {
        Ok(()) => tracing::info!(peer = %peer, "connection closed"),
        Err(e) => tracing::info!(peer = %peer, error = %e, "connection closed"),
    }
}

/// How a driver run ended.
enum Outcome<S> {
    /// The session is over (or the client went away).
    Closed(S),
    /// The session asked for TLS; its `220` has been written.
    StartTls(S),
}

/// Moves bytes between a stream and a session, and events to the handler.
struct Driver<'a, H> {
    session: &'a mut Session,
    handler: &'a H,
    stop: &'a mut watch::Receiver<bool>,
    stop_seen: bool,
    write_timeout: Duration,
    buf: Vec<u8>,
}

impl<H: Handler> Driver<'_, H> {
    async fn run<S>(&mut self, mut stream: S) -> io::Result<Outcome<S>>
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        loop {
            if !self.stop_seen && *self.stop.borrow_and_update() {
                self.stop_seen = true;
                self.session.handle_shutdown(Instant::now());
            }
            let mut wrote = false;
            while let Some(bytes) = self.session.poll_reply() {
                count_replies(&bytes);
                self.timed(stream.write_all(&bytes)).await?;
                wrote = true;
            }
            if wrote {
                self.timed(stream.flush()).await?;
            }
            if self.session.is_closed() {
                let _ = self.timed(stream.shutdown()).await;
                return Ok(Outcome::Closed(stream));
            }
            if let Some(event) = self.session.poll_event() {
                match event {
                    Event::Authenticate { user, password } => {
                        let ok = self.handler.authenticate(&user, &password).await;
                        self.session.handle_auth(Instant::now(), ok);
                    }
                    Event::Message { envelope, data } => {
                        let reply = self.handler.message(envelope, data).await;
                        self.session.handle_verdict(Instant::now(), reply);
                    }
                    Event::StartTls => return Ok(Outcome::StartTls(stream)),
                }
                continue;
            }
            let deadline = self.session.poll_timeout();
            let sleep = async move {
                match deadline {
                    Some(at) => tokio::time::sleep_until(at.into()).await,
                    None => std::future::pending().await,
                }
            };
            let stop_seen = self.stop_seen;
            tokio::select! {
                read = stream.read(&mut self.buf) => {
                    let n = read?;
                    if n == 0 {
                        return Ok(Outcome::Closed(stream));
                    }
                    self.session.handle_input(Instant::now(), &self.buf[..n]);
                }
                () = sleep => self.session.handle_timeout(Instant::now()),
                changed = self.stop.changed(), if !stop_seen => {
                    // A closed channel means the server is gone: stop as well.
                    let _ = changed;
                    self.stop_seen = true;
                    self.session.handle_shutdown(Instant::now());
                }
            }
        }
    }

    async fn timed<T>(&self, io: impl Future<Output = io::Result<T>>) -> io::Result<T> {
        tokio::time::timeout(self.write_timeout, io)
            .await
            .unwrap_or_else(|_| Err(io::Error::new(io::ErrorKind::TimedOut, "write timed out")))
    }
}

/// An open session in the metrics, until dropped (however the task ends).
struct OpenSession;

impl OpenSession {
    fn new() -> OpenSession {
        metrics::counter!("hallpass_smtp_sessions_total").increment(1);
        metrics::gauge!("hallpass_smtp_sessions").increment(1.0);
        OpenSession
    }
}

impl Drop for OpenSession {
    fn drop(&mut self) {
        metrics::gauge!("hallpass_smtp_sessions").decrement(1.0);
    }
}

/// The codes of the complete replies in `bytes` (one or more replies, each
/// of one or more `CODE-text` lines ending with a `CODE text` line).
fn reply_codes(bytes: &[u8]) -> impl Iterator<Item = &str> {
    bytes.split(|&b| b == b'\n').filter_map(|line| {
        let code = line.get(..3)?;
        let last = matches!(line.get(3), None | Some(b' ' | b'\r'));
        (last && code.iter().all(u8::is_ascii_digit))
            .then(|| std::str::from_utf8(code).ok())
            .flatten()
    })
}

/// Counts the replies in `bytes` by code.
fn count_replies(bytes: &[u8]) {
    for code in reply_codes(bytes) {
        metrics::counter!("hallpass_smtp_replies_total", "code" => code.to_string()).increment(1);
    }
}

/// Counts connections, in total and per client address.
#[derive(Debug)]
struct Limits {
    max_total: usize,
    max_per_client: usize,
    counts: Mutex<(usize, HashMap<IpAddr, usize>)>,
}

/// A connection slot, given back when dropped.
#[derive(Debug)]
struct Permit {
    limits: Arc<Limits>,
    ip: IpAddr,
}

impl Limits {
    fn new(max_total: usize, max_per_client: usize) -> Limits {
        Limits {
            max_total,
            max_per_client,
            counts: Mutex::new((0, HashMap::new())),
        }
    }

    /// A slot for a client, or which limit is reached.
    fn acquire(self: &Arc<Self>, ip: IpAddr) -> Result<Permit, &'static str> {
        let ip = ip.to_canonical();
        let mut counts = self.counts.lock().unwrap_or_else(PoisonError::into_inner);
        let (total, per_client) = &mut *counts;
        if *total >= self.max_total {
            return Err("total");
        }
        let mine = per_client.entry(ip).or_insert(0);
        if *mine >= self.max_per_client {
            return Err("per client");
        }
        *mine += 1;
        *total += 1;
        Ok(Permit {
            limits: Arc::clone(self),
            ip,
        })
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        let mut counts = self
            .limits
            .counts
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let (total, per_client) = &mut *counts;
        *total = total.saturating_sub(1);
        if let Some(mine) = per_client.get_mut(&self.ip) {
            *mine = mine.saturating_sub(1);
            if *mine == 0 {
                per_client.remove(&self.ip);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{Limits, reply_codes};
    use std::sync::Arc;

    #[test]
    fn reply_codes_counts_each_reply_once() {
        let bytes = b"250-relay.example.org\r\n250-SIZE 1000\r\n250 SMTPUTF8\r\n\
                      550 5.7.1 refused\r\n354 go ahead\r\n221 2.0.0 bye\r\n";
        let codes: Vec<&str> = reply_codes(bytes).collect();
        assert_eq!(codes, ["250", "550", "354", "221"]);
        assert_eq!(reply_codes(b"").count(), 0);
    }

    #[test]
    fn limits_count_per_client_and_in_total_and_free_on_drop() {
        let limits = Arc::new(Limits::new(3, 2));
        let a = "192.0.2.1".parse().unwrap();
        let b = "192.0.2.2".parse().unwrap();
        let mapped_a = "::ffff:192.0.2.1".parse().unwrap();
        let p1 = limits.acquire(a).unwrap();
        let _p2 = limits.acquire(mapped_a).unwrap();
        assert_eq!(limits.acquire(a).unwrap_err(), "per client");
        let _p3 = limits.acquire(b).unwrap();
        assert_eq!(limits.acquire(b).unwrap_err(), "total");
        drop(p1);
        let _p4 = limits.acquire(a).unwrap();
        assert_eq!(limits.counts.lock().unwrap().0, 3);
    }
}
