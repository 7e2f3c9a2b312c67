//! Skill shapes (API.md §8.10 SK1–SK7, SY1–SY2; §8.6 G10/G11). The SDK's `Skill*` and
//! `CliSync*` models (gumloop 0.5.9 `types.py`) are the contract.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};

use crate::agents::CreatorPayload;

/// The media type of SK4 downloads and SY2 bundles.
pub const ZIP_MEDIA_TYPE: &str = "application/zip";
/// SY1/SY2 request header naming the CLI's version.
pub const CLI_VERSION_HEADER: &str = "X-Gumloop-CLI-Version";
/// Name of the manifest at the root of an SY2 bundle.
pub const SYNC_MANIFEST_FILENAME: &str = "gumloop-sync-manifest.json";
/// The CLI's ownership marker inside an installed skill: reserved, never uploaded.
pub const SYNC_MARKER_FILENAME: &str = ".gumloop.json";

/// SK1 query (also G11: `agent_id`).
#[derive(Debug, Clone, Default, Serialize, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SkillListQuery {
    /// Case-insensitive substring of the name or description.
    pub search_query: Option<String>,
    /// `newest` (default, by last update), `oldest`, `name_asc`, `name_desc`.
    pub sort_order: Option<String>,
    #[param(minimum = 1, maximum = 100)]
    pub page_size: Option<i64>,
    pub cursor: Option<String>,
    /// Only skills created by this user.
    pub creator_user_id: Option<String>,
    /// Accepted; Openloop skills have no related MCP servers yet, so a value lists none.
    pub related_server_id: Option<String>,
    /// G11: the skills attached to this agent.
    pub agent_id: Option<String>,
}

/// SK4 query.
#[derive(Debug, Clone, Default, Serialize, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SkillDownloadQuery {
    /// Default: the current version.
    pub version_id: Option<String>,
}

/// One file of a skill version (in `Skill.metadata.files`).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct SkillFileInfo {
    /// Path inside the skill (`/`-separated, relative).
    pub path: String,
    pub size: i64,
    pub media_type: String,
}

/// `Skill.metadata`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct SkillMetadata {
    pub files: Vec<SkillFileInfo>,
    pub file_count: i64,
    /// Total bytes of the version's files.
    pub size: i64,
    /// The sync content hash of the version (sha256 hex, SDK `compute_content_hash`).
    pub content_hash: String,
}

/// The Skill object.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Skill {
    pub id: String,
    pub name: String,
    pub description: String,
    /// The owning team; `""` for a skill of a personal workspace (the SDK requires a string).
    pub team_id: String,
    pub created_at: Option<String>,
    pub updated_at: Option<String>,
    #[schema(value_type = SkillMetadata)]
    pub metadata: Value,
    pub usage_count: Option<i64>,
    pub view_count: Option<i64>,
    pub last_used_at: Option<String>,
    /// The version this object describes (the current one).
    pub version_id: Option<String>,
    pub major_version: Option<i64>,
    pub is_deployed: Option<bool>,
    pub version_created_at: Option<String>,
    pub creator: Option<CreatorPayload>,
}

/// SK1, G11.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct SkillListResponse {
    pub skills: Vec<Skill>,
    pub next_cursor: Option<String>,
    pub total_count: Option<i64>,
}

/// SK2, SK3.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct SkillResponse {
    pub skill: Skill,
}

/// SK5.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct SkillDeleteResponse {
    pub deleted: bool,
}

/// SK4: a signed URL (§9.2 item 5) of a ZIP of the version's files.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct SkillDownloadResponse {
    pub download_url: String,
    pub filename: String,
    /// Always `application/zip`.
    pub media_type: String,
    /// Unknown before the archive is streamed: always `null`.
    pub size: Option<i64>,
    pub id: String,
    pub version_id: Option<String>,
    pub major_version: Option<i64>,
}

/// SK2/SK3 multipart body (documentation schema; the server reads the parts).
#[derive(Debug, Clone, Deserialize, ToSchema)]
pub struct SkillUploadForm {
    /// Repeated: one part per file; the part's filename is the path inside the skill
    /// (e.g. `SKILL.md`, `scripts/run.py`).
    pub files: Vec<String>,
    /// SK2 only: the workspace to create the skill in.
    pub team_id: Option<String>,
}

/// G10 body: `{"attach": [...]}` or `{"detach": [...]}`.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
pub struct AgentSkillsRequest {
    pub attach: Option<Vec<String>>,
    pub detach: Option<Vec<String>>,
}

impl crate::request::RequestBody for AgentSkillsRequest {}

/// G10.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct AgentSkillsResponse {
    pub agent_id: String,
    /// The agent's skills after the change, in attachment order.
    pub skill_ids: Vec<String>,
    pub attached: Vec<String>,
    pub detached: Vec<String>,
    pub already_attached: Vec<String>,
    pub already_detached: Vec<String>,
    /// The agent's version after the change.
    pub version: i64,
}

/// SY1/SY2 body.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
pub struct CliSyncRequest {
    /// Default: the acting user's organization.
    pub organization_id: Option<String>,
}

impl crate::request::RequestBody for CliSyncRequest {}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct CliSyncOrganization {
    pub organization_id: String,
    pub organization_name: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct CliSyncManifest {
    /// Always `sha256`.
    pub algorithm: String,
    /// Always `1`.
    pub format_version: i64,
    /// SDK `compute_manifest_hash` of the skills (sha256 hex).
    pub hash: String,
    pub skill_count: i64,
}

/// The v1 transfer limits (fixed values the CLI checks).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct CliSyncLimits {
    pub files_per_skill: i64,
    pub bytes_per_file: i64,
    pub bundle_transfer_bytes: i64,
    pub total_uncompressed_bytes: i64,
}

impl CliSyncLimits {
    pub const V1: CliSyncLimits =
        CliSyncLimits { files_per_skill: 1_000, bytes_per_file: 26_214_400, bundle_transfer_bytes: 104_857_600, total_uncompressed_bytes: 209_715_200 };
}

/// SY1.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct CliSyncPlanResponse {
    pub organization: CliSyncOrganization,
    pub manifest: CliSyncManifest,
    pub limits: CliSyncLimits,
    pub skill_count: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct CliSyncBundleSkill {
    pub skill_id: String,
    /// Folder name of the skill inside the bundle and on disk.
    pub install_name: String,
    pub published_version_id: String,
    pub content_hash: String,
}

/// `gumloop-sync-manifest.json` at the root of an SY2 bundle; the skills' files follow
/// as `<install_name>/<path>`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct CliSyncBundleManifest {
    pub organization: CliSyncOrganization,
    pub manifest: CliSyncManifest,
    pub limits: CliSyncLimits,
    /// Sorted by `skill_id`.
    pub skills: Vec<CliSyncBundleSkill>,
}
