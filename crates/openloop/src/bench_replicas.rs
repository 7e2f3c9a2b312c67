//! `openloop bench --postgres URL` replica phase: runs accepted → completed per second on
//! SQLite (one replica), PostgreSQL (one replica) and PostgreSQL (two replicas sharing
//! the database), the same runs from the same clients, measured in one session.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

use serde_json::{json, Value};

use crate::bench::{cpu_time, create_agent, spawn_server_env, wait_all, Poll, Poller, KEY, USER};

pub struct ReplicaFigure {
    pub label: &'static str,
    pub replicas: usize,
    pub runs: usize,
    pub runs_per_sec: f64,
    /// Openloop processes only (PostgreSQL's own CPU is not in it).
    pub cpu_per_run_ms: f64,
    pub failed: usize,
}

/// A new database in the cluster `admin` names (psql, PostgreSQL's client); its URL.
fn new_database(admin: &str) -> anyhow::Result<String> {
    let name = format!("bench_{}", wire::ids::random_base62(10).to_lowercase());
    let out = std::process::Command::new("psql").arg(admin).arg("-qc").arg(format!("CREATE DATABASE {name}")).output()?;
    if !out.status.success() {
        anyhow::bail!("creating a database failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    let (base, query) = admin.split_once('?').map(|(b, q)| (b, Some(q))).unwrap_or((admin, None));
    let root = base.rsplit_once('/').map(|(r, _)| r).unwrap_or(base);
    Ok(match query {
        Some(q) => format!("{root}/{name}?{q}"),
        None => format!("{root}/{name}"),
    })
}

/// Polls each run on the replica that accepted it.
fn poller<'a>(client: &'a reqwest::Client) -> Box<Poller<'a, (String, String)>> {
    Box::new(move |(base, id): &(String, String)| {
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

async fn measure(
    fake_url: &str,
    label: &'static str,
    database: Option<String>,
    replicas: usize,
    runs: usize,
    clients: usize,
    workers: usize,
) -> anyhow::Result<ReplicaFigure> {
    let mut servers = Vec::new();
    let mut dirs = Vec::new();
    for _ in 0..replicas {
        let dir = tempfile::tempdir()?;
        let env: Vec<(&str, &str)> = database.as_deref().map(|u| vec![("OPENLOOP_DATABASE_URL", u)]).unwrap_or_default();
        let (child, _) = spawn_server_env(fake_url, dir.path(), workers, &env).await?;
        servers.push(child);
        dirs.push(dir);
    }
    let bases: Vec<String> = servers.iter().map(|s| s.base.clone()).collect();
    let client = reqwest::Client::builder().pool_max_idle_per_host(256).build()?;
    let agent = create_agent(&client, &bases[0]).await?;
    let body = json!({"gummie_id": agent, "message": "hello", "user_id": USER});
    // Warm up each replica (connections, caches) outside the measurement.
    let mut warm = Vec::new();
    for base in &bases {
        for _ in 0..50 {
            let v: Value = client.post(format!("{base}/api/v1/start_agent")).bearer_auth(KEY).json(&body).send().await?.json().await?;
            warm.push((base.clone(), v["interaction_id"].as_str().unwrap_or_default().to_string()));
        }
    }
    wait_all(&warm, &*poller(&client)).await?;

    let pids: Vec<u32> = servers.iter().map(|s| s.child.id()).collect();
    let cpu0: Option<f64> = pids.iter().map(|p| cpu_time(*p).map(|d| d.as_secs_f64())).sum();
    let t0 = Instant::now();
    let next = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for _ in 0..clients {
        let (client, bases, body, next) = (client.clone(), bases.clone(), body.clone(), next.clone());
        tasks.push(tokio::spawn(async move {
            let mut out = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::SeqCst);
                if i >= runs {
                    break;
                }
                // Round robin, as a load balancer would.
                let base = &bases[i % bases.len()];
                let r = client.post(format!("{base}/api/v1/start_agent")).bearer_auth(KEY).json(&body).send().await?;
                let status = r.status();
                let v: Value = r.json().await?;
                if status.as_u16() != 202 {
                    anyhow::bail!("start_agent answered {status}: {v}");
                }
                out.push((i, (base.clone(), v["interaction_id"].as_str().unwrap_or_default().to_string())));
            }
            Ok::<_, anyhow::Error>(out)
        }));
    }
    let mut ids = Vec::new();
    for t in tasks {
        ids.extend(t.await??);
    }
    ids.sort_by_key(|(i, _)| *i);
    let ids: Vec<(String, String)> = ids.into_iter().map(|(_, id)| id).collect();
    let (failed, done) = wait_all(&ids, &*poller(&client)).await?;
    let total = done.duration_since(t0);
    let cpu1: Option<f64> = pids.iter().map(|p| cpu_time(*p).map(|d| d.as_secs_f64())).sum();
    let cpu = cpu1.zip(cpu0).map(|(b, a)| b - a).unwrap_or(f64::NAN);
    drop(servers);
    Ok(ReplicaFigure { label, replicas, runs, runs_per_sec: runs as f64 / total.as_secs_f64(), cpu_per_run_ms: cpu * 1000.0 / runs as f64, failed })
}

/// The three configurations, in one session.
pub async fn replicas(fake_url: &str, admin: &str, runs: usize, clients: usize, workers: usize) -> anyhow::Result<Vec<ReplicaFigure>> {
    let mut out = Vec::new();
    eprintln!("bench: {runs} runs on SQLite, one replica…");
    out.push(measure(fake_url, "SQLite", None, 1, runs, clients, workers).await?);
    eprintln!("bench: {runs} runs on PostgreSQL, one replica…");
    out.push(measure(fake_url, "PostgreSQL", Some(new_database(admin)?), 1, runs, clients, workers).await?);
    eprintln!("bench: {runs} runs on PostgreSQL, two replicas…");
    out.push(measure(fake_url, "PostgreSQL", Some(new_database(admin)?), 2, runs, clients, workers).await?);
    Ok(out)
}

pub fn print(figures: &[ReplicaFigure]) {
    let base = |label: &str, n: usize| figures.iter().find(|f| f.label == label && f.replicas == n).map(|f| f.runs_per_sec);
    for f in figures {
        println!(
            "| runs accepted → completed, {} × {} ({} runs) | two PostgreSQL replicas ≥ 1.6× one | {:.0} runs/s, {:.2} ms Openloop CPU per run, {} failed |",
            f.replicas, f.label, f.runs, f.runs_per_sec, f.cpu_per_run_ms, f.failed
        );
    }
    if let (Some(sqlite), Some(pg1), Some(pg2)) = (base("SQLite", 1), base("PostgreSQL", 1), base("PostgreSQL", 2)) {
        println!("| ratios, same session | — | PostgreSQL ÷ SQLite (one replica) {:.2}×; two ÷ one PostgreSQL replica {:.2}× |", pg1 / sqlite, pg2 / pg1);
    }
}
