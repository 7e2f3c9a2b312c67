//! Legacy REST shapes (API.md §8.1 interactions, §8.4 flows and files, §8.5 exports and
//! audit logs). Their errors are flat (`{"error": "<string>"}`, §3.2).

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::{IntoParams, ToSchema};

use crate::sessions::Part;

/// L1 body.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
pub struct StartAgentRequest {
    /// The agent id.
    pub gummie_id: String,
    pub message: String,
    /// Required if `project_id` is absent.
    pub user_id: Option<String>,
    /// Team id; required if `user_id` is absent.
    pub project_id: Option<String>,
    /// Continue this interaction (same id reused).
    pub interaction_id: Option<String>,
}

/// L1.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct StartAgentResponse {
    pub interaction_id: String,
    /// Always `processing`.
    pub status: String,
}

/// Identity of legacy `GET` calls (L2, F2–F7).
#[derive(Debug, Clone, Default, Serialize, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct LegacyIdentityQuery {
    /// Acting user; required with a team key unless `project_id` is sent.
    pub user_id: Option<String>,
    /// Team id (legacy name).
    pub project_id: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum LegacyState {
    AsyncProcessing,
    Completed,
    Failed,
}

/// A legacy transcript message (§8.1.2): `content` only on user messages.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct LegacyMessage {
    pub id: String,
    pub role: crate::sessions::Role,
    /// Microseconds, no offset, UTC.
    pub timestamp: String,
    pub parts: Vec<Part>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content: Option<String>,
}

/// L2.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct AgentStatusResponse {
    pub interaction_id: String,
    pub gummie_id: String,
    pub state: LegacyState,
    pub created_ts: String,
    /// `COMPLETED` only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub messages: Option<Vec<LegacyMessage>>,
    /// `COMPLETED` only: the last assistant message's text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response: Option<String>,
    /// `FAILED` only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_message: Option<String>,
    /// `FAILED` only: `error_message` as class and message (an Openloop extension).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<crate::sessions::RunFailure>,
}

/// One `pipeline_inputs` item.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct PipelineInput {
    pub input_name: String,
    pub value: Value,
}

/// F1 body (any other top-level key is an input value matched by name).
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
pub struct StartPipelineRequest {
    pub saved_item_id: String,
    pub user_id: Option<String>,
    pub project_id: Option<String>,
    pub pipeline_inputs: Option<Vec<PipelineInput>>,
}

/// F1.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct StartPipelineResponse {
    pub run_id: String,
    pub saved_item_id: String,
    pub workbook_id: Option<String>,
    /// The F2 URL of this run.
    pub url: String,
}

/// Flow-run states (§6.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum FlowRunState {
    Queued,
    Started,
    Running,
    Done,
    Failed,
    Terminating,
    Terminated,
}

impl FlowRunState {
    pub const ALL: [FlowRunState; 7] = [Self::Queued, Self::Started, Self::Running, Self::Done, Self::Failed, Self::Terminating, Self::Terminated];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "QUEUED",
            Self::Started => "STARTED",
            Self::Running => "RUNNING",
            Self::Done => "DONE",
            Self::Failed => "FAILED",
            Self::Terminating => "TERMINATING",
            Self::Terminated => "TERMINATED",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|x| x.as_str() == s)
    }

    pub fn is_terminal(self) -> bool {
        matches!(self, Self::Done | Self::Failed | Self::Terminated)
    }
}

/// F2 query.
#[derive(Debug, Clone, Default, Serialize, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct FlowRunQuery {
    pub run_id: String,
    pub user_id: Option<String>,
    pub project_id: Option<String>,
}

/// FlowRun (§8.0).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct FlowRun {
    pub run_id: String,
    pub saved_item_id: String,
    pub workbook_id: Option<String>,
    pub user_id: Option<String>,
    pub state: FlowRunState,
    /// `{}` until `DONE`; keys are output names.
    pub outputs: Map<String, Value>,
    pub created_ts: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_ts: Option<String>,
    pub log: Vec<String>,
    pub credit_cost: f64,
}

/// F4 item.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct SavedItem {
    pub saved_item_id: String,
    pub name: String,
    pub description: Option<String>,
    pub created_ts: String,
}

/// F4.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct SavedItemsResponse {
    pub saved_items: Vec<SavedItem>,
}

/// F3.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct KillPipelineResponse {
    pub success: bool,
    pub run_id: String,
}

/// F5 item.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Workbook {
    pub workbook_id: String,
    pub name: String,
    pub description: Option<String>,
    pub created_ts: String,
    pub saved_items: Vec<SavedItem>,
}

/// F5.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct WorkbooksResponse {
    pub workbooks: Vec<Workbook>,
}

/// F6 item.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct FlowInput {
    pub name: String,
    /// `string` or `file` (Openloop documents may also declare number, boolean, list, object).
    pub data_type: String,
    pub description: Option<String>,
}

/// F6.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct FlowInputsResponse {
    pub inputs: Vec<FlowInput>,
}

/// F7 item: one recent run of a saved item.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct FlowRunSummary {
    pub run_id: String,
    pub state: FlowRunState,
    pub created_ts: String,
    pub finished_ts: Option<String>,
    pub user_id: Option<String>,
}

/// F8 body.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
pub struct UploadFileRequest {
    pub file_name: String,
    /// Base64.
    pub file_content: String,
    pub user_id: Option<String>,
    pub project_id: Option<String>,
}

/// F8.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct UploadFileResponse {
    pub success: bool,
    /// The stored name.
    pub file_name: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct FileUpload {
    pub file_name: String,
    /// Base64.
    pub file_content: String,
}

/// F9 body.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
pub struct UploadFilesRequest {
    /// 1–100 files, each stored independently.
    pub files: Vec<FileUpload>,
    pub user_id: Option<String>,
    pub project_id: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct FailedFile {
    pub file_name: Option<String>,
    pub error: String,
}

/// F9: all stored (`200`, `success`), some (`207`, `partial_success`), none (`400`, `error`).
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
pub struct UploadFilesResponse {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub success: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partial_success: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uploaded_files: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failed_files: Option<Vec<FailedFile>>,
}

/// F10 body.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
pub struct DownloadFileRequest {
    pub file_name: String,
    pub run_id: Option<String>,
    pub saved_item_id: Option<String>,
    pub user_id: Option<String>,
    pub project_id: Option<String>,
}

/// F11 body.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
pub struct DownloadFilesRequest {
    /// 1–100 names.
    pub file_names: Vec<String>,
    pub run_id: Option<String>,
    pub saved_item_id: Option<String>,
    pub user_id: Option<String>,
    pub project_id: Option<String>,
}

/// E1 `data_type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ExportDataType {
    Workflows,
    Agents,
    AgentInteractions,
    CreditLogs,
}

/// E1 `export_level`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ExportLevel {
    Organization,
    Workspace,
}

/// E1 `category_filter` (`credit_logs` only).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum CreditCategory {
    PipelineRun,
    AgentRun,
    CustomNodeRd,
    ExternalGumcpCall,
}

/// E1 body.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
pub struct ExportDataRequest {
    /// The requester (must be the acting user).
    pub user_id: String,
    /// Default `workflows`.
    pub data_type: Option<ExportDataType>,
    /// Non-empty; each valid for the data type.
    pub export_fields: Vec<String>,
    /// ISO 8601.
    pub start_date: String,
    /// ISO 8601, not before `start_date`.
    pub end_date: String,
    /// Default `organization`; `workspace` needs exactly one `workspace_ids` entry.
    pub export_level: Option<ExportLevel>,
    pub workspace_ids: Option<Vec<String>>,
    pub include_all_workspaces: Option<bool>,
    pub include_personal_workspaces: Option<bool>,
    /// Workbook ids (`workflows`) or agent ids (`agents`, `agent_interactions`).
    pub entity_ids: Option<Vec<String>>,
    pub category_filter: Option<Vec<CreditCategory>>,
}

/// Data-export states (§6.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ExportState {
    Requested,
    InProgress,
    Completed,
    Failed,
}

/// E1.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ExportDataResponse {
    pub success: bool,
    pub data_export_id: String,
    pub state: ExportState,
    pub created_ts: String,
}

/// E2 query.
#[derive(Debug, Clone, Default, Serialize, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ExportStatusQuery {
    pub user_id: String,
    pub data_export_id: String,
    /// `true` with `COMPLETED`: the CSV itself.
    pub download: Option<bool>,
}

/// DataExport (§8.0, E2).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct DataExport {
    pub data_export_id: String,
    pub state: ExportState,
    pub created_ts: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_ts: Option<String>,
    pub data_type: Option<ExportDataType>,
    pub row_count: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_message: Option<String>,
}
