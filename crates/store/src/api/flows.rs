use async_trait::async_trait;

use crate::{FlowNodeResult, FlowOwner, FlowRecord, FlowRunRecord, FlowRunState, FlowVersionRecord, Result, WorkbookRecord};

/// Flows (saved items), workbooks, flow runs and their node results.
#[async_trait]
pub trait FlowStore: Send + Sync {
    /// Creates the workbook unless it exists (same id).
    async fn ensure_workbook(&self, w: &WorkbookRecord) -> Result<()>;
    async fn workbook(&self, id: &str) -> Result<Option<WorkbookRecord>>;
    async fn list_workbooks(&self, owner: &FlowOwner) -> Result<Vec<WorkbookRecord>>;
    /// Saves a flow: creates it at version 1, or (same id, not deleted) stores the next
    /// version, in one transaction. `f.version` is ignored; the saved record is returned.
    /// A deleted flow's id is not reused: `Conflict`.
    async fn save_flow(&self, f: &FlowRecord) -> Result<FlowRecord>;
    async fn flow(&self, id: &str) -> Result<Option<FlowRecord>>;
    async fn flow_version(&self, id: &str, version: i64) -> Result<Option<FlowVersionRecord>>;
    async fn flow_versions(&self, id: &str) -> Result<Vec<FlowVersionRecord>>;
    async fn list_flows(&self, owner: &FlowOwner) -> Result<Vec<FlowRecord>>;
    async fn flows_in_workbook(&self, workbook_id: &str) -> Result<Vec<FlowRecord>>;
    /// Soft delete; false when there was nothing live to delete.
    async fn delete_flow(&self, id: &str, now: i64) -> Result<bool>;

    async fn create_flow_run(&self, r: &FlowRunRecord) -> Result<()>;
    async fn flow_run(&self, id: &str) -> Result<Option<FlowRunRecord>>;
    /// The run without its inputs (`{}`): what status polls need, at a cost independent
    /// of the size of the inputs.
    async fn flow_run_status(&self, id: &str) -> Result<Option<FlowRunRecord>>;
    /// Most recent runs of a flow, newest first (without inputs and outputs).
    async fn recent_flow_runs(&self, flow_id: &str, limit: usize) -> Result<Vec<FlowRunRecord>>;
    /// Leases the oldest live run whose lease is free or expired (attempts + 1).
    async fn claim_flow_run(&self, owner: &str, now: i64, lease_until: i64) -> Result<Option<FlowRunRecord>>;
    /// Renews a lease; false when the lease is no longer `owner`'s.
    async fn heartbeat_flow_run(&self, id: &str, owner: &str, lease_until: i64) -> Result<bool>;
    /// Releases the flow-run leases whose owner starts with `owner_prefix` (`""`: all).
    async fn release_flow_leases(&self, owner_prefix: &str) -> Result<u64>;
    /// Moves a run `from` → `to` (checked by the engine's transition table), applied only
    /// `WHERE state = from` and, with `owner`, only while the lease is `owner`'s. Terminal
    /// states set `finished_at` and drop the lease. `Refused` when `from` no longer holds.
    async fn move_flow_run(&self, id: &str, owner: Option<&str>, from: FlowRunState, to: FlowRunState, end: FlowRunEnd) -> Result<()>;
    /// Sets `kill_requested`, and moves a live run to TERMINATING (F3). Returns the run.
    async fn request_flow_kill(&self, id: &str) -> Result<Option<FlowRunRecord>>;

    /// Commits one node's result with its log lines and adds its cost to the run, only
    /// while `owner` holds the lease. False when the node already had a result (nothing
    /// written) or the lease is lost.
    async fn commit_flow_node(&self, owner: &str, r: &FlowNodeResult, log: Vec<String>) -> Result<bool>;
    async fn flow_node_results(&self, run_id: &str) -> Result<Vec<FlowNodeResult>>;
    /// Commits one item of a loop node (only while `owner` holds the run's lease); false
    /// when the item already had a result or the lease is lost.
    async fn commit_flow_loop_item(&self, owner: &str, run_id: &str, node_id: &str, idx: i64, output: &serde_json::Value, credit_cost: f64) -> Result<bool>;
    /// A loop's committed items with `idx > after_idx`, in `idx` order, at most `limit`
    /// (a loop pages through them: memory flat in the loop's size).
    async fn flow_loop_items(&self, run_id: &str, node_id: &str, after_idx: i64, limit: usize) -> Result<Vec<(i64, serde_json::Value, f64)>>;
    async fn append_flow_log(&self, run_id: &str, lines: Vec<String>) -> Result<()>;
    async fn flow_log(&self, run_id: &str) -> Result<Vec<String>>;
}

/// What a terminal (or started) flow-run transition also writes.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FlowRunEnd {
    pub now: i64,
    pub outputs: Option<serde_json::Value>,
    pub error: Option<String>,
    /// Appended to the run's log in the same transaction.
    pub log: Vec<String>,
}
