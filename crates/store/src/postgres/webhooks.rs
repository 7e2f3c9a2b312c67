//! Not yet ported: every method answers an error until this file is ported from `sqlite/`.
#![allow(unused_variables)]

use async_trait::async_trait;
use serde_json::{Map, Value};

use super::PgStore;
use crate::*;

#[async_trait]
impl WebhookStore for PgStore {
    async fn set_global_webhook(&self, url: Option<&str>, now: i64) -> Result<()> {
        Err(StoreError::Corrupt("not ported to PostgreSQL yet".into()))
    }
    async fn claim_webhooks(&self, owner: &str, now: i64, lease_until: i64, limit: usize) -> Result<Vec<WebhookDelivery>> {
        Err(StoreError::Corrupt("not ported to PostgreSQL yet".into()))
    }
    async fn settle_webhook(&self, id: &str, owner: &str, delivered: bool, retry_at: Option<i64>, error: Option<&str>) -> Result<()> {
        Err(StoreError::Corrupt("not ported to PostgreSQL yet".into()))
    }
    async fn webhook_counts(&self) -> Result<Vec<(String, i64)>> {
        Err(StoreError::Corrupt("not ported to PostgreSQL yet".into()))
    }
}
