use async_trait::async_trait;
use rusqlite::{params, OptionalExtension};

use super::SqliteStore;
use crate::{IdempotencyClaim, IdempotencyStore, Result};

#[async_trait]
impl IdempotencyStore for SqliteStore {
    async fn claim_idempotency(&self, scope: &str, fingerprint: &[u8], now: i64, expired_before: i64, stale_before: i64) -> Result<IdempotencyClaim> {
        let (scope, fingerprint) = (scope.to_string(), fingerprint.to_vec());
        self.write(move |c| {
            // Read and claim in one transaction: two racing requests cannot both claim.
            type Row = (Vec<u8>, String, Option<i64>, Option<Vec<u8>>, i64, i64);
            let row: Option<Row> = c
                .prepare_cached("SELECT fingerprint, state, status, body, created_at, updated_at FROM idempotency_keys WHERE scope = ?")?
                .query_row([&scope], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?)))
                .optional()?;
            if let Some((fp, state, status, body, created_at, updated_at)) = row {
                if created_at >= expired_before {
                    if fp != fingerprint {
                        return Ok(IdempotencyClaim::Reused);
                    } else if state == "done" {
                        return Ok(IdempotencyClaim::Replay { status: status.unwrap_or(200) as u16, body: body.unwrap_or_default() });
                    } else if updated_at >= stale_before {
                        return Ok(IdempotencyClaim::InUse);
                    }
                }
            }
            c.prepare_cached(
                "INSERT INTO idempotency_keys (scope, fingerprint, state, status, body, created_at, updated_at) VALUES (?, ?, 'running', NULL, NULL, ?, ?) \
                 ON CONFLICT(scope) DO UPDATE SET fingerprint = excluded.fingerprint, state = 'running', status = NULL, body = NULL, created_at = excluded.created_at, updated_at = excluded.updated_at",
            )?
            .execute(params![scope, fingerprint, now, now])?;
            // Opportunistic clean-up of expired rows keeps the table small.
            c.prepare_cached("DELETE FROM idempotency_keys WHERE created_at < ?")?.execute([expired_before])?;
            Ok(IdempotencyClaim::New)
        })
        .await
    }

    async fn complete_idempotency(&self, scope: &str, status: u16, body: &[u8], now: i64) -> Result<()> {
        let (scope, body) = (scope.to_string(), body.to_vec());
        self.write(move |c| {
            c.prepare_cached("UPDATE idempotency_keys SET state = 'done', status = ?, body = ?, updated_at = ? WHERE scope = ?")?.execute(params![
                status as i64,
                body,
                now,
                scope
            ])?;
            Ok(())
        })
        .await
    }

    async fn release_idempotency(&self, scope: &str) -> Result<()> {
        let scope = scope.to_string();
        self.write(move |c| {
            c.prepare_cached("DELETE FROM idempotency_keys WHERE scope = ? AND state = 'running'")?.execute([scope])?;
            Ok(())
        })
        .await
    }
}
