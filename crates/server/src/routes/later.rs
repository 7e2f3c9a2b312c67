//! Routes that exist, authenticate and answer `501 not_implemented` (API.md §1.6).

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;

use axum::extract::{FromRequestParts, Path, Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

use super::table::{RouteSpec, Status};
use crate::error::{Flat, Nested};
use crate::extract::V1;
use crate::middleware::legacy_family;
use crate::AppState;

pub fn handler(
    spec: &'static RouteSpec,
) -> impl Fn(State<AppState>, Request) -> Pin<Box<dyn Future<Output = Response> + Send>> + Clone + Send + Sync + 'static {
    move |State(st): State<AppState>, req: Request| Box::pin(respond(st, spec, req))
}

async fn respond(st: AppState, spec: &'static RouteSpec, req: Request) -> Response {
    let message = match spec.status {
        Status::Later => format!("{} ({}) is reserved for a later Openloop release; this server answers 501 until then.", spec.summary, spec.id),
        _ => format!("{} ({}) is not implemented by this Openloop server yet.", spec.summary, spec.id),
    };
    let err = wire::ApiError::new(wire::ErrorCode::NotImplemented, message.clone()).detail("spec_id", spec.id);
    if spec.path.starts_with("/oauth/") {
        // OAuth endpoints speak RFC 6749 errors (§8.12), not the API envelope.
        return (StatusCode::NOT_IMPLEMENTED, Json(json!({"error": "not_implemented", "error_description": message}))).into_response();
    }
    if legacy_family(req.uri().path()).is_some() {
        return Flat(wire::ApiError::flat(501, "not_implemented")).into_response();
    }
    let (mut parts, _body) = req.into_parts();
    // Identity and agent visibility first, so 401/403/404 win over 501 (§8.6 G10–G29).
    let v1 = match V1::from_request_parts(&mut parts, &st).await {
        Ok(v) => v,
        Err(e) => return e.into_response(),
    };
    if let Ok(Path(params)) = Path::<HashMap<String, String>>::from_request_parts(&mut parts, &st).await {
        if let Some(agent_id) = params.get("agent_id") {
            if let Err(e) = st.engine.visible_agent(&v1.caller, agent_id).await {
                return Nested(e).into_response();
            }
        }
    }
    Nested(err).into_response()
}
