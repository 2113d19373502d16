//! CPIM to IRC: operations the core delivers, messages sent by the bot or by the
//! sender's puppet, and the outcome of each send.

use cpim_core::StatusCode;
use std::time::Instant;

use cpim_core::model::MessageKind;
use cpim_core::{Address, Message, Operation, Outcome};
use tokio::sync::oneshot;

use crate::adapter::ConnCmd;
use crate::mapping::{away_of, numeric_to_status};
use crate::nick::escape_within;
use crate::proto::{casefold, is_channel, is_valid_nick, nick_eq};

use super::{key, Hub, Watch, BOT};

impl Hub {
    pub(super) async fn deliver(&mut self, op: Operation, reply: oneshot::Sender<Outcome>) {
        let t = op.trans_id();
        match op {
            Operation::Message(m) => self.deliver_message(m, reply).await,
            Operation::Subscribe(s) => {
                let Some(nick) = s.target.user.clone().filter(|n| is_valid_nick(n, 64)) else {
                    let _ = reply.send(Outcome::failure(
                        t,
                        StatusCode::NOT_FOUND,
                        "Not Found: not an IRC nickname",
                    ));
                    return;
                };
                let w = self
                    .watches
                    .entry(casefold(&nick))
                    .or_insert_with(|| Watch {
                        nick: nick.clone(),
                        watchers: Vec::new(),
                        state: None,
                        whois_pending: false,
                        away_note: None,
                    });
                w.watchers.retain(|(a, _)| !a.same_user(&s.watcher));
                w.watchers.push((s.watcher.clone(), s.duration == 0));
                // A fresh watcher gets the current state at the next USERHOST answer.
                w.state = None;
                let _ = reply.send(Outcome::ok(t));
                self.cmd(BOT, ConnCmd::Userhost(vec![nick])).await;
            }
            Operation::Unsubscribe(s) => {
                if let Some(nick) = &s.target.user {
                    let k = casefold(nick);
                    if let Some(w) = self.watches.get_mut(&k) {
                        w.watchers.retain(|(a, _)| !a.same_user(&s.watcher));
                        if w.watchers.is_empty() {
                            self.watches.remove(&k);
                        }
                    }
                }
                let _ = reply.send(Outcome::ok(t));
            }
            Operation::Notify(n) => {
                // A CPIM user's presence, shown as AWAY on their puppet if they have one.
                if let (Some(p), Some(id)) =
                    (&n.presence, self.puppets.get(&key(&n.target)).copied())
                {
                    self.cmd(id, ConnCmd::Away(away_of(p))).await;
                }
                let _ = reply.send(Outcome::ok(t));
            }
            other => {
                let _ = reply.send(Outcome::failure(
                    t,
                    StatusCode::NOT_IMPLEMENTED,
                    format!("Not Implemented: {} on IRC", other.kind()),
                ));
            }
        }
    }

    async fn deliver_message(&mut self, m: Message, reply: oneshot::Sender<Outcome>) {
        let t = m.trans_id;
        let Some(target) = m.destination.user.clone() else {
            let _ = reply.send(Outcome::failure(
                t,
                StatusCode::NOT_FOUND,
                "Not Found: no nickname or channel",
            ));
            return;
        };
        if !is_channel(&target) && !is_valid_nick(&target, 64) {
            let _ = reply.send(Outcome::failure(
                t,
                StatusCode::NOT_FOUND,
                "Not Found: not a valid IRC nickname",
            ));
            return;
        }
        let essence = m.mime_type();
        if !essence.starts_with("text/") {
            let _ = reply.send(Outcome::failure(
                t,
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                format!("Unsupported Media Type: IRC carries text only, not {essence}"),
            ));
            return;
        }
        let Ok(text) = String::from_utf8(m.body) else {
            let _ = reply.send(Outcome::failure(
                t,
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "Unsupported Media Type: body is not UTF-8",
            ));
            return;
        };
        // NOTICE for messages that expect no reply (RFC 2812 s3.3.2).
        let notice = m.kind == MessageKind::Headline;
        let id = self.sender_for(&m.source).await;
        let text = if id == BOT {
            let who = match &m.source.user {
                Some(u) => format!("{u}@{}", m.source.domain),
                None => m.source.domain.clone(),
            };
            format!("<{who}> {text}")
        } else {
            text
        };
        if id == BOT && !self.links.get(&BOT).is_some_and(|l| l.registered) {
            let _ = reply.send(Outcome::failure(
                t,
                StatusCode::SERVICE_UNAVAILABLE,
                "Service Unavailable: IRC link down",
            ));
            return;
        }
        self.next_token += 1;
        let token = self.next_token;
        self.sends.insert(token, (t, reply));
        let Some(link) = self.links.get_mut(&id) else {
            return;
        };
        link.last_used = Instant::now();
        let mut cmds = Vec::new();
        if is_channel(&target) && link.joined.insert(casefold(&target)) {
            cmds.push(ConnCmd::Join(target.clone()));
        }
        if link.registered {
            cmds.push(ConnCmd::Send {
                target,
                text,
                notice,
                token,
            });
        } else {
            link.waiting.push((target, text, notice, token));
        }
        for c in cmds {
            self.cmd(id, c).await;
        }
    }

    /// The connection a CPIM user sends through: their puppet (created if allowed), or
    /// the bot.
    async fn sender_for(&mut self, source: &Address) -> u64 {
        if let Some(id) = self.puppets.get(&key(source)) {
            return *id;
        }
        let cfg = self.cfg();
        if self.puppets.len() >= cfg.max_puppets {
            return BOT;
        }
        let Some(user) = &source.user else { return BOT };
        let room = cfg.nick_len.saturating_sub(cfg.puppet_suffix.len());
        let Some(mut nick) = escape_within(user, room) else {
            return BOT;
        };
        nick.push_str(&cfg.puppet_suffix);
        // Another puppet may have the same nickname under IRC case rules.
        if self.links.values().any(|l| nick_eq(&l.nick, &nick)) {
            return BOT;
        }
        let id = self.next_conn;
        self.next_conn += 1;
        self.puppets.insert(key(source), id);
        self.spawn_conn(id, nick, Some(source.bare()));
        id
    }

    pub(super) fn finish_send(&mut self, token: u64, result: Result<(), (u16, String)>) {
        let Some((t, reply)) = self.sends.remove(&token) else {
            return;
        };
        let outcome = match result {
            Ok(()) => Outcome::ok(t),
            Err((0, why)) if why.contains("no answer") => Outcome::failure(
                t,
                StatusCode::REQUEST_TIMEOUT,
                "Request Timeout: no answer from the IRC server",
            ),
            Err((n, text)) => {
                let (code, reason) = numeric_to_status(n);
                Outcome::failure(
                    t,
                    code,
                    if text.is_empty() {
                        reason.to_owned()
                    } else {
                        format!("{reason}: {text}")
                    },
                )
            }
        };
        let _ = reply.send(outcome);
    }
}
