//! X1, X2, M1.

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Value};
use wire::tenancy::ModelListResponse;

use crate::error::V1Result;
use crate::extract::V1;
use crate::AppState;

pub fn routes() -> Router<AppState> {
    Router::new().route("/teams", get(teams)).route("/organizations", get(organizations)).route("/models", get(models))
}

async fn teams(State(st): State<AppState>, v1: V1) -> V1Result<Json<Value>> {
    Ok(Json(json!(st.engine.list_teams(&v1.caller).await?)))
}

async fn organizations(State(st): State<AppState>, v1: V1) -> V1Result<Json<Value>> {
    Ok(Json(json!(st.engine.list_organizations(&v1.caller).await?)))
}

async fn models(State(st): State<AppState>, _v1: V1) -> V1Result<Json<ModelListResponse>> {
    Ok(Json(ModelListResponse { model_groups: st.engine.catalogue.groups() }))
}
