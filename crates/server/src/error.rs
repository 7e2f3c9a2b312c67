//! `ApiError` → HTTP response, in the nested v1 form or the legacy flat form.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use wire::ApiError;

/// An error answered with the v1 nested envelope.
#[derive(Debug)]
pub struct Nested(pub ApiError);

/// An error answered with the legacy flat body.
#[derive(Debug)]
pub struct Flat(pub ApiError);

impl From<ApiError> for Nested {
    fn from(e: ApiError) -> Self {
        Nested(e)
    }
}

impl From<ApiError> for Flat {
    fn from(e: ApiError) -> Self {
        Flat(e)
    }
}

fn respond(e: &ApiError, body: serde_json::Value) -> Response {
    let status = StatusCode::from_u16(e.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut resp = (status, Json(body)).into_response();
    if let Some(secs) = e.retry_after {
        if let Ok(v) = HeaderValue::from_str(&secs.to_string()) {
            resp.headers_mut().insert(header::RETRY_AFTER, v);
        }
    }
    if status == StatusCode::SERVICE_UNAVAILABLE && e.retry_after.is_none() {
        resp.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
    }
    resp
}

impl IntoResponse for Nested {
    fn into_response(self) -> Response {
        respond(&self.0, self.0.nested_body())
    }
}

impl IntoResponse for Flat {
    fn into_response(self) -> Response {
        respond(&self.0, self.0.flat_body())
    }
}

pub type V1Result<T> = Result<T, Nested>;
