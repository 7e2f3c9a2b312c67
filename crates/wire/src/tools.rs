//! Openloop's own API as LLM tools (API.md §10): the 16-tool catalogue, each tool's
//! argument type (its JSON Schema is the tool's parameters), and how arguments map onto
//! the endpoint's path, query and body.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use utoipa::ToSchema;

use crate::artifacts::ArtifactSort;
use crate::legacy::{CreditCategory, ExportDataType, ExportLevel};
use crate::sessions::{ApprovalResponse, Attachment, MessageContent, SessionSort, SessionState};

/// `GET /tools?format=`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ToolFormat {
    #[default]
    Native,
    Openai,
    Anthropic,
    Mcp,
}

impl ToolFormat {
    pub fn parse(s: &str) -> Option<Self> {
        serde_json::from_value(Value::String(s.to_string())).ok()
    }
}

/// `GET /tools` query.
#[derive(Debug, Clone, Default, Serialize, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ToolListQuery {
    /// Default `native`.
    pub format: Option<ToolFormat>,
}

/// `GET /tools` response: items in catalogue order, shaped per `format` (§10.2).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ToolListResponse {
    pub format: ToolFormat,
    #[schema(value_type = Vec<Object>)]
    pub tools: Vec<Value>,
}

/// The HTTP request a tool invocation makes (in-process, as the caller).
#[derive(Debug, Clone, PartialEq)]
pub struct ToolRequest {
    pub method: &'static str,
    /// Relative to `/api/v1`, path segments percent-encoded.
    pub path: String,
    pub query: Vec<(String, String)>,
    pub body: Option<Value>,
}

/// What a tool knows about its caller when it builds the request.
#[derive(Debug, Clone, Default)]
pub struct ToolCaller {
    pub user_id: String,
}

/// An argument error: the argument path and a message.
#[derive(Debug, Clone, PartialEq)]
pub struct ArgError {
    pub param: String,
    pub message: String,
}

/// A tool's arguments: deserialized (and so validated) from the model's JSON.
pub trait ToolArgs: DeserializeOwned + ToSchema {
    fn request(self, caller: &ToolCaller) -> ToolRequest;
}

/// One catalogue entry.
pub struct ToolSpec {
    pub name: &'static str,
    pub title: &'static str,
    /// API.md endpoint id, sent back as `Openloop-Tool-Spec-Id`.
    pub spec_id: &'static str,
    pub method: &'static str,
    /// Endpoint path template relative to `/api/v1`.
    pub path: &'static str,
    pub description: &'static str,
    pub read_only: bool,
    pub destructive: bool,
    pub idempotent: bool,
    parameters: fn() -> Value,
    build: fn(Value, &ToolCaller) -> Result<ToolRequest, ArgError>,
}

const RATE_LIMIT_NOTE: &str =
    " On HTTP 429 wait the `ratelimit-reset` header's seconds (or `Retry-After`) before calling again; the server never retries for you.";

impl ToolSpec {
    /// The parameters' JSON Schema: `{"type": "object", "properties", "required", "additionalProperties": false}`.
    pub fn parameters(&self) -> Value {
        (self.parameters)()
    }

    /// Validates the arguments and builds the request; nothing runs on an error.
    pub fn build(&self, args: Value, caller: &ToolCaller) -> Result<ToolRequest, ArgError> {
        (self.build)(args, caller)
    }

    pub fn full_description(&self) -> String {
        format!("{}{RATE_LIMIT_NOTE}", self.description)
    }

    /// The item of `GET /tools?format=<format>`.
    pub fn render(&self, format: ToolFormat) -> Value {
        let description = self.full_description();
        let params = self.parameters();
        match format {
            ToolFormat::Native => json!({
                "name": self.name, "description": description, "parameters": params,
                "spec_id": self.spec_id, "method": self.method, "path": self.path,
            }),
            ToolFormat::Openai => {
                let mut p = params;
                crate::schema::drop_conditionals(&mut p);
                json!({"type": "function", "function": {"name": self.name, "description": description, "parameters": p}})
            }
            ToolFormat::Anthropic => json!({"name": self.name, "description": description, "input_schema": params}),
            ToolFormat::Mcp => json!({
                "name": self.name, "title": self.title, "description": description, "inputSchema": params,
                "annotations": {
                    "readOnlyHint": self.read_only, "destructiveHint": self.destructive,
                    "idempotentHint": self.idempotent, "openWorldHint": false,
                },
            }),
        }
    }
}

/// Response headers a tool result reports (§10.4 `structuredContent.headers`).
pub const RESULT_HEADERS: [&str; 4] = ["ratelimit-limit", "ratelimit-remaining", "ratelimit-reset", "retry-after"];

/// An MCP `tools/call` result for an endpoint's answer (§10.4): text content with
/// `{status, body}`, `structuredContent` `{status, headers, body}`, `isError` for ≥ 400.
pub fn mcp_call_result(status: u16, headers: Map<String, Value>, body: Value) -> Value {
    let text = json!({"status": status, "body": body}).to_string();
    json!({
        "content": [{"type": "text", "text": text}],
        "structuredContent": {"status": status, "headers": headers, "body": body},
        "isError": status >= 400,
    })
}

/// The catalogue, in order (§10.1).
pub fn catalogue() -> &'static [ToolSpec] {
    CATALOGUE
}

pub fn find(name: &str) -> Option<&'static ToolSpec> {
    CATALOGUE.iter().find(|t| t.name == name)
}

fn parameters_of<T: ToolArgs>() -> Value {
    let mut s = crate::schema::json_schema::<T>();
    crate::schema::drop_nullable(&mut s);
    if let Value::Object(o) = &mut s {
        o.insert("type".into(), json!("object"));
        o.entry("properties").or_insert_with(|| json!({}));
        o.entry("required").or_insert_with(|| json!([]));
        o.insert("additionalProperties".into(), json!(false));
    }
    s
}

fn build_of<T: ToolArgs>(args: Value, caller: &ToolCaller) -> Result<ToolRequest, ArgError> {
    let args = match args {
        Value::Null => Value::Object(Map::new()),
        Value::Object(o) => Value::Object(o.into_iter().filter(|(_, v)| !v.is_null()).collect()),
        other => {
            return Err(ArgError { param: String::new(), message: format!("Tool arguments must be a JSON object, not {}.", crate::schema::json_kind(&other)) })
        }
    };
    let t: T = serde_path_to_error::deserialize(args).map_err(|e| {
        let (param, inner) = crate::schema::error_path(e);
        ArgError { message: format!("Invalid argument{}: {inner}.", if param.is_empty() { String::new() } else { format!(" {param}") }), param }
    })?;
    Ok(t.request(caller))
}

/// Percent-encodes one path segment.
pub fn segment(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string().replace("%2D", "-").replace("%5F", "_").replace("%2E", ".")
}

fn q(out: &mut Vec<(String, String)>, k: &str, v: Option<impl ToString>) {
    if let Some(v) = v {
        out.push((k.to_string(), v.to_string()));
    }
}

fn enum_str<T: Serialize>(v: &T) -> String {
    match serde_json::to_value(v) {
        Ok(Value::String(s)) => s,
        _ => String::new(),
    }
}

/// Page size of list tools (§4).
type PageSize = u8;

// ---- G1 -----------------------------------------------------------------------------

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ListAgentsArgs {
    /// Case-insensitive substring of the agent name.
    pub search: Option<String>,
    /// Only this team's agents (default: your personal agents).
    pub team_id: Option<String>,
    #[schema(minimum = 1, maximum = 100)]
    pub page_size: Option<PageSize>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

impl ToolArgs for ListAgentsArgs {
    fn request(self, _: &ToolCaller) -> ToolRequest {
        let mut query = Vec::new();
        q(&mut query, "search", self.search);
        q(&mut query, "team_id", self.team_id);
        q(&mut query, "page_size", self.page_size);
        q(&mut query, "cursor", self.cursor);
        ToolRequest { method: "GET", path: "/agents".into(), query, body: None }
    }
}

// ---- G3, S4, A2, F2, E2: get by id -------------------------------------------------

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct GetAgentArgs {
    /// The agent id (`agt_…`).
    pub id: String,
}

impl ToolArgs for GetAgentArgs {
    fn request(self, _: &ToolCaller) -> ToolRequest {
        ToolRequest { method: "GET", path: format!("/agents/{}", segment(&self.id)), query: vec![], body: None }
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct GetSessionArgs {
    /// The session id (`sess_…`, also the legacy `interaction_id`).
    pub id: String,
}

impl ToolArgs for GetSessionArgs {
    fn request(self, _: &ToolCaller) -> ToolRequest {
        ToolRequest { method: "GET", path: format!("/sessions/{}", segment(&self.id)), query: vec![], body: None }
    }
}

// ---- S1 ------------------------------------------------------------------------------

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateSessionArgs {
    /// The agent to run (`agt_…`).
    pub agent_id: String,
    /// The first message. Omit it to create an idle session.
    pub input: Option<MessageContent>,
    /// Display name (1–256 characters); default: the agent's name.
    pub name: Option<String>,
    /// Your own id for the session, `^[A-Za-z0-9_-]{1,128}$`.
    pub session_id: Option<String>,
    /// Free-form client metadata, stored with the session.
    pub metadata: Option<Map<String, Value>>,
}

impl ToolArgs for CreateSessionArgs {
    fn request(self, _: &ToolCaller) -> ToolRequest {
        let mut body = Map::new();
        if let Some(i) = self.input {
            body.insert("input".into(), serde_json::to_value(i).unwrap_or(Value::Null));
        }
        put(&mut body, "name", self.name);
        put(&mut body, "session_id", self.session_id);
        if let Some(m) = self.metadata {
            body.insert("metadata".into(), Value::Object(m));
        }
        ToolRequest { method: "POST", path: format!("/agents/{}/sessions", segment(&self.agent_id)), query: vec![], body: Some(Value::Object(body)) }
    }
}

fn put(body: &mut Map<String, Value>, k: &str, v: Option<String>) {
    if let Some(v) = v {
        body.insert(k.into(), Value::String(v));
    }
}

// ---- S3 ------------------------------------------------------------------------------

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ListSessionsArgs {
    pub agent_id: String,
    /// Only sessions in this state.
    pub state: Option<SessionState>,
    /// Case-insensitive substring of the session name or message text.
    pub search: Option<String>,
    pub sort_order: Option<SessionSort>,
    #[schema(minimum = 1, maximum = 100)]
    pub page_size: Option<PageSize>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

impl ToolArgs for ListSessionsArgs {
    fn request(self, _: &ToolCaller) -> ToolRequest {
        let mut query = Vec::new();
        q(&mut query, "state", self.state.as_ref().map(enum_str));
        q(&mut query, "search", self.search);
        q(&mut query, "sort_order", self.sort_order.as_ref().map(enum_str));
        q(&mut query, "page_size", self.page_size);
        q(&mut query, "cursor", self.cursor);
        ToolRequest { method: "GET", path: format!("/agents/{}/sessions", segment(&self.agent_id)), query, body: None }
    }
}

// ---- S7 ------------------------------------------------------------------------------

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SendMessageArgs {
    pub session_id: String,
    pub input: MessageContent,
    /// Files uploaded to this session (at most 10).
    pub attachments: Option<Vec<Attachment>>,
}

impl ToolArgs for SendMessageArgs {
    fn request(self, _: &ToolCaller) -> ToolRequest {
        let mut body = Map::new();
        body.insert("input".into(), serde_json::to_value(self.input).unwrap_or(Value::Null));
        if let Some(a) = self.attachments {
            body.insert("attachments".into(), serde_json::to_value(a).unwrap_or(Value::Null));
        }
        ToolRequest { method: "POST", path: format!("/sessions/{}/messages", segment(&self.session_id)), query: vec![], body: Some(Value::Object(body)) }
    }
}

// ---- S11 -----------------------------------------------------------------------------

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ResolveApprovalsArgs {
    pub session_id: String,
    /// 1–20 decisions, one per `action_request_id` of `pending_approvals`.
    pub approval_responses: Vec<ApprovalResponse>,
}

impl ToolArgs for ResolveApprovalsArgs {
    fn request(self, _: &ToolCaller) -> ToolRequest {
        let body = json!({"approval_responses": self.approval_responses});
        ToolRequest { method: "POST", path: format!("/sessions/{}/approvals", segment(&self.session_id)), query: vec![], body: Some(body) }
    }
}

// ---- S9 ------------------------------------------------------------------------------

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CancelSessionArgs {
    pub session_id: String,
}

impl ToolArgs for CancelSessionArgs {
    fn request(self, _: &ToolCaller) -> ToolRequest {
        ToolRequest { method: "POST", path: format!("/sessions/{}/cancel", segment(&self.session_id)), query: vec![], body: Some(json!({})) }
    }
}

// ---- A1, A2 --------------------------------------------------------------------------

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ListArtifactsArgs {
    pub agent_id: String,
    /// Only this session's artifacts.
    pub session_id: Option<String>,
    /// Case-insensitive substring of the file name.
    pub search_query: Option<String>,
    pub sort_order: Option<ArtifactSort>,
    #[schema(minimum = 1, maximum = 100)]
    pub page_size: Option<PageSize>,
    pub cursor: Option<String>,
}

impl ToolArgs for ListArtifactsArgs {
    fn request(self, _: &ToolCaller) -> ToolRequest {
        let mut query = Vec::new();
        q(&mut query, "session_id", self.session_id);
        q(&mut query, "search_query", self.search_query);
        q(&mut query, "sort_order", self.sort_order.as_ref().map(enum_str));
        q(&mut query, "page_size", self.page_size);
        q(&mut query, "cursor", self.cursor);
        ToolRequest { method: "GET", path: format!("/agents/{}/artifacts", segment(&self.agent_id)), query, body: None }
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ArtifactDownloadArgs {
    /// The artifact id (`art_…`).
    pub id: String,
    /// Default: the current version.
    pub version_id: Option<String>,
}

impl ToolArgs for ArtifactDownloadArgs {
    fn request(self, _: &ToolCaller) -> ToolRequest {
        let mut query = Vec::new();
        q(&mut query, "version_id", self.version_id);
        ToolRequest { method: "GET", path: format!("/artifacts/{}/download", segment(&self.id)), query, body: None }
    }
}

// ---- F1, F2, F4 ----------------------------------------------------------------------

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StartFlowArgs {
    /// The saved flow (`flow_…`).
    pub saved_item_id: String,
    /// Input values by input name (see the flow's inputs).
    #[schema(value_type = Option<Object>)]
    pub inputs: Option<Map<String, Value>>,
    /// Run it in this team (legacy name of `team_id`).
    pub project_id: Option<String>,
}

impl ToolArgs for StartFlowArgs {
    fn request(self, _: &ToolCaller) -> ToolRequest {
        let mut body = Map::new();
        body.insert("saved_item_id".into(), Value::String(self.saved_item_id));
        if let Some(inputs) = self.inputs {
            let list: Vec<Value> = inputs.into_iter().map(|(k, v)| json!({"input_name": k, "value": v})).collect();
            body.insert("pipeline_inputs".into(), Value::Array(list));
        }
        put(&mut body, "project_id", self.project_id);
        ToolRequest { method: "POST", path: "/start_pipeline".into(), query: vec![], body: Some(Value::Object(body)) }
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct GetFlowRunArgs {
    /// The `run_id` returned by create_a_gumloop_flow_run.
    pub id: String,
    pub project_id: Option<String>,
}

impl ToolArgs for GetFlowRunArgs {
    fn request(self, _: &ToolCaller) -> ToolRequest {
        let mut query = vec![("run_id".to_string(), self.id)];
        q(&mut query, "project_id", self.project_id);
        ToolRequest { method: "GET", path: "/get_pl_run".into(), query, body: None }
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ListFlowsArgs {
    /// A team's flows instead of your own (legacy name of `team_id`).
    pub project_id: Option<String>,
}

impl ToolArgs for ListFlowsArgs {
    fn request(self, _: &ToolCaller) -> ToolRequest {
        let mut query = Vec::new();
        q(&mut query, "project_id", self.project_id);
        ToolRequest { method: "GET", path: "/list_saved_items".into(), query, body: None }
    }
}

// ---- E1, E2 --------------------------------------------------------------------------

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ExportDataArgs {
    /// Default `workflows`.
    pub data_type: Option<ExportDataType>,
    /// Columns, in order; each must be valid for the data type.
    pub export_fields: Vec<String>,
    /// ISO 8601 date or date-time.
    pub start_date: String,
    /// ISO 8601 date or date-time, not before `start_date`.
    pub end_date: String,
    pub export_level: Option<ExportLevel>,
    /// Team ids to export.
    pub workspace_ids: Option<Vec<String>>,
    pub include_all_workspaces: Option<bool>,
    pub include_personal_workspaces: Option<bool>,
    /// Workbook ids (`workflows`) or agent ids (`agents`, `agent_interactions`).
    pub entity_ids: Option<Vec<String>>,
    /// `credit_logs` only.
    pub category_filter: Option<Vec<CreditCategory>>,
}

impl ToolArgs for ExportDataArgs {
    fn request(self, caller: &ToolCaller) -> ToolRequest {
        let req = crate::legacy::ExportDataRequest {
            user_id: caller.user_id.clone(),
            data_type: self.data_type,
            export_fields: self.export_fields,
            start_date: self.start_date,
            end_date: self.end_date,
            export_level: self.export_level,
            workspace_ids: self.workspace_ids,
            include_all_workspaces: self.include_all_workspaces,
            include_personal_workspaces: self.include_personal_workspaces,
            entity_ids: self.entity_ids,
            category_filter: self.category_filter,
        };
        let mut body = match serde_json::to_value(req) {
            Ok(Value::Object(o)) => o,
            _ => Map::new(),
        };
        body.retain(|_, v| !v.is_null());
        ToolRequest { method: "POST", path: "/export_data".into(), query: vec![], body: Some(Value::Object(body)) }
    }
}

/// E1's scoping rule as JSON Schema (§10.1): every type but `credit_logs` needs a scope.
fn export_parameters() -> Value {
    let mut s = parameters_of::<ExportDataArgs>();
    s["allOf"] = json!([{
        "if": {"properties": {"data_type": {"not": {"const": "credit_logs"}}}},
        "then": {"anyOf": [
            {"required": ["workspace_ids"], "properties": {"workspace_ids": {"minItems": 1}}},
            {"required": ["include_all_workspaces"], "properties": {"include_all_workspaces": {"const": true}}},
            {"required": ["include_personal_workspaces"], "properties": {"include_personal_workspaces": {"const": true}}},
            {"required": ["entity_ids"], "properties": {"entity_ids": {"minItems": 1}}},
        ]},
    }]);
    s
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct GetExportArgs {
    /// The `data_export_id` returned by create_a_gumloop_export_datum.
    pub id: String,
}

impl ToolArgs for GetExportArgs {
    fn request(self, caller: &ToolCaller) -> ToolRequest {
        let query = vec![("user_id".to_string(), caller.user_id.clone()), ("data_export_id".to_string(), self.id)];
        ToolRequest { method: "GET", path: "/export_status".into(), query, body: None }
    }
}

// ---- M1 ------------------------------------------------------------------------------

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ListModelsArgs {}

impl ToolArgs for ListModelsArgs {
    fn request(self, _: &ToolCaller) -> ToolRequest {
        ToolRequest { method: "GET", path: "/models".into(), query: vec![], body: None }
    }
}

macro_rules! tool {
    ($name:literal, $title:literal, $id:literal, $method:literal, $path:literal, $args:ty, ro = $ro:literal, destructive = $d:literal, idempotent = $i:literal, $desc:expr) => {
        tool!($name, $title, $id, $method, $path, $args, parameters_of::<$args>, ro = $ro, destructive = $d, idempotent = $i, $desc)
    };
    ($name:literal, $title:literal, $id:literal, $method:literal, $path:literal, $args:ty, $params:expr, ro = $ro:literal, destructive = $d:literal, idempotent = $i:literal, $desc:expr) => {
        ToolSpec {
            name: $name,
            title: $title,
            spec_id: $id,
            method: $method,
            path: $path,
            description: $desc,
            read_only: $ro,
            destructive: $d,
            idempotent: $i,
            parameters: $params,
            build: build_of::<$args>,
        }
    };
}

static CATALOGUE: &[ToolSpec] = &[
    tool!("list_all_gumloop_agents", "List agents", "G1", "GET", "/agents", ListAgentsArgs, ro = true, destructive = false, idempotent = true,
        "List the Gumloop agents you can use (your personal agents, or a team's with team_id). Results are paged: pass `next_cursor` from the response as `cursor` to get the next page; `next_cursor: null` means there are no more."),
    tool!("get_single_gumloop_agent_by_id", "Get an agent", "G3", "GET", "/agents/{agent_id}", GetAgentArgs, ro = true, destructive = false, idempotent = true,
        "Get one agent by id: its name, model, system prompt, tools and version. Use its id as agent_id for create_a_gumloop_session."),
    tool!("create_a_gumloop_session", "Start a session", "S1", "POST", "/agents/{agent_id}/sessions", CreateSessionArgs, ro = false, destructive = false, idempotent = false,
        "Start a session with a Gumloop agent. With `input`, the first message is enqueued and the API answers HTTP 202 with session.state `processing` (or `queued`, with queue_position, while the agent is busy): poll get_single_gumloop_session_by_id every 2-5 seconds until the state is completed, failed, cancelled or approval_required. Without `input`, it creates an `idle` session stub and answers HTTP 201: nothing runs until you send the first message with create_a_gumloop_session_message."),
    tool!("list_all_gumloop_sessions", "List sessions", "S3", "GET", "/agents/{agent_id}/sessions", ListSessionsArgs, ro = true, destructive = false, idempotent = true,
        "List an agent's sessions you can read, newest first by default, optionally filtered by state or a search string. Items carry state but no messages: get one with get_single_gumloop_session_by_id. Paged with cursor/next_cursor."),
    tool!("get_single_gumloop_session_by_id", "Get a session", "S4", "GET", "/sessions/{session_id}", GetSessionArgs, ro = true, destructive = false, idempotent = true,
        "Get a session with its full transcript (messages) and state. Use it to poll a running session every 2-5 seconds while state is `processing` or `queued`; stop when it is `completed` (read the last assistant message), `failed` (the last message has the error), `cancelled`, `idle`, or `approval_required`: then `pending_approvals` lists what waits for a decision (answer with create_a_gumloop_session_approval)."),
    tool!("create_a_gumloop_session_message", "Send a message", "S7", "POST", "/sessions/{session_id}/messages", SendMessageArgs, ro = false, destructive = false, idempotent = false,
        "Send a follow-up message to a session. Accepted (HTTP 202, state `processing` or `queued`) when the session is idle, completed, failed, cancelled or approval_required (open approvals are then dismissed). While a run is still `processing` or `queued` the API answers HTTP 409 `interaction_not_in_terminal_state`: poll get_single_gumloop_session_by_id until it finishes, then send again."),
    tool!("create_a_gumloop_session_approval", "Resolve approvals", "S11", "POST", "/sessions/{session_id}/approvals", ResolveApprovalsArgs, ro = false, destructive = false, idempotent = true,
        "Accept or reject what a paused session (state `approval_required`) waits for: one item per `action_request_id` from the session's pending_approvals, with action accept or reject (human_input questions are answered in response.values). When nothing remains open the run resumes (state `processing`): poll get_single_gumloop_session_by_id again. HTTP 409 no_pending_approvals when the session is not waiting."),
    tool!("create_a_gumloop_session_cancellation", "Cancel a session", "S9", "POST", "/sessions/{session_id}/cancel", CancelSessionArgs, ro = false, destructive = true, idempotent = true,
        "Cancel the session's active run (queued, processing or approval_required): the state becomes `cancelled`. A session that is not running is left unchanged. It can receive new messages afterwards."),
    tool!("list_all_gumloop_artifacts", "List artifacts", "A1", "GET", "/agents/{agent_id}/artifacts", ListArtifactsArgs, ro = true, destructive = false, idempotent = true,
        "List the files (artifacts) an agent's sessions produced, optionally only one session's (session_id). Each item has metadata (filename, media_type, size) and a signed `url`: download the file with a plain HTTP GET of that url without any Authorization header; it returns the raw bytes. The url expires after about 15 minutes: list again (or use get_single_gumloop_artifact_download_by_id) for a fresh one."),
    tool!("get_single_gumloop_artifact_download_by_id", "Get an artifact download URL", "A2", "GET", "/artifacts/{artifact_id}/download", ArtifactDownloadArgs, ro = true, destructive = false, idempotent = true,
        "Get a fresh signed `download_url` for an artifact (the current version, or version_id), with its filename, media_type and size. Then fetch the file with a plain HTTP GET of download_url without an Authorization header: the response body is the file's bytes."),
    tool!("create_a_gumloop_flow_run", "Start a flow run", "F1", "POST", "/start_pipeline", StartFlowArgs, ro = false, destructive = false, idempotent = false,
        "Start a run of a saved Gumloop flow (saved_item_id) with input values by name. Returns `run_id`: poll get_single_gumloop_flow_run_by_id every 2-5 seconds until the state is `DONE` (read outputs), FAILED or TERMINATED. list_all_gumloop_flows lists the flows you can run."),
    tool!("get_single_gumloop_flow_run_by_id", "Get a flow run", "F2", "GET", "/get_pl_run", GetFlowRunArgs, ro = true, destructive = false, idempotent = true,
        "Get a flow run's state and log. States: QUEUED, STARTED and `RUNNING` (poll again in 2-5 seconds), `DONE` (the run's `outputs` are set, keyed by output name), `FAILED` (the log ends with the error), TERMINATING and `TERMINATED` (killed)."),
    tool!("list_all_gumloop_flows", "List flows", "F4", "GET", "/list_saved_items", ListFlowsArgs, ro = true, destructive = false, idempotent = true,
        "List the saved flows you own (or a team's, with project_id), with their saved_item_id for create_a_gumloop_flow_run."),
    tool!("create_a_gumloop_export_datum", "Request a data export", "E1", "POST", "/export_data", ExportDataArgs, export_parameters, ro = false, destructive = false, idempotent = false,
        "Request an organization data export (organization admins only) as a CSV, for a date range. Scoping rule: every data_type except `credit_logs` needs at least one scope: a non-empty `workspace_ids`, `include_all_workspaces`: true, `include_personal_workspaces`: true, or a non-empty `entity_ids`; otherwise the API answers HTTP 400 scope_required. For `credit_logs` the scope fields are ignored (the whole organization is exported). Returns data_export_id: check it with get_single_gumloop_data_export_by_id."),
    tool!("get_single_gumloop_data_export_by_id", "Get a data export", "E2", "GET", "/export_status", GetExportArgs, ro = true, destructive = false, idempotent = true,
        "Get a data export's state: `REQUESTED` and `IN_PROGRESS` (check again later), `COMPLETED` (the CSV is ready), `FAILED` (see error_message)."),
    tool!("list_all_gumloop_models", "List models", "M1", "GET", "/models", ListModelsArgs, ro = true, destructive = false, idempotent = true,
        "List the model names agents can use, grouped by provider, with whether each is available on this server."),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn catalogue_has_the_sixteen_tools_in_order() {
        let names: Vec<&str> = catalogue().iter().map(|t| t.name).collect();
        assert_eq!(names.len(), 16);
        assert_eq!(names[0], "list_all_gumloop_agents");
        assert_eq!(names[15], "list_all_gumloop_models");
    }

    #[test]
    fn every_schema_is_a_closed_object() {
        for t in catalogue() {
            let p = t.parameters();
            assert_eq!(p["type"], "object", "{}", t.name);
            assert_eq!(p["additionalProperties"], false, "{}", t.name);
            assert!(p["properties"].is_object() && p["required"].is_array(), "{}: {p}", t.name);
            assert!(!p.to_string().contains("$ref"), "{}: {p}", t.name);
        }
    }

    #[test]
    fn create_session_maps_onto_s1() {
        let t = find("create_a_gumloop_session").unwrap();
        let r = t.build(json!({"agent_id": "agt/1", "input": "hi"}), &ToolCaller::default()).unwrap();
        assert_eq!(r.path, "/agents/agt%2F1/sessions");
        assert_eq!(r.body, Some(json!({"input": "hi"})));
        let e = t.build(json!({"input": "hi"}), &ToolCaller::default()).unwrap_err();
        assert_eq!(e.param, "agent_id");
        let e = t.build(json!({"agent_id": "a", "bogus": 1}), &ToolCaller::default()).unwrap_err();
        assert_eq!(e.param, "bogus");
        let e = t.build(json!({"agent_id": 5}), &ToolCaller::default()).unwrap_err();
        assert_eq!(e.param, "agent_id");
    }

    #[test]
    fn flow_inputs_become_pipeline_inputs() {
        let t = find("create_a_gumloop_flow_run").unwrap();
        let r = t.build(json!({"saved_item_id": "flow_1", "inputs": {"a": "x"}}), &ToolCaller::default()).unwrap();
        assert_eq!(r.body, Some(json!({"saved_item_id": "flow_1", "pipeline_inputs": [{"input_name": "a", "value": "x"}]})));
    }

    #[test]
    fn export_tool_fills_the_acting_user() {
        let t = find("create_a_gumloop_export_datum").unwrap();
        let caller = ToolCaller { user_id: "usr_1".into() };
        let r =
            t.build(json!({"data_type": "credit_logs", "export_fields": ["amount"], "start_date": "2026-01-01", "end_date": "2026-02-01"}), &caller).unwrap();
        let body = r.body.unwrap();
        assert_eq!(body["user_id"], "usr_1");
        assert_eq!(body["data_type"], "credit_logs");
        let p = t.parameters();
        assert!(p["allOf"].is_array());
        assert!(t.render(ToolFormat::Openai)["function"]["parameters"].get("allOf").is_none());
        assert!(t.render(ToolFormat::Mcp)["inputSchema"]["allOf"].is_array());
        assert!(t.render(ToolFormat::Anthropic)["input_schema"]["allOf"].is_array());
    }
}
#[cfg(test)]
mod dump {
    #[test]
    #[ignore]
    fn dump() {
        for t in super::catalogue() {
            println!("{}", serde_json::to_string_pretty(&t.render(super::ToolFormat::Native)).unwrap());
        }
    }
}
