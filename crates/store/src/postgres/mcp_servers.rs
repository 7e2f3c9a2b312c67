use async_trait::async_trait;
use sqlx::postgres::PgRow;
use sqlx::Row;

use super::{pg_text, PgStore};
use crate::{McpServerRecord, McpServerStore, Result};

const COLUMNS: &str = "scope, id, organization_id, team_id, owner_user_id, config, secrets, status, tool_count, created_at, updated_at";

fn record(r: &PgRow) -> sqlx::Result<McpServerRecord> {
    let config: String = r.try_get("config")?;
    Ok(McpServerRecord {
        scope: r.try_get("scope")?,
        id: r.try_get("id")?,
        organization_id: r.try_get("organization_id")?,
        team_id: r.try_get("team_id")?,
        owner_user_id: r.try_get("owner_user_id")?,
        config: serde_json::from_str(&config).unwrap_or(serde_json::Value::Null),
        secrets: r.try_get("secrets")?,
        status: r.try_get("status")?,
        tool_count: r.try_get("tool_count")?,
        created_at: r.try_get("created_at")?,
        updated_at: r.try_get("updated_at")?,
    })
}

#[async_trait]
impl McpServerStore for PgStore {
    async fn create_mcp_server(&self, rec: &McpServerRecord) -> Result<bool> {
        let config = rec.config.to_string();
        let n = sqlx::query(&format!(
            "INSERT INTO mcp_servers ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) ON CONFLICT (scope, id) DO NOTHING"
        ))
        .bind(pg_text(&rec.scope))
        .bind(pg_text(&rec.id))
        .bind(&rec.organization_id)
        .bind(&rec.team_id)
        .bind(&rec.owner_user_id)
        .bind(pg_text(&config))
        .bind(&rec.secrets)
        .bind(&rec.status)
        .bind(rec.tool_count)
        .bind(rec.created_at)
        .bind(rec.updated_at)
        .execute(self.pool())
        .await?
        .rows_affected();
        Ok(n == 1)
    }

    async fn mcp_server(&self, scope: &str, id: &str) -> Result<Option<McpServerRecord>> {
        let row = sqlx::query(&format!("SELECT {COLUMNS} FROM mcp_servers WHERE scope = $1 AND id = $2"))
            .bind(pg_text(scope))
            .bind(pg_text(id))
            .fetch_optional(self.pool())
            .await?;
        Ok(row.as_ref().map(record).transpose()?)
    }

    async fn mcp_servers(&self, scope: &str) -> Result<Vec<McpServerRecord>> {
        let rows = sqlx::query(&format!("SELECT {COLUMNS} FROM mcp_servers WHERE scope = $1 ORDER BY id COLLATE \"C\""))
            .bind(pg_text(scope))
            .fetch_all(self.pool())
            .await?;
        Ok(rows.iter().map(record).collect::<sqlx::Result<Vec<_>>>()?)
    }

    async fn update_mcp_server(&self, rec: &McpServerRecord, expected_updated_at: i64) -> Result<bool> {
        let config = rec.config.to_string();
        let n = sqlx::query("UPDATE mcp_servers SET config = $1, secrets = $2, updated_at = $3 WHERE scope = $4 AND id = $5 AND updated_at = $6")
            .bind(pg_text(&config))
            .bind(&rec.secrets)
            .bind(rec.updated_at)
            .bind(pg_text(&rec.scope))
            .bind(pg_text(&rec.id))
            .bind(expected_updated_at)
            .execute(self.pool())
            .await?
            .rows_affected();
        Ok(n == 1)
    }

    async fn set_mcp_server_status(&self, scope: &str, id: &str, status: &str, tool_count: Option<i64>) -> Result<()> {
        sqlx::query("UPDATE mcp_servers SET status = $1, tool_count = COALESCE($2, tool_count) WHERE scope = $3 AND id = $4")
            .bind(status)
            .bind(tool_count)
            .bind(pg_text(scope))
            .bind(pg_text(id))
            .execute(self.pool())
            .await?;
        Ok(())
    }

    async fn delete_mcp_server(&self, scope: &str, id: &str) -> Result<bool> {
        let n = sqlx::query("DELETE FROM mcp_servers WHERE scope = $1 AND id = $2")
            .bind(pg_text(scope))
            .bind(pg_text(id))
            .execute(self.pool())
            .await?
            .rows_affected();
        Ok(n == 1)
    }
}
