//! The access-token cache: one token per app, refreshed ahead of expiry by a
//! single in-flight request however many callers need it at once.
//!
//! The token value never appears in logs or `Debug` output.

use std::sync::{Arc, Mutex};
use tokio::time::{Duration, Instant};

/// Refresh this long before expiry (5 min, as the official Python SDK does),
/// or at half-life for tokens living less than 10 minutes.
pub(crate) const REFRESH_MARGIN: Duration = Duration::from_secs(300);

/// The longest token lifetime believed: DingTalk documents `expireIn` as
/// 7200 s. A larger (or absurd) value from the wire is clamped to this, so
/// no arithmetic on `Instant` can overflow and a bad answer cannot pin a
/// token in the cache for years.
pub(crate) const MAX_TOKEN_LIFETIME: Duration = Duration::from_secs(7200);

/// The lifetime to cache a token for, from DingTalk's `expireIn` (seconds,
/// as sent: negative, zero or absurdly large values are possible): clamped
/// to `0..=MAX_TOKEN_LIFETIME`.
pub(crate) fn token_lifetime(expire_in_secs: i64) -> Duration {
    let secs = u64::try_from(expire_in_secs).unwrap_or(0);
    Duration::from_secs(secs).min(MAX_TOKEN_LIFETIME)
}

/// A cached token.
#[derive(Clone)]
pub(crate) struct Cached {
    pub token: Arc<str>,
    /// After this instant a caller refreshes before using the token.
    pub refresh_at: Instant,
    /// DingTalk's own expiry: a stale token may still be used until then if
    /// a refresh fails.
    pub expires_at: Instant,
}

impl std::fmt::Debug for Cached {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cached")
            .field("token", &"***")
            .field("refresh_at", &self.refresh_at)
            .field("expires_at", &self.expires_at)
            .finish()
    }
}

impl Cached {
    /// A token fetched at `now`, valid for `expire_in` (clamped to
    /// [`MAX_TOKEN_LIFETIME`]; the additions are checked, an overflow falls
    /// back to "refresh now").
    pub(crate) fn new(token: String, expire_in: Duration, now: Instant) -> Self {
        let expire_in = expire_in.min(MAX_TOKEN_LIFETIME);
        let margin = REFRESH_MARGIN.min(expire_in / 2);
        let refresh_in = expire_in.saturating_sub(margin);
        Self {
            token: token.into(),
            refresh_at: now.checked_add(refresh_in).unwrap_or(now),
            expires_at: now.checked_add(expire_in).unwrap_or(now),
        }
    }
}

/// The cache slot plus the single-flight refresh lock.
#[derive(Debug, Default)]
pub(crate) struct TokenCache {
    slot: Mutex<Option<Cached>>,
    /// Held for the whole refresh: only one token request is ever in flight.
    pub refresh: tokio::sync::Mutex<()>,
    /// The last failed refresh, shared with the callers that waited for it.
    failed: Mutex<Option<(Instant, crate::dingtalk::DingTalkError)>>,
}

impl TokenCache {
    /// The cached entry, fresh or not.
    pub(crate) fn current(&self) -> Option<Cached> {
        self.slot.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// The token if it is not due for refresh.
    pub(crate) fn fresh(&self, now: Instant) -> Option<Arc<str>> {
        self.current()
            .filter(|c| now < c.refresh_at)
            .map(|c| c.token)
    }

    pub(crate) fn store(&self, c: Cached) {
        *self.slot.lock().unwrap_or_else(|e| e.into_inner()) = Some(c);
    }

    /// Remembers a failed refresh.
    pub(crate) fn set_failed(&self, at: Instant, e: crate::dingtalk::DingTalkError) {
        *self.failed.lock().unwrap_or_else(|e| e.into_inner()) = Some((at, e));
    }

    /// A refresh failure that happened at or after `since`.
    pub(crate) fn failed_since(&self, since: Instant) -> Option<crate::dingtalk::DingTalkError> {
        self.failed
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
            .filter(|(at, _)| *at >= since)
            .map(|(_, e)| e.clone())
    }

    /// Drops the cached token if it is still `bad` (another task may already
    /// have replaced it with a fresh one).
    pub(crate) fn invalidate(&self, bad: &str) {
        let mut slot = self.slot.lock().unwrap_or_else(|e| e.into_inner());
        if slot.as_ref().is_some_and(|c| &*c.token == bad) {
            *slot = None;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn margin_is_five_minutes_or_half_life() {
        let now = Instant::now();
        let c = Cached::new("t".into(), Duration::from_secs(7200), now);
        assert_eq!(c.refresh_at - now, Duration::from_secs(6900));
        let c = Cached::new("t".into(), Duration::from_secs(60), now);
        assert_eq!(c.refresh_at - now, Duration::from_secs(30));
        assert!(!format!("{c:?}").contains("\"t\""));
    }

    #[test]
    fn absurd_lifetimes_are_clamped_without_overflow() {
        assert_eq!(token_lifetime(7200), Duration::from_secs(7200));
        assert_eq!(token_lifetime(60), Duration::from_secs(60));
        assert_eq!(token_lifetime(0), Duration::ZERO);
        assert_eq!(token_lifetime(-5), Duration::ZERO);
        assert_eq!(token_lifetime(i64::MAX), MAX_TOKEN_LIFETIME);
        let now = Instant::now();
        // A Duration far past what any Instant can hold: no panic, clamped.
        let c = Cached::new("t".into(), Duration::MAX, now);
        assert_eq!(c.expires_at - now, MAX_TOKEN_LIFETIME);
        assert_eq!(c.refresh_at - now, MAX_TOKEN_LIFETIME - REFRESH_MARGIN);
    }

    #[test]
    fn invalidate_only_the_bad_token() {
        let cache = TokenCache::default();
        let now = Instant::now();
        cache.store(Cached::new("new".into(), Duration::from_secs(7200), now));
        cache.invalidate("old");
        assert_eq!(cache.fresh(now).as_deref(), Some("new"));
        cache.invalidate("new");
        assert!(cache.fresh(now).is_none());
    }
}
