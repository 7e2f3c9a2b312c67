//! Validation of agent `tools` entries and `metadata` sections against the shapes the
//! SDK parses (API.md §8.0), so nothing stored can break a client. Unknown keys and
//! unknown sections are kept verbatim.

use serde_json::{Map, Value};
use wire::ApiError;

use crate::input::kind;

#[derive(Clone, Copy)]
enum K {
    Str,
    Bool,
    Int,
    Num,
    Obj,
    StrList,
    ObjOfObj,
    StrMap,
    Enum(&'static [&'static str]),
    Section(&'static [(&'static str, K)]),
    Prompts,
}

const APPROVAL_MODES: &[&str] = &["inherit", "off", "all", "write", "custom"];

const TOOL_FIELDS: &[(&str, K)] = &[
    ("type", K::Str),
    ("name", K::Str),
    ("server_id", K::Str),
    ("secret_id", K::Str),
    ("saved_item_id", K::Str),
    ("credentials_to_use", K::ObjOfObj),
    ("credential_mode", K::Enum(&["end_user", "agent_owned"])),
    ("approval_mode", K::Enum(APPROVAL_MODES)),
    ("tool_approval_modes", K::StrMap),
    ("restricted_tools", K::StrList),
    ("is_incognito", K::Bool),
    ("is_disabled", K::Bool),
    ("metadata", K::Obj),
];

const ENABLED: &[(&str, K)] = &[("enabled", K::Bool)];
const CREATION: &[(&str, K)] = &[("creation_enabled", K::Bool)];

const METADATA_SECTIONS: &[(&str, K)] = &[
    ("icon_url", K::Str),
    ("suggested_prompts", K::Prompts),
    ("max_steps", K::Num),
    ("model_settings", K::Obj),
    (
        "compaction",
        K::Section(&[
            ("override_auto_compaction", K::Bool),
            ("summary_model", K::Str),
            ("context_limit", K::Int),
            ("output_reserve_tokens", K::Int),
            ("prune_protect_tokens", K::Int),
            ("summary_max_tokens", K::Int),
            ("proactive_trigger_percent", K::Int),
        ]),
    ),
    ("fallback", K::Section(&[("enabled", K::Bool), ("override_auto_fallback", K::Bool), ("fallback_models", K::StrList)])),
    ("image_generation", K::Section(&[("model", K::Str)])),
    ("skills", K::Section(CREATION)),
    ("triggers", K::Section(CREATION)),
    ("app_rules", K::Section(CREATION)),
    ("app_discovery", K::Section(ENABLED)),
    ("self_modification", K::Section(ENABLED)),
    ("tool_discovery", K::Section(&[("mode", K::Enum(&["auto", "enabled"]))])),
    ("tool_approval", K::Section(&[("default_mode", K::Enum(APPROVAL_MODES)), ("reason", K::Str), ("approver_user_id", K::Str)])),
    ("self_improvement", K::Section(&[("enabled", K::Bool), ("cron_expression", K::Str), ("timezone", K::Str)])),
    ("subagent", K::Section(&[("allow_self_clone", K::Bool), ("allowed_gummie_ids", K::StrList)])),
    ("artifacts", K::Section(&[("default_access", K::Enum(&["default", "organization", "anyone"]))])),
    ("voice", K::Section(&[("enabled", K::Bool), ("voice", K::Str)])),
    ("slack", K::Section(&[("thread_response_trigger", K::Str), ("attribution_stamp_enabled", K::Bool), ("show_detailed_steps", K::Bool)])),
    ("email", K::Section(&[("attribution_stamp_enabled", K::Bool)])),
];

fn bad(path: &str, want: &str, got: &Value) -> ApiError {
    ApiError::invalid_request(path, format!("{path} must be {want}, not {}.", kind(got)))
}

fn check(path: &str, k: K, v: &Value) -> Result<(), ApiError> {
    if v.is_null() {
        return Ok(());
    }
    match k {
        K::Str if !v.is_string() => Err(bad(path, "a string", v)),
        K::Bool if !v.is_boolean() => Err(bad(path, "a boolean", v)),
        K::Int if !(v.is_i64() || v.is_u64()) => Err(bad(path, "an integer", v)),
        K::Num if !v.is_number() => Err(bad(path, "a number", v)),
        K::Obj if !v.is_object() => Err(bad(path, "an object", v)),
        K::StrList => match v.as_array() {
            None => Err(bad(path, "an array of strings", v)),
            Some(a) => a.iter().enumerate().try_for_each(|(i, x)| {
                check(&format!("{path}[{i}]"), K::Str, x).and_then(|_| if x.is_null() { Err(bad(&format!("{path}[{i}]"), "a string", x)) } else { Ok(()) })
            }),
        },
        K::ObjOfObj => match v.as_object() {
            None => Err(bad(path, "an object", v)),
            Some(o) => o.iter().try_for_each(|(key, x)| if x.is_object() { Ok(()) } else { Err(bad(&format!("{path}.{key}"), "an object", x)) }),
        },
        K::StrMap => match v.as_object() {
            None => Err(bad(path, "an object", v)),
            Some(o) => o.iter().try_for_each(|(key, x)| if x.is_string() { Ok(()) } else { Err(bad(&format!("{path}.{key}"), "a string", x)) }),
        },
        K::Enum(allowed) => match v.as_str() {
            Some(s) if allowed.contains(&s) => Ok(()),
            _ => Err(ApiError::invalid_request(path, format!("{path} must be one of {}.", allowed.join(", ")))),
        },
        K::Section(fields) => match v.as_object() {
            None => Err(bad(path, "an object", v)),
            Some(o) => check_fields(path, fields, o),
        },
        K::Prompts => match v.as_array() {
            None => Err(bad(path, "an array", v)),
            Some(a) => a.iter().enumerate().try_for_each(|(i, p)| check_prompt(&format!("{path}[{i}]"), p)),
        },
        _ => Ok(()),
    }
}

fn check_fields(path: &str, fields: &[(&str, K)], o: &Map<String, Value>) -> Result<(), ApiError> {
    for (name, k) in fields {
        if let Some(v) = o.get(*name) {
            check(&format!("{path}.{name}"), *k, v)?;
        }
    }
    Ok(())
}

fn require_str(path: &str, o: &Map<String, Value>, key: &str) -> Result<(), ApiError> {
    match o.get(key) {
        Some(Value::String(_)) => Ok(()),
        Some(v) => Err(bad(&format!("{path}.{key}"), "a string", v)),
        None => Err(ApiError::invalid_request(&format!("{path}.{key}"), format!("{path}.{key} is required."))),
    }
}

fn check_prompt(path: &str, p: &Value) -> Result<(), ApiError> {
    let Some(o) = p.as_object() else {
        return Err(bad(path, "an object", p));
    };
    require_str(path, o, "title")?;
    require_str(path, o, "message")?;
    if let Some(v) = o.get("icon") {
        check(&format!("{path}.icon"), K::Str, v)?;
    }
    match o.get("servers") {
        None | Some(Value::Null) => Ok(()),
        Some(Value::Array(servers)) => servers.iter().enumerate().try_for_each(|(i, s)| {
            let sp = format!("{path}.servers[{i}]");
            let Some(so) = s.as_object() else {
                return Err(bad(&sp, "an object", s));
            };
            require_str(&sp, so, "server_id")?;
            require_str(&sp, so, "server_type")
        }),
        Some(v) => Err(bad(&format!("{path}.servers"), "an array", v)),
    }
}

/// Validates `tools` (each entry an object of the AgentTool shape).
pub fn tools(items: &[Value], path: &str) -> Result<Vec<Value>, ApiError> {
    items
        .iter()
        .enumerate()
        .map(|(i, t)| {
            let p = format!("{path}[{i}]");
            let Some(o) = t.as_object() else {
                return Err(bad(&p, "an object", t));
            };
            check_fields(&p, TOOL_FIELDS, o)?;
            Ok(t.clone())
        })
        .collect()
}

/// Validates `resources` (objects).
pub fn resources(items: &[Value], path: &str) -> Result<Vec<Value>, ApiError> {
    items.iter().enumerate().map(|(i, r)| if r.is_object() { Ok(r.clone()) } else { Err(bad(&format!("{path}[{i}]"), "an object", r)) }).collect()
}

/// Validates a whole metadata object.
pub fn metadata(m: &Map<String, Value>, path: &str) -> Result<(), ApiError> {
    check_fields(path, METADATA_SECTIONS, m)
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
