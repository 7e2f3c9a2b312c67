//! E1 `POST /export_data`, E2 `GET /export_status`, E3 `GET /get_audit_logs` (flat errors, §8.5).

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use engine::exports::ExportStatus;
use futures::StreamExt;
use serde_json::{json, Value};
use wire::ApiError;

use crate::error::Flat;
use crate::extract::{parse_query, read_json, AuthedKey};
use crate::idempotency::IdemRequest;
use crate::AppState;

pub fn routes() -> Router<AppState> {
    Router::new().route("/export_data", post(export_data)).route("/export_status", get(export_status)).route("/get_audit_logs", get(audit_logs))
}

async fn export_data(State(st): State<AppState>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let Some(AuthedKey(key)) = parts.extensions.get::<AuthedKey>().cloned() else {
        return Flat(ApiError::flat(401, "missing_api_key")).into_response();
    };
    let body = match read_json(&parts.headers, body, st.config.max_body_bytes, false).await {
        Ok(v) => v,
        Err(e) if e.status == 413 => return Flat(ApiError::flat(413, "payload_too_large")).into_response(),
        Err(_) => json!({}),
    };
    let key_id = key.id.clone();
    let fingerprint: Value = body.clone();
    let engine = st.engine.clone();
    let idem =
        IdemRequest { headers: &parts.headers, key_id: &key_id, route: "E1", path_ids: "", body: &fingerprint, raw_query: parts.uri.query(), legacy: true };
    crate::idempotency::run(&st, idem, || async move {
        match engine.export_data(&key, body).await {
            Ok(v) => Json(v).into_response(),
            Err(e) => Flat(e).into_response(),
        }
    })
    .await
}

async fn export_status(State(st): State<AppState>, req: Request) -> Response {
    let Some(AuthedKey(key)) = req.extensions().get::<AuthedKey>().cloned() else {
        return Flat(ApiError::flat(401, "missing_api_key")).into_response();
    };
    let q = match parse_query(req.uri().query()) {
        Ok(q) => q.to_object(),
        Err(e) => return Flat(ApiError::flat(400, &e.message)).into_response(),
    };
    match st.engine.export_status(&key, &q).await {
        Ok(ExportStatus::Json(v)) => Json(v).into_response(),
        Ok(ExportStatus::File { data_export_id, blob_key }) => {
            let Some(blobs) = st.engine.blobs.clone() else { return Flat(ApiError::flat(500, "internal_error")).into_response() };
            let read = match blobs.get(&blob_key, None).await {
                Ok(r) => r,
                Err(_) => return Flat(ApiError::flat(404, "export_file_unavailable")).into_response(),
            };
            // Streamed as stored: memory flat in the file size.
            let mut r = Response::new(Body::from_stream(read.stream.map(|c| c.map_err(std::io::Error::other))));
            *r.status_mut() = StatusCode::OK;
            let h = r.headers_mut();
            h.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/csv; charset=utf-8"));
            if let Ok(v) = HeaderValue::from_str(&read.meta.size.to_string()) {
                h.insert(header::CONTENT_LENGTH, v);
            }
            if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{data_export_id}.csv\"")) {
                h.insert(header::CONTENT_DISPOSITION, v);
            }
            r
        }
        Err(e) => Flat(e).into_response(),
    }
}

async fn audit_logs(State(st): State<AppState>, req: Request) -> Response {
    let Some(AuthedKey(key)) = req.extensions().get::<AuthedKey>().cloned() else {
        return Flat(ApiError::flat(401, "missing_api_key")).into_response();
    };
    let q = match parse_query(req.uri().query()) {
        Ok(q) => q.to_object(),
        Err(e) => return Flat(ApiError::flat(400, &e.message)).into_response(),
    };
    match st.engine.audit_logs(&key, &q).await {
        Ok(v) => Json(v).into_response(),
        Err(e) => Flat(e).into_response(),
    }
}
