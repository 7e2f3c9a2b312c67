use async_trait::async_trait;
use sqlx::sqlite::SqliteRow;
use sqlx::Row;

use super::SqliteStore;
use crate::{ArtifactRecord, ArtifactStore, ArtifactVersionRecord, Reader, Result, SessionFileRecord};

fn artifact_from(r: &SqliteRow) -> ArtifactRecord {
    ArtifactRecord {
        id: r.get("id"),
        session_id: r.get("session_id"),
        agent_id: r.get("agent_id"),
        creator_user_id: r.get("creator_user_id"),
        stored_filename: r.get("stored_filename"),
        custom_name: r.get("custom_name"),
        current_version_id: r.get("current_version_id"),
        password_hash: r.get("password_hash"),
        deleted_at: r.get("deleted_at"),
        created_at: r.get("created_at"),
    }
}

/// A version row; `p` is the column prefix (`""`, or `"v_"` in joins).
fn version_from(r: &SqliteRow, p: &str) -> ArtifactVersionRecord {
    let col = |c: &str| format!("{p}{c}");
    ArtifactVersionRecord {
        id: r.get(col("id").as_str()),
        artifact_id: r.get(col("artifact_id").as_str()),
        major_version: r.get(col("major_version").as_str()),
        filename: r.get(col("filename").as_str()),
        media_type: r.get(col("media_type").as_str()),
        size: r.get(col("size").as_str()),
        blob_key: r.get(col("blob_key").as_str()),
        etag: r.get(col("etag").as_str()),
        created_at: r.get(col("created_at").as_str()),
    }
}

#[async_trait]
impl ArtifactStore for SqliteStore {
    async fn add_artifact_version(&self, new_artifact: &ArtifactRecord, v: &ArtifactVersionRecord) -> Result<(ArtifactRecord, ArtifactVersionRecord)> {
        let mut tx = self.write_tx().await?;
        let existing = sqlx::query("SELECT * FROM artifacts WHERE session_id = ? AND stored_filename = ? AND deleted_at IS NULL")
            .bind(&new_artifact.session_id)
            .bind(&new_artifact.stored_filename)
            .fetch_optional(&mut *tx)
            .await?
            .map(|r| artifact_from(&r));
        let (mut art, major) = match existing {
            Some(a) => {
                let max: i64 = sqlx::query_scalar("SELECT COALESCE(MAX(major_version), 0) FROM artifact_versions WHERE artifact_id = ?")
                    .bind(&a.id)
                    .fetch_one(&mut *tx)
                    .await?;
                (a, max + 1)
            }
            None => {
                sqlx::query(
                    "INSERT INTO artifacts (id, session_id, agent_id, creator_user_id, stored_filename, custom_name, current_version_id, password_hash, deleted_at, created_at) VALUES (?, ?, ?, ?, ?, NULL, ?, NULL, NULL, ?)",
                )
                .bind(&new_artifact.id)
                .bind(&new_artifact.session_id)
                .bind(&new_artifact.agent_id)
                .bind(&new_artifact.creator_user_id)
                .bind(&new_artifact.stored_filename)
                .bind(&v.id)
                .bind(new_artifact.created_at)
                .execute(&mut *tx)
                .await?;
                (new_artifact.clone(), 1)
            }
        };
        let mut v = v.clone();
        v.artifact_id = art.id.clone();
        v.major_version = major;
        sqlx::query("INSERT INTO artifact_versions (id, artifact_id, major_version, filename, media_type, size, blob_key, etag, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)")
            .bind(&v.id)
            .bind(&v.artifact_id)
            .bind(v.major_version)
            .bind(&v.filename)
            .bind(&v.media_type)
            .bind(v.size)
            .bind(&v.blob_key)
            .bind(&v.etag)
            .bind(v.created_at)
            .execute(&mut *tx)
            .await?;
        sqlx::query("UPDATE artifacts SET current_version_id = ? WHERE id = ?").bind(&v.id).bind(&art.id).execute(&mut *tx).await?;
        tx.commit().await?;
        art.current_version_id = v.id.clone();
        Ok((art, v))
    }

    async fn artifact(&self, id: &str) -> Result<Option<ArtifactRecord>> {
        Ok(sqlx::query("SELECT * FROM artifacts WHERE id = ?").bind(id).fetch_optional(&self.reader).await?.map(|r| artifact_from(&r)))
    }

    async fn artifact_versions(&self, artifact_id: &str) -> Result<Vec<ArtifactVersionRecord>> {
        let rows =
            sqlx::query("SELECT * FROM artifact_versions WHERE artifact_id = ? ORDER BY major_version DESC").bind(artifact_id).fetch_all(&self.reader).await?;
        Ok(rows.iter().map(|r| version_from(r, "")).collect())
    }

    async fn artifacts_of_agent(&self, agent_id: &str, reader: &Reader) -> Result<Vec<(ArtifactRecord, ArtifactVersionRecord)>> {
        let sql = format!(
            "SELECT a.*, v.id AS v_id, v.artifact_id AS v_artifact_id, v.major_version AS v_major_version, v.filename AS v_filename, v.media_type AS v_media_type, \
             v.size AS v_size, v.blob_key AS v_blob_key, v.etag AS v_etag, v.created_at AS v_created_at \
             FROM artifacts a JOIN sessions s ON s.id = a.session_id JOIN artifact_versions v ON v.id = a.current_version_id \
             WHERE a.agent_id = ?4 AND a.deleted_at IS NULL AND {}",
            super::sessions::READABLE
        );
        let rows = super::sessions::bind_reader(sqlx::query(&sql), reader).bind(agent_id).fetch_all(&self.reader).await?;
        Ok(rows.iter().map(|r| (artifact_from(r), version_from(r, "v_"))).collect())
    }

    async fn delete_artifact(&self, id: &str, at: i64) -> Result<bool> {
        let mut tx = self.write_tx().await?;
        let res = sqlx::query("UPDATE artifacts SET deleted_at = ? WHERE id = ? AND deleted_at IS NULL").bind(at).bind(id).execute(&mut *tx).await?;
        tx.commit().await?;
        Ok(res.rows_affected() == 1)
    }

    async fn rename_artifact(&self, id: &str, name: Option<&str>) -> Result<()> {
        let mut tx = self.write_tx().await?;
        sqlx::query("UPDATE artifacts SET custom_name = ? WHERE id = ?").bind(name).bind(id).execute(&mut *tx).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn set_artifact_password(&self, id: &str, hash: &str) -> Result<()> {
        let mut tx = self.write_tx().await?;
        sqlx::query("UPDATE artifacts SET password_hash = ? WHERE id = ?").bind(hash).bind(id).execute(&mut *tx).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn upsert_flow_file(&self, namespace: &str, f: &SessionFileRecord) -> Result<Option<String>> {
        let mut tx = self.write_tx().await?;
        let old: Option<String> = sqlx::query_scalar("SELECT blob_key FROM flow_files WHERE namespace = ? AND file_name = ?")
            .bind(namespace)
            .bind(&f.file_name)
            .fetch_optional(&mut *tx)
            .await?;
        sqlx::query(
            "INSERT INTO flow_files (namespace, file_name, media_type, size, blob_key, created_at) VALUES (?, ?, ?, ?, ?, ?) \
             ON CONFLICT(namespace, file_name) DO UPDATE SET media_type = excluded.media_type, size = excluded.size, blob_key = excluded.blob_key, created_at = excluded.created_at",
        )
        .bind(namespace)
        .bind(&f.file_name)
        .bind(&f.media_type)
        .bind(f.size)
        .bind(&f.blob_key)
        .bind(f.created_at)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(old)
    }

    async fn flow_file(&self, namespace: &str, file_name: &str) -> Result<Option<SessionFileRecord>> {
        let row =
            sqlx::query("SELECT * FROM flow_files WHERE namespace = ? AND file_name = ?").bind(namespace).bind(file_name).fetch_optional(&self.reader).await?;
        Ok(row.map(|r| super::sessions::file_from(&r, namespace.to_string())))
    }
}
