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
}
