//! The router: implemented resources, the 501 routes from the table, fallbacks.

pub mod agents;
pub mod artifacts;
pub mod chat;
pub mod console;
pub mod exports;
pub mod flowfiles;
pub mod flows;
pub mod health;
pub mod interactions;
pub mod later;
pub mod mcp;
pub mod mcp_servers;
pub mod sessions;
pub mod skills;
pub mod subagents;
pub mod table;
pub mod tenancy;
pub mod tools;
pub mod triggers;

use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::middleware::{from_fn, from_fn_with_state};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, on, MethodFilter};
use axum::Router;
use wire::{ApiError, ErrorCode};

use crate::error::Nested;
use crate::AppState;
use table::{Status, ROUTES};

fn method_filter(m: &str) -> MethodFilter {
    match m {
        "GET" => MethodFilter::GET,
        "POST" => MethodFilter::POST,
        "PUT" => MethodFilter::PUT,
        "PATCH" => MethodFilter::PATCH,
        "DELETE" => MethodFilter::DELETE,
        other => unreachable!("route table uses an unknown method {other}"),
    }
}

// Fallbacks answer without reading the body: `early` drains a small one so the client's
// keep-alive connection stays usable (an unread body would make the server drop it).
async fn route_not_found(req: axum::extract::Request) -> Response {
    let resp =
        Nested(ApiError::new(ErrorCode::RouteNotFound, format!("No route {}; the API lives under /api/v1 (see /docs).", req.uri().path()))).into_response();
    crate::middleware::early(req, resp).await
}

/// Allowed methods for a path: those of the route the router matched, i.e. the
/// matching templates with literal segments wherever any matching template has one.
fn allowed_methods(path: &str) -> Vec<&'static str> {
    if path.starts_with("/files/v1/") {
        return vec!["GET", "HEAD"];
    }
    let rel = path.strip_prefix("/api/v1").unwrap_or(path);
    let matching: Vec<(&'static str, Vec<bool>)> = ROUTES
        .iter()
        .filter_map(|r| {
            let p = if r.root { path } else { rel };
            template_matches(r.path, p).then(|| (r.method, r.path.split('/').map(|seg| !seg.starts_with('{')).collect()))
        })
        .collect();
    // The router prefers a literal segment over a parameter at each position.
    let Some(best) = matching.iter().map(|(_, literal)| literal.clone()).max() else { return vec![] };
    let mut out: Vec<&'static str> = matching.into_iter().filter(|(_, literal)| *literal == best).map(|(m, _)| m).collect();
    out.sort();
    out.dedup();
    out
}

fn template_matches(template: &str, path: &str) -> bool {
    let t: Vec<&str> = template.split('/').collect();
    let p: Vec<&str> = path.split('/').collect();
    t.len() == p.len() && t.iter().zip(&p).all(|(a, b)| (a.starts_with('{') && !b.is_empty()) || a == b)
}

async fn method_not_allowed(req: axum::extract::Request) -> Response {
    let (method, uri): (Method, axum::http::Uri) = (req.method().clone(), req.uri().clone());
    let allow = allowed_methods(uri.path());
    let mut resp = Nested(ApiError::new(ErrorCode::MethodNotAllowed, format!("{method} is not allowed on {}; allowed: {}.", uri.path(), allow.join(", "))))
        .into_response();
    *resp.status_mut() = StatusCode::METHOD_NOT_ALLOWED;
    if let Ok(v) = HeaderValue::from_str(&allow.join(", ")) {
        resp.headers_mut().insert(header::ALLOW, v);
    }
    crate::middleware::early(req, resp).await
}

pub fn router(state: AppState) -> Router {
    let mut api: Router<AppState> = Router::new()
        .merge(agents::routes())
        .merge(tenancy::routes())
        .merge(interactions::routes())
        .merge(sessions::routes())
        .merge(skills::routes())
        .merge(artifacts::routes())
        .merge(flowfiles::routes())
        .merge(flows::routes())
        .merge(exports::routes())
        .merge(tools::routes())
        .merge(chat::routes())
        .merge(mcp_servers::routes())
        .merge(subagents::routes())
        .merge(triggers::routes());
    let mut oauth: Router<AppState> = Router::new();
    let mut voice: Router<AppState> = Router::new();
    for spec in ROUTES.iter().filter(|r| r.status != Status::Now) {
        let handler = on(method_filter(spec.method), later::handler(spec));
        match (spec.root, spec.path.starts_with("/oauth/")) {
            (false, _) => api = api.route(spec.path, handler),
            // OAuth authenticates clients its own way (RFC 6749), not with API keys.
            (true, true) => oauth = oauth.route(spec.path, handler),
            // Voice lives at the origin but is an API route like any other: key first.
            (true, false) => voice = voice.route(spec.path, handler),
        }
    }
    let auth = from_fn_with_state(state.clone(), crate::middleware::authenticate);
    let api = api.route_layer(auth.clone());
    let root = oauth.merge(voice.route_layer(auth));

    Router::new()
        .nest("/api/v1", api)
        .route("/api/v1/openapi.json", get(crate::openapi::document))
        .merge(root)
        .merge(health::routes())
        .route("/metrics", get(crate::metrics::render))
        .merge(console::routes())
        .merge(artifacts::file_routes())
        .merge(skills::file_routes())
        .merge(triggers::webhook_routes())
        .fallback(route_not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(axum::extract::DefaultBodyLimit::disable())
        .layer(from_fn(crate::middleware::common_headers))
        .with_state(state)
}
