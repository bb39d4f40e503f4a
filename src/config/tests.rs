//! Loading, defaults and validation of the whole configuration.

use super::*;
use std::collections::HashMap;

fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
    let m: HashMap<String, String> = pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    move |k: &str| m.get(k).cloned()
}

#[test]
fn defaults_and_required_keys() {
    let e = env(&[]);
    let err = Config::from_toml_str("", &e).unwrap_err();
    assert!(err.to_string().contains("DINGTALK_APP_KEY"));
    let e = env(&[
        ("DINGTALK_APP_KEY", "dingkey"),
        ("DINGTALK_APP_SECRET", "s3cr3t"),
    ]);
    let c = Config::from_toml_str("", &e).unwrap();
    assert_eq!(c.listen.to_string(), "127.0.0.1:8080");
    assert_eq!(c.data_dir, PathBuf::from("./readbot-data"));
    assert_eq!(c.dingtalk.robot_code.as_str(), "dingkey");
    assert_eq!(c.dingtalk.api_base.as_str(), "https://api.dingtalk.com/");
    assert_eq!(c.dingtalk.oapi_base.as_str(), "https://oapi.dingtalk.com/");
    assert!(c.api_token.is_none());
    assert_eq!(c.dingtalk.rate_limit_per_sec, 20);
}

#[test]
fn env_overrides_file_and_secrets_do_not_leak() {
    let toml = r#"
        listen = "0.0.0.0:9000"
        api_token = "file-token-0123456789"
        [dingtalk]
        app_key = "filekey"
        app_secret = "very-secret-value"
        robot_code = "robot1"
        [bot]
        roster_sources = ["learned"]
    "#;
    let e = env(&[
        ("READBOT_LISTEN", "127.0.0.1:1"),
        ("DINGTALK_ROBOT_CODE", "robot2"),
    ]);
    let c = Config::from_toml_str(toml, &e).unwrap();
    assert_eq!(c.listen.port(), 1);
    assert_eq!(c.dingtalk.robot_code.as_str(), "robot2");
    assert_eq!(c.bot.roster_sources, vec![RosterSource::Learned]);
    let dbg = format!("{c:?}");
    assert!(!dbg.contains("very-secret-value"));
    assert!(!dbg.contains("file-token-0123456789"));
}

#[test]
fn bad_values_name_their_key() {
    let base = [("DINGTALK_APP_KEY", "k"), ("DINGTALK_APP_SECRET", "s")];
    for (k, v) in [
        ("READBOT_LISTEN", "nope"),
        ("DINGTALK_API_BASE", "ftp://x"),
        ("DINGTALK_TIMEOUT_SECS", "abc"),
        ("READBOT_ROSTER_SOURCES", "everyone"),
        ("READBOT_API_TOKEN", "short"),
    ] {
        let mut pairs = base.to_vec();
        pairs.push((k, v));
        let err = Config::from_toml_str("", &env(&pairs)).unwrap_err();
        assert!(err.to_string().contains(k), "{err} should name {k}");
    }
    let err = Config::from_toml_str("unknown_key = 1", &env(&base)).unwrap_err();
    assert!(err.to_string().contains("unknown_key"));
}

#[test]
fn client_settings_need_no_dingtalk_keys() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("readbot.toml");
    std::fs::write(
        &file,
        "listen = \"0.0.0.0:9000\"\napi_token = \"file-token-0123456789\"\n",
    )
    .unwrap();
    let c = Config::load_client(Some(&file), &env(&[])).unwrap();
    assert_eq!(c.listen.as_deref(), Some("0.0.0.0:9000"));
    assert_eq!(c.api_token.unwrap().expose(), "file-token-0123456789");
    let c = Config::load_client(Some(&file), &env(&[("READBOT_LISTEN", "127.0.0.1:1")])).unwrap();
    assert_eq!(c.listen.as_deref(), Some("127.0.0.1:1"));
    let c = Config::load_client(None, &env(&[])).unwrap();
    assert!(c.listen.is_none() && c.api_token.is_none());
}

#[test]
fn mode_and_stream_settings() {
    let base = [("DINGTALK_APP_KEY", "k"), ("DINGTALK_APP_SECRET", "s")];
    let c = Config::from_toml_str("", &env(&base)).unwrap();
    assert_eq!(c.mode, Mode::Http);
    assert_eq!(c.stream, StreamConfig::default());
    assert_eq!(c.stream.backoff_base, Duration::from_secs(1));
    assert_eq!(c.stream.backoff_max, Duration::from_secs(60));
    let toml = r#"
        mode = "stream"
        [stream]
        backoff_base_ms = 20
        backoff_max_ms = 400
        ping_interval_ms = 100
        idle_timeout_ms = 300
    "#;
    let c = Config::from_toml_str(toml, &env(&base)).unwrap();
    assert_eq!(c.mode, Mode::Stream);
    assert_eq!(c.stream.backoff_base, Duration::from_millis(20));
    assert_eq!(c.stream.backoff_max, Duration::from_millis(400));
    assert_eq!(c.stream.idle_timeout, Duration::from_millis(300));
    let mut pairs = base.to_vec();
    pairs.push(("READBOT_MODE", "HTTP"));
    let c = Config::from_toml_str(toml, &env(&pairs)).unwrap();
    assert_eq!(c.mode, Mode::Http, "the environment wins");
    for (k, v) in [
        ("READBOT_MODE", "websocket"),
        ("READBOT_STREAM_BACKOFF_BASE_MS", "0"),
        ("READBOT_STREAM_BACKOFF_MAX_MS", "10"),
        ("READBOT_STREAM_IDLE_TIMEOUT_MS", "100"),
    ] {
        let mut pairs = base.to_vec();
        pairs.push((k, v));
        let err = Config::from_toml_str(toml, &env(&pairs)).unwrap_err();
        assert!(err.to_string().contains(k), "{err} should name {k}");
    }
}

#[test]
fn example_config_parses_and_lists_every_key() {
    let text = include_str!("../../deploy/readbot.example.toml");
    let c = Config::from_toml_str(text, &env(&[])).unwrap();
    assert_eq!(c.dingtalk.app_key, "dingxxxxxxxxxxxxxxxx");
    for (_, key, _) in ENV_KEYS.iter().filter(|(_, k, _)| *k != "(none)") {
        let leaf = key.rsplit('.').next().unwrap();
        assert!(
            text.contains(&format!("{leaf} =")),
            "example config lacks {key}"
        );
    }
}

#[test]
fn the_loader_and_the_default_impls_share_one_set_of_defaults() {
    let base = [("DINGTALK_APP_KEY", "k"), ("DINGTALK_APP_SECRET", "s")];
    let c = Config::from_toml_str("", &env(&base)).unwrap();
    assert_eq!(
        format!("{:?}", c.bot),
        format!("{:?}", BotConfig::default())
    );
    assert_eq!(c.stream, StreamConfig::default());
    assert_eq!(c.mode, defaults::MODE);
    assert_eq!(c.listen.to_string(), defaults::LISTEN);
    assert_eq!(c.data_dir, PathBuf::from(defaults::DATA_DIR));
    let d = &c.dingtalk;
    assert_eq!(d.timeout, defaults::DINGTALK_TIMEOUT);
    assert_eq!(d.deadline, defaults::DINGTALK_DEADLINE);
    assert_eq!(d.rate_limit_per_sec, defaults::DINGTALK_RATE_LIMIT_PER_SEC);
    assert_eq!(d.max_pages, defaults::DINGTALK_MAX_PAGES);
    assert_eq!(d.not_ready_window, defaults::DINGTALK_NOT_READY_WINDOW);
    assert_eq!(d.name_concurrency, defaults::DINGTALK_NAME_CONCURRENCY);
    assert_eq!(d.monthly_call_budget, 5000);
}

#[test]
fn read_names_and_time_zone() {
    let base = [("DINGTALK_APP_KEY", "k"), ("DINGTALK_APP_SECRET", "s")];
    let c = Config::from_toml_str("", &env(&base)).unwrap();
    assert_eq!(c.bot.max_read_names, defaults::MAX_READ_NAMES);
    assert_eq!(c.bot.timezone.name(), "Asia/Shanghai");
    let toml = "[bot]\nmax_read_names = 0\ntimezone = \"Europe/Berlin\"\n";
    let c = Config::from_toml_str(toml, &env(&base)).unwrap();
    assert_eq!(c.bot.max_read_names, 0);
    assert_eq!(c.bot.timezone.name(), "Europe/Berlin");
    let mut pairs = base.to_vec();
    pairs.extend([
        ("READBOT_MAX_READ_NAMES", "5"),
        ("READBOT_TIMEZONE", "Asia/Tokyo"),
    ]);
    let c = Config::from_toml_str(toml, &env(&pairs)).unwrap();
    assert_eq!(c.bot.max_read_names, 5, "the environment wins");
    assert_eq!(c.bot.timezone.name(), "Asia/Tokyo");
    for (k, v) in [
        ("READBOT_TIMEZONE", "Beijing"),
        ("READBOT_MAX_READ_NAMES", "-1"),
    ] {
        let mut pairs = base.to_vec();
        pairs.push((k, v));
        let err = Config::from_toml_str("", &env(&pairs)).unwrap_err();
        assert!(err.to_string().contains(k), "{err} should name {k}");
    }
}

#[test]
fn remind_settings_from_file_and_env() {
    let base = [("DINGTALK_APP_KEY", "k"), ("DINGTALK_APP_SECRET", "s")];
    let c = Config::from_toml_str("", &env(&base)).unwrap();
    assert_eq!(c.bot.remind_policy, RemindPolicy::Author);
    assert!(c.bot.admins.is_empty());
    assert_eq!(c.bot.remind_cooldown, Duration::from_secs(600));
    assert_eq!(c.bot.remind_max_mentions, 200);
    let toml = r#"
        [bot]
        remind_policy = "anyone"
        admins = ["boss", "boss", "deputy"]
        remind_cooldown_secs = 0
        remind_max_mentions = 120
    "#;
    let c = Config::from_toml_str(toml, &env(&base)).unwrap();
    assert_eq!(c.bot.remind_policy, RemindPolicy::Anyone);
    let admins: Vec<&str> = c.bot.admins.iter().map(|a| a.as_str()).collect();
    assert_eq!(admins, ["boss", "deputy"]);
    assert_eq!(c.bot.remind_cooldown, Duration::ZERO);
    assert_eq!(c.bot.remind_max_mentions, 120);
    let mut pairs = base.to_vec();
    pairs.extend([
        ("READBOT_REMIND_POLICY", "admins"),
        ("READBOT_ADMINS", " a1 , a2 "),
    ]);
    let c = Config::from_toml_str(toml, &env(&pairs)).unwrap();
    assert_eq!(c.bot.remind_policy, RemindPolicy::Admins);
    let admins: Vec<&str> = c.bot.admins.iter().map(|a| a.as_str()).collect();
    assert_eq!(admins, ["a1", "a2"]);
    for (k, v) in [
        ("READBOT_REMIND_POLICY", "everyone"),
        ("READBOT_REMIND_MAX_MENTIONS", "0"),
        ("READBOT_REMIND_COOLDOWN_SECS", "soon"),
    ] {
        let mut pairs = base.to_vec();
        pairs.push((k, v));
        let err = Config::from_toml_str("", &env(&pairs)).unwrap_err();
        assert!(err.to_string().contains(k), "{err} should name {k}");
    }
}

#[test]
fn the_signature_window_is_five_minutes_and_at_most_an_hour() {
    let base = [("DINGTALK_APP_KEY", "k"), ("DINGTALK_APP_SECRET", "s")];
    let c = Config::from_toml_str("", &env(&base)).unwrap();
    assert_eq!(c.bot.signature_window, Duration::from_secs(300));
    let mut pairs = base.to_vec();
    pairs.push(("READBOT_SIGNATURE_WINDOW_SECS", "3600"));
    let c = Config::from_toml_str("", &env(&pairs)).unwrap();
    assert_eq!(c.bot.signature_window, Duration::from_secs(3600));
    pairs.push(("READBOT_SIGNATURE_WINDOW_SECS", "3601"));
    let err = Config::from_toml_str("", &env(&pairs))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("READBOT_SIGNATURE_WINDOW_SECS") && err.contains("3600"),
        "{err}"
    );
    let err = Config::from_toml_str("[bot]\nsignature_window_secs = 7200\n", &env(&base))
        .unwrap_err()
        .to_string();
    assert!(err.contains("at most 3600"), "{err}");
    // Signature records live as long as message marks: at least two windows.
    let mut pairs = base.to_vec();
    pairs.push(("READBOT_DEDUP_RETENTION_SECS", "599"));
    let err = Config::from_toml_str("", &env(&pairs))
        .unwrap_err()
        .to_string();
    assert!(err.contains("READBOT_DEDUP_RETENTION_SECS"), "{err}");
    pairs.push(("READBOT_DEDUP_RETENTION_SECS", "600"));
    assert!(Config::from_toml_str("", &env(&pairs)).is_ok());
}

#[test]
fn server_limits_have_bounded_defaults_and_refuse_unsafe_values() {
    let base = [("DINGTALK_APP_KEY", "k"), ("DINGTALK_APP_SECRET", "s")];
    let c = Config::from_toml_str("", &env(&base)).unwrap();
    assert_eq!(c.server, ServerConfig::default());
    assert!(c.server.header_read_timeout <= Duration::from_secs(30));
    assert!(c.server.shutdown_grace < Duration::from_secs(30));
    assert_eq!(c.server.max_connections, 1024);
    let toml = r#"
        [server]
        header_read_timeout_secs = 5
        idle_timeout_secs = 7
        max_connections = 10
        shutdown_grace_secs = 3
    "#;
    let c = Config::from_toml_str(toml, &env(&base)).unwrap();
    assert_eq!(c.server.header_read_timeout, Duration::from_secs(5));
    assert_eq!(c.server.idle_timeout, Duration::from_secs(7));
    assert_eq!(c.server.max_connections, 10);
    assert_eq!(c.server.shutdown_grace, Duration::from_secs(3));
    for (k, v) in [
        ("READBOT_HEADER_READ_TIMEOUT_SECS", "31"),
        ("READBOT_HEADER_READ_TIMEOUT_SECS", "0"),
        ("READBOT_IDLE_TIMEOUT_SECS", "0"),
        ("READBOT_MAX_CONNECTIONS", "0"),
        ("READBOT_SHUTDOWN_GRACE_SECS", "30"),
    ] {
        let mut pairs = base.to_vec();
        pairs.push((k, v));
        let err = Config::from_toml_str(toml, &env(&pairs)).unwrap_err();
        assert!(err.to_string().contains(k), "{err} should name {k}");
    }
}

#[test]
fn ask_policy_reply_to_and_follow_up_lateness_from_file_and_env() {
    use super::{AskPolicy, ReplyTo};
    let base = [("DINGTALK_APP_KEY", "k"), ("DINGTALK_APP_SECRET", "s")];
    let c = Config::from_toml_str("", &env(&base)).unwrap();
    assert_eq!(c.bot.ask_policy, AskPolicy::Anyone);
    assert_eq!(c.bot.reply_to, ReplyTo::Group);
    assert_eq!(c.bot.follow_up_max_lateness, Duration::from_secs(6 * 3600));
    let toml = r#"
        [bot]
        ask_policy = "author_and_admins"
        reply_to = "dm"
        follow_up_max_lateness_secs = 60
    "#;
    let c = Config::from_toml_str(toml, &env(&base)).unwrap();
    assert_eq!(c.bot.ask_policy, AskPolicy::AuthorAndAdmins);
    assert_eq!(c.bot.reply_to, ReplyTo::Dm);
    assert_eq!(c.bot.follow_up_max_lateness, Duration::from_secs(60));
    let mut pairs = base.to_vec();
    pairs.extend([
        ("READBOT_ASK_POLICY", "anyone"),
        ("READBOT_REPLY_TO", "group"),
    ]);
    let c = Config::from_toml_str(toml, &env(&pairs)).unwrap();
    assert_eq!(c.bot.ask_policy, AskPolicy::Anyone);
    assert_eq!(c.bot.reply_to, ReplyTo::Group);
    for (k, v) in [
        ("READBOT_ASK_POLICY", "author"),
        ("READBOT_REPLY_TO", "email"),
        ("READBOT_FOLLOW_UP_MAX_LATENESS_SECS", "0"),
    ] {
        let mut pairs = base.to_vec();
        pairs.push((k, v));
        let err = Config::from_toml_str("", &env(&pairs)).unwrap_err();
        assert!(err.to_string().contains(k), "{err} should name {k}");
    }
}

#[test]
fn roster_cache_defaults_to_half_an_hour_and_zero_turns_it_off() {
    let base = [
        ("DINGTALK_APP_KEY", "dingkey"),
        ("DINGTALK_APP_SECRET", "s3cr3t"),
    ];
    let c = Config::from_toml_str("", &env(&base)).unwrap();
    assert_eq!(c.bot.roster_cache, Duration::from_secs(1800));
    let toml = "[bot]\nroster_cache_secs = 60\n";
    let c = Config::from_toml_str(toml, &env(&base)).unwrap();
    assert_eq!(c.bot.roster_cache, Duration::from_secs(60));
    let mut pairs = base.to_vec();
    pairs.push(("READBOT_ROSTER_CACHE_SECS", "0"));
    let c = Config::from_toml_str(toml, &env(&pairs)).unwrap();
    assert!(c.bot.roster_cache.is_zero());
    let mut bad = base.to_vec();
    bad.push(("READBOT_ROSTER_CACHE_SECS", "soon"));
    let err = Config::from_toml_str("", &env(&bad)).unwrap_err();
    assert!(
        err.to_string().contains("READBOT_ROSTER_CACHE_SECS"),
        "{err}"
    );
}

#[test]
fn replicas_divide_the_rate_limit_and_zero_is_refused() {
    let base = [("DINGTALK_APP_KEY", "k"), ("DINGTALK_APP_SECRET", "s")];
    let c = Config::from_toml_str("", &env(&base)).unwrap();
    assert_eq!(c.dingtalk.replicas, 1);
    assert_eq!(c.dingtalk.rate_limit_per_replica(), 20);

    let c = Config::from_toml_str("[dingtalk]\nreplicas = 3\n", &env(&base)).unwrap();
    assert_eq!(c.dingtalk.replicas, 3);
    // floor(20 / 3): together 18, never above the app's 20.
    assert_eq!(c.dingtalk.rate_limit_per_replica(), 6);

    let mut pairs = base.to_vec();
    pairs.push(("READBOT_REPLICAS", "2"));
    pairs.push(("DINGTALK_RATE_LIMIT_PER_SEC", "3"));
    let c = Config::from_toml_str("[dingtalk]\nreplicas = 3\n", &env(&pairs)).unwrap();
    assert_eq!(c.dingtalk.replicas, 2, "the environment wins");
    assert_eq!(c.dingtalk.rate_limit_per_replica(), 1);

    // More replicas than calls per second: each still gets 1.
    let mut pairs = base.to_vec();
    pairs.push(("READBOT_REPLICAS", "64"));
    let c = Config::from_toml_str("", &env(&pairs)).unwrap();
    assert_eq!(c.dingtalk.rate_limit_per_replica(), 1);

    for bad in ["0", "65", "-1", "two"] {
        let mut pairs = base.to_vec();
        pairs.push(("READBOT_REPLICAS", bad));
        let err = Config::from_toml_str("", &env(&pairs)).unwrap_err();
        assert!(err.to_string().contains("READBOT_REPLICAS"), "{bad}: {err}");
    }
    let err = Config::from_toml_str("[dingtalk]\nreplicas = 0\n", &env(&base)).unwrap_err();
    assert!(err.to_string().contains("must be at least 1"), "{err}");
}

#[test]
fn a_postgres_store_url_selects_postgresql_and_other_schemes_are_refused() {
    use crate::config::StoreConfig;
    let base = [("DINGTALK_APP_KEY", "k"), ("DINGTALK_APP_SECRET", "s")];
    let c = Config::from_toml_str("", &env(&base)).unwrap();
    assert!(
        matches!(c.store_config(), StoreConfig::Sled(_)),
        "unset keeps sled"
    );

    let toml = "[store]\nurl = \"postgresql://u:pw@db.example/readbot\"\npool_size = 3\n";
    let c = Config::from_toml_str(toml, &env(&base)).unwrap();
    let StoreConfig::Postgres(pg) = c.store_config() else {
        panic!("postgresql:// selects PostgreSQL");
    };
    assert_eq!(pg.pool_size, 3);
    assert!(!format!("{c:?}").contains("pw@"), "the URL is a secret");

    let mut pairs = base.to_vec();
    pairs.push(("READBOT_STORE_URL", "POSTGRES://db.example/readbot"));
    let c = Config::from_toml_str("", &env(&pairs)).unwrap();
    let StoreConfig::Postgres(pg) = c.store_config() else {
        panic!("the environment selects PostgreSQL");
    };
    assert_eq!(pg.pool_size, defaults::STORE_POOL_SIZE);
    assert_eq!(pg.ca_file, None);
    pairs.push(("READBOT_STORE_CA_FILE", "/etc/readbot/db-ca.pem"));
    let c = Config::from_toml_str("", &env(&pairs)).unwrap();
    let StoreConfig::Postgres(pg) = c.store_config() else {
        panic!("still PostgreSQL");
    };
    assert_eq!(
        pg.ca_file.as_deref(),
        Some(std::path::Path::new("/etc/readbot/db-ca.pem"))
    );

    for (k, v) in [
        ("READBOT_STORE_URL", "mysql://u:hunter2@db/readbot"),
        ("READBOT_STORE_URL", "/var/lib/readbot"),
        ("READBOT_STORE_POOL_SIZE", "0"),
        ("READBOT_STORE_POOL_SIZE", "65"),
    ] {
        let mut pairs = base.to_vec();
        pairs.push(("READBOT_STORE_URL", "postgres://db/readbot"));
        pairs.push((k, v));
        let err = Config::from_toml_str("", &env(&pairs)).unwrap_err();
        let text = err.to_string();
        assert!(text.contains(k), "{text} should name {k}");
        assert!(!text.contains("hunter2"), "{text}");
    }
}
