//! The `human_input` ability (§7.6): offered to the model like a tool, but a call never
//! executes here: the run pauses on a `human_input` PendingApproval and the answers
//! given through S11 become the tool result.

use async_trait::async_trait;
use serde_json::{json, Value};
use tools::{Tool, ToolContext, ToolError};

pub struct HumanInput;

#[async_trait]
impl Tool for HumanInput {
    fn name(&self) -> &str {
        crate::runtime::agent_loop::HUMAN_INPUT
    }

    fn description(&self) -> &str {
        "Ask the user one or more questions and wait for their answers. Use only when you cannot proceed without the user's input."
    }

    fn parameters(&self) -> Value {
        json!({
            "type": "object",
            "properties": {
                "title": {"type": "string", "description": "What the questions are about."},
                "questions": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "properties": {
                            "name": {"type": "string"},
                            "label": {"type": "string"},
                            "type": {"type": "string", "enum": ["text", "number", "boolean", "select"]},
                            "required": {"type": "boolean"},
                            "options": {"type": "array", "items": {"type": "string"}}
                        },
                        "required": ["name", "label", "type"]
                    }
                }
            },
            "required": ["title", "questions"]
        })
    }

    fn read_only(&self) -> bool {
        true
    }

    async fn call(&self, _args: Value, _ctx: &ToolContext) -> Result<Value, ToolError> {
        Err(ToolError::new("human_input is answered by the user through the approvals endpoint"))
    }
}
