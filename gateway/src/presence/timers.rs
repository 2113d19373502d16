//! The engine's timers: the gateway's own refreshes of upstream subscriptions, watcher
//! and publication expiry, fetches that waited too long, and the end of a presentity's
//! notification interval (RFC 3856 s6.4), when coalesced changes go out.

use std::time::{Duration, Instant};

use cpim_core::model::{Operation, Subscribe, TerminationReason, TransId};

use super::{Action, PresenceEngine, SubState, TimerKind};

impl PresenceEngine {
    /// Runs the timers due at `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        while let Some((t, kind, key)) = self.timers.iter().next().cloned() {
            if t > now {
                break;
            }
            self.timers.remove(&(t, kind, key.clone()));
            match kind {
                TimerKind::SubExpiry => {
                    if self.subs.get(&key).and_then(|s| s.expires_at) == Some(t) {
                        self.terminate(&key, TerminationReason::Timeout, None, true);
                    }
                }
                TimerKind::Refresh => {
                    let Some(s) = self.subs.get_mut(&key) else {
                        continue;
                    };
                    if s.refresh_at != Some(t) {
                        continue;
                    }
                    let Some(remote) = s.remote.clone() else {
                        continue;
                    };
                    let Some(d) = self.cfg.upstream_expires.get(&remote).copied() else {
                        continue;
                    };
                    let next = now + Duration::from_secs(u64::from(d) * 4 / 5);
                    s.refresh_at = Some(next);
                    let op = Operation::Subscribe(Subscribe {
                        trans_id: TransId(0),
                        watcher: s.watcher.clone(),
                        target: s.presentity.clone(),
                        duration: d,
                    });
                    self.timers.insert((next, TimerKind::Refresh, key.clone()));
                    self.save(&key);
                    self.push_deliver(remote, op);
                }
                TimerKind::PubExpiry => {
                    if self.pubs.get(&key).map(|p| p.expires_at) == Some(t) {
                        let p = self.pubs.remove(&key);
                        self.actions
                            .push_back(Action::DeletePublication(key.clone()));
                        let _ = p.map(|p| p.presentity);
                        let keys: Vec<String> = self
                            .by_presentity
                            .get(&key)
                            .map(|s| {
                                s.iter()
                                    .filter(|k| self.subs[*k].remote.is_none())
                                    .cloned()
                                    .collect()
                            })
                            .unwrap_or_default();
                        if !keys.is_empty() {
                            self.fan_out(now, &key, keys);
                        }
                    }
                }
                TimerKind::Gate => {
                    let Some(g) = self.gates.get_mut(&key) else {
                        continue;
                    };
                    g.armed = false;
                    let dirty: Vec<String> = g.dirty.drain().collect();
                    g.last_sent = Some(now);
                    for k in dirty {
                        if self
                            .subs
                            .get(&k)
                            .is_some_and(|s| s.state == SubState::Active)
                        {
                            self.notify_watcher(&k, now, true);
                        }
                    }
                }
                TimerKind::Fetch => {
                    if self.fetches.get(&key).is_some_and(|f| f.until == t) {
                        self.fetches.remove(&key);
                    }
                }
            }
        }
        // Forget gates nobody needs any more.
        let interval = self.cfg.notify_interval;
        self.gates.retain(|_, g| {
            g.armed || !g.dirty.is_empty() || g.last_sent.is_some_and(|t| now < t + interval)
        });
    }
}
