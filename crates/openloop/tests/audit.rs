//! E3: every event type of §8.5 is recorded when its action happens, with the acting user,
//! the source IP and the user agent, and is visible only to its own organization.

use std::time::Duration;

use serde_json::{json, Value};
use testkit::fake_llm::{FakeLlm, Reply};
use testkit::{send, Server, ADMIN_KEY, ADMIN_USER};

fn bin() -> &'static std::path::Path {
    env!("CARGO_BIN_EXE_openloop").as_ref()
}

const UA: &str = "audit-test/1.0";

async fn logs(s: &Server, key: &str, user: &str, org: &str, extra: &str) -> (u16, Value) {
    let size = if extra.contains("page_size") { "" } else { "&page_size=500" };
    let (st, b, _) =
        send(s.get(key, &format!("/get_audit_logs?organization_id={org}&user_id={user}&start_time=2026-01-01&end_time=2030-12-31{size}{extra}"))).await;
    (st, b)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_event_type_is_recorded_with_user_ip_and_agent() {
    let fake = FakeLlm::start().await;
    fake.on_user_contains_always("write it", Reply::tool_call("write_artifact", json!({"filename": "a.txt", "content": "hello"})));
    fake.on_user_contains_always("hang", Reply::hang());
    fake.set_default(Reply::text("ok"));
    let url = fake.openai_base_url();
    let s = Server::start(bin(), &[("OPENAI_BASE_URL", &url), ("OPENAI_API_KEY", "sk-test"), ("OPENLOOP_LOG", "error")]);
    let client = reqwest::Client::builder().user_agent(UA).build().unwrap();
    let call = |m: reqwest::Method, path: &str, body: Option<Value>| {
        let mut rb = client.request(m, s.url(path)).bearer_auth(ADMIN_KEY);
        if let Some(b) = body {
            rb = rb.json(&b);
        }
        send(rb)
    };
    // Keys (CLI), a refused key.
    let (mate, _) = s.new_user("org_default");
    let created = s.cli(&["keys", "create", "--user", &mate]);
    s.cli(&["keys", "revoke", created["key_id"].as_str().unwrap()]);
    let (st, _, _) = send(client.get(s.url("/agents")).bearer_auth("olk_wrong").header("x-auth-key", ADMIN_USER)).await;
    assert_eq!(st, 401);
    // Agents.
    let (_, a, _) = call(reqwest::Method::POST, "/agents", Some(json!({"name": "Audited", "model_name": "gpt-4o-mini"}))).await;
    let agent = a["agent"]["id"].as_str().unwrap().to_string();
    let (st, b, _) = call(reqwest::Method::PATCH, &format!("/agents/{agent}"), Some(json!({"name": "Audited 2"}))).await;
    assert_eq!(st, 200, "{b}");
    // Sessions: one writes an artifact, one is cancelled; access shared.
    let (_, w, _) = call(reqwest::Method::POST, &format!("/agents/{agent}/sessions"), Some(json!({"input": "write it"}))).await;
    let sid = w["session"]["id"].as_str().unwrap().to_string();
    let mut art = String::new();
    for _ in 0..300 {
        let (_, l, _) = call(reqwest::Method::GET, &format!("/agents/{agent}/artifacts"), None).await;
        if let Some(id) = l["artifacts"][0]["id"].as_str() {
            art = id.to_string();
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(!art.is_empty(), "the agent wrote an artifact");
    let (_, h, _) = call(reqwest::Method::POST, &format!("/agents/{agent}/sessions"), Some(json!({"input": "hang"}))).await;
    let hung = h["session"]["id"].as_str().unwrap().to_string();
    let (st, b, _) = call(reqwest::Method::POST, &format!("/sessions/{hung}/cancel"), None).await;
    assert_eq!(st, 200, "{b}");
    s.cli(&["users", "create", "--org", "org_default", "--email", "friend@example.com"]);
    let (st, b, _) = call(
        reqwest::Method::PUT,
        &format!("/sessions/{sid}/access"),
        Some(json!({"share": [{"type": "person", "email": "friend@example.com", "role": "viewer"}]})),
    )
    .await;
    assert_eq!(st, 200, "{b}");
    let (st, _, _) = call(reqwest::Method::GET, &format!("/artifacts/{art}/download"), None).await;
    assert_eq!(st, 200);
    let (st, _, _) = call(reqwest::Method::DELETE, &format!("/artifacts/{art}"), None).await;
    assert_eq!(st, 200);
    // Flows and exports.
    let (_, f, _) = call(
        reqwest::Method::POST,
        "/flows",
        Some(json!({"document": {"name": "f", "nodes": [{"id": "a", "kind": "agent", "agent_id": agent, "prompt": "hang"}]}})),
    )
    .await;
    let (_, r, _) = call(reqwest::Method::POST, "/start_pipeline", Some(json!({"saved_item_id": f["saved_item_id"]}))).await;
    let run = r["run_id"].as_str().unwrap().to_string();
    let (st, _, _) = call(reqwest::Method::POST, "/kill_pipeline", Some(json!({"run_id": run}))).await;
    assert_eq!(st, 200);
    let (_, e, _) = call(
        reqwest::Method::POST,
        "/export_data",
        Some(json!({"user_id": ADMIN_USER, "data_type": "credit_logs", "export_fields": ["log_id"], "start_date": "2026-01-01", "end_date": "2030-12-31"})),
    )
    .await;
    let dex = e["data_export_id"].as_str().unwrap().to_string();
    for _ in 0..300 {
        let (_, st, _) = call(reqwest::Method::GET, &format!("/export_status?user_id={ADMIN_USER}&data_export_id={dex}"), None).await;
        if st["state"] == "COMPLETED" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let resp =
        client.get(s.url(&format!("/export_status?user_id={ADMIN_USER}&data_export_id={dex}&download=true"))).bearer_auth(ADMIN_KEY).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    let (st, _, _) = call(reqwest::Method::DELETE, &format!("/agents/{agent}"), None).await;
    assert_eq!(st, 200);

    let (st, b) = logs(&s, ADMIN_KEY, ADMIN_USER, "org_default", "").await;
    assert_eq!(st, 200, "{b}");
    let events = b["audit_logs"].as_array().unwrap();
    let of = |t: &str| events.iter().filter(|e| e["event_type"] == t).cloned().collect::<Vec<_>>();
    for t in [
        "agent_created",
        "agent_updated",
        "agent_deleted",
        "session_created",
        "session_cancelled",
        "access_changed",
        "artifact_downloaded",
        "artifact_deleted",
        "flow_run_started",
        "flow_run_killed",
        "data_export_requested",
        "data_export_downloaded",
    ] {
        let got = of(t);
        assert!(!got.is_empty(), "{t} recorded: {events:?}");
        let e = &got[0];
        assert_eq!((e["user_id"].as_str(), e["source_ip"].as_str(), e["user_agent"].as_str()), (Some(ADMIN_USER), Some("127.0.0.1"), Some(UA)), "{t}: {e}");
        assert!(e["timestamp"].as_str().unwrap().ends_with("+00:00") && e["event_id"].as_str().unwrap().starts_with("evt_"));
        assert!(serde_json::from_str::<Value>(e["details"].as_str().unwrap()).is_ok(), "details is a JSON string: {e}");
    }
    for t in ["api_key_created", "api_key_revoked"] {
        assert_eq!(of(t).first().map(|e| e["user_id"].clone()), Some(json!("openloop-cli")), "{t} (CLI) recorded: {events:?}");
    }
    let failed = of("auth_failed");
    assert_eq!((failed[0]["user_id"].as_str(), failed[0]["source_ip"].as_str()), (Some(ADMIN_USER), Some("127.0.0.1")), "{failed:?}");
    assert!(of("session_created").iter().any(|e| e["details"].as_str().unwrap().contains(&hung)));
    // Newest first; filters and paging.
    let ts: Vec<&str> = events.iter().map(|e| e["timestamp"].as_str().unwrap()).collect();
    let mut sorted = ts.clone();
    sorted.sort_by(|a, b| b.cmp(a));
    assert_eq!(ts, sorted);
    let (_, one) = logs(&s, ADMIN_KEY, ADMIN_USER, "org_default", "&event_types=agent_created,agent_deleted&page_size=1&page=2").await;
    assert_eq!((one["total_count"].as_u64(), one["total_pages"].as_u64(), one["page"].as_u64()), (Some(2), Some(2), Some(2)), "{one}");
    assert_eq!(one["audit_logs"][0]["event_type"], "agent_created");
    let (_, none) = logs(&s, ADMIN_KEY, ADMIN_USER, "org_default", "&ip_address=10.0.0.1").await;
    assert_eq!(none["total_count"], 0);

    // Another organization sees none of it, and cannot read ours.
    let other = s.cli(&["users", "create", "--org", "org_other_audit", "--org-admin"]);
    let other_user = other["user_id"].as_str().unwrap().to_string();
    let other_key = s.cli(&["keys", "create", "--user", &other_user])["secret"].as_str().unwrap().to_string();
    let (st, b) = logs(&s, &other_key, &other_user, "org_other_audit", "").await;
    assert_eq!(st, 200, "{b}");
    assert!(b["audit_logs"].as_array().unwrap().iter().all(|e| e["event_type"] == "api_key_created"), "only its own key: {b}");
    let (st, b) = logs(&s, &other_key, &other_user, "org_default", "").await;
    assert_eq!((st, b), (404, json!({"error": "organization_not_found"})));
    // Errors.
    let (st, b, _) = send(s.get(ADMIN_KEY, "/get_audit_logs?organization_id=org_default")).await;
    assert_eq!((st, b), (400, json!({"error": "missing_parameters"})));
    let (st, b, _) = send(s.get(ADMIN_KEY, &format!("/get_audit_logs?organization_id=org_default&user_id={ADMIN_USER}&start_time=soon&end_time=later"))).await;
    assert_eq!((st, b["error"].as_str()), (400, Some("invalid_date")));
    // The CLI prints the same log.
    let mut cli = std::process::Command::new(bin());
    cli.args(["audit", "--org", "org_default", "--since", "2026-01-01", "--event-type", "agent_deleted", "--data-dir"]).arg(&s.data_dir);
    if let Some(url) = s.database_url() {
        cli.env("OPENLOOP_DATABASE_URL", url);
    }
    let out = cli.output().unwrap();
    assert!(out.status.success(), "{out:?}");
    let line: Value = serde_json::from_str(String::from_utf8_lossy(&out.stdout).lines().next().unwrap()).unwrap();
    assert_eq!((line["event_type"].as_str(), line["user_id"].as_str()), (Some("agent_deleted"), Some(ADMIN_USER)));
}
