//! One conversation with a registered MCP server through `rmcp`: Streamable HTTP under
//! the SSRF policy (DNS pinned to the checked addresses, no redirects, no proxy), or a
//! stdio child process when the operator allows them. Results are handed on as JSON so
//! the rest of the engine does not depend on rmcp's model types.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Once};
use std::time::Duration;

use rmcp::service::{RoleClient, RunningService};
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use rmcp::transport::{StreamableHttpClientTransport, TokioChildProcess};
use rmcp::ServiceExt;
use serde_json::{json, Value};
use tools::SsrfPolicy;

/// How the server is reached.
#[derive(Debug, Clone)]
pub enum Endpoint {
    Http { url: String, headers: BTreeMap<String, String> },
    Stdio { command: Vec<String>, env: BTreeMap<String, String> },
}

/// Connect + initialize.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// One request after initialization (a tool call may take a while).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);
/// Largest JSON answer accepted from a server.
const MAX_RESPONSE_BYTES: usize = 8 * 1024 * 1024;

/// An open session with a server; closed (HTTP `DELETE`, or the child killed) on drop
/// of the last handle via [`McpClient::close`].
pub struct McpClient {
    service: RunningService<RoleClient, ()>,
}

/// A failure talking to a server, for error messages (never contains credentials).
#[derive(Debug, Clone)]
pub struct McpError {
    /// `policy` (SSRF refusal), `unreachable`, `protocol` (the server answered with an
    /// error), `timeout`.
    pub kind: &'static str,
    pub message: String,
}

impl std::fmt::Display for McpError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

fn err(kind: &'static str, message: impl Into<String>) -> McpError {
    McpError { kind, message: message.into() }
}

/// rmcp's reqwest is built without a crypto provider; use ring, as the rest of the tree.
fn install_crypto_provider() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

impl McpClient {
    pub async fn connect(endpoint: &Endpoint, policy: &SsrfPolicy) -> Result<McpClient, McpError> {
        let fut = async {
            match endpoint {
                Endpoint::Http { url, headers } => Self::connect_http(url, headers, policy).await,
                Endpoint::Stdio { command, env } => Self::connect_stdio(command, env).await,
            }
        };
        tokio::time::timeout(CONNECT_TIMEOUT, fut).await.map_err(|_| err("timeout", format!("the MCP server did not initialize within {CONNECT_TIMEOUT:?}")))?
    }

    async fn connect_http(url: &str, headers: &BTreeMap<String, String>, policy: &SsrfPolicy) -> Result<McpClient, McpError> {
        install_crypto_provider();
        let parsed = url::Url::parse(url).map_err(|e| err("policy", format!("invalid MCP server url: {e}")))?;
        let addrs = policy.resolve_all_checked(&parsed).await.map_err(|e| err("policy", e))?;
        let mut default_headers = reqwest_mcp::header::HeaderMap::new();
        for (name, value) in headers {
            let (Ok(n), Ok(v)) = (reqwest_mcp::header::HeaderName::from_bytes(name.as_bytes()), reqwest_mcp::header::HeaderValue::from_str(value)) else {
                return Err(err("policy", format!("stored header {name:?} is not a valid HTTP header")));
            };
            let mut v = v;
            v.set_sensitive(true);
            default_headers.insert(n, v);
        }
        let mut builder = reqwest_mcp::Client::builder()
            .user_agent(tools::USER_AGENT)
            .redirect(reqwest_mcp::redirect::Policy::none())
            .no_proxy()
            .default_headers(default_headers)
            .connect_timeout(CONNECT_TIMEOUT);
        if let Some(url::Host::Domain(domain)) = parsed.host() {
            builder = builder.dns_resolver(Arc::new(Pinned { name: domain.to_string(), addrs }));
        }
        let client = builder.build().map_err(|e| err("unreachable", format!("could not build the HTTP client: {e}")))?;
        let mut config = StreamableHttpClientTransportConfig::with_uri(url.to_string());
        config.max_json_response_size = MAX_RESPONSE_BYTES;
        config.max_sse_event_size = MAX_RESPONSE_BYTES;
        let transport = StreamableHttpClientTransport::with_client(client, config);
        let service = ().serve(transport).await.map_err(|e| err("unreachable", format!("the MCP server at {} did not initialize: {e}", redact(url))))?;
        Ok(McpClient { service })
    }

    async fn connect_stdio(command: &[String], env: &BTreeMap<String, String>) -> Result<McpClient, McpError> {
        let Some((program, args)) = command.split_first() else {
            return Err(err("policy", "the stdio MCP server has an empty command"));
        };
        let mut cmd = tokio::process::Command::new(program);
        cmd.args(args).envs(env).kill_on_drop(true);
        let (transport, _stderr) = TokioChildProcess::builder(cmd)
            .stderr(std::process::Stdio::null())
            .spawn()
            .map_err(|e| err("unreachable", format!("could not start {program:?}: {e}")))?;
        let service = ().serve(transport).await.map_err(|e| err("unreachable", format!("the stdio MCP server {program:?} did not initialize: {e}")))?;
        Ok(McpClient { service })
    }

    /// Ends the session (best effort).
    pub async fn close(self) {
        let _ = tokio::time::timeout(Duration::from_secs(2), self.service.cancel()).await;
    }

    async fn call<T, F>(&self, what: &str, fut: F) -> Result<Value, McpError>
    where
        T: serde::Serialize,
        F: std::future::Future<Output = Result<T, rmcp::ServiceError>>,
    {
        match tokio::time::timeout(REQUEST_TIMEOUT, fut).await {
            Err(_) => Err(err("timeout", format!("{what} timed out after {REQUEST_TIMEOUT:?}"))),
            Ok(Err(e)) => Err(err("protocol", format!("{what} failed: {e}"))),
            Ok(Ok(v)) => serde_json::to_value(v).map_err(|e| err("protocol", format!("{what}: unreadable answer: {e}"))),
        }
    }

    /// `tools/list`, all pages: MCP `Tool` objects as JSON.
    pub async fn list_tools(&self) -> Result<Vec<Value>, McpError> {
        let v = self.call("tools/list", self.service.list_all_tools()).await?;
        Ok(v.as_array().cloned().unwrap_or_default())
    }

    /// `tools/call`: the MCP `CallToolResult` as JSON.
    pub async fn call_tool(&self, name: &str, arguments: serde_json::Map<String, Value>) -> Result<Value, McpError> {
        let params = from_json(json!({"name": name, "arguments": arguments}))?;
        self.call("tools/call", self.service.call_tool(params)).await
    }

    /// `resources/list`, one page.
    pub async fn list_resources(&self, cursor: Option<String>) -> Result<Value, McpError> {
        let params = from_json(json!({"cursor": cursor}))?;
        self.call("resources/list", self.service.list_resources(Some(params))).await
    }

    pub async fn read_resource(&self, uri: &str) -> Result<Value, McpError> {
        let params = from_json(json!({"uri": uri}))?;
        self.call("resources/read", self.service.read_resource(params)).await
    }

    /// `prompts/list`, all pages.
    pub async fn list_prompts(&self) -> Result<Vec<Value>, McpError> {
        let v = self.call("prompts/list", self.service.list_all_prompts()).await?;
        Ok(v.as_array().cloned().unwrap_or_default())
    }

    pub async fn get_prompt(&self, name: &str, arguments: serde_json::Map<String, Value>) -> Result<Value, McpError> {
        let params = from_json(json!({"name": name, "arguments": arguments}))?;
        self.call("prompts/get", self.service.get_prompt(params)).await
    }
}

fn from_json<T: serde::de::DeserializeOwned>(v: Value) -> Result<T, McpError> {
    serde_json::from_value(v).map_err(|e| err("protocol", format!("invalid request: {e}")))
}

/// The URL without credentials or query (for messages).
pub fn redact(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) => {
            let _ = u.set_username("");
            let _ = u.set_password(None);
            u.set_query(None);
            u.to_string()
        }
        Err(_) => "(invalid url)".into(),
    }
}

/// DNS for the client: the policy-checked addresses of the server's host, nothing else.
struct Pinned {
    name: String,
    addrs: Vec<SocketAddr>,
}

impl reqwest_mcp::dns::Resolve for Pinned {
    fn resolve(&self, name: reqwest_mcp::dns::Name) -> reqwest_mcp::dns::Resolving {
        let result: Result<reqwest_mcp::dns::Addrs, Box<dyn std::error::Error + Send + Sync>> = if name.as_str() == self.name {
            Ok(Box::new(self.addrs.clone().into_iter()))
        } else {
            Err(format!("lookup of {} refused: not the checked host", name.as_str()).into())
        };
        Box::pin(std::future::ready(result))
    }
}
