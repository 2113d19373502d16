//! The write-ahead journal as a middleware (the journal itself is [`crate::journal`]).
//!
//! - A message from a source that does not acknowledge messages ([`Acknowledges`]) is
//!   written ahead before the inner services see it; its row travels on in the
//!   submission ([`Submission::journal_row`]) and is completed with the outcome, which
//!   waits for that commit.
//! - A message that carries its row already (recovered from the journal at start) is not
//!   written again; its row is completed with the outcome. The recovery pipeline has
//!   this middleware outside the dedupe one, so a recovered message whose source resent
//!   it after the restart has its row completed with the outcome of that copy.
//! - The outcome of any other message with an id is recorded as its dedupe record,
//!   handed to the writer without waiting (the source keeps its own retransmission
//!   state).
//! - A write-ahead that fails refuses the message with 500, as [`NotTaken`]. A row whose
//!   message comes back [`NotTaken`] from the inner services stays in flight and is
//!   delivered again at the next start.
//!
//! The inner service is called once the write-ahead is committed, with the row in the
//! submission; its future must not start delivering before it is first polled (the
//! tower convention), which the timeout and the dispatcher keep.

use cpim_core::StatusCode;
use std::sync::Arc;
use std::task::{Context, Poll};

use cpim_core::adapter::BoxFuture;
use cpim_core::model::{Operation, Outcome, TransId};
use tower::{Layer, Service};

use super::dedupe::dedupe_key;
use super::{NotTaken, Submission};
use crate::journal::{Journal, JournalRow};

/// Tells whether the adapter of this name acknowledges messages itself
/// ([`cpim_core::adapter::Adapter::acknowledges_messages`]).
#[derive(Clone)]
pub struct Acknowledges(pub Arc<dyn Fn(&str) -> bool + Send + Sync>);

impl std::fmt::Debug for Acknowledges {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Acknowledges(..)")
    }
}

/// Layer for [`Journaled`].
#[derive(Clone, Debug)]
pub struct JournalLayer {
    journal: Option<(Arc<Journal>, Acknowledges)>,
}

impl JournalLayer {
    /// Writes messages from adapters for which `acks` is false ahead to `journal`, and
    /// records every outcome of a message with an id there.
    pub fn new(journal: Arc<Journal>, acks: Acknowledges) -> Self {
        JournalLayer {
            journal: Some((journal, acks)),
        }
    }

    /// Writes and records nothing: the pipeline of a gateway without a journal.
    pub fn none() -> Self {
        JournalLayer { journal: None }
    }
}

impl<S> Layer<S> for JournalLayer {
    type Service = Journaled<S>;
    fn layer(&self, inner: S) -> Journaled<S> {
        Journaled {
            inner,
            journal: self.journal.clone(),
        }
    }
}

/// The journal middleware.
#[derive(Clone, Debug)]
pub struct Journaled<S> {
    inner: S,
    journal: Option<(Arc<Journal>, Acknowledges)>,
}

impl<S> Service<Submission> for Journaled<S>
where
    S: Service<Submission, Response = Outcome> + Clone + Send + 'static,
    S::Error: Into<NotTaken>,
    S::Future: Send + 'static,
{
    type Response = Outcome;
    type Error = NotTaken;
    type Future = BoxFuture<'static, Result<Outcome, NotTaken>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), NotTaken>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, mut req: Submission) -> Self::Future {
        let (Some((journal, acks)), Operation::Message(m)) = (&self.journal, &req.op) else {
            let fut = self.inner.call(req);
            return Box::pin(async move { fut.await.map_err(Into::into) });
        };
        let journal = journal.clone();
        let trans_id = m.trans_id;
        let key = dedupe_key(m);
        if req.journal_row.is_some() || (acks.0)(&req.adapter) {
            // Nothing to write ahead: the outcome completes the row, or is the record.
            let row = req.journal_row.clone();
            let fut = self.inner.call(req);
            return Box::pin(async move {
                let out = fut.await.map_err(Into::into)?;
                complete(&journal, row, key, &out).await;
                Ok(out)
            });
        }
        // The write-ahead record, prepared here (serializing the message).
        let begin = Journal::begin_op(&req.adapter, m, key.clone());
        // The ready service goes into the future; a clone takes its place.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        Box::pin(async move {
            let op = begin.map_err(|e| refuse(trans_id, &e))?;
            let id = journal.commit(op).await.map_err(|e| refuse(trans_id, &e))?;
            let row = id.map(|id| JournalRow {
                id,
                key: key.clone(),
            });
            req.journal_row = row.clone();
            let out = inner.call(req).await.map_err(Into::into)?;
            complete(&journal, row, key, &out).await;
            Ok(out)
        })
    }
}

/// Completes `row` with the outcome (awaited), or, for a message not written ahead,
/// hands its dedupe record to the writer.
async fn complete(
    journal: &Journal,
    row: Option<JournalRow>,
    key: Option<(String, String)>,
    out: &Outcome,
) {
    match row {
        Some(row) => {
            let op = journal.done_op(Some(row.id), row.key, &out.status);
            if let Err(e) = journal.commit(op).await {
                // The outcome stands; the row is delivered again after a restart.
                tracing::error!(error = %e, "journal completion not committed");
            }
        }
        None if key.is_some() => {
            // Not written ahead (the source acknowledges messages itself): the record
            // only guards against a copy after a restart, so the outcome goes back
            // without waiting for its commit.
            if let Err(e) = journal.submit(journal.done_op(None, key, &out.status)) {
                tracing::error!(error = %e, "dedupe record not recorded");
            }
        }
        None => {}
    }
}

/// The answer when the write-ahead record cannot be committed: the message is refused
/// (the sender learns it failed) and not taken, so a later retry is delivered.
fn refuse(trans_id: TransId, error: &dyn std::error::Error) -> NotTaken {
    tracing::error!(%error, "message refused: write-ahead journal failed");
    NotTaken(Outcome::failure(
        trans_id,
        StatusCode::SERVER_INTERNAL_ERROR,
        "Server Internal Error: store unavailable",
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::router::dedupe::DedupeLayer;
    use crate::router::testutil::{msg, Recorder};
    use std::time::Duration;
    use tower::ServiceExt;

    fn with_id(adapter: &str, id: u64, mid: &str) -> Submission {
        let mut op = msg(id, "sip:alice@s.test", "bob@x.test", "hi");
        if let Operation::Message(m) = &mut op {
            m.message_id = Some(mid.into());
        }
        Submission::new(adapter, op)
    }

    fn journaled(name: &str) -> (crate::store::Store, Arc<Journal>, std::path::PathBuf) {
        let dir = std::env::temp_dir().join(format!("cpim-gw-loops-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let store = crate::store::Store::open(&dir).unwrap();
        let j = Journal::start(store.clone(), Duration::from_secs(60)).unwrap();
        (store, j, dir)
    }

    /// Dedupe over journal, as in the main pipeline.
    fn main_stack(
        j: &Arc<Journal>,
        acks: &Acknowledges,
        rec: &Recorder,
    ) -> super::super::dedupe::Dedupe<Journaled<Recorder>> {
        let journaled = JournalLayer::new(j.clone(), acks.clone()).layer(rec.clone());
        DedupeLayer::with_journal(j).layer(journaled)
    }

    /// Records persist: a new layer over the same journal (a restart) answers a
    /// duplicate from them; an acknowledging source is not written ahead.
    #[tokio::test]
    async fn dedupe_records_survive_a_new_layer() {
        let (store, j, dir) = journaled("persist");
        let acks = Acknowledges(Arc::new(|name: &str| name == "sip"));
        let rec = Recorder {
            code: 404,
            ..Default::default()
        };
        let svc = main_stack(&j, &acks, &rec);
        let out = svc.oneshot(with_id("sip", 1, "m1")).await.unwrap();
        assert_eq!(out.status.code, StatusCode::NOT_FOUND);
        assert!(rec.seen.lock().unwrap()[0].journal_row.is_none());
        // The record of an acknowledging source is not awaited: wait for the writer.
        j.flush().await.unwrap();
        assert_eq!(store.journal_len().unwrap(), 1);
        assert!(store.journal_in_flight().unwrap().is_empty());
        let rec2 = Recorder::default();
        let svc = main_stack(&j, &acks, &rec2);
        let out = svc.oneshot(with_id("sip", 2, "m1")).await.unwrap();
        assert_eq!(out.status.code, StatusCode::NOT_FOUND);
        assert_eq!(rec2.count(), 0);
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// A message from a source that does not acknowledge messages reaches the inner
    /// services written ahead, carrying its row, and leaves it completed.
    #[tokio::test]
    async fn written_ahead_row_travels_in_the_submission() {
        let (store, j, dir) = journaled("row");
        let acks = Acknowledges(Arc::new(|_: &str| false));
        let rec = Recorder::default();
        let svc = main_stack(&j, &acks, &rec);
        let out = svc.oneshot(with_id("xmpp", 1, "m1")).await.unwrap();
        assert_eq!(out.status.code, StatusCode::OK);
        let row = rec.seen.lock().unwrap()[0].journal_row.clone().unwrap();
        assert_eq!(row.key, Some(("sip:alice@s.test".into(), "m1".into())));
        assert_eq!(store.journal_len().unwrap(), 1);
        assert!(store.journal_in_flight().unwrap().is_empty());
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// A message recovered from the journal whose source already resent it (and got an
    /// outcome) is not delivered again, and its row is completed.
    #[tokio::test]
    async fn recovered_copy_of_a_done_message_completes_its_row() {
        let (store, j, dir) = journaled("recovered");
        let acks = Acknowledges(Arc::new(|_: &str| false));
        let rec = Recorder::default();
        let dedupe = DedupeLayer::with_journal(&j);
        let journal = JournalLayer::new(j.clone(), acks);
        let svc = dedupe.layer(journal.layer(rec.clone()));
        let recovery = journal.layer(dedupe.layer(rec.clone()));
        let Operation::Message(m) = with_id("xmpp", 1, "m1").op else {
            panic!()
        };
        let row = j
            .commit(Journal::begin_op("xmpp", &m, dedupe_key(&m)).unwrap())
            .await
            .unwrap()
            .unwrap();
        // The resent copy first (it writes its own row ahead and completes it) ...
        let resent = with_id("xmpp", 2, "m1");
        assert_eq!(
            svc.oneshot(resent).await.unwrap().status.code,
            StatusCode::OK
        );
        assert_eq!(store.journal_in_flight().unwrap().len(), 1);
        // ... then the recovery of the old row.
        let recovered = Submission::recovered("xmpp", row, m);
        let out = recovery.oneshot(recovered).await.unwrap();
        assert_eq!(out.status.code, StatusCode::OK);
        assert_eq!(rec.count(), 1);
        assert!(store.journal_in_flight().unwrap().is_empty());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
