//! One behavioural suite, run for both storage modes: `local::*` against a temp directory and
//! `s3::*` against a real S3-compatible server (moto).
//!
//! The S3 endpoint comes from `OPENLOOP_TEST_S3_ENDPOINT`; when it is unset the first S3 test
//! starts `scripts/s3-test-server` (a venv with `moto[server]`) and the server is killed when
//! the test process exits. If it cannot be started the S3 tests fail, they are never skipped.

use std::io;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;
use std::time::Duration;

use blobs::{parse_range, BlobConfig, BlobError, BlobMeta, BlobStore};
use bytes::Bytes;
use futures::StreamExt;

const MIB: usize = 1024 * 1024;

/// Bound on any chunk a read yields (32× below the large object): reads must stream, never
/// buffer the object. Observed: local 64 KiB, S3 (hyper read buffer) ≲ 700 KiB.
const MAX_READ_CHUNK: usize = 2 * MIB;

/// Per-test bound, so a stuck backend fails instead of hanging the run.
const TEST_TIMEOUT: Duration = Duration::from_secs(120);

// ---------------------------------------------------------------------------------------------
// Harness

struct Harness {
    store: BlobStore,
    kind: Kind,
}

enum Kind {
    Local { _dir: tempfile::TempDir, root: PathBuf },
    S3 { endpoint: String, bucket: String },
}

impl Harness {
    async fn local() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        // A root that does not exist yet: open() must create it.
        let root = dir.path().join("blobs");
        let store = BlobStore::open(BlobConfig::Local { root: root.clone() }).await.expect("open local store");
        Harness { store, kind: Kind::Local { _dir: dir, root } }
    }

    async fn s3() -> Self {
        let endpoint = s3_endpoint();
        static N: AtomicUsize = AtomicUsize::new(0);
        let bucket = format!("openloop-test-{}-{}", std::process::id(), N.fetch_add(1, Ordering::Relaxed));
        create_bucket(&endpoint, &bucket).await;
        let store = BlobStore::open(s3_config(&endpoint, &bucket)).await.expect("open s3 store");
        Harness { store, kind: Kind::S3 { endpoint, bucket } }
    }

    /// Everything stored: local files (including upload temp files), or S3 objects and
    /// in-progress multipart uploads.
    async fn leftovers(&self) -> Vec<String> {
        match &self.kind {
            Kind::Local { root, .. } => {
                let mut out = Vec::new();
                let mut dirs = vec![root.clone()];
                while let Some(d) = dirs.pop() {
                    for e in std::fs::read_dir(&d).expect("read_dir") {
                        let e = e.expect("dir entry");
                        if e.file_type().expect("file type").is_dir() {
                            dirs.push(e.path());
                        } else {
                            out.push(e.path().strip_prefix(root).unwrap().display().to_string());
                        }
                    }
                }
                out
            }
            Kind::S3 { endpoint, bucket } => {
                let http = reqwest::Client::new();
                let list = |q: &'static str| {
                    let req = http.get(format!("{endpoint}/{bucket}?{q}"));
                    async move { req.send().await.expect("list").text().await.expect("list body") }
                };
                let objects = list("list-type=2").await;
                let uploads = list("uploads").await;
                let mut out: Vec<String> = xml_values(&objects, "Key");
                out.extend(xml_values(&uploads, "UploadId").into_iter().map(|u| format!("upload {u}")));
                out
            }
        }
    }
}

fn xml_values(xml: &str, tag: &str) -> Vec<String> {
    let (open, close) = (format!("<{tag}>"), format!("</{tag}>"));
    xml.split(open.as_str()).skip(1).filter_map(|s| s.split_once(close.as_str()).map(|(v, _)| v.to_string())).collect()
}

fn s3_config(endpoint: &str, bucket: &str) -> BlobConfig {
    BlobConfig::S3 {
        endpoint: Some(endpoint.to_string()),
        bucket: bucket.to_string(),
        region: "us-east-1".into(),
        access_key_id: Some("testing-key-id".into()),
        secret_access_key: Some("testing-secret".into()),
        path_style: true,
        allow_http: true,
    }
}

async fn create_bucket(endpoint: &str, bucket: &str) {
    // moto accepts unsigned requests; object_store cannot create buckets.
    let resp =
        reqwest::Client::new().put(format!("{endpoint}/{bucket}")).send().await.unwrap_or_else(|e| panic!("creating bucket {bucket} at {endpoint}: {e}"));
    assert!(resp.status().is_success(), "creating bucket {bucket}: {}", resp.status());
}

/// The S3 endpoint: `OPENLOOP_TEST_S3_ENDPOINT`, else a moto server started once per test
/// process by `scripts/s3-test-server` and killed when the process exits.
fn s3_endpoint() -> String {
    static ENDPOINT: OnceLock<Result<String, String>> = OnceLock::new();
    let res = ENDPOINT.get_or_init(|| {
        if let Ok(ep) = std::env::var("OPENLOOP_TEST_S3_ENDPOINT") {
            if !ep.trim().is_empty() {
                return Ok(ep.trim().trim_end_matches('/').to_string());
            }
        }
        start_moto()
    });
    match res {
        Ok(ep) => ep.clone(),
        Err(msg) => panic!("{msg}"),
    }
}

static SERVER_PID: OnceLock<libc::pid_t> = OnceLock::new();

extern "C" fn kill_moto() {
    if let Some(pid) = SERVER_PID.get() {
        // SAFETY: plain kill(2) of the server we started.
        unsafe {
            libc::kill(*pid, libc::SIGTERM);
        }
    }
}

fn start_moto() -> Result<String, String> {
    let repo = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let script = repo.join("scripts/s3-test-server");
    let pidfile = std::env::temp_dir().join(format!("openloop-blobs-moto-{}.pid", std::process::id()));
    let out = std::process::Command::new(&script)
        .arg(&pidfile)
        .env("S3_TEST_SERVER_WATCH_PID", std::process::id().to_string())
        .stdin(std::process::Stdio::null())
        .output()
        .map_err(|e| format!("S3 tests: cannot run {}: {e}", script.display()))?;
    if !out.status.success() {
        return Err(format!(
            "S3 tests need an S3-compatible server and could not start one.\n\
             `{}` failed ({}):\n{}\n\
             Fix: make python3 (with venv) and PyPI's `moto[server]` installable, or point \
             OPENLOOP_TEST_S3_ENDPOINT at a running S3-compatible server.",
            script.display(),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    let pid = std::fs::read_to_string(&pidfile)
        .ok()
        .and_then(|s| s.trim().parse::<libc::pid_t>().ok())
        .ok_or_else(|| format!("S3 tests: no pid in {}", pidfile.display()))?;
    let _ = std::fs::remove_file(&pidfile);
    let _ = SERVER_PID.set(pid);
    // SAFETY: registers a plain extern "C" fn, run when the test binary exits.
    unsafe {
        libc::atexit(kill_moto);
    }
    let endpoint = String::from_utf8_lossy(&out.stdout).trim().to_string();
    if !endpoint.starts_with("http://") {
        return Err(format!("S3 tests: unexpected output from s3-test-server: {endpoint:?}"));
    }
    Ok(endpoint)
}

// ---------------------------------------------------------------------------------------------
// Helpers

/// A deterministic pattern with period 251 (prime: a misplaced 64 KiB block is detected).
fn pattern(offset: u64, len: usize) -> Vec<u8> {
    (0..len as u64).map(|i| ((offset + i) % 251) as u8).collect()
}

/// Compares a chunk with the pattern without materialising the whole object.
struct PatternChecker {
    base: Vec<u8>,
}

impl PatternChecker {
    fn new() -> Self {
        PatternChecker { base: pattern(0, 251 + 4 * MIB) }
    }
    fn expected(&self, offset: u64, len: usize) -> &[u8] {
        assert!(len <= 4 * MIB);
        let start = (offset % 251) as usize;
        &self.base[start..start + len]
    }
}

struct ReadStats {
    bytes: Vec<u8>,
    chunks: usize,
    max_chunk: usize,
}

async fn read_all(store: &BlobStore, key: &str, range: Option<std::ops::Range<u64>>) -> (blobs::BlobRead, ReadStats) {
    let mut read = store.get(key, range).await.unwrap_or_else(|e| panic!("get {key}: {e}"));
    let mut stats = ReadStats { bytes: Vec::new(), chunks: 0, max_chunk: 0 };
    while let Some(chunk) = read.stream.next().await {
        let chunk = chunk.expect("chunk");
        stats.chunks += 1;
        stats.max_chunk = stats.max_chunk.max(chunk.len());
        stats.bytes.extend_from_slice(&chunk);
    }
    assert!(stats.max_chunk <= MAX_READ_CHUNK, "chunk of {} bytes", stats.max_chunk);
    (read, stats)
}

async fn get_bytes(store: &BlobStore, key: &str, range: Option<std::ops::Range<u64>>) -> Vec<u8> {
    read_all(store, key, range).await.1.bytes
}

/// A stream of `total` pattern bytes in `chunk`-sized pieces.
fn pattern_stream(total: usize, chunk: usize) -> impl futures::Stream<Item = Result<Bytes, io::Error>> + Send + Unpin + 'static {
    let checker = std::sync::Arc::new(PatternChecker::new());
    futures::stream::iter((0..total).step_by(chunk).map(move |off| {
        let len = chunk.min(total - off);
        Ok(Bytes::copy_from_slice(checker.expected(off as u64, len)))
    }))
}

fn assert_etag_token(meta: &BlobMeta) {
    assert!(!meta.etag.is_empty(), "empty etag");
    assert!(meta.etag.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b)), "etag not a safe token: {:?}", meta.etag);
}

// ---------------------------------------------------------------------------------------------
// The suite (generic over the backend)

mod cases {
    use super::*;

    pub async fn check_ok(h: &Harness) {
        h.store.check().await.expect("check");
        // and a broken store fails the check
        let broken = match &h.kind {
            Kind::Local { .. } => {
                let dir = tempfile::tempdir().unwrap();
                let root = dir.path().join("gone");
                let s = BlobStore::open(BlobConfig::Local { root: root.clone() }).await.unwrap();
                std::fs::remove_dir(&root).unwrap();
                s
            }
            Kind::S3 { endpoint, .. } => BlobStore::open(s3_config(endpoint, "no-such-bucket-openloop")).await.unwrap(),
        };
        let err = broken.check().await.expect_err("check of a broken store");
        assert!(matches!(err, BlobError::Backend(_)), "{err:?}");
        assert!(!err.to_string().contains("testing-secret"), "{err}");
    }

    pub async fn put_get_roundtrip(h: &Harness) {
        let data = Bytes::from_static(b"hello, blob world");
        let meta = h.store.put("artifacts/art_1/ver_1", data.clone()).await.unwrap();
        assert_eq!(meta.size, data.len() as u64);
        assert_etag_token(&meta);
        let (read, stats) = read_all(&h.store, "artifacts/art_1/ver_1", None).await;
        assert_eq!(stats.bytes, data);
        assert_eq!(read.meta, meta);
        assert_eq!(read.range, None);
        // empty object
        let meta = h.store.put("artifacts/art_1/empty", Bytes::new()).await.unwrap();
        assert_eq!(meta.size, 0);
        assert_etag_token(&meta);
        assert!(get_bytes(&h.store, "artifacts/art_1/empty", None).await.is_empty());
        assert_eq!(h.store.head("artifacts/art_1/empty").await.unwrap().size, 0);
    }

    pub async fn head_size_and_etag(h: &Harness) {
        let put = h.store.put("a/b", Bytes::from(pattern(0, 3000))).await.unwrap();
        let head = h.store.head("a/b").await.unwrap();
        assert_eq!(head, put);
        assert_eq!(head.size, 3000);
        assert_etag_token(&head);
        // stable while the object is unchanged
        assert_eq!(h.store.head("a/b").await.unwrap().etag, head.etag);
        assert_eq!(h.store.get("a/b", None).await.unwrap().meta.etag, head.etag);
        // a different object has a different etag
        let other = h.store.put("a/c", Bytes::from(pattern(1, 3000))).await.unwrap();
        assert_ne!(other.etag, head.etag);
    }

    pub async fn range_reads(h: &Harness) {
        let size = 10_000u64;
        let data = pattern(0, size as usize);
        h.store.put("r/obj", Bytes::from(data.clone())).await.unwrap();
        let cases = [
            ("bytes=0-0", 0..1),
            ("bytes=0-99", 0..100),
            ("bytes=1234-5677", 1234..5678),
            ("bytes=9999-", 9999..10_000),
            ("bytes=7000-", 7000..10_000),
            ("bytes=-1", 9999..10_000),
            ("bytes=-300", 9700..10_000),
            ("bytes=-20000", 0..10_000),
            ("bytes=9000-99999", 9000..10_000),
        ];
        for (header, want) in cases {
            let r = parse_range(header, size).unwrap().unwrap();
            assert_eq!(r, want, "{header}");
            let (read, stats) = read_all(&h.store, "r/obj", Some(r.clone())).await;
            assert_eq!(read.range, Some(want.clone()), "{header}");
            assert_eq!(read.meta.size, size, "{header}: meta.size is the object size");
            assert_eq!(stats.bytes, &data[want.start as usize..want.end as usize], "{header}");
        }
        // an end past the object is clamped
        let (read, stats) = read_all(&h.store, "r/obj", Some(9990..50_000)).await;
        assert_eq!(read.range, Some(9990..10_000));
        assert_eq!(stats.bytes, &data[9990..]);
        // an empty range yields nothing, but still needs the object
        let (read, stats) = read_all(&h.store, "r/obj", Some(5..5)).await;
        assert_eq!((read.range, stats.bytes.len()), (Some(5..5), 0));
        assert_eq!(h.store.get("r/missing", Some(5..5)).await.err(), Some(BlobError::NotFound));
        // unsatisfiable ranges are the caller's 416
        assert!(parse_range("bytes=10000-", size).is_err());
        assert!(matches!(h.store.get("r/obj", Some(10_000..10_010)).await, Err(BlobError::Backend(_))));
    }

    pub async fn missing_is_not_found(h: &Harness) {
        assert_eq!(h.store.get("nope/x", None).await.err(), Some(BlobError::NotFound));
        assert_eq!(h.store.get("nope/x", Some(0..10)).await.err(), Some(BlobError::NotFound));
        assert_eq!(h.store.head("nope/x").await.err(), Some(BlobError::NotFound));
    }

    pub async fn delete_is_idempotent(h: &Harness) {
        h.store.put("d/one", Bytes::from_static(b"x")).await.unwrap();
        h.store.delete("d/one").await.unwrap();
        assert_eq!(h.store.head("d/one").await.err(), Some(BlobError::NotFound));
        assert_eq!(h.store.get("d/one", None).await.err(), Some(BlobError::NotFound));
        h.store.delete("d/one").await.unwrap();
        h.store.delete("never/existed").await.unwrap();
        assert_eq!(h.leftovers().await, Vec::<String>::new());
    }

    pub async fn overwrite_replaces(h: &Harness) {
        let first = h.store.put("o/k", Bytes::from_static(b"first version, longer")).await.unwrap();
        let second = h.store.put("o/k", Bytes::from_static(b"second")).await.unwrap();
        assert_ne!(first.etag, second.etag);
        assert_eq!(get_bytes(&h.store, "o/k", None).await, b"second");
        assert_eq!(h.store.head("o/k").await.unwrap(), second);
        // and a streamed overwrite
        let third = h.store.put_stream("o/k", pattern_stream(1000, 100), 1000).await.unwrap();
        assert_eq!(get_bytes(&h.store, "o/k", None).await, pattern(0, 1000));
        assert_eq!(h.store.head("o/k").await.unwrap(), third);
        assert_eq!(h.leftovers().await.len(), 1, "{:?}", h.leftovers().await);
    }

    pub async fn put_stream_5mib_small_chunks(h: &Harness) {
        let total = 5 * MIB + 123;
        let meta = h.store.put_stream("s/five", pattern_stream(total, 16 * 1024), 6 * MIB as u64).await.unwrap();
        assert_eq!(meta.size, total as u64);
        assert_etag_token(&meta);
        assert_eq!(h.store.head("s/five").await.unwrap(), meta);
        assert!(get_bytes(&h.store, "s/five", None).await == pattern(0, total));
        // exactly max_bytes is allowed
        let meta = h.store.put_stream("s/exact", pattern_stream(4096, 1000), 4096).await.unwrap();
        assert_eq!(meta.size, 4096);
        // empty stream → empty object
        let meta = h.store.put_stream("s/empty", futures::stream::iter(Vec::new()), 0).await.unwrap();
        assert_eq!(meta.size, 0);
        assert!(get_bytes(&h.store, "s/empty", None).await.is_empty());
    }

    pub async fn put_stream_too_large(h: &Harness) {
        // below the multipart threshold: rejected while still buffering
        let err = h.store.put_stream("big/small", pattern_stream(2 * MIB, 64 * 1024), MIB as u64).await;
        assert_eq!(err.err(), Some(BlobError::TooLarge));
        assert_eq!(h.store.head("big/small").await.err(), Some(BlobError::NotFound));
        // past the multipart threshold (8 MiB): parts already uploaded are aborted
        let err = h.store.put_stream("big/multi", pattern_stream(20 * MIB, MIB), 12 * MIB as u64).await;
        assert_eq!(err.err(), Some(BlobError::TooLarge));
        assert_eq!(h.store.head("big/multi").await.err(), Some(BlobError::NotFound));
        // one byte over
        let err = h.store.put_stream("big/byte", pattern_stream(4097, 4097), 4096).await;
        assert_eq!(err.err(), Some(BlobError::TooLarge));
        // nothing left behind: no object, no temp file, no pending multipart upload
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert_eq!(h.leftovers().await, Vec::<String>::new());
        // a rejected overwrite keeps the previous object
        h.store.put("big/keep", Bytes::from_static(b"old")).await.unwrap();
        let err = h.store.put_stream("big/keep", pattern_stream(10 * MIB, MIB), 9 * MIB as u64).await;
        assert_eq!(err.err(), Some(BlobError::TooLarge));
        assert_eq!(get_bytes(&h.store, "big/keep", None).await, b"old");
    }

    pub async fn put_stream_error_aborts(h: &Harness) {
        for (key, good) in [("e/small", 3), ("e/multi", 10)] {
            let mut items: Vec<Result<Bytes, io::Error>> = (0..good).map(|_| Ok(Bytes::from(vec![7u8; MIB]))).collect();
            items.push(Err(io::Error::new(io::ErrorKind::ConnectionReset, "client went away")));
            let err = h.store.put_stream(key, futures::stream::iter(items), 100 * MIB as u64).await;
            assert!(matches!(&err, Err(BlobError::Backend(m)) if m.contains("client went away")), "{err:?}");
            assert_eq!(h.store.head(key).await.err(), Some(BlobError::NotFound));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert_eq!(h.leftovers().await, Vec::<String>::new());
    }

    pub async fn in_progress_upload_is_invisible(h: &Harness) {
        let (tx, rx) = futures::channel::mpsc::channel::<Result<Bytes, io::Error>>(4);
        let store = h.store.clone();
        let task = tokio::spawn(async move { store.put_stream("p/obj", rx, 64 * MIB as u64).await });
        let mut tx = tx;
        use futures::SinkExt;
        // 10 MiB sent: the multipart upload (local: temp file) has started
        for _ in 0..10 {
            tx.send(Ok(Bytes::from(vec![1u8; MIB]))).await.unwrap();
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(h.store.head("p/obj").await.err(), Some(BlobError::NotFound));
        assert_eq!(h.store.get("p/obj", None).await.err(), Some(BlobError::NotFound));
        tx.send(Ok(Bytes::from(vec![2u8; 1000]))).await.unwrap();
        drop(tx);
        let meta = task.await.unwrap().unwrap();
        assert_eq!(meta.size, 10 * MIB as u64 + 1000);
        assert_eq!(h.store.head("p/obj").await.unwrap(), meta);
        let tail = get_bytes(&h.store, "p/obj", parse_range("bytes=-1001", meta.size).unwrap()).await;
        assert_eq!(tail[0], 1);
        assert!(tail[1..].iter().all(|&b| b == 2));
    }

    pub async fn invalid_keys(h: &Harness) {
        for key in ["", "/abs", "trail/", "a//b", "a/../b", "..", "a/./b", "sp ace", "q?x", "hash#1", "ünï", "back\\slash"] {
            let inv = |r: Result<(), BlobError>| assert!(matches!(r, Err(BlobError::InvalidKey(_))), "{key:?}: {r:?}");
            inv(h.store.put(key, Bytes::from_static(b"x")).await.map(drop));
            inv(h.store.put_stream(key, pattern_stream(10, 10), 10).await.map(drop));
            inv(h.store.head(key).await.map(drop));
            inv(h.store.get(key, None).await.map(drop));
            inv(h.store.delete(key).await);
        }
        assert_eq!(h.leftovers().await, Vec::<String>::new());
    }

    /// 64 MiB written in 256 KiB chunks and read back through the stream: bounded chunks,
    /// checked piece by piece against the pattern, never held whole.
    pub async fn large_object_streams(h: &Harness) {
        let total = 64 * MIB;
        let meta = h.store.put_stream("large/obj", pattern_stream(total, 256 * 1024), total as u64).await.unwrap();
        assert_eq!(meta.size, total as u64);
        assert_eq!(h.store.head("large/obj").await.unwrap(), meta);

        let checker = PatternChecker::new();
        let mut read = h.store.get("large/obj", None).await.unwrap();
        assert_eq!(read.meta, meta);
        let (mut offset, mut chunks, mut max_chunk) = (0u64, 0usize, 0usize);
        while let Some(chunk) = read.stream.next().await {
            let chunk = chunk.unwrap();
            assert!(chunk.len() <= MAX_READ_CHUNK, "chunk of {} bytes at {offset}", chunk.len());
            assert!(chunk[..] == *checker.expected(offset, chunk.len()), "content mismatch at {offset}");
            offset += chunk.len() as u64;
            chunks += 1;
            max_chunk = max_chunk.max(chunk.len());
        }
        assert_eq!(offset, total as u64);
        assert!(chunks >= total / MAX_READ_CHUNK, "{chunks} chunks");
        eprintln!("large_object_streams: {chunks} chunks, largest {max_chunk} bytes");

        // ranges across part boundaries
        let r = 8 * MIB as u64 - 10..8 * MIB as u64 + 10;
        assert_eq!(get_bytes(&h.store, "large/obj", Some(r.clone())).await, pattern(r.start, 20));
        let r = parse_range("bytes=-100", total as u64).unwrap().unwrap();
        assert_eq!(get_bytes(&h.store, "large/obj", Some(r.clone())).await, pattern(r.start, 100));
    }
}

// ---------------------------------------------------------------------------------------------
// Instantiation: the same cases for each backend

macro_rules! suite {
    ($($case:ident),* $(,)?) => {
        mod local {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    let h = crate::Harness::local().await;
                    tokio::time::timeout(crate::TEST_TIMEOUT, crate::cases::$case(&h)).await.expect("timed out");
                }
            )*
        }
        mod s3 {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    let h = crate::Harness::s3().await;
                    tokio::time::timeout(crate::TEST_TIMEOUT, crate::cases::$case(&h)).await.expect("timed out");
                }
            )*
        }
    };
}

suite!(
    check_ok,
    put_get_roundtrip,
    head_size_and_etag,
    range_reads,
    missing_is_not_found,
    delete_is_idempotent,
    overwrite_replaces,
    put_stream_5mib_small_chunks,
    put_stream_too_large,
    put_stream_error_aborts,
    in_progress_upload_is_invisible,
    invalid_keys,
    large_object_streams,
);

/// Local-only: the root is created with mode 0700.
#[cfg(unix)]
#[tokio::test]
async fn local_root_is_created_0700() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("nested/blobs");
    BlobStore::open(BlobConfig::Local { root: root.clone() }).await.unwrap();
    let mode = std::fs::metadata(&root).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o700);
}
