//! `/healthz`, `/readyz`, `/docs` (API.md §9.3, §9.4).

use axum::extract::State;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::json;

use crate::AppState;

pub fn routes() -> Router<AppState> {
    Router::new().route("/healthz", get(healthz)).route("/readyz", get(readyz)).route("/docs", get(docs))
}

async fn healthz() -> Json<serde_json::Value> {
    Json(json!({"status": "ok"}))
}

/// The data directory exists and takes a write (a read-only or full disk does not).
async fn data_dir_writable(dir: &std::path::Path) -> bool {
    let probe = dir.join(".readyz-probe");
    let ok = tokio::fs::write(&probe, b"ok").await.is_ok();
    let _ = tokio::fs::remove_file(&probe).await;
    ok
}

async fn readyz(State(st): State<AppState>) -> Response {
    if st.lifecycle.is_draining() {
        let mut r = (StatusCode::SERVICE_UNAVAILABLE, Json(json!({"status": "draining"}))).into_response();
        r.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
        return r;
    }
    let database = match (st.health)().await {
        Ok(()) => "ok",
        Err(e) => {
            tracing::warn!(error = %e, "readiness: database check failed");
            "error"
        }
    };
    let data_dir = if data_dir_writable(&st.config.data_dir).await { "ok" } else { "error" };
    let ok = database == "ok" && data_dir == "ok";
    let body = json!({"status": if ok { "ready" } else { "not_ready" }, "checks": {"database": database, "data_dir": data_dir, "migrations": database}});
    if ok {
        Json(body).into_response()
    } else {
        let mut r = (StatusCode::SERVICE_UNAVAILABLE, Json(body)).into_response();
        r.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
        r
    }
}

/// A dependency-free rendering of the OpenAPI document.
async fn docs() -> Html<&'static str> {
    Html(include_str!("docs.html"))
}
