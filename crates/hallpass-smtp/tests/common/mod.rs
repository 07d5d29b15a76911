//! Helpers shared by the session and server tests.
// Each test binary uses its own part of this module.
#![allow(dead_code)]

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use hallpass_smtp::{Settings, load_tls};

/// The relay's name in every test.
pub const HOST: &str = "relay.lumen.sch.uk";

/// Settings for the school: internal domain lumen.sch.uk, the documentation
/// network 192.0.2.0/24 may relay.
pub fn settings() -> Settings {
    let mut s = Settings::new(HOST.into());
    s.internal_domains = vec!["lumen.sch.uk".into()];
    s.allowed_networks = vec!["192.0.2.0/24".parse().unwrap()];
    s
}

/// Standard base64 with padding, for SASL responses.
pub fn b64(input: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in input.chunks(3) {
        let n = chunk.len();
        let v = (u32::from(chunk[0]) << 16)
            | (u32::from(*chunk.get(1).unwrap_or(&0)) << 8)
            | u32::from(*chunk.get(2).unwrap_or(&0));
        for i in 0..4 {
            if i <= n {
                out.push(ALPHABET[((v >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// A fresh, empty folder under the system's temp dir.
pub fn temp_dir(name: &str) -> PathBuf {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let dir = std::env::temp_dir().join(format!(
        "hallpass-smtp-{}-{}-{name}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A self-signed certificate for `localhost`, written as PEM files and read
/// back through `load_tls`; also returns the certificate's DER for a client
/// to trust.
pub fn tls() -> (Arc<rustls::ServerConfig>, Vec<u8>) {
    let key = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    let dir = temp_dir("tls");
    let cert_path = dir.join("cert.pem");
    let key_path = dir.join("key.pem");
    std::fs::write(&cert_path, key.cert.pem()).unwrap();
    std::fs::write(&key_path, key.signing_key.serialize_pem()).unwrap();
    let config = load_tls(&cert_path, &key_path).unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
    (config, key.cert.der().to_vec())
}
