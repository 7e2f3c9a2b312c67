//! Black-box tests of §8.10 skills (SK1–SK7, SY1–SY2) and §8.6 G10/G11: multipart uploads
//! make versions, downloads are signed ZIPs, bad inputs are named 4xx, other tenants see
//! 404, and an attached skill reaches the model (system prompt + `read_skill_file`).

use std::io::Read;
use std::time::Duration;

use serde_json::{json, Value};
use testkit::fake_llm::{FakeLlm, Reply};
use testkit::{send, Server, ADMIN_KEY};

fn bin() -> &'static std::path::Path {
    env!("CARGO_BIN_EXE_openloop").as_ref()
}

const BOUNDARY: &str = "openloop-test-boundary-7d1f";

/// A multipart/form-data body: `(field, filename, bytes)`; `filename` `None` = a text field.
fn multipart(parts: &[(&str, Option<&str>, &[u8])]) -> Vec<u8> {
    let mut out = Vec::new();
    for (field, filename, data) in parts {
        out.extend_from_slice(format!("--{BOUNDARY}\r\n").as_bytes());
        match filename {
            Some(f) => out.extend_from_slice(
                format!("Content-Disposition: form-data; name=\"{field}\"; filename=\"{f}\"\r\nContent-Type: application/octet-stream\r\n\r\n").as_bytes(),
            ),
            None => out.extend_from_slice(format!("Content-Disposition: form-data; name=\"{field}\"\r\n\r\n").as_bytes()),
        }
        out.extend_from_slice(data);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(format!("--{BOUNDARY}--\r\n").as_bytes());
    out
}

fn upload(s: &Server, key: &str, method: reqwest::Method, path: &str, files: &[(&str, &[u8])]) -> reqwest::RequestBuilder {
    let parts: Vec<(&str, Option<&str>, &[u8])> = files.iter().map(|(n, d)| ("files", Some(*n), *d)).collect();
    reqwest::Client::new()
        .request(method, s.url(path))
        .bearer_auth(key)
        .header("content-type", format!("multipart/form-data; boundary={BOUNDARY}"))
        .body(multipart(&parts))
}

const SKILL_MD: &[u8] = b"---\nname: report-writer\ndescription: Write reports in exactly three bullets.\n---\n\n# Report writer\nALWAYS-USE-THREE-BULLETS\n";

async fn create(s: &Server, key: &str, files: &[(&str, &[u8])]) -> (u16, Value) {
    let (st, b, _) = send(upload(s, key, reqwest::Method::POST, "/skills", files)).await;
    (st, b)
}

async fn fetch_zip(url: &str) -> Vec<(String, Vec<u8>)> {
    let resp = reqwest::get(url).await.expect("download");
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "application/zip");
    let bytes = resp.bytes().await.expect("body").to_vec();
    let mut z = zip::ZipArchive::new(std::io::Cursor::new(bytes)).expect("a zip");
    let mut out = Vec::new();
    for i in 0..z.len() {
        let mut f = z.by_index(i).expect("entry");
        let mut data = Vec::new();
        f.read_to_end(&mut data).expect("read");
        out.push((f.name().expect("entry name").to_string(), data));
    }
    out.sort();
    out
}

#[tokio::test(flavor = "multi_thread")]
async fn sk2_sk3_sk4_versions_and_signed_zip() {
    let s = Server::start(bin(), &[]);
    let (st, b) = create(&s, ADMIN_KEY, &[("SKILL.md", SKILL_MD), ("scripts/count.py", b"print(1)\n")]).await;
    assert_eq!(st, 201, "{b}");
    let skill = &b["skill"];
    let id = skill["id"].as_str().unwrap().to_string();
    assert_eq!((skill["name"].as_str(), skill["major_version"].as_i64(), skill["team_id"].as_str()), (Some("report-writer"), Some(1), Some("")));
    assert_eq!(skill["description"], "Write reports in exactly three bullets.");
    let v1 = skill["version_id"].as_str().unwrap().to_string();

    let (st, b, _) =
        send(upload(&s, ADMIN_KEY, reqwest::Method::PATCH, &format!("/skills/{id}"), &[("SKILL.md", SKILL_MD), ("scripts/count.py", b"print(2)\n")])).await;
    assert_eq!((st, b["skill"]["major_version"].as_i64()), (200, Some(2)), "{b}");

    let (st, list, _) = send(s.get(ADMIN_KEY, "/skills")).await;
    assert_eq!(st, 200, "{list}");
    assert_eq!(list["skills"][0]["id"], id.as_str());
    assert_eq!(list["total_count"], 1);

    let (st, d, _) = send(s.get(ADMIN_KEY, &format!("/skills/{id}/download"))).await;
    assert_eq!((st, d["media_type"].as_str(), d["filename"].as_str()), (200, Some("application/zip"), Some("report-writer.zip")), "{d}");
    let files = fetch_zip(d["download_url"].as_str().unwrap()).await;
    assert_eq!(files, vec![("SKILL.md".to_string(), SKILL_MD.to_vec()), ("scripts/count.py".to_string(), b"print(2)\n".to_vec())]);
    let (_, old, _) = send(s.get(ADMIN_KEY, &format!("/skills/{id}/download?version_id={v1}"))).await;
    assert_eq!(fetch_zip(old["download_url"].as_str().unwrap()).await[1].1, b"print(1)\n");

    // Re-targeting the signed URL to another version fails the signature.
    let moved = d["download_url"].as_str().unwrap().replace(d["version_id"].as_str().unwrap(), &v1);
    assert_eq!(reqwest::get(&moved).await.unwrap().status(), 403);

    // SK5, then the signed URL of the deleted skill is 404.
    let (st, del, _) = send(s.delete(ADMIN_KEY, &format!("/skills/{id}"))).await;
    assert_eq!((st, &del), (200, &json!({"deleted": true})));
    assert_eq!(reqwest::get(d["download_url"].as_str().unwrap()).await.unwrap().status(), 404);
    let (st, e, _) = send(s.get(ADMIN_KEY, &format!("/skills/{id}/download"))).await;
    assert_eq!((st, e["error"]["code"].as_str()), (404, Some("skill_not_found")));
}

#[tokio::test(flavor = "multi_thread")]
async fn sk2_bad_inputs_are_named_4xx() {
    let s = Server::start(bin(), &[("OPENLOOP_MAX_UPLOAD_BYTES", "1024")]);
    for bad in ["../escape.md", "/abs.md", "a/../../b.md", "C:/x.md", "dir\\x.md", "a/.gumloop.json"] {
        let (st, b) = create(&s, ADMIN_KEY, &[("SKILL.md", SKILL_MD), (bad, b"x")]).await;
        assert_eq!((st, b["error"]["code"].as_str(), b["error"]["param"].as_str()), (400, Some("invalid_file_name"), Some("files")), "{bad}: {b}");
    }
    // No files at all.
    let (st, b, _) = send(
        reqwest::Client::new()
            .post(s.url("/skills"))
            .bearer_auth(ADMIN_KEY)
            .header("content-type", format!("multipart/form-data; boundary={BOUNDARY}"))
            .body(multipart(&[("team_id", None, b"")])),
    )
    .await;
    assert_eq!((st, b["error"]["param"].as_str()), (400, Some("files")), "{b}");
    // Not multipart.
    let (st, b, _) = send(s.post(ADMIN_KEY, "/skills", json!({"files": []}))).await;
    assert_eq!((st, b["error"]["param"].as_str()), (400, Some("files")), "{b}");
    // Over the size limit, and the same path twice.
    let big = vec![b'a'; 2048];
    let (st, b) = create(&s, ADMIN_KEY, &[("SKILL.md", &big)]).await;
    assert_eq!((st, b["error"]["code"].as_str(), b["error"]["param"].as_str()), (413, Some("file_too_large"), Some("files")), "{b}");
    let (st, b) = create(&s, ADMIN_KEY, &[("SKILL.md", SKILL_MD), ("SKILL.md", SKILL_MD)]).await;
    assert_eq!((st, b["error"]["code"].as_str()), (400, Some("invalid_file_name")), "{b}");
    // Nothing was created by any of them.
    let (_, list, _) = send(s.get(ADMIN_KEY, "/skills")).await;
    assert_eq!(list["skills"], json!([]));
}

#[tokio::test(flavor = "multi_thread")]
async fn other_tenant_gets_404_everywhere() {
    let s = Server::start(bin(), &[]);
    let (_, b) = create(&s, ADMIN_KEY, &[("SKILL.md", SKILL_MD)]).await;
    let id = b["skill"]["id"].as_str().unwrap().to_string();
    let (_, other) = s.new_user("org_elsewhere");
    for (st, b) in [
        send(s.get(&other, &format!("/skills/{id}/download"))).await,
        send(s.delete(&other, &format!("/skills/{id}"))).await,
        send(s.get(&other, &format!("/skills/{id}/access"))).await,
        send(upload(&s, &other, reqwest::Method::PATCH, &format!("/skills/{id}"), &[("SKILL.md", b"# mine")])).await,
    ]
    .into_iter()
    .map(|(st, b, _)| (st, b))
    {
        assert_eq!((st, b["error"]["code"].as_str()), (404, Some("skill_not_found")), "{b}");
    }
    let (_, list, _) = send(s.get(&other, "/skills")).await;
    assert_eq!(list["skills"], json!([]));
    // Its sync plan is its own organization's, without the skill.
    let (st, plan, _) = send(s.post(&other, "/skills/sync/plan", json!({})).header("X-Gumloop-CLI-Version", "0.5.9")).await;
    assert_eq!((st, plan["skill_count"].as_i64()), (200, Some(0)), "{plan}");
}

async fn wait_done(s: &Server, sid: &str) -> Value {
    for _ in 0..400 {
        let (_, b, _) = send(s.get(ADMIN_KEY, &format!("/sessions/{sid}"))).await;
        match b["session"]["state"].as_str() {
            Some("completed") => return b,
            Some("failed") => panic!("run failed: {b}"),
            _ => tokio::time::sleep(Duration::from_millis(30)).await,
        }
    }
    panic!("run did not finish");
}

#[tokio::test(flavor = "multi_thread")]
async fn g10_attached_skill_reaches_the_model() {
    let fake = FakeLlm::start().await;
    let s = testkit::start_with_fake(bin(), &fake, &[]);
    let (_, b) = create(&s, ADMIN_KEY, &[("SKILL.md", SKILL_MD), ("reference/style.md", b"STYLE-GUIDE-CONTENT")]).await;
    let skill = b["skill"]["id"].as_str().unwrap().to_string();
    let agent = testkit::create_agent(&s, json!({"name": "writer", "model_name": "gpt-4o-mini"})).await;

    let (st, r, _) = send(s.patch(ADMIN_KEY, &format!("/agents/{agent}/skills"), json!({"attach": [skill]}))).await;
    assert_eq!(st, 200, "{r}");
    assert_eq!((&r["skill_ids"], &r["attached"], r["version"].as_i64()), (&json!([skill]), &json!([skill]), Some(2)));
    let (_, r, _) = send(s.patch(ADMIN_KEY, &format!("/agents/{agent}/skills"), json!({"attach": [skill]}))).await;
    assert_eq!((&r["already_attached"], r["version"].as_i64()), (&json!([skill]), Some(2)), "no change, no version");
    let (_, l, _) = send(s.get(ADMIN_KEY, &format!("/skills?agent_id={agent}"))).await;
    assert_eq!(l["skills"][0]["id"], skill.as_str());
    let (st, e, _) = send(s.patch(ADMIN_KEY, &format!("/agents/{agent}/skills"), json!({"attach": ["skill_nope"]}))).await;
    assert_eq!((st, e["error"]["param"].as_str()), (404, Some("attach[0]")), "{e}");

    fake.push(Reply::tool_call("read_skill_file", json!({"skill": "report-writer", "path": "reference/style.md"})));
    fake.push(Reply::text("done"));
    let (_, b, _) = send(s.post(ADMIN_KEY, &format!("/agents/{agent}/sessions"), json!({"input": "write the report"}))).await;
    let sid = b["session"]["id"].as_str().unwrap().to_string();
    wait_done(&s, &sid).await;

    let reqs = fake.requests();
    let first = &reqs[0];
    let system = first["messages"][0]["content"].as_str().unwrap_or_default().to_string();
    assert!(system.contains("ALWAYS-USE-THREE-BULLETS") && system.contains("## Skill: report-writer"), "{system}");
    assert!(first["tools"].as_array().unwrap().iter().any(|t| t["function"]["name"] == "read_skill_file"), "{first}");
    let second = reqs.last().unwrap().to_string();
    assert!(second.contains("STYLE-GUIDE-CONTENT"), "the tool result reaches the model: {second}");

    // Detached: the next run's prompt has no skill section and no tool.
    let (_, r, _) = send(s.patch(ADMIN_KEY, &format!("/agents/{agent}/skills"), json!({"detach": [skill]}))).await;
    assert_eq!((&r["detached"], &r["skill_ids"]), (&json!([skill]), &json!([])));
    fake.push(Reply::text("plain"));
    let (_, b, _) = send(s.post(ADMIN_KEY, &format!("/agents/{agent}/sessions"), json!({"input": "again"}))).await;
    wait_done(&s, b["session"]["id"].as_str().unwrap()).await;
    let last = fake.requests().pop().unwrap();
    assert!(!last["messages"][0]["content"].as_str().unwrap_or_default().contains("ALWAYS-USE-THREE-BULLETS"));
}

#[tokio::test(flavor = "multi_thread")]
async fn sy1_sy2_plan_matches_bundle() {
    let s = Server::start(bin(), &[]);
    create(&s, ADMIN_KEY, &[("SKILL.md", SKILL_MD)]).await;
    let (st, e, _) = send(s.post(ADMIN_KEY, "/skills/sync/plan", json!({}))).await;
    assert_eq!((st, e["error"]["param"].as_str()), (400, Some("X-Gumloop-CLI-Version")));
    let (st, plan, _) = send(s.post(ADMIN_KEY, "/skills/sync/plan", json!({})).header("X-Gumloop-CLI-Version", "0.5.9")).await;
    assert_eq!((st, plan["skill_count"].as_i64(), plan["manifest"]["algorithm"].as_str()), (200, Some(1), Some("sha256")), "{plan}");
    let resp = reqwest::Client::new()
        .post(s.url("/skills/sync/download"))
        .bearer_auth(ADMIN_KEY)
        .header("X-Gumloop-CLI-Version", "0.5.9")
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.headers()["content-type"], "application/zip");
    let bytes = resp.bytes().await.unwrap().to_vec();
    let mut z = zip::ZipArchive::new(std::io::Cursor::new(bytes)).unwrap();
    let mut manifest = String::new();
    z.by_name("gumloop-sync-manifest.json").unwrap().read_to_string(&mut manifest).unwrap();
    let manifest: Value = serde_json::from_str(&manifest).unwrap();
    assert_eq!(manifest["manifest"], plan["manifest"]);
    assert_eq!(manifest["skills"][0]["install_name"], "report-writer");
    assert!(z.by_name("report-writer/SKILL.md").is_ok());
}
