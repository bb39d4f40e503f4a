//! PostgreSQL-only cases (the shared ones are in `store::conformance`):
//! two stores on one database (two replicas) racing, migrations, errors.

use super::*;
use crate::domain::FollowUpState::{Firing, Pending};
use crate::store::conformance::{follow_up, mid};
use crate::store::pg_test_cluster::fresh_database;
use std::sync::Arc;

/// Two stores (two pools: two replicas) on one fresh database.
async fn two_replicas() -> Option<(Arc<PgStore>, Arc<PgStore>, PgConfig)> {
    let config = fresh_database().await?;
    let a = PgStore::connect(&config).await.unwrap();
    let b = PgStore::connect(&config).await.unwrap();
    Some((Arc::new(a), Arc::new(b), config))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_replicas_claim_each_of_50_messages_once() {
    let Some((a, b, _)) = two_replicas().await else {
        return;
    };
    let mut tasks = Vec::new();
    for i in 0..50 {
        // Each msgId delivered twice to each replica, all at once.
        for store in [&a, &b, &a, &b] {
            let (s, id) = (store.clone(), mid(&format!("msg{i}")));
            tasks.push(tokio::spawn(async move {
                (i, s.claim_message(&id, 1_000).await.unwrap())
            }));
        }
    }
    let mut new = [0usize; 50];
    for t in tasks {
        let (i, claim) = t.await.unwrap();
        assert_ne!(claim, Claim::Done, "nobody finished msg{i}");
        new[i] += usize::from(claim == Claim::New);
    }
    assert_eq!(new, [1; 50], "exactly one Claim::New per msgId");
    // Answered by one replica: the other sees it done.
    a.finish_message(&mid("msg0"), 2_000).await.unwrap();
    assert_eq!(
        b.claim_message(&mid("msg0"), 3_000).await.unwrap(),
        Claim::Done
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_replicas_polling_fire_each_follow_up_once() {
    let Some((a, b, _)) = two_replicas().await else {
        return;
    };
    let list: Vec<_> = (0..20)
        .map(|i| follow_up(&format!("k{}", i % 3), &format!("fu-{i}"), 1_000 + i))
        .collect();
    a.add_follow_ups(&list).await.unwrap();
    // The scheduler's pass, on both replicas at once, twice each.
    let mut tasks = Vec::new();
    for store in [&a, &b, &a, &b] {
        let s = store.clone();
        tasks.push(tokio::spawn(async move {
            let mut fired = Vec::new();
            for f in s.due_follow_ups(Pending, 5_000, 100).await.unwrap() {
                let claim = StateChange {
                    from: Pending,
                    to: Firing,
                    now: 6_000,
                    note: None,
                };
                if s.set_follow_up_state(&f.key, &f.id, claim)
                    .await
                    .unwrap()
                    .is_some()
                {
                    fired.push(f.id.as_str().to_owned());
                }
            }
            fired
        }));
    }
    let mut fired = Vec::new();
    for t in tasks {
        fired.extend(t.await.unwrap());
    }
    fired.sort();
    let mut expected: Vec<String> = list.iter().map(|f| f.id.as_str().to_owned()).collect();
    expected.sort();
    assert_eq!(fired, expected, "every follow-up fired exactly once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_follow_up_left_firing_is_taken_over_only_once_its_owner_is_gone() {
    let Some((a, b, config)) = two_replicas().await else {
        return;
    };
    let f = follow_up("k1", "fu-a", 1_000);
    a.add_follow_ups(std::slice::from_ref(&f)).await.unwrap();
    let claim = StateChange {
        from: Pending,
        to: Firing,
        now: 2_000,
        note: None,
    };
    assert!(a
        .set_follow_up_state(&f.key, &f.id, claim)
        .await
        .unwrap()
        .is_some());
    // A is alive and sending it: a replica starting now does not send it again.
    assert!(b
        .due_follow_ups(Firing, EpochMillis::MAX, 10)
        .await
        .unwrap()
        .is_empty());
    // A's own start-up view still lists it (the sled semantics).
    assert_eq!(
        a.due_follow_ups(Firing, EpochMillis::MAX, 10)
            .await
            .unwrap()
            .len(),
        1
    );
    // A dies; two replicas start together: exactly one takes it over.
    drop(a);
    let c = Arc::new(PgStore::connect(&config).await.unwrap());
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let (x, y) = tokio::join!(
            b.due_follow_ups(Firing, EpochMillis::MAX, 10),
            c.due_follow_ups(Firing, EpochMillis::MAX, 10)
        );
        let (x, y) = (x.unwrap(), y.unwrap());
        assert!(x.len() + y.len() <= 1, "taken over twice: {x:?} {y:?}");
        if x.len() + y.len() == 1 {
            let taker = if x.is_empty() { &c } else { &b };
            let other = if x.is_empty() { &b } else { &c };
            // The taker keeps it; the other never gets it while the taker lives.
            assert!(other
                .due_follow_ups(Firing, EpochMillis::MAX, 10)
                .await
                .unwrap()
                .is_empty());
            assert_eq!(
                taker
                    .due_follow_ups(Firing, EpochMillis::MAX, 10)
                    .await
                    .unwrap()
                    .len(),
                1
            );
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the dead owner's lock was never released"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn replicas_starting_together_migrate_once() {
    let Some(config) = fresh_database().await else {
        return;
    };
    let starts: Vec<_> = (0..4)
        .map(|_| {
            let config = config.clone();
            tokio::spawn(async move { PgStore::connect(&config).await.map(drop) })
        })
        .collect();
    for s in starts {
        s.await.unwrap().unwrap();
    }
    let store = PgStore::connect(&config).await.unwrap();
    let versions: Vec<i32> = store
        .client()
        .await
        .unwrap()
        .query(
            "SELECT version FROM readbot_migrations ORDER BY version",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    let expected: Vec<i32> = schema::MIGRATIONS.iter().map(|(v, _)| *v).collect();
    assert_eq!(versions, expected);
}

#[tokio::test]
async fn a_schema_newer_than_the_binary_is_refused() {
    let Some(config) = fresh_database().await else {
        return;
    };
    let store = PgStore::connect(&config).await.unwrap();
    store
        .client()
        .await
        .unwrap()
        .execute(
            "INSERT INTO readbot_migrations (version) VALUES ($1)",
            &[&(schema::LATEST + 1)],
        )
        .await
        .unwrap();
    let err = PgStore::connect(&config).await.unwrap_err();
    assert!(matches!(err, StoreError::SchemaTooNew { .. }), "{err:?}");
    assert_eq!(
        err.to_string(),
        format!(
            "the database schema is version {}, this readbot knows up to {}; upgrade readbot",
            schema::LATEST + 1,
            schema::LATEST
        )
    );
}

#[tokio::test]
async fn an_unreachable_server_is_named_without_the_password() {
    // Port 1 on the loopback: nothing listens, the connection is refused.
    let mut config = PgConfig::new("postgres://readbot:hunter2-secret@127.0.0.1:1/readbot");
    config.pool_size = 2;
    let err = PgStore::connect(&config).await.unwrap_err();
    let text = err.with_causes();
    assert!(matches!(err, StoreError::Unreachable { .. }), "{err:?}");
    assert!(
        text.starts_with("cannot reach PostgreSQL at 127.0.0.1:1 (database readbot): "),
        "{text}"
    );
    assert!(!text.contains("hunter2"), "{text}");
    assert!(!format!("{err:?}").contains("hunter2"));
    assert!(!format!("{config:?}").contains("hunter2"));
}

#[test]
fn a_bad_url_is_refused_without_echoing_it() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let config = PgConfig::new("postgres://u:hunter2@host:notaport/db");
    let err = rt.block_on(PgStore::connect(&config)).unwrap_err();
    assert!(err.with_causes().contains("not a valid PostgreSQL URL"));
    assert!(
        !err.with_causes().contains("hunter2"),
        "{}",
        err.with_causes()
    );
}

#[tokio::test]
async fn describes_itself_by_host_and_database() {
    let Some(config) = fresh_database().await else {
        return;
    };
    let store = PgStore::connect(&config).await.unwrap();
    let d = store.describe();
    assert!(d.starts_with("postgres at /"), "{d}");
    assert!(d.contains(":5432 (database t_"), "{d}");
}

#[tokio::test]
async fn nul_in_names_and_titles_is_stored_not_refused() {
    let Some(config) = fresh_database().await else {
        return;
    };
    let s = PgStore::connect(&config).await.unwrap();
    let u = crate::store::conformance::uid("u1");
    s.cache_names(&[(u.clone(), "A\0B".into())], 1)
        .await
        .unwrap();
    assert_eq!(s.cached_names(&[u], 0).await.unwrap()[0].1, "A\u{FFFD}B");
    let g = crate::store::conformance::gid("cid1");
    s.remember_group_title(&g, "T\0", 1).await.unwrap();
    assert_eq!(
        s.group_title(&g).await.unwrap().as_deref(),
        Some("T\u{FFFD}")
    );
}

#[tokio::test]
async fn probe_reads_the_schema_version_without_writing() {
    let Some(config) = fresh_database().await else {
        return;
    };
    let before = probe(&config).await.unwrap();
    assert_eq!(
        (before.schema, before.known),
        (0, i64::from(schema::LATEST))
    );
    let store = PgStore::connect(&config).await.unwrap();
    assert_eq!(
        probe(&config).await.unwrap().schema,
        i64::from(schema::LATEST)
    );
    store
        .client()
        .await
        .unwrap()
        .execute(
            "INSERT INTO readbot_migrations (version) VALUES ($1)",
            &[&(schema::LATEST + 1)],
        )
        .await
        .unwrap();
    assert!(matches!(
        probe(&config).await,
        Err(StoreError::SchemaTooNew { .. })
    ));
    let unreachable = PgConfig::new("postgres://u:hunter2@127.0.0.1:1/readbot");
    let text = probe(&unreachable).await.unwrap_err().with_causes();
    assert!(
        text.starts_with("cannot reach PostgreSQL at 127.0.0.1:1 (database readbot)"),
        "{text}"
    );
    assert!(!text.contains("hunter2"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_queued_claim_of_a_dead_replica_is_taken_over_on_redelivery_a_started_one_never() {
    let Some((a, b, _)) = two_replicas().await else {
        return;
    };
    let (queued, started) = (mid("queued"), mid("started"));
    assert_eq!(a.claim_message(&queued, 1_000).await.unwrap(), Claim::New);
    assert_eq!(a.claim_message(&started, 1_000).await.unwrap(), Claim::New);
    a.make_claim_durable(&started).await.unwrap();
    // A is alive: B's redelivery is a duplicate, for both.
    assert_eq!(
        b.claim_message(&queued, 2_000).await.unwrap(),
        Claim::InFlight
    );
    assert_eq!(
        b.claim_message(&started, 2_000).await.unwrap(),
        Claim::InFlight
    );
    // A dies (its owner lock goes with its connection): the queued claim is
    // B's on redelivery, the started one stays A's (at most once).
    drop(a);
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while b.claim_message(&queued, 3_000).await.unwrap() != Claim::New {
        assert!(
            std::time::Instant::now() < deadline,
            "the dead replica's queued claim was never taken over"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        b.claim_message(&started, 3_000).await.unwrap(),
        Claim::InFlight
    );
    // Taken over once: B's own second look is a duplicate.
    assert_eq!(
        b.claim_message(&queued, 3_001).await.unwrap(),
        Claim::InFlight
    );
    b.make_claim_durable(&queued).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_replica_whose_claim_was_taken_over_does_not_answer_it() {
    let Some((a, b, _)) = two_replicas().await else {
        return;
    };
    let id = mid("lost");
    assert_eq!(a.claim_message(&id, 1_000).await.unwrap(), Claim::New);
    // As if A's owner lock had lapsed and B took the claim over.
    a.client()
        .await
        .unwrap()
        .execute(
            "UPDATE marks SET owner = $2 WHERE msg_id = $1",
            &[&"lost", &b.owner],
        )
        .await
        .unwrap();
    assert!(matches!(
        a.make_claim_durable(&id).await,
        Err(StoreError::ClaimLost { .. })
    ));
    assert!(!StoreError::ClaimLost {
        msg_id: "lost".into()
    }
    .is_write_failure());
    b.make_claim_durable(&id).await.unwrap();
}

/// A self-signed test CA (P-256, `CA:TRUE`), for `store.ca_file`.
const TEST_CA: &str = "-----BEGIN CERTIFICATE-----\n\
MIIBijCCATGgAwIBAgIUSmXwOrrelhhsbbUjQc/iBa/f71UwCgYIKoZIzj0EAwIw\n\
GjEYMBYGA1UEAwwPcmVhZGJvdCB0ZXN0IENBMCAXDTI2MTEzMDA1MDMyMVoYDzIx\n\
MjYxMTA2MDUwMzIxWjAaMRgwFgYDVQQDDA9yZWFkYm90IHRlc3QgQ0EwWTATBgcq\n\
hkjOPQIBBggqhkjOPQMBBwNCAAT75w8KuR7FrVnhPuysXH+0RlK53DC7Om//YjK1\n\
tf7dQm25mOY1NyEEZ7vdEs7oz0dRg+0RpAAdbGYmyILGgDbbo1MwUTAdBgNVHQ4E\n\
FgQUqsuRq7cKAXtgOGgnf4chEAWG0WswHwYDVR0jBBgwFoAUqsuRq7cKAXtgOGgn\n\
f4chEAWG0WswDwYDVR0TAQH/BAUwAwEB/zAKBggqhkjOPQQDAgNHADBEAiBDSa4K\n\
dYblrr9DdURCmuXy6T3gVcVf0zhdC/srkRs5AAIgJbxp3i71B+tLNAUQDlTvIwpB\n\
3W+thDxCFmMtjTFpTAc=\n\
-----END CERTIFICATE-----";

#[tokio::test]
async fn a_ca_file_adds_its_authorities_and_a_bad_one_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("ca.pem");
    std::fs::write(&good, format!("{TEST_CA}\n")).unwrap();
    assert_eq!(extra_authorities(&good).await.unwrap().len(), 1);
    let mut config = PgConfig::new("postgres://readbot:hunter2@db.example/readbot");
    config.ca_file = Some(good);
    assert!(tls(&config).await.is_ok(), "the CA is accepted");

    let empty = dir.path().join("empty.pem");
    std::fs::write(&empty, "no pem here\n").unwrap();
    let missing = dir.path().join("missing.pem");
    let broken = dir.path().join("broken.pem");
    std::fs::write(
        &broken,
        "-----BEGIN CERTIFICATE-----\n!!!\n-----END CERTIFICATE-----\n",
    )
    .unwrap();
    for (path, says) in [
        (&empty, "no CERTIFICATE block"),
        (&missing, "cannot read it"),
        (&broken, "not valid PEM"),
    ] {
        config.ca_file = Some(path.clone());
        let Err(e) = tls(&config).await else {
            panic!("{} accepted", path.display());
        };
        let text = e.with_causes();
        assert!(text.contains("store.ca_file"), "{text}");
        assert!(text.contains(&path.display().to_string()), "{text}");
        assert!(text.contains(says), "{text}");
        assert!(!text.contains("hunter2"), "{text}");
    }
}

/// A CA made once per test process and the `localhost` / `127.0.0.1`
/// certificate it signed for the TLS cluster.
struct TestPki {
    /// The CA's certificate, PEM (what `store.ca_file` holds).
    ca_pem: String,
    /// The server's certificate and key.
    server: crate::store::pg_test_cluster::ServerTls,
}

fn test_pki() -> Result<&'static TestPki, String> {
    static PKI: std::sync::OnceLock<Result<TestPki, String>> = std::sync::OnceLock::new();
    PKI.get_or_init(|| {
        use rcgen::{
            BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair,
            KeyUsagePurpose,
        };
        let fail = |e: rcgen::Error| format!("cannot make the test certificates: {e}");
        let mut ca = CertificateParams::new(Vec::<String>::new()).map_err(fail)?;
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca.distinguished_name
            .push(DnType::CommonName, "readbot TLS test CA");
        ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let ca =
            CertifiedIssuer::self_signed(ca, KeyPair::generate().map_err(fail)?).map_err(fail)?;
        let mut server =
            CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
                .map_err(fail)?;
        server
            .distinguished_name
            .push(DnType::CommonName, "localhost");
        let key = KeyPair::generate().map_err(fail)?;
        let cert = server.signed_by(&key, &ca).map_err(fail)?;
        Ok(TestPki {
            ca_pem: ca.pem(),
            server: crate::store::pg_test_cluster::ServerTls {
                cert_pem: cert.pem(),
                key_pem: key.serialize_pem(),
            },
        })
    })
    .as_ref()
    .map_err(Clone::clone)
}

fn server_tls() -> Result<crate::store::pg_test_cluster::ServerTls, String> {
    test_pki().map(|p| p.server.clone())
}

/// A fresh database on the TLS cluster: its URL over TCP with `sslmode`,
/// the port, and a folder holding the test CA as `ca.pem`.
async fn tls_database(sslmode: &str) -> Option<(String, u16, tempfile::TempDir)> {
    let (cluster, db) = crate::store::pg_test_cluster::fresh_tls_database(server_tls).await?;
    let port = cluster.tcp_port().expect("the TLS cluster listens on TCP");
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("ca.pem"), &test_pki().unwrap().ca_pem).unwrap();
    let url = format!("postgres://postgres@localhost:{port}/{db}?sslmode={sslmode}");
    Some((url, port, dir))
}

#[tokio::test]
async fn over_tls_with_the_ca_file_a_notice_round_trips_on_an_ssl_connection() {
    let Some((url, _, dir)) = tls_database("require").await else {
        return;
    };
    let mut config = PgConfig::new(url);
    config.ca_file = Some(dir.path().join("ca.pem"));
    let store = PgStore::connect(&config).await.unwrap();
    let n = crate::store::conformance::notice("tls-1", "cid-tls", Some("u1"), 1_000);
    store.record_notice(&n).await.unwrap();
    assert_eq!(store.notice(&n.key).await.unwrap(), Some(n));
    let ssl: bool = store
        .client()
        .await
        .unwrap()
        .query_one(
            "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert!(ssl, "the server sees the connection as TLS");
    // readbot check's probe goes the same way.
    let report = probe(&config).await.unwrap();
    assert!(report.target.starts_with("localhost:"), "{report:?}");
}

#[tokio::test]
async fn over_tls_without_the_ca_file_the_certificate_is_not_trusted() {
    let Some((url, port, _dir)) = tls_database("require").await else {
        return;
    };
    let config = PgConfig::new(url);
    // The store at start, and readbot check's probe.
    let errors = [
        PgStore::connect(&config).await.unwrap_err(),
        probe(&config).await.unwrap_err(),
    ];
    for e in errors {
        assert!(matches!(e, StoreError::Unreachable { .. }), "{e:?}");
        let text = e.with_causes();
        assert!(text.contains(&format!("localhost:{port}")), "{text}");
        assert!(text.contains("certificate is not trusted"), "{text}");
        assert!(text.contains("READBOT_STORE_CA_FILE"), "{text}");
        assert!(text.contains("store.ca_file"), "{text}");
        assert!(text.contains("UnknownIssuer"), "the cause is kept: {text}");
    }
}

#[tokio::test]
async fn without_tls_a_server_that_requires_it_refuses() {
    let Some((url, port, dir)) = tls_database("disable").await else {
        return;
    };
    let mut config = PgConfig::new(url);
    config.ca_file = Some(dir.path().join("ca.pem"));
    let errors = [
        PgStore::connect(&config).await.unwrap_err(),
        probe(&config).await.unwrap_err(),
    ];
    for e in errors {
        assert!(matches!(e, StoreError::Unreachable { .. }), "{e:?}");
        let text = e.with_causes();
        assert!(
            text.contains(&format!("cannot reach PostgreSQL at localhost:{port}")),
            "{text}"
        );
        assert!(text.contains("refuses connections without TLS"), "{text}");
        assert!(text.contains("sslmode=require"), "{text}");
        assert!(
            text.contains("no encryption"),
            "the server's refusal is kept: {text}"
        );
    }
}

#[test]
fn libpq_verifying_sslmodes_mean_require_which_verifies() {
    for mode in ["verify-full", "verify-ca", "VERIFY-FULL"] {
        let config = PgConfig::new(format!(
            "postgres://readbot:pw@db.example:5432/readbot?application_name=x&sslmode={mode}"
        ));
        let (pg, target) = driver_config(&config).expect(mode);
        assert_eq!(
            pg.get_ssl_mode(),
            tokio_postgres::config::SslMode::Require,
            "{mode}"
        );
        assert_eq!(pg.get_application_name(), Some("x"));
        assert!(target.contains("db.example:5432"), "{target}");
    }
    let config = PgConfig::new("postgres://readbot@db.example/readbot?sslmode=disable");
    let (pg, _) = driver_config(&config).unwrap();
    assert_eq!(pg.get_ssl_mode(), tokio_postgres::config::SslMode::Disable);
    assert_eq!(
        libpq_sslmode("postgres://u@h/db"),
        "postgres://u@h/db",
        "no query: unchanged"
    );
}
