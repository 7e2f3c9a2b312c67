//! §10.4: Openloop's MCP server over Streamable HTTP. Each `POST` carries one JSON-RPC
//! message and gets one `application/json` answer (no server-initiated streams, so
//! `GET` is 405). The protocol shapes are `rmcp`'s; the transport is this handler,
//! because rmcp's Streamable HTTP service keeps its sessions in process memory and
//! answers stateful sessions with SSE, where §10.4 wants JSON and sessions any replica
//! can serve (they live in the store).

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Extension, Json, Router};
use rmcp::model::{ErrorCode as RpcCode, Implementation, InitializeResult, ListToolsResult, ProtocolVersion, ServerCapabilities, Tool, ToolsCapability};
use serde_json::{json, Map, Value};
use wire::tools::{ToolCaller, ToolFormat};
use wire::{ApiError, ErrorCode};

use super::tools::{dispatch, Invoker, PASSED_HEADERS};
use crate::error::Nested;
use crate::extract::V1;
use crate::middleware::RateInfo;
use crate::AppState;

pub const SESSION_HEADER: &str = "mcp-session-id";
const VERSIONS: [&str; 2] = ["2025-06-18", "2025-03-26"];
/// Largest endpoint body read back into a tool result.
const MAX_RESULT_BYTES: usize = 16 * 1024 * 1024;

pub fn routes() -> Router<AppState> {
    Router::new().route("/tools/mcp", post(message).delete(end_session))
}

fn rpc_error(id: Value, code: RpcCode, message: impl Into<String>) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "error": {"code": code.0, "message": message.into()}})
}

fn rpc_result(id: Value, result: impl serde::Serialize) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "result": result})
}

fn json_response(status: StatusCode, body: Value) -> Response {
    (status, Json(body)).into_response()
}

fn origin_refused(st: &AppState, headers: &HeaderMap) -> Option<Response> {
    let origin = headers.get(header::ORIGIN)?.to_str().unwrap_or("");
    if st.config.cors_origins.iter().any(|o| o == origin) {
        return None;
    }
    Some(
        Nested(ApiError::new(ErrorCode::PermissionDenied, format!("Origin {origin:?} is not allowed; add it to OPENLOOP_CORS_ORIGINS.")).param("Origin"))
            .into_response(),
    )
}

async fn message(State(st): State<AppState>, v1: V1, rate: Option<Extension<RateInfo>>, headers: HeaderMap, body: Bytes) -> Response {
    if let Some(r) = origin_refused(&st, &headers) {
        return r;
    }
    let msg: Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(e) => return json_response(StatusCode::BAD_REQUEST, rpc_error(Value::Null, RpcCode::PARSE_ERROR, format!("Parse error: {e}"))),
    };
    let Some(obj) = msg.as_object() else {
        return json_response(
            StatusCode::BAD_REQUEST,
            rpc_error(Value::Null, RpcCode::INVALID_REQUEST, "Send one JSON-RPC 2.0 message per request (batches are not supported)."),
        );
    };
    let id = obj.get("id").cloned();
    let method = obj.get("method").and_then(Value::as_str);
    if obj.get("jsonrpc").and_then(Value::as_str) != Some("2.0") {
        return json_response(StatusCode::BAD_REQUEST, rpc_error(id.unwrap_or(Value::Null), RpcCode::INVALID_REQUEST, "jsonrpc must be \"2.0\"."));
    }
    // Notifications and responses need no answer.
    let (Some(id), Some(method)) = (id, method) else {
        return StatusCode::ACCEPTED.into_response();
    };
    let over_quota = rate.as_ref().is_some_and(|r| !r.0 .0.allowed);
    if method != "initialize" {
        if let Some(sid) = headers.get(SESSION_HEADER).and_then(|v| v.to_str().ok()) {
            match st.engine.mcp_session(&v1.caller.key, sid).await {
                Ok(Some(_)) => {}
                Ok(None) => {
                    return json_response(
                        StatusCode::NOT_FOUND,
                        rpc_error(id, RpcCode::INVALID_REQUEST, "Unknown or ended Mcp-Session-Id; initialize a new session."),
                    )
                }
                Err(e) => return Nested(e).into_response(),
            }
        }
    }
    if over_quota && method != "tools/call" {
        // Everything but a tool call is refused like any other request over quota.
        if let Some(Extension(r)) = &rate {
            return Nested(r.0.error()).into_response();
        }
    }
    let params = obj.get("params").cloned().unwrap_or(Value::Null);
    match method {
        "initialize" => initialize(&st, &v1, id, &params).await,
        "ping" => json_response(StatusCode::OK, rpc_result(id, json!({}))),
        "tools/list" => json_response(StatusCode::OK, rpc_result(id, list_tools())),
        "tools/call" => call_tool(&st, &v1, rate.map(|r| r.0), &headers, id, &params).await,
        other => json_response(StatusCode::OK, rpc_error(id, RpcCode::METHOD_NOT_FOUND, format!("Method not found: {other}"))),
    }
}

async fn initialize(st: &AppState, v1: &V1, id: Value, params: &Value) -> Response {
    let asked = params.get("protocolVersion").and_then(Value::as_str).unwrap_or("");
    let version = VERSIONS.iter().find(|v| **v == asked).copied().unwrap_or(VERSIONS[0]);
    let session = match st.engine.open_mcp_session(&v1.caller.key, version).await {
        Ok(s) => s,
        Err(e) => return Nested(e).into_response(),
    };
    let mut caps = ServerCapabilities::default();
    let mut tools = ToolsCapability::default();
    tools.list_changed = Some(false);
    caps.tools = Some(tools);
    let result = InitializeResult::new(caps)
        .with_protocol_version(if version == VERSIONS[1] { ProtocolVersion::V_2025_03_26 } else { ProtocolVersion::V_2025_06_18 })
        .with_server_info(Implementation::new("openloop", env!("CARGO_PKG_VERSION")))
        .with_instructions(
            "Openloop's API as tools: start agent sessions, poll them, send follow-ups, download artifacts through signed URLs, run flows and export data.",
        );
    let mut resp = json_response(StatusCode::OK, rpc_result(id, result));
    if let Ok(v) = HeaderValue::from_str(&session) {
        resp.headers_mut().insert(SESSION_HEADER, v);
    }
    resp
}

fn list_tools() -> ListToolsResult {
    let tools: Vec<Tool> = wire::tools::catalogue().iter().filter_map(|t| serde_json::from_value(t.render(ToolFormat::Mcp)).ok()).collect();
    let mut r = ListToolsResult::with_all_items(tools);
    r.result_type = None;
    r
}

/// The outer request's quota headers plus the endpoint's own passed-through ones.
fn result_headers(rate: Option<&RateInfo>, inner: &HeaderMap) -> Map<String, Value> {
    let mut h = HeaderMap::new();
    if let Some(r) = rate {
        r.0.apply(&mut h);
    }
    for name in PASSED_HEADERS {
        if let Some(v) = inner.get(*name) {
            h.insert(*name, v.clone());
        }
    }
    let mut out = Map::new();
    for name in wire::tools::RESULT_HEADERS {
        if let Some(v) = h.get(name).and_then(|v| v.to_str().ok()) {
            out.insert(name.to_string(), Value::String(v.to_string()));
        }
    }
    out
}

fn tool_result(status: u16, headers: Map<String, Value>, body: Value) -> Value {
    wire::tools::mcp_call_result(status, headers, body)
}

async fn call_tool(st: &AppState, v1: &V1, rate: Option<RateInfo>, headers: &HeaderMap, id: Value, params: &Value) -> Response {
    let name = params.get("name").and_then(Value::as_str).unwrap_or("");
    let Some(spec) = wire::tools::find(name) else {
        return json_response(StatusCode::OK, rpc_error(id, RpcCode::INVALID_PARAMS, format!("Unknown tool: {name:?}")));
    };
    if let Some(r) = rate.as_ref().filter(|r| !r.0.allowed) {
        // Over quota: nothing runs; the model sees the 429 and when to retry.
        let body = r.0.error().nested_body();
        return json_response(StatusCode::OK, rpc_result(id, tool_result(429, result_headers(Some(r), &HeaderMap::new()), body)));
    }
    let invoker = Invoker::from_request(v1, headers);
    let args = params.get("arguments").cloned().unwrap_or(Value::Null);
    let resp = match spec.build(args, &ToolCaller { user_id: invoker.user_id.clone() }) {
        Ok(req) => dispatch(st, &invoker, spec, req).await,
        Err(e) => Nested(ApiError::invalid_request(&e.param, e.message)).into_response(),
    };
    let status = resp.status().as_u16();
    let inner_headers = resp.headers().clone();
    let bytes = match axum::body::to_bytes(resp.into_body(), MAX_RESULT_BYTES).await {
        Ok(b) => b,
        Err(_) => return json_response(StatusCode::OK, rpc_error(id, RpcCode::INTERNAL_ERROR, "The tool's response was too large or broken off.")),
    };
    let body = serde_json::from_slice::<Value>(&bytes).unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()));
    json_response(StatusCode::OK, rpc_result(id, tool_result(status, result_headers(rate.as_ref(), &inner_headers), body)))
}

/// `DELETE` ends the session (`204`); an unknown one is `404`.
async fn end_session(State(st): State<AppState>, v1: V1, headers: HeaderMap) -> Response {
    if let Some(r) = origin_refused(&st, &headers) {
        return r;
    }
    let Some(sid) = headers.get(SESSION_HEADER).and_then(|v| v.to_str().ok()) else {
        return Nested(ApiError::invalid_request("Mcp-Session-Id", "Send the Mcp-Session-Id header of the session to end.")).into_response();
    };
    match st.engine.end_mcp_session(&v1.caller.key, sid).await {
        Ok(true) => StatusCode::NO_CONTENT.into_response(),
        Ok(false) => json_response(StatusCode::NOT_FOUND, rpc_error(Value::Null, RpcCode::INVALID_REQUEST, "Unknown or ended Mcp-Session-Id.")),
        Err(e) => Nested(e).into_response(),
    }
}
