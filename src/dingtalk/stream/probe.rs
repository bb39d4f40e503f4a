//! `readbot check` in Stream mode: one open-connection call with the app's
//! credentials and readbot's subscriptions, to learn whether the gateway
//! accepts them. The one-time ticket it returns is dropped unused (never
//! printed, never connected with), so the probe opens no WebSocket.

use super::{BotMessageHandler, Handlers, StreamClient, StreamError, StreamSettings};
use crate::dingtalk::ErrorCode;
use crate::domain::Incoming;
use async_trait::async_trait;
use std::sync::Arc;

/// What one open-connection call said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProbeOutcome {
    /// The gateway issued a ticket: the credentials and the subscription to
    /// bot messages ([`super::frame::BOT_MESSAGE_TOPIC`]) were accepted.
    Accepted,
    /// The gateway refused the Client ID or Client Secret.
    BadCredentials(StreamError),
    /// The gateway refused the subscriptions.
    SubscriptionRefused(StreamError),
    /// No answer (DNS, TCP, TLS, timeout).
    Unreachable(StreamError),
    /// Any other refusal or an unusable answer.
    Failed(StreamError),
}

/// The probe never connects, so no message ever reaches this handler.
struct Discard;

#[async_trait]
impl BotMessageHandler for Discard {
    async fn bot_message(&self, _msg: Incoming) {}
}

/// Makes one open-connection call and classifies the answer; the ticket is
/// discarded. `Err` only when the HTTP client cannot be built.
pub async fn probe(settings: StreamSettings) -> Result<ProbeOutcome, StreamError> {
    let client = StreamClient::new(settings, Handlers::new(Arc::new(Discard)))?;
    Ok(match client.open().await {
        Ok(_ticket) => ProbeOutcome::Accepted,
        Err(e) => classify(e),
    })
}

fn classify(e: StreamError) -> ProbeOutcome {
    match &e {
        StreamError::Refused { code, .. } => {
            if ErrorCode::parse(code) == ErrorCode::InvalidClientIdOrSecret {
                ProbeOutcome::BadCredentials(e)
            } else if code.to_ascii_lowercase().contains("subscription") {
                ProbeOutcome::SubscriptionRefused(e)
            } else {
                ProbeOutcome::Failed(e)
            }
        }
        StreamError::Transport(_) | StreamError::Timeout(_) => ProbeOutcome::Unreachable(e),
        _ => ProbeOutcome::Failed(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(code: &str) -> StreamError {
        StreamError::Refused {
            status: 400,
            code: code.into(),
            message: "m".into(),
            request_id: "r".into(),
        }
    }

    #[test]
    fn refusals_are_told_apart() {
        assert!(matches!(
            classify(refused("invalidClientIdOrSecret")),
            ProbeOutcome::BadCredentials(_)
        ));
        assert!(matches!(
            classify(refused("invalidParameter.subscriptions.invalid")),
            ProbeOutcome::SubscriptionRefused(_)
        ));
        assert!(matches!(
            classify(refused("system.error")),
            ProbeOutcome::Failed(_)
        ));
        assert!(matches!(
            classify(StreamError::Timeout("open-connection call")),
            ProbeOutcome::Unreachable(_)
        ));
        assert!(matches!(
            classify(StreamError::BadAnswer("xml".into())),
            ProbeOutcome::Failed(_)
        ));
    }
}
