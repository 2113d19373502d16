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

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use base64::Engine as _;
use cpim_core::model::{DispositionRequest, MessageKind, SubscriptionState, TerminationReason};
use cpim_core::presence::{Activity, Basic, Note, Person, Tuple};
use cpim_core::{
    Address, Message, Notify, Operation, Outcome, Presence, Publish, Subscribe, TransId,
};

use crate::frame::*;
use crate::FrameError;

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

    /// One frame from the client, or the framing error that replaced it. Framing errors
    /// that leave the stream in sync (oversize, bad JSON) are answered and the session
    /// goes on; `FrameError::Protocol`/`Handshake` close it.
    /// A `hello` is checked against `tokens`.
    pub fn handle_frame(
        &mut self,
        frame: Result<&[u8], FrameError>,
        tokens: &dyn TokenCheck,
        now: Instant,
    ) {
        if matches!(self.state, State::Closing) {
            return;
        }
        let bytes = match frame {
            Ok(b) => b,
            Err(e @ FrameError::TooLarge { .. }) => {
                if self.admit(None, now) {
                    self.events.push_back(err(None, 413, e.to_string()));
                }
                return;
            }
            Err(e) => return self.fatal(None, 400, e.to_string()),
        };
        let frame: Frame = match serde_json::from_slice(bytes) {
            Ok(f) => f,
            Err(_) if !self.admit(None, now) => return,
            Err(e) => {
                let what = if e.is_eof() {
                    "truncated JSON"
                } else if e.is_syntax() {
                    "malformed JSON"
                } else {
                    "invalid frame"
                };
                let id = sniff_id(bytes);
                self.events
                    .push_back(err(id.as_deref(), 400, format!("{what}: {e}")));
                return;
            }
        };
        if !matches!(frame, Frame::Outcome(_) | Frame::Pong(_)) && !self.admit(op_id(&frame), now) {
            return;
        }
        match (&self.state, frame) {
            (_, Frame::Ping(p)) => self.events.push_back(Event::Send(Frame::Pong(p))),
            (_, Frame::Pong(_)) => {}
            (State::AwaitHello { .. }, Frame::Hello(h)) => self.handle_hello(h, tokens),
            (State::AwaitHello { .. }, other) => self.events.push_back(err(
                op_id(&other),
                401,
                format!("send hello first (got {})", other.type_name()),
            )),
            (State::Open { .. }, Frame::Hello(_)) => {
                self.events.push_back(err(None, 400, "already logged in"))
            }
            (State::Open { .. }, Frame::Outcome(o)) => self.handle_client_outcome(o),
            (State::Open { .. }, f @ (Frame::Welcome(_) | Frame::Error(_))) => {
                self.events.push_back(err(
                    None,
                    400,
                    format!("{} is a server frame", f.type_name()),
                ))
            }
            (State::Open { .. }, op) => self.handle_operation(op),
            (State::Closing, _) => {}
        }
    }

    fn handle_hello(&mut self, h: Hello, tokens: &dyn TokenCheck) {
        if h.version != VERSION {
            // The client may try again with a version we speak.
            self.events.push_back(err(
                None,
                505,
                format!(
                    "version {} not supported; this server speaks {VERSION}",
                    h.version
                ),
            ));
            return;
        }
        match tokens.addresses(&h.token) {
            Some(addresses) if !addresses.is_empty() => {
                self.events.push_back(Event::Send(Frame::Welcome(Welcome {
                    version: VERSION,
                    session: format!("s{}", self.id),
                    addresses: addresses.iter().map(ToString::to_string).collect(),
                })));
                self.events.push_back(Event::LoggedIn(addresses.clone()));
                self.state = State::Open { addresses };
            }
            _ => self.fatal(None, 403, "unknown token"),
        }
    }

    /// Token bucket over every frame a logged-in client sends except `outcome` and
    /// `pong` (answers to the server). A refused frame still costs a token, so a client
    /// that keeps sending while refused runs into debt; at a debt of one burst the
    /// session is closed (the error frames themselves would otherwise be a flood).
    fn take_token(&mut self, now: Instant) -> Result<(), ()> {
        let elapsed = now.saturating_duration_since(self.refilled).as_secs_f64();
        self.refilled = now;
        let burst = f64::from(self.limits.rate_burst);
        self.tokens = (self.tokens + elapsed * self.limits.rate_per_sec).min(burst);
        self.tokens -= 1.0;
        if self.tokens >= 0.0 {
            Ok(())
        } else {
            Err(())
        }
    }

    /// Applies the rate limit; false if the frame must not be processed.
    fn admit(&mut self, id: Option<&str>, now: Instant) -> bool {
        if !matches!(self.state, State::Open { .. }) || self.take_token(now).is_ok() {
            return true;
        }
        if self.tokens < -f64::from(self.limits.rate_burst) {
            self.fatal(id, 429, "rate limit exceeded repeatedly; closing");
        } else {
            self.events
                .push_back(err(id, 429, "rate limit exceeded; slow down"));
        }
        false
    }

    /// The sender address a frame may use: `from` if it is bound to the session, else
    /// the first bound address.
    fn sender(&self, from: Option<&str>) -> Result<Address, (u16, String)> {
        let State::Open { addresses } = &self.state else {
            return Err((401, "not logged in".into()));
        };
        match from {
            None => Ok(addresses[0].clone()),
            Some(f) => {
                let a = Address::parse(f).map_err(|e| (400, format!("bad from {f:?}: {e}")))?;
                if addresses.iter().any(|b| b.same_user(&a)) {
                    Ok(a)
                } else {
                    Err((403, format!("{f} is not an address of this session")))
                }
            }
        }
    }

    fn handle_operation(&mut self, frame: Frame) {
        let id = op_id(&frame).map(str::to_owned);
        match self.operation_of(frame) {
            Ok(op) => {
                if let Some(id) = id {
                    self.submitted.insert(op.trans_id(), id);
                }
                self.events.push_back(Event::Submit(op));
            }
            Err((code, reason)) => self.events.push_back(err(id.as_deref(), code, reason)),
        }
    }

    fn operation_of(&mut self, frame: Frame) -> Result<Operation, (u16, String)> {
        let parse = |what: &str, s: &str| {
            Address::parse(s).map_err(|e| (400, format!("bad {what} {s:?}: {e}")))
        };
        Ok(match frame {
            Frame::Message(m) => {
                let source = self.sender(m.from.as_deref())?;
                let destination = parse("to", &m.to)?;
                let body = match m.encoding {
                    BodyEncoding::Utf8 => m.body.into_bytes(),
                    BodyEncoding::Base64 => base64::engine::general_purpose::STANDARD
                        .decode(m.body.as_bytes())
                        .map_err(|e| (400, format!("body is not valid base64: {e}")))?,
                };
                let mut msg =
                    Message::new(self.trans_id(), source, destination, m.content_type, body);
                msg.message_id = m.headers.message_id;
                msg.subject = m.headers.subject;
                msg.thread = m.headers.thread;
                msg.language = m.headers.language;
                msg.kind = match m.headers.kind {
                    None | Some(Kind::Chat) => MessageKind::Chat,
                    Some(Kind::Normal) => MessageKind::Normal,
                    Some(Kind::Headline) => MessageKind::Headline,
                    Some(Kind::Groupchat) => MessageKind::Groupchat,
                };
                msg.disposition = DispositionRequest {
                    delivery: m.headers.disposition.contains(&Disposition::Delivery),
                    display: m.headers.disposition.contains(&Disposition::Display),
                };
                Operation::Message(msg)
            }
            Frame::Publish(p) => {
                let presentity = self.sender(p.from.as_deref())?;
                let presence =
                    presence_from_parts(Some(&presentity), p.basic, p.note, &p.activities);
                Operation::Publish(Publish {
                    trans_id: self.trans_id(),
                    presentity,
                    presence,
                    expires: p.expires,
                })
            }
            Frame::Subscribe(s) => Operation::Subscribe(Subscribe {
                watcher: self.sender(s.from.as_deref())?,
                target: parse("to", &s.to)?,
                duration: s.expires,
                trans_id: self.trans_id(),
            }),
            Frame::Unsubscribe(s) => Operation::Unsubscribe(Subscribe {
                watcher: self.sender(s.from.as_deref())?,
                target: parse("to", &s.to)?,
                duration: 0,
                trans_id: self.trans_id(),
            }),
            Frame::Notify(n) => {
                let target = self.sender(n.from.as_deref())?;
                let presence = n
                    .presence
                    .map(|p| presence_from_parts(Some(&target), p.basic, p.note, &p.activities));
                Operation::Notify(Notify {
                    trans_id: self.trans_id(),
                    watcher: parse("to", &n.to)?,
                    state: state_from_frame(n.state, n.expires, n.reason),
                    target,
                    presence,
                })
            }
            other => return Err((400, format!("unexpected {} frame", other.type_name()))),
        })
    }

    fn handle_client_outcome(&mut self, o: OutcomeFrame) {
        match self.delivered.remove(&o.id) {
            Some(p) => {
                let outcome = Outcome::failure(p.trans_id, o.code, o.reason);
                let outcome = if (100..700).contains(&o.code) {
                    outcome
                } else {
                    Outcome::failure(
                        p.trans_id,
                        500,
                        format!("client sent invalid code {}", o.code),
                    )
                };
                self.events.push_back(Event::Delivered(p.token, outcome));
            }
            None => self.events.push_back(err(
                Some(&o.id),
                481,
                "no operation with this id is waiting for an outcome",
            )),
        }
    }

    /// The core answered the operation with this outcome's TransId.
    pub fn handle_submit_outcome(&mut self, outcome: Outcome) {
        if matches!(self.state, State::Closing) {
            return;
        }
        if let Some(id) = self.submitted.remove(&outcome.trans_id) {
            self.events
                .push_back(Event::Send(Frame::Outcome(OutcomeFrame {
                    id,
                    code: outcome.status.code,
                    reason: outcome.status.reason,
                })));
        }
    }

    /// Sends `op` to the client; `token` names the delivery in the [`Event::Delivered`]
    /// that resolves it (the client's `outcome`, or 408 after the timeout).
    pub fn deliver(&mut self, op: Operation, token: u64, now: Instant) {
        let trans_id = op.trans_id();
        if !self.is_open() {
            self.events.push_back(Event::Delivered(
                token,
                Outcome::failure(trans_id, 480, "client session not open"),
            ));
            return;
        }
        self.next_sid += 1;
        let id = format!("s{}", self.next_sid);
        let frame = match op {
            Operation::Message(m) => {
                let (body, encoding) = match String::from_utf8(m.body) {
                    Ok(s) => (s, BodyEncoding::Utf8),
                    Err(e) => (
                        base64::engine::general_purpose::STANDARD.encode(e.as_bytes()),
                        BodyEncoding::Base64,
                    ),
                };
                let mut disposition = Vec::new();
                if m.disposition.delivery {
                    disposition.push(Disposition::Delivery);
                }
                if m.disposition.display {
                    disposition.push(Disposition::Display);
                }
                Frame::Message(MessageFrame {
                    id: id.clone(),
                    from: Some(m.source.to_string()),
                    to: m.destination.to_string(),
                    content_type: m.content_type,
                    body,
                    encoding,
                    headers: Headers {
                        subject: m.subject,
                        thread: m.thread,
                        message_id: m.message_id,
                        language: m.language,
                        kind: Some(match m.kind {
                            MessageKind::Chat => Kind::Chat,
                            MessageKind::Normal => Kind::Normal,
                            MessageKind::Headline => Kind::Headline,
                            MessageKind::Groupchat => Kind::Groupchat,
                        }),
                        disposition,
                    },
                })
            }
            Operation::Subscribe(s) => Frame::Subscribe(SubscribeFrame {
                id: id.clone(),
                from: Some(s.watcher.to_string()),
                to: s.target.to_string(),
                expires: s.duration,
            }),
            Operation::Unsubscribe(s) => Frame::Unsubscribe(UnsubscribeFrame {
                id: id.clone(),
                from: Some(s.watcher.to_string()),
                to: s.target.to_string(),
            }),
            Operation::Notify(n) => {
                let (state, expires, reason) = state_to_frame(&n.state);
                Frame::Notify(NotifyFrame {
                    id: id.clone(),
                    from: Some(n.target.to_string()),
                    to: n.watcher.to_string(),
                    state,
                    expires,
                    reason,
                    presence: n.presence.as_ref().map(presence_to_object),
                })
            }
            other => {
                self.events.push_back(Event::Delivered(
                    token,
                    Outcome::failure(
                        trans_id,
                        488,
                        format!("{} is not delivered to clients", other.kind()),
                    ),
                ));
                return;
            }
        };
        self.delivered.insert(
            id,
            Pending {
                token,
                trans_id,
                deadline: now + self.limits.deliver_timeout,
            },
        );
        self.events.push_back(Event::Send(frame));
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
                    Outcome::failure(p.trans_id, 408, "client did not answer in time"),
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
                Outcome::failure(p.trans_id, 480, "client disconnected"),
            ));
        }
        self.state = State::Closing;
    }
}

fn op_id(f: &Frame) -> Option<&str> {
    match f {
        Frame::Message(m) => Some(&m.id),
        Frame::Publish(p) => Some(&p.id),
        Frame::Subscribe(s) => Some(&s.id),
        Frame::Unsubscribe(s) => Some(&s.id),
        Frame::Notify(n) => Some(&n.id),
        Frame::Outcome(o) => Some(&o.id),
        _ => None,
    }
}

fn activity_from_name(name: &str) -> Activity {
    Activity::from_name(name).unwrap_or_else(|| Activity::Other(name.to_owned()))
}

/// Builds the model's presence from the protocol's simplified one.
pub fn presence_from_parts(
    entity: Option<&Address>,
    basic: Option<BasicFrame>,
    note: Option<String>,
    activities: &[String],
) -> Presence {
    let mut p = Presence {
        entity: entity.map(|a| a.with_scheme(cpim_core::Scheme::Pres)),
        ..Presence::default()
    };
    if basic.is_some() || note.is_some() {
        p.tuples.push(Tuple {
            id: "json".into(),
            basic: basic.map(|b| match b {
                BasicFrame::Open => Basic::Open,
                BasicFrame::Closed => Basic::Closed,
            }),
            ..Tuple::default()
        });
    }
    if let Some(n) = note {
        p.notes.push(Note::new(n));
    }
    if !activities.is_empty() {
        p.person = Some(Person {
            id: "p".into(),
            activities: activities.iter().map(|a| activity_from_name(a)).collect(),
            ..Person::default()
        });
    }
    p
}

/// The protocol's simplified view of a presence.
pub fn presence_to_object(p: &Presence) -> PresenceObject {
    let basic = if p.is_available() {
        Some(BasicFrame::Open)
    } else if p.tuples.iter().any(|t| t.basic == Some(Basic::Closed)) {
        Some(BasicFrame::Closed)
    } else {
        None
    };
    let note = p
        .notes
        .first()
        .or_else(|| p.person.as_ref().and_then(|x| x.notes.first()))
        .or_else(|| p.tuples.iter().find_map(|t| t.notes.first()))
        .map(|n| n.text.clone());
    let activities = p
        .person
        .iter()
        .flat_map(|x| &x.activities)
        .map(|a| match a {
            Activity::Other(t) => t.clone(),
            a => a.name().to_owned(),
        })
        .collect();
    PresenceObject {
        basic,
        note,
        activities,
    }
}

fn state_from_frame(
    s: StateFrame,
    expires: Option<u32>,
    reason: Option<String>,
) -> SubscriptionState {
    match s {
        StateFrame::Pending => SubscriptionState::Pending,
        StateFrame::Active => SubscriptionState::Active {
            expires: expires.unwrap_or(3600),
        },
        StateFrame::Terminated => SubscriptionState::Terminated(match reason.as_deref() {
            None | Some("deactivated") => TerminationReason::Deactivated,
            Some("probation") => TerminationReason::Probation,
            Some("rejected") => TerminationReason::Rejected,
            Some("timeout") => TerminationReason::Timeout,
            Some("giveup") => TerminationReason::Giveup,
            Some("noresource") => TerminationReason::NoResource,
            Some("invariant") => TerminationReason::Invariant,
            Some(other) => TerminationReason::Other(other.to_owned()),
        }),
    }
}

fn state_to_frame(s: &SubscriptionState) -> (StateFrame, Option<u32>, Option<String>) {
    match s {
        SubscriptionState::Pending => (StateFrame::Pending, None, None),
        SubscriptionState::Active { expires } => (StateFrame::Active, Some(*expires), None),
        SubscriptionState::Terminated(r) => {
            let r = match r {
                TerminationReason::Deactivated => "deactivated",
                TerminationReason::Probation => "probation",
                TerminationReason::Rejected => "rejected",
                TerminationReason::Timeout => "timeout",
                TerminationReason::Giveup => "giveup",
                TerminationReason::NoResource => "noresource",
                TerminationReason::Invariant => "invariant",
                TerminationReason::Other(o) => o.as_str(),
            };
            (StateFrame::Terminated, None, Some(r.to_owned()))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> SessionLimits {
        SessionLimits {
            rate_per_sec: 1.0,
            rate_burst: 100,
            deliver_timeout: Duration::from_secs(5),
            hello_timeout: Duration::from_secs(5),
        }
    }

    fn tokens() -> HashMap<String, Vec<Address>> {
        let mut t = HashMap::new();
        t.insert(
            "secret".to_owned(),
            vec![Address::parse("im:alice@corp.example").unwrap()],
        );
        t
    }

    fn drain(s: &mut Session) -> Vec<Event> {
        std::iter::from_fn(|| s.poll_event()).collect()
    }

    fn error_code(e: &Event) -> Option<(u16, bool)> {
        match e {
            Event::Send(Frame::Error(f)) => Some((f.code, f.fatal)),
            _ => None,
        }
    }

    fn open() -> (Session, Instant) {
        open_with(limits())
    }

    fn open_with(limits: SessionLimits) -> (Session, Instant) {
        let now = Instant::now();
        let mut s = Session::new(7, limits, now);
        s.handle_frame(
            Ok(br#"{"type":"hello","version":1,"token":"secret"}"#),
            &tokens(),
            now,
        );
        let ev = drain(&mut s);
        assert!(
            matches!(&ev[0], Event::Send(Frame::Welcome(w)) if w.addresses == ["im:alice@corp.example"])
        );
        assert!(matches!(&ev[1], Event::LoggedIn(a) if a.len() == 1));
        (s, now)
    }

    #[test]
    fn hello_is_required_and_checked() {
        let now = Instant::now();
        let mut s = Session::new(1, limits(), now);
        s.handle_frame(
            Ok(br#"{"type":"message","id":"1","to":"im:b@x","body":"hi"}"#),
            &tokens(),
            now,
        );
        assert_eq!(error_code(&drain(&mut s)[0]), Some((401, false)));
        s.handle_frame(
            Ok(br#"{"type":"hello","version":9,"token":"secret"}"#),
            &tokens(),
            now,
        );
        assert_eq!(error_code(&drain(&mut s)[0]), Some((505, false)));
        s.handle_frame(
            Ok(br#"{"type":"hello","version":1,"token":"nope"}"#),
            &tokens(),
            now,
        );
        let ev = drain(&mut s);
        assert_eq!(error_code(&ev[0]), Some((403, true)));
        assert!(matches!(ev[1], Event::Close));
    }

    #[test]
    fn malformed_truncated_unknown_field_and_oversize_frames_are_answered_and_survived() {
        let (mut s, now) = open();
        let t = tokens();
        let cases: [(&[u8], &str); 5] = [
            (b"{not json", "malformed"),
            (
                br#"{"type":"message","id":"7","to":"im:b@x","bo"#,
                "truncated",
            ),
            (
                br#"{"type":"message","id":"8","to":"im:b@x","body":"x","colour":"red"}"#,
                "colour",
            ),
            (br#"{"type":"launch","id":"9"}"#, "launch"),
            (br#"[1,2,3]"#, "invalid"),
        ];
        for (bytes, word) in cases {
            s.handle_frame(Ok(bytes), &t, now);
            let ev = drain(&mut s);
            match &ev[..] {
                [Event::Send(Frame::Error(e))] => {
                    assert_eq!(e.code, 400);
                    assert!(!e.fatal);
                    assert!(e.reason.contains(word), "{:?} lacks {word}", e.reason);
                }
                other => panic!("{other:?}"),
            }
        }
        // the unknown-field error names the frame id
        s.handle_frame(
            Ok(br#"{"type":"message","id":"8","to":"im:b@x","body":"x","colour":"red"}"#),
            &t,
            now,
        );
        assert!(
            matches!(&drain(&mut s)[0], Event::Send(Frame::Error(e)) if e.id.as_deref() == Some("8"))
        );
        s.handle_frame(Err(FrameError::TooLarge { limit: 10 }), &t, now);
        assert_eq!(error_code(&drain(&mut s)[0]), Some((413, false)));
        // still usable
        s.handle_frame(
            Ok(br#"{"type":"message","id":"m1","to":"sip:bob@sip.example","body":"hi"}"#),
            &t,
            now,
        );
        assert!(matches!(
            &drain(&mut s)[0],
            Event::Submit(Operation::Message(_))
        ));
    }

    #[test]
    fn message_maps_to_operation_and_outcome_comes_back_with_the_id() {
        let (mut s, now) = open();
        let f = br#"{"type":"message","id":"m1","to":"sip:bob@sip.example","content_type":"message/cpim","body":"AAEC","encoding":"base64","headers":{"subject":"s","thread":"t","message_id":"x1","kind":"normal","disposition":["delivery"]}}"#;
        s.handle_frame(Ok(f), &tokens(), now);
        let Some(Event::Submit(Operation::Message(m))) = s.poll_event() else {
            panic!()
        };
        assert_eq!(m.source.to_string(), "im:alice@corp.example");
        assert_eq!(m.destination.to_string(), "sip:bob@sip.example");
        assert_eq!(m.body, vec![0, 1, 2]);
        assert_eq!(m.content_type, "message/cpim");
        assert_eq!(
            (
                m.subject.as_deref(),
                m.thread.as_deref(),
                m.message_id.as_deref()
            ),
            (Some("s"), Some("t"), Some("x1"))
        );
        assert_eq!(m.kind, MessageKind::Normal);
        assert!(m.disposition.delivery && !m.disposition.display);
        s.handle_submit_outcome(Outcome::failure(m.trans_id, 404, "Not Found"));
        assert!(
            matches!(s.poll_event(), Some(Event::Send(Frame::Outcome(o))) if o.id == "m1" && o.code == 404)
        );
    }

    #[test]
    fn forged_sender_is_refused() {
        let (mut s, now) = open();
        s.handle_frame(Ok(br#"{"type":"message","id":"m","from":"im:mallory@corp.example","to":"im:b@x","body":"hi"}"#), &tokens(), now);
        assert!(
            matches!(&drain(&mut s)[..], [Event::Send(Frame::Error(e))] if e.code == 403 && e.id.as_deref() == Some("m"))
        );
    }

    #[test]
    fn rate_limit_refuses_excess_then_recovers() {
        let (mut s, now) = open_with(SessionLimits {
            rate_burst: 3,
            ..limits()
        });
        let f = br#"{"type":"publish","id":"p","basic":"open"}"#;
        for _ in 0..3 {
            s.handle_frame(Ok(f), &tokens(), now);
            assert!(matches!(
                &drain(&mut s)[..],
                [Event::Submit(Operation::Publish(_))]
            ));
        }
        s.handle_frame(Ok(f), &tokens(), now);
        assert_eq!(error_code(&drain(&mut s)[0]), Some((429, false)));
        // the refused frame cost a token: 2 s refill one token and pay the debt
        s.handle_frame(Ok(f), &tokens(), now + Duration::from_secs(3));
        assert!(matches!(
            &drain(&mut s)[..],
            [Event::Submit(Operation::Publish(_))]
        ));
        // malformed frames count too, and a client that keeps going is closed
        let later = now + Duration::from_secs(3);
        let mut codes = Vec::new();
        for _ in 0..10 {
            s.handle_frame(Ok(b"{bad"), &tokens(), later);
            codes.extend(drain(&mut s).iter().filter_map(error_code));
        }
        // one token left (400 for the bad JSON), then refusals into debt, then closed
        assert_eq!(
            codes,
            vec![
                (400, false),
                (429, false),
                (429, false),
                (429, false),
                (429, true)
            ]
        );
    }

    #[test]
    fn delivery_waits_for_the_client_outcome_or_times_out() {
        let (mut s, now) = open();
        let a = Address::parse("sip:bob@sip.example").unwrap();
        let b = Address::parse("im:alice@corp.example").unwrap();
        let m = Message::new(
            TransId(5),
            a.clone(),
            b.clone(),
            "text/plain",
            vec![0xff, 0x00],
        );
        s.deliver(Operation::Message(m.clone()), 1, now);
        let Some(Event::Send(Frame::Message(f))) = s.poll_event() else {
            panic!()
        };
        assert_eq!(f.encoding, BodyEncoding::Base64);
        assert_eq!(f.body, "/wA=");
        s.handle_frame(
            Ok(format!(
                r#"{{"type":"outcome","id":"{}","code":200,"reason":"OK"}}"#,
                f.id
            )
            .as_bytes()),
            &tokens(),
            now,
        );
        assert!(
            matches!(s.poll_event(), Some(Event::Delivered(1, o)) if o.status.code == 200 && o.trans_id == TransId(5))
        );
        s.deliver(Operation::Message(m), 2, now);
        drain(&mut s);
        assert_eq!(s.poll_timeout(), Some(now + Duration::from_secs(5)));
        s.handle_timeout(now + Duration::from_secs(6));
        assert!(matches!(s.poll_event(), Some(Event::Delivered(2, o)) if o.status.code == 408));
        s.handle_frame(
            Ok(br#"{"type":"outcome","id":"s9","code":200}"#),
            &tokens(),
            now,
        );
        assert_eq!(error_code(&drain(&mut s)[0]), Some((481, false)));
    }

    #[test]
    fn presence_round_trip_through_the_model() {
        let acts = vec!["away".to_owned(), "knitting".to_owned()];
        let p = presence_from_parts(
            None,
            Some(BasicFrame::Open),
            Some("back soon".into()),
            &acts,
        );
        let o = presence_to_object(&p);
        assert_eq!(o.basic, Some(BasicFrame::Open));
        assert_eq!(o.note.as_deref(), Some("back soon"));
        assert_eq!(o.activities, acts);
    }

    proptest::proptest! {
        #[test]
        fn message_frames_round_trip_through_json_and_the_model(
            body in proptest::collection::vec(proptest::num::u8::ANY, 0..64),
            subject in proptest::option::of("\\PC{0,20}"),
        ) {
            let (mut s, now) = open();
            let a = Address::parse("sip:bob@sip.example").unwrap();
            let b = Address::parse("im:alice@corp.example").unwrap();
            let mut m = Message::new(TransId(1), a, b, "message/cpim", body.clone());
            m.subject = subject.clone();
            s.deliver(Operation::Message(m.clone()), 1, now);
            let Some(Event::Send(f)) = s.poll_event() else { panic!() };
            let wire = serde_json::to_vec(&f).unwrap();
            let Frame::Message(back) = serde_json::from_slice::<Frame>(&wire).unwrap() else { panic!() };
            let decoded = match back.encoding {
                BodyEncoding::Utf8 => back.body.into_bytes(),
                BodyEncoding::Base64 => base64::engine::general_purpose::STANDARD.decode(back.body).unwrap(),
            };
            proptest::prop_assert_eq!(decoded, body);
            proptest::prop_assert_eq!(back.headers.subject, subject);
        }
    }
}
