//! F1–F7 (legacy flows, flat errors) and the flow management extension
//! (`/flows`, `/workbooks`, nested errors).

use axum::extract::{Path, Request, State};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Value};
use wire::flows::{
    FlowDeleteResponse, FlowDetail, FlowListResponse, FlowSaveRequest, FlowValidateResponse, FlowVersionsResponse, WorkbookCreateRequest, WorkbookListResponse,
    WorkbookView,
};
use wire::ApiError;

use crate::error::{Flat, Nested, V1Result};
use crate::extract::{parse_query, read_json, AuthedKey, JsonBody, V1};
use crate::idempotency::IdemRequest;
use crate::AppState;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/start_pipeline", post(start_pipeline))
        .route("/get_pl_run", get(get_pl_run))
        .route("/kill_pipeline", post(kill_pipeline))
        .route("/list_saved_items", get(list_saved_items))
        .route("/list_workbooks", get(list_workbooks))
        .route("/get_inputs", get(get_inputs))
        .route("/get_plrun_saved_item_map", get(plrun_map))
        .route("/flows", get(list_flows).post(create_flow))
        .route("/flows/validate", post(validate_flow))
        .route("/flows/node-kinds", get(node_kinds))
        .route("/flows/{flow_id}", get(get_flow).put(update_flow).delete(delete_flow))
        .route("/flows/{flow_id}/versions", get(flow_versions))
        .route("/workbooks", get(list_workbooks_v1).post(create_workbook))
}

fn flat_json<T: serde::Serialize>(r: Result<T, ApiError>) -> Response {
    match r {
        Ok(v) => Json(v).into_response(),
        Err(e) => Flat(e).into_response(),
    }
}

/// The key and JSON body of a legacy POST (an unreadable body reads as `{}`).
async fn legacy_post(st: &AppState, req: Request) -> Result<(engine::KeyInfo, Value, HeaderMap, Option<String>), Response> {
    let (parts, body) = req.into_parts();
    let Some(AuthedKey(key)) = parts.extensions.get::<AuthedKey>().cloned() else {
        return Err(Flat(ApiError::flat(401, "missing_api_key")).into_response());
    };
    match read_json(&parts.headers, body, st.config.max_body_bytes, false).await {
        Ok(v) => Ok((key, v, parts.headers, parts.uri.query().map(str::to_string))),
        Err(e) if e.status == 413 => Err(Flat(ApiError::flat(413, "payload_too_large")).into_response()),
        Err(_) => Ok((key, json!({}), parts.headers, parts.uri.query().map(str::to_string))),
    }
}

/// The key and query of a legacy GET.
fn legacy_get(req: &Request) -> Result<(engine::KeyInfo, serde_json::Map<String, Value>), Response> {
    let Some(AuthedKey(key)) = req.extensions().get::<AuthedKey>().cloned() else {
        return Err(Flat(ApiError::flat(401, "missing_api_key")).into_response());
    };
    let q = parse_query(req.uri().query()).map_err(|e| Flat(ApiError::flat(400, &e.message)).into_response())?;
    Ok((key, q.to_object()))
}

async fn start_pipeline(State(st): State<AppState>, req: Request) -> Response {
    let (key, body, headers, raw_query) = match legacy_post(&st, req).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    let query = match parse_query(raw_query.as_deref()) {
        Ok(q) => q.pairs().clone(),
        Err(e) => return Flat(ApiError::flat(400, &e.message)).into_response(),
    };
    let key_id = key.id.clone();
    let fingerprint_body = body.clone();
    let engine = st.engine.clone();
    let idem =
        IdemRequest { headers: &headers, key_id: &key_id, route: "F1", path_ids: "", body: &fingerprint_body, raw_query: raw_query.as_deref(), legacy: true };
    crate::idempotency::run(&st, idem, || async move { flat_json(engine.start_pipeline(&key, body, &query).await) }).await
}

async fn get_pl_run(State(st): State<AppState>, req: Request) -> Response {
    match legacy_get(&req) {
        Ok((key, q)) => flat_json(st.engine.get_pl_run(&key, &q).await),
        Err(r) => r,
    }
}

async fn kill_pipeline(State(st): State<AppState>, req: Request) -> Response {
    let (key, body, _, raw_query) = match legacy_post(&st, req).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    let mut m = match body {
        Value::Object(m) => m,
        _ => serde_json::Map::new(),
    };
    if let Ok(q) = parse_query(raw_query.as_deref()) {
        for (k, v) in q.to_object() {
            m.entry(k).or_insert(v);
        }
    }
    flat_json(st.engine.kill_pipeline(&key, &m).await)
}

async fn list_saved_items(State(st): State<AppState>, req: Request) -> Response {
    match legacy_get(&req) {
        Ok((key, q)) => flat_json(st.engine.list_saved_items(&key, &q).await),
        Err(r) => r,
    }
}

async fn list_workbooks(State(st): State<AppState>, req: Request) -> Response {
    match legacy_get(&req) {
        Ok((key, q)) => flat_json(st.engine.list_workbooks(&key, &q).await),
        Err(r) => r,
    }
}

async fn get_inputs(State(st): State<AppState>, req: Request) -> Response {
    match legacy_get(&req) {
        Ok((key, q)) => flat_json(st.engine.get_inputs(&key, &q).await),
        Err(r) => r,
    }
}

async fn plrun_map(State(st): State<AppState>, req: Request) -> Response {
    match legacy_get(&req) {
        Ok((key, q)) => flat_json(st.engine.plrun_saved_item_map(&key, &q).await),
        Err(r) => r,
    }
}

fn save_request(body: Value) -> Result<FlowSaveRequest, Nested> {
    let m = engine::input::object(body)?;
    let s = |k: &str| engine::input::opt_str(&m, k, k);
    Ok(FlowSaveRequest {
        document: m.get("document").cloned().unwrap_or(Value::Null),
        saved_item_id: s("saved_item_id")?,
        workbook_id: s("workbook_id")?,
        workbook_name: s("workbook_name")?,
        team_id: s("team_id")?,
    })
}

async fn list_flows(State(st): State<AppState>, v1: V1) -> V1Result<Json<FlowListResponse>> {
    Ok(Json(st.engine.list_flows(&v1.caller).await?))
}

async fn create_flow(State(st): State<AppState>, v1: V1, JsonBody(body): JsonBody) -> V1Result<Response> {
    let req = save_request(body)?;
    let caller = scoped(&st, v1, req.team_id.as_deref()).await?;
    let (status, f) = st.engine.save_flow(&caller, req, None).await?;
    Ok((StatusCode::from_u16(status).unwrap_or(StatusCode::OK), Json(f)).into_response())
}

/// A body `team_id` scopes like the query's (§2.4).
async fn scoped(st: &AppState, v1: V1, team: Option<&str>) -> Result<engine::Caller, Nested> {
    match team {
        Some(t) if v1.caller.scope_team() != Some(t) => Ok(st.engine.resolve_caller(&v1.caller.key, Some(&v1.caller.user.id), Some(t)).await?),
        _ => Ok(v1.caller),
    }
}

async fn validate_flow(State(st): State<AppState>, _v1: V1, JsonBody(body): JsonBody) -> V1Result<Json<FlowValidateResponse>> {
    Ok(Json(st.engine.validate_flow(&save_request(body)?)?))
}

async fn node_kinds(State(st): State<AppState>, _v1: V1) -> Json<wire::flows::NodeKindsResponse> {
    Json(st.engine.node_kinds())
}

async fn get_flow(State(st): State<AppState>, v1: V1, Path(id): Path<String>) -> V1Result<Json<FlowDetail>> {
    let version = match v1.query.str("version") {
        None => None,
        Some(v) => Some(v.parse::<i64>().map_err(|_| ApiError::invalid_request("version", "version must be a positive integer."))?),
    };
    Ok(Json(st.engine.get_flow(&v1.caller, &id, version).await?))
}

async fn update_flow(State(st): State<AppState>, v1: V1, Path(id): Path<String>, JsonBody(body): JsonBody) -> V1Result<Json<FlowDetail>> {
    let req = save_request(body)?;
    Ok(Json(st.engine.save_flow(&v1.caller, req, Some(&id)).await?.1))
}

async fn delete_flow(State(st): State<AppState>, v1: V1, Path(id): Path<String>) -> V1Result<Json<FlowDeleteResponse>> {
    Ok(Json(st.engine.delete_flow(&v1.caller, &id).await?))
}

async fn flow_versions(State(st): State<AppState>, v1: V1, Path(id): Path<String>) -> V1Result<Json<FlowVersionsResponse>> {
    Ok(Json(st.engine.flow_versions(&v1.caller, &id).await?))
}

async fn list_workbooks_v1(State(st): State<AppState>, v1: V1) -> V1Result<Json<WorkbookListResponse>> {
    Ok(Json(st.engine.list_workbooks_v1(&v1.caller).await?))
}

async fn create_workbook(State(st): State<AppState>, v1: V1, _uri: Uri, JsonBody(body): JsonBody) -> V1Result<Response> {
    let m = engine::input::object(body)?;
    let s = |k: &str| engine::input::opt_str(&m, k, k);
    let req =
        WorkbookCreateRequest { name: s("name")?.unwrap_or_default(), description: s("description")?, workbook_id: s("workbook_id")?, team_id: s("team_id")? };
    let caller = scoped(&st, v1, req.team_id.as_deref()).await?;
    let w: WorkbookView = st.engine.create_workbook(&caller, req).await?;
    Ok((StatusCode::CREATED, Json(w)).into_response())
}
