//! The gateway's own subscriptions toward SIP presence agents (RFC 6665 s4.1, RFC
//! 3856), for watchers on other protocols (RFC 8048: the gateway owns the refreshes).
//!
//! Sans-IO. One subscription per (watcher, presentity):
//!
//! ```text
//!  subscribe() --> Sent --2xx--> Live --refresh_at--> refresh sent --2xx--> Live
//!                    |             |  \--NOTIFY terminated;reason=deactivated|timeout
//!                    |             |        --> re-SUBSCRIBE (new dialog), core not told
//!                    |             \--NOTIFY terminated (other reasons) --> gone, core told
//!                    \--failure--> gone (the failure is the outcome)
//!  unsubscribe() --> SUBSCRIBE Expires: 0 in dialog --> Ending --NOTIFY terminated--> gone
//! ```
//!
//! NOTIFYs become `Operation::Notify` for the core ([`SubscriberOutput::Notify`]);
//! SUBSCRIBEs to send come out as [`OutgoingSubscribe`].

use std::collections::{HashMap, VecDeque};

use cpim_core::address::Address;
use cpim_core::model::{SubscriptionState, TerminationReason};
use cpim_core::presence::Presence;

use super::super::store::{DialogRecord, DialogRole};
use super::split_params;

/// A SUBSCRIBE to send.
#[derive(Clone, Debug, PartialEq)]
pub struct OutgoingSubscribe {
    /// The dialog (or the dialog-to-be: `remote_tag` `None`), with `local_cseq` already
    /// advanced for this request.
    pub dialog: DialogRecord,
    /// The Expires to send.
    pub expires: u32,
}

/// What the subscriber asks its caller to do.
#[derive(Clone, Debug, PartialEq)]
// Outputs live only between a state change and the outbox; boxing buys nothing.
#[allow(clippy::large_enum_variant)]
pub enum SubscriberOutput {
    /// Send this SUBSCRIBE and report its final response with
    /// [`Subscriber::handle_response`].
    Subscribe(OutgoingSubscribe),
    /// Submit `Operation::Notify` to the core.
    Notify {
        /// The watcher (on another adapter).
        watcher: Address,
        /// The SIP presentity.
        presentity: Address,
        /// The subscription state.
        state: SubscriptionState,
        /// The presence, if the NOTIFY had a body.
        presence: Option<Presence>,
    },
    /// Persist this dialog.
    Persist(DialogRecord),
    /// Remove this dialog from the store.
    Forget(String),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    Sent,
    Live,
    Ending,
}

#[derive(Debug)]
struct Sub {
    rec: DialogRecord,
    watcher: Address,
    presentity: Address,
    requested: u32,
    phase: Phase,
    /// A refresh is in flight.
    refreshing: bool,
    refresh_at: u64,
}

/// A NOTIFY as the subscriber needs it.
#[derive(Clone, Debug, PartialEq)]
pub struct IncomingNotify {
    /// Call-ID.
    pub call_id: String,
    /// To tag (ours).
    pub to_tag: String,
    /// From tag (the notifier's).
    pub from_tag: String,
    /// CSeq.
    pub cseq: u32,
    /// Event header.
    pub event: Option<String>,
    /// Subscription-State header.
    pub subscription_state: Option<String>,
    /// Contact (new remote target), if any.
    pub contact: Option<String>,
    /// The decoded body.
    pub presence: Option<Presence>,
}

/// The gateway's subscriptions, by dialog key (`Call-ID|local tag`).
#[derive(Debug, Default)]
pub struct Subscriber {
    subs: HashMap<String, Sub>,
    out: VecDeque<SubscriberOutput>,
}

/// Refresh when this fraction of the granted time is left (but at least 5 s before).
fn refresh_time(now: u64, granted: u32) -> u64 {
    let g = u64::from(granted);
    now + (g - (g / 10).clamp(5.min(g), g)).max(1)
}

impl Subscriber {
    /// No subscriptions.
    pub fn new() -> Subscriber {
        Subscriber::default()
    }

    /// Loads dialogs read from the store (role subscriber), dropping expired ones; a
    /// restored dialog is refreshed at once if its refresh time has passed.
    pub fn restore(&mut self, records: Vec<DialogRecord>, now: u64) {
        for rec in records {
            if rec.role != DialogRole::Subscriber || rec.expires_at <= now {
                continue;
            }
            let (Ok(watcher), Ok(presentity)) = (
                Address::parse(&rec.watcher),
                Address::parse(&rec.presentity),
            ) else {
                continue;
            };
            let left = u32::try_from(rec.expires_at - now).unwrap_or(u32::MAX);
            self.subs.insert(
                rec.key(),
                Sub {
                    rec,
                    watcher,
                    presentity,
                    requested: left.max(60),
                    phase: Phase::Live,
                    refreshing: false,
                    refresh_at: refresh_time(now, left),
                },
            );
        }
    }

    /// Number of subscriptions.
    pub fn len(&self) -> usize {
        self.subs.len()
    }

    /// True if none.
    pub fn is_empty(&self) -> bool {
        self.subs.is_empty()
    }

    /// The next output.
    pub fn poll_output(&mut self) -> Option<SubscriberOutput> {
        self.out.pop_front()
    }

    /// Puts an output taken with [`Subscriber::poll_output`] back at the end of the queue
    /// (the caller took out one item it handles itself).
    pub fn requeue(&mut self, o: SubscriberOutput) {
        self.out.push_back(o);
    }

    /// Records that the caller used CSeq numbers up to `cseq` in dialog `key` (an
    /// authenticated retry of a challenged SUBSCRIBE).
    pub fn bump_cseq(&mut self, key: &str, cseq: u32) {
        if let Some(s) = self.subs.get_mut(key) {
            s.rec.local_cseq = s.rec.local_cseq.max(cseq);
        }
    }

    /// When [`Subscriber::handle_timeout`] must next be called.
    pub fn poll_timeout(&self) -> Option<u64> {
        self.subs
            .values()
            .filter(|s| s.phase == Phase::Live && !s.refreshing)
            .map(|s| s.refresh_at.min(s.rec.expires_at))
            .min()
    }

    fn find(&self, watcher: &Address, presentity: &Address) -> Option<String> {
        self.subs
            .iter()
            .find(|(_, s)| s.watcher.same_user(watcher) && s.presentity.same_user(presentity))
            .map(|(k, _)| k.clone())
    }

    /// Starts (or, if one exists, refreshes) the subscription of `watcher` to the SIP
    /// `presentity`. `local_uri` is the watcher's SIP form (From), `target_uri` the
    /// presentity's (Request-URI and To). Returns the dialog key; the SUBSCRIBE is in the
    /// output queue.
    #[allow(clippy::too_many_arguments)]
    pub fn subscribe(
        &mut self,
        watcher: Address,
        presentity: Address,
        local_uri: String,
        target_uri: String,
        duration: u32,
        call_id: String,
        local_tag: String,
        now: u64,
    ) -> String {
        if let Some(key) = self.find(&watcher, &presentity) {
            if let Some(s) = self.subs.get_mut(&key) {
                if s.phase == Phase::Live {
                    s.requested = duration;
                    s.refreshing = true;
                    s.rec.local_cseq += 1;
                    self.out
                        .push_back(SubscriberOutput::Subscribe(OutgoingSubscribe {
                            dialog: s.rec.clone(),
                            expires: duration,
                        }));
                    return key;
                }
            }
        }
        let rec = DialogRecord {
            role: DialogRole::Subscriber,
            call_id,
            local_tag,
            remote_tag: None,
            local_uri,
            remote_uri: target_uri.clone(),
            remote_target: target_uri,
            route_set: Vec::new(),
            local_cseq: 1,
            remote_cseq: 0,
            watcher: watcher.to_string(),
            presentity: presentity.to_string(),
            expires_at: now + u64::from(duration) + 32,
            state: "pending".into(),
            flow: None,
        };
        let key = rec.key();
        self.out
            .push_back(SubscriberOutput::Subscribe(OutgoingSubscribe {
                dialog: rec.clone(),
                expires: duration,
            }));
        self.subs.insert(
            key.clone(),
            Sub {
                rec,
                watcher,
                presentity,
                requested: duration,
                phase: Phase::Sent,
                refreshing: false,
                refresh_at: u64::MAX,
            },
        );
        key
    }

    /// Ends the subscription of `watcher` to `presentity`: a SUBSCRIBE with Expires: 0
    /// goes out in dialog. Returns false if there is no such subscription.
    pub fn unsubscribe(&mut self, watcher: &Address, presentity: &Address) -> bool {
        let Some(key) = self.find(watcher, presentity) else {
            return false;
        };
        let Some(s) = self.subs.get_mut(&key) else {
            return false;
        };
        if s.phase == Phase::Sent || s.rec.remote_tag.is_none() {
            // Not confirmed yet: forget it; a late 2xx finds no dialog.
            self.subs.remove(&key);
            self.out.push_back(SubscriberOutput::Forget(key));
            return true;
        }
        s.phase = Phase::Ending;
        s.rec.local_cseq += 1;
        self.out
            .push_back(SubscriberOutput::Subscribe(OutgoingSubscribe {
                dialog: s.rec.clone(),
                expires: 0,
            }));
        true
    }

    /// The final response to a SUBSCRIBE sent in dialog `key`: its status, the To tag,
    /// the Contact, the Record-Route values as received, and the granted Expires.
    /// Returns the status for the core's outcome (the original `deliver` future).
    #[allow(clippy::too_many_arguments)]
    pub fn handle_response(
        &mut self,
        key: &str,
        code: u16,
        to_tag: Option<&str>,
        contact: Option<&str>,
        record_route: &[String],
        expires: Option<u32>,
        now: u64,
    ) -> u16 {
        let Some(s) = self.subs.get_mut(key) else {
            return code;
        };
        let ok = (200..300).contains(&code);
        if s.phase == Phase::Ending {
            if !ok || expires == Some(0) {
                // No final NOTIFY will come (or it does not matter): done.
                self.subs.remove(key);
                self.out.push_back(SubscriberOutput::Forget(key.to_owned()));
            }
            return code;
        }
        if !ok {
            let was_live = s.phase == Phase::Live;
            let sub = self.subs.remove(key);
            self.out.push_back(SubscriberOutput::Forget(key.to_owned()));
            if was_live {
                if let Some(sub) = sub {
                    // A failed refresh ends the subscription for the watcher.
                    self.out.push_back(SubscriberOutput::Notify {
                        watcher: sub.watcher,
                        presentity: sub.presentity,
                        state: SubscriptionState::Terminated(TerminationReason::Other(format!(
                            "refresh failed: {code}"
                        ))),
                        presence: None,
                    });
                }
            }
            return code;
        }
        let granted = expires.unwrap_or(s.requested).min(s.requested.max(1));
        if s.rec.remote_tag.is_none() {
            s.rec.remote_tag = to_tag.map(str::to_owned);
            // RFC 3261 s12.1.2: the UAC's route set is the Record-Route reversed.
            s.rec.route_set = record_route.iter().rev().cloned().collect();
        }
        if let Some(c) = contact {
            s.rec.remote_target = c.to_owned();
        }
        s.refreshing = false;
        if granted == 0 {
            // A fetch: the NOTIFY carries the state and terminates.
            s.phase = Phase::Ending;
            s.rec.expires_at = now + 32;
            return code;
        }
        s.phase = Phase::Live;
        s.rec.expires_at = now + u64::from(granted);
        s.refresh_at = refresh_time(now, granted);
        if code == 202 && s.rec.state != "active" {
            s.rec.state = "pending".into();
        }
        self.out.push_back(SubscriberOutput::Persist(s.rec.clone()));
        code
    }

    /// Handles a NOTIFY; returns the status to answer it with (RFC 6665 s4.1.3).
    pub fn handle_notify(&mut self, n: IncomingNotify, now: u64) -> (u16, &'static str) {
        let key = format!("{}|{}", n.call_id, n.to_tag);
        let Some(s) = self.subs.get_mut(&key) else {
            return (481, "Subscription Does Not Exist");
        };
        let event = n.event.as_deref().map(|e| {
            e.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase()
        });
        if event.as_deref() != Some("presence") {
            return (489, "Bad Event");
        }
        let Some(state_hdr) = n.subscription_state.as_deref() else {
            return (400, "Missing Subscription-State");
        };
        match &s.rec.remote_tag {
            None => s.rec.remote_tag = Some(n.from_tag.clone()),
            Some(t) if *t != n.from_tag => return (481, "Subscription Does Not Exist"),
            Some(_) => {}
        }
        if n.cseq <= s.rec.remote_cseq && s.rec.remote_cseq != 0 {
            return (500, "Out Of Order CSeq");
        }
        s.rec.remote_cseq = n.cseq;
        if let Some(c) = n.contact {
            s.rec.remote_target = c;
        }
        let (state, params) = split_params(state_hdr);
        let param = |name: &str| {
            params
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.as_str())
        };
        match state.as_str() {
            "active" | "pending" => {
                let expires = param("expires").and_then(|e| e.parse::<u32>().ok());
                if let Some(e) = expires {
                    // The notifier may shorten the subscription (s4.1.3).
                    let end = now + u64::from(e);
                    if end < s.rec.expires_at {
                        s.rec.expires_at = end;
                        s.refresh_at = s.refresh_at.min(refresh_time(now, e));
                    }
                }
                s.rec.state = state.clone();
                let core_state = if state == "active" {
                    SubscriptionState::Active {
                        expires: expires.unwrap_or(s.requested),
                    }
                } else {
                    SubscriptionState::Pending
                };
                self.out.push_back(SubscriberOutput::Persist(s.rec.clone()));
                self.out.push_back(SubscriberOutput::Notify {
                    watcher: s.watcher.clone(),
                    presentity: s.presentity.clone(),
                    state: core_state,
                    presence: n.presence,
                });
            }
            "terminated" => {
                let reason = TerminationReason::from_token(param("reason").unwrap_or(""));
                let Some(sub) = self.subs.remove(&key) else {
                    return (200, "OK");
                };
                self.out.push_back(SubscriberOutput::Forget(key.clone()));
                let retry = matches!(
                    reason,
                    TerminationReason::Deactivated | TerminationReason::Timeout
                ) && sub.phase != Phase::Ending;
                if n.presence.is_some() || sub.phase == Phase::Ending && !retry {
                    // The last state (a fetch's answer) still goes to the watcher.
                    if n.presence.is_some() {
                        self.out.push_back(SubscriberOutput::Notify {
                            watcher: sub.watcher.clone(),
                            presentity: sub.presentity.clone(),
                            state: SubscriptionState::Active { expires: 0 },
                            presence: n.presence,
                        });
                    }
                }
                if retry {
                    // RFC 6665 s4.1.3: deactivated/timeout -> subscribe again at once,
                    // invisibly to the watcher (RFC 8048: the gateway owns refreshes).
                    let new_key = self.subscribe(
                        sub.watcher,
                        sub.presentity,
                        sub.rec.local_uri,
                        sub.rec.remote_uri.clone(),
                        sub.requested,
                        format!("{}-r{}", sub.rec.call_id, n.cseq),
                        sub.rec.local_tag,
                        now,
                    );
                    let _ = new_key;
                } else if sub.phase != Phase::Ending {
                    self.out.push_back(SubscriberOutput::Notify {
                        watcher: sub.watcher,
                        presentity: sub.presentity,
                        state: SubscriptionState::Terminated(reason),
                        presence: None,
                    });
                }
            }
            _ => return (400, "Bad Subscription-State"),
        }
        (200, "OK")
    }

    /// Advances time: due refreshes go out; a subscription whose expiry passed without a
    /// successful refresh ends (the core hears `terminated;reason=timeout`).
    pub fn handle_timeout(&mut self, now: u64) {
        let mut ended = Vec::new();
        for (key, s) in &mut self.subs {
            if s.rec.expires_at <= now {
                ended.push(key.clone());
            } else if s.phase == Phase::Live && !s.refreshing && s.refresh_at <= now {
                s.refreshing = true;
                s.rec.local_cseq += 1;
                self.out
                    .push_back(SubscriberOutput::Subscribe(OutgoingSubscribe {
                        dialog: s.rec.clone(),
                        expires: s.requested,
                    }));
            }
        }
        for key in ended {
            if let Some(s) = self.subs.remove(&key) {
                self.out.push_back(SubscriberOutput::Forget(key));
                if s.phase != Phase::Ending {
                    self.out.push_back(SubscriberOutput::Notify {
                        watcher: s.watcher,
                        presentity: s.presentity,
                        state: SubscriptionState::Terminated(TerminationReason::Timeout),
                        presence: None,
                    });
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(s: &str) -> Address {
        Address::parse(s).unwrap()
    }

    fn drain(s: &mut Subscriber) -> Vec<SubscriberOutput> {
        std::iter::from_fn(|| s.poll_output()).collect()
    }

    fn start(s: &mut Subscriber, now: u64) -> String {
        s.subscribe(
            addr("juliet@xmpp.test"),
            addr("sip:romeo@kamailio.test"),
            "sip:juliet@xmpp.test".into(),
            "sip:romeo@kamailio.test".into(),
            600,
            "cid".into(),
            "lt".into(),
            now,
        )
    }

    fn notify(state: &str, cseq: u32) -> IncomingNotify {
        IncomingNotify {
            call_id: "cid".into(),
            to_tag: "lt".into(),
            from_tag: "rt".into(),
            cseq,
            event: Some("presence".into()),
            subscription_state: Some(state.into()),
            contact: None,
            presence: Some(Presence::default()),
        }
    }

    fn subscribes(out: &[SubscriberOutput]) -> Vec<&OutgoingSubscribe> {
        out.iter()
            .filter_map(|o| match o {
                SubscriberOutput::Subscribe(s) => Some(s),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn subscribe_confirm_notify_refresh_in_virtual_time() {
        let mut s = Subscriber::new();
        let key = start(&mut s, 0);
        let out = drain(&mut s);
        assert_eq!(subscribes(&out)[0].expires, 600);
        assert_eq!(subscribes(&out)[0].dialog.local_cseq, 1);
        let rr = vec!["<sip:p1;lr>".to_owned(), "<sip:p2;lr>".to_owned()];
        assert_eq!(
            s.handle_response(
                &key,
                200,
                Some("rt"),
                Some("sip:romeo@192.0.2.5"),
                &rr,
                Some(300),
                0
            ),
            200
        );
        drain(&mut s);
        assert_eq!(
            s.handle_notify(notify("active;expires=300", 1), 1),
            (200, "OK")
        );
        let out = drain(&mut s);
        assert!(out.iter().any(|o| matches!(
            o,
            SubscriberOutput::Notify {
                state: SubscriptionState::Active { expires: 300 },
                presence: Some(_),
                ..
            }
        )));
        // Refresh before expiry.
        let due = s.poll_timeout().unwrap();
        assert!((200..300).contains(&due), "{due}");
        s.handle_timeout(due);
        let out = drain(&mut s);
        let sub = subscribes(&out);
        assert_eq!(sub.len(), 1);
        assert_eq!(sub[0].dialog.local_cseq, 2);
        assert_eq!(sub[0].dialog.remote_tag.as_deref(), Some("rt"));
        assert_eq!(sub[0].dialog.remote_target, "sip:romeo@192.0.2.5");
        assert_eq!(
            sub[0].dialog.route_set,
            vec!["<sip:p2;lr>".to_owned(), "<sip:p1;lr>".to_owned()]
        );
        s.handle_response(&key, 200, Some("rt"), None, &[], Some(600), due);
        assert!(s.poll_timeout().unwrap() > 300);
    }

    #[test]
    fn failure_is_outcome_and_unknown_notify_is_481() {
        let mut s = Subscriber::new();
        let key = start(&mut s, 0);
        assert_eq!(s.handle_response(&key, 404, None, None, &[], None, 0), 404);
        assert!(s.is_empty());
        assert_eq!(s.handle_notify(notify("active", 1), 0).0, 481);
    }

    #[test]
    fn deactivated_resubscribes_rejected_tells_core() {
        let mut s = Subscriber::new();
        let key = start(&mut s, 0);
        s.handle_response(&key, 200, Some("rt"), None, &[], Some(600), 0);
        drain(&mut s);
        let mut n = notify("terminated;reason=deactivated", 2);
        n.presence = None;
        assert_eq!(s.handle_notify(n, 5).0, 200);
        let out = drain(&mut s);
        assert_eq!(subscribes(&out).len(), 1, "re-SUBSCRIBE");
        assert!(subscribes(&out)[0].dialog.remote_tag.is_none());
        assert!(!out
            .iter()
            .any(|o| matches!(o, SubscriberOutput::Notify { .. })));
        assert_eq!(s.len(), 1);

        let mut s = Subscriber::new();
        let key = start(&mut s, 0);
        s.handle_response(&key, 200, Some("rt"), None, &[], Some(600), 0);
        drain(&mut s);
        let mut n = notify("terminated;reason=rejected", 2);
        n.presence = None;
        s.handle_notify(n, 5);
        let out = drain(&mut s);
        assert!(out.iter().any(|o| matches!(
            o,
            SubscriberOutput::Notify {
                state: SubscriptionState::Terminated(TerminationReason::Rejected),
                ..
            }
        )));
        assert!(s.is_empty());
    }

    #[test]
    fn unsubscribe_sends_expires_zero_in_dialog() {
        let mut s = Subscriber::new();
        let key = start(&mut s, 0);
        s.handle_response(&key, 200, Some("rt"), None, &[], Some(600), 0);
        drain(&mut s);
        assert!(s.unsubscribe(&addr("juliet@xmpp.test"), &addr("sip:romeo@kamailio.test")));
        let out = drain(&mut s);
        let sub = subscribes(&out);
        assert_eq!(sub[0].expires, 0);
        assert_eq!(sub[0].dialog.local_cseq, 2);
        let mut n = notify("terminated;reason=timeout", 3);
        n.presence = None;
        s.handle_notify(n, 1);
        assert!(s.is_empty());
        let out = drain(&mut s);
        assert!(
            subscribes(&out).is_empty(),
            "no re-SUBSCRIBE after unsubscribe"
        );
        assert!(!s.unsubscribe(&addr("juliet@xmpp.test"), &addr("sip:romeo@kamailio.test")));
    }

    #[test]
    fn notify_before_response_and_expiry_without_refresh() {
        let mut s = Subscriber::new();
        let key = start(&mut s, 0);
        drain(&mut s);
        // NOTIFY races ahead of the 200.
        assert_eq!(s.handle_notify(notify("pending", 1), 0).0, 200);
        s.handle_response(&key, 202, Some("rt"), None, &[], Some(100), 0);
        drain(&mut s);
        // The refresh never gets answered.
        s.handle_timeout(95);
        drain(&mut s);
        s.handle_timeout(100);
        let out = drain(&mut s);
        assert!(out.iter().any(|o| matches!(
            o,
            SubscriberOutput::Notify {
                state: SubscriptionState::Terminated(TerminationReason::Timeout),
                ..
            }
        )));
        assert!(s.is_empty());
    }

    #[test]
    fn notify_checks() {
        let mut s = Subscriber::new();
        let key = start(&mut s, 0);
        s.handle_response(&key, 200, Some("rt"), None, &[], Some(600), 0);
        let mut n = notify("active", 1);
        n.event = Some("dialog".into());
        assert_eq!(s.handle_notify(n, 0).0, 489);
        let mut n = notify("active", 1);
        n.subscription_state = None;
        assert_eq!(s.handle_notify(n, 0).0, 400);
        let mut n = notify("active", 1);
        n.from_tag = "other".into();
        assert_eq!(s.handle_notify(n, 0).0, 481);
        assert_eq!(s.handle_notify(notify("active", 5), 0).0, 200);
        assert_eq!(s.handle_notify(notify("active", 4), 0).0, 500);
        assert_eq!(s.handle_notify(notify("weird", 6), 0).0, 400);
    }

    #[test]
    fn restore_and_refresh_at_once() {
        let mut s = Subscriber::new();
        let key = start(&mut s, 0);
        s.handle_response(&key, 200, Some("rt"), None, &[], Some(600), 0);
        let recs: Vec<_> = drain(&mut s)
            .into_iter()
            .filter_map(|o| match o {
                SubscriberOutput::Persist(r) => Some(r),
                _ => None,
            })
            .collect();
        let mut s2 = Subscriber::new();
        s2.restore(recs, 590);
        assert_eq!(s2.len(), 1);
        s2.handle_timeout(s2.poll_timeout().unwrap());
        let out = drain(&mut s2);
        assert_eq!(subscribes(&out).len(), 1);
        assert_eq!(subscribes(&out)[0].dialog.local_cseq, 2);
    }
}
