//! Not yet ported: every method answers an error until this file is ported from `sqlite/`.
#![allow(unused_variables)]

use async_trait::async_trait;
use serde_json::{Map, Value};

use super::PgStore;
use crate::*;

#[async_trait]
impl ExportStore for PgStore {
    async fn add_ledger_entries(&self, entries: &[LedgerEntry]) -> Result<()> {
        Err(StoreError::Corrupt("not ported to PostgreSQL yet".into()))
    }
    async fn create_export(&self, e: &DataExportRecord) -> Result<()> {
        Err(StoreError::Corrupt("not ported to PostgreSQL yet".into()))
    }
    async fn data_export(&self, id: &str) -> Result<Option<DataExportRecord>> {
        Err(StoreError::Corrupt("not ported to PostgreSQL yet".into()))
    }
    async fn claim_export(&self, owner: &str, now: i64, lease_until: i64) -> Result<Option<DataExportRecord>> {
        Err(StoreError::Corrupt("not ported to PostgreSQL yet".into()))
    }
    async fn release_export_leases(&self) -> Result<u64> {
        Err(StoreError::Corrupt("not ported to PostgreSQL yet".into()))
    }
    async fn heartbeat_export(&self, id: &str, owner: &str, lease_until: i64) -> Result<bool> {
        Err(StoreError::Corrupt("not ported to PostgreSQL yet".into()))
    }
    async fn finish_export(&self, id: &str, owner: &str, end: &ExportEnd) -> Result<bool> {
        Err(StoreError::Corrupt("not ported to PostgreSQL yet".into()))
    }
    async fn expired_export_files(&self, now: i64) -> Result<Vec<(String, String)>> {
        Err(StoreError::Corrupt("not ported to PostgreSQL yet".into()))
    }
    async fn forget_export_file(&self, id: &str) -> Result<()> {
        Err(StoreError::Corrupt("not ported to PostgreSQL yet".into()))
    }
    async fn export_rows(&self, organization_id: &str, scope: &ExportScope, row: Box<dyn FnMut(ExportRow) -> bool + Send>) -> Result<u64> {
        Err(StoreError::Corrupt("not ported to PostgreSQL yet".into()))
    }
}
