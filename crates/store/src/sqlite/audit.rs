use async_trait::async_trait;
use rusqlite::types::Value as SqlValue;
use rusqlite::{params, params_from_iter, Row};

use super::SqliteStore;
use crate::audit::{AuditFilter, AuditRecord};
use crate::{AuditStore, Result};

fn record_from(r: &Row) -> rusqlite::Result<AuditRecord> {
    Ok(AuditRecord {
        id: r.get("id")?,
        organization_id: r.get("organization_id")?,
        created_at: r.get("created_at")?,
        event_type: r.get("event_type")?,
        user_id: r.get("user_id")?,
        source_ip: r.get("source_ip")?,
        user_agent: r.get("user_agent")?,
        workspace_id: r.get("workspace_id")?,
        entity_id: r.get("entity_id")?,
        details: r.get("details")?,
    })
}

/// `WHERE …` and its arguments for a filter.
fn filter_sql(f: &AuditFilter) -> (String, Vec<SqlValue>) {
    let mut sql = "organization_id = ? AND created_at >= ? AND created_at <= ?".to_string();
    let mut args = vec![SqlValue::Text(f.organization_id.clone()), SqlValue::Integer(f.start), SqlValue::Integer(f.end)];
    for (col, list) in [
        ("event_type", &f.event_types),
        ("user_id", &f.user_ids),
        ("source_ip", &f.ip_addresses),
        ("workspace_id", &f.workspace_ids),
        ("entity_id", &f.entity_ids),
    ] {
        if !list.is_empty() {
            sql.push_str(&format!(" AND {col} IN ({})", vec!["?"; list.len()].join(", ")));
            args.extend(list.iter().map(|v| SqlValue::Text(v.clone())));
        }
    }
    (sql, args)
}

#[async_trait]
impl AuditStore for SqliteStore {
    async fn record_audit(&self, r: &AuditRecord) -> Result<()> {
        let r = r.clone();
        self.write(move |c| {
            c.prepare_cached(
                "INSERT INTO audit_log (id, organization_id, created_at, event_type, user_id, source_ip, user_agent, workspace_id, entity_id, details) \
                 VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            )?
            .execute(params![
                r.id,
                r.organization_id,
                r.created_at,
                r.event_type,
                r.user_id,
                r.source_ip,
                r.user_agent,
                r.workspace_id,
                r.entity_id,
                r.details
            ])?;
            Ok(())
        })
        .await
    }

    async fn audit_events(&self, f: &AuditFilter, offset: usize, limit: usize) -> Result<(Vec<AuditRecord>, u64)> {
        let (sql, args) = filter_sql(f);
        self.read_blocking(move |c| {
            let total: i64 = c.prepare(&format!("SELECT COUNT(*) FROM audit_log WHERE {sql}"))?.query_row(params_from_iter(args.iter()), |r| r.get(0))?;
            let mut page_args = args;
            page_args.push(SqlValue::Integer(limit as i64));
            page_args.push(SqlValue::Integer(offset as i64));
            let mut st = c.prepare(&format!("SELECT * FROM audit_log WHERE {sql} ORDER BY created_at DESC, id DESC LIMIT ? OFFSET ?"))?;
            let rows = st.query_map(params_from_iter(page_args), record_from)?.collect::<rusqlite::Result<Vec<_>>>()?;
            Ok((rows, total as u64))
        })
        .await
    }
}
