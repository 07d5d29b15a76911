//! `hallpass held …`: the quarantine from a terminal, on the same store and
//! audit trail as the console. Works while `hallpass serve` runs.

use std::process::ExitCode;

use hallpass_engine::Engine;
use hallpass_store::{Actor, HeldFilter, HeldRecord, HeldStatus, StoreError};
use serde_json::json;

use crate::{EXIT_FAILURE, clock, serve};

/// What to do.
pub enum Action {
    /// List held messages.
    List { json: bool, all: bool },
    /// One message in full.
    Show { id: String, json: bool },
    /// Deliver it (optionally with external addresses moved to Bcc).
    Release {
        id: String,
        bcc: bool,
        false_positive: bool,
    },
    /// Refuse it, with a reason the sender is told.
    Reject { id: String, reason: String },
}

/// The person at the terminal, for the audit trail.
pub fn actor() -> Actor {
    let user = std::env::var("SUDO_USER")
        .or_else(|_| std::env::var("USER"))
        .unwrap_or_else(|_| "unknown".into());
    Actor {
        name: format!("cli:{user}"),
        address: None,
    }
}

/// The contract's JSON object for one held copy.
pub fn to_json(h: &HeldRecord) -> serde_json::Value {
    json!({
        "id": h.id,
        "received": clock::rfc3339(h.received_ms),
        "from": h.from,
        "rcpt": h.rcpt,
        "message_id": h.message_id,
        "rules": h.rules,
        "findings": h.findings.iter().map(|f| json!({
            "detector": f.detector,
            "where": f.location,
            "count": f.count,
            "confidence": f.confidence,
        })).collect::<Vec<_>>(),
        "status": h.status.as_str(),
    })
}

/// Runs one `held` command.
pub async fn run(engine: Engine, action: Action) -> anyhow::Result<ExitCode> {
    let (store, spool) = serve::open_storage(engine.config()).await?;
    match action {
        Action::List { json, all } => {
            let filter = HeldFilter {
                status: if all { None } else { Some(HeldStatus::Held) },
                limit: 10_000,
                ..HeldFilter::default()
            };
            let list = store.held_list(&filter).await?;
            for h in &list {
                if json {
                    println!("{}", to_json(h));
                } else {
                    let detectors: Vec<String> = h
                        .findings
                        .iter()
                        .map(|f| format!("{}×{}", f.detector, f.count))
                        .collect();
                    println!(
                        "{}  {}  {:<8}  {}  → {} recipient(s)  {}  {}",
                        h.id,
                        clock::rfc3339(h.received_ms),
                        h.status.as_str(),
                        h.from,
                        h.rcpt.len(),
                        h.rules.join(","),
                        detectors.join(" ")
                    );
                }
            }
            if !json && list.is_empty() {
                println!("nothing held");
            }
            Ok(ExitCode::SUCCESS)
        }
        Action::Show { id, json } => {
            let Some(h) = store.held_get(&id).await? else {
                return not_found(&id);
            };
            let headers = spool
                .read(&h.spool_id)
                .await
                .ok()
                .map(|b| hallpass_console::summary_headers(&b))
                .unwrap_or_default();
            if json {
                let mut v = to_json(&h);
                v["headers"] = json!(
                    headers
                        .iter()
                        .map(|(k, v)| json!({"name": k, "value": v}))
                        .collect::<Vec<_>>()
                );
                v["decided_by"] = json!(h.decided_by);
                v["reason"] = json!(h.reason);
                v["size"] = json!(h.size);
                println!("{v}");
            } else {
                println!("id:          {}", h.id);
                println!("status:      {}", h.status.as_str());
                if let (Some(by), Some(at)) = (&h.decided_by, h.decided_ms) {
                    println!("decided:     by {by} at {}", clock::rfc3339(at));
                }
                if let Some(r) = &h.reason {
                    println!("reason:      {r}");
                }
                println!("received:    {}", clock::rfc3339(h.received_ms));
                println!("from:        {}", h.from);
                println!("recipients:  {}", h.rcpt.join(", "));
                println!("size:        {} bytes", h.size);
                println!("rules:       {}", h.rules.join(", "));
                for (k, v) in &headers {
                    println!("{:<13}{v}", format!("{k}:"));
                }
                println!("findings:");
                for f in &h.findings {
                    println!(
                        "  {:<20} {:>4}  {:<6}  {}",
                        f.detector, f.count, f.confidence, f.location
                    );
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Action::Release {
            id,
            bcc,
            false_positive,
        } => {
            let Some(h) = store.held_get(&id).await? else {
                return not_found(&id);
            };
            if h.status != HeldStatus::Held {
                return already(&h);
            }
            let rewritten = if bcc {
                engine.hide_recipients(&spool.read(&h.spool_id).await?)
            } else {
                None
            };
            let now = clock::now_ms();
            match store
                .release_held(&h, &actor(), rewritten.as_deref(), false_positive, now)
                .await
            {
                Ok(r) => {
                    println!(
                        "released {id}: {} recipient(s) queued for delivery{}",
                        r.rcpt.len(),
                        if bcc { " with To/Cc rewritten" } else { "" }
                    );
                    Ok(ExitCode::SUCCESS)
                }
                Err(StoreError::AlreadyDecided { status, by, at_ms }) => {
                    decided_elsewhere(&id, status, by, at_ms)
                }
                Err(e) => Err(e.into()),
            }
        }
        Action::Reject { id, reason } => {
            match store.reject(&id, &actor(), &reason, clock::now_ms()).await {
                Ok(_) => {
                    println!("rejected {id}");
                    Ok(ExitCode::SUCCESS)
                }
                Err(StoreError::NotFound) => not_found(&id),
                Err(StoreError::AlreadyDecided { status, by, at_ms }) => {
                    decided_elsewhere(&id, status, by, at_ms)
                }
                Err(e) => Err(e.into()),
            }
        }
    }
}

fn not_found(id: &str) -> anyhow::Result<ExitCode> {
    eprintln!("hallpass: no held message {id}; `hallpass held list --all` shows them");
    Ok(ExitCode::from(EXIT_FAILURE))
}

fn already(h: &HeldRecord) -> anyhow::Result<ExitCode> {
    decided_elsewhere(&h.id, h.status, h.decided_by.clone(), h.decided_ms)
}

fn decided_elsewhere(
    id: &str,
    status: HeldStatus,
    by: Option<String>,
    at: Option<i64>,
) -> anyhow::Result<ExitCode> {
    eprintln!(
        "hallpass: {id} was already {} by {} at {}; nothing done",
        status.as_str(),
        by.as_deref().unwrap_or("someone"),
        at.map_or_else(|| "an earlier time".into(), clock::rfc3339)
    );
    Ok(ExitCode::from(EXIT_FAILURE))
}
