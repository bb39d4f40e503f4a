//! readbot on PostgreSQL (`READBOT_STORE_URL`): the real app against the fake,
//! its state in a fresh database of the test process's throwaway cluster
//! (`readbot::store::pg_test_cluster`). Skipped with one printed line where
//! PostgreSQL is not installed, unless `READBOT_REQUIRE_POSTGRES=1`.

use crate::helpers::*;
use crate::ops::readyz;
use readbot::fake::GroupKind;
use readbot::store::pg_test_cluster::fresh_database;
use std::time::Duration;

const GROUP: &str = "cidPostgresGroup+/==";

/// A database name from the URL the cluster gives (`…/t_x?host=…`).
fn database_of(url: &str) -> &str {
    let path = url.split('?').next().unwrap_or(url);
    path.rsplit('/').next().unwrap_or(path)
}

#[tokio::test]
async fn a_notice_sent_and_asked_about_on_postgresql_is_summarised_and_readyz_names_the_backend() {
    let Some(pg) = fresh_database().await else {
        return;
    };
    let url = pg.url.expose().to_owned();
    let fake = start_fake().await;
    let tmp = tempfile::tempdir().expect("tempdir");
    let app = spawn_on(
        fake,
        &tmp.path().join("unused"),
        &[("READBOT_STORE_URL", &url)],
    )
    .await;
    assert!(
        !tmp.path().join("unused").exists(),
        "no sled folder is made on PostgreSQL"
    );

    let (status, body) = readyz(&app.addr).await;
    assert_eq!(status, 200, "{body}");
    let backend = body["checks"]["store"]["backend"].as_str().unwrap_or("");
    assert!(backend.starts_with("postgres at "), "{body}");
    assert!(backend.contains(database_of(&url)), "{body}");

    let people = members(8);
    add_group(&app.fake, GROUP, GroupKind::Inner, &people);
    let key = app.notice(GROUP, "Fire drill", "user0001").await;
    app.fake
        .mark_read(&key, &["user0002", "user0003", "user0004"]);
    let body = app.mention("m-pg-1", GROUP, "user0001", "who read my last notice?");
    assert_eq!(app.post_callback_signed(&body).await.status(), 200);
    let text = app.one_reply(GROUP).await;
    assert!(text.contains("Fire drill"), "{text}");
    assert!(text.contains("3/8"), "{text}");
    // DingTalk delivers the same callback again: answered once.
    assert_eq!(app.post_callback_signed(&body).await.status(), 200);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        app.replies(GROUP).len(),
        1,
        "a redelivery is not answered again"
    );
    app.stop().await;
}

#[tokio::test]
async fn readyz_fails_while_the_database_refuses_connections_and_recovers() {
    let Some(pg) = fresh_database().await else {
        return;
    };
    let url = pg.url.expose().to_owned();
    let db = database_of(&url).to_owned();
    let app = spawn_app_with(&[("READBOT_STORE_URL", &url)]).await;
    assert_eq!(readyz(&app.addr).await.0, 200);

    // The database goes away for readbot: no new connections, the open ones cut.
    let admin = readbot::store::pg_test_cluster::cluster()
        .await
        .expect("the cluster runs");
    admin
        .admin(&format!(
            "ALTER DATABASE {db} ALLOW_CONNECTIONS false;
             SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{db}'"
        ))
        .await
        .expect("database refused");
    let (status, body) = readyz(&app.addr).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["checks"]["store"]["ok"], false, "{body}");
    admin
        .admin(&format!("ALTER DATABASE {db} ALLOW_CONNECTIONS true"))
        .await
        .expect("database allowed again");
    let mut ready = false;
    for _ in 0..100 {
        if readyz(&app.addr).await.0 == 200 {
            ready = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(ready, "readyz recovers once the database is back");
    app.stop().await;
}

#[tokio::test]
async fn check_reports_the_postgresql_store_and_an_unreachable_one_without_its_password() {
    use crate::cli::{dingtalk_env, readbot, with};
    let fake = start_fake().await;
    let tmp = tempfile::tempdir().expect("tmp");
    let env = dingtalk_env(&fake, &tmp.path().join("data"));

    // Unreachable: a problem naming host and database, never the password.
    let bad = with(
        env.clone(),
        "READBOT_STORE_URL",
        "postgres://readbot:hunter2-pw@127.0.0.1:1/readbot",
    );
    let r = readbot(&["check"], &bad, None).await;
    assert_eq!(r.code, 1, "{r:?}");
    assert!(
        r.stdout
            .contains("store: cannot reach PostgreSQL at 127.0.0.1:1 (database readbot)"),
        "{r:?}"
    );
    assert!(!format!("{r:?}").contains("hunter2"), "{r:?}");

    let Some(pg) = fresh_database().await else {
        return;
    };
    let good = with(env, "READBOT_STORE_URL", pg.url.expose());
    let r = readbot(&["check"], &good, None).await;
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.stdout.contains("store: postgres at "), "{r:?}");
    assert!(r.stdout.contains("healthy (schema version 0 of"), "{r:?}");
    assert!(
        r.stdout.contains("replicas: 1 (READBOT_REPLICAS)")
            && r.stdout
                .contains("set READBOT_REPLICAS to the number of replicas"),
        "{r:?}"
    );
    // Three replicas share the app's limit (the fake's env sets it).
    let three = with(good, "READBOT_REPLICAS", "3");
    let r = readbot(&["check"], &three, None).await;
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.stdout.contains("replicas: 3 (READBOT_REPLICAS)"), "{r:?}");
}

/// A replica died while sending a follow-up (left `firing`, its owner lock
/// gone): a replica that stays up takes it over within its recovery period,
/// without waiting for a restart, and sends it once.
#[tokio::test]
async fn a_running_replica_takes_over_a_follow_up_a_dead_replica_left_firing() {
    use readbot::config::PgConfig;
    use readbot::domain::{FollowUp, FollowUpAction, FollowUpId, FollowUpState, Lang};
    use readbot::domain::{ProcessQueryKey, UserId};
    use readbot::store::postgres::PgStore;
    use readbot::store::{StateChange, Store};

    let Some(pg) = fresh_database().await else {
        return;
    };
    let url = pg.url.expose().to_owned();
    let app = spawn_app_with(&[("READBOT_STORE_URL", &url)]).await;
    add_group(&app.fake, GROUP, GroupKind::Inner, &members(6));
    let key = app.notice(GROUP, "Fire drill", "user0001").await;

    // The other replica: claims a follow-up (pending → firing, it becomes
    // the owner) and dies before it records the outcome.
    let now = readbot::domain::now_millis();
    let f = FollowUp {
        id: FollowUpId::parse("fu-orphan").unwrap(),
        key: ProcessQueryKey::parse(&key).unwrap(),
        at: now + 3_600_000, // not due for the running scheduler's pending pass
        action: FollowUpAction::Summary,
        state: FollowUpState::Pending,
        by: Some(UserId::parse("user0001").unwrap()),
        lang: Lang::En,
        created_at: now,
        changed_at: now,
        note: None,
    };
    {
        let dead = PgStore::connect(&PgConfig::new(url.clone()))
            .await
            .expect("the second replica connects");
        dead.add_follow_ups(std::slice::from_ref(&f)).await.unwrap();
        let claim = StateChange {
            from: FollowUpState::Pending,
            to: FollowUpState::Firing,
            now,
            note: None,
        };
        let claimed = dead.set_follow_up_state(&f.key, &f.id, claim).await;
        assert!(matches!(claimed, Ok(Some(_))), "{claimed:?}");
    } // dropped: its connections (and its owner lock) go away

    // Taken over within the recovery period (10 s) plus slack, sent once.
    let mut state = String::new();
    for _ in 0..300 {
        let r = app.get(&format!("/api/v1/notices/{}", enc(&key))).await;
        let v: serde_json::Value = r.json().await.expect("json");
        state = v["followUps"][0]["state"].as_str().unwrap_or("").to_owned();
        if state == "fired" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(state, "fired", "the orphaned follow-up was taken over");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let replies = app.replies(GROUP);
    assert_eq!(replies.len(), 1, "sent once: {replies:?}");
    assert!(replies[0].text.contains("Fire drill"), "{replies:?}");
    app.stop().await;
}
