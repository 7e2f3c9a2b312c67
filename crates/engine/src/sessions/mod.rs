//! Sessions (= legacy interactions): accepting turns under the concurrency limits,
//! visibility, and the shared views.

pub mod access;
pub mod api;
pub mod human_input;
pub mod state;
pub mod stream;

use serde_json::{json, Value};
use store::{AdmissionRule, AdmissionView, AgentRecord, MessageRecord, NewTurn, Refusal, RunRecord, RunState, SessionRecord, SlotLimits, StoreError, User};
use wire::{ApiError, ErrorCode};

use crate::{db, Caller, Engine};
use state::{transition, SessionEvent, SessionState};

/// Where a new turn goes.
pub enum TurnTarget<'a> {
    /// A new session with this id, type and name.
    New { id: String, kind: &'a str, name: Option<String>, metadata: Value },
    /// An existing session.
    Existing(&'a SessionRecord),
}

/// The user message of a turn.
#[derive(Debug, Clone, Default)]
pub struct TurnInput {
    pub text: String,
    /// Message id to use (a queued message keeps its `qm_` id).
    pub message_id: Option<String>,
    /// Queued message removed in the same transaction.
    pub dequeue: Option<String>,
    /// Attachment parts (§8.1.2 `file`).
    pub parts: Vec<Value>,
}

/// An accepted turn.
#[derive(Debug, Clone)]
pub struct Accepted {
    pub session_id: String,
    pub run: RunRecord,
    pub user_message: MessageRecord,
    pub state: SessionState,
    pub queue_position: Option<i64>,
}

/// Why a turn was refused.
#[derive(Debug)]
pub enum TurnRefused {
    /// The session is running (state given).
    NotAccepting(SessionState),
    /// Over the concurrency limit in reject mode or beyond the queue length.
    ConcurrencyLimit,
    /// Caller-chosen session id taken.
    SessionExists,
    Internal(ApiError),
}

pub fn agent_snapshot(agent: &AgentRecord) -> Value {
    json!({
        "name": agent.config.name,
        "team_id": agent.team_id,
        "creator_user_id": agent.creator_user_id,
        "icon_url": agent.config.metadata.get("icon_url").cloned().unwrap_or(Value::Null),
    })
}

impl Engine {
    /// Whether the caller's tenants include the session (§2.5 step 1).
    pub fn session_visible(&self, caller: &Caller, s: &SessionRecord) -> bool {
        caller.can_see(s.team_id.as_deref(), &s.creator_user_id)
    }

    /// Appends a user message and starts (or queues) a run, creating the session if
    /// asked. Enforces §6.1's transitions and the concurrency limits.
    pub async fn accept_turn(&self, user: &User, agent: &AgentRecord, target: TurnTarget<'_>, input: TurnInput) -> Result<Accepted, TurnRefused> {
        let rt = &self.config.runtime;
        let (limits, max_queue, overflow_reject) =
            (SlotLimits { agent: rt.agent_max_concurrency, org: rt.org_max_concurrency }, rt.agent_max_queue, rt.overflow_reject);
        let now = self.now();
        let session_id = match &target {
            TurnTarget::New { id, .. } => id.clone(),
            TurnTarget::Existing(s) => s.id.clone(),
        };
        let mut msg = MessageRecord {
            id: input.message_id.clone().unwrap_or_else(|| wire::ids::new_id("msg")),
            session_id: session_id.clone(),
            ord: 0,
            run_id: None,
            role: "user".into(),
            content: Some(input.text.clone()),
            parts: Value::Array(input.parts.clone()),
            creator_id: Some(user.id.clone()),
            created_at: now,
        };
        let run = RunRecord {
            id: wire::ids::new_id("run"),
            session_id: session_id.clone(),
            agent_id: agent.id.clone(),
            organization_id: user.organization_id.clone(),
            user_message_id: msg.id.clone(),
            assistant_message_id: None,
            // Decided by the admission rule inside the write transaction.
            state: RunState::Queued,
            attempts: 0,
            cancel_requested: false,
            finish_reason: None,
            error_message: None,
            usage: json!({}),
            created_at: now,
            started_at: None,
            finished_at: None,
        };
        msg.run_id = Some(run.id.clone());
        // §6.1 and the limits, decided on the counts and the session state read inside
        // the write transaction: concurrent accepts cannot both take the last slot.
        let admit: AdmissionRule = Box::new(move |view: &AdmissionView| {
            let c = view.counts;
            let slot_free = c.agent_processing < limits.agent && c.org_processing < limits.org;
            if !slot_free && (overflow_reject || c.agent_queued >= max_queue) {
                return Err(Refusal::Full);
            }
            let to = transition(view.session_state, SessionEvent::MessageAccepted { slot_free }).map_err(Refusal::NotAccepting)?;
            let run_state = RunState::of_session(to).ok_or(Refusal::NotAccepting(view.session_state))?;
            let events = if to == SessionState::Queued {
                vec![wire::events::StreamEvent::DataState { data: wire::events::StateData { state: to, queue_position: None } }.to_value()]
            } else {
                vec![]
            };
            Ok((run_state, events))
        });
        let turn = NewTurn { message: msg.clone(), run: run.clone(), admit, dequeue: input.dequeue.clone() };
        let written = match target {
            TurnTarget::New { id, kind, name, metadata } => {
                let s = SessionRecord {
                    id,
                    agent_id: agent.id.clone(),
                    creator_user_id: user.id.clone(),
                    team_id: agent.team_id.clone(),
                    organization_id: user.organization_id.clone(),
                    kind: kind.into(),
                    name,
                    state: SessionState::Idle,
                    metadata,
                    agent_snapshot: agent_snapshot(agent),
                    usage: json!({}),
                    last_seq: 0,
                    purged_through: 0,
                    current_run_id: None,
                    created_at: now,
                    updated_at: now,
                };
                match self.store.create_session_with_turn(&s, turn).await {
                    Ok(w) => w,
                    Err(StoreError::Conflict(_)) => return Err(TurnRefused::SessionExists),
                    Err(e) => return Err(TurnRefused::Internal(db(e))),
                }
            }
            TurnTarget::Existing(s) => match self.store.start_turn(&s.id, turn).await {
                Ok(w) => w,
                Err(e) => return Err(TurnRefused::Internal(db(e))),
            },
        };
        let written = match written {
            Ok(w) => w,
            Err(Refusal::Full) => return Err(TurnRefused::ConcurrencyLimit),
            Err(Refusal::NotAccepting(state)) => return Err(TurnRefused::NotAccepting(state)),
            Err(Refusal::Dequeued) => {
                // Delivered by someone else meanwhile: report the session's state now.
                let now_state = self.store.session(&session_id).await.ok().flatten().map(|s| s.state).unwrap_or(SessionState::Processing);
                return Err(TurnRefused::NotAccepting(now_state));
            }
        };
        self.bus.publish(written.events);
        // last_used_at has minute precision in practice; skip the write when recent.
        if agent.last_used_at.is_none_or(|t| now - t > 60_000_000) {
            if let Err(e) = self.store.touch_agent_used(&agent.id, now).await {
                tracing::warn!(error = %e, "could not record agent use");
            }
        }
        // One idle worker is enough for one new run.
        self.wake.notify_one();
        let run = RunRecord { state: written.state, ..run };
        Ok(Accepted { session_id, run, user_message: msg, state: written.state.session_state(), queue_position: written.queue_position })
    }

    pub fn concurrency_error(&self) -> ApiError {
        ApiError::new(ErrorCode::AgentConcurrencyLimit, "The agent is running as many runs as allowed and its queue is full; retry later.").retry_after(5)
    }
}
