//! The write-ahead journal and the persistent dedupe records.
//!
//! A message from a source whose protocol has no per-message acknowledgement
//! ([`cpim_core::adapter::Adapter::acknowledges_messages`] false: XMPP, IRC) counts as
//! accepted the moment the gateway reads it. The journal middleware
//! ([`crate::router::journal`]) therefore writes it to the journal (table `journal` of the
//! [`Store`]) before delivery is attempted, and completes the row once the target
//! answered: the row then keeps only the outcome, as the dedupe record of
//! `(bare source, message id)` until the dedupe TTL runs out. The row travels with the
//! message ([`crate::router::Submission::journal_row`]): a message the queue takes over is
//! moved from the journal into the queue in one transaction
//! ([`crate::queue::Queue::accept`]). At start, rows still in flight are delivered again
//! ([`crate::router::Submission::recovered`]) and the dedupe records are loaded into the
//! dedupe cache ([`crate::router::dedupe`]), so a retransmission after a restart gets the
//! first outcome instead of a second delivery. Sources that acknowledge messages
//! themselves (SIP, JSON) are not written ahead, but their outcomes are recorded the same
//! way.
//!
//! Group commit: every change goes through one writer thread that drains a channel and
//! applies whatever is waiting in one SQLite transaction, so concurrent messages share
//! one fsync. The write-ahead of a message and the completion of a written-ahead row are
//! awaited ([`Journal::commit`]); the dedupe record of a message from an acknowledging
//! source is handed to the writer without waiting ([`Journal::submit`]): the source keeps
//! its own retransmission state, so the record only has to stop a copy that arrives after a
//! restart, and the source's answer does not wait for an fsync. Changes are applied in the
//! order they are handed over, so an awaited commit also covers everything submitted
//! before it ([`Journal::flush`]).

use std::sync::mpsc;
use std::sync::Arc;
use std::time::Duration;

use cpim_core::model::{Message, Status};
use tokio::sync::oneshot;

use crate::records::{MessageRec, RecordError};
use crate::store::{unix_ms, DoneRecord, JournalOp, Store, StoreError};

/// Most changes committed in one transaction.
const MAX_BATCH: usize = 1024;
/// How often expired dedupe records are deleted, milliseconds.
const PRUNE_EVERY_MS: u64 = 60_000;
/// How long changes nobody waits for ([`Journal::submit`]) may wait before they are
/// committed. They travel on a channel of their own that the writer never sleeps on, so
/// handing one over wakes nobody (at tens of thousands of SIP messages a second that was
/// a futex wake per message), and they share a commit (and its WAL page writes) by the
/// hundred. A change somebody waits for wakes the writer and is committed at once,
/// together with everything waiting on both channels.
const LINGER: Duration = Duration::from_millis(20);

/// The journal row of a message being delivered, carried in its submission.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JournalRow {
    /// The row id.
    pub id: i64,
    /// The dedupe key `(bare source, message id)`.
    pub key: Option<(String, String)>,
}

struct Req {
    op: JournalOp,
    reply: oneshot::Sender<Result<Option<i64>, JournalError>>,
}

/// Why the journal did not commit a change.
#[derive(Clone, Debug, thiserror::Error)]
#[non_exhaustive]
pub enum JournalError {
    /// The writer thread has stopped (the gateway is shutting down, or it failed).
    #[error("journal writer stopped")]
    Stopped,
    /// The batch holding the change failed to commit (shared by its every change).
    #[error("journal commit: {0}")]
    Commit(#[source] Arc<StoreError>),
}

/// The journal: a handle on the group-commit writer. The writer thread stops when the
/// last handle is dropped.
#[derive(Debug)]
pub struct Journal {
    tx: mpsc::Sender<Req>,
    background: mpsc::Sender<JournalOp>,
    store: Store,
    ttl: Duration,
}

impl Journal {
    /// Starts the writer over `store`; dedupe records are kept for `ttl`.
    pub fn start(store: Store, ttl: Duration) -> Result<Arc<Journal>, StoreError> {
        let (tx, rx) = mpsc::channel();
        let (background, brx) = mpsc::channel();
        let s = store.clone();
        std::thread::Builder::new()
            .name("cpim-journal".into())
            .spawn(move || writer(s, rx, brx))
            .map_err(StoreError::Writer)?;
        Ok(Arc::new(Journal {
            tx,
            background,
            store,
            ttl,
        }))
    }

    /// How long dedupe records are kept.
    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// Until when a record completed now is kept, Unix milliseconds.
    pub fn expiry(&self) -> u64 {
        unix_ms().saturating_add(self.ttl.as_millis().min(u64::MAX as u128) as u64)
    }

    /// The write-ahead change for `m` from `adapter` (serializes the message).
    pub fn begin_op(
        adapter: &str,
        m: &Message,
        key: Option<(String, String)>,
    ) -> Result<JournalOp, RecordError> {
        Ok(JournalOp::Begin {
            adapter: adapter.to_owned(),
            key,
            data: serde_json::to_string(&MessageRec::from(m))?,
        })
    }

    /// The completion of row `id` (if written ahead) and/or dedupe key `key` with
    /// `status`.
    pub fn done_op(
        &self,
        id: Option<i64>,
        key: Option<(String, String)>,
        status: &Status,
    ) -> JournalOp {
        JournalOp::Done {
            id,
            key,
            code: status.code.as_u16(),
            reason: status.reason.clone(),
            expires_at_ms: self.expiry(),
        }
    }

    /// Commits `op` together with whatever else is waiting; the row id for a `Begin`.
    pub async fn commit(&self, op: JournalOp) -> Result<Option<i64>, JournalError> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Req { op, reply })
            .map_err(|_| JournalError::Stopped)?;
        rx.await.map_err(|_| JournalError::Stopped).and_then(|r| r)
    }

    /// Hands `op` to the writer without waiting for its commit (it is committed with the
    /// next batch; a failure is logged by the writer). Err only if the writer stopped.
    pub fn submit(&self, op: JournalOp) -> Result<(), JournalError> {
        self.background.send(op).map_err(|_| JournalError::Stopped)
    }

    /// Waits until everything handed over before this call is committed.
    pub async fn flush(&self) -> Result<(), JournalError> {
        let noop = JournalOp::Done {
            id: None,
            key: None,
            code: 0,
            reason: String::new(),
            expires_at_ms: 0,
        };
        self.commit(noop).await.map(|_| ())
    }

    /// The messages still in flight (after a crash), oldest first.
    pub fn in_flight(&self) -> Result<Vec<(i64, String, Message)>, StoreError> {
        self.store.journal_in_flight()
    }

    /// The dedupe records still valid.
    pub fn done_records(&self) -> Result<Vec<DoneRecord>, StoreError> {
        self.store.journal_done(unix_ms())
    }
}

fn writer(store: Store, rx: mpsc::Receiver<Req>, background: mpsc::Receiver<JournalOp>) {
    let mut ops = Vec::with_capacity(64);
    let mut replies = Vec::with_capacity(64);
    let mut last_prune = 0u64;
    let mut open = true;
    loop {
        match rx.recv_timeout(LINGER) {
            Ok(r) => {
                ops.push(r.op);
                replies.push(Some(r.reply));
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            // every handle is gone: commit what is left, then stop
            Err(mpsc::RecvTimeoutError::Disconnected) => open = false,
        }
        while ops.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(r) => {
                    ops.push(r.op);
                    replies.push(Some(r.reply));
                }
                Err(_) => break,
            }
        }
        // Everything handed over before an awaited change goes into its commit (a flush
        // promises that); otherwise a bounded share.
        let awaited = replies.iter().any(Option::is_some);
        while awaited || ops.len() < MAX_BATCH * 16 {
            match background.try_recv() {
                Ok(op) => {
                    ops.push(op);
                    replies.push(None);
                }
                Err(_) => break,
            }
        }
        if ops.is_empty() {
            if open {
                continue;
            }
            break;
        }
        let now = unix_ms();
        let prune = (now.saturating_sub(last_prune) >= PRUNE_EVERY_MS).then(|| {
            last_prune = now;
            now
        });
        match store.journal_apply_pruning(&ops, prune) {
            Ok((ids, pruned)) => {
                if pruned >= crate::store::PRUNE_CHUNK {
                    // more expired records wait: prune again at the next commit
                    last_prune = 0;
                }
                for (reply, id) in replies.drain(..).zip(ids) {
                    if let Some(reply) = reply {
                        let _ = reply.send(Ok(id));
                    }
                }
            }
            Err(e) => {
                tracing::error!(error = %e, changes = ops.len(), "journal commit failed");
                let e = Arc::new(e);
                for reply in replies.drain(..).flatten() {
                    let _ = reply.send(Err(JournalError::Commit(Arc::clone(&e))));
                }
            }
        }
        ops.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cpim_core::model::TransId;
    use cpim_core::Address;
    use cpim_core::StatusCode;

    fn tmpdir(name: &str) -> std::path::PathBuf {
        let d = std::env::temp_dir().join(format!("cpim-gw-journal-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        d
    }

    fn msg(i: u64) -> Message {
        let mut m = Message::new(
            TransId(i),
            Address::parse("romeo@xmpp.test/orchard").unwrap(),
            Address::parse("sip:alice@sip.test").unwrap(),
            "text/plain",
            format!("message {i}").into_bytes(),
        );
        m.message_id = Some(format!("m{i}"));
        m
    }

    fn key(i: u64) -> Option<(String, String)> {
        Some(("romeo@xmpp.test".into(), format!("m{i}")))
    }

    /// Concurrent begins share commits; completed rows become dedupe records, rows
    /// without a key disappear, and what is not completed is in flight after a reopen.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn begin_done_and_reload() {
        let dir = tmpdir("basic");
        {
            let j = Journal::start(Store::open(&dir).unwrap(), Duration::from_secs(60)).unwrap();
            let mut tasks = Vec::new();
            for i in 0..20u64 {
                let j = j.clone();
                tasks.push(tokio::spawn(async move {
                    let k = if i == 3 { None } else { key(i) };
                    let op = Journal::begin_op("xmpp", &msg(i), k.clone()).unwrap();
                    let id = j.commit(op).await.unwrap().unwrap();
                    if i % 2 == 1 {
                        j.commit(j.done_op(Some(id), k, &Status::new(StatusCode::OK, "OK")))
                            .await
                            .unwrap();
                    }
                }));
            }
            for t in tasks {
                t.await.unwrap();
            }
            // A source that acknowledges itself: only the outcome is recorded.
            j.commit(j.done_op(
                None,
                key(100),
                &Status::new(StatusCode::NOT_FOUND, "Not Found"),
            ))
            .await
            .unwrap();
        }
        let s = Store::open(&dir).unwrap();
        let j = Journal::start(s.clone(), Duration::from_secs(60)).unwrap();
        let pending = j.in_flight().unwrap();
        let ids: Vec<_> = pending
            .iter()
            .map(|(_, _, m)| m.message_id.clone().unwrap())
            .collect();
        assert_eq!(ids.len(), 10);
        assert!(ids
            .iter()
            .all(|id| id[1..].parse::<u64>().unwrap() % 2 == 0));
        // the tasks ran on two threads: commit order (row order) is not spawn order
        let first = pending
            .iter()
            .find(|(_, _, m)| m.message_id.as_deref() == Some("m0"))
            .unwrap();
        assert_eq!(first.1, "xmpp");
        assert_eq!(first.2, msg(0));
        let done = j.done_records().unwrap();
        // 9 odd ones with a key (3 had none and is gone) + the acknowledged one.
        assert_eq!(done.len(), 10);
        assert!(done.iter().any(|d| d.message_id == "m100"
            && d.code == StatusCode::NOT_FOUND
            && d.reason == "Not Found"));
        assert_eq!(s.journal_len().unwrap(), 20);
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// Expired dedupe records are not loaded and are pruned.
    #[tokio::test]
    async fn expired_records_are_pruned() {
        let dir = tmpdir("prune");
        let s = Store::open(&dir).unwrap();
        let j = Journal::start(s.clone(), Duration::ZERO).unwrap();
        j.commit(j.done_op(None, key(1), &Status::new(StatusCode::OK, "OK")))
            .await
            .unwrap();
        assert!(j.done_records().unwrap().is_empty());
        s.journal_apply(&[], Some(unix_ms())).unwrap();
        assert_eq!(s.journal_len().unwrap(), 0);
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// Records nobody waits for are committed without anyone asking (within the linger
    /// time), and a flush commits them at once, in order with what was handed over
    /// before it.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn background_records_are_committed_by_themselves_and_by_a_flush() {
        let dir = tmpdir("background");
        let s = Store::open(&dir).unwrap();
        let j = Journal::start(s.clone(), Duration::from_secs(60)).unwrap();
        let ok = Status::new(StatusCode::OK, "OK");
        for i in 0..500 {
            j.submit(j.done_op(None, key(i), &ok)).unwrap();
        }
        let mut waited = 0;
        while s.journal_len().unwrap() < 500 {
            assert!(waited < 500, "background records never committed");
            tokio::time::sleep(Duration::from_millis(10)).await;
            waited += 1;
        }
        for i in 500..1700 {
            j.submit(j.done_op(None, key(i), &ok)).unwrap();
        }
        j.flush().await.unwrap();
        assert_eq!(s.journal_len().unwrap(), 1700);
        assert_eq!(j.done_records().unwrap().len(), 1700);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
