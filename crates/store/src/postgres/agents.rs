use async_trait::async_trait;
use sqlx::postgres::PgRow;
use sqlx::{PgConnection, Row};

use super::{corrupt, pg_json_text, pg_text, unique, PgStore};
use crate::{AgentRecord, AgentStore, AgentVersionRecord, Result, Tenant};

const AGENT_COLS: &str = "id, owner_user_id, team_id, creator_user_id, config, version, is_active, deleted_at, created_at, last_updated_at, last_used_at";
const VERSION_COLS: &str = "id, agent_id, major_version, snapshot, creator_user_id, created_at";

fn agent_from(r: &PgRow) -> Result<AgentRecord> {
    let config: String = r.try_get("config")?;
    Ok(AgentRecord {
        id: r.try_get("id")?,
        owner_user_id: r.try_get("owner_user_id")?,
        team_id: r.try_get("team_id")?,
        creator_user_id: r.try_get("creator_user_id")?,
        config: serde_json::from_str(&config).map_err(|e| corrupt("agent config", e))?,
        version: r.try_get("version")?,
        is_active: r.try_get("is_active")?,
        deleted_at: r.try_get("deleted_at")?,
        created_at: r.try_get("created_at")?,
        last_updated_at: r.try_get("last_updated_at")?,
        last_used_at: r.try_get("last_used_at")?,
    })
}

fn version_from(r: &PgRow) -> Result<AgentVersionRecord> {
    let snapshot: String = r.try_get("snapshot")?;
    Ok(AgentVersionRecord {
        id: r.try_get("id")?,
        agent_id: r.try_get("agent_id")?,
        major_version: r.try_get("major_version")?,
        snapshot: serde_json::from_str(&snapshot).map_err(|e| corrupt("agent version", e))?,
        creator_user_id: r.try_get("creator_user_id")?,
        created_at: r.try_get("created_at")?,
    })
}

/// JSON text, keys in the order the model holds them (like the SQLite store); a NUL in
/// a string becomes U+FFFD, as queries cast this text to `jsonb` ([`pg_json_text`]).
fn json(v: &impl serde::Serialize) -> Result<String> {
    let s = serde_json::to_string(v).map_err(|e| corrupt("json", e))?;
    Ok(if s.contains("\\u0000") { pg_json_text(&s).into_owned() } else { s })
}

async fn insert_version(c: &mut PgConnection, v: &AgentVersionRecord) -> Result<()> {
    sqlx::query(&format!("INSERT INTO agent_versions ({VERSION_COLS}) VALUES ($1, $2, $3, $4, $5, $6)"))
        .bind(&v.id)
        .bind(&v.agent_id)
        .bind(v.major_version)
        .bind(json(&v.snapshot)?)
        .bind(&v.creator_user_id)
        .bind(v.created_at)
        .execute(c)
        .await
        .map_err(|e| unique(e, "agent version"))?;
    Ok(())
}

#[async_trait]
impl AgentStore for PgStore {
    async fn create_agent(&self, a: &AgentRecord, v: &AgentVersionRecord) -> Result<()> {
        let config = json(&a.config)?;
        let mut tx = self.begin().await?;
        sqlx::query(
            "INSERT INTO agents (id, owner_user_id, team_id, creator_user_id, name, config, version, is_active, deleted_at, created_at, last_updated_at, last_used_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
        )
        .bind(&a.id)
        .bind(&a.owner_user_id)
        .bind(&a.team_id)
        .bind(&a.creator_user_id)
        .bind(pg_text(&a.config.name))
        .bind(&config)
        .bind(a.version)
        .bind(a.is_active)
        .bind(a.deleted_at)
        .bind(a.created_at)
        .bind(a.last_updated_at)
        .bind(a.last_used_at)
        .execute(&mut *tx)
        .await
        .map_err(|e| unique(e, "agent"))?;
        insert_version(&mut tx, v).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn agent(&self, id: &str) -> Result<Option<AgentRecord>> {
        let row = sqlx::query(&format!("SELECT {AGENT_COLS} FROM agents WHERE id = $1")).bind(id).fetch_optional(self.pool()).await?;
        row.as_ref().map(agent_from).transpose()
    }

    async fn agents_in_tenant(&self, tenant: &Tenant) -> Result<Vec<AgentRecord>> {
        let rows = match tenant {
            Tenant::Personal(user) => {
                sqlx::query(&format!("SELECT {AGENT_COLS} FROM agents WHERE team_id IS NULL AND owner_user_id = $1 AND deleted_at IS NULL AND is_active"))
                    .bind(user)
                    .fetch_all(self.pool())
                    .await?
            }
            Tenant::Team(team) => {
                sqlx::query(&format!("SELECT {AGENT_COLS} FROM agents WHERE team_id = $1 AND deleted_at IS NULL AND is_active"))
                    .bind(team)
                    .fetch_all(self.pool())
                    .await?
            }
        };
        rows.iter().map(agent_from).collect()
    }

    async fn update_agent(&self, a: &AgentRecord, expected_version: i64, v: &AgentVersionRecord) -> Result<bool> {
        let config = json(&a.config)?;
        let mut tx = self.begin().await?;
        // The conditional update itself decides: a concurrent update of the same row waits
        // for this one and then finds the version moved.
        let n = sqlx::query(
            "UPDATE agents SET team_id = $1, name = $2, config = $3, version = $4, is_active = $5, last_updated_at = $6 \
             WHERE id = $7 AND version = $8 AND deleted_at IS NULL",
        )
        .bind(&a.team_id)
        .bind(pg_text(&a.config.name))
        .bind(&config)
        .bind(a.version)
        .bind(a.is_active)
        .bind(a.last_updated_at)
        .bind(&a.id)
        .bind(expected_version)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if n != 1 {
            return Ok(false);
        }
        insert_version(&mut tx, v).await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn delete_agent(&self, id: &str, at: i64) -> Result<bool> {
        let mut tx = self.begin().await?;
        let n =
            sqlx::query("UPDATE agents SET deleted_at = $1 WHERE id = $2 AND deleted_at IS NULL").bind(at).bind(id).execute(&mut *tx).await?.rows_affected();
        tx.commit().await?;
        Ok(n == 1)
    }

    async fn agent_versions(&self, agent_id: &str) -> Result<Vec<AgentVersionRecord>> {
        let rows = sqlx::query(&format!("SELECT {VERSION_COLS} FROM agent_versions WHERE agent_id = $1 ORDER BY major_version DESC"))
            .bind(agent_id)
            .fetch_all(self.pool())
            .await?;
        rows.iter().map(version_from).collect()
    }

    async fn agent_version(&self, agent_id: &str, version_id: &str) -> Result<Option<AgentVersionRecord>> {
        let row = sqlx::query(&format!("SELECT {VERSION_COLS} FROM agent_versions WHERE agent_id = $1 AND id = $2"))
            .bind(agent_id)
            .bind(version_id)
            .fetch_optional(self.pool())
            .await?;
        row.as_ref().map(version_from).transpose()
    }

    async fn touch_agent_used(&self, id: &str, at: i64) -> Result<()> {
        let mut tx = self.begin().await?;
        sqlx::query("UPDATE agents SET last_used_at = $1 WHERE id = $2").bind(at).bind(id).execute(&mut *tx).await?;
        tx.commit().await?;
        Ok(())
    }
}
