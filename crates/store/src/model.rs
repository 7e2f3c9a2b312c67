//! Rows as the engine sees them. Times are microseconds since the Unix epoch.

use serde::{Deserialize, Serialize};
use serde_json::Value;

#[derive(Debug, Clone, PartialEq)]
pub struct Organization {
    pub id: String,
    pub name: String,
    pub created_at: i64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct User {
    pub id: String,
    pub organization_id: String,
    pub email: Option<String>,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    /// `admin` | `member`
    pub org_role: String,
    pub created_at: i64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Team {
    pub id: String,
    pub organization_id: String,
    pub name: String,
    pub created_at: i64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ApiKey {
    pub id: String,
    pub secret_hash: Vec<u8>,
    /// First 8 characters of the secret: safe to display.
    pub prefix: String,
    pub name: Option<String>,
    /// Personal key owner.
    pub user_id: Option<String>,
    /// Team key team.
    pub team_id: Option<String>,
    pub created_by: Option<String>,
    pub created_at: i64,
    pub revoked_at: Option<i64>,
}

/// A workspace: a user's personal workspace or a team.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Tenant {
    Personal(String),
    Team(String),
}

/// The mutable configuration of an agent (what versions freeze, plus placement).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct AgentConfig {
    pub name: String,
    pub description: Option<String>,
    pub model_name: String,
    pub system_prompt: Option<String>,
    #[serde(default)]
    pub tools: Vec<Value>,
    #[serde(default)]
    pub resources: Vec<Value>,
    #[serde(default)]
    pub metadata: serde_json::Map<String, Value>,
    #[serde(default)]
    pub skill_ids: Vec<String>,
    #[serde(default)]
    pub knowledge_sources: Vec<Value>,
    pub folder_id: Option<String>,
    #[serde(default)]
    pub incognito: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct AgentRecord {
    pub id: String,
    /// Personal owner (also set for team agents: the creator).
    pub owner_user_id: String,
    pub team_id: Option<String>,
    pub creator_user_id: String,
    pub config: AgentConfig,
    pub version: i64,
    pub is_active: bool,
    pub deleted_at: Option<i64>,
    pub created_at: i64,
    pub last_updated_at: i64,
    pub last_used_at: Option<i64>,
}

/// A frozen version: the config plus placement fields that G7 reports as value changes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AgentSnapshot {
    pub config: AgentConfig,
    pub team_id: Option<String>,
    pub is_active: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct AgentVersionRecord {
    pub id: String,
    pub agent_id: String,
    pub major_version: i64,
    pub snapshot: AgentSnapshot,
    pub creator_user_id: Option<String>,
    pub created_at: i64,
}
