//! DingTalk faults against the fake: each one ends in a correct summary or a
//! clear sentence in the chat within a bounded time, with a bounded number of
//! calls (no retry storm) and no task left running.

use crate::helpers::*;
use crate::reliability::{report, wait_idle};
use readbot::bot::sentences::dingtalk_error;
use readbot::dingtalk::{DingTalkError, ErrorCode};
use readbot::domain::Lang;
use readbot::fake::{Api, FakeConfig, FakeDingTalk, Fault, GroupKind, Via};
use std::time::Duration;

const GROUP: &str = "cidFaults+/==";

#[derive(Clone)]
enum Expect {
    /// The summary with this `read/members` figure.
    Summary(&'static str),
    /// This sentence.
    Sentence(String),
    /// Either (for faults where retrying or explaining are both correct).
    Either(&'static str, String),
}

#[derive(Clone)]
struct Scenario {
    name: &'static str,
    api: Api,
    /// Faults in order; `Hang(0)` lets a call through (to reach a later page).
    faults: Vec<(Fault, usize)>,
    expect: Expect,
    /// Most calls `api` may receive during the mention (retries bounded).
    max_calls: usize,
    members: usize,
    readers: usize,
    kind: GroupKind,
    token_ttl: Option<Duration>,
    expire_tokens_first: bool,
    reply_via: Option<Via>,
}

fn pass() -> (Fault, usize) {
    (Fault::Hang(Duration::ZERO), 1)
}

fn sentence_of(code: &str) -> String {
    dingtalk_error(
        &DingTalkError::Api {
            status: 400,
            code: ErrorCode::parse(code),
            message: String::new(),
            request_id: None,
        },
        Lang::En,
    )
}

fn base(
    name: &'static str,
    api: Api,
    faults: Vec<(Fault, usize)>,
    expect: Expect,
    max_calls: usize,
) -> Scenario {
    Scenario {
        name,
        api,
        faults,
        expect,
        max_calls,
        members: 5,
        readers: 3,
        kind: GroupKind::Inner,
        token_ttl: None,
        expire_tokens_first: false,
        reply_via: None,
    }
}

fn scenarios() -> Vec<Scenario> {
    let sys = || Fault::status(500, "system.error", "Unknown system error");
    let qps = || {
        Fault::status(
            403,
            "Forbidden.AccessDenied.QpsLimitForAppkeyAndApi",
            "请求被流控",
        )
    };
    let timeout_sentence = dingtalk_error(&DingTalkError::Timeout, Lang::En);
    let decode_sentence = dingtalk_error(&DingTalkError::Decode(String::new()), Lang::En);
    vec![
        base(
            "500 system.error twice",
            Api::Query,
            vec![(sys(), 2)],
            Expect::Summary("3/5"),
            3,
        ),
        base(
            "500 system.error for good",
            Api::Query,
            vec![(sys(), 10_000)],
            Expect::Sentence(sentence_of("system.error")),
            6,
        ),
        base(
            "504 twice",
            Api::Query,
            vec![(Fault::GatewayTimeout, 2)],
            Expect::Summary("3/5"),
            3,
        ),
        base(
            "504 for good",
            Api::Query,
            vec![(Fault::GatewayTimeout, 10_000)],
            Expect::Either("3/5", timeout_sentence.clone()),
            6,
        ),
        base(
            "403 QPS limit three times",
            Api::Query,
            vec![(qps(), 3)],
            Expect::Summary("3/5"),
            4,
        ),
        base(
            "403 QPS limit for good",
            Api::Query,
            vec![(qps(), 10_000)],
            Expect::Sentence(sentence_of(
                "Forbidden.AccessDenied.QpsLimitForAppkeyAndApi",
            )),
            6,
        ),
        base(
            "429 twice",
            Api::Query,
            vec![(Fault::status(429, "system.busy", "系统繁忙"), 2)],
            Expect::Summary("3/5"),
            3,
        ),
        base(
            "answer slower than the timeout once",
            Api::Query,
            vec![(Fault::Hang(Duration::from_secs(3)), 1)],
            Expect::Summary("3/5"),
            2,
        ),
        base(
            "answers slower than the timeout for good",
            Api::Query,
            vec![(Fault::Hang(Duration::from_secs(3)), 10_000)],
            Expect::Sentence(timeout_sentence.clone()),
            6,
        ),
        base(
            "truncated JSON",
            Api::Query,
            vec![(Fault::Truncated, 1)],
            Expect::Either("3/5", decode_sentence.clone()),
            2,
        ),
        base(
            "HTML instead of JSON",
            Api::Query,
            vec![(Fault::NotJson, 1)],
            Expect::Either("3/5", decode_sentence.clone()),
            2,
        ),
        Scenario {
            members: 500,
            readers: 450,
            token_ttl: Some(Duration::from_secs(1)),
            ..base(
                "access token expires mid-pagination",
                Api::Query,
                vec![pass(), (Fault::Hang(Duration::from_millis(1500)), 1)],
                Expect::Summary("450/500"),
                5,
            )
        },
        Scenario {
            members: 500,
            readers: 450,
            ..base(
                "invalid nextToken",
                Api::Query,
                vec![
                    pass(),
                    (
                        Fault::status(400, "invalidParameter.cursor.invalid", "Invalid nextToken"),
                        1,
                    ),
                ],
                Expect::Sentence(sentence_of("invalidParameter.cursor.invalid")),
                2,
            )
        },
        Scenario {
            reply_via: Some(Via::OpenApi),
            ..base(
                "expired sessionWebhook (errcode 300001)",
                Api::SendBySession,
                vec![(
                    Fault::OldApiErr {
                        errcode: 300001,
                        errmsg: "session 不存在".into(),
                    },
                    1,
                )],
                Expect::Summary("3/5"),
                1,
            )
        },
        Scenario {
            reply_via: Some(Via::OpenApi),
            ..base(
                "sessionWebhook answers 500",
                Api::SendBySession,
                vec![(sys(), 1)],
                Expect::Summary("3/5"),
                1,
            )
        },
        Scenario {
            expire_tokens_first: true,
            ..base(
                "token revoked, then the token endpoint fails twice",
                Api::Token,
                vec![(sys(), 2)],
                Expect::Summary("3/5"),
                3,
            )
        },
        base(
            "member list throttled twice",
            Api::InnerMembers,
            vec![(qps(), 2)],
            Expect::Summary("3/5"),
            3,
        ),
        Scenario {
            kind: GroupKind::Plain,
            ..base(
                "user/get throttled (errcode 90018)",
                Api::UserGet,
                vec![(
                    Fault::OldApiErr {
                        errcode: 90018,
                        errmsg: "触发限流".into(),
                    },
                    3,
                )],
                Expect::Summary("3/"),
                3 + 6,
            )
        },
    ]
}

/// Runs one scenario on its own readbot + fake; returns the fault answers
/// served, or what went wrong.
async fn run(s: Scenario) -> Result<usize, String> {
    let mut cfg = FakeConfig::default();
    if let Some(ttl) = s.token_ttl {
        cfg.token_ttl = ttl;
    }
    let fake = FakeDingTalk::start(cfg).await.map_err(|e| e.to_string())?;
    let tmp = tempfile::tempdir().map_err(|e| e.to_string())?;
    let app = spawn_on(fake, &tmp.path().join("data"), &[]).await;
    let people = members(s.members);
    add_group(&app.fake, GROUP, s.kind.clone(), &people);
    let key = app.notice(GROUP, "Fault drill", "user0001").await;
    let readers: Vec<&str> = people[..s.readers]
        .iter()
        .map(|(u, _)| u.as_str())
        .collect();
    app.fake.mark_read(&key, &readers);
    if s.expire_tokens_first {
        app.fake.expire_tokens();
    }
    app.fake.reset_calls();
    let mut injected = 0;
    let mut passes = 0;
    for (f, n) in &s.faults {
        if *f == Fault::Hang(Duration::ZERO) {
            passes += n;
        } else {
            injected += n;
        }
        app.fake.inject(s.api, f.clone(), *n);
    }
    let body = app.mention("fault-1", GROUP, "user0001", "who read");
    let status = app.post_callback_signed(&body).await.status();
    if status != 200 {
        return Err(format!("callback answered {status}"));
    }
    // Bounded: the deadline is 8 s per call in the test config.
    let mut replies = Vec::new();
    for _ in 0..1200 {
        replies = app.replies(GROUP);
        if !replies.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    if !wait_idle(&app).await {
        return Err("a summary task is still running".into());
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let replies_now = app.replies(GROUP);
    if replies_now.len() != 1 {
        return Err(format!("{} replies: {replies_now:#?}", replies_now.len()));
    }
    let reply = &replies[0];
    let text = &reply.text;
    let ok = match &s.expect {
        Expect::Summary(fig) => text.contains(fig),
        Expect::Sentence(sent) => text.contains(sent.as_str()),
        Expect::Either(fig, sent) => text.contains(fig) || text.contains(sent.as_str()),
    };
    if !ok {
        return Err(format!("unexpected reply:\n{text}"));
    }
    if let Some(via) = s.reply_via {
        if reply.via != via {
            return Err(format!("reply went via {:?}", reply.via));
        }
    }
    let calls = app.fake.calls(s.api);
    if calls > s.max_calls {
        return Err(format!(
            "{calls} calls to {:?} (at most {})",
            s.api, s.max_calls
        ));
    }
    if s.token_ttl.is_some() && app.fake.calls(Api::Token) < 1 {
        return Err("the expired token was not replaced".into());
    }
    drop(app);
    drop(tmp);
    Ok(injected.min(calls.saturating_sub(passes)))
}

#[tokio::test]
async fn every_dingtalk_fault_ends_in_a_summary_or_a_sentence() {
    let all = scenarios();
    let n = all.len();
    let mut set = tokio::task::JoinSet::new();
    for s in all {
        set.spawn(async move {
            let name = s.name;
            (
                name,
                tokio::time::timeout(Duration::from_secs(90), run(s)).await,
            )
        });
    }
    let mut served = 0;
    let mut ok = 0;
    let mut failures = Vec::new();
    while let Some(joined) = set.join_next().await {
        let (name, res) = joined.expect("scenario task");
        match res {
            Ok(Ok(k)) => {
                ok += 1;
                served += k;
            }
            Ok(Err(e)) => failures.push(format!("{name}: {e}")),
            Err(_) => failures.push(format!("{name}: no end within 90 s")),
        }
    }
    report(&format!(
        "faults injected: {n} kinds ({served} fault answers served), summaries completed or explained: {ok}"
    ));
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}
