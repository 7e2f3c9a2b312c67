//! The HTTP surface of Openloop: axum router, auth and rate-limit layers, error
//! mapping, OpenAPI document. One module per resource under `routes/`.
//!
//! Architecture invariant: this crate knows HTTP and nothing about SQL. Handlers are
//! thin: parse, authorize (via `extract`), call the engine, map the result.

pub mod error;
pub mod extract;
pub mod idempotency;
pub mod listen;
pub mod metrics;
pub mod middleware;
pub mod openapi;
pub mod ratelimit;
pub mod routes;
pub mod zip;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use axum::Router;
use engine::Engine;

pub use ratelimit::RateLimitConfig;

/// HTTP-level settings.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub max_body_bytes: usize,
    /// Decoded upload limit (S10, F8, F9).
    pub max_upload_bytes: u64,
    /// Seconds of silence before an SSE keep-alive comment.
    pub keepalive_secs: u64,
    pub rate_limits: RateLimitConfig,
    pub trust_proxy_headers: bool,
    pub public_url: String,
    pub data_dir: std::path::PathBuf,
    /// Allowed browser origins (`OPENLOOP_CORS_ORIGINS`); others are refused by the MCP server.
    pub cors_origins: Vec<String>,
    /// `OPENLOOP_METRICS_TOKEN`: when set, `/metrics` needs it as a bearer token.
    pub metrics_token: Option<String>,
}

/// Readiness: false while draining.
#[derive(Debug, Default)]
pub struct Lifecycle {
    draining: AtomicBool,
}

impl Lifecycle {
    pub fn start_draining(&self) {
        self.draining.store(true, Ordering::SeqCst);
    }
    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::SeqCst)
    }
}

#[derive(Clone)]
pub struct AppState {
    pub engine: Arc<Engine>,
    /// Serves incognito sessions (§7.10): same agents and identities, session data in
    /// memory only.
    pub incognito: Option<Arc<Engine>>,
    pub config: Arc<ServerConfig>,
    pub limiter: Arc<ratelimit::Limiter>,
    pub lifecycle: Arc<Lifecycle>,
    pub health: Arc<dyn Fn() -> futures::future::BoxFuture<'static, Result<(), String>> + Send + Sync>,
    /// The finished router, for in-process requests (tool invocations, §10.3). Set once
    /// by `router`.
    pub app: Arc<std::sync::OnceLock<Router>>,
}

impl AppState {
    /// The engine that holds this session: incognito sessions live only in memory.
    pub async fn engine_for_session(&self, id: &str) -> Arc<Engine> {
        if let Some(inc) = &self.incognito {
            if matches!(inc.store.session(id).await, Ok(Some(_))) {
                return inc.clone();
            }
        }
        self.engine.clone()
    }
}

/// The whole application router.
pub fn router(state: AppState) -> Router {
    let app = state.app.clone();
    for engine in std::iter::once(&state.engine).chain(state.incognito.iter()) {
        let _ = engine.api_invoker.set(Arc::new(routes::tools::InProcessApi { state: state.clone() }));
    }
    let router = routes::router(state);
    let _ = app.set(router.clone());
    router
}
