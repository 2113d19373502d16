//! Open-loop pacing (RFC 7501 s3: the offered rate does not depend on answers).
//!
//! The sender asks [`Pacer::batch`] how many messages are due at the elapsed time and
//! sends them back to back (one batch per wake-up), then sleeps until [`Pacer::next_due_ns`].
//! A sender that falls behind sends bigger batches; it never slows the schedule down.

/// Messages due after `elapsed_ns` at `rate` per second: `floor(elapsed * rate / 1e9)`.
pub fn due(elapsed_ns: u64, rate: u64) -> u64 {
    ((u128::from(elapsed_ns) * u128::from(rate)) / 1_000_000_000) as u64
}

/// The instant (ns after the start) at which message number `n` (0-based) is due:
/// the smallest `t` with `due(t, rate) > n`.
pub fn due_at_ns(n: u64, rate: u64) -> u64 {
    if rate == 0 {
        return u64::MAX;
    }
    // smallest t with t * rate >= (n + 1) * 1e9
    let need = (u128::from(n) + 1) * 1_000_000_000;
    need.div_ceil(u128::from(rate)).min(u128::from(u64::MAX)) as u64
}

/// A fixed-rate schedule of `total` messages.
#[derive(Debug, Clone)]
pub struct Pacer {
    rate: u64,
    total: u64,
    sent: u64,
}

impl Pacer {
    /// `total` messages at `rate` per second.
    pub fn new(rate: u64, total: u64) -> Self {
        Pacer {
            rate,
            total,
            sent: 0,
        }
    }

    /// How many to send now (and counts them as sent): the messages due at `elapsed_ns`
    /// not yet handed out, capped by `max_batch` (the rest stay due for the next call).
    pub fn batch(&mut self, elapsed_ns: u64, max_batch: u64) -> u64 {
        let due = due(elapsed_ns, self.rate).min(self.total);
        let n = due.saturating_sub(self.sent).min(max_batch);
        self.sent += n;
        n
    }

    /// Messages handed out so far.
    pub fn sent(&self) -> u64 {
        self.sent
    }

    /// True when all `total` messages have been handed out.
    pub fn done(&self) -> bool {
        self.sent >= self.total
    }

    /// When the next message is due (ns after the start); `u64::MAX` when done.
    pub fn next_due_ns(&self) -> u64 {
        if self.done() {
            u64::MAX
        } else {
            due_at_ns(self.sent, self.rate)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn due_counts_whole_messages() {
        assert_eq!(due(0, 1000), 0);
        assert_eq!(due(999_999, 1000), 0);
        assert_eq!(due(1_000_000, 1000), 1);
        assert_eq!(due(1_000_000_000, 50_000), 50_000);
        // no overflow at large values
        assert_eq!(due(3_600_000_000_000, 1_000_000), 3_600_000_000);
    }

    #[test]
    fn pacer_hands_out_exactly_total_over_the_run() {
        let mut p = Pacer::new(10_000, 25_000);
        let mut total = 0;
        let mut t = 0;
        while !p.done() {
            t += 1_000_000; // 1 ms ticks
            total += p.batch(t, u64::MAX);
        }
        assert_eq!(total, 25_000);
        // 25k messages at 10k/s take 2.5 s
        assert_eq!(t, 2_500_000_000);
        assert_eq!(p.batch(t + 1_000_000_000, u64::MAX), 0);
    }

    #[test]
    fn batch_cap_leaves_the_rest_due() {
        let mut p = Pacer::new(1000, 100);
        assert_eq!(p.batch(50_000_000, 10), 10);
        assert_eq!(p.batch(50_000_000, 100), 40);
        assert_eq!(p.sent(), 50);
    }

    proptest! {
        #[test]
        fn next_due_is_the_first_instant_the_count_grows(n in 0u64..1_000_000, rate in 1u64..2_000_000) {
            let t = due_at_ns(n, rate);
            prop_assert!(due(t, rate) > n);
            prop_assert!(t == 0 || due(t - 1, rate) <= n);
        }
    }
}
