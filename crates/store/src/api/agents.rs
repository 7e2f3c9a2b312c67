//! Agents and their versions.

use async_trait::async_trait;

use crate::*;

/// Agents and their versions.
#[async_trait]
pub trait AgentStore: Send + Sync {
    /// Creates the agent and its first version in one transaction.
    /// `Conflict` if the id is taken (also by a deleted agent).
    async fn create_agent(&self, agent: &AgentRecord, version: &AgentVersionRecord) -> Result<()>;
    /// Agent by id, including retired/deleted ones (callers decide visibility).
    async fn agent(&self, id: &str) -> Result<Option<AgentRecord>>;
    /// Live (active, not deleted) agents of exactly one tenant.
    async fn agents_in_tenant(&self, tenant: &Tenant) -> Result<Vec<AgentRecord>>;
    /// Writes a new state and a new version iff the stored version is `expected_version`.
    /// Returns false (and writes nothing) when the version moved.
    async fn update_agent(&self, agent: &AgentRecord, expected_version: i64, version: &AgentVersionRecord) -> Result<bool>;
    async fn delete_agent(&self, id: &str, at: i64) -> Result<bool>;
    async fn agent_versions(&self, agent_id: &str) -> Result<Vec<AgentVersionRecord>>;
    async fn agent_version(&self, agent_id: &str, version_id: &str) -> Result<Option<AgentVersionRecord>>;
    async fn touch_agent_used(&self, id: &str, at: i64) -> Result<()>;
}
