//! Faults at exact points (engine::faults): the process dies between a tool's commit and
//! the next model call, or before a finished run's terminal write; the provider fails.
//! After a restart nothing is lost, nothing is done twice, and the stream stays whole.

use std::time::Duration;

use serde_json::{json, Value};
use testkit::fake_llm::{FakeLlm, Reply};
use testkit::{send, Server, ADMIN_KEY};

fn bin() -> &'static std::path::Path {
    env!("CARGO_BIN_EXE_openloop").as_ref()
}

fn start(fake: &FakeLlm, failpoints: &str) -> Server {
    let url = fake.openai_base_url();
    Server::start(bin(), &[("OPENAI_BASE_URL", &url), ("OPENAI_API_KEY", "sk-test"), ("FAILPOINTS", failpoints), ("OPENLOOP_LOG", "error")])
}

async fn agent(s: &Server) -> String {
    let (st, b, _) = send(s.post(ADMIN_KEY, "/agents", json!({"name": "faulty", "model_name": "gpt-4o-mini"}))).await;
    assert_eq!(st, 201, "{b}");
    b["agent"]["id"].as_str().unwrap().to_string()
}

async fn start_session(s: &Server, agent: &str, input: &str) -> String {
    let (st, b, _) = send(s.post(ADMIN_KEY, &format!("/agents/{agent}/sessions"), json!({"input": input}))).await;
    assert_eq!(st, 202, "{b}");
    b["session"]["id"].as_str().unwrap().to_string()
}

/// As `start_session`, for a run that crashes the server at a failure point: the
/// process may die before its 202 reaches us (the run was committed and claimed), so
/// the session id is chosen here and a lost answer is not a failure.
async fn start_crashing_session(s: &Server, agent: &str, input: &str, sid: &str) -> String {
    let resp = s.post(ADMIN_KEY, &format!("/agents/{agent}/sessions"), json!({"input": input, "session_id": sid})).send().await;
    if let Ok(r) = resp {
        let st = r.status().as_u16();
        let b: Value = r.json().await.unwrap_or(Value::Null);
        assert!(st == 202 || b.is_null(), "{st} {b}");
    }
    sid.to_string()
}

async fn wait_state(s: &Server, sid: &str, want: &str) -> Value {
    for _ in 0..500 {
        let (_, b, _) = send(s.get(ADMIN_KEY, &format!("/sessions/{sid}"))).await;
        if b["session"]["state"] == want {
            return b;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("session {sid} never reached {want}");
}

/// Every stored stream event of the session, in order (S5 replay from the start).
async fn events(s: &Server, sid: &str) -> Vec<Value> {
    let resp = s.client.get(s.url(&format!("/sessions/{sid}?stream=true&last_cursor={sid}:0"))).bearer_auth(ADMIN_KEY).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    let text = resp.text().await.unwrap();
    text.lines().filter_map(|l| l.strip_prefix("data: ")).filter_map(|d| serde_json::from_str(d).ok()).collect()
}

fn crashed(s: &mut Server) {
    let status = s.wait_exit(Duration::from_secs(20)).expect("the server should have crashed at the failure point");
    assert!(!status.success(), "crash point ends the process abnormally: {status:?}");
    s.set_env("FAILPOINTS", None);
    s.restart();
}

// Multi-threaded: waiting for the crash blocks a thread while the fake provider answers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_after_a_tool_commit_resumes_without_running_the_tool_again() {
    let fake = FakeLlm::start().await;
    fake.push(Reply::tool_call("write_artifact", json!({"filename": "once.md", "content": "written once"})));
    fake.push(Reply::text("all done"));
    let mut s = start(&fake, "run.after_tool_commit=return");
    let agent = agent(&s).await;
    let sid = start_crashing_session(&s, &agent, "write it", "sess-crash-after-tool").await;
    crashed(&mut s);

    let b = wait_state(&s, &sid, "completed").await;
    let parts = b["session"]["messages"][1]["parts"].as_array().unwrap();
    assert!(parts.iter().any(|p| p["text"] == "all done"), "{parts:?}");
    // The tool ran once: one artifact, version 1.
    let (_, list, _) = send(s.get(ADMIN_KEY, &format!("/agents/{agent}/artifacts?session_id={sid}"))).await;
    let items = list["artifacts"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{list}");
    assert_eq!(items[0]["major_version"], 1, "the tool was not run again: {list}");
    // Two model calls in all: the tool step before the crash, the answer after it.
    assert_eq!(fake.request_count(), 2);
    let ev = events(&s, &sid).await;
    assert_eq!(ev.iter().filter(|e| e["type"] == "start").count(), 1, "{ev:?}");
    assert_eq!(ev.iter().filter(|e| e["type"] == "tool-output-available").count(), 1, "{ev:?}");
    assert_eq!(ev.iter().filter(|e| e["type"] == "finish").count(), 1, "{ev:?}");
    assert_eq!(ev.last().unwrap()["type"], "finish");
}

// Multi-threaded: waiting for the crash blocks a thread while the fake provider answers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_before_the_terminal_write_redoes_only_the_unfinished_step() {
    let fake = FakeLlm::start().await;
    fake.push(Reply::text("lost with the crash"));
    fake.push(Reply::text("the answer"));
    let mut s = start(&fake, "run.before_finish=return");
    let agent = agent(&s).await;
    let sid = start_crashing_session(&s, &agent, "hello", "sess-crash-before-finish").await;
    crashed(&mut s);

    let b = wait_state(&s, &sid, "completed").await;
    let text: String = b["session"]["messages"][1]["parts"].as_array().unwrap().iter().filter_map(|p| p["text"].as_str()).collect();
    assert_eq!(text, "the answer", "{b}");
    // What was never committed was never shown: one start, one answer, one finish.
    let ev = events(&s, &sid).await;
    assert_eq!(ev.iter().filter(|e| e["type"] == "start").count(), 1, "{ev:?}");
    let deltas: String = ev.iter().filter(|e| e["type"] == "text-delta").filter_map(|e| e["delta"].as_str()).collect();
    assert_eq!(deltas, "the answer");
    assert_eq!(ev.iter().filter(|e| e["type"] == "finish").count(), 1, "{ev:?}");
}

// Multi-threaded: waiting for the crash blocks a thread while the fake provider answers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_provider_fails_the_run_and_the_session_takes_the_next_message() {
    let fake = FakeLlm::start().await;
    fake.push(Reply::text("second try works"));
    let s = start(&fake, "run.model_call=1*return");
    let agent = agent(&s).await;
    let sid = start_session(&s, &agent, "first").await;
    let b = wait_state(&s, &sid, "failed").await;
    let msg = &b["session"]["messages"][1];
    assert!(msg.to_string().contains("ProviderError"), "{msg}");
    assert_eq!(fake.request_count(), 0, "the failure point stood in for the provider");
    let ev = events(&s, &sid).await;
    let kinds: Vec<&str> = ev.iter().filter_map(|e| e["type"].as_str()).collect();
    assert_eq!(kinds.first(), Some(&"start"), "{kinds:?}");
    assert!(kinds.ends_with(&["error", "finish"]), "{kinds:?}");

    let (st, b, _) = send(s.post(ADMIN_KEY, &format!("/sessions/{sid}/messages"), json!({"input": "again"}))).await;
    assert_eq!(st, 202, "{b}");
    wait_state(&s, &sid, "completed").await;
    assert_eq!(fake.request_count(), 1);
}
