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

/// Tool approval modes (§7.5).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ApprovalMode {
    Inherit,
    Off,
    All,
    Write,
    Custom,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum CredentialMode {
    EndUser,
    AgentOwned,
}

/// One entry of an agent's `tools` (all fields optional; unknown keys kept verbatim).
/// Deserializing a stored or sent entry into this type is its validation.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
pub struct AgentTool {
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub server_id: Option<String>,
    /// Input only: a reference to a stored secret; never returned.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub saved_item_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub credentials_to_use: Option<Map<String, Value>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub credential_mode: Option<CredentialMode>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub approval_mode: Option<ApprovalMode>,
    /// Tool name → approval mode.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tool_approval_modes: Option<std::collections::BTreeMap<String, String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub restricted_tools: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub is_incognito: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub is_disabled: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metadata: Option<Map<String, Value>>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct PromptServer {
    pub server_id: String,
    pub server_type: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct SuggestedPrompt {
    pub title: String,
    pub message: String,
    pub icon: Option<String>,
    pub servers: Option<Vec<PromptServer>>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
pub struct CompactionSettings {
    pub override_auto_compaction: Option<bool>,
    pub summary_model: Option<String>,
    pub context_limit: Option<i64>,
    pub output_reserve_tokens: Option<i64>,
    pub prune_protect_tokens: Option<i64>,
    pub summary_max_tokens: Option<i64>,
    pub proactive_trigger_percent: Option<i64>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
pub struct FallbackSettings {
    pub enabled: Option<bool>,
    pub override_auto_fallback: Option<bool>,
    pub fallback_models: Option<Vec<String>>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
pub struct ModelSetting {
    pub model: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
pub struct CreationSetting {
    pub creation_enabled: Option<bool>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
pub struct EnabledSetting {
    pub enabled: Option<bool>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ToolDiscoveryMode {
    Auto,
    Enabled,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
pub struct ToolDiscoverySetting {
    pub mode: Option<ToolDiscoveryMode>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
pub struct ToolApprovalSetting {
    pub default_mode: Option<ApprovalMode>,
    pub reason: Option<String>,
    pub approver_user_id: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
pub struct SelfImprovementSetting {
    pub enabled: Option<bool>,
    pub cron_expression: Option<String>,
    pub timezone: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
pub struct SubagentSetting {
    pub allow_self_clone: Option<bool>,
    pub allowed_gummie_ids: Option<Vec<String>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ArtifactAccess {
    Default,
    Organization,
    Anyone,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
pub struct ArtifactsSetting {
    pub default_access: Option<ArtifactAccess>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
pub struct VoiceSetting {
    pub enabled: Option<bool>,
    pub voice: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
pub struct SlackSetting {
    pub thread_response_trigger: Option<String>,
    pub attribution_stamp_enabled: Option<bool>,
    pub show_detailed_steps: Option<bool>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
pub struct EmailSetting {
    pub attribution_stamp_enabled: Option<bool>,
}

/// AgentMetadata (§8.0): every section optional, unknown sections kept verbatim.
/// Deserializing into this type is the validation of the known sections.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
pub struct AgentMetadata {
    pub icon_url: Option<String>,
    pub suggested_prompts: Option<Vec<SuggestedPrompt>>,
    /// Model calls per run.
    pub max_steps: Option<f64>,
    pub model_settings: Option<Map<String, Value>>,
    pub compaction: Option<CompactionSettings>,
    pub fallback: Option<FallbackSettings>,
    pub image_generation: Option<ModelSetting>,
    pub skills: Option<CreationSetting>,
    pub triggers: Option<CreationSetting>,
    pub app_rules: Option<CreationSetting>,
    pub app_discovery: Option<EnabledSetting>,
    pub self_modification: Option<EnabledSetting>,
    pub tool_discovery: Option<ToolDiscoverySetting>,
    pub tool_approval: Option<ToolApprovalSetting>,
    pub self_improvement: Option<SelfImprovementSetting>,
    pub subagent: Option<SubagentSetting>,
    pub artifacts: Option<ArtifactsSetting>,
    pub voice: Option<VoiceSetting>,
    pub slack: Option<SlackSetting>,
    pub email: Option<EmailSetting>,
}

/// One ability (§7.4): `enabled` plus the ability's own options.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
pub struct Ability {
    pub enabled: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proxy_country: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub profile_id: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ToolDiscoveryAbility {
    pub mode: ToolDiscoveryMode,
}

/// AgentAbilities (§8.0), derived from the tools list and metadata (§7.4).
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
pub struct AgentAbilities {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub web_search: Option<Ability>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub web_fetch: Option<Ability>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_generation: Option<Ability>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub search_past_conversations: Option<Ability>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ask_question: Option<Ability>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_discovery: Option<ToolDiscoveryAbility>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub manage_evaluations: Option<Ability>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub browser: Option<Ability>,
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
    #[schema(value_type = AgentAbilities)]
    pub abilities: Value,
    pub incognito: AgentIncognito,
    #[schema(value_type = Option<Vec<Object>>)]
    pub knowledge_sources: Option<Vec<Value>>,
    #[schema(value_type = Option<Vec<Object>>)]
    pub triggers: Option<Vec<Value>>,
    pub version: i64,
    #[schema(value_type = AgentMetadata)]
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
    /// Request fields that were ignored (unknown names), so typos do not pass silently.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub warnings: Option<Vec<String>>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct AgentListResponse {
    /// Full agents, or with `summary=true` only the summary fields.
    #[schema(value_type = Vec<AgentListItem>)]
    pub agents: Vec<Value>,
    pub next_cursor: Option<String>,
}

/// G1 with `summary=true`: only these keys.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct AgentSummary {
    pub id: String,
    pub name: String,
    pub model_name: Option<String>,
    pub team_id: Option<String>,
    pub is_active: bool,
    pub created_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_used_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_updated_at: Option<String>,
    pub creator: Option<CreatorPayload>,
}

/// A G1 item: an `Agent`, or an `AgentSummary` with `summary=true`.
pub struct AgentListItem;

impl utoipa::PartialSchema for AgentListItem {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::schema::AnyOfBuilder::new()
            .item(utoipa::openapi::Ref::from_schema_name("Agent"))
            .item(utoipa::openapi::Ref::from_schema_name("AgentSummary"))
            .into()
    }
}

impl ToSchema for AgentListItem {
    fn schemas(out: &mut Vec<(String, utoipa::openapi::RefOr<utoipa::openapi::schema::Schema>)>) {
        for (name, schema) in [("Agent", <Agent as utoipa::PartialSchema>::schema()), ("AgentSummary", <AgentSummary as utoipa::PartialSchema>::schema())] {
            out.push((name.to_string(), schema));
        }
        <Agent as ToSchema>::schemas(out);
        <AgentSummary as ToSchema>::schemas(out);
    }
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct AgentDeleteResponse {
    pub agent_id: String,
    pub deleted: bool,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct AgentAbilitiesResponse {
    pub agent_id: String,
    #[schema(value_type = AgentAbilities)]
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
    #[schema(value_type = Option<AgentMetadata>)]
    pub metadata: Option<Value>,
    pub folder_id: Option<String>,
    pub is_active: Option<bool>,
    pub agent_id: Option<String>,
    pub team_id: Option<String>,
    pub incognito: Option<bool>,
    /// Abilities to enable (as G8); they become entries of `tools`.
    pub abilities: Option<AgentAbilities>,
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
    /// JSON Merge Patch (RFC 7386) of the metadata.
    #[schema(value_type = Option<AgentMetadata>)]
    pub metadata: Option<Value>,
    pub is_active: Option<bool>,
    pub team_id: Option<String>,
    pub version: Option<i64>,
    /// Abilities to change (as G8).
    pub abilities: Option<AgentAbilities>,
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
    Text { field: String, status: String, text_hunks: Vec<TextHunk> },
    Value { field: String, status: String, old_value: Value, new_value: Value },
}

#[derive(Debug, Clone, Serialize, ToSchema, PartialEq)]
pub struct ToolChange {
    #[schema(value_type = Object)]
    pub identity: Value,
    pub status: String,
    pub old_position: Option<usize>,
    pub new_position: Option<usize>,
    pub old_value: Value,
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

/// G1 `sort_order`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum AgentSort {
    Newest,
    Oldest,
    NameAsc,
    NameDesc,
}

/// G1 query (§4).
#[derive(Debug, Clone, Default, Serialize, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AgentListQuery {
    /// Only this team's agents (default: your personal agents).
    pub team_id: Option<String>,
    /// Case-insensitive substring of the name.
    pub search: Option<String>,
    /// Creator user id.
    pub creator: Option<String>,
    pub has_triggers: Option<bool>,
    /// Agents with a tool of this type.
    pub tool: Option<String>,
    /// Agents using this saved flow.
    pub flow: Option<String>,
    /// Items carry only the summary fields.
    pub summary: Option<bool>,
    pub include_last_used: Option<bool>,
    pub include_last_updated: Option<bool>,
    pub sort_order: Option<AgentSort>,
    #[param(minimum = 1, maximum = 100)]
    pub page_size: Option<i64>,
    pub cursor: Option<String>,
}

/// G6 query.
#[derive(Debug, Clone, Default, Serialize, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AgentVersionsQuery {
    #[param(minimum = 1, maximum = 100)]
    pub page_size: Option<i64>,
    pub cursor: Option<String>,
}

/// G8 body: the abilities sent change (§7.4), plus optional `version`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
pub struct AgentAbilitiesRequest {
    pub web_search: Option<Ability>,
    pub web_fetch: Option<Ability>,
    pub image_generation: Option<Ability>,
    pub search_past_conversations: Option<Ability>,
    pub ask_question: Option<Ability>,
    pub tool_discovery: Option<ToolDiscoveryAbility>,
    pub manage_evaluations: Option<Ability>,
    pub browser: Option<Ability>,
    /// Optimistic concurrency: the current `Agent.version`.
    pub version: Option<i64>,
}

/// G9 body.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct AgentIncognitoRequest {
    pub enforced: bool,
}

impl crate::request::RequestBody for AgentIncognitoRequest {}

/// G18/G19 answer (SDK `AgentSubagentsResponse`): the agents this agent may delegate to
/// (its `metadata.subagent.allowed_gummie_ids`).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct AgentSubagentsResponse {
    pub agent_id: String,
    pub subagent_ids: Vec<String>,
    /// False when the call changed nothing (already attached / not attached).
    pub changed: bool,
}
