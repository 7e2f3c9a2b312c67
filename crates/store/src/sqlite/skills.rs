use async_trait::async_trait;
use rusqlite::{params, Connection, OptionalExtension, Row};

use super::SqliteStore;
use crate::{Result, SkillFileRecord, SkillFilter, SkillGrant, SkillRecord, SkillScope, SkillStore, SkillVersionRecord};

fn skill_from(r: &Row) -> rusqlite::Result<SkillRecord> {
    Ok(SkillRecord {
        id: r.get("id")?,
        organization_id: r.get("organization_id")?,
        team_id: r.get("team_id")?,
        owner_user_id: r.get("owner_user_id")?,
        creator_user_id: r.get("creator_user_id")?,
        name: r.get("name")?,
        description: r.get("description")?,
        current_version_id: r.get("current_version_id")?,
        major_version: r.get("major_version")?,
        deleted_at: r.get("deleted_at")?,
        created_at: r.get("created_at")?,
        updated_at: r.get("updated_at")?,
    })
}

/// A version row; `p` is the column prefix (`""`, or `"v_"` in joins).
fn version_from(r: &Row, p: &str) -> rusqlite::Result<SkillVersionRecord> {
    let col = |c: &str| format!("{p}{c}");
    Ok(SkillVersionRecord {
        id: r.get(col("id").as_str())?,
        skill_id: r.get(col("skill_id").as_str())?,
        major_version: r.get(col("major_version").as_str())?,
        name: r.get(col("name").as_str())?,
        description: r.get(col("description").as_str())?,
        instructions: r.get(col("instructions").as_str())?,
        content_hash: r.get(col("content_hash").as_str())?,
        size: r.get(col("size").as_str())?,
        file_count: r.get(col("file_count").as_str())?,
        creator_user_id: r.get(col("creator_user_id").as_str())?,
        created_at: r.get(col("created_at").as_str())?,
    })
}

fn file_from(r: &Row) -> rusqlite::Result<SkillFileRecord> {
    Ok(SkillFileRecord {
        version_id: r.get("version_id")?,
        path: r.get("path")?,
        media_type: r.get("media_type")?,
        size: r.get("size")?,
        blob_key: r.get("blob_key")?,
        sha256: r.get("sha256")?,
    })
}

fn insert_version(c: &Connection, v: &SkillVersionRecord, files: &[SkillFileRecord]) -> Result<()> {
    c.prepare_cached(
        "INSERT INTO skill_versions (id, skill_id, major_version, name, description, instructions, content_hash, size, file_count, creator_user_id, created_at) \
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
    )?
    .execute(params![v.id, v.skill_id, v.major_version, v.name, v.description, v.instructions, v.content_hash, v.size, v.file_count, v.creator_user_id, v.created_at])?;
    let mut stmt = c.prepare_cached("INSERT INTO skill_files (version_id, path, media_type, size, blob_key, sha256) VALUES (?, ?, ?, ?, ?, ?)")?;
    for f in files {
        stmt.execute(params![v.id, f.path, f.media_type, f.size, f.blob_key, f.sha256])?;
    }
    Ok(())
}

const VERSION_COLS: &str = "v.id AS v_id, v.skill_id AS v_skill_id, v.major_version AS v_major_version, v.name AS v_name, v.description AS v_description, \
     v.instructions AS v_instructions, v.content_hash AS v_content_hash, v.size AS v_size, v.file_count AS v_file_count, \
     v.creator_user_id AS v_creator_user_id, v.created_at AS v_created_at";

/// Shared with the reader: ?1 organization, ?2 user, ?3 JSON array of team ids.
const GRANTED: &str = "EXISTS (SELECT 1 FROM skill_grants g WHERE g.skill_id = s.id AND ((g.kind = 'person' AND g.principal = ?2) \
     OR (g.kind = 'organization' AND g.principal = ?1) OR (g.kind = 'team' AND g.principal IN (SELECT value FROM json_each(?3)))))";

#[async_trait]
impl SkillStore for SqliteStore {
    async fn create_skill(&self, skill: &SkillRecord, version: &SkillVersionRecord, files: &[SkillFileRecord]) -> Result<(SkillRecord, SkillVersionRecord)> {
        let (mut s, mut v, files) = (skill.clone(), version.clone(), files.to_vec());
        self.write(move |c| {
            v.skill_id = s.id.clone();
            v.major_version = 1;
            s.current_version_id = v.id.clone();
            s.major_version = 1;
            s.name = v.name.clone();
            s.description = v.description.clone();
            c.prepare_cached(
                "INSERT INTO skills (id, organization_id, team_id, owner_user_id, creator_user_id, name, description, current_version_id, major_version, deleted_at, created_at, updated_at) \
                 VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, NULL, ?, ?)",
            )?
            .execute(params![
                s.id,
                s.organization_id,
                s.team_id,
                s.owner_user_id,
                s.creator_user_id,
                s.name,
                s.description,
                s.current_version_id,
                s.major_version,
                s.created_at,
                s.updated_at
            ])
            .map_err(|e| super::unique(e, "skill"))?;
            insert_version(c, &v, &files)?;
            Ok((s, v))
        })
        .await
    }

    async fn add_skill_version(
        &self,
        skill_id: &str,
        version: &SkillVersionRecord,
        files: &[SkillFileRecord],
    ) -> Result<Option<(SkillRecord, SkillVersionRecord)>> {
        let (id, mut v, files) = (skill_id.to_string(), version.clone(), files.to_vec());
        self.write(move |c| {
            // One writer: reading the current number and writing the next cannot interleave.
            let Some(mut s) = c.prepare_cached("SELECT * FROM skills WHERE id = ? AND deleted_at IS NULL")?.query_row([&id], skill_from).optional()? else {
                return Ok(None);
            };
            let max: i64 = c.prepare_cached("SELECT COALESCE(MAX(major_version), 0) FROM skill_versions WHERE skill_id = ?")?.query_row([&id], |r| r.get(0))?;
            v.skill_id = id.clone();
            v.major_version = max + 1;
            insert_version(c, &v, &files)?;
            c.prepare_cached("UPDATE skills SET current_version_id = ?, major_version = ?, name = ?, description = ?, updated_at = ? WHERE id = ?")?
                .execute(params![v.id, v.major_version, v.name, v.description, v.created_at, id])?;
            s.current_version_id = v.id.clone();
            s.major_version = v.major_version;
            s.name = v.name.clone();
            s.description = v.description.clone();
            s.updated_at = v.created_at;
            Ok(Some((s, v)))
        })
        .await
    }

    async fn skill(&self, id: &str) -> Result<Option<SkillRecord>> {
        let id = id.to_string();
        self.read(move |c| Ok(c.prepare_cached("SELECT * FROM skills WHERE id = ?")?.query_row([id], skill_from).optional()?)).await
    }

    async fn skill_version(&self, skill_id: &str, version_id: &str) -> Result<Option<SkillVersionRecord>> {
        let (sid, vid) = (skill_id.to_string(), version_id.to_string());
        self.read(move |c| {
            Ok(c.prepare_cached("SELECT * FROM skill_versions WHERE skill_id = ? AND id = ?")?.query_row([sid, vid], |r| version_from(r, "")).optional()?)
        })
        .await
    }

    async fn skill_files(&self, version_id: &str) -> Result<Vec<SkillFileRecord>> {
        let vid = version_id.to_string();
        self.read(move |c| {
            Ok(c.prepare_cached("SELECT * FROM skill_files WHERE version_id = ? ORDER BY path")?
                .query_map([vid], file_from)?
                .collect::<rusqlite::Result<Vec<_>>>()?)
        })
        .await
    }

    async fn list_skills(&self, filter: &SkillFilter) -> Result<Vec<(SkillRecord, SkillVersionRecord)>> {
        let f = filter.clone();
        self.read_blocking(move |c| {
            let teams = serde_json::to_string(&f.reader.team_ids).unwrap_or_else(|_| "[]".into());
            let (scope, team) = match &f.scope {
                SkillScope::Personal => (format!("((s.team_id IS NULL AND s.owner_user_id = ?2) OR {GRANTED})"), None),
                SkillScope::Team(t) => ("s.team_id = ?4".to_string(), Some(t.clone())),
                SkillScope::Readable => {
                    (format!("((s.team_id IS NULL AND s.owner_user_id = ?2) OR s.team_id IN (SELECT value FROM json_each(?3)) OR {GRANTED})"), None)
                }
            };
            let ids = f.ids.as_ref().map(|ids| serde_json::to_string(ids).unwrap_or_else(|_| "[]".into()));
            let sql = format!(
                "SELECT s.*, {VERSION_COLS} FROM skills s JOIN skill_versions v ON v.id = s.current_version_id \
                 WHERE s.organization_id = ?1 AND s.deleted_at IS NULL AND {scope} \
                 AND (?5 IS NULL OR s.id IN (SELECT value FROM json_each(?5))) AND (?6 IS NULL OR s.creator_user_id = ?6) \
                 ORDER BY s.updated_at DESC, s.id DESC"
            );
            let rows = c
                .prepare_cached(&sql)?
                .query_map(params![f.organization_id, f.reader.user_id, teams, team, ids, f.creator_user_id], |r| Ok((skill_from(r)?, version_from(r, "v_")?)))?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            Ok(rows)
        })
        .await
    }

    async fn delete_skill(&self, id: &str, at: i64) -> Result<bool> {
        let id = id.to_string();
        self.write(move |c| Ok(c.prepare_cached("UPDATE skills SET deleted_at = ? WHERE id = ? AND deleted_at IS NULL")?.execute(params![at, id])? == 1)).await
    }

    async fn skill_grants(&self, skill_id: &str) -> Result<Vec<SkillGrant>> {
        let id = skill_id.to_string();
        self.read(move |c| {
            Ok(c.prepare_cached("SELECT kind, principal, role FROM skill_grants WHERE skill_id = ? ORDER BY created_at, kind, principal")?
                .query_map([id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
                .collect::<rusqlite::Result<Vec<_>>>()?)
        })
        .await
    }

    async fn change_skill_grants(&self, skill_id: &str, upsert: &[SkillGrant], remove: &[(String, String)]) -> Result<()> {
        let (id, upsert, remove) = (skill_id.to_string(), upsert.to_vec(), remove.to_vec());
        let now = wire::time::now_micros();
        self.write(move |c| {
            for (kind, principal) in &remove {
                c.prepare_cached("DELETE FROM skill_grants WHERE skill_id = ? AND kind = ? AND principal = ?")?.execute(params![id, kind, principal])?;
            }
            for (kind, principal, role) in &upsert {
                c.prepare_cached(
                    "INSERT INTO skill_grants (skill_id, kind, principal, role, created_at) VALUES (?, ?, ?, ?, ?) \
                     ON CONFLICT(skill_id, kind, principal) DO UPDATE SET role = excluded.role",
                )?
                .execute(params![id, kind, principal, role, now])?;
            }
            Ok(())
        })
        .await
    }
}
