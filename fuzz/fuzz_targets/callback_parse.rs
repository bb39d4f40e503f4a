//! The HTTP callback body parser (also the Stream-mode `data` payload):
//! never panics, and whatever it accepts respects readbot's bounds.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(m) = readbot::dingtalk::callback::parse(data) {
        assert!(!m.msg_id.as_str().trim().is_empty());
        assert!(m.text.len() <= 4096, "text of {} bytes", m.text.len());
        assert!(m.mentioned.len() <= 100);
        assert!(m.session_webhook.as_ref().is_none_or(|u| u.len() <= 2048));
        assert!(m.sender_nick.len() <= 256);
        assert!(!m.sender_nick.chars().any(char::is_control));
        assert!(m.group_title.as_ref().is_none_or(|t| {
            m.group.is_some() && !t.is_empty() && t.len() <= 256 && !t.chars().any(char::is_control)
        }));
    }
});
