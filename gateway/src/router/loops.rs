//! Loop suppression.
//!
//! - Hops: a message's `hops_left` (SIP Max-Forwards, RFC 3261 s16.6 step 3) is counted
//!   down by one here; a message that arrives with none left is refused with 483 Too
//!   Many Hops and not forwarded.
//! - Duplicates: a message with a `message_id` seen from the same source within the TTL
//!   is not delivered again; it gets the outcome of the first (waiting for it if the
//!   first is still in flight). This stops replays after reconnects and loops between
//!   chained gateways that strip Max-Forwards.

use std::collections::{HashMap, VecDeque};
use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use cpim_core::adapter::BoxFuture;
use cpim_core::model::{Operation, Outcome, Status};
use tokio::sync::watch;
use tower::{Layer, Service};

use super::Submission;

#[derive(Debug)]
enum Entry {
    InFlight(watch::Receiver<Option<Status>>),
    Done(Status),
}

/// The dedupe cache: (source, message id) -> the first outcome, kept for `ttl`.
#[derive(Debug)]
pub struct DedupeCache {
    ttl: Duration,
    map: HashMap<(String, String), Entry>,
    order: VecDeque<(Instant, (String, String))>,
}

impl DedupeCache {
    /// An empty cache keeping entries for `ttl`.
    pub fn new(ttl: Duration) -> Self {
        DedupeCache {
            ttl,
            map: HashMap::new(),
            order: VecDeque::new(),
        }
    }

    fn expire(&mut self, now: Instant) {
        while let Some((t, _)) = self.order.front() {
            if now.saturating_duration_since(*t) < self.ttl {
                break;
            }
            if let Some((_, k)) = self.order.pop_front() {
                // In-flight entries stay until they finish.
                if matches!(self.map.get(&k), Some(Entry::Done(_))) {
                    self.map.remove(&k);
                }
            }
        }
    }

    /// Number of remembered message ids.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// True if nothing is remembered.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
}

/// The loop-suppression middleware; clones share the cache.
#[derive(Clone, Debug)]
pub struct LoopGuard<S> {
    inner: S,
    cache: Arc<Mutex<DedupeCache>>,
}

/// Layer for [`LoopGuard`].
#[derive(Clone, Debug)]
pub struct LoopGuardLayer {
    cache: Arc<Mutex<DedupeCache>>,
}

impl LoopGuardLayer {
    /// Remembers message ids for `ttl`.
    pub fn new(ttl: Duration) -> Self {
        LoopGuardLayer {
            cache: Arc::new(Mutex::new(DedupeCache::new(ttl))),
        }
    }
}

impl<S> Layer<S> for LoopGuardLayer {
    type Service = LoopGuard<S>;
    fn layer(&self, inner: S) -> LoopGuard<S> {
        LoopGuard {
            inner,
            cache: self.cache.clone(),
        }
    }
}

enum Seen {
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
        let Operation::Message(m) = &mut req.op else {
            return Box::pin(self.inner.call(req));
        };
        if m.hops_left == 0 {
            let out = Outcome::failure(trans_id, 483, "Too Many Hops");
            return Box::pin(async move { Ok(out) });
        }
        m.hops_left -= 1;
        let Some(id) = m.message_id.clone() else {
            return Box::pin(self.inner.call(req));
        };
        let key = (m.source.bare().to_string(), id);
        let seen = {
            let now = Instant::now();
            let mut c = self.cache.lock().unwrap_or_else(|e| e.into_inner());
            c.expire(now);
            match c.map.get(&key) {
                Some(Entry::Done(s)) => Seen::Done(s.clone()),
                Some(Entry::InFlight(rx)) => Seen::Waiting(rx.clone()),
                None => {
                    let (tx, rx) = watch::channel(None);
                    c.map.insert(key.clone(), Entry::InFlight(rx));
                    c.order.push_back((now, key.clone()));
                    Seen::New(tx)
                }
            }
        };
        match seen {
            Seen::Done(status) => {
                tracing::debug!(message_id = %key.1, "duplicate answered from cache");
                Box::pin(async move { Ok(Outcome { trans_id, status }) })
            }
            Seen::Waiting(mut rx) => Box::pin(async move {
                let status = match rx.wait_for(Option::is_some).await {
                    Ok(s) => s.clone().unwrap_or_else(|| Status::new(500, "lost")),
                    Err(_) => Status::new(500, "first copy of a duplicate was abandoned"),
                };
                Ok(Outcome { trans_id, status })
            }),
            Seen::New(tx) => {
                let fut = self.inner.call(req);
                let cache = self.cache.clone();
                Box::pin(async move {
                    let guard = Abandon {
                        cache: &cache,
                        key: Some(key),
                    };
                    let out = fut.await?;
                    let mut guard = guard;
                    if let Some(key) = guard.key.take() {
                        let mut c = cache.lock().unwrap_or_else(|e| e.into_inner());
                        c.map.insert(key, Entry::Done(out.status.clone()));
                    }
                    let _ = tx.send(Some(out.status.clone()));
                    Ok(out)
                })
            }
        }
    }
}

/// Forgets an in-flight entry whose first copy was dropped (cancelled) before it
/// finished, so a retransmission is delivered rather than waiting forever.
struct Abandon<'a> {
    cache: &'a Arc<Mutex<DedupeCache>>,
    key: Option<(String, String)>,
}

impl Drop for Abandon<'_> {
    fn drop(&mut self) {
        if let Some(k) = self.key.take() {
            let mut c = self.cache.lock().unwrap_or_else(|e| e.into_inner());
            if matches!(c.map.get(&k), Some(Entry::InFlight(_))) {
                c.map.remove(&k);
            }
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

    #[tokio::test]
    async fn entries_expire_after_ttl() {
        let rec = Recorder::default();
        let svc = LoopGuardLayer::new(Duration::from_millis(1)).layer(rec.clone());
        svc.clone().oneshot(with_id(1, "m1", 70)).await.unwrap();
        std::thread::sleep(Duration::from_millis(5));
        svc.oneshot(with_id(2, "m1", 70)).await.unwrap();
        assert_eq!(rec.count(), 2);
    }
}
