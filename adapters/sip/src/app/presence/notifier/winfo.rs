//! The `presence.winfo` event package (RFC 3857) for the gateway's SIP users: a user
//! subscribes to the list of its own watchers and gets `application/watcherinfo+xml`
//! NOTIFYs (RFC 3858).
//!
//! - Authorization (RFC 3857 s4.6, s6): only the presentity itself may subscribe to its
//!   watcher information (the SUBSCRIBE's authenticated From is the same user as the
//!   resource); any other subscriber gets 403.
//! - The documents come from the core ([`cpim_core::adapter::Ingress::watcher_info`]);
//!   every NOTIFY carries the full state (RFC 3858 s4 allows full state at any time),
//!   its `version` counting the documents of the subscription from 0 (kept with the
//!   dialog's CSeq: the NOTIFY with CSeq `n` carries version `n - 1`, so it keeps
//!   counting after a restart).
//! - Changes: the tokio layer polls the documents of the live subscriptions
//!   ([`Notifier::winfo_watched`]) once a second and hands them to
//!   [`Notifier::winfo_update`], which notifies only when the watcher list changed (a
//!   watcher subscribed, was decided, or left, RFC 3857 s4.7.1 events).
//! - Lifetime (RFC 6665 s4.2): refresh with a NOTIFY of the current state, `Expires: 0`
//!   ends with `terminated;reason=timeout`, expiry too; a fetch (`Expires: 0` outside a
//!   dialog) gets one final NOTIFY. Dialogs are persisted with the role
//!   [`DialogRole::WinfoNotifier`] and restored like the presence dialogs.

use std::collections::HashMap;

use cpim_core::address::Address;
use cpim_core::watcherinfo::{self, WatcherInfo, WatcherList};

use crate::app::store::{DialogRecord, DialogRole};

use super::SubscribeRequest;
use super::{event_package, reject, Notifier, NotifierOutput, OutgoingNotify, SubscribeDecision};

/// The watcher information event package (RFC 3857 s4.1): the template package
/// `winfo` applied to `presence`.
pub const WINFO_EVENT: &str = "presence.winfo";

/// True if an Event header names `presence.winfo`.
pub fn is_winfo(event: Option<&str>) -> bool {
    event_package(event).as_deref() == Some(WINFO_EVENT)
}

/// The `presence.winfo` subscriptions, by dialog key.
#[derive(Debug, Default)]
pub(super) struct WinfoSubs {
    subs: HashMap<String, WinfoSub>,
}

impl WinfoSubs {
    /// Number of subscriptions.
    pub(super) fn len(&self) -> usize {
        self.subs.len()
    }
}

#[derive(Debug)]
struct WinfoSub {
    rec: DialogRecord,
    presentity: Address,
    /// The watcher lists last sent (`None`: none since start).
    last: Option<Vec<WatcherList>>,
}

impl Notifier {
    /// Handles a `presence.winfo` SUBSCRIBE (`local_tag`: a fresh tag for a new dialog;
    /// `doc`: the core's current watcher information of the presentity, `None` when it
    /// keeps none). A new dialog is answered by [`SubscribeDecision::Answer`] too (with
    /// `local_tag` as the To tag); its first NOTIFY is in the output queue.
    pub fn handle_winfo_subscribe(
        &mut self,
        req: SubscribeRequest,
        local_tag: &str,
        now: u64,
        doc: Option<WatcherInfo>,
    ) -> SubscribeDecision {
        let expires = match self.granted(req.expires) {
            Ok(e) => e,
            Err(refusal) => return refusal,
        };
        if let Some(tag) = &req.to_tag {
            return self.winfo_in_dialog(&req, tag, expires, now, doc);
        }
        // RFC 3857 s4.6: by default only the presentity watches its watchers.
        if !req.watcher.same_user(&req.presentity) {
            return reject(403, "Forbidden: only the presentity may see its watchers");
        }
        let Some(doc) = doc else {
            return reject(404, "Not Found: no watcher information for this resource");
        };
        let Some(contact) = req.contact.clone() else {
            return reject(400, "Missing Contact");
        };
        let presentity = req.presentity.clone();
        let rec = req.dialog(
            DialogRole::WinfoNotifier,
            contact,
            local_tag,
            expires,
            now,
            "active",
        );
        let key = rec.key();
        let mut sub = WinfoSub {
            rec,
            presentity,
            last: None,
        };
        if expires == 0 {
            // A fetch (RFC 6665 s4.4.3): one final NOTIFY, no state kept.
            let n = winfo_notify(&mut sub, "terminated;reason=timeout".into(), &doc);
            self.out.push_back(NotifierOutput::Notify(n));
            return SubscribeDecision::Answer { expires: 0 };
        }
        let n = winfo_notify(&mut sub, format!("active;expires={expires}"), &doc);
        self.out.push_back(NotifierOutput::Persist(sub.rec.clone()));
        self.out.push_back(NotifierOutput::Notify(n));
        self.winfo.subs.insert(key, sub);
        SubscribeDecision::Answer { expires }
    }

    fn winfo_in_dialog(
        &mut self,
        req: &SubscribeRequest,
        to_tag: &str,
        expires: u32,
        now: u64,
        doc: Option<WatcherInfo>,
    ) -> SubscribeDecision {
        let key = format!("{}|{}", req.call_id, to_tag);
        let Some(sub) = self.winfo.subs.get_mut(&key) else {
            return reject(481, "Subscription Does Not Exist");
        };
        if sub.rec.remote_tag.as_deref() != Some(req.from_tag.as_str()) {
            return reject(481, "Subscription Does Not Exist");
        }
        if req.cseq <= sub.rec.remote_cseq {
            return reject(500, "Out Of Order CSeq");
        }
        sub.rec.remote_cseq = req.cseq;
        if let Some(c) = &req.contact {
            sub.rec.remote_target.clone_from(c);
        }
        if expires == 0 {
            // RFC 6665 s4.2.1.4: a final NOTIFY, then gone.
            self.winfo_end(&key, doc.as_ref());
            return SubscribeDecision::Answer { expires: 0 };
        }
        // RFC 6665 s4.2.1.2: new expiry and a NOTIFY with the current state.
        sub.rec.expires_at = now + u64::from(expires);
        let state = format!("active;expires={expires}");
        let n = match &doc {
            Some(d) => winfo_notify(sub, state, d),
            None => bare_notify(sub, state),
        };
        self.out.push_back(NotifierOutput::Persist(sub.rec.clone()));
        self.out.push_back(NotifierOutput::Notify(n));
        SubscribeDecision::Answer { expires }
    }

    /// Sends the final NOTIFY (`terminated;reason=timeout`, with `doc` or the last
    /// document) and forgets the subscription.
    fn winfo_end(&mut self, key: &str, doc: Option<&WatcherInfo>) {
        let Some(mut sub) = self.winfo.subs.remove(key) else {
            return;
        };
        sub.rec.state = "terminated".into();
        let state = "terminated;reason=timeout".to_owned();
        let last = sub.last.clone().map(|lists| WatcherInfo {
            version: 0,
            state: watcherinfo::DocState::Full,
            lists,
            extensions: Vec::new(),
        });
        let n = match doc.or(last.as_ref()) {
            Some(d) => winfo_notify(&mut sub, state, d),
            None => bare_notify(&mut sub, state),
        };
        self.out.push_back(NotifierOutput::Notify(n));
        self.out.push_back(NotifierOutput::Forget(key.to_owned()));
    }

    /// The live `presence.winfo` subscriptions: (dialog key, presentity), for the tokio
    /// layer to fetch each presentity's current watcher information.
    pub fn winfo_watched(&self) -> Vec<(String, Address)> {
        self.winfo
            .subs
            .iter()
            .map(|(k, s)| (k.clone(), s.presentity.clone()))
            .collect()
    }

    /// The current watcher information of subscription `key`: a NOTIFY when its watcher
    /// lists differ from the last ones sent.
    pub fn winfo_update(&mut self, key: &str, doc: &WatcherInfo, now: u64) {
        let Some(sub) = self.winfo.subs.get_mut(key) else {
            return;
        };
        if sub.rec.expires_at <= now || sub.last.as_ref() == Some(&doc.lists) {
            return;
        }
        let left = sub.rec.expires_at - now;
        let n = winfo_notify(sub, format!("active;expires={left}"), doc);
        self.out.push_back(NotifierOutput::Persist(sub.rec.clone()));
        self.out.push_back(NotifierOutput::Notify(n));
    }

    /// Ends the `presence.winfo` subscriptions expired at `now` (RFC 6665 s4.2.2).
    pub(super) fn winfo_timeout(&mut self, now: u64) {
        let due: Vec<String> = self
            .winfo
            .subs
            .iter()
            .filter(|(_, s)| s.rec.expires_at <= now)
            .map(|(k, _)| k.clone())
            .collect();
        for key in due {
            self.winfo_end(&key, None);
        }
    }

    /// The earliest expiry of a `presence.winfo` subscription.
    pub(super) fn winfo_next_expiry(&self) -> Option<u64> {
        self.winfo.subs.values().map(|s| s.rec.expires_at).min()
    }

    /// The final status of a NOTIFY of a `presence.winfo` dialog; false if `key` is not
    /// one. A failure other than 401/407/491 ends the subscription (RFC 6665 s4.2.2).
    pub(super) fn winfo_notify_answered(&mut self, key: &str, code: u16) -> bool {
        if !self.winfo.subs.contains_key(key) {
            return false;
        }
        if !((200..300).contains(&code) || matches!(code, 401 | 407 | 491)) {
            self.winfo.subs.remove(key);
            self.out.push_back(NotifierOutput::Forget(key.to_owned()));
        }
        true
    }

    /// Loads the `presence.winfo` dialogs read from the store, dropping expired ones; the
    /// first poll re-sends each one's state.
    pub(super) fn winfo_restore(&mut self, records: &[DialogRecord], now: u64) {
        for rec in records {
            if rec.role != DialogRole::WinfoNotifier || rec.expires_at <= now {
                continue;
            }
            let Ok(presentity) = Address::parse(&rec.presentity) else {
                continue;
            };
            self.winfo.subs.insert(
                rec.key(),
                WinfoSub {
                    rec: rec.clone(),
                    presentity,
                    last: None,
                },
            );
        }
    }

    /// (presentity, flow) of each `presence.winfo` subscription, for the caps.
    pub(super) fn winfo_presentities_and_flows(
        &self,
    ) -> impl Iterator<Item = (&Address, Option<&str>)> {
        self.winfo
            .subs
            .values()
            .map(|s| (&s.presentity, s.rec.flow.as_deref()))
    }
}

/// The next NOTIFY of `sub` carrying `doc` as the subscription's next version.
fn winfo_notify(sub: &mut WinfoSub, state: String, doc: &WatcherInfo) -> OutgoingNotify {
    sub.rec.local_cseq += 1;
    let mut d = doc.clone();
    d.version = u64::from(sub.rec.local_cseq - 1);
    d.state = watcherinfo::DocState::Full;
    sub.last = Some(doc.lists.clone());
    let body = match watcherinfo::encode(&d) {
        Ok(xml) => Some(xml),
        Err(e) => {
            tracing::warn!(error = %e, "watcherinfo encoding failed; NOTIFY without body");
            None
        }
    };
    OutgoingNotify {
        dialog: sub.rec.clone(),
        subscription_state: state,
        presence: None,
        winfo: Some(body.unwrap_or_default()),
    }
}

/// A `presence.winfo` NOTIFY without a document.
fn bare_notify(sub: &mut WinfoSub, state: String) -> OutgoingNotify {
    sub.rec.local_cseq += 1;
    OutgoingNotify {
        dialog: sub.rec.clone(),
        subscription_state: state,
        presence: None,
        winfo: Some(String::new()),
    }
}
