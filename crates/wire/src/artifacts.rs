//! Artifact shapes (API.md §8.0 Artifact, ArtifactVersion; §8.3 A1–A8).

use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::agents::CreatorPayload;

/// A1 `sort_order`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ArtifactSort {
    Newest,
    Oldest,
    NameAsc,
    NameDesc,
}

/// A1 query.
#[derive(Debug, Clone, Default, Serialize, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ArtifactListQuery {
    /// Only artifacts of this session (alias `interaction_id`).
    pub session_id: Option<String>,
    pub interaction_id: Option<String>,
    /// Case-insensitive substring of the file name.
    pub search_query: Option<String>,
    pub sort_order: Option<ArtifactSort>,
    #[param(minimum = 1, maximum = 100)]
    pub page_size: Option<i64>,
    pub cursor: Option<String>,
}

/// A2 query.
#[derive(Debug, Clone, Default, Serialize, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ArtifactDownloadQuery {
    /// Default: the current version.
    pub version_id: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ArtifactMetadata {
    pub media_type: String,
    pub size: i64,
    pub stored_filename: String,
}

/// The Artifact object (§8.0).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Artifact {
    pub id: String,
    /// The current version.
    pub version_id: String,
    pub major_version: i64,
    pub agent_id: String,
    pub session_id: String,
    /// Display name: the custom name, else the stored name.
    pub filename: String,
    /// When the current version was written.
    pub created_at: String,
    pub metadata: ArtifactMetadata,
    /// Signed URL of the current version: a plain `GET` without `Authorization` returns the bytes.
    pub url: String,
    pub creator: Option<CreatorPayload>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ArtifactListResponse {
    pub artifacts: Vec<Artifact>,
    pub next_cursor: Option<String>,
}

/// A2.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ArtifactDownloadResponse {
    /// Signed, short-lived: a plain `GET` without `Authorization` returns the bytes.
    pub download_url: String,
    pub filename: String,
    pub media_type: String,
    /// Bytes.
    pub size: i64,
}

/// A3.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ArtifactDeleteResponse {
    pub deleted: bool,
}

/// A4 body: the key is required; `null` resets to the stored name.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ArtifactRenameRequest {
    #[schema(required = true)]
    pub name: Option<String>,
}

/// A4.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ArtifactNameResponse {
    pub name: Option<String>,
}

/// ArtifactVersion (§8.0).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ArtifactVersion {
    pub version_id: String,
    pub major_version: i64,
    pub created_ts: String,
    pub is_deployed: bool,
    pub is_current: bool,
    pub filename: String,
    pub media_type: String,
    pub size: i64,
}

/// A5.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ArtifactVersionsResponse {
    pub versions: Vec<ArtifactVersion>,
}

/// A8 body.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ArtifactPasswordRequest {
    /// 8–256 characters.
    #[schema(min_length = 8, max_length = 256)]
    pub password: String,
}

impl crate::request::RequestBody for ArtifactPasswordRequest {
    fn error_code(_: &str) -> crate::ErrorCode {
        crate::ErrorCode::InvalidPassword
    }
}

/// `{"success": true}` (A8).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct SuccessResponse {
    pub success: bool,
}
