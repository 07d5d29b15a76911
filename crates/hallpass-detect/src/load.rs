//! Reading detector files: `[[detector]]` tables with spans, checked, then
//! compiled into one [`DetectorSet`].

use std::collections::HashMap;
use std::ops::Range;
use std::path::{Path, PathBuf};

use aho_corasick::{AhoCorasick, AhoCorasickKind, MatchKind};
use hallpass_core::diag::{Problem, Problems, toml_problem};
use hallpass_core::{Confidence, DetectorId};
use regex_automata::{meta, util::syntax};
use serde::Deserialize;
use toml::Spanned;

use crate::{Detector, DetectorSet, Scope, WordKind, validators};

/// Characters either side of a match in which context words count, unless a
/// detector says otherwise (the figure Microsoft Purview uses for its UK
/// templates).
pub const DEFAULT_CONTEXT_WINDOW: usize = 300;

/// Why a set of detector files could not be loaded.
#[derive(Debug)]
#[non_exhaustive]
pub enum LoadError {
    /// Problems in the files, each at a line and column.
    Problems(Problems),
}

impl std::fmt::Display for LoadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LoadError::Problems(p) => p.fmt(f),
        }
    }
}

impl std::error::Error for LoadError {}

impl From<LoadError> for Problems {
    fn from(e: LoadError) -> Problems {
        match e {
            LoadError::Problems(p) => p,
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    #[serde(default)]
    detector: Vec<RawDetector>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDetector {
    id: Spanned<String>,
    #[serde(default)]
    description: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    patterns: Vec<Spanned<String>>,
    /// Patterns conclusive on their own (a private key block): high
    /// confidence, no validator, no context needed.
    #[serde(default)]
    certain_patterns: Vec<Spanned<String>>,
    validator: Option<Spanned<String>>,
    #[serde(default)]
    context: Vec<Spanned<String>>,
    context_window: Option<Spanned<usize>>,
    #[serde(default)]
    context_scope: Option<Spanned<String>>,
    #[serde(default)]
    exclude: Vec<Spanned<String>>,
    exclude_window: Option<Spanned<usize>>,
    #[serde(default)]
    exclude_scope: Option<Spanned<String>>,
    /// An exclusion word on the match's line drops it even when a context
    /// word is nearer.
    #[serde(default)]
    exclude_wins: bool,
    confidence_with_context: Confidence,
    confidence_without_context: Spanned<String>,
}

/// A detector as read, before compiling, with where it came from.
struct Pending {
    detector: Detector,
    /// Each pattern, whether it is certain, and its span in the file.
    patterns: Vec<(String, bool, Range<usize>)>,
    context: Vec<String>,
    exclude: Vec<String>,
    /// Index into the sources, and the span of the id, for problems found
    /// only when everything is compiled together.
    source: usize,
    id_span: Range<usize>,
}

fn syntax_config() -> syntax::Config {
    // ASCII classes and word boundaries: `\d` is 0-9 and `\b` is fast in the
    // lazy DFA. Patterns that need Unicode can say `(?u)`.
    syntax::Config::new().unicode(false).utf8(false)
}

impl DetectorSet {
    /// Loads every `*.toml` file in `dir`, in name order.
    pub fn load_dir(dir: &Path) -> Result<DetectorSet, LoadError> {
        let mut files: Vec<PathBuf> = match std::fs::read_dir(dir) {
            Ok(rd) => rd
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|x| x == "toml"))
                .collect(),
            Err(e) => {
                return Err(LoadError::Problems(Problems(vec![Problem {
                    file: dir.to_path_buf(),
                    line: 1,
                    col: 1,
                    message: format!(
                        "cannot read the detectors folder: {e}; set [detectors] path in the config"
                    ),
                }])));
            }
        };
        files.sort();
        let mut sources = Vec::new();
        let mut problems = Problems::default();
        for f in files {
            match std::fs::read_to_string(&f) {
                Ok(s) => sources.push((f, s)),
                Err(e) => problems.push(Problem {
                    file: f,
                    line: 1,
                    col: 1,
                    message: format!("cannot read: {e}"),
                }),
            }
        }
        if sources.is_empty() && problems.is_empty() {
            problems.push(Problem {
                file: dir.to_path_buf(),
                line: 1,
                col: 1,
                message: "no detector files (*.toml) here".into(),
            });
        }
        DetectorSet::from_sources(&sources, problems)
    }

    /// Loads detectors from one string, as if it were the file `name`.
    pub fn from_toml_str(name: &str, src: &str) -> Result<DetectorSet, LoadError> {
        DetectorSet::from_sources(
            &[(PathBuf::from(name), src.to_string())],
            Problems::default(),
        )
    }

    fn from_sources(
        sources: &[(PathBuf, String)],
        mut problems: Problems,
    ) -> Result<DetectorSet, LoadError> {
        let mut pending: Vec<Pending> = Vec::new();
        let mut seen: HashMap<String, (PathBuf, usize)> = HashMap::new();
        for (source, (file, src)) in sources.iter().enumerate() {
            let raw: RawFile = match toml::from_str(src) {
                Ok(r) => r,
                Err(e) => {
                    problems.push(toml_problem(file, src, &e));
                    continue;
                }
            };
            for d in raw.detector {
                let mut at = |span: Range<usize>, msg: String| {
                    problems.push(Problem::at(file, src, Some(span), msg))
                };
                if let Some(mut p) = check_one(&d, &mut at) {
                    p.source = source;
                    let id = d.id.get_ref().clone();
                    if let Some((other, line)) = seen.get(&id) {
                        at(
                            d.id.span(),
                            format!(
                                "detector `{id}` is already defined at {}:{line}",
                                other.display()
                            ),
                        );
                        continue;
                    }
                    seen.insert(
                        id,
                        (
                            file.clone(),
                            hallpass_core::diag::line_col(src, d.id.span().start).0,
                        ),
                    );
                    pending.push(p);
                }
            }
        }
        if !problems.is_empty() {
            return Err(LoadError::Problems(problems));
        }
        compile(pending, sources).map_err(LoadError::Problems)
    }
}

/// Checks one detector, reporting each problem at its span; `None` when any.
fn check_one(d: &RawDetector, at: &mut impl FnMut(Range<usize>, String)) -> Option<Pending> {
    let mut ok = true;
    let id = d.id.get_ref();
    if id.is_empty()
        || !id.starts_with(|c: char| c.is_ascii_lowercase())
        || !id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
    {
        at(
            d.id.span(),
            format!(
                "detector id `{id}` must be lower-case letters, digits and _ (like uk_nhs_number)"
            ),
        );
        ok = false;
    }
    if d.patterns.is_empty() && d.certain_patterns.is_empty() {
        at(
            d.id.span(),
            "give at least one pattern (patterns = ['...'])".into(),
        );
        ok = false;
    }
    for p in d.patterns.iter().chain(&d.certain_patterns) {
        if p.get_ref().is_empty() {
            at(p.span(), "an empty pattern would match everywhere".into());
            ok = false;
            continue;
        }
        match meta::Regex::builder()
            .syntax(syntax_config())
            .build(p.get_ref())
        {
            Err(e) => {
                at(p.span(), format!("bad regular expression: {}", reason(&e)));
                ok = false;
            }
            Ok(r) if r.is_match("") => {
                at(
                    p.span(),
                    "this pattern matches the empty string, so it would match everywhere".into(),
                );
                ok = false;
            }
            Ok(_) => {}
        }
    }
    let validator = match &d.validator {
        None => None,
        Some(v) => match validators::by_name(v.get_ref()) {
            Some(f) => Some(f),
            None => {
                let known: Vec<&str> = validators::VALIDATORS.iter().map(|(n, _)| *n).collect();
                at(
                    v.span(),
                    format!(
                        "unknown validator `{}`; known: {}",
                        v.get_ref(),
                        known.join(", ")
                    ),
                );
                ok = false;
                None
            }
        },
    };
    let without_context = match d.confidence_without_context.get_ref().as_str() {
        "none" => None,
        "low" => Some(Confidence::Low),
        "medium" => Some(Confidence::Medium),
        "high" => Some(Confidence::High),
        other => {
            at(
                d.confidence_without_context.span(),
                format!("confidence `{other}` must be none, low, medium or high"),
            );
            ok = false;
            None
        }
    };
    if without_context.is_none() && d.context.is_empty() && ok {
        at(d.confidence_without_context.span(), "with no context words and `none` without context, this detector can never find anything".into());
        ok = false;
    }
    let scope = match d.context_scope.as_ref().map(|s| s.get_ref().as_str()) {
        None | Some("window") => Scope::Window,
        Some("line") => Scope::Line,
        Some(other) => {
            at(
                d.context_scope.as_ref().unwrap().span(),
                format!("context_scope `{other}` must be window or line"),
            );
            ok = false;
            Scope::Window
        }
    };
    let exclude_scope = match d.exclude_scope.as_ref().map(|s| s.get_ref().as_str()) {
        None | Some("line") => Scope::Line,
        Some("window") => Scope::Window,
        Some(other) => {
            at(
                d.exclude_scope.as_ref().unwrap().span(),
                format!("exclude_scope `{other}` must be line or window"),
            );
            ok = false;
            Scope::Line
        }
    };
    let mut window_of = |w: &Option<Spanned<usize>>, default: usize| match w {
        Some(w) if *w.get_ref() > 5000 => {
            at(
                w.span(),
                "a window over 5000 characters would make context meaningless".into(),
            );
            ok = false;
            default
        }
        Some(w) => *w.get_ref(),
        None => default,
    };
    let window = window_of(&d.context_window, DEFAULT_CONTEXT_WINDOW);
    let exclude_window = window_of(&d.exclude_window, 30);
    let mut words = |list: &[Spanned<String>]| -> Vec<String> {
        let mut out = Vec::new();
        for w in list {
            let t = w.get_ref().trim();
            if t.is_empty() {
                at(
                    w.span(),
                    "an empty context word would match everywhere".into(),
                );
                ok = false;
            } else {
                out.push(t.to_string());
            }
        }
        out
    };
    let context = words(&d.context);
    let exclude = words(&d.exclude);
    if !ok {
        return None;
    }
    Some(Pending {
        detector: Detector {
            id: DetectorId::new(id),
            description: d.description.clone(),
            name: d.name.clone(),
            validator,
            window,
            scope,
            exclude_window,
            exclude_scope,
            exclude_wins: d.exclude_wins,
            with_context: d.confidence_with_context,
            without_context,
        },
        patterns: d
            .patterns
            .iter()
            .map(|p| (p.get_ref().clone(), false, p.span()))
            .chain(
                d.certain_patterns
                    .iter()
                    .map(|p| (p.get_ref().clone(), true, p.span())),
            )
            .collect(),
        context,
        exclude,
        source: 0,
        id_span: d.id.span(),
    })
}

/// The one-line reason of a regex build error. A syntax error renders the
/// pattern with a caret over several lines; keep its reason ("error: unclosed
/// group").
fn reason(e: &meta::BuildError) -> String {
    if let Some(limit) = e.size_limit() {
        return format!(
            "too large: it would compile to more than {} MiB; shorten long repetitions such as {{1000}}",
            limit >> 20
        );
    }
    let full = e
        .syntax_error()
        .map_or_else(|| e.to_string(), ToString::to_string);
    full.lines()
        .find_map(|l| l.trim().strip_prefix("error: "))
        .map_or_else(
            || full.lines().next().unwrap_or("").trim().to_string(),
            str::to_string,
        )
}

/// Builds one automaton over every pattern with the engine's settings.
fn build_all(
    patterns: &[&str],
    kind: regex_automata::MatchKind,
) -> Result<meta::Regex, Box<meta::BuildError>> {
    meta::Regex::builder()
        .syntax(syntax_config())
        // Room for the lazy DFA over a few dozen patterns, so it does not
        // thrash and fall back to a slower engine on number-heavy text.
        .configure(
            meta::Config::new()
                .match_kind(kind)
                .hybrid_cache_capacity(16 << 20),
        )
        .build_many(patterns)
        .map_err(Box::new)
}

/// When all patterns together fail to compile although each compiles on its
/// own (the automaton's size limit is for the whole set), finds the pattern
/// that takes the set over: the first `k` such that patterns `..=k` fail.
/// Sizes only grow as patterns are added, so a binary search will do.
fn first_failing(patterns: &[&str], kind: regex_automata::MatchKind) -> usize {
    let (mut ok, mut bad) = (0, patterns.len());
    while bad - ok > 1 {
        let mid = ok + (bad - ok) / 2;
        if build_all(&patterns[..mid], kind).is_ok() {
            ok = mid;
        } else {
            bad = mid;
        }
    }
    bad.saturating_sub(1)
}

fn compile(pending: Vec<Pending>, sources: &[(PathBuf, String)]) -> Result<DetectorSet, Problems> {
    let mut patterns: Vec<String> = Vec::new();
    let mut pattern_at: Vec<(usize, Range<usize>)> = Vec::new();
    let mut pattern_owner = Vec::new();
    let mut pattern_certain = Vec::new();
    let mut word_index: HashMap<String, u32> = HashMap::new();
    let mut word_text: Vec<String> = Vec::new();
    let mut word_roles: Vec<Vec<(u16, WordKind)>> = Vec::new();
    let mut detectors = Vec::new();
    let mut last_at = (0, 0..0);
    let problem = |source: usize, span: Range<usize>, msg: String| {
        let (file, src) = &sources[source];
        Problems(vec![Problem::at(file, src, Some(span), msg)])
    };
    for (i, p) in pending.into_iter().enumerate() {
        let Ok(owner) = u16::try_from(i) else {
            return Err(problem(
                p.source,
                p.id_span,
                format!("too many detectors: at most {} are supported", u16::MAX),
            ));
        };
        for (pat, certain, span) in p.patterns {
            patterns.push(pat);
            pattern_at.push((p.source, span));
            pattern_owner.push(owner);
            pattern_certain.push(certain);
        }
        for (list, kind) in [
            (p.context, WordKind::Context),
            (p.exclude, WordKind::Exclude),
        ] {
            for w in list {
                let key = w.to_ascii_lowercase();
                let id = *word_index.entry(key).or_insert_with(|| {
                    word_text.push(w.clone());
                    word_roles.push(Vec::new());
                    (word_text.len() - 1) as u32
                });
                word_roles[id as usize].push((owner, kind));
            }
        }
        last_at = (p.source, p.id_span);
        detectors.push(p.detector);
    }
    let refs: Vec<&str> = patterns.iter().map(String::as_str).collect();
    let build = |kind| {
        build_all(&refs, kind).map_err(|e| {
            let k = first_failing(&refs, kind);
            let (source, span) = pattern_at.get(k).unwrap_or(&last_at).clone();
            let message = match e.size_limit() {
                Some(limit) => format!(
                    "all detectors' patterns together would compile to more than {} MiB, and \
                     this one takes them over the limit: shorten long repetitions such as {{1000}}",
                    limit >> 20
                ),
                None => format!(
                    "all detectors' patterns together do not compile ({e}), from this one on"
                ),
            };
            problem(source, span, message)
        })
    };
    let patterns_re = build(regex_automata::MatchKind::LeftmostFirst)?;
    let patterns_all = build(regex_automata::MatchKind::All)?;
    let words = if word_text.is_empty() {
        None
    } else {
        // A DFA is fastest; a very large word list may not fit one, and the
        // default choice (a contiguous NFA) takes any list.
        let build = |kind| {
            AhoCorasick::builder()
                .ascii_case_insensitive(true)
                .match_kind(MatchKind::Standard)
                .kind(kind)
                .build(&word_text)
        };
        match build(Some(AhoCorasickKind::DFA)).or_else(|_| build(None)) {
            Ok(ac) => Some(ac),
            Err(e) => {
                return Err(problem(
                    last_at.0,
                    last_at.1,
                    format!(
                        "the context and exclusion words of all detectors do not compile together: {e}"
                    ),
                ));
            }
        }
    };
    Ok(DetectorSet {
        detectors,
        patterns: patterns_re,
        patterns_all,
        pattern_owner,
        pattern_certain,
        words,
        word_roles,
        word_text,
    })
}
