//! `openloop backup` and `openloop restore`: one tar archive holding a consistent copy of
//! the SQLite database, every blob that copy references, the data directory's signing
//! keys, and a manifest (`manifest.json`, the last entry) with the SHA-256 of each entry.
//!
//! Consistency: the database is copied with SQLite's online backup API inside one read
//! transaction, so the copy is the database as of one commit, while the server keeps
//! writing (WAL: a reader never blocks the writer). The blob keys are then read from the
//! copy itself, so the blobs archived are exactly those the snapshot references. The
//! server writes a blob before the row naming it, so a referenced blob is complete; a
//! blob the server deleted after the snapshot (a replaced flow file, an expired export)
//! cannot be copied any more: it is named in the manifest's `missing_blobs` and in the
//! summary.
//!
//! Restore reads the whole archive once to check the manifest and every checksum before
//! it writes anything, then writes the blobs, then the database (to a temporary file
//! renamed into place last, so an interrupted restore leaves no database behind).

use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::io::{BufReader, BufWriter, Read};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context};
use clap::Args;
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use serde_json::json;
use sha2::{Digest, Sha256};

use crate::config::{data_location, CommonArgs, FileSettings};

/// The manifest's `format`.
const FORMAT: &str = "openloop-backup";
/// The archive layout version this binary writes and reads.
const FORMAT_VERSION: u32 = 1;
const MANIFEST: &str = "manifest.json";
const DB_ENTRY: &str = "openloop.db";
const SIGNING_KEYS_ENTRY: &str = "signing.keys";
const BLOB_PREFIX: &str = "blobs/";
/// Pages copied per backup step (4 KiB pages: 16 MiB) between progress reports.
const PAGES_PER_STEP: i32 = 4096;
/// Blob chunks in flight between the archive and the blob store during a restore.
const RESTORE_CHANNEL_CHUNKS: usize = 8;
const COPY_BUF: usize = 256 * 1024;

/// Every column that names a blob key (crates/store/src/sqlite/*.sql): artifact versions,
/// session input files, flow files (F8 uploads and flow-run files), data export CSVs.
const BLOB_KEY_QUERIES: &[(&str, &str)] = &[
    ("artifact_versions", "SELECT blob_key FROM artifact_versions"),
    ("session_files", "SELECT blob_key FROM session_files"),
    ("flow_files", "SELECT blob_key FROM flow_files"),
    ("data_exports", "SELECT blob_key FROM data_exports WHERE blob_key IS NOT NULL"),
];

/// Tables counted in the manifest (those that exist in the snapshot).
const COUNTED_TABLES: &[&str] = &[
    "organizations",
    "users",
    "teams",
    "api_keys",
    "agents",
    "sessions",
    "messages",
    "runs",
    "artifacts",
    "artifact_versions",
    "session_files",
    "flows",
    "flow_runs",
    "flow_files",
    "data_exports",
    "audit_log",
];

/// Where blobs live: the same settings as `openloop serve` (flags, environment, file).
#[derive(Debug, Clone, Args, Default)]
pub struct BlobArgs {
    /// local | s3
    #[arg(long, env = "OPENLOOP_BLOB_STORE")]
    pub blob_store: Option<String>,
    #[arg(long, env = "OPENLOOP_S3_ENDPOINT")]
    pub s3_endpoint: Option<String>,
    #[arg(long, env = "OPENLOOP_S3_BUCKET")]
    pub s3_bucket: Option<String>,
    #[arg(long, env = "OPENLOOP_S3_REGION")]
    pub s3_region: Option<String>,
    #[arg(long, env = "OPENLOOP_S3_ACCESS_KEY_ID", hide_env_values = true)]
    pub s3_access_key_id: Option<String>,
    #[arg(long, env = "OPENLOOP_S3_SECRET_ACCESS_KEY", hide_env_values = true)]
    pub s3_secret_access_key: Option<String>,
    #[arg(long, env = "OPENLOOP_S3_PATH_STYLE")]
    pub s3_path_style: Option<bool>,
}

#[derive(Debug, Clone, Args)]
pub struct BackupArgs {
    /// The archive to write (a tar file; written beside it under a temporary name and
    /// renamed when complete).
    #[arg(long)]
    pub to: PathBuf,
    #[command(flatten)]
    pub blobs: BlobArgs,
}

#[derive(Debug, Clone, Args)]
pub struct RestoreArgs {
    /// The archive written by `openloop backup`.
    #[arg(long)]
    pub from: PathBuf,
    /// Replace an existing database (stop the server first).
    #[arg(long)]
    pub force: bool,
    #[command(flatten)]
    pub blobs: BlobArgs,
}

#[derive(Debug, Serialize, Deserialize)]
struct Manifest {
    format: String,
    format_version: u32,
    openloop_version: String,
    created_at: String,
    /// Migrations applied to the copied database.
    schema_version: i64,
    counts: BTreeMap<String, i64>,
    /// Every entry of the archive but the manifest, in archive order.
    entries: Vec<ManifestEntry>,
    /// Blob keys the snapshot references that the blob store no longer had when copied.
    #[serde(default)]
    missing_blobs: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct ManifestEntry {
    path: String,
    size: u64,
    sha256: String,
}

fn non_empty(v: Option<String>) -> Option<String> {
    v.filter(|s| !s.trim().is_empty())
}

/// The blob store configuration, resolved as `openloop serve` does.
fn blob_config(a: &BlobArgs, f: &FileSettings, data_dir: &Path) -> anyhow::Result<blobs::BlobConfig> {
    let kind = non_empty(a.blob_store.clone()).or(non_empty(f.blob_store.clone())).unwrap_or_else(|| "local".into());
    match kind.as_str() {
        "local" => Ok(blobs::BlobConfig::Local { root: data_dir.join("blobs") }),
        "s3" => {
            let bucket = non_empty(a.s3_bucket.clone())
                .or(non_empty(f.s3_bucket.clone()))
                .ok_or_else(|| anyhow!("OPENLOOP_S3_BUCKET is required when OPENLOOP_BLOB_STORE=s3"))?;
            let endpoint = non_empty(a.s3_endpoint.clone()).or(non_empty(f.s3_endpoint.clone()));
            Ok(blobs::BlobConfig::S3 {
                allow_http: endpoint.as_deref().is_some_and(|e| e.starts_with("http://")),
                endpoint,
                bucket,
                region: non_empty(a.s3_region.clone()).or(non_empty(f.s3_region.clone())).unwrap_or_else(|| "us-east-1".into()),
                access_key_id: non_empty(a.s3_access_key_id.clone()).or(non_empty(f.s3_access_key_id.clone())),
                secret_access_key: non_empty(a.s3_secret_access_key.clone()).or(non_empty(f.s3_secret_access_key.clone())),
                path_style: a.s3_path_style.or(f.s3_path_style).unwrap_or(false),
            })
        }
        other => bail!("OPENLOOP_BLOB_STORE: {other:?} must be local or s3"),
    }
}

/// The SQLite file a database URL names; a clear refusal for PostgreSQL and in-memory URLs.
fn sqlite_path(url: &str, verb: &str) -> anyhow::Result<PathBuf> {
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        bail!(
            "openloop {verb} handles the embedded SQLite database only; {} is PostgreSQL: use pg_dump -Fc / pg_restore and copy the S3 bucket \
             (docs/DEPLOY.md, \"Backups\")",
            store::redact_url(url)
        );
    }
    let rest =
        url.strip_prefix("sqlite://").or_else(|| url.strip_prefix("sqlite:")).ok_or_else(|| anyhow!("OPENLOOP_DATABASE_URL: {url:?} is not sqlite://PATH"))?;
    if rest.contains("mode=memory") {
        bail!("openloop {verb}: {url:?} is an in-memory database; there is nothing on disk to {verb}");
    }
    let path = rest.split('?').next().unwrap_or(rest);
    if path.is_empty() {
        bail!("OPENLOOP_DATABASE_URL: {url:?} names no file");
    }
    Ok(PathBuf::from(path))
}

/// Removes the listed files when dropped, unless disarmed: no half-written output survives
/// an error.
struct Cleanup(Vec<PathBuf>);

impl Drop for Cleanup {
    fn drop(&mut self) {
        for p in &self.0 {
            let _ = std::fs::remove_file(p);
        }
    }
}

/// Prints a progress line to stderr at most once a second.
struct Ticker {
    last: Instant,
}

impl Ticker {
    fn new() -> Self {
        Ticker { last: Instant::now() }
    }
    fn tick(&mut self, line: impl FnOnce() -> String) {
        if self.last.elapsed() >= Duration::from_secs(1) {
            self.last = Instant::now();
            eprintln!("openloop: {}", line());
        }
    }
}

fn human(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = bytes as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{bytes} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

/// A reader that hashes and counts what passes through it.
struct Hashing<R> {
    inner: R,
    hash: Sha256,
    n: u64,
}

impl<R: Read> Hashing<R> {
    fn new(inner: R) -> Self {
        Hashing { inner, hash: Sha256::new(), n: 0 }
    }
    fn finish(self) -> (u64, String) {
        (self.n, format!("{:x}", self.hash.finalize()))
    }
}

impl<R: Read> Read for Hashing<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let k = self.inner.read(buf)?;
        self.hash.update(&buf[..k]);
        self.n += k as u64;
        Ok(k)
    }
}

/// A blob's byte stream as a blocking reader (used on a blocking thread; memory: one chunk).
struct StreamRead {
    stream: futures::stream::BoxStream<'static, Result<bytes::Bytes, blobs::BlobError>>,
    buf: bytes::Bytes,
    rt: tokio::runtime::Handle,
}

impl Read for StreamRead {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        while self.buf.is_empty() {
            match self.rt.block_on(self.stream.next()) {
                None => return Ok(0),
                Some(Ok(b)) => self.buf = b,
                Some(Err(e)) => return Err(std::io::Error::other(e.to_string())),
            }
        }
        let k = out.len().min(self.buf.len());
        out[..k].copy_from_slice(&self.buf[..k]);
        bytes::Buf::advance(&mut self.buf, k);
        Ok(k)
    }
}

fn tar_header(size: u64, mode: u32, mtime: u64) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.set_size(size);
    h.set_mode(mode);
    h.set_mtime(mtime);
    h.set_entry_type(tar::EntryType::Regular);
    h
}

fn fsync_dir(dir: &Path) {
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
}

fn parent_dir(p: &Path) -> PathBuf {
    match p.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

// ---------------------------------------------------------------------------------------
// backup
// ---------------------------------------------------------------------------------------

/// What the database snapshot yielded.
struct Snapshot {
    pages: i64,
    read_txn: Duration,
    schema_version: i64,
    counts: BTreeMap<String, i64>,
    blob_keys: Vec<String>,
}

/// Copies `src` into the new file `dst` as of one commit (a read transaction held for the
/// whole copy; the server's writer is never blocked by it), checks the copy, and reads the
/// counts and referenced blob keys from the copy.
fn snapshot_db(src_path: &Path, dst_path: &Path) -> anyhow::Result<Snapshot> {
    use rusqlite::backup::{Backup, StepResult};
    use rusqlite::{Connection, OpenFlags};

    if !src_path.is_file() {
        bail!("no database at {} (check --data-dir / OPENLOOP_DATABASE_URL)", src_path.display());
    }
    // Read-write without CREATE: a read-only connection cannot recover a WAL database whose
    // server has stopped. Nothing is written through it.
    let src = Connection::open_with_flags(src_path, OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX)
        .with_context(|| format!("opening {}", src_path.display()))?;
    src.busy_timeout(Duration::from_secs(10))?;
    let mut dst = Connection::open(dst_path).with_context(|| format!("creating {}", dst_path.display()))?;

    let started = Instant::now();
    // One read transaction across every step: the copy is one snapshot, and other
    // connections' commits do not restart it.
    src.execute_batch("BEGIN DEFERRED")?;
    let copied = (|| -> anyhow::Result<i64> {
        let _: i64 = src.query_row("SELECT count(*) FROM sqlite_schema", [], |r| r.get(0))?;
        let backup = Backup::new(&src, &mut dst)?;
        let mut ticker = Ticker::new();
        loop {
            match backup.step(PAGES_PER_STEP)? {
                StepResult::Done => break,
                StepResult::More => {}
                // Only another writer on the destination (none) or a source lock: retry.
                _ => std::thread::sleep(Duration::from_millis(20)),
            }
            let p = backup.progress();
            ticker.tick(|| format!("database: {} of {} pages copied", p.pagecount - p.remaining, p.pagecount));
        }
        Ok(i64::from(backup.progress().pagecount))
    })();
    let _ = src.execute_batch("COMMIT");
    let read_txn = started.elapsed();
    let pages = copied?;
    drop(src);

    // A standalone file: no WAL beside it.
    let _: String = dst.query_row("PRAGMA journal_mode = DELETE", [], |r| r.get(0))?;
    let check: String = dst.query_row("PRAGMA quick_check", [], |r| r.get(0))?;
    if check != "ok" {
        bail!("the database copy fails SQLite's quick_check: {check}");
    }
    let tables: BTreeSet<String> = {
        let mut st = dst.prepare("SELECT name FROM sqlite_schema WHERE type = 'table'")?;
        let rows = st.query_map([], |r| r.get::<_, String>(0))?;
        rows.collect::<Result<_, _>>()?
    };
    let schema_version: i64 =
        if tables.contains("_migrations") { dst.query_row("SELECT COALESCE(MAX(version), 0) FROM _migrations", [], |r| r.get(0))? } else { 0 };
    let mut counts = BTreeMap::new();
    for t in COUNTED_TABLES {
        if tables.contains(*t) {
            let n: i64 = dst.query_row(&format!("SELECT count(*) FROM \"{t}\""), [], |r| r.get(0))?;
            counts.insert((*t).to_string(), n);
        }
    }
    let mut keys = BTreeSet::new();
    for (table, sql) in BLOB_KEY_QUERIES {
        if !tables.contains(*table) {
            continue;
        }
        let mut st = dst.prepare(sql)?;
        let rows = st.query_map([], |r| r.get::<_, String>(0))?;
        for k in rows {
            keys.insert(k?);
        }
    }
    drop(dst);
    Ok(Snapshot { pages, read_txn, schema_version, counts, blob_keys: keys.into_iter().collect() })
}

pub async fn backup(common: &CommonArgs, file: &FileSettings, args: BackupArgs) -> anyhow::Result<()> {
    let (data_dir, database_url) = data_location(common, file);
    let db_path = sqlite_path(&database_url, "backup")?;
    // Checked before the blob store is opened (a local one would create its directory).
    if !db_path.is_file() {
        bail!("no database at {} (check --data-dir / OPENLOOP_DATABASE_URL)", db_path.display());
    }
    let cfg = blob_config(&args.blobs, file, &data_dir)?;
    let blob_store = blobs::BlobStore::open(cfg).await.map_err(|e| anyhow!("opening the blob store: {e}"))?;

    let out = args.to.clone();
    if out.is_dir() {
        bail!("--to {} is a directory; name the archive file", out.display());
    }
    let dir = parent_dir(&out);
    let name = out.file_name().map(|n| n.to_string_lossy().into_owned()).ok_or_else(|| anyhow!("--to {} names no file", out.display()))?;
    if !dir.is_dir() {
        bail!("--to: the directory {} does not exist", dir.display());
    }
    let pid = std::process::id();
    let tmp_archive = dir.join(format!(".{name}.partial-{pid}"));
    let tmp_db = dir.join(format!(".{name}.db-{pid}"));
    let signing_keys = data_dir.join("signing.keys");
    let rt = tokio::runtime::Handle::current();

    let started = Instant::now();
    let summary = tokio::task::spawn_blocking(move || -> anyhow::Result<serde_json::Value> {
        let mut cleanup = Cleanup(vec![tmp_archive.clone(), tmp_db.clone(), tmp_db.with_extension("db-journal")]);
        let snap = snapshot_db(&db_path, &tmp_db)?;
        eprintln!(
            "openloop: database snapshot: {} pages, read transaction held {} ms; {} blobs referenced",
            snap.pages,
            snap.read_txn.as_millis(),
            snap.blob_keys.len()
        );
        let mtime = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
        let f = File::create(&tmp_archive).with_context(|| format!("creating {}", tmp_archive.display()))?;
        let mut tar = tar::Builder::new(BufWriter::with_capacity(COPY_BUF, f));
        let mut entries: Vec<ManifestEntry> = Vec::new();

        // The database copy.
        let db_file = File::open(&tmp_db)?;
        let db_size = db_file.metadata()?.len();
        let mut r = Hashing::new(BufReader::with_capacity(COPY_BUF, db_file).take(db_size));
        tar.append_data(&mut tar_header(db_size, 0o600, mtime), DB_ENTRY, &mut r)?;
        let (n, sha) = r.finish();
        if n != db_size {
            bail!("the database copy changed size while archiving");
        }
        entries.push(ManifestEntry { path: DB_ENTRY.into(), size: n, sha256: sha });
        let _ = std::fs::remove_file(&tmp_db);

        // The signing keys kept in the data directory (signed URLs stay valid after a restore).
        if let Ok(bytes) = std::fs::read(&signing_keys) {
            let mut r = Hashing::new(bytes.as_slice());
            tar.append_data(&mut tar_header(bytes.len() as u64, 0o600, mtime), SIGNING_KEYS_ENTRY, &mut r)?;
            let (n, sha) = r.finish();
            entries.push(ManifestEntry { path: SIGNING_KEYS_ENTRY.into(), size: n, sha256: sha });
        }

        // The referenced blobs, streamed from the blob store.
        let mut missing = Vec::new();
        let mut blob_bytes: u64 = 0;
        let mut ticker = Ticker::new();
        let total = snap.blob_keys.len();
        for (i, key) in snap.blob_keys.iter().enumerate() {
            let read = match rt.block_on(blob_store.get(key, None)) {
                Ok(r) => r,
                Err(blobs::BlobError::NotFound) => {
                    eprintln!("openloop: warning: blob {key} is referenced by the snapshot but was deleted since; not archived");
                    missing.push(key.clone());
                    continue;
                }
                Err(e) => bail!("reading blob {key}: {e}"),
            };
            let size = read.meta.size;
            let reader = StreamRead { stream: read.stream, buf: bytes::Bytes::new(), rt: rt.clone() };
            let mut r = Hashing::new(reader.take(size));
            tar.append_data(&mut tar_header(size, 0o600, mtime), format!("{BLOB_PREFIX}{key}"), &mut r)?;
            let (n, sha) = r.finish();
            if n != size {
                bail!("blob {key} ended after {n} of {size} bytes");
            }
            blob_bytes += n;
            entries.push(ManifestEntry { path: format!("{BLOB_PREFIX}{key}"), size: n, sha256: sha });
            ticker.tick(|| format!("blobs: {} of {total} copied ({})", i + 1, human(blob_bytes)));
        }

        let mut counts = snap.counts.clone();
        counts.insert("blobs".into(), (total - missing.len()) as i64);
        let manifest = Manifest {
            format: FORMAT.into(),
            format_version: FORMAT_VERSION,
            openloop_version: env!("CARGO_PKG_VERSION").into(),
            created_at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            schema_version: snap.schema_version,
            counts,
            entries,
            missing_blobs: missing.clone(),
        };
        let body = serde_json::to_vec_pretty(&manifest)?;
        tar.append_data(&mut tar_header(body.len() as u64, 0o600, mtime), MANIFEST, body.as_slice())?;
        let w = tar.into_inner()?;
        let f = w.into_inner().map_err(|e| anyhow!("writing {}: {}", tmp_archive.display(), e.error()))?;
        f.sync_all()?;
        let archive_size = f.metadata()?.len();
        drop(f);
        std::fs::rename(&tmp_archive, &out).with_context(|| format!("renaming the finished archive to {}", out.display()))?;
        fsync_dir(&parent_dir(&out));
        cleanup.0.clear();
        Ok(json!({
            "backup": out.display().to_string(),
            "bytes": archive_size,
            "database_bytes": db_size,
            "blobs": total - missing.len(),
            "blob_bytes": blob_bytes,
            "missing_blobs": missing,
            "counts": manifest.counts,
            "schema_version": manifest.schema_version,
            "read_transaction_ms": snap.read_txn.as_millis() as u64,
            "created_at": manifest.created_at,
        }))
    })
    .await
    .map_err(|e| anyhow!("the backup task failed: {e}"))??;

    let secs = started.elapsed().as_secs_f64();
    eprintln!(
        "openloop: backup written to {}: {} in {secs:.1} s (database {}, {} blobs, {}, {} sessions{})",
        args.to.display(),
        human(summary["bytes"].as_u64().unwrap_or(0)),
        human(summary["database_bytes"].as_u64().unwrap_or(0)),
        summary["blobs"],
        human(summary["blob_bytes"].as_u64().unwrap_or(0)),
        summary["counts"]["sessions"],
        match summary["missing_blobs"].as_array().map(Vec::len).unwrap_or(0) {
            0 => String::new(),
            n => format!("; {n} blobs deleted after the snapshot, see missing_blobs"),
        }
    );
    let mut summary = summary;
    summary["seconds"] = json!((secs * 1000.0).round() / 1000.0);
    println!("{summary}");
    Ok(())
}

// ---------------------------------------------------------------------------------------
// restore
// ---------------------------------------------------------------------------------------

/// Reads the archive through once, hashing every entry, and checks it against its
/// manifest. Writes nothing.
fn verify_archive(path: &Path) -> anyhow::Result<Manifest> {
    let f = File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let total = f.metadata()?.len();
    let mut ar = tar::Archive::new(BufReader::with_capacity(COPY_BUF, f));
    let mut seen: Vec<ManifestEntry> = Vec::new();
    let mut manifest: Option<Manifest> = None;
    let mut ticker = Ticker::new();
    let mut done: u64 = 0;
    let bad = |why: String| anyhow!("{} is not a valid Openloop backup: {why}; nothing was restored", path.display());
    for entry in ar.entries().map_err(|e| bad(e.to_string()))? {
        let mut entry = entry.map_err(|e| bad(format!("unreadable archive entry ({e})")))?;
        let name = entry.path().map_err(|e| bad(e.to_string()))?.to_string_lossy().into_owned();
        if manifest.is_some() {
            return Err(bad(format!("entry {name:?} after the manifest")));
        }
        if name == MANIFEST {
            let mut body = Vec::new();
            entry.read_to_end(&mut body).map_err(|e| bad(format!("reading the manifest: {e}")))?;
            manifest = Some(serde_json::from_slice(&body).map_err(|e| bad(format!("the manifest is not valid JSON ({e})")))?);
            continue;
        }
        let size = entry.size();
        let mut r = Hashing::new(&mut entry);
        std::io::copy(&mut r, &mut std::io::sink()).map_err(|e| bad(format!("reading {name}: {e}")))?;
        let (n, sha256) = r.finish();
        if n != size {
            return Err(bad(format!("{name} is truncated")));
        }
        done += n;
        ticker.tick(|| format!("verifying: {} of {}", human(done), human(total)));
        seen.push(ManifestEntry { path: name, size: n, sha256 });
    }
    let m = manifest.ok_or_else(|| bad("no manifest.json (truncated archive?)".into()))?;
    if m.format != FORMAT {
        return Err(bad(format!("format {:?}", m.format)));
    }
    if m.format_version == 0 || m.format_version > FORMAT_VERSION {
        return Err(bad(format!("format version {} (this openloop {} reads up to {FORMAT_VERSION})", m.format_version, env!("CARGO_PKG_VERSION"))));
    }
    if seen.len() != m.entries.len() {
        return Err(bad(format!("{} entries, the manifest lists {}", seen.len(), m.entries.len())));
    }
    for (got, want) in seen.iter().zip(&m.entries) {
        if got.path != want.path {
            return Err(bad(format!("entry {:?} where the manifest lists {:?}", got.path, want.path)));
        }
        if got.size != want.size || got.sha256 != want.sha256 {
            return Err(bad(format!("checksum mismatch in {} (the archive is corrupted)", got.path)));
        }
        let ok = got.path == DB_ENTRY || got.path == SIGNING_KEYS_ENTRY || got.path.strip_prefix(BLOB_PREFIX).is_some_and(|k| !k.is_empty());
        if !ok {
            return Err(bad(format!("unexpected entry {:?}", got.path)));
        }
    }
    if !m.entries.iter().any(|e| e.path == DB_ENTRY) {
        return Err(bad("no database entry".into()));
    }
    Ok(m)
}

fn sidecar(db: &Path, suffix: &str) -> PathBuf {
    let mut s = db.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}

pub async fn restore(common: &CommonArgs, file: &FileSettings, args: RestoreArgs) -> anyhow::Result<()> {
    let (data_dir, database_url) = data_location(common, file);
    let db_path = sqlite_path(&database_url, "restore")?;
    let cfg = blob_config(&args.blobs, file, &data_dir)?;
    let existing = [db_path.clone(), sidecar(&db_path, "-wal")].into_iter().find(|p| p.exists());
    if let Some(p) = &existing {
        if !args.force {
            bail!(
                "refusing to restore: a database already exists at {} (stop the server and pass --force to replace it, or restore into an empty --data-dir)",
                p.display()
            );
        }
    }
    let from = args.from.clone();
    let started = Instant::now();
    let manifest = tokio::task::spawn_blocking(move || verify_archive(&from)).await.map_err(|e| anyhow!("the verify task failed: {e}"))??;
    eprintln!(
        "openloop: {} verified: {} entries, every checksum matches (backup of {}, openloop {})",
        args.from.display(),
        manifest.entries.len() + 1,
        manifest.created_at,
        manifest.openloop_version
    );

    // Writing starts here.
    crate::serve::ensure_data_dir(&data_dir)?;
    let db_dir = parent_dir(&db_path);
    std::fs::create_dir_all(&db_dir).with_context(|| format!("creating {}", db_dir.display()))?;
    let blob_store = blobs::BlobStore::open(cfg).await.map_err(|e| anyhow!("opening the blob store: {e}"))?;
    let rt = tokio::runtime::Handle::current();
    let from = args.from.clone();
    let tmp_db = sidecar(&db_path, &format!(".restore-{}", std::process::id()));
    let signing_path = data_dir.join("signing.keys");
    let expected: BTreeMap<String, ManifestEntry> = manifest.entries.iter().map(|e| (e.path.clone(), e.clone())).collect();
    let force = args.force;
    let db_target = db_path.clone();
    let (blobs_written, blob_bytes, db_size) = tokio::task::spawn_blocking(move || -> anyhow::Result<(usize, u64, u64)> {
        let cleanup = Cleanup(vec![tmp_db.clone(), sidecar(&tmp_db, "-journal")]);
        let f = File::open(&from).with_context(|| format!("opening {}", from.display()))?;
        let mut ar = tar::Archive::new(BufReader::with_capacity(COPY_BUF, f));
        let mut ticker = Ticker::new();
        let (mut blobs_written, mut blob_bytes, mut db_size) = (0usize, 0u64, 0u64);
        let mut signing: Option<Vec<u8>> = None;
        for entry in ar.entries()? {
            let mut entry = entry?;
            let name = entry.path()?.to_string_lossy().into_owned();
            if name == MANIFEST {
                break;
            }
            let want = expected.get(&name).ok_or_else(|| anyhow!("{name} is not in the manifest (the archive changed since it was verified)"))?;
            let mut r = Hashing::new(&mut entry);
            if name == DB_ENTRY {
                let mut out = BufWriter::with_capacity(COPY_BUF, File::create(&tmp_db).with_context(|| format!("creating {}", tmp_db.display()))?);
                std::io::copy(&mut r, &mut out)?;
                let f = out.into_inner().map_err(|e| anyhow!("writing {}: {}", tmp_db.display(), e.error()))?;
                f.sync_all()?;
                db_size = r.n;
            } else if name == SIGNING_KEYS_ENTRY {
                let mut b = Vec::new();
                r.read_to_end(&mut b)?;
                signing = Some(b);
            } else if let Some(key) = name.strip_prefix(BLOB_PREFIX) {
                // The blob store reads from a bounded channel fed from this thread.
                let (tx, rx) = tokio::sync::mpsc::channel::<Result<bytes::Bytes, std::io::Error>>(RESTORE_CHANNEL_CHUNKS);
                let stream = futures::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|item| (item, rx)) }).boxed();
                let store = blob_store.clone();
                let key_owned = key.to_string();
                let put = rt.spawn(async move { store.put_stream(&key_owned, stream, u64::MAX).await });
                let mut buf = vec![0u8; 64 * 1024];
                loop {
                    let k = match r.read(&mut buf) {
                        Ok(0) => break,
                        Ok(k) => k,
                        Err(e) => {
                            let msg = e.to_string();
                            let _ = tx.blocking_send(Err(e));
                            bail!("reading {name}: {msg}");
                        }
                    };
                    if tx.blocking_send(Ok(bytes::Bytes::copy_from_slice(&buf[..k]))).is_err() {
                        break; // the upload ended early; its error is reported below
                    }
                }
                let (n, sha) = (r.n, format!("{:x}", r.hash.clone().finalize()));
                if n != want.size || sha != want.sha256 {
                    let _ = tx.blocking_send(Err(std::io::Error::other("checksum mismatch")));
                    drop(tx);
                    let _ = rt.block_on(put);
                    bail!("{name} changed since it was verified (checksum mismatch)");
                }
                drop(tx);
                rt.block_on(put).map_err(|e| anyhow!("storing blob {key}: {e}"))?.map_err(|e| anyhow!("storing blob {key}: {e}"))?;
                blobs_written += 1;
                blob_bytes += n;
                ticker.tick(|| format!("restoring blobs: {blobs_written} written ({})", human(blob_bytes)));
                continue;
            } else {
                bail!("unexpected entry {name:?}");
            }
            let (n, sha) = r.finish();
            if n != want.size || sha != want.sha256 {
                bail!("{name} changed since it was verified (checksum mismatch)");
            }
        }

        // The database copy must open and pass SQLite's check before it replaces anything.
        {
            let c = rusqlite::Connection::open_with_flags(&tmp_db, rusqlite::OpenFlags::SQLITE_OPEN_READ_WRITE)?;
            let check: String = c.query_row("PRAGMA quick_check", [], |r| r.get(0))?;
            if check != "ok" {
                bail!("the restored database fails SQLite's quick_check: {check}");
            }
        }
        if let Some(keys) = signing {
            let tmp = signing_path.with_extension("restore-tmp");
            std::fs::write(&tmp, &keys)?;
            #[cfg(unix)]
            {
                use std::os::unix::fs::PermissionsExt;
                std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o600))?;
            }
            std::fs::rename(&tmp, &signing_path)?;
        }
        if force {
            // A log or index left from the replaced database must not be applied to the new one.
            for s in ["-wal", "-shm", "-journal"] {
                let p = sidecar(&db_target, s);
                match std::fs::remove_file(&p) {
                    Ok(()) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => bail!("removing {}: {e}", p.display()),
                }
            }
        }
        std::fs::rename(&tmp_db, &db_target).with_context(|| format!("moving the database into {}", db_target.display()))?;
        fsync_dir(&parent_dir(&db_target));
        drop(cleanup);
        Ok((blobs_written, blob_bytes, db_size))
    })
    .await
    .map_err(|e| anyhow!("the restore task failed: {e}"))??;

    let secs = started.elapsed().as_secs_f64();
    eprintln!(
        "openloop: restored {} into {}: database {}, {blobs_written} blobs ({}), {} sessions, in {secs:.1} s",
        args.from.display(),
        db_path.display(),
        human(db_size),
        human(blob_bytes),
        manifest.counts.get("sessions").copied().unwrap_or(0)
    );
    println!(
        "{}",
        json!({
            "restored": args.from.display().to_string(),
            "database": db_path.display().to_string(),
            "replaced_existing": existing.is_some(),
            "database_bytes": db_size,
            "blobs": blobs_written,
            "blob_bytes": blob_bytes,
            "missing_blobs": manifest.missing_blobs,
            "counts": manifest.counts,
            "backup_created_at": manifest.created_at,
            "backup_openloop_version": manifest.openloop_version,
            "schema_version": manifest.schema_version,
            "seconds": (secs * 1000.0).round() / 1000.0,
        })
    );
    Ok(())
}
