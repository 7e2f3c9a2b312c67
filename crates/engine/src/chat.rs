//! C1/C2 chat completions and M2 model routing: the inference passthrough. A request in
//! the OpenAI / OpenRouter shape becomes one `llm::ChatRequest` against the provider the
//! model routes to; its usage is charged to the credit ledger (category
//! `CHAT_COMPLETION`, type `model_call`) like every other model call.

use std::sync::Arc;

use futures::stream::BoxStream;
use futures::StreamExt;
use llm::{ChatEvent, ChatMessage, ChatModel, ChatStream, ErrorClass, LlmError, ToolCall, ToolSpec, Usage};
use serde_json::{json, Value};
use wire::chat::*;
use wire::{ApiError, ErrorCode};

use crate::{Caller, Engine};

/// The ledger category of chat completions (outside any agent run or flow).
pub const LEDGER_CATEGORY: &str = "CHAT_COMPLETION";
const MAX_ROUTE_MODELS: usize = 50;
const EFFORTS: [&str; 4] = ["minimal", "low", "medium", "high"];

/// A validated completion request, bound to its provider and its payer.
pub struct ChatCall {
    pub id: String,
    /// Unix seconds.
    pub created: i64,
    /// The catalogue name that answers (`auto` resolved).
    pub model_name: String,
    /// `true`: C2.
    pub stream: bool,
    native: String,
    model: Arc<dyn ChatModel>,
    request: llm::ChatRequest,
    organization_id: String,
    user_id: String,
    team_id: Option<String>,
}

fn bad(param: &str, message: impl Into<String>) -> ApiError {
    ApiError::invalid_request(param, message)
}

/// The text of a message's `content`: a string, or text parts concatenated.
fn content_text(content: Option<&Value>, at: &str, required: bool) -> Result<String, ApiError> {
    match content {
        None | Some(Value::Null) if !required => Ok(String::new()),
        None | Some(Value::Null) => Err(bad(&format!("{at}.content"), format!("{at}.content is required."))),
        Some(Value::String(s)) => Ok(s.clone()),
        Some(Value::Array(parts)) => {
            let mut out = String::new();
            for (j, p) in parts.iter().enumerate() {
                let here = format!("{at}.content[{j}]");
                match p {
                    Value::String(s) => out.push_str(s),
                    Value::Object(o) => match (o.get("type").and_then(Value::as_str), o.get("text").and_then(Value::as_str)) {
                        (Some("text"), Some(t)) => out.push_str(t),
                        (Some("text"), None) => return Err(bad(&format!("{here}.text"), format!("{here}.text must be a string."))),
                        (Some(other), _) => {
                            return Err(bad(
                                &format!("{here}.type"),
                                format!("Content parts of type {other:?} are not supported by Openloop; send text parts only."),
                            ))
                        }
                        (None, _) => return Err(bad(&format!("{here}.type"), format!("{here}.type is required."))),
                    },
                    _ => return Err(bad(&here, format!("{here} must be a content part object."))),
                }
            }
            Ok(out)
        }
        Some(_) => Err(bad(&format!("{at}.content"), format!("{at}.content must be a string or an array of content parts."))),
    }
}

fn messages(msgs: &[ChatCompletionMessage]) -> Result<Vec<ChatMessage>, ApiError> {
    if msgs.is_empty() {
        return Err(bad("messages", "messages must hold at least one message."));
    }
    let mut out = Vec::with_capacity(msgs.len());
    for (i, m) in msgs.iter().enumerate() {
        let at = format!("messages[{i}]");
        out.push(match m.role {
            ChatRole::System | ChatRole::Developer => ChatMessage::system(content_text(m.content.as_ref(), &at, true)?),
            ChatRole::User => ChatMessage::user(content_text(m.content.as_ref(), &at, true)?),
            ChatRole::Assistant => {
                let calls = m.tool_calls.as_deref().unwrap_or_default();
                let text = content_text(m.content.as_ref(), &at, calls.is_empty())?;
                let mut tool_calls = Vec::with_capacity(calls.len());
                for (j, c) in calls.iter().enumerate() {
                    if c.kind != "function" {
                        return Err(bad(&format!("{at}.tool_calls[{j}].type"), "Only function tool calls are supported."));
                    }
                    if c.id.trim().is_empty() {
                        return Err(bad(&format!("{at}.tool_calls[{j}].id"), "A tool call needs an id."));
                    }
                    tool_calls.push(ToolCall { id: c.id.clone(), name: c.function.name.clone(), arguments: llm::parse_tool_arguments(&c.function.arguments) });
                }
                ChatMessage::Assistant { text, tool_calls }
            }
            ChatRole::Tool => {
                let id = m.tool_call_id.as_deref().map(str::trim).filter(|s| !s.is_empty());
                let id = id.ok_or_else(|| bad(&format!("{at}.tool_call_id"), "A tool message needs the tool_call_id it answers."))?;
                ChatMessage::tool(id, content_text(m.content.as_ref(), &at, true)?)
            }
        });
    }
    Ok(out)
}

fn tools(req: &ChatCompletionRequest) -> Result<Vec<ToolSpec>, ApiError> {
    let offer = match &req.tool_choice {
        None | Some(Value::Null) => true,
        Some(Value::String(s)) if s == "auto" => true,
        Some(Value::String(s)) if s == "none" => false,
        Some(_) => {
            return Err(bad("tool_choice", "tool_choice must be \"auto\" or \"none\"; Openloop cannot force a tool call through every provider."));
        }
    };
    let mut out = Vec::new();
    for (i, t) in req.tools.iter().flatten().enumerate() {
        if t.kind != "function" {
            return Err(bad(&format!("tools[{i}].type"), "Only tools of type \"function\" are supported."));
        }
        let name = t.function.name.trim();
        if name.is_empty() {
            return Err(bad(&format!("tools[{i}].function.name"), "A tool needs a name."));
        }
        let parameters = match &t.function.parameters {
            None | Some(Value::Null) => json!({"type": "object", "properties": {}}),
            Some(p @ Value::Object(_)) => p.clone(),
            Some(_) => return Err(bad(&format!("tools[{i}].function.parameters"), "parameters must be a JSON Schema object.")),
        };
        out.push(ToolSpec { name: name.to_string(), description: t.function.description.clone().unwrap_or_default(), parameters });
    }
    Ok(if offer { out } else { Vec::new() })
}

/// Options Openloop cannot honour answer 400 naming them (instead of being dropped).
fn unsupported(req: &ChatCompletionRequest) -> Result<(), ApiError> {
    if req.n.is_some_and(|n| n != 1) {
        return Err(bad("n", "Openloop returns one choice; n must be 1."));
    }
    let stop_set = match &req.stop {
        None | Some(Value::Null) => false,
        Some(Value::String(s)) => !s.is_empty(),
        Some(Value::Array(a)) => !a.is_empty(),
        Some(_) => true,
    };
    if stop_set {
        return Err(bad("stop", "Stop sequences are not supported by Openloop."));
    }
    if req.logprobs == Some(true) {
        return Err(bad("logprobs", "logprobs are not supported by Openloop."));
    }
    match &req.response_format {
        None | Some(Value::Null) => {}
        Some(f) if f.get("type").and_then(Value::as_str) == Some("text") => {}
        Some(_) => {
            return Err(bad("response_format", "Only response_format {\"type\": \"text\"} is supported; describe the JSON you want in the messages instead."));
        }
    }
    if let Some(m) = &req.modalities {
        if let Some(i) = m.iter().position(|x| x != "text") {
            return Err(bad(&format!("modalities[{i}]"), "Only the text modality is supported."));
        }
    }
    if let Some(t) = req.temperature {
        if !(0.0..=2.0).contains(&t) {
            return Err(bad("temperature", "temperature must be between 0 and 2."));
        }
    }
    Ok(())
}

fn effort(req: &ChatCompletionRequest) -> Result<Option<String>, ApiError> {
    let (value, param) = match req.reasoning.as_ref().filter(|v| !v.is_null()) {
        Some(Value::Object(o)) => (o.get("effort").filter(|v| !v.is_null()).cloned(), "reasoning.effort"),
        Some(_) => return Err(bad("reasoning", "reasoning must be an object such as {\"effort\": \"low\"}.")),
        None => (req.reasoning_effort.clone().map(Value::String), "reasoning_effort"),
    };
    match value {
        None => Ok(None),
        Some(Value::String(e)) if EFFORTS.contains(&e.as_str()) => Ok(Some(e)),
        Some(_) => Err(bad(param, format!("{param} must be one of {}.", EFFORTS.join(", ")))),
    }
}

/// The API error of a failed model call.
pub fn llm_error(e: &LlmError, param: &str) -> ApiError {
    let code = match e.class {
        ErrorClass::ProviderNotConfigured => return ApiError::new(ErrorCode::ProviderNotConfigured, e.message.clone()).param(param),
        ErrorClass::ProviderError => ErrorCode::ProviderError,
        ErrorClass::RateLimitError => ErrorCode::ProviderRateLimited,
        ErrorClass::TimeoutError => ErrorCode::ProviderTimeout,
    };
    ApiError::new(code, e.to_string()).detail("error_class", e.class.as_str())
}

/// A failed provider call: counted like the agent loop's, then mapped.
fn provider_failed(model_name: &str, e: &LlmError) -> ApiError {
    metrics::counter!("openloop_provider_errors_total", "provider" => llm::provider_name(model_name), "class" => e.class.as_str()).increment(1);
    llm_error(e, "model")
}

fn chat_usage(u: &Usage, cost: f64) -> ChatUsage {
    ChatUsage {
        prompt_tokens: u.input_tokens,
        completion_tokens: u.output_tokens,
        total_tokens: u.input_tokens.saturating_add(u.output_tokens),
        prompt_tokens_details: ChatPromptTokensDetails { cached_tokens: u.cached_input_tokens },
        completion_tokens_details: ChatCompletionTokensDetails { reasoning_tokens: u.reasoning_tokens },
        cost: (cost * 10000.0).round() / 10000.0,
    }
}

/// OpenAI's argument text of a finished call: what the model streamed, else the parsed value.
fn arguments_text(raw: &str, parsed: &Value) -> String {
    if !raw.is_empty() {
        return raw.to_string();
    }
    match parsed {
        Value::String(s) => s.clone(),
        v => v.to_string(),
    }
}

impl Engine {
    /// Validates a C1/C2 body and binds it to the model's provider. Errors: `400
    /// invalid_request` naming the field, `400 invalid_model` (not in the catalogue),
    /// `400 provider_not_configured` (the model's provider has no credentials here).
    pub async fn prepare_chat(&self, caller: &Caller, req: ChatCompletionRequest) -> Result<ChatCall, ApiError> {
        unsupported(&req)?;
        let (requested, param) = match (&req.model, req.models.as_ref().and_then(|m| m.first())) {
            (Some(m), _) => (m.trim().to_string(), "model"),
            (None, Some(m)) => (m.trim().to_string(), "models[0]"),
            (None, None) => ("auto".to_string(), "model"),
        };
        if requested.is_empty() {
            return Err(bad(param, "The model name is empty; GET /models lists the accepted names."));
        }
        if requested != "auto" && !self.model_accepted(&requested).await {
            return Err(ApiError::new(
                ErrorCode::InvalidModel,
                format!("Model {requested:?} is not in this server's catalogue; GET /models lists the accepted names."),
            )
            .param(param));
        }
        let model_name = self.resolve_model_name(&requested);
        if model_name == "auto" {
            return Err(ApiError::new(
                ErrorCode::ProviderNotConfigured,
                "No model provider is configured, so \"auto\" has no model to run; see README \"Model providers\".",
            )
            .param(param));
        }
        let (model, native) = self.providers.resolve(&model_name).map_err(|e| match e.class {
            ErrorClass::ProviderNotConfigured => llm_error(&e, param),
            _ => ApiError::new(ErrorCode::InvalidModel, e.message.clone()).param(param),
        })?;
        let messages = messages(&req.messages)?;
        let tools = tools(&req)?;
        let max_tokens = match (req.max_tokens, req.max_completion_tokens) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        if max_tokens == Some(0) {
            let p = if req.max_tokens == Some(0) { "max_tokens" } else { "max_completion_tokens" };
            return Err(bad(p, format!("{p} must be at least 1.")));
        }
        let reasoning_effort = effort(&req)?;
        let request = llm::ChatRequest { model: native.clone(), messages, tools, temperature: req.temperature, max_tokens, reasoning_effort };
        let now = self.now();
        Ok(ChatCall {
            id: wire::ids::new_id("chatcmpl").replacen('_', "-", 1),
            created: now.div_euclid(1_000_000),
            model_name,
            stream: req.stream == Some(true),
            native,
            model,
            request,
            organization_id: caller.user.organization_id.clone(),
            user_id: caller.user.id.clone(),
            team_id: caller.scope_team().map(str::to_string),
        })
    }

    /// Charges a completion's tokens to the credit ledger; returns the credits.
    async fn charge_chat(&self, call: &ChatCallMeta, usage: &Usage) -> f64 {
        let cost = self.credit_cost(&call.model_name, &call.native, usage);
        if cost > 0.0 {
            self.record_credits(vec![store::LedgerEntry {
                id: wire::ids::new_id("cl"),
                organization_id: call.organization_id.clone(),
                user_id: Some(call.user_id.clone()),
                team_id: call.team_id.clone(),
                created_at: self.now(),
                category: LEDGER_CATEGORY.into(),
                kind: "model_call".into(),
                name: call.model_name.clone(),
                amount: cost,
                correlation_id: Some(call.id.clone()),
                session_id: None,
                agent_id: None,
            }])
            .await;
        }
        cost
    }

    /// C1: runs the call to its end.
    pub async fn chat_complete(&self, call: ChatCall) -> Result<ChatCompletion, ApiError> {
        let (meta, model, request) = call.split();
        let mut stream = model.stream(request).await.map_err(|e| provider_failed(&meta.model_name, &e))?;
        let mut text = String::new();
        let mut reasoning = String::new();
        let mut raw_args: Vec<(String, String)> = Vec::new();
        let mut calls: Vec<ChatToolCall> = Vec::new();
        let mut usage = Usage::default();
        let mut finish = None;
        while let Some(ev) = stream.next().await {
            match ev.map_err(|e| provider_failed(&meta.model_name, &e))? {
                ChatEvent::TextDelta(t) => text.push_str(&t),
                ChatEvent::ReasoningDelta(t) => reasoning.push_str(&t),
                ChatEvent::ToolCallStart { id, .. } => raw_args.push((id, String::new())),
                ChatEvent::ToolCallArgsDelta { id, delta } => match raw_args.iter_mut().find(|(i, _)| *i == id) {
                    Some((_, s)) => s.push_str(&delta),
                    None => raw_args.push((id, delta)),
                },
                ChatEvent::ToolCallDone(tc) => {
                    let raw = raw_args.iter().find(|(i, _)| *i == tc.id).map(|(_, s)| s.as_str()).unwrap_or("");
                    let arguments = arguments_text(raw, &tc.arguments);
                    calls.push(ChatToolCall { id: tc.id, kind: "function".into(), function: ChatToolCallFunction { name: tc.name, arguments } });
                }
                ChatEvent::Usage(u) => usage = u,
                ChatEvent::Finish { reason } => finish = Some(reason),
            }
        }
        drop(stream);
        let cost = self.charge_chat(&meta, &usage).await;
        let message = ChatAssistantMessage {
            role: "assistant".into(),
            content: (!text.is_empty() || calls.is_empty()).then_some(text),
            reasoning: (!reasoning.is_empty()).then_some(reasoning),
            tool_calls: (!calls.is_empty()).then_some(calls),
        };
        Ok(ChatCompletion {
            id: meta.id,
            object: "chat.completion".into(),
            created: meta.created,
            model: meta.model_name,
            system_fingerprint: None,
            choices: vec![ChatChoice { index: 0, message, finish_reason: Some(finish.unwrap_or_else(|| "stop".into())) }],
            usage: chat_usage(&usage, cost),
        })
    }

    /// C2: opens the provider stream (errors before the first byte are returned, so the
    /// response has their status) and translates it into chunks. Dropping the returned
    /// stream drops the provider's; credits are charged when the provider reports usage
    /// at its end.
    pub async fn chat_stream(self: &Arc<Self>, call: ChatCall) -> Result<BoxStream<'static, ChatStreamChunk>, ApiError> {
        let (meta, model, request) = call.split();
        let inner = model.stream(request).await.map_err(|e| provider_failed(&meta.model_name, &e))?;
        let tr = Translator::new(&meta);
        let first = tr.chunk(ChatStreamDelta { role: Some("assistant".into()), content: Some(String::new()), ..Default::default() }, None);
        let state = StreamState { engine: self.clone(), meta, inner: Some(inner), tr };
        let rest = futures::stream::unfold(state, |mut st| async move {
            let inner = st.inner.as_mut()?;
            let out = match inner.next().await {
                Some(Ok(ev)) => st.tr.on_event(ev),
                Some(Err(e)) => {
                    st.inner = None;
                    let api = provider_failed(&st.meta.model_name, &e);
                    let mut c = st.tr.chunk(ChatStreamDelta::default(), Some("error".into()));
                    c.error = Some(ChatStreamError { code: api.status, message: api.message });
                    vec![c]
                }
                None => {
                    st.inner = None;
                    let mut out = Vec::new();
                    if !st.tr.finished {
                        out.push(st.tr.chunk(ChatStreamDelta::default(), Some("stop".into())));
                    }
                    let cost = st.engine.charge_chat(&st.meta, &st.tr.usage).await;
                    let mut last = st.tr.chunk(ChatStreamDelta::default(), None);
                    last.choices.clear();
                    last.usage = Some(chat_usage(&st.tr.usage, cost));
                    out.push(last);
                    out
                }
            };
            Some((futures::stream::iter(out), st))
        })
        .flatten();
        Ok(futures::stream::once(async move { first }).chain(rest).boxed())
    }

    /// M2: picks the first available of the requested models (default: the target of
    /// `auto`); the other available ones are the fallbacks. "Available" = in the
    /// catalogue and its provider configured. With none available the decision is
    /// `fail_closed` and names the first candidate.
    pub async fn route_model(&self, caller: &Caller, req: ModelRouteRequest) -> Result<ModelRouteResponse, ApiError> {
        let task = match (&req.input, &req.message) {
            (Some(v), _) if !v.is_null() => Some((v, "input")),
            (_, Some(v)) if !v.is_null() => Some((v, "message")),
            _ => None,
        };
        let Some((task, param)) = task else { return Err(bad("input", "input or message is required.")) };
        match task {
            Value::String(s) if s.trim().is_empty() => return Err(bad(param, format!("{param} must not be empty."))),
            Value::String(_) | Value::Array(_) => {}
            _ => return Err(bad(param, format!("{param} must be a string or an array of content items."))),
        }
        if let Some(team) = req.team_id.as_deref().map(str::trim).filter(|t| !t.is_empty()) {
            match caller.scope_team() {
                Some(scope) if scope != team => {
                    return Err(ApiError::new(ErrorCode::TeamMismatch, "team_id is not the team this request is scoped to.").param("team_id"))
                }
                Some(_) => {}
                None if caller.memberships.iter().any(|(t, _)| t == team) => {}
                None => return Err(ApiError::new(ErrorCode::NotTeamMember, format!("You are not a member of team {team:?}.")).param("team_id")),
            }
        }
        let requested: Vec<String> = match req.models.as_deref() {
            Some(m) if !m.is_empty() => m.to_vec(),
            _ => vec!["auto".to_string()],
        };
        if requested.len() > MAX_ROUTE_MODELS {
            return Err(bad("models", format!("At most {MAX_ROUTE_MODELS} models.")));
        }
        let mut candidates = Vec::with_capacity(requested.len());
        for (i, r) in requested.iter().enumerate() {
            let name = r.trim();
            if name.is_empty() {
                return Err(bad(&format!("models[{i}]"), "A model name is empty."));
            }
            let model = self.resolve_model_name(name);
            let listed = model != "auto" && self.model_accepted(&model).await;
            let status = match (listed, listed && self.providers.resolve(&model).is_ok()) {
                (true, true) => "available",
                (true, false) => "unavailable",
                _ => "unknown",
            };
            candidates.push(ModelRouteCandidate {
                requested_model: r.clone(),
                model,
                lanes: vec!["default".into()],
                lane_basis: Some("catalogue".into()),
                status: status.into(),
            });
        }
        let mut available: Vec<String> = Vec::new();
        for c in candidates.iter().filter(|c| c.status == "available") {
            if !available.contains(&c.model) {
                available.push(c.model.clone());
            }
        }
        let fail_closed = available.is_empty();
        let model = if fail_closed { candidates.first().map(|c| c.model.clone()).unwrap_or_default() } else { available.remove(0) };
        Ok(ModelRouteResponse {
            router: "openloop".into(),
            route: ModelRouteDecision {
                model,
                lane: "default".into(),
                verdict_lane: "default".into(),
                adjustment: None,
                reasoning_effort: None,
                fallback_models: available,
                fail_closed,
            },
            candidates,
        })
    }
}

/// What a call needs after its provider request is sent.
struct ChatCallMeta {
    id: String,
    created: i64,
    model_name: String,
    native: String,
    organization_id: String,
    user_id: String,
    team_id: Option<String>,
}

impl ChatCall {
    fn split(self) -> (ChatCallMeta, Arc<dyn ChatModel>, llm::ChatRequest) {
        let meta = ChatCallMeta {
            id: self.id,
            created: self.created,
            model_name: self.model_name,
            native: self.native,
            organization_id: self.organization_id,
            user_id: self.user_id,
            team_id: self.team_id,
        };
        (meta, self.model, self.request)
    }
}

struct StreamState {
    engine: Arc<Engine>,
    meta: ChatCallMeta,
    /// `None` once the provider stream ended (or failed): the next poll ends ours.
    inner: Option<ChatStream>,
    tr: Translator,
}

/// Provider events → OpenAI stream chunks.
struct Translator {
    id: String,
    created: i64,
    model: String,
    /// Provider call ids in order of first appearance (their index is the chunk's `index`),
    /// and whether argument text was streamed for each.
    calls: Vec<(String, bool)>,
    usage: Usage,
    finished: bool,
}

impl Translator {
    fn new(meta: &ChatCallMeta) -> Self {
        Translator { id: meta.id.clone(), created: meta.created, model: meta.model_name.clone(), calls: Vec::new(), usage: Usage::default(), finished: false }
    }

    fn chunk(&self, delta: ChatStreamDelta, finish_reason: Option<String>) -> ChatStreamChunk {
        ChatStreamChunk {
            id: self.id.clone(),
            object: "chat.completion.chunk".into(),
            created: self.created,
            model: self.model.clone(),
            choices: vec![ChatStreamChoice { index: 0, delta, finish_reason }],
            usage: None,
            error: None,
        }
    }

    fn index(&mut self, id: &str) -> usize {
        match self.calls.iter().position(|(c, _)| c == id) {
            Some(i) => i,
            None => {
                self.calls.push((id.to_string(), false));
                self.calls.len() - 1
            }
        }
    }

    fn tool_delta(&self, call: ChatStreamToolCall) -> ChatStreamChunk {
        self.chunk(ChatStreamDelta { tool_calls: Some(vec![call]), ..Default::default() }, None)
    }

    /// A chunk carrying more of call `i`'s arguments.
    fn args_delta(&self, i: usize, arguments: String) -> ChatStreamChunk {
        self.tool_delta(ChatStreamToolCall {
            index: i as u32,
            id: None,
            kind: None,
            function: ChatStreamToolCallFunction { name: None, arguments: Some(arguments) },
        })
    }

    fn on_event(&mut self, ev: ChatEvent) -> Vec<ChatStreamChunk> {
        match ev {
            ChatEvent::TextDelta(t) if !t.is_empty() => vec![self.chunk(ChatStreamDelta { content: Some(t), ..Default::default() }, None)],
            ChatEvent::ReasoningDelta(t) if !t.is_empty() => vec![self.chunk(ChatStreamDelta { reasoning: Some(t), ..Default::default() }, None)],
            ChatEvent::TextDelta(_) | ChatEvent::ReasoningDelta(_) => vec![],
            ChatEvent::ToolCallStart { id, name } => {
                let index = self.index(&id) as u32;
                vec![self.tool_delta(ChatStreamToolCall {
                    index,
                    id: Some(id),
                    kind: Some("function".into()),
                    function: ChatStreamToolCallFunction { name: Some(name), arguments: Some(String::new()) },
                })]
            }
            ChatEvent::ToolCallArgsDelta { id, delta } => {
                let i = self.index(&id);
                if delta.is_empty() {
                    return vec![];
                }
                self.calls[i].1 = true;
                vec![self.args_delta(i, delta)]
            }
            ChatEvent::ToolCallDone(tc) => {
                // A provider that reports a call only when done: its arguments in one delta.
                let i = self.index(&tc.id);
                if self.calls[i].1 {
                    return vec![];
                }
                self.calls[i].1 = true;
                vec![self.args_delta(i, arguments_text("", &tc.arguments))]
            }
            ChatEvent::Usage(u) => {
                self.usage = u;
                vec![]
            }
            ChatEvent::Finish { reason } => {
                self.finished = true;
                vec![self.chunk(ChatStreamDelta::default(), Some(reason))]
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(v: Value) -> ChatCompletionRequest {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn messages_map_roles_tool_calls_and_results() {
        let r = req(json!({"messages": [
            {"role": "developer", "content": [{"type": "text", "text": "be "}, {"type": "text", "text": "brief"}]},
            {"role": "user", "content": "weather?"},
            {"role": "assistant", "content": null, "tool_calls": [{"id": "call_1", "type": "function", "function": {"name": "w", "arguments": "{\"c\":1}"}}]},
            {"role": "tool", "tool_call_id": "call_1", "content": "sunny"},
        ]}));
        let m = messages(&r.messages).unwrap();
        assert_eq!(m[0], ChatMessage::system("be brief"));
        assert_eq!(
            m[2],
            ChatMessage::Assistant { text: String::new(), tool_calls: vec![ToolCall { id: "call_1".into(), name: "w".into(), arguments: json!({"c": 1}) }] }
        );
        assert_eq!(m[3], ChatMessage::tool("call_1", "sunny"));
        let e = messages(&req(json!({"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {}}]}]})).messages).unwrap_err();
        assert_eq!(e.param.as_deref(), Some("messages[0].content[0].type"));
        let e = messages(&req(json!({"messages": [{"role": "tool", "content": "x"}]})).messages).unwrap_err();
        assert_eq!(e.param.as_deref(), Some("messages[0].tool_call_id"));
        let e = messages(&req(json!({"messages": [{"role": "user"}]})).messages).unwrap_err();
        assert_eq!(e.param.as_deref(), Some("messages[0].content"));
    }

    #[test]
    fn unsupported_options_name_the_field() {
        for (body, param) in [
            (json!({"n": 2}), "n"),
            (json!({"stop": ["x"]}), "stop"),
            (json!({"logprobs": true}), "logprobs"),
            (json!({"response_format": {"type": "json_object"}}), "response_format"),
            (json!({"modalities": ["text", "image"]}), "modalities[1]"),
            (json!({"temperature": 3.0}), "temperature"),
        ] {
            let mut b = body.clone();
            b["messages"] = json!([]);
            assert_eq!(unsupported(&req(b)).unwrap_err().param.as_deref(), Some(param), "{body}");
        }
        assert!(unsupported(&req(json!({"messages": [], "n": 1, "stop": null, "response_format": {"type": "text"}, "modalities": ["text"]}))).is_ok());
        let e = tools(&req(json!({"messages": [], "tool_choice": "required"}))).unwrap_err();
        assert_eq!(e.param.as_deref(), Some("tool_choice"));
        let t = tools(&req(json!({"messages": [], "tool_choice": "none", "tools": [{"type": "function", "function": {"name": "f"}}]}))).unwrap();
        assert!(t.is_empty());
        assert_eq!(effort(&req(json!({"messages": [], "reasoning": {"effort": "huge"}}))).unwrap_err().param.as_deref(), Some("reasoning.effort"));
    }

    #[test]
    fn translator_orders_tool_call_deltas() {
        let meta = ChatCallMeta {
            id: "chatcmpl-x".into(),
            created: 1,
            model_name: "m".into(),
            native: "m".into(),
            organization_id: "o".into(),
            user_id: "u".into(),
            team_id: None,
        };
        let mut tr = Translator::new(&meta);
        let a = tr.on_event(ChatEvent::ToolCallStart { id: "c1".into(), name: "f".into() });
        assert_eq!(a[0].choices[0].delta.tool_calls.as_ref().unwrap()[0].id.as_deref(), Some("c1"));
        let b = tr.on_event(ChatEvent::ToolCallArgsDelta { id: "c1".into(), delta: "{}".into() });
        assert_eq!(b[0].choices[0].delta.tool_calls.as_ref().unwrap()[0].function.arguments.as_deref(), Some("{}"));
        assert!(tr.on_event(ChatEvent::ToolCallDone(ToolCall { id: "c1".into(), name: "f".into(), arguments: json!({}) })).is_empty());
        let c = tr.on_event(ChatEvent::ToolCallStart { id: "c2".into(), name: "g".into() });
        assert_eq!(c[0].choices[0].delta.tool_calls.as_ref().unwrap()[0].index, 1);
        let d = tr.on_event(ChatEvent::ToolCallDone(ToolCall { id: "c2".into(), name: "g".into(), arguments: json!({"a": 1}) }));
        assert_eq!(d[0].choices[0].delta.tool_calls.as_ref().unwrap()[0].function.arguments.as_deref(), Some("{\"a\":1}"));
        let f = tr.on_event(ChatEvent::Finish { reason: "tool_calls".into() });
        assert_eq!(f[0].choices[0].finish_reason.as_deref(), Some("tool_calls"));
    }
}
