//! Artifacts and their versions; legacy flow files (ported from `sqlite/artifacts.rs`).

use async_trait::async_trait;
use sqlx::postgres::PgRow;
use sqlx::Row;

use super::sessions::{after_cursor, file_from, sort_val, Arg, Args, READABLE};
use super::{pg_text, PgStore};
use crate::{ArtifactFilter, ArtifactRecord, ArtifactSort, ArtifactStore, ArtifactVersionRecord, PageWindow, Result, SessionFileRecord, SortVal};

fn artifact_from(r: &PgRow) -> Result<ArtifactRecord> {
    Ok(ArtifactRecord {
        id: r.try_get("id")?,
        session_id: r.try_get("session_id")?,
        agent_id: r.try_get("agent_id")?,
        creator_user_id: r.try_get("creator_user_id")?,
        stored_filename: r.try_get("stored_filename")?,
        custom_name: r.try_get("custom_name")?,
        current_version_id: r.try_get("current_version_id")?,
        password_hash: r.try_get("password_hash")?,
        deleted_at: r.try_get("deleted_at")?,
        created_at: r.try_get("created_at")?,
    })
}

/// A version row; `p` is the column prefix (`""`, or `"v_"` in joins).
fn version_from(r: &PgRow, p: &str) -> Result<ArtifactVersionRecord> {
    let col = |c: &str| format!("{p}{c}");
    Ok(ArtifactVersionRecord {
        id: r.try_get(col("id").as_str())?,
        artifact_id: r.try_get(col("artifact_id").as_str())?,
        major_version: r.try_get(col("major_version").as_str())?,
        filename: r.try_get(col("filename").as_str())?,
        media_type: r.try_get(col("media_type").as_str())?,
        size: r.try_get(col("size").as_str())?,
        blob_key: r.try_get(col("blob_key").as_str())?,
        etag: r.try_get(col("etag").as_str())?,
        created_at: r.try_get(col("created_at").as_str())?,
    })
}

#[async_trait]
impl ArtifactStore for PgStore {
    async fn add_artifact_version(&self, new_artifact: &ArtifactRecord, v: &ArtifactVersionRecord) -> Result<(ArtifactRecord, ArtifactVersionRecord)> {
        let mut tx = self.begin().await?;
        // The live artifact of that name, created if missing, and locked either way: the
        // next major version cannot be taken twice.
        let row = sqlx::query(
            "INSERT INTO artifacts (id, session_id, agent_id, creator_user_id, stored_filename, custom_name, current_version_id, password_hash, deleted_at, created_at) \
             VALUES ($1, $2, $3, $4, $5, NULL, $6, NULL, NULL, $7) \
             ON CONFLICT (session_id, stored_filename) WHERE deleted_at IS NULL DO UPDATE SET current_version_id = artifacts.current_version_id \
             RETURNING *",
        )
        .bind(&new_artifact.id)
        .bind(&new_artifact.session_id)
        .bind(&new_artifact.agent_id)
        .bind(&new_artifact.creator_user_id)
        .bind(pg_text(&new_artifact.stored_filename))
        .bind(&v.id)
        .bind(new_artifact.created_at)
        .fetch_one(&mut *tx)
        .await?;
        let existing = artifact_from(&row)?;
        let mut art = if existing.id == new_artifact.id { new_artifact.clone() } else { existing };
        let major: i64 = sqlx::query_scalar("SELECT COALESCE(MAX(major_version), 0) + 1 FROM artifact_versions WHERE artifact_id = $1")
            .bind(&art.id)
            .fetch_one(&mut *tx)
            .await?;
        let mut v = v.clone();
        v.artifact_id = art.id.clone();
        v.major_version = major;
        sqlx::query(
            "INSERT INTO artifact_versions (id, artifact_id, major_version, filename, media_type, size, blob_key, etag, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind(&v.id)
        .bind(&v.artifact_id)
        .bind(v.major_version)
        .bind(pg_text(&v.filename))
        .bind(pg_text(&v.media_type))
        .bind(v.size)
        .bind(pg_text(&v.blob_key))
        .bind(pg_text(&v.etag))
        .bind(v.created_at)
        .execute(&mut *tx)
        .await?;
        sqlx::query("UPDATE artifacts SET current_version_id = $1, listed_at = $2, listed_name = lower(COALESCE(custom_name, $3) COLLATE \"C\") WHERE id = $4")
            .bind(&v.id)
            .bind(v.created_at)
            .bind(pg_text(&v.filename))
            .bind(&art.id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        art.current_version_id = v.id.clone();
        Ok((art, v))
    }

    async fn artifact(&self, id: &str) -> Result<Option<ArtifactRecord>> {
        sqlx::query("SELECT * FROM artifacts WHERE id = $1").bind(id).fetch_optional(self.pool()).await?.as_ref().map(artifact_from).transpose()
    }

    async fn artifact_versions(&self, artifact_id: &str) -> Result<Vec<ArtifactVersionRecord>> {
        sqlx::query("SELECT * FROM artifact_versions WHERE artifact_id = $1 ORDER BY major_version DESC")
            .bind(artifact_id)
            .fetch_all(self.pool())
            .await?
            .iter()
            .map(|r| version_from(r, ""))
            .collect()
    }

    async fn list_artifacts(
        &self,
        filter: &ArtifactFilter,
        sort: ArtifactSort,
        page: &PageWindow,
    ) -> Result<Vec<(SortVal, ArtifactRecord, ArtifactVersionRecord)>> {
        let (key, int_key) = match sort {
            ArtifactSort::Created => ("a.listed_at", true),
            ArtifactSort::Name => ("a.listed_name", false),
        };
        let mut args = Args::reader(&filter.reader);
        args.push(Arg::Text(filter.agent_id.clone()));
        let mut sql = format!(
            "SELECT a.*, v.id AS v_id, v.artifact_id AS v_artifact_id, v.major_version AS v_major_version, v.filename AS v_filename, v.media_type AS v_media_type, \
             v.size AS v_size, v.blob_key AS v_blob_key, v.etag AS v_etag, v.created_at AS v_created_at, {key} AS sort_key \
             FROM artifacts a JOIN sessions s ON s.id = a.session_id JOIN artifact_versions v ON v.id = a.current_version_id \
             WHERE a.agent_id = $4 AND a.deleted_at IS NULL AND {READABLE}"
        );
        if let Some(sid) = &filter.session_id {
            sql.push_str(&format!(" AND a.session_id = {}", args.push(Arg::Text(sid.clone()))));
        }
        if let Some(needle) = &filter.search {
            sql.push_str(&format!(" AND strpos(a.listed_name, {}) > 0", args.push(Arg::Text(needle.clone()))));
        }
        let dir = if page.desc { "DESC" } else { "ASC" };
        if let Some(cursor) = &page.after {
            sql.push_str(&format!(" AND {}", after_cursor(&mut args, key, int_key, "a.id", page.desc, cursor)));
        }
        let limit = args.push(Arg::Int(page.limit.min(i64::MAX as usize) as i64));
        sql.push_str(&format!(" ORDER BY {key} {dir}, a.id {dir} LIMIT {limit}"));
        let rows = args.bind(sqlx::query(&sql)).fetch_all(self.pool()).await?;
        rows.iter().map(|r| Ok((sort_val(r, int_key)?, artifact_from(r)?, version_from(r, "v_")?))).collect()
    }

    async fn delete_artifact(&self, id: &str, at: i64) -> Result<bool> {
        let mut tx = self.begin().await?;
        let n =
            sqlx::query("UPDATE artifacts SET deleted_at = $1 WHERE id = $2 AND deleted_at IS NULL").bind(at).bind(id).execute(&mut *tx).await?.rows_affected();
        tx.commit().await?;
        Ok(n == 1)
    }

    async fn rename_artifact(&self, id: &str, name: Option<&str>) -> Result<()> {
        let mut tx = self.begin().await?;
        // Lock the row first, so the version read below is the current one.
        sqlx::query("SELECT 1 FROM artifacts WHERE id = $1 FOR NO KEY UPDATE").bind(id).fetch_optional(&mut *tx).await?;
        sqlx::query(
            "UPDATE artifacts SET custom_name = $1, \
             listed_name = lower(COALESCE($1, (SELECT v.filename FROM artifact_versions v WHERE v.id = current_version_id)) COLLATE \"C\") WHERE id = $2",
        )
        .bind(name.map(pg_text))
        .bind(id)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn set_artifact_password(&self, id: &str, hash: &str) -> Result<()> {
        let mut tx = self.begin().await?;
        sqlx::query("UPDATE artifacts SET password_hash = $1 WHERE id = $2").bind(pg_text(hash)).bind(id).execute(&mut *tx).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn upsert_flow_file(&self, namespace: &str, f: &SessionFileRecord) -> Result<Option<String>> {
        let mut tx = self.begin().await?;
        // Each replaced blob key is reported to exactly one writer: read it under the row
        // lock; when there is no row, insert, and if a concurrent writer inserted first,
        // read again (its row is committed by then).
        loop {
            let old: Option<String> = sqlx::query_scalar("SELECT blob_key FROM flow_files WHERE namespace = $1 AND file_name = $2 FOR UPDATE")
                .bind(pg_text(namespace))
                .bind(pg_text(&f.file_name))
                .fetch_optional(&mut *tx)
                .await?;
            if old.is_some() {
                sqlx::query("UPDATE flow_files SET media_type = $1, size = $2, blob_key = $3, created_at = $4 WHERE namespace = $5 AND file_name = $6")
                    .bind(pg_text(&f.media_type))
                    .bind(f.size)
                    .bind(pg_text(&f.blob_key))
                    .bind(f.created_at)
                    .bind(pg_text(namespace))
                    .bind(pg_text(&f.file_name))
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await?;
                return Ok(old);
            }
            let inserted = sqlx::query(
                "INSERT INTO flow_files (namespace, file_name, media_type, size, blob_key, created_at) VALUES ($1, $2, $3, $4, $5, $6) \
                 ON CONFLICT (namespace, file_name) DO NOTHING",
            )
            .bind(pg_text(namespace))
            .bind(pg_text(&f.file_name))
            .bind(pg_text(&f.media_type))
            .bind(f.size)
            .bind(pg_text(&f.blob_key))
            .bind(f.created_at)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if inserted == 1 {
                tx.commit().await?;
                return Ok(None);
            }
        }
    }

    async fn flow_file(&self, namespace: &str, file_name: &str) -> Result<Option<SessionFileRecord>> {
        sqlx::query("SELECT * FROM flow_files WHERE namespace = $1 AND file_name = $2")
            .bind(pg_text(namespace))
            .bind(pg_text(file_name))
            .fetch_optional(self.pool())
            .await?
            .map(|r| file_from(&r, namespace.to_string()))
            .transpose()
    }
}
