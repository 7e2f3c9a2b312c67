//! Stored results of requests sent with an `Idempotency-Key`.

use async_trait::async_trait;

use crate::*;

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
