//! OpenAI client against the fake server over HTTP.

mod common;

use common::*;
use llm::{ChatEvent, ChatMessage, ChatRequest, ToolCall, ToolSpec, Usage};
use serde_json::{json, Value};
use testkit::fake_llm::{FakeLlm, Reply};

#[tokio::test]
async fn text_streaming_in_chunks() {
    let fake = FakeLlm::start().await;
    fake.push(Reply::text_chunks("Hello, streaming world!", 4));
    let ev = ok_events(&openai(&fake), req("gpt-4o", "hi")).await;
    assert_eq!(text_of(&ev), "Hello, streaming world!");
    assert_eq!(text_deltas(&ev), 4);
    assert_eq!(finish_reason(&ev), "stop");
    assert_eq!(usages(&ev), vec![Usage { input_tokens: 10, output_tokens: 5, cached_input_tokens: 0, reasoning_tokens: 0 }]);

    let rec = fake.recorded();
    assert_eq!(rec.len(), 1);
    assert_eq!(rec[0].path, "/v1/chat/completions");
    assert_eq!(rec[0].headers.get("authorization").map(String::as_str), Some(format!("Bearer {OPENAI_KEY}").as_str()));
    let body = &rec[0].body;
    assert_eq!(body["model"], "gpt-4o");
    assert_eq!(body["stream"], true);
    assert_eq!(body["stream_options"]["include_usage"], true);
    assert_eq!(body["messages"], json!([{"role": "system", "content": "be brief"}, {"role": "user", "content": "hi"}]));
    assert!(body.get("tools").is_none());
}

#[tokio::test]
async fn default_reply_echoes_last_user_text() {
    let fake = FakeLlm::start().await;
    let ev = ok_events(&openai(&fake), req("m", "ping 42")).await;
    assert_eq!(text_of(&ev), "ok: ping 42");
    assert_eq!(fake.request_count(), 1);
}

#[tokio::test]
async fn single_tool_call() {
    let fake = FakeLlm::start().await;
    fake.push(Reply::tool_call("get_weather", json!({"city": "Paris", "days": 3})).chunks(4));
    let mut r = req("gpt-4o", "weather?");
    r.tools = vec![ToolSpec {
        name: "get_weather".into(),
        description: "Weather".into(),
        parameters: json!({"type": "object", "properties": {"city": {"type": "string"}}}),
    }];
    let ev = ok_events(&openai(&fake), r).await;
    let calls = tool_calls(&ev);
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0].name, "get_weather");
    assert_eq!(calls[0].arguments, json!({"city": "Paris", "days": 3}));
    assert_eq!(calls[0].id, "call_1_0");
    check_tool_call_order(&ev);
    let deltas = ev.iter().filter(|e| matches!(e, ChatEvent::ToolCallArgsDelta { .. })).count();
    assert!(deltas >= 2, "arguments streamed in pieces");
    assert_eq!(finish_reason(&ev), "tool_calls");
    let body = fake.last_request().unwrap();
    assert_eq!(body["tools"][0]["type"], "function");
    assert_eq!(body["tools"][0]["function"]["name"], "get_weather");
}

#[tokio::test]
async fn parallel_tool_calls_with_text() {
    let fake = FakeLlm::start().await;
    fake.push(
        Reply::tool_calls([("search", json!({"q": "rust"})), ("fetch", json!({"url": "http://x"})), ("noop", json!({}))]).with_text("Let me check.").chunks(3),
    );
    let ev = ok_events(&openai(&fake), req("gpt-4o", "go")).await;
    assert_eq!(text_of(&ev), "Let me check.");
    let calls = tool_calls(&ev);
    let names: Vec<_> = calls.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["search", "fetch", "noop"]);
    assert_eq!(calls[1].arguments, json!({"url": "http://x"}));
    assert_eq!(calls[2].arguments, json!({}));
    check_tool_call_order(&ev);
    assert_eq!(finish_reason(&ev), "tool_calls");
}

#[tokio::test]
async fn parallel_tool_calls_missing_index() {
    let fake = FakeLlm::start().await;
    fake.push(Reply::tool_calls([("a", json!({"x": 1})), ("b", json!({"y": [1, 2]}))]).chunks(3).omit_tool_index());
    let ev = ok_events(&openai(&fake), req("local-model", "go")).await;
    let calls = tool_calls(&ev);
    assert_eq!(calls.len(), 2);
    assert_eq!(calls[0].name, "a");
    assert_eq!(calls[0].arguments, json!({"x": 1}));
    assert_eq!(calls[1].name, "b");
    assert_eq!(calls[1].arguments, json!({"y": [1, 2]}));
    check_tool_call_order(&ev);
}

#[tokio::test]
async fn malformed_tool_arguments_become_a_string() {
    let fake = FakeLlm::start().await;
    fake.push(Reply::tool_call_raw("f", "{\"a\": 1,").chunks(2));
    let ev = ok_events(&openai(&fake), req("m", "go")).await;
    let calls = tool_calls(&ev);
    assert_eq!(calls[0].arguments, Value::String("{\"a\": 1,".into()));
    assert_eq!(finish_reason(&ev), "tool_calls");
}

#[tokio::test]
async fn reasoning_deltas() {
    let fake = FakeLlm::start().await;
    fake.push(Reply::reasoning("thinking hard", "42").chunks(3));
    let ev = ok_events(&openai(&fake), req("deepseek-r1", "q")).await;
    assert_eq!(reasoning_of(&ev), "thinking hard");
    assert_eq!(text_of(&ev), "42");
    let first_text = ev.iter().position(|e| matches!(e, ChatEvent::TextDelta(_))).unwrap();
    let last_reasoning = ev.iter().rposition(|e| matches!(e, ChatEvent::ReasoningDelta(_))).unwrap();
    assert!(last_reasoning < first_text);
}

#[tokio::test]
async fn usage_details() {
    let fake = FakeLlm::start().await;
    fake.push(Reply::text("x").usage(120, 30).usage_details(100, 12));
    let ev = ok_events(&openai(&fake), req("m", "q")).await;
    assert_eq!(usages(&ev), vec![Usage { input_tokens: 120, output_tokens: 30, cached_input_tokens: 100, reasoning_tokens: 12 }]);
}

#[tokio::test]
async fn lenient_missing_done_null_finish_no_usage() {
    let fake = FakeLlm::start().await;
    fake.push(Reply::text_chunks("abc", 3).omit_done().null_finish_reason().no_usage());
    let ev = ok_events(&openai(&fake), req("m", "q")).await;
    assert_eq!(text_of(&ev), "abc");
    assert!(usages(&ev).is_empty());
    assert_eq!(finish_reason(&ev), "stop");

    // Tool calls without finish_reason still finish as tool_calls.
    fake.push(Reply::tool_call("f", json!({"k": "v"})).omit_done().null_finish_reason());
    let ev = ok_events(&openai(&fake), req("m", "q")).await;
    assert_eq!(tool_calls(&ev)[0].arguments, json!({"k": "v"}));
    assert_eq!(finish_reason(&ev), "tool_calls");
}

#[tokio::test]
async fn json_response_to_streaming_request() {
    let fake = FakeLlm::start().await;
    fake.push(Reply::text("whole answer").with_reasoning("hmm").with_tool_call("f", json!({"a": 1})).with_tool_call("g", json!({"b": 2})).json_response());
    let ev = ok_events(&openai(&fake), req("m", "q")).await;
    assert_eq!(text_of(&ev), "whole answer");
    assert_eq!(reasoning_of(&ev), "hmm");
    let calls = tool_calls(&ev);
    assert_eq!(calls.len(), 2);
    assert_eq!(calls[1].arguments, json!({"b": 2}));
    check_tool_call_order(&ev);
    assert_eq!(usages(&ev).len(), 1);
    assert_eq!(finish_reason(&ev), "tool_calls");
}

#[tokio::test]
async fn multi_turn_transcript_is_encoded() {
    let fake = FakeLlm::start().await;
    let r = ChatRequest {
        model: "o3-mini".into(),
        messages: vec![
            ChatMessage::system("sys"),
            ChatMessage::user("do it"),
            ChatMessage::Assistant { text: String::new(), tool_calls: vec![ToolCall { id: "call_1".into(), name: "f".into(), arguments: json!({"a": 1}) }] },
            ChatMessage::tool("call_1", "result text"),
        ],
        temperature: Some(0.2),
        max_tokens: Some(100),
        reasoning_effort: Some("high".into()),
        ..Default::default()
    };
    let ev = ok_events(&openai(&fake), r).await;
    assert_eq!(text_of(&ev), "ok: do it");
    let body = fake.last_request().unwrap();
    assert_eq!(body["messages"][2]["tool_calls"][0]["id"], "call_1");
    assert_eq!(body["messages"][2]["tool_calls"][0]["function"]["arguments"], "{\"a\":1}");
    assert_eq!(body["messages"][3], json!({"role": "tool", "tool_call_id": "call_1", "content": "result text"}));
    assert_eq!(body["temperature"], 0.2);
    assert_eq!(body["max_completion_tokens"], 100);
    assert_eq!(body["reasoning_effort"], "high");
}

#[tokio::test]
async fn list_models() {
    let fake = FakeLlm::start().await;
    fake.set_models(vec!["llama3".into(), "qwen2.5".into()]);
    let models = openai(&fake).list_models().await.unwrap();
    assert_eq!(models, ["llama3", "qwen2.5"]);
}

#[tokio::test]
async fn scripts_by_user_text_under_concurrency() {
    let fake = FakeLlm::start().await;
    for i in 0..8 {
        fake.on_user_contains(format!("job-{i}:"), Reply::text(format!("answer {i}")).chunks(2));
    }
    fake.push(Reply::text("from queue"));
    let client = openai(&fake);
    let tasks = (0..8).map(|i| {
        let client = client.clone();
        tokio::spawn(async move {
            let ev = ok_events(&client, req("m", &format!("job-{i}: go"))).await;
            (i, text_of(&ev))
        })
    });
    for t in tasks {
        let (i, text) = t.await.unwrap();
        assert_eq!(text, format!("answer {i}"));
    }
    // One-shot rules are consumed; the queue is next.
    let ev = ok_events(&client, req("m", "job-1: again")).await;
    assert_eq!(text_of(&ev), "from queue");
    let ev = ok_events(&client, req("m", "job-1: again")).await;
    assert_eq!(text_of(&ev), "ok: job-1: again");
    assert_eq!(fake.pending(), 0);
}

#[tokio::test]
async fn collect_helper() {
    let fake = FakeLlm::start().await;
    fake.push(Reply::reasoning("r", "t").with_tool_call("f", json!({"x": true})));
    let client = openai(&fake);
    let resp = llm::collect(llm::ChatModel::stream(&client, req("m", "q")).await.unwrap()).await.unwrap();
    assert_eq!(resp.text, "t");
    assert_eq!(resp.reasoning, "r");
    assert_eq!(resp.tool_calls[0].arguments, json!({"x": true}));
    assert_eq!(resp.finish_reason, "tool_calls");
    assert!(resp.usage.is_some());
}
