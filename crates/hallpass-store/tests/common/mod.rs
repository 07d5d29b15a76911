//! Helpers shared by the store's tests: a private temp folder removed at the end, and message
//! builders with synthetic addresses.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use hallpass_store::{CopyKind, FindingRecord, NewCopy, NewMessage, new_id};

/// A folder under the system temp dir, removed (with its contents) when dropped.
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new(name: &str) -> TempDir {
        let p = std::env::temp_dir().join(format!(
            "hallpass-store-{name}-{}-{}",
            std::process::id(),
            new_id()
        ));
        TempDir(p)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

pub fn finding(detector: &str, location: &str, count: u32) -> FindingRecord {
    FindingRecord {
        detector: detector.into(),
        location: location.into(),
        count,
        confidence: "high".into(),
    }
}

pub fn copy(kind: CopyKind, spool_id: &str, rcpts: &[&str]) -> NewCopy {
    NewCopy {
        id: new_id(),
        kind,
        spool_id: spool_id.into(),
        recipients: rcpts.iter().map(|r| r.to_string()).collect(),
        rules: Vec::new(),
        findings: Vec::new(),
    }
}

pub fn held_copy(
    spool_id: &str,
    rcpts: &[&str],
    rules: &[&str],
    findings: Vec<FindingRecord>,
) -> NewCopy {
    NewCopy {
        rules: rules.iter().map(|r| r.to_string()).collect(),
        findings,
        ..copy(CopyKind::Hold, spool_id, rcpts)
    }
}

pub fn message(sender: &str, received_ms: i64, copies: Vec<NewCopy>) -> NewMessage {
    let id = new_id();
    let mut spool_ids: Vec<String> = copies.iter().map(|c| c.spool_id.clone()).collect();
    spool_ids.dedup();
    NewMessage {
        id,
        received_ms,
        sender: sender.into(),
        message_id: Some(format!("{}@lumen.sch.uk", new_id())),
        size: 1234,
        spool_ids,
        copies,
    }
}
