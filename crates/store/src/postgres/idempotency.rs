//! Not yet ported: every method answers an error until this file is ported from `sqlite/`.
#![allow(unused_variables)]

use async_trait::async_trait;
use serde_json::{Map, Value};

use super::PgStore;
use crate::*;

#[async_trait]
impl IdempotencyStore for PgStore {
    async fn claim_idempotency(&self, scope: &str, fingerprint: &[u8], now: i64, expired_before: i64, stale_before: i64) -> Result<IdempotencyClaim> {
        Err(StoreError::Corrupt("not ported to PostgreSQL yet".into()))
    }
    async fn complete_idempotency(&self, scope: &str, status: u16, body: &[u8], now: i64) -> Result<()> {
        Err(StoreError::Corrupt("not ported to PostgreSQL yet".into()))
    }
    async fn release_idempotency(&self, scope: &str) -> Result<()> {
        Err(StoreError::Corrupt("not ported to PostgreSQL yet".into()))
    }
}
