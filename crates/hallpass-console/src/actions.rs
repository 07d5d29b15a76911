//! The DPO's decisions, shared by the JSON API and the pages: release (as it is, or with outside
//! addresses moved to Bcc), false positive, reject. The store makes each one exactly once and
//! audits it in the same transaction; this adds the rewritten spool file and the worker's wake-up.

use hallpass_store::{HeldFilter, HeldRecord, HeldStatus, new_id};

use crate::App;
use crate::auth::Caller;
use crate::clock;
use crate::error::Failure;
use crate::wire::{HeldDetailJson, summary_headers};

/// How a release went.
#[derive(Debug)]
pub(crate) struct Released {
    /// The copy, now released.
    pub record: HeldRecord,
    /// To/Cc were rewritten (there was something to move).
    pub rewritten: bool,
}

impl App {
    /// One held copy (any status); 404 when there is none.
    pub(crate) async fn held(&self, id: &str) -> Result<HeldRecord, Failure> {
        self.console
            .store
            .held_get(id)
            .await?
            .ok_or_else(|| Failure::NotFound("no such held message".into()))
    }

    /// The copy in full, with its headers read from the spool file.
    pub(crate) async fn detail(&self, h: &HeldRecord) -> HeldDetailJson {
        let headers = match self.console.spool.read(&h.spool_id).await {
            Ok(bytes) => summary_headers(&bytes),
            Err(e) => {
                tracing::warn!(id = %h.id, error = %e, "cannot read a held message's spool file");
                Vec::new()
            }
        };
        HeldDetailJson::new(h, headers)
    }

    /// Held copies matching `filter`.
    pub(crate) async fn held_list(&self, filter: &HeldFilter) -> Result<Vec<HeldRecord>, Failure> {
        Ok(self.console.store.held_list(filter).await?)
    }

    /// Releases a held copy for delivery (with To/Cc rewritten when `bcc`), recording a false
    /// positive when `false_positive`, and wakes the delivery worker.
    pub(crate) async fn release(
        &self,
        caller: &Caller,
        id: &str,
        bcc: bool,
        false_positive: bool,
    ) -> Result<Released, Failure> {
        let h = self.held(id).await?;
        if h.status != HeldStatus::Held {
            return Err(already(&h));
        }
        let spool = &self.console.spool;
        let mut rewritten = None;
        if bcc {
            let bytes = spool
                .read(&h.spool_id)
                .await
                .map_err(|e| Failure::internal("reading a held message", e))?;
            let rewrite = self.console.rewrite.clone();
            let out = tokio::task::spawn_blocking(move || rewrite(&bytes))
                .await
                .map_err(|e| Failure::internal("rewriting a held message", e))?;
            if let Some(bytes) = out {
                let rid = new_id();
                spool
                    .write(&rid, &bytes)
                    .await
                    .map_err(|e| Failure::internal("writing a rewritten message", e))?;
                rewritten = Some(rid);
            }
        }
        let spool_id = rewritten.as_deref().unwrap_or(&h.spool_id);
        let result = self
            .console
            .store
            .release(
                id,
                &caller.actor(),
                spool_id,
                false_positive,
                clock::now_ms(),
            )
            .await;
        match result {
            Ok(record) => {
                self.console.wake.notify_one();
                (self.console.decided)(record.clone(), None).await;
                tracing::info!(id, by = %caller.name, rewritten = rewritten.is_some(), false_positive, "held message released");
                Ok(Released {
                    record,
                    rewritten: rewritten.is_some(),
                })
            }
            Err(e) => {
                // Someone else decided first: the rewritten file is nobody's.
                if let Some(rid) = &rewritten
                    && let Err(e) = spool.remove(rid).await
                {
                    tracing::warn!(error = %e, "cannot remove an unused rewritten spool file");
                }
                Err(e.into())
            }
        }
    }

    /// Rejects a held copy with a reason.
    pub(crate) async fn reject(
        &self,
        caller: &Caller,
        id: &str,
        reason: &str,
    ) -> Result<HeldRecord, Failure> {
        let record = self
            .console
            .store
            .reject(id, &caller.actor(), reason, clock::now_ms())
            .await?;
        tracing::info!(id, by = %caller.name, "held message rejected");
        (self.console.decided)(record.clone(), Some(reason.to_string())).await;
        Ok(record)
    }
}

fn already(h: &HeldRecord) -> Failure {
    Failure::AlreadyDecided {
        status: h.status,
        by: h.decided_by.clone(),
        at_ms: h.decided_ms,
    }
}
