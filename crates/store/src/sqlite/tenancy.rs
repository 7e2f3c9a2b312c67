use async_trait::async_trait;
use rusqlite::{params, OptionalExtension, Row};

use super::{unique, SqliteStore};
use crate::{ApiKey, McpSessionRecord, Organization, Result, Team, TenancyStore, User};

fn user_from(r: &Row) -> rusqlite::Result<User> {
    Ok(User {
        id: r.get("id")?,
        organization_id: r.get("organization_id")?,
        email: r.get("email")?,
        first_name: r.get("first_name")?,
        last_name: r.get("last_name")?,
        org_role: r.get("org_role")?,
        created_at: r.get("created_at")?,
    })
}

fn team_from(r: &Row) -> rusqlite::Result<Team> {
    Ok(Team { id: r.get("id")?, organization_id: r.get("organization_id")?, name: r.get("name")?, created_at: r.get("created_at")? })
}

fn key_from(r: &Row) -> rusqlite::Result<ApiKey> {
    Ok(ApiKey {
        id: r.get("id")?,
        secret_hash: r.get("secret_hash")?,
        prefix: r.get("prefix")?,
        name: r.get("name")?,
        user_id: r.get("user_id")?,
        team_id: r.get("team_id")?,
        created_by: r.get("created_by")?,
        created_at: r.get("created_at")?,
        revoked_at: r.get("revoked_at")?,
    })
}

fn org_from(r: &Row) -> rusqlite::Result<Organization> {
    Ok(Organization { id: r.get("id")?, name: r.get("name")?, created_at: r.get("created_at")? })
}

#[async_trait]
impl TenancyStore for SqliteStore {
    async fn ensure_organization(&self, id: &str, name: &str) -> Result<()> {
        let (id, name) = (id.to_string(), name.to_string());
        self.write(move |c| {
            c.prepare_cached("INSERT INTO organizations (id, name, created_at) VALUES (?, ?, ?) ON CONFLICT(id) DO NOTHING")?.execute(params![
                id,
                name,
                wire::time::now_micros()
            ])?;
            Ok(())
        })
        .await
    }

    async fn ensure_user(&self, u: &User) -> Result<bool> {
        let u = u.clone();
        self.write(move |c| {
            let n = c
                .prepare_cached(
                    "INSERT INTO users (id, organization_id, email, first_name, last_name, org_role, created_at) VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT(id) DO NOTHING",
                )?
                .execute(params![u.id, u.organization_id, u.email, u.first_name, u.last_name, u.org_role, u.created_at])?;
            Ok(n == 1)
        })
        .await
    }

    async fn user(&self, id: &str) -> Result<Option<User>> {
        let id = id.to_string();
        self.read(move |c| Ok(c.prepare_cached("SELECT * FROM users WHERE id = ?")?.query_row([id], user_from).optional()?)).await
    }

    async fn users_by_ids(&self, ids: &[String]) -> Result<Vec<User>> {
        let ids = ids.to_vec();
        self.read(move |c| {
            let mut st = c.prepare_cached("SELECT * FROM users WHERE id = ?")?;
            let mut out = Vec::with_capacity(ids.len());
            for id in ids {
                if let Some(u) = st.query_row([id], user_from).optional()? {
                    out.push(u);
                }
            }
            Ok(out)
        })
        .await
    }

    async fn user_by_email(&self, organization_id: &str, email: &str) -> Result<Option<User>> {
        let (org, email) = (organization_id.to_string(), email.to_string());
        self.read(move |c| {
            Ok(c.prepare_cached("SELECT * FROM users WHERE organization_id = ? AND lower(email) = lower(?) LIMIT 1")?
                .query_row([org, email], user_from)
                .optional()?)
        })
        .await
    }

    async fn organizations_of_user(&self, user_id: &str) -> Result<Vec<Organization>> {
        let user_id = user_id.to_string();
        self.read(move |c| {
            let mut st = c.prepare_cached(
                "SELECT o.id, o.name, o.created_at FROM organizations o JOIN users u ON u.organization_id = o.id WHERE u.id = ? ORDER BY o.name, o.id",
            )?;
            let rows = st.query_map([user_id], org_from)?.collect::<rusqlite::Result<Vec<_>>>()?;
            Ok(rows)
        })
        .await
    }

    async fn organization(&self, id: &str) -> Result<Option<Organization>> {
        let id = id.to_string();
        self.read(move |c| Ok(c.prepare_cached("SELECT id, name, created_at FROM organizations WHERE id = ?")?.query_row([id], org_from).optional()?)).await
    }

    async fn ensure_team(&self, t: &Team) -> Result<bool> {
        let t = t.clone();
        self.write(move |c| {
            let n = c
                .prepare_cached("INSERT INTO teams (id, organization_id, name, created_at) VALUES (?, ?, ?, ?) ON CONFLICT(id) DO NOTHING")?
                .execute(params![t.id, t.organization_id, t.name, t.created_at])?;
            Ok(n == 1)
        })
        .await
    }

    async fn team(&self, id: &str) -> Result<Option<Team>> {
        let id = id.to_string();
        self.read(move |c| Ok(c.prepare_cached("SELECT * FROM teams WHERE id = ?")?.query_row([id], team_from).optional()?)).await
    }

    async fn set_membership(&self, team_id: &str, user_id: &str, role: &str) -> Result<()> {
        let (t, u, r) = (team_id.to_string(), user_id.to_string(), role.to_string());
        self.write(move |c| {
            c.prepare_cached(
                "INSERT INTO team_members (team_id, user_id, role, created_at) VALUES (?, ?, ?, ?) ON CONFLICT(team_id, user_id) DO UPDATE SET role = excluded.role",
            )?
            .execute(params![t, u, r, wire::time::now_micros()])?;
            Ok(())
        })
        .await
    }

    async fn membership(&self, team_id: &str, user_id: &str) -> Result<Option<String>> {
        let (t, u) = (team_id.to_string(), user_id.to_string());
        self.read(move |c| {
            Ok(c.prepare_cached("SELECT role FROM team_members WHERE team_id = ? AND user_id = ?")?.query_row([t, u], |r| r.get(0)).optional()?)
        })
        .await
    }

    async fn teams_of_user(&self, user_id: &str) -> Result<Vec<(Team, String)>> {
        let user_id = user_id.to_string();
        self.read(move |c| {
            let mut st = c.prepare_cached(
                "SELECT t.*, m.role AS member_role FROM teams t JOIN team_members m ON m.team_id = t.id WHERE m.user_id = ? ORDER BY t.name, t.id",
            )?;
            let rows = st.query_map([user_id], |r| Ok((team_from(r)?, r.get("member_role")?)))?.collect::<rusqlite::Result<Vec<_>>>()?;
            Ok(rows)
        })
        .await
    }

    async fn list_users(&self, organization_id: Option<&str>) -> Result<Vec<User>> {
        let org = organization_id.map(str::to_string);
        self.read_blocking(move |c| {
            let mut st = c.prepare_cached("SELECT * FROM users WHERE ?1 IS NULL OR organization_id = ?1 ORDER BY created_at, id")?;
            let rows = st.query_map([org], user_from)?.collect::<rusqlite::Result<Vec<_>>>()?;
            Ok(rows)
        })
        .await
    }

    async fn list_teams(&self, organization_id: Option<&str>) -> Result<Vec<(Team, i64)>> {
        let org = organization_id.map(str::to_string);
        self.read_blocking(move |c| {
            let mut st = c.prepare_cached(
                "SELECT t.*, (SELECT COUNT(*) FROM team_members m WHERE m.team_id = t.id) AS members FROM teams t \
                 WHERE ?1 IS NULL OR t.organization_id = ?1 ORDER BY t.name, t.id",
            )?;
            let rows = st.query_map([org], |r| Ok((team_from(r)?, r.get("members")?)))?.collect::<rusqlite::Result<Vec<_>>>()?;
            Ok(rows)
        })
        .await
    }

    async fn count_users(&self) -> Result<i64> {
        self.read(|c| Ok(c.prepare_cached("SELECT COUNT(*) FROM users")?.query_row([], |r| r.get(0))?)).await
    }

    async fn ping(&self) -> Result<()> {
        self.read(|c| Ok(c.prepare_cached("SELECT 1")?.query_row([], |r| r.get::<_, i64>(0)).map(|_| ())?)).await?;
        // Readiness means writes work too (a full or read-only disk is not ready).
        self.write(|c| {
            c.prepare_cached("INSERT INTO _health (id, checked_at) VALUES (1, ?) ON CONFLICT(id) DO UPDATE SET checked_at = excluded.checked_at")?
                .execute([wire::time::now_micros()])?;
            Ok(())
        })
        .await
    }

    async fn insert_api_key(&self, k: &ApiKey) -> Result<()> {
        let k = k.clone();
        self.write(move |c| {
            c.prepare_cached(
                "INSERT INTO api_keys (id, secret_hash, prefix, name, user_id, team_id, created_by, created_at, revoked_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            )?
            .execute(params![k.id, k.secret_hash, k.prefix, k.name, k.user_id, k.team_id, k.created_by, k.created_at, k.revoked_at])
            .map_err(|e| unique(e, "api key"))?;
            Ok(())
        })
        .await
    }

    async fn api_key_by_hash(&self, hash: &[u8]) -> Result<Option<ApiKey>> {
        let hash = hash.to_vec();
        self.read(move |c| Ok(c.prepare_cached("SELECT * FROM api_keys WHERE secret_hash = ?")?.query_row([hash], key_from).optional()?)).await
    }

    async fn list_api_keys(&self, user_id: Option<&str>, team_id: Option<&str>) -> Result<Vec<ApiKey>> {
        let (u, t) = (user_id.map(str::to_string), team_id.map(str::to_string));
        self.read(move |c| {
            let mut st =
                c.prepare_cached("SELECT * FROM api_keys WHERE (?1 IS NULL OR user_id = ?1) AND (?2 IS NULL OR team_id = ?2) ORDER BY created_at, id")?;
            let rows = st.query_map(params![u, t], key_from)?.collect::<rusqlite::Result<Vec<_>>>()?;
            Ok(rows)
        })
        .await
    }

    async fn revoke_api_key(&self, key_id: &str, at: i64) -> Result<bool> {
        let key_id = key_id.to_string();
        self.write(move |c| Ok(c.prepare_cached("UPDATE api_keys SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL")?.execute(params![at, key_id])? == 1))
            .await
    }

    async fn create_mcp_session(&self, s: &McpSessionRecord) -> Result<()> {
        let s = s.clone();
        self.write(move |c| {
            c.prepare_cached("INSERT INTO mcp_sessions (id, key_id, protocol_version, created_at) VALUES (?, ?, ?, ?)")?.execute(params![
                s.id,
                s.key_id,
                s.protocol_version,
                s.created_at
            ])?;
            Ok(())
        })
        .await
    }

    async fn mcp_session(&self, id: &str) -> Result<Option<McpSessionRecord>> {
        let id = id.to_string();
        self.read(move |c| {
            Ok(c.prepare_cached("SELECT id, key_id, protocol_version, created_at FROM mcp_sessions WHERE id = ? AND ended_at IS NULL")?
                .query_row([id], |r| Ok(McpSessionRecord { id: r.get(0)?, key_id: r.get(1)?, protocol_version: r.get(2)?, created_at: r.get(3)? }))
                .optional()?)
        })
        .await
    }

    async fn end_mcp_session(&self, id: &str, at: i64) -> Result<bool> {
        let id = id.to_string();
        self.write(move |c| Ok(c.prepare_cached("UPDATE mcp_sessions SET ended_at = ? WHERE id = ? AND ended_at IS NULL")?.execute(params![at, id])? == 1))
            .await
    }
}
