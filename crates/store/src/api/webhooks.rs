use async_trait::async_trait;

use crate::Result;

/// One pending delivery of the webhook outbox.
#[derive(Debug, Clone, PartialEq)]
pub struct WebhookDelivery {
    pub id: String,
    pub endpoint_id: String,
    pub url: String,
    pub event_type: String,
    pub created_at: i64,
    /// JSON text of the event's `data`.
    pub data: String,
    pub attempts: i64,
}

/// Webhook endpoints and the durable outbox (§11).
#[async_trait]
pub trait WebhookStore: Send + Sync {
    /// Makes `url` the global endpoint (team_id NULL), replacing any other; None removes it.
    async fn set_global_webhook(&self, url: Option<&str>, now: i64) -> Result<()>;
    /// Leases up to `limit` deliveries due at `now`.
    async fn claim_webhooks(&self, owner: &str, now: i64, lease_until: i64, limit: usize) -> Result<Vec<WebhookDelivery>>;
    /// A delivery succeeded (`delivered`), failed with a retry at `retry_at`, or was dropped
    /// (`retry_at` None after the last attempt).
    async fn settle_webhook(&self, id: &str, owner: &str, delivered: bool, retry_at: Option<i64>, error: Option<&str>) -> Result<()>;
    /// Counts by outbox state (pending, delivered, dropped).
    async fn webhook_counts(&self) -> Result<Vec<(String, i64)>>;
    /// Releases the delivery leases whose owner starts with `owner_prefix` (`""`: all):
    /// a restarted process takes back the deliveries it was sending when it stopped.
    async fn release_webhook_leases(&self, owner_prefix: &str) -> Result<u64>;
}
