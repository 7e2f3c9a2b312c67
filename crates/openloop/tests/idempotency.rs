//! §5.2: every route that honours `Idempotency-Key` replays a repeat (same body) instead
//! of writing again, also after a kill -9 restart.

use std::time::Duration;

use serde_json::{json, Value};
use testkit::fake_llm::{FakeLlm, Reply};
use testkit::{create_agent, send, Server, ADMIN_KEY};

fn bin() -> &'static std::path::Path {
    env!("CARGO_BIN_EXE_openloop").as_ref()
}

async fn wait_settled(s: &Server, sid: &str) -> Value {
    for _ in 0..300 {
        let (_, b, _) = send(s.get(ADMIN_KEY, &format!("/sessions/{sid}"))).await;
        if !matches!(b["session"]["state"].as_str(), Some("processing" | "queued")) {
            return b;
        }
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
    panic!("session {sid} never settled");
}

fn user_messages(session: &Value) -> Vec<String> {
    session["session"]["messages"].as_array().unwrap().iter().filter(|m| m["role"] == "user").map(|m| m["content"].as_str().unwrap_or("").to_string()).collect()
}

async fn post_with_key(s: &Server, path: &str, body: Value, key: &str) -> (u16, Value, reqwest::header::HeaderMap) {
    send(s.post(ADMIN_KEY, path, body).header("idempotency-key", key)).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s7_immediate_repeat_is_replayed_not_sent_twice_also_after_kill9() {
    let fake = FakeLlm::start().await;
    fake.set_default(Reply::text("ok"));
    let mut s = testkit::start_with_fake(bin(), &fake, &[]);
    let agent = create_agent(&s, json!({"name": "Idem", "model_name": "gpt-4o-mini"})).await;
    let (_, created, _) = send(s.post(ADMIN_KEY, &format!("/agents/{agent}/sessions"), json!({}))).await;
    let sid = created["session"]["id"].as_str().unwrap().to_string();
    let path = format!("/sessions/{sid}/messages");
    let (st1, b1, h1) = post_with_key(&s, &path, json!({"input": "once only"}), "k-s7").await;
    assert_eq!(st1, 202, "{b1}");
    assert!(h1.get("idempotent-replayed").is_none());
    wait_settled(&s, &sid).await;
    let (st2, b2, h2) = post_with_key(&s, &path, json!({"input": "once only"}), "k-s7").await;
    assert_eq!((st2, h2.get("idempotent-replayed").and_then(|v| v.to_str().ok())), (202, Some("true")), "{b2}");
    assert_eq!(b2, b1, "the replay is the original answer");
    // A different body under the same key is a conflict, not a second message.
    let (st3, b3, _) = post_with_key(&s, &path, json!({"input": "another"}), "k-s7").await;
    assert_eq!((st3, b3["error"]["code"].as_str()), (409, Some("idempotency_key_reused")));
    // Across a crash the key still replays.
    s.kill9();
    s.restart();
    let (st4, _, h4) = post_with_key(&s, &path, json!({"input": "once only"}), "k-s7").await;
    assert_eq!((st4, h4.get("idempotent-replayed").and_then(|v| v.to_str().ok())), (202, Some("true")));
    let done = wait_settled(&s, &sid).await;
    assert_eq!(user_messages(&done), vec!["once only"], "{done}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s13_repeat_queues_once() {
    let fake = FakeLlm::start().await;
    fake.set_default(Reply::text("ok"));
    let s = testkit::start_with_fake(bin(), &fake, &[]);
    let agent = create_agent(&s, json!({"name": "Idem", "model_name": "gpt-4o-mini"})).await;
    let (_, created, _) = send(s.post(ADMIN_KEY, &format!("/agents/{agent}/sessions"), json!({}))).await;
    let sid = created["session"]["id"].as_str().unwrap().to_string();
    let path = format!("/sessions/{sid}/queue");
    let (st1, b1, _) = post_with_key(&s, &path, json!({"input": "queued once"}), "k-s13").await;
    assert_eq!(st1, 201, "{b1}");
    let (st2, b2, h2) = post_with_key(&s, &path, json!({"input": "queued once"}), "k-s13").await;
    assert_eq!((st2, h2.get("idempotent-replayed").and_then(|v| v.to_str().ok())), (201, Some("true")), "{b2}");
    assert_eq!(b2["queued_message"]["id"], b1["queued_message"]["id"]);
    let done = wait_settled(&s, &sid).await;
    assert_eq!(user_messages(&done), vec!["queued once"], "{done}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s16_repeat_is_replayed_not_404() {
    let fake = FakeLlm::start().await;
    let s = testkit::start_with_fake(bin(), &fake, &[]);
    let agent = create_agent(&s, json!({"name": "Idem", "model_name": "gpt-4o-mini"})).await;
    fake.on_user_contains("slow first", Reply::text("slow").first_byte_delay(Duration::from_secs(3)));
    fake.set_default(Reply::text("ok"));
    let (_, created, _) = send(s.post(ADMIN_KEY, &format!("/agents/{agent}/sessions"), json!({"input": "slow first"}))).await;
    let sid = created["session"]["id"].as_str().unwrap().to_string();
    let (st, q, _) = send(s.post(ADMIN_KEY, &format!("/sessions/{sid}/queue"), json!({"input": "jump the line"}))).await;
    assert_eq!(st, 201, "{q}");
    let qid = q["queued_message"]["id"].as_str().unwrap().to_string();
    let path = format!("/sessions/{sid}/queue/{qid}/send");
    let (st1, b1, _) = post_with_key(&s, &path, json!({}), "k-s16").await;
    assert_eq!(st1, 202, "{b1}");
    let (st2, b2, h2) = post_with_key(&s, &path, json!({}), "k-s16").await;
    assert_eq!((st2, h2.get("idempotent-replayed").and_then(|v| v.to_str().ok())), (202, Some("true")), "{b2}");
    let done = wait_settled(&s, &sid).await;
    assert_eq!(user_messages(&done), vec!["slow first", "jump the line"], "{done}");
}
