//! The tokio layer around the sans-IO [`PresenceEngine`]: it owns the clock, runs the
//! engine's timers, carries out its actions (deliveries through [`Outbound`], writes to
//! the [`Store`]) and restores the engine from the store at start.

use cpim_core::StatusCode;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cpim_core::address::Address;
use cpim_core::model::{Notify, Operation, Outcome, Publish, Status, Subscribe};
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;
use tokio::sync::Notify as Wake;

use crate::outbound::Outbound;
use crate::presence::decide::{Choice, Decision};
use crate::presence::presrules::PresRules;
use crate::presence::{
    Action, PresenceConfig, PresenceEngine, Side, SubState, SubscribeReply, Subscription,
};
use crate::records::{presence_from_pidf, presence_to_pidf, AddressRec, RecordError};
use crate::store::{kind, unix_ms, RecordOp, Store, StoreError};

/// Converts between the engine's `Instant`s and the store's Unix milliseconds.
#[derive(Clone, Copy, Debug)]
pub struct Clock {
    instant0: Instant,
    unix0_ms: u64,
}

impl Clock {
    /// Now.
    pub fn new() -> Clock {
        Clock {
            instant0: Instant::now(),
            unix0_ms: unix_ms(),
        }
    }
    /// An instant as Unix milliseconds.
    pub fn to_unix(&self, t: Instant) -> u64 {
        match t.checked_duration_since(self.instant0) {
            Some(d) => self.unix0_ms + d.as_millis() as u64,
            None => self
                .unix0_ms
                .saturating_sub(self.instant0.duration_since(t).as_millis() as u64),
        }
    }
    /// Unix milliseconds as an instant (a past time maps to a past instant, or now).
    pub fn from_unix(&self, ms: u64) -> Instant {
        if ms >= self.unix0_ms {
            self.instant0 + Duration::from_millis(ms - self.unix0_ms)
        } else {
            self.instant0
                .checked_sub(Duration::from_millis(self.unix0_ms - ms))
                .unwrap_or(self.instant0)
        }
    }
}

impl Default for Clock {
    fn default() -> Self {
        Clock::new()
    }
}

#[derive(Serialize, Deserialize)]
struct SubRec {
    watcher: AddressRec,
    presentity: AddressRec,
    watcher_adapter: String,
    remote: Option<String>,
    active: bool,
    expires_at_ms: Option<u64>,
    refresh_at_ms: Option<u64>,
    last_presence: Option<String>,
}

#[derive(Serialize, Deserialize)]
struct DecisionRec {
    watcher: AddressRec,
    presentity: AddressRec,
    allow: bool,
}

#[derive(Serialize, Deserialize)]
struct PubRec {
    presentity: AddressRec,
    expires_at_ms: u64,
    pidf: String,
}

/// The presence service.
#[derive(Debug)]
pub struct PresenceService {
    engine: Mutex<PresenceEngine>,
    clock: Clock,
    out: Arc<Outbound>,
    store: Store,
    wake: Wake,
    deliveries: mpsc::UnboundedSender<(u64, Vec<(String, Operation)>)>,
}

/// Delivers the notifications of each flush in order, once its store writes are durable.
/// Each adapter future is polled once before the next ([`Outbound::deliver_detached`]),
/// so adapters see them in the engine's order.
async fn deliverer(
    out: Arc<Outbound>,
    store: Store,
    mut rx: mpsc::UnboundedReceiver<(u64, Vec<(String, Operation)>)>,
) {
    while let Some((seq, ops)) = rx.recv().await {
        if seq != 0 {
            if let Ok(w) = store.writer() {
                if !w.is_committed(seq) {
                    w.wait(seq).await;
                }
            }
        }
        for (adapter, op) in ops {
            out.deliver_detached(adapter, op);
        }
    }
}

impl PresenceService {
    /// A service over a fresh engine, restored from `store`.
    pub fn restore(
        cfg: PresenceConfig,
        out: Arc<Outbound>,
        store: Store,
    ) -> Result<Arc<Self>, StoreError> {
        let clock = Clock::new();
        let mut engine = PresenceEngine::new(cfg);
        store.for_each(kind::SUBSCRIPTION, |key, data| {
            match Self::decode_sub(&clock, data) {
                Ok(s) => engine.restore_subscription(s),
                Err(e) => {
                    tracing::warn!(%key, error = %e, "unreadable subscription record skipped")
                }
            }
        })?;
        for (key, data) in store.load(kind::PUBLICATION)? {
            let r: Result<PubRec, RecordError> = serde_json::from_str(&data).map_err(Into::into);
            match r.and_then(|r| {
                Ok((
                    r.presentity.try_into()?,
                    presence_from_pidf(&r.pidf)?,
                    r.expires_at_ms,
                ))
            }) {
                Ok((who, p, exp)) => engine.restore_publication(who, p, clock.from_unix(exp)),
                Err(e) => tracing::warn!(%key, error = %e, "unreadable publication record skipped"),
            }
        }
        for (key, data) in store.load(kind::DECISION)? {
            let r: Result<DecisionRec, RecordError> =
                serde_json::from_str(&data).map_err(Into::into);
            match r.and_then(|r| {
                Ok(Decision {
                    watcher: r.watcher.try_into()?,
                    presentity: r.presentity.try_into()?,
                    allow: r.allow,
                })
            }) {
                Ok(d) => engine.restore_decision(d),
                Err(e) => tracing::warn!(%key, error = %e, "unreadable decision record skipped"),
            }
        }
        let n = engine.subscription_count();
        out.metrics.subscriptions.set(n as i64);
        if n > 0 {
            tracing::info!(subscriptions = n, "presence state restored");
        }
        let (deliveries, rx) = mpsc::unbounded_channel();
        let task = deliverer(out.clone(), store.clone(), rx);
        match tokio::runtime::Handle::try_current() {
            Ok(h) => {
                h.spawn(task);
            }
            Err(_) => {
                // Outside a runtime (tools, tests): a thread of its own.
                std::thread::Builder::new()
                    .name("cpim-presence-deliver".into())
                    .spawn(move || {
                        if let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                            .enable_all()
                            .build()
                        {
                            rt.block_on(task);
                        }
                    })
                    .map_err(|source| StoreError::Open {
                        path: "presence delivery thread".into(),
                        source,
                    })?;
            }
        }
        Ok(Arc::new(PresenceService {
            engine: Mutex::new(engine),
            clock,
            out,
            store,
            wake: Wake::new(),
            deliveries,
        }))
    }

    fn decode_sub(clock: &Clock, data: &str) -> Result<Subscription, RecordError> {
        let r: SubRec = serde_json::from_str(data)?;
        Ok(Subscription {
            watcher: r.watcher.try_into()?,
            presentity: r.presentity.try_into()?,
            watcher_adapter: r.watcher_adapter,
            remote: r.remote,
            state: if r.active {
                SubState::Active
            } else {
                SubState::Pending
            },
            expires_at: r.expires_at_ms.map(|t| clock.from_unix(t)),
            refresh_at: r.refresh_at_ms.map(|t| clock.from_unix(t)),
            last_presence: r
                .last_presence
                .as_deref()
                .map(presence_from_pidf)
                .transpose()?,
            answering: false,
        })
    }

    fn encode_sub(&self, s: &Subscription) -> Result<String, RecordError> {
        Ok(serde_json::to_string(&SubRec {
            watcher: (&s.watcher).into(),
            presentity: (&s.presentity).into(),
            watcher_adapter: s.watcher_adapter.clone(),
            remote: s.remote.clone(),
            active: s.state == SubState::Active,
            expires_at_ms: s.expires_at.map(|t| self.clock.to_unix(t)),
            refresh_at_ms: s.refresh_at.map(|t| self.clock.to_unix(t)),
            last_presence: s.last_presence.as_ref().map(presence_to_pidf).transpose()?,
        })?)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, PresenceEngine> {
        self.engine.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Carries out the engine's pending actions, in order, and returns the commit
    /// sequence number of its store writes (0: none) for [`PresenceService::durable`].
    ///
    /// Store writes go to the store's group-commit writer ([`crate::store::RecordWriter`]),
    /// so concurrent subscriptions share one fsync instead of paying one each. Deliveries
    /// never overtake the writes before them: they go, in order, through one delivery
    /// task that waits until the writes of their flush are committed (a watcher is never
    /// told about a subscription a crash could lose). Notifications that answer a
    /// subscribe may reach the watcher's adapter before the subscribe's outcome does; the
    /// adapters keep such an early notification until they answered the subscribe (the
    /// SIP notifier does, RFC 6665 s4.1.2.4).
    fn flush(&self) -> u64 {
        let mut e = self.lock();
        let mut writes = Vec::new();
        let mut deliveries = Vec::new();
        while let Some(a) = e.poll_action() {
            let r = match a {
                Action::Deliver { adapter, op } => {
                    deliveries.push((adapter, op));
                    Ok(())
                }
                Action::SaveSubscription(s) => {
                    let key = crate::presence::sub_key(&s.watcher, &s.presentity);
                    self.encode_sub(&s).map(|data| {
                        writes.push(RecordOp::Put {
                            kind: kind::SUBSCRIPTION,
                            key,
                            expires_at: s.expires_at.map(|t| self.clock.to_unix(t) / 1000),
                            data,
                        })
                    })
                }
                Action::DeleteSubscription(key) => {
                    writes.push(RecordOp::Remove {
                        kind: kind::SUBSCRIPTION,
                        key,
                    });
                    Ok(())
                }
                Action::SavePublication {
                    key,
                    presentity,
                    presence,
                    expires_at,
                } => presence_to_pidf(&presence).and_then(|pidf| {
                    let rec = PubRec {
                        presentity: (&presentity).into(),
                        expires_at_ms: self.clock.to_unix(expires_at),
                        pidf,
                    };
                    let data = serde_json::to_string(&rec)?;
                    writes.push(RecordOp::Put {
                        kind: kind::PUBLICATION,
                        key,
                        expires_at: Some(rec.expires_at_ms / 1000),
                        data,
                    });
                    Ok(())
                }),
                Action::DeletePublication(key) => {
                    writes.push(RecordOp::Remove {
                        kind: kind::PUBLICATION,
                        key,
                    });
                    Ok(())
                }
                Action::SaveDecision(d) => {
                    let rec = DecisionRec {
                        watcher: (&d.watcher).into(),
                        presentity: (&d.presentity).into(),
                        allow: d.allow,
                    };
                    serde_json::to_string(&rec)
                        .map_err(RecordError::from)
                        .map(|data| {
                            writes.push(RecordOp::Put {
                                kind: kind::DECISION,
                                key: crate::presence::sub_key(&d.watcher, &d.presentity),
                                expires_at: None,
                                data,
                            })
                        })
                }
                Action::DeleteDecision(key) => {
                    writes.push(RecordOp::Remove {
                        kind: kind::DECISION,
                        key,
                    });
                    Ok(())
                }
            };
            if let Err(e) = r {
                tracing::error!(error = %e, "presence state not persisted");
            }
        }
        let count = e.subscription_count();
        // Submitted while the engine is locked: commits and deliveries keep the engine's
        // order across concurrent callers.
        let seq = if writes.is_empty() {
            0
        } else {
            match self.store.writer() {
                Ok(w) => w.submit(writes),
                Err(err) => {
                    tracing::error!(error = %err, "presence state not persisted");
                    0
                }
            }
        };
        if !deliveries.is_empty() {
            let _ = self.deliveries.send((seq, deliveries));
        }
        drop(e);
        self.out.metrics.subscriptions.set(count as i64);
        self.wake.notify_one();
        seq
    }

    /// Returns once the store writes of flush `seq` are committed.
    async fn durable(&self, seq: u64) {
        if seq == 0 {
            return;
        }
        if let Ok(w) = self.store.writer() {
            w.wait(seq).await;
        }
    }

    /// A subscribe or fetch from `adapter`.
    pub async fn subscribe(&self, adapter: &str, s: Subscribe) -> Outcome {
        let table = &self.out.table;
        let side = if table.is_local(&s.target.domain) {
            Side::Local {
                known_watcher: table.is_known(&s.watcher.domain),
            }
        } else {
            match table.adapter_name_for(&s.target) {
                Some(a) => Side::Remote(a.to_string()),
                None => {
                    return Outcome::failure(
                        s.trans_id,
                        StatusCode::NOT_FOUND,
                        "Not Found: no route to the presentity's domain",
                    )
                }
            }
        };
        let now = Instant::now();
        let reply = self.lock().handle_subscribe(now, adapter, &s, side);
        let seq = self.flush();
        self.durable(seq).await;
        let status = match reply {
            SubscribeReply::Now(st) => st,
            SubscribeReply::Upstream {
                adapter: up,
                op,
                key,
            } => {
                let outcome = self.out.deliver(&up, op).await;
                let st = self
                    .lock()
                    .handle_upstream_result(Instant::now(), &key, &outcome);
                let seq = self.flush();
                self.durable(seq).await;
                st
            }
        };
        Outcome {
            trans_id: s.trans_id,
            status,
        }
    }

    /// An unsubscribe.
    pub async fn unsubscribe(&self, s: Subscribe) -> Outcome {
        let st = self.lock().handle_unsubscribe(Instant::now(), &s);
        let seq = self.flush();
        self.durable(seq).await;
        Outcome {
            trans_id: s.trans_id,
            status: st,
        }
    }

    /// A notify from a remote presentity's adapter.
    pub async fn notify(&self, adapter: &str, n: Notify) -> Outcome {
        let st = self.lock().handle_notify(Instant::now(), adapter, &n);
        let seq = self.flush();
        self.durable(seq).await;
        Outcome {
            trans_id: n.trans_id,
            status: st,
        }
    }

    /// A publication of a local presentity.
    pub async fn publish(&self, p: Publish) -> Outcome {
        let st: Status = self.lock().handle_publish(Instant::now(), &p);
        let seq = self.flush();
        self.durable(seq).await;
        Outcome {
            trans_id: p.trans_id,
            status: st,
        }
    }

    /// The subscriptions, for the admin API: (watcher, presentity, state, watcher adapter, remote adapter).
    pub fn snapshot(&self) -> Vec<serde_json::Value> {
        let now = Instant::now();
        let e = self.lock();
        let mut v: Vec<serde_json::Value> = e
            .subscriptions()
            .map(|s| {
                serde_json::json!({
                    "watcher": s.watcher.to_string(),
                    "presentity": s.presentity.to_string(),
                    "state": if s.state == SubState::Active { "active" } else { "pending" },
                    "watcher_adapter": s.watcher_adapter,
                    "presentity_adapter": s.remote,
                    "expires_in": s.expires_at.map(|t| t.saturating_duration_since(now).as_secs()),
                })
            })
            .collect();
        v.sort_by_key(|a| a.to_string());
        v
    }

    /// The presentity decides about a watcher ([`PresenceEngine::decide`]): the one
    /// path the admin API takes (a pres-rules document takes [`PresenceService::set_rules`]). Returns once the
    /// decision is durable.
    pub async fn decide(&self, presentity: &Address, watcher: &Address, choice: Choice) -> Status {
        let st = self
            .lock()
            .decide(Instant::now(), presentity, watcher, choice);
        let seq = self.flush();
        self.durable(seq).await;
        st
    }

    /// The presentity wrote (`Some`) or deleted (`None`) its pres-rules document
    /// ([`PresenceEngine::set_rules`]): its watchers are re-evaluated. Returns once the
    /// resulting state is durable.
    pub async fn set_rules(&self, presentity: &Address, rules: Option<PresRules>) -> Status {
        let st = self.lock().set_rules(Instant::now(), presentity, rules);
        let seq = self.flush();
        self.durable(seq).await;
        st
    }

    /// Restores a presentity's pres-rules document at start
    /// ([`PresenceEngine::restore_rules`]); `false` past its cap.
    pub fn restore_rules(&self, presentity: &Address, rules: PresRules) -> bool {
        self.lock().restore_rules(presentity, rules)
    }

    /// The watchers of a local presentity, for the admin API.
    pub fn watchers(&self, presentity: &Address) -> Vec<serde_json::Value> {
        let now = Instant::now();
        self.lock()
            .watchers_of(presentity, now)
            .into_iter()
            .map(|w| {
                serde_json::json!({
                    "watcher": w.watcher.to_string(),
                    "status": w.status,
                    "event": w.event,
                    "decision": w.decision.map(|a| if a { "allow" } else { "deny" }),
                    "watcher_adapter": w.adapter,
                    "expires_in": w.expires_in,
                })
            })
            .collect()
    }

    /// The full-state watcherinfo document (RFC 3858, `version` 0) of a local
    /// presentity.
    pub fn watcher_info(&self, presentity: &Address) -> cpim_core::watcherinfo::WatcherInfo {
        self.lock().watcher_info(presentity, 0, Instant::now())
    }

    /// [`PresenceService::watcher_info`] as XML.
    pub fn watcher_info_xml(&self, presentity: &Address) -> Result<String, RecordError> {
        cpim_core::watcherinfo::encode(&self.watcher_info(presentity))
            .map_err(|e| RecordError::Value(e.to_string()))
    }

    /// Number of subscriptions.
    pub fn count(&self) -> usize {
        self.lock().subscription_count()
    }

    /// Runs the engine's timers until `stop` resolves.
    pub async fn run_timers(self: Arc<Self>, mut stop: tokio::sync::watch::Receiver<bool>) {
        loop {
            let next = self.lock().poll_timeout();
            let sleep = async {
                match next {
                    Some(t) => tokio::time::sleep_until(tokio::time::Instant::from_std(t)).await,
                    None => std::future::pending::<()>().await,
                }
            };
            tokio::select! {
                _ = sleep => {
                    self.lock().handle_timeout(Instant::now());
                    self.flush();
                }
                _ = self.wake.notified() => {}
                _ = stop.changed() => return,
            }
        }
    }
}
