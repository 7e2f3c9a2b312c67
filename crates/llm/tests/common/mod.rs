#![allow(dead_code)]

use futures::StreamExt;
use llm::{AnthropicClient, ChatEvent, ChatMessage, ChatModel, ChatRequest, HttpOptions, LlmError, OpenAiClient, RetryPolicy, ToolCall};
use std::time::Duration;
use testkit::fake_llm::FakeLlm;

pub const OPENAI_KEY: &str = "sk-test-key-123456";
pub const ANTHROPIC_KEY: &str = "ak-test-key-654321";

pub fn opts() -> HttpOptions {
    HttpOptions {
        request_timeout: Duration::from_secs(10),
        retry: RetryPolicy { max_attempts: 3, initial_backoff: Duration::from_millis(10), max_wait: Duration::from_secs(30) },
    }
}

pub fn openai(fake: &FakeLlm) -> OpenAiClient {
    OpenAiClient::new(&fake.openai_base_url(), Some(OPENAI_KEY.into()), opts())
}

pub fn anthropic(fake: &FakeLlm) -> AnthropicClient {
    AnthropicClient::new(&fake.base_url(), Some(ANTHROPIC_KEY.into()), opts())
}

pub fn req(model: &str, text: &str) -> ChatRequest {
    ChatRequest { model: model.into(), messages: vec![ChatMessage::system("be brief"), ChatMessage::user(text)], ..Default::default() }
}

/// All items of the stream (stops after the first error).
pub async fn events(model: &dyn ChatModel, req: ChatRequest) -> Result<Vec<Result<ChatEvent, LlmError>>, LlmError> {
    let mut s = model.stream(req).await?;
    let mut out = Vec::new();
    while let Some(item) = s.next().await {
        let err = item.is_err();
        out.push(item);
        if err {
            break;
        }
    }
    Ok(out)
}

/// Successful events; panics on any error.
pub async fn ok_events(model: &dyn ChatModel, req: ChatRequest) -> Vec<ChatEvent> {
    events(model, req).await.expect("stream start").into_iter().map(|e| e.expect("stream item")).collect()
}

pub fn text_of(ev: &[ChatEvent]) -> String {
    ev.iter()
        .filter_map(|e| match e {
            ChatEvent::TextDelta(t) => Some(t.as_str()),
            _ => None,
        })
        .collect()
}

pub fn reasoning_of(ev: &[ChatEvent]) -> String {
    ev.iter()
        .filter_map(|e| match e {
            ChatEvent::ReasoningDelta(t) => Some(t.as_str()),
            _ => None,
        })
        .collect()
}

pub fn text_deltas(ev: &[ChatEvent]) -> usize {
    ev.iter().filter(|e| matches!(e, ChatEvent::TextDelta(_))).count()
}

pub fn tool_calls(ev: &[ChatEvent]) -> Vec<ToolCall> {
    ev.iter()
        .filter_map(|e| match e {
            ChatEvent::ToolCallDone(c) => Some(c.clone()),
            _ => None,
        })
        .collect()
}

pub fn usages(ev: &[ChatEvent]) -> Vec<llm::Usage> {
    ev.iter()
        .filter_map(|e| match e {
            ChatEvent::Usage(u) => Some(*u),
            _ => None,
        })
        .collect()
}

/// Checks the stream contract: ends with exactly one Finish, Usage at most
/// once and after all ToolCallDone; returns the finish reason.
pub fn finish_reason(ev: &[ChatEvent]) -> String {
    let finishes = ev.iter().filter(|e| matches!(e, ChatEvent::Finish { .. })).count();
    assert_eq!(finishes, 1, "exactly one Finish: {ev:?}");
    assert!(usages(ev).len() <= 1, "at most one Usage: {ev:?}");
    if let Some(u) = ev.iter().position(|e| matches!(e, ChatEvent::Usage(_))) {
        assert!(!ev[u..].iter().any(|e| matches!(e, ChatEvent::ToolCallDone(_) | ChatEvent::TextDelta(_))), "Usage comes after content: {ev:?}");
    }
    match ev.last() {
        Some(ChatEvent::Finish { reason }) => reason.clone(),
        other => panic!("last event is not Finish: {other:?}"),
    }
}

/// Per tool call id: Start precedes ArgsDeltas which precede Done, and the
/// deltas concatenate to the raw argument text.
pub fn check_tool_call_order(ev: &[ChatEvent]) {
    for done in tool_calls(ev) {
        let start = ev
            .iter()
            .position(|e| matches!(e, ChatEvent::ToolCallStart { id, .. } if *id == done.id))
            .unwrap_or_else(|| panic!("no ToolCallStart for {}", done.id));
        let end = ev.iter().position(|e| matches!(e, ChatEvent::ToolCallDone(c) if c.id == done.id)).unwrap();
        assert!(start < end);
        let args: String = ev
            .iter()
            .filter_map(|e| match e {
                ChatEvent::ToolCallArgsDelta { id, delta } if *id == done.id => Some(delta.as_str()),
                _ => None,
            })
            .collect();
        let reparsed = llm::parse_tool_arguments(&args);
        assert_eq!(reparsed, done.arguments, "deltas of {} add up", done.id);
    }
}
