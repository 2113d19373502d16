//! IRC to CPIM: events of the connections (registration, messages, presence changes
//! seen in JOIN/PART/QUIT, USERHOST and WHOIS replies) turned into operations for the
//! core.

use std::time::Instant;

use cpim_core::model::{MessageKind, SubscriptionState};
use cpim_core::{Address, Message, Notify, Operation, Scheme};

use crate::adapter::{ConnCmd, HubMsg};
use crate::conn::ConnEvent;
use crate::mapping::{presence_of, IrcPresence};
use crate::proto::{casefold, is_channel, nick_eq};

use super::{Hub, BOT};

impl Hub {
    pub(super) async fn event(&mut self, id: u64, ev: ConnEvent) {
        match ev {
            ConnEvent::Registered { nick } => {
                let Some(link) = self.links.get_mut(&id) else {
                    return;
                };
                link.registered = true;
                link.nick = nick;
                link.last_error = None;
                let waiting = std::mem::take(&mut link.waiting);
                let joins: Vec<String> = if id == BOT {
                    link.joined = self
                        .shared
                        .cfg
                        .channels
                        .iter()
                        .map(|c| casefold(c))
                        .collect();
                    self.shared.cfg.channels.clone()
                } else {
                    link.joined.iter().cloned().collect()
                };
                for c in joins {
                    self.cmd(id, ConnCmd::Join(c)).await;
                }
                for (target, text, notice, token) in waiting {
                    self.cmd(
                        id,
                        ConnCmd::Send {
                            target,
                            text,
                            notice,
                            token,
                        },
                    )
                    .await;
                }
                if id == BOT {
                    self.poll_presence().await;
                }
            }
            ConnEvent::SendResult { token, result } => self.finish_send(token, result),
            ConnEvent::Message {
                from,
                target,
                text,
                notice,
            } => {
                if self.is_puppet_nick(&from)
                    || self
                        .links
                        .get(&BOT)
                        .is_some_and(|l| nick_eq(&l.nick, &from))
                {
                    return; // our own traffic echoed back
                }
                self.inbound_message(id, from, target, text, notice);
            }
            ConnEvent::Dead { reason } => {
                if let Some(l) = self.links.get_mut(&id) {
                    l.registered = false;
                    l.last_error = Some(reason);
                }
            }
            ev if id == BOT => self.presence_event(ev).await,
            _ => {}
        }
    }

    fn inbound_message(
        &mut self,
        id: u64,
        from: String,
        target: String,
        text: String,
        notice: bool,
    ) {
        let domain = self.cfg().domain.clone();
        let source = self.irc_address(&from);
        let (destination, text, kind) = if is_channel(&target) {
            if id != BOT {
                return; // channel traffic is taken from the bot only
            }
            let kind = if notice {
                MessageKind::Headline
            } else {
                MessageKind::Groupchat
            };
            (Address::new(Scheme::Im, Some(&target), &domain), text, kind)
        } else if id == BOT {
            // "/msg bot user@domain text": the first word is the recipient.
            let (first, rest) = text.split_once(' ').unwrap_or((&text, ""));
            let first = first.trim_end_matches([':', ',']);
            // A bare `user@domain` is an `im:` address (RFC 3860).
            let parsed = if first.contains(':') {
                Address::parse(first)
            } else {
                Address::parse(&format!("im:{first}"))
            };
            match parsed
                .ok()
                .filter(|a| a.user.is_some() && first.contains('@'))
            {
                Some(a) if !rest.trim().is_empty() => (
                    a.bare(),
                    rest.trim_start().to_owned(),
                    if notice {
                        MessageKind::Headline
                    } else {
                        MessageKind::Chat
                    },
                ),
                _ => {
                    if !notice {
                        let me = self.me.clone();
                        let hint = "usage: /msg <this bot> user@domain your message".to_owned();
                        tokio::spawn(async move {
                            let _ = me
                                .send(HubMsg::Failed {
                                    nick: from,
                                    text: hint,
                                })
                                .await;
                        });
                    }
                    return;
                }
            }
        } else {
            let Some(owner) = self.links.get(&id).and_then(|l| l.owner.clone()) else {
                return;
            };
            if let Some(l) = self.links.get_mut(&id) {
                l.last_used = Instant::now();
            }
            (
                owner,
                text,
                if notice {
                    MessageKind::Headline
                } else {
                    MessageKind::Chat
                },
            )
        };
        let mut m = Message::new(
            self.trans(),
            source,
            destination,
            "text/plain;charset=UTF-8",
            text.into_bytes(),
        );
        m.kind = kind;
        let fut = self
            .shared
            .ingress
            .submit(&self.shared.cfg.name, Operation::Message(m));
        let me = self.me.clone();
        tokio::spawn(async move {
            let outcome = fut.await;
            if !outcome.status.is_success() && !notice {
                let text = format!(
                    "not delivered: {} {}",
                    outcome.status.code, outcome.status.reason
                );
                let _ = me.send(HubMsg::Failed { nick: from, text }).await;
            }
        });
    }

    async fn presence_event(&mut self, ev: ConnEvent) {
        match ev {
            ConnEvent::Quit { nick, reason } => {
                self.set_presence(&nick, IrcPresence::Gone(Some(reason)))
            }
            ConnEvent::Join { nick, .. } => {
                if matches!(self.watch_state(&nick), None | Some(IrcPresence::Gone(_))) {
                    self.set_presence(&nick, IrcPresence::Here)
                }
            }
            ConnEvent::NickChange { old, new } => {
                self.set_presence(&old, IrcPresence::Gone(Some(format!("now known as {new}"))));
                self.set_presence(&new, IrcPresence::Here);
            }
            ConnEvent::AwayReply { nick, note } => {
                if let Some(w) = self.watches.get_mut(&casefold(&nick)) {
                    w.away_note = Some(note);
                }
            }
            ConnEvent::WhoisEnd { nick } => {
                let note = self.watches.get_mut(&casefold(&nick)).and_then(|w| {
                    w.whois_pending = false;
                    w.away_note.take()
                });
                self.set_presence(&nick, IrcPresence::Away(note));
            }
            ConnEvent::Userhost { asked, online } => {
                for nick in asked {
                    match online.iter().find(|(n, _)| nick_eq(n, &nick)) {
                        Some((_, false)) => self.set_presence(&nick, IrcPresence::Here),
                        Some((_, true)) => {
                            let k = casefold(&nick);
                            let need = self.watches.get(&k).is_some_and(|w| {
                                !matches!(w.state, Some(IrcPresence::Away(_))) && !w.whois_pending
                            });
                            if need {
                                if let Some(w) = self.watches.get_mut(&k) {
                                    w.whois_pending = true;
                                }
                                self.cmd(BOT, ConnCmd::Whois(nick)).await;
                            }
                        }
                        None => {
                            let keep = match self.watch_state(&nick) {
                                Some(IrcPresence::Gone(r)) => IrcPresence::Gone(r),
                                _ => IrcPresence::Gone(None),
                            };
                            self.set_presence(&nick, keep)
                        }
                    }
                }
            }
            _ => {}
        }
    }

    fn watch_state(&self, nick: &str) -> Option<IrcPresence> {
        self.watches
            .get(&casefold(nick))
            .and_then(|w| w.state.clone())
    }

    /// Records a state; on a change, notifies every watcher (RFC 3859 s4.2 notify).
    fn set_presence(&mut self, nick: &str, state: IrcPresence) {
        let k = casefold(nick);
        let domain = self.cfg().domain.clone();
        let Some(w) = self.watches.get_mut(&k) else {
            return;
        };
        let changed = match (&w.state, &state) {
            (Some(IrcPresence::Gone(_)), IrcPresence::Gone(_)) => false,
            (old, new) => old.as_ref() != Some(new),
        };
        if !changed {
            return;
        }
        w.state = Some(state.clone());
        let target = Address::new(Scheme::Pres, Some(&w.nick), &domain);
        let presence = presence_of(&state);
        let watchers: Vec<Address> = w.watchers.iter().map(|(a, _)| a.clone()).collect();
        w.watchers.retain(|(_, once)| !once);
        if w.watchers.is_empty() {
            self.watches.remove(&k);
        }
        for watcher in watchers {
            let n = Notify {
                trans_id: self.trans(),
                watcher,
                target: target.clone(),
                state: SubscriptionState::Active { expires: 3600 },
                presence: Some(presence.clone()),
            };
            let fut = self
                .shared
                .ingress
                .submit(&self.shared.cfg.name, Operation::Notify(n));
            tokio::spawn(async move {
                let _ = fut.await;
            });
        }
    }

    pub(super) async fn poll_presence(&mut self) {
        let nicks: Vec<String> = self.watches.values().map(|w| w.nick.clone()).collect();
        for chunk in nicks.chunks(5) {
            self.cmd(BOT, ConnCmd::Userhost(chunk.to_vec())).await;
        }
    }
}
