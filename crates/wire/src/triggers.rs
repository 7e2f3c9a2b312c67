//! Agent triggers (API.md §8.6 G20–G28): schedules, webhooks and stored integration
//! triggers. The SDK's `AgentTrigger*` / `Trigger*` models are the contract.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::ToSchema;

/// What starts the trigger's sessions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum TriggerType {
    /// A cron expression in a time zone, or one `run_at` instant.
    Schedule,
    /// An HTTP POST to the trigger's secret URL.
    Webhook,
    /// An integration event (stored only: Openloop has no integrations to listen to).
    Integration,
}

impl TriggerType {
    pub fn as_str(self) -> &'static str {
        match self {
            TriggerType::Schedule => "schedule",
            TriggerType::Webhook => "webhook",
            TriggerType::Integration => "integration",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "schedule" => Some(TriggerType::Schedule),
            "webhook" => Some(TriggerType::Webhook),
            "integration" => Some(TriggerType::Integration),
            _ => None,
        }
    }
}

/// A credential an integration trigger would use.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TriggerCredentialSelector {
    pub secret_id: String,
    #[serde(default = "yes")]
    pub is_personal_credential: bool,
}

fn yes() -> bool {
    true
}

/// The integration an `integration` trigger listens to.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct IntegrationTriggerConfig {
    pub operator_name: String,
    #[serde(default)]
    #[schema(value_type = Object)]
    pub parameters: Map<String, Value>,
    #[serde(default)]
    pub credentials_to_use: std::collections::BTreeMap<String, TriggerCredentialSelector>,
}

/// G21 body. `schedule` takes exactly one of `cron_expression` (5 fields) or `run_at`
/// (ISO 8601) and an optional IANA `timezone` (default `UTC`); `webhook` takes only
/// `prompt` (with `{{…}}` placeholders filled from the delivery) and `pass_raw_data`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct AgentTriggerCreateRequest {
    #[serde(rename = "type")]
    pub kind: TriggerType,
    /// The message each firing sends to a new session.
    pub prompt: String,
    pub name: Option<String>,
    pub cron_expression: Option<String>,
    pub run_at: Option<String>,
    pub timezone: Option<String>,
    /// Webhooks: append the delivery's JSON body to the message.
    pub pass_raw_data: Option<bool>,
    /// Default true for schedules and webhooks, false for integrations.
    pub enabled: Option<bool>,
    /// After this many consecutive failed firings the trigger disables itself.
    pub max_failures: Option<i64>,
    pub integration: Option<IntegrationTriggerConfig>,
}

impl crate::request::RequestBody for AgentTriggerCreateRequest {}

/// G23 body: only the fields sent change.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
pub struct AgentTriggerUpdateRequest {
    pub prompt: Option<String>,
    pub name: Option<String>,
    pub cron_expression: Option<String>,
    pub run_at: Option<String>,
    pub timezone: Option<String>,
    pub pass_raw_data: Option<bool>,
    pub enabled: Option<bool>,
    pub max_failures: Option<i64>,
    pub integration: Option<IntegrationTriggerConfig>,
}

impl crate::request::RequestBody for AgentTriggerUpdateRequest {}

/// The integration of an `integration` trigger, as shown.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct IntegrationTriggerPayload {
    pub operator_name: String,
    pub operator_version: String,
    #[schema(value_type = Object)]
    pub parameters: Map<String, Value>,
}

/// One trigger.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct AgentTrigger {
    pub id: String,
    pub agent_id: String,
    /// `schedule`, `webhook` or `integration`.
    #[serde(rename = "type")]
    pub kind: String,
    pub name: Option<String>,
    pub prompt: Option<String>,
    pub cron_expression: Option<String>,
    pub run_at: Option<String>,
    pub timezone: Option<String>,
    pub pass_raw_data: Option<bool>,
    pub enabled: bool,
    /// `active`, `paused`, `completed` (a `run_at` schedule that fired), `failed`
    /// (disabled after `max_failures`) or `unavailable` (integration triggers).
    pub status: Option<String>,
    pub max_failures: Option<i64>,
    /// Only on create (G21) and G25; never in lists.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub webhook_url: Option<String>,
    pub created_at: Option<String>,
    pub last_run_at: Option<String>,
    /// Schedules: when the trigger fires next (absent when it will not).
    pub next_run_at: Option<String>,
    pub integration: Option<IntegrationTriggerPayload>,
}

/// G21–G23.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct AgentTriggerResponse {
    pub trigger: AgentTrigger,
}

/// G20.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct AgentTriggersResponse {
    pub agent_id: String,
    pub triggers: Vec<AgentTrigger>,
    pub next_cursor: Option<String>,
}

/// G25.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct AgentTriggerWebhookUrlResponse {
    pub agent_id: String,
    pub trigger_id: String,
    /// `null` for triggers that are not webhooks.
    pub webhook_url: Option<String>,
}

/// G24.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct AgentTriggerDeleteResponse {
    pub agent_id: String,
    pub trigger_id: String,
    pub deleted: bool,
}

/// One parameter of a trigger operator.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct TriggerOperatorParameter {
    pub name: String,
    pub data_type: String,
    pub description: String,
    pub required: bool,
    pub default_value: Value,
    pub is_dynamic: bool,
    pub is_hidden: bool,
}

/// A kind of trigger this server can fire.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct TriggerOperator {
    pub name: String,
    pub display_name: String,
    pub version: String,
    pub description: String,
    pub category: String,
    pub credential_types: Vec<String>,
    pub parameters: Vec<TriggerOperatorParameter>,
}

/// G26.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct TriggerOperatorsResponse {
    pub operators: Vec<TriggerOperator>,
}

/// One firing of a trigger.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct AgentTriggerRun {
    pub gummie_trigger_run_id: String,
    /// The session the firing started.
    pub interaction_id: Option<String>,
    /// The session's state (§6.1), or `pending` (claimed, session not yet written) or
    /// `failed` (no session could be started; see `error`).
    pub state: String,
    pub name: Option<String>,
    /// The user message the firing sent.
    pub message_id: Option<String>,
    pub continuation_mode: Option<String>,
    pub created_ts: Option<String>,
    pub finished_ts: Option<String>,
    pub duration_ms: Option<i64>,
    pub credit_cost: Option<f64>,
    /// Why the firing started no session.
    pub delivery_refusal: Option<String>,
    /// `schedule` or `webhook`.
    pub source: String,
    /// Schedules: the scheduled time this firing is for.
    pub scheduled_for: Option<String>,
    pub error: Option<String>,
    #[schema(value_type = Option<Object>)]
    pub background_task: Option<Value>,
}

/// G27.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct AgentTriggerRunsResponse {
    pub items: Vec<AgentTriggerRun>,
    pub next_cursor: Option<String>,
}

/// G28.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct AgentTriggerStatsResponse {
    pub run_count: i64,
    pub last_run_ts: Option<String>,
    pub run_credits: f64,
    /// Openloop does not poll: always 0.
    pub poll_credits: f64,
    pub total_credits: f64,
    pub failed_count: i64,
}

/// G27 query.
#[derive(Debug, Clone, Default, Serialize, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct TriggerRunsQuery {
    #[param(minimum = 1, maximum = 100)]
    pub page_size: Option<i64>,
    pub cursor: Option<String>,
    /// Comma list of run states.
    pub state: Option<String>,
}

/// G20 query.
#[derive(Debug, Clone, Default, Serialize, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct TriggerListQuery {
    #[param(minimum = 1, maximum = 100)]
    pub page_size: Option<i64>,
    pub cursor: Option<String>,
}

/// The answer to a webhook delivery (`POST /hooks/v1/triggers/{trigger_id}`).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct TriggerDeliveryResponse {
    pub trigger_id: String,
    pub run_id: String,
    pub session_id: Option<String>,
    pub state: String,
    /// True when this delivery id was seen before: nothing new was started.
    pub duplicate: bool,
}
