//! What a session and the server need to know, and loading the TLS certificate.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use hallpass_core::config::Cidr;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// Settings of the SMTP server, shared by every session.
#[derive(Debug, Clone)]
pub struct Settings {
    /// This relay's name: in the greeting, the EHLO reply and `Received:`.
    pub hostname: String,
    /// Largest message accepted, in bytes; advertised as `SIZE`. A larger
    /// `MAIL FROM … SIZE=` or DATA gets `552 5.3.4`.
    pub max_message_size: u64,
    /// Recipients per transaction; more get `452 4.5.3`.
    pub max_recipients: usize,
    /// Longest command line (and SASL response line), CRLF included; longer
    /// ones get `500 5.5.2` and are discarded without being buffered.
    pub max_line_length: usize,
    /// Idle time allowed while waiting for a command; then `421 4.4.2`.
    pub command_timeout: Duration,
    /// Idle time allowed between chunks of message data; then `421 4.4.2`.
    pub data_timeout: Duration,
    /// Connections at once, in total; more get `421 4.7.0` at connect.
    pub max_connections: usize,
    /// Connections at once from one client IP address; more get `421 4.7.0`.
    pub max_connections_per_client: usize,
    /// Rejected commands allowed in one session; then `421 4.7.0` and close.
    pub max_bad_commands: u32,
    /// Clients that may relay without AUTH.
    pub allowed_networks: Vec<Cidr>,
    /// The organisation's domains, lower-case; subdomains count as internal.
    pub internal_domains: Vec<String>,
    /// When true, `MAIL FROM` must be in an internal domain (or `<>`).
    pub restrict_senders: bool,
    /// STARTTLS is offered when set.
    pub tls: Option<Arc<rustls::ServerConfig>>,
    /// How long transactions in flight may go on after shutdown begins.
    pub shutdown_grace: Duration,
}

impl Settings {
    /// Defaults: 35 MB messages, 1000 recipients, 4096-byte lines, 300 s
    /// command and 180 s data timeouts, 200 connections (20 per client), 10
    /// bad commands, senders restricted, 30 s shutdown grace; no allowed
    /// networks, no internal domains and no TLS.
    pub fn new(hostname: String) -> Settings {
        Settings {
            hostname,
            max_message_size: 36_700_160,
            max_recipients: 1000,
            max_line_length: 4096,
            command_timeout: Duration::from_secs(300),
            data_timeout: Duration::from_secs(180),
            max_connections: 200,
            max_connections_per_client: 20,
            max_bad_commands: 10,
            allowed_networks: Vec::new(),
            internal_domains: Vec::new(),
            restrict_senders: true,
            tls: None,
            shutdown_grace: Duration::from_secs(30),
        }
    }
}

/// Errors of this crate.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SmtpError {
    /// A certificate or key file could not be read.
    #[error("cannot read {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A file is not the PEM it should be.
    #[error("{}: {what}", path.display())]
    Pem {
        /// The file.
        path: PathBuf,
        /// What is wrong, and what was expected.
        what: String,
    },
    /// The certificate and key were read but rustls refused them.
    #[error(
        "the certificate {} and key {} cannot be used together: {source}",
        cert.display(),
        key.display()
    )]
    Tls {
        /// The certificate file.
        cert: PathBuf,
        /// The key file.
        key: PathBuf,
        /// rustls's reason.
        source: rustls::Error,
    },
}

/// Reads a PEM certificate chain and a PEM private key (PKCS#8, PKCS#1 or
/// SEC1) into a server configuration for STARTTLS, with the ring provider and
/// TLS 1.2 and 1.3.
pub fn load_tls(cert_pem: &Path, key_pem: &Path) -> Result<Arc<rustls::ServerConfig>, SmtpError> {
    let read = |path: &Path| {
        std::fs::read(path).map_err(|source| SmtpError::Read {
            path: path.to_path_buf(),
            source,
        })
    };
    let pem_error = |path: &Path, what: String| SmtpError::Pem {
        path: path.to_path_buf(),
        what,
    };

    let cert_bytes = read(cert_pem)?;
    let certs = CertificateDer::pem_slice_iter(&cert_bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| pem_error(cert_pem, format!("not a valid PEM certificate file: {e}")))?;
    if certs.is_empty() {
        return Err(pem_error(
            cert_pem,
            "no certificate found (expected a PEM file with -----BEGIN CERTIFICATE-----)".into(),
        ));
    }

    let key_bytes = read(key_pem)?;
    let key = PrivateKeyDer::from_pem_slice(&key_bytes).map_err(|e| {
        pem_error(
            key_pem,
            format!(
                "no usable private key ({e}); expected a PEM file with -----BEGIN PRIVATE KEY----- \
                 (or RSA / EC PRIVATE KEY)"
            ),
        )
    })?;

    let tls_error = |source| SmtpError::Tls {
        cert: cert_pem.to_path_buf(),
        key: key_pem.to_path_buf(),
        source,
    };
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(tls_error)?
    .with_no_client_auth()
    .with_single_cert(certs, key)
    .map_err(tls_error)?;
    Ok(Arc::new(config))
}
