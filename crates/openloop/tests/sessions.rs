//! Black-box tests of §8.2 (S1–S16) and §12 streaming against a spawned server and a
//! fake provider over real HTTP.

use std::time::Duration;

use base64::Engine as _;
use serde_json::{json, Value};
use testkit::fake_llm::{FakeLlm, Reply};
use testkit::{create_agent as agent, send, Server, ADMIN_KEY};

fn bin() -> &'static std::path::Path {
    env!("CARGO_BIN_EXE_openloop").as_ref()
}

async fn start(fake: &FakeLlm, extra: &[(&str, &str)]) -> Server {
    testkit::start_with_fake(bin(), fake, extra)
}

async fn wait_state(s: &Server, id: &str, want: &[&str]) -> Value {
    let mut last = Value::Null;
    for _ in 0..300 {
        let (_, b, _) = send(s.get(ADMIN_KEY, &format!("/sessions/{id}"))).await;
        if want.contains(&b["session"]["state"].as_str().unwrap_or("")) {
            return b["session"].clone();
        }
        last = b;
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
    panic!("session {id} never reached {want:?}: {last}");
}

/// Reads an SSE response into (event name, data) pairs, checking the framing.
async fn read_sse(resp: reqwest::Response) -> Vec<(String, Value)> {
    assert_eq!(resp.status(), 200);
    assert!(resp.headers()["content-type"].to_str().unwrap().starts_with("text/event-stream"));
    let text = resp.text().await.unwrap();
    let mut out = Vec::new();
    for block in text.split("\n\n").filter(|b| !b.trim().is_empty()) {
        let mut name = String::new();
        let mut data = Value::Null;
        for line in block.lines() {
            assert!(!line.starts_with("id:") && !line.starts_with("retry:"), "no id/retry lines: {line}");
            if let Some(n) = line.strip_prefix("event: ") {
                name = n.to_string();
            } else if let Some(d) = line.strip_prefix("data: ") {
                data = serde_json::from_str(d).unwrap();
            }
        }
        if !name.is_empty() {
            assert_eq!(data["type"], name.as_str());
            out.push((name, data));
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s1_no_input_is_201_idle_and_input_is_202_processing() {
    let fake = FakeLlm::start().await;
    let s = start(&fake, &[]).await;
    let a = agent(&s, json!({"name": "Helper", "model_name": "gpt-4o-mini"})).await;
    let (st, b, _) = send(s.post(ADMIN_KEY, &format!("/agents/{a}/sessions"), json!({}))).await;
    assert_eq!(st, 201, "{b}");
    assert_eq!((b["session"]["state"].as_str(), &b["session"]["messages"], &b["queue_position"]), (Some("idle"), &json!([]), &Value::Null));
    assert_eq!(b["session"]["name"], "Helper");
    let (st, b, _) = send(s.post(
        ADMIN_KEY,
        &format!("/agents/{a}/sessions"),
        json!({"input": ["line one", {"type": "text", "text": "line two"}], "session_id": "my-sess", "name": "  Named  ", "metadata": {"k": 1}}),
    ))
    .await;
    assert_eq!(st, 202, "{b}");
    assert_eq!(b["session"]["id"], "my-sess");
    assert_eq!(b["session"]["name"], "Named");
    assert_eq!(b["session"]["messages"][0]["content"], "line one\nline two");
    assert!(b["session"].get("metadata").is_none());
    let (st, b, _) = send(s.post(ADMIN_KEY, &format!("/agents/{a}/sessions"), json!({"session_id": "my-sess"}))).await;
    assert_eq!((st, b["error"]["code"].as_str()), (409, Some("session_already_exists")));
    for (body, code, param) in [
        (json!({"input": "  "}), "invalid_input", "input"),
        (json!({"input": [{"type": "image", "url": "x"}]}), "invalid_input", "input[0]"),
        (json!({"session_id": "bad id"}), "invalid_id", "session_id"),
        (json!({"name": ""}), "invalid_name", "name"),
    ] {
        let (st, b, _) = send(s.post(ADMIN_KEY, &format!("/agents/{a}/sessions"), body.clone())).await;
        assert_eq!((st, b["error"]["code"].as_str(), b["error"]["param"].as_str()), (400, Some(code), Some(param)), "{body}");
    }
    let done = wait_state(&s, "my-sess", &["completed"]).await;
    assert_eq!(done["messages"][1]["content"], "ok: line one\nline two");
    assert!(done["usage"]["credit_cost"].as_f64().unwrap() > 0.0);
    // Another tenant sees nothing.
    let (_, other_key) = s.new_user("org_other");
    let (st, b, _) = send(s.get(&other_key, "/sessions/my-sess")).await;
    assert_eq!((st, b["error"]["code"].as_str()), (404, Some("session_not_found")));
    let (st, b, _) = send(s.post(&other_key, &format!("/agents/{a}/sessions"), json!({}))).await;
    assert_eq!((st, b["error"]["code"].as_str()), (404, Some("agent_not_found")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s2_s5_stream_then_resume_from_any_cursor_even_after_restart() {
    let fake = FakeLlm::start().await;
    fake.set_default(Reply::text_chunks("streamed answer here", 4));
    let mut s = start(&fake, &[]).await;
    let a = agent(&s, json!({"name": "x", "model_name": "gpt-4o-mini"})).await;
    let resp =
        s.client.post(s.url(&format!("/agents/{a}/sessions"))).bearer_auth(ADMIN_KEY).json(&json!({"input": "hi", "stream": true})).send().await.unwrap();
    let events = read_sse(resp).await;
    assert_eq!(events[0].0, "start");
    let sid = events[0].1["interaction_id"].as_str().unwrap().to_string();
    let text: String = events.iter().filter(|(n, _)| n == "text-delta").map(|(_, d)| d["delta"].as_str().unwrap()).collect();
    assert_eq!(text, "streamed answer here");
    let last = &events.last().unwrap().1;
    assert_eq!((last["type"].as_str(), last["final"].as_bool(), last["finishReason"].as_str()), (Some("finish"), Some(true), Some("stop")));
    let seqs: Vec<i64> = events.iter().map(|(_, d)| d["stream_cursor"].as_str().unwrap().rsplit_once(':').unwrap().1.parse().unwrap()).collect();
    assert!(seqs.windows(2).all(|w| w[1] == w[0] + 1), "{seqs:?}");
    let mid = events[3].1["stream_cursor"].as_str().unwrap().to_string();

    s.kill9();
    s.restart();
    let resp = s.client.get(s.url(&format!("/sessions/{sid}?stream=true&last_cursor={mid}"))).bearer_auth(ADMIN_KEY).send().await.unwrap();
    let replay = read_sse(resp).await;
    assert_eq!(replay.len(), events.len() - 4);
    assert_eq!(replay.iter().map(|(_, d)| d.clone()).collect::<Vec<_>>(), events[4..].iter().map(|(_, d)| d.clone()).collect::<Vec<_>>());
    let resp = s.client.get(s.url(&format!("/sessions/{sid}?stream=true&last_cursor={sid}:0"))).bearer_auth(ADMIN_KEY).send().await.unwrap();
    assert_eq!(read_sse(resp).await.len(), events.len());
    for bad in ["garbage", "sess_other:1", &format!("{sid}:9999")] {
        let resp = s.client.get(s.url(&format!("/sessions/{sid}?stream=true&last_cursor={bad}"))).bearer_auth(ADMIN_KEY).send().await.unwrap();
        let ev = read_sse(resp).await;
        assert_eq!(ev.len(), 1);
        assert_eq!((ev[0].1["finishReason"].as_str(), ev[0].1["final"].as_bool()), (Some("not_resumable"), Some(true)));
    }
    // At the end: one synthetic finish repeating the reason.
    let end = events.last().unwrap().1["stream_cursor"].as_str().unwrap().to_string();
    let resp = s.client.get(s.url(&format!("/sessions/{sid}?stream=true&last_cursor={end}"))).bearer_auth(ADMIN_KEY).send().await.unwrap();
    let ev = read_sse(resp).await;
    assert_eq!((ev.len(), ev[0].1["finishReason"].as_str()), (1, Some("stop")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s8_disconnecting_reader_never_cancels_the_run() {
    let fake = FakeLlm::start().await;
    fake.set_default(Reply::text_chunks("slow but sure", 5).chunk_delay(Duration::from_millis(150)));
    let s = start(&fake, &[]).await;
    let a = agent(&s, json!({"name": "x", "model_name": "gpt-4o-mini"})).await;
    let (_, b, _) = send(s.post(ADMIN_KEY, &format!("/agents/{a}/sessions"), json!({}))).await;
    let sid = b["session"]["id"].as_str().unwrap().to_string();
    let resp =
        s.client.post(s.url(&format!("/sessions/{sid}/messages"))).bearer_auth(ADMIN_KEY).json(&json!({"input": "go", "stream": true})).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    drop(resp);
    let done = wait_state(&s, &sid, &["completed"]).await;
    assert_eq!(done["messages"][1]["content"], "slow but sure");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s7_busy_is_409_queued_delivery_runs_after_and_s9_cancel_stops() {
    let fake = FakeLlm::start().await;
    fake.push(Reply::text("first").first_byte_delay(Duration::from_millis(800)));
    fake.push(Reply::text("second"));
    let s = start(&fake, &[]).await;
    let a = agent(&s, json!({"name": "x", "model_name": "gpt-4o-mini"})).await;
    let (_, b, _) = send(s.post(ADMIN_KEY, &format!("/agents/{a}/sessions"), json!({"input": "one"}))).await;
    let sid = b["session"]["id"].as_str().unwrap().to_string();
    let (st, b, _) = send(s.post(ADMIN_KEY, &format!("/sessions/{sid}/messages"), json!({"input": "now"}))).await;
    assert_eq!((st, b["error"]["code"].as_str()), (409, Some("interaction_not_in_terminal_state")));
    let req = || s.post(ADMIN_KEY, &format!("/sessions/{sid}/messages"), json!({"input": "two", "delivery": "queued"})).header("Idempotency-Key", "q-1");
    let (st, r1, _) = send(req()).await;
    let (st2, r2, h) = send(req()).await;
    assert_eq!((st, st2), (202, 202));
    assert_eq!(r1, r2);
    assert_eq!(h["idempotent-replayed"], "true");
    assert!(r1["message_id"].as_str().unwrap().starts_with("qm_"));
    let (_, q, _) = send(s.get(ADMIN_KEY, &format!("/sessions/{sid}/queue"))).await;
    assert_eq!(q["queue"].as_array().unwrap().len(), 1, "queued exactly once: {q}");
    let done = wait_state(&s, &sid, &["completed"]).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let done = if done["messages"].as_array().unwrap().len() < 4 { wait_state(&s, &sid, &["completed"]).await } else { done };
    let (_, b, _) = send(s.get(ADMIN_KEY, &format!("/sessions/{sid}"))).await;
    let contents: Vec<&str> = b["session"]["messages"].as_array().unwrap().iter().map(|m| m["content"].as_str().unwrap_or("")).collect();
    assert_eq!(contents, vec!["one", "first", "two", "second"], "{done}");
    assert_eq!(b["session"]["messages"][2]["id"], r1["message_id"], "the queued id is kept");

    // S9: a hanging provider call is aborted.
    fake.push(Reply::hang());
    let (st, _, _) = send(s.post(ADMIN_KEY, &format!("/sessions/{sid}/messages"), json!({"input": "hang"}))).await;
    assert_eq!(st, 202);
    wait_state(&s, &sid, &["processing"]).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let (st, b, _) = send(s.post(ADMIN_KEY, &format!("/sessions/{sid}/cancel"), json!({}))).await;
    assert_eq!((st, b["session"]["state"].as_str()), (200, Some("cancelled")));
    assert!(fake.wait_for_disconnects(1, Duration::from_secs(3)).await, "provider request aborted");
    let s2 = wait_state(&s, &sid, &["cancelled"]).await;
    assert_eq!(s2["state"], "cancelled");
    let (st, b, _) = send(s.post(ADMIN_KEY, &format!("/sessions/{sid}/cancel"), json!({}))).await;
    assert_eq!((st, b["session"]["state"].as_str()), (200, Some("cancelled")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s12_s16_queue_edit_delete_full_and_send_now() {
    let fake = FakeLlm::start().await;
    fake.set_default(Reply::text("slow").first_byte_delay(Duration::from_millis(1500)));
    let s = start(&fake, &[]).await;
    let a = agent(&s, json!({"name": "x", "model_name": "gpt-4o-mini"})).await;
    let (_, b, _) = send(s.post(ADMIN_KEY, &format!("/agents/{a}/sessions"), json!({"input": "busy"}))).await;
    let sid = b["session"]["id"].as_str().unwrap().to_string();
    let mut ids = Vec::new();
    for i in 0..20 {
        let (st, b, _) = send(s.post(ADMIN_KEY, &format!("/sessions/{sid}/queue"), json!({"input": format!("q{i}")}))).await;
        assert_eq!(st, 201, "{b}");
        assert_eq!(b["queued_message"]["position"], i + 1);
        ids.push(b["queued_message"]["id"].as_str().unwrap().to_string());
    }
    let (st, b, _) = send(s.post(ADMIN_KEY, &format!("/sessions/{sid}/queue"), json!({"input": "one too many"}))).await;
    assert_eq!((st, b["error"]["code"].as_str()), (409, Some("queue_full")));
    let (st, b, _) = send(s.patch(ADMIN_KEY, &format!("/sessions/{sid}/queue/{}", ids[1]), json!({"input": "edited"}))).await;
    assert_eq!((st, b["queued_message"]["position"].as_i64(), b["queued_message"]["input"].as_str()), (200, Some(2), Some("edited")));
    let (st, b, _) = send(s.delete(ADMIN_KEY, &format!("/sessions/{sid}/queue/{}", ids[0]))).await;
    assert_eq!((st, b["queue"][0]["id"].as_str(), b["queue"][0]["position"].as_i64()), (200, Some(ids[1].as_str()), Some(1)));
    let (st, b, _) = send(s.delete(ADMIN_KEY, &format!("/sessions/{sid}/queue/qm_nope"))).await;
    assert_eq!((st, b["error"]["code"].as_str()), (404, Some("queued_message_not_found")));
    // Send-now interrupts the busy run and starts the chosen message.
    let (st, b, _) = send(s.post(ADMIN_KEY, &format!("/sessions/{sid}/queue/{}/send", ids[5]), json!({}))).await;
    assert_eq!(st, 202, "{b}");
    let msgs = b["session"]["messages"].as_array().unwrap();
    assert_eq!(msgs.last().unwrap()["id"], ids[5].as_str());
    assert_eq!(msgs.last().unwrap()["content"], "q5");
    let (_, q, _) = send(s.get(ADMIN_KEY, &format!("/sessions/{sid}/queue"))).await;
    assert!(!q["queue"].as_array().unwrap().iter().any(|m| m["id"] == ids[5].as_str()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s11_tool_approval_accept_resumes_and_reject_reaches_the_model() {
    let fake = FakeLlm::start().await;
    let s = start(&fake, &[]).await;
    let a = agent(&s, json!({"name": "x", "model_name": "gpt-4o-mini", "metadata": {"tool_approval": {"default_mode": "all", "reason": "policy"}}})).await;
    fake.push(Reply::tool_call("current_time", json!({})));
    fake.push(Reply::text("the time is known"));
    let (_, b, _) = send(s.post(ADMIN_KEY, &format!("/agents/{a}/sessions"), json!({"input": "time?"}))).await;
    let sid = b["session"]["id"].as_str().unwrap().to_string();
    let paused = wait_state(&s, &sid, &["approval_required"]).await;
    let pa = &paused["pending_approvals"][0];
    assert_eq!((pa["type"].as_str(), pa["tool_name"].as_str(), pa["reason"].as_str()), (Some("tool_approval"), Some("current_time"), Some("policy")));
    let areq = pa["action_request_id"].as_str().unwrap().to_string();
    let part = paused["messages"][1]["parts"].as_array().unwrap().iter().find(|p| p["type"] == "tool_invocation").unwrap().clone();
    assert_eq!(part["toolCallState"], "awaiting_approval");
    assert!(part["toolCallId"].as_str().unwrap().starts_with("tc_"));
    // Duplicate ids are refused; unknown ids do not fail the call.
    let (st, b, _) = send(s.post(
        ADMIN_KEY,
        &format!("/sessions/{sid}/approvals"),
        json!({"approval_responses": [{"action_request_id": areq, "action": "accept"}, {"action_request_id": areq, "action": "reject"}]}),
    ))
    .await;
    assert_eq!((st, b["error"]["code"].as_str()), (400, Some("invalid_approval_response")));
    let (st, b, _) = send(s.post(
        ADMIN_KEY,
        &format!("/sessions/{sid}/approvals"),
        json!({"approval_responses": [{"action_request_id": areq, "action": "accept"}, {"action_request_id": "areq_nope", "action": "accept"}]}),
    ))
    .await;
    assert_eq!(st, 200, "{b}");
    assert_eq!(
        b["results"],
        json!([{"action_request_id": areq, "action": "accept", "outcome": "accepted"}, {"action_request_id": "areq_nope", "action": "accept", "outcome": "not_found"}])
    );
    assert!(b["stream_cursor"].as_str().unwrap().starts_with(&format!("{sid}:")));
    let done = wait_state(&s, &sid, &["completed"]).await;
    let part = done["messages"][1]["parts"].as_array().unwrap().iter().find(|p| p["type"] == "tool_invocation").unwrap().clone();
    assert_eq!(part["toolCallState"], "completed");
    let (st, b, _) =
        send(s.post(ADMIN_KEY, &format!("/sessions/{sid}/approvals"), json!({"approval_responses": [{"action_request_id": areq, "action": "accept"}]}))).await;
    assert_eq!((st, b["error"]["code"].as_str()), (409, Some("no_pending_approvals")));

    // Reject: the model gets "Rejected by user: <reason>".
    fake.push(Reply::tool_call("current_time", json!({})));
    fake.push(Reply::text("understood"));
    send(s.post(ADMIN_KEY, &format!("/sessions/{sid}/messages"), json!({"input": "again"}))).await;
    let paused = wait_state(&s, &sid, &["approval_required"]).await;
    let areq = paused["pending_approvals"][0]["action_request_id"].as_str().unwrap().to_string();
    let (_, b, _) = send(s.post(
        ADMIN_KEY,
        &format!("/sessions/{sid}/approvals"),
        json!({"approval_responses": [{"action_request_id": areq, "action": "reject", "reason": "not now"}]}),
    ))
    .await;
    assert_eq!(b["results"][0]["outcome"], "rejected");
    wait_state(&s, &sid, &["completed"]).await;
    let last = fake.requests().pop().unwrap();
    let tool_msg = last["messages"].as_array().unwrap().iter().rev().find(|m| m["role"] == "tool").unwrap().clone();
    assert_eq!(tool_msg["content"], "Error: Rejected by user: not now");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s10_uploads_are_checked_and_attachments_reach_the_model() {
    let fake = FakeLlm::start().await;
    let s = start(&fake, &[("OPENLOOP_MAX_UPLOAD_BYTES", "1024")]).await;
    let a = agent(&s, json!({"name": "x", "model_name": "gpt-4o-mini"})).await;
    let (_, b, _) = send(s.post(ADMIN_KEY, &format!("/agents/{a}/sessions"), json!({}))).await;
    let sid = b["session"]["id"].as_str().unwrap().to_string();
    let b64 = |d: &[u8]| base64::engine::general_purpose::STANDARD.encode(d);
    let (st, b, _) =
        send(s.post(ADMIN_KEY, &format!("/sessions/{sid}/files"), json!({"file_name": "plan.txt", "file_content": b64(b"the secret plan")}))).await;
    assert_eq!((st, &b), (201, &json!({"file_name": "plan.txt", "media_type": "text/plain", "size": 15})));
    let (_, b, _) = send(s.post(ADMIN_KEY, &format!("/sessions/{sid}/files"), json!({"file_name": "plan.txt", "file_content": b64(b"v2")}))).await;
    assert_eq!(b["file_name"], "plan (1).txt");
    for bad in ["../x", "a/b", "a\u{0}b", "", ".."] {
        let (st, b, _) = send(s.post(ADMIN_KEY, &format!("/sessions/{sid}/files"), json!({"file_name": bad, "file_content": b64(b"x")}))).await;
        assert_eq!((st, b["error"]["code"].as_str()), (400, Some("invalid_file_name")), "{bad:?}");
    }
    let (st, b, _) = send(s.post(ADMIN_KEY, &format!("/sessions/{sid}/files"), json!({"file_name": "x.bin", "file_content": "!!!not base64"}))).await;
    assert_eq!((st, b["error"]["code"].as_str()), (400, Some("invalid_file_content")));
    let (st, b, _) = send(s.post(ADMIN_KEY, &format!("/sessions/{sid}/files"), json!({"file_name": "big.bin", "file_content": b64(&[7u8; 2048])}))).await;
    assert_eq!((st, b["error"]["code"].as_str()), (413, Some("file_too_large")));
    let (st, b, _) =
        send(s.post(ADMIN_KEY, &format!("/sessions/{sid}/messages"), json!({"input": "read it", "attachments": [{"file_name": "nope.txt"}]}))).await;
    assert_eq!((st, b["error"]["code"].as_str(), b["error"]["param"].as_str()), (400, Some("invalid_attachment"), Some("attachments[0].file_name")));
    let (st, b, _) =
        send(s.post(ADMIN_KEY, &format!("/sessions/{sid}/messages"), json!({"input": "read it", "attachments": [{"file_name": "plan.txt"}]}))).await;
    assert_eq!(st, 202, "{b}");
    assert_eq!(b["session"]["messages"][0]["parts"][0]["file"]["file_name"], "plan.txt");
    assert!(b["session"]["messages"][0]["parts"][0].get("_text").is_none());
    wait_state(&s, &sid, &["completed"]).await;
    let req = fake.last_request().unwrap();
    let user = req["messages"].as_array().unwrap().iter().find(|m| m["role"] == "user").unwrap().clone();
    assert!(user["content"].as_str().unwrap().contains("the secret plan"), "{user}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_s6_list_filters_pagination_and_closed_rename() {
    let fake = FakeLlm::start().await;
    let s = start(&fake, &[]).await;
    let a = agent(&s, json!({"name": "x", "model_name": "gpt-4o-mini"})).await;
    for i in 0..5 {
        send(s.post(ADMIN_KEY, &format!("/agents/{a}/sessions"), json!({"name": format!("s{i}")}))).await;
    }
    let mut seen = Vec::new();
    let mut url = format!("/agents/{a}/sessions?page_size=2&sort_order=name_asc");
    loop {
        let (st, b, _) = send(s.get(ADMIN_KEY, &url)).await;
        assert_eq!(st, 200, "{b}");
        for it in b["sessions"].as_array().unwrap() {
            assert_eq!(it["messages"], json!([]));
            seen.push(it["name"].as_str().unwrap().to_string());
        }
        match b["next_cursor"].as_str() {
            Some(c) => url = format!("/agents/{a}/sessions?page_size=2&sort_order=name_asc&cursor={c}"),
            None => break,
        }
    }
    assert_eq!(seen, vec!["s0", "s1", "s2", "s3", "s4"]);
    let (_, b, _) = send(s.get(ADMIN_KEY, &format!("/agents/{a}/sessions?state=idle,completed&search=S3"))).await;
    assert_eq!(b["sessions"].as_array().unwrap().len(), 1);
    let (st, b, _) = send(s.get(ADMIN_KEY, &format!("/agents/{a}/sessions?state=sleeping"))).await;
    assert_eq!((st, b["error"]["code"].as_str(), b["error"]["param"].as_str()), (400, Some("invalid_request"), Some("state")));
    let sid = {
        let (_, b, _) = send(s.get(ADMIN_KEY, &format!("/agents/{a}/sessions"))).await;
        b["sessions"][0]["id"].as_str().unwrap().to_string()
    };
    let (st, b, _) = send(s.patch(ADMIN_KEY, &format!("/sessions/{sid}"), json!({"name": "renamed", "state": "x"}))).await;
    assert_eq!((st, b["error"]["code"].as_str(), b["error"]["param"].as_str()), (400, Some("invalid_request"), Some("state")));
    let (st, b, _) = send(s.patch(ADMIN_KEY, &format!("/sessions/{sid}"), json!({"name": " renamed "}))).await;
    assert_eq!((st, b["session"]["name"].as_str()), (200, Some("renamed")));
    let (st, b, _) = send(s.post(ADMIN_KEY, &format!("/sessions/{sid}/messages"), json!({"input": "x", "approval_responses": []}))).await;
    assert_eq!((st, b["error"]["code"].as_str()), (400, Some("approval_responses_not_supported")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s17_s18_sharing_grants_read_and_editor_use() {
    let fake = FakeLlm::start().await;
    let s = start(&fake, &[]).await;
    let a = agent(&s, json!({"name": "x", "model_name": "gpt-4o-mini"})).await;
    let (_, b, _) = send(s.post(ADMIN_KEY, &format!("/agents/{a}/sessions"), json!({}))).await;
    let sid = b["session"]["id"].as_str().unwrap().to_string();
    let u = s.cli(&["users", "create", "--email", "pat@example.com", "--first-name", "Pat"]);
    let pat = u["user_id"].as_str().unwrap().to_string();
    let pat_key = s.cli(&["keys", "create", "--user", &pat])["secret"].as_str().unwrap().to_string();
    let (st, b, _) = send(s.get(&pat_key, &format!("/sessions/{sid}"))).await;
    assert_eq!((st, b["error"]["code"].as_str()), (404, Some("session_not_found")));
    let (st, b, _) = send(s.get(ADMIN_KEY, &format!("/sessions/{sid}/access"))).await;
    assert_eq!((st, b["access"]["grants_visibility"].as_str(), b["access"]["link"].as_str()), (200, Some("private"), Some("none")));
    let put = |body: Value| s.client.put(s.url(&format!("/sessions/{sid}/access"))).bearer_auth(ADMIN_KEY).json(&body);
    let (st, b, _) = send(put(json!({}))).await;
    assert_eq!((st, b["error"]["code"].as_str()), (400, Some("invalid_request")));
    let (st, b, _) = send(put(json!({"share": [{"type": "person", "email": "nobody@example.com", "role": "viewer"}]}))).await;
    assert_eq!((st, b["error"]["param"].as_str()), (400, Some("share[0].email")));
    let (st, b, _) = send(put(json!({"link": {"mode": "anyone"}}))).await;
    assert_eq!((st, b["error"]["code"].as_str()), (501, Some("not_implemented")));
    let (st, b, _) = send(put(json!({"share": [{"type": "person", "email": "PAT@example.com", "role": "viewer"}]}))).await;
    assert_eq!(st, 200, "{b}");
    assert_eq!(
        (b["access"]["grants_visibility"].as_str(), b["access"]["people"][0]["role"].as_str(), &b["notified"]),
        (Some("shared"), Some("viewer"), &json!([]))
    );
    let (st, _, _) = send(s.get(&pat_key, &format!("/sessions/{sid}"))).await;
    assert_eq!(st, 200);
    let (st, b, _) = send(s.post(&pat_key, &format!("/sessions/{sid}/messages"), json!({"input": "hi"}))).await;
    assert_eq!((st, b["error"]["code"].as_str()), (403, Some("permission_denied")));
    let (st, b, _) = send(s.get(&pat_key, &format!("/sessions/{sid}/access"))).await;
    assert_eq!((st, b["error"]["code"].as_str()), (403, Some("permission_denied")));
    send(put(json!({"share": [{"type": "person", "email": "pat@example.com", "role": "editor"}]}))).await;
    let (st, _, _) = send(s.post(&pat_key, &format!("/sessions/{sid}/messages"), json!({"input": "hi"}))).await;
    assert_eq!(st, 202);
    wait_state(&s, &sid, &["completed"]).await;
    send(put(json!({"remove": [{"type": "person", "email": "pat@example.com"}]}))).await;
    let (st, _, _) = send(s.get(&pat_key, &format!("/sessions/{sid}"))).await;
    assert_eq!(st, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s5_events_past_retention_are_not_resumable() {
    let fake = FakeLlm::start().await;
    let s = start(&fake, &[("OPENLOOP_STREAM_RETENTION_SECS", "1"), ("OPENLOOP_LEASE_SECS", "1")]).await;
    let a = agent(&s, json!({"name": "x", "model_name": "gpt-4o-mini"})).await;
    let (_, b, _) = send(s.post(ADMIN_KEY, &format!("/agents/{a}/sessions"), json!({"input": "hi"}))).await;
    let sid = b["session"]["id"].as_str().unwrap().to_string();
    wait_state(&s, &sid, &["completed"]).await;
    let resp = s.client.get(s.url(&format!("/sessions/{sid}?stream=true&last_cursor={sid}:0"))).bearer_auth(ADMIN_KEY).send().await.unwrap();
    assert!(read_sse(resp).await.len() > 3, "replayable before retention");
    let mut purged = false;
    for _ in 0..40 {
        tokio::time::sleep(Duration::from_millis(250)).await;
        let resp = s.client.get(s.url(&format!("/sessions/{sid}?stream=true&last_cursor={sid}:0"))).bearer_auth(ADMIN_KEY).send().await.unwrap();
        let ev = read_sse(resp).await;
        if ev.len() == 1 && ev[0].1["finishReason"] == "not_resumable" {
            purged = true;
            break;
        }
    }
    assert!(purged, "events past OPENLOOP_STREAM_RETENTION_SECS are purged and a purged range is not resumable");
    // The transcript itself is kept.
    let st = wait_state(&s, &sid, &["completed"]).await;
    assert_eq!(st["messages"].as_array().unwrap().len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn incognito_sessions_run_in_memory_and_never_reach_the_database() {
    let fake = FakeLlm::start().await;
    fake.set_default(Reply::text("secret answer"));
    let mut s = start(&fake, &[]).await;
    let a = agent(&s, json!({"name": "x", "model_name": "gpt-4o-mini"})).await;
    let (st, b, _) = send(s.post(ADMIN_KEY, &format!("/agents/{a}/sessions"), json!({"input": "very private words", "incognito": true}))).await;
    assert_eq!(st, 202, "{b}");
    assert_eq!(b["session"]["incognito"], true);
    let sid = b["session"]["id"].as_str().unwrap().to_string();
    let done = wait_state(&s, &sid, &["completed"]).await;
    assert_eq!(done["messages"][1]["content"], "secret answer");
    // Streaming, follow-ups and legacy polling work on the same process.
    let resp = s
        .client
        .post(s.url(&format!("/sessions/{sid}/messages")))
        .bearer_auth(ADMIN_KEY)
        .json(&json!({"input": "again", "stream": true}))
        .send()
        .await
        .unwrap();
    let ev = read_sse(resp).await;
    assert_eq!(ev.last().unwrap().1["finishReason"], "stop");
    let (st, b, _) = send(s.get(ADMIN_KEY, &format!("/agent_status/{sid}"))).await;
    assert_eq!((st, b["state"].as_str()), (200, Some("COMPLETED")));
    // No queue; not listed.
    let (st, b, _) =
        send(s.post(ADMIN_KEY, &format!("/sessions/{sid}/messages"), json!({"input": "later", "delivery": "queued"})).header("Idempotency-Key", "inc-1")).await;
    assert_eq!((st, b["error"]["code"].as_str()), (400, Some("invalid_request")));
    let (st, b, _) = send(s.post(ADMIN_KEY, &format!("/sessions/{sid}/queue"), json!({"input": "later"}))).await;
    assert_eq!((st, b["error"]["code"].as_str()), (400, Some("invalid_request")));
    let (_, list, _) = send(s.get(ADMIN_KEY, &format!("/agents/{a}/sessions"))).await;
    assert!(!list.to_string().contains(&sid), "incognito sessions are not listed");
    // Nothing of it is in the database files.
    for f in ["openloop.db", "openloop.db-wal"] {
        if let Ok(bytes) = std::fs::read(s.data_dir.join(f)) {
            for needle in [sid.as_bytes(), b"very private words".as_slice(), b"secret answer".as_slice()] {
                assert!(!bytes.windows(needle.len()).any(|w| w == needle), "{f} contains incognito data");
            }
        }
    }
    // An agent that enforces incognito makes every session incognito.
    send(s.patch(ADMIN_KEY, &format!("/agents/{a}/incognito"), json!({"enforced": true}))).await;
    let (_, b, _) = send(s.post(ADMIN_KEY, &format!("/agents/{a}/sessions"), json!({}))).await;
    assert_eq!(b["session"]["incognito"], true);
    // Gone after a restart.
    s.kill9();
    s.restart();
    let (st, b, _) = send(s.get(ADMIN_KEY, &format!("/sessions/{sid}"))).await;
    assert_eq!((st, b["error"]["code"].as_str()), (404, Some("session_not_found")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn incognito_sessions_expire_after_their_ttl() {
    let fake = FakeLlm::start().await;
    let s = start(&fake, &[("OPENLOOP_INCOGNITO_TTL_SECS", "1"), ("OPENLOOP_LEASE_SECS", "1")]).await;
    let a = agent(&s, json!({"name": "x", "model_name": "gpt-4o-mini"})).await;
    let (_, b, _) = send(s.post(ADMIN_KEY, &format!("/agents/{a}/sessions"), json!({"input": "hi", "incognito": true}))).await;
    let sid = b["session"]["id"].as_str().unwrap().to_string();
    wait_state(&s, &sid, &["completed"]).await;
    let mut gone = false;
    for _ in 0..40 {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let (st, _, _) = send(s.get(ADMIN_KEY, &format!("/sessions/{sid}"))).await;
        if st == 404 {
            gone = true;
            break;
        }
    }
    assert!(gone, "an incognito session is 404 once its TTL after the last run has passed");
}
