//! Client-side rate limiter: one sliding window per API.
//!
//! DingTalk counts calls per second and API; a token bucket holding a full
//! second's burst lets up to twice the limit through in one second (a burst,
//! then the refill). This limiter hands out *slots* instead: no more than
//! `per_sec` slots fall into any window of [`WINDOW`] (one second plus a
//! margin for network jitter, so DingTalk never sees more than `per_sec`
//! arrivals in one second). A caller that finds the window full reserves the
//! next free slot and sleeps until then: no busy-wait, callers are served in
//! arrival order, and bursts up to the limit go out at once.

use std::collections::VecDeque;
use std::sync::Mutex;
use tokio::time::{Duration, Instant};

/// Length of the window holding at most `per_sec` calls.
pub(crate) const WINDOW: Duration = Duration::from_millis(1100);

/// At most `limit` slots in any [`WINDOW`].
#[derive(Debug)]
pub(crate) struct RateLimiter {
    limit: usize,
    /// The last `limit` slots handed out, in order.
    slots: Mutex<VecDeque<Instant>>,
}

impl RateLimiter {
    pub(crate) fn new(per_sec: u32) -> Self {
        let limit = usize::try_from(per_sec.max(1)).unwrap_or(usize::MAX);
        Self {
            limit,
            slots: Mutex::new(VecDeque::with_capacity(limit.min(4096))),
        }
    }

    /// Takes the next slot at or after `now`; returns how long the caller
    /// must wait for it.
    pub(crate) fn reserve(&self, now: Instant) -> Option<Duration> {
        let mut q = self.slots.lock().unwrap_or_else(|e| e.into_inner());
        // Slots never go backwards, so waiters keep their order.
        let mut slot = q.back().map_or(now, |&last| last.max(now));
        if q.len() >= self.limit {
            // The slot `limit` places back must have left the window.
            slot = slot.max(q[q.len() - self.limit] + WINDOW);
        }
        q.push_back(slot);
        while q.len() > self.limit {
            q.pop_front();
        }
        let wait = slot.saturating_duration_since(now);
        (!wait.is_zero()).then_some(wait)
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
    use proptest::prelude::*;

    #[test]
    fn burst_then_wait_for_the_window() {
        let l = RateLimiter::new(10);
        let t0 = Instant::now();
        for _ in 0..10 {
            assert_eq!(l.reserve(t0), None);
        }
        // The 11th and 12th calls at the same instant wait for the window.
        assert_eq!(l.reserve(t0), Some(WINDOW));
        assert_eq!(l.reserve(t0), Some(WINDOW));
        // Long after, the window is empty again.
        assert_eq!(l.reserve(t0 + Duration::from_secs(10)), None);
    }

    proptest! {
        /// Whatever the arrival pattern, no window of [`WINDOW`] holds more
        /// than the limit, and nobody waits when the window has room.
        #[test]
        fn never_more_than_the_limit_in_any_window(
            limit in 1u32..30,
            gaps in proptest::collection::vec(0u64..400, 1..300),
        ) {
            let l = RateLimiter::new(limit);
            let t0 = Instant::now();
            let mut now = t0;
            let mut slots = Vec::new();
            for g in gaps {
                now += Duration::from_millis(g);
                let slot = now + l.reserve(now).unwrap_or_default();
                slots.push(slot);
            }
            for (i, s) in slots.iter().enumerate() {
                let in_window = slots[i..].iter().filter(|t| **t < *s + WINDOW).count();
                prop_assert!(in_window <= limit as usize, "{} slots in one window", in_window);
            }
            prop_assert!(slots.windows(2).all(|w| w[0] <= w[1]));
        }
    }
}
