//! Reconnect delays: exponential from `base` to `cap`, with "equal jitter"
//! (half the step is fixed, half random), so a delay is never below half its
//! step and many clients do not reconnect in lock-step.

use rand::Rng as _;
use std::time::Duration;

/// Exponential backoff with jitter. Not thread-safe; one per connection loop.
#[derive(Debug, Clone)]
pub struct Backoff {
    base: Duration,
    cap: Duration,
    failures: u32,
}

impl Backoff {
    /// A backoff starting at `base`, never above `cap`.
    pub fn new(base: Duration, cap: Duration) -> Self {
        Self {
            base,
            cap: cap.max(base),
            failures: 0,
        }
    }

    /// Failures since the last reset.
    pub fn failures(&self) -> u32 {
        self.failures
    }

    /// The un-jittered step for the `n`-th consecutive failure (1-based):
    /// `base · 2^(n-1)`, capped.
    pub fn step(&self, n: u32) -> Duration {
        let factor = 1u32.checked_shl(n.saturating_sub(1)).unwrap_or(u32::MAX);
        self.base.saturating_mul(factor).min(self.cap)
    }

    /// The smallest delay `next` can return for the `n`-th failure.
    pub fn min_delay(&self, n: u32) -> Duration {
        self.step(n) / 2
    }

    /// Records a failure and returns how long to wait before the next try:
    /// uniformly random in `[step/2, step]`.
    pub fn next_delay(&mut self) -> Duration {
        self.failures = self.failures.saturating_add(1);
        let step = self.step(self.failures);
        let half = step / 2;
        let spread = u64::try_from((step - half).as_micros()).unwrap_or(u64::MAX);
        let extra = if spread == 0 {
            0
        } else {
            rand::rng().random_range(0..=spread)
        };
        half + Duration::from_micros(extra)
    }

    /// Forgets past failures (after a healthy connection).
    pub fn reset(&mut self) {
        self.failures = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_from_base_to_cap_with_bounded_jitter() {
        let mut b = Backoff::new(Duration::from_secs(1), Duration::from_secs(60));
        let steps: Vec<u64> = (1..=9).map(|n| b.step(n).as_secs()).collect();
        assert_eq!(steps, vec![1, 2, 4, 8, 16, 32, 60, 60, 60]);
        for n in 1..=40 {
            let d = b.next_delay();
            assert_eq!(b.failures(), n);
            assert!(d >= b.min_delay(n) && d <= b.step(n), "{n}: {d:?}");
            assert!(d <= Duration::from_secs(60));
        }
        b.reset();
        assert_eq!(b.failures(), 0);
        let d = b.next_delay();
        assert!(d >= Duration::from_millis(500) && d <= Duration::from_secs(1));
    }

    #[test]
    fn jitter_spreads_delays() {
        let mut seen = std::collections::HashSet::new();
        for _ in 0..20 {
            let mut b = Backoff::new(Duration::from_secs(1), Duration::from_secs(60));
            b.next_delay();
            seen.insert(b.next_delay());
        }
        assert!(seen.len() > 1, "delays should differ between clients");
    }

    #[test]
    fn huge_failure_counts_do_not_overflow() {
        let b = Backoff::new(Duration::from_millis(10), Duration::from_secs(60));
        assert_eq!(b.step(u32::MAX), Duration::from_secs(60));
        let z = Backoff::new(Duration::ZERO, Duration::ZERO);
        assert_eq!(z.clone().next_delay(), Duration::ZERO);
    }
}
