//! Records shaped like the ones the engine writes (see `engine::sessions::accept_turn`,
//! `engine::runtime::agent_loop`, `engine::artifacts`), and small helpers.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};
use store::*;

use super::Backend;

pub const SECOND: i64 = 1_000_000;

/// The session states in which a new user message is accepted (`SessionState::accepts_messages`).
pub const ACCEPTING: &[&str] = &["idle", "completed", "failed", "cancelled", "approval_required"];

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

pub fn session_record(agent: &AgentRecord, creator: &User, state: &str) -> SessionRecord {
    let t = now();
    SessionRecord {
        id: id("sess"),
        agent_id: agent.id.clone(),
        creator_user_id: creator.id.clone(),
        team_id: agent.team_id.clone(),
        organization_id: creator.organization_id.clone(),
        kind: "api".into(),
        name: None,
        state: state.to_string(),
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

/// A user message and the run answering it, for `session` (a run in `run_state`).
pub fn turn(session: &SessionRecord, run_state: &str) -> (MessageRecord, RunRecord) {
    let t = now();
    let msg_id = id("msg");
    let run = RunRecord {
        id: id("run"),
        session_id: session.id.clone(),
        agent_id: session.agent_id.clone(),
        organization_id: session.organization_id.clone(),
        user_message_id: msg_id.clone(),
        assistant_message_id: None,
        state: run_state.to_string(),
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
    let rec = session_record(agent, creator, "idle");
    assert!(s.create_session(&rec, None, vec![]).await.unwrap().is_empty());
    rec
}

/// Creates a session with its first turn, whose run is `run_state` (`queued` or `processing`).
pub async fn session_with_run(s: &dyn Store, agent: &AgentRecord, creator: &User, run_state: &str) -> (SessionRecord, RunRecord) {
    let mut rec = session_record(agent, creator, run_state);
    let (msg, run) = turn(&rec, run_state);
    rec.current_run_id = Some(run.id.clone());
    s.create_session(&rec, Some((&msg, &run)), vec![state_event(run_state)]).await.unwrap();
    (rec, run)
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

/// The worker's completion of a run it holds.
pub fn finish<'a>(run_id: &'a str, owner: &'a str) -> RunUpdate<'a> {
    RunUpdate {
        run_state: Some("completed"),
        session_state: Some("completed"),
        finish_reason: Some("stop"),
        events: vec![json!({"type": "finish", "finish_reason": "stop"})],
        terminal: true,
        ..RunUpdate::new(run_id, Some(owner))
    }
}

/// The API's cancellation of a queued or paused run (`stop_active`).
pub fn cancel(run_id: &str) -> RunUpdate<'_> {
    RunUpdate {
        run_state: Some("cancelled"),
        session_state: Some("cancelled"),
        finish_reason: Some("cancelled"),
        events: vec![json!({"type": "finish", "finish_reason": "cancelled"})],
        terminal: true,
        only_if_unleased: true,
        ..RunUpdate::new(run_id, None)
    }
}

/// The API's resumption of a paused run (`resolve_approvals`).
pub fn resume(run_id: &str) -> RunUpdate<'_> {
    RunUpdate {
        run_state: Some("processing"),
        session_state: Some("processing"),
        events: vec![json!({"type": "start"})],
        only_if_unleased: true,
        enqueue_job: true,
        ..RunUpdate::new(run_id, None)
    }
}

pub fn reader(u: &User, teams: &[&Team]) -> Reader {
    Reader { user_id: u.id.clone(), team_ids: teams.iter().map(|t| t.id.clone()).collect(), organization_id: u.organization_id.clone() }
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
