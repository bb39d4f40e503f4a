//! Typed DingTalk errors and the wire rules about them (transient or not,
//! a refusal or not).
//!
//! Every error code in the seed table (`groupMessages/query`) has its own
//! [`ErrorCode`] variant; the sentence each becomes in the chat is the bot's
//! (`bot::sentences`).

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
    /// DingTalk's answer was longer than readbot reads (`limit` bytes); the
    /// rest was not read.
    #[error("DingTalk's answer is larger than {limit} bytes; not read")]
    TooLarge {
        /// The cap, in bytes.
        limit: usize,
    },
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

    /// A definite "no" (permission, wrong kind of group, not a member): a
    /// 4xx answer of the new API, as opposed to throttling (429 or a
    /// throttling code), a refused token or a transient failure. Asking the
    /// same again soon will get the same answer.
    pub fn is_refusal(&self) -> bool {
        match self {
            DingTalkError::Api { status, code, .. } => {
                (400..500).contains(status)
                    && *status != 429
                    && !matches!(
                        code,
                        ErrorCode::Throttled(_) | ErrorCode::InvalidAuthentication
                    )
            }
            _ => false,
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
            DingTalkError::TooLarge { .. } => "readbot.tooLarge".into(),
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
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_seed_code_is_typed_and_round_trips() {
        for c in SEED_ERROR_CODES {
            let code = ErrorCode::parse(c);
            assert!(!matches!(code, ErrorCode::Other(_)), "{c} is untyped");
            assert_eq!(code.as_str(), *c);
        }
    }

    #[test]
    fn only_definite_4xx_answers_are_refusals() {
        let api = |status: u16, code: &str| DingTalkError::Api {
            status,
            code: ErrorCode::parse(code),
            message: String::new(),
            request_id: None,
        };
        assert!(api(403, "Forbidden.AccessDenied.AccessTokenPermissionDenied").is_refusal());
        assert!(api(400, "invalid.openConversationId").is_refusal());
        assert!(api(404, "resource.not.found").is_refusal());
        assert!(api(400, "someNewCode").is_refusal());
        assert!(!api(429, "someNewCode").is_refusal());
        assert!(!api(403, "Forbidden.AccessDenied.QpsLimitForAppkeyAndApi").is_refusal());
        assert!(!api(401, "InvalidAuthentication").is_refusal());
        assert!(!api(500, "system.error").is_refusal());
        assert!(!api(503, "someNewCode").is_refusal());
        let old = DingTalkError::OldApi {
            errcode: 60011,
            errmsg: String::new(),
        };
        assert!(!old.is_refusal());
        assert!(!DingTalkError::Timeout.is_refusal());
        assert!(!DingTalkError::Transport(String::new()).is_refusal());
        assert!(!DingTalkError::Decode(String::new()).is_refusal());
    }

    #[test]
    fn throttling_codes_are_transient() {
        assert!(ErrorCode::parse("Forbidden.AccessDenied.QpsLimitForAppkeyAndApi").is_transient());
        assert!(ErrorCode::parse("system.error").is_transient());
        assert!(!ErrorCode::parse("bot.stopped").is_transient());
    }
}
