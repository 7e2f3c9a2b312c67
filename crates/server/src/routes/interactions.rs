//! L1 `POST /start_agent`, L2 `GET /agent_status/{interaction_id}` (flat errors).

use axum::extract::{Path, Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use engine::interactions::LegacyAuth;

use crate::error::Flat;
use crate::extract::{parse_query, read_json, AuthedKey};
use crate::idempotency::IdemRequest;
use crate::middleware::UnauthenticatedLegacy;
use crate::AppState;

pub fn routes() -> Router<AppState> {
    Router::new().route("/start_agent", post(start_agent)).route("/agent_status/{interaction_id}", get(agent_status))
}

async fn start_agent(State(st): State<AppState>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let auth = match (parts.extensions.get::<AuthedKey>(), parts.extensions.get::<UnauthenticatedLegacy>()) {
        (Some(k), _) => LegacyAuth::Key(k.0.clone()),
        (None, Some(u)) if !u.missing => LegacyAuth::Invalid,
        _ => LegacyAuth::Missing,
    };
    // Legacy routes try JSON regardless of Content-Type; an unreadable body reads as {}.
    let body = match read_json(&parts.headers, body, st.config.max_body_bytes, false).await {
        Ok(v) => v,
        Err(e) if e.status == 413 => return Flat(wire::ApiError::flat(413, "payload_too_large")).into_response(),
        Err(_) => serde_json::json!({}),
    };
    let key_id = match &auth {
        LegacyAuth::Key(k) => k.id.clone(),
        _ => String::new(),
    };
    let run = |auth: LegacyAuth, body: serde_json::Value| {
        let engine = st.engine.clone();
        async move {
            match engine.start_agent(auth, body).await {
                Ok(v) => (StatusCode::ACCEPTED, Json(v)).into_response(),
                Err(e) => Flat(e).into_response(),
            }
        }
    };
    if key_id.is_empty() {
        return run(auth, body).await;
    }
    let fingerprint_body = body.clone();
    let req = IdemRequest {
        headers: &parts.headers,
        key_id: &key_id,
        route: "L1",
        path_ids: "",
        body: &fingerprint_body,
        raw_query: parts.uri.query(),
        legacy: true,
    };
    crate::idempotency::run(&st, req, || run(auth, body)).await
}

async fn agent_status(State(st): State<AppState>, Path(interaction_id): Path<String>, req: Request) -> Response {
    let Some(AuthedKey(key)) = req.extensions().get::<AuthedKey>().cloned() else {
        return Flat(wire::ApiError::flat(401, engine::interactions::MISSING_CREDENTIAL)).into_response();
    };
    let q = parse_query(req.uri().query()).unwrap_or_default();
    let eng = st.engine_for_session(&interaction_id).await;
    match eng.agent_status(&key, &interaction_id, q.str("user_id"), q.str("project_id")).await {
        Ok(v) => Json(v).into_response(),
        Err(e) => Flat(e).into_response(),
    }
}
