//! Standalone JSON Schemas (2020-12) from the `ToSchema` derives: the OpenAPI component
//! references are inlined, so a schema can be handed to an LLM as tool parameters.

use serde_json::{Map, Value};
use utoipa::openapi::{RefOr, Schema};
use utoipa::ToSchema;

const REF_PREFIX: &str = "#/components/schemas/";

/// "a string", "an array", …: what a JSON value is, for error messages.
pub fn json_kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// The schema of `T` with every component reference inlined.
pub fn json_schema<T: ToSchema>() -> Value {
    let mut deps: Vec<(String, RefOr<Schema>)> = Vec::new();
    T::schemas(&mut deps);
    let defs: Map<String, Value> = deps.into_iter().map(|(name, s)| (name, serde_json::to_value(s).unwrap_or(Value::Null))).collect();
    let root = serde_json::to_value(T::schema()).unwrap_or(Value::Null);
    inline(root, &defs, 0)
}

fn inline(v: Value, defs: &Map<String, Value>, depth: usize) -> Value {
    match v {
        Value::Object(mut o) => {
            if let Some(Value::String(r)) = o.get("$ref") {
                if let Some(def) = r.strip_prefix(REF_PREFIX).and_then(|n| defs.get(n)) {
                    if depth < 32 {
                        let mut resolved = inline(def.clone(), defs, depth + 1);
                        // Sibling keywords of `$ref` (e.g. a description) win.
                        o.remove("$ref");
                        if let Value::Object(ro) = &mut resolved {
                            for (k, val) in o {
                                ro.insert(k, inline(val, defs, depth + 1));
                            }
                        }
                        return resolved;
                    }
                }
            }
            Value::Object(o.into_iter().map(|(k, val)| (k, inline(val, defs, depth))).collect())
        }
        Value::Array(a) => Value::Array(a.into_iter().map(|x| inline(x, defs, depth)).collect()),
        other => other,
    }
}

/// Optional tool arguments are simply omitted: drop `null` from their types so a model
/// is not invited to send it (a `null` is still accepted and means omission, §1.3).
pub fn drop_nullable(schema: &mut Value) {
    match schema {
        Value::Object(o) => {
            if let Some(Value::Array(types)) = o.get_mut("type") {
                types.retain(|t| t != "null");
                if types.len() == 1 {
                    let t = types[0].clone();
                    o.insert("type".into(), t);
                }
            }
            for key in ["oneOf", "anyOf"] {
                if let Some(Value::Array(alts)) = o.get_mut(key) {
                    alts.retain(|a| a.get("type") != Some(&Value::String("null".into())));
                    if alts.len() == 1 {
                        let only = alts.remove(0);
                        o.remove(key);
                        if let Value::Object(oo) = only {
                            for (k, v) in oo {
                                o.entry(k).or_insert(v);
                            }
                        }
                    }
                }
            }
            for v in o.values_mut() {
                drop_nullable(v);
            }
        }
        Value::Array(a) => a.iter_mut().for_each(drop_nullable),
        _ => {}
    }
}

/// Removes the top-level conditional keywords some tool formats do not accept (OpenAI
/// functions); the server still enforces the rule.
pub fn drop_conditionals(schema: &mut Value) {
    if let Value::Object(o) = schema {
        for k in ["allOf", "if", "then", "else"] {
            o.remove(k);
        }
    }
}

/// The argument path and message of a typed-deserialization error: the path serde
/// reached, plus the field a "missing field" or "unknown field" error names.
pub fn error_path(e: serde_path_to_error::Error<serde_json::Error>) -> (String, String) {
    let path = e.path().to_string();
    let mut param = if path == "." { String::new() } else { path };
    let message = e.into_inner().to_string();
    for prefix in ["missing field `", "unknown field `"] {
        if let Some(rest) = message.strip_prefix(prefix) {
            if let Some(field) = rest.split('`').next() {
                if prefix.starts_with("missing") || param.is_empty() {
                    param = if param.is_empty() { field.to_string() } else { format!("{param}.{field}") };
                }
            }
        }
    }
    (param, message)
}

/// Top-level fields of `body` that `T` does not define: ignored (API.md §1.3), but named
/// back to the caller, with the closest known field when one is near.
pub fn unknown_field_warnings<T: ToSchema>(body: &Value) -> Vec<String> {
    let Some(obj) = body.as_object() else { return vec![] };
    let schema = serde_json::to_value(T::schema()).unwrap_or(Value::Null);
    let known: Vec<&str> = schema.get("properties").and_then(Value::as_object).map(|p| p.keys().map(String::as_str).collect()).unwrap_or_default();
    obj.keys()
        .filter(|k| !known.contains(&k.as_str()))
        .map(|k| {
            let near = known.iter().map(|c| (edit_distance(k, c), *c)).filter(|(d, c)| *d <= 2.max(c.len() / 4)).min();
            match near {
                Some((_, c)) => format!("Ignored unknown field {k:?}; did you mean {c:?}?"),
                None => format!("Ignored unknown field {k:?}."),
            }
        })
        .collect()
}

/// Levenshtein distance (short field names only).
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            cur[j + 1] = (prev[j] + usize::from(ca != *cb)).min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_fields_are_named_with_a_suggestion() {
        let w = unknown_field_warnings::<crate::agents::AgentCreateRequest>(&serde_json::json!({"name": "x", "modle_name": "m", "zzz": 1}));
        assert_eq!(w.len(), 2);
        assert!(w[0].contains("modle_name") && w[0].contains("\"model_name\""), "{w:?}");
        assert!(!w[1].contains("did you mean"), "{w:?}");
    }
}
