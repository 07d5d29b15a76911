//! The detector engine: finds identifiers and sensitive words in text.
//!
//! Detectors are data (`detectors/*.toml`): patterns, a validator by name,
//! context words with a window, exclusion words, and the confidence given with
//! and without context. [`DetectorSet::load_dir`] reads and checks them all,
//! reporting every problem as `FILE:LINE:COL`, and compiles every pattern of
//! every detector into **one** multi-pattern automaton and every context word
//! into **one** Aho-Corasick automaton. [`DetectorSet::scan`] then makes a
//! single pass over the text; validators and context look-ups run only at the
//! rare places a pattern matched.
//!
//! ```
//! use hallpass_detect::{DetectorSet, Scratch, ValidateCtx};
//! let set = DetectorSet::from_toml_str("example.toml", r#"
//! [[detector]]
//! id = "uk_nhs_number"
//! description = "NHS number"
//! patterns = ['\b\d{3}[ -]?\d{3}[ -]?\d{4}\b']
//! validator = "nhs_mod11"
//! context = ["nhs"]
//! confidence_with_context = "high"
//! confidence_without_context = "low"
//! "#).unwrap();
//! let mut scratch = Scratch::new(&set);
//! let ctx = ValidateCtx { today: (2026, 11, 23) };
//! let mut hits = Vec::new();
//! set.scan(&mut scratch, "NHS no. 943 476 5919, tel 943 476 5918", &ctx, |h| hits.push(h));
//! assert_eq!(hits.len(), 1);
//! assert_eq!(set.id(hits[0].detector).as_str(), "uk_nhs_number");
//! ```
//!
//! Invariants: the engine never sees a socket, a file handle or a clock (today's
//! date comes in through [`ValidateCtx`]); it never stores a matched value; it
//! allocates nothing per match.
#![deny(missing_docs)]

mod load;
pub mod validators;

use std::ops::Range;

use aho_corasick::AhoCorasick;
use hallpass_core::{Confidence, DetectorId};
use regex_automata::{Anchored, Input, PatternSet, meta};

pub use load::DEFAULT_CONTEXT_WINDOW;
pub use validators::ValidateCtx;

/// Where context words (`context_scope`) or exclusion words
/// (`exclude_scope`) count.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// Anywhere within the window.
    Window,
    /// Within the window and on the same line (a column header becomes
    /// `Header: value` on the value's line when tables are read).
    Line,
}

/// One compiled detector.
#[derive(Debug, Clone)]
pub struct Detector {
    id: DetectorId,
    description: String,
    /// What a teacher or the DPO is told was found, plural (`NHS numbers`).
    name: String,
    validator: Option<validators::ValidateFn>,
    window: usize,
    scope: Scope,
    exclude_window: usize,
    /// Where exclusion words count: on the match's line (the default; in a
    /// table the next line is the next column), or anywhere in the window.
    exclude_scope: Scope,
    /// An exclusion word on the match's line drops it even when a context
    /// word is nearer.
    exclude_wins: bool,
    with_context: Confidence,
    without_context: Option<Confidence>,
}

impl Detector {
    /// The stable id.
    pub fn id(&self) -> &DetectorId {
        &self.id
    }
    /// What it finds, for people.
    pub fn description(&self) -> &str {
        &self.description
    }
    /// The kind of data it finds in plain words, plural (`NHS numbers`), for
    /// notices and the console: the file's `name`, else its `description`,
    /// else the id.
    pub fn name(&self) -> &str {
        [self.name.as_str(), self.description.as_str()]
            .into_iter()
            .find(|s| !s.trim().is_empty())
            .unwrap_or(self.id.as_str())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum WordKind {
    Context,
    Exclude,
}

/// Every detector, compiled together.
#[derive(Debug)]
pub struct DetectorSet {
    detectors: Vec<Detector>,
    /// All patterns of all detectors, one automaton (leftmost-first): finds
    /// the next place any pattern matches, and where each one ends.
    patterns: meta::Regex,
    /// The same patterns with all-matches semantics: which patterns match at
    /// one place.
    patterns_all: meta::Regex,
    /// Pattern id → index into `detectors`.
    pattern_owner: Vec<u16>,
    /// Pattern id → conclusive on its own (high, no validator, no context).
    pattern_certain: Vec<bool>,
    /// All context and exclusion words, ASCII case-insensitive.
    words: Option<AhoCorasick>,
    /// Word id → the detectors it is a context or exclusion word for.
    word_roles: Vec<Vec<(u16, WordKind)>>,
    /// Word id → its text, for `--explain`.
    word_text: Vec<String>,
}

/// Per-thread working memory for [`DetectorSet::scan`]: the automata's caches
/// and the context-word hits of the current text. Reused across texts so a
/// scan allocates nothing once warm.
#[derive(Debug)]
pub struct Scratch {
    cache: meta::Cache,
    cache_all: meta::Cache,
    set: PatternSet,
    words: Vec<WordHit>,
}

#[derive(Debug, Clone, Copy)]
struct WordHit {
    start: usize,
    end: usize,
    word: u32,
}

impl Scratch {
    /// Working memory sized for `set`.
    pub fn new(set: &DetectorSet) -> Scratch {
        Scratch {
            cache: set.patterns.create_cache(),
            cache_all: set.patterns_all.create_cache(),
            set: PatternSet::new(set.patterns.pattern_len()),
            words: Vec::new(),
        }
    }
}

/// One validated match. Carries positions, never a copy of the text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hit {
    /// Index of the detector ([`DetectorSet::id`] gives its id).
    pub detector: usize,
    /// Byte range of the match in the scanned text.
    pub span: Range<usize>,
    /// How sure.
    pub confidence: Confidence,
    /// The context word that raised it, as an index for [`DetectorSet::word`].
    pub context_word: Option<u32>,
}

impl DetectorSet {
    /// The detectors, in load order.
    pub fn detectors(&self) -> &[Detector] {
        &self.detectors
    }

    /// The plain name of the detector with this id ([`Detector::name`]); `None` for an id
    /// no detector has now (a finding stored before a detector was removed).
    pub fn name_of(&self, id: &str) -> Option<&str> {
        self.detectors
            .iter()
            .find(|d| d.id.as_str() == id)
            .map(Detector::name)
    }

    /// The id of detector `i`.
    pub fn id(&self, i: usize) -> &DetectorId {
        &self.detectors[i].id
    }

    /// The text of a context word, for `--explain`.
    pub fn word(&self, w: u32) -> &str {
        &self.word_text[w as usize]
    }

    /// Finds every validated match in `text` and calls `sink` with each, in
    /// order of position.
    pub fn scan(
        &self,
        scratch: &mut Scratch,
        text: &str,
        ctx: &ValidateCtx,
        mut sink: impl FnMut(Hit),
    ) {
        let hay = text.as_bytes();
        scratch.words.clear();
        let mut words_ready = false;
        let mut pos = 0;
        while pos < hay.len() {
            let input = Input::new(hay).range(pos..);
            let Some(m) = self.patterns.search_with(&mut scratch.cache, &input) else {
                break;
            };
            let start = m.start();
            // Other patterns may match at the same place (a 10-digit number is
            // both an NHS-number and a ULN candidate): ask for all of them.
            scratch.set.clear();
            let anchored = Input::new(hay).range(start..).anchored(Anchored::Yes);
            self.patterns_all.which_overlapping_matches_with(
                &mut scratch.cache_all,
                &anchored,
                &mut scratch.set,
            );
            let mut next = start + 1;
            // One hit per detector and start, however many of its patterns
            // match there. Pattern ids come in ascending order and each
            // detector's patterns are numbered together, so remembering the
            // last detector reported here is enough.
            let mut reported: Option<usize> = None;
            for pid in scratch.set.iter() {
                let d = usize::from(self.pattern_owner[pid.as_usize()]);
                if reported == Some(d) {
                    continue;
                }
                let end = if pid == m.pattern() {
                    m.end()
                } else {
                    let one = Input::new(hay)
                        .range(start..)
                        .anchored(Anchored::Pattern(pid));
                    match self.patterns.search_with(&mut scratch.cache, &one) {
                        Some(mm) => mm.end(),
                        None => continue,
                    }
                };
                if end == start {
                    continue;
                }
                if self.pattern_certain[pid.as_usize()] {
                    sink(Hit {
                        detector: d,
                        span: start..end,
                        confidence: Confidence::High,
                        context_word: None,
                    });
                    reported = Some(d);
                    next = next.max(end);
                    continue;
                }
                let det = &self.detectors[d];
                if let Some(validate) = det.validator
                    && !validate(&hay[start..end], ctx)
                {
                    continue;
                }
                if !words_ready {
                    self.find_words(hay, &mut scratch.words);
                    words_ready = true;
                }
                if let Some((confidence, context_word)) =
                    self.judge(d, hay, start..end, &scratch.words)
                {
                    sink(Hit {
                        detector: d,
                        span: start..end,
                        confidence,
                        context_word,
                    });
                    reported = Some(d);
                    next = next.max(end);
                }
            }
            pos = next;
        }
    }

    /// Finds every context and exclusion word in the text once, in order.
    fn find_words(&self, hay: &[u8], out: &mut Vec<WordHit>) {
        let Some(ac) = &self.words else { return };
        for m in ac.find_overlapping_iter(hay) {
            let (s, e) = (m.start(), m.end());
            let word_char = |b: u8| b.is_ascii_alphanumeric() || b >= 0x80;
            if word_char(hay[s]) && s > 0 && word_char(hay[s - 1]) {
                continue;
            }
            if word_char(hay[e - 1]) && e < hay.len() && word_char(hay[e]) {
                continue;
            }
            out.push(WordHit {
                start: s,
                end: e,
                word: m.pattern().as_u32(),
            });
        }
        // Overlapping matches come out by end position.
        out.sort_unstable_by_key(|w| w.start);
    }

    /// Decides the confidence of a validated candidate from the words around
    /// it: the nearest context word raises it; an exclusion word nearer than
    /// any context word drops it (`Tel: 943 476 5919`). Exclusion words count
    /// only on the match's line unless the detector says `window`: in a table
    /// read as `Header: value` lines, the next line is another column
    /// (`NHS number: 943 476 5919` then `Tel: …`). With `exclude_wins`, an
    /// exclusion word on the line drops the match whatever is nearer.
    fn judge(
        &self,
        d: usize,
        hay: &[u8],
        span: Range<usize>,
        words: &[WordHit],
    ) -> Option<(Confidence, Option<u32>)> {
        let det = &self.detectors[d];
        let reach = det.window.max(det.exclude_window);
        let lo = span.start.saturating_sub(reach + 64);
        let first = words.partition_point(|w| w.start < lo);
        let mut context: Option<(usize, u32)> = None;
        let mut exclude: Option<usize> = None;
        for w in &words[first..] {
            if w.start > span.end + reach {
                break;
            }
            let distance = if w.end <= span.start {
                span.start - w.end
            } else if w.start >= span.end {
                w.start - span.end
            } else {
                // A word inside the match itself (a "PIN" inside "PIN: 1234") is
                // not context for it.
                continue;
            };
            for &(owner, kind) in &self.word_roles[w.word as usize] {
                if usize::from(owner) != d {
                    continue;
                }
                match kind {
                    WordKind::Context if distance <= det.window => {
                        if det.scope == Scope::Line && crosses_line(hay, &span, w) {
                            continue;
                        }
                        if context.is_none_or(|(best, _)| distance < best) {
                            context = Some((distance, w.word));
                        }
                    }
                    WordKind::Exclude if distance <= det.exclude_window => {
                        let same_line = !crosses_line(hay, &span, w);
                        if same_line && det.exclude_wins {
                            return None;
                        }
                        if (same_line || det.exclude_scope == Scope::Window)
                            && exclude.is_none_or(|best| distance < best)
                        {
                            exclude = Some(distance);
                        }
                    }
                    _ => {}
                }
            }
        }
        if let Some(ex) = exclude
            && context.is_none_or(|(c, _)| ex < c)
        {
            return None;
        }
        match context {
            Some((_, word)) => Some((det.with_context, Some(word))),
            None => det.without_context.map(|c| (c, None)),
        }
    }
}

fn crosses_line(hay: &[u8], span: &Range<usize>, w: &WordHit) -> bool {
    let between = if w.end <= span.start {
        &hay[w.end..span.start]
    } else {
        &hay[span.end..w.start]
    };
    memchr::memchr(b'\n', between).is_some()
}

/// Masks a matched value for `--explain` and the console: only letters and
/// digits are kept, and all but the last three become `*`.
pub fn mask(value: &str) -> String {
    let chars: Vec<char> = value.chars().filter(|c| c.is_alphanumeric()).collect();
    let keep = chars.len().saturating_sub(3);
    chars
        .iter()
        .enumerate()
        .map(|(i, &c)| if i < keep { '*' } else { c })
        .collect()
}

pub use load::LoadError;

#[cfg(test)]
mod tests;
