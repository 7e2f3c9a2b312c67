use async_trait::async_trait;
use rusqlite::{params, OptionalExtension, Row};

use super::SqliteStore;
use crate::{McpServerRecord, McpServerStore, Result};

const COLUMNS: &str = "scope, id, organization_id, team_id, owner_user_id, config, secrets, status, tool_count, created_at, updated_at";

fn record(r: &Row<'_>) -> rusqlite::Result<McpServerRecord> {
    let config: String = r.get(5)?;
    Ok(McpServerRecord {
        scope: r.get(0)?,
        id: r.get(1)?,
        organization_id: r.get(2)?,
        team_id: r.get(3)?,
        owner_user_id: r.get(4)?,
        config: serde_json::from_str(&config).unwrap_or(serde_json::Value::Null),
        secrets: r.get(6)?,
        status: r.get(7)?,
        tool_count: r.get(8)?,
        created_at: r.get(9)?,
        updated_at: r.get(10)?,
    })
}

#[async_trait]
impl McpServerStore for SqliteStore {
    async fn create_mcp_server(&self, rec: &McpServerRecord) -> Result<bool> {
        let rec = rec.clone();
        self.write(move |c| {
            let n = c
                .prepare_cached(&format!("INSERT INTO mcp_servers ({COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (scope, id) DO NOTHING"))?
                .execute(params![
                    rec.scope,
                    rec.id,
                    rec.organization_id,
                    rec.team_id,
                    rec.owner_user_id,
                    rec.config.to_string(),
                    rec.secrets,
                    rec.status,
                    rec.tool_count,
                    rec.created_at,
                    rec.updated_at
                ])?;
            Ok(n == 1)
        })
        .await
    }

    async fn mcp_server(&self, scope: &str, id: &str) -> Result<Option<McpServerRecord>> {
        let (scope, id) = (scope.to_string(), id.to_string());
        self.read(move |c| {
            Ok(c.prepare_cached(&format!("SELECT {COLUMNS} FROM mcp_servers WHERE scope = ? AND id = ?"))?.query_row(params![scope, id], record).optional()?)
        })
        .await
    }

    async fn mcp_servers(&self, scope: &str) -> Result<Vec<McpServerRecord>> {
        let scope = scope.to_string();
        self.read(move |c| {
            let mut st = c.prepare_cached(&format!("SELECT {COLUMNS} FROM mcp_servers WHERE scope = ? ORDER BY id"))?;
            let rows = st.query_map([scope], record)?.collect::<rusqlite::Result<Vec<_>>>()?;
            Ok(rows)
        })
        .await
    }

    async fn update_mcp_server(&self, rec: &McpServerRecord, expected_updated_at: i64) -> Result<bool> {
        let rec = rec.clone();
        self.write(move |c| {
            let n = c
                .prepare_cached("UPDATE mcp_servers SET config = ?, secrets = ?, updated_at = ? WHERE scope = ? AND id = ? AND updated_at = ?")?
                .execute(params![rec.config.to_string(), rec.secrets, rec.updated_at, rec.scope, rec.id, expected_updated_at])?;
            Ok(n == 1)
        })
        .await
    }

    async fn set_mcp_server_status(&self, scope: &str, id: &str, status: &str, tool_count: Option<i64>) -> Result<()> {
        let (scope, id, status) = (scope.to_string(), id.to_string(), status.to_string());
        self.write(move |c| {
            c.prepare_cached("UPDATE mcp_servers SET status = ?, tool_count = COALESCE(?, tool_count) WHERE scope = ? AND id = ?")?
                .execute(params![status, tool_count, scope, id])?;
            Ok(())
        })
        .await
    }

    async fn delete_mcp_server(&self, scope: &str, id: &str) -> Result<bool> {
        let (scope, id) = (scope.to_string(), id.to_string());
        self.write(move |c| Ok(c.prepare_cached("DELETE FROM mcp_servers WHERE scope = ? AND id = ?")?.execute(params![scope, id])? == 1)).await
    }
}
