//! Transcript parts (§8.1.2) derived from committed steps, and the model context
//! derived from the transcript.

use llm::{ChatMessage, ToolCall};
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};
use store::{MessageRecord, StepRecord};

const BASE62: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// A stable id derived from its inputs, so recomputed parts keep their ids.
pub fn derived_id(prefix: &str, seed: &str) -> String {
    let h = Sha256::digest(seed.as_bytes());
    let mut s = String::with_capacity(prefix.len() + 23);
    s.push_str(prefix);
    s.push('_');
    for b in h.iter().take(22) {
        s.push(BASE62[(*b as usize) % 62] as char);
    }
    s
}

pub fn part_id(run_id: &str, step: i64, kind: &str, idx: usize) -> String {
    derived_id("part", &format!("{run_id}/{step}/{kind}/{idx}"))
}

/// The wire `toolCallId` of a step's `idx`-th call (`tc_…`); the provider's own id is
/// kept internally for the model context.
pub fn tool_call_id(run_id: &str, step: i64, idx: usize) -> String {
    derived_id("tc", &format!("{run_id}/{step}/{idx}"))
}

/// Output of a committed model step.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct ModelOutput {
    #[serde(default)]
    pub text: String,
    #[serde(default)]
    pub reasoning: String,
    #[serde(default)]
    pub tool_calls: Vec<ToolCall>,
    #[serde(default)]
    pub finish_reason: String,
    /// Cut short by cancellation or interruption.
    #[serde(default)]
    pub partial: bool,
}

/// Output of a tool step.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct ToolOutput {
    /// `completed` | `error` | `rejected` | `cancelled`
    pub state: String,
    pub result: Value,
}

/// Rebuilds the assistant message parts of one run from its steps.
pub fn build_parts(run_id: &str, steps: &[StepRecord], error: Option<&str>) -> Vec<Value> {
    let mut parts = Vec::new();
    let mut model_steps: Vec<&StepRecord> = steps.iter().filter(|s| s.call_id.is_empty() && s.state == "done").collect();
    model_steps.sort_by_key(|s| s.step);
    for ms in model_steps {
        let Ok(out) = serde_json::from_value::<ModelOutput>(ms.output.clone()) else {
            continue;
        };
        if !out.reasoning.is_empty() {
            parts.push(json!({"id": part_id(run_id, ms.step, "r", 0), "type": "reasoning", "reasoning": out.reasoning, "_step": ms.step}));
        }
        if !out.text.is_empty() {
            parts.push(json!({"id": part_id(run_id, ms.step, "t", 0), "type": "text", "text": out.text, "_step": ms.step}));
        }
        for (i, tc) in out.tool_calls.iter().enumerate() {
            let step = steps.iter().find(|s| s.step == ms.step && s.call_id == i.to_string());
            let mut result = Map::new();
            result.insert("args".into(), tc.arguments.clone());
            let state = match step {
                Some(s) if s.state == "done" => match serde_json::from_value::<ToolOutput>(s.output.clone()) {
                    Ok(o) => {
                        result.insert("result".into(), o.result);
                        o.state
                    }
                    Err(_) => "error".into(),
                },
                Some(s) if s.state == "awaiting" => "awaiting_approval".into(),
                Some(s) if s.state == "started" => "running".into(),
                Some(_) => "pending".into(),
                None => "pending".into(),
            };
            let artifact = (tc.name == "write_artifact" && state == "completed").then(|| result.get("result").cloned()).flatten();
            parts.push(json!({
                "id": part_id(run_id, ms.step, "c", i),
                "type": "tool_invocation",
                "toolCallId": tool_call_id(run_id, ms.step, i),
                "_callId": tc.id,
                "toolName": tc.name,
                "toolCallState": state,
                "result": Value::Object(result),
                "_step": ms.step,
            }));
            if let Some(f) = artifact {
                let file = json!({"artifact_id": f["artifact_id"], "version_id": f["version_id"], "filename": f["filename"], "media_type": f["media_type"], "size": f["size"]});
                parts.push(json!({"id": part_id(run_id, ms.step, "f", i), "type": "file", "file": file, "_step": ms.step}));
            }
        }
    }
    if let Some(e) = error {
        parts.push(json!({"id": part_id(run_id, i64::MAX, "e", 0), "type": "error", "error": e}));
    }
    parts
}

/// Text of an assistant message: its text parts joined with "\n".
pub fn text_of(parts: &Value) -> String {
    parts
        .as_array()
        .map(|a| {
            a.iter()
                .filter(|p| p.get("type").and_then(Value::as_str) == Some("text"))
                .filter_map(|p| p.get("text").and_then(Value::as_str))
                .collect::<Vec<_>>()
                .join("\n")
        })
        .unwrap_or_default()
}

fn tool_result_text(part: &Value) -> String {
    let state = part.get("toolCallState").and_then(Value::as_str).unwrap_or("");
    match part.get("result").and_then(|r| r.get("result")) {
        Some(Value::String(s)) if state != "completed" => format!("Error: {s}"),
        Some(Value::String(s)) => s.clone(),
        Some(v) => v.to_string(),
        None => format!("Error: tool call {state}"),
    }
}

fn provider_call_id(part: &Value) -> String {
    part.get("_callId").or_else(|| part.get("toolCallId")).and_then(Value::as_str).unwrap_or_default().to_string()
}

/// Converts assistant parts into model turns: one assistant turn per step, followed by
/// one tool message per call of that step.
pub fn assistant_turns(parts: &Value, out: &mut Vec<ChatMessage>) {
    let Some(parts) = parts.as_array() else {
        return;
    };
    let mut steps: Vec<i64> = parts.iter().filter_map(|p| p.get("_step").and_then(Value::as_i64)).collect();
    steps.dedup();
    if steps.is_empty() {
        let text = text_of(&Value::Array(parts.clone()));
        if !text.is_empty() {
            out.push(ChatMessage::Assistant { text, tool_calls: vec![] });
        }
        return;
    }
    for s in steps {
        let of_step: Vec<&Value> = parts.iter().filter(|p| p.get("_step").and_then(Value::as_i64) == Some(s)).collect();
        let text = of_step.iter().filter(|p| p["type"] == "text").filter_map(|p| p["text"].as_str()).collect::<Vec<_>>().join("\n");
        let calls: Vec<&&Value> = of_step.iter().filter(|p| p["type"] == "tool_invocation").collect();
        let tool_calls: Vec<ToolCall> = calls
            .iter()
            .map(|p| ToolCall {
                id: provider_call_id(p),
                name: p["toolName"].as_str().unwrap_or_default().to_string(),
                arguments: p.get("result").and_then(|r| r.get("args")).cloned().unwrap_or(json!({})),
            })
            .collect();
        if text.is_empty() && tool_calls.is_empty() {
            continue;
        }
        out.push(ChatMessage::Assistant { text, tool_calls });
        for p in calls {
            out.push(ChatMessage::Tool { tool_call_id: provider_call_id(p), content: tool_result_text(p) });
        }
    }
}

/// A user message as the model sees it: its text, then its attachments (text files
/// inlined, others described).
fn user_text(m: &MessageRecord) -> String {
    let mut text = m.content.clone().unwrap_or_default();
    for p in m.parts.as_array().into_iter().flatten().filter(|p| p["type"] == "file") {
        let f = &p["file"];
        let name = f["file_name"].as_str().unwrap_or("file");
        match p.get("_text").and_then(Value::as_str) {
            Some(t) => text.push_str(&format!("\n\n[Attached file: {name}]\n{t}")),
            None => text.push_str(&format!(
                "\n\n[Attached file: {name} ({}, {} bytes), not shown as text]",
                f["media_type"].as_str().unwrap_or("application/octet-stream"),
                f["size"].as_i64().unwrap_or(0)
            )),
        }
    }
    text
}

/// The model context of earlier turns (every message except `skip_message_id`).
pub fn history(messages: &[MessageRecord], skip_message_id: Option<&str>) -> Vec<ChatMessage> {
    let mut out = Vec::new();
    for m in messages {
        if Some(m.id.as_str()) == skip_message_id {
            continue;
        }
        match m.role.as_str() {
            "user" => out.push(ChatMessage::User { text: user_text(m) }),
            _ => assistant_turns(&m.parts, &mut out),
        }
    }
    out
}

/// Adds numeric members of `delta` into `base` (usage counters).
pub fn add_usage(base: &mut Value, delta: &Value) {
    if !base.is_object() {
        *base = json!({});
    }
    let (Some(b), Some(d)) = (base.as_object_mut(), delta.as_object()) else {
        return;
    };
    for (k, v) in d {
        let Some(y) = v.as_f64() else { continue };
        let x = b.get(k).and_then(Value::as_f64).unwrap_or(0.0);
        let int = (v.is_i64() || v.is_u64()) && b.get(k).is_none_or(|x| x.is_i64() || x.is_u64());
        let sum = if int { json!((x + y) as i64) } else { json!(((x + y) * 10000.0).round() / 10000.0) };
        b.insert(k.clone(), sum);
    }
}

/// Parts as clients see them (§8.1.2 allow-list; absent values omitted).
pub fn sanitize_parts(parts: &Value) -> Vec<Value> {
    const PART_FIELDS: &[&str] = &["id", "type", "text", "reasoning", "toolCallId", "toolName", "toolCallState", "result", "error", "file"];
    parts
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(Value::as_object)
                .map(|p| {
                    let mut o = Map::new();
                    for f in PART_FIELDS {
                        match p.get(*f) {
                            None | Some(Value::Null) => {}
                            Some(Value::Object(r)) if *f == "result" => {
                                let mut rr = Map::new();
                                for k in ["args", "result"] {
                                    if let Some(v) = r.get(k) {
                                        rr.insert(k.into(), v.clone());
                                    }
                                }
                                o.insert("result".into(), Value::Object(rr));
                            }
                            Some(v) => {
                                o.insert((*f).into(), v.clone());
                            }
                        }
                    }
                    Value::Object(o)
                })
                .collect()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_roundtrip_into_model_turns() {
        let run = "run_x";
        let out = ModelOutput {
            text: "Looking".into(),
            tool_calls: vec![ToolCall { id: "c1".into(), name: "current_time".into(), arguments: json!({}) }],
            ..Default::default()
        };
        let steps = vec![
            StepRecord { run_id: run.into(), step: 0, call_id: "".into(), state: "done".into(), output: serde_json::to_value(&out).unwrap() },
            StepRecord {
                run_id: run.into(),
                step: 0,
                call_id: "0".into(),
                state: "done".into(),
                output: json!({"state": "completed", "result": {"utc": "now"}}),
            },
            StepRecord { run_id: run.into(), step: 1, call_id: "".into(), state: "done".into(), output: json!({"text": "It is now."}) },
        ];
        let parts = Value::Array(build_parts(run, &steps, None));
        assert_eq!(text_of(&parts), "Looking\nIt is now.");
        let mut turns = Vec::new();
        assistant_turns(&parts, &mut turns);
        assert_eq!(turns.len(), 3);
        assert!(matches!(&turns[1], ChatMessage::Tool { tool_call_id, .. } if tool_call_id == "c1"));
        let clean = sanitize_parts(&parts);
        assert!(clean.iter().all(|p| p.get("_step").is_none()));
        assert_eq!(clean[1]["toolCallState"], "completed");
        // Ids are stable.
        assert_eq!(build_parts(run, &steps, None)[0]["id"], parts[0]["id"]);
    }
}
