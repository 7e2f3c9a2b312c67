//! Skills: versioned bundles of files (their bytes live in the blob store), and who
//! may read or edit them.

use async_trait::async_trait;

use crate::{Reader, Result};

/// A skill. `team_id` `None`: a skill of `owner_user_id`'s personal workspace.
#[derive(Debug, Clone, PartialEq)]
pub struct SkillRecord {
    pub id: String,
    pub organization_id: String,
    pub team_id: Option<String>,
    pub owner_user_id: String,
    pub creator_user_id: String,
    /// Name and description of the current version.
    pub name: String,
    pub description: String,
    pub current_version_id: String,
    /// Major version of the current version (1, 2, …).
    pub major_version: i64,
    pub deleted_at: Option<i64>,
    pub created_at: i64,
    pub updated_at: i64,
}

/// One immutable version of a skill.
#[derive(Debug, Clone, PartialEq)]
pub struct SkillVersionRecord {
    pub id: String,
    pub skill_id: String,
    /// Allocated by the store when the version is written.
    pub major_version: i64,
    pub name: String,
    pub description: String,
    /// The instructions (SKILL.md body) given to agents the skill is attached to.
    pub instructions: String,
    /// Sync content hash of the version's files (sha256 hex).
    pub content_hash: String,
    pub size: i64,
    pub file_count: i64,
    pub creator_user_id: String,
    pub created_at: i64,
}

/// One file of a skill version.
#[derive(Debug, Clone, PartialEq)]
pub struct SkillFileRecord {
    pub version_id: String,
    /// Relative, `/`-separated, canonical (no `.`/`..`/empty components).
    pub path: String,
    pub media_type: String,
    pub size: i64,
    pub blob_key: String,
    /// sha256 hex of the bytes.
    pub sha256: String,
}

/// Which skills a listing reads. Every variant is limited to live skills of
/// `organization_id`.
#[derive(Debug, Clone, PartialEq)]
pub enum SkillScope {
    /// The reader's personal skills and those shared with the reader (grants).
    Personal,
    /// The skills of one team.
    Team(String),
    /// Everything the reader may read: personal, the reader's teams', shared.
    Readable,
}

#[derive(Debug, Clone)]
pub struct SkillFilter {
    pub organization_id: String,
    pub reader: Reader,
    pub scope: SkillScope,
    /// Only these ids (an agent's skills).
    pub ids: Option<Vec<String>>,
    pub creator_user_id: Option<String>,
}

/// A grant: (kind `person|team|organization`, principal id, role `viewer|editor`).
pub type SkillGrant = (String, String, String);

#[async_trait]
pub trait SkillStore: Send + Sync {
    /// Creates a skill with its first version (major 1) and files.
    async fn create_skill(&self, skill: &SkillRecord, version: &SkillVersionRecord, files: &[SkillFileRecord]) -> Result<(SkillRecord, SkillVersionRecord)>;
    /// Adds the next version of a live skill (its major number allocated inside the write)
    /// and makes it current. `None`: the skill is absent or deleted.
    async fn add_skill_version(
        &self,
        skill_id: &str,
        version: &SkillVersionRecord,
        files: &[SkillFileRecord],
    ) -> Result<Option<(SkillRecord, SkillVersionRecord)>>;
    /// A skill, deleted or not.
    async fn skill(&self, id: &str) -> Result<Option<SkillRecord>>;
    async fn skill_version(&self, skill_id: &str, version_id: &str) -> Result<Option<SkillVersionRecord>>;
    /// Files of a version, ordered by path.
    async fn skill_files(&self, version_id: &str) -> Result<Vec<SkillFileRecord>>;
    /// Live skills matching the filter with their current versions, newest update first.
    async fn list_skills(&self, filter: &SkillFilter) -> Result<Vec<(SkillRecord, SkillVersionRecord)>>;
    /// Soft-deletes a live skill; false if it was absent or already deleted.
    async fn delete_skill(&self, id: &str, at: i64) -> Result<bool>;
    async fn skill_grants(&self, skill_id: &str) -> Result<Vec<SkillGrant>>;
    /// Upserts and removes grants in one write.
    async fn change_skill_grants(&self, skill_id: &str, upsert: &[SkillGrant], remove: &[(String, String)]) -> Result<()>;
}
