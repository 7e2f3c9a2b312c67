//! SQLite implementation: WAL, one writer connection (every write is `BEGIN IMMEDIATE`),
//! a small pool of reader connections.

mod agents;
mod artifacts;
mod idempotency;
mod migrations;
mod sessions;
mod tenancy;

use std::str::FromStr;
use std::time::Duration;

use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Sqlite, SqlitePool, Transaction};

use crate::{Result, StoreError};

#[derive(Clone)]
pub struct SqliteStore {
    writer: SqlitePool,
    reader: SqlitePool,
}

impl SqliteStore {
    /// Opens (creating if needed) the database at `url` (`sqlite://path`) and runs
    /// migrations.
    pub async fn open(url: &str) -> Result<Self> {
        let opts = SqliteConnectOptions::from_str(url)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            // WAL + NORMAL: durable across process crashes (kill -9); an OS crash may
            // lose the last transactions but never corrupts the database.
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(Duration::from_secs(10))
            .foreign_keys(true)
            .pragma("temp_store", "memory")
            .pragma("cache_size", "-16000");
        let writer = SqlitePoolOptions::new().max_connections(1).min_connections(1).idle_timeout(None).max_lifetime(None).connect_with(opts.clone()).await?;
        migrations::run(&writer).await?;
        let reader =
            SqlitePoolOptions::new().max_connections(4).min_connections(1).idle_timeout(None).max_lifetime(None).connect_with(opts.read_only(true)).await?;
        Ok(SqliteStore { writer, reader })
    }

    pub(crate) async fn write_tx(&self) -> Result<Transaction<'static, Sqlite>> {
        match self.writer.begin_with("BEGIN IMMEDIATE").await {
            Ok(tx) => Ok(tx),
            Err(first) => {
                // A COMMIT that failed (disk full, I/O error) can leave the writer
                // connection believing it is still inside a transaction, which would
                // refuse every later write. Replace the connection and try once more.
                tracing::warn!(error = %first, "starting a write transaction failed; reopening the writer connection");
                if let Ok(mut conn) = self.writer.acquire().await {
                    conn.close_on_drop();
                }
                Ok(self.writer.begin_with("BEGIN IMMEDIATE").await?)
            }
        }
    }

    pub async fn close(&self) {
        self.reader.close().await;
        self.writer.close().await;
    }
}

/// Maps unique-constraint violations to `Conflict`.
pub(crate) fn map_unique(e: sqlx::Error, what: &str) -> StoreError {
    if let sqlx::Error::Database(db) = &e {
        if db.is_unique_violation() {
            return StoreError::Conflict(what.to_string());
        }
    }
    StoreError::Db(e)
}
