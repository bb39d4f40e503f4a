//! The axum routes of the fake and the wire format of each endpoint. The
//! Stream gateway's open call is mounted here too (its handler lives in
//! `gateway.rs`); the answers both share are in `respond.rs`.

use axum::body::Bytes;
use axum::extract::{Query, State as AxState};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use serde_json::{json, Map, Value};
use std::collections::HashMap;

use super::gateway;
use super::respond::{bad, is_json, json_object, new_api_response, old_api, prelude, ApiErr};
use super::state::{request_id, State, TokenCheck};
use super::{cursor, Api, FakeConfig, FakeDingTalk, GroupKind, SentMessage, Via};

/// Largest `maxResults` of `groupMessages/query`.
const QUERY_MAX_PAGE: i64 = 200;
/// `maxResults` of `groupMessages/query` when absent.
const QUERY_DEFAULT_PAGE: usize = 200;
/// Largest `msgParam` of `groupMessages/send`, in bytes.
const MSG_PARAM_MAX: usize = 15_000;
/// Largest `sendBySession` body, in bytes.
const SESSION_BODY_MAX: usize = 20_000;
/// Scene groups up to this size come back in one page whatever `maxResults` says.
const SCENE_ONE_PAGE: usize = 1000;
/// Largest page of the member APIs.
const MEMBERS_MAX_PAGE: i64 = 1000;
/// `maxResults` of the inner-group member list when absent.
const INNER_DEFAULT_PAGE: usize = 100;
/// Most `userIds` of one `oToMessages/batchSend` (the doc text says 20).
const BATCH_SEND_MAX_USERS: usize = 20;
/// Most `processQueryKeys` of one `groupMessages/recall`.
const RECALL_MAX_KEYS: usize = 20;

/// `msgKey`s of the robot message catalogue.
const MSG_KEYS: &[&str] = &[
    "sampleText",
    "sampleMarkdown",
    "sampleImageMsg",
    "sampleLink",
    "sampleActionCard",
    "sampleActionCard2",
    "sampleActionCard3",
    "sampleActionCard4",
    "sampleActionCard5",
    "sampleActionCard6",
    "sampleAudio",
    "sampleFile",
    "sampleVideo",
];

pub(crate) fn router(fake: FakeDingTalk) -> Router {
    Router::new()
        .route("/v1.0/oauth2/accessToken", post(access_token))
        .route("/v1.0/robot/groupMessages/send", post(group_send))
        .route("/v1.0/robot/groupMessages/query", post(group_query))
        .route(
            "/v1.0/im/innerGroups/memberLists/query",
            post(inner_members),
        )
        .route(
            "/v1.0/im/sceneGroups/members/batchQuery",
            post(scene_members),
        )
        .route("/v1.0/robot/oToMessages/batchSend", post(batch_send))
        .route("/v1.0/robot/groupMessages/recall", post(group_recall))
        .route("/topapi/v2/user/get", post(user_get))
        .route("/robot/sendBySession", post(send_by_session))
        .route(
            "/v1.0/gateway/connections/open",
            post(gateway::open_connection),
        )
        .fallback(not_found)
        .with_state(fake)
}

type Handler = fn(&mut State, &FakeConfig, &Map<String, Value>) -> Result<Value, ApiErr>;

/// Runs a new-API endpoint: prelude, token check (when `auth`), JSON body,
/// then `handler` under the state lock.
async fn new_api(
    fake: FakeDingTalk,
    api: Api,
    auth: bool,
    headers: HeaderMap,
    body: Bytes,
    handler: Handler,
) -> Response {
    if let Some(resp) = prelude(&fake, api).await {
        return resp;
    }
    let rid = request_id();
    let result = (|| {
        let mut st = fake.lock();
        if auth {
            let token = headers
                .get("x-acs-dingtalk-access-token")
                .and_then(|v| v.to_str().ok());
            if st.check_token(token) != TokenCheck::Valid {
                return Err(bad("InvalidAuthentication", "不合法的access_token"));
            }
        }
        let req = json_object(&headers, &body)?;
        handler(&mut st, fake.config(), &req)
    })();
    new_api_response(&rid, result)
}

// ----- request fields -----------------------------------------------------------

fn param_invalid(field: &str) -> ApiErr {
    bad(
        "invalidParameter.param.invalid",
        &format!("Invalid parameter: {field}"),
    )
}

/// A string field; `null`, absent and `""` are `None`; other types are an error.
fn opt_str<'a>(req: &'a Map<String, Value>, field: &str) -> Result<Option<&'a str>, ApiErr> {
    match req.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.is_empty() => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(param_invalid(field)),
    }
}

/// A field that should be an integer (a JSON number) but is not.
struct NotAnInteger;

/// An integer field; `null` and absent are `None`.
fn opt_int(req: &Map<String, Value>, field: &str) -> Result<Option<i64>, NotAnInteger> {
    match req.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v.as_i64().map(Some).ok_or(NotAnInteger),
    }
}

// ----- endpoints --------------------------------------------------------------------

async fn access_token(
    AxState(fake): AxState<FakeDingTalk>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    new_api(fake, Api::Token, false, headers, body, |st, cfg, req| {
        let key = opt_str(req, "appKey")?;
        let secret = opt_str(req, "appSecret")?;
        if key != Some(cfg.app_key.as_str()) || secret != Some(cfg.app_secret.as_str()) {
            return Err(bad(
                "invalidClientIdOrSecret",
                "无效的clientId或者clientSecret",
            ));
        }
        let token = st.issue_token(cfg.token_ttl);
        Ok(json!({ "accessToken": token, "expireIn": cfg.token_ttl.as_secs() }))
    })
    .await
}

async fn group_send(
    AxState(fake): AxState<FakeDingTalk>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let handle = fake.clone();
    let resp = new_api(fake, Api::Send, true, headers, body, send_message).await;
    handle.notify_sent();
    resp
}

/// The request's `robotCode`, which must be the app's.
fn own_robot<'a>(cfg: &FakeConfig, req: &'a Map<String, Value>) -> Result<&'a str, ApiErr> {
    let robot = opt_str(req, "robotCode")?
        .ok_or_else(|| bad("invalidParameter.robotCode.missing", "robotCode is missing"))?;
    if robot != cfg.robot_code {
        return Err(bad(
            "invalidParameter.robotCode.auth",
            "The appKey does not match the robotCode",
        ));
    }
    Ok(robot)
}

/// `(msgKey, title, text)` of a robot message's `msgKey` + `msgParam`.
fn robot_message(req: &Map<String, Value>) -> Result<(&str, Option<String>, String), ApiErr> {
    let msg_key = opt_str(req, "msgKey")?
        .ok_or_else(|| bad("invalidParameter.msgKey.missing", "msgKey is missing"))?;
    if !MSG_KEYS.contains(&msg_key) {
        return Err(bad("invalidParameter.msgKey.invalid", "Invalid msgKey"));
    }
    let invalid_param = || {
        bad(
            "invalidParameter.msgParam.invalid",
            "msgParam must be a JSON string",
        )
    };
    let raw = match req.get("msgParam") {
        Some(Value::String(s)) => s,
        _ => return Err(invalid_param()),
    };
    if raw.len() > MSG_PARAM_MAX {
        return Err(bad(
            "invalidParameter.msgParam.tooLong",
            "msgParam is too long",
        ));
    }
    let param: Map<String, Value> = serde_json::from_str(raw).map_err(|_| invalid_param())?;
    let field = |k: &str| param.get(k).and_then(Value::as_str).map(str::to_owned);
    let (title, text) = match msg_key {
        "sampleText" => (None, field("content").ok_or_else(invalid_param)?),
        "sampleMarkdown" => (
            Some(field("title").ok_or_else(invalid_param)?),
            field("text").ok_or_else(invalid_param)?,
        ),
        _ => (field("title"), field("text").unwrap_or_default()),
    };
    Ok((msg_key, title, text))
}

/// A required array of strings, at most `max` long (`overMax` beyond).
fn string_list(req: &Map<String, Value>, field: &str, max: usize) -> Result<Vec<String>, ApiErr> {
    let list = match req.get(field) {
        None | Some(Value::Null) => {
            return Err(bad(
                &format!("invalidParameter.{field}.missing"),
                &format!("{field} is missing"),
            ))
        }
        Some(Value::Array(a)) => a,
        Some(_) => return Err(param_invalid(field)),
    };
    if list.is_empty() {
        return Err(bad(
            &format!("invalidParameter.{field}.missing"),
            &format!("{field} is empty"),
        ));
    }
    if list.len() > max {
        return Err(bad(
            &format!("invalidParameter.{field}.overMax"),
            &format!("{field}超过最大值"),
        ));
    }
    list.iter()
        .map(|v| {
            v.as_str()
                .map(str::to_owned)
                .ok_or_else(|| param_invalid(field))
        })
        .collect()
}

async fn batch_send(
    AxState(fake): AxState<FakeDingTalk>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    new_api(fake, Api::BatchSend, true, headers, body, send_direct).await
}

fn send_direct(
    st: &mut State,
    cfg: &FakeConfig,
    req: &Map<String, Value>,
) -> Result<Value, ApiErr> {
    own_robot(cfg, req)?;
    let users = string_list(req, "userIds", BATCH_SEND_MAX_USERS)?;
    let (msg_key, title, text) = robot_message(req)?;
    Ok(st.record_direct(users, msg_key, title, text))
}

async fn group_recall(
    AxState(fake): AxState<FakeDingTalk>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    new_api(fake, Api::Recall, true, headers, body, recall).await
}

fn recall(st: &mut State, cfg: &FakeConfig, req: &Map<String, Value>) -> Result<Value, ApiErr> {
    let robot = own_robot(cfg, req)?;
    let group = opt_str(req, "openConversationId")?.ok_or_else(|| {
        bad(
            "invalidParameter.openConversationId.missing",
            "openConversationId is missing",
        )
    })?;
    let keys = string_list(req, "processQueryKeys", RECALL_MAX_KEYS)?;
    let mut ok = Vec::new();
    let mut failed = Map::new();
    for key in keys {
        match st.recall(&key, group, robot) {
            Ok(()) => ok.push(Value::String(key)),
            Err(reason) => {
                failed.insert(key, Value::String(reason));
            }
        }
    }
    Ok(json!({ "successResult": ok, "failedResult": failed }))
}

fn send_message(
    st: &mut State,
    cfg: &FakeConfig,
    req: &Map<String, Value>,
) -> Result<Value, ApiErr> {
    let robot = own_robot(cfg, req)?;
    let group = opt_str(req, "openConversationId")?.ok_or_else(|| {
        bad(
            "openConversationId.notExisted",
            "openConversationId不能和token同时为空",
        )
    })?;
    let kind = st
        .groups
        .get(group)
        .map(|g| g.kind.clone())
        .ok_or_else(|| bad("invalid.openConversationId", "Invalid openConversationId"))?;
    if let GroupKind::Scene {
        cool_app_code: Some(code),
    } = &kind
    {
        if opt_str(req, "coolAppCode")? != Some(code.as_str()) {
            return Err(bad(
                "resource.unavailable",
                "The bot is disabled or the cool app is not installed",
            ));
        }
    }
    let (msg_key, title, text) = robot_message(req)?;
    let key = st.record_send(group, robot, msg_key, title, text);
    Ok(json!({ "processQueryKey": key }))
}

async fn group_query(
    AxState(fake): AxState<FakeDingTalk>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    new_api(fake, Api::Query, true, headers, body, query_reads).await
}

fn query_reads(
    st: &mut State,
    _cfg: &FakeConfig,
    req: &Map<String, Value>,
) -> Result<Value, ApiErr> {
    let key = opt_str(req, "processQueryKey")?.ok_or_else(|| {
        bad(
            "invalidParameter.processQueryKey.missing",
            "processQueryKey is missing",
        )
    })?;
    let page_err = || bad("invalidParameter.pageSize.invalid", "Invalid maxResults");
    let page = match opt_int(req, "maxResults").map_err(|_| page_err())? {
        None => QUERY_DEFAULT_PAGE,
        Some(n) if (1..=QUERY_MAX_PAGE).contains(&n) => {
            usize::try_from(n).map_err(|_| page_err())?
        }
        Some(_) => return Err(page_err()),
    };
    let group = opt_str(req, "openConversationId")?;
    let robot = opt_str(req, "robotCode")?;
    let token = opt_str(req, "nextToken")?;
    let cursor_key = st.cursor_key;
    let notice = st
        .notices
        .get_mut(key)
        .ok_or_else(|| bad("invalid.processQueryKey", "Invalid processQueryKey"))?;
    if robot.is_some_and(|r| r != notice.robot_code) {
        return Err(bad(
            "invalidParameter.robotCode.invalid",
            "Invalid robotCode",
        ));
    }
    if group.is_some_and(|g| g != notice.group) {
        return Err(bad(
            "invalid.openConversationId",
            "Invalid openConversationId",
        ));
    }
    let not_ready = || {
        bad(
            "processQueryKey.expireTime",
            "processQueryKey还未生成消息查询数据或已过期",
        )
    };
    if notice.expired {
        return Err(not_ready());
    }
    if notice.not_ready > 0 {
        notice.not_ready -= 1;
        return Err(not_ready());
    }
    let offset = match token {
        None => 0,
        Some(t) => cursor::decode(&cursor_key, key, t)
            .ok_or_else(|| bad("invalidParameter.cursor.invalid", "Invalid nextToken"))?,
    };
    let total = notice.readers.len();
    let start = offset.min(total);
    let end = start.saturating_add(page).min(total);
    let mut body = json!({
        "sendStatus": notice.status,
        "readUserIds": notice.readers[start..end],
        "hasMore": end < total,
    });
    if end < total {
        body["nextToken"] = Value::String(cursor::encode(&cursor_key, key, end));
    }
    Ok(body)
}

async fn inner_members(
    AxState(fake): AxState<FakeDingTalk>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    new_api(
        fake,
        Api::InnerMembers,
        true,
        headers,
        body,
        inner_member_list,
    )
    .await
}

fn inner_member_list(
    st: &mut State,
    _cfg: &FakeConfig,
    req: &Map<String, Value>,
) -> Result<Value, ApiErr> {
    let group_id = opt_str(req, "openConversationId")?.ok_or_else(|| {
        bad(
            "invalidParameter.openConversationId.missing",
            "openConversationId is missing",
        )
    })?;
    let user = opt_str(req, "userId")?
        .ok_or_else(|| bad("invalidParameter.userId.missing", "userId is missing"))?;
    let size_err = || bad("invalidParameter.maxResults.invalid", "Invalid maxResults");
    let size = match opt_int(req, "maxResults").map_err(|_| size_err())? {
        None => INNER_DEFAULT_PAGE,
        Some(n) if (1..=MEMBERS_MAX_PAGE).contains(&n) => {
            usize::try_from(n).map_err(|_| size_err())?
        }
        Some(_) => return Err(size_err()),
    };
    // `nextToken` is an integer here (start at 0), and required.
    let cursor_err = || bad("invalidParameter.nextToken.invalid", "Invalid nextToken");
    let offset = match opt_int(req, "nextToken").map_err(|_| cursor_err())? {
        None => {
            return Err(bad(
                "invalidParameter.nextToken.missing",
                "nextToken is missing",
            ))
        }
        Some(n) => usize::try_from(n).map_err(|_| cursor_err())?,
    };
    let group = st
        .groups
        .get(group_id)
        .ok_or_else(|| bad("invalid.openConversationId", "Invalid openConversationId"))?;
    if group.kind != GroupKind::Inner {
        return Err(bad("groupPermissionDenied", "没有该群的操作权限"));
    }
    if !group.members.iter().any(|m| m == user) {
        return Err(bad("invalidParameter.userId.notMember", "用户不在群内"));
    }
    let total = group.members.len();
    let start = offset.min(total);
    let end = start.saturating_add(size).min(total);
    let list: Vec<Value> = group.members[start..end]
        .iter()
        .map(|id| {
            let name = st.name_of(id);
            json!({ "userId": id, "name": name, "nickName": name, "icon": "" })
        })
        .collect();
    Ok(json!({ "success": true, "hasMore": end < total, "nextToken": end, "list": list }))
}

async fn scene_members(
    AxState(fake): AxState<FakeDingTalk>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    new_api(
        fake,
        Api::SceneMembers,
        true,
        headers,
        body,
        scene_member_list,
    )
    .await
}

fn scene_member_list(
    st: &mut State,
    _cfg: &FakeConfig,
    req: &Map<String, Value>,
) -> Result<Value, ApiErr> {
    let group_id = opt_str(req, "openConversationId")?.ok_or_else(|| {
        bad(
            "invalidParameter.openConversationId.missing",
            "openConversationId is missing",
        )
    })?;
    let size_err = || bad("invalidParameter.maxResults.invalid", "Invalid maxResults");
    let size = match opt_int(req, "maxResults").map_err(|_| size_err())? {
        None => {
            return Err(bad(
                "invalidParameter.maxResults.missing",
                "maxResults is missing",
            ))
        }
        Some(n) if n >= 1 => usize::try_from(n.min(MEMBERS_MAX_PAGE)).map_err(|_| size_err())?,
        Some(_) => return Err(size_err()),
    };
    // A decimal string, like the documented example (`"nextToken": "10"`).
    let cursor_err = || bad("invalidParameter.nextToken.invalid", "Invalid nextToken");
    let offset = match req.get("nextToken") {
        None | Some(Value::Null) => 0,
        Some(Value::String(s)) if s.is_empty() => 0,
        Some(Value::String(s)) => s.parse::<usize>().map_err(|_| cursor_err())?,
        Some(_) => return Err(cursor_err()),
    };
    // The page's own code for a group id it cannot read.
    let group = st
        .groups
        .get(group_id)
        .ok_or_else(|| bad("cidEncryptError", "群ID解析错误"))?;
    match &group.kind {
        GroupKind::Scene { cool_app_code } => {
            if let Some(code) = cool_app_code {
                if opt_str(req, "coolAppCode")? != Some(code.as_str()) {
                    return Err(bad("coolAppPermissionDenied", "没有该酷应用的权限"));
                }
            }
        }
        _ => return Err(bad("groupPermissionDenied", "该群没有安装群模板")),
    }
    let total = group.members.len();
    let (start, end) = if total <= SCENE_ONE_PAGE {
        (0, total)
    } else {
        let start = offset.min(total);
        (start, start.saturating_add(size).min(total))
    };
    let ids = &group.members[start..end];
    let nicks: Map<String, Value> = ids
        .iter()
        .map(|id| (id.clone(), Value::String(st.name_of(id))))
        .collect();
    Ok(json!({
        "success": true,
        "memberUserIds": ids,
        "hasMore": end < total,
        // Like the documented example, a token comes back even on the last page.
        "nextToken": end.to_string(),
        "unionIdList": [],
        "staffIdNickMap": nicks,
        "unionIdNickMap": {},
    }))
}

async fn user_get(
    AxState(fake): AxState<FakeDingTalk>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Some(resp) = prelude(&fake, Api::UserGet).await {
        return resp;
    }
    let rid = request_id().to_lowercase();
    let answer = |errcode: i64, errmsg: &str, result: Option<Value>| {
        let mut body = json!({ "errcode": errcode, "errmsg": errmsg, "request_id": rid });
        if let Some(r) = result {
            body["result"] = r;
        }
        axum::Json(body).into_response()
    };
    let st = fake.lock();
    match st.check_token(query.get("access_token").map(String::as_str)) {
        TokenCheck::Valid => {}
        TokenCheck::Expired => return answer(42001, "access_token已过期", None),
        TokenCheck::Unknown => return answer(40014, "不合法的access_token", None),
    }
    // JSON or form-encoded, like the documented examples.
    let userid = if is_json(&headers) {
        serde_json::from_slice::<Value>(&body)
            .ok()
            .and_then(|v| v.get("userid").and_then(Value::as_str).map(str::to_owned))
    } else {
        url::form_urlencoded::parse(&body)
            .find(|(k, _)| k == "userid")
            .map(|(_, v)| v.into_owned())
    };
    let Some(userid) = userid.filter(|u| !u.is_empty()) else {
        return answer(400002, "无效的参数", None);
    };
    let Some(name) = st.users.get(&userid) else {
        return answer(60121, "找不到该用户", None);
    };
    let result = json!({
        "userid": userid,
        "unionid": format!("union{userid}"),
        "name": name,
        "avatar": "",
        "title": "",
        "dept_id_list": [1],
        "active": true,
        "admin": false,
    });
    answer(0, "ok", Some(result))
}

#[derive(serde::Deserialize)]
struct SessionQuery {
    session: Option<String>,
}

async fn send_by_session(
    AxState(fake): AxState<FakeDingTalk>,
    Query(query): Query<SessionQuery>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Some(resp) = prelude(&fake, Api::SendBySession).await {
        return resp;
    }
    if !is_json(&headers) {
        return old_api(43004, "无效的HTTP HEADER Content-Type");
    }
    let mut st = fake.lock();
    let Some(group) = query.session.as_deref().and_then(|s| st.live_session(s)) else {
        return old_api(300001, "session 不存在");
    };
    if body.len() > SESSION_BODY_MAX {
        return old_api(
            460101,
            "body 大小不合法, 请检查后重试, 请保持大小在 20000bytes 以内",
        );
    }
    match parse_webhook_message(&body) {
        Some((msg_type, title, text, at_user_ids)) => {
            st.sent.push(SentMessage {
                group,
                via: Via::Session,
                msg_key_or_type: msg_type,
                title,
                text,
                at_user_ids,
                process_query_key: None,
            });
            drop(st);
            fake.notify_sent();
            old_api(0, "ok")
        }
        None => old_api(40035, "缺少参数 json"),
    }
}

type WebhookMessage = (String, Option<String>, String, Vec<String>);

/// `(msgtype, title, text, atUserIds)` of a webhook body, or `None` when
/// it is not a well-formed message.
fn parse_webhook_message(body: &[u8]) -> Option<WebhookMessage> {
    let v: Value = serde_json::from_slice(body).ok()?;
    let msg_type = v.get("msgtype")?.as_str()?.to_owned();
    let part = |obj: &str, k: &str| {
        v.get(obj)
            .and_then(|o| o.get(k))
            .and_then(Value::as_str)
            .map(str::to_owned)
    };
    let (title, text) = match msg_type.as_str() {
        "text" => (None, part("text", "content")?),
        "markdown" => (Some(part("markdown", "title")?), part("markdown", "text")?),
        "actionCard" => (
            Some(part("actionCard", "title")?),
            part("actionCard", "text")?,
        ),
        "link" => (Some(part("link", "title")?), part("link", "text")?),
        "feedCard" => {
            let links = v.get("feedCard")?.get("links")?.as_array()?;
            let titles: Vec<&str> = links
                .iter()
                .filter_map(|l| l.get("title").and_then(Value::as_str))
                .collect();
            (None, titles.join("\n"))
        }
        _ => return None,
    };
    let at_user_ids = v
        .get("at")
        .and_then(|a| a.get("atUserIds"))
        .and_then(Value::as_array)
        .map(|ids| {
            ids.iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default();
    Some((msg_type, title, text, at_user_ids))
}

async fn not_found() -> Response {
    let rid = request_id();
    new_api_response(
        &rid,
        Err(ApiErr::new(
            StatusCode::NOT_FOUND,
            "InvalidAction.NotFound",
            "Specified api is not found, please check your url and method.",
        )),
    )
}
