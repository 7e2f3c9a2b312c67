//! Agent triggers and their firings (G20–G28).

use async_trait::async_trait;

use crate::*;

/// One trigger of an agent. Times are microseconds since the epoch.
#[derive(Debug, Clone, PartialEq)]
pub struct TriggerRecord {
    pub id: String,
    pub agent_id: String,
    pub organization_id: String,
    /// The user the trigger's sessions run as (its creator).
    pub creator_user_id: String,
    /// `schedule`, `webhook` or `integration`.
    pub kind: String,
    pub name: Option<String>,
    pub prompt: String,
    pub cron_expression: Option<String>,
    pub run_at: Option<i64>,
    pub timezone: Option<String>,
    pub pass_raw_data: bool,
    pub enabled: bool,
    /// `active`, `paused`, `completed`, `failed`, `unavailable`.
    pub status: String,
    pub max_failures: Option<i64>,
    pub consecutive_failures: i64,
    /// JSON text of the integration configuration (integration triggers).
    pub integration: Option<String>,
    /// Random salt of the webhook secret (webhooks): the secret itself is an HMAC of
    /// the trigger id and this salt under the server's signing key, never stored.
    pub webhook_salt: Option<String>,
    /// When the scheduler fires it next; `None`: never (webhooks, disabled, done).
    pub next_fire_at: Option<i64>,
    pub last_run_at: Option<i64>,
    /// Bumped by every configuration change (conditional updates).
    pub version: i64,
    pub created_at: i64,
    pub updated_at: i64,
}

/// One firing: a scheduled time or a webhook delivery, and the session it started.
#[derive(Debug, Clone, PartialEq)]
pub struct TriggerRunRecord {
    pub id: String,
    pub trigger_id: String,
    pub agent_id: String,
    /// `schedule` or `webhook`.
    pub source: String,
    /// Unique per trigger: the scheduled time (`at:<micros>`) or the delivery id.
    pub delivery_key: String,
    /// Deterministic for the delivery, so starting it twice finds the same session.
    pub session_id: String,
    /// The message the session starts with.
    pub input: String,
    /// `pending` (claimed, session not yet written), `started`, `failed`.
    pub state: String,
    pub error: Option<String>,
    pub scheduled_for: Option<i64>,
    pub created_at: i64,
    pub updated_at: i64,
}

/// A firing with what its session did.
#[derive(Debug, Clone, PartialEq)]
pub struct TriggerRunView {
    pub run: TriggerRunRecord,
    /// The session's state, when the session exists.
    pub session_state: Option<String>,
    pub user_message_id: Option<String>,
    pub finished_at: Option<i64>,
    pub credit_cost: Option<f64>,
}

/// Totals of a trigger's firings.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TriggerStats {
    pub run_count: i64,
    pub failed_count: i64,
    pub last_run_at: Option<i64>,
    pub credits: f64,
}

/// What a fired schedule becomes after the firing.
#[derive(Debug, Clone, PartialEq)]
pub struct ScheduleAdvance {
    /// The next fire time (`None`: the schedule is done).
    pub next_fire_at: Option<i64>,
    /// New status (e.g. `completed` for a `run_at` schedule), else unchanged.
    pub status: Option<String>,
}

/// Triggers (G20–G28): configuration, the scheduler's conditional claims, firings.
#[async_trait]
pub trait TriggerStore: Send + Sync {
    /// `Conflict` if the id is taken.
    async fn create_trigger(&self, t: &TriggerRecord) -> Result<()>;
    async fn trigger(&self, id: &str) -> Result<Option<TriggerRecord>>;
    /// One page of an agent's triggers by (created_at, id).
    async fn list_triggers(&self, agent_id: &str, page: &PageWindow) -> Result<Vec<(SortVal, TriggerRecord)>>;
    /// Writes the configuration iff the stored version is `expected_version` (the
    /// record's `version` is the new one). `next_fire_at` is written only when
    /// `reschedule`, so an edit that does not touch the schedule cannot undo a firing
    /// the scheduler claimed meanwhile. False when the version moved or it is gone.
    async fn update_trigger(&self, t: &TriggerRecord, expected_version: i64, reschedule: bool) -> Result<bool>;
    /// Deletes the trigger and its firings.
    async fn delete_trigger(&self, id: &str) -> Result<bool>;
    /// Enabled schedule triggers of live agents with `next_fire_at <= now`, earliest first.
    async fn due_triggers(&self, now: i64, limit: usize) -> Result<Vec<TriggerRecord>>;
    /// The scheduler's claim: iff the trigger is still enabled and its `next_fire_at`
    /// is still `expected_next`, moves it to `advance` and records the firing `run`, in
    /// one transaction. Of concurrent claimers of one due time exactly one gets true.
    async fn claim_trigger_fire(&self, trigger_id: &str, expected_next: i64, advance: &ScheduleAdvance, run: &TriggerRunRecord) -> Result<bool>;
    /// Records a webhook delivery unless its `(trigger_id, delivery_key)` was seen:
    /// returns the stored firing and whether it is new.
    async fn record_trigger_delivery(&self, run: &TriggerRunRecord) -> Result<(TriggerRunRecord, bool)>;
    /// Settles a firing as `started` or `failed`, and the trigger's failure count with
    /// it: reset on success; on failure incremented, disabling the trigger (status
    /// `failed`) when it reaches `max_failures`.
    async fn settle_trigger_run(&self, run_id: &str, started: bool, error: Option<&str>, now: i64) -> Result<()>;
    /// Firings still `pending` that were created before `before` (their process
    /// stopped between the claim and the session), oldest first.
    async fn pending_trigger_runs(&self, before: i64, limit: usize) -> Result<Vec<TriggerRunRecord>>;
    async fn trigger_run(&self, id: &str) -> Result<Option<TriggerRunRecord>>;
    /// One page of a trigger's firings, newest first by (created_at, id), optionally
    /// only those whose shown state (the session's, else the firing's) is in `states`.
    async fn list_trigger_runs(&self, trigger_id: &str, states: Option<&[String]>, page: &PageWindow) -> Result<Vec<(SortVal, TriggerRunView)>>;
    async fn trigger_stats(&self, trigger_id: &str) -> Result<TriggerStats>;
    /// Enabled triggers per agent, for the given agents.
    async fn active_trigger_counts(&self, agent_ids: &[String]) -> Result<Vec<(String, i64)>>;
}
