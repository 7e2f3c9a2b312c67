use async_trait::async_trait;
use rusqlite::types::Value as SqlValue;
use rusqlite::{params, Connection, OptionalExtension, Row};
use serde_json::{json, Value};

use super::{unique, SqliteStore};
use crate::{
    ActiveCounts, AdmissionView, ClaimedRun, EventRecord, MessageRecord, NewTurn, PageWindow, QueuedMessageRecord, Reader, Refusal, Result, RunRecord,
    RunState, RunStore, RunUpdate, SessionFileRecord, SessionFilter, SessionRecord, SessionSort, SessionState, SessionStore, SlotLimits, SortVal, StepRecord,
    StoreError, Transition, TurnWritten,
};

pub(crate) fn parse(s: &str, what: &str) -> rusqlite::Result<Value> {
    serde_json::from_str(s)
        .map_err(|e| rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Text, Box::new(StoreError::Corrupt(format!("{what}: {e}")))))
}

fn session_from(r: &Row) -> rusqlite::Result<SessionRecord> {
    Ok(SessionRecord {
        id: r.get("id")?,
        agent_id: r.get("agent_id")?,
        creator_user_id: r.get("creator_user_id")?,
        team_id: r.get("team_id")?,
        organization_id: r.get("organization_id")?,
        kind: r.get("type")?,
        name: r.get("name")?,
        state: state_from(r, SessionState::parse)?,
        metadata: parse(&r.get::<_, String>("metadata")?, "session metadata")?,
        agent_snapshot: parse(&r.get::<_, String>("agent_snapshot")?, "agent snapshot")?,
        usage: parse(&r.get::<_, String>("usage")?, "session usage")?,
        last_seq: r.get("last_seq")?,
        purged_through: r.get("purged_through")?,
        current_run_id: r.get("current_run_id")?,
        created_at: r.get("created_at")?,
        updated_at: r.get("updated_at")?,
    })
}

fn message_from(r: &Row) -> rusqlite::Result<MessageRecord> {
    Ok(MessageRecord {
        id: r.get("id")?,
        session_id: r.get("session_id")?,
        ord: r.get("ord")?,
        run_id: r.get("run_id")?,
        role: r.get("role")?,
        content: r.get("content")?,
        parts: parse(&r.get::<_, String>("parts")?, "message parts")?,
        creator_id: r.get("creator_id")?,
        created_at: r.get("created_at")?,
    })
}

/// A `state` column: an unknown value is a corrupt row, never a guess.
pub(crate) fn state_from<T>(r: &Row, parse: impl Fn(&str) -> Option<T>) -> rusqlite::Result<T> {
    let v: String = r.get("state")?;
    parse(&v).ok_or_else(|| {
        let idx = r.as_ref().column_index("state").unwrap_or(0);
        rusqlite::Error::FromSqlConversionFailure(idx, rusqlite::types::Type::Text, format!("unknown state {v:?}").into())
    })
}

fn run_from(r: &Row) -> rusqlite::Result<RunRecord> {
    Ok(RunRecord {
        id: r.get("id")?,
        session_id: r.get("session_id")?,
        agent_id: r.get("agent_id")?,
        organization_id: r.get("organization_id")?,
        user_message_id: r.get("user_message_id")?,
        assistant_message_id: r.get("assistant_message_id")?,
        state: state_from(r, RunState::parse)?,
        attempts: r.get("attempts")?,
        cancel_requested: r.get::<_, i64>("cancel_requested")? != 0,
        finish_reason: r.get("finish_reason")?,
        error_message: r.get("error_message")?,
        usage: parse(&r.get::<_, String>("usage")?, "run usage")?,
        created_at: r.get("created_at")?,
        started_at: r.get("started_at")?,
        finished_at: r.get("finished_at")?,
    })
}

/// An uploaded file row (`session_files` or `flow_files`), owned by `owner`.
pub(crate) fn file_from(r: &Row, owner: String) -> rusqlite::Result<SessionFileRecord> {
    Ok(SessionFileRecord {
        session_id: owner,
        file_name: r.get("file_name")?,
        media_type: r.get("media_type")?,
        size: r.get("size")?,
        blob_key: r.get("blob_key")?,
        created_at: r.get("created_at")?,
    })
}

fn event_from(r: &Row) -> rusqlite::Result<EventRecord> {
    Ok(EventRecord {
        session_id: r.get("session_id")?,
        seq: r.get("seq")?,
        run_id: r.get("run_id")?,
        kind: r.get("type")?,
        data: parse(&r.get::<_, String>("data")?, "event")?,
        created_at: r.get("created_at")?,
    })
}

fn step_from(r: &Row) -> rusqlite::Result<StepRecord> {
    let out: Option<String> = r.get("output")?;
    Ok(StepRecord {
        run_id: r.get("run_id")?,
        step: r.get("step")?,
        call_id: r.get("call_id")?,
        state: r.get("state")?,
        output: match out {
            Some(s) => parse(&s, "step output")?,
            None => Value::Null,
        },
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

fn append_events(c: &Connection, session_id: &str, run_id: Option<&str>, events: Vec<Value>, now: i64) -> Result<Vec<EventRecord>> {
    if events.is_empty() {
        return Ok(vec![]);
    }
    let n = events.len() as i64;
    let last: i64 = c
        .prepare_cached("UPDATE sessions SET last_seq = last_seq + ?, updated_at = ? WHERE id = ? RETURNING last_seq")?
        .query_row(params![n, now, session_id], |r| r.get(0))?;
    insert_events(c, session_id, run_id, events, last - n + 1, now)
}

/// Inserts events with consecutive seqs from `first`.
fn insert_events(c: &Connection, session_id: &str, run_id: Option<&str>, events: Vec<Value>, first: i64, now: i64) -> Result<Vec<EventRecord>> {
    let mut st = c.prepare_cached("INSERT INTO events (session_id, seq, run_id, type, data, created_at) VALUES (?, ?, ?, ?, ?, ?)")?;
    let mut out = Vec::with_capacity(events.len());
    for (i, data) in events.into_iter().enumerate() {
        let kind = data.get("type").and_then(Value::as_str).unwrap_or("data").to_string();
        let seq = first + i as i64;
        st.execute(params![session_id, seq, run_id, kind, data.to_string(), now])?;
        out.push(EventRecord { session_id: session_id.to_string(), seq, run_id: run_id.map(str::to_string), kind, data, created_at: now });
    }
    Ok(out)
}

fn upsert_message(c: &Connection, m: &MessageRecord) -> Result<()> {
    c.prepare_cached(
        "INSERT INTO messages (id, session_id, ord, run_id, role, content, parts, creator_id, created_at) \
         VALUES (?1, ?2, (SELECT COALESCE(MAX(ord), 0) + 1 FROM messages WHERE session_id = ?2), ?3, ?4, ?5, ?6, ?7, ?8) \
         ON CONFLICT(id) DO UPDATE SET content = excluded.content, parts = excluded.parts",
    )?
    .execute(params![m.id, m.session_id, m.run_id, m.role, m.content, m.parts.to_string(), m.creator_id, m.created_at])?;
    Ok(())
}

/// Moves one run between the counted states (`queued`, `processing`) of its agent and
/// organization; other states are not counted.
fn count_transition(c: &Connection, agent_id: &str, org_id: &str, from: Option<RunState>, to: Option<RunState>) -> Result<()> {
    if from == to {
        return Ok(());
    }
    let mut st =
        c.prepare_cached("INSERT INTO run_counts (scope, key, state, n) VALUES (?, ?, ?, ?) ON CONFLICT(scope, key, state) DO UPDATE SET n = n + excluded.n")?;
    for (state, delta) in [(from, -1i64), (to, 1)] {
        if let Some(state) = state.filter(|s| matches!(s, RunState::Queued | RunState::Processing)) {
            st.execute(params!["agent", agent_id, state.as_str(), delta])?;
            st.execute(params!["org", org_id, state.as_str(), delta])?;
        }
    }
    Ok(())
}

fn insert_run_and_job(c: &Connection, r: &RunRecord, now: i64) -> Result<()> {
    count_transition(c, &r.agent_id, &r.organization_id, None, Some(r.state))?;
    c.prepare_cached(
        "INSERT INTO runs (id, session_id, agent_id, organization_id, user_message_id, assistant_message_id, state, attempts, cancel_requested, usage, created_at) \
         VALUES (?, ?, ?, ?, ?, NULL, ?, 0, 0, '{}', ?)",
    )?
    .execute(params![r.id, r.session_id, r.agent_id, r.organization_id, r.user_message_id, r.state.as_str(), r.created_at])?;
    c.prepare_cached("INSERT INTO jobs (run_id, state, attempts, available_at, created_at) VALUES (?, 'ready', 0, ?, ?)")?.execute(params![r.id, now, now])?;
    Ok(())
}

fn insert_session(c: &Connection, s: &SessionRecord) -> Result<()> {
    c.prepare_cached(
        "INSERT INTO sessions (id, agent_id, creator_user_id, team_id, organization_id, type, name, state, metadata, agent_snapshot, usage, last_seq, current_run_id, created_at, updated_at) \
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 0, ?, ?, ?)",
    )?
    .execute(params![
        s.id,
        s.agent_id,
        s.creator_user_id,
        s.team_id,
        s.organization_id,
        s.kind,
        s.name,
        s.state.as_str(),
        s.metadata.to_string(),
        s.agent_snapshot.to_string(),
        s.usage.to_string(),
        s.current_run_id,
        s.created_at,
        s.updated_at
    ])
    .map_err(|e| unique(e, "session"))?;
    Ok(())
}

fn active_counts_tx(c: &Connection, agent_id: &str, org_id: &str) -> Result<ActiveCounts> {
    Ok(c.prepare_cached(
        "SELECT COALESCE((SELECT n FROM run_counts WHERE scope = 'agent' AND key = ?1 AND state = 'processing'), 0), \
                COALESCE((SELECT n FROM run_counts WHERE scope = 'org' AND key = ?2 AND state = 'processing'), 0), \
                COALESCE((SELECT n FROM run_counts WHERE scope = 'agent' AND key = ?1 AND state = 'queued'), 0)",
    )?
    .query_row([agent_id, org_id], |r| Ok(ActiveCounts { agent_processing: r.get(0)?, org_processing: r.get(1)?, agent_queued: r.get(2)? }))?)
}

fn queue_position_tx(c: &Connection, run: &RunRecord) -> Result<i64> {
    // Claims serve ready jobs in job-id (write) order, so the place is counted in that
    // order too; the callers' clocks may disagree with the write order.
    let n: i64 = c
        .prepare_cached(
            "SELECT COUNT(*) FROM jobs j INDEXED BY jobs_ready JOIN runs r ON r.id = j.run_id \
             WHERE j.state = 'ready' AND j.id <= (SELECT id FROM jobs WHERE run_id = ?1) AND r.agent_id = ?2 AND r.state = 'queued'",
        )?
        .query_row(params![run.id, run.agent_id], |r| r.get(0))?;
    Ok(n.max(1))
}

/// Writes a turn the admission rule accepts, inside the caller's transaction (the
/// session row exists). Nothing is written when it refuses.
/// `first` runs once the turn is admitted, before anything else is written.
fn write_turn(
    c: &Connection,
    session_state: SessionState,
    turn: NewTurn,
    first: impl FnOnce(&Connection) -> Result<()>,
) -> Result<std::result::Result<TurnWritten, Refusal>> {
    let NewTurn { message, mut run, admit, dequeue } = turn;
    let counts = active_counts_tx(c, &run.agent_id, &run.organization_id)?;
    let (state, events) = match admit(&AdmissionView { session_state, counts }) {
        Ok(v) => v,
        Err(refusal) => return Ok(Err(refusal)),
    };
    run.state = state;
    let now = message.created_at;
    if let Some(qid) = &dequeue {
        let removed = c.prepare_cached("DELETE FROM session_queue WHERE id = ? AND session_id = ?")?.execute([qid, &run.session_id])?;
        if removed == 0 {
            return Ok(Err(Refusal::Dequeued));
        }
    }
    first(c)?;
    upsert_message(c, &message)?;
    insert_run_and_job(c, &run, now)?;
    c.prepare_cached("UPDATE sessions SET state = ?, current_run_id = ?, updated_at = ? WHERE id = ?")?.execute(params![
        state.session_state().as_str(),
        run.id,
        now,
        run.session_id
    ])?;
    let events = append_events(c, &run.session_id, Some(&run.id), events, now)?;
    // A new job has the highest id, so every other queued run of the agent is ahead of
    // it: its place is the agent's queued count (a counter, O(1) however long the queue).
    let queue_position = if state == RunState::Queued { Some(active_counts_tx(c, &run.agent_id, &run.organization_id)?.agent_queued.max(1)) } else { None };
    Ok(Ok(TurnWritten { events, state, queue_position }))
}

/// A session's listed name, case-folded (S3 `name_*` order and search; index in 0012).
const SESSION_NAME_KEY: &str = "lower(COALESCE(s.name, json_extract(s.agent_snapshot, '$.name'), ''))";

/// The `sort_key` column of a listing row.
pub(crate) fn sort_val(r: &Row) -> rusqlite::Result<SortVal> {
    Ok(match r.get_ref("sort_key")? {
        rusqlite::types::ValueRef::Integer(i) => SortVal::Int(i),
        rusqlite::types::ValueRef::Real(f) => SortVal::Int(f as i64),
        rusqlite::types::ValueRef::Text(t) => SortVal::Str(String::from_utf8_lossy(t).into_owned()),
        _ => SortVal::Str(String::new()),
    })
}

/// A cursor's sort value as a query argument.
pub(crate) fn sort_arg(k: &SortVal) -> SqlValue {
    match k {
        SortVal::Int(i) => SqlValue::Integer(*i),
        SortVal::Str(s) => SqlValue::Text(s.clone()),
    }
}

/// `s` (a session row) is readable by the reader bound as ?1 (user), ?2 (organization)
/// and ?3 (JSON array of team ids): its creator, or a grantee.
pub(crate) const READABLE: &str = "(s.creator_user_id = ?1 OR EXISTS (SELECT 1 FROM session_grants g WHERE g.session_id = s.id AND \
     ((g.kind = 'person' AND g.principal = ?1) OR (g.kind = 'organization' AND g.principal = ?2) \
     OR (g.kind = 'team' AND g.principal IN (SELECT value FROM json_each(?3))))))";

/// The values bound as ?1–?3 of `READABLE`.
pub(crate) fn reader_params(reader: &Reader) -> (String, String, String) {
    (reader.user_id.clone(), reader.organization_id.clone(), serde_json::to_string(&reader.team_ids).unwrap_or_else(|_| "[]".into()))
}

#[async_trait]
impl SessionStore for SqliteStore {
    async fn create_session(&self, s: &SessionRecord, events: Vec<Value>) -> Result<Vec<EventRecord>> {
        let s = s.clone();
        self.write(move |c| {
            insert_session(c, &s)?;
            append_events(c, &s.id, None, events, s.created_at)
        })
        .await
    }

    async fn create_session_with_turn(&self, s: &SessionRecord, turn: NewTurn) -> Result<std::result::Result<TurnWritten, Refusal>> {
        let s = s.clone();
        // A refused turn writes no session either.
        self.write(move |c| write_turn(c, SessionState::Idle, turn, |c| insert_session(c, &s))).await
    }

    async fn session(&self, id: &str) -> Result<Option<SessionRecord>> {
        let id = id.to_string();
        self.read(move |c| Ok(c.prepare_cached("SELECT * FROM sessions WHERE id = ?")?.query_row([id], session_from).optional()?)).await
    }

    async fn messages(&self, session_id: &str) -> Result<Vec<MessageRecord>> {
        let id = session_id.to_string();
        self.read(move |c| {
            Ok(c.prepare_cached("SELECT * FROM messages WHERE session_id = ? ORDER BY ord")?
                .query_map([id], message_from)?
                .collect::<rusqlite::Result<Vec<_>>>()?)
        })
        .await
    }

    async fn start_turn(&self, session_id: &str, turn: NewTurn) -> Result<std::result::Result<TurnWritten, Refusal>> {
        let session_id = session_id.to_string();
        self.write(move |c| {
            let state: Option<SessionState> =
                c.prepare_cached("SELECT * FROM sessions WHERE id = ?")?.query_row([&session_id], |r| state_from(r, SessionState::parse)).optional()?;
            let Some(state) = state else { return Err(StoreError::NotFound) };
            write_turn(c, state, turn, |_| Ok(()))
        })
        .await
    }

    async fn run(&self, id: &str) -> Result<Option<RunRecord>> {
        let id = id.to_string();
        self.read(move |c| Ok(c.prepare_cached("SELECT * FROM runs WHERE id = ?")?.query_row([id], run_from).optional()?)).await
    }

    async fn active_counts(&self, agent_id: &str, organization_id: &str) -> Result<ActiveCounts> {
        let (a, o) = (agent_id.to_string(), organization_id.to_string());
        self.read(move |c| active_counts_tx(c, &a, &o)).await
    }

    async fn queue_position(&self, run: &RunRecord) -> Result<i64> {
        let run = run.clone();
        self.read(move |c| queue_position_tx(c, &run)).await
    }

    async fn request_cancel(&self, run_id: &str) -> Result<()> {
        let id = run_id.to_string();
        self.write(move |c| {
            c.prepare_cached("UPDATE runs SET cancel_requested = 1 WHERE id = ?")?.execute([id])?;
            Ok(())
        })
        .await
    }

    async fn list_sessions(&self, filter: &SessionFilter, sort: SessionSort, page: &PageWindow) -> Result<Vec<(SortVal, SessionRecord)>> {
        let (filter, page) = (filter.clone(), page.clone());
        self.read_blocking(move |c| {
            // Each key is the expression of the index that serves the order (0012).
            let key = match sort {
                SessionSort::Created => "s.created_at",
                SessionSort::Name => SESSION_NAME_KEY,
                SessionSort::Credits => "CAST(round(COALESCE(json_extract(s.usage, '$.credit_cost'), 0) * 10000) AS INTEGER)",
            };
            let (u, o, t) = reader_params(&filter.reader);
            let mut args: Vec<SqlValue> = vec![u.into(), o.into(), t.into(), filter.agent_id.clone().into(), filter.own_team.clone().into()];
            let mut sql = format!(
                "SELECT s.*, {key} AS sort_key FROM sessions s WHERE s.agent_id = ?4 AND {READABLE} \
                 AND (s.creator_user_id != ?1 OR (CASE WHEN ?5 IS NOT NULL THEN s.team_id = ?5 \
                      ELSE (s.team_id IS NULL OR s.team_id IN (SELECT value FROM json_each(?3))) END))"
            );
            let mut arg = |v: SqlValue| {
                args.push(v);
                format!("?{}", args.len())
            };
            if let Some(states) = &filter.states {
                let list: Vec<String> = states.iter().map(|st| arg(st.as_str().to_string().into())).collect();
                sql.push_str(&format!(" AND s.state IN ({})", if list.is_empty() { "NULL".into() } else { list.join(", ") }));
            }
            if let Some(kind) = &filter.kind {
                sql.push_str(&format!(" AND s.type = {}", arg(kind.clone().into())));
            }
            if let Some(creator) = &filter.creator {
                sql.push_str(&format!(" AND s.creator_user_id = {}", arg(creator.clone().into())));
            }
            if let Some(trigger) = &filter.trigger_id {
                sql.push_str(&format!(" AND json_extract(s.metadata, '$.trigger.id') = {}", arg(trigger.clone().into())));
            }
            if let Some(needle) = &filter.search {
                let n = arg(needle.clone().into());
                sql.push_str(&format!(
                    " AND (instr({SESSION_NAME_KEY}, {n}) > 0 OR EXISTS (SELECT 1 FROM messages m WHERE m.session_id = s.id AND instr(lower(m.content), {n}) > 0))"
                ));
            }
            let (cmp, dir) = if page.desc { ("<", "DESC") } else { (">", "ASC") };
            if let Some((k, id)) = &page.after {
                let (k, id) = (arg(sort_arg(k)), arg(id.clone().into()));
                sql.push_str(&format!(" AND ({key}, s.id) {cmp} ({k}, {id})"));
            }
            let limit = arg((page.limit.min(i64::MAX as usize) as i64).into());
            sql.push_str(&format!(" ORDER BY {key} {dir}, s.id {dir} LIMIT {limit}"));
            let rows = c
                .prepare_cached(&sql)?
                .query_map(rusqlite::params_from_iter(args.iter()), |r| Ok((sort_val(r)?, session_from(r)?)))?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            Ok(rows)
        })
        .await
    }

    async fn rename_session(&self, id: &str, name: &str) -> Result<()> {
        let (id, name) = (id.to_string(), name.to_string());
        self.write(move |c| {
            c.prepare_cached("UPDATE sessions SET name = ?, updated_at = ? WHERE id = ?")?.execute(params![name, wire::time::now_micros(), id])?;
            Ok(())
        })
        .await
    }

    async fn first_event_of_run(&self, session_id: &str, run_id: &str) -> Result<Option<i64>> {
        let (s, r) = (session_id.to_string(), run_id.to_string());
        self.read(move |c| Ok(c.prepare_cached("SELECT MIN(seq) FROM events WHERE session_id = ? AND run_id = ?")?.query_row([s, r], |r| r.get(0))?)).await
    }

    async fn queued_messages(&self, session_id: &str) -> Result<Vec<QueuedMessageRecord>> {
        let id = session_id.to_string();
        self.read(move |c| {
            Ok(c.prepare_cached("SELECT * FROM session_queue WHERE session_id = ? ORDER BY created_at, id")?
                .query_map([id], |r| {
                    Ok(QueuedMessageRecord {
                        id: r.get("id")?,
                        session_id: r.get("session_id")?,
                        input: r.get("input")?,
                        created_at: r.get("created_at")?,
                        updated_at: r.get("updated_at")?,
                    })
                })?
                .collect::<rusqlite::Result<Vec<_>>>()?)
        })
        .await
    }

    async fn enqueue_message(&self, m: &QueuedMessageRecord, max: i64) -> Result<bool> {
        let m = m.clone();
        self.write(move |c| {
            // Count and insert in one transaction: the cap cannot be overrun by a race.
            let n: i64 = c.prepare_cached("SELECT COUNT(*) FROM session_queue WHERE session_id = ?")?.query_row([&m.session_id], |r| r.get(0))?;
            if n >= max {
                return Ok(false);
            }
            c.prepare_cached("INSERT INTO session_queue (id, session_id, input, created_at, updated_at) VALUES (?, ?, ?, ?, ?)")?
                .execute(params![m.id, m.session_id, m.input, m.created_at, m.updated_at])
                .map_err(|e| unique(e, "queued message"))?;
            Ok(true)
        })
        .await
    }

    async fn edit_queued_message(&self, session_id: &str, id: &str, input: &str, now: i64) -> Result<bool> {
        let (s, id, input) = (session_id.to_string(), id.to_string(), input.to_string());
        self.write(move |c| {
            Ok(c.prepare_cached("UPDATE session_queue SET input = ?, updated_at = ? WHERE session_id = ? AND id = ?")?.execute(params![input, now, s, id])?
                == 1)
        })
        .await
    }

    async fn delete_queued_message(&self, session_id: &str, id: &str) -> Result<bool> {
        let (s, id) = (session_id.to_string(), id.to_string());
        self.write(move |c| Ok(c.prepare_cached("DELETE FROM session_queue WHERE session_id = ? AND id = ?")?.execute([s, id])? == 1)).await
    }

    async fn insert_session_file(&self, f: &SessionFileRecord) -> Result<()> {
        let f = f.clone();
        self.write(move |c| {
            c.prepare_cached("INSERT INTO session_files (session_id, file_name, media_type, size, blob_key, created_at) VALUES (?, ?, ?, ?, ?, ?)")?
                .execute(params![f.session_id, f.file_name, f.media_type, f.size, f.blob_key, f.created_at])
                .map_err(|e| unique(e, "session file"))?;
            Ok(())
        })
        .await
    }

    async fn session_files(&self, session_id: &str) -> Result<Vec<SessionFileRecord>> {
        let id = session_id.to_string();
        self.read(move |c| {
            Ok(c.prepare_cached("SELECT * FROM session_files WHERE session_id = ? ORDER BY created_at, file_name")?
                .query_map([id], |r| file_from(r, r.get("session_id")?))?
                .collect::<rusqlite::Result<Vec<_>>>()?)
        })
        .await
    }

    async fn session_grants(&self, session_id: &str) -> Result<Vec<(String, String, String)>> {
        let id = session_id.to_string();
        self.read(move |c| {
            Ok(c.prepare_cached("SELECT kind, principal, role FROM session_grants WHERE session_id = ? ORDER BY created_at, kind, principal")?
                .query_map([id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
                .collect::<rusqlite::Result<Vec<_>>>()?)
        })
        .await
    }

    async fn change_session_grants(&self, session_id: &str, upsert: &[(String, String, String)], remove: &[(String, String)]) -> Result<()> {
        let (id, upsert, remove) = (session_id.to_string(), upsert.to_vec(), remove.to_vec());
        self.write(move |c| {
            let now = wire::time::now_micros();
            for (kind, principal, role) in &upsert {
                c.prepare_cached(
                    "INSERT INTO session_grants (session_id, kind, principal, role, created_at) VALUES (?, ?, ?, ?, ?) ON CONFLICT(session_id, kind, principal) DO UPDATE SET role = excluded.role",
                )?
                .execute(params![id, kind, principal, role, now])?;
            }
            for (kind, principal) in &remove {
                c.prepare_cached("DELETE FROM session_grants WHERE session_id = ? AND kind = ? AND principal = ?")?.execute([&id, kind, principal])?;
            }
            Ok(())
        })
        .await
    }

    async fn delete_idle_sessions(&self, before: i64) -> Result<u64> {
        self.write(move |c| {
            let ids: Vec<String> = c
                .prepare_cached("SELECT id FROM sessions WHERE updated_at < ? AND state NOT IN ('queued', 'processing', 'approval_required')")?
                .query_map([before], |r| r.get(0))?
                .collect::<rusqlite::Result<Vec<_>>>()?;
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
                    c.prepare_cached(sql)?.execute([id])?;
                }
            }
            Ok(ids.len() as u64)
        })
        .await
    }
}

#[async_trait]
impl RunStore for SqliteStore {
    async fn claim_run(&self, owner: &str, now: i64, lease_until: i64, limits: SlotLimits) -> Result<Option<ClaimedRun>> {
        // Look on a reader first: an idle poll must not queue behind the writer.
        let any = self
            .read(move |c| {
                Ok(c.prepare_cached("SELECT id FROM jobs INDEXED BY jobs_ready WHERE state = 'ready' AND available_at <= ? LIMIT 1")?
                    .query_row([now], |r| r.get::<_, i64>(0))
                    .optional()?)
            })
            .await?;
        if any.is_none() {
            return Ok(None);
        }
        let owner = owner.to_string();
        self.write(move |c| {
            // Ready jobs in id order through the partial index; a queued run is taken only
            // while its agent and organization have a free slot (counters, not counts).
            let picked: Option<(i64, String, String)> = c
                .prepare_cached(
                    "SELECT j.id, j.run_id, r.state FROM jobs j INDEXED BY jobs_ready JOIN runs r ON r.id = j.run_id \
                     WHERE j.state = 'ready' AND j.available_at <= ?1 AND ( r.state != 'queued' OR ( \
                       COALESCE((SELECT n FROM run_counts WHERE scope = 'agent' AND key = r.agent_id AND state = 'processing'), 0) < ?2 AND \
                       COALESCE((SELECT n FROM run_counts WHERE scope = 'org' AND key = r.organization_id AND state = 'processing'), 0) < ?3 )) \
                     ORDER BY j.id LIMIT 1",
                )?
                .query_row(params![now, limits.agent, limits.org], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
                .optional()?;
            let Some((job_id, run_id, old_state)) = picked else { return Ok(None) };
            let old_state = RunState::parse(&old_state).ok_or_else(|| StoreError::Corrupt(format!("run {run_id} has an unknown state {old_state:?}")))?;
            let attempts: i64 = c
                .prepare_cached(
                    "UPDATE jobs SET state = 'leased', lease_owner = ?, lease_expires_at = ?, attempts = attempts + 1 WHERE id = ? RETURNING attempts",
                )?
                .query_row(params![owner, lease_until, job_id], |r| r.get(0))?;
            // Queued → processing (a slot freed); a processing run is being resumed.
            let run = c
                .prepare_cached(
                    "UPDATE runs SET state = 'processing', attempts = ?, started_at = COALESCE(started_at, ?) WHERE id = ? AND state = ? RETURNING *",
                )?
                .query_row(params![attempts, now, run_id, old_state.as_str()], run_from)?;
            count_transition(c, &run.agent_id, &run.organization_id, Some(old_state), Some(RunState::Processing))?;
            c.prepare_cached(
                "UPDATE sessions SET state = 'processing', updated_at = ? WHERE id = ? AND current_run_id = ? AND state IN ('queued', 'processing')",
            )?
            .execute(params![now, run.session_id, run.id])?;
            Ok(Some(ClaimedRun { run, attempts }))
        })
        .await
    }

    async fn heartbeat(&self, run_id: &str, owner: &str, lease_until: i64) -> Result<bool> {
        let (r, o) = (run_id.to_string(), owner.to_string());
        self.write(move |c| {
            Ok(c.prepare_cached("UPDATE jobs SET lease_expires_at = ? WHERE run_id = ? AND lease_owner = ? AND state = 'leased'")?.execute(params![
                lease_until,
                r,
                o
            ])? == 1)
        })
        .await
    }

    async fn expired_runs(&self, now: i64) -> Result<Vec<(String, i64)>> {
        self.read(move |c| {
            Ok(c.prepare_cached("SELECT run_id, attempts FROM jobs WHERE state = 'leased' AND lease_expires_at < ? ORDER BY id")?
                .query_map([now], |r| Ok((r.get(0)?, r.get(1)?)))?
                .collect::<rusqlite::Result<Vec<_>>>()?)
        })
        .await
    }

    async fn requeue_run(&self, run_id: &str, available_at: i64) -> Result<()> {
        let id = run_id.to_string();
        self.write(move |c| {
            c.prepare_cached("UPDATE jobs SET state = 'ready', lease_owner = NULL, lease_expires_at = NULL, available_at = ? WHERE run_id = ?")?
                .execute(params![available_at, id])?;
            Ok(())
        })
        .await
    }

    async fn release_all_leases(&self, owner_prefix: &str) -> Result<u64> {
        let prefix = owner_prefix.to_string();
        self.write(move |c| {
            Ok(c.prepare_cached(
                "UPDATE jobs SET state = 'ready', lease_owner = NULL, lease_expires_at = NULL WHERE state = 'leased' AND substr(lease_owner, 1, length(?1)) = ?1",
            )?
            .execute([prefix])? as u64)
        })
        .await
    }

    async fn run_steps(&self, run_id: &str) -> Result<Vec<StepRecord>> {
        let id = run_id.to_string();
        self.read(move |c| {
            Ok(c.prepare_cached("SELECT * FROM run_steps WHERE run_id = ? ORDER BY step, created_at, call_id")?
                .query_map([id], step_from)?
                .collect::<rusqlite::Result<Vec<_>>>()?)
        })
        .await
    }

    async fn update_run(&self, u: RunUpdate<'_>) -> Result<Option<Vec<EventRecord>>> {
        let u = OwnedRunUpdate::from(u);
        self.write(move |c| update_run_tx(c, u)).await
    }

    async fn active_run_counts(&self) -> Result<Vec<(String, i64)>> {
        self.read(|c| {
            let mut st = c.prepare_cached("SELECT state, SUM(n) FROM run_counts WHERE scope = 'org' GROUP BY state")?;
            let rows = st.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?.collect::<rusqlite::Result<Vec<_>>>()?;
            Ok(rows)
        })
        .await
    }

    async fn purge_events(&self, before: i64) -> Result<u64> {
        self.write(move |c| {
            let ids: Vec<(String, i64)> = c
                .prepare_cached(
                    "SELECT s.id, s.last_seq FROM sessions s JOIN runs r ON r.id = s.current_run_id \
                     WHERE r.finished_at IS NOT NULL AND r.finished_at < ? AND s.purged_through < s.last_seq LIMIT 500",
                )?
                .query_map([before], |r| Ok((r.get(0)?, r.get(1)?)))?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            let mut removed = 0u64;
            for (id, last) in ids {
                removed += c.prepare_cached("DELETE FROM events WHERE session_id = ? AND seq <= ?")?.execute(params![id, last])? as u64;
                c.prepare_cached("UPDATE sessions SET purged_through = ? WHERE id = ?")?.execute(params![last, id])?;
            }
            Ok(removed)
        })
        .await
    }

    async fn events_after(&self, session_id: &str, after: i64, limit: i64) -> Result<Vec<EventRecord>> {
        let id = session_id.to_string();
        self.read(move |c| {
            Ok(c.prepare_cached("SELECT * FROM events WHERE session_id = ? AND seq > ? ORDER BY seq LIMIT ?")?
                .query_map(params![id, after, limit], event_from)?
                .collect::<rusqlite::Result<Vec<_>>>()?)
        })
        .await
    }
}

/// `RunUpdate` with owned fields, to cross into the writer thread.
struct OwnedRunUpdate {
    run_id: String,
    lease_owner: Option<String>,
    only_if_unleased: bool,
    dequeue: Option<String>,
    message: Option<MessageRecord>,
    step: Option<StepRecord>,
    usage_delta: Option<Value>,
    transition: Option<Transition>,
    finish_reason: Option<String>,
    error_message: Option<String>,
    events: Vec<Value>,
    terminal: bool,
    release_job: bool,
    enqueue_job: bool,
}

impl From<RunUpdate<'_>> for OwnedRunUpdate {
    fn from(u: RunUpdate<'_>) -> Self {
        OwnedRunUpdate {
            run_id: u.run_id.to_string(),
            lease_owner: u.lease_owner.map(str::to_string),
            only_if_unleased: u.only_if_unleased,
            dequeue: u.dequeue.map(str::to_string),
            message: u.message.cloned(),
            step: u.step.cloned(),
            usage_delta: u.usage_delta.cloned(),
            transition: u.transition,
            finish_reason: u.finish_reason.map(str::to_string),
            error_message: u.error_message.map(str::to_string),
            events: u.events,
            terminal: u.terminal,
            release_job: u.release_job,
            enqueue_job: u.enqueue_job,
        }
    }
}

fn update_run_tx(c: &Connection, u: OwnedRunUpdate) -> Result<Option<Vec<EventRecord>>> {
    let now = wire::time::now_micros();
    // One read for everything the checks and the usage sums need.
    struct Checks {
        session_id: String,
        run_usage: String,
        assistant: Option<String>,
        session_usage: String,
        current: Option<String>,
        job_state: Option<String>,
        holder: Option<String>,
        run_state: String,
        session_state: String,
        agent_id: String,
        org_id: String,
    }
    let row: Option<Checks> = c
        .prepare_cached(
            "SELECT r.session_id, r.usage, r.assistant_message_id, s.usage, s.current_run_id, j.state, j.lease_owner, r.state, s.state, r.agent_id, r.organization_id \
             FROM runs r JOIN sessions s ON s.id = r.session_id LEFT JOIN jobs j ON j.run_id = r.id WHERE r.id = ?",
        )?
        .query_row([&u.run_id], |r| {
            Ok(Checks {
                session_id: r.get(0)?,
                run_usage: r.get(1)?,
                assistant: r.get(2)?,
                session_usage: r.get(3)?,
                current: r.get(4)?,
                job_state: r.get(5)?,
                holder: r.get(6)?,
                run_state: r.get(7)?,
                session_state: r.get(8)?,
                agent_id: r.get(9)?,
                org_id: r.get(10)?,
            })
        })
        .optional()?;
    let Some(Checks {
        session_id,
        run_usage: run_usage_raw,
        assistant,
        session_usage: sess_usage_raw,
        current,
        job_state,
        holder,
        run_state,
        session_state,
        agent_id,
        org_id,
    }) = row
    else {
        return Err(StoreError::NotFound);
    };
    let leased = job_state.as_deref() == Some("leased");
    if u.only_if_unleased && leased {
        return Ok(None);
    }
    if let Some(owner) = &u.lease_owner {
        if !leased || holder.as_deref() != Some(owner.as_str()) {
            return Ok(None);
        }
    }
    let is_current = current.as_deref() == Some(u.run_id.as_str());
    // The gate: a transition applies only from the state it was computed from, and the
    // session (while this is its current run) must be in that state too.
    if let Some(t) = u.transition {
        let session_from = t.from.session_state().as_str();
        if run_state != t.from.as_str() || (is_current && session_state != session_from) {
            let actual = if run_state != t.from.as_str() { run_state } else { format!("session {session_state}") };
            return Err(StoreError::Refused { expected: t.from.as_str(), actual });
        }
    }
    if let Some(qid) = &u.dequeue {
        c.prepare_cached("DELETE FROM session_queue WHERE id = ? AND session_id = ?")?.execute([qid, &session_id])?;
    }
    if let Some(m) = &u.message {
        upsert_message(c, m)?;
    }
    if let Some(s) = &u.step {
        c.prepare_cached(
            "INSERT INTO run_steps (run_id, step, call_id, state, output, created_at) VALUES (?, ?, ?, ?, ?, ?) \
             ON CONFLICT(run_id, step, call_id) DO UPDATE SET state = excluded.state, output = excluded.output",
        )?
        .execute(params![s.run_id, s.step, s.call_id, s.state, if s.output.is_null() { None } else { Some(s.output.to_string()) }, now])?;
    }
    // The run row: one statement for every change.
    let (run_usage, sess_usage) = match &u.usage_delta {
        Some(delta) => {
            let mut ru = parse(&run_usage_raw, "run usage")?;
            add_usage(&mut ru, delta);
            let mut su = parse(&sess_usage_raw, "session usage")?;
            add_usage(&mut su, delta);
            (Some(ru.to_string()), Some(su.to_string()))
        }
        None => (None, None),
    };
    let new_assistant = if assistant.is_none() { u.message.as_ref().map(|m| m.id.clone()) } else { None };
    let run_changes =
        run_usage.is_some() || new_assistant.is_some() || u.transition.is_some() || u.finish_reason.is_some() || u.error_message.is_some() || u.terminal;
    if run_changes {
        let (to, from) = (u.transition.map(|t| t.to.as_str()), u.transition.map(|t| t.from.as_str()));
        let changed = c
            .prepare_cached(
                "UPDATE runs SET usage = COALESCE(?, usage), assistant_message_id = COALESCE(assistant_message_id, ?), state = COALESCE(?, state), \
                 finish_reason = COALESCE(?, finish_reason), error_message = COALESCE(?, error_message), finished_at = CASE WHEN ? THEN ? ELSE finished_at END \
                 WHERE id = ? AND state = COALESCE(?, state)",
            )?
            .execute(params![run_usage, new_assistant, to, u.finish_reason, u.error_message, u.terminal, now, u.run_id, from])?;
        if changed != 1 {
            return Err(StoreError::Refused { expected: from.unwrap_or("unchanged"), actual: "changed concurrently".into() });
        }
    }
    // The credits of a model call, in the ledger, in the same transaction as the usage.
    if let Some(amount) = u.usage_delta.as_ref().and_then(|d| d.get("credit_cost")).and_then(Value::as_f64).filter(|a| *a > 0.0) {
        c.prepare_cached(
            "INSERT INTO credit_ledger (id, organization_id, user_id, team_id, created_at, category, type, name, amount, correlation_id, session_id, agent_id) \
             SELECT ?1, ?2, s.creator_user_id, s.team_id, ?3, CASE WHEN s.type = 'flow' THEN 'PIPELINE_RUN' ELSE 'AGENT_RUN' END, 'model_call', \
                    COALESCE(json_extract(s.agent_snapshot, '$.name'), 'agent'), ?4, ?5, s.id, ?6 \
             FROM sessions s WHERE s.id = ?7",
        )?
        .execute(params![wire::ids::new_id("cl"), org_id, now, amount, u.run_id, agent_id, session_id])?;
    }
    if let Some(t) = u.transition {
        count_transition(c, &agent_id, &org_id, Some(t.from), Some(t.to))?;
    }
    if u.terminal || u.release_job {
        c.prepare_cached("DELETE FROM jobs WHERE run_id = ?")?.execute([&u.run_id])?;
    }
    if u.enqueue_job {
        c.prepare_cached(
            "INSERT INTO jobs (run_id, state, attempts, available_at, created_at) VALUES (?, 'ready', 0, ?, ?) \
             ON CONFLICT(run_id) DO UPDATE SET state = 'ready', lease_owner = NULL, lease_expires_at = NULL",
        )?
        .execute(params![u.run_id, now, now])?;
    }
    // The session row: state (only while this run is current), usage and the event
    // sequence in one statement.
    let state = u.transition.filter(|_| is_current).map(|t| t.to.session_state().as_str());
    let n = u.events.len() as i64;
    let last_seq: Option<i64> = if state.is_some() || sess_usage.is_some() || n > 0 {
        Some(
            c.prepare_cached(
                "UPDATE sessions SET state = COALESCE(?, state), usage = COALESCE(?, usage), last_seq = last_seq + ?, updated_at = ? WHERE id = ? RETURNING last_seq",
            )?
            .query_row(params![state, sess_usage, n, now, session_id], |r| r.get(0))?,
        )
    } else {
        None
    };
    let ev = match last_seq {
        Some(last) if n > 0 => insert_events(c, &session_id, Some(&u.run_id), u.events, last - n + 1, now)?,
        _ => vec![],
    };
    Ok(Some(ev))
}
