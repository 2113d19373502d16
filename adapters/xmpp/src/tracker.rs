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

//!
//! Several deliveries may share one barrier: the adapter writes every operation that is
//! waiting, then one ping per destination domain, and tracks each delivery with that
//! ping's id. Timers are kept in ordered sets, so the work per event does not grow with
//! the number of deliveries in flight.
//!
//! Outcomes are bound to their link (RFC 6120 s8.3.1, s13.1 threat model): no other
//! party can guess or predict a stanza id ([`crate::ids`]: 128 random bits, or a message
//! id with a 96-bit keyed mac), and each delivery and barrier records the domain it was addressed to.
//! An error, receipt or barrier answer counts only when its `from` is in that domain
//! ([`DeliveryTracker::on_response`] and [`DeliveryTracker::on_receipt`] take the
//! sender's domain); the caller checks that the stanza arrived on a stream where that
//! domain may speak (the component link; in s2s an incoming stream authenticated for
//! it, or our outgoing stream to it).

use std::collections::{BTreeSet, HashMap};
use std::time::{Duration, Instant};

use cpim_core::model::Status;
use cpim_core::StatusCode;

pub use crate::ids::StanzaIds;

/// The domain of a JID (or of a bare domain), in the form outcomes are compared in:
/// ASCII lower case, no trailing dot.
pub fn jid_domain(jid: &str) -> String {
    let bare = jid.split('/').next().unwrap_or("");
    bare.rsplit('@')
        .next()
        .unwrap_or("")
        .trim_end_matches('.')
        .to_ascii_lowercase()
}

#[derive(Debug)]
struct Entry {
    /// The domain the stanzas went to: only it may report their outcome.
    peer: String,
    stanza_ids: Vec<String>,
    settle_at: Option<Instant>,
    deadline: Instant,
}

/// The pending deliveries of one stream.
#[derive(Debug)]
pub struct DeliveryTracker {
    grace: Duration,
    entries: HashMap<u64, Entry>,
    /// Stanza id -> delivery.
    by_id: HashMap<String, u64>,
    /// Barrier ping id -> the domain it went to and the deliveries waiting for it.
    pings: HashMap<String, (String, Vec<u64>)>,
    deadlines: BTreeSet<(Instant, u64)>,
    settles: BTreeSet<(Instant, u64)>,
}

impl DeliveryTracker {
    /// A tracker with the given grace window after the barrier.
    pub fn new(grace: Duration) -> DeliveryTracker {
        DeliveryTracker {
            grace,
            entries: HashMap::new(),
            by_id: HashMap::new(),
            pings: HashMap::new(),
            deadlines: BTreeSet::new(),
            settles: BTreeSet::new(),
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

    /// Starts tracking delivery `key` sent to domain `peer`: its stanzas' ids and the id
    /// of the barrier ping written after them to the same domain (several deliveries may
    /// name the same ping). Without a ping the delivery settles `grace` from `now`.
    pub fn track(
        &mut self,
        key: u64,
        peer: &str,
        stanza_ids: Vec<String>,
        ping_id: Option<&str>,
        deadline: Instant,
        now: Instant,
    ) {
        let peer = jid_domain(peer);
        for id in &stanza_ids {
            self.by_id.insert(id.clone(), key);
        }
        let settle_at = match ping_id {
            Some(p) => {
                match self.pings.get_mut(p) {
                    Some((_, keys)) => keys.push(key),
                    None => {
                        self.pings.insert(p.to_owned(), (peer.clone(), vec![key]));
                    }
                }
                None
            }
            None => {
                let at = now + self.grace;
                self.settles.insert((at, key));
                Some(at)
            }
        };
        self.deadlines.insert((deadline, key));
        self.entries.insert(
            key,
            Entry {
                peer,
                stanza_ids,
                settle_at,
                deadline,
            },
        );
    }

    /// True if `id` belongs to a tracked delivery (a stanza or a barrier ping).
    pub fn knows(&self, id: &str) -> bool {
        self.by_id.contains_key(id) || self.pings.contains_key(id)
    }

    /// A result or error came back for `id` from domain `from` (the sender's JID or
    /// domain). Returns a resolved delivery, if any. An answer from any other domain than
    /// the one the stanza went to is ignored.
    pub fn on_response(
        &mut self,
        id: &str,
        from: &str,
        result: Result<(), Status>,
        now: Instant,
    ) -> Option<(u64, Status)> {
        let from = jid_domain(from);
        if self.pings.get(id).is_some_and(|(peer, _)| *peer == from) {
            let (_, keys) = self.pings.remove(id)?;
            // The barrier passed (a ping error, e.g. a server without XEP-0199, still
            // proves that everything before it was processed).
            let at = now + self.grace;
            for key in keys {
                if let Some(e) = self.entries.get_mut(&key) {
                    if e.settle_at.is_none() {
                        e.settle_at = Some(at);
                        self.settles.insert((at, key));
                    }
                }
            }
            return None;
        }
        let key = self.key_from(id, &from)?;
        match result {
            Err(status) => {
                self.remove(key);
                Some((key, status))
            }
            Ok(()) => None,
        }
    }

    /// A positive delivery signal (XEP-0184 receipt) for stanza `id` from `from` (the
    /// sender's JID); ignored unless it comes from the domain the stanza went to.
    pub fn on_receipt(&mut self, id: &str, from: &str) -> Option<(u64, Status)> {
        let key = self.key_from(id, &jid_domain(from))?;
        self.remove(key);
        Some((key, Status::ok()))
    }

    /// The delivery stanza `id` belongs to, if `from_domain` is the domain it went to.
    fn key_from(&self, id: &str, from_domain: &str) -> Option<u64> {
        let key = *self.by_id.get(id)?;
        (self.entries.get(&key)?.peer == from_domain).then_some(key)
    }

    fn remove(&mut self, key: u64) -> Option<Entry> {
        let e = self.entries.remove(&key)?;
        for id in &e.stanza_ids {
            self.by_id.remove(id);
        }
        self.deadlines.remove(&(e.deadline, key));
        if let Some(at) = e.settle_at {
            self.settles.remove(&(at, key));
        }
        // A barrier ping still names the key; it is skipped when the ping answers.
        Some(e)
    }

    /// The next instant [`Self::handle_timeout`] has something to do.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let settle = self.settles.first().map(|(t, _)| *t);
        let deadline = self.deadlines.first().map(|(t, _)| *t);
        match (settle, deadline) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Resolves what is due: successes after barrier + grace, 408 at the deadline.
    pub fn handle_timeout(&mut self, now: Instant) -> Vec<(u64, Status)> {
        let mut out = Vec::new();
        while let Some(&(at, key)) = self.settles.first() {
            if at > now {
                break;
            }
            self.remove(key);
            out.push((key, Status::ok()));
        }
        while let Some(&(at, key)) = self.deadlines.first() {
            if at > now {
                break;
            }
            self.remove(key);
            out.push((
                key,
                Status::new(
                    StatusCode::REQUEST_TIMEOUT,
                    "no answer from the XMPP server in time",
                ),
            ));
        }
        if self.entries.is_empty() {
            // Pings whose deliveries all resolved otherwise are not answered any more.
            self.pings.clear();
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
        self.pings.clear();
        self.deadlines.clear();
        self.settles.clear();
        keys.into_iter().map(|k| (k, status.clone())).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The domain every test delivery goes to.
    const P: &str = "peer.test";

    /// Now, and a tracker with a grace period of `grace_ms`.
    fn tracker(grace_ms: u64) -> (Instant, DeliveryTracker) {
        (
            Instant::now(),
            DeliveryTracker::new(Duration::from_millis(grace_ms)),
        )
    }

    /// Tracks delivery `key` of the one stanza `id` to [`P`], with barrier `ping`.
    fn track(
        tr: &mut DeliveryTracker,
        key: u64,
        id: &str,
        ping: &str,
        deadline: Instant,
        now: Instant,
    ) {
        tr.track(key, P, vec![id.into()], Some(ping), deadline, now);
    }

    #[test]
    fn error_before_barrier_wins() {
        let (t, mut tr) = tracker(200);
        track(&mut tr, 1, "m1", "p1", t + Duration::from_secs(10), t);
        let r = tr.on_response(
            "m1",
            P,
            Err(Status::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "service-unavailable",
            )),
            t,
        );
        assert_eq!(
            r,
            Some((
                1,
                Status::new(StatusCode::SERVICE_UNAVAILABLE, "service-unavailable")
            ))
        );
        assert!(tr.is_empty());
        // The late ping result is ignored.
        assert_eq!(tr.on_response("p1", P, Ok(()), t), None);
    }

    #[test]
    fn barrier_then_grace_gives_success_and_a_late_error_in_grace_still_wins() {
        let (t, mut tr) = tracker(200);
        track(&mut tr, 1, "m1", "p1", t + Duration::from_secs(10), t);
        track(&mut tr, 2, "m2", "p2", t + Duration::from_secs(10), t);
        assert_eq!(tr.poll_timeout(), Some(t + Duration::from_secs(10)));
        assert_eq!(tr.on_response("p1", P, Ok(()), t), None);
        assert_eq!(tr.on_response("p2", P, Ok(()), t), None);
        assert_eq!(tr.poll_timeout(), Some(t + Duration::from_millis(200)));
        let e = tr.on_response(
            "m2",
            P,
            Err(Status::new(StatusCode::NOT_FOUND, "x")),
            t + Duration::from_millis(100),
        );
        assert_eq!(e.map(|x| x.1.code), Some(StatusCode::NOT_FOUND));
        let done = tr.handle_timeout(t + Duration::from_millis(200));
        assert_eq!(done, vec![(1, Status::ok())]);
    }

    #[test]
    fn no_answer_gives_408_and_link_loss_fails_all() {
        let (t, mut tr) = tracker(200);
        track(&mut tr, 1, "m1", "p1", t + Duration::from_secs(1), t);
        track(&mut tr, 2, "m2", "p2", t + Duration::from_secs(5), t);
        let done = tr.handle_timeout(t + Duration::from_secs(1));
        assert_eq!(done.len(), 1);
        assert_eq!(done[0].0, 1);
        assert_eq!(done[0].1.code, 408);
        let all = tr.fail_all(&Status::new(StatusCode::REQUEST_TIMEOUT, "lost"));
        assert_eq!(all.len(), 1);
        assert!(tr.is_empty());
    }

    #[test]
    fn receipt_resolves_success() {
        let (t, mut tr) = tracker(200);
        track(&mut tr, 9, "m1", "p1", t + Duration::from_secs(1), t);
        assert_eq!(
            tr.on_receipt("m1", "juliet@peer.test/balcony"),
            Some((9, Status::ok()))
        );
        assert!(tr.is_empty());
    }

    #[test]
    fn one_barrier_covers_a_batch_and_an_error_still_fails_its_own_delivery() {
        let (t, mut tr) = tracker(0);
        let d = t + Duration::from_secs(10);
        for k in 1..=3 {
            tr.track(k, P, vec![format!("m{k}")], Some("p"), d, t);
        }
        assert!(tr.knows("p"));
        assert_eq!(tr.handle_timeout(t), vec![]);
        // m2 bounces before the barrier answers
        assert_eq!(
            tr.on_response(
                "m2",
                P,
                Err(Status::new(StatusCode::NOT_FOUND, "item-not-found")),
                t
            )
            .map(|x| x.0),
            Some(2)
        );
        assert_eq!(tr.on_response("p", P, Ok(()), t), None);
        assert_eq!(tr.poll_timeout(), Some(t));
        let mut done = tr.handle_timeout(t);
        done.sort_by_key(|x| x.0);
        assert_eq!(done, vec![(1, Status::ok()), (3, Status::ok())]);
        assert!(tr.is_empty());
        assert_eq!(tr.poll_timeout(), None);
        assert!(!tr.knows("p"));
    }

    #[test]
    fn timers_stay_ordered_with_many_deliveries_in_flight() {
        let (t, mut tr) = tracker(5);
        for k in 0..1000u64 {
            let d = t + Duration::from_millis(2000 - k);
            tr.track(
                k,
                P,
                vec![format!("m{k}")],
                Some(&format!("p{}", k / 100)),
                d,
                t,
            );
        }
        // the latest-tracked delivery has the earliest deadline
        assert_eq!(tr.poll_timeout(), Some(t + Duration::from_millis(1001)));
        assert_eq!(tr.on_response("p0", P, Ok(()), t), None);
        assert_eq!(tr.poll_timeout(), Some(t + Duration::from_millis(5)));
        let done = tr.handle_timeout(t + Duration::from_millis(5));
        assert_eq!(done.len(), 100);
        assert!(done
            .iter()
            .all(|(k, s)| *k < 100 && s.code == StatusCode::OK));
        let late = tr.handle_timeout(t + Duration::from_millis(1100));
        assert_eq!(late.len(), 100);
        assert!(late
            .iter()
            .all(|(k, s)| *k >= 900 && s.code == StatusCode::REQUEST_TIMEOUT));
        assert_eq!(tr.len(), 800);
    }

    /// RFC 6120 s8.3.1 and s13: an error, receipt or barrier answer for a stanza is only
    /// believed from the domain it was addressed to; another domain that learned or
    /// guessed the id changes nothing.
    #[test]
    fn outcomes_from_another_domain_are_ignored() {
        let (t, mut tr) = tracker(200);
        let d = t + Duration::from_secs(10);
        tr.track(1, "Peer.Test", vec!["m1".into()], Some("p1"), d, t);
        tr.track(2, P, vec!["m2".into()], Some("p2"), d, t);
        let forged = Err(Status::new(StatusCode::NOT_FOUND, "item-not-found"));
        assert_eq!(tr.on_response("m1", "evil.test", forged.clone(), t), None);
        assert_eq!(
            tr.on_response("m1", "mallory@evil.test/x", forged.clone(), t),
            None
        );
        assert_eq!(tr.on_response("m1", "peer.test.evil.test", forged, t), None);
        assert_eq!(tr.on_receipt("m2", "mallory@evil.test"), None);
        // A forged barrier answer does not start the grace period either.
        assert_eq!(tr.on_response("p1", "evil.test", Ok(()), t), None);
        assert_eq!(tr.poll_timeout(), Some(d));
        assert_eq!(tr.len(), 2);
        // The real peer still decides, whatever the case or a trailing dot.
        assert_eq!(
            tr.on_response(
                "m1",
                "juliet@PEER.test./r",
                Err(Status::new(StatusCode::NOT_FOUND, "x")),
                t
            )
            .map(|x| x.1.code),
            Some(StatusCode::NOT_FOUND)
        );
        assert_eq!(tr.on_response("p2", "peer.test", Ok(()), t), None);
        assert_eq!(tr.poll_timeout(), Some(t + Duration::from_millis(200)));
    }

    #[test]
    fn stanza_ids_are_128_random_bits() {
        let mut a = StanzaIds::new();
        let mut b = StanzaIds::new();
        let mut seen = std::collections::HashSet::new();
        for _ in 0..1000 {
            for id in [a.next_id(), b.next_id()] {
                assert_eq!(id.len(), 32, "{id}");
                assert!(id.bytes().all(|c| c.is_ascii_hexdigit()), "{id}");
                assert!(seen.insert(id), "repeated id");
            }
        }
        // No shared prefix or counter: ids of one generator differ early.
        let (x, y) = (a.next_id(), a.next_id());
        assert_ne!(x[..8], y[..8]);
        assert_eq!(format!("{a:?}"), "StanzaIds { .. }");
    }
}
