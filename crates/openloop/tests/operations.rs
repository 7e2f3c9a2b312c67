//! What an operator meets: start-up that refuses bad provider URLs, run ends in the
//! log, admin commands that cannot quietly create an empty installation, and
//! `users list` / `teams list` / `keys create` with the SDK's environment lines.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use testkit::fake_llm::FakeLlm;
use testkit::{send, Server, ADMIN_KEY, ADMIN_USER, TEAM_ID};

fn bin() -> &'static std::path::Path {
    env!("CARGO_BIN_EXE_openloop").as_ref()
}

/// `openloop serve` with `env`, expected to stop by itself: (exit code, stderr).
fn serve_until_exit(env: &[(&str, &str)]) -> (Option<i32>, String) {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let mut cmd = Command::new(bin());
    cmd.args(["serve", "--addr", "127.0.0.1:0", "--data-dir"]).arg(dir.path());
    for k in ["OPENAI_API_KEY", "OPENAI_BASE_URL", "ANTHROPIC_API_KEY", "ANTHROPIC_BASE_URL", "OLLAMA_HOST", "OPENLOOP_DATABASE_URL"] {
        cmd.env_remove(k);
    }
    cmd.envs(env.iter().copied()).stdout(Stdio::null()).stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("openloop starts");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(status) = child.try_wait().expect("the child can be waited for") {
            let mut err = String::new();
            if let Some(mut e) = child.stderr.take() {
                let _ = std::io::Read::read_to_string(&mut e, &mut err);
            }
            return (status.code(), err);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("openloop serve kept running with {env:?}: it should have refused to start");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn invalid_provider_urls_stop_start_up_with_exit_code_2_naming_the_setting() {
    for (name, value) in
        [("OPENAI_BASE_URL", "notaurl"), ("OPENAI_BASE_URL", "ftp://example.com/v1"), ("ANTHROPIC_BASE_URL", "api.anthropic"), ("OLLAMA_HOST", "http://")]
    {
        let (code, stderr) = serve_until_exit(&[(name, value)]);
        assert_eq!(code, Some(2), "{name}={value}: {stderr}");
        assert!(stderr.contains(name) && stderr.contains("http"), "{name}={value}: the message names the setting and the form: {stderr}");
    }
}

/// Runs an admin command; (success, stdout JSON or Null, stderr).
fn admin(args: &[&str]) -> (bool, Value, String) {
    let out = Command::new(bin()).args(args).env_remove("OPENLOOP_DATABASE_URL").env_remove("OPENLOOP_DATA_DIR").output().expect("openloop runs");
    (out.status.success(), serde_json::from_slice(&out.stdout).unwrap_or(Value::Null), String::from_utf8_lossy(&out.stderr).into_owned())
}

#[test]
fn admin_commands_refuse_a_missing_data_dir_unless_init() {
    let tmp = tempfile::tempdir().expect("a temporary directory");
    let missing = tmp.path().join("typo-data");
    let dir = missing.to_str().expect("a UTF-8 path");
    for args in [vec!["users", "list"], vec!["users", "create", "--org-admin"], vec!["keys", "list"], vec!["migrate"]] {
        let mut all = args.clone();
        all.extend(["--data-dir", dir]);
        let (ok, _, err) = admin(&all);
        assert!(!ok, "{args:?} on a missing data directory must fail");
        assert!(err.contains("does not exist") && err.contains("--init") && err.contains("--data-dir"), "{args:?}: the error says what to do: {err}");
        assert!(!missing.exists(), "{args:?} created {dir}");
    }
    // An existing directory without a database is refused the same way.
    std::fs::create_dir(&missing).expect("mkdir");
    let (ok, _, err) = admin(&["users", "list", "--data-dir", dir]);
    assert!(!ok && err.contains("no database") && err.contains("--init"), "{err}");
    assert!(!missing.join("openloop.db").exists());
    // --init creates it on purpose.
    let (ok, out, err) = admin(&["users", "create", "--id", "usr_first", "--org-admin", "--init", "--data-dir", dir]);
    assert!(ok, "{err}");
    assert_eq!(out["user_id"], "usr_first");
    let (ok, out, err) = admin(&["users", "list", "--data-dir", dir]);
    assert!(ok, "{err}");
    assert_eq!(out["users"].as_array().map(|u| u.iter().map(|u| u["user_id"].clone()).collect::<Vec<_>>()), Some(vec![json!("usr_first")]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn users_and_teams_list_and_keys_create_prints_the_sdk_environment() {
    let s = Server::start(bin(), &[]);
    let users = s.cli(&["users", "list"]);
    let admin_row = users["users"].as_array().and_then(|u| u.iter().find(|u| u["user_id"] == ADMIN_USER)).cloned().expect("the admin is listed");
    assert_eq!((admin_row["org_role"].as_str(), admin_row["organization_id"].as_str()), (Some("admin"), Some("org_default")));
    let other = s.cli(&["users", "create", "--org", "org_listed", "--email", "l@example.com"]);
    let only = s.cli(&["users", "list", "--org", "org_listed"]);
    assert_eq!(only["users"].as_array().map(Vec::len), Some(1));
    assert_eq!(only["users"][0]["user_id"], other["user_id"]);
    assert_eq!(only["users"][0]["email"], "l@example.com");

    let teams = s.cli(&["teams", "list"]);
    let team = teams["teams"].as_array().and_then(|t| t.iter().find(|t| t["team_id"] == TEAM_ID)).cloned().expect("the team is listed");
    assert_eq!(team["members"], 1);

    // keys create: the JSON carries the SDK's env lines, which work as printed.
    let out = Command::new(bin())
        .args(["keys", "create", "--user", ADMIN_USER, "--data-dir"])
        .arg(&s.data_dir)
        .envs(s.database_url().map(|u| ("OPENLOOP_DATABASE_URL", u)))
        .output()
        .expect("runs");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let created: Value = serde_json::from_slice(&out.stdout).expect("JSON");
    let env = created["sdk_env"].as_str().expect("sdk_env").to_string();
    let secret = created["secret"].as_str().expect("secret");
    assert!(
        env.starts_with("export GUMLOOP_BASE_URL=http")
            && env.contains(&format!("GUMLOOP_ACCESS_TOKEN={secret}"))
            && env.contains(&format!("GUMLOOP_USER_ID={ADMIN_USER}")),
        "{env}"
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains(&env), "the env line is shown to the person at the terminal too");
    let (st, _, _) = send(s.get(secret, "/agents")).await;
    assert_eq!(st, 200);
}

/// A server with its stderr (the log) collected.
struct LoggedServer {
    child: std::process::Child,
    url: String,
    log: Arc<Mutex<Vec<String>>>,
    _dir: tempfile::TempDir,
}

impl LoggedServer {
    fn start(env: &[(&str, &str)]) -> LoggedServer {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let mut cmd = Command::new(bin());
        cmd.args(["serve", "--addr", "127.0.0.1:0", "--data-dir"]).arg(dir.path());
        for k in ["OPENAI_API_KEY", "OPENAI_BASE_URL", "ANTHROPIC_API_KEY", "OLLAMA_HOST", "OPENLOOP_DATABASE_URL"] {
            cmd.env_remove(k);
        }
        if let Some(db) = testkit::postgres_database() {
            cmd.env("OPENLOOP_DATABASE_URL", db);
        }
        cmd.envs([("OPENLOOP_BOOTSTRAP_USER_ID", ADMIN_USER), ("OPENLOOP_BOOTSTRAP_API_KEY", ADMIN_KEY), ("OPENLOOP_LOG", "info")]);
        cmd.envs(env.iter().copied()).stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("openloop starts");
        let log = Arc::new(Mutex::new(Vec::new()));
        let sink = log.clone();
        let stderr = child.stderr.take().expect("stderr");
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                sink.lock().unwrap_or_else(|p| p.into_inner()).push(line);
            }
        });
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(u) = line.strip_prefix("openloop listening on ") {
                    let _ = tx.send(u.trim().to_string());
                }
            }
        });
        let url = rx.recv_timeout(Duration::from_secs(30)).expect("the server reports its address");
        LoggedServer { child, url, log, _dir: dir }
    }

    /// Log lines (JSON: stderr is not a terminal) whose message is `msg`.
    fn logged(&self, msg: &str) -> Vec<Value> {
        let lines = self.log.lock().unwrap_or_else(|p| p.into_inner()).clone();
        lines.iter().filter_map(|l| serde_json::from_str::<Value>(l).ok()).filter(|v| v["message"] == msg).collect()
    }

    /// Waits for the `msg` line of this session's run (the log line follows the state).
    async fn wait_logged(&self, msg: &str, session_id: &str) -> Value {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(v) = self.logged(msg).into_iter().find(|v| v["session_id"] == session_id) {
                return v;
            }
            assert!(Instant::now() < deadline, "no {msg:?} line for {session_id}: {:#?}", self.log.lock().map(|l| l.clone()).unwrap_or_default());
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for LoggedServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// G2 on `gpt-4o-mini` as the bootstrap admin; the agent's id.
async fn create_agent(client: &reqwest::Client, url: &str, name: &str) -> String {
    let resp =
        client.post(format!("{url}/api/v1/agents")).bearer_auth(ADMIN_KEY).json(&json!({"name": name, "model_name": "gpt-4o-mini"})).send().await.expect("G2");
    let body: Value = resp.json().await.expect("JSON");
    body["agent"]["id"].as_str().expect("agent id").to_string()
}

async fn finished_run(client: &reqwest::Client, url: &str, agent: &str) -> (String, Value) {
    let resp = client.post(format!("{url}/api/v1/agents/{agent}/sessions")).bearer_auth(ADMIN_KEY).json(&json!({"input": "hello"})).send().await.expect("S1");
    let body: Value = resp.json().await.expect("JSON");
    let sid = body["session"]["id"].as_str().expect("session id").to_string();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let s: Value = client.get(format!("{url}/api/v1/sessions/{sid}")).bearer_auth(ADMIN_KEY).send().await.expect("S4").json().await.expect("JSON");
        if ["completed", "failed", "idle"].contains(&s["session"]["state"].as_str().unwrap_or("")) {
            return (sid, s["session"].clone());
        }
        assert!(Instant::now() < deadline, "session {sid} did not finish: {s}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_run_end_is_logged_and_a_failed_session_says_why() {
    let client = reqwest::Client::new();
    // No provider at all: the run fails, and says so on the session and in the log.
    let bare = LoggedServer::start(&[]);
    let agent = create_agent(&client, &bare.url, "No provider").await;
    let (sid, session) = finished_run(&client, &bare.url, &agent).await;
    assert_eq!(session["state"], "failed");
    assert_eq!(session["error"]["class"], "ProviderNotConfigured", "{session}");
    assert!(session["error"]["message"].as_str().is_some_and(|m| m.contains("OPENAI_API_KEY")), "{session}");
    let line = bare.wait_logged("run failed", &sid).await;
    assert_eq!(line["level"], "WARN");
    assert!(line["error"].as_str().is_some_and(|e| e.starts_with("ProviderNotConfigured: ")), "{line}");
    // The start-up report says no provider is usable, and what to set.
    let deadline = Instant::now() + Duration::from_secs(20);
    while !bare.log.lock().map(|l| l.iter().any(|x| x.contains("no model provider is usable") && x.contains("OPENAI_API_KEY"))).unwrap_or(false) {
        assert!(Instant::now() < deadline, "start-up warns that no provider is usable");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // With a provider: a completed run is logged at info with ids, duration, tokens, credits.
    let fake = FakeLlm::start().await;
    let base = fake.openai_base_url();
    let ok = LoggedServer::start(&[("OPENAI_BASE_URL", &base), ("OPENAI_API_KEY", "sk-test")]);
    let agent = create_agent(&client, &ok.url, "Works").await;
    let (sid, session) = finished_run(&client, &ok.url, &agent).await;
    assert!(session.get("error").is_none(), "only failed sessions carry an error: {session}");
    let line = ok.wait_logged("run ended", &sid).await;
    assert_eq!((line["level"].as_str(), line["state"].as_str(), line["agent_id"].as_str()), (Some("INFO"), Some("completed"), Some(agent.as_str())));
    assert!(line["run_id"].as_str().is_some_and(|r| !r.is_empty()));
    assert!(line["duration_ms"].as_f64().is_some_and(|d| d >= 0.0) && line["output_tokens"].as_i64().is_some_and(|t| t > 0), "{line}");
    assert!(line["credits"].as_f64().is_some_and(|c| c > 0.0), "{line}");
    let provider_line = ok.wait_logged_provider().await;
    assert_eq!(provider_line["provider"], "openai");
}

impl LoggedServer {
    /// The start-up report's line for a provider that answered.
    async fn wait_logged_provider(&self) -> Value {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(v) = self.logged("provider answers").into_iter().next() {
                return v;
            }
            assert!(Instant::now() < deadline, "no provider line logged");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_model_pulled_into_ollama_after_start_up_is_accepted_without_a_restart() {
    let fake = FakeLlm::start().await;
    fake.set_models(vec!["llama3.2:1b".into()]);
    let host = fake.openai_base_url().trim_end_matches("/v1").to_string();
    let s = Server::start(bin(), &[("OLLAMA_HOST", &host)]);
    let create = |model: &str| s.post(ADMIN_KEY, "/agents", json!({"name": "Pulled", "model_name": model}));
    let (st, b, _) = send(create("ollama/llama3.2:1b")).await;
    assert_eq!(st, 201, "{b}");
    let (st, b, _) = send(create("ollama/qwen3:0.6b")).await;
    assert_eq!((st, b["error"]["code"].as_str(), b["error"]["param"].as_str()), (400, Some("invalid_model"), Some("model_name")), "{b}");
    // `ollama pull qwen3:0.6b` while Openloop runs.
    fake.set_models(vec!["llama3.2:1b".into(), "qwen3:0.6b".into()]);
    // An unknown name asks the server again at most every 5 s (so typos stay cheap).
    tokio::time::sleep(Duration::from_millis(5200)).await;
    let (st, b, _) = send(create("ollama/qwen3:0.6b")).await;
    assert_eq!(st, 201, "{b}");
    let (st, b, _) = send(s.get(ADMIN_KEY, "/models")).await;
    assert_eq!(st, 200);
    let ollama = b["model_groups"].as_array().and_then(|g| g.iter().find(|g| g["provider"] == "ollama")).cloned().expect("an Ollama group");
    let values: Vec<&str> = ollama["options"].as_array().map(|o| o.iter().filter_map(|x| x["value"].as_str()).collect()).unwrap_or_default();
    assert!(values.contains(&"ollama/qwen3:0.6b") && values.contains(&"ollama/llama3.2:1b"), "{values:?}");
}

/// On a terminal (a pseudo-terminal from util-linux `script`): the banner, and text logs
/// rather than JSON.
#[test]
fn on_a_terminal_start_up_prints_the_banner_and_logs_text() {
    if Command::new("script").arg("--version").output().is_err() {
        eprintln!("skipped: util-linux `script` (a pseudo-terminal) is not installed");
        return;
    }
    let dir = tempfile::tempdir().expect("a temporary directory");
    let line = format!("{} serve --addr 127.0.0.1:0 --data-dir {}", bin().display(), dir.path().display());
    let mut cmd = Command::new("script");
    cmd.args(["-qfec", &line, "/dev/null"]);
    for k in ["OPENAI_API_KEY", "OPENAI_BASE_URL", "ANTHROPIC_API_KEY", "OLLAMA_HOST", "OPENLOOP_DATABASE_URL", "OPENLOOP_LOG_FORMAT"] {
        cmd.env_remove(k);
    }
    cmd.env("OPENLOOP_LOG", "info").stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::null());
    let mut child = cmd.spawn().expect("script starts");
    let stdout = child.stdout.take().expect("stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for l in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(l).is_err() {
                break;
            }
        }
    });
    let mut seen = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if let Ok(l) = rx.recv_timeout(Duration::from_millis(200)) {
            seen.push(l);
        }
        let text = seen.join("\n");
        // The banner ends with the warning (no provider is configured here).
        if text.contains("Warning: no model provider is usable") && text.contains("listening") {
            break;
        }
    }
    let _ = Command::new("pkill").args(["-f", "--", &format!("--data-dir {}", dir.path().display())]).status();
    let _ = child.kill();
    let _ = child.wait();
    let text = seen.join("\n");
    for want in [
        "Openloop ",
        "  API ",
        "/api/v1",
        "  Console ",
        "  Data ",
        "  Providers",
        "not configured (set OPENAI_API_KEY",
        "  Default ",
        "Warning: no model provider is usable",
    ] {
        assert!(text.contains(want), "the banner shows {want:?}:\n{text}");
    }
    let listening = seen.iter().find(|l| l.contains("listening") && !l.starts_with("openloop listening")).expect("the listening log line");
    assert!(!listening.trim_start().starts_with('{') && listening.contains("INFO"), "text logs on a terminal, not JSON: {listening}");
}

/// (thread name, nice value) of each thread of a process, from /proc.
#[cfg(target_os = "linux")]
fn thread_nice_values(pid: u32) -> Vec<(String, i64)> {
    let mut out = Vec::new();
    for task in std::fs::read_dir(format!("/proc/{pid}/task")).expect("/proc lists the server's threads").flatten() {
        let (Ok(comm), Ok(stat)) = (std::fs::read_to_string(task.path().join("comm")), std::fs::read_to_string(task.path().join("stat"))) else { continue };
        // The fields after the parenthesized name start at field 3 (state); nice is field 19.
        let Some(nice) = stat.rsplit_once(')').and_then(|(_, rest)| rest.split_whitespace().nth(16)).and_then(|n| n.parse().ok()) else { continue };
        out.push((comm.trim().to_string(), nice));
    }
    out
}

/// Runs execute on the background runtime at a lower CPU priority than the HTTP API
/// (README, "How runs work"): with the cores busy draining runs, an accept still gets one.
#[cfg(target_os = "linux")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runs_execute_on_background_threads_at_a_lower_priority_than_the_api() {
    let fake = FakeLlm::start().await;
    let base = fake.openai_base_url();
    let server = Server::start(bin(), &[("OPENAI_BASE_URL", &base), ("OPENAI_API_KEY", "sk-test")]);
    let agent = create_agent(&server.client, &server.base_url, "Niced").await;
    let (_, session) = finished_run(&server.client, &server.base_url, &agent).await;
    assert_eq!(session["state"], "completed", "{session}");
    let threads = thread_nice_values(server.pid().expect("the server runs"));
    // The HTTP API's runtime (and the SQLite writer) keep the process's own priority,
    // whatever nice value the tests run at.
    let api: Vec<i64> = threads.iter().filter(|(name, _)| name.starts_with("tokio-rt") || name.starts_with("openloop-sqlite")).map(|t| t.1).collect();
    let own = api.first().copied().expect("the server has HTTP runtime threads");
    assert!(api.iter().all(|nice| *nice == own), "API and writer threads share the process's priority: {threads:?}");
    let background: Vec<i64> = threads.iter().filter(|(name, _)| name.starts_with("openloop-backgr")).map(|t| t.1).collect();
    assert!(!background.is_empty(), "the server has background threads: {threads:?}");
    assert!(background.iter().all(|nice| *nice == (own + 10).min(19)), "background threads run 10 nice steps lower: {threads:?}");
}
