use async_trait::async_trait;
use sqlx::postgres::PgRow;
use sqlx::Row;

use super::{pg_text, unique, PgStore};
use crate::{PageWindow, Result, ScheduleAdvance, SortVal, TriggerRecord, TriggerRunRecord, TriggerRunView, TriggerStats, TriggerStore};

const TRIGGER_COLS: &str = "t.id, t.agent_id, t.organization_id, t.creator_user_id, t.type, t.name, t.prompt, t.cron_expression, t.run_at, t.timezone, \
    t.pass_raw_data, t.enabled, t.status, t.max_failures, t.consecutive_failures, t.integration, t.webhook_salt, t.next_fire_at, t.last_run_at, \
    t.version, t.created_at, t.updated_at";

const RUN_COLS: &str =
    "r.id, r.trigger_id, r.agent_id, r.source, r.delivery_key, r.session_id, r.input, r.state, r.error, r.scheduled_for, r.created_at, r.updated_at";

fn trigger_from(r: &PgRow) -> sqlx::Result<TriggerRecord> {
    Ok(TriggerRecord {
        id: r.try_get("id")?,
        agent_id: r.try_get("agent_id")?,
        organization_id: r.try_get("organization_id")?,
        creator_user_id: r.try_get("creator_user_id")?,
        kind: r.try_get("type")?,
        name: r.try_get("name")?,
        prompt: r.try_get("prompt")?,
        cron_expression: r.try_get("cron_expression")?,
        run_at: r.try_get("run_at")?,
        timezone: r.try_get("timezone")?,
        pass_raw_data: r.try_get("pass_raw_data")?,
        enabled: r.try_get("enabled")?,
        status: r.try_get("status")?,
        max_failures: r.try_get("max_failures")?,
        consecutive_failures: r.try_get("consecutive_failures")?,
        integration: r.try_get("integration")?,
        webhook_salt: r.try_get("webhook_salt")?,
        next_fire_at: r.try_get("next_fire_at")?,
        last_run_at: r.try_get("last_run_at")?,
        version: r.try_get("version")?,
        created_at: r.try_get("created_at")?,
        updated_at: r.try_get("updated_at")?,
    })
}

fn run_from(r: &PgRow) -> sqlx::Result<TriggerRunRecord> {
    Ok(TriggerRunRecord {
        id: r.try_get("id")?,
        trigger_id: r.try_get("trigger_id")?,
        agent_id: r.try_get("agent_id")?,
        source: r.try_get("source")?,
        delivery_key: r.try_get("delivery_key")?,
        session_id: r.try_get("session_id")?,
        input: r.try_get("input")?,
        state: r.try_get("state")?,
        error: r.try_get("error")?,
        scheduled_for: r.try_get("scheduled_for")?,
        created_at: r.try_get("created_at")?,
        updated_at: r.try_get("updated_at")?,
    })
}

fn insert_run(run: &TriggerRunRecord) -> sqlx::query::Query<'_, sqlx::Postgres, sqlx::postgres::PgArguments> {
    sqlx::query(
        "INSERT INTO agent_trigger_runs (id, trigger_id, agent_id, source, delivery_key, session_id, input, state, error, scheduled_for, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) ON CONFLICT (trigger_id, delivery_key) DO NOTHING",
    )
    .bind(&run.id)
    .bind(&run.trigger_id)
    .bind(&run.agent_id)
    .bind(&run.source)
    .bind(pg_text(&run.delivery_key))
    .bind(&run.session_id)
    .bind(pg_text(&run.input))
    .bind(&run.state)
    .bind(run.error.as_deref().map(pg_text))
    .bind(run.scheduled_for)
    .bind(run.created_at)
    .bind(run.updated_at)
}

#[async_trait]
impl TriggerStore for PgStore {
    async fn create_trigger(&self, t: &TriggerRecord) -> Result<()> {
        let q = sqlx::query(
            "INSERT INTO agent_triggers (id, agent_id, organization_id, creator_user_id, type, name, prompt, cron_expression, run_at, timezone, \
             pass_raw_data, enabled, status, max_failures, consecutive_failures, integration, webhook_salt, next_fire_at, last_run_at, version, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21, $22)",
        )
        .bind(&t.id)
        .bind(&t.agent_id)
        .bind(&t.organization_id)
        .bind(&t.creator_user_id)
        .bind(&t.kind)
        .bind(t.name.as_deref().map(pg_text))
        .bind(pg_text(&t.prompt))
        .bind(t.cron_expression.as_deref().map(pg_text))
        .bind(t.run_at)
        .bind(t.timezone.as_deref().map(pg_text))
        .bind(t.pass_raw_data)
        .bind(t.enabled)
        .bind(&t.status)
        .bind(t.max_failures)
        .bind(t.consecutive_failures)
        .bind(t.integration.as_deref().map(pg_text))
        .bind(t.webhook_salt.as_deref())
        .bind(t.next_fire_at)
        .bind(t.last_run_at)
        .bind(t.version)
        .bind(t.created_at)
        .bind(t.updated_at);
        let mut tx = self.begin().await?;
        q.execute(&mut *tx).await.map_err(|e| unique(e, "trigger id taken"))?;
        tx.commit().await?;
        Ok(())
    }

    async fn trigger(&self, id: &str) -> Result<Option<TriggerRecord>> {
        let row = sqlx::query(&format!("SELECT {TRIGGER_COLS} FROM agent_triggers t WHERE t.id = $1")).bind(id).fetch_optional(self.pool()).await?;
        Ok(row.as_ref().map(trigger_from).transpose()?)
    }

    async fn list_triggers(&self, agent_id: &str, page: &PageWindow) -> Result<Vec<(SortVal, TriggerRecord)>> {
        let (cmp, dir) = if page.desc { ("<", "DESC") } else { (">", "ASC") };
        let (after_at, after_id) = match &page.after {
            Some((SortVal::Int(k), id)) => (Some(*k), id.clone()),
            _ => (None, String::new()),
        };
        let sql = format!(
            "SELECT {TRIGGER_COLS} FROM agent_triggers t WHERE t.agent_id = $1 AND ($2::BIGINT IS NULL OR (t.created_at, t.id) {cmp} ($2, $3)) \
             ORDER BY t.created_at {dir}, t.id {dir} LIMIT $4"
        );
        let rows = sqlx::query(&sql).bind(agent_id).bind(after_at).bind(after_id).bind(page.limit.min(i64::MAX as usize) as i64).fetch_all(self.pool()).await?;
        let out = rows.iter().map(trigger_from).collect::<sqlx::Result<Vec<_>>>()?;
        Ok(out.into_iter().map(|t| (SortVal::Int(t.created_at), t)).collect())
    }

    async fn update_trigger(&self, t: &TriggerRecord, expected_version: i64, reschedule: bool) -> Result<bool> {
        let q = sqlx::query(
            "UPDATE agent_triggers SET name = $1, prompt = $2, cron_expression = $3, run_at = $4, timezone = $5, pass_raw_data = $6, enabled = $7, \
             status = $8, max_failures = $9, consecutive_failures = $10, integration = $11, \
             next_fire_at = CASE WHEN $12 THEN $13 ELSE next_fire_at END, version = $14, updated_at = $15 WHERE id = $16 AND version = $17",
        )
        .bind(t.name.as_deref().map(pg_text))
        .bind(pg_text(&t.prompt))
        .bind(t.cron_expression.as_deref().map(pg_text))
        .bind(t.run_at)
        .bind(t.timezone.as_deref().map(pg_text))
        .bind(t.pass_raw_data)
        .bind(t.enabled)
        .bind(&t.status)
        .bind(t.max_failures)
        .bind(t.consecutive_failures)
        .bind(t.integration.as_deref().map(pg_text))
        .bind(reschedule)
        .bind(t.next_fire_at)
        .bind(t.version)
        .bind(t.updated_at)
        .bind(&t.id)
        .bind(expected_version);
        Ok(self.write_one(q).await? == 1)
    }

    async fn delete_trigger(&self, id: &str) -> Result<bool> {
        let mut tx = self.begin().await?;
        sqlx::query("DELETE FROM agent_trigger_runs WHERE trigger_id = $1").bind(id).execute(&mut *tx).await?;
        let n = sqlx::query("DELETE FROM agent_triggers WHERE id = $1").bind(id).execute(&mut *tx).await?.rows_affected();
        tx.commit().await?;
        Ok(n == 1)
    }

    async fn due_triggers(&self, now: i64, limit: usize) -> Result<Vec<TriggerRecord>> {
        let sql = format!(
            "SELECT {TRIGGER_COLS} FROM agent_triggers t JOIN agents a ON a.id = t.agent_id \
             WHERE t.next_fire_at IS NOT NULL AND t.enabled AND t.next_fire_at <= $1 AND t.type = 'schedule' \
             AND a.deleted_at IS NULL AND a.is_active ORDER BY t.next_fire_at LIMIT $2"
        );
        let rows = sqlx::query(&sql).bind(now).bind(limit as i64).fetch_all(self.pool()).await?;
        Ok(rows.iter().map(trigger_from).collect::<sqlx::Result<Vec<_>>>()?)
    }

    async fn claim_trigger_fire(&self, trigger_id: &str, expected_next: i64, advance: &ScheduleAdvance, run: &TriggerRunRecord) -> Result<bool> {
        let mut tx = self.begin().await?;
        // The row lock taken by this UPDATE makes a concurrent claimer wait, re-check
        // `next_fire_at = expected` on the committed row and match nothing.
        let n = sqlx::query(
            "UPDATE agent_triggers SET next_fire_at = $1, status = COALESCE($2, status), last_run_at = $3 \
             WHERE id = $4 AND next_fire_at = $5 AND enabled",
        )
        .bind(advance.next_fire_at)
        .bind(advance.status.as_deref())
        .bind(run.created_at)
        .bind(trigger_id)
        .bind(expected_next)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if n != 1 {
            tx.rollback().await?;
            return Ok(false);
        }
        insert_run(run).execute(&mut *tx).await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn record_trigger_delivery(&self, run: &TriggerRunRecord) -> Result<(TriggerRunRecord, bool)> {
        let mut tx = self.begin().await?;
        let fresh = insert_run(run).execute(&mut *tx).await?.rows_affected() == 1;
        if fresh {
            sqlx::query("UPDATE agent_triggers SET last_run_at = $1 WHERE id = $2").bind(run.created_at).bind(&run.trigger_id).execute(&mut *tx).await?;
            tx.commit().await?;
            return Ok((run.clone(), true));
        }
        let row = sqlx::query(&format!("SELECT {RUN_COLS} FROM agent_trigger_runs r WHERE r.trigger_id = $1 AND r.delivery_key = $2"))
            .bind(&run.trigger_id)
            .bind(pg_text(&run.delivery_key))
            .fetch_one(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok((run_from(&row)?, false))
    }

    async fn settle_trigger_run(&self, run_id: &str, started: bool, error: Option<&str>, now: i64) -> Result<()> {
        let mut tx = self.begin().await?;
        let state = if started { "started" } else { "failed" };
        let trigger_id: Option<String> = sqlx::query_scalar(
            "UPDATE agent_trigger_runs SET state = $1, error = $2, updated_at = $3 WHERE id = $4 AND state = 'pending' RETURNING trigger_id",
        )
        .bind(state)
        .bind(error.map(pg_text))
        .bind(now)
        .bind(run_id)
        .fetch_optional(&mut *tx)
        .await?;
        if let Some(trigger_id) = trigger_id {
            let sql = if started {
                "UPDATE agent_triggers SET consecutive_failures = 0 WHERE id = $1"
            } else {
                "UPDATE agent_triggers SET consecutive_failures = consecutive_failures + 1, \
                 enabled = CASE WHEN max_failures IS NOT NULL AND consecutive_failures + 1 >= max_failures THEN FALSE ELSE enabled END, \
                 status = CASE WHEN max_failures IS NOT NULL AND consecutive_failures + 1 >= max_failures THEN 'failed' ELSE status END, \
                 next_fire_at = CASE WHEN max_failures IS NOT NULL AND consecutive_failures + 1 >= max_failures THEN NULL ELSE next_fire_at END \
                 WHERE id = $1"
            };
            sqlx::query(sql).bind(trigger_id).execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn pending_trigger_runs(&self, before: i64, limit: usize) -> Result<Vec<TriggerRunRecord>> {
        let sql = format!("SELECT {RUN_COLS} FROM agent_trigger_runs r WHERE r.state = 'pending' AND r.created_at < $1 ORDER BY r.created_at LIMIT $2");
        let rows = sqlx::query(&sql).bind(before).bind(limit as i64).fetch_all(self.pool()).await?;
        Ok(rows.iter().map(run_from).collect::<sqlx::Result<Vec<_>>>()?)
    }

    async fn trigger_run(&self, id: &str) -> Result<Option<TriggerRunRecord>> {
        let row = sqlx::query(&format!("SELECT {RUN_COLS} FROM agent_trigger_runs r WHERE r.id = $1")).bind(id).fetch_optional(self.pool()).await?;
        Ok(row.as_ref().map(run_from).transpose()?)
    }

    async fn list_trigger_runs(&self, trigger_id: &str, states: Option<&[String]>, page: &PageWindow) -> Result<Vec<(SortVal, TriggerRunView)>> {
        let (cmp, dir) = if page.desc { ("<", "DESC") } else { (">", "ASC") };
        let (after_at, after_id) = match &page.after {
            Some((SortVal::Int(k), id)) => (Some(*k), id.clone()),
            _ => (None, String::new()),
        };
        let sql = format!(
            "SELECT {RUN_COLS}, COALESCE(ru.state, s.state) AS session_state, ru.user_message_id, ru.finished_at, (s.usage->>'credit_cost')::float8 AS credit_cost \
             FROM agent_trigger_runs r LEFT JOIN sessions s ON s.id = r.session_id \
             LEFT JOIN runs ru ON ru.id = (SELECT x.id FROM runs x WHERE x.session_id = r.session_id ORDER BY x.created_at, x.id LIMIT 1) \
             WHERE r.trigger_id = $1 \
             AND ($2::TEXT[] IS NULL OR (CASE WHEN r.state = 'started' THEN COALESCE(ru.state, s.state, 'pending') ELSE r.state END) = ANY($2)) \
             AND ($3::BIGINT IS NULL OR (r.created_at, r.id) {cmp} ($3, $4)) \
             ORDER BY r.created_at {dir}, r.id {dir} LIMIT $5"
        );
        let rows = sqlx::query(&sql)
            .bind(trigger_id)
            .bind(states.map(<[String]>::to_vec))
            .bind(after_at)
            .bind(after_id)
            .bind(page.limit.min(i64::MAX as usize) as i64)
            .fetch_all(self.pool())
            .await?;
        let mut out = Vec::with_capacity(rows.len());
        for r in &rows {
            let v = TriggerRunView {
                run: run_from(r)?,
                session_state: r.try_get("session_state")?,
                user_message_id: r.try_get("user_message_id")?,
                finished_at: r.try_get("finished_at")?,
                credit_cost: r.try_get("credit_cost")?,
            };
            out.push((SortVal::Int(v.run.created_at), v));
        }
        Ok(out)
    }

    async fn trigger_stats(&self, trigger_id: &str) -> Result<TriggerStats> {
        let r = sqlx::query(
            "SELECT COUNT(*) AS n, COALESCE(SUM(CASE WHEN r.state = 'failed' OR s.state = 'failed' THEN 1 ELSE 0 END), 0)::BIGINT AS failed, \
             MAX(r.created_at) AS last_at, COALESCE(SUM(COALESCE((s.usage->>'credit_cost')::float8, 0)), 0)::float8 AS credits \
             FROM agent_trigger_runs r LEFT JOIN sessions s ON s.id = r.session_id WHERE r.trigger_id = $1",
        )
        .bind(trigger_id)
        .fetch_one(self.pool())
        .await?;
        Ok(TriggerStats { run_count: r.try_get("n")?, failed_count: r.try_get("failed")?, last_run_at: r.try_get("last_at")?, credits: r.try_get("credits")? })
    }

    async fn active_trigger_counts(&self, agent_ids: &[String]) -> Result<Vec<(String, i64)>> {
        if agent_ids.is_empty() {
            return Ok(vec![]);
        }
        let rows = sqlx::query("SELECT agent_id, COUNT(*) AS n FROM agent_triggers WHERE enabled AND agent_id = ANY($1) GROUP BY agent_id")
            .bind(agent_ids)
            .fetch_all(self.pool())
            .await?;
        Ok(rows.iter().map(|r| Ok((r.try_get("agent_id")?, r.try_get("n")?))).collect::<sqlx::Result<Vec<_>>>()?)
    }
}
