//! The policy: from what was found and who the message is for, to a verdict
//! for each recipient.
//!
//! [`Policy::decide`] is a pure function of its [`Input`] and the
//! configuration. Counters that need the store or Redis (the per-sender bulk
//! window) are read by the caller and passed in as numbers.
//!
//! Invariant: no I/O, no clock, no detector logic. The verdict of a message is
//! the strongest of its recipients'; a rule that concerns only some
//! recipients (personal data to one parent among colleagues) leaves the
//! others' copies alone.
#![deny(missing_docs)]

pub mod domains;

use hallpass_core::config::Rules;
use hallpass_core::{
    Action, AttachmentInfo, Confidence, Config, Finding, RecipientClass, RuleId, Verdict,
};

use crate::domains::Protected;

/// What the policy looks at.
#[derive(Debug, Clone, Copy)]
pub struct Input<'a> {
    /// The recipients: the envelope's, or To/Cc/Bcc when there is no envelope.
    pub recipients: &'a [String],
    /// Addresses visible to every recipient (To and Cc headers).
    pub visible: &'a [String],
    /// What the detectors found.
    pub findings: &'a [Finding],
    /// The attachments.
    pub attachments: &'a [AttachmentInfo],
    /// Some part could not be read.
    pub unscannable: bool,
    /// A password for an encrypted attachment travels in the message, with
    /// this confidence (confirmed by opening the file: high).
    pub password_in_message: Option<Confidence>,
    /// External recipients this sender has sent to within the bulk window,
    /// this message included; `None` when no counter is kept (offline scan).
    pub sender_window_count: Option<u64>,
}

/// One rule that fired.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleHit {
    /// Which rule.
    pub rule: RuleId,
    /// Its configured action (`monitor` hits are recorded but change nothing).
    pub action: Action,
    /// Indexes into [`Input::recipients`] it concerns.
    pub recipients: Vec<usize>,
}

/// The policy's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    /// The message's verdict: the strongest of its recipients'.
    pub verdict: Verdict,
    /// Rules that fired, in the contract's order.
    pub hits: Vec<RuleHit>,
    /// Each recipient's class, in input order.
    pub classes: Vec<RecipientClass>,
    /// Each recipient's verdict, in input order.
    pub per_recipient: Vec<Verdict>,
}

impl Decision {
    /// Ids of the rules that fired.
    pub fn rule_ids(&self) -> impl Iterator<Item = RuleId> + '_ {
        self.hits.iter().map(|h| h.rule)
    }
}

/// The rules and domains of one configuration, ready to apply.
#[derive(Debug, Clone)]
pub struct Policy {
    internal: Vec<String>,
    partner: Vec<String>,
    protected: Protected,
    rules: Rules,
}

impl Policy {
    /// Prepares the policy of a configuration.
    pub fn new(config: &Config) -> Policy {
        let o = &config.organisation;
        Policy {
            internal: o.internal_domains.clone(),
            partner: o.partner_domains.clone(),
            protected: Protected::new(o.internal_domains.iter().chain(&o.partner_domains)),
            rules: config.rules.clone(),
        }
    }

    /// The class of one address.
    pub fn classify(&self, address: &str) -> RecipientClass {
        domains::classify(address, &self.internal, &self.partner)
    }

    /// Decides.
    pub fn decide(&self, input: &Input<'_>) -> Decision {
        let classes: Vec<RecipientClass> =
            input.recipients.iter().map(|r| self.classify(r)).collect();
        let r = &self.rules;
        let pd = &r.personal_data_external;
        // Who may not receive personal data: external recipients, and partners
        // unless partners are trusted.
        let outside: Vec<usize> = classes
            .iter()
            .enumerate()
            .filter(|(_, c)| {
                **c == RecipientClass::External
                    || (**c == RecipientClass::Partner && !pd.partners_allowed)
            })
            .map(|(i, _)| i)
            .collect();
        let non_internal: Vec<usize> = classes
            .iter()
            .enumerate()
            .filter(|(_, c)| **c != RecipientClass::Internal)
            .map(|(i, _)| i)
            .collect();
        let everyone: Vec<usize> = (0..classes.len()).collect();

        let mut hits = Vec::new();
        let mut fire = |rule: RuleId, action: Action, who: Vec<usize>| {
            if action != Action::Off && !who.is_empty() {
                hits.push(RuleHit {
                    rule,
                    action,
                    recipients: who,
                });
            }
        };

        let personal = input
            .findings
            .iter()
            .any(|f| f.confidence >= pd.min_confidence);
        if personal {
            fire(RuleId::PersonalDataExternal, pd.action, outside.clone());
        }

        if input
            .password_in_message
            .is_some_and(|c| c >= pd.min_confidence)
        {
            fire(
                RuleId::PasswordInSameMessage,
                r.password_in_same_message,
                non_internal.clone(),
            );
        }

        let misdirected: Vec<usize> = input
            .recipients
            .iter()
            .enumerate()
            .filter(|(i, _)| classes[*i] == RecipientClass::External)
            .filter(|(_, a)| {
                domains::domain_of(a).is_some_and(|d| self.protected.lookalike_of(d).is_some())
            })
            .map(|(i, _)| i)
            .collect();
        fire(RuleId::MisdirectedDomain, r.misdirected_domain, misdirected);

        let b = &r.bulk_send;
        let over_message = non_internal.len() as u64 > u64::from(b.max_recipients);
        let over_window = input
            .sender_window_count
            .is_some_and(|n| n > u64::from(b.window_recipients));
        if over_message || over_window {
            fire(RuleId::BulkSend, b.action, everyone.clone());
        }

        let mut visible_external: Vec<&str> = input
            .visible
            .iter()
            .filter(|a| self.classify(a) == RecipientClass::External)
            .map(String::as_str)
            .collect();
        visible_external.sort_unstable();
        visible_external.dedup();
        if visible_external.len() as u64 >= u64::from(r.cc_exposure.threshold) {
            fire(RuleId::CcExposure, r.cc_exposure.action, everyone.clone());
        }

        if input.unscannable {
            fire(RuleId::Unscannable, r.unscannable, outside);
        }

        hits.sort_by_key(|h| RuleId::ALL.iter().position(|r| *r == h.rule));
        let mut per_recipient = vec![Verdict::Deliver; classes.len()];
        for h in &hits {
            for &i in &h.recipients {
                per_recipient[i] = per_recipient[i].max(h.action.verdict());
            }
        }
        let verdict = per_recipient
            .iter()
            .copied()
            .max()
            .unwrap_or(Verdict::Deliver);
        Decision {
            verdict,
            hits,
            classes,
            per_recipient,
        }
    }
}

#[cfg(test)]
mod tests;
