//! `openloop bench` flow phase: scheduling overhead per node on a 1,000-node flow of
//! template nodes (a chain and a fan-out), and a loop over 10,000 items, each compared
//! with the node work itself (rendering the same template in-process); server RSS for
//! two loop sizes.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::bench::{rss_kib, spawn_server, KEY, USER};

pub struct FlowBench {
    pub nodes: usize,
    pub chain_us_per_node: f64,
    pub fanout_us_per_node: f64,
    pub work_us_per_node: f64,
    pub loops: Vec<LoopFigure>,
}

pub struct LoopFigure {
    /// `loop` over a JSON list input, or `loop_file` over the lines of an uploaded file.
    pub over_file: bool,
    pub items: usize,
    pub us_per_item: f64,
    pub rss_before_mib: f64,
    pub rss_peak_mib: f64,
}

async fn save(client: &reqwest::Client, base: &str, doc: Value) -> anyhow::Result<String> {
    let r: Value = client.post(format!("{base}/api/v1/flows")).bearer_auth(KEY).json(&json!({"document": doc})).send().await?.json().await?;
    r["saved_item_id"].as_str().map(str::to_string).ok_or_else(|| anyhow::anyhow!("saving the flow failed: {r}"))
}

/// Starts a run and waits for DONE; (elapsed from start to DONE seen, peak RSS KiB).
async fn run(client: &reqwest::Client, base: &str, flow: &str, inputs: Value, pid: u32) -> anyhow::Result<(Duration, u64)> {
    let items: Vec<Value> = inputs.as_object().into_iter().flatten().map(|(k, v)| json!({"input_name": k, "value": v})).collect();
    let t0 = Instant::now();
    let r: Value = client
        .post(format!("{base}/api/v1/start_pipeline"))
        .bearer_auth(KEY)
        .json(&json!({"saved_item_id": flow, "user_id": USER, "pipeline_inputs": items}))
        .send()
        .await?
        .json()
        .await?;
    let run_id = r["run_id"].as_str().ok_or_else(|| anyhow::anyhow!("start failed: {r}"))?.to_string();
    let mut peak = 0;
    loop {
        peak = peak.max(rss_kib(pid).unwrap_or(0));
        let s: Value = client.get(format!("{base}/api/v1/get_pl_run?run_id={run_id}")).bearer_auth(KEY).send().await?.json().await?;
        match s["state"].as_str() {
            Some("DONE") => return Ok((t0.elapsed(), peak)),
            Some("FAILED" | "TERMINATED") => anyhow::bail!("flow run {run_id} ended {}: {:?}", s["state"], s["log"].as_array().and_then(|l| l.last())),
            _ => tokio::time::sleep(Duration::from_millis(2)).await,
        }
        if t0.elapsed() > Duration::from_secs(600) {
            anyhow::bail!("flow run {run_id} did not finish in 10 minutes");
        }
    }
}

const TEMPLATE: &str = "node {{x}} of the benchmark";

pub async fn flows(fake_url: &str, nodes: usize, loop_items: &[usize], file_lines: &[usize]) -> anyhow::Result<FlowBench> {
    let dir = tempfile::tempdir()?;
    let client = reqwest::Client::new();
    let (server, _) = spawn_server(fake_url, dir.path(), 1).await?;
    let base = server.base.clone();
    let pid = server.child.id();

    // A chain: node k runs after node k-1 (each waits for the previous commit).
    let chain: Vec<Value> = (0..nodes)
        .map(|k| {
            let mut n = json!({"id": format!("n{k}"), "kind": "template", "template": TEMPLATE});
            if k > 0 {
                n["after"] = json!([format!("n{}", k - 1)]);
            }
            n
        })
        .collect();
    let chain_flow = save(&client, &base, json!({"name": "chain", "inputs": [{"name": "x"}], "nodes": chain})).await?;
    // A fan-out: every node independent (the scheduler runs 16 at once).
    let fan: Vec<Value> = (0..nodes).map(|k| json!({"id": format!("n{k}"), "kind": "template", "template": TEMPLATE})).collect();
    let fan_flow = save(&client, &base, json!({"name": "fan", "inputs": [{"name": "x"}], "nodes": fan})).await?;
    let (chain_t, _) = run(&client, &base, &chain_flow, json!({"x": "x"}), pid).await?;
    let (fan_t, _) = run(&client, &base, &fan_flow, json!({"x": "x"}), pid).await?;

    // The node work itself: the same render, in this process.
    let vars: HashMap<String, Value> = [("x".to_string(), json!("x"))].into();
    let reps = 100_000;
    let t0 = Instant::now();
    let mut len = 0;
    for _ in 0..reps {
        len += std::hint::black_box(engine::flows::document::render(TEMPLATE, &vars)).len();
    }
    let work_us = t0.elapsed().as_secs_f64() * 1e6 / reps as f64;
    std::hint::black_box(len);

    let mut loops = Vec::new();
    // A loop over the lines of an uploaded file (loop_file), results to a file: each size
    // on a fresh server, so memory freed by earlier work does not hide growth.
    for &n in file_lines.iter().filter(|n| **n > 0) {
        use base64::Engine as _;
        let dir = tempfile::tempdir()?;
        let (server, _) = crate::bench::spawn_server_env(fake_url, dir.path(), 1, &[("OPENLOOP_MAX_BODY_BYTES", "134217728")]).await?;
        let (base, pid) = (server.base.clone(), server.child.id());
        let file_flow = save(
            &client,
            &base,
            json!({"name": "file loop", "inputs": [{"name": "source", "data_type": "string"}],
                   "nodes": [{"id": "each", "kind": "loop_file", "concurrency": 16, "inputs": {"file_name": "input.source"},
                              "flow": {"name": "body", "inputs": [{"name": "x"}], "nodes": [{"id": "t", "kind": "template", "template": TEMPLATE}],
                                       "outputs": [{"output_name": "o", "from": "t"}]}}],
                   "outputs": [{"output_name": "results", "from": "each.file_name"}, {"output_name": "count", "from": "each.count"}]}),
        )
        .await?;
        let mut text = String::with_capacity(n * 12);
        for i in 0..n {
            text.push_str(&format!("item {i}\n"));
        }
        let name = format!("items-{n}.txt");
        let body = json!({"file_name": name, "file_content": base64::engine::general_purpose::STANDARD.encode(text.as_bytes())});
        drop(text);
        let r = client.post(format!("{base}/api/v1/upload_file")).bearer_auth(KEY).json(&body).send().await?;
        if !r.status().is_success() {
            anyhow::bail!("uploading {name} failed: {}", r.text().await.unwrap_or_default());
        }
        drop(body);
        tokio::time::sleep(Duration::from_millis(300)).await;
        let before = rss_kib(pid).unwrap_or(0);
        let (t, peak) = run(&client, &base, &file_flow, json!({"source": name}), pid).await?;
        loops.push(LoopFigure {
            over_file: true,
            items: n,
            us_per_item: t.as_secs_f64() * 1e6 / n as f64,
            rss_before_mib: before as f64 / 1024.0,
            rss_peak_mib: peak as f64 / 1024.0,
        });
        drop(server);
    }
    let loop_flow = save(
        &client,
        &base,
        json!({"name": "loop", "inputs": [{"name": "items", "data_type": "list"}],
               "nodes": [{"id": "each", "kind": "loop", "concurrency": 16, "inputs": {"items": "input.items"},
                          "flow": {"name": "body", "inputs": [{"name": "x"}], "nodes": [{"id": "t", "kind": "template", "template": TEMPLATE}],
                                   "outputs": [{"output_name": "o", "from": "t"}]}}],
               "outputs": [{"output_name": "results", "from": "each"}]}),
    )
    .await?;
    for &n in loop_items.iter().filter(|n| **n > 0) {
        let items: Vec<Value> = (0..n).map(|i| json!(format!("item {i}"))).collect();
        let before = rss_kib(pid).unwrap_or(0);
        let (t, peak) = run(&client, &base, &loop_flow, json!({"items": items}), pid).await?;
        loops.push(LoopFigure {
            over_file: false,
            items: n,
            us_per_item: t.as_secs_f64() * 1e6 / n as f64,
            rss_before_mib: before as f64 / 1024.0,
            rss_peak_mib: peak as f64 / 1024.0,
        });
    }
    drop(server);
    Ok(FlowBench {
        nodes,
        chain_us_per_node: chain_t.as_secs_f64() * 1e6 / nodes as f64,
        fanout_us_per_node: fan_t.as_secs_f64() * 1e6 / nodes as f64,
        work_us_per_node: work_us,
        loops,
    })
}

pub fn print(f: &FlowBench) {
    println!(
        "| flow of {} template nodes, a chain (each after the previous), start → DONE | overhead ≤ 5 % of node work | {:.0} µs per node vs {:.2} µs of node work (overhead {:.0}× the work) |",
        f.nodes,
        f.chain_us_per_node,
        f.work_us_per_node,
        (f.chain_us_per_node - f.work_us_per_node) / f.work_us_per_node
    );
    println!(
        "| flow of {} independent template nodes (16 at once), start → DONE | overhead ≤ 5 % of node work | {:.0} µs per node vs {:.2} µs of node work (overhead {:.0}× the work) |",
        f.nodes,
        f.fanout_us_per_node,
        f.work_us_per_node,
        (f.fanout_us_per_node - f.work_us_per_node) / f.work_us_per_node
    );
    for l in &f.loops {
        println!(
            "| {} {} items (template body, 16 at once), start → DONE | ratio to node work; RSS flat | {:.1} µs per item ({:.0}× the work); server RSS before {:.1} MiB, peak {:.1} MiB |",
            if l.over_file { "loop_file over a file of" } else { "loop over a list input of" },
            l.items,
            l.us_per_item,
            l.us_per_item / f.work_us_per_node,
            l.rss_before_mib,
            l.rss_peak_mib
        );
    }
}
