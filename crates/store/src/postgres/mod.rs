//! PostgreSQL implementation (scale-out): several identical replicas share one database.
//!
//! Conventions (every file here follows them):
//! - Schema in `schema/NNNN_*.sql`, applied by `migrations.rs` under an advisory lock, so
//!   replicas starting together migrate once. Native types: ids `TEXT`, integers and
//!   timestamps `BIGINT` (the same units the SQLite store uses), flags `BOOLEAN`, amounts
//!   `DOUBLE PRECISION`, hashes `BYTEA`, JSON documents `JSONB` (bound and read as
//!   `serde_json::Value`); user-authored flow documents and streamed event payloads stay
//!   `TEXT` so they come back exactly as written.
//! - Every write runs in a transaction from [`PgStore::begin`] (it carries the audit
//!   context to the audit triggers). A rule that SQLite's single writer made safe is
//!   made safe here inside that transaction: the conditional write itself
//!   (`UPDATE … WHERE state = $from`), `INSERT … ON CONFLICT`, or a row lock
//!   (`SELECT … FOR UPDATE`) on the parent row before counting or numbering.
//! - Reads use the pool directly. Jobs and leases are claimed with `FOR UPDATE SKIP LOCKED`.

mod agents;
mod artifacts;
mod audit;
mod exports;
mod flows;
mod idempotency;
mod migrations;
mod notices;
mod ratelimits;
mod sessions;
mod tenancy;
mod webhooks;

use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{PgPool, Postgres, Transaction};

use crate::{Result, StoreError};

/// A store on one PostgreSQL database. Cloning shares the pool.
#[derive(Clone)]
pub struct PgStore {
    pool: PgPool,
}

/// The pool size when the URL does not say (`?pool_max=N`, an Openloop parameter removed
/// before connecting).
const DEFAULT_POOL: u32 = 16;

impl PgStore {
    /// Connects to `url` (`postgres://user:pass@host:port/db`) and migrates the schema.
    pub async fn open(url: &str) -> Result<Self> {
        let (url, pool_max) = split_pool_param(url);
        let options: PgConnectOptions = url.parse().map_err(StoreError::Pg)?;
        let options = options.application_name("openloop");
        let pool = PgPoolOptions::new().max_connections(pool_max).min_connections(1).acquire_timeout(Duration::from_secs(10)).connect_with(options).await?;
        migrations::run(&pool).await?;
        Ok(PgStore { pool })
    }

    /// The connection pool (reads).
    pub(crate) fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// A write transaction. When the current task acts for a user (an HTTP request), the
    /// acting user, source IP and user agent are set for this transaction only, where the
    /// audit triggers read them.
    pub(crate) async fn begin(&self) -> Result<Transaction<'static, Postgres>> {
        let mut tx = self.pool.begin().await?;
        if let Some(a) = crate::audit::current() {
            sqlx::query(
                "SELECT set_config('openloop.audit_user_id', $1, true), set_config('openloop.audit_source_ip', $2, true), set_config('openloop.audit_user_agent', $3, true)",
            )
            .bind(a.user_id.unwrap_or_default())
            .bind(a.source_ip.unwrap_or_default())
            .bind(a.user_agent.unwrap_or_default())
            .execute(&mut *tx)
            .await?;
        }
        Ok(tx)
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }
}

fn split_pool_param(url: &str) -> (String, u32) {
    let Some((base, query)) = url.split_once('?') else {
        return (url.to_string(), DEFAULT_POOL);
    };
    let mut pool = DEFAULT_POOL;
    let rest: Vec<&str> = query
        .split('&')
        .filter(|kv| match kv.strip_prefix("pool_max=") {
            Some(n) => {
                pool = n.parse().ok().filter(|n| *n > 0).unwrap_or(DEFAULT_POOL);
                false
            }
            None => !kv.is_empty(),
        })
        .collect();
    if rest.is_empty() {
        (base.to_string(), pool)
    } else {
        (format!("{base}?{}", rest.join("&")), pool)
    }
}

/// The SQLSTATE of a database error.
pub(crate) fn sqlstate(e: &sqlx::Error) -> Option<&str> {
    match e {
        sqlx::Error::Database(d) => d.code().map(|c| match c {
            std::borrow::Cow::Borrowed(s) => s,
            // Codes are five ASCII characters; PostgreSQL's driver lends them.
            std::borrow::Cow::Owned(_) => "",
        }),
        _ => None,
    }
}

/// The database cannot serve writes right now (connection lost, disk full, read-only,
/// shutting down, pool exhausted): retry later.
pub(crate) fn is_unavailable(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Io(_) | sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::WorkerCrashed => true,
        sqlx::Error::Database(d) => d.code().is_some_and(|c| c.starts_with("08") || c.starts_with("53") || c.starts_with("57P") || c == "25006"),
        _ => false,
    }
}

/// Unique-constraint violations become `Conflict`.
pub(crate) fn unique(e: sqlx::Error, what: &str) -> StoreError {
    if sqlstate(&e) == Some("23505") {
        StoreError::Conflict(what.to_string())
    } else {
        StoreError::Pg(e)
    }
}

/// A JSON column's value that does not have the shape the code expects.
pub(crate) fn corrupt(what: &str, e: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(format!("{what}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::split_pool_param;

    #[test]
    fn pool_parameter_is_removed_from_the_url() {
        assert_eq!(split_pool_param("postgres://a@h/db"), ("postgres://a@h/db".into(), 16));
        assert_eq!(split_pool_param("postgres://a@h/db?pool_max=4"), ("postgres://a@h/db".into(), 4));
        assert_eq!(split_pool_param("postgres://a@h/db?sslmode=disable&pool_max=4"), ("postgres://a@h/db?sslmode=disable".into(), 4));
        assert_eq!(split_pool_param("postgres://a@h/db?pool_max=x"), ("postgres://a@h/db".into(), 16));
    }
}
