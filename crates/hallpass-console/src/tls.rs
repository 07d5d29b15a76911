//! The console over HTTPS: a listener that hands axum only connections whose TLS handshake
//! finished. Handshakes run on their own tasks (a slow or silent client never holds up the
//! others), each within [`HANDSHAKE_LIMIT`], at most [`HANDSHAKES_AT_ONCE`] at a time. A client
//! that speaks plain HTTP to the port fails the handshake and is closed: nothing is served
//! without TLS there.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ConnectInfo;
use axum::extract::Request;
use axum::extract::connect_info::Connected;
use axum::http::{HeaderValue, header};
use axum::response::Response;
use axum::serve::{IncomingStream, Listener};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, mpsc};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;

/// Longest a client may take to finish its handshake.
const HANDSHAKE_LIMIT: Duration = Duration::from_secs(10);
/// Handshakes under way at once; further connections wait to be accepted.
const HANDSHAKES_AT_ONCE: usize = 256;
/// `Strict-Transport-Security` on every answer over HTTPS: a year, this host only (the
/// school's other hosts may not all have HTTPS).
const HSTS: &str = "max-age=31536000";

/// Connections whose handshake finished, as axum takes them.
pub(crate) struct TlsListener {
    ready: mpsc::Receiver<(TlsStream<TcpStream>, SocketAddr)>,
    local: SocketAddr,
}

impl TlsListener {
    /// Accepts on `tcp` and runs handshakes with `config` (HTTP/1.1 offered by ALPN) until the
    /// listener is dropped, which closes the port.
    pub(crate) fn new(
        tcp: TcpListener,
        config: Arc<rustls::ServerConfig>,
    ) -> std::io::Result<Self> {
        let local = tcp.local_addr()?;
        let mut config = (*config).clone();
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        let acceptor = TlsAcceptor::from(Arc::new(config));
        let (tx, ready) = mpsc::channel(64);
        tokio::spawn(accept_loop(tcp, acceptor, tx));
        Ok(TlsListener { ready, local })
    }
}

async fn accept_loop(
    tcp: TcpListener,
    acceptor: TlsAcceptor,
    tx: mpsc::Sender<(TlsStream<TcpStream>, SocketAddr)>,
) {
    let slots = Arc::new(Semaphore::new(HANDSHAKES_AT_ONCE));
    loop {
        let Ok(slot) = slots.clone().acquire_owned().await else {
            return;
        };
        let (stream, peer) = tokio::select! {
            () = tx.closed() => return,
            accepted = tcp.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of file descriptors and the like: wait, as axum's own listener does.
                    tracing::warn!(error = %e, "console: cannot accept a connection");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    continue;
                }
            },
        };
        let acceptor = acceptor.clone();
        let tx = tx.clone();
        tokio::spawn(async move {
            let _slot = slot;
            match tokio::time::timeout(HANDSHAKE_LIMIT, acceptor.accept(stream)).await {
                Ok(Ok(tls)) => {
                    let _ = tx.send((tls, peer)).await;
                }
                Ok(Err(e)) => tracing::debug!(%peer, error = %e, "console: TLS handshake failed"),
                Err(_) => tracing::debug!(%peer, "console: TLS handshake timed out"),
            }
        });
    }
}

impl Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.ready.recv().await {
            Some(c) => c,
            // The accept loop only ends when this listener is dropped.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<SocketAddr> {
        Ok(self.local)
    }
}

/// The peer's address of a TLS connection. axum's `ConnectInfo<SocketAddr>` is provided for its
/// own TCP listener only; [`peer_address`] turns this into it, so handlers see no difference.
#[derive(Debug, Clone, Copy)]
pub(crate) struct TlsPeer(SocketAddr);

impl Connected<IncomingStream<'_, TlsListener>> for TlsPeer {
    fn connect_info(stream: IncomingStream<'_, TlsListener>) -> Self {
        TlsPeer(*stream.remote_addr())
    }
}

/// Gives the handlers the client's address as `ConnectInfo<SocketAddr>`, as over plain HTTP.
pub(crate) async fn peer_address(mut req: Request) -> Request {
    if let Some(ConnectInfo(TlsPeer(a))) = req.extensions().get::<ConnectInfo<TlsPeer>>().copied() {
        req.extensions_mut().insert(ConnectInfo(a));
    }
    req
}

/// Tells browsers to come back over HTTPS only.
pub(crate) async fn hsts(mut response: Response) -> Response {
    response.headers_mut().insert(
        header::STRICT_TRANSPORT_SECURITY,
        HeaderValue::from_static(HSTS),
    );
    response
}
