//! Agents (API.md §8.6 G1–G9): validation, visibility, rights, versions.

use std::collections::HashMap;

use serde_json::{json, Map, Value};
use store::{AgentConfig, AgentRecord, AgentSnapshot, AgentVersionRecord, StoreError, User};
use wire::agents::{
    Agent, AgentAbilitiesResponse, AgentComposition, AgentDeleteResponse, AgentIncognito, AgentIncognitoRequest, AgentVersion, AgentVersionChanges,
    AgentVersionResponse, AgentVersionSummary, AgentVersionsResponse, CreatorPayload,
};
use wire::{ApiError, ErrorCode};

use crate::input::{self, Query};
use crate::pagination::{PageRequest, SortVal};
use crate::{db, validate, Caller, Engine, KeyKind, Scope};

/// Reserved platform aliases (later): not agents of this server.
const RESERVED_AGENT_IDS: &[&str] = &["gumball", "analytics"];

/// Tool `type` → ability key (§7.4).
const ABILITY_TOOLS: &[(&str, &str)] = &[
    ("web_search", "web_search"),
    ("web_fetch", "web_fetch"),
    ("image_generator", "image_generation"),
    ("interaction_search", "search_past_conversations"),
    ("human_input", "ask_question"),
    ("browser", "browser"),
    ("manage_evals", "manage_evaluations"),
];

/// Extra ability fields carried in the tool entry's `metadata`.
fn ability_extra_fields(ability: &str) -> &'static [&'static str] {
    match ability {
        "web_search" | "web_fetch" => &["provider"],
        "image_generation" => &["model"],
        "browser" => &["proxy_country", "profile_id"],
        _ => &[],
    }
}

pub fn agent_not_found(id: &str) -> ApiError {
    ApiError::new(ErrorCode::AgentNotFound, format!("Agent {id} was not found.")).param("agent_id")
}

pub(crate) fn permission_denied(what: &str) -> ApiError {
    ApiError::new(ErrorCode::PermissionDenied, format!("You may not {what} this agent; ask its creator or a team admin."))
}

pub fn creator_payload(u: &User) -> CreatorPayload {
    CreatorPayload { id: Some(u.id.clone()), first_name: u.first_name.clone(), last_name: u.last_name.clone(), email: u.email.clone(), profile_picture: None }
}

/// Abilities derived from the tools list and metadata.
pub fn abilities(cfg: &AgentConfig) -> Value {
    let mut out = Map::new();
    for t in &cfg.tools {
        let Some(ty) = t.get("type").and_then(Value::as_str) else {
            continue;
        };
        let Some((_, ability)) = ABILITY_TOOLS.iter().find(|(tt, _)| *tt == ty) else {
            continue;
        };
        let enabled = !t.get("is_disabled").and_then(Value::as_bool).unwrap_or(false);
        let mut a = Map::new();
        a.insert("enabled".into(), json!(enabled));
        for f in ability_extra_fields(ability) {
            if let Some(v) = t.get("metadata").and_then(|m| m.get(*f)).filter(|v| v.is_string()) {
                a.insert((*f).into(), v.clone());
            }
        }
        out.insert((*ability).into(), Value::Object(a));
    }
    if let Some(mode) = cfg.metadata.get("tool_discovery").and_then(|s| s.get("mode")).and_then(Value::as_str) {
        out.insert("tool_discovery".into(), json!({"mode": mode}));
    }
    Value::Object(out)
}

/// Tools as returned: secret references stripped.
pub fn public_tools(tools: &[Value]) -> Vec<Value> {
    tools
        .iter()
        .map(|t| {
            let mut t = t.clone();
            if let Some(o) = t.as_object_mut() {
                o.remove("secret_id");
            }
            t
        })
        .collect()
}

/// Applies an AgentAbilities object (G8, and `abilities` on G2/G4): each ability sent
/// becomes or updates its tool entry (§7.4); `prefix` is the error path's prefix.
fn apply_abilities(cfg: &mut AgentConfig, abilities: &Map<String, Value>, prefix: &str) -> Result<(), ApiError> {
    for (key, val) in abilities {
        if val.is_null() {
            continue;
        }
        let Some(obj) = val.as_object() else {
            return Err(ApiError::invalid_request(&format!("{prefix}{key}"), format!("{prefix}{key} must be an object.")));
        };
        if key == "tool_discovery" {
            let mode = obj.get("mode").and_then(Value::as_str);
            if !matches!(mode, Some("auto" | "enabled")) {
                return Err(ApiError::invalid_request(&format!("{prefix}tool_discovery.mode"), "tool_discovery.mode must be auto or enabled."));
            }
            let mut patch = Map::new();
            patch.insert("tool_discovery".into(), json!({"mode": mode}));
            validate::merge_patch(&mut cfg.metadata, &patch);
            continue;
        }
        let Some((tool_type, _)) = ABILITY_TOOLS.iter().find(|(_, a)| a == key) else {
            // Unknown ability keys are ignored like unknown fields.
            continue;
        };
        let enabled = match obj.get("enabled") {
            Some(Value::Bool(b)) => *b,
            Some(v) => {
                return Err(ApiError::invalid_request(&format!("{prefix}{key}.enabled"), format!("{key}.enabled must be a boolean, not {}.", input::kind(v))))
            }
            None => return Err(ApiError::invalid_request(&format!("{prefix}{key}.enabled"), format!("{key}.enabled is required."))),
        };
        let pos = cfg.tools.iter().position(|t| t.get("type").and_then(Value::as_str) == Some(tool_type));
        let mut entry = pos.map(|p| cfg.tools[p].clone()).unwrap_or_else(|| json!({"type": tool_type}));
        if let Some(e) = entry.as_object_mut() {
            e.insert("is_disabled".into(), json!(!enabled));
            let meta = e.entry("metadata").or_insert_with(|| json!({}));
            if !meta.is_object() {
                *meta = json!({});
            }
            for f in ability_extra_fields(key) {
                if let Some(v) = obj.get(*f) {
                    if !v.is_null() && !v.is_string() {
                        return Err(ApiError::invalid_request(&format!("{prefix}{key}.{f}"), format!("{key}.{f} must be a string.")));
                    }
                    if let Some(mo) = meta.as_object_mut() {
                        if v.is_null() {
                            mo.remove(*f);
                        } else {
                            mo.insert((*f).into(), v.clone());
                        }
                    }
                }
            }
            if meta.as_object().is_some_and(Map::is_empty) {
                e.remove("metadata");
            }
        }
        match pos {
            Some(p) => cfg.tools[p] = entry,
            None => cfg.tools.push(entry),
        }
    }
    Ok(())
}

fn composition(cfg: &AgentConfig) -> AgentComposition {
    AgentComposition {
        complete: true,
        schema_version: 1,
        name: cfg.name.clone(),
        description: cfg.description.clone(),
        model_name: cfg.model_name.clone(),
        system_prompt: cfg.system_prompt.clone(),
        tools: public_tools(&cfg.tools),
        resources: cfg.resources.clone(),
        metadata: Value::Object(cfg.metadata.clone()),
        skill_ids: cfg.skill_ids.clone(),
        knowledge_sources: cfg.knowledge_sources.clone(),
    }
}

/// Which optional timestamps an Agent carries.
#[derive(Clone, Copy, Default)]
pub struct AgentView {
    pub last_used: bool,
    pub last_updated: bool,
}

const SUMMARY_FIELDS: &[&str] = &["id", "name", "model_name", "team_id", "is_active", "created_at", "last_used_at", "last_updated_at", "creator"];

fn check_name(raw: &str, param: &str) -> Result<String, ApiError> {
    let name = raw.trim();
    if name.is_empty() || name.chars().count() > 256 {
        return Err(ApiError::new(ErrorCode::InvalidName, format!("{param} must be 1 to 256 characters after trimming.")).param(param));
    }
    Ok(name.to_string())
}

impl Engine {
    pub fn agent_to_wire(&self, rec: &AgentRecord, creator: Option<&User>, view: AgentView) -> Agent {
        let cfg = &rec.config;
        let ts = |v: Option<i64>| Some(v.map(|t| Value::String(wire::time::v1(t))).unwrap_or(Value::Null));
        Agent {
            id: rec.id.clone(),
            name: cfg.name.clone(),
            description: cfg.description.clone(),
            system_prompt: cfg.system_prompt.clone(),
            model_name: Some(cfg.model_name.clone()),
            folder_id: cfg.folder_id.clone(),
            team_id: rec.team_id.clone(),
            is_active: rec.is_active,
            tools: public_tools(&cfg.tools),
            resources: cfg.resources.clone(),
            skill_ids: cfg.skill_ids.clone(),
            abilities: abilities(cfg),
            incognito: AgentIncognito { enforced: cfg.incognito },
            knowledge_sources: None,
            triggers: None,
            version: rec.version,
            metadata: Value::Object(cfg.metadata.clone()),
            kind: "custom".into(),
            created_at: wire::time::v1(rec.created_at),
            last_used_at: if view.last_used { ts(rec.last_used_at) } else { None },
            last_updated_at: if view.last_updated { ts(Some(rec.last_updated_at)) } else { None },
            active_trigger_count: 0,
            creator: creator.map(creator_payload),
        }
    }

    async fn creators(&self, ids: impl Iterator<Item = &String>) -> Result<HashMap<String, User>, ApiError> {
        let mut uniq: Vec<String> = ids.cloned().collect();
        uniq.sort();
        uniq.dedup();
        Ok(self.store.users_by_ids(&uniq).await.map_err(db)?.into_iter().map(|u| (u.id.clone(), u)).collect())
    }

    async fn agent_with_creator(&self, rec: &AgentRecord, view: AgentView) -> Result<Agent, ApiError> {
        let creator = self.store.user(&rec.creator_user_id).await.map_err(db)?;
        let mut agent = self.agent_to_wire(rec, creator.as_ref(), view);
        agent.active_trigger_count = self.trigger_counts(std::slice::from_ref(&rec.id)).await?.get(&rec.id).copied().unwrap_or(0);
        Ok(agent)
    }

    /// Enabled triggers per agent (agents without any are absent).
    async fn trigger_counts(&self, ids: &[String]) -> Result<HashMap<String, i64>, ApiError> {
        if ids.is_empty() {
            return Ok(HashMap::new());
        }
        let mut out = HashMap::new();
        // In chunks: the store binds one parameter per id.
        for chunk in ids.chunks(500) {
            out.extend(self.store.active_trigger_counts(chunk).await.map_err(db)?);
        }
        Ok(out)
    }

    /// The agent if the caller may see it (§2.5): absent, deleted, retired and foreign
    /// agents are all `404 agent_not_found`.
    pub async fn visible_agent(&self, caller: &Caller, id: &str) -> Result<AgentRecord, ApiError> {
        if RESERVED_AGENT_IDS.contains(&id) {
            return Err(agent_not_found(id));
        }
        match self.store.agent(id).await.map_err(db)? {
            Some(a) if a.deleted_at.is_none() && a.is_active && caller.can_see(a.team_id.as_deref(), &a.owner_user_id) => Ok(a),
            _ => Err(agent_not_found(id)),
        }
    }

    /// Update/delete right: personal agent owner; team agent creator or team admin.
    pub fn can_update_agent(&self, caller: &Caller, a: &AgentRecord) -> bool {
        match &a.team_id {
            None => a.owner_user_id == caller.user.id,
            Some(t) => a.creator_user_id == caller.user.id || caller.team_role(t) == Some("admin"),
        }
    }

    async fn check_model(&self, model: &str, param: &str) -> Result<(), ApiError> {
        if self.model_accepted(model).await {
            Ok(())
        } else {
            Err(ApiError::new(ErrorCode::InvalidModel, format!("Model {model:?} is not in this server's catalogue; GET /models lists the accepted names."))
                .param(param))
        }
    }

    /// G1.
    pub async fn list_agents(&self, caller: &Caller, q: &Query) -> Result<Value, ApiError> {
        let page_size = q.page_size()?;
        let sort = q.str("sort_order").unwrap_or("newest");
        if !["newest", "oldest", "name_asc", "name_desc"].contains(&sort) {
            return Err(ApiError::new(ErrorCode::InvalidSort, "sort_order must be newest, oldest, name_asc or name_desc.").param("sort_order"));
        }
        let summary = q.bool("summary")?.unwrap_or(false);
        let view = AgentView {
            last_used: q.bool("include_last_used")?.unwrap_or(false) || summary,
            last_updated: q.bool("include_last_updated")?.unwrap_or(false) || summary,
        };
        let has_triggers = q.bool("has_triggers")?;
        let search = q.str("search").map(str::to_lowercase);
        let creator = q.str("creator");
        let tool = q.str("tool");
        let flow = q.str("flow");

        let mut agents = self.store.agents_in_tenant(&caller.home_tenant()).await.map_err(db)?;
        let with_triggers = match has_triggers {
            Some(_) => self.trigger_counts(&agents.iter().map(|a| a.id.clone()).collect::<Vec<_>>()).await?,
            None => HashMap::new(),
        };
        agents.retain(|a| {
            search.as_ref().is_none_or(|s| a.config.name.to_lowercase().contains(s))
                && creator.is_none_or(|c| a.creator_user_id == c)
                && has_triggers.is_none_or(|want| want == with_triggers.get(&a.id).is_some_and(|n| *n > 0))
                && tool
                    .is_none_or(|t| a.config.tools.iter().any(|x| ["type", "name", "server_id"].iter().any(|k| x.get(*k).and_then(Value::as_str) == Some(t))))
                && flow.is_none_or(|f| a.config.tools.iter().any(|x| x.get("saved_item_id").and_then(Value::as_str) == Some(f)))
        });

        let binding = format!(
            "{:?}|{}|{}|{}|{}|{}|{}|{}",
            caller.scope,
            caller.user.id,
            search.as_deref().unwrap_or(""),
            creator.unwrap_or(""),
            tool.unwrap_or(""),
            flow.unwrap_or(""),
            has_triggers.map(|b| b.to_string()).unwrap_or_default(),
            sort
        );
        let desc = matches!(sort, "newest" | "name_desc");
        let by_name = sort.starts_with("name");
        let (page, next) = self.paginate(
            PageRequest { route: "G1", binding, page_size, cursor: q.str("cursor"), default_page_size: None },
            agents,
            |a| (if by_name { SortVal::Str(a.config.name.to_lowercase()) } else { SortVal::Int(a.created_at) }, a.id.clone()),
            desc,
        )?;
        let creators = self.creators(page.iter().map(|a| &a.creator_user_id)).await?;
        let counts = self.trigger_counts(&page.iter().map(|a| a.id.clone()).collect::<Vec<_>>()).await?;
        let items: Vec<Value> = page
            .iter()
            .map(|a| {
                let mut agent = self.agent_to_wire(a, creators.get(&a.creator_user_id), view);
                agent.active_trigger_count = counts.get(&a.id).copied().unwrap_or(0);
                let mut v = serde_json::to_value(agent).unwrap_or(Value::Null);
                if summary {
                    if let Some(o) = v.as_object_mut() {
                        o.retain(|k, _| SUMMARY_FIELDS.contains(&k.as_str()));
                    }
                }
                v
            })
            .collect();
        Ok(json!({"agents": items, "next_cursor": next}))
    }

    /// G2. `query_team` is the `team_id` query value; the body's wins.
    pub async fn create_agent(&self, caller: &Caller, body: Value) -> Result<Agent, ApiError> {
        let m = input::object(body)?;
        let name = match m.get("name") {
            None | Some(Value::Null) => return Err(ApiError::new(ErrorCode::InvalidName, "name is required.").param("name")),
            Some(Value::String(s)) => check_name(s, "name")?,
            Some(v) => return Err(ApiError::invalid_request("name", format!("name must be a string, not {}.", input::kind(v)))),
        };
        let model_name = input::opt_str(&m, "model_name", "model_name")?.unwrap_or_else(|| "auto".into());
        self.check_model(&model_name, "model_name").await?;
        let description = input::opt_str(&m, "description", "description")?;
        let system_prompt = input::opt_str(&m, "system_prompt", "system_prompt")?;
        let folder_id = input::opt_str(&m, "folder_id", "folder_id")?;
        let tools = match input::opt_array(&m, "tools", "tools")? {
            Some(t) => validate::tools(t, "tools")?,
            None => vec![],
        };
        let resources = match input::opt_array(&m, "resources", "resources")? {
            Some(r) => validate::resources(r, "resources")?,
            None => vec![],
        };
        let abilities_sent = input::opt_object(&m, "abilities", "abilities")?.cloned();
        let skill_ids = input::opt_array(&m, "skill_ids", "skill_ids")?.map(|a| input::str_list(a, "skill_ids")).transpose()?.unwrap_or_default();
        if !skill_ids.is_empty() {
            return Err(ApiError::not_implemented("Attaching skills").param("skill_ids"));
        }
        if input::opt_array(&m, "knowledge_sources", "knowledge_sources")?.is_some_and(|a| !a.is_empty()) {
            return Err(ApiError::not_implemented("Attaching knowledge sources").param("knowledge_sources"));
        }
        let mut metadata = input::opt_object(&m, "metadata", "metadata")?.cloned().unwrap_or_default();
        validate::strip_nulls(&mut metadata);
        validate::metadata(&metadata, "metadata")?;
        let is_active = input::opt_bool(&m, "is_active", "is_active")?.unwrap_or(true);
        let incognito = input::opt_bool(&m, "incognito", "incognito")?.unwrap_or(false);
        let id = match input::opt_str(&m, "agent_id", "agent_id")? {
            Some(id) if !wire::ids::is_valid_caller_id(&id) => {
                return Err(ApiError::new(ErrorCode::InvalidId, "agent_id must match ^[A-Za-z0-9_-]{1,128}$.").param("agent_id"))
            }
            Some(id) if RESERVED_AGENT_IDS.contains(&id.as_str()) => {
                return Err(ApiError::new(ErrorCode::AgentAlreadyExists, format!("Agent id {id} is reserved.")).param("agent_id"))
            }
            Some(id) => id,
            None => wire::ids::new_id("agt"),
        };
        // Placement: body team_id, else the caller's scope.
        let team_id = match input::opt_str(&m, "team_id", "team_id")?.filter(|t| !t.trim().is_empty()) {
            Some(t) => {
                // The body's team wins over the query scope (the SDK copies the client's
                // team_id into the query and the body).
                let allowed = match &caller.key.kind {
                    KeyKind::Team { team_id } => *team_id == t,
                    KeyKind::Personal { .. } => caller.team_role(&t).is_some(),
                };
                if !allowed {
                    return Err(ApiError::new(ErrorCode::TeamNotFound, format!("Team {t} does not exist or you are not a member.")).param("team_id"));
                }
                Some(t)
            }
            None => match &caller.scope {
                Scope::Team(t) => Some(t.clone()),
                Scope::Unscoped => None,
            },
        };

        let now = self.now();
        let mut config = AgentConfig {
            name,
            description,
            model_name,
            system_prompt,
            tools,
            resources,
            metadata,
            skill_ids,
            knowledge_sources: vec![],
            folder_id,
            incognito,
        };
        if let Some(a) = &abilities_sent {
            apply_abilities(&mut config, a, "abilities.")?;
        }
        let rec = AgentRecord {
            id: id.clone(),
            owner_user_id: caller.user.id.clone(),
            team_id: team_id.clone(),
            creator_user_id: caller.user.id.clone(),
            config: config.clone(),
            version: 1,
            is_active,
            deleted_at: None,
            created_at: now,
            last_updated_at: now,
            last_used_at: None,
        };
        let version = AgentVersionRecord {
            id: wire::ids::new_id("agv"),
            agent_id: id.clone(),
            major_version: 1,
            snapshot: AgentSnapshot { config, team_id, is_active },
            creator_user_id: Some(caller.user.id.clone()),
            created_at: now,
        };
        match self.store.create_agent(&rec, &version).await {
            Ok(()) => {}
            Err(StoreError::Conflict(_)) => {
                return Err(ApiError::new(ErrorCode::AgentAlreadyExists, format!("An agent with id {id} already exists.")).param("agent_id"))
            }
            Err(e) => return Err(db(e)),
        }
        Ok(self.agent_to_wire(&rec, Some(&caller.user), AgentView { last_used: true, last_updated: true }))
    }

    /// G3.
    pub async fn get_agent(&self, caller: &Caller, id: &str) -> Result<Agent, ApiError> {
        let rec = self.visible_agent(caller, id).await?;
        self.agent_with_creator(&rec, AgentView { last_used: true, last_updated: true }).await
    }

    /// Applies a new configuration as the next version, with optimistic concurrency.
    pub(crate) async fn commit_agent_change(
        &self,
        caller: &Caller,
        cur: &AgentRecord,
        expected: Option<i64>,
        config: AgentConfig,
        team_id: Option<String>,
        is_active: bool,
    ) -> Result<AgentRecord, ApiError> {
        let conflict = |v: i64| {
            ApiError::new(ErrorCode::AgentVersionConflict, format!("Agent changed since version {}; re-read it and retry.", expected.unwrap_or(v)))
                .param("version")
                .detail("current_version", v)
        };
        if let Some(v) = expected {
            if v != cur.version {
                return Err(conflict(cur.version));
            }
        }
        let old = AgentSnapshot { config: cur.config.clone(), team_id: cur.team_id.clone(), is_active: cur.is_active };
        let new = AgentSnapshot { config, team_id, is_active };
        if old == new {
            return Ok(cur.clone());
        }
        let now = self.now();
        let mut next = cur.clone();
        next.config = new.config.clone();
        next.team_id = new.team_id.clone();
        next.is_active = new.is_active;
        next.version = cur.version + 1;
        next.last_updated_at = now;
        let version = AgentVersionRecord {
            id: wire::ids::new_id("agv"),
            agent_id: cur.id.clone(),
            major_version: next.version,
            snapshot: new,
            creator_user_id: Some(caller.user.id.clone()),
            created_at: now,
        };
        if !self.store.update_agent(&next, cur.version, &version).await.map_err(db)? {
            // Someone else committed between our read and write.
            let latest = self.store.agent(&cur.id).await.map_err(db)?.ok_or_else(|| agent_not_found(&cur.id))?;
            if latest.deleted_at.is_some() {
                return Err(agent_not_found(&cur.id));
            }
            return Err(conflict(latest.version));
        }
        Ok(next)
    }

    /// G4.
    pub async fn update_agent(&self, caller: &Caller, id: &str, body: Value) -> Result<Agent, ApiError> {
        let m = input::object(body)?;
        let cur = self.visible_agent(caller, id).await?;
        if !self.can_update_agent(caller, &cur) {
            return Err(permission_denied("update"));
        }
        let mut cfg = cur.config.clone();
        if let Some(name) = input::opt_str(&m, "name", "name")? {
            cfg.name = check_name(&name, "name")?;
        }
        if let Some(model) = input::opt_str(&m, "model_name", "model_name")? {
            self.check_model(&model, "model_name").await?;
            cfg.model_name = model;
        }
        if let Some(d) = input::opt_str(&m, "description", "description")? {
            cfg.description = Some(d);
        }
        if let Some(s) = input::opt_str(&m, "system_prompt", "system_prompt")? {
            cfg.system_prompt = Some(s);
        }
        if let Some(t) = input::opt_array(&m, "tools", "tools")? {
            cfg.tools = merge_secret_refs(&cur.config.tools, validate::tools(t, "tools")?);
        }
        if let Some(r) = input::opt_array(&m, "resources", "resources")? {
            cfg.resources = validate::resources(r, "resources")?;
        }
        if let Some(a) = input::opt_object(&m, "abilities", "abilities")? {
            apply_abilities(&mut cfg, a, "abilities.")?;
        }
        if let Some(patch) = input::opt_object(&m, "metadata", "metadata")? {
            let mut merged = cfg.metadata.clone();
            validate::merge_patch(&mut merged, patch);
            validate::strip_nulls(&mut merged);
            validate::metadata(&merged, "metadata")?;
            cfg.metadata = merged;
        }
        let is_active = input::opt_bool(&m, "is_active", "is_active")?;
        let expected = input::opt_int(&m, "version", "version")?;
        let mut team_id = cur.team_id.clone();
        if let Some(t) = input::opt_str(&m, "team_id", "team_id")?.filter(|t| !t.trim().is_empty()) {
            if cur.team_id.as_deref() != Some(t.as_str()) {
                let admin_of_current = match &cur.team_id {
                    None => cur.owner_user_id == caller.user.id,
                    Some(ct) => caller.team_role(ct) == Some("admin"),
                };
                if !admin_of_current
                    || caller.team_role(&t).is_none()
                    || matches!(&caller.scope, Scope::Team(s) if *s != t && cur.team_id.as_deref() != Some(s.as_str()))
                {
                    return Err(permission_denied("move").param("team_id"));
                }
                team_id = Some(t);
            }
        }
        let next = self.commit_agent_change(caller, &cur, expected, cfg, team_id, is_active.unwrap_or(cur.is_active) && cur.is_active).await?;
        self.agent_with_creator(&next, AgentView { last_used: true, last_updated: true }).await
    }

    /// G5.
    pub async fn delete_agent(&self, caller: &Caller, id: &str) -> Result<AgentDeleteResponse, ApiError> {
        if RESERVED_AGENT_IDS.contains(&id) {
            return Err(ApiError::new(ErrorCode::PlatformAgentNotDeletable, format!("{id} is a platform agent and cannot be deleted.")));
        }
        let cur = self.visible_agent(caller, id).await?;
        if !self.can_update_agent(caller, &cur) {
            return Err(permission_denied("delete"));
        }
        if !self.store.delete_agent(id, self.now()).await.map_err(db)? {
            return Err(agent_not_found(id));
        }
        Ok(AgentDeleteResponse { agent_id: id.to_string(), deleted: true })
    }

    async fn configurable_agent(&self, caller: &Caller, id: &str) -> Result<AgentRecord, ApiError> {
        let rec = self.visible_agent(caller, id).await?;
        if !self.can_update_agent(caller, &rec) {
            return Err(ApiError::new(ErrorCode::PermissionDenied, "Reading an agent's versions needs the right to update it."));
        }
        Ok(rec)
    }

    fn version_summary(rec: &AgentVersionRecord, latest: i64, creators: &HashMap<String, User>) -> AgentVersionSummary {
        AgentVersionSummary {
            id: rec.id.clone(),
            agent_id: rec.agent_id.clone(),
            major_version: rec.major_version,
            name: rec.snapshot.config.name.clone(),
            is_deployed: rec.major_version == latest,
            created_at: wire::time::v1(rec.created_at),
            creator: rec.creator_user_id.as_ref().and_then(|c| creators.get(c)).map(creator_payload),
        }
    }

    /// G6.
    pub async fn list_agent_versions(&self, caller: &Caller, id: &str, q: &Query) -> Result<AgentVersionsResponse, ApiError> {
        let page_size = q.page_size()?;
        if q.raw("sort_order").is_some() {
            return Err(ApiError::new(ErrorCode::InvalidSort, "Agent versions are always newest first; remove sort_order.").param("sort_order"));
        }
        let rec = self.configurable_agent(caller, id).await?;
        let versions = self.store.agent_versions(id).await.map_err(db)?;
        let (page, next) = self.paginate(
            PageRequest { route: "G6", binding: id.to_string(), page_size, cursor: q.str("cursor"), default_page_size: Some(20) },
            versions,
            |v| (SortVal::Int(v.major_version), v.id.clone()),
            true,
        )?;
        let creators = self.creators(page.iter().filter_map(|v| v.creator_user_id.as_ref())).await?;
        Ok(AgentVersionsResponse { versions: page.iter().map(|v| Self::version_summary(v, rec.version, &creators)).collect(), next_cursor: next })
    }

    /// G7.
    pub async fn get_agent_version(&self, caller: &Caller, id: &str, version_id: &str) -> Result<AgentVersionResponse, ApiError> {
        let rec = self.configurable_agent(caller, id).await?;
        let v =
            self.store.agent_version(id, version_id).await.map_err(db)?.ok_or_else(|| {
                ApiError::new(ErrorCode::AgentVersionNotFound, format!("Version {version_id} of agent {id} was not found.")).param("version_id")
            })?;
        let creators = self.creators(v.creator_user_id.iter()).await?;
        let changes = if v.major_version > 1 {
            let all = self.store.agent_versions(id).await.map_err(db)?;
            all.iter().find(|p| p.major_version == v.major_version - 1).map(|prev| {
                let (field_changes, tool_changes, skill_changes) = crate::diff::changes(&prev.snapshot, &v.snapshot);
                AgentVersionChanges {
                    base_version_id: prev.id.clone(),
                    attachment_changes_complete: true,
                    field_changes,
                    tool_changes,
                    skill_changes,
                    knowledge_source_changes: vec![],
                }
            })
        } else {
            None
        };
        Ok(AgentVersionResponse {
            version: AgentVersion { summary: Self::version_summary(&v, rec.version, &creators), composition: composition(&v.snapshot.config) },
            changes,
        })
    }

    /// G8: upserts the ability entries sent; others unchanged.
    pub async fn update_abilities(&self, caller: &Caller, id: &str, body: Value) -> Result<AgentAbilitiesResponse, ApiError> {
        let m = input::object(body)?;
        let cur = self.visible_agent(caller, id).await?;
        if !self.can_update_agent(caller, &cur) {
            return Err(permission_denied("update"));
        }
        let expected = input::opt_int(&m, "version", "version")?;
        let mut cfg = cur.config.clone();
        let sent: Map<String, Value> = m.into_iter().filter(|(k, _)| k != "version").collect();
        apply_abilities(&mut cfg, &sent, "")?;
        let next = self.commit_agent_change(caller, &cur, expected, cfg, cur.team_id.clone(), cur.is_active).await?;
        Ok(AgentAbilitiesResponse { agent_id: next.id.clone(), abilities: abilities(&next.config), version: next.version })
    }

    /// G9.
    pub async fn set_agent_incognito(&self, caller: &Caller, id: &str, req: AgentIncognitoRequest) -> Result<Agent, ApiError> {
        let enforced = req.enforced;
        let cur = self.visible_agent(caller, id).await?;
        if !self.can_update_agent(caller, &cur) {
            return Err(permission_denied("update"));
        }
        let mut cfg = cur.config.clone();
        cfg.incognito = enforced;
        let next = self.commit_agent_change(caller, &cur, None, cfg, cur.team_id.clone(), cur.is_active).await?;
        self.agent_with_creator(&next, AgentView { last_used: true, last_updated: true }).await
    }
}

/// A replaced tools list keeps the stored `secret_id` of entries that omit it (clients
/// never see secrets, so a read-modify-write must not erase them).
fn merge_secret_refs(old: &[Value], mut new: Vec<Value>) -> Vec<Value> {
    for t in new.iter_mut() {
        let Some(o) = t.as_object_mut() else { continue };
        if o.contains_key("secret_id") {
            continue;
        }
        let ident = |x: &Map<String, Value>| (x.get("type").cloned(), x.get("server_id").cloned(), x.get("name").cloned());
        if let Some(prev) = old.iter().filter_map(Value::as_object).find(|p| ident(p) == ident(o)) {
            if let Some(s) = prev.get("secret_id") {
                o.insert("secret_id".into(), s.clone());
            }
        }
    }
    new
}
