//! Seeded, replayable plans of several clients creating sessions, sending, queueing,
//! cancelling, streaming and restarting the server, checked against invariants: no
//! session stays stuck, every queued message is delivered exactly once, stream cursors
//! strictly increase, and every answered message has exactly one assistant reply.
//! The seed is printed; `OPENLOOP_TEST_SEED=<n>` replays a plan.

use std::collections::HashMap;
use std::time::Duration;

use serde_json::{json, Value};
use testkit::fake_llm::{FakeLlm, Reply};
use testkit::{send, Server, ADMIN_KEY};

/// xorshift64*: enough for replayable plans, no dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

async fn state_of(s: &Server, id: &str) -> Value {
    let (_, b, _) = send(s.get(ADMIN_KEY, &format!("/sessions/{id}"))).await;
    b["session"].clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn randomized_sessions_keep_every_message_and_never_stick() {
    let seed: u64 = std::env::var("OPENLOOP_TEST_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos() as u64).unwrap_or(7) | 1);
    println!("randomized_sessions seed = {seed} (replay with OPENLOOP_TEST_SEED={seed})");
    let mut rng = Rng(seed);
    let fake = FakeLlm::start().await;
    fake.set_default(Reply::echo().chunks(3).chunk_delay(Duration::from_millis(20)));
    let url = fake.openai_base_url();
    let mut s =
        Server::start(env!("CARGO_BIN_EXE_openloop").as_ref(), &[("OPENAI_BASE_URL", &url), ("OPENAI_API_KEY", "sk-test"), ("OPENLOOP_LEASE_SECS", "2")]);
    let (_, b, _) = send(s.post(ADMIN_KEY, "/agents", json!({"name": "rnd", "model_name": "gpt-4o-mini"}))).await;
    let agent = b["agent"]["id"].as_str().unwrap().to_string();

    let mut sessions: Vec<String> = Vec::new();
    // Texts we expect in each session's transcript (accepted immediate sends and queued ones).
    let mut expected: HashMap<String, Vec<String>> = HashMap::new();
    let mut cancelled: HashMap<String, bool> = HashMap::new();
    let mut n = 0u32;
    let mut stats: HashMap<&str, u32> = HashMap::new();
    for op in 0..120 {
        n += 1;
        if op == 40 || op == 80 {
            // Crash and restart mid-plan: nothing accepted may be lost.
            s.kill9();
            s.restart();
            *stats.entry("restart").or_default() += 1;
        }
        let text = format!("m{n}");
        match rng.below(10) {
            0 | 1 => {
                let with_input = rng.below(2) == 0;
                let body = if with_input { json!({"input": text}) } else { json!({}) };
                let (st, b, _) = send(s.post(ADMIN_KEY, &format!("/agents/{agent}/sessions"), body)).await;
                assert!(st == 201 || st == 202, "op {op}: create answered {st}: {b}");
                let id = b["session"]["id"].as_str().unwrap().to_string();
                expected.entry(id.clone()).or_default();
                if with_input {
                    expected.get_mut(&id).unwrap().push(text);
                }
                sessions.push(id);
                *stats.entry("create").or_default() += 1;
            }
            2..=4 if !sessions.is_empty() => {
                let id = sessions[rng.below(sessions.len() as u64) as usize].clone();
                let (st, b, _) = send(s.post(ADMIN_KEY, &format!("/sessions/{id}/messages"), json!({"input": text}))).await;
                match st {
                    202 => {
                        expected.get_mut(&id).unwrap().push(text);
                        *stats.entry("send").or_default() += 1;
                    }
                    409 => assert_eq!(b["error"]["code"], "interaction_not_in_terminal_state", "op {op}"),
                    other => panic!("op {op}: send answered {other}: {b}"),
                }
            }
            5 | 6 if !sessions.is_empty() => {
                let id = sessions[rng.below(sessions.len() as u64) as usize].clone();
                let (st, b, _) = send(
                    s.post(ADMIN_KEY, &format!("/sessions/{id}/messages"), json!({"input": text, "delivery": "queued"}))
                        .header("Idempotency-Key", format!("k{n}")),
                )
                .await;
                assert_eq!(st, 202, "op {op}: queued send answered {st}: {b}");
                expected.get_mut(&id).unwrap().push(text);
                *stats.entry("queued").or_default() += 1;
            }
            7 if !sessions.is_empty() => {
                let id = sessions[rng.below(sessions.len() as u64) as usize].clone();
                let (st, _, _) = send(s.post(ADMIN_KEY, &format!("/sessions/{id}/cancel"), json!({}))).await;
                assert_eq!(st, 200, "op {op}");
                cancelled.insert(id, true);
                *stats.entry("cancel").or_default() += 1;
            }
            8 if !sessions.is_empty() => {
                // A reader from the start: cursors strictly increase, ends on a final event.
                let id = sessions[rng.below(sessions.len() as u64) as usize].clone();
                let resp = s
                    .client
                    .get(s.url(&format!("/sessions/{id}?stream=true&last_cursor={id}:0")))
                    .bearer_auth(ADMIN_KEY)
                    .timeout(Duration::from_secs(20))
                    .send()
                    .await
                    .unwrap();
                let body = resp.text().await.unwrap_or_default();
                let mut last = 0i64;
                *stats.entry("stream").or_default() += 1;
                for line in body.lines().filter_map(|l| l.strip_prefix("data: ")) {
                    let v: Value = serde_json::from_str(line).unwrap();
                    let seq: i64 = v["stream_cursor"].as_str().unwrap().rsplit_once(':').unwrap().1.parse().unwrap();
                    if v["finishReason"] != "not_resumable" && v["finishReason"] != "idle" {
                        assert!(seq > last || (seq == last && v["final"] == true), "op {op}: cursor went from {last} to {seq}");
                    }
                    last = seq;
                }
            }
            _ => {}
        }
        tokio::time::sleep(Duration::from_millis(rng.below(40))).await;
    }

    println!("seed {seed}: {stats:?} over {} sessions", sessions.len());
    // Drain: every session reaches a state that needs nothing more, its queue empties.
    for id in &sessions {
        let mut st = Value::Null;
        for _ in 0..400 {
            st = state_of(&s, id).await;
            let (_, q, _) = send(s.get(ADMIN_KEY, &format!("/sessions/{id}/queue"))).await;
            let queue_empty = q["queue"].as_array().is_some_and(Vec::is_empty);
            let settled = matches!(st["state"].as_str(), Some("idle" | "completed" | "failed" | "cancelled"));
            if settled && (queue_empty || st["state"] == "cancelled") {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let state = st["state"].as_str().unwrap_or("");
        assert!(matches!(state, "idle" | "completed" | "failed" | "cancelled"), "seed {seed}: session {id} stuck in {state}");
        let msgs = st["messages"].as_array().cloned().unwrap_or_default();
        let users: Vec<String> = msgs.iter().filter(|m| m["role"] == "user").map(|m| m["content"].as_str().unwrap_or("").to_string()).collect();
        // Each user message is in the transcript at most once.
        let mut sorted = users.clone();
        sorted.sort();
        sorted.dedup();
        assert_eq!(sorted.len(), users.len(), "seed {seed}: a message was delivered twice in {id}: {users:?}");
        // Every accepted message is delivered unless a cancel may have left it queued.
        for t in &expected[id] {
            if !users.contains(t) {
                assert!(cancelled.contains_key(id), "seed {seed}: {t} was accepted for {id} but never delivered: {users:?}");
            }
        }
        // Answers: one assistant message per run, each echoing its user message.
        for (i, m) in msgs.iter().enumerate() {
            if m["role"] == "assistant" {
                assert!(i > 0 && msgs[i - 1]["role"] == "user", "seed {seed}: assistant message without its user message in {id}");
            }
        }
    }
}
