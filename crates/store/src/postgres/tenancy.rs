use std::collections::HashMap;

use async_trait::async_trait;
use sqlx::postgres::PgRow;
use sqlx::Row;

use super::{pg_text, unique, PgStore};
use crate::{ApiKey, McpSessionRecord, Organization, Result, Team, TenancyStore, User};

fn user_from(r: &PgRow) -> sqlx::Result<User> {
    Ok(User {
        id: r.try_get("id")?,
        organization_id: r.try_get("organization_id")?,
        email: r.try_get("email")?,
        first_name: r.try_get("first_name")?,
        last_name: r.try_get("last_name")?,
        org_role: r.try_get("org_role")?,
        created_at: r.try_get("created_at")?,
    })
}

fn team_from(r: &PgRow) -> sqlx::Result<Team> {
    Ok(Team { id: r.try_get("id")?, organization_id: r.try_get("organization_id")?, name: r.try_get("name")?, created_at: r.try_get("created_at")? })
}

fn key_from(r: &PgRow) -> sqlx::Result<ApiKey> {
    Ok(ApiKey {
        id: r.try_get("id")?,
        secret_hash: r.try_get("secret_hash")?,
        prefix: r.try_get("prefix")?,
        name: r.try_get("name")?,
        user_id: r.try_get("user_id")?,
        team_id: r.try_get("team_id")?,
        created_by: r.try_get("created_by")?,
        created_at: r.try_get("created_at")?,
        revoked_at: r.try_get("revoked_at")?,
    })
}

fn org_from(r: &PgRow) -> sqlx::Result<Organization> {
    Ok(Organization { id: r.try_get("id")?, name: r.try_get("name")?, created_at: r.try_get("created_at")? })
}

const USER_COLS: &str = "id, organization_id, email, first_name, last_name, org_role, created_at";
const KEY_COLS: &str = "id, secret_hash, prefix, name, user_id, team_id, created_by, created_at, revoked_at";

#[async_trait]
impl TenancyStore for PgStore {
    async fn ensure_organization(&self, id: &str, name: &str) -> Result<()> {
        let mut tx = self.begin().await?;
        sqlx::query("INSERT INTO organizations (id, name, created_at) VALUES ($1, $2, $3) ON CONFLICT (id) DO NOTHING")
            .bind(id)
            .bind(pg_text(name))
            .bind(wire::time::now_micros())
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn ensure_user(&self, u: &User) -> Result<bool> {
        let mut tx = self.begin().await?;
        // ON CONFLICT DO NOTHING waits for a concurrent insert of the same id and then
        // skips: exactly one caller sees one affected row.
        let n = sqlx::query(
            "INSERT INTO users (id, organization_id, email, first_name, last_name, org_role, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (id) DO NOTHING",
        )
        .bind(&u.id)
        .bind(&u.organization_id)
        .bind(u.email.as_deref().map(pg_text))
        .bind(u.first_name.as_deref().map(pg_text))
        .bind(u.last_name.as_deref().map(pg_text))
        .bind(&u.org_role)
        .bind(u.created_at)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        tx.commit().await?;
        Ok(n == 1)
    }

    async fn user(&self, id: &str) -> Result<Option<User>> {
        let row = sqlx::query(&format!("SELECT {USER_COLS} FROM users WHERE id = $1")).bind(id).fetch_optional(self.pool()).await?;
        Ok(row.as_ref().map(user_from).transpose()?)
    }

    async fn users_by_ids(&self, ids: &[String]) -> Result<Vec<User>> {
        if ids.is_empty() {
            return Ok(vec![]);
        }
        let rows = sqlx::query(&format!("SELECT {USER_COLS} FROM users WHERE id = ANY($1)")).bind(ids).fetch_all(self.pool()).await?;
        let found: HashMap<String, User> = rows.iter().map(user_from).map(|u| u.map(|u| (u.id.clone(), u))).collect::<sqlx::Result<_>>()?;
        // In the order asked (unknown ids skipped), like one lookup per id.
        Ok(ids.iter().filter_map(|id| found.get(id).cloned()).collect())
    }

    async fn user_by_email(&self, organization_id: &str, email: &str) -> Result<Option<User>> {
        let row = sqlx::query(&format!("SELECT {USER_COLS} FROM users WHERE organization_id = $1 AND lower(email) = lower($2) LIMIT 1"))
            .bind(organization_id)
            .bind(pg_text(email))
            .fetch_optional(self.pool())
            .await?;
        Ok(row.as_ref().map(user_from).transpose()?)
    }

    async fn organizations_of_user(&self, user_id: &str) -> Result<Vec<Organization>> {
        let rows = sqlx::query(
            "SELECT o.id, o.name, o.created_at FROM organizations o JOIN users u ON u.organization_id = o.id WHERE u.id = $1 ORDER BY o.name, o.id",
        )
        .bind(user_id)
        .fetch_all(self.pool())
        .await?;
        Ok(rows.iter().map(org_from).collect::<sqlx::Result<Vec<_>>>()?)
    }

    async fn organization(&self, id: &str) -> Result<Option<Organization>> {
        let row = sqlx::query("SELECT id, name, created_at FROM organizations WHERE id = $1").bind(id).fetch_optional(self.pool()).await?;
        Ok(row.as_ref().map(org_from).transpose()?)
    }

    async fn ensure_team(&self, t: &Team) -> Result<bool> {
        let n = self
            .write_one(
                sqlx::query("INSERT INTO teams (id, organization_id, name, created_at) VALUES ($1, $2, $3, $4) ON CONFLICT (id) DO NOTHING")
                    .bind(&t.id)
                    .bind(&t.organization_id)
                    .bind(pg_text(&t.name))
                    .bind(t.created_at),
            )
            .await?;
        Ok(n == 1)
    }

    async fn team(&self, id: &str) -> Result<Option<Team>> {
        let row = sqlx::query("SELECT id, organization_id, name, created_at FROM teams WHERE id = $1").bind(id).fetch_optional(self.pool()).await?;
        Ok(row.as_ref().map(team_from).transpose()?)
    }

    async fn set_membership(&self, team_id: &str, user_id: &str, role: &str) -> Result<()> {
        let mut tx = self.begin().await?;
        sqlx::query(
            "INSERT INTO team_members (team_id, user_id, role, created_at) VALUES ($1, $2, $3, $4) ON CONFLICT (team_id, user_id) DO UPDATE SET role = excluded.role",
        )
        .bind(team_id)
        .bind(user_id)
        .bind(role)
        .bind(wire::time::now_micros())
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn membership(&self, team_id: &str, user_id: &str) -> Result<Option<String>> {
        let role: Option<String> = sqlx::query_scalar("SELECT role FROM team_members WHERE team_id = $1 AND user_id = $2")
            .bind(team_id)
            .bind(user_id)
            .fetch_optional(self.pool())
            .await?;
        Ok(role)
    }

    async fn teams_of_user(&self, user_id: &str) -> Result<Vec<(Team, String)>> {
        let rows = sqlx::query(
            "SELECT t.id, t.organization_id, t.name, t.created_at, m.role AS member_role FROM teams t JOIN team_members m ON m.team_id = t.id \
             WHERE m.user_id = $1 ORDER BY t.name, t.id",
        )
        .bind(user_id)
        .fetch_all(self.pool())
        .await?;
        Ok(rows.iter().map(|r| Ok((team_from(r)?, r.try_get("member_role")?))).collect::<sqlx::Result<Vec<_>>>()?)
    }

    async fn list_users(&self, organization_id: Option<&str>) -> Result<Vec<User>> {
        let rows = sqlx::query(&format!("SELECT {USER_COLS} FROM users WHERE $1::TEXT IS NULL OR organization_id = $1 ORDER BY created_at, id"))
            .bind(organization_id)
            .fetch_all(self.pool())
            .await?;
        Ok(rows.iter().map(user_from).collect::<sqlx::Result<Vec<_>>>()?)
    }

    async fn list_teams(&self, organization_id: Option<&str>) -> Result<Vec<(Team, i64)>> {
        let rows = sqlx::query(
            "SELECT t.id, t.organization_id, t.name, t.created_at, (SELECT COUNT(*) FROM team_members m WHERE m.team_id = t.id) AS members \
             FROM teams t WHERE $1::TEXT IS NULL OR t.organization_id = $1 ORDER BY t.name, t.id",
        )
        .bind(organization_id)
        .fetch_all(self.pool())
        .await?;
        Ok(rows.iter().map(|r| Ok((team_from(r)?, r.try_get::<i64, _>("members")?))).collect::<sqlx::Result<Vec<_>>>()?)
    }

    async fn count_users(&self) -> Result<i64> {
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM users").fetch_one(self.pool()).await?;
        Ok(n)
    }

    async fn ping(&self) -> Result<()> {
        let _: i32 = sqlx::query_scalar("SELECT 1").fetch_one(self.pool()).await?;
        // Readiness means writes work too (a full or read-only disk is not ready).
        let mut tx = self.begin().await?;
        sqlx::query("INSERT INTO _health (id, checked_at) VALUES (1, $1) ON CONFLICT (id) DO UPDATE SET checked_at = excluded.checked_at")
            .bind(wire::time::now_micros())
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn insert_api_key(&self, k: &ApiKey) -> Result<()> {
        let mut tx = self.begin().await?;
        sqlx::query(&format!("INSERT INTO api_keys ({KEY_COLS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)"))
            .bind(&k.id)
            .bind(&k.secret_hash)
            .bind(pg_text(&k.prefix))
            .bind(k.name.as_deref().map(pg_text))
            .bind(&k.user_id)
            .bind(&k.team_id)
            .bind(&k.created_by)
            .bind(k.created_at)
            .bind(k.revoked_at)
            .execute(&mut *tx)
            .await
            .map_err(|e| unique(e, "api key"))?;
        tx.commit().await?;
        Ok(())
    }

    async fn api_key_by_hash(&self, hash: &[u8]) -> Result<Option<ApiKey>> {
        let row = sqlx::query(&format!("SELECT {KEY_COLS} FROM api_keys WHERE secret_hash = $1")).bind(hash).fetch_optional(self.pool()).await?;
        Ok(row.as_ref().map(key_from).transpose()?)
    }

    async fn list_api_keys(&self, user_id: Option<&str>, team_id: Option<&str>) -> Result<Vec<ApiKey>> {
        let rows = sqlx::query(&format!(
            "SELECT {KEY_COLS} FROM api_keys WHERE ($1::text IS NULL OR user_id = $1) AND ($2::text IS NULL OR team_id = $2) ORDER BY created_at, id"
        ))
        .bind(user_id)
        .bind(team_id)
        .fetch_all(self.pool())
        .await?;
        Ok(rows.iter().map(key_from).collect::<sqlx::Result<Vec<_>>>()?)
    }

    async fn revoke_api_key(&self, key_id: &str, at: i64) -> Result<bool> {
        let n = self.write_one(sqlx::query("UPDATE api_keys SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL").bind(at).bind(key_id)).await?;
        Ok(n == 1)
    }

    async fn create_mcp_session(&self, s: &McpSessionRecord) -> Result<()> {
        let mut tx = self.begin().await?;
        sqlx::query("INSERT INTO mcp_sessions (id, key_id, protocol_version, created_at) VALUES ($1, $2, $3, $4)")
            .bind(&s.id)
            .bind(&s.key_id)
            .bind(pg_text(&s.protocol_version))
            .bind(s.created_at)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn mcp_session(&self, id: &str) -> Result<Option<McpSessionRecord>> {
        let row = sqlx::query("SELECT id, key_id, protocol_version, created_at FROM mcp_sessions WHERE id = $1 AND ended_at IS NULL")
            .bind(id)
            .fetch_optional(self.pool())
            .await?;
        Ok(row
            .map(|r| -> sqlx::Result<McpSessionRecord> {
                Ok(McpSessionRecord {
                    id: r.try_get("id")?,
                    key_id: r.try_get("key_id")?,
                    protocol_version: r.try_get("protocol_version")?,
                    created_at: r.try_get("created_at")?,
                })
            })
            .transpose()?)
    }

    async fn end_mcp_session(&self, id: &str, at: i64) -> Result<bool> {
        let mut tx = self.begin().await?;
        let n =
            sqlx::query("UPDATE mcp_sessions SET ended_at = $1 WHERE id = $2 AND ended_at IS NULL").bind(at).bind(id).execute(&mut *tx).await?.rows_affected();
        tx.commit().await?;
        Ok(n == 1)
    }
}
