//! Sending a notice exactly once: the intent is recorded (a pending send
//! under an idempotency key, flushed) before DingTalk is called, so a store
//! failure means nothing is sent, and a retry with the same key after a lost
//! `201` gets the recorded notice instead of a second send.

use super::{Bot, BotError, NewNotice};
use crate::dingtalk::GroupSend;
use crate::domain::{now_millis, IdempotencyKey, Notice};
use sha2::{Digest, Sha256};

/// What [`Bot::send_notice_once`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SentNotice {
    /// Sent now and recorded.
    New(Notice),
    /// Sent earlier under the same key: the recorded notice, nothing sent.
    Replayed(Notice),
}

impl SentNotice {
    /// The notice, sent now or earlier.
    pub fn notice(&self) -> &Notice {
        match self {
            SentNotice::New(n) | SentNotice::Replayed(n) => n,
        }
    }
}

/// A fresh idempotency key for a caller that sent none (`rb-` and 32 hex
/// digits of randomness).
pub fn generate_key() -> IdempotencyKey {
    let bits: u128 = rand::random();
    match IdempotencyKey::parse(format!("rb-{bits:032x}")) {
        Ok(key) => key,
        // 35 printable characters are always a valid key.
        Err(_) => unreachable!("a generated idempotency key is well-formed"),
    }
}

impl NewNotice {
    /// A digest of what is asked for: the same key with a different notice
    /// is refused rather than answered with the other notice.
    pub fn fingerprint(&self) -> String {
        let canonical = serde_json::json!([
            self.group.as_str(),
            self.title,
            self.message.msg_key,
            self.message.msg_param,
            self.author.as_ref().map(|a| a.as_str()),
            self.author_name,
        ]);
        Sha256::digest(canonical.to_string().as_bytes())
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }
}

impl Bot {
    /// Sends a notice once per `key`: reserves the send durably, calls
    /// DingTalk, records the notice. A second call with the same key and
    /// the same notice returns the recorded one without sending; while the
    /// first is still pending (or its outcome was lost) it is refused with
    /// [`BotError::SendPending`]; with a different notice,
    /// [`BotError::IdempotencyKeyReused`].
    pub async fn send_notice_once(
        &self,
        n: NewNotice,
        key: IdempotencyKey,
    ) -> Result<SentNotice, BotError> {
        let d = self.deps();
        let fingerprint = n.fingerprint();
        match d.store.begin_send(&key, &fingerprint, now_millis()).await {
            Ok(None) => {}
            Ok(Some(earlier)) => {
                if earlier.fingerprint != fingerprint {
                    return Err(BotError::IdempotencyKeyReused);
                }
                let Some(sent) = earlier.notice else {
                    return Err(BotError::SendPending);
                };
                crate::metrics::notice_sent("replayed");
                return match d.store.notice(&sent).await? {
                    Some(notice) => Ok(SentNotice::Replayed(notice)),
                    // Recorded, then removed by the retention: the outcome
                    // is known but the notice is gone.
                    None => Err(BotError::SendPending),
                };
            }
            Err(e) => {
                crate::metrics::notice_sent("store_error");
                tracing::error!(error = %e.with_causes(), "cannot record the intent to send; nothing sent");
                return Err(e.into());
            }
        }
        let send = GroupSend {
            group: n.group.clone(),
            robot_code: d.robot_code.clone(),
            message: n.message.clone(),
            cool_app_code: d.cool_app_code.clone(),
        };
        let dingtalk_key = match d.api.send_group_message(&send).await {
            Ok(k) => k,
            Err(e) => {
                crate::metrics::notice_sent("dingtalk_error");
                // Known not sent (or at least refused): a retry may send.
                // A timeout's outcome is unknown: the pending record stays.
                if !matches!(e, crate::dingtalk::DingTalkError::Timeout) {
                    if let Err(se) = d.store.abandon_send(&key).await {
                        tracing::warn!(error = %se.with_causes(), "could not release the idempotency key");
                    }
                }
                return Err(e.into());
            }
        };
        let notice = Notice {
            key: dingtalk_key,
            group: n.group,
            robot_code: d.robot_code.clone(),
            title: n.title,
            author: n.author,
            author_name: n.author_name,
            msg_key: n.message.msg_key,
            sent_at: now_millis(),
        };
        if let Err(e) = d.store.complete_send(&key, &notice).await {
            tracing::error!(error = %e.with_causes(), key = %notice.key, "notice sent but not recorded; a retry with its idempotency key is refused, not sent again");
            crate::metrics::notice_sent("store_error");
            return Err(BotError::SentNotRecorded {
                key: notice.key,
                source: e,
            });
        }
        crate::metrics::notice_sent("ok");
        if let Some(author) = &notice.author {
            if let Err(e) = d
                .store
                .remember_members(&notice.group, std::slice::from_ref(author), now_millis())
                .await
            {
                tracing::warn!(error = %e.with_causes(), "could not update learned roster");
            }
        }
        Ok(SentNotice::New(notice))
    }
}
