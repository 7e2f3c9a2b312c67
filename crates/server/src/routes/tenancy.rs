//! X1, X2, M1; K1–K3 (API keys, an Openloop extension).

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{delete, get};
use axum::{Json, Router};
use serde_json::{json, Value};
use wire::tenancy::{ApiKeyCreateRequest, ApiKeyCreatedResponse, ApiKeyListResponse, ApiKeyView, ModelListResponse};

use crate::error::V1Result;
use crate::extract::{Body, V1};
use crate::AppState;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/teams", get(teams))
        .route("/organizations", get(organizations))
        .route("/models", get(models))
        .route("/api-keys", get(list_keys).post(create_key))
        .route("/api-keys/{key_id}", delete(revoke_key))
}

async fn list_keys(State(st): State<AppState>, v1: V1) -> V1Result<Json<ApiKeyListResponse>> {
    Ok(Json(st.engine.list_keys_of(&v1.caller).await?))
}

async fn create_key(State(st): State<AppState>, v1: V1, Body(req): Body<ApiKeyCreateRequest>) -> V1Result<(StatusCode, Json<ApiKeyCreatedResponse>)> {
    Ok((StatusCode::CREATED, Json(st.engine.create_key_for(&v1.caller, req).await?)))
}

async fn revoke_key(State(st): State<AppState>, v1: V1, Path(key_id): Path<String>) -> V1Result<Json<ApiKeyView>> {
    Ok(Json(st.engine.revoke_key_for(&v1.caller, &key_id).await?))
}

async fn teams(State(st): State<AppState>, v1: V1) -> V1Result<Json<Value>> {
    Ok(Json(json!(st.engine.list_teams(&v1.caller).await?)))
}

async fn organizations(State(st): State<AppState>, v1: V1) -> V1Result<Json<Value>> {
    Ok(Json(json!(st.engine.list_organizations(&v1.caller).await?)))
}

async fn models(State(st): State<AppState>, _v1: V1) -> V1Result<Json<ModelListResponse>> {
    st.engine.refresh_models(engine::models::LIST_MAX_AGE).await;
    Ok(Json(ModelListResponse { model_groups: st.engine.catalogue.groups() }))
}
