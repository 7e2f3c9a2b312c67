//! F1–F7 (legacy flows, flat errors, §8.4) and the flow management extension
//! (`/api/v1/flows`, `/api/v1/workbooks`, nested errors).

use std::collections::HashMap;
use std::path::Path;

use serde_json::{Map, Value};
use store::{FlowOwner, FlowRecord, FlowRunRecord, FlowRunState, Tenant, WorkbookRecord};
use wire::flows::{
    FlowDeleteResponse, FlowDetail, FlowDocError, FlowListResponse, FlowSaveRequest, FlowValidateResponse, FlowVersion, FlowVersionsResponse,
    WorkbookCreateRequest, WorkbookListResponse, WorkbookView,
};
use wire::legacy::{
    FlowInput, FlowInputsResponse, FlowRun, FlowRunSummary, KillPipelineResponse, SavedItem, SavedItemsResponse, StartPipelineResponse, Workbook,
    WorkbooksResponse,
};
use wire::{ApiError, ErrorCode};

use super::document::{parse_text, validate, DocError, Graph, RESERVED_INPUTS};
use crate::files::sanitize_file_name;
use crate::{db, Caller, Engine, KeyInfo, KeyKind};

/// Largest `file` input substituted into a flow (§8.4).
const MAX_FILE_INPUT: i64 = 1024 * 1024;

fn flat(status: u16, s: &str) -> ApiError {
    ApiError::flat(status, s)
}

fn field(m: &Map<String, Value>, k: &str) -> Option<String> {
    m.get(k).and_then(Value::as_str).map(str::trim).filter(|s| !s.is_empty()).map(str::to_string)
}

/// The legacy caller of a flow request and the workspace it names.
struct LegacyScope {
    user_id: String,
    owner: FlowOwner,
}

impl LegacyScope {
    fn sees_flow(&self, f: &FlowRecord) -> bool {
        match &self.owner {
            FlowOwner::Team(t) => f.team_id.as_deref() == Some(t),
            FlowOwner::User(u) => f.team_id.is_none() && f.owner_user_id.as_deref() == Some(u),
        }
    }
    fn sees_run(&self, r: &FlowRunRecord) -> bool {
        match &self.owner {
            FlowOwner::Team(t) => r.team_id.as_deref() == Some(t),
            FlowOwner::User(u) => r.team_id.is_none() && &r.user_id == u,
        }
    }
    fn team_id(&self) -> Option<String> {
        match &self.owner {
            FlowOwner::Team(t) => Some(t.clone()),
            FlowOwner::User(_) => None,
        }
    }
}

fn owner_of(t: &Tenant) -> FlowOwner {
    match t {
        Tenant::Personal(u) => FlowOwner::User(u.clone()),
        Tenant::Team(t) => FlowOwner::Team(t.clone()),
    }
}

fn doc_errors(errs: &[DocError]) -> Vec<FlowDocError> {
    errs.iter().map(|e| FlowDocError { node: e.node.clone(), field: e.field.clone(), message: e.to_string() }).collect()
}

/// A nested 400 for an invalid document: the first error's field as `param`, all of them
/// in `details.errors`.
fn invalid_document(errs: &[DocError]) -> ApiError {
    let first = errs.first().cloned().unwrap_or(DocError { node: None, field: "document".into(), message: "invalid flow document".into() });
    let list = serde_json::to_value(doc_errors(errs)).unwrap_or(Value::Null);
    ApiError::invalid_request(&format!("document.{}", first.field), format!("Invalid flow document: {first}")).detail("errors", list)
}

fn detail(f: &FlowRecord, with_document: bool) -> FlowDetail {
    FlowDetail {
        saved_item_id: f.id.clone(),
        workbook_id: f.workbook_id.clone(),
        name: f.name.clone(),
        description: f.description.clone(),
        version: f.version,
        team_id: f.team_id.clone(),
        created_at: wire::time::v1(f.created_at),
        updated_at: wire::time::v1(f.updated_at),
        document: with_document.then(|| f.document.clone()),
    }
}

fn saved_item(f: &FlowRecord) -> SavedItem {
    SavedItem { saved_item_id: f.id.clone(), name: f.name.clone(), description: f.description.clone(), created_ts: wire::time::legacy(f.created_at) }
}

impl Engine {
    async fn legacy_flow_scope(&self, key: &KeyInfo, m: &Map<String, Value>) -> Result<LegacyScope, ApiError> {
        let user_id = field(m, "user_id");
        let project_id = field(m, "project_id");
        if let KeyKind::Team { .. } = key.kind {
            if user_id.is_none() && project_id.is_none() {
                return Err(flat(400, "project_id or user_id is required"));
            }
        }
        let caller = self.legacy_caller(key, user_id.as_deref(), project_id.as_deref(), "forbidden").await?;
        let owner = match (project_id, &key.kind) {
            (Some(p), _) => FlowOwner::Team(p),
            (None, KeyKind::Team { team_id }) => FlowOwner::Team(team_id.clone()),
            (None, KeyKind::Personal { .. }) => FlowOwner::User(caller.user.id.clone()),
        };
        Ok(LegacyScope { user_id: caller.user.id.clone(), owner })
    }

    async fn legacy_flow(&self, scope: &LegacyScope, id: &str) -> Result<FlowRecord, ApiError> {
        self.store.flow(id).await.map_err(db)?.filter(|f| scope.sees_flow(f)).ok_or_else(|| flat(404, "flow_not_found"))
    }

    async fn legacy_run(&self, scope: &LegacyScope, m: &Map<String, Value>) -> Result<FlowRunRecord, ApiError> {
        let id = field(m, "run_id").ok_or_else(|| flat(400, "run_id is required"))?;
        self.store.flow_run_status(&id).await.map_err(db)?.filter(|r| scope.sees_run(r)).ok_or_else(|| flat(404, "run_not_found"))
    }

    /// F1 `POST /start_pipeline`: body fields, and query fields for webhook-style calls.
    pub async fn start_pipeline(&self, key: &KeyInfo, body: Value, query: &HashMap<String, String>) -> Result<StartPipelineResponse, ApiError> {
        let mut m = match body {
            Value::Object(m) => m,
            _ => Map::new(),
        };
        for (k, v) in query {
            if !m.contains_key(k) {
                let v = if k == "pipeline_inputs" { serde_json::from_str(v).unwrap_or(Value::String(v.clone())) } else { Value::String(v.clone()) };
                m.insert(k.clone(), v);
            }
        }
        let saved_item_id = field(&m, "saved_item_id").ok_or_else(|| flat(400, "saved_item_id is required"))?;
        let scope = self.legacy_flow_scope(key, &m).await?;
        // Inputs: other top-level keys (upstream form), then pipeline_inputs (wins).
        let mut given: Map<String, Value> = Map::new();
        for (k, v) in &m {
            if !RESERVED_INPUTS.contains(&k.as_str()) {
                given.insert(k.clone(), v.clone());
            }
        }
        match m.get("pipeline_inputs") {
            None | Some(Value::Null) => {}
            Some(Value::Array(items)) => {
                for (i, it) in items.iter().enumerate() {
                    let Some(name) = it.get("input_name").and_then(Value::as_str) else {
                        let mut e = flat(400, "invalid_pipeline_inputs");
                        e.message = format!("pipeline_inputs[{i}] must be {{\"input_name\": string, \"value\": …}}");
                        return Err(e.detail("param", format!("pipeline_inputs[{i}].input_name")));
                    };
                    if RESERVED_INPUTS.contains(&name) {
                        let mut e = flat(400, "reserved_input_name");
                        e.message = format!("{name:?} is a reserved input name");
                        return Err(e.detail("param", format!("pipeline_inputs[{i}].input_name")));
                    }
                    given.insert(name.to_string(), it.get("value").cloned().unwrap_or(Value::Null));
                }
            }
            Some(_) => {
                let mut e = flat(400, "invalid_pipeline_inputs");
                e.message = "pipeline_inputs must be a list of {\"input_name\", \"value\"}".into();
                return Err(e.detail("param", "pipeline_inputs"));
            }
        }
        let flow = self.legacy_flow(&scope, &saved_item_id).await?;
        let graph = validate(&flow.document).map_err(|_| flat(500, "internal_error"))?;
        let inputs = self.bind_inputs(&graph, given, &scope).await?;
        let now = self.now();
        let run = FlowRunRecord {
            id: wire::ids::new_id("run"),
            flow_id: flow.id.clone(),
            flow_version: flow.version,
            workbook_id: flow.workbook_id.clone(),
            organization_id: flow.organization_id.clone(),
            user_id: scope.user_id.clone(),
            team_id: scope.team_id(),
            state: FlowRunState::Queued,
            inputs: Value::Object(inputs),
            outputs: Value::Object(Map::new()),
            error: None,
            credit_cost: 0.0,
            kill_requested: false,
            attempts: 0,
            created_at: now,
            started_at: None,
            finished_at: None,
        };
        self.store.create_flow_run(&run).await.map_err(db)?;
        self.flow_wake.notify_one();
        Ok(StartPipelineResponse {
            url: format!("{}/api/v1/get_pl_run?run_id={}", self.config.public_url.trim_end_matches('/'), run.id),
            run_id: run.id,
            saved_item_id: flow.id,
            workbook_id: Some(flow.workbook_id),
        })
    }

    /// Declared inputs only: missing ones `""` (or their default), `file` inputs replaced by
    /// the named F8/F9 file's text, typed inputs parsed from strings.
    async fn bind_inputs(&self, g: &Graph, given: Map<String, Value>, scope: &LegacyScope) -> Result<Map<String, Value>, ApiError> {
        let mut out = Map::new();
        let mut missing = Vec::new();
        for d in &g.inputs {
            let v = given.get(&d.name).cloned().filter(|v| !v.is_null() && v.as_str() != Some(""));
            let Some(v) = v else {
                if d.required && d.default.is_none() {
                    missing.push(Value::String(d.name.clone()));
                }
                continue;
            };
            let v = match d.data_type.as_str() {
                "file" => {
                    let name = v.as_str().map(str::to_string).unwrap_or_else(|| v.to_string());
                    let ns = crate::flowfiles::namespace(scope.team_id().as_deref(), &scope.user_id);
                    let clean = sanitize_file_name(&name).unwrap_or_default();
                    let f = self.store.flow_file(&ns, &clean).await.map_err(db)?.ok_or_else(|| {
                        let mut e = flat(400, "file_not_found");
                        e.message = format!("input {:?} names the file {name:?}, which was not uploaded (F8)", d.name);
                        e.detail("param", d.name.clone())
                    })?;
                    if f.size > MAX_FILE_INPUT {
                        return Err(flat(400, "file_too_large").detail("param", d.name.clone()));
                    }
                    let blobs = self.blobs.as_ref().ok_or_else(|| flat(500, "internal_error"))?;
                    let read = blobs.get(&f.blob_key, None).await.map_err(|_| flat(500, "internal_error"))?;
                    let mut bytes = Vec::with_capacity(f.size as usize);
                    let mut stream = read.stream;
                    while let Some(chunk) = futures::StreamExt::next(&mut stream).await {
                        bytes.extend_from_slice(&chunk.map_err(|_| flat(500, "internal_error"))?);
                    }
                    Value::String(String::from_utf8_lossy(&bytes).into_owned())
                }
                "number" | "boolean" | "list" | "object" => match &v {
                    Value::String(s) => serde_json::from_str(s).unwrap_or(v),
                    _ => v,
                },
                _ => v,
            };
            out.insert(d.name.clone(), v);
        }
        if !missing.is_empty() {
            let mut e = flat(400, "missing_required_input");
            e.message = "required flow inputs are missing".into();
            return Err(e.detail("missing", Value::Array(missing)));
        }
        Ok(out)
    }

    /// F2.
    pub async fn get_pl_run(&self, key: &KeyInfo, q: &Map<String, Value>) -> Result<FlowRun, ApiError> {
        if field(q, "run_id").is_none() {
            return Err(flat(400, "run_id is required"));
        }
        let scope = self.legacy_flow_scope(key, q).await?;
        let run = self.legacy_run(&scope, q).await?;
        let log = self.store.flow_log(&run.id).await.map_err(db)?;
        let outputs = match (&run.state, &run.outputs) {
            (FlowRunState::Done, Value::Object(o)) => o.clone(),
            _ => Map::new(),
        };
        Ok(FlowRun {
            run_id: run.id,
            saved_item_id: run.flow_id,
            workbook_id: Some(run.workbook_id),
            user_id: Some(run.user_id),
            state: run.state,
            outputs,
            created_ts: wire::time::legacy(run.created_at),
            finished_ts: run.finished_at.filter(|_| run.state.is_terminal()).map(wire::time::legacy),
            log,
            credit_cost: (run.credit_cost * 10000.0).round() / 10000.0,
        })
    }

    /// F3.
    pub async fn kill_pipeline(&self, key: &KeyInfo, m: &Map<String, Value>) -> Result<KillPipelineResponse, ApiError> {
        if field(m, "run_id").is_none() {
            return Err(flat(400, "run_id is required"));
        }
        let scope = self.legacy_flow_scope(key, m).await?;
        let run = self.legacy_run(&scope, m).await?;
        if !run.state.is_terminal() {
            self.store.request_flow_kill(&run.id).await.map_err(db)?;
            self.flow_wake.notify_one();
        }
        Ok(KillPipelineResponse { success: true, run_id: run.id })
    }

    /// F4.
    pub async fn list_saved_items(&self, key: &KeyInfo, q: &Map<String, Value>) -> Result<SavedItemsResponse, ApiError> {
        let scope = self.legacy_flow_scope(key, q).await?;
        let flows = self.store.list_flows(&scope.owner).await.map_err(db)?;
        Ok(SavedItemsResponse { saved_items: flows.iter().map(saved_item).collect() })
    }

    /// F5.
    pub async fn list_workbooks(&self, key: &KeyInfo, q: &Map<String, Value>) -> Result<WorkbooksResponse, ApiError> {
        let scope = self.legacy_flow_scope(key, q).await?;
        let flows = self.store.list_flows(&scope.owner).await.map_err(db)?;
        let books = self.store.list_workbooks(&scope.owner).await.map_err(db)?;
        Ok(WorkbooksResponse {
            workbooks: books
                .into_iter()
                .map(|w| Workbook {
                    saved_items: flows.iter().filter(|f| f.workbook_id == w.id).map(saved_item).collect(),
                    workbook_id: w.id,
                    name: w.name,
                    description: w.description,
                    created_ts: wire::time::legacy(w.created_at),
                })
                .collect(),
        })
    }

    /// F6.
    pub async fn get_inputs(&self, key: &KeyInfo, q: &Map<String, Value>) -> Result<FlowInputsResponse, ApiError> {
        let id = field(q, "saved_item_id").ok_or_else(|| flat(400, "saved_item_id is required"))?;
        let scope = self.legacy_flow_scope(key, q).await?;
        let flow = self.legacy_flow(&scope, &id).await?;
        let g = validate(&flow.document).map_err(|_| flat(500, "internal_error"))?;
        Ok(FlowInputsResponse {
            inputs: g.inputs.into_iter().map(|d| FlowInput { name: d.name, data_type: d.data_type, description: d.description }).collect(),
        })
    }

    /// F7: each item of the workbook (or the one item) → its 10 most recent runs.
    pub async fn plrun_saved_item_map(&self, key: &KeyInfo, q: &Map<String, Value>) -> Result<Map<String, Value>, ApiError> {
        let (wb, item) = (field(q, "workbook_id"), field(q, "saved_item_id"));
        if wb.is_none() && item.is_none() {
            return Err(flat(400, "workbook_id or saved_item_id is required"));
        }
        let scope = self.legacy_flow_scope(key, q).await?;
        let flows = match (item, wb) {
            (Some(id), _) => vec![self.legacy_flow(&scope, &id).await?],
            (None, Some(w)) => {
                let book = self.store.workbook(&w).await.map_err(db)?;
                let visible = book.is_some_and(|b| match &scope.owner {
                    FlowOwner::Team(t) => b.team_id.as_deref() == Some(t),
                    FlowOwner::User(u) => b.team_id.is_none() && b.owner_user_id.as_deref() == Some(u),
                });
                if !visible {
                    return Err(flat(404, "workbook_not_found"));
                }
                self.store.flows_in_workbook(&w).await.map_err(db)?
            }
            (None, None) => vec![],
        };
        let mut out = Map::new();
        for f in flows {
            let runs = self.store.recent_flow_runs(&f.id, 10).await.map_err(db)?;
            let items: Vec<FlowRunSummary> = runs
                .into_iter()
                .filter(|r| scope.sees_run(r))
                .map(|r| FlowRunSummary {
                    run_id: r.id,
                    state: r.state,
                    created_ts: wire::time::legacy(r.created_at),
                    finished_ts: r.finished_at.map(wire::time::legacy),
                    user_id: Some(r.user_id),
                })
                .collect();
            out.insert(f.id, serde_json::to_value(items).unwrap_or(Value::Null));
        }
        Ok(out)
    }

    // ---- management extension (v1) ----

    fn document_of(v: &Value) -> Result<Value, ApiError> {
        match v {
            Value::String(text) => parse_text(text).map_err(|e| invalid_document(&[e])),
            Value::Object(_) => Ok(v.clone()),
            Value::Null => Err(ApiError::invalid_request("document", "document is required: a flow document (object, or JSON/YAML text)")),
            _ => Err(ApiError::invalid_request("document", "document must be an object, or JSON/YAML text")),
        }
    }

    /// `GET /flows/node-kinds`: the node library, generated from the typed configurations.
    pub fn node_kinds(&self) -> wire::flows::NodeKindsResponse {
        let node_kinds = super::kinds::catalogue().into_iter().filter_map(|v| serde_json::from_value(v).ok()).collect();
        wire::flows::NodeKindsResponse { node_kinds }
    }

    /// `POST /flows/validate`.
    pub fn validate_flow(&self, req: &FlowSaveRequest) -> Result<FlowValidateResponse, ApiError> {
        let doc = Self::document_of(&req.document)?;
        Ok(match validate(&doc) {
            Ok(g) => FlowValidateResponse { valid: true, errors: vec![], order: g.nodes.iter().map(|n| n.id.clone()).collect() },
            Err(e) => FlowValidateResponse { valid: false, errors: doc_errors(&e), order: vec![] },
        })
    }

    async fn workbook_for(&self, caller: &Caller, tenant: &Tenant, id: Option<String>, name: Option<String>) -> Result<String, ApiError> {
        let (owner_user_id, team_id) = match tenant {
            Tenant::Personal(u) => (Some(u.clone()), None),
            Tenant::Team(t) => (None, Some(t.clone())),
        };
        let id = match id {
            Some(id) if !wire::ids::is_valid_caller_id(&id) => {
                return Err(ApiError::new(ErrorCode::InvalidId, "workbook_id must match ^[A-Za-z0-9_-]{1,128}$.").param("workbook_id"))
            }
            Some(id) => id,
            None => format!("wb_default_{}", team_id.as_deref().or(owner_user_id.as_deref()).unwrap_or("")),
        };
        match self.store.workbook(&id).await.map_err(db)? {
            Some(w) if w.team_id == team_id && w.owner_user_id == owner_user_id => Ok(id),
            Some(_) => Err(ApiError::new(ErrorCode::InvalidRequest, format!("Workbook {id} belongs to another workspace.")).param("workbook_id")),
            None => {
                let w = WorkbookRecord {
                    id: id.clone(),
                    organization_id: caller.user.organization_id.clone(),
                    owner_user_id,
                    team_id,
                    name: name.unwrap_or_else(|| "Default".into()),
                    description: None,
                    created_at: self.now(),
                };
                self.store.ensure_workbook(&w).await.map_err(db)?;
                Ok(id)
            }
        }
    }

    /// `POST /flows` (create, 201) and `PUT /flows/{id}` (a new version, 200).
    pub async fn save_flow(&self, caller: &Caller, req: FlowSaveRequest, existing: Option<&str>) -> Result<(u16, FlowDetail), ApiError> {
        let doc = Self::document_of(&req.document)?;
        let graph = validate(&doc).map_err(|e| invalid_document(&e))?;
        let now = self.now();
        let (id, current) = match existing {
            Some(id) => {
                let f = self.store.flow(id).await.map_err(db)?.filter(|f| caller.can_see(f.team_id.as_deref(), f.owner_user_id.as_deref().unwrap_or("")));
                (id.to_string(), Some(f.ok_or_else(|| flow_not_found(id))?))
            }
            None => match req.saved_item_id.clone() {
                Some(id) if !wire::ids::is_valid_caller_id(&id) => {
                    return Err(ApiError::new(ErrorCode::InvalidId, "saved_item_id must match ^[A-Za-z0-9_-]{1,128}$.").param("saved_item_id"))
                }
                Some(id) => {
                    if self.store.flow(&id).await.map_err(db)?.is_some() {
                        return Err(ApiError::new(
                            ErrorCode::FlowAlreadyExists,
                            format!("A flow with id {id} already exists; PUT /flows/{id} saves a new version."),
                        )
                        .param("saved_item_id"));
                    }
                    (id, None)
                }
                None => (wire::ids::new_id("flow"), None),
            },
        };
        let tenant = match &current {
            Some(f) => match &f.team_id {
                Some(t) => Tenant::Team(t.clone()),
                None => Tenant::Personal(f.owner_user_id.clone().unwrap_or_default()),
            },
            None => caller.home_tenant(),
        };
        let workbook_id = match (&req.workbook_id, &current) {
            (None, Some(f)) => f.workbook_id.clone(),
            _ => self.workbook_for(caller, &tenant, req.workbook_id.clone(), req.workbook_name.clone()).await?,
        };
        let (owner_user_id, team_id) = match &tenant {
            Tenant::Personal(u) => (Some(u.clone()), None),
            Tenant::Team(t) => (None, Some(t.clone())),
        };
        let rec = FlowRecord {
            id,
            organization_id: caller.user.organization_id.clone(),
            owner_user_id,
            team_id,
            workbook_id,
            name: graph.name.clone(),
            description: graph.description.clone(),
            version: 0,
            document: doc,
            created_by: caller.user.id.clone(),
            created_at: now,
            updated_at: now,
        };
        let saved = match self.store.save_flow(&rec).await {
            Ok(f) => f,
            Err(store::StoreError::Conflict(m)) => {
                return Err(ApiError::new(ErrorCode::FlowAlreadyExists, format!("Saving the flow conflicted: {m}.")).param("saved_item_id"))
            }
            Err(e) => return Err(db(e)),
        };
        Ok((if existing.is_some() { 200 } else { 201 }, detail(&saved, true)))
    }

    async fn visible_flow(&self, caller: &Caller, id: &str) -> Result<FlowRecord, ApiError> {
        self.store
            .flow(id)
            .await
            .map_err(db)?
            .filter(|f| caller.can_see(f.team_id.as_deref(), f.owner_user_id.as_deref().unwrap_or("")))
            .ok_or_else(|| flow_not_found(id))
    }

    /// `GET /flows/{id}` (`?version=N` for an older one).
    pub async fn get_flow(&self, caller: &Caller, id: &str, version: Option<i64>) -> Result<FlowDetail, ApiError> {
        let f = self.visible_flow(caller, id).await?;
        match version {
            None => Ok(detail(&f, true)),
            Some(v) => {
                let old = self
                    .store
                    .flow_version(id, v)
                    .await
                    .map_err(db)?
                    .ok_or_else(|| ApiError::new(ErrorCode::FlowNotFound, format!("Flow {id} has no version {v}.")).param("version"))?;
                let name = old.document.get("name").and_then(Value::as_str).unwrap_or(&f.name).to_string();
                let description = old.document.get("description").and_then(Value::as_str).map(str::to_string);
                Ok(detail(&FlowRecord { version: old.version, name, description, document: old.document, updated_at: old.created_at, ..f }, true))
            }
        }
    }

    /// `GET /flows`: the caller's workspace (or `team_id`'s).
    pub async fn list_flows(&self, caller: &Caller) -> Result<FlowListResponse, ApiError> {
        let flows = self.store.list_flows(&owner_of(&caller.home_tenant())).await.map_err(db)?;
        Ok(FlowListResponse { flows: flows.iter().map(|f| detail(f, false)).collect() })
    }

    pub async fn flow_versions(&self, caller: &Caller, id: &str) -> Result<FlowVersionsResponse, ApiError> {
        self.visible_flow(caller, id).await?;
        let v = self.store.flow_versions(id).await.map_err(db)?;
        Ok(FlowVersionsResponse {
            versions: v.into_iter().map(|v| FlowVersion { version: v.version, created_at: wire::time::v1(v.created_at), created_by: v.created_by }).collect(),
        })
    }

    pub async fn delete_flow(&self, caller: &Caller, id: &str) -> Result<FlowDeleteResponse, ApiError> {
        self.visible_flow(caller, id).await?;
        let deleted = self.store.delete_flow(id, self.now()).await.map_err(db)?;
        Ok(FlowDeleteResponse { saved_item_id: id.to_string(), deleted })
    }

    pub async fn create_workbook(&self, caller: &Caller, req: WorkbookCreateRequest) -> Result<WorkbookView, ApiError> {
        let name = req.name.trim();
        if name.is_empty() || name.len() > 256 {
            return Err(ApiError::new(ErrorCode::InvalidName, "name is required (1–256 characters).").param("name"));
        }
        let tenant = caller.home_tenant();
        if let Some(id) = &req.workbook_id {
            if self.store.workbook(id).await.map_err(db)?.is_some() {
                return Err(ApiError::new(ErrorCode::FlowAlreadyExists, format!("Workbook {id} already exists.")).param("workbook_id"));
            }
        }
        let id = self.workbook_for(caller, &tenant, Some(req.workbook_id.unwrap_or_else(|| wire::ids::new_id("wb"))), Some(name.to_string())).await?;
        let w = self.store.workbook(&id).await.map_err(db)?.ok_or_else(|| ApiError::new(ErrorCode::InternalError, "the workbook vanished"))?;
        Ok(workbook_view(w))
    }

    pub async fn list_workbooks_v1(&self, caller: &Caller) -> Result<WorkbookListResponse, ApiError> {
        let w = self.store.list_workbooks(&owner_of(&caller.home_tenant())).await.map_err(db)?;
        Ok(WorkbookListResponse { workbooks: w.into_iter().map(workbook_view).collect() })
    }

    /// Loads `dir/*.json` saved items (§8.4's file format): a new version only when a
    /// document changed. Returns (loaded, errors per file).
    pub async fn load_flow_dir(&self, dir: &Path) -> (usize, Vec<String>) {
        let mut loaded = 0;
        let mut errors = Vec::new();
        let Ok(entries) = std::fs::read_dir(dir) else { return (0, errors) };
        let mut paths: Vec<_> = entries.filter_map(Result::ok).map(|e| e.path()).filter(|p| p.extension().is_some_and(|x| x == "json")).collect();
        paths.sort();
        for p in paths {
            match self.load_flow_file(&p).await {
                Ok(()) => loaded += 1,
                Err(e) => errors.push(format!("{}: {e}", p.display())),
            }
        }
        (loaded, errors)
    }

    async fn load_flow_file(&self, p: &Path) -> Result<(), String> {
        let text = std::fs::read_to_string(p).map_err(|e| e.to_string())?;
        let doc: Value = serde_json::from_str(&text).map_err(|e| format!("invalid JSON: {e}"))?;
        let graph = validate(&doc).map_err(|e| e.first().map(ToString::to_string).unwrap_or_default())?;
        let id = doc.get("saved_item_id").and_then(Value::as_str).filter(|s| wire::ids::is_valid_caller_id(s)).ok_or("saved_item_id is required")?.to_string();
        let owner = doc.get("owner").ok_or("owner is required: {\"user_id\"} or {\"team_id\"}")?;
        let (owner_user_id, team_id, org) = if let Some(u) = owner.get("user_id").and_then(Value::as_str) {
            let user = self.store.user(u).await.map_err(|e| e.to_string())?.ok_or_else(|| format!("owner user {u} does not exist"))?;
            (Some(u.to_string()), None, user.organization_id)
        } else if let Some(t) = owner.get("team_id").and_then(Value::as_str) {
            let team = self.store.team(t).await.map_err(|e| e.to_string())?.ok_or_else(|| format!("owner team {t} does not exist"))?;
            (None, Some(t.to_string()), team.organization_id)
        } else {
            return Err("owner must be {\"user_id\"} or {\"team_id\"}".into());
        };
        let workbook_id = doc.get("workbook_id").and_then(Value::as_str).map(str::to_string).unwrap_or_else(|| format!("wb_{id}"));
        let now = self.now();
        let w = WorkbookRecord {
            id: workbook_id.clone(),
            organization_id: org.clone(),
            owner_user_id: owner_user_id.clone(),
            team_id: team_id.clone(),
            name: doc.get("workbook_name").and_then(Value::as_str).unwrap_or(&graph.name).to_string(),
            description: None,
            created_at: now,
        };
        self.store.ensure_workbook(&w).await.map_err(|e| e.to_string())?;
        if let Some(cur) = self.store.flow(&id).await.map_err(|e| e.to_string())? {
            if cur.document == doc {
                return Ok(());
            }
            if cur.team_id != team_id || cur.owner_user_id != owner_user_id {
                return Err(format!("saved item {id} belongs to another workspace"));
            }
        }
        let rec = FlowRecord {
            id,
            organization_id: org,
            owner_user_id: owner_user_id.clone(),
            team_id,
            workbook_id,
            name: graph.name,
            description: graph.description,
            version: 0,
            document: doc,
            created_by: owner_user_id.unwrap_or_else(|| "file".into()),
            created_at: now,
            updated_at: now,
        };
        self.store.save_flow(&rec).await.map_err(|e| e.to_string())?;
        Ok(())
    }
}

fn workbook_view(w: WorkbookRecord) -> WorkbookView {
    WorkbookView { workbook_id: w.id, name: w.name, description: w.description, team_id: w.team_id, created_at: wire::time::v1(w.created_at) }
}

fn flow_not_found(id: &str) -> ApiError {
    ApiError::new(ErrorCode::FlowNotFound, format!("Flow {id} does not exist or is not visible to you."))
}
