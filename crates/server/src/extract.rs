//! Request parsing with the spec's errors: JSON bodies (§1.3, §9.2 item 7), query
//! strings, and the v1 caller (§2).

use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap};
use engine::input::Query;
use engine::{Caller, KeyInfo};
use serde_json::Value;
use wire::{ApiError, ErrorCode};

use crate::error::Nested;
use crate::AppState;

const MAX_QUERY_BYTES: usize = 8 * 1024;
const MAX_JSON_DEPTH: usize = 64;

/// The API key that authenticated this request (set by the auth layer).
#[derive(Debug, Clone)]
pub struct AuthedKey(pub KeyInfo);

/// The decoded query string.
pub struct Q(pub Query);

pub fn parse_query(raw: Option<&str>) -> Result<Query, ApiError> {
    let raw = raw.unwrap_or("");
    if raw.len() > MAX_QUERY_BYTES {
        return Err(ApiError::new(ErrorCode::InvalidRequest, "The query string is longer than 8 KiB."));
    }
    let pairs: Vec<(String, String)> = form_urlencoded::parse(raw.as_bytes()).into_owned().collect();
    if let Some((name, _)) = pairs.iter().find(|(k, v)| k.contains('\0') || v.contains('\0')) {
        let name = name.replace('\0', "\\0");
        return Err(ApiError::new(
            ErrorCode::InvalidRequest,
            format!("The query parameter {name:?} contains a NUL character (%00), which Openloop does not accept in text."),
        )
        .param(name));
    }
    Ok(Query::from_pairs(pairs))
}

/// True when a raw (percent-encoded) URL path names U+0000.
pub fn has_encoded_nul(path: &str) -> bool {
    path.as_bytes().windows(3).any(|w| w[0] == b'%' && w[1] == b'0' && w[2] == b'0') || path.contains('\0')
}

/// The error a NUL earns in `field`: names follow their own rules (§9.2 item 8: a file
/// name with NUL is `invalid_file_name`; a name is `invalid_name`), anything else is an
/// invalid request.
fn nul_code(field: &str) -> ErrorCode {
    let last = field.rsplit('.').next().unwrap_or(field);
    let key = last.split('[').next().unwrap_or(last);
    match key {
        "file_name" | "file_names" | "filename" => ErrorCode::InvalidFileName,
        "name" => ErrorCode::InvalidName,
        _ => ErrorCode::InvalidRequest,
    }
}

/// The JSON path (`a.b[2].c`) of the first string or key holding U+0000.
fn nul_path(v: &Value, at: &mut String) -> bool {
    match v {
        Value::String(s) => s.contains('\0'),
        Value::Array(items) => items.iter().enumerate().any(|(i, item)| {
            let len = at.len();
            at.push_str(&format!("[{i}]"));
            let found = nul_path(item, at);
            if !found {
                at.truncate(len);
            }
            found
        }),
        Value::Object(map) => map.iter().any(|(k, item)| {
            let len = at.len();
            if !at.is_empty() {
                at.push('.');
            }
            at.push_str(&k.replace('\0', "\\0"));
            let found = k.contains('\0') || nul_path(item, at);
            if !found {
                at.truncate(len);
            }
            found
        }),
        _ => false,
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Q {
    type Rejection = Nested;
    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(Q(parse_query(parts.uri.query())?))
    }
}

fn is_json_type(ct: &str) -> bool {
    let essence = ct.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    essence == "application/json" || (essence.starts_with("application/") && essence.ends_with("+json"))
}

/// Reads a body as JSON with the size limit; empty → `{}`. `strict_type` refuses
/// non-JSON content types (v1); legacy routes try JSON regardless.
pub async fn read_json(headers: &HeaderMap, body: axum::body::Body, limit: usize, strict_type: bool) -> Result<Value, ApiError> {
    let too_large = || ApiError::new(ErrorCode::PayloadTooLarge, format!("The request body is larger than {limit} bytes.")).detail("limit", limit as u64);
    if let Some(len) = headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok()) {
        if len > limit as u64 {
            return Err(too_large());
        }
    }
    let bytes = axum::body::to_bytes(body, limit).await.map_err(|e| {
        // The only error besides a broken connection is the length limit.
        let msg = e.to_string();
        if msg.contains("length limit") || msg.contains("too large") {
            too_large()
        } else {
            ApiError::new(ErrorCode::InvalidRequest, "The request body could not be read.")
        }
    })?;
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(Value::Object(Default::default()));
    }
    if strict_type {
        if let Some(ct) = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()) {
            if !is_json_type(ct) {
                return Err(ApiError::new(ErrorCode::UnsupportedMediaType, format!("Content-Type {ct:?} is not supported; send application/json.")));
            }
        }
    }
    let v: Value = serde_json::from_slice(&bytes).map_err(|e| ApiError::new(ErrorCode::InvalidJson, format!("The request body is not valid JSON: {e}.")))?;
    if engine::input::depth(&v) > MAX_JSON_DEPTH {
        return Err(ApiError::new(ErrorCode::InvalidRequest, "The JSON body is nested more than 64 levels deep."));
    }
    let mut at = String::new();
    if nul_path(&v, &mut at) {
        let field = if at.is_empty() { "body".to_string() } else { at };
        return Err(
            ApiError::new(nul_code(&field), format!("{field} contains a NUL character (\\u0000), which Openloop does not accept in text.")).param(field)
        );
    }
    Ok(v)
}

/// A v1 JSON body.
pub struct JsonBody(pub Value);

impl FromRequest<AppState> for JsonBody {
    type Rejection = Nested;
    async fn from_request(req: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        let (parts, body) = req.into_parts();
        Ok(JsonBody(read_json(&parts.headers, body, state.config.max_body_bytes, true).await?))
    }
}

/// The resolved v1 caller plus the query it was resolved from.
pub struct V1 {
    pub caller: Caller,
    pub query: Query,
}

impl FromRequestParts<AppState> for V1 {
    type Rejection = Nested;
    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let key =
            parts.extensions.get::<AuthedKey>().cloned().ok_or_else(|| ApiError::new(ErrorCode::MissingApiKey, "Send Authorization: Bearer <API key>."))?;
        let query = parse_query(parts.uri.query())?;
        let acting = parts.headers.get("x-auth-key").and_then(|v| v.to_str().ok()).map(str::to_string).or_else(|| query.str("user_id").map(str::to_string));
        let caller = state.engine.resolve_caller(&key.0, acting.as_deref(), query.team()).await?;
        Ok(V1 { caller, query })
    }
}

/// A v1 JSON body parsed into its typed request (`wire::request`): the 400 names the field.
pub struct Body<T>(pub T);

impl<T: wire::request::RequestBody> FromRequest<AppState> for Body<T> {
    type Rejection = Nested;
    async fn from_request(req: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        let JsonBody(v) = JsonBody::from_request(req, state).await?;
        Ok(Body(wire::request::parse(v)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nul_is_refused_naming_where() {
        let Err(e) = parse_query(Some("a=1&search_query=%00x")) else { panic!("a NUL must be refused") };
        assert_eq!(e.param.as_deref(), Some("search_query"));
        assert!(parse_query(Some("a=%2500")).is_ok(), "an encoded percent sign is not a NUL");
        let mut at = String::new();
        assert!(nul_path(&serde_json::json!({"input": "ok", "metadata": {"tags": ["x", "y\u{0}"]}}), &mut at));
        assert_eq!(at, "metadata.tags[1]");
        let mut at = String::new();
        assert!(!nul_path(&serde_json::json!({"input": "no nul here \\u0000"}), &mut at));
        assert!(has_encoded_nul("/api/v1/agents/%00") && !has_encoded_nul("/api/v1/agents/a%2500"));
        assert_eq!(nul_code("files[2].file_name"), ErrorCode::InvalidFileName);
        assert_eq!(nul_code("file_names[0]"), ErrorCode::InvalidFileName);
        assert_eq!(nul_code("name"), ErrorCode::InvalidName);
        assert_eq!(nul_code("metadata.note"), ErrorCode::InvalidRequest);
    }
}
