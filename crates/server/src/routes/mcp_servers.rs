//! MC1–MC9 (the MCP server catalogue), its registration extension
//! (`POST /mcp/servers`, `PATCH`/`DELETE /mcp/servers/{id}`) and G12–G14 (servers
//! attached to agents). Openloop's own MCP server is `routes/mcp.rs`.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use wire::mcp_servers::*;

use crate::error::V1Result;
use crate::extract::{Body, JsonBody, V1};
use crate::AppState;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/mcp/servers", get(list).post(register))
        .route("/mcp/servers/{server_id}", get(retrieve).patch(update).delete(remove))
        .route("/mcp/servers/{server_id}/accounts", get(accounts))
        .route("/mcp/servers/{server_id}/tools", get(tools))
        .route("/mcp/servers/{server_id}/resources", get(resources))
        .route("/mcp/servers/{server_id}/resources/read", get(read_resource))
        .route("/mcp/servers/{server_id}/prompts", get(prompts))
        .route("/mcp/servers/{server_id}/prompts/get", post(get_prompt))
        .route("/mcp/tools/call", post(execute))
        .route("/agents/{agent_id}/mcp-servers", get(agent_servers))
        .route("/agents/{agent_id}/mcp-servers/{server_id}", put(attach).delete(detach))
}

async fn list(State(st): State<AppState>, v1: V1) -> V1Result<Json<McpServersResponse>> {
    Ok(Json(st.engine.list_mcp_servers(&v1.caller).await?))
}

async fn register(State(st): State<AppState>, v1: V1, Body(req): Body<McpServerCreateRequest>) -> V1Result<Response> {
    Ok((StatusCode::CREATED, Json(st.engine.register_mcp_server(&v1.caller, req).await?)).into_response())
}

async fn retrieve(State(st): State<AppState>, v1: V1, Path(id): Path<String>) -> V1Result<Json<McpServerResponse>> {
    Ok(Json(st.engine.get_mcp_server(&v1.caller, &id).await?))
}

async fn update(State(st): State<AppState>, v1: V1, Path(id): Path<String>, Body(req): Body<McpServerUpdateRequest>) -> V1Result<Json<McpServerResponse>> {
    Ok(Json(st.engine.update_mcp_server(&v1.caller, &id, req).await?))
}

async fn remove(State(st): State<AppState>, v1: V1, Path(id): Path<String>) -> V1Result<Json<McpServerDeleteResponse>> {
    Ok(Json(st.engine.delete_mcp_server(&v1.caller, &id).await?))
}

async fn accounts(State(st): State<AppState>, v1: V1, Path(id): Path<String>) -> V1Result<Json<McpServerAccountsResponse>> {
    Ok(Json(st.engine.mcp_server_accounts(&v1.caller, &id).await?))
}

async fn tools(State(st): State<AppState>, v1: V1, Path(id): Path<String>) -> V1Result<Json<McpToolsResponse>> {
    Ok(Json(st.engine.mcp_server_tools(&v1.caller, &id).await?))
}

async fn resources(State(st): State<AppState>, v1: V1, Path(id): Path<String>) -> V1Result<Json<McpResourcesResponse>> {
    let cursor = v1.query.str("cursor").filter(|c| !c.is_empty()).map(str::to_string);
    Ok(Json(st.engine.mcp_server_resources(&v1.caller, &id, cursor).await?))
}

async fn read_resource(State(st): State<AppState>, v1: V1, Path(id): Path<String>) -> V1Result<Json<McpResourceReadResponse>> {
    let uri = v1.query.str("uri").unwrap_or_default().to_string();
    Ok(Json(st.engine.mcp_read_resource(&v1.caller, &id, &uri).await?))
}

async fn prompts(State(st): State<AppState>, v1: V1, Path(id): Path<String>) -> V1Result<Json<McpPromptsResponse>> {
    Ok(Json(st.engine.mcp_server_prompts(&v1.caller, &id).await?))
}

async fn get_prompt(State(st): State<AppState>, v1: V1, Path(id): Path<String>, Body(req): Body<McpGetPromptRequest>) -> V1Result<Json<McpPromptResponse>> {
    Ok(Json(st.engine.mcp_get_prompt(&v1.caller, &id, req).await?))
}

/// `200` when every call succeeded, `207` when some failed.
async fn execute(State(st): State<AppState>, v1: V1, Body(req): Body<McpExecuteRequest>) -> V1Result<Response> {
    let (all_ok, resp) = st.engine.mcp_execute(&v1.caller, req).await?;
    let status = if all_ok { StatusCode::OK } else { StatusCode::MULTI_STATUS };
    Ok((status, Json(resp)).into_response())
}

async fn agent_servers(State(st): State<AppState>, v1: V1, Path(agent_id): Path<String>) -> V1Result<Json<AgentMcpServersResponse>> {
    Ok(Json(st.engine.agent_mcp_servers(&v1.caller, &agent_id).await?))
}

async fn attach(
    State(st): State<AppState>,
    v1: V1,
    Path((agent_id, server_id)): Path<(String, String)>,
    JsonBody(body): JsonBody,
) -> V1Result<Json<AgentMcpServerResponse>> {
    Ok(Json(st.engine.attach_mcp_server(&v1.caller, &agent_id, &server_id, body).await?))
}

async fn detach(State(st): State<AppState>, v1: V1, Path((agent_id, server_id)): Path<(String, String)>) -> V1Result<Json<AgentMcpServerDetachResponse>> {
    Ok(Json(st.engine.detach_mcp_server(&v1.caller, &agent_id, &server_id).await?))
}
