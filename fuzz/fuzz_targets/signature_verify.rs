//! The callback signature verifier. Input: `secret \n timestamp \n sign \n now`
//! (a field of exactly `-` is an absent header). Never panics; accepts only
//! the right HMAC for a timestamp inside the window; always accepts its own
//! signature at its own time.
#![no_main]

use base64::Engine as _;
use libfuzzer_sys::fuzz_target;
use readbot::config::Secret;
use readbot::dingtalk::signature::{Verifier, DEFAULT_WINDOW_MS};

/// A header field; `-` stands for an absent header.
fn header(p: Option<&str>) -> Option<&str> {
    p.filter(|s| *s != "-")
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let mut parts = text.splitn(4, '\n');
    let secret = parts.next().unwrap_or("");
    let ts = header(parts.next());
    let sign = header(parts.next());
    let now: i64 = parts
        .next()
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or(0);
    let v = Verifier::new(&Secret::new(secret.to_owned()), DEFAULT_WINDOW_MS);
    if v.verify(ts, sign, now).is_ok() {
        let (ts, sign) = (ts.unwrap_or_default(), sign.unwrap_or_default());
        let b64 = base64::engine::general_purpose::STANDARD;
        assert_eq!(b64.decode(sign.trim()).ok(), b64.decode(v.sign(ts)).ok());
        let t: i64 = ts.parse().expect("accepted timestamps are numbers");
        assert!(now.saturating_sub(t).abs() <= DEFAULT_WINDOW_MS);
    }
    if let Some(ts) = ts {
        if let Ok(t) = ts.parse::<i64>() {
            if !ts.is_empty() && ts.len() <= 18 && ts.bytes().all(|b| b.is_ascii_digit()) {
                assert!(v.verify(Some(ts), Some(&v.sign(ts)), t).is_ok());
            }
        }
    }
});
