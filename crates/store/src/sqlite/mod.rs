//! SQLite implementation (the embedded default): WAL, one writer thread that commits
//! concurrent writes together, a pool of read-only connections. See `db.rs` for why.

mod agents;
mod artifacts;
mod audit;
mod db;
pub use db::mark_background_thread;
mod exports;
mod flows;
mod idempotency;
mod mcp_servers;
mod migrations;
mod sessions;
mod skills;
mod tenancy;
mod triggers;
mod webhooks;

use std::sync::Arc;

use rusqlite::Connection;

use crate::{Result, StoreError};

/// One process owns the database: nothing to hear from others.
impl crate::NoticeStore for SqliteStore {}
/// One process: its limiter's buckets are the only ones.
impl crate::RateLimitStore for SqliteStore {}

#[derive(Clone)]
pub struct SqliteStore {
    db: Arc<db::Db>,
}

impl SqliteStore {
    /// Opens (creating if needed) the database at `url` (`sqlite://path`, or a
    /// `sqlite:file:…?mode=memory&cache=shared` URI) and runs migrations.
    pub async fn open(url: &str) -> Result<Self> {
        let url = url.to_string();
        let db = tokio::task::spawn_blocking(move || db::Db::open(&url, migrations::run))
            .await
            .map_err(|e| StoreError::Corrupt(format!("opening the database panicked: {e}")))??;
        Ok(SqliteStore { db: Arc::new(db) })
    }

    /// A write transaction (see `Db::write`).
    pub(crate) async fn write<T: Send + 'static>(&self, f: impl FnOnce(&Connection) -> Result<T> + Send + 'static) -> Result<T> {
        // The request's acting user travels with the job to the audit triggers.
        let ctx = crate::audit::current();
        self.db
            .write(move |c| {
                db::apply_audit_ctx(c, ctx.as_ref())?;
                f(c)
            })
            .await
    }

    /// A point read on a snapshot (see `Db::read`).
    pub(crate) async fn read<T: Send + 'static>(&self, f: impl FnOnce(&Connection) -> Result<T> + Send + 'static) -> Result<T> {
        self.db.read(f).await
    }

    /// A read whose size grows with the data, on a blocking thread (see `Db::read_blocking`).
    pub(crate) async fn read_blocking<T: Send + 'static>(&self, f: impl FnOnce(&Connection) -> Result<T> + Send + 'static) -> Result<T> {
        self.db.read_blocking(f).await
    }

    pub async fn close(&self) {
        let db = self.db.clone();
        let _ = tokio::task::spawn_blocking(move || db.close()).await;
    }
}

/// Unique-constraint violations become `Conflict`.
pub(crate) fn unique(e: rusqlite::Error, what: &str) -> StoreError {
    let e = StoreError::from(e);
    if e.is_unique_violation() {
        StoreError::Conflict(what.to_string())
    } else {
        e
    }
}
