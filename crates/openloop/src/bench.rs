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
    /// OPENLOOP_WORKERS for the benchmarked server.
    #[arg(long, default_value_t = 64)]
    pub workers: usize,
}

/// Zero-latency fake: a fixed two-chunk streamed reply with usage.
async fn fake_chat(Json(req): Json<Value>) -> Response {
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

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let idx = ((p / 100.0) * (sorted.len() as f64 - 1.0)).round() as usize;
    sorted[idx.min(sorted.len() - 1)]
}

fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status.lines().find(|l| l.starts_with("VmRSS:"))?.split_whitespace().nth(1)?.parse().ok()
}

struct Child {
    child: std::process::Child,
    base: String,
}

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

const KEY: &str = "olk_BenchKey000000000000000000000000000000000000";
const USER: &str = "usr_bench";

async fn spawn_server(fake_url: &str, dir: &std::path::Path, workers: usize) -> anyhow::Result<(Child, Duration)> {
    use std::io::BufRead;
    let exe = std::env::current_exe()?;
    let started = Instant::now();
    let mut child = std::process::Command::new(exe)
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

/// Waits until every run is terminal. Runs are claimed in submission order, so ids are
/// checked one at a time in that order: the poller adds one request at a time, not a
/// flood that would compete with the runs being measured.
async fn wait_all(client: &reqwest::Client, base: &str, ids: Vec<String>) -> anyhow::Result<usize> {
    let mut failed = 0;
    let deadline = Instant::now() + Duration::from_secs(600);
    for id in ids {
        loop {
            if Instant::now() > deadline {
                anyhow::bail!("run {id} did not finish within 10 minutes");
            }
            let v: Value = client.get(format!("{base}/api/v1/agent_status/{id}")).bearer_auth(KEY).send().await?.json().await?;
            match v["state"].as_str() {
                Some("COMPLETED") => break,
                Some("FAILED") => {
                    failed += 1;
                    break;
                }
                _ => tokio::time::sleep(Duration::from_millis(2)).await,
            }
        }
    }
    Ok(failed)
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
    let (server, cold_start) = spawn_server(&fake_url, dir.path(), args.workers).await?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let idle_rss = rss_kib(server.child.id());
    let base = server.base.clone();
    let client = reqwest::Client::builder().pool_max_idle_per_host(256).build()?;
    let agent: Value = client
        .post(format!("{base}/api/v1/agents"))
        .bearer_auth(KEY)
        .json(&json!({"name": "bench", "model_name": "openai/bench-model"}))
        .send()
        .await?
        .json()
        .await?;
    let agent_id = agent["agent"]["id"].as_str().ok_or_else(|| anyhow::anyhow!("agent creation failed: {agent}"))?.to_string();
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
    wait_all(&client, &base, ids).await?;
    lat.sort_by(f64::total_cmp);

    // 2. Throughput: accepted → completed.
    eprintln!("bench: {} runs with {} concurrent clients…", args.runs, args.clients);
    let next = Arc::new(AtomicUsize::new(0));
    let t0 = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..args.clients {
        let (client, base, body, next) = (client.clone(), base.clone(), body.clone(), next.clone());
        let total = args.runs;
        tasks.push(tokio::spawn(async move {
            let mut out = Vec::new();
            while next.fetch_add(1, Ordering::SeqCst) < total {
                let r = client.post(format!("{base}/api/v1/start_agent")).bearer_auth(KEY).json(&body).send().await?;
                let v: Value = r.json().await?;
                out.push(v["interaction_id"].as_str().unwrap_or_default().to_string());
            }
            Ok::<_, reqwest::Error>(out)
        }));
    }
    let mut ids = Vec::new();
    for t in tasks {
        ids.extend(t.await??);
    }
    let accepted_in = t0.elapsed();
    let failed = wait_all(&client, &base, ids).await?;
    let total = t0.elapsed();
    let rate = args.runs as f64 / total.as_secs_f64();
    let busy_rss = rss_kib(server.child.id());

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
    println!("| cold start to /readyz (process spawn → 200) | ≤ 200 ms | {:.1} ms |", cold_start.as_secs_f64() * 1000.0);
    println!("| idle RSS after start | ≤ 30 MiB | {} |", idle_rss.map(|k| format!("{:.1} MiB", k as f64 / 1024.0)).unwrap_or_else(|| "n/a".into()));
    println!("| RSS after the throughput run | — | {} |", busy_rss.map(|k| format!("{:.1} MiB", k as f64 / 1024.0)).unwrap_or_else(|| "n/a".into()));
    drop(server);
    Ok(())
}
