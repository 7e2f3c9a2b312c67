//! G18–G19: subagents (PUT/DELETE without body).

use axum::extract::{Path, State};
use axum::routing::put;
use axum::{Json, Router};
use wire::agents::AgentSubagentsResponse;

use crate::error::V1Result;
use crate::extract::V1;
use crate::AppState;

pub fn routes() -> Router<AppState> {
    Router::new().route("/agents/{agent_id}/subagents/{subagent_id}", put(attach).delete(detach))
}

async fn attach(State(st): State<AppState>, v1: V1, Path((agent_id, sub_id)): Path<(String, String)>) -> V1Result<Json<AgentSubagentsResponse>> {
    Ok(Json(st.engine.attach_subagent(&v1.caller, &agent_id, &sub_id).await?))
}

async fn detach(State(st): State<AppState>, v1: V1, Path((agent_id, sub_id)): Path<(String, String)>) -> V1Result<Json<AgentSubagentsResponse>> {
    Ok(Json(st.engine.detach_subagent(&v1.caller, &agent_id, &sub_id).await?))
}
