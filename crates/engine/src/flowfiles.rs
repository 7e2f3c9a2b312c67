//! Legacy flow files (F8–F11): uploads into the user's or team's flow-file namespace and
//! downloads from it. Errors are flat strings (§3.2, §8.4).

use bytes::Bytes;
use serde_json::{Map, Value};
use store::SessionFileRecord;
use wire::legacy::{FailedFile, UploadFileResponse, UploadFilesResponse};
use wire::ApiError;

use crate::files::{decode_base64, media_type_for, sanitize_file_name};
use crate::{db, Engine, KeyInfo, KeyKind};

fn flat(status: u16, s: &str) -> ApiError {
    ApiError::flat(status, s)
}

fn field(m: &Map<String, Value>, k: &str) -> Option<String> {
    m.get(k).and_then(Value::as_str).map(str::trim).filter(|s| !s.is_empty()).map(str::to_string)
}

/// The flow-file namespace of a workspace: a team's, or a user's personal one.
pub(crate) fn namespace(team_id: Option<&str>, user_id: &str) -> String {
    match team_id {
        Some(t) => format!("team:{t}"),
        None => format!("user:{user_id}"),
    }
}

/// One F9 failure.
fn failed(name: &str, error: &str) -> FailedFile {
    FailedFile { file_name: Some(name.to_string()), error: error.to_string() }
}

impl Engine {
    /// The namespace the caller's legacy files live in: `team:<id>` with `project_id`,
    /// else `user:<acting user>`.
    pub async fn flow_namespace(&self, key: &KeyInfo, m: &Map<String, Value>) -> Result<String, ApiError> {
        let user_id = field(m, "user_id");
        let project_id = field(m, "project_id");
        let acting = match &key.kind {
            KeyKind::Personal { user_id: owner } => {
                if user_id.as_ref().is_some_and(|u| u != owner) {
                    return Err(flat(403, "forbidden"));
                }
                owner.clone()
            }
            KeyKind::Team { team_id } => {
                if user_id.is_none() && project_id.is_none() {
                    return Err(flat(400, "project_id or user_id is required"));
                }
                if project_id.as_ref().is_some_and(|p| p != team_id) {
                    return Err(flat(403, "forbidden"));
                }
                let acting = user_id.clone().or_else(|| key.created_by.clone()).ok_or_else(|| flat(403, "forbidden"))?;
                if self.store.membership(team_id, &acting).await.map_err(db)?.is_none() {
                    return Err(flat(403, "forbidden"));
                }
                acting
            }
        };
        match project_id {
            Some(p) => {
                if self.store.membership(&p, &acting).await.map_err(db)?.is_none() {
                    return Err(flat(403, "forbidden"));
                }
                Ok(namespace(Some(&p), &acting))
            }
            None => Ok(namespace(None, &acting)),
        }
    }

    async fn store_flow_file(&self, ns: &str, raw_name: &str, content: &str, max: u64) -> Result<String, &'static str> {
        let name = sanitize_file_name(raw_name).map_err(|_| "invalid_file_name")?;
        let bytes = decode_base64(content).ok_or("invalid_file_content")?;
        if bytes.len() as u64 > max {
            return Err("file_too_large");
        }
        let blobs = self.blobs.as_ref().ok_or("internal_error")?;
        let key = format!("flowfiles/{}", wire::ids::new_id("file"));
        let size = bytes.len() as i64;
        blobs.put(&key, Bytes::from(bytes)).await.map_err(|_| "internal_error")?;
        let rec = SessionFileRecord {
            session_id: ns.to_string(),
            file_name: name.clone(),
            media_type: media_type_for(&name).to_string(),
            size,
            blob_key: key,
            created_at: self.now(),
        };
        let old = self.store.upsert_flow_file(ns, &rec).await.map_err(|_| "internal_error")?;
        if let Some(old) = old {
            let _ = blobs.delete(&old).await;
        }
        Ok(name)
    }

    fn upload_error(e: &str) -> ApiError {
        match e {
            "file_too_large" => flat(413, e),
            "internal_error" => flat(500, e),
            _ => flat(400, e),
        }
    }

    /// F8.
    pub async fn upload_flow_file(&self, key: &KeyInfo, body: Value, max: u64) -> Result<UploadFileResponse, ApiError> {
        let m = body.as_object().cloned().unwrap_or_default();
        let name = m.get("file_name").and_then(Value::as_str).filter(|s| !s.is_empty()).ok_or_else(|| flat(400, "file_name is required"))?.to_string();
        let content = m.get("file_content").and_then(Value::as_str).filter(|s| !s.is_empty()).ok_or_else(|| flat(400, "file_content is required"))?.to_string();
        let ns = self.flow_namespace(key, &m).await?;
        let stored = self.store_flow_file(&ns, &name, &content, max).await.map_err(Self::upload_error)?;
        Ok(UploadFileResponse { success: true, file_name: stored })
    }

    /// F9: each file independently; 200 all, 207 some, 400 none.
    pub async fn upload_flow_files(&self, key: &KeyInfo, body: Value, max: u64) -> Result<(u16, UploadFilesResponse), ApiError> {
        let m = body.as_object().cloned().unwrap_or_default();
        let files = match m.get("files").and_then(Value::as_array) {
            Some(f) if !f.is_empty() && f.len() <= 100 => f.clone(),
            _ => return Err(flat(400, "files is required")),
        };
        let ns = self.flow_namespace(key, &m).await?;
        let mut ok = Vec::new();
        let mut bad = Vec::new();
        let mut storage_failed = false;
        for f in &files {
            let name = f.get("file_name").and_then(Value::as_str).unwrap_or("");
            let content = f.get("file_content").and_then(Value::as_str).unwrap_or("");
            if name.is_empty() {
                bad.push(failed(name, "file_name is required"));
                continue;
            }
            if content.is_empty() {
                bad.push(failed(name, "file_content is required"));
                continue;
            }
            match self.store_flow_file(&ns, name, content, max).await {
                Ok(stored) => ok.push(stored),
                Err(e) => {
                    storage_failed |= e == "internal_error";
                    bad.push(failed(name, e));
                }
            }
        }
        Ok(match (ok.is_empty(), bad.is_empty()) {
            (_, true) => (200, UploadFilesResponse { success: Some(true), uploaded_files: Some(ok), ..Default::default() }),
            (false, false) => {
                (207, UploadFilesResponse { partial_success: Some(true), uploaded_files: Some(ok), failed_files: Some(bad), ..Default::default() })
            }
            (true, false) => (
                if storage_failed { 500 } else { 400 },
                UploadFilesResponse { error: Some("all_uploads_failed".into()), failed_files: Some(bad), ..Default::default() },
            ),
        })
    }

    /// F10/F11 lookup: the files of `run_id` (written by its nodes), then the caller's uploads.
    pub async fn flow_files_for_download(&self, key: &KeyInfo, body: &Value, many: bool) -> Result<Vec<SessionFileRecord>, ApiError> {
        let m = body.as_object().cloned().unwrap_or_default();
        let names: Vec<String> = if many {
            match m.get("file_names").and_then(Value::as_array) {
                Some(a) if !a.is_empty() && a.len() <= 100 => {
                    let mut names = Vec::with_capacity(a.len());
                    for (i, v) in a.iter().enumerate() {
                        match v.as_str().filter(|s| !s.trim().is_empty()) {
                            Some(n) => names.push(n.to_string()),
                            None => {
                                let mut e = flat(400, "file_names is required");
                                e.message = format!("file_names[{i}] must be a non-empty file name (a string).");
                                return Err(e.detail("param", format!("file_names[{i}]")));
                            }
                        }
                    }
                    names
                }
                _ => return Err(flat(400, "file_names is required")),
            }
        } else {
            vec![field(&m, "file_name").ok_or_else(|| flat(400, "file_name is required"))?]
        };
        let ns = self.flow_namespace(key, &m).await?;
        // Files of the run first (nodes' files), then the caller's uploads.
        let mut spaces = Vec::new();
        if let Some(run_id) = field(&m, "run_id") {
            let visible = self.store.flow_run_status(&run_id).await.map_err(db)?.is_some_and(|r| ns == namespace(r.team_id.as_deref(), &r.user_id));
            if !visible {
                return Err(flat(404, "run_not_found"));
            }
            spaces.push(crate::flows::runner::run_namespace(&run_id));
        }
        spaces.push(ns);
        let mut found = Vec::new();
        let mut missing = Vec::new();
        'names: for n in &names {
            let clean = sanitize_file_name(n).unwrap_or_default();
            for space in &spaces {
                if let Some(f) = self.store.flow_file(space, &clean).await.map_err(db)? {
                    found.push(f);
                    continue 'names;
                }
            }
            missing.push(Value::String(n.clone()));
        }
        if !missing.is_empty() {
            let mut e = flat(404, "file_not_found");
            if many {
                e = e.detail("missing", Value::Array(missing));
            }
            return Err(e);
        }
        Ok(found)
    }
}
