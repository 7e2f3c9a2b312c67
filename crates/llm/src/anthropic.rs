//! Anthropic Messages API (`POST {base}/v1/messages`, streaming).
//!
//! System messages become the top-level `system` string, tool results become
//! `tool_result` blocks in a user message, and consecutive messages of the same
//! role are merged. `reasoning_effort` is not forwarded: extended thinking
//! requires replaying signed thinking blocks, which the neutral transcript does
//! not keep. Thinking deltas sent by the server are still surfaced as
//! [`ChatEvent::ReasoningDelta`].

use crate::error::{ErrorClass, LlmError};
use crate::http::{self, EventParser, HttpOptions, Remote, RequestFactory};
use crate::types::{parse_tool_arguments, ChatEvent, ChatMessage, ChatRequest, ChatStream, ToolCall, Usage};
use crate::ChatModel;
use async_trait::async_trait;
use bytes::Bytes;
use serde_json::{json, Map, Value};
use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::sync::Arc;

/// Base URL used when none is configured (without `/v1`).
pub const DEFAULT_BASE_URL: &str = "https://api.anthropic.com";
/// Value of the `anthropic-version` header.
pub const API_VERSION: &str = "2023-06-01";
/// `max_tokens` sent when the request has none (Anthropic requires it).
pub const DEFAULT_MAX_TOKENS: u32 = 4096;

/// Client for the Anthropic Messages API.
#[derive(Clone)]
pub struct AnthropicClient {
    http: reqwest::Client,
    base_url: String,
    remote: Remote,
}

impl fmt::Debug for AnthropicClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AnthropicClient").field("base_url", &self.base_url).field("has_api_key", &self.remote.secret.is_some()).finish()
    }
}

impl AnthropicClient {
    /// `base_url` like `https://api.anthropic.com` (a trailing `/v1` is accepted).
    pub fn new(base_url: &str, api_key: Option<String>, opts: HttpOptions) -> Self {
        Self::with_client(http::build_client(), base_url, api_key, opts)
    }

    /// Like [`AnthropicClient::new`] with a shared `reqwest` client.
    pub fn with_client(http: reqwest::Client, base_url: &str, api_key: Option<String>, opts: HttpOptions) -> Self {
        AnthropicClient {
            http,
            base_url: base_url.trim().trim_end_matches('/').to_string(),
            remote: Remote { label: "Anthropic", secret: api_key.filter(|k| !k.trim().is_empty()), opts },
        }
    }

    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    fn messages_url(&self) -> String {
        if self.base_url.ends_with("/v1") {
            format!("{}/messages", self.base_url)
        } else {
            format!("{}/v1/messages", self.base_url)
        }
    }
}

#[async_trait]
impl ChatModel for AnthropicClient {
    async fn stream(&self, req: ChatRequest) -> Result<ChatStream, LlmError> {
        let body = Bytes::from(request_body(&req).to_string());
        let url = self.messages_url();
        let this = self.clone();
        let factory: RequestFactory = Arc::new(move || {
            let mut rb =
                this.http.post(&url).header("anthropic-version", API_VERSION).header(reqwest::header::CONTENT_TYPE, "application/json").body(body.clone());
            if let Some(key) = &this.remote.secret {
                rb = rb.header("x-api-key", key);
            }
            rb
        });
        http::start_stream::<AnthropicParser>(factory, self.remote.clone()).await
    }
}

/// The Messages API request body for `req` (streaming).
pub fn request_body(req: &ChatRequest) -> Value {
    let mut system: Vec<&str> = Vec::new();
    let mut messages: Vec<(&'static str, Vec<Value>)> = Vec::new();
    let mut push = |role: &'static str, block: Value| match messages.last_mut() {
        Some((r, blocks)) if *r == role => blocks.push(block),
        _ => messages.push((role, vec![block])),
    };
    for m in &req.messages {
        match m {
            ChatMessage::System { text } => {
                if !text.trim().is_empty() {
                    system.push(text);
                }
            }
            ChatMessage::User { text } => {
                if !text.trim().is_empty() {
                    push("user", json!({"type": "text", "text": text}));
                }
            }
            ChatMessage::Assistant { text, tool_calls } => {
                if !text.trim().is_empty() {
                    push("assistant", json!({"type": "text", "text": text}));
                }
                for c in tool_calls {
                    let input = match &c.arguments {
                        Value::Object(_) => c.arguments.clone(),
                        _ => json!({}),
                    };
                    push("assistant", json!({"type": "tool_use", "id": c.id, "name": c.name, "input": input}));
                }
            }
            ChatMessage::Tool { tool_call_id, content } => {
                let mut block = json!({"type": "tool_result", "tool_use_id": tool_call_id});
                if !content.is_empty() {
                    block["content"] = json!(content);
                }
                push("user", block);
            }
        }
    }
    let messages: Vec<Value> = messages.into_iter().map(|(role, content)| json!({"role": role, "content": content})).collect();
    let mut body = Map::new();
    body.insert("model".into(), json!(req.model));
    body.insert("max_tokens".into(), json!(req.max_tokens.unwrap_or(DEFAULT_MAX_TOKENS)));
    if !system.is_empty() {
        body.insert("system".into(), json!(system.join("\n\n")));
    }
    body.insert("messages".into(), Value::Array(messages));
    if !req.tools.is_empty() {
        let tools: Vec<Value> = req
            .tools
            .iter()
            .map(|t| {
                let schema = if t.parameters.is_object() { t.parameters.clone() } else { json!({"type": "object", "properties": {}}) };
                json!({"name": t.name, "description": t.description, "input_schema": schema})
            })
            .collect();
        body.insert("tools".into(), Value::Array(tools));
    }
    if let Some(t) = req.temperature {
        body.insert("temperature".into(), json!(t));
    }
    body.insert("stream".into(), json!(true));
    Value::Object(body)
}

fn normalize_stop(reason: Option<&str>, has_tool_calls: bool) -> String {
    match reason {
        Some("tool_use") => "tool_calls".into(),
        Some("max_tokens") | Some("model_context_window_exceeded") => "length".into(),
        Some("refusal") => "content_filter".into(),
        Some("end_turn") | Some("stop_sequence") | None => {
            if has_tool_calls {
                "tool_calls".into()
            } else {
                "stop".into()
            }
        }
        Some(other) => other.to_string(),
    }
}

enum Block {
    Tool { id: String, name: String, json: String, initial: Value },
    Other,
}

#[derive(Default)]
struct RawUsage {
    input: Option<u64>,
    output: Option<u64>,
    cache_read: Option<u64>,
    cache_creation: Option<u64>,
}

impl RawUsage {
    fn merge(&mut self, u: &Value) {
        let n = |k: &str| u.get(k).and_then(Value::as_u64);
        self.input = n("input_tokens").or(self.input);
        self.output = n("output_tokens").or(self.output);
        self.cache_read = n("cache_read_input_tokens").or(self.cache_read);
        self.cache_creation = n("cache_creation_input_tokens").or(self.cache_creation);
    }

    fn to_usage(&self) -> Option<Usage> {
        if self.input.is_none() && self.output.is_none() {
            return None;
        }
        let cache_read = self.cache_read.unwrap_or(0);
        Some(Usage {
            input_tokens: self.input.unwrap_or(0).saturating_add(cache_read).saturating_add(self.cache_creation.unwrap_or(0)),
            output_tokens: self.output.unwrap_or(0),
            cached_input_tokens: cache_read,
            reasoning_tokens: 0,
        })
    }
}

#[derive(Default)]
pub(crate) struct AnthropicParser {
    blocks: HashMap<u64, Block>,
    /// Tool blocks in start order, to close any left open at the end.
    open_tools: Vec<u64>,
    tool_calls: usize,
    stop_reason: Option<String>,
    usage: RawUsage,
}

impl AnthropicParser {
    fn close_block(&mut self, index: u64, out: &mut VecDeque<ChatEvent>) {
        if let Some(Block::Tool { id, name, json, initial }) = self.blocks.remove(&index) {
            self.open_tools.retain(|i| *i != index);
            let arguments = if json.trim().is_empty() {
                match initial {
                    Value::Object(_) => initial,
                    _ => json!({}),
                }
            } else {
                parse_tool_arguments(&json)
            };
            self.tool_calls += 1;
            out.push_back(ChatEvent::ToolCallDone(ToolCall { id, name, arguments }));
        }
    }

    fn start_block(&mut self, index: u64, block: &Value, out: &mut VecDeque<ChatEvent>) {
        let kind = block.get("type").and_then(Value::as_str).unwrap_or("");
        let text = |k: &str| block.get(k).and_then(Value::as_str).filter(|s| !s.is_empty()).map(str::to_string);
        match kind {
            "text" => {
                if let Some(t) = text("text") {
                    out.push_back(ChatEvent::TextDelta(t));
                }
                self.blocks.insert(index, Block::Other);
            }
            "thinking" => {
                if let Some(t) = text("thinking") {
                    out.push_back(ChatEvent::ReasoningDelta(t));
                }
                self.blocks.insert(index, Block::Other);
            }
            "tool_use" | "server_tool_use" => {
                let id = text("id").unwrap_or_else(|| format!("toolu_{index}"));
                let name = text("name").unwrap_or_default();
                out.push_back(ChatEvent::ToolCallStart { id: id.clone(), name: name.clone() });
                self.open_tools.push(index);
                self.blocks.insert(index, Block::Tool { id, name, json: String::new(), initial: block.get("input").cloned().unwrap_or(Value::Null) });
            }
            _ => {
                self.blocks.insert(index, Block::Other);
            }
        }
    }

    fn delta(&mut self, index: u64, delta: &Value, out: &mut VecDeque<ChatEvent>) {
        let kind = delta.get("type").and_then(Value::as_str).unwrap_or("");
        let s = |k: &str| delta.get(k).and_then(Value::as_str).filter(|s| !s.is_empty()).map(str::to_string);
        match kind {
            "text_delta" => {
                if let Some(t) = s("text") {
                    out.push_back(ChatEvent::TextDelta(t));
                }
            }
            "thinking_delta" => {
                if let Some(t) = s("thinking") {
                    out.push_back(ChatEvent::ReasoningDelta(t));
                }
            }
            "input_json_delta" => {
                if let (Some(part), Some(Block::Tool { id, json, .. })) = (s("partial_json"), self.blocks.get_mut(&index)) {
                    json.push_str(&part);
                    out.push_back(ChatEvent::ToolCallArgsDelta { id: id.clone(), delta: part });
                }
            }
            _ => {}
        }
    }

    fn finish(&mut self, out: &mut VecDeque<ChatEvent>) {
        for index in std::mem::take(&mut self.open_tools) {
            self.close_block(index, out);
        }
        if let Some(u) = self.usage.to_usage() {
            out.push_back(ChatEvent::Usage(u));
        }
        out.push_back(ChatEvent::Finish { reason: normalize_stop(self.stop_reason.as_deref(), self.tool_calls > 0) });
    }

    fn stream_error(v: &Value) -> LlmError {
        let kind = v.pointer("/error/type").and_then(Value::as_str).unwrap_or("error");
        let msg = http::extract_error_message(&v.to_string());
        let class = if kind == "rate_limit_error" { ErrorClass::RateLimitError } else { ErrorClass::ProviderError };
        LlmError::new(class, format!("Anthropic stream error ({kind}): {msg}"))
    }
}

impl EventParser for AnthropicParser {
    fn on_sse(&mut self, event: &str, data: &str, out: &mut VecDeque<ChatEvent>) -> Result<bool, LlmError> {
        let v: Value = match serde_json::from_str(data.trim()) {
            Ok(v) => v,
            Err(e) => {
                if event == "error" {
                    return Err(LlmError::provider(format!("Anthropic stream error: {}", data.trim())));
                }
                tracing::warn!("skipping malformed Anthropic event: {e}");
                return Ok(false);
            }
        };
        let kind = v.get("type").and_then(Value::as_str).unwrap_or(event);
        let index = v.get("index").and_then(Value::as_u64).unwrap_or(0);
        match kind {
            "message_start" => {
                if let Some(u) = v.pointer("/message/usage") {
                    self.usage.merge(u);
                }
            }
            "content_block_start" => {
                if let Some(b) = v.get("content_block") {
                    self.start_block(index, b, out);
                }
            }
            "content_block_delta" => {
                if let Some(d) = v.get("delta") {
                    self.delta(index, d, out);
                }
            }
            "content_block_stop" => self.close_block(index, out),
            "message_delta" => {
                if let Some(r) = v.pointer("/delta/stop_reason").and_then(Value::as_str) {
                    self.stop_reason = Some(r.to_string());
                }
                if let Some(u) = v.get("usage") {
                    self.usage.merge(u);
                }
            }
            "message_stop" => {
                self.finish(out);
                return Ok(true);
            }
            "error" => return Err(Self::stream_error(&v)),
            _ => {}
        }
        Ok(false)
    }

    fn on_json(&mut self, body: Value, out: &mut VecDeque<ChatEvent>) -> Result<(), LlmError> {
        if body.get("type").and_then(Value::as_str) == Some("error") || body.get("error").is_some() {
            return Err(Self::stream_error(&body));
        }
        let Some(content) = body.get("content").and_then(Value::as_array) else {
            return Err(LlmError::provider("Anthropic returned an unexpected JSON response (no content)"));
        };
        for (i, block) in content.iter().enumerate() {
            let index = i as u64;
            self.start_block(index, block, out);
            if let Some(Block::Tool { id, initial, .. }) = self.blocks.get(&index) {
                if initial.is_object() {
                    out.push_back(ChatEvent::ToolCallArgsDelta { id: id.clone(), delta: initial.to_string() });
                }
            }
            self.close_block(index, out);
        }
        self.stop_reason = body.get("stop_reason").and_then(Value::as_str).map(str::to_string);
        if let Some(u) = body.get("usage") {
            self.usage.merge(u);
        }
        self.finish(out);
        Ok(())
    }

    fn on_eof(&mut self, out: &mut VecDeque<ChatEvent>) -> Result<(), LlmError> {
        if self.stop_reason.is_some() {
            self.finish(out);
            return Ok(());
        }
        Err(LlmError::provider("stream ended unexpectedly (Anthropic): no message_stop received"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn body_merges_roles_and_lifts_system() {
        let req = ChatRequest {
            model: "claude-x".into(),
            messages: vec![
                ChatMessage::system("a"),
                ChatMessage::system("b"),
                ChatMessage::user("q"),
                ChatMessage::Assistant {
                    text: "calling".into(),
                    tool_calls: vec![
                        ToolCall { id: "t1".into(), name: "f".into(), arguments: json!({"x": 1}) },
                        ToolCall { id: "t2".into(), name: "g".into(), arguments: json!("not json") },
                    ],
                },
                ChatMessage::tool("t1", "r1"),
                ChatMessage::tool("t2", "r2"),
                ChatMessage::user("more"),
            ],
            ..Default::default()
        };
        let b = request_body(&req);
        assert_eq!(b["system"], "a\n\nb");
        assert_eq!(b["max_tokens"], DEFAULT_MAX_TOKENS);
        let msgs = b["messages"].as_array().unwrap();
        assert_eq!(msgs.len(), 3);
        assert_eq!(msgs[1]["content"].as_array().unwrap().len(), 3);
        assert_eq!(msgs[1]["content"][2]["input"], json!({}));
        let user = msgs[2]["content"].as_array().unwrap();
        assert_eq!(user.len(), 3);
        assert_eq!(user[0]["type"], "tool_result");
        assert_eq!(user[0]["tool_use_id"], "t1");
        assert_eq!(user[2]["text"], "more");
        assert!(b.get("tools").is_none());
    }

    #[test]
    fn error_event_mid_stream() {
        let mut p = AnthropicParser::default();
        let mut out = VecDeque::new();
        let e = p.on_sse("error", r#"{"type":"error","error":{"type":"rate_limit_error","message":"slow down"}}"#, &mut out).unwrap_err();
        assert_eq!(e.class, ErrorClass::RateLimitError);
        assert!(e.message.contains("slow down"));
        let e = p.on_sse("error", r#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#, &mut out).unwrap_err();
        assert_eq!(e.class, ErrorClass::ProviderError);
        assert!(p.on_eof(&mut out).is_err(), "EOF without stop is an error");
    }

    #[test]
    fn usage_includes_cache() {
        let mut u = RawUsage::default();
        u.merge(&json!({"input_tokens": 5, "cache_read_input_tokens": 10, "cache_creation_input_tokens": 2, "output_tokens": 1}));
        u.merge(&json!({"output_tokens": 7}));
        assert_eq!(u.to_usage(), Some(Usage { input_tokens: 17, output_tokens: 7, cached_input_tokens: 10, reasoning_tokens: 0 }));
    }
}
