//! Frames from the client: the `hello` handshake, the rate limit, operations mapped
//! to the model (with the sender checked against the token's addresses) and the
//! client's outcomes of deliveries.

use cpim_core::StatusCode;
use std::time::Instant;

use base64::Engine as _;
use cpim_core::model::{DispositionRequest, MessageKind};
use cpim_core::{Address, Message, Notify, Operation, Outcome, Publish, Subscribe};

use crate::frame::*;
use crate::FrameError;

use super::convert::{presence_from_parts, state_from_frame};
use super::{err, sniff_id, Event, Session, State, TokenCheck};

impl Session {
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
                    negative: false,
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
                        StatusCode::SERVER_INTERNAL_ERROR,
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
