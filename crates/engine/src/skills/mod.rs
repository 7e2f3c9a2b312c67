//! Skills (API.md §8.10 SK1–SK7, §8.6 G10/G11): versioned bundles of files that agents
//! read. Each upload (SK2 create, SK3 update) is a complete new version; file bytes live
//! in the blob store under server-generated keys, never under the client's names.
//!
//! Rights (Openloop decision, following §2.5): a personal skill is its owner's; a team
//! skill is read by the team's members and changed by its creator and team admins.
//! Grants (SK7) add readers (`viewer`) and editors (`editor`); deleting and changing
//! access stay with the owner/creator and team admins. Skills of other tenants are 404.

pub mod bundle;
pub mod sync;
pub mod tool;

use std::collections::HashMap;

use bytes::Bytes;
use futures::StreamExt;
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use serde_json::json;
use sha2::{Digest, Sha256};
use store::{AgentRecord, SkillFileRecord, SkillFilter, SkillRecord, SkillScope, SkillVersionRecord};
use wire::sessions::{AccessChangeRequest, ItemAccess, ItemAccessChangeResponse, ItemAccessResponse, LinkMode};
use wire::skills::{Skill, SkillDeleteResponse, SkillDownloadResponse, SkillFileInfo, SkillListResponse, SkillMetadata, SkillResponse};
use wire::{ApiError, ErrorCode};

use crate::input::Query;
use crate::pagination::{PageRequest, SortVal};
use crate::{blob_err, db, Caller, Engine, Scope};

/// Most files in one skill (the sync limit `files_per_skill`).
pub const MAX_FILES: usize = wire::skills::CliSyncLimits::V1.files_per_skill as usize;
/// Most skills attached to one agent.
pub const MAX_AGENT_SKILLS: usize = 100;
/// Markdown text kept in memory per upload to read the main file's front matter.
const MAX_DESCRIBED_BYTES: usize = 1024 * 1024;

/// Characters kept as they are in a path segment (RFC 3986 unreserved).
const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'_').remove(b'.').remove(b'~');

pub fn skill_not_found(id: &str) -> ApiError {
    ApiError::new(ErrorCode::SkillNotFound, format!("Skill {id} was not found.")).param("skill_id")
}

/// One uploaded file, already in the blob store.
#[derive(Debug, Clone)]
struct Staged {
    path: String,
    media_type: String,
    size: u64,
    blob_key: String,
    sha256: String,
    /// The text of root Markdown files (for the front matter).
    text: Option<String>,
}

/// The files of one SK2/SK3 request as they arrive. Dropping it without
/// [`Engine::create_skill`]/[`Engine::update_skill`] leaves blobs behind: call
/// [`Engine::discard_skill_upload`] on every error path.
#[derive(Debug, Default)]
pub struct SkillUpload {
    files: Vec<Staged>,
    total: u64,
}

impl SkillUpload {
    pub fn is_empty(&self) -> bool {
        self.files.is_empty()
    }
}

/// What a caller may do with one skill.
#[derive(Debug, Clone, Copy, Default)]
struct Rights {
    read: bool,
    edit: bool,
    /// Delete and change access.
    admin: bool,
}

impl Engine {
    /// Largest accepted file of a skill: the upload limit, at most the sync limit.
    pub fn skill_file_limit(&self) -> u64 {
        self.config.max_upload_bytes.min(wire::skills::CliSyncLimits::V1.bytes_per_file as u64)
    }

    /// Checks and stores one uploaded file (SK2/SK3 `files` part). `name` is the part's
    /// file name: the path inside the skill.
    pub async fn stage_skill_file(&self, up: &mut SkillUpload, name: &str, media_type: Option<&str>, data: Bytes) -> Result<(), ApiError> {
        let path = bundle::check_path(name)?;
        if up.files.iter().any(|f| f.path == path) {
            return Err(ApiError::new(ErrorCode::InvalidFileName, format!("The file {path:?} is sent twice in files.")).param("files"));
        }
        if up.files.len() >= MAX_FILES {
            return Err(ApiError::invalid_request("files", format!("A skill has at most {MAX_FILES} files.")));
        }
        let size = data.len() as u64;
        if size > self.skill_file_limit() {
            return Err(too_large(&path, self.skill_file_limit()));
        }
        if up.total + size > self.config.max_upload_bytes {
            return Err(ApiError::new(ErrorCode::FileTooLarge, format!("The files together exceed {} bytes.", self.config.max_upload_bytes)).param("files"));
        }
        let media_type = media_type
            .map(str::trim)
            .filter(|m| !m.is_empty() && *m != "application/octet-stream" && m.len() <= 255 && !m.chars().any(char::is_control))
            .map(str::to_string)
            .unwrap_or_else(|| crate::files::media_type_for(&path).to_string());
        let text = (!path.contains('/') && path.to_ascii_lowercase().ends_with(".md") && data.len() <= MAX_DESCRIBED_BYTES)
            .then(|| String::from_utf8_lossy(&data).into_owned());
        let sha256 = format!("{:x}", Sha256::digest(&data));
        let blobs = self.blobs.as_ref().ok_or_else(ApiError::internal)?;
        let blob_key = format!("skills/{}", wire::ids::new_id("skf"));
        blobs.put(&blob_key, data).await.map_err(blob_err)?;
        up.total += size;
        up.files.push(Staged { path, media_type, size, blob_key, sha256, text });
        Ok(())
    }

    /// Removes the blobs of an upload that will not be committed.
    pub async fn discard_skill_upload(&self, up: SkillUpload) {
        if let Some(blobs) = &self.blobs {
            for f in up.files {
                if let Err(e) = blobs.delete(&f.blob_key).await {
                    tracing::warn!(error = %e, "removing an uncommitted skill file failed");
                }
            }
        }
    }

    /// The version record and file records of a complete upload.
    async fn version_of(&self, caller: &Caller, up: &SkillUpload, fallback_name: Option<&str>) -> Result<(SkillVersionRecord, Vec<SkillFileRecord>), ApiError> {
        if up.files.is_empty() {
            return Err(ApiError::invalid_request("files", "Send at least one file (multipart part named files), e.g. SKILL.md."));
        }
        let main = bundle::main_file(up.files.iter().map(|f| f.path.as_str()));
        let described = main.and_then(|m| up.files.iter().find(|f| f.path == m)).and_then(|f| f.text.as_deref()).map(bundle::describe).unwrap_or_default();
        let name = described
            .name
            .clone()
            .or_else(|| fallback_name.map(str::to_string))
            .or_else(|| main.map(|m| bundle::stem(m).to_string()))
            .unwrap_or_else(|| bundle::stem(&up.files[0].path).to_string());
        let name = name.trim().to_string();
        if name.is_empty() || name.chars().count() > 256 || name.chars().any(char::is_control) {
            return Err(ApiError::new(ErrorCode::InvalidName, "The skill name (front matter name of SKILL.md) must be 1 to 256 characters.").param("files"));
        }
        let description = described.description.clone().or_else(|| bundle::first_paragraph(&described.instructions)).unwrap_or_default();
        let vid = wire::ids::new_id("skv");
        let content_hash = self.content_hash_of(up).await?;
        let files: Vec<SkillFileRecord> = up
            .files
            .iter()
            .map(|f| SkillFileRecord {
                version_id: vid.clone(),
                path: f.path.clone(),
                media_type: f.media_type.clone(),
                size: f.size as i64,
                blob_key: f.blob_key.clone(),
                sha256: f.sha256.clone(),
            })
            .collect();
        let v = SkillVersionRecord {
            id: vid,
            skill_id: String::new(),
            major_version: 0,
            name,
            // NUL is not storable everywhere (PostgreSQL text): both backends keep U+FFFD.
            description: description.chars().take(4096).map(|c| if c == '\0' { '\u{FFFD}' } else { c }).collect(),
            instructions: described.instructions.replace('\0', "\u{FFFD}"),
            content_hash,
            size: up.total as i64,
            file_count: up.files.len() as i64,
            creator_user_id: caller.user.id.clone(),
            created_at: self.now(),
        };
        Ok((v, files))
    }

    /// The sync content hash, streaming the stored bytes back in path order.
    async fn content_hash_of(&self, up: &SkillUpload) -> Result<String, ApiError> {
        let blobs = self.blobs.as_ref().ok_or_else(ApiError::internal)?;
        let mut order: Vec<&Staged> = up.files.iter().collect();
        order.sort_by(|a, b| a.path.as_bytes().cmp(b.path.as_bytes()));
        let mut h = bundle::ContentHasher::default();
        for f in order {
            h.file(&f.path, f.size);
            let mut read = blobs.get(&f.blob_key, None).await.map_err(blob_err)?;
            while let Some(chunk) = read.stream.next().await {
                h.bytes(&chunk.map_err(blob_err)?);
            }
        }
        Ok(h.finish())
    }

    /// SK2, in the caller's scope (the handler resolves it with the form's `team_id`).
    pub async fn create_skill(&self, caller: &Caller, up: SkillUpload) -> Result<SkillResponse, ApiError> {
        let r = self.create_skill_inner(caller, &up).await;
        if r.is_err() {
            self.discard_skill_upload(up).await;
        }
        r
    }

    async fn create_skill_inner(&self, caller: &Caller, up: &SkillUpload) -> Result<SkillResponse, ApiError> {
        let (v, files) = self.version_of(caller, up, None).await?;
        let team_id = caller.scope_team().map(str::to_string);
        let now = v.created_at;
        let s = SkillRecord {
            id: wire::ids::new_id("skill"),
            organization_id: caller.user.organization_id.clone(),
            team_id,
            owner_user_id: caller.user.id.clone(),
            creator_user_id: caller.user.id.clone(),
            name: v.name.clone(),
            description: v.description.clone(),
            current_version_id: v.id.clone(),
            major_version: 1,
            deleted_at: None,
            created_at: now,
            updated_at: now,
        };
        let (s, v) = self.store.create_skill(&s, &v, &files).await.map_err(db)?;
        Ok(SkillResponse { skill: self.skill_view(&s, &v, &files, Some(&caller.user)) })
    }

    /// SK3: the files sent become the next version (files not sent are not kept).
    pub async fn update_skill(&self, caller: &Caller, id: &str, up: SkillUpload) -> Result<SkillResponse, ApiError> {
        let r = self.update_skill_inner(caller, id, &up).await;
        if r.is_err() {
            self.discard_skill_upload(up).await;
        }
        r
    }

    async fn update_skill_inner(&self, caller: &Caller, id: &str, up: &SkillUpload) -> Result<SkillResponse, ApiError> {
        let cur = self.editable_skill(caller, id).await?;
        let (v, files) = self.version_of(caller, up, Some(&cur.name)).await?;
        let (s, v) = self.store.add_skill_version(id, &v, &files).await.map_err(db)?.ok_or_else(|| skill_not_found(id))?;
        let creator = self.store.user(&s.creator_user_id).await.map_err(db)?;
        Ok(SkillResponse { skill: self.skill_view(&s, &v, &files, creator.as_ref()) })
    }

    /// Checks SK3's rights before its files are read.
    pub async fn editable_skill(&self, caller: &Caller, id: &str) -> Result<SkillRecord, ApiError> {
        let (s, r) = self.skill_with_rights(caller, id).await?;
        if !r.edit {
            return Err(ApiError::new(ErrorCode::PermissionDenied, "You may read this skill but not change it; ask its owner for editor access."));
        }
        Ok(s)
    }

    async fn rights(&self, caller: &Caller, s: &SkillRecord) -> Result<Rights, ApiError> {
        if s.organization_id != caller.user.organization_id {
            return Ok(Rights::default());
        }
        let mut r = Rights::default();
        if caller.can_see(s.team_id.as_deref(), &s.owner_user_id) {
            let owner = match &s.team_id {
                None => s.owner_user_id == caller.user.id,
                Some(t) => s.creator_user_id == caller.user.id || caller.team_role(t) == Some("admin"),
            };
            r = Rights { read: true, edit: owner, admin: owner };
        }
        if !r.edit {
            for (kind, principal, role) in self.store.skill_grants(&s.id).await.map_err(db)? {
                let applies = match kind.as_str() {
                    "person" => principal == caller.user.id,
                    "team" => caller.team_role(&principal).is_some(),
                    "organization" => principal == caller.user.organization_id,
                    _ => false,
                };
                if applies {
                    r.read = true;
                    r.edit |= role == "editor";
                }
            }
        }
        Ok(r)
    }

    /// A live skill the caller may read (404 otherwise) and the caller's rights.
    async fn skill_with_rights(&self, caller: &Caller, id: &str) -> Result<(SkillRecord, Rights), ApiError> {
        let s = self.store.skill(id).await.map_err(db)?.filter(|s| s.deleted_at.is_none()).ok_or_else(|| skill_not_found(id))?;
        let r = self.rights(caller, &s).await?;
        if !r.read {
            return Err(skill_not_found(id));
        }
        Ok((s, r))
    }

    /// A live skill the caller may read (G10 attach).
    pub async fn readable_skill(&self, caller: &Caller, id: &str) -> Result<SkillRecord, ApiError> {
        Ok(self.skill_with_rights(caller, id).await?.0)
    }

    async fn admin_skill(&self, caller: &Caller, id: &str) -> Result<SkillRecord, ApiError> {
        let (s, r) = self.skill_with_rights(caller, id).await?;
        if !r.admin {
            return Err(ApiError::new(ErrorCode::PermissionDenied, "Only the skill's owner (or a team admin) may delete it or change its access."));
        }
        Ok(s)
    }

    fn skill_view(&self, s: &SkillRecord, v: &SkillVersionRecord, files: &[SkillFileRecord], creator: Option<&store::User>) -> Skill {
        let meta = SkillMetadata {
            files: files.iter().map(|f| SkillFileInfo { path: f.path.clone(), size: f.size, media_type: f.media_type.clone() }).collect(),
            file_count: v.file_count,
            size: v.size,
            content_hash: v.content_hash.clone(),
        };
        Skill {
            id: s.id.clone(),
            name: v.name.clone(),
            description: v.description.clone(),
            team_id: s.team_id.clone().unwrap_or_default(),
            created_at: Some(wire::time::v1(s.created_at)),
            updated_at: Some(wire::time::v1(s.updated_at)),
            metadata: serde_json::to_value(meta).unwrap_or_else(|_| json!({})),
            usage_count: None,
            view_count: None,
            last_used_at: None,
            version_id: Some(v.id.clone()),
            major_version: Some(v.major_version),
            is_deployed: Some(v.id == s.current_version_id),
            version_created_at: Some(wire::time::v1(v.created_at)),
            creator: creator.map(crate::agents::creator_payload),
        }
    }

    /// SK1 (and G11 with `agent_id`).
    pub async fn list_skills(&self, caller: &Caller, q: &Query) -> Result<SkillListResponse, ApiError> {
        let page_size = q.page_size()?;
        let sort = q.str("sort_order").unwrap_or("newest");
        if !["newest", "oldest", "name_asc", "name_desc"].contains(&sort) {
            return Err(ApiError::new(ErrorCode::InvalidSort, "sort_order must be newest, oldest, name_asc or name_desc.").param("sort_order"));
        }
        let agent_id = q.str("agent_id");
        let (scope, ids) = match agent_id {
            Some(a) => (SkillScope::Readable, Some(self.visible_agent(caller, a).await?.config.skill_ids)),
            None => (
                match &caller.scope {
                    Scope::Unscoped => SkillScope::Personal,
                    Scope::Team(t) => SkillScope::Team(t.clone()),
                },
                None,
            ),
        };
        let filter = SkillFilter {
            organization_id: caller.user.organization_id.clone(),
            reader: caller.reader(),
            scope,
            ids,
            creator_user_id: q.str("creator_user_id").map(str::to_string),
        };
        let mut rows = if q.str("related_server_id").is_some() { vec![] } else { self.store.list_skills(&filter).await.map_err(db)? };
        let search = q.str("search_query").map(str::to_lowercase);
        if let Some(needle) = &search {
            rows.retain(|(_, v)| v.name.to_lowercase().contains(needle) || v.description.to_lowercase().contains(needle));
        }
        let total = rows.len() as i64;
        let binding = format!(
            "{}|{:?}|{}|{}|{}|{sort}",
            caller.user.id,
            caller.scope,
            agent_id.unwrap_or(""),
            search.as_deref().unwrap_or(""),
            q.str("creator_user_id").unwrap_or("")
        );
        let desc = matches!(sort, "newest" | "name_desc");
        let by_name = sort.starts_with("name");
        let (page, next) = self.paginate(
            PageRequest { route: "SK1", binding, page_size, cursor: q.str("cursor"), default_page_size: Some(50) },
            rows,
            |(s, v)| (if by_name { SortVal::Str(v.name.to_lowercase()) } else { SortVal::Int(s.updated_at) }, s.id.clone()),
            desc,
        )?;
        let creators: Vec<String> = page.iter().map(|(s, _)| s.creator_user_id.clone()).collect();
        let users: HashMap<String, store::User> = self.store.users_by_ids(&creators).await.map_err(db)?.into_iter().map(|u| (u.id.clone(), u)).collect();
        let mut skills = Vec::with_capacity(page.len());
        for (s, v) in &page {
            let files = self.store.skill_files(&v.id).await.map_err(db)?;
            skills.push(self.skill_view(s, v, &files, users.get(&s.creator_user_id)));
        }
        Ok(SkillListResponse { skills, next_cursor: next, total_count: Some(total) })
    }

    /// `{public_url}/files/v1/skills/{id}/versions/{vid}/{name}.zip?exp&kid&sig`.
    fn signed_skill_url(&self, s: &SkillRecord, v: &SkillVersionRecord, filename: &str) -> String {
        let path = format!("/files/v1/skills/{}/versions/{}/{}", s.id, v.id, utf8_percent_encode(filename, SEGMENT));
        let exp = self.clock.now_secs() + self.config.signed_url_ttl_secs as i64;
        let kid = self.signer.current_kid().to_string();
        let (_, sig) = self.signer.sign(format!("GET\n{path}\n{exp}\n{kid}").as_bytes());
        format!("{}{path}?exp={exp}&kid={kid}&sig={sig}", self.config.public_url)
    }

    /// SK4.
    pub async fn skill_download(&self, caller: &Caller, id: &str, q: &Query) -> Result<SkillDownloadResponse, ApiError> {
        let (s, _) = self.skill_with_rights(caller, id).await?;
        let want = q.str("version_id").unwrap_or(&s.current_version_id).to_string();
        let v = self
            .store
            .skill_version(&s.id, &want)
            .await
            .map_err(db)?
            .ok_or_else(|| ApiError::new(ErrorCode::SkillVersionNotFound, format!("Version {want} of skill {id} was not found.")).param("version_id"))?;
        let filename = format!("{}.zip", bundle::install_name(&v.name, &s.id));
        let url = self.signed_skill_url(&s, &v, &filename);
        Ok(SkillDownloadResponse {
            download_url: url,
            filename,
            media_type: wire::skills::ZIP_MEDIA_TYPE.into(),
            size: None,
            id: s.id.clone(),
            version_id: Some(v.id.clone()),
            major_version: Some(v.major_version),
        })
    }

    /// The files a verified signed SK4 URL names; a deleted skill is 404.
    pub async fn skill_version_for_download(&self, skill_id: &str, version_id: &str) -> Result<(SkillVersionRecord, Vec<SkillFileRecord>), ApiError> {
        let s = self.store.skill(skill_id).await.map_err(db)?.filter(|s| s.deleted_at.is_none()).ok_or_else(|| skill_not_found(skill_id))?;
        let v = self.store.skill_version(&s.id, version_id).await.map_err(db)?.ok_or_else(|| skill_not_found(skill_id))?;
        let files = self.store.skill_files(&v.id).await.map_err(db)?;
        Ok((v, files))
    }

    /// SK5.
    pub async fn delete_skill(&self, caller: &Caller, id: &str) -> Result<SkillDeleteResponse, ApiError> {
        let s = self.admin_skill(caller, id).await?;
        if !self.store.delete_skill(&s.id, self.now()).await.map_err(db)? {
            return Err(skill_not_found(id));
        }
        Ok(SkillDeleteResponse { deleted: true })
    }

    async fn skill_item_access(&self, s: &SkillRecord) -> Result<ItemAccess, ApiError> {
        let grants = self.store.skill_grants(&s.id).await.map_err(db)?;
        self.access_from_grants(grants, s.team_id.is_some()).await
    }

    /// SK6.
    pub async fn skill_access(&self, caller: &Caller, id: &str) -> Result<ItemAccessResponse, ApiError> {
        let s = self.admin_skill(caller, id).await?;
        Ok(ItemAccessResponse { access: self.skill_item_access(&s).await? })
    }

    /// SK7: person, team and organization grants (`viewer` reads, `editor` also updates);
    /// public links are not available.
    pub async fn change_skill_access(&self, caller: &Caller, id: &str, req: &AccessChangeRequest) -> Result<ItemAccessChangeResponse, ApiError> {
        crate::sessions::access::require_one_change(req)?;
        let s = self.admin_skill(caller, id).await?;
        if let Some(link) = &req.link {
            if link.mode != LinkMode::None {
                return Err(ApiError::not_implemented("Public skill links").param("link.mode"));
            }
        }
        let (upsert, remove) = self.grant_changes(caller, req).await?;
        self.store.change_skill_grants(&s.id, &upsert, &remove).await.map_err(db)?;
        Ok(ItemAccessChangeResponse { access: self.skill_item_access(&s).await?, notified: vec![] })
    }

    /// G10's changes to an agent's skill list: every attached id must be a skill the
    /// caller may read. Returns (attached, detached, already attached, already detached).
    #[allow(clippy::type_complexity)]
    pub(crate) async fn change_skill_ids(
        &self,
        caller: &Caller,
        ids: &mut Vec<String>,
        attach: &[String],
        detach: &[String],
    ) -> Result<(Vec<String>, Vec<String>, Vec<String>, Vec<String>), ApiError> {
        let (mut attached, mut detached, mut already_attached, mut already_detached) = (vec![], vec![], vec![], vec![]);
        for (i, id) in attach.iter().enumerate() {
            if ids.contains(id) {
                if !already_attached.contains(id) {
                    already_attached.push(id.clone());
                }
                continue;
            }
            self.readable_skill(caller, id).await.map_err(|e| e.param(format!("attach[{i}]")))?;
            ids.push(id.clone());
            attached.push(id.clone());
        }
        for id in detach {
            match ids.iter().position(|x| x == id) {
                Some(p) => {
                    ids.remove(p);
                    detached.push(id.clone());
                }
                None if !detached.contains(id) && !already_detached.contains(id) => already_detached.push(id.clone()),
                None => {}
            }
        }
        if ids.len() > MAX_AGENT_SKILLS {
            return Err(ApiError::invalid_request("attach", format!("An agent has at most {MAX_AGENT_SKILLS} skills.")));
        }
        Ok((attached, detached, already_attached, already_detached))
    }

    /// The current versions of an agent's live skills, in attachment order.
    pub async fn agent_skills(&self, agent: &AgentRecord) -> Vec<(SkillRecord, SkillVersionRecord)> {
        let mut out = Vec::new();
        for id in &agent.config.skill_ids {
            let Ok(Some(s)) = self.store.skill(id).await else { continue };
            if s.deleted_at.is_some() {
                continue;
            }
            if let Ok(Some(v)) = self.store.skill_version(&s.id, &s.current_version_id).await {
                out.push((s, v));
            }
        }
        out
    }
}

fn too_large(path: &str, limit: u64) -> ApiError {
    ApiError::new(ErrorCode::FileTooLarge, format!("The file {path:?} is larger than {limit} bytes.")).param("files")
}

/// The 413 for a part that passed the limit while it was being read.
pub fn file_too_large(name: &str, limit: u64) -> ApiError {
    too_large(name, limit)
}

/// Most instruction text of one skill put in the system prompt (the rest stays readable
/// with `read_skill_file`).
const MAX_PROMPT_INSTRUCTIONS: usize = 16 * 1024;

/// The system-prompt section of an agent's skills: for each, its name, id, description
/// and SKILL.md instructions. `None` when no live skill is attached. Read once at the
/// start of each run (`runtime::agent_loop::execute`).
pub async fn prompt_section(engine: &Engine, agent: &AgentRecord) -> Option<String> {
    if agent.config.skill_ids.is_empty() {
        return None;
    }
    let skills = engine.agent_skills(agent).await;
    if skills.is_empty() {
        return None;
    }
    let mut out = format!(
        "Skills: you have {} skill(s). Follow a skill's instructions when the task matches its description. \
         Read the other files of a skill with the {} tool (arguments: skill = its name or id, path = the file's path).",
        skills.len(),
        tool::READ_SKILL_FILE
    );
    for (s, v) in &skills {
        let mut instructions: String = v.instructions.chars().take(MAX_PROMPT_INSTRUCTIONS).collect();
        if instructions.len() < v.instructions.len() {
            instructions.push_str("\n[… truncated; read SKILL.md with read_skill_file for the rest]");
        }
        out.push_str(&format!("\n\n## Skill: {} (id {})\n{}\n\n{}", v.name, s.id, v.description, instructions));
    }
    Some(out)
}

impl Engine {
    /// G10: `attach` and/or `detach` skill ids; a change is a new agent version.
    /// Idempotent: ids already in the wanted state are reported, not refused.
    pub async fn update_agent_skills(
        &self,
        caller: &Caller,
        id: &str,
        req: wire::skills::AgentSkillsRequest,
    ) -> Result<wire::skills::AgentSkillsResponse, ApiError> {
        if req.attach.is_none() && req.detach.is_none() {
            return Err(ApiError::invalid_request("attach", "Send attach or detach: a list of skill ids."));
        }
        let attach = req.attach.unwrap_or_default();
        let detach = req.detach.unwrap_or_default();
        // A concurrent change of the agent is retried on the new version (the request
        // says what to add and remove, not a whole list).
        let mut tries = 0;
        loop {
            tries += 1;
            let cur = self.visible_agent(caller, id).await?;
            if !self.can_update_agent(caller, &cur) {
                return Err(crate::agents::permission_denied("update"));
            }
            let mut cfg = cur.config.clone();
            let (attached, detached, already_attached, already_detached) = self.change_skill_ids(caller, &mut cfg.skill_ids, &attach, &detach).await?;
            match self.commit_agent_change(caller, &cur, None, cfg, cur.team_id.clone(), cur.is_active).await {
                Ok(next) => {
                    return Ok(wire::skills::AgentSkillsResponse {
                        agent_id: next.id.clone(),
                        skill_ids: next.config.skill_ids.clone(),
                        attached,
                        detached,
                        already_attached,
                        already_detached,
                        version: next.version,
                    })
                }
                Err(e) if e.code == "agent_version_conflict" && tries < 5 => continue,
                Err(e) => return Err(e),
            }
        }
    }
}
