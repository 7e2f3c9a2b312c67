use async_trait::async_trait;
use sqlx::sqlite::SqliteRow;
use sqlx::Row;

use super::{map_unique, SqliteStore};
use crate::{ApiKey, McpSessionRecord, Organization, Result, Team, TenancyStore, User};

fn user_from(r: &SqliteRow) -> User {
    User {
        id: r.get("id"),
        organization_id: r.get("organization_id"),
        email: r.get("email"),
        first_name: r.get("first_name"),
        last_name: r.get("last_name"),
        org_role: r.get("org_role"),
        created_at: r.get("created_at"),
    }
}

fn team_from(r: &SqliteRow) -> Team {
    Team { id: r.get("id"), organization_id: r.get("organization_id"), name: r.get("name"), created_at: r.get("created_at") }
}

fn key_from(r: &SqliteRow) -> ApiKey {
    ApiKey {
        id: r.get("id"),
        secret_hash: r.get("secret_hash"),
        prefix: r.get("prefix"),
        name: r.get("name"),
        user_id: r.get("user_id"),
        team_id: r.get("team_id"),
        created_by: r.get("created_by"),
        created_at: r.get("created_at"),
        revoked_at: r.get("revoked_at"),
    }
}

#[async_trait]
impl TenancyStore for SqliteStore {
    async fn ensure_organization(&self, id: &str, name: &str) -> Result<()> {
        let mut tx = self.write_tx().await?;
        sqlx::query("INSERT INTO organizations (id, name, created_at) VALUES (?, ?, ?) ON CONFLICT(id) DO NOTHING")
            .bind(id)
            .bind(name)
            .bind(wire::time::now_micros())
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn ensure_user(&self, u: &User) -> Result<bool> {
        let mut tx = self.write_tx().await?;
        let res = sqlx::query(
            "INSERT INTO users (id, organization_id, email, first_name, last_name, org_role, created_at) VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT(id) DO NOTHING",
        )
        .bind(&u.id)
        .bind(&u.organization_id)
        .bind(&u.email)
        .bind(&u.first_name)
        .bind(&u.last_name)
        .bind(&u.org_role)
        .bind(u.created_at)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(res.rows_affected() == 1)
    }

    async fn user(&self, id: &str) -> Result<Option<User>> {
        let row = sqlx::query("SELECT * FROM users WHERE id = ?").bind(id).fetch_optional(&self.reader).await?;
        Ok(row.as_ref().map(user_from))
    }

    async fn users_by_ids(&self, ids: &[String]) -> Result<Vec<User>> {
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            if let Some(u) = self.user(id).await? {
                out.push(u);
            }
        }
        Ok(out)
    }

    async fn user_by_email(&self, organization_id: &str, email: &str) -> Result<Option<User>> {
        let row = sqlx::query("SELECT * FROM users WHERE organization_id = ? AND lower(email) = lower(?) LIMIT 1")
            .bind(organization_id)
            .bind(email)
            .fetch_optional(&self.reader)
            .await?;
        Ok(row.as_ref().map(user_from))
    }

    async fn organizations_of_user(&self, user_id: &str) -> Result<Vec<Organization>> {
        let rows =
            sqlx::query("SELECT o.id, o.name, o.created_at FROM organizations o JOIN users u ON u.organization_id = o.id WHERE u.id = ? ORDER BY o.name, o.id")
                .bind(user_id)
                .fetch_all(&self.reader)
                .await?;
        Ok(rows.iter().map(|r| Organization { id: r.get("id"), name: r.get("name"), created_at: r.get("created_at") }).collect())
    }

    async fn organization(&self, id: &str) -> Result<Option<Organization>> {
        let row = sqlx::query("SELECT id, name, created_at FROM organizations WHERE id = ?").bind(id).fetch_optional(&self.reader).await?;
        Ok(row.map(|r| Organization { id: r.get("id"), name: r.get("name"), created_at: r.get("created_at") }))
    }

    async fn ensure_team(&self, t: &Team) -> Result<bool> {
        let mut tx = self.write_tx().await?;
        let res = sqlx::query("INSERT INTO teams (id, organization_id, name, created_at) VALUES (?, ?, ?, ?) ON CONFLICT(id) DO NOTHING")
            .bind(&t.id)
            .bind(&t.organization_id)
            .bind(&t.name)
            .bind(t.created_at)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(res.rows_affected() == 1)
    }

    async fn team(&self, id: &str) -> Result<Option<Team>> {
        let row = sqlx::query("SELECT * FROM teams WHERE id = ?").bind(id).fetch_optional(&self.reader).await?;
        Ok(row.as_ref().map(team_from))
    }

    async fn set_membership(&self, team_id: &str, user_id: &str, role: &str) -> Result<()> {
        let mut tx = self.write_tx().await?;
        sqlx::query(
            "INSERT INTO team_members (team_id, user_id, role, created_at) VALUES (?, ?, ?, ?) ON CONFLICT(team_id, user_id) DO UPDATE SET role = excluded.role",
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
        Ok(sqlx::query_scalar("SELECT role FROM team_members WHERE team_id = ? AND user_id = ?")
            .bind(team_id)
            .bind(user_id)
            .fetch_optional(&self.reader)
            .await?)
    }

    async fn teams_of_user(&self, user_id: &str) -> Result<Vec<(Team, String)>> {
        let rows =
            sqlx::query("SELECT t.*, m.role AS member_role FROM teams t JOIN team_members m ON m.team_id = t.id WHERE m.user_id = ? ORDER BY t.name, t.id")
                .bind(user_id)
                .fetch_all(&self.reader)
                .await?;
        Ok(rows.iter().map(|r| (team_from(r), r.get("member_role"))).collect())
    }

    async fn count_users(&self) -> Result<i64> {
        Ok(sqlx::query_scalar("SELECT COUNT(*) FROM users").fetch_one(&self.reader).await?)
    }

    async fn ping(&self) -> Result<()> {
        sqlx::query("SELECT 1").execute(&self.reader).await?;
        // Readiness means writes work too (a full or read-only disk is not ready).
        let mut tx = self.write_tx().await?;
        sqlx::query("INSERT INTO _health (id, checked_at) VALUES (1, ?) ON CONFLICT(id) DO UPDATE SET checked_at = excluded.checked_at")
            .bind(wire_now_micros())
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn insert_api_key(&self, k: &ApiKey) -> Result<()> {
        let mut tx = self.write_tx().await?;
        sqlx::query(
            "INSERT INTO api_keys (id, secret_hash, prefix, name, user_id, team_id, created_by, created_at, revoked_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(&k.id)
        .bind(&k.secret_hash)
        .bind(&k.prefix)
        .bind(&k.name)
        .bind(&k.user_id)
        .bind(&k.team_id)
        .bind(&k.created_by)
        .bind(k.created_at)
        .bind(k.revoked_at)
        .execute(&mut *tx)
        .await
        .map_err(|e| map_unique(e, "api key"))?;
        tx.commit().await?;
        Ok(())
    }

    async fn api_key_by_hash(&self, hash: &[u8]) -> Result<Option<ApiKey>> {
        let row = sqlx::query("SELECT * FROM api_keys WHERE secret_hash = ?").bind(hash).fetch_optional(&self.reader).await?;
        Ok(row.as_ref().map(key_from))
    }

    async fn list_api_keys(&self, user_id: Option<&str>, team_id: Option<&str>) -> Result<Vec<ApiKey>> {
        let rows = sqlx::query("SELECT * FROM api_keys WHERE (?1 IS NULL OR user_id = ?1) AND (?2 IS NULL OR team_id = ?2) ORDER BY created_at, id")
            .bind(user_id)
            .bind(team_id)
            .fetch_all(&self.reader)
            .await?;
        Ok(rows.iter().map(key_from).collect())
    }

    async fn revoke_api_key(&self, key_id: &str, at: i64) -> Result<bool> {
        let mut tx = self.write_tx().await?;
        let res = sqlx::query("UPDATE api_keys SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL").bind(at).bind(key_id).execute(&mut *tx).await?;
        tx.commit().await?;
        Ok(res.rows_affected() == 1)
    }

    async fn create_mcp_session(&self, s: &McpSessionRecord) -> Result<()> {
        let mut tx = self.write_tx().await?;
        sqlx::query("INSERT INTO mcp_sessions (id, key_id, protocol_version, created_at) VALUES (?, ?, ?, ?)")
            .bind(&s.id)
            .bind(&s.key_id)
            .bind(&s.protocol_version)
            .bind(s.created_at)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn mcp_session(&self, id: &str) -> Result<Option<McpSessionRecord>> {
        let row: Option<(String, String, String, i64)> =
            sqlx::query_as("SELECT id, key_id, protocol_version, created_at FROM mcp_sessions WHERE id = ? AND ended_at IS NULL")
                .bind(id)
                .fetch_optional(&self.reader)
                .await?;
        Ok(row.map(|(id, key_id, protocol_version, created_at)| McpSessionRecord { id, key_id, protocol_version, created_at }))
    }

    async fn end_mcp_session(&self, id: &str, at: i64) -> Result<bool> {
        let mut tx = self.write_tx().await?;
        let res = sqlx::query("UPDATE mcp_sessions SET ended_at = ? WHERE id = ? AND ended_at IS NULL").bind(at).bind(id).execute(&mut *tx).await?;
        tx.commit().await?;
        Ok(res.rows_affected() == 1)
    }
}

fn wire_now_micros() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_micros() as i64).unwrap_or(0)
}
