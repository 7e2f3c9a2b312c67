use async_trait::async_trait;
use sqlx::Row;

use super::SqliteStore;
use crate::{IdempotencyClaim, IdempotencyStore, Result};

#[async_trait]
impl IdempotencyStore for SqliteStore {
    async fn claim_idempotency(&self, scope: &str, fingerprint: &[u8], now: i64, expired_before: i64, stale_before: i64) -> Result<IdempotencyClaim> {
        let mut tx = self.write_tx().await?;
        let row = sqlx::query("SELECT fingerprint, state, status, body, created_at, updated_at FROM idempotency_keys WHERE scope = ?")
            .bind(scope)
            .fetch_optional(&mut *tx)
            .await?;
        let claim = match row {
            Some(r) if r.get::<i64, _>("created_at") >= expired_before => {
                let fp: Vec<u8> = r.get("fingerprint");
                let state: String = r.get("state");
                if fp != fingerprint {
                    Some(IdempotencyClaim::Reused)
                } else if state == "done" {
                    Some(IdempotencyClaim::Replay { status: r.get::<i64, _>("status") as u16, body: r.get("body") })
                } else if r.get::<i64, _>("updated_at") >= stale_before {
                    Some(IdempotencyClaim::InUse)
                } else {
                    None
                }
            }
            _ => None,
        };
        if let Some(c) = claim {
            tx.rollback().await?;
            return Ok(c);
        }
        sqlx::query(
            "INSERT INTO idempotency_keys (scope, fingerprint, state, status, body, created_at, updated_at) VALUES (?, ?, 'running', NULL, NULL, ?, ?) \
             ON CONFLICT(scope) DO UPDATE SET fingerprint = excluded.fingerprint, state = 'running', status = NULL, body = NULL, created_at = excluded.created_at, updated_at = excluded.updated_at",
        )
        .bind(scope)
        .bind(fingerprint)
        .bind(now)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        // Opportunistic clean-up of expired rows keeps the table small.
        sqlx::query("DELETE FROM idempotency_keys WHERE created_at < ?").bind(expired_before).execute(&mut *tx).await?;
        tx.commit().await?;
        Ok(IdempotencyClaim::New)
    }

    async fn complete_idempotency(&self, scope: &str, status: u16, body: &[u8], now: i64) -> Result<()> {
        let mut tx = self.write_tx().await?;
        sqlx::query("UPDATE idempotency_keys SET state = 'done', status = ?, body = ?, updated_at = ? WHERE scope = ?")
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
        let mut tx = self.write_tx().await?;
        sqlx::query("DELETE FROM idempotency_keys WHERE scope = ? AND state = 'running'").bind(scope).execute(&mut *tx).await?;
        tx.commit().await?;
        Ok(())
    }
}
