//! Sessions, their transcript, queue, files and grants.

use async_trait::async_trait;
use serde_json::Value;

use crate::*;

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
