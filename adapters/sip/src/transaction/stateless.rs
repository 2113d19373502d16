//! Bounded server-transaction state (issue 10: "every standing state an outsider can
//! create has a cap"), sans-IO.
//!
//! A non-INVITE server transaction keeps its final response for timer J (64*T1, 32 s over
//! UDP, RFC 3261 s17.2.2), so every request received costs memory for half a minute
//! whatever it was answered. Two rules bound that:
//!
//! - **A cap** ([`ServerLimits::max_server_transactions`]). Past it a new request gets no
//!   transaction: it is answered statelessly (RFC 3261 s8.2.7, s17 allows a stateless
//!   UAS) with `503 Service Unavailable` and `Retry-After` of timer J's length, the time
//!   after which the transactions held now have ended (RFC 3261 s21.5.4). The answer is
//!   dropped instead when it would be longer than the request, so a forged source never
//!   gets more bytes back than were sent in its name (no reflection amplification); the
//!   sender's retransmission (or its transaction timeout) stands in for it. A stateless
//!   answer is a function of the request (its To tag is a keyed hash of the transaction
//!   key, [`stateless_tag`]), so a retransmitted request gets the same bytes again.
//! - **Refusals keep a compact record, not a transaction**
//!   ([`ServerLimits::stateless_refusals`], on in the endpoint). A final response to a
//!   non-INVITE request whose code says the request was not acted upon ([`is_refusal`]:
//!   400, 401, 403, 405, 407, 416, 420, 481, 501, and 503 with Retry-After), or any final
//!   answer to OPTIONS (which does nothing, RFC 3261 s11), ends its transaction at once.
//!   Over UDP only a compact record stays for timer J: the key, the destination and the
//!   response bytes, so a retransmission still gets the same bytes (RFC 3261 s17.2.2).
//!   The records are at most `max_server_transactions` too and the oldest is forgotten
//!   first, so they never refuse anything: a flood only shortens how long a refusal is
//!   remembered, and a retransmission of a forgotten one is a new request, refused again
//!   by the same checks (a rate-limit 503, a digest challenge, an untrusted foreign
//!   domain's 403): nothing was done the first time, so nothing is done twice, and the
//!   client transaction absorbs the repeated final response (RFC 3261 s17.1.2.2). INVITE
//!   keeps its full transaction (timer G/H and the ACK, s17.2.1).
//!
//! Measured cost (`tests/interop/tests/security_flood.rs`, the gateway binary under a
//! flood with the cap off: 6,008 held transactions grew RSS by 13 MiB, 4,178 by 15 MiB,
//! queues included): a held server transaction costs about 2-3 KiB (its slot, two map
//! entries, the timer, the response bytes, the request while the TU has it). A compact
//! record is the key twice (map and expiry queue), the destination and the response
//! bytes: about 1 KiB (estimated from the sizes, not measured apart).

use std::collections::hash_map::RandomState;
use std::collections::{HashMap, VecDeque};
use std::hash::BuildHasher;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Instant;

use super::{
    Incoming, LayerEvent, ServerState, Slot, TransactionError, TransactionLayer, TxId, TxKey,
};
use crate::codec::{HeaderName, Method, Request, Response};

/// The limits of a [`TransactionLayer`]'s server side (see the module docs).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ServerLimits {
    /// Server transactions held at once; past it new requests are answered statelessly.
    pub max_server_transactions: usize,
    /// End a non-INVITE transaction as soon as a refusal ([`is_refusal`]) or an answer
    /// to OPTIONS is sent, keeping a compact record of the answer (over UDP).
    pub stateless_refusals: bool,
}

impl Default for ServerLimits {
    /// No cap and full transactions for every answer (RFC 3261 as written).
    fn default() -> Self {
        ServerLimits {
            max_server_transactions: usize::MAX,
            stateless_refusals: false,
        }
    }
}

/// Counters of a layer's server side, shared with whoever reports them (metrics).
#[derive(Debug, Default)]
pub struct TxStats {
    current: AtomicUsize,
    peak: AtomicUsize,
    refused: AtomicUsize,
    records: AtomicUsize,
}

impl TxStats {
    /// Server transactions held now.
    pub fn server_transactions(&self) -> usize {
        self.current.load(Ordering::Relaxed)
    }

    /// The most server transactions held at once since start.
    pub fn peak_server_transactions(&self) -> usize {
        self.peak.load(Ordering::Relaxed)
    }

    /// Requests answered (or dropped) statelessly because the cap was reached.
    pub fn refused_over_cap(&self) -> usize {
        self.refused.load(Ordering::Relaxed)
    }

    /// Compact records of ended transactions' answers kept now.
    pub fn records(&self) -> usize {
        self.records.load(Ordering::Relaxed)
    }

    pub(super) fn observe(&self, n: usize) {
        self.current.store(n, Ordering::Relaxed);
        self.peak.fetch_max(n, Ordering::Relaxed);
    }
}

/// True if a final response to a non-INVITE request says the request was not acted upon,
/// so it can be regenerated for a retransmission instead of kept (see the module docs):
/// 400, 401, 403, 405, 407, 416, 420, 481, 501 (RFC 3261 s21.4, s21.5.2), and 503 when it
/// carries Retry-After (s21.5.4: the server is temporarily unable to process it; a 503
/// without it may report a delivery attempt, whose outcome must be kept).
pub fn is_refusal(resp: &Response) -> bool {
    match resp.code() {
        400 | 401 | 403 | 405 | 407 | 416 | 420 | 481 | 501 => true,
        503 => resp.header(HeaderName::RetryAfter).is_some(),
        _ => false,
    }
}

/// The To tag of a stateless answer to `req`: a hash of its transaction key, keyed with a
/// random per-process value, so the same request always gets the same tag (RFC 3261
/// s8.2.7) and an outsider cannot predict it.
pub fn stateless_tag(req: &Request) -> String {
    static KEY: OnceLock<RandomState> = OnceLock::new();
    let h = KEY
        .get_or_init(RandomState::new)
        .hash_one(TxKey::for_server(req));
    format!("sl{h:016x}")
}

/// The stateless 503 for a request past the cap, or `None` when it would be longer than
/// the request (then nothing is sent).
fn over_cap_answer(req: &Request, retry_after: u64) -> Option<bytes::Bytes> {
    let resp = Response::for_request_tagged(
        req,
        503,
        Some("Service Unavailable"),
        Some(&stateless_tag(req)),
    )
    .header(HeaderName::RetryAfter, &retry_after.to_string())
    .build_response()
    .ok()?
    .to_bytes();
    (resp.len() <= req.to_bytes().len()).then_some(resp)
}

impl<A: Clone> TransactionLayer<A> {
    /// Sets the server-side limits (see the module docs).
    pub fn set_limits(&mut self, limits: ServerLimits) {
        self.limits = limits;
    }

    /// The counters of this layer (shared; they follow the layer).
    pub fn stats(&self) -> Arc<TxStats> {
        Arc::clone(&self.stats)
    }

    /// Server transactions held now.
    pub fn server_count(&self) -> usize {
        self.servers.len()
    }

    /// A request matching a compact record: its answer is queued again.
    pub(super) fn resend_recorded(&mut self, key: &TxKey, now: Instant) -> Option<Incoming> {
        let (dest, bytes, id) = self.records.get(key, now)?;
        self.transmit.push_back((dest, bytes));
        Some(Incoming::Retransmission(id))
    }

    /// True when a new request must get no transaction.
    pub(super) fn at_cap(&self) -> bool {
        self.servers.len() >= self.limits.max_server_transactions
    }

    /// Answers a request past the cap without keeping anything.
    pub(super) fn refuse_over_cap(&mut self, request: &Request, source: A) -> Incoming {
        self.stats.refused.fetch_add(1, Ordering::Relaxed);
        let retry = (64 * self.timers.t1).as_secs().max(1);
        if let Some(b) = over_cap_answer(request, retry) {
            self.transmit.push_back((source, b));
        }
        Incoming::Refused
    }

    /// The TU answers server transaction `id`; a refusal ([`is_refusal`]) to a non-INVITE
    /// request, or a final answer to OPTIONS, ends the transaction at once, leaving a
    /// compact record over UDP, when [`ServerLimits::stateless_refusals`] is on. Otherwise
    /// the same as [`TransactionLayer::respond`].
    pub fn respond_final(
        &mut self,
        id: TxId,
        response: &Response,
        now: Instant,
    ) -> Result<(), TransactionError> {
        let source = match self.slots.get(&id) {
            Some(Slot::Server {
                tx, source, key, ..
            }) if self.limits.stateless_refusals
                && !tx.invite
                && (is_refusal(response) || key_method(key) == &Method::Options) =>
            {
                if !matches!(tx.state, ServerState::Trying | ServerState::Proceeding) {
                    return Err(TransactionError::AlreadyCompleted);
                }
                source.clone()
            }
            _ => return self.respond(id, response, now),
        };
        let bytes = response.to_bytes();
        self.transmit.push_back((source.clone(), bytes.clone()));
        if let Some(Slot::Server { key, tx, .. }) = self.slots.remove(&id) {
            self.servers.remove(&key);
            if !tx.reliable {
                let until = now + 64 * self.timers.t1;
                let cap = self.limits.max_server_transactions;
                self.records
                    .insert(key, (source, bytes, id), until, cap, now);
            }
        }
        self.stats.observe(self.servers.len());
        self.stats
            .records
            .store(self.records.len(), Ordering::Relaxed);
        self.events.push_back(LayerEvent::Terminated { id });
        Ok(())
    }
}

fn key_method(key: &TxKey) -> &Method {
    match key {
        TxKey::Branch { method, .. } | TxKey::Legacy { method, .. } => method,
    }
}

/// Compact records of answers whose transaction ended early (see the module docs): the
/// transaction key, where the answer went, its bytes and the id it had, for timer J;
/// at most `cap` of them, the oldest forgotten first.
#[derive(Debug)]
pub(super) struct Records<A> {
    map: HashMap<TxKey, (A, bytes::Bytes, TxId)>,
    order: VecDeque<(Instant, TxKey)>,
}

impl<A: Clone> Records<A> {
    pub(super) fn new() -> Self {
        Records {
            map: HashMap::new(),
            order: VecDeque::new(),
        }
    }

    pub(super) fn len(&self) -> usize {
        self.map.len()
    }

    fn purge(&mut self, now: Instant) {
        while let Some((t, _)) = self.order.front() {
            if *t > now {
                break;
            }
            if let Some((_, k)) = self.order.pop_front() {
                self.map.remove(&k);
            }
        }
    }

    fn insert(
        &mut self,
        key: TxKey,
        rec: (A, bytes::Bytes, TxId),
        until: Instant,
        cap: usize,
        now: Instant,
    ) {
        self.purge(now);
        while self.map.len() >= cap.max(1) {
            match self.order.pop_front() {
                Some((_, k)) => {
                    self.map.remove(&k);
                }
                None => break,
            }
        }
        if self.map.insert(key.clone(), rec).is_none() {
            self.order.push_back((until, key));
        }
    }

    fn get(&mut self, key: &TxKey, now: Instant) -> Option<(A, bytes::Bytes, TxId)> {
        self.purge(now);
        self.map.get(key).cloned()
    }
}
