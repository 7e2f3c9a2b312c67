//! Typed reads from untrusted JSON and query strings, with errors naming the field.

use std::collections::HashMap;

use serde_json::{Map, Value};
use wire::{ApiError, ErrorCode};

/// A request body that must be a JSON object.
pub fn object(body: Value) -> Result<Map<String, Value>, ApiError> {
    match body {
        Value::Object(m) => Ok(m),
        other => Err(ApiError::new(ErrorCode::InvalidRequest, format!("The request body must be a JSON object, not {}.", kind(&other)))),
    }
}

pub fn kind(v: &Value) -> &'static str {
    wire::schema::json_kind(v)
}

fn wrong(path: &str, want: &str, got: &Value) -> ApiError {
    ApiError::invalid_request(path, format!("{path} must be {want}, not {}.", kind(got)))
}

/// `null` and absence both read as `None`.
pub fn opt_str(m: &Map<String, Value>, key: &str, path: &str) -> Result<Option<String>, ApiError> {
    match m.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(v) => Err(wrong(path, "a string", v)),
    }
}

pub fn opt_bool(m: &Map<String, Value>, key: &str, path: &str) -> Result<Option<bool>, ApiError> {
    match m.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(v) => Err(wrong(path, "a boolean", v)),
    }
}

pub fn opt_int(m: &Map<String, Value>, key: &str, path: &str) -> Result<Option<i64>, ApiError> {
    match m.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => n.as_i64().map(Some).ok_or_else(|| ApiError::invalid_request(path, format!("{path} must be an integer."))),
        Some(v) => Err(wrong(path, "an integer", v)),
    }
}

pub fn opt_array<'a>(m: &'a Map<String, Value>, key: &str, path: &str) -> Result<Option<&'a Vec<Value>>, ApiError> {
    match m.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Array(a)) => Ok(Some(a)),
        Some(v) => Err(wrong(path, "an array", v)),
    }
}

pub fn opt_object<'a>(m: &'a Map<String, Value>, key: &str, path: &str) -> Result<Option<&'a Map<String, Value>>, ApiError> {
    match m.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Object(o)) => Ok(Some(o)),
        Some(v) => Err(wrong(path, "an object", v)),
    }
}

pub fn str_list(items: &[Value], path: &str) -> Result<Vec<String>, ApiError> {
    items
        .iter()
        .enumerate()
        .map(|(i, v)| match v {
            Value::String(s) => Ok(s.clone()),
            other => Err(wrong(&format!("{path}[{i}]"), "a string", other)),
        })
        .collect()
}

/// Depth of nested arrays/objects (bodies deeper than 64 are refused, §9.2 item 7).
pub fn depth(v: &Value) -> usize {
    match v {
        Value::Array(a) => 1 + a.iter().map(depth).max().unwrap_or(0),
        Value::Object(o) => 1 + o.values().map(depth).max().unwrap_or(0),
        _ => 0,
    }
}

/// A decoded query string. Repeated keys keep the first value.
#[derive(Debug, Default, Clone)]
pub struct Query {
    map: HashMap<String, String>,
}

impl Query {
    pub fn from_pairs(pairs: impl IntoIterator<Item = (String, String)>) -> Self {
        let mut map = HashMap::new();
        for (k, v) in pairs {
            map.entry(k).or_insert(v);
        }
        Query { map }
    }

    /// The raw value, present even when empty (`?foo=` differs from absence).
    /// Every parameter (legacy routes read identity and fields from the query).
    pub fn pairs(&self) -> &HashMap<String, String> {
        &self.map
    }

    /// The parameters as a JSON object of strings.
    pub fn to_object(&self) -> Map<String, Value> {
        self.map.iter().map(|(k, v)| (k.clone(), Value::String(v.clone()))).collect()
    }

    pub fn raw(&self, key: &str) -> Option<&str> {
        self.map.get(key).map(String::as_str)
    }

    /// Non-empty trimmed value.
    pub fn str(&self, key: &str) -> Option<&str> {
        self.raw(key).map(str::trim).filter(|s| !s.is_empty())
    }

    /// `true|false|1|0`, case-insensitive; absent → `None`.
    pub fn bool(&self, key: &str) -> Result<Option<bool>, ApiError> {
        match self.raw(key) {
            None => Ok(None),
            Some(v) => match v.trim().to_ascii_lowercase().as_str() {
                "true" | "1" => Ok(Some(true)),
                "false" | "0" => Ok(Some(false)),
                _ => Err(ApiError::invalid_request(key, format!("{key} must be true, false, 1 or 0."))),
            },
        }
    }

    /// `page_size` in 1..=100 (§4).
    pub fn page_size(&self) -> Result<Option<usize>, ApiError> {
        match self.raw("page_size") {
            None => Ok(None),
            Some(v) => match v.trim().parse::<i64>() {
                Ok(n) if (1..=100).contains(&n) => Ok(Some(n as usize)),
                _ => Err(ApiError::new(ErrorCode::InvalidPageSize, "page_size must be an integer from 1 to 100.").param("page_size")),
            },
        }
    }

    /// The team scope parameter: `team_id`, alias `project_id`.
    pub fn team(&self) -> Option<&str> {
        self.str("team_id").or_else(|| self.str("project_id"))
    }
}
