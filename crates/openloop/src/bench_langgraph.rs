//! Side-by-side throughput against LangGraph's in-memory dev server (`langgraph dev`
//! from `langgraph-cli[inmem]`), driven the way `openloop bench` drives Openloop: a
//! sequential accept-latency phase, then N runs submitted by C concurrent clients, waited
//! for last-first and then checked one by one in submission order, and the server's CPU
//! time over that phase.
//!
//! The graph (bench/langgraph/graph.py) is one node calling the same zero-latency fake
//! provider through `ChatOpenAI`.
//!
//! Runs are created with stateless `POST /runs` and `"on_completion": "keep"`: one request
//! per run, like Openloop's `start_agent`, which also creates the conversation and queues
//! the run in one call. The server creates a thread for the run and keeps it, so the run
//! is polled with `GET /threads/{thread_id}/runs/{run_id}` (there is no `GET /runs/{id}`,
//! and the default `on_completion: "delete"` would drop the thread and its run when
//! done, leaving nothing to poll). `POST /threads` then `POST /threads/{id}/runs` would
//! cost two requests per run.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::bench::{cpu_time, percentile, wait_all, Poll, Poller};

/// Sequential submissions timed for accept latency; the first `LATENCY_WARMUP` are dropped.
const LATENCY_REQUESTS: usize = 200;
const LATENCY_WARMUP: usize = 20;

#[derive(Debug, Clone)]
pub struct LangGraphFigures {
    /// Runs submitted in the throughput phase.
    pub runs: usize,
    pub clients: usize,
    /// `--n-jobs-per-worker` the server ran with.
    pub jobs_per_worker: usize,
    /// Time until every run of the throughput phase had been accepted.
    pub accepted_in: Duration,
    /// Time until every run of the throughput phase was terminal.
    pub total: Duration,
    pub runs_per_sec: f64,
    /// Runs that ended in a status other than `success`, plus submissions refused.
    pub failed: usize,
    /// Server CPU (user + system, /proc) over the throughput phase, per run.
    pub cpu_per_run_ms: f64,
    /// Accept latency (ms) of the sequential phase, warm-up dropped.
    pub accept_n: usize,
    pub accept_p50_ms: f64,
    pub accept_p99_ms: f64,
    /// `langgraph-api` version as reported by `GET /info` (`"?"` if absent).
    pub api_version: String,
    /// `langgraph` (the library) version as reported by `GET /info` (`"?"` if absent).
    pub langgraph_version: String,
}

/// The throughput phase against `langgraph dev`, `jobs_per_worker` runs at a time (Openloop's
/// worker count, for a like-for-like comparison: without `--n-jobs-per-worker` the dev
/// server runs one run at a time).
pub async fn throughput_with_jobs(
    langgraph_bin: &Path,
    graph_dir: &Path,
    fake_url: &str,
    runs: usize,
    clients: usize,
    jobs_per_worker: usize,
) -> anyhow::Result<LangGraphFigures> {
    let server = LangGraphServer::spawn(langgraph_bin, graph_dir, fake_url, jobs_per_worker).await?;
    let base = server.base.clone();
    let client = reqwest::Client::builder().pool_max_idle_per_host(256).build()?;
    let info: Value = client.get(format!("{base}/info")).send().await?.json().await.unwrap_or(Value::Null);
    let version = |k: &str| info[k].as_str().unwrap_or("?").to_string();
    let (api_version, langgraph_version) = (version("version"), version("langgraph_py_version"));
    let body = run_body();

    // 1. Accept latency, one request at a time; also warms the graph and the provider path.
    let mut lat = Vec::with_capacity(LATENCY_REQUESTS);
    let mut ids = Vec::new();
    for i in 0..LATENCY_REQUESTS + LATENCY_WARMUP {
        let t = Instant::now();
        let r = client.post(format!("{base}/runs")).json(&body).send().await?;
        let status = r.status();
        let v: Value = r.json().await?;
        let dt = t.elapsed().as_secs_f64() * 1000.0;
        if !status.is_success() {
            anyhow::bail!("LangGraph POST /runs answered {status}: {v}");
        }
        if i >= LATENCY_WARMUP {
            lat.push(dt);
        }
        ids.push(run_ref(&v).ok_or_else(|| anyhow::anyhow!("POST /runs returned no run_id/thread_id: {v}"))?);
    }
    let (warm_failed, _) = wait_all(&ids, &*poller(&client, &base)).await?;
    if warm_failed > 0 {
        // A graph that fails every run would make the throughput figure meaningless.
        anyhow::bail!("{warm_failed} of the latency-phase LangGraph runs failed; log: {}", server.log_tail());
    }
    lat.sort_by(f64::total_cmp);

    // 2. Throughput: accepted → terminal. Unlike `openloop bench`, no client times
    // submissions meanwhile: that probe runs for the whole phase, which is far longer here,
    // and at 1,000 runs it added ~40 % more graph runs and cut the figure by ~10 %.
    let pid = server.child.id();
    let cpu0 = cpu_time(pid);
    let t0 = Instant::now();
    let (ids, refused) = submit(&client, &base, &body, runs, clients).await?;
    let accepted_in = t0.elapsed();
    let (failed, done) = wait_all(&ids, &*poller(&client, &base)).await?;
    let total = done.duration_since(t0);
    let cpu = cpu_time(pid).zip(cpu0).map(|(b, a)| b.saturating_sub(a));

    drop(server);
    Ok(LangGraphFigures {
        runs,
        clients,
        jobs_per_worker,
        accepted_in,
        total,
        runs_per_sec: runs as f64 / total.as_secs_f64(),
        failed: failed + refused,
        cpu_per_run_ms: cpu.map(|c| c.as_secs_f64() * 1000.0 / runs as f64).unwrap_or(f64::NAN),
        accept_n: lat.len(),
        accept_p50_ms: percentile(&lat, 50.0),
        accept_p99_ms: percentile(&lat, 99.0),
        api_version,
        langgraph_version,
    })
}

/// Submits `runs` runs from `clients` concurrent clients sharing one counter: the created
/// runs in submission order, and how many submissions were refused.
async fn submit(client: &reqwest::Client, base: &str, body: &Value, runs: usize, clients: usize) -> anyhow::Result<(Vec<RunRef>, usize)> {
    let next = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for _ in 0..clients {
        let (client, base, body, next) = (client.clone(), base.to_string(), body.clone(), next.clone());
        tasks.push(tokio::spawn(async move {
            let mut out = Vec::new();
            let mut refused = 0usize;
            loop {
                let i = next.fetch_add(1, Ordering::SeqCst);
                if i >= runs {
                    break;
                }
                let r = client.post(format!("{base}/runs")).json(&body).send().await?;
                let ok = r.status().is_success();
                let v: Value = r.json().await?;
                match run_ref(&v) {
                    Some(id) if ok => out.push((i, id)),
                    _ => refused += 1,
                }
            }
            Ok::<_, reqwest::Error>((out, refused))
        }));
    }
    let mut ids = Vec::with_capacity(runs);
    let mut refused = 0;
    for t in tasks {
        let (out, r) = t.await??;
        ids.extend(out);
        refused += r;
    }
    ids.sort();
    Ok((ids.into_iter().map(|(_, id)| id).collect(), refused))
}

/// The same one-word input the Openloop phase sends.
fn run_body() -> Value {
    json!({
        "assistant_id": "agent",
        "input": {"messages": [{"role": "user", "content": "hello"}]},
        "on_completion": "keep",
    })
}

/// (thread_id, run_id) of a created run.
type RunRef = (String, String);

fn run_ref(v: &Value) -> Option<RunRef> {
    Some((v["thread_id"].as_str()?.to_string(), v["run_id"].as_str()?.to_string()))
}

/// Polls a LangGraph run (`GET /threads/{thread}/runs/{run}`); statuses other than
/// `success` that end a run count as failed.
fn poller<'a>(client: &'a reqwest::Client, base: &'a str) -> Box<Poller<'a, RunRef>> {
    Box::new(move |(thread, run): &RunRef| {
        let (url, run) = (format!("{base}/threads/{thread}/runs/{run}"), run.clone());
        Box::pin(async move {
            let r = client.get(url).send().await?;
            let status = r.status();
            let v: Value = r.json().await?;
            if !status.is_success() {
                anyhow::bail!("GET run {run} answered {status}: {v}");
            }
            Ok(match v["status"].as_str() {
                Some("success") => Poll::Done,
                Some("error" | "timeout" | "interrupted") => Poll::Failed,
                _ => Poll::Running,
            })
        })
    })
}

/// A running `langgraph dev` (a single process with `--no-reload`), killed on drop.
struct LangGraphServer {
    child: std::process::Child,
    base: String,
    log: PathBuf,
    /// Working directory holding a copy of the graph files; the in-memory runtime
    /// persists its state under `./.langgraph_api`, so a fresh directory means every
    /// benchmark starts from an empty server and nothing is written into the repository.
    _work: tempfile::TempDir,
}

impl LangGraphServer {
    async fn spawn(bin: &Path, graph_dir: &Path, fake_url: &str, jobs_per_worker: usize) -> anyhow::Result<Self> {
        let work = tempfile::tempdir()?;
        // Top-level files only: the graph and its config, not the venv beside them.
        for entry in std::fs::read_dir(graph_dir)? {
            let entry = entry?;
            if entry.file_type()?.is_file() {
                std::fs::copy(entry.path(), work.path().join(entry.file_name()))?;
            }
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let log = work.path().join("langgraph.log");
        let out = std::fs::File::create(&log)?;
        // The child runs in `work`, so a relative path must be made absolute first; a bare
        // name is left for the PATH lookup.
        let bin = if bin.components().count() > 1 { std::path::absolute(bin)? } else { bin.to_path_buf() };
        let child = std::process::Command::new(&bin)
            .args(["dev", "--no-browser", "--no-reload", "--host", "127.0.0.1", "--port"])
            .arg(port.to_string())
            .arg("--n-jobs-per-worker")
            .arg(jobs_per_worker.to_string())
            .arg("--config")
            .arg(work.path().join("langgraph.json"))
            .current_dir(work.path())
            .env("OPENAI_BASE_URL", format!("{fake_url}/v1"))
            .env("OPENAI_API_KEY", "sk-bench")
            // No LangSmith tracing, no CLI analytics, no PyPI version check, no per-run
            // INFO logging: the Openloop side runs with OPENLOOP_LOG=error.
            .env("LANGSMITH_TRACING", "false")
            .env("LANGCHAIN_TRACING_V2", "false")
            .env_remove("LANGSMITH_API_KEY")
            .env_remove("LANGCHAIN_API_KEY")
            .env("LANGGRAPH_CLI_NO_ANALYTICS", "1")
            .env("LANGGRAPH_NO_VERSION_CHECK", "true")
            .env("LOG_LEVEL", "WARNING")
            .env("LOG_COLOR", "false")
            .stdin(Stdio::null())
            .stdout(out.try_clone()?)
            .stderr(out)
            // Deliberately left in our process group: a Ctrl-C in the terminal skips Drop,
            // and only a shared group lets it reach the server too. With --no-reload the CLI
            // serves in-process (no reloader child), so killing its pid leaves nothing behind.
            .spawn()
            .map_err(|e| anyhow::anyhow!("cannot start {}: {e}", bin.display()))?;
        let mut server = LangGraphServer { child, base: format!("http://127.0.0.1:{port}"), log, _work: work };
        let client = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            if let Ok(r) = client.get(format!("{}/ok", server.base)).send().await {
                if r.status().is_success() {
                    return Ok(server);
                }
            }
            if let Some(status) = server.child.try_wait()? {
                anyhow::bail!("langgraph dev exited with {status}; log:\n{}", server.log_tail());
            }
            if Instant::now() > deadline {
                anyhow::bail!("langgraph dev not ready after 120 s; log:\n{}", server.log_tail());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }
}

impl Drop for LangGraphServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
