use async_trait::async_trait;
use rusqlite::types::Value as SqlValue;
use rusqlite::{params, OptionalExtension, Row};

use super::SqliteStore;
use crate::{ArtifactFilter, ArtifactRecord, ArtifactSort, ArtifactStore, ArtifactVersionRecord, PageWindow, Result, SessionFileRecord, SortVal};

fn artifact_from(r: &Row) -> rusqlite::Result<ArtifactRecord> {
    Ok(ArtifactRecord {
        id: r.get("id")?,
        session_id: r.get("session_id")?,
        agent_id: r.get("agent_id")?,
        creator_user_id: r.get("creator_user_id")?,
        stored_filename: r.get("stored_filename")?,
        custom_name: r.get("custom_name")?,
        current_version_id: r.get("current_version_id")?,
        password_hash: r.get("password_hash")?,
        deleted_at: r.get("deleted_at")?,
        created_at: r.get("created_at")?,
    })
}

/// A version row; `p` is the column prefix (`""`, or `"v_"` in joins).
fn version_from(r: &Row, p: &str) -> rusqlite::Result<ArtifactVersionRecord> {
    let col = |c: &str| format!("{p}{c}");
    Ok(ArtifactVersionRecord {
        id: r.get(col("id").as_str())?,
        artifact_id: r.get(col("artifact_id").as_str())?,
        major_version: r.get(col("major_version").as_str())?,
        filename: r.get(col("filename").as_str())?,
        media_type: r.get(col("media_type").as_str())?,
        size: r.get(col("size").as_str())?,
        blob_key: r.get(col("blob_key").as_str())?,
        etag: r.get(col("etag").as_str())?,
        created_at: r.get(col("created_at").as_str())?,
    })
}

#[async_trait]
impl ArtifactStore for SqliteStore {
    async fn add_artifact_version(&self, new_artifact: &ArtifactRecord, v: &ArtifactVersionRecord) -> Result<(ArtifactRecord, ArtifactVersionRecord)> {
        let (new_artifact, v) = (new_artifact.clone(), v.clone());
        self.write(move |c| {
            // Read and write in one transaction: the next major version cannot be taken twice.
            let existing = c
                .prepare_cached("SELECT * FROM artifacts WHERE session_id = ? AND stored_filename = ? AND deleted_at IS NULL")?
                .query_row([&new_artifact.session_id, &new_artifact.stored_filename], artifact_from)
                .optional()?;
            let (mut art, major) = match existing {
                Some(a) => {
                    let max: i64 = c
                        .prepare_cached("SELECT COALESCE(MAX(major_version), 0) FROM artifact_versions WHERE artifact_id = ?")?
                        .query_row([&a.id], |r| r.get(0))?;
                    (a, max + 1)
                }
                None => {
                    c.prepare_cached(
                        "INSERT INTO artifacts (id, session_id, agent_id, creator_user_id, stored_filename, custom_name, current_version_id, password_hash, deleted_at, created_at) VALUES (?, ?, ?, ?, ?, NULL, ?, NULL, NULL, ?)",
                    )?
                    .execute(params![
                        new_artifact.id,
                        new_artifact.session_id,
                        new_artifact.agent_id,
                        new_artifact.creator_user_id,
                        new_artifact.stored_filename,
                        v.id,
                        new_artifact.created_at
                    ])?;
                    (new_artifact.clone(), 1)
                }
            };
            let mut v = v;
            v.artifact_id = art.id.clone();
            v.major_version = major;
            c.prepare_cached(
                "INSERT INTO artifact_versions (id, artifact_id, major_version, filename, media_type, size, blob_key, etag, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            )?
            .execute(params![v.id, v.artifact_id, v.major_version, v.filename, v.media_type, v.size, v.blob_key, v.etag, v.created_at])?;
            c.prepare_cached("UPDATE artifacts SET current_version_id = ?, listed_at = ?, listed_name = lower(COALESCE(custom_name, ?)) WHERE id = ?")?
                .execute(params![v.id, v.created_at, v.filename, art.id])?;
            art.current_version_id = v.id.clone();
            Ok((art, v))
        })
        .await
    }

    async fn artifact(&self, id: &str) -> Result<Option<ArtifactRecord>> {
        let id = id.to_string();
        self.read(move |c| Ok(c.prepare_cached("SELECT * FROM artifacts WHERE id = ?")?.query_row([id], artifact_from).optional()?)).await
    }

    async fn artifact_versions(&self, artifact_id: &str) -> Result<Vec<ArtifactVersionRecord>> {
        let id = artifact_id.to_string();
        self.read(move |c| {
            Ok(c.prepare_cached("SELECT * FROM artifact_versions WHERE artifact_id = ? ORDER BY major_version DESC")?
                .query_map([id], |r| version_from(r, ""))?
                .collect::<rusqlite::Result<Vec<_>>>()?)
        })
        .await
    }

    async fn list_artifacts(
        &self,
        filter: &ArtifactFilter,
        sort: ArtifactSort,
        page: &PageWindow,
    ) -> Result<Vec<(SortVal, ArtifactRecord, ArtifactVersionRecord)>> {
        let (filter, page) = (filter.clone(), page.clone());
        self.read_blocking(move |c| {
            let key = match sort {
                ArtifactSort::Created => "a.listed_at",
                ArtifactSort::Name => "a.listed_name",
            };
            let (u, o, t) = super::sessions::reader_params(&filter.reader);
            let mut args: Vec<SqlValue> = vec![u.into(), o.into(), t.into(), filter.agent_id.clone().into()];
            let mut sql = format!(
                "SELECT a.*, v.id AS v_id, v.artifact_id AS v_artifact_id, v.major_version AS v_major_version, v.filename AS v_filename, v.media_type AS v_media_type, \
                 v.size AS v_size, v.blob_key AS v_blob_key, v.etag AS v_etag, v.created_at AS v_created_at, {key} AS sort_key \
                 FROM artifacts a JOIN sessions s ON s.id = a.session_id JOIN artifact_versions v ON v.id = a.current_version_id \
                 WHERE a.agent_id = ?4 AND a.deleted_at IS NULL AND {}",
                super::sessions::READABLE
            );
            let mut arg = |v: SqlValue| {
                args.push(v);
                format!("?{}", args.len())
            };
            if let Some(sid) = &filter.session_id {
                sql.push_str(&format!(" AND a.session_id = {}", arg(sid.clone().into())));
            }
            if let Some(needle) = &filter.search {
                sql.push_str(&format!(" AND instr(a.listed_name, {}) > 0", arg(needle.clone().into())));
            }
            let (cmp, dir) = if page.desc { ("<", "DESC") } else { (">", "ASC") };
            if let Some((k, id)) = &page.after {
                let (k, id) = (arg(super::sessions::sort_arg(k)), arg(id.clone().into()));
                sql.push_str(&format!(" AND ({key}, a.id) {cmp} ({k}, {id})"));
            }
            let limit = arg((page.limit.min(i64::MAX as usize) as i64).into());
            sql.push_str(&format!(" ORDER BY {key} {dir}, a.id {dir} LIMIT {limit}"));
            let rows = c
                .prepare_cached(&sql)?
                .query_map(rusqlite::params_from_iter(args.iter()), |r| Ok((super::sessions::sort_val(r)?, artifact_from(r)?, version_from(r, "v_")?)))?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            Ok(rows)
        })
        .await
    }

    async fn delete_artifact(&self, id: &str, at: i64) -> Result<bool> {
        let id = id.to_string();
        self.write(move |c| Ok(c.prepare_cached("UPDATE artifacts SET deleted_at = ? WHERE id = ? AND deleted_at IS NULL")?.execute(params![at, id])? == 1))
            .await
    }

    async fn rename_artifact(&self, id: &str, name: Option<&str>) -> Result<()> {
        let (id, name) = (id.to_string(), name.map(str::to_string));
        self.write(move |c| {
            c.prepare_cached(
                "UPDATE artifacts SET custom_name = ?1, listed_name = lower(COALESCE(?1, (SELECT v.filename FROM artifact_versions v WHERE v.id = current_version_id))) WHERE id = ?2",
            )?
            .execute(params![name, id])?;
            Ok(())
        })
        .await
    }

    async fn set_artifact_password(&self, id: &str, hash: &str) -> Result<()> {
        let (id, hash) = (id.to_string(), hash.to_string());
        self.write(move |c| {
            c.prepare_cached("UPDATE artifacts SET password_hash = ? WHERE id = ?")?.execute([hash, id])?;
            Ok(())
        })
        .await
    }

    async fn upsert_flow_file(&self, namespace: &str, f: &SessionFileRecord) -> Result<Option<String>> {
        let (ns, f) = (namespace.to_string(), f.clone());
        self.write(move |c| {
            let old: Option<String> =
                c.prepare_cached("SELECT blob_key FROM flow_files WHERE namespace = ? AND file_name = ?")?.query_row([&ns, &f.file_name], |r| r.get(0)).optional()?;
            c.prepare_cached(
                "INSERT INTO flow_files (namespace, file_name, media_type, size, blob_key, created_at) VALUES (?, ?, ?, ?, ?, ?) \
                 ON CONFLICT(namespace, file_name) DO UPDATE SET media_type = excluded.media_type, size = excluded.size, blob_key = excluded.blob_key, created_at = excluded.created_at",
            )?
            .execute(params![ns, f.file_name, f.media_type, f.size, f.blob_key, f.created_at])?;
            Ok(old)
        })
        .await
    }

    async fn flow_file(&self, namespace: &str, file_name: &str) -> Result<Option<SessionFileRecord>> {
        let (ns, name) = (namespace.to_string(), file_name.to_string());
        self.read(move |c| {
            Ok(c.prepare_cached("SELECT * FROM flow_files WHERE namespace = ? AND file_name = ?")?
                .query_row([&ns, &name], |r| super::sessions::file_from(r, ns.clone()))
                .optional()?)
        })
        .await
    }
}
