//! Records shaped like the ones the engine writes (see `engine::sessions::accept_turn`,
//! `engine::runtime::agent_loop`, `engine::artifacts`), and small helpers.

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{json, Value};
use store::*;

use super::Backend;

pub const SECOND: i64 = 1_000_000;

/// The session states in which a new user message starts a run (§6.1).
pub const ACCEPTING: [SessionState; 4] = [SessionState::Idle, SessionState::Completed, SessionState::Failed, SessionState::Cancelled];

/// Limits nobody reaches.
pub const NO_LIMITS: SlotLimits = SlotLimits { agent: 1_000_000, org: 1_000_000 };

/// How long a race test may take before it is declared stuck.
pub const STUCK: Duration = Duration::from_secs(20);

pub fn id(prefix: &str) -> String {
    wire::ids::new_id(prefix)
}

pub fn now() -> i64 {
    wire::time::now_micros()
}

/// A lease nobody outlives in a test.
pub fn far() -> i64 {
    now() + 3600 * SECOND
}

/// Two store instances on the backend's one database.
pub async fn two_stores(b: &dyn Backend) -> [Arc<dyn Store>; 2] {
    [b.open().await, b.open().await]
}

/// An organization, one of its users and a personal agent of that user.
pub struct World {
    pub org: String,
    pub user: User,
    pub agent: AgentRecord,
}

pub async fn world(s: &dyn Store) -> World {
    let org = org(s, "Acme").await;
    let user = user(s, &org).await;
    let agent = agent(s, &user, None).await;
    World { org, user, agent }
}

pub async fn org(s: &dyn Store, name: &str) -> String {
    let id = id("org");
    s.ensure_organization(&id, name).await.unwrap();
    id
}

pub fn user_record(org: &str) -> User {
    let id = id("usr");
    User {
        email: Some(format!("{}@example.com", id.to_lowercase())),
        id,
        organization_id: org.to_string(),
        first_name: Some("Ada".into()),
        last_name: Some("Lovelace".into()),
        org_role: "member".into(),
        created_at: now(),
    }
}

pub async fn user(s: &dyn Store, org: &str) -> User {
    let u = user_record(org);
    assert!(s.ensure_user(&u).await.unwrap(), "a new user is created");
    u
}

pub async fn team(s: &dyn Store, org: &str, name: &str) -> Team {
    let t = Team { id: id("team"), organization_id: org.to_string(), name: name.to_string(), created_at: now() };
    assert!(s.ensure_team(&t).await.unwrap(), "a new team is created");
    t
}

pub fn agent_config(name: &str) -> AgentConfig {
    let mut metadata = serde_json::Map::new();
    metadata.insert("icon_url".into(), json!("https://example.com/icon.png"));
    AgentConfig {
        name: name.to_string(),
        description: Some("Answers questions about invoices".into()),
        model_name: "gpt-4.1".into(),
        system_prompt: Some("You are a careful assistant.".into()),
        tools: vec![json!({"type": "web_search"})],
        resources: vec![],
        metadata,
        skill_ids: vec![],
        knowledge_sources: vec![],
        folder_id: None,
        incognito: false,
    }
}

/// A new agent (version 1) and its first version, as `Engine::create_agent` builds them.
pub fn agent_records(owner: &User, team: Option<&str>) -> (AgentRecord, AgentVersionRecord) {
    let t = now();
    let config = agent_config("Invoice helper");
    let a = AgentRecord {
        id: id("agt"),
        owner_user_id: owner.id.clone(),
        team_id: team.map(str::to_string),
        creator_user_id: owner.id.clone(),
        config: config.clone(),
        version: 1,
        is_active: true,
        deleted_at: None,
        created_at: t,
        last_updated_at: t,
        last_used_at: None,
    };
    let v = version_of(&a, 1);
    (a, v)
}

/// The version record that freezes `a` as `major`.
pub fn version_of(a: &AgentRecord, major: i64) -> AgentVersionRecord {
    AgentVersionRecord {
        id: id("agv"),
        agent_id: a.id.clone(),
        major_version: major,
        snapshot: AgentSnapshot { config: a.config.clone(), team_id: a.team_id.clone(), is_active: a.is_active },
        creator_user_id: Some(a.creator_user_id.clone()),
        created_at: now(),
    }
}

pub async fn agent(s: &dyn Store, owner: &User, team: Option<&str>) -> AgentRecord {
    let (a, v) = agent_records(owner, team);
    s.create_agent(&a, &v).await.unwrap();
    a
}

pub fn session_record(agent: &AgentRecord, creator: &User, state: SessionState) -> SessionRecord {
    let t = now();
    SessionRecord {
        id: id("sess"),
        agent_id: agent.id.clone(),
        creator_user_id: creator.id.clone(),
        team_id: agent.team_id.clone(),
        organization_id: creator.organization_id.clone(),
        kind: "api".into(),
        name: None,
        state,
        metadata: json!({"source": "contract-test"}),
        agent_snapshot: json!({"name": agent.config.name, "team_id": agent.team_id, "creator_user_id": agent.creator_user_id}),
        usage: json!({}),
        last_seq: 0,
        purged_through: 0,
        current_run_id: None,
        created_at: t,
        updated_at: t,
    }
}

/// A user message and the run answering it, for `session`. The run's state is a
/// placeholder (`queued`): the turn's admission rule decides it.
pub fn turn(session: &SessionRecord) -> (MessageRecord, RunRecord) {
    let t = now();
    let msg_id = id("msg");
    let run = RunRecord {
        id: id("run"),
        session_id: session.id.clone(),
        agent_id: session.agent_id.clone(),
        organization_id: session.organization_id.clone(),
        user_message_id: msg_id.clone(),
        assistant_message_id: None,
        state: RunState::Queued,
        attempts: 0,
        cancel_requested: false,
        finish_reason: None,
        error_message: None,
        usage: json!({}),
        created_at: t,
        started_at: None,
        finished_at: None,
    };
    let msg = MessageRecord {
        id: msg_id,
        session_id: session.id.clone(),
        ord: 0,
        run_id: Some(run.id.clone()),
        role: "user".into(),
        content: Some("What is the total of invoice 42?".into()),
        parts: json!([{"id": id("part"), "type": "text", "text": "What is the total of invoice 42?"}]),
        creator_id: Some(session.creator_user_id.clone()),
        created_at: t,
    };
    (msg, run)
}

/// The turn `(msg, run)` decided by `admit`.
pub fn new_turn(msg: &MessageRecord, run: &RunRecord, admit: AdmissionRule) -> NewTurn {
    NewTurn { message: msg.clone(), run: run.clone(), admit, dequeue: None }
}

/// The engine's admission rule (`engine::sessions::accept_turn`), on the counts and the
/// session state the store reads inside the write: a slot is free while both the agent
/// and the organization are under their limits; without a free slot the run queues,
/// unless the agent's queue holds `max_queue` runs already (`Full`; `max_queue` 0 is
/// the reject mode). Only the §6.1 accepting states take a message. The run's state is
/// announced by a `data-state` event.
pub fn admission(limits: SlotLimits, max_queue: i64) -> AdmissionRule {
    Box::new(move |v: &AdmissionView| {
        let c = v.counts;
        let slot_free = c.agent_processing < limits.agent && c.org_processing < limits.org;
        if !slot_free && c.agent_queued >= max_queue {
            return Err(Refusal::Full);
        }
        if !ACCEPTING.contains(&v.session_state) {
            return Err(Refusal::NotAccepting(v.session_state));
        }
        let state = if slot_free { RunState::Processing } else { RunState::Queued };
        Ok((state, vec![state_event(state.as_str())]))
    })
}

/// A rule that admits the run in `state` whatever the counts (from the §6.1 accepting
/// states only), announcing it with a `data-state` event.
pub fn admit_as(state: RunState) -> AdmissionRule {
    Box::new(move |v: &AdmissionView| {
        if !ACCEPTING.contains(&v.session_state) {
            return Err(Refusal::NotAccepting(v.session_state));
        }
        Ok((state, vec![state_event(state.as_str())]))
    })
}

/// A rule that records what it was shown, then defers to `inner`.
pub fn spy(inner: AdmissionRule) -> (AdmissionRule, Arc<Mutex<Vec<AdmissionView>>>) {
    let seen = Arc::new(Mutex::new(vec![]));
    let log = seen.clone();
    let rule: AdmissionRule = Box::new(move |v: &AdmissionView| {
        log.lock().unwrap().push(*v);
        inner(v)
    });
    (rule, seen)
}

/// The engine's `data-state` event.
pub fn state_event(state: &str) -> Value {
    json!({"type": "data-state", "data": {"state": state}})
}

/// A stream event with a recognisable payload.
pub fn event(kind: &str, n: usize) -> Value {
    json!({"type": kind, "delta": format!("chunk {n}"), "n": n})
}

/// Creates an idle session without a turn.
pub async fn idle_session(s: &dyn Store, agent: &AgentRecord, creator: &User) -> SessionRecord {
    let rec = session_record(agent, creator, SessionState::Idle);
    assert!(s.create_session(&rec, vec![]).await.unwrap().is_empty());
    rec
}

/// Creates a session with its first turn, whose run is admitted in `state` (`queued`
/// or `processing`); returns the session and the run as stored.
pub async fn session_with_run(s: &dyn Store, agent: &AgentRecord, creator: &User, state: RunState) -> (SessionRecord, RunRecord) {
    let rec = session_record(agent, creator, SessionState::Idle);
    let (msg, run) = turn(&rec);
    let w = s.create_session_with_turn(&rec, new_turn(&msg, &run, admit_as(state))).await.unwrap().expect("a new session admits its turn");
    assert_eq!(w.state, state);
    (s.session(&rec.id).await.unwrap().expect("created"), RunRecord { state, ..run })
}

/// A new turn on an existing session, admitted in `state`.
pub async fn next_turn(s: &dyn Store, session: &SessionRecord, state: RunState) -> (MessageRecord, RunRecord) {
    let (msg, run) = turn(session);
    let w = s.start_turn(&session.id, new_turn(&msg, &run, admit_as(state))).await.unwrap().expect("the session admits a turn");
    assert_eq!(w.state, state);
    (msg, RunRecord { state, ..run })
}

/// The assistant message of `run`.
pub fn assistant_message(run: &RunRecord, text: &str) -> MessageRecord {
    reply_in(&run.session_id, &run.id, text)
}

/// An assistant message of run `run_id` in session `session_id`.
pub fn reply_in(session_id: &str, run_id: &str, text: &str) -> MessageRecord {
    MessageRecord {
        id: id("msg"),
        session_id: session_id.to_string(),
        ord: 0,
        run_id: Some(run_id.to_string()),
        role: "assistant".into(),
        content: Some(text.to_string()),
        parts: json!([{"id": id("part"), "type": "text", "text": text}]),
        creator_id: None,
        created_at: now(),
    }
}

pub fn queued_message(session_id: &str, input: &str, at: i64) -> QueuedMessageRecord {
    QueuedMessageRecord { id: id("qm"), session_id: session_id.to_string(), input: input.to_string(), created_at: at, updated_at: at }
}

/// A new artifact named `stored_filename` and its version, as `Engine` builds them
/// (the store decides the artifact id and major version).
pub fn artifact_records(session: &SessionRecord, stored_filename: &str) -> (ArtifactRecord, ArtifactVersionRecord) {
    let t = now();
    let ver_id = id("ver");
    let art = ArtifactRecord {
        id: id("art"),
        session_id: session.id.clone(),
        agent_id: session.agent_id.clone(),
        creator_user_id: session.creator_user_id.clone(),
        stored_filename: stored_filename.to_string(),
        custom_name: None,
        current_version_id: ver_id.clone(),
        password_hash: None,
        deleted_at: None,
        created_at: t,
    };
    let ver = ArtifactVersionRecord {
        blob_key: format!("artifacts/{ver_id}"),
        id: ver_id,
        artifact_id: String::new(),
        major_version: 0,
        filename: stored_filename.to_string(),
        media_type: "text/csv".into(),
        size: 42,
        etag: format!("\"{}\"", id("etag")),
        created_at: t,
    };
    (art, ver)
}

/// The worker's completion of a run it holds (`processing` → `completed`).
pub fn finish<'a>(run_id: &'a str, owner: &'a str) -> RunUpdate<'a> {
    RunUpdate {
        transition: Some(Transition { from: RunState::Processing, to: RunState::Completed }),
        finish_reason: Some("stop"),
        events: vec![json!({"type": "finish", "finish_reason": "stop"})],
        terminal: true,
        ..RunUpdate::new(run_id, Some(owner))
    }
}

/// The worker's pause for approval of a run it holds (`processing` →
/// `approval_required`): the job goes, the run stays.
pub fn pause<'a>(run_id: &'a str, owner: &'a str) -> RunUpdate<'a> {
    RunUpdate {
        transition: Some(Transition { from: RunState::Processing, to: RunState::ApprovalRequired }),
        events: vec![state_event("approval_required")],
        release_job: true,
        ..RunUpdate::new(run_id, Some(owner))
    }
}

/// The API's cancellation (`stop_active`) of a run it read in state `from`.
pub fn cancel(run_id: &str, from: RunState) -> RunUpdate<'_> {
    RunUpdate {
        transition: Some(Transition { from, to: RunState::Cancelled }),
        finish_reason: Some("cancelled"),
        events: vec![json!({"type": "finish", "finish_reason": "cancelled"})],
        terminal: true,
        only_if_unleased: true,
        ..RunUpdate::new(run_id, None)
    }
}

/// The API's resumption of a paused run (`resolve_approvals`: `approval_required` →
/// `processing`).
pub fn resume(run_id: &str) -> RunUpdate<'_> {
    RunUpdate {
        transition: Some(Transition { from: RunState::ApprovalRequired, to: RunState::Processing }),
        events: vec![json!({"type": "start"})],
        only_if_unleased: true,
        enqueue_job: true,
        ..RunUpdate::new(run_id, None)
    }
}

/// Whether `r` is the store's refusal of a transition from `expected` (nothing written).
pub fn is_refused<T>(r: &Result<T>, expected: RunState) -> bool {
    matches!(r, Err(StoreError::Refused { expected: e, .. }) if *e == expected.as_str())
}

pub fn reader(u: &User, teams: &[&Team]) -> Reader {
    Reader { user_id: u.id.clone(), team_ids: teams.iter().map(|t| t.id.clone()).collect(), organization_id: u.organization_id.clone() }
}

/// Every session of `agent_id` the reader may read, newest first (one unbounded page).
pub async fn readable_sessions(s: &dyn Store, agent_id: &str, reader: &Reader) -> Vec<SessionRecord> {
    let filter = SessionFilter {
        agent_id: agent_id.to_string(),
        reader: reader.clone(),
        own_team: None,
        states: None,
        kind: None,
        creator: None,
        search: None,
        trigger_id: None,
    };
    let page = PageWindow { after: None, limit: 1_000_000, desc: true };
    s.list_sessions(&filter, SessionSort::Created, &page).await.unwrap().into_iter().map(|(_, r)| r).collect()
}

/// Every live artifact of `agent_id`'s sessions the reader may read, with its current
/// version (one unbounded page).
pub async fn readable_artifacts(s: &dyn Store, agent_id: &str, reader: &Reader) -> Vec<(ArtifactRecord, ArtifactVersionRecord)> {
    let filter = ArtifactFilter { agent_id: agent_id.to_string(), reader: reader.clone(), session_id: None, search: None };
    let page = PageWindow { after: None, limit: 1_000_000, desc: true };
    s.list_artifacts(&filter, ArtifactSort::Created, &page).await.unwrap().into_iter().map(|(_, a, v)| (a, v)).collect()
}

/// Every event of a session, oldest first.
pub async fn all_events(s: &dyn Store, session_id: &str) -> Vec<EventRecord> {
    s.events_after(session_id, 0, 1_000_000).await.unwrap()
}

/// Runs `n` contenders at once (released together by a barrier), contender `i` on store
/// `i % 2`; returns their outputs in contender order. The first contender to panic fails
/// the test at once (the others are aborted), as does a race still running after `STUCK`.
pub async fn race<T, F, Fut>(stores: &[Arc<dyn Store>; 2], n: usize, f: F) -> Vec<T>
where
    F: Fn(usize, Arc<dyn Store>) -> Fut,
    Fut: Future<Output = T> + Send + 'static,
    T: Send + 'static,
{
    let start = Arc::new(tokio::sync::Barrier::new(n));
    let mut set = tokio::task::JoinSet::new();
    for i in 0..n {
        let fut = f(i, stores[i % 2].clone());
        let start = start.clone();
        set.spawn(async move {
            start.wait().await;
            (i, fut.await)
        });
    }
    let deadline = tokio::time::Instant::now() + STUCK;
    let mut out: Vec<Option<T>> = (0..n).map(|_| None).collect();
    loop {
        match tokio::time::timeout_at(deadline, set.join_next()).await {
            Ok(None) => break,
            Ok(Some(Ok((i, v)))) => out[i] = Some(v),
            Ok(Some(Err(e))) => {
                set.abort_all();
                if e.is_panic() {
                    std::panic::resume_unwind(e.into_panic());
                }
                panic!("a contender was cancelled: {e}");
            }
            Err(_) => {
                set.abort_all();
                panic!("the race did not finish within {STUCK:?}");
            }
        }
    }
    out.into_iter().map(|v| v.expect("every contender finished")).collect()
}
