//! Test-only helpers: spawn a real `openloop serve` on a random port with a temporary
//! data directory, run the admin CLI against it, and fake LLM providers over real HTTP.

pub mod fake_llm;

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::Value;

pub const ADMIN_USER: &str = "usr_test_admin";
pub const ADMIN_KEY: &str = "olk_TestAdminKey0000000000000000000000000000000";
pub const TEAM_ID: &str = "team_test";
pub const TEAM_KEY: &str = "olk_TestTeamKey00000000000000000000000000000000";

/// With `OPENLOOP_TEST_DATABASE=postgres` (and `OPENLOOP_TEST_POSTGRES_URL`, an
/// administrator URL; `scripts/test` sets both for its PostgreSQL pass), every server
/// gets a new, empty PostgreSQL database instead of the data directory's SQLite file.
pub fn postgres_database() -> Option<String> {
    if std::env::var("OPENLOOP_TEST_DATABASE").ok().as_deref() != Some("postgres") {
        return None;
    }
    let admin = std::env::var("OPENLOOP_TEST_POSTGRES_URL").expect("OPENLOOP_TEST_DATABASE=postgres needs OPENLOOP_TEST_POSTGRES_URL");
    Some(create_postgres_database(&admin, "blackbox"))
}

/// Creates a new, empty database in the cluster `admin` (an administrator URL) names;
/// returns its URL.
pub fn create_postgres_database(admin: &str, prefix: &str) -> String {
    let db = format!("{prefix}_{}", wire_like_suffix());
    let out = Command::new("psql").arg(admin).arg("-qc").arg(format!("CREATE DATABASE {db}")).output().expect("psql (PostgreSQL's client) runs");
    assert!(out.status.success(), "creating a test database failed: {}", String::from_utf8_lossy(&out.stderr));
    let (base, query) = admin.split_once('?').map(|(b, q)| (b, Some(q))).unwrap_or((admin, None));
    let root = base.rsplit_once('/').map(|(r, _)| r).unwrap_or(base);
    match query {
        Some(q) => format!("{root}/{db}?{q}"),
        None => format!("{root}/{db}"),
    }
}

fn wire_like_suffix() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
    format!("{}_{}_{}", std::process::id(), nanos % 1_000_000_000_000, N.fetch_add(1, Ordering::Relaxed))
}

/// One S3-compatible server (moto) per test binary: `OPENLOOP_TEST_S3_ENDPOINT`, or one
/// started by `scripts/s3-test-server`, which stops it when this process exits.
pub fn s3_endpoint() -> &'static str {
    static EP: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    EP.get_or_init(|| {
        if let Ok(ep) = std::env::var("OPENLOOP_TEST_S3_ENDPOINT") {
            return ep;
        }
        let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        let out = Command::new(repo.join("scripts/s3-test-server"))
            .env("S3_TEST_SERVER_WATCH_PID", std::process::id().to_string())
            .output()
            .expect("run scripts/s3-test-server (needs python3 to install moto[server])");
        assert!(out.status.success(), "scripts/s3-test-server failed: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    })
}

/// A running server process.
pub struct Server {
    pub bin: PathBuf,
    pub base_url: String,
    pub data_dir: PathBuf,
    _tmp: Option<tempfile::TempDir>,
    env: HashMap<String, String>,
    child: Option<Child>,
    pub client: reqwest::Client,
}

impl Server {
    /// Starts a server with the bootstrap admin, team and keys above, plus `env`.
    pub fn start(bin: &Path, env: &[(&str, &str)]) -> Server {
        let tmp = tempfile::tempdir().expect("temp dir");
        let data_dir = tmp.path().to_path_buf();
        let mut s = Self::start_at(bin, data_dir, env);
        s._tmp = Some(tmp);
        s
    }

    /// As `start`, with the data directory at `data_dir` (kept afterwards).
    pub fn start_in(bin: &Path, data_dir: &Path, env: &[(&str, &str)]) -> Server {
        Self::start_at(bin, data_dir.to_path_buf(), env)
    }

    fn start_at(bin: &Path, data_dir: PathBuf, env: &[(&str, &str)]) -> Server {
        let mut all: HashMap<String, String> = [
            ("OPENLOOP_BOOTSTRAP_USER_ID", ADMIN_USER),
            ("OPENLOOP_BOOTSTRAP_API_KEY", ADMIN_KEY),
            ("OPENLOOP_BOOTSTRAP_TEAM_ID", TEAM_ID),
            ("OPENLOOP_BOOTSTRAP_TEAM_API_KEY", TEAM_KEY),
            ("OPENLOOP_LOG", "warn"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        for (k, v) in env {
            all.insert(k.to_string(), v.to_string());
        }
        if !all.contains_key("OPENLOOP_DATABASE_URL") {
            if let Some(url) = postgres_database() {
                all.insert("OPENLOOP_DATABASE_URL".into(), url);
            }
        }
        let mut s = Server { bin: bin.to_path_buf(), base_url: String::new(), data_dir, _tmp: None, env: all, child: None, client: reqwest::Client::new() };
        s.spawn("127.0.0.1:0");
        s
    }

    fn spawn(&mut self, addr: &str) {
        let mut cmd = Command::new(&self.bin);
        cmd.arg("serve").arg("--addr").arg(addr).arg("--data-dir").arg(&self.data_dir);
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        cmd.env_remove("OPENLOOP_CONFIG").stdout(Stdio::piped()).stderr(Stdio::inherit());
        let mut child = cmd.spawn().expect("spawn openloop");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut tx = Some(tx);
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(url) = line.strip_prefix("openloop listening on ") {
                    if let Some(t) = tx.take() {
                        let _ = t.send(url.trim().to_string());
                    }
                }
            }
        });
        let url = rx.recv_timeout(Duration::from_secs(30)).expect("server did not report its address within 30 s");
        self.base_url = url;
        self.child = Some(child);
    }

    /// Sets (or with `None` removes) an environment variable for the next (re)start.
    /// Sends a signal (`HUP`, `TERM`, …) to the running server.
    pub fn signal(&self, sig: &str) {
        if let Some(c) = &self.child {
            let _ = Command::new("kill").arg(format!("-{sig}")).arg(c.id().to_string()).status();
        }
    }

    pub fn set_env(&mut self, key: &str, value: Option<&str>) {
        match value {
            Some(v) => self.env.insert(key.to_string(), v.to_string()),
            None => self.env.remove(key),
        };
    }

    /// Waits until the process exits on its own (e.g. at a crash failure point).
    pub fn wait_exit(&mut self, within: Duration) -> Option<std::process::ExitStatus> {
        let deadline = std::time::Instant::now() + within;
        while std::time::Instant::now() < deadline {
            if let Some(c) = self.child.as_mut() {
                if let Ok(Some(status)) = c.try_wait() {
                    return Some(status);
                }
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }

    /// The server process's id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(|c| c.id())
    }

    /// `kill -9` the process (no graceful shutdown).
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Restarts on the same data directory and port.
    pub fn restart(&mut self) {
        self.kill9();
        let addr = self.base_url.trim_start_matches("http://").to_string();
        // The port may linger briefly; retry binding for a few seconds.
        for _ in 0..50 {
            if std::net::TcpListener::bind(&addr).is_ok() {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        self.spawn(&addr);
        // Pooled connections died with the old process.
        self.client = reqwest::Client::new();
    }

    /// Sends SIGTERM and waits for exit; returns the exit status code.
    pub fn terminate(&mut self) -> Option<i32> {
        let mut c = self.child.take()?;
        let _ = Command::new("kill").arg("-TERM").arg(c.id().to_string()).status();
        c.wait().ok().and_then(|s| s.code())
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}/api/v1{}", self.base_url, path)
    }

    /// The database this server uses when it is not the data directory's SQLite file.
    pub fn database_url(&self) -> Option<&str> {
        self.env.get("OPENLOOP_DATABASE_URL").map(String::as_str)
    }

    /// Runs an admin subcommand on this server's data; returns its JSON output.
    pub fn cli(&self, args: &[&str]) -> Value {
        let mut cmd = Command::new(&self.bin);
        cmd.args(args).arg("--data-dir").arg(&self.data_dir);
        if let Some(url) = self.database_url() {
            cmd.env("OPENLOOP_DATABASE_URL", url);
        }
        let out = cmd.output().expect("run openloop cli");
        assert!(out.status.success(), "openloop {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
        serde_json::from_slice(&out.stdout).expect("cli prints JSON")
    }

    /// A new user in organization `org` with a personal key: (user id, secret).
    pub fn new_user(&self, org: &str) -> (String, String) {
        let u = self.cli(&["users", "create", "--org", org]);
        let user = u["user_id"].as_str().expect("user_id").to_string();
        let k = self.cli(&["keys", "create", "--user", &user]);
        (user, k["secret"].as_str().expect("secret").to_string())
    }

    pub fn get(&self, key: &str, path: &str) -> reqwest::RequestBuilder {
        self.client.get(self.url(path)).bearer_auth(key)
    }
    pub fn post(&self, key: &str, path: &str, body: Value) -> reqwest::RequestBuilder {
        self.client.post(self.url(path)).bearer_auth(key).json(&body)
    }
    pub fn patch(&self, key: &str, path: &str, body: Value) -> reqwest::RequestBuilder {
        self.client.patch(self.url(path)).bearer_auth(key).json(&body)
    }
    pub fn delete(&self, key: &str, path: &str) -> reqwest::RequestBuilder {
        self.client.delete(self.url(path)).bearer_auth(key)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// A server whose OpenAI-compatible provider is the fake `fake`, plus `extra` env.
pub fn start_with_fake(bin: &Path, fake: &fake_llm::FakeLlm, extra: &[(&str, &str)]) -> Server {
    let url = fake.openai_base_url();
    let mut env: Vec<(&str, &str)> = vec![("OPENAI_BASE_URL", &url), ("OPENAI_API_KEY", "sk-test")];
    env.extend_from_slice(extra);
    Server::start(bin, &env)
}

/// Creates an agent as the bootstrap admin (must answer 201); returns its id.
pub async fn create_agent(s: &Server, body: Value) -> String {
    let (st, b, _) = send(s.post(ADMIN_KEY, "/agents", body)).await;
    assert_eq!(st, 201, "{b}");
    b["agent"]["id"].as_str().expect("agent id").to_string()
}

/// Sends a request; returns (status, JSON body or Null, headers).
pub async fn send(req: reqwest::RequestBuilder) -> (u16, Value, reqwest::header::HeaderMap) {
    let resp = req.send().await.expect("request");
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let text = resp.text().await.unwrap_or_default();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null), headers)
}
