//! Durable state of Openloop: small traits per table family, implemented for SQLite
//! (embedded default) and PostgreSQL (scale-out: several replicas on one database).
//!
//! Architecture invariant: this crate knows SQL and nothing about HTTP or LLMs. Every
//! query that reads tenant data takes the tenant filter as an argument, so isolation is
//! enforced inside the database query itself. Dialect-specific SQL lives only under
//! `sqlite/` and `postgres/`.

pub mod api;
pub mod audit;
pub mod model;
pub mod postgres;
pub mod split;
pub mod sqlite;

pub use api::*;
pub use model::*;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A uniqueness constraint was violated (e.g. a caller-chosen id already exists).
    #[error("conflict: {0}")]
    Conflict(String),
    #[error("not found")]
    NotFound,
    #[error("database error: {0}")]
    Db(#[from] rusqlite::Error),
    #[error("database error: {0}")]
    Pg(#[from] sqlx::Error),
    #[error("corrupt row: {0}")]
    Corrupt(String),
    /// A state transition whose `from` no longer holds: someone else moved the run
    /// first. Nothing was written; the caller re-reads and decides.
    #[error("refused: the run is {actual}, not {expected}")]
    Refused { expected: &'static str, actual: String },
}

impl StoreError {
    /// The database cannot write right now (disk full, read-only, I/O error): the caller
    /// should retry later, not report a bug.
    pub fn is_unavailable(&self) -> bool {
        use rusqlite::ErrorCode as C;
        match self {
            StoreError::Db(rusqlite::Error::SqliteFailure(e, _)) => matches!(e.code, C::DiskFull | C::ReadOnly | C::SystemIoFailure | C::CannotOpen),
            StoreError::Pg(e) => postgres::is_unavailable(e),
            _ => false,
        }
    }

    /// A unique or primary-key constraint failed.
    pub fn is_unique_violation(&self) -> bool {
        match self {
            StoreError::Db(rusqlite::Error::SqliteFailure(e, _)) => {
                e.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE || e.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_PRIMARYKEY
            }
            StoreError::Pg(e) => postgres::sqlstate(e) == Some("23505"),
            _ => false,
        }
    }

    /// An equivalent error (errors are not `Clone`; a batch's commit error reaches every job).
    pub fn duplicate(&self) -> StoreError {
        match self {
            StoreError::Conflict(w) => StoreError::Conflict(w.clone()),
            StoreError::NotFound => StoreError::NotFound,
            StoreError::Db(rusqlite::Error::SqliteFailure(e, m)) => StoreError::Db(rusqlite::Error::SqliteFailure(*e, m.clone())),
            StoreError::Refused { expected, actual } => StoreError::Refused { expected, actual: actual.clone() },
            other => StoreError::Corrupt(other.to_string()),
        }
    }
}

pub type Result<T> = std::result::Result<T, StoreError>;

/// The database a URL names: `sqlite://path` (embedded, one process) or
/// `postgres://…` / `postgresql://…` (shared by several replicas).
#[derive(Clone)]
pub enum Database {
    Sqlite(sqlite::SqliteStore),
    Postgres(postgres::PgStore),
}

impl Database {
    /// True for the URL schemes [`Database::open`] accepts.
    pub fn supports(url: &str) -> bool {
        url.starts_with("sqlite:") || is_postgres_url(url)
    }

    /// Opens (and migrates) the database `url` names.
    pub async fn open(url: &str) -> Result<Self> {
        if is_postgres_url(url) {
            Ok(Database::Postgres(postgres::PgStore::open(url).await?))
        } else {
            Ok(Database::Sqlite(sqlite::SqliteStore::open(url).await?))
        }
    }

    pub fn store(&self) -> std::sync::Arc<dyn Store> {
        match self {
            Database::Sqlite(s) => std::sync::Arc::new(s.clone()),
            Database::Postgres(s) => std::sync::Arc::new(s.clone()),
        }
    }

    /// Several processes may use this database at once: a starting process must not
    /// take over leases it did not hold (another replica's); expired ones are reaped.
    pub fn is_shared(&self) -> bool {
        matches!(self, Database::Postgres(_))
    }

    pub async fn close(&self) {
        match self {
            Database::Sqlite(s) => s.close().await,
            Database::Postgres(s) => s.close().await,
        }
    }
}

fn is_postgres_url(url: &str) -> bool {
    url.starts_with("postgres://") || url.starts_with("postgresql://")
}

/// The URL with any password replaced by `***`, for messages and logs.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else { return url.to_string() };
    let (authority, tail) = match rest.find('/') {
        Some(i) => rest.split_at(i),
        None => (rest, ""),
    };
    match authority.rsplit_once('@') {
        Some((creds, host)) if creds.contains(':') => {
            let user = creds.split(':').next().unwrap_or("");
            format!("{scheme}://{user}:***@{host}{tail}")
        }
        _ => url.to_string(),
    }
}

/// Everything the engine needs from storage.
pub trait Store:
    TenancyStore
    + AgentStore
    + IdempotencyStore
    + SessionStore
    + RunStore
    + ArtifactStore
    + FlowStore
    + ExportStore
    + AuditStore
    + WebhookStore
    + McpServerStore
    + NoticeStore
    + RateLimitStore
    + TriggerStore
    + SkillStore
    + Send
    + Sync
{
}
impl<
        T: TenancyStore
            + AgentStore
            + IdempotencyStore
            + SessionStore
            + RunStore
            + ArtifactStore
            + FlowStore
            + ExportStore
            + AuditStore
            + WebhookStore
            + McpServerStore
            + NoticeStore
            + RateLimitStore
            + TriggerStore
            + SkillStore
            + Send
            + Sync,
    > Store for T
{
}

#[cfg(test)]
mod url_tests {
    #[test]
    fn passwords_are_redacted() {
        assert_eq!(super::redact_url("postgres://u:secret@h:5432/db?x=1"), "postgres://u:***@h:5432/db?x=1");
        assert_eq!(super::redact_url("postgres://u@h/db"), "postgres://u@h/db");
        assert_eq!(super::redact_url("sqlite:///tmp/a.db"), "sqlite:///tmp/a.db");
        assert!(super::Database::supports("postgresql://h/db") && super::Database::supports("sqlite://x") && !super::Database::supports("mysql://h"));
    }
}
