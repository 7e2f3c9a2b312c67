//! `openloop bench`: spawns `openloop serve` against an in-process zero-latency fake
//! OpenAI-compatible provider and measures accept latency, run throughput, cold start
//! and idle memory. Results are printed as a Markdown table (docs/BENCHMARKS.md).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use clap::Args;
use futures::StreamExt;
use serde_json::{json, Value};

#[derive(Debug, Clone, Args)]
pub struct BenchArgs {
    /// Sequential start_agent requests timed for accept latency.
    #[arg(long, default_value_t = 1000)]
    pub latency_requests: usize,
    /// Runs submitted for the throughput figure.
    #[arg(long, default_value_t = 2000)]
    pub runs: usize,
    /// Concurrent submitting clients.
    #[arg(long, default_value_t = 32)]
    pub clients: usize,
    /// start_agent calls per second of the steady-load phase (open loop: each call is
    /// sent on schedule, whatever the earlier ones are doing).
    #[arg(long, default_value_t = 2000)]
    pub steady_rate: u32,
    /// Seconds of the steady-load phase (0 skips it).
    #[arg(long, default_value_t = 3)]
    pub steady_secs: u32,
    /// OPENLOOP_WORKERS for the benchmarked server (the server's own default).
    #[arg(long, default_value_t = 64)]
    pub workers: usize,
    /// Size of the artifact downloaded for the throughput figure (MiB; 0 skips).
    #[arg(long, default_value_t = 1024)]
    pub download_mib: u64,
    /// Backlog sizes: for each, that many runs are queued while no worker runs, then a
    /// server with workers drains them (comma-separated; 0 skips).
    #[arg(long, value_delimiter = ',', default_value = "500,20000")]
    pub backlog: Vec<usize>,
    /// Session counts for the listing figure (S3/A1 page cost; comma-separated; 0 skips).
    #[arg(long, value_delimiter = ',', default_value = "10,100000")]
    pub list_sessions: Vec<usize>,
    /// Nodes of the flow-scheduling figure (a chain and a fan-out of template nodes; 0 skips).
    #[arg(long, default_value_t = 1000)]
    pub flow_nodes: usize,
    /// Loop sizes of the flow loop figure (comma-separated; 0 skips).
    #[arg(long, value_delimiter = ',', default_value = "1000,10000")]
    pub loop_items: Vec<usize>,
    /// Lines of the files the `loop_file` phase loops over, each on a fresh server.
    #[arg(long, value_delimiter = ',', default_value = "1000,10000,100000,1000000")]
    pub file_loop_lines: Vec<usize>,
    /// Ledger rows of the credit_logs export figure (0 skips).
    #[arg(long, default_value_t = 1_000_000)]
    pub export_rows: usize,
    /// The `langgraph` executable (from `langgraph-cli[inmem]`, see bench/langgraph):
    /// runs the same throughput phase against LangGraph's in-memory server.
    #[arg(long)]
    pub langgraph: Option<std::path::PathBuf>,
    /// A PostgreSQL administrator URL (`postgres://user@host:port/postgres`): adds the
    /// replica phase (SQLite vs PostgreSQL on one replica, one vs two replicas on
    /// PostgreSQL), each on a new database.
    #[arg(long)]
    pub postgres: Option<String>,
    /// Runs per configuration of the replica phase (0 skips it).
    #[arg(long, default_value_t = 4000)]
    pub replica_runs: usize,
    /// The directory holding the LangGraph graph (graph.py, langgraph.json).
    #[arg(long, default_value = "bench/langgraph")]
    pub langgraph_graph: std::path::PathBuf,
}

/// Send instants of paced chunks, by (stream id, chunk index).
static SENT: std::sync::OnceLock<std::sync::Mutex<std::collections::HashMap<(String, usize), Instant>>> = std::sync::OnceLock::new();

fn sent() -> &'static std::sync::Mutex<std::collections::HashMap<(String, usize), Instant>> {
    SENT.get_or_init(Default::default)
}

const PACED_CHUNKS: usize = 200;
const PACE: Duration = Duration::from_millis(2);

/// A paced stream: chunk `i` is the text `<i>;`, sent every `PACE`, its send instant
/// recorded so readers can compute per-event latency on the same clock.
fn paced(id: String) -> Response {
    let body = futures::stream::unfold(0usize, move |i| {
        let id = id.clone();
        async move {
            if i > PACED_CHUNKS {
                return None;
            }
            if i == PACED_CHUNKS {
                let tail = "data: {\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}]}\n\ndata: [DONE]\n\n".to_string();
                return Some((Ok::<_, std::io::Error>(tail), i + 1));
            }
            tokio::time::sleep(PACE).await;
            let chunk = json!({"choices": [{"index": 0, "delta": {"content": format!("{i};")}, "finish_reason": null}]});
            if let Ok(mut m) = sent().lock() {
                m.insert((id.clone(), i), Instant::now());
            }
            Some((Ok(format!("data: {chunk}\n\n")), i + 1))
        }
    });
    ([("content-type", "text/event-stream")], axum::body::Body::from_stream(body)).into_response()
}

/// Zero-latency fake: a fixed two-chunk streamed reply with usage; a user message
/// `paced:<id>` gets the paced stream instead.
async fn fake_chat(Json(req): Json<Value>) -> Response {
    let last_user = req
        .get("messages")
        .and_then(Value::as_array)
        .and_then(|m| m.iter().rev().find(|x| x["role"] == "user"))
        .and_then(|m| m["content"].as_str())
        .unwrap_or("")
        .to_string();
    if let Some(id) = last_user.strip_prefix("paced:") {
        return paced(id.to_string());
    }
    let stream = req.get("stream").and_then(Value::as_bool).unwrap_or(false);
    if !stream {
        return Json(json!({"id": "x", "object": "chat.completion", "choices": [{"index": 0, "message": {"role": "assistant", "content": "ok"}, "finish_reason": "stop"}], "usage": {"prompt_tokens": 10, "completion_tokens": 2}})).into_response();
    }
    let chunk =
        |delta: Value, finish: Value| json!({"id": "x", "object": "chat.completion.chunk", "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]});
    let body = format!(
        "data: {}\n\ndata: {}\n\ndata: {}\n\ndata: {}\n\ndata: [DONE]\n\n",
        chunk(json!({"role": "assistant", "content": "o"}), Value::Null),
        chunk(json!({"content": "k"}), Value::Null),
        chunk(json!({}), json!("stop")),
        json!({"id": "x", "object": "chat.completion.chunk", "choices": [], "usage": {"prompt_tokens": 10, "completion_tokens": 2}}),
    );
    ([("content-type", "text/event-stream")], body).into_response()
}

async fn fake_models() -> Json<Value> {
    Json(json!({"object": "list", "data": [{"id": "bench-model", "object": "model"}]}))
}

pub(crate) fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let idx = ((p / 100.0) * (sorted.len() as f64 - 1.0)).round() as usize;
    sorted[idx.min(sorted.len() - 1)]
}

/// "p50 … ms, p99 … ms" of sorted latencies in ms.
fn p50_p99(sorted: &[f64]) -> String {
    format!("p50 {:.3} ms, p99 {:.3} ms", percentile(sorted, 50.0), percentile(sorted, 99.0))
}

pub(crate) fn rss_kib(pid: u32) -> Option<u64> {
    status_kib(pid, "VmRSS:")
}

/// One `… kB` field of /proc/<pid>/status.
fn status_kib(pid: u32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status.lines().find(|l| l.starts_with(field))?.split_whitespace().nth(1)?.parse().ok()
}

/// Per thread name (as the kernel keeps it, 15 characters): nanoseconds on a CPU and
/// nanoseconds runnable but waiting for one, from /proc/<pid>/task/*/schedstat.
fn sched_by_thread(pid: u32) -> std::collections::BTreeMap<String, (u64, u64)> {
    let mut out = std::collections::BTreeMap::new();
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else { return out };
    for task in tasks.flatten() {
        let path = task.path();
        let (Ok(comm), Ok(stat)) = (std::fs::read_to_string(path.join("comm")), std::fs::read_to_string(path.join("schedstat"))) else { continue };
        let mut fields = stat.split_whitespace().map(|x| x.parse::<u64>().unwrap_or(0));
        let (on_cpu, waiting) = (fields.next().unwrap_or(0), fields.next().unwrap_or(0));
        let e = out.entry(comm.trim().to_string()).or_insert((0, 0));
        e.0 += on_cpu;
        e.1 += waiting;
    }
    out
}

/// Prints (to stderr) how long each group of the server's threads ran and waited for a
/// core between two `sched_by_thread` samples, per `per` units of work.
fn print_sched_delta(before: &std::collections::BTreeMap<String, (u64, u64)>, after: &std::collections::BTreeMap<String, (u64, u64)>, per: usize) {
    for (name, (on_cpu, waiting)) in after {
        let (on0, wait0) = before.get(name).copied().unwrap_or((0, 0));
        let (on_ms, wait_ms) = (on_cpu.saturating_sub(on0) as f64 / 1e6, waiting.saturating_sub(wait0) as f64 / 1e6);
        if on_ms + wait_ms >= 1.0 {
            eprintln!(
                "  threads {name}: on a CPU {on_ms:.0} ms, runnable but waiting for a core {wait_ms:.0} ms ({:.1} µs per run)",
                wait_ms * 1000.0 / per.max(1) as f64
            );
        }
    }
}

/// CPU time (user + system) the process has used so far.
pub(crate) fn cpu_time(pid: u32) -> Option<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name, which is in parentheses and may contain spaces.
    let rest = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let (utime, stime): (u64, u64) = (fields.get(11)?.parse().ok()?, fields.get(12)?.parse().ok()?);
    // In USER_HZ ticks, which Linux fixes at 100 per second for user space.
    Some(Duration::from_secs_f64((utime + stime) as f64 / 100.0))
}

pub(crate) struct Child {
    pub(crate) child: std::process::Child,
    pub(crate) base: String,
}

impl Child {
    /// Stops the server as an operator would (SIGTERM, graceful shutdown), so its SQLite
    /// log is checkpointed and removed on close; a killed server leaves its WAL for the
    /// next one to recover and copy while it works.
    pub(crate) fn stop_gracefully(mut self) {
        let stopped = std::process::Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status().is_ok_and(|s| s.success());
        if stopped {
            let deadline = Instant::now() + Duration::from_secs(30);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = self.child.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        // Drop kills what did not stop.
    }
}

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub(crate) const KEY: &str = "olk_BenchKey000000000000000000000000000000000000";
pub(crate) const USER: &str = "usr_bench";

pub(crate) async fn spawn_server(fake_url: &str, dir: &std::path::Path, workers: usize) -> anyhow::Result<(Child, Duration)> {
    spawn_server_env(fake_url, dir, workers, &[]).await
}

/// As `spawn_server`, with more environment (e.g. `OPENLOOP_DATABASE_URL`).
pub(crate) async fn spawn_server_env(fake_url: &str, dir: &std::path::Path, workers: usize, extra: &[(&str, &str)]) -> anyhow::Result<(Child, Duration)> {
    use std::io::BufRead;
    let exe = std::env::current_exe()?;
    let started = Instant::now();
    let mut cmd = std::process::Command::new(exe);
    for (k, v) in extra {
        cmd.env(k, v);
    }
    let mut child = cmd
        .args(["serve", "--addr", "127.0.0.1:0", "--data-dir"])
        .arg(dir)
        .env("OPENLOOP_BOOTSTRAP_USER_ID", USER)
        .env("OPENLOOP_BOOTSTRAP_API_KEY", KEY)
        .env("OPENAI_BASE_URL", format!("{fake_url}/v1"))
        .env("OPENAI_API_KEY", "sk-bench")
        .env("OPENLOOP_RATE_LIMIT_REQUESTS", "0")
        .env("OPENLOOP_AGENT_MAX_CONCURRENCY", "100000")
        .env("OPENLOOP_ORG_MAX_CONCURRENCY", "100000")
        .env("OPENLOOP_AGENT_MAX_QUEUE", "100000")
        .env("OPENLOOP_WORKERS", workers.to_string())
        .env("OPENLOOP_LOG", "error")
        .stdout(std::process::Stdio::piped())
        .spawn()?;
    let stdout = child.stdout.take().ok_or_else(|| anyhow::anyhow!("no stdout"))?;
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Some(u) = line.strip_prefix("openloop listening on ") {
                let _ = tx.send(u.trim().to_string());
            }
        }
    });
    let base = tokio::task::spawn_blocking(move || rx.recv_timeout(Duration::from_secs(30))).await??;
    let client = reqwest::Client::new();
    loop {
        if let Ok(r) = client.get(format!("{base}/readyz")).send().await {
            if r.status().is_success() {
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    Ok((Child { child, base }, started.elapsed()))
}

/// Where a polled run stands.
pub(crate) enum Poll {
    Running,
    Done,
    Failed,
}

/// Asks a server about one run.
pub(crate) type Poller<'a, T> = dyn Fn(&T) -> futures::future::BoxFuture<'a, anyhow::Result<Poll>> + 'a;

/// Waits until every run is terminal; returns (failed, when the last one was seen
/// terminal). Runs are claimed in submission order, so the last one is polled first (one
/// request every 2 ms, not a flood competing with the runs measured); then every run is
/// checked, waiting on any that is not done yet.
pub(crate) async fn wait_all<T>(ids: &[T], poll: &Poller<'_, T>) -> anyhow::Result<(usize, Instant)> {
    if let Some(last) = ids.last() {
        wait_terminal(std::slice::from_ref(last), poll).await?;
    }
    let done = Instant::now();
    let (failed, waited) = wait_terminal(ids, poll).await?;
    Ok((failed, if waited { Instant::now() } else { done }))
}

/// Polls each run until terminal: (failed, whether any had to be waited for).
pub(crate) async fn wait_terminal<T>(ids: &[T], poll: &Poller<'_, T>) -> anyhow::Result<(usize, bool)> {
    let mut failed = 0;
    let mut waited = false;
    let deadline = Instant::now() + Duration::from_secs(600);
    for id in ids {
        loop {
            if Instant::now() > deadline {
                anyhow::bail!("a run did not finish within 10 minutes");
            }
            match poll(id).await? {
                Poll::Done => break,
                Poll::Failed => {
                    failed += 1;
                    break;
                }
                Poll::Running => {
                    waited = true;
                    tokio::time::sleep(Duration::from_millis(2)).await
                }
            }
        }
    }
    Ok((failed, waited))
}

/// Polls Openloop's `agent_status` (L2).
fn openloop_poller<'a>(client: &'a reqwest::Client, base: &'a str) -> Box<Poller<'a, String>> {
    Box::new(move |id: &String| {
        let url = format!("{base}/api/v1/agent_status/{id}");
        Box::pin(async move {
            let v: Value = client.get(url).bearer_auth(KEY).send().await?.json().await?;
            Ok(match v["state"].as_str() {
                Some("COMPLETED") => Poll::Done,
                Some("FAILED") => Poll::Failed,
                _ => Poll::Running,
            })
        })
    })
}

/// Submits `runs` start_agent calls from `clients` concurrent clients; ids in submission order.
async fn submit(client: &reqwest::Client, base: &str, body: &Value, runs: usize, clients: usize) -> anyhow::Result<Vec<String>> {
    let next = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for _ in 0..clients {
        let (client, base, body, next) = (client.clone(), base.to_string(), body.clone(), next.clone());
        tasks.push(tokio::spawn(async move {
            let mut out = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::SeqCst);
                if i >= runs {
                    break;
                }
                let r = client.post(format!("{base}/api/v1/start_agent")).bearer_auth(KEY).json(&body).send().await?;
                let status = r.status();
                let v: Value = r.json().await?;
                if status.as_u16() != 202 {
                    anyhow::bail!("start_agent answered {status}: {v}");
                }
                out.push((i, v["interaction_id"].as_str().unwrap_or_default().to_string()));
            }
            Ok::<_, anyhow::Error>(out)
        }));
    }
    let mut ids = Vec::new();
    for t in tasks {
        ids.extend(t.await??);
    }
    ids.sort();
    Ok(ids.into_iter().map(|(_, id)| id).collect())
}

/// A client that sends one `start_agent` every 5 ms and times each answer (202) while
/// other load runs. It is a separate client: its own thread, runtime and connection, so
/// what it times is the server's answer, not a wait for a turn in the bench's own runtime
/// (busy with the load clients and the fake provider's streams).
struct Probe {
    running: Arc<std::sync::atomic::AtomicBool>,
    thread: std::thread::JoinHandle<anyhow::Result<Vec<f64>>>,
}

impl Probe {
    fn start(base: &str, body: &Value) -> Probe {
        let running = Arc::new(std::sync::atomic::AtomicBool::new(true));
        let (base, body, flag) = (base.to_string(), body.clone(), running.clone());
        let thread = std::thread::spawn(move || -> anyhow::Result<Vec<f64>> {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
            rt.block_on(async move {
                let client = reqwest::Client::new();
                let mut lat = Vec::new();
                while flag.load(Ordering::SeqCst) {
                    let t = Instant::now();
                    let r = client.post(format!("{base}/api/v1/start_agent")).bearer_auth(KEY).json(&body).send().await?;
                    let ok = r.status().as_u16() == 202;
                    let _ = r.bytes().await?;
                    if ok {
                        lat.push(t.elapsed().as_secs_f64() * 1000.0);
                    }
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                Ok(lat)
            })
        });
        Probe { running, thread }
    }

    /// Stops the probe; its latencies in ms, sorted.
    fn finish(self) -> anyhow::Result<Vec<f64>> {
        self.running.store(false, Ordering::SeqCst);
        let mut lat = self.thread.join().map_err(|_| anyhow::anyhow!("the probing client panicked"))??;
        lat.sort_by(f64::total_cmp);
        Ok(lat)
    }
}

/// The steady-load phase: accept latency at a fixed arrival rate, with the runs executing.
struct Steady {
    rate: u32,
    /// Accept latencies (ms, sorted), each from its request's send to its answer.
    lat: Vec<f64>,
    /// The rate the client actually managed to send at.
    sent_per_sec: f64,
    /// From the last send until every run was terminal.
    drained_after_last_send: Duration,
    failed: usize,
    cpu_per_run_ms: f64,
    /// The bench process's own CPU per run meanwhile (client and fake provider share the cores).
    client_cpu_per_run_ms: f64,
}

/// Sends `rate` start_agent calls per second for `secs` seconds, each on its schedule
/// (open loop: a slow answer delays no later send, so no wait goes unmeasured), and
/// times each from its send to its 202. Then waits until every run is terminal.
async fn steady(client: &reqwest::Client, base: &str, body: &Value, rate: u32, secs: u32, pid: u32) -> anyhow::Result<Steady> {
    let n = rate as usize * secs as usize;
    let interval = Duration::from_secs(1) / rate;
    let url = format!("{base}/api/v1/start_agent");
    let cpu0 = cpu_time(pid);
    let client_cpu0 = cpu_time(std::process::id());
    let sched0 = sched_by_thread(pid);
    let t0 = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..n {
        tokio::time::sleep_until((t0 + interval * i as u32).into()).await;
        let (client, url, body) = (client.clone(), url.clone(), body.clone());
        tasks.spawn(async move {
            let sent = Instant::now();
            let r = client.post(url).bearer_auth(KEY).json(&body).send().await?;
            let status = r.status();
            let v: Value = r.json().await?;
            let ms = sent.elapsed().as_secs_f64() * 1000.0;
            if status.as_u16() != 202 {
                anyhow::bail!("start_agent answered {status}: {v}");
            }
            Ok::<_, anyhow::Error>((i, ms, v["interaction_id"].as_str().unwrap_or_default().to_string()))
        });
    }
    let last_send = Instant::now();
    let sent_per_sec = n as f64 / last_send.duration_since(t0).as_secs_f64();
    let mut answers = Vec::with_capacity(n);
    while let Some(r) = tasks.join_next().await {
        answers.push(r??);
    }
    answers.sort_by_key(|a| a.0);
    let ids: Vec<String> = answers.iter().map(|a| a.2.clone()).collect();
    let mut lat: Vec<f64> = answers.iter().map(|a| a.1).collect();
    lat.sort_by(f64::total_cmp);
    let (failed, done) = wait_all(&ids, &*openloop_poller(client, base)).await?;
    // CPU (ms) a process used since `before`, per run.
    let per_run =
        |pid: u32, before: Option<Duration>| cpu_time(pid).zip(before).map(|(b, a)| b.saturating_sub(a).as_secs_f64() * 1000.0 / n as f64).unwrap_or(f64::NAN);
    print_sched_delta(&sched0, &sched_by_thread(pid), n);
    Ok(Steady {
        rate,
        lat,
        sent_per_sec,
        drained_after_last_send: done.saturating_duration_since(last_send),
        failed,
        cpu_per_run_ms: per_run(pid, cpu0),
        client_cpu_per_run_ms: per_run(std::process::id(), client_cpu0),
    })
}

/// Prints (to stderr) the server's own timings: write transactions, and start_agent
/// requests from reaching the router to the response head, so a slow accept seen by a
/// client can be told apart from time spent before the server read it.
async fn print_server_metrics(client: &reqwest::Client, base: &str) {
    if let Ok(r) = client.get(format!("{base}/metrics")).bearer_auth(KEY).send().await {
        let text = r.text().await.unwrap_or_default();
        let wanted = |l: &&str| l.starts_with("openloop_db_write") || (l.starts_with("openloop_http_request_duration_seconds") && l.contains("start_agent"));
        for line in text.lines().filter(wanted) {
            eprintln!("  {line}");
        }
    }
}

/// One backlog measurement: `total` runs processed in rounds of `depth` queued up front.
struct Backlog {
    depth: usize,
    rounds: usize,
    runs: usize,
    /// Runs/s by the server's clock: each drain from its first run started to its last run
    /// finished (the runs' own `started_at`/`finished_at`).
    runs_per_sec: f64,
    /// Runs/s as the client saw them: from the drainer answering `/readyz` to the last run
    /// seen terminal. The drainer's workers start before it answers, so a short drain is
    /// partly done before this clock starts: not comparable across depths.
    client_runs_per_sec: f64,
    /// Runs/s over the first 500 runs of the first drain, by the server's clock.
    early_rate: f64,
    cpu_per_run_ms: f64,
    failed: usize,
    /// Accept latencies (ms, sorted) of a probing client during the drains, if probed.
    probe_lat: Vec<f64>,
}

/// Processes `total` runs in rounds: each round queues `depth` runs on a server without
/// workers, stops it, starts one with workers on the same data and times the drain. Every
/// depth does the same total work on a database that grows the same way, so the ratio
/// between depths isolates the cost of the backlog itself from the cost of a larger
/// database and more WAL checkpoints.
async fn backlog(fake_url: &str, depth: usize, total: usize, probe: bool, args: &BenchArgs) -> anyhow::Result<Backlog> {
    let dir = tempfile::tempdir()?;
    let client = reqwest::Client::builder().pool_max_idle_per_host(256).build()?;
    let rounds = total.div_ceil(depth).max(1);
    let mut agent_id = None;
    let (mut client_time, mut cpu_total, mut failed, mut runs) = (Duration::ZERO, Duration::ZERO, 0, 0);
    let mut server_span_micros = 0i64;
    let mut early_rate = f64::NAN;
    let mut probe_lat = Vec::new();
    for round in 0..rounds {
        let (queuer, _) = spawn_server(fake_url, dir.path(), 0).await?;
        // What starting a server costs (the drainer pays it too, before its drain).
        let startup_cpu = cpu_time(queuer.child.id()).unwrap_or_default();
        let agent = match &agent_id {
            Some(a) => a,
            None => agent_id.insert(create_agent(&client, &queuer.base).await?),
        };
        let body = json!({"gummie_id": agent, "message": "hello", "user_id": USER});
        let mut ids = Vec::with_capacity(depth);
        // In slices, so progress shows on long backlogs.
        while ids.len() < depth {
            let n = 5000.min(depth - ids.len());
            ids.extend(submit(&client, &queuer.base, &body, n, args.clients).await?);
            if depth > 5000 {
                eprintln!("  queued {}/{depth}", ids.len());
            }
        }
        // Every depth's drain starts from a checkpointed database: the queueing server
        // stops gracefully (a killed one left up to 64 MiB of WAL only in the deep case,
        // which the drain then recovered and copied while it was timed).
        queuer.stop_gracefully();
        let (drainer, _) = spawn_server(fake_url, dir.path(), args.workers).await?;
        let pid = drainer.child.id();
        let t0 = Instant::now();
        let poll = openloop_poller(&client, &drainer.base);
        let prober = probe.then(|| Probe::start(&drainer.base, &body));
        let (f, done) = wait_all(&ids, &*poll).await?;
        client_time += done.duration_since(t0);
        if let Some(p) = prober {
            probe_lat.extend(p.finish()?);
            print_server_metrics(&client, &drainer.base).await;
        }
        // All of the drainer's CPU since it started, less a start-up: its workers begin
        // before it answers /readyz, so CPU read from then would miss part of a drain.
        cpu_total += cpu_time(pid).unwrap_or_default().saturating_sub(startup_cpu);
        failed += f;
        runs += ids.len();
        drop(poll);
        drainer.stop_gracefully();
        let times = run_times(dir.path(), &ids).await?;
        server_span_micros += span(&times);
        if round == 0 {
            // The rate early in the first drain, to compare with the whole.
            let early = &times[..times.len().min(500)];
            early_rate = early.len() as f64 / (span(early) as f64 / 1e6);
        }
        if rounds > 1 && (round + 1) % 10 == 0 {
            eprintln!("  round {}/{rounds} drained", round + 1);
        }
    }
    Ok(Backlog {
        depth,
        rounds,
        runs,
        runs_per_sec: runs as f64 / (server_span_micros as f64 / 1e6),
        client_runs_per_sec: runs as f64 / client_time.as_secs_f64(),
        early_rate,
        cpu_per_run_ms: cpu_total.as_secs_f64() * 1000.0 / runs as f64,
        failed,
        probe_lat: {
            probe_lat.sort_by(f64::total_cmp);
            probe_lat
        },
    })
}

/// Each session's run as (started_at, finished_at) in µs, in the order given, read from the
/// stopped server's database.
async fn run_times(dir: &std::path::Path, sessions: &[String]) -> anyhow::Result<Vec<(i64, i64)>> {
    use store::SessionStore;
    let store = store::sqlite::SqliteStore::open(&format!("sqlite://{}", dir.join("openloop.db").display())).await?;
    let mut out = Vec::with_capacity(sessions.len());
    for id in sessions {
        let run = match store.session(id).await?.and_then(|s| s.current_run_id) {
            Some(run) => store.run(&run).await?,
            None => None,
        };
        match run.and_then(|r| r.started_at.zip(r.finished_at)) {
            Some(t) => out.push(t),
            None => anyhow::bail!("session {id} has no finished run"),
        }
    }
    store.close().await;
    Ok(out)
}

/// From the first start to the last finish, in µs (at least 1).
fn span(times: &[(i64, i64)]) -> i64 {
    let first = times.iter().map(|t| t.0).min().unwrap_or(0);
    let last = times.iter().map(|t| t.1).max().unwrap_or(0);
    (last - first).max(1)
}

const LIST_SAMPLES: usize = 100;
const LIST_PAGE: usize = 5;

/// Page costs (p50, ms) of S3 and A1 over a seeded data set.
struct Listing {
    sessions: usize,
    s3_ms: f64,
    s3_deep_ms: f64,
    s3_search_ms: f64,
    a1_ms: f64,
}

/// Seeds `n` sessions (each with a user message and an artifact; every other one mentions
/// "needle") through the store, next to a server without workers, then times pages of
/// 5 (so 10 sessions fill every page measured: first, second, search, artifacts).
async fn listing(fake_url: &str, n: usize) -> anyhow::Result<Listing> {
    use store::{ArtifactStore, SessionStore};
    let dir = tempfile::tempdir()?;
    let client = reqwest::Client::builder().pool_max_idle_per_host(16).build()?;
    let (server, _) = spawn_server(fake_url, dir.path(), 0).await?;
    let base = server.base.clone();
    let agent_id = create_agent(&client, &base).await?;
    let first: Value =
        client.post(format!("{base}/api/v1/agents/{agent_id}/sessions")).bearer_auth(KEY).json(&json!({"input": "hello"})).send().await?.json().await?;
    let first_id = first["session"]["id"].as_str().ok_or_else(|| anyhow::anyhow!("no session: {first}"))?.to_string();
    let store = Arc::new(store::sqlite::SqliteStore::open(&format!("sqlite://{}", dir.path().join("openloop.db").display())).await?);
    let template = store.session(&first_id).await?.ok_or_else(|| anyhow::anyhow!("seed session missing"))?;
    let seeded = Arc::new(AtomicUsize::new(1));
    let mut tasks = Vec::new();
    for _ in 0..32 {
        let (store, template, seeded, agent_id) = (store.clone(), template.clone(), seeded.clone(), agent_id.clone());
        tasks.push(tokio::spawn(async move {
            loop {
                let i = seeded.fetch_add(1, Ordering::SeqCst);
                if i >= n {
                    return Ok::<_, anyhow::Error>(());
                }
                let now = wire::time::now_micros();
                let sid = wire::ids::new_id("ses");
                let s = store::SessionRecord { id: sid.clone(), name: Some(format!("session {i}")), created_at: now, updated_at: now, ..template.clone() };
                let text = if i % 2 == 0 { format!("find the needle {i}") } else { format!("hello {i}") };
                let message = store::MessageRecord {
                    id: wire::ids::new_id("msg"),
                    session_id: sid.clone(),
                    ord: 0,
                    run_id: None,
                    role: "user".into(),
                    content: Some(text),
                    parts: json!([]),
                    creator_id: Some(USER.into()),
                    created_at: now,
                };
                let run = store::RunRecord {
                    id: wire::ids::new_id("run"),
                    session_id: sid.clone(),
                    agent_id: agent_id.clone(),
                    organization_id: template.organization_id.clone(),
                    user_message_id: message.id.clone(),
                    assistant_message_id: None,
                    state: store::RunState::Queued,
                    attempts: 0,
                    cancel_requested: false,
                    finish_reason: None,
                    error_message: None,
                    usage: json!({}),
                    created_at: now,
                    started_at: None,
                    finished_at: None,
                };
                let turn = store::NewTurn { message, run, admit: Box::new(|_| Ok((store::RunState::Queued, vec![]))), dequeue: None };
                store.create_session_with_turn(&s, turn).await?.map_err(|r| anyhow::anyhow!("seed refused: {r:?}"))?;
                let art = store::ArtifactRecord {
                    id: wire::ids::new_id("art"),
                    session_id: sid,
                    agent_id: agent_id.clone(),
                    creator_user_id: USER.into(),
                    stored_filename: format!("report-{i}.txt"),
                    custom_name: None,
                    current_version_id: String::new(),
                    password_hash: None,
                    deleted_at: None,
                    created_at: now,
                };
                let ver = store::ArtifactVersionRecord {
                    id: wire::ids::new_id("ver"),
                    artifact_id: String::new(),
                    major_version: 0,
                    filename: format!("report-{i}.txt"),
                    media_type: "text/plain".into(),
                    size: 2,
                    blob_key: format!("artifacts/none-{i}"),
                    etag: "\"0\"".into(),
                    created_at: now,
                };
                store.add_artifact_version(&art, &ver).await?;
                if i % 20000 == 0 {
                    eprintln!("  seeded {i}/{n}");
                }
            }
        }));
    }
    for t in tasks {
        t.await??;
    }
    store.close().await;
    let time = |path: String| {
        let (client, base) = (client.clone(), base.clone());
        async move {
            let mut lat = Vec::with_capacity(LIST_SAMPLES);
            for i in 0..LIST_SAMPLES + 10 {
                let t = Instant::now();
                let r = client.get(format!("{base}{path}")).bearer_auth(KEY).send().await?;
                let ok = r.status().is_success();
                let body = r.bytes().await?;
                if !ok {
                    anyhow::bail!("GET {path} failed: {}", String::from_utf8_lossy(&body));
                }
                if i >= 10 {
                    lat.push(t.elapsed().as_secs_f64() * 1000.0);
                }
            }
            lat.sort_by(f64::total_cmp);
            Ok::<_, anyhow::Error>(percentile(&lat, 50.0))
        }
    };
    // The cursor of page 2: keyset paging costs the same at any depth.
    let sessions_path = format!("/api/v1/agents/{agent_id}/sessions?page_size={LIST_PAGE}");
    let v: Value = client.get(format!("{base}{sessions_path}")).bearer_auth(KEY).send().await?.json().await?;
    let cursor = v["next_cursor"].as_str().unwrap_or_default().to_string();
    let s3_ms = time(sessions_path.clone()).await?;
    let s3_deep_ms = time(format!("{sessions_path}&cursor={cursor}")).await?;
    let s3_search_ms = time(format!("{sessions_path}&search=needle")).await?;
    let a1_ms = time(format!("/api/v1/agents/{agent_id}/artifacts?page_size={LIST_PAGE}")).await?;
    drop(server);
    Ok(Listing { sessions: n, s3_ms, s3_deep_ms, s3_search_ms, a1_ms })
}

pub(crate) async fn create_agent(client: &reqwest::Client, base: &str) -> anyhow::Result<String> {
    let agent: Value = client
        .post(format!("{base}/api/v1/agents"))
        .bearer_auth(KEY)
        .json(&json!({"name": "bench", "model_name": "openai/bench-model"}))
        .send()
        .await?
        .json()
        .await?;
    Ok(agent["agent"]["id"].as_str().ok_or_else(|| anyhow::anyhow!("agent creation failed: {agent}"))?.to_string())
}

pub async fn run(args: BenchArgs) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let fake_url = format!("http://{}", listener.local_addr()?);
    let fake = Router::new().route("/v1/chat/completions", post(fake_chat)).route("/v1/models", get(fake_models));
    let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
        let _ = tcp.set_nodelay(true);
    });
    tokio::spawn(async move {
        let _ = axum::serve(listener, fake).await;
    });

    let dir = tempfile::tempdir()?;
    eprintln!("bench: starting openloop serve (workers={})…", args.workers);
    let (mut server, cold_start) = spawn_server(&fake_url, dir.path(), args.workers).await?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let idle_rss = rss_kib(server.child.id());
    // Resident memory splits into the heap and stacks (anonymous) and the pages of the
    // binary's code and data that start-up touched (file-backed, shared, reclaimable).
    let idle_rss_parts = (status_kib(server.child.id(), "RssAnon:"), status_kib(server.child.id(), "RssFile:"));
    let base = server.base.clone();
    let client = reqwest::Client::builder().pool_max_idle_per_host(256).build()?;
    let agent_id = create_agent(&client, &base).await?;
    let body = json!({"gummie_id": agent_id, "message": "hello", "user_id": USER});

    // 1. Accept latency, one request at a time.
    eprintln!("bench: accept latency over {} sequential start_agent calls…", args.latency_requests);
    let mut lat = Vec::with_capacity(args.latency_requests);
    let mut ids = Vec::new();
    for i in 0..args.latency_requests + 50 {
        let t = Instant::now();
        let r = client.post(format!("{base}/api/v1/start_agent")).bearer_auth(KEY).json(&body).send().await?;
        let status = r.status();
        let v: Value = r.json().await?;
        let dt = t.elapsed().as_secs_f64() * 1000.0;
        if status.as_u16() != 202 {
            anyhow::bail!("start_agent answered {status}: {v}");
        }
        if i >= 50 {
            lat.push(dt);
        }
        ids.push(v["interaction_id"].as_str().unwrap_or_default().to_string());
        if i % 200 == 0 {
            eprintln!("  {i}/{}", args.latency_requests + 50);
        }
    }
    wait_all(&ids, &*openloop_poller(&client, &base)).await?;
    lat.sort_by(f64::total_cmp);

    // 2. Throughput: accepted → completed, with one client timing start_agent meanwhile.
    eprintln!("bench: {} runs with {} concurrent clients…", args.runs, args.clients);
    let pid = server.child.id();
    let cpu0 = cpu_time(pid);
    let t0 = Instant::now();
    let probe = Probe::start(&base, &body);
    let ids = submit(&client, &base, &body, args.runs, args.clients).await?;
    let accepted_in = t0.elapsed();
    let (failed, done) = wait_all(&ids, &*openloop_poller(&client, &base)).await?;
    let total = done.duration_since(t0);
    let cpu = cpu_time(pid).zip(cpu0).map(|(b, a)| b.saturating_sub(a));
    let probe_lat = probe.finish()?;
    let rate = args.runs as f64 / total.as_secs_f64();
    // Includes the probe's few runs; they are < 1 % of the total at the defaults.
    let cpu_per_run = cpu.map(|c| c.as_secs_f64() * 1000.0 / args.runs as f64).unwrap_or(f64::NAN);
    let busy_rss = rss_kib(server.child.id());
    print_server_metrics(&client, &base).await;

    // 2b. Accept latency at a steady rate while the runs it starts execute.
    let steady_fig = if args.steady_secs > 0 && args.steady_rate > 0 {
        eprintln!("bench: {} start_agent/s for {} s (open loop), every accept timed…", args.steady_rate, args.steady_secs);
        let fig = steady(&client, &base, &body, args.steady_rate, args.steady_secs, pid).await?;
        print_server_metrics(&client, &base).await;
        Some(fig)
    } else {
        None
    };

    // 3. Session create accept latency (S1 with input, 202).
    eprintln!("bench: session create accept latency…");
    let mut slat = Vec::new();
    for i in 0..args.latency_requests.min(500) + 20 {
        let t = Instant::now();
        let r = client.post(format!("{base}/api/v1/agents/{agent_id}/sessions")).bearer_auth(KEY).json(&json!({"input": "hello"})).send().await?;
        let ok = r.status().as_u16() == 202;
        let _ = r.bytes().await?;
        if !ok {
            anyhow::bail!("session create did not answer 202");
        }
        if i >= 20 {
            slat.push(t.elapsed().as_secs_f64() * 1000.0);
        }
    }
    slat.sort_by(f64::total_cmp);

    // 4. Added latency per streamed event: paced provider chunks read directly vs
    // through Openloop's SSE, both against the fake's recorded send instants.
    eprintln!("bench: streaming latency ({PACED_CHUNKS} paced events, direct vs through Openloop)…");
    let direct = stream_direct(&client, &fake_url).await?;
    let (via, streamed_session) = stream_via_openloop(&client, &base, &agent_id).await?;
    let (delta_events, bytes_per_delta) = event_bytes(&dir.path().join("openloop.db"), &streamed_session)?;

    // 5. Cost flat in the backlog: runs queued up front, then drained.
    let mut backlogs = Vec::new();
    let backlog_total = args.backlog.iter().copied().max().unwrap_or(0);
    for &n in args.backlog.iter().filter(|n| **n > 0) {
        eprintln!("bench: {backlog_total} runs in rounds of {n} queued up front, each drained…");
        backlogs.push(backlog(&fake_url, n, backlog_total, false, &args).await?);
    }
    // Accepts while runs execute at full speed without other accepts competing: the
    // throughput phase's 32 closed-loop clients keep 32 accepts in flight, so any accept
    // there waits behind ~31 others (Little's law: 32 ÷ the accept rate).
    let probed = match backlog_total.min(10_000) {
        0 => None,
        n => {
            eprintln!("bench: {n} runs queued up front, drained while a client times start_agent…");
            Some(backlog(&fake_url, n, n, true, &args).await?)
        }
    };

    // 6. Listing cost flat in the number of sessions.
    let mut listings = Vec::new();
    for &n in args.list_sessions.iter().filter(|n| **n > 0) {
        eprintln!("bench: listing pages with {n} sessions (each with a message and an artifact)…");
        listings.push(listing(&fake_url, n).await?);
    }

    // 7. The same throughput phase against LangGraph's in-memory server.
    let langgraph = match &args.langgraph {
        Some(bin) => {
            eprintln!("bench: LangGraph in-memory server, {} runs with {} clients…", args.runs, args.clients);
            Some(crate::bench_langgraph::throughput_with_jobs(bin, &args.langgraph_graph, &fake_url, args.runs, args.clients, args.workers).await?)
        }
        None => None,
    };

    // 8. Flow scheduling overhead and loops.
    let flow_fig = if args.flow_nodes > 0 {
        eprintln!("bench: flows ({} template nodes; loops of {:?} items)…", args.flow_nodes, args.loop_items);
        Some(crate::bench_flows::flows(&fake_url, args.flow_nodes, &args.loop_items, &args.file_loop_lines).await?)
    } else {
        None
    };

    // 9. A large credit_logs export.
    let export_fig = if args.export_rows > 0 {
        eprintln!("bench: credit_logs export of {} ledger rows…", args.export_rows);
        Some(crate::bench_exports::exports(&fake_url, args.export_rows).await?)
    } else {
        None
    };

    // 10. Artifact download vs cat.
    let download = if args.download_mib > 0 {
        eprintln!("bench: {} MiB artifact download vs cat…", args.download_mib);
        Some(download_bench(&client, &base, &agent_id, dir.path(), server.child.id(), args.download_mib).await?)
    } else {
        None
    };

    // 11. SQLite vs PostgreSQL, one vs two replicas.
    let replica_figs = match (&args.postgres, args.replica_runs) {
        (Some(admin), n) if n > 0 => {
            // The main server's workers would compete for the same cores.
            let _ = server.child.kill();
            let _ = server.child.wait();
            Some(crate::bench_replicas::replicas(&fake_url, admin, n, args.clients, args.workers).await?)
        }
        _ => None,
    };

    println!("| figure | target | measured |");
    println!("| --- | --- | --- |");
    println!(
        "| start_agent accept latency, sequential, n={} | p50 ≤ 1 ms, p99 ≤ 5 ms | p50 {:.3} ms, p99 {:.3} ms, max {:.3} ms |",
        lat.len(),
        percentile(&lat, 50.0),
        percentile(&lat, 99.0),
        lat.last().copied().unwrap_or(f64::NAN)
    );
    println!(
        "| runs accepted → completed, {} runs, {} clients, {} workers | ≥ 2,000 /s | {:.0} runs/s ({} accepted in {:.2} s, all terminal after {:.2} s, {} failed) |",
        args.runs,
        args.clients,
        args.workers,
        rate,
        args.runs,
        accepted_in.as_secs_f64(),
        total.as_secs_f64(),
        failed
    );
    println!("| server CPU per run (user + system, /proc), same phase | ≤ 1 ms | {cpu_per_run:.2} ms |");
    println!(
        "| start_agent accept latency while those runs execute (one probing client, n={}) | p50 ≤ 1 ms, p99 ≤ 5 ms | {} |",
        probe_lat.len(),
        p50_p99(&probe_lat)
    );
    if let Some(f) = &steady_fig {
        println!(
            "| start_agent accept latency at a steady {} runs/s while they execute (open loop, {} runs, every accept timed) | p50 ≤ 1 ms, p99 ≤ 5 ms | {}, max {:.3} ms (sent at {:.0}/s; all terminal {:.0} ms after the last send, {} failed; CPU per run: server {:.2} ms, bench client and provider {:.2} ms) |",
            f.rate,
            f.lat.len(),
            p50_p99(&f.lat),
            f.lat.last().copied().unwrap_or(f64::NAN),
            f.sent_per_sec,
            f.drained_after_last_send.as_secs_f64() * 1000.0,
            f.failed,
            f.cpu_per_run_ms,
            f.client_cpu_per_run_ms
        );
    }
    if let Some(p) = &probed {
        println!(
            "| start_agent accept latency while {} queued runs execute (one probing client during the drain, n={}) | p50 ≤ 1 ms, p99 ≤ 5 ms | {} (the drain meanwhile: {:.0} runs/s, {} failed) |",
            p.runs,
            p.probe_lat.len(),
            p50_p99(&p.probe_lat),
            p.runs_per_sec,
            p.failed
        );
    }
    for b in &backlogs {
        println!(
            "| {} runs as {} × {} queued up front, each drained by {} workers | flat in backlog | {:.0} runs/s by the server's clock (first 500 of the first drain: {:.0} runs/s; seen by the client: {:.0} runs/s), CPU {:.2} ms per run, {} failed |",
            b.runs, b.rounds, b.depth, args.workers, b.runs_per_sec, b.early_rate, b.client_runs_per_sec, b.cpu_per_run_ms, b.failed
        );
    }
    if let Some((small, large)) = backlogs.first().zip(backlogs.last()).filter(|(a, b)| a.depth != b.depth) {
        println!(
            "| backlog ratio ({} vs {} queued, same total work) | within 20 % | runs/s {:.2}× (seen by the client {:.2}×), CPU per run {:.2}× |",
            large.depth,
            small.depth,
            large.runs_per_sec / small.runs_per_sec,
            large.client_runs_per_sec / small.client_runs_per_sec,
            large.cpu_per_run_ms / small.cpu_per_run_ms
        );
    }
    // Retention: every streamed token is one stored text-delta event, kept until
    // OPENLOOP_STREAM_RETENTION_SECS (default 24 h) after its session's last run ended.
    println!(
        "| event log per streamed token ({} text-delta events of the paced stream) | reported | {:.0} bytes per event (row columns); at 100 tokens/s sustained and the 24 h default retention: {:.2} GiB |",
        delta_events,
        bytes_per_delta,
        bytes_per_delta * 100.0 * 86400.0 / (1u64 << 30) as f64
    );
    if let Some(lg) = &langgraph {
        println!(
            "| LangGraph in-memory server (langgraph-api {}, langgraph {}), {} runs, {} clients, {} jobs per worker, same client and provider | — | {:.0} runs/s ({} accepted in {:.2} s, all terminal after {:.2} s, {} failed), CPU {:.2} ms per run; sequential accept n={} p50 {:.3} ms / p99 {:.3} ms |",
            lg.api_version,
            lg.langgraph_version,
            lg.runs,
            lg.clients,
            lg.jobs_per_worker,
            lg.runs_per_sec,
            lg.runs,
            lg.accepted_in.as_secs_f64(),
            lg.total.as_secs_f64(),
            lg.failed,
            lg.cpu_per_run_ms,
            lg.accept_n,
            lg.accept_p50_ms,
            lg.accept_p99_ms
        );
        println!(
            "| Openloop ÷ LangGraph, same run | ≥ 10× | runs/s {:.1}×, CPU per run {:.2}× less |",
            rate / lg.runs_per_sec,
            lg.cpu_per_run_ms / cpu_per_run
        );
    }
    for l in &listings {
        println!(
            "| S3/A1 page of {} with {} sessions (p50 of {} sequential requests) | flat in data size | S3 {:.2} ms, S3 page 2 {:.2} ms, S3 search {:.2} ms, A1 {:.2} ms |",
            LIST_PAGE, l.sessions, LIST_SAMPLES, l.s3_ms, l.s3_deep_ms, l.s3_search_ms, l.a1_ms
        );
    }
    if let Some((small, large)) = listings.first().zip(listings.last()).filter(|(a, b)| a.sessions != b.sessions) {
        println!(
            "| listing ratio ({} vs {} sessions) | within 2× | S3 {:.2}×, S3 page 2 {:.2}×, S3 search {:.2}×, A1 {:.2}× |",
            large.sessions,
            small.sessions,
            large.s3_ms / small.s3_ms,
            large.s3_deep_ms / small.s3_deep_ms,
            large.s3_search_ms / small.s3_search_ms,
            large.a1_ms / small.a1_ms
        );
    }
    println!(
        "| session create (S1 with input) accept latency, n={} | p50 ≤ 1 ms, p99 ≤ 5 ms | p50 {:.3} ms, p99 {:.3} ms |",
        slat.len(),
        percentile(&slat, 50.0),
        percentile(&slat, 99.0)
    );
    println!(
        "| latency per streamed event, {} events paced {} ms | added p99 ≤ 1 ms | provider direct p50 {:.3} / p99 {:.3} ms; through Openloop p50 {:.3} / p99 {:.3} ms; added p50 {:.3} / p99 {:.3} ms |",
        PACED_CHUNKS,
        PACE.as_millis(),
        percentile(&direct, 50.0),
        percentile(&direct, 99.0),
        percentile(&via, 50.0),
        percentile(&via, 99.0),
        percentile(&via, 50.0) - percentile(&direct, 50.0),
        percentile(&via, 99.0) - percentile(&direct, 99.0)
    );
    if let Some(f) = &flow_fig {
        crate::bench_flows::print(f);
    }
    if let Some(e) = &export_fig {
        crate::bench_exports::print(e);
    }
    if let Some(r) = &replica_figs {
        crate::bench_replicas::print(r);
    }
    if let Some(d) = &download {
        println!(
            "| artifact download, {} MiB over loopback | ≥ 0.9× cat; RSS flat | {:.0} MiB/s; `cat > /dev/null` {:.0} MiB/s ({:.2}×); `cat | cat > /dev/null` {:.0} MiB/s ({:.2}×); server RSS before {:.1} MiB, peak (VmHWM) {:.1} MiB |",
            d.mib,
            d.http_mib_s,
            d.cat_mib_s,
            d.http_mib_s / d.cat_mib_s,
            d.cat_pipe_mib_s,
            d.http_mib_s / d.cat_pipe_mib_s,
            d.rss_before_mib,
            d.rss_peak_mib
        );
    }
    println!("| cold start to /readyz (process spawn → 200) | ≤ 200 ms | {:.1} ms |", cold_start.as_secs_f64() * 1000.0);
    let mib = |k: u64| format!("{:.1} MiB", k as f64 / 1024.0);
    let parts = match idle_rss_parts {
        (Some(anon), Some(file)) => format!(" ({} anonymous, {} mapped from the binary and libraries)", mib(anon), mib(file)),
        _ => String::new(),
    };
    println!("| idle RSS after start | ≤ 30 MiB | {}{parts} |", idle_rss.map(mib).unwrap_or_else(|| "n/a".into()));
    println!("| RSS after the throughput run | — | {} |", busy_rss.map(|k| format!("{:.1} MiB", k as f64 / 1024.0)).unwrap_or_else(|| "n/a".into()));
    drop(server);
    Ok(())
}

fn parse_delta_index(delta: &str) -> Vec<usize> {
    delta.split(';').filter_map(|x| x.trim().parse().ok()).collect()
}

fn latencies(id: &str, recv: Vec<(usize, Instant)>) -> Vec<f64> {
    let m = sent().lock().map(|m| m.clone()).unwrap_or_default();
    let mut out: Vec<f64> =
        recv.iter().filter_map(|(i, t)| m.get(&(id.to_string(), *i)).map(|s| t.saturating_duration_since(*s).as_secs_f64() * 1000.0)).collect();
    out.sort_by(f64::total_cmp);
    out
}

/// Reads an SSE body line by line, calling `on_data` with each `data:` payload.
async fn read_sse(resp: reqwest::Response, mut on_data: impl FnMut(&str) -> bool) -> anyhow::Result<()> {
    let mut stream = resp.bytes_stream();
    let mut buf = String::new();
    while let Some(chunk) = stream.next().await {
        buf.push_str(&String::from_utf8_lossy(&chunk?));
        while let Some(pos) = buf.find('\n') {
            let line: String = buf.drain(..=pos).collect();
            if let Some(d) = line.trim_end().strip_prefix("data: ") {
                if !on_data(d) {
                    return Ok(());
                }
            }
        }
    }
    Ok(())
}

async fn stream_direct(client: &reqwest::Client, fake_url: &str) -> anyhow::Result<Vec<f64>> {
    let id = format!("direct{}", rand_suffix());
    let resp = client
        .post(format!("{fake_url}/v1/chat/completions"))
        .json(&json!({"model": "bench-model", "stream": true, "messages": [{"role": "user", "content": format!("paced:{id}")}]}))
        .send()
        .await?;
    let mut recv = Vec::new();
    read_sse(resp, |d| {
        if d == "[DONE]" {
            return false;
        }
        if let Ok(v) = serde_json::from_str::<Value>(d) {
            if let Some(c) = v["choices"][0]["delta"]["content"].as_str() {
                let now = Instant::now();
                recv.extend(parse_delta_index(c).into_iter().map(|i| (i, now)));
            }
        }
        true
    })
    .await?;
    Ok(latencies(&id, recv))
}

async fn stream_via_openloop(client: &reqwest::Client, base: &str, agent_id: &str) -> anyhow::Result<(Vec<f64>, String)> {
    let id = format!("via{}", rand_suffix());
    let resp = client
        .post(format!("{base}/api/v1/agents/{agent_id}/sessions"))
        .bearer_auth(KEY)
        .json(&json!({"input": format!("paced:{id}"), "stream": true}))
        .send()
        .await?;
    let mut recv = Vec::new();
    let mut session_id = String::new();
    read_sse(resp, |d| {
        if let Ok(v) = serde_json::from_str::<Value>(d) {
            if v["type"] == "start" {
                session_id = v["session_id"].as_str().unwrap_or_default().to_string();
            }
            if v["type"] == "text-delta" {
                let now = Instant::now();
                recv.extend(parse_delta_index(v["delta"].as_str().unwrap_or("")).into_iter().map(|i| (i, now)));
            }
            if v["final"] == true {
                return false;
            }
        }
        true
    })
    .await?;
    Ok((latencies(&id, recv), session_id))
}

/// Stored size of a session's streamed text: (text-delta events, bytes per event). The
/// bytes are the row's columns (events is a WITHOUT ROWID table keyed by session and seq);
/// B-tree page overhead comes on top.
fn event_bytes(db: &std::path::Path, session_id: &str) -> anyhow::Result<(i64, f64)> {
    let c = rusqlite::Connection::open_with_flags(db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)?;
    let (n, bytes): (i64, Option<i64>) = c.query_row(
        "SELECT COUNT(*), SUM(length(data) + length(session_id) + COALESCE(length(run_id), 0) + length(type) + 16) FROM events \
         WHERE session_id = ? AND type = 'text-delta'",
        [session_id],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?;
    Ok((n, bytes.unwrap_or(0) as f64 / n.max(1) as f64))
}

fn rand_suffix() -> String {
    format!("{}", std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0))
}

struct DownloadFigures {
    mib: u64,
    http_mib_s: f64,
    cat_mib_s: f64,
    cat_pipe_mib_s: f64,
    rss_before_mib: f64,
    rss_peak_mib: f64,
}

fn hwm_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status.lines().find(|l| l.starts_with("VmHWM:"))?.split_whitespace().nth(1)?.parse().ok()
}

/// Seeds an artifact of `mib` MiB straight into the server's data directory (store +
/// local blobs, as `write_artifact` would), then downloads it through the signed URL and
/// compares with `cat` of the same blob file.
async fn download_bench(
    client: &reqwest::Client,
    base: &str,
    agent_id: &str,
    data_dir: &std::path::Path,
    pid: u32,
    mib: u64,
) -> anyhow::Result<DownloadFigures> {
    use store::ArtifactStore;
    let created: Value = client.post(format!("{base}/api/v1/agents/{agent_id}/sessions")).bearer_auth(KEY).json(&json!({})).send().await?.json().await?;
    let session_id = created["session"]["id"].as_str().ok_or_else(|| anyhow::anyhow!("no session"))?.to_string();
    let blobs = blobs::BlobStore::open(blobs::BlobConfig::Local { root: data_dir.join("blobs") }).await.map_err(|e| anyhow::anyhow!("{e}"))?;
    let key = format!("artifacts/bench-{}", rand_suffix());
    let chunk = bytes::Bytes::from(vec![b'x'; 1 << 20]);
    let chunks = futures::stream::iter((0..mib).map(move |_| Ok::<_, std::io::Error>(chunk.clone())));
    let meta = blobs.put_stream(&key, chunks, mib << 20).await.map_err(|e| anyhow::anyhow!("{e}"))?;
    let store = store::sqlite::SqliteStore::open(&format!("sqlite://{}", data_dir.join("openloop.db").display())).await?;
    let now = wire::time::now_micros();
    let art = store::ArtifactRecord {
        id: wire::ids::new_id("art"),
        session_id,
        agent_id: agent_id.to_string(),
        creator_user_id: USER.into(),
        stored_filename: "big.bin".into(),
        custom_name: None,
        current_version_id: String::new(),
        password_hash: None,
        deleted_at: None,
        created_at: now,
    };
    let ver = store::ArtifactVersionRecord {
        id: wire::ids::new_id("ver"),
        artifact_id: String::new(),
        major_version: 0,
        filename: "big.bin".into(),
        media_type: "application/octet-stream".into(),
        size: meta.size as i64,
        blob_key: key.clone(),
        etag: meta.etag,
        created_at: now,
    };
    let (art, _) = store.add_artifact_version(&art, &ver).await?;
    store.close().await;
    let dl: Value = client.get(format!("{base}/api/v1/artifacts/{}/download", art.id)).bearer_auth(KEY).send().await?.json().await?;
    let url = dl["download_url"].as_str().ok_or_else(|| anyhow::anyhow!("no download_url: {dl}"))?.to_string();
    let rss_before = rss_kib(pid).unwrap_or(0) as f64 / 1024.0;
    // Warm the page cache for both readers equally.
    let path = data_dir.join("blobs").join(&key);
    let _ = tokio::process::Command::new("cat").arg(&path).stdout(std::process::Stdio::null()).status().await?;
    let t = Instant::now();
    let status = tokio::process::Command::new("sh").arg("-c").arg(format!("cat '{}' > /dev/null", path.display())).status().await?;
    let cat_s = t.elapsed().as_secs_f64();
    if !status.success() {
        anyhow::bail!("cat failed");
    }
    // cat into a pipe: the bytes cross a kernel buffer once, as a download's do.
    let t = Instant::now();
    let _ = tokio::process::Command::new("sh").arg("-c").arg(format!("cat '{}' | cat > /dev/null", path.display())).status().await?;
    let cat_pipe_s = t.elapsed().as_secs_f64();
    let t = Instant::now();
    let resp = reqwest::get(&url).await?;
    if !resp.status().is_success() {
        anyhow::bail!("download answered {}", resp.status());
    }
    let mut got: u64 = 0;
    let mut stream = resp.bytes_stream();
    while let Some(c) = stream.next().await {
        got += c?.len() as u64;
    }
    let http_s = t.elapsed().as_secs_f64();
    if got != mib << 20 {
        anyhow::bail!("downloaded {got} bytes, expected {}", mib << 20);
    }
    let peak = hwm_kib(pid).unwrap_or(0) as f64 / 1024.0;
    Ok(DownloadFigures {
        mib,
        http_mib_s: mib as f64 / http_s,
        cat_mib_s: mib as f64 / cat_s,
        cat_pipe_mib_s: mib as f64 / cat_pipe_s,
        rss_before_mib: rss_before,
        rss_peak_mib: peak,
    })
}
