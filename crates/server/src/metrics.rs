//! `/metrics` in the Prometheus text format.
//!
//! Counters and histograms are recorded where things happen, through the `metrics`
//! facade (requests here, runs and steps in `engine`, database writes in `store`); the
//! Prometheus recorder is installed once per process by [`install`]. Gauges that are
//! facts of the shared database (runs queued and processing, across replicas) are read
//! from the store at scrape time, so every replica reports the same numbers.

use std::sync::OnceLock;

use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use wire::{ApiError, ErrorCode};

use crate::error::Nested;
use crate::AppState;

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// Latency buckets (seconds): sub-millisecond request handling up to minute-long runs.
const SECONDS: &[f64] = &[0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0];
const BATCH: &[f64] = &[1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0];

/// Installs the process-wide Prometheus recorder (idempotent: later calls, such as a
/// second server in one test process, share the first).
pub fn install() -> bool {
    if HANDLE.get().is_some() {
        return true;
    }
    let built = PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), SECONDS)
        .and_then(|b| b.set_buckets_for_metric(Matcher::Full("openloop_db_write_batch_jobs".into()), BATCH))
        .and_then(|b| b.install_recorder());
    match built {
        Ok(handle) => {
            let _ = HANDLE.set(handle);
            describe();
            true
        }
        Err(e) => {
            tracing::warn!(error = %e, "cannot install the metrics recorder; /metrics answers 503");
            false
        }
    }
}

fn describe() {
    use metrics::{describe_counter, describe_gauge, describe_histogram, Unit};
    describe_counter!("openloop_http_requests_total", "HTTP requests answered, by method, route template and status class");
    describe_histogram!("openloop_http_request_duration_seconds", Unit::Seconds, "Time to the response head, by method and route template");
    describe_counter!("openloop_runs_finished_total", "Agent runs that reached an end state, by state");
    describe_histogram!("openloop_run_duration_seconds", Unit::Seconds, "Agent run duration from start to end, by end state");
    describe_histogram!("openloop_step_seconds", Unit::Seconds, "Duration of a run step: a model call (by provider) or a tool call (by outcome)");
    describe_histogram!("openloop_provider_open_seconds", Unit::Seconds, "Time until a model provider's stream opened (or failed)");
    describe_counter!("openloop_provider_errors_total", "Model provider errors, by provider and error class");
    describe_gauge!("openloop_sse_readers", "Open event streams (SSE) served by this process");
    describe_histogram!("openloop_db_write_seconds", Unit::Seconds, "One write transaction on the database writer, BEGIN to COMMIT");
    describe_histogram!("openloop_db_write_batch_jobs", "Writes committed together in one transaction (group commit)");
    describe_gauge!("openloop_runs_active", "Runs queued or processing across every replica, by state (queue depth = queued)");
    // Present from the start, so a scraper sees 0 rather than no series.
    metrics::gauge!("openloop_sse_readers").set(0.0);
}

/// Counts one answered request (route templates keep the label set bounded).
pub fn record_request(method: &str, route: Option<&str>, status: u16, seconds: f64) {
    if HANDLE.get().is_none() {
        return;
    }
    let route = route.unwrap_or("unmatched").to_string();
    let class = match status {
        100..=199 => "1xx",
        200..=299 => "2xx",
        300..=399 => "3xx",
        400..=499 => "4xx",
        _ => "5xx",
    };
    metrics::counter!("openloop_http_requests_total", "method" => method.to_string(), "route" => route.clone(), "status" => class).increment(1);
    metrics::histogram!("openloop_http_request_duration_seconds", "method" => method.to_string(), "route" => route).record(seconds);
}

/// An open SSE stream: the gauge goes down when the stream is dropped.
pub struct SseReader(());

impl SseReader {
    pub fn open() -> SseReader {
        metrics::gauge!("openloop_sse_readers").increment(1.0);
        SseReader(())
    }
}

impl Drop for SseReader {
    fn drop(&mut self) {
        metrics::gauge!("openloop_sse_readers").decrement(1.0);
    }
}

/// `GET /metrics`. With `OPENLOOP_METRICS_TOKEN` set, the scraper must send it as a
/// bearer token (the page names routes and volumes, not tenants or secrets).
pub async fn render(State(st): State<AppState>, headers: HeaderMap) -> Response {
    if let Some(token) = st.config.metrics_token.as_deref() {
        let sent = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).and_then(|v| v.strip_prefix("Bearer ")).unwrap_or("");
        if !bool::from(subtle::ConstantTimeEq::ct_eq(sent.as_bytes(), token.as_bytes())) {
            return Nested(ApiError::new(ErrorCode::InvalidApiKey, "GET /metrics needs Authorization: Bearer <OPENLOOP_METRICS_TOKEN>.")).into_response();
        }
    }
    let Some(handle) = HANDLE.get() else {
        let mut r = Nested(ApiError::new(ErrorCode::ServiceUnavailable, "Metrics are not enabled in this process.")).into_response();
        *r.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
        return r;
    };
    match st.engine.store.active_run_counts().await {
        Ok(counts) => {
            for state in ["queued", "processing"] {
                let n = counts.iter().find(|(s, _)| s == state).map(|(_, n)| *n).unwrap_or(0);
                metrics::gauge!("openloop_runs_active", "state" => state).set(n as f64);
            }
        }
        Err(e) => tracing::warn!(error = %e, "metrics: cannot read the run counts"),
    }
    let mut resp = handle.render().into_response();
    resp.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"));
    resp
}
