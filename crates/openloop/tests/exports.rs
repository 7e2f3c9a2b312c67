//! E1–E2 data exports over real HTTP: the whole scoping matrix of §8.5, validation in its
//! documented order, and seed workflow 2 through the tools endpoint alone, with CSV rows
//! that match the sessions, model calls and flow runs the test created.

use std::time::Duration;

use serde_json::{json, Value};
use testkit::fake_llm::{FakeLlm, Reply};
use testkit::{send, Server, ADMIN_KEY, ADMIN_USER, TEAM_ID};

fn bin() -> &'static std::path::Path {
    env!("CARGO_BIN_EXE_openloop").as_ref()
}

fn start(fake: &FakeLlm) -> Server {
    let url = fake.openai_base_url();
    Server::start(bin(), &[("OPENAI_BASE_URL", &url), ("OPENAI_API_KEY", "sk-test"), ("OPENLOOP_LOG", "error"), ("OPENLOOP_RATE_LIMIT_REQUESTS", "1000000")])
}

const TYPES: [(&str, &str); 4] = [("workflows", "run_id"), ("agents", "agent_id"), ("agent_interactions", "interaction_id"), ("credit_logs", "log_id")];

fn base(data_type: &str, field: &str) -> Value {
    json!({"user_id": ADMIN_USER, "data_type": data_type, "export_fields": [field], "start_date": "2026-01-01", "end_date": "2030-12-31"})
}

#[tokio::test]
async fn the_scoping_matrix_and_each_validation_rule() {
    let fake = FakeLlm::start().await;
    let s = start(&fake);
    for (data_type, field) in TYPES {
        for mask in 0..16u8 {
            let mut body = base(data_type, field);
            if mask & 1 != 0 {
                body["workspace_ids"] = json!([TEAM_ID]);
            }
            if mask & 2 != 0 {
                body["include_all_workspaces"] = json!(true);
            }
            if mask & 4 != 0 {
                body["include_personal_workspaces"] = json!(true);
            }
            if mask & 8 != 0 {
                body["entity_ids"] = json!(["ent_1"]);
            }
            let (st, b, _) = send(s.post(ADMIN_KEY, "/export_data", body.clone())).await;
            if data_type == "credit_logs" || mask != 0 {
                assert_eq!(st, 200, "{data_type} mask {mask}: {b}");
                assert_eq!((b["success"].as_bool(), b["state"].as_str()), (Some(true), Some("REQUESTED")), "{b}");
                assert!(b["data_export_id"].as_str().unwrap().starts_with("dex_"));
            } else {
                assert_eq!((st, b), (400, json!({"error": "scope_required"})), "{data_type} without scope");
            }
        }
        // workspace level: exactly one workspace (credit_logs ignores the scope fields).
        let mut body = base(data_type, field);
        body["export_level"] = json!("workspace");
        body["include_all_workspaces"] = json!(true);
        let (st, b, _) = send(s.post(ADMIN_KEY, "/export_data", body.clone())).await;
        if data_type == "credit_logs" {
            assert_eq!(st, 200, "{b}");
        } else {
            assert_eq!((st, b), (400, json!({"error": "workspace_export_requires_one_workspace"})));
            body["workspace_ids"] = json!([TEAM_ID]);
            assert_eq!(send(s.post(ADMIN_KEY, "/export_data", body)).await.0, 200);
        }
        let mut body = base(data_type, field);
        body["workspace_ids"] = json!(["team_nowhere"]);
        let (st, b, _) = send(s.post(ADMIN_KEY, "/export_data", body)).await;
        if data_type == "credit_logs" {
            assert_eq!(st, 200, "credit_logs ignores workspace_ids: {b}");
        } else {
            assert_eq!((st, &b["error"]), (404, &json!("workspace_not_found")), "{b}");
        }
    }
    let cases = [
        (json!({"data_type": "gumstack"}), 400, "unsupported_data_type"),
        (json!({"data_type": "everything"}), 400, "invalid_data_type"),
        (json!({"export_fields": []}), 400, "invalid_export_fields"),
        (json!({"export_fields": ["log_id", "agent_name"]}), 400, "invalid_export_fields"),
        (json!({"start_date": "yesterday"}), 400, "invalid_date"),
        (json!({"end_date": "2025-01-01"}), 400, "invalid_date_range"),
        (json!({"category_filter": ["LUNCH"]}), 400, "invalid_category_filter"),
        (json!({"user_id": "usr_someone_else"}), 403, "forbidden"),
    ];
    for (patch, status, code) in cases {
        let mut body = base("credit_logs", "log_id");
        for (k, v) in patch.as_object().unwrap() {
            body[k] = v.clone();
        }
        let (st, b, _) = send(s.post(ADMIN_KEY, "/export_data", body.clone())).await;
        assert_eq!((st, b["error"].as_str()), (status, Some(code)), "{body}: {b}");
        if code == "invalid_export_fields" && !body["export_fields"].as_array().unwrap().is_empty() {
            assert_eq!(b["metadata"]["invalid"], json!(["agent_name"]), "{b}");
        }
    }
    // Organization admins only.
    let (member, member_key) = s.new_user("org_default");
    let mut body = base("credit_logs", "log_id");
    body["user_id"] = json!(member);
    let (st, b, _) = send(s.post(&member_key, "/export_data", body)).await;
    assert_eq!((st, b), (403, json!({"error": "organization_admin_required"})));
    // E2 errors.
    let (st, b, _) = send(s.get(ADMIN_KEY, &format!("/export_status?user_id={ADMIN_USER}"))).await;
    assert_eq!((st, b), (400, json!({"error": "data_export_id is required"})));
    let (st, b, _) = send(s.get(ADMIN_KEY, &format!("/export_status?user_id={ADMIN_USER}&data_export_id=dex_nope"))).await;
    assert_eq!((st, b), (404, json!({"error": "data_export_not_found"})));
}

async fn invoke(s: &Server, tool: &str, args: Value) -> (u16, Value) {
    let (st, b, _) = send(s.post(ADMIN_KEY, &format!("/tools/{tool}/invoke"), args)).await;
    (st, b)
}

async fn wait_export(s: &Server, id: &str) -> Value {
    for _ in 0..500 {
        let (st, b) = invoke(s, "get_single_gumloop_data_export_by_id", json!({"id": id})).await;
        assert_eq!(st, 200, "{b}");
        if b["state"] == "COMPLETED" || b["state"] == "FAILED" {
            return b;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("export {id} did not finish");
}

async fn download(s: &Server, id: &str) -> Vec<csv::StringRecord> {
    let resp =
        s.client.get(s.url(&format!("/export_status?user_id={ADMIN_USER}&data_export_id={id}&download=true"))).bearer_auth(ADMIN_KEY).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "text/csv; charset=utf-8");
    assert_eq!(resp.headers()["content-disposition"], format!("attachment; filename=\"{id}.csv\"").as_str());
    let text = resp.text().await.unwrap();
    let mut rdr = csv::ReaderBuilder::new().has_headers(false).from_reader(text.as_bytes());
    rdr.records().map(|r| r.unwrap()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seed_workflow_2_through_tools_alone_matches_what_was_created() {
    let fake = FakeLlm::start().await;
    fake.set_default(Reply::text("done").usage(1000, 500));
    let s = start(&fake);
    // Work to export: two personal sessions, one team session, one flow run with a model call.
    let (_, a, _) = send(s.post(ADMIN_KEY, "/agents", json!({"name": "Auditor", "model_name": "gpt-4o-mini"}))).await;
    let agent = a["agent"]["id"].as_str().unwrap().to_string();
    let (_, ta, _) = send(s.post(ADMIN_KEY, &format!("/agents?team_id={TEAM_ID}"), json!({"name": "Team bot", "model_name": "gpt-4o-mini"}))).await;
    let team_agent = ta["agent"]["id"].as_str().unwrap().to_string();
    let mut sessions = Vec::new();
    for (ag, q) in [(&agent, String::new()), (&agent, String::new()), (&team_agent, format!("?team_id={TEAM_ID}"))] {
        let (st, b, _) = send(s.post(ADMIN_KEY, &format!("/agents/{ag}/sessions{q}"), json!({"input": "work"}))).await;
        assert_eq!(st, 202, "{b}");
        sessions.push(b["session"]["id"].as_str().unwrap().to_string());
    }
    let (_, f, _) =
        send(s.post(ADMIN_KEY, "/flows", json!({"document": {"name": "f", "nodes": [{"id": "x", "kind": "llm", "model": "gpt-4o-mini", "prompt": "go"}]}})))
            .await;
    let (_, run, _) = send(s.post(ADMIN_KEY, "/start_pipeline", json!({"saved_item_id": f["saved_item_id"]}))).await;
    let run_id = run["run_id"].as_str().unwrap().to_string();
    let mut session_credits = 0.0;
    for sid in &sessions {
        loop {
            let (_, b, _) = send(s.get(ADMIN_KEY, &format!("/sessions/{sid}"))).await;
            if b["session"]["state"] == "completed" {
                session_credits += b["session"]["usage"]["credit_cost"].as_f64().unwrap();
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    let flow_credits = loop {
        let (_, b, _) = send(s.get(ADMIN_KEY, &format!("/get_pl_run?run_id={run_id}"))).await;
        if b["state"] == "DONE" {
            break b["credit_cost"].as_f64().unwrap();
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(session_credits > 0.0 && flow_credits > 0.0);

    // 1. credit_logs (scope fields ignored), 2. agent_interactions of every workspace.
    let (st, c) = invoke(
        &s,
        "create_a_gumloop_export_datum",
        json!({"data_type": "credit_logs", "start_date": "2026-01-01", "end_date": "2030-12-31",
        "export_fields": ["log_id", "category", "type", "name", "amount", "balance", "correlation_id", "user_email", "timestamp", "balance_scope"]}),
    )
    .await;
    assert_eq!(st, 200, "{c}");
    let (st, i) = invoke(&s, "create_a_gumloop_export_datum", json!({"data_type": "agent_interactions", "include_all_workspaces": true,
        "start_date": "2026-01-01", "end_date": "2030-12-31", "export_fields": ["interaction_id", "agent_name", "credit_cost", "llm_credit_cost", "message_count", "workspace_id", "interaction_created_ts"]})).await;
    assert_eq!(st, 200, "{i}");
    let c_id = c["data_export_id"].as_str().unwrap();
    let i_id = i["data_export_id"].as_str().unwrap();
    let done = wait_export(&s, c_id).await;
    assert_eq!((done["state"].as_str(), done["row_count"].as_i64()), (Some("COMPLETED"), Some(4)), "{done}");
    assert!(done["finished_ts"].as_str().unwrap().ends_with("+00:00"));

    let rows = download(&s, c_id).await;
    assert_eq!(
        &rows[0],
        &csv::StringRecord::from(vec!["log_id", "category", "type", "name", "amount", "balance", "correlation_id", "user_email", "timestamp", "balance_scope"])
    );
    let data = &rows[1..];
    assert_eq!(data.len(), 4, "one row per model call: 3 sessions + 1 flow node");
    let sum: f64 = data.iter().map(|r| r[4].parse::<f64>().unwrap()).sum();
    assert!((sum - (session_credits + flow_credits)).abs() < 1e-6, "credit sums match: {sum} vs {}", session_credits + flow_credits);
    assert_eq!(data.iter().filter(|r| &r[1] == "AGENT_RUN").count(), 3);
    assert_eq!(data.iter().filter(|r| &r[1] == "PIPELINE_RUN" && r[6] == run_id).count(), 1);
    assert!((data[3][5].parse::<f64>().unwrap() - sum).abs() < 1e-6, "balance is the running total");
    assert!(data.iter().all(|r| &r[9] == "organization" && r[8].ends_with("+00:00")));

    wait_export(&s, i_id).await;
    let rows = download(&s, i_id).await;
    let data = &rows[1..];
    assert_eq!(data.len(), 3, "the three sessions (flow llm nodes have no session): {rows:?}");
    let mut ids: Vec<&str> = data.iter().map(|r| &r[0]).collect();
    ids.sort_unstable();
    let mut want: Vec<&str> = sessions.iter().map(String::as_str).collect();
    want.sort_unstable();
    assert_eq!(ids, want);
    let isum: f64 = data.iter().map(|r| r[2].parse::<f64>().unwrap()).sum();
    assert!((isum - session_credits).abs() < 1e-6);
    assert!(data.iter().all(|r| r[2] == r[3] && &r[4] == "2"), "llm cost = cost; user + assistant messages: {data:?}");
    assert_eq!(data.iter().filter(|r| &r[5] == TEAM_ID).count(), 1);

    // Retention: the file goes, the status stays readable.
    let (_, st) = invoke(&s, "get_single_gumloop_data_export_by_id", json!({"id": i_id})).await;
    assert_eq!(st["state"], "COMPLETED");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exports_survive_a_restart_and_files_expire() {
    let fake = FakeLlm::start().await;
    let url = fake.openai_base_url();
    // Killed right after the request (the job may be claimed already): it resumes after the restart.
    let mut s =
        Server::start(bin(), &[("OPENAI_BASE_URL", &url), ("OPENAI_API_KEY", "sk-test"), ("OPENLOOP_LOG", "error"), ("OPENLOOP_EXPORT_RETENTION_SECS", "2")]);
    let (st, b, _) = send(
        s.post(
            ADMIN_KEY,
            "/export_data",
            base("agents", "agent_id")
                .as_object()
                .cloned()
                .map(|mut m| {
                    m.insert("include_all_workspaces".into(), json!(true));
                    Value::Object(m)
                })
                .unwrap(),
        ),
    )
    .await;
    assert_eq!(st, 200, "{b}");
    let id = b["data_export_id"].as_str().unwrap().to_string();
    s.kill9();
    s.restart();
    let status = |s: &Server| {
        let req = s.get(ADMIN_KEY, &format!("/export_status?user_id={ADMIN_USER}&data_export_id={id}"));
        async move { send(req).await.1 }
    };
    let mut b = status(&s).await;
    for _ in 0..300 {
        if b["state"] == "COMPLETED" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
        b = status(&s).await;
    }
    assert_eq!(b["state"], "COMPLETED", "{b}");
    let dl = format!("/export_status?user_id={ADMIN_USER}&data_export_id={id}&download=true");
    assert_eq!(s.get(ADMIN_KEY, &dl).send().await.unwrap().status(), 200);
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let (st, body, _) = send(s.get(ADMIN_KEY, &dl)).await;
    assert_eq!((st, body), (404, json!({"error": "export_file_unavailable"})));
    assert_eq!(status(&s).await["state"], "COMPLETED", "the status stays readable");
}
