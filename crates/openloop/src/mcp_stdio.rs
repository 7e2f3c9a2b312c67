//! `openloop mcp-stdio`: an MCP server on standard input/output for desktop clients that
//! only launch stdio servers. It forwards to a running Openloop over HTTP with an API key:
//! `tools/list` is `GET /api/v1/tools?format=mcp`, `tools/call` is
//! `POST /api/v1/tools/{name}/invoke` (§10.2, §10.3). Results are shaped exactly like the
//! Streamable HTTP server's (§10.4): `content` is the JSON text of `{status, body}`,
//! `structuredContent` is `{status, headers, body}` with the `ratelimit-*` and
//! `retry-after` response headers, and `isError` is `status >= 400`. A `429` is an
//! `isError` result and is never retried.
//!
//! Error mapping (chosen to match §10.4):
//! - unknown tool (the invoke endpoint answers `404 tool_not_found`) → JSON-RPC error
//!   `-32602` (invalid params), as the HTTP MCP server answers;
//! - the server cannot be reached during a call → an `isError` result whose text names
//!   the URL and what to do (no `structuredContent`, there is no HTTP status);
//! - the server cannot be reached at start, or refuses the key → a message on stderr and
//!   exit code 1 before any MCP traffic (exit code 2 for missing or invalid options).
//!
//! Standard output carries only the protocol; logs go to standard error
//! (`OPENLOOP_LOG` filter, default `warn`). The API key is never printed or logged.

use std::borrow::Cow;
use std::process::ExitCode;
use std::time::Duration;

use clap::Args;
use reqwest::{Method, Url};
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, ContentBlock, Implementation, InitializeResult, ListToolsResult, PaginatedRequestParams,
    ProtocolVersion, ServerCapabilities, ServerConfig, Tool, ToolsCapability,
};
use rmcp::service::RequestContext;
use rmcp::{ErrorData as McpError, RoleServer, ServerHandler, ServiceExt};
use serde_json::{json, Map, Value};

/// Largest response body read back into a tool result (as the HTTP MCP server).
const MAX_RESULT_BYTES: usize = 16 * 1024 * 1024;
/// Protocol versions served (as the HTTP MCP server, §10.4).
const VERSIONS: &[ProtocolVersion] = &[ProtocolVersion::V_2025_03_26, ProtocolVersion::V_2025_06_18];
/// Response headers copied into `structuredContent.headers`.
use wire::tools::RESULT_HEADERS;
const INSTRUCTIONS: &str =
    "Openloop's API as tools: start agent sessions, poll them, send follow-ups, download artifacts through signed URLs, run flows and export data.";

/// `openloop mcp-stdio` options.
#[derive(Args)]
pub struct McpStdioArgs {
    /// Openloop server: an origin (http://host:port) or an origin + /api/v1.
    #[arg(long, env = "OPENLOOP_URL", default_value = "http://127.0.0.1:8765")]
    pub url: String,
    /// API key (falls back to GUMLOOP_ACCESS_TOKEN). Prefer the environment: flags are visible to other local users.
    #[arg(long, env = "OPENLOOP_API_KEY", hide_env_values = true)]
    pub api_key: Option<String>,
    /// Acting user id, sent as x-auth-key (required with a team key).
    #[arg(long, env = "GUMLOOP_USER_ID")]
    pub user_id: Option<String>,
    /// Team scope, sent as the team_id query of every request.
    #[arg(long, env = "GUMLOOP_TEAM_ID")]
    pub team_id: Option<String>,
}

/// The forwarding MCP server. Deliberately not `Debug`: it holds the API key.
#[derive(Clone)]
struct Bridge {
    http: reqwest::Client,
    /// `<origin>/api/v1`, without a trailing slash.
    api: Url,
    key: String,
    user_id: Option<String>,
    team_id: Option<String>,
}

/// One HTTP answer: status, the result headers, and the body as JSON (or a string).
struct Reply {
    status: u16,
    headers: Map<String, Value>,
    body: Value,
}

fn non_empty(s: Option<String>) -> Option<String> {
    s.map(|v| v.trim().to_string()).filter(|v| !v.is_empty())
}

/// `http(s)://host[:port][/prefix][/api/v1][/]` → `http(s)://host[:port][/prefix]/api/v1`.
pub(crate) fn api_base(raw: &str) -> Result<Url, String> {
    let raw = raw.trim();
    let mut url = Url::parse(raw).map_err(|e| format!("--url / OPENLOOP_URL: {raw:?} is not a URL ({e}); give e.g. http://127.0.0.1:8765"))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(format!("--url / OPENLOOP_URL: {raw:?} must start with http:// or https://"));
    }
    if url.query().is_some() || url.fragment().is_some() || !url.username().is_empty() || url.password().is_some() {
        return Err(
            "--url / OPENLOOP_URL must be a plain origin (or origin + /api/v1): no credentials, query or fragment; pass the key with OPENLOOP_API_KEY".into()
        );
    }
    let path = url.path().trim_end_matches('/').to_string();
    let path = if path.ends_with("/api/v1") { path } else { format!("{path}/api/v1") };
    url.set_path(&path);
    Ok(url)
}

/// An error and its sources (`a: b: c`), without repeats.
fn error_chain(err: &(dyn std::error::Error + 'static)) -> String {
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

/// `code: message` of a nested (§3.1) or flat (§3.2) error body, else the body itself.
fn error_text(body: &Value) -> String {
    match body.get("error") {
        Some(Value::Object(e)) => {
            let code = e.get("code").and_then(Value::as_str).unwrap_or("error");
            let message = e.get("message").and_then(Value::as_str).unwrap_or("");
            format!("{code}: {message}")
        }
        Some(Value::String(code)) => match body.get("message").and_then(Value::as_str) {
            Some(m) => format!("{code}: {m}"),
            None => code.clone(),
        },
        _ => {
            let mut s = body.to_string();
            if s.len() > 300 {
                let mut end = 300;
                while !s.is_char_boundary(end) {
                    end -= 1;
                }
                s.truncate(end);
                s.push('…');
            }
            s
        }
    }
}

fn tool_result(status: u16, headers: Map<String, Value>, body: Value) -> CallToolResult {
    let shaped = wire::tools::mcp_call_result(status, headers, body);
    serde_json::from_value::<CallToolResult>(shaped.clone()).unwrap_or_else(|_| CallToolResult::error(vec![ContentBlock::text(shaped.to_string())]))
}

impl Bridge {
    fn new(args: McpStdioArgs) -> Result<Bridge, String> {
        let api = api_base(&args.url)?;
        let key = non_empty(args.api_key)
            .or_else(|| non_empty(std::env::var("GUMLOOP_ACCESS_TOKEN").ok()))
            .ok_or("an API key is required: set OPENLOOP_API_KEY (or GUMLOOP_ACCESS_TOKEN), or pass --api-key; `openloop keys create --user <id>` makes one")?;
        if reqwest::header::HeaderValue::from_str(&format!("Bearer {key}")).is_err() {
            return Err("the API key contains characters not allowed in an HTTP header".into());
        }
        let user_id = non_empty(args.user_id);
        if user_id.as_deref().is_some_and(|u| reqwest::header::HeaderValue::from_str(u).is_err()) {
            return Err("--user-id / GUMLOOP_USER_ID contains characters not allowed in an HTTP header".into());
        }
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .timeout(Duration::from_secs(300))
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("openloop-mcp-stdio/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| format!("cannot build the HTTP client: {}", error_chain(&e)))?;
        Ok(Bridge { http, api, key, user_id, team_id: non_empty(args.team_id) })
    }

    /// `<api>/<segments…>` (each segment percent-encoded) plus the team scope.
    fn endpoint(&self, segments: &[&str], query: &[(&str, &str)]) -> Url {
        let mut url = self.api.clone();
        if let Ok(mut p) = url.path_segments_mut() {
            p.pop_if_empty().extend(segments);
        }
        {
            let mut q = url.query_pairs_mut();
            for (k, v) in query {
                q.append_pair(k, v);
            }
            if let Some(team) = &self.team_id {
                q.append_pair("team_id", team);
            }
        }
        if url.query() == Some("") {
            url.set_query(None);
        }
        url
    }

    /// Sends one request (never retried) and reads the answer.
    async fn send(&self, method: Method, url: Url, body: Option<&Value>) -> Result<Reply, String> {
        let mut req = self.http.request(method, url).bearer_auth(&self.key);
        if let Some(u) = &self.user_id {
            req = req.header("x-auth-key", u);
        }
        if let Some(b) = body {
            req = req.json(b);
        }
        let mut resp = req.send().await.map_err(|e| self.unreachable(e))?;
        let status = resp.status().as_u16();
        let mut headers = Map::new();
        for name in RESULT_HEADERS {
            if let Some(v) = resp.headers().get(name).and_then(|v| v.to_str().ok()) {
                headers.insert(name.to_string(), Value::String(v.to_string()));
            }
        }
        let mut bytes = Vec::new();
        loop {
            match resp.chunk().await {
                Ok(Some(chunk)) => {
                    if bytes.len() + chunk.len() > MAX_RESULT_BYTES {
                        return Err(format!("the response from Openloop at {} is larger than {MAX_RESULT_BYTES} bytes", self.api));
                    }
                    bytes.extend_from_slice(&chunk);
                }
                Ok(None) => break,
                Err(e) => return Err(format!("the response from Openloop at {} broke off: {}", self.api, error_chain(&e.without_url()))),
            }
        }
        let body = serde_json::from_slice::<Value>(&bytes).unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()));
        Ok(Reply { status, headers, body })
    }

    fn unreachable(&self, e: reqwest::Error) -> String {
        let api = &self.api;
        let (timeout, connect) = (e.is_timeout(), e.is_connect());
        let chain = error_chain(&e.without_url());
        if connect {
            format!("cannot connect to Openloop at {api} ({chain}). Is `openloop serve` running? Start it, or point --url / OPENLOOP_URL at the server.")
        } else if timeout {
            format!("Openloop at {api} did not answer in time ({chain}). Check that `openloop serve` is running and healthy there.")
        } else {
            format!("the request to Openloop at {api} failed ({chain}). Check that `openloop serve` is running there and --url / OPENLOOP_URL is right.")
        }
    }

    async fn fetch_tools(&self) -> Result<Reply, String> {
        self.send(Method::GET, self.endpoint(&["tools"], &[("format", "mcp")]), None).await
    }

    /// Checks at start that the server answers and takes the key. A `429` or `5xx` is
    /// only a warning (calls will report it); any other refusal is fatal.
    async fn probe(&self) -> Result<(), String> {
        let r = self.fetch_tools().await?;
        match r.status {
            200 => {
                let n = r.body.get("tools").and_then(Value::as_array).map_or(0, Vec::len);
                tracing::info!(url = %self.api, tools = n, "forwarding MCP over stdio to Openloop");
                Ok(())
            }
            401 => Err(format!(
                "Openloop at {} refused the API key ({}). Check OPENLOOP_API_KEY / --api-key; `openloop keys create --user <id>` makes a key.",
                self.api,
                error_text(&r.body)
            )),
            404 => Err(format!("{} answered 404 for /tools ({}). Is --url / OPENLOOP_URL the origin of an Openloop server?", self.api, error_text(&r.body))),
            s if s == 429 || s >= 500 => {
                tracing::warn!(url = %self.api, status = s, error = %error_text(&r.body), "Openloop is busy or unavailable; continuing");
                Ok(())
            }
            s => Err(format!("Openloop at {} answered {s} to GET /tools ({}).", self.api, error_text(&r.body))),
        }
    }
}

impl ServerHandler for Bridge {
    fn get_info(&self) -> ServerConfig {
        let mut tools = ToolsCapability::default();
        tools.list_changed = Some(false);
        let mut caps = ServerCapabilities::default();
        caps.tools = Some(tools);
        InitializeResult::new(caps)
            .with_protocol_version(ProtocolVersion::V_2025_06_18)
            .with_server_info(Implementation::new("openloop", env!("CARGO_PKG_VERSION")))
            .with_instructions(INSTRUCTIONS)
    }

    fn supported_protocol_versions(&self) -> Cow<'static, [ProtocolVersion]> {
        Cow::Borrowed(VERSIONS)
    }

    async fn list_tools(&self, _request: Option<PaginatedRequestParams>, _context: RequestContext<RoleServer>) -> Result<ListToolsResult, McpError> {
        let r = self.fetch_tools().await.map_err(|m| McpError::internal_error(m, None))?;
        if r.status != 200 {
            let message = format!("Openloop at {} answered {} to GET /tools ({})", self.api, r.status, error_text(&r.body));
            return Err(McpError::internal_error(message, Some(json!({"status": r.status, "headers": r.headers, "body": r.body}))));
        }
        let items = r.body.get("tools").and_then(Value::as_array).cloned().unwrap_or_default();
        let mut tools = Vec::with_capacity(items.len());
        for item in items {
            match serde_json::from_value::<Tool>(item) {
                Ok(t) => tools.push(t),
                Err(e) => tracing::warn!(error = %e, "skipping a tool the server listed in an unexpected shape"),
            }
        }
        let mut result = ListToolsResult::with_all_items(tools);
        result.result_type = None;
        Ok(result)
    }

    async fn call_tool(&self, request: CallToolRequestParams, _context: RequestContext<RoleServer>) -> Result<CallToolResponse, McpError> {
        let name = request.name;
        let unknown = || McpError::invalid_params(format!("Unknown tool: {name:?}"), None);
        if name.is_empty() {
            return Err(unknown());
        }
        let args = Value::Object(request.arguments.unwrap_or_default());
        let url = self.endpoint(&["tools", name.as_ref(), "invoke"], &[]);
        match self.send(Method::POST, url, Some(&args)).await {
            Ok(r) if r.status == 404 && r.body["error"]["code"] == "tool_not_found" => Err(unknown()),
            Ok(r) => {
                tracing::debug!(tool = %name, status = r.status, "tool call");
                Ok(tool_result(r.status, r.headers, r.body).into())
            }
            Err(message) => {
                tracing::warn!(tool = %name, "{message}");
                let mut r = CallToolResult::error(vec![ContentBlock::text(message)]);
                r.result_type = None;
                Ok(r.into())
            }
        }
    }
}

fn init_logging() {
    use tracing_subscriber::EnvFilter;
    let filter = std::env::var("OPENLOOP_LOG").ok().and_then(|f| EnvFilter::try_new(f).ok()).unwrap_or_else(|| EnvFilter::new("warn"));
    let _ = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_ansi(false).try_init();
}

/// Runs the bridge until the client closes standard input.
pub async fn run(args: McpStdioArgs) -> ExitCode {
    init_logging();
    let bridge = match Bridge::new(args) {
        Ok(b) => b,
        Err(e) => {
            eprintln!("openloop mcp-stdio: {e}");
            return ExitCode::from(2);
        }
    };
    if let Err(e) = bridge.probe().await {
        eprintln!("openloop mcp-stdio: {e}");
        return ExitCode::from(1);
    }
    let service = match bridge.serve(rmcp::transport::stdio_pipes()).await {
        Ok(s) => s,
        Err(e) => {
            eprintln!("openloop mcp-stdio: the MCP client did not initialize a session: {e}");
            return ExitCode::from(1);
        }
    };
    match service.waiting().await {
        Ok(reason) => {
            tracing::info!(?reason, "MCP client disconnected");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("openloop mcp-stdio: the MCP service stopped unexpectedly: {e}");
            ExitCode::from(1)
        }
    }
}
