//! E1–E2 data exports (API.md §8.5): validation and scoping, durable export jobs that
//! stream rows from the store through a CSV writer into a blob (memory flat in the row
//! count), status and download, and file retention.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use serde_json::{json, Map, Value};
use store::{DataExportRecord, ExportScope, LedgerEntry};
use tokio::sync::watch;
use wire::legacy::{DataExport, ExportDataResponse, ExportDataType, ExportState};
use wire::ApiError;

use crate::{db, Engine, KeyInfo, KeyKind};

const DATA_TYPES: [&str; 4] = ["workflows", "agents", "agent_interactions", "credit_logs"];
const CATEGORIES: [&str; 4] = ["PIPELINE_RUN", "AGENT_RUN", "CUSTOM_NODE_RD", "EXTERNAL_GUMCP_CALL"];
/// Upper bound of a CSV file written by an export.
const MAX_EXPORT_BYTES: u64 = 64 * 1024 * 1024 * 1024;
/// Bytes buffered before a chunk goes to the blob store.
const CHUNK: usize = 64 * 1024;

/// Valid `export_fields` of each data type (§8.5), in their documented order.
pub fn fields_of(data_type: &str) -> &'static [&'static str] {
    match data_type {
        "workflows" => &[
            "workbook_id",
            "workbook_name",
            "workbook_created_ts",
            "user_id",
            "user_email",
            "workspace_id",
            "workspace_name",
            "run_id",
            "credit_cost",
            "pl_run_created_ts",
            "pl_run_finished_ts",
            "pipeline",
        ],
        "agents" => &[
            "agent_id",
            "agent_name",
            "agent_description",
            "agent_model",
            "agent_system_prompt",
            "agent_created_ts",
            "agent_tools",
            "agent_metadata",
            "agent_evaluations_enabled",
            "creator_email",
            "workspace_id",
            "workspace_name",
            "folder_id",
            "folder_name",
        ],
        "agent_interactions" => &[
            "interaction_id",
            "agent_id",
            "agent_name",
            "interaction_type",
            "interaction_name",
            "trigger_type",
            "interaction_created_ts",
            "user_email",
            "credit_cost",
            "llm_credit_cost",
            "tool_credit_cost",
            "flow_credit_cost",
            "message_count",
            "workspace_id",
            "workspace_name",
        ],
        "credit_logs" => &[
            "user_email",
            "permission_group_id",
            "permission_group_name",
            "timestamp",
            "category",
            "type",
            "name",
            "amount",
            "balance",
            "log_id",
            "correlation_id",
            "balance_scope",
            "project_id",
        ],
        _ => &[],
    }
}

fn flat(status: u16, s: &str) -> ApiError {
    ApiError::flat(status, s)
}

fn str_field(m: &Map<String, Value>, k: &str) -> Option<String> {
    m.get(k).and_then(Value::as_str).map(str::trim).filter(|s| !s.is_empty()).map(str::to_string)
}

fn str_list(m: &Map<String, Value>, k: &str) -> Result<Vec<String>, ApiError> {
    match m.get(k) {
        None | Some(Value::Null) => Ok(vec![]),
        Some(Value::Array(a)) => {
            a.iter().map(|v| v.as_str().map(str::to_string).ok_or_else(|| flat(400, "invalid_request").detail("param", k.to_string()))).collect()
        }
        Some(Value::String(s)) => Ok(s.split(',').map(str::trim).filter(|x| !x.is_empty()).map(str::to_string).collect()),
        Some(_) => Err(flat(400, "invalid_request").detail("param", k.to_string())),
    }
}

fn bool_field(m: &Map<String, Value>, k: &str) -> bool {
    match m.get(k) {
        Some(Value::Bool(b)) => *b,
        Some(Value::String(s)) => matches!(s.to_ascii_lowercase().as_str(), "true" | "1"),
        _ => false,
    }
}

fn state_of(s: &str) -> ExportState {
    match s {
        "IN_PROGRESS" => ExportState::InProgress,
        "COMPLETED" => ExportState::Completed,
        "FAILED" => ExportState::Failed,
        _ => ExportState::Requested,
    }
}

fn data_type_of(s: &str) -> Option<ExportDataType> {
    serde_json::from_value(Value::String(s.to_string())).ok()
}

/// What E2 answers.
pub enum ExportStatus {
    Json(DataExport),
    /// `download=true` on a completed export: stream this blob as `<id>.csv`.
    File {
        data_export_id: String,
        blob_key: String,
    },
}

impl Engine {
    /// The requester of an export request: `user_id` must be the acting user, an
    /// organization admin.
    pub(crate) async fn export_requester(&self, key: &KeyInfo, m: &Map<String, Value>) -> Result<store::User, ApiError> {
        let user_id = str_field(m, "user_id").ok_or_else(|| flat(400, "user_id is required"))?;
        let allowed = match &key.kind {
            KeyKind::Personal { user_id: owner } => owner == &user_id,
            KeyKind::Team { team_id } => self.store.membership(team_id, &user_id).await.map_err(db)?.is_some(),
        };
        if !allowed {
            return Err(flat(403, "forbidden"));
        }
        let user = self.store.user(&user_id).await.map_err(db)?.ok_or_else(|| flat(403, "forbidden"))?;
        if user.org_role != "admin" {
            return Err(flat(403, "organization_admin_required"));
        }
        Ok(user)
    }

    /// E1 `POST /export_data`: validates in §8.5's order and queues the job.
    pub async fn export_data(&self, key: &KeyInfo, body: Value) -> Result<ExportDataResponse, ApiError> {
        let m = match body {
            Value::Object(m) => m,
            _ => Map::new(),
        };
        let user = self.export_requester(key, &m).await?;
        let data_type = match m.get("data_type") {
            None | Some(Value::Null) => "workflows".to_string(),
            Some(Value::String(s)) if DATA_TYPES.contains(&s.as_str()) => s.clone(),
            Some(Value::String(s)) if s == "interaction_evaluations" || s == "gumstack" => return Err(flat(400, "unsupported_data_type")),
            Some(_) => return Err(flat(400, "invalid_data_type")),
        };
        let fields = str_list(&m, "export_fields").map_err(|_| flat(400, "invalid_export_fields"))?;
        if fields.is_empty() {
            return Err(flat(400, "invalid_export_fields").detail("invalid", Value::Array(vec![])));
        }
        let valid = fields_of(&data_type);
        let invalid: Vec<Value> = fields.iter().filter(|f| !valid.contains(&f.as_str())).map(|f| Value::String(f.clone())).collect();
        if !invalid.is_empty() {
            return Err(flat(400, "invalid_export_fields").detail("invalid", Value::Array(invalid)));
        }
        let start =
            m.get("start_date").and_then(Value::as_str).and_then(wire::time::parse).ok_or_else(|| flat(400, "invalid_date").detail("param", "start_date"))?;
        let end_raw = m.get("end_date").and_then(Value::as_str).unwrap_or("");
        let mut end = wire::time::parse(end_raw).ok_or_else(|| flat(400, "invalid_date").detail("param", "end_date"))?;
        if end_raw.trim().len() == 10 {
            // A bare end date covers that whole day.
            end += 86_400_000_000 - 1;
        }
        if end < start {
            return Err(flat(400, "invalid_date_range"));
        }
        let credit_logs = data_type == "credit_logs";
        let level = match m.get("export_level") {
            None | Some(Value::Null) => "organization".to_string(),
            Some(Value::String(s)) if s == "organization" || s == "workspace" => s.clone(),
            Some(_) if credit_logs => "organization".to_string(),
            Some(_) => return Err(flat(400, "invalid_export_level")),
        };
        let mut scope = ExportScope { data_type: data_type.clone(), start, end, ..Default::default() };
        if credit_logs {
            // Scope fields are not applicable: ignored, never an error.
            let cats = str_list(&m, "category_filter").map_err(|_| flat(400, "invalid_category_filter"))?;
            if cats.iter().any(|c| !CATEGORIES.contains(&c.as_str())) {
                return Err(flat(400, "invalid_category_filter"));
            }
            scope.categories = cats;
        } else {
            let workspace_ids = str_list(&m, "workspace_ids")?;
            let all = bool_field(&m, "include_all_workspaces");
            let personal = all || bool_field(&m, "include_personal_workspaces");
            let entity_ids = str_list(&m, "entity_ids")?;
            if level == "workspace" && workspace_ids.len() != 1 {
                return Err(flat(400, "workspace_export_requires_one_workspace"));
            }
            if !all {
                for w in &workspace_ids {
                    if self.store.team(w).await.map_err(db)?.is_none_or(|t| t.organization_id != user.organization_id) {
                        return Err(flat(404, "workspace_not_found").detail("workspace_id", w.clone()));
                    }
                }
            }
            if workspace_ids.is_empty() && !all && !personal && entity_ids.is_empty() {
                return Err(flat(400, "scope_required"));
            }
            scope.all_workspaces = all;
            scope.personal = personal;
            scope.team_ids = if all { vec![] } else { workspace_ids };
            scope.entity_ids = entity_ids;
        }
        let now = self.now();
        let rec = DataExportRecord {
            id: wire::ids::new_id("dex"),
            organization_id: user.organization_id.clone(),
            requested_by: user.id.clone(),
            data_type: data_type.clone(),
            request: json!({
                "export_fields": fields,
                "start": scope.start, "end": scope.end,
                "team_ids": scope.team_ids, "all_workspaces": scope.all_workspaces, "personal": scope.personal,
                "entity_ids": scope.entity_ids, "categories": scope.categories, "export_level": level,
            }),
            state: "REQUESTED".into(),
            row_count: None,
            error: None,
            blob_key: None,
            created_at: now,
            started_at: None,
            finished_at: None,
            expires_at: None,
            attempts: 0,
        };
        self.store.create_export(&rec).await.map_err(db)?;
        self.export_wake.notify_one();
        Ok(ExportDataResponse { success: true, data_export_id: rec.id, state: ExportState::Requested, created_ts: wire::time::legacy(now) })
    }

    /// E2 `GET /export_status`.
    pub async fn export_status(&self, key: &KeyInfo, q: &Map<String, Value>) -> Result<ExportStatus, ApiError> {
        let id = str_field(q, "data_export_id").ok_or_else(|| flat(400, "data_export_id is required"))?;
        let user = self.export_requester(key, q).await?;
        let e = self
            .store
            .data_export(&id)
            .await
            .map_err(db)?
            .filter(|e| e.organization_id == user.organization_id)
            .ok_or_else(|| flat(404, "data_export_not_found"))?;
        if e.requested_by != user.id {
            return Err(flat(403, "forbidden"));
        }
        if bool_field(q, "download") && e.state == "COMPLETED" {
            return match (e.blob_key, e.expires_at) {
                (Some(k), Some(exp)) if exp > self.now() => {
                    self.audit(
                        &e.organization_id,
                        "data_export_downloaded",
                        None,
                        None,
                        Some(&e.id),
                        json!({"data_export_id": e.id, "data_type": e.data_type}),
                    )
                    .await;
                    Ok(ExportStatus::File { data_export_id: e.id, blob_key: k })
                }
                _ => Err(flat(404, "export_file_unavailable")),
            };
        }
        let terminal = e.state == "COMPLETED" || e.state == "FAILED";
        Ok(ExportStatus::Json(DataExport {
            data_export_id: e.id,
            state: state_of(&e.state),
            created_ts: wire::time::legacy(e.created_at),
            finished_ts: e.finished_at.filter(|_| terminal).map(wire::time::legacy),
            data_type: data_type_of(&e.data_type),
            row_count: e.row_count,
            error_message: e.error.filter(|_| e.state == "FAILED"),
        }))
    }

    /// Export workers: claim jobs through the store, one at a time per worker, and
    /// delete files past their retention.
    pub fn start_export_workers(self: &Arc<Self>, shutdown: watch::Receiver<bool>) -> Vec<tokio::task::JoinHandle<()>> {
        let engine = self.clone();
        vec![tokio::spawn(async move { engine.export_worker_loop(shutdown).await })]
    }

    async fn export_worker_loop(self: Arc<Self>, mut shutdown: watch::Receiver<bool>) {
        let owner = format!("{}/x0", self.process_id);
        let lease = self.config.runtime.lease;
        loop {
            if *shutdown.borrow() {
                return;
            }
            let notified = self.export_wake.notified();
            self.sweep_export_files().await;
            let now = self.now();
            match self.store.claim_export(&owner, now, now + lease.as_micros() as i64).await {
                Ok(Some(e)) => self.run_export(e, &owner).await,
                Ok(None) => {
                    tokio::select! {
                        _ = notified => {}
                        _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                        _ = shutdown.changed() => {}
                    }
                }
                Err(err) => {
                    tracing::error!(error = %err, "claiming a data export failed");
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
            }
        }
    }

    async fn sweep_export_files(&self) {
        let Some(blobs) = &self.blobs else { return };
        if let Ok(expired) = self.store.expired_export_files(self.now()).await {
            for (id, key) in expired {
                if blobs.delete(&key).await.is_ok() {
                    let _ = self.store.forget_export_file(&id).await;
                }
            }
        }
    }

    async fn run_export(self: &Arc<Self>, e: DataExportRecord, owner: &str) {
        let result = self.write_export(&e, owner).await;
        let now = self.now();
        let done = match result {
            Ok((rows, key)) => {
                let expires = now + self.config.runtime.export_retention.as_micros() as i64;
                let end = store::ExportEnd {
                    state: "COMPLETED".into(),
                    row_count: Some(rows as i64),
                    blob_key: Some(key),
                    now,
                    expires_at: Some(expires),
                    ..Default::default()
                };
                self.store.finish_export(&e.id, owner, &end).await
            }
            Err(msg) => {
                tracing::warn!(data_export_id = %e.id, error = %msg, "data export failed");
                let end = store::ExportEnd { state: "FAILED".into(), error: Some(msg), now, ..Default::default() };
                self.store.finish_export(&e.id, owner, &end).await
            }
        };
        if let Err(err) = done {
            tracing::warn!(data_export_id = %e.id, error = %err, "recording the end of a data export failed; it will be retried");
        }
    }

    /// Streams the rows through a CSV writer into a blob: (rows, blob key).
    async fn write_export(self: &Arc<Self>, e: &DataExportRecord, owner: &str) -> Result<(u64, String), String> {
        let blobs = self.blobs.clone().ok_or("file storage is not configured")?;
        let r = &e.request;
        let fields: Vec<String> = serde_json::from_value(r["export_fields"].clone()).map_err(|err| err.to_string())?;
        let list = |k: &str| serde_json::from_value::<Vec<String>>(r[k].clone()).unwrap_or_default();
        let scope = ExportScope {
            data_type: e.data_type.clone(),
            start: r["start"].as_i64().unwrap_or(0),
            end: r["end"].as_i64().unwrap_or(i64::MAX),
            team_ids: list("team_ids"),
            all_workspaces: r["all_workspaces"].as_bool().unwrap_or(false),
            personal: r["personal"].as_bool().unwrap_or(false),
            entity_ids: list("entity_ids"),
            categories: list("categories"),
        };
        let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(8);
        let mut w = csv::WriterBuilder::new().from_writer(ChunkSink { buf: Vec::with_capacity(CHUNK * 2), tx });
        w.write_record(&fields).map_err(|err| err.to_string())?;
        let writer = Arc::new(std::sync::Mutex::new(w));
        let mut balance = 0.0;
        let row_writer = writer.clone();
        // Runs on the store's blocking reader thread: rows become CSV, and each ~64 KiB
        // chunk is handed to the upload (a full channel makes the reader wait).
        let sink = Box::new(move |row: store::ExportRow| -> bool {
            if let Some(a) = row.get("amount").and_then(Value::as_f64) {
                balance += a;
            }
            let rec: Vec<String> = fields.iter().map(|f| cell(f, &row, balance)).collect();
            row_writer.lock().is_ok_and(|mut csv| csv.write_record(&rec).is_ok())
        });
        let key = format!("exports/{}.csv", e.id);
        let store = self.store.clone();
        let (org, scope2) = (e.organization_id.clone(), scope.clone());
        let producer = tokio::spawn(async move {
            let n = store.export_rows(&org, &scope2, sink).await;
            // The last partial chunk (a blocking send, so off the async threads); then the
            // writer and its sender go, which ends the upload's stream.
            let flushed =
                tokio::task::spawn_blocking(move || writer.lock().map_err(|_| "poisoned".to_string()).and_then(|mut w| w.flush().map_err(|e| e.to_string())))
                    .await
                    .map_err(|e| e.to_string())
                    .and_then(|r| r);
            (n, flushed)
        });
        // Heartbeats keep the lease while a large export runs.
        let hb = {
            let (engine, id, owner) = (self.clone(), e.id.clone(), owner.to_string());
            tokio::spawn(async move {
                let lease = engine.config.runtime.lease;
                loop {
                    tokio::time::sleep(lease / 3).await;
                    let until = engine.now() + lease.as_micros() as i64;
                    if !matches!(engine.store.heartbeat_export(&id, &owner, until).await, Ok(true)) {
                        return;
                    }
                }
            })
        };
        let chunks = futures::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|c| (c, rx)) }).boxed();
        let upload = blobs.put_stream(&key, chunks, MAX_EXPORT_BYTES).await;
        hb.abort();
        let (rows, flushed) = producer.await.map_err(|err| err.to_string())?;
        let rows = rows.map_err(|err| format!("reading rows failed: {err}"))?;
        flushed.map_err(|err| format!("writing the CSV failed: {err}"))?;
        upload.map_err(|err| format!("writing the CSV failed: {err}"))?;
        Ok((rows, key))
    }

    /// Records credits spent outside an agent run (flow nodes' own model calls).
    pub async fn record_credits(&self, entries: Vec<LedgerEntry>) {
        if entries.is_empty() {
            return;
        }
        if let Err(e) = self.store.add_ledger_entries(&entries).await {
            tracing::warn!(error = %e, "recording credits failed");
        }
    }
}

/// The CSV writer's output: bytes gathered into ~64 KiB chunks for the upload. Lives on
/// blocking threads only (it sends with `blocking_send`).
struct ChunkSink {
    buf: Vec<u8>,
    tx: tokio::sync::mpsc::Sender<Result<Bytes, std::io::Error>>,
}

impl ChunkSink {
    fn send(&mut self) -> std::io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let chunk = Bytes::from(std::mem::replace(&mut self.buf, Vec::with_capacity(CHUNK * 2)));
        self.tx.blocking_send(Ok(chunk)).map_err(|_| std::io::Error::other("the upload stopped"))
    }
}

impl std::io::Write for ChunkSink {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(data);
        if self.buf.len() >= CHUNK {
            self.send()?;
        }
        Ok(data.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.send()
    }
}

/// One CSV cell: legacy timestamps, JSON values as JSON text, numbers as written.
fn cell(field: &str, row: &store::ExportRow, balance: f64) -> String {
    match field {
        "balance" => return format!("{}", (balance * 10000.0).round() / 10000.0),
        "balance_scope" => return "organization".into(),
        _ => {}
    }
    let v = row.get(field).cloned().unwrap_or(Value::Null);
    let is_ts = field.ends_with("_ts") || field == "timestamp";
    match v {
        Value::Null => String::new(),
        Value::Number(n) if is_ts => n.as_i64().map(wire::time::legacy).unwrap_or_default(),
        Value::Number(n) if field == "agent_evaluations_enabled" => (n.as_i64() == Some(1)).to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => s,
        other => other.to_string(),
    }
}
