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
mod mcp_servers;
mod migrations;
mod notices;
mod ratelimits;
mod sessions;
mod skills;
mod tenancy;
mod triggers;
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

    /// One write statement in its own transaction (so it carries the audit context, as
    /// every write does); the rows it affected.
    pub(crate) async fn write_one<'q>(&self, q: sqlx::query::Query<'q, Postgres, sqlx::postgres::PgArguments>) -> Result<u64> {
        let mut tx = self.begin().await?;
        let n = q.execute(&mut *tx).await?.rows_affected();
        tx.commit().await?;
        Ok(n)
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

/// PostgreSQL cannot store U+0000 in `TEXT` (SQLSTATE 22021) or in a `JSONB` string
/// (22P05). Free text the server writes may contain it: it is stored with every NUL
/// replaced by U+FFFD. Borrowed (no allocation) when there is none.
pub(crate) fn pg_text(s: &str) -> std::borrow::Cow<'_, str> {
    if s.contains('\0') {
        std::borrow::Cow::Owned(s.replace('\0', "\u{FFFD}"))
    } else {
        std::borrow::Cow::Borrowed(s)
    }
}

/// [`pg_text`] for every string and every object key inside a JSON value. Borrowed when
/// nothing needs changing (the value is scanned first, cloned only when needed).
pub(crate) fn pg_json(v: &serde_json::Value) -> std::borrow::Cow<'_, serde_json::Value> {
    fn has_nul(v: &serde_json::Value) -> bool {
        match v {
            serde_json::Value::String(s) => s.contains('\0'),
            serde_json::Value::Array(a) => a.iter().any(has_nul),
            serde_json::Value::Object(o) => o.iter().any(|(k, v)| k.contains('\0') || has_nul(v)),
            _ => false,
        }
    }
    fn clean(v: &serde_json::Value) -> serde_json::Value {
        match v {
            serde_json::Value::String(s) => serde_json::Value::String(pg_text(s).into_owned()),
            serde_json::Value::Array(a) => serde_json::Value::Array(a.iter().map(clean).collect()),
            serde_json::Value::Object(o) => serde_json::Value::Object(o.iter().map(|(k, v)| (pg_text(k).into_owned(), clean(v))).collect()),
            other => other.clone(),
        }
    }
    if has_nul(v) {
        std::borrow::Cow::Owned(clean(v))
    } else {
        std::borrow::Cow::Borrowed(v)
    }
}

/// [`pg_json`] for JSON text stored as `TEXT` that queries cast to `jsonb` (agent
/// configs, audit details): every `\u0000` escape becomes `\ufffd` (and a raw NUL
/// U+FFFD), keys keep their order. Borrowed when there is nothing to change.
pub(crate) fn pg_json_text(s: &str) -> std::borrow::Cow<'_, str> {
    let s = pg_text(s);
    if !s.contains("\\u0000") {
        return s;
    }
    let mut out = String::with_capacity(s.len());
    let mut changed = false;
    let mut rest: &str = &s;
    while let Some(i) = rest.find('\\') {
        out.push_str(&rest[..i]);
        let esc = &rest[i..];
        if let Some(after) = esc.strip_prefix("\\u0000") {
            out.push_str("\\ufffd");
            changed = true;
            rest = after;
        } else {
            // Any other escape (`\\` included) is copied whole, so its second character
            // never starts an escape.
            let n = 1 + esc[1..].chars().next().map_or(0, char::len_utf8);
            out.push_str(&esc[..n]);
            rest = &esc[n..];
        }
    }
    if !changed {
        return s;
    }
    out.push_str(rest);
    std::borrow::Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use std::borrow::Cow;

    use serde_json::json;

    use super::{pg_json, pg_json_text, pg_text, split_pool_param};

    #[test]
    fn pool_parameter_is_removed_from_the_url() {
        assert_eq!(split_pool_param("postgres://a@h/db"), ("postgres://a@h/db".into(), 16));
        assert_eq!(split_pool_param("postgres://a@h/db?pool_max=4"), ("postgres://a@h/db".into(), 4));
        assert_eq!(split_pool_param("postgres://a@h/db?sslmode=disable&pool_max=4"), ("postgres://a@h/db?sslmode=disable".into(), 4));
        assert_eq!(split_pool_param("postgres://a@h/db?pool_max=x"), ("postgres://a@h/db".into(), 16));
    }

    #[test]
    fn pg_text_replaces_nul_and_borrows_otherwise() {
        assert!(matches!(pg_text("plain ✓"), Cow::Borrowed("plain ✓")));
        assert!(matches!(pg_text(""), Cow::Borrowed("")));
        let fixed = pg_text("a\0b\0");
        assert!(matches!(fixed, Cow::Owned(_)));
        assert_eq!(fixed, "a\u{FFFD}b\u{FFFD}");
        assert_eq!(pg_text("\0"), "\u{FFFD}");
    }

    #[test]
    fn pg_json_replaces_nul_in_strings_and_keys_and_borrows_otherwise() {
        let clean = json!({"a": [1, "x", {"b": null, "c": true}], "d": 2.5, "e": "é"});
        assert!(matches!(pg_json(&clean), Cow::Borrowed(_)));
        assert!(matches!(pg_json(&json!(null)), Cow::Borrowed(_)));
        let dirty = json!({"k\u{0}": [1, "x\u{0}y", {"b": "\u{0}", "c": true}], "d": 2.5, "e": "ok"});
        let fixed = pg_json(&dirty);
        assert!(matches!(fixed, Cow::Owned(_)));
        assert_eq!(*fixed, json!({"k\u{FFFD}": [1, "x\u{FFFD}y", {"b": "\u{FFFD}", "c": true}], "d": 2.5, "e": "ok"}));
        assert_eq!(*pg_json(&json!("\u{0}")), json!("\u{FFFD}"));
        assert_eq!(*pg_json(&json!(["a", "\u{0}"])), json!(["a", "\u{FFFD}"]));
    }

    #[test]
    fn pg_json_text_replaces_nul_escapes_and_keeps_key_order() {
        assert!(matches!(pg_json_text(r#"{"b":"x\\u0000","a":1}"#), Cow::Borrowed(_)), "an escaped backslash is not a NUL");
        assert!(matches!(pg_json_text(r#"{"b":"\u0001"}"#), Cow::Borrowed(_)));
        let text = serde_json::to_string(&json!({"z\u{0}": "a\u{0}b", "a": ["\u{0}", "\\u0000", "é\u{0}"]})).unwrap();
        let fixed = pg_json_text(&text);
        assert!(matches!(fixed, Cow::Owned(_)));
        let v: serde_json::Value = serde_json::from_str(&fixed).unwrap();
        assert_eq!(v, json!({"z\u{FFFD}": "a\u{FFFD}b", "a": ["\u{FFFD}", "\\u0000", "é\u{FFFD}"]}));
        assert_eq!(v.as_object().unwrap().keys().collect::<Vec<_>>(), ["z\u{FFFD}", "a"], "keys keep their order");
        assert_eq!(pg_json_text("\"\u{0}\""), "\"\u{FFFD}\"");
    }
}
