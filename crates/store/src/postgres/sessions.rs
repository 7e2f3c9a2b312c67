//! Sessions, their transcript, queue, files and grants; the durable run queue and the
//! event log (ported from `sqlite/sessions.rs`, same behaviour).
//!
//! Concurrency (READ COMMITTED, several replicas). Locks are always taken in this order:
//! 1. the session row (`FOR NO KEY UPDATE`): numbering messages and events, checking
//!    its state or its queue;
//! 2. the run's job row (lease checks);
//! 3. the slot locks: the organization's `run_counts` 'processing' row, then the
//!    agent's ([`lock_slots`]). Every transaction that may RAISE a run count (admission,
//!    claim, a transition into queued or processing) takes both before deciding, so the
//!    counts it reads are exact and limits cannot be overrun. A transition that only
//!    lowers counts (a run ending) decrements them as its last statements, holding the
//!    rows only while it commits: the organization's row is every run's serial section,
//!    so how long it is held bounds runs/s (docs/BENCHMARKS.md).
//!
//! `claim_run` takes the slot locks first but its job, run and session with `SKIP
//! LOCKED`, so it never waits for a row another writer holds: no cycle with the order
//! above.

use async_trait::async_trait;
use serde_json::{json, Value};
use sqlx::postgres::PgRow;
use sqlx::{PgConnection, Row};

use super::{corrupt, pg_json, pg_text, unique, PgStore};
use crate::{
    ActiveCounts, AdmissionView, ClaimedRun, EventRecord, MessageRecord, NewTurn, PageWindow, QueuedMessageRecord, Reader, Refusal, Result, RunRecord,
    RunState, RunStore, RunUpdate, SessionFileRecord, SessionFilter, SessionRecord, SessionSort, SessionState, SessionStore, SlotLimits, SortVal, StepRecord,
    StoreError, TurnWritten,
};

/// Claim attempts before `claim_run` reports nothing (each failed attempt means another
/// claimer took the job first or the slot counts changed).
const CLAIM_ATTEMPTS: usize = 64;

/// A `state` column: an unknown value is a corrupt row, never a guess.
pub(crate) fn state_of<T>(r: &PgRow, what: &str, parse: impl Fn(&str) -> Option<T>) -> Result<T> {
    let v: String = r.try_get("state")?;
    parse(&v).ok_or_else(|| corrupt(what, format!("unknown state {v:?}")))
}

fn session_from(r: &PgRow) -> Result<SessionRecord> {
    Ok(SessionRecord {
        id: r.try_get("id")?,
        agent_id: r.try_get("agent_id")?,
        creator_user_id: r.try_get("creator_user_id")?,
        team_id: r.try_get("team_id")?,
        organization_id: r.try_get("organization_id")?,
        kind: r.try_get("type")?,
        name: r.try_get("name")?,
        state: state_of(r, "session", SessionState::parse)?,
        metadata: r.try_get("metadata")?,
        agent_snapshot: r.try_get("agent_snapshot")?,
        usage: r.try_get("usage")?,
        last_seq: r.try_get("last_seq")?,
        purged_through: r.try_get("purged_through")?,
        current_run_id: r.try_get("current_run_id")?,
        created_at: r.try_get("created_at")?,
        updated_at: r.try_get("updated_at")?,
    })
}

fn message_from(r: &PgRow) -> Result<MessageRecord> {
    Ok(MessageRecord {
        id: r.try_get("id")?,
        session_id: r.try_get("session_id")?,
        ord: r.try_get("ord")?,
        run_id: r.try_get("run_id")?,
        role: r.try_get("role")?,
        content: r.try_get("content")?,
        parts: r.try_get("parts")?,
        creator_id: r.try_get("creator_id")?,
        created_at: r.try_get("created_at")?,
    })
}

fn run_from(r: &PgRow) -> Result<RunRecord> {
    Ok(RunRecord {
        id: r.try_get("id")?,
        session_id: r.try_get("session_id")?,
        agent_id: r.try_get("agent_id")?,
        organization_id: r.try_get("organization_id")?,
        user_message_id: r.try_get("user_message_id")?,
        assistant_message_id: r.try_get("assistant_message_id")?,
        state: state_of(r, "run", RunState::parse)?,
        attempts: r.try_get("attempts")?,
        cancel_requested: r.try_get("cancel_requested")?,
        finish_reason: r.try_get("finish_reason")?,
        error_message: r.try_get("error_message")?,
        usage: r.try_get("usage")?,
        created_at: r.try_get("created_at")?,
        started_at: r.try_get("started_at")?,
        finished_at: r.try_get("finished_at")?,
    })
}

/// An uploaded file row (`session_files` or `flow_files`), owned by `owner`.
pub(crate) fn file_from(r: &PgRow, owner: String) -> Result<SessionFileRecord> {
    Ok(SessionFileRecord {
        session_id: owner,
        file_name: r.try_get("file_name")?,
        media_type: r.try_get("media_type")?,
        size: r.try_get("size")?,
        blob_key: r.try_get("blob_key")?,
        created_at: r.try_get("created_at")?,
    })
}

fn event_from(r: &PgRow) -> Result<EventRecord> {
    let data: String = r.try_get("data")?;
    Ok(EventRecord {
        session_id: r.try_get("session_id")?,
        seq: r.try_get("seq")?,
        run_id: r.try_get("run_id")?,
        kind: r.try_get("type")?,
        data: serde_json::from_str(&data).map_err(|e| corrupt("event", e))?,
        created_at: r.try_get("created_at")?,
    })
}

fn step_from(r: &PgRow) -> Result<StepRecord> {
    let out: Option<Value> = r.try_get("output")?;
    Ok(StepRecord {
        run_id: r.try_get("run_id")?,
        step: r.try_get("step")?,
        call_id: r.try_get("call_id")?,
        state: r.try_get("state")?,
        output: out.unwrap_or(Value::Null),
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

/// Takes the slot locks of an organization and an agent (in that order), creating their
/// counter rows when missing; held until the transaction ends.
async fn lock_slots(c: &mut PgConnection, org_id: &str, agent_id: &str) -> Result<()> {
    for (scope, key) in [("org", org_id), ("agent", agent_id)] {
        loop {
            let locked = sqlx::query("SELECT n FROM run_counts WHERE scope = $1 AND key = $2 AND state = 'processing' FOR NO KEY UPDATE")
                .bind(scope)
                .bind(key)
                .fetch_optional(&mut *c)
                .await?;
            if locked.is_some() {
                break;
            }
            // First use: create the row (a concurrent creator wins harmlessly), then lock it.
            sqlx::query("INSERT INTO run_counts (scope, key, state, n) VALUES ($1, $2, 'processing', 0) ON CONFLICT (scope, key, state) DO NOTHING")
                .bind(scope)
                .bind(key)
                .execute(&mut *c)
                .await?;
        }
    }
    Ok(())
}

/// Locks a session row for this transaction; its state, or `None` when it does not exist.
async fn lock_session(c: &mut PgConnection, id: &str) -> Result<Option<SessionState>> {
    let row = sqlx::query("SELECT state FROM sessions WHERE id = $1 FOR NO KEY UPDATE").bind(id).fetch_optional(&mut *c).await?;
    row.map(|r| state_of(&r, "session", SessionState::parse)).transpose()
}

async fn append_events(c: &mut PgConnection, session_id: &str, run_id: Option<&str>, events: Vec<Value>, now: i64) -> Result<Vec<EventRecord>> {
    if events.is_empty() {
        return Ok(vec![]);
    }
    let n = events.len() as i64;
    let last: i64 = sqlx::query_scalar("UPDATE sessions SET last_seq = last_seq + $1, updated_at = $2 WHERE id = $3 RETURNING last_seq")
        .bind(n)
        .bind(now)
        .bind(session_id)
        .fetch_one(&mut *c)
        .await?;
    insert_events(c, session_id, run_id, events, last - n + 1, now).await
}

/// Inserts events with consecutive seqs from `first` (one statement).
async fn insert_events(c: &mut PgConnection, session_id: &str, run_id: Option<&str>, events: Vec<Value>, first: i64, now: i64) -> Result<Vec<EventRecord>> {
    let mut kinds = Vec::with_capacity(events.len());
    let mut texts = Vec::with_capacity(events.len());
    for data in &events {
        kinds.push(data.get("type").and_then(Value::as_str).unwrap_or("data").to_string());
        // (The data is JSON text, where a NUL is an escape: stored as is.)
        texts.push(data.to_string());
    }
    sqlx::query(
        "INSERT INTO events (session_id, seq, run_id, type, data, created_at) \
         SELECT $1, $2 + e.i - 1, $3, e.t, e.d, $4 FROM UNNEST($5::text[], $6::text[]) WITH ORDINALITY AS e(t, d, i)",
    )
    .bind(session_id)
    .bind(first)
    .bind(run_id)
    .bind(now)
    .bind(kinds.iter().map(|k| pg_text(k)).collect::<Vec<_>>())
    .bind(&texts)
    .execute(&mut *c)
    .await?;
    Ok(events
        .into_iter()
        .zip(kinds)
        .enumerate()
        .map(|(i, (data, kind))| EventRecord {
            session_id: session_id.to_string(),
            seq: first + i as i64,
            run_id: run_id.map(str::to_string),
            kind,
            data,
            created_at: now,
        })
        .collect())
}

/// Inserts or updates a message; a new one takes the session's next ordinal (the caller
/// holds the session row, or created it in this transaction).
async fn upsert_message(c: &mut PgConnection, m: &MessageRecord) -> Result<()> {
    sqlx::query(
        "INSERT INTO messages (id, session_id, ord, run_id, role, content, parts, creator_id, created_at) \
         VALUES ($1, $2, (SELECT COALESCE(MAX(ord), 0) + 1 FROM messages WHERE session_id = $2), $3, $4, $5, $6, $7, $8) \
         ON CONFLICT (id) DO UPDATE SET content = EXCLUDED.content, parts = EXCLUDED.parts",
    )
    .bind(&m.id)
    .bind(&m.session_id)
    .bind(&m.run_id)
    .bind(pg_text(&m.role))
    .bind(m.content.as_deref().map(pg_text))
    .bind(pg_json(&m.parts).as_ref())
    .bind(&m.creator_id)
    .bind(m.created_at)
    .execute(&mut *c)
    .await?;
    Ok(())
}

/// Moves one run between the counted states (`queued`, `processing`) of its agent and
/// organization; other states are not counted. The caller holds the slot locks.
async fn count_transition(c: &mut PgConnection, agent_id: &str, org_id: &str, from: Option<RunState>, to: Option<RunState>) -> Result<()> {
    if from == to {
        return Ok(());
    }
    for (state, delta) in [(from, -1i64), (to, 1)] {
        if let Some(state) = state.filter(|s| matches!(s, RunState::Queued | RunState::Processing)) {
            for (scope, key) in [("org", org_id), ("agent", agent_id)] {
                sqlx::query(
                    "INSERT INTO run_counts (scope, key, state, n) VALUES ($1, $2, $3, $4) \
                     ON CONFLICT (scope, key, state) DO UPDATE SET n = run_counts.n + EXCLUDED.n",
                )
                .bind(scope)
                .bind(key)
                .bind(state.as_str())
                .bind(delta)
                .execute(&mut *c)
                .await?;
            }
        }
    }
    Ok(())
}

async fn insert_run_and_job(c: &mut PgConnection, r: &RunRecord, now: i64) -> Result<()> {
    count_transition(c, &r.agent_id, &r.organization_id, None, Some(r.state)).await?;
    sqlx::query(
        "INSERT INTO runs (id, session_id, agent_id, organization_id, user_message_id, assistant_message_id, state, attempts, cancel_requested, usage, created_at) \
         VALUES ($1, $2, $3, $4, $5, NULL, $6, 0, FALSE, '{}', $7)",
    )
    .bind(&r.id)
    .bind(&r.session_id)
    .bind(&r.agent_id)
    .bind(&r.organization_id)
    .bind(&r.user_message_id)
    .bind(r.state.as_str())
    .bind(r.created_at)
    .execute(&mut *c)
    .await?;
    sqlx::query("INSERT INTO jobs (run_id, state, attempts, available_at, created_at) VALUES ($1, 'ready', 0, $2, $2)")
        .bind(&r.id)
        .bind(now)
        .execute(&mut *c)
        .await?;
    Ok(())
}

async fn insert_session(c: &mut PgConnection, s: &SessionRecord) -> Result<()> {
    sqlx::query(
        "INSERT INTO sessions (id, agent_id, creator_user_id, team_id, organization_id, type, name, state, metadata, agent_snapshot, usage, last_seq, current_run_id, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, 0, $12, $13, $14)",
    )
    .bind(&s.id)
    .bind(&s.agent_id)
    .bind(&s.creator_user_id)
    .bind(&s.team_id)
    .bind(&s.organization_id)
    .bind(pg_text(&s.kind))
    .bind(s.name.as_deref().map(pg_text))
    .bind(s.state.as_str())
    .bind(pg_json(&s.metadata).as_ref())
    .bind(pg_json(&s.agent_snapshot).as_ref())
    .bind(pg_json(&s.usage).as_ref())
    .bind(&s.current_run_id)
    .bind(s.created_at)
    .bind(s.updated_at)
    .execute(&mut *c)
    .await
    .map_err(|e| unique(e, "session"))?;
    Ok(())
}

const ACTIVE_COUNTS: &str = "SELECT COALESCE((SELECT n FROM run_counts WHERE scope = 'agent' AND key = $1 AND state = 'processing'), 0) AS agent_processing, \
            COALESCE((SELECT n FROM run_counts WHERE scope = 'org' AND key = $2 AND state = 'processing'), 0) AS org_processing, \
            COALESCE((SELECT n FROM run_counts WHERE scope = 'agent' AND key = $1 AND state = 'queued'), 0) AS agent_queued";

fn counts_from(r: &PgRow) -> Result<ActiveCounts> {
    Ok(ActiveCounts {
        agent_processing: r.try_get("agent_processing")?,
        org_processing: r.try_get("org_processing")?,
        agent_queued: r.try_get("agent_queued")?,
    })
}

async fn active_counts_tx(c: &mut PgConnection, agent_id: &str, org_id: &str) -> Result<ActiveCounts> {
    counts_from(&sqlx::query(ACTIVE_COUNTS).bind(agent_id).bind(org_id).fetch_one(&mut *c).await?)
}

/// What a turn is written into: a session created in the same transaction, or an
/// existing one (whose state the admission rule sees).
enum TurnTarget<'a> {
    New(&'a SessionRecord),
    Existing(&'a str),
}

/// Writes a turn the admission rule accepts, in the caller's transaction. Nothing is
/// written when it refuses (the caller rolls back).
async fn write_turn(c: &mut PgConnection, target: TurnTarget<'_>, turn: NewTurn) -> Result<std::result::Result<TurnWritten, Refusal>> {
    let NewTurn { message, mut run, admit, dequeue } = turn;
    let session_state = match target {
        TurnTarget::New(_) => SessionState::Idle,
        TurnTarget::Existing(id) => match lock_session(c, id).await? {
            Some(st) => st,
            None => return Err(StoreError::NotFound),
        },
    };
    // Then the slot locks: the counts the rule sees cannot rise before this commits.
    lock_slots(c, &run.organization_id, &run.agent_id).await?;
    let counts = active_counts_tx(c, &run.agent_id, &run.organization_id).await?;
    let (state, events) = match admit(&AdmissionView { session_state, counts }) {
        Ok(v) => v,
        Err(refusal) => return Ok(Err(refusal)),
    };
    run.state = state;
    let now = message.created_at;
    if let Some(qid) = &dequeue {
        let removed = sqlx::query("DELETE FROM session_queue WHERE id = $1 AND session_id = $2").bind(qid).bind(&run.session_id).execute(&mut *c).await?;
        if removed.rows_affected() == 0 {
            return Ok(Err(Refusal::Dequeued));
        }
    }
    if let TurnTarget::New(s) = target {
        insert_session(c, s).await?;
    }
    upsert_message(c, &message).await?;
    insert_run_and_job(c, &run, now).await?;
    sqlx::query("UPDATE sessions SET state = $1, current_run_id = $2, updated_at = $3 WHERE id = $4")
        .bind(state.session_state().as_str())
        .bind(&run.id)
        .bind(now)
        .bind(&run.session_id)
        .execute(&mut *c)
        .await?;
    let events = append_events(c, &run.session_id, Some(&run.id), events, now).await?;
    // Admissions of one agent are serialised by its slot lock, so the new job has the
    // highest id of the agent's ready jobs: its place is the agent's queued count.
    let queue_position =
        if state == RunState::Queued { Some(active_counts_tx(c, &run.agent_id, &run.organization_id).await?.agent_queued.max(1)) } else { None };
    Ok(Ok(TurnWritten { events, state, queue_position }))
}

/// A session's listed name, case-folded ASCII-only like SQLite's `lower` (S3 `name_*`
/// order and search; the expression of the `sessions_list_name` index).
const SESSION_NAME_KEY: &str = "lower(COALESCE(s.name, s.agent_snapshot ->> 'name', '') COLLATE \"C\")";

/// Credits ×10⁴ rounded half away from zero, as SQLite's `CAST(round(x * 10000) AS
/// INTEGER)` (the expression of the `sessions_list_credits` index).
const SESSION_CREDITS_KEY: &str =
    "trunc(CASE WHEN jsonb_typeof(s.usage -> 'credit_cost') = 'number' THEN (s.usage ->> 'credit_cost')::double precision ELSE 0 END * 10000 \
          + CASE WHEN jsonb_typeof(s.usage -> 'credit_cost') = 'number' AND (s.usage ->> 'credit_cost')::double precision < 0 THEN -0.5 ELSE 0.5 END)::bigint";

/// `s` (a session row) is readable by the reader bound as $1 (user), $2 (organization)
/// and $3 (text[] of team ids): its creator, or a grantee.
pub(crate) const READABLE: &str = "(s.creator_user_id = $1 OR EXISTS (SELECT 1 FROM session_grants g WHERE g.session_id = s.id AND \
     ((g.kind = 'person' AND g.principal = $1) OR (g.kind = 'organization' AND g.principal = $2) \
     OR (g.kind = 'team' AND g.principal = ANY($3)))))";

/// A query argument of a dynamically built listing.
pub(crate) enum Arg {
    Text(String),
    OptText(Option<String>),
    Int(i64),
    TextArray(Vec<String>),
}

/// The keyset condition "(key, id) after the cursor (k, id)" of a listing ordered by
/// `key` (an integer column when `int_key`) then `id_col`, descending when `desc`. A
/// cursor whose value is of the other type compares as in SQLite, where every integer
/// sorts before every text.
pub(crate) fn after_cursor(args: &mut Args, key: &str, int_key: bool, id_col: &str, desc: bool, cursor: &(SortVal, String)) -> String {
    let cmp = if desc { "<" } else { ">" };
    let (k, id) = cursor;
    let k = match (k, int_key) {
        (SortVal::Int(i), true) => args.push(Arg::Int(*i)),
        (SortVal::Str(s), false) => args.push(Arg::Text(s.clone())),
        // Integer keys before a text cursor: all of them when descending, none ascending.
        (SortVal::Str(_), true) => return if desc { "TRUE".into() } else { "FALSE".into() },
        // Text keys after an integer cursor.
        (SortVal::Int(_), false) => return if desc { "FALSE".into() } else { "TRUE".into() },
    };
    let id = args.push(Arg::Text(id.clone()));
    format!("({key}, {id_col}) {cmp} ({k}, {id})")
}

/// Numbered arguments (`$1`, `$2`…) of a dynamically built query.
pub(crate) struct Args(pub(crate) Vec<Arg>);

impl Args {
    /// The first three arguments: the reader of `READABLE`.
    pub(crate) fn reader(r: &Reader) -> Args {
        Args(vec![Arg::Text(r.user_id.clone()), Arg::Text(r.organization_id.clone()), Arg::TextArray(r.team_ids.clone())])
    }

    /// Adds an argument; its placeholder.
    pub(crate) fn push(&mut self, a: Arg) -> String {
        self.0.push(a);
        format!("${}", self.0.len())
    }

    pub(crate) fn bind<'q>(
        self,
        mut q: sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments>,
    ) -> sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments> {
        for a in self.0 {
            // Search strings and cursors come from clients: a NUL matches like U+FFFD.
            q = match a {
                Arg::Text(v) => q.bind(owned_text(v)),
                Arg::OptText(v) => q.bind(v.map(owned_text)),
                Arg::Int(v) => q.bind(v),
                Arg::TextArray(v) => q.bind(v.into_iter().map(owned_text).collect::<Vec<_>>()),
            };
        }
        q
    }
}

/// [`pg_text`] of an owned string (no copy when it has no NUL).
pub(crate) fn owned_text(s: String) -> String {
    if s.contains('\0') {
        pg_text(&s).into_owned()
    } else {
        s
    }
}

/// The `sort_key` column of a listing row.
pub(crate) fn sort_val(r: &PgRow, int: bool) -> Result<SortVal> {
    Ok(if int { SortVal::Int(r.try_get("sort_key")?) } else { SortVal::Str(r.try_get::<Option<String>, _>("sort_key")?.unwrap_or_default()) })
}

#[async_trait]
impl SessionStore for PgStore {
    async fn create_session(&self, s: &SessionRecord, events: Vec<Value>) -> Result<Vec<EventRecord>> {
        let mut tx = self.begin().await?;
        insert_session(&mut tx, s).await?;
        let out = append_events(&mut tx, &s.id, None, events, s.created_at).await?;
        tx.commit().await?;
        Ok(out)
    }

    async fn create_session_with_turn(&self, s: &SessionRecord, turn: NewTurn) -> Result<std::result::Result<TurnWritten, Refusal>> {
        let mut tx = self.begin().await?;
        // A refused turn writes no session either.
        let out = write_turn(&mut tx, TurnTarget::New(s), turn).await?;
        if out.is_ok() {
            tx.commit().await?;
        } else {
            tx.rollback().await?;
        }
        Ok(out)
    }

    async fn session(&self, id: &str) -> Result<Option<SessionRecord>> {
        sqlx::query("SELECT * FROM sessions WHERE id = $1").bind(id).fetch_optional(self.pool()).await?.as_ref().map(session_from).transpose()
    }

    async fn messages(&self, session_id: &str) -> Result<Vec<MessageRecord>> {
        sqlx::query("SELECT * FROM messages WHERE session_id = $1 ORDER BY ord")
            .bind(session_id)
            .fetch_all(self.pool())
            .await?
            .iter()
            .map(message_from)
            .collect()
    }

    async fn start_turn(&self, session_id: &str, turn: NewTurn) -> Result<std::result::Result<TurnWritten, Refusal>> {
        let mut tx = self.begin().await?;
        let out = write_turn(&mut tx, TurnTarget::Existing(session_id), turn).await?;
        if out.is_ok() {
            tx.commit().await?;
        } else {
            tx.rollback().await?;
        }
        Ok(out)
    }

    async fn run(&self, id: &str) -> Result<Option<RunRecord>> {
        sqlx::query("SELECT * FROM runs WHERE id = $1").bind(id).fetch_optional(self.pool()).await?.as_ref().map(run_from).transpose()
    }

    async fn active_counts(&self, agent_id: &str, organization_id: &str) -> Result<ActiveCounts> {
        counts_from(&sqlx::query(ACTIVE_COUNTS).bind(agent_id).bind(organization_id).fetch_one(self.pool()).await?)
    }

    async fn queue_position(&self, run: &RunRecord) -> Result<i64> {
        // Claims serve ready jobs in job-id (write) order, so the place is counted in that
        // order too; the callers' clocks may disagree with the write order.
        let n: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM jobs j JOIN runs r ON r.id = j.run_id \
             WHERE j.state = 'ready' AND j.id <= (SELECT id FROM jobs WHERE run_id = $1) AND r.agent_id = $2 AND r.state = 'queued'",
        )
        .bind(&run.id)
        .bind(&run.agent_id)
        .fetch_one(self.pool())
        .await?;
        Ok(n.max(1))
    }

    async fn request_cancel(&self, run_id: &str) -> Result<()> {
        let mut tx = self.begin().await?;
        sqlx::query("UPDATE runs SET cancel_requested = TRUE WHERE id = $1").bind(run_id).execute(&mut *tx).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn list_sessions(&self, filter: &SessionFilter, sort: SessionSort, page: &PageWindow) -> Result<Vec<(SortVal, SessionRecord)>> {
        // Each key is the expression of the index that serves the order (0002).
        let (key, int_key) = match sort {
            SessionSort::Created => ("s.created_at", true),
            SessionSort::Name => (SESSION_NAME_KEY, false),
            SessionSort::Credits => (SESSION_CREDITS_KEY, true),
        };
        let mut args = Args::reader(&filter.reader);
        args.push(Arg::Text(filter.agent_id.clone()));
        args.push(Arg::OptText(filter.own_team.clone()));
        let mut sql = format!(
            "SELECT s.*, {key} AS sort_key FROM sessions s WHERE s.agent_id = $4 AND {READABLE} \
             AND (s.creator_user_id != $1 OR (CASE WHEN $5::text IS NOT NULL THEN s.team_id = $5 \
                  ELSE (s.team_id IS NULL OR s.team_id = ANY($3)) END))"
        );
        if let Some(states) = &filter.states {
            let p = args.push(Arg::TextArray(states.iter().map(|st| st.as_str().to_string()).collect()));
            sql.push_str(&format!(" AND s.state = ANY({p})"));
        }
        if let Some(kind) = &filter.kind {
            sql.push_str(&format!(" AND s.type = {}", args.push(Arg::Text(kind.clone()))));
        }
        if let Some(creator) = &filter.creator {
            sql.push_str(&format!(" AND s.creator_user_id = {}", args.push(Arg::Text(creator.clone()))));
        }
        if let Some(trigger) = &filter.trigger_id {
            sql.push_str(&format!(" AND s.metadata->'trigger'->>'id' = {}", args.push(Arg::Text(trigger.clone()))));
        }
        if let Some(needle) = &filter.search {
            let n = args.push(Arg::Text(needle.clone()));
            sql.push_str(&format!(
                " AND (strpos({SESSION_NAME_KEY}, {n}) > 0 OR EXISTS (SELECT 1 FROM messages m WHERE m.session_id = s.id AND strpos(lower(m.content COLLATE \"C\"), {n}) > 0))"
            ));
        }
        let dir = if page.desc { "DESC" } else { "ASC" };
        if let Some(cursor) = &page.after {
            sql.push_str(&format!(" AND {}", after_cursor(&mut args, key, int_key, "s.id", page.desc, cursor)));
        }
        let limit = args.push(Arg::Int(page.limit.min(i64::MAX as usize) as i64));
        sql.push_str(&format!(" ORDER BY {key} {dir}, s.id {dir} LIMIT {limit}"));
        let rows = args.bind(sqlx::query(&sql)).fetch_all(self.pool()).await?;
        rows.iter().map(|r| Ok((sort_val(r, int_key)?, session_from(r)?))).collect()
    }

    async fn rename_session(&self, id: &str, name: &str) -> Result<()> {
        let mut tx = self.begin().await?;
        sqlx::query("UPDATE sessions SET name = $1, updated_at = $2 WHERE id = $3")
            .bind(pg_text(name))
            .bind(wire::time::now_micros())
            .bind(id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn first_event_of_run(&self, session_id: &str, run_id: &str) -> Result<Option<i64>> {
        Ok(sqlx::query_scalar("SELECT MIN(seq) FROM events WHERE session_id = $1 AND run_id = $2").bind(session_id).bind(run_id).fetch_one(self.pool()).await?)
    }

    async fn queued_messages(&self, session_id: &str) -> Result<Vec<QueuedMessageRecord>> {
        let rows = sqlx::query("SELECT * FROM session_queue WHERE session_id = $1 ORDER BY created_at, id").bind(session_id).fetch_all(self.pool()).await?;
        rows.iter()
            .map(|r| {
                Ok(QueuedMessageRecord {
                    id: r.try_get("id")?,
                    session_id: r.try_get("session_id")?,
                    input: r.try_get("input")?,
                    created_at: r.try_get("created_at")?,
                    updated_at: r.try_get("updated_at")?,
                })
            })
            .collect()
    }

    async fn enqueue_message(&self, m: &QueuedMessageRecord, max: i64) -> Result<bool> {
        let mut tx = self.begin().await?;
        // Count and insert under the session's row lock: the cap cannot be overrun by a race.
        // (Without a session, the insert below fails on its foreign key, as SQLite's does.)
        lock_session(&mut tx, &m.session_id).await?;
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM session_queue WHERE session_id = $1").bind(&m.session_id).fetch_one(&mut *tx).await?;
        if n >= max {
            return Ok(false);
        }
        sqlx::query("INSERT INTO session_queue (id, session_id, input, created_at, updated_at) VALUES ($1, $2, $3, $4, $5)")
            .bind(&m.id)
            .bind(&m.session_id)
            .bind(pg_text(&m.input))
            .bind(m.created_at)
            .bind(m.updated_at)
            .execute(&mut *tx)
            .await
            .map_err(|e| unique(e, "queued message"))?;
        tx.commit().await?;
        Ok(true)
    }

    async fn edit_queued_message(&self, session_id: &str, id: &str, input: &str, now: i64) -> Result<bool> {
        let n = self
            .write_one(
                sqlx::query("UPDATE session_queue SET input = $1, updated_at = $2 WHERE session_id = $3 AND id = $4")
                    .bind(pg_text(input))
                    .bind(now)
                    .bind(session_id)
                    .bind(id),
            )
            .await?;
        Ok(n == 1)
    }

    async fn delete_queued_message(&self, session_id: &str, id: &str) -> Result<bool> {
        let mut tx = self.begin().await?;
        let n = sqlx::query("DELETE FROM session_queue WHERE session_id = $1 AND id = $2").bind(session_id).bind(id).execute(&mut *tx).await?.rows_affected();
        tx.commit().await?;
        Ok(n == 1)
    }

    async fn insert_session_file(&self, f: &SessionFileRecord) -> Result<()> {
        let mut tx = self.begin().await?;
        sqlx::query("INSERT INTO session_files (session_id, file_name, media_type, size, blob_key, created_at) VALUES ($1, $2, $3, $4, $5, $6)")
            .bind(&f.session_id)
            .bind(pg_text(&f.file_name))
            .bind(pg_text(&f.media_type))
            .bind(f.size)
            .bind(&f.blob_key)
            .bind(f.created_at)
            .execute(&mut *tx)
            .await
            .map_err(|e| unique(e, "session file"))?;
        tx.commit().await?;
        Ok(())
    }

    async fn session_files(&self, session_id: &str) -> Result<Vec<SessionFileRecord>> {
        let rows =
            sqlx::query("SELECT * FROM session_files WHERE session_id = $1 ORDER BY created_at, file_name").bind(session_id).fetch_all(self.pool()).await?;
        rows.iter().map(|r| file_from(r, r.try_get("session_id")?)).collect()
    }

    async fn session_grants(&self, session_id: &str) -> Result<Vec<(String, String, String)>> {
        let rows = sqlx::query("SELECT kind, principal, role FROM session_grants WHERE session_id = $1 ORDER BY created_at, kind, principal")
            .bind(session_id)
            .fetch_all(self.pool())
            .await?;
        rows.iter().map(|r| Ok((r.try_get("kind")?, r.try_get("principal")?, r.try_get("role")?))).collect()
    }

    async fn change_session_grants(&self, session_id: &str, upsert: &[(String, String, String)], remove: &[(String, String)]) -> Result<()> {
        let now = wire::time::now_micros();
        let mut tx = self.begin().await?;
        for (kind, principal, role) in upsert {
            sqlx::query(
                "INSERT INTO session_grants (session_id, kind, principal, role, created_at) VALUES ($1, $2, $3, $4, $5) \
                 ON CONFLICT (session_id, kind, principal) DO UPDATE SET role = EXCLUDED.role",
            )
            .bind(session_id)
            .bind(kind)
            .bind(pg_text(principal))
            .bind(role)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        }
        for (kind, principal) in remove {
            sqlx::query("DELETE FROM session_grants WHERE session_id = $1 AND kind = $2 AND principal = $3")
                .bind(session_id)
                .bind(kind)
                .bind(pg_text(principal))
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn delete_idle_sessions(&self, before: i64) -> Result<u64> {
        let mut tx = self.begin().await?;
        // Lock the sessions (in id order) so none becomes active while its traces go; a
        // session a concurrent turn made active no longer matches and stays.
        let ids: Vec<String> = sqlx::query_scalar(
            "SELECT id FROM sessions WHERE updated_at < $1 AND state NOT IN ('queued', 'processing', 'approval_required') ORDER BY id FOR UPDATE",
        )
        .bind(before)
        .fetch_all(&mut *tx)
        .await?;
        if !ids.is_empty() {
            for sql in [
                "DELETE FROM events WHERE session_id = ANY($1)",
                "DELETE FROM run_steps WHERE run_id IN (SELECT id FROM runs WHERE session_id = ANY($1))",
                "DELETE FROM jobs WHERE run_id IN (SELECT id FROM runs WHERE session_id = ANY($1))",
                "DELETE FROM runs WHERE session_id = ANY($1)",
                "DELETE FROM messages WHERE session_id = ANY($1)",
                "DELETE FROM session_queue WHERE session_id = ANY($1)",
                "DELETE FROM session_files WHERE session_id = ANY($1)",
                "DELETE FROM session_grants WHERE session_id = ANY($1)",
                "DELETE FROM artifact_versions WHERE artifact_id IN (SELECT id FROM artifacts WHERE session_id = ANY($1))",
                "DELETE FROM artifacts WHERE session_id = ANY($1)",
                "DELETE FROM sessions WHERE id = ANY($1)",
            ] {
                sqlx::query(sql).bind(&ids).execute(&mut *tx).await?;
            }
        }
        tx.commit().await?;
        Ok(ids.len() as u64)
    }
}

/// A ready job a claim may take, as the committed state shows it (no lock).
struct Candidate {
    job_id: i64,
    agent_id: String,
    org_id: String,
    run_state: String,
}

impl PgStore {
    /// One claim attempt: `None` when there is nothing to claim, `Some(None)` when the
    /// candidate was lost to another claimer or its slot filled meanwhile (try again).
    async fn try_claim(&self, owner: &str, now: i64, lease_until: i64, limits: SlotLimits) -> Result<Option<Option<ClaimedRun>>> {
        // The oldest ready job whose run may start, read without locks (an idle poll
        // locks nothing).
        let cand = sqlx::query(
            "SELECT j.id, r.agent_id, r.organization_id, r.state FROM jobs j JOIN runs r ON r.id = j.run_id \
             WHERE j.state = 'ready' AND j.available_at <= $1 AND ( r.state != 'queued' OR ( \
               COALESCE((SELECT n FROM run_counts WHERE scope = 'agent' AND key = r.agent_id AND state = 'processing'), 0) < $2 AND \
               COALESCE((SELECT n FROM run_counts WHERE scope = 'org' AND key = r.organization_id AND state = 'processing'), 0) < $3 )) \
             ORDER BY j.id LIMIT 1",
        )
        .bind(now)
        .bind(limits.agent)
        .bind(limits.org)
        .fetch_optional(self.pool())
        .await?;
        let Some(cand) = cand else { return Ok(None) };
        let cand = Candidate {
            job_id: cand.try_get("id")?,
            agent_id: cand.try_get("agent_id")?,
            org_id: cand.try_get("organization_id")?,
            run_state: cand.try_get("state")?,
        };
        let mut tx = self.begin().await?;
        // Take the job with its run and session, skipping rows another writer holds.
        const PICK: &str = "SELECT j.id, j.run_id, r.state FROM jobs j JOIN runs r ON r.id = j.run_id JOIN sessions s ON s.id = r.session_id \
             WHERE j.state = 'ready' AND j.available_at <= $1 AND ";
        let picked = if cand.run_state == RunState::Queued.as_str() {
            // A queued run takes a slot: under the slot locks, check the limits, then take
            // the agent's oldest ready queued job.
            lock_slots(&mut tx, &cand.org_id, &cand.agent_id).await?;
            let c = active_counts_tx(&mut tx, &cand.agent_id, &cand.org_id).await?;
            if c.agent_processing >= limits.agent || c.org_processing >= limits.org {
                tx.rollback().await?;
                return Ok(Some(None));
            }
            sqlx::query(&format!(
                "{PICK} r.state = 'queued' AND r.agent_id = $2 AND r.organization_id = $3 ORDER BY j.id LIMIT 1 FOR NO KEY UPDATE OF j, r, s SKIP LOCKED"
            ))
            .bind(now)
            .bind(&cand.agent_id)
            .bind(&cand.org_id)
            .fetch_optional(&mut *tx)
            .await?
        } else {
            // A run being resumed keeps its slot.
            sqlx::query(&format!("{PICK} j.id = $2 AND r.state = $3 FOR NO KEY UPDATE OF j, r, s SKIP LOCKED"))
                .bind(now)
                .bind(cand.job_id)
                .bind(&cand.run_state)
                .fetch_optional(&mut *tx)
                .await?
        };
        let Some(picked) = picked else {
            tx.rollback().await?;
            return Ok(Some(None));
        };
        let (job_id, run_id): (i64, String) = (picked.try_get("id")?, picked.try_get("run_id")?);
        let old_state = state_of(&picked, "run", RunState::parse)?;
        let attempts: i64 = sqlx::query_scalar(
            "UPDATE jobs SET state = 'leased', lease_owner = $1, lease_expires_at = $2, attempts = attempts + 1 WHERE id = $3 RETURNING attempts",
        )
        .bind(owner)
        .bind(lease_until)
        .bind(job_id)
        .fetch_one(&mut *tx)
        .await?;
        // Queued → processing (a slot freed); a processing run is being resumed.
        let run =
            sqlx::query("UPDATE runs SET state = 'processing', attempts = $1, started_at = COALESCE(started_at, $2) WHERE id = $3 AND state = $4 RETURNING *")
                .bind(attempts)
                .bind(now)
                .bind(&run_id)
                .bind(old_state.as_str())
                .fetch_one(&mut *tx)
                .await?;
        let run = run_from(&run)?;
        count_transition(&mut tx, &run.agent_id, &run.organization_id, Some(old_state), Some(RunState::Processing)).await?;
        sqlx::query("UPDATE sessions SET state = 'processing', updated_at = $1 WHERE id = $2 AND current_run_id = $3 AND state IN ('queued', 'processing')")
            .bind(now)
            .bind(&run.session_id)
            .bind(&run.id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(Some(Some(ClaimedRun { run, attempts })))
    }
}

#[async_trait]
impl RunStore for PgStore {
    async fn claim_run(&self, owner: &str, now: i64, lease_until: i64, limits: SlotLimits) -> Result<Option<ClaimedRun>> {
        for _ in 0..CLAIM_ATTEMPTS {
            match self.try_claim(owner, now, lease_until, limits).await? {
                None => return Ok(None),
                Some(Some(claimed)) => return Ok(Some(claimed)),
                Some(None) => continue,
            }
        }
        Ok(None)
    }

    async fn heartbeat(&self, run_id: &str, owner: &str, lease_until: i64) -> Result<bool> {
        let n = self
            .write_one(
                sqlx::query("UPDATE jobs SET lease_expires_at = $1 WHERE run_id = $2 AND lease_owner = $3 AND state = 'leased'")
                    .bind(lease_until)
                    .bind(run_id)
                    .bind(owner),
            )
            .await?;
        Ok(n == 1)
    }

    async fn expired_runs(&self, now: i64) -> Result<Vec<(String, i64)>> {
        let rows = sqlx::query("SELECT run_id, attempts FROM jobs WHERE state = 'leased' AND lease_expires_at < $1 ORDER BY id")
            .bind(now)
            .fetch_all(self.pool())
            .await?;
        rows.iter().map(|r| Ok((r.try_get("run_id")?, r.try_get("attempts")?))).collect()
    }

    async fn requeue_run(&self, run_id: &str, available_at: i64) -> Result<()> {
        let mut tx = self.begin().await?;
        sqlx::query("UPDATE jobs SET state = 'ready', lease_owner = NULL, lease_expires_at = NULL, available_at = $1 WHERE run_id = $2")
            .bind(available_at)
            .bind(run_id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn release_all_leases(&self, owner_prefix: &str) -> Result<u64> {
        let n = self
            .write_one(
                sqlx::query(
                    "UPDATE jobs SET state = 'ready', lease_owner = NULL, lease_expires_at = NULL WHERE state = 'leased' AND starts_with(lease_owner, $1)",
                )
                .bind(owner_prefix),
            )
            .await?;
        Ok(n)
    }

    async fn run_steps(&self, run_id: &str) -> Result<Vec<StepRecord>> {
        sqlx::query("SELECT * FROM run_steps WHERE run_id = $1 ORDER BY step, created_at, call_id")
            .bind(run_id)
            .fetch_all(self.pool())
            .await?
            .iter()
            .map(step_from)
            .collect()
    }

    async fn update_run(&self, u: RunUpdate<'_>) -> Result<Option<Vec<EventRecord>>> {
        // The run's writes are most of the database's: their BEGIN-to-COMMIT time is the
        // write latency `/metrics` reports for PostgreSQL.
        let started = std::time::Instant::now();
        let mut tx = self.begin().await?;
        let out = update_run_tx(&mut tx, u).await?;
        if out.is_some() {
            tx.commit().await?;
            metrics::histogram!("openloop_db_write_seconds", "database" => "postgres").record(started.elapsed().as_secs_f64());
        } else {
            tx.rollback().await?;
        }
        Ok(out)
    }

    async fn active_run_counts(&self) -> Result<Vec<(String, i64)>> {
        let rows = sqlx::query("SELECT state, SUM(n)::BIGINT AS n FROM run_counts WHERE scope = 'org' GROUP BY state").fetch_all(self.pool()).await?;
        Ok(rows.iter().map(|r| Ok((r.try_get("state")?, r.try_get("n")?))).collect::<sqlx::Result<Vec<_>>>()?)
    }

    async fn purge_events(&self, before: i64) -> Result<u64> {
        let mut tx = self.begin().await?;
        // Sessions another writer holds are purged by a later pass.
        let rows = sqlx::query(
            "SELECT s.id, s.last_seq FROM sessions s JOIN runs r ON r.id = s.current_run_id \
             WHERE r.finished_at IS NOT NULL AND r.finished_at < $1 AND s.purged_through < s.last_seq LIMIT 500 FOR NO KEY UPDATE OF s SKIP LOCKED",
        )
        .bind(before)
        .fetch_all(&mut *tx)
        .await?;
        let mut ids = Vec::with_capacity(rows.len());
        let mut lasts = Vec::with_capacity(rows.len());
        for r in &rows {
            ids.push(r.try_get::<String, _>("id")?);
            lasts.push(r.try_get::<i64, _>("last_seq")?);
        }
        let mut removed = 0u64;
        if !ids.is_empty() {
            removed = sqlx::query("DELETE FROM events e USING UNNEST($1::text[], $2::bigint[]) AS p(id, last) WHERE e.session_id = p.id AND e.seq <= p.last")
                .bind(&ids)
                .bind(&lasts)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            sqlx::query("UPDATE sessions s SET purged_through = p.last FROM UNNEST($1::text[], $2::bigint[]) AS p(id, last) WHERE s.id = p.id")
                .bind(&ids)
                .bind(&lasts)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(removed)
    }

    async fn events_after(&self, session_id: &str, after: i64, limit: i64) -> Result<Vec<EventRecord>> {
        sqlx::query("SELECT * FROM events WHERE session_id = $1 AND seq > $2 ORDER BY seq LIMIT $3")
            .bind(session_id)
            .bind(after)
            .bind(limit)
            .fetch_all(self.pool())
            .await?
            .iter()
            .map(event_from)
            .collect()
    }
}

async fn update_run_tx(c: &mut PgConnection, u: RunUpdate<'_>) -> Result<Option<Vec<EventRecord>>> {
    let now = wire::time::now_micros();
    // The run's session, agent and organization never change: read them without a lock,
    // then lock in the global order (slots when counts change, session, job).
    let head = sqlx::query("SELECT session_id, agent_id, organization_id FROM runs WHERE id = $1").bind(u.run_id).fetch_optional(&mut *c).await?;
    let Some(head) = head else { return Err(StoreError::NotFound) };
    let (session_id, agent_id, org_id): (String, String, String) = (head.try_get("session_id")?, head.try_get("agent_id")?, head.try_get("organization_id")?);
    let counted = |st: RunState| matches!(st, RunState::Queued | RunState::Processing);
    let raises_counts = u.transition.is_some_and(|t| t.from != t.to && counted(t.to));
    let sess =
        sqlx::query("SELECT usage, current_run_id, state FROM sessions WHERE id = $1 FOR NO KEY UPDATE").bind(&session_id).fetch_optional(&mut *c).await?;
    let Some(sess) = sess else { return Err(StoreError::NotFound) };
    let run = sqlx::query("SELECT usage, assistant_message_id, state FROM runs WHERE id = $1").bind(u.run_id).fetch_optional(&mut *c).await?;
    let Some(run) = run else { return Err(StoreError::NotFound) };
    let job = sqlx::query("SELECT state, lease_owner FROM jobs WHERE run_id = $1 FOR NO KEY UPDATE").bind(u.run_id).fetch_optional(&mut *c).await?;
    if raises_counts {
        lock_slots(c, &org_id, &agent_id).await?;
    }
    let (job_state, holder): (Option<String>, Option<String>) = match &job {
        Some(j) => (Some(j.try_get("state")?), j.try_get("lease_owner")?),
        None => (None, None),
    };
    let sess_usage: Value = sess.try_get("usage")?;
    let current: Option<String> = sess.try_get("current_run_id")?;
    let session_state: String = sess.try_get("state")?;
    let run_usage: Value = run.try_get("usage")?;
    let assistant: Option<String> = run.try_get("assistant_message_id")?;
    let run_state: String = run.try_get("state")?;

    let leased = job_state.as_deref() == Some("leased");
    if u.only_if_unleased && leased {
        return Ok(None);
    }
    if let Some(owner) = u.lease_owner {
        if !leased || holder.as_deref() != Some(owner) {
            return Ok(None);
        }
    }
    let is_current = current.as_deref() == Some(u.run_id);
    // The gate: a transition applies only from the state it was computed from, and the
    // session (while this is its current run) must be in that state too.
    if let Some(t) = u.transition {
        let session_from = t.from.session_state().as_str();
        if run_state != t.from.as_str() || (is_current && session_state != session_from) {
            let actual = if run_state != t.from.as_str() { run_state } else { format!("session {session_state}") };
            return Err(StoreError::Refused { expected: t.from.as_str(), actual });
        }
    }
    if let Some(qid) = u.dequeue {
        sqlx::query("DELETE FROM session_queue WHERE id = $1 AND session_id = $2").bind(qid).bind(&session_id).execute(&mut *c).await?;
    }
    if let Some(m) = u.message {
        upsert_message(c, m).await?;
    }
    if let Some(s) = u.step {
        sqlx::query(
            "INSERT INTO run_steps (run_id, step, call_id, state, output, created_at) VALUES ($1, $2, $3, $4, $5, $6) \
             ON CONFLICT (run_id, step, call_id) DO UPDATE SET state = EXCLUDED.state, output = EXCLUDED.output",
        )
        .bind(&s.run_id)
        .bind(s.step)
        .bind(pg_text(&s.call_id))
        .bind(pg_text(&s.state))
        .bind(if s.output.is_null() { None } else { Some(pg_json(&s.output)) }.as_deref())
        .bind(now)
        .execute(&mut *c)
        .await?;
    }
    // The run row: one statement for every change.
    let (run_usage, sess_usage) = match u.usage_delta {
        Some(delta) => {
            let mut ru = run_usage;
            add_usage(&mut ru, delta);
            let mut su = sess_usage;
            add_usage(&mut su, delta);
            (Some(ru), Some(su))
        }
        None => (None, None),
    };
    let new_assistant = if assistant.is_none() { u.message.map(|m| m.id.clone()) } else { None };
    let run_changes =
        run_usage.is_some() || new_assistant.is_some() || u.transition.is_some() || u.finish_reason.is_some() || u.error_message.is_some() || u.terminal;
    if run_changes {
        let (to, from) = (u.transition.map(|t| t.to.as_str()), u.transition.map(|t| t.from.as_str()));
        let changed = sqlx::query(
            "UPDATE runs SET usage = COALESCE($1, usage), assistant_message_id = COALESCE(assistant_message_id, $2), state = COALESCE($3, state), \
             finish_reason = COALESCE($4, finish_reason), error_message = COALESCE($5, error_message), finished_at = CASE WHEN $6 THEN $7 ELSE finished_at END \
             WHERE id = $8 AND state = COALESCE($9, state)",
        )
        .bind(run_usage.as_ref().map(pg_json).as_deref())
        .bind(&new_assistant)
        .bind(to)
        .bind(u.finish_reason.map(pg_text))
        .bind(u.error_message.map(pg_text))
        .bind(u.terminal)
        .bind(now)
        .bind(u.run_id)
        .bind(from)
        .execute(&mut *c)
        .await?
        .rows_affected();
        if changed != 1 {
            return Err(StoreError::Refused { expected: from.unwrap_or("unchanged"), actual: "changed concurrently".into() });
        }
    }
    // The credits of a model call, in the ledger, in the same transaction as the usage.
    if let Some(amount) = u.usage_delta.and_then(|d| d.get("credit_cost")).and_then(Value::as_f64).filter(|a| *a > 0.0) {
        sqlx::query(
            "INSERT INTO credit_ledger (id, organization_id, user_id, team_id, created_at, category, type, name, amount, correlation_id, session_id, agent_id) \
             SELECT $1, $2, s.creator_user_id, s.team_id, $3, CASE WHEN s.type = 'flow' THEN 'PIPELINE_RUN' ELSE 'AGENT_RUN' END, 'model_call', \
                    COALESCE(s.agent_snapshot ->> 'name', 'agent'), $4, $5, s.id, $6 \
             FROM sessions s WHERE s.id = $7",
        )
        .bind(wire::ids::new_id("cl"))
        .bind(&org_id)
        .bind(now)
        .bind(amount)
        .bind(u.run_id)
        .bind(&agent_id)
        .bind(&session_id)
        .execute(&mut *c)
        .await?;
    }
    if u.terminal || u.release_job {
        sqlx::query("DELETE FROM jobs WHERE run_id = $1").bind(u.run_id).execute(&mut *c).await?;
    }
    if u.enqueue_job {
        sqlx::query(
            "INSERT INTO jobs (run_id, state, attempts, available_at, created_at) VALUES ($1, 'ready', 0, $2, $2) \
             ON CONFLICT (run_id) DO UPDATE SET state = 'ready', lease_owner = NULL, lease_expires_at = NULL",
        )
        .bind(u.run_id)
        .bind(now)
        .execute(&mut *c)
        .await?;
    }
    // The session row: state (only while this run is current), usage and the event
    // sequence in one statement.
    let state = u.transition.filter(|_| is_current).map(|t| t.to.session_state().as_str());
    let n = u.events.len() as i64;
    let last_seq: Option<i64> = if state.is_some() || sess_usage.is_some() || n > 0 {
        Some(
            sqlx::query_scalar(
                "UPDATE sessions SET state = COALESCE($1, state), usage = COALESCE($2, usage), last_seq = last_seq + $3, updated_at = $4 WHERE id = $5 RETURNING last_seq",
            )
            .bind(state)
            .bind(sess_usage.as_ref().map(pg_json).as_deref())
            .bind(n)
            .bind(now)
            .bind(&session_id)
            .fetch_one(&mut *c)
            .await?,
        )
    } else {
        None
    };
    let ev = match last_seq {
        Some(last) if n > 0 => insert_events(c, &session_id, Some(u.run_id), u.events, last - n + 1, now).await?,
        _ => vec![],
    };
    // Last: the count rows are held from here to the commit only.
    if let Some(t) = u.transition {
        count_transition(c, &agent_id, &org_id, Some(t.from), Some(t.to)).await?;
    }
    Ok(Some(ev))
}
