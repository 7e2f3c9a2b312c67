//! `openloop mcp-stdio`: the stdio MCP bridge against a real server, spoken to over the
//! child's stdin/stdout as an MCP client would. Every read is bounded by a timeout.

use std::process::Stdio;
use std::time::Duration;

use serde_json::{json, Value};
use testkit::{send, Server, ADMIN_KEY, ADMIN_USER, TEAM_ID, TEAM_KEY};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};

const READ_TIMEOUT: Duration = Duration::from_secs(30);

fn bin() -> &'static std::path::Path {
    env!("CARGO_BIN_EXE_openloop").as_ref()
}

/// `openloop mcp-stdio <args>` with a clean environment plus `env`.
fn command(args: &[&str], env: &[(&str, &str)]) -> Command {
    let mut cmd = Command::new(bin());
    cmd.arg("mcp-stdio").args(args);
    for k in ["OPENLOOP_URL", "OPENLOOP_API_KEY", "GUMLOOP_ACCESS_TOKEN", "GUMLOOP_USER_ID", "GUMLOOP_TEAM_ID", "OPENLOOP_CONFIG", "OPENLOOP_LOG"] {
        cmd.env_remove(k);
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.stdin(Stdio::piped()).stdout(Stdio::piped()).kill_on_drop(true);
    cmd
}

/// A bridge process and the client side of its protocol.
struct Client {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: Lines<BufReader<ChildStdout>>,
    next_id: i64,
}

impl Client {
    fn spawn(args: &[&str], env: &[(&str, &str)]) -> Client {
        let mut child = command(args, env).stderr(Stdio::inherit()).spawn().expect("spawn openloop mcp-stdio");
        let stdin = child.stdin.take();
        let stdout = child.stdout.take().expect("stdout");
        Client { child, stdin, lines: BufReader::new(stdout).lines(), next_id: 1 }
    }

    async fn write(&mut self, msg: Value) {
        let stdin = self.stdin.as_mut().expect("stdin open");
        stdin.write_all(format!("{msg}\n").as_bytes()).await.expect("write to the bridge");
        stdin.flush().await.expect("flush");
    }

    /// The next message on stdout (each line must be JSON).
    async fn read(&mut self) -> Value {
        let line = tokio::time::timeout(READ_TIMEOUT, self.lines.next_line())
            .await
            .expect("the bridge did not answer within 30 s")
            .expect("read stdout")
            .expect("the bridge closed stdout");
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("stdout carries only JSON-RPC, got {line:?}: {e}"))
    }

    /// Sends a request; returns the response with its id (skipping notifications).
    async fn request(&mut self, method: &str, params: Value) -> Value {
        let id = self.next_id;
        self.next_id += 1;
        self.write(json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params})).await;
        loop {
            let msg = self.read().await;
            if msg["id"] == id {
                return msg;
            }
            assert!(msg.get("id").is_none(), "unexpected response {msg}");
        }
    }

    async fn initialize(&mut self) -> Value {
        let r = self.request("initialize", json!({"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "test", "version": "0"}})).await;
        self.write(json!({"jsonrpc": "2.0", "method": "notifications/initialized"})).await;
        r
    }

    async fn call(&mut self, name: &str, arguments: Value) -> Value {
        self.request("tools/call", json!({"name": name, "arguments": arguments})).await
    }

    /// Closes stdin; the bridge must exit on its own, successfully.
    async fn close(mut self) {
        drop(self.stdin.take());
        let status = tokio::time::timeout(READ_TIMEOUT, self.child.wait()).await.expect("the bridge did not exit after stdin closed").expect("wait");
        assert!(status.success(), "exit status {status}");
    }
}

/// A JSON-RPC request to the Streamable HTTP MCP server of `s`, for comparison.
async fn http_mcp(s: &Server, method: &str, params: Value) -> Value {
    let (st, b, _) = send(s.post(ADMIN_KEY, "/tools/mcp", json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params}))).await;
    assert_eq!(st, 200, "{b}");
    b
}

fn text_of(result: &Value) -> Value {
    assert_eq!(result["content"][0]["type"], "text", "{result}");
    serde_json::from_str(result["content"][0]["text"].as_str().expect("text content")).expect("text is JSON")
}

#[tokio::test]
async fn lists_and_calls_tools_like_the_http_mcp_server() {
    let mut s = Server::start(bin(), &[]);
    let mut c = Client::spawn(&["--url", &s.base_url], &[("OPENLOOP_API_KEY", ADMIN_KEY)]);

    let init = c.initialize().await;
    let r = &init["result"];
    assert_eq!(r["protocolVersion"], "2025-06-18", "{init}");
    assert_eq!(r["serverInfo"]["name"], "openloop");
    assert_eq!(r["capabilities"]["tools"]["listChanged"], false);

    let list = c.request("tools/list", json!({})).await;
    let tools = list["result"]["tools"].as_array().unwrap_or_else(|| panic!("{list}"));
    assert_eq!(tools.len(), 16);
    let over_http = http_mcp(&s, "tools/list", json!({})).await;
    assert_eq!(list["result"], over_http["result"], "same tools as the HTTP MCP server");
    assert!(tools.iter().all(|t| t["inputSchema"]["type"] == "object" && t["annotations"].is_object()));

    let models = c.call("list_all_gumloop_models", json!({})).await;
    let r = &models["result"];
    assert_eq!(r["isError"], false, "{models}");
    assert_eq!(r["structuredContent"]["status"], 200);
    for h in ["ratelimit-limit", "ratelimit-remaining", "ratelimit-reset"] {
        assert!(r["structuredContent"]["headers"][h].is_string(), "{h} in {r}");
    }
    assert!(r["structuredContent"]["headers"].get("retry-after").is_none());
    assert_eq!(text_of(r), json!({"status": 200, "body": r["structuredContent"]["body"]}));

    let bad = c.call("create_a_gumloop_session", json!({})).await;
    let r = &bad["result"];
    assert_eq!(r["isError"], true, "{bad}");
    assert_eq!(r["structuredContent"]["status"], 400);
    assert_eq!(r["structuredContent"]["body"]["error"]["param"], "agent_id");
    let over_http = http_mcp(&s, "tools/call", json!({"name": "create_a_gumloop_session", "arguments": {}})).await;
    let h = &over_http["result"];
    assert_eq!((&r["content"], &r["isError"]), (&h["content"], &h["isError"]), "same result as the HTTP MCP server");
    assert_eq!((&r["structuredContent"]["status"], &r["structuredContent"]["body"]), (&h["structuredContent"]["status"], &h["structuredContent"]["body"]));
    let keys = |v: &Value| v["structuredContent"]["headers"].as_object().map(|m| m.keys().cloned().collect::<Vec<_>>());
    assert_eq!(keys(r), keys(h));

    let unknown = c.call("no_such_tool", json!({})).await;
    assert_eq!(unknown["error"]["code"], -32602, "unknown tool is invalid params, as over HTTP: {unknown}");

    let ping = c.request("ping", json!({})).await;
    assert_eq!(ping["result"], json!({}));

    // The server goes away after start: the call reports it instead of failing the session.
    s.kill9();
    let gone = c.call("list_all_gumloop_models", json!({})).await;
    let r = &gone["result"];
    assert_eq!(r["isError"], true, "{gone}");
    let text = r["content"][0]["text"].as_str().unwrap_or_default();
    assert!(text.contains(&s.base_url) && text.contains("openloop serve"), "{text}");
    c.close().await;
}

#[tokio::test]
async fn api_v1_url_team_key_user_and_team_scope() {
    let s = Server::start(bin(), &[]);
    let url = format!("{}/api/v1/", s.base_url);
    let mut c = Client::spawn(&["--url", &url, "--user-id", ADMIN_USER], &[("GUMLOOP_ACCESS_TOKEN", TEAM_KEY), ("GUMLOOP_TEAM_ID", TEAM_ID)]);
    c.initialize().await;
    let agents = c.call("list_all_gumloop_agents", json!({})).await;
    assert_eq!(agents["result"]["structuredContent"]["status"], 200, "{agents}");
    assert_eq!(agents["result"]["isError"], false);
    c.close().await;

    // Without the acting user a team key is refused at start, with the server's reason.
    let out = command(&["--url", &s.base_url], &[("OPENLOOP_API_KEY", TEAM_KEY)]).stderr(Stdio::piped()).spawn().expect("spawn");
    let out = tokio::time::timeout(READ_TIMEOUT, out.wait_with_output()).await.expect("exit").expect("output");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("user_id_required"), "{err}");
    assert!(!err.contains(TEAM_KEY), "the key is never printed");
}

#[tokio::test]
async fn a_429_is_an_error_result_and_not_retried() {
    // One unit for the start-up check, two for calls; the third call is over quota.
    let s = Server::start(bin(), &[("OPENLOOP_RATE_LIMIT_REQUESTS", "3"), ("OPENLOOP_RATE_LIMIT_WINDOW_SECS", "3600")]);
    let mut c = Client::spawn(&[], &[("OPENLOOP_URL", &s.base_url), ("OPENLOOP_API_KEY", ADMIN_KEY)]);
    c.initialize().await;
    for _ in 0..2 {
        let ok = c.call("list_all_gumloop_models", json!({})).await;
        assert_eq!(ok["result"]["structuredContent"]["status"], 200, "{ok}");
    }
    // Retry-After is many minutes here, so an answer within the read timeout was not retried.
    let limited = c.call("list_all_gumloop_models", json!({})).await;
    let r = &limited["result"];
    assert_eq!(r["isError"], true, "{limited}");
    assert_eq!(r["structuredContent"]["status"], 429);
    assert_eq!(r["structuredContent"]["body"]["error"]["code"], "rate_limited");
    let headers = &r["structuredContent"]["headers"];
    assert_eq!(headers["ratelimit-remaining"], "0");
    let retry: u64 = headers["retry-after"].as_str().and_then(|v| v.parse().ok()).unwrap_or_else(|| panic!("retry-after in {headers}"));
    assert!(retry > 60, "{retry}");
    assert_eq!(text_of(r)["status"], 429);
    c.close().await;
}

/// Runs the bridge with a client that sends `initialize`; returns (exit code, stdout, stderr).
async fn run_to_exit(args: &[&str], env: &[(&str, &str)]) -> (Option<i32>, String, String) {
    let mut child = command(args, env).stderr(Stdio::piped()).spawn().expect("spawn");
    if let Some(mut stdin) = child.stdin.take() {
        let init = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "0"}}});
        // The bridge may already have exited; a broken pipe is fine.
        let _ = stdin.write_all(format!("{init}\n").as_bytes()).await;
    }
    let out = tokio::time::timeout(READ_TIMEOUT, child.wait_with_output()).await.expect("the bridge must exit, not hang").expect("output");
    (out.status.code(), String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned())
}

#[tokio::test]
async fn unreachable_server_missing_and_refused_keys_fail_clearly() {
    let port = std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port();
    let url = format!("http://127.0.0.1:{port}");
    let (code, stdout, stderr) = run_to_exit(&["--url", &url], &[("OPENLOOP_API_KEY", ADMIN_KEY)]).await;
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stdout.is_empty(), "nothing on the protocol channel: {stdout}");
    assert!(stderr.contains(&format!("{url}/api/v1")) && stderr.contains("openloop serve"), "{stderr}");
    assert!(!stderr.contains(ADMIN_KEY));

    let (code, _, stderr) = run_to_exit(&["--url", &url], &[]).await;
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("OPENLOOP_API_KEY"), "{stderr}");

    let (code, _, stderr) = run_to_exit(&["--url", "ftp://example.invalid"], &[("OPENLOOP_API_KEY", ADMIN_KEY)]).await;
    assert_eq!(code, Some(2), "{stderr}");

    let s = Server::start(bin(), &[]);
    let wrong = "olk_WrongKey00000000000000000000000000000000000";
    let (code, stdout, stderr) = run_to_exit(&["--url", &s.base_url, "--api-key", wrong], &[]).await;
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stdout.is_empty());
    assert!(stderr.contains("refused the API key") && stderr.contains("invalid_api_key"), "{stderr}");
    assert!(!stderr.contains(wrong), "the key is never printed: {stderr}");
}
