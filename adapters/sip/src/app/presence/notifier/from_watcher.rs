//! What the SIP watcher sends: a SUBSCRIBE (new, refresh or unsubscribe; RFC 6665
//! s4.2.1, RFC 3856 s6) and the final status of each NOTIFY (RFC 6665 s4.2.2).

use crate::app::store::DialogRole;

use super::{
    event_package, reject, Notifier, NotifierOutput, OutgoingNotify, Phase, Sub, SubscribeDecision,
    SubscribeRequest, PRESENCE_EVENT,
};

impl Notifier {
    /// Handles a SUBSCRIBE. `local_tag` is a fresh tag used if it creates a dialog.
    pub fn handle_subscribe(
        &mut self,
        req: SubscribeRequest,
        local_tag: &str,
        now: u64,
    ) -> SubscribeDecision {
        if event_package(req.event.as_deref()).as_deref() != Some(PRESENCE_EVENT) {
            return reject(489, "Bad Event");
        }
        let expires = match self.granted(req.expires) {
            Ok(e) => e,
            Err(refusal) => return refusal,
        };
        if let Some(tag) = &req.to_tag {
            return self.in_dialog(&req, tag, expires, now);
        }
        let Some(contact) = req.contact.clone() else {
            return reject(400, "Missing Contact");
        };
        let (watcher, presentity) = (req.watcher.clone(), req.presentity.clone());
        let rec = req.dialog(
            DialogRole::Notifier,
            contact,
            local_tag,
            expires,
            now,
            "pending",
        );
        let key = rec.key();
        self.insert_sub(
            key.clone(),
            Sub {
                rec,
                watcher,
                presentity,
                phase: Phase::Proposed,
                last_presence: None,
                last_body_at: None,
                held_until: None,
                early: None,
            },
        );
        SubscribeDecision::Submit {
            key,
            duration: expires,
        }
    }

    fn in_dialog(
        &mut self,
        req: &SubscribeRequest,
        to_tag: &str,
        expires: u32,
        now: u64,
    ) -> SubscribeDecision {
        let key = format!("{}|{}", req.call_id, to_tag);
        let Some(sub) = self.subs.get_mut(&key) else {
            return SubscribeDecision::Reject {
                code: 481,
                reason: "Subscription Does Not Exist",
                min_expires: None,
            };
        };
        if sub.rec.remote_tag.as_deref() != Some(req.from_tag.as_str()) {
            return SubscribeDecision::Reject {
                code: 481,
                reason: "Subscription Does Not Exist",
                min_expires: None,
            };
        }
        if req.cseq <= sub.rec.remote_cseq {
            return SubscribeDecision::Reject {
                code: 500,
                reason: "Out Of Order CSeq",
                min_expires: None,
            };
        }
        sub.rec.remote_cseq = req.cseq;
        if let Some(c) = &req.contact {
            sub.rec.remote_target.clone_from(c);
        }
        if expires == 0 {
            // RFC 6665 s4.2.1.4 unsubscribe: a final NOTIFY, then gone.
            let presence = sub.last_presence.clone();
            self.end(&key, "terminated;reason=timeout".to_owned(), presence, true);
            return SubscribeDecision::Answer { expires: 0 };
        }
        // RFC 6665 s4.2.1.2 refresh: new expiry and a NOTIFY with the current state.
        sub.rec.expires_at = now + u64::from(expires);
        let state = if sub.rec.state == "active" {
            format!("active;expires={expires}")
        } else {
            format!("pending;expires={expires}")
        };
        let presence = sub.last_presence.clone();
        sub.rec.local_cseq += 1;
        let rec = sub.rec.clone();
        self.out.push_back(NotifierOutput::Persist(rec.clone()));
        self.out.push_back(NotifierOutput::Notify(OutgoingNotify {
            dialog: rec,
            subscription_state: state,
            presence,
            winfo: None,
        }));
        SubscribeDecision::Answer { expires }
    }

    /// The final status of a NOTIFY sent in dialog `key`. RFC 6665 s4.2.2: a 481, a
    /// timeout or another failure ends the subscription (the core is told).
    pub fn notify_answered(&mut self, key: &str, code: u16) {
        if self.winfo_notify_answered(key, code) {
            return;
        }
        if (200..300).contains(&code) || matches!(code, 401 | 407 | 491) {
            return;
        }
        if let Some(sub) = self.remove_sub(key) {
            self.out.push_back(NotifierOutput::Forget(key.to_owned()));
            self.out.push_back(NotifierOutput::Unsubscribe {
                watcher: sub.watcher,
                presentity: sub.presentity,
            });
        }
    }
}
