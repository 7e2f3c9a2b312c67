//! Webhooks (§11) against a real receiver: every event type, a valid Openloop-Signature,
//! at-least-once delivery through 500s and a server restart, replays with the same id.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use sha2::Sha256;
use testkit::fake_llm::{FakeLlm, Reply};
use testkit::{send, Server, ADMIN_KEY, ADMIN_USER};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn bin() -> &'static std::path::Path {
    env!("CARGO_BIN_EXE_openloop").as_ref()
}

const SECRET: &str = "whsec_test_secret";

/// One received POST: (event id header, signature header, body).
type Received = Arc<Mutex<Vec<(String, String, Value)>>>;

/// A receiver that answers 500 to the first `fail_first` deliveries of each event id.
async fn receiver(fail_first: usize) -> (String, Received) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let got: Received = Arc::default();
    let seen: Arc<Mutex<HashMap<String, usize>>> = Arc::default();
    let g = got.clone();
    tokio::spawn(async move {
        while let Ok((mut sock, _)) = listener.accept().await {
            let (g, seen) = (g.clone(), seen.clone());
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 8192];
                // Headers, then the body by content-length.
                let (head, body) = loop {
                    let n = sock.read(&mut chunk).await.unwrap_or(0);
                    if n == 0 {
                        return;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                    if let Some(p) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                        let head = String::from_utf8_lossy(&buf[..p]).to_string();
                        let len: usize = head
                            .lines()
                            .find_map(|l| l.to_ascii_lowercase().strip_prefix("content-length:").map(|v| v.trim().parse().unwrap_or(0)))
                            .unwrap_or(0);
                        while buf.len() < p + 4 + len {
                            let n = sock.read(&mut chunk).await.unwrap_or(0);
                            if n == 0 {
                                break;
                            }
                            buf.extend_from_slice(&chunk[..n]);
                        }
                        break (head, buf[p + 4..].to_vec());
                    }
                };
                let header =
                    |name: &str| head.lines().find_map(|l| l.split_once(':').filter(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.trim().to_string()));
                let id = header("openloop-event-id").unwrap_or_default();
                let sig = header("openloop-signature").unwrap_or_default();
                let n = {
                    let mut s = seen.lock().unwrap();
                    let c = s.entry(id.clone()).or_insert(0);
                    *c += 1;
                    *c
                };
                let status = if n <= fail_first { "500 Internal Server Error" } else { "200 OK" };
                let _ = sock.write_all(format!("HTTP/1.1 {status}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n").as_bytes()).await;
                let raw = String::from_utf8_lossy(&body).to_string();
                g.lock().unwrap().push((id, sig.clone(), json!({"raw": raw, "status": status})));
            });
        }
    });
    (format!("http://{addr}/hook"), got)
}

fn valid_signature(sig: &str, raw: &str) -> bool {
    let Some((t, v1)) = sig.split_once(',').and_then(|(t, v)| Some((t.strip_prefix("t=")?, v.strip_prefix("v1=")?))) else { return false };
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64;
    if (now - t.parse::<i64>().unwrap_or(0)).abs() > 300 {
        return false;
    }
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(SECRET.as_bytes()).unwrap();
    mac.update(format!("{t}.{raw}").as_bytes());
    let hex: String = mac.finalize().into_bytes().iter().map(|b| format!("{b:02x}")).collect();
    hex == v1
}

async fn wait_for(got: &Received, what: impl Fn(&[(String, String, Value)]) -> bool) {
    for _ in 0..600 {
        let snapshot = got.lock().unwrap().clone();
        if what(&snapshot) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("not received: {:?}", got.lock().unwrap());
}

fn events(got: &Received) -> Vec<(String, Value, bool, String)> {
    got.lock()
        .unwrap()
        .iter()
        .map(|(id, sig, v)| {
            let raw = v["raw"].as_str().unwrap().to_string();
            (id.clone(), serde_json::from_str(&raw).unwrap_or(Value::Null), valid_signature(sig, &raw), v["status"].as_str().unwrap().to_string())
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_event_type_arrives_signed_at_least_once_across_a_restart() {
    let fake = FakeLlm::start().await;
    fake.on_user_contains_always("fail me", Reply::error(400, "bad request"));
    fake.on_user_contains_always("hang", Reply::hang());
    fake.set_default(Reply::text("ok"));
    let (hook, got) = receiver(2).await;
    let allow = hook.trim_start_matches("http://").trim_end_matches("/hook").to_string();
    let url = fake.openai_base_url();
    let mut s = Server::start(
        bin(),
        &[
            ("OPENAI_BASE_URL", &url),
            ("OPENAI_API_KEY", "sk-test"),
            ("OPENLOOP_LOG", "error"),
            ("OPENLOOP_WEBHOOK_URL", &hook),
            ("OPENLOOP_WEBHOOK_SECRET", SECRET),
            ("OPENLOOP_WEBHOOK_RETRY_SECS", "1,1,1,1,1"),
            ("OPENLOOP_SSRF_ALLOWLIST", &allow),
        ],
    );
    let (_, a, _) = send(s.post(ADMIN_KEY, "/agents", json!({"name": "hooked", "model_name": "gpt-4o-mini"}))).await;
    let agent = a["agent"]["id"].as_str().unwrap().to_string();
    let (_, b, _) = send(s.post(ADMIN_KEY, &format!("/agents/{agent}/sessions"), json!({"input": "hello"}))).await;
    let done = b["session"]["id"].as_str().unwrap().to_string();
    // The first delivery of session.completed gets a 500; restart before the retry.
    wait_for(&got, |g| g.iter().any(|(_, _, v)| v["raw"].as_str().unwrap().contains(&done))).await;
    s.kill9();
    s.restart();
    wait_for(&got, |g| g.iter().filter(|(_, _, v)| v["raw"].as_str().unwrap().contains(&done) && v["status"] == "200 OK").count() == 1).await;
    let completed: Vec<_> = events(&got).into_iter().filter(|(_, b, _, _)| b["data"]["session_id"] == done.as_str()).collect();
    assert_eq!(completed.len(), 3, "two 500s, then delivered: {completed:?}");
    assert!(
        completed.iter().all(|(id, b, ok, _)| *ok && id == completed[0].0.as_str() && b["id"] == id.as_str()),
        "same event id, valid signatures: {completed:?}"
    );
    assert_eq!(completed[0].1["type"], "session.completed");
    assert_eq!(completed[0].1["data"], json!({"session_id": done, "agent_id": agent, "state": "completed"}), "ids and states, never content");

    // The other event types.
    let (_, b, _) = send(s.post(ADMIN_KEY, &format!("/agents/{agent}/sessions"), json!({"input": "fail me"}))).await;
    let failed = b["session"]["id"].as_str().unwrap().to_string();
    let (_, b, _) = send(s.post(ADMIN_KEY, &format!("/agents/{agent}/sessions"), json!({"input": "hang"}))).await;
    let hung = b["session"]["id"].as_str().unwrap().to_string();
    tokio::time::sleep(Duration::from_millis(200)).await;
    send(s.post(ADMIN_KEY, &format!("/sessions/{hung}/cancel"), json!({}))).await;
    let (_, ap, _) =
        send(s.post(ADMIN_KEY, "/agents", json!({"name": "careful", "model_name": "gpt-4o-mini", "metadata": {"tool_approval": {"default_mode": "all"}}})))
            .await;
    fake.on_user_contains("what time", Reply::tool_call("current_time", json!({})));
    let (_, b, _) = send(s.post(ADMIN_KEY, &format!("/agents/{}/sessions", ap["agent"]["id"].as_str().unwrap()), json!({"input": "what time"}))).await;
    let paused = b["session"]["id"].as_str().unwrap().to_string();
    let (_, f, _) = send(s.post(ADMIN_KEY, "/flows", json!({"document": {"name": "f", "nodes": [{"id": "t", "kind": "template", "template": "x"}]}}))).await;
    let (_, r, _) = send(s.post(ADMIN_KEY, "/start_pipeline", json!({"saved_item_id": f["saved_item_id"]}))).await;
    let run = r["run_id"].as_str().unwrap().to_string();
    let (_, e, _) = send(s.post(
        ADMIN_KEY,
        "/export_data",
        json!({"user_id": ADMIN_USER, "data_type": "credit_logs", "export_fields": ["log_id"], "start_date": "2026-01-01", "end_date": "2030-12-31"}),
    ))
    .await;
    let dex = e["data_export_id"].as_str().unwrap().to_string();
    let want = [
        ("session.failed", "session_id", failed.clone()),
        ("session.cancelled", "session_id", hung.clone()),
        ("session.approval_required", "session_id", paused.clone()),
        ("flow_run.finished", "run_id", run.clone()),
        ("data_export.finished", "data_export_id", dex.clone()),
    ];
    wait_for(&got, |_| {
        let ev = events(&got);
        want.iter().all(|(t, k, id)| ev.iter().any(|(_, b, ok, st)| b["type"] == *t && b["data"][*k] == id.as_str() && *ok && st == "200 OK"))
    })
    .await;
    let ev = events(&got);
    let flow = ev.iter().find(|(_, b, _, _)| b["type"] == "flow_run.finished").unwrap();
    assert_eq!(flow.1["data"]["state"], "DONE");
    assert!(flow.1["created_at"].as_str().unwrap().ends_with('Z'));
    // No event for incognito sessions.
    let (_, inc, _) = send(s.post(ADMIN_KEY, &format!("/agents/{agent}/sessions"), json!({"input": "hello", "incognito": true}))).await;
    if let Some(iid) = inc["session"]["id"].as_str() {
        tokio::time::sleep(Duration::from_millis(1500)).await;
        assert!(!events(&got).iter().any(|(_, b, _, _)| b["data"]["session_id"] == iid), "incognito sessions send nothing");
    }
}
