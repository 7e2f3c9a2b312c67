//! Provider-neutral request / response types.

use crate::error::LlmError;
use futures::StreamExt;
use serde::{Deserialize, Serialize};

/// One model call.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ChatRequest {
    /// Provider-native model id (routing prefix such as `openai/` already stripped,
    /// see [`crate::Providers::resolve`]).
    pub model: String,
    pub messages: Vec<ChatMessage>,
    /// Tools offered to the model; empty = no tools.
    #[serde(default)]
    pub tools: Vec<ToolSpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_tokens: Option<u32>,
    /// `"low" | "medium" | "high"` (passed through to OpenAI-compatible providers;
    /// not forwarded to Anthropic).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reasoning_effort: Option<String>,
}

/// A transcript entry. Serialized as `{"role": "system" | "user" | "assistant" | "tool", …}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "role", rename_all = "snake_case")]
pub enum ChatMessage {
    System {
        text: String,
    },
    User {
        text: String,
    },
    Assistant {
        #[serde(default)]
        text: String,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        tool_calls: Vec<ToolCall>,
    },
    Tool {
        tool_call_id: String,
        content: String,
    },
}

impl ChatMessage {
    pub fn system(text: impl Into<String>) -> Self {
        ChatMessage::System { text: text.into() }
    }
    pub fn user(text: impl Into<String>) -> Self {
        ChatMessage::User { text: text.into() }
    }
    pub fn assistant(text: impl Into<String>) -> Self {
        ChatMessage::Assistant { text: text.into(), tool_calls: Vec::new() }
    }
    pub fn tool(tool_call_id: impl Into<String>, content: impl Into<String>) -> Self {
        ChatMessage::Tool { tool_call_id: tool_call_id.into(), content: content.into() }
    }
}

/// A tool offered to the model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolSpec {
    pub name: String,
    pub description: String,
    /// JSON Schema of the arguments object.
    pub parameters: serde_json::Value,
}

/// A complete tool call requested by the model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolCall {
    pub id: String,
    pub name: String,
    /// Parsed arguments. When the model produced malformed JSON this is a JSON
    /// *string* holding the raw text; empty arguments become `{}`.
    pub arguments: serde_json::Value,
}

/// Token usage reported by the provider for one call.
///
/// `input_tokens` includes cached input tokens (for Anthropic it is
/// `input_tokens + cache_read_input_tokens + cache_creation_input_tokens`);
/// `output_tokens` includes reasoning tokens.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    #[serde(default)]
    pub input_tokens: u64,
    #[serde(default)]
    pub output_tokens: u64,
    #[serde(default)]
    pub cached_input_tokens: u64,
    #[serde(default)]
    pub reasoning_tokens: u64,
}

impl Usage {
    /// Field-wise saturating sum.
    pub fn add(&mut self, other: &Usage) {
        self.input_tokens = self.input_tokens.saturating_add(other.input_tokens);
        self.output_tokens = self.output_tokens.saturating_add(other.output_tokens);
        self.cached_input_tokens = self.cached_input_tokens.saturating_add(other.cached_input_tokens);
        self.reasoning_tokens = self.reasoning_tokens.saturating_add(other.reasoning_tokens);
    }
}

/// One streamed event.
///
/// A successful stream yields deltas; every tool call gets a `ToolCallStart`,
/// its `ToolCallArgsDelta`s and then exactly one `ToolCallDone` (in the order
/// the calls were started); after all content comes at most one `Usage`, and
/// finally exactly one `Finish`, after which the stream ends. A failed stream
/// ends with a single `Err` item instead.
///
/// Serialized as `{"type": "text_delta", "data": …}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", content = "data", rename_all = "snake_case")]
pub enum ChatEvent {
    TextDelta(String),
    ReasoningDelta(String),
    ToolCallStart {
        id: String,
        name: String,
    },
    ToolCallArgsDelta {
        id: String,
        delta: String,
    },
    ToolCallDone(ToolCall),
    Usage(Usage),
    /// `reason` is normalised to `"stop" | "length" | "tool_calls" |
    /// "content_filter"`; unknown provider reasons are passed through.
    Finish {
        reason: String,
    },
}

/// The stream returned by [`crate::ChatModel::stream`]. Dropping it aborts the
/// underlying HTTP request.
pub type ChatStream = futures::stream::BoxStream<'static, Result<ChatEvent, LlmError>>;

/// A whole response, aggregated from a [`ChatStream`] by [`collect`].
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ChatResponse {
    pub text: String,
    pub reasoning: String,
    pub tool_calls: Vec<ToolCall>,
    pub usage: Option<Usage>,
    pub finish_reason: String,
}

/// Drains a stream into a [`ChatResponse`]; the first `Err` item is returned.
pub async fn collect(mut stream: ChatStream) -> Result<ChatResponse, LlmError> {
    let mut out = ChatResponse::default();
    while let Some(ev) = stream.next().await {
        match ev? {
            ChatEvent::TextDelta(t) => out.text.push_str(&t),
            ChatEvent::ReasoningDelta(t) => out.reasoning.push_str(&t),
            ChatEvent::ToolCallDone(c) => out.tool_calls.push(c),
            ChatEvent::Usage(u) => out.usage = Some(u),
            ChatEvent::Finish { reason } => out.finish_reason = reason,
            ChatEvent::ToolCallStart { .. } | ChatEvent::ToolCallArgsDelta { .. } => {}
        }
    }
    Ok(out)
}

/// Parses accumulated tool-call argument text: empty → `{}`, valid JSON → the
/// value, anything else → a JSON string holding the raw text.
pub fn parse_tool_arguments(raw: &str) -> serde_json::Value {
    let trimmed = raw.trim();
    if trimmed.is_empty() {
        return serde_json::Value::Object(Default::default());
    }
    serde_json::from_str(trimmed).unwrap_or_else(|_| serde_json::Value::String(raw.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn message_serde_round_trip() {
        let msgs = vec![
            ChatMessage::system("s"),
            ChatMessage::user("u"),
            ChatMessage::Assistant { text: String::new(), tool_calls: vec![ToolCall { id: "c1".into(), name: "f".into(), arguments: json!({"a": 1}) }] },
            ChatMessage::tool("c1", "result"),
        ];
        let v = serde_json::to_value(&msgs).unwrap();
        assert_eq!(v[0], json!({"role": "system", "text": "s"}));
        assert_eq!(v[3]["role"], "tool");
        let back: Vec<ChatMessage> = serde_json::from_value(v).unwrap();
        assert_eq!(back, msgs);
    }

    #[test]
    fn event_serde_round_trip() {
        let events = vec![
            ChatEvent::TextDelta("a".into()),
            ChatEvent::ReasoningDelta("r".into()),
            ChatEvent::ToolCallStart { id: "c".into(), name: "f".into() },
            ChatEvent::ToolCallArgsDelta { id: "c".into(), delta: "{".into() },
            ChatEvent::ToolCallDone(ToolCall { id: "c".into(), name: "f".into(), arguments: json!({}) }),
            ChatEvent::Usage(Usage::default()),
            ChatEvent::Finish { reason: "stop".into() },
        ];
        let v = serde_json::to_value(&events).unwrap();
        assert_eq!(v[0], json!({"type": "text_delta", "data": "a"}));
        let back: Vec<ChatEvent> = serde_json::from_value(v).unwrap();
        assert_eq!(back, events);
    }

    #[test]
    fn tool_args_parsing() {
        assert_eq!(parse_tool_arguments(""), json!({}));
        assert_eq!(parse_tool_arguments(" {\"a\":1} "), json!({"a": 1}));
        assert_eq!(parse_tool_arguments("{\"a\":"), json!("{\"a\":"));
    }
}
