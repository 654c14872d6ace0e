//! The one backoff rule of the project, for the loops that wait between attempts above the SDK
//! (a shard reader pausing after the SDK gave up, `PutRecords` entries sent again, the warehouse
//! loader, Data API polling): exponential from `initial`, doubling up to `max`, with **full
//! jitter** (a uniform wait in `[0, ceiling]`, AWS's recommendation for many clients retrying at
//! once). What is retryable is decided by the caller; this only says how long to wait.

use rand::Rng;
use std::time::Duration;

/// Waits between attempts: `attempt` k (1-based) waits uniformly in `[0, min(max, initial·2^k)]`.
#[derive(Debug, Clone)]
pub struct Backoff {
    initial: Duration,
    max: Duration,
    failures: u32,
}

impl Backoff {
    /// A backoff starting at `initial` and capped at `max` (raised to `initial` if lower).
    pub fn new(initial: Duration, max: Duration) -> Self {
        Backoff {
            initial,
            max: max.max(initial),
            failures: 0,
        }
    }

    /// Counts a failure and returns the wait before the next attempt.
    pub fn next_delay(&mut self) -> Duration {
        self.failures = self.failures.saturating_add(1);
        self.ceiling().mul_f64(rand::thread_rng().gen::<f64>())
    }

    /// The largest wait the current failure count allows.
    pub fn ceiling(&self) -> Duration {
        self.initial
            .saturating_mul(1 << self.failures.min(16))
            .min(self.max)
    }

    /// Failures in a row since the last success.
    pub fn failures(&self) -> u32 {
        self.failures
    }

    /// After a success: the next failure starts from `initial` again.
    pub fn reset(&mut self) {
        self.failures = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_grow_to_the_cap_with_full_jitter_and_reset() {
        let mut b = Backoff::new(Duration::from_millis(100), Duration::from_secs(5));
        let mut ceilings = Vec::new();
        for _ in 0..10 {
            let d = b.next_delay();
            assert!(d <= b.ceiling(), "{d:?} above {:?}", b.ceiling());
            ceilings.push(b.ceiling().as_millis());
        }
        assert_eq!(ceilings[..6], [200, 400, 800, 1600, 3200, 5000]);
        assert_eq!(b.failures(), 10);
        b.reset();
        assert_eq!(b.failures(), 0);
        assert_eq!(b.ceiling(), Duration::from_millis(100));
        // Full jitter: not always the ceiling.
        let waits: Vec<Duration> = (0..20).map(|_| b.next_delay()).collect();
        assert!(waits.iter().any(|w| *w < Duration::from_secs(4)));
    }
}
