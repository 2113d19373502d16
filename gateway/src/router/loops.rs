//! Loop suppression, duplicate suppression and the write-ahead journal.
//!
//! - Hops: a message's `hops_left` (SIP Max-Forwards, RFC 3261 s16.6 step 3) is counted
//!   down by one here; a message that arrives with none left is refused with 483 Too
//!   Many Hops and not forwarded.
//! - Duplicates: a message with a `message_id` seen from the same source within the TTL
//!   is not delivered again; it gets the outcome of the first (waiting for it if the
//!   first is still in flight). This stops replays after reconnects and loops between
//!   chained gateways that strip Max-Forwards.
//! - Journal (when built [`LoopGuardLayer::with_journal`]): a message from a source that
//!   does not acknowledge messages is written ahead before the inner services see it,
//!   and every outcome of a message with an id is persisted as its dedupe record (the
//!   completion of a written-ahead row is awaited before the outcome is returned; the
//!   record of a message from an acknowledging source is handed to the writer without
//!   waiting); the cache is loaded from those records at start, so duplicates are
//!   recognised across restarts. See [`crate::journal`].
//!
//! The inner service's future must not start delivering before it is first polled (the
//! tower convention; the timeout and the dispatcher do their work inside the future), as
//! the write-ahead commit happens between `call` and the first poll.

use cpim_core::sharded::ShardedMap;
use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use cpim_core::adapter::BoxFuture;
use cpim_core::model::{Message, Operation, Outcome, Status};
use tokio::sync::watch;
use tower::{Layer, Service};

use super::Submission;
use crate::journal::{Journal, JournalRow, JOURNAL_ROW, RECOVERED};
use crate::store::DoneRecord;

/// The dedupe key of a message: `(bare source, message id)`, if it has an id.
pub fn dedupe_key(m: &Message) -> Option<(String, String)> {
    m.message_id
        .as_ref()
        .map(|id| (m.source.bare().to_string(), id.clone()))
}

#[derive(Debug)]
enum Entry {
    InFlight(watch::Receiver<Option<Status>>),
    Done(Done),
}

/// A remembered outcome: the code, and the reason phrase unless it is plain "OK".
#[derive(Debug)]
struct Done {
    code: u16,
    reason: Option<Box<str>>,
}

impl Done {
    fn new(s: &Status) -> Done {
        Done {
            code: s.code,
            reason: (!(s.code == 200 && s.reason == "OK")).then(|| s.reason.as_str().into()),
        }
    }

    fn status(&self) -> Status {
        Status::new(self.code, self.reason.as_deref().unwrap_or("OK"))
    }
}

/// A dedupe key as 128 bits: two independently keyed SipHash values of
/// `(bare source, message id)`. The keys are random per process (crafted ids cannot
/// collide on purpose); a chance collision needs about 2^64 remembered ids.
type Key = u128;

type KeyMap = ShardedMap<Key, Entry>;

/// The dedupe cache: (source, message id) -> the first outcome, kept for at least `ttl`
/// and at most twice that.
///
/// Two generations: entries go into the current one; every `ttl` the current one
/// becomes the previous one and the previous one is dropped whole. Lookups see both.
/// This costs no per-entry bookkeeping (no expiry queue, no String keys): an entry is
/// a 16-byte key and a small value, about 50 bytes with the table's slack, which matters
/// because the cache holds every message of the last `ttl` (at 20,000 messages a second
/// and the default 300 s, 6 million entries). The generations are sharded
/// ([`ShardedMap`]): a rehash of millions of entries at once, under the lock, would stall
/// every message behind it.
#[derive(Debug)]
pub struct DedupeCache {
    ttl: Duration,
    hashers: (std::hash::RandomState, std::hash::RandomState),
    current: KeyMap,
    previous: KeyMap,
    rotated_at: Instant,
}

impl DedupeCache {
    /// An empty cache keeping entries for `ttl`.
    pub fn new(ttl: Duration) -> Self {
        DedupeCache {
            ttl,
            hashers: (std::hash::RandomState::new(), std::hash::RandomState::new()),
            current: KeyMap::new(),
            previous: KeyMap::new(),
            rotated_at: Instant::now(),
        }
    }

    fn key(&self, k: &(String, String)) -> Key {
        use std::hash::BuildHasher;
        (u128::from(self.hashers.0.hash_one(k)) << 64) | u128::from(self.hashers.1.hash_one(k))
    }

    /// Adds persisted records (oldest first); they are kept for at least `ttl` from now.
    pub fn load(&mut self, records: Vec<DoneRecord>) {
        for r in records {
            let key = self.key(&(r.source, r.message_id));
            let done = Done::new(&Status::new(r.code, r.reason));
            self.current.insert(key, Entry::Done(done));
        }
    }

    fn expire(&mut self, now: Instant) {
        let age = now.saturating_duration_since(self.rotated_at);
        if age < self.ttl {
            return;
        }
        // In-flight entries of a dropped generation are forgotten: a message stays in
        // flight for at most the router's timeout, far below any sensible ttl.
        let dropped = if age >= self.ttl * 2 {
            let cur = std::mem::replace(&mut self.current, KeyMap::new());
            let prev = std::mem::replace(&mut self.previous, KeyMap::new());
            [Some(prev), Some(cur)]
        } else {
            let cur = std::mem::replace(&mut self.current, KeyMap::new());
            [Some(std::mem::replace(&mut self.previous, cur)), None]
        };
        self.rotated_at = now;
        // Freeing millions of entries takes a while: not under the lock, not on a worker.
        if dropped.iter().flatten().map(ShardedMap::len).sum::<usize>() > 10_000 {
            std::thread::spawn(move || drop(dropped));
        }
    }

    fn get(&self, key: Key) -> Option<&Entry> {
        self.current.get(&key).or_else(|| self.previous.get(&key))
    }

    fn insert(&mut self, key: Key, e: Entry) {
        self.previous.remove(&key);
        self.current.insert(key, e);
    }

    fn remove_in_flight(&mut self, key: Key) {
        for m in [&mut self.current, &mut self.previous] {
            if matches!(m.get(&key), Some(Entry::InFlight(_))) {
                m.remove(&key);
            }
        }
    }

    /// Number of remembered message ids.
    pub fn len(&self) -> usize {
        self.current.len() + self.previous.len()
    }

    /// True if nothing is remembered.
    pub fn is_empty(&self) -> bool {
        self.current.is_empty() && self.previous.is_empty()
    }
}

/// Tells whether the adapter of this name acknowledges messages itself
/// ([`cpim_core::adapter::Adapter::acknowledges_messages`]).
#[derive(Clone)]
pub struct Acknowledges(pub Arc<dyn Fn(&str) -> bool + Send + Sync>);

impl std::fmt::Debug for Acknowledges {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Acknowledges(..)")
    }
}

/// The loop-suppression middleware; clones share the cache.
#[derive(Clone, Debug)]
pub struct LoopGuard<S> {
    inner: S,
    cache: Arc<Mutex<DedupeCache>>,
    journal: Option<(Arc<Journal>, Acknowledges)>,
}

/// Layer for [`LoopGuard`]; clones share the cache.
#[derive(Clone, Debug)]
pub struct LoopGuardLayer {
    cache: Arc<Mutex<DedupeCache>>,
    journal: Option<(Arc<Journal>, Acknowledges)>,
}

impl LoopGuardLayer {
    /// Remembers message ids for `ttl`, in memory only.
    pub fn new(ttl: Duration) -> Self {
        LoopGuardLayer {
            cache: Arc::new(Mutex::new(DedupeCache::new(ttl))),
            journal: None,
        }
    }

    /// Remembers message ids for the journal's TTL, persisted in `journal` and loaded
    /// from it now; messages from adapters for which `acks` is false are written ahead.
    pub fn with_journal(journal: Arc<Journal>, acks: Acknowledges) -> Self {
        let mut cache = DedupeCache::new(journal.ttl());
        match journal.done_records() {
            Ok(r) => {
                tracing::info!(records = r.len(), "dedupe records loaded");
                cache.load(r);
            }
            Err(e) => tracing::error!(error = %e, "dedupe records not loaded"),
        }
        LoopGuardLayer {
            cache: Arc::new(Mutex::new(cache)),
            journal: Some((journal, acks)),
        }
    }
}

impl<S> Layer<S> for LoopGuardLayer {
    type Service = LoopGuard<S>;
    fn layer(&self, inner: S) -> LoopGuard<S> {
        LoopGuard {
            inner,
            cache: self.cache.clone(),
            journal: self.journal.clone(),
        }
    }
}

enum Seen {
    Untracked,
    New(watch::Sender<Option<Status>>),
    Waiting(watch::Receiver<Option<Status>>),
    Done(Status),
}

impl<S> Service<Submission> for LoopGuard<S>
where
    S: Service<Submission, Response = Outcome, Error = Infallible>,
    S::Future: Send + 'static,
{
    type Response = Outcome;
    type Error = Infallible;
    type Future = BoxFuture<'static, Result<Outcome, Infallible>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Submission) -> Self::Future {
        let trans_id = req.op.trans_id();
        let recovered = RECOVERED.try_with(|id| *id).ok();
        let Operation::Message(m) = &mut req.op else {
            return Box::pin(self.inner.call(req));
        };
        if recovered.is_none() {
            if m.hops_left == 0 {
                let out = Outcome::failure(trans_id, 483, "Too Many Hops");
                return Box::pin(async move { Ok(out) });
            }
            m.hops_left -= 1;
        }
        let key = dedupe_key(m);
        let mut hashed = None;
        let seen = match &key {
            None => Seen::Untracked,
            Some(key) => {
                let now = Instant::now();
                let mut c = self.cache.lock().unwrap_or_else(|e| e.into_inner());
                c.expire(now);
                let h = c.key(key);
                hashed = Some(h);
                match c.get(h) {
                    Some(Entry::Done(d)) => Seen::Done(d.status()),
                    Some(Entry::InFlight(rx)) => Seen::Waiting(rx.clone()),
                    None => {
                        let (tx, rx) = watch::channel(None);
                        c.insert(h, Entry::InFlight(rx));
                        Seen::New(tx)
                    }
                }
            }
        };
        // A recovered message can meet a copy its source resent after the restart; the
        // copy's outcome then completes the recovered row too.
        let complete_recovered = {
            let journal = self.journal.as_ref().map(|(j, _)| j.clone());
            let key = key.clone();
            move |status: &Status| {
                let job = journal.zip(recovered).map(|(j, row)| {
                    let op = j.done_op(Some(row), key, status);
                    async move {
                        if let Err(e) = j.commit(op).await {
                            tracing::error!(error = %e, "journal completion not committed");
                        }
                    }
                });
                async move {
                    if let Some(job) = job {
                        job.await;
                    }
                }
            }
        };
        let tx = match seen {
            Seen::Done(status) => {
                tracing::debug!(message_id = ?key.map(|k| k.1), "duplicate answered from cache");
                return Box::pin(async move {
                    complete_recovered(&status).await;
                    Ok(Outcome { trans_id, status })
                });
            }
            Seen::Waiting(mut rx) => {
                return Box::pin(async move {
                    let first = match rx.wait_for(Option::is_some).await {
                        Ok(s) => Some(s.clone().unwrap_or_else(|| Status::new(500, "lost"))),
                        Err(_) => None,
                    };
                    let status = match first {
                        Some(status) => {
                            complete_recovered(&status).await;
                            status
                        }
                        // A recovered row stays for the next start.
                        None => Status::new(500, "first copy of a duplicate was abandoned"),
                    };
                    Ok(Outcome { trans_id, status })
                });
            }
            Seen::New(tx) => Some(tx),
            Seen::Untracked => None,
        };
        // The write-ahead record, prepared here (the message moves on below).
        let journal = self.journal.as_ref().map(|(j, _)| j.clone());
        let begin = match &self.journal {
            Some((_, acks)) if recovered.is_none() && !(acks.0)(&req.adapter) => {
                Some(Journal::begin_op(&req.adapter, m, key.clone()))
            }
            _ => None,
        };
        let fut = self.inner.call(req);
        let cache = self.cache.clone();
        Box::pin(async move {
            let mut guard = Abandon {
                cache: &cache,
                key: if tx.is_some() { hashed } else { None },
            };
            let mut row = recovered;
            if let (Some(j), Some(op)) = (&journal, begin) {
                match op.map_err(|e| e.to_string()) {
                    Ok(op) => match j.commit(op).await {
                        Ok(id) => row = id,
                        Err(e) => return Ok(refuse(trans_id, &e, tx.as_ref())),
                    },
                    Err(e) => return Ok(refuse(trans_id, &e, tx.as_ref())),
                }
            }
            let scope = row.map(|id| JournalRow {
                id,
                key: key.clone(),
            });
            let out = JOURNAL_ROW.scope(scope, fut).await?;
            if let Some(j) = &journal {
                if row.is_some() {
                    if let Err(e) = j.commit(j.done_op(row, key, &out.status)).await {
                        // The outcome stands; the row is delivered again after a restart.
                        tracing::error!(error = %e, "journal completion not committed");
                    }
                } else if key.is_some() {
                    // Not written ahead (the source acknowledges messages itself): the
                    // record only guards against a copy after a restart, so the outcome
                    // goes back without waiting for its commit.
                    if let Err(e) = j.submit(j.done_op(None, key, &out.status)) {
                        tracing::error!(error = %e, "dedupe record not recorded");
                    }
                }
            }
            if let Some(h) = guard.key.take() {
                let mut c = cache.lock().unwrap_or_else(|e| e.into_inner());
                c.insert(h, Entry::Done(Done::new(&out.status)));
            }
            if let Some(tx) = tx {
                let _ = tx.send(Some(out.status.clone()));
            }
            Ok(out)
        })
    }
}

/// The answer when the write-ahead record cannot be committed: the message is refused
/// (the sender learns it failed), and copies waiting for it get the same answer; the
/// cache forgets it, so a later retry is delivered.
fn refuse(
    trans_id: cpim_core::model::TransId,
    error: &str,
    tx: Option<&watch::Sender<Option<Status>>>,
) -> Outcome {
    tracing::error!(%error, "message refused: write-ahead journal failed");
    let out = Outcome::failure(trans_id, 500, "Server Internal Error: store unavailable");
    if let Some(tx) = tx {
        let _ = tx.send(Some(out.status.clone()));
    }
    out
}

/// Forgets an in-flight entry whose first copy was dropped (cancelled) before it
/// finished, so a retransmission is delivered rather than waiting forever. A journal row
/// of a cancelled message stays: its fate is unknown, so it is delivered again at the
/// next start (at least once rather than possibly never).
struct Abandon<'a> {
    cache: &'a Arc<Mutex<DedupeCache>>,
    key: Option<Key>,
}

impl Drop for Abandon<'_> {
    fn drop(&mut self) {
        if let Some(k) = self.key.take() {
            let mut c = self.cache.lock().unwrap_or_else(|e| e.into_inner());
            c.remove_in_flight(k);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::router::testutil::{msg, Recorder};
    use tower::ServiceExt;

    fn with_id(id: u64, mid: &str, hops: u8) -> Submission {
        let mut op = msg(id, "sip:alice@s.test", "bob@x.test", "hi");
        if let Operation::Message(m) = &mut op {
            m.message_id = Some(mid.into());
            m.hops_left = hops;
        }
        Submission::new("sip", op)
    }

    #[tokio::test]
    async fn hops_counted_down_and_483_at_zero() {
        let rec = Recorder::default();
        let svc = LoopGuardLayer::new(Duration::from_secs(60)).layer(rec.clone());
        let out = svc.clone().oneshot(with_id(1, "a", 0)).await.unwrap();
        assert_eq!(out.status.code, 483);
        assert_eq!(rec.count(), 0);
        svc.oneshot(with_id(2, "b", 5)).await.unwrap();
        let seen = rec.seen.lock().unwrap();
        let Operation::Message(m) = &seen[0].op else {
            panic!()
        };
        assert_eq!(m.hops_left, 4);
    }

    #[tokio::test]
    async fn duplicate_gets_first_outcome_without_second_delivery() {
        let rec = Recorder {
            code: 404,
            ..Default::default()
        };
        let svc = LoopGuardLayer::new(Duration::from_secs(60)).layer(rec.clone());
        let a = svc.clone().oneshot(with_id(1, "m1", 70)).await.unwrap();
        let b = svc.clone().oneshot(with_id(2, "m1", 70)).await.unwrap();
        assert_eq!(a.status, b.status);
        assert_eq!(b.trans_id, cpim_core::model::TransId(2));
        assert_eq!(rec.count(), 1);
        // A different id is delivered.
        svc.oneshot(with_id(3, "m2", 70)).await.unwrap();
        assert_eq!(rec.count(), 2);
    }

    #[tokio::test]
    async fn duplicate_while_first_in_flight_waits_for_it() {
        let rec = Recorder {
            delay_ms: 50,
            ..Default::default()
        };
        let svc = LoopGuardLayer::new(Duration::from_secs(60)).layer(rec.clone());
        let (a, b) = tokio::join!(
            svc.clone().oneshot(with_id(1, "m1", 70)),
            svc.clone().oneshot(with_id(2, "m1", 70))
        );
        assert_eq!(a.unwrap().status.code, 200);
        assert_eq!(b.unwrap().status.code, 200);
        assert_eq!(rec.count(), 1);
    }

    fn journaled(name: &str) -> (crate::store::Store, Arc<Journal>, std::path::PathBuf) {
        let dir = std::env::temp_dir().join(format!("cpim-gw-loops-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let store = crate::store::Store::open(&dir).unwrap();
        let j = Journal::start(store.clone(), Duration::from_secs(60)).unwrap();
        (store, j, dir)
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
        let svc = LoopGuardLayer::with_journal(j.clone(), acks.clone()).layer(rec.clone());
        assert_eq!(
            svc.oneshot(with_id(1, "m1", 70)).await.unwrap().status.code,
            404
        );
        // The record of an acknowledging source is not awaited: wait for the writer.
        j.flush().await.unwrap();
        assert_eq!(store.journal_len().unwrap(), 1);
        assert!(store.journal_in_flight().unwrap().is_empty());
        let rec2 = Recorder::default();
        let svc = LoopGuardLayer::with_journal(j, acks).layer(rec2.clone());
        let out = svc.oneshot(with_id(2, "m1", 70)).await.unwrap();
        assert_eq!(out.status.code, 404);
        assert_eq!(rec2.count(), 0);
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// A message recovered from the journal whose source already resent it (and got an
    /// outcome) is not delivered again, and its row is completed.
    #[tokio::test]
    async fn recovered_copy_of_a_done_message_completes_its_row() {
        let (store, j, dir) = journaled("recovered");
        let acks = Acknowledges(Arc::new(|_: &str| false));
        let rec = Recorder::default();
        let svc = LoopGuardLayer::with_journal(j.clone(), acks).layer(rec.clone());
        let Operation::Message(m) = with_id(1, "m1", 70).op else {
            panic!()
        };
        let row = j
            .commit(Journal::begin_op("xmpp", &m, dedupe_key(&m)).unwrap())
            .await
            .unwrap()
            .unwrap();
        // The resent copy first (it writes its own row ahead and completes it) ...
        let mut resent = with_id(2, "m1", 70);
        resent.adapter = "xmpp".into();
        assert_eq!(svc.clone().oneshot(resent).await.unwrap().status.code, 200);
        assert_eq!(store.journal_in_flight().unwrap().len(), 1);
        // ... then the recovery of the old row.
        let recovered = Submission::new("xmpp", Operation::Message(m));
        let out = RECOVERED.scope(row, svc.oneshot(recovered)).await.unwrap();
        assert_eq!(out.status.code, 200);
        assert_eq!(rec.count(), 1);
        assert!(store.journal_in_flight().unwrap().is_empty());
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[tokio::test]
    async fn entries_expire_after_ttl() {
        let rec = Recorder::default();
        let svc = LoopGuardLayer::new(Duration::from_millis(1)).layer(rec.clone());
        svc.clone().oneshot(with_id(1, "m1", 70)).await.unwrap();
        std::thread::sleep(Duration::from_millis(5));
        svc.oneshot(with_id(2, "m1", 70)).await.unwrap();
        assert_eq!(rec.count(), 2);
    }

    #[test]
    fn generations_keep_an_entry_between_one_and_two_ttls() {
        let ttl = Duration::from_secs(10);
        let mut c = DedupeCache::new(ttl);
        let t0 = c.rotated_at;
        let k = c.key(&("alice@s.test".into(), "m1".into()));
        assert_ne!(k, c.key(&("alice@s.test".into(), "m2".into())));
        assert_ne!(k, c.key(&("bob@s.test".into(), "m1".into())));
        c.insert(k, Entry::Done(Done::new(&Status::new(404, "Not Found"))));
        c.expire(t0 + Duration::from_secs(9));
        assert!(
            matches!(c.get(k), Some(Entry::Done(d)) if d.status() == Status::new(404, "Not Found"))
        );
        // one rotation: still there, in the previous generation
        c.expire(t0 + Duration::from_secs(10));
        assert_eq!(c.len(), 1);
        assert!(c.get(k).is_some());
        // the second rotation drops it
        c.expire(t0 + Duration::from_secs(20));
        assert!(c.get(k).is_none());
        assert!(c.is_empty());
        // a long pause drops both generations at once
        c.insert(k, Entry::Done(Done::new(&Status::ok())));
        c.expire(t0 + Duration::from_secs(45));
        assert!(c.is_empty());
        // a plain OK keeps no reason text, anything else keeps its own
        assert!(Done::new(&Status::ok()).reason.is_none());
        assert_eq!(Done::new(&Status::ok()).status(), Status::ok());
        assert_eq!(
            Done::new(&Status::new(200, "Fine")).status(),
            Status::new(200, "Fine")
        );
    }
}
