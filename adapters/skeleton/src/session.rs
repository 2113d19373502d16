//! One client connection's state machine. Sans-IO: bytes in through [`Session::handle_bytes`],
//! time through the `now` parameters, output through `poll_transmit`/`poll_event`/
//! `poll_timeout`. No tokio here; `server.rs` drives it.
//!
//! `AwaitLogin` -> `Open` -> `Closed`. Requests from the client become [`Event::Submit`];
//! the driver submits them to the core and hands the outcome back through
//! [`Session::handle_outcome`], which writes `OK`/`ERR`. Operations for the client
//! ([`Session::deliver`]) are written with ids `s1, s2, ...` and end as
//! [`Event::Delivered`] when the client answers, or with 408 when it does not in time.

use cpim_core::StatusCode;
use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use cpim_core::model::{Message, Operation, Outcome, Publish, TransId};
use cpim_core::presence::{Activity, Basic, Note, Person, Presence, Tuple};
use cpim_core::Address;

use crate::codec::{CodecError, Frame, LineDecoder, PresState};

/// The session's settings (taken from `SkelConfig`).
#[derive(Clone, Debug)]
pub struct SessionConfig {
    /// The domain SKEL users live in: `alice` is `im:alice@<domain>`.
    pub domain: String,
    /// user -> secret.
    pub accounts: HashMap<String, String>,
    /// Longest accepted line.
    pub max_line_bytes: usize,
    /// Silence before the gateway sends PING.
    pub keepalive: Duration,
    /// Further silence after that PING before the connection is closed.
    pub keepalive_timeout: Duration,
    /// How long a delivered operation waits for the client's OK/ERR.
    pub deliver_timeout: Duration,
    /// `expires` of a published state.
    pub publish_expires_secs: u32,
}

/// What the driver must do.
// Events are moved out at once, never stored in bulk: boxing `Submit` would only add an
// allocation per operation.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, PartialEq)]
pub enum Event {
    /// The client logged in as this user; register it for deliveries.
    LoggedIn(String),
    /// Submit `op` to the core; give the outcome back with [`Session::handle_outcome`].
    Submit(Operation),
    /// The delivery `key` (from [`Session::deliver`]) ended with this outcome.
    Delivered(u64, Outcome),
    /// The session is over; close the socket.
    Closed(String),
}

#[derive(Debug, PartialEq)]
enum State {
    AwaitLogin,
    Open { user: String },
    Closed,
}

/// One client's session.
#[derive(Debug)]
pub struct Session {
    cfg: SessionConfig,
    state: State,
    decoder: LineDecoder,
    out: String,
    events: VecDeque<Event>,
    /// TransIds of this session are `(conn_id << 32) | counter`: unique in the adapter.
    conn_id: u64,
    counter: u32,
    /// Submitted operations: TransId -> the client's request id.
    submitted: HashMap<TransId, String>,
    /// Deliveries waiting for the client: our id -> (delivery key, TransId, deadline).
    pending: HashMap<String, (u64, TransId, Instant)>,
    next_out_id: u64,
    last_rx: Instant,
    ping_sent: bool,
}

impl Session {
    /// A new session on connection `conn_id`, opened at `now`.
    pub fn new(cfg: SessionConfig, conn_id: u64, now: Instant) -> Session {
        Session {
            decoder: LineDecoder::new(cfg.max_line_bytes),
            cfg,
            state: State::AwaitLogin,
            out: String::new(),
            events: VecDeque::new(),
            conn_id,
            counter: 0,
            submitted: HashMap::new(),
            pending: HashMap::new(),
            next_out_id: 1,
            last_rx: now,
            ping_sent: false,
        }
    }

    /// The logged-in user, if any.
    pub fn user(&self) -> Option<&str> {
        match &self.state {
            State::Open { user } => Some(user),
            _ => None,
        }
    }

    /// True once the session has ended.
    pub fn is_closed(&self) -> bool {
        self.state == State::Closed
    }

    fn send(&mut self, f: &Frame) {
        if !self.is_closed() {
            f.encode(&mut self.out);
        }
    }

    fn err(&mut self, id: Option<&str>, code: u16, reason: &str) {
        let f = Frame::Err {
            id: id.unwrap_or("-").to_owned(),
            code,
            reason: reason.to_owned(),
        };
        self.send(&f);
    }

    fn next_trans_id(&mut self) -> TransId {
        self.counter = self.counter.wrapping_add(1);
        TransId((self.conn_id << 32) | u64::from(self.counter))
    }

    fn local(&self, user: &str) -> Address {
        Address::new(cpim_core::address::Scheme::Im, Some(user), &self.cfg.domain)
    }

    /// Bytes from the client.
    pub fn handle_bytes(&mut self, data: &[u8], now: Instant) {
        if self.is_closed() {
            return;
        }
        self.last_rx = now;
        self.ping_sent = false;
        let mut frames = Vec::new();
        let mut decoder = std::mem::replace(&mut self.decoder, LineDecoder::new(0));
        decoder.feed(data, |r| frames.push(r));
        self.decoder = decoder;
        for r in frames {
            match r {
                Ok(f) => self.handle_frame(f),
                Err(CodecError::Oversize { .. }) => self.err(
                    None,
                    413,
                    &format!("line longer than {} bytes", self.cfg.max_line_bytes),
                ),
                Err(CodecError::Parse(e)) => self.err(e.id.as_deref(), 400, &e.reason),
                Err(e) => self.err(None, 400, &e.to_string()),
            }
        }
    }

    fn handle_frame(&mut self, f: Frame) {
        let user = match (&self.state, f) {
            (State::Closed, _) => return,
            (_, Frame::Ping { token }) => return self.send(&Frame::Pong { token }),
            (_, Frame::Pong { .. }) => return, // liveness already noted
            (State::AwaitLogin, Frame::Login { id, user, secret }) => {
                // ADAPT: authenticate against your system (the gateway's routing layer
                // also refuses any source outside this adapter's domain).
                if self.cfg.accounts.get(&user) == Some(&secret) {
                    self.state = State::Open { user: user.clone() };
                    self.events.push_back(Event::LoggedIn(user));
                    self.send(&Frame::Ok { id });
                } else {
                    self.err(Some(&id), 403, "unknown user or wrong secret");
                }
                return;
            }
            (State::Open { .. }, Frame::Login { id, .. }) => {
                return self.err(Some(&id), 400, "already logged in")
            }
            (
                State::AwaitLogin,
                Frame::Msg { id, .. }
                | Frame::Pres { id, .. }
                | Frame::Ok { id }
                | Frame::Err { id, .. }
                | Frame::Notify { id, .. },
            ) => {
                return self.err(Some(&id), 403, "LOGIN first");
            }
            (State::Open { user }, f) => (user.clone(), f),
        };
        let (user, f) = user;
        // ADAPT: the native operation -> CPIM operation mapping.
        match f {
            Frame::Msg { id, peer, body } => {
                // `scheme:user@domain` as written, a bare `user@domain` as `im:`, a bare
                // `user` as a SKEL user.
                let destination = if peer.contains(':') {
                    Address::parse(&peer)
                } else if peer.contains('@') {
                    Address::parse(&format!("im:{peer}"))
                } else {
                    Ok(self.local(&peer))
                };
                match destination {
                    Ok(to) => {
                        let tid = self.next_trans_id();
                        let m = Message::new(
                            tid,
                            self.local(&user),
                            to,
                            "text/plain;charset=UTF-8",
                            body,
                        );
                        self.submitted.insert(tid, id);
                        self.events.push_back(Event::Submit(Operation::Message(m)));
                    }
                    Err(e) => self.err(Some(&id), 400, &format!("bad address: {e}")),
                }
            }
            Frame::Pres { id, state, note } => {
                let tid = self.next_trans_id();
                let presentity = self.local(&user);
                let presence = to_presence(state, note, Some(presentity.clone()));
                self.submitted.insert(tid, id);
                let p = Publish {
                    trans_id: tid,
                    presentity,
                    presence,
                    expires: self.cfg.publish_expires_secs,
                };
                self.events.push_back(Event::Submit(Operation::Publish(p)));
            }
            Frame::Ok { id } => self.answer(&id, None),
            Frame::Err { id, code, reason } => self.answer(&id, Some((code, reason))),
            Frame::Notify { id, .. } => {
                self.err(Some(&id), 405, "NOTIFY is sent by the gateway only")
            }
            Frame::Login { .. } | Frame::Ping { .. } | Frame::Pong { .. } => {}
        }
    }

    fn answer(&mut self, id: &str, err: Option<(u16, String)>) {
        // An answer to nothing gets no answer (no loops between two gateways).
        if let Some((key, tid, _)) = self.pending.remove(id) {
            let o = match err {
                None => Outcome::ok(tid),
                Some((code, reason)) => Outcome::failure(tid, code, reason),
            };
            self.events.push_back(Event::Delivered(key, o));
        }
    }

    /// The core's outcome for an operation this session submitted.
    pub fn handle_outcome(&mut self, outcome: &Outcome) {
        if let Some(id) = self.submitted.remove(&outcome.trans_id) {
            if outcome.status.is_success() {
                self.send(&Frame::Ok { id });
            } else {
                self.err(
                    Some(&id),
                    outcome.status.code.as_u16(),
                    &outcome.status.reason,
                );
            }
        }
    }

    /// Writes `op` to the client; its outcome comes as [`Event::Delivered`] with `key`.
    pub fn deliver(&mut self, key: u64, op: &Operation, now: Instant) {
        let tid = op.trans_id();
        if self.user().is_none() {
            return self.events.push_back(Event::Delivered(
                key,
                Outcome::failure(
                    tid,
                    StatusCode::TEMPORARILY_UNAVAILABLE,
                    "user not logged in",
                ),
            ));
        }
        let id = format!("s{}", self.next_out_id);
        // ADAPT: the CPIM operation -> native operation mapping; refuse what you cannot carry.
        let frame = match op {
            Operation::Message(m) if m.mime_type() == "text/plain" => {
                match std::str::from_utf8(&m.body) {
                    Ok(body) => Frame::Msg {
                        id: id.clone(),
                        peer: m.source.to_string(),
                        body: body.to_owned(),
                    },
                    Err(_) => {
                        return self.events.push_back(Event::Delivered(
                            key,
                            Outcome::failure(
                                tid,
                                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                                "body is not UTF-8",
                            ),
                        ))
                    }
                }
            }
            Operation::Message(_) => {
                return self.events.push_back(Event::Delivered(
                    key,
                    Outcome::failure(
                        tid,
                        StatusCode::UNSUPPORTED_MEDIA_TYPE,
                        "SKEL carries text/plain only",
                    ),
                ))
            }
            Operation::Notify(n) => {
                let (state, note) = from_presence(n.presence.as_ref());
                Frame::Notify {
                    id: id.clone(),
                    from: n.target.to_string(),
                    state,
                    note,
                }
            }
            _ => {
                return self.events.push_back(Event::Delivered(
                    key,
                    Outcome::failure(
                        tid,
                        StatusCode::NOT_IMPLEMENTED,
                        format!("SKEL has no {}", op.kind()),
                    ),
                ))
            }
        };
        self.next_out_id += 1;
        self.send(&frame);
        self.pending
            .insert(id, (key, tid, now + self.cfg.deliver_timeout));
    }

    /// Timers: delivery deadlines and the keep-alive.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.is_closed() {
            return;
        }
        let expired: Vec<String> = self
            .pending
            .iter()
            .filter(|(_, p)| p.2 <= now)
            .map(|(id, _)| id.clone())
            .collect();
        for id in expired {
            if let Some((key, tid, _)) = self.pending.remove(&id) {
                self.events.push_back(Event::Delivered(
                    key,
                    Outcome::failure(
                        tid,
                        StatusCode::REQUEST_TIMEOUT,
                        "client did not answer in time",
                    ),
                ));
            }
        }
        if self.ping_sent && now >= self.last_rx + self.cfg.keepalive + self.cfg.keepalive_timeout {
            self.close("keep-alive timeout");
        } else if !self.ping_sent && now >= self.last_rx + self.cfg.keepalive {
            self.ping_sent = true;
            // ADAPT: your protocol's keep-alive (or none if the transport has one).
            self.send(&Frame::Ping { token: "k".into() });
        }
    }

    /// Ends the session (peer gone, shutdown, keep-alive): waiting deliveries get 408,
    /// since the client may or may not have seen them.
    pub fn close(&mut self, reason: &str) {
        if self.is_closed() {
            return;
        }
        for (_, (key, tid, _)) in self.pending.drain() {
            self.events.push_back(Event::Delivered(
                key,
                Outcome::failure(
                    tid,
                    StatusCode::REQUEST_TIMEOUT,
                    format!("connection closed before the client answered ({reason})"),
                ),
            ));
        }
        self.state = State::Closed;
        self.events.push_back(Event::Closed(reason.to_owned()));
    }

    /// Bytes to write, if any.
    pub fn poll_transmit(&mut self) -> Option<String> {
        (!self.out.is_empty()).then(|| std::mem::take(&mut self.out))
    }

    /// The next event, if any.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// When [`Session::handle_timeout`] must be called next.
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.is_closed() {
            return None;
        }
        let ka = self.last_rx
            + self.cfg.keepalive
            + if self.ping_sent {
                self.cfg.keepalive_timeout
            } else {
                Duration::ZERO
            };
        Some(self.pending.values().map(|p| p.2).fold(ka, Instant::min))
    }
}

/// SKEL state -> CPIM presence (RFC 3863 basic, RFC 4480 activities).
// ADAPT: your protocol's presence vocabulary.
pub fn to_presence(state: PresState, note: Option<String>, entity: Option<Address>) -> Presence {
    let basic = if state == PresState::Offline {
        Basic::Closed
    } else {
        Basic::Open
    };
    let activity = match state {
        PresState::Away => Some(Activity::Away),
        PresState::Busy => Some(Activity::Busy),
        _ => None,
    };
    Presence {
        entity,
        tuples: vec![Tuple {
            id: "skel".into(),
            basic: Some(basic),
            ..Tuple::default()
        }],
        person: activity.map(|a| Person {
            id: "p".into(),
            activities: vec![a],
            ..Person::default()
        }),
        notes: note.into_iter().map(Note::new).collect(),
        ..Presence::default()
    }
}

/// CPIM presence -> SKEL state: closed (or no presence) is offline; an away-like or
/// busy-like activity wins over plain open.
pub fn from_presence(p: Option<&Presence>) -> (PresState, Option<String>) {
    let Some(p) = p else {
        return (PresState::Offline, None);
    };
    let open = p.tuples.iter().any(|t| t.basic == Some(Basic::Open));
    let acts = p.person.iter().flat_map(|x| x.activities.iter());
    let mut state = if open {
        PresState::Online
    } else {
        PresState::Offline
    };
    if open {
        for a in acts {
            match a {
                Activity::Busy | Activity::OnThePhone | Activity::Meeting => {
                    state = PresState::Busy
                }
                Activity::Away | Activity::Vacation | Activity::Sleeping | Activity::Travel
                    if state == PresState::Online =>
                {
                    state = PresState::Away
                }
                _ => {}
            }
        }
    }
    let note = p
        .notes
        .first()
        .or_else(|| p.tuples.iter().flat_map(|t| t.notes.first()).next())
        .map(|n| n.text.clone());
    (state, note)
}

#[cfg(test)]
mod tests {
    use super::*;
    use cpim_core::model::{Notify, SubscriptionState};

    fn cfg() -> SessionConfig {
        SessionConfig {
            domain: "skel.test".into(),
            accounts: [("alice".to_owned(), "pw".to_owned())].into(),
            max_line_bytes: 64,
            keepalive: Duration::from_secs(30),
            keepalive_timeout: Duration::from_secs(10),
            deliver_timeout: Duration::from_secs(5),
            publish_expires_secs: 600,
        }
    }

    fn lines(s: &mut Session) -> Vec<String> {
        s.poll_transmit()
            .unwrap_or_default()
            .lines()
            .map(str::to_owned)
            .collect()
    }

    fn events(s: &mut Session) -> Vec<Event> {
        std::iter::from_fn(|| s.poll_event()).collect()
    }

    fn logged_in(t0: Instant) -> Session {
        let mut s = Session::new(cfg(), 7, t0);
        s.handle_bytes(b"LOGIN 1 alice pw\n", t0);
        assert_eq!(lines(&mut s), ["OK 1"]);
        assert_eq!(events(&mut s), [Event::LoggedIn("alice".into())]);
        s
    }

    #[test]
    fn login_is_required_and_checked() {
        let t0 = Instant::now();
        let mut s = Session::new(cfg(), 1, t0);
        s.handle_bytes(
            b"MSG 1 bob hi\nLOGIN 2 alice nope\nLOGIN 3 mallory pw\n",
            t0,
        );
        assert_eq!(
            lines(&mut s),
            [
                "ERR 1 403 LOGIN first",
                "ERR 2 403 unknown user or wrong secret",
                "ERR 3 403 unknown user or wrong secret"
            ]
        );
        assert!(events(&mut s).is_empty());
        s.handle_bytes(b"LOGIN 4 alice pw\nLOGIN 5 alice pw\n", t0);
        assert_eq!(lines(&mut s), ["OK 4", "ERR 5 400 already logged in"]);
    }

    #[test]
    fn msg_is_submitted_and_answered_by_the_outcome() {
        let t0 = Instant::now();
        let mut s = logged_in(t0);
        s.handle_bytes(b"MSG a bob@sip.test hello\nMSG b carol hi\n", t0);
        assert!(
            lines(&mut s).is_empty(),
            "no answer before the core's outcome"
        );
        let ev = events(&mut s);
        let [Event::Submit(Operation::Message(m1)), Event::Submit(Operation::Message(m2))] =
            &ev[..]
        else {
            panic!("{ev:?}")
        };
        assert_eq!(m1.source.to_string(), "im:alice@skel.test");
        assert_eq!(m1.destination.to_string(), "im:bob@sip.test");
        assert_eq!(m1.body, b"hello");
        assert_eq!(m2.destination.to_string(), "im:carol@skel.test");
        assert_eq!(m1.trans_id.0 >> 32, 7);
        s.handle_outcome(&Outcome::failure(
            m2.trans_id,
            StatusCode::NOT_FOUND,
            "no such user",
        ));
        s.handle_outcome(&Outcome::ok(m1.trans_id));
        assert_eq!(lines(&mut s), ["ERR b 404 no such user", "OK a"]);
        // A second outcome for the same TransId is ignored.
        s.handle_outcome(&Outcome::ok(m1.trans_id));
        assert!(lines(&mut s).is_empty());
    }

    #[test]
    fn pres_becomes_publish() {
        let t0 = Instant::now();
        let mut s = logged_in(t0);
        s.handle_bytes(b"PRES p busy in a call\n", t0);
        let ev = events(&mut s);
        let [Event::Submit(Operation::Publish(p))] = &ev[..] else {
            panic!("{ev:?}")
        };
        assert_eq!(p.presentity.to_string(), "im:alice@skel.test");
        assert_eq!(p.expires, 600);
        assert_eq!(
            from_presence(Some(&p.presence)),
            (PresState::Busy, Some("in a call".into()))
        );
        s.handle_outcome(&Outcome::ok(p.trans_id));
        assert_eq!(lines(&mut s), ["OK p"]);
    }

    #[test]
    fn malformed_and_oversize_lines_get_err_and_the_session_goes_on() {
        let t0 = Instant::now();
        let mut s = logged_in(t0);
        let mut input = b"BOGUS 9\nPRES 8 sleepy\nMSG 7 bad@ hi\n".to_vec();
        input.extend(std::iter::repeat_n(b'x', 200));
        input.extend_from_slice(b"\nPING z\n");
        s.handle_bytes(&input, t0);
        let out = lines(&mut s);
        assert_eq!(out.len(), 5, "{out:?}");
        assert!(out[0].starts_with("ERR 9 400 unknown command"), "{out:?}");
        assert!(out[1].starts_with("ERR 8 400 state must be"), "{out:?}");
        assert!(out[2].starts_with("ERR 7 400 bad address"), "{out:?}");
        assert_eq!(out[3], "ERR - 413 line longer than 64 bytes");
        assert_eq!(out[4], "PONG z");
        assert!(!s.is_closed());
    }

    #[test]
    fn deliver_resolves_on_answer_timeout_and_close() {
        let t0 = Instant::now();
        let a = Address::parse("sip:bob@sip.test").unwrap();
        let to = Address::parse("im:alice@skel.test").unwrap();
        let msg = |n| {
            Operation::Message(Message::new(
                TransId(n),
                a.clone(),
                to.clone(),
                "text/plain",
                "hi\nthere",
            ))
        };

        let mut fresh = Session::new(cfg(), 1, t0);
        fresh.deliver(1, &msg(1), t0);
        assert_eq!(
            events(&mut fresh),
            [Event::Delivered(
                1,
                Outcome::failure(
                    TransId(1),
                    StatusCode::TEMPORARILY_UNAVAILABLE,
                    "user not logged in"
                )
            )]
        );

        let mut s = logged_in(t0);
        s.deliver(10, &msg(100), t0);
        s.deliver(11, &msg(101), t0);
        s.deliver(12, &msg(102), t0);
        assert_eq!(
            lines(&mut s),
            [
                "MSG s1 sip:bob@sip.test hi\\nthere",
                "MSG s2 sip:bob@sip.test hi\\nthere",
                "MSG s3 sip:bob@sip.test hi\\nthere"
            ]
        );
        s.handle_bytes(b"OK s1\nERR s2 486 busy\nOK s99\n", t0);
        assert_eq!(
            events(&mut s),
            [
                Event::Delivered(10, Outcome::ok(TransId(100))),
                Event::Delivered(
                    11,
                    Outcome::failure(TransId(101), StatusCode::BUSY_HERE, "busy")
                )
            ]
        );
        assert!(
            lines(&mut s).is_empty(),
            "an answer to nothing is not answered"
        );
        assert_eq!(s.poll_timeout(), Some(t0 + Duration::from_secs(5)));
        s.handle_timeout(t0 + Duration::from_secs(5));
        let ev = events(&mut s);
        assert!(
            matches!(&ev[..], [Event::Delivered(12, o)] if o.status.code == StatusCode::REQUEST_TIMEOUT),
            "{ev:?}"
        );

        s.deliver(13, &msg(103), t0);
        let n = Notify {
            trans_id: TransId(104),
            watcher: to.clone(),
            target: a.clone(),
            state: SubscriptionState::Active { expires: 60 },
            presence: Some(to_presence(PresState::Away, Some("lunch".into()), None)),
        };
        s.deliver(14, &Operation::Notify(n), t0);
        assert_eq!(
            lines(&mut s),
            [
                "MSG s4 sip:bob@sip.test hi\\nthere",
                "NOTIFY s5 sip:bob@sip.test away lunch"
            ]
        );
        s.close("peer gone");
        let ev = events(&mut s);
        assert_eq!(ev.len(), 3, "{ev:?}");
        assert!(
            ev[..2]
                .iter()
                .all(|e| matches!(e, Event::Delivered(13 | 14, o) if o.status.code == StatusCode::REQUEST_TIMEOUT)),
            "{ev:?}"
        );
        assert_eq!(ev[2], Event::Closed("peer gone".into()));
        s.deliver(15, &msg(105), t0);
        assert!(
            matches!(&events(&mut s)[..], [Event::Delivered(15, o)] if o.status.code == StatusCode::TEMPORARILY_UNAVAILABLE)
        );
    }

    #[test]
    fn refuses_what_skel_cannot_carry() {
        let t0 = Instant::now();
        let mut s = logged_in(t0);
        let a = Address::parse("sip:bob@sip.test").unwrap();
        let to = Address::parse("im:alice@skel.test").unwrap();
        let html = Message::new(TransId(1), a.clone(), to.clone(), "text/html", "<b>x</b>");
        s.deliver(1, &Operation::Message(html), t0);
        let sub = cpim_core::model::Subscribe {
            trans_id: TransId(2),
            watcher: a,
            target: to,
            duration: 60,
        };
        s.deliver(2, &Operation::Subscribe(sub), t0);
        let ev = events(&mut s);
        assert!(
            matches!(&ev[..], [Event::Delivered(1, o1), Event::Delivered(2, o2)] if o1.status.code == StatusCode::UNSUPPORTED_MEDIA_TYPE && o2.status.code == StatusCode::NOT_IMPLEMENTED),
            "{ev:?}"
        );
        assert!(lines(&mut s).is_empty());
    }

    #[test]
    fn keepalive_pings_then_closes_in_virtual_time() {
        let t0 = Instant::now();
        let mut s = logged_in(t0);
        let s30 = t0 + Duration::from_secs(30);
        assert_eq!(s.poll_timeout(), Some(s30));
        s.handle_timeout(s30 - Duration::from_millis(1));
        assert!(lines(&mut s).is_empty());
        s.handle_timeout(s30);
        assert_eq!(lines(&mut s), ["PING k"]);
        // Any line proves liveness and restarts the timer.
        s.handle_bytes(b"PONG k\n", s30 + Duration::from_secs(1));
        assert_eq!(s.poll_timeout(), Some(s30 + Duration::from_secs(31)));
        let t = s30 + Duration::from_secs(31);
        s.handle_timeout(t);
        assert_eq!(lines(&mut s), ["PING k"]);
        assert_eq!(s.poll_timeout(), Some(t + Duration::from_secs(10)));
        s.handle_timeout(t + Duration::from_secs(10));
        assert_eq!(events(&mut s), [Event::Closed("keep-alive timeout".into())]);
        assert!(s.is_closed() && s.poll_timeout().is_none());
    }
}
