//! The presentities' pres-rules documents (RFC 5025, evaluated by [`super::presrules`])
//! as the engine applies them: one document per local presentity, handed over by the
//! XCAP service when the presentity writes, deletes or (at start) restores it.
//!
//! Where the rules act (RFC 5025 s3.2.1):
//! - a new subscription or fetch of the presentity ([`PresenceEngine::verdict`]): after
//!   `deny_domains` and a remembered decision, `allow` approves, `block` refuses (403),
//!   `polite-block` approves but the watcher is shown the presentity offline, `confirm`
//!   or no matching rule leaves it to the gateway's policy (under
//!   [`super::Policy::Ask`]: pending, the presentity is asked). This holds under every
//!   policy, as a remembered decision does;
//! - a written document re-evaluates the presentity's current watchers with the effect
//!   path of [`super::decide`]: `allow` and `polite-block` turn a pending watcher active,
//!   `block` ends a pending or active one with `terminated;reason=rejected` (XMPP
//!   `unsubscribed`); a watcher newly polite-blocked gets an offline state, one no
//!   longer polite-blocked the real state (`allow`) or goes back to pending (`confirm`,
//!   no matching rule: it is not silently shown the state it was hidden from). An
//!   active watcher the new document only `confirm`s stays active;
//! - a deleted document takes its rules away with the same re-evaluation (only the
//!   polite-blocked watchers change: back to pending);
//! - a restored document (restart) applies to later subscriptions and to what the
//!   watchers are shown; the current subscriptions kept their state across the restart.
//!
//! Rules and explicit decisions (the admin API): the most recent wins. A decision
//! remembered after the document was written overrides the rules for that watcher; a
//! document written after a decision forgets the remembered decisions about the
//! watchers it decides (`allow`, `block`, `polite-block`).
//!
//! One document per presentity, and at most [`MAX_DOCUMENTS`] in all (503 past it).

use std::collections::HashMap;
use std::time::Instant;

use cpim_core::address::Address;
use cpim_core::model::{Status, TerminationReason};
use cpim_core::presence::Presence;
use cpim_core::StatusCode;

use super::presrules::{PresRules, SubHandling};
use super::{offline, user_key, PresenceEngine, SubState};

/// Most presentities with a rules document.
pub const MAX_DOCUMENTS: usize = 20_000;

/// The documents, by presentity key ([`user_key`]).
#[derive(Debug, Default)]
pub(super) struct RulesTable {
    by_presentity: HashMap<String, PresRules>,
}

impl PresenceEngine {
    /// What the presentity's rules say about `watcher`, unless a remembered decision
    /// (more recent, see the module docs) speaks for it.
    pub fn rules_say(&self, watcher: &Address, presentity: &Address) -> Option<SubHandling> {
        if self.decided(watcher, presentity).is_some() {
            return None;
        }
        self.rules
            .by_presentity
            .get(&user_key(presentity))?
            .sub_handling(watcher)
    }

    /// Number of presentities with a rules document.
    pub fn rules_count(&self) -> usize {
        self.rules.by_presentity.len()
    }

    /// The state of the local `presentity` as `watcher` may see it: offline when
    /// polite-blocked (RFC 5025 s3.2.1), else the published state (or offline).
    pub(super) fn local_view(&self, watcher: &Address, presentity: &Address) -> Presence {
        if self.rules_say(watcher, presentity) == Some(SubHandling::PoliteBlock) {
            return offline(presentity);
        }
        self.pubs
            .get(&user_key(presentity))
            .map(|p| p.presence.clone())
            .unwrap_or_else(|| offline(presentity))
    }

    /// Restores a presentity's document after a restart (no effect on the current
    /// subscriptions, see the module docs); `false` when [`MAX_DOCUMENTS`] are held.
    pub fn restore_rules(&mut self, presentity: &Address, rules: PresRules) -> bool {
        let pk = user_key(presentity);
        if !self.rules.by_presentity.contains_key(&pk)
            && self.rules.by_presentity.len() >= MAX_DOCUMENTS
        {
            return false;
        }
        self.rules.by_presentity.insert(pk, rules);
        true
    }

    /// The presentity wrote (`Some`) or deleted (`None`) its rules document: kept and
    /// applied to its current watchers (see the module docs). 200, or 503 past
    /// [`MAX_DOCUMENTS`].
    pub fn set_rules(
        &mut self,
        now: Instant,
        presentity: &Address,
        rules: Option<PresRules>,
    ) -> Status {
        let pk = user_key(presentity);
        let keys: Vec<String> = self
            .by_presentity
            .get(&pk)
            .into_iter()
            .flatten()
            .filter(|k| self.subs.get(*k).is_some_and(|s| s.remote.is_none()))
            .cloned()
            .collect();
        let before: Vec<Option<SubHandling>> = keys
            .iter()
            .map(|k| self.rules_say(&self.subs[k].watcher, presentity))
            .collect();
        match rules {
            Some(r) => {
                if !self.rules.by_presentity.contains_key(&pk)
                    && self.rules.by_presentity.len() >= MAX_DOCUMENTS
                {
                    return Status::new(
                        StatusCode::SERVICE_UNAVAILABLE,
                        "Service Unavailable: too many rules documents",
                    );
                }
                self.forget_decisions(presentity, |w| {
                    r.sub_handling(w).is_some_and(|h| h != SubHandling::Confirm)
                });
                self.rules.by_presentity.insert(pk, r);
            }
            None => {
                self.rules.by_presentity.remove(&pk);
            }
        }
        for (key, was) in keys.iter().zip(before) {
            let Some(s) = self.subs.get(key) else {
                continue;
            };
            let pending = s.state == SubState::Pending;
            let now_says = self.rules_say(&s.watcher, presentity);
            let was_polite = was == Some(SubHandling::PoliteBlock);
            match now_says {
                Some(SubHandling::Block) => {
                    self.terminate(key, TerminationReason::Rejected, None, false);
                }
                Some(h @ (SubHandling::Allow | SubHandling::PoliteBlock)) => {
                    if pending {
                        self.activate(now, key);
                    } else if was_polite != (h == SubHandling::PoliteBlock) {
                        self.notify_watcher(key, now, true);
                    }
                }
                Some(SubHandling::Confirm) | None => {
                    if was_polite && !pending && self.decided(&s.watcher, presentity).is_none() {
                        if let Some(s) = self.subs.get_mut(key) {
                            s.state = SubState::Pending;
                        }
                        self.save(key);
                        let adapter = self.subs[key].watcher_adapter.clone();
                        if !self.is_roster(&adapter) {
                            self.notify_watcher(key, now, false);
                        }
                    }
                }
            }
        }
        Status::ok()
    }
}

#[cfg(test)]
mod tests;
