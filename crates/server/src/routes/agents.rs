//! G1–G9.

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, patch};
use axum::{Json, Router};
use serde_json::{json, Value};
use wire::agents::{AgentCreateRequest, AgentDeleteResponse, AgentIncognitoRequest, AgentResponse, AgentUpdateRequest};

use crate::error::{Nested, V1Result};
use crate::extract::{Body, JsonBody, V1};
use crate::idempotency::IdemRequest;
use crate::AppState;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/agents", get(list).post(create))
        .route("/agents/{agent_id}", get(retrieve).patch(update).delete(delete))
        .route("/agents/{agent_id}/versions", get(list_versions))
        .route("/agents/{agent_id}/versions/{version_id}", get(get_version))
        .route("/agents/{agent_id}/abilities", patch(update_abilities))
        .route("/agents/{agent_id}/incognito", patch(set_incognito))
}

async fn list(State(st): State<AppState>, v1: V1) -> V1Result<Json<Value>> {
    Ok(Json(st.engine.list_agents(&v1.caller, &v1.query).await?))
}

async fn create(State(st): State<AppState>, v1: V1, headers: HeaderMap, uri: Uri, JsonBody(body): JsonBody) -> Response {
    let key_id = v1.caller.key.id.clone();
    let engine = st.engine.clone();
    let fingerprint_body = body.clone();
    let req = IdemRequest { headers: &headers, key_id: &key_id, route: "G2", path_ids: "", body: &fingerprint_body, raw_query: uri.query(), legacy: false };
    let warnings = ignored_fields::<AgentCreateRequest>("G2", &body);
    crate::idempotency::run(&st, req, || async move {
        match engine.create_agent(&v1.caller, body).await {
            Ok(agent) => (StatusCode::CREATED, Json(AgentResponse { agent, warnings })).into_response(),
            Err(e) => Nested(e).into_response(),
        }
    })
    .await
}

/// Unknown top-level fields: ignored (§1.3), logged and named in `warnings`.
fn ignored_fields<T: utoipa::ToSchema>(route: &str, body: &Value) -> Option<Vec<String>> {
    let w = wire::schema::unknown_field_warnings::<T>(body);
    if w.is_empty() {
        return None;
    }
    tracing::info!(route, warnings = ?w, "request fields ignored");
    Some(w)
}

async fn retrieve(State(st): State<AppState>, v1: V1, Path(id): Path<String>) -> V1Result<Json<AgentResponse>> {
    Ok(Json(AgentResponse { agent: st.engine.get_agent(&v1.caller, &id).await?, warnings: None }))
}

async fn update(State(st): State<AppState>, v1: V1, Path(id): Path<String>, JsonBody(body): JsonBody) -> V1Result<Json<AgentResponse>> {
    let warnings = ignored_fields::<AgentUpdateRequest>("G4", &body);
    Ok(Json(AgentResponse { agent: st.engine.update_agent(&v1.caller, &id, body).await?, warnings }))
}

async fn delete(State(st): State<AppState>, v1: V1, Path(id): Path<String>) -> V1Result<Json<AgentDeleteResponse>> {
    Ok(Json(st.engine.delete_agent(&v1.caller, &id).await?))
}

async fn list_versions(State(st): State<AppState>, v1: V1, Path(id): Path<String>) -> V1Result<Json<Value>> {
    Ok(Json(json!(st.engine.list_agent_versions(&v1.caller, &id, &v1.query).await?)))
}

async fn get_version(State(st): State<AppState>, v1: V1, Path((id, vid)): Path<(String, String)>) -> V1Result<Json<Value>> {
    Ok(Json(json!(st.engine.get_agent_version(&v1.caller, &id, &vid).await?)))
}

async fn update_abilities(State(st): State<AppState>, v1: V1, Path(id): Path<String>, JsonBody(body): JsonBody) -> V1Result<Json<Value>> {
    Ok(Json(json!(st.engine.update_abilities(&v1.caller, &id, body).await?)))
}

async fn set_incognito(State(st): State<AppState>, v1: V1, Path(id): Path<String>, Body(req): Body<AgentIncognitoRequest>) -> V1Result<Json<AgentResponse>> {
    Ok(Json(AgentResponse { agent: st.engine.set_agent_incognito(&v1.caller, &id, req).await?, warnings: None }))
}
