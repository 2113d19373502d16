//! Subscriptions as they come in: a subscribe or fetch from a watcher (RFC 6665 s4.2;
//! a fetch is a subscribe with duration 0, RFC 3856 s3.3, or an XMPP probe, RFC 8048 s6),
//! the upstream answer to the gateway's own subscribe, and an unsubscribe. See the
//! [`super`] docs for the states and who authorizes.

use cpim_core::StatusCode;
use std::time::{Duration, Instant};

use cpim_core::model::{
    Notify, Operation, Outcome, Status, Subscribe, SubscriptionState, TerminationReason, TransId,
};

use super::authz::Verdict;
use super::{
    sub_key, Fetch, PresenceEngine, Side, SubState, SubscribeReply, Subscription, TimerKind,
    FETCH_WAIT,
};

fn forbidden() -> Status {
    Status::new(StatusCode::FORBIDDEN, "Forbidden: watcher not authorized")
}

impl PresenceEngine {
    /// A subscribe (`duration > 0`) or fetch (`duration == 0`) from a watcher that came
    /// in by `watcher_adapter`.
    pub fn handle_subscribe(
        &mut self,
        now: Instant,
        watcher_adapter: &str,
        sub: &Subscribe,
        side: Side,
    ) -> SubscribeReply {
        let key = sub_key(&sub.watcher, &sub.target);
        if sub.duration == 0 {
            return self.fetch(now, watcher_adapter, sub, side, key);
        }
        if self.subs.contains_key(&key) {
            // A refresh: absorbed here, never forwarded.
            let exp = self.watcher_expiry(now, watcher_adapter, sub.duration);
            let s = self.subs.get_mut(&key).expect("present");
            let old = std::mem::replace(&mut s.expires_at, exp);
            if let Some(t) = old {
                self.timers.remove(&(t, TimerKind::SubExpiry, key.clone()));
            }
            let s = self.subs.get_mut(&key).expect("present");
            s.watcher_adapter = watcher_adapter.to_owned();
            s.watcher = sub.watcher.clone();
            let code = if s.state == SubState::Active {
                200
            } else {
                202
            };
            if let Some(t) = exp {
                self.timers.insert((t, TimerKind::SubExpiry, key.clone()));
            }
            self.save(&key);
            self.notify_watcher(&key, now, true);
            return SubscribeReply::Now(if code == 200 {
                Status::ok()
            } else {
                Status::new(StatusCode::ACCEPTED, "Accepted")
            });
        }
        if let Some(refusal) = self.over_cap(&sub.target) {
            return SubscribeReply::Now(refusal);
        }
        match side {
            Side::Local { known_watcher } => {
                let state = match self.verdict(&sub.watcher, &sub.target, known_watcher) {
                    Verdict::Refuse => return SubscribeReply::Now(forbidden()),
                    Verdict::Ask => {
                        if let Some(refusal) = self.over_pending_cap(&sub.target) {
                            return SubscribeReply::Now(refusal);
                        }
                        SubState::Pending
                    }
                    Verdict::Approve => SubState::Active,
                };
                let s = Subscription {
                    watcher: sub.watcher.clone(),
                    presentity: sub.target.clone(),
                    watcher_adapter: watcher_adapter.to_owned(),
                    remote: None,
                    state: state.clone(),
                    expires_at: self.watcher_expiry(now, watcher_adapter, sub.duration),
                    refresh_at: None,
                    last_presence: None,
                    answering: false,
                };
                self.insert(key.clone(), s);
                self.save(&key);
                if state == SubState::Pending {
                    // RFC 6665 s4.1.3: pending, no state, until the presentity decides
                    // (a roster adapter's watcher hears nothing: no `subscribed` yet).
                    if !self.is_roster(watcher_adapter) {
                        self.notify_watcher(&key, now, false);
                    }
                    return SubscribeReply::Now(Status::new(StatusCode::ACCEPTED, "Accepted"));
                }
                if self.is_roster(watcher_adapter) {
                    // RFC 8048 s4: `subscribed` first, then the state.
                    self.notify_watcher(&key, now, false);
                }
                self.notify_watcher(&key, now, true);
                SubscribeReply::Now(Status::ok())
            }
            Side::Remote(adapter) => {
                let up = self.cfg.upstream_expires.get(&adapter).copied();
                let s = Subscription {
                    watcher: sub.watcher.clone(),
                    presentity: sub.target.clone(),
                    watcher_adapter: watcher_adapter.to_owned(),
                    remote: Some(adapter.clone()),
                    state: SubState::Pending,
                    expires_at: self.watcher_expiry(now, watcher_adapter, sub.duration),
                    refresh_at: up.map(|d| now + Duration::from_secs(u64::from(d) * 4 / 5)),
                    last_presence: None,
                    answering: true,
                };
                self.insert(key.clone(), s);
                let id = self.tid();
                SubscribeReply::Upstream {
                    adapter,
                    op: Operation::Subscribe(Subscribe {
                        trans_id: id,
                        watcher: sub.watcher.clone(),
                        target: sub.target.clone(),
                        duration: up.unwrap_or(u32::MAX),
                    }),
                    key,
                }
            }
        }
    }

    fn fetch(
        &mut self,
        now: Instant,
        watcher_adapter: &str,
        sub: &Subscribe,
        side: Side,
        key: String,
    ) -> SubscribeReply {
        let cached = match (&side, self.subs.get(&key)) {
            (_, Some(s)) if s.state == SubState::Active => self.current_presence(s),
            (Side::Local { known_watcher }, _) => {
                match self.verdict(&sub.watcher, &sub.target, *known_watcher) {
                    Verdict::Approve => {}
                    Verdict::Refuse => return SubscribeReply::Now(forbidden()),
                    Verdict::Ask => {
                        // Undecided: the fetch learns nothing (a SIP fetch ends without
                        // state, RFC 3856 s3.3; an XMPP probe goes unanswered) and
                        // leaves no state behind.
                        if !self.is_roster(watcher_adapter) {
                            self.push_deliver(
                                watcher_adapter.to_owned(),
                                Operation::Notify(Notify {
                                    trans_id: TransId(0),
                                    watcher: sub.watcher.clone(),
                                    target: sub.target.clone(),
                                    state: SubscriptionState::Terminated(
                                        TerminationReason::Timeout,
                                    ),
                                    presence: None,
                                }),
                            );
                        }
                        return SubscribeReply::Now(Status::new(StatusCode::ACCEPTED, "Accepted"));
                    }
                }
                Some(self.local_view(&sub.watcher, &sub.target))
            }
            _ => None,
        };
        let fetch_state = if self.is_roster(watcher_adapter) {
            SubscriptionState::Active { expires: 0 }
        } else {
            SubscriptionState::Terminated(TerminationReason::Timeout)
        };
        if let Some(presence) = cached {
            self.push_deliver(
                watcher_adapter.to_owned(),
                Operation::Notify(Notify {
                    trans_id: TransId(0),
                    watcher: sub.watcher.clone(),
                    target: sub.target.clone(),
                    state: fetch_state,
                    presence: Some(presence),
                }),
            );
            return SubscribeReply::Now(Status::ok());
        }
        let Side::Remote(adapter) = side else {
            return SubscribeReply::Now(Status::ok());
        };
        if let Some(refusal) = self.over_cap(&sub.target) {
            return SubscribeReply::Now(refusal);
        }
        let until = now + FETCH_WAIT;
        self.fetches.insert(
            key.clone(),
            Fetch {
                watcher: sub.watcher.clone(),
                presentity: sub.target.clone(),
                watcher_adapter: watcher_adapter.to_owned(),
                until,
            },
        );
        self.timers.insert((until, TimerKind::Fetch, key.clone()));
        let id = self.tid();
        SubscribeReply::Upstream {
            adapter,
            op: Operation::Subscribe(Subscribe {
                trans_id: id,
                watcher: sub.watcher.clone(),
                target: sub.target.clone(),
                duration: 0,
            }),
            key,
        }
    }

    /// The outcome of an upstream subscribe that [`SubscribeReply::Upstream`] asked for;
    /// returns the answer for the watcher.
    pub fn handle_upstream_result(&mut self, now: Instant, key: &str, outcome: &Outcome) -> Status {
        if self.fetches.contains_key(key) && !self.subs.contains_key(key) {
            if !outcome.status.is_success() {
                self.fetches.remove(key);
            }
            return outcome.status.clone();
        }
        if !outcome.status.is_success() {
            // Nothing was established upstream: forget the pair without telling anyone
            // more than the failure itself.
            if self.subs.contains_key(key) {
                self.remove(key);
            }
            return outcome.status.clone();
        }
        let Some(s) = self.subs.get_mut(key) else {
            return outcome.status.clone();
        };
        s.answering = false;
        let active = s.state == SubState::Active;
        self.save(key);
        // RFC 6665 s4.2.1.1: the first notify follows the accepted subscribe.
        self.notify_watcher(key, now, active);
        if active {
            Status::ok()
        } else {
            Status::new(StatusCode::ACCEPTED, "Accepted")
        }
    }

    /// A watcher ends its subscription.
    pub fn handle_unsubscribe(&mut self, now: Instant, sub: &Subscribe) -> Status {
        let _ = now;
        let key = sub_key(&sub.watcher, &sub.target);
        if self.subs.contains_key(&key) {
            let presence = self.subs.get(&key).and_then(|s| {
                (s.state == SubState::Active)
                    .then(|| self.current_presence(s))
                    .flatten()
            });
            self.terminate(&key, TerminationReason::Timeout, presence, true);
        }
        Status::ok()
    }
}
