//! Durable state of Openloop: small traits per table family, implemented for SQLite
//! (embedded default) and, later, PostgreSQL.
//!
//! Architecture invariant: this crate knows SQL and nothing about HTTP or LLMs. Every
//! query that reads tenant data takes the tenant filter as an argument, so isolation is
//! enforced inside the database query itself. Dialect-specific SQL lives only under
//! `sqlite/` (and later `postgres/`).

pub mod model;
pub mod split;
pub mod sqlite;

use async_trait::async_trait;
pub use model::*;
use serde_json::Value;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A uniqueness constraint was violated (e.g. a caller-chosen id already exists).
    #[error("conflict: {0}")]
    Conflict(String),
    #[error("not found")]
    NotFound,
    #[error("database error: {0}")]
    Db(#[from] rusqlite::Error),
    #[error("corrupt row: {0}")]
    Corrupt(String),
    /// A state transition whose `from` no longer holds: someone else moved the run
    /// first. Nothing was written; the caller re-reads and decides.
    #[error("refused: the run is {actual}, not {expected}")]
    Refused { expected: &'static str, actual: String },
}

impl StoreError {
    /// The database cannot write right now (disk full, read-only, I/O error): the caller
    /// should retry later, not report a bug.
    pub fn is_unavailable(&self) -> bool {
        use rusqlite::ErrorCode as C;
        matches!(
            self,
            StoreError::Db(rusqlite::Error::SqliteFailure(e, _))
                if matches!(e.code, C::DiskFull | C::ReadOnly | C::SystemIoFailure | C::CannotOpen)
        )
    }

    /// A unique or primary-key constraint failed.
    pub fn is_unique_violation(&self) -> bool {
        matches!(self, StoreError::Db(rusqlite::Error::SqliteFailure(e, _))
            if e.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE || e.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_PRIMARYKEY)
    }

    /// An equivalent error (errors are not `Clone`; a batch's commit error reaches every job).
    pub fn duplicate(&self) -> StoreError {
        match self {
            StoreError::Conflict(w) => StoreError::Conflict(w.clone()),
            StoreError::NotFound => StoreError::NotFound,
            StoreError::Db(rusqlite::Error::SqliteFailure(e, m)) => StoreError::Db(rusqlite::Error::SqliteFailure(*e, m.clone())),
            StoreError::Refused { expected, actual } => StoreError::Refused { expected, actual: actual.clone() },
            other => StoreError::Corrupt(other.to_string()),
        }
    }
}

pub type Result<T> = std::result::Result<T, StoreError>;

/// Organizations, users, teams, memberships and API keys.
#[async_trait]
pub trait TenancyStore: Send + Sync {
    async fn ensure_organization(&self, id: &str, name: &str) -> Result<()>;
    /// Insert the user if absent (idempotent); returns whether it was created.
    async fn ensure_user(&self, user: &User) -> Result<bool>;
    async fn user(&self, id: &str) -> Result<Option<User>>;
    async fn users_by_ids(&self, ids: &[String]) -> Result<Vec<User>>;
    async fn user_by_email(&self, organization_id: &str, email: &str) -> Result<Option<User>>;
    async fn organizations_of_user(&self, user_id: &str) -> Result<Vec<Organization>>;
    async fn organization(&self, id: &str) -> Result<Option<Organization>>;
    /// Insert the team if absent (idempotent); returns whether it was created.
    async fn ensure_team(&self, team: &Team) -> Result<bool>;
    async fn team(&self, id: &str) -> Result<Option<Team>>;
    async fn set_membership(&self, team_id: &str, user_id: &str, role: &str) -> Result<()>;
    async fn membership(&self, team_id: &str, user_id: &str) -> Result<Option<String>>;
    /// Teams the user belongs to, with the user's role, ordered by name.
    async fn teams_of_user(&self, user_id: &str) -> Result<Vec<(Team, String)>>;
    async fn count_users(&self) -> Result<i64>;
    /// Liveness of the database (`/readyz`).
    async fn ping(&self) -> Result<()>;

    async fn insert_api_key(&self, key: &ApiKey) -> Result<()>;
    async fn api_key_by_hash(&self, hash: &[u8]) -> Result<Option<ApiKey>>;
    async fn list_api_keys(&self, user_id: Option<&str>, team_id: Option<&str>) -> Result<Vec<ApiKey>>;
    /// Returns false when no active key has this id.
    async fn revoke_api_key(&self, key_id: &str, at: i64) -> Result<bool>;

    /// MCP server sessions (API.md §10.4).
    async fn create_mcp_session(&self, s: &McpSessionRecord) -> Result<()>;
    /// The session if it exists and has not ended.
    async fn mcp_session(&self, id: &str) -> Result<Option<McpSessionRecord>>;
    /// Returns false when no open session has this id.
    async fn end_mcp_session(&self, id: &str, at: i64) -> Result<bool>;
}

/// Agents and their versions.
#[async_trait]
pub trait AgentStore: Send + Sync {
    /// Creates the agent and its first version in one transaction.
    /// `Conflict` if the id is taken (also by a deleted agent).
    async fn create_agent(&self, agent: &AgentRecord, version: &AgentVersionRecord) -> Result<()>;
    /// Agent by id, including retired/deleted ones (callers decide visibility).
    async fn agent(&self, id: &str) -> Result<Option<AgentRecord>>;
    /// Live (active, not deleted) agents of exactly one tenant.
    async fn agents_in_tenant(&self, tenant: &Tenant) -> Result<Vec<AgentRecord>>;
    /// Writes a new state and a new version iff the stored version is `expected_version`.
    /// Returns false (and writes nothing) when the version moved.
    async fn update_agent(&self, agent: &AgentRecord, expected_version: i64, version: &AgentVersionRecord) -> Result<bool>;
    async fn delete_agent(&self, id: &str, at: i64) -> Result<bool>;
    async fn agent_versions(&self, agent_id: &str) -> Result<Vec<AgentVersionRecord>>;
    async fn agent_version(&self, agent_id: &str, version_id: &str) -> Result<Option<AgentVersionRecord>>;
    async fn touch_agent_used(&self, id: &str, at: i64) -> Result<()>;
}

/// Outcome of claiming an idempotency key.
#[derive(Debug, Clone, PartialEq)]
pub enum IdempotencyClaim {
    /// First use (or an expired/abandoned one): the caller runs the request.
    New,
    /// Completed before with the same fingerprint: replay this status and body.
    Replay { status: u16, body: Vec<u8> },
    /// Same key, different request.
    Reused,
    /// The original request is still running.
    InUse,
}

/// Stored results of requests sent with an `Idempotency-Key` (API.md §5.2).
#[async_trait]
pub trait IdempotencyStore: Send + Sync {
    /// Atomically claims `scope`. Rows created before `expired_before` are replaced;
    /// in-progress rows untouched since `stale_before` are taken over.
    async fn claim_idempotency(&self, scope: &str, fingerprint: &[u8], now: i64, expired_before: i64, stale_before: i64) -> Result<IdempotencyClaim>;
    async fn complete_idempotency(&self, scope: &str, status: u16, body: &[u8], now: i64) -> Result<()>;
    /// Forgets a claim whose request failed with a 5xx (never stored).
    async fn release_idempotency(&self, scope: &str) -> Result<()>;
}

/// Sessions, their transcript and the runs that answer them.
#[async_trait]
pub trait SessionStore: Send + Sync {
    /// Creates a session without a turn. `Conflict` if the id is taken.
    async fn create_session(&self, s: &SessionRecord, events: Vec<Value>) -> Result<Vec<EventRecord>>;
    /// Creates a session with its first user message, run and queue job in one
    /// transaction; the turn's admission rule decides inside it (limits, state).
    /// `Conflict` if the id is taken.
    async fn create_session_with_turn(&self, s: &SessionRecord, turn: NewTurn) -> Result<std::result::Result<TurnWritten, Refusal>>;
    async fn session(&self, id: &str) -> Result<Option<SessionRecord>>;
    async fn messages(&self, session_id: &str) -> Result<Vec<MessageRecord>>;
    /// Appends a user message, a run and its job to the session if its admission rule
    /// (run inside the transaction, on the session's state and the slot counts) agrees.
    /// `NotFound` if the session does not exist.
    async fn start_turn(&self, session_id: &str, turn: NewTurn) -> Result<std::result::Result<TurnWritten, Refusal>>;
    async fn run(&self, id: &str) -> Result<Option<RunRecord>>;
    async fn active_counts(&self, agent_id: &str, organization_id: &str) -> Result<ActiveCounts>;
    /// 1-based place of a queued run among its agent's queued runs.
    async fn queue_position(&self, run: &RunRecord) -> Result<i64>;
    async fn request_cancel(&self, run_id: &str) -> Result<()>;
    /// One page of an agent's sessions the reader may read (S3), in SQL: each row with
    /// its sort value, at most `page.limit` rows after `page.after`.
    async fn list_sessions(&self, filter: &SessionFilter, sort: SessionSort, page: &PageWindow) -> Result<Vec<(SortVal, SessionRecord)>>;
    async fn rename_session(&self, id: &str, name: &str) -> Result<()>;
    /// First event seq of a run (its `start`), if any.
    async fn first_event_of_run(&self, session_id: &str, run_id: &str) -> Result<Option<i64>>;
    /// The session's user-visible queue (S12), in send order.
    async fn queued_messages(&self, session_id: &str) -> Result<Vec<QueuedMessageRecord>>;
    /// Appends to the queue unless it holds `max` messages; false when full.
    async fn enqueue_message(&self, m: &QueuedMessageRecord, max: i64) -> Result<bool>;
    async fn edit_queued_message(&self, session_id: &str, id: &str, input: &str, now: i64) -> Result<bool>;
    async fn delete_queued_message(&self, session_id: &str, id: &str) -> Result<bool>;
    /// Uploaded files of a session (S10).
    async fn insert_session_file(&self, f: &SessionFileRecord) -> Result<()>;
    async fn session_files(&self, session_id: &str) -> Result<Vec<SessionFileRecord>>;
    /// Sharing grants (S18): (kind, principal, role), kind = person|team|organization.
    async fn session_grants(&self, session_id: &str) -> Result<Vec<(String, String, String)>>;
    /// Applies upserts then removals atomically.
    async fn change_session_grants(&self, session_id: &str, upsert: &[(String, String, String)], remove: &[(String, String)]) -> Result<()>;
    /// Deletes every trace of sessions untouched since `before` that have no active run
    /// (incognito expiry); returns how many were removed.
    async fn delete_idle_sessions(&self, before: i64) -> Result<u64>;
}

/// The durable run queue: leases, heartbeats, step commits, the event log.
#[async_trait]
pub trait RunStore: Send + Sync {
    /// Claims the oldest runnable job (respecting `limits` for queued runs), leasing it
    /// to `owner` until `lease_until`; the run becomes `processing`.
    async fn claim_run(&self, owner: &str, now: i64, lease_until: i64, limits: SlotLimits) -> Result<Option<ClaimedRun>>;
    /// Extends a lease; false when `owner` no longer holds it.
    async fn heartbeat(&self, run_id: &str, owner: &str, lease_until: i64) -> Result<bool>;
    /// Leased jobs whose lease expired before `now`: (run id, attempts so far).
    async fn expired_runs(&self, now: i64) -> Result<Vec<(String, i64)>>;
    /// Returns a job to the queue (lease cleared).
    async fn requeue_run(&self, run_id: &str, available_at: i64) -> Result<()>;
    /// Returns every leased job to the queue (single-process start-up recovery).
    async fn release_all_leases(&self) -> Result<u64>;
    async fn run_steps(&self, run_id: &str) -> Result<Vec<StepRecord>>;
    /// Applies `u` atomically; `None` when `u.lease_owner` no longer holds the lease.
    async fn update_run(&self, u: RunUpdate<'_>) -> Result<Option<Vec<EventRecord>>>;
    /// Deletes the events of sessions whose latest run finished before `before` and
    /// records how far each was purged; returns the number of events removed.
    async fn purge_events(&self, before: i64) -> Result<u64>;
    /// Events with `seq > after`, oldest first, at most `limit`.
    async fn events_after(&self, session_id: &str, after: i64, limit: i64) -> Result<Vec<EventRecord>>;
}

/// Artifacts and their versions.
#[async_trait]
pub trait ArtifactStore: Send + Sync {
    /// Adds a version to the live artifact named `stored_filename` in the session, or
    /// creates the artifact (version 1), atomically. `new_artifact_id` is used when new.
    async fn add_artifact_version(&self, new_artifact: &ArtifactRecord, version: &ArtifactVersionRecord) -> Result<(ArtifactRecord, ArtifactVersionRecord)>;
    async fn artifact(&self, id: &str) -> Result<Option<ArtifactRecord>>;
    async fn artifact_versions(&self, artifact_id: &str) -> Result<Vec<ArtifactVersionRecord>>;
    /// One page of the live artifacts of an agent's sessions the reader may read (A1).
    async fn list_artifacts(
        &self,
        filter: &ArtifactFilter,
        sort: ArtifactSort,
        page: &PageWindow,
    ) -> Result<Vec<(SortVal, ArtifactRecord, ArtifactVersionRecord)>>;
    async fn delete_artifact(&self, id: &str, at: i64) -> Result<bool>;
    async fn rename_artifact(&self, id: &str, name: Option<&str>) -> Result<()>;
    async fn set_artifact_password(&self, id: &str, hash: &str) -> Result<()>;
    /// Legacy flow files (F8–F11): replaces a same-named file; returns the replaced
    /// file's blob key.
    async fn upsert_flow_file(&self, namespace: &str, f: &SessionFileRecord) -> Result<Option<String>>;
    async fn flow_file(&self, namespace: &str, file_name: &str) -> Result<Option<SessionFileRecord>>;
}

/// Everything the engine needs from storage.
pub trait Store: TenancyStore + AgentStore + IdempotencyStore + SessionStore + RunStore + ArtifactStore + Send + Sync {}
impl<T: TenancyStore + AgentStore + IdempotencyStore + SessionStore + RunStore + ArtifactStore + Send + Sync> Store for T {}
