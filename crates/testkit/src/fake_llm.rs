//! Fake LLM providers over real HTTP, for tests and benchmarks.
//!
//! [`FakeLlm::start`] binds an axum server on `127.0.0.1:0` that speaks both
//! wire formats the `llm` crate uses:
//!
//! * `POST /v1/chat/completions` — OpenAI Chat Completions (streaming SSE when
//!   the body has `"stream": true`, otherwise a JSON completion),
//! * `POST /v1/messages` — Anthropic Messages (streaming and not),
//! * `GET /v1/models` — OpenAI-style model list.
//!
//! Point an OpenAI client at [`FakeLlm::openai_base_url`] (`…/v1`), an
//! Anthropic client at [`FakeLlm::base_url`], and Ollama's `OLLAMA_HOST` at
//! [`FakeLlm::base_url`].
//!
//! Each request takes the next scripted [`Reply`]: first a matching
//! [`FakeLlm::on_user_contains`] script (one-shot, FIFO per needle), then a
//! matching [`FakeLlm::on_user_contains_always`] script, then the global FIFO
//! queue ([`FakeLlm::push`]), then the default reply ([`FakeLlm::set_default`];
//! initially [`Reply::echo`]: `"ok: <last user text>"`).
//!
//! Replies without delays, cuts or hangs are written as one pre-built body,
//! cheap enough for benchmarks (use [`FakeLlm::set_recording`]`(false)` to stop
//! keeping request bodies).
//!
//! Usage reported by default is 10 input / 5 output tokens (see
//! [`Reply::usage`]); OpenAI streams include it only when the request asked for
//! it with `stream_options.include_usage`. Tool-call ids are
//! `call_<request#>_<i>` (OpenAI) and `toolu_<request#>_<i>` (Anthropic), where
//! `request#` is the 1-based request count.

mod format;

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::{get, post};
use axum::Router;
use serde_json::{json, Value};
use std::collections::{BTreeMap, VecDeque};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

pub use format::Wire;

/// A scripted tool call.
#[derive(Debug, Clone, PartialEq)]
pub struct FakeToolCall {
    pub name: String,
    /// Raw argument text as sent on the wire (need not be valid JSON).
    pub raw_arguments: String,
}

/// The text part of a reply.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum TextSource {
    None,
    /// `"ok: <last user text>"`.
    Echo,
    Literal(String),
}

/// An HTTP error reply.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ErrorReply {
    pub status: u16,
    /// Provider-shaped body built from this message, unless `raw_body` is set.
    pub message: String,
    pub raw_body: Option<String>,
}

/// Scripted usage (`input` includes `cached`; `output` includes `reasoning`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FakeUsage {
    pub input: u64,
    pub output: u64,
    pub cached: u64,
    pub reasoning: u64,
}

/// One scripted answer. Build with a constructor, refine with the builder
/// methods (they compose: e.g. `Reply::text("hi").chunks(5).chunk_delay(ms)`).
#[derive(Debug, Clone, PartialEq)]
pub struct Reply {
    pub(crate) text: TextSource,
    pub(crate) reasoning: Option<String>,
    pub(crate) tool_calls: Vec<FakeToolCall>,
    pub(crate) error: Option<ErrorReply>,
    pub(crate) retry_after: Option<String>,
    pub(crate) chunks: usize,
    pub(crate) first_byte_delay: Duration,
    pub(crate) chunk_delay: Duration,
    pub(crate) disconnect_after: Option<usize>,
    pub(crate) hang_after: Option<usize>,
    pub(crate) omit_tool_index: bool,
    pub(crate) usage: Option<FakeUsage>,
    pub(crate) json_response: bool,
    pub(crate) omit_done: bool,
    pub(crate) null_finish_reason: bool,
}

impl Default for Reply {
    fn default() -> Self {
        Reply::echo()
    }
}

impl Reply {
    fn base(text: TextSource) -> Self {
        Reply {
            text,
            reasoning: None,
            tool_calls: Vec::new(),
            error: None,
            retry_after: None,
            chunks: 1,
            first_byte_delay: Duration::ZERO,
            chunk_delay: Duration::ZERO,
            disconnect_after: None,
            hang_after: None,
            omit_tool_index: false,
            usage: Some(FakeUsage { input: 10, output: 5, cached: 0, reasoning: 0 }),
            json_response: false,
            omit_done: false,
            null_finish_reason: false,
        }
    }

    /// Text `"ok: <last user text>"` (the initial default reply).
    pub fn echo() -> Self {
        Self::base(TextSource::Echo)
    }

    /// Plain text answer (one chunk unless [`Reply::chunks`] is used).
    pub fn text(text: impl Into<String>) -> Self {
        Self::base(TextSource::Literal(text.into()))
    }

    /// Text split into `n` streamed chunks.
    pub fn text_chunks(text: impl Into<String>, n: usize) -> Self {
        Self::text(text).chunks(n)
    }

    /// Reasoning (streamed as `reasoning_content` / `thinking_delta`) then text.
    pub fn reasoning(reasoning: impl Into<String>, text: impl Into<String>) -> Self {
        Self::text(text).with_reasoning(reasoning)
    }

    /// One tool call with JSON arguments.
    pub fn tool_call(name: impl Into<String>, args: Value) -> Self {
        Self::base(TextSource::None).with_tool_call(name, args)
    }

    /// Several parallel tool calls.
    pub fn tool_calls<N: Into<String>>(calls: impl IntoIterator<Item = (N, Value)>) -> Self {
        calls.into_iter().fold(Self::base(TextSource::None), |r, (n, a)| r.with_tool_call(n, a))
    }

    /// One tool call whose argument text is sent verbatim (e.g. malformed JSON).
    pub fn tool_call_raw(name: impl Into<String>, raw_arguments: impl Into<String>) -> Self {
        let mut r = Self::base(TextSource::None);
        r.tool_calls.push(FakeToolCall { name: name.into(), raw_arguments: raw_arguments.into() });
        r
    }

    /// HTTP error `status` with a provider-shaped error body carrying `message`.
    pub fn error(status: u16, message: impl Into<String>) -> Self {
        let mut r = Self::base(TextSource::None);
        r.error = Some(ErrorReply { status, message: message.into(), raw_body: None });
        r
    }

    /// HTTP error `status` with exactly this body.
    pub fn error_body(status: u16, body: impl Into<String>) -> Self {
        let body = body.into();
        let mut r = Self::error(status, body.clone());
        if let Some(e) = r.error.as_mut() {
            e.raw_body = Some(body);
        }
        r
    }

    /// `429` with `retry-after: <secs>`.
    pub fn rate_limited(retry_after_secs: u64) -> Self {
        Self::error(429, "Rate limit reached").retry_after(retry_after_secs.to_string())
    }

    /// Sends the response headers (and the provider's preamble events), then
    /// nothing but SSE comments every 100 ms, forever.
    pub fn hang() -> Self {
        Self::base(TextSource::None).hang_after(0)
    }

    // ----- builders -----

    /// Adds (or replaces) the text part.
    pub fn with_text(mut self, text: impl Into<String>) -> Self {
        self.text = TextSource::Literal(text.into());
        self
    }

    /// Adds a reasoning part, streamed before the text.
    pub fn with_reasoning(mut self, reasoning: impl Into<String>) -> Self {
        self.reasoning = Some(reasoning.into());
        self
    }

    /// Adds a tool call (after any text).
    pub fn with_tool_call(mut self, name: impl Into<String>, args: Value) -> Self {
        self.tool_calls.push(FakeToolCall { name: name.into(), raw_arguments: args.to_string() });
        self
    }

    /// Splits text, reasoning and each tool call's arguments into `n` chunks.
    pub fn chunks(mut self, n: usize) -> Self {
        self.chunks = n.max(1);
        self
    }

    /// Waits before sending the response headers.
    pub fn first_byte_delay(mut self, d: Duration) -> Self {
        self.first_byte_delay = d;
        self
    }

    /// Waits between two streamed events.
    pub fn chunk_delay(mut self, d: Duration) -> Self {
        self.chunk_delay = d;
        self
    }

    /// Aborts the connection (no clean end of body) after `k` content chunks
    /// (text / reasoning / tool deltas); the provider's preamble events are sent
    /// first. `k` ≥ the number of chunks cuts just before the finish events.
    pub fn disconnect_after(mut self, k: usize) -> Self {
        self.disconnect_after = Some(k);
        self
    }

    /// Like [`Reply::disconnect_after`] but keeps the connection open forever
    /// (SSE comments every 100 ms) instead of aborting it.
    pub fn hang_after(mut self, k: usize) -> Self {
        self.hang_after = Some(k);
        self
    }

    /// OpenAI format: omit `index` from tool-call deltas.
    pub fn omit_tool_index(mut self) -> Self {
        self.omit_tool_index = true;
        self
    }

    /// Adds a `retry-after` header (seconds or HTTP date) to an error reply.
    pub fn retry_after(mut self, value: impl Into<String>) -> Self {
        self.retry_after = Some(value.into());
        self
    }

    /// Reported usage (default 10 input / 5 output).
    pub fn usage(mut self, input: u64, output: u64) -> Self {
        let u = self.usage.get_or_insert(FakeUsage { input, output, cached: 0, reasoning: 0 });
        u.input = input;
        u.output = output;
        self
    }

    /// Cached-input and reasoning token counts (part of input / output).
    pub fn usage_details(mut self, cached: u64, reasoning: u64) -> Self {
        let u = self.usage.get_or_insert(FakeUsage { input: 10, output: 5, cached: 0, reasoning: 0 });
        u.cached = cached;
        u.reasoning = reasoning;
        self
    }

    /// Reports no usage at all.
    pub fn no_usage(mut self) -> Self {
        self.usage = None;
        self
    }

    /// Answers with a non-streaming JSON body even to streaming requests.
    pub fn json_response(mut self) -> Self {
        self.json_response = true;
        self
    }

    /// Omits `data: [DONE]` (OpenAI) / `message_stop` (Anthropic); the body
    /// still ends cleanly.
    pub fn omit_done(mut self) -> Self {
        self.omit_done = true;
        self
    }

    /// OpenAI format: never send a `finish_reason` (always `null`).
    pub fn null_finish_reason(mut self) -> Self {
        self.null_finish_reason = true;
        self
    }
}

/// A request as received.
#[derive(Debug, Clone)]
pub struct RecordedRequest {
    pub path: String,
    /// Header names lower-cased.
    pub headers: BTreeMap<String, String>,
    pub body: Value,
}

struct Rule {
    needle: String,
    replies: VecDeque<Reply>,
    sticky: bool,
}

struct ScriptState {
    queue: VecDeque<Reply>,
    rules: Vec<Rule>,
    default: Reply,
    requests: Vec<RecordedRequest>,
    models: Vec<String>,
}

pub(crate) struct Inner {
    state: Mutex<ScriptState>,
    count: AtomicUsize,
    disconnects: AtomicUsize,
    open_streams: AtomicUsize,
    recording: AtomicBool,
}

impl Inner {
    fn lock(&self) -> MutexGuard<'_, ScriptState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn select(&self, last_user: &str) -> Reply {
        let mut st = self.lock();
        if let Some(r) = st.rules.iter_mut().filter(|r| !r.sticky && !r.replies.is_empty() && last_user.contains(&r.needle)).find_map(|r| r.replies.pop_front())
        {
            return r;
        }
        if let Some(r) = st.rules.iter().filter(|r| r.sticky && last_user.contains(&r.needle)).find_map(|r| r.replies.front().cloned()) {
            return r;
        }
        match st.queue.pop_front() {
            Some(r) => r,
            None => st.default.clone(),
        }
    }
}

/// A running fake provider server; stopped when dropped.
pub struct FakeLlm {
    addr: SocketAddr,
    inner: Arc<Inner>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for FakeLlm {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl FakeLlm {
    /// Binds `127.0.0.1:0` and serves in the background. Panics if the port
    /// cannot be bound (test helper).
    pub async fn start() -> FakeLlm {
        use axum::serve::ListenerExt;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind fake LLM server");
        let addr = listener.local_addr().expect("fake LLM local addr");
        let inner = Arc::new(Inner {
            state: Mutex::new(ScriptState {
                queue: VecDeque::new(),
                rules: Vec::new(),
                default: Reply::echo(),
                requests: Vec::new(),
                models: vec!["fake-model".into(), "fake-model-large".into()],
            }),
            count: AtomicUsize::new(0),
            disconnects: AtomicUsize::new(0),
            open_streams: AtomicUsize::new(0),
            recording: AtomicBool::new(true),
        });
        let app = Router::new()
            .route("/v1/chat/completions", post(openai_handler))
            .route("/v1/messages", post(anthropic_handler))
            .route("/v1/models", get(models_handler))
            .with_state(inner.clone());
        let listener = listener.tap_io(|tcp| {
            let _ = tcp.set_nodelay(true);
        });
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        FakeLlm { addr, inner, task }
    }

    /// `http://127.0.0.1:PORT` (Anthropic base URL, Ollama host).
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// `http://127.0.0.1:PORT/v1` (OpenAI base URL).
    pub fn openai_base_url(&self) -> String {
        format!("http://{}/v1", self.addr)
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Queues a reply for the next request not claimed by a user-text rule.
    pub fn push(&self, reply: Reply) {
        self.inner.lock().queue.push_back(reply);
    }

    /// Queues several replies in order.
    pub fn push_all(&self, replies: impl IntoIterator<Item = Reply>) {
        self.inner.lock().queue.extend(replies);
    }

    /// Reply used when nothing is queued (initially [`Reply::echo`]).
    pub fn set_default(&self, reply: Reply) {
        self.inner.lock().default = reply;
    }

    /// One-shot script for the next request whose last user text contains
    /// `needle`; calling it again for the same needle queues behind it.
    pub fn on_user_contains(&self, needle: impl Into<String>, reply: Reply) {
        let needle = needle.into();
        let mut st = self.inner.lock();
        match st.rules.iter_mut().find(|r| !r.sticky && r.needle == needle) {
            Some(rule) => rule.replies.push_back(reply),
            None => st.rules.push(Rule { needle, replies: VecDeque::from([reply]), sticky: false }),
        }
    }

    /// Reply for every request whose last user text contains `needle` (after
    /// one-shot scripts); replaces an earlier reply for the same needle.
    pub fn on_user_contains_always(&self, needle: impl Into<String>, reply: Reply) {
        let needle = needle.into();
        let mut st = self.inner.lock();
        st.rules.retain(|r| !(r.sticky && r.needle == needle));
        st.rules.push(Rule { needle, replies: VecDeque::from([reply]), sticky: true });
    }

    /// Scripted replies not consumed yet (global queue + one-shot rules).
    pub fn pending(&self) -> usize {
        let st = self.inner.lock();
        st.queue.len() + st.rules.iter().filter(|r| !r.sticky).map(|r| r.replies.len()).sum::<usize>()
    }

    /// Drops all scripts and recorded requests (counters are kept).
    pub fn reset(&self) {
        let mut st = self.inner.lock();
        st.queue.clear();
        st.rules.clear();
        st.requests.clear();
        st.default = Reply::echo();
    }

    /// Model ids listed by `GET /v1/models`.
    pub fn set_models(&self, models: Vec<String>) {
        self.inner.lock().models = models;
    }

    /// Whether request bodies are kept (default `true`; counting always happens).
    pub fn set_recording(&self, on: bool) {
        self.inner.recording.store(on, Ordering::Relaxed);
    }

    /// Bodies of the recorded chat requests, in arrival order.
    pub fn requests(&self) -> Vec<Value> {
        self.inner.lock().requests.iter().map(|r| r.body.clone()).collect()
    }

    /// Recorded chat requests with path and headers.
    pub fn recorded(&self) -> Vec<RecordedRequest> {
        self.inner.lock().requests.clone()
    }

    pub fn last_request(&self) -> Option<Value> {
        self.inner.lock().requests.last().map(|r| r.body.clone())
    }

    /// Number of chat requests received (both formats).
    pub fn request_count(&self) -> usize {
        self.inner.count.load(Ordering::SeqCst)
    }

    /// Streamed responses whose client went away before the body was complete
    /// (only counted for replies with delays, cuts or hangs).
    pub fn disconnects(&self) -> usize {
        self.inner.disconnects.load(Ordering::SeqCst)
    }

    /// Streamed responses (with delays, cuts or hangs) currently being sent.
    pub fn open_streams(&self) -> usize {
        self.inner.open_streams.load(Ordering::SeqCst)
    }

    /// Waits until [`FakeLlm::disconnects`] reaches `n`; `false` on timeout.
    pub async fn wait_for_disconnects(&self, n: usize, timeout: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if self.disconnects() >= n {
                return true;
            }
            if tokio::time::Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

async fn models_handler(State(inner): State<Arc<Inner>>) -> Response {
    let models = inner.lock().models.clone();
    let data: Vec<Value> = models.iter().map(|m| json!({"id": m, "object": "model", "created": 0, "owned_by": "openloop-fake"})).collect();
    json_response(StatusCode::OK, json!({"object": "list", "data": data}).to_string())
}

async fn openai_handler(State(inner): State<Arc<Inner>>, headers: HeaderMap, body: Bytes) -> Response {
    handle(inner, Wire::OpenAi, "/v1/chat/completions", headers, body).await
}

async fn anthropic_handler(State(inner): State<Arc<Inner>>, headers: HeaderMap, body: Bytes) -> Response {
    handle(inner, Wire::Anthropic, "/v1/messages", headers, body).await
}

fn json_response(status: StatusCode, body: String) -> Response {
    Response::builder().status(status).header("content-type", "application/json").body(Body::from(body)).unwrap_or_default()
}

async fn handle(inner: Arc<Inner>, wire: Wire, path: &str, headers: HeaderMap, body: Bytes) -> Response {
    let req: Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(e) => return json_response(StatusCode::BAD_REQUEST, json!({"error": {"message": format!("invalid JSON body: {e}")}}).to_string()),
    };
    let seq = inner.count.fetch_add(1, Ordering::SeqCst) + 1;
    let last_user = format::last_user_text(&req);
    let reply = inner.select(&last_user);
    if inner.recording.load(Ordering::Relaxed) {
        let headers = headers.iter().filter_map(|(k, v)| Some((k.as_str().to_string(), v.to_str().ok()?.to_string()))).collect();
        inner.lock().requests.push(RecordedRequest { path: path.to_string(), headers, body: req.clone() });
    }
    if !reply.first_byte_delay.is_zero() {
        tokio::time::sleep(reply.first_byte_delay).await;
    }
    if let Some(err) = &reply.error {
        let body = err.raw_body.clone().unwrap_or_else(|| format::error_body(wire, err.status, &err.message).to_string());
        let status = StatusCode::from_u16(err.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut resp = json_response(status, body);
        if let Some(ra) = reply.retry_after.as_deref().and_then(|v| v.parse::<axum::http::HeaderValue>().ok()) {
            resp.headers_mut().insert("retry-after", ra);
        }
        return resp;
    }
    let text = match &reply.text {
        TextSource::None => None,
        TextSource::Echo => Some(format!("ok: {last_user}")),
        TextSource::Literal(t) => Some(t.clone()),
    };
    let model = req.get("model").and_then(Value::as_str).unwrap_or("fake-model");
    let ctx = format::Ctx {
        wire,
        model,
        seq,
        text: text.as_deref(),
        reply: &reply,
        include_usage: wire == Wire::Anthropic || req.pointer("/stream_options/include_usage") == Some(&Value::Bool(true)),
    };
    let streaming = req.get("stream").and_then(Value::as_bool).unwrap_or(false);
    if !streaming || reply.json_response {
        return json_response(StatusCode::OK, format::json_body(&ctx).to_string());
    }
    let plan = format::sse_frames(&ctx);
    let simple = reply.chunk_delay.is_zero() && reply.disconnect_after.is_none() && reply.hang_after.is_none();
    let body = if simple { Body::from(plan.frames.concat()) } else { Body::from_stream(stream_body(inner.clone(), plan, &reply)) };
    Response::builder().status(StatusCode::OK).header("content-type", "text/event-stream").header("cache-control", "no-cache").body(body).unwrap_or_default()
}

/// Tracks a slow streamed body: counts it open, and as a client disconnect
/// when dropped before completion.
struct StreamGuard {
    inner: Arc<Inner>,
    completed: bool,
}

impl StreamGuard {
    fn new(inner: Arc<Inner>) -> Self {
        inner.open_streams.fetch_add(1, Ordering::SeqCst);
        StreamGuard { inner, completed: false }
    }
}

impl StreamGuard {
    fn complete(&mut self) {
        self.completed = true;
    }
}

impl Drop for StreamGuard {
    fn drop(&mut self) {
        self.inner.open_streams.fetch_sub(1, Ordering::SeqCst);
        if !self.completed {
            self.inner.disconnects.fetch_add(1, Ordering::SeqCst);
        }
    }
}

enum Stop {
    Disconnect,
    Hang,
}

struct BodyState {
    frames: VecDeque<Bytes>,
    cut: Option<(usize, Stop)>,
    sent: usize,
    delay: Duration,
    guard: StreamGuard,
}

fn stream_body(inner: Arc<Inner>, plan: format::Plan, reply: &Reply) -> impl futures::Stream<Item = Result<Bytes, std::io::Error>> + Send + 'static {
    let cut = match (reply.disconnect_after, reply.hang_after) {
        (Some(k), _) => Some((plan.cut_index(k), Stop::Disconnect)),
        (None, Some(k)) => Some((plan.cut_index(k), Stop::Hang)),
        (None, None) => None,
    };
    let state = BodyState { frames: plan.frames.into(), cut, sent: 0, delay: reply.chunk_delay, guard: StreamGuard::new(inner) };
    futures::stream::unfold(state, |mut st| async move {
        if let Some((at, stop)) = &st.cut {
            if st.sent >= *at {
                match stop {
                    Stop::Disconnect => {
                        // Let hyper flush what was sent so far: an aborted
                        // connection discards buffered, unflushed frames.
                        tokio::time::sleep(Duration::from_millis(20)).await;
                        st.guard.complete();
                        let err = std::io::Error::new(std::io::ErrorKind::ConnectionAborted, "scripted disconnect");
                        // Yielding an error makes hyper abort the connection
                        // without terminating the chunked body.
                        st.cut = None;
                        st.frames.clear();
                        return Some((Err(err), st));
                    }
                    Stop::Hang => {
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        return Some((Ok(Bytes::from_static(b": keepalive\n\n")), st));
                    }
                }
            }
        }
        let frame = match st.frames.pop_front() {
            Some(f) => f,
            None => {
                st.guard.complete();
                return None;
            }
        };
        if st.sent > 0 && !st.delay.is_zero() {
            tokio::time::sleep(st.delay).await;
        }
        st.sent += 1;
        Some((Ok(frame), st))
    })
}
