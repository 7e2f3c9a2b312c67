//! Openloop's flow management extension (`/api/v1/flows`, `/api/v1/workbooks`): save
//! flow documents as versioned saved items that F1 runs. Nested errors (§3.1).

use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

/// `POST /flows`, `PUT /flows/{id}`, `POST /flows/validate`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
pub struct FlowSaveRequest {
    /// The flow document: a JSON object, or JSON/YAML text.
    pub document: Value,
    /// Caller-chosen id on create (`^[A-Za-z0-9_-]{1,128}$`); generated `flow_…` otherwise.
    pub saved_item_id: Option<String>,
    /// Workbook to file it in (created when new); default: the workspace's "Default" workbook.
    pub workbook_id: Option<String>,
    pub workbook_name: Option<String>,
    /// Team workspace (else the caller's personal workspace).
    pub team_id: Option<String>,
}

/// One validation problem of a document.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct FlowDocError {
    pub node: Option<String>,
    /// Path inside the document (`nodes[2].prompt`).
    pub field: String,
    pub message: String,
}

/// `POST /flows/validate`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct FlowValidateResponse {
    pub valid: bool,
    pub errors: Vec<FlowDocError>,
    /// Node ids in the order they can run (valid documents).
    pub order: Vec<String>,
}

/// A saved flow.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct FlowDetail {
    pub saved_item_id: String,
    pub workbook_id: String,
    pub name: String,
    pub description: Option<String>,
    pub version: i64,
    pub team_id: Option<String>,
    pub created_at: String,
    pub updated_at: String,
    /// The document (omitted in lists).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub document: Option<Value>,
}

/// `GET /flows`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct FlowListResponse {
    pub flows: Vec<FlowDetail>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct FlowVersion {
    pub version: i64,
    pub created_at: String,
    pub created_by: String,
}

/// `GET /flows/{id}/versions`, newest first.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct FlowVersionsResponse {
    pub versions: Vec<FlowVersion>,
}

/// `DELETE /flows/{id}`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct FlowDeleteResponse {
    pub saved_item_id: String,
    pub deleted: bool,
}

/// `POST /workbooks`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
pub struct WorkbookCreateRequest {
    pub name: String,
    pub description: Option<String>,
    pub workbook_id: Option<String>,
    pub team_id: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct WorkbookView {
    pub workbook_id: String,
    pub name: String,
    pub description: Option<String>,
    pub team_id: Option<String>,
    pub created_at: String,
}

/// `GET /workbooks`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct WorkbookListResponse {
    pub workbooks: Vec<WorkbookView>,
}

/// One node kind: its configuration's JSON Schema and its ports.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct NodeKind {
    pub kind: String,
    pub description: Option<String>,
    /// JSON Schema of the node's configuration fields (next to `id`, `kind`, `inputs`, `after`).
    pub config: Value,
    /// `[{"port", "type", "required"}]`.
    pub inputs: Vec<Value>,
    /// `[{"port", "type"}]`; the first is the default output of a bare `node` reference.
    pub outputs: Vec<Value>,
}

/// `GET /flows/node-kinds`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct NodeKindsResponse {
    pub node_kinds: Vec<NodeKind>,
}
