//! On SQLite, writes from threads marked as background work (run execution) wait behind
//! the API's: an accept that arrives behind a backlog of run steps is committed next,
//! not after the whole backlog (`sqlite/db.rs`, `Pending`).

#[allow(dead_code)]
mod contract;

use contract::fixtures::*;
use store::sqlite::SqliteStore;
use store::AgentStore;

/// Background writes queued at once, ahead of the API's one.
const BACKGROUND_WRITES: usize = 5000;

#[test]
fn an_api_write_overtakes_queued_background_writes() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let db_path = dir.path().join("openloop.db");
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a runtime");
    let store = rt.block_on(SqliteStore::open(&format!("sqlite://{}", db_path.display()))).expect("the SQLite store opens");
    let user = rt.block_on(async {
        let org = org(&store, "Acme").await;
        user(&store, &org).await
    });

    // The background thread queues every write in one poll, then reports the first commit.
    let (first_committed, first_committed_rx) = std::sync::mpsc::channel::<()>();
    let background = {
        let (store, user) = (store.clone(), user.clone());
        std::thread::spawn(move || {
            store::sqlite::mark_background_thread();
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a runtime");
            rt.block_on(futures::future::join_all((0..BACKGROUND_WRITES).map(|_| {
                let (store, first_committed) = (store.clone(), first_committed.clone());
                let (a, v) = agent_records(&user, None);
                async move {
                    store.create_agent(&a, &v).await.expect("a background write");
                    let _ = first_committed.send(());
                }
            })));
        })
    };
    first_committed_rx.recv().expect("the background writes start");
    let (api_agent, version) = agent_records(&user, None);
    rt.block_on(store.create_agent(&api_agent, &version)).expect("the API's write");
    background.join().expect("the background thread");
    rt.block_on(store.close());

    // Commit order is insertion order: how many background agents went in before the API's.
    let conn = rusqlite::Connection::open(&db_path).expect("the database opens");
    let before: i64 = conn
        .query_row("SELECT COUNT(*) FROM agents WHERE rowid < (SELECT rowid FROM agents WHERE id = ?)", [&api_agent.id], |r| r.get(0))
        .expect("the API's agent is stored");
    let total: i64 = conn.query_row("SELECT COUNT(*) FROM agents", [], |r| r.get(0)).expect("a count");
    assert_eq!(total, BACKGROUND_WRITES as i64 + 1, "every write committed");
    // In arrival order it would come after all of them; it waits for one batch at most.
    assert!(before < (BACKGROUND_WRITES / 2) as i64, "the API's write was committed after {before} of {BACKGROUND_WRITES} queued background writes");
}
