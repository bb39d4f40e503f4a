//! Read and recall events as DingTalk pushes them (`dingtalk-api.md`
//! §11.4–11.5): through the fake Stream gateway (EVENT frames whose `data`
//! is camelCase JSON) or as an encrypted HTTP push ([`EventPusher`]:
//! PascalCase JSON in the §11.5 envelope, implemented here from the
//! document, not with readbot's code).

use super::{now_ms, FakeDingTalk, Pushed};
use aes::cipher::{Block, BlockModeDecrypt, BlockModeEncrypt, KeyIvInit};
use base64::Engine as _;
use serde_json::{json, Value};
use sha1::{Digest, Sha1};

impl FakeDingTalk {
    /// The camelCase `data` of a `robot_msg_read` (§11.4 sample): `userId`
    /// only when given (a reader outside the org has none), `operatTime`
    /// as a string, like the documented sample.
    pub fn read_event_data(&self, key: &str, user: Option<&str>, at: i64) -> Value {
        let mut v = json!({
            "unionId": format!("union-{}", user.unwrap_or("outsider")),
            "operatTime": at.to_string(),
            "processQueryKey": key,
            "robotCode": self.config().robot_code,
        });
        if let Some(u) = user {
            v["userId"] = json!(u);
        }
        v
    }

    /// Pushes a `robot_msg_read` EVENT with the given `eventId` (a
    /// redelivery keeps it). `None` when no connection is up (lost).
    pub fn push_read_event(
        &self,
        key: &str,
        user: Option<&str>,
        at: i64,
        event_id: &str,
    ) -> Option<Pushed> {
        let data = self.read_event_data(key, user, at);
        self.push_event_with_id("robot_msg_read", event_id, &data)
    }

    /// `user` reads the notice: the read query shows it, and its read event
    /// goes through the gateway (`None`: no connection, the event is lost,
    /// the read stays).
    pub fn read_and_push(&self, key: &str, user: &str) -> Option<Pushed> {
        self.mark_read(key, &[user]);
        self.push_read_event(key, Some(user), now_ms(), &format!("ev-{key}-{user}"))
    }

    /// Recalls the notice (the query then says `RECALLED`) and pushes the
    /// `robot_msg_recall` event, its `operatTime` a number as in the sample.
    pub fn recall_and_push(&self, key: &str) -> Option<Pushed> {
        self.set_send_status(key, "RECALLED");
        let data = json!({
            "operatTime": now_ms(),
            "processQueryKey": key,
            "robotCode": self.config().robot_code,
        });
        self.push_event_with_id("robot_msg_recall", &format!("recall-{key}"), &data)
    }

    /// Pushes an EVENT with the documented headers and the given `eventId`.
    pub fn push_event_with_id(
        &self,
        event_type: &str,
        event_id: &str,
        data: &Value,
    ) -> Option<Pushed> {
        let born = now_ms().to_string();
        let app = format!("app-{}", self.config().app_key);
        self.push_frame(
            "EVENT",
            "*",
            &[
                ("eventType", event_type),
                ("eventId", event_id),
                ("eventCorpId", "dingfakecorp0000000000000000000"),
                ("eventBornTime", &born),
                ("eventUnifiedAppId", &app),
            ],
            &data.to_string(),
        )
    }
}

/// DingTalk's HTTP event pusher for one subscription: encrypts, signs and
/// builds the request as §11.5 describes, and checks readbot's answer the
/// way DingTalk would.
#[derive(Debug, Clone)]
pub struct EventPusher {
    token: String,
    key: [u8; 32],
    owner: String,
}

type Enc = cbc::Encryptor<aes::Aes256>;
type Dec = cbc::Decryptor<aes::Aes256>;

/// Java-style lenient base64 (the key's last character may carry extra bits).
const LENIENT: base64::engine::GeneralPurpose = base64::engine::GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    base64::engine::GeneralPurposeConfig::new()
        .with_decode_allow_trailing_bits(true)
        .with_decode_padding_mode(base64::engine::DecodePaddingMode::Indifferent),
);

impl EventPusher {
    /// A pusher with the subscription's token, 43-character EncodingAESKey
    /// and owner key (the app key). `None` for a key that is not 43 base64
    /// characters.
    pub fn new(token: &str, encoding_aes_key: &str, owner: &str) -> Option<Self> {
        if encoding_aes_key.len() != 43 {
            return None;
        }
        let key: [u8; 32] = LENIENT
            .decode(format!("{encoding_aes_key}="))
            .ok()?
            .try_into()
            .ok()?;
        Some(Self {
            token: token.to_owned(),
            key,
            owner: owner.to_owned(),
        })
    }

    /// `sha1` of the four values sorted and joined, lowercase hex.
    pub fn sign(&self, timestamp: &str, nonce: &str, encrypt: &str) -> String {
        let mut v = [self.token.as_str(), timestamp, nonce, encrypt];
        v.sort();
        let digest = Sha1::digest(v.concat().as_bytes());
        digest.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// `base64(AES-256-CBC(random16 ‖ len ‖ msg ‖ owner, PKCS#7 to 32))`, IV = key[..16].
    pub fn encrypt(&self, msg: &str) -> String {
        let mut plain: Vec<u8> = rand::random::<[u8; 16]>().to_vec();
        plain.extend_from_slice(&(msg.len() as u32).to_be_bytes());
        plain.extend_from_slice(msg.as_bytes());
        plain.extend_from_slice(self.owner.as_bytes());
        let pad = 32 - plain.len() % 32;
        plain.extend(std::iter::repeat_n(pad as u8, pad));
        let mut enc = Enc::new_from_slices(&self.key, &self.key[..16]).expect("a 32-byte key");
        for chunk in plain.chunks_mut(16) {
            let block: &mut Block<aes::Aes256> = chunk.try_into().expect("16-byte chunk");
            enc.encrypt_block(block);
        }
        base64::engine::general_purpose::STANDARD.encode(plain)
    }

    /// Decrypts `encrypt` with this key: `(msg, owner)`, `None` when it is
    /// not a message for this key.
    pub fn decrypt(&self, encrypt: &str) -> Option<(String, String)> {
        let mut buf = base64::engine::general_purpose::STANDARD
            .decode(encrypt)
            .ok()?;
        if buf.is_empty() || buf.len() % 32 != 0 {
            return None;
        }
        let mut dec = Dec::new_from_slices(&self.key, &self.key[..16]).ok()?;
        for chunk in buf.chunks_mut(16) {
            let block: &mut Block<aes::Aes256> = chunk.try_into().ok()?;
            dec.decrypt_block(block);
        }
        let pad = usize::from(*buf.last()?);
        if !(1..=32).contains(&pad) {
            return None;
        }
        buf.truncate(buf.len() - pad);
        let len = u32::from_be_bytes(buf.get(16..20)?.try_into().ok()?) as usize;
        let msg = String::from_utf8(buf.get(20..20 + len)?.to_vec()).ok()?;
        let owner = String::from_utf8(buf.get(20 + len..)?.to_vec()).ok()?;
        Some((msg, owner))
    }

    /// The request for one push of `payload`: the query string
    /// (`msg_signature`, `timestamp` in ms, `nonce`) and the body `{"encrypt"}`.
    pub fn request(&self, payload: &Value) -> (String, String) {
        let encrypt = self.encrypt(&payload.to_string());
        let timestamp = now_ms().to_string();
        let nonce = format!("{:08x}", rand::random::<u32>());
        let signature = self.sign(&timestamp, &nonce, &encrypt);
        let query = format!("msg_signature={signature}&timestamp={timestamp}&nonce={nonce}");
        (query, json!({ "encrypt": encrypt }).to_string())
    }

    /// Checks an answer as DingTalk does: `{"msg_signature","timeStamp","nonce","encrypt"}`,
    /// signed with this token, decrypting to `success` for this owner.
    pub fn answer_is_success(&self, answer: &Value) -> bool {
        let s = |k: &str| answer.get(k).and_then(Value::as_str);
        let (Some(sig), Some(ts), Some(nonce), Some(enc)) =
            (s("msg_signature"), s("timeStamp"), s("nonce"), s("encrypt"))
        else {
            return false;
        };
        sig == self.sign(ts, nonce, enc)
            && self.decrypt(enc) == Some(("success".to_owned(), self.owner.clone()))
    }

    /// The PascalCase payload of a `robot_msg_read` push.
    pub fn read_payload(key: &str, user: &str, at: i64) -> Value {
        json!({
            "EventType": "robot_msg_read",
            "EventTime": now_ms().to_string(),
            "CorpId": "dingfakecorp0000000000000000000",
            "eventId": format!("ev-{key}-{user}"),
            "UserId": user,
            "UnionId": format!("union-{user}"),
            "OperatTime": at.to_string(),
            "ProcessQueryKey": key,
        })
    }

    /// The PascalCase payload of a `robot_msg_recall` push.
    pub fn recall_payload(key: &str) -> Value {
        json!({
            "EventType": "robot_msg_recall",
            "eventId": format!("recall-{key}"),
            "OperatTime": now_ms(),
            "ProcessQueryKey": key,
        })
    }

    /// The subscription's handshake payload.
    pub fn check_url_payload() -> Value {
        json!({ "EventType": "check_url" })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pusher_reproduces_official_vector_b() {
        let p = EventPusher::new(
            "123456",
            "1234567890123456789012345678901234567890123",
            "dingsnotzck6pm5veliw",
        )
        .unwrap();
        let enc = "YvkvaGe4hQxd3VxRmEty0dVlnCOAqwf56xwTRHDHoOURqhalbmBJQk5FNcRk42Gl5T0YQXZNwpwWSm1xAFJ5ZA==";
        assert_eq!(
            p.sign("1614767836", "A7Co0cJLMzIDtMMI", enc),
            "9a95a004dd16f5c307e849b994173f76aa26e5eb"
        );
        assert_eq!(
            p.decrypt(enc),
            Some(("success".to_owned(), "dingsnotzck6pm5veliw".to_owned()))
        );
        let mine = p.encrypt("hello");
        assert_eq!(
            p.decrypt(&mine),
            Some(("hello".into(), "dingsnotzck6pm5veliw".into()))
        );
        assert!(EventPusher::new("t", "short", "o").is_none());
    }
}
