//! G20–G28 (agent triggers) and the credential-less webhook delivery route
//! `POST /hooks/v1/triggers/{trigger_id}?token=…`.

use axum::extract::{Path, Request, State};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use wire::triggers::{
    AgentTriggerCreateRequest, AgentTriggerDeleteResponse, AgentTriggerResponse, AgentTriggerRunsResponse, AgentTriggerStatsResponse,
    AgentTriggerWebhookUrlResponse, AgentTriggersResponse, TriggerOperatorsResponse,
};
use wire::{ApiError, ErrorCode};

use crate::error::{Nested, V1Result};
use crate::extract::{parse_query, Body, JsonBody, V1};
use crate::idempotency::IdemRequest;
use crate::AppState;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/agents/{agent_id}/triggers", get(list).post(create))
        .route("/agents/{agent_id}/triggers/{trigger_id}", get(retrieve).patch(update).delete(delete))
        .route("/agents/{agent_id}/triggers/{trigger_id}/webhook-url", get(webhook_url))
        .route("/agents/{agent_id}/trigger-operators", get(operators))
        .route("/agents/{agent_id}/triggers/{trigger_id}/runs", get(runs))
        .route("/agents/{agent_id}/triggers/{trigger_id}/stats", get(stats))
}

/// Outside `/api/v1`: authenticated by the trigger's URL token, not an API key.
pub fn webhook_routes() -> Router<AppState> {
    Router::new().route("/hooks/v1/triggers/{trigger_id}", post(deliver))
}

async fn list(State(st): State<AppState>, v1: V1, Path(agent_id): Path<String>) -> V1Result<Json<AgentTriggersResponse>> {
    Ok(Json(st.engine.list_triggers(&v1.caller, &agent_id, &v1.query).await?))
}

async fn create(State(st): State<AppState>, v1: V1, Path(agent_id): Path<String>, headers: HeaderMap, uri: Uri, JsonBody(body): JsonBody) -> Response {
    let key_id = v1.caller.key.id.clone();
    let engine = st.engine.clone();
    let fingerprint = body.clone();
    let req = IdemRequest { headers: &headers, key_id: &key_id, route: "G21", path_ids: &agent_id, body: &fingerprint, raw_query: uri.query(), legacy: false };
    let agent = agent_id.clone();
    crate::idempotency::run(&st, req, || async move {
        let created = match wire::request::parse::<AgentTriggerCreateRequest>(body) {
            Ok(r) => engine.create_trigger(&v1.caller, &agent, r).await,
            Err(e) => Err(e),
        };
        match created {
            Ok(t) => (StatusCode::CREATED, Json(t)).into_response(),
            Err(e) => Nested(e).into_response(),
        }
    })
    .await
}

async fn retrieve(State(st): State<AppState>, v1: V1, Path((agent_id, trigger_id)): Path<(String, String)>) -> V1Result<Json<AgentTriggerResponse>> {
    Ok(Json(st.engine.get_trigger(&v1.caller, &agent_id, &trigger_id).await?))
}

async fn update(
    State(st): State<AppState>,
    v1: V1,
    Path((agent_id, trigger_id)): Path<(String, String)>,
    Body(req): Body<wire::triggers::AgentTriggerUpdateRequest>,
) -> V1Result<Json<AgentTriggerResponse>> {
    Ok(Json(st.engine.update_trigger(&v1.caller, &agent_id, &trigger_id, req).await?))
}

async fn delete(State(st): State<AppState>, v1: V1, Path((agent_id, trigger_id)): Path<(String, String)>) -> V1Result<Json<AgentTriggerDeleteResponse>> {
    Ok(Json(st.engine.delete_trigger(&v1.caller, &agent_id, &trigger_id).await?))
}

async fn webhook_url(
    State(st): State<AppState>,
    v1: V1,
    Path((agent_id, trigger_id)): Path<(String, String)>,
) -> V1Result<Json<AgentTriggerWebhookUrlResponse>> {
    Ok(Json(st.engine.trigger_webhook_url(&v1.caller, &agent_id, &trigger_id).await?))
}

async fn operators(State(st): State<AppState>, v1: V1, Path(agent_id): Path<String>) -> V1Result<Json<TriggerOperatorsResponse>> {
    Ok(Json(st.engine.trigger_operators(&v1.caller, &agent_id).await?))
}

async fn runs(State(st): State<AppState>, v1: V1, Path((agent_id, trigger_id)): Path<(String, String)>) -> V1Result<Json<AgentTriggerRunsResponse>> {
    Ok(Json(st.engine.list_trigger_runs(&v1.caller, &agent_id, &trigger_id, &v1.query).await?))
}

async fn stats(State(st): State<AppState>, v1: V1, Path((agent_id, trigger_id)): Path<(String, String)>) -> V1Result<Json<AgentTriggerStatsResponse>> {
    Ok(Json(st.engine.trigger_stats(&v1.caller, &agent_id, &trigger_id).await?))
}

/// Headers that name a delivery, first match wins: a retried delivery with the same id
/// starts nothing new.
const DELIVERY_ID_HEADERS: &[&str] = &["idempotency-key", "x-delivery-id", "x-github-delivery"];

async fn deliver(State(st): State<AppState>, Path(trigger_id): Path<String>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let query = match parse_query(parts.uri.query()) {
        Ok(q) => q,
        Err(e) => return Nested(e).into_response(),
    };
    let token = query.str("token").map(str::to_string).or_else(|| header(&parts.headers, "x-trigger-token"));
    let delivery_id = DELIVERY_ID_HEADERS.iter().find_map(|h| header(&parts.headers, h));
    let max = engine::triggers::MAX_WEBHOOK_BODY;
    let bytes = match axum::body::to_bytes(body, max).await {
        Ok(b) => b,
        Err(_) => return Nested(ApiError::new(ErrorCode::PayloadTooLarge, format!("A webhook body may be at most {max} bytes."))).into_response(),
    };
    match st.engine.deliver_trigger_webhook(&trigger_id, token.as_deref(), delivery_id.as_deref(), &bytes).await {
        Ok((fresh, resp)) => (if fresh { StatusCode::ACCEPTED } else { StatusCode::OK }, Json(resp)).into_response(),
        Err(e) => Nested(e).into_response(),
    }
}

fn header(h: &HeaderMap, name: &str) -> Option<String> {
    h.get(name).and_then(|v| v.to_str().ok()).map(str::to_string)
}
