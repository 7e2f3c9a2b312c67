//! C1/C2 chat completions and M2 model routing over real HTTP against the fake provider:
//! the order of streamed chunks (role, deltas, finish, usage, `[DONE]`), tool-call deltas,
//! a client disconnect dropping the provider stream, and every completion's credits in
//! the credit ledger (E1 `credit_logs`).

use std::time::Duration;

use serde_json::{json, Value};
use testkit::fake_llm::{FakeLlm, Reply};
use testkit::{send, start_with_fake, Server, ADMIN_KEY, ADMIN_USER, TEAM_ID};

fn bin() -> &'static std::path::Path {
    env!("CARGO_BIN_EXE_openloop").as_ref()
}

fn start(fake: &FakeLlm) -> Server {
    start_with_fake(bin(), fake, &[("OPENLOOP_LOG", "error"), ("OPENLOOP_RATE_LIMIT_REQUESTS", "1000000")])
}

/// The `data` of each event of a C2 response, in order.
async fn stream(s: &Server, body: Value) -> Vec<String> {
    let resp = s.post(ADMIN_KEY, "/chat/completions", body).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert!(resp.headers()["content-type"].to_str().unwrap().starts_with("text/event-stream"));
    let text = resp.text().await.unwrap();
    text.lines().filter_map(|l| l.strip_prefix("data: ")).map(str::to_string).collect()
}

fn frames(data: &[String]) -> Vec<Value> {
    assert_eq!(data.last().map(String::as_str), Some("[DONE]"), "{data:?}");
    data[..data.len() - 1].iter().map(|d| serde_json::from_str(d).unwrap()).collect()
}

fn finish_reason(f: &Value) -> Option<&str> {
    f["choices"][0]["finish_reason"].as_str()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streamed_chunks_come_in_order_and_every_completion_is_charged() {
    let fake = FakeLlm::start().await;
    let s = start(&fake);
    let mut ids = Vec::new();

    // Text: role, deltas, finish, usage, [DONE].
    fake.push(Reply::text_chunks("Hello streaming world", 3).usage(1000, 500));
    let f = frames(&stream(&s, json!({"model": "gpt-4o-mini", "stream": true, "messages": [{"role": "user", "content": "hi"}]})).await);
    assert_eq!(f[0]["choices"][0]["delta"], json!({"role": "assistant", "content": ""}), "{f:?}");
    let id = f[0]["id"].as_str().unwrap().to_string();
    assert!(id.starts_with("chatcmpl-") && f.iter().all(|x| x["id"] == id.as_str() && x["object"] == "chat.completion.chunk"));
    let finish = f.iter().position(|x| finish_reason(x).is_some()).expect("a finish chunk");
    assert_eq!(finish_reason(&f[finish]), Some("stop"));
    let text: String = f[1..finish].iter().map(|x| x["choices"][0]["delta"]["content"].as_str().unwrap()).collect();
    assert_eq!(text, "Hello streaming world");
    assert!(finish > 2, "the provider's deltas are passed on as they come: {f:?}");
    assert_eq!(finish, f.len() - 2, "the usage chunk follows the finish: {f:?}");
    let last = &f[f.len() - 1];
    assert_eq!(last["choices"], json!([]));
    assert_eq!(
        (last["usage"]["prompt_tokens"].as_u64(), last["usage"]["completion_tokens"].as_u64(), last["usage"]["total_tokens"].as_u64()),
        (Some(1000), Some(500), Some(1500))
    );
    assert_eq!(last["usage"]["cost"].as_f64(), Some(1.5));
    ids.push(id);

    // Tool calls: the start (id, name) then argument deltas at its index, finish `tool_calls`.
    fake.push(Reply::tool_calls([("lookup", json!({"q": "pelicans"})), ("fetch", json!({"url": "https://example.com"}))]).chunks(3));
    let tools = json!([{"type": "function", "function": {"name": "lookup", "parameters": {"type": "object"}}},
                       {"type": "function", "function": {"name": "fetch"}}]);
    let f = frames(&stream(&s, json!({"model": "gpt-4o-mini", "stream": true, "tools": tools, "messages": [{"role": "user", "content": "look"}]})).await);
    let deltas: Vec<&Value> = f.iter().filter_map(|x| x["choices"][0]["delta"]["tool_calls"].as_array()).flatten().collect();
    for (index, name, args) in [(0, "lookup", json!({"q": "pelicans"})), (1, "fetch", json!({"url": "https://example.com"}))] {
        let mine: Vec<&&Value> = deltas.iter().filter(|d| d["index"] == index).collect();
        assert_eq!((mine[0]["function"]["name"].as_str(), mine[0]["type"].as_str()), (Some(name), Some("function")), "{deltas:?}");
        assert!(mine[0]["id"].as_str().unwrap().starts_with("call_"));
        assert!(mine[1..].iter().all(|d| d.get("id").is_none()));
        let text: String = mine.iter().map(|d| d["function"]["arguments"].as_str().unwrap_or("")).collect();
        assert_eq!(serde_json::from_str::<Value>(&text).unwrap(), args);
    }
    let finish = f.iter().position(|x| finish_reason(x).is_some()).unwrap();
    assert_eq!(finish_reason(&f[finish]), Some("tool_calls"));
    assert!(f[..finish].iter().all(|x| x["choices"][0]["finish_reason"].is_null()));
    assert_eq!(f.last().unwrap()["usage"]["total_tokens"], 15);
    // The tools reached the provider as functions.
    let sent = fake.last_request().unwrap();
    assert_eq!(sent["tools"][1]["function"]["name"], "fetch");
    ids.push(f[0]["id"].as_str().unwrap().to_string());

    // Unary, team-scoped: charged to the team.
    fake.push(Reply::text("plain answer").usage(2000, 1000));
    let (st, b, _) =
        send(s.post(ADMIN_KEY, &format!("/chat/completions?team_id={TEAM_ID}"), json!({"model": "auto", "messages": [{"role": "user", "content": "hi"}]})))
            .await;
    assert_eq!(st, 200, "{b}");
    assert_eq!((b["object"].as_str(), b["model"].as_str()), (Some("chat.completion"), Some("openai/gpt-4o-mini")));
    assert_eq!(b["choices"][0]["message"], json!({"role": "assistant", "content": "plain answer"}));
    assert_eq!((b["usage"]["total_tokens"].as_u64(), b["usage"]["cost"].as_f64()), (Some(3000), Some(3.0)));
    assert!(b["system_fingerprint"].is_null() && b.as_object().unwrap().contains_key("system_fingerprint"));
    ids.push(b["id"].as_str().unwrap().to_string());

    // A provider failure before the first byte: 502, nothing charged.
    fake.push(Reply::error(400, "the fake refuses"));
    let (st, b, _) =
        send(s.post(ADMIN_KEY, "/chat/completions", json!({"model": "gpt-4o-mini", "stream": true, "messages": [{"role": "user", "content": "x"}]}))).await;
    assert_eq!((st, b["error"]["code"].as_str()), (502, Some("provider_error")), "{b}");

    // The credit ledger has one row per completion, with its id as correlation.
    let (st, e, _) = send(s.post(
        ADMIN_KEY,
        "/export_data",
        json!({"user_id": ADMIN_USER, "data_type": "credit_logs", "start_date": "2026-01-01", "end_date": "2030-12-31",
        "export_fields": ["category", "type", "name", "amount", "correlation_id"]}),
    ))
    .await;
    assert_eq!(st, 200, "{e}");
    let rows = export_rows(&s, e["data_export_id"].as_str().unwrap()).await;
    let mut chat: Vec<(String, String, f64, String)> =
        rows.into_iter().filter(|r| r[0] == "CHAT_COMPLETION").map(|r| (r[1].clone(), r[2].clone(), r[3].parse().unwrap(), r[4].clone())).collect();
    chat.sort_by(|a, b| a.3.cmp(&b.3));
    let mut expected = [
        ("model_call".to_string(), "gpt-4o-mini".to_string(), 1.5, ids[0].clone()),
        ("model_call".to_string(), "gpt-4o-mini".to_string(), 0.015, ids[1].clone()),
        ("model_call".to_string(), "openai/gpt-4o-mini".to_string(), 3.0, ids[2].clone()),
    ];
    expected.sort_by(|a, b| a.3.cmp(&b.3));
    assert_eq!(chat, expected);
}

async fn export_rows(s: &Server, id: &str) -> Vec<Vec<String>> {
    for _ in 0..500 {
        let (st, b, _) = send(s.get(ADMIN_KEY, &format!("/export_status?user_id={ADMIN_USER}&data_export_id={id}"))).await;
        assert_eq!(st, 200, "{b}");
        match b["state"].as_str() {
            Some("COMPLETED") => {
                let resp = s.get(ADMIN_KEY, &format!("/export_status?user_id={ADMIN_USER}&data_export_id={id}&download=true")).send().await.unwrap();
                let text = resp.text().await.unwrap();
                let mut rdr = csv::ReaderBuilder::new().has_headers(true).from_reader(text.as_bytes());
                return rdr.records().map(|r| r.unwrap().iter().map(str::to_string).collect()).collect();
            }
            Some("FAILED") => panic!("export failed: {b}"),
            _ => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    }
    panic!("export {id} did not finish");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_disconnect_drops_the_provider_stream_and_a_provider_failure_ends_it() {
    let fake = FakeLlm::start().await;
    let s = start(&fake);
    fake.push(Reply::text_chunks("a long answer that keeps coming for a while", 40).chunk_delay(Duration::from_millis(100)));
    let mut resp = s
        .post(ADMIN_KEY, "/chat/completions", json!({"model": "gpt-4o-mini", "stream": true, "messages": [{"role": "user", "content": "go"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let first = resp.chunk().await.unwrap().unwrap();
    assert!(String::from_utf8_lossy(&first).contains("chat.completion.chunk"));
    assert_eq!(fake.open_streams(), 1);
    drop(resp);
    assert!(fake.wait_for_disconnects(1, Duration::from_secs(10)).await, "the provider request was not aborted");

    // The provider breaking mid-stream: a chunk with `error` and finish `error`, then [DONE].
    fake.push(Reply::text_chunks("one two three four", 4).disconnect_after(2));
    let f = frames(&stream(&s, json!({"model": "gpt-4o-mini", "stream": true, "messages": [{"role": "user", "content": "break"}]})).await);
    let last = f.last().unwrap();
    assert_eq!(finish_reason(last), Some("error"), "{f:?}");
    assert_eq!(last["error"]["code"], 502, "{last}");
    assert!(last["error"]["message"].as_str().unwrap().starts_with("ProviderError: "), "{last}");
    assert!(f[1..f.len() - 1].iter().all(|x| x["choices"][0]["delta"]["content"].is_string()), "{f:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn m2_routes_to_the_first_available_model_and_refuses_unknown_fields() {
    let fake = FakeLlm::start().await;
    let s = start(&fake);
    let (st, b, _) =
        send(s.post(ADMIN_KEY, "/models/route", json!({"input": "summarise", "models": ["claude-3-5-haiku-latest", "gpt-4o-mini", "gpt-4o"]}))).await;
    assert_eq!(st, 200, "{b}");
    assert_eq!(b["router"], "openloop");
    assert_eq!((b["route"]["model"].as_str(), b["route"]["fail_closed"].as_bool()), (Some("gpt-4o-mini"), Some(false)));
    assert_eq!(b["route"]["fallback_models"], json!(["gpt-4o"]));
    let statuses: Vec<&str> = b["candidates"].as_array().unwrap().iter().map(|c| c["status"].as_str().unwrap()).collect();
    assert_eq!(statuses, ["unavailable", "available", "available"]);
    let (st, b, _) = send(s.post(ADMIN_KEY, "/models/route", json!({"input": "x", "lane": "fast"}))).await;
    assert_eq!((st, b["error"]["code"].as_str(), b["error"]["param"].as_str()), (400, Some("invalid_request"), Some("lane")), "{b}");
    let (st, b, _) = send(s.post(ADMIN_KEY, "/models/route", json!({"input": "x", "team_id": "team_nowhere"}))).await;
    assert_eq!((st, b["error"]["param"].as_str()), (403, Some("team_id")), "{b}");
}
