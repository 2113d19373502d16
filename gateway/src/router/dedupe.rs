//! Duplicate suppression: a message with a `message_id` seen from the same source within
//! the TTL is not delivered again; it gets the outcome of the first (waiting for it if
//! the first is still in flight). This stops replays after reconnects, and a copy that
//! reaches this gateway again from a gateway ahead of it (the XMPP adapter reads the first
//! sender's id from the XEP-0359 origin-id; test `gateway_chain` in `tests/interop`). With the journal, the cache is loaded from
//! the persisted dedupe records at start ([`DedupeLayer::with_journal`]), so duplicates
//! are recognised across restarts; the records are written by the [`super::journal`]
//! middleware, inside this one.
//!
//! An answer the inner services give as [`NotTaken`] (the gateway did not take the
//! message) is passed to copies waiting for it but not remembered: a retry is delivered.

use cpim_core::sharded::ShardedMap;
use cpim_core::StatusCode;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use cpim_core::adapter::BoxFuture;
use cpim_core::model::{Message, Operation, Outcome, Status};
use tokio::sync::watch;
use tower::{Layer, Service};

use super::{NotTaken, Submission};
use crate::journal::Journal;
use crate::store::DoneRecord;

/// Feeds formatted text to a hasher as bytes.
struct HashWriter<'a, H>(&'a mut H);

impl<H: std::hash::Hasher> std::fmt::Write for HashWriter<'_, H> {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        self.0.write(s.as_bytes());
        Ok(())
    }
}

/// The dedupe key of a message: `(bare source, message id)`, if it has an id.
pub fn dedupe_key(m: &Message) -> Option<(String, String)> {
    m.message_id
        .as_ref()
        .map(|id| (m.source.bare_display().to_string(), id.clone()))
}

#[derive(Debug)]
enum Entry {
    InFlight(watch::Receiver<Option<Status>>),
    Done(Done),
}

/// A remembered outcome: the code, and the reason phrase unless it is plain "OK".
#[derive(Debug)]
struct Done {
    code: StatusCode,
    reason: Option<Box<str>>,
}

impl Done {
    fn new(s: &Status) -> Done {
        Done {
            code: s.code,
            reason: (!(s.code == StatusCode::OK && s.reason == "OK"))
                .then(|| s.reason.as_str().into()),
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

/// Two independently keyed SipHash states (random per process) that make a [`Key`].
/// Copies hash alike, so the middleware hashes a message before it takes the cache's lock.
#[derive(Clone, Debug)]
struct KeyHasher(std::hash::RandomState, std::hash::RandomState);

impl KeyHasher {
    fn new() -> KeyHasher {
        KeyHasher(std::hash::RandomState::new(), std::hash::RandomState::new())
    }

    /// The key of a persisted `(bare source, message id)` pair.
    fn key(&self, k: &(String, String)) -> Key {
        use std::hash::BuildHasher;
        (u128::from(self.0.hash_one(k)) << 64) | u128::from(self.1.hash_one(k))
    }

    /// The key of a message with an id: the same value as [`KeyHasher::key`] of its
    /// [`dedupe_key`], hashed from the message as it is (the bare source written straight
    /// into the hashers), so the hot path builds no strings.
    fn key_of(&self, m: &Message) -> Option<Key> {
        use std::fmt::Write as _;
        use std::hash::{BuildHasher, Hash, Hasher};
        let id = m.message_id.as_deref()?;
        let one = |state: &std::hash::RandomState| {
            let mut h = state.build_hasher();
            // `(String, String)` hashes as each string's bytes followed by 0xff
            let _ = write!(HashWriter(&mut h), "{}", m.source.bare_display());
            h.write_u8(0xff);
            id.hash(&mut h);
            h.finish()
        };
        Some((u128::from(one(&self.0)) << 64) | u128::from(one(&self.1)))
    }
}

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
    hasher: KeyHasher,
    current: KeyMap,
    previous: KeyMap,
    rotated_at: Instant,
}

impl DedupeCache {
    /// An empty cache keeping entries for `ttl`.
    pub fn new(ttl: Duration) -> Self {
        DedupeCache {
            ttl,
            hasher: KeyHasher::new(),
            current: KeyMap::new(),
            previous: KeyMap::new(),
            rotated_at: Instant::now(),
        }
    }

    /// Adds persisted records (oldest first); they are kept for at least `ttl` from now.
    pub fn load(&mut self, records: Vec<DoneRecord>) {
        for r in records {
            let key = self.hasher.key(&(r.source, r.message_id));
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

/// Layer for [`Dedupe`]; clones share the cache.
#[derive(Clone, Debug)]
pub struct DedupeLayer {
    cache: Arc<Mutex<DedupeCache>>,
    hasher: KeyHasher,
}

impl DedupeLayer {
    /// Remembers message ids for `ttl`, starting empty.
    pub fn new(ttl: Duration) -> Self {
        DedupeLayer::of(DedupeCache::new(ttl))
    }

    /// Remembers message ids for the journal's TTL, starting with the dedupe records
    /// persisted in `journal`.
    pub fn with_journal(journal: &Journal) -> Self {
        let mut cache = DedupeCache::new(journal.ttl());
        match journal.done_records() {
            Ok(r) => {
                tracing::info!(records = r.len(), "dedupe records loaded");
                cache.load(r);
            }
            Err(e) => tracing::error!(error = %e, "dedupe records not loaded"),
        }
        DedupeLayer::of(cache)
    }

    fn of(cache: DedupeCache) -> Self {
        DedupeLayer {
            hasher: cache.hasher.clone(),
            cache: Arc::new(Mutex::new(cache)),
        }
    }
}

impl<S> Layer<S> for DedupeLayer {
    type Service = Dedupe<S>;
    fn layer(&self, inner: S) -> Dedupe<S> {
        Dedupe {
            inner,
            cache: self.cache.clone(),
            hasher: self.hasher.clone(),
        }
    }
}

/// The duplicate-suppression middleware; clones share the cache.
#[derive(Clone, Debug)]
pub struct Dedupe<S> {
    inner: S,
    cache: Arc<Mutex<DedupeCache>>,
    hasher: KeyHasher,
}

enum Seen {
    New(watch::Sender<Option<Status>>),
    Waiting(watch::Receiver<Option<Status>>),
    Done(Status),
}

impl<S> Service<Submission> for Dedupe<S>
where
    S: Service<Submission, Response = Outcome>,
    S::Error: Into<NotTaken>,
    S::Future: Send + 'static,
{
    type Response = Outcome;
    type Error = NotTaken;
    type Future = BoxFuture<'static, Result<Outcome, NotTaken>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), NotTaken>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, req: Submission) -> Self::Future {
        let trans_id = req.op.trans_id();
        let (hashed, seen) = {
            let Operation::Message(m) = &req.op else {
                let fut = self.inner.call(req);
                return Box::pin(async move { fut.await.map_err(Into::into) });
            };
            let Some(h) = self.hasher.key_of(m) else {
                let fut = self.inner.call(req);
                return Box::pin(async move { fut.await.map_err(Into::into) });
            };
            let now = Instant::now();
            let mut c = self.cache.lock().unwrap_or_else(|e| e.into_inner());
            c.expire(now);
            let seen = match c.get(h) {
                Some(Entry::Done(d)) => Seen::Done(d.status()),
                Some(Entry::InFlight(rx)) => Seen::Waiting(rx.clone()),
                None => {
                    let (tx, rx) = watch::channel(None);
                    c.insert(h, Entry::InFlight(rx));
                    Seen::New(tx)
                }
            };
            (h, seen)
        };
        match seen {
            Seen::Done(status) => {
                tracing::debug!(trans_id = trans_id.0, "duplicate answered from cache");
                Box::pin(async move { Ok(Outcome { trans_id, status }) })
            }
            Seen::Waiting(mut rx) => Box::pin(async move {
                match rx.wait_for(Option::is_some).await {
                    Ok(s) => {
                        let status = s.clone().unwrap_or_else(|| {
                            Status::new(StatusCode::SERVER_INTERNAL_ERROR, "lost")
                        });
                        Ok(Outcome { trans_id, status })
                    }
                    Err(_) => Err(NotTaken(Outcome::failure(
                        trans_id,
                        StatusCode::SERVER_INTERNAL_ERROR,
                        "first copy of a duplicate was abandoned",
                    ))),
                }
            }),
            Seen::New(tx) => {
                let fut = self.inner.call(req);
                let cache = self.cache.clone();
                Box::pin(async move {
                    let mut guard = Abandon {
                        cache: &cache,
                        key: Some(hashed),
                    };
                    let result = fut.await.map_err(Into::into);
                    let status = match &result {
                        Ok(out) => {
                            if let Some(h) = guard.key.take() {
                                let mut c = cache.lock().unwrap_or_else(|e| e.into_inner());
                                c.insert(h, Entry::Done(Done::new(&out.status)));
                            }
                            out.status.clone()
                        }
                        // Not remembered: the guard forgets the entry.
                        Err(NotTaken(out)) => out.status.clone(),
                    };
                    let _ = tx.send(Some(status));
                    result
                })
            }
        }
    }
}

/// Forgets an in-flight entry whose first copy was dropped (cancelled) before it
/// finished, or was not taken, so a retransmission is delivered rather than waiting
/// forever. A journal row of a cancelled message stays: its fate is unknown, so it is
/// delivered again at the next start (at least once rather than possibly never).
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

    fn with_id(id: u64, mid: &str) -> Submission {
        let mut op = msg(id, "sip:alice@s.test", "bob@x.test", "hi");
        if let Operation::Message(m) = &mut op {
            m.message_id = Some(mid.into());
        }
        Submission::new("sip", op)
    }

    #[tokio::test]
    async fn duplicate_gets_first_outcome_without_second_delivery() {
        let rec = Recorder {
            code: 404,
            ..Default::default()
        };
        let svc = DedupeLayer::new(Duration::from_secs(60)).layer(rec.clone());
        let a = svc.clone().oneshot(with_id(1, "m1")).await.unwrap();
        let b = svc.clone().oneshot(with_id(2, "m1")).await.unwrap();
        assert_eq!(a.status, b.status);
        assert_eq!(b.trans_id, cpim_core::model::TransId(2));
        assert_eq!(rec.count(), 1);
        // A different id is delivered.
        svc.oneshot(with_id(3, "m2")).await.unwrap();
        assert_eq!(rec.count(), 2);
    }

    #[tokio::test]
    async fn duplicate_while_first_in_flight_waits_for_it() {
        let rec = Recorder {
            delay_ms: 50,
            ..Default::default()
        };
        let svc = DedupeLayer::new(Duration::from_secs(60)).layer(rec.clone());
        let (a, b) = tokio::join!(
            svc.clone().oneshot(with_id(1, "m1")),
            svc.clone().oneshot(with_id(2, "m1"))
        );
        assert_eq!(a.unwrap().status.code, StatusCode::OK);
        assert_eq!(b.unwrap().status.code, StatusCode::OK);
        assert_eq!(rec.count(), 1);
    }

    /// An answer not taken reaches the copies waiting for it but is not remembered: a
    /// retry is delivered.
    #[tokio::test]
    async fn an_answer_not_taken_is_passed_on_but_not_remembered() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        let calls = Arc::new(AtomicUsize::new(0));
        let counter = calls.clone();
        let inner = tower::service_fn(move |sub: Submission| {
            let first = counter.fetch_add(1, Ordering::SeqCst) == 0;
            async move {
                tokio::time::sleep(Duration::from_millis(50)).await;
                let id = sub.op.trans_id();
                if first {
                    Err(NotTaken(Outcome::failure(
                        id,
                        StatusCode::SERVER_INTERNAL_ERROR,
                        "not taken",
                    )))
                } else {
                    Ok(Outcome::ok(id))
                }
            }
        });
        let svc = DedupeLayer::new(Duration::from_secs(60)).layer(inner);
        let (a, b) = tokio::join!(
            svc.clone().oneshot(with_id(1, "m1")),
            svc.clone().oneshot(with_id(2, "m1"))
        );
        assert_eq!(
            a.unwrap_err().0.status.code,
            StatusCode::SERVER_INTERNAL_ERROR
        );
        assert_eq!(b.unwrap().status.code, StatusCode::SERVER_INTERNAL_ERROR);
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        let retry = svc.oneshot(with_id(3, "m1")).await.unwrap();
        assert_eq!(retry.status.code, StatusCode::OK);
        assert_eq!(calls.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn entries_expire_after_ttl() {
        let rec = Recorder::default();
        let svc = DedupeLayer::new(Duration::from_millis(1)).layer(rec.clone());
        svc.clone().oneshot(with_id(1, "m1")).await.unwrap();
        std::thread::sleep(Duration::from_millis(5));
        svc.oneshot(with_id(2, "m1")).await.unwrap();
        assert_eq!(rec.count(), 2);
    }

    /// The hot path's key (hashed from the message) is the key of the persisted
    /// `(bare source, message id)` pair, so records loaded at start still match.
    #[test]
    fn key_from_the_message_equals_the_key_of_the_persisted_pair() {
        let c = DedupeCache::new(Duration::from_secs(10));
        for (src, mid) in [
            ("sip:alice@s.test", "m1"),
            ("sip:a%40b@s.test;gr=urn:uuid:7", "Id with spaces"),
            ("xmpp:juliet@x.test/balcony", "\u{e9}t\u{e9}"),
        ] {
            let mut op = msg(1, src, "bob@x.test", "hi");
            let Operation::Message(m) = &mut op else {
                unreachable!()
            };
            m.message_id = Some(mid.into());
            let pair = dedupe_key(m).unwrap();
            assert_eq!(c.hasher.key_of(m), Some(c.hasher.key(&pair)), "{src} {mid}");
            m.message_id = None;
            assert_eq!(c.hasher.key_of(m), None);
        }
    }

    #[test]
    fn generations_keep_an_entry_between_one_and_two_ttls() {
        let ttl = Duration::from_secs(10);
        let mut c = DedupeCache::new(ttl);
        let t0 = c.rotated_at;
        let k = c.hasher.key(&("alice@s.test".into(), "m1".into()));
        assert_ne!(k, c.hasher.key(&("alice@s.test".into(), "m2".into())));
        assert_ne!(k, c.hasher.key(&("bob@s.test".into(), "m1".into())));
        c.insert(
            k,
            Entry::Done(Done::new(&Status::new(StatusCode::NOT_FOUND, "Not Found"))),
        );
        c.expire(t0 + Duration::from_secs(9));
        assert!(
            matches!(c.get(k), Some(Entry::Done(d)) if d.status() == Status::new(StatusCode::NOT_FOUND, "Not Found"))
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
            Done::new(&Status::new(StatusCode::OK, "Fine")).status(),
            Status::new(StatusCode::OK, "Fine")
        );
    }
}
