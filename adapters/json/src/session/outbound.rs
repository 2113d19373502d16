//! To the client: the core's outcome of an operation the client sent, and the
//! operations the core delivers to this client as frames.

use cpim_core::StatusCode;
use std::time::Instant;

use base64::Engine as _;
use cpim_core::model::MessageKind;
use cpim_core::{Operation, Outcome};

use crate::frame::*;

use super::convert::{presence_to_object, state_to_frame};
use super::{Event, Pending, Session, State};

impl Session {
    /// The core answered the operation with this outcome's TransId.
    pub fn handle_submit_outcome(&mut self, outcome: Outcome) {
        if matches!(self.state, State::Closing) {
            return;
        }
        if let Some(id) = self.submitted.remove(&outcome.trans_id) {
            self.events
                .push_back(Event::Send(Frame::Outcome(OutcomeFrame {
                    id,
                    code: outcome.status.code.as_u16(),
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
                Outcome::failure(
                    trans_id,
                    StatusCode::TEMPORARILY_UNAVAILABLE,
                    "client session not open",
                ),
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
                        StatusCode::NOT_ACCEPTABLE_HERE,
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
}
