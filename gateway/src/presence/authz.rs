//! Who may watch a local presentity ([`Policy`]) and the caps on the engine's standing
//! state.
//!
//! Every subscription and pending fetch is standing state a remote party creates, so
//! both are capped: `max_subscriptions` in total (fetches count against it) and
//! `max_watchers_per_presentity` per presentity; past a cap the answer is 503 (RFC 3261
//! s21.5.4; RFC 7247 s7 maps it onto XMPP `<service-unavailable/>`). A refresh of an
//! existing pair is never refused.

use cpim_core::StatusCode;
use std::collections::HashSet;

use cpim_core::address::Address;
use cpim_core::model::Status;

use super::{sub_key, user_key, Policy, PresenceEngine};

impl PresenceEngine {
    /// True if `watcher` may watch the local `presentity` (`known`: the watcher's domain
    /// is local or routed, for [`Policy::ApproveKnown`]). Domains compare canonically.
    pub(super) fn approves(&self, watcher: &Address, presentity: &Address, known: bool) -> bool {
        let listed = |l: &[String]| {
            l.iter()
                .any(|d| cpim_core::domain::same(d, &watcher.domain))
        };
        if listed(&self.cfg.deny_domains) {
            return false;
        }
        if listed(&self.cfg.allow_domains) {
            return true;
        }
        match self.cfg.policy {
            Policy::ApproveMutual => {
                watcher.domain == presentity.domain
                    || self.subs.contains_key(&sub_key(presentity, watcher))
            }
            Policy::ApproveAll => true,
            Policy::ApproveKnown => known,
            Policy::RejectAll => false,
        }
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
