//! Shared vocabulary of hallpass: what a message is made of once read, what a
//! detector found, what the policy decided, and the typed configuration.
//!
//! Everything here is plain data. This crate does no I/O beyond turning a TOML
//! string into [`Config`], knows nothing of SMTP, HTTP, databases or clocks, and
//! never carries a matched value: a [`Finding`] holds a detector id, a
//! location, a count and a confidence, nothing else.
//!
//! - [`model`]: locations, findings, attachments, recipients, verdicts.
//! - [`config`]: `hallpass.toml` as typed values, with `FILE:LINE:COL` problems.
//! - [`diag`]: a problem in a file, pointed at a line and column.
#![deny(missing_docs)]

pub mod config;
pub mod date;
pub mod diag;
pub mod model;
pub mod words;

pub use config::Config;
pub use diag::{Problem, Problems};
pub use model::{
    Action, AttachmentInfo, Confidence, DetectorId, Envelope, Finding, Location, RecipientClass,
    RuleId, Verdict,
};
