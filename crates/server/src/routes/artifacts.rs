//! A1–A5, A8, and the credential-less signed download route under `/files/v1`.

use axum::body::Body;
use axum::extract::{ConnectInfo, Path, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, put};
use axum::{Json, Router};
use futures::StreamExt;
use wire::{ApiError, ErrorCode};

use crate::error::{Nested, V1Result};
use crate::extract::{self, parse_query, JsonBody, V1};
use crate::AppState;
use wire::artifacts::ArtifactPasswordRequest;
use wire::sessions::AccessChangeRequest;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/agents/{agent_id}/artifacts", get(list))
        .route("/artifacts/{artifact_id}", axum::routing::delete(delete))
        .route("/artifacts/{artifact_id}/download", get(download))
        .route("/artifacts/{artifact_id}/name", put(rename))
        .route("/artifacts/{artifact_id}/versions", get(versions))
        .route("/artifacts/{artifact_id}/password", put(password))
        .route("/artifacts/{artifact_id}/access", get(get_access).put(put_access))
}

/// Routes outside `/api/v1`: no credentials read.
pub fn file_routes() -> Router<AppState> {
    Router::new().route("/files/v1/artifacts/{artifact_id}/versions/{version_id}/{filename}", get(file).head(file))
}

async fn list(State(st): State<AppState>, v1: V1, Path(agent_id): Path<String>) -> V1Result<Json<impl serde::Serialize>> {
    Ok(Json(st.engine.list_artifacts(&v1.caller, &agent_id, &v1.query).await?))
}

async fn download(State(st): State<AppState>, v1: V1, Path(id): Path<String>) -> V1Result<Json<impl serde::Serialize>> {
    Ok(Json(st.engine.artifact_download(&v1.caller, &id, &v1.query).await?))
}

async fn delete(State(st): State<AppState>, v1: V1, Path(id): Path<String>) -> V1Result<Json<impl serde::Serialize>> {
    Ok(Json(st.engine.delete_artifact(&v1.caller, &id).await?))
}

async fn rename(State(st): State<AppState>, v1: V1, Path(id): Path<String>, JsonBody(body): JsonBody) -> V1Result<Json<impl serde::Serialize>> {
    Ok(Json(st.engine.rename_artifact(&v1.caller, &id, body).await?))
}

async fn versions(State(st): State<AppState>, v1: V1, Path(id): Path<String>) -> V1Result<Json<impl serde::Serialize>> {
    Ok(Json(st.engine.artifact_versions(&v1.caller, &id).await?))
}

async fn password(
    State(st): State<AppState>,
    v1: V1,
    Path(id): Path<String>,
    extract::Body(req): extract::Body<ArtifactPasswordRequest>,
) -> V1Result<Json<impl serde::Serialize>> {
    Ok(Json(st.engine.set_artifact_password(&v1.caller, &id, req).await?))
}

async fn get_access(State(st): State<AppState>, v1: V1, Path(id): Path<String>) -> V1Result<Json<impl serde::Serialize>> {
    Ok(Json(st.engine.artifact_access(&v1.caller, &id).await?))
}

async fn put_access(
    State(st): State<AppState>,
    v1: V1,
    Path(id): Path<String>,
    extract::Body(req): extract::Body<AccessChangeRequest>,
) -> V1Result<Json<impl serde::Serialize>> {
    Ok(Json(st.engine.change_artifact_access(&v1.caller, &id, &req).await?))
}

fn range_not_satisfiable(size: u64) -> Response {
    let mut r = Nested(ApiError::new(ErrorCode::InvalidRequest, "The requested range is not satisfiable.")).into_response();
    *r.status_mut() = StatusCode::RANGE_NOT_SATISFIABLE;
    if let Ok(v) = HeaderValue::from_str(&format!("bytes */{size}")) {
        r.headers_mut().insert(header::CONTENT_RANGE, v);
    }
    r
}

/// Step 2 of the two-step download: streamed bytes, constant memory, `Range` support.
async fn file(State(st): State<AppState>, Path((artifact_id, version_id, _name)): Path<(String, String, String)>, req: Request) -> Response {
    let exp = match check_signed_request(&st, peer_ip(&req), req.uri()).await {
        Ok(exp) => exp,
        Err(r) => return r,
    };
    let ver = match st.engine.artifact_version_for_download(&artifact_id, &version_id).await {
        Ok(v) => v,
        Err(e) => return Nested(e).into_response(),
    };
    let size = ver.size.max(0) as u64;
    let etag = format!("\"{}\"", ver.etag);
    if let Some(r) = not_modified(req.headers(), &etag) {
        return r;
    }
    // RFC 9110 §13.1.5: a Range with an If-Range that does not match this version's
    // strong ETag (or is a date, which a strong-ETag resource never matches) is ignored.
    let if_range_ok = req.headers().get(header::IF_RANGE).is_none_or(|v| v.to_str().is_ok_and(|v| v.trim() == etag));
    let range = match req.headers().get(header::RANGE).and_then(|v| v.to_str().ok()).filter(|_| if_range_ok) {
        None => None,
        Some(h) => match blobs::parse_range(h, size) {
            Ok(r) => r,
            Err(_) => return range_not_satisfiable(size),
        },
    };
    let Some(blobs) = st.engine.blobs.as_ref() else {
        return Nested(ApiError::internal()).into_response();
    };
    let head = req.method() == Method::HEAD;
    let (status, len, body) = if head {
        (if range.is_some() { StatusCode::PARTIAL_CONTENT } else { StatusCode::OK }, range.as_ref().map(|r| r.end - r.start).unwrap_or(size), Body::empty())
    } else {
        match blobs.get(&ver.blob_key, range.clone()).await {
            Ok(read) => {
                let len = read.range.as_ref().map(|r| r.end - r.start).unwrap_or(read.meta.size);
                let stream = read.stream.map(|c| c.map_err(std::io::Error::other));
                (if range.is_some() { StatusCode::PARTIAL_CONTENT } else { StatusCode::OK }, len, Body::from_stream(stream))
            }
            Err(blobs::BlobError::NotFound) => return Nested(engine::artifacts::artifact_not_found(&artifact_id)).into_response(),
            Err(e) => {
                tracing::error!(error = %e, "reading an artifact failed");
                return Nested(ApiError::internal()).into_response();
            }
        }
    };
    let mut r = Response::new(body);
    *r.status_mut() = status;
    let h = r.headers_mut();
    let mut set = |k: header::HeaderName, v: String| {
        if let Ok(v) = HeaderValue::from_str(&v) {
            h.insert(k, v);
        }
    };
    set(header::CONTENT_TYPE, ver.media_type.clone());
    set(header::CONTENT_LENGTH, len.to_string());
    set(header::ETAG, etag);
    set(header::ACCEPT_RANGES, "bytes".into());
    set(header::CONTENT_DISPOSITION, engine::artifacts::content_disposition(&ver.filename));
    let max_age = (exp - chrono::Utc::now().timestamp()).max(0);
    set(header::CACHE_CONTROL, format!("private, max-age={max_age}"));
    set(header::REFERRER_POLICY, "no-referrer".into());
    if let Some(rg) = &range {
        set(header::CONTENT_RANGE, format!("bytes {}-{}/{size}", rg.start, rg.end.saturating_sub(1)));
    }
    r
}

/// The checks every signed file URL passes first: the per-IP limit of file downloads,
/// then the signature over the exact path as requested (re-targeting changes it).
/// `Ok`: the URL's expiry (Unix seconds); `Err`: the refusal to send.
pub(crate) async fn check_signed_request(st: &AppState, ip: std::net::IpAddr, uri: &axum::http::Uri) -> Result<i64, Response> {
    if let Some(d) = st.limiter.check_files(ip).await {
        if !d.allowed {
            let mut r = Nested(d.error()).into_response();
            d.apply(r.headers_mut());
            return Err(r);
        }
    }
    let q = parse_query(uri.query()).map_err(|e| Nested(e).into_response())?;
    st.engine.verify_signed_path(uri.path(), &q).map_err(|e| Nested(e).into_response())
}

/// The client's address (loopback when the listener did not record one).
pub(crate) fn peer_ip(req: &Request) -> std::net::IpAddr {
    req.extensions().get::<ConnectInfo<std::net::SocketAddr>>().map(|c| c.0.ip()).unwrap_or(std::net::IpAddr::from([127, 0, 0, 1]))
}

/// `304 Not Modified` when `If-None-Match` names `etag` (or is `*`).
pub(crate) fn not_modified(headers: &HeaderMap, etag: &str) -> Option<Response> {
    let hit = headers.get(header::IF_NONE_MATCH).and_then(|v| v.to_str().ok()).is_some_and(|v| v.split(',').any(|t| t.trim() == etag || t.trim() == "*"));
    if !hit {
        return None;
    }
    let mut r = StatusCode::NOT_MODIFIED.into_response();
    if let Ok(v) = HeaderValue::from_str(etag) {
        r.headers_mut().insert(header::ETAG, v);
    }
    Some(r)
}
