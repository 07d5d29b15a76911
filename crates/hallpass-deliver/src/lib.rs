//! hallpass's way out: sends one copy of a message to its recipients and says, per recipient,
//! what happened.
//!
//! - [`Deliverer`] sends to a [`Target`]: an upstream SMTP server (STARTTLS when offered,
//!   per-recipient results, connections reused from a small pool, at most
//!   [`Settings::concurrency`] at once), or a folder (`dir:PATH`) where each message becomes an
//!   `.eml` file beside an `.envelope` file, for trials and demonstrations.
//! - [`RcptOutcome`] is the answer for one recipient: delivered, try again later, or refused.
//! - [`retry_delay`] is the back-off schedule for transient failures.
//! - [`dsn()`] writes the bounce (RFC 3464 delivery status notification) for the recipients that
//!   failed, carrying the original headers but never the body.
//!
//! The queue, the store and the bookkeeping of attempts are the caller's: this crate keeps no
//! state beyond idle connections.
//!
//! ```no_run
//! use hallpass_deliver::{Deliverer, RcptOutcome, Settings, Target};
//!
//! # async fn example() -> Result<(), hallpass_deliver::TargetError> {
//! let target: Target = "127.0.0.1:2526".parse()?;
//! let deliverer = Deliverer::new(target, Settings::default());
//! let message = b"From: a@lumen.sch.uk\r\nTo: b@example.org\r\nSubject: hi\r\n\r\nHello\r\n";
//! let outcomes = deliverer
//!     .send("a@lumen.sch.uk", &["b@example.org".to_string()], message, "01JQUEUEID")
//!     .await;
//! for outcome in outcomes {
//!     match outcome {
//!         RcptOutcome::Delivered(_) => {}
//!         RcptOutcome::Transient(_) => { /* retry after retry_delay(..) */ }
//!         RcptOutcome::Permanent(_) => { /* bounce with dsn(..) */ }
//!     }
//! }
//! # Ok(())
//! # }
//! ```
#![deny(missing_docs)]

mod dir;
mod dsn;
mod retry;
mod smtp;
mod target;
mod tls;

pub use dsn::{Dsn, dsn};
pub use retry::retry_delay;
pub use smtp::{Deliverer, Settings};
pub use target::{Target, TargetError};

/// What happened to one recipient of one delivery attempt.
///
/// The text is the upstream's reply as it was received (`"250 2.0.0 Ok: queued as 1234"`,
/// `"550 5.1.1 <parent@example.com>: mailbox unavailable"`), or, when no reply applies, what
/// failed (`"connection refused"`). Replies can name the recipient: log the class, not the text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RcptOutcome {
    /// The upstream accepted responsibility for the message for this recipient (or the message
    /// was written to the `dir:` target).
    Delivered(String),
    /// Not delivered this time; try again later (4xx replies, connection and TLS failures).
    Transient(String),
    /// Refused for good (5xx replies); the sender should get a bounce.
    Permanent(String),
}

impl RcptOutcome {
    /// The upstream's reply, or what failed.
    pub fn text(&self) -> &str {
        match self {
            RcptOutcome::Delivered(text)
            | RcptOutcome::Transient(text)
            | RcptOutcome::Permanent(text) => text,
        }
    }

    /// `true` for [`RcptOutcome::Delivered`].
    pub fn is_delivered(&self) -> bool {
        matches!(self, RcptOutcome::Delivered(_))
    }

    /// `true` for [`RcptOutcome::Transient`].
    pub fn is_transient(&self) -> bool {
        matches!(self, RcptOutcome::Transient(_))
    }

    /// `true` for [`RcptOutcome::Permanent`].
    pub fn is_permanent(&self) -> bool {
        matches!(self, RcptOutcome::Permanent(_))
    }
}

/// Checks an envelope address before it is written into an SMTP command or an envelope file:
/// no control characters (a CR or LF would smuggle a command) and no angle brackets.
pub(crate) fn address_is_safe(address: &str) -> bool {
    !address
        .chars()
        .any(|c| c.is_control() || c == '<' || c == '>')
}

#[cfg(test)]
mod tests {
    #[test]
    fn deliverer_can_be_shared_between_tasks() {
        fn shareable<T: Clone + Send + Sync + 'static>() {}
        shareable::<crate::Deliverer>();
    }
}
