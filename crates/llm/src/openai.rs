//! OpenAI Chat Completions (and compatible servers: vLLM, llama.cpp, Ollama,
//! LM Studio, …).
//!
//! Parsing is lenient: tool-call deltas without `index` (matched by `id`, else
//! the last call), empty / `null` / missing `finish_reason`, missing usage,
//! missing `[DONE]` (a clean end of body finishes the stream),
//! `reasoning_content` / `reasoning` delta fields, and a plain JSON completion
//! returned for a streaming request.

use crate::error::LlmError;
use crate::http::{self, EventParser, HttpOptions, Remote, RequestFactory};
use crate::types::{parse_tool_arguments, ChatEvent, ChatMessage, ChatRequest, ChatStream, ToolCall, Usage};
use crate::ChatModel;
use async_trait::async_trait;
use bytes::Bytes;
use serde_json::{json, Map, Value};
use std::collections::VecDeque;
use std::fmt;
use std::sync::Arc;

/// Base URL used when none is configured.
pub const DEFAULT_BASE_URL: &str = "https://api.openai.com/v1";

/// Client for an OpenAI-compatible Chat Completions endpoint.
#[derive(Clone)]
pub struct OpenAiClient {
    http: reqwest::Client,
    base_url: String,
    remote: Remote,
}

impl fmt::Debug for OpenAiClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OpenAiClient")
            .field("label", &self.remote.label)
            .field("base_url", &self.base_url)
            .field("has_api_key", &self.remote.secret.is_some())
            .finish()
    }
}

impl OpenAiClient {
    /// `base_url` includes the version segment, e.g. `https://api.openai.com/v1`
    /// or `http://127.0.0.1:8000/v1`. An empty / absent key sends no
    /// `Authorization` header.
    pub fn new(base_url: &str, api_key: Option<String>, opts: HttpOptions) -> Self {
        Self::with_client(http::build_client(), "OpenAI", base_url, api_key, opts)
    }

    /// Like [`OpenAiClient::new`] with a shared `reqwest` client and the label
    /// used in error messages (e.g. `"Ollama"`).
    pub fn with_client(http: reqwest::Client, label: &'static str, base_url: &str, api_key: Option<String>, opts: HttpOptions) -> Self {
        OpenAiClient {
            http,
            base_url: base_url.trim().trim_end_matches('/').to_string(),
            remote: Remote { label, secret: api_key.filter(|k| !k.trim().is_empty()), opts },
        }
    }

    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    fn authed(&self, rb: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        match &self.remote.secret {
            Some(key) => rb.bearer_auth(key),
            None => rb,
        }
    }

    /// Model ids reported by `GET {base_url}/models` (`data[].id`; Ollama's
    /// native `models[].name` shape is accepted too).
    pub async fn list_models(&self) -> Result<Vec<String>, LlmError> {
        let url = format!("{}/models", self.base_url);
        let this = self.clone();
        let factory: RequestFactory = Arc::new(move || this.authed(this.http.get(&url)));
        let body = http::get_json(factory, &self.remote).await?;
        let items = body
            .get("data")
            .or_else(|| body.get("models"))
            .and_then(Value::as_array)
            .ok_or_else(|| LlmError::provider(format!("{} returned an unexpected model list", self.remote.label)))?;
        let mut out: Vec<String> = Vec::new();
        for item in items {
            let id = item.get("id").or_else(|| item.get("name")).or_else(|| item.get("model")).and_then(Value::as_str);
            if let Some(id) = id {
                if !out.iter().any(|x| x == id) {
                    out.push(id.to_string());
                }
            }
        }
        Ok(out)
    }
}

#[async_trait]
impl ChatModel for OpenAiClient {
    async fn stream(&self, req: ChatRequest) -> Result<ChatStream, LlmError> {
        let body = Bytes::from(request_body(&req).to_string());
        let url = format!("{}/chat/completions", self.base_url);
        let this = self.clone();
        let factory: RequestFactory =
            Arc::new(move || this.authed(this.http.post(&url)).header(reqwest::header::CONTENT_TYPE, "application/json").body(body.clone()));
        http::start_stream::<OpenAiParser>(factory, self.remote.clone()).await
    }
}

/// Tool-call arguments as the string OpenAI expects (a raw-text fallback is
/// sent back verbatim).
fn arguments_string(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Models that only accept `max_completion_tokens`.
fn uses_max_completion_tokens(model: &str) -> bool {
    let m = model.to_ascii_lowercase();
    ["o1", "o3", "o4", "gpt-5"].iter().any(|p| m.starts_with(p))
}

/// The Chat Completions request body for `req` (streaming, usage included).
pub fn request_body(req: &ChatRequest) -> Value {
    let messages: Vec<Value> = req
        .messages
        .iter()
        .map(|m| match m {
            ChatMessage::System { text } => json!({"role": "system", "content": text}),
            ChatMessage::User { text } => json!({"role": "user", "content": text}),
            ChatMessage::Assistant { text, tool_calls } => {
                let mut o = Map::new();
                o.insert("role".into(), json!("assistant"));
                if text.is_empty() && !tool_calls.is_empty() {
                    o.insert("content".into(), Value::Null);
                } else {
                    o.insert("content".into(), json!(text));
                }
                if !tool_calls.is_empty() {
                    let calls: Vec<Value> = tool_calls
                        .iter()
                        .map(|c| {
                            json!({
                                "id": c.id,
                                "type": "function",
                                "function": {"name": c.name, "arguments": arguments_string(&c.arguments)},
                            })
                        })
                        .collect();
                    o.insert("tool_calls".into(), Value::Array(calls));
                }
                Value::Object(o)
            }
            ChatMessage::Tool { tool_call_id, content } => json!({"role": "tool", "tool_call_id": tool_call_id, "content": content}),
        })
        .collect();
    let mut body = Map::new();
    body.insert("model".into(), json!(req.model));
    body.insert("messages".into(), Value::Array(messages));
    body.insert("stream".into(), json!(true));
    body.insert("stream_options".into(), json!({"include_usage": true}));
    if !req.tools.is_empty() {
        let tools: Vec<Value> = req
            .tools
            .iter()
            .map(|t| {
                json!({
                    "type": "function",
                    "function": {"name": t.name, "description": t.description, "parameters": t.parameters},
                })
            })
            .collect();
        body.insert("tools".into(), Value::Array(tools));
    }
    if let Some(t) = req.temperature {
        body.insert("temperature".into(), json!(t));
    }
    if let Some(n) = req.max_tokens {
        let key = if uses_max_completion_tokens(&req.model) { "max_completion_tokens" } else { "max_tokens" };
        body.insert(key.into(), json!(n));
    }
    if let Some(e) = &req.reasoning_effort {
        body.insert("reasoning_effort".into(), json!(e));
    }
    Value::Object(body)
}

/// Parses an OpenAI `usage` object (also accepts `input_tokens`/`output_tokens`).
pub(crate) fn parse_usage(u: &Value) -> Option<Usage> {
    let n = |ptrs: &[&str]| ptrs.iter().find_map(|p| u.pointer(p).and_then(Value::as_u64));
    let input = n(&["/prompt_tokens", "/input_tokens"]);
    let output = n(&["/completion_tokens", "/output_tokens"]);
    if input.is_none() && output.is_none() {
        return None;
    }
    Some(Usage {
        input_tokens: input.unwrap_or(0),
        output_tokens: output.unwrap_or(0),
        cached_input_tokens: n(&["/prompt_tokens_details/cached_tokens", "/input_tokens_details/cached_tokens"]).unwrap_or(0),
        reasoning_tokens: n(&["/completion_tokens_details/reasoning_tokens", "/output_tokens_details/reasoning_tokens"]).unwrap_or(0),
    })
}

fn normalize_finish(reason: Option<&str>, has_tool_calls: bool) -> String {
    match reason {
        Some("stop") | Some("eos") | None if has_tool_calls => "tool_calls".into(),
        Some("tool_calls") | Some("function_call") => "tool_calls".into(),
        Some("length") | Some("max_tokens") => "length".into(),
        Some("eos") | None => "stop".into(),
        Some(other) => other.to_string(),
    }
}

struct PartialCall {
    index: Option<u64>,
    id: String,
    id_from_server: bool,
    name: String,
    args: String,
    started: bool,
}

#[derive(Default)]
pub(crate) struct OpenAiParser {
    calls: Vec<PartialCall>,
    finish_reason: Option<String>,
    usage: Option<Usage>,
    saw_data: bool,
}

fn non_empty_str(v: Option<&Value>) -> Option<&str> {
    v.and_then(Value::as_str).filter(|s| !s.is_empty())
}

impl OpenAiParser {
    fn tool_delta(&mut self, tc: &Value, out: &mut VecDeque<ChatEvent>) {
        let index = tc.get("index").and_then(Value::as_u64);
        let id = non_empty_str(tc.get("id"));
        let func = tc.get("function");
        let name = non_empty_str(func.and_then(|f| f.get("name")));
        let args = match func.and_then(|f| f.get("arguments")) {
            Some(Value::String(s)) => s.clone(),
            Some(Value::Null) | None => String::new(),
            Some(other) => other.to_string(),
        };
        let found = match (index, id) {
            (Some(i), _) => self.calls.iter().position(|c| {
                c.index == Some(i)
                    && match id {
                        Some(id) => !c.id_from_server || c.id == id,
                        None => true,
                    }
            }),
            (None, Some(id)) => self.calls.iter().position(|c| c.id == id),
            (None, None) => self.calls.len().checked_sub(1),
        };
        let pos = match found {
            Some(p) => p,
            None => {
                let n = self.calls.len();
                self.calls.push(PartialCall {
                    index,
                    id: id.map(str::to_string).unwrap_or_else(|| format!("call_{n}")),
                    id_from_server: id.is_some(),
                    name: String::new(),
                    args: String::new(),
                    started: false,
                });
                n
            }
        };
        let call = &mut self.calls[pos];
        if let Some(id) = id {
            if !call.id_from_server && !call.started {
                call.id = id.to_string();
                call.id_from_server = true;
            }
        }
        if call.name.is_empty() {
            if let Some(name) = name {
                call.name = name.to_string();
            }
        }
        call.args.push_str(&args);
        if !call.started {
            if !call.name.is_empty() {
                call.started = true;
                out.push_back(ChatEvent::ToolCallStart { id: call.id.clone(), name: call.name.clone() });
                if !call.args.is_empty() {
                    out.push_back(ChatEvent::ToolCallArgsDelta { id: call.id.clone(), delta: call.args.clone() });
                }
            }
        } else if !args.is_empty() {
            out.push_back(ChatEvent::ToolCallArgsDelta { id: call.id.clone(), delta: args });
        }
    }

    /// Handles a chunk (or a whole completion, whose `message` is used like a delta).
    fn chunk(&mut self, v: &Value, out: &mut VecDeque<ChatEvent>) -> Result<(), LlmError> {
        if let Some(err) = v.get("error").filter(|e| !e.is_null()) {
            let msg = http::extract_error_message(&json!({ "error": err }).to_string());
            return Err(LlmError::provider(format!("provider stream error: {msg}")));
        }
        if let Some(u) = v.get("usage").and_then(parse_usage) {
            self.usage = Some(u);
        }
        let Some(choices) = v.get("choices").and_then(Value::as_array) else {
            return Ok(());
        };
        for choice in choices {
            if choice.get("index").and_then(Value::as_u64).unwrap_or(0) != 0 {
                continue;
            }
            let delta = choice.get("delta").or_else(|| choice.get("message"));
            if let Some(d) = delta {
                for key in ["reasoning_content", "reasoning"] {
                    if let Some(r) = non_empty_str(d.get(key)) {
                        out.push_back(ChatEvent::ReasoningDelta(r.to_string()));
                        break;
                    }
                }
                if let Some(t) = non_empty_str(d.get("content")) {
                    out.push_back(ChatEvent::TextDelta(t.to_string()));
                }
                if let Some(calls) = d.get("tool_calls").and_then(Value::as_array) {
                    for tc in calls {
                        self.tool_delta(tc, out);
                    }
                }
            }
            if let Some(r) = non_empty_str(choice.get("finish_reason")) {
                self.finish_reason = Some(r.to_string());
            }
        }
        Ok(())
    }

    fn finish(&mut self, out: &mut VecDeque<ChatEvent>) {
        let has_calls = !self.calls.is_empty();
        for call in self.calls.drain(..) {
            if !call.started {
                out.push_back(ChatEvent::ToolCallStart { id: call.id.clone(), name: call.name.clone() });
            }
            out.push_back(ChatEvent::ToolCallDone(ToolCall { arguments: parse_tool_arguments(&call.args), id: call.id, name: call.name }));
        }
        if let Some(u) = self.usage.take() {
            out.push_back(ChatEvent::Usage(u));
        }
        out.push_back(ChatEvent::Finish { reason: normalize_finish(self.finish_reason.as_deref(), has_calls) });
    }
}

impl EventParser for OpenAiParser {
    fn on_sse(&mut self, event: &str, data: &str, out: &mut VecDeque<ChatEvent>) -> Result<bool, LlmError> {
        let data = data.trim();
        if data.is_empty() {
            return Ok(false);
        }
        if data == "[DONE]" {
            self.finish(out);
            return Ok(true);
        }
        let v: Value = match serde_json::from_str(data) {
            Ok(v) => v,
            Err(_) if event == "error" => return Err(LlmError::provider(format!("provider stream error: {data}"))),
            Err(e) => {
                tracing::warn!("skipping malformed stream chunk: {e}");
                return Ok(false);
            }
        };
        self.saw_data = true;
        self.chunk(&v, out)?;
        Ok(false)
    }

    fn on_json(&mut self, body: Value, out: &mut VecDeque<ChatEvent>) -> Result<(), LlmError> {
        let mut body = body;
        // A whole completion: give tool calls positional indexes so that the
        // delta logic treats them as distinct calls.
        if let Some(choices) = body.get_mut("choices").and_then(Value::as_array_mut) {
            for choice in choices {
                if let Some(calls) = choice.pointer_mut("/message/tool_calls").and_then(Value::as_array_mut) {
                    for (i, c) in calls.iter_mut().enumerate() {
                        if let Some(o) = c.as_object_mut() {
                            o.entry("index").or_insert(json!(i));
                        }
                    }
                }
            }
        } else if body.get("error").is_none() {
            return Err(LlmError::provider("provider returned an unexpected JSON response (no choices)"));
        }
        self.chunk(&body, out)?;
        self.finish(out);
        Ok(())
    }

    fn on_eof(&mut self, out: &mut VecDeque<ChatEvent>) -> Result<(), LlmError> {
        if !self.saw_data {
            return Err(LlmError::provider("stream ended unexpectedly: the provider sent no data"));
        }
        self.finish(out);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::ToolSpec;

    fn run(chunks: &[&str]) -> Vec<ChatEvent> {
        let mut p = OpenAiParser::default();
        let mut out = VecDeque::new();
        for c in chunks {
            if p.on_sse("message", c, &mut out).unwrap() {
                return out.into();
            }
        }
        p.on_eof(&mut out).unwrap();
        out.into()
    }

    #[test]
    fn body_shape() {
        let req = ChatRequest {
            model: "o3-mini".into(),
            messages: vec![
                ChatMessage::system("sys"),
                ChatMessage::user("hi"),
                ChatMessage::Assistant { text: String::new(), tool_calls: vec![ToolCall { id: "c1".into(), name: "f".into(), arguments: json!({"a": 1}) }] },
                ChatMessage::tool("c1", "res"),
            ],
            tools: vec![ToolSpec { name: "f".into(), description: "d".into(), parameters: json!({"type": "object"}) }],
            temperature: Some(0.5),
            max_tokens: Some(10),
            reasoning_effort: Some("low".into()),
        };
        let b = request_body(&req);
        assert_eq!(b["stream_options"]["include_usage"], true);
        assert_eq!(b["max_completion_tokens"], 10);
        assert_eq!(b["messages"][2]["content"], Value::Null);
        assert_eq!(b["messages"][2]["tool_calls"][0]["function"]["arguments"], "{\"a\":1}");
        assert_eq!(b["messages"][3]["tool_call_id"], "c1");
        assert_eq!(b["tools"][0]["function"]["name"], "f");
        assert_eq!(b["reasoning_effort"], "low");
    }

    #[test]
    fn repeated_index_with_new_id_is_a_new_call() {
        let ev = run(&[
            r#"{"choices":[{"delta":{"tool_calls":[{"index":0,"id":"a","function":{"name":"f","arguments":"{}"}}]}}]}"#,
            r#"{"choices":[{"delta":{"tool_calls":[{"index":0,"id":"b","function":{"name":"g","arguments":"{\"x\":1}"}}]}}]}"#,
            r#"{"choices":[{"delta":{},"finish_reason":"tool_calls"}]}"#,
        ]);
        let done: Vec<_> = ev
            .iter()
            .filter_map(|e| match e {
                ChatEvent::ToolCallDone(c) => Some(c.clone()),
                _ => None,
            })
            .collect();
        assert_eq!(done.len(), 2);
        assert_eq!(done[1].arguments, json!({"x": 1}));
    }

    #[test]
    fn error_chunk_and_reasoning_field() {
        let mut p = OpenAiParser::default();
        let mut out = VecDeque::new();
        p.on_sse("message", r#"{"choices":[{"delta":{"reasoning":"hmm"}}]}"#, &mut out).unwrap();
        assert_eq!(out.pop_front(), Some(ChatEvent::ReasoningDelta("hmm".into())));
        let e = p.on_sse("message", r#"{"error":{"message":"model crashed"}}"#, &mut out).unwrap_err();
        assert!(e.message.contains("model crashed"));
    }

    #[test]
    fn usage_in_every_chunk_reported_once() {
        let ev = run(&[
            r#"{"choices":[{"delta":{"content":"a"}}],"usage":{"prompt_tokens":1,"completion_tokens":1}}"#,
            r#"{"choices":[{"delta":{"content":"b"}}],"usage":{"prompt_tokens":1,"completion_tokens":2}}"#,
        ]);
        let usages: Vec<_> = ev.iter().filter(|e| matches!(e, ChatEvent::Usage(_))).collect();
        assert_eq!(usages.len(), 1);
        assert_eq!(ev.last(), Some(&ChatEvent::Finish { reason: "stop".into() }));
    }
}
