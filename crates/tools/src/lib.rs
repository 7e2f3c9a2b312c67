//! Agent tools for Openloop.
//!
//! Invariant: this crate knows nothing about HTTP servers, SQL or the Gumloop wire format;
//! tools take JSON arguments and return JSON. The engine decides when a tool runs (approval
//! modes, crash recovery) and how its result is stored and shown; a tool only turns arguments
//! into a result or a [`ToolError`], which is handed back to the model and is never fatal to a
//! run.
//!
//! Built-ins:
//! - [`CurrentTime`] (`current_time`): the UTC clock.
//! - [`WebFetch`] (`web_fetch`): HTTP(S) GET with text extraction under an [`SsrfPolicy`]
//!   (API.md §9.2 item 6). The policy is public so webhooks and MCP clients can reuse it.
//!
//! [`ToolSet`] is the registry the engine offers to the model.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use schemars::JsonSchema;
use serde::de::DeserializeOwned;
use serde_json::Value;

mod fetch;
mod html;
mod ssrf;
mod time;

pub use fetch::{Limits, WebFetch, WebFetchArgs, MAX_REDIRECTS, USER_AGENT};
pub use html::html_to_text;
pub use ssrf::{classify_ip, AllowEntry, AllowHost, SsrfPolicy, BLOCKED_PREFIX, STANDARD_PORTS};
pub use time::{Clock, CurrentTime};

/// A capability offered to the model.
#[async_trait::async_trait]
pub trait Tool: Send + Sync {
    /// Name the model calls the tool by (unique within a [`ToolSet`]).
    fn name(&self) -> &str;
    /// One-paragraph description shown to the model.
    fn description(&self) -> &str;
    /// JSON Schema (object) of the arguments, generated with schemars from an args struct.
    fn parameters(&self) -> Value;
    /// Read-only tools may be re-run after a crash and skip `write` approval mode.
    fn read_only(&self) -> bool;
    /// Run the tool. Errors are returned to the model as a tool result, never fatal.
    async fn call(&self, args: Value, ctx: &ToolContext) -> Result<Value, ToolError>;
    /// For a tool an MCP server offers: `(server id, the server's own tool name)`, so
    /// approval settings of the server's agent entry apply to it.
    fn mcp_origin(&self) -> Option<(&str, &str)> {
        None
    }
    /// The tool acts as the user whose message started the run (with that user's
    /// rights), not as the agent's creator.
    fn acts_as_session_user(&self) -> bool {
        false
    }
}

/// Who a tool call runs for. Tools must not trust anything else about the caller.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ToolContext {
    pub session_id: String,
    pub run_id: String,
    pub user_id: String,
}

/// A tool failure. The message is returned to the model; a tool error is never fatal to a run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ToolError {
    pub message: String,
}

impl ToolError {
    pub fn new(message: impl Into<String>) -> Self {
        Self { message: message.into() }
    }
}

impl fmt::Display for ToolError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for ToolError {}

impl From<String> for ToolError {
    fn from(message: String) -> Self {
        Self { message }
    }
}

impl From<&str> for ToolError {
    fn from(message: &str) -> Self {
        Self::new(message)
    }
}

/// Deserialize tool arguments, naming the offending field on failure.
///
/// `null` is treated as `{}` (models sometimes send no arguments at all for argument-less
/// tools). The error message has the form `invalid arguments: <field path>: <problem>`, e.g.
/// `invalid arguments: url: invalid type: integer `5`, expected a string`, or
/// `invalid arguments: missing field `url``.
pub fn parse_args<T: DeserializeOwned>(args: Value) -> Result<T, ToolError> {
    let args = if args.is_null() { Value::Object(serde_json::Map::new()) } else { args };
    serde_path_to_error::deserialize(args).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        if path.is_empty() || path == "." {
            ToolError::new(format!("invalid arguments: {inner}"))
        } else {
            ToolError::new(format!("invalid arguments: {path}: {inner}"))
        }
    })
}

/// JSON Schema (draft 2020-12, subschemas inlined) of an arguments struct, ready to be offered
/// to a model: no `$schema`/`title`/root `description` keys (the tool's own description says
/// it), and always an object with `properties`.
pub fn schema_of<T: JsonSchema>() -> Value {
    let schema =
        schemars::generate::SchemaSettings::draft2020_12().with(|s| s.inline_subschemas = true).for_deserialize().into_generator().into_root_schema_for::<T>();
    let mut value = schema.to_value();
    if let Value::Object(map) = &mut value {
        map.remove("$schema");
        map.remove("title");
        map.remove("description");
        map.entry("type").or_insert_with(|| Value::String("object".into()));
        map.entry("properties").or_insert_with(|| Value::Object(serde_json::Map::new()));
    }
    value
}

/// `(name, description, parameters)` of a tool, as offered to the model.
pub fn spec_of(tool: &dyn Tool) -> (String, String, Value) {
    (tool.name().to_string(), tool.description().to_string(), tool.parameters())
}

/// The tools offered to the model for one run, in offer order, looked up by name.
#[derive(Clone, Default)]
pub struct ToolSet {
    tools: Vec<Arc<dyn Tool>>,
    index: HashMap<String, usize>,
}

impl ToolSet {
    /// Build a set. A later tool with the same name as an earlier one replaces it, keeping the
    /// earlier position.
    pub fn new(tools: Vec<Arc<dyn Tool>>) -> Self {
        let mut set = Self::default();
        for tool in tools {
            set.insert(tool);
        }
        set
    }

    /// Add a tool, replacing (in place) any tool with the same name.
    pub fn insert(&mut self, tool: Arc<dyn Tool>) {
        let name = tool.name().to_string();
        match self.index.get(&name) {
            Some(&i) => self.tools[i] = tool,
            None => {
                self.index.insert(name, self.tools.len());
                self.tools.push(tool);
            }
        }
    }

    pub fn get(&self, name: &str) -> Option<&Arc<dyn Tool>> {
        self.index.get(name).map(|&i| &self.tools[i])
    }

    pub fn contains(&self, name: &str) -> bool {
        self.index.contains_key(name)
    }

    /// `Some(read_only)` for a known tool.
    pub fn read_only(&self, name: &str) -> Option<bool> {
        self.get(name).map(|t| t.read_only())
    }

    pub fn names(&self) -> Vec<&str> {
        self.tools.iter().map(|t| t.name()).collect()
    }

    pub fn iter(&self) -> impl Iterator<Item = &Arc<dyn Tool>> {
        self.tools.iter()
    }

    pub fn len(&self) -> usize {
        self.tools.len()
    }

    pub fn is_empty(&self) -> bool {
        self.tools.is_empty()
    }

    /// `(name, description, parameters)` of every tool, in offer order.
    pub fn specs(&self) -> Vec<(String, String, Value)> {
        self.tools.iter().map(|t| spec_of(t.as_ref())).collect()
    }

    /// Call a tool by name; an unknown name is a [`ToolError`] for the model.
    pub async fn call(&self, name: &str, args: Value, ctx: &ToolContext) -> Result<Value, ToolError> {
        match self.get(name) {
            Some(tool) => tool.call(args, ctx).await,
            None => Err(ToolError::new(format!("unknown tool: {name}"))),
        }
    }
}

impl fmt::Debug for ToolSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ToolSet").field("tools", &self.names()).finish()
    }
}
