//! Teams, organizations and the model catalogue (API.md §8.13, §8.7).

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Team {
    pub id: String,
    pub name: String,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct TeamsResponse {
    pub teams: Vec<Team>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Organization {
    pub id: String,
    pub name: Option<String>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct OrganizationsResponse {
    pub organizations: Vec<Organization>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ModelOption {
    pub value: String,
    pub label: String,
    /// `available` | `unavailable`
    pub status: String,
    pub provider: String,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ModelGroup {
    #[serde(rename = "groupLabel")]
    pub group_label: String,
    pub provider: String,
    pub options: Vec<ModelOption>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ModelListResponse {
    pub model_groups: Vec<ModelGroup>,
}

/// K2 body (Openloop extension): a new personal key for the caller.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
pub struct ApiKeyCreateRequest {
    /// A label (≤ 256 characters) to tell keys apart.
    #[serde(default)]
    pub name: Option<String>,
}

impl crate::request::RequestBody for ApiKeyCreateRequest {}

/// An API key as listed: never its secret (only the first 8 characters).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ApiKeyView {
    pub id: String,
    pub prefix: String,
    pub name: Option<String>,
    /// Personal key owner.
    pub user_id: Option<String>,
    /// Team key team.
    pub team_id: Option<String>,
    pub created_at: String,
    pub revoked_at: Option<String>,
}

/// K1.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ApiKeyListResponse {
    pub api_keys: Vec<ApiKeyView>,
}

/// K2: the secret is shown this once and stored only as a hash.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ApiKeyCreatedResponse {
    pub api_key: ApiKeyView,
    pub secret: String,
}
