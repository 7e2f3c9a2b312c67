use async_trait::async_trait;
use sqlx::sqlite::SqliteRow;
use sqlx::Row;

use super::{map_unique, SqliteStore};
use crate::{AgentRecord, AgentStore, AgentVersionRecord, Result, StoreError, Tenant};

fn agent_from(r: &SqliteRow) -> Result<AgentRecord> {
    let config: String = r.get("config");
    Ok(AgentRecord {
        id: r.get("id"),
        owner_user_id: r.get("owner_user_id"),
        team_id: r.get("team_id"),
        creator_user_id: r.get("creator_user_id"),
        config: serde_json::from_str(&config).map_err(|e| StoreError::Corrupt(format!("agent config: {e}")))?,
        version: r.get("version"),
        is_active: r.get::<i64, _>("is_active") != 0,
        deleted_at: r.get("deleted_at"),
        created_at: r.get("created_at"),
        last_updated_at: r.get("last_updated_at"),
        last_used_at: r.get("last_used_at"),
    })
}

fn version_from(r: &SqliteRow) -> Result<AgentVersionRecord> {
    let snapshot: String = r.get("snapshot");
    Ok(AgentVersionRecord {
        id: r.get("id"),
        agent_id: r.get("agent_id"),
        major_version: r.get("major_version"),
        snapshot: serde_json::from_str(&snapshot).map_err(|e| StoreError::Corrupt(format!("agent version: {e}")))?,
        creator_user_id: r.get("creator_user_id"),
        created_at: r.get("created_at"),
    })
}

fn json(v: &impl serde::Serialize) -> Result<String> {
    serde_json::to_string(v).map_err(|e| StoreError::Corrupt(e.to_string()))
}

async fn insert_version(tx: &mut sqlx::SqliteConnection, v: &AgentVersionRecord) -> Result<()> {
    sqlx::query("INSERT INTO agent_versions (id, agent_id, major_version, snapshot, creator_user_id, created_at) VALUES (?, ?, ?, ?, ?, ?)")
        .bind(&v.id)
        .bind(&v.agent_id)
        .bind(v.major_version)
        .bind(json(&v.snapshot)?)
        .bind(&v.creator_user_id)
        .bind(v.created_at)
        .execute(tx)
        .await
        .map_err(|e| map_unique(e, "agent version"))?;
    Ok(())
}

#[async_trait]
impl AgentStore for SqliteStore {
    async fn create_agent(&self, a: &AgentRecord, v: &AgentVersionRecord) -> Result<()> {
        let mut tx = self.write_tx().await?;
        sqlx::query(
            "INSERT INTO agents (id, owner_user_id, team_id, creator_user_id, name, config, version, is_active, deleted_at, created_at, last_updated_at, last_used_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(&a.id)
        .bind(&a.owner_user_id)
        .bind(&a.team_id)
        .bind(&a.creator_user_id)
        .bind(&a.config.name)
        .bind(json(&a.config)?)
        .bind(a.version)
        .bind(a.is_active as i64)
        .bind(a.deleted_at)
        .bind(a.created_at)
        .bind(a.last_updated_at)
        .bind(a.last_used_at)
        .execute(&mut *tx)
        .await
        .map_err(|e| map_unique(e, "agent"))?;
        insert_version(&mut tx, v).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn agent(&self, id: &str) -> Result<Option<AgentRecord>> {
        let row = sqlx::query("SELECT * FROM agents WHERE id = ?").bind(id).fetch_optional(&self.reader).await?;
        row.as_ref().map(agent_from).transpose()
    }

    async fn agents_in_tenant(&self, tenant: &Tenant) -> Result<Vec<AgentRecord>> {
        let rows = match tenant {
            Tenant::Personal(user) => {
                sqlx::query("SELECT * FROM agents WHERE team_id IS NULL AND owner_user_id = ? AND deleted_at IS NULL AND is_active = 1")
                    .bind(user)
                    .fetch_all(&self.reader)
                    .await?
            }
            Tenant::Team(team) => {
                sqlx::query("SELECT * FROM agents WHERE team_id = ? AND deleted_at IS NULL AND is_active = 1").bind(team).fetch_all(&self.reader).await?
            }
        };
        rows.iter().map(agent_from).collect()
    }

    async fn update_agent(&self, a: &AgentRecord, expected_version: i64, v: &AgentVersionRecord) -> Result<bool> {
        let mut tx = self.write_tx().await?;
        let res = sqlx::query(
            "UPDATE agents SET team_id = ?, name = ?, config = ?, version = ?, is_active = ?, last_updated_at = ? WHERE id = ? AND version = ? AND deleted_at IS NULL",
        )
        .bind(&a.team_id)
        .bind(&a.config.name)
        .bind(json(&a.config)?)
        .bind(a.version)
        .bind(a.is_active as i64)
        .bind(a.last_updated_at)
        .bind(&a.id)
        .bind(expected_version)
        .execute(&mut *tx)
        .await?;
        if res.rows_affected() != 1 {
            return Ok(false);
        }
        insert_version(&mut tx, v).await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn delete_agent(&self, id: &str, at: i64) -> Result<bool> {
        let mut tx = self.write_tx().await?;
        let res = sqlx::query("UPDATE agents SET deleted_at = ? WHERE id = ? AND deleted_at IS NULL").bind(at).bind(id).execute(&mut *tx).await?;
        tx.commit().await?;
        Ok(res.rows_affected() == 1)
    }

    async fn agent_versions(&self, agent_id: &str) -> Result<Vec<AgentVersionRecord>> {
        let rows = sqlx::query("SELECT * FROM agent_versions WHERE agent_id = ? ORDER BY major_version DESC").bind(agent_id).fetch_all(&self.reader).await?;
        rows.iter().map(version_from).collect()
    }

    async fn agent_version(&self, agent_id: &str, version_id: &str) -> Result<Option<AgentVersionRecord>> {
        let row =
            sqlx::query("SELECT * FROM agent_versions WHERE agent_id = ? AND id = ?").bind(agent_id).bind(version_id).fetch_optional(&self.reader).await?;
        row.as_ref().map(version_from).transpose()
    }

    async fn touch_agent_used(&self, id: &str, at: i64) -> Result<()> {
        let mut tx = self.write_tx().await?;
        sqlx::query("UPDATE agents SET last_used_at = ? WHERE id = ?").bind(at).bind(id).execute(&mut *tx).await?;
        tx.commit().await?;
        Ok(())
    }
}
