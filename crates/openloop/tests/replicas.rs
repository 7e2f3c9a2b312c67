//! Two replicas on one PostgreSQL database and one S3-compatible store (moto): a session
//! created on A streams from B, a `kill -9` of A mid-run is finished by B without
//! repeating a committed step, a cancel sent to B stops a run executing on A, and a
//! per-key quota holds across both. Needs `OPENLOOP_TEST_POSTGRES_URL` (an administrator
//! URL; `scripts/test` starts a throwaway cluster and sets it); without it each test
//! says so and returns.

use std::time::Duration;

use base64::Engine as _;
use serde_json::{json, Value};
use testkit::fake_llm::{FakeLlm, Reply};
use testkit::{create_agent, send, Server, ADMIN_KEY};

const SIGNING_SECRET: &[u8; 32] = b"replicas-share-one-signing-key!!";

fn bin() -> &'static std::path::Path {
    env!("CARGO_BIN_EXE_openloop").as_ref()
}

fn admin_url() -> Option<String> {
    let url = std::env::var("OPENLOOP_TEST_POSTGRES_URL").ok();
    if url.is_none() {
        eprintln!("OPENLOOP_TEST_POSTGRES_URL is not set: the two-replica test did not run (scripts/test starts a cluster)");
    }
    url
}

/// What both replicas share: the database, the bucket, the signing key, the provider.
struct Shared {
    env: Vec<(String, String)>,
}

impl Shared {
    async fn new(admin: &str, fake: &FakeLlm, extra: &[(&str, &str)]) -> Shared {
        let db = testkit::create_postgres_database(admin, "replicas");
        let ep = testkit::s3_endpoint().to_string();
        let bucket = format!("replicas{:x}", std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos());
        let resp = reqwest::Client::new().put(format!("{ep}/{bucket}")).send().await.expect("create bucket");
        assert!(resp.status().is_success(), "bucket creation failed: {}", resp.status());
        let mut env: Vec<(String, String)> = vec![
            ("OPENLOOP_DATABASE_URL".into(), db),
            ("OPENAI_BASE_URL".into(), fake.openai_base_url()),
            ("OPENAI_API_KEY".into(), "sk-test".into()),
            ("OPENLOOP_SIGNING_KEYS".into(), format!("k1:{}", base64::engine::general_purpose::STANDARD.encode(SIGNING_SECRET))),
            ("OPENLOOP_BLOB_STORE".into(), "s3".into()),
            ("OPENLOOP_S3_ENDPOINT".into(), ep),
            ("OPENLOOP_S3_BUCKET".into(), bucket),
            ("OPENLOOP_S3_ACCESS_KEY_ID".into(), "test".into()),
            ("OPENLOOP_S3_SECRET_ACCESS_KEY".into(), "test".into()),
            ("OPENLOOP_S3_PATH_STYLE".into(), "true".into()),
            // A dead replica's runs are taken over once its lease expires.
            ("OPENLOOP_LEASE_SECS".into(), "2".into()),
        ];
        env.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        Shared { env }
    }

    /// A replica; `more` overrides (e.g. `OPENLOOP_WORKERS=0`: a replica that serves
    /// requests but executes no run, so the test knows where runs execute).
    fn start(&self, more: &[(&str, &str)]) -> Server {
        let mut env: Vec<(&str, &str)> = self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        env.extend_from_slice(more);
        Server::start(bin(), &env)
    }
}

async fn session_state(s: &Server, sid: &str) -> Value {
    let (st, b, _) = send(s.get(ADMIN_KEY, &format!("/sessions/{sid}"))).await;
    assert_eq!(st, 200, "{b}");
    b["session"].clone()
}

async fn wait_state(s: &Server, sid: &str, want: &[&str], within: Duration) -> Value {
    let deadline = std::time::Instant::now() + within;
    loop {
        let session = session_state(s, sid).await;
        if want.contains(&session["state"].as_str().unwrap_or("")) {
            return session;
        }
        assert!(std::time::Instant::now() < deadline, "session {sid} never reached {want:?}: {session}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn wait_requests(fake: &FakeLlm, n: usize) {
    for _ in 0..400 {
        if fake.request_count() >= n {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("the provider never received {n} requests (got {})", fake.request_count());
}

/// The SSE stream of a session from `cursor` to its final event: (type, seq, data).
async fn stream(s: &Server, sid: &str, cursor: i64) -> Vec<(String, i64, Value)> {
    let resp =
        s.client.get(s.url(&format!("/sessions/{sid}?stream=true&last_cursor={sid}:{cursor}"))).bearer_auth(ADMIN_KEY).send().await.expect("stream request");
    assert_eq!(resp.status(), 200);
    let text = tokio::time::timeout(Duration::from_secs(30), resp.text()).await.expect("the stream ends with its final event").expect("stream body");
    let mut out = Vec::new();
    for block in text.split("\n\n") {
        if let Some(data) = block.lines().find_map(|l| l.strip_prefix("data: ")) {
            let d: Value = serde_json::from_str(data).expect("event JSON");
            let seq = d["stream_cursor"].as_str().and_then(|c| c.rsplit_once(':')).and_then(|(_, n)| n.parse().ok()).expect("cursor");
            out.push((d["type"].as_str().unwrap_or("").to_string(), seq, d));
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_created_on_a_streams_from_b_in_order_exactly_once() {
    let Some(admin) = admin_url() else { return };
    let fake = FakeLlm::start().await;
    fake.set_default(Reply::text_chunks("one two three four five six seven eight", 8).chunk_delay(Duration::from_millis(60)));
    let shared = Shared::new(&admin, &fake, &[]).await;
    let a = shared.start(&[]);
    let b = shared.start(&[("OPENLOOP_WORKERS", "0")]);
    let agent = create_agent(&a, json!({"name": "talker", "model_name": "gpt-4o-mini"})).await;
    // B knows the agent A created.
    let (st, _, _) = send(b.get(ADMIN_KEY, &format!("/agents/{agent}"))).await;
    assert_eq!(st, 200);

    let (st, body, _) = send(a.post(ADMIN_KEY, &format!("/agents/{agent}/sessions"), json!({"input": "talk"}))).await;
    assert_eq!(st, 202, "{body}");
    let sid = body["session"]["id"].as_str().unwrap().to_string();
    // Read on B while A executes (B has no workers), and on A for comparison.
    let (from_b, from_a) = tokio::join!(stream(&b, &sid, 0), stream(&a, &sid, 0));
    let text: String = from_b.iter().filter(|(t, _, _)| t == "text-delta").map(|(_, _, d)| d["delta"].as_str().unwrap_or("")).collect();
    assert_eq!(text, "one two three four five six seven eight");
    let seqs: Vec<i64> = from_b.iter().map(|(_, s, _)| *s).collect();
    assert_eq!(seqs, (1..=seqs.len() as i64).collect::<Vec<_>>(), "in order, exactly once");
    assert_eq!(from_b.last().map(|(t, _, d)| (t.as_str(), d["final"].as_bool())), Some(("finish", Some(true))));
    let a_seqs: Vec<i64> = from_a.iter().map(|(_, s, _)| *s).collect();
    assert_eq!(seqs, a_seqs, "both replicas stream the same log");
    // A reader that joins B mid-way resumes from its cursor.
    let tail = stream(&b, &sid, 3).await;
    assert_eq!(tail.first().map(|(_, s, _)| *s), Some(4));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill9_of_a_mid_run_is_finished_by_b_without_repeating_a_step() {
    let Some(admin) = admin_url() else { return };
    let fake = FakeLlm::start().await;
    // Step 1 (a tool call) commits on A; A dies in step 2's model call; B runs step 2.
    fake.push(Reply::tool_call("current_time", json!({})));
    fake.push(Reply::hang());
    fake.push(Reply::text("It is now."));
    let shared = Shared::new(&admin, &fake, &[]).await;
    let mut a = shared.start(&[]);
    let agent = create_agent(&a, json!({"name": "clock", "model_name": "gpt-4o-mini"})).await;
    let (st, body, _) = send(a.post(ADMIN_KEY, &format!("/agents/{agent}/sessions"), json!({"input": "what time is it?"}))).await;
    assert_eq!(st, 202, "{body}");
    let sid = body["session"]["id"].as_str().unwrap().to_string();
    wait_requests(&fake, 2).await;
    let b = shared.start(&[]);
    a.kill9();

    let done = wait_state(&b, &sid, &["completed"], Duration::from_secs(30)).await;
    assert_eq!(fake.request_count(), 3, "step 1's model call was not repeated");
    let parts = done["messages"][1]["parts"].as_array().cloned().unwrap_or_default();
    let tool_parts = parts.iter().filter(|p| p["type"].as_str().is_some_and(|t| t.starts_with("tool"))).count();
    assert_eq!(tool_parts, 1, "the tool step ran once: {parts:?}");
    let text: String = parts.iter().filter(|p| p["type"] == "text").map(|p| p["text"].as_str().unwrap_or("")).collect();
    assert_eq!(text, "It is now.");
    // The whole log streams from B, each event once.
    let events = stream(&b, &sid, 0).await;
    let seqs: Vec<i64> = events.iter().map(|(_, s, _)| *s).collect();
    assert_eq!(seqs, (1..=seqs.len() as i64).collect::<Vec<_>>());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancel_sent_to_b_stops_a_run_executing_on_a() {
    let Some(admin) = admin_url() else { return };
    let fake = FakeLlm::start().await;
    fake.push(Reply::hang());
    let shared = Shared::new(&admin, &fake, &[]).await;
    let a = shared.start(&[]);
    let b = shared.start(&[("OPENLOOP_WORKERS", "0")]);
    let agent = create_agent(&a, json!({"name": "slow", "model_name": "gpt-4o-mini"})).await;
    let (st, body, _) = send(a.post(ADMIN_KEY, &format!("/agents/{agent}/sessions"), json!({"input": "take your time"}))).await;
    assert_eq!(st, 202, "{body}");
    let sid = body["session"]["id"].as_str().unwrap().to_string();
    wait_requests(&fake, 1).await;

    let started = std::time::Instant::now();
    let (st, body, _) = send(b.post(ADMIN_KEY, &format!("/sessions/{sid}/cancel"), json!({}))).await;
    assert_eq!(st, 200, "{body}");
    let on_a = wait_state(&a, &sid, &["cancelled"], Duration::from_secs(10)).await;
    assert!(started.elapsed() < Duration::from_secs(5), "the cancel reached A at once (notice), not at a lease expiry: {:?}", started.elapsed());
    assert_eq!(on_a["state"], "cancelled");
    // The provider's stream was dropped: A stopped the run, it did not just relabel it.
    assert!(fake.wait_for_disconnects(1, Duration::from_secs(5)).await, "A's model call was not stopped");
    let events = stream(&b, &sid, 0).await;
    let last = events.last().map(|(_, _, d)| d.clone()).unwrap_or_default();
    assert_eq!((last["type"].as_str(), last["finishReason"].as_str()), (Some("finish"), Some("cancelled")), "{last}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_per_key_quota_holds_across_both_replicas() {
    let Some(admin) = admin_url() else { return };
    let fake = FakeLlm::start().await;
    let shared = Shared::new(&admin, &fake, &[("OPENLOOP_RATE_LIMIT_REQUESTS", "100"), ("OPENLOOP_RATE_LIMIT_WINDOW_SECS", "3600")]).await;
    let a = shared.start(&[]);
    let b = shared.start(&[]);
    // 150 requests, alternating replicas, 10 at a time: exactly the quota passes.
    let mut passed = 0;
    let mut limited = 0;
    for batch in 0..15 {
        let reqs = (0..10).map(|i| {
            let s = if (batch * 10 + i) % 2 == 0 { &a } else { &b };
            send(s.get(ADMIN_KEY, "/agents"))
        });
        for (st, body, headers) in futures::future::join_all(reqs).await {
            match st {
                200 => passed += 1,
                429 => {
                    limited += 1;
                    assert_eq!(body["error"]["code"], "rate_limited");
                    assert!(headers.contains_key("retry-after"));
                }
                other => panic!("unexpected {other}: {body}"),
            }
        }
    }
    assert_eq!((passed, limited), (100, 50), "the quota is one bucket for both replicas");
}
