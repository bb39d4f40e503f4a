//! Rate-limited logging of attack signals: a flood of forged callbacks must
//! not become a flood of log lines (disk, log shipping), yet the first one
//! of each minute is seen.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

/// Allows one log line per period; counts the lines it held back.
#[derive(Debug)]
pub(crate) struct LogEvery {
    period_ms: i64,
    /// Epoch milliseconds at which the next line may be written.
    next: AtomicI64,
    suppressed: AtomicU64,
}

impl LogEvery {
    /// One line a minute.
    pub(crate) const fn minute() -> Self {
        Self {
            period_ms: 60_000,
            next: AtomicI64::new(i64::MIN),
            suppressed: AtomicU64::new(0),
        }
    }

    /// `Some(held back since the last line)` when a line is due at `now_ms`
    /// (the caller writes it); `None` when this one is held back.
    pub(crate) fn due(&self, now_ms: i64) -> Option<u64> {
        let next = self.next.load(Ordering::SeqCst);
        if now_ms >= next
            && self
                .next
                .compare_exchange(
                    next,
                    now_ms.saturating_add(self.period_ms),
                    Ordering::SeqCst,
                    Ordering::SeqCst,
                )
                .is_ok()
        {
            return Some(self.suppressed.swap(0, Ordering::SeqCst));
        }
        self.suppressed.fetch_add(1, Ordering::SeqCst);
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_a_minute_and_the_count_of_the_rest() {
        let log = LogEvery::minute();
        assert_eq!(log.due(1_000), Some(0));
        assert_eq!(log.due(1_001), None);
        assert_eq!(log.due(60_999), None);
        assert_eq!(log.due(61_000), Some(2));
        assert_eq!(log.due(61_000), None);
        assert_eq!(log.due(i64::MAX), Some(1));
        // No overflow at the end of time (the deadline saturates).
        let _ = log.due(i64::MAX);
    }

    #[test]
    fn racing_callers_write_one_line() {
        let log = std::sync::Arc::new(LogEvery::minute());
        let due: usize = (0..8)
            .map(|_| {
                let log = log.clone();
                std::thread::spawn(move || (0..1000).filter(|_| log.due(5_000).is_some()).count())
            })
            .map(|t| t.join().unwrap())
            .sum();
        assert_eq!(due, 1);
    }
}
