//! MCP servers as a workspace's connector catalogue (MC1–MC9), their registration (the
//! Openloop extension `POST/PATCH/DELETE /mcp/servers…`), and their attachment to
//! agents as tools (G12–G14, `mcp_server` tool entries).
//!
//! An entry belongs to a workspace (a team, or a user's personal workspace) and its id
//! is unique there, so a team can give a server a well-known catalogue id (`gmail`).
//! Headers and environment are encrypted at rest with a key derived from the signing
//! keys and are never returned. Every contact goes through [`client::McpClient`]: the
//! SSRF policy for HTTP servers, and stdio servers only where the operator allows them.

pub mod client;
pub mod tool;

use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::{json, Map, Value};
use store::{AgentRecord, McpServerRecord, Tenant};
use wire::mcp_servers::*;
use wire::{ApiError, ErrorCode};

use crate::auth::{Caller, Scope};
use crate::{db, Engine};
use client::{Endpoint, McpClient, McpError};

/// The agent tool entry type of an attached server (§7.4).
pub const MCP_SERVER_ENTRY: &str = "mcp_server";

/// Settings of an attachment (G13 body) kept on the tool entry.
const ATTACH_FIELDS: &[&str] =
    &["name", "approval_mode", "tool_approval_modes", "restricted_tools", "is_disabled", "metadata", "credential_mode", "credentials_to_use"];

fn scope_of(tenant: &Tenant) -> String {
    match tenant {
        Tenant::Personal(u) => format!("user:{u}"),
        Tenant::Team(t) => format!("team:{t}"),
    }
}

fn not_found(id: &str) -> ApiError {
    ApiError::new(ErrorCode::McpServerNotFound, format!("MCP server {id} does not exist in this workspace; register it with POST /api/v1/mcp/servers."))
        .param("server_id")
}

fn server_error(id: &str, e: &McpError) -> ApiError {
    let hint = if e.kind == "policy" { " Private and local addresses need OPENLOOP_SSRF_ALLOWLIST." } else { "" };
    ApiError::new(ErrorCode::McpServerError, format!("MCP server {id}: {e}.{hint}")).detail("server_id", id).detail("reason", e.kind)
}

fn invalid(param: &str, message: impl Into<String>) -> ApiError {
    ApiError::new(ErrorCode::InvalidRequest, message).param(param)
}

/// The secrets of an entry, as stored (encrypted JSON).
#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
struct Secrets {
    #[serde(default)]
    headers: BTreeMap<String, String>,
    #[serde(default)]
    env: BTreeMap<String, String>,
}

/// Headers the transport sets itself.
const RESERVED_HEADERS: &[&str] =
    &["host", "content-length", "content-type", "accept", "connection", "transfer-encoding", "mcp-session-id", "mcp-protocol-version"];

fn check_headers(headers: &BTreeMap<String, String>, param: &str) -> Result<(), ApiError> {
    if headers.len() > 32 {
        return Err(invalid(param, format!("{param}: at most 32 headers.")));
    }
    for (name, value) in headers {
        let valid_name = !name.is_empty() && name.len() <= 128 && name.bytes().all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b));
        if !valid_name {
            return Err(invalid(&format!("{param}.{name}"), format!("{param}: {name:?} is not a valid header name.")));
        }
        if RESERVED_HEADERS.contains(&name.to_ascii_lowercase().as_str()) {
            return Err(invalid(&format!("{param}.{name}"), format!("{param}: {name} is set by Openloop itself.")));
        }
        if value.len() > 8192 || value.bytes().any(|b| b == b'\r' || b == b'\n' || b == 0) {
            return Err(invalid(&format!("{param}.{name}"), format!("{param}.{name}: the value must be one line of at most 8 KiB.")));
        }
    }
    Ok(())
}

impl Engine {
    /// The workspace a request addresses: `team_id` from the body when sent (the caller
    /// must be in it), else the caller's (query or key) scope.
    fn mcp_scope(&self, caller: &Caller, body_team: Option<&str>) -> Result<(String, Option<String>), ApiError> {
        let tenant = match body_team.map(str::trim).filter(|t| !t.is_empty()) {
            None => caller.home_tenant(),
            Some(t) => {
                if let Scope::Team(s) = &caller.scope {
                    if s != t {
                        return Err(ApiError::new(ErrorCode::TeamMismatch, "team_id names another team than the key's or the query's.").param("team_id"));
                    }
                } else if caller.team_role(t).is_none() {
                    return Err(ApiError::new(ErrorCode::TeamNotFound, format!("Team {t} does not exist or you are not a member.")).param("team_id"));
                }
                Tenant::Team(t.to_string())
            }
        };
        let team = match &tenant {
            Tenant::Team(t) => Some(t.clone()),
            Tenant::Personal(_) => None,
        };
        Ok((scope_of(&tenant), team))
    }

    fn policy(&self) -> tools::SsrfPolicy {
        match self.http.get() {
            Some(h) => h.policy().clone(),
            None => tools::SsrfPolicy::new(self.config.runtime.ssrf_allow_private, &self.config.runtime.ssrf_allowlist).unwrap_or_default(),
        }
    }

    fn secrets_of(&self, rec: &McpServerRecord) -> Secrets {
        let Some(text) = &rec.secrets else { return Secrets::default() };
        match self.signer.decrypt(&format!("mcp:{}/{}", rec.scope, rec.id), text).and_then(|b| serde_json::from_slice(&b).ok()) {
            Some(s) => s,
            None => {
                // The signing key that encrypted them was removed: the server is called
                // without its credentials and will say so; never guess.
                tracing::warn!(server = %rec.id, "stored MCP credentials cannot be decrypted (signing key rotated out?)");
                Secrets::default()
            }
        }
    }

    fn seal_secrets(&self, scope: &str, id: &str, s: &Secrets) -> Option<String> {
        if s.headers.is_empty() && s.env.is_empty() {
            return None;
        }
        let plain = serde_json::to_vec(s).unwrap_or_default();
        Some(self.signer.encrypt(&format!("mcp:{scope}/{id}"), &plain))
    }

    fn endpoint_of(&self, rec: &McpServerRecord) -> Result<Endpoint, McpError> {
        let secrets = self.secrets_of(rec);
        if let Some(url) = rec.config.get("url").and_then(Value::as_str) {
            return Ok(Endpoint::Http { url: url.to_string(), headers: secrets.headers });
        }
        if !self.config.runtime.mcp_allow_stdio {
            return Err(McpError { kind: "policy", message: "stdio MCP servers are disabled on this server (OPENLOOP_MCP_ALLOW_STDIO)".into() });
        }
        let command: Vec<String> = rec.config.get("command").and_then(|c| serde_json::from_value(c.clone()).ok()).unwrap_or_default();
        Ok(Endpoint::Stdio { command, env: secrets.env })
    }

    /// Opens a session with the server, recording whether it answered.
    async fn mcp_connect(&self, rec: &McpServerRecord) -> Result<McpClient, McpError> {
        let endpoint = self.endpoint_of(rec)?;
        let res = McpClient::connect(&endpoint, &self.policy()).await;
        let status = if res.is_ok() { "connected" } else { "error" };
        if rec.status != status {
            if let Err(e) = self.store.set_mcp_server_status(&rec.scope, &rec.id, status, None).await {
                tracing::debug!(error = %e, "could not record the MCP server's status");
            }
        }
        res
    }

    fn mcp_view(&self, rec: &McpServerRecord) -> McpServerView {
        let c = &rec.config;
        let s = |k: &str| c.get(k).and_then(Value::as_str).map(str::to_string);
        let names = |k: &str| c.get(k).and_then(|v| serde_json::from_value::<Vec<String>>(v.clone()).ok()).unwrap_or_default();
        let command: Option<Vec<String>> = c.get("command").and_then(|v| serde_json::from_value(v.clone()).ok());
        McpServerView {
            server_id: rec.id.clone(),
            name: s("name"),
            kind: if command.is_some() { "stdio".into() } else { "http".into() },
            status: rec.status.clone(),
            icon_url: s("icon_url"),
            description: s("description"),
            gumloop_auth_url: String::new(),
            mcp_url: s("url"),
            tool_count: rec.tool_count,
            allowed_tool_call_ids: None,
            team_id: rec.team_id.clone(),
            header_names: names("header_names"),
            command,
            created_at: wire::time::v1(rec.created_at),
            updated_at: wire::time::v1(rec.updated_at),
        }
    }

    async fn mcp_record(&self, caller: &Caller, id: &str, body_team: Option<&str>) -> Result<McpServerRecord, ApiError> {
        let (scope, _) = self.mcp_scope(caller, body_team)?;
        self.store.mcp_server(&scope, id).await.map_err(db)?.ok_or_else(|| not_found(id))
    }

    /// Only the registrant, a team admin or an organization admin changes an entry.
    fn can_change_mcp(&self, caller: &Caller, rec: &McpServerRecord) -> bool {
        rec.owner_user_id == caller.user.id || caller.is_org_admin() || rec.team_id.as_deref().and_then(|t| caller.team_role(t)) == Some("admin")
    }

    fn check_target(&self, url: Option<&str>, command: Option<&[String]>) -> Result<(), ApiError> {
        match (url, command) {
            (Some(_), Some(_)) => Err(invalid("command", "Send either url (Streamable HTTP) or command (stdio), not both.")),
            (None, None) => Err(invalid("url", "url is required: the server's Streamable HTTP endpoint, e.g. https://mcp.example.com/mcp.")),
            (Some(url), None) => {
                let parsed = url::Url::parse(url.trim()).map_err(|e| invalid("url", format!("url is not a valid URL: {e}.")))?;
                if !matches!(parsed.scheme(), "http" | "https") {
                    return Err(invalid("url", "url must be http:// or https:// (Streamable HTTP)."));
                }
                if !parsed.username().is_empty() || parsed.password().is_some() {
                    return Err(invalid("url", "url must not carry credentials; send them as headers (stored encrypted)."));
                }
                self.policy()
                    .check_url(&parsed)
                    .map_err(|e| invalid("url", format!("url: {e}. Private and local servers need OPENLOOP_SSRF_ALLOWLIST (e.g. 127.0.0.1:8000).")))
            }
            (None, Some(cmd)) => {
                if !self.config.runtime.mcp_allow_stdio {
                    return Err(ApiError::new(
                        ErrorCode::PermissionDenied,
                        "stdio MCP servers are disabled on this server; its operator can allow them with OPENLOOP_MCP_ALLOW_STDIO=true.",
                    )
                    .param("command"));
                }
                if cmd.first().is_none_or(|p| p.trim().is_empty()) || cmd.len() > 64 {
                    return Err(invalid("command", "command must be [program, args…] with a non-empty program."));
                }
                Ok(())
            }
        }
    }

    /// `POST /mcp/servers` (Openloop extension).
    pub async fn register_mcp_server(&self, caller: &Caller, req: McpServerCreateRequest) -> Result<McpServerResponse, ApiError> {
        let (scope, team_id) = self.mcp_scope(caller, req.team_id.as_deref())?;
        let name = req.name.trim().to_string();
        if name.is_empty() || name.chars().count() > 200 {
            return Err(invalid("name", "name must be 1–200 characters."));
        }
        let id = match req.id.as_deref().map(str::trim) {
            Some(id) if wire::ids::is_valid_caller_id(id) && id.len() <= 64 => id.to_string(),
            Some(_) => return Err(invalid("id", "id must match ^[A-Za-z0-9_-]{1,64}$.")),
            None => wire::ids::new_id("mcp"),
        };
        let url = req.url.as_deref().map(str::trim).filter(|u| !u.is_empty());
        self.check_target(url, req.command.as_deref())?;
        let headers = req.headers.unwrap_or_default();
        check_headers(&headers, "headers")?;
        let env = req.env.unwrap_or_default();
        check_headers(&env, "env").map_err(|e| e.param("env"))?;
        let now = self.now();
        let mut config = json!({"name": name, "header_names": headers.keys().collect::<Vec<_>>()});
        if let Some(u) = url {
            config["url"] = json!(u);
        }
        if let Some(c) = &req.command {
            config["command"] = json!(c);
        }
        if let Some(d) = req.description.as_deref().filter(|d| !d.is_empty()) {
            config["description"] = json!(d);
        }
        if let Some(i) = req.icon_url.as_deref().filter(|d| !d.is_empty()) {
            config["icon_url"] = json!(i);
        }
        let rec = McpServerRecord {
            secrets: self.seal_secrets(&scope, &id, &Secrets { headers, env }),
            scope,
            id: id.clone(),
            organization_id: caller.user.organization_id.clone(),
            team_id,
            owner_user_id: caller.user.id.clone(),
            config,
            status: "unknown".into(),
            tool_count: None,
            created_at: now,
            updated_at: now,
        };
        if !self.store.create_mcp_server(&rec).await.map_err(db)? {
            return Err(ApiError::new(
                ErrorCode::McpServerAlreadyExists,
                format!("An MCP server with id {id} is already registered in this workspace; PATCH it or pick another id."),
            )
            .param("id"));
        }
        Ok(McpServerResponse { server: self.mcp_view(&rec) })
    }

    /// `PATCH /mcp/servers/{id}` (Openloop extension).
    pub async fn update_mcp_server(&self, caller: &Caller, id: &str, req: McpServerUpdateRequest) -> Result<McpServerResponse, ApiError> {
        let cur = self.mcp_record(caller, id, req.team_id.as_deref()).await?;
        if !self.can_change_mcp(caller, &cur) {
            return Err(ApiError::new(
                ErrorCode::PermissionDenied,
                "Only who registered this MCP server, a team admin or an organization admin can change it.",
            ));
        }
        let mut next = cur.clone();
        let mut secrets = self.secrets_of(&cur);
        if let Some(n) = &req.name {
            let n = n.trim();
            if n.is_empty() || n.chars().count() > 200 {
                return Err(invalid("name", "name must be 1–200 characters."));
            }
            next.config["name"] = json!(n);
        }
        if req.url.is_some() || req.command.is_some() {
            let url = req.url.as_deref().map(str::trim).filter(|u| !u.is_empty());
            self.check_target(url, req.command.as_deref())?;
            if let Some(o) = next.config.as_object_mut() {
                o.remove("url");
                o.remove("command");
            }
            if let Some(u) = url {
                next.config["url"] = json!(u);
            }
            if let Some(c) = &req.command {
                next.config["command"] = json!(c);
            }
        }
        if let Some(h) = req.headers {
            check_headers(&h, "headers")?;
            next.config["header_names"] = json!(h.keys().collect::<Vec<_>>());
            secrets.headers = h;
        }
        if let Some(e) = req.env {
            check_headers(&e, "env")?;
            secrets.env = e;
        }
        for (k, v) in [("description", &req.description), ("icon_url", &req.icon_url)] {
            if let Some(v) = v {
                next.config[k] = json!(v);
            }
        }
        next.secrets = self.seal_secrets(&cur.scope, &cur.id, &secrets);
        next.updated_at = self.now().max(cur.updated_at + 1);
        if !self.store.update_mcp_server(&next, cur.updated_at).await.map_err(db)? {
            return Err(ApiError::new(ErrorCode::AgentVersionConflict, format!("MCP server {id} changed meanwhile; re-read it and retry.")));
        }
        Ok(McpServerResponse { server: self.mcp_view(&next) })
    }

    /// `DELETE /mcp/servers/{id}` (Openloop extension). Agents that name it keep the
    /// entry (G12 shows it) and their runs no longer get its tools.
    pub async fn delete_mcp_server(&self, caller: &Caller, id: &str) -> Result<McpServerDeleteResponse, ApiError> {
        let cur = self.mcp_record(caller, id, None).await?;
        if !self.can_change_mcp(caller, &cur) {
            return Err(ApiError::new(
                ErrorCode::PermissionDenied,
                "Only who registered this MCP server, a team admin or an organization admin can remove it.",
            ));
        }
        let deleted = self.store.delete_mcp_server(&cur.scope, id).await.map_err(db)?;
        Ok(McpServerDeleteResponse { server_id: id.to_string(), deleted })
    }

    /// MC1.
    pub async fn list_mcp_servers(&self, caller: &Caller) -> Result<McpServersResponse, ApiError> {
        let (scope, _) = self.mcp_scope(caller, None)?;
        let recs = self.store.mcp_servers(&scope).await.map_err(db)?;
        Ok(McpServersResponse { servers: recs.iter().map(|r| self.mcp_view(r)).collect() })
    }

    /// MC2: the entry, after asking the server for its tools (status and tool count
    /// are what it answered now).
    pub async fn get_mcp_server(&self, caller: &Caller, id: &str) -> Result<McpServerResponse, ApiError> {
        let mut rec = self.mcp_record(caller, id, None).await?;
        match self.mcp_tools_of(&rec).await {
            Ok(tools) => {
                rec.status = "connected".into();
                rec.tool_count = Some(tools.len() as i64);
                let _ = self.store.set_mcp_server_status(&rec.scope, &rec.id, "connected", rec.tool_count).await;
            }
            Err(_) => rec.status = "error".into(),
        }
        Ok(McpServerResponse { server: self.mcp_view(&rec) })
    }

    /// MC3: Openloop keeps one credential set per entry.
    pub async fn mcp_server_accounts(&self, caller: &Caller, id: &str) -> Result<McpServerAccountsResponse, ApiError> {
        let rec = self.mcp_record(caller, id, None).await?;
        let names: Vec<String> = rec.config.get("header_names").and_then(|v| serde_json::from_value(v.clone()).ok()).unwrap_or_default();
        let label = if names.is_empty() { "No credentials".to_string() } else { format!("Registered headers: {}", names.join(", ")) };
        Ok(McpServerAccountsResponse {
            server_id: rec.id,
            accounts: vec![McpServerAccount { id: "default".into(), label: Some(label), is_default: true, in_use: true }],
        })
    }

    async fn mcp_tools_of(&self, rec: &McpServerRecord) -> Result<Vec<Value>, McpError> {
        let client = self.mcp_connect(rec).await?;
        let tools = client.list_tools().await;
        client.close().await;
        tools
    }

    /// MC4.
    pub async fn mcp_server_tools(&self, caller: &Caller, id: &str) -> Result<McpToolsResponse, ApiError> {
        let rec = self.mcp_record(caller, id, None).await?;
        let tools = self.mcp_tools_of(&rec).await.map_err(|e| server_error(id, &e))?;
        let _ = self.store.set_mcp_server_status(&rec.scope, &rec.id, "connected", Some(tools.len() as i64)).await;
        let views = tools
            .iter()
            .filter_map(|t| {
                let name = t.get("name")?.as_str()?.to_string();
                Some(McpToolView {
                    tool_call_id: format!("{id}/{name}"),
                    server_id: Some(id.to_string()),
                    server_type: Some(MCP_SERVER_ENTRY.into()),
                    description: t.get("description").and_then(Value::as_str).map(str::to_string),
                    input_schema: t.get("inputSchema").cloned().unwrap_or_else(|| json!({"type": "object"})),
                    server: json!({"id": id, "name": rec.config.get("name")}),
                    annotations: t.get("annotations").cloned(),
                    name,
                })
            })
            .collect();
        Ok(McpToolsResponse { tools: views, server_id: Some(id.to_string()), status: Some("connected".into()), gumloop_auth_url: None })
    }

    /// MC5 (one page; `next_cursor` is the server's).
    pub async fn mcp_server_resources(&self, caller: &Caller, id: &str, cursor: Option<String>) -> Result<McpResourcesResponse, ApiError> {
        let rec = self.mcp_record(caller, id, None).await?;
        let client = self.mcp_connect(&rec).await.map_err(|e| server_error(id, &e))?;
        let page = client.list_resources(cursor).await;
        client.close().await;
        let page = page.map_err(|e| server_error(id, &e))?;
        let resources = page
            .get("resources")
            .and_then(Value::as_array)
            .map(|rs| {
                rs.iter()
                    .filter_map(|r| {
                        let s = |k: &str| r.get(k).and_then(Value::as_str).map(str::to_string);
                        Some(McpResourceView {
                            uri: s("uri")?,
                            name: s("name"),
                            title: s("title"),
                            description: s("description"),
                            mime_type: s("mimeType"),
                            size: r.get("size").and_then(Value::as_i64),
                            server_id: Some(id.to_string()),
                        })
                    })
                    .collect()
            })
            .unwrap_or_default();
        Ok(McpResourcesResponse {
            resources,
            server_id: Some(id.to_string()),
            status: Some("connected".into()),
            gumloop_auth_url: None,
            next_cursor: page.get("nextCursor").and_then(Value::as_str).map(str::to_string),
        })
    }

    /// MC6.
    pub async fn mcp_read_resource(&self, caller: &Caller, id: &str, uri: &str) -> Result<McpResourceReadResponse, ApiError> {
        if uri.trim().is_empty() {
            return Err(invalid("uri", "uri is required: a resource URI from GET /mcp/servers/{id}/resources."));
        }
        let rec = self.mcp_record(caller, id, None).await?;
        let client = self.mcp_connect(&rec).await.map_err(|e| server_error(id, &e))?;
        let read = client.read_resource(uri).await;
        client.close().await;
        let read = read.map_err(|e| server_error(id, &e))?;
        let contents = read
            .get("contents")
            .and_then(Value::as_array)
            .map(|cs| {
                cs.iter()
                    .map(|c| {
                        let s = |k: &str| c.get(k).and_then(Value::as_str).map(str::to_string);
                        McpResourceContent { uri: s("uri"), mime_type: s("mimeType"), text: s("text"), blob: s("blob") }
                    })
                    .collect()
            })
            .unwrap_or_default();
        Ok(McpResourceReadResponse { server_id: Some(id.to_string()), uri: Some(uri.to_string()), contents })
    }

    /// MC7.
    pub async fn mcp_server_prompts(&self, caller: &Caller, id: &str) -> Result<McpPromptsResponse, ApiError> {
        let rec = self.mcp_record(caller, id, None).await?;
        let client = self.mcp_connect(&rec).await.map_err(|e| server_error(id, &e))?;
        let prompts = client.list_prompts().await;
        client.close().await;
        let prompts = prompts.map_err(|e| server_error(id, &e))?;
        let prompts = prompts
            .iter()
            .filter_map(|p| {
                Some(McpPromptView {
                    name: p.get("name")?.as_str()?.to_string(),
                    description: p.get("description").and_then(Value::as_str).map(str::to_string),
                    arguments: p.get("arguments").and_then(|a| serde_json::from_value(a.clone()).ok()).unwrap_or_default(),
                    server_id: Some(id.to_string()),
                })
            })
            .collect();
        Ok(McpPromptsResponse { prompts, server_id: Some(id.to_string()), status: Some("connected".into()), gumloop_auth_url: None })
    }

    /// MC8.
    pub async fn mcp_get_prompt(&self, caller: &Caller, id: &str, req: McpGetPromptRequest) -> Result<McpPromptResponse, ApiError> {
        if req.name.trim().is_empty() {
            return Err(invalid("name", "name is required: a prompt name from GET /mcp/servers/{id}/prompts."));
        }
        let rec = self.mcp_record(caller, id, req.team_id.as_deref()).await?;
        // MCP prompt arguments are strings.
        let args: Map<String, Value> = req
            .arguments
            .into_iter()
            .map(|(k, v)| {
                let s = match v {
                    Value::String(s) => s,
                    other => other.to_string(),
                };
                (k, Value::String(s))
            })
            .collect();
        let client = self.mcp_connect(&rec).await.map_err(|e| server_error(id, &e))?;
        let got = client.get_prompt(&req.name, args).await;
        client.close().await;
        let got = got.map_err(|e| server_error(id, &e))?;
        let messages = got
            .get("messages")
            .and_then(Value::as_array)
            .map(|ms| {
                ms.iter()
                    .map(|m| McpPromptMessage {
                        role: m.get("role").and_then(Value::as_str).map(str::to_string),
                        content: m.get("content").cloned().unwrap_or(Value::Null),
                    })
                    .collect()
            })
            .unwrap_or_default();
        Ok(McpPromptResponse {
            server_id: Some(id.to_string()),
            name: Some(req.name),
            description: got.get("description").and_then(Value::as_str).map(str::to_string),
            messages,
        })
    }

    /// MC9: 1–5 calls, concurrently; `true` when all succeeded (200, else 207).
    pub async fn mcp_execute(&self, caller: &Caller, req: McpExecuteRequest) -> Result<(bool, McpExecuteResponse), ApiError> {
        if req.calls.is_empty() {
            return Err(invalid("calls", "calls must hold 1 to 5 tool calls."));
        }
        if req.calls.len() > 5 {
            return Err(invalid("calls", "calls cannot exceed 5 items per request."));
        }
        for (i, c) in req.calls.iter().enumerate() {
            if c.server_id.trim().is_empty() {
                return Err(invalid(&format!("calls[{i}].server_id"), format!("calls[{i}].server_id is required.")));
            }
            if c.tool_name.trim().is_empty() {
                return Err(invalid(&format!("calls[{i}].tool_name"), format!("calls[{i}].tool_name is required.")));
            }
            if let Some(a) = c.account.as_deref().filter(|a| *a != "default") {
                return Err(invalid(
                    &format!("calls[{i}].account"),
                    format!("calls[{i}].account: unknown account {a:?}; Openloop keeps one per server, \"default\"."),
                ));
            }
        }
        let (scope, _) = self.mcp_scope(caller, req.team_id.as_deref())?;
        let runs = req.calls.into_iter().enumerate().map(|(i, call)| {
            let scope = scope.clone();
            async move {
                let ref_ = call.ref_.clone().unwrap_or_else(|| i.to_string());
                let fail = |code: &str, message: String| McpToolCallResult {
                    ref_: ref_.clone(),
                    server_id: Some(call.server_id.clone()),
                    tool_name: Some(call.tool_name.clone()),
                    status: "error".into(),
                    content: None,
                    error: Some(json!({"code": code, "message": message})),
                };
                let rec = match self.store.mcp_server(&scope, &call.server_id).await {
                    Ok(Some(r)) => r,
                    Ok(None) => return fail("mcp_server_not_found", format!("MCP server {} does not exist in this workspace.", call.server_id)),
                    Err(e) => return fail("internal_error", db(e).message),
                };
                match self.mcp_call_tool(&rec, &call.tool_name, call.arguments.clone()).await {
                    Ok(result) => {
                        let is_error = result.get("isError").and_then(Value::as_bool).unwrap_or(false);
                        let content = content_strings(&result);
                        McpToolCallResult {
                            ref_: ref_.clone(),
                            server_id: Some(call.server_id.clone()),
                            tool_name: Some(call.tool_name.clone()),
                            status: if is_error { "error".into() } else { "success".into() },
                            error: is_error
                                .then(|| json!({"code": "tool_error", "message": content.iter().filter_map(Value::as_str).collect::<Vec<_>>().join("\n")})),
                            content: Some(content),
                        }
                    }
                    Err(e) => fail("mcp_server_error", server_error(&call.server_id, &e).message),
                }
            }
        });
        let results = futures::future::join_all(runs).await;
        Ok((results.iter().all(|r| r.status == "success"), McpExecuteResponse { results }))
    }

    /// One `tools/call` on its own session: the MCP `CallToolResult` JSON.
    pub(crate) async fn mcp_call_tool(&self, rec: &McpServerRecord, tool: &str, arguments: Map<String, Value>) -> Result<Value, McpError> {
        let client = self.mcp_connect(rec).await?;
        let res = client.call_tool(tool, arguments).await;
        client.close().await;
        res
    }

    fn agent_scope(agent: &AgentRecord) -> String {
        match &agent.team_id {
            Some(t) => format!("team:{t}"),
            None => format!("user:{}", agent.owner_user_id),
        }
    }

    /// G12: the agent's `mcp_server` entries.
    pub async fn agent_mcp_servers(&self, caller: &Caller, agent_id: &str) -> Result<AgentMcpServersResponse, ApiError> {
        let agent = self.visible_agent(caller, agent_id).await?;
        let entries =
            crate::agents::public_tools(&agent.config.tools).into_iter().filter(|t| t.get("type").and_then(Value::as_str) == Some(MCP_SERVER_ENTRY)).collect();
        Ok(AgentMcpServersResponse { agent_id: agent.id, mcp_servers: entries })
    }

    /// G13: attach (or update the settings of) a server of the agent's workspace.
    pub async fn attach_mcp_server(&self, caller: &Caller, agent_id: &str, server_id: &str, body: Value) -> Result<AgentMcpServerResponse, ApiError> {
        let m = match body {
            Value::Null => Map::new(),
            Value::Object(m) => m,
            other => return Err(invalid("", format!("The request body must be a JSON object, not {}.", wire::schema::json_kind(&other)))),
        };
        let cur = self.visible_agent(caller, agent_id).await?;
        if !self.can_update_agent(caller, &cur) {
            return Err(crate::agents::permission_denied("update"));
        }
        let scope = Self::agent_scope(&cur);
        let rec = self.store.mcp_server(&scope, server_id).await.map_err(db)?.ok_or_else(|| not_found(server_id))?;
        let mut entry = Map::new();
        entry.insert("type".into(), json!(MCP_SERVER_ENTRY));
        entry.insert("server_id".into(), json!(server_id));
        entry.insert("name".into(), rec.config.get("name").cloned().unwrap_or(Value::Null));
        for (k, v) in m {
            if !ATTACH_FIELDS.contains(&k.as_str()) {
                if matches!(k.as_str(), "type" | "server_id" | "secret_id" | "version") {
                    continue;
                }
                return Err(invalid(&k, format!("{k} is not a setting of an attached MCP server; send any of {}.", ATTACH_FIELDS.join(", "))));
            }
            if v.is_null() {
                continue;
            }
            let valid = match k.as_str() {
                "approval_mode" => matches!(v.as_str(), Some("inherit" | "off" | "all" | "write" | "custom")),
                "restricted_tools" => serde_json::from_value::<Vec<String>>(v.clone()).is_ok(),
                "tool_approval_modes" => v.as_object().is_some_and(|o| o.values().all(|m| matches!(m.as_str(), Some("always" | "off" | "write" | "inherit")))),
                "is_disabled" => v.is_boolean(),
                _ => true,
            };
            if !valid {
                let rule = match k.as_str() {
                    "approval_mode" => "must be inherit, off, all, write or custom",
                    "restricted_tools" => "must be a list of tool names",
                    "tool_approval_modes" => "maps tool names to always, off, write or inherit",
                    _ => "must be a boolean",
                };
                return Err(invalid(&k, format!("{k} {rule}.")));
            }
            entry.insert(k, v);
        }
        let entry = Value::Object(entry);
        let mut cfg = cur.config.clone();
        let existing = cfg
            .tools
            .iter()
            .position(|t| t.get("type").and_then(Value::as_str) == Some(MCP_SERVER_ENTRY) && t.get("server_id").and_then(Value::as_str) == Some(server_id));
        let created = existing.is_none();
        match existing {
            Some(i) => cfg.tools[i] = entry.clone(),
            None => cfg.tools.push(entry.clone()),
        }
        let next = self.commit_agent_change(caller, &cur, None, cfg, cur.team_id.clone(), cur.is_active).await?;
        Ok(AgentMcpServerResponse { agent_id: next.id, mcp_server: Some(entry), created, auth_status: Some(rec.status), version: Some(next.version) })
    }

    /// G14 (idempotent).
    pub async fn detach_mcp_server(&self, caller: &Caller, agent_id: &str, server_id: &str) -> Result<AgentMcpServerDetachResponse, ApiError> {
        let cur = self.visible_agent(caller, agent_id).await?;
        if !self.can_update_agent(caller, &cur) {
            return Err(crate::agents::permission_denied("update"));
        }
        let mut cfg = cur.config.clone();
        let before = cfg.tools.len();
        cfg.tools
            .retain(|t| !(t.get("type").and_then(Value::as_str) == Some(MCP_SERVER_ENTRY) && t.get("server_id").and_then(Value::as_str) == Some(server_id)));
        let detached = cfg.tools.len() != before;
        if detached {
            self.commit_agent_change(caller, &cur, None, cfg, cur.team_id.clone(), cur.is_active).await?;
        }
        Ok(AgentMcpServerDetachResponse { agent_id: cur.id, server_id: server_id.to_string(), detached })
    }

    /// The tools of the agent's attached, enabled servers, as offered to the model. A
    /// server that cannot be reached contributes none (logged); the run goes on.
    pub async fn mcp_tools_for(self: &Arc<Self>, agent: &AgentRecord, taken: &[String]) -> Vec<Arc<dyn tools::Tool>> {
        let scope = Self::agent_scope(agent);
        let entries: Vec<&Value> = agent
            .config
            .tools
            .iter()
            .filter(|t| t.get("type").and_then(Value::as_str) == Some(MCP_SERVER_ENTRY) && !t.get("is_disabled").and_then(Value::as_bool).unwrap_or(false))
            .collect();
        // Each server is asked for its tools at once (a run waits for the slowest, not
        // the sum); names are then given in the entries' order, so they are stable.
        let listings = futures::future::join_all(entries.iter().map(|entry| async {
            let server_id = entry.get("server_id").and_then(Value::as_str)?;
            let rec = match self.store.mcp_server(&scope, server_id).await {
                Ok(Some(r)) => r,
                Ok(None) => {
                    tracing::warn!(agent = %agent.id, server = server_id, "attached MCP server is not registered; its tools are not offered");
                    return None;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "could not read an attached MCP server");
                    return None;
                }
            };
            match self.mcp_tools_of(&rec).await {
                Ok(listed) => Some((*entry, rec, listed)),
                Err(e) => {
                    tracing::warn!(agent = %agent.id, server = server_id, error = %e, "attached MCP server did not list its tools; they are not offered this run");
                    None
                }
            }
        }))
        .await;
        let mut names: Vec<String> = taken.to_vec();
        let mut out: Vec<Arc<dyn tools::Tool>> = Vec::new();
        for (entry, rec, listed) in listings.into_iter().flatten() {
            let restricted: Option<Vec<String>> =
                entry.get("restricted_tools").and_then(|v| serde_json::from_value(v.clone()).ok()).filter(|v: &Vec<String>| !v.is_empty());
            for t in listed {
                let Some(raw) = t.get("name").and_then(Value::as_str) else { continue };
                if restricted.as_ref().is_some_and(|r| !r.iter().any(|n| n == raw)) {
                    continue;
                }
                let offered = tool::offered_name(&rec.id, raw, &names);
                names.push(offered.clone());
                out.push(Arc::new(tool::McpTool::new(self.clone(), rec.clone(), offered, &t)));
            }
        }
        out
    }
}

/// `content` of a `CallToolResult` as the SDK's `McpToolCallResult.content`: one string
/// per text item, other items as their JSON.
pub(crate) fn content_strings(result: &Value) -> Vec<Value> {
    result
        .get("content")
        .and_then(Value::as_array)
        .map(|items| {
            items
                .iter()
                .map(|c| match (c.get("type").and_then(Value::as_str), c.get("text").and_then(Value::as_str)) {
                    (Some("text"), Some(t)) => Value::String(t.to_string()),
                    _ => c.clone(),
                })
                .collect()
        })
        .unwrap_or_default()
}
