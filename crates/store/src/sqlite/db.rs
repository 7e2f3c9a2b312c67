//! The SQLite engine room: one writer thread that owns the only write connection and
//! commits concurrent write jobs together (group commit), and a small pool of read-only
//! connections used from blocking threads, so reads never wait on the writer (WAL).
//!
//! Why rusqlite and not sqlx here: sqlx runs every statement as a round trip to a
//! per-connection worker thread (a channel hop and a context switch per statement); a
//! run needs about 30 statements on the single writer, which capped throughput at ~300
//! runs/s with the writer thread saturated. Here a whole transaction (and a whole batch
//! of them) is one closure executed on the writer thread, with cached prepared statements.

use std::sync::mpsc;
use std::sync::Mutex;
use std::time::Duration;

use rusqlite::{Connection, OpenFlags};

use crate::{Result, StoreError};

/// A write job's deferred answer: called with the batch's commit error, if any.
type Deliver = Box<dyn FnOnce(Option<&StoreError>) + Send>;
/// A write job: runs inside the batch transaction (under its own savepoint) and says
/// whether it succeeded (a failed job's savepoint is rolled back) and how to answer.
/// Called with `None` when the batch could not start: it then only answers.
type Job = Box<dyn FnOnce(Option<&Connection>) -> (bool, Deliver) + Send>;

/// A job and whether it is background work (runs executing), which yields to the rest.
type Queued = (bool, Job);

thread_local! {
    /// Set on threads that execute runs: their writes wait behind API requests' writes.
    static BACKGROUND_THREAD: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Marks the calling thread as one that executes background work (runs, flows, exports):
/// on SQLite its writes are committed after writes from other threads already waiting, so
/// an API request's write (an accept) does not queue behind a backlog of run steps.
pub fn mark_background_thread() {
    BACKGROUND_THREAD.with(|b| b.set(true));
}

/// Most write jobs committed in one transaction.
const MAX_BATCH: usize = 128;
/// A batch takes no more jobs once it has run this long.
const BATCH_TIME: Duration = Duration::from_millis(2);
/// Read connections (file databases).
const READERS: usize = 4;

pub(crate) struct Db {
    writer: Mutex<Option<mpsc::Sender<Queued>>>,
    writer_thread: Mutex<Option<std::thread::JoinHandle<()>>>,
    readers: Option<ReaderPool>,
    /// Ends the checkpoint thread.
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

struct ReaderPool {
    idle: Mutex<Vec<Connection>>,
    permits: tokio::sync::Semaphore,
}

/// Where the database lives.
#[derive(Clone)]
enum Target {
    File(String),
    /// An in-memory database (`file:…?mode=memory`): reads also go through the writer.
    Memory(String),
}

fn parse_url(url: &str) -> Target {
    let rest = url.strip_prefix("sqlite://").or_else(|| url.strip_prefix("sqlite:")).unwrap_or(url);
    if rest.contains("mode=memory") {
        Target::Memory(rest.to_string())
    } else {
        // Query options of the old sqlx URLs (e.g. `?mode=rwc`) are not needed here.
        Target::File(rest.split('?').next().unwrap_or(rest).to_string())
    }
}

/// Busy handlers that retry in fine steps. SQLite's own (`busy_timeout`) sleeps 1, 2, 5,
/// 10, 15, 20 … ms between tries, so a writer that meets a lock held for 3 ms (the
/// checkpoint thread restarting the log) sleeps 8 ms, and a restart waiting for readers
/// that leave within microseconds holds every writer back for whole milliseconds.
fn busy_wait(tries: i32, limit: Duration) -> bool {
    // 100 tries 50 µs apart, then 1 ms apart.
    const FINE_TRIES: u32 = 100;
    let tries = tries.max(0) as u32;
    let (waited, step) = if tries < FINE_TRIES {
        (Duration::from_micros(50) * tries, Duration::from_micros(50))
    } else {
        (Duration::from_millis(5) + Duration::from_millis(1) * (tries - FINE_TRIES), Duration::from_millis(1))
    };
    if waited >= limit {
        return false;
    }
    std::thread::sleep(step);
    true
}

fn busy_10s(tries: i32) -> bool {
    busy_wait(tries, Duration::from_secs(10))
}

fn busy_restart(tries: i32) -> bool {
    busy_wait(tries, WRITER_RESTART_WAIT)
}

fn busy_checkpoint(tries: i32) -> bool {
    busy_wait(tries, CHECKPOINT_RESTART_WAIT)
}

fn configure(c: &Connection, writer: bool) -> rusqlite::Result<()> {
    c.busy_handler(Some(busy_10s))?;
    // No memory map: the file grows with every commit and each reader then remaps it
    // (munmap took 8 % of the CPU of a 20,000-run drain); pread from the page cache is
    // cheaper here.
    c.set_prepared_statement_cache_capacity(256);
    c.pragma_update(None, "foreign_keys", "ON")?;
    c.pragma_update(None, "temp_store", "MEMORY")?;
    if writer {
        // A small cache: SQLite scans the whole page cache when a write transaction
        // ends (pcache truncation), so a large writer cache costs on every commit. The
        // pages it needs are hot in the OS page cache anyway.
        c.pragma_update(None, "cache_size", -2000)?;
        // Checkpoints (copying the WAL into the database, with an fsync) run on their
        // own thread, not in the middle of the writer's commits.
        c.pragma_update(None, "wal_autocheckpoint", 0)?;
        // A restarted log is cut back to this size, so a burst does not keep its disk.
        c.pragma_update(None, "journal_size_limit", WAL_SIZE_LIMIT as i64)?;
        // WAL + NORMAL: durable across process crashes (kill -9); an OS crash may lose
        // the last transactions but never corrupts the database.
        let _: String = c.query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))?;
        c.pragma_update(None, "synchronous", "NORMAL")?;
    } else {
        c.pragma_update(None, "cache_size", -16000)?;
        c.pragma_update(None, "query_only", "ON")?;
    }
    Ok(())
}

fn open_conn(target: &Target, writer: bool) -> rusqlite::Result<Connection> {
    let c = match target {
        Target::File(path) => {
            let flags = if writer {
                OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_CREATE | OpenFlags::SQLITE_OPEN_NO_MUTEX
            } else {
                OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX
            };
            Connection::open_with_flags(path, flags)?
        }
        Target::Memory(uri) => Connection::open_with_flags(
            uri,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_CREATE | OpenFlags::SQLITE_OPEN_URI | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?,
    };
    configure(&c, writer)?;
    Ok(c)
}

impl Db {
    /// Opens the database, runs `init` (migrations) on the writer connection, and
    /// starts the writer thread.
    pub(crate) fn open(url: &str, init: impl FnOnce(&mut Connection) -> Result<()>) -> Result<Db> {
        let target = parse_url(url);
        let mut writer = open_conn(&target, true)?;
        init(&mut writer)?;
        writer.execute_batch(AUDIT_TRIGGERS)?;
        let readers = match &target {
            Target::File(_) => {
                let mut idle = Vec::with_capacity(READERS);
                for _ in 0..READERS {
                    idle.push(open_conn(&target, false)?);
                }
                Some(ReaderPool { idle: Mutex::new(idle), permits: tokio::sync::Semaphore::new(READERS) })
            }
            Target::Memory(_) => None,
        };
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        if let Target::File(_) = &target {
            let cp_target = target.clone();
            // Checkpointing writes the database file: a read-write connection. A RESTART
            // holds writers back while it waits for readers: it waits briefly and the
            // next round retries, so a slow reader cannot stall every write for long.
            let conn = open_conn(&cp_target, true).and_then(|c| {
                c.busy_handler(Some(busy_checkpoint))?;
                Ok(c)
            });
            if let Ok(conn) = conn {
                let stop = stop.clone();
                let _ = std::thread::Builder::new().name("openloop-sqlite-checkpoint".into()).spawn(move || checkpoint_loop(conn, stop));
            }
        }
        let (tx, rx) = mpsc::channel::<Queued>();
        let handle = std::thread::Builder::new()
            .name("openloop-sqlite-writer".into())
            .spawn(move || writer_loop(writer, target, rx))
            .map_err(|e| StoreError::Corrupt(format!("cannot start the database writer thread: {e}")))?;
        Ok(Db { writer: Mutex::new(Some(tx)), writer_thread: Mutex::new(Some(handle)), readers, stop })
    }

    /// Runs `f` in a write transaction (committed together with other concurrent
    /// writes). An error from `f` rolls back only `f`'s own changes.
    pub(crate) async fn write<T: Send + 'static>(&self, f: impl FnOnce(&Connection) -> Result<T> + Send + 'static) -> Result<T> {
        let (tx, rx) = tokio::sync::oneshot::channel::<Result<T>>();
        let job: Job = Box::new(move |c: Option<&Connection>| {
            let Some(c) = c else {
                let deliver: Deliver = Box::new(move |e: Option<&StoreError>| {
                    let _ = tx.send(Err(e.map(StoreError::duplicate).unwrap_or_else(closed)));
                });
                return (false, deliver);
            };
            let r = f(c);
            let ok = r.is_ok();
            let deliver: Deliver = Box::new(move |commit_err: Option<&StoreError>| {
                let out = match (r, commit_err) {
                    (Ok(_), Some(e)) => Err(e.duplicate()),
                    (r, _) => r,
                };
                let _ = tx.send(out);
            });
            (ok, deliver)
        });
        let sender = self.writer.lock().map_err(|_| closed())?.clone().ok_or_else(closed)?;
        sender.send((BACKGROUND_THREAD.with(|b| b.get()), job)).map_err(|_| closed())?;
        rx.await.map_err(|_| closed())?
    }

    /// Runs `f` on a read-only connection (a snapshot; never waits on the writer), on the
    /// calling thread: point reads take microseconds, less than a hop to another thread.
    pub(crate) async fn read<T: Send + 'static>(&self, f: impl FnOnce(&Connection) -> Result<T> + Send + 'static) -> Result<T> {
        let Some(pool) = &self.readers else {
            // In-memory databases have one connection: reads are jobs on the writer.
            return self.write(f).await;
        };
        let _permit = pool.permits.acquire().await.map_err(|_| closed())?;
        let conn = pool.idle.lock().map_err(|_| closed())?.pop().ok_or_else(closed)?;
        let out = f(&conn);
        if let Ok(mut idle) = pool.idle.lock() {
            idle.push(conn);
        }
        out
    }

    /// As `read`, on a blocking thread: for reads whose size grows with the data (lists).
    pub(crate) async fn read_blocking<T: Send + 'static>(&self, f: impl FnOnce(&Connection) -> Result<T> + Send + 'static) -> Result<T> {
        let Some(pool) = &self.readers else {
            return self.write(f).await;
        };
        let _permit = pool.permits.acquire().await.map_err(|_| closed())?;
        let conn = pool.idle.lock().map_err(|_| closed())?.pop().ok_or_else(closed)?;
        let (conn, out) = tokio::task::spawn_blocking(move || {
            let out = f(&conn);
            (conn, out)
        })
        .await
        .map_err(|e| StoreError::Corrupt(format!("a database read panicked: {e}")))?;
        if let Ok(mut idle) = pool.idle.lock() {
            idle.push(conn);
        }
        out
    }

    /// Stops the writer after the jobs already sent.
    pub(crate) fn close(&self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        if let Ok(mut w) = self.writer.lock() {
            w.take();
        }
        if let Some(h) = self.writer_thread.lock().ok().and_then(|mut h| h.take()) {
            let _ = h.join();
        }
    }
}

fn closed() -> StoreError {
    StoreError::Corrupt("the database is closed".into())
}

fn writer_loop(mut conn: Connection, target: Target, rx: mpsc::Receiver<Queued>) {
    let mut wal_bound = match &target {
        Target::File(path) => Some(WalBound { path: std::path::PathBuf::from(format!("{path}-wal")), retry_above: None }),
        Target::Memory(_) => None,
    };
    // Jobs received but not yet run, oldest first: the API's, then the background's.
    let mut pending = Pending::default();
    // Batches in a row that ran no background job while one waited.
    let mut batches_without_background = 0u32;
    loop {
        if pending.is_empty() {
            match rx.recv() {
                Ok(j) => pending.push(j),
                Err(_) => return,
            }
        }
        pending.receive(&rx);
        let batch_started = std::time::Instant::now();
        if let Err(e) = exec_cached(&conn, "BEGIN IMMEDIATE") {
            let err = StoreError::from(e);
            tracing::warn!(error = %err, "cannot begin a write transaction");
            while let Some((_, job)) = pending.pop() {
                let (_, answer) = job(None);
                answer(Some(&err));
            }
            reopen_if_stuck(&mut conn, &target);
            continue;
        }
        // A batch ends when its jobs are done or its time is up: the rest wait for the
        // next commit. Without the bound, 30 run completions (~0.3 ms each on a loaded
        // 2-core machine) made one 10 ms commit, and a write arriving meanwhile waited
        // for that one and then for its own. An API write arriving during a batch of
        // background work joins it next, and the batch commits once no API write waits.
        let mut delivers = Vec::with_capacity(pending.len().min(MAX_BATCH));
        let (mut ran_background, mut ran_foreground) = (false, false);
        while let Some((background, job)) = pending.pop() {
            ran_background |= background;
            ran_foreground |= !background;
            delivers.push(run_job(&conn, job));
            pending.receive(&rx);
            let time_up = batch_started.elapsed() >= BATCH_TIME || delivers.len() >= MAX_BATCH;
            if time_up || (ran_foreground && pending.foreground.is_empty()) {
                // Background work gets a job into every few batches, so a stream of
                // API writes cannot starve the runs.
                if !ran_background && (time_up || batches_without_background >= 2) {
                    if let Some(job) = pending.pop_background() {
                        ran_background = true;
                        delivers.push(run_job(&conn, job));
                    }
                }
                break;
            }
        }
        batches_without_background = if ran_background || pending.background.is_empty() { 0 } else { batches_without_background + 1 };
        let jobs = delivers.len();
        match exec_cached(&conn, "COMMIT") {
            Ok(()) => {
                delivers.into_iter().for_each(|d| d(None));
                // One transaction of `jobs` writes, from BEGIN to COMMIT.
                metrics::histogram!("openloop_db_write_seconds", "database" => "sqlite").record(batch_started.elapsed().as_secs_f64());
                metrics::histogram!("openloop_db_write_batch_jobs").record(jobs as f64);
                if let Some(wal) = &mut wal_bound {
                    wal.hold_writes_until_restarted(&conn);
                }
            }
            Err(e) => {
                let err = StoreError::from(e);
                tracing::warn!(error = %err, "a write transaction did not commit");
                let _ = conn.execute_batch("ROLLBACK");
                delivers.into_iter().for_each(|d| d(Some(&err)));
                reopen_if_stuck(&mut conn, &target);
            }
        }
    }
}

/// Runs one job of a batch under its own savepoint: a failed job's changes are undone.
fn run_job(conn: &Connection, job: Job) -> Deliver {
    let _ = exec_cached(conn, "SAVEPOINT job");
    let (ok, deliver) = job(Some(conn));
    if ok {
        let _ = exec_cached(conn, "RELEASE job");
    } else {
        let _ = conn.execute_batch("ROLLBACK TO job; RELEASE job");
    }
    deliver
}

/// Runs one statement from the connection's statement cache: the writer's BEGIN, COMMIT
/// and per-job savepoints were parsed anew each time (`execute_batch` prepares its SQL).
fn exec_cached(conn: &Connection, sql: &str) -> rusqlite::Result<()> {
    conn.prepare_cached(sql)?.execute([]).map(|_| ())
}

/// Write jobs waiting for the writer: API requests' first, in arrival order, then
/// background work's. A batch bounded in time ([`BATCH_TIME`]) may leave a long
/// backlog of run steps; an accept arriving then waits for the current batch only.
#[derive(Default)]
struct Pending {
    foreground: std::collections::VecDeque<Job>,
    background: std::collections::VecDeque<Job>,
}

impl Pending {
    /// Takes every job waiting in the channel: an API write must not stay behind a
    /// channel full of background ones.
    fn receive(&mut self, rx: &mpsc::Receiver<Queued>) {
        while let Ok(j) = rx.try_recv() {
            self.push(j);
        }
    }

    fn push(&mut self, (background, job): Queued) {
        if background {
            self.background.push_back(job);
        } else {
            self.foreground.push_back(job);
        }
    }

    /// The next job, and whether it is background work.
    fn pop(&mut self) -> Option<(bool, Job)> {
        match self.foreground.pop_front() {
            Some(j) => Some((false, j)),
            None => self.background.pop_front().map(|j| (true, j)),
        }
    }

    /// A background job, if one waits (so a stream of API writes cannot starve runs).
    fn pop_background(&mut self) -> Option<Job> {
        self.background.pop_front()
    }

    fn len(&self) -> usize {
        self.foreground.len() + self.background.len()
    }

    fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The writer's own bound on the log, whatever the checkpoint thread manages: once the
/// `-wal` file is past `journal_size_limit` (a restarted log is cut back to that size at
/// its first commit, so a larger file means the current log holds more), the writer
/// itself copies the log and waits briefly for readers so it starts over, before any
/// further write. Writes pause for that moment (back-pressure) instead of the log growing
/// for as long as the checkpoint thread is starved of CPU. A stat per commit costs ~1 µs.
struct WalBound {
    path: std::path::PathBuf,
    /// After a restart that readers blocked (a reader descheduled mid-read on a loaded
    /// machine, or a long read such as `openloop backup`), the next attempt waits until the
    /// log has grown another [`WRITER_RESTART_STEP`]: stalling every commit would not
    /// shrink it, and waiting on a clock instead lets a fast writer run far past the bound.
    retry_above: Option<u64>,
}

/// How long the writer waits for readers to leave the log (they take milliseconds).
const WRITER_RESTART_WAIT: Duration = Duration::from_millis(500);
/// How long the checkpoint thread's restart waits (holding writers back) for readers.
const CHECKPOINT_RESTART_WAIT: Duration = Duration::from_millis(50);
/// After readers kept the log from restarting, the writer tries again once the log has
/// grown this much more.
const WRITER_RESTART_STEP: u64 = 16 * 1024 * 1024;

impl WalBound {
    fn hold_writes_until_restarted(&mut self, conn: &Connection) {
        let Ok(meta) = std::fs::metadata(&self.path) else { return };
        if meta.len() <= WAL_SIZE_LIMIT.max(self.retry_above.unwrap_or(0)) {
            return;
        }
        let _ = conn.busy_handler(Some(busy_restart));
        // (busy, log frames, checkpointed frames): busy = 1 when a reader kept it from
        // completing.
        let blocked = match conn.query_row("PRAGMA wal_checkpoint(RESTART)", [], |r| r.get::<_, i64>(0)) {
            Ok(busy) => busy != 0,
            Err(e) => {
                tracing::debug!(error = %e, "the writer's log restart failed");
                true
            }
        };
        self.retry_above = blocked.then(|| meta.len() + WRITER_RESTART_STEP);
        let _ = conn.busy_handler(Some(busy_10s));
    }
}

/// After a failed BEGIN or COMMIT the connection may still think it is in a transaction
/// (or be broken); replace it so later writes work once the cause (disk full) is gone.
fn reopen_if_stuck(conn: &mut Connection, target: &Target) {
    if conn.is_autocommit() {
        return;
    }
    let _ = conn.execute_batch("ROLLBACK");
    if conn.is_autocommit() {
        return;
    }
    if let Target::File(_) = target {
        if let Ok(fresh) = open_conn(target, true) {
            // The audit triggers are TEMP objects of the connection.
            if fresh.execute_batch(AUDIT_TRIGGERS).is_ok() {
                *conn = fresh;
            }
        }
    }
}

/// The writer's audit context table and triggers (see `audit_triggers.sql`).
const AUDIT_TRIGGERS: &str = include_str!("audit_triggers.sql");

thread_local! {
    /// Whether the writer's `temp.audit_ctx` may hold a row (jobs run one at a time on the
    /// writer thread, so a job without context clears it only when needed).
    static AUDIT_CTX_SET: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Puts the acting user of a write job where the audit triggers read it.
pub(crate) fn apply_audit_ctx(c: &Connection, ctx: Option<&crate::audit::AuditContext>) -> rusqlite::Result<()> {
    match ctx {
        Some(a) => {
            c.prepare_cached("INSERT OR REPLACE INTO temp.audit_ctx (k, user_id, source_ip, user_agent) VALUES (1, ?, ?, ?)")?.execute(rusqlite::params![
                a.user_id,
                a.source_ip,
                a.user_agent
            ])?;
            AUDIT_CTX_SET.with(|f| f.set(true));
        }
        None => {
            if AUDIT_CTX_SET.with(|f| f.replace(false)) {
                c.prepare_cached("DELETE FROM temp.audit_ctx")?.execute([])?;
            }
        }
    }
    Ok(())
}

/// Checkpoints the WAL (PASSIVE: never blocks the writer or readers) every 200 ms, off
/// the writer thread; when nothing was committed since, it costs a header read.
/// WAL frames after which the checkpointer waits for readers so the log starts over
/// (4 KiB pages: 16 MiB). Busy readers otherwise keep a PASSIVE checkpoint from ever
/// restarting the log, and every page lookup walks an ever longer WAL index. (48 MiB
/// was tried against the backlog gap: no measurable change, see docs/BENCHMARKS.md.)
const WAL_RESTART_FRAMES: i64 = 4096;
/// The size a restarted log is cut back to, and past which the writer restarts it itself.
const WAL_SIZE_LIMIT: u64 = 64 * 1024 * 1024;

fn checkpoint_loop(conn: Connection, stop: std::sync::Arc<std::sync::atomic::AtomicBool>) {
    let checkpoint = |mode: &str| conn.query_row(&format!("PRAGMA wal_checkpoint({mode})"), [], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?)));
    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
        std::thread::sleep(Duration::from_millis(200));
        let res = match checkpoint("PASSIVE") {
            Ok((_, frames)) if frames > WAL_RESTART_FRAMES => {
                // Wait for readers briefly (writers wait meanwhile); a log that still
                // grows past journal_size_limit is restarted by the writer itself.
                checkpoint("RESTART").map(|_| ())
            }
            other => other.map(|_| ()),
        };
        if let Err(e) = res {
            tracing::debug!(error = %e, "checkpoint failed; retrying");
        }
    }
}
