//! Blob storage for artifacts, uploads and exports, over the `object_store` crate: a local
//! directory (`OPENLOOP_BLOB_STORE=local`, under the data dir) or any S3-compatible service
//! (`OPENLOOP_BLOB_STORE=s3`, `OPENLOOP_S3_*`), API.md §7.7, §8.3, §9.1.
//!
//! Invariant: this crate knows storage, nothing about HTTP handlers, SQL or the wire format.
//! Keys are server-generated ids (`artifacts/art_x/ver_y`), never user-supplied names. The one
//! HTTP-shaped piece is [`parse_range`], a pure helper for the download handler's `Range`
//! header.
//!
//! Guarantees:
//! - writes are atomic: a reader sees the old object, the new one, or nothing — never a
//!   partial object (local: temp file + rename; S3: one `PUT`, or a multipart upload that is
//!   completed only at the end and aborted on failure);
//! - reads are streamed in bounded chunks (constant memory, whatever the object size);
//! - error messages never contain credentials.

use std::fmt;
use std::ops::Range;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::stream::{BoxStream, Stream, StreamExt, TryStreamExt};
use object_store::aws::AmazonS3Builder;
use object_store::local::LocalFileSystem;
use object_store::path::Path;
use object_store::{ClientOptions, GetOptions, GetRange, GetResultPayload, ObjectStore, PutPayload, WriteMultipart};
use tokio::io::{AsyncReadExt, AsyncSeekExt};

mod range;

pub use range::{parse_range, RangeError};

/// Size of the parts of a multipart upload, and how much [`BlobStore::put_stream`] buffers
/// before it starts one (smaller streams are stored with a single `PUT`). S3 needs ≥ 5 MiB.
const PART_SIZE: usize = 8 * 1024 * 1024;
/// Parts of one upload in flight at once: memory per streamed upload ≲ (1 + this) × PART_SIZE.
const MAX_PARTS_IN_FLIGHT: usize = 2;
/// Chunk size of local-file reads.
const LOCAL_READ_CHUNK: usize = 512 * 1024;
/// Longest accepted key.
const MAX_KEY_LEN: usize = 1024;
/// Bound on [`BlobStore::check`].
const CHECK_TIMEOUT: Duration = Duration::from_secs(10);
/// Per-request timeout of the S3 client (connect to end of body). `object_store` resumes an
/// interrupted download with a range request, so this does not cap download time.
const S3_REQUEST_TIMEOUT: Duration = Duration::from_secs(300);
const S3_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Where blobs live.
#[derive(Clone, PartialEq, Eq)]
pub enum BlobConfig {
    /// A directory (created `0700` if missing).
    Local { root: PathBuf },
    /// An S3-compatible bucket (it must exist).
    S3 {
        /// `https://host[:port]`; `None` = AWS for `region`. With `path_style: false` the bucket
        /// is added as a sub-domain of this host (unless the host already starts with it).
        endpoint: Option<String>,
        bucket: String,
        region: String,
        /// Both or neither. `None` = the standard `AWS_*` environment variables, then
        /// web-identity / container / instance credentials.
        access_key_id: Option<String>,
        secret_access_key: Option<String>,
        /// `https://host/bucket/key` rather than `https://bucket.host/key`.
        path_style: bool,
        /// Accept an `http://` endpoint.
        allow_http: bool,
    },
}

impl fmt::Debug for BlobConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Local { root } => f.debug_struct("Local").field("root", root).finish(),
            Self::S3 { endpoint, bucket, region, access_key_id, secret_access_key, path_style, allow_http } => f
                .debug_struct("S3")
                .field("endpoint", endpoint)
                .field("bucket", bucket)
                .field("region", region)
                .field("access_key_id", &access_key_id.as_ref().map(|_| "<redacted>"))
                .field("secret_access_key", &secret_access_key.as_ref().map(|_| "<redacted>"))
                .field("path_style", path_style)
                .field("allow_http", allow_http)
                .finish(),
        }
    }
}

/// What the store knows about one object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlobMeta {
    pub size: u64,
    /// Strong validator, stable for the object as stored (it changes when the key is
    /// overwritten). Only `[A-Za-z0-9._-]`, without quotes: emit it as `ETag: "<etag>"`.
    /// Local: inode-mtime-size; S3: the service's ETag.
    pub etag: String,
}

/// A streamed read.
pub struct BlobRead {
    /// Size (of the whole object, not of the range) and ETag.
    pub meta: BlobMeta,
    /// The range being streamed, `Some` exactly when one was asked for (its end clamped to the
    /// object size).
    pub range: Option<Range<u64>>,
    /// The bytes, in chunks as the backend yields them (local: ≤ 64 KiB; S3: network reads
    /// bounded by the HTTP client's read buffer, well under 1 MiB).
    pub stream: BoxStream<'static, Result<Bytes, BlobError>>,
}

impl fmt::Debug for BlobRead {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BlobRead").field("meta", &self.meta).field("range", &self.range).finish_non_exhaustive()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BlobError {
    #[error("blob not found")]
    NotFound,
    #[error("blob exceeds the size limit")]
    TooLarge,
    #[error("invalid blob key: {0}")]
    InvalidKey(String),
    /// The storage cannot take writes right now (disk full, read-only, quota): retry later.
    #[error("blob storage unavailable: {0}")]
    Unavailable(String),
    /// Anything else from the backend (I/O, network, permissions, a satisfiable range being
    /// required, a failing upload stream). Never contains credentials.
    #[error("blob storage error: {0}")]
    Backend(String),
}

/// Handle on the configured blob store; cheap to clone.
#[derive(Clone)]
pub struct BlobStore {
    inner: Arc<Inner>,
}

struct Inner {
    store: Arc<dyn ObjectStore>,
    backend: Backend,
    /// Strings scrubbed from error messages.
    secrets: Vec<String>,
}

enum Backend {
    Local { root: PathBuf },
    S3 { bucket: String },
}

impl fmt::Debug for BlobStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.inner.backend {
            Backend::Local { root } => f.debug_struct("BlobStore::Local").field("root", root).finish(),
            Backend::S3 { bucket } => f.debug_struct("BlobStore::S3").field("bucket", bucket).finish(),
        }
    }
}

impl BlobStore {
    /// Opens the store. Local: creates `root` (mode `0700`) if missing. S3: builds the client
    /// without any request; call [`check`](Self::check) to verify the bucket is reachable.
    pub async fn open(cfg: BlobConfig) -> Result<Self, BlobError> {
        match cfg {
            BlobConfig::Local { root } => {
                let root2 = root.clone();
                let store = tokio::task::spawn_blocking(move || -> Result<_, String> {
                    create_dir_0700(&root2).map_err(|e| format!("creating {}: {e}", root2.display()))?;
                    LocalFileSystem::new_with_prefix(&root2).map(|s| s.with_automatic_cleanup(true)).map_err(|e| e.to_string())
                })
                .await
                .map_err(|e| BlobError::Backend(e.to_string()))?
                .map_err(BlobError::Backend)?;
                Ok(Self { inner: Arc::new(Inner { store: Arc::new(store), backend: Backend::Local { root }, secrets: Vec::new() }) })
            }
            BlobConfig::S3 { endpoint, bucket, region, access_key_id, secret_access_key, path_style, allow_http } => {
                if bucket.is_empty() {
                    return Err(BlobError::Backend("S3 bucket name is empty".into()));
                }
                if access_key_id.is_some() != secret_access_key.is_some() {
                    return Err(BlobError::Backend("S3 access key id and secret access key must be set together".into()));
                }
                // Explicit keys: nothing from the environment (a stray AWS_SESSION_TOKEN would
                // break them). Otherwise the standard AWS_* variables, then ambient credentials.
                let base = if access_key_id.is_some() { AmazonS3Builder::new() } else { AmazonS3Builder::from_env() };
                let mut builder = base.with_bucket_name(&bucket).with_region(&region).with_virtual_hosted_style_request(!path_style).with_client_options(
                    ClientOptions::new().with_allow_http(allow_http).with_timeout(S3_REQUEST_TIMEOUT).with_connect_timeout(S3_CONNECT_TIMEOUT),
                );
                if let Some(endpoint) = &endpoint {
                    let endpoint = if path_style { endpoint.trim_end_matches('/').to_string() } else { virtual_hosted_endpoint(endpoint, &bucket) };
                    builder = builder.with_endpoint(endpoint);
                }
                let mut secrets = Vec::new();
                if let (Some(id), Some(secret)) = (access_key_id, secret_access_key) {
                    secrets.push(secret.clone());
                    secrets.push(id.clone());
                    builder = builder.with_access_key_id(id).with_secret_access_key(secret);
                }
                secrets.retain(|s| s.len() >= 4);
                let store = builder.build().map_err(|e| BlobError::Backend(redact(&secrets, e.to_string())))?;
                Ok(Self { inner: Arc::new(Inner { store: Arc::new(store), backend: Backend::S3 { bucket }, secrets }) })
            }
        }
    }

    /// Cheap liveness round trip for `/readyz`: the root directory exists (local), or a
    /// one-page listing of an unused prefix succeeds (S3: bucket exists, credentials accepted,
    /// `s3:ListBucket` granted). Bounded to 10 s.
    pub async fn check(&self) -> Result<(), BlobError> {
        match &self.inner.backend {
            Backend::Local { root } => match tokio::fs::metadata(root).await {
                Ok(m) if m.is_dir() => Ok(()),
                Ok(_) => Err(BlobError::Backend(format!("{} is not a directory", root.display()))),
                Err(e) => Err(BlobError::Backend(format!("{}: {e}", root.display()))),
            },
            Backend::S3 { .. } => {
                let probe = Path::from("openloop-readyz-probe");
                match tokio::time::timeout(CHECK_TIMEOUT, self.inner.store.list_with_delimiter(Some(&probe))).await {
                    Ok(Ok(_)) => Ok(()),
                    Ok(Err(e)) => Err(match self.backend_err(e) {
                        BlobError::NotFound => BlobError::Backend("S3 bucket not found".into()),
                        e => e,
                    }),
                    Err(_) => Err(BlobError::Backend("S3 check timed out".into())),
                }
            }
        }
    }

    /// Stores `data` under `key` (server-generated, e.g. `artifacts/art_x/ver_y`), replacing any
    /// previous object. Atomic: readers never see a partial object (local: temp file + rename;
    /// S3: a single `PUT`).
    pub async fn put(&self, key: &str, data: Bytes) -> Result<BlobMeta, BlobError> {
        let path = validate_key(key)?;
        let size = data.len() as u64;
        let res = self.inner.store.put(&path, PutPayload::from(data)).await.map_err(|e| self.backend_err(e))?;
        self.meta_after_put(&path, size, res.e_tag).await
    }

    /// Stores a stream of chunks under `key`, like [`put`](Self::put) but in bounded memory.
    /// Streams up to 8 MiB are buffered and stored with one `PUT`; larger ones go through a
    /// multipart upload (local: a temp file) completed only at the end.
    ///
    /// More than `max_bytes` in total → [`BlobError::TooLarge`], detected before the excess is
    /// written; the upload is aborted and nothing is left behind (a previous object under `key`
    /// stays as it was). An `Err` item from the stream aborts likewise (→ `Backend`). Dropping
    /// the future mid-way aborts too (in a background task).
    pub async fn put_stream(
        &self,
        key: &str,
        mut stream: impl Stream<Item = Result<Bytes, std::io::Error>> + Send + Unpin,
        max_bytes: u64,
    ) -> Result<BlobMeta, BlobError> {
        let path = validate_key(key)?;
        let mut total: u64 = 0;
        let mut pending: Vec<Bytes> = Vec::new();
        let mut pending_len: usize = 0;
        let mut upload = UploadGuard(None);

        while let Some(chunk) = stream.next().await {
            let chunk = match chunk {
                Ok(chunk) => chunk,
                Err(e) => {
                    upload.abort().await;
                    return Err(BlobError::Backend(format!("reading the upload stream: {e}")));
                }
            };
            if chunk.is_empty() {
                continue;
            }
            total = total.saturating_add(chunk.len() as u64);
            if total > max_bytes {
                upload.abort().await;
                return Err(BlobError::TooLarge);
            }
            match upload.0.as_mut() {
                Some(w) => {
                    if let Err(e) = w.wait_for_capacity(MAX_PARTS_IN_FLIGHT).await {
                        upload.abort().await;
                        return Err(self.backend_err(e));
                    }
                    w.put(chunk);
                }
                None => {
                    pending_len += chunk.len();
                    pending.push(chunk);
                    if pending_len >= PART_SIZE {
                        let multipart = self.inner.store.put_multipart(&path).await.map_err(|e| self.backend_err(e))?;
                        let mut w = WriteMultipart::new_with_chunk_size(multipart, PART_SIZE);
                        for b in pending.drain(..) {
                            w.put(b);
                        }
                        pending_len = 0;
                        upload.0 = Some(w);
                    }
                }
            }
        }

        let res = match upload.0.take() {
            None => {
                let payload: PutPayload = pending.into_iter().collect();
                self.inner.store.put(&path, payload).await.map_err(|e| self.backend_err(e))?
            }
            Some(mut w) => {
                // Wait for the parts in flight while the upload can still be aborted on error;
                // `finish` then sends the last part and completes.
                if let Err(e) = w.wait_for_capacity(0).await {
                    UploadGuard(Some(w)).abort().await;
                    return Err(self.backend_err(e));
                }
                w.finish().await.map_err(|e| self.backend_err(e))?
            }
        };
        self.meta_after_put(&path, total, res.e_tag).await
    }

    /// Size and ETag of `key`; [`BlobError::NotFound`] if absent.
    pub async fn head(&self, key: &str) -> Result<BlobMeta, BlobError> {
        let path = validate_key(key)?;
        let meta = self.inner.store.head(&path).await.map_err(|e| self.backend_err(e))?;
        Ok(to_blob_meta(&meta))
    }

    /// Streams the whole object, or the bytes `[start, end)` of it (`end` is clamped to the
    /// size; `start` must be below the size, else `Backend` — use [`parse_range`] first). Memory
    /// use is constant: chunks are yielded as the backend reads them.
    pub async fn get(&self, key: &str, range: Option<Range<u64>>) -> Result<BlobRead, BlobError> {
        let path = validate_key(key)?;
        if let Some(r) = &range {
            if r.start > r.end {
                return Err(BlobError::Backend(format!("invalid byte range {}..{}", r.start, r.end)));
            }
            if r.start == r.end {
                // Nothing to read, but the object must exist.
                let meta = self.head(key).await?;
                return Ok(BlobRead { meta, range: Some(r.clone()), stream: futures::stream::empty().boxed() });
            }
        }
        let opts = GetOptions { range: range.clone().map(GetRange::Bounded), ..GetOptions::default() };
        let res = self.inner.store.get_opts(&path, opts).await.map_err(|e| self.backend_err(e))?;
        let meta = to_blob_meta(&res.meta);
        let actual = res.range.clone();
        let stream = match res.payload {
            GetResultPayload::File(file, _) => local_file_stream(file, actual.clone()),
            GetResultPayload::Stream(s) => {
                let secrets = self.inner.secrets.clone();
                s.map_err(move |e| to_blob_error(&secrets, e)).boxed()
            }
        };
        Ok(BlobRead { meta, range: range.map(|_| actual), stream })
    }

    /// Deletes `key`; deleting an absent key succeeds.
    pub async fn delete(&self, key: &str) -> Result<(), BlobError> {
        let path = validate_key(key)?;
        match self.inner.store.delete(&path).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(self.backend_err(e)),
        }
    }

    async fn meta_after_put(&self, path: &Path, size: u64, e_tag: Option<String>) -> Result<BlobMeta, BlobError> {
        match e_tag.as_deref().and_then(normalize_etag) {
            Some(etag) => Ok(BlobMeta { size, etag }),
            // Some S3-compatible services omit the ETag on PUT: ask.
            None => {
                let meta = self.inner.store.head(path).await.map_err(|e| self.backend_err(e))?;
                Ok(to_blob_meta(&meta))
            }
        }
    }

    fn backend_err(&self, e: object_store::Error) -> BlobError {
        to_blob_error(&self.inner.secrets, e)
    }
}

/// Holds an in-progress multipart upload; aborts it if dropped before completion.
struct UploadGuard(Option<WriteMultipart>);

impl UploadGuard {
    async fn abort(&mut self) {
        if let Some(w) = self.0.take() {
            if let Err(e) = w.abort().await {
                tracing::warn!(error = %e, "aborting a blob upload failed");
            }
        }
    }
}

impl Drop for UploadGuard {
    fn drop(&mut self) {
        if let Some(w) = self.0.take() {
            if let Ok(rt) = tokio::runtime::Handle::try_current() {
                rt.spawn(async move {
                    if let Err(e) = w.abort().await {
                        tracing::warn!(error = %e, "aborting a dropped blob upload failed");
                    }
                });
            }
        }
    }
}

fn to_blob_error(secrets: &[String], e: object_store::Error) -> BlobError {
    match e {
        object_store::Error::NotFound { .. } => BlobError::NotFound,
        e if storage_unavailable(&e) => BlobError::Unavailable(redact(secrets, e.to_string())),
        e => BlobError::Backend(redact(secrets, e.to_string())),
    }
}

/// An I/O error somewhere in the chain says the file system cannot take writes now:
/// ENOSPC (full), EROFS (read-only), EDQUOT (quota).
fn storage_unavailable(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut cur = Some(e);
    while let Some(err) = cur {
        if let Some(io) = err.downcast_ref::<std::io::Error>() {
            if matches!(io.raw_os_error(), Some(28 | 30 | 122)) {
                return true;
            }
        }
        cur = err.source();
    }
    false
}

fn redact(secrets: &[String], mut msg: String) -> String {
    for s in secrets {
        if msg.contains(s.as_str()) {
            msg = msg.replace(s.as_str(), "<redacted>");
        }
    }
    msg
}

fn to_blob_meta(meta: &object_store::ObjectMeta) -> BlobMeta {
    let etag = match meta.e_tag.as_deref().and_then(normalize_etag) {
        Some(e) => e,
        None => format!("{:x}-{:x}", meta.last_modified.timestamp_micros(), meta.size),
    };
    BlobMeta { size: meta.size, etag }
}

/// Strips `W/` and quotes; anything outside `[A-Za-z0-9._-]` → the hex of the raw value.
/// `None` for an empty value.
fn normalize_etag(raw: &str) -> Option<String> {
    let t = raw.trim();
    let t = t.strip_prefix("W/").unwrap_or(t).trim_matches('"');
    if t.is_empty() {
        None
    } else if t.bytes().all(is_token_byte) {
        Some(t.to_string())
    } else {
        Some(raw.bytes().map(|b| format!("{b:02x}")).collect())
    }
}

fn is_token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-')
}

/// `[A-Za-z0-9_./-]`, 1..=1024 bytes, no leading or trailing `/`, no empty or `.` segment, no
/// `..` anywhere.
fn validate_key(key: &str) -> Result<Path, BlobError> {
    let bad = |why: &str| Err(BlobError::InvalidKey(format!("{key:?}: {why}")));
    if key.is_empty() {
        return bad("empty");
    }
    if key.len() > MAX_KEY_LEN {
        return bad("longer than 1024 bytes");
    }
    if !key.bytes().all(|b| is_token_byte(b) || b == b'/') {
        return bad("only A-Z a-z 0-9 _ . / - are allowed");
    }
    if key.contains("..") {
        return bad("contains ..");
    }
    if key.starts_with('/') || key.ends_with('/') {
        return bad("leading or trailing /");
    }
    if key.split('/').any(|seg| seg.is_empty() || seg == ".") {
        return bad("empty or . path segment");
    }
    Path::parse(key).map_err(|e| BlobError::InvalidKey(format!("{key:?}: {e}")))
}

/// `https://host:port/x` + `bucket` → `https://bucket.host:port/x`, unless already there.
fn virtual_hosted_endpoint(endpoint: &str, bucket: &str) -> String {
    let endpoint = endpoint.trim_end_matches('/');
    let (scheme, rest) = match endpoint.split_once("://") {
        Some((s, r)) => (format!("{s}://"), r),
        None => (String::new(), endpoint),
    };
    if rest.starts_with(&format!("{bucket}.")) {
        endpoint.to_string()
    } else {
        format!("{scheme}{bucket}.{rest}")
    }
}

fn create_dir_0700(root: &std::path::Path) -> std::io::Result<()> {
    let mut b = std::fs::DirBuilder::new();
    b.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        b.mode(0o700);
    }
    b.create(root)
}

/// Reads `range` of an open local file in ≤ 64 KiB chunks.
fn local_file_stream(file: std::fs::File, range: Range<u64>) -> BoxStream<'static, Result<Bytes, BlobError>> {
    let io_err = |e: std::io::Error| BlobError::Backend(format!("reading a local blob: {e}"));
    futures::stream::once(async move {
        let mut file = tokio::fs::File::from_std(file);
        file.seek(std::io::SeekFrom::Start(range.start)).await?;
        let reader = file.take(range.end - range.start);
        Ok::<_, std::io::Error>(tokio_util::io::ReaderStream::with_capacity(reader, LOCAL_READ_CHUNK))
    })
    .try_flatten()
    .map_err(io_err)
    .boxed()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys() {
        for ok in ["a", "artifacts/art_x/ver_y", "exports/e-1.csv", "A.b_c-d/0/.hidden", "x.y"] {
            assert!(validate_key(ok).is_ok(), "{ok}");
        }
        for bad in ["", "/a", "a/", "a//b", "a/./b", "./a", "a/../b", "..", "a..b", "a b", "a\\b", "a#1", "é", "a?b", "a%2f", "a\0b"] {
            assert!(matches!(validate_key(bad), Err(BlobError::InvalidKey(_))), "{bad:?}");
        }
        assert!(validate_key(&"a".repeat(1024)).is_ok());
        assert!(validate_key(&"a".repeat(1025)).is_err());
    }

    #[test]
    fn etags() {
        assert_eq!(normalize_etag("\"abc123\"").as_deref(), Some("abc123"));
        assert_eq!(normalize_etag("W/\"abc-2\"").as_deref(), Some("abc-2"));
        assert_eq!(normalize_etag("1a2-5f3-10").as_deref(), Some("1a2-5f3-10"));
        assert_eq!(normalize_etag("\"a b\"").as_deref(), Some("2261206222"));
        assert_eq!(normalize_etag("\"\""), None);
    }

    #[test]
    fn virtual_hosted() {
        assert_eq!(virtual_hosted_endpoint("https://s3.example.com", "b"), "https://b.s3.example.com");
        assert_eq!(virtual_hosted_endpoint("https://s3.example.com:9000/", "b"), "https://b.s3.example.com:9000");
        assert_eq!(virtual_hosted_endpoint("https://b.s3.example.com", "b"), "https://b.s3.example.com");
    }

    #[test]
    fn secrets_are_redacted() {
        let s = vec!["SECRETKEY".to_string()];
        assert_eq!(redact(&s, "bad SECRETKEY here".into()), "bad <redacted> here");
        let cfg = BlobConfig::S3 {
            endpoint: None,
            bucket: "b".into(),
            region: "r".into(),
            access_key_id: Some("AKIDXXXX".into()),
            secret_access_key: Some("SECRETKEY".into()),
            path_style: true,
            allow_http: false,
        };
        let dbg = format!("{cfg:?}");
        assert!(!dbg.contains("SECRETKEY") && !dbg.contains("AKIDXXXX"), "{dbg}");
    }
}
