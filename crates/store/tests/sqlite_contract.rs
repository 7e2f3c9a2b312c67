//! The store contract (`tests/contract/`) run against SQLite: every test gets a new
//! database file in its own temporary directory; `open` opens one more `SqliteStore` on
//! it (its own writer thread and readers), as another process would.

mod contract;

use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use store::sqlite::SqliteStore;
use store::Store;

struct SqliteBackend {
    dir: tempfile::TempDir,
    opened: Mutex<Vec<SqliteStore>>,
}

impl SqliteBackend {
    fn new() -> Self {
        SqliteBackend { dir: tempfile::tempdir().expect("a temporary directory"), opened: Mutex::new(vec![]) }
    }
}

#[async_trait]
impl contract::Backend for SqliteBackend {
    async fn open(&self) -> Arc<dyn Store> {
        let url = format!("sqlite://{}", self.dir.path().join("openloop.db").display());
        let store = SqliteStore::open(&url).await.expect("the SQLite store opens");
        self.opened.lock().unwrap().push(store.clone());
        Arc::new(store)
    }

    async fn finish(&self) {
        let opened = std::mem::take(&mut *self.opened.lock().unwrap());
        for s in opened {
            s.close().await;
        }
    }
}

contract_suite!(SqliteBackend::new());
