//! Skills, their versions, files and grants (ported from `sqlite/skills.rs`).

use async_trait::async_trait;
use sqlx::postgres::PgRow;
use sqlx::{Postgres, Row, Transaction};

use super::{pg_text, PgStore};
use crate::{Result, SkillFileRecord, SkillFilter, SkillGrant, SkillRecord, SkillScope, SkillStore, SkillVersionRecord};

fn skill_from(r: &PgRow) -> Result<SkillRecord> {
    Ok(SkillRecord {
        id: r.try_get("id")?,
        organization_id: r.try_get("organization_id")?,
        team_id: r.try_get("team_id")?,
        owner_user_id: r.try_get("owner_user_id")?,
        creator_user_id: r.try_get("creator_user_id")?,
        name: r.try_get("name")?,
        description: r.try_get("description")?,
        current_version_id: r.try_get("current_version_id")?,
        major_version: r.try_get("major_version")?,
        deleted_at: r.try_get("deleted_at")?,
        created_at: r.try_get("created_at")?,
        updated_at: r.try_get("updated_at")?,
    })
}

/// A version row; `p` is the column prefix (`""`, or `"v_"` in joins).
fn version_from(r: &PgRow, p: &str) -> Result<SkillVersionRecord> {
    let col = |c: &str| format!("{p}{c}");
    Ok(SkillVersionRecord {
        id: r.try_get(col("id").as_str())?,
        skill_id: r.try_get(col("skill_id").as_str())?,
        major_version: r.try_get(col("major_version").as_str())?,
        name: r.try_get(col("name").as_str())?,
        description: r.try_get(col("description").as_str())?,
        instructions: r.try_get(col("instructions").as_str())?,
        content_hash: r.try_get(col("content_hash").as_str())?,
        size: r.try_get(col("size").as_str())?,
        file_count: r.try_get(col("file_count").as_str())?,
        creator_user_id: r.try_get(col("creator_user_id").as_str())?,
        created_at: r.try_get(col("created_at").as_str())?,
    })
}

fn file_from(r: &PgRow) -> Result<SkillFileRecord> {
    Ok(SkillFileRecord {
        version_id: r.try_get("version_id")?,
        path: r.try_get("path")?,
        media_type: r.try_get("media_type")?,
        size: r.try_get("size")?,
        blob_key: r.try_get("blob_key")?,
        sha256: r.try_get("sha256")?,
    })
}

async fn insert_version(tx: &mut Transaction<'static, Postgres>, v: &SkillVersionRecord, files: &[SkillFileRecord]) -> Result<()> {
    sqlx::query(
        "INSERT INTO skill_versions (id, skill_id, major_version, name, description, instructions, content_hash, size, file_count, creator_user_id, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
    )
    .bind(&v.id)
    .bind(&v.skill_id)
    .bind(v.major_version)
    .bind(pg_text(&v.name))
    .bind(pg_text(&v.description))
    .bind(pg_text(&v.instructions))
    .bind(&v.content_hash)
    .bind(v.size)
    .bind(v.file_count)
    .bind(&v.creator_user_id)
    .bind(v.created_at)
    .execute(&mut **tx)
    .await?;
    for f in files {
        sqlx::query("INSERT INTO skill_files (version_id, path, media_type, size, blob_key, sha256) VALUES ($1, $2, $3, $4, $5, $6)")
            .bind(&v.id)
            .bind(pg_text(&f.path))
            .bind(pg_text(&f.media_type))
            .bind(f.size)
            .bind(&f.blob_key)
            .bind(&f.sha256)
            .execute(&mut **tx)
            .await?;
    }
    Ok(())
}

const VERSION_COLS: &str = "v.id AS v_id, v.skill_id AS v_skill_id, v.major_version AS v_major_version, v.name AS v_name, v.description AS v_description, \
     v.instructions AS v_instructions, v.content_hash AS v_content_hash, v.size AS v_size, v.file_count AS v_file_count, \
     v.creator_user_id AS v_creator_user_id, v.created_at AS v_created_at";

/// Shared with the reader: $1 organization, $2 user, $3 team ids.
const GRANTED: &str = "EXISTS (SELECT 1 FROM skill_grants g WHERE g.skill_id = s.id AND ((g.kind = 'person' AND g.principal = $2) \
     OR (g.kind = 'organization' AND g.principal = $1) OR (g.kind = 'team' AND g.principal = ANY($3))))";

#[async_trait]
impl SkillStore for PgStore {
    async fn create_skill(&self, skill: &SkillRecord, version: &SkillVersionRecord, files: &[SkillFileRecord]) -> Result<(SkillRecord, SkillVersionRecord)> {
        let (mut s, mut v) = (skill.clone(), version.clone());
        v.skill_id = s.id.clone();
        v.major_version = 1;
        s.current_version_id = v.id.clone();
        s.major_version = 1;
        s.name = v.name.clone();
        s.description = v.description.clone();
        let mut tx = self.begin().await?;
        sqlx::query(
            "INSERT INTO skills (id, organization_id, team_id, owner_user_id, creator_user_id, name, description, current_version_id, major_version, deleted_at, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, NULL, $10, $11)",
        )
        .bind(&s.id)
        .bind(&s.organization_id)
        .bind(&s.team_id)
        .bind(&s.owner_user_id)
        .bind(&s.creator_user_id)
        .bind(pg_text(&s.name))
        .bind(pg_text(&s.description))
        .bind(&s.current_version_id)
        .bind(s.major_version)
        .bind(s.created_at)
        .bind(s.updated_at)
        .execute(&mut *tx)
        .await?;
        insert_version(&mut tx, &v, files).await?;
        tx.commit().await?;
        Ok((s, v))
    }

    async fn add_skill_version(
        &self,
        skill_id: &str,
        version: &SkillVersionRecord,
        files: &[SkillFileRecord],
    ) -> Result<Option<(SkillRecord, SkillVersionRecord)>> {
        let mut tx = self.begin().await?;
        // The skill row is locked before numbering: concurrent updates take turns.
        let Some(row) = sqlx::query("SELECT * FROM skills WHERE id = $1 AND deleted_at IS NULL FOR UPDATE").bind(skill_id).fetch_optional(&mut *tx).await?
        else {
            return Ok(None);
        };
        let mut s = skill_from(&row)?;
        let next: i64 =
            sqlx::query_scalar("SELECT COALESCE(MAX(major_version), 0) + 1 FROM skill_versions WHERE skill_id = $1").bind(skill_id).fetch_one(&mut *tx).await?;
        let mut v = version.clone();
        v.skill_id = skill_id.to_string();
        v.major_version = next;
        insert_version(&mut tx, &v, files).await?;
        sqlx::query("UPDATE skills SET current_version_id = $1, major_version = $2, name = $3, description = $4, updated_at = $5 WHERE id = $6")
            .bind(&v.id)
            .bind(v.major_version)
            .bind(pg_text(&v.name))
            .bind(pg_text(&v.description))
            .bind(v.created_at)
            .bind(skill_id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        s.current_version_id = v.id.clone();
        s.major_version = v.major_version;
        s.name = v.name.clone();
        s.description = v.description.clone();
        s.updated_at = v.created_at;
        Ok(Some((s, v)))
    }

    async fn skill(&self, id: &str) -> Result<Option<SkillRecord>> {
        sqlx::query("SELECT * FROM skills WHERE id = $1").bind(id).fetch_optional(self.pool()).await?.as_ref().map(skill_from).transpose()
    }

    async fn skill_version(&self, skill_id: &str, version_id: &str) -> Result<Option<SkillVersionRecord>> {
        sqlx::query("SELECT * FROM skill_versions WHERE skill_id = $1 AND id = $2")
            .bind(skill_id)
            .bind(version_id)
            .fetch_optional(self.pool())
            .await?
            .as_ref()
            .map(|r| version_from(r, ""))
            .transpose()
    }

    async fn skill_files(&self, version_id: &str) -> Result<Vec<SkillFileRecord>> {
        sqlx::query("SELECT * FROM skill_files WHERE version_id = $1 ORDER BY path COLLATE \"C\"")
            .bind(version_id)
            .fetch_all(self.pool())
            .await?
            .iter()
            .map(file_from)
            .collect()
    }

    async fn list_skills(&self, f: &SkillFilter) -> Result<Vec<(SkillRecord, SkillVersionRecord)>> {
        let scope = match &f.scope {
            SkillScope::Personal => format!("((s.team_id IS NULL AND s.owner_user_id = $2) OR {GRANTED})"),
            SkillScope::Team(_) => "s.team_id = $4".to_string(),
            SkillScope::Readable => format!("((s.team_id IS NULL AND s.owner_user_id = $2) OR s.team_id = ANY($3) OR {GRANTED})"),
        };
        let team = match &f.scope {
            SkillScope::Team(t) => Some(t.clone()),
            _ => None,
        };
        let sql = format!(
            "SELECT s.*, {VERSION_COLS} FROM skills s JOIN skill_versions v ON v.id = s.current_version_id \
             WHERE s.organization_id = $1 AND s.deleted_at IS NULL AND {scope} \
             AND ($5::text[] IS NULL OR s.id = ANY($5)) AND ($6::text IS NULL OR s.creator_user_id = $6) AND ($4::text IS NULL OR TRUE) \
             ORDER BY s.updated_at DESC, s.id DESC"
        );
        sqlx::query(&sql)
            .bind(&f.organization_id)
            .bind(&f.reader.user_id)
            .bind(&f.reader.team_ids)
            .bind(team)
            .bind(f.ids.clone())
            .bind(f.creator_user_id.clone())
            .fetch_all(self.pool())
            .await?
            .iter()
            .map(|r| Ok((skill_from(r)?, version_from(r, "v_")?)))
            .collect()
    }

    async fn delete_skill(&self, id: &str, at: i64) -> Result<bool> {
        let mut tx = self.begin().await?;
        let n =
            sqlx::query("UPDATE skills SET deleted_at = $1 WHERE id = $2 AND deleted_at IS NULL").bind(at).bind(id).execute(&mut *tx).await?.rows_affected();
        tx.commit().await?;
        Ok(n == 1)
    }

    async fn skill_grants(&self, skill_id: &str) -> Result<Vec<SkillGrant>> {
        let rows = sqlx::query("SELECT kind, principal, role FROM skill_grants WHERE skill_id = $1 ORDER BY created_at, kind, principal")
            .bind(skill_id)
            .fetch_all(self.pool())
            .await?;
        rows.iter().map(|r| Ok((r.try_get("kind")?, r.try_get("principal")?, r.try_get("role")?))).collect()
    }

    async fn change_skill_grants(&self, skill_id: &str, upsert: &[SkillGrant], remove: &[(String, String)]) -> Result<()> {
        let now = wire::time::now_micros();
        let mut tx = self.begin().await?;
        for (kind, principal) in remove {
            sqlx::query("DELETE FROM skill_grants WHERE skill_id = $1 AND kind = $2 AND principal = $3")
                .bind(skill_id)
                .bind(kind)
                .bind(principal)
                .execute(&mut *tx)
                .await?;
        }
        for (kind, principal, role) in upsert {
            sqlx::query(
                "INSERT INTO skill_grants (skill_id, kind, principal, role, created_at) VALUES ($1, $2, $3, $4, $5) \
                 ON CONFLICT (skill_id, kind, principal) DO UPDATE SET role = excluded.role",
            )
            .bind(skill_id)
            .bind(kind)
            .bind(principal)
            .bind(role)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }
}
