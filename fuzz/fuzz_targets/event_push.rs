//! The HTTP event push: `EventCrypto::open` on an arbitrary query string and
//! body, then the event parser on whatever decrypts. Input:
//! `query \n body`. Never panics; whatever it opens round-trips through
//! `encrypt`; the parsers never panic on arbitrary text either.
#![no_main]

use libfuzzer_sys::fuzz_target;
use readbot::config::Secret;
use readbot::dingtalk::event_crypto::EventCrypto;
use readbot::dingtalk::events;

const KEY: &str = "1234567890123456789012345678901234567890123";

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let (query, body) = text.split_once('\n').unwrap_or((text, ""));
    let Ok(c) = EventCrypto::new(
        Secret::new("123456".to_owned()),
        &Secret::new(KEY.to_owned()),
        "dingsnotzck6pm5veliw",
        i64::MAX,
    ) else {
        return;
    };
    if let Ok(opened) = c.open(query, body.as_bytes(), 0) {
        let _ = events::parse_push(&opened.message);
        let again = c.encrypt(&opened.message, [0; 16]);
        assert_eq!(c.decrypt(&again).ok(), Some(opened.message));
    }
    let _ = c.decrypt(body);
    let _ = events::parse_push(body);
    let _ = events::parse_stream(events::READ, "e", body);
    let _ = events::parse_stream(events::RECALL, "e", body);
});
