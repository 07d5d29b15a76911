//! The console over HTTPS, end to end: the real `hallpass serve` with `[console] tls = true`
//! and the relay's certificate (made by rcgen for `localhost`), a DPO who logs in over HTTPS and
//! gets a `Secure` session cookie and `Strict-Transport-Security`, the client's address in the
//! audit trail as over plain HTTP, and nothing served in plain text on that port. A decision's
//! JSON answer carries the message's Subject masked by the real engine. The NHS number is
//! generated (999 range, valid mod 11).

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::Duration;

use common::*;
use rustls::{ClientConnection, StreamOwned};

/// One HTTP/1.1 request over TLS, trusting only `cert_der` (issued for `localhost`); returns
/// (status, head, body).
fn https(
    addr: SocketAddr,
    cert_der: &[u8],
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> (u16, String, String) {
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
    let sock = TcpStream::connect(addr).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let mut tls = StreamOwned::new(conn, sock);
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    req.push_str(body);
    tls.write_all(req.as_bytes()).expect("a TLS connection");
    let mut resp = Vec::new();
    let mut buf = [0u8; 16 * 1024];
    loop {
        match tls.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => resp.extend_from_slice(&buf[..n]),
            // A peer that closes without close_notify: what came before is the answer.
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => break,
            Err(e) => panic!("reading the answer to {method} {path}: {e}"),
        }
    }
    let resp = String::from_utf8(resp).unwrap();
    let (head, body) = resp.split_once("\r\n\r\n").unwrap_or((&resp, ""));
    let status = head.get(9..12).and_then(|c| c.parse().ok()).unwrap_or(0);
    (status, head.to_string(), body.to_string())
}

/// The values of a header in `head` (case-insensitive name).
fn header_values<'a>(head: &'a str, name: &str) -> Vec<&'a str> {
    head.lines()
        .filter_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.trim().eq_ignore_ascii_case(name).then(|| v.trim())
        })
        .collect()
}

#[test]
fn the_console_over_https_gives_secure_cookies_and_serves_nothing_in_plain_text() {
    let dir = temp_dir("console-tls");
    let (_, cert_der) = certificate(&dir);
    let extra = format!(
        "[smtp]\ntls_cert = \"{}\"\ntls_key = \"{}\"\n[console]\ntls = true\n",
        dir.join("cert.pem").display(),
        dir.join("key.pem").display()
    );
    let relay = Relay::start(&dir, "dir:outbox", &extra);
    let line = format!("console listening on https://{}/", relay.console);
    eventually("the console to say it is on HTTPS", || {
        relay.log.lock().unwrap().contains(&line).then_some(())
    });

    // A held message whose Subject carries a generated NHS number.
    let mut rng = hallpass_fixtures::Rng::new(6);
    let nhs = hallpass_fixtures::nhs_number(&mut rng);
    let digits: String = nhs.chars().filter(char::is_ascii_digit).collect();
    let data = format!(
        "From: Teacher <teacher@lumen.sch.uk>\r\nTo: parent@example.com\r\n\
         Subject: Referral NHS number {nhs}\r\nMessage-ID: <referral@lumen.sch.uk>\r\n\
         Date: Mon, 23 Nov 2026 09:00:00 +0000\r\n\r\n\
         Dear parent,\r\nThe referral gives NHS number {nhs} for Sam.\r\n"
    )
    .into_bytes();
    send_to_parent(relay.addr, &data);
    let held = relay.held();
    assert_eq!(held.len(), 1, "{held:?}");
    let id = held[0]["id"].as_str().unwrap().to_string();

    relay.add_user("dpo", "dpo", "a long dpo password");

    // The login page and a login over HTTPS.
    let (status, head, body) = https(relay.console, &cert_der, "GET", "/login", &[], "");
    assert_eq!(status, 200, "{head}\n{body}");
    assert_eq!(
        header_values(&head, "strict-transport-security"),
        vec!["max-age=31536000"],
        "{head}"
    );
    let (status, head, _) = https(
        relay.console,
        &cert_der,
        "POST",
        "/login",
        &[("Content-Type", "application/x-www-form-urlencoded")],
        "username=dpo&password=a+long+dpo+password",
    );
    assert_eq!(status, 303, "{head}");
    let set_cookie = header_values(&head, "set-cookie")
        .into_iter()
        .find(|v| v.starts_with("hallpass_session=") && !v.contains("Max-Age=0"))
        .unwrap_or_else(|| panic!("a session cookie: {head}"))
        .to_string();
    let attrs: Vec<&str> = set_cookie.split(';').map(str::trim).collect();
    for a in ["Secure", "HttpOnly", "SameSite=Strict"] {
        assert!(attrs.contains(&a), "{a} missing: {set_cookie}");
    }
    let cookie = attrs[0].to_string();

    // The session works over HTTPS; the client's address is in the audit trail.
    let (status, head, body) = https(
        relay.console,
        &cert_der,
        "GET",
        "/held",
        &[("Cookie", &cookie)],
        "",
    );
    assert_eq!(status, 200, "{head}");
    assert!(body.contains(&format!("href=\"/held/{id}\"")), "{body}");
    let (status, _, body) = https(
        relay.console,
        &cert_der,
        "GET",
        "/api/audit?action=login",
        &[("Cookie", &cookie)],
        "",
    );
    assert_eq!(status, 200);
    let audit: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(audit[0]["actor"], "dpo", "{audit}");
    assert_eq!(audit[0]["address"], "127.0.0.1", "{audit}");

    // A release's answer: the Subject masked by the engine, as on the message's page.
    let csrf = {
        let (_, _, page) = https(
            relay.console,
            &cert_der,
            "GET",
            &format!("/held/{id}"),
            &[("Cookie", &cookie)],
            "",
        );
        let at = page.find("name=\"csrf\" value=\"").expect("a CSRF field") + 19;
        page[at..at + page[at..].find('"').unwrap()].to_string()
    };
    let (status, head, body) = https(
        relay.console,
        &cert_der,
        "POST",
        &format!("/api/held/{id}/release"),
        &[
            ("Cookie", &cookie),
            ("X-CSRF-Token", &csrf),
            ("Content-Type", "application/json"),
        ],
        "{}",
    );
    assert_eq!(status, 200, "{head}\n{body}");
    for form in [nhs.clone(), digits.clone()] {
        assert!(!body.contains(&form), "the NHS number unmasked: {body}");
    }
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["status"], "released");
    let header = |name: &str| {
        v["headers"]
            .as_array()
            .unwrap()
            .iter()
            .find(|h| h["name"] == name)
            .unwrap_or_else(|| panic!("no {name}: {v}"))["value"]
            .as_str()
            .unwrap()
            .to_string()
    };
    assert_eq!(
        header("Date"),
        "2026-11-23T09:00:00Z",
        "a time, shown as it is"
    );
    let shown = header("Subject");
    assert!(shown.starts_with("Referral NHS number "), "{shown}");
    assert!(shown.ends_with(&digits[7..]), "last three shown: {shown}");
    assert!(shown.contains('*'), "masked: {shown}");

    // Plain HTTP on the same port: no HTTP answer, the connection is closed.
    let mut plain = TcpStream::connect(relay.console).unwrap();
    plain
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    plain
        .write_all(b"GET /login HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut answer = Vec::new();
    let _ = plain.read_to_end(&mut answer);
    assert!(
        !String::from_utf8_lossy(&answer).contains("HTTP/1"),
        "plain HTTP was answered: {:?}",
        String::from_utf8_lossy(&answer)
    );
}
