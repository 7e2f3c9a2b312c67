//! Openloop's own API as agent tools (issue: an agent tool entry `{"type": "openloop_api"}`
//! with an optional `restricted_tools` list): an agent can orchestrate other agents,
//! sessions, artifacts, flows and exports with the rights of the user whose message
//! started the run, subject to the agent's approval modes.
//!
//! The engine knows no HTTP: the HTTP layer registers an [`ApiInvoker`] that runs the
//! endpoint in-process exactly as `POST /tools/{name}/invoke` does.

use std::sync::Arc;

use async_trait::async_trait;
use serde_json::{json, Value};
use tools::{Tool, ToolContext, ToolError};
use wire::tools::{ToolFormat, ToolSpec};

/// The agent tool entry type that enables these tools.
pub const OPENLOOP_API: &str = "openloop_api";

/// Runs a catalogue tool as a user; returns the endpoint's status and JSON body.
#[async_trait]
pub trait ApiInvoker: Send + Sync {
    async fn invoke(&self, user_id: &str, tool: &'static ToolSpec, args: Value) -> (u16, Value);
}

/// One catalogue tool offered to a model.
pub struct ApiTool {
    spec: &'static ToolSpec,
    description: String,
    parameters: Value,
    invoker: Arc<dyn ApiInvoker>,
}

impl ApiTool {
    pub fn new(spec: &'static ToolSpec, invoker: Arc<dyn ApiInvoker>) -> Self {
        // The OpenAI form: providers' function schemas refuse conditional keywords.
        let rendered = spec.render(ToolFormat::Openai);
        ApiTool { spec, description: spec.full_description(), parameters: rendered["function"]["parameters"].clone(), invoker }
    }
}

#[async_trait]
impl Tool for ApiTool {
    fn name(&self) -> &str {
        self.spec.name
    }
    fn description(&self) -> &str {
        &self.description
    }
    fn parameters(&self) -> Value {
        self.parameters.clone()
    }
    fn read_only(&self) -> bool {
        self.spec.read_only
    }
    async fn call(&self, args: Value, ctx: &ToolContext) -> Result<Value, ToolError> {
        let (status, body) = self.invoker.invoke(&ctx.user_id, self.spec, args).await;
        let out = json!({"status": status, "body": body});
        if status >= 400 {
            return Err(ToolError::new(out.to_string()));
        }
        Ok(out)
    }
}

/// The catalogue tools an `openloop_api` entry enables: all, or its `restricted_tools`.
pub fn enabled_tools(entry: &Value, invoker: &Arc<dyn ApiInvoker>) -> Vec<Arc<dyn Tool>> {
    let only: Option<Vec<&str>> = entry.get("restricted_tools").and_then(Value::as_array).map(|a| a.iter().filter_map(Value::as_str).collect());
    wire::tools::catalogue()
        .iter()
        .filter(|t| only.as_ref().is_none_or(|o| o.contains(&t.name)))
        .map(|t| Arc::new(ApiTool::new(t, invoker.clone())) as Arc<dyn Tool>)
        .collect()
}
