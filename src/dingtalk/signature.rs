//! Callback signatures: `sign = base64(HmacSHA256(key = appSecret, msg = timestamp + "\n" + appSecret))`.
//!
//! The key state is computed once ([`Verifier::new`]) and cloned per request.
//! Comparison is constant-time; the timestamp must be within the window of
//! the local clock: five minutes either way by default, at most DingTalk's
//! documented hour ([`MAX_WINDOW_MS`]).

use crate::config::Secret;
use base64::Engine as _;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

type HmacSha256 = Hmac<Sha256>;

/// Why a callback signature was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    /// No `timestamp` header.
    #[error("missing timestamp header")]
    MissingTimestamp,
    /// The timestamp is not a decimal millisecond epoch.
    #[error("timestamp is not a millisecond epoch")]
    BadTimestamp,
    /// The timestamp is outside the accepted window.
    #[error("timestamp is outside the accepted window")]
    Stale,
    /// No `sign` header.
    #[error("missing sign header")]
    MissingSign,
    /// The signature does not match.
    #[error("signature mismatch")]
    Mismatch,
}

/// Precomputed HMAC state for one app secret.
#[derive(Clone)]
pub struct Verifier {
    mac: HmacSha256,
    secret_suffix: Vec<u8>,
    window_ms: i64,
}

impl std::fmt::Debug for Verifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Verifier")
            .field("window_ms", &self.window_ms)
            .finish_non_exhaustive()
    }
}

/// Default accepted clock difference: five minutes either way (as Slack's
/// request verification): a captured header pair is worth little for long.
pub const DEFAULT_WINDOW_MS: i64 = 5 * 60 * 1000;

/// The widest window: DingTalk calls a request older or newer than an hour
/// illegal.
pub const MAX_WINDOW_MS: i64 = 60 * 60 * 1000;

impl Verifier {
    /// Builds a verifier for `secret` with the given window.
    pub fn new(secret: &Secret, window_ms: i64) -> Self {
        let key = secret.expose().as_bytes();
        // HMAC accepts keys of any length, so this cannot fail; fall back to
        // an empty key defensively rather than panicking.
        let mac = HmacSha256::new_from_slice(key)
            .unwrap_or_else(|_| HmacSha256::new_from_slice(&[]).unwrap_or_else(|_| unreachable!()));
        let mut secret_suffix = Vec::with_capacity(key.len() + 1);
        secret_suffix.push(b'\n');
        secret_suffix.extend_from_slice(key);
        Self {
            mac,
            secret_suffix,
            window_ms,
        }
    }

    /// The raw 32-byte HMAC for a timestamp string.
    fn mac_for(&self, timestamp: &str) -> [u8; 32] {
        let mut mac = self.mac.clone();
        mac.update(timestamp.as_bytes());
        mac.update(&self.secret_suffix);
        let out = mac.finalize().into_bytes();
        let mut arr = [0u8; 32];
        arr.copy_from_slice(&out);
        arr
    }

    /// The base64 `sign` for a timestamp string (used by tests and the fake's clients).
    pub fn sign(&self, timestamp: &str) -> String {
        base64::engine::general_purpose::STANDARD.encode(self.mac_for(timestamp))
    }

    /// Checks the `timestamp` and `sign` header values against `now_ms`.
    pub fn verify(
        &self,
        timestamp: Option<&str>,
        sign: Option<&str>,
        now_ms: i64,
    ) -> Result<(), SignatureError> {
        self.verified_timestamp(timestamp, sign, now_ms).map(|_| ())
    }

    /// [`Verifier::verify`], returning the signed millisecond timestamp (what
    /// names the header pair: the `sign` is a function of it).
    pub fn verified_timestamp(
        &self,
        timestamp: Option<&str>,
        sign: Option<&str>,
        now_ms: i64,
    ) -> Result<i64, SignatureError> {
        let ts = timestamp.ok_or(SignatureError::MissingTimestamp)?;
        if ts.is_empty() || ts.len() > 19 || !ts.bytes().all(|b| b.is_ascii_digit()) {
            return Err(SignatureError::BadTimestamp);
        }
        let ts_ms: i64 = ts.parse().map_err(|_| SignatureError::BadTimestamp)?;
        if (now_ms.saturating_sub(ts_ms)).abs() > self.window_ms {
            return Err(SignatureError::Stale);
        }
        let sign = sign.ok_or(SignatureError::MissingSign)?;
        // A valid sign is exactly 44 base64 characters; decode rather than
        // compare strings so the comparison is over the raw MAC bytes.
        let given = base64::engine::general_purpose::STANDARD
            .decode(sign.trim())
            .map_err(|_| SignatureError::Mismatch)?;
        let expected = self.mac_for(ts);
        if given.len() == expected.len() && bool::from(given.ct_eq(&expected)) {
            Ok(ts_ms)
        } else {
            Err(SignatureError::Mismatch)
        }
    }
}

/// Computes a callback `sign` for `timestamp` and `secret` in one go.
pub fn sign(timestamp: &str, secret: &Secret) -> String {
    Verifier::new(secret, DEFAULT_WINDOW_MS).sign(timestamp)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn v(secret: &str) -> Verifier {
        Verifier::new(&Secret::new(secret.to_owned()), DEFAULT_WINDOW_MS)
    }

    #[test]
    fn documented_vectors() {
        let rows = [
            (
                "1577262236757",
                "this is a secret",
                "DJrE6qdyVGCQz9z5r2MDuNcNAhwYnuAkyj13cx169CA=",
            ),
            (
                "1700000000000",
                "SECtest0123456789abcdef",
                "/lfnxUUu80FwVTsIlv2F1cMGBb+PxEKAwYh/bsRxXcc=",
            ),
            (
                "1690362102194",
                "GT-lsu-taDAxxxsTsxxxx",
                "PqqTyBa9AsKY3GD61zq8yGqcf7pEoacjeIcVItwnsqQ=",
            ),
        ];
        for (ts, secret, want) in rows {
            assert_eq!(v(secret).sign(ts), want);
            let now: i64 = ts.parse().unwrap();
            assert_eq!(v(secret).verify(Some(ts), Some(want), now), Ok(()));
        }
    }

    #[test]
    fn fails_closed() {
        let v = v("this is a secret");
        let ts = "1577262236757";
        let now: i64 = ts.parse().unwrap();
        let good = "DJrE6qdyVGCQz9z5r2MDuNcNAhwYnuAkyj13cx169CA=";
        assert_eq!(
            v.verify(None, Some(good), now),
            Err(SignatureError::MissingTimestamp)
        );
        assert_eq!(
            v.verify(Some("abc"), Some(good), now),
            Err(SignatureError::BadTimestamp)
        );
        assert_eq!(
            v.verify(Some("-5"), Some(good), now),
            Err(SignatureError::BadTimestamp)
        );
        assert_eq!(
            v.verify(Some(""), Some(good), now),
            Err(SignatureError::BadTimestamp)
        );
        assert_eq!(
            v.verify(Some(ts), None, now),
            Err(SignatureError::MissingSign)
        );
        assert_eq!(
            v.verify(Some(ts), Some("AAAA"), now),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            v.verify(Some(ts), Some("%%%"), now),
            Err(SignatureError::Mismatch)
        );
        let hour = DEFAULT_WINDOW_MS;
        assert_eq!(hour, 300_000, "five minutes by default");
        assert_eq!(
            v.verified_timestamp(Some(ts), Some(good), now),
            Ok(1_577_262_236_757)
        );
        assert_eq!(
            v.verify(Some(ts), Some(good), now + hour + 1),
            Err(SignatureError::Stale)
        );
        assert_eq!(
            v.verify(Some(ts), Some(good), now - hour - 1),
            Err(SignatureError::Stale)
        );
        assert_eq!(v.verify(Some(ts), Some(good), now + hour), Ok(()));
    }

    proptest! {
        #[test]
        fn never_panics_and_only_the_right_sign_passes(ts in "\\PC{0,24}", sign in "\\PC{0,64}", now in any::<i64>()) {
            let v = v("k");
            let _ = v.verify(Some(&ts), Some(&sign), now);
            if let Ok(()) = v.verify(Some(&ts), Some(&sign), now) {
                prop_assert_eq!(base64::engine::general_purpose::STANDARD.decode(sign.trim()).unwrap(),
                    base64::engine::general_purpose::STANDARD.decode(v.sign(&ts)).unwrap());
            }
        }

        #[test]
        fn own_signatures_verify(ts in 0i64..4_000_000_000_000i64) {
            let v = v("secret");
            let s = ts.to_string();
            prop_assert_eq!(v.verify(Some(&s), Some(&v.sign(&s)), ts), Ok(()));
        }
    }
}
