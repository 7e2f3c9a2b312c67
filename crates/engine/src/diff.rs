//! Changes between two agent versions (AgentVersionChanges, API.md §8.0).

use serde_json::{json, Value};
use similar::{DiffTag, TextDiff};
use store::AgentSnapshot;
use wire::agents::{FieldChange, SkillChange, TextHunk, ToolChange};

/// Line hunks (0-based, end-exclusive) between two texts.
pub fn text_hunks(old: &str, new: &str) -> Vec<TextHunk> {
    let old_lines: Vec<&str> = old.split_inclusive('\n').collect();
    let new_lines: Vec<&str> = new.split_inclusive('\n').collect();
    let diff = TextDiff::from_slices(&old_lines, &new_lines);
    diff.ops()
        .iter()
        .filter(|op| op.tag() != DiffTag::Equal)
        .map(|op| {
            let (o, n) = (op.old_range(), op.new_range());
            TextHunk {
                old_start: o.start,
                old_end: o.end,
                new_start: n.start,
                new_end: n.end,
                old_text: old_lines[o.clone()].concat(),
                new_text: new_lines[n.clone()].concat(),
            }
        })
        .collect()
}

fn status(old: &Value, new: &Value) -> &'static str {
    match (old.is_null(), new.is_null()) {
        (true, false) => "added",
        (false, true) => "removed",
        _ => "modified",
    }
}

fn value_change(field: &str, old: Value, new: Value) -> Option<FieldChange> {
    (old != new).then(|| FieldChange::Value { field: field.into(), status: status(&old, &new).into(), old_value: old, new_value: new })
}

fn text_change(field: &str, old: &Option<String>, new: &Option<String>) -> Option<FieldChange> {
    if old == new {
        return None;
    }
    let (o, n) = (old.as_deref().unwrap_or(""), new.as_deref().unwrap_or(""));
    let st = match (old.as_deref().is_none_or(str::is_empty), new.as_deref().is_none_or(str::is_empty)) {
        (true, false) => "added",
        (false, true) => "removed",
        _ => "modified",
    };
    Some(FieldChange::Text { field: field.into(), status: st.into(), text_hunks: text_hunks(o, n) })
}

/// Identity of a tool entry: type plus whichever of name/server_id/saved_item_id it has.
fn tool_identity(t: &Value) -> Value {
    let mut id = serde_json::Map::new();
    for k in ["type", "name", "server_id", "saved_item_id"] {
        if let Some(v) = t.get(k).filter(|v| !v.is_null()) {
            id.insert(k.into(), v.clone());
        }
    }
    Value::Object(id)
}

fn tool_field_changes(old: &Value, new: &Value) -> Vec<FieldChange> {
    let mut keys: Vec<String> = Vec::new();
    for m in [old.as_object(), new.as_object()].into_iter().flatten() {
        for k in m.keys() {
            if !keys.contains(k) {
                keys.push(k.clone());
            }
        }
    }
    keys.iter().filter_map(|k| value_change(k, old.get(k).cloned().unwrap_or(Value::Null), new.get(k).cloned().unwrap_or(Value::Null))).collect()
}

pub fn tool_changes(old: &[Value], new: &[Value]) -> Vec<ToolChange> {
    let mut out = Vec::new();
    let old_ids: Vec<Value> = old.iter().map(tool_identity).collect();
    let new_ids: Vec<Value> = new.iter().map(tool_identity).collect();
    for (ni, n) in new.iter().enumerate() {
        match old_ids.iter().position(|id| *id == new_ids[ni]) {
            None => out.push(ToolChange {
                identity: new_ids[ni].clone(),
                status: "added".into(),
                old_position: None,
                new_position: Some(ni),
                old_value: Value::Null,
                new_value: n.clone(),
                field_changes: vec![],
            }),
            Some(oi) => {
                let o = &old[oi];
                if o != n {
                    out.push(ToolChange {
                        identity: new_ids[ni].clone(),
                        status: "modified".into(),
                        old_position: Some(oi),
                        new_position: Some(ni),
                        old_value: o.clone(),
                        new_value: n.clone(),
                        field_changes: tool_field_changes(o, n),
                    });
                } else if oi != ni {
                    out.push(ToolChange {
                        identity: new_ids[ni].clone(),
                        status: "moved".into(),
                        old_position: Some(oi),
                        new_position: Some(ni),
                        old_value: o.clone(),
                        new_value: n.clone(),
                        field_changes: vec![],
                    });
                }
            }
        }
    }
    for (oi, o) in old.iter().enumerate() {
        if !new_ids.contains(&old_ids[oi]) {
            out.push(ToolChange {
                identity: old_ids[oi].clone(),
                status: "removed".into(),
                old_position: Some(oi),
                new_position: None,
                old_value: o.clone(),
                new_value: Value::Null,
                field_changes: vec![],
            });
        }
    }
    out
}

/// Field, tool and skill changes from `old` to `new`.
pub fn changes(old: &AgentSnapshot, new: &AgentSnapshot) -> (Vec<FieldChange>, Vec<ToolChange>, Vec<SkillChange>) {
    let (o, n) = (&old.config, &new.config);
    let mut fields: Vec<FieldChange> = Vec::new();
    fields.extend(value_change("name", json!(o.name), json!(n.name)));
    fields.extend(text_change("description", &o.description, &n.description));
    fields.extend(value_change("model_name", json!(o.model_name), json!(n.model_name)));
    fields.extend(text_change("system_prompt", &o.system_prompt, &n.system_prompt));
    fields.extend(value_change("folder_id", json!(o.folder_id), json!(n.folder_id)));
    fields.extend(value_change("resources", json!(o.resources), json!(n.resources)));
    let mut sections: Vec<&String> = o.metadata.keys().chain(n.metadata.keys()).collect();
    sections.sort();
    sections.dedup();
    for s in sections {
        fields.extend(value_change(
            &format!("metadata.{s}"),
            o.metadata.get(s).cloned().unwrap_or(Value::Null),
            n.metadata.get(s).cloned().unwrap_or(Value::Null),
        ));
    }
    fields.extend(value_change("team_id", json!(old.team_id), json!(new.team_id)));
    fields.extend(value_change("is_active", json!(old.is_active), json!(new.is_active)));
    fields.extend(value_change("incognito", json!(o.incognito), json!(n.incognito)));

    let mut skills = Vec::new();
    for s in &n.skill_ids {
        if !o.skill_ids.contains(s) {
            skills.push(SkillChange { skill_id: s.clone(), status: "added".into() });
        }
    }
    for s in &o.skill_ids {
        if !n.skill_ids.contains(s) {
            skills.push(SkillChange { skill_id: s.clone(), status: "removed".into() });
        }
    }
    (fields, tool_changes(&o.tools, &n.tools), skills)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hunks_are_line_ranges() {
        let h = text_hunks("a\nb\nc\n", "a\nB\nc\nd\n");
        assert_eq!(h.len(), 2);
        assert_eq!((h[0].old_start, h[0].old_end, h[0].new_start, h[0].new_end), (1, 2, 1, 2));
        assert_eq!(h[0].old_text, "b\n");
        assert_eq!(h[0].new_text, "B\n");
        assert_eq!((h[1].old_start, h[1].old_end, h[1].new_start, h[1].new_end), (3, 3, 3, 4));
    }

    #[test]
    fn tools_added_removed_moved() {
        let a = json!({"type": "web_fetch"});
        let b = json!({"type": "human_input"});
        let c = json!({"type": "mcp_server", "server_id": "s"});
        let ch = tool_changes(&[a.clone(), b.clone()], &[b.clone(), a.clone(), c]);
        let st: Vec<&str> = ch.iter().map(|c| c.status.as_str()).collect();
        assert_eq!(st, vec!["moved", "moved", "added"]);
        let ch = tool_changes(&[a.clone(), b], &[a]);
        assert_eq!(ch[0].status, "removed");
    }
}
