//! The credit ledger and data export jobs (ported from `sqlite/exports.rs`). Exports are
//! claimed with `FOR UPDATE SKIP LOCKED`; their rows are streamed from one statement (one
//! snapshot) through a bounded channel to a blocking thread that runs the caller's
//! callback, so memory stays flat and the callback may block.

use async_trait::async_trait;
use futures::TryStreamExt;
use serde_json::{json, Map, Value};
use sqlx::postgres::PgRow;
use sqlx::{Column, Row, TypeInfo};

use super::sessions::owned_text;
use super::{pg_json, pg_text, unique, PgStore};
use crate::{DataExportRecord, ExportEnd, ExportRow, ExportScope, ExportStore, LedgerEntry, Result, StoreError};

const EXPORT_COLS: &str =
    "id, organization_id, requested_by, data_type, request, state, row_count, error, blob_key, created_at, started_at, finished_at, expires_at, attempts";

/// Rows handed to the blocking callback ahead of it (flat memory, and the query waits
/// while the callback is slower than the database).
const ROW_BUFFER: usize = 256;

fn export_from(r: &PgRow) -> Result<DataExportRecord> {
    Ok(DataExportRecord {
        id: r.try_get("id")?,
        organization_id: r.try_get("organization_id")?,
        requested_by: r.try_get("requested_by")?,
        data_type: r.try_get("data_type")?,
        request: r.try_get("request")?,
        state: r.try_get("state")?,
        row_count: r.try_get("row_count")?,
        error: r.try_get("error")?,
        blob_key: r.try_get("blob_key")?,
        created_at: r.try_get("created_at")?,
        started_at: r.try_get("started_at")?,
        finished_at: r.try_get("finished_at")?,
        expires_at: r.try_get("expires_at")?,
        attempts: r.try_get("attempts")?,
    })
}

/// One argument of an export query.
enum Arg {
    Text(String),
    Int(i64),
}

/// `<col> IN ($n, …)` with its arguments (`FALSE` for an empty list).
fn in_list(col: &str, items: &[String], args: &mut Vec<Arg>) -> String {
    if items.is_empty() {
        return "FALSE".into();
    }
    let mut marks = Vec::with_capacity(items.len());
    for i in items {
        args.push(Arg::Text(i.clone()));
        marks.push(format!("${}", args.len()));
    }
    format!("{col} IN ({})", marks.join(", "))
}

/// The workspace part of a scope over a `team_id` column: chosen teams, personal (NULL)
/// or all; true when the scope names no workspace (entity ids only).
fn workspace_filter(team_col: &str, s: &ExportScope, args: &mut Vec<Arg>) -> String {
    if s.all_workspaces {
        return "TRUE".into();
    }
    let mut parts = Vec::new();
    if !s.team_ids.is_empty() {
        parts.push(in_list(team_col, &s.team_ids, args));
    }
    if s.personal {
        parts.push(format!("{team_col} IS NULL"));
    }
    if parts.is_empty() {
        "TRUE".into()
    } else {
        format!("({})", parts.join(" OR "))
    }
}

/// SQLite's `json_extract(col, '$.key')` over a JSON column: the value at `key` as JSONB,
/// converted like SQLite's result by [`sql_value`].
fn extract(col: &str, key: &str) -> String {
    format!("(({col})::jsonb -> '{key}')")
}

/// Columns of the workflows query that become its `pipeline` object.
const PIPELINE_PARTS: [&str; 3] = ["pipeline__saved_item_id", "pipeline__name", "pipeline__version"];

/// Sums that SQLite's `COALESCE(SUM(…), 0)` answers as the integer 0 when there is no
/// ledger row (a REAL sum otherwise); PostgreSQL's columns have one type, so the query
/// leaves them NULL and the conversion makes that 0.
const ZERO_IF_NULL: [&str; 4] = ["credit_cost", "llm_credit_cost", "tool_credit_cost", "flow_credit_cost"];

/// SQL and arguments of one data type's rows; column names are export field names
/// (except the workflows' `pipeline__*` parts, see [`finish_row`]).
fn export_query(org: &str, s: &ExportScope) -> (String, Vec<Arg>) {
    let mut args = vec![Arg::Text(org.to_string()), Arg::Int(s.start), Arg::Int(s.end)];
    let sql = match s.data_type.as_str() {
        "credit_logs" => {
            let cats = if s.categories.is_empty() { "TRUE".to_string() } else { in_list("l.category", &s.categories, &mut args) };
            format!(
                "SELECT u.email AS user_email, l.team_id AS permission_group_id, t.name AS permission_group_name, l.created_at AS timestamp, \
                   l.category AS category, l.type AS type, l.name AS name, l.amount AS amount, l.id AS log_id, l.correlation_id AS correlation_id, \
                   l.team_id AS project_id \
                 FROM credit_ledger l LEFT JOIN users u ON u.id = l.user_id LEFT JOIN teams t ON t.id = l.team_id \
                 WHERE l.organization_id = $1 AND l.created_at >= $2 AND l.created_at <= $3 AND {cats} ORDER BY l.created_at, l.id"
            )
        }
        "agent_interactions" => {
            let ws = workspace_filter("s.team_id", s, &mut args);
            let ent = if s.entity_ids.is_empty() { "TRUE".to_string() } else { in_list("s.agent_id", &s.entity_ids, &mut args) };
            format!(
                "SELECT s.id AS interaction_id, s.agent_id AS agent_id, {name} AS agent_name, s.type AS interaction_type, \
                   s.name AS interaction_name, s.type AS trigger_type, s.created_at AS interaction_created_ts, u.email AS user_email, \
                   (SELECT SUM(amount) FROM credit_ledger l WHERE l.session_id = s.id) AS credit_cost, \
                   (SELECT SUM(amount) FROM credit_ledger l WHERE l.session_id = s.id AND l.type = 'model_call') AS llm_credit_cost, \
                   (SELECT SUM(amount) FROM credit_ledger l WHERE l.session_id = s.id AND l.type = 'tool_call') AS tool_credit_cost, \
                   (SELECT SUM(amount) FROM credit_ledger l WHERE l.session_id = s.id AND l.category = 'PIPELINE_RUN') AS flow_credit_cost, \
                   (SELECT COUNT(*) FROM messages m WHERE m.session_id = s.id) AS message_count, s.team_id AS workspace_id, t.name AS workspace_name \
                 FROM sessions s LEFT JOIN users u ON u.id = s.creator_user_id LEFT JOIN teams t ON t.id = s.team_id \
                 WHERE s.organization_id = $1 AND s.created_at >= $2 AND s.created_at <= $3 AND {ws} AND {ent} ORDER BY s.created_at, s.id",
                name = extract("s.agent_snapshot", "name"),
            )
        }
        "agents" => {
            let ws = workspace_filter("a.team_id", s, &mut args);
            let ent = if s.entity_ids.is_empty() { "TRUE".to_string() } else { in_list("a.id", &s.entity_ids, &mut args) };
            format!(
                "SELECT a.id AS agent_id, a.name AS agent_name, {desc} AS agent_description, \
                   {model} AS agent_model, {prompt} AS agent_system_prompt, \
                   a.created_at AS agent_created_ts, {tools} AS agent_tools, {meta} AS agent_metadata, \
                   0::bigint AS agent_evaluations_enabled, u.email AS creator_email, a.team_id AS workspace_id, t.name AS workspace_name, \
                   {folder} AS folder_id, NULL::text AS folder_name \
                 FROM agents a JOIN users o ON o.id = a.owner_user_id LEFT JOIN users u ON u.id = a.creator_user_id LEFT JOIN teams t ON t.id = a.team_id \
                 WHERE o.organization_id = $1 AND a.created_at >= $2 AND a.created_at <= $3 AND a.deleted_at IS NULL AND {ws} AND {ent} ORDER BY a.created_at, a.id",
                desc = extract("a.config", "description"),
                model = extract("a.config", "model_name"),
                prompt = extract("a.config", "system_prompt"),
                tools = extract("a.config", "tools"),
                meta = extract("a.config", "metadata"),
                folder = extract("a.config", "folder_id"),
            )
        }
        _ => {
            // workflows: flow runs with their workbook.
            let ws = workspace_filter("r.team_id", s, &mut args);
            let ent = if s.entity_ids.is_empty() { "TRUE".to_string() } else { in_list("r.workbook_id", &s.entity_ids, &mut args) };
            format!(
                "SELECT r.workbook_id AS workbook_id, w.name AS workbook_name, w.created_at AS workbook_created_ts, r.user_id AS user_id, u.email AS user_email, \
                   r.team_id AS workspace_id, t.name AS workspace_name, r.id AS run_id, r.credit_cost AS credit_cost, r.created_at AS pl_run_created_ts, \
                   r.finished_at AS pl_run_finished_ts, r.flow_id AS {p0}, f.name AS {p1}, r.flow_version AS {p2} \
                 FROM flow_runs r LEFT JOIN workbooks w ON w.id = r.workbook_id LEFT JOIN flows f ON f.id = r.flow_id LEFT JOIN users u ON u.id = r.user_id \
                   LEFT JOIN teams t ON t.id = r.team_id \
                 WHERE r.organization_id = $1 AND r.created_at >= $2 AND r.created_at <= $3 AND {ws} AND {ent} ORDER BY r.created_at, r.id",
                p0 = PIPELINE_PARTS[0],
                p1 = PIPELINE_PARTS[1],
                p2 = PIPELINE_PARTS[2],
            )
        }
    };
    (sql, args)
}

/// A column's value as SQLite's export produced it: integers and reals as numbers, text as
/// text, and a `json_extract` result (JSONB here) as SQLite answers it: a string, number
/// or NULL as itself, true/false as 1/0, an object or array as its compact JSON text.
fn sql_value(r: &PgRow, i: usize) -> Result<Value> {
    let ty = r.column(i).type_info().name().to_string();
    Ok(match ty.as_str() {
        "INT8" => r.try_get::<Option<i64>, _>(i)?.map_or(Value::Null, |v| json!(v)),
        "INT4" => r.try_get::<Option<i32>, _>(i)?.map_or(Value::Null, |v| json!(v)),
        "INT2" => r.try_get::<Option<i16>, _>(i)?.map_or(Value::Null, |v| json!(v)),
        "FLOAT8" => r.try_get::<Option<f64>, _>(i)?.map_or(Value::Null, |v| json!(v)),
        "FLOAT4" => r.try_get::<Option<f32>, _>(i)?.map_or(Value::Null, |v| json!(f64::from(v))),
        "BOOL" => r.try_get::<Option<bool>, _>(i)?.map_or(Value::Null, |v| json!(i64::from(v))),
        "JSONB" | "JSON" => match r.try_get::<Option<Value>, _>(i)? {
            None | Some(Value::Null) => Value::Null,
            Some(Value::Bool(b)) => json!(i64::from(b)),
            Some(v @ (Value::Array(_) | Value::Object(_))) => Value::String(v.to_string()),
            Some(v) => v,
        },
        "BYTEA" => r.try_get::<Option<Vec<u8>>, _>(i)?.map_or(Value::Null, |b| Value::String(String::from_utf8_lossy(&b).into_owned())),
        _ => r.try_get::<Option<String>, _>(i)?.map_or(Value::Null, Value::String),
    })
}

/// One exported row, shaped like SQLite's: the workflows' `pipeline` is
/// `json_object('saved_item_id', …, 'name', …, 'version', …)` text in that key order.
fn export_row(r: &PgRow) -> Result<ExportRow> {
    let mut m = Map::with_capacity(r.len());
    let mut pipeline: Option<Map<String, Value>> = None;
    for (i, c) in r.columns().iter().enumerate() {
        let name = c.name();
        let mut v = sql_value(r, i)?;
        if let Some(key) = name.strip_prefix("pipeline__") {
            pipeline.get_or_insert_with(Map::new).insert(key.to_string(), v);
            continue;
        }
        if v.is_null() && ZERO_IF_NULL.contains(&name) {
            v = json!(0);
        }
        m.insert(name.to_string(), v);
    }
    if let Some(p) = pipeline {
        m.insert("pipeline".into(), Value::String(Value::Object(p).to_string()));
    }
    Ok(m)
}

#[async_trait]
impl ExportStore for PgStore {
    async fn add_ledger_entries(&self, entries: &[LedgerEntry]) -> Result<()> {
        if entries.is_empty() {
            return Ok(());
        }
        let mut tx = self.begin().await?;
        for e in entries {
            sqlx::query(
                "INSERT INTO credit_ledger (id, organization_id, user_id, team_id, created_at, category, type, name, amount, correlation_id, session_id, agent_id) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
            )
            .bind(&e.id)
            .bind(&e.organization_id)
            .bind(&e.user_id)
            .bind(&e.team_id)
            .bind(e.created_at)
            .bind(&e.category)
            .bind(&e.kind)
            .bind(pg_text(&e.name))
            .bind(e.amount)
            .bind(&e.correlation_id)
            .bind(&e.session_id)
            .bind(&e.agent_id)
            .execute(&mut *tx)
            .await
            .map_err(|e| unique(e, "ledger entry"))?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn create_export(&self, e: &DataExportRecord) -> Result<()> {
        let mut tx = self.begin().await?;
        sqlx::query("INSERT INTO data_exports (id, organization_id, requested_by, data_type, request, state, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7)")
            .bind(&e.id)
            .bind(&e.organization_id)
            .bind(&e.requested_by)
            .bind(&e.data_type)
            .bind(pg_json(&e.request).as_ref())
            .bind(&e.state)
            .bind(e.created_at)
            .execute(&mut *tx)
            .await
            .map_err(|e| unique(e, "data export"))?;
        tx.commit().await?;
        Ok(())
    }

    async fn data_export(&self, id: &str) -> Result<Option<DataExportRecord>> {
        let row = sqlx::query(&format!("SELECT {EXPORT_COLS} FROM data_exports WHERE id = $1")).bind(id).fetch_optional(self.pool()).await?;
        row.as_ref().map(export_from).transpose()
    }

    async fn claim_export(&self, owner: &str, now: i64, lease_until: i64) -> Result<Option<DataExportRecord>> {
        let mut tx = self.begin().await?;
        let row = sqlx::query(&format!(
            "UPDATE data_exports SET state = 'IN_PROGRESS', started_at = COALESCE(started_at, $1), lease_owner = $2, lease_expires_at = $3, attempts = attempts + 1 \
             WHERE id = (SELECT id FROM data_exports WHERE state IN ('REQUESTED', 'IN_PROGRESS') AND (lease_expires_at IS NULL OR lease_expires_at < $1) \
                           ORDER BY created_at, id LIMIT 1 FOR UPDATE SKIP LOCKED) \
             RETURNING {EXPORT_COLS}"
        ))
        .bind(now)
        .bind(owner)
        .bind(lease_until)
        .fetch_optional(&mut *tx)
        .await?;
        let export = row.as_ref().map(export_from).transpose()?;
        tx.commit().await?;
        Ok(export)
    }

    async fn release_export_leases(&self, owner_prefix: &str) -> Result<u64> {
        let n = self
            .write_one(
                sqlx::query(
                    "UPDATE data_exports SET lease_owner = NULL, lease_expires_at = NULL WHERE lease_owner IS NOT NULL AND starts_with(lease_owner, $1)",
                )
                .bind(owner_prefix),
            )
            .await?;
        Ok(n)
    }

    async fn heartbeat_export(&self, id: &str, owner: &str, lease_until: i64) -> Result<bool> {
        let n = self
            .write_one(
                sqlx::query("UPDATE data_exports SET lease_expires_at = $1 WHERE id = $2 AND lease_owner = $3 AND state = 'IN_PROGRESS'")
                    .bind(lease_until)
                    .bind(id)
                    .bind(owner),
            )
            .await?;
        Ok(n > 0)
    }

    async fn finish_export(&self, id: &str, owner: &str, end: &ExportEnd) -> Result<bool> {
        let n = self.write_one(sqlx::query(
            "UPDATE data_exports SET state = $1, row_count = $2, error = $3, blob_key = $4, finished_at = $5, expires_at = $6, lease_owner = NULL, lease_expires_at = NULL \
             WHERE id = $7 AND lease_owner = $8 AND state = 'IN_PROGRESS'",
        )
        .bind(&end.state)
        .bind(end.row_count)
        .bind(end.error.as_deref().map(pg_text))
        .bind(&end.blob_key)
        .bind(end.now)
        .bind(end.expires_at)
        .bind(id)
        .bind(owner)).await?;
        Ok(n > 0)
    }

    async fn expired_export_files(&self, now: i64) -> Result<Vec<(String, String)>> {
        let rows = sqlx::query("SELECT id, blob_key FROM data_exports WHERE blob_key IS NOT NULL AND expires_at < $1 LIMIT 100")
            .bind(now)
            .fetch_all(self.pool())
            .await?;
        rows.iter().map(|r| Ok((r.try_get("id")?, r.try_get("blob_key")?))).collect()
    }

    async fn forget_export_file(&self, id: &str) -> Result<()> {
        let mut tx = self.begin().await?;
        sqlx::query("UPDATE data_exports SET blob_key = NULL WHERE id = $1").bind(id).execute(&mut *tx).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn export_rows(&self, organization_id: &str, scope: &ExportScope, mut row: Box<dyn FnMut(ExportRow) -> bool + Send>) -> Result<u64> {
        let (sql, args) = export_query(organization_id, scope);
        // The callback runs on a blocking thread (it may block, e.g. on a full upload
        // channel); rows reach it through a bounded channel, so a slow callback makes the
        // query wait instead of buffering rows.
        let (tx, mut rx) = tokio::sync::mpsc::channel::<ExportRow>(ROW_BUFFER);
        let consumer = tokio::task::spawn_blocking(move || {
            let mut sent = 0u64;
            while let Some(m) = rx.blocking_recv() {
                sent += 1;
                if !row(m) {
                    break;
                }
            }
            sent
        });
        let produced = stream_rows(self, &sql, args, tx).await;
        // On an error the sender is gone: the callback receives the rows already queued,
        // then stops; it has always returned before this call does.
        let sent = consumer.await.map_err(|e| StoreError::Corrupt(format!("export row callback: {e}")))?;
        produced?;
        Ok(sent)
    }
}

/// Runs the export query (one statement: one snapshot) and sends each converted row to
/// `tx`, until the rows end or the receiver stops. Boxed as `Send` for the same reason as
/// `migrations::run`.
fn stream_rows<'a>(s: &'a PgStore, sql: &'a str, args: Vec<Arg>, tx: tokio::sync::mpsc::Sender<ExportRow>) -> futures::future::BoxFuture<'a, Result<()>> {
    Box::pin(async move {
        let mut q = sqlx::query(sql).persistent(false);
        for a in args {
            q = match a {
                // Filter values come from the request: a NUL matches like U+FFFD.
                Arg::Text(t) => q.bind(owned_text(t)),
                Arg::Int(i) => q.bind(i),
            };
        }
        let mut rows = q.fetch(s.pool());
        while let Some(r) = rows.try_next().await? {
            if tx.send(export_row(&r)?).await.is_err() {
                break;
            }
        }
        Ok(())
    })
}
