//! Embedded, ordered schema migrations. Each runs once, in its own transaction.

use rusqlite::{Connection, OptionalExtension};

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
    (11, "claim index, run counts", include_str!("0011_claim_index_run_counts.sql")),
    (12, "keyset listings", include_str!("0012_keyset_listings.sql")),
    (13, "flows", include_str!("0013_flows.sql")),
    (14, "flow loop items", include_str!("0014_flow_loop_items.sql")),
    (15, "credit ledger, data exports", include_str!("0015_credits_exports.sql")),
    (16, "audit log", include_str!("0016_audit.sql")),
    (17, "webhooks", include_str!("0017_webhooks.sql")),
    (18, "mcp server catalogue", include_str!("0018_mcp_servers.sql")),
    (19, "agent triggers", include_str!("0019_triggers.sql")),
    (20, "skills", include_str!("0020_skills.sql")),
];

pub(crate) fn run(conn: &mut Connection) -> Result<()> {
    conn.execute_batch("CREATE TABLE IF NOT EXISTS _migrations (version INTEGER PRIMARY KEY, description TEXT NOT NULL, applied_at INTEGER NOT NULL)")?;
    for (version, description, sql) in MIGRATIONS {
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let done: Option<i64> = tx.query_row("SELECT version FROM _migrations WHERE version = ?", [version], |r| r.get(0)).optional()?;
        if done.is_some() {
            continue;
        }
        tx.execute_batch(sql)?;
        tx.execute(
            "INSERT INTO _migrations (version, description, applied_at) VALUES (?, ?, ?)",
            rusqlite::params![version, description, wire::time::now_micros()],
        )?;
        tx.commit()?;
    }
    Ok(())
}
