//! Presence across protocols (RFC 8048), sans-IO: one subscription state machine per
//! (watcher, presentity) pair, whatever protocol each side speaks, and the presence
//! store of the gateway's own presentities. Input through `handle_*` with the time passed
//! in, output through [`PresenceEngine::poll_action`] and
//! [`PresenceEngine::poll_timeout`]; no runtime, no clock.
//!
//! # States
//! `none -> pending -> active -> terminated(reason)` (RFC 6665 s4.1.3; RFC 8048 s4 maps
//! them onto XMPP `subscribe`/`subscribed`/`unsubscribed`). A pair that is not in the
//! table is `none`; `terminated` is reported once to the watcher and the pair is then
//! forgotten.
//!
//! # Authorization
//! - Local presentities (in one of the gateway's domains, fed by `Publish`): decided here
//!   by [`Policy`]. Default [`Policy::Ask`]: the presentity decides. A watcher is
//!   approved at once when it is a user of the presentity's own domain, when its domain
//!   is in `allow_domains`, when the presentity itself has subscribed to the watcher's
//!   presence (mutual interest, as an XMPP server decides with rosters, RFC 6121 s3.1.3 /
//!   s3.4) or when the presentity allowed it before; a watcher the presentity denied is
//!   refused with 403 without asking again; any other watcher is `pending` (RFC 6665
//!   s4.1.3: SIP `Subscription-State: pending`; XMPP: no `subscribed` yet, RFC 8048 s5)
//!   until the presentity decides through [`PresenceEngine::decide`] (the admin API's
//!   `POST /presence/decision`; remembered and persisted, see [`decide`]) or through its
//!   pres-rules document (RFC 5025, written over XCAP: [`presrules`] evaluates it,
//!   [`rules`] applies it; the most recent of a decision and a document wins).
//!   Explicit alternatives: `approve-mutual` (the same immediate approvals, every other
//!   watcher refused with 403 and no state), `approve-all` (every watcher the router let
//!   through; for trusted deployments), `approve-known` (local and configured-route
//!   domains), `reject-all` (presence off). The rules and the caps on standing state
//!   live in [`authz`].
//! - Remote presentities: `pending` until the remote side says `active` in a `Notify`.
//!
//! # Refreshes are the gateway's
//! A watcher's refresh (a SIP re-SUBSCRIBE) only moves the watcher-side expiry and
//! re-sends the current state to that watcher; it never produces a second upstream
//! subscribe. Upstream, the gateway subscribes once; towards adapters that need
//! refreshing (configured per adapter, default `sip` with 3600 s) it refreshes by itself
//! at 80 % of the duration. Other adapters (XMPP: subscriptions are roster state) get a
//! subscribe without expiry (`u32::MAX`).
//!
//! # Fetches
//! A subscribe with duration 0 (SIP fetch, RFC 3856 s3.3; XMPP probe, RFC 8048 s6) is
//! answered from the presence store (local) or the cached remote state, with one notify
//! in state `terminated;reason=timeout`; a remote presentity without cached state is
//! probed upstream once and the answer relayed.
//!
//! # Notification rate
//! RFC 3856 s6.4: notifications of one presentity's state are sent at most once per
//! `notify_interval` (default 5 s); changes inside the interval are coalesced and the
//! latest state goes out when it ends. Subscription-state changes and the answer to a
//! (re)subscribe are never delayed.
//!
//! # Where
//! The engine's types and its notify, publish and delivery paths are here; subscribe,
//! fetch and unsubscribe handling are in the `subscribe` submodule, the timers in
//! `timers`, authorization and caps in [`authz`], the presentity's decisions in
//! [`decide`], watcher information (RFC 3857, RFC 3858) in [`winfo`], the composition
//! of several devices (one tuple per XMPP resource, newest first, RFC 8048 s4, RFC 4479
//! s4) in [`compose`].

use cpim_core::StatusCode;
use std::collections::{BTreeSet, HashMap, HashSet, VecDeque};
use std::time::{Duration, Instant};

use cpim_core::address::Address;
use cpim_core::model::{
    Notify, Operation, Publish, Status, Subscribe, SubscriptionState, TerminationReason, TransId,
};
use cpim_core::presence::{Basic, Presence, Tuple};

pub mod authz;
pub mod compose;
pub mod decide;
pub mod presrules;
pub mod rules;
mod subscribe;
mod timers;
pub mod winfo;

/// Authorization of watchers of local presentities.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Policy {
    /// Approve watchers of the presentity's own domain, of `allow_domains`, those the
    /// presentity has subscribed to and those it allowed; keep every other watcher
    /// pending until the presentity decides (see the module docs). The default.
    #[default]
    Ask,
    /// Approve watchers of the presentity's own domain, of `allow_domains`, and those the
    /// presentity has subscribed to; refuse every other.
    ApproveMutual,
    /// Approve every watcher.
    ApproveAll,
    /// Approve watchers of local domains, configured routes and `allow_domains`.
    ApproveKnown,
    /// Reject every watcher.
    RejectAll,
}

/// Engine configuration.
#[derive(Clone, Debug)]
pub struct PresenceConfig {
    /// Authorization of watchers of local presentities.
    pub policy: Policy,
    /// Domains always approved.
    pub allow_domains: Vec<String>,
    /// Domains always rejected.
    pub deny_domains: Vec<String>,
    /// Minimum interval between presence notifications of one presentity.
    pub notify_interval: Duration,
    /// Longest watcher subscription granted, seconds.
    pub max_expires: u32,
    /// Upstream subscription duration per adapter that needs refreshing.
    pub upstream_expires: HashMap<String, u32>,
    /// Most subscriptions (and pending fetches) held in total.
    pub max_subscriptions: usize,
    /// Most watchers of one presentity.
    pub max_watchers_per_presentity: usize,
    /// Adapters whose watchers hold roster-style subscriptions (XMPP, RFC 6121 s3):
    /// no expiry whatever duration they name, a state-only notify (`subscribed`) before
    /// the first state, and fetch answers in state `active` (a probe answer is plain
    /// presence, not an end of subscription).
    pub roster_adapters: Vec<String>,
    /// Most pending watchers (waiting for the presentity's decision) of one presentity.
    pub max_pending_per_presentity: usize,
    /// Most pending watchers in total.
    pub max_pending: usize,
    /// Most remembered decisions of one presentity.
    pub max_decisions_per_presentity: usize,
    /// Most remembered decisions in total.
    pub max_decisions: usize,
}

impl Default for PresenceConfig {
    fn default() -> Self {
        PresenceConfig {
            policy: Policy::Ask,
            allow_domains: Vec::new(),
            deny_domains: Vec::new(),
            notify_interval: Duration::from_secs(5),
            max_expires: 86_400,
            max_subscriptions: 50_000,
            max_watchers_per_presentity: 1_000,
            upstream_expires: HashMap::from([("sip".to_owned(), 3600)]),
            roster_adapters: vec!["xmpp".to_owned()],
            max_pending_per_presentity: 100,
            max_pending: 5_000,
            max_decisions_per_presentity: 1_000,
            max_decisions: 20_000,
        }
    }
}

/// Where a presentity lives, as the caller (who knows the route table) tells it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Side {
    /// One of the gateway's own presentities; `known_watcher` says whether the watcher's
    /// domain is local or has a configured route (for [`Policy::ApproveKnown`]).
    Local {
        /// The watcher is of a local or routed domain.
        known_watcher: bool,
    },
    /// Behind this adapter.
    Remote(String),
}

/// The state of a pair, as the watcher sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SubState {
    /// Waiting for authorization.
    Pending,
    /// Authorized.
    Active,
}

/// One subscription.
#[derive(Clone, Debug, PartialEq)]
pub struct Subscription {
    /// The watcher.
    pub watcher: Address,
    /// The presentity.
    pub presentity: Address,
    /// The adapter notifications for the watcher go to.
    pub watcher_adapter: String,
    /// The presentity's adapter if it is remote; `None` for a local presentity.
    pub remote: Option<String>,
    /// Pending or active.
    pub state: SubState,
    /// Watcher-side expiry; `None` for no expiry.
    pub expires_at: Option<Instant>,
    /// When the gateway refreshes its upstream subscription; `None`: never.
    pub refresh_at: Option<Instant>,
    /// The last state the remote presentity reported.
    pub last_presence: Option<Presence>,
    /// The watcher's subscribe is still being answered (the upstream subscribe is in
    /// flight): notifications wait for [`PresenceEngine::handle_upstream_result`], which
    /// sends the state as it is then. Not persisted.
    pub answering: bool,
}

/// Something the engine wants done.
#[allow(clippy::large_enum_variant)] // transient, drained at once
#[derive(Clone, Debug, PartialEq)]
pub enum Action {
    /// Deliver an operation through an adapter (its outcome is of no further interest,
    /// except through [`PresenceEngine::handle_upstream_result`] for upstream subscribes).
    Deliver {
        /// Adapter name.
        adapter: String,
        /// The operation.
        op: Operation,
    },
    /// Persist a subscription (insert or replace).
    SaveSubscription(Box<Subscription>),
    /// Forget a persisted subscription, by key.
    DeleteSubscription(String),
    /// Persist a publication of a local presentity.
    SavePublication {
        /// Presentity key.
        key: String,
        /// The presentity.
        presentity: Address,
        /// State.
        presence: Box<Presence>,
        /// Expiry.
        expires_at: Instant,
    },
    /// Forget a publication.
    DeletePublication(String),
    /// Persist a presentity's decision about a watcher (insert or replace).
    SaveDecision(decide::Decision),
    /// Forget a persisted decision, by pair key.
    DeleteDecision(String),
}

/// The immediate answer to a subscribe.
#[allow(clippy::large_enum_variant)] // returned once per call
#[derive(Clone, Debug, PartialEq)]
pub enum SubscribeReply {
    /// Answer the watcher with this status.
    Now(Status),
    /// Deliver `op` to `adapter` first and pass its outcome to
    /// [`PresenceEngine::handle_upstream_result`], which gives the answer.
    Upstream {
        /// Adapter name.
        adapter: String,
        /// The upstream subscribe.
        op: Operation,
        /// The pair's key.
        key: String,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
enum TimerKind {
    SubExpiry,
    Refresh,
    PubExpiry,
    Gate,
    Fetch,
}

#[derive(Clone, Debug)]
struct Publication {
    presentity: Address,
    presence: Presence,
    expires_at: Instant,
}

#[derive(Clone, Debug, Default)]
struct Gate {
    last_sent: Option<Instant>,
    dirty: HashSet<String>,
    armed: bool,
}

#[derive(Clone, Debug)]
struct Fetch {
    watcher: Address,
    presentity: Address,
    watcher_adapter: String,
    until: Instant,
}

/// The key of a subscription: bare watcher and presentity, scheme-neutral.
pub fn sub_key(watcher: &Address, presentity: &Address) -> String {
    format!("{}|{}", user_key(watcher), user_key(presentity))
}

/// `user@domain` (or `domain`), scheme and instance dropped.
pub fn user_key(a: &Address) -> String {
    match &a.user {
        Some(u) => format!("{u}@{}", a.domain),
        None => a.domain.clone(),
    }
}

/// A document that says "offline": one closed tuple.
pub fn offline(presentity: &Address) -> Presence {
    Presence {
        entity: Some(presentity.bare()),
        tuples: vec![Tuple {
            id: "offline".into(),
            basic: Some(Basic::Closed),
            ..Default::default()
        }],
        ..Default::default()
    }
}

/// How long a remote probe waits for its answer.
const FETCH_WAIT: Duration = Duration::from_secs(32);

/// The engine.
#[derive(Debug)]
pub struct PresenceEngine {
    cfg: PresenceConfig,
    subs: HashMap<String, Subscription>,
    by_presentity: HashMap<String, HashSet<String>>,
    pubs: HashMap<String, Publication>,
    gates: HashMap<String, Gate>,
    fetches: HashMap<String, Fetch>,
    timers: BTreeSet<(Instant, TimerKind, String)>,
    actions: VecDeque<Action>,
    next_id: u64,
    decisions: decide::Decisions,
    devices: compose::Devices,
    rules: rules::RulesTable,
}

impl PresenceEngine {
    /// An empty engine.
    pub fn new(cfg: PresenceConfig) -> Self {
        PresenceEngine {
            cfg,
            subs: HashMap::new(),
            by_presentity: HashMap::new(),
            pubs: HashMap::new(),
            gates: HashMap::new(),
            fetches: HashMap::new(),
            timers: BTreeSet::new(),
            actions: VecDeque::new(),
            next_id: 1 << 48,
            decisions: decide::Decisions::default(),
            devices: compose::Devices::default(),
            rules: rules::RulesTable::default(),
        }
    }

    fn tid(&mut self) -> TransId {
        self.next_id += 1;
        TransId(self.next_id)
    }

    /// The subscriptions, for the admin API.
    pub fn subscriptions(&self) -> impl Iterator<Item = &Subscription> {
        self.subs.values()
    }

    /// Number of subscriptions.
    pub fn subscription_count(&self) -> usize {
        self.subs.len()
    }

    /// The subscription of a pair.
    pub fn subscription(&self, watcher: &Address, presentity: &Address) -> Option<&Subscription> {
        self.subs.get(&sub_key(watcher, presentity))
    }

    /// The current published state of a local presentity.
    pub fn published(&self, presentity: &Address) -> Option<&Presence> {
        self.pubs.get(&user_key(presentity)).map(|p| &p.presence)
    }

    /// Restores a persisted subscription after a restart, re-arming its timers.
    pub fn restore_subscription(&mut self, s: Subscription) {
        let key = sub_key(&s.watcher, &s.presentity);
        self.insert(key, s);
    }

    /// Restores a persisted publication after a restart.
    pub fn restore_publication(
        &mut self,
        presentity: Address,
        presence: Presence,
        expires_at: Instant,
    ) {
        let key = user_key(&presentity);
        self.timers
            .insert((expires_at, TimerKind::PubExpiry, key.clone()));
        self.pubs.insert(
            key,
            Publication {
                presentity,
                presence,
                expires_at,
            },
        );
    }

    fn insert(&mut self, key: String, s: Subscription) {
        if let Some(t) = s.expires_at {
            self.timers.insert((t, TimerKind::SubExpiry, key.clone()));
        }
        if let Some(t) = s.refresh_at {
            self.timers.insert((t, TimerKind::Refresh, key.clone()));
        }
        self.by_presentity
            .entry(user_key(&s.presentity))
            .or_default()
            .insert(key.clone());
        self.subs.insert(key, s);
    }

    fn remove(&mut self, key: &str) -> Option<Subscription> {
        let s = self.subs.remove(key)?;
        self.devices.forget(key);
        let pk = user_key(&s.presentity);
        if let Some(set) = self.by_presentity.get_mut(&pk) {
            set.remove(key);
            if set.is_empty() {
                self.by_presentity.remove(&pk);
            }
        }
        self.actions
            .push_back(Action::DeleteSubscription(key.to_owned()));
        Some(s)
    }

    fn save(&mut self, key: &str) {
        if let Some(s) = self.subs.get(key) {
            self.actions
                .push_back(Action::SaveSubscription(Box::new(s.clone())));
        }
    }

    fn is_roster(&self, adapter: &str) -> bool {
        self.cfg.roster_adapters.iter().any(|a| a == adapter)
    }

    fn watcher_expiry(&self, now: Instant, adapter: &str, duration: u32) -> Option<Instant> {
        (duration != u32::MAX && !self.is_roster(adapter))
            .then(|| now + Duration::from_secs(u64::from(duration.min(self.cfg.max_expires))))
    }

    fn remaining(s: &Subscription, now: Instant) -> u32 {
        s.expires_at.map_or(u32::MAX, |t| {
            t.saturating_duration_since(now)
                .as_secs()
                .min(u64::from(u32::MAX - 1)) as u32
        })
    }

    fn facing_state(s: &Subscription, now: Instant) -> SubscriptionState {
        match s.state {
            SubState::Pending => SubscriptionState::Pending,
            SubState::Active => SubscriptionState::Active {
                expires: Self::remaining(s, now),
            },
        }
    }

    /// The state to show a watcher of `s` now.
    fn current_presence(&self, s: &Subscription) -> Option<Presence> {
        match &s.remote {
            None => Some(self.local_view(&s.watcher, &s.presentity)),
            Some(_) => s.last_presence.clone(),
        }
    }

    fn notify_watcher(&mut self, key: &str, now: Instant, with_presence: bool) {
        let Some(s) = self.subs.get(key) else { return };
        if s.answering {
            return;
        }
        let mut presence = if with_presence && s.state == SubState::Active {
            self.current_presence(s)
        } else {
            None
        };
        if self.is_roster(&s.watcher_adapter) {
            // One presence per device: the ones gone since are announced unavailable.
            presence = presence.map(|p| self.devices.for_watcher(key, p));
        }
        let Some(s) = self.subs.get(key) else { return };
        let sent_state = presence.is_some();
        let op = Operation::Notify(Notify {
            trans_id: TransId(0),
            watcher: s.watcher.clone(),
            target: s.presentity.clone(),
            state: Self::facing_state(s, now),
            presence,
        });
        let adapter = s.watcher_adapter.clone();
        self.push_deliver(adapter, op);
        // Only a notification that carried a state counts for the rate limit: a state-only
        // one (e.g. the approval) must not hold back the first state after it.
        if with_presence && sent_state {
            let pk = user_key(&self.subs[key].presentity);
            let g = self.gates.entry(pk).or_default();
            g.last_sent = Some(now);
            g.dirty.remove(key);
        }
    }

    fn push_deliver(&mut self, adapter: String, mut op: Operation) {
        let id = self.tid();
        match &mut op {
            Operation::Notify(n) => n.trans_id = id,
            Operation::Subscribe(s) | Operation::Unsubscribe(s) => s.trans_id = id,
            _ => {}
        }
        self.actions.push_back(Action::Deliver { adapter, op });
    }

    fn terminate(
        &mut self,
        key: &str,
        reason: TerminationReason,
        presence: Option<Presence>,
        upstream: bool,
    ) {
        let Some(s) = self.remove(key) else { return };
        self.push_deliver(
            s.watcher_adapter.clone(),
            Operation::Notify(Notify {
                trans_id: TransId(0),
                watcher: s.watcher.clone(),
                target: s.presentity.clone(),
                state: SubscriptionState::Terminated(reason),
                presence,
            }),
        );
        if upstream {
            if let Some(remote) = s.remote {
                self.push_deliver(
                    remote,
                    Operation::Unsubscribe(Subscribe {
                        trans_id: TransId(0),
                        watcher: s.watcher,
                        target: s.presentity,
                        duration: 0,
                    }),
                );
            }
        }
    }

    /// A presence change of presentity `pk` for the subscriptions `keys`: sent now if the
    /// presentity's interval has passed, else coalesced until it has.
    fn fan_out(&mut self, now: Instant, pk: &str, keys: Vec<String>) {
        let interval = self.cfg.notify_interval;
        let g = self.gates.entry(pk.to_owned()).or_default();
        let open = g.last_sent.is_none_or(|t| now >= t + interval);
        if open {
            g.last_sent = Some(now);
            for k in keys {
                if self
                    .subs
                    .get(&k)
                    .is_some_and(|s| s.state == SubState::Active)
                {
                    self.notify_watcher(&k, now, true);
                }
            }
        } else {
            let at = g.last_sent.map_or(now, |t| t + interval);
            g.dirty.extend(keys);
            if !g.armed {
                g.armed = true;
                self.timers.insert((at, TimerKind::Gate, pk.to_owned()));
            }
        }
    }

    /// A notify from a remote presentity's side (it came in by `from_adapter`).
    pub fn handle_notify(&mut self, now: Instant, from_adapter: &str, n: &Notify) -> Status {
        let key = sub_key(&n.watcher, &n.target);
        if let Some(f) = self.fetches.get(&key) {
            if n.presence.is_some() {
                let f = f.clone();
                self.fetches.remove(&key);
                let state = if self.is_roster(&f.watcher_adapter) {
                    SubscriptionState::Active { expires: 0 }
                } else {
                    SubscriptionState::Terminated(TerminationReason::Timeout)
                };
                self.push_deliver(
                    f.watcher_adapter,
                    Operation::Notify(Notify {
                        trans_id: TransId(0),
                        watcher: f.watcher,
                        target: f.presentity,
                        state,
                        presence: n.presence.clone(),
                    }),
                );
                if !self.subs.contains_key(&key) {
                    return Status::ok();
                }
            }
        }
        let Some(s) = self.subs.get_mut(&key) else {
            return Status::new(
                StatusCode::CALL_OR_TRANSACTION_DOES_NOT_EXIST,
                "Subscription does not exist",
            );
        };
        if s.remote.as_deref() != Some(from_adapter) {
            return Status::new(
                StatusCode::FORBIDDEN,
                "notify from an adapter that does not serve the presentity",
            );
        }
        match &n.state {
            SubscriptionState::Terminated(reason) => {
                let p = n.presence.clone();
                self.terminate(&key, reason.clone(), p, false);
            }
            state => {
                let was = s.state.clone();
                // Roster-style adapters (XMPP) approve with a state-only notify
                // (`subscribed`); their presence stanzas say nothing about authorization
                // (RFC 6121 s3.1.3: Prosody acknowledges a pending subscribe with an
                // `unavailable` presence), so presence alone never activates.
                let presence_only = n.presence.is_some()
                    && self.cfg.roster_adapters.iter().any(|a| a == from_adapter);
                s.state = if matches!(state, SubscriptionState::Pending)
                    || (presence_only && was == SubState::Pending)
                {
                    SubState::Pending
                } else {
                    SubState::Active
                };
                let changed = was != s.state;
                // (A presence while still pending is not the user's state for this watcher:
                // not kept, so the approval does not show a stale `unavailable`.)
                // A roster-style adapter (XMPP) speaks for one resource per notify: its
                // part is composed with the others (RFC 8048 s4, see `compose`).
                if let (Some(p), SubState::Active) = (&n.presence, &s.state) {
                    s.last_presence = Some(
                        if self.cfg.roster_adapters.iter().any(|a| a == from_adapter) {
                            self.devices.apply(
                                &key,
                                now,
                                &s.presentity,
                                s.last_presence.as_ref(),
                                p,
                            )
                        } else {
                            p.clone()
                        },
                    );
                }
                // (Nothing to fan out while pending: the rate gate is left untouched.)
                let has_presence = n.presence.is_some() && s.state == SubState::Active;
                let pk = user_key(&s.presentity);
                self.save(&key);
                if changed {
                    // State changes go out at once, with whatever state is known.
                    self.notify_watcher(&key, now, true);
                } else if has_presence {
                    self.fan_out(now, &pk, vec![key]);
                }
            }
        }
        Status::ok()
    }

    /// A local presentity publishes its state.
    pub fn handle_publish(&mut self, now: Instant, p: &Publish) -> Status {
        let pk = user_key(&p.presentity);
        if p.expires == 0 || p.presence.tuples.is_empty() {
            if self.pubs.remove(&pk).is_some() {
                self.actions
                    .push_back(Action::DeletePublication(pk.clone()));
            }
        } else {
            let expires_at = now + Duration::from_secs(u64::from(p.expires));
            let mut presence = p.presence.clone();
            if presence.entity.is_none() {
                presence.entity = Some(p.presentity.bare());
            }
            self.actions.push_back(Action::SavePublication {
                key: pk.clone(),
                presentity: p.presentity.bare(),
                presence: Box::new(presence.clone()),
                expires_at,
            });
            self.timers
                .insert((expires_at, TimerKind::PubExpiry, pk.clone()));
            self.pubs.insert(
                pk.clone(),
                Publication {
                    presentity: p.presentity.bare(),
                    presence,
                    expires_at,
                },
            );
        }
        let keys: Vec<String> = self
            .by_presentity
            .get(&pk)
            .map(|s| {
                s.iter()
                    .filter(|k| self.subs[*k].remote.is_none())
                    .cloned()
                    .collect()
            })
            .unwrap_or_default();
        if !keys.is_empty() {
            self.fan_out(now, &pk, keys);
        }
        Status::ok()
    }

    /// The time of the next timer, if any.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.timers.iter().next().map(|(t, _, _)| *t)
    }

    /// The next thing to do.
    pub fn poll_action(&mut self) -> Option<Action> {
        self.actions.pop_front()
    }
}

#[cfg(test)]
mod devices_tests;
#[cfg(test)]
mod tests;
