//! SY1/SY2: the desired skill set of `gumloop sync` for one organization: every live
//! skill the acting user may read there, at its current version. The plan carries the
//! manifest hash; the bundle is a ZIP of `gumloop-sync-manifest.json` plus each skill's
//! files under `<install_name>/` (layout and hashes per the SDK's `gumloop/sync`).

use std::collections::HashSet;

use store::{SkillFilter, SkillRecord, SkillScope, SkillVersionRecord};
use wire::skills::{CliSyncBundleManifest, CliSyncBundleSkill, CliSyncLimits, CliSyncManifest, CliSyncOrganization, CliSyncPlanResponse, CliSyncRequest};
use wire::{ApiError, ErrorCode};

use super::bundle;
use crate::{db, Caller, Engine};

/// An SY2 bundle before zipping: the manifest file and `(entry name, blob key)` pairs.
pub struct SyncBundle {
    pub manifest_json: Vec<u8>,
    pub entries: Vec<(String, String)>,
}

struct Desired {
    organization: CliSyncOrganization,
    manifest: CliSyncManifest,
    skills: Vec<(CliSyncBundleSkill, SkillRecord, SkillVersionRecord)>,
}

impl Engine {
    async fn desired_skills(&self, caller: &Caller, req: &CliSyncRequest) -> Result<Desired, ApiError> {
        let org_id = caller.user.organization_id.clone();
        if let Some(o) = req.organization_id.as_deref().filter(|o| *o != org_id) {
            return Err(ApiError::new(ErrorCode::OrganizationNotFound, format!("Organization {o} was not found.")).param("organization_id"));
        }
        let org_name = self.store.organization(&org_id).await.map_err(db)?.map(|o| o.name).filter(|n| !n.trim().is_empty()).unwrap_or_else(|| org_id.clone());
        let filter = SkillFilter { organization_id: org_id.clone(), reader: caller.reader(), scope: SkillScope::Readable, ids: None, creator_user_id: None };
        let mut rows = self.store.list_skills(&filter).await.map_err(db)?;
        rows.sort_by(|a, b| a.0.id.as_bytes().cmp(b.0.id.as_bytes()));
        let limits = CliSyncLimits::V1;
        let mut used: HashSet<String> = HashSet::new();
        let mut total: i64 = 0;
        let mut skills = Vec::new();
        for (s, v) in rows {
            if v.file_count > limits.files_per_skill || total + v.size > limits.total_uncompressed_bytes {
                tracing::warn!(skill_id = %s.id, "a skill is left out of the sync bundle: it would pass the v1 limits");
                continue;
            }
            total += v.size;
            let base = bundle::install_name(&v.name, &s.id);
            let mut name = base.clone();
            let mut n = 1;
            // Case-insensitive: two folders differing in case clash on macOS and Windows.
            while used.contains(&name.to_lowercase()) {
                n += 1;
                name = format!("{base}-{n}");
            }
            used.insert(name.to_lowercase());
            let entry =
                CliSyncBundleSkill { skill_id: s.id.clone(), install_name: name, published_version_id: v.id.clone(), content_hash: v.content_hash.clone() };
            skills.push((entry, s, v));
        }
        let entries: Vec<CliSyncBundleSkill> = skills.iter().map(|(e, _, _)| e.clone()).collect();
        let manifest =
            CliSyncManifest { algorithm: "sha256".into(), format_version: 1, hash: bundle::manifest_hash(&entries), skill_count: entries.len() as i64 };
        Ok(Desired { organization: CliSyncOrganization { organization_id: org_id, organization_name: org_name }, manifest, skills })
    }

    /// SY1.
    pub async fn sync_plan(&self, caller: &Caller, req: &CliSyncRequest) -> Result<CliSyncPlanResponse, ApiError> {
        let d = self.desired_skills(caller, req).await?;
        let skill_count = d.manifest.skill_count;
        Ok(CliSyncPlanResponse { organization: d.organization, manifest: d.manifest, limits: CliSyncLimits::V1, skill_count })
    }

    /// SY2.
    pub async fn sync_bundle(&self, caller: &Caller, req: &CliSyncRequest) -> Result<SyncBundle, ApiError> {
        let d = self.desired_skills(caller, req).await?;
        let mut entries = Vec::new();
        for (e, _, v) in &d.skills {
            for f in self.store.skill_files(&v.id).await.map_err(db)? {
                entries.push((format!("{}/{}", e.install_name, f.path), f.blob_key));
            }
        }
        let manifest = CliSyncBundleManifest {
            organization: d.organization,
            manifest: d.manifest,
            limits: CliSyncLimits::V1,
            skills: d.skills.into_iter().map(|(e, _, _)| e).collect(),
        };
        let manifest_json = serde_json::to_vec(&manifest).map_err(|_| ApiError::internal())?;
        Ok(SyncBundle { manifest_json, entries })
    }
}
