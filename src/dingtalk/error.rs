//! Typed DingTalk errors and the sentence each one becomes in the chat.
//!
//! Every error code in the seed table (`groupMessages/query`) has its own
//! [`ErrorCode`] variant and its own human sentence in English and Chinese.

use crate::domain::Lang;

/// Every error code in the seed table of `POST /v1.0/robot/groupMessages/query`.
pub const SEED_ERROR_CODES: &[&str] = &[
    "invalidParameter.param.invalid",
    "invalidParameter.robotCode.notExsit",
    "invalidParameter.robotCode.missing",
    "invalidParameter.processQueryKey.missing",
    "invalidParameter.cursor.invalid",
    "invalidParameter.pageSize.invalid",
    "invalidParameter.invalid",
    "invalidParameter.robotCode.invalid",
    "invalid.openConversationId",
    "openConversationId.notExisted",
    "invalid.processQueryKey",
    "bot.stopped",
    "template.not.existed",
    "template.stopped",
    "processQueryKey.expireTime",
    "conversation.org.dismatch",
    "resource.not.found",
    "unauthorized",
    "auth.error",
    "system.error",
];

/// A DingTalk error code (new API `code` field), parsed into a closed set
/// where we know what it means; anything else is kept verbatim.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ErrorCode {
    /// `invalidParameter.param.invalid`
    ParamInvalid,
    /// `invalidParameter.robotCode.notExsit` (sic)
    RobotCodeNotExist,
    /// `invalidParameter.robotCode.missing`
    RobotCodeMissing,
    /// `invalidParameter.processQueryKey.missing`
    ProcessQueryKeyMissing,
    /// `invalidParameter.cursor.invalid`
    CursorInvalid,
    /// `invalidParameter.pageSize.invalid`
    PageSizeInvalid,
    /// `invalidParameter.invalid` (the bot behind the token does not exist)
    TokenBotNotExist,
    /// `invalidParameter.robotCode.invalid`
    RobotCodeInvalid,
    /// `invalid.openConversationId`
    InvalidOpenConversationId,
    /// `openConversationId.notExisted`
    OpenConversationIdNotExisted,
    /// `invalid.processQueryKey`
    InvalidProcessQueryKey,
    /// `bot.stopped`
    BotStopped,
    /// `template.not.existed`
    TemplateNotExisted,
    /// `template.stopped`
    TemplateStopped,
    /// `processQueryKey.expireTime`: not generated yet, or expired.
    ProcessQueryKeyExpireTime,
    /// `conversation.org.dismatch` (sic)
    ConversationOrgDismatch,
    /// `resource.not.found`
    ResourceNotFound,
    /// `unauthorized`
    Unauthorized,
    /// `auth.error`
    AuthError,
    /// `system.error` (HTTP 500)
    SystemError,
    /// `InvalidAuthentication`: the access token is not valid (any more).
    InvalidAuthentication,
    /// `invalidClientIdOrSecret`: wrong app key or secret.
    InvalidClientIdOrSecret,
    /// `cidEncryptError` (群ID解析错误): the member-list API could not read
    /// the group id, i.e. it is not a valid openConversationId.
    CidEncryptError,
    /// Any `Forbidden.AccessDenied.Qps*`/`Qpm*` throttling code, `system.busy`, `systemBusy`.
    Throttled(String),
    /// `Forbidden.AccessDenied.ApiCountLimitForOrg`: the monthly call quota is used up.
    MonthlyQuotaExceeded,
    /// `Forbidden.AccessDenied.AccessTokenPermissionDenied`, `Forbidden.AccessDenied.IpNotInWhiteList`.
    PermissionDenied(String),
    /// Any other code, verbatim.
    Other(String),
}

impl ErrorCode {
    /// Parses DingTalk's `code` string.
    pub fn parse(code: &str) -> Self {
        match code {
            "invalidParameter.param.invalid" => Self::ParamInvalid,
            "invalidParameter.robotCode.notExsit" => Self::RobotCodeNotExist,
            "invalidParameter.robotCode.missing" => Self::RobotCodeMissing,
            "invalidParameter.processQueryKey.missing" => Self::ProcessQueryKeyMissing,
            "invalidParameter.cursor.invalid" => Self::CursorInvalid,
            "invalidParameter.pageSize.invalid" => Self::PageSizeInvalid,
            "invalidParameter.invalid" => Self::TokenBotNotExist,
            "invalidParameter.robotCode.invalid" => Self::RobotCodeInvalid,
            "invalid.openConversationId" => Self::InvalidOpenConversationId,
            "openConversationId.notExisted" => Self::OpenConversationIdNotExisted,
            "invalid.processQueryKey" => Self::InvalidProcessQueryKey,
            "bot.stopped" => Self::BotStopped,
            "template.not.existed" => Self::TemplateNotExisted,
            "template.stopped" => Self::TemplateStopped,
            "processQueryKey.expireTime" => Self::ProcessQueryKeyExpireTime,
            "conversation.org.dismatch" => Self::ConversationOrgDismatch,
            "resource.not.found" => Self::ResourceNotFound,
            "unauthorized" => Self::Unauthorized,
            "auth.error" => Self::AuthError,
            "system.error" => Self::SystemError,
            "InvalidAuthentication" => Self::InvalidAuthentication,
            "invalidClientIdOrSecret" => Self::InvalidClientIdOrSecret,
            "cidEncryptError" => Self::CidEncryptError,
            "Forbidden.AccessDenied.ApiCountLimitForOrg" => Self::MonthlyQuotaExceeded,
            "Forbidden.AccessDenied.AccessTokenPermissionDenied"
            | "Forbidden.AccessDenied.IpNotInWhiteList" => Self::PermissionDenied(code.to_owned()),
            c if c.starts_with("Forbidden.AccessDenied.Qps")
                || c.starts_with("Forbidden.AccessDenied.Qpm")
                || c == "system.busy"
                || c == "systemBusy" =>
            {
                Self::Throttled(c.to_owned())
            }
            other => Self::Other(other.to_owned()),
        }
    }

    /// The wire spelling of the code.
    pub fn as_str(&self) -> &str {
        match self {
            Self::ParamInvalid => "invalidParameter.param.invalid",
            Self::RobotCodeNotExist => "invalidParameter.robotCode.notExsit",
            Self::RobotCodeMissing => "invalidParameter.robotCode.missing",
            Self::ProcessQueryKeyMissing => "invalidParameter.processQueryKey.missing",
            Self::CursorInvalid => "invalidParameter.cursor.invalid",
            Self::PageSizeInvalid => "invalidParameter.pageSize.invalid",
            Self::TokenBotNotExist => "invalidParameter.invalid",
            Self::RobotCodeInvalid => "invalidParameter.robotCode.invalid",
            Self::InvalidOpenConversationId => "invalid.openConversationId",
            Self::OpenConversationIdNotExisted => "openConversationId.notExisted",
            Self::InvalidProcessQueryKey => "invalid.processQueryKey",
            Self::BotStopped => "bot.stopped",
            Self::TemplateNotExisted => "template.not.existed",
            Self::TemplateStopped => "template.stopped",
            Self::ProcessQueryKeyExpireTime => "processQueryKey.expireTime",
            Self::ConversationOrgDismatch => "conversation.org.dismatch",
            Self::ResourceNotFound => "resource.not.found",
            Self::Unauthorized => "unauthorized",
            Self::AuthError => "auth.error",
            Self::SystemError => "system.error",
            Self::InvalidAuthentication => "InvalidAuthentication",
            Self::InvalidClientIdOrSecret => "invalidClientIdOrSecret",
            Self::CidEncryptError => "cidEncryptError",
            Self::MonthlyQuotaExceeded => "Forbidden.AccessDenied.ApiCountLimitForOrg",
            Self::Throttled(c) | Self::PermissionDenied(c) | Self::Other(c) => c,
        }
    }

    /// Whether a call that failed with this code may succeed if retried later.
    pub fn is_transient(&self) -> bool {
        matches!(self, Self::SystemError | Self::Throttled(_))
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Everything that can go wrong talking to DingTalk.
#[derive(Debug, Clone, thiserror::Error)]
pub enum DingTalkError {
    /// The new API answered with an error body `{code, message, requestid}`.
    #[error("DingTalk answered HTTP {status} {code}: {message}")]
    Api {
        /// HTTP status.
        status: u16,
        /// Parsed `code`.
        code: ErrorCode,
        /// DingTalk's `message`, verbatim.
        message: String,
        /// DingTalk's `requestid`, for support.
        request_id: Option<String>,
    },
    /// The old API (`oapi`) answered `errcode != 0`.
    #[error("DingTalk (oapi) answered errcode {errcode}: {errmsg}")]
    OldApi {
        /// `errcode`.
        errcode: i64,
        /// `errmsg`, verbatim.
        errmsg: String,
    },
    /// `processQueryKey.expireTime` persisted past the "not ready yet" window
    /// right after sending.
    #[error("DingTalk has not prepared read data for this notice yet")]
    NotReady,
    /// `processQueryKey.expireTime` long after sending: DingTalk no longer keeps read data.
    #[error("DingTalk no longer keeps read data for this notice")]
    Expired,
    /// The call (with its retries) did not finish in time.
    #[error("DingTalk did not answer in time")]
    Timeout,
    /// Connection-level failure.
    #[error("could not reach DingTalk: {0}")]
    Transport(String),
    /// DingTalk answered something that is not the documented JSON.
    #[error("unexpected answer from DingTalk: {0}")]
    Decode(String),
    /// A `sessionWebhook` that is not on the configured DingTalk host; never called.
    #[error("session webhook is not on the configured DingTalk host")]
    UntrustedWebhook,
    /// The `sessionWebhook` is expired or unknown (errcode 300001).
    #[error("session webhook expired")]
    SessionExpired,
}

impl DingTalkError {
    /// The parsed new-API code, if this is a new-API error.
    pub fn code(&self) -> Option<&ErrorCode> {
        match self {
            DingTalkError::Api { code, .. } => Some(code),
            _ => None,
        }
    }

    /// A code string for API clients (`502` bodies): DingTalk's own code where
    /// there is one, else a readbot code.
    pub fn code_str(&self) -> String {
        match self {
            DingTalkError::Api { code, .. } => code.as_str().to_owned(),
            DingTalkError::OldApi { errcode, .. } => errcode.to_string(),
            DingTalkError::NotReady => "processQueryKey.expireTime".into(),
            DingTalkError::Expired => "processQueryKey.expireTime".into(),
            DingTalkError::Timeout => "readbot.timeout".into(),
            DingTalkError::Transport(_) => "readbot.transport".into(),
            DingTalkError::Decode(_) => "readbot.decode".into(),
            DingTalkError::UntrustedWebhook => "readbot.untrustedWebhook".into(),
            DingTalkError::SessionExpired => "300001".into(),
        }
    }

    /// DingTalk's message where there is one, else our description.
    pub fn message_str(&self) -> String {
        match self {
            DingTalkError::Api { message, .. } => message.clone(),
            DingTalkError::OldApi { errmsg, .. } => errmsg.clone(),
            other => other.to_string(),
        }
    }

    /// The sentence the group sees when this error stops a summary.
    pub fn human(&self, lang: Lang) -> String {
        let (en, zh): (&str, &str) = match self {
            // A gateway answer without a code we know: say what the status means.
            DingTalkError::Api {
                status: 504,
                code: ErrorCode::Other(_),
                ..
            } => return DingTalkError::Timeout.human(lang),
            DingTalkError::Api {
                status,
                code: ErrorCode::Other(_),
                ..
            } if *status == 429 || *status >= 500 => {
                let code = if *status == 429 {
                    ErrorCode::Throttled(String::new())
                } else {
                    ErrorCode::SystemError
                };
                return human_code(&code, lang);
            }
            DingTalkError::Api { code, .. } => return human_code(code, lang),
            DingTalkError::OldApi { errcode, .. } => match errcode {
                40014 | 42001 => (
                    "DingTalk did not accept readbot's access token. Please try again in a moment.",
                    "钉钉不接受 readbot 的访问凭证，请稍后再试。",
                ),
                60011 => (
                    "readbot lacks a DingTalk permission for this. Ask an admin to grant the app's contact permissions.",
                    "readbot 缺少钉钉权限，请管理员为应用开通通讯录相关权限。",
                ),
                90018 | 90002 => (
                    "DingTalk is throttling readbot right now. Please ask again in a minute.",
                    "钉钉当前对 readbot 限流，请一分钟后再问。",
                ),
                _ => (
                    "DingTalk refused a request readbot made. An admin can find the details in readbot's log.",
                    "钉钉拒绝了 readbot 的请求，管理员可在 readbot 日志中查看详情。",
                ),
            },
            DingTalkError::NotReady => (
                "DingTalk is still preparing the read data for this notice. Please ask again in a minute.",
                "钉钉还在生成这条通知的已读数据，请一分钟后再问。",
            ),
            DingTalkError::Expired => (
                "DingTalk no longer keeps read data for this notice (it is too old).",
                "这条通知太旧了，钉钉已不再保留它的已读数据。",
            ),
            DingTalkError::Timeout | DingTalkError::Transport(_) => (
                "DingTalk did not answer in time. Please ask again in a minute.",
                "钉钉没有及时响应，请一分钟后再问。",
            ),
            DingTalkError::Decode(_) => (
                "DingTalk sent an answer readbot could not understand. An admin can find the details in readbot's log.",
                "钉钉返回了 readbot 无法识别的内容，管理员可在 readbot 日志中查看详情。",
            ),
            DingTalkError::UntrustedWebhook | DingTalkError::SessionExpired => (
                "readbot could not reply in this conversation.",
                "readbot 无法在此会话中回复。",
            ),
        };
        match lang {
            Lang::En => en.to_owned(),
            Lang::Zh => zh.to_owned(),
        }
    }
}

/// One sentence per known code, in the asker's language.
fn human_code(code: &ErrorCode, lang: Lang) -> String {
    use ErrorCode::*;
    let (en, zh): (&str, &str) = match code {
        ParamInvalid => (
            "DingTalk said a parameter was invalid or empty. This is a readbot bug or a misconfiguration; an admin can find the details in readbot's log.",
            "钉钉提示参数无效或为空。这是 readbot 的缺陷或配置错误，管理员可在日志中查看详情。",
        ),
        RobotCodeNotExist => (
            "DingTalk does not know this robot. Check that the robot is in this group and that readbot's robot code is right.",
            "钉钉找不到这个机器人。请确认机器人在本群中，并检查 readbot 配置的 robotCode。",
        ),
        RobotCodeMissing => (
            "readbot sent no robot code to DingTalk. Set DINGTALK_ROBOT_CODE (or the app key).",
            "readbot 没有向钉钉提供 robotCode，请配置 DINGTALK_ROBOT_CODE（或应用 AppKey）。",
        ),
        ProcessQueryKeyMissing => (
            "readbot asked DingTalk without the notice's key. This is a readbot bug; please report it.",
            "readbot 查询时缺少通知的 processQueryKey，这是 readbot 的缺陷，请反馈。",
        ),
        CursorInvalid => (
            "DingTalk refused the page cursor while listing readers. Please ask again.",
            "钉钉拒绝了分页游标（nextToken），请重新提问。",
        ),
        PageSizeInvalid => (
            "DingTalk refused the page size readbot asked for (at most 200). This is a readbot bug; please report it.",
            "钉钉拒绝了分页大小（最多 200），这是 readbot 的缺陷，请反馈。",
        ),
        TokenBotNotExist => (
            "DingTalk says the robot behind readbot's token does not exist. Check that the robot is in this group.",
            "钉钉提示凭证对应的机器人不存在，请确认机器人在本群中。",
        ),
        RobotCodeInvalid => (
            "DingTalk says readbot's robot code is invalid. Check DINGTALK_ROBOT_CODE.",
            "钉钉提示 robotCode 无效，请检查 DINGTALK_ROBOT_CODE。",
        ),
        InvalidOpenConversationId | CidEncryptError => (
            "DingTalk does not recognise this group's id.",
            "钉钉无法识别本群的 openConversationId。",
        ),
        OpenConversationIdNotExisted => (
            "DingTalk needs a group id for this request and got none. This is a readbot bug; please report it.",
            "钉钉要求提供群 ID（openConversationId），但请求中没有，这是 readbot 的缺陷，请反馈。",
        ),
        InvalidProcessQueryKey => (
            "DingTalk does not recognise this notice's key, so its read status cannot be looked up.",
            "钉钉无法识别这条通知的 processQueryKey，无法查询已读状态。",
        ),
        BotStopped => (
            "The robot has been disabled in this group. Ask a group admin to enable it again.",
            "本群的机器人已被停用，请群管理员重新启用。",
        ),
        TemplateNotExisted => (
            "DingTalk says the robot's template does not exist.",
            "钉钉提示机器人模板不存在。",
        ),
        TemplateStopped => (
            "The robot's template has been disabled.",
            "机器人模板已被停用。",
        ),
        ProcessQueryKeyExpireTime => (
            "DingTalk has no read data for this notice: either it is still being prepared (ask again in a minute) or it has expired.",
            "钉钉没有这条通知的已读数据：可能仍在生成（请一分钟后再问），也可能已过期。",
        ),
        ConversationOrgDismatch => (
            "This group belongs to another organisation than readbot's app.",
            "本群不属于 readbot 应用所在的组织。",
        ),
        ResourceNotFound => (
            "DingTalk could not find the robot. Check that it is installed in this group.",
            "钉钉找不到该机器人，请确认已添加到本群。",
        ),
        Unauthorized => (
            "DingTalk says readbot is not authorised for this. Check the app's permissions in the developer console.",
            "钉钉提示 readbot 未获授权，请在开发者后台检查应用权限。",
        ),
        AuthError => (
            "readbot's app lacks a DingTalk permission for this (for read status: qyapi_robot_sendmsg). Ask an admin to grant it.",
            "readbot 应用缺少所需的钉钉权限（查询已读需要 qyapi_robot_sendmsg），请管理员开通。",
        ),
        SystemError => (
            "DingTalk had an internal error. Please ask again in a minute.",
            "钉钉内部错误，请一分钟后再问。",
        ),
        InvalidAuthentication => (
            "DingTalk did not accept readbot's access token. Please try again in a moment.",
            "钉钉不接受 readbot 的访问凭证，请稍后再试。",
        ),
        InvalidClientIdOrSecret => (
            "DingTalk rejected readbot's app key or secret. An admin must fix DINGTALK_APP_KEY / DINGTALK_APP_SECRET.",
            "钉钉拒绝了 readbot 的 AppKey 或 AppSecret，请管理员检查 DINGTALK_APP_KEY / DINGTALK_APP_SECRET。",
        ),
        Throttled(_) => (
            "DingTalk is throttling readbot right now. Please ask again in a minute.",
            "钉钉当前对 readbot 限流，请一分钟后再问。",
        ),
        MonthlyQuotaExceeded => (
            "This organisation has used up its monthly DingTalk API quota.",
            "本组织本月的钉钉接口调用额度已用完。",
        ),
        PermissionDenied(_) => (
            "readbot's app lacks a DingTalk permission (or its IP is not whitelisted). Ask an admin to check the developer console.",
            "readbot 应用缺少钉钉权限（或 IP 不在白名单），请管理员检查开发者后台。",
        ),
        Other(_) => (
            "DingTalk refused a request readbot made. An admin can find the details in readbot's log.",
            "钉钉拒绝了 readbot 的请求，管理员可在 readbot 日志中查看详情。",
        ),
    };
    match lang {
        Lang::En => en.to_owned(),
        Lang::Zh => zh.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_seed_code_is_typed_round_trips_and_has_distinct_sentences() {
        let mut seen = std::collections::HashSet::new();
        for c in SEED_ERROR_CODES {
            let code = ErrorCode::parse(c);
            assert!(!matches!(code, ErrorCode::Other(_)), "{c} is untyped");
            assert_eq!(code.as_str(), *c);
            let en = human_code(&code, Lang::En);
            let zh = human_code(&code, Lang::Zh);
            assert!(seen.insert(en.clone()), "{c} shares its sentence");
            assert!(zh.chars().any(|ch| ('\u{4e00}'..='\u{9fff}').contains(&ch)));
        }
    }

    #[test]
    fn an_unreadable_group_id_is_typed() {
        let code = ErrorCode::parse("cidEncryptError");
        assert_eq!(code, ErrorCode::CidEncryptError);
        assert_eq!(code.as_str(), "cidEncryptError");
        assert!(!code.is_transient());
        assert_eq!(
            human_code(&code, Lang::En),
            human_code(&ErrorCode::InvalidOpenConversationId, Lang::En)
        );
    }

    #[test]
    fn throttling_codes_are_transient() {
        assert!(ErrorCode::parse("Forbidden.AccessDenied.QpsLimitForAppkeyAndApi").is_transient());
        assert!(ErrorCode::parse("system.error").is_transient());
        assert!(!ErrorCode::parse("bot.stopped").is_transient());
    }
}
