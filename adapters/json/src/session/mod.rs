//! One client session of the JSON protocol, sans-IO.
//!
//! Input: [`Session::handle_frame`] (one decoded frame's bytes, or a framing error),
//! [`Session::handle_submit_outcome`] (the core answered an operation the client sent),
//! [`Session::deliver`] (the core has an operation for this client),
//! [`Session::handle_timeout`]. Output: [`Session::poll_event`] and
//! [`Session::poll_timeout`]. Time is passed in.
//!
//! States: `AwaitHello` -> `Open` (after a `hello` with a known token) -> `Closing`
//! (after a fatal error; the error frame is still sent).

use cpim_core::StatusCode;
use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use cpim_core::{Address, Operation, Outcome, TransId};

use crate::frame::*;

mod convert;
mod inbound;
mod outbound;
#[cfg(test)]
mod tests;

pub use convert::{presence_from_parts, presence_to_object};

/// Limits and credentials a session applies.
#[derive(Clone, Debug)]
pub struct SessionLimits {
    /// Sustained operation frames per second.
    pub rate_per_sec: f64,
    /// Burst of operation frames above the rate.
    pub rate_burst: u32,
    /// How long the client has to answer a delivered operation with `outcome`.
    pub deliver_timeout: Duration,
    /// How long after connecting the `hello` must arrive.
    pub hello_timeout: Duration,
}

/// What the session asks its driver to do.
// Events are short-lived (queued, then taken at once); boxing the operation would cost an
// allocation per event for nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
#[non_exhaustive]
pub enum Event {
    /// Write this frame to the client.
    Send(Frame),
    /// The client logged in and may receive for these addresses.
    LoggedIn(Vec<Address>),
    /// Submit this operation to the core; report its outcome with
    /// [`Session::handle_submit_outcome`].
    Submit(Operation),
    /// The delivery with this token is resolved.
    Delivered(u64, Outcome),
    /// Close the connection (after writing what was queued before).
    Close,
}

#[derive(Debug)]
enum State {
    AwaitHello { deadline: Instant },
    Open { addresses: Vec<Address> },
    Closing,
}

struct Pending {
    token: u64,
    trans_id: TransId,
    deadline: Instant,
}

/// Looks a login token up: the addresses it may send as, or `None`.
pub trait TokenCheck {
    /// The addresses bound to `token`.
    fn addresses(&self, token: &str) -> Option<Vec<Address>>;
}

impl TokenCheck for HashMap<String, Vec<Address>> {
    fn addresses(&self, token: &str) -> Option<Vec<Address>> {
        self.get(token).cloned()
    }
}

/// A session.
#[derive(Debug)]
pub struct Session {
    id: u64,
    state: State,
    limits: SessionLimits,
    events: VecDeque<Event>,
    /// Operations submitted to the core: TransId -> client frame id.
    submitted: HashMap<TransId, String>,
    /// Operations delivered to the client: server frame id -> pending.
    delivered: HashMap<String, Pending>,
    next_trans: u64,
    next_sid: u64,
    tokens: f64,
    refilled: Instant,
}

impl std::fmt::Debug for Pending {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Pending({}, {:?})", self.token, self.trans_id)
    }
}

fn err(id: Option<&str>, code: u16, reason: impl Into<String>) -> Event {
    Event::Send(Frame::Error(ErrorFrame {
        id: id.map(str::to_owned),
        code,
        reason: reason.into(),
        fatal: false,
    }))
}

/// Reads the `id` member of a frame that failed to parse, so the error can name it.
fn sniff_id(bytes: &[u8]) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct IdOnly {
        id: Option<String>,
    }
    serde_json::from_slice::<IdOnly>(bytes)
        .ok()
        .and_then(|f| f.id)
}

impl Session {
    /// A new session with id `id` (unique within the adapter: it makes the TransIds of
    /// this session unique), connected at `now`.
    pub fn new(id: u64, limits: SessionLimits, now: Instant) -> Session {
        Session {
            id,
            state: State::AwaitHello {
                deadline: now + limits.hello_timeout,
            },
            tokens: f64::from(limits.rate_burst),
            limits,
            events: VecDeque::new(),
            submitted: HashMap::new(),
            delivered: HashMap::new(),
            next_trans: 0,
            next_sid: 0,
            refilled: now,
        }
    }

    /// The session id.
    pub fn id(&self) -> u64 {
        self.id
    }

    /// True once logged in and not closing.
    pub fn is_open(&self) -> bool {
        matches!(self.state, State::Open { .. })
    }

    fn trans_id(&mut self) -> TransId {
        self.next_trans += 1;
        TransId((self.id << 32) | (self.next_trans & 0xFFFF_FFFF))
    }

    fn fatal(&mut self, id: Option<&str>, code: u16, reason: impl Into<String>) {
        self.events.push_back(Event::Send(Frame::Error(ErrorFrame {
            id: id.map(str::to_owned),
            code,
            reason: reason.into(),
            fatal: true,
        })));
        self.events.push_back(Event::Close);
        self.state = State::Closing;
    }

    /// Expires deliveries the client did not answer (408) and a missing hello.
    pub fn handle_timeout(&mut self, now: Instant) {
        if let State::AwaitHello { deadline } = self.state {
            if now >= deadline {
                self.fatal(None, 408, "no hello received in time");
            }
        }
        let expired: Vec<String> = self
            .delivered
            .iter()
            .filter(|(_, p)| p.deadline <= now)
            .map(|(k, _)| k.clone())
            .collect();
        for k in expired {
            if let Some(p) = self.delivered.remove(&k) {
                self.events.push_back(Event::Delivered(
                    p.token,
                    Outcome::failure(
                        p.trans_id,
                        StatusCode::REQUEST_TIMEOUT,
                        "client did not answer in time",
                    ),
                ));
            }
        }
    }

    /// The next instant [`Session::handle_timeout`] has work.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let hello = match self.state {
            State::AwaitHello { deadline } => Some(deadline),
            _ => None,
        };
        self.delivered
            .values()
            .map(|p| p.deadline)
            .chain(hello)
            .min()
    }

    /// The next thing to do.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// Ends the session: every delivery still waiting is resolved with 480.
    pub fn close(&mut self) {
        for (_, p) in self.delivered.drain() {
            self.events.push_back(Event::Delivered(
                p.token,
                Outcome::failure(
                    p.trans_id,
                    StatusCode::TEMPORARILY_UNAVAILABLE,
                    "client disconnected",
                ),
            ));
        }
        self.state = State::Closing;
    }
}
