//! Reaching people beyond the group reply: direct robot messages
//! (`oToMessages/batchSend`) and recalls (`groupMessages/recall`), each split
//! into calls within DingTalk's documented caps.

use super::transport::{Api, Mode};
use super::{wire, DingTalkClient};
use crate::dingtalk::{
    DingTalkError, DirectSend, DirectSendOutcome, Recall, RecallOutcome, MAX_DIRECT_USERS_PER_CALL,
    MAX_RECALL_KEYS_PER_CALL,
};
use crate::domain::{ProcessQueryKey, UserId};
use serde_json::{json, Value};
use std::collections::HashSet;

impl DingTalkClient {
    /// Every batch of [`MAX_DIRECT_USERS_PER_CALL`] users in turn; the first
    /// failing batch stops the rest (throttling would only get worse).
    pub(super) async fn direct_send(
        &self,
        req: &DirectSend,
    ) -> Result<DirectSendOutcome, DingTalkError> {
        let msg_param = serde_json::to_string(&req.message.msg_param)
            .map_err(|e| DingTalkError::Decode(format!("msgParam: {e}")))?;
        let mut seen = HashSet::new();
        let users: Vec<&UserId> = req.users.iter().filter(|u| seen.insert(*u)).collect();
        let mut out = DirectSendOutcome::default();
        for (i, batch) in users.chunks(MAX_DIRECT_USERS_PER_CALL).enumerate() {
            let body = json!({
                "robotCode": req.robot_code.as_str(),
                "userIds": batch.iter().map(|u| u.as_str()).collect::<Vec<_>>(),
                "msgKey": req.message.msg_key,
                "msgParam": msg_param,
            });
            // NonIdempotent: a timeout may already have delivered the messages.
            let answer = self
                .new_api(
                    Api::DirectSend,
                    "/v1.0/robot/oToMessages/batchSend",
                    &body,
                    Mode::NonIdempotent,
                )
                .await
                .and_then(|v| wire::expect_object(&v, "oToMessages/batchSend").map(|()| v));
            let v = match answer {
                Ok(v) => v,
                Err(e) if i == 0 => return Err(e),
                Err(e) => {
                    let done = i * MAX_DIRECT_USERS_PER_CALL;
                    out.unsent = users.iter().skip(done).map(|u| (*u).clone()).collect();
                    out.error = Some(e);
                    return Ok(out);
                }
            };
            let invalid = wire::user_ids(v.get("invalidStaffIdList"));
            let flow = wire::user_ids(v.get("flowControlledStaffIdList"));
            // The SDK model also has filteredStaffIdList: not delivered either.
            let filtered = wire::user_ids(v.get("filteredStaffIdList"));
            for u in batch {
                if invalid.contains(u) || filtered.contains(u) {
                    out.invalid.push((*u).clone());
                } else if flow.contains(u) {
                    out.flow_controlled.push((*u).clone());
                } else {
                    out.sent.push((*u).clone());
                }
            }
            if let Some(k) = v
                .get("processQueryKey")
                .and_then(Value::as_str)
                .and_then(|k| ProcessQueryKey::parse(k).ok())
            {
                out.keys.push(k);
            }
        }
        Ok(out)
    }

    /// Every batch of [`MAX_RECALL_KEYS_PER_CALL`] keys; keys DingTalk names
    /// in neither list count as failed ("no answer").
    pub(super) async fn recall(&self, req: &Recall) -> Result<RecallOutcome, DingTalkError> {
        let mut out = RecallOutcome::default();
        for batch in req.keys.chunks(MAX_RECALL_KEYS_PER_CALL) {
            let body = json!({
                "openConversationId": req.group.as_str(),
                "robotCode": req.robot_code.as_str(),
                "processQueryKeys": batch.iter().map(ProcessQueryKey::as_str).collect::<Vec<_>>(),
            });
            // Idempotent: recalling twice changes nothing in the chat.
            let v = self
                .new_api(
                    Api::Recall,
                    "/v1.0/robot/groupMessages/recall",
                    &body,
                    Mode::Idempotent,
                )
                .await?;
            wire::expect_object(&v, "groupMessages/recall")?;
            let ok: Vec<&str> = v
                .get("successResult")
                .and_then(Value::as_array)
                .map(|a| a.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            let failed = v.get("failedResult").and_then(Value::as_object);
            for key in batch {
                if let Some(reason) = failed.and_then(|f| f.get(key.as_str())) {
                    let reason = wire::lenient_string(reason).unwrap_or_default();
                    out.failed.push((key.clone(), reason));
                } else if ok.contains(&key.as_str()) {
                    out.recalled.push(key.clone());
                } else {
                    out.failed.push((key.clone(), String::new()));
                }
            }
        }
        Ok(out)
    }
}
