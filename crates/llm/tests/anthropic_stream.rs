//! Anthropic client against the fake server over HTTP.

mod common;

use common::*;
use llm::{ChatEvent, ChatMessage, ChatRequest, ErrorClass, ToolCall, ToolSpec, Usage};
use serde_json::json;
use testkit::fake_llm::{FakeLlm, Reply};

#[tokio::test]
async fn text_streaming_and_request_shape() {
    let fake = FakeLlm::start().await;
    fake.push(Reply::text_chunks("Bonjour tout le monde", 5));
    let mut r = req("claude-sonnet-4-5", "salut");
    r.tools = vec![ToolSpec { name: "f".into(), description: "d".into(), parameters: json!({"type": "object", "properties": {}}) }];
    let ev = ok_events(&anthropic(&fake), r).await;
    assert_eq!(text_of(&ev), "Bonjour tout le monde");
    assert_eq!(text_deltas(&ev), 5);
    assert_eq!(finish_reason(&ev), "stop");
    assert_eq!(usages(&ev), vec![Usage { input_tokens: 10, output_tokens: 5, cached_input_tokens: 0, reasoning_tokens: 0 }]);
    let rec = &fake.recorded()[0];
    assert_eq!(rec.path, "/v1/messages");
    assert_eq!(rec.headers.get("x-api-key").map(String::as_str), Some(ANTHROPIC_KEY));
    assert_eq!(rec.headers.get("anthropic-version").map(String::as_str), Some("2023-06-01"));
    assert!(!rec.headers.contains_key("authorization"));
    let body = &rec.body;
    assert_eq!(body["model"], "claude-sonnet-4-5");
    assert_eq!(body["system"], "be brief");
    assert_eq!(body["max_tokens"], 4096);
    assert_eq!(body["stream"], true);
    assert_eq!(body["messages"], json!([{"role": "user", "content": [{"type": "text", "text": "salut"}]}]));
    assert_eq!(body["tools"][0]["input_schema"]["type"], "object");
}

#[tokio::test]
async fn tool_use_with_partial_json() {
    let fake = FakeLlm::start().await;
    let args = json!({"query": "rust async streams", "limit": 5, "nested": {"a": [1, 2, 3]}});
    fake.push(Reply::tool_call("search", args.clone()).chunks(7));
    let ev = ok_events(&anthropic(&fake), req("claude-x", "find")).await;
    let calls = tool_calls(&ev);
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0].name, "search");
    assert_eq!(calls[0].id, "toolu_1_0");
    assert_eq!(calls[0].arguments, args);
    let deltas = ev.iter().filter(|e| matches!(e, ChatEvent::ToolCallArgsDelta { .. })).count();
    assert_eq!(deltas, 7);
    check_tool_call_order(&ev);
    assert_eq!(finish_reason(&ev), "tool_calls");
}

#[tokio::test]
async fn parallel_tools_text_and_thinking() {
    let fake = FakeLlm::start().await;
    fake.push(Reply::tool_calls([("a", json!({"x": 1})), ("b", json!({}))]).with_text("Checking both.").with_reasoning("I should call a and b").chunks(3));
    let ev = ok_events(&anthropic(&fake), req("claude-x", "go")).await;
    assert_eq!(reasoning_of(&ev), "I should call a and b");
    assert_eq!(text_of(&ev), "Checking both.");
    let calls = tool_calls(&ev);
    assert_eq!(calls.len(), 2);
    assert_eq!(calls[0].arguments, json!({"x": 1}));
    assert_eq!(calls[1].arguments, json!({}));
    check_tool_call_order(&ev);
    assert_eq!(finish_reason(&ev), "tool_calls");
}

#[tokio::test]
async fn usage_with_cache_reads() {
    let fake = FakeLlm::start().await;
    fake.push(Reply::text("x").usage(500, 40).usage_details(300, 0));
    let ev = ok_events(&anthropic(&fake), req("claude-x", "q")).await;
    assert_eq!(usages(&ev), vec![Usage { input_tokens: 500, output_tokens: 40, cached_input_tokens: 300, reasoning_tokens: 0 }]);
}

#[tokio::test]
async fn malformed_partial_json_becomes_string() {
    let fake = FakeLlm::start().await;
    fake.push(Reply::tool_call_raw("f", "{\"a\": tru").chunks(3));
    let ev = ok_events(&anthropic(&fake), req("claude-x", "q")).await;
    assert_eq!(tool_calls(&ev)[0].arguments, json!("{\"a\": tru"));
}

#[tokio::test]
async fn json_response_to_streaming_request() {
    let fake = FakeLlm::start().await;
    fake.push(Reply::text("plain").with_tool_call("f", json!({"k": 1})).json_response());
    let ev = ok_events(&anthropic(&fake), req("claude-x", "q")).await;
    assert_eq!(text_of(&ev), "plain");
    assert_eq!(tool_calls(&ev)[0].arguments, json!({"k": 1}));
    check_tool_call_order(&ev);
    assert_eq!(finish_reason(&ev), "tool_calls");
}

#[tokio::test]
async fn missing_message_stop_after_stop_reason_is_tolerated() {
    let fake = FakeLlm::start().await;
    fake.push(Reply::text("done").omit_done());
    let ev = ok_events(&anthropic(&fake), req("claude-x", "q")).await;
    assert_eq!(text_of(&ev), "done");
    assert_eq!(finish_reason(&ev), "stop");
}

#[tokio::test]
async fn midstream_disconnect_is_an_error_item() {
    let fake = FakeLlm::start().await;
    fake.push(Reply::text_chunks("one two three", 3).disconnect_after(2));
    let items = events(&anthropic(&fake), req("claude-x", "q")).await.unwrap();
    let (ok, err): (Vec<_>, Vec<_>) = items.into_iter().partition(|i| i.is_ok());
    assert_eq!(ok.len(), 2);
    assert_eq!(err.len(), 1);
    let e = err.into_iter().next().unwrap().unwrap_err();
    assert_eq!(e.class, ErrorClass::ProviderError);
    assert!(e.message.contains("stream ended unexpectedly"), "{e}");
    assert_eq!(fake.request_count(), 1, "no retry after events were yielded");
}

#[tokio::test]
async fn overloaded_then_success_and_rate_limit_error() {
    let fake = FakeLlm::start().await;
    fake.push(Reply::error(529, "Overloaded"));
    fake.push(Reply::text("fine"));
    let ev = ok_events(&anthropic(&fake), req("claude-x", "q")).await;
    assert_eq!(text_of(&ev), "fine");
    assert_eq!(fake.request_count(), 2);

    for _ in 0..3 {
        fake.push(Reply::rate_limited(0));
    }
    let err = events(&anthropic(&fake), req("claude-x", "q")).await.unwrap_err();
    assert_eq!(err.class, ErrorClass::RateLimitError);
    assert!(err.message.contains("Rate limit reached"), "{err}");
    assert_eq!(fake.request_count(), 5);
}

#[tokio::test]
async fn transcript_with_tool_results() {
    let fake = FakeLlm::start().await;
    let r = ChatRequest {
        model: "claude-x".into(),
        messages: vec![
            ChatMessage::system("sys"),
            ChatMessage::user("do it"),
            ChatMessage::Assistant {
                text: "calling".into(),
                tool_calls: vec![
                    ToolCall { id: "toolu_a".into(), name: "f".into(), arguments: json!({"a": 1}) },
                    ToolCall { id: "toolu_b".into(), name: "g".into(), arguments: json!({}) },
                ],
            },
            ChatMessage::tool("toolu_a", "ra"),
            ChatMessage::tool("toolu_b", "rb"),
        ],
        max_tokens: Some(77),
        temperature: Some(0.0),
        ..Default::default()
    };
    let ev = ok_events(&anthropic(&fake), r).await;
    // The fake echoes the last user *text*, skipping tool_result blocks.
    assert_eq!(text_of(&ev), "ok: do it");
    let body = fake.last_request().unwrap();
    assert_eq!(body["max_tokens"], 77);
    assert_eq!(body["temperature"], 0.0);
    let msgs = body["messages"].as_array().unwrap();
    assert_eq!(msgs.len(), 3);
    assert_eq!(msgs[1]["role"], "assistant");
    assert_eq!(msgs[1]["content"][1], json!({"type": "tool_use", "id": "toolu_a", "name": "f", "input": {"a": 1}}));
    assert_eq!(msgs[2]["role"], "user");
    assert_eq!(
        msgs[2]["content"],
        json!([
            {"type": "tool_result", "tool_use_id": "toolu_a", "content": "ra"},
            {"type": "tool_result", "tool_use_id": "toolu_b", "content": "rb"}
        ])
    );
}
