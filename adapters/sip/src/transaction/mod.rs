//! SIP transactions (RFC 3261 s17), sans-IO.
//!
//! - [`ClientTransaction`]: non-INVITE client (s17.1.2: timers E, F, K).
//! - [`ServerTransaction`]: non-INVITE server (s17.2.2: timer J) and a minimal INVITE
//!   server (s17.2.1: timers G, H, I) good enough to send a final error answer and absorb
//!   the ACK (the gateway does not do calls).
//! - [`TransactionLayer`]: matching (branch per s17.1.3/s17.2.3, RFC 2543 fallback), a
//!   timer heap and the queues the tokio layer drains.
//! - [`stateless`]: the cap on server transactions and refusals that keep only a record
//!   ([`ServerLimits`], [`TxStats`]); `key`: the matching keys ([`TxKey`]).
//!
//! No clock and no sockets: time comes in as `Instant` arguments, output leaves through
//! `poll_transmit`, `poll_event` and `poll_timeout`.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};

use cpim_core::sharded::ShardedMap;
use std::time::{Duration, Instant};

use bytes::Bytes;

use crate::codec::{Method, Request, Response};

mod key;
pub mod stateless;
pub use key::TxKey;
pub use stateless::{is_refusal, stateless_tag, ServerLimits, TxStats};

/// Timer base values (RFC 3261 s17.1.1.1, table 4).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timers {
    /// RTT estimate (500 ms).
    pub t1: Duration,
    /// Maximum retransmit interval for non-INVITE requests and INVITE responses (4 s).
    pub t2: Duration,
    /// Maximum time a message stays in the network (5 s).
    pub t4: Duration,
}

impl Default for Timers {
    fn default() -> Self {
        Timers {
            t1: Duration::from_millis(500),
            t2: Duration::from_secs(4),
            t4: Duration::from_secs(5),
        }
    }
}

/// Errors of the transaction layer.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TransactionError {
    /// No such transaction (already terminated, or never existed).
    #[error("no such transaction")]
    Unknown,
    /// A final response was already sent.
    #[error("transaction already completed")]
    AlreadyCompleted,
    /// A response to send must be 100..=699.
    #[error("invalid status code {0}")]
    BadStatus(u16),
    /// The request has no top Via branch and cannot start a client transaction.
    #[error("request has no Via branch")]
    NoBranch,
}

/// State of a non-INVITE client transaction (s17.1.2.2, figure 6).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClientState {
    /// Request sent, nothing heard.
    Trying,
    /// A provisional response arrived.
    Proceeding,
    /// A final response arrived; absorbing retransmissions until timer K.
    Completed,
    /// Done.
    Terminated,
}

/// What a client transaction tells its TU.
#[derive(Clone, Debug)]
pub enum ClientEvent {
    /// A provisional response.
    Provisional(Response),
    /// The final response (once).
    Final(Response),
    /// Timer F fired: no final response (the TU treats this as 408, s8.1.3.1).
    Timeout,
}

/// A non-INVITE client transaction.
#[derive(Debug)]
pub struct ClientTransaction {
    state: ClientState,
    request: Bytes,
    reliable: bool,
    timers: Timers,
    interval: Duration,
    timer_e: Option<Instant>,
    timer_f: Option<Instant>,
    timer_k: Option<Instant>,
    transmit: VecDeque<Bytes>,
    events: VecDeque<ClientEvent>,
}

impl ClientTransaction {
    /// Starts the transaction: the request is queued for transmission, timer F (and E on
    /// unreliable transports) is armed.
    pub fn new(request: Bytes, reliable: bool, timers: Timers, now: Instant) -> Self {
        let mut t = ClientTransaction {
            state: ClientState::Trying,
            request: request.clone(),
            reliable,
            timers,
            interval: timers.t1,
            timer_e: if reliable {
                None
            } else {
                Some(now + timers.t1)
            },
            timer_f: Some(now + 64 * timers.t1),
            timer_k: None,
            transmit: VecDeque::new(),
            events: VecDeque::new(),
        };
        t.transmit.push_back(request);
        t
    }

    /// Current state.
    pub fn state(&self) -> ClientState {
        self.state
    }

    /// A response matched to this transaction.
    pub fn handle_message(&mut self, resp: Response, now: Instant) {
        let code = resp.code();
        match self.state {
            ClientState::Trying | ClientState::Proceeding => {
                if code < 200 {
                    if self.state == ClientState::Trying {
                        self.state = ClientState::Proceeding;
                    }
                    self.events.push_back(ClientEvent::Provisional(resp));
                } else {
                    self.state = ClientState::Completed;
                    self.timer_e = None;
                    self.timer_f = None;
                    self.timer_k = Some(if self.reliable {
                        now
                    } else {
                        now + self.timers.t4
                    });
                    self.events.push_back(ClientEvent::Final(resp));
                }
            }
            // retransmitted responses are absorbed
            ClientState::Completed | ClientState::Terminated => {}
        }
    }

    /// Fires the timers due at `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.timer_f.is_some_and(|t| t <= now) {
            self.timer_f = None;
            self.timer_e = None;
            self.state = ClientState::Terminated;
            self.events.push_back(ClientEvent::Timeout);
            return;
        }
        if let Some(e) = self.timer_e.filter(|t| *t <= now) {
            self.transmit.push_back(self.request.clone());
            self.interval = match self.state {
                ClientState::Trying => (self.interval * 2).min(self.timers.t2),
                _ => self.timers.t2,
            };
            // schedule relative to the time the timer was due, not to a late wake-up
            let next = e + self.interval;
            self.timer_e = Some(if next <= now {
                now + self.interval
            } else {
                next
            });
        }
        if self.timer_k.is_some_and(|t| t <= now) {
            self.timer_k = None;
            self.state = ClientState::Terminated;
        }
    }

    /// Next datagram/segment to send to the transaction's destination.
    pub fn poll_transmit(&mut self) -> Option<Bytes> {
        self.transmit.pop_front()
    }

    /// Earliest pending timer.
    pub fn poll_timeout(&self) -> Option<Instant> {
        [self.timer_e, self.timer_f, self.timer_k]
            .into_iter()
            .flatten()
            .min()
    }

    /// Next event for the TU.
    pub fn poll_event(&mut self) -> Option<ClientEvent> {
        self.events.pop_front()
    }

    /// The transport reported a failure (s17.1.4): behaves like a timeout.
    pub fn handle_transport_error(&mut self) {
        if matches!(self.state, ClientState::Trying | ClientState::Proceeding) {
            self.state = ClientState::Terminated;
            self.timer_e = None;
            self.timer_f = None;
            self.events.push_back(ClientEvent::Timeout);
        }
    }
}

/// State of a server transaction (s17.2.1 figure 7, s17.2.2 figure 8).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ServerState {
    /// Request received, TU not answered yet (non-INVITE).
    Trying,
    /// A provisional response was sent.
    Proceeding,
    /// A final response was sent; retransmitting it on request retransmissions.
    Completed,
    /// INVITE only: the ACK arrived, absorbing ACK retransmissions until timer I.
    Confirmed,
    /// Done.
    Terminated,
}

/// What a server transaction tells its TU.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ServerEvent {
    /// INVITE: timer H fired without an ACK.
    AckTimeout,
}

/// A server transaction (non-INVITE, or INVITE answered with a final response only).
#[derive(Debug)]
pub struct ServerTransaction {
    state: ServerState,
    invite: bool,
    reliable: bool,
    timers: Timers,
    last_response: Option<Bytes>,
    interval: Duration,
    timer_g: Option<Instant>,
    timer_h: Option<Instant>,
    timer_end: Option<Instant>,
    transmit: VecDeque<Bytes>,
    events: VecDeque<ServerEvent>,
}

impl ServerTransaction {
    /// Creates the transaction for a new request (the caller passes the request to the TU).
    pub fn new(method: &Method, reliable: bool, timers: Timers) -> Self {
        let invite = *method == Method::Invite;
        ServerTransaction {
            state: if invite {
                ServerState::Proceeding
            } else {
                ServerState::Trying
            },
            invite,
            reliable,
            timers,
            last_response: None,
            interval: timers.t1,
            timer_g: None,
            timer_h: None,
            timer_end: None,
            transmit: VecDeque::new(),
            events: VecDeque::new(),
        }
    }

    /// Current state.
    pub fn state(&self) -> ServerState {
        self.state
    }

    /// A retransmission of the request (or, for INVITE, an ACK) matched this transaction.
    /// The request never goes to the TU again; the last response is re-sent.
    pub fn handle_message(&mut self, method: &Method, _now: Instant) {
        if self.invite && *method == Method::Ack {
            if self.state == ServerState::Completed {
                self.state = ServerState::Confirmed;
                self.timer_g = None;
                self.timer_h = None;
                self.timer_end = Some(if self.reliable {
                    _now
                } else {
                    _now + self.timers.t4
                });
            }
            return;
        }
        match self.state {
            ServerState::Proceeding | ServerState::Completed => {
                if let Some(r) = &self.last_response {
                    self.transmit.push_back(r.clone());
                }
            }
            ServerState::Trying | ServerState::Confirmed | ServerState::Terminated => {}
        }
    }

    /// The TU sends a response (already encoded) with status `code`.
    pub fn send_response(
        &mut self,
        code: u16,
        data: Bytes,
        now: Instant,
    ) -> Result<(), TransactionError> {
        if !(100..=699).contains(&code) {
            return Err(TransactionError::BadStatus(code));
        }
        match self.state {
            ServerState::Trying | ServerState::Proceeding => {}
            _ => return Err(TransactionError::AlreadyCompleted),
        }
        self.transmit.push_back(data.clone());
        self.last_response = Some(data);
        if code < 200 {
            self.state = ServerState::Proceeding;
        } else if self.invite {
            // s17.2.1: 300-699 -> Completed, G (unreliable) and H armed. (2xx would be
            // handed to the TU core; the gateway never accepts INVITE.)
            self.state = ServerState::Completed;
            if !self.reliable {
                self.timer_g = Some(now + self.timers.t1);
            }
            self.timer_h = Some(now + 64 * self.timers.t1);
        } else {
            self.state = ServerState::Completed;
            self.timer_end = Some(if self.reliable {
                now
            } else {
                now + 64 * self.timers.t1
            });
        }
        Ok(())
    }

    /// Fires the timers due at `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        if let Some(g) = self.timer_g.filter(|t| *t <= now) {
            if let Some(r) = &self.last_response {
                self.transmit.push_back(r.clone());
            }
            self.interval = (self.interval * 2).min(self.timers.t2);
            let next = g + self.interval;
            self.timer_g = Some(if next <= now {
                now + self.interval
            } else {
                next
            });
        }
        if self.timer_h.is_some_and(|t| t <= now) {
            self.timer_h = None;
            self.timer_g = None;
            self.state = ServerState::Terminated;
            self.events.push_back(ServerEvent::AckTimeout);
        }
        if self.timer_end.is_some_and(|t| t <= now) {
            self.timer_end = None;
            self.state = ServerState::Terminated;
        }
    }

    /// Next response bytes to send to the request's source.
    pub fn poll_transmit(&mut self) -> Option<Bytes> {
        self.transmit.pop_front()
    }

    /// Earliest pending timer.
    pub fn poll_timeout(&self) -> Option<Instant> {
        [self.timer_g, self.timer_h, self.timer_end]
            .into_iter()
            .flatten()
            .min()
    }

    /// Next event for the TU.
    pub fn poll_event(&mut self) -> Option<ServerEvent> {
        self.events.pop_front()
    }
}

/// Identifies a transaction inside a [`TransactionLayer`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TxId(pub u64);

/// Output of the layer for the TU.
#[derive(Debug)]
pub enum LayerEvent<A> {
    /// A new request (retransmissions are absorbed and never appear here).
    Request {
        /// Server transaction to answer through.
        id: TxId,
        /// The request.
        request: Request,
        /// Where it came from.
        source: A,
    },
    /// A response for a client transaction.
    Response {
        /// Client transaction.
        id: TxId,
        /// Provisional or final response.
        response: Response,
    },
    /// A client transaction timed out (timer F): the TU reports 408.
    Timeout {
        /// Client transaction.
        id: TxId,
    },
    /// A server or client transaction ended and was removed.
    Terminated {
        /// Which.
        id: TxId,
    },
}

/// What happened to an incoming request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Incoming {
    /// A new server transaction; the request was queued as a [`LayerEvent::Request`].
    New(TxId),
    /// A retransmission, absorbed (the last response, if any, was queued again).
    Retransmission(TxId),
    /// An ACK that matched an INVITE server transaction, absorbed.
    Ack(TxId),
    /// An ACK for no known transaction (for a 2xx, which the gateway never sends): dropped.
    StrayAck,
    /// A new request past [`ServerLimits::max_server_transactions`]: answered statelessly
    /// (503) or dropped, no transaction (see [`stateless`]).
    Refused,
}

#[derive(Debug)]
enum Slot<A> {
    Client {
        tx: ClientTransaction,
        key: TxKey,
        dest: A,
    },
    Server {
        tx: ServerTransaction,
        key: TxKey,
        source: A,
    },
}

/// All transactions of an endpoint, generic over the address type `A` the owner uses to
/// route output (e.g. socket address + transport).
#[derive(Debug)]
pub struct TransactionLayer<A> {
    timers: Timers,
    next_id: u64,
    // per-transaction state: sharded, so that growing them never stalls the endpoint
    // (see `cpim_core::sharded`)
    slots: ShardedMap<TxId, Slot<A>>,
    clients: ShardedMap<TxKey, TxId>,
    servers: ShardedMap<TxKey, TxId>,
    heap: BinaryHeap<Reverse<(Instant, TxId)>>,
    transmit: VecDeque<(A, Bytes)>,
    events: VecDeque<LayerEvent<A>>,
    limits: ServerLimits,
    stats: std::sync::Arc<TxStats>,
    records: stateless::Records<A>,
}

impl<A: Clone> TransactionLayer<A> {
    /// An empty layer.
    pub fn new(timers: Timers) -> Self {
        TransactionLayer {
            timers,
            next_id: 1,
            slots: ShardedMap::new(),
            clients: ShardedMap::new(),
            servers: ShardedMap::new(),
            heap: BinaryHeap::new(),
            transmit: VecDeque::new(),
            events: VecDeque::new(),
            limits: ServerLimits::default(),
            stats: Default::default(),
            records: stateless::Records::new(),
        }
    }

    /// Number of live transactions.
    pub fn len(&self) -> usize {
        self.slots.len()
    }

    /// True if there is no live transaction.
    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    fn alloc(&mut self) -> TxId {
        let id = TxId(self.next_id);
        self.next_id += 1;
        id
    }

    /// A request arrived from `source` over a reliable or unreliable transport.
    pub fn handle_request(
        &mut self,
        request: Request,
        source: A,
        reliable: bool,
        now: Instant,
    ) -> Incoming {
        let key = TxKey::for_server(&request);
        if let Some(&id) = self.servers.get(&key) {
            let is_ack = *request.method() == Method::Ack;
            if let Some(Slot::Server {
                tx, source: src, ..
            }) = self.slots.get_mut(&id)
            {
                tx.handle_message(request.method(), now);
                while let Some(b) = tx.poll_transmit() {
                    self.transmit.push_back((src.clone(), b));
                }
            }
            self.reschedule(id);
            return if is_ack {
                Incoming::Ack(id)
            } else {
                Incoming::Retransmission(id)
            };
        }
        if let Some(r) = self.resend_recorded(&key, now) {
            return r;
        }
        if *request.method() == Method::Ack {
            return Incoming::StrayAck;
        }
        if self.at_cap() {
            return self.refuse_over_cap(&request, source);
        }
        let id = self.alloc();
        let tx = ServerTransaction::new(request.method(), reliable, self.timers);
        self.servers.insert(key.clone(), id);
        self.slots.insert(
            id,
            Slot::Server {
                tx,
                key,
                source: source.clone(),
            },
        );
        self.stats.observe(self.servers.len());
        self.events.push_back(LayerEvent::Request {
            id,
            request,
            source,
        });
        Incoming::New(id)
    }

    /// The TU answers server transaction `id`.
    pub fn respond(
        &mut self,
        id: TxId,
        response: &Response,
        now: Instant,
    ) -> Result<(), TransactionError> {
        let Some(Slot::Server { tx, source, .. }) = self.slots.get_mut(&id) else {
            return Err(TransactionError::Unknown);
        };
        tx.send_response(response.code(), response.to_bytes(), now)?;
        while let Some(b) = tx.poll_transmit() {
            self.transmit.push_back((source.clone(), b));
        }
        self.reschedule(id);
        Ok(())
    }

    /// Starts a client transaction for `request` toward `dest`.
    pub fn send_request(
        &mut self,
        request: &Request,
        dest: A,
        reliable: bool,
        now: Instant,
    ) -> Result<TxId, TransactionError> {
        let key = TxKey::for_client(request).ok_or(TransactionError::NoBranch)?;
        let id = self.alloc();
        let mut tx = ClientTransaction::new(request.to_bytes(), reliable, self.timers, now);
        while let Some(b) = tx.poll_transmit() {
            self.transmit.push_back((dest.clone(), b));
        }
        self.clients.insert(key.clone(), id);
        self.slots.insert(id, Slot::Client { tx, key, dest });
        self.reschedule(id);
        Ok(id)
    }

    /// A response arrived. Returns the matched client transaction, or `None` for a stray
    /// response (dropped, s18.1.2).
    pub fn handle_response(&mut self, response: Response, now: Instant) -> Option<TxId> {
        let key = TxKey::for_response(&response)?;
        let id = *self.clients.get(&key)?;
        if let Some(Slot::Client { tx, .. }) = self.slots.get_mut(&id) {
            tx.handle_message(response, now);
        }
        self.drain(id);
        Some(id)
    }

    /// The transport failed to deliver for client transaction `id`.
    pub fn transport_error(&mut self, id: TxId) {
        if let Some(Slot::Client { tx, .. }) = self.slots.get_mut(&id) {
            tx.handle_transport_error();
        }
        self.drain(id);
    }

    fn drain(&mut self, id: TxId) {
        let mut done = false;
        match self.slots.get_mut(&id) {
            Some(Slot::Client { tx, dest, .. }) => {
                while let Some(b) = tx.poll_transmit() {
                    self.transmit.push_back((dest.clone(), b));
                }
                while let Some(ev) = tx.poll_event() {
                    self.events.push_back(match ev {
                        ClientEvent::Provisional(r) | ClientEvent::Final(r) => {
                            LayerEvent::Response { id, response: r }
                        }
                        ClientEvent::Timeout => LayerEvent::Timeout { id },
                    });
                }
                done = tx.state() == ClientState::Terminated;
            }
            Some(Slot::Server { tx, source, .. }) => {
                while let Some(b) = tx.poll_transmit() {
                    self.transmit.push_back((source.clone(), b));
                }
                while tx.poll_event().is_some() {}
                done = tx.state() == ServerState::Terminated;
            }
            None => {}
        }
        if done {
            match self.slots.remove(&id) {
                Some(Slot::Client { key, .. }) => {
                    self.clients.remove(&key);
                }
                Some(Slot::Server { key, .. }) => {
                    self.servers.remove(&key);
                    self.stats.observe(self.servers.len());
                }
                None => {}
            }
            self.events.push_back(LayerEvent::Terminated { id });
        } else {
            self.reschedule(id);
        }
    }

    fn reschedule(&mut self, id: TxId) {
        let t = match self.slots.get(&id) {
            Some(Slot::Client { tx, .. }) => tx.poll_timeout(),
            Some(Slot::Server { tx, .. }) => tx.poll_timeout(),
            None => None,
        };
        if let Some(t) = t {
            self.heap.push(Reverse((t, id)));
        }
    }

    /// Fires every timer due at `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        while let Some(Reverse((t, id))) = self.heap.peek().copied() {
            if t > now {
                break;
            }
            self.heap.pop();
            let due = match self.slots.get_mut(&id) {
                Some(Slot::Client { tx, .. }) if tx.poll_timeout() == Some(t) => {
                    tx.handle_timeout(now);
                    true
                }
                Some(Slot::Server { tx, .. }) if tx.poll_timeout() == Some(t) => {
                    tx.handle_timeout(now);
                    true
                }
                _ => false, // stale heap entry
            };
            if due {
                self.drain(id);
            }
        }
    }

    /// Earliest instant at which [`TransactionLayer::handle_timeout`] has work.
    pub fn poll_timeout(&mut self) -> Option<Instant> {
        // drop stale entries at the top so the answer is exact
        while let Some(Reverse((t, id))) = self.heap.peek().copied() {
            let live = match self.slots.get(&id) {
                Some(Slot::Client { tx, .. }) => tx.poll_timeout() == Some(t),
                Some(Slot::Server { tx, .. }) => tx.poll_timeout() == Some(t),
                None => false,
            };
            if live {
                return Some(t);
            }
            self.heap.pop();
        }
        None
    }

    /// Next `(destination, bytes)` to send.
    pub fn poll_transmit(&mut self) -> Option<(A, Bytes)> {
        self.transmit.pop_front()
    }

    /// Next event for the TU.
    pub fn poll_event(&mut self) -> Option<LayerEvent<A>> {
        self.events.pop_front()
    }

    /// State of a server transaction (for tests and diagnostics).
    pub fn server_state(&self, id: TxId) -> Option<ServerState> {
        match self.slots.get(&id) {
            Some(Slot::Server { tx, .. }) => Some(tx.state()),
            _ => None,
        }
    }

    /// State of a client transaction (for tests and diagnostics).
    pub fn client_state(&self, id: TxId) -> Option<ClientState> {
        match self.slots.get(&id) {
            Some(Slot::Client { tx, .. }) => Some(tx.state()),
            _ => None,
        }
    }
}
