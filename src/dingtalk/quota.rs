//! Which DingTalk calls count toward the organisation's monthly API quota,
//! and the hook through which the client reports them.
//!
//! DingTalk counts calls per organisation and month (standard edition:
//! about 5,000); token and contacts APIs are exempt (dingtalk-api.md §8.2).
//! Billable here: `groupMessages/query`, `groupMessages/send`,
//! `oToMessages/batchSend`, `groupMessages/recall` and the two group member
//! lists (`im.*`: not in the exempt list either). Not billable: the access
//! token, `topapi/v2/user/get` (contacts) and replies through a
//! `sessionWebhook` (a robot webhook, not an app API call).
//!
//! The client reports each billable HTTP request it sends (retries
//! included: an upper bound, DingTalk may not bill a refused request) to a
//! [`CallLedger`] the application wires in; the ledger itself (kept in the
//! store, with the budget) belongs to the bot, since this module never
//! touches the store.

use super::{DingTalkError, ErrorCode};

/// Where the client reports billable calls (`DingTalkClient::set_call_ledger`).
/// Called on the request's path: must be cheap and never block.
pub trait CallLedger: Send + Sync + 'static {
    /// One HTTP request to the billable API `api` (one of [`BILLABLE_APIS`])
    /// is being sent.
    fn record(&self, api: &'static str);

    /// DingTalk refused a call because the organisation's monthly quota is
    /// used up ([`is_quota_exhausted`]).
    fn quota_exhausted(&self) {}
}

/// The names (as in `readbot_dingtalk_calls_total{api}`) of the APIs that
/// count toward the monthly quota.
pub const BILLABLE_APIS: [&str; 6] = [
    "robot.groupMessages.query",
    "robot.groupMessages.send",
    "robot.oToMessages.batchSend",
    "robot.groupMessages.recall",
    "im.innerGroups.memberLists.query",
    "im.sceneGroups.members.batchQuery",
];

/// True for DingTalk's "monthly quota used up" answer:
/// `Forbidden.AccessDenied.ApiCountLimitForOrg` (new API) or errcode 90020
/// (old API).
pub fn is_quota_exhausted(e: &DingTalkError) -> bool {
    match e {
        DingTalkError::Api { code, .. } => *code == ErrorCode::MonthlyQuotaExceeded,
        DingTalkError::OldApi { errcode, .. } => *errcode == 90020,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quota_answers_of_both_families_are_recognised() {
        let api = |code: &str| DingTalkError::Api {
            status: 403,
            code: ErrorCode::parse(code),
            message: String::new(),
            request_id: None,
        };
        assert!(is_quota_exhausted(&api(
            "Forbidden.AccessDenied.ApiCountLimitForOrg"
        )));
        assert!(!is_quota_exhausted(&api(
            "Forbidden.AccessDenied.QpsLimitForAppkeyAndApi"
        )));
        assert!(is_quota_exhausted(&DingTalkError::OldApi {
            errcode: 90020,
            errmsg: String::new()
        }));
        assert!(!is_quota_exhausted(&DingTalkError::Timeout));
    }
}
