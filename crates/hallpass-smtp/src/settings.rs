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
    load_tls_reloadable(cert_pem, key_pem).map(|(config, _)| config)
}

/// As [`load_tls`], with a handle that reads the two files again ([`Certificate::reload`]) so
/// that a renewed certificate is used from the next handshake on, without a restart.
pub fn load_tls_reloadable(
    cert_pem: &Path,
    key_pem: &Path,
) -> Result<(Arc<rustls::ServerConfig>, Arc<Certificate>), SmtpError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let certificate = Arc::new(Certificate {
        cert_pem: cert_pem.to_path_buf(),
        key_pem: key_pem.to_path_buf(),
        current: std::sync::RwLock::new(certified_key(cert_pem, key_pem, &provider)?),
        provider: provider.clone(),
    });
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|source| SmtpError::Tls {
            cert: cert_pem.to_path_buf(),
            key: key_pem.to_path_buf(),
            source,
        })?
        .with_no_client_auth()
        .with_cert_resolver(certificate.clone());
    Ok((Arc::new(config), certificate))
}

/// The certificate and key a TLS listener presents, read again on [`Certificate::reload`].
#[derive(Debug)]
pub struct Certificate {
    cert_pem: std::path::PathBuf,
    key_pem: std::path::PathBuf,
    current: std::sync::RwLock<Arc<rustls::sign::CertifiedKey>>,
    provider: Arc<rustls::crypto::CryptoProvider>,
}

impl Certificate {
    /// Reads the certificate and key files again. On any problem the one in use stays and the
    /// problem is returned (a missing file, a key that does not match the certificate…).
    pub fn reload(&self) -> Result<(), SmtpError> {
        let fresh = certified_key(&self.cert_pem, &self.key_pem, &self.provider)?;
        *self
            .current
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = fresh;
        Ok(())
    }

    /// The DER of the certificate in use (its first, end-entity certificate).
    pub fn end_entity_der(&self) -> Vec<u8> {
        let current = self
            .current
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        current.cert.first().map(|c| c.to_vec()).unwrap_or_default()
    }
}

impl rustls::server::ResolvesServerCert for Certificate {
    fn resolve(
        &self,
        _hello: rustls::server::ClientHello<'_>,
    ) -> Option<Arc<rustls::sign::CertifiedKey>> {
        Some(
            self.current
                .read()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .clone(),
        )
    }
}

/// Reads and checks one certificate chain and its private key.
fn certified_key(
    cert_pem: &Path,
    key_pem: &Path,
    provider: &rustls::crypto::CryptoProvider,
) -> Result<Arc<rustls::sign::CertifiedKey>, SmtpError> {
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
    let key = rustls::sign::CertifiedKey::from_der(certs, key, provider).map_err(tls_error)?;
    Ok(Arc::new(key))
}
