//! Every sentence readbot says in a chat, English and Chinese side by side:
//! the words a group reads belong to the bot, not to the DingTalk client
//! (which only types its errors) nor to the templates (which lay a sentence
//! out; see `error.<lang>.md.j2`).

use crate::config::RemindPolicy;
use crate::dingtalk::{DingTalkError, ErrorCode};
use crate::domain::{Lang, RosterSource};

/// Picks the sentence in `lang`.
fn say(lang: Lang, en: &str, zh: &str) -> String {
    match lang {
        Lang::En => en.to_owned(),
        Lang::Zh => zh.to_owned(),
    }
}

/// Title of the help reply.
pub fn help_title(lang: Lang) -> String {
    say(lang, "readbot help", "readbot 帮助")
}

/// Title of the list of recent notices.
pub fn list_title(lang: Lang) -> String {
    say(lang, "Recent notices", "最近的通知")
}

/// Title of a read-receipts summary.
pub fn receipts_title(lang: Lang) -> String {
    say(lang, "Read receipts", "已读情况")
}

/// Title of an error reply.
pub fn error_title(lang: Lang) -> String {
    say(lang, "readbot", "readbot")
}

/// Answering took longer than `bot.summary_timeout_secs`.
pub fn too_slow(lang: Lang) -> String {
    say(
        lang,
        "Gathering the read receipts took too long. Please ask again in a minute.",
        "统计已读情况耗时过长，请一分钟后再问。",
    )
}

/// A command that needs a group came in a 1:1 chat.
pub fn ask_in_group(lang: Lang) -> String {
    say(
        lang,
        "Ask me in the group where your notice was sent.",
        "请在发送通知的群里问我。",
    )
}

/// The notice asked about is not in the store.
pub fn notice_not_recorded(lang: Lang) -> String {
    say(lang, "That notice is not recorded.", "没有这条通知的记录。")
}

/// The store or a template failed; the details are in the log only.
pub fn internal_error(lang: Lang) -> String {
    say(
        lang,
        "readbot hit an internal error. An admin can find the details in readbot's log.",
        "readbot 内部出错，管理员可在 readbot 日志中查看详情。",
    )
}

/// `status N` with no N-th notice; the group has `recorded` notices.
pub fn no_such_notice(n: usize, recorded: usize, lang: Lang) -> String {
    match lang {
        Lang::En => format!(
            "There is no notice {n} here; this group has {recorded} recorded. Ask \"list\" to see them."
        ),
        Lang::Zh => format!("没有第 {n} 条通知，本群共记录了 {recorded} 条。发送“列表”查看。"),
    }
}

/// The group has no notice sent through readbot.
pub fn no_notices(lang: Lang) -> String {
    say(
        lang,
        "No notices sent through readbot are recorded in this group yet. readbot tracks only notices sent through it (from your admin's tool or the readbot send command), not messages typed in the chat. Ask again once one has been sent that way.",
        "本群还没有通过 readbot 发送的通知记录。readbot 只跟踪通过它发出的通知（来自管理员的工具或 readbot send 命令），不跟踪群里直接输入的消息。请这样发出一条通知后再来问我。",
    )
}

/// Title of the reply to `id` / `我的id`.
pub fn ids_title(lang: Lang) -> String {
    say(lang, "Your ids", "你的 ID")
}

/// The reply to `id` / `我的id`: the group's openConversationId (`None` in a
/// 1:1 chat), the asker's userId (`None` when DingTalk sent none) and the
/// robot code, for `readbot check --group/--user` and the send API.
pub fn your_ids(group: Option<&str>, user: Option<&str>, robot_code: &str, lang: Lang) -> String {
    match lang {
        Lang::En => {
            let group = group.map_or_else(
                || "none here (this is a 1:1 chat: ask me in the group)".to_owned(),
                str::to_owned,
            );
            let user = user.map_or_else(
                || {
                    "DingTalk sent none (an external member, or the app is not published yet)"
                        .to_owned()
                },
                str::to_owned,
            );
            format!(
                "#### Your ids\n\n- this group (openConversationId): {group}\n- you (userId): {user}\n- the robot (robotCode): {robot_code}\n\nUse them with readbot check --group and --user, and as openConversationId in readbot's send API."
            )
        }
        Lang::Zh => {
            let group =
                group.map_or_else(|| "无（这是单聊：请在群里问我）".to_owned(), str::to_owned);
            let user = user.map_or_else(
                || "钉钉没有提供（外部成员，或应用尚未发布）".to_owned(),
                str::to_owned,
            );
            format!(
                "#### 你的 ID\n\n- 本群（openConversationId）：{group}\n- 你（userId）：{user}\n- 机器人（robotCode）：{robot_code}\n\n可用于 readbot check 的 --group 和 --user 参数，以及 readbot 发送接口的 openConversationId。"
            )
        }
    }
}

// ----- reminders and recalls ---------------------------------------------------

/// Title of a reminder (group @-message or direct message).
pub fn remind_title(lang: Lang) -> String {
    say(lang, "Reminder", "提醒")
}

/// Title of a recall confirmation.
pub fn recall_title(lang: Lang) -> String {
    say(lang, "Recall", "撤回")
}

/// What the roster of a reminder was, so the group knows who counts as unread.
pub fn remind_roster(source: RosterSource, complete: bool, lang: Lang) -> String {
    let (en, zh) = match source {
        RosterSource::InnerGroup => ("the group's member list", "群成员列表"),
        RosterSource::SceneGroup => ("the scene group's member list", "场景群成员列表"),
        RosterSource::Learned => (
            "the members readbot has seen in this group",
            "readbot 在本群见过的成员",
        ),
    };
    let (en_more, zh_more) = if complete {
        ("", "")
    } else {
        (" (it may be incomplete)", "（可能不完整）")
    };
    match lang {
        Lang::En => format!("Unread counted against {en}{en_more}."),
        Lang::Zh => format!("未读按{zh}{zh_more}统计。"),
    }
}

/// First line of a reminder @-message in the group.
pub fn remind_header(title: &str, author: &str, sent_at: &str, lang: Lang) -> String {
    match (lang, author.is_empty()) {
        (Lang::En, false) => {
            format!("Please read **{title}** (from {author}, sent {sent_at}). Not read yet:")
        }
        (Lang::En, true) => format!("Please read **{title}** (sent {sent_at}). Not read yet:"),
        (Lang::Zh, false) => {
            format!("请阅读 **{title}**（{author} 于 {sent_at} 发送）。以下成员尚未阅读：")
        }
        (Lang::Zh, true) => format!("请阅读 **{title}**（{sent_at} 发送）。以下成员尚未阅读："),
    }
}

/// Ends the last @-message when the mention cap left people out.
pub fn remind_more(rest: usize, lang: Lang) -> String {
    match lang {
        Lang::En => format!(
            "{rest} more have not read it and were not mentioned here. Say \"remind dm\" to send each of them a direct message."
        ),
        Lang::Zh => format!("另有 {rest} 人未读，未在此提及。发送“私信提醒”可逐一私信提醒他们。"),
    }
}

/// No fresh `sessionWebhook`: only a reply through one can @ anyone.
pub fn remind_no_session(lang: Lang) -> String {
    say(
        lang,
        "I can only @ people in a direct reply to your message, and DingTalk gave me no reply link that is still valid. Say \"remind dm\" to send the unread members a direct message instead.",
        "只有直接回复你的消息时我才能 @ 成员，但钉钉没有给出仍然有效的回复链接。发送“私信提醒”可改为私信提醒未读成员。",
    )
}

/// The asker may not remind (or recall, `recall` true) under the policy.
pub fn not_allowed(policy: RemindPolicy, recall: bool, lang: Lang) -> String {
    let (en_act, zh_act) = if recall {
        ("recall", "撤回")
    } else {
        ("send reminders about", "提醒")
    };
    match (lang, policy) {
        (Lang::En, RemindPolicy::Admins) => {
            format!("Only readbot's admins may {en_act} notices here.")
        }
        (Lang::En, _) => {
            format!("Only the notice's author and readbot's admins may {en_act} this notice.")
        }
        (Lang::Zh, RemindPolicy::Admins) => format!("只有 readbot 管理员可以{zh_act}通知。"),
        (Lang::Zh, _) => format!("只有通知的发送人和 readbot 管理员可以{zh_act}这条通知。"),
    }
}

/// A reminder came too soon after the last one; `next` is when one is allowed.
pub fn remind_cooldown(next: &str, lang: Lang) -> String {
    match lang {
        Lang::En => format!(
            "This notice was reminded a short while ago. The next reminder is allowed at {next}."
        ),
        Lang::Zh => format!("这条通知刚提醒过，下次提醒最早在 {next}。"),
    }
}

/// The notice was recalled: no reminders.
pub fn remind_recalled(lang: Lang) -> String {
    say(
        lang,
        "That notice was recalled, so readbot sends no reminders about it.",
        "这条通知已撤回，readbot 不再为它发送提醒。",
    )
}

/// No roster: readbot cannot tell who has not read.
pub fn remind_no_roster(lang: Lang) -> String {
    say(
        lang,
        "readbot does not know this group's member list, so it cannot tell who has not read the notice.",
        "readbot 不知道本群的成员列表，无法判断谁还没有阅读。",
    )
}

/// Nobody is left to remind.
pub fn remind_nobody(lang: Lang) -> String {
    say(
        lang,
        "Everyone has read it; there is nobody to remind.",
        "所有人都已阅读，无需提醒。",
    )
}

/// Another reminder of the same notice is being sent right now.
pub fn remind_in_progress(lang: Lang) -> String {
    say(
        lang,
        "A reminder about this notice is being sent right now.",
        "这条通知的提醒正在发送中。",
    )
}

/// The @-messages stopped after `reached` of `total` people.
pub fn remind_stopped(reached: usize, total: usize, cause: &str, lang: Lang) -> String {
    match lang {
        Lang::En => format!("The reminder stopped after mentioning {reached} of {total}. {cause}"),
        Lang::Zh => format!("提醒在 @ 了 {total} 人中的 {reached} 人后中止。{cause}"),
    }
}

/// The direct message an unread member gets: (title, markdown). `group`
/// is the group's title when readbot knows it (from a callback: untrusted,
/// neutralised here for markdown).
pub fn remind_dm(
    title: &str,
    author: &str,
    sent_at: &str,
    group: Option<&str>,
    lang: Lang,
) -> (String, String) {
    let author = if author.is_empty() {
        say(lang, "someone", "有人")
    } else {
        author.to_owned()
    };
    let group = group
        .map(|g| crate::render::neutralise(g.trim()))
        .filter(|g| !g.trim().is_empty());
    match lang {
        Lang::En => {
            let place = match group {
                Some(g) => format!("in the group «{g}»"),
                None => "to your group".to_owned(),
            };
            (
                format!("Reminder: {title}"),
                format!(
                    "{author} sent the notice **{title}** {place} on {sent_at}, and you have not read it yet. Please open the group and read it."
                ),
            )
        }
        Lang::Zh => {
            let place = match group {
                Some(g) => format!("在群「{g}」里"),
                None => "在群里".to_owned(),
            };
            (
                format!("提醒：{title}"),
                format!("{author} 于 {sent_at} {place}发送了通知 **{title}**，你还没有阅读，请打开群聊查看。"),
            )
        }
    }
}

/// Names shown in a list before "and N more".
const NAMES_SHOWN: usize = 20;

fn names(list: &[String], lang: Lang) -> String {
    let shown = list
        .iter()
        .take(NAMES_SHOWN)
        .cloned()
        .collect::<Vec<_>>()
        .join(say(lang, ", ", "、").as_str());
    let more = list.len().saturating_sub(NAMES_SHOWN);
    match (lang, more) {
        (_, 0) => shown,
        (Lang::En, m) => format!("{shown} and {m} more"),
        (Lang::Zh, m) => format!("{shown} 等另外 {m} 人"),
    }
}

/// The confirmation of `remind dm` to the asker.
pub fn remind_dm_done(
    sent: usize,
    total: usize,
    invalid: &[String],
    flow_controlled: &[String],
    unsent: &[String],
    lang: Lang,
) -> String {
    let mut out = match lang {
        Lang::En => format!("Sent a direct message to {sent} of {total} unread members."),
        Lang::Zh => format!("已私信提醒 {total} 位未读成员中的 {sent} 位。"),
    };
    if !invalid.is_empty() {
        out.push(' ');
        out.push_str(&match lang {
            Lang::En => format!(
                "DingTalk refused {} as unknown or invalid users: {}.",
                invalid.len(),
                names(invalid, lang)
            ),
            Lang::Zh => format!(
                "钉钉认为 {} 人无效或不存在：{}。",
                invalid.len(),
                names(invalid, lang)
            ),
        });
    }
    if !flow_controlled.is_empty() {
        out.push(' ');
        out.push_str(&match lang {
            Lang::En => format!(
                "DingTalk held back {} because of flow control (try again later): {}.",
                flow_controlled.len(),
                names(flow_controlled, lang)
            ),
            Lang::Zh => format!(
                "钉钉因限流未发送 {} 人（请稍后再试）：{}。",
                flow_controlled.len(),
                names(flow_controlled, lang)
            ),
        });
    }
    if !unsent.is_empty() {
        out.push(' ');
        out.push_str(&match lang {
            Lang::En => format!(
                "{} were not sent to because DingTalk failed: {}.",
                unsent.len(),
                names(unsent, lang)
            ),
            Lang::Zh => format!(
                "因钉钉出错，{} 人未发送：{}。",
                unsent.len(),
                names(unsent, lang)
            ),
        });
    }
    out
}

/// The notice was recalled.
pub fn recall_done(title: &str, lang: Lang) -> String {
    match lang {
        Lang::En => format!("Recalled **{title}**. readbot sends no more reminders about it."),
        Lang::Zh => format!("已撤回 **{title}**，readbot 不再为它发送提醒。"),
    }
}

/// DingTalk did not recall the notice; `reason` is its `failedResult` text.
pub fn recall_failed(reason: &str, lang: Lang) -> String {
    let reason = reason.trim();
    match (lang, reason.is_empty()) {
        (Lang::En, false) => format!("DingTalk did not recall the notice: {reason}"),
        (Lang::En, true) => "DingTalk did not recall the notice and gave no reason.".to_owned(),
        (Lang::Zh, false) => format!("钉钉未能撤回这条通知：{reason}"),
        (Lang::Zh, true) => "钉钉未能撤回这条通知，也没有说明原因。".to_owned(),
    }
}

/// The summary's line about reminders: "reminded 2× · last 14:05".
pub fn reminded_line(count: usize, last: &str, lang: Lang) -> String {
    match lang {
        Lang::En => format!("Reminded {count}× · last {last}"),
        Lang::Zh => format!("已提醒 {count} 次 · 最近 {last}"),
    }
}

/// The summary's line about a recall through readbot.
pub fn recalled_line(at: &str, lang: Lang) -> String {
    match lang {
        Lang::En => format!("Recalled through readbot at {at}."),
        Lang::Zh => format!("已于 {at} 通过 readbot 撤回。"),
    }
}

/// DingTalk refused a call: the organisation's monthly API quota is used up
/// (`Forbidden.AccessDenied.ApiCountLimitForOrg`, errcode 90020).
pub fn quota_used_up(lang: Lang) -> String {
    say(
        lang,
        "DingTalk refused the request: this organisation has used up its monthly API quota. \
         readbot stops querying once dingtalk.monthly_call_budget is nearly spent, so an admin should set it \
         to the organisation's real quota; until the month ends, summaries answer from stored reads.",
        "钉钉拒绝了请求：本组织本月的接口调用额度已用完。readbot 会在 dingtalk.monthly_call_budget \
         即将用完时停止查询，请管理员把它设为本组织的实际额度；本月剩余时间内，汇总使用已保存的已读数据。",
    )
}

/// Added to a summary that did not query DingTalk because the month's call
/// budget is nearly spent (`used` of `budget` in `month`) or DingTalk said
/// the quota is used up (`refused`).
pub fn budget_saving(used: u64, budget: u64, month: &str, refused: bool, lang: Lang) -> String {
    match (lang, refused) {
        (Lang::En, false) => format!(
            "DingTalk's monthly call budget is nearly spent ({used} of {budget} calls in {month}, \
             dingtalk.monthly_call_budget), so readbot did not query DingTalk: these reads come from read \
             events and earlier queries and may miss the latest ones."
        ),
        (Lang::En, true) => format!(
            "DingTalk says this organisation's monthly API quota is used up ({used} calls counted in {month}; \
             readbot's budget dingtalk.monthly_call_budget is {budget}), so readbot did not query DingTalk: \
             these reads come from read events and earlier queries and may miss the latest ones."
        ),
        (Lang::Zh, false) => format!(
            "本月钉钉接口调用预算即将用完（{month} 已用 {used}/{budget} 次，配置项 dingtalk.monthly_call_budget），\
             readbot 未再查询钉钉：以下已读数据来自已读事件和之前的查询，可能缺少最新的已读。"
        ),
        (Lang::Zh, true) => format!(
            "钉钉提示本组织本月的接口调用额度已用完（{month} 已计 {used} 次；readbot 的预算 \
             dingtalk.monthly_call_budget 为 {budget}），readbot 未再查询钉钉：以下已读数据来自已读事件和之前的查询，可能缺少最新的已读。"
        ),
    }
}

/// The sentence the group sees when `e` stops a summary.
pub fn dingtalk_error(e: &DingTalkError, lang: Lang) -> String {
    let (en, zh): (&str, &str) = match e {
        // A gateway answer without a code we know: say what the status means.
        DingTalkError::Api {
            status: 504,
            code: ErrorCode::Other(_),
            ..
        } => return dingtalk_error(&DingTalkError::Timeout, lang),
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
            return dingtalk_code(&code, lang);
        }
        DingTalkError::Api { code, .. } => return dingtalk_code(code, lang),
        DingTalkError::OldApi { errcode, .. } => match errcode {
            40014 | 42001 => (
                "DingTalk did not accept readbot's access token. Please try again in a moment.",
                "钉钉不接受 readbot 的访问凭证，请稍后再试。",
            ),
            60011 => (
                "readbot lacks a DingTalk permission for this. Ask an admin to grant the app's contact permissions.",
                "readbot 缺少钉钉权限，请管理员为应用开通通讯录相关权限。",
            ),
            90020 => return quota_used_up(lang),
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
        DingTalkError::Decode(_) | DingTalkError::TooLarge { .. } => (
            "DingTalk sent an answer readbot could not understand. An admin can find the details in readbot's log.",
            "钉钉返回了 readbot 无法识别的内容，管理员可在 readbot 日志中查看详情。",
        ),
        DingTalkError::UntrustedWebhook | DingTalkError::SessionExpired => (
            "readbot could not reply in this conversation.",
            "readbot 无法在此会话中回复。",
        ),
    };
    say(lang, en, zh)
}

/// One sentence per known DingTalk error code, in the asker's language.
fn dingtalk_code(code: &ErrorCode, lang: Lang) -> String {
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
        MonthlyQuotaExceeded => return quota_used_up(lang),
        PermissionDenied(_) => (
            "readbot's app lacks a DingTalk permission (or its IP is not whitelisted). Ask an admin to check the developer console.",
            "readbot 应用缺少钉钉权限（或 IP 不在白名单），请管理员检查开发者后台。",
        ),
        Other(_) => (
            "DingTalk refused a request readbot made. An admin can find the details in readbot's log.",
            "钉钉拒绝了 readbot 的请求，管理员可在 readbot 日志中查看详情。",
        ),
    };
    say(lang, en, zh)
}

// The notice page (issue 13): the chart's words and the page's errors.

/// Title of the notice page's read-progress chart.
pub fn chart_title(lang: Lang) -> String {
    say(lang, "Read progress", "阅读进度")
}

/// The chart in words (its `<desc>`): who read, of how many, over how long.
pub fn chart_desc(read: usize, members: usize, span: &str, lang: Lang) -> String {
    match (lang, members) {
        (Lang::En, 0) => format!("Cumulative readers since sending: {read} within {span}; the member list is unknown."),
        (Lang::En, m) => format!("Cumulative readers since sending: {read} of {m} members within {span}. The dashed line is the member count; dotted lines mark when 50% and 80% had read."),
        (Lang::Zh, 0) => format!("发送以来的累计已读人数：{span}内 {read} 人；群成员名单未知。"),
        (Lang::Zh, m) => format!("发送以来的累计已读人数：{span}内 {m} 人中 {read} 人已读。虚线为成员总数；点线标出 50% 和 80% 的人已读的时刻。"),
    }
}

/// Label of the chart's ceiling line.
pub fn chart_members(members: usize, lang: Lang) -> String {
    match lang {
        Lang::En => format!("{members} members"),
        Lang::Zh => format!("共 {members} 人"),
    }
}

/// A span of time, roughly (`45 min`, `3 h`, `2 d`; `45 分钟`, `3 小时`, `2 天`).
pub fn span(secs: u64, lang: Lang) -> String {
    let minutes = secs.div_ceil(60).max(1);
    let (n, en, zh) = if minutes < 120 {
        (minutes, "min", "分钟")
    } else if minutes < 2880 {
        (minutes / 60, "h", "小时")
    } else {
        (minutes / 1440, "d", "天")
    };
    match lang {
        Lang::En => format!("{n} {en}"),
        Lang::Zh => format!("{n} {zh}"),
    }
}

/// The page of a notice readbot no longer keeps (removed by retention).
pub fn page_notice_gone(lang: Lang) -> String {
    say(
        lang,
        "readbot no longer keeps this notice.",
        "readbot 已不再保存这条通知。",
    )
}

// Scheduled follow-ups and who may see what (issue 12).

/// Title of the confirmation of a scheduled follow-up.
pub fn follow_up_title(lang: Lang) -> String {
    say(lang, "Follow-up scheduled", "已安排跟进")
}

/// A follow-up was scheduled: at `when` (in zone `zone`) readbot will
/// post the summary of `title`, or remind its unread members by direct message.
pub fn follow_up_scheduled(
    remind: bool,
    when: &str,
    zone: &str,
    title: &str,
    lang: Lang,
) -> String {
    match (lang, remind) {
        (Lang::En, false) => format!(
            "At {when} ({zone}) I will post who has read **{title}** to this group."
        ),
        (Lang::En, true) => format!(
            "At {when} ({zone}) I will send a direct message to everyone who has not read **{title}** by then (a scheduled reminder cannot @ people in the group)."
        ),
        (Lang::Zh, false) => format!("将于 {when}（{zone}）在本群发布 **{title}** 的已读情况。"),
        (Lang::Zh, true) => format!(
            "将于 {when}（{zone}）私信提醒届时仍未阅读 **{title}** 的成员（定时提醒无法在群里 @ 人）。"
        ),
    }
}

/// The time asked for has passed today.
pub fn follow_up_past(when: &str, lang: Lang) -> String {
    match lang {
        Lang::En => format!(
            "{when} has already passed today. Say \"tomorrow {when}\" to schedule it for tomorrow."
        ),
        Lang::Zh => format!("今天的 {when} 已经过了。如需明天，请说“明天 {when}”。"),
    }
}

/// The time asked for is after the notice can still be queried.
pub fn follow_up_outside_window(until: &str, lang: Lang) -> String {
    match lang {
        Lang::En => format!(
            "That is too late: readbot keeps this notice (and can check who read it) only until {until}."
        ),
        Lang::Zh => format!("时间太晚了：readbot 只保留这条通知（并能查询已读情况）到 {until}。"),
    }
}

/// The notice already has the most follow-ups allowed.
pub fn follow_up_too_many(max: usize, lang: Lang) -> String {
    match lang {
        Lang::En => {
            format!("This notice already has {max} scheduled follow-ups, the most allowed.")
        }
        Lang::Zh => format!("这条通知已经安排了 {max} 次跟进，不能再多了。"),
    }
}

/// The first line of a scheduled summary; `late_by` when it is sent late.
pub fn follow_up_summary_header(scheduled: &str, late: Option<&str>, lang: Lang) -> String {
    match (lang, late) {
        (Lang::En, None) => format!("**Scheduled summary** ({scheduled})"),
        (Lang::En, Some(now)) => format!(
            "**Scheduled summary** for {scheduled}, sent late at {now}: readbot was not running at {scheduled}."
        ),
        (Lang::Zh, None) => format!("**定时汇总**（{scheduled}）"),
        (Lang::Zh, Some(now)) => format!(
            "**定时汇总**：原定 {scheduled}，因 readbot 当时未运行，于 {now} 补发。"
        ),
    }
}

/// The line a scheduled reminder sent late adds to its direct message.
pub fn follow_up_remind_late(scheduled: &str, lang: Lang) -> String {
    match lang {
        Lang::En => format!("(This reminder was scheduled for {scheduled} and is sent late.)"),
        Lang::Zh => format!("（本提醒原定于 {scheduled} 发送，现补发。）"),
    }
}

/// `bot.ask_policy = "author_and_admins"` refused the asker.
pub fn summary_not_allowed(lang: Lang) -> String {
    say(
        lang,
        "Only the notice's author and readbot's admins may see who has read this notice.",
        "只有通知的发送人和 readbot 管理员可以查看这条通知的已读情况。",
    )
}

/// `bot.reply_to = "dm"`: the one line the group sees.
pub fn summary_sent_privately(lang: Lang) -> String {
    say(lang, "I sent you the list privately.", "已私信发送给你。")
}

/// `bot.reply_to = "dm"` and the direct message failed.
pub fn summary_dm_failed(lang: Lang) -> String {
    say(
        lang,
        "I could not send you the list privately (DingTalk refused the direct message). Try again later, or ask an admin to check the robot's permission to send 1:1 messages.",
        "无法私信发送给你（钉钉拒绝了单聊消息）。请稍后再试，或请管理员检查机器人的单聊发送权限。",
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dingtalk::error::SEED_ERROR_CODES;

    #[test]
    fn the_dm_reminder_names_the_group_when_known_and_neutralised() {
        let (_, en) = remind_dm("Drill", "Ann", "Mon 14:05", Some("Ops «team»"), Lang::En);
        assert!(en.contains("in the group «Ops «team»»"), "{en}");
        let (_, zh) = remind_dm("Drill", "Ann", "Mon 14:05", Some("运维群"), Lang::Zh);
        assert!(zh.contains("在群「运维群」里"), "{zh}");
        let hostile = "[win](https://x.example) @all\n# big";
        for lang in [Lang::En, Lang::Zh] {
            let (_, text) = remind_dm("Drill", "Ann", "Mon", Some(hostile), lang);
            for bad in ["[win]", "](", "https://", "@all", "\n#", "\n"] {
                assert!(!text.contains(bad), "{bad:?} in {text}");
            }
            assert!(text.contains("win"), "{text}");
            for none in [None, Some("  ")] {
                let (_, text) = remind_dm("Drill", "Ann", "Mon", none, lang);
                assert!(!text.contains('«') && !text.contains('「'), "{text}");
            }
        }
    }

    #[test]
    fn ids_reply_names_all_three_ids_or_why_one_is_missing() {
        let en = your_ids(Some("cidG+/=="), Some("user7"), "dingbot", Lang::En);
        for part in [
            "cidG+/==",
            "user7",
            "dingbot",
            "openConversationId",
            "userId",
        ] {
            assert!(en.contains(part), "{en}");
        }
        let zh = your_ids(None, None, "dingbot", Lang::Zh);
        assert!(zh.contains("单聊") && zh.contains("dingbot"), "{zh}");
        assert!(!zh.contains('`') && !en.contains('`'));
    }

    #[test]
    fn the_quota_sentences_name_the_budget_setting() {
        let refused = DingTalkError::Api {
            status: 403,
            code: ErrorCode::MonthlyQuotaExceeded,
            message: String::new(),
            request_id: None,
        };
        let old = DingTalkError::OldApi {
            errcode: 90020,
            errmsg: String::new(),
        };
        for lang in [Lang::En, Lang::Zh] {
            for e in [&refused, &old] {
                assert!(
                    dingtalk_error(e, lang).contains("dingtalk.monthly_call_budget"),
                    "{e}"
                );
            }
            for refused in [false, true] {
                let s = budget_saving(4_812, 5_000, "2025-03", refused, lang);
                for part in ["4812", "5000", "2025-03", "dingtalk.monthly_call_budget"] {
                    assert!(s.contains(part), "{s}");
                }
            }
        }
    }

    #[test]
    fn every_seed_code_has_distinct_sentences_in_both_languages() {
        let mut seen = std::collections::HashSet::new();
        for c in SEED_ERROR_CODES {
            let code = ErrorCode::parse(c);
            let en = dingtalk_code(&code, Lang::En);
            let zh = dingtalk_code(&code, Lang::Zh);
            assert!(seen.insert(en.clone()), "{c} shares its sentence");
            assert!(zh.chars().any(|ch| ('\u{4e00}'..='\u{9fff}').contains(&ch)));
        }
    }
}
