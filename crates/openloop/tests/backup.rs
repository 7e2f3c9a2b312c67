//! `openloop backup` / `openloop restore` against real servers: a backup taken while
//! sessions keep completing and writing artifacts restores into a fresh data directory
//! whose server serves every session completed in the snapshot with its messages, and
//! every artifact byte for byte; corrupted archives and occupied targets are refused.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine as _;
use serde_json::{json, Value};
use testkit::fake_llm::{FakeLlm, Reply};
use testkit::{send, Server, ADMIN_KEY};

fn bin() -> &'static Path {
    env!("CARGO_BIN_EXE_openloop").as_ref()
}

fn sqlite_url(dir: &Path) -> String {
    format!("sqlite://{}", dir.join("openloop.db").display())
}

/// A server on SQLite in `dir` (whatever OPENLOOP_TEST_DATABASE says: backups are SQLite's).
fn start_in(dir: &Path, fake: &FakeLlm, extra: &[(&str, &str)]) -> Server {
    let url = fake.openai_base_url();
    let db = sqlite_url(dir);
    let mut env: Vec<(&str, &str)> = vec![("OPENAI_BASE_URL", &url), ("OPENAI_API_KEY", "sk-test"), ("OPENLOOP_DATABASE_URL", &db)];
    env.extend_from_slice(extra);
    Server::start_in(bin(), dir, &env)
}

/// The known bytes of job `i`'s artifact: 1 KiB to ~190 KiB of pseudo-random data.
fn artifact_bytes(i: usize) -> Vec<u8> {
    let len = 1024 + (i * 7919) % (190 * 1024);
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15 ^ (i as u64).wrapping_mul(0x2545_F491_4F6C_DD1D);
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

/// Runs the CLI with `args` on `data_dir` (SQLite there); returns (success, stdout JSON, stderr).
async fn cli(data_dir: &Path, args: &[&str]) -> (bool, Value, String) {
    cli_env(data_dir, args, &[]).await
}

async fn cli_env(data_dir: &Path, args: &[&str], env: &[(String, String)]) -> (bool, Value, String) {
    let out = tokio::process::Command::new(bin())
        .args(args)
        .arg("--data-dir")
        .arg(data_dir)
        .env("OPENLOOP_DATABASE_URL", sqlite_url(data_dir))
        .env_remove("OPENLOOP_CONFIG")
        .env_remove("OPENLOOP_BLOB_STORE")
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .output()
        .await
        .expect("run openloop");
    let stdout = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    (out.status.success(), stdout, String::from_utf8_lossy(&out.stderr).into_owned())
}

struct Load {
    next: AtomicUsize,
    stop: AtomicBool,
    /// job number → session id, for sessions seen `completed`.
    completed: Mutex<BTreeMap<usize, String>>,
}

/// One session: the fake provider writes job `i`'s artifact, then answers `done i`.
async fn run_job(s: &Server, fake: &FakeLlm, agent: &str, i: usize) -> String {
    let needle = format!("[job-{i}]");
    let content = base64::engine::general_purpose::STANDARD.encode(artifact_bytes(i));
    fake.on_user_contains(&needle, Reply::tool_call("write_artifact", json!({"filename": format!("f{i}.bin"), "content": content, "encoding": "base64"})));
    fake.on_user_contains(&needle, Reply::text(format!("done {i}")));
    let (st, b, _) = send(s.post(ADMIN_KEY, &format!("/agents/{agent}/sessions"), json!({"input": format!("{needle} write the file")}))).await;
    assert!(st == 201 || st == 202, "{st} {b}");
    let sid = b["session"]["id"].as_str().expect("session id").to_string();
    for _ in 0..1500 {
        let (_, b, _) = send(s.get(ADMIN_KEY, &format!("/sessions/{sid}"))).await;
        match b["session"]["state"].as_str() {
            Some("completed") => return sid,
            Some("failed") | Some("cancelled") => panic!("job {i} ended: {b}"),
            _ => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    }
    panic!("job {i} did not complete");
}

/// Messages with signed URLs (which embed an expiry) replaced by a marker.
fn normalized(v: &Value) -> Value {
    match v {
        Value::String(s) if s.contains("sig=") => Value::String("<signed>".into()),
        Value::Array(a) => Value::Array(a.iter().map(normalized).collect()),
        Value::Object(o) => Value::Object(o.iter().map(|(k, v)| (k.clone(), normalized(v))).collect()),
        other => other.clone(),
    }
}

async fn all_sessions(s: &Server, agent: &str) -> Vec<Value> {
    let mut out = Vec::new();
    let mut url = format!("/agents/{agent}/sessions?page_size=100");
    loop {
        let (st, b, _) = send(s.get(ADMIN_KEY, &url)).await;
        assert_eq!(st, 200, "{b}");
        out.extend(b["sessions"].as_array().expect("sessions").iter().cloned());
        match b["next_cursor"].as_str() {
            Some(c) => url = format!("/agents/{agent}/sessions?page_size=100&cursor={c}"),
            None => return out,
        }
    }
}

async fn session_messages(s: &Server, sid: &str) -> Value {
    let (st, b, _) = send(s.get(ADMIN_KEY, &format!("/sessions/{sid}"))).await;
    assert_eq!(st, 200, "{b}");
    normalized(&b["session"]["messages"])
}

fn dir_is_empty_or_absent(p: &Path) -> bool {
    match std::fs::read_dir(p) {
        Ok(mut it) => it.next().is_none(),
        Err(_) => true,
    }
}

fn leftovers(dir: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(dir)
        .map(|it| it.filter_map(Result::ok).map(|e| e.path()).filter(|p| p.file_name().is_some_and(|n| n.to_string_lossy().starts_with('.'))).collect())
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backup_under_load_restores_sessions_and_artifacts() {
    let fake = Arc::new(FakeLlm::start().await);
    let src_dir = tempfile::tempdir().expect("tempdir");
    // The load polls quickly: no per-key quota.
    let s = Arc::new(start_in(src_dir.path(), &fake, &[("OPENLOOP_RATE_LIMIT_REQUESTS", "0")]));
    let agent = testkit::create_agent(&s, json!({"name": "writer", "model_name": "gpt-4o-mini"})).await;

    // Some finished work, then load that keeps running through the backup.
    let load = Arc::new(Load { next: AtomicUsize::new(0), stop: AtomicBool::new(false), completed: Mutex::new(BTreeMap::new()) });
    for _ in 0..8 {
        let i = load.next.fetch_add(1, Ordering::SeqCst);
        let sid = run_job(&s, &fake, &agent, i).await;
        load.completed.lock().expect("lock").insert(i, sid);
    }
    let mut workers = Vec::new();
    for _ in 0..3 {
        let (s, fake, agent, load) = (s.clone(), fake.clone(), agent.clone(), load.clone());
        workers.push(tokio::spawn(async move {
            while !load.stop.load(Ordering::SeqCst) {
                let i = load.next.fetch_add(1, Ordering::SeqCst);
                let sid = run_job(&s, &fake, &agent, i).await;
                load.completed.lock().expect("lock").insert(i, sid);
            }
        }));
    }
    // OPENLOOP_BACKUP_TEST_JOBS=N: sessions completed before the backup (a bigger load for figures).
    let jobs: usize = std::env::var("OPENLOOP_BACKUP_TEST_JOBS").ok().and_then(|v| v.parse().ok()).unwrap_or(14);
    while load.completed.lock().expect("lock").len() < jobs {
        assert!(!workers.iter().any(|w| w.is_finished()), "a load worker failed");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // A prober timing a pure write (a rename) back to back, to see whether the backup
    // holds the server's writer up.
    let probe_sid = load.completed.lock().expect("lock").values().next().cloned().expect("a session");
    let probes: Arc<Mutex<Vec<(Instant, Duration)>>> = Arc::new(Mutex::new(Vec::new()));
    let prober = {
        let (s, load, probes) = (s.clone(), load.clone(), probes.clone());
        tokio::spawn(async move {
            let mut n = 0;
            while !load.stop.load(Ordering::SeqCst) {
                n += 1;
                let t = Instant::now();
                let (st, b, _) = send(s.patch(ADMIN_KEY, &format!("/sessions/{probe_sid}"), json!({"name": format!("probe {n}")}))).await;
                assert_eq!(st, 200, "{b}");
                probes.lock().expect("lock").push((t, t.elapsed()));
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
    };

    let out_dir = tempfile::tempdir().expect("tempdir");
    let archive = out_dir.path().join("openloop-backup.tar");
    let before: BTreeSet<usize> = load.completed.lock().expect("lock").keys().copied().collect();
    let started_jobs = load.next.load(Ordering::SeqCst);
    let t0 = Instant::now();
    let (ok, summary, stderr) = cli(src_dir.path(), &["backup", "--to", archive.to_str().expect("utf-8 path")]).await;
    let backup_time = t0.elapsed();
    assert!(ok, "backup failed: {stderr}");
    let during = load.next.load(Ordering::SeqCst) - started_jobs;
    // Keep the load going a little after the backup too, then stop it.
    tokio::time::sleep(Duration::from_millis(300)).await;
    load.stop.store(true, Ordering::SeqCst);
    for w in workers {
        w.await.expect("load worker");
    }
    prober.await.expect("prober");
    let (probes_during, worst_write) = {
        let p = probes.lock().expect("lock");
        let during: Vec<Duration> = p.iter().filter(|(t, d)| *t + *d >= t0 && *t <= t0 + backup_time).map(|(_, d)| *d).collect();
        (during.len(), during.iter().max().copied().unwrap_or_default())
    };
    eprintln!("writes during the backup: {probes_during}, slowest {:.0} ms", worst_write.as_secs_f64() * 1000.0);
    assert!(probes_during > 0, "the prober wrote during the backup");
    assert!(worst_write < Duration::from_secs(2), "a write waited {worst_write:?} during the backup");
    let archive_size = std::fs::metadata(&archive).expect("archive").len();
    eprintln!(
        "backup: {:.0} ms, archive {archive_size} bytes, {} blobs ({} bytes), read transaction {} ms, {during} sessions started during it; stderr:\n{stderr}",
        backup_time.as_secs_f64() * 1000.0,
        summary["blobs"],
        summary["blob_bytes"],
        summary["read_transaction_ms"]
    );
    assert!(leftovers(out_dir.path()).is_empty(), "temporary files left: {:?}", leftovers(out_dir.path()));
    assert_eq!(summary["missing_blobs"], json!([]), "{summary}");
    assert!(summary["blobs"].as_u64().unwrap_or(0) >= before.len() as u64, "{summary}");

    // What the original server says about every completed session, then stop it.
    let done: BTreeMap<usize, String> = load.completed.lock().expect("lock").clone();
    let mut original: BTreeMap<String, Value> = BTreeMap::new();
    for sid in done.values() {
        original.insert(sid.clone(), session_messages(&s, sid).await);
    }
    let mut s = Arc::try_unwrap(s).ok().expect("no other server handle");
    s.terminate();

    // Restore into a fresh data directory and serve it (no workers: the snapshot's
    // unfinished runs stay as they were while we look).
    let dst_parent = tempfile::tempdir().expect("tempdir");
    let dst = dst_parent.path().join("restored");
    let t0 = Instant::now();
    let (ok, restored, stderr) = cli(&dst, &["restore", "--from", archive.to_str().expect("utf-8 path")]).await;
    assert!(ok, "restore failed: {stderr}");
    eprintln!("restore: {:.0} ms: {restored}", t0.elapsed().as_secs_f64() * 1000.0);
    assert_eq!(restored["blobs"], summary["blobs"]);
    let r = start_in(&dst, &fake, &[("OPENLOOP_WORKERS", "0"), ("OPENLOOP_FLOW_WORKERS", "0"), ("OPENLOOP_RATE_LIMIT_REQUESTS", "0")]);

    let sessions = all_sessions(&r, &agent).await;
    assert_eq!(sessions.len() as i64, summary["counts"]["sessions"].as_i64().unwrap_or(-1), "every snapshot session is listed");
    let mut restored_completed = BTreeSet::new();
    let mut artifacts_checked = 0;
    for sess in &sessions {
        let sid = sess["id"].as_str().expect("id").to_string();
        let completed = sess["state"] == "completed";
        if completed {
            let msgs = session_messages(&r, &sid).await;
            let want = original.get(&sid).unwrap_or_else(|| panic!("{sid} completed in the backup but was never seen completed"));
            assert_eq!(&msgs, want, "messages of {sid}");
            let (i, _) = done.iter().find(|(_, v)| **v == sid).expect("a job's session");
            assert!(msgs.to_string().contains(&format!("done {i}")), "{msgs}");
            restored_completed.insert(*i);
        }
        let (st, list, _) = send(r.get(ADMIN_KEY, &format!("/agents/{agent}/artifacts?session_id={sid}"))).await;
        assert_eq!(st, 200, "{list}");
        let items = list["artifacts"].as_array().expect("artifacts");
        if completed {
            assert_eq!(items.len(), 1, "{list}");
        }
        for a in items {
            let name = a["filename"].as_str().expect("filename");
            let i: usize = name.trim_start_matches('f').trim_end_matches(".bin").parse().expect("f<i>.bin");
            let resp = reqwest::get(a["url"].as_str().expect("url")).await.expect("download");
            assert_eq!(resp.status(), 200, "{name}");
            let body = resp.bytes().await.expect("body");
            assert!(body.as_ref() == artifact_bytes(i).as_slice(), "{name}: {} bytes differ from the {} uploaded", body.len(), artifact_bytes(i).len());
            artifacts_checked += 1;
        }
    }
    assert!(
        before.is_subset(&restored_completed),
        "completed before the backup started but not restored: {:?}",
        before.difference(&restored_completed).collect::<Vec<_>>()
    );
    eprintln!(
        "restored: {} sessions ({} completed; {} completed before the backup began, {} by the end of the load), {artifacts_checked} artifacts byte-identical",
        sessions.len(),
        restored_completed.len(),
        before.len(),
        done.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restore_refuses_corrupt_archives_and_occupied_targets() {
    let fake = FakeLlm::start().await;
    let src_dir = tempfile::tempdir().expect("tempdir");
    let s = start_in(src_dir.path(), &fake, &[]);
    let agent = testkit::create_agent(&s, json!({"name": "writer", "model_name": "gpt-4o-mini"})).await;
    for i in 0..2 {
        run_job(&s, &fake, &agent, 1000 + i).await;
    }
    let out_dir = tempfile::tempdir().expect("tempdir");
    let archive = out_dir.path().join("b.tar");
    let (ok, _, stderr) = cli(src_dir.path(), &["backup", "--to", archive.to_str().expect("utf-8")]).await;
    assert!(ok, "{stderr}");
    let good = std::fs::read(&archive).expect("archive");

    // One flipped byte inside the database entry (header 512 bytes, then the file).
    let mut bad = good.clone();
    bad[512 + 4096 + 7] ^= 0x01;
    let corrupt = out_dir.path().join("corrupt.tar");
    std::fs::write(&corrupt, &bad).expect("write");
    let fresh = out_dir.path().join("fresh");
    let (ok, _, stderr) = cli(&fresh, &["restore", "--from", corrupt.to_str().expect("utf-8")]).await;
    assert!(!ok);
    assert!(stderr.contains("checksum mismatch in openloop.db") && stderr.contains("nothing was restored"), "{stderr}");
    assert!(dir_is_empty_or_absent(&fresh), "nothing written into {}", fresh.display());

    // A flipped byte in the last blob's data, and a truncated archive.
    let mut bad = good.clone();
    let manifest_at = good.windows(14).rposition(|w| w == b"manifest.json\0").expect("manifest header");
    bad[manifest_at - 600] ^= 0x80;
    std::fs::write(&corrupt, &bad).expect("write");
    let (ok, _, stderr) = cli(&fresh, &["restore", "--from", corrupt.to_str().expect("utf-8")]).await;
    assert!(!ok && stderr.contains("not a valid Openloop backup"), "{stderr}");
    assert!(dir_is_empty_or_absent(&fresh));
    std::fs::write(&corrupt, &good[..good.len() / 2]).expect("write");
    let (ok, _, stderr) = cli(&fresh, &["restore", "--from", corrupt.to_str().expect("utf-8")]).await;
    assert!(!ok && stderr.contains("not a valid Openloop backup"), "{stderr}");
    assert!(dir_is_empty_or_absent(&fresh));

    // An existing database is not overwritten without --force (the server is still running on it).
    let db = src_dir.path().join("openloop.db");
    // The file itself is compared by inode: the running server's checkpointer may grow it
    // meanwhile, so its size says nothing about the restore.
    let before = std::os::unix::fs::MetadataExt::ino(&std::fs::metadata(&db).expect("db"));
    let (ok, _, stderr) = cli(src_dir.path(), &["restore", "--from", archive.to_str().expect("utf-8")]).await;
    assert!(!ok && stderr.contains("a database already exists") && stderr.contains("--force"), "{stderr}");
    assert_eq!(std::os::unix::fs::MetadataExt::ino(&std::fs::metadata(&db).expect("db")), before, "the database file was not replaced");
    let (st, _, _) = send(s.get(ADMIN_KEY, &format!("/agents/{agent}"))).await;
    assert_eq!(st, 200, "the running server is untouched");

    // PostgreSQL: pointed to the documented procedure.
    let out = tokio::process::Command::new(bin())
        .args(["backup", "--to", "/tmp/never.tar", "--database-url", "postgres://u:secretpw@127.0.0.1:1/db"])
        .output()
        .await
        .expect("run");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && stderr.contains("pg_dump") && !stderr.contains("secretpw"), "{stderr}");

    // The good archive restores into the fresh directory, and --force replaces a database.
    let (ok, _, stderr) = cli(&fresh, &["restore", "--from", archive.to_str().expect("utf-8")]).await;
    assert!(ok, "{stderr}");
    let (ok, _, stderr) = cli(&fresh, &["restore", "--from", archive.to_str().expect("utf-8")]).await;
    assert!(!ok && stderr.contains("already exists"), "{stderr}");
    let (ok, out, stderr) = cli(&fresh, &["restore", "--force", "--from", archive.to_str().expect("utf-8")]).await;
    assert!(ok && out["replaced_existing"] == true, "{stderr}");
    let r = start_in(&fresh, &fake, &[("OPENLOOP_WORKERS", "0")]);
    assert_eq!(all_sessions(&r, &agent).await.len(), 2);
}

/// A new bucket on the test S3 server (moto) and the settings that select it.
async fn s3_bucket_env() -> Vec<(String, String)> {
    let ep = testkit::s3_endpoint().to_string();
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
    let bucket = format!("bk{nanos:x}");
    let resp = reqwest::Client::new().put(format!("{ep}/{bucket}")).send().await.expect("create bucket");
    assert!(resp.status().is_success(), "bucket creation failed: {}", resp.status());
    [
        ("OPENLOOP_BLOB_STORE", "s3".to_string()),
        ("OPENLOOP_S3_ENDPOINT", ep),
        ("OPENLOOP_S3_BUCKET", bucket),
        ("OPENLOOP_S3_ACCESS_KEY_ID", "test".into()),
        ("OPENLOOP_S3_SECRET_ACCESS_KEY", "test".into()),
        ("OPENLOOP_S3_PATH_STYLE", "true".into()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backup_and_restore_with_blobs_on_s3() {
    let fake = FakeLlm::start().await;
    let src_env = s3_bucket_env().await;
    let src_dir = tempfile::tempdir().expect("tempdir");
    let env_ref: Vec<(&str, &str)> = src_env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let mut s = start_in(src_dir.path(), &fake, &env_ref);
    let agent = testkit::create_agent(&s, json!({"name": "writer", "model_name": "gpt-4o-mini"})).await;
    for i in 0..3 {
        run_job(&s, &fake, &agent, 2000 + i).await;
    }
    let out_dir = tempfile::tempdir().expect("tempdir");
    let archive = out_dir.path().join("s3.tar");
    let (ok, summary, stderr) = cli_env(src_dir.path(), &["backup", "--to", archive.to_str().expect("utf-8")], &src_env).await;
    assert!(ok, "{stderr}");
    assert_eq!(summary["blobs"], 3, "{summary}");
    s.terminate();

    // Into a fresh data directory and a new, empty bucket.
    let dst_env = s3_bucket_env().await;
    let dst = out_dir.path().join("restored");
    let (ok, restored, stderr) = cli_env(&dst, &["restore", "--from", archive.to_str().expect("utf-8")], &dst_env).await;
    assert!(ok, "{stderr}");
    assert_eq!(restored["blobs"], 3, "{restored}");
    assert!(!dst.join("blobs").exists(), "blobs went to the bucket, not the data directory");
    let mut env_ref: Vec<(&str, &str)> = dst_env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    env_ref.push(("OPENLOOP_WORKERS", "0"));
    let r = start_in(&dst, &fake, &env_ref);
    let sessions = all_sessions(&r, &agent).await;
    assert_eq!(sessions.len(), 3);
    for sess in &sessions {
        let sid = sess["id"].as_str().expect("id");
        let (_, list, _) = send(r.get(ADMIN_KEY, &format!("/agents/{agent}/artifacts?session_id={sid}"))).await;
        let a = &list["artifacts"][0];
        let i: usize = a["filename"].as_str().expect("filename").trim_start_matches('f').trim_end_matches(".bin").parse().expect("f<i>.bin");
        let body = reqwest::get(a["url"].as_str().expect("url")).await.expect("download").bytes().await.expect("body");
        assert!(body.as_ref() == artifact_bytes(i).as_slice(), "artifact {i} differs after an S3 restore");
    }
}
