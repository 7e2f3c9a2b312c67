//! Teams, organizations and the model catalogue (API.md §8.13, §8.7).

use serde::Serialize;
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
