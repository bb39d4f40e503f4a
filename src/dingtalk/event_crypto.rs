//! HTTP event push crypto (事件订阅, HTTP 推送; `dingtalk-api.md` §11.5).
//!
//! DingTalk POSTs `{"encrypt":"<base64>"}` to
//! `<url>?msg_signature=…&timestamp=…&nonce=…` and expects every answer,
//! the `check_url` handshake included, as
//! `{"msg_signature","timeStamp","nonce","encrypt"}` with `encrypt` the
//! encryption of the string `success`.
//!
//! - Signature: lowercase hex `sha1(concat(sorted([token, timestamp, nonce, encrypt])))`,
//!   compared in constant time; the timestamp must be inside the window.
//! - Key: `base64decode(EncodingAESKey + "=")` (43 characters → 32 bytes),
//!   AES-256-CBC with the first 16 key bytes as IV.
//! - Padding: PKCS#7 to a **32-byte** block (pad values 1–32), done here by
//!   hand because the cipher's own PKCS#7 is tied to its 16-byte block.
//! - Plaintext: `random(16) ‖ len(4, big-endian) ‖ msg ‖ ownerKey`, the owner
//!   key being the app key for console-configured subscriptions.

use crate::config::Secret;
use aes::cipher::{Block, BlockModeDecrypt, BlockModeEncrypt, KeyIvInit};
use base64::Engine as _;
use sha1::{Digest, Sha1};
use subtle::ConstantTimeEq;

type Aes256CbcEnc = cbc::Encryptor<aes::Aes256>;
type Aes256CbcDec = cbc::Decryptor<aes::Aes256>;

/// DingTalk's padding block (not AES's 16 bytes).
pub const PAD_BLOCK: usize = 32;
/// Length of an `EncodingAESKey`.
pub const AES_KEY_CHARS: usize = 43;
/// Largest `encrypt` accepted (an event is well under 4 KiB).
pub const MAX_ENCRYPT_CHARS: usize = 64 * 1024;

/// Lenient standard base64: the EncodingAESKey's last character may carry
/// non-zero trailing bits (Java's decoder, which DingTalk uses, ignores them).
const LENIENT: base64::engine::GeneralPurpose = base64::engine::GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    base64::engine::GeneralPurposeConfig::new()
        .with_decode_allow_trailing_bits(true)
        .with_decode_padding_mode(base64::engine::DecodePaddingMode::Indifferent),
);

/// Why a push was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EventCryptoError {
    /// The EncodingAESKey is not 43 base64 characters.
    #[error("the EncodingAESKey must be {AES_KEY_CHARS} base64 characters")]
    BadKey,
    /// A query parameter is missing.
    #[error("missing {0}")]
    Missing(&'static str),
    /// The timestamp is not an epoch in seconds or milliseconds.
    #[error("timestamp is not an epoch")]
    BadTimestamp,
    /// The timestamp is outside the accepted window.
    #[error("timestamp is outside the accepted window")]
    Stale,
    /// The signature does not match.
    #[error("signature mismatch")]
    Mismatch,
    /// `encrypt` is not base64 of whole 32-byte blocks, or too long.
    #[error("encrypt is not a valid ciphertext")]
    BadCiphertext,
    /// The decrypted padding or length prefix is wrong (wrong key).
    #[error("decryption failed (wrong key?)")]
    BadPlaintext,
    /// The plaintext names another owner than this app.
    #[error("the message is for another app")]
    WrongOwner,
    /// The body is not `{"encrypt":"…"}`.
    #[error("the body is not {{\"encrypt\":\"…\"}}")]
    BadBody,
}

impl EventCryptoError {
    /// Whether the request failed authentication (signature, time, key,
    /// owner) rather than being malformed.
    pub fn is_auth(&self) -> bool {
        matches!(
            self,
            Self::Stale | Self::Mismatch | Self::BadPlaintext | Self::WrongOwner
        )
    }
}

/// One push, checked and decrypted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Opened {
    /// The decrypted message (a PascalCase JSON event).
    pub message: String,
}

/// The keys of one app's HTTP event subscription.
#[derive(Clone)]
pub struct EventCrypto {
    token: Secret,
    key: [u8; 32],
    owner: String,
    window_ms: i64,
}

impl std::fmt::Debug for EventCrypto {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventCrypto")
            .field("owner", &self.owner)
            .field("window_ms", &self.window_ms)
            .finish_non_exhaustive()
    }
}

/// Decodes a 43-character EncodingAESKey into the 32-byte AES key.
pub fn decode_aes_key(encoding_aes_key: &str) -> Result<[u8; 32], EventCryptoError> {
    let k = encoding_aes_key.trim();
    if k.len() != AES_KEY_CHARS {
        return Err(EventCryptoError::BadKey);
    }
    let bytes = LENIENT
        .decode(format!("{k}="))
        .map_err(|_| EventCryptoError::BadKey)?;
    bytes.try_into().map_err(|_| EventCryptoError::BadKey)
}

/// `sha1(concat(sorted(parts)))` as lowercase hex.
pub fn signature(parts: [&str; 4]) -> String {
    let mut parts = parts;
    parts.sort_unstable();
    let mut h = Sha1::new();
    for p in parts {
        h.update(p.as_bytes());
    }
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

/// A timestamp in seconds or milliseconds, as epoch milliseconds.
fn timestamp_ms(timestamp: &str) -> Result<i64, EventCryptoError> {
    let t: i64 = timestamp
        .trim()
        .parse()
        .map_err(|_| EventCryptoError::BadTimestamp)?;
    if t <= 0 {
        return Err(EventCryptoError::BadTimestamp);
    }
    // Seconds until the year 5138; DingTalk sends both units.
    if t < 100_000_000_000 {
        t.checked_mul(1000).ok_or(EventCryptoError::BadTimestamp)
    } else {
        Ok(t)
    }
}

impl EventCrypto {
    /// Keys from the settings: `token`, the 43-character `encoding_aes_key`,
    /// the owner key (the app key) and the accepted clock difference.
    pub fn new(
        token: Secret,
        encoding_aes_key: &Secret,
        owner: &str,
        window_ms: i64,
    ) -> Result<Self, EventCryptoError> {
        Ok(Self {
            token,
            key: decode_aes_key(encoding_aes_key.expose())?,
            owner: owner.to_owned(),
            window_ms,
        })
    }

    /// The signature of `(timestamp, nonce, encrypt)` under this token.
    pub fn sign(&self, timestamp: &str, nonce: &str, encrypt: &str) -> String {
        signature([self.token.expose(), timestamp, nonce, encrypt])
    }

    /// Checks the timestamp window (against `now_ms`) and the signature, in
    /// constant time.
    pub fn verify(
        &self,
        signature: &str,
        timestamp: &str,
        nonce: &str,
        encrypt: &str,
        now_ms: i64,
    ) -> Result<(), EventCryptoError> {
        let t = timestamp_ms(timestamp)?;
        if t.abs_diff(now_ms) > self.window_ms.unsigned_abs() {
            return Err(EventCryptoError::Stale);
        }
        let want = self.sign(timestamp, nonce, encrypt);
        let got = signature.trim().to_ascii_lowercase();
        if bool::from(want.as_bytes().ct_eq(got.as_bytes())) {
            Ok(())
        } else {
            Err(EventCryptoError::Mismatch)
        }
    }

    /// Checks and opens one push: `query` is the request's query string
    /// (`msg_signature` or `signature`, `timestamp` or `timeStamp`,
    /// `nonce`), `body` its body `{"encrypt":"…"}`. The signature is checked
    /// before anything is decrypted.
    pub fn open(&self, query: &str, body: &[u8], now_ms: i64) -> Result<Opened, EventCryptoError> {
        let mut sig = None;
        let mut ts = None;
        let mut nonce = None;
        for (k, v) in url::form_urlencoded::parse(query.as_bytes()) {
            match k.as_ref() {
                "msg_signature" | "signature" => sig = Some(v.into_owned()),
                "timestamp" | "timeStamp" => ts = Some(v.into_owned()),
                "nonce" => nonce = Some(v.into_owned()),
                _ => {}
            }
        }
        let sig = sig.ok_or(EventCryptoError::Missing("msg_signature"))?;
        let ts = ts.ok_or(EventCryptoError::Missing("timestamp"))?;
        let nonce = nonce.ok_or(EventCryptoError::Missing("nonce"))?;
        let v: serde_json::Value =
            serde_json::from_slice(body).map_err(|_| EventCryptoError::BadBody)?;
        let encrypt = v
            .get("encrypt")
            .and_then(serde_json::Value::as_str)
            .ok_or(EventCryptoError::BadBody)?;
        self.verify(&sig, &ts, &nonce, encrypt, now_ms)?;
        Ok(Opened {
            message: self.decrypt(encrypt)?,
        })
    }

    /// The answer to a push, with a fresh timestamp and nonce (as the
    /// official SDKs do).
    pub fn success_now(&self, now_ms: i64) -> SignedReply {
        use rand::distr::{Alphanumeric, SampleString};
        let nonce = Alphanumeric.sample_string(&mut rand::rng(), 16);
        self.success_reply(&now_ms.to_string(), &nonce)
    }

    /// Decrypts `encrypt` and checks its owner key: the message.
    pub fn decrypt(&self, encrypt: &str) -> Result<String, EventCryptoError> {
        let (msg, owner) = decrypt_with(&self.key, encrypt)?;
        if !bool::from(owner.as_bytes().ct_eq(self.owner.as_bytes())) {
            return Err(EventCryptoError::WrongOwner);
        }
        Ok(msg)
    }

    /// Encrypts `msg` for this owner with the 16 `random` bytes given.
    pub fn encrypt(&self, msg: &str, random: [u8; 16]) -> String {
        encrypt_with(&self.key, msg, &self.owner, random)
    }

    /// The answer DingTalk expects to every push: the encrypted `success`,
    /// signed with `timestamp` and `nonce`.
    pub fn success_reply(&self, timestamp: &str, nonce: &str) -> SignedReply {
        let encrypt = self.encrypt("success", rand::random());
        SignedReply {
            msg_signature: self.sign(timestamp, nonce, &encrypt),
            time_stamp: timestamp.to_owned(),
            nonce: nonce.to_owned(),
            encrypt,
        }
    }
}

/// `{"msg_signature","timeStamp","nonce","encrypt"}`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct SignedReply {
    /// Signature over token, timestamp, nonce and `encrypt`.
    pub msg_signature: String,
    /// The timestamp signed.
    #[serde(rename = "timeStamp")]
    pub time_stamp: String,
    /// The nonce signed.
    pub nonce: String,
    /// The encrypted reply.
    pub encrypt: String,
}

/// AES-256-CBC of `random(16) ‖ len(4) ‖ msg ‖ owner`, PKCS#7 to 32 bytes, base64.
pub fn encrypt_with(key: &[u8; 32], msg: &str, owner: &str, random: [u8; 16]) -> String {
    let len = u32::try_from(msg.len()).unwrap_or(u32::MAX);
    let mut buf = Vec::with_capacity(20 + msg.len() + owner.len() + PAD_BLOCK);
    buf.extend_from_slice(&random);
    buf.extend_from_slice(&len.to_be_bytes());
    buf.extend_from_slice(msg.as_bytes());
    buf.extend_from_slice(owner.as_bytes());
    let pad = PAD_BLOCK - buf.len() % PAD_BLOCK;
    // 1..=32 always fits a byte.
    buf.resize(buf.len() + pad, u8::try_from(pad).unwrap_or(32));
    let (key_arr, iv) = split_key(key);
    let mut enc = Aes256CbcEnc::new(&key_arr, &iv);
    for chunk in buf.chunks_exact_mut(16) {
        let mut block = Block::<aes::Aes256>::default();
        block.copy_from_slice(chunk);
        enc.encrypt_block(&mut block);
        chunk.copy_from_slice(&block);
    }
    base64::engine::general_purpose::STANDARD.encode(buf)
}

/// Decrypts base64 `encrypt` with `key`: `(msg, owner key)`.
pub fn decrypt_with(key: &[u8; 32], encrypt: &str) -> Result<(String, String), EventCryptoError> {
    if encrypt.len() > MAX_ENCRYPT_CHARS {
        return Err(EventCryptoError::BadCiphertext);
    }
    let mut buf = base64::engine::general_purpose::STANDARD
        .decode(encrypt.trim())
        .map_err(|_| EventCryptoError::BadCiphertext)?;
    if buf.is_empty() || buf.len() % PAD_BLOCK != 0 {
        return Err(EventCryptoError::BadCiphertext);
    }
    let (key_arr, iv) = split_key(key);
    let mut dec = Aes256CbcDec::new(&key_arr, &iv);
    for chunk in buf.chunks_exact_mut(16) {
        let mut block = Block::<aes::Aes256>::default();
        block.copy_from_slice(chunk);
        dec.decrypt_block(&mut block);
        chunk.copy_from_slice(&block);
    }
    let pad = usize::from(*buf.last().ok_or(EventCryptoError::BadPlaintext)?);
    if pad == 0 || pad > PAD_BLOCK || pad > buf.len() {
        return Err(EventCryptoError::BadPlaintext);
    }
    let body_len = buf.len() - pad;
    if buf[body_len..].iter().any(|&b| usize::from(b) != pad) {
        return Err(EventCryptoError::BadPlaintext);
    }
    let body = &buf[..body_len];
    let len_bytes: [u8; 4] = body
        .get(16..20)
        .and_then(|s| s.try_into().ok())
        .ok_or(EventCryptoError::BadPlaintext)?;
    let msg_len = usize::try_from(u32::from_be_bytes(len_bytes))
        .map_err(|_| EventCryptoError::BadPlaintext)?;
    let msg_end = 20usize
        .checked_add(msg_len)
        .filter(|&e| e <= body.len())
        .ok_or(EventCryptoError::BadPlaintext)?;
    let msg =
        std::str::from_utf8(&body[20..msg_end]).map_err(|_| EventCryptoError::BadPlaintext)?;
    let owner =
        std::str::from_utf8(&body[msg_end..]).map_err(|_| EventCryptoError::BadPlaintext)?;
    Ok((msg.to_owned(), owner.to_owned()))
}

type AesKey = aes::cipher::Key<Aes256CbcEnc>;
type AesIv = aes::cipher::Iv<Aes256CbcEnc>;

fn split_key(key: &[u8; 32]) -> (AesKey, AesIv) {
    let mut k = AesKey::default();
    k.copy_from_slice(key);
    let mut iv = AesIv::default();
    iv.copy_from_slice(&key[..16]);
    (k, iv)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const A_ENCRYPT: &str = "1a3NBxmCFwkCJvfoQ7WhJHB+iX3qHPsc9JbaDznE1i03peOk1LaOQoRz3+nlyGNhwmwJ3vDMG+OzrHMeiZI7gTRWVdUBmfxjZ8Ej23JVYa9VrYeJ5as7XM/ZpulX8NEQis44w53h1qAgnC3PRzM7Zc/D6Ibr0rgUathB6zRHP8PYrfgnNOS9PhSBdHlegK+AGGanfwjXuQ9+0pZcy0w9lQ==";
    const B_ENCRYPT: &str =
        "YvkvaGe4hQxd3VxRmEty0dVlnCOAqwf56xwTRHDHoOURqhalbmBJQk5FNcRk42Gl5T0YQXZNwpwWSm1xAFJ5ZA==";

    fn crypto(key: &str, owner: &str) -> EventCrypto {
        EventCrypto::new(
            Secret::new("123456".to_owned()),
            &Secret::new(key.to_owned()),
            owner,
            i64::MAX,
        )
        .unwrap()
    }

    #[test]
    fn official_vector_a() {
        let c = crypto(
            "4g5j64qlyl3zvetqxz5jiocdr586fn2zvjpa8zls3ij",
            "suite4xxxxxxxxxxxxxxx",
        );
        assert_eq!(
            c.sign("1445827045067", "nEXhMP4r", A_ENCRYPT),
            "5a65ceeef9aab2d149439f82dc191dd6c5cbe2c0"
        );
        c.verify(
            "5a65ceeef9aab2d149439f82dc191dd6c5cbe2c0",
            "1445827045067",
            "nEXhMP4r",
            A_ENCRYPT,
            1_445_827_045_067,
        )
        .unwrap();
        assert_eq!(
            c.decrypt(A_ENCRYPT).unwrap(),
            r#"{"EventType":"check_create_suite_url","Random":"LPIdSnlF","TestSuiteKey":"suite4xxxxxxxxxxxxxxx"}"#
        );
    }

    #[test]
    fn official_vector_b() {
        let c = crypto(
            "1234567890123456789012345678901234567890123",
            "dingsnotzck6pm5veliw",
        );
        assert_eq!(
            c.sign("1614767836", "A7Co0cJLMzIDtMMI", B_ENCRYPT),
            "9a95a004dd16f5c307e849b994173f76aa26e5eb"
        );
        // Seconds, not milliseconds: accepted as the same instant.
        c.verify(
            "9a95a004dd16f5c307e849b994173f76aa26e5eb",
            "1614767836",
            "A7Co0cJLMzIDtMMI",
            B_ENCRYPT,
            1_614_767_836_000,
        )
        .unwrap();
        assert_eq!(c.decrypt(B_ENCRYPT).unwrap(), "success");
    }

    #[test]
    fn refusals() {
        let key = "1234567890123456789012345678901234567890123";
        let c = EventCrypto::new(
            Secret::new("123456".to_owned()),
            &Secret::new(key.to_owned()),
            "dingsnotzck6pm5veliw",
            60_000,
        )
        .unwrap();
        let sig = "9a95a004dd16f5c307e849b994173f76aa26e5eb";
        let at = 1_614_767_836_000;
        assert_eq!(
            c.verify(
                sig,
                "1614767836",
                "A7Co0cJLMzIDtMMI",
                B_ENCRYPT,
                at + 61_000
            ),
            Err(EventCryptoError::Stale)
        );
        assert_eq!(
            c.verify(sig, "x", "A7Co0cJLMzIDtMMI", B_ENCRYPT, at),
            Err(EventCryptoError::BadTimestamp)
        );
        assert_eq!(
            c.verify(sig, "1614767836", "other", B_ENCRYPT, at),
            Err(EventCryptoError::Mismatch)
        );
        // Another owner, another key.
        assert_eq!(
            crypto(key, "dingother").decrypt(B_ENCRYPT),
            Err(EventCryptoError::WrongOwner)
        );
        let wrong = crypto("4g5j64qlyl3zvetqxz5jiocdr586fn2zvjpa8zls3ij", "x");
        assert!(wrong.decrypt(B_ENCRYPT).is_err());
        assert_eq!(
            c.decrypt("not base64!"),
            Err(EventCryptoError::BadCiphertext)
        );
        assert_eq!(c.decrypt("AAAA"), Err(EventCryptoError::BadCiphertext));
        for bad in ["", "short", &"a".repeat(44)] {
            assert_eq!(decode_aes_key(bad), Err(EventCryptoError::BadKey));
        }
    }

    #[test]
    fn pads_to_32_byte_blocks() {
        let c = crypto("1234567890123456789012345678901234567890123", "owner");
        // 16 + 4 + 7 + 5 = 32 bytes: a whole extra block of padding (value 32).
        let enc = c.encrypt("success", [7; 16]);
        let raw = base64::engine::general_purpose::STANDARD
            .decode(&enc)
            .unwrap();
        assert_eq!(raw.len(), 64);
        assert_eq!(c.decrypt(&enc).unwrap(), "success");
    }

    #[test]
    fn the_success_reply_is_signed_and_decrypts() {
        let c = crypto("1234567890123456789012345678901234567890123", "dingapp");
        let r = c.success_reply("1700000000000", "n0nce");
        assert_eq!(
            r.msg_signature,
            c.sign("1700000000000", "n0nce", &r.encrypt)
        );
        assert_eq!(c.decrypt(&r.encrypt).unwrap(), "success");
        let v = serde_json::to_value(&r).unwrap();
        for k in ["msg_signature", "timeStamp", "nonce", "encrypt"] {
            assert!(v.get(k).is_some(), "{k}");
        }
    }

    #[test]
    fn open_checks_the_signature_before_decrypting() {
        let key = "1234567890123456789012345678901234567890123";
        let c = crypto(key, "dingsnotzck6pm5veliw");
        let q = "msg_signature=9a95a004dd16f5c307e849b994173f76aa26e5eb&timestamp=1614767836&nonce=A7Co0cJLMzIDtMMI";
        let body = format!(r#"{{"encrypt":"{B_ENCRYPT}"}}"#);
        assert_eq!(
            c.open(q, body.as_bytes(), 1_614_767_836_000)
                .unwrap()
                .message,
            "success"
        );
        // The older spellings.
        let old = "signature=9a95a004dd16f5c307e849b994173f76aa26e5eb&timeStamp=1614767836&nonce=A7Co0cJLMzIDtMMI";
        assert!(c.open(old, body.as_bytes(), 1_614_767_836_000).is_ok());
        let tampered = format!(r#"{{"encrypt":"{}"}}"#, B_ENCRYPT.replace('Y', "Z"));
        let e = c
            .open(q, tampered.as_bytes(), 1_614_767_836_000)
            .unwrap_err();
        assert_eq!(e, EventCryptoError::Mismatch);
        assert!(e.is_auth());
        assert_eq!(
            c.open("nonce=1", body.as_bytes(), 0),
            Err(EventCryptoError::Missing("msg_signature"))
        );
        assert_eq!(c.open(q, b"[]", 0), Err(EventCryptoError::BadBody));
        let r = c.success_now(1_700_000_000_000);
        assert_eq!(r.time_stamp, "1700000000000");
        assert_eq!(r.nonce.len(), 16);
        assert_ne!(c.success_now(1).nonce, r.nonce);
    }

    proptest! {
        #[test]
        fn encrypt_then_decrypt_gives_the_message_back(
            msg in "\\PC{0,300}",
            owner in "[a-z0-9]{1,40}",
            random in any::<[u8; 16]>(),
            key in any::<[u8; 32]>(),
        ) {
            let enc = encrypt_with(&key, &msg, &owner, random);
            let raw = base64::engine::general_purpose::STANDARD.decode(&enc).unwrap();
            prop_assert_eq!(raw.len() % PAD_BLOCK, 0);
            prop_assert_eq!(decrypt_with(&key, &enc).unwrap(), (msg, owner));
        }

        #[test]
        fn decrypt_never_panics(s in "\\PC{0,400}", key in any::<[u8; 32]>()) {
            let _ = decrypt_with(&key, &s);
        }
    }
}
