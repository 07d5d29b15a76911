//! `hallpass scan`: many files in parallel across cores, results printed in
//! the order the files were given, as text or JSON Lines.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;

use hallpass_engine::{Engine, Report, ScanOptions};
use serde::Serialize;

/// How to print.
#[derive(Debug, Clone, Copy)]
pub struct Format {
    pub json: bool,
    pub explain: bool,
}

/// One input: a file, or standard input.
enum Source {
    File(PathBuf),
    Stdin,
}

impl Source {
    fn name(&self) -> String {
        match self {
            Source::File(p) => p.display().to_string(),
            Source::Stdin => "-".into(),
        }
    }
}

pub fn run(engine: &Engine, paths: &[PathBuf], format: Format) -> ExitCode {
    let mut failed = false;
    let mut sources = Vec::new();
    for p in paths {
        if p.as_os_str() == "-" {
            sources.push(Source::Stdin);
        } else if p.is_dir() {
            let mut found = Vec::new();
            if let Err(e) = collect_eml(p, &mut found) {
                eprintln!("hallpass: cannot read folder {}: {e}", p.display());
                failed = true;
            }
            found.sort();
            sources.extend(found.into_iter().map(Source::File));
        } else {
            sources.push(Source::File(p.clone()));
        }
    }
    let opts = ScanOptions {
        today: crate::clock::today(),
        explain: format.explain,
        sender_window_count: None,
    };

    // Read stdin up front: it can only be read once, on this thread.
    let stdin_bytes = if sources.iter().any(|s| matches!(s, Source::Stdin)) {
        let mut buf = Vec::new();
        match std::io::stdin().read_to_end(&mut buf) {
            Ok(_) => Some(buf),
            Err(e) => {
                eprintln!("hallpass: cannot read standard input: {e}");
                failed = true;
                None
            }
        }
    } else {
        None
    };

    let next = AtomicUsize::new(0);
    let workers = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(sources.len().max(1));
    let (tx, rx) = mpsc::channel::<(usize, Result<String, String>)>();
    let out = std::io::stdout();
    std::thread::scope(|s| {
        for _ in 0..workers {
            let tx = tx.clone();
            let (sources, next, stdin_bytes, opts) = (&sources, &next, &stdin_bytes, &opts);
            s.spawn(move || {
                let mut ws = engine.workspace();
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(src) = sources.get(i) else { break };
                    let bytes = match src {
                        Source::File(p) => std::fs::read(p)
                            .map_err(|e| format!("cannot read {}: {e}", p.display())),
                        Source::Stdin => stdin_bytes
                            .clone()
                            .ok_or_else(|| "standard input could not be read".to_string()),
                    };
                    let line = bytes.map(|b| {
                        let start = std::time::Instant::now();
                        let budget =
                            std::time::Duration::from_millis(engine.config().limits.time_budget_ms);
                        let report = engine
                            .scan_within(&mut ws, &b, None, opts, &|| start.elapsed() > budget);
                        render(&src.name(), &report, format)
                    });
                    if tx.send((i, line)).is_err() {
                        break;
                    }
                }
            });
        }
        drop(tx);
        // Print in input order as results arrive.
        let mut pending: std::collections::BTreeMap<usize, Result<String, String>> =
            Default::default();
        let mut printed = 0;
        let mut out = out.lock();
        for (i, r) in rx {
            pending.insert(i, r);
            while let Some(r) = pending.remove(&printed) {
                match r {
                    Ok(text) => {
                        if out.write_all(text.as_bytes()).is_err() {
                            return;
                        }
                    }
                    Err(e) => {
                        let _ = out.flush();
                        eprintln!("hallpass: {e}");
                        failed = true;
                    }
                }
                printed += 1;
            }
        }
        let _ = out.flush();
    });
    if failed {
        ExitCode::from(crate::EXIT_FAILURE)
    } else {
        ExitCode::SUCCESS
    }
}

fn collect_eml(dir: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let path = entry.path();
        let ft = entry.file_type()?;
        if ft.is_dir() {
            collect_eml(&path, out)?;
        } else if path
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("eml"))
        {
            out.push(path);
        }
    }
    Ok(())
}

// ---- the wire format of `scan --json`: fields in the contract's order ----

#[derive(Serialize)]
struct JsonReport<'a> {
    file: &'a str,
    verdict: &'static str,
    rules: Vec<&'static str>,
    findings: Vec<JsonFinding<'a>>,
    recipients: JsonRecipients,
    attachments: Vec<JsonAttachment<'a>>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    explain: Vec<JsonExplained<'a>>,
}

#[derive(Serialize)]
struct JsonFinding<'a> {
    detector: &'a str,
    #[serde(rename = "where")]
    location: &'a str,
    count: u32,
    confidence: &'static str,
}

#[derive(Serialize)]
struct JsonRecipients {
    internal: u32,
    partner: u32,
    external: u32,
}

#[derive(Serialize)]
struct JsonAttachment<'a> {
    name: &'a str,
    #[serde(rename = "type")]
    kind: &'static str,
    encrypted: bool,
    scanned: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<&'a str>,
}

#[derive(Serialize)]
struct JsonExplained<'a> {
    detector: &'a str,
    #[serde(rename = "where")]
    location: &'a str,
    value: &'a str,
    confidence: &'static str,
    context: Option<&'a str>,
    /// Masked text just before the value (`…` first when cut); added after the first fields.
    before: &'a str,
    /// Masked text just after it (`…` last when cut).
    after: &'a str,
}

fn attachment_name(location: &str) -> &str {
    location.strip_prefix("attachment:").unwrap_or(location)
}

fn render(file: &str, r: &Report, format: Format) -> String {
    if format.json {
        let j = JsonReport {
            file,
            verdict: r.verdict.as_str(),
            rules: r.rules().iter().map(|x| x.as_str()).collect(),
            findings: r
                .findings
                .iter()
                .map(|f| JsonFinding {
                    detector: f.detector.as_str(),
                    location: f.location.as_str(),
                    count: f.count,
                    confidence: f.confidence.as_str(),
                })
                .collect(),
            recipients: JsonRecipients {
                internal: r.counts.internal,
                partner: r.counts.partner,
                external: r.counts.external,
            },
            attachments: r
                .attachments
                .iter()
                .map(|a| JsonAttachment {
                    name: attachment_name(a.location.as_str()),
                    kind: a.kind,
                    encrypted: a.encrypted,
                    scanned: a.scanned,
                    reason: a.unscannable.as_deref(),
                })
                .collect(),
            explain: r
                .explained
                .iter()
                .map(|e| JsonExplained {
                    detector: e.detector.as_str(),
                    location: e.location.as_str(),
                    value: &e.masked,
                    confidence: e.confidence.as_str(),
                    context: e.context.as_deref(),
                    before: &e.before,
                    after: &e.after,
                })
                .collect(),
        };
        let mut line = serde_json::to_string(&j).expect("plain data serialises");
        line.push('\n');
        return line;
    }
    let mut s = String::new();
    let rules: Vec<&str> = r.rules().iter().map(|x| x.as_str()).collect();
    s.push_str(&format!("{file}: {}", r.verdict.as_str()));
    if !rules.is_empty() {
        s.push_str(&format!(" ({})", rules.join(", ")));
    }
    s.push('\n');
    s.push_str(&format!(
        "  recipients: {} internal, {} partner, {} external\n",
        r.counts.internal, r.counts.partner, r.counts.external
    ));
    for f in &r.findings {
        s.push_str(&format!(
            "  {} x{} in {} ({})\n",
            f.detector,
            f.count,
            f.location,
            f.confidence.as_str()
        ));
    }
    for a in &r.attachments {
        let state = match (&a.unscannable, a.scanned, a.encrypted) {
            (Some(why), _, _) => format!("not scanned: {why}"),
            (None, _, true) => "encrypted".to_string(),
            (None, true, false) => "scanned".to_string(),
            (None, false, false) => "not text (not scanned)".to_string(),
        };
        s.push_str(&format!(
            "  attachment {} ({}, {} bytes): {state}\n",
            attachment_name(a.location.as_str()),
            a.kind,
            a.size
        ));
    }
    for (loc, why) in &r.unscannable {
        if !r.attachments.iter().any(|a| &a.location == loc) {
            s.push_str(&format!("  {loc}: not fully scanned: {why}\n"));
        }
    }
    if format.explain {
        for e in &r.explained {
            let ctx = e
                .context
                .as_deref()
                .map(|c| format!(", context \"{c}\""))
                .unwrap_or_default();
            s.push_str(&format!(
                "    {}: {} {} ({}{ctx})\n",
                e.location,
                e.detector,
                e.masked,
                e.confidence.as_str()
            ));
            // The value in its context, everything in it masked: `…NHS no. *******919 for…`.
            if !e.before.is_empty() || !e.after.is_empty() {
                s.push_str(&format!("      {}{}{}\n", e.before, e.masked, e.after));
            }
        }
    }
    s
}
