//! §10: Openloop's own API as LLM tools. `GET /tools` lists the catalogue in four
//! formats; `POST /tools/{name}/invoke` validates the arguments and runs the endpoint
//! in-process, through the same router, as the caller (one quota unit in all).

use axum::body::Body;
use axum::extract::{Path, Request, State};
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, Method};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use engine::KeyInfo;
use tower::ServiceExt;
use wire::tools::{ToolCaller, ToolFormat, ToolListResponse, ToolRequest, ToolSpec};
use wire::{ApiError, ErrorCode};

use crate::error::{Nested, V1Result};
use crate::extract::{JsonBody, V1};
use crate::AppState;

pub fn routes() -> Router<AppState> {
    Router::new().route("/tools", get(list)).route("/tools/{tool_name}/invoke", post(invoke)).merge(super::mcp::routes())
}

/// Marks an in-process request whose caller is already authenticated and charged: the
/// auth layer takes this key instead of reading credentials, and charges nothing.
#[derive(Debug, Clone)]
pub struct Preauthorized(pub KeyInfo);

/// Marks a request made by a tool invocation (sessions it creates have `type: "tool"`).
#[derive(Debug, Clone, Copy)]
pub struct ViaTool(pub &'static str);

/// Headers of the endpoint's response that the invocation passes through (§10.3).
pub const PASSED_HEADERS: &[&str] =
    &["ratelimit-limit", "ratelimit-remaining", "ratelimit-reset", "ratelimit", "ratelimit-policy", "retry-after", "idempotent-replayed"];

pub const SPEC_ID_HEADER: &str = "openloop-tool-spec-id";

async fn list(State(_): State<AppState>, v1: V1) -> V1Result<Json<ToolListResponse>> {
    let format = match v1.query.raw("format") {
        None => ToolFormat::Native,
        Some(f) => ToolFormat::parse(f).ok_or_else(|| ApiError::invalid_request("format", "format must be native, openai, anthropic or mcp."))?,
    };
    Ok(Json(ToolListResponse { format, tools: wire::tools::catalogue().iter().map(|t| t.render(format)).collect() }))
}

fn tool_not_found(name: &str) -> ApiError {
    ApiError::new(ErrorCode::ToolNotFound, format!("No tool named {name:?}; GET /api/v1/tools lists them.")).param("tool_name")
}

/// Who invokes: the authenticated key, the acting user and the team scope of the outer
/// request, carried onto the endpoint's request.
#[derive(Debug, Clone)]
pub struct Invoker {
    pub key: KeyInfo,
    /// The outer `x-auth-key` (acting user id), if sent.
    pub acting_header: Option<String>,
    /// The resolved acting user.
    pub user_id: String,
    /// The outer `team_id` (or `project_id`) query, if sent.
    pub team_id: Option<String>,
    pub idempotency_key: Option<HeaderValue>,
}

impl Invoker {
    pub fn from_request(v1: &V1, headers: &HeaderMap) -> Self {
        Invoker {
            key: v1.caller.key.clone(),
            acting_header: headers.get("x-auth-key").and_then(|v| v.to_str().ok()).map(str::to_string),
            user_id: v1.caller.user.id.clone(),
            team_id: v1.query.str("team_id").or_else(|| v1.query.str("project_id")).map(str::to_string),
            idempotency_key: headers.get("idempotency-key").cloned(),
        }
    }
}

async fn invoke(State(st): State<AppState>, v1: V1, Path(name): Path<String>, headers: HeaderMap, JsonBody(args): JsonBody) -> Response {
    let Some(spec) = wire::tools::find(&name) else {
        return Nested(tool_not_found(&name)).into_response();
    };
    let invoker = Invoker::from_request(&v1, &headers);
    match spec.build(args, &ToolCaller { user_id: invoker.user_id.clone() }) {
        Ok(req) => dispatch(&st, &invoker, spec, req).await,
        Err(e) => Nested(ApiError::invalid_request(&e.param, e.message)).into_response(),
    }
}

fn is_legacy(spec: &ToolSpec) -> bool {
    crate::middleware::legacy_family(spec.path).is_some()
}

/// Runs the tool's endpoint in-process and answers exactly its status, body and
/// headers, plus `Openloop-Tool-Spec-Id`.
pub async fn dispatch(st: &AppState, invoker: &Invoker, spec: &'static ToolSpec, req: ToolRequest) -> Response {
    let mut query = req.query;
    // The caller's team scope carries over unless the tool's arguments chose one.
    if let Some(team) = &invoker.team_id {
        let name = if is_legacy(spec) { "project_id" } else { "team_id" };
        if !query.iter().any(|(k, _)| k == name) {
            query.push((name.to_string(), team.clone()));
        }
    }
    let mut uri = format!("/api/v1{}", req.path);
    if !query.is_empty() {
        uri.push('?');
        uri.push_str(&form_urlencoded::Serializer::new(String::new()).extend_pairs(&query).finish());
    }
    let body = match &req.body {
        Some(v) => Body::from(v.to_string()),
        None => Body::empty(),
    };
    let mut inner = match Request::builder().method(Method::from_bytes(req.method.as_bytes()).unwrap_or(Method::GET)).uri(&uri).body(body) {
        Ok(r) => r,
        Err(_) => return Nested(ApiError::invalid_request("", "The tool arguments do not form a valid request path.")).into_response(),
    };
    let h = inner.headers_mut();
    if req.body.is_some() {
        h.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    }
    if let Some(a) = invoker.acting_header.as_deref().and_then(|a| HeaderValue::from_str(a).ok()) {
        h.insert("x-auth-key", a);
    }
    if let Some(k) = &invoker.idempotency_key {
        h.insert("idempotency-key", k.clone());
    }
    inner.extensions_mut().insert(Preauthorized(invoker.key.clone()));
    inner.extensions_mut().insert(ViaTool(spec.spec_id));
    let Some(app) = st.app.get().cloned() else {
        return Nested(ApiError::new(ErrorCode::ServiceUnavailable, "The server is starting; retry in a moment.")).into_response();
    };
    let mut resp = match app.oneshot(inner).await {
        Ok(r) => r,
        Err(never) => match never {},
    };
    // Only the endpoint's own headers that §10.3 names pass through; the outer request's
    // quota headers are set by the auth layer.
    let keep: Vec<(HeaderName, HeaderValue)> = resp
        .headers()
        .iter()
        .filter(|(k, _)| PASSED_HEADERS.contains(&k.as_str()) || *k == header::CONTENT_TYPE || *k == header::CONTENT_DISPOSITION)
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let status = resp.status();
    let body = std::mem::take(resp.body_mut());
    let mut out = Response::new(body);
    *out.status_mut() = status;
    for (k, v) in keep {
        out.headers_mut().insert(k, v);
    }
    out.headers_mut().insert(SPEC_ID_HEADER, HeaderValue::from_static(spec.spec_id));
    out
}

/// Runs catalogue tools for agent runs (`{"type": "openloop_api"}` entries): the same
/// in-process dispatch as `/tools/{name}/invoke`, as the user whose message started the
/// run, unscoped (lookups see the user's personal workspace and teams) and uncharged
/// (runs are bounded by steps and time instead).
pub struct InProcessApi {
    pub state: AppState,
}

#[async_trait::async_trait]
impl engine::api_tools::ApiInvoker for InProcessApi {
    async fn invoke(&self, user_id: &str, spec: &'static ToolSpec, args: serde_json::Value) -> (u16, serde_json::Value) {
        let key = KeyInfo { id: format!("agent-run:{user_id}"), kind: engine::KeyKind::Personal { user_id: user_id.to_string() }, created_by: None };
        let invoker = Invoker { key, acting_header: None, user_id: user_id.to_string(), team_id: None, idempotency_key: None };
        let resp = match spec.build(args, &ToolCaller { user_id: user_id.to_string() }) {
            Ok(req) => dispatch(&self.state, &invoker, spec, req).await,
            Err(e) => Nested(ApiError::invalid_request(&e.param, e.message)).into_response(),
        };
        let status = resp.status().as_u16();
        let body = match axum::body::to_bytes(resp.into_body(), 16 * 1024 * 1024).await {
            Ok(b) => serde_json::from_slice(&b).unwrap_or_else(|_| serde_json::Value::String(String::from_utf8_lossy(&b).into_owned())),
            Err(_) => serde_json::Value::String("the response was too large".into()),
        };
        (status, body)
    }
}
