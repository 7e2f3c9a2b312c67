//! Retries, errors, timeouts and cancellation over real HTTP.

mod common;

use common::*;
use futures::StreamExt;
use llm::{ChatEvent, ChatModel, ErrorClass, HttpOptions, OpenAiClient, RetryPolicy, MAX_ERROR_CHARS};
use std::time::{Duration, Instant};
use testkit::fake_llm::{FakeLlm, Reply};

fn with_timeout(fake: &FakeLlm, timeout: Duration) -> OpenAiClient {
    OpenAiClient::new(&fake.openai_base_url(), Some(OPENAI_KEY.into()), HttpOptions { request_timeout: timeout, ..opts() })
}

#[tokio::test]
async fn rate_limit_with_retry_after_then_success() {
    let fake = FakeLlm::start().await;
    fake.push(Reply::rate_limited(1));
    fake.push(Reply::text("made it"));
    let start = Instant::now();
    let ev = ok_events(&openai(&fake), req("gpt-4o", "q")).await;
    assert_eq!(text_of(&ev), "made it");
    assert_eq!(fake.request_count(), 2);
    assert!(start.elapsed() >= Duration::from_millis(900), "retry-after honoured: {:?}", start.elapsed());
}

#[tokio::test]
async fn retry_after_http_date_is_honoured() {
    let fake = FakeLlm::start().await;
    // A date in the past means "retry now".
    fake.push(Reply::error(503, "busy").retry_after("Wed, 21 Oct 2015 07:28:00 GMT"));
    fake.push(Reply::text("ok"));
    let ev = ok_events(&openai(&fake), req("m", "q")).await;
    assert_eq!(text_of(&ev), "ok");
    assert_eq!(fake.request_count(), 2);
}

#[tokio::test]
async fn default_backoff_without_retry_after() {
    let fake = FakeLlm::start().await;
    fake.push(Reply::error(500, "hiccup"));
    fake.push(Reply::text("ok"));
    let client = OpenAiClient::new(&fake.openai_base_url(), None, HttpOptions { request_timeout: Duration::from_secs(10), retry: RetryPolicy::default() });
    let start = Instant::now();
    let ev = ok_events(&client, req("m", "q")).await;
    assert_eq!(text_of(&ev), "ok");
    let waited = start.elapsed();
    assert!(waited >= Duration::from_millis(450), "{waited:?}");
    assert!(waited < Duration::from_secs(5), "{waited:?}");
}

#[tokio::test]
async fn server_errors_exhaust_retries() {
    let fake = FakeLlm::start().await;
    for _ in 0..3 {
        fake.push(Reply::error(500, "The server had an error while processing"));
    }
    fake.push(Reply::text("never reached"));
    let err = events(&openai(&fake), req("m", "q")).await.unwrap_err();
    assert_eq!(err.class, ErrorClass::ProviderError);
    assert!(err.message.contains("HTTP 500"), "{err}");
    assert!(err.message.contains("The server had an error while processing"), "{err}");
    assert!(err.to_string().starts_with("ProviderError: "));
    assert_eq!(fake.request_count(), 3);
}

#[tokio::test]
async fn rate_limit_exhausts_retries() {
    let fake = FakeLlm::start().await;
    for _ in 0..3 {
        fake.push(Reply::rate_limited(0));
    }
    let err = events(&openai(&fake), req("m", "q")).await.unwrap_err();
    assert_eq!(err.class, ErrorClass::RateLimitError);
    assert!(err.to_string().starts_with("RateLimitError: "));
    assert_eq!(fake.request_count(), 3);
}

#[tokio::test]
async fn client_errors_are_not_retried_and_never_leak_the_key() {
    let fake = FakeLlm::start().await;
    fake.push(Reply::error(401, format!("Incorrect API key provided: {OPENAI_KEY}")));
    let err = events(&openai(&fake), req("m", "q")).await.unwrap_err();
    assert_eq!(err.class, ErrorClass::ProviderError);
    assert!(err.message.contains("HTTP 401"), "{err}");
    assert!(!err.to_string().contains(OPENAI_KEY), "{err}");
    assert_eq!(fake.request_count(), 1);
}

#[tokio::test]
async fn long_error_bodies_are_truncated() {
    let fake = FakeLlm::start().await;
    fake.push(Reply::error_body(400, "x".repeat(20_000)));
    let err = events(&openai(&fake), req("m", "q")).await.unwrap_err();
    assert!(err.to_string().chars().count() <= MAX_ERROR_CHARS);
}

#[tokio::test]
async fn midstream_disconnect_yields_error_item() {
    let fake = FakeLlm::start().await;
    fake.push(Reply::text_chunks("abcdef", 3).disconnect_after(1));
    let items = events(&openai(&fake), req("m", "q")).await.unwrap();
    assert_eq!(items.len(), 2, "{items:?}");
    assert_eq!(items[0].as_ref().unwrap(), &ChatEvent::TextDelta("ab".into()));
    let err = items[1].as_ref().unwrap_err();
    assert_eq!(err.class, ErrorClass::ProviderError);
    assert!(err.message.starts_with("stream ended unexpectedly"), "{err}");
    assert_eq!(fake.request_count(), 1);
}

#[tokio::test]
async fn disconnect_before_any_event_is_retried() {
    let fake = FakeLlm::start().await;
    fake.push(Reply::text("lost").disconnect_after(0));
    fake.push(Reply::text("second try"));
    let ev = ok_events(&openai(&fake), req("m", "q")).await;
    assert_eq!(text_of(&ev), "second try");
    assert_eq!(fake.request_count(), 2);
}

#[tokio::test]
async fn connection_refused_is_a_provider_error() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    let client = OpenAiClient::new(&format!("http://127.0.0.1:{port}/v1"), None, opts());
    let err = match client.stream(req("m", "q")).await {
        Err(e) => e,
        Ok(_) => panic!("expected an error"),
    };
    assert_eq!(err.class, ErrorClass::ProviderError);
    assert!(err.message.contains("request failed"), "{err}");
    assert!(!err.message.contains("127.0.0.1"), "no URL in message: {err}");
}

#[tokio::test]
async fn slow_first_byte_times_out() {
    let fake = FakeLlm::start().await;
    fake.push(Reply::text("late").first_byte_delay(Duration::from_secs(5)));
    let client = with_timeout(&fake, Duration::from_millis(300));
    let start = Instant::now();
    let err = events(&client, req("m", "q")).await.unwrap_err();
    assert_eq!(err.class, ErrorClass::TimeoutError);
    assert!(err.to_string().starts_with("TimeoutError: "));
    assert!(start.elapsed() < Duration::from_secs(3));
    assert_eq!(fake.request_count(), 1, "timeouts are not retried");
}

#[tokio::test]
async fn stalled_stream_times_out() {
    let fake = FakeLlm::start().await;
    fake.push(Reply::text_chunks("abcd", 2).chunk_delay(Duration::from_secs(5)));
    let client = with_timeout(&fake, Duration::from_millis(300));
    let items = events(&client, req("m", "q")).await.unwrap();
    assert_eq!(items.len(), 2, "{items:?}");
    assert!(items[0].is_ok());
    assert_eq!(items[1].as_ref().unwrap_err().class, ErrorClass::TimeoutError);
}

#[tokio::test]
async fn slow_but_steady_stream_is_fine() {
    let fake = FakeLlm::start().await;
    fake.push(Reply::text_chunks("abcdef", 6).chunk_delay(Duration::from_millis(100)));
    let client = with_timeout(&fake, Duration::from_millis(400));
    let ev = ok_events(&client, req("m", "q")).await;
    assert_eq!(text_of(&ev), "abcdef");
}

#[tokio::test]
async fn dropping_the_stream_aborts_the_request() {
    let fake = FakeLlm::start().await;
    fake.push(Reply::text_chunks("first second", 2).hang_after(1));
    let client = openai(&fake);
    let mut stream = client.stream(req("m", "q")).await.unwrap();
    let first = stream.next().await.unwrap().unwrap();
    assert_eq!(first, ChatEvent::TextDelta("first ".into()));
    assert_eq!(fake.open_streams(), 1);
    drop(stream);
    assert!(fake.wait_for_disconnects(1, Duration::from_secs(3)).await, "server saw the connection close");
    assert_eq!(fake.open_streams(), 0);
}

#[tokio::test]
async fn dropping_a_stream_that_yielded_nothing_aborts_it() {
    let fake = FakeLlm::start().await;
    fake.push(Reply::hang());
    let client = anthropic(&fake);
    let mut stream = client.stream(req("claude-x", "q")).await.unwrap();
    let pending = tokio::time::timeout(Duration::from_millis(300), stream.next()).await;
    assert!(pending.is_err(), "nothing arrives from a hung provider");
    drop(stream);
    assert!(fake.wait_for_disconnects(1, Duration::from_secs(3)).await);
}

#[tokio::test]
async fn cancellation_via_task_abort() {
    let fake = FakeLlm::start().await;
    fake.push(Reply::hang());
    let client = openai(&fake);
    let task = tokio::spawn(async move {
        let s = client.stream(req("m", "q")).await.unwrap();
        llm::collect(s).await
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    task.abort();
    assert!(fake.wait_for_disconnects(1, Duration::from_secs(3)).await);
}
