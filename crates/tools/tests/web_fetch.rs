//! `web_fetch` against real local HTTP servers.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::Router;
use serde_json::{json, Value};
use tokio::net::TcpListener;
use tools::{Limits, SsrfPolicy, Tool, ToolContext, ToolError, WebFetch, BLOCKED_PREFIX};

const PAGE: &str = r#"<!doctype html>
<html><head><title>Test page</title>
<style>.x { color: red }</style>
<script>document.write("<p>injected</p>")</script></head>
<body>
  <h1>Heading</h1>
  <p>First &amp; only   paragraph.</p>
  <ul><li>one</li><li>two</li></ul>
</body></html>"#;

fn ctx() -> ToolContext {
    ToolContext { session_id: "s".into(), run_id: "r".into(), user_id: "u".into() }
}

/// Accepts connections, counts them, never answers.
async fn silent_listener() -> (SocketAddr, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let count = Arc::new(AtomicUsize::new(0));
    let c = count.clone();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            c.fetch_add(1, Ordering::SeqCst);
            held.push(socket);
        }
    });
    (addr, count)
}

/// The test site. `other` is a second local address redirects may point to.
async fn site(other: SocketAddr) -> SocketAddr {
    let big = "a".repeat(3 * 1024 * 1024);
    let router = Router::new()
        .route("/html", get(|| async { ([(header::CONTENT_TYPE, "text/html; charset=utf-8")], PAGE) }))
        .route("/text", get(|| async { ([(header::CONTENT_TYPE, "text/plain")], "plain <b>text</b>\n  kept   as is") }))
        .route("/json", get(|| async { ([(header::CONTENT_TYPE, "application/json")], r#"{"a":1}"#) }))
        .route(
            "/big",
            get(move || {
                let big = big.clone();
                async move { ([(header::CONTENT_TYPE, "text/plain")], big) }
            }),
        )
        .route("/png", get(|| async { ([(header::CONTENT_TYPE, "image/png")], b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR".to_vec()) }))
        .route("/missing", get(|| async { (StatusCode::NOT_FOUND, [(header::CONTENT_TYPE, "text/plain")], "nope") }))
        .route("/headers", get(echo_headers))
        .route("/set-cookie", get(|| async { ([(header::SET_COOKIE, "session=secret; Path=/")], Redirect::to("/headers")) }))
        .route("/to-text", get(|| async { Redirect::to("/text") }))
        .route("/to-metadata", get(|| async { Redirect::temporary("http://169.254.169.254/latest/meta-data/") }))
        .route("/to-private", get(|| async { Redirect::permanent("http://10.0.0.1/") }))
        .route("/to-mapped", get(|| async { Redirect::to("http://[::ffff:127.0.0.1]:8080/") }))
        .route("/to-other", get(move || async move { Redirect::to(&format!("http://127.0.0.1:{}/", other.port())) }))
        .route("/to-file", get(|| async { Redirect::to("file:///etc/passwd") }))
        .route("/loop", get(|| async { Redirect::to("/loop") }));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        axum::serve(listener, router).await.unwrap();
    });
    addr
}

async fn echo_headers(headers: HeaderMap) -> Response {
    let mut lines: Vec<String> = headers.iter().map(|(k, v)| format!("{}: {}", k.as_str(), v.to_str().unwrap_or("?"))).collect();
    lines.sort();
    ([(header::CONTENT_TYPE, "text/plain")], lines.join("\n")).into_response()
}

/// A fetcher whose allowlist names exactly `127.0.0.1:<port>`.
fn allowed(addr: SocketAddr) -> WebFetch {
    WebFetch::new(SsrfPolicy::new(false, &[format!("127.0.0.1:{}", addr.port())]).unwrap())
}

async fn fetch(tool: &WebFetch, url: &str) -> Result<Value, ToolError> {
    tool.call(json!({ "url": url }), &ctx()).await
}

fn assert_blocked(result: Result<Value, ToolError>, contains: &str) {
    let err = result.expect_err("expected an SSRF refusal");
    assert!(err.message.starts_with(&format!("{BLOCKED_PREFIX}: ")), "unexpected message: {}", err.message);
    assert!(err.message.contains(contains), "{:?} should contain {contains:?}", err.message);
}

#[tokio::test]
async fn html_is_converted_to_text() {
    let (other, _) = silent_listener().await;
    let addr = site(other).await;
    let tool = allowed(addr);
    let out = fetch(&tool, &format!("http://127.0.0.1:{}/html", addr.port())).await.unwrap();
    assert_eq!(out["status"], 200);
    assert_eq!(out["content_type"], "text/html; charset=utf-8");
    assert_eq!(out["truncated"], false);
    assert_eq!(out["url"], format!("http://127.0.0.1:{}/html", addr.port()));
    assert_eq!(out["text"], "Test page\n\nHeading\n\nFirst & only paragraph.\n\n- one\n- two");
}

#[tokio::test]
async fn plain_text_and_json_are_returned_as_is() {
    let (other, _) = silent_listener().await;
    let addr = site(other).await;
    let tool = allowed(addr);
    let out = fetch(&tool, &format!("http://127.0.0.1:{}/text", addr.port())).await.unwrap();
    assert_eq!(out["text"], "plain <b>text</b>\n  kept   as is");
    assert_eq!(out["content_type"], "text/plain");
    let out = fetch(&tool, &format!("http://127.0.0.1:{}/json", addr.port())).await.unwrap();
    assert_eq!(out["text"], r#"{"a":1}"#);
}

#[tokio::test]
async fn error_statuses_are_results_not_errors() {
    let (other, _) = silent_listener().await;
    let addr = site(other).await;
    let out = fetch(&allowed(addr), &format!("http://127.0.0.1:{}/missing", addr.port())).await.unwrap();
    assert_eq!(out["status"], 404);
    assert_eq!(out["text"], "nope");
}

#[tokio::test]
async fn body_is_capped_at_2_mib() {
    let (other, _) = silent_listener().await;
    let addr = site(other).await;
    let tool = allowed(addr);
    assert_eq!(tool.limits().max_bytes, 2 * 1024 * 1024);
    let url = format!("http://127.0.0.1:{}/big", addr.port());
    let out = fetch(&tool, &url).await.unwrap();
    assert_eq!(out["truncated"], true);
    assert_eq!(out["text"].as_str().unwrap().len(), 2 * 1024 * 1024);

    // A smaller per-call cap, and a larger one clamped to the limit.
    let out = tool.call(json!({ "url": url, "max_bytes": 10 }), &ctx()).await.unwrap();
    assert_eq!(out["text"], "aaaaaaaaaa");
    assert_eq!(out["truncated"], true);
    let out = tool.call(json!({ "url": url, "max_bytes": 100_000_000u64 }), &ctx()).await.unwrap();
    assert_eq!(out["text"].as_str().unwrap().len(), 2 * 1024 * 1024);

    // Not truncated when the body fits.
    let out = tool.call(json!({ "url": format!("http://127.0.0.1:{}/json", addr.port()), "max_bytes": 7 }), &ctx()).await.unwrap();
    assert_eq!(out["truncated"], false);
}

#[tokio::test]
async fn binary_content_is_refused() {
    let (other, _) = silent_listener().await;
    let addr = site(other).await;
    let err = fetch(&allowed(addr), &format!("http://127.0.0.1:{}/png", addr.port())).await.unwrap_err();
    assert!(err.message.starts_with("unsupported content type image/png"), "{}", err.message);
}

#[tokio::test]
async fn loopback_is_refused_by_default_without_connecting() {
    let (addr, count) = silent_listener().await;
    let strict = WebFetch::new(SsrfPolicy::default());
    assert_blocked(fetch(&strict, &format!("http://127.0.0.1:{}/", addr.port())).await, "");
    // Standard ports: refused for the address itself.
    assert_blocked(fetch(&strict, "http://127.0.0.1/").await, "127.0.0.1 is not a public address (loopback)");
    assert_blocked(fetch(&strict, "http://[::1]:8080/").await, "loopback");
    assert_blocked(fetch(&strict, "http://[::ffff:127.0.0.1]/").await, "loopback");
    assert_blocked(fetch(&strict, "http://localhost:8080/").await, "loopback");
    assert_blocked(fetch(&strict, "http://169.254.169.254/latest/meta-data/").await, "link-local");
    assert_eq!(count.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn allowlisted_host_port_is_reachable() {
    let (other, _) = silent_listener().await;
    let addr = site(other).await;
    let out = fetch(&allowed(addr), &format!("http://127.0.0.1:{}/text", addr.port())).await.unwrap();
    assert_eq!(out["status"], 200);

    // By host name: resolved once, pinned, checked.
    let by_name = WebFetch::new(SsrfPolicy::new(false, &[format!("localhost:{}", addr.port())]).unwrap());
    let out = fetch(&by_name, &format!("http://localhost:{}/text", addr.port())).await.unwrap();
    assert_eq!(out["status"], 200);
    assert_eq!(out["url"], format!("http://localhost:{}/text", addr.port()));
}

#[tokio::test]
async fn port_rule_is_not_lifted_by_allow_private() {
    let (other, _) = silent_listener().await;
    let addr = site(other).await;
    let private_ok = WebFetch::new(SsrfPolicy::new::<&str>(true, &[]).unwrap());
    assert_blocked(fetch(&private_ok, &format!("http://127.0.0.1:{}/text", addr.port())).await, &format!("port {} is not allowed", addr.port()));
    // An allowlist entry for the address without a port does not lift the port rule either.
    let no_port = WebFetch::new(SsrfPolicy::new(false, &["127.0.0.1"]).unwrap());
    assert_blocked(fetch(&no_port, &format!("http://127.0.0.1:{}/text", addr.port())).await, "port");
    // allow_private + a CIDR entry with the port.
    let cidr = WebFetch::new(SsrfPolicy::new(false, &[format!("127.0.0.0/8:{}", addr.port())]).unwrap());
    assert_eq!(fetch(&cidr, &format!("http://127.0.0.1:{}/text", addr.port())).await.unwrap()["status"], 200);
}

#[tokio::test]
async fn redirects_are_followed_and_rechecked() {
    let (other, other_count) = silent_listener().await;
    let addr = site(other).await;
    let tool = allowed(addr);
    let base = format!("http://127.0.0.1:{}", addr.port());

    let out = fetch(&tool, &format!("{base}/to-text")).await.unwrap();
    assert_eq!(out["url"], format!("{base}/text"));
    assert_eq!(out["text"], "plain <b>text</b>\n  kept   as is");

    assert_blocked(fetch(&tool, &format!("{base}/to-metadata")).await, "169.254.169.254 is not a public address (link-local)");
    assert_blocked(fetch(&tool, &format!("{base}/to-private")).await, "10.0.0.1 is not a public address (private (RFC 1918))");
    assert_blocked(fetch(&tool, &format!("{base}/to-mapped")).await, "loopback");
    assert_blocked(fetch(&tool, &format!("{base}/to-file")).await, "scheme \"file\"");
    // Same loopback address, other port: the entry names one port only.
    assert_blocked(fetch(&tool, &format!("{base}/to-other")).await, "port");
    assert_eq!(other_count.load(Ordering::SeqCst), 0, "must not connect");

    let err = fetch(&tool, &format!("{base}/loop")).await.unwrap_err();
    assert_eq!(err.message, "too many redirects (more than 5)");
}

#[tokio::test]
async fn credentials_and_cookies_are_never_sent() {
    let (other, _) = silent_listener().await;
    let addr = site(other).await;
    let tool = allowed(addr);
    let out = fetch(&tool, &format!("http://user:secret@127.0.0.1:{}/headers", addr.port())).await.unwrap();
    let headers = out["text"].as_str().unwrap();
    assert!(headers.contains("user-agent: Openloop-WebFetch/0.1"), "{headers}");
    assert!(!headers.contains("authorization"), "{headers}");
    assert_eq!(out["url"], format!("http://127.0.0.1:{}/headers", addr.port()));

    let out = fetch(&tool, &format!("http://127.0.0.1:{}/set-cookie", addr.port())).await.unwrap();
    let headers = out["text"].as_str().unwrap();
    assert!(!headers.contains("cookie"), "{headers}");
    assert!(!headers.contains("referer"), "{headers}");
}

#[tokio::test]
async fn non_http_schemes_are_refused() {
    let tool = WebFetch::new(SsrfPolicy::default());
    for url in ["file:///etc/passwd", "ftp://example.com/", "gopher://example.com/", "data:text/plain,hi"] {
        assert_blocked(fetch(&tool, url).await, "is not allowed (only http and https)");
    }
}

#[tokio::test]
async fn invalid_arguments_name_the_field() {
    let tool = WebFetch::new(SsrfPolicy::default());
    let cases = [
        (json!({}), "missing field `url`"),
        (json!({ "url": 5 }), "invalid arguments: url: invalid type"),
        (json!({ "url": "http://example.com/", "max_bytes": "lots" }), "invalid arguments: max_bytes: invalid type"),
        (json!({ "url": "http://example.com/", "max_bytes": -1 }), "invalid arguments: max_bytes:"),
        (json!({ "url": "http://example.com/", "max_bytes": 0 }), "invalid arguments: max_bytes: must be at least 1"),
        (json!({ "url": "not a url" }), "invalid arguments: url:"),
        (json!("http://example.com/"), "invalid arguments: invalid type"),
    ];
    for (args, expected) in cases {
        let err = tool.call(args.clone(), &ctx()).await.unwrap_err();
        assert!(err.message.contains(expected), "{args}: {:?} should contain {expected:?}", err.message);
    }
}

#[tokio::test]
async fn total_timeout_applies_to_a_silent_server() {
    let (addr, count) = silent_listener().await;
    let tool = allowed(addr).with_limits(Limits { connect_timeout: Duration::from_secs(1), total_timeout: Duration::from_millis(300), max_bytes: 1024 });
    let started = Instant::now();
    let err = fetch(&tool, &format!("http://127.0.0.1:{}/", addr.port())).await.unwrap_err();
    assert!(err.message.contains("timed out"), "{}", err.message);
    assert!(started.elapsed() < Duration::from_secs(3));
    assert_eq!(count.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn tool_metadata() {
    let tool = WebFetch::new(SsrfPolicy::default());
    assert_eq!(tool.name(), "web_fetch");
    assert!(tool.read_only());
    let params = tool.parameters();
    assert_eq!(params["type"], "object");
    assert_eq!(params["required"], json!(["url"]));
    assert!(params["properties"]["url"].is_object());
    assert!(params["properties"]["max_bytes"].is_object());
    assert!(params.get("$schema").is_none());
}
