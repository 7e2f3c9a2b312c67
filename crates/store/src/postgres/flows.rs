//! Not yet ported: every method answers an error until this file is ported from `sqlite/`.
#![allow(unused_variables)]

use async_trait::async_trait;
use serde_json::{Map, Value};

use super::PgStore;
use crate::*;

#[async_trait]
impl FlowStore for PgStore {
    async fn ensure_workbook(&self, w: &WorkbookRecord) -> Result<()> {
        Err(StoreError::Corrupt("not ported to PostgreSQL yet".into()))
    }
    async fn workbook(&self, id: &str) -> Result<Option<WorkbookRecord>> {
        Err(StoreError::Corrupt("not ported to PostgreSQL yet".into()))
    }
    async fn list_workbooks(&self, owner: &FlowOwner) -> Result<Vec<WorkbookRecord>> {
        Err(StoreError::Corrupt("not ported to PostgreSQL yet".into()))
    }
    async fn save_flow(&self, f: &FlowRecord) -> Result<FlowRecord> {
        Err(StoreError::Corrupt("not ported to PostgreSQL yet".into()))
    }
    async fn flow(&self, id: &str) -> Result<Option<FlowRecord>> {
        Err(StoreError::Corrupt("not ported to PostgreSQL yet".into()))
    }
    async fn flow_version(&self, id: &str, version: i64) -> Result<Option<FlowVersionRecord>> {
        Err(StoreError::Corrupt("not ported to PostgreSQL yet".into()))
    }
    async fn flow_versions(&self, id: &str) -> Result<Vec<FlowVersionRecord>> {
        Err(StoreError::Corrupt("not ported to PostgreSQL yet".into()))
    }
    async fn list_flows(&self, owner: &FlowOwner) -> Result<Vec<FlowRecord>> {
        Err(StoreError::Corrupt("not ported to PostgreSQL yet".into()))
    }
    async fn flows_in_workbook(&self, workbook_id: &str) -> Result<Vec<FlowRecord>> {
        Err(StoreError::Corrupt("not ported to PostgreSQL yet".into()))
    }
    async fn delete_flow(&self, id: &str, now: i64) -> Result<bool> {
        Err(StoreError::Corrupt("not ported to PostgreSQL yet".into()))
    }
    async fn create_flow_run(&self, r: &FlowRunRecord) -> Result<()> {
        Err(StoreError::Corrupt("not ported to PostgreSQL yet".into()))
    }
    async fn flow_run(&self, id: &str) -> Result<Option<FlowRunRecord>> {
        Err(StoreError::Corrupt("not ported to PostgreSQL yet".into()))
    }
    async fn flow_run_status(&self, id: &str) -> Result<Option<FlowRunRecord>> {
        Err(StoreError::Corrupt("not ported to PostgreSQL yet".into()))
    }
    async fn recent_flow_runs(&self, flow_id: &str, limit: usize) -> Result<Vec<FlowRunRecord>> {
        Err(StoreError::Corrupt("not ported to PostgreSQL yet".into()))
    }
    async fn claim_flow_run(&self, owner: &str, now: i64, lease_until: i64) -> Result<Option<FlowRunRecord>> {
        Err(StoreError::Corrupt("not ported to PostgreSQL yet".into()))
    }
    async fn heartbeat_flow_run(&self, id: &str, owner: &str, lease_until: i64) -> Result<bool> {
        Err(StoreError::Corrupt("not ported to PostgreSQL yet".into()))
    }
    async fn release_flow_leases(&self) -> Result<u64> {
        Err(StoreError::Corrupt("not ported to PostgreSQL yet".into()))
    }
    async fn move_flow_run(&self, id: &str, owner: Option<&str>, from: FlowRunState, to: FlowRunState, end: FlowRunEnd) -> Result<()> {
        Err(StoreError::Corrupt("not ported to PostgreSQL yet".into()))
    }
    async fn request_flow_kill(&self, id: &str) -> Result<Option<FlowRunRecord>> {
        Err(StoreError::Corrupt("not ported to PostgreSQL yet".into()))
    }
    async fn commit_flow_node(&self, owner: &str, r: &FlowNodeResult, log: Vec<String>) -> Result<bool> {
        Err(StoreError::Corrupt("not ported to PostgreSQL yet".into()))
    }
    async fn flow_node_results(&self, run_id: &str) -> Result<Vec<FlowNodeResult>> {
        Err(StoreError::Corrupt("not ported to PostgreSQL yet".into()))
    }
    async fn commit_flow_loop_item(&self, owner: &str, run_id: &str, node_id: &str, idx: i64, output: &serde_json::Value, credit_cost: f64) -> Result<bool> {
        Err(StoreError::Corrupt("not ported to PostgreSQL yet".into()))
    }
    async fn flow_loop_items(&self, run_id: &str, node_id: &str) -> Result<Vec<(i64, serde_json::Value, f64)>> {
        Err(StoreError::Corrupt("not ported to PostgreSQL yet".into()))
    }
    async fn append_flow_log(&self, run_id: &str, lines: Vec<String>) -> Result<()> {
        Err(StoreError::Corrupt("not ported to PostgreSQL yet".into()))
    }
    async fn flow_log(&self, run_id: &str) -> Result<Vec<String>> {
        Err(StoreError::Corrupt("not ported to PostgreSQL yet".into()))
    }
}
