//! Rows as the engine sees them. Times are microseconds since the Unix epoch.

use serde::{Deserialize, Serialize};
use serde_json::Value;

#[derive(Debug, Clone, PartialEq)]
pub struct Organization {
    pub id: String,
    pub name: String,
    pub created_at: i64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct User {
    pub id: String,
    pub organization_id: String,
    pub email: Option<String>,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    /// `admin` | `member`
    pub org_role: String,
    pub created_at: i64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Team {
    pub id: String,
    pub organization_id: String,
    pub name: String,
    pub created_at: i64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ApiKey {
    pub id: String,
    pub secret_hash: Vec<u8>,
    /// First 8 characters of the secret: safe to display.
    pub prefix: String,
    pub name: Option<String>,
    /// Personal key owner.
    pub user_id: Option<String>,
    /// Team key team.
    pub team_id: Option<String>,
    pub created_by: Option<String>,
    pub created_at: i64,
    pub revoked_at: Option<i64>,
}

/// A workspace: a user's personal workspace or a team.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Tenant {
    Personal(String),
    Team(String),
}

/// The mutable configuration of an agent (what versions freeze, plus placement).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct AgentConfig {
    pub name: String,
    pub description: Option<String>,
    pub model_name: String,
    pub system_prompt: Option<String>,
    #[serde(default)]
    pub tools: Vec<Value>,
    #[serde(default)]
    pub resources: Vec<Value>,
    #[serde(default)]
    pub metadata: serde_json::Map<String, Value>,
    #[serde(default)]
    pub skill_ids: Vec<String>,
    #[serde(default)]
    pub knowledge_sources: Vec<Value>,
    pub folder_id: Option<String>,
    #[serde(default)]
    pub incognito: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct AgentRecord {
    pub id: String,
    /// Personal owner (also set for team agents: the creator).
    pub owner_user_id: String,
    pub team_id: Option<String>,
    pub creator_user_id: String,
    pub config: AgentConfig,
    pub version: i64,
    pub is_active: bool,
    pub deleted_at: Option<i64>,
    pub created_at: i64,
    pub last_updated_at: i64,
    pub last_used_at: Option<i64>,
}

/// A frozen version: the config plus placement fields that G7 reports as value changes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AgentSnapshot {
    pub config: AgentConfig,
    pub team_id: Option<String>,
    pub is_active: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct AgentVersionRecord {
    pub id: String,
    pub agent_id: String,
    pub major_version: i64,
    pub snapshot: AgentSnapshot,
    pub creator_user_id: Option<String>,
    pub created_at: i64,
}

/// A session (= legacy interaction).
#[derive(Debug, Clone, PartialEq)]
pub struct SessionRecord {
    pub id: String,
    pub agent_id: String,
    pub creator_user_id: String,
    /// The agent's team when the session was created (`None`: personal).
    pub team_id: Option<String>,
    pub organization_id: String,
    /// `api` | `tool` | `flow`
    pub kind: String,
    pub name: Option<String>,
    pub state: SessionState,
    pub metadata: Value,
    pub agent_snapshot: Value,
    pub usage: Value,
    pub last_seq: i64,
    /// Events with `seq <= purged_through` were removed by retention.
    pub purged_through: i64,
    pub current_run_id: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
}

/// A transcript message. `parts` use the §8.1.2 vocabulary (plus internal keys that
/// are stripped on output).
#[derive(Debug, Clone, PartialEq)]
pub struct MessageRecord {
    pub id: String,
    pub session_id: String,
    pub ord: i64,
    pub run_id: Option<String>,
    pub role: String,
    pub content: Option<String>,
    pub parts: Value,
    pub creator_id: Option<String>,
    pub created_at: i64,
}

pub use wire::sessions::SessionState;

/// States of a run: the session states a run passes through (§6.1), so a session whose
/// current run is in state X is in state X too. Changed only through [`Transition`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RunState {
    Queued,
    Processing,
    ApprovalRequired,
    Completed,
    Failed,
    Cancelled,
}

impl RunState {
    pub const ALL: [RunState; 6] = [Self::Queued, Self::Processing, Self::ApprovalRequired, Self::Completed, Self::Failed, Self::Cancelled];

    pub fn as_str(self) -> &'static str {
        self.session_state().as_str()
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|x| x.as_str() == s)
    }

    /// The state of a session whose current run is in this state.
    pub fn session_state(self) -> SessionState {
        match self {
            Self::Queued => SessionState::Queued,
            Self::Processing => SessionState::Processing,
            Self::ApprovalRequired => SessionState::ApprovalRequired,
            Self::Completed => SessionState::Completed,
            Self::Failed => SessionState::Failed,
            Self::Cancelled => SessionState::Cancelled,
        }
    }

    /// The run state matching a session state (`idle` has none).
    pub fn of_session(s: SessionState) -> Option<Self> {
        Self::ALL.into_iter().find(|r| r.session_state() == s)
    }

    pub fn is_terminal(self) -> bool {
        matches!(self, Self::Completed | Self::Failed | Self::Cancelled)
    }
}

/// A run state change produced by the engine's transition function. The store applies
/// it only while the run is still in `from` (`WHERE state = from`), moving the session
/// along when the run is its current one; otherwise the whole write is refused with
/// [`crate::StoreError::Refused`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Transition {
    pub from: RunState,
    pub to: RunState,
}

/// What a new turn's admission rule sees, read inside the write transaction.
#[derive(Debug, Clone, Copy)]
pub struct AdmissionView {
    /// The session's state before the turn (`idle` for a new session).
    pub session_state: SessionState,
    pub counts: ActiveCounts,
}

/// Why a turn was not written.
#[derive(Debug, Clone, PartialEq)]
pub enum Refusal {
    /// The session's state does not take messages.
    NotAccepting(SessionState),
    /// No free slot and no room in the queue.
    Full,
    /// The queued message to deliver is gone (delivered or deleted meanwhile).
    Dequeued,
}

/// The engine's decision for a new turn, made inside the write transaction: the state
/// the run (and the session) start in and the events that announce it. Limits are
/// checked here, so concurrent accepts cannot overshoot them.
pub type AdmissionRule = Box<dyn FnOnce(&AdmissionView) -> std::result::Result<(RunState, Vec<Value>), Refusal> + Send>;

/// A user message and the run that answers it, written in one transaction.
pub struct NewTurn {
    pub message: MessageRecord,
    /// `state` is set from the admission rule's decision.
    pub run: RunRecord,
    pub admit: AdmissionRule,
    /// A queued message this turn delivers (removed in the same transaction).
    pub dequeue: Option<String>,
}

/// A written turn.
#[derive(Debug, Clone)]
pub struct TurnWritten {
    pub events: Vec<EventRecord>,
    pub state: RunState,
    /// 1-based place among the agent's queued runs when `state` is `queued`.
    pub queue_position: Option<i64>,
}

/// One run: the agent's work for one user message.
#[derive(Debug, Clone, PartialEq)]
pub struct RunRecord {
    pub id: String,
    pub session_id: String,
    pub agent_id: String,
    pub organization_id: String,
    pub user_message_id: String,
    pub assistant_message_id: Option<String>,
    pub state: RunState,
    pub attempts: i64,
    pub cancel_requested: bool,
    pub finish_reason: Option<String>,
    pub error_message: Option<String>,
    pub usage: Value,
    pub created_at: i64,
    pub started_at: Option<i64>,
    pub finished_at: Option<i64>,
}

/// A committed (or started) step of a run: the model call (`call_id` = "") or one
/// tool call. The idempotency key of a step's effects is (run, step, call id).
#[derive(Debug, Clone, PartialEq)]
pub struct StepRecord {
    pub run_id: String,
    pub step: i64,
    pub call_id: String,
    /// `started` | `done`
    pub state: String,
    pub output: Value,
}

/// A persisted stream event (§12).
#[derive(Debug, Clone, PartialEq)]
pub struct EventRecord {
    pub session_id: String,
    pub seq: i64,
    pub run_id: Option<String>,
    pub kind: String,
    /// The event JSON without `stream_cursor` (added when sent).
    pub data: Value,
    pub created_at: i64,
}

/// A job claimed by a worker.
#[derive(Debug, Clone)]
pub struct ClaimedRun {
    pub run: RunRecord,
    /// Claims so far, this one included.
    pub attempts: i64,
}

/// Concurrency limits applied when claiming and accepting runs.
#[derive(Debug, Clone, Copy)]
pub struct SlotLimits {
    pub agent: i64,
    pub org: i64,
}

/// Active runs counted against the limits.
#[derive(Debug, Clone, Copy, Default)]
pub struct ActiveCounts {
    pub agent_processing: i64,
    pub org_processing: i64,
    pub agent_queued: i64,
}

/// A state change written atomically with its events. Start from [`RunUpdate::new`]
/// and set what changes.
#[derive(Debug, Clone)]
pub struct RunUpdate<'a> {
    pub run_id: &'a str,
    /// Only the holder of the lease may write (None: administrative writes).
    pub lease_owner: Option<&'a str>,
    /// A state change (and the session's, when this is its current run).
    pub transition: Option<Transition>,
    pub finish_reason: Option<&'a str>,
    pub error_message: Option<&'a str>,
    /// Upserted transcript message.
    pub message: Option<&'a MessageRecord>,
    /// Upserted step record.
    pub step: Option<&'a StepRecord>,
    /// Usage to add to the run and the session.
    pub usage_delta: Option<&'a Value>,
    /// Events to append (their `seq` is assigned by the store).
    pub events: Vec<Value>,
    /// Terminal: the job is deleted and the run gets `finished_at`.
    pub terminal: bool,
    /// Apply only if no worker holds the run (cancelling queued or paused runs).
    pub only_if_unleased: bool,
    /// Pause: remove the job without ending the run (approval needed).
    pub release_job: bool,
    /// Resume: put the run back in the queue (approvals resolved).
    pub enqueue_job: bool,
    /// Remove this queued message in the same transaction (drain, send-now).
    pub dequeue: Option<&'a str>,
}

/// A message waiting in a session's queue (S12–S16).
#[derive(Debug, Clone, PartialEq)]
pub struct QueuedMessageRecord {
    pub id: String,
    pub session_id: String,
    pub input: String,
    pub created_at: i64,
    pub updated_at: i64,
}

/// A file uploaded to a session (S10); bytes live in the blob store under `blob_key`.
#[derive(Debug, Clone, PartialEq)]
pub struct SessionFileRecord {
    pub session_id: String,
    pub file_name: String,
    pub media_type: String,
    pub size: i64,
    pub blob_key: String,
    pub created_at: i64,
}

/// A file an agent produced (versions below).
#[derive(Debug, Clone, PartialEq)]
pub struct ArtifactRecord {
    pub id: String,
    pub session_id: String,
    pub agent_id: String,
    pub creator_user_id: String,
    pub stored_filename: String,
    pub custom_name: Option<String>,
    pub current_version_id: String,
    pub password_hash: Option<String>,
    pub deleted_at: Option<i64>,
    pub created_at: i64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ArtifactVersionRecord {
    pub id: String,
    pub artifact_id: String,
    pub major_version: i64,
    pub filename: String,
    pub media_type: String,
    pub size: i64,
    pub blob_key: String,
    pub etag: String,
    pub created_at: i64,
}

impl<'a> RunUpdate<'a> {
    /// An update of `run_id` that changes nothing yet, written by `lease_owner` (or by
    /// an API call when `None`).
    pub fn new(run_id: &'a str, lease_owner: Option<&'a str>) -> Self {
        RunUpdate {
            run_id,
            lease_owner,
            transition: None,
            finish_reason: None,
            error_message: None,
            message: None,
            step: None,
            usage_delta: None,
            events: vec![],
            terminal: false,
            only_if_unleased: false,
            release_job: false,
            enqueue_job: false,
            dequeue: None,
        }
    }
}

/// A session of Openloop's MCP server.
#[derive(Debug, Clone)]
pub struct McpSessionRecord {
    pub id: String,
    pub key_id: String,
    pub protocol_version: String,
    pub created_at: i64,
}

/// Who reads: the user and the principals session grants name (§2.5 rights: the
/// creator, or a grantee by person, team or organization).
#[derive(Debug, Clone, Default)]
pub struct Reader {
    pub user_id: String,
    pub team_ids: Vec<String>,
    pub organization_id: String,
}

/// A listing's sort value; rows compare as (value, id), so the order is total.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(untagged)]
pub enum SortVal {
    Int(i64),
    Str(String),
}

/// One page of a keyset listing: rows strictly after `after` in the listing's order.
#[derive(Debug, Clone)]
pub struct PageWindow {
    pub after: Option<(SortVal, String)>,
    pub limit: usize,
    pub desc: bool,
}

/// S3 orders.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionSort {
    Created,
    /// The session's name, else the agent's name when it was created; case-folded.
    Name,
    /// Credits spent (credit_cost × 10,000, rounded).
    Credits,
}

/// S3 filters, applied in the query.
#[derive(Debug, Clone)]
pub struct SessionFilter {
    pub agent_id: String,
    pub reader: Reader,
    /// The caller's own sessions are listed only inside this team (a team-scoped key);
    /// `None`: personal ones and those of the reader's teams.
    pub own_team: Option<String>,
    pub states: Option<Vec<SessionState>>,
    pub kind: Option<String>,
    pub creator: Option<String>,
    /// Case-folded substring of the name or of any message's text.
    pub search: Option<String>,
    /// Only sessions a trigger started (`metadata.trigger.id`).
    pub trigger_id: Option<String>,
}

/// A1 orders.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArtifactSort {
    /// When the current version was written.
    Created,
    /// The custom name, else the current version's file name; case-folded.
    Name,
}

/// A1 filters, applied in the query.
#[derive(Debug, Clone)]
pub struct ArtifactFilter {
    pub agent_id: String,
    pub reader: Reader,
    pub session_id: Option<String>,
    /// Case-folded substring of the listed name.
    pub search: Option<String>,
}

/// A workbook: a folder of flows (F5).
#[derive(Debug, Clone, PartialEq)]
pub struct WorkbookRecord {
    pub id: String,
    pub organization_id: String,
    /// Personal workspace owner (None for a team's workbook).
    pub owner_user_id: Option<String>,
    pub team_id: Option<String>,
    pub name: String,
    pub description: Option<String>,
    pub created_at: i64,
}

/// A saved flow (saved item) at its current version.
#[derive(Debug, Clone, PartialEq)]
pub struct FlowRecord {
    pub id: String,
    pub organization_id: String,
    pub owner_user_id: Option<String>,
    pub team_id: Option<String>,
    pub workbook_id: String,
    pub name: String,
    pub description: Option<String>,
    /// 1 for the first save; each save adds one.
    pub version: i64,
    /// The flow document as saved (normalized JSON).
    pub document: Value,
    pub created_by: String,
    pub created_at: i64,
    pub updated_at: i64,
}

/// One saved version of a flow.
#[derive(Debug, Clone, PartialEq)]
pub struct FlowVersionRecord {
    pub flow_id: String,
    pub version: i64,
    pub document: Value,
    pub created_by: String,
    pub created_at: i64,
}

/// Flow-run states (API.md §6.2): the wire enum; the engine's one transition table decides
/// the moves, which the store applies `WHERE state = from`.
pub use wire::legacy::FlowRunState;

/// A flow run (F1/F2).
#[derive(Debug, Clone, PartialEq)]
pub struct FlowRunRecord {
    pub id: String,
    pub flow_id: String,
    pub flow_version: i64,
    pub workbook_id: String,
    pub organization_id: String,
    /// The acting user the run executes as.
    pub user_id: String,
    /// The team scope (`project_id`) the run was started in.
    pub team_id: Option<String>,
    pub state: FlowRunState,
    /// Input name → value, as bound at start.
    pub inputs: Value,
    pub outputs: Value,
    pub error: Option<String>,
    pub credit_cost: f64,
    pub kill_requested: bool,
    pub attempts: i64,
    pub created_at: i64,
    pub started_at: Option<i64>,
    pub finished_at: Option<i64>,
}

/// The committed result of one node of a flow run.
#[derive(Debug, Clone, PartialEq)]
pub struct FlowNodeResult {
    pub run_id: String,
    pub node_id: String,
    /// `done` or `skipped` (an inactive branch of a condition).
    pub status: String,
    pub output: Value,
    pub credit_cost: f64,
    pub created_at: i64,
}

/// Who a flow listing is for: a personal workspace or a team.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FlowOwner {
    User(String),
    Team(String),
}

/// One credit charge (E1 `credit_logs`).
#[derive(Debug, Clone, PartialEq)]
pub struct LedgerEntry {
    pub id: String,
    pub organization_id: String,
    pub user_id: Option<String>,
    pub team_id: Option<String>,
    pub created_at: i64,
    /// `AGENT_RUN`, `PIPELINE_RUN`, …
    pub category: String,
    /// `model_call`, …
    pub kind: String,
    pub name: String,
    pub amount: f64,
    pub correlation_id: Option<String>,
    pub session_id: Option<String>,
    pub agent_id: Option<String>,
}

/// A data export job (E1/E2).
#[derive(Debug, Clone, PartialEq)]
pub struct DataExportRecord {
    pub id: String,
    pub organization_id: String,
    pub requested_by: String,
    pub data_type: String,
    /// The validated request (fields, dates, scope).
    pub request: Value,
    /// REQUESTED, IN_PROGRESS, COMPLETED, FAILED.
    pub state: String,
    pub row_count: Option<i64>,
    pub error: Option<String>,
    pub blob_key: Option<String>,
    pub created_at: i64,
    pub started_at: Option<i64>,
    pub finished_at: Option<i64>,
    pub expires_at: Option<i64>,
    pub attempts: i64,
}

/// Which rows an export reads.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ExportScope {
    pub data_type: String,
    pub start: i64,
    pub end: i64,
    /// Teams to include; None with `all_workspaces`.
    pub team_ids: Vec<String>,
    pub all_workspaces: bool,
    pub personal: bool,
    /// Agent ids (agents, agent_interactions) or workbook ids (workflows).
    pub entity_ids: Vec<String>,
    /// credit_logs categories (empty: all).
    pub categories: Vec<String>,
}
