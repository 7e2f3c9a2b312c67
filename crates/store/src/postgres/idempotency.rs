use async_trait::async_trait;
use sqlx::Row;

use super::{pg_text, PgStore};
use crate::{IdempotencyClaim, IdempotencyStore, Result};

#[async_trait]
impl IdempotencyStore for PgStore {
    async fn claim_idempotency(&self, scope: &str, fingerprint: &[u8], now: i64, expired_before: i64, stale_before: i64) -> Result<IdempotencyClaim> {
        // The scope holds the client's key: a NUL in it stands for U+FFFD (every bind).
        let scope = &*pg_text(scope);
        let mut tx = self.begin().await?;
        // Read and claim in one transaction, the row locked: two racing requests cannot
        // both claim. A first use inserts (a concurrent insert of the same scope waits for
        // this one, then finds the row); otherwise the existing row is locked and judged.
        loop {
            let inserted = sqlx::query(
                "INSERT INTO idempotency_keys (scope, fingerprint, state, status, body, created_at, updated_at) VALUES ($1, $2, 'running', NULL, NULL, $3, $3) \
                 ON CONFLICT (scope) DO NOTHING",
            )
            .bind(scope)
            .bind(fingerprint)
            .bind(now)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if inserted == 1 {
                break;
            }
            let row = sqlx::query("SELECT fingerprint, state, status, body, created_at, updated_at FROM idempotency_keys WHERE scope = $1 FOR UPDATE")
                .bind(scope)
                .fetch_optional(&mut *tx)
                .await?;
            // Deleted since the insert saw it (released or cleaned up): insert again.
            let Some(r) = row else { continue };
            let fp: Vec<u8> = r.try_get("fingerprint")?;
            let state: String = r.try_get("state")?;
            let status: Option<i64> = r.try_get("status")?;
            let body: Option<Vec<u8>> = r.try_get("body")?;
            let created_at: i64 = r.try_get("created_at")?;
            let updated_at: i64 = r.try_get("updated_at")?;
            if created_at >= expired_before {
                if fp != fingerprint {
                    return Ok(IdempotencyClaim::Reused);
                } else if state == "done" {
                    return Ok(IdempotencyClaim::Replay { status: status.unwrap_or(200) as u16, body: body.unwrap_or_default() });
                } else if updated_at >= stale_before {
                    return Ok(IdempotencyClaim::InUse);
                }
            }
            // Expired, or abandoned while running: take it over.
            sqlx::query(
                "UPDATE idempotency_keys SET fingerprint = $2, state = 'running', status = NULL, body = NULL, created_at = $3, updated_at = $3 WHERE scope = $1",
            )
            .bind(scope)
            .bind(fingerprint)
            .bind(now)
            .execute(&mut *tx)
            .await?;
            break;
        }
        // Opportunistic clean-up of expired rows keeps the table small; rows another
        // claim holds are left for later (no lock waits between claims).
        sqlx::query("DELETE FROM idempotency_keys WHERE scope IN (SELECT scope FROM idempotency_keys WHERE created_at < $1 FOR UPDATE SKIP LOCKED)")
            .bind(expired_before)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(IdempotencyClaim::New)
    }

    async fn complete_idempotency(&self, scope: &str, status: u16, body: &[u8], now: i64) -> Result<()> {
        let scope = &*pg_text(scope);
        let mut tx = self.begin().await?;
        sqlx::query("UPDATE idempotency_keys SET state = 'done', status = $1, body = $2, updated_at = $3 WHERE scope = $4")
            .bind(status as i64)
            .bind(body)
            .bind(now)
            .bind(scope)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn release_idempotency(&self, scope: &str) -> Result<()> {
        let scope = &*pg_text(scope);
        let mut tx = self.begin().await?;
        sqlx::query("DELETE FROM idempotency_keys WHERE scope = $1 AND state = 'running'").bind(scope).execute(&mut *tx).await?;
        tx.commit().await?;
        Ok(())
    }
}
