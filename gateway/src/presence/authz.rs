//! Who may watch a local presentity ([`Policy`], the presentity's remembered decisions
//! of [`super::decide`]) and the caps on the engine's standing state.
//!
//! Every subscription and pending fetch is standing state a remote party creates, so
//! both are capped: `max_subscriptions` in total (fetches count against it) and
//! `max_watchers_per_presentity` per presentity; past a cap the answer is 503 (RFC 3261
//! s21.5.4; RFC 7247 s7 maps it onto XMPP `<service-unavailable/>`). Pending watchers
//! (waiting for the presentity's decision) have caps of their own,
//! `max_pending_per_presentity` and `max_pending`, also 503. A refresh of an existing
//! pair is never refused.

use cpim_core::StatusCode;
use std::collections::HashSet;

use cpim_core::address::Address;
use cpim_core::model::Status;

use super::presrules::SubHandling;
use super::{sub_key, user_key, Policy, PresenceEngine, SubState};

/// What the rules say about a new watcher of a local presentity.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Approved now.
    Approve,
    /// Pending until the presentity decides ([`Policy::Ask`]).
    Ask,
    /// Refused (403).
    Refuse,
}

impl PresenceEngine {
    /// What the rules say about `watcher` of the local `presentity` (`known`: the
    /// watcher's domain is local or routed, for [`Policy::ApproveKnown`]). Domains compare
    /// canonically. `deny_domains` wins, then the presentity's own decision, then its
    /// pres-rules document, then `allow_domains`, then the policy.
    pub(super) fn verdict(&self, watcher: &Address, presentity: &Address, known: bool) -> Verdict {
        let listed = |l: &[String]| {
            l.iter()
                .any(|d| cpim_core::domain::same(d, &watcher.domain))
        };
        if listed(&self.cfg.deny_domains) {
            return Verdict::Refuse;
        }
        if let Some(allow) = self.decided(watcher, presentity) {
            return if allow {
                Verdict::Approve
            } else {
                Verdict::Refuse
            };
        }
        // RFC 5025 s3.2.1, see `super::rules`: confirm or no rule falls through.
        match self.rules_say(watcher, presentity) {
            Some(SubHandling::Allow | SubHandling::PoliteBlock) => return Verdict::Approve,
            Some(SubHandling::Block) => return Verdict::Refuse,
            Some(SubHandling::Confirm) | None => {}
        }
        if listed(&self.cfg.allow_domains) {
            return Verdict::Approve;
        }
        let mutual = || {
            cpim_core::domain::same(&watcher.domain, &presentity.domain)
                || self.subs.contains_key(&sub_key(presentity, watcher))
        };
        let yes = |b: bool| if b { Verdict::Approve } else { Verdict::Refuse };
        match self.cfg.policy {
            Policy::Ask if mutual() => Verdict::Approve,
            Policy::Ask => Verdict::Ask,
            Policy::ApproveMutual => yes(mutual()),
            Policy::ApproveAll => Verdict::Approve,
            Policy::ApproveKnown => yes(known),
            Policy::RejectAll => Verdict::Refuse,
        }
    }

    /// 503 if one more pending watcher of `presentity` would exceed a cap
    /// (`max_pending_per_presentity`, `max_pending`).
    pub(super) fn over_pending_cap(&self, presentity: &Address) -> Option<Status> {
        let per = self
            .by_presentity
            .get(&user_key(presentity))
            .map_or(0, |keys| {
                keys.iter()
                    .filter(|k| {
                        self.subs
                            .get(*k)
                            .is_some_and(|s| s.state == SubState::Pending)
                    })
                    .count()
            });
        let refuse = |why: &str| Some(Status::new(StatusCode::SERVICE_UNAVAILABLE, why));
        if per >= self.cfg.max_pending_per_presentity {
            return refuse("Service Unavailable: too many watchers wait for this presentity");
        }
        let all = self
            .subs
            .values()
            .filter(|s| s.remote.is_none() && s.state == SubState::Pending)
            .count();
        if all >= self.cfg.max_pending {
            return refuse("Service Unavailable: too many watchers wait for a decision");
        }
        None
    }

    /// 503 if a new subscription (or fetch) of `presentity` would exceed a cap.
    pub(super) fn over_cap(&self, presentity: &Address) -> Option<Status> {
        if self.subs.len() + self.fetches.len() >= self.cfg.max_subscriptions {
            return Some(Status::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "Service Unavailable: too many subscriptions",
            ));
        }
        let watchers = self
            .by_presentity
            .get(&user_key(presentity))
            .map_or(0, HashSet::len);
        (watchers >= self.cfg.max_watchers_per_presentity).then(|| {
            Status::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "Service Unavailable: too many watchers of this presentity",
            )
        })
    }
}
