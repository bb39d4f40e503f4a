//! Opaque paging tokens for `groupMessages/query`.
//!
//! A token is `base64(salt[6] ‖ offset u32 BE ‖ mac[16])`, where `mac` is a
//! truncated HMAC-SHA256 over `salt ‖ offset ‖ processQueryKey` under a
//! per-server random key. Tokens are therefore unguessable, differ on every
//! page request, and only work for the key they were issued for; anything
//! else is a bad cursor.

use base64::Engine as _;
use hmac::{Hmac, KeyInit, Mac};
use rand::Rng as _;
use sha2::Sha256;

const SALT: usize = 6;
const OFFSET: usize = 4;
const MAC: usize = 16;

fn mac(key: &[u8; 32], head: &[u8], pqk: &str) -> Option<Hmac<Sha256>> {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).ok()?;
    mac.update(head);
    mac.update(pqk.as_bytes());
    Some(mac)
}

/// Issues a token that resumes reading `pqk` at `offset`.
pub(crate) fn encode(key: &[u8; 32], pqk: &str, offset: usize) -> String {
    let salt: [u8; SALT] = rand::rng().random();
    let mut raw = Vec::with_capacity(SALT + OFFSET + MAC);
    raw.extend_from_slice(&salt);
    raw.extend_from_slice(&u32::try_from(offset).unwrap_or(u32::MAX).to_be_bytes());
    if let Some(m) = mac(key, &raw, pqk) {
        raw.extend_from_slice(&m.finalize().into_bytes()[..MAC]);
    }
    base64::engine::general_purpose::STANDARD.encode(raw)
}

/// The offset in a token issued for `pqk`, or `None` if it is not one.
pub(crate) fn decode(key: &[u8; 32], pqk: &str, token: &str) -> Option<usize> {
    let raw = base64::engine::general_purpose::STANDARD
        .decode(token)
        .ok()?;
    if raw.len() != SALT + OFFSET + MAC {
        return None;
    }
    let (head, tag) = raw.split_at(SALT + OFFSET);
    mac(key, head, pqk)?.verify_truncated_left(tag).ok()?;
    let offset: [u8; OFFSET] = head[SALT..].try_into().ok()?;
    usize::try_from(u32::from_be_bytes(offset)).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_rejects_foreign_or_tampered_tokens() {
        let key = [7u8; 32];
        let t = encode(&key, "pqk-a", 200);
        assert_eq!(decode(&key, "pqk-a", &t), Some(200));
        assert_eq!(decode(&key, "pqk-b", &t), None);
        assert_eq!(decode(&[8u8; 32], "pqk-a", &t), None);
        assert_ne!(encode(&key, "pqk-a", 200), t, "salted");
        let mut bytes = base64::engine::general_purpose::STANDARD
            .decode(&t)
            .unwrap();
        bytes[SALT + OFFSET - 1] ^= 1;
        let tampered = base64::engine::general_purpose::STANDARD.encode(bytes);
        assert_eq!(decode(&key, "pqk-a", &tampered), None);
        assert_eq!(decode(&key, "pqk-a", "200"), None);
        assert_eq!(decode(&key, "pqk-a", "not base64!"), None);
    }
}
