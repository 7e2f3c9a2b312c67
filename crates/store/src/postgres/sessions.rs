//! Not yet ported: every method answers an error until this file is ported from `sqlite/`.
#![allow(unused_variables)]

use async_trait::async_trait;
use serde_json::{Map, Value};

use super::PgStore;
use crate::*;

#[async_trait]
impl SessionStore for PgStore {
    async fn create_session(&self, s: &SessionRecord, events: Vec<Value>) -> Result<Vec<EventRecord>> {
        Err(StoreError::Corrupt("not ported to PostgreSQL yet".into()))
    }
    async fn create_session_with_turn(&self, s: &SessionRecord, turn: NewTurn) -> Result<std::result::Result<TurnWritten, Refusal>> {
        Err(StoreError::Corrupt("not ported to PostgreSQL yet".into()))
    }
    async fn session(&self, id: &str) -> Result<Option<SessionRecord>> {
        Err(StoreError::Corrupt("not ported to PostgreSQL yet".into()))
    }
    async fn messages(&self, session_id: &str) -> Result<Vec<MessageRecord>> {
        Err(StoreError::Corrupt("not ported to PostgreSQL yet".into()))
    }
    async fn start_turn(&self, session_id: &str, turn: NewTurn) -> Result<std::result::Result<TurnWritten, Refusal>> {
        Err(StoreError::Corrupt("not ported to PostgreSQL yet".into()))
    }
    async fn run(&self, id: &str) -> Result<Option<RunRecord>> {
        Err(StoreError::Corrupt("not ported to PostgreSQL yet".into()))
    }
    async fn active_counts(&self, agent_id: &str, organization_id: &str) -> Result<ActiveCounts> {
        Err(StoreError::Corrupt("not ported to PostgreSQL yet".into()))
    }
    async fn queue_position(&self, run: &RunRecord) -> Result<i64> {
        Err(StoreError::Corrupt("not ported to PostgreSQL yet".into()))
    }
    async fn request_cancel(&self, run_id: &str) -> Result<()> {
        Err(StoreError::Corrupt("not ported to PostgreSQL yet".into()))
    }
    async fn list_sessions(&self, filter: &SessionFilter, sort: SessionSort, page: &PageWindow) -> Result<Vec<(SortVal, SessionRecord)>> {
        Err(StoreError::Corrupt("not ported to PostgreSQL yet".into()))
    }
    async fn rename_session(&self, id: &str, name: &str) -> Result<()> {
        Err(StoreError::Corrupt("not ported to PostgreSQL yet".into()))
    }
    async fn first_event_of_run(&self, session_id: &str, run_id: &str) -> Result<Option<i64>> {
        Err(StoreError::Corrupt("not ported to PostgreSQL yet".into()))
    }
    async fn queued_messages(&self, session_id: &str) -> Result<Vec<QueuedMessageRecord>> {
        Err(StoreError::Corrupt("not ported to PostgreSQL yet".into()))
    }
    async fn enqueue_message(&self, m: &QueuedMessageRecord, max: i64) -> Result<bool> {
        Err(StoreError::Corrupt("not ported to PostgreSQL yet".into()))
    }
    async fn edit_queued_message(&self, session_id: &str, id: &str, input: &str, now: i64) -> Result<bool> {
        Err(StoreError::Corrupt("not ported to PostgreSQL yet".into()))
    }
    async fn delete_queued_message(&self, session_id: &str, id: &str) -> Result<bool> {
        Err(StoreError::Corrupt("not ported to PostgreSQL yet".into()))
    }
    async fn insert_session_file(&self, f: &SessionFileRecord) -> Result<()> {
        Err(StoreError::Corrupt("not ported to PostgreSQL yet".into()))
    }
    async fn session_files(&self, session_id: &str) -> Result<Vec<SessionFileRecord>> {
        Err(StoreError::Corrupt("not ported to PostgreSQL yet".into()))
    }
    async fn session_grants(&self, session_id: &str) -> Result<Vec<(String, String, String)>> {
        Err(StoreError::Corrupt("not ported to PostgreSQL yet".into()))
    }
    async fn change_session_grants(&self, session_id: &str, upsert: &[(String, String, String)], remove: &[(String, String)]) -> Result<()> {
        Err(StoreError::Corrupt("not ported to PostgreSQL yet".into()))
    }
    async fn delete_idle_sessions(&self, before: i64) -> Result<u64> {
        Err(StoreError::Corrupt("not ported to PostgreSQL yet".into()))
    }
}

#[async_trait]
impl RunStore for PgStore {
    async fn claim_run(&self, owner: &str, now: i64, lease_until: i64, limits: SlotLimits) -> Result<Option<ClaimedRun>> {
        Err(StoreError::Corrupt("not ported to PostgreSQL yet".into()))
    }
    async fn heartbeat(&self, run_id: &str, owner: &str, lease_until: i64) -> Result<bool> {
        Err(StoreError::Corrupt("not ported to PostgreSQL yet".into()))
    }
    async fn expired_runs(&self, now: i64) -> Result<Vec<(String, i64)>> {
        Err(StoreError::Corrupt("not ported to PostgreSQL yet".into()))
    }
    async fn requeue_run(&self, run_id: &str, available_at: i64) -> Result<()> {
        Err(StoreError::Corrupt("not ported to PostgreSQL yet".into()))
    }
    async fn release_all_leases(&self) -> Result<u64> {
        Err(StoreError::Corrupt("not ported to PostgreSQL yet".into()))
    }
    async fn run_steps(&self, run_id: &str) -> Result<Vec<StepRecord>> {
        Err(StoreError::Corrupt("not ported to PostgreSQL yet".into()))
    }
    async fn update_run(&self, u: RunUpdate<'_>) -> Result<Option<Vec<EventRecord>>> {
        Err(StoreError::Corrupt("not ported to PostgreSQL yet".into()))
    }
    async fn purge_events(&self, before: i64) -> Result<u64> {
        Err(StoreError::Corrupt("not ported to PostgreSQL yet".into()))
    }
    async fn events_after(&self, session_id: &str, after: i64, limit: i64) -> Result<Vec<EventRecord>> {
        Err(StoreError::Corrupt("not ported to PostgreSQL yet".into()))
    }
}
