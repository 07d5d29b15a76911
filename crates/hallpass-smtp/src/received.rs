//! The `Received:` trace header (RFC 5321 4.4, protocol names of RFC 3848 and
//! RFC 6531).

use std::net::IpAddr;

use crate::Envelope;

/// Longest line we aim for (RFC 5322 2.1.1 recommends 78 characters).
const FOLD_AT: usize = 78;

/// `Received:` header for a message (RFC 5321 4.4): from HELO (rDNS not
/// looked up) [peer ip], by hostname (hallpass), with
/// ESMTP/ESMTPS/ESMTPA/ESMTPSA (UTF8SMTP… when the client asked for
/// SMTPUTF8, as RFC 6531 says), id ID, for \<rcpt\> when there is exactly
/// one recipient; `; ` and the RFC 5322 date (UTC, +0000). Folded before 78
/// columns where the parts allow. Ends with CRLF.
pub fn received_header(env: &Envelope, hostname: &str, id: &str, unix_secs: i64) -> String {
    let ip = match env.peer.ip() {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => v4.to_string(),
            None => format!("IPv6:{v6}"),
        },
        IpAddr::V4(v4) => v4.to_string(),
    };
    let helo = sanitize(&env.helo);
    let helo = if helo.is_empty() {
        "unknown".into()
    } else {
        helo
    };
    let base = if env.smtputf8 { "UTF8SMTP" } else { "ESMTP" };
    let protocol = format!(
        "{base}{}{}",
        if env.tls { "S" } else { "" },
        if env.authenticated.is_some() { "A" } else { "" }
    );

    let date = rfc5322_date(unix_secs);
    let mut clauses = vec![
        format!("from {helo} ([{ip}])"),
        format!("by {} (hallpass)", sanitize(hostname)),
        format!("with {protocol}"),
        format!("id {}", sanitize(id)),
    ];
    match env.rcpt_to.as_slice() {
        [one] => clauses.push(format!("for <{}>;", sanitize(one))),
        _ => {
            if let Some(last) = clauses.last_mut() {
                last.push(';');
            }
        }
    }
    clauses.push(date);
    fold("Received:", &clauses)
}

/// Keeps a client-supplied word printable and free of what would change the
/// header's structure (spaces, comments, the `;` before the date).
fn sanitize(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_control() || c.is_whitespace() || matches!(c, '(' | ')' | ';' | '\\' | '"') {
                '_'
            } else {
                c
            }
        })
        .collect()
}

/// Joins clauses after `name`, starting a continuation line (CRLF TAB) where a
/// clause would pass the fold column; a clause too long for any line is split
/// at its spaces.
fn fold(name: &str, clauses: &[String]) -> String {
    let mut out = String::from(name);
    let mut col = name.len();
    for clause in clauses {
        if col + 1 + clause.len() <= FOLD_AT {
            out.push(' ');
            out.push_str(clause);
            col += 1 + clause.len();
            continue;
        }
        // Continuation lines start with a TAB, counted as one column.
        if clause.len() < FOLD_AT {
            out.push_str("\r\n\t");
            out.push_str(clause);
            col = 1 + clause.len();
            continue;
        }
        for word in clause.split(' ') {
            if col > 1 && col + 1 + word.len() > FOLD_AT {
                out.push_str("\r\n\t");
                col = 1;
            } else {
                out.push(' ');
                col += 1;
            }
            out.push_str(word);
            col += word.len();
        }
    }
    out.push_str("\r\n");
    out
}

/// `Mon, 23 Nov 2026 09:14:02 +0000`.
fn rfc5322_date(unix_secs: i64) -> String {
    const DAYS: [&str; 7] = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let days = unix_secs.div_euclid(86_400);
    let secs = unix_secs.rem_euclid(86_400);
    let (y, m, d) = hallpass_core::date::civil_from_days(days);
    // 1970-01-01 was a Thursday.
    let weekday = DAYS[(days + 4).rem_euclid(7) as usize];
    format!(
        "{weekday}, {d} {} {y:04} {:02}:{:02}:{:02} +0000",
        MONTHS[usize::from(m.clamp(1, 12)) - 1],
        secs / 3600,
        secs % 3600 / 60,
        secs % 60
    )
}

#[cfg(test)]
mod tests {
    use super::{received_header, rfc5322_date};
    use crate::Envelope;

    fn envelope(rcpts: &[&str]) -> Envelope {
        Envelope {
            peer: "192.0.2.25:40000".parse().unwrap(),
            helo: "laptop.lumen.sch.uk".into(),
            mail_from: "teacher@lumen.sch.uk".into(),
            rcpt_to: rcpts.iter().map(|s| s.to_string()).collect(),
            authenticated: None,
            tls: false,
            smtputf8: false,
            eight_bit: false,
        }
    }

    #[test]
    fn dates_are_rfc_5322_in_utc() {
        assert_eq!(rfc5322_date(0), "Thu, 1 Jan 1970 00:00:00 +0000");
        // 2026-11-23 09:14:02 UTC
        assert_eq!(
            rfc5322_date(1_795_425_242),
            "Mon, 23 Nov 2026 09:14:02 +0000"
        );
        assert_eq!(rfc5322_date(951_782_400), "Tue, 29 Feb 2000 00:00:00 +0000");
    }

    #[test]
    fn one_recipient_plain_esmtp() {
        let h = received_header(
            &envelope(&["parent@example.com"]),
            "relay.lumen.sch.uk",
            "01JABC",
            1_795_425_242,
        );
        assert_eq!(
            h,
            "Received: from laptop.lumen.sch.uk ([192.0.2.25])\r\n\
             \tby relay.lumen.sch.uk (hallpass) with ESMTP id 01JABC\r\n\
             \tfor <parent@example.com>; Mon, 23 Nov 2026 09:14:02 +0000\r\n"
        );
    }

    #[test]
    fn protocol_names_follow_tls_and_auth() {
        let mut env = envelope(&["a@example.com", "b@example.org"]);
        let with = |env: &Envelope| {
            let h = received_header(env, "relay.lumen.sch.uk", "X1", 0).replace("\r\n\t", " ");
            h.split(" with ")
                .nth(1)
                .unwrap()
                .split(' ')
                .next()
                .unwrap()
                .to_string()
        };
        assert_eq!(with(&env), "ESMTP");
        env.tls = true;
        assert_eq!(with(&env), "ESMTPS");
        env.authenticated = Some("teacher".into());
        assert_eq!(with(&env), "ESMTPSA");
        env.tls = false;
        assert_eq!(with(&env), "ESMTPA");
        env.smtputf8 = true;
        assert_eq!(with(&env), "UTF8SMTPA");
        let h = received_header(&env, "relay.lumen.sch.uk", "X1", 0);
        assert!(!h.contains(" for "), "{h}");
        assert!(h.contains("id X1;"), "{h}");
    }

    #[test]
    fn lines_stay_under_78_columns_and_hostile_helo_is_neutralised() {
        let mut env = envelope(&["someone.with.a.long.name@a-long-subdomain.example.com"]);
        env.helo = "evil;(x)\r\nInjected: yes".into();
        env.peer = "[2001:db8::1]:25".parse().unwrap();
        let h = received_header(&env, "relay.lumen.sch.uk", "01JABCDEFGHJKMNPQRSTVWXYZ0", 0);
        assert!(h.ends_with("\r\n"));
        for line in h.trim_end().split("\r\n") {
            assert!(line.len() <= 78, "{line:?} in {h}");
        }
        assert!(!h.contains("Injected: yes"), "{h}");
        assert!(
            h.contains("from evil__x___Injected:_yes ([IPv6:2001:db8::1])"),
            "{h}"
        );
        assert_eq!(h.matches(';').count(), 1, "{h}");
    }
}
