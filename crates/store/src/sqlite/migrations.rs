//! Embedded, ordered schema migrations. Each runs once, in its own transaction.

use sqlx::SqlitePool;

use crate::Result;

const MIGRATIONS: &[(i64, &str, &str)] = &[
    (1, "tenancy and agents", include_str!("0001_init.sql")),
    (2, "idempotency keys", include_str!("0002_idempotency.sql")),
    (3, "sessions, runs, jobs, events", include_str!("0003_sessions.sql")),
    (4, "session queue and files", include_str!("0004_queue_files.sql")),
    (5, "artifacts", include_str!("0005_artifacts.sql")),
    (6, "session grants", include_str!("0006_grants.sql")),
    (7, "flow files", include_str!("0007_flow_files.sql")),
    (8, "event retention", include_str!("0008_event_retention.sql")),
    (9, "mcp sessions", include_str!("0009_mcp_sessions.sql")),
    (10, "health probe", include_str!("0010_health.sql")),
];

pub(crate) async fn run(pool: &SqlitePool) -> Result<()> {
    sqlx::query("CREATE TABLE IF NOT EXISTS _migrations (version INTEGER PRIMARY KEY, description TEXT NOT NULL, applied_at INTEGER NOT NULL)")
        .execute(pool)
        .await?;
    for (version, description, sql) in MIGRATIONS {
        let mut tx = pool.begin_with("BEGIN IMMEDIATE").await?;
        let done: Option<i64> = sqlx::query_scalar("SELECT version FROM _migrations WHERE version = ?").bind(version).fetch_optional(&mut *tx).await?;
        if done.is_some() {
            continue;
        }
        sqlx::raw_sql(sql).execute(&mut *tx).await?;
        sqlx::query("INSERT INTO _migrations (version, description, applied_at) VALUES (?, ?, ?)")
            .bind(version)
            .bind(description)
            .bind(wire_now())
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
    }
    Ok(())
}

fn wire_now() -> i64 {
    wire::time::now_micros()
}
