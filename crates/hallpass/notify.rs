//! Emails to staff about their own held messages: when a copy is held, and
//! when the DPO releases or rejects it. Plain language, the kinds of data and
//! where they were (never the values), and how to send it safely. The wording
//! is in `config/templates/*.txt` so a school can rewrite it; a template
//! missing there falls back to the shipped one.
//!
//! A notice is queued like any message (`<>` as envelope sender, so it can
//! never bounce back and forth) and delivered by the relay's worker.

use std::collections::BTreeMap;

use hallpass_core::{Config, RecipientClass};
use hallpass_detect::DetectorSet;
use hallpass_engine::Engine;
use hallpass_store::{CopyKind, FindingRecord, NewCopy, NewMessage, Spool, Store, new_id};
use mail_builder::MessageBuilder;
use mail_builder::headers::date::Date;
use mail_builder::headers::raw::Raw;

use crate::clock;

/// Which notice.
#[derive(Debug, Clone)]
pub enum Kind {
    /// The copy was held for review.
    Held,
    /// The DPO released it.
    Released,
    /// The DPO rejected it, for this reason.
    Rejected(String),
}

impl Kind {
    fn template(&self) -> (&'static str, &'static str) {
        match self {
            Kind::Held => ("held.txt", include_str!("../../config/templates/held.txt")),
            Kind::Released => (
                "released.txt",
                include_str!("../../config/templates/released.txt"),
            ),
            Kind::Rejected(_) => (
                "rejected.txt",
                include_str!("../../config/templates/rejected.txt"),
            ),
        }
    }
}

/// What a notice is about.
pub struct About<'a> {
    /// The held copy's id.
    pub id: &'a str,
    /// The sender (envelope), who gets the notice.
    pub sender: &'a str,
    /// The recipients of the held copy.
    pub recipients: &'a [String],
    /// Rules that held it.
    pub rules: &'a [String],
    /// What was found, and where.
    pub findings: &'a [FindingRecord],
    /// The message's bytes (for its subject).
    pub message: &'a [u8],
}

/// Queues a notice to the sender, when notices are on and the sender is one
/// of the school's own addresses. Returns whether one was queued.
pub async fn send(
    engine: &Engine,
    store: &Store,
    spool: &Spool,
    kind: Kind,
    about: &About<'_>,
) -> anyhow::Result<bool> {
    let config = engine.config();
    if !config.notifications.enabled
        || about.sender.is_empty()
        || engine.policy().classify(about.sender) != RecipientClass::Internal
    {
        return Ok(false);
    }
    let bytes = render(
        config,
        engine.detectors(),
        &kind,
        about,
        &load(config, &kind),
    );
    queue(store, spool, vec![about.sender.to_string()], &bytes).await?;
    Ok(true)
}

/// Queues hallpass's own email (a notice, the DPO's digest) for `recipients`, with the null
/// envelope sender, for the delivery worker. Not scanned: hallpass wrote it.
pub async fn queue(
    store: &Store,
    spool: &Spool,
    recipients: Vec<String>,
    bytes: &[u8],
) -> anyhow::Result<()> {
    let id = new_id();
    spool.write(&id, bytes).await?;
    let record = NewMessage {
        id: id.clone(),
        received_ms: clock::now_ms(),
        sender: String::new(),
        message_id: None,
        size: bytes.len() as u64,
        spool_ids: vec![id.clone()],
        copies: vec![NewCopy {
            id: new_id(),
            kind: CopyKind::Notice,
            spool_id: id.clone(),
            recipients,
            rules: Vec::new(),
            findings: Vec::new(),
        }],
    };
    if let Err(e) = store.accept(&record).await {
        // The file stays for the orphan sweep: the record may have been committed all the same.
        return Err(e.into());
    }
    Ok(())
}

/// A template from the school's folder, or the shipped wording when it has none.
pub fn load_template(config: &Config, name: &str, shipped: &str) -> String {
    let path = config.notifications.templates.join(name);
    match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) => {
            if e.kind() != std::io::ErrorKind::NotFound {
                tracing::warn!(file = %path.display(), error = %e, "cannot read a notification template; using the shipped wording");
            }
            shipped.to_string()
        }
    }
}

/// The school's wording, or the shipped one.
fn load(config: &Config, kind: &Kind) -> String {
    let (name, shipped) = kind.template();
    load_template(config, name, shipped)
}

/// The whole email: the template's `Subject:` line and body with the
/// placeholders filled in.
fn render(
    config: &Config,
    detectors: &DetectorSet,
    kind: &Kind,
    about: &About<'_>,
    template: &str,
) -> Vec<u8> {
    let subject = hallpass_console::summary_headers(about.message)
        .into_iter()
        .find(|(k, _)| *k == "Subject")
        .map(|(_, v)| one_line(&v))
        .unwrap_or_else(|| "(no subject)".into());
    let reason = match kind {
        Kind::Rejected(r) => one_line(r),
        _ => String::new(),
    };
    let fill = |t: &str| {
        t.replace("{{subject}}", &subject)
            .replace("{{recipients}}", &about.recipients.join(", "))
            .replace("{{organisation}}", &config.organisation.name)
            .replace("{{reasons}}", &reasons(about.rules))
            .replace("{{findings}}", &findings(detectors, about.findings))
            .replace("{{reason}}", &reason)
            .replace("{{id}}", about.id)
    };
    let (head, body) = match template.split_once("\n\n") {
        Some((h, b)) if h.trim_start().starts_with("Subject:") => (h, b),
        _ => ("Subject: About your email \"{{subject}}\"", template),
    };
    let title = one_line(head.trim_start().trim_start_matches("Subject:").trim());
    let now = clock::now_ms().div_euclid(1000);
    let domain = config
        .organisation
        .postmaster
        .rsplit_once('@')
        .map_or("localhost", |(_, d)| d);
    MessageBuilder::new()
        .from((
            config.organisation.name.as_str(),
            config.organisation.postmaster.as_str(),
        ))
        .to(about.sender)
        .subject(fill(&title))
        .date(Date::new(now))
        .message_id(format!("{}.notice@{domain}", new_id()))
        .header("Auto-Submitted", Raw::new("auto-generated"))
        .header("X-Hallpass-Notice", Raw::new(about.id.to_string()))
        .text_body(fill(body))
        .write_to_vec()
        .unwrap_or_default()
}

/// Header text on one line, without control characters.
pub fn one_line(s: &str) -> String {
    let t: String = s
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    t.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Why, in words a teacher uses.
fn reasons(rules: &[String]) -> String {
    let lines: Vec<String> = rules
        .iter()
        .map(|r| {
            let why = match r.as_str() {
                "personal_data_external" => {
                    "it contains personal information about pupils, families or staff and was going to someone outside the school without encryption"
                }
                "password_in_same_message" => {
                    "it has a password-protected attachment and the password to open it in the same email, so anyone who gets the email can open the file"
                }
                "misdirected_domain" => {
                    "an address looks like the school's or a partner's but is slightly different: it may be a typing mistake"
                }
                "bulk_send" => {
                    "it was going to more people outside the school than the school allows at once"
                }
                "unscannable" => {
                    "an attachment could not be checked (it may be damaged, too large or packed too deep), so a person needs to look at it"
                }
                "cc_exposure" => "many outside addresses could see each other",
                other => other,
            };
            format!("- {why}")
        })
        .collect();
    if lines.is_empty() {
        "- the school's email rules".into()
    } else {
        lines.join("\n")
    }
}

/// The kinds of data found, with counts and places; never a value.
fn findings(detectors: &DetectorSet, found: &[FindingRecord]) -> String {
    let mut by_kind: BTreeMap<&str, (u32, Vec<String>)> = BTreeMap::new();
    for f in found {
        let e = by_kind.entry(f.detector.as_str()).or_default();
        e.0 += f.count;
        let place = match f.location.split_once(':') {
            Some(("attachment", name)) => format!("the attachment {name}"),
            _ if f.location == "subject" => "the subject".into(),
            _ => "the message".into(),
        };
        if !e.1.contains(&place) {
            e.1.push(place);
        }
    }
    if by_kind.is_empty() {
        return "- nothing specific: see the reasons above".into();
    }
    by_kind
        .into_iter()
        .map(|(d, (n, places))| {
            format!(
                "- {} ({n}), in {}",
                kind_name(detectors, d),
                places.join(", ")
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// A detector's kind of data in plain words: its `name` in the detector files (a school's
/// own detector included), or the id of one no longer loaded.
pub fn kind_name<'a>(detectors: &'a DetectorSet, detector: &'a str) -> &'a str {
    detectors.name_of(detector).unwrap_or(detector)
}

/// The shipped detector files, as `serve` loads them (for tests of the wording).
#[cfg(test)]
pub fn shipped_detectors() -> DetectorSet {
    DetectorSet::load_dir(&std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("detectors"))
        .unwrap()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> Config {
        Config::defaults_for(&["lumen.sch.uk"], &[])
    }

    #[test]
    fn a_held_notice_names_kinds_and_places_but_no_values() {
        let msg = b"Subject: Class list\r\n =?utf-8?q?for_7B?=\r\n\r\nNHS 943 476 5919\r\n";
        let f = [
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
        ];
        let about = About {
            id: "01TESTID",
            sender: "teacher@lumen.sch.uk",
            recipients: &["parent@example.com".to_string()],
            rules: &["personal_data_external".to_string()],
            findings: &f,
            message: msg,
        };
        let (_, shipped) = Kind::Held.template();
        let out = String::from_utf8(render(
            &config(),
            &shipped_detectors(),
            &Kind::Held,
            &about,
            shipped,
        ))
        .unwrap();
        assert!(out.contains("Auto-Submitted: auto-generated"), "{out}");
        assert!(out.contains("To: <teacher@lumen.sch.uk>"), "{out}");
        assert!(
            out.contains("- NHS numbers (29), in the attachment class.xlsx, the message"),
            "{out}"
        );
        assert!(
            out.contains("outside the school without encryption"),
            "{out}"
        );
        assert!(out.contains("parent@example.com"));
        assert!(out.contains("01TESTID"));
        assert!(!out.contains("5919"), "never a value: {out}");
        assert!(!out.contains("{{"), "every placeholder filled: {out}");
    }

    #[test]
    fn a_rejection_carries_the_reason_on_one_line_and_a_school_template_wins() {
        let about = About {
            id: "01X",
            sender: "teacher@lumen.sch.uk",
            recipients: &[],
            rules: &[],
            findings: &[],
            message: b"Subject: Trip\r\n\r\nhi\r\n",
        };
        let kind = Kind::Rejected("wrong\r\nBcc: evil@example.com parent".into());
        let out = String::from_utf8(render(
            &config(),
            &shipped_detectors(),
            &kind,
            &about,
            "Subject: Stopped: {{subject}}\n\nBecause {{reason}}.\n",
        ))
        .unwrap();
        assert!(out.contains("Subject: Stopped: Trip"), "{out}");
        assert!(
            out.contains("Because wrong Bcc: evil@example.com parent."),
            "{out}"
        );
        assert!(!out.contains("\nBcc:"), "no header injection: {out}");
    }
}
