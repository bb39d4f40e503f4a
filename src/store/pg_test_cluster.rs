//! A throwaway PostgreSQL cluster for tests and benchmarks (not used by
//! readbot itself): `initdb` into a temporary folder, the server on a Unix
//! socket in that folder (no TCP, no password, fsync off), and a fresh
//! database per caller ([`fresh_database`]), so tests run in parallel on one
//! cluster per test process.
//!
//! # TLS
//!
//! [`fresh_tls_database`] starts a second cluster (once per process) that also
//! listens on TCP `127.0.0.1` (a free port) with `ssl=on`, using the server
//! certificate and key its caller made (the tests make them with `rcgen`, a
//! dev-dependency), and accepts TCP connections only over TLS (`hostssl`,
//! trust); the Unix socket stays open for [`Cluster::admin`].
//!
//! # No leaked clusters
//!
//! The server is started by a small `sh` watchdog whose standard input is a
//! pipe from this process, kept open in a `static` for the process's life.
//! When the process ends, however it ends (a normal exit, a panic, SIGKILL),
//! the kernel closes the pipe; the watchdog reads end-of-file, stops the
//! server (fast shutdown) and removes the folder. The watchdog ignores
//! SIGINT/SIGTERM/SIGHUP so that a Ctrl-C on the test run cannot stop it
//! before it has cleaned up. No `Drop` of a static (never run) and no
//! `prctl` (unsafe code) is needed.
//!
//! # Root
//!
//! `initdb` and `postgres` refuse to run as root. As root the folder is
//! given to the `postgres` user (Debian's package creates it; `nobody`
//! otherwise) and every command runs as that user through `setpriv`
//! (or `runuser`).
//!
//! # Missing PostgreSQL
//!
//! Without `initdb` (on `PATH` or under `/usr/lib/postgresql/*/bin`, where
//! Debian puts it), [`fresh_database`] prints one line saying so and returns
//! `None`, and the caller skips — unless `READBOT_REQUIRE_POSTGRES=1`, then
//! it panics (CI, see `.ci/run`).

use crate::config::PgConfig;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

/// The environment variable that turns a skip into a failure.
pub const REQUIRE_ENV: &str = "READBOT_REQUIRE_POSTGRES";

/// How long the server may take to accept connections.
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// The watchdog: starts the server, waits for end-of-file on its standard
/// input, then stops the server and removes the folder (`$1`: the folder,
/// `$2`: the `postgres` binary, the rest: more server options).
const WATCHDOG: &str = r#"trap '' INT TERM HUP
dir=$1 pg=$2
shift 2
"$pg" -D "$dir/data" -k "$dir" -F -c max_connections=300 \
     -c shared_buffers=32MB -c log_min_messages=warning "$@" >"$dir/log" 2>&1 &
pid=$!
while read -r _line; do :; done
kill -INT "$pid" 2>/dev/null
wait "$pid"
rm -rf "$dir"
"#;

/// The server side of the TLS cluster: its certificate (PEM, the chain
/// up to but without the CA) and private key (PEM).
#[derive(Clone)]
pub struct ServerTls {
    /// The certificate chain, PEM.
    pub cert_pem: String,
    /// The private key, PEM.
    pub key_pem: String,
}

impl std::fmt::Debug for ServerTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerTls").finish_non_exhaustive()
    }
}

/// `pg_hba.conf` of the TLS cluster: the socket trusted, TCP only over TLS.
const TLS_HBA: &str = "local all all trust
hostssl all all 127.0.0.1/32 trust
hostssl all all ::1/128 trust
";

/// One running cluster (per process).
#[derive(Debug)]
pub struct Cluster {
    /// The folder: `data/`, the socket and the log.
    dir: PathBuf,
    /// The server's port (the socket's name; TCP too when `tcp`).
    port: u16,
    /// Whether it listens on TCP `127.0.0.1` with TLS ([`fresh_tls_database`]).
    tcp: bool,
    /// The watchdog's standard input: closing it stops the cluster.
    _stdin: Mutex<ChildStdin>,
}

static CLUSTER: OnceLock<Result<Cluster, String>> = OnceLock::new();
static TLS_CLUSTER: OnceLock<Result<Cluster, String>> = OnceLock::new();
static SKIP_SAID: std::sync::Once = std::sync::Once::new();
static DATABASES: AtomicUsize = AtomicUsize::new(0);

/// `name` on `PATH`, else under `/usr/lib/postgresql/<version>/bin` (the
/// newest version).
pub fn find_bin(name: &str) -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("PATH") {
        for dir in std::env::split_paths(&path) {
            let p = dir.join(name);
            if p.is_file() {
                return Some(p);
            }
        }
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .flatten()
        .filter_map(|e| {
            let v = e.file_name().to_str()?.parse::<u32>().ok()?;
            let p = e.path().join("bin").join(name);
            p.is_file().then_some((v, p))
        })
        .collect();
    versions.sort();
    versions.pop().map(|(_, p)| p)
}

/// The user the cluster runs as when this process is root.
fn run_as() -> Option<&'static str> {
    use std::os::unix::fs::MetadataExt;
    let root = std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0);
    if !root {
        return None;
    }
    let has_postgres = Command::new("id")
        .args(["-u", "postgres"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    Some(if has_postgres { "postgres" } else { "nobody" })
}

/// `program args…`, as `user` when given.
fn command(user: Option<&str>, program: &Path) -> Command {
    match user {
        None => Command::new(program),
        Some(u) => {
            let mut c = if find_bin("setpriv").is_some() {
                let mut c = Command::new("setpriv");
                c.args([
                    &format!("--reuid={u}"),
                    &format!("--regid={u}"),
                    "--init-groups",
                    "--",
                ]);
                c
            } else {
                let mut c = Command::new("runuser");
                c.args(["-u", u, "--"]);
                c
            };
            c.arg(program);
            c
        }
    }
}

/// A port free on `127.0.0.1` now (the server binds it a moment later).
fn free_port() -> Result<u16, String> {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| format!("cannot find a free port: {e}"))
}

/// Writes `contents` to `path`, mode `mode`, owned by `user` when given.
fn write_private(path: &Path, contents: &str, mode: u32, user: Option<&str>) -> Result<(), String> {
    use std::os::unix::fs::PermissionsExt;
    let failed = |e: std::io::Error| format!("cannot write {}: {e}", path.display());
    std::fs::write(path, contents).map_err(failed)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).map_err(failed)?;
    if let Some(u) = user {
        let ok = Command::new("chown")
            .arg(format!("{u}:"))
            .arg(path)
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            return Err(format!("cannot give {} to {u}", path.display()));
        }
    }
    Ok(())
}

/// The certificate, key and `pg_hba.conf` of a TLS cluster in `dir`; the
/// server options that use them.
fn set_up_tls(
    dir: &Path,
    tls: &ServerTls,
    port: u16,
    user: Option<&str>,
) -> Result<Vec<String>, String> {
    let (cert, key) = (dir.join("server.crt"), dir.join("server.key"));
    write_private(&cert, &tls.cert_pem, 0o644, user)?;
    // PostgreSQL refuses a key file others may read.
    write_private(&key, &tls.key_pem, 0o600, user)?;
    let hba = dir.join("data/pg_hba.conf");
    std::fs::write(&hba, TLS_HBA).map_err(|e| format!("cannot write {}: {e}", hba.display()))?;
    Ok(vec![
        "-c".into(),
        "listen_addresses=127.0.0.1".into(),
        "-p".into(),
        port.to_string(),
        "-c".into(),
        "ssl=on".into(),
        "-c".into(),
        format!("ssl_cert_file={}", cert.display()),
        "-c".into(),
        format!("ssl_key_file={}", key.display()),
    ])
}

fn start(tls: Option<&ServerTls>) -> Result<Cluster, String> {
    let initdb = find_bin("initdb").ok_or("initdb not found")?;
    let postgres = find_bin("postgres")
        .or_else(|| initdb.parent().map(|d| d.join("postgres")))
        .filter(|p| p.is_file())
        .ok_or("postgres not found next to initdb")?;
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let kind = if tls.is_some() { "tls-" } else { "" };
    let dir = std::env::temp_dir().join(format!("readbot-pg-{kind}{}-{nanos}", std::process::id()));
    std::fs::create_dir(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let user = run_as();
    let cleanup = |why: String| {
        let _ = std::fs::remove_dir_all(&dir);
        why
    };
    if let Some(u) = user {
        let ok = Command::new("chown")
            .arg(format!("{u}:"))
            .arg(&dir)
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            return Err(cleanup(format!("cannot give {} to {u}", dir.display())));
        }
    }
    let out = command(user, &initdb)
        .arg("-D")
        .arg(dir.join("data"))
        .args([
            "-A",
            "trust",
            "-U",
            "postgres",
            "-E",
            "UTF8",
            "--locale=C",
            "--no-sync",
        ])
        .stdin(Stdio::null())
        .output()
        .map_err(|e| cleanup(format!("cannot run initdb: {e}")))?;
    if !out.status.success() {
        return Err(cleanup(format!(
            "initdb failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    let (port, options) = match tls {
        None => (5432, vec!["-c".to_owned(), "listen_addresses=".to_owned()]),
        Some(tls) => {
            let port = free_port().map_err(cleanup)?;
            let options = set_up_tls(&dir, tls, port, user).map_err(cleanup)?;
            (port, options)
        }
    };
    let sh = PathBuf::from("/bin/sh");
    let mut watchdog = command(user, &sh)
        .args(["-c", WATCHDOG, "readbot-pg-watchdog"])
        .arg(&dir)
        .arg(&postgres)
        .args(&options)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| cleanup(format!("cannot start the server: {e}")))?;
    let stdin = watchdog
        .stdin
        .take()
        .ok_or_else(|| cleanup("the watchdog has no standard input".into()))?;
    let cluster = Cluster {
        dir: dir.clone(),
        port,
        tcp: tls.is_some(),
        _stdin: Mutex::new(stdin),
    };
    // Ready once postmaster.pid says so (its status line).
    let deadline = Instant::now() + START_TIMEOUT;
    loop {
        let pid_file = std::fs::read_to_string(dir.join("data/postmaster.pid")).unwrap_or_default();
        if pid_file.lines().any(|l| l.trim() == "ready")
            && dir.join(format!(".s.PGSQL.{port}")).exists()
        {
            return Ok(cluster);
        }
        if Instant::now() > deadline || watchdog.try_wait().ok().flatten().is_some() {
            let log = std::fs::read_to_string(dir.join("log")).unwrap_or_default();
            // Dropping `cluster` closes the pipe: the watchdog cleans up.
            drop(cluster);
            return Err(format!("the server did not start: {}", log.trim()));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

impl Cluster {
    /// The folder holding the socket.
    pub fn socket_dir(&self) -> &Path {
        &self.dir
    }

    /// A URL for `database` on this cluster (user `postgres`, no password),
    /// through the Unix socket.
    pub fn url(&self, database: &str) -> String {
        format!(
            "postgresql://postgres@/{database}?host={}&port={}",
            self.dir.display(),
            self.port
        )
    }

    /// The TCP port on `127.0.0.1` (TLS only) of the TLS cluster; `None`
    /// for the socket-only cluster.
    pub fn tcp_port(&self) -> Option<u16> {
        self.tcp.then_some(self.port)
    }

    /// Creates a new, empty database and returns its name.
    pub async fn create_database(&self) -> Result<String, String> {
        let n = DATABASES.fetch_add(1, Ordering::Relaxed);
        let name = format!("t_{}_{n}", std::process::id());
        self.admin(&format!("CREATE DATABASE {name}")).await?;
        Ok(name)
    }

    /// Runs `sql` (one or more statements) as the superuser on the
    /// `postgres` database: what a test does to the server behind
    /// readbot's back (cut connections, refuse a database, ...).
    pub async fn admin(&self, sql: &str) -> Result<(), String> {
        let (client, connection) = tokio::time::timeout(
            Duration::from_secs(30),
            tokio_postgres::connect(&self.url("postgres"), tokio_postgres::NoTls),
        )
        .await
        .map_err(|_| "timed out connecting to the test cluster".to_owned())?
        .map_err(|e| format!("cannot connect to the test cluster: {e}"))?;
        let task = tokio::spawn(connection);
        let done = client
            .batch_execute(sql)
            .await
            .map_err(|e| format!("{sql}: {e:?}"));
        drop(client);
        let _ = task.await;
        done
    }
}

/// The process's cluster, started on first use (off the runtime).
pub async fn cluster() -> Result<&'static Cluster, String> {
    let started = tokio::task::spawn_blocking(|| CLUSTER.get_or_init(|| start(None)).as_ref())
        .await
        .map_err(|e| format!("the cluster start-up task failed: {e}"))?;
    started.map_err(Clone::clone)
}

/// A [`PgConfig`] for a new, empty database on the process's cluster;
/// `None` (after one printed line) when PostgreSQL is not installed.
///
/// # Panics
///
/// When the cluster cannot be used and [`REQUIRE_ENV`] is `1`, or when a
/// database cannot be created on a running cluster.
pub async fn fresh_database() -> Option<PgConfig> {
    match cluster().await {
        Ok(c) => {
            let name = c.create_database().await.unwrap_or_else(|e| panic!("{e}"));
            Some(PgConfig::new(c.url(&name)))
        }
        Err(why) => skip(&why),
    }
}

/// The process's TLS cluster (see the module's "TLS"), started on first
/// use with the certificate `make` returns (called once per process), and
/// a new, empty database on it; `None` (after one printed line) when
/// PostgreSQL is not installed.
///
/// # Panics
///
/// As [`fresh_database`]; also when `make` fails under [`REQUIRE_ENV`].
pub async fn fresh_tls_database(
    make: fn() -> Result<ServerTls, String>,
) -> Option<(&'static Cluster, String)> {
    let started = tokio::task::spawn_blocking(move || {
        TLS_CLUSTER
            .get_or_init(|| start(Some(&make()?)))
            .as_ref()
            .map_err(Clone::clone)
    })
    .await
    .unwrap_or_else(|e| Err(format!("the cluster start-up task failed: {e}")));
    match started {
        Ok(c) => {
            let name = c.create_database().await.unwrap_or_else(|e| panic!("{e}"));
            Some((c, name))
        }
        Err(why) => skip(&why),
    }
}

/// Says once that the PostgreSQL tests are skipped, and why; panics instead
/// under [`REQUIRE_ENV`]`=1`.
fn skip<T>(why: &str) -> Option<T> {
    if std::env::var(REQUIRE_ENV).is_ok_and(|v| v.trim() == "1") {
        panic!("{REQUIRE_ENV}=1 but the PostgreSQL tests cannot run: {why}");
    }
    SKIP_SAID.call_once(|| {
        // Straight to the stream: the test harness captures eprintln!.
        let _ = writeln!(
            std::io::stderr(),
            "skipping PostgreSQL tests: {why} (install Debian's postgresql package, or run .ci/run)"
        );
    });
    None
}
