//! The presentity's decisions about its watchers ([`super::Policy::Ask`]): allow or
//! deny one watcher, remembered (and persisted) so that the watcher is not asked about
//! again.
//!
//! [`PresenceEngine::decide`] is the admin API's entry point. A presence-authorization
//! rules document (RFC 5025 pres-rules, see [`super::rules`]) takes the same effect
//! path ([`PresenceEngine::activate`] and the `rejected` termination) without being
//! remembered here; the most recent of the two wins: a decision made after the
//! document overrides it for that watcher, a document written after a decision forgets
//! the decisions about the watchers it decides.
//!
//! Effects (RFC 3857 s4.7.1 watcher events, RFC 6665 s4.1.3 states, RFC 8048 s5):
//! - allow: a pending subscription becomes active (`approved`): XMPP `subscribed` and
//!   then the state, SIP NOTIFY `active` with the state. Later subscribes of that
//!   watcher are approved at once.
//! - deny: the subscription, pending or active, ends with `terminated;reason=rejected`
//!   (XMPP `unsubscribed`); later subscribes of that watcher get 403 without asking.
//! - reset: the decision is forgotten; the watcher's next subscribe asks again.
//!
//! Remembered decisions are standing state the presentity's watchers cause, so they are
//! capped (`max_decisions_per_presentity`, `max_decisions`); past a cap a new decision
//! is refused with 503 (a reset makes room), never silently dropped.

use std::collections::HashMap;
use std::time::Instant;

use cpim_core::address::Address;
use cpim_core::model::{Status, TerminationReason};
use cpim_core::StatusCode;

use super::{sub_key, user_key, Action, PresenceEngine, SubState};

/// A presentity's decision about one watcher.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decision {
    /// The watcher (bare).
    pub watcher: Address,
    /// The presentity (bare).
    pub presentity: Address,
    /// Allowed (`true`) or denied.
    pub allow: bool,
}

/// What a presentity decides about a watcher.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Choice {
    /// The watcher may see the presentity's state.
    Allow,
    /// The watcher may not; its subscription ends (`rejected`).
    Deny,
    /// Forget the earlier decision: the watcher's next subscribe asks again.
    Reset,
}

impl Choice {
    /// `allow`, `deny` or `reset`.
    pub fn parse(s: &str) -> Option<Choice> {
        match s.trim().to_ascii_lowercase().as_str() {
            "allow" => Some(Choice::Allow),
            "deny" => Some(Choice::Deny),
            "reset" => Some(Choice::Reset),
            _ => None,
        }
    }
}

/// The remembered decisions, by pair key ([`sub_key`]), with a count per presentity.
#[derive(Debug, Default)]
pub(super) struct Decisions {
    by_pair: HashMap<String, Decision>,
    per_presentity: HashMap<String, usize>,
}

impl Decisions {
    fn insert(&mut self, key: String, d: Decision) {
        let pk = user_key(&d.presentity);
        if self.by_pair.insert(key, d).is_none() {
            *self.per_presentity.entry(pk).or_default() += 1;
        }
    }

    fn remove(&mut self, key: &str) -> Option<Decision> {
        let d = self.by_pair.remove(key)?;
        let pk = user_key(&d.presentity);
        if let Some(n) = self.per_presentity.get_mut(&pk) {
            *n -= 1;
            if *n == 0 {
                self.per_presentity.remove(&pk);
            }
        }
        Some(d)
    }
}

/// One watcher of a local presentity as [`PresenceEngine::watchers_of`] lists it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WatcherEntry {
    /// The watcher.
    pub watcher: Address,
    /// `pending`, `active` or `terminated` (RFC 3858 s3 status); `none` for a watcher
    /// allowed before that does not subscribe now.
    pub status: &'static str,
    /// What led there (RFC 3857 s4.7.1 event): `subscribe`, `approved`, `rejected`.
    pub event: &'static str,
    /// The remembered decision, if any.
    pub decision: Option<bool>,
    /// The adapter the watcher's notifications go to (`None`: no subscription now).
    pub adapter: Option<String>,
    /// Seconds until the watcher's subscription expires (`None`: no expiry or none).
    pub expires_in: Option<u64>,
}

impl PresenceEngine {
    /// The remembered decision of `presentity` about `watcher`, if any.
    pub fn decided(&self, watcher: &Address, presentity: &Address) -> Option<bool> {
        self.decisions
            .by_pair
            .get(&sub_key(watcher, presentity))
            .map(|d| d.allow)
    }

    /// Number of remembered decisions.
    pub fn decision_count(&self) -> usize {
        self.decisions.by_pair.len()
    }

    /// Restores a persisted decision after a restart.
    pub fn restore_decision(&mut self, d: Decision) {
        self.decisions.insert(sub_key(&d.watcher, &d.presentity), d);
    }

    /// The presentity decides about a watcher (see the module docs). 200 when done; 503
    /// when a new decision would exceed a cap.
    pub fn decide(
        &mut self,
        now: Instant,
        presentity: &Address,
        watcher: &Address,
        choice: Choice,
    ) -> Status {
        let key = sub_key(watcher, presentity);
        if choice == Choice::Reset {
            if self.decisions.remove(&key).is_some() {
                self.actions.push_back(Action::DeleteDecision(key));
            }
            return Status::ok();
        }
        let allow = choice == Choice::Allow;
        if !self.decisions.by_pair.contains_key(&key) {
            let per = self
                .decisions
                .per_presentity
                .get(&user_key(presentity))
                .copied()
                .unwrap_or(0);
            if per >= self.cfg.max_decisions_per_presentity
                || self.decisions.by_pair.len() >= self.cfg.max_decisions
            {
                return Status::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "Service Unavailable: too many remembered decisions (reset some)",
                );
            }
        }
        let d = Decision {
            watcher: watcher.bare(),
            presentity: presentity.bare(),
            allow,
        };
        self.decisions.insert(key.clone(), d.clone());
        self.actions.push_back(Action::SaveDecision(d));
        let Some(s) = self.subs.get(&key) else {
            return Status::ok();
        };
        if s.remote.is_some() {
            // Not a local presentity's watcher: the remote side authorizes.
            return Status::ok();
        }
        if allow {
            self.activate(now, &key);
        } else {
            self.terminate(&key, TerminationReason::Rejected, None, false);
        }
        Status::ok()
    }

    /// The effect of an allow on the subscription `key`: pending becomes active, with
    /// the notifications of the module docs. Shared by [`PresenceEngine::decide`] and
    /// the pres-rules path ([`super::rules`]).
    pub(super) fn activate(&mut self, now: Instant, key: &str) {
        let Some(s) = self.subs.get_mut(key) else {
            return;
        };
        if s.state == SubState::Pending {
            s.state = SubState::Active;
            let adapter = s.watcher_adapter.clone();
            self.save(key);
            if self.is_roster(&adapter) {
                // RFC 8048 s5: `subscribed` first, then the state.
                self.notify_watcher(key, now, false);
            }
            self.notify_watcher(key, now, true);
        }
    }

    /// Forgets the remembered decisions of `presentity` about the watchers `covered`
    /// selects (a pres-rules document written since decides them now).
    pub(super) fn forget_decisions(
        &mut self,
        presentity: &Address,
        covered: impl Fn(&Address) -> bool,
    ) {
        let pk = user_key(presentity);
        if !self.decisions.per_presentity.contains_key(&pk) {
            return;
        }
        let keys: Vec<String> = self
            .decisions
            .by_pair
            .iter()
            .filter(|(_, d)| user_key(&d.presentity) == pk && covered(&d.watcher))
            .map(|(k, _)| k.clone())
            .collect();
        for k in keys {
            self.decisions.remove(&k);
            self.actions.push_back(Action::DeleteDecision(k));
        }
    }

    /// The watchers of a local presentity: its subscriptions and its remembered
    /// decisions (a denied watcher shows as `terminated` / `rejected`, an allowed one
    /// without a subscription as `none` / `approved`), sorted by watcher.
    pub fn watchers_of(&self, presentity: &Address, now: Instant) -> Vec<WatcherEntry> {
        let pk = user_key(presentity);
        let mut v: Vec<WatcherEntry> = Vec::new();
        for key in self.by_presentity.get(&pk).into_iter().flatten() {
            let Some(s) = self.subs.get(key) else {
                continue;
            };
            if s.remote.is_some() {
                continue;
            }
            let decision = self.decisions.by_pair.get(key).map(|d| d.allow);
            let (status, event) = match s.state {
                SubState::Pending => ("pending", "subscribe"),
                SubState::Active
                    if decision == Some(true)
                        || self.rules_say(&s.watcher, presentity)
                            == Some(super::presrules::SubHandling::Allow) =>
                {
                    ("active", "approved")
                }
                SubState::Active => ("active", "subscribe"),
            };
            v.push(WatcherEntry {
                watcher: s.watcher.clone(),
                status,
                event,
                decision,
                adapter: Some(s.watcher_adapter.clone()),
                expires_in: s
                    .expires_at
                    .map(|t| t.saturating_duration_since(now).as_secs()),
            });
        }
        if self.decisions.per_presentity.contains_key(&pk) {
            for (key, d) in &self.decisions.by_pair {
                if user_key(&d.presentity) != pk || self.subs.contains_key(key) {
                    continue;
                }
                v.push(WatcherEntry {
                    watcher: d.watcher.clone(),
                    status: if d.allow { "none" } else { "terminated" },
                    event: if d.allow { "approved" } else { "rejected" },
                    decision: Some(d.allow),
                    adapter: None,
                    expires_in: None,
                });
            }
        }
        v.sort_by_key(|e| user_key(&e.watcher));
        v
    }
}

#[cfg(test)]
mod tests;
