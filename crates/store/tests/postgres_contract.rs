//! The store contract (`tests/contract/`) run against PostgreSQL: every test gets a new
//! database in the cluster named by `OPENLOOP_TEST_POSTGRES_URL` (an administrator URL;
//! `scripts/test` starts a throwaway cluster and sets it); `open` opens one more
//! `PgStore` on it (its own pool), as another replica would. Without the variable the
//! tests say so and pass: `scripts/test` and CI always set it.

mod contract;

use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use store::postgres::PgStore;
use store::Store;

const URL_VAR: &str = "OPENLOOP_TEST_POSTGRES_URL";

struct PgBackend {
    url: Option<String>,
    opened: Mutex<Vec<PgStore>>,
}

/// `postgres://…/postgres` → `postgres://…/<db>` (keeps any query string).
fn with_database(admin: &str, db: &str) -> String {
    let (base, query) = admin.split_once('?').map(|(b, q)| (b, Some(q))).unwrap_or((admin, None));
    let root = base.rsplit_once('/').map(|(r, _)| r).unwrap_or(base);
    match query {
        Some(q) => format!("{root}/{db}?{q}"),
        None => format!("{root}/{db}"),
    }
}

impl PgBackend {
    async fn new() -> Self {
        let Ok(admin) = std::env::var(URL_VAR) else {
            eprintln!("{URL_VAR} is not set: PostgreSQL contract not run (scripts/test starts a cluster)");
            return PgBackend { url: None, opened: Mutex::new(vec![]) };
        };
        let db = format!("contract_{}", wire::ids::random_base62(12).to_lowercase());
        let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(&admin).await.expect("the PostgreSQL test cluster answers");
        sqlx::query(&format!("CREATE DATABASE {db}")).execute(&mut conn).await.expect("a test database");
        PgBackend { url: Some(with_database(&admin, &db)), opened: Mutex::new(vec![]) }
    }
}

#[async_trait]
impl contract::Backend for PgBackend {
    async fn open(&self) -> Arc<dyn Store> {
        let url = self.url.as_ref().expect("open is called only when the cluster is configured");
        let store = PgStore::open(url).await.expect("the PostgreSQL store opens");
        self.opened.lock().unwrap().push(store.clone());
        Arc::new(store)
    }

    fn enabled(&self) -> bool {
        self.url.is_some()
    }

    async fn finish(&self) {
        let opened = std::mem::take(&mut *self.opened.lock().unwrap());
        for s in opened {
            s.close().await;
        }
    }
}

contract_suite!(PgBackend::new().await);
