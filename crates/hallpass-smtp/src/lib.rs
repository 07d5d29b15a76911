//! hallpass's SMTP server side: what staff mail clients and the school's mail
//! server talk to.
//!
//! - [`Session`]: one SMTP session as a sans-IO state machine (no tokio, no
//!   clock): bytes and `now` in; replies, [`Event`]s and a timeout out. It
//!   parses commands with smtp-proto's request parser, writes replies by hand
//!   ([`Reply`]), receives DATA itself (dot-unstuffing, only `<CRLF>.<CRLF>`
//!   ends it, bare CR/LF refused against SMTP smuggling), and enforces relay
//!   control, sender restriction and every limit of [`Settings`].
//! - [`serve`]: the thin tokio shell, one task per connection, with connection
//!   limits, STARTTLS (tokio-rustls) and graceful shutdown. The relay supplies
//!   a [`Handler`]: password checks and the verdict on each message.
//! - [`received_header`]: the `Received:` trace line for a message.
//!
//! ```no_run
//! use std::sync::Arc;
//! use hallpass_smtp::{Envelope, Handler, Reply, Settings, serve};
//!
//! struct Relay;
//! impl Handler for Relay {
//!     async fn authenticate(&self, _user: &str, _password: &str) -> bool {
//!         false
//!     }
//!     async fn message(&self, _envelope: Envelope, _data: Vec<u8>) -> Reply {
//!         Reply::new(250, "2.0.0", "Ok: queued as 01JEXAMPLE")
//!     }
//! }
//!
//! # async fn run() -> std::io::Result<()> {
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:2525").await?;
//! let mut settings = Settings::new("relay.lumen.sch.uk".into());
//! settings.allowed_networks = vec!["127.0.0.0/8".parse().unwrap()];
//! settings.internal_domains = vec!["lumen.sch.uk".into()];
//! serve(listener, Arc::new(settings), Arc::new(Relay), async {
//!     let _ = tokio::signal::ctrl_c().await;
//! })
//! .await
//! # }
//! ```
#![deny(missing_docs)]

mod base64;
mod data;
mod received;
mod reply;
mod server;
mod session;
mod settings;

pub use received::received_header;
pub use reply::Reply;
pub use server::{Handler, serve};
pub use session::{Envelope, Event, Session};
pub use settings::{Certificate, Settings, SmtpError, load_tls, load_tls_reloadable};
