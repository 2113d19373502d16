//! Delivery outcomes, sans-IO: when may the gateway tell the source that XMPP took an
//! operation?
//!
//! Each delivery is the stanzas of one operation followed on the same stream by an
//! XEP-0199 ping to the destination's server (the *ordering barrier*). A server handles
//! a stream in order, so an error it bounces synchronously for the stanzas (a
//! nonexistent user: `service-unavailable` / `item-not-found`) arrives before the ping's
//! result. The delivery resolves:
//! - with the mapped error (RFC 7247 s7.1) when an error stanza carrying one of its ids
//!   comes back;
//! - with success when a positive signal arrives (an XEP-0184 receipt);
//! - with success `grace` after the barrier's answer (result or error), if no error
//!   came first;
//! - with 408 at its deadline.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use cpim_core::model::Status;

#[derive(Debug)]
struct Entry {
    stanza_ids: Vec<String>,
    ping_id: Option<String>,
    settle_at: Option<Instant>,
    deadline: Instant,
}

/// The pending deliveries of one stream.
#[derive(Debug)]
pub struct DeliveryTracker {
    grace: Duration,
    entries: HashMap<u64, Entry>,
    by_id: HashMap<String, u64>,
}

impl DeliveryTracker {
    /// A tracker with the given grace window after the barrier.
    pub fn new(grace: Duration) -> DeliveryTracker {
        DeliveryTracker {
            grace,
            entries: HashMap::new(),
            by_id: HashMap::new(),
        }
    }

    /// Number of unresolved deliveries.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True if nothing is pending.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Starts tracking delivery `key`: its stanzas' ids, its barrier ping's id.
    pub fn track(
        &mut self,
        key: u64,
        stanza_ids: Vec<String>,
        ping_id: Option<String>,
        deadline: Instant,
        now: Instant,
    ) {
        for id in &stanza_ids {
            self.by_id.insert(id.clone(), key);
        }
        if let Some(p) = &ping_id {
            self.by_id.insert(p.clone(), key);
        }
        let settle_at = if ping_id.is_none() {
            Some(now + self.grace)
        } else {
            None
        };
        self.entries.insert(
            key,
            Entry {
                stanza_ids,
                ping_id,
                settle_at,
                deadline,
            },
        );
    }

    /// True if `id` belongs to a tracked delivery.
    pub fn knows(&self, id: &str) -> bool {
        self.by_id.contains_key(id)
    }

    /// A result or error came back for `id`. Returns a resolved delivery, if any.
    pub fn on_response(
        &mut self,
        id: &str,
        result: Result<(), Status>,
        now: Instant,
    ) -> Option<(u64, Status)> {
        let key = *self.by_id.get(id)?;
        let entry = self.entries.get_mut(&key)?;
        let is_ping = entry.ping_id.as_deref() == Some(id);
        if is_ping {
            // The barrier passed (a ping error, e.g. a server without XEP-0199, still
            // proves that everything before it was processed).
            entry.settle_at = Some(now + self.grace);
            self.by_id.remove(id);
            return None;
        }
        match result {
            Err(status) => {
                self.remove(key);
                Some((key, status))
            }
            Ok(()) => None,
        }
    }

    /// A positive delivery signal (XEP-0184 receipt) for stanza `id`.
    pub fn on_receipt(&mut self, id: &str) -> Option<(u64, Status)> {
        let key = *self.by_id.get(id)?;
        let entry = self.entries.get(&key)?;
        if entry.ping_id.as_deref() == Some(id) {
            return None;
        }
        self.remove(key);
        Some((key, Status::ok()))
    }

    fn remove(&mut self, key: u64) -> Option<Entry> {
        let e = self.entries.remove(&key)?;
        for id in e.stanza_ids.iter().chain(e.ping_id.iter()) {
            self.by_id.remove(id);
        }
        Some(e)
    }

    /// The next instant [`Self::handle_timeout`] has something to do.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.entries
            .values()
            .map(|e| e.settle_at.map_or(e.deadline, |s| s.min(e.deadline)))
            .min()
    }

    /// Resolves what is due: successes after barrier + grace, 408 at the deadline.
    pub fn handle_timeout(&mut self, now: Instant) -> Vec<(u64, Status)> {
        let due: Vec<(u64, bool)> = self
            .entries
            .iter()
            .filter_map(|(k, e)| match e.settle_at {
                Some(s) if s <= now => Some((*k, true)),
                _ if e.deadline <= now => Some((*k, false)),
                _ => None,
            })
            .collect();
        let mut out = Vec::with_capacity(due.len());
        for (k, ok) in due {
            self.remove(k);
            out.push((
                k,
                if ok {
                    Status::ok()
                } else {
                    Status::new(408, "no answer from the XMPP server in time")
                },
            ));
        }
        out
    }

    /// Stops tracking `key` (its stream is gone); true if it was tracked.
    pub fn forget(&mut self, key: u64) -> bool {
        self.remove(key).is_some()
    }

    /// The stream is gone: everything unresolved fails with `status`.
    pub fn fail_all(&mut self, status: &Status) -> Vec<(u64, Status)> {
        let keys: Vec<u64> = self.entries.keys().copied().collect();
        self.by_id.clear();
        self.entries.clear();
        keys.into_iter().map(|k| (k, status.clone())).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_before_barrier_wins() {
        let t = Instant::now();
        let mut tr = DeliveryTracker::new(Duration::from_millis(200));
        tr.track(
            1,
            vec!["m1".into()],
            Some("p1".into()),
            t + Duration::from_secs(10),
            t,
        );
        let r = tr.on_response("m1", Err(Status::new(503, "service-unavailable")), t);
        assert_eq!(r, Some((1, Status::new(503, "service-unavailable"))));
        assert!(tr.is_empty());
        // The late ping result is ignored.
        assert_eq!(tr.on_response("p1", Ok(()), t), None);
    }

    #[test]
    fn barrier_then_grace_gives_success_and_a_late_error_in_grace_still_wins() {
        let t = Instant::now();
        let mut tr = DeliveryTracker::new(Duration::from_millis(200));
        tr.track(
            1,
            vec!["m1".into()],
            Some("p1".into()),
            t + Duration::from_secs(10),
            t,
        );
        tr.track(
            2,
            vec!["m2".into()],
            Some("p2".into()),
            t + Duration::from_secs(10),
            t,
        );
        assert_eq!(tr.poll_timeout(), Some(t + Duration::from_secs(10)));
        assert_eq!(tr.on_response("p1", Ok(()), t), None);
        assert_eq!(tr.on_response("p2", Ok(()), t), None);
        assert_eq!(tr.poll_timeout(), Some(t + Duration::from_millis(200)));
        let e = tr.on_response(
            "m2",
            Err(Status::new(404, "x")),
            t + Duration::from_millis(100),
        );
        assert_eq!(e.map(|x| x.1.code), Some(404));
        let done = tr.handle_timeout(t + Duration::from_millis(200));
        assert_eq!(done, vec![(1, Status::ok())]);
    }

    #[test]
    fn no_answer_gives_408_and_link_loss_fails_all() {
        let t = Instant::now();
        let mut tr = DeliveryTracker::new(Duration::from_millis(200));
        tr.track(
            1,
            vec!["m1".into()],
            Some("p1".into()),
            t + Duration::from_secs(1),
            t,
        );
        tr.track(
            2,
            vec!["m2".into()],
            Some("p2".into()),
            t + Duration::from_secs(5),
            t,
        );
        let done = tr.handle_timeout(t + Duration::from_secs(1));
        assert_eq!(done.len(), 1);
        assert_eq!(done[0].0, 1);
        assert_eq!(done[0].1.code, 408);
        let all = tr.fail_all(&Status::new(408, "lost"));
        assert_eq!(all.len(), 1);
        assert!(tr.is_empty());
    }

    #[test]
    fn receipt_resolves_success() {
        let t = Instant::now();
        let mut tr = DeliveryTracker::new(Duration::from_millis(200));
        tr.track(
            9,
            vec!["m1".into()],
            Some("p1".into()),
            t + Duration::from_secs(1),
            t,
        );
        assert_eq!(tr.on_receipt("m1"), Some((9, Status::ok())));
        assert!(tr.is_empty());
    }
}
