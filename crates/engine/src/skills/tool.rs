//! `read_skill_file`: the read-only built-in through which an agent reads the files of
//! the skills attached to it.

use std::sync::Arc;

use async_trait::async_trait;
use futures::StreamExt;
use serde_json::{json, Value};
use store::{AgentRecord, Store};
use tools::{Tool, ToolContext, ToolError};

use crate::Engine;

pub const READ_SKILL_FILE: &str = "read_skill_file";
/// Most bytes of one file returned to the model.
const MAX_READ_BYTES: u64 = 256 * 1024;

/// Reads files of one agent's skills (current versions; deleted skills are gone).
pub struct ReadSkillFile {
    store: Arc<dyn Store>,
    blobs: Option<blobs::BlobStore>,
    skill_ids: Vec<String>,
}

/// The tool for an agent with skills; `None` without.
pub fn for_agent(engine: &Engine, agent: &AgentRecord) -> Option<Arc<dyn Tool>> {
    if agent.config.skill_ids.is_empty() {
        return None;
    }
    Some(Arc::new(ReadSkillFile { store: engine.store.clone(), blobs: engine.blobs.clone(), skill_ids: agent.config.skill_ids.clone() }))
}

impl ReadSkillFile {
    async fn read(&self, skill: &str, path: Option<&str>) -> Result<Value, String> {
        let db = |e: store::StoreError| {
            tracing::error!(error = %e, "reading a skill failed");
            "reading the skill failed".to_string()
        };
        let mut found = None;
        for id in &self.skill_ids {
            let Some(s) = self.store.skill(id).await.map_err(db)? else { continue };
            if s.deleted_at.is_some() {
                continue;
            }
            if s.id == skill || s.name.eq_ignore_ascii_case(skill.trim()) {
                found = Some(s);
                break;
            }
        }
        let s = found.ok_or_else(|| format!("no skill {skill:?} is attached to this agent"))?;
        let files = self.store.skill_files(&s.current_version_id).await.map_err(db)?;
        let listing: Vec<Value> = files.iter().map(|f| json!({"path": f.path, "size": f.size, "media_type": f.media_type})).collect();
        let Some(path) = path.map(str::trim).filter(|p| !p.is_empty()) else {
            return Ok(json!({"skill_id": s.id, "name": s.name, "files": listing}));
        };
        let path = path.trim_start_matches("./");
        let f = files.iter().find(|f| f.path == path).ok_or_else(|| {
            let names: Vec<&str> = files.iter().map(|f| f.path.as_str()).collect();
            format!("skill {} has no file {path:?}; its files: {}", s.name, names.join(", "))
        })?;
        let blobs = self.blobs.as_ref().ok_or("skill storage is not configured")?;
        let range = ((f.size.max(0) as u64) > MAX_READ_BYTES).then_some(0..MAX_READ_BYTES);
        let mut read = blobs.get(&f.blob_key, range).await.map_err(|e| format!("reading the file failed: {e}"))?;
        let mut bytes = Vec::new();
        while let Some(chunk) = read.stream.next().await {
            bytes.extend_from_slice(&chunk.map_err(|e| format!("reading the file failed: {e}"))?);
        }
        let truncated = (f.size as u64) > MAX_READ_BYTES;
        let content = match String::from_utf8(bytes) {
            Ok(t) => t,
            // A cut inside a multi-byte character at the limit is not binary content.
            Err(e) if truncated && e.utf8_error().error_len().is_none() => {
                let valid = e.utf8_error().valid_up_to();
                let mut b = e.into_bytes();
                b.truncate(valid);
                String::from_utf8(b).unwrap_or_default()
            }
            Err(_) => return Err(format!("{path} is a binary file ({} bytes, {}); only text files can be read", f.size, f.media_type)),
        };
        Ok(json!({"skill_id": s.id, "name": s.name, "path": f.path, "media_type": f.media_type, "size": f.size, "truncated": truncated, "content": content}))
    }
}

#[async_trait]
impl Tool for ReadSkillFile {
    fn name(&self) -> &str {
        READ_SKILL_FILE
    }
    fn description(&self) -> &str {
        "Read a text file of one of your skills (e.g. SKILL.md, scripts, references). Without path, lists the skill's files."
    }
    fn parameters(&self) -> Value {
        json!({
            "type": "object",
            "properties": {
                "skill": {"type": "string", "description": "The skill's name or id"},
                "path": {"type": "string", "description": "Path of the file inside the skill, e.g. SKILL.md; omit to list the files"}
            },
            "required": ["skill"]
        })
    }
    fn read_only(&self) -> bool {
        true
    }
    async fn call(&self, args: Value, _ctx: &ToolContext) -> Result<Value, ToolError> {
        let skill = args.get("skill").and_then(Value::as_str).ok_or_else(|| ToolError::new("invalid arguments: skill (string) is required"))?;
        let path = args.get("path").and_then(Value::as_str);
        self.read(skill, path).await.map_err(ToolError::new)
    }
}
