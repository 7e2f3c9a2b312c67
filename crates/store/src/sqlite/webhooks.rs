use async_trait::async_trait;
use rusqlite::params;

use super::SqliteStore;
use crate::{Result, WebhookDelivery, WebhookStore};

#[async_trait]
impl WebhookStore for SqliteStore {
    async fn set_global_webhook(&self, url: Option<&str>, now: i64) -> Result<()> {
        let url = url.map(str::to_string);
        self.write(move |c| {
            match url {
                Some(u) => {
                    c.prepare_cached(
                        "INSERT INTO webhook_endpoints (id, team_id, url, created_at) VALUES ('global', NULL, ?, ?) ON CONFLICT(id) DO UPDATE SET url = excluded.url",
                    )?
                    .execute(params![u, now])?;
                }
                None => {
                    c.prepare_cached("DELETE FROM webhook_endpoints WHERE id = 'global'")?.execute([])?;
                }
            }
            Ok(())
        })
        .await
    }

    async fn claim_webhooks(&self, owner: &str, now: i64, lease_until: i64, limit: usize) -> Result<Vec<WebhookDelivery>> {
        let owner = owner.to_string();
        self.write(move |c| {
            let mut st = c.prepare_cached(
                "UPDATE webhook_outbox SET lease_owner = ?1, lease_expires_at = ?2 WHERE id IN ( \
                   SELECT id FROM webhook_outbox INDEXED BY webhook_outbox_due WHERE state = 'pending' AND next_attempt_at <= ?3 \
                   AND (lease_expires_at IS NULL OR lease_expires_at < ?3) ORDER BY next_attempt_at LIMIT ?4) \
                 RETURNING id, endpoint_id, event_type, created_at, data, attempts, (SELECT url FROM webhook_endpoints w WHERE w.id = endpoint_id)",
            )?;
            let rows = st
                .query_map(params![owner, lease_until, now, limit as i64], |r| {
                    Ok(WebhookDelivery {
                        id: r.get(0)?,
                        endpoint_id: r.get(1)?,
                        event_type: r.get(2)?,
                        created_at: r.get(3)?,
                        data: r.get(4)?,
                        attempts: r.get(5)?,
                        url: r.get::<_, Option<String>>(6)?.unwrap_or_default(),
                    })
                })?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            Ok(rows)
        })
        .await
    }

    async fn settle_webhook(&self, id: &str, owner: &str, delivered: bool, retry_at: Option<i64>, error: Option<&str>) -> Result<()> {
        let (id, owner, error) = (id.to_string(), owner.to_string(), error.map(str::to_string));
        self.write(move |c| {
            let state = if delivered {
                "delivered"
            } else if retry_at.is_some() {
                "pending"
            } else {
                "dropped"
            };
            c.prepare_cached(
                "UPDATE webhook_outbox SET state = ?, attempts = attempts + 1, next_attempt_at = COALESCE(?, next_attempt_at), last_error = ?, \
                 lease_owner = NULL, lease_expires_at = NULL WHERE id = ? AND lease_owner = ?",
            )?
            .execute(params![state, retry_at, error, id, owner])?;
            Ok(())
        })
        .await
    }

    async fn webhook_counts(&self) -> Result<Vec<(String, i64)>> {
        self.read(|c| {
            let mut st = c.prepare_cached("SELECT state, COUNT(*) FROM webhook_outbox GROUP BY state")?;
            let rows = st.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?.collect::<rusqlite::Result<Vec<_>>>()?;
            Ok(rows)
        })
        .await
    }

    async fn release_webhook_leases(&self, owner_prefix: &str) -> Result<u64> {
        let prefix = owner_prefix.to_string();
        self.write(move |c| {
            Ok(c.prepare_cached(
                "UPDATE webhook_outbox SET lease_owner = NULL, lease_expires_at = NULL WHERE lease_owner IS NOT NULL AND substr(lease_owner, 1, length(?1)) = ?1",
            )?
            .execute([prefix])? as u64)
        })
        .await
    }
}
