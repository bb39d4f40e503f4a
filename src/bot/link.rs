//! Signed, expiring page links: a capability for one notice's page (or one
//! group's), so whoever holds the link may see the page until it expires and
//! nobody can make one without the key.
//!
//! A token is `base64url(payload) "." base64url(HMAC-SHA256(key, payload))`
//! (no padding: it sits in a URL path), where the payload is
//! `v1 ":" kind ":" expiry ":" id` (`kind` `n` for a notice, `g` for a group;
//! `expiry` in epoch milliseconds). The signature is checked, in constant
//! time, before anything in the payload is believed; only a genuine token can
//! be reported as expired.

use crate::domain::{EpochMillis, OpenConversationId, ProcessQueryKey};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// Longest token accepted (a 128-character id makes a token of about 250).
const MAX_TOKEN_CHARS: usize = 512;

/// Bytes of a generated link key.
pub const GENERATED_KEY_BYTES: usize = 32;

/// What a link opens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LinkTarget {
    /// The page of one notice (`/n/{token}`).
    Notice(ProcessQueryKey),
    /// The page of one group (`/g/{token}`).
    Group(OpenConversationId),
}

/// Why a token was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum LinkError {
    /// Not a token readbot signed (tampered, cut, made up, another key).
    #[error("the link is invalid")]
    Invalid,
    /// A genuine token whose time is up.
    #[error("the link has expired")]
    Expired,
}

/// A minted link: its token and when it expires.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MintedLink {
    /// The token (URL-safe).
    pub token: String,
    /// Expiry (epoch ms).
    pub expires_at: EpochMillis,
}

/// A token that passed [`LinkSigner::verify`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenedLink {
    /// What it opens.
    pub target: LinkTarget,
    /// When it expires (epoch ms).
    pub expires_at: EpochMillis,
}

/// Signs and checks link tokens with one key.
#[derive(Clone)]
pub struct LinkSigner {
    mac: HmacSha256,
}

impl std::fmt::Debug for LinkSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LinkSigner { key: <redacted> }")
    }
}

/// A fresh random link key.
pub fn generate_key() -> [u8; GENERATED_KEY_BYTES] {
    rand::random()
}

impl LinkSigner {
    /// A signer with `key` (any length: HMAC takes keys of every size).
    pub fn new(key: &[u8]) -> Self {
        let mac = <HmacSha256 as KeyInit>::new_from_slice(key).unwrap_or_else(|_| {
            // HMAC accepts keys of any length; this branch is not reached.
            <HmacSha256 as KeyInit>::new(&Default::default())
        });
        Self { mac }
    }

    fn tag(&self, payload: &[u8]) -> HmacSha256 {
        let mut mac = self.mac.clone();
        mac.update(payload);
        mac
    }

    /// The token for `target`, valid until `expires_at`.
    pub fn sign(&self, target: &LinkTarget, expires_at: EpochMillis) -> String {
        let (kind, id) = match target {
            LinkTarget::Notice(k) => ("n", k.as_str()),
            LinkTarget::Group(g) => ("g", g.as_str()),
        };
        let payload = format!("v1:{kind}:{expires_at}:{id}");
        let tag = self.tag(payload.as_bytes()).finalize().into_bytes();
        format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(payload.as_bytes()),
            URL_SAFE_NO_PAD.encode(tag)
        )
    }

    /// What `token` opens, if readbot signed it with this key and it has
    /// not expired at `now`.
    pub fn verify(&self, token: &str, now: EpochMillis) -> Result<OpenedLink, LinkError> {
        if token.len() > MAX_TOKEN_CHARS {
            return Err(LinkError::Invalid);
        }
        let (payload, tag) = token.split_once('.').ok_or(LinkError::Invalid)?;
        let payload = URL_SAFE_NO_PAD
            .decode(payload)
            .map_err(|_| LinkError::Invalid)?;
        let tag = URL_SAFE_NO_PAD
            .decode(tag)
            .map_err(|_| LinkError::Invalid)?;
        self.tag(&payload)
            .verify_slice(&tag)
            .map_err(|_| LinkError::Invalid)?;
        // Signed by us from here on; still parsed without trust in its shape.
        let payload = std::str::from_utf8(&payload).map_err(|_| LinkError::Invalid)?;
        let mut parts = payload.splitn(4, ':');
        let (Some("v1"), Some(kind), Some(expiry), Some(id)) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(LinkError::Invalid);
        };
        let expiry: EpochMillis = expiry.parse().map_err(|_| LinkError::Invalid)?;
        let target = match kind {
            "n" => LinkTarget::Notice(ProcessQueryKey::parse(id).map_err(|_| LinkError::Invalid)?),
            "g" => {
                LinkTarget::Group(OpenConversationId::parse(id).map_err(|_| LinkError::Invalid)?)
            }
            _ => return Err(LinkError::Invalid),
        };
        if now >= expiry {
            return Err(LinkError::Expired);
        }
        Ok(OpenedLink {
            target,
            expires_at: expiry,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(s: &str) -> ProcessQueryKey {
        ProcessQueryKey::parse(s).unwrap()
    }

    #[test]
    fn a_signed_link_opens_its_notice_until_it_expires() {
        let s = LinkSigner::new(b"0123456789abcdef0123456789abcdef");
        let target = LinkTarget::Notice(key("Kna29Ra5+/pdJ=="));
        let t = s.sign(&target, 10_000);
        assert!(
            t.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.'),
            "URL-safe: {t}"
        );
        assert_eq!(
            s.verify(&t, 9_999),
            Ok(OpenedLink {
                target,
                expires_at: 10_000
            })
        );
        assert_eq!(s.verify(&t, 10_000), Err(LinkError::Expired));
        let g = LinkTarget::Group(OpenConversationId::parse("cid1==").unwrap());
        assert_eq!(s.verify(&s.sign(&g, 5), 4).map(|o| o.target), Ok(g));
    }

    #[test]
    fn tampered_cut_foreign_and_junk_tokens_are_invalid() {
        let s = LinkSigner::new(b"key one");
        let t = s.sign(&LinkTarget::Notice(key("k1")), 10_000);
        let (payload, tag) = t.split_once('.').unwrap();
        // Another notice (or a later expiry) under the old signature.
        let forged_payload = URL_SAFE_NO_PAD.encode("v1:n:99999999:k2");
        assert_eq!(
            s.verify(&format!("{forged_payload}.{tag}"), 0),
            Err(LinkError::Invalid)
        );
        // One flipped character of the signature, a cut one, none at all.
        let mut flipped: Vec<char> = tag.chars().collect();
        flipped[3] = if flipped[3] == 'A' { 'B' } else { 'A' };
        let flipped: String = flipped.into_iter().collect();
        for bad in [
            format!("{payload}.{flipped}"),
            format!("{payload}.{}", &tag[..10]),
            payload.to_string(),
            String::new(),
            "..".into(),
            "x".repeat(2_000),
        ] {
            assert_eq!(s.verify(&bad, 0), Err(LinkError::Invalid), "{bad}");
        }
        // Another key's token is invalid, even when expired: expiry is
        // only reported for genuine tokens.
        let other = LinkSigner::new(b"key two");
        assert_eq!(other.verify(&t, 0), Err(LinkError::Invalid));
        assert_eq!(other.verify(&t, 20_000), Err(LinkError::Invalid));
        assert!(!format!("{s:?}").contains("key one"));
    }
}
