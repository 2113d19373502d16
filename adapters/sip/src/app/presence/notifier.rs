//! The notifier for SIP watchers (RFC 6665 s4.2 with the presence package, RFC 3856):
//! a SIP UA subscribes to a presentity the gateway reaches through another adapter.
//!
//! Sans-IO. The tokio layer parses a SUBSCRIBE into a [`SubscribeRequest`] and calls
//! [`Notifier::handle_subscribe`]. The state machine of one subscription:
//!
//! ```text
//!  SUBSCRIBE (new) --> Proposed --core accepts--> Pending/Active --expiry--> gone
//!        |                  \--core refuses--> gone (the outcome's code)      ^
//!        |                                                                    |
//!        +-- Expires: 0 --> Fetch --core Notify or fetch_wait--> one NOTIFY --+
//!  in-dialog SUBSCRIBE: Expires > 0 refreshes, Expires: 0 ends (NOTIFY terminated)
//!  core Notify: NOTIFY with the mapped Subscription-State (terminated ends it)
//!  NOTIFY answered 481/408 or any final failure but 401/407/491: gone
//! ```
//!
//! Outputs ([`Notifier::poll_output`]): NOTIFYs to send, operations for the core
//! (unsubscribe when the watcher leaves or the subscription expires), and dialogs to
//! persist or forget. Refreshes are absorbed here: the core hears of a subscription
//! once and of its end once.

use std::collections::{HashMap, VecDeque};

use cpim_core::address::Address;
use cpim_core::model::{Notify, SubscriptionState, TerminationReason};
use cpim_core::presence::Presence;

use super::super::config::ExpiryLimits;
use super::super::store::{DialogRecord, DialogRole};

/// A SUBSCRIBE as the notifier needs it.
#[derive(Clone, Debug, PartialEq)]
pub struct SubscribeRequest {
    /// Call-ID.
    pub call_id: String,
    /// The watcher's URI (From, without tag).
    pub from_uri: String,
    /// From tag.
    pub from_tag: String,
    /// The presentity's URI (To, without tag).
    pub to_uri: String,
    /// To tag: `Some` for an in-dialog SUBSCRIBE.
    pub to_tag: Option<String>,
    /// Event header (package name and parameters).
    pub event: Option<String>,
    /// Expires header.
    pub expires: Option<u32>,
    /// CSeq number.
    pub cseq: u32,
    /// Contact URI (the remote target).
    pub contact: Option<String>,
    /// Record-Route values in the order received (the notifier keeps them as they are,
    /// RFC 3261 s12.1.1).
    pub record_route: Vec<String>,
    /// The flow it arrived over.
    pub flow: Option<String>,
    /// The watcher as an abstract address.
    pub watcher: Address,
    /// The presentity as an abstract address.
    pub presentity: Address,
}

/// What to do with a SUBSCRIBE.
#[derive(Clone, Debug, PartialEq)]
pub enum SubscribeDecision {
    /// Answer with this status at once (`min_expires` for 423, `allow_events` for 489).
    Reject {
        /// Status code.
        code: u16,
        /// Reason phrase.
        reason: &'static str,
        /// Min-Expires for a 423.
        min_expires: Option<u32>,
    },
    /// A new subscription (or fetch when `duration` is 0): submit `Operation::Subscribe`
    /// for it, then call [`Notifier::core_answered`] with the outcome's code.
    Submit {
        /// The dialog key.
        key: String,
        /// The granted duration.
        duration: u32,
    },
    /// An in-dialog refresh or unsubscribe, already applied: answer 200 with this
    /// Expires; a NOTIFY is in the output queue.
    Answer {
        /// Expires for the 200.
        expires: u32,
    },
}

/// One NOTIFY to send.
#[derive(Clone, Debug, PartialEq)]
pub struct OutgoingNotify {
    /// The dialog, with `local_cseq` already advanced for this NOTIFY.
    pub dialog: DialogRecord,
    /// The Subscription-State header value.
    pub subscription_state: String,
    /// The presence to encode as the body; `None` sends no body.
    pub presence: Option<Presence>,
}

/// What the notifier asks its caller to do.
#[derive(Clone, Debug, PartialEq)]
// Outputs live only between a state change and the outbox; boxing buys nothing.
#[allow(clippy::large_enum_variant)]
pub enum NotifierOutput {
    /// Send a NOTIFY; report its final status with [`Notifier::notify_answered`].
    Notify(OutgoingNotify),
    /// Tell the core the watcher no longer watches (`Operation::Unsubscribe`).
    Unsubscribe {
        /// The watcher.
        watcher: Address,
        /// The presentity.
        presentity: Address,
    },
    /// Persist this dialog.
    Persist(DialogRecord),
    /// Remove this dialog from the store.
    Forget(String),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    /// Waiting for the core to accept.
    Proposed,
    /// A fetch accepted; waiting for the state until the deadline.
    Fetch { deadline: u64 },
    /// Established.
    Live,
}

#[derive(Debug)]
struct Sub {
    rec: DialogRecord,
    watcher: Address,
    presentity: Address,
    phase: Phase,
    last_presence: Option<Presence>,
    /// When the last NOTIFY with a body went out (rate limit, RFC 3856 s6.4).
    last_body_at: Option<u64>,
    /// A state change held back by the rate limit: send the latest state at this time.
    held_until: Option<u64>,
    /// The core's latest Notify while the subscription was still `Proposed` (the
    /// presentity's side answered before the core's outcome reached us): applied right
    /// after the SUBSCRIBE's 2xx, so it is neither lost nor answered 481.
    early: Option<Notify>,
}

/// The notifier's subscriptions, by dialog key (`Call-ID|local tag`).
#[derive(Debug)]
pub struct Notifier {
    limits: ExpiryLimits,
    fetch_wait: u64,
    min_interval: u64,
    subs: HashMap<String, Sub>,
    /// Subscription keys by (watcher, presentity) user: a core Notify names a pair, and
    /// finding its dialogs must not scan every subscription (P3 fan-out did that).
    by_pair: HashMap<u64, Vec<String>>,
    out: VecDeque<NotifierOutput>,
}

/// The index key of a (watcher, presentity) pair ([`Address::same_user`] on both).
fn pair_hash(watcher: &Address, presentity: &Address) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    (
        &watcher.user,
        &watcher.domain,
        &presentity.user,
        &presentity.domain,
    )
        .hash(&mut h);
    h.finish()
}

/// The presence event package name (RFC 3856 s6.2).
pub const PRESENCE_EVENT: &str = "presence";

fn event_package(event: Option<&str>) -> Option<String> {
    let e = event?;
    let name = e.split(';').next().unwrap_or("").trim();
    (!name.is_empty()).then(|| name.to_ascii_lowercase())
}

/// Formats a Subscription-State value (RFC 6665 s8.2.3).
pub fn subscription_state_header(state: &SubscriptionState) -> String {
    match state {
        SubscriptionState::Pending => "pending".to_owned(),
        SubscriptionState::Active { expires } => format!("active;expires={expires}"),
        SubscriptionState::Terminated(r) => format!("terminated;reason={}", reason_token(r)),
    }
}

/// The RFC 6665 s4.1.3 reason token.
pub fn reason_token(r: &TerminationReason) -> &str {
    match r {
        TerminationReason::Deactivated => "deactivated",
        TerminationReason::Probation => "probation",
        TerminationReason::Rejected => "rejected",
        TerminationReason::Timeout => "timeout",
        TerminationReason::Giveup => "giveup",
        TerminationReason::NoResource => "noresource",
        TerminationReason::Invariant => "invariant",
        TerminationReason::Other(s) => s,
    }
}

impl Notifier {
    /// A notifier with these expiry limits; a fetch waits `fetch_wait` seconds for the
    /// presentity's state.
    pub fn new(limits: ExpiryLimits, fetch_wait: u32) -> Notifier {
        Notifier {
            limits,
            fetch_wait: u64::from(fetch_wait),
            min_interval: 0,
            subs: HashMap::new(),
            by_pair: HashMap::new(),
            out: VecDeque::new(),
        }
    }

    fn insert_sub(&mut self, key: String, sub: Sub) {
        self.remove_sub(&key);
        self.by_pair
            .entry(pair_hash(&sub.watcher, &sub.presentity))
            .or_default()
            .push(key.clone());
        self.subs.insert(key, sub);
    }

    fn remove_sub(&mut self, key: &str) -> Option<Sub> {
        let sub = self.subs.remove(key)?;
        let h = pair_hash(&sub.watcher, &sub.presentity);
        if let Some(keys) = self.by_pair.get_mut(&h) {
            keys.retain(|k| k != key);
            if keys.is_empty() {
                self.by_pair.remove(&h);
            }
        }
        Some(sub)
    }

    /// Loads dialogs read from the store (role notifier), dropping expired ones.
    pub fn restore(&mut self, records: Vec<DialogRecord>, now: u64) {
        for rec in records {
            if rec.role != DialogRole::Notifier || rec.expires_at <= now {
                continue;
            }
            let (Ok(watcher), Ok(presentity)) = (
                Address::parse(&rec.watcher),
                Address::parse(&rec.presentity),
            ) else {
                continue;
            };
            self.insert_sub(
                rec.key(),
                Sub {
                    rec,
                    watcher,
                    presentity,
                    phase: Phase::Live,
                    last_presence: None,
                    last_body_at: None,
                    held_until: None,
                    early: None,
                },
            );
        }
    }

    /// RFC 3856 s6.4: at most one NOTIFY with a state change per `seconds` per
    /// subscription; changes in between are coalesced and the latest goes out when the
    /// interval ends. 0 (the default of [`Notifier::new`]) disables the limit.
    pub fn with_min_interval(mut self, seconds: u32) -> Notifier {
        self.min_interval = u64::from(seconds);
        self
    }

    /// Number of subscriptions (any phase).
    pub fn len(&self) -> usize {
        self.subs.len()
    }

    /// The (presentity, flow) of every subscription, for the caps of [`crate::app::limits`].
    pub fn presentities_and_flows(&self) -> impl Iterator<Item = (&Address, Option<&str>)> {
        self.subs
            .values()
            .map(|s| (&s.presentity, s.rec.flow.as_deref()))
    }

    /// True if there are none.
    pub fn is_empty(&self) -> bool {
        self.subs.is_empty()
    }

    /// The next output, if any.
    pub fn poll_output(&mut self) -> Option<NotifierOutput> {
        self.out.pop_front()
    }

    /// When [`Notifier::handle_timeout`] must next be called.
    pub fn poll_timeout(&self) -> Option<u64> {
        self.subs
            .values()
            .map(|s| match s.phase {
                Phase::Fetch { deadline } => deadline,
                _ => s
                    .held_until
                    .map_or(s.rec.expires_at, |h| h.min(s.rec.expires_at)),
            })
            .min()
    }

    /// Handles a SUBSCRIBE. `local_tag` is a fresh tag used if it creates a dialog.
    pub fn handle_subscribe(
        &mut self,
        req: SubscribeRequest,
        local_tag: &str,
        now: u64,
    ) -> SubscribeDecision {
        let reject = |code, reason| SubscribeDecision::Reject {
            code,
            reason,
            min_expires: None,
        };
        if event_package(req.event.as_deref()).as_deref() != Some(PRESENCE_EVENT) {
            return reject(489, "Bad Event");
        }
        let expires = match self.limits.grant(req.expires) {
            Ok(e) => e,
            Err(min) => {
                return SubscribeDecision::Reject {
                    code: 423,
                    reason: "Interval Too Brief",
                    min_expires: Some(min),
                }
            }
        };
        if let Some(tag) = &req.to_tag {
            return self.in_dialog(&req, tag, expires, now);
        }
        let Some(contact) = req.contact.clone() else {
            return reject(400, "Missing Contact");
        };
        let rec = DialogRecord {
            role: DialogRole::Notifier,
            call_id: req.call_id,
            local_tag: local_tag.to_owned(),
            remote_tag: Some(req.from_tag),
            local_uri: req.to_uri,
            remote_uri: req.from_uri,
            remote_target: contact,
            route_set: req.record_route,
            local_cseq: 0,
            remote_cseq: req.cseq,
            watcher: req.watcher.to_string(),
            presentity: req.presentity.to_string(),
            expires_at: now + u64::from(expires),
            state: "pending".to_owned(),
            flow: req.flow,
        };
        let key = rec.key();
        self.insert_sub(
            key.clone(),
            Sub {
                rec,
                watcher: req.watcher,
                presentity: req.presentity,
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
        }));
        SubscribeDecision::Answer { expires }
    }

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
                    let state = format!("terminated;reason={}", reason_token(r));
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
                    }));
                }
            }
        }
    }

    /// Sends the final NOTIFY and forgets the subscription; `tell_core` queues an
    /// unsubscribe for the core.
    fn end(&mut self, key: &str, state: String, presence: Option<Presence>, tell_core: bool) {
        let Some(mut sub) = self.remove_sub(key) else {
            return;
        };
        sub.rec.local_cseq += 1;
        sub.rec.state = "terminated".into();
        self.out.push_back(NotifierOutput::Notify(OutgoingNotify {
            dialog: sub.rec,
            subscription_state: state,
            presence,
        }));
        self.out.push_back(NotifierOutput::Forget(key.to_owned()));
        if tell_core {
            self.out.push_back(NotifierOutput::Unsubscribe {
                watcher: sub.watcher,
                presentity: sub.presentity,
            });
        }
    }

    /// The final status of a NOTIFY sent in dialog `key`. RFC 6665 s4.2.2: a 481, a
    /// timeout or another failure ends the subscription (the core is told).
    pub fn notify_answered(&mut self, key: &str, code: u16) {
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

    /// Advances time: expired subscriptions get `terminated;reason=timeout` (RFC 6665
    /// s4.2.2) and the core an unsubscribe; a fetch whose wait ended gets its single
    /// NOTIFY without the state.
    pub fn handle_timeout(&mut self, now: u64) {
        // Held-back state changes whose interval has ended.
        for sub in self.subs.values_mut() {
            let Some(t) = sub.held_until else { continue };
            if t > now || sub.phase != Phase::Live || sub.rec.expires_at <= now {
                continue;
            }
            sub.held_until = None;
            sub.last_body_at = Some(now);
            sub.rec.local_cseq += 1;
            let left = sub.rec.expires_at - now;
            let rec = sub.rec.clone();
            self.out.push_back(NotifierOutput::Persist(rec.clone()));
            self.out.push_back(NotifierOutput::Notify(OutgoingNotify {
                subscription_state: format!("{};expires={left}", rec.state),
                dialog: rec,
                presence: sub.last_presence.clone(),
            }));
        }
        let due: Vec<(String, bool)> = self
            .subs
            .iter()
            .filter_map(|(k, s)| match s.phase {
                Phase::Fetch { deadline } if deadline <= now => Some((k.clone(), true)),
                Phase::Live if s.rec.expires_at <= now => Some((k.clone(), false)),
                Phase::Proposed if s.rec.expires_at + 64 <= now => Some((k.clone(), false)),
                _ => None,
            })
            .collect();
        for (key, fetch) in due {
            let presence = self.subs.get(&key).and_then(|s| s.last_presence.clone());
            let proposed = self
                .subs
                .get(&key)
                .is_some_and(|s| s.phase == Phase::Proposed);
            if proposed {
                self.remove_sub(&key);
                continue;
            }
            self.end(&key, "terminated;reason=timeout".into(), presence, !fetch);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cpim_core::presence::{Basic, Tuple};

    fn notifier() -> Notifier {
        Notifier::new(
            ExpiryLimits {
                min: 60,
                max: 3600,
                default: 3600,
            },
            2,
        )
    }

    fn req(expires: Option<u32>, to_tag: Option<&str>, cseq: u32) -> SubscribeRequest {
        SubscribeRequest {
            call_id: "cid".into(),
            from_uri: "sip:watcher@sip.test".into(),
            from_tag: "ft".into(),
            to_uri: "sip:romeo@xmpp.test".into(),
            to_tag: to_tag.map(str::to_owned),
            event: Some("presence".into()),
            expires,
            cseq,
            contact: Some("sip:watcher@192.0.2.1:5070".into()),
            record_route: vec!["<sip:proxy.test;lr>".into()],
            flow: None,
            watcher: Address::parse("sip:watcher@sip.test").unwrap(),
            presentity: Address::parse("xmpp:romeo@xmpp.test").unwrap(),
        }
    }

    fn drain(n: &mut Notifier) -> Vec<NotifierOutput> {
        std::iter::from_fn(|| n.poll_output()).collect()
    }

    fn notifies(out: &[NotifierOutput]) -> Vec<&OutgoingNotify> {
        out.iter()
            .filter_map(|o| match o {
                NotifierOutput::Notify(n) => Some(n),
                _ => None,
            })
            .collect()
    }

    fn open() -> Presence {
        Presence {
            tuples: vec![Tuple {
                id: "t".into(),
                basic: Some(Basic::Open),
                ..Default::default()
            }],
            ..Default::default()
        }
    }

    fn core_notify(state: SubscriptionState, presence: Option<Presence>) -> Notify {
        Notify {
            trans_id: Default::default(),
            watcher: Address::parse("im:watcher@sip.test").unwrap(),
            target: Address::parse("romeo@xmpp.test").unwrap(),
            state,
            presence,
        }
    }

    /// RFC 6665 s4.1.2.4 (the NOTIFY may precede the 2xx) seen from the notifier: the
    /// presentity's side answers before the core's outcome for the SUBSCRIBE is back. The
    /// Notify is neither refused (481) nor lost: it follows the 2xx's first NOTIFY.
    #[test]
    fn notify_before_the_core_answered_is_kept_and_follows_the_2xx() {
        let mut n = notifier();
        let SubscribeDecision::Submit { key, .. } =
            n.handle_subscribe(req(Some(600), None, 1), "lt", 1000)
        else {
            panic!()
        };
        let early = core_notify(SubscriptionState::Active { expires: 0 }, Some(open()));
        assert_eq!(n.handle_core_notify(&early, 1000), 1, "accepted, not 481");
        // A later state-only Notify keeps the presence seen before.
        let approve = core_notify(SubscriptionState::Active { expires: 0 }, None);
        assert_eq!(n.handle_core_notify(&approve, 1000), 1);
        assert!(
            notifies(&drain(&mut n)).is_empty(),
            "nothing before the 2xx"
        );
        assert_eq!(n.core_answered(&key, 202, 1000), Some((202, 600)));
        let out = drain(&mut n);
        let ns = notifies(&out);
        assert_eq!(ns.len(), 2, "{ns:?}");
        assert_eq!(ns[0].subscription_state, "pending;expires=600");
        assert_eq!(ns[1].subscription_state, "active;expires=600");
        assert_eq!(ns[1].presence, Some(open()));
        assert!(ns[0].dialog.local_cseq < ns[1].dialog.local_cseq);
    }

    #[test]
    fn unknown_event_is_489_and_brief_is_423() {
        let mut n = notifier();
        let mut r = req(None, None, 1);
        r.event = Some("dialog".into());
        assert!(matches!(
            n.handle_subscribe(r, "lt", 0),
            SubscribeDecision::Reject { code: 489, .. }
        ));
        let mut r = req(None, None, 1);
        r.event = None;
        assert!(matches!(
            n.handle_subscribe(r, "lt", 0),
            SubscribeDecision::Reject { code: 489, .. }
        ));
        assert_eq!(
            n.handle_subscribe(req(Some(5), None, 1), "lt", 0),
            SubscribeDecision::Reject {
                code: 423,
                reason: "Interval Too Brief",
                min_expires: Some(60)
            }
        );
        assert!(n.is_empty());
    }

    #[test]
    fn subscribe_notify_refresh_expire_in_virtual_time() {
        let mut n = notifier();
        let d = n.handle_subscribe(req(Some(600), None, 1), "lt", 1000);
        let SubscribeDecision::Submit { key, duration } = d else {
            panic!("{d:?}")
        };
        assert_eq!(duration, 600);
        assert!(drain(&mut n).is_empty(), "nothing before the core answers");
        assert_eq!(n.core_answered(&key, 202, 1000), Some((202, 600)));
        let out = drain(&mut n);
        let ns = notifies(&out);
        assert_eq!(ns.len(), 1);
        assert_eq!(ns[0].subscription_state, "pending;expires=600");
        assert_eq!(ns[0].dialog.local_cseq, 1);
        assert_eq!(
            ns[0].dialog.route_set,
            vec!["<sip:proxy.test;lr>".to_owned()]
        );
        assert_eq!(ns[0].dialog.remote_target, "sip:watcher@192.0.2.1:5070");
        // The core authorizes and sends presence.
        assert_eq!(
            n.handle_core_notify(
                &core_notify(SubscriptionState::Active { expires: 0 }, Some(open())),
                1100
            ),
            1
        );
        let out = drain(&mut n);
        let ns = notifies(&out);
        assert_eq!(ns[0].subscription_state, "active;expires=500");
        assert_eq!(ns[0].presence, Some(open()));
        assert_eq!(ns[0].dialog.local_cseq, 2);
        // Refresh in dialog: 200 and a NOTIFY with the last state.
        assert_eq!(
            n.handle_subscribe(req(Some(600), Some("lt"), 2), "x", 1200),
            SubscribeDecision::Answer { expires: 600 }
        );
        let out = drain(&mut n);
        assert_eq!(notifies(&out)[0].subscription_state, "active;expires=600");
        assert_eq!(notifies(&out)[0].presence, Some(open()));
        // Old CSeq in dialog: 500; unknown tag: 481.
        assert!(matches!(
            n.handle_subscribe(req(Some(600), Some("lt"), 2), "x", 1201),
            SubscribeDecision::Reject { code: 500, .. }
        ));
        assert!(matches!(
            n.handle_subscribe(req(Some(600), Some("zz"), 3), "x", 1201),
            SubscribeDecision::Reject { code: 481, .. }
        ));
        // Time passes without refresh.
        assert_eq!(n.poll_timeout(), Some(1800));
        n.handle_timeout(1799);
        assert!(drain(&mut n).is_empty());
        n.handle_timeout(1800);
        let out = drain(&mut n);
        assert_eq!(
            notifies(&out)[0].subscription_state,
            "terminated;reason=timeout"
        );
        assert!(out
            .iter()
            .any(|o| matches!(o, NotifierOutput::Unsubscribe { .. })));
        assert!(out
            .iter()
            .any(|o| matches!(o, NotifierOutput::Forget(k) if *k == key)));
        assert!(n.is_empty());
    }

    #[test]
    fn refused_by_core_returns_its_code() {
        let mut n = notifier();
        let SubscribeDecision::Submit { key, .. } = n.handle_subscribe(req(None, None, 1), "lt", 0)
        else {
            panic!()
        };
        assert_eq!(n.core_answered(&key, 404, 0), Some((404, 0)));
        assert!(n.is_empty());
        assert!(drain(&mut n).is_empty());
    }

    #[test]
    fn unsubscribe_in_dialog() {
        let mut n = notifier();
        let SubscribeDecision::Submit { key, .. } = n.handle_subscribe(req(None, None, 1), "lt", 0)
        else {
            panic!()
        };
        n.core_answered(&key, 200, 0);
        drain(&mut n);
        assert_eq!(
            n.handle_subscribe(req(Some(0), Some("lt"), 2), "x", 10),
            SubscribeDecision::Answer { expires: 0 }
        );
        let out = drain(&mut n);
        assert!(notifies(&out)[0]
            .subscription_state
            .starts_with("terminated"));
        assert!(matches!(
            out.last(),
            Some(NotifierOutput::Unsubscribe { .. })
        ));
        assert!(n.is_empty());
    }

    #[test]
    fn fetch_sends_one_notify_with_state_or_after_wait() {
        let mut n = notifier();
        let SubscribeDecision::Submit { key, duration } =
            n.handle_subscribe(req(Some(0), None, 1), "lt", 0)
        else {
            panic!()
        };
        assert_eq!(duration, 0);
        assert_eq!(n.core_answered(&key, 200, 0), Some((200, 0)));
        assert!(drain(&mut n).is_empty());
        n.handle_core_notify(
            &core_notify(SubscriptionState::Active { expires: 0 }, Some(open())),
            1,
        );
        let out = drain(&mut n);
        let ns = notifies(&out);
        assert_eq!(ns.len(), 1);
        assert_eq!(ns[0].subscription_state, "terminated;reason=timeout");
        assert_eq!(ns[0].presence, Some(open()));
        assert!(n.is_empty());
        // Second fetch: nothing arrives, the wait ends.
        let mut r = req(Some(0), None, 1);
        r.call_id = "c2".into();
        let SubscribeDecision::Submit { key, .. } = n.handle_subscribe(r, "lt2", 10) else {
            panic!()
        };
        n.core_answered(&key, 200, 10);
        assert_eq!(n.poll_timeout(), Some(12));
        n.handle_timeout(12);
        let out = drain(&mut n);
        assert_eq!(notifies(&out)[0].presence, None);
        assert!(!out
            .iter()
            .any(|o| matches!(o, NotifierOutput::Unsubscribe { .. })));
    }

    #[test]
    fn core_termination_and_481_end_the_dialog() {
        let mut n = notifier();
        let SubscribeDecision::Submit { key, .. } = n.handle_subscribe(req(None, None, 1), "lt", 0)
        else {
            panic!()
        };
        n.core_answered(&key, 200, 0);
        drain(&mut n);
        n.handle_core_notify(
            &core_notify(
                SubscriptionState::Terminated(TerminationReason::Rejected),
                None,
            ),
            5,
        );
        let out = drain(&mut n);
        assert_eq!(
            notifies(&out)[0].subscription_state,
            "terminated;reason=rejected"
        );
        assert!(n.is_empty());

        let mut r = req(None, None, 1);
        r.call_id = "c3".into();
        let SubscribeDecision::Submit { key, .. } = n.handle_subscribe(r, "lt", 0) else {
            panic!()
        };
        n.core_answered(&key, 200, 0);
        drain(&mut n);
        n.notify_answered(&key, 200);
        assert_eq!(n.len(), 1);
        n.notify_answered(&key, 481);
        assert!(n.is_empty());
        assert!(matches!(
            drain(&mut n).last(),
            Some(NotifierOutput::Unsubscribe { .. })
        ));
    }

    /// RFC 3856 s6.4: state changes closer than the interval are coalesced; the latest
    /// goes out when the interval ends.
    #[test]
    fn notifications_are_rate_limited_and_coalesced() {
        let mut n = notifier().with_min_interval(5);
        let SubscribeDecision::Submit { key, .. } =
            n.handle_subscribe(req(Some(600), None, 1), "lt", 0)
        else {
            panic!()
        };
        n.core_answered(&key, 200, 0);
        drain(&mut n);
        let mut closed = open();
        closed.tuples[0].basic = Some(Basic::Closed);
        let active = || SubscriptionState::Active { expires: 600 };
        n.handle_core_notify(&core_notify(active(), Some(open())), 10);
        assert_eq!(notifies(&drain(&mut n)).len(), 1);
        n.handle_core_notify(&core_notify(active(), Some(closed.clone())), 11);
        n.handle_core_notify(&core_notify(active(), Some(open())), 12);
        n.handle_core_notify(&core_notify(active(), Some(closed.clone())), 13);
        assert!(notifies(&drain(&mut n)).is_empty(), "held back");
        assert_eq!(n.poll_timeout(), Some(15));
        n.handle_timeout(15);
        let out = drain(&mut n);
        let ns = notifies(&out);
        assert_eq!(ns.len(), 1, "three changes, one NOTIFY");
        assert_eq!(ns[0].presence, Some(closed));
        assert_eq!(ns[0].subscription_state, "active;expires=585");
        assert_eq!(ns[0].dialog.local_cseq, 3);
        // A change after the interval goes out at once.
        n.handle_core_notify(&core_notify(active(), Some(open())), 21);
        assert_eq!(notifies(&drain(&mut n)).len(), 1);
    }

    #[test]
    fn restore_keeps_live_notifier_dialogs() {
        let mut n = notifier();
        let SubscribeDecision::Submit { key, .. } = n.handle_subscribe(req(None, None, 1), "lt", 0)
        else {
            panic!()
        };
        n.core_answered(&key, 200, 0);
        let recs: Vec<DialogRecord> = drain(&mut n)
            .into_iter()
            .filter_map(|o| match o {
                NotifierOutput::Persist(r) => Some(r),
                _ => None,
            })
            .collect();
        let mut n2 = notifier();
        n2.restore(recs.clone(), 100);
        assert_eq!(n2.len(), 1);
        assert_eq!(
            n2.handle_core_notify(
                &core_notify(SubscriptionState::Active { expires: 1 }, Some(open())),
                100
            ),
            1
        );
        let out = drain(&mut n2);
        assert_eq!(notifies(&out)[0].dialog.local_cseq, 2);
        let mut n3 = notifier();
        n3.restore(recs, 99_999);
        assert!(n3.is_empty());
    }

    /// A core Notify reaches exactly the dialogs of its (watcher, presentity) pair, found
    /// through the pair index, however many other subscriptions there are; a dialog that
    /// ends leaves the index.
    #[test]
    fn core_notify_reaches_only_its_pair_through_the_index() {
        let mut n = notifier();
        let mut keys = Vec::new();
        for i in 0..200 {
            let mut r = req(Some(600), None, 1);
            r.call_id = format!("cid{i}");
            let w = if i < 2 {
                "watcher".to_owned()
            } else {
                format!("w{i}")
            };
            r.from_uri = format!("sip:{w}@sip.test");
            r.watcher = Address::parse(&format!("sip:{w}@sip.test")).unwrap();
            let SubscribeDecision::Submit { key, .. } =
                n.handle_subscribe(r, &format!("lt{i}"), 1000)
            else {
                panic!()
            };
            assert_eq!(n.core_answered(&key, 200, 1000), Some((200, 600)));
            keys.push(key);
        }
        drain(&mut n);
        let active = core_notify(SubscriptionState::Active { expires: 0 }, Some(open()));
        // two dialogs (two devices of watcher@sip.test) share the pair
        assert_eq!(n.handle_core_notify(&active, 1001), 2);
        let out = drain(&mut n);
        let ns = notifies(&out);
        assert_eq!(ns.len(), 2);
        assert!(ns
            .iter()
            .all(|x| x.dialog.watcher == "sip:watcher@sip.test"));
        // the first device's NOTIFY fails: its dialog ends and leaves the index
        n.notify_answered(&keys[0], 481);
        drain(&mut n);
        assert_eq!(n.handle_core_notify(&active, 1002), 1);
        let mut other = active.clone();
        other.watcher = Address::parse("sip:w7@sip.test").unwrap();
        assert_eq!(n.handle_core_notify(&other, 1003), 1);
        other.watcher = Address::parse("sip:nobody@sip.test").unwrap();
        assert_eq!(n.handle_core_notify(&other, 1003), 0);
    }
}
