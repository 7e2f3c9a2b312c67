//! Artifacts and their versions; legacy flow files.

use async_trait::async_trait;

use crate::*;

/// Artifacts and their versions.
#[async_trait]
pub trait ArtifactStore: Send + Sync {
    /// Adds a version to the live artifact named `stored_filename` in the session, or
    /// creates the artifact (version 1), atomically. `new_artifact_id` is used when new.
    async fn add_artifact_version(&self, new_artifact: &ArtifactRecord, version: &ArtifactVersionRecord) -> Result<(ArtifactRecord, ArtifactVersionRecord)>;
    async fn artifact(&self, id: &str) -> Result<Option<ArtifactRecord>>;
    async fn artifact_versions(&self, artifact_id: &str) -> Result<Vec<ArtifactVersionRecord>>;
    /// One page of the live artifacts of an agent's sessions the reader may read (A1).
    async fn list_artifacts(
        &self,
        filter: &ArtifactFilter,
        sort: ArtifactSort,
        page: &PageWindow,
    ) -> Result<Vec<(SortVal, ArtifactRecord, ArtifactVersionRecord)>>;
    async fn delete_artifact(&self, id: &str, at: i64) -> Result<bool>;
    async fn rename_artifact(&self, id: &str, name: Option<&str>) -> Result<()>;
    async fn set_artifact_password(&self, id: &str, hash: &str) -> Result<()>;
    /// Legacy flow files (F8–F11): replaces a same-named file; returns the replaced
    /// file's blob key.
    async fn upsert_flow_file(&self, namespace: &str, f: &SessionFileRecord) -> Result<Option<String>>;
    async fn flow_file(&self, namespace: &str, file_name: &str) -> Result<Option<SessionFileRecord>>;
}
