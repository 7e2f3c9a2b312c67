//! Fault: the data directory's filesystem fills up mid-run, then space is freed. While
//! full, writes fail with a clear 503 and /readyz is not ready; afterwards writes and runs
//! resume without a restart and nothing accepted is lost. Needs root (a tmpfs mount).

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use serde_json::{json, Value};
use testkit::fake_llm::{FakeLlm, Reply};
use testkit::{send, Server, ADMIN_KEY};

fn bin() -> &'static Path {
    env!("CARGO_BIN_EXE_openloop").as_ref()
}

/// A small tmpfs, unmounted on drop.
struct SmallFs(tempfile::TempDir);

impl SmallFs {
    fn mount(size: &str) -> Option<SmallFs> {
        let dir = tempfile::tempdir().ok()?;
        let ok = Command::new("mount").args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"]).arg(dir.path()).status().is_ok_and(|s| s.success());
        ok.then_some(SmallFs(dir))
    }
    fn path(&self) -> &Path {
        self.0.path()
    }
    /// Writes a filler file until the filesystem is full.
    fn fill(&self) -> std::path::PathBuf {
        let filler = self.path().join("filler");
        let _ = Command::new("dd").arg("if=/dev/zero").arg(format!("of={}", filler.display())).args(["bs=64k"]).output();
        filler
    }
}

impl Drop for SmallFs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(self.0.path()).status();
    }
}

async fn readyz(s: &Server) -> (u16, Value) {
    let (st, b, _) = send(s.client.get(s.url("").replace("/api/v1", "/readyz"))).await;
    (st, b)
}

async fn state(s: &Server, sid: &str) -> String {
    let (_, b, _) = send(s.get(ADMIN_KEY, &format!("/sessions/{sid}"))).await;
    b["session"]["state"].as_str().unwrap_or("").to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disk_full_then_freed_recovers_without_restart() {
    let Some(fs) = SmallFs::mount("24m") else {
        eprintln!("skipped: mounting a tmpfs needs root; this fault test cannot run here");
        return;
    };
    let data = fs.path().join("data");
    let fake = FakeLlm::start().await;
    fake.set_default(Reply::text("fine"));
    fake.on_user_contains("slow one", Reply::text_chunks("a slow answer that streams", 8).chunk_delay(Duration::from_millis(150)));
    let url = fake.openai_base_url();
    // The data directory's SQLite file fills the disk, whichever database the suite runs on.
    let sqlite = format!("sqlite://{}", data.join("openloop.db").display());
    let s = Server::start_in(bin(), &data, &[("OPENAI_BASE_URL", &url), ("OPENAI_API_KEY", "sk-test"), ("OPENLOOP_DATABASE_URL", &sqlite)]);
    let (st, a, _) = send(s.post(ADMIN_KEY, "/agents", json!({"name": "Disk", "model_name": "gpt-4o-mini"}))).await;
    assert_eq!(st, 201, "{a}");
    let agent = a["agent"]["id"].as_str().unwrap().to_string();
    assert_eq!(readyz(&s).await.0, 200);

    // A run in flight when the disk fills.
    let (st, b, _) = send(s.post(ADMIN_KEY, &format!("/agents/{agent}/sessions"), json!({"input": "slow one"}))).await;
    assert_eq!(st, 202, "{b}");
    let inflight = b["session"]["id"].as_str().unwrap().to_string();
    let filler = fs.fill();

    // While full: clear errors, not ready.
    let mut refused = 0;
    for i in 0..20 {
        let (st, b, h) = send(s.post(ADMIN_KEY, "/agents", json!({"name": format!("while full {i}")}))).await;
        if st == 201 {
            continue; // a page the database still had room for
        }
        assert_eq!((st, b["error"]["code"].as_str()), (503, Some("service_unavailable")), "{b}");
        assert!(h.contains_key("retry-after"));
        refused += 1;
    }
    assert!(refused > 0, "the full disk never refused a write");
    let (st, b) = readyz(&s).await;
    assert_eq!(st, 503, "not ready while writes fail: {b}");

    // Freed: writes and runs resume without a restart.
    std::fs::remove_file(&filler).unwrap();
    let mut ready = false;
    for _ in 0..100 {
        if readyz(&s).await.0 == 200 {
            ready = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(ready, "ready again once space is freed");
    let (st, b, _) = send(s.post(ADMIN_KEY, "/agents", json!({"name": "after"}))).await;
    assert_eq!(st, 201, "{b}");
    let (st, b, _) = send(s.post(ADMIN_KEY, &format!("/agents/{agent}/sessions"), json!({"input": "after the storm"}))).await;
    assert_eq!(st, 202, "{b}");
    let fresh = b["session"]["id"].as_str().unwrap().to_string();
    // Nothing accepted is lost: both sessions end (the in-flight one resumes from its last step).
    let mut done = (String::new(), String::new());
    for _ in 0..600 {
        done = (state(&s, &inflight).await, state(&s, &fresh).await);
        if !["processing", "queued"].contains(&done.0.as_str()) && !["processing", "queued"].contains(&done.1.as_str()) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(done.1, "completed");
    assert!(["completed", "failed"].contains(&done.0.as_str()), "the in-flight run ended: {done:?}");
}

/// A read-only bind mount of a tmpfs stacked on its own mount point, unmounted on drop.
///
/// Why not `mount -o remount,ro` on the tmpfs itself: Linux refuses it ("mount point is
/// busy", EBUSY) while any file on it is open for writing, and the running server always
/// holds `openloop.db`, `-wal` and `-shm` open read-write. The bind mount on top is the
/// read-only storage a running process can actually meet: every path opened from now on
/// (new files, directories, the readiness probe, blob uploads) fails with EROFS, while
/// files opened before keep their write access (the kernel never revokes it).
struct ReadOnlyView<'a>(&'a Path);

impl<'a> ReadOnlyView<'a> {
    fn mount(dir: &'a Path) -> Option<ReadOnlyView<'a>> {
        let bind = Command::new("mount").arg("--bind").arg(dir).arg(dir).status().is_ok_and(|s| s.success());
        if !bind {
            return None;
        }
        let view = ReadOnlyView(dir);
        view.remount("ro").then_some(view)
    }
    /// `mount -o remount,bind,<mode>`: `ro` or `rw`.
    fn remount(&self, mode: &str) -> bool {
        Command::new("mount").args(["-o", &format!("remount,bind,{mode}")]).arg(self.0).status().is_ok_and(|s| s.success())
    }
}

impl Drop for ReadOnlyView<'_> {
    fn drop(&mut self) {
        // The topmost mount on the path is this bind mount; the tmpfs below stays.
        let _ = Command::new("umount").arg("-l").arg(self.0).status();
    }
}

async fn readyz_with_headers(s: &Server) -> (u16, Value, reqwest::header::HeaderMap) {
    send(s.client.get(s.url("").replace("/api/v1", "/readyz"))).await
}

/// Polls until the session leaves `queued`/`processing` (at most `within`); its final state.
async fn settled(s: &Server, sid: &str, within: Duration) -> String {
    let deadline = std::time::Instant::now() + within;
    loop {
        let st = state(s, sid).await;
        if !["processing", "queued"].contains(&st.as_str()) || std::time::Instant::now() > deadline {
            return st;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A write while storage is read-only either goes through (the database files were opened
/// read-write before) or is refused with the clear 503; never a 500.
fn accepted_or_refused(what: &str, st: u16, b: &Value, h: &reqwest::header::HeaderMap, accepted: u16) -> bool {
    eprintln!("read-only storage: {what} answered {st}");
    if st == accepted {
        return true;
    }
    assert_eq!((st, b["error"]["code"].as_str()), (503, Some("service_unavailable")), "{what} while read-only: {b}");
    assert!(h.contains_key("retry-after"), "{what}: a 503 says when to retry");
    false
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_only_storage_answers_503_then_recovers_without_restart() {
    let Some(fs) = SmallFs::mount("24m") else {
        eprintln!("skipped: mounting a tmpfs needs root; this fault test cannot run here");
        return;
    };
    let data = fs.path().join("data");
    let fake = FakeLlm::start().await;
    fake.set_default(Reply::text("fine"));
    let url = fake.openai_base_url();
    let sqlite = format!("sqlite://{}", data.join("openloop.db").display());
    let s = Server::start_in(bin(), &data, &[("OPENAI_BASE_URL", &url), ("OPENAI_API_KEY", "sk-test"), ("OPENLOOP_DATABASE_URL", &sqlite)]);
    let (st, a, _) = send(s.post(ADMIN_KEY, "/agents", json!({"name": "Read-only", "model_name": "gpt-4o-mini"}))).await;
    assert_eq!(st, 201, "{a}");
    let agent = a["agent"]["id"].as_str().unwrap().to_string();
    let (st, b, _) = send(s.post(ADMIN_KEY, &format!("/agents/{agent}/sessions"), json!({"input": "before"}))).await;
    assert_eq!(st, 202, "{b}");
    let earlier = b["session"]["id"].as_str().unwrap().to_string();
    assert_eq!(settled(&s, &earlier, Duration::from_secs(10)).await, "completed");
    let (st, before, _) = send(s.get(ADMIN_KEY, &format!("/sessions/{earlier}"))).await;
    assert_eq!(st, 200, "{before}");
    let before_messages = before["session"]["messages"].as_array().cloned().unwrap_or_default();
    assert!(!before_messages.is_empty(), "{before}");
    assert_eq!(readyz(&s).await.0, 200);

    // Storage turns read-only under the running server.
    let view = ReadOnlyView::mount(fs.path()).expect("a read-only bind mount over the data directory's tmpfs");
    assert!(std::fs::write(data.join("probe"), b"x").is_err(), "the data directory refuses new files");

    // Not ready, and says so with a Retry-After.
    let (st, b, h) = readyz_with_headers(&s).await;
    assert_eq!(st, 503, "not ready while storage is read-only: {b}");
    assert_eq!(b["status"], "not_ready", "{b}");
    assert_eq!(b["checks"]["data_dir"], "error", "{b}");
    assert!(h.contains_key("retry-after"), "{h:?}");
    // Reads still answer.
    let (st, b, _) = send(s.get(ADMIN_KEY, &format!("/sessions/{earlier}"))).await;
    assert_eq!(st, 200, "{b}");
    assert_eq!(b["session"]["state"], "completed", "{b}");
    // Writes: accepted (and then kept) or a clear 503, never a 500.
    let mut accepted = Vec::new();
    let (st, b, h) = send(s.post(ADMIN_KEY, &format!("/agents/{agent}/sessions"), json!({"input": "while read-only"}))).await;
    if accepted_or_refused("a new session", st, &b, &h, 202) {
        accepted.push(b["session"]["id"].as_str().unwrap().to_string());
    }
    let (st, b, h) = send(s.post(ADMIN_KEY, &format!("/sessions/{earlier}/messages"), json!({"input": "follow-up while read-only"}))).await;
    let followed_up = accepted_or_refused("an S7 follow-up", st, &b, &h, 202);
    let (st, b, h) = send(s.post(ADMIN_KEY, "/agents", json!({"name": "while read-only"}))).await;
    accepted_or_refused("a new agent", st, &b, &h, 201);
    // An upload needs a new file in the data directory: refused with the 503.
    let (st, b, h) = send(s.post(ADMIN_KEY, &format!("/sessions/{earlier}/files"), json!({"file_name": "plan.txt", "file_content": "cGxhbg=="}))).await;
    assert!(!accepted_or_refused("an upload", st, &b, &h, 201), "an upload cannot land on read-only storage: {b}");
    // Still not ready a moment later (the answer is not a one-off).
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(readyz(&s).await.0, 503);

    // Writable again, same process: ready within a few seconds.
    assert!(view.remount("rw"), "mount -o remount,bind,rw");
    let since = std::time::Instant::now();
    let mut ready = false;
    while since.elapsed() < Duration::from_secs(5) {
        if readyz(&s).await.0 == 200 {
            ready = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(ready, "ready again within 5 s of the storage turning writable: {:?}", readyz(&s).await);
    eprintln!("read-only storage: ready again {:?} after remount rw", since.elapsed());

    let (st, b, _) = send(s.post(ADMIN_KEY, &format!("/agents/{agent}/sessions"), json!({"input": "after"}))).await;
    assert_eq!(st, 202, "{b}");
    let fresh = b["session"]["id"].as_str().unwrap().to_string();
    assert_eq!(settled(&s, &fresh, Duration::from_secs(10)).await, "completed");
    // Nothing accepted is lost, and the earlier session is intact.
    for sid in &accepted {
        assert_eq!(settled(&s, sid, Duration::from_secs(10)).await, "completed", "{sid}, accepted while read-only");
    }
    assert_eq!(settled(&s, &earlier, Duration::from_secs(10)).await, "completed");
    let (st, after, _) = send(s.get(ADMIN_KEY, &format!("/sessions/{earlier}"))).await;
    assert_eq!(st, 200, "{after}");
    let after_messages = after["session"]["messages"].as_array().cloned().unwrap_or_default();
    assert!(after_messages.starts_with(&before_messages), "earlier messages kept: {before} then {after}");
    if followed_up {
        assert!(after_messages.len() > before_messages.len(), "the accepted follow-up ran: {after}");
    } else {
        assert_eq!(after_messages, before_messages);
    }
    drop(view);
}
