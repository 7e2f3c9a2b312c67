//! The storage API: one trait per table family. Every backend implements all of them and
//! passes the same contract suite (`tests/contract`).

mod agents;
mod artifacts;
mod audit;
mod exports;
mod flows;
mod idempotency;
mod mcp_servers;
mod notices;
mod ratelimits;
mod runs;
mod sessions;
mod skills;
mod tenancy;
mod triggers;
mod webhooks;

pub use agents::AgentStore;
pub use artifacts::ArtifactStore;
pub use audit::AuditStore;
pub use exports::{ExportEnd, ExportRow, ExportStore};
pub use flows::{FlowRunEnd, FlowStore};
pub use idempotency::{IdempotencyClaim, IdempotencyStore};
pub use mcp_servers::{McpServerRecord, McpServerStore};
pub use notices::{Notice, NoticeStore};
pub use ratelimits::{GcraOutcome, RateLimitStore};
pub use runs::RunStore;
pub use sessions::SessionStore;
pub use skills::{SkillFileRecord, SkillFilter, SkillGrant, SkillRecord, SkillScope, SkillStore, SkillVersionRecord};
pub use tenancy::TenancyStore;
pub use triggers::{ScheduleAdvance, TriggerRecord, TriggerRunRecord, TriggerRunView, TriggerStats, TriggerStore};
pub use webhooks::{WebhookDelivery, WebhookStore};
