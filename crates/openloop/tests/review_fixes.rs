//! Defects an outside review found (issue "One typed contract, three faces"), one test
//! each, named after the spec id they concern.

use serde_json::{json, Value};
use testkit::{create_agent, send, Server, ADMIN_KEY};

fn bin() -> &'static std::path::Path {
    env!("CARGO_BIN_EXE_openloop").as_ref()
}

fn origin(s: &Server, path: &str) -> String {
    s.url(path).replacen("/api/v1", "", 1)
}

#[tokio::test]
async fn later_routes_501_message_is_one_sentence() {
    let s = Server::start(bin(), &[]);
    let (st, b, _) = send(s.get(ADMIN_KEY, "/brain/sources")).await;
    assert_eq!(st, 501, "{b}");
    let msg = b["error"]["message"].as_str().unwrap();
    assert!(!msg.contains("release is not implemented"), "garbled: {msg}");
    assert!(msg.contains("BR2") && msg.contains("later Openloop release"), "{msg}");
    assert_eq!(b["error"]["code"], "not_implemented");
}

#[tokio::test]
async fn v1_v2_voice_routes_authenticate_first() {
    let s = Server::start(bin(), &[]);
    let (st, b, h) = send(s.client.post(origin(&s, "/gummies/agt_x/voice/sessions")).json(&json!({}))).await;
    assert_eq!((st, b["error"]["code"].as_str()), (401, Some("missing_api_key")), "{b}");
    assert_eq!(h.get("www-authenticate").and_then(|v| v.to_str().ok()), Some("Bearer"));
    let (st, b, _) = send(s.client.post(origin(&s, "/gummies/agt_x/voice/sessions/vs_1/end")).bearer_auth("olk_wrong")).await;
    assert_eq!((st, b["error"]["code"].as_str()), (401, Some("invalid_api_key")), "{b}");
    let (st, b, _) = send(s.client.post(origin(&s, "/gummies/agt_x/voice/sessions")).bearer_auth(ADMIN_KEY).json(&json!({}))).await;
    assert_eq!((st, b["error"]["code"].as_str()), (404, Some("agent_not_found")), "{b}");
    let agent = create_agent(&s, json!({"name": "Voice"})).await;
    let (st, b, h) = send(s.client.post(origin(&s, &format!("/gummies/{agent}/voice/sessions"))).bearer_auth(ADMIN_KEY).json(&json!({}))).await;
    assert_eq!((st, b["error"]["code"].as_str()), (501, Some("not_implemented")), "{b}");
    assert!(h.contains_key("ratelimit-limit"), "authenticated requests are charged and carry quota headers");
}

#[tokio::test]
async fn o1_o4_oauth_errors_use_the_rfc6749_form() {
    let s = Server::start(bin(), &[]);
    for (method, path) in [("POST", "/oauth/register"), ("GET", "/oauth/authorize"), ("POST", "/oauth/token"), ("POST", "/oauth/revoke")] {
        let req = if method == "GET" { s.client.get(origin(&s, path)) } else { s.client.post(origin(&s, path)).form(&[("grant_type", "authorization_code")]) };
        let (st, b, _) = send(req).await;
        assert_eq!(st, 501, "{path}: {b}");
        assert!(b["error"].is_string(), "{path}: RFC 6749 error is a string: {b}");
        assert!(b["error_description"].as_str().is_some_and(|d| !d.is_empty()), "{path}: {b}");
        assert_eq!(b.as_object().map(|o| o.len()), Some(2), "{path}: only error and error_description: {b}");
    }
}

#[tokio::test]
async fn method_not_allowed_lists_only_the_matched_routes_methods() {
    let s = Server::start(bin(), &[]);
    let (st, b, h) = send(s.delete(ADMIN_KEY, "/agents/evaluation-options")).await;
    assert_eq!(st, 405, "{b}");
    assert_eq!(h.get("allow").and_then(|v| v.to_str().ok()), Some("GET"), "the refused method is not allowed: {b}");
    assert!(!b["error"]["message"].as_str().unwrap().contains("allowed: DELETE"), "{b}");
    let (st, _, h) = send(s.client.put(s.url("/agents")).bearer_auth(ADMIN_KEY)).await;
    assert_eq!(st, 405);
    assert_eq!(h.get("allow").and_then(|v| v.to_str().ok()), Some("GET, POST"));
}

#[tokio::test]
async fn f11_non_string_file_names_are_400() {
    let s = Server::start(bin(), &[]);
    for names in [json!([1, 2]), json!(["a.txt", null]), json!([""])] {
        let (st, b, h) = send(s.post(ADMIN_KEY, "/download_files", json!({"file_names": names}))).await;
        assert_eq!(st, 400, "{names}: {b}");
        assert_ne!(h.get("content-type").and_then(|v| v.to_str().ok()), Some("application/zip"));
        assert_eq!(b["error"], "file_names is required", "{b}");
        assert!(b["metadata"]["param"].as_str().is_some_and(|p| p.starts_with("file_names[")), "{b}");
    }
}

#[tokio::test]
async fn s3_search_matches_the_default_session_name() {
    let s = Server::start(bin(), &[]);
    let agent = create_agent(&s, json!({"name": "Zebra Finder"})).await;
    let (st, created, _) = send(s.post(ADMIN_KEY, &format!("/agents/{agent}/sessions"), json!({}))).await;
    assert_eq!(st, 201);
    assert_eq!(created["session"]["name"], "Zebra Finder", "the API reports the agent's name as the session name");
    let (st, b, _) = send(s.get(ADMIN_KEY, &format!("/agents/{agent}/sessions?search=zebra"))).await;
    assert_eq!(st, 200, "{b}");
    let ids: Vec<&str> = b["sessions"].as_array().unwrap().iter().filter_map(|x| x["id"].as_str()).collect();
    assert_eq!(ids, vec![created["session"]["id"].as_str().unwrap()], "{b}");
    let (_, b, _) = send(s.get(ADMIN_KEY, &format!("/agents/{agent}/sessions?search=giraffe"))).await;
    assert_eq!(b["sessions"], json!([]));
}

#[tokio::test]
async fn g2_abilities_on_create_apply_and_unknown_fields_are_named() {
    let s = Server::start(bin(), &[]);
    let (st, b, _) =
        send(s.post(ADMIN_KEY, "/agents", json!({"name": "Able", "abilities": {"web_fetch": {"enabled": true}, "ask_question": {"enabled": true}}}))).await;
    assert_eq!(st, 201, "{b}");
    let agent = &b["agent"];
    assert_eq!(agent["abilities"]["web_fetch"]["enabled"], true, "{agent}");
    assert_eq!(agent["abilities"]["ask_question"]["enabled"], true, "{agent}");
    let types: Vec<&str> = agent["tools"].as_array().unwrap().iter().filter_map(|t| t["type"].as_str()).collect();
    assert!(types.contains(&"web_fetch") && types.contains(&"human_input"), "{types:?}");
    // A typo is accepted (§1.3) but named, with the likely intended field.
    let (st, b, _) = send(s.post(ADMIN_KEY, "/agents", json!({"name": "x", "modle_name": "gpt-4o"}))).await;
    assert_eq!(st, 201, "{b}");
    let warnings: Vec<&str> = b["warnings"].as_array().map(|w| w.iter().filter_map(Value::as_str).collect()).unwrap_or_default();
    assert!(warnings.iter().any(|w| w.contains("modle_name") && w.contains("model_name")), "{b}");
    let (st, b, _) = send(s.post(ADMIN_KEY, "/agents", json!({"name": "clean", "model_name": "gpt-4o"}))).await;
    assert_eq!(st, 201);
    assert!(b.get("warnings").is_none(), "no warnings when every field is known: {b}");
    // G8's shape is validated on create too.
    let (st, b, _) = send(s.post(ADMIN_KEY, "/agents", json!({"name": "bad", "abilities": {"web_fetch": {"enabled": "yes"}}}))).await;
    assert_eq!((st, b["error"]["param"].as_str()), (400, Some("abilities.web_fetch.enabled")), "{b}");
}

/// Reads one HTTP/1.1 response (headers + Content-Length body) from a raw socket.
async fn read_response(sock: &mut tokio::net::TcpStream) -> Option<String> {
    use tokio::io::AsyncReadExt;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let text = String::from_utf8_lossy(&buf).to_string();
        if let Some(end) = text.find("\r\n\r\n") {
            let len = text[..end]
                .lines()
                .find_map(|l| l.to_ascii_lowercase().strip_prefix("content-length:").map(|v| v.trim().parse::<usize>().unwrap_or(0)))
                .unwrap_or(0);
            if buf.len() >= end + 4 + len {
                return Some(text);
            }
        }
        let n = tokio::time::timeout(std::time::Duration::from_secs(5), sock.read(&mut chunk)).await.ok()?.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

#[tokio::test]
async fn responses_that_ignore_a_small_body_keep_the_connection_usable() {
    use tokio::io::AsyncWriteExt;
    let s = Server::start(bin(), &[]);
    let host = s.url("").trim_start_matches("http://").split('/').next().unwrap().to_string();
    // 405 fallback, 404 fallback, a 501 later route and S9 (whose handler reads no body),
    // each with a body, then a second request on the same connection.
    let agent = create_agent(&s, json!({"name": "Conn"})).await;
    let (_, created, _) = send(s.post(ADMIN_KEY, &format!("/agents/{agent}/sessions"), json!({}))).await;
    let cancel = format!("/api/v1/sessions/{}/cancel", created["session"]["id"].as_str().unwrap());
    for (method, path) in [("PUT", "/api/v1/agents"), ("POST", "/api/v1/no-such-route"), ("POST", "/api/v1/brain/search"), ("POST", cancel.as_str())] {
        let mut sock = tokio::net::TcpStream::connect(&host).await.unwrap();
        let head = format!(
            "{method} {path} HTTP/1.1\r\nhost: {host}\r\nauthorization: Bearer {ADMIN_KEY}\r\ncontent-type: application/json\r\ncontent-length: 2\r\n\r\n"
        );
        // The body arrives after the headers, as it does from clients that write them
        // separately; the server must not answer and then drop the connection.
        sock.write_all(head.as_bytes()).await.unwrap();
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        sock.write_all(b"{}").await.unwrap();
        let r1 = read_response(&mut sock).await.expect("first response");
        assert!(!r1.to_ascii_lowercase().contains("connection: close"), "{method} {path}: {r1}");
        let second = format!("GET /healthz HTTP/1.1\r\nhost: {host}\r\n\r\n");
        sock.write_all(second.as_bytes()).await.unwrap();
        let r2 = read_response(&mut sock).await;
        assert!(r2.as_deref().is_some_and(|r| r.starts_with("HTTP/1.1 200")), "{method} {path}: the connection was dropped after {r1}");
    }
}

#[tokio::test]
async fn large_unread_bodies_announce_connection_close() {
    use tokio::io::AsyncWriteExt;
    let s = Server::start(bin(), &[("OPENLOOP_MAX_BODY_BYTES", "4096")]);
    let host = s.url("").trim_start_matches("http://").split('/').next().unwrap().to_string();
    let big = format!("{{\"name\": \"{}\"}}", "x".repeat(100_000));
    for (method, path) in [("PUT", "/api/v1/agents"), ("POST", "/api/v1/no-such-route"), ("POST", "/api/v1/brain/search"), ("POST", "/api/v1/agents")] {
        let mut sock = tokio::net::TcpStream::connect(&host).await.unwrap();
        let head = format!(
            "{method} {path} HTTP/1.1\r\nhost: {host}\r\nauthorization: Bearer {ADMIN_KEY}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
            big.len()
        );
        sock.write_all(head.as_bytes()).await.unwrap();
        // The server may answer before reading it all; either way the client must learn
        // whether the connection goes on.
        let _ = sock.write_all(big.as_bytes()).await;
        let r1 = read_response(&mut sock).await.expect("a response");
        if r1.to_ascii_lowercase().contains("connection: close") {
            continue;
        }
        let second = format!("GET /healthz HTTP/1.1\r\nhost: {host}\r\n\r\n");
        let ok = sock.write_all(second.as_bytes()).await.is_ok();
        let r2 = if ok { read_response(&mut sock).await } else { None };
        assert!(r2.is_some_and(|r| r.starts_with("HTTP/1.1 200")), "{method} {path}: kept alive without Connection: close, then dropped: {r1}");
    }
}

#[tokio::test]
async fn half_open_connections_are_closed_after_the_header_timeout() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let s = Server::start(bin(), &[("OPENLOOP_HEADER_TIMEOUT_SECS", "1")]);
    let host = s.url("").trim_start_matches("http://").split('/').next().unwrap().to_string();
    let mut socks = Vec::new();
    for _ in 0..50 {
        let mut sock = tokio::net::TcpStream::connect(&host).await.unwrap();
        sock.write_all(b"GET /healthz HTTP/1.1\r\nhost: x\r\n").await.unwrap(); // never finished
        socks.push(sock);
    }
    let started = std::time::Instant::now();
    for mut sock in socks {
        let mut buf = [0u8; 512];
        let n = tokio::time::timeout(std::time::Duration::from_secs(5), sock.read(&mut buf)).await.expect("closed within the timeout").unwrap_or(0);
        // hyper may answer 408 before closing; either way the connection ends.
        let text = String::from_utf8_lossy(&buf[..n]);
        assert!(n == 0 || text.starts_with("HTTP/1.1 408"), "{text}");
    }
    assert!(started.elapsed() < std::time::Duration::from_secs(4), "{:?}", started.elapsed());
    // The server still serves.
    let (st, _, _) = send(s.client.get(s.url("").replace("/api/v1", "/healthz"))).await;
    assert_eq!(st, 200);
}
