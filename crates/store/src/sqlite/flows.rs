use async_trait::async_trait;
use rusqlite::{params, OptionalExtension, Row};
use serde_json::Value;

use super::sessions::{parse, state_from};
use super::{unique, SqliteStore};
use crate::{FlowNodeResult, FlowOwner, FlowRecord, FlowRunEnd, FlowRunRecord, FlowRunState, FlowStore, FlowVersionRecord, Result, StoreError, WorkbookRecord};

fn workbook_from(r: &Row) -> rusqlite::Result<WorkbookRecord> {
    Ok(WorkbookRecord {
        id: r.get("id")?,
        organization_id: r.get("organization_id")?,
        owner_user_id: r.get("owner_user_id")?,
        team_id: r.get("team_id")?,
        name: r.get("name")?,
        description: r.get("description")?,
        created_at: r.get("created_at")?,
    })
}

fn flow_from(r: &Row) -> rusqlite::Result<FlowRecord> {
    Ok(FlowRecord {
        id: r.get("id")?,
        organization_id: r.get("organization_id")?,
        owner_user_id: r.get("owner_user_id")?,
        team_id: r.get("team_id")?,
        workbook_id: r.get("workbook_id")?,
        name: r.get("name")?,
        description: r.get("description")?,
        version: r.get("version")?,
        document: parse(&r.get::<_, String>("document")?, "flow document")?,
        created_by: r.get("created_by")?,
        created_at: r.get("created_at")?,
        updated_at: r.get("updated_at")?,
    })
}

fn version_from(r: &Row) -> rusqlite::Result<FlowVersionRecord> {
    Ok(FlowVersionRecord {
        flow_id: r.get("flow_id")?,
        version: r.get("version")?,
        document: parse(&r.get::<_, String>("document")?, "flow document")?,
        created_by: r.get("created_by")?,
        created_at: r.get("created_at")?,
    })
}

fn run_from(r: &Row) -> rusqlite::Result<FlowRunRecord> {
    Ok(FlowRunRecord {
        id: r.get("id")?,
        flow_id: r.get("flow_id")?,
        flow_version: r.get("flow_version")?,
        workbook_id: r.get("workbook_id")?,
        organization_id: r.get("organization_id")?,
        user_id: r.get("user_id")?,
        team_id: r.get("team_id")?,
        state: state_from(r, FlowRunState::parse)?,
        inputs: parse(&r.get::<_, String>("inputs")?, "flow run inputs")?,
        outputs: parse(&r.get::<_, String>("outputs")?, "flow run outputs")?,
        error: r.get("error")?,
        credit_cost: r.get("credit_cost")?,
        kill_requested: r.get::<_, i64>("kill_requested")? != 0,
        attempts: r.get("attempts")?,
        created_at: r.get("created_at")?,
        started_at: r.get("started_at")?,
        finished_at: r.get("finished_at")?,
    })
}

fn node_from(r: &Row) -> rusqlite::Result<FlowNodeResult> {
    Ok(FlowNodeResult {
        run_id: r.get("run_id")?,
        node_id: r.get("node_id")?,
        status: r.get("status")?,
        output: parse(&r.get::<_, String>("output")?, "flow node output")?,
        credit_cost: r.get("credit_cost")?,
        created_at: r.get("created_at")?,
    })
}

/// `(team_id IS ?1 AND owner_user_id IS ?2)` arguments of an owner.
fn owner_args(o: &FlowOwner) -> (Option<String>, Option<String>) {
    match o {
        FlowOwner::User(u) => (None, Some(u.clone())),
        FlowOwner::Team(t) => (Some(t.clone()), None),
    }
}

fn insert_log(c: &rusqlite::Connection, run_id: &str, lines: &[String]) -> rusqlite::Result<()> {
    let mut st = c.prepare_cached("INSERT INTO flow_run_log (run_id, line) VALUES (?, ?)")?;
    for l in lines {
        st.execute(params![run_id, l])?;
    }
    Ok(())
}

#[async_trait]
impl FlowStore for SqliteStore {
    async fn ensure_workbook(&self, w: &WorkbookRecord) -> Result<()> {
        let w = w.clone();
        self.write(move |c| {
            c.prepare_cached(
                "INSERT INTO workbooks (id, organization_id, owner_user_id, team_id, name, description, created_at) VALUES (?, ?, ?, ?, ?, ?, ?) \
                 ON CONFLICT(id) DO NOTHING",
            )?
            .execute(params![w.id, w.organization_id, w.owner_user_id, w.team_id, w.name, w.description, w.created_at])?;
            Ok(())
        })
        .await
    }

    async fn workbook(&self, id: &str) -> Result<Option<WorkbookRecord>> {
        let id = id.to_string();
        self.read(move |c| Ok(c.prepare_cached("SELECT * FROM workbooks WHERE id = ?")?.query_row([id], workbook_from).optional()?)).await
    }

    async fn list_workbooks(&self, owner: &FlowOwner) -> Result<Vec<WorkbookRecord>> {
        let (team, user) = owner_args(owner);
        self.read(move |c| {
            let mut st = c.prepare_cached("SELECT * FROM workbooks WHERE team_id IS ? AND owner_user_id IS ? ORDER BY created_at, id")?;
            let rows = st.query_map(params![team, user], workbook_from)?.collect::<rusqlite::Result<Vec<_>>>()?;
            Ok(rows)
        })
        .await
    }

    async fn save_flow(&self, f: &FlowRecord) -> Result<FlowRecord> {
        let f = f.clone();
        self.write(move |c| {
            let doc = serde_json::to_string(&f.document).map_err(|e| StoreError::Corrupt(e.to_string()))?;
            let existing: Option<(i64, Option<i64>, i64)> = c
                .prepare_cached("SELECT version, deleted_at, created_at FROM flows WHERE id = ?")?
                .query_row([&f.id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
                .optional()?;
            let (version, created_at) = match existing {
                Some((_, Some(_), _)) => return Err(StoreError::Conflict(format!("flow {} was deleted", f.id))),
                Some((v, None, created)) => {
                    // Guarded by the version read above: a concurrent save fails the
                    // primary key of flow_versions instead of overwriting.
                    c.prepare_cached(
                        "UPDATE flows SET workbook_id = ?, name = ?, description = ?, version = ?, document = ?, updated_at = ? WHERE id = ? AND version = ?",
                    )?
                    .execute(params![f.workbook_id, f.name, f.description, v + 1, doc, f.updated_at, f.id, v])?;
                    (v + 1, created)
                }
                None => {
                    c.prepare_cached(
                        "INSERT INTO flows (id, organization_id, owner_user_id, team_id, workbook_id, name, description, version, document, created_by, created_at, updated_at) \
                         VALUES (?, ?, ?, ?, ?, ?, ?, 1, ?, ?, ?, ?)",
                    )?
                    .execute(params![
                        f.id,
                        f.organization_id,
                        f.owner_user_id,
                        f.team_id,
                        f.workbook_id,
                        f.name,
                        f.description,
                        doc,
                        f.created_by,
                        f.created_at,
                        f.updated_at
                    ])
                    .map_err(|e| unique(e, "flow"))?;
                    (1, f.created_at)
                }
            };
            c.prepare_cached("INSERT INTO flow_versions (flow_id, version, document, created_by, created_at) VALUES (?, ?, ?, ?, ?)")?
                .execute(params![f.id, version, doc, f.created_by, f.updated_at])
                .map_err(|e| unique(e, "flow version"))?;
            Ok(FlowRecord { version, created_at, ..f })
        })
        .await
    }

    async fn flow(&self, id: &str) -> Result<Option<FlowRecord>> {
        let id = id.to_string();
        self.read(move |c| Ok(c.prepare_cached("SELECT * FROM flows WHERE id = ? AND deleted_at IS NULL")?.query_row([id], flow_from).optional()?)).await
    }

    async fn flow_version(&self, id: &str, version: i64) -> Result<Option<FlowVersionRecord>> {
        let id = id.to_string();
        self.read(move |c| {
            Ok(c.prepare_cached("SELECT * FROM flow_versions WHERE flow_id = ? AND version = ?")?.query_row(params![id, version], version_from).optional()?)
        })
        .await
    }

    async fn flow_versions(&self, id: &str) -> Result<Vec<FlowVersionRecord>> {
        let id = id.to_string();
        self.read(move |c| {
            let mut st = c.prepare_cached("SELECT * FROM flow_versions WHERE flow_id = ? ORDER BY version DESC")?;
            let rows = st.query_map([id], version_from)?.collect::<rusqlite::Result<Vec<_>>>()?;
            Ok(rows)
        })
        .await
    }

    async fn list_flows(&self, owner: &FlowOwner) -> Result<Vec<FlowRecord>> {
        let (team, user) = owner_args(owner);
        self.read_blocking(move |c| {
            let mut st = c.prepare_cached("SELECT * FROM flows WHERE team_id IS ? AND owner_user_id IS ? AND deleted_at IS NULL ORDER BY created_at, id")?;
            let rows = st.query_map(params![team, user], flow_from)?.collect::<rusqlite::Result<Vec<_>>>()?;
            Ok(rows)
        })
        .await
    }

    async fn flows_in_workbook(&self, workbook_id: &str) -> Result<Vec<FlowRecord>> {
        let id = workbook_id.to_string();
        self.read(move |c| {
            let mut st = c.prepare_cached("SELECT * FROM flows WHERE workbook_id = ? AND deleted_at IS NULL ORDER BY created_at, id")?;
            let rows = st.query_map([id], flow_from)?.collect::<rusqlite::Result<Vec<_>>>()?;
            Ok(rows)
        })
        .await
    }

    async fn delete_flow(&self, id: &str, now: i64) -> Result<bool> {
        let id = id.to_string();
        self.write(move |c| Ok(c.prepare_cached("UPDATE flows SET deleted_at = ? WHERE id = ? AND deleted_at IS NULL")?.execute(params![now, id])? > 0)).await
    }

    async fn create_flow_run(&self, r: &FlowRunRecord) -> Result<()> {
        let r = r.clone();
        self.write(move |c| {
            c.prepare_cached(
                "INSERT INTO flow_runs (id, flow_id, flow_version, workbook_id, organization_id, user_id, team_id, state, inputs, outputs, created_at) \
                 VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            )?
            .execute(params![
                r.id,
                r.flow_id,
                r.flow_version,
                r.workbook_id,
                r.organization_id,
                r.user_id,
                r.team_id,
                r.state.as_str(),
                r.inputs.to_string(),
                r.outputs.to_string(),
                r.created_at
            ])
            .map_err(|e| unique(e, "flow run"))?;
            Ok(())
        })
        .await
    }

    async fn flow_run(&self, id: &str) -> Result<Option<FlowRunRecord>> {
        let id = id.to_string();
        self.read(move |c| Ok(c.prepare_cached("SELECT * FROM flow_runs WHERE id = ?")?.query_row([id], run_from).optional()?)).await
    }

    async fn flow_run_status(&self, id: &str) -> Result<Option<FlowRunRecord>> {
        let id = id.to_string();
        self.read(move |c| {
            Ok(c.prepare_cached(
                "SELECT id, flow_id, flow_version, workbook_id, organization_id, user_id, team_id, state, '{}' AS inputs, outputs, error, credit_cost, \
                 kill_requested, attempts, created_at, started_at, finished_at FROM flow_runs WHERE id = ?",
            )?
            .query_row([id], run_from)
            .optional()?)
        })
        .await
    }

    async fn recent_flow_runs(&self, flow_id: &str, limit: usize) -> Result<Vec<FlowRunRecord>> {
        let id = flow_id.to_string();
        self.read(move |c| {
            let mut st = c.prepare_cached("SELECT id, flow_id, flow_version, workbook_id, organization_id, user_id, team_id, state, '{}' AS inputs, '{}' AS outputs, error, credit_cost, \
                 kill_requested, attempts, created_at, started_at, finished_at FROM flow_runs WHERE flow_id = ? ORDER BY created_at DESC, id DESC LIMIT ?")?;
            let rows = st.query_map(params![id, limit as i64], run_from)?.collect::<rusqlite::Result<Vec<_>>>()?;
            Ok(rows)
        })
        .await
    }

    async fn claim_flow_run(&self, owner: &str, now: i64, lease_until: i64) -> Result<Option<FlowRunRecord>> {
        let owner = owner.to_string();
        self.write(move |c| {
            let id: Option<String> = c
                .prepare_cached(
                    "SELECT id FROM flow_runs INDEXED BY flow_runs_live WHERE state IN ('QUEUED', 'STARTED', 'RUNNING', 'TERMINATING') \
                     AND (lease_expires_at IS NULL OR lease_expires_at < ?) ORDER BY created_at LIMIT 1",
                )?
                .query_row([now], |r| r.get(0))
                .optional()?;
            let Some(id) = id else { return Ok(None) };
            Ok(c.prepare_cached("UPDATE flow_runs SET lease_owner = ?, lease_expires_at = ?, attempts = attempts + 1 WHERE id = ? RETURNING *")?
                .query_row(params![owner, lease_until, id], run_from)
                .optional()?)
        })
        .await
    }

    async fn heartbeat_flow_run(&self, id: &str, owner: &str, lease_until: i64) -> Result<bool> {
        let (id, owner) = (id.to_string(), owner.to_string());
        self.write(move |c| {
            Ok(c.prepare_cached("UPDATE flow_runs SET lease_expires_at = ? WHERE id = ? AND lease_owner = ?")?.execute(params![lease_until, id, owner])? > 0)
        })
        .await
    }

    async fn release_flow_leases(&self, owner_prefix: &str) -> Result<u64> {
        let prefix = owner_prefix.to_string();
        self.write(move |c| {
            Ok(c.prepare_cached(
                "UPDATE flow_runs SET lease_owner = NULL, lease_expires_at = NULL WHERE lease_owner IS NOT NULL AND substr(lease_owner, 1, length(?1)) = ?1",
            )?
            .execute([prefix])? as u64)
        })
        .await
    }

    async fn move_flow_run(&self, id: &str, owner: Option<&str>, from: FlowRunState, to: FlowRunState, end: FlowRunEnd) -> Result<()> {
        let (id, owner) = (id.to_string(), owner.map(str::to_string));
        self.write(move |c| {
            let terminal = to.is_terminal();
            let n = c
                .prepare_cached(
                    "UPDATE flow_runs SET state = ?1, \
                       started_at = CASE WHEN ?1 = 'STARTED' THEN COALESCE(started_at, ?2) ELSE started_at END, \
                       finished_at = CASE WHEN ?3 THEN ?2 ELSE finished_at END, \
                       outputs = COALESCE(?4, outputs), error = COALESCE(?5, error), \
                       lease_owner = CASE WHEN ?3 THEN NULL ELSE lease_owner END, \
                       lease_expires_at = CASE WHEN ?3 THEN NULL ELSE lease_expires_at END \
                     WHERE id = ?6 AND state = ?7 AND (?8 IS NULL OR lease_owner = ?8)",
                )?
                .execute(params![to.as_str(), end.now, terminal, end.outputs.as_ref().map(Value::to_string), end.error, id, from.as_str(), owner])?;
            if n == 0 {
                let actual: Option<String> = c.prepare_cached("SELECT state FROM flow_runs WHERE id = ?")?.query_row([&id], |r| r.get(0)).optional()?;
                return Err(StoreError::Refused { expected: from.as_str(), actual: actual.unwrap_or_else(|| "missing".into()) });
            }
            insert_log(c, &id, &end.log)?;
            Ok(())
        })
        .await
    }

    async fn request_flow_kill(&self, id: &str) -> Result<Option<FlowRunRecord>> {
        let id = id.to_string();
        self.write(move |c| {
            c.prepare_cached(
                "UPDATE flow_runs SET kill_requested = 1, state = CASE WHEN state IN ('QUEUED', 'STARTED', 'RUNNING') THEN 'TERMINATING' ELSE state END WHERE id = ?",
            )?
            .execute([&id])?;
            Ok(c.prepare_cached("SELECT * FROM flow_runs WHERE id = ?")?.query_row([&id], run_from).optional()?)
        })
        .await
    }

    async fn commit_flow_node(&self, owner: &str, r: &FlowNodeResult, log: Vec<String>) -> Result<bool> {
        let (owner, r) = (owner.to_string(), r.clone());
        self.write(move |c| {
            let held: bool = c
                .prepare_cached("SELECT COUNT(*) FROM flow_runs WHERE id = ? AND lease_owner = ?")?
                .query_row(params![r.run_id, owner], |x| x.get::<_, i64>(0))?
                > 0;
            if !held {
                return Ok(false);
            }
            let n = c
                .prepare_cached(
                    "INSERT INTO flow_node_results (run_id, node_id, status, output, credit_cost, created_at) VALUES (?, ?, ?, ?, ?, ?) \
                     ON CONFLICT(run_id, node_id) DO NOTHING",
                )?
                .execute(params![r.run_id, r.node_id, r.status, r.output.to_string(), r.credit_cost, r.created_at])?;
            if n == 0 {
                return Ok(false);
            }
            if r.credit_cost != 0.0 {
                c.prepare_cached("UPDATE flow_runs SET credit_cost = credit_cost + ? WHERE id = ?")?.execute(params![r.credit_cost, r.run_id])?;
            }
            insert_log(c, &r.run_id, &log)?;
            Ok(true)
        })
        .await
    }

    async fn flow_node_results(&self, run_id: &str) -> Result<Vec<FlowNodeResult>> {
        let id = run_id.to_string();
        self.read_blocking(move |c| {
            let mut st = c.prepare_cached("SELECT * FROM flow_node_results WHERE run_id = ?")?;
            let rows = st.query_map([id], node_from)?.collect::<rusqlite::Result<Vec<_>>>()?;
            Ok(rows)
        })
        .await
    }

    async fn commit_flow_loop_item(&self, owner: &str, run_id: &str, node_id: &str, idx: i64, output: &Value, credit_cost: f64) -> Result<bool> {
        let (owner, run_id, node_id, output) = (owner.to_string(), run_id.to_string(), node_id.to_string(), output.to_string());
        self.write(move |c| {
            let held: bool = c
                .prepare_cached("SELECT COUNT(*) FROM flow_runs WHERE id = ? AND lease_owner = ?")?
                .query_row(params![run_id, owner], |x| x.get::<_, i64>(0))?
                > 0;
            if !held {
                return Ok(false);
            }
            Ok(c.prepare_cached(
                "INSERT INTO flow_loop_items (run_id, node_id, idx, output, credit_cost) VALUES (?, ?, ?, ?, ?) ON CONFLICT(run_id, node_id, idx) DO NOTHING",
            )?
            .execute(params![run_id, node_id, idx, output, credit_cost])?
                > 0)
        })
        .await
    }

    async fn flow_loop_items(&self, run_id: &str, node_id: &str, after_idx: i64, limit: usize) -> Result<Vec<(i64, Value, f64)>> {
        let (run_id, node_id) = (run_id.to_string(), node_id.to_string());
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.read_blocking(move |c| {
            let mut st =
                c.prepare_cached("SELECT idx, output, credit_cost FROM flow_loop_items WHERE run_id = ? AND node_id = ? AND idx > ? ORDER BY idx LIMIT ?")?;
            let rows = st
                .query_map(params![run_id, node_id, after_idx, limit], |r| {
                    Ok((r.get::<_, i64>(0)?, parse(&r.get::<_, String>(1)?, "loop item output")?, r.get::<_, f64>(2)?))
                })?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            Ok(rows)
        })
        .await
    }

    async fn append_flow_log(&self, run_id: &str, lines: Vec<String>) -> Result<()> {
        let id = run_id.to_string();
        self.write(move |c| Ok(insert_log(c, &id, &lines)?)).await
    }

    async fn flow_log(&self, run_id: &str) -> Result<Vec<String>> {
        let id = run_id.to_string();
        self.read_blocking(move |c| {
            let mut st = c.prepare_cached("SELECT line FROM flow_run_log WHERE run_id = ? ORDER BY id")?;
            let rows = st.query_map([id], |r| r.get(0))?.collect::<rusqlite::Result<Vec<String>>>()?;
            Ok(rows)
        })
        .await
    }
}
