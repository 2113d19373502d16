//! Counting what arrived: sequence-number tracking (loss and duplicates) and percentiles.

use std::sync::atomic::{AtomicU64, Ordering};

/// What [`SeqTracker::mark`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mark {
    /// The first arrival of this sequence number.
    First,
    /// It had arrived before.
    Duplicate,
    /// Beyond the tracker's capacity (a corrupted or foreign number).
    OutOfRange,
}

/// A lock-free bitmap of the sequence numbers seen; shared by the threads that receive.
#[derive(Debug)]
pub struct SeqTracker {
    bits: Vec<AtomicU64>,
    dups: AtomicU64,
}

impl SeqTracker {
    /// Room for sequence numbers `0..capacity`.
    pub fn new(capacity: u64) -> Self {
        let words = capacity.div_ceil(64) as usize;
        SeqTracker {
            bits: (0..words).map(|_| AtomicU64::new(0)).collect(),
            dups: AtomicU64::new(0),
        }
    }

    /// The number of sequence numbers it can hold.
    pub fn capacity(&self) -> u64 {
        self.bits.len() as u64 * 64
    }

    /// Records the arrival of `seq`.
    pub fn mark(&self, seq: u64) -> Mark {
        let Some(word) = self.bits.get((seq / 64) as usize) else {
            return Mark::OutOfRange;
        };
        let bit = 1u64 << (seq % 64);
        if word.fetch_or(bit, Ordering::AcqRel) & bit != 0 {
            self.dups.fetch_add(1, Ordering::Relaxed);
            Mark::Duplicate
        } else {
            Mark::First
        }
    }

    /// True if `seq` has arrived.
    pub fn seen(&self, seq: u64) -> bool {
        self.bits
            .get((seq / 64) as usize)
            .is_some_and(|w| w.load(Ordering::Acquire) & (1u64 << (seq % 64)) != 0)
    }

    /// How many of `0..sent` have arrived (each counted once).
    pub fn count_seen(&self, sent: u64) -> u64 {
        let full = (sent / 64) as usize;
        let mut n: u64 = self.bits[..full.min(self.bits.len())]
            .iter()
            .map(|w| u64::from(w.load(Ordering::Acquire).count_ones()))
            .sum();
        let rest = sent % 64;
        if rest != 0 {
            if let Some(w) = self.bits.get(full) {
                let mask = (1u64 << rest) - 1;
                n += u64::from((w.load(Ordering::Acquire) & mask).count_ones());
            }
        }
        n
    }

    /// How many of `0..sent` have not arrived.
    pub fn missing(&self, sent: u64) -> u64 {
        sent - self.count_seen(sent)
    }

    /// Arrivals beyond the first.
    pub fn duplicates(&self) -> u64 {
        self.dups.load(Ordering::Relaxed)
    }

    /// Forgets everything (between steps of a search).
    pub fn clear(&self) {
        for w in &self.bits {
            w.store(0, Ordering::Relaxed);
        }
        self.dups.store(0, Ordering::Release);
    }
}

/// The nearest-rank percentile `p` (0 < p <= 100) of an ascending slice: the smallest
/// value such that at least `p` percent of the values are less than or equal to it.
pub fn percentile(sorted: &[u32], p: f64) -> Option<u32> {
    if sorted.is_empty() || !(p > 0.0 && p <= 100.0) {
        return None;
    }
    let n = sorted.len();
    let rank = ((p / 100.0) * n as f64).ceil() as usize;
    Some(sorted[rank.clamp(1, n) - 1])
}

/// p50, p99 and max of a set of delays in microseconds (sorted in place).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
pub struct Delays {
    /// Samples.
    pub count: usize,
    /// Median, us.
    pub p50_us: u32,
    /// 99th percentile, us.
    pub p99_us: u32,
    /// Largest, us.
    pub max_us: u32,
}

impl Delays {
    /// Sorts `samples` and summarises them (all zero when empty).
    pub fn of(samples: &mut [u32]) -> Delays {
        samples.sort_unstable();
        Delays {
            count: samples.len(),
            p50_us: percentile(samples, 50.0).unwrap_or(0),
            p99_us: percentile(samples, 99.0).unwrap_or(0),
            max_us: samples.last().copied().unwrap_or(0),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn loss_and_duplicates_are_found() {
        let t = SeqTracker::new(1000);
        for s in 0..1000u64 {
            if s % 10 != 3 {
                assert_eq!(t.mark(s), Mark::First);
            }
        }
        assert_eq!(t.mark(5), Mark::Duplicate);
        assert_eq!(t.mark(999), Mark::Duplicate);
        assert_eq!(t.mark(1024), Mark::OutOfRange);
        assert_eq!(t.missing(1000), 100);
        assert_eq!(t.duplicates(), 2);
        assert!(t.seen(4) && !t.seen(3));
        // only the first 70 were "sent": 7 of them (3, 13, .., 63) missing
        assert_eq!(t.missing(70), 7);
        t.clear();
        assert_eq!(t.missing(1000), 1000);
        assert_eq!(t.duplicates(), 0);
    }

    #[test]
    fn nearest_rank_percentiles() {
        let v: Vec<u32> = (1..=100).collect();
        assert_eq!(percentile(&v, 50.0), Some(50));
        assert_eq!(percentile(&v, 99.0), Some(99));
        assert_eq!(percentile(&v, 100.0), Some(100));
        assert_eq!(percentile(&v, 0.5), Some(1));
        assert_eq!(percentile(&[7], 99.0), Some(7));
        assert_eq!(percentile(&[], 50.0), None);
        assert_eq!(percentile(&v, 0.0), None);
        let mut s = vec![5, 1, 9, 3];
        let d = Delays::of(&mut s);
        assert_eq!((d.count, d.p50_us, d.p99_us, d.max_us), (4, 3, 9, 9));
    }

    proptest! {
        #[test]
        fn percentile_bounds(mut v in proptest::collection::vec(0u32..1_000_000, 1..500), p in 1.0f64..100.0) {
            v.sort_unstable();
            let x = percentile(&v, p).unwrap();
            let le = v.iter().filter(|&&y| y <= x).count() as f64;
            let lt = v.iter().filter(|&&y| y < x).count() as f64;
            prop_assert!(le >= p / 100.0 * v.len() as f64);
            prop_assert!(lt < p / 100.0 * v.len() as f64);
        }

        #[test]
        fn missing_matches_a_set(marks in proptest::collection::vec(0u64..300, 0..400), sent in 0u64..300) {
            let t = SeqTracker::new(300);
            let mut set = std::collections::BTreeSet::new();
            let mut dups = 0;
            for m in marks { if !set.insert(m) { dups += 1; } t.mark(m); }
            prop_assert_eq!(t.missing(sent), sent - set.iter().filter(|&&m| m < sent).count() as u64);
            prop_assert_eq!(t.duplicates(), dups);
        }
    }
}
