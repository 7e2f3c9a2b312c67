use async_trait::async_trait;
use serde_json::{Map, Value};

use crate::{DataExportRecord, ExportScope, LedgerEntry, Result};

/// One exported row: every field of its data type, by export field name (timestamps as
/// micros, JSON-valued fields as JSON).
pub type ExportRow = Map<String, Value>;

/// The credit ledger and data export jobs.
#[async_trait]
pub trait ExportStore: Send + Sync {
    async fn add_ledger_entries(&self, entries: &[LedgerEntry]) -> Result<()>;
    async fn create_export(&self, e: &DataExportRecord) -> Result<()>;
    async fn data_export(&self, id: &str) -> Result<Option<DataExportRecord>>;
    /// Leases the oldest REQUESTED or IN_PROGRESS export whose lease is free or expired,
    /// moving it to IN_PROGRESS (attempts + 1).
    async fn claim_export(&self, owner: &str, now: i64, lease_until: i64) -> Result<Option<DataExportRecord>>;
    /// Releases the export leases whose owner starts with `owner_prefix` (`""`: all).
    async fn release_export_leases(&self, owner_prefix: &str) -> Result<u64>;
    async fn heartbeat_export(&self, id: &str, owner: &str, lease_until: i64) -> Result<bool>;
    /// IN_PROGRESS → COMPLETED/FAILED, only while `owner` holds the lease.
    async fn finish_export(&self, id: &str, owner: &str, end: &ExportEnd) -> Result<bool>;
    /// Completed exports whose file expired before `now` and still has a blob: (id, blob key).
    async fn expired_export_files(&self, now: i64) -> Result<Vec<(String, String)>>;
    async fn forget_export_file(&self, id: &str) -> Result<()>;
    /// Streams an organization's rows of `scope.data_type` in a stable order to `row`,
    /// from a read snapshot on a blocking thread (memory flat in the row count); stops
    /// early when `row` returns false. Returns the rows sent.
    async fn export_rows(&self, organization_id: &str, scope: &ExportScope, row: Box<dyn FnMut(ExportRow) -> bool + Send>) -> Result<u64>;
}

/// How an export ended (E2's fields).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ExportEnd {
    /// `COMPLETED` or `FAILED`.
    pub state: String,
    pub row_count: Option<i64>,
    pub error: Option<String>,
    pub blob_key: Option<String>,
    pub now: i64,
    pub expires_at: Option<i64>,
}
