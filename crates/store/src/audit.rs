//! Who is acting, for the audit log: the HTTP layer scopes each request in an
//! [`AuditContext`]; every write the request makes carries it to the writer, where the
//! audit triggers read it, so an audited action and its audit row commit together.

use std::sync::{Arc, Mutex};

/// The acting user and where the request came from.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditContext {
    pub user_id: Option<String>,
    pub source_ip: Option<String>,
    pub user_agent: Option<String>,
}

tokio::task_local! {
    static AUDIT: Arc<Mutex<AuditContext>>;
}

/// Runs `f` with `ctx` as the audit context of every write it makes.
pub async fn scope<F: std::future::Future>(ctx: AuditContext, f: F) -> F::Output {
    AUDIT.scope(Arc::new(Mutex::new(ctx)), f).await
}

/// The current context when it names an acting user (writes outside requests, such as
/// the workers', are not user actions and are not audited).
pub fn current() -> Option<AuditContext> {
    AUDIT.try_with(|c| c.lock().ok().map(|g| g.clone())).ok().flatten().filter(|c| c.user_id.is_some())
}

/// Names the acting user once it is known (after the caller is resolved).
pub fn set_user(user_id: &str) {
    let _ = AUDIT.try_with(|c| {
        if let Ok(mut g) = c.lock() {
            g.user_id = Some(user_id.to_string());
        }
    });
}

/// One audit row (E3).
#[derive(Debug, Clone, PartialEq)]
pub struct AuditRecord {
    pub id: String,
    pub organization_id: String,
    pub created_at: i64,
    pub event_type: String,
    pub user_id: Option<String>,
    pub source_ip: Option<String>,
    pub user_agent: Option<String>,
    pub workspace_id: Option<String>,
    pub entity_id: Option<String>,
    /// JSON text.
    pub details: String,
}

/// E3 filters; empty lists match everything.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AuditFilter {
    pub organization_id: String,
    pub start: i64,
    pub end: i64,
    pub event_types: Vec<String>,
    pub user_ids: Vec<String>,
    pub ip_addresses: Vec<String>,
    pub workspace_ids: Vec<String>,
    pub entity_ids: Vec<String>,
}
