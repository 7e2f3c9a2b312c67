//! MCP servers as a team's connector catalogue (MC1–MC9, the SDK's `mcp.*` group), their
//! registration (an Openloop extension: `POST/PATCH/DELETE /mcp/servers…`) and their
//! attachment to agents (G12–G14). Shapes follow the SDK 0.5.9 models (`McpServer`,
//! `McpTool`, `McpToolCallResult`, `AgentMcpServerResponse`, …).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::ToSchema;

use crate::request::RequestBody;

/// A catalogue entry (SDK `McpServer`). Credentials are never part of it: only the
/// names of the headers that are stored (`header_names`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct McpServerView {
    pub server_id: String,
    pub name: Option<String>,
    /// `http` (Streamable HTTP) or `stdio`.
    #[serde(rename = "type")]
    pub kind: String,
    /// `connected` once the server answered `initialize`; `unknown` when only listed;
    /// `error` when the last contact failed.
    pub status: String,
    pub icon_url: Option<String>,
    pub description: Option<String>,
    /// Openloop has no hosted OAuth: always `""` (credentials are registered headers).
    pub gumloop_auth_url: String,
    /// The Streamable HTTP endpoint (`null` for stdio servers).
    pub mcp_url: Option<String>,
    /// Tools the server offered the last time it was asked (absent when it was not asked).
    pub tool_count: Option<i64>,
    pub allowed_tool_call_ids: Option<Vec<String>>,
    /// Openloop: the team the entry belongs to (`null`: the caller's personal workspace).
    pub team_id: Option<String>,
    /// Openloop: names of the stored headers (values are encrypted and never returned).
    pub header_names: Vec<String>,
    /// Openloop: the command of a stdio server.
    pub command: Option<Vec<String>>,
    pub created_at: String,
    pub updated_at: String,
}

/// MC1.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct McpServersResponse {
    pub servers: Vec<McpServerView>,
}

/// MC2 and the registration routes.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct McpServerResponse {
    pub server: McpServerView,
}

/// One credential set usable with a server (SDK `McpServerAccount`).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct McpServerAccount {
    pub id: String,
    pub label: Option<String>,
    pub is_default: bool,
    pub in_use: bool,
}

/// MC3: Openloop keeps one credential set per server, the registered headers.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct McpServerAccountsResponse {
    pub server_id: String,
    pub accounts: Vec<McpServerAccount>,
}

/// A tool of a server (SDK `McpTool`).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct McpToolView {
    /// `<server_id>/<tool name>`.
    pub tool_call_id: String,
    pub server_id: Option<String>,
    pub server_type: Option<String>,
    pub name: String,
    pub description: Option<String>,
    #[schema(value_type = Object)]
    pub input_schema: Value,
    /// `{"id", "name"}` of the server, and the tool's MCP `annotations` when it has any.
    #[schema(value_type = Object)]
    pub server: Value,
    /// Openloop: the tool's MCP annotations (`readOnlyHint`, …) when present.
    #[schema(value_type = Option<Object>)]
    pub annotations: Option<Value>,
}

/// MC4.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct McpToolsResponse {
    pub tools: Vec<McpToolView>,
    pub server_id: Option<String>,
    pub status: Option<String>,
    pub gumloop_auth_url: Option<String>,
}

/// SDK `McpResource`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct McpResourceView {
    pub uri: String,
    pub name: Option<String>,
    pub title: Option<String>,
    pub description: Option<String>,
    pub mime_type: Option<String>,
    pub size: Option<i64>,
    pub server_id: Option<String>,
}

/// MC5.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct McpResourcesResponse {
    pub resources: Vec<McpResourceView>,
    pub server_id: Option<String>,
    pub status: Option<String>,
    pub gumloop_auth_url: Option<String>,
    pub next_cursor: Option<String>,
}

/// A text or base64 blob content item (SDK `McpResourceContent`).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct McpResourceContent {
    pub uri: Option<String>,
    pub mime_type: Option<String>,
    pub text: Option<String>,
    pub blob: Option<String>,
}

/// MC6.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct McpResourceReadResponse {
    pub server_id: Option<String>,
    pub uri: Option<String>,
    pub contents: Vec<McpResourceContent>,
}

/// SDK `McpPromptArgument`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct McpPromptArgument {
    pub name: String,
    pub description: Option<String>,
    pub required: Option<bool>,
}

/// SDK `McpPrompt`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct McpPromptView {
    pub name: String,
    pub description: Option<String>,
    pub arguments: Vec<McpPromptArgument>,
    pub server_id: Option<String>,
}

/// MC7.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct McpPromptsResponse {
    pub prompts: Vec<McpPromptView>,
    pub server_id: Option<String>,
    pub status: Option<String>,
    pub gumloop_auth_url: Option<String>,
}

/// MC8 body.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct McpGetPromptRequest {
    pub name: String,
    /// String values (MCP prompt arguments are strings; other JSON values are sent as
    /// their JSON text).
    #[serde(default)]
    #[schema(value_type = Object)]
    pub arguments: Map<String, Value>,
    #[serde(default)]
    pub team_id: Option<String>,
}
impl RequestBody for McpGetPromptRequest {}

/// SDK `McpPromptMessage`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct McpPromptMessage {
    pub role: Option<String>,
    #[schema(value_type = Object)]
    pub content: Value,
}

/// MC8.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct McpPromptResponse {
    pub server_id: Option<String>,
    pub name: Option<String>,
    pub description: Option<String>,
    pub messages: Vec<McpPromptMessage>,
}

/// One call of MC9 (SDK `McpToolCallRequest`).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct McpToolCallRequest {
    pub server_id: String,
    pub tool_name: String,
    #[serde(default)]
    #[schema(value_type = Object)]
    pub arguments: Map<String, Value>,
    /// Echoed in the result (default: the call's index).
    #[serde(rename = "ref", default)]
    pub ref_: Option<String>,
    /// An account id from MC3 (`default` is the only one).
    #[serde(default)]
    pub account: Option<String>,
}

/// MC9 body: 1–5 calls, run concurrently.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct McpExecuteRequest {
    pub calls: Vec<McpToolCallRequest>,
    #[serde(default)]
    pub team_id: Option<String>,
}
impl RequestBody for McpExecuteRequest {}

/// One result of MC9 (SDK `McpToolCallResult`): `status` is `success` or `error`;
/// `content` is one string per text content item (other items as their JSON).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct McpToolCallResult {
    #[serde(rename = "ref")]
    pub ref_: String,
    pub server_id: Option<String>,
    pub tool_name: Option<String>,
    pub status: String,
    pub content: Option<Vec<Value>>,
    /// `{"code", "message"}` when `status` is `error`.
    #[schema(value_type = Option<Object>)]
    pub error: Option<Value>,
}

/// MC9 answer: `200` when every call succeeded, `207` otherwise.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct McpExecuteResponse {
    pub results: Vec<McpToolCallResult>,
}

/// Registration of a server (Openloop extension, `POST /mcp/servers`).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct McpServerCreateRequest {
    pub name: String,
    /// The Streamable HTTP endpoint (`http://` or `https://`). Either `url` or `command`.
    #[serde(default)]
    pub url: Option<String>,
    /// A stdio server: program and arguments (only when the server allows stdio).
    #[serde(default)]
    pub command: Option<Vec<String>>,
    /// Caller-chosen id (`[a-z0-9_-]{1,64}`), e.g. a well-known catalogue id such as `gmail`.
    #[serde(default)]
    pub id: Option<String>,
    /// Sent with every request to the server (e.g. `Authorization`); stored encrypted,
    /// never returned.
    #[serde(default)]
    pub headers: Option<BTreeMap<String, String>>,
    /// Environment of a stdio server; stored encrypted, never returned.
    #[serde(default)]
    pub env: Option<BTreeMap<String, String>>,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub icon_url: Option<String>,
    /// Place it in this team (default: the key's team, else your personal workspace).
    #[serde(default)]
    pub team_id: Option<String>,
}
impl RequestBody for McpServerCreateRequest {}

/// `PATCH /mcp/servers/{id}`: only the fields sent change; `headers: null` removes them.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct McpServerUpdateRequest {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub url: Option<String>,
    #[serde(default)]
    pub command: Option<Vec<String>>,
    /// Replaces the stored headers (an empty object removes them).
    #[serde(default)]
    pub headers: Option<BTreeMap<String, String>>,
    #[serde(default)]
    pub env: Option<BTreeMap<String, String>>,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub icon_url: Option<String>,
    #[serde(default)]
    pub team_id: Option<String>,
}
impl RequestBody for McpServerUpdateRequest {}

/// `DELETE /mcp/servers/{id}`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct McpServerDeleteResponse {
    pub server_id: String,
    pub deleted: bool,
}

/// G13 answer (SDK `AgentMcpServerResponse`).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct AgentMcpServerResponse {
    pub agent_id: String,
    /// The agent's `mcp_server` tool entry (credentials never included).
    #[schema(value_type = Option<Object>)]
    pub mcp_server: Option<Value>,
    /// False when the server was already attached with the same settings.
    pub created: bool,
    pub auth_status: Option<String>,
    /// The agent version the change made (the current one when nothing changed).
    pub version: Option<i64>,
}

/// G14 answer.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct AgentMcpServerDetachResponse {
    pub agent_id: String,
    pub server_id: String,
    pub detached: bool,
}

/// G12 answer.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct AgentMcpServersResponse {
    pub agent_id: String,
    #[schema(value_type = Vec<Object>)]
    pub mcp_servers: Vec<Value>,
}
