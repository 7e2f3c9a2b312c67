//! Not yet ported: every method answers an error until this file is ported from `sqlite/`.
#![allow(unused_variables)]

use async_trait::async_trait;
use serde_json::{Map, Value};

use super::PgStore;
use crate::*;

#[async_trait]
impl TenancyStore for PgStore {
    async fn ensure_organization(&self, id: &str, name: &str) -> Result<()> {
        Err(StoreError::Corrupt("not ported to PostgreSQL yet".into()))
    }
    async fn ensure_user(&self, user: &User) -> Result<bool> {
        Err(StoreError::Corrupt("not ported to PostgreSQL yet".into()))
    }
    async fn user(&self, id: &str) -> Result<Option<User>> {
        Err(StoreError::Corrupt("not ported to PostgreSQL yet".into()))
    }
    async fn users_by_ids(&self, ids: &[String]) -> Result<Vec<User>> {
        Err(StoreError::Corrupt("not ported to PostgreSQL yet".into()))
    }
    async fn user_by_email(&self, organization_id: &str, email: &str) -> Result<Option<User>> {
        Err(StoreError::Corrupt("not ported to PostgreSQL yet".into()))
    }
    async fn organizations_of_user(&self, user_id: &str) -> Result<Vec<Organization>> {
        Err(StoreError::Corrupt("not ported to PostgreSQL yet".into()))
    }
    async fn organization(&self, id: &str) -> Result<Option<Organization>> {
        Err(StoreError::Corrupt("not ported to PostgreSQL yet".into()))
    }
    async fn ensure_team(&self, team: &Team) -> Result<bool> {
        Err(StoreError::Corrupt("not ported to PostgreSQL yet".into()))
    }
    async fn team(&self, id: &str) -> Result<Option<Team>> {
        Err(StoreError::Corrupt("not ported to PostgreSQL yet".into()))
    }
    async fn set_membership(&self, team_id: &str, user_id: &str, role: &str) -> Result<()> {
        Err(StoreError::Corrupt("not ported to PostgreSQL yet".into()))
    }
    async fn membership(&self, team_id: &str, user_id: &str) -> Result<Option<String>> {
        Err(StoreError::Corrupt("not ported to PostgreSQL yet".into()))
    }
    async fn teams_of_user(&self, user_id: &str) -> Result<Vec<(Team, String)>> {
        Err(StoreError::Corrupt("not ported to PostgreSQL yet".into()))
    }
    async fn count_users(&self) -> Result<i64> {
        Err(StoreError::Corrupt("not ported to PostgreSQL yet".into()))
    }
    async fn ping(&self) -> Result<()> {
        Err(StoreError::Corrupt("not ported to PostgreSQL yet".into()))
    }
    async fn insert_api_key(&self, key: &ApiKey) -> Result<()> {
        Err(StoreError::Corrupt("not ported to PostgreSQL yet".into()))
    }
    async fn api_key_by_hash(&self, hash: &[u8]) -> Result<Option<ApiKey>> {
        Err(StoreError::Corrupt("not ported to PostgreSQL yet".into()))
    }
    async fn list_api_keys(&self, user_id: Option<&str>, team_id: Option<&str>) -> Result<Vec<ApiKey>> {
        Err(StoreError::Corrupt("not ported to PostgreSQL yet".into()))
    }
    async fn revoke_api_key(&self, key_id: &str, at: i64) -> Result<bool> {
        Err(StoreError::Corrupt("not ported to PostgreSQL yet".into()))
    }
    async fn create_mcp_session(&self, s: &McpSessionRecord) -> Result<()> {
        Err(StoreError::Corrupt("not ported to PostgreSQL yet".into()))
    }
    async fn mcp_session(&self, id: &str) -> Result<Option<McpSessionRecord>> {
        Err(StoreError::Corrupt("not ported to PostgreSQL yet".into()))
    }
    async fn end_mcp_session(&self, id: &str, at: i64) -> Result<bool> {
        Err(StoreError::Corrupt("not ported to PostgreSQL yet".into()))
    }
}
