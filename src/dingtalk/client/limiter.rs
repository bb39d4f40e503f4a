//! Client-side rate limiter: one token bucket per API.
//!
//! A caller that finds the bucket empty *reserves* a token (the count goes
//! negative) and sleeps until it would have been refilled: no busy-wait, and
//! callers are served in arrival order at `per_sec` calls per second.

use std::sync::Mutex;
use tokio::time::{Duration, Instant};

/// A token bucket holding at most `per_sec` tokens, refilled at `per_sec`/s.
#[derive(Debug)]
pub(crate) struct RateLimiter {
    rate: f64,
    burst: f64,
    state: Mutex<Bucket>,
}

#[derive(Debug)]
struct Bucket {
    tokens: f64,
    last: Instant,
}

impl RateLimiter {
    pub(crate) fn new(per_sec: u32) -> Self {
        let rate = f64::from(per_sec.max(1));
        Self {
            rate,
            burst: rate,
            state: Mutex::new(Bucket {
                tokens: rate,
                last: Instant::now(),
            }),
        }
    }

    /// Takes one token at `now`; returns how long the caller must wait first.
    pub(crate) fn reserve(&self, now: Instant) -> Option<Duration> {
        let mut b = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let elapsed = now.saturating_duration_since(b.last).as_secs_f64();
        b.last = now.max(b.last);
        b.tokens = (b.tokens + elapsed * self.rate).min(self.burst) - 1.0;
        if b.tokens >= 0.0 {
            None
        } else {
            Some(Duration::from_secs_f64(-b.tokens / self.rate))
        }
    }

    /// Waits (asynchronously) for a slot.
    pub(crate) async fn acquire(&self) {
        if let Some(wait) = self.reserve(Instant::now()) {
            tokio::time::sleep(wait).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn burst_then_spaced_slots() {
        let l = RateLimiter::new(10);
        let t0 = Instant::now();
        for _ in 0..10 {
            assert_eq!(l.reserve(t0), None);
        }
        // The 11th and 12th calls at the same instant wait 100 ms and 200 ms.
        let w1 = l.reserve(t0).unwrap();
        let w2 = l.reserve(t0).unwrap();
        assert!((w1.as_secs_f64() - 0.1).abs() < 1e-6, "{w1:?}");
        assert!((w2.as_secs_f64() - 0.2).abs() < 1e-6, "{w2:?}");
        // A second later the bucket has refilled what was reserved and more.
        assert_eq!(l.reserve(t0 + Duration::from_secs(2)), None);
    }
}
