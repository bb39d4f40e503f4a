//! [`Bot`] against the scripted DingTalk ([`ScriptedApi`]) and the
//! [`MemoryStore`]: every command, every reply path, the error sentences and
//! the roster fallbacks, asserted on what the group sees (the delivered
//! text, and which DingTalk API carried it), never on internals.

use super::*;
use crate::dingtalk::scripted::{Call, Method, ScriptedApi};
use crate::dingtalk::{ErrorCode, ReadState, Roster, RosterQuery};
use crate::domain::{Member, MsgId, RosterSource, SendStatus};
use crate::store::memory::MemoryStore;

const GROUP: &str = "cidGroupOne==";
const ROBOT: &str = "dingRobotCode";
const WEBHOOK: &str = "https://oapi.dingtalk.com/robot/sendBySession?session=abc";

fn uid(s: &str) -> UserId {
    UserId::parse(s).unwrap()
}

fn group() -> OpenConversationId {
    OpenConversationId::parse(GROUP).unwrap()
}

fn member(id: &str, name: Option<&str>) -> Member {
    Member {
        user_id: uid(id),
        name: name.map(str::to_owned),
    }
}

fn roster(members: &[(&str, &str)]) -> Roster {
    Roster {
        members: members
            .iter()
            .map(|(id, name)| member(id, Some(name)))
            .collect(),
        complete: true,
    }
}

fn read_by(readers: &[&str]) -> ReadState {
    ReadState {
        send_status: SendStatus::Success,
        readers: readers.iter().map(|u| uid(u)).collect(),
        pages: 1,
        truncated: false,
    }
}

/// A member API's definite "no" (HTTP 400, as the fake answers a plain group).
fn refused() -> DingTalkError {
    DingTalkError::Api {
        status: 400,
        code: ErrorCode::Other("groupPermissionDenied".into()),
        message: "no permission".into(),
        request_id: None,
    }
}

/// An @mention in [`GROUP`] from `sender`, with a valid session webhook.
fn mention(id: &str, text: &str, sender: Option<&str>) -> Incoming {
    Incoming {
        msg_id: MsgId::parse(id).unwrap(),
        group: Some(group()),
        sender: sender.map(uid),
        sender_nick: sender.map(|s| format!("Nick {s}")).unwrap_or_default(),
        text: text.into(),
        session_webhook: Some(WEBHOOK.into()),
        session_webhook_expires_at: Some(now_millis() + 90 * 60 * 1000),
        robot_code: Some(RobotCode::parse(ROBOT).unwrap()),
        mentioned: Vec::new(),
        created_at: Some(now_millis()),
        group_title: None,
    }
}

/// What reached the group for one message.
#[derive(Debug, Clone, PartialEq)]
enum Delivered {
    /// Through the session webhook (URL, markdown).
    Session(String, String),
    /// Through `groupMessages/send` (group, title, markdown).
    GroupSend(String, String, String),
}

impl Delivered {
    fn text(&self) -> &str {
        match self {
            Delivered::Session(_, t) | Delivered::GroupSend(_, _, t) => t,
        }
    }
}

struct Harness {
    api: Arc<ScriptedApi>,
    store: Arc<MemoryStore>,
    bot: Bot,
}

impl Harness {
    fn new() -> Self {
        Self::with(BotConfig::default(), None)
    }

    fn with(cfg: BotConfig, cool_app_code: Option<&str>) -> Self {
        let api = Arc::new(ScriptedApi::new());
        let store = Arc::new(MemoryStore::new());
        let bot = Bot::new(BotDeps {
            api: api.clone(),
            store: store.clone(),
            renderer: Arc::new(Renderer::new(None).unwrap()),
            robot_code: RobotCode::parse(ROBOT).unwrap(),
            cool_app_code: cool_app_code.map(str::to_owned),
            cfg,
        });
        Self { api, store, bot }
    }

    /// Records a notice in [`GROUP`], sent `minutes_ago`.
    async fn notice(&self, key: &str, title: &str, author: Option<&str>, minutes_ago: i64) {
        let notice = Notice {
            key: ProcessQueryKey::parse(key).unwrap(),
            group: group(),
            robot_code: RobotCode::parse(ROBOT).unwrap(),
            title: title.into(),
            author: author.map(uid),
            author_name: author.map(|a| format!("Author {a}")),
            msg_key: "sampleMarkdown".into(),
            sent_at: now_millis() - minutes_ago * 60_000,
        };
        self.store.record_notice(&notice).await.unwrap();
    }

    /// Everything delivered to the group so far, oldest first.
    fn delivered(&self) -> Vec<Delivered> {
        self.api
            .calls()
            .into_iter()
            .filter_map(|c| match c {
                Call::ReplyInSession { webhook, reply } => {
                    Some(Delivered::Session(webhook, reply.markdown))
                }
                Call::SendGroupMessage(s) => {
                    assert_eq!(s.message.msg_key, "sampleMarkdown");
                    let p = &s.message.msg_param;
                    Some(Delivered::GroupSend(
                        s.group.to_string(),
                        p["title"].as_str().unwrap_or_default().to_owned(),
                        p["text"].as_str().unwrap_or_default().to_owned(),
                    ))
                }
                _ => None,
            })
            .collect()
    }

    /// Answers `msg` as a worker does and returns what the group saw:
    /// exactly one delivery attempt for it.
    async fn ask(&self, msg: Incoming) -> Delivered {
        let before = self.delivered().len();
        self.bot.process(msg).await;
        let mut new = self.delivered().split_off(before);
        assert_eq!(new.len(), 1, "one delivery per message: {new:?}");
        new.remove(0)
    }

    /// [`Self::ask`] for a mention from `sender`, returning the text seen.
    async fn ask_text(&self, text: &str, sender: Option<&str>) -> String {
        let id = format!("msg-{}", self.api.calls().len());
        self.ask(mention(&id, text, sender)).await.text().to_owned()
    }
}

/// Three members (with names), `u1` has read: the usual group.
fn usual_group(api: &ScriptedApi) {
    api.on_roster(|_| Ok(roster(&[("u1", "Ann"), ("u2", "Bob"), ("u3", "Cy")])));
    api.on_read_state(|_| Ok(read_by(&["u1"])));
}

// ---------------------------------------------------------------- commands

#[tokio::test]
async fn who_read_summarises_the_askers_own_notice() {
    let h = Harness::new();
    h.notice("keyOwn", "Fire drill", Some("u2"), 60).await;
    h.notice("keyNewer", "Lunch menu", Some("u3"), 5).await;
    usual_group(&h.api);

    let seen = h.ask_text("who read my last notice?", Some("u2")).await;

    assert!(seen.starts_with("### Fire drill"), "{seen}");
    assert!(!seen.contains("You have no notice here"), "{seen}");
    assert!(seen.contains("From **Author u2**"), "{seen}");
    assert!(seen.contains("Status: delivered"), "{seen}");
    assert!(seen.contains("**Read: 1/3 (33%)**"), "{seen}");
    assert!(seen.contains("**Unread (2):** Bob, Cy"), "{seen}");
    assert!(seen.contains("**Read (1):** Ann"), "{seen}");
    assert!(seen.contains("Roster: group member list"), "{seen}");
    assert!(!seen.contains("may be incomplete"), "{seen}");
    // The read query was for the asker's notice, and the asker was the
    // member API's operator.
    let calls = h.api.calls();
    assert!(calls
        .iter()
        .any(|c| matches!(c, Call::ReadState(q) if q.key.as_str() == "keyOwn")));
    assert!(matches!(
        &h.api.roster_queries()[..],
        [RosterQuery::InnerGroup { operator, .. }] if operator.as_str() == "u2"
    ));
    // Names came with the roster: no look-up.
    assert_eq!(h.api.count(Method::UserNames), 0);
}

#[tokio::test]
async fn who_read_in_chinese() {
    let h = Harness::new();
    h.notice("keyOwn", "消防演练", Some("u2"), 60).await;
    usual_group(&h.api);

    let seen = h.ask_text("谁读了", Some("u2")).await;

    assert!(seen.starts_with("### 消防演练"), "{seen}");
    assert!(seen.contains("状态：已送达"), "{seen}");
    assert!(seen.contains("**已读：1/3（33%）**"), "{seen}");
    assert!(seen.contains("**未读（2）：**Bob、Cy"), "{seen}");
    assert!(seen.contains("**已读（1）：**Ann"), "{seen}");
    assert!(seen.contains("成员名单来源：群成员列表"), "{seen}");
    assert!(!seen.contains("你在本群没有发过通知"), "{seen}");
}

#[tokio::test]
async fn who_read_falls_back_to_the_groups_last_notice_and_says_so() {
    let h = Harness::new();
    h.notice("keyOld", "Old notice", Some("u2"), 60).await;
    h.notice("keyLast", "Last notice", Some("u3"), 5).await;
    usual_group(&h.api);

    let seen = h.ask_text("who read", Some("u9")).await;
    assert!(seen.starts_with("### Last notice"), "{seen}");
    assert!(
        seen.contains("> You have no notice here, showing the group's last one."),
        "{seen}"
    );

    let zh = h.ask_text("谁没读？", Some("u9")).await;
    assert!(zh.starts_with("### Last notice"), "{zh}");
    assert!(
        zh.contains("> 你在本群没有发过通知，以下是本群最近的一条。"),
        "{zh}"
    );
    // An external asker (no user id) has no notice of their own either.
    let external = h.ask_text("who read", None).await;
    assert!(external.contains("You have no notice here"), "{external}");
}

#[tokio::test]
async fn who_read_without_any_notice_says_how_to_send_one() {
    let h = Harness::new();
    let seen = h.ask_text("who read", Some("u1")).await;
    assert_eq!(
        seen,
        "**Sorry:** No notices sent through readbot are recorded in this group yet. \
         readbot tracks only notices sent through it (from your admin's tool or the readbot \
         send command), not messages typed in the chat. Ask again once one has been sent \
         that way."
    );
    let zh = h.ask_text("谁读了", Some("u1")).await;
    assert!(
        zh.starts_with("**抱歉：**本群还没有通过 readbot 发送的通知记录。"),
        "{zh}"
    );
    // Nothing was asked of DingTalk but the replies.
    assert_eq!(h.api.methods(), [Method::ReplyInSession; 2]);
}

#[tokio::test]
async fn list_numbers_the_recent_notices_newest_first_up_to_the_limit() {
    let cfg = BotConfig {
        list_limit: 2,
        ..BotConfig::default()
    };
    let h = Harness::with(cfg, None);
    h.notice("k1", "Oldest", Some("u1"), 30).await;
    h.notice("k2", "Middle", None, 20).await;
    h.notice("k3", "Newest", Some("u3"), 10).await;

    let seen = h.ask_text("list", Some("u1")).await;
    assert!(seen.starts_with("### Recent notices"), "{seen}");
    let newest = seen.find("1. **Newest**, Author u3, ").expect(&seen);
    let middle = seen.find("2. **Middle**, ").expect(&seen);
    assert!(newest < middle, "{seen}");
    assert!(!seen.contains("Oldest"), "the list limit: {seen}");
    assert!(seen.contains("Ask **status N**"), "{seen}");
    assert!(seen.ends_with("Times are in Asia/Shanghai."), "{seen}");

    let zh = h.ask_text("列表", Some("u1")).await;
    assert!(zh.starts_with("### 最近的通知"), "{zh}");
    assert!(zh.contains("1. **Newest**，Author u3，"), "{zh}");
    assert!(zh.contains("发送 **状态 N**"), "{zh}");
    assert_eq!(h.api.count(Method::ReadState), 0);
}

#[tokio::test]
async fn list_names_authors_recorded_by_id_through_the_name_cache() {
    let h = Harness::new();
    // Recorded with an author id but no name (the send API had none).
    for (key, title, author, ago) in [
        ("k1", "Drill", "u7", 30),
        ("k2", "Menu", "u8", 20),
        ("k3", "Party", "u7", 10),
        ("k4", "Lost", "u9", 5),
    ] {
        let notice = Notice {
            key: ProcessQueryKey::parse(key).unwrap(),
            group: group(),
            robot_code: RobotCode::parse(ROBOT).unwrap(),
            title: title.into(),
            author: Some(uid(author)),
            author_name: None,
            msg_key: "sampleMarkdown".into(),
            sent_at: now_millis() - ago * 60_000,
        };
        h.store.record_notice(&notice).await.unwrap();
    }
    // u7 is in the name cache; u8 DingTalk knows; u9 nobody knows.
    h.store
        .cache_names(&[(uid("u7"), "Wang Fang".to_owned())], now_millis())
        .await
        .unwrap();
    h.api.on_user_names(|users| {
        Ok(users
            .iter()
            .filter(|u| u.as_str() == "u8")
            .map(|u| (u.clone(), "Li Lei".to_owned()))
            .collect())
    });
    let seen = h.ask_text("list", Some("u1")).await;
    assert!(seen.contains("1. **Lost**, u9, "), "{seen}");
    assert!(seen.contains("2. **Party**, Wang Fang, "), "{seen}");
    assert!(seen.contains("3. **Menu**, Li Lei, "), "{seen}");
    assert!(seen.contains("4. **Drill**, Wang Fang, "), "{seen}");
    // One look-up, for the ids the cache lacked, once each.
    let lookups: Vec<Vec<UserId>> = h
        .api
        .calls()
        .into_iter()
        .filter_map(|c| match c {
            Call::UserNames(v) => Some(v),
            _ => None,
        })
        .collect();
    assert_eq!(lookups, [vec![uid("u8"), uid("u9")]]);
    // The found name was cached: the next list asks DingTalk only for u9.
    h.api.clear_calls();
    let again = h.ask_text("list", Some("u1")).await;
    assert!(again.contains("3. **Menu**, Li Lei, "), "{again}");
    assert!(
        matches!(&h.api.calls().iter().filter(|c| c.method() == Method::UserNames).collect::<Vec<_>>()[..],
        [Call::UserNames(v)] if v == &[uid("u9")]),
        "{:?}",
        h.api.calls()
    );
    // A failing look-up still answers, with ids.
    h.api.on_user_names(|_| Err(DingTalkError::Timeout));
    let failed = h.ask_text("list", Some("u1")).await;
    assert!(failed.contains("1. **Lost**, u9, "), "{failed}");
}

#[tokio::test]
async fn summary_and_list_show_times_in_the_configured_zone() {
    let cfg = BotConfig {
        timezone: crate::config::ReplyTimeZone::parse("UTC").unwrap(),
        ..BotConfig::default()
    };
    let h = Harness::with(cfg, None);
    h.notice("k1", "Drill", Some("u1"), 0).await;
    let seen = h.ask_text("list", Some("u1")).await;
    assert!(seen.ends_with("Times are in UTC."), "{seen}");
    h.api.on_roster(|_| Err(refused()));
    h.api.on_read_state(|_| Ok(read_by(&["u2"])));
    let summary = h.ask_text("who read", Some("u1")).await;
    assert!(summary.contains(" (UTC)\n"), "{summary}");
}

#[tokio::test]
async fn list_without_notices_says_how_to_send_one() {
    let h = Harness::new();
    let seen = h.ask_text("list", Some("u1")).await;
    assert!(seen.contains("No notices sent through readbot"), "{seen}");
}

#[tokio::test]
async fn status_n_summarises_notice_n_of_the_list() {
    let h = Harness::new();
    h.notice("k1", "First sent", Some("u1"), 30).await;
    h.notice("k2", "Second sent", Some("u1"), 20).await;
    h.notice("k3", "Third sent", Some("u1"), 10).await;
    usual_group(&h.api);

    // Numbers as in "list": 1 is the newest.
    let seen = h.ask_text("status 3", Some("u2")).await;
    assert!(seen.starts_with("### First sent"), "{seen}");
    // Asked by name, so no fallback sentence even though u2 sent none.
    assert!(!seen.contains("You have no notice here"), "{seen}");
    assert!(seen.contains("**Read: 1/3 (33%)**"), "{seen}");

    let zh = h.ask_text("状态 １", Some("u2")).await;
    assert!(zh.starts_with("### Third sent"), "{zh}");
    assert!(zh.contains("**已读：1/3（33%）**"), "{zh}");
}

#[tokio::test]
async fn status_n_beyond_the_list_says_how_many_there_are() {
    let h = Harness::new();
    h.notice("k1", "One", None, 30).await;
    h.notice("k2", "Two", None, 20).await;

    let seen = h.ask_text("status 5", Some("u1")).await;
    assert_eq!(
        seen,
        "**Sorry:** There is no notice 5 here; this group has 2 recorded. Ask \"list\" to see them."
    );
    let zh = h.ask_text("状态 5", Some("u1")).await;
    assert_eq!(
        zh,
        "**抱歉：**没有第 5 条通知，本群共记录了 2 条。发送“列表”查看。"
    );
    // Beyond the list limit but within what is recorded still works.
    for i in 3..=12 {
        h.notice(&format!("k{i}"), &format!("N{i}"), None, 20 - i)
            .await;
    }
    let far = h.ask_text("status 12", Some("u1")).await;
    assert!(far.starts_with("### One"), "{far}");
    assert_eq!(h.api.count(Method::ReadState), 1);
}

#[tokio::test]
async fn status_n_without_any_notice_says_how_to_send_one() {
    let h = Harness::new();
    let seen = h.ask_text("status 1", Some("u1")).await;
    assert!(seen.contains("No notices sent through readbot"), "{seen}");
}

#[tokio::test]
async fn help_in_both_languages() {
    let h = Harness::new();
    let seen = h.ask_text("help", Some("u1")).await;
    assert!(
        seen.starts_with("### readbot: who has read a notice?"),
        "{seen}"
    );
    assert!(!seen.contains("did not understand"), "{seen}");
    let zh = h.ask_text("帮助", Some("u1")).await;
    assert!(zh.starts_with("### readbot：谁读了通知？"), "{zh}");
    // An empty mention is a request for help too.
    let empty = h.ask_text("", Some("u1")).await;
    assert_eq!(empty, seen);
}

#[tokio::test]
async fn unknown_text_gets_help_quoting_it() {
    let h = Harness::new();
    let seen = h.ask_text("what's the weather", Some("u1")).await;
    assert!(
        seen.starts_with("I did not understand \"what's the weather\"."),
        "{seen}"
    );
    assert!(
        seen.contains("### readbot: who has read a notice?"),
        "{seen}"
    );
    let zh = h.ask_text("今天天气怎么样", Some("u1")).await;
    assert!(zh.starts_with("没有看懂“今天天气怎么样”。"), "{zh}");
    assert!(zh.contains("### readbot：谁读了通知？"), "{zh}");
    // Help outside a group too, but nothing else.
    let mut direct = mention("direct", "list", Some("u1"));
    direct.group = None;
    let seen = h.ask(direct).await;
    assert_eq!(
        seen,
        Delivered::Session(
            WEBHOOK.into(),
            "**Sorry:** Ask me in the group where your notice was sent.".into()
        )
    );
}

// ------------------------------------------------------------- reply paths

#[tokio::test]
async fn a_valid_session_webhook_carries_the_reply() {
    let h = Harness::with(BotConfig::default(), Some("coolApp"));
    let seen = h.ask(mention("m1", "help", Some("u1"))).await;
    assert!(matches!(&seen, Delivered::Session(url, _) if url == WEBHOOK));
    assert_eq!(h.api.count(Method::SendGroupMessage), 0);
}

#[tokio::test]
async fn without_a_session_webhook_the_send_api_carries_the_reply() {
    let h = Harness::with(BotConfig::default(), Some("coolApp"));
    let mut msg = mention("m1", "help", Some("u1"));
    msg.session_webhook = None;
    let seen = h.ask(msg).await;
    assert!(
        matches!(&seen, Delivered::GroupSend(g, title, text)
            if g == GROUP && title == "readbot help" && text.contains("### readbot:")),
        "{seen:?}"
    );
    let sent = h.api.sent();
    assert_eq!(sent[0].robot_code.as_str(), ROBOT);
    assert_eq!(sent[0].cool_app_code.as_deref(), Some("coolApp"));
    assert_eq!(h.api.count(Method::ReplyInSession), 0);
}

#[tokio::test]
async fn an_expired_or_expiring_session_webhook_is_not_tried() {
    let h = Harness::new();
    // Expired, and expiring within the 3 s safety margin.
    for (i, left_ms) in [-1_000, 2_000].into_iter().enumerate() {
        let mut msg = mention(&format!("m{i}"), "帮助", Some("u1"));
        msg.session_webhook_expires_at = Some(now_millis() + left_ms);
        let seen = h.ask(msg).await;
        assert!(matches!(seen, Delivered::GroupSend(..)), "{seen:?}");
    }
    assert_eq!(h.api.count(Method::ReplyInSession), 0);
    // No expiry given: the webhook is used.
    let mut msg = mention("m9", "help", Some("u1"));
    msg.session_webhook_expires_at = None;
    assert!(matches!(h.ask(msg).await, Delivered::Session(..)));
}

#[tokio::test]
async fn a_refused_session_webhook_falls_back_to_the_send_api() {
    let h = Harness::new();
    // As the real client answers: a foreign host is refused without a
    // call, an unknown session with errcode 300001.
    h.api.on_reply_in_session(|url, _| {
        if url.starts_with("https://oapi.dingtalk.com/") {
            Err(DingTalkError::SessionExpired)
        } else {
            Err(DingTalkError::UntrustedWebhook)
        }
    });
    for (i, url) in [
        "https://evil.example/robot/sendBySession?session=abc",
        WEBHOOK,
    ]
    .into_iter()
    .enumerate()
    {
        let before = h.api.calls().len();
        let mut msg = mention(&format!("m{i}"), "help", Some("u1"));
        msg.session_webhook = Some(url.into());
        h.bot.process(msg).await;
        let calls: Vec<Method> = h.api.calls()[before..].iter().map(Call::method).collect();
        assert_eq!(
            calls,
            [Method::ReplyInSession, Method::SendGroupMessage],
            "{url}"
        );
    }
    let sent = h.api.sent();
    assert!(sent.iter().all(|s| s.message.msg_param["text"]
        .as_str()
        .unwrap()
        .contains("readbot")));
}

#[tokio::test]
async fn an_ambiguous_webhook_timeout_sends_no_second_copy() {
    let h = Harness::new();
    h.api.push_reply_in_session(Err(DingTalkError::Timeout));
    h.bot.process(mention("m1", "help", Some("u1"))).await;
    assert_eq!(h.api.methods(), [Method::ReplyInSession]);
    // The message is answered as far as readbot knows: a redelivery is a duplicate.
    assert_eq!(
        h.store
            .claim_message(&MsgId::parse("m1").unwrap(), now_millis())
            .await
            .unwrap(),
        Claim::Done
    );
}

#[tokio::test]
async fn a_direct_message_without_a_usable_webhook_is_dropped() {
    let h = Harness::new();
    let mut msg = mention("m1", "help", Some("u1"));
    msg.group = None;
    msg.session_webhook = None;
    h.bot.process(msg).await;
    assert!(h.api.calls().is_empty(), "no group to send to");
}

#[tokio::test]
async fn a_redelivered_mention_is_answered_once() {
    let h = Harness::new();
    let msg = mention("m1", "help", Some("u1"));
    assert_eq!(h.bot.accept(msg.clone()).await.unwrap(), Accepted::Started);
    assert_eq!(
        h.bot.accept(msg.clone()).await.unwrap(),
        Accepted::Duplicate
    );
    assert!(h.bot.shutdown(Duration::from_secs(10)).await);
    assert_eq!(h.delivered().len(), 1);
    assert_eq!(h.bot.accept(msg).await.unwrap(), Accepted::ShuttingDown);
}

/// A panic while answering one message (here: inside the DingTalk double)
/// costs that message only: more panics than there are workers, and the
/// next message is still answered, and nothing is left in flight.
#[tokio::test]
async fn answers_survive_a_panic_in_one_message() {
    let h = Harness::new();
    h.api.on_reply_in_session(|webhook, _| {
        if webhook.contains("boom") {
            panic!("injected panic for {webhook}");
        }
        Ok(())
    });
    let panics = MAX_CONCURRENT_SUMMARIES * 2;
    for i in 0..panics {
        let mut msg = mention(&format!("boom-{i}"), "help", Some("u1"));
        msg.session_webhook = Some(format!("{WEBHOOK}&boom={i}"));
        assert_eq!(h.bot.accept(msg).await.unwrap(), Accepted::Started);
    }
    let msg = mention("after-the-panics", "help", Some("u1"));
    assert_eq!(h.bot.accept(msg).await.unwrap(), Accepted::Started);
    assert!(
        h.bot.shutdown(Duration::from_secs(20)).await,
        "{} messages still in flight",
        h.bot.in_flight()
    );
    let answered: Vec<_> = h
        .api
        .session_replies()
        .into_iter()
        .filter(|(url, _)| url == WEBHOOK)
        .collect();
    assert_eq!(
        answered.len(),
        1,
        "the message after the panics is answered"
    );
    // The panicked messages keep their mark: a redelivery is not answered.
    let again = mention("boom-0", "help", Some("u1"));
    assert_eq!(
        h.store
            .claim_message(&again.msg_id, now_millis())
            .await
            .unwrap(),
        Claim::InFlight
    );
}

// --------------------------------------------------------- DingTalk errors

#[tokio::test]
async fn an_expired_key_is_explained() {
    let h = Harness::new();
    h.notice("k1", "Old", Some("u1"), 60 * 24 * 400).await;
    h.api.on_read_state(|_| Err(DingTalkError::Expired));
    let seen = h.ask_text("who read", Some("u1")).await;
    assert_eq!(
        seen,
        "**Sorry:** DingTalk no longer keeps read data for this notice (it is too old)."
    );
    let zh = h.ask_text("谁读了", Some("u1")).await;
    assert_eq!(zh, "**抱歉：**这条通知太旧了，钉钉已不再保留它的已读数据。");
}

#[tokio::test]
async fn a_key_not_ready_yet_is_explained_and_asked_again_next_time() {
    let h = Harness::new();
    h.notice("k1", "Fresh", Some("u1"), 0).await;
    h.api
        .on_roster(|_| Ok(roster(&[("u1", "Ann"), ("u2", "Bob")])));
    h.api.push_read_state(Err(DingTalkError::NotReady));
    h.api.push_read_state(Ok(read_by(&["u2"])));

    let seen = h.ask_text("who read", Some("u1")).await;
    assert_eq!(
        seen,
        "**Sorry:** DingTalk is still preparing the read data for this notice. Please ask again in a minute."
    );
    // The failure was not cached: the next ask queries DingTalk again.
    let again = h.ask_text("who read", Some("u1")).await;
    assert!(again.contains("**Read: 1/2 (50%)**"), "{again}");
    assert!(again.contains("**Unread (1):** Ann"), "{again}");
    assert_eq!(h.api.count(Method::ReadState), 2);
}

#[tokio::test]
async fn dingtalk_errors_become_their_sentence() {
    let h = Harness::new();
    h.notice("k1", "N", Some("u1"), 10).await;
    let cases = [
        (
            DingTalkError::Api {
                status: 500,
                code: ErrorCode::SystemError,
                message: "x".into(),
                request_id: None,
            },
            "DingTalk had an internal error. Please ask again in a minute.",
        ),
        (
            DingTalkError::Api {
                status: 403,
                code: ErrorCode::AuthError,
                message: "x".into(),
                request_id: None,
            },
            "readbot's app lacks a DingTalk permission for this (for read status: qyapi_robot_sendmsg). Ask an admin to grant it.",
        ),
        (
            DingTalkError::Api {
                status: 429,
                code: ErrorCode::Other("somethingNew".into()),
                message: "x".into(),
                request_id: None,
            },
            "DingTalk is throttling readbot right now. Please ask again in a minute.",
        ),
        (
            DingTalkError::Timeout,
            "DingTalk did not answer in time. Please ask again in a minute.",
        ),
    ];
    for (error, sentence) in cases {
        h.api.push_read_state(Err(error));
        let seen = h.ask_text("status", Some("u1")).await;
        assert_eq!(seen, format!("**Sorry:** {sentence}"));
    }
}

#[tokio::test]
async fn a_summary_that_takes_too_long_is_answered_with_an_apology() {
    let cfg = BotConfig {
        summary_timeout: Duration::from_millis(50),
        ..BotConfig::default()
    };
    let h = Harness::with(cfg, None);
    h.notice("k1", "N", Some("u1"), 10).await;
    h.api.set_latency(Duration::from_millis(500));
    let seen = h.ask_text("谁读了", Some("u1")).await;
    assert_eq!(seen, "**抱歉：**统计已读情况耗时过长，请一分钟后再问。");
}

// --------------------------------------------------------- roster fallbacks

#[tokio::test]
async fn refused_member_apis_fall_back_to_the_learned_roster_and_say_so() {
    let cfg = BotConfig {
        receipts_cache: Duration::ZERO,
        ..BotConfig::default()
    };
    let h = Harness::with(cfg, None);
    h.notice("k1", "Drill", Some("u1"), 10).await;
    // Seen in the group before: u4 (asked something once).
    h.store
        .remember_members(&group(), &[uid("u4")], now_millis())
        .await
        .unwrap();
    h.api.on_roster(|_| Err(refused()));
    h.api.on_read_state(|_| Ok(read_by(&["u2", ROBOT])));
    h.api.on_user_names(|users| {
        Ok(users
            .iter()
            .filter(|u| u.as_str() != "u4")
            .map(|u| (u.clone(), format!("Name {u}")))
            .collect())
    });

    let seen = h.ask_text("who read", Some("u1")).await;

    // Learned: the asker (also the author), the reader, u4; never the robot.
    assert!(seen.contains("**Read: 1/3 (33%)**"), "{seen}");
    // u1's name is DingTalk's, not the nick that came with the (unsigned)
    // message; u4's is unknown.
    assert!(seen.contains("**Unread (2):** Name u1, u4"), "{seen}");
    assert!(seen.contains("**Read (1):** Name u2"), "{seen}");
    assert!(!seen.contains(ROBOT), "{seen}");
    assert!(
        seen.contains("Roster: members readbot has seen in this group (may be incomplete)"),
        "{seen}"
    );
    assert!(
        seen.contains(
            "*The member list may be incomplete: some people who have not read it may be missing.*"
        ),
        "{seen}"
    );
    // Both member APIs were tried, in the configured order.
    assert!(matches!(
        &h.api.roster_queries()[..],
        [
            RosterQuery::InnerGroup { .. },
            RosterQuery::SceneGroup { .. }
        ]
    ));

    // A refusal is remembered: the next summary does not ask again.
    let zh = h.ask_text("谁读了", Some("u1")).await;
    assert!(
        zh.contains("成员名单来源：readbot 在本群见过的成员（可能不完整）"),
        "{zh}"
    );
    assert_eq!(h.api.count(Method::Roster), 2);
    assert_eq!(h.api.count(Method::ReadState), 2);
}

#[tokio::test]
async fn a_throttled_member_api_is_asked_again_next_time() {
    let cfg = BotConfig {
        receipts_cache: Duration::ZERO,
        roster_sources: vec![RosterSource::InnerGroup, RosterSource::Learned],
        ..BotConfig::default()
    };
    let h = Harness::with(cfg, None);
    h.notice("k1", "Drill", Some("u1"), 10).await;
    h.api.push_roster(Err(DingTalkError::Api {
        status: 429,
        code: ErrorCode::Throttled("Forbidden.AccessDenied.QpsLimitForAppkeyAndApi".into()),
        message: "slow down".into(),
        request_id: None,
    }));
    h.api
        .on_roster(|_| Ok(roster(&[("u1", "Ann"), ("u2", "Bob")])));
    h.api.on_read_state(|_| Ok(read_by(&["u1"])));

    let first = h.ask_text("who read", Some("u1")).await;
    assert!(first.contains("members readbot has seen"), "{first}");
    let second = h.ask_text("who read", Some("u1")).await;
    assert!(second.contains("Roster: group member list"), "{second}");
    assert!(second.contains("**Read: 1/2 (50%)**"), "{second}");
    assert_eq!(h.api.count(Method::Roster), 2);
}

#[tokio::test]
async fn an_empty_member_list_falls_through_to_the_next_source() {
    let h = Harness::with(BotConfig::default(), Some("coolApp"));
    h.notice("k1", "Drill", Some("u1"), 10).await;
    h.api.push_roster(Ok(Roster {
        members: Vec::new(),
        complete: true,
    }));
    h.api.push_roster(Ok(Roster {
        members: vec![member("u1", Some("Ann")), member("u2", None)],
        complete: false,
    }));
    h.api.on_read_state(|_| Ok(read_by(&["u1"])));
    h.api.on_user_names(|_| Err(DingTalkError::Timeout));

    let seen = h.ask_text("who read", Some("u1")).await;
    assert!(seen.contains("Roster: scene group member list"), "{seen}");
    // Name look-up failed: the id is shown instead of failing the summary.
    assert!(seen.contains("**Unread (1):** u2"), "{seen}");
    assert!(seen.contains("The member list may be incomplete"), "{seen}");
    assert!(matches!(
        &h.api.roster_queries()[..],
        [RosterQuery::InnerGroup { .. }, RosterQuery::SceneGroup { cool_app_code: Some(c), .. }] if c == "coolApp"
    ));
    assert!(
        matches!(&h.api.calls().iter().filter(|c| c.method() == Method::UserNames).collect::<Vec<_>>()[..],
        [Call::UserNames(v)] if v == &[uid("u2")])
    );
}

#[tokio::test]
async fn without_any_roster_only_readers_are_shown() {
    let cfg = BotConfig {
        roster_sources: vec![RosterSource::Learned],
        ..BotConfig::default()
    };
    let h = Harness::with(cfg, None);
    // Nobody known in the group, no author, no readers.
    h.notice("k1", "Anonymous", None, 10).await;
    let seen = h.ask_text("who read", None).await;
    assert!(
        seen.contains("The group's member list is unknown, so only readers are shown."),
        "{seen}"
    );
    assert!(seen.contains("**Read by 0:** nobody yet"), "{seen}");
    assert_eq!(h.api.count(Method::Roster), 0);
}

#[tokio::test]
async fn concurrent_asks_about_one_notice_share_one_pass() {
    let h = Harness::new();
    h.notice("k1", "Drill", Some("u1"), 10).await;
    usual_group(&h.api);
    h.api.set_latency(Duration::from_millis(100));
    let msgs: Vec<Incoming> = (0..5)
        .map(|i| mention(&format!("m{i}"), "who read", Some("u1")))
        .collect();
    let replies = futures_util::future::join_all(msgs.iter().map(|m| h.bot.answer(m))).await;
    assert!(replies
        .iter()
        .all(|r| r.markdown.contains("**Read: 1/3 (33%)**")));
    assert_eq!(h.api.count(Method::ReadState), 1);
    assert_eq!(h.api.count(Method::Roster), 1);
}

// ------------------------------------------------------------- the send API

#[tokio::test]
async fn send_notice_records_what_dingtalk_accepted_and_nothing_else() {
    let h = Harness::new();
    h.api.push_send(Err(DingTalkError::Api {
        status: 400,
        code: ErrorCode::BotStopped,
        message: "stopped".into(),
        request_id: None,
    }));
    let new = || NewNotice {
        group: group(),
        title: "Drill".into(),
        message: OutgoingMessage::markdown("Drill", "Friday"),
        author: Some(uid("u7")),
        author_name: Some("Ann".into()),
    };
    let refused = h.bot.send_notice(new()).await;
    assert!(matches!(refused, Err(BotError::DingTalk(_))));
    assert_eq!(h.store.notice_count().await.unwrap(), 0);

    let notice = h.bot.send_notice(new()).await.unwrap();
    assert_eq!(notice.key.as_str(), "scripted-key-2");
    assert_eq!(
        h.store.notice(&notice.key).await.unwrap(),
        Some(notice.clone())
    );
    // The author counts as seen in the group.
    assert_eq!(
        h.store.learned_members(&group()).await.unwrap(),
        [uid("u7")]
    );
    // And "receipts" finds it; an unknown key is refused.
    let r = h.bot.receipts(&notice.key).await.unwrap();
    assert_eq!(r.notice.title, "Drill");
    let unknown = ProcessQueryKey::parse("nope").unwrap();
    assert!(matches!(
        h.bot.receipts(&unknown).await,
        Err(BotError::NoticeNotFound)
    ));
}

// ------------------------------------------------------- untrusted names

/// A callback's `senderNick` is a last resort: shown (as plain text) only
/// when DingTalk names nobody for that id, never over DingTalk's name.
#[tokio::test]
async fn a_callback_nick_is_shown_only_when_dingtalk_has_no_name_and_never_as_markup() {
    let cfg = BotConfig {
        receipts_cache: Duration::ZERO,
        ..BotConfig::default()
    };
    let h = Harness::with(cfg, None);
    h.notice("k1", "Drill", Some("u1"), 10).await;
    h.api.on_roster(|_| Err(refused()));
    h.api.on_read_state(|_| Ok(read_by(&["u2"])));
    // DingTalk knows u2 only.
    h.api.on_user_names(|users| {
        Ok(users
            .iter()
            .filter(|u| u.as_str() == "u2")
            .map(|u| (u.clone(), "Bo".to_owned()))
            .collect())
    });
    // u2 pretends to be someone else; u3 says hello with a phishing link.
    let mut forged = mention("m-forged", "help", Some("u2"));
    forged.sender_nick = "Boss".into();
    h.bot.process(forged).await;
    let mut link = mention("m-link", "help", Some("u3"));
    link.sender_nick = "[IT desk](https://phish.example)\n# @all".into();
    h.bot.process(link).await;

    let seen = h.ask_text("who read", Some("u1")).await;
    assert!(seen.contains("**Read (1):** Bo"), "{seen}");
    assert!(!seen.contains("Boss"), "{seen}");
    assert!(
        seen.contains("［IT desk］（https：//phish.example） ＃ ＠all"),
        "{seen}"
    );
    assert!(!seen.contains("]("), "{seen}");
}

// ---------------------------------------------------------------- reminders and recall

/// `n` members u1..un with names, only u1 has read.
fn big_group(api: &ScriptedApi, n: usize) {
    let members: Vec<Member> = (1..=n)
        .map(|i| member(&format!("u{i}"), Some(&format!("Person {i}"))))
        .collect();
    api.on_roster(move |_| {
        Ok(Roster {
            members: members.clone(),
            complete: true,
        })
    });
    api.on_read_state(|_| Ok(read_by(&["u1"])));
}

#[tokio::test]
async fn remind_policy_decides_who_may_remind() {
    let cfg = |policy| BotConfig {
        remind_policy: policy,
        admins: vec![uid("boss")],
        remind_cooldown: Duration::ZERO,
        ..BotConfig::default()
    };
    use crate::config::RemindPolicy::*;
    for (policy, sender, allowed) in [
        (Author, Some("u2"), true),
        (Author, Some("boss"), true),
        (Author, Some("u3"), false),
        (Author, None, false),
        (Admins, Some("u2"), false),
        (Admins, Some("boss"), true),
        (Anyone, Some("u3"), true),
        (Anyone, None, false),
    ] {
        let h = Harness::with(cfg(policy), None);
        h.notice("keyR", "Fire drill", Some("u2"), 10).await;
        usual_group(&h.api);
        let seen = h.ask_text("remind dm", sender).await;
        let sent = h.api.count(Method::SendDirectMessages);
        assert_eq!(sent == 1, allowed, "{policy:?} {sender:?}: {seen}");
        if !allowed {
            assert!(seen.contains("may send reminders"), "{seen}");
            assert!(h
                .store
                .reminders(&ProcessQueryKey::parse("keyR").unwrap())
                .await
                .unwrap()
                .is_empty());
        } else {
            assert!(seen.contains("Sent a direct message to 2 of 2"), "{seen}");
        }
    }
}

// ----------------------------------------------------- idempotent sends

fn drill(title: &str) -> NewNotice {
    NewNotice {
        group: group(),
        title: title.into(),
        message: OutgoingMessage::markdown(title, "Friday"),
        author: Some(uid("u7")),
        author_name: Some("Ann".into()),
    }
}

#[tokio::test]
async fn a_failing_mention_message_stops_the_reminder_and_records_who_was_reached() {
    let h = Harness::new();
    h.notice("keyM", "Fire drill", Some("u1"), 10).await;
    big_group(&h.api, 121);
    h.api.push_reply_in_session(Ok(()));
    h.api.push_reply_in_session(Err(DingTalkError::Timeout));
    h.bot.process(mention("m-stop", "remind", Some("u1"))).await;
    let replies = h.api.session_replies();
    // Two @-messages attempted, then the answer saying where it stopped.
    assert_eq!(replies.len(), 3, "{replies:#?}");
    assert_eq!(replies[0].1.at_user_ids.len(), 50);
    assert!(
        replies[0].1.markdown.contains("@u2 @u3"),
        "{}",
        replies[0].1.markdown
    );
    let last = &replies[2].1.markdown;
    assert!(
        last.contains("stopped after mentioning 50 of 120"),
        "{last}"
    );
    assert!(last.contains("did not answer in time"), "{last}");
    let recorded = h
        .store
        .reminders(&ProcessQueryKey::parse("keyM").unwrap())
        .await
        .unwrap();
    assert_eq!(recorded.len(), 1);
    assert_eq!(recorded[0].count, 50);
    assert_eq!(recorded[0].via, crate::domain::ReminderVia::Mention);
    assert_eq!(recorded[0].by, Some(uid("u1")));
}

#[tokio::test]
async fn remind_dm_that_dingtalk_refuses_records_nothing() {
    let h = Harness::new();
    h.notice("keyD", "Fire drill", Some("u1"), 10).await;
    usual_group(&h.api);
    h.api.push_direct(Err(DingTalkError::Api {
        status: 403,
        code: ErrorCode::AuthError,
        message: "no".into(),
        request_id: None,
    }));
    let seen = h.ask_text("私信提醒", Some("u1")).await;
    assert!(seen.contains("qyapi_robot_sendmsg"), "{seen}");
    assert!(h
        .store
        .reminders(&ProcessQueryKey::parse("keyD").unwrap())
        .await
        .unwrap()
        .is_empty());
    // Nothing recorded, so no cooldown: the next try goes out.
    let seen = h.ask_text("私信提醒", Some("u1")).await;
    assert!(seen.contains("已私信提醒 2 位未读成员中的 2 位"), "{seen}");
}

#[tokio::test]
async fn recall_failure_reason_reaches_the_asker_and_nothing_is_marked() {
    let h = Harness::new();
    h.notice("keyC", "Fire drill", Some("u1"), 10).await;
    h.api.push_recall(Ok(crate::dingtalk::RecallOutcome {
        recalled: Vec::new(),
        failed: vec![(
            ProcessQueryKey::parse("keyC").unwrap(),
            "超过撤回时限".into(),
        )],
    }));
    let seen = h.ask_text("recall", Some("u1")).await;
    assert!(
        seen.contains("DingTalk did not recall the notice: 超过撤回时限"),
        "{seen}"
    );
    let key = ProcessQueryKey::parse("keyC").unwrap();
    assert_eq!(h.store.recalled_at(&key).await.unwrap(), None);
    let seen = h.ask_text("recall", Some("u1")).await;
    assert!(seen.contains("Recalled **Fire drill**"), "{seen}");
    assert!(h.store.recalled_at(&key).await.unwrap().is_some());
    let recalls: Vec<_> = h
        .api
        .calls()
        .into_iter()
        .filter_map(|c| match c {
            Call::RecallGroupMessages(r) => Some(r),
            _ => None,
        })
        .collect();
    assert_eq!(recalls.len(), 2);
    assert_eq!(recalls[1].keys, [key]);
    assert_eq!(recalls[1].group, group());
}

#[tokio::test]
async fn a_retry_with_the_same_key_returns_the_recorded_notice_without_sending() {
    use crate::bot::send::SentNotice;
    use crate::domain::IdempotencyKey;
    let h = Harness::new();
    let key = IdempotencyKey::parse("client-key-1").unwrap();
    let first = h
        .bot
        .send_notice_once(drill("Drill"), key.clone())
        .await
        .unwrap();
    let SentNotice::New(notice) = first else {
        panic!("first send is new: {first:?}")
    };
    // The 201 was lost; the caller retries with the same key.
    let again = h.bot.send_notice_once(drill("Drill"), key.clone()).await;
    assert_eq!(again.unwrap(), SentNotice::Replayed(notice.clone()));
    assert_eq!(h.api.count(Method::SendGroupMessage), 1, "sent once");
    // The same key for another notice is refused, nothing sent.
    let other = h.bot.send_notice_once(drill("Other"), key).await;
    assert!(
        matches!(other, Err(BotError::IdempotencyKeyReused)),
        "{other:?}"
    );
    assert_eq!(h.api.count(Method::SendGroupMessage), 1);
    assert_eq!(h.store.notice_count().await.unwrap(), 1);
}

#[tokio::test]
async fn a_pending_send_is_not_sent_again_and_a_refused_one_may_be() {
    use crate::domain::IdempotencyKey;
    let h = Harness::new();
    // As if an earlier attempt crashed between DingTalk's answer and the record.
    let lost = IdempotencyKey::parse("lost-outcome").unwrap();
    assert_eq!(
        h.store
            .begin_send(&lost, &drill("Drill").fingerprint(), 1)
            .await
            .unwrap(),
        None
    );
    let r = h.bot.send_notice_once(drill("Drill"), lost).await;
    assert!(matches!(r, Err(BotError::SendPending)), "{r:?}");
    assert_eq!(h.api.count(Method::SendGroupMessage), 0);

    // DingTalk refuses: the key is released, and a retry sends.
    h.api.push_send(Err(DingTalkError::Api {
        status: 400,
        code: ErrorCode::BotStopped,
        message: "stopped".into(),
        request_id: None,
    }));
    let key = IdempotencyKey::parse("refused-first").unwrap();
    let r = h.bot.send_notice_once(drill("Drill"), key.clone()).await;
    assert!(matches!(r, Err(BotError::DingTalk(_))), "{r:?}");
    let r = h.bot.send_notice_once(drill("Drill"), key).await.unwrap();
    assert!(matches!(r, crate::bot::send::SentNotice::New(_)));
    assert_eq!(h.api.count(Method::SendGroupMessage), 2);
}
