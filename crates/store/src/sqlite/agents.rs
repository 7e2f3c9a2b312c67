use async_trait::async_trait;
use rusqlite::{params, Connection, OptionalExtension, Row};

use super::{unique, SqliteStore};
use crate::{AgentRecord, AgentStore, AgentVersionRecord, Result, StoreError, Tenant};

fn corrupt(what: &str, e: serde_json::Error) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Text, Box::new(StoreError::Corrupt(format!("{what}: {e}"))))
}

fn agent_from(r: &Row) -> rusqlite::Result<AgentRecord> {
    let config: String = r.get("config")?;
    Ok(AgentRecord {
        id: r.get("id")?,
        owner_user_id: r.get("owner_user_id")?,
        team_id: r.get("team_id")?,
        creator_user_id: r.get("creator_user_id")?,
        config: serde_json::from_str(&config).map_err(|e| corrupt("agent config", e))?,
        version: r.get("version")?,
        is_active: r.get::<_, i64>("is_active")? != 0,
        deleted_at: r.get("deleted_at")?,
        created_at: r.get("created_at")?,
        last_updated_at: r.get("last_updated_at")?,
        last_used_at: r.get("last_used_at")?,
    })
}

fn version_from(r: &Row) -> rusqlite::Result<AgentVersionRecord> {
    let snapshot: String = r.get("snapshot")?;
    Ok(AgentVersionRecord {
        id: r.get("id")?,
        agent_id: r.get("agent_id")?,
        major_version: r.get("major_version")?,
        snapshot: serde_json::from_str(&snapshot).map_err(|e| corrupt("agent version", e))?,
        creator_user_id: r.get("creator_user_id")?,
        created_at: r.get("created_at")?,
    })
}

fn json(v: &impl serde::Serialize) -> Result<String> {
    serde_json::to_string(v).map_err(|e| StoreError::Corrupt(e.to_string()))
}

fn insert_version(c: &Connection, v: &AgentVersionRecord) -> Result<()> {
    c.prepare_cached("INSERT INTO agent_versions (id, agent_id, major_version, snapshot, creator_user_id, created_at) VALUES (?, ?, ?, ?, ?, ?)")?
        .execute(params![v.id, v.agent_id, v.major_version, json(&v.snapshot)?, v.creator_user_id, v.created_at])
        .map_err(|e| unique(e, "agent version"))?;
    Ok(())
}

#[async_trait]
impl AgentStore for SqliteStore {
    async fn create_agent(&self, a: &AgentRecord, v: &AgentVersionRecord) -> Result<()> {
        let (a, v) = (a.clone(), v.clone());
        self.write(move |c| {
            c.prepare_cached(
                "INSERT INTO agents (id, owner_user_id, team_id, creator_user_id, name, config, version, is_active, deleted_at, created_at, last_updated_at, last_used_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            )?
            .execute(params![
                a.id,
                a.owner_user_id,
                a.team_id,
                a.creator_user_id,
                a.config.name,
                json(&a.config)?,
                a.version,
                a.is_active as i64,
                a.deleted_at,
                a.created_at,
                a.last_updated_at,
                a.last_used_at
            ])
            .map_err(|e| unique(e, "agent"))?;
            insert_version(c, &v)
        })
        .await
    }

    async fn agent(&self, id: &str) -> Result<Option<AgentRecord>> {
        let id = id.to_string();
        self.read(move |c| Ok(c.prepare_cached("SELECT * FROM agents WHERE id = ?")?.query_row([id], agent_from).optional()?)).await
    }

    async fn agents_in_tenant(&self, tenant: &Tenant) -> Result<Vec<AgentRecord>> {
        let tenant = tenant.clone();
        self.read(move |c| {
            let rows = match tenant {
                Tenant::Personal(user) => c
                    .prepare_cached("SELECT * FROM agents WHERE team_id IS NULL AND owner_user_id = ? AND deleted_at IS NULL AND is_active = 1")?
                    .query_map([user], agent_from)?
                    .collect::<rusqlite::Result<Vec<_>>>()?,
                Tenant::Team(team) => c
                    .prepare_cached("SELECT * FROM agents WHERE team_id = ? AND deleted_at IS NULL AND is_active = 1")?
                    .query_map([team], agent_from)?
                    .collect::<rusqlite::Result<Vec<_>>>()?,
            };
            Ok(rows)
        })
        .await
    }

    async fn update_agent(&self, a: &AgentRecord, expected_version: i64, v: &AgentVersionRecord) -> Result<bool> {
        let (a, v) = (a.clone(), v.clone());
        self.write(move |c| {
            let n = c
                .prepare_cached(
                    "UPDATE agents SET team_id = ?, name = ?, config = ?, version = ?, is_active = ?, last_updated_at = ? WHERE id = ? AND version = ? AND deleted_at IS NULL",
                )?
                .execute(params![a.team_id, a.config.name, json(&a.config)?, a.version, a.is_active as i64, a.last_updated_at, a.id, expected_version])?;
            if n != 1 {
                return Ok(false);
            }
            insert_version(c, &v)?;
            Ok(true)
        })
        .await
    }

    async fn delete_agent(&self, id: &str, at: i64) -> Result<bool> {
        let id = id.to_string();
        self.write(move |c| Ok(c.prepare_cached("UPDATE agents SET deleted_at = ? WHERE id = ? AND deleted_at IS NULL")?.execute(params![at, id])? == 1)).await
    }

    async fn agent_versions(&self, agent_id: &str) -> Result<Vec<AgentVersionRecord>> {
        let agent_id = agent_id.to_string();
        self.read(move |c| {
            Ok(c.prepare_cached("SELECT * FROM agent_versions WHERE agent_id = ? ORDER BY major_version DESC")?
                .query_map([agent_id], version_from)?
                .collect::<rusqlite::Result<Vec<_>>>()?)
        })
        .await
    }

    async fn agent_version(&self, agent_id: &str, version_id: &str) -> Result<Option<AgentVersionRecord>> {
        let (a, v) = (agent_id.to_string(), version_id.to_string());
        self.read(move |c| Ok(c.prepare_cached("SELECT * FROM agent_versions WHERE agent_id = ? AND id = ?")?.query_row([a, v], version_from).optional()?))
            .await
    }

    async fn touch_agent_used(&self, id: &str, at: i64) -> Result<()> {
        let id = id.to_string();
        self.write(move |c| {
            c.prepare_cached("UPDATE agents SET last_used_at = ? WHERE id = ?")?.execute(params![at, id])?;
            Ok(())
        })
        .await
    }
}
