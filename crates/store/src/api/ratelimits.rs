//! Rate-limit buckets shared by every process on the database (GCRA state in a table),
//! so a quota holds across replicas. Single-process backends keep buckets in memory
//! (the server's own limiter) and answer `None`.

use async_trait::async_trait;

use crate::Result;

/// The bucket after a request was charged (or refused).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GcraOutcome {
    pub allowed: bool,
    /// The bucket's theoretical arrival time (micros) after this request: the bucket is
    /// full again at `tat`. For a refused request, its current value.
    pub tat: i64,
}

#[async_trait]
pub trait RateLimitStore: Send + Sync {
    /// GCRA: charges one request to bucket `key` at `now` (micros), one request every
    /// `period` micros with bursts of `burst`. `None`: this backend keeps no shared
    /// buckets.
    async fn gcra_take(&self, _key: &str, _now: i64, _period: i64, _burst: i64) -> Result<Option<GcraOutcome>> {
        Ok(None)
    }

    /// Forgets buckets that are full again (their `tat` is before `now`).
    async fn gcra_forget_idle(&self, _now: i64) -> Result<u64> {
        Ok(0)
    }
}
