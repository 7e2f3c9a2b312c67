//! One run of an agent: model calls and tool calls until the model stops, each step
//! committed before the next starts, resumable from the last committed step.

use std::sync::Arc;
use std::time::Instant;

use futures::StreamExt;
use llm::{ChatEvent, ChatMessage, ChatModel, ChatRequest, LlmError, ToolCall, ToolSpec, Usage};
use serde_json::{json, Value};
use store::{AgentRecord, MessageRecord, RunRecord, RunUpdate, StepRecord};
use tokio::sync::watch;
use tools::{Tool, ToolContext};

use super::parts::{assistant_turns, build_parts, history, tool_call_id, ModelOutput, ToolOutput};
use super::Stop;
use crate::sessions::state::{run_transition, SessionEvent, SessionState, Transition};
use crate::Engine;
use wire::events::{ArtifactData, EventUsage, FinishReason, RunErrorInfo, StreamEvent};
use wire::sessions::PendingApproval;

const MAX_ERROR_CHARS: usize = 4096;
/// The built-in ability that asks the user questions (§7.6).
pub const HUMAN_INPUT: &str = "human_input";

/// PendingApproval as clients see it (internal keys such as `toolCallId` dropped).
pub fn public_approval(a: &Value) -> Option<PendingApproval> {
    let mut a = a.clone();
    if let Some(o) = a.as_object_mut() {
        o.retain(|_, v| !v.is_null());
    }
    match serde_json::from_value(a) {
        Ok(p) => Some(p),
        Err(e) => {
            tracing::warn!(error = %e, "a stored approval does not match PendingApproval; not shown");
            None
        }
    }
}

const INTERRUPTED_WRITE: &str = "interrupted before completion; it may or may not have taken effect";

/// How a run ended, for the worker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Terminal state written.
    Finished,
    /// Stopped without writing (lease lost, shutdown): another attempt resumes it.
    Abandoned,
}

/// A run failure: `"<ErrorClass>: <message>"` (§7.9).
#[derive(Debug, Clone)]
pub struct RunError {
    pub class: &'static str,
    pub message: String,
}

impl RunError {
    pub fn new(class: &'static str, message: impl Into<String>) -> Self {
        RunError { class, message: message.into() }
    }

    pub fn text(&self) -> String {
        let s = format!("{}: {}", self.class, self.message);
        if s.chars().count() > MAX_ERROR_CHARS {
            s.chars().take(MAX_ERROR_CHARS).collect()
        } else {
            s
        }
    }

    /// `ProviderError` → `provider_error`.
    pub fn code(&self) -> String {
        let mut out = String::new();
        for (i, c) in self.class.chars().enumerate() {
            if c.is_ascii_uppercase() && i > 0 {
                out.push('_');
            }
            out.push(c.to_ascii_lowercase());
        }
        out
    }

    /// The stream's `error` event (a `finish` follows).
    pub fn event(&self) -> Value {
        StreamEvent::Error { error: RunErrorInfo { code: self.code(), message: self.text() }, error_message: self.text() }.to_value()
    }
}

impl From<LlmError> for RunError {
    fn from(e: LlmError) -> Self {
        RunError { class: e.class.as_str(), message: e.message }
    }
}

/// Index of a provider call id within the step, assigned in order of first appearance.
fn call_index(ids: &mut Vec<String>, id: &str) -> usize {
    match ids.iter().position(|x| x == id) {
        Some(i) => i,
        None => {
            ids.push(id.to_string());
            ids.len() - 1
        }
    }
}

enum Flow {
    Continue,
    /// The call waits for a human decision (its PendingApproval).
    Pause(Value),
    Stop(Stop),
    Fail(RunError),
}

fn usage_json(u: &Usage, credit_cost: f64) -> Value {
    json!({
        "input_tokens": u.input_tokens,
        "output_tokens": u.output_tokens,
        "cached_input_tokens": u.cached_input_tokens,
        "reasoning_tokens": u.reasoning_tokens,
        "credit_cost": (credit_cost * 10000.0).round() / 10000.0,
    })
}

/// Sets an assistant message's parts, and its `content` to their text (what search reads).
fn set_parts(msg: &mut MessageRecord, parts: Vec<Value>) {
    let parts = Value::Array(parts);
    let text = super::parts::text_of(&parts);
    msg.content = (!text.is_empty()).then_some(text);
    msg.parts = parts;
}

struct Ctx<'a> {
    engine: &'a Arc<Engine>,
    run: RunRecord,
    agent: AgentRecord,
    owner: String,
    stop: watch::Receiver<Stop>,
    steps: Vec<StepRecord>,
    /// This run's assistant message.
    msg: MessageRecord,
    /// The transcript before it (immutable during the run).
    prior: Vec<MessageRecord>,
    tools: Vec<Arc<dyn Tool>>,
    /// The attached skills' part of the system prompt, read once at the run's start.
    skills_prompt: Option<String>,
    usage: Value,
    started: Instant,
    /// The user who created the session (default recipient of asks).
    session_creator: String,
    /// Work done but not yet written: it rides on the next write (see `Deferred`).
    deferred: std::sync::Mutex<Deferred>,
}

/// Events and a final step commit held back so they share the run's next transaction
/// instead of taking one each: a fast model's opening events go with its first batch,
/// and the last model step's commit goes with the run's terminal state. Every write goes
/// through `Ctx::write`, which takes these first, so nothing is reordered or dropped.
#[derive(Default)]
struct Deferred {
    events: Vec<Value>,
    step: Option<StepRecord>,
    usage_delta: Option<Value>,
}

/// How long the opening events (`start`, `start-step`) wait for the model's first
/// output before they are written alone: a fast provider's reply shares their
/// transaction, a slow one's readers still see the run start promptly.
const OPENING_GRACE: std::time::Duration = std::time::Duration::from_millis(25);

impl<'a> Ctx<'a> {
    fn stop_now(&self) -> Option<Stop> {
        match *self.stop.borrow() {
            Stop::Running => None,
            s => Some(s),
        }
    }

    fn step(&self, step: i64, call: &str) -> Option<&StepRecord> {
        self.steps.iter().find(|s| s.step == step && s.call_id == call)
    }

    fn record_step(&mut self, rec: StepRecord) {
        self.steps.retain(|s| !(s.step == rec.step && s.call_id == rec.call_id));
        self.steps.push(rec);
        set_parts(&mut self.msg, build_parts(&self.run.id, &self.steps, None));
    }

    fn defer(&self, f: impl FnOnce(&mut Deferred)) {
        if let Ok(mut d) = self.deferred.lock() {
            f(&mut d);
        }
    }

    /// Writes under our lease (with whatever was deferred) and publishes the events.
    /// `Ok(false)` = lease lost.
    async fn write(&self, mut u: RunUpdate<'_>) -> Result<bool, RunError> {
        let deferred = self.deferred.lock().map(|mut d| std::mem::take(&mut *d)).unwrap_or_default();
        let usage_sum;
        let step = deferred.step.clone();
        if u.step.is_none() {
            u.step = step.as_ref();
        }
        match (u.usage_delta, deferred.usage_delta.as_ref()) {
            (Some(a), Some(b)) => {
                let mut sum = a.clone();
                crate::runtime::parts::add_usage(&mut sum, b);
                usage_sum = sum;
                u.usage_delta = Some(&usage_sum);
            }
            (None, Some(b)) => u.usage_delta = Some(b),
            _ => {}
        }
        if !deferred.events.is_empty() {
            let mut events = deferred.events.clone();
            events.append(&mut u.events);
            u.events = events;
        }
        let written = self.engine.store.update_run(u).await;
        if written.is_err() {
            // Kept for the failure report that follows (a `start` must precede its `finish`).
            self.defer(|d| *d = deferred);
        }
        match written {
            Ok(Some(ev)) => {
                self.engine.bus.publish(ev);
                Ok(true)
            }
            Ok(None) => Ok(false),
            Err(e @ store::StoreError::Refused { .. }) => {
                // Someone else moved the run (only possible if our lease is gone): stop
                // without writing, as with a lost lease.
                tracing::warn!(error = %e, run_id = %self.run.id, "the run's state changed under this worker; stopping");
                Ok(false)
            }
            Err(e) => {
                tracing::error!(error = %e, run_id = %self.run.id, "store error while committing a step");
                Err(RunError::new("RuntimeError", "the run's progress could not be saved"))
            }
        }
    }

    fn update(&self) -> RunUpdate<'_> {
        RunUpdate { ..RunUpdate::new(&self.run.id, Some(&self.owner)) }
    }

    /// Appends events (and anything deferred); nothing to write is not a write.
    async fn emit(&self, events: Vec<Value>) -> Result<bool, RunError> {
        let nothing_deferred = self.deferred.lock().map(|d| d.events.is_empty() && d.step.is_none()).unwrap_or(true);
        if events.is_empty() && nothing_deferred {
            return Ok(true);
        }
        self.write(RunUpdate { events, ..self.update() }).await
    }

    fn context(&self, include_tools: bool) -> (Vec<ChatMessage>, Vec<ToolSpec>) {
        let mut msgs = vec![ChatMessage::System { text: self.engine.system_prompt(&self.agent, &self.tools, self.skills_prompt.as_deref()) }];
        msgs.extend(history(&self.prior, None));
        assistant_turns(&self.msg.parts, &mut msgs);
        let specs = if include_tools {
            self.tools.iter().map(|t| ToolSpec { name: t.name().to_string(), description: t.description().to_string(), parameters: t.parameters() }).collect()
        } else {
            vec![]
        };
        (msgs, specs)
    }

    fn model_settings(&self) -> (Option<f64>, Option<u32>, Option<String>) {
        let s = self.agent.config.metadata.get("model_settings");
        let temperature = s.and_then(|m| m.get("temperature")).and_then(Value::as_f64);
        let max_tokens = s.and_then(|m| m.get("max_tokens")).and_then(Value::as_u64).map(|v| v.min(u32::MAX as u64) as u32);
        let effort = s.and_then(|m| m.get("reasoning_effort")).and_then(Value::as_str).map(str::to_string);
        (temperature, max_tokens, effort)
    }

    /// One model call, streamed to the event log, committed as one step.
    async fn model_step(
        &mut self,
        step: i64,
        model: &Arc<dyn ChatModel>,
        model_name: &str,
        native: &str,
        with_tools: bool,
    ) -> Result<(Flow, ModelOutput), RunError> {
        self.defer(|d| d.events.push(StreamEvent::StartStep { step }.to_value()));
        let opening_due = tokio::time::Instant::now() + OPENING_GRACE;
        let mut opening_sent = false;
        let (messages, tools) = self.context(with_tools);
        let (temperature, max_tokens, reasoning_effort) = self.model_settings();
        let req = ChatRequest { model: native.to_string(), messages, tools, temperature, max_tokens, reasoning_effort };
        let mut stop = self.stop.clone();
        fail::fail_point!("run.model_call", |_| {
            Ok((Flow::Fail(RunError::new("ProviderError", "the provider failed (failure point run.model_call)")), ModelOutput::default()))
        });
        let provider = llm::provider_name(model_name);
        let call_started = std::time::Instant::now();
        let opening = model.stream(req);
        tokio::pin!(opening);
        let stream = loop {
            let due = tokio::select! {
                r = &mut opening => break r,
                _ = stop.wait_for(|s| *s != Stop::Running) => {
                    return Ok((Flow::Stop(self.stop_now().unwrap_or(Stop::Cancelled)), ModelOutput { partial: true, ..Default::default() }));
                }
                _ = tokio::time::sleep_until(opening_due), if !opening_sent => true,
            };
            if due {
                opening_sent = true;
                if !self.emit(vec![]).await? {
                    return Ok((Flow::Stop(Stop::LeaseLost), ModelOutput::default()));
                }
            }
        };
        metrics::histogram!("openloop_provider_open_seconds", "provider" => provider).record(call_started.elapsed().as_secs_f64());
        let mut stream = match stream {
            Ok(s) => s.ready_chunks(64).peekable(),
            Err(e) => {
                metrics::counter!("openloop_provider_errors_total", "provider" => provider, "class" => e.class.as_str()).increment(1);
                return Ok((Flow::Fail(e.into()), ModelOutput::default()));
            }
        };
        let text_id = super::parts::part_id(&self.run.id, step, "t", 0);
        let reasoning_id = super::parts::part_id(&self.run.id, step, "r", 0);
        let mut out = ModelOutput::default();
        let mut tail_events: Vec<Value> = Vec::new();
        let mut provider_ids: Vec<String> = Vec::new();
        let mut done_calls: Vec<Option<ToolCall>> = Vec::new();
        let mut usage = Usage::default();
        let mut flow = Flow::Continue;
        loop {
            let batch = tokio::select! {
                b = stream.next() => Some(b),
                _ = stop.wait_for(|s| *s != Stop::Running) => {
                    out.partial = true;
                    flow = Flow::Stop(self.stop_now().unwrap_or(Stop::Cancelled));
                    break;
                }
                _ = tokio::time::sleep_until(opening_due), if !opening_sent => None,
            };
            let Some(batch) = batch else {
                opening_sent = true;
                if !self.emit(vec![]).await? {
                    return Ok((Flow::Stop(Stop::LeaseLost), out));
                }
                continue;
            };
            opening_sent = true;
            let Some(batch) = batch else { break };
            let mut events = Vec::new();
            let mut failed = None;
            for item in batch {
                match item {
                    Err(e) => {
                        failed = Some(e);
                        break;
                    }
                    Ok(ChatEvent::TextDelta(d)) => {
                        if out.text.is_empty() {
                            events.push(StreamEvent::TextStart { id: text_id.clone() }.to_value());
                        }
                        out.text.push_str(&d);
                        events.push(StreamEvent::TextDelta { id: text_id.clone(), delta: d }.to_value());
                    }
                    Ok(ChatEvent::ReasoningDelta(d)) => {
                        if out.reasoning.is_empty() {
                            events.push(StreamEvent::ReasoningStart { id: reasoning_id.clone() }.to_value());
                        }
                        out.reasoning.push_str(&d);
                        events.push(StreamEvent::ReasoningDelta { id: reasoning_id.clone(), delta: d }.to_value());
                    }
                    Ok(ChatEvent::ToolCallStart { id, name }) => {
                        let idx = call_index(&mut provider_ids, &id);
                        events.push(StreamEvent::ToolInputStart { tool_call_id: tool_call_id(&self.run.id, step, idx), tool_name: name }.to_value());
                    }
                    Ok(ChatEvent::ToolCallArgsDelta { id, delta }) => {
                        let idx = call_index(&mut provider_ids, &id);
                        events.push(StreamEvent::ToolInputDelta { tool_call_id: tool_call_id(&self.run.id, step, idx), input_text_delta: delta }.to_value());
                    }
                    Ok(ChatEvent::ToolCallDone(tc)) => {
                        let idx = call_index(&mut provider_ids, &tc.id);
                        if done_calls.len() <= idx {
                            done_calls.resize(idx + 1, None);
                        }
                        done_calls[idx] = Some(tc);
                    }
                    Ok(ChatEvent::Usage(u)) => usage = u,
                    Ok(ChatEvent::Finish { reason }) => out.finish_reason = reason,
                }
            }
            // When the stream has already ended, these events go out with the step's
            // commit instead of in a transaction of their own (nothing waits longer).
            let ended = failed.is_none() && matches!(futures::FutureExt::now_or_never(std::pin::Pin::new(&mut stream).peek()), Some(None));
            if ended {
                tail_events = events;
                break;
            }
            if !self.emit(events).await? {
                return Ok((Flow::Stop(Stop::LeaseLost), out));
            }
            if let Some(e) = failed {
                metrics::counter!("openloop_provider_errors_total", "provider" => provider, "class" => e.class.as_str()).increment(1);
                flow = Flow::Fail(e.into());
                out.partial = true;
                break;
            }
        }
        drop(stream);
        metrics::histogram!("openloop_step_seconds", "kind" => "model", "provider" => provider).record(call_started.elapsed().as_secs_f64());
        // Calls in the order the model started them (their index fixes their tc_ id).
        out.tool_calls = done_calls.into_iter().flatten().collect();
        if matches!(flow, Flow::Stop(Stop::LeaseLost | Stop::Shutdown)) {
            return Ok((flow, out));
        }
        let mut events = tail_events;
        if !out.reasoning.is_empty() {
            events.push(StreamEvent::ReasoningEnd { id: reasoning_id }.to_value());
        }
        if !out.text.is_empty() {
            events.push(StreamEvent::TextEnd { id: text_id }.to_value());
        }
        for (i, tc) in out.tool_calls.iter().enumerate() {
            events.push(
                StreamEvent::ToolInputAvailable { tool_call_id: tool_call_id(&self.run.id, step, i), tool_name: tc.name.clone(), input: tc.arguments.clone() }
                    .to_value(),
            );
        }
        let cost = self.engine.credit_cost(model_name, native, &usage);
        let delta = usage_json(&usage, cost);
        crate::runtime::parts::add_usage(&mut self.usage, &delta);
        events.push(StreamEvent::FinishStep { step, usage: EventUsage::from_value(&delta) }.to_value());
        self.record_step(StepRecord {
            run_id: self.run.id.clone(),
            step,
            call_id: String::new(),
            state: "done".into(),
            output: serde_json::to_value(&out).unwrap_or(Value::Null),
        });
        let step_rec = self.step(step, "").cloned();
        if matches!(flow, Flow::Continue) && (out.tool_calls.is_empty() || !with_tools) {
            // The run's last step: its commit rides on the terminal write that follows.
            self.defer(|d| {
                d.events.extend(events);
                d.step = step_rec;
                d.usage_delta = Some(delta);
            });
            return Ok((flow, out));
        }
        let ok = self.write(RunUpdate { message: Some(&self.msg), step: step_rec.as_ref(), usage_delta: Some(&delta), events, ..self.update() }).await?;
        if !ok {
            return Ok((Flow::Stop(Stop::LeaseLost), out));
        }
        Ok((flow, out))
    }

    /// One tool call, committed; write tools leave a "started" marker first so a crash
    /// never replays their side effects.
    async fn tool_step(&mut self, step: i64, idx: usize, tc: &ToolCall) -> Result<Flow, RunError> {
        let call_id = idx.to_string();
        let tool = self.tools.iter().find(|t| t.name() == tc.name).cloned();
        let read_only = tool.as_ref().is_none_or(|t| t.read_only());
        let existing = self.step(step, &call_id).cloned();
        let is_human_input = tc.name == HUMAN_INPUT;
        match existing.as_ref().map(|s| s.state.as_str()) {
            None if is_human_input || self.approval_needed(&tc.name, read_only) => {
                return self.ask(step, idx, tc, is_human_input).await;
            }
            Some("awaiting") => return Ok(Flow::Pause(existing.map(|s| s.output["approval"].clone()).unwrap_or(Value::Null))),
            _ => {}
        }
        let decision = existing
            .as_ref()
            .filter(|s| s.state == "approved" || s.state == "rejected")
            .map(|s| (s.state.clone(), s.output.get("decision").cloned().unwrap_or(Value::Null)));
        let (state, result) = if let Some((verdict, d)) = decision.clone().filter(|(v, _)| v == "rejected" || is_human_input) {
            if verdict == "rejected" {
                let reason = d.get("reason").and_then(Value::as_str).filter(|r| !r.is_empty());
                let text = if is_human_input {
                    "The user declined to answer.".to_string()
                } else {
                    format!("Rejected by user{}", reason.map(|r| format!(": {r}")).unwrap_or_default())
                };
                ("rejected".to_string(), Value::String(text))
            } else {
                ("completed".to_string(), json!({"values": d.get("values").cloned().unwrap_or(json!({}))}))
            }
        } else if existing.as_ref().is_some_and(|s| s.state == "started") && !read_only {
            ("error".to_string(), Value::String(INTERRUPTED_WRITE.into()))
        } else {
            if !read_only {
                let marker = StepRecord { run_id: self.run.id.clone(), step, call_id: call_id.clone(), state: "started".into(), output: Value::Null };
                self.record_step(marker);
                let rec = self.step(step, &call_id).cloned();
                if !self.write(RunUpdate { message: Some(&self.msg), step: rec.as_ref(), ..self.update() }).await? {
                    return Ok(Flow::Stop(Stop::LeaseLost));
                }
            }
            match tool {
                None => ("error".to_string(), Value::String(format!("unknown tool {:?}", tc.name))),
                Some(t) => {
                    // Openloop's API tools act as the user whose message started the run.
                    let user_id = if wire::tools::find(&tc.name).is_some() || t.acts_as_session_user() {
                        self.session_creator.clone()
                    } else {
                        self.agent.creator_user_id.clone()
                    };
                    let ctx = ToolContext { session_id: self.run.session_id.clone(), run_id: self.run.id.clone(), user_id };
                    let mut stop = self.stop.clone();
                    let tool_started = std::time::Instant::now();
                    let res = tokio::select! {
                        r = async {
                            if tc.name == crate::artifacts::WRITE_ARTIFACT {
                                self.engine.write_artifact(&ctx, &self.agent.id, &tc.arguments).await.map_err(tools::ToolError::new)
                            } else {
                                t.call(tc.arguments.clone(), &ctx).await
                            }
                        } => Some(r),
                        _ = stop.wait_for(|s| *s != Stop::Running) => None,
                    };
                    let outcome = match &res {
                        Some(Ok(_)) => "completed",
                        Some(Err(_)) => "error",
                        None => "stopped",
                    };
                    metrics::histogram!("openloop_step_seconds", "kind" => "tool", "outcome" => outcome).record(tool_started.elapsed().as_secs_f64());
                    match res {
                        Some(Ok(v)) => ("completed".to_string(), v),
                        Some(Err(e)) => ("error".to_string(), Value::String(e.to_string())),
                        None => {
                            let s = self.stop_now().unwrap_or(Stop::Cancelled);
                            if matches!(s, Stop::LeaseLost | Stop::Shutdown) {
                                return Ok(Flow::Stop(s));
                            }
                            ("cancelled".to_string(), Value::String("cancelled".into()))
                        }
                    }
                }
            }
        };
        let tool_call_id = tool_call_id(&self.run.id, step, idx);
        let mut events = vec![if state == "completed" {
            StreamEvent::ToolOutputAvailable { tool_call_id, output: result.clone() }.to_value()
        } else {
            StreamEvent::ToolOutputError { tool_call_id, error_text: result.as_str().unwrap_or("tool failed").to_string() }.to_value()
        }];
        if state == "completed" && tc.name == crate::artifacts::WRITE_ARTIFACT {
            match serde_json::from_value::<ArtifactData>(result.clone()) {
                Ok(data) => events.push(StreamEvent::DataArtifact { data }.to_value()),
                Err(e) => tracing::warn!(error = %e, "write_artifact returned an unexpected shape; no data-artifact event"),
            }
        }
        let cancelled = state == "cancelled";
        let out = ToolOutput { state, result };
        self.record_step(StepRecord {
            run_id: self.run.id.clone(),
            step,
            call_id: call_id.clone(),
            state: "done".into(),
            output: serde_json::to_value(&out).unwrap_or(Value::Null),
        });
        let rec = self.step(step, &call_id).cloned();
        if !self.write(RunUpdate { message: Some(&self.msg), step: rec.as_ref(), events, ..self.update() }).await? {
            return Ok(Flow::Stop(Stop::LeaseLost));
        }
        crate::crash_point!("run.after_tool_commit");
        if cancelled {
            return Ok(Flow::Stop(self.stop_now().unwrap_or(Stop::Cancelled)));
        }
        Ok(Flow::Continue)
    }

    /// Effective approval mode of a tool (§7.5).
    fn approval_needed(&self, tool_name: &str, read_only: bool) -> bool {
        let tools = &self.agent.config.tools;
        // A tool of an attached MCP server takes the modes of the server's entry, and
        // custom modes may name it by the server's own tool name.
        let mcp = self.tools.iter().find(|t| t.name() == tool_name).and_then(|t| t.mcp_origin().map(|(s, raw)| (s.to_string(), raw.to_string())));
        let entry = match &mcp {
            Some((server_id, _)) => tools.iter().find(|t| {
                t.get("type").and_then(Value::as_str) == Some(crate::mcp_servers::MCP_SERVER_ENTRY)
                    && t.get("server_id").and_then(Value::as_str) == Some(server_id)
            }),
            None => tools.iter().find(|t| t.get("type").and_then(Value::as_str) == Some(tool_name) || t.get("name").and_then(Value::as_str) == Some(tool_name)),
        };
        let tool_name = mcp.as_ref().map(|(_, raw)| raw.as_str()).unwrap_or(tool_name);
        let entry = entry
            // Openloop's own API tools take the modes of their `openloop_api` entry.
            .or_else(|| {
                if mcp.is_some() {
                    return None;
                }
                wire::tools::find(tool_name)?;
                tools.iter().find(|t| t.get("type").and_then(Value::as_str) == Some(crate::api_tools::OPENLOOP_API))
            });
        let entry_mode = entry.and_then(|t| t.get("approval_mode")).and_then(Value::as_str).filter(|m| *m != "inherit");
        let default_mode =
            self.agent.config.metadata.get("tool_approval").and_then(|t| t.get("default_mode")).and_then(Value::as_str).filter(|m| *m != "inherit");
        match entry_mode.or(default_mode).unwrap_or("off") {
            "all" => true,
            "write" => !read_only,
            "custom" => {
                let custom = entry.and_then(|t| t.get("tool_approval_modes")).and_then(|m| m.get(tool_name)).and_then(Value::as_str).or_else(|| {
                    self.agent
                        .config
                        .metadata
                        .get("tool_approval")
                        .and_then(|t| t.get("tool_approval_modes"))
                        .and_then(|m| m.get(tool_name))
                        .and_then(Value::as_str)
                });
                match custom {
                    Some("always") => true,
                    Some("off") => false,
                    _ => !read_only,
                }
            }
            _ => false,
        }
    }

    /// Records a pending ask for a call; the run pauses after the step's other calls.
    async fn ask(&mut self, step: i64, idx: usize, tc: &ToolCall, human_input: bool) -> Result<Flow, RunError> {
        let call_id = idx.to_string();
        let ta = self.agent.config.metadata.get("tool_approval");
        let recipient = ta.and_then(|t| t.get("approver_user_id")).and_then(Value::as_str).map(str::to_string).unwrap_or_else(|| self.session_creator.clone());
        let areq = super::parts::derived_id("areq", &format!("{}/{step}/{idx}", self.run.id));
        let approval = if human_input {
            json!({
                "action_request_id": areq,
                "type": "human_input",
                "title": tc.arguments.get("title").and_then(Value::as_str).unwrap_or("The agent has questions"),
                "recipient_user_id": recipient,
                "tool_name": tc.name,
                "questions": tc.arguments.get("questions").cloned().filter(Value::is_array).unwrap_or(json!([])),
            })
        } else {
            let fields: Vec<Value> = tc
                .arguments
                .as_object()
                .map(|o| {
                    o.iter()
                        .map(|(k, v)| {
                            let preview = match v {
                                Value::String(s) => s.clone(),
                                other => other.to_string(),
                            };
                            json!([k, preview.chars().take(200).collect::<String>()])
                        })
                        .collect()
                })
                .unwrap_or_default();
            json!({
                "action_request_id": areq,
                "type": "tool_approval",
                "title": format!("Allow {} to run?", tc.name),
                "reason": ta.and_then(|t| t.get("reason")).cloned().unwrap_or(Value::Null),
                "recipient_user_id": recipient,
                "tool_name": tc.name,
                "server_label": "openloop",
                "display_fields": fields,
                "toolCallId": tool_call_id(&self.run.id, step, idx),
            })
        };
        self.record_step(StepRecord {
            run_id: self.run.id.clone(),
            step,
            call_id: call_id.clone(),
            state: "awaiting".into(),
            output: json!({"approval": approval}),
        });
        let rec = self.step(step, &call_id).cloned();
        if !self.write(RunUpdate { message: Some(&self.msg), step: rec.as_ref(), ..self.update() }).await? {
            return Ok(Flow::Stop(Stop::LeaseLost));
        }
        Ok(Flow::Pause(approval))
    }

    /// Pauses the run on its open asks: `approval-required` + `finish`, job released.
    async fn pause(&mut self, asks: Vec<Value>) -> Outcome {
        let Some(t) = self.transition(SessionEvent::ApprovalNeeded) else { return Outcome::Abandoned };
        let state = t.to.session_state();
        let pending: Vec<PendingApproval> = asks.iter().filter_map(public_approval).collect();
        let tool_call_id = asks.iter().find_map(|a| a.get("toolCallId").and_then(Value::as_str).map(str::to_string));
        let events = vec![
            StreamEvent::ApprovalRequired { pending_approvals: pending, tool_call_id }.to_value(),
            self.finish_event(FinishReason::ApprovalRequired, state),
        ];
        let u = RunUpdate { transition: Some(t), message: Some(&self.msg), events, release_job: true, ..self.update() };
        match self.write(u).await {
            Ok(true) => Outcome::Finished,
            _ => Outcome::Abandoned,
        }
    }

    /// The run's transition for `event` from the state this worker holds it in; `None`
    /// (logged) when the table refuses, which would be a bug in the runtime.
    fn transition(&self, event: SessionEvent) -> Option<Transition> {
        match run_transition(self.run.state, event) {
            Ok(t) => Some(t),
            Err(from) => {
                tracing::error!(run_id = %self.run.id, from = from.as_str(), ?event, "the run's state machine refused a transition; leaving the run to its lease");
                None
            }
        }
    }

    fn finish_event(&self, reason: FinishReason, state: SessionState) -> Value {
        StreamEvent::finish(&self.run.session_id, reason, state, Some(EventUsage::from_value(&self.usage))).to_value()
    }

    async fn finish(&mut self, outcome: Result<&'static str, RunError>) -> Outcome {
        crate::crash_point!("run.before_finish");
        let (event, reason, error) = match &outcome {
            Ok(reason) => (SessionEvent::RunCompleted, *reason, None),
            Err(e) => (SessionEvent::RunFailed, "error", Some(e.clone())),
        };
        let Some(t) = self.transition(event) else { return Outcome::Abandoned };
        let state = t.to.session_state();
        let mut events = Vec::new();
        let error_text = error.as_ref().map(RunError::text);
        if let Some(e) = &error {
            events.push(e.event());
        }
        events.push(self.finish_event(FinishReason::parse(reason).unwrap_or(FinishReason::Stop), state));
        set_parts(&mut self.msg, build_parts(&self.run.id, &self.steps, error_text.as_deref()));
        let u = RunUpdate {
            transition: Some(t),
            finish_reason: Some(reason),
            error_message: error_text.as_deref(),
            message: Some(&self.msg),
            events,
            terminal: true,
            ..self.update()
        };
        match self.write(u).await {
            Ok(true) => Outcome::Finished,
            _ => Outcome::Abandoned,
        }
    }

    /// Cancelled (S9) or interrupted (S16): partial work is kept.
    async fn finish_stopped(&mut self, stop: Stop) -> Outcome {
        let reason = match stop {
            Stop::Cancelled => "cancelled",
            Stop::Interrupted => "interrupted",
            _ => return Outcome::Abandoned,
        };
        // Interrupted (S16) also leaves the session `cancelled` for the moment: the new
        // run's turn moves it on.
        let Some(t) = self.transition(SessionEvent::Cancel) else { return Outcome::Abandoned };
        let state = t.to.session_state();
        set_parts(&mut self.msg, build_parts(&self.run.id, &self.steps, None));
        let u = RunUpdate {
            transition: Some(t),
            finish_reason: Some(reason),
            message: Some(&self.msg),
            events: vec![self.finish_event(FinishReason::parse(reason).unwrap_or(FinishReason::Cancelled), state)],
            terminal: true,
            ..self.update()
        };
        match self.write(u).await {
            Ok(true) => Outcome::Finished,
            _ => Outcome::Abandoned,
        }
    }
}

/// Executes (or resumes) a claimed run to a terminal state.
pub async fn execute(engine: &Arc<Engine>, run: RunRecord, owner: &str, stop: watch::Receiver<Stop>) -> Outcome {
    let loaded = async {
        let agent = engine.store.agent(&run.agent_id).await.ok().flatten();
        let messages = engine.store.messages(&run.session_id).await.ok()?;
        let steps = engine.store.run_steps(&run.id).await.ok()?;
        Some((agent, messages, steps))
    }
    .await;
    let Some((agent, messages, steps)) = loaded else {
        return Outcome::Abandoned;
    };
    let msg_id = run.assistant_message_id.clone().unwrap_or_else(|| super::parts::derived_id("msg", &format!("{}/assistant", run.id)));
    // The transcript before this run: everything up to and including its user message.
    let user_ord = messages.iter().find(|m| m.id == run.user_message_id).map(|m| m.ord).unwrap_or(i64::MAX);
    let prior: Vec<MessageRecord> = messages.iter().filter(|m| m.ord <= user_ord && m.id != msg_id).cloned().collect();
    let msg = messages.iter().find(|m| m.id == msg_id).cloned().unwrap_or_else(|| MessageRecord {
        id: msg_id.clone(),
        session_id: run.session_id.clone(),
        ord: 0,
        run_id: Some(run.id.clone()),
        role: "assistant".into(),
        content: None,
        parts: json!([]),
        creator_id: None,
        created_at: engine.now(),
    });
    let usage = run.usage.clone();
    let Some(agent) = agent else {
        return fail_run(engine, &run, Some(owner), RunError::new("RuntimeError", "the agent no longer exists")).await;
    };
    let mut tools = engine.tools_for(&agent);
    let taken: Vec<String> = tools.iter().map(|t| t.name().to_string()).collect();
    tools.extend(engine.mcp_tools_for(&agent, &taken).await);
    let taken: Vec<String> = tools.iter().map(|t| t.name().to_string()).collect();
    tools.extend(engine.subagent_tools_for(&agent, &taken).await);
    let skills_prompt = crate::skills::prompt_section(engine, &agent).await;
    let session_creator = prior.iter().rev().find(|m| m.role == "user").and_then(|m| m.creator_id.clone()).unwrap_or_default();
    let mut ctx = Ctx {
        session_creator,
        deferred: Default::default(),
        engine,
        run,
        agent,
        owner: owner.to_string(),
        stop,
        steps,
        msg,
        prior,
        tools,
        skills_prompt,
        usage,
        started: Instant::now(),
    };
    set_parts(&mut ctx.msg, build_parts(&ctx.run.id, &ctx.steps, None));

    let model_name = engine.resolve_model_name(&ctx.agent.config.model_name);
    let (model, native) = match engine.providers.resolve(&model_name) {
        Ok(m) => m,
        Err(e) => return ctx.finish(Err(e.into())).await,
    };
    if ctx.steps.is_empty() {
        // Written together with the first step's opening event (one transaction less).
        let start = StreamEvent::Start {
            interaction_id: ctx.run.session_id.clone(),
            session_id: ctx.run.session_id.clone(),
            message_id: Some(ctx.msg.id.clone()),
            state: SessionState::Processing,
        }
        .to_value();
        ctx.defer(|d| d.events.push(start));
    }
    let max_steps = ctx
        .agent
        .config
        .metadata
        .get("max_steps")
        .and_then(Value::as_f64)
        .map(|v| v.max(1.0) as u32)
        .unwrap_or(engine.config.runtime.max_steps_default)
        .min(engine.config.runtime.max_steps_cap) as i64;
    let timeout = engine.config.runtime.run_timeout;
    let mut step: i64 = 0;
    loop {
        if let Some(s) = ctx.stop_now() {
            return ctx.finish_stopped(s).await;
        }
        if ctx.started.elapsed() > timeout {
            return ctx.finish(Err(RunError::new("TimeoutError", format!("the run exceeded {} s", timeout.as_secs())))).await;
        }
        let last = step >= max_steps;
        let out = match ctx.step(step, "").filter(|s| s.state == "done") {
            Some(done) => serde_json::from_value::<ModelOutput>(done.output.clone()).unwrap_or_default(),
            None => {
                let res = tokio::time::timeout(timeout.saturating_sub(ctx.started.elapsed()), ctx.model_step(step, &model, &model_name, &native, !last)).await;
                match res {
                    Err(_) => return ctx.finish(Err(RunError::new("TimeoutError", format!("the run exceeded {} s", timeout.as_secs())))).await,
                    Ok(Err(e)) => return ctx.finish(Err(e)).await,
                    Ok(Ok((Flow::Fail(e), _))) => return ctx.finish(Err(e)).await,
                    Ok(Ok((Flow::Pause(_), out))) => out,
                    Ok(Ok((Flow::Stop(s), _))) => return ctx.finish_stopped(s).await,
                    Ok(Ok((Flow::Continue, out))) => out,
                }
            }
        };
        if out.tool_calls.is_empty() || last {
            return ctx.finish(Ok(if last { "max_steps" } else { "stop" })).await;
        }
        let mut asks: Vec<Value> = Vec::new();
        for (i, tc) in out.tool_calls.iter().enumerate() {
            if ctx.step(step, &i.to_string()).is_some_and(|s| s.state == "done") {
                continue;
            }
            match ctx.tool_step(step, i, tc).await {
                Ok(Flow::Continue) => {}
                Ok(Flow::Pause(p)) => asks.push(p),
                Ok(Flow::Stop(s)) => return ctx.finish_stopped(s).await,
                Ok(Flow::Fail(e)) | Err(e) => return ctx.finish(Err(e)).await,
            }
        }
        if !asks.is_empty() {
            return ctx.pause(asks).await;
        }
        step += 1;
    }
}

/// Fails a run that cannot execute (attempts exhausted, agent gone): terminal `error` +
/// `finish` events so stream readers end.
pub async fn fail_run(engine: &Arc<Engine>, run: &RunRecord, owner: Option<&str>, error: RunError) -> Outcome {
    let text = error.text();
    let steps = engine.store.run_steps(&run.id).await.unwrap_or_default();
    let msg_id = run.assistant_message_id.clone().unwrap_or_else(|| super::parts::derived_id("msg", &format!("{}/assistant", run.id)));
    let mut msg = MessageRecord {
        id: msg_id,
        session_id: run.session_id.clone(),
        ord: 0,
        run_id: Some(run.id.clone()),
        role: "assistant".into(),
        content: None,
        parts: Value::Null,
        creator_id: None,
        created_at: engine.now(),
    };
    set_parts(&mut msg, build_parts(&run.id, &steps, Some(&text)));
    let events = vec![
        error.event(),
        StreamEvent::finish(&run.session_id, FinishReason::Error, SessionState::Failed, Some(EventUsage::from_value(&run.usage))).to_value(),
    ];
    let Ok(t) = run_transition(run.state, SessionEvent::RunFailed) else {
        tracing::error!(run_id = %run.id, from = run.state.as_str(), "a run in this state cannot fail");
        return Outcome::Abandoned;
    };
    let u = RunUpdate {
        transition: Some(t),
        finish_reason: Some("error"),
        error_message: Some(&text),
        message: Some(&msg),
        events,
        terminal: true,
        ..RunUpdate::new(&run.id, owner)
    };
    match engine.store.update_run(u).await {
        Ok(Some(ev)) => {
            engine.bus.publish(ev);
            Outcome::Finished
        }
        _ => Outcome::Abandoned,
    }
}
