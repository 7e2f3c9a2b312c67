//! A tool of an attached MCP server, offered to the model under a name unique in the
//! run (`<server id>__<tool>`, letters, digits, `_` and `-`, at most 64 characters).

use std::sync::Arc;

use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use store::McpServerRecord;
use tools::{Tool, ToolContext, ToolError};

use crate::Engine;

pub struct McpTool {
    engine: Arc<Engine>,
    server: McpServerRecord,
    offered: String,
    raw: String,
    description: String,
    parameters: Value,
    read_only: bool,
}

impl McpTool {
    pub fn new(engine: Arc<Engine>, server: McpServerRecord, offered: String, listed: &Value) -> Self {
        let raw = listed.get("name").and_then(Value::as_str).unwrap_or_default().to_string();
        let server_name = server.config.get("name").and_then(Value::as_str).unwrap_or(&server.id).to_string();
        let description = match listed.get("description").and_then(Value::as_str).filter(|d| !d.is_empty()) {
            Some(d) => format!("{d} (tool {raw} of MCP server {server_name})"),
            None => format!("Tool {raw} of MCP server {server_name}."),
        };
        let mut parameters = listed.get("inputSchema").cloned().filter(Value::is_object).unwrap_or_else(|| serde_json::json!({"type": "object"}));
        if let Some(o) = parameters.as_object_mut() {
            o.entry("properties").or_insert_with(|| Value::Object(Map::new()));
            o.remove("$schema");
        }
        let read_only = listed.get("annotations").and_then(|a| a.get("readOnlyHint")).and_then(Value::as_bool).unwrap_or(false);
        McpTool { engine, server, offered, raw, description, parameters, read_only }
    }
}

/// A function name for `tool` of `server_id` that no name in `taken` has.
pub fn offered_name(server_id: &str, tool: &str, taken: &[String]) -> String {
    let clean = |s: &str| s.chars().map(|c| if c.is_ascii_alphanumeric() || c == '_' || c == '-' { c } else { '_' }).collect::<String>();
    let mut name = format!("{}__{}", clean(server_id), clean(tool));
    if name.len() > 64 || taken.contains(&name) {
        // Long or clashing: keep a readable head and make it unique with a digest.
        let digest = hex(&Sha256::digest(format!("{server_id}\u{0}{tool}").as_bytes())[..4]);
        let head: String = name.chars().take(64 - 9).collect();
        name = format!("{head}_{digest}");
        let mut n = 1;
        while taken.contains(&name) {
            name = format!("{}_{n}", &name[..name.len().min(60)]);
            n += 1;
        }
    }
    name
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[async_trait::async_trait]
impl Tool for McpTool {
    fn name(&self) -> &str {
        &self.offered
    }
    fn description(&self) -> &str {
        &self.description
    }
    fn parameters(&self) -> Value {
        self.parameters.clone()
    }
    /// The server's `readOnlyHint` (absent: a tool that may write).
    fn read_only(&self) -> bool {
        self.read_only
    }
    fn mcp_origin(&self) -> Option<(&str, &str)> {
        Some((&self.server.id, &self.raw))
    }
    async fn call(&self, args: Value, _ctx: &ToolContext) -> Result<Value, ToolError> {
        let arguments = match args {
            Value::Null => Map::new(),
            Value::Object(m) => m,
            other => return Err(ToolError::new(format!("invalid arguments: expected an object, got {other}"))),
        };
        let result =
            self.engine.mcp_call_tool(&self.server, &self.raw, arguments).await.map_err(|e| ToolError::new(format!("MCP server {}: {e}", self.server.id)))?;
        let content = super::content_strings(&result);
        if result.get("isError").and_then(Value::as_bool).unwrap_or(false) {
            let text = content.iter().map(|c| c.as_str().map(str::to_string).unwrap_or_else(|| c.to_string())).collect::<Vec<_>>().join("\n");
            return Err(ToolError::new(if text.is_empty() { "the tool reported an error".to_string() } else { text }));
        }
        if let Some(structured) = result.get("structuredContent").filter(|v| !v.is_null()) {
            return Ok(structured.clone());
        }
        Ok(match content.len() {
            0 => Value::Null,
            1 => content.into_iter().next().unwrap_or(Value::Null),
            _ => Value::Array(content),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offered_names_are_valid_and_unique() {
        assert_eq!(offered_name("notes", "add_note", &[]), "notes__add_note");
        assert_eq!(offered_name("my.srv", "a b/c", &[]), "my_srv__a_b_c");
        let long = offered_name("s", &"x".repeat(100), &[]);
        assert!(long.len() <= 64, "{long}");
        let taken = vec!["notes__add_note".to_string()];
        let other = offered_name("notes", "add_note", &taken);
        assert_ne!(other, "notes__add_note");
        assert!(other.len() <= 64 && other.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-'));
    }
}
