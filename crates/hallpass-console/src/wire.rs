//! The console's JSON: its own types, converted by hand from the store's, so that the store never
//! grows `Serialize` by accident. Field order is the contract's (serde_json keeps it).

use hallpass_store::{AuditRecord, FindingRecord, HeldRecord};
use serde::Serialize;

use crate::clock;

/// One held copy, as `hallpass held list --json` prints it.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct HeldJson {
    pub id: String,
    pub received: String,
    pub from: String,
    pub rcpt: Vec<String>,
    pub message_id: Option<String>,
    pub rules: Vec<String>,
    pub findings: Vec<FindingJson>,
    pub status: &'static str,
}

/// What a detector found where (never the value).
#[derive(Debug, Clone, Serialize)]
pub(crate) struct FindingJson {
    pub detector: String,
    #[serde(rename = "where")]
    pub location: String,
    pub count: u32,
    pub confidence: String,
}

/// One held copy in full: the list's object, then the headers, the decision and the size.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct HeldDetailJson {
    #[serde(flatten)]
    pub held: HeldJson,
    pub headers: Vec<HeaderJson>,
    pub decided_by: Option<String>,
    pub decided_at: Option<String>,
    pub reason: Option<String>,
    pub size: u64,
}

/// `GET /api/held/{id}`: the message in full, then what the engine made of its content now —
/// each match masked in its context (at most 50; `matches_more` counts the rest), the
/// attachments, and a note when the scan could not be done. Header values are masked too.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct HeldViewJson {
    #[serde(flatten)]
    pub detail: HeldDetailJson,
    pub matches: Vec<crate::inspect::MatchJson>,
    pub matches_more: u64,
    pub attachments: Vec<crate::inspect::AttachmentJson>,
    pub note: Option<String>,
}

impl HeldViewJson {
    /// The record and its inspection.
    pub fn new(h: &HeldRecord, i: &crate::inspect::Inspected) -> Self {
        let mut detail = HeldDetailJson::new(h, Vec::new());
        detail.headers = i.headers.clone();
        HeldViewJson {
            detail,
            matches: i.matches.clone(),
            matches_more: i.more,
            attachments: i.attachments.clone(),
            note: i.note.clone(),
        }
    }
}

/// A header of the held message, decoded.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct HeaderJson {
    pub name: &'static str,
    pub value: String,
}

/// The answer to a release: the message as it is now, and whether To/Cc were rewritten.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct ReleasedJson {
    #[serde(flatten)]
    pub message: HeldDetailJson,
    pub rewritten: bool,
}

/// One entry of the audit trail.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct AuditJson {
    pub seq: i64,
    pub at: String,
    pub actor: String,
    pub address: Option<String>,
    pub action: String,
    pub target: Option<String>,
    pub detail: String,
}

impl From<&FindingRecord> for FindingJson {
    fn from(f: &FindingRecord) -> Self {
        FindingJson {
            detector: f.detector.clone(),
            location: f.location.clone(),
            count: f.count,
            confidence: f.confidence.clone(),
        }
    }
}

impl From<&HeldRecord> for HeldJson {
    fn from(h: &HeldRecord) -> Self {
        HeldJson {
            id: h.id.clone(),
            received: clock::rfc3339(h.received_ms),
            from: h.from.clone(),
            rcpt: h.rcpt.clone(),
            message_id: h.message_id.clone(),
            rules: h.rules.clone(),
            findings: h.findings.iter().map(FindingJson::from).collect(),
            status: h.status.as_str(),
        }
    }
}

impl HeldDetailJson {
    /// The record with the headers read from its spool file.
    pub fn new(h: &HeldRecord, headers: Vec<(&'static str, String)>) -> Self {
        HeldDetailJson {
            held: HeldJson::from(h),
            headers: headers
                .into_iter()
                .map(|(name, value)| HeaderJson { name, value })
                .collect(),
            decided_by: h.decided_by.clone(),
            decided_at: h.decided_ms.map(clock::rfc3339),
            reason: h.reason.clone(),
            size: h.size,
        }
    }
}

impl From<&AuditRecord> for AuditJson {
    fn from(a: &AuditRecord) -> Self {
        AuditJson {
            seq: a.seq,
            at: clock::rfc3339(a.at_ms),
            actor: a.actor.name.clone(),
            address: a.actor.address.clone(),
            action: a.action.clone(),
            target: a.target.clone(),
            detail: a.detail.clone(),
        }
    }
}

/// From, To, Cc, Subject and Date of a message, decoded (RFC 2047, charsets) for a DPO's review;
/// headers that are absent or empty are left out.
pub fn summary_headers(raw: &[u8]) -> Vec<(&'static str, String)> {
    let Some(m) = mail_parser::MessageParser::default().parse_headers(raw) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for (k, v) in [
        ("From", m.from().map(addresses)),
        ("To", m.to().map(addresses)),
        ("Cc", m.cc().map(addresses)),
        ("Subject", m.subject().map(str::to_string)),
        ("Date", m.date().map(|d| d.to_rfc3339())),
    ] {
        if let Some(v) = v.filter(|v| !v.trim().is_empty()) {
            out.push((k, v));
        }
    }
    out
}

/// `Name <addr>, addr, group:;` — display names kept, because a name that does not match its
/// address is what a DPO looks for in a misdirected message.
fn addresses(a: &mail_parser::Address<'_>) -> String {
    let one = |x: &mail_parser::Addr<'_>| match (x.name(), x.address()) {
        (Some(n), Some(a)) if !n.trim().is_empty() => format!("{} <{a}>", n.trim()),
        (_, Some(a)) => a.to_string(),
        (Some(n), None) => n.trim().to_string(),
        (None, None) => String::new(),
    };
    let parts: Vec<String> = match a {
        mail_parser::Address::List(list) => list.iter().map(one).collect(),
        mail_parser::Address::Group(groups) => groups
            .iter()
            .flat_map(|g| {
                if g.addresses.is_empty() {
                    vec![format!("{}:;", g.name.as_deref().unwrap_or_default())]
                } else {
                    g.addresses.iter().map(one).collect()
                }
            })
            .collect(),
    };
    parts
        .into_iter()
        .filter(|p| !p.is_empty())
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_are_decoded_and_names_kept() {
        let raw = b"From: \"Ann Teacher\" <ann@lumen.sch.uk>\r\n\
            To: parent@example.com, Bob Parent <bob@example.org>\r\n\
            Subject: =?utf-8?q?Caf=C3=A9_report?=\r\n\
            Date: Mon, 23 Nov 2026 09:14:02 +0000\r\n\r\nbody\r\n";
        let h = summary_headers(raw);
        assert_eq!(
            h,
            vec![
                ("From", "Ann Teacher <ann@lumen.sch.uk>".to_string()),
                (
                    "To",
                    "parent@example.com, Bob Parent <bob@example.org>".to_string()
                ),
                ("Subject", "Café report".to_string()),
                ("Date", "2026-11-23T09:14:02Z".to_string()),
            ]
        );
    }

    #[test]
    fn an_empty_group_is_shown_by_name() {
        let raw = b"From: ann@lumen.sch.uk\r\nTo: undisclosed-recipients:;\r\n\r\nx\r\n";
        let h = summary_headers(raw);
        assert_eq!(h[1], ("To", "undisclosed-recipients:;".to_string()));
    }
}
