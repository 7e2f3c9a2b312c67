//! §2.5 rights through S18 grants: a user a session is shared with reads its artifacts
//! (A1–A5) and its legacy status (L2); without the grant the session is visible to a
//! team mate but not readable (403).

use std::time::Duration;

use serde_json::{json, Value};
use testkit::fake_llm::{FakeLlm, Reply};
use testkit::{send, Server, ADMIN_KEY, TEAM_ID};

fn bin() -> &'static std::path::Path {
    env!("CARGO_BIN_EXE_openloop").as_ref()
}

async fn settled(s: &Server, sid: &str) -> Value {
    for _ in 0..300 {
        let (_, b, _) = send(s.get(ADMIN_KEY, &format!("/sessions/{sid}"))).await;
        if !matches!(b["session"]["state"].as_str(), Some("processing" | "queued")) {
            return b;
        }
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
    panic!("never settled");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a1_a5_and_l2_follow_session_grants() {
    let fake = FakeLlm::start().await;
    fake.push(Reply::tool_call("write_artifact", json!({"filename": "notes.md", "content": "shared bytes"})));
    fake.push(Reply::text("wrote it"));
    let s = testkit::start_with_fake(bin(), &fake, &[]);
    // A team mate of the admin, with an email for person grants.
    let u = s.cli(&["users", "create", "--org", "org_default", "--email", "mate@example.com"]);
    let mate = u["user_id"].as_str().unwrap().to_string();
    s.cli(&["teams", "add-member", "--team", TEAM_ID, "--user", &mate]);
    let mate_key = s.cli(&["keys", "create", "--user", &mate])["secret"].as_str().unwrap().to_string();
    let (st, a, _) = send(s.post(ADMIN_KEY, "/agents", json!({"name": "Team writer", "model_name": "gpt-4o-mini", "team_id": TEAM_ID}))).await;
    assert_eq!(st, 201, "{a}");
    let agent = a["agent"]["id"].as_str().unwrap().to_string();
    let (_, created, _) = send(s.post(ADMIN_KEY, &format!("/agents/{agent}/sessions"), json!({"input": "write notes"}))).await;
    let sid = created["session"]["id"].as_str().unwrap().to_string();
    assert_eq!(settled(&s, &sid).await["session"]["state"], "completed");
    let (_, arts, _) = send(s.get(ADMIN_KEY, &format!("/agents/{agent}/artifacts"))).await;
    let art = arts["artifacts"][0]["id"].as_str().expect("an artifact").to_string();

    // Not shared yet: visible to the team mate, not readable.
    let (st, b, _) = send(s.get(&mate_key, &format!("/artifacts/{art}/download"))).await;
    assert_eq!((st, b["error"]["code"].as_str()), (403, Some("permission_denied")), "{b}");
    let (st, b, _) = send(s.get(&mate_key, &format!("/agent_status/{sid}"))).await;
    assert_eq!((st, b["error"].as_str()), (403, Some("unauthorized")), "{b}");
    let (_, b, _) = send(s.get(&mate_key, &format!("/agents/{agent}/artifacts"))).await;
    assert_eq!(b["artifacts"], json!([]), "unshared sessions' artifacts are not listed: {b}");

    let (st, b, _) = send(
        s.client
            .put(s.url(&format!("/sessions/{sid}/access")))
            .bearer_auth(ADMIN_KEY)
            .json(&json!({"share": [{"type": "person", "email": "mate@example.com", "role": "viewer"}]})),
    )
    .await;
    assert_eq!(st, 200, "{b}");

    // A1–A5 and L2 now answer for the grantee.
    let (st, b, _) = send(s.get(&mate_key, &format!("/agents/{agent}/artifacts"))).await;
    assert_eq!(st, 200, "{b}");
    assert_eq!(b["artifacts"][0]["id"], art.as_str(), "A1 lists the shared session's artifact: {b}");
    let (st, b, _) = send(s.get(&mate_key, &format!("/artifacts/{art}/download"))).await;
    assert_eq!(st, 200, "{b}");
    let bytes = s.client.get(b["download_url"].as_str().unwrap()).send().await.unwrap().bytes().await.unwrap();
    assert_eq!(&bytes[..], b"shared bytes");
    let (st, b, _) = send(s.get(&mate_key, &format!("/artifacts/{art}/versions"))).await;
    assert_eq!((st, b["versions"].as_array().map(Vec::len)), (200, Some(1)), "{b}");
    let (st, b, _) = send(s.get(&mate_key, &format!("/agent_status/{sid}"))).await;
    assert_eq!((st, b["state"].as_str()), (200, Some("COMPLETED")), "{b}");
    // Changing the artifact stays the creator's right (A3, A4).
    let (st, _, _) = send(s.delete(&mate_key, &format!("/artifacts/{art}"))).await;
    assert_eq!(st, 403);
    let (st, _, _) = send(s.client.put(s.url(&format!("/artifacts/{art}/name"))).bearer_auth(&mate_key).json(&json!({"name": "mine.md"}))).await;
    assert_eq!(st, 403);
    // S3 lists the shared session for the grantee.
    let (_, b, _) = send(s.get(&mate_key, &format!("/agents/{agent}/sessions"))).await;
    assert!(b["sessions"].as_array().unwrap().iter().any(|x| x["id"] == sid.as_str()), "{b}");
}
