//! E3 `GET /get_audit_logs` and the audit events the store cannot see as writes
//! (authentication failures, downloads). Everything else is recorded by the store in the
//! transaction of the action (see `store::audit`).

use serde_json::{json, Map, Value};
use store::audit::{AuditContext, AuditFilter, AuditRecord};
use wire::ApiError;

use crate::{db, Engine, KeyInfo};

fn flat(status: u16, s: &str) -> ApiError {
    ApiError::flat(status, s)
}

fn list(q: &Map<String, Value>, plural: &str, singular: &str) -> Vec<String> {
    [plural, singular]
        .iter()
        .filter_map(|k| q.get(*k).and_then(Value::as_str))
        .flat_map(|s| s.split(','))
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

impl Engine {
    /// Records an event outside a write the store audits itself (a download, a refused
    /// key), with the request's acting user and origin.
    pub async fn audit(
        &self,
        organization_id: &str,
        event_type: &str,
        ctx: Option<AuditContext>,
        workspace_id: Option<&str>,
        entity_id: Option<&str>,
        details: Value,
    ) {
        let ctx = ctx.or_else(store::audit::current).unwrap_or_default();
        let r = AuditRecord {
            id: wire::ids::new_id("evt"),
            organization_id: organization_id.to_string(),
            created_at: self.now(),
            event_type: event_type.to_string(),
            user_id: ctx.user_id,
            source_ip: ctx.source_ip,
            user_agent: ctx.user_agent,
            workspace_id: workspace_id.map(str::to_string),
            entity_id: entity_id.map(str::to_string),
            details: details.to_string(),
        };
        if let Err(e) = self.store.record_audit(&r).await {
            tracing::warn!(error = %e, event_type, "recording an audit event failed");
        }
    }

    /// A refused credential: recorded in the organization of the user the request named
    /// (`x-auth-key` / `user_id`), when there is one.
    pub async fn audit_auth_failed(&self, claimed_user: Option<&str>, ctx: AuditContext, path: &str) {
        let Some(u) = claimed_user else { return };
        if let Ok(Some(user)) = self.store.user(u).await {
            let ctx = AuditContext { user_id: Some(user.id.clone()), ..ctx };
            self.audit(&user.organization_id, "auth_failed", Some(ctx), None, None, json!({"path": path})).await;
        }
    }

    /// E3.
    pub async fn audit_logs(&self, key: &KeyInfo, q: &Map<String, Value>) -> Result<Value, ApiError> {
        let get = |k: &str| q.get(k).and_then(Value::as_str).map(str::trim).filter(|s| !s.is_empty());
        let (Some(org), Some(_), Some(start), Some(end)) = (get("organization_id"), get("user_id"), get("start_time"), get("end_time")) else {
            return Err(flat(400, "missing_parameters"));
        };
        let start = wire::time::parse(start).ok_or_else(|| flat(400, "invalid_date").detail("param", "start_time"))?;
        let mut end_us = wire::time::parse(end).ok_or_else(|| flat(400, "invalid_date").detail("param", "end_time"))?;
        if end.len() == 10 {
            end_us += 86_400_000_000 - 1;
        }
        let requester = self.export_requester(key, q).await?;
        if self.store.organization(org).await.map_err(db)?.is_none() || requester.organization_id != org {
            return Err(flat(404, "organization_not_found"));
        }
        let page = match get("page") {
            None => 1,
            Some(p) => p.parse::<usize>().ok().filter(|p| *p >= 1).ok_or_else(|| flat(400, "invalid_page"))?,
        };
        let page_size = match get("page_size") {
            None => 50,
            Some(p) => p.parse::<usize>().ok().filter(|p| (1..=500).contains(p)).ok_or_else(|| flat(400, "invalid_page_size"))?,
        };
        let filter = AuditFilter {
            organization_id: org.to_string(),
            start,
            end: end_us,
            event_types: list(q, "event_types", "event_type"),
            user_ids: list(q, "user_ids", ""),
            ip_addresses: list(q, "ip_addresses", "ip_address"),
            workspace_ids: list(q, "workspace_ids", "workspace_id"),
            entity_ids: list(q, "entity_ids", "entity_id"),
        };
        let (rows, total) = self.store.audit_events(&filter, (page - 1).saturating_mul(page_size), page_size).await.map_err(db)?;
        let logs: Vec<Value> = rows
            .into_iter()
            .map(|r| {
                json!({"event_id": r.id, "timestamp": wire::time::legacy(r.created_at), "event_type": r.event_type, "user_id": r.user_id,
                       "details": r.details, "source_ip": r.source_ip, "user_agent": r.user_agent})
            })
            .collect();
        Ok(json!({"audit_logs": logs, "total_count": total, "page": page, "page_size": page_size, "total_pages": total.div_ceil(page_size as u64)}))
    }
}
