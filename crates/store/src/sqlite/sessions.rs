use async_trait::async_trait;
use serde_json::{json, Value};
use sqlx::sqlite::SqliteRow;
use sqlx::{Row, SqliteConnection};

use super::{map_unique, SqliteStore};
use crate::{
    ActiveCounts, ClaimedRun, EventRecord, MessageRecord, QueuedMessageRecord, Reader, Result, RunRecord, RunStore, RunUpdate, SessionFileRecord,
    SessionRecord, SessionStore, SlotLimits, StepRecord, StoreError,
};

fn parse(s: &str, what: &str) -> Result<Value> {
    serde_json::from_str(s).map_err(|e| StoreError::Corrupt(format!("{what}: {e}")))
}

fn session_from(r: &SqliteRow) -> Result<SessionRecord> {
    Ok(SessionRecord {
        id: r.get("id"),
        agent_id: r.get("agent_id"),
        creator_user_id: r.get("creator_user_id"),
        team_id: r.get("team_id"),
        organization_id: r.get("organization_id"),
        kind: r.get("type"),
        name: r.get("name"),
        state: r.get("state"),
        metadata: parse(r.get("metadata"), "session metadata")?,
        agent_snapshot: parse(r.get("agent_snapshot"), "agent snapshot")?,
        usage: parse(r.get("usage"), "session usage")?,
        last_seq: r.get("last_seq"),
        purged_through: r.get("purged_through"),
        current_run_id: r.get("current_run_id"),
        created_at: r.get("created_at"),
        updated_at: r.get("updated_at"),
    })
}

fn message_from(r: &SqliteRow) -> Result<MessageRecord> {
    Ok(MessageRecord {
        id: r.get("id"),
        session_id: r.get("session_id"),
        ord: r.get("ord"),
        run_id: r.get("run_id"),
        role: r.get("role"),
        content: r.get("content"),
        parts: parse(r.get("parts"), "message parts")?,
        creator_id: r.get("creator_id"),
        created_at: r.get("created_at"),
    })
}

fn run_from(r: &SqliteRow) -> Result<RunRecord> {
    Ok(RunRecord {
        id: r.get("id"),
        session_id: r.get("session_id"),
        agent_id: r.get("agent_id"),
        organization_id: r.get("organization_id"),
        user_message_id: r.get("user_message_id"),
        assistant_message_id: r.get("assistant_message_id"),
        state: r.get("state"),
        attempts: r.get("attempts"),
        cancel_requested: r.get::<i64, _>("cancel_requested") != 0,
        finish_reason: r.get("finish_reason"),
        error_message: r.get("error_message"),
        usage: parse(r.get("usage"), "run usage")?,
        created_at: r.get("created_at"),
        started_at: r.get("started_at"),
        finished_at: r.get("finished_at"),
    })
}

/// An uploaded file row (`session_files` or `flow_files`), owned by `owner`.
pub(crate) fn file_from(r: &SqliteRow, owner: String) -> SessionFileRecord {
    SessionFileRecord {
        session_id: owner,
        file_name: r.get("file_name"),
        media_type: r.get("media_type"),
        size: r.get("size"),
        blob_key: r.get("blob_key"),
        created_at: r.get("created_at"),
    }
}

fn event_from(r: &SqliteRow) -> Result<EventRecord> {
    Ok(EventRecord {
        session_id: r.get("session_id"),
        seq: r.get("seq"),
        run_id: r.get("run_id"),
        kind: r.get("type"),
        data: parse(r.get("data"), "event")?,
        created_at: r.get("created_at"),
    })
}

/// Adds numeric members of `delta` to `base` (usage counters).
pub(crate) fn add_usage(base: &mut Value, delta: &Value) {
    let (Some(b), Some(d)) = (base.as_object_mut(), delta.as_object()) else {
        return;
    };
    for (k, v) in d {
        let sum = match (b.get(k).and_then(Value::as_f64), v.as_f64()) {
            (Some(x), Some(y)) => x + y,
            (None, Some(y)) => y,
            _ => continue,
        };
        let is_int = v.is_i64() || v.is_u64();
        let val = if is_int && b.get(k).is_none_or(|x| x.is_i64() || x.is_u64()) { json!(sum as i64) } else { json!((sum * 10000.0).round() / 10000.0) };
        b.insert(k.clone(), val);
    }
}

async fn append_events(c: &mut SqliteConnection, session_id: &str, run_id: Option<&str>, events: Vec<Value>, now: i64) -> Result<Vec<EventRecord>> {
    if events.is_empty() {
        return Ok(vec![]);
    }
    let n = events.len() as i64;
    let last: i64 = sqlx::query_scalar("UPDATE sessions SET last_seq = last_seq + ?, updated_at = ? WHERE id = ? RETURNING last_seq")
        .bind(n)
        .bind(now)
        .bind(session_id)
        .fetch_one(&mut *c)
        .await?;
    insert_events(c, session_id, run_id, events, last - n + 1, now).await
}

/// Inserts events with consecutive seqs from `first`, in one statement.
async fn insert_events(c: &mut SqliteConnection, session_id: &str, run_id: Option<&str>, events: Vec<Value>, first: i64, now: i64) -> Result<Vec<EventRecord>> {
    let mut out = Vec::with_capacity(events.len());
    for chunk in events.chunks(100) {
        let mut qb: sqlx::QueryBuilder<sqlx::Sqlite> = sqlx::QueryBuilder::new("INSERT INTO events (session_id, seq, run_id, type, data, created_at) ");
        let base = first + out.len() as i64;
        qb.push_values(chunk.iter().enumerate(), |mut b, (i, data)| {
            let kind = data.get("type").and_then(Value::as_str).unwrap_or("data").to_string();
            b.push_bind(session_id).push_bind(base + i as i64).push_bind(run_id).push_bind(kind).push_bind(data.to_string()).push_bind(now);
        });
        qb.build().execute(&mut *c).await?;
        for (i, data) in chunk.iter().enumerate() {
            let kind = data.get("type").and_then(Value::as_str).unwrap_or("data").to_string();
            out.push(EventRecord {
                session_id: session_id.to_string(),
                seq: base + i as i64,
                run_id: run_id.map(str::to_string),
                kind,
                data: data.clone(),
                created_at: now,
            });
        }
    }
    Ok(out)
}

async fn upsert_message(c: &mut SqliteConnection, m: &MessageRecord) -> Result<()> {
    sqlx::query(
        "INSERT INTO messages (id, session_id, ord, run_id, role, content, parts, creator_id, created_at) \
         VALUES (?1, ?2, (SELECT COALESCE(MAX(ord), 0) + 1 FROM messages WHERE session_id = ?2), ?3, ?4, ?5, ?6, ?7, ?8) \
         ON CONFLICT(id) DO UPDATE SET content = excluded.content, parts = excluded.parts",
    )
    .bind(&m.id)
    .bind(&m.session_id)
    .bind(&m.run_id)
    .bind(&m.role)
    .bind(&m.content)
    .bind(m.parts.to_string())
    .bind(&m.creator_id)
    .bind(m.created_at)
    .execute(&mut *c)
    .await?;
    Ok(())
}

async fn insert_run_and_job(c: &mut SqliteConnection, r: &RunRecord, now: i64) -> Result<()> {
    sqlx::query(
        "INSERT INTO runs (id, session_id, agent_id, organization_id, user_message_id, assistant_message_id, state, attempts, cancel_requested, usage, created_at) \
         VALUES (?, ?, ?, ?, ?, NULL, ?, 0, 0, '{}', ?)",
    )
    .bind(&r.id)
    .bind(&r.session_id)
    .bind(&r.agent_id)
    .bind(&r.organization_id)
    .bind(&r.user_message_id)
    .bind(&r.state)
    .bind(r.created_at)
    .execute(&mut *c)
    .await?;
    sqlx::query("INSERT INTO jobs (run_id, state, attempts, available_at, created_at) VALUES (?, 'ready', 0, ?, ?)")
        .bind(&r.id)
        .bind(now)
        .bind(now)
        .execute(&mut *c)
        .await?;
    Ok(())
}

#[async_trait]
impl SessionStore for SqliteStore {
    async fn create_session(&self, s: &SessionRecord, turn: Option<(&MessageRecord, &RunRecord)>, events: Vec<Value>) -> Result<Vec<EventRecord>> {
        let mut tx = self.write_tx().await?;
        sqlx::query(
            "INSERT INTO sessions (id, agent_id, creator_user_id, team_id, organization_id, type, name, state, metadata, agent_snapshot, usage, last_seq, current_run_id, created_at, updated_at) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 0, ?, ?, ?)",
        )
        .bind(&s.id)
        .bind(&s.agent_id)
        .bind(&s.creator_user_id)
        .bind(&s.team_id)
        .bind(&s.organization_id)
        .bind(&s.kind)
        .bind(&s.name)
        .bind(&s.state)
        .bind(s.metadata.to_string())
        .bind(s.agent_snapshot.to_string())
        .bind(s.usage.to_string())
        .bind(&s.current_run_id)
        .bind(s.created_at)
        .bind(s.updated_at)
        .execute(&mut *tx)
        .await
        .map_err(|e| map_unique(e, "session"))?;
        let mut run_id = None;
        if let Some((m, r)) = turn {
            upsert_message(&mut tx, m).await?;
            insert_run_and_job(&mut tx, r, s.created_at).await?;
            run_id = Some(r.id.as_str());
        }
        let ev = append_events(&mut tx, &s.id, run_id, events, s.created_at).await?;
        tx.commit().await?;
        Ok(ev)
    }

    async fn session(&self, id: &str) -> Result<Option<SessionRecord>> {
        let row = sqlx::query("SELECT * FROM sessions WHERE id = ?").bind(id).fetch_optional(&self.reader).await?;
        row.as_ref().map(session_from).transpose()
    }

    async fn messages(&self, session_id: &str) -> Result<Vec<MessageRecord>> {
        let rows = sqlx::query("SELECT * FROM messages WHERE session_id = ? ORDER BY ord").bind(session_id).fetch_all(&self.reader).await?;
        rows.iter().map(message_from).collect()
    }

    async fn start_turn(
        &self,
        session_id: &str,
        from_states: &[&str],
        msg: &MessageRecord,
        run: &RunRecord,
        events: Vec<Value>,
        dequeue: Option<&str>,
    ) -> Result<Option<Vec<EventRecord>>> {
        let mut tx = self.write_tx().await?;
        let state: Option<String> = sqlx::query_scalar("SELECT state FROM sessions WHERE id = ?").bind(session_id).fetch_optional(&mut *tx).await?;
        match state {
            Some(st) if from_states.contains(&st.as_str()) => {}
            _ => {
                tx.rollback().await?;
                return Ok(None);
            }
        }
        let now = msg.created_at;
        if let Some(qid) = dequeue {
            let removed = sqlx::query("DELETE FROM session_queue WHERE id = ? AND session_id = ?").bind(qid).bind(session_id).execute(&mut *tx).await?;
            if removed.rows_affected() == 0 {
                // Already delivered (or deleted) by someone else.
                tx.rollback().await?;
                return Ok(None);
            }
        }
        upsert_message(&mut tx, msg).await?;
        insert_run_and_job(&mut tx, run, now).await?;
        sqlx::query("UPDATE sessions SET state = ?, current_run_id = ?, updated_at = ? WHERE id = ?")
            .bind(&run.state)
            .bind(&run.id)
            .bind(now)
            .bind(session_id)
            .execute(&mut *tx)
            .await?;
        let ev = append_events(&mut tx, session_id, Some(&run.id), events, now).await?;
        tx.commit().await?;
        Ok(Some(ev))
    }

    async fn run(&self, id: &str) -> Result<Option<RunRecord>> {
        let row = sqlx::query("SELECT * FROM runs WHERE id = ?").bind(id).fetch_optional(&self.reader).await?;
        row.as_ref().map(run_from).transpose()
    }

    async fn active_counts(&self, agent_id: &str, organization_id: &str) -> Result<ActiveCounts> {
        let row = sqlx::query(
            "SELECT (SELECT COUNT(*) FROM runs WHERE agent_id = ?1 AND state = 'processing') AS ap, \
                    (SELECT COUNT(*) FROM runs WHERE organization_id = ?2 AND state = 'processing') AS op, \
                    (SELECT COUNT(*) FROM runs WHERE agent_id = ?1 AND state = 'queued') AS aq",
        )
        .bind(agent_id)
        .bind(organization_id)
        .fetch_one(&self.reader)
        .await?;
        Ok(ActiveCounts { agent_processing: row.get("ap"), org_processing: row.get("op"), agent_queued: row.get("aq") })
    }

    async fn queue_position(&self, run: &RunRecord) -> Result<i64> {
        let n: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM runs WHERE agent_id = ? AND state = 'queued' AND (created_at < ? OR (created_at = ? AND id <= ?))")
                .bind(&run.agent_id)
                .bind(run.created_at)
                .bind(run.created_at)
                .bind(&run.id)
                .fetch_one(&self.reader)
                .await?;
        Ok(n.max(1))
    }

    async fn request_cancel(&self, run_id: &str) -> Result<()> {
        let mut tx = self.write_tx().await?;
        sqlx::query("UPDATE runs SET cancel_requested = 1 WHERE id = ?").bind(run_id).execute(&mut *tx).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn sessions_of_agent(&self, agent_id: &str, reader: &Reader) -> Result<Vec<SessionRecord>> {
        let sql = format!("SELECT * FROM sessions s WHERE s.agent_id = ?4 AND {READABLE} ORDER BY s.created_at DESC, s.id DESC");
        let rows = bind_reader(sqlx::query(&sql), reader).bind(agent_id).fetch_all(&self.reader).await?;
        rows.iter().map(session_from).collect()
    }

    async fn rename_session(&self, id: &str, name: &str) -> Result<()> {
        let mut tx = self.write_tx().await?;
        sqlx::query("UPDATE sessions SET name = ?, updated_at = ? WHERE id = ?").bind(name).bind(wire::time::now_micros()).bind(id).execute(&mut *tx).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn first_event_of_run(&self, session_id: &str, run_id: &str) -> Result<Option<i64>> {
        Ok(sqlx::query_scalar("SELECT MIN(seq) FROM events WHERE session_id = ? AND run_id = ?").bind(session_id).bind(run_id).fetch_one(&self.reader).await?)
    }

    async fn queued_messages(&self, session_id: &str) -> Result<Vec<QueuedMessageRecord>> {
        let rows = sqlx::query("SELECT * FROM session_queue WHERE session_id = ? ORDER BY created_at, id").bind(session_id).fetch_all(&self.reader).await?;
        Ok(rows
            .iter()
            .map(|r| QueuedMessageRecord {
                id: r.get("id"),
                session_id: r.get("session_id"),
                input: r.get("input"),
                created_at: r.get("created_at"),
                updated_at: r.get("updated_at"),
            })
            .collect())
    }

    async fn enqueue_message(&self, m: &QueuedMessageRecord, max: i64) -> Result<bool> {
        let mut tx = self.write_tx().await?;
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM session_queue WHERE session_id = ?").bind(&m.session_id).fetch_one(&mut *tx).await?;
        if n >= max {
            tx.rollback().await?;
            return Ok(false);
        }
        sqlx::query("INSERT INTO session_queue (id, session_id, input, created_at, updated_at) VALUES (?, ?, ?, ?, ?)")
            .bind(&m.id)
            .bind(&m.session_id)
            .bind(&m.input)
            .bind(m.created_at)
            .bind(m.updated_at)
            .execute(&mut *tx)
            .await
            .map_err(|e| map_unique(e, "queued message"))?;
        tx.commit().await?;
        Ok(true)
    }

    async fn edit_queued_message(&self, session_id: &str, id: &str, input: &str, now: i64) -> Result<bool> {
        let mut tx = self.write_tx().await?;
        let res = sqlx::query("UPDATE session_queue SET input = ?, updated_at = ? WHERE session_id = ? AND id = ?")
            .bind(input)
            .bind(now)
            .bind(session_id)
            .bind(id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(res.rows_affected() == 1)
    }

    async fn delete_queued_message(&self, session_id: &str, id: &str) -> Result<bool> {
        let mut tx = self.write_tx().await?;
        let res = sqlx::query("DELETE FROM session_queue WHERE session_id = ? AND id = ?").bind(session_id).bind(id).execute(&mut *tx).await?;
        tx.commit().await?;
        Ok(res.rows_affected() == 1)
    }

    async fn insert_session_file(&self, f: &SessionFileRecord) -> Result<()> {
        let mut tx = self.write_tx().await?;
        sqlx::query("INSERT INTO session_files (session_id, file_name, media_type, size, blob_key, created_at) VALUES (?, ?, ?, ?, ?, ?)")
            .bind(&f.session_id)
            .bind(&f.file_name)
            .bind(&f.media_type)
            .bind(f.size)
            .bind(&f.blob_key)
            .bind(f.created_at)
            .execute(&mut *tx)
            .await
            .map_err(|e| map_unique(e, "session file"))?;
        tx.commit().await?;
        Ok(())
    }

    async fn session_files(&self, session_id: &str) -> Result<Vec<SessionFileRecord>> {
        let rows =
            sqlx::query("SELECT * FROM session_files WHERE session_id = ? ORDER BY created_at, file_name").bind(session_id).fetch_all(&self.reader).await?;
        Ok(rows.iter().map(|r| file_from(r, r.get("session_id"))).collect())
    }

    async fn session_grants(&self, session_id: &str) -> Result<Vec<(String, String, String)>> {
        Ok(sqlx::query_as("SELECT kind, principal, role FROM session_grants WHERE session_id = ? ORDER BY created_at, kind, principal")
            .bind(session_id)
            .fetch_all(&self.reader)
            .await?)
    }

    async fn change_session_grants(&self, session_id: &str, upsert: &[(String, String, String)], remove: &[(String, String)]) -> Result<()> {
        let mut tx = self.write_tx().await?;
        let now = wire::time::now_micros();
        for (kind, principal, role) in upsert {
            sqlx::query("INSERT INTO session_grants (session_id, kind, principal, role, created_at) VALUES (?, ?, ?, ?, ?) ON CONFLICT(session_id, kind, principal) DO UPDATE SET role = excluded.role")
                .bind(session_id)
                .bind(kind)
                .bind(principal)
                .bind(role)
                .bind(now)
                .execute(&mut *tx)
                .await?;
        }
        for (kind, principal) in remove {
            sqlx::query("DELETE FROM session_grants WHERE session_id = ? AND kind = ? AND principal = ?")
                .bind(session_id)
                .bind(kind)
                .bind(principal)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn delete_idle_sessions(&self, before: i64) -> Result<u64> {
        let mut tx = self.write_tx().await?;
        let ids: Vec<String> =
            sqlx::query_scalar("SELECT id FROM sessions WHERE updated_at < ? AND state NOT IN ('queued', 'processing', 'approval_required')")
                .bind(before)
                .fetch_all(&mut *tx)
                .await?;
        for id in &ids {
            for sql in [
                "DELETE FROM events WHERE session_id = ?",
                "DELETE FROM run_steps WHERE run_id IN (SELECT id FROM runs WHERE session_id = ?)",
                "DELETE FROM jobs WHERE run_id IN (SELECT id FROM runs WHERE session_id = ?)",
                "DELETE FROM runs WHERE session_id = ?",
                "DELETE FROM messages WHERE session_id = ?",
                "DELETE FROM session_queue WHERE session_id = ?",
                "DELETE FROM session_files WHERE session_id = ?",
                "DELETE FROM session_grants WHERE session_id = ?",
                "DELETE FROM artifact_versions WHERE artifact_id IN (SELECT id FROM artifacts WHERE session_id = ?)",
                "DELETE FROM artifacts WHERE session_id = ?",
                "DELETE FROM sessions WHERE id = ?",
            ] {
                sqlx::query(sql).bind(id).execute(&mut *tx).await?;
            }
        }
        tx.commit().await?;
        Ok(ids.len() as u64)
    }
}

#[async_trait]
impl RunStore for SqliteStore {
    async fn claim_run(&self, owner: &str, now: i64, lease_until: i64, limits: SlotLimits) -> Result<Option<ClaimedRun>> {
        // Look on a reader first: an idle poll must not take the write lock.
        let any: Option<i64> =
            sqlx::query_scalar("SELECT id FROM jobs WHERE state = 'ready' AND available_at <= ? LIMIT 1").bind(now).fetch_optional(&self.reader).await?;
        if any.is_none() {
            return Ok(None);
        }
        let mut tx = self.write_tx().await?;
        let picked: Option<(i64, String)> = sqlx::query_as(
            "SELECT j.id, j.run_id FROM jobs j JOIN runs r ON r.id = j.run_id \
             WHERE j.state = 'ready' AND j.available_at <= ?1 AND ( r.state != 'queued' OR ( \
               (SELECT COUNT(*) FROM runs x WHERE x.agent_id = r.agent_id AND x.state = 'processing') < ?2 AND \
               (SELECT COUNT(*) FROM runs y WHERE y.organization_id = r.organization_id AND y.state = 'processing') < ?3 )) \
             ORDER BY j.id LIMIT 1",
        )
        .bind(now)
        .bind(limits.agent)
        .bind(limits.org)
        .fetch_optional(&mut *tx)
        .await?;
        let Some((job_id, run_id)) = picked else {
            tx.rollback().await?;
            return Ok(None);
        };
        let attempts: i64 = sqlx::query_scalar(
            "UPDATE jobs SET state = 'leased', lease_owner = ?, lease_expires_at = ?, attempts = attempts + 1 WHERE id = ? RETURNING attempts",
        )
        .bind(owner)
        .bind(lease_until)
        .bind(job_id)
        .fetch_one(&mut *tx)
        .await?;
        let row = sqlx::query("UPDATE runs SET state = 'processing', attempts = ?, started_at = COALESCE(started_at, ?) WHERE id = ? RETURNING *")
            .bind(attempts)
            .bind(now)
            .bind(&run_id)
            .fetch_one(&mut *tx)
            .await?;
        let run = run_from(&row)?;
        sqlx::query("UPDATE sessions SET state = 'processing', updated_at = ? WHERE id = ? AND current_run_id = ? AND state IN ('queued', 'processing')")
            .bind(now)
            .bind(&run.session_id)
            .bind(&run.id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(Some(ClaimedRun { run, attempts }))
    }

    async fn heartbeat(&self, run_id: &str, owner: &str, lease_until: i64) -> Result<bool> {
        let mut tx = self.write_tx().await?;
        let res = sqlx::query("UPDATE jobs SET lease_expires_at = ? WHERE run_id = ? AND lease_owner = ? AND state = 'leased'")
            .bind(lease_until)
            .bind(run_id)
            .bind(owner)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(res.rows_affected() == 1)
    }

    async fn expired_runs(&self, now: i64) -> Result<Vec<(String, i64)>> {
        Ok(sqlx::query_as("SELECT run_id, attempts FROM jobs WHERE state = 'leased' AND lease_expires_at < ? ORDER BY id")
            .bind(now)
            .fetch_all(&self.reader)
            .await?)
    }

    async fn requeue_run(&self, run_id: &str, available_at: i64) -> Result<()> {
        let mut tx = self.write_tx().await?;
        sqlx::query("UPDATE jobs SET state = 'ready', lease_owner = NULL, lease_expires_at = NULL, available_at = ? WHERE run_id = ?")
            .bind(available_at)
            .bind(run_id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn release_all_leases(&self) -> Result<u64> {
        let mut tx = self.write_tx().await?;
        let res = sqlx::query("UPDATE jobs SET state = 'ready', lease_owner = NULL, lease_expires_at = NULL WHERE state = 'leased'").execute(&mut *tx).await?;
        tx.commit().await?;
        Ok(res.rows_affected())
    }

    async fn run_steps(&self, run_id: &str) -> Result<Vec<StepRecord>> {
        let rows = sqlx::query("SELECT * FROM run_steps WHERE run_id = ? ORDER BY step, created_at, call_id").bind(run_id).fetch_all(&self.reader).await?;
        rows.iter()
            .map(|r| {
                let out: Option<String> = r.get("output");
                Ok(StepRecord {
                    run_id: r.get("run_id"),
                    step: r.get("step"),
                    call_id: r.get("call_id"),
                    state: r.get("state"),
                    output: match out {
                        Some(s) => parse(&s, "step output")?,
                        None => Value::Null,
                    },
                })
            })
            .collect()
    }

    async fn update_run(&self, u: RunUpdate<'_>) -> Result<Option<Vec<EventRecord>>> {
        let now = wire::time::now_micros();
        let mut tx = self.write_tx().await?;
        // One read for everything the checks and the usage sums need.
        let row = sqlx::query(
            "SELECT r.session_id, r.usage, r.assistant_message_id, s.usage AS s_usage, s.current_run_id, j.state AS j_state, j.lease_owner \
             FROM runs r JOIN sessions s ON s.id = r.session_id LEFT JOIN jobs j ON j.run_id = r.id WHERE r.id = ?",
        )
        .bind(u.run_id)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(row) = row else {
            tx.rollback().await?;
            return Err(StoreError::NotFound);
        };
        let session_id: String = row.get("session_id");
        let job_state: Option<String> = row.get("j_state");
        let leased = job_state.as_deref() == Some("leased");
        if u.only_if_unleased && leased {
            tx.rollback().await?;
            return Ok(None);
        }
        if let Some(owner) = u.lease_owner {
            let holder: Option<String> = row.get("lease_owner");
            if !leased || holder.as_deref() != Some(owner) {
                tx.rollback().await?;
                return Ok(None);
            }
        }
        if let Some(qid) = u.dequeue {
            sqlx::query("DELETE FROM session_queue WHERE id = ?").bind(qid).execute(&mut *tx).await?;
        }
        if let Some(m) = u.message {
            upsert_message(&mut tx, m).await?;
        }
        if let Some(s) = u.step {
            sqlx::query(
                "INSERT INTO run_steps (run_id, step, call_id, state, output, created_at) VALUES (?, ?, ?, ?, ?, ?) \
                 ON CONFLICT(run_id, step, call_id) DO UPDATE SET state = excluded.state, output = excluded.output",
            )
            .bind(&s.run_id)
            .bind(s.step)
            .bind(&s.call_id)
            .bind(&s.state)
            .bind(if s.output.is_null() { None } else { Some(s.output.to_string()) })
            .bind(now)
            .execute(&mut *tx)
            .await?;
        }
        // The run row: one statement for every change.
        let (run_usage, sess_usage) = match u.usage_delta {
            Some(delta) => {
                let mut ru = parse(row.get("usage"), "run usage")?;
                add_usage(&mut ru, delta);
                let mut su = parse(row.get("s_usage"), "session usage")?;
                add_usage(&mut su, delta);
                (Some(ru.to_string()), Some(su.to_string()))
            }
            None => (None, None),
        };
        let assistant: Option<String> = row.get("assistant_message_id");
        let new_assistant = if assistant.is_none() { u.message.map(|m| m.id.clone()) } else { None };
        let run_changes =
            run_usage.is_some() || new_assistant.is_some() || u.run_state.is_some() || u.finish_reason.is_some() || u.error_message.is_some() || u.terminal;
        if run_changes {
            sqlx::query(
                "UPDATE runs SET usage = COALESCE(?, usage), assistant_message_id = COALESCE(assistant_message_id, ?), state = COALESCE(?, state), \
                 finish_reason = COALESCE(?, finish_reason), error_message = COALESCE(?, error_message), finished_at = CASE WHEN ? THEN ? ELSE finished_at END WHERE id = ?",
            )
            .bind(run_usage)
            .bind(new_assistant)
            .bind(u.run_state)
            .bind(u.finish_reason)
            .bind(u.error_message)
            .bind(u.terminal)
            .bind(now)
            .bind(u.run_id)
            .execute(&mut *tx)
            .await?;
        }
        if u.terminal || u.release_job {
            sqlx::query("DELETE FROM jobs WHERE run_id = ?").bind(u.run_id).execute(&mut *tx).await?;
        }
        if u.enqueue_job {
            sqlx::query(
                "INSERT INTO jobs (run_id, state, attempts, available_at, created_at) VALUES (?, 'ready', 0, ?, ?) \
                 ON CONFLICT(run_id) DO UPDATE SET state = 'ready', lease_owner = NULL, lease_expires_at = NULL",
            )
            .bind(u.run_id)
            .bind(now)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        }
        // The session row: state (only while this run is current), usage and the event
        // sequence in one statement.
        let current: Option<String> = row.get("current_run_id");
        let state = u.session_state.filter(|_| current.as_deref() == Some(u.run_id));
        let n = u.events.len() as i64;
        let last_seq: Option<i64> = if state.is_some() || sess_usage.is_some() || n > 0 {
            Some(
                sqlx::query_scalar("UPDATE sessions SET state = COALESCE(?, state), usage = COALESCE(?, usage), last_seq = last_seq + ?, updated_at = ? WHERE id = ? RETURNING last_seq")
                    .bind(state)
                    .bind(sess_usage)
                    .bind(n)
                    .bind(now)
                    .bind(&session_id)
                    .fetch_one(&mut *tx)
                    .await?,
            )
        } else {
            None
        };
        let ev = match last_seq {
            Some(last) if n > 0 => insert_events(&mut tx, &session_id, Some(u.run_id), u.events, last - n + 1, now).await?,
            _ => vec![],
        };
        tx.commit().await?;
        Ok(Some(ev))
    }

    async fn purge_events(&self, before: i64) -> Result<u64> {
        let mut tx = self.write_tx().await?;
        let ids: Vec<(String, i64)> = sqlx::query_as(
            "SELECT s.id, s.last_seq FROM sessions s JOIN runs r ON r.id = s.current_run_id \
             WHERE r.finished_at IS NOT NULL AND r.finished_at < ? AND s.purged_through < s.last_seq LIMIT 500",
        )
        .bind(before)
        .fetch_all(&mut *tx)
        .await?;
        let mut removed = 0;
        for (id, last) in ids {
            removed += sqlx::query("DELETE FROM events WHERE session_id = ? AND seq <= ?").bind(&id).bind(last).execute(&mut *tx).await?.rows_affected();
            sqlx::query("UPDATE sessions SET purged_through = ? WHERE id = ?").bind(last).bind(&id).execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(removed)
    }

    async fn events_after(&self, session_id: &str, after: i64, limit: i64) -> Result<Vec<EventRecord>> {
        let rows = sqlx::query("SELECT * FROM events WHERE session_id = ? AND seq > ? ORDER BY seq LIMIT ?")
            .bind(session_id)
            .bind(after)
            .bind(limit)
            .fetch_all(&self.reader)
            .await?;
        rows.iter().map(event_from).collect()
    }
}

/// `s` (a session row) is readable by the reader bound as ?1 (user), ?2 (organization)
/// and ?3 (JSON array of team ids): its creator, or a grantee.
pub(crate) const READABLE: &str = "(s.creator_user_id = ?1 OR EXISTS (SELECT 1 FROM session_grants g WHERE g.session_id = s.id AND \
     ((g.kind = 'person' AND g.principal = ?1) OR (g.kind = 'organization' AND g.principal = ?2) \
     OR (g.kind = 'team' AND g.principal IN (SELECT value FROM json_each(?3))))))";

pub(crate) fn bind_reader<'q>(
    q: sqlx::query::Query<'q, sqlx::Sqlite, sqlx::sqlite::SqliteArguments<'q>>,
    reader: &'q Reader,
) -> sqlx::query::Query<'q, sqlx::Sqlite, sqlx::sqlite::SqliteArguments<'q>> {
    q.bind(&reader.user_id).bind(&reader.organization_id).bind(serde_json::to_string(&reader.team_ids).unwrap_or_else(|_| "[]".into()))
}
