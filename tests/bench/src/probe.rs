//! The measurement state every role shares: when each message was sent, what arrived at
//! the far end, what was answered, and the delays. One process, one clock (`t0`).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Instant;

use crate::stats::{Delays, SeqTracker};
use crate::template::split_tag;

/// No step is running: arrivals are counted as stale.
pub const NO_STEP: u64 = u64::MAX;

/// Shared counters and timestamps of the current step.
#[derive(Debug)]
pub struct Probe {
    t0: Instant,
    step: AtomicU64,
    sent_at: Vec<AtomicU64>,
    /// The far end received it (SIP UAS or component server), each tag once.
    pub delivered: SeqTracker,
    /// A final response came back (any code).
    pub answered: SeqTracker,
    /// Final responses other than 2xx.
    pub non2xx: AtomicU64,
    /// The last non-2xx code seen (for the report).
    pub last_failure_code: AtomicU64,
    /// XMPP error stanzas received.
    pub errors: AtomicU64,
    /// Arrivals carrying another step's tag (late traffic of an earlier step).
    pub stale: AtomicU64,
    /// SIP retransmissions (a request with the tag and the Via branch of one already
    /// delivered): the sender's transaction layer resending, not a duplicate delivery.
    pub retransmissions: AtomicU64,
    /// Arrivals without a readable tag.
    pub untagged: AtomicU64,
    /// Presence notifications received (fan-out), counted with duplicates.
    pub notifications: AtomicU64,
    /// Presence stanzas of any kind received by the component server.
    pub presence_stanzas: AtomicU64,
    /// Component handshakes completed by the server.
    pub component_sessions: AtomicU64,
    /// When the last notification of the step arrived (ns after the start).
    pub last_notification_ns: AtomicU64,
    delivery_delays: Mutex<Vec<u32>>,
    answer_delays: Mutex<Vec<u32>>,
    branches: Vec<AtomicU64>,
}

impl Probe {
    /// Room for `capacity` messages per step.
    pub fn new(capacity: u64) -> Probe {
        Probe {
            t0: Instant::now(),
            step: AtomicU64::new(NO_STEP),
            sent_at: (0..capacity).map(|_| AtomicU64::new(0)).collect(),
            delivered: SeqTracker::new(capacity),
            answered: SeqTracker::new(capacity),
            non2xx: AtomicU64::new(0),
            last_failure_code: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            stale: AtomicU64::new(0),
            untagged: AtomicU64::new(0),
            notifications: AtomicU64::new(0),
            presence_stanzas: AtomicU64::new(0),
            component_sessions: AtomicU64::new(0),
            last_notification_ns: AtomicU64::new(0),
            delivery_delays: Mutex::new(Vec::with_capacity(capacity as usize)),
            answer_delays: Mutex::new(Vec::with_capacity(capacity as usize)),
            branches: (0..capacity).map(|_| AtomicU64::new(0)).collect(),
            retransmissions: AtomicU64::new(0),
        }
    }

    /// Messages a step may send.
    pub fn capacity(&self) -> u64 {
        self.sent_at.len() as u64
    }

    /// Nanoseconds since the probe was made.
    pub fn now_ns(&self) -> u64 {
        self.t0.elapsed().as_nanos() as u64
    }

    /// The running step (or [`NO_STEP`]).
    pub fn step(&self) -> u64 {
        self.step.load(Ordering::Acquire)
    }

    /// Clears everything and starts step `step`.
    pub fn begin(&self, step: u8) {
        self.step.store(NO_STEP, Ordering::Release);
        self.delivered.clear();
        self.answered.clear();
        for a in [
            &self.non2xx,
            &self.last_failure_code,
            &self.errors,
            &self.stale,
            &self.untagged,
            &self.notifications,
            &self.last_notification_ns,
            &self.retransmissions,
        ] {
            a.store(0, Ordering::Relaxed);
        }
        lock(&self.delivery_delays).clear();
        lock(&self.answer_delays).clear();
        self.step.store(u64::from(step), Ordering::Release);
    }

    /// Ends the step: later arrivals are stale.
    pub fn end(&self) {
        self.step.store(NO_STEP, Ordering::Release);
    }

    /// Records that sequence number `seq` is being sent now.
    #[inline]
    pub fn on_sent(&self, seq: u64) {
        if let Some(a) = self.sent_at.get(seq as usize) {
            a.store(self.now_ns().max(1), Ordering::Release);
        }
    }

    fn current(&self, tag: u64) -> Option<u64> {
        let (step, seq) = split_tag(tag);
        if u64::from(step) != self.step() || seq >= self.capacity() {
            self.stale.fetch_add(1, Ordering::Relaxed);
            return None;
        }
        Some(seq)
    }

    fn delay_us(&self, seq: u64) -> Option<u32> {
        let at = self.sent_at.get(seq as usize)?.load(Ordering::Acquire);
        (at != 0).then(|| (self.now_ns().saturating_sub(at) / 1000).min(u64::from(u32::MAX)) as u32)
    }

    /// The far end received the message with `tag` (None: no tag found).
    #[inline]
    pub fn on_delivered(&self, tag: Option<u64>) {
        let Some(tag) = tag else {
            self.untagged.fetch_add(1, Ordering::Relaxed);
            return;
        };
        let Some(seq) = self.current(tag) else { return };
        if self.delivered.mark(seq) == crate::stats::Mark::First {
            if let Some(d) = self.delay_us(seq) {
                lock(&self.delivery_delays).push(d);
            }
        }
    }

    /// A SIP request with `tag` and the hash of its top Via branch arrived at the UAS: a
    /// retransmission of a delivered request (same branch, RFC 3261 s17.2.2) is counted as
    /// such; the same tag with another branch is a duplicate delivery.
    #[inline]
    pub fn on_sip_delivered(&self, tag: Option<u64>, branch: u64) {
        let Some(t) = tag else {
            self.untagged.fetch_add(1, Ordering::Relaxed);
            return;
        };
        let (step, seq) = split_tag(t);
        if u64::from(step) == self.step() && self.delivered.seen(seq) {
            if let Some(b) = self.branches.get(seq as usize) {
                if b.load(Ordering::Acquire) == branch {
                    self.retransmissions.fetch_add(1, Ordering::Relaxed);
                    return;
                }
            }
        } else if u64::from(step) == self.step() {
            if let Some(b) = self.branches.get(seq as usize) {
                b.store(branch, Ordering::Release);
            }
        }
        self.on_delivered(tag);
    }

    /// A final response `code` to the request with `tag` came back.
    #[inline]
    pub fn on_answer(&self, tag: Option<u64>, code: u16) {
        let Some(tag) = tag else {
            self.untagged.fetch_add(1, Ordering::Relaxed);
            return;
        };
        let Some(seq) = self.current(tag) else { return };
        if self.answered.mark(seq) == crate::stats::Mark::First {
            if !(200..300).contains(&code) {
                self.non2xx.fetch_add(1, Ordering::Relaxed);
                self.last_failure_code
                    .store(u64::from(code), Ordering::Relaxed);
            }
            if let Some(d) = self.delay_us(seq) {
                lock(&self.answer_delays).push(d);
            }
        }
    }

    /// A presence notification about the publication with `tag` arrived.
    #[inline]
    pub fn on_notification(&self, tag: Option<u64>) {
        let Some(tag) = tag else {
            self.untagged.fetch_add(1, Ordering::Relaxed);
            return;
        };
        let Some(seq) = self.current(tag) else { return };
        self.notifications.fetch_add(1, Ordering::Relaxed);
        self.last_notification_ns
            .fetch_max(self.now_ns(), Ordering::Relaxed);
        if let Some(d) = self.delay_us(seq) {
            lock(&self.delivery_delays).push(d);
        }
    }

    /// An error stanza arrived.
    pub fn on_error(&self) {
        self.errors.fetch_add(1, Ordering::Relaxed);
    }

    /// Summaries of the delivery delays (send -> far end) and answer delays (send -> final
    /// response) of the current step.
    pub fn delays(&self) -> (Delays, Delays) {
        let mut d = lock(&self.delivery_delays).clone();
        let mut a = lock(&self.answer_delays).clone();
        (Delays::of(&mut d), Delays::of(&mut a))
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::template::tag;

    #[test]
    fn arrivals_of_other_steps_are_stale_and_duplicates_counted() {
        let p = Probe::new(100);
        p.begin(3);
        for s in 0..10 {
            p.on_sent(s);
        }
        p.on_delivered(Some(tag(3, 1)));
        p.on_delivered(Some(tag(3, 1)));
        p.on_delivered(Some(tag(2, 2)));
        p.on_delivered(Some(tag(3, 500)));
        p.on_delivered(None);
        p.on_answer(Some(tag(3, 1)), 200);
        p.on_answer(Some(tag(3, 2)), 486);
        assert_eq!(p.delivered.missing(10), 9);
        assert_eq!(p.delivered.duplicates(), 1);
        assert_eq!(p.stale.load(Ordering::Relaxed), 2);
        assert_eq!(p.untagged.load(Ordering::Relaxed), 1);
        assert_eq!(p.non2xx.load(Ordering::Relaxed), 1);
        assert_eq!(p.last_failure_code.load(Ordering::Relaxed), 486);
        let (d, a) = p.delays();
        assert_eq!((d.count, a.count), (1, 2));
        // SIP: the same branch again is a retransmission, another branch a duplicate
        p.on_sip_delivered(Some(tag(3, 7)), 11);
        p.on_sip_delivered(Some(tag(3, 7)), 11);
        assert_eq!(p.retransmissions.load(Ordering::Relaxed), 1);
        assert_eq!(p.delivered.duplicates(), 1);
        p.on_sip_delivered(Some(tag(3, 7)), 12);
        assert_eq!(p.delivered.duplicates(), 2);
        p.begin(4);
        assert_eq!(p.delivered.missing(10), 10);
        assert_eq!(p.retransmissions.load(Ordering::Relaxed), 0);
        assert_eq!(p.delays().0.count, 0);
        p.end();
        p.on_delivered(Some(tag(4, 1)));
        assert_eq!(p.stale.load(Ordering::Relaxed), 1);
    }
}
