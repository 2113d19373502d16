//! SUBSCRIBE to `presence.winfo` (RFC 3857): a SIP user subscribes to the list of its own
//! watchers. The sans-IO part (authorization, dialogs, versions) is
//! [`crate::app::presence::notifier`]'s `winfo` submodule; here the documents are fetched
//! from the core ([`cpim_core::adapter::Ingress::watcher_info`]), for the SUBSCRIBE and
//! once a second for each live subscription ([`Tu::winfo_poll`]), so that a watcher that
//! subscribes, is decided or leaves reaches the user within a second.

use std::sync::Arc;

use crate::codec::Request;

use super::super::presence::notifier::{SubscribeDecision, SubscribeRequest};
use super::super::tu::{Reply, Tu};
use super::subscribe::refusal;

/// The event packages the gateway's SUBSCRIBE handling serves (Allow-Events, RFC 6665
/// s8.2.2).
pub(in crate::app) const ALLOW_EVENTS: &str = "presence, presence.winfo";

impl Tu {
    /// A `presence.winfo` SUBSCRIBE, authenticated already.
    pub(in crate::app) fn on_winfo_subscribe(
        self: &Arc<Self>,
        req: &Request,
        sreq: SubscribeRequest,
        local_tag: &str,
        now: u64,
    ) -> Reply {
        let doc = self.ingress.watcher_info(&sreq.presentity);
        let new = sreq.to_tag.is_none();
        let decision = self
            .lock()
            .notifier
            .handle_winfo_subscribe(sreq, local_tag, now, doc);
        match decision {
            SubscribeDecision::Reject {
                code,
                reason,
                min_expires,
            } => refusal(req, code, reason, min_expires),
            SubscribeDecision::Answer { expires }
            | SubscribeDecision::Submit {
                duration: expires, ..
            } => self.subscribe_ok(req, 200, expires, new.then_some(local_tag)),
        }
    }

    /// Hands the current watcher information of each live `presence.winfo`
    /// subscription to the notifier, which notifies the changed ones.
    pub(in crate::app) fn winfo_poll(self: &Arc<Self>, now: u64) {
        let watched = self.lock().notifier.winfo_watched();
        for (key, presentity) in watched {
            if let Some(doc) = self.ingress.watcher_info(&presentity) {
                self.lock().notifier.winfo_update(&key, &doc, now);
            }
        }
    }
}
