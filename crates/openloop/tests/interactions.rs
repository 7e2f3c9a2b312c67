//! Black-box tests of the legacy interactions API (§8.1) and the durable runtime:
//! start_agent → worker → fake provider (real HTTP) → tools → agent_status.

use std::time::Duration;

use serde_json::{json, Value};
use testkit::fake_llm::{FakeLlm, Reply};
use testkit::{create_agent as agent, send, Server, ADMIN_KEY, ADMIN_USER, TEAM_ID, TEAM_KEY};

const MISSING: &str = "Authorization header with Bearer token or api_key query parameter is required";

fn bin() -> &'static std::path::Path {
    env!("CARGO_BIN_EXE_openloop").as_ref()
}

async fn start(fake: &FakeLlm, extra: &[(&str, &str)]) -> Server {
    testkit::start_with_fake(bin(), fake, extra)
}

async fn start_agent(s: &Server, body: Value) -> (u16, Value) {
    let (st, b, _) = send(s.post(ADMIN_KEY, "/start_agent", body)).await;
    (st, b)
}

async fn poll(s: &Server, id: &str) -> Value {
    for _ in 0..400 {
        let (st, b, _) = send(s.get(ADMIN_KEY, &format!("/agent_status/{id}?user_id={ADMIN_USER}"))).await;
        assert_eq!(st, 200, "{b}");
        if b["state"] != "ASYNC_PROCESSING" {
            return b;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("interaction {id} did not finish");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn l1_l2_seed_flow_completes_with_messages_and_response() {
    let fake = FakeLlm::start().await;
    fake.push(Reply::text_chunks("I've summarized the report.", 4));
    let s = start(&fake, &[]).await;
    let a = agent(&s, json!({"name": "Summarizer", "model_name": "gpt-4o-mini", "system_prompt": "Be brief."})).await;
    let (st, b) = start_agent(&s, json!({"gummie_id": a, "message": "Summarize the latest sales report", "user_id": ADMIN_USER})).await;
    assert_eq!(st, 202, "{b}");
    assert_eq!(b["status"], "processing");
    let id = b["interaction_id"].as_str().unwrap().to_string();
    assert_eq!(b.as_object().unwrap().len(), 2);
    let done = poll(&s, &id).await;
    assert_eq!(done["state"], "COMPLETED", "{done}");
    assert_eq!(done["gummie_id"], a.as_str());
    assert_eq!(done["response"], "I've summarized the report.");
    let ts = done["created_ts"].as_str().unwrap();
    assert!(ts.ends_with("+00:00") && ts.len() == "2026-03-05T10:30:00.000000+00:00".len(), "{ts}");
    let msgs = done["messages"].as_array().unwrap();
    assert_eq!(msgs.len(), 2);
    assert_eq!(msgs[0]["role"], "user");
    assert_eq!(msgs[0]["content"], "Summarize the latest sales report");
    assert_eq!(msgs[0]["parts"], json!([]));
    assert_eq!(msgs[1]["role"], "assistant");
    assert!(msgs[1].get("content").is_none(), "assistant messages carry no content key");
    assert_eq!(msgs[1]["parts"][0]["type"], "text");
    let stamp = msgs[1]["timestamp"].as_str().unwrap();
    assert_eq!(stamp.len(), "2026-03-05T10:30:15.000000".len());
    assert!(done.get("error_message").is_none());
    // The model saw the system prompt (preamble + the agent's) and the user message.
    let req = fake.last_request().unwrap();
    let sys = req["messages"][0]["content"].as_str().unwrap();
    assert!(sys.contains("Be brief.") && sys.contains("not instructions"));
    assert_eq!(req["model"], "gpt-4o-mini");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn l1_agent_uses_tools_and_records_invocations() {
    let fake = FakeLlm::start().await;
    fake.push(Reply::tool_call("current_time", json!({})).with_text("Let me check the time."));
    fake.push(Reply::text("It is late."));
    let s = start(&fake, &[]).await;
    let a = agent(&s, json!({"name": "Clock", "model_name": "gpt-4o-mini"})).await;
    let (_, b) = start_agent(&s, json!({"gummie_id": a, "message": "what time is it?", "user_id": ADMIN_USER})).await;
    let done = poll(&s, b["interaction_id"].as_str().unwrap()).await;
    assert_eq!(done["state"], "COMPLETED", "{done}");
    let parts = done["messages"][1]["parts"].as_array().unwrap();
    let inv = parts.iter().find(|p| p["type"] == "tool_invocation").expect("tool part");
    assert_eq!(inv["toolName"], "current_time");
    assert_eq!(inv["toolCallState"], "completed");
    assert!(inv["result"]["result"]["utc"].as_str().unwrap().ends_with('Z'));
    assert_eq!(inv["result"]["args"], json!({}));
    for p in parts {
        for k in p.as_object().unwrap().keys() {
            assert!(
                ["id", "type", "text", "reasoning", "toolCallId", "toolName", "toolCallState", "result", "error", "file"].contains(&k.as_str()),
                "unsanitized key {k}"
            );
        }
    }
    assert_eq!(done["response"], "Let me check the time.\nIt is late.");
    // The second model call carried the tool result.
    let second = fake.requests().pop().unwrap();
    let tool_msg = second["messages"].as_array().unwrap().iter().find(|m| m["role"] == "tool").expect("tool message");
    assert!(tool_msg["content"].as_str().unwrap().contains("utc"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn l1_web_fetch_refuses_loopback_as_a_tool_error_not_a_run_failure() {
    let fake = FakeLlm::start().await;
    fake.push(Reply::tool_call("web_fetch", json!({"url": "http://127.0.0.1:9/secret"})));
    fake.push(Reply::text("Could not fetch it."));
    let s = start(&fake, &[]).await;
    let a = agent(&s, json!({"name": "Fetcher", "model_name": "gpt-4o-mini", "tools": [{"type": "web_fetch"}]})).await;
    let (_, b) = start_agent(&s, json!({"gummie_id": a, "message": "fetch it", "user_id": ADMIN_USER})).await;
    let done = poll(&s, b["interaction_id"].as_str().unwrap()).await;
    assert_eq!(done["state"], "COMPLETED", "{done}");
    let inv = done["messages"][1]["parts"].as_array().unwrap().iter().find(|p| p["type"] == "tool_invocation").cloned().unwrap();
    assert_eq!(inv["toolCallState"], "error");
    assert!(inv["result"]["result"].as_str().unwrap().starts_with("blocked by SSRF policy"), "{inv}");
    // web_fetch was offered to the model; an agent without it does not get it.
    let first = &fake.requests()[0];
    let names: Vec<&str> = first["tools"].as_array().unwrap().iter().map(|t| t["function"]["name"].as_str().unwrap()).collect();
    assert!(names.contains(&"web_fetch") && names.contains(&"current_time"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn l1_provider_errors_fail_the_interaction_with_a_message() {
    let fake = FakeLlm::start().await;
    for _ in 0..3 {
        fake.push(Reply::error(500, "upstream exploded"));
    }
    let s = start(&fake, &[]).await;
    let a = agent(&s, json!({"name": "x", "model_name": "gpt-4o-mini"})).await;
    let (_, b) = start_agent(&s, json!({"gummie_id": a, "message": "hi", "user_id": ADMIN_USER})).await;
    let done = poll(&s, b["interaction_id"].as_str().unwrap()).await;
    assert_eq!(done["state"], "FAILED");
    let msg = done["error_message"].as_str().unwrap();
    assert!(msg.starts_with("ProviderError: ") && msg.contains("upstream exploded"), "{msg}");
    assert!(!msg.contains("sk-test"));
    assert!(done.get("messages").is_none() && done.get("response").is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn l1_unconfigured_provider_fails_with_provider_not_configured() {
    let fake = FakeLlm::start().await;
    let s = start(&fake, &[]).await;
    let a = agent(&s, json!({"name": "x", "model_name": "claude-3-5-haiku-latest"})).await;
    let (_, b) = start_agent(&s, json!({"gummie_id": a, "message": "hi", "user_id": ADMIN_USER})).await;
    let done = poll(&s, b["interaction_id"].as_str().unwrap()).await;
    assert_eq!(done["state"], "FAILED");
    assert!(done["error_message"].as_str().unwrap().starts_with("ProviderNotConfigured: "), "{done}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn l1_continuation_reuses_the_interaction_and_keeps_history() {
    let fake = FakeLlm::start().await;
    fake.push(Reply::text("first answer"));
    let s = start(&fake, &[]).await;
    let a = agent(&s, json!({"name": "x", "model_name": "gpt-4o-mini"})).await;
    let (_, b) = start_agent(&s, json!({"gummie_id": a, "message": "one", "user_id": ADMIN_USER})).await;
    let id = b["interaction_id"].as_str().unwrap().to_string();
    poll(&s, &id).await;
    fake.push(Reply::text("second answer").first_byte_delay(Duration::from_millis(600)));
    let (st, b) = start_agent(&s, json!({"gummie_id": a, "message": "two", "user_id": ADMIN_USER, "interaction_id": id})).await;
    assert_eq!((st, b["interaction_id"].as_str()), (202, Some(id.as_str())));
    // While it runs, a further continuation is refused.
    let (st, b) = start_agent(&s, json!({"gummie_id": a, "message": "three", "user_id": ADMIN_USER, "interaction_id": id})).await;
    assert_eq!((st, b), (409, json!({"error": "interaction_not_in_terminal_state"})));
    let (st, b, _) = send(s.get(ADMIN_KEY, &format!("/agent_status/{id}?user_id={ADMIN_USER}"))).await;
    assert_eq!((st, b["state"].as_str()), (200, Some("ASYNC_PROCESSING")));
    assert!(b.get("messages").is_none());
    let done = poll(&s, &id).await;
    assert_eq!(done["response"], "second answer");
    assert_eq!(done["messages"].as_array().unwrap().len(), 4);
    let last = fake.requests().pop().unwrap();
    let roles: Vec<&str> = last["messages"].as_array().unwrap().iter().map(|m| m["role"].as_str().unwrap()).collect();
    assert_eq!(roles, vec!["system", "user", "assistant", "user"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn l1_error_table_in_documented_order() {
    let fake = FakeLlm::start().await;
    let s = start(&fake, &[]).await;
    let a = agent(&s, json!({"name": "x", "model_name": "gpt-4o-mini"})).await;
    let cases: Vec<(Option<&str>, Value, u16, &str)> = vec![
        (None, json!({}), 400, "gummie_id is required"),
        (None, json!({"gummie_id": a}), 400, "message is required"),
        (None, json!({"gummie_id": a, "message": "  "}), 400, "message is required"),
        (None, json!({"gummie_id": a, "message": "hi"}), 400, "project_id or user_id is required"),
        (None, json!({"gummie_id": a, "message": "hi", "user_id": ADMIN_USER}), 401, MISSING),
        (Some("olk_wrong"), json!({"gummie_id": a, "message": "hi", "user_id": ADMIN_USER}), 403, "Unauthorized"),
        (Some(ADMIN_KEY), json!({"gummie_id": a, "message": "hi", "user_id": "usr_other"}), 403, "Unauthorized"),
        (Some(ADMIN_KEY), json!({"gummie_id": a, "message": "hi", "project_id": "team_nope"}), 403, "Unauthorized"),
        (Some(ADMIN_KEY), json!({"gummie_id": "agt_missing", "message": "hi", "user_id": ADMIN_USER}), 404, "gummie_not_found"),
        (Some(ADMIN_KEY), json!({"gummie_id": a, "message": "hi", "user_id": ADMIN_USER, "interaction_id": "sess_missing"}), 404, "interaction_not_found"),
    ];
    for (key, body, status, error) in cases {
        let mut req = s.client.post(s.url("/start_agent")).json(&body);
        if let Some(k) = key {
            req = req.bearer_auth(k);
        }
        let (st, b, _) = send(req).await;
        assert_eq!((st, b.clone()), (status, json!({ "error": error })), "{body}");
    }
    // Another agent's interaction → interaction_gummie_mismatch.
    let other = agent(&s, json!({"name": "y", "model_name": "gpt-4o-mini"})).await;
    let (_, b) = start_agent(&s, json!({"gummie_id": a, "message": "hi", "user_id": ADMIN_USER})).await;
    let id = b["interaction_id"].as_str().unwrap().to_string();
    poll(&s, &id).await;
    let (st, b) = start_agent(&s, json!({"gummie_id": other, "message": "hi", "user_id": ADMIN_USER, "interaction_id": id})).await;
    assert_eq!((st, b), (400, json!({"error": "interaction_gummie_mismatch"})));
    // Another tenant sees neither the agent nor the interaction.
    let (other_user, other_key) = s.new_user("org_other");
    let (st, b, _) = send(s.post(&other_key, "/start_agent", json!({"gummie_id": a, "message": "hi", "user_id": other_user}))).await;
    assert_eq!((st, b), (404, json!({"error": "gummie_not_found"})));
    let (st, b, _) = send(s.get(&other_key, &format!("/agent_status/{id}"))).await;
    assert_eq!((st, b), (404, json!({"error": "interaction_not_found"})));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn l2_errors_and_identity_rules() {
    let fake = FakeLlm::start().await;
    let s = start(&fake, &[]).await;
    let a = agent(&s, json!({"name": "team agent", "model_name": "gpt-4o-mini", "team_id": TEAM_ID})).await;
    let (_, b) = start_agent(&s, json!({"gummie_id": a, "message": "hi", "project_id": TEAM_ID, "user_id": ADMIN_USER})).await;
    let id = b["interaction_id"].as_str().unwrap().to_string();
    poll(&s, &id).await;
    let (st, b, _) = send(s.client.get(s.url(&format!("/agent_status/{id}")))).await;
    assert_eq!((st, b), (401, json!({"error": MISSING})));
    let (st, b, _) = send(s.get("olk_wrong", &format!("/agent_status/{id}"))).await;
    assert_eq!((st, b), (401, json!({"error": MISSING})));
    let (st, b, _) = send(s.get(ADMIN_KEY, "/agent_status/sess_nope")).await;
    assert_eq!((st, b), (404, json!({"error": "interaction_not_found"})));
    let (st, b, _) = send(s.get(ADMIN_KEY, &format!("/agent_status/{id}?user_id=usr_other"))).await;
    assert_eq!((st, b), (403, json!({"error": "unauthorized"})));
    // Identity inferred from the key when neither user_id nor project_id is sent.
    let (st, b, _) = send(s.get(ADMIN_KEY, &format!("/agent_status/{id}"))).await;
    assert_eq!((st, b["state"].as_str()), (200, Some("COMPLETED")));
    // Team key with project_id, acting as its creating admin.
    let (st, _, _) = send(s.get(TEAM_KEY, &format!("/agent_status/{id}?project_id={TEAM_ID}"))).await;
    assert_eq!(st, 200);
    // A team member who did not start it sees that it exists but may not read it.
    let (member, member_key) = s.new_user("org_default");
    s.cli(&["teams", "add-member", "--team", TEAM_ID, "--user", &member]);
    let (st, b, _) = send(s.get(&member_key, &format!("/agent_status/{id}"))).await;
    assert_eq!((st, b), (403, json!({"error": "unauthorized"})));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn l1_idempotency_key_replays_without_new_work() {
    let fake = FakeLlm::start().await;
    let s = start(&fake, &[]).await;
    let a = agent(&s, json!({"name": "x", "model_name": "gpt-4o-mini"})).await;
    let body = json!({"gummie_id": a, "message": "once", "user_id": ADMIN_USER});
    let (st1, b1, _) = send(s.post(ADMIN_KEY, "/start_agent", body.clone()).header("Idempotency-Key", "k-1")).await;
    let (st2, b2, h2) = send(s.post(ADMIN_KEY, "/start_agent", body).header("Idempotency-Key", "k-1")).await;
    assert_eq!((st1, st2), (202, 202));
    assert_eq!(b1, b2);
    assert_eq!(h2["idempotent-replayed"], "true");
    poll(&s, b1["interaction_id"].as_str().unwrap()).await;
    assert_eq!(fake.request_count(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrency_limit_rejects_or_queues() {
    let fake = FakeLlm::start().await;
    fake.set_default(Reply::text("slow").first_byte_delay(Duration::from_millis(800)));
    let s = start(&fake, &[("OPENLOOP_AGENT_MAX_CONCURRENCY", "1"), ("OPENLOOP_CONCURRENCY_OVERFLOW", "reject")]).await;
    let a = agent(&s, json!({"name": "x", "model_name": "gpt-4o-mini"})).await;
    let (st, b1) = start_agent(&s, json!({"gummie_id": a, "message": "1", "user_id": ADMIN_USER})).await;
    assert_eq!(st, 202);
    let (st, b, h) = send(s.post(ADMIN_KEY, "/start_agent", json!({"gummie_id": a, "message": "2", "user_id": ADMIN_USER}))).await;
    assert_eq!((st, b), (429, json!({"error": "agent_concurrency_limit"})));
    assert!(h.get("retry-after").is_some());
    poll(&s, b1["interaction_id"].as_str().unwrap()).await;

    // Queue mode: the second run waits for the slot, then completes.
    let s = start(&fake, &[("OPENLOOP_AGENT_MAX_CONCURRENCY", "1")]).await;
    let a = agent(&s, json!({"name": "x", "model_name": "gpt-4o-mini"})).await;
    let (_, b1) = start_agent(&s, json!({"gummie_id": a, "message": "1", "user_id": ADMIN_USER})).await;
    let (st, b2) = start_agent(&s, json!({"gummie_id": a, "message": "2", "user_id": ADMIN_USER})).await;
    assert_eq!((st, b2["status"].as_str()), (202, Some("processing")));
    let d1 = poll(&s, b1["interaction_id"].as_str().unwrap()).await;
    let d2 = poll(&s, b2["interaction_id"].as_str().unwrap()).await;
    assert_eq!((d1["state"].as_str(), d2["state"].as_str()), (Some("COMPLETED"), Some("COMPLETED")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_kill9_mid_run_then_restart_every_interaction_terminal_without_duplicates() {
    let fake = FakeLlm::start().await;
    // Every model call takes a while, so the kill lands mid-run; some runs use a tool first.
    fake.set_default(Reply::text("done after a while").first_byte_delay(Duration::from_millis(1500)));
    let mut s = start(&fake, &[("OPENLOOP_LEASE_SECS", "2"), ("OPENLOOP_AGENT_MAX_CONCURRENCY", "20"), ("OPENLOOP_ORG_MAX_CONCURRENCY", "40")]).await;
    let a = agent(&s, json!({"name": "x", "model_name": "gpt-4o-mini"})).await;
    let mut ids = Vec::new();
    for i in 0..8 {
        if i % 2 == 0 {
            fake.on_user_contains(format!("job {i}"), Reply::tool_call("current_time", json!({})));
        }
        let (st, b) = start_agent(&s, json!({"gummie_id": a, "message": format!("job {i}"), "user_id": ADMIN_USER})).await;
        assert_eq!(st, 202);
        ids.push(b["interaction_id"].as_str().unwrap().to_string());
    }
    tokio::time::sleep(Duration::from_millis(700)).await;
    s.kill9();
    s.restart();
    for id in &ids {
        let done = poll(&s, id).await;
        assert_eq!(done["state"], "COMPLETED", "{done}");
        let msgs = done["messages"].as_array().unwrap();
        assert_eq!(msgs.len(), 2, "exactly one user and one assistant message: {done}");
        let mut part_ids: Vec<&str> = msgs[1]["parts"].as_array().unwrap().iter().map(|p| p["id"].as_str().unwrap()).collect();
        let n = part_ids.len();
        part_ids.sort();
        part_ids.dedup();
        assert_eq!(part_ids.len(), n, "duplicate parts: {done}");
        let tools = msgs[1]["parts"].as_array().unwrap().iter().filter(|p| p["type"] == "tool_invocation").count();
        assert!(tools <= 1, "a tool call recorded twice: {done}");
    }
}
