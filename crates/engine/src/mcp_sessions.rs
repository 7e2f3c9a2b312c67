//! Sessions of Openloop's MCP server (API.md §10.4): opened by `initialize`, bound to
//! the API key, ended by `DELETE`. Kept in the store so any replica can serve them.

use store::McpSessionRecord;
use wire::ApiError;

use crate::{db, Engine, KeyInfo};

impl Engine {
    pub async fn open_mcp_session(&self, key: &KeyInfo, protocol_version: &str) -> Result<String, ApiError> {
        let id = wire::ids::new_id("mcps");
        let rec = McpSessionRecord { id: id.clone(), key_id: key.id.clone(), protocol_version: protocol_version.to_string(), created_at: self.now() };
        self.store.create_mcp_session(&rec).await.map_err(db)?;
        Ok(id)
    }

    /// The open session with this id, if it belongs to `key` (another key's session is unknown).
    pub async fn mcp_session(&self, key: &KeyInfo, id: &str) -> Result<Option<McpSessionRecord>, ApiError> {
        Ok(self.store.mcp_session(id).await.map_err(db)?.filter(|s| s.key_id == key.id))
    }

    pub async fn end_mcp_session(&self, key: &KeyInfo, id: &str) -> Result<bool, ApiError> {
        if self.mcp_session(key, id).await?.is_none() {
            return Ok(false);
        }
        self.store.end_mcp_session(id, self.now()).await.map_err(db)
    }
}
