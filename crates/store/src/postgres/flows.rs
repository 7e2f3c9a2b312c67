//! Flows, workbooks, flow runs, node results, loop items and run logs (ported from
//! `sqlite/flows.rs`). SQLite's single writer made "read, then write" safe; here a save
//! locks the flow row before numbering the next version, node and loop-item commits lock
//! the run row while they check the lease, and claims skip rows other replicas hold.

use async_trait::async_trait;
use serde_json::Value;
use sqlx::postgres::PgRow;
use sqlx::{Postgres, Row, Transaction};

use super::{corrupt, pg_json, pg_text, PgStore};
use crate::{FlowNodeResult, FlowOwner, FlowRecord, FlowRunEnd, FlowRunRecord, FlowRunState, FlowStore, FlowVersionRecord, Result, StoreError, WorkbookRecord};

const WORKBOOK_COLS: &str = "id, organization_id, owner_user_id, team_id, name, description, created_at";
const FLOW_COLS: &str = "id, organization_id, owner_user_id, team_id, workbook_id, name, description, version, document, created_by, created_at, updated_at";
const VERSION_COLS: &str = "flow_id, version, document, created_by, created_at";
const RUN_COLS: &str = "id, flow_id, flow_version, workbook_id, organization_id, user_id, team_id, state, inputs, outputs, error, credit_cost, \
                        kill_requested, attempts, created_at, started_at, finished_at";
const NODE_COLS: &str = "run_id, node_id, status, output, credit_cost, created_at";

fn document(r: &PgRow) -> Result<Value> {
    let s: String = r.try_get("document")?;
    serde_json::from_str(&s).map_err(|e| corrupt("flow document", e))
}

fn workbook_from(r: &PgRow) -> Result<WorkbookRecord> {
    Ok(WorkbookRecord {
        id: r.try_get("id")?,
        organization_id: r.try_get("organization_id")?,
        owner_user_id: r.try_get("owner_user_id")?,
        team_id: r.try_get("team_id")?,
        name: r.try_get("name")?,
        description: r.try_get("description")?,
        created_at: r.try_get("created_at")?,
    })
}

fn flow_from(r: &PgRow) -> Result<FlowRecord> {
    Ok(FlowRecord {
        id: r.try_get("id")?,
        organization_id: r.try_get("organization_id")?,
        owner_user_id: r.try_get("owner_user_id")?,
        team_id: r.try_get("team_id")?,
        workbook_id: r.try_get("workbook_id")?,
        name: r.try_get("name")?,
        description: r.try_get("description")?,
        version: r.try_get("version")?,
        document: document(r)?,
        created_by: r.try_get("created_by")?,
        created_at: r.try_get("created_at")?,
        updated_at: r.try_get("updated_at")?,
    })
}

fn version_from(r: &PgRow) -> Result<FlowVersionRecord> {
    Ok(FlowVersionRecord {
        flow_id: r.try_get("flow_id")?,
        version: r.try_get("version")?,
        document: document(r)?,
        created_by: r.try_get("created_by")?,
        created_at: r.try_get("created_at")?,
    })
}

fn run_from(r: &PgRow) -> Result<FlowRunRecord> {
    let state: String = r.try_get("state")?;
    Ok(FlowRunRecord {
        id: r.try_get("id")?,
        flow_id: r.try_get("flow_id")?,
        flow_version: r.try_get("flow_version")?,
        workbook_id: r.try_get("workbook_id")?,
        organization_id: r.try_get("organization_id")?,
        user_id: r.try_get("user_id")?,
        team_id: r.try_get("team_id")?,
        state: FlowRunState::parse(&state).ok_or_else(|| corrupt("flow run state", format!("unknown state {state:?}")))?,
        inputs: r.try_get("inputs")?,
        outputs: r.try_get("outputs")?,
        error: r.try_get("error")?,
        credit_cost: r.try_get("credit_cost")?,
        kill_requested: r.try_get("kill_requested")?,
        attempts: r.try_get("attempts")?,
        created_at: r.try_get("created_at")?,
        started_at: r.try_get("started_at")?,
        finished_at: r.try_get("finished_at")?,
    })
}

fn node_from(r: &PgRow) -> Result<FlowNodeResult> {
    Ok(FlowNodeResult {
        run_id: r.try_get("run_id")?,
        node_id: r.try_get("node_id")?,
        status: r.try_get("status")?,
        output: r.try_get("output")?,
        credit_cost: r.try_get("credit_cost")?,
        created_at: r.try_get("created_at")?,
    })
}

/// SQLite's `team_id IS ? AND owner_user_id IS ?` for an owner (one side is NULL), as an
/// index-friendly condition and its one argument.
fn owner_filter(o: &FlowOwner) -> (&'static str, &str) {
    match o {
        FlowOwner::User(u) => ("team_id IS NULL AND owner_user_id = $1", u),
        FlowOwner::Team(t) => ("team_id = $1 AND owner_user_id IS NULL", t),
    }
}

/// Appends log lines in order (one statement; the identity numbers them in that order).
async fn insert_log(tx: &mut Transaction<'static, Postgres>, run_id: &str, lines: &[String]) -> Result<()> {
    if lines.is_empty() {
        return Ok(());
    }
    sqlx::query("INSERT INTO flow_run_log (run_id, line) SELECT $1, l FROM unnest($2::text[]) WITH ORDINALITY AS t(l, n) ORDER BY n")
        .bind(run_id)
        .bind(lines.iter().map(|l| pg_text(l)).collect::<Vec<_>>())
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// Locks the run row while `owner` holds its lease (so the lease cannot move until the
/// transaction ends); false when it does not.
async fn lock_leased_run(tx: &mut Transaction<'static, Postgres>, run_id: &str, owner: &str, share: bool) -> Result<bool> {
    let sql = if share {
        "SELECT 1 FROM flow_runs WHERE id = $1 AND lease_owner = $2 FOR SHARE"
    } else {
        "SELECT 1 FROM flow_runs WHERE id = $1 AND lease_owner = $2 FOR UPDATE"
    };
    Ok(sqlx::query(sql).bind(run_id).bind(owner).fetch_optional(&mut **tx).await?.is_some())
}

#[async_trait]
impl FlowStore for PgStore {
    async fn ensure_workbook(&self, w: &WorkbookRecord) -> Result<()> {
        let mut tx = self.begin().await?;
        sqlx::query(
            "INSERT INTO workbooks (id, organization_id, owner_user_id, team_id, name, description, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7) \
             ON CONFLICT (id) DO NOTHING",
        )
        .bind(&w.id)
        .bind(&w.organization_id)
        .bind(&w.owner_user_id)
        .bind(&w.team_id)
        .bind(pg_text(&w.name))
        .bind(w.description.as_deref().map(pg_text))
        .bind(w.created_at)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn workbook(&self, id: &str) -> Result<Option<WorkbookRecord>> {
        let row = sqlx::query(&format!("SELECT {WORKBOOK_COLS} FROM workbooks WHERE id = $1")).bind(id).fetch_optional(self.pool()).await?;
        row.as_ref().map(workbook_from).transpose()
    }

    async fn list_workbooks(&self, owner: &FlowOwner) -> Result<Vec<WorkbookRecord>> {
        let (cond, arg) = owner_filter(owner);
        let rows = sqlx::query(&format!("SELECT {WORKBOOK_COLS} FROM workbooks WHERE {cond} ORDER BY created_at, id")).bind(arg).fetch_all(self.pool()).await?;
        rows.iter().map(workbook_from).collect()
    }

    async fn save_flow(&self, f: &FlowRecord) -> Result<FlowRecord> {
        let doc = serde_json::to_string(&f.document).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let mut tx = self.begin().await?;
        // The flow row is locked before the next version is numbered, so concurrent saves
        // of one flow take turns. A first save that races another first save finds the
        // row the other inserted (the insert waits for it) and saves the next version.
        let mut attempt = 0;
        let (version, created_at) = loop {
            attempt += 1;
            let existing =
                sqlx::query("SELECT version, deleted_at, created_at FROM flows WHERE id = $1 FOR UPDATE").bind(&f.id).fetch_optional(&mut *tx).await?;
            if let Some(r) = existing {
                let (v, deleted, created): (i64, Option<i64>, i64) = (r.try_get("version")?, r.try_get("deleted_at")?, r.try_get("created_at")?);
                if deleted.is_some() {
                    return Err(StoreError::Conflict(format!("flow {} was deleted", f.id)));
                }
                sqlx::query("UPDATE flows SET workbook_id = $1, name = $2, description = $3, version = $4, document = $5, updated_at = $6 WHERE id = $7 AND version = $8")
                    .bind(&f.workbook_id)
                    .bind(pg_text(&f.name))
                    .bind(f.description.as_deref().map(pg_text))
                    .bind(v + 1)
                    .bind(&doc)
                    .bind(f.updated_at)
                    .bind(&f.id)
                    .bind(v)
                    .execute(&mut *tx)
                    .await?;
                break (v + 1, created);
            }
            let inserted = sqlx::query(
                "INSERT INTO flows (id, organization_id, owner_user_id, team_id, workbook_id, name, description, version, document, created_by, created_at, updated_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, 1, $8, $9, $10, $11) ON CONFLICT (id) DO NOTHING",
            )
            .bind(&f.id)
            .bind(&f.organization_id)
            .bind(&f.owner_user_id)
            .bind(&f.team_id)
            .bind(&f.workbook_id)
            .bind(pg_text(&f.name))
            .bind(f.description.as_deref().map(pg_text))
            .bind(&doc)
            .bind(&f.created_by)
            .bind(f.created_at)
            .bind(f.updated_at)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if inserted > 0 {
                break (1, f.created_at);
            }
            if attempt >= 3 {
                return Err(StoreError::Conflict("flow".into()));
            }
        };
        sqlx::query("INSERT INTO flow_versions (flow_id, version, document, created_by, created_at) VALUES ($1, $2, $3, $4, $5)")
            .bind(&f.id)
            .bind(version)
            .bind(&doc)
            .bind(&f.created_by)
            .bind(f.updated_at)
            .execute(&mut *tx)
            .await
            .map_err(|e| super::unique(e, "flow version"))?;
        tx.commit().await?;
        Ok(FlowRecord { version, created_at, ..f.clone() })
    }

    async fn flow(&self, id: &str) -> Result<Option<FlowRecord>> {
        let row = sqlx::query(&format!("SELECT {FLOW_COLS} FROM flows WHERE id = $1 AND deleted_at IS NULL")).bind(id).fetch_optional(self.pool()).await?;
        row.as_ref().map(flow_from).transpose()
    }

    async fn flow_version(&self, id: &str, version: i64) -> Result<Option<FlowVersionRecord>> {
        let row = sqlx::query(&format!("SELECT {VERSION_COLS} FROM flow_versions WHERE flow_id = $1 AND version = $2"))
            .bind(id)
            .bind(version)
            .fetch_optional(self.pool())
            .await?;
        row.as_ref().map(version_from).transpose()
    }

    async fn flow_versions(&self, id: &str) -> Result<Vec<FlowVersionRecord>> {
        let rows =
            sqlx::query(&format!("SELECT {VERSION_COLS} FROM flow_versions WHERE flow_id = $1 ORDER BY version DESC")).bind(id).fetch_all(self.pool()).await?;
        rows.iter().map(version_from).collect()
    }

    async fn list_flows(&self, owner: &FlowOwner) -> Result<Vec<FlowRecord>> {
        let (cond, arg) = owner_filter(owner);
        let rows = sqlx::query(&format!("SELECT {FLOW_COLS} FROM flows WHERE {cond} AND deleted_at IS NULL ORDER BY created_at, id"))
            .bind(arg)
            .fetch_all(self.pool())
            .await?;
        rows.iter().map(flow_from).collect()
    }

    async fn flows_in_workbook(&self, workbook_id: &str) -> Result<Vec<FlowRecord>> {
        let rows = sqlx::query(&format!("SELECT {FLOW_COLS} FROM flows WHERE workbook_id = $1 AND deleted_at IS NULL ORDER BY created_at, id"))
            .bind(workbook_id)
            .fetch_all(self.pool())
            .await?;
        rows.iter().map(flow_from).collect()
    }

    async fn delete_flow(&self, id: &str, now: i64) -> Result<bool> {
        let mut tx = self.begin().await?;
        let n =
            sqlx::query("UPDATE flows SET deleted_at = $1 WHERE id = $2 AND deleted_at IS NULL").bind(now).bind(id).execute(&mut *tx).await?.rows_affected();
        tx.commit().await?;
        Ok(n > 0)
    }

    async fn create_flow_run(&self, r: &FlowRunRecord) -> Result<()> {
        let mut tx = self.begin().await?;
        sqlx::query(
            "INSERT INTO flow_runs (id, flow_id, flow_version, workbook_id, organization_id, user_id, team_id, state, inputs, outputs, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
        )
        .bind(&r.id)
        .bind(&r.flow_id)
        .bind(r.flow_version)
        .bind(&r.workbook_id)
        .bind(&r.organization_id)
        .bind(&r.user_id)
        .bind(&r.team_id)
        .bind(r.state.as_str())
        .bind(pg_json(&r.inputs).as_ref())
        .bind(pg_json(&r.outputs).as_ref())
        .bind(r.created_at)
        .execute(&mut *tx)
        .await
        .map_err(|e| super::unique(e, "flow run"))?;
        tx.commit().await?;
        Ok(())
    }

    async fn flow_run(&self, id: &str) -> Result<Option<FlowRunRecord>> {
        let row = sqlx::query(&format!("SELECT {RUN_COLS} FROM flow_runs WHERE id = $1")).bind(id).fetch_optional(self.pool()).await?;
        row.as_ref().map(run_from).transpose()
    }

    async fn flow_run_status(&self, id: &str) -> Result<Option<FlowRunRecord>> {
        let row = sqlx::query(
            "SELECT id, flow_id, flow_version, workbook_id, organization_id, user_id, team_id, state, '{}'::jsonb AS inputs, outputs, error, credit_cost, \
             kill_requested, attempts, created_at, started_at, finished_at FROM flow_runs WHERE id = $1",
        )
        .bind(id)
        .fetch_optional(self.pool())
        .await?;
        row.as_ref().map(run_from).transpose()
    }

    async fn recent_flow_runs(&self, flow_id: &str, limit: usize) -> Result<Vec<FlowRunRecord>> {
        let rows = sqlx::query(
            "SELECT id, flow_id, flow_version, workbook_id, organization_id, user_id, team_id, state, '{}'::jsonb AS inputs, '{}'::jsonb AS outputs, error, \
             credit_cost, kill_requested, attempts, created_at, started_at, finished_at FROM flow_runs WHERE flow_id = $1 ORDER BY created_at DESC, id DESC LIMIT $2",
        )
        .bind(flow_id)
        .bind(i64::try_from(limit).unwrap_or(i64::MAX))
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(run_from).collect()
    }

    async fn claim_flow_run(&self, owner: &str, now: i64, lease_until: i64) -> Result<Option<FlowRunRecord>> {
        let mut tx = self.begin().await?;
        let row = sqlx::query(&format!(
            "UPDATE flow_runs SET lease_owner = $1, lease_expires_at = $2, attempts = attempts + 1 \
             WHERE id = (SELECT id FROM flow_runs WHERE state IN ('QUEUED', 'STARTED', 'RUNNING', 'TERMINATING') \
                           AND (lease_expires_at IS NULL OR lease_expires_at < $3) ORDER BY created_at, id LIMIT 1 FOR UPDATE SKIP LOCKED) \
             RETURNING {RUN_COLS}"
        ))
        .bind(owner)
        .bind(lease_until)
        .bind(now)
        .fetch_optional(&mut *tx)
        .await?;
        let run = row.as_ref().map(run_from).transpose()?;
        tx.commit().await?;
        Ok(run)
    }

    async fn heartbeat_flow_run(&self, id: &str, owner: &str, lease_until: i64) -> Result<bool> {
        let n = self
            .write_one(sqlx::query("UPDATE flow_runs SET lease_expires_at = $1 WHERE id = $2 AND lease_owner = $3").bind(lease_until).bind(id).bind(owner))
            .await?;
        Ok(n > 0)
    }

    async fn release_flow_leases(&self, owner_prefix: &str) -> Result<u64> {
        let n = self
            .write_one(
                sqlx::query("UPDATE flow_runs SET lease_owner = NULL, lease_expires_at = NULL WHERE lease_owner IS NOT NULL AND starts_with(lease_owner, $1)")
                    .bind(owner_prefix),
            )
            .await?;
        Ok(n)
    }

    async fn move_flow_run(&self, id: &str, owner: Option<&str>, from: FlowRunState, to: FlowRunState, end: FlowRunEnd) -> Result<()> {
        let terminal = to.is_terminal();
        let mut tx = self.begin().await?;
        let n = sqlx::query(
            "UPDATE flow_runs SET state = $1, \
               started_at = CASE WHEN $1 = 'STARTED' THEN COALESCE(started_at, $2) ELSE started_at END, \
               finished_at = CASE WHEN $3 THEN $2 ELSE finished_at END, \
               outputs = COALESCE($4, outputs), error = COALESCE($5, error), \
               lease_owner = CASE WHEN $3 THEN NULL ELSE lease_owner END, \
               lease_expires_at = CASE WHEN $3 THEN NULL ELSE lease_expires_at END \
             WHERE id = $6 AND state = $7 AND ($8::text IS NULL OR lease_owner = $8)",
        )
        .bind(to.as_str())
        .bind(end.now)
        .bind(terminal)
        .bind(end.outputs.as_ref().map(pg_json).as_deref())
        .bind(end.error.as_deref().map(pg_text))
        .bind(id)
        .bind(from.as_str())
        .bind(owner)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if n == 0 {
            let actual: Option<String> = sqlx::query_scalar("SELECT state FROM flow_runs WHERE id = $1").bind(id).fetch_optional(&mut *tx).await?;
            return Err(StoreError::Refused { expected: from.as_str(), actual: actual.unwrap_or_else(|| "missing".into()) });
        }
        insert_log(&mut tx, id, &end.log).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn request_flow_kill(&self, id: &str) -> Result<Option<FlowRunRecord>> {
        let mut tx = self.begin().await?;
        let row = sqlx::query(&format!(
            "UPDATE flow_runs SET kill_requested = TRUE, state = CASE WHEN state IN ('QUEUED', 'STARTED', 'RUNNING') THEN 'TERMINATING' ELSE state END \
             WHERE id = $1 RETURNING {RUN_COLS}"
        ))
        .bind(id)
        .fetch_optional(&mut *tx)
        .await?;
        let run = row.as_ref().map(run_from).transpose()?;
        tx.commit().await?;
        Ok(run)
    }

    async fn commit_flow_node(&self, owner: &str, r: &FlowNodeResult, log: Vec<String>) -> Result<bool> {
        let mut tx = self.begin().await?;
        // The run row stays locked (the cost is added to it below): the lease cannot move
        // to another worker between this check and the commit.
        if !lock_leased_run(&mut tx, &r.run_id, owner, false).await? {
            return Ok(false);
        }
        let n = sqlx::query(
            "INSERT INTO flow_node_results (run_id, node_id, status, output, credit_cost, created_at) VALUES ($1, $2, $3, $4, $5, $6) \
             ON CONFLICT (run_id, node_id) DO NOTHING",
        )
        .bind(&r.run_id)
        .bind(pg_text(&r.node_id))
        .bind(pg_text(&r.status))
        .bind(pg_json(&r.output).as_ref())
        .bind(r.credit_cost)
        .bind(r.created_at)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if n == 0 {
            return Ok(false);
        }
        if r.credit_cost != 0.0 {
            sqlx::query("UPDATE flow_runs SET credit_cost = credit_cost + $1 WHERE id = $2").bind(r.credit_cost).bind(&r.run_id).execute(&mut *tx).await?;
        }
        insert_log(&mut tx, &r.run_id, &log).await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn flow_node_results(&self, run_id: &str) -> Result<Vec<FlowNodeResult>> {
        let rows =
            sqlx::query(&format!("SELECT {NODE_COLS} FROM flow_node_results WHERE run_id = $1 ORDER BY node_id")).bind(run_id).fetch_all(self.pool()).await?;
        rows.iter().map(node_from).collect()
    }

    async fn commit_flow_loop_item(&self, owner: &str, run_id: &str, node_id: &str, idx: i64, output: &Value, credit_cost: f64) -> Result<bool> {
        let mut tx = self.begin().await?;
        // A shared lock: items of one loop commit side by side, while the lease cannot
        // move until they are written.
        if !lock_leased_run(&mut tx, run_id, owner, true).await? {
            return Ok(false);
        }
        let n = sqlx::query(
            "INSERT INTO flow_loop_items (run_id, node_id, idx, output, credit_cost) VALUES ($1, $2, $3, $4, $5) ON CONFLICT (run_id, node_id, idx) DO NOTHING",
        )
        .bind(run_id)
        .bind(pg_text(node_id))
        .bind(idx)
        .bind(pg_json(output).as_ref())
        .bind(credit_cost)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        tx.commit().await?;
        Ok(n > 0)
    }

    async fn flow_loop_items(&self, run_id: &str, node_id: &str, after_idx: i64, limit: usize) -> Result<Vec<(i64, Value, f64)>> {
        let rows = sqlx::query("SELECT idx, output, credit_cost FROM flow_loop_items WHERE run_id = $1 AND node_id = $2 AND idx > $3 ORDER BY idx LIMIT $4")
            .bind(run_id)
            .bind(pg_text(node_id))
            .bind(after_idx)
            .bind(i64::try_from(limit).unwrap_or(i64::MAX))
            .fetch_all(self.pool())
            .await?;
        rows.iter().map(|r| Ok((r.try_get("idx")?, r.try_get("output")?, r.try_get("credit_cost")?))).collect()
    }

    async fn append_flow_log(&self, run_id: &str, lines: Vec<String>) -> Result<()> {
        if lines.is_empty() {
            return Ok(());
        }
        let mut tx = self.begin().await?;
        insert_log(&mut tx, run_id, &lines).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn flow_log(&self, run_id: &str) -> Result<Vec<String>> {
        Ok(sqlx::query_scalar("SELECT line FROM flow_run_log WHERE run_id = $1 ORDER BY id").bind(run_id).fetch_all(self.pool()).await?)
    }
}
