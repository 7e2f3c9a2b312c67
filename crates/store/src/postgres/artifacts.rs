//! Not yet ported: every method answers an error until this file is ported from `sqlite/`.
#![allow(unused_variables)]

use async_trait::async_trait;
use serde_json::{Map, Value};

use super::PgStore;
use crate::*;

#[async_trait]
impl ArtifactStore for PgStore {
    async fn add_artifact_version(&self, new_artifact: &ArtifactRecord, version: &ArtifactVersionRecord) -> Result<(ArtifactRecord, ArtifactVersionRecord)> {
        Err(StoreError::Corrupt("not ported to PostgreSQL yet".into()))
    }
    async fn artifact(&self, id: &str) -> Result<Option<ArtifactRecord>> {
        Err(StoreError::Corrupt("not ported to PostgreSQL yet".into()))
    }
    async fn artifact_versions(&self, artifact_id: &str) -> Result<Vec<ArtifactVersionRecord>> {
        Err(StoreError::Corrupt("not ported to PostgreSQL yet".into()))
    }
    async fn list_artifacts(
        &self,
        filter: &ArtifactFilter,
        sort: ArtifactSort,
        page: &PageWindow,
    ) -> Result<Vec<(SortVal, ArtifactRecord, ArtifactVersionRecord)>> {
        Err(StoreError::Corrupt("not ported to PostgreSQL yet".into()))
    }
    async fn delete_artifact(&self, id: &str, at: i64) -> Result<bool> {
        Err(StoreError::Corrupt("not ported to PostgreSQL yet".into()))
    }
    async fn rename_artifact(&self, id: &str, name: Option<&str>) -> Result<()> {
        Err(StoreError::Corrupt("not ported to PostgreSQL yet".into()))
    }
    async fn set_artifact_password(&self, id: &str, hash: &str) -> Result<()> {
        Err(StoreError::Corrupt("not ported to PostgreSQL yet".into()))
    }
    async fn upsert_flow_file(&self, namespace: &str, f: &SessionFileRecord) -> Result<Option<String>> {
        Err(StoreError::Corrupt("not ported to PostgreSQL yet".into()))
    }
    async fn flow_file(&self, namespace: &str, file_name: &str) -> Result<Option<SessionFileRecord>> {
        Err(StoreError::Corrupt("not ported to PostgreSQL yet".into()))
    }
}
