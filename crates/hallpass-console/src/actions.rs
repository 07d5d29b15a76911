//! The DPO's decisions, shared by the JSON API and the pages: release (as it is, or with outside
//! addresses moved to Bcc), false positive, reject. The store makes each one exactly once and
//! audits it in the same transaction; this adds the rewritten spool file and the worker's wake-up.

use hallpass_store::{HeldFilter, HeldRecord, HeldStatus};

use crate::App;
use crate::auth::Caller;
use crate::clock;
use crate::error::Failure;
use crate::wire::HeldDetailJson;

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

    /// The copy in full, with its headers read from the spool file; the headers and the
    /// reason masked as on the message's page.
    pub(crate) async fn detail(&self, h: &HeldRecord) -> HeldDetailJson {
        let mut d = HeldDetailJson::new(h, Vec::new());
        d.headers = self.masked_headers(h).await;
        d.reason = self.masked_reason(d.reason.take()).await;
        d
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
        let mut rewritten = None;
        if bcc {
            let bytes = self
                .console
                .spool
                .read(&h.spool_id)
                .await
                .map_err(|e| Failure::internal("reading a held message", e))?;
            let rewrite = self.console.rewrite.clone();
            rewritten = tokio::task::spawn_blocking(move || rewrite(&bytes))
                .await
                // Never the panic's own message: it may quote the mail.
                .map_err(|e| {
                    let why = if e.is_panic() { "a panic" } else { "cancelled" };
                    Failure::internal("rewriting a held message", why)
                })?;
        }
        let record = self
            .console
            .store
            .release_held(
                &h,
                &caller.actor(),
                rewritten.as_deref(),
                false_positive,
                clock::now_ms(),
            )
            .await?;
        self.console.wake.notify_one();
        metrics::counter!("hallpass_releases_total").increment(1);
        if false_positive {
            metrics::counter!("hallpass_false_positives_total").increment(1);
        }
        (self.console.decided)(record.clone(), None).await;
        tracing::info!(id, by = %caller.name, rewritten = rewritten.is_some(), false_positive, "held message released");
        Ok(Released {
            record,
            rewritten: rewritten.is_some(),
        })
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
        metrics::counter!("hallpass_rejections_total").increment(1);
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
