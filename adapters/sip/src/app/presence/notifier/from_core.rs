//! What the core sends for a SIP watcher: the outcome of the subscription it was
//! offered and the presentity's Notifies, mapped to NOTIFYs (RFC 6665 s4.2.1.1,
//! s8.2.3) and rate limited (RFC 3856 s6.4).

use cpim_core::model::{Notify, SubscriptionState};

use super::{pair_hash, Notifier, NotifierOutput, OutgoingNotify, Phase};

impl Notifier {
    /// The core answered the `Operation::Subscribe` of a new subscription with `code`.
    /// Returns the status and Expires to answer the SUBSCRIBE with (the outcome's code
    /// for a failure; the dialog is then gone). A 202 outcome starts the subscription
    /// pending (RFC 6665 s4.2.1.1 leaves the choice to the notifier; pending until the
    /// core sends an active Notify); a 200 starts it active.
    pub fn core_answered(&mut self, key: &str, code: u16, now: u64) -> Option<(u16, u32)> {
        let sub = self.subs.get_mut(key)?;
        if sub.phase != Phase::Proposed {
            return None;
        }
        if !(200..300).contains(&code) {
            self.remove_sub(key);
            return Some((code, 0));
        }
        let expires = u32::try_from(sub.rec.expires_at.saturating_sub(now)).unwrap_or(u32::MAX);
        if expires == 0 {
            // A fetch: hold the dialog until the state arrives or the wait ends.
            sub.phase = Phase::Fetch {
                deadline: now + self.fetch_wait,
            };
            sub.rec.state = "active".into();
            if let Some(n) = sub.early.take() {
                self.apply_core_notify(key, &n, now);
            }
            return Some((200, 0));
        }
        sub.phase = Phase::Live;
        let (code_out, state) = if code == 202 {
            sub.rec.state = "pending".into();
            (202, format!("pending;expires={expires}"))
        } else {
            sub.rec.state = "active".into();
            (200, format!("active;expires={expires}"))
        };
        sub.rec.local_cseq += 1;
        let rec = sub.rec.clone();
        let early = sub.early.take();
        self.out.push_back(NotifierOutput::Persist(rec.clone()));
        // RFC 6665 s4.2.1.1: a NOTIFY immediately after the 2xx.
        self.out.push_back(NotifierOutput::Notify(OutgoingNotify {
            dialog: rec,
            subscription_state: state,
            presence: None,
            winfo: None,
        }));
        if let Some(n) = early {
            self.apply_core_notify(key, &n, now);
        }
        Some((code_out, expires))
    }

    /// The core delivered a Notify for a SIP watcher. Returns how many subscriptions it
    /// reached (0: none, the caller answers 481).
    ///
    /// A Notify for a subscription still waiting for the core's outcome (`Proposed`: the
    /// presentity's side was faster than the outcome) is kept and applied right after the
    /// SUBSCRIBE's 2xx ([`Notifier::core_answered`]); the latest one wins, keeping the
    /// latest presence document seen.
    pub fn handle_core_notify(&mut self, n: &Notify, now: u64) -> usize {
        let keys: Vec<String> = self
            .by_pair
            .get(&pair_hash(&n.watcher, &n.target))
            .into_iter()
            .flatten()
            .filter(|k| {
                self.subs.get(*k).is_some_and(|s| {
                    s.watcher.same_user(&n.watcher) && s.presentity.same_user(&n.target)
                })
            })
            .cloned()
            .collect();
        for key in &keys {
            let Some(sub) = self.subs.get_mut(key) else {
                continue;
            };
            if sub.phase == Phase::Proposed {
                let mut n = n.clone();
                if n.presence.is_none() {
                    n.presence = sub.early.take().and_then(|e| e.presence);
                }
                sub.early = Some(n);
                continue;
            }
            self.apply_core_notify(key, n, now);
        }
        keys.len()
    }

    /// Applies a core Notify to one established (or fetch) subscription.
    fn apply_core_notify(&mut self, key: &str, n: &Notify, now: u64) {
        let min_interval = self.min_interval;
        {
            let Some(sub) = self.subs.get_mut(key) else {
                return;
            };
            if n.presence.is_some() {
                sub.last_presence.clone_from(&n.presence);
            }
            let left = u32::try_from(sub.rec.expires_at.saturating_sub(now)).unwrap_or(u32::MAX);
            if let Phase::Fetch { .. } = sub.phase {
                let presence = sub.last_presence.clone();
                self.end(key, "terminated;reason=timeout".into(), presence, false);
                return;
            }
            match &n.state {
                SubscriptionState::Terminated(r) => {
                    let state = format!("terminated;reason={}", r.as_str());
                    let presence = n.presence.clone();
                    self.end(key, state, presence, false);
                }
                st => {
                    let (name, state) = match st {
                        SubscriptionState::Pending => {
                            ("pending", format!("pending;expires={left}"))
                        }
                        _ => ("active", format!("active;expires={left}")),
                    };
                    sub.rec.state = name.into();
                    if n.presence.is_some() {
                        let next_ok = sub.last_body_at.map_or(0, |t| t + min_interval);
                        if now < next_ok {
                            // Too soon: keep the latest state for later.
                            sub.held_until = Some(next_ok);
                            return;
                        }
                        sub.last_body_at = Some(now);
                        sub.held_until = None;
                    }
                    sub.rec.local_cseq += 1;
                    let rec = sub.rec.clone();
                    self.out.push_back(NotifierOutput::Persist(rec.clone()));
                    self.out.push_back(NotifierOutput::Notify(OutgoingNotify {
                        dialog: rec,
                        subscription_state: state,
                        presence: n.presence.clone(),
                        winfo: None,
                    }));
                }
            }
        }
    }
}
