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
//!
//! [`Notifier::handle_subscribe_with`] also reads the SUBSCRIBE's `Accept` and filter
//! body: partial notification (RFC 5263) and filters (RFC 4660/4661) are in `partial`,
//! which shapes each NOTIFY on its way out of [`Notifier::poll_output`].

use std::collections::{HashMap, VecDeque};

use cpim_core::address::Address;
use cpim_core::model::{Notify, SubscriptionState};
use cpim_core::presence::Presence;

use super::super::config::ExpiryLimits;
use super::super::store::{DialogRecord, DialogRole};
mod from_core;
mod from_watcher;
mod partial;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_partial;
mod winfo;
#[cfg(test)]
mod winfo_tests;

pub use partial::{WatchRefusal, WatchRequest};
pub use winfo::{is_winfo, WINFO_EVENT};

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

impl SubscribeRequest {
    /// The dialog a new subscription creates, the gateway as notifier (`role`) in `state`
    /// until `now + expires` (RFC 6665 s4.2.1; RFC 3261 s12.1.1 for the dialog state),
    /// `contact` being the request's Contact.
    fn dialog(
        self,
        role: DialogRole,
        contact: String,
        local_tag: &str,
        expires: u32,
        now: u64,
        state: &str,
    ) -> DialogRecord {
        DialogRecord {
            role,
            call_id: self.call_id,
            local_tag: local_tag.to_owned(),
            remote_tag: Some(self.from_tag),
            local_uri: self.to_uri,
            remote_uri: self.from_uri,
            remote_target: contact,
            route_set: self.record_route,
            local_cseq: 0,
            remote_cseq: self.cseq,
            watcher: self.watcher.to_string(),
            presentity: self.presentity.to_string(),
            expires_at: now + u64::from(expires),
            state: state.to_owned(),
            flow: self.flow,
        }
    }
}

impl Notifier {
    /// The duration granted for `asked` (RFC 6665 s4.2.1.1), or the 423 with Min-Expires.
    fn granted(&self, asked: Option<u32>) -> Result<u32, SubscribeDecision> {
        self.limits
            .grant(asked)
            .map_err(|min| SubscribeDecision::Reject {
                code: 423,
                reason: "Interval Too Brief",
                min_expires: Some(min),
            })
    }
}

/// A refusal without Min-Expires.
fn reject(code: u16, reason: &'static str) -> SubscribeDecision {
    SubscribeDecision::Reject {
        code,
        reason,
        min_expires: None,
    }
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
    /// A `presence.winfo` NOTIFY (RFC 3857): `Event: presence.winfo` and this
    /// `application/watcherinfo+xml` document as the body (none when empty) instead of
    /// the presence.
    pub winfo: Option<String>,
}

/// What the notifier asks its caller to do.
#[derive(Clone, Debug, PartialEq)]
// Outputs live only between a state change and the outbox; boxing buys nothing.
#[allow(clippy::large_enum_variant)]
pub enum NotifierOutput {
    /// Send a NOTIFY; report its final status with [`Notifier::notify_answered`].
    Notify(OutgoingNotify),
    /// Send a NOTIFY with this body instead of a PIDF of `notify.presence` (a partial
    /// notification, RFC 5263); report its status like [`NotifierOutput::Notify`].
    NotifyBody {
        /// The NOTIFY (its `presence` is `None`).
        notify: OutgoingNotify,
        /// The body's media type.
        content_type: &'static str,
        /// The body.
        body: String,
    },
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
    /// The `presence.winfo` subscriptions ([`winfo`]).
    winfo: winfo::WinfoSubs,
    /// Partial notification and filter state by subscription key ([`partial`]); an
    /// entry lives as long as its subscription.
    watch: HashMap<String, partial::Watch>,
    /// Entries of subscriptions just removed, for their final NOTIFY still in `out`;
    /// emptied whenever `out` is.
    closing: HashMap<String, partial::Watch>,
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
        SubscriptionState::Terminated(r) => format!("terminated;reason={}", r.as_str()),
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
            winfo: winfo::WinfoSubs::default(),
            watch: HashMap::new(),
            closing: HashMap::new(),
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
        if let Some(w) = self.watch.remove(key) {
            self.closing.insert(key.to_owned(), w);
        }
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
        self.winfo_restore(&records, now);
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

    /// Number of subscriptions (any phase, `presence.winfo` ones included).
    pub fn len(&self) -> usize {
        self.subs.len() + self.winfo.len()
    }

    /// The (presentity, flow) of every subscription, for the caps of [`crate::app::limits`].
    pub fn presentities_and_flows(&self) -> impl Iterator<Item = (&Address, Option<&str>)> {
        self.subs
            .values()
            .map(|s| (&s.presentity, s.rec.flow.as_deref()))
            .chain(self.winfo_presentities_and_flows())
    }

    /// True if there are none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The next output, if any.
    pub fn poll_output(&mut self) -> Option<NotifierOutput> {
        loop {
            let Some(o) = self.out.pop_front() else {
                self.closing.clear();
                return None;
            };
            if let Some(o) = self.shape(o) {
                return Some(o);
            }
        }
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
            .chain(self.winfo_next_expiry())
            .min()
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
            winfo: None,
        }));
        self.out.push_back(NotifierOutput::Forget(key.to_owned()));
        if tell_core {
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
        self.winfo_timeout(now);
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
                winfo: None,
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
