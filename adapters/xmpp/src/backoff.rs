//! Reconnect backoff: exponential, capped, with jitter ("equal jitter": a delay is drawn
//! from the upper half of the current step, so two gateways restarted together spread
//! out but none retries at once).

use std::time::Duration;

/// The backoff state.
#[derive(Clone, Debug)]
pub struct Backoff {
    initial: Duration,
    max: Duration,
    attempt: u32,
}

impl Backoff {
    /// Steps start at `initial` and double up to `max`.
    pub fn new(initial: Duration, max: Duration) -> Backoff {
        Backoff {
            initial: initial.max(Duration::from_millis(1)),
            max: max.max(initial),
            attempt: 0,
        }
    }

    /// The step before jitter for the next attempt.
    pub fn step(&self) -> Duration {
        let factor = 1u32.checked_shl(self.attempt.min(20)).unwrap_or(u32::MAX);
        self.initial.saturating_mul(factor).min(self.max)
    }

    /// The next delay, given a uniform random value in `[0, 1)`.
    pub fn next_delay(&mut self, random: f64) -> Duration {
        let step = self.step();
        self.attempt = self.attempt.saturating_add(1);
        let half = step / 2;
        half + half.mul_f64(random.clamp(0.0, 1.0))
    }

    /// A successful connection: start again from `initial`.
    pub fn reset(&mut self) {
        self.attempt = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_caps_jitters_and_resets() {
        let mut b = Backoff::new(Duration::from_millis(100), Duration::from_secs(1));
        let d: Vec<Duration> = (0..6).map(|_| b.next_delay(1.0)).collect();
        assert_eq!(
            d.iter().map(|d| d.as_millis()).collect::<Vec<_>>(),
            vec![100, 200, 400, 800, 1000, 1000]
        );
        let low = b.next_delay(0.0);
        assert_eq!(low, Duration::from_millis(500));
        b.reset();
        assert_eq!(b.step(), Duration::from_millis(100));
    }
}
