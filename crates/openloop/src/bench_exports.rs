//! `openloop bench` export phase: a `credit_logs` export of N ledger rows (default
//! 1,000,000), timed from request to COMPLETED, with the server's RSS sampled throughout,
//! then the CSV downloaded.

use std::time::{Duration, Instant};

use futures::StreamExt;
use serde_json::{json, Value};

use crate::bench::{rss_kib, spawn_server, KEY, USER};

pub struct ExportBench {
    pub rows: usize,
    pub seconds: f64,
    pub rows_per_sec: f64,
    pub csv_mib: f64,
    pub download_mib_s: f64,
    pub rss_before_mib: f64,
    pub rss_peak_mib: f64,
}

pub async fn exports(fake_url: &str, rows: usize) -> anyhow::Result<ExportBench> {
    use store::{ExportStore, TenancyStore};
    let dir = tempfile::tempdir()?;
    let client = reqwest::Client::new();
    let (server, _) = spawn_server(fake_url, dir.path(), 0).await?;
    let base = server.base.clone();
    let pid = server.child.id();
    let store = store::sqlite::SqliteStore::open(&format!("sqlite://{}", dir.path().join("openloop.db").display())).await?;
    let org = store.user(USER).await?.ok_or_else(|| anyhow::anyhow!("bench user missing"))?.organization_id;
    let t0 = wire::time::now_micros();
    let batch = 10_000;
    let mut done = 0;
    while done < rows {
        let n = batch.min(rows - done);
        let entries: Vec<store::LedgerEntry> = (done..done + n)
            .map(|i| store::LedgerEntry {
                id: format!("cl_bench_{i:09}"),
                organization_id: org.clone(),
                user_id: Some(USER.into()),
                team_id: None,
                created_at: t0 + i as i64,
                category: if i % 3 == 0 { "PIPELINE_RUN".into() } else { "AGENT_RUN".into() },
                kind: "model_call".into(),
                name: "gpt-4o-mini".into(),
                amount: 0.0125,
                correlation_id: Some(format!("run_{i}")),
                session_id: None,
                agent_id: None,
            })
            .collect();
        store.add_ledger_entries(&entries).await?;
        done += n;
        if done % 200_000 == 0 {
            eprintln!("  seeded {done}/{rows} ledger rows");
        }
    }
    store.close().await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let rss_before = rss_kib(pid).unwrap_or(0);
    let started = Instant::now();
    let body = json!({"user_id": USER, "data_type": "credit_logs", "start_date": "2000-01-01", "end_date": "2100-01-01",
        "export_fields": ["log_id", "timestamp", "category", "type", "name", "amount", "balance", "correlation_id", "user_email", "balance_scope"]});
    let r: Value = client.post(format!("{base}/api/v1/export_data")).bearer_auth(KEY).json(&body).send().await?.json().await?;
    let id = r["data_export_id"].as_str().ok_or_else(|| anyhow::anyhow!("export request failed: {r}"))?.to_string();
    let mut peak = rss_before;
    loop {
        peak = peak.max(rss_kib(pid).unwrap_or(0));
        let s: Value = client.get(format!("{base}/api/v1/export_status?user_id={USER}&data_export_id={id}")).bearer_auth(KEY).send().await?.json().await?;
        match s["state"].as_str() {
            Some("COMPLETED") => break,
            Some("FAILED") => anyhow::bail!("export failed: {s}"),
            _ => tokio::time::sleep(Duration::from_millis(20)).await,
        }
        if started.elapsed() > Duration::from_secs(1800) {
            anyhow::bail!("export did not finish in 30 minutes");
        }
    }
    let seconds = started.elapsed().as_secs_f64();
    let t = Instant::now();
    let resp = client.get(format!("{base}/api/v1/export_status?user_id={USER}&data_export_id={id}&download=true")).bearer_auth(KEY).send().await?;
    let mut stream = resp.bytes_stream();
    let mut bytes = 0u64;
    let mut lines = 0usize;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk?;
        bytes += chunk.len() as u64;
        lines += chunk.iter().filter(|b| **b == b'\n').count();
        peak = peak.max(rss_kib(pid).unwrap_or(0));
    }
    if lines != rows + 1 {
        anyhow::bail!("the CSV has {lines} lines, expected {} (header + rows)", rows + 1);
    }
    let dl = t.elapsed().as_secs_f64();
    drop(server);
    Ok(ExportBench {
        rows,
        seconds,
        rows_per_sec: rows as f64 / seconds,
        csv_mib: bytes as f64 / 1048576.0,
        download_mib_s: bytes as f64 / 1048576.0 / dl,
        rss_before_mib: rss_before as f64 / 1024.0,
        rss_peak_mib: peak as f64 / 1024.0,
    })
}

pub fn print(e: &ExportBench) {
    println!(
        "| credit_logs export of {} ledger rows, request → COMPLETED, then the CSV downloaded | RSS flat; time reported | {:.1} s ({:.0} rows/s), {:.0} MiB CSV downloaded at {:.0} MiB/s; server RSS before {:.1} MiB, peak {:.1} MiB |",
        e.rows, e.seconds, e.rows_per_sec, e.csv_mib, e.download_mib_s, e.rss_before_mib, e.rss_peak_mib
    );
}
