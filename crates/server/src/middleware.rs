//! Layers: API-key authentication + per-key quota for `/api/v1`, and the headers every
//! response carries (request id, nosniff, no-store).

use std::net::{IpAddr, SocketAddr};
use std::time::Instant;

use axum::extract::{ConnectInfo, MatchedPath, Request, State};
use axum::http::{header, HeaderValue};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use wire::{ApiError, ErrorCode};

use crate::error::{Flat, Nested};
use crate::extract::{parse_query, AuthedKey};
use crate::AppState;

/// Legacy endpoint families answer flat errors with their own strings (§3.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Legacy {
    /// L1, L2: exact strings from Gumloop's docs.
    Interactions,
    /// F1–F11, E1–E3.
    Other,
}

/// `path` may carry the `/api/v1` prefix or not (inside the nested router it does not).
pub fn legacy_family(path: &str) -> Option<Legacy> {
    let p = path.strip_prefix("/api/v1").unwrap_or(path).strip_prefix('/')?;
    let first = p.split('/').next().unwrap_or("");
    match first {
        "start_agent" | "agent_status" => Some(Legacy::Interactions),
        "start_pipeline"
        | "get_pl_run"
        | "kill_pipeline"
        | "list_saved_items"
        | "list_workbooks"
        | "get_inputs"
        | "get_plrun_saved_item_map"
        | "upload_file"
        | "upload_files"
        | "download_file"
        | "download_files"
        | "export_data"
        | "export_status"
        | "get_audit_logs" => Some(Legacy::Other),
        _ => None,
    }
}

const MISSING_L: &str = "Authorization header with Bearer token or api_key query parameter is required";

fn auth_failure(family: Option<Legacy>, missing: bool) -> Response {
    match family {
        Some(Legacy::Interactions) => {
            // L1 answers 403 "Unauthorized" for an invalid key; L2 401 for both.
            Flat(ApiError::flat(401, MISSING_L)).into_response()
        }
        Some(Legacy::Other) => Flat(ApiError::flat(401, if missing { "missing_api_key" } else { "invalid_api_key" })).into_response(),
        None => {
            let mut resp = Nested(if missing {
                ApiError::new(ErrorCode::MissingApiKey, "No API key: send Authorization: Bearer <API key> (or ?api_key=).")
            } else {
                ApiError::new(ErrorCode::InvalidApiKey, "The API key is invalid or revoked; create one with `openloop keys create`.")
            })
            .into_response();
            resp.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            resp
        }
    }
}

/// The user a request names (`x-auth-key`, else the `user_id` query).
fn claimed_user(req: &Request) -> Option<String> {
    req.headers()
        .get("x-auth-key")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
        .or_else(|| parse_query(req.uri().query()).ok().and_then(|q| q.str("user_id").map(str::to_string)))
        .map(|u| u.trim().to_string())
        .filter(|u| !u.is_empty() && u.len() <= 128)
}

fn user_agent(req: &Request) -> Option<String> {
    req.headers().get(axum::http::header::USER_AGENT).and_then(|v| v.to_str().ok()).map(|v| v.chars().take(512).collect())
}

fn client_ip(req: &Request, trust_proxy: bool) -> IpAddr {
    if trust_proxy {
        if let Some(ip) =
            req.headers().get("x-forwarded-for").and_then(|v| v.to_str().ok()).and_then(|v| v.split(',').next()).and_then(|s| s.trim().parse().ok())
        {
            return ip;
        }
    }
    req.extensions().get::<ConnectInfo<SocketAddr>>().map(|c| c.0.ip()).unwrap_or(IpAddr::from([127, 0, 0, 1]))
}

fn bearer(req: &Request) -> Option<String> {
    let v = req.headers().get(header::AUTHORIZATION)?.to_str().ok()?.trim();
    let (scheme, token) = v.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim().to_string()).filter(|t| !t.is_empty())
}

/// Answers before the handler: drains a small unread body so the connection can be
/// reused; a large one is not read and the connection is closed explicitly.
pub async fn early(req: Request, mut resp: Response) -> Response {
    const DRAIN_LIMIT: usize = 64 * 1024;
    let len = req.headers().get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<usize>().ok());
    let chunked = req.headers().get(header::TRANSFER_ENCODING).is_some();
    match len {
        Some(0) => {}
        Some(n) if n <= DRAIN_LIMIT && !chunked => {
            let _ = axum::body::to_bytes(req.into_body(), DRAIN_LIMIT).await;
        }
        None if !chunked => {}
        _ => {
            resp.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
    }
    resp
}

/// The quota decision of this request, for handlers that report it themselves (MCP).
#[derive(Debug, Clone, Copy)]
pub struct RateInfo(pub crate::ratelimit::Decision);

/// The MCP endpoint answers an over-quota tool call as a tool result (§10.4).
const MCP_PATH: &str = "/api/v1/tools/mcp";

/// Authenticates `/api/v1` requests and charges the key's quota.
pub async fn authenticate(State(st): State<AppState>, mut req: Request, next: Next) -> Response {
    // In-process tool invocations: the outer request was authenticated and charged.
    if let Some(crate::routes::tools::Preauthorized(key)) = req.extensions().get().cloned() {
        req.extensions_mut().insert(AuthedKey(key));
        return next.run(req).await;
    }
    let family = legacy_family(req.uri().path());
    let secret = match bearer(&req) {
        Some(s) => Some(s),
        None => match parse_query(req.uri().query()) {
            Ok(q) => q.str("api_key").map(str::to_string),
            Err(e) => return early(req, Nested(e).into_response()).await,
        },
    };
    let key = match &secret {
        None => None,
        Some(s) => match st.engine.authenticate(s).await {
            Ok(k) => k,
            Err(e) => return early(req, Nested(e).into_response()).await,
        },
    };
    let Some(key) = key else {
        let ip = client_ip(&req, st.config.trust_proxy_headers);
        if let Some(d) = st.limiter.check_unauth(ip).await {
            if !d.allowed {
                let mut resp = match family {
                    Some(_) => Flat(d.error()).into_response(),
                    None => Nested(d.error()).into_response(),
                };
                d.apply(resp.headers_mut());
                return early(req, resp).await;
            }
        }
        tracing::info!(target: "openloop::audit", event = "auth_failed", %ip, path = req.uri().path(), "authentication failed");
        if secret.is_some() {
            // A refused key is an audit event of the organization of the user it names.
            let claimed = claimed_user(&req);
            let ctx = store::audit::AuditContext { user_id: None, source_ip: Some(ip.to_string()), user_agent: user_agent(&req) };
            st.engine.audit_auth_failed(claimed.as_deref(), ctx, req.uri().path()).await;
        }
        // L1 checks its body before credentials (its documented error order).
        if matches!(req.uri().path(), "/api/v1/start_agent" | "/start_agent") {
            let missing = secret.is_none();
            req.extensions_mut().insert(UnauthenticatedLegacy { missing });
            return next.run(req).await;
        }
        let resp = auth_failure(family, secret.is_none());
        return early(req, resp).await;
    };
    let decision = st.limiter.check_key(&key.id).await;
    // Inside the nested router the `/api/v1` prefix is already stripped.
    let mcp = matches!(req.uri().path(), MCP_PATH | "/tools/mcp");
    if let Some(d) = decision.filter(|d| !d.allowed && !mcp) {
        let mut resp = match family {
            Some(_) => Flat(d.error()).into_response(),
            None => Nested(d.error()).into_response(),
        };
        d.apply(resp.headers_mut());
        return early(req, resp).await;
    }
    let key_id = key.id.clone();
    // Every write of this request carries who made it, for the audit log.
    let actor = match &key.kind {
        engine::KeyKind::Personal { user_id } => Some(user_id.clone()),
        engine::KeyKind::Team { .. } => claimed_user(&req).or_else(|| key.created_by.clone()),
    };
    let audit = store::audit::AuditContext {
        user_id: actor,
        source_ip: Some(client_ip(&req, st.config.trust_proxy_headers).to_string()),
        user_agent: user_agent(&req),
    };
    req.extensions_mut().insert(AuthedKey(key));
    if let Some(d) = decision {
        req.extensions_mut().insert(RateInfo(d));
    }
    let mut resp = store::audit::scope(audit, next.run(req)).await;
    if let Some(d) = decision {
        d.apply(resp.headers_mut());
    }
    resp.extensions_mut().insert(KeyId(key_id));
    resp
}

#[derive(Clone)]
struct KeyId(String);

/// Marks an L1 request that arrived without a valid key.
#[derive(Debug, Clone, Copy)]
pub struct UnauthenticatedLegacy {
    pub missing: bool,
}

fn request_id(req: &Request) -> String {
    req.headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty() && v.len() <= 128 && v.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b)))
        .map(str::to_string)
        .unwrap_or_else(|| wire::ids::new_id("req"))
}

/// Bodies up to this size are read before routing.
const PREREAD_LIMIT: u64 = 64 * 1024;

/// Outermost layer: request id, security headers, one log line per request. Small bodies
/// are read first, so a handler that answers without reading its body (a 404, 405, 501,
/// or a body-less POST such as S9) never leaves unread bytes that would make the server
/// drop the client's keep-alive connection.
pub async fn common_headers(req: Request, next: Next) -> Response {
    let started = Instant::now();
    let small = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
        .is_some_and(|n| n > 0 && n <= PREREAD_LIMIT);
    let has_body = req.headers().get(header::TRANSFER_ENCODING).is_some()
        || req.headers().get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).is_some_and(|v| v.trim() != "0");
    let finished = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(!has_body));
    let req = if small {
        let (parts, body) = req.into_parts();
        match axum::body::to_bytes(body, PREREAD_LIMIT as usize).await {
            Ok(bytes) => {
                finished.store(true, std::sync::atomic::Ordering::Relaxed);
                Request::from_parts(parts, axum::body::Body::from(bytes))
            }
            Err(_) => return Nested(ApiError::new(ErrorCode::InvalidRequest, "The request body could not be read.")).into_response(),
        }
    } else if has_body {
        let (parts, body) = req.into_parts();
        Request::from_parts(parts, axum::body::Body::new(TrackedBody { inner: body, finished: finished.clone() }))
    } else {
        req
    };
    let rid = request_id(&req);
    let method = req.method().clone();
    let route = req.extensions().get::<MatchedPath>().map(|m| m.as_str().to_string());
    let path = req.uri().path().to_string();
    // No stored text can hold U+0000 (PostgreSQL refuses it): a path naming one is
    // refused here for every route, as query strings and JSON bodies are when parsed.
    let mut resp = if crate::extract::has_encoded_nul(req.uri().path()) {
        Nested(ApiError::new(ErrorCode::InvalidRequest, "The URL path contains a NUL character (%00), which Openloop does not accept in text.")).into_response()
    } else {
        next.run(req).await
    };
    let h = resp.headers_mut();
    // A large body the handler did not read to the end: the connection cannot be reused,
    // so say so instead of letting the client find a closed socket.
    if !finished.load(std::sync::atomic::Ordering::Relaxed) {
        h.insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    if let Ok(v) = HeaderValue::from_str(&rid) {
        h.insert("x-request-id", v);
    }
    h.insert("x-content-type-options", HeaderValue::from_static("nosniff"));
    let is_json = h.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).is_some_and(|v| v.starts_with("application/json"));
    if is_json && !h.contains_key(header::CACHE_CONTROL) {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    let status = resp.status().as_u16();
    crate::metrics::record_request(method.as_str(), route.as_deref(), status, started.elapsed().as_secs_f64());
    let key_id = resp.extensions().get::<KeyId>().map(|k| k.0.clone());
    tracing::info!(
        request_id = %rid,
        method = %method,
        route = route.as_deref().unwrap_or(&path),
        status,
        duration_ms = started.elapsed().as_secs_f64() * 1000.0,
        key_id = key_id.as_deref().unwrap_or(""),
        "request"
    );
    resp
}

/// A request body that records when it was read to the end.
struct TrackedBody {
    inner: axum::body::Body,
    finished: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl http_body::Body for TrackedBody {
    type Data = bytes::Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        let polled = std::pin::Pin::new(&mut self.inner).poll_frame(cx);
        if let std::task::Poll::Ready(None) = &polled {
            self.finished.store(true, std::sync::atomic::Ordering::Relaxed);
        } else if self.inner.is_end_stream() {
            self.finished.store(true, std::sync::atomic::Ordering::Relaxed);
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}
