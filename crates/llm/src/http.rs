//! HTTP plumbing shared by the providers: client construction, retries,
//! error mapping, body reading with an idle timeout, and the generic
//! response-to-[`ChatStream`] driver.

use crate::error::{ErrorClass, LlmError};
use crate::types::{ChatEvent, ChatStream};
use bytes::Bytes;
use eventsource_stream::{EventStream, EventStreamError, Eventsource};
use futures::stream::BoxStream;
use futures::{Stream, StreamExt};
use reqwest::header::HeaderMap;
use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime};

/// TCP connect timeout of every provider client.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Largest non-streaming response body accepted.
const MAX_JSON_BODY: usize = 32 << 20;
/// Largest error body read (the message is truncated further anyway).
const MAX_ERROR_BODY: usize = 64 << 10;

/// Retry behaviour for `429`, `5xx` and connection errors that happen before
/// any event was yielded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Total number of attempts (1 = no retry). Default 3.
    pub max_attempts: u32,
    /// Backoff before the second attempt when the provider sent no
    /// `retry-after`; doubles each time. Default 500 ms.
    pub initial_backoff: Duration,
    /// Upper bound of any wait (`retry-after` or backoff). Default 30 s.
    pub max_wait: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy { max_attempts: 3, initial_backoff: Duration::from_millis(500), max_wait: Duration::from_secs(30) }
    }
}

impl RetryPolicy {
    /// Wait after failed attempt number `attempt` (1-based).
    fn backoff(&self, attempt: u32, retry_after: Option<Duration>) -> Duration {
        let d = retry_after.unwrap_or_else(|| {
            let factor = 1u32 << attempt.saturating_sub(1).min(16);
            self.initial_backoff.saturating_mul(factor)
        });
        d.min(self.max_wait)
    }
}

/// Options common to every provider client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpOptions {
    /// Maximum wait for the response headers, and maximum silence between two
    /// chunks of a streamed body. Default 600 s.
    pub request_timeout: Duration,
    pub retry: RetryPolicy,
}

impl Default for HttpOptions {
    fn default() -> Self {
        HttpOptions { request_timeout: Duration::from_secs(600), retry: RetryPolicy::default() }
    }
}

/// Builds the shared `reqwest` client (connect timeout 10 s, no overall timeout:
/// [`HttpOptions::request_timeout`] is enforced per request by this crate).
pub fn build_client() -> reqwest::Client {
    reqwest::Client::builder()
        .connect_timeout(CONNECT_TIMEOUT)
        .user_agent(concat!("openloop-llm/", env!("CARGO_PKG_VERSION")))
        .build()
        .unwrap_or_else(|_| reqwest::Client::new())
}

/// Builds a fresh request for each attempt.
pub(crate) type RequestFactory = Arc<dyn Fn() -> reqwest::RequestBuilder + Send + Sync>;

/// Identity of the remote for error messages and redaction.
#[derive(Clone)]
pub(crate) struct Remote {
    /// Human label used in messages (`"OpenAI"`, `"Anthropic"`, `"Ollama"`).
    pub label: &'static str,
    pub secret: Option<String>,
    pub opts: HttpOptions,
}

impl Remote {
    fn err(&self, e: LlmError) -> LlmError {
        e.redact(self.secret.as_deref())
    }
}

/// Formats an error and its sources (`a: b: c`), without URLs.
pub(crate) fn error_chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut out = err.to_string();
    let mut cur = err.source();
    while let Some(e) = cur {
        let s = e.to_string();
        if !out.contains(&s) {
            out.push_str(": ");
            out.push_str(&s);
        }
        cur = e.source();
    }
    out
}

fn reqwest_chain(err: reqwest::Error) -> String {
    error_chain(&err.without_url())
}

/// Parses `retry-after-ms` / `retry-after` (delta-seconds or HTTP date).
pub(crate) fn parse_retry_after(headers: &HeaderMap) -> Option<Duration> {
    let get = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).map(|s| s.trim().to_string());
    let secs_f = |s: &str, scale: f64| s.parse::<f64>().ok().filter(|v| v.is_finite() && *v >= 0.0).map(|v| Duration::from_secs_f64((v / scale).min(1e7)));
    if let Some(d) = get("retry-after-ms").and_then(|s| secs_f(&s, 1000.0)) {
        return Some(d);
    }
    let v = get("retry-after")?;
    if let Some(d) = secs_f(&v, 1.0) {
        return Some(d);
    }
    let at = httpdate::parse_http_date(&v).ok()?;
    Some(at.duration_since(SystemTime::now()).unwrap_or(Duration::ZERO))
}

/// Extracts a human message from a provider error body (OpenAI, Anthropic and
/// most compatible servers), falling back to the raw text.
pub(crate) fn extract_error_message(body: &str) -> String {
    if let Ok(v) = serde_json::from_str::<serde_json::Value>(body) {
        let candidates = [v.pointer("/error/message"), v.get("error"), v.get("message"), v.get("detail"), v.pointer("/error/type")];
        for c in candidates.into_iter().flatten() {
            if let Some(s) = c.as_str() {
                if !s.trim().is_empty() {
                    return s.trim().to_string();
                }
            }
        }
    }
    body.trim().to_string()
}

async fn read_error_body(resp: reqwest::Response, timeout: Duration) -> String {
    let mut buf = Vec::new();
    let mut stream = resp.bytes_stream();
    let read = async {
        while let Some(Ok(chunk)) = stream.next().await {
            buf.extend_from_slice(&chunk);
            if buf.len() >= MAX_ERROR_BODY {
                buf.truncate(MAX_ERROR_BODY);
                break;
            }
        }
    };
    let _ = tokio::time::timeout(timeout.min(Duration::from_secs(30)), read).await;
    String::from_utf8_lossy(&buf).into_owned()
}

/// Sends the request, retrying `429`/`5xx`/connection errors while
/// `*attempts < max_attempts`. Returns a `2xx` response.
pub(crate) async fn send_with_retry(factory: &RequestFactory, remote: &Remote, attempts: &mut u32) -> Result<reqwest::Response, LlmError> {
    let policy = &remote.opts.retry;
    let timeout = remote.opts.request_timeout;
    loop {
        *attempts += 1;
        let can_retry = *attempts < policy.max_attempts.max(1);
        let sent = tokio::time::timeout(timeout, factory().send()).await;
        let resp = match sent {
            Err(_) => return Err(remote.err(LlmError::timeout(format!("{} did not respond within {} s", remote.label, timeout.as_secs_f64())))),
            Ok(Err(e)) => {
                if e.is_timeout() {
                    return Err(remote.err(LlmError::timeout(format!("{} request timed out: {}", remote.label, reqwest_chain(e)))));
                }
                let retryable = !e.is_builder() && !e.is_redirect() && !e.is_status();
                let msg = format!("{} request failed: {}", remote.label, reqwest_chain(e));
                if retryable && can_retry {
                    tracing::debug!(attempt = *attempts, "retrying: {msg}");
                    tokio::time::sleep(policy.backoff(*attempts, None)).await;
                    continue;
                }
                return Err(remote.err(LlmError::provider(msg)));
            }
            Ok(Ok(resp)) => resp,
        };
        let status = resp.status();
        if status.is_success() {
            return Ok(resp);
        }
        let retry_after = parse_retry_after(resp.headers());
        let body = read_error_body(resp, timeout).await;
        let mut detail = extract_error_message(&body);
        if detail.is_empty() {
            detail = status.canonical_reason().unwrap_or("no message").to_string();
        }
        let msg = format!("{} returned HTTP {}: {}", remote.label, status.as_u16(), detail);
        let retryable = status.as_u16() == 429 || status.is_server_error();
        if retryable && can_retry {
            tracing::debug!(attempt = *attempts, "retrying: {msg}");
            tokio::time::sleep(policy.backoff(*attempts, retry_after)).await;
            continue;
        }
        let class = if status.as_u16() == 429 { ErrorClass::RateLimitError } else { ErrorClass::ProviderError };
        return Err(remote.err(LlmError::new(class, msg)));
    }
}

/// Sends a simple (non-streaming) request with retries and returns the JSON body.
pub(crate) async fn get_json(factory: RequestFactory, remote: &Remote) -> Result<serde_json::Value, LlmError> {
    let mut attempts = 0;
    let resp = send_with_retry(&factory, remote, &mut attempts).await?;
    let mut body = IdleTimeout::new(resp, remote);
    let mut buf = Vec::new();
    while let Some(chunk) = body.next().await {
        buf.extend_from_slice(&chunk.map_err(|e| remote.err(e))?);
        if buf.len() > MAX_JSON_BODY {
            return Err(LlmError::provider(format!("{} response too large", remote.label)));
        }
    }
    serde_json::from_slice(&buf).map_err(|e| LlmError::provider(format!("{} returned invalid JSON: {e}", remote.label)))
}

/// Response body as a byte stream that fails with `TimeoutError` when no chunk
/// arrives within the request timeout, and with `ProviderError "stream ended
/// unexpectedly…"` on a transport error.
pub(crate) struct IdleTimeout {
    inner: BoxStream<'static, reqwest::Result<Bytes>>,
    sleep: Pin<Box<tokio::time::Sleep>>,
    idle: Duration,
    label: &'static str,
    done: bool,
}

impl IdleTimeout {
    fn new(resp: reqwest::Response, remote: &Remote) -> Self {
        let idle = remote.opts.request_timeout;
        IdleTimeout { inner: resp.bytes_stream().boxed(), sleep: Box::pin(tokio::time::sleep(idle)), idle, label: remote.label, done: false }
    }
}

impl Stream for IdleTimeout {
    type Item = Result<Bytes, LlmError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        if this.done {
            return Poll::Ready(None);
        }
        match this.inner.poll_next_unpin(cx) {
            Poll::Ready(Some(Ok(b))) => {
                let deadline = tokio::time::Instant::now() + this.idle;
                this.sleep.as_mut().reset(deadline);
                Poll::Ready(Some(Ok(b)))
            }
            Poll::Ready(Some(Err(e))) => {
                this.done = true;
                let class_timeout = e.is_timeout();
                let msg = format!("stream ended unexpectedly ({}): {}", this.label, reqwest_chain(e));
                Poll::Ready(Some(Err(if class_timeout { LlmError::timeout(msg) } else { LlmError::provider(msg) })))
            }
            Poll::Ready(None) => {
                this.done = true;
                Poll::Ready(None)
            }
            Poll::Pending => match this.sleep.as_mut().poll(cx) {
                Poll::Ready(()) => {
                    this.done = true;
                    Poll::Ready(Some(Err(LlmError::timeout(format!("{} sent nothing for {} s", this.label, this.idle.as_secs_f64())))))
                }
                Poll::Pending => Poll::Pending,
            },
        }
    }
}

/// Provider-specific translation of response bodies into [`ChatEvent`]s.
pub(crate) trait EventParser: Default + Send + 'static {
    /// Handles one SSE event; returns `Ok(true)` once the response is complete
    /// (the final events must then have been pushed).
    fn on_sse(&mut self, event: &str, data: &str, out: &mut VecDeque<ChatEvent>) -> Result<bool, LlmError>;
    /// Handles a complete non-streaming JSON body (some servers ignore `stream`).
    fn on_json(&mut self, body: serde_json::Value, out: &mut VecDeque<ChatEvent>) -> Result<(), LlmError>;
    /// Clean end of body without a completion marker.
    fn on_eof(&mut self, out: &mut VecDeque<ChatEvent>) -> Result<(), LlmError>;
}

type SseStream = EventStream<BoxStream<'static, Result<Bytes, LlmError>>>;

enum Body {
    /// Content type unknown: sniff the first non-blank byte (`{` = JSON).
    Undecided(IdleTimeout, Vec<u8>),
    Sse(SseStream),
    Json(IdleTimeout, Vec<u8>),
    Done,
}

impl Body {
    fn from_response(resp: reqwest::Response, remote: &Remote) -> Body {
        let ct = resp.headers().get(reqwest::header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("").to_ascii_lowercase();
        let body = IdleTimeout::new(resp, remote);
        if ct.contains("json") && !ct.contains("event-stream") {
            Body::Json(body, Vec::new())
        } else {
            Body::Undecided(body, Vec::new())
        }
    }
}

fn sse_from(prefix: Vec<u8>, rest: IdleTimeout) -> SseStream {
    // The trailing blank line flushes a last event whose terminator the server
    // omitted; it is only reached after a clean end of body.
    futures::stream::iter([Ok(Bytes::from(prefix))]).chain(rest).chain(futures::stream::iter([Ok(Bytes::from_static(b"\n\n"))])).boxed().eventsource()
}

enum StepError {
    /// Connection-level failure: may be retried if nothing was yielded yet.
    Transport(LlmError),
    Fatal(LlmError),
}

impl From<LlmError> for StepError {
    fn from(e: LlmError) -> Self {
        if e.class == ErrorClass::ProviderError {
            StepError::Transport(e)
        } else {
            StepError::Fatal(e)
        }
    }
}

struct Driver<P> {
    factory: RequestFactory,
    remote: Remote,
    attempts: u32,
    body: Body,
    parser: P,
    pending: VecDeque<ChatEvent>,
    yielded: bool,
    finished: bool,
}

/// Sends the request (with retries) and returns the event stream.
pub(crate) async fn start_stream<P: EventParser>(factory: RequestFactory, remote: Remote) -> Result<ChatStream, LlmError> {
    let mut attempts = 0;
    let resp = send_with_retry(&factory, &remote, &mut attempts).await?;
    let body = Body::from_response(resp, &remote);
    let driver = Driver { factory, remote, attempts, body, parser: P::default(), pending: VecDeque::new(), yielded: false, finished: false };
    Ok(futures::stream::unfold(driver, |mut d| async move {
        let item = d.next_item().await?;
        Some((item, d))
    })
    .boxed())
}

impl<P: EventParser> Driver<P> {
    async fn next_item(&mut self) -> Option<Result<ChatEvent, LlmError>> {
        loop {
            if let Some(ev) = self.pending.pop_front() {
                self.yielded = true;
                return Some(Ok(ev));
            }
            if self.finished {
                return None;
            }
            let err = match self.advance().await {
                Ok(()) => continue,
                Err(StepError::Fatal(e)) => e,
                Err(StepError::Transport(e)) => {
                    let policy = &self.remote.opts.retry;
                    if self.yielded || self.attempts >= policy.max_attempts {
                        e
                    } else {
                        tracing::debug!(attempt = self.attempts, "retrying: {e}");
                        tokio::time::sleep(policy.backoff(self.attempts, None)).await;
                        match send_with_retry(&self.factory, &self.remote, &mut self.attempts).await {
                            Ok(resp) => {
                                self.body = Body::from_response(resp, &self.remote);
                                self.parser = P::default();
                                self.pending.clear();
                                continue;
                            }
                            Err(e) => e,
                        }
                    }
                }
            };
            self.finished = true;
            self.body = Body::Done;
            return Some(Err(self.remote.err(err)));
        }
    }

    /// Reads and parses the next unit of the body.
    async fn advance(&mut self) -> Result<(), StepError> {
        match std::mem::replace(&mut self.body, Body::Done) {
            Body::Done => {
                self.finished = true;
                Ok(())
            }
            Body::Undecided(mut s, mut prefix) => match s.next().await {
                None => {
                    if prefix.iter().all(u8::is_ascii_whitespace) {
                        return Err(StepError::Fatal(LlmError::provider(format!("{} returned an empty response", self.remote.label))));
                    }
                    self.body = Body::Sse(sse_from(prefix, s));
                    Ok(())
                }
                Some(Err(e)) => Err(e.into()),
                Some(Ok(chunk)) => {
                    prefix.extend_from_slice(&chunk);
                    self.body = match prefix.iter().find(|b| !b.is_ascii_whitespace()) {
                        None => Body::Undecided(s, prefix),
                        Some(b'{') | Some(b'[') => Body::Json(s, prefix),
                        Some(_) => Body::Sse(sse_from(prefix, s)),
                    };
                    Ok(())
                }
            },
            Body::Json(mut s, mut buf) => {
                while let Some(chunk) = s.next().await {
                    buf.extend_from_slice(&chunk?);
                    if buf.len() > MAX_JSON_BODY {
                        return Err(StepError::Fatal(LlmError::provider(format!("{} response too large", self.remote.label))));
                    }
                }
                let value: serde_json::Value = serde_json::from_slice(&buf)
                    .map_err(|e| StepError::Fatal(LlmError::provider(format!("{} returned invalid JSON: {e}", self.remote.label))))?;
                self.parser.on_json(value, &mut self.pending).map_err(StepError::Fatal)?;
                self.finished = true;
                Ok(())
            }
            Body::Sse(mut es) => match es.next().await {
                None => {
                    self.parser.on_eof(&mut self.pending).map_err(StepError::Fatal)?;
                    self.finished = true;
                    Ok(())
                }
                Some(Err(EventStreamError::Transport(e))) => Err(e.into()),
                Some(Err(e)) => Err(StepError::Fatal(LlmError::provider(format!("{} sent a malformed event stream: {e}", self.remote.label)))),
                Some(Ok(ev)) => {
                    let done = self.parser.on_sse(&ev.event, &ev.data, &mut self.pending).map_err(StepError::Fatal)?;
                    if done {
                        self.finished = true;
                        drain(es).await;
                    } else {
                        self.body = Body::Sse(es);
                    }
                    Ok(())
                }
            },
        }
    }
}

/// Reads what is left of a finished stream for a moment so that the
/// connection can return to the pool; gives up quickly otherwise.
async fn drain(mut es: SseStream) {
    for _ in 0..8 {
        match tokio::time::timeout(Duration::from_millis(20), es.next()).await {
            Ok(Some(Ok(_))) => continue,
            _ => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    #[test]
    fn retry_after_forms() {
        let mut h = HeaderMap::new();
        assert_eq!(parse_retry_after(&h), None);
        h.insert("retry-after", HeaderValue::from_static("2"));
        assert_eq!(parse_retry_after(&h), Some(Duration::from_secs(2)));
        h.insert("retry-after", HeaderValue::from_static("0.5"));
        assert_eq!(parse_retry_after(&h), Some(Duration::from_millis(500)));
        let date = httpdate::fmt_http_date(SystemTime::now() + Duration::from_secs(100));
        h.insert("retry-after", HeaderValue::from_str(&date).unwrap());
        let d = parse_retry_after(&h).unwrap();
        assert!(d > Duration::from_secs(95) && d <= Duration::from_secs(100));
        h.insert("retry-after", HeaderValue::from_static("Wed, 21 Oct 2015 07:28:00 GMT"));
        assert_eq!(parse_retry_after(&h), Some(Duration::ZERO));
        h.insert("retry-after-ms", HeaderValue::from_static("250"));
        assert_eq!(parse_retry_after(&h), Some(Duration::from_millis(250)));
    }

    #[test]
    fn backoff_is_exponential_and_capped() {
        let p = RetryPolicy::default();
        assert_eq!(p.backoff(1, None), Duration::from_millis(500));
        assert_eq!(p.backoff(2, None), Duration::from_millis(1000));
        assert_eq!(p.backoff(1, Some(Duration::from_secs(100))), Duration::from_secs(30));
    }

    #[test]
    fn error_messages() {
        assert_eq!(extract_error_message(r#"{"error":{"message":"bad model","type":"x"}}"#), "bad model");
        assert_eq!(extract_error_message(r#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#), "Overloaded");
        assert_eq!(extract_error_message(r#"{"error":"nope"}"#), "nope");
        assert_eq!(extract_error_message("plain text"), "plain text");
    }
}
