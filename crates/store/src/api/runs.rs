//! The durable run queue: leases, heartbeats, step commits, the event log.

use async_trait::async_trait;

use crate::*;

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
    /// Returns the leased jobs whose owner starts with `owner_prefix` (`""`: every one)
    /// to the queue: a restarting process takes back its own leases at once.
    async fn release_all_leases(&self, owner_prefix: &str) -> Result<u64>;
    async fn run_steps(&self, run_id: &str) -> Result<Vec<StepRecord>>;
    /// Applies `u` atomically; `None` when `u.lease_owner` no longer holds the lease.
    async fn update_run(&self, u: RunUpdate<'_>) -> Result<Option<Vec<EventRecord>>>;
    /// Deletes the events of sessions whose latest run finished before `before` and
    /// records how far each was purged; returns the number of events removed.
    async fn purge_events(&self, before: i64) -> Result<u64>;
    /// Events with `seq > after`, oldest first, at most `limit`.
    async fn events_after(&self, session_id: &str, after: i64, limit: i64) -> Result<Vec<EventRecord>>;
    /// Active runs by state (`queued`, `processing`) across organizations, from the
    /// counters the run transitions keep (one row per organization and state: cheap
    /// enough for every `/metrics` scrape).
    async fn active_run_counts(&self) -> Result<Vec<(String, i64)>>;
}
