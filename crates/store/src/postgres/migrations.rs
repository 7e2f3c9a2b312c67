//! Embedded, ordered schema migrations for PostgreSQL. All pending ones run in one
//! transaction holding an advisory lock, so replicas that start together migrate once.

use sqlx::PgPool;

use crate::Result;

const MIGRATIONS: &[(i64, &str, &str)] = &[
    (1, "tenancy, agents, idempotency, audit log, webhooks", include_str!("schema/0001_tenancy.sql")),
    (2, "sessions, runs, events, queue, files, artifacts", include_str!("schema/0002_sessions.sql")),
    (3, "flows, credit ledger, data exports", include_str!("schema/0003_flows_exports.sql")),
    (4, "webhook and audit triggers", include_str!("schema/0004_triggers.sql")),
    (5, "cross-replica notices, shared rate limits", include_str!("schema/0005_replicas.sql")),
    (6, "mcp server catalogue", include_str!("schema/0006_mcp_servers.sql")),
    (7, "agent triggers", include_str!("schema/0007_triggers_agent.sql")),
    (8, "skills", include_str!("schema/0008_skills.sql")),
];

/// Any constant: the lock's name among Openloop's advisory locks.
const MIGRATION_LOCK: i64 = 0x6f70_656e_6c6f_6f70;

/// Boxed as `Send`: without it rustc cannot prove the future `Send` for every lifetime
/// when it is awaited inside an `async_trait` method (a known higher-ranked lifetime
/// limitation with sqlx executors).
pub(crate) fn run(pool: &PgPool) -> futures::future::BoxFuture<'_, Result<()>> {
    Box::pin(run_inner(pool))
}

async fn run_inner(pool: &PgPool) -> Result<()> {
    let mut tx = pool.begin().await?;
    sqlx::query("SELECT pg_advisory_xact_lock($1)").bind(MIGRATION_LOCK).execute(&mut *tx).await?;
    sqlx::query("CREATE TABLE IF NOT EXISTS _migrations (version BIGINT PRIMARY KEY, description TEXT NOT NULL, applied_at BIGINT NOT NULL)")
        .execute(&mut *tx)
        .await?;
    for &(version, description, sql) in MIGRATIONS {
        let done: Option<i64> = sqlx::query_scalar("SELECT version FROM _migrations WHERE version = $1").bind(version).fetch_optional(&mut *tx).await?;
        if done.is_some() {
            continue;
        }
        sqlx::Executor::execute(&mut *tx, sqlx::raw_sql(sql)).await?;
        sqlx::query("INSERT INTO _migrations (version, description, applied_at) VALUES ($1, $2, $3)")
            .bind(version)
            .bind(description)
            .bind(wire::time::now_micros())
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await?;
    Ok(())
}
