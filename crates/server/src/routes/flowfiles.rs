//! F8–F11: legacy flow files (flat errors).

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use futures::StreamExt;
use serde_json::Value;

use crate::error::Flat;
use crate::extract::{read_json, AuthedKey};
use crate::AppState;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/upload_file", post(upload_file))
        .route("/upload_files", post(upload_files))
        .route("/download_file", post(download_file))
        .route("/download_files", post(download_files))
}

/// Body of a legacy upload route (upload-sized limit) with the authenticated key.
async fn legacy_body(st: &AppState, req: Request, upload: bool) -> Result<(engine::KeyInfo, Value), Response> {
    let (parts, body) = req.into_parts();
    let Some(AuthedKey(key)) = parts.extensions.get::<AuthedKey>().cloned() else {
        return Err(Flat(wire::ApiError::flat(401, "missing_api_key")).into_response());
    };
    let limit = if upload { (st.config.max_upload_bytes as usize).saturating_mul(4) / 3 + 64 * 1024 } else { st.config.max_body_bytes };
    match read_json(&parts.headers, body, limit, false).await {
        Ok(v) => Ok((key, v)),
        Err(e) if e.status == 413 => Err(Flat(wire::ApiError::flat(413, "payload_too_large")).into_response()),
        Err(_) => Ok((key, serde_json::json!({}))),
    }
}

async fn upload_file(State(st): State<AppState>, req: Request) -> Response {
    let (key, body) = match legacy_body(&st, req, true).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    match st.engine.upload_flow_file(&key, body, st.config.max_upload_bytes).await {
        Ok(v) => Json(v).into_response(),
        Err(e) => Flat(e).into_response(),
    }
}

async fn upload_files(State(st): State<AppState>, req: Request) -> Response {
    let (key, body) = match legacy_body(&st, req, true).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    match st.engine.upload_flow_files(&key, body, st.config.max_upload_bytes).await {
        Ok((status, v)) => (StatusCode::from_u16(status).unwrap_or(StatusCode::OK), Json(v)).into_response(),
        Err(e) => Flat(e).into_response(),
    }
}

async fn download_file(State(st): State<AppState>, req: Request) -> Response {
    let (key, body) = match legacy_body(&st, req, false).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    let files = match st.engine.flow_files_for_download(&key, &body, false).await {
        Ok(f) => f,
        Err(e) => return Flat(e).into_response(),
    };
    let Some(f) = files.into_iter().next() else { return Flat(wire::ApiError::flat(404, "file_not_found")).into_response() };
    let Some(blobs) = st.engine.blobs.clone() else { return Flat(wire::ApiError::flat(500, "internal_error")).into_response() };
    let read = match blobs.get(&f.blob_key, None).await {
        Ok(r) => r,
        Err(_) => return Flat(wire::ApiError::flat(404, "file_not_found")).into_response(),
    };
    let mut r = Response::new(Body::from_stream(read.stream.map(|c| c.map_err(std::io::Error::other))));
    let h = r.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&f.media_type) {
        h.insert(header::CONTENT_TYPE, v);
    }
    if let Ok(v) = HeaderValue::from_str(&read.meta.size.to_string()) {
        h.insert(header::CONTENT_LENGTH, v);
    }
    if let Ok(v) = HeaderValue::from_str(&engine::artifacts::content_disposition(&f.file_name)) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    r
}

async fn download_files(State(st): State<AppState>, req: Request) -> Response {
    let (key, body) = match legacy_body(&st, req, false).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    let files = match st.engine.flow_files_for_download(&key, &body, true).await {
        Ok(f) => f,
        Err(e) => return Flat(e).into_response(),
    };
    let Some(blobs) = st.engine.blobs.clone() else { return Flat(wire::ApiError::flat(500, "internal_error")).into_response() };
    // Entries open their blob lazily, one at a time; duplicate names get " (n)".
    let mut used: Vec<String> = Vec::new();
    let named: Vec<(String, String)> = files
        .into_iter()
        .map(|f| {
            let mut name = f.file_name.clone();
            let mut n = 0;
            while used.contains(&name) {
                n += 1;
                name = engine::files::numbered(&f.file_name, n);
            }
            used.push(name.clone());
            (name, f.blob_key)
        })
        .collect();
    let entries = futures::stream::iter(named).then(move |(name, key)| {
        let blobs = blobs.clone();
        async move {
            let read = blobs.get(&key, None).await.map_err(|_| std::io::Error::other("a file disappeared while zipping"))?;
            let data = read.stream.map(|c| c.map_err(|e| std::io::Error::other(e.to_string()))).boxed();
            Ok::<crate::zip::Entry, std::io::Error>((name, data))
        }
    });
    let rx = crate::zip::archive(entries);
    let mut r = Response::new(Body::from_stream(rx));
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/zip"));
    h.insert(header::CONTENT_DISPOSITION, HeaderValue::from_static("attachment; filename=\"files.zip\""));
    r
}
