//! Not yet ported: every method answers an error until this file is ported from `sqlite/`.
#![allow(unused_variables)]

use async_trait::async_trait;
use serde_json::{Map, Value};

use super::PgStore;
use crate::audit::{AuditFilter, AuditRecord};
use crate::*;

#[async_trait]
impl AuditStore for PgStore {
    async fn record_audit(&self, r: &AuditRecord) -> Result<()> {
        Err(StoreError::Corrupt("not ported to PostgreSQL yet".into()))
    }
    async fn audit_events(&self, f: &AuditFilter, offset: usize, limit: usize) -> Result<(Vec<AuditRecord>, u64)> {
        Err(StoreError::Corrupt("not ported to PostgreSQL yet".into()))
    }
}
