//! The message as hallpass sees it after reading, and what was decided about it.

use std::fmt;
use std::sync::Arc;

/// How sure a detector is that a match is what it says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Confidence {
    /// Shape and checksum only; not acted on by default.
    Low,
    /// Distinctive on its own, or a weaker shape with context.
    Medium,
    /// Checksum and context agree.
    High,
}

impl Confidence {
    /// The contract's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Confidence::Low => "low",
            Confidence::Medium => "medium",
            Confidence::High => "high",
        }
    }
}

/// A detector's stable id, such as `uk_nhs_number`. Cheap to clone.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct DetectorId(Arc<str>);

impl DetectorId {
    /// Wraps an id; ids are checked when detector files load.
    pub fn new(id: &str) -> Self {
        DetectorId(Arc::from(id))
    }
    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for DetectorId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Where in a message a piece of text came from: `subject`, `body`,
/// `attachment:NAME`, or nested `attachment:outer.zip/inner.docx`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Location(String);

impl Location {
    /// The message's subject line.
    pub fn subject() -> Self {
        Location("subject".into())
    }
    /// The message's own text (plain or HTML).
    pub fn body() -> Self {
        Location("body".into())
    }
    /// A top-level attachment.
    pub fn attachment(name: &str) -> Self {
        Location(format!("attachment:{}", clean_name(name)))
    }
    /// Something inside this location (a member of an archive, the body of an
    /// attached message): `attachment:outer/inner`.
    pub fn child(&self, inner: &str) -> Self {
        match self.0.strip_prefix("attachment:") {
            Some(outer) => Location(format!("attachment:{outer}/{}", clean_name(inner))),
            None => Location::attachment(inner),
        }
    }
    /// The location as the contract spells it.
    pub fn as_str(&self) -> &str {
        &self.0
    }
    /// How many attachment levels deep this is (0 for subject and body).
    pub fn depth(&self) -> usize {
        match self.0.strip_prefix("attachment:") {
            Some(rest) => 1 + rest.matches('/').count(),
            None => 0,
        }
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Attachment names come from the sender; keep them to one printable line
/// without the separator used for nesting.
fn clean_name(name: &str) -> String {
    let cleaned: String = name
        .chars()
        .map(|c| if c == '/' || c == '\\' { '_' } else { c })
        .filter(|c| !c.is_control())
        .take(200)
        .collect();
    let trimmed = cleaned.trim();
    if trimmed.is_empty() {
        "unnamed".into()
    } else {
        trimmed.to_string()
    }
}

/// What one detector found in one location: never the values, only how many
/// and how sure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// Which detector.
    pub detector: DetectorId,
    /// Where in the message.
    pub location: Location,
    /// How many matches.
    pub count: u32,
    /// The highest confidence among them.
    pub confidence: Confidence,
}

/// What hallpass learnt about one attachment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttachmentInfo {
    /// Location of the attachment (`attachment:NAME`).
    pub location: Location,
    /// Kind detected from content: `text`, `csv`, `html`, `message`, `pdf`,
    /// `docx`, `zip`, `image`, `binary`, ...
    pub kind: &'static str,
    /// Size of the decoded attachment in bytes.
    pub size: u64,
    /// Protected by a password or encryption hallpass recognises.
    pub encrypted: bool,
    /// Its text was read and scanned.
    pub scanned: bool,
    /// Why not, when `scanned` is false and it should have been.
    pub unscannable: Option<String>,
}

/// Which side of the school's boundary a recipient is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum RecipientClass {
    /// One of the organisation's own domains, or a subdomain of one.
    Internal,
    /// A trusted external organisation (the local authority, say).
    Partner,
    /// Everyone else.
    External,
}

/// The SMTP envelope, when there is one (`scan` of a file has none and takes
/// recipients from the headers).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Envelope {
    /// `MAIL FROM`, empty for the null sender.
    pub sender: String,
    /// `RCPT TO`, in order.
    pub recipients: Vec<String>,
}

/// The six rules of the contract.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum RuleId {
    /// Personal data to an external recipient outside an encrypted container.
    PersonalDataExternal,
    /// An encrypted attachment with its password in the same message.
    PasswordInSameMessage,
    /// A recipient domain that looks like an internal or partner one.
    MisdirectedDomain,
    /// Too many recipients in one message, or from one sender in a window.
    BulkSend,
    /// External addresses visible to each other in To/Cc.
    CcExposure,
    /// A part that could not be scanned.
    Unscannable,
}

impl RuleId {
    /// All rules, in the contract's order.
    pub const ALL: [RuleId; 6] = [
        RuleId::PersonalDataExternal,
        RuleId::PasswordInSameMessage,
        RuleId::MisdirectedDomain,
        RuleId::BulkSend,
        RuleId::CcExposure,
        RuleId::Unscannable,
    ];

    /// The stable id.
    pub fn as_str(self) -> &'static str {
        match self {
            RuleId::PersonalDataExternal => "personal_data_external",
            RuleId::PasswordInSameMessage => "password_in_same_message",
            RuleId::MisdirectedDomain => "misdirected_domain",
            RuleId::BulkSend => "bulk_send",
            RuleId::CcExposure => "cc_exposure",
            RuleId::Unscannable => "unscannable",
        }
    }
}

impl fmt::Display for RuleId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a rule does when it fires.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    /// The rule is not evaluated.
    Off,
    /// Log and count only; the message goes on.
    Monitor,
    /// Deliver a rewritten copy (Cc → Bcc).
    Rewrite,
    /// Keep for the DPO.
    Hold,
    /// Refuse with `550 5.7.1`.
    Reject,
}

impl Action {
    /// The verdict this action leads to on its own.
    pub fn verdict(self) -> Verdict {
        match self {
            Action::Off | Action::Monitor => Verdict::Deliver,
            Action::Rewrite => Verdict::Rewrite,
            Action::Hold => Verdict::Hold,
            Action::Reject => Verdict::Reject,
        }
    }
    /// The config spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Off => "off",
            Action::Monitor => "monitor",
            Action::Rewrite => "rewrite",
            Action::Hold => "hold",
            Action::Reject => "reject",
        }
    }
}

/// The outcome for a message or for one recipient's copy. Ordered by
/// strength: the verdict of a message is the strongest of its rules'.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Verdict {
    /// Pass on unchanged.
    Deliver,
    /// Pass on with To/Cc rewritten.
    Rewrite,
    /// Keep in the quarantine for the DPO.
    Hold,
    /// Refuse.
    Reject,
}

impl Verdict {
    /// The contract's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Deliver => "deliver",
            Verdict::Rewrite => "rewrite",
            Verdict::Hold => "hold",
            Verdict::Reject => "reject",
        }
    }
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nested_locations_join_with_a_slash() {
        let outer = Location::attachment("reports.zip");
        assert_eq!(
            outer.child("pupil.docx").as_str(),
            "attachment:reports.zip/pupil.docx"
        );
        assert_eq!(
            outer.child("a/b.txt").as_str(),
            "attachment:reports.zip/a_b.txt"
        );
        assert_eq!(outer.child("x").depth(), 2);
        assert_eq!(Location::body().depth(), 0);
    }

    #[test]
    fn attachment_names_lose_control_characters() {
        assert_eq!(
            Location::attachment("a\r\nb.csv").as_str(),
            "attachment:ab.csv"
        );
        assert_eq!(Location::attachment("  ").as_str(), "attachment:unnamed");
    }

    #[test]
    fn verdicts_order_by_strength() {
        assert!(Verdict::Reject > Verdict::Hold);
        assert!(Verdict::Hold > Verdict::Rewrite);
        assert!(Verdict::Rewrite > Verdict::Deliver);
        assert_eq!(Action::Monitor.verdict(), Verdict::Deliver);
    }
}
