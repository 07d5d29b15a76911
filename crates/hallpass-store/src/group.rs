//! Group commit on SQLite: writes that arrive while another is being committed wait, and the
//! next writer commits all of them in one transaction — one fsync for many messages, as the
//! spool does for its files. SQLite takes one writer at a time and every commit costs an fsync
//! (synchronous=FULL), so without this the relay's rate was bounded by the disk's fsync rate
//! divided by the writes per message.

use tokio::sync::{OwnedMutexGuard, oneshot};

use crate::counters::count_rows;
use crate::error::StoreError;
use crate::store::{Conn, Store, insert_message, record_rows};
use crate::types::{NewMessage, Outcome};

/// One write that may share a transaction.
#[derive(Debug)]
pub(crate) enum Work {
    /// An accepted message ([`Store::accept`]).
    Accept(NewMessage),
    /// Results of delivery attempts ([`Store::record`]), and when.
    Record(Vec<(i64, Outcome)>, i64),
    /// A sender's external recipients in the bulk window ([`crate::Counters`]); answers the total.
    Count {
        sender: String,
        event: String,
        n: u64,
        now_ms: i64,
        window_ms: i64,
    },
}

/// A write waiting for the next group commit, and where to say how it went.
/// The answer is the window's total for [`Work::Count`], 0 for the others.
pub(crate) type Waiting = (Work, oneshot::Sender<Result<u64, StoreError>>);

impl Store {
    /// Commits `work`, together with whatever else is waiting. Whoever gets the write turn
    /// writes everything waiting; if that transaction fails, each is written on its own so that
    /// one bad row cannot fail the others. Returns once this write is committed (or failed).
    ///
    /// The batch is written by a task of its own, so a caller that is dropped half-way (a client
    /// gone, a shutdown) cannot abandon the other callers' writes: each of them always hears how
    /// its own write went. A dropped caller's own write may still be committed.
    pub(crate) async fn group_write(&self, work: Work) -> Result<u64, StoreError> {
        let (done, result) = oneshot::channel();
        self.waiting().push((work, done));
        let turn = self.write_turn().lock_owned().await;
        let batch = std::mem::take(&mut *self.waiting());
        if !batch.is_empty() {
            let store = self.clone();
            // Awaited, but not cancelled with this call: dropping a JoinHandle detaches it.
            let _ = tokio::spawn(async move { store.write_batch(turn, batch).await }).await;
        }
        result.await.unwrap_or_else(|_| {
            Err(StoreError::Shared(
                "the write was lost in a crash of its task".into(),
            ))
        })
    }

    async fn write_batch(&self, _turn: OwnedMutexGuard<()>, batch: Vec<Waiting>) {
        let together = self.write_all(batch.iter().map(|(w, _)| w)).await;
        match together {
            Ok(answers) => {
                for ((_, done), answer) in batch.into_iter().zip(answers) {
                    let _ = done.send(Ok(answer));
                }
            }
            // A row of one write broke a constraint: write each on its own, so only that one fails.
            Err(e) if batch.len() > 1 && is_about_a_row(&e) => {
                for (work, done) in batch {
                    let alone = self.write_all(std::iter::once(&work)).await;
                    let _ = done.send(alone.map(|a| a.first().copied().unwrap_or(0)));
                }
            }
            // Anything else (the database locked by another process for the whole busy timeout,
            // a full disk) would fail each of them again, one timeout at a time: fail them all now.
            Err(e) => {
                let text = e.to_string();
                let mut first = Some(e);
                for (_, done) in batch {
                    let err = first
                        .take()
                        .unwrap_or_else(|| StoreError::Shared(text.clone()));
                    let _ = done.send(Err(err));
                }
            }
        }
    }

    async fn write_all(&self, works: impl Iterator<Item = &Work>) -> Result<Vec<u64>, StoreError> {
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        let mut answers = Vec::new();
        for work in works {
            answers.push(apply(&mut tx, work).await?);
        }
        tx.commit().await?;
        Ok(answers)
    }
}

async fn apply(tx: &mut Conn, work: &Work) -> Result<u64, StoreError> {
    match work {
        Work::Accept(m) => insert_message(tx, m).await.map(|()| 0),
        Work::Record(results, now_ms) => record_rows(tx, results, *now_ms).await.map(|()| 0),
        Work::Count {
            sender,
            event,
            n,
            now_ms,
            window_ms,
        } => count_rows(tx, sender, event, *n, *now_ms, *window_ms).await,
    }
}

/// True for errors about a row (a constraint), which writing the rows one by one can isolate.
fn is_about_a_row(e: &StoreError) -> bool {
    use sqlx::error::ErrorKind;
    match e {
        StoreError::Db(sqlx::Error::Database(db)) => matches!(
            db.kind(),
            ErrorKind::UniqueViolation
                | ErrorKind::ForeignKeyViolation
                | ErrorKind::NotNullViolation
                | ErrorKind::CheckViolation
        ),
        _ => false,
    }
}
