//! §10 from inside: an agent given `{"type": "openloop_api"}` orchestrates other agents
//! through Openloop's own API tools, with the rights of the user who sent the message and
//! under the agent's approval mode.

use std::time::Duration;

use serde_json::{json, Value};
use testkit::fake_llm::{FakeLlm, Reply};
use testkit::{create_agent, send, Server, ADMIN_KEY, ADMIN_USER};

fn bin() -> &'static std::path::Path {
    env!("CARGO_BIN_EXE_openloop").as_ref()
}

async fn wait_state(s: &Server, session: &str, want: &[&str]) -> Value {
    for _ in 0..300 {
        let (_, b, _) = send(s.get(ADMIN_KEY, &format!("/sessions/{session}"))).await;
        if want.contains(&b["session"]["state"].as_str().unwrap_or("")) {
            return b;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("session {session} never reached {want:?}");
}

fn tool_parts(session: &Value) -> Vec<Value> {
    session["session"]["messages"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|m| m["parts"].as_array().cloned().unwrap_or_default())
        .filter(|p| p["type"] == "tool_invocation")
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openloop_api_agent_starts_another_agents_session_as_the_caller() {
    let fake = FakeLlm::start().await;
    let s = testkit::start_with_fake(bin(), &fake, &[]);
    let worker = create_agent(&s, json!({"name": "Worker", "model_name": "gpt-4o-mini"})).await;
    let boss = create_agent(
        &s,
        json!({"name": "Boss", "model_name": "gpt-4o-mini", "tools": [{"type": "openloop_api", "restricted_tools": ["create_a_gumloop_session", "get_single_gumloop_session_by_id"]}]}),
    )
    .await;
    fake.on_user_contains("please orchestrate", Reply::tool_call("create_a_gumloop_session", json!({"agent_id": worker, "input": "do the work"})));
    fake.on_user_contains("please orchestrate", Reply::text("Started the worker."));
    fake.on_user_contains("do the work", Reply::text("work done"));
    let (st, b, _) = send(s.post(ADMIN_KEY, &format!("/agents/{boss}/sessions"), json!({"input": "please orchestrate"}))).await;
    assert_eq!(st, 202, "{b}");
    let done = wait_state(&s, b["session"]["id"].as_str().unwrap(), &["completed", "failed"]).await;
    assert_eq!(done["session"]["state"], "completed", "{done}");
    let calls = tool_parts(&done);
    assert_eq!(calls.len(), 1, "{calls:?}");
    assert_eq!(calls[0]["toolName"], "create_a_gumloop_session");
    assert_eq!(calls[0]["toolCallState"], "completed", "{:?}", calls[0]);
    let result = &calls[0]["result"]["result"];
    assert_eq!(result["status"], 202, "{result}");
    let child = result["body"]["session"]["id"].as_str().expect("the created session").to_string();
    assert_eq!(result["body"]["session"]["type"], "tool");
    // The child session belongs to the user who sent the message and runs the worker.
    let child_done = wait_state(&s, &child, &["completed", "failed"]).await;
    assert_eq!(child_done["session"]["agent_id"], worker.as_str());
    assert_eq!(child_done["session"]["creator"]["id"], ADMIN_USER);
    assert_eq!(child_done["session"]["state"], "completed", "{child_done}");
    // Only the restricted tools (plus the built-ins) were offered to the model.
    let first = fake.requests().into_iter().find(|r| r.to_string().contains("please orchestrate")).unwrap();
    let names: Vec<String> = first["tools"].as_array().unwrap().iter().filter_map(|t| t["function"]["name"].as_str().map(str::to_string)).collect();
    assert!(names.contains(&"create_a_gumloop_session".to_string()) && names.contains(&"get_single_gumloop_session_by_id".to_string()), "{names:?}");
    assert!(!names.contains(&"list_all_gumloop_agents".to_string()), "restricted_tools limits the catalogue: {names:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openloop_api_write_tools_wait_for_approval_in_write_mode() {
    let fake = FakeLlm::start().await;
    let s = testkit::start_with_fake(bin(), &fake, &[]);
    let worker = create_agent(&s, json!({"name": "Worker", "model_name": "gpt-4o-mini"})).await;
    let boss = create_agent(&s, json!({"name": "Careful", "model_name": "gpt-4o-mini", "tools": [{"type": "openloop_api", "approval_mode": "write"}]})).await;
    fake.on_user_contains("look then start", Reply::tool_call("list_all_gumloop_agents", json!({})));
    fake.on_user_contains("look then start", Reply::tool_call("create_a_gumloop_session", json!({"agent_id": worker, "input": "go"})));
    let (_, b, _) = send(s.post(ADMIN_KEY, &format!("/agents/{boss}/sessions"), json!({"input": "look then start"}))).await;
    let paused = wait_state(&s, b["session"]["id"].as_str().unwrap(), &["approval_required", "completed", "failed"]).await;
    assert_eq!(paused["session"]["state"], "approval_required", "{paused}");
    let pending = paused["session"]["pending_approvals"].as_array().unwrap();
    assert_eq!(pending.len(), 1, "{pending:?}");
    assert_eq!(pending[0]["tool_name"], "create_a_gumloop_session", "the read-only list ran without approval");
    let listed = tool_parts(&paused).into_iter().find(|p| p["toolName"] == "list_all_gumloop_agents").expect("list ran");
    assert_eq!(listed["result"]["result"]["status"], 200);
    // Nothing was created while waiting.
    let (_, sessions, _) = send(s.get(ADMIN_KEY, &format!("/agents/{worker}/sessions"))).await;
    assert_eq!(sessions["sessions"], json!([]));
}
