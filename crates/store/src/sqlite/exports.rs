use async_trait::async_trait;
use rusqlite::types::Value as SqlValue;
use rusqlite::{params, params_from_iter, OptionalExtension, Row};
use serde_json::{json, Map, Value};

use super::sessions::parse;
use super::{unique, SqliteStore};
use crate::{DataExportRecord, ExportEnd, ExportRow, ExportScope, ExportStore, LedgerEntry, Result};

fn export_from(r: &Row) -> rusqlite::Result<DataExportRecord> {
    Ok(DataExportRecord {
        id: r.get("id")?,
        organization_id: r.get("organization_id")?,
        requested_by: r.get("requested_by")?,
        data_type: r.get("data_type")?,
        request: parse(&r.get::<_, String>("request")?, "export request")?,
        state: r.get("state")?,
        row_count: r.get("row_count")?,
        error: r.get("error")?,
        blob_key: r.get("blob_key")?,
        created_at: r.get("created_at")?,
        started_at: r.get("started_at")?,
        finished_at: r.get("finished_at")?,
        expires_at: r.get("expires_at")?,
        attempts: r.get("attempts")?,
    })
}

fn sql_value(v: rusqlite::types::ValueRef<'_>) -> Value {
    use rusqlite::types::ValueRef as V;
    match v {
        V::Null => Value::Null,
        V::Integer(i) => json!(i),
        V::Real(f) => json!(f),
        V::Text(t) => Value::String(String::from_utf8_lossy(t).into_owned()),
        V::Blob(b) => Value::String(String::from_utf8_lossy(b).into_owned()),
    }
}

/// `AND <col> IN (?, ?, …)` with its arguments.
fn in_list(col: &str, items: &[String], args: &mut Vec<SqlValue>) -> String {
    if items.is_empty() {
        return "0".into();
    }
    args.extend(items.iter().map(|i| SqlValue::Text(i.clone())));
    format!("{col} IN ({})", vec!["?"; items.len()].join(", "))
}

/// The workspace part of a scope over a `team_id` column: chosen teams, personal (NULL)
/// or all; true when the scope names no workspace (entity ids only).
fn workspace_filter(team_col: &str, s: &ExportScope, args: &mut Vec<SqlValue>) -> String {
    if s.all_workspaces {
        return "1".into();
    }
    let mut parts = Vec::new();
    if !s.team_ids.is_empty() {
        parts.push(in_list(team_col, &s.team_ids, args));
    }
    if s.personal {
        parts.push(format!("{team_col} IS NULL"));
    }
    if parts.is_empty() {
        "1".into()
    } else {
        format!("({})", parts.join(" OR "))
    }
}

/// SQL and arguments of one data type's rows; column names are export field names.
fn export_query(org: &str, s: &ExportScope) -> (String, Vec<SqlValue>) {
    let mut args: Vec<SqlValue> = vec![SqlValue::Text(org.to_string()), SqlValue::Integer(s.start), SqlValue::Integer(s.end)];
    let sql = match s.data_type.as_str() {
        "credit_logs" => {
            let cats = if s.categories.is_empty() { "1".to_string() } else { in_list("l.category", &s.categories, &mut args) };
            format!(
                "SELECT u.email AS user_email, l.team_id AS permission_group_id, t.name AS permission_group_name, l.created_at AS timestamp, \
                   l.category AS category, l.type AS type, l.name AS name, l.amount AS amount, l.id AS log_id, l.correlation_id AS correlation_id, \
                   l.team_id AS project_id \
                 FROM credit_ledger l LEFT JOIN users u ON u.id = l.user_id LEFT JOIN teams t ON t.id = l.team_id \
                 WHERE l.organization_id = ?1 AND l.created_at >= ?2 AND l.created_at <= ?3 AND {cats} ORDER BY l.created_at, l.id"
            )
        }
        "agent_interactions" => {
            let ws = workspace_filter("s.team_id", s, &mut args);
            let ent = if s.entity_ids.is_empty() { "1".to_string() } else { in_list("s.agent_id", &s.entity_ids, &mut args) };
            format!(
                "SELECT s.id AS interaction_id, s.agent_id AS agent_id, json_extract(s.agent_snapshot, '$.name') AS agent_name, s.type AS interaction_type, \
                   s.name AS interaction_name, s.type AS trigger_type, s.created_at AS interaction_created_ts, u.email AS user_email, \
                   COALESCE((SELECT SUM(amount) FROM credit_ledger l WHERE l.session_id = s.id), 0) AS credit_cost, \
                   COALESCE((SELECT SUM(amount) FROM credit_ledger l WHERE l.session_id = s.id AND l.type = 'model_call'), 0) AS llm_credit_cost, \
                   COALESCE((SELECT SUM(amount) FROM credit_ledger l WHERE l.session_id = s.id AND l.type = 'tool_call'), 0) AS tool_credit_cost, \
                   COALESCE((SELECT SUM(amount) FROM credit_ledger l WHERE l.session_id = s.id AND l.category = 'PIPELINE_RUN'), 0) AS flow_credit_cost, \
                   (SELECT COUNT(*) FROM messages m WHERE m.session_id = s.id) AS message_count, s.team_id AS workspace_id, t.name AS workspace_name \
                 FROM sessions s LEFT JOIN users u ON u.id = s.creator_user_id LEFT JOIN teams t ON t.id = s.team_id \
                 WHERE s.organization_id = ?1 AND s.created_at >= ?2 AND s.created_at <= ?3 AND {ws} AND {ent} ORDER BY s.created_at, s.id"
            )
        }
        "agents" => {
            let ws = workspace_filter("a.team_id", s, &mut args);
            let ent = if s.entity_ids.is_empty() { "1".to_string() } else { in_list("a.id", &s.entity_ids, &mut args) };
            format!(
                "SELECT a.id AS agent_id, a.name AS agent_name, json_extract(a.config, '$.description') AS agent_description, \
                   json_extract(a.config, '$.model_name') AS agent_model, json_extract(a.config, '$.system_prompt') AS agent_system_prompt, \
                   a.created_at AS agent_created_ts, json_extract(a.config, '$.tools') AS agent_tools, json_extract(a.config, '$.metadata') AS agent_metadata, \
                   0 AS agent_evaluations_enabled, u.email AS creator_email, a.team_id AS workspace_id, t.name AS workspace_name, \
                   json_extract(a.config, '$.folder_id') AS folder_id, NULL AS folder_name \
                 FROM agents a JOIN users o ON o.id = a.owner_user_id LEFT JOIN users u ON u.id = a.creator_user_id LEFT JOIN teams t ON t.id = a.team_id \
                 WHERE o.organization_id = ?1 AND a.created_at >= ?2 AND a.created_at <= ?3 AND a.deleted_at IS NULL AND {ws} AND {ent} ORDER BY a.created_at, a.id"
            )
        }
        _ => {
            // workflows: flow runs with their workbook.
            let ws = workspace_filter("r.team_id", s, &mut args);
            let ent = if s.entity_ids.is_empty() { "1".to_string() } else { in_list("r.workbook_id", &s.entity_ids, &mut args) };
            format!(
                "SELECT r.workbook_id AS workbook_id, w.name AS workbook_name, w.created_at AS workbook_created_ts, r.user_id AS user_id, u.email AS user_email, \
                   r.team_id AS workspace_id, t.name AS workspace_name, r.id AS run_id, r.credit_cost AS credit_cost, r.created_at AS pl_run_created_ts, \
                   r.finished_at AS pl_run_finished_ts, json_object('saved_item_id', r.flow_id, 'name', f.name, 'version', r.flow_version) AS pipeline \
                 FROM flow_runs r LEFT JOIN workbooks w ON w.id = r.workbook_id LEFT JOIN flows f ON f.id = r.flow_id LEFT JOIN users u ON u.id = r.user_id \
                   LEFT JOIN teams t ON t.id = r.team_id \
                 WHERE r.organization_id = ?1 AND r.created_at >= ?2 AND r.created_at <= ?3 AND {ws} AND {ent} ORDER BY r.created_at, r.id"
            )
        }
    };
    (sql, args)
}

#[async_trait]
impl ExportStore for SqliteStore {
    async fn add_ledger_entries(&self, entries: &[LedgerEntry]) -> Result<()> {
        let entries = entries.to_vec();
        self.write(move |c| {
            let mut st = c.prepare_cached(
                "INSERT INTO credit_ledger (id, organization_id, user_id, team_id, created_at, category, type, name, amount, correlation_id, session_id, agent_id) \
                 VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            )?;
            for e in &entries {
                st.execute(params![
                    e.id,
                    e.organization_id,
                    e.user_id,
                    e.team_id,
                    e.created_at,
                    e.category,
                    e.kind,
                    e.name,
                    e.amount,
                    e.correlation_id,
                    e.session_id,
                    e.agent_id
                ])
                .map_err(|e| unique(e, "ledger entry"))?;
            }
            Ok(())
        })
        .await
    }

    async fn create_export(&self, e: &DataExportRecord) -> Result<()> {
        let e = e.clone();
        self.write(move |c| {
            c.prepare_cached(
                "INSERT INTO data_exports (id, organization_id, requested_by, data_type, request, state, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
            )?
            .execute(params![e.id, e.organization_id, e.requested_by, e.data_type, e.request.to_string(), e.state, e.created_at])
            .map_err(|e| unique(e, "data export"))?;
            Ok(())
        })
        .await
    }

    async fn data_export(&self, id: &str) -> Result<Option<DataExportRecord>> {
        let id = id.to_string();
        self.read(move |c| Ok(c.prepare_cached("SELECT * FROM data_exports WHERE id = ?")?.query_row([id], export_from).optional()?)).await
    }

    async fn claim_export(&self, owner: &str, now: i64, lease_until: i64) -> Result<Option<DataExportRecord>> {
        let owner = owner.to_string();
        self.write(move |c| {
            let id: Option<String> = c
                .prepare_cached(
                    "SELECT id FROM data_exports INDEXED BY data_exports_live WHERE state IN ('REQUESTED', 'IN_PROGRESS') \
                     AND (lease_expires_at IS NULL OR lease_expires_at < ?) ORDER BY created_at LIMIT 1",
                )?
                .query_row([now], |r| r.get(0))
                .optional()?;
            let Some(id) = id else { return Ok(None) };
            Ok(c.prepare_cached(
                "UPDATE data_exports SET state = 'IN_PROGRESS', started_at = COALESCE(started_at, ?), lease_owner = ?, lease_expires_at = ?, attempts = attempts + 1 \
                 WHERE id = ? RETURNING *",
            )?
            .query_row(params![now, owner, lease_until, id], export_from)
            .optional()?)
        })
        .await
    }

    async fn release_export_leases(&self, owner_prefix: &str) -> Result<u64> {
        let prefix = owner_prefix.to_string();
        self.write(move |c| {
            Ok(c.prepare_cached(
                "UPDATE data_exports SET lease_owner = NULL, lease_expires_at = NULL WHERE lease_owner IS NOT NULL AND substr(lease_owner, 1, length(?1)) = ?1",
            )?
            .execute([prefix])? as u64)
        })
        .await
    }

    async fn heartbeat_export(&self, id: &str, owner: &str, lease_until: i64) -> Result<bool> {
        let (id, owner) = (id.to_string(), owner.to_string());
        self.write(move |c| {
            Ok(c.prepare_cached("UPDATE data_exports SET lease_expires_at = ? WHERE id = ? AND lease_owner = ? AND state = 'IN_PROGRESS'")?
                .execute(params![lease_until, id, owner])?
                > 0)
        })
        .await
    }

    async fn finish_export(&self, id: &str, owner: &str, end: &ExportEnd) -> Result<bool> {
        let (id, owner, e) = (id.to_string(), owner.to_string(), end.clone());
        self.write(move |c| {
            Ok(c.prepare_cached(
                "UPDATE data_exports SET state = ?, row_count = ?, error = ?, blob_key = ?, finished_at = ?, expires_at = ?, lease_owner = NULL, lease_expires_at = NULL \
                 WHERE id = ? AND lease_owner = ? AND state = 'IN_PROGRESS'",
            )?
            .execute(params![e.state, e.row_count, e.error, e.blob_key, e.now, e.expires_at, id, owner])?
                > 0)
        })
        .await
    }

    async fn expired_export_files(&self, now: i64) -> Result<Vec<(String, String)>> {
        self.read(move |c| {
            let mut st = c.prepare_cached("SELECT id, blob_key FROM data_exports WHERE blob_key IS NOT NULL AND expires_at < ? LIMIT 100")?;
            let rows = st.query_map([now], |r| Ok((r.get(0)?, r.get(1)?)))?.collect::<rusqlite::Result<Vec<_>>>()?;
            Ok(rows)
        })
        .await
    }

    async fn forget_export_file(&self, id: &str) -> Result<()> {
        let id = id.to_string();
        self.write(move |c| {
            c.prepare_cached("UPDATE data_exports SET blob_key = NULL WHERE id = ?")?.execute([id])?;
            Ok(())
        })
        .await
    }

    async fn export_rows(&self, organization_id: &str, scope: &ExportScope, mut row: Box<dyn FnMut(ExportRow) -> bool + Send>) -> Result<u64> {
        let (sql, args) = export_query(organization_id, scope);
        self.read_blocking(move |c| {
            let mut st = c.prepare(&sql)?;
            let names: Vec<String> = st.column_names().into_iter().map(str::to_string).collect();
            let mut rows = st.query(params_from_iter(args))?;
            let mut sent = 0u64;
            while let Some(r) = rows.next()? {
                let mut m = Map::with_capacity(names.len());
                for (i, n) in names.iter().enumerate() {
                    m.insert(n.clone(), sql_value(r.get_ref(i)?));
                }
                sent += 1;
                if !row(m) {
                    break;
                }
            }
            Ok(sent)
        })
        .await
    }
}
