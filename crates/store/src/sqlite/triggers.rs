use async_trait::async_trait;
use rusqlite::{params, params_from_iter, OptionalExtension, Row};

use super::{unique, SqliteStore};
use crate::{PageWindow, Result, ScheduleAdvance, SortVal, TriggerRecord, TriggerRunRecord, TriggerRunView, TriggerStats, TriggerStore};

const TRIGGER_COLS: &str = "id, agent_id, organization_id, creator_user_id, type, name, prompt, cron_expression, run_at, timezone, pass_raw_data, \
    enabled, status, max_failures, consecutive_failures, integration, webhook_salt, next_fire_at, last_run_at, version, created_at, updated_at";

const RUN_COLS: &str =
    "r.id, r.trigger_id, r.agent_id, r.source, r.delivery_key, r.session_id, r.input, r.state, r.error, r.scheduled_for, r.created_at, r.updated_at";

fn trigger_from(r: &Row) -> rusqlite::Result<TriggerRecord> {
    Ok(TriggerRecord {
        id: r.get("id")?,
        agent_id: r.get("agent_id")?,
        organization_id: r.get("organization_id")?,
        creator_user_id: r.get("creator_user_id")?,
        kind: r.get("type")?,
        name: r.get("name")?,
        prompt: r.get("prompt")?,
        cron_expression: r.get("cron_expression")?,
        run_at: r.get("run_at")?,
        timezone: r.get("timezone")?,
        pass_raw_data: r.get::<_, i64>("pass_raw_data")? != 0,
        enabled: r.get::<_, i64>("enabled")? != 0,
        status: r.get("status")?,
        max_failures: r.get("max_failures")?,
        consecutive_failures: r.get("consecutive_failures")?,
        integration: r.get("integration")?,
        webhook_salt: r.get("webhook_salt")?,
        next_fire_at: r.get("next_fire_at")?,
        last_run_at: r.get("last_run_at")?,
        version: r.get("version")?,
        created_at: r.get("created_at")?,
        updated_at: r.get("updated_at")?,
    })
}

fn run_from(r: &Row) -> rusqlite::Result<TriggerRunRecord> {
    Ok(TriggerRunRecord {
        id: r.get(0)?,
        trigger_id: r.get(1)?,
        agent_id: r.get(2)?,
        source: r.get(3)?,
        delivery_key: r.get(4)?,
        session_id: r.get(5)?,
        input: r.get(6)?,
        state: r.get(7)?,
        error: r.get(8)?,
        scheduled_for: r.get(9)?,
        created_at: r.get(10)?,
        updated_at: r.get(11)?,
    })
}

fn insert_run(c: &rusqlite::Connection, run: &TriggerRunRecord) -> rusqlite::Result<usize> {
    c.prepare_cached(
        "INSERT INTO agent_trigger_runs (id, trigger_id, agent_id, source, delivery_key, session_id, input, state, error, scheduled_for, created_at, updated_at) \
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (trigger_id, delivery_key) DO NOTHING",
    )?
    .execute(params![
        run.id,
        run.trigger_id,
        run.agent_id,
        run.source,
        run.delivery_key,
        run.session_id,
        run.input,
        run.state,
        run.error,
        run.scheduled_for,
        run.created_at,
        run.updated_at
    ])
}

#[async_trait]
impl TriggerStore for SqliteStore {
    async fn create_trigger(&self, t: &TriggerRecord) -> Result<()> {
        let t = t.clone();
        self.write(move |c| {
            c.prepare_cached(&format!(
                "INSERT INTO agent_triggers ({TRIGGER_COLS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
            ))?
            .execute(params![
                t.id,
                t.agent_id,
                t.organization_id,
                t.creator_user_id,
                t.kind,
                t.name,
                t.prompt,
                t.cron_expression,
                t.run_at,
                t.timezone,
                t.pass_raw_data,
                t.enabled,
                t.status,
                t.max_failures,
                t.consecutive_failures,
                t.integration,
                t.webhook_salt,
                t.next_fire_at,
                t.last_run_at,
                t.version,
                t.created_at,
                t.updated_at
            ])
            .map_err(|e| unique(e, "trigger id taken"))?;
            Ok(())
        })
        .await
    }

    async fn trigger(&self, id: &str) -> Result<Option<TriggerRecord>> {
        let id = id.to_string();
        self.read(move |c| {
            Ok(c.prepare_cached(&format!("SELECT {TRIGGER_COLS} FROM agent_triggers WHERE id = ?"))?.query_row([id], trigger_from).optional()?)
        })
        .await
    }

    async fn list_triggers(&self, agent_id: &str, page: &PageWindow) -> Result<Vec<(SortVal, TriggerRecord)>> {
        let (agent_id, page) = (agent_id.to_string(), page.clone());
        self.read(move |c| {
            let (cmp, dir) = if page.desc { ("<", "DESC") } else { (">", "ASC") };
            let (after_at, after_id) = match &page.after {
                Some((SortVal::Int(k), id)) => (Some(*k), id.clone()),
                _ => (None, String::new()),
            };
            let sql = format!(
                "SELECT {TRIGGER_COLS} FROM agent_triggers WHERE agent_id = ?1 AND (?2 IS NULL OR (created_at, id) {cmp} (?2, ?3)) \
                 ORDER BY created_at {dir}, id {dir} LIMIT ?4"
            );
            let rows = c
                .prepare_cached(&sql)?
                .query_map(params![agent_id, after_at, after_id, page.limit.min(i64::MAX as usize) as i64], trigger_from)?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            Ok(rows.into_iter().map(|t| (SortVal::Int(t.created_at), t)).collect())
        })
        .await
    }

    async fn update_trigger(&self, t: &TriggerRecord, expected_version: i64, reschedule: bool) -> Result<bool> {
        let t = t.clone();
        self.write(move |c| {
            let n = c
                .prepare_cached(
                    "UPDATE agent_triggers SET name = ?, prompt = ?, cron_expression = ?, run_at = ?, timezone = ?, pass_raw_data = ?, enabled = ?, \
                     status = ?, max_failures = ?, consecutive_failures = ?, integration = ?, \
                     next_fire_at = CASE WHEN ? THEN ? ELSE next_fire_at END, version = ?, updated_at = ? WHERE id = ? AND version = ?",
                )?
                .execute(params![
                    t.name,
                    t.prompt,
                    t.cron_expression,
                    t.run_at,
                    t.timezone,
                    t.pass_raw_data,
                    t.enabled,
                    t.status,
                    t.max_failures,
                    t.consecutive_failures,
                    t.integration,
                    reschedule,
                    t.next_fire_at,
                    t.version,
                    t.updated_at,
                    t.id,
                    expected_version
                ])?;
            Ok(n == 1)
        })
        .await
    }

    async fn delete_trigger(&self, id: &str) -> Result<bool> {
        let id = id.to_string();
        self.write(move |c| {
            c.prepare_cached("DELETE FROM agent_trigger_runs WHERE trigger_id = ?")?.execute([&id])?;
            Ok(c.prepare_cached("DELETE FROM agent_triggers WHERE id = ?")?.execute([&id])? == 1)
        })
        .await
    }

    async fn due_triggers(&self, now: i64, limit: usize) -> Result<Vec<TriggerRecord>> {
        self.read(move |c| {
            let cols = TRIGGER_COLS.split(", ").map(|col| format!("t.{col}")).collect::<Vec<_>>().join(", ");
            let sql = format!(
                "SELECT {cols} FROM agent_triggers t INDEXED BY agent_triggers_due JOIN agents a ON a.id = t.agent_id \
                 WHERE t.next_fire_at IS NOT NULL AND t.enabled = 1 AND t.next_fire_at <= ?1 AND t.type = 'schedule' \
                 AND a.deleted_at IS NULL AND a.is_active = 1 ORDER BY t.next_fire_at LIMIT ?2"
            );
            let rows = c.prepare_cached(&sql)?.query_map(params![now, limit as i64], trigger_from)?.collect::<rusqlite::Result<Vec<_>>>()?;
            Ok(rows)
        })
        .await
    }

    async fn claim_trigger_fire(&self, trigger_id: &str, expected_next: i64, advance: &ScheduleAdvance, run: &TriggerRunRecord) -> Result<bool> {
        let (trigger_id, advance, run) = (trigger_id.to_string(), advance.clone(), run.clone());
        self.write(move |c| {
            let n = c
                .prepare_cached(
                    "UPDATE agent_triggers SET next_fire_at = ?1, status = COALESCE(?2, status), last_run_at = ?3 \
                     WHERE id = ?4 AND next_fire_at = ?5 AND enabled = 1",
                )?
                .execute(params![advance.next_fire_at, advance.status, run.created_at, trigger_id, expected_next])?;
            if n != 1 {
                return Ok(false);
            }
            insert_run(c, &run)?;
            Ok(true)
        })
        .await
    }

    async fn record_trigger_delivery(&self, run: &TriggerRunRecord) -> Result<(TriggerRunRecord, bool)> {
        let run = run.clone();
        self.write(move |c| {
            let fresh = insert_run(c, &run)? == 1;
            if fresh {
                c.prepare_cached("UPDATE agent_triggers SET last_run_at = ? WHERE id = ?")?.execute(params![run.created_at, run.trigger_id])?;
                return Ok((run, true));
            }
            let stored = c
                .prepare_cached(&format!("SELECT {RUN_COLS} FROM agent_trigger_runs r WHERE r.trigger_id = ? AND r.delivery_key = ?"))?
                .query_row(params![run.trigger_id, run.delivery_key], run_from)?;
            Ok((stored, false))
        })
        .await
    }

    async fn settle_trigger_run(&self, run_id: &str, started: bool, error: Option<&str>, now: i64) -> Result<()> {
        let (run_id, error) = (run_id.to_string(), error.map(str::to_string));
        self.write(move |c| {
            let state = if started { "started" } else { "failed" };
            let trigger_id: Option<String> = c
                .prepare_cached("UPDATE agent_trigger_runs SET state = ?, error = ?, updated_at = ? WHERE id = ? AND state = 'pending' RETURNING trigger_id")?
                .query_row(params![state, error, now, run_id], |r| r.get(0))
                .optional()?;
            let Some(trigger_id) = trigger_id else { return Ok(()) };
            if started {
                c.prepare_cached("UPDATE agent_triggers SET consecutive_failures = 0 WHERE id = ?")?.execute([trigger_id])?;
            } else {
                c.prepare_cached(
                    "UPDATE agent_triggers SET consecutive_failures = consecutive_failures + 1, \
                     enabled = CASE WHEN max_failures IS NOT NULL AND consecutive_failures + 1 >= max_failures THEN 0 ELSE enabled END, \
                     status = CASE WHEN max_failures IS NOT NULL AND consecutive_failures + 1 >= max_failures THEN 'failed' ELSE status END, \
                     next_fire_at = CASE WHEN max_failures IS NOT NULL AND consecutive_failures + 1 >= max_failures THEN NULL ELSE next_fire_at END \
                     WHERE id = ?",
                )?
                .execute([trigger_id])?;
            }
            Ok(())
        })
        .await
    }

    async fn pending_trigger_runs(&self, before: i64, limit: usize) -> Result<Vec<TriggerRunRecord>> {
        self.read(move |c| {
            let sql = format!("SELECT {RUN_COLS} FROM agent_trigger_runs r WHERE r.state = 'pending' AND r.created_at < ? ORDER BY r.created_at LIMIT ?");
            Ok(c.prepare_cached(&sql)?.query_map(params![before, limit as i64], run_from)?.collect::<rusqlite::Result<Vec<_>>>()?)
        })
        .await
    }

    async fn trigger_run(&self, id: &str) -> Result<Option<TriggerRunRecord>> {
        let id = id.to_string();
        self.read(move |c| {
            Ok(c.prepare_cached(&format!("SELECT {RUN_COLS} FROM agent_trigger_runs r WHERE r.id = ?"))?.query_row([id], run_from).optional()?)
        })
        .await
    }

    async fn list_trigger_runs(&self, trigger_id: &str, states: Option<&[String]>, page: &PageWindow) -> Result<Vec<(SortVal, TriggerRunView)>> {
        let (trigger_id, states, page) = (trigger_id.to_string(), states.map(<[String]>::to_vec), page.clone());
        self.read_blocking(move |c| {
            let (cmp, dir) = if page.desc { ("<", "DESC") } else { (">", "ASC") };
            let mut args: Vec<rusqlite::types::Value> = vec![trigger_id.into()];
            let mut sql = format!(
                "SELECT {RUN_COLS}, COALESCE(ru.state, s.state), ru.user_message_id, ru.finished_at, json_extract(s.usage, '$.credit_cost') \
                 FROM agent_trigger_runs r LEFT JOIN sessions s ON s.id = r.session_id \
                 LEFT JOIN runs ru ON ru.id = (SELECT x.id FROM runs x WHERE x.session_id = r.session_id ORDER BY x.created_at, x.id LIMIT 1) \
                 WHERE r.trigger_id = ?"
            );
            if let Some(states) = &states {
                let marks = vec!["?"; states.len().max(1)].join(", ");
                sql.push_str(&format!(" AND (CASE WHEN r.state = 'started' THEN COALESCE(ru.state, s.state, 'pending') ELSE r.state END) IN ({marks})"));
                if states.is_empty() {
                    args.push(rusqlite::types::Value::Null);
                }
                args.extend(states.iter().cloned().map(Into::into));
            }
            if let Some((SortVal::Int(k), id)) = &page.after {
                sql.push_str(&format!(" AND (r.created_at, r.id) {cmp} (?, ?)"));
                args.push((*k).into());
                args.push(id.clone().into());
            }
            sql.push_str(&format!(" ORDER BY r.created_at {dir}, r.id {dir} LIMIT ?"));
            args.push((page.limit.min(i64::MAX as usize) as i64).into());
            let rows = c
                .prepare(&sql)?
                .query_map(params_from_iter(args), |r| {
                    Ok(TriggerRunView {
                        run: run_from(r)?,
                        session_state: r.get(12)?,
                        user_message_id: r.get(13)?,
                        finished_at: r.get(14)?,
                        credit_cost: r.get(15)?,
                    })
                })?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            Ok(rows.into_iter().map(|v| (SortVal::Int(v.run.created_at), v)).collect())
        })
        .await
    }

    async fn trigger_stats(&self, trigger_id: &str) -> Result<TriggerStats> {
        let trigger_id = trigger_id.to_string();
        self.read_blocking(move |c| {
            Ok(c.prepare_cached(
                "SELECT COUNT(*), COALESCE(SUM(CASE WHEN r.state = 'failed' OR s.state = 'failed' THEN 1 ELSE 0 END), 0), MAX(r.created_at), \
                 COALESCE(SUM(COALESCE(json_extract(s.usage, '$.credit_cost'), 0)), 0) \
                 FROM agent_trigger_runs r LEFT JOIN sessions s ON s.id = r.session_id WHERE r.trigger_id = ?",
            )?
            .query_row([trigger_id], |r| Ok(TriggerStats { run_count: r.get(0)?, failed_count: r.get(1)?, last_run_at: r.get(2)?, credits: r.get(3)? }))?)
        })
        .await
    }

    async fn active_trigger_counts(&self, agent_ids: &[String]) -> Result<Vec<(String, i64)>> {
        let ids = agent_ids.to_vec();
        self.read(move |c| {
            if ids.is_empty() {
                return Ok(vec![]);
            }
            let marks = vec!["?"; ids.len()].join(", ");
            let sql = format!("SELECT agent_id, COUNT(*) FROM agent_triggers WHERE enabled = 1 AND agent_id IN ({marks}) GROUP BY agent_id");
            Ok(c.prepare(&sql)?.query_map(params_from_iter(ids), |r| Ok((r.get(0)?, r.get(1)?)))?.collect::<rusqlite::Result<Vec<_>>>()?)
        })
        .await
    }
}
