//! Shared GCRA buckets: one conditional upsert per request, so concurrent requests on
//! any replica are charged exactly once each.

use async_trait::async_trait;

use super::PgStore;
use crate::{GcraOutcome, RateLimitStore, Result};

#[async_trait]
impl RateLimitStore for PgStore {
    async fn gcra_take(&self, key: &str, now: i64, period: i64, burst: i64) -> Result<Option<GcraOutcome>> {
        // Allowed when the new arrival time is at most `burst` periods ahead of now.
        let tolerance = period.saturating_mul(burst);
        let charged: Option<i64> = sqlx::query_scalar(
            "INSERT INTO rate_limits AS b (key, tat) VALUES ($1, $2 + $3) \
             ON CONFLICT (key) DO UPDATE SET tat = GREATEST(b.tat, $2) + $3 \
             WHERE GREATEST(b.tat, $2) + $3 - $4 <= $2 \
             RETURNING tat",
        )
        .bind(key)
        .bind(now)
        .bind(period)
        .bind(tolerance)
        .fetch_optional(self.pool())
        .await?;
        if let Some(tat) = charged {
            return Ok(Some(GcraOutcome { allowed: true, tat }));
        }
        let tat: Option<i64> = sqlx::query_scalar("SELECT tat FROM rate_limits WHERE key = $1").bind(key).fetch_optional(self.pool()).await?;
        Ok(Some(GcraOutcome { allowed: false, tat: tat.unwrap_or(now) }))
    }

    async fn gcra_forget_idle(&self, now: i64) -> Result<u64> {
        Ok(sqlx::query("DELETE FROM rate_limits WHERE tat < $1").bind(now).execute(self.pool()).await?.rows_affected())
    }
}
