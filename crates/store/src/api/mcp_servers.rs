use async_trait::async_trait;

use crate::Result;

/// A registered MCP server of a workspace's connector catalogue (MC1–MC9).
#[derive(Debug, Clone, PartialEq)]
pub struct McpServerRecord {
    /// The workspace the entry belongs to: `team:<id>` or `user:<id>`; ids are unique
    /// within it.
    pub scope: String,
    pub id: String,
    pub organization_id: String,
    pub team_id: Option<String>,
    pub owner_user_id: String,
    /// Everything that is not a secret (name, url or command, description, the names of
    /// the stored headers), as JSON.
    pub config: serde_json::Value,
    /// Headers and environment, encrypted by the engine; never stored in clear.
    pub secrets: Option<String>,
    /// Last contact: `connected` or `error` (`unknown` before the first).
    pub status: String,
    pub tool_count: Option<i64>,
    pub created_at: i64,
    pub updated_at: i64,
}

/// The MCP server catalogue.
#[async_trait]
pub trait McpServerStore: Send + Sync {
    /// Inserts a new entry; `false` when `(scope, id)` exists already.
    async fn create_mcp_server(&self, rec: &McpServerRecord) -> Result<bool>;
    async fn mcp_server(&self, scope: &str, id: &str) -> Result<Option<McpServerRecord>>;
    /// A workspace's entries by id.
    async fn mcp_servers(&self, scope: &str) -> Result<Vec<McpServerRecord>>;
    /// Replaces config and secrets if the entry is still at `expected_updated_at`
    /// (`false`: it changed or is gone).
    async fn update_mcp_server(&self, rec: &McpServerRecord, expected_updated_at: i64) -> Result<bool>;
    /// Records the outcome of the last contact (does not count as an update).
    async fn set_mcp_server_status(&self, scope: &str, id: &str, status: &str, tool_count: Option<i64>) -> Result<()>;
    async fn delete_mcp_server(&self, scope: &str, id: &str) -> Result<bool>;
}
