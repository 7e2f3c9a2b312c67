//! C1/C2 chat completions (the OpenAI / OpenRouter Chat Completions shape the SDK's
//! `gumloop.spec.ChatRequest`, `ChatResult` and `ChatStreamChunk` model) and M2 model
//! routing (`ModelRouteRequest` / `ModelRouteResponse` of the SDK).

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::ToSchema;

use crate::error::ErrorCode;
use crate::request::RequestBody;

/// Author of a chat message. `developer` is read as `system`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ChatRole {
    System,
    Developer,
    User,
    Assistant,
    Tool,
}

/// The function of a tool call.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ChatToolCallFunction {
    pub name: String,
    /// The arguments as JSON text (as the model produced them).
    pub arguments: String,
}

/// A complete tool call (an assistant message's `tool_calls[]`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ChatToolCall {
    pub id: String,
    /// Always `function`.
    #[serde(rename = "type", default = "function_type")]
    pub kind: String,
    pub function: ChatToolCallFunction,
}

fn function_type() -> String {
    "function".into()
}

/// One message of `messages`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ChatCompletionMessage {
    pub role: ChatRole,
    /// A string, or an array of content parts of which only `{"type": "text", "text": …}`
    /// is supported (other part types answer `400` naming the part). May be null on an
    /// assistant message that has `tool_calls`.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub content: Option<Value>,
    /// Accepted and not used.
    #[serde(default)]
    pub name: Option<String>,
    /// Assistant messages: the tool calls the model made.
    #[serde(default)]
    pub tool_calls: Option<Vec<ChatToolCall>>,
    /// Tool messages: the call this result answers.
    #[serde(default)]
    pub tool_call_id: Option<String>,
}

/// A function offered to the model.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ChatFunctionDefinition {
    pub name: String,
    #[serde(default)]
    pub description: Option<String>,
    /// JSON Schema of the arguments object (default: an object without properties).
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub parameters: Option<Value>,
    /// Accepted and not enforced.
    #[serde(default)]
    pub strict: Option<bool>,
}

/// One entry of `tools`: `{"type": "function", "function": {…}}`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ChatFunctionTool {
    /// Must be `function`.
    #[serde(rename = "type")]
    pub kind: String,
    pub function: ChatFunctionDefinition,
}

/// C1/C2 body: OpenAI / OpenRouter Chat Completions. Fields Openloop cannot honour answer
/// `400 invalid_request` naming them (`n` > 1, `stop`, `logprobs`, `response_format`
/// other than `text`, `modalities` other than `["text"]`, `tool_choice` other than
/// `auto`/`none`); sampling hints it cannot pass on (`top_p`, `seed`, penalties,
/// `logit_bias`, …) and routing hints (`provider`, `plugins`, `user`, `metadata`,
/// `session_id`, `trace`) are accepted and ignored, like any unknown field.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
pub struct ChatCompletionRequest {
    /// A model `GET /models` lists (`provider/model`, a bare name that routes to one, or
    /// `auto`). Absent: the first of `models`, else `auto`.
    #[serde(default)]
    pub model: Option<String>,
    /// OpenRouter fallback list: only its first entry is used, and only without `model`.
    #[serde(default)]
    pub models: Option<Vec<String>>,
    /// At least one message.
    pub messages: Vec<ChatCompletionMessage>,
    #[serde(default)]
    pub tools: Option<Vec<ChatFunctionTool>>,
    /// `"auto"` (default) or `"none"` (the tools are not offered).
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub tool_choice: Option<Value>,
    /// 0–2.
    #[serde(default)]
    pub temperature: Option<f64>,
    #[serde(default)]
    pub max_tokens: Option<u32>,
    /// Alias of `max_tokens` (the smaller wins when both are sent).
    #[serde(default)]
    pub max_completion_tokens: Option<u32>,
    /// `{"effort": "low" | "medium" | "high"}`, passed to OpenAI-compatible providers.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub reasoning: Option<Value>,
    /// Alias of `reasoning.effort`.
    #[serde(default)]
    pub reasoning_effort: Option<String>,
    /// `true`: answer Server-Sent Events (C2).
    #[serde(default)]
    pub stream: Option<bool>,
    /// Accepted; the last chunk of a stream always carries `usage`.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub stream_options: Option<Value>,
    /// Only `{"type": "text"}`.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub response_format: Option<Value>,
    /// Only `["text"]`.
    #[serde(default)]
    pub modalities: Option<Vec<String>>,
    /// Only `1`.
    #[serde(default)]
    pub n: Option<u32>,
    /// Not supported (`400`) unless null or empty.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub stop: Option<Value>,
    /// Not supported (`400`) when `true`.
    #[serde(default)]
    pub logprobs: Option<bool>,
}

impl RequestBody for ChatCompletionRequest {}

/// The assistant's answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ChatAssistantMessage {
    /// Always `assistant`.
    pub role: String,
    /// The text (null when the model only called tools).
    pub content: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reasoning: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_calls: Option<Vec<ChatToolCall>>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ChatChoice {
    pub index: u32,
    pub message: ChatAssistantMessage,
    /// `stop`, `length`, `tool_calls`, `content_filter` or `error`.
    pub finish_reason: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ChatPromptTokensDetails {
    pub cached_tokens: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ChatCompletionTokensDetails {
    pub reasoning_tokens: u64,
}

/// Token usage of the call, and its price in Openloop credits (`cost`: the amount the
/// credit ledger records; see `OPENLOOP_CREDITS_PER_1K_TOKENS`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ChatUsage {
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    pub total_tokens: u64,
    pub prompt_tokens_details: ChatPromptTokensDetails,
    pub completion_tokens_details: ChatCompletionTokensDetails,
    pub cost: f64,
}

/// C1 response (`object: "chat.completion"`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ChatCompletion {
    /// `chatcmpl-…`; the credit ledger's `correlation_id`.
    pub id: String,
    pub object: String,
    /// Unix seconds.
    pub created: i64,
    /// The model that answered (`auto` resolved).
    pub model: String,
    /// Always null.
    pub system_fingerprint: Option<String>,
    pub choices: Vec<ChatChoice>,
    pub usage: ChatUsage,
}

/// The function part of a streamed tool-call delta.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, ToSchema)]
pub struct ChatStreamToolCallFunction {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arguments: Option<String>,
}

/// A streamed tool-call delta: the first for a call has `id`, `type` and `function.name`;
/// later ones append to `function.arguments` of the call at `index`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ChatStreamToolCall {
    pub index: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    pub function: ChatStreamToolCallFunction,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, ToSchema)]
pub struct ChatStreamDelta {
    /// `assistant`, on the first chunk only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reasoning: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_calls: Option<Vec<ChatStreamToolCall>>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ChatStreamChoice {
    pub index: u32,
    pub delta: ChatStreamDelta,
    pub finish_reason: Option<String>,
}

/// A failure after the stream started: the chunk carrying it has `finish_reason: "error"`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ChatStreamError {
    /// The HTTP status the failure would have had (502 provider error, 504 timeout, 429).
    pub code: u16,
    pub message: String,
}

/// One C2 event's `data` (`object: "chat.completion.chunk"`). Chunks come in this order:
/// the role, text / tool-call deltas, one with `finish_reason`, then one with `choices: []`
/// and `usage`; then `data: [DONE]`. A provider failure mid-stream is a chunk with
/// `error` and `finish_reason: "error"`, then `[DONE]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ChatStreamChunk {
    /// The same for every chunk of a completion.
    pub id: String,
    pub object: String,
    pub created: i64,
    pub model: String,
    pub choices: Vec<ChatStreamChoice>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<ChatUsage>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<ChatStreamError>,
}

/// M2 body (closed: unknown fields answer `400 invalid_request` naming them).
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ModelRouteRequest {
    /// The task: a string or an array of content items. `input` or `message` is required.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub input: Option<Value>,
    /// Alias of `input`.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub message: Option<Value>,
    /// Candidate models (default: the target of `auto`).
    #[serde(default)]
    pub models: Option<Vec<String>>,
    /// Earlier turns (accepted; not used by Openloop's rule).
    #[serde(default)]
    pub history: Option<Vec<Map<String, Value>>>,
    /// The agent the task is for (`name`, `description`, `system_prompt`; accepted, not used).
    #[serde(default)]
    pub agent: Option<Map<String, Value>>,
    /// A team of the caller.
    #[serde(default)]
    pub team_id: Option<String>,
}

impl RequestBody for ModelRouteRequest {
    fn error_code(_param: &str) -> ErrorCode {
        ErrorCode::InvalidRequest
    }
}

/// One model that was considered.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ModelRouteCandidate {
    /// As named in the request (`auto` when none was).
    pub requested_model: String,
    /// The catalogue name it resolves to.
    pub model: String,
    pub lanes: Vec<String>,
    pub lane_basis: Option<String>,
    /// `available` (its provider is configured), `unavailable` (listed, provider not
    /// configured) or `unknown` (not in the catalogue).
    pub status: String,
}

/// The decision.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ModelRouteDecision {
    /// The chosen model.
    pub model: String,
    /// Always `default` (Openloop has one lane).
    pub lane: String,
    pub verdict_lane: String,
    pub adjustment: Option<String>,
    pub reasoning_effort: Option<String>,
    /// The other available candidates, in request order.
    pub fallback_models: Vec<String>,
    /// `true` when no candidate is available: `model` is then the first candidate, which
    /// this server cannot run.
    pub fail_closed: bool,
}

/// M2 response.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ModelRouteResponse {
    /// `openloop`.
    pub router: String,
    pub route: ModelRouteDecision,
    pub candidates: Vec<ModelRouteCandidate>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn route_request_is_closed() {
        let e = crate::request::parse::<ModelRouteRequest>(json!({"input": "x", "bogus": 1})).unwrap_err();
        assert_eq!((e.status, e.param.as_deref()), (400, Some("bogus")));
        assert!(crate::request::parse::<ModelRouteRequest>(json!({"message": "x", "models": ["gpt-4o-mini"], "team_id": null})).is_ok());
    }

    #[test]
    fn chat_request_names_the_bad_field() {
        let e = crate::request::parse::<ChatCompletionRequest>(json!({"messages": [{"role": "robot", "content": "x"}]})).unwrap_err();
        assert_eq!(e.param.as_deref(), Some("messages[0].role"));
        let e = crate::request::parse::<ChatCompletionRequest>(json!({"model": "m"})).unwrap_err();
        assert_eq!(e.param.as_deref(), Some("messages"));
        let ok = crate::request::parse::<ChatCompletionRequest>(json!({"messages": [], "top_p": 0.5, "tool_choice": "auto"})).unwrap();
        assert_eq!(ok.tool_choice, Some(json!("auto")));
    }

    #[test]
    fn chunk_serialization_matches_the_sdk_shape() {
        let c = ChatStreamChunk {
            id: "chatcmpl-1".into(),
            object: "chat.completion.chunk".into(),
            created: 1,
            model: "m".into(),
            choices: vec![ChatStreamChoice { index: 0, delta: ChatStreamDelta { content: Some("hi".into()), ..Default::default() }, finish_reason: None }],
            usage: None,
            error: None,
        };
        assert_eq!(
            serde_json::to_value(&c).unwrap(),
            json!({"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1, "model": "m",
                   "choices": [{"index": 0, "delta": {"content": "hi"}, "finish_reason": null}]})
        );
    }
}
