//! `GET /api/v1/usage`: this month's billable DingTalk calls against
//! `dingtalk.monthly_call_budget` (the quota ledger, `bot::quota`).

use super::AppState;
use crate::bot::quota::Usage;
use axum::extract::State;
use axum::Json;

/// The current month's usage: calls per billable API, the total, the
/// budget and whether summaries are saving calls.
pub async fn usage(State(state): State<AppState>) -> Json<Usage> {
    Json(state.bot.usage())
}
