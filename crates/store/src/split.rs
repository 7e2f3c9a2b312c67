//! A store that keeps session-scoped data (sessions, messages, runs, events, queue,
//! files, artifacts) in one store and identities, agents and idempotency keys in
//! another: incognito sessions (§7.10) live in an in-memory database while the agents
//! they run come from the real one.

use std::sync::Arc;

use async_trait::async_trait;
use serde_json::Value;

use crate::*;

pub struct SplitStore {
    /// Tenancy, agents, idempotency keys.
    pub shared: Arc<dyn Store>,
    /// Everything a session owns.
    pub sessions: Arc<dyn Store>,
}

/// Incognito sessions live in this process's memory only.
impl NoticeStore for SplitStore {}

#[async_trait]
impl RateLimitStore for SplitStore {
    async fn gcra_take(&self, key: &str, now: i64, period: i64, burst: i64) -> Result<Option<GcraOutcome>> {
        self.shared.gcra_take(key, now, period, burst).await
    }
    async fn gcra_forget_idle(&self, now: i64) -> Result<u64> {
        self.shared.gcra_forget_idle(now).await
    }
}

#[async_trait]
impl TenancyStore for SplitStore {
    async fn ensure_organization(&self, id: &str, name: &str) -> Result<()> {
        self.shared.ensure_organization(id, name).await
    }
    async fn ensure_user(&self, user: &User) -> Result<bool> {
        self.shared.ensure_user(user).await
    }
    async fn user(&self, id: &str) -> Result<Option<User>> {
        self.shared.user(id).await
    }
    async fn users_by_ids(&self, ids: &[String]) -> Result<Vec<User>> {
        self.shared.users_by_ids(ids).await
    }
    async fn user_by_email(&self, organization_id: &str, email: &str) -> Result<Option<User>> {
        self.shared.user_by_email(organization_id, email).await
    }
    async fn organizations_of_user(&self, user_id: &str) -> Result<Vec<Organization>> {
        self.shared.organizations_of_user(user_id).await
    }
    async fn organization(&self, id: &str) -> Result<Option<Organization>> {
        self.shared.organization(id).await
    }
    async fn ensure_team(&self, team: &Team) -> Result<bool> {
        self.shared.ensure_team(team).await
    }
    async fn team(&self, id: &str) -> Result<Option<Team>> {
        self.shared.team(id).await
    }
    async fn set_membership(&self, team_id: &str, user_id: &str, role: &str) -> Result<()> {
        self.shared.set_membership(team_id, user_id, role).await
    }
    async fn membership(&self, team_id: &str, user_id: &str) -> Result<Option<String>> {
        self.shared.membership(team_id, user_id).await
    }
    async fn teams_of_user(&self, user_id: &str) -> Result<Vec<(Team, String)>> {
        self.shared.teams_of_user(user_id).await
    }
    async fn count_users(&self) -> Result<i64> {
        self.shared.count_users().await
    }
    async fn list_users(&self, organization_id: Option<&str>) -> Result<Vec<User>> {
        self.shared.list_users(organization_id).await
    }
    async fn list_teams(&self, organization_id: Option<&str>) -> Result<Vec<(Team, i64)>> {
        self.shared.list_teams(organization_id).await
    }
    async fn ping(&self) -> Result<()> {
        self.shared.ping().await
    }
    async fn insert_api_key(&self, key: &ApiKey) -> Result<()> {
        self.shared.insert_api_key(key).await
    }
    async fn api_key_by_hash(&self, hash: &[u8]) -> Result<Option<ApiKey>> {
        self.shared.api_key_by_hash(hash).await
    }
    async fn list_api_keys(&self, user_id: Option<&str>, team_id: Option<&str>) -> Result<Vec<ApiKey>> {
        self.shared.list_api_keys(user_id, team_id).await
    }
    async fn revoke_api_key(&self, key_id: &str, at: i64) -> Result<bool> {
        self.shared.revoke_api_key(key_id, at).await
    }
    async fn create_mcp_session(&self, s: &McpSessionRecord) -> Result<()> {
        self.shared.create_mcp_session(s).await
    }
    async fn mcp_session(&self, id: &str) -> Result<Option<McpSessionRecord>> {
        self.shared.mcp_session(id).await
    }
    async fn end_mcp_session(&self, id: &str, at: i64) -> Result<bool> {
        self.shared.end_mcp_session(id, at).await
    }
}

#[async_trait]
impl AgentStore for SplitStore {
    async fn create_agent(&self, agent: &AgentRecord, version: &AgentVersionRecord) -> Result<()> {
        self.shared.create_agent(agent, version).await
    }
    async fn agent(&self, id: &str) -> Result<Option<AgentRecord>> {
        self.shared.agent(id).await
    }
    async fn agents_in_tenant(&self, tenant: &Tenant) -> Result<Vec<AgentRecord>> {
        self.shared.agents_in_tenant(tenant).await
    }
    async fn update_agent(&self, agent: &AgentRecord, expected_version: i64, version: &AgentVersionRecord) -> Result<bool> {
        self.shared.update_agent(agent, expected_version, version).await
    }
    async fn delete_agent(&self, id: &str, at: i64) -> Result<bool> {
        self.shared.delete_agent(id, at).await
    }
    async fn agent_versions(&self, agent_id: &str) -> Result<Vec<AgentVersionRecord>> {
        self.shared.agent_versions(agent_id).await
    }
    async fn agent_version(&self, agent_id: &str, version_id: &str) -> Result<Option<AgentVersionRecord>> {
        self.shared.agent_version(agent_id, version_id).await
    }
    async fn touch_agent_used(&self, id: &str, at: i64) -> Result<()> {
        self.shared.touch_agent_used(id, at).await
    }
}

#[async_trait]
impl IdempotencyStore for SplitStore {
    async fn claim_idempotency(&self, scope: &str, fingerprint: &[u8], now: i64, expired_before: i64, stale_before: i64) -> Result<IdempotencyClaim> {
        self.shared.claim_idempotency(scope, fingerprint, now, expired_before, stale_before).await
    }
    async fn complete_idempotency(&self, scope: &str, status: u16, body: &[u8], now: i64) -> Result<()> {
        self.shared.complete_idempotency(scope, status, body, now).await
    }
    async fn release_idempotency(&self, scope: &str) -> Result<()> {
        self.shared.release_idempotency(scope).await
    }
}

#[async_trait]
impl SessionStore for SplitStore {
    async fn delete_idle_sessions(&self, before: i64) -> Result<u64> {
        self.sessions.delete_idle_sessions(before).await
    }
    async fn create_session(&self, s: &SessionRecord, events: Vec<Value>) -> Result<Vec<EventRecord>> {
        self.sessions.create_session(s, events).await
    }
    async fn create_session_with_turn(&self, s: &SessionRecord, turn: NewTurn) -> Result<std::result::Result<TurnWritten, Refusal>> {
        self.sessions.create_session_with_turn(s, turn).await
    }
    async fn session(&self, id: &str) -> Result<Option<SessionRecord>> {
        self.sessions.session(id).await
    }
    async fn messages(&self, session_id: &str) -> Result<Vec<MessageRecord>> {
        self.sessions.messages(session_id).await
    }
    async fn start_turn(&self, session_id: &str, turn: NewTurn) -> Result<std::result::Result<TurnWritten, Refusal>> {
        self.sessions.start_turn(session_id, turn).await
    }
    async fn run(&self, id: &str) -> Result<Option<RunRecord>> {
        self.sessions.run(id).await
    }
    async fn active_counts(&self, agent_id: &str, organization_id: &str) -> Result<ActiveCounts> {
        self.sessions.active_counts(agent_id, organization_id).await
    }
    async fn queue_position(&self, run: &RunRecord) -> Result<i64> {
        self.sessions.queue_position(run).await
    }
    async fn request_cancel(&self, run_id: &str) -> Result<()> {
        self.sessions.request_cancel(run_id).await
    }
    async fn list_sessions(&self, filter: &SessionFilter, sort: SessionSort, page: &PageWindow) -> Result<Vec<(SortVal, SessionRecord)>> {
        self.sessions.list_sessions(filter, sort, page).await
    }
    async fn rename_session(&self, id: &str, name: &str) -> Result<()> {
        self.sessions.rename_session(id, name).await
    }
    async fn first_event_of_run(&self, session_id: &str, run_id: &str) -> Result<Option<i64>> {
        self.sessions.first_event_of_run(session_id, run_id).await
    }
    async fn queued_messages(&self, session_id: &str) -> Result<Vec<QueuedMessageRecord>> {
        self.sessions.queued_messages(session_id).await
    }
    async fn enqueue_message(&self, m: &QueuedMessageRecord, max: i64) -> Result<bool> {
        self.sessions.enqueue_message(m, max).await
    }
    async fn edit_queued_message(&self, session_id: &str, id: &str, input: &str, now: i64) -> Result<bool> {
        self.sessions.edit_queued_message(session_id, id, input, now).await
    }
    async fn delete_queued_message(&self, session_id: &str, id: &str) -> Result<bool> {
        self.sessions.delete_queued_message(session_id, id).await
    }
    async fn insert_session_file(&self, f: &SessionFileRecord) -> Result<()> {
        self.sessions.insert_session_file(f).await
    }
    async fn session_files(&self, session_id: &str) -> Result<Vec<SessionFileRecord>> {
        self.sessions.session_files(session_id).await
    }
    async fn session_grants(&self, session_id: &str) -> Result<Vec<(String, String, String)>> {
        self.sessions.session_grants(session_id).await
    }
    async fn change_session_grants(&self, session_id: &str, upsert: &[(String, String, String)], remove: &[(String, String)]) -> Result<()> {
        self.sessions.change_session_grants(session_id, upsert, remove).await
    }
}

#[async_trait]
impl RunStore for SplitStore {
    async fn claim_run(&self, owner: &str, now: i64, lease_until: i64, limits: SlotLimits) -> Result<Option<ClaimedRun>> {
        self.sessions.claim_run(owner, now, lease_until, limits).await
    }
    async fn heartbeat(&self, run_id: &str, owner: &str, lease_until: i64) -> Result<bool> {
        self.sessions.heartbeat(run_id, owner, lease_until).await
    }
    async fn expired_runs(&self, now: i64) -> Result<Vec<(String, i64)>> {
        self.sessions.expired_runs(now).await
    }
    async fn requeue_run(&self, run_id: &str, available_at: i64) -> Result<()> {
        self.sessions.requeue_run(run_id, available_at).await
    }
    async fn release_all_leases(&self, owner_prefix: &str) -> Result<u64> {
        self.sessions.release_all_leases(owner_prefix).await
    }
    async fn run_steps(&self, run_id: &str) -> Result<Vec<StepRecord>> {
        self.sessions.run_steps(run_id).await
    }
    async fn update_run(&self, u: RunUpdate<'_>) -> Result<Option<Vec<EventRecord>>> {
        self.sessions.update_run(u).await
    }
    async fn active_run_counts(&self) -> Result<Vec<(String, i64)>> {
        self.shared.active_run_counts().await
    }
    async fn purge_events(&self, before: i64) -> Result<u64> {
        self.sessions.purge_events(before).await
    }
    async fn events_after(&self, session_id: &str, after: i64, limit: i64) -> Result<Vec<EventRecord>> {
        self.sessions.events_after(session_id, after, limit).await
    }
}

#[async_trait]
impl ArtifactStore for SplitStore {
    async fn add_artifact_version(&self, new_artifact: &ArtifactRecord, version: &ArtifactVersionRecord) -> Result<(ArtifactRecord, ArtifactVersionRecord)> {
        self.sessions.add_artifact_version(new_artifact, version).await
    }
    async fn artifact(&self, id: &str) -> Result<Option<ArtifactRecord>> {
        self.sessions.artifact(id).await
    }
    async fn artifact_versions(&self, artifact_id: &str) -> Result<Vec<ArtifactVersionRecord>> {
        self.sessions.artifact_versions(artifact_id).await
    }
    async fn list_artifacts(
        &self,
        filter: &ArtifactFilter,
        sort: ArtifactSort,
        page: &PageWindow,
    ) -> Result<Vec<(SortVal, ArtifactRecord, ArtifactVersionRecord)>> {
        self.sessions.list_artifacts(filter, sort, page).await
    }
    async fn delete_artifact(&self, id: &str, at: i64) -> Result<bool> {
        self.sessions.delete_artifact(id, at).await
    }
    async fn rename_artifact(&self, id: &str, name: Option<&str>) -> Result<()> {
        self.sessions.rename_artifact(id, name).await
    }
    async fn set_artifact_password(&self, id: &str, hash: &str) -> Result<()> {
        self.sessions.set_artifact_password(id, hash).await
    }
    async fn upsert_flow_file(&self, namespace: &str, f: &SessionFileRecord) -> Result<Option<String>> {
        self.sessions.upsert_flow_file(namespace, f).await
    }
    async fn flow_file(&self, namespace: &str, file_name: &str) -> Result<Option<SessionFileRecord>> {
        self.sessions.flow_file(namespace, file_name).await
    }
}

#[async_trait]
impl FlowStore for SplitStore {
    async fn ensure_workbook(&self, w: &WorkbookRecord) -> Result<()> {
        self.shared.ensure_workbook(w).await
    }
    async fn workbook(&self, id: &str) -> Result<Option<WorkbookRecord>> {
        self.shared.workbook(id).await
    }
    async fn list_workbooks(&self, owner: &FlowOwner) -> Result<Vec<WorkbookRecord>> {
        self.shared.list_workbooks(owner).await
    }
    async fn save_flow(&self, f: &FlowRecord) -> Result<FlowRecord> {
        self.shared.save_flow(f).await
    }
    async fn flow(&self, id: &str) -> Result<Option<FlowRecord>> {
        self.shared.flow(id).await
    }
    async fn flow_version(&self, id: &str, version: i64) -> Result<Option<FlowVersionRecord>> {
        self.shared.flow_version(id, version).await
    }
    async fn flow_versions(&self, id: &str) -> Result<Vec<FlowVersionRecord>> {
        self.shared.flow_versions(id).await
    }
    async fn list_flows(&self, owner: &FlowOwner) -> Result<Vec<FlowRecord>> {
        self.shared.list_flows(owner).await
    }
    async fn flows_in_workbook(&self, workbook_id: &str) -> Result<Vec<FlowRecord>> {
        self.shared.flows_in_workbook(workbook_id).await
    }
    async fn delete_flow(&self, id: &str, now: i64) -> Result<bool> {
        self.shared.delete_flow(id, now).await
    }
    async fn create_flow_run(&self, r: &FlowRunRecord) -> Result<()> {
        self.shared.create_flow_run(r).await
    }
    async fn flow_run(&self, id: &str) -> Result<Option<FlowRunRecord>> {
        self.shared.flow_run(id).await
    }
    async fn flow_run_status(&self, id: &str) -> Result<Option<FlowRunRecord>> {
        self.shared.flow_run_status(id).await
    }
    async fn recent_flow_runs(&self, flow_id: &str, limit: usize) -> Result<Vec<FlowRunRecord>> {
        self.shared.recent_flow_runs(flow_id, limit).await
    }
    async fn claim_flow_run(&self, owner: &str, now: i64, lease_until: i64) -> Result<Option<FlowRunRecord>> {
        self.shared.claim_flow_run(owner, now, lease_until).await
    }
    async fn heartbeat_flow_run(&self, id: &str, owner: &str, lease_until: i64) -> Result<bool> {
        self.shared.heartbeat_flow_run(id, owner, lease_until).await
    }
    async fn release_flow_leases(&self, owner_prefix: &str) -> Result<u64> {
        self.shared.release_flow_leases(owner_prefix).await
    }
    async fn move_flow_run(&self, id: &str, owner: Option<&str>, from: FlowRunState, to: FlowRunState, end: FlowRunEnd) -> Result<()> {
        self.shared.move_flow_run(id, owner, from, to, end).await
    }
    async fn request_flow_kill(&self, id: &str) -> Result<Option<FlowRunRecord>> {
        self.shared.request_flow_kill(id).await
    }
    async fn commit_flow_node(&self, owner: &str, r: &FlowNodeResult, log: Vec<String>) -> Result<bool> {
        self.shared.commit_flow_node(owner, r, log).await
    }
    async fn flow_node_results(&self, run_id: &str) -> Result<Vec<FlowNodeResult>> {
        self.shared.flow_node_results(run_id).await
    }
    async fn commit_flow_loop_item(&self, owner: &str, run_id: &str, node_id: &str, idx: i64, output: &Value, credit_cost: f64) -> Result<bool> {
        self.shared.commit_flow_loop_item(owner, run_id, node_id, idx, output, credit_cost).await
    }
    async fn flow_loop_items(&self, run_id: &str, node_id: &str, after_idx: i64, limit: usize) -> Result<Vec<(i64, Value, f64)>> {
        self.shared.flow_loop_items(run_id, node_id, after_idx, limit).await
    }
    async fn append_flow_log(&self, run_id: &str, lines: Vec<String>) -> Result<()> {
        self.shared.append_flow_log(run_id, lines).await
    }
    async fn flow_log(&self, run_id: &str) -> Result<Vec<String>> {
        self.shared.flow_log(run_id).await
    }
}

#[async_trait]
impl ExportStore for SplitStore {
    async fn add_ledger_entries(&self, entries: &[LedgerEntry]) -> Result<()> {
        self.shared.add_ledger_entries(entries).await
    }
    async fn create_export(&self, e: &DataExportRecord) -> Result<()> {
        self.shared.create_export(e).await
    }
    async fn data_export(&self, id: &str) -> Result<Option<DataExportRecord>> {
        self.shared.data_export(id).await
    }
    async fn claim_export(&self, owner: &str, now: i64, lease_until: i64) -> Result<Option<DataExportRecord>> {
        self.shared.claim_export(owner, now, lease_until).await
    }
    async fn release_export_leases(&self, owner_prefix: &str) -> Result<u64> {
        self.shared.release_export_leases(owner_prefix).await
    }
    async fn heartbeat_export(&self, id: &str, owner: &str, lease_until: i64) -> Result<bool> {
        self.shared.heartbeat_export(id, owner, lease_until).await
    }
    async fn finish_export(&self, id: &str, owner: &str, end: &ExportEnd) -> Result<bool> {
        self.shared.finish_export(id, owner, end).await
    }
    async fn expired_export_files(&self, now: i64) -> Result<Vec<(String, String)>> {
        self.shared.expired_export_files(now).await
    }
    async fn forget_export_file(&self, id: &str) -> Result<()> {
        self.shared.forget_export_file(id).await
    }
    async fn export_rows(&self, organization_id: &str, scope: &ExportScope, row: Box<dyn FnMut(ExportRow) -> bool + Send>) -> Result<u64> {
        self.shared.export_rows(organization_id, scope, row).await
    }
}

#[async_trait]
impl AuditStore for SplitStore {
    async fn record_audit(&self, r: &crate::audit::AuditRecord) -> Result<()> {
        self.shared.record_audit(r).await
    }
    async fn audit_events(&self, f: &crate::audit::AuditFilter, offset: usize, limit: usize) -> Result<(Vec<crate::audit::AuditRecord>, u64)> {
        self.shared.audit_events(f, offset, limit).await
    }
}

#[async_trait]
impl WebhookStore for SplitStore {
    async fn set_global_webhook(&self, url: Option<&str>, now: i64) -> Result<()> {
        self.shared.set_global_webhook(url, now).await
    }
    async fn claim_webhooks(&self, owner: &str, now: i64, lease_until: i64, limit: usize) -> Result<Vec<WebhookDelivery>> {
        self.shared.claim_webhooks(owner, now, lease_until, limit).await
    }
    async fn settle_webhook(&self, id: &str, owner: &str, delivered: bool, retry_at: Option<i64>, error: Option<&str>) -> Result<()> {
        self.shared.settle_webhook(id, owner, delivered, retry_at, error).await
    }
    async fn webhook_counts(&self) -> Result<Vec<(String, i64)>> {
        self.shared.webhook_counts().await
    }
    async fn release_webhook_leases(&self, owner_prefix: &str) -> Result<u64> {
        self.shared.release_webhook_leases(owner_prefix).await
    }
}

/// The catalogue is shared configuration, like agents.
#[async_trait]
impl McpServerStore for SplitStore {
    async fn create_mcp_server(&self, rec: &McpServerRecord) -> Result<bool> {
        self.shared.create_mcp_server(rec).await
    }
    async fn mcp_server(&self, scope: &str, id: &str) -> Result<Option<McpServerRecord>> {
        self.shared.mcp_server(scope, id).await
    }
    async fn mcp_servers(&self, scope: &str) -> Result<Vec<McpServerRecord>> {
        self.shared.mcp_servers(scope).await
    }
    async fn update_mcp_server(&self, rec: &McpServerRecord, expected_updated_at: i64) -> Result<bool> {
        self.shared.update_mcp_server(rec, expected_updated_at).await
    }
    async fn set_mcp_server_status(&self, scope: &str, id: &str, status: &str, tool_count: Option<i64>) -> Result<()> {
        self.shared.set_mcp_server_status(scope, id, status, tool_count).await
    }
    async fn delete_mcp_server(&self, scope: &str, id: &str) -> Result<bool> {
        self.shared.delete_mcp_server(scope, id).await
    }
}

/// Triggers are agent configuration: they live with the agents.
#[async_trait]
impl TriggerStore for SplitStore {
    async fn create_trigger(&self, t: &TriggerRecord) -> Result<()> {
        self.shared.create_trigger(t).await
    }
    async fn trigger(&self, id: &str) -> Result<Option<TriggerRecord>> {
        self.shared.trigger(id).await
    }
    async fn list_triggers(&self, agent_id: &str, page: &PageWindow) -> Result<Vec<(SortVal, TriggerRecord)>> {
        self.shared.list_triggers(agent_id, page).await
    }
    async fn update_trigger(&self, t: &TriggerRecord, expected_version: i64, reschedule: bool) -> Result<bool> {
        self.shared.update_trigger(t, expected_version, reschedule).await
    }
    async fn delete_trigger(&self, id: &str) -> Result<bool> {
        self.shared.delete_trigger(id).await
    }
    async fn due_triggers(&self, now: i64, limit: usize) -> Result<Vec<TriggerRecord>> {
        self.shared.due_triggers(now, limit).await
    }
    async fn claim_trigger_fire(&self, trigger_id: &str, expected_next: i64, advance: &ScheduleAdvance, run: &TriggerRunRecord) -> Result<bool> {
        self.shared.claim_trigger_fire(trigger_id, expected_next, advance, run).await
    }
    async fn record_trigger_delivery(&self, run: &TriggerRunRecord) -> Result<(TriggerRunRecord, bool)> {
        self.shared.record_trigger_delivery(run).await
    }
    async fn settle_trigger_run(&self, run_id: &str, started: bool, error: Option<&str>, now: i64) -> Result<()> {
        self.shared.settle_trigger_run(run_id, started, error, now).await
    }
    async fn pending_trigger_runs(&self, before: i64, limit: usize) -> Result<Vec<TriggerRunRecord>> {
        self.shared.pending_trigger_runs(before, limit).await
    }
    async fn trigger_run(&self, id: &str) -> Result<Option<TriggerRunRecord>> {
        self.shared.trigger_run(id).await
    }
    async fn list_trigger_runs(&self, trigger_id: &str, states: Option<&[String]>, page: &PageWindow) -> Result<Vec<(SortVal, TriggerRunView)>> {
        self.shared.list_trigger_runs(trigger_id, states, page).await
    }
    async fn trigger_stats(&self, trigger_id: &str) -> Result<TriggerStats> {
        self.shared.trigger_stats(trigger_id).await
    }
    async fn active_trigger_counts(&self, agent_ids: &[String]) -> Result<Vec<(String, i64)>> {
        self.shared.active_trigger_counts(agent_ids).await
    }
}

#[async_trait]
impl SkillStore for SplitStore {
    async fn create_skill(&self, skill: &SkillRecord, version: &SkillVersionRecord, files: &[SkillFileRecord]) -> Result<(SkillRecord, SkillVersionRecord)> {
        self.shared.create_skill(skill, version, files).await
    }
    async fn add_skill_version(
        &self,
        skill_id: &str,
        version: &SkillVersionRecord,
        files: &[SkillFileRecord],
    ) -> Result<Option<(SkillRecord, SkillVersionRecord)>> {
        self.shared.add_skill_version(skill_id, version, files).await
    }
    async fn skill(&self, id: &str) -> Result<Option<SkillRecord>> {
        self.shared.skill(id).await
    }
    async fn skill_version(&self, skill_id: &str, version_id: &str) -> Result<Option<SkillVersionRecord>> {
        self.shared.skill_version(skill_id, version_id).await
    }
    async fn skill_files(&self, version_id: &str) -> Result<Vec<SkillFileRecord>> {
        self.shared.skill_files(version_id).await
    }
    async fn list_skills(&self, filter: &SkillFilter) -> Result<Vec<(SkillRecord, SkillVersionRecord)>> {
        self.shared.list_skills(filter).await
    }
    async fn delete_skill(&self, id: &str, at: i64) -> Result<bool> {
        self.shared.delete_skill(id, at).await
    }
    async fn skill_grants(&self, skill_id: &str) -> Result<Vec<SkillGrant>> {
        self.shared.skill_grants(skill_id).await
    }
    async fn change_skill_grants(&self, skill_id: &str, upsert: &[SkillGrant], remove: &[(String, String)]) -> Result<()> {
        self.shared.change_skill_grants(skill_id, upsert, remove).await
    }
}
