//! Artifacts (§7.7, §8.3): the `write_artifact` tool, versions, signed download URLs
//! (§9.2 item 5) and the A1–A5, A8 endpoints.

use async_trait::async_trait;
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use serde_json::{json, Value};
use store::{ArtifactRecord, ArtifactVersionRecord};
use tools::{Tool, ToolContext, ToolError};
use wire::artifacts::{
    Artifact, ArtifactDeleteResponse, ArtifactDownloadResponse, ArtifactListResponse, ArtifactMetadata, ArtifactNameResponse, ArtifactPasswordRequest,
    ArtifactVersion, ArtifactVersionsResponse, SuccessResponse,
};
use wire::sessions::{AccessChangeRequest, ItemAccessChangeResponse, ItemAccessResponse, LinkMode};
use wire::{ApiError, ErrorCode};

use crate::files::{decode_base64, media_type_for, sanitize_file_name};
use crate::input::{self, Query};
use crate::pagination::PageRequest;
use crate::{db, Caller, Engine};

pub const WRITE_ARTIFACT: &str = "write_artifact";

/// Characters kept as they are in a path segment (RFC 3986 unreserved).
const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'_').remove(b'.').remove(b'~');

pub fn artifact_not_found(id: &str) -> ApiError {
    ApiError::new(ErrorCode::ArtifactNotFound, format!("Artifact {id} was not found.")).param("artifact_id")
}

/// The `write_artifact` built-in; executed by the agent loop through
/// [`Engine::write_artifact`] because it needs the session and the blob store.
pub struct WriteArtifact;

#[async_trait]
impl Tool for WriteArtifact {
    fn name(&self) -> &str {
        WRITE_ARTIFACT
    }
    fn description(&self) -> &str {
        "Save a file as an artifact of this session (a report, CSV, code…). Writing the same filename again creates a new version. \
         Use encoding \"base64\" for binary content."
    }
    fn parameters(&self) -> Value {
        json!({
            "type": "object",
            "properties": {
                "filename": {"type": "string", "description": "File name, e.g. report.md"},
                "content": {"type": "string", "description": "The file content (text, or base64 when encoding is base64)"},
                "media_type": {"type": "string", "description": "MIME type; default from the extension"},
                "encoding": {"type": "string", "enum": ["text", "base64"]}
            },
            "required": ["filename", "content"]
        })
    }
    fn read_only(&self) -> bool {
        false
    }
    async fn call(&self, _args: Value, _ctx: &ToolContext) -> Result<Value, ToolError> {
        Err(ToolError::new("write_artifact runs inside the agent loop"))
    }
}

/// `Content-Disposition` for a download (RFC 5987).
pub fn content_disposition(filename: &str) -> String {
    let ascii: String = filename.chars().map(|c| if c.is_ascii_alphanumeric() || "-_. ()".contains(c) { c } else { '_' }).collect();
    format!("attachment; filename=\"{ascii}\"; filename*=UTF-8''{}", utf8_percent_encode(filename, SEGMENT))
}

impl Engine {
    /// Runs `write_artifact` for a run of `session_id`; errors are tool errors.
    pub async fn write_artifact(&self, ctx: &ToolContext, agent_id: &str, args: &Value) -> Result<Value, String> {
        let filename = args.get("filename").and_then(Value::as_str).ok_or("invalid arguments: filename (string) is required")?;
        let content = args.get("content").and_then(Value::as_str).ok_or("invalid arguments: content (string) is required")?;
        let filename = sanitize_file_name(filename).map_err(|e| e.message)?;
        let encoding = args.get("encoding").and_then(Value::as_str).unwrap_or("text");
        let bytes = match encoding {
            "text" => content.as_bytes().to_vec(),
            "base64" => decode_base64(content).ok_or("content is not valid base64")?,
            other => return Err(format!("invalid arguments: encoding must be text or base64, not {other:?}")),
        };
        if bytes.len() as u64 > self.config.max_upload_bytes {
            return Err(format!("the artifact is larger than {} bytes", self.config.max_upload_bytes));
        }
        let media_type = args
            .get("media_type")
            .and_then(Value::as_str)
            .filter(|m| !m.trim().is_empty())
            .map(str::to_string)
            .unwrap_or_else(|| media_type_for(&filename).to_string());
        let blobs = self.blobs.as_ref().ok_or("artifact storage is not configured")?;
        let art_id = wire::ids::new_id("art");
        let ver_id = wire::ids::new_id("ver");
        let key = format!("artifacts/{ver_id}");
        let size = bytes.len() as i64;
        // The bytes are stored completely before the artifact is committed.
        let meta = blobs.put(&key, bytes::Bytes::from(bytes)).await.map_err(|e| format!("storing the artifact failed: {e}"))?;
        let now = self.now();
        let art = ArtifactRecord {
            id: art_id,
            session_id: ctx.session_id.clone(),
            agent_id: agent_id.to_string(),
            creator_user_id: ctx.user_id.clone(),
            stored_filename: filename.clone(),
            custom_name: None,
            current_version_id: ver_id.clone(),
            password_hash: None,
            deleted_at: None,
            created_at: now,
        };
        let ver = ArtifactVersionRecord {
            id: ver_id,
            artifact_id: String::new(),
            major_version: 0,
            filename: filename.clone(),
            media_type: media_type.clone(),
            size,
            blob_key: key,
            etag: meta.etag,
            created_at: now,
        };
        let (art, ver) = self.store.add_artifact_version(&art, &ver).await.map_err(|e| {
            tracing::error!(error = %e, "recording an artifact failed");
            "recording the artifact failed".to_string()
        })?;
        Ok(
            json!({"artifact_id": art.id, "version_id": ver.id, "filename": ver.filename, "media_type": ver.media_type, "size": ver.size, "major_version": ver.major_version}),
        )
    }

    /// `{public_url}/files/v1/artifacts/{id}/versions/{vid}/{name}?exp&kid&sig`.
    pub fn signed_artifact_url(&self, art: &ArtifactRecord, ver: &ArtifactVersionRecord) -> (String, i64) {
        let path = format!("/files/v1/artifacts/{}/versions/{}/{}", art.id, ver.id, utf8_percent_encode(&ver.filename, SEGMENT));
        let exp = self.clock.now_secs() + self.config.signed_url_ttl_secs as i64;
        let kid = self.signer.current_kid().to_string();
        let (_, sig) = self.signer.sign(format!("GET\n{path}\n{exp}\n{kid}").as_bytes());
        (format!("{}{path}?exp={exp}&kid={kid}&sig={sig}", self.config.public_url), exp)
    }

    /// Verifies a signed file request for `path` (as requested, percent-encoded).
    /// Returns the expiry (unix seconds).
    pub fn verify_signed_path(&self, path: &str, q: &Query) -> Result<i64, ApiError> {
        let invalid = || ApiError::new(ErrorCode::SignatureInvalid, "The download link is invalid. Ask the API for a new one (GET /artifacts/{id}/download).");
        let (Some(exp_raw), Some(kid), Some(sig)) = (q.raw("exp"), q.raw("kid"), q.raw("sig")) else { return Err(invalid()) };
        let exp: i64 = exp_raw.parse().map_err(|_| invalid())?;
        if !self.signer.verify(kid, format!("GET\n{path}\n{exp_raw}\n{kid}").as_bytes(), sig) {
            return Err(invalid());
        }
        if self.clock.now_secs() > exp + 5 {
            return Err(ApiError::new(ErrorCode::SignatureExpired, "The download link has expired. Ask the API for a new one (GET /artifacts/{id}/download)."));
        }
        Ok(exp)
    }

    /// The version a verified file request names; deleted artifacts are 404.
    pub async fn artifact_version_for_download(&self, artifact_id: &str, version_id: &str) -> Result<ArtifactVersionRecord, ApiError> {
        let art = self.store.artifact(artifact_id).await.map_err(db)?.filter(|a| a.deleted_at.is_none()).ok_or_else(|| artifact_not_found(artifact_id))?;
        let versions = self.store.artifact_versions(&art.id).await.map_err(db)?;
        versions.into_iter().find(|v| v.id == version_id).ok_or_else(|| artifact_not_found(artifact_id))
    }

    fn artifact_view(&self, art: &ArtifactRecord, ver: &ArtifactVersionRecord, creator: Option<&store::User>) -> Artifact {
        let (url, _) = self.signed_artifact_url(art, ver);
        Artifact {
            id: art.id.clone(),
            version_id: ver.id.clone(),
            major_version: ver.major_version,
            agent_id: art.agent_id.clone(),
            session_id: art.session_id.clone(),
            filename: art.custom_name.clone().unwrap_or_else(|| ver.filename.clone()),
            created_at: wire::time::v1(ver.created_at),
            metadata: ArtifactMetadata { media_type: ver.media_type.clone(), size: ver.size, stored_filename: art.stored_filename.clone() },
            url,
            creator: creator.map(crate::agents::creator_payload),
        }
    }

    /// The artifact if the caller may read its session (404 otherwise, 403 when the
    /// session is visible but not readable).
    async fn artifact_for(&self, caller: &Caller, id: &str) -> Result<ArtifactRecord, ApiError> {
        let art = self.store.artifact(id).await.map_err(db)?.filter(|a| a.deleted_at.is_none()).ok_or_else(|| artifact_not_found(id))?;
        let s = self.store.session(&art.session_id).await.map_err(db)?.ok_or_else(|| artifact_not_found(id))?;
        // The session's rights decide (§2.5): its creator and grantees read.
        let rights = self.session_rights(caller, &s).await?;
        if !rights.visible {
            return Err(artifact_not_found(id));
        }
        if !rights.read {
            return Err(ApiError::new(ErrorCode::PermissionDenied, "Only readers of the artifact's session may use it."));
        }
        Ok(art)
    }

    /// A1.
    pub async fn list_artifacts(&self, caller: &Caller, agent_id: &str, q: &Query) -> Result<ArtifactListResponse, ApiError> {
        let page_size = q.page_size()?;
        let sort = q.str("sort_order").unwrap_or("newest");
        if !["newest", "oldest", "name_asc", "name_desc"].contains(&sort) {
            return Err(ApiError::new(ErrorCode::InvalidSort, "sort_order must be newest, oldest, name_asc or name_desc.").param("sort_order"));
        }
        let agent = self.visible_agent(caller, agent_id).await?;
        let session = q.str("session_id").or_else(|| q.str("interaction_id"));
        let search = q.str("search_query").map(str::to_ascii_lowercase);
        let binding = format!("{agent_id}|{}|{}|{}|{sort}", caller.user.id, session.unwrap_or(""), search.as_deref().unwrap_or(""));
        let desc = matches!(sort, "newest" | "name_desc");
        let req = PageRequest { route: "A1", binding, page_size, cursor: q.str("cursor"), default_page_size: Some(20) };
        let start = self.page_start(&req, desc)?;
        let size = start.size.unwrap_or(20);
        let filter = store::ArtifactFilter { agent_id: agent.id.clone(), reader: caller.reader(), session_id: session.map(str::to_string), search };
        let order = if sort.starts_with("name") { store::ArtifactSort::Name } else { store::ArtifactSort::Created };
        let window = store::PageWindow { after: start.after, limit: size.saturating_add(1), desc };
        let rows = self.store.list_artifacts(&filter, order, &window).await.map_err(db)?;
        let rows = rows.into_iter().map(|(k, a, v)| ((k, a.id.clone()), (a, v))).collect();
        let (page, next) = self.page_of(&req, size, rows, desc)?;
        let creators: Vec<String> = page.iter().map(|(a, _)| a.creator_user_id.clone()).collect();
        let users = self.store.users_by_ids(&creators).await.map_err(db)?;
        let artifacts = page.iter().map(|(a, v)| self.artifact_view(a, v, users.iter().find(|u| u.id == a.creator_user_id))).collect();
        Ok(ArtifactListResponse { artifacts, next_cursor: next })
    }

    /// A2.
    pub async fn artifact_download(&self, caller: &Caller, id: &str, q: &Query) -> Result<ArtifactDownloadResponse, ApiError> {
        let art = self.artifact_for(caller, id).await?;
        let versions = self.store.artifact_versions(&art.id).await.map_err(db)?;
        let want = q.str("version_id").unwrap_or(&art.current_version_id);
        let ver = versions
            .iter()
            .find(|v| v.id == want)
            .ok_or_else(|| ApiError::new(ErrorCode::ArtifactVersionNotFound, format!("Version {want} of artifact {id} was not found.")).param("version_id"))?;
        let (url, _) = self.signed_artifact_url(&art, ver);
        let filename = if ver.id == art.current_version_id { art.custom_name.clone().unwrap_or_else(|| ver.filename.clone()) } else { ver.filename.clone() };
        // A download is a read: recorded here, when its URL is issued to the caller.
        if let Ok(Some(s)) = self.store.session(&art.session_id).await {
            let details = serde_json::json!({"artifact_id": art.id, "version_id": ver.id, "session_id": art.session_id, "file_name": filename});
            self.audit(&s.organization_id, "artifact_downloaded", None, s.team_id.as_deref(), Some(&art.id), details).await;
        }
        Ok(ArtifactDownloadResponse { download_url: url, filename, media_type: ver.media_type.clone(), size: ver.size })
    }

    async fn writable_artifact(&self, caller: &Caller, id: &str) -> Result<ArtifactRecord, ApiError> {
        let art = self.artifact_for(caller, id).await?;
        let s = self.store.session(&art.session_id).await.map_err(db)?.ok_or_else(|| artifact_not_found(id))?;
        if s.creator_user_id != caller.user.id {
            return Err(ApiError::new(ErrorCode::PermissionDenied, "Only the session's creator may change its artifacts."));
        }
        Ok(art)
    }

    /// A3.
    pub async fn delete_artifact(&self, caller: &Caller, id: &str) -> Result<ArtifactDeleteResponse, ApiError> {
        let art = self.writable_artifact(caller, id).await?;
        if !self.store.delete_artifact(&art.id, self.now()).await.map_err(db)? {
            return Err(artifact_not_found(id));
        }
        Ok(ArtifactDeleteResponse { deleted: true })
    }

    /// A4.
    pub async fn rename_artifact(&self, caller: &Caller, id: &str, body: Value) -> Result<ArtifactNameResponse, ApiError> {
        let m = input::object(body)?;
        if !m.contains_key("name") {
            return Err(ApiError::invalid_request("name", "name is required (a string, or null to reset)."));
        }
        let name = match m.get("name") {
            Some(Value::Null) | None => None,
            Some(Value::String(n)) => {
                let t = n.trim();
                if t.is_empty() || t.chars().count() > 256 {
                    return Err(ApiError::new(ErrorCode::InvalidName, "name must be 1 to 256 characters after trimming.").param("name"));
                }
                Some(sanitize_file_name(t).map_err(|e| ApiError::new(ErrorCode::InvalidName, e.message).param("name"))?)
            }
            Some(v) => return Err(ApiError::invalid_request("name", format!("name must be a string or null, not {}.", input::kind(v)))),
        };
        let art = self.writable_artifact(caller, id).await?;
        self.store.rename_artifact(&art.id, name.as_deref()).await.map_err(db)?;
        Ok(ArtifactNameResponse { name })
    }

    /// A5.
    pub async fn artifact_versions(&self, caller: &Caller, id: &str) -> Result<ArtifactVersionsResponse, ApiError> {
        let art = self.artifact_for(caller, id).await?;
        let versions = self.store.artifact_versions(&art.id).await.map_err(db)?;
        let latest = versions.first().map(|v| v.id.clone());
        let versions = versions
            .iter()
            .map(|v| ArtifactVersion {
                version_id: v.id.clone(),
                major_version: v.major_version,
                created_ts: wire::time::v1(v.created_at),
                is_deployed: Some(&v.id) == latest.as_ref(),
                is_current: v.id == art.current_version_id,
                filename: v.filename.clone(),
                media_type: v.media_type.clone(),
                size: v.size,
            })
            .collect();
        Ok(ArtifactVersionsResponse { versions })
    }

    /// A6: artifacts are shared through their session (S18); a password is kept for
    /// password-mode public links (later).
    pub async fn artifact_access(&self, caller: &Caller, id: &str) -> Result<ItemAccessResponse, ApiError> {
        let art = self.writable_artifact(caller, id).await?;
        let mut access = self.session_access(caller, &art.session_id).await?;
        access.access.password_protected = art.password_hash.is_some();
        Ok(access)
    }

    /// A7: validated like S18; public links and per-artifact grants are not available
    /// yet (share the session instead).
    pub async fn change_artifact_access(&self, caller: &Caller, id: &str, req: &AccessChangeRequest) -> Result<ItemAccessChangeResponse, ApiError> {
        crate::sessions::access::require_one_change(req)?;
        let art = self.writable_artifact(caller, id).await?;
        if let Some(link) = &req.link {
            match link.mode {
                LinkMode::None => {}
                LinkMode::Password if art.password_hash.is_none() => {
                    return Err(ApiError::invalid_request("link.mode", "Set a password first (PUT /artifacts/{id}/password)."));
                }
                LinkMode::Anyone | LinkMode::Password => return Err(ApiError::not_implemented("Public artifact links").param("link.mode")),
            }
        }
        if req.share.is_some() || req.remove.is_some() {
            return Err(ApiError::not_implemented("Per-artifact grants (share the artifact's session with PUT /sessions/{id}/access)").param("share"));
        }
        let mut access = self.session_access(caller, &art.session_id).await?.access;
        access.password_protected = art.password_hash.is_some();
        Ok(ItemAccessChangeResponse { access, notified: vec![] })
    }

    /// A8: Argon2id hash for password-mode public links (later); signed URLs unaffected.
    pub async fn set_artifact_password(&self, caller: &Caller, id: &str, req: ArtifactPasswordRequest) -> Result<SuccessResponse, ApiError> {
        use argon2::password_hash::{rand_core::OsRng, PasswordHasher, SaltString};
        let password = req.password;
        if !(8..=256).contains(&password.chars().count()) {
            return Err(ApiError::new(ErrorCode::InvalidPassword, "password must be a string of 8 to 256 characters.").param("password"));
        }
        let art = self.writable_artifact(caller, id).await?;
        let salt = SaltString::generate(&mut OsRng);
        let hash = argon2::Argon2::default().hash_password(password.as_bytes(), &salt).map_err(|_| ApiError::internal())?.to_string();
        self.store.set_artifact_password(&art.id, &hash).await.map_err(db)?;
        Ok(SuccessResponse { success: true })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn disposition_is_rfc5987() {
        assert_eq!(content_disposition("report é.md"), "attachment; filename=\"report _.md\"; filename*=UTF-8''report%20%C3%A9.md");
        assert_eq!(content_disposition("a\"b;c"), "attachment; filename=\"a_b_c\"; filename*=UTF-8''a%22b%3Bc");
    }
}
