//! The whole pure pipeline for one message: bytes and configuration in,
//! findings and a verdict out.
//!
//! ```text
//! raw bytes ─▶ hallpass-extract (text + locations + attachments)
//!           ─▶ hallpass-detect  (hits → findings per location and detector)
//!           ─▶ hallpass-policy  (recipients, rules → verdict per recipient)
//! ```
//!
//! `hallpass scan` and `hallpass serve` both call [`Engine::scan`], so what an
//! admin sees offline is what the relay does. [`Engine::load`] reads the
//! detector files once; scanning reads no file, no socket and no clock (today's
//! date is an argument).
#![deny(missing_docs)]

pub mod explain;
pub mod rewrite;

use std::collections::HashMap;
use std::ops::Range;

use hallpass_core::{
    AttachmentInfo, Confidence, Config, DetectorId, Envelope, Finding, Location, RecipientClass,
    RuleId, Verdict,
};
use hallpass_detect::{DetectorSet, Hit, Scratch, ValidateCtx};
use hallpass_extract::View;
use hallpass_policy::{Decision, Input, Policy};

pub use hallpass_core::Problems;

/// Configuration, detectors and policy, ready to scan with.
#[derive(Debug)]
pub struct Engine {
    config: Config,
    detectors: DetectorSet,
    policy: Policy,
}

/// Per-call choices.
#[derive(Debug, Clone, Copy)]
pub struct ScanOptions {
    /// Today's date (year, month, day): dates of birth are in the past.
    pub today: (u16, u8, u8),
    /// Keep each match's masked value and the context word that raised it.
    pub explain: bool,
    /// External recipients from this sender within the bulk window (relay only).
    pub sender_window_count: Option<u64>,
}

/// One match, explained: never the value itself, only its masked form, and
/// a short window of text each side with every digit and every other match
/// in it hidden ([`explain`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Explained {
    /// Which detector.
    pub detector: DetectorId,
    /// Where.
    pub location: Location,
    /// The value with all but the last three letters and digits hidden.
    pub masked: String,
    /// How sure.
    pub confidence: Confidence,
    /// The context word that raised it, if any.
    pub context: Option<String>,
    /// About 30 characters before the match, cut at a word boundary,
    /// whitespace collapsed, digits and other matches hidden; starts with `…`
    /// when cut.
    pub before: String,
    /// The same after the match; ends with `…` when cut.
    pub after: String,
}

/// Counts of recipients by class.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RecipientCounts {
    /// Internal recipients.
    pub internal: u32,
    /// Partner recipients.
    pub partner: u32,
    /// External recipients.
    pub external: u32,
}

/// Everything decided about one message.
#[derive(Debug, Clone)]
pub struct Report {
    /// The verdict of the message.
    pub verdict: Verdict,
    /// The policy's full answer (rules, per-recipient verdicts).
    pub decision: Decision,
    /// Findings, by location in reading order, then by detector.
    pub findings: Vec<Finding>,
    /// The recipients considered (envelope, or To/Cc/Bcc), in order.
    pub recipients: Vec<String>,
    /// Recipients by class.
    pub counts: RecipientCounts,
    /// Every attachment.
    pub attachments: Vec<AttachmentInfo>,
    /// Locations that could not be read, with why.
    pub unscannable: Vec<(Location, String)>,
    /// `Message-ID`, if any.
    pub message_id: Option<String>,
    /// `From:` address, if any.
    pub from: Option<String>,
    /// With [`ScanOptions::explain`]: each match, masked (at most 1,000), in
    /// reading order. A body that comes as plain text and as HTML is
    /// explained once, from the rendering with more matches (as it is counted).
    pub explained: Vec<Explained>,
}

impl Report {
    /// Ids of the rules that fired.
    pub fn rules(&self) -> Vec<RuleId> {
        self.decision.rule_ids().collect()
    }
}

/// Reusable per-thread working memory for [`Engine::scan`].
#[derive(Debug)]
pub struct Workspace {
    scratch: Scratch,
}

const MAX_EXPLAINED: usize = 1000;

impl Engine {
    /// Loads the detector files the configuration names.
    pub fn load(config: Config) -> Result<Engine, Problems> {
        let detectors = DetectorSet::load_dir(&config.detectors.path).map_err(Problems::from)?;
        Ok(Engine::new(config, detectors))
    }

    /// An engine from an already loaded detector set.
    pub fn new(config: Config, detectors: DetectorSet) -> Engine {
        let policy = Policy::new(&config);
        Engine {
            config,
            detectors,
            policy,
        }
    }

    /// The configuration in force.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The policy in force (to classify recipients before a scan).
    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    /// The message with the addresses that must not see each other moved
    /// out of `To:`/`Cc:` (the `cc_exposure` rewrite): every address that is
    /// not internal. `None` when there is nothing to move.
    pub fn hide_recipients(&self, raw: &[u8]) -> Option<Vec<u8>> {
        rewrite::hide_addresses(raw, &|a| {
            self.policy.classify(a) != RecipientClass::Internal
        })
    }

    /// `text` with every match of every detector masked in place (all but
    /// the last three letters and digits of each become `*`, one `*` per
    /// character, so the text keeps its length in characters), and every
    /// long run of digits masked the same way ([`explain::mask_digit_runs`]):
    /// for showing a text to a person, such as the console's preview of a
    /// held message's body. Context is only what `text` holds.
    pub fn mask_text(&self, ws: &mut Workspace, text: &str, today: (u16, u8, u8)) -> String {
        let starts: Vec<usize> = text.char_indices().map(|(i, _)| i).collect();
        let mut hide = vec![false; starts.len()];
        let ctx = ValidateCtx { today };
        self.detectors.scan(&mut ws.scratch, text, &ctx, |hit| {
            explain::hide_span(text, &hit.span, &starts, &mut hide);
        });
        explain::hide_digit_runs(text, &mut hide);
        explain::apply(text, &hide)
    }

    /// The detectors in force.
    pub fn detectors(&self) -> &DetectorSet {
        &self.detectors
    }

    /// Working memory for one thread.
    pub fn workspace(&self) -> Workspace {
        Workspace {
            scratch: Scratch::new(&self.detectors),
        }
    }

    /// Reads, detects and decides. Never fails: what cannot be read is
    /// reported unscannable and the policy decides on that.
    pub fn scan(
        &self,
        ws: &mut Workspace,
        raw: &[u8],
        envelope: Option<&Envelope>,
        opts: &ScanOptions,
    ) -> Report {
        self.scan_within(ws, raw, envelope, opts, &|| false)
    }

    /// [`Engine::scan`] within a time budget: `over_budget` is asked between
    /// parts and archive members; the caller owns the clock
    /// (`[limits] time_budget_ms`).
    pub fn scan_within(
        &self,
        ws: &mut Workspace,
        raw: &[u8],
        envelope: Option<&Envelope>,
        opts: &ScanOptions,
        over_budget: &dyn Fn() -> bool,
    ) -> Report {
        let ctx = ValidateCtx { today: opts.today };
        let mut tally = Tally::default();
        let mut explained: Vec<(View, Explained)> = Vec::new();
        let mut hits: Vec<Hit> = Vec::new();
        let detectors = &self.detectors;
        let info = hallpass_extract::read_message_within(
            raw,
            &self.config.limits,
            over_budget,
            &mut |seg| {
                let loc = tally.location(seg.location);
                hits.clear();
                detectors.scan(&mut ws.scratch, seg.text, &ctx, |hit| {
                    tally.add(loc, hit.detector, seg.view, hit.confidence);
                    if opts.explain && explained.len() + hits.len() < MAX_EXPLAINED {
                        hits.push(hit);
                    }
                });
                // Explained once the text's matches are all known: each
                // window hides the others.
                let spans: Vec<Range<usize>> = hits.iter().map(|h| h.span.clone()).collect();
                for (i, hit) in hits.iter().enumerate() {
                    // Only matches that can reach into the window (4 bytes a character at most).
                    let reach = explain::CONTEXT_CHARS * 4;
                    let others: Vec<Range<usize>> = spans
                        .iter()
                        .enumerate()
                        .filter(|&(j, s)| {
                            j != i
                                && s.end + reach > hit.span.start
                                && s.start < hit.span.end + reach
                        })
                        .map(|(_, s)| s.clone())
                        .collect();
                    let (before, after) = explain::window(seg.text, &hit.span, &others);
                    explained.push((
                        seg.view,
                        Explained {
                            detector: detectors.id(hit.detector).clone(),
                            location: seg.location.clone(),
                            masked: hallpass_detect::mask(&seg.text[hit.span.clone()]),
                            confidence: hit.confidence,
                            context: hit.context_word.map(|w| detectors.word(w).to_string()),
                            before,
                            after,
                        },
                    ));
                }
            },
        );
        let explained = one_rendering(explained);
        let findings = tally.findings(detectors);

        let recipients: Vec<String> = match envelope {
            Some(e) => e
                .recipients
                .iter()
                .map(|r| r.to_ascii_lowercase())
                .collect(),
            None => {
                let mut all: Vec<String> = info
                    .to
                    .iter()
                    .chain(&info.cc)
                    .chain(&info.bcc)
                    .cloned()
                    .collect();
                let mut seen = std::collections::HashSet::new();
                all.retain(|a| seen.insert(a.clone()));
                all
            }
        };
        let visible: Vec<String> = info.to.iter().chain(&info.cc).cloned().collect();
        let decision = self.policy.decide(&Input {
            recipients: &recipients,
            visible: &visible,
            findings: &findings,
            attachments: &info.attachments,
            unscannable: !info.unscannable.is_empty(),
            password_in_message: info.password_in_message,
            sender_window_count: opts.sender_window_count,
        });
        let mut counts = RecipientCounts::default();
        for c in &decision.classes {
            match c {
                RecipientClass::Internal => counts.internal += 1,
                RecipientClass::Partner => counts.partner += 1,
                RecipientClass::External => counts.external += 1,
            }
        }
        Report {
            verdict: decision.verdict,
            decision,
            findings,
            recipients,
            counts,
            attachments: info.attachments,
            unscannable: info.unscannable,
            message_id: info.message_id,
            from: info.from,
            explained,
        }
    }
}

/// Explained matches with each body's weaker rendering dropped, as [`Tally`]
/// counts them: per location and detector, the plain-text rendering's
/// matches unless the HTML one has more.
fn one_rendering(all: Vec<(View, Explained)>) -> Vec<Explained> {
    let mut per: HashMap<(&Location, &DetectorId), (usize, usize)> = HashMap::new();
    for (view, e) in &all {
        let c = per.entry((&e.location, &e.detector)).or_default();
        match view {
            View::TextBody => c.0 += 1,
            View::HtmlBody => c.1 += 1,
            View::Whole | View::BothBodies => {}
        }
    }
    let keep: Vec<bool> = all
        .iter()
        .map(|(view, e)| {
            let (text, html) = per[&(&e.location, &e.detector)];
            match view {
                View::TextBody => text >= html,
                View::HtmlBody => html > text,
                View::Whole | View::BothBodies => true,
            }
        })
        .collect();
    all.into_iter()
        .zip(keep)
        .filter_map(|((_, e), k)| k.then_some(e))
        .collect()
}

/// Counts per location and detector, keeping the two renderings of a body
/// apart so the same finding in the plain and the HTML body counts once.
#[derive(Default)]
struct Tally {
    locations: Vec<Location>,
    counts: HashMap<(u32, usize), Counts>,
}

#[derive(Default, Clone, Copy)]
struct Counts {
    whole: u32,
    text: u32,
    html: u32,
    confidence: Option<Confidence>,
}

impl Tally {
    fn location(&mut self, loc: &Location) -> u32 {
        match self.locations.iter().rposition(|l| l == loc) {
            Some(i) => i as u32,
            None => {
                self.locations.push(loc.clone());
                (self.locations.len() - 1) as u32
            }
        }
    }

    fn add(&mut self, loc: u32, detector: usize, view: View, confidence: Confidence) {
        let c = self.counts.entry((loc, detector)).or_default();
        match view {
            View::Whole => c.whole += 1,
            View::TextBody => c.text += 1,
            View::HtmlBody => c.html += 1,
            View::BothBodies => {
                c.text += 1;
                c.html += 1;
            }
        }
        c.confidence = c.confidence.max(Some(confidence));
    }

    fn findings(self, detectors: &DetectorSet) -> Vec<Finding> {
        let mut keys: Vec<_> = self.counts.into_iter().collect();
        keys.sort_by_key(|((loc, det), _)| (*loc, *det));
        keys.into_iter()
            .map(|((loc, det), c)| Finding {
                detector: detectors.id(det).clone(),
                location: self.locations[loc as usize].clone(),
                count: c.whole + c.text.max(c.html),
                confidence: c.confidence.unwrap_or(Confidence::Low),
            })
            .collect()
    }
}

pub use hallpass_core::date::civil_from_days;

#[cfg(test)]
mod tests;
