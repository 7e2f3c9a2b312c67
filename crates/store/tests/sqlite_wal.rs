//! The SQLite write-ahead log stays bounded under sustained writes while readers are
//! always busy: the checkpoint thread (`sqlite/db.rs`) must keep starting the log over.
//! Before that thread worked, a busy server's WAL grew to 1.8 GiB.
//!
//! The test writes twice the bound through `update_run` (events, usage and the
//! assistant message, as the worker writes them) from several tasks while other tasks
//! read in a loop, and watches the `-wal` file from outside SQLite: its size, and the
//! checkpoint sequence number in its header, which moves each time the log restarts.

#[allow(dead_code)]
mod contract;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use contract::fixtures::*;
use serde_json::json;
use store::sqlite::SqliteStore;
use store::*;

const MIB: u64 = 1024 * 1024;
/// The largest the log may get: past 64 MiB (`journal_size_limit`) the writer itself
/// restarts the log before its next write, so the log holds at most that plus one batch
/// of writes, however far behind the checkpoint thread is on a loaded machine.
const WAL_BOUND: u64 = 128 * MIB;
/// Event payload to write: twice the bound, so a log that never restarts exceeds it.
const TO_WRITE: u64 = 2 * WAL_BOUND;
/// Bytes of text per event, and events per `update_run`.
const EVENT_TEXT: usize = 8 * 1024;
const EVENTS_PER_UPDATE: usize = 4;
const WRITERS: usize = 4;
const READERS: usize = 4;
const SESSIONS_PER_WRITER: usize = 2;
/// The whole run fails past this (a stuck writer or checkpointer).
const DEADLINE: Duration = Duration::from_secs(60);

/// What the watcher saw of the `-wal` file.
#[derive(Debug, Default)]
struct WalWatch {
    max_size: u64,
    /// Distinct checkpoint sequence numbers seen in the header, in order.
    restarts: Vec<u32>,
    samples: u64,
}

/// The WAL header: (page size, checkpoint sequence number), if the file has one.
fn wal_header(path: &Path) -> Option<(u32, u32)> {
    use std::io::Read;
    let mut h = [0u8; 32];
    std::fs::File::open(path).ok()?.read_exact(&mut h).ok()?;
    let word = |i: usize| u32::from_be_bytes([h[i], h[i + 1], h[i + 2], h[i + 3]]);
    matches!(word(0), 0x377f0682 | 0x377f0683).then(|| (word(8), word(12)))
}

/// Frames in the current log, from the WAL index (`-shm`): `mxFrame` of its header,
/// a native-endian u32 at offset 16. Reading it leaves the log alone (a checkpoint from
/// here would do the checkpoint thread's job for it).
fn shm_frames(path: &Path) -> Option<u32> {
    use std::io::Read;
    let mut h = [0u8; 20];
    std::fs::File::open(path).ok()?.read_exact(&mut h).ok()?;
    Some(u32::from_ne_bytes([h[16], h[17], h[18], h[19]]))
}

/// Samples the `-wal` file every few milliseconds until `stop`.
fn watch(path: PathBuf, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<WalWatch> {
    std::thread::spawn(move || {
        let mut w = WalWatch::default();
        while !stop.load(Ordering::Relaxed) {
            if let Ok(m) = std::fs::metadata(&path) {
                w.max_size = w.max_size.max(m.len());
            }
            if let Some((_, ckpt)) = wal_header(&path) {
                if w.restarts.last() != Some(&ckpt) {
                    w.restarts.push(ckpt);
                }
            }
            w.samples += 1;
            std::thread::sleep(Duration::from_millis(5));
        }
        w
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn wal_stays_bounded_under_writes_and_busy_readers() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let db_path = dir.path().join("openloop.db");
    let wal_path = dir.path().join("openloop.db-wal");
    let shm_path = dir.path().join("openloop.db-shm");
    let sqlite = SqliteStore::open(&format!("sqlite://{}", db_path.display())).await.expect("the SQLite store opens");
    let store: Arc<dyn Store> = Arc::new(sqlite.clone());
    let w = world(&*store).await;
    let mut runs = vec![];
    for _ in 0..WRITERS * SESSIONS_PER_WRITER {
        let (_, run) = session_with_run(&*store, &w.agent, &w.user, RunState::Processing).await;
        runs.push(run);
    }

    let stop_watch = Arc::new(AtomicBool::new(false));
    let watcher = watch(wal_path.clone(), stop_watch.clone());
    let started = Instant::now();
    let written = Arc::new(AtomicU64::new(0));
    let stop_reads = Arc::new(AtomicBool::new(false));

    // Readers: listing, event and point reads, back to back, so some read
    // transaction is nearly always open on the log.
    let mut readers = tokio::task::JoinSet::new();
    for run in runs.iter().take(READERS) {
        let (store, stop, agent_id, r, session_id) = (store.clone(), stop_reads.clone(), w.agent.id.clone(), reader(&w.user, &[]), run.session_id.clone());
        readers.spawn(async move {
            let filter = SessionFilter { agent_id, reader: r, own_team: None, states: None, kind: None, creator: None, search: None, trigger_id: None };
            let mut reads = 0u64;
            while !stop.load(Ordering::Relaxed) {
                match reads % 3 {
                    0 => drop(store.list_sessions(&filter, SessionSort::Created, &PageWindow { after: None, limit: 20, desc: true }).await.unwrap()),
                    1 => drop(store.events_after(&session_id, 0, 20).await.unwrap()),
                    _ => drop(store.session(&session_id).await.unwrap()),
                }
                reads += 1;
                tokio::task::yield_now().await;
            }
            reads
        });
    }

    // Writers: the worker's stream writes, each update a few events of text.
    let mut writers = tokio::task::JoinSet::new();
    for i in 0..WRITERS {
        let (store, written) = (store.clone(), written.clone());
        let mine: Vec<RunRecord> = runs[i * SESSIONS_PER_WRITER..(i + 1) * SESSIONS_PER_WRITER].to_vec();
        writers.spawn(async move {
            let replies: Vec<MessageRecord> = mine.iter().map(|r| assistant_message(r, "")).collect();
            let mut n = 0usize;
            while written.load(Ordering::Relaxed) < TO_WRITE {
                let k = n % mine.len();
                let text: String = std::iter::repeat_n(char::from(b'a' + (n % 26) as u8), EVENT_TEXT).collect();
                let events = (0..EVENTS_PER_UPDATE).map(|e| json!({"type": "text-delta", "id": format!("t{n}.{e}"), "delta": text})).collect();
                let reply = MessageRecord { content: Some(format!("reply {n}")), ..replies[k].clone() };
                let usage = json!({"input_tokens": 10, "output_tokens": 20, "credit_cost": 0.0001});
                let u = RunUpdate { events, message: Some(&reply), usage_delta: Some(&usage), ..RunUpdate::new(&mine[k].id, None) };
                store.update_run(u).await.unwrap().expect("the update is written");
                written.fetch_add((EVENT_TEXT * EVENTS_PER_UPDATE) as u64, Ordering::Relaxed);
                n += 1;
            }
            n
        });
    }
    let updates: usize = tokio::time::timeout(DEADLINE, writers.join_all()).await.expect("the writers finished in time").into_iter().sum();
    let write_time = started.elapsed();
    stop_reads.store(true, Ordering::Relaxed);
    let reads: u64 = readers.join_all().await.into_iter().sum();

    // Idle now: the checkpointer's next round copies the whole log into the database, so
    // a later commit starts the log over (SQLite restarts a fully copied log when no
    // reader is using it). Poll for that (one small write per round) rather than assume
    // how soon the checkpoint thread gets the CPU.
    let last = json!({"type": "text-delta", "delta": "last"});
    let mut log_frames = u32::MAX;
    for _ in 0..50 {
        tokio::time::sleep(Duration::from_millis(200)).await;
        store.update_run(RunUpdate { events: vec![last.clone()], ..RunUpdate::new(&runs[0].id, None) }).await.unwrap().expect("written");
        log_frames = shm_frames(&shm_path).expect("the WAL index is readable");
        if log_frames < 64 {
            break;
        }
    }
    stop_watch.store(true, Ordering::Relaxed);
    let seen = watcher.join().expect("the watcher ran");
    let (page_size, _) = wal_header(&wal_path).expect("the log has a header");
    let final_size = std::fs::metadata(&wal_path).map(|m| m.len()).unwrap_or(0);
    eprintln!(
        "{updates} updates ({} MiB of events) in {write_time:?}, {reads} reads; WAL: max {:.1} MiB, final {:.1} MiB, \
         {} header generations over {} samples; after the last write {log_frames} frames of {page_size} bytes",
        written.load(Ordering::Relaxed) / MIB,
        seen.max_size as f64 / MIB as f64,
        final_size as f64 / MIB as f64,
        seen.restarts.len(),
        seen.samples,
    );
    let events = all_events(&*store, &runs[0].session_id).await;
    assert!(events.windows(2).all(|p| p[1].seq == p[0].seq + 1), "the events were all written, in order");
    assert_eq!(events.last().map(|e| &e.data["delta"]), Some(&json!("last")));

    assert!(seen.max_size < WAL_BOUND, "the log stayed under {} MiB (max {} MiB)", WAL_BOUND / MIB, seen.max_size / MIB);
    assert!(final_size < WAL_BOUND);
    assert!(seen.restarts.len() >= 3, "the log started over again and again while readers were busy: {:?}", seen.restarts);
    assert!(log_frames < 64, "once idle the log was copied in full and started over: {log_frames} frames in it after one small write");
    sqlite.close().await;
}
