//! The values that go into and come out of the store.

use std::fmt;
use std::str::FromStr;

/// `as_str`, `FromStr` and `Display` for an enum of fixed words (kinds, statuses, roles), from
/// one list, so the words cannot drift apart.
macro_rules! string_enum {
    ($ty:ident, $what:literal, { $($variant:ident => $word:literal),+ $(,)? }) => {
        impl $ty {
            #[doc = concat!("The word for it: ", $(concat!("`\"", $word, "\"` ")),+)]
            pub fn as_str(self) -> &'static str {
                match self {
                    $($ty::$variant => $word),+
                }
            }
        }

        impl FromStr for $ty {
            type Err = UnknownValue;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                match s {
                    $($word => Ok($ty::$variant),)+
                    _ => Err(UnknownValue::new($what, s, concat!($($word, ", "),+).trim_end_matches(", "))),
                }
            }
        }

        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

/// A message accepted with a 250, as recorded in one transaction by [`Store::accept`].
///
/// [`Store::accept`]: crate::Store::accept
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewMessage {
    /// Message id (ULID, [`new_id`](crate::new_id)).
    pub id: String,
    /// When the final dot of DATA arrived.
    pub received_ms: i64,
    /// Envelope MAIL FROM (`""` for the null sender).
    pub sender: String,
    /// The Message-ID header, without `<>`.
    pub message_id: Option<String>,
    /// Size of the message as received, in bytes.
    pub size: u64,
    /// Spool files this message owns (original + rewritten copies), already written durably.
    pub spool_ids: Vec<String>,
    /// The copies the message was split into.
    pub copies: Vec<NewCopy>,
}

/// One copy of a message: the same bytes for a set of recipients with the same fate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewCopy {
    /// Copy id (ULID): the queue id the client hears, and the held id.
    pub id: String,
    /// What happens to it.
    pub kind: CopyKind,
    /// Which spool file has this copy's bytes.
    pub spool_id: String,
    /// Envelope recipients of this copy.
    pub recipients: Vec<String>,
    /// Rule ids that concern this copy.
    pub rules: Vec<String>,
    /// What the detectors found (no values).
    pub findings: Vec<FindingRecord>,
}

/// What happens to a copy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CopyKind {
    /// Queued for delivery now.
    Deliver,
    /// Quarantined for the DPO.
    Hold,
    /// A delivery status notification we generated.
    Bounce,
    /// A notification we generated (e.g. to the sender of a held message).
    Notice,
}

string_enum!(CopyKind, "copy kind", { Deliver => "deliver", Hold => "hold", Bounce => "bounce", Notice => "notice" });

/// A finding as stored: detector id, location, count, confidence. Never a matched value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FindingRecord {
    /// Detector id (`uk_upn`).
    pub detector: String,
    /// `subject` | `body` | `attachment:NAME`.
    pub location: String,
    /// How many hits.
    pub count: u32,
    /// `low` | `medium` | `high`.
    pub confidence: String,
}

/// Due recipients of one copy, claimed by one worker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Batch {
    /// The copy.
    pub copy_id: String,
    /// The spool file to send.
    pub spool_id: String,
    /// Envelope sender.
    pub sender: String,
    /// What kind of copy (a bounce is sent with the null sender, and never bounced).
    pub kind: CopyKind,
    /// Claimed recipients: (recipient row id for [`Store::record`], address).
    ///
    /// [`Store::record`]: crate::Store::record
    pub recipients: Vec<(i64, String)>,
    /// Attempts so far (the most of any claimed recipient).
    pub attempts: u32,
    /// When the copy was first queued (accepted, or released): the queue lifetime's start.
    pub first_queued_ms: i64,
}

/// The result of one delivery attempt for one recipient.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The upstream accepted it.
    Delivered {
        /// The upstream's reply.
        reply: String,
    },
    /// Temporary failure: try again at `next_attempt_ms`.
    Deferred {
        /// The upstream's reply (or what went wrong connecting).
        reply: String,
        /// When to try again.
        next_attempt_ms: i64,
    },
    /// Permanent failure: the caller sends a DSN.
    Failed {
        /// The upstream's reply.
        reply: String,
    },
    /// The queue lifetime passed: the caller sends a DSN.
    Expired {
        /// The last reply, or why it expired.
        reply: String,
    },
}

/// Queue figures for metrics and the console.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct QueueStats {
    /// Recipients queued or being sent.
    pub queued: u64,
    /// Age of the oldest of those copies (since it was queued), if any.
    pub oldest_age_ms: Option<i64>,
    /// Copies waiting in the quarantine.
    pub held: u64,
}

/// The quarantine state of a held copy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HeldStatus {
    /// Waiting for a decision.
    Held,
    /// Released for delivery.
    Released,
    /// Rejected: never delivered.
    Rejected,
}

string_enum!(HeldStatus, "status", { Held => "held", Released => "released", Rejected => "rejected" });

/// Which held copies to list. `Default`: status `held`, the first 100.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeldFilter {
    /// Only this status; `None` for all.
    pub status: Option<HeldStatus>,
    /// Only copies this rule concerns.
    pub rule: Option<String>,
    /// Only from this envelope sender (case-insensitive).
    pub sender: Option<String>,
    /// Only received at or after this time.
    pub since_ms: Option<i64>,
    /// Only with a finding of this detector.
    pub detector: Option<String>,
    /// At most this many.
    pub limit: u32,
    /// Skip this many (paging).
    pub offset: u32,
}

impl Default for HeldFilter {
    fn default() -> Self {
        HeldFilter {
            status: Some(HeldStatus::Held),
            rule: None,
            sender: None,
            since_ms: None,
            detector: None,
            limit: 100,
            offset: 0,
        }
    }
}

/// A held copy as the quarantine shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeldRecord {
    /// The copy id.
    pub id: String,
    /// When the message was received.
    pub received_ms: i64,
    /// Envelope sender.
    pub from: String,
    /// The recipients this copy is for.
    pub rcpt: Vec<String>,
    /// Message-ID header, without `<>`.
    pub message_id: Option<String>,
    /// Rules that concern this copy.
    pub rules: Vec<String>,
    /// What was found.
    pub findings: Vec<FindingRecord>,
    /// Held, released or rejected.
    pub status: HeldStatus,
    /// Who decided (released or rejected).
    pub decided_by: Option<String>,
    /// When.
    pub decided_ms: Option<i64>,
    /// The reason given with a rejection.
    pub reason: Option<String>,
    /// The spool file with the bytes as held.
    pub spool_id: String,
    /// Size of the message, in bytes.
    pub size: u64,
}

/// Who acted: `"cli:<unix user>"` for the terminal, the console user's name otherwise.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Actor {
    /// The name.
    pub name: String,
    /// Where from (the console client's IP address), when known.
    pub address: Option<String>,
}

/// An entry for the audit trail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditEntry {
    /// When.
    pub at_ms: i64,
    /// Who.
    pub actor: Actor,
    /// What (`release`, `reject`, `false-positive`, `login`, `user-add`…).
    pub action: String,
    /// Which message or user, if any.
    pub target: Option<String>,
    /// More, in words (no message content).
    pub detail: String,
}

/// An entry of the audit trail as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditRecord {
    /// Position in the trail (increasing).
    pub seq: i64,
    /// When.
    pub at_ms: i64,
    /// Who.
    pub actor: Actor,
    /// What.
    pub action: String,
    /// Which message or user, if any.
    pub target: Option<String>,
    /// More, in words.
    pub detail: String,
}

/// Which audit entries to list (newest first). `Default`: all, the first 100.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditFilter {
    /// Only by this actor name.
    pub actor: Option<String>,
    /// Only this action.
    pub action: Option<String>,
    /// Only about this target.
    pub target: Option<String>,
    /// Only at or after this time.
    pub since_ms: Option<i64>,
    /// At most this many.
    pub limit: u32,
    /// Skip this many (paging).
    pub offset: u32,
}

impl Default for AuditFilter {
    fn default() -> Self {
        AuditFilter {
            actor: None,
            action: None,
            target: None,
            since_ms: None,
            limit: 100,
            offset: 0,
        }
    }
}

/// What a user may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// Data Protection Officer: reviews the quarantine.
    Dpo,
    /// Administrator.
    Admin,
    /// A relay account for SMTP AUTH.
    Relay,
    /// A Prometheus scraper: its token reads `/metrics` and nothing else.
    Metrics,
}

string_enum!(Role, "role", { Dpo => "dpo", Admin => "admin", Relay => "relay", Metrics => "metrics" });

/// A console or relay account (never its password or token).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    /// Login name.
    pub name: String,
    /// What it may do.
    pub role: Role,
    /// Disabled accounts cannot log in or use their token.
    pub disabled: bool,
    /// When it was added.
    pub created_ms: i64,
}

/// A word that is not one of the expected values (`Role`, `HeldStatus`, `CopyKind` parsing).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown {what} {given:?}: expected one of {expected}")]
pub struct UnknownValue {
    what: &'static str,
    given: String,
    expected: &'static str,
}

impl UnknownValue {
    fn new(what: &'static str, given: &str, expected: &'static str) -> Self {
        UnknownValue {
            what,
            given: given.to_string(),
            expected,
        }
    }
}
