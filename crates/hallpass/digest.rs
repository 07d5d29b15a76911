//! The daily digest to the DPO: what waits in the quarantine, each with a link to its page in
//! the console. Who, when, which rules and which kinds of data with their counts; never a
//! subject, a recipient's address or a value. The wording is `config/templates/digest.txt`.
//!
//! Once a day, from `[notifications] digest_hour` (UTC): the relay's worker calls [`maybe_send`]
//! on its housekeeping passes. The day is claimed in the store before anything is queued
//! (`Store::claim_day`), so a restart, or a second relay on the same store, does not send it
//! again; a relay started after the hour sends the day's digest at once. A day when nothing
//! waits is claimed too, and nothing is sent.

use hallpass_core::Config;
use hallpass_detect::DetectorSet;
use hallpass_engine::Engine;
use hallpass_store::{HeldFilter, HeldRecord, Spool, Store};
use mail_builder::MessageBuilder;
use mail_builder::headers::date::Date;
use mail_builder::headers::raw::Raw;

use crate::{clock, notify};

/// The store's key for the last day dealt with.
const KEY: &str = "digest_date";
/// Entries listed one by one; the rest are counted.
const LISTED: usize = 100;
/// Wait after a failure before trying again (the store or the spool may be full).
const RETRY_MS: i64 = 60_000;
const SHIPPED: &str = include_str!("../../config/templates/digest.txt");

/// What the worker remembers between passes, so most passes cost no query.
#[derive(Debug, Default)]
pub struct Progress {
    /// The UTC day (`YYYY-MM-DD`) already dealt with by this or another relay.
    done: Option<String>,
    /// No new attempt before this time after a failure.
    retry_after_ms: i64,
}

/// Sends today's digest if it is due and no one has sent it. Returns true when one was queued
/// (the caller wakes the delivery worker).
pub async fn maybe_send(
    engine: &Engine,
    store: &Store,
    spool: &Spool,
    hostname: &str,
    progress: &mut Progress,
) -> bool {
    let config = engine.config();
    let n = &config.notifications;
    let now = clock::now_ms();
    if n.digest_to.is_empty() || now < progress.retry_after_ms {
        return false;
    }
    let day = clock::rfc3339(now)[..10].to_string();
    let hour = now.rem_euclid(86_400_000) / 3_600_000;
    if progress.done.as_deref() == Some(day.as_str()) || hour < i64::from(n.digest_hour) {
        return false;
    }
    match send(engine, store, spool, hostname, &day, now).await {
        Ok(sent) => {
            progress.done = Some(day);
            sent
        }
        Err(e) => {
            progress.retry_after_ms = now + RETRY_MS;
            tracing::error!(error = %format!("{e:#}"), "cannot send the daily digest to the DPO; trying again in a minute");
            false
        }
    }
}

async fn send(
    engine: &Engine,
    store: &Store,
    spool: &Spool,
    hostname: &str,
    day: &str,
    now: i64,
) -> anyhow::Result<bool> {
    let config = engine.config();
    let previous = store.state_get(KEY).await?;
    if !store.claim_day(KEY, day).await? {
        tracing::info!(day, "daily digest: already sent today");
        return Ok(false);
    }
    let queued = async {
        let held = store
            .held_list(&HeldFilter {
                limit: 10_000,
                ..HeldFilter::default()
            })
            .await?;
        if held.is_empty() {
            return Ok::<_, anyhow::Error>(None);
        }
        let console = console_url(config, hostname);
        let bytes = render(config, engine.detectors(), &held, &console, now);
        notify::queue(store, spool, config.notifications.digest_to.clone(), &bytes).await?;
        Ok(Some(held.len()))
    }
    .await;
    match queued {
        Ok(Some(waiting)) => {
            tracing::info!(
                day,
                waiting,
                recipients = config.notifications.digest_to.len(),
                "daily digest: queued for the DPO"
            );
            Ok(true)
        }
        Ok(None) => {
            tracing::info!(day, "daily digest: nothing waits; none sent");
            Ok(false)
        }
        Err(e) => {
            if let Err(u) = store.unclaim_day(KEY, previous.as_deref()).await {
                tracing::error!(error = %u, "cannot give back the digest's day");
            }
            Err(e)
        }
    }
}

/// The console as the DPO's browser reaches it: `[console] public_url`, else made from
/// `[console] listen` (with this machine's name when it listens on every address).
pub fn console_url(config: &Config, hostname: &str) -> String {
    if let Some(u) = &config.console.public_url {
        return u.clone();
    }
    let listen = config.console.listen;
    let scheme = if config.console.tls.is_some() {
        "https"
    } else {
        "http"
    };
    if listen.ip().is_unspecified() {
        format!("{scheme}://{hostname}:{}", listen.port())
    } else {
        format!("{scheme}://{listen}")
    }
}

/// The whole email, from the school's template or the shipped one.
fn render(
    config: &Config,
    detectors: &DetectorSet,
    held: &[HeldRecord],
    console: &str,
    now: i64,
) -> Vec<u8> {
    let template = notify::load_template(config, "digest.txt", SHIPPED);
    let mut list: Vec<String> = held
        .iter()
        .take(LISTED)
        .map(|h| entry(detectors, h, console, now))
        .collect();
    if held.len() > LISTED {
        list.push(format!(
            "...and {} more, older: see the console.",
            held.len() - LISTED
        ));
    }
    let fill = |t: &str| {
        t.replace("{{count}}", &held.len().to_string())
            .replace("{{organisation}}", &config.organisation.name)
            .replace("{{list}}", &list.join("\n\n"))
            .replace("{{console}}", &format!("{console}/held"))
            .replace(
                "{{retention_days}}",
                &config.storage.held_retention_days.to_string(),
            )
    };
    let (head, body) = match template.split_once("\n\n") {
        Some((h, b)) if h.trim_start().starts_with("Subject:") => (h, b),
        _ => (
            "Subject: {{count}} email(s) waiting for your review",
            template.as_str(),
        ),
    };
    let title = notify::one_line(head.trim_start().trim_start_matches("Subject:").trim());
    let domain = config
        .organisation
        .postmaster
        .rsplit_once('@')
        .map_or("localhost", |(_, d)| d);
    let to: Vec<&str> = config
        .notifications
        .digest_to
        .iter()
        .map(String::as_str)
        .collect();
    MessageBuilder::new()
        .from((
            config.organisation.name.as_str(),
            config.organisation.postmaster.as_str(),
        ))
        .to(to)
        .subject(fill(&title))
        .date(Date::new(now.div_euclid(1000)))
        .message_id(format!("{}.digest@{domain}", hallpass_store::new_id()))
        .header("Auto-Submitted", Raw::new("auto-generated"))
        .header(
            "X-Hallpass-Digest",
            Raw::new(clock::rfc3339(now)[..10].to_string()),
        )
        .text_body(fill(body))
        .write_to_vec()
        .unwrap_or_default()
}

/// One held copy: when, from whom, to how many, why, what kinds of data, and its page.
fn entry(detectors: &DetectorSet, h: &HeldRecord, console: &str, now: i64) -> String {
    let when = clock::rfc3339(h.received_ms);
    let days = (now - h.received_ms).div_euclid(86_400_000);
    let age = match days {
        d if d < 1 => "today".to_string(),
        1 => "1 day ago".to_string(),
        d => format!("{d} days ago"),
    };
    let from = if h.from.is_empty() {
        "(no sender)".to_string()
    } else {
        notify::one_line(&h.from)
    };
    let mut kinds: Vec<(&str, u32)> = Vec::new();
    for f in &h.findings {
        match kinds.iter_mut().find(|(d, _)| *d == f.detector) {
            Some(k) => k.1 += f.count,
            None => kinds.push((f.detector.as_str(), f.count)),
        }
    }
    let found = if kinds.is_empty() {
        "no data found (held for the rules above)".to_string()
    } else {
        kinds
            .iter()
            .map(|(d, n)| format!("{} x{n}", notify::kind_name(detectors, d)))
            .collect::<Vec<_>>()
            .join(", ")
    };
    format!(
        "- Held {} {} UTC ({age}), from {from} to {} recipient(s)\n  Why: {}\n  Found: {found}\n  Open: {console}/held/{}",
        &when[..10],
        &when[11..16],
        h.rcpt.len(),
        if h.rules.is_empty() {
            "the school's rules".to_string()
        } else {
            h.rules.join(", ")
        },
        h.id
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use hallpass_store::{FindingRecord, HeldStatus};

    const T0: i64 = 1_795_425_242_000; // 2026-11-23T09:14:02Z

    fn held(id: &str, received_ms: i64) -> HeldRecord {
        HeldRecord {
            id: id.into(),
            received_ms,
            from: "teacher@lumen.sch.uk".into(),
            rcpt: vec!["parent@example.com".into(), "carer@example.com".into()],
            message_id: Some("secret-subject@lumen.sch.uk".into()),
            rules: vec!["personal_data_external".into()],
            findings: vec![
                FindingRecord {
                    detector: "uk_nhs_number".into(),
                    location: "attachment:class.xlsx".into(),
                    count: 28,
                    confidence: "high".into(),
                },
                FindingRecord {
                    detector: "uk_nhs_number".into(),
                    location: "body".into(),
                    count: 1,
                    confidence: "high".into(),
                },
                FindingRecord {
                    detector: "date_of_birth".into(),
                    location: "attachment:class.xlsx".into(),
                    count: 28,
                    confidence: "high".into(),
                },
            ],
            status: HeldStatus::Held,
            decided_by: None,
            decided_ms: None,
            reason: None,
            spool_id: id.into(),
            size: 1234,
        }
    }

    /// The text as a mail client shows it (quoted-printable decoded).
    fn shown(bytes: Vec<u8>) -> String {
        let s = String::from_utf8(bytes).unwrap().replace("=\r\n", "");
        let mut out = Vec::new();
        let b = s.as_bytes();
        let mut i = 0;
        while i < b.len() {
            match (b[i], s.get(i + 1..i + 3).map(|h| u8::from_str_radix(h, 16))) {
                (b'=', Some(Ok(v))) => {
                    out.push(v);
                    i += 3;
                }
                (c, _) => {
                    out.push(c);
                    i += 1;
                }
            }
        }
        String::from_utf8(out).unwrap()
    }

    fn config(extra: &str) -> Config {
        let src = format!(
            "[organisation]\nname = \"Lumen Learning Trust\"\ninternal_domains = [\"lumen.sch.uk\"]\n[notifications]\ndigest_to = [\"dpo@lumen.sch.uk\"]\ntemplates = \"/nonexistent\"\n{extra}"
        );
        Config::from_toml(std::path::Path::new("hallpass.toml"), &src).unwrap()
    }

    #[test]
    fn the_digest_lists_each_held_copy_with_its_link_and_no_addresses_of_recipients() {
        let c = config("");
        let out = shown(render(
            &c,
            &crate::notify::shipped_detectors(),
            &[held("01NEW", T0), held("01OLD", T0 - 3 * 86_400_000)],
            "https://hallpass.lumen.sch.uk",
            T0 + 3_600_000,
        ));
        assert!(
            out.contains("Subject: 2 email(s) from staff waiting for your review"),
            "{out}"
        );
        assert!(out.contains("To: <dpo@lumen.sch.uk>"), "{out}");
        assert!(out.contains("Auto-Submitted: auto-generated"), "{out}");
        assert!(
            out.contains(
                "- Held 2026-11-23 09:14 UTC (today), from teacher@lumen.sch.uk to 2 recipient(s)"
            ),
            "{out}"
        );
        assert!(out.contains("(3 days ago)"), "{out}");
        assert!(out.contains("Why: personal_data_external"), "{out}");
        assert!(
            out.contains("Found: NHS numbers x29, dates of birth x28"),
            "{out}"
        );
        assert!(
            out.contains("Open: https://hallpass.lumen.sch.uk/held/01NEW"),
            "{out}"
        );
        assert!(
            out.contains("https://hallpass.lumen.sch.uk/held\r\n"),
            "{out}"
        );
        assert!(out.contains("within 30 days"), "{out}");
        assert!(!out.contains("example.com"), "no recipient address: {out}");
        assert!(!out.contains("secret-subject"), "no message id: {out}");
        assert!(!out.contains("{{"), "every placeholder filled: {out}");
    }

    #[test]
    fn a_long_queue_is_cut_and_counted() {
        let c = config("");
        let many: Vec<HeldRecord> = (0..LISTED + 5)
            .map(|i| held(&format!("01ID{i}"), T0))
            .collect();
        let out = shown(render(
            &c,
            &crate::notify::shipped_detectors(),
            &many,
            "http://127.0.0.1:8025",
            T0,
        ));
        assert!(out.contains("...and 5 more"), "{out}");
        assert_eq!(out.matches("Open: ").count(), LISTED);
    }

    #[test]
    fn the_console_link_comes_from_public_url_else_from_listen() {
        let c = config("[console]\npublic_url = \"https://dpo.lumen.sch.uk/\"\n");
        assert_eq!(console_url(&c, "relay"), "https://dpo.lumen.sch.uk");
        let c = config("[console]\nlisten = \"0.0.0.0:8025\"\n");
        assert_eq!(
            console_url(&c, "relay.lumen.sch.uk"),
            "http://relay.lumen.sch.uk:8025"
        );
        let c = config("[console]\nlisten = \"[::1]:8025\"\n");
        assert_eq!(console_url(&c, "relay"), "http://[::1]:8025");
    }
}
