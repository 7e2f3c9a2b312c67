use async_trait::async_trait;
use sqlx::postgres::PgRow;
use sqlx::Row;

use std::borrow::Cow;

use super::{pg_json_text, pg_text, PgStore};
use crate::audit::{AuditFilter, AuditRecord};
use crate::{AuditStore, Result};

fn record_from(r: &PgRow) -> sqlx::Result<AuditRecord> {
    Ok(AuditRecord {
        id: r.try_get("id")?,
        organization_id: r.try_get("organization_id")?,
        created_at: r.try_get("created_at")?,
        event_type: r.try_get("event_type")?,
        user_id: r.try_get("user_id")?,
        source_ip: r.try_get("source_ip")?,
        user_agent: r.try_get("user_agent")?,
        workspace_id: r.try_get("workspace_id")?,
        entity_id: r.try_get("entity_id")?,
        details: r.try_get("details")?,
    })
}

/// `WHERE …` of a filter: `$1` organization, `$2`/`$3` the time range, `$4`…`$8` the
/// lists (an empty list matches everything).
const FILTER: &str = "organization_id = $1 AND created_at >= $2 AND created_at <= $3 \
    AND (cardinality($4::text[]) = 0 OR event_type = ANY($4)) \
    AND (cardinality($5::text[]) = 0 OR user_id = ANY($5)) \
    AND (cardinality($6::text[]) = 0 OR source_ip = ANY($6)) \
    AND (cardinality($7::text[]) = 0 OR workspace_id = ANY($7)) \
    AND (cardinality($8::text[]) = 0 OR entity_id = ANY($8))";

fn bind_filter<'q>(
    q: sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments>,
    f: &'q AuditFilter,
) -> sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments> {
    q.bind(&f.organization_id).bind(f.start).bind(f.end).bind(&f.event_types).bind(&f.user_ids).bind(&f.ip_addresses).bind(&f.workspace_ids).bind(&f.entity_ids)
}

/// The filter with a NUL in any of its strings replaced (they come from the request):
/// it matches like U+FFFD instead of failing. Borrowed when there is none.
fn clean_filter(f: &AuditFilter) -> Cow<'_, AuditFilter> {
    let lists = [&f.event_types, &f.user_ids, &f.ip_addresses, &f.workspace_ids, &f.entity_ids];
    if !f.organization_id.contains('\0') && lists.iter().all(|l| l.iter().all(|s| !s.contains('\0'))) {
        return Cow::Borrowed(f);
    }
    let clean = |l: &[String]| l.iter().map(|s| pg_text(s).into_owned()).collect::<Vec<_>>();
    Cow::Owned(AuditFilter {
        organization_id: pg_text(&f.organization_id).into_owned(),
        start: f.start,
        end: f.end,
        event_types: clean(&f.event_types),
        user_ids: clean(&f.user_ids),
        ip_addresses: clean(&f.ip_addresses),
        workspace_ids: clean(&f.workspace_ids),
        entity_ids: clean(&f.entity_ids),
    })
}

#[async_trait]
impl AuditStore for PgStore {
    async fn record_audit(&self, r: &AuditRecord) -> Result<()> {
        let mut tx = self.begin().await?;
        sqlx::query(
            "INSERT INTO audit_log (id, organization_id, created_at, event_type, user_id, source_ip, user_agent, workspace_id, entity_id, details) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10::jsonb)",
        )
        .bind(&r.id)
        .bind(&r.organization_id)
        .bind(r.created_at)
        .bind(pg_text(&r.event_type))
        .bind(r.user_id.as_deref().map(pg_text))
        .bind(r.source_ip.as_deref().map(pg_text))
        .bind(r.user_agent.as_deref().map(pg_text))
        .bind(r.workspace_id.as_deref().map(pg_text))
        .bind(r.entity_id.as_deref().map(pg_text))
        .bind(pg_json_text(&r.details))
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn audit_events(&self, f: &AuditFilter, offset: usize, limit: usize) -> Result<(Vec<AuditRecord>, u64)> {
        let f = clean_filter(f);
        let f = &*f;
        // One snapshot for the count and the page, like SQLite's read transaction.
        let mut tx = self.pool().begin().await?;
        sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY").execute(&mut *tx).await?;
        let count_sql = format!("SELECT COUNT(*) AS n FROM audit_log WHERE {FILTER}");
        let total: i64 = bind_filter(sqlx::query(&count_sql), f).fetch_one(&mut *tx).await?.try_get("n")?;
        let page_sql = format!(
            "SELECT id, organization_id, created_at, event_type, user_id, source_ip, user_agent, workspace_id, entity_id, details::text AS details \
             FROM audit_log WHERE {FILTER} ORDER BY created_at DESC, id DESC LIMIT $9 OFFSET $10"
        );
        let rows = bind_filter(sqlx::query(&page_sql), f).bind(limit as i64).bind(offset as i64).fetch_all(&mut *tx).await?;
        tx.commit().await?;
        let rows = rows.iter().map(record_from).collect::<sqlx::Result<Vec<_>>>()?;
        Ok((rows, total as u64))
    }
}
