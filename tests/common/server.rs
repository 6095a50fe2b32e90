//! Real servers for the API suites: the release of this crate's binary on a random port, on a fresh
//! SQLite file or a fresh PostgreSQL database. Where no PostgreSQL is given
//! (`DTE_TEST_POSTGRES_URL=postgres://user@host:port`), the harness starts its own cluster in a
//! temporary folder, and a watchdog stops it when the test process ends.

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use super::{bin, repo};

pub const MASTER_KEY: &str = "dGVzdC1tYXN0ZXIta2V5LTMyLWJ5dGVzLWxvbmctISE=";

pub enum Db {
    Sqlite(tempfile::TempDir),
    Postgres(String),
}

impl Db {
    pub fn url(&self) -> String {
        match self {
            Db::Sqlite(d) => format!("sqlite://{}", d.path().join("gw.sqlite").display()),
            Db::Postgres(u) => u.clone(),
        }
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("free port")
}

pub fn pg_bin(name: &str) -> PathBuf {
    if let Ok(dirs) = std::fs::read_dir("/usr/lib/postgresql") {
        let mut v: Vec<PathBuf> =
            dirs.filter_map(|d| d.ok()).map(|d| d.path().join("bin").join(name)).filter(|p| p.exists()).collect();
        v.sort();
        if let Some(p) = v.pop() {
            return p;
        }
    }
    PathBuf::from(name)
}

fn is_root() -> bool {
    Command::new("id").arg("-u").output().map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0").unwrap_or(false)
}

/// This test process's own cluster: (pg_ctl command prefix, data folder), to stop it.
static CLUSTER: OnceLock<(String, PathBuf)> = OnceLock::new();

/// Stops this test process's PostgreSQL cluster (for tests of what happens when it is down; only
/// in a test binary whose other tests do not need it afterwards).
pub fn stop_postgres() {
    if let Some((ctl, data)) = CLUSTER.get() {
        let _ = Command::new("sh")
            .arg("-c")
            .arg(format!("{ctl} -D {} -m fast stop >/dev/null 2>&1", data.display()))
            .status();
    }
}

pub fn postgres_base_url() -> String {
    postgres_base().to_string()
}

/// The base URL of a PostgreSQL server for tests, started once per test process when none is given.
fn postgres_base() -> &'static str {
    static BASE: OnceLock<String> = OnceLock::new();
    BASE.get_or_init(|| {
        if let Ok(u) = std::env::var("DTE_TEST_POSTGRES_URL") {
            return u.trim_end_matches('/').to_string();
        }
        let dir = tempfile::Builder::new().prefix("dte-pg-").tempdir().expect("tempdir").keep();
        let data = dir.join("data");
        let port = free_port();
        let root = is_root();
        let as_pg = |cmd: &Path| if root { format!("runuser -u postgres -- {}", cmd.display()) } else { cmd.display().to_string() };
        if root {
            let _ = Command::new("chown").args(["-R", "postgres:postgres"]).arg(&dir).status();
        }
        let init = format!("{} -D {} -U postgres -A trust --no-sync >/dev/null", as_pg(&pg_bin("initdb")), data.display());
        let ok = Command::new("sh").arg("-c").arg(&init).status().map(|s| s.success()).unwrap_or(false);
        assert!(ok, "initdb failed: {init}");
        // The watchdog stops the cluster when this test process is gone.
        let script = format!(
            "{ctl} -D {data} -l {dir}/log -w -o \"-p {port} -k {dir} -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c max_connections=400\" start >/dev/null && \
             echo started; while kill -0 {pid} 2>/dev/null; do sleep 0.5; done; {ctl} -D {data} -m immediate stop >/dev/null 2>&1; rm -rf {dir}",
            ctl = as_pg(&pg_bin("pg_ctl")),
            data = data.display(),
            dir = dir.display(),
            pid = std::process::id(),
        );
        let mut child = Command::new("setsid").arg("sh").arg("-c").arg(&script).stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::null()).spawn().expect("start postgres");
        let mut line = String::new();
        let _ = BufReader::new(child.stdout.take().expect("stdout")).read_line(&mut line);
        assert_eq!(line.trim(), "started", "postgres did not start (log in {})", dir.display());
        // The watchdog lives as long as this process; a thread reaps it if it ends earlier.
        std::thread::spawn(move || child.wait());
        let _ = CLUSTER.set((as_pg(&pg_bin("pg_ctl")), data.clone()));
        format!("postgres://postgres@127.0.0.1:{port}")
    })
}

/// A fresh, empty PostgreSQL database.
pub fn postgres() -> Db {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    let base = postgres_base();
    let name = format!("dte_test_{}_{}", std::process::id(), N.fetch_add(1, Ordering::Relaxed));
    // Its own thread and runtime: callers may be inside a runtime already.
    let sql = format!("CREATE DATABASE {name}");
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
        rt.block_on(async {
            let (client, conn) = tokio_postgres::connect(&format!("{base}/postgres"), tokio_postgres::NoTls)
                .await
                .expect("connect to postgres");
            tokio::spawn(conn);
            client.batch_execute(&sql).await.expect("create database");
        });
    })
    .join()
    .expect("create database");
    Db::Postgres(format!("{base}/{name}"))
}

pub fn sqlite() -> Db {
    Db::Sqlite(tempfile::tempdir().expect("tempdir"))
}

pub fn env(db: &Db, data_dir: &Path) -> Vec<(String, String)> {
    vec![
        ("DTE_GATEWAY_DATABASE_URL".into(), db.url()),
        ("DTE_GATEWAY_MASTER_KEY".into(), MASTER_KEY.into()),
        ("DTE_GATEWAY_DATA_DIR".into(), data_dir.display().to_string()),
        ("DTE_GATEWAY_TRUST_TEST_AUTHORITY".into(), repo("certs/test-authority.pem").display().to_string()),
        ("DTE_GATEWAY_CONFIG".into(), "/dev/null".into()),
        ("RUST_LOG".into(), "warn".into()),
        // Suites that exercise the SII link turn it on and point it at a simulator.
        ("DTE_GATEWAY_SII_WORKERS".into(), "false".into()),
        // Suites that follow issued documents in the RCV turn it on.
        ("DTE_GATEWAY_RCV_TRACK_ISSUED".into(), "false".into()),
        // Webhook receivers in the suites listen on loopback over plain HTTP.
        ("DTE_GATEWAY_WEBHOOK_ALLOW_HTTP".into(), "true".into()),
        ("DTE_GATEWAY_WEBHOOK_ALLOW_PRIVATE".into(), "true".into()),
        // So do the suites' mail servers.
        ("DTE_GATEWAY_MAILBOX_ALLOW_PRIVATE".into(), "true".into()),
        // The suites fail authentication on purpose far more than an attacker is allowed to.
        ("DTE_GATEWAY_AUTH_FAILURES_PER_MINUTE".into(), "1000000".into()),
        // A port of its own per instance: many run at once.
        ("DTE_GATEWAY_METRICS_BIND".into(), "127.0.0.1:0".into()),
    ]
}

/// `dte-gateway keys create …` against `db`; returns the printed key.
pub fn cli_key(db: &Db, args: &[&str]) -> String {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = bin().args(["keys", "create"]).args(args).envs(env(db, dir.path())).output().expect("keys create");
    assert!(out.status.success(), "keys create: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("key: ").map(String::from))
        .expect("a key line")
}

pub struct Server {
    child: Option<Child>,
    pub base: String,
    /// The Prometheus endpoint (its own listener).
    pub metrics: Option<String>,
    _dir: tempfile::TempDir,
}

impl Server {
    pub fn start(db: &Db, extra: &[(&str, &str)]) -> Server {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut cmd = bin();
        cmd.args(["serve", "--bind", "127.0.0.1:0"])
            .envs(env(db, dir.path()))
            .envs(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        let mut child = cmd.stdout(Stdio::piped()).stderr(Stdio::inherit()).spawn().expect("start server");
        let mut reader = BufReader::new(child.stdout.take().expect("stdout"));
        let started = Instant::now();
        let mut base = None;
        let mut metrics = None;
        let mut line = String::new();
        while started.elapsed() < Duration::from_secs(30) {
            line.clear();
            if reader.read_line(&mut line).unwrap_or(0) == 0 {
                break;
            }
            if let Some(rest) = line.trim().strip_prefix("metrics on ") {
                metrics = Some(rest.trim().to_string());
            }
            if let Some(rest) = line.trim().strip_prefix("listening on ") {
                base = rest.split_whitespace().next().map(String::from);
                break;
            }
        }
        // Keep draining stdout so the server never blocks on a full pipe.
        std::thread::spawn(move || for _ in reader.lines() {});
        let base = base.expect("the server did not report its address");
        Server { child: Some(child), base, metrics, _dir: dir }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// The Prometheus scrape URL.
    pub fn metrics_url(&self) -> String {
        self.metrics.clone().expect("the server did not report a metrics address")
    }

    /// Starts an instance that is expected to refuse to start; what it printed.
    /// `unset` names variables of the suites' environment to leave out.
    pub fn refused(db: &Db, extra: &[(&str, &str)], unset: &[&str]) -> String {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut cmd = bin();
        cmd.args(["serve", "--bind", "127.0.0.1:0"])
            .envs(env(db, dir.path()).into_iter().filter(|(k, _)| !unset.contains(&k.as_str())))
            .envs(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        let mut child = cmd.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("start server");
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(30) {
            if let Ok(Some(status)) = child.try_wait() {
                assert!(!status.success(), "the instance exited with success");
                let out = child.wait_with_output().expect("output");
                return format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = child.kill();
        let _ = child.wait();
        panic!("the instance started instead of refusing");
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(|c| c.id())
    }

    /// SIGKILL without taking the process handle (the child is reaped on drop).
    pub fn signal_kill(&self) {
        if let Some(c) = &self.child {
            let _ = Command::new("kill").args(["-9", &c.id().to_string()]).status();
        }
    }

    /// SIGKILL: no clean shutdown, no flush.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill9();
    }
}
