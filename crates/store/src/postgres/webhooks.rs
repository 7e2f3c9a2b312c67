use async_trait::async_trait;
use sqlx::Row;

use super::{pg_text, PgStore};
use crate::{Result, WebhookDelivery, WebhookStore};

#[async_trait]
impl WebhookStore for PgStore {
    async fn set_global_webhook(&self, url: Option<&str>, now: i64) -> Result<()> {
        let mut tx = self.begin().await?;
        match url {
            Some(u) => {
                sqlx::query("INSERT INTO webhook_endpoints (id, team_id, url, created_at) VALUES ('global', NULL, $1, $2) ON CONFLICT (id) DO UPDATE SET url = excluded.url")
                    .bind(pg_text(u))
                    .bind(now)
                    .execute(&mut *tx)
                    .await?;
            }
            None => {
                sqlx::query("DELETE FROM webhook_endpoints WHERE id = 'global'").execute(&mut *tx).await?;
            }
        }
        tx.commit().await?;
        Ok(())
    }

    async fn claim_webhooks(&self, owner: &str, now: i64, lease_until: i64, limit: usize) -> Result<Vec<WebhookDelivery>> {
        let mut tx = self.begin().await?;
        // Rows another replica is leasing right now are skipped, not waited for.
        let rows = sqlx::query(
            "UPDATE webhook_outbox o SET lease_owner = $1, lease_expires_at = $2 WHERE o.id IN ( \
               SELECT id FROM webhook_outbox WHERE state = 'pending' AND next_attempt_at <= $3 \
               AND (lease_expires_at IS NULL OR lease_expires_at < $3) ORDER BY next_attempt_at LIMIT $4 FOR UPDATE SKIP LOCKED) \
             RETURNING o.id, o.endpoint_id, o.event_type, o.created_at, o.data::text AS data, o.attempts, \
               (SELECT w.url FROM webhook_endpoints w WHERE w.id = o.endpoint_id) AS url",
        )
        .bind(owner)
        .bind(lease_until)
        .bind(now)
        .bind(limit as i64)
        .fetch_all(&mut *tx)
        .await?;
        tx.commit().await?;
        let out = rows
            .iter()
            .map(|r| -> sqlx::Result<WebhookDelivery> {
                Ok(WebhookDelivery {
                    id: r.try_get("id")?,
                    endpoint_id: r.try_get("endpoint_id")?,
                    event_type: r.try_get("event_type")?,
                    created_at: r.try_get("created_at")?,
                    data: r.try_get("data")?,
                    attempts: r.try_get("attempts")?,
                    url: r.try_get::<Option<String>, _>("url")?.unwrap_or_default(),
                })
            })
            .collect::<sqlx::Result<Vec<_>>>()?;
        Ok(out)
    }

    async fn settle_webhook(&self, id: &str, owner: &str, delivered: bool, retry_at: Option<i64>, error: Option<&str>) -> Result<()> {
        let state = if delivered {
            "delivered"
        } else if retry_at.is_some() {
            "pending"
        } else {
            "dropped"
        };
        let mut tx = self.begin().await?;
        sqlx::query(
            "UPDATE webhook_outbox SET state = $1, attempts = attempts + 1, next_attempt_at = COALESCE($2, next_attempt_at), last_error = $3, \
             lease_owner = NULL, lease_expires_at = NULL WHERE id = $4 AND lease_owner = $5",
        )
        .bind(state)
        .bind(retry_at)
        .bind(error.map(pg_text))
        .bind(id)
        .bind(owner)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn webhook_counts(&self) -> Result<Vec<(String, i64)>> {
        let rows = sqlx::query("SELECT state, COUNT(*) AS n FROM webhook_outbox GROUP BY state").fetch_all(self.pool()).await?;
        Ok(rows.iter().map(|r| Ok((r.try_get("state")?, r.try_get("n")?))).collect::<sqlx::Result<Vec<_>>>()?)
    }

    async fn release_webhook_leases(&self, owner_prefix: &str) -> Result<u64> {
        let n = self
            .write_one(
                sqlx::query(
                    "UPDATE webhook_outbox SET lease_owner = NULL, lease_expires_at = NULL WHERE lease_owner IS NOT NULL AND starts_with(lease_owner, $1)",
                )
                .bind(owner_prefix),
            )
            .await?;
        Ok(n)
    }
}
