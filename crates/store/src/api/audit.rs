use async_trait::async_trait;

use crate::audit::{AuditFilter, AuditRecord};
use crate::Result;

/// The audit log (E3). Most rows are written by the store itself, in the transaction of
/// the action they record; `record_audit` is for reads and refused requests.
#[async_trait]
pub trait AuditStore: Send + Sync {
    async fn record_audit(&self, r: &AuditRecord) -> Result<()>;
    /// A page of an organization's events, newest first, and the total matching.
    async fn audit_events(&self, f: &AuditFilter, offset: usize, limit: usize) -> Result<(Vec<AuditRecord>, u64)>;
}
