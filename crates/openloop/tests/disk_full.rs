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
    let s = Server::start_in(bin(), &data, &[("OPENAI_BASE_URL", &url), ("OPENAI_API_KEY", "sk-test")]);
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
