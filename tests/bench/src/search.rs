//! The zero-failure rate search (RFC 7502 s5, as used in RFC 7501's terminology): run a
//! fixed-length trial at an offered rate; a trial with any failure fails. Start at a
//! guess, double while trials pass, then bisect between the highest passing and the lowest
//! failing rate until they are within `precision` of each other.

/// Search parameters (all reported).
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct SearchConfig {
    /// First rate tried, per second.
    pub start: u64,
    /// Lowest rate worth trying; a failure there ends the search.
    pub min: u64,
    /// Highest rate tried.
    pub max: u64,
    /// Stop when (lowest failing - highest passing) <= precision * lowest failing.
    pub precision: f64,
    /// Most trials.
    pub max_steps: u32,
}

/// The state of one search.
#[derive(Debug, Clone)]
pub struct Search {
    cfg: SearchConfig,
    /// Highest rate that passed (0: none yet).
    pub best: u64,
    /// Lowest rate that failed (None: none yet).
    pub lowest_fail: Option<u64>,
    next: Option<u64>,
    steps: u32,
}

impl Search {
    /// A new search starting at `cfg.start` (clamped to min..=max).
    pub fn new(cfg: SearchConfig) -> Search {
        Search {
            next: Some(cfg.start.clamp(cfg.min.max(1), cfg.max.max(1))),
            cfg,
            best: 0,
            lowest_fail: None,
            steps: 0,
        }
    }

    /// The next rate to try, or None when done.
    pub fn next_rate(&self) -> Option<u64> {
        self.next
    }

    /// Records the outcome of the trial at `rate`.
    pub fn record(&mut self, rate: u64, pass: bool) {
        self.steps += 1;
        if pass {
            self.best = self.best.max(rate);
        } else {
            self.lowest_fail = Some(self.lowest_fail.map_or(rate, |f| f.min(rate)));
        }
        self.next = if self.steps >= self.cfg.max_steps {
            None
        } else {
            match self.lowest_fail {
                None if self.best >= self.cfg.max => None,
                None => Some((self.best * 2).min(self.cfg.max)),
                Some(f) if self.best == 0 && f <= self.cfg.min => None,
                Some(f) => {
                    let lo = self.best.max(self.cfg.min.saturating_sub(1));
                    if f <= lo + 1 || (f - lo) as f64 <= self.cfg.precision * f as f64 {
                        None
                    } else {
                        Some(lo + (f - lo) / 2)
                    }
                }
            }
        };
    }

    /// Trials so far.
    pub fn steps(&self) -> u32 {
        self.steps
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> SearchConfig {
        SearchConfig {
            start: 10_000,
            min: 100,
            max: 1_000_000,
            precision: 0.05,
            max_steps: 30,
        }
    }

    fn run(capacity: u64, c: SearchConfig) -> Search {
        let mut s = Search::new(c);
        while let Some(r) = s.next_rate() {
            s.record(r, r <= capacity);
        }
        s
    }

    #[test]
    fn converges_within_precision_below_the_capacity() {
        for cap in [150u64, 7_777, 10_000, 55_555, 333_333, 999_999] {
            let s = run(cap, cfg());
            assert!(s.best <= cap, "cap {cap}: best {}", s.best);
            let f = s.lowest_fail.unwrap();
            assert!(f > cap);
            assert!(
                (f - s.best) as f64 <= 0.05 * f as f64,
                "cap {cap}: {} .. {f}",
                s.best
            );
            assert!(s.steps() < 20);
        }
    }

    #[test]
    fn stops_at_the_maximum_when_everything_passes() {
        let s = run(u64::MAX, cfg());
        assert_eq!(s.best, 1_000_000);
        assert_eq!(s.lowest_fail, None);
    }

    #[test]
    fn stops_when_even_the_minimum_fails() {
        let s = run(50, cfg());
        assert_eq!(s.best, 0);
        // it closes in on the minimum and stops within the precision of it
        assert!(s.lowest_fail.unwrap() <= 105);
    }

    #[test]
    fn respects_max_steps() {
        let s = run(
            55_555,
            SearchConfig {
                max_steps: 3,
                ..cfg()
            },
        );
        assert_eq!(s.steps(), 3);
        assert_eq!(s.next_rate(), None);
    }
}
