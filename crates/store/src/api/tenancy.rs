//! Organizations, users, teams, memberships, API keys, MCP sessions.

use async_trait::async_trait;

use crate::*;

/// Organizations, users, teams, memberships and API keys.
#[async_trait]
pub trait TenancyStore: Send + Sync {
    async fn ensure_organization(&self, id: &str, name: &str) -> Result<()>;
    /// Insert the user if absent (idempotent); returns whether it was created.
    async fn ensure_user(&self, user: &User) -> Result<bool>;
    async fn user(&self, id: &str) -> Result<Option<User>>;
    async fn users_by_ids(&self, ids: &[String]) -> Result<Vec<User>>;
    async fn user_by_email(&self, organization_id: &str, email: &str) -> Result<Option<User>>;
    async fn organizations_of_user(&self, user_id: &str) -> Result<Vec<Organization>>;
    async fn organization(&self, id: &str) -> Result<Option<Organization>>;
    /// Insert the team if absent (idempotent); returns whether it was created.
    async fn ensure_team(&self, team: &Team) -> Result<bool>;
    async fn team(&self, id: &str) -> Result<Option<Team>>;
    async fn set_membership(&self, team_id: &str, user_id: &str, role: &str) -> Result<()>;
    async fn membership(&self, team_id: &str, user_id: &str) -> Result<Option<String>>;
    /// Teams the user belongs to, with the user's role, ordered by name.
    async fn teams_of_user(&self, user_id: &str) -> Result<Vec<(Team, String)>>;
    async fn count_users(&self) -> Result<i64>;
    /// Users, of one organization or all, oldest first (the admin CLI's `users list`).
    async fn list_users(&self, organization_id: Option<&str>) -> Result<Vec<User>>;
    /// Teams with their member counts, of one organization or all, by name.
    async fn list_teams(&self, organization_id: Option<&str>) -> Result<Vec<(Team, i64)>>;
    /// Liveness of the database (`/readyz`).
    async fn ping(&self) -> Result<()>;

    async fn insert_api_key(&self, key: &ApiKey) -> Result<()>;
    async fn api_key_by_hash(&self, hash: &[u8]) -> Result<Option<ApiKey>>;
    async fn list_api_keys(&self, user_id: Option<&str>, team_id: Option<&str>) -> Result<Vec<ApiKey>>;
    /// Returns false when no active key has this id.
    async fn revoke_api_key(&self, key_id: &str, at: i64) -> Result<bool>;

    /// MCP server sessions (API.md §10.4).
    async fn create_mcp_session(&self, s: &McpSessionRecord) -> Result<()>;
    /// The session if it exists and has not ended.
    async fn mcp_session(&self, id: &str) -> Result<Option<McpSessionRecord>>;
    /// Returns false when no open session has this id.
    async fn end_mcp_session(&self, id: &str, at: i64) -> Result<bool>;
}
