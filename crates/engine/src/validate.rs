//! Validation of agent `tools` entries and `metadata` sections against the shapes the
//! SDK parses (API.md §8.0): the `wire` types `AgentTool` and `AgentMetadata`, so nothing
//! stored can break a client. Unknown keys and unknown sections are kept verbatim.

use serde_json::{Map, Value};
use wire::ApiError;

use crate::input::kind;

fn bad(path: &str, want: &str, got: &Value) -> ApiError {
    ApiError::invalid_request(path, format!("{path} must be {want}, not {}.", kind(got)))
}

/// Checks `v` against the typed shape `T` (the SDK's model); the error names the path
/// of the offending field under `path`.
fn typed<T: serde::de::DeserializeOwned>(v: &Value, path: &str) -> Result<(), ApiError> {
    match serde_path_to_error::deserialize::<_, T>(v) {
        Ok(_) => Ok(()),
        Err(e) => {
            let (inner, message) = wire::schema::error_path(e);
            let full = if inner.is_empty() {
                path.to_string()
            } else if inner.starts_with('[') {
                format!("{path}{inner}")
            } else {
                format!("{path}.{inner}")
            };
            Err(ApiError::invalid_request(&full, format!("{full}: {message}.")))
        }
    }
}

/// Validates `tools` (each entry an object of the AgentTool shape).
pub fn tools(items: &[Value], path: &str) -> Result<Vec<Value>, ApiError> {
    items
        .iter()
        .enumerate()
        .map(|(i, t)| {
            let p = format!("{path}[{i}]");
            if !t.is_object() {
                return Err(bad(&p, "an object", t));
            }
            typed::<wire::agents::AgentTool>(t, &p)?;
            Ok(t.clone())
        })
        .collect()
}

/// Validates `resources` (objects).
pub fn resources(items: &[Value], path: &str) -> Result<Vec<Value>, ApiError> {
    items.iter().enumerate().map(|(i, r)| if r.is_object() { Ok(r.clone()) } else { Err(bad(&format!("{path}[{i}]"), "an object", r)) }).collect()
}

/// Validates a whole metadata object (its known sections; others are kept verbatim).
pub fn metadata(m: &Map<String, Value>, path: &str) -> Result<(), ApiError> {
    let mut clean = m.clone();
    strip_nulls(&mut clean);
    typed::<wire::agents::AgentMetadata>(&Value::Object(clean), path)
}

/// RFC 7386 JSON Merge Patch of `patch` into `target`.
pub fn merge_patch(target: &mut Map<String, Value>, patch: &Map<String, Value>) {
    for (k, v) in patch {
        match v {
            Value::Null => {
                target.remove(k);
            }
            Value::Object(p) => {
                let entry = target.entry(k.clone()).or_insert_with(|| Value::Object(Map::new()));
                if !entry.is_object() {
                    *entry = Value::Object(Map::new());
                }
                if let Value::Object(t) = entry {
                    merge_patch(t, p);
                }
            }
            other => {
                target.insert(k.clone(), other.clone());
            }
        }
    }
}

/// Removes `null` members recursively (stored metadata never holds nulls after a merge).
pub fn strip_nulls(m: &mut Map<String, Value>) {
    m.retain(|_, v| !v.is_null());
    for v in m.values_mut() {
        if let Value::Object(o) = v {
            strip_nulls(o);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn merge_patch_merges_sections_and_replaces_arrays() {
        let mut t = json!({"fallback": {"enabled": true, "fallback_models": ["a"]}, "icon_url": "x"}).as_object().unwrap().clone();
        let p = json!({"fallback": {"fallback_models": ["b", "c"]}, "icon_url": null}).as_object().unwrap().clone();
        merge_patch(&mut t, &p);
        assert_eq!(Value::Object(t), json!({"fallback": {"enabled": true, "fallback_models": ["b", "c"]}}));
    }

    #[test]
    fn metadata_enum_errors_name_the_path() {
        let m = json!({"tool_discovery": {"mode": "sometimes"}}).as_object().unwrap().clone();
        let e = metadata(&m, "metadata").unwrap_err();
        assert_eq!(e.param.as_deref(), Some("metadata.tool_discovery.mode"));
        let m = json!({"suggested_prompts": [{"title": "t"}]}).as_object().unwrap().clone();
        assert_eq!(metadata(&m, "metadata").unwrap_err().param.as_deref(), Some("metadata.suggested_prompts[0].message"));
        let t = vec![json!({"type": "web_fetch", "approval_mode": "never"})];
        assert_eq!(tools(&t, "tools").unwrap_err().param.as_deref(), Some("tools[0].approval_mode"));
    }
}
