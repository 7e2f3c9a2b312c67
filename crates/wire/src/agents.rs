//! Agent shapes (API.md §8.0 Agent, AgentVersion, AgentVersionChanges; §8.6).

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::ToSchema;

#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema, PartialEq)]
pub struct CreatorPayload {
    pub id: Option<String>,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub email: Option<String>,
    pub profile_picture: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema, PartialEq)]
pub struct AgentIncognito {
    pub enforced: bool,
}

/// One entry of an agent's `tools` (all fields optional; unknown keys kept verbatim).
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
pub struct AgentTool {
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub server_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub saved_item_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub credential_mode: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub approval_mode: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tool_approval_modes: Option<Map<String, Value>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub restricted_tools: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub is_disabled: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metadata: Option<Map<String, Value>>,
}

/// The agent object returned by G1–G4 and G9.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Agent {
    pub id: String,
    pub name: String,
    pub description: Option<String>,
    pub system_prompt: Option<String>,
    pub model_name: Option<String>,
    pub folder_id: Option<String>,
    pub team_id: Option<String>,
    pub is_active: bool,
    #[schema(value_type = Vec<AgentTool>)]
    pub tools: Vec<Value>,
    #[schema(value_type = Vec<Object>)]
    pub resources: Vec<Value>,
    pub skill_ids: Vec<String>,
    #[schema(value_type = Object)]
    pub abilities: Value,
    pub incognito: AgentIncognito,
    #[schema(value_type = Option<Vec<Object>>)]
    pub knowledge_sources: Option<Vec<Value>>,
    #[schema(value_type = Option<Vec<Object>>)]
    pub triggers: Option<Vec<Value>>,
    pub version: i64,
    #[schema(value_type = Object)]
    pub metadata: Value,
    #[serde(rename = "type")]
    pub kind: String,
    pub created_at: String,
    /// Present on G3 and with `include_last_used` (may be `null`).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    pub last_used_at: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    pub last_updated_at: Option<Value>,
    pub active_trigger_count: i64,
    pub creator: Option<CreatorPayload>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct AgentResponse {
    pub agent: Agent,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct AgentListResponse {
    #[schema(value_type = Vec<Agent>)]
    pub agents: Vec<Value>,
    pub next_cursor: Option<String>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct AgentDeleteResponse {
    pub agent_id: String,
    pub deleted: bool,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct AgentAbilitiesResponse {
    pub agent_id: String,
    #[schema(value_type = Object)]
    pub abilities: Value,
    pub version: i64,
}

/// G2 request body (documentation schema; the engine validates field by field).
#[derive(Debug, Clone, Deserialize, ToSchema)]
pub struct AgentCreateRequest {
    pub name: String,
    pub model_name: Option<String>,
    pub description: Option<String>,
    pub system_prompt: Option<String>,
    pub tools: Option<Vec<AgentTool>>,
    #[schema(value_type = Option<Vec<Object>>)]
    pub resources: Option<Vec<Value>>,
    pub skill_ids: Option<Vec<String>>,
    #[schema(value_type = Option<Vec<Object>>)]
    pub knowledge_sources: Option<Vec<Value>>,
    #[schema(value_type = Option<Object>)]
    pub metadata: Option<Value>,
    pub folder_id: Option<String>,
    pub is_active: Option<bool>,
    pub agent_id: Option<String>,
    pub team_id: Option<String>,
    pub incognito: Option<bool>,
}

/// G4 request body.
#[derive(Debug, Clone, Deserialize, ToSchema)]
pub struct AgentUpdateRequest {
    pub name: Option<String>,
    pub model_name: Option<String>,
    pub description: Option<String>,
    pub system_prompt: Option<String>,
    pub tools: Option<Vec<AgentTool>>,
    #[schema(value_type = Option<Vec<Object>>)]
    pub resources: Option<Vec<Value>>,
    #[schema(value_type = Option<Object>)]
    pub metadata: Option<Value>,
    pub is_active: Option<bool>,
    pub team_id: Option<String>,
    pub version: Option<i64>,
}

/// What a version freezes (AgentVersion.composition).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
pub struct AgentComposition {
    pub complete: bool,
    pub schema_version: i64,
    pub name: String,
    pub description: Option<String>,
    pub model_name: String,
    pub system_prompt: Option<String>,
    #[schema(value_type = Vec<Object>)]
    pub tools: Vec<Value>,
    #[schema(value_type = Vec<Object>)]
    pub resources: Vec<Value>,
    #[schema(value_type = Object)]
    pub metadata: Value,
    pub skill_ids: Vec<String>,
    #[schema(value_type = Vec<Object>)]
    pub knowledge_sources: Vec<Value>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct AgentVersionSummary {
    pub id: String,
    pub agent_id: String,
    pub major_version: i64,
    pub name: String,
    pub is_deployed: bool,
    pub created_at: String,
    pub creator: Option<CreatorPayload>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct AgentVersion {
    #[serde(flatten)]
    pub summary: AgentVersionSummary,
    pub composition: AgentComposition,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct AgentVersionsResponse {
    pub versions: Vec<AgentVersionSummary>,
    pub next_cursor: Option<String>,
}

#[derive(Debug, Clone, Serialize, ToSchema, PartialEq)]
pub struct TextHunk {
    pub old_start: usize,
    pub old_end: usize,
    pub new_start: usize,
    pub new_end: usize,
    pub old_text: String,
    pub new_text: String,
}

/// A field change: text fields carry `text_hunks`, others `old_value`/`new_value`.
#[derive(Debug, Clone, Serialize, ToSchema, PartialEq)]
#[serde(untagged)]
pub enum FieldChange {
    Text {
        field: String,
        status: String,
        text_hunks: Vec<TextHunk>,
    },
    Value {
        field: String,
        status: String,
        #[schema(value_type = Object)]
        old_value: Value,
        #[schema(value_type = Object)]
        new_value: Value,
    },
}

#[derive(Debug, Clone, Serialize, ToSchema, PartialEq)]
pub struct ToolChange {
    #[schema(value_type = Object)]
    pub identity: Value,
    pub status: String,
    pub old_position: Option<usize>,
    pub new_position: Option<usize>,
    #[schema(value_type = Object)]
    pub old_value: Value,
    #[schema(value_type = Object)]
    pub new_value: Value,
    pub field_changes: Vec<FieldChange>,
}

#[derive(Debug, Clone, Serialize, ToSchema, PartialEq)]
pub struct SkillChange {
    pub skill_id: String,
    pub status: String,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct AgentVersionChanges {
    pub base_version_id: String,
    pub attachment_changes_complete: bool,
    pub field_changes: Vec<FieldChange>,
    pub tool_changes: Vec<ToolChange>,
    pub skill_changes: Vec<SkillChange>,
    #[schema(value_type = Vec<Object>)]
    pub knowledge_source_changes: Vec<Value>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct AgentVersionResponse {
    pub version: AgentVersion,
    pub changes: Option<AgentVersionChanges>,
}
