//! Wraps a handler so a repeated `Idempotency-Key` replays the first answer (§5.2).

use std::future::Future;

use axum::body::Body;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use engine::idempotency::{self, Claimed};
use serde_json::Value;

use crate::error::{Flat, Nested};
use crate::AppState;

/// Largest response body kept for replay.
const MAX_STORED_BODY: usize = 1024 * 1024;

/// What identifies and fingerprints an idempotent request.
pub struct IdemRequest<'a> {
    pub headers: &'a HeaderMap,
    pub key_id: &'a str,
    /// Route id, e.g. `"G2"`.
    pub route: &'a str,
    pub path_ids: &'a str,
    pub body: &'a Value,
    pub raw_query: Option<&'a str>,
    /// Legacy route: errors use the flat form.
    pub legacy: bool,
}

/// Runs `f` at most once per (key, route, path ids, Idempotency-Key); replays after.
pub async fn run<F, Fut>(st: &AppState, req: IdemRequest<'_>, f: F) -> Response
where
    F: FnOnce() -> Fut,
    Fut: Future<Output = Response>,
{
    let IdemRequest { headers, key_id, route, path_ids, body, raw_query, legacy } = req;
    let fail = |e: wire::ApiError| {
        if legacy {
            Flat(e).into_response()
        } else {
            Nested(e).into_response()
        }
    };
    let Some(idem) = headers.get("idempotency-key") else {
        return f().await;
    };
    let idem = match idem.to_str() {
        Ok(s) => s,
        Err(_) => {
            return fail(wire::ApiError::new(wire::ErrorCode::InvalidIdempotencyKey, "Idempotency-Key must be printable ASCII.").param("Idempotency-Key"))
        }
    };
    if let Err(e) = idempotency::check_key(idem) {
        return fail(e);
    }
    let query: Vec<(String, String)> = form_urlencoded::parse(raw_query.unwrap_or("").as_bytes()).into_owned().collect();
    let fp = idempotency::fingerprint(body, &query);
    let scope = idempotency::scope(key_id, route, path_ids, idem);
    match st.engine.claim_idempotency(&scope, &fp).await {
        Err(e) => fail(e),
        Ok(Claimed::Replay { status, body }) => {
            let mut resp = Response::new(Body::from(body));
            *resp.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::OK);
            resp.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
            resp.headers_mut().insert("idempotent-replayed", HeaderValue::from_static("true"));
            resp
        }
        Ok(Claimed::New) => {
            let resp = f().await;
            let (parts, body) = resp.into_parts();
            let is_json = parts.headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).is_some_and(|v| v.starts_with("application/json"));
            if !is_json {
                // Streams are never stored; the key stays claimed as "reused" for S2/S8.
                st.engine.release_idempotency(&scope).await;
                return Response::from_parts(parts, body);
            }
            match axum::body::to_bytes(body, MAX_STORED_BODY).await {
                Ok(bytes) => {
                    st.engine.finish_idempotency(&scope, parts.status.as_u16(), &bytes).await;
                    Response::from_parts(parts, Body::from(bytes))
                }
                Err(_) => {
                    st.engine.release_idempotency(&scope).await;
                    fail(wire::ApiError::internal())
                }
            }
        }
    }
}

/// Streams are never replayed: the first use of a key claims it for good, any later
/// use is `409 idempotency_key_reused` (resume with S5 instead).
pub async fn claim_for_stream(st: &AppState, req: IdemRequest<'_>) -> Result<(), wire::ApiError> {
    let Some(idem) = req.headers.get("idempotency-key") else { return Ok(()) };
    let idem = idem
        .to_str()
        .map_err(|_| wire::ApiError::new(wire::ErrorCode::InvalidIdempotencyKey, "Idempotency-Key must be printable ASCII.").param("Idempotency-Key"))?;
    idempotency::check_key(idem)?;
    let query: Vec<(String, String)> = form_urlencoded::parse(req.raw_query.unwrap_or("").as_bytes()).into_owned().collect();
    let fp = idempotency::fingerprint(req.body, &query);
    let scope = idempotency::scope(req.key_id, req.route, req.path_ids, idem);
    let reused = || {
        wire::ApiError::new(
            wire::ErrorCode::IdempotencyKeyReused,
            "This Idempotency-Key was already used for a stream; resume it with GET /sessions/{id}?stream=true&last_cursor=… instead.",
        )
    };
    match st.engine.claim_idempotency(&scope, &fp).await {
        Ok(Claimed::New) => {
            st.engine.finish_idempotency(&scope, STREAM_MARKER, b"").await;
            Ok(())
        }
        Ok(Claimed::Replay { .. }) => Err(reused()),
        Err(e) if e.code == "idempotency_key_reused" || e.code == "idempotency_key_in_use" => Err(reused()),
        Err(e) => Err(e),
    }
}

/// Status recorded for keys consumed by streams (never sent).
const STREAM_MARKER: u16 = 299;
