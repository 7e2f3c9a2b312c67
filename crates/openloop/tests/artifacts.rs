//! Black-box tests of §8.3 and §9.2 item 5: an agent run writes artifacts; they are
//! listed and downloaded in two steps (signed URL, no credentials), on local disk and on
//! a real S3-compatible server (moto, started by scripts/s3-test-server).

use std::time::Duration;

use base64::Engine as _;
use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use sha2::Sha256;
use testkit::fake_llm::{FakeLlm, Reply};
use testkit::{send, Server, ADMIN_KEY};

const SIGNING_SECRET: &[u8; 32] = b"0123456789abcdef0123456789abcdef";

fn bin() -> &'static std::path::Path {
    env!("CARGO_BIN_EXE_openloop").as_ref()
}

async fn start(fake: &FakeLlm, s3: bool) -> Server {
    let url = fake.openai_base_url();
    let keys = format!("k1:{}", base64::engine::general_purpose::STANDARD.encode(SIGNING_SECRET));
    let mut env: Vec<(String, String)> =
        vec![("OPENAI_BASE_URL".into(), url), ("OPENAI_API_KEY".into(), "sk-test".into()), ("OPENLOOP_SIGNING_KEYS".into(), keys)];
    if s3 {
        let ep = testkit::s3_endpoint().to_string();
        let bucket = format!("b{}", wire_id());
        let resp = reqwest::Client::new().put(format!("{ep}/{bucket}")).send().await.expect("create bucket");
        assert!(resp.status().is_success(), "bucket creation failed: {}", resp.status());
        env.extend([
            ("OPENLOOP_BLOB_STORE".into(), "s3".into()),
            ("OPENLOOP_S3_ENDPOINT".into(), ep),
            ("OPENLOOP_S3_BUCKET".into(), bucket),
            ("OPENLOOP_S3_ACCESS_KEY_ID".into(), "test".into()),
            ("OPENLOOP_S3_SECRET_ACCESS_KEY".into(), "test".into()),
            ("OPENLOOP_S3_PATH_STYLE".into(), "true".into()),
        ]);
    }
    let env_ref: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    Server::start(bin(), &env_ref)
}

fn wire_id() -> String {
    format!("{:x}", std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos())
}

async fn run_writer(s: &Server, fake: &FakeLlm, content: &str) -> (String, String) {
    let (_, b, _) = send(s.post(ADMIN_KEY, "/agents", json!({"name": "writer", "model_name": "gpt-4o-mini"}))).await;
    let agent = b["agent"]["id"].as_str().unwrap().to_string();
    fake.push(Reply::tool_call("write_artifact", json!({"filename": "report é.md", "content": content})));
    fake.push(Reply::tool_call("write_artifact", json!({"filename": "report é.md", "content": format!("{content} v2")})));
    fake.push(Reply::tool_call("write_artifact", json!({"filename": "blob.bin", "content": "AAEC/w==", "encoding": "base64"})));
    fake.push(Reply::text("wrote it"));
    let (_, b, _) = send(s.post(ADMIN_KEY, &format!("/agents/{agent}/sessions"), json!({"input": "write a report"}))).await;
    let sid = b["session"]["id"].as_str().unwrap().to_string();
    for _ in 0..300 {
        let (_, b, _) = send(s.get(ADMIN_KEY, &format!("/sessions/{sid}"))).await;
        match b["session"]["state"].as_str() {
            Some("completed") => {
                let parts = b["session"]["messages"][1]["parts"].as_array().unwrap().clone();
                assert_eq!(parts.iter().filter(|p| p["type"] == "file").count(), 3, "{parts:?}");
                return (agent, sid);
            }
            Some("failed") => panic!("run failed: {b}"),
            _ => tokio::time::sleep(Duration::from_millis(30)).await,
        }
    }
    panic!("run did not finish");
}

async fn two_step_download_suite(s3: bool) {
    let fake = FakeLlm::start().await;
    let s = start(&fake, s3).await;
    let (agent, sid) = run_writer(&s, &fake, "# Quarterly report").await;
    let (st, list, _) = send(s.get(ADMIN_KEY, &format!("/agents/{agent}/artifacts?session_id={sid}&sort_order=name_asc"))).await;
    assert_eq!(st, 200, "{list}");
    let items = list["artifacts"].as_array().unwrap();
    assert_eq!(items.len(), 2);
    let report = items.iter().find(|a| a["filename"] == "report é.md").unwrap().clone();
    assert_eq!(report["major_version"], 2);
    assert_eq!(report["metadata"]["media_type"], "text/markdown");
    let art = report["id"].as_str().unwrap().to_string();

    // Step 1 → step 2 without credentials: exact bytes.
    let (st, dl, _) = send(s.get(ADMIN_KEY, &format!("/artifacts/{art}/download"))).await;
    assert_eq!(st, 200);
    assert_eq!((dl["filename"].as_str(), dl["size"].as_i64()), (Some("report é.md"), Some(21)));
    let url = dl["download_url"].as_str().unwrap().to_string();
    assert!(url.starts_with(&s.base_url), "built from OPENLOOP_PUBLIC_URL: {url}");
    let resp = reqwest::get(&url).await.unwrap();
    assert_eq!(resp.status(), 200);
    let h = resp.headers().clone();
    assert_eq!(h["content-length"], "21");
    assert_eq!(h["content-disposition"], "attachment; filename=\"report _.md\"; filename*=UTF-8''report%20%C3%A9.md");
    assert!(h["etag"].to_str().unwrap().starts_with('"'));
    assert_eq!(h["referrer-policy"], "no-referrer");
    assert_eq!(resp.bytes().await.unwrap().as_ref(), b"# Quarterly report v2");
    // Range.
    let resp = reqwest::Client::new().get(&url).header("range", "bytes=2-10").send().await.unwrap();
    assert_eq!(resp.status(), 206);
    assert_eq!(resp.headers()["content-range"], "bytes 2-10/21");
    assert_eq!(resp.bytes().await.unwrap().as_ref(), b"Quarterly");
    let resp = reqwest::Client::new().get(&url).header("range", "bytes=100-").send().await.unwrap();
    assert_eq!(resp.status(), 416);
    // If-Range (RFC 9110 §13.1.5): the range applies only while the ETag matches.
    let etag = h["etag"].to_str().unwrap().to_string();
    let resp = reqwest::Client::new().get(&url).header("range", "bytes=2-10").header("if-range", &etag).send().await.unwrap();
    assert_eq!(resp.status(), 206);
    let resp = reqwest::Client::new().get(&url).header("range", "bytes=2-10").header("if-range", "\"stale-version\"").send().await.unwrap();
    assert_eq!(resp.status(), 200, "a non-matching If-Range serves the whole current file");
    assert_eq!(resp.bytes().await.unwrap().as_ref(), b"# Quarterly report v2");
    let resp = reqwest::Client::new().get(&url).header("range", "bytes=2-10").header("if-range", "Wed, 21 Oct 2015 07:28:00 GMT").send().await.unwrap();
    assert_eq!(resp.status(), 200, "a date never matches a strong-ETag resource");
    // Older version and binary content.
    let (_, vers, _) = send(s.get(ADMIN_KEY, &format!("/artifacts/{art}/versions"))).await;
    let v = vers["versions"].as_array().unwrap();
    assert_eq!((v.len(), v[0]["is_current"].as_bool(), v[1]["major_version"].as_i64()), (2, Some(true), Some(1)));
    let v1 = v[1]["version_id"].as_str().unwrap();
    let (_, dl1, _) = send(s.get(ADMIN_KEY, &format!("/artifacts/{art}/download?version_id={v1}"))).await;
    assert_eq!(reqwest::get(dl1["download_url"].as_str().unwrap()).await.unwrap().bytes().await.unwrap().as_ref(), b"# Quarterly report");
    let bin_art = items.iter().find(|a| a["filename"] == "blob.bin").unwrap();
    assert_eq!(reqwest::get(bin_art["url"].as_str().unwrap()).await.unwrap().bytes().await.unwrap().as_ref(), &[0u8, 1, 2, 255]);
    let (st, b, _) = send(s.get(ADMIN_KEY, &format!("/artifacts/{art}/download?version_id=ver_nope"))).await;
    assert_eq!((st, b["error"]["code"].as_str()), (404, Some("artifact_version_not_found")));

    // Tampered, re-targeted and expired URLs.
    let (path, query) = url.split_once('?').unwrap();
    let bin_path = bin_art["url"].as_str().unwrap().split_once('?').unwrap().0.to_string();
    for bad in [
        format!("{path}?{}", query.replace("sig=", "sig=A")),
        format!("{bin_path}?{query}"),
        format!("{}x?{query}", path),
        format!("{path}?{}", query.replace("kid=k1", "kid=k9")),
        path.to_string(),
    ] {
        let resp = reqwest::get(&bad).await.unwrap();
        assert_eq!(resp.status(), 403, "{bad}");
        let b: Value = resp.json().await.unwrap();
        assert_eq!(b["error"]["code"], "signature_invalid");
    }
    let url_path = reqwest::Url::parse(path).unwrap().path().to_string();
    let exp = chrono_now() - 60;
    let mut mac = Hmac::<Sha256>::new_from_slice(SIGNING_SECRET).unwrap();
    mac.update(format!("GET\n{url_path}\n{exp}\nk1").as_bytes());
    let sig = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes());
    let resp = reqwest::get(format!("{path}?exp={exp}&kid=k1&sig={sig}")).await.unwrap();
    assert_eq!(resp.status(), 403);
    assert_eq!(resp.json::<Value>().await.unwrap()["error"]["code"], "signature_expired");

    // Rename, other tenants, delete.
    let (st, b, _) = send(s.client.put(s.url(&format!("/artifacts/{art}/name"))).bearer_auth(ADMIN_KEY).json(&json!({"name": "Final: report.md"}))).await;
    assert_eq!((st, b), (200, json!({"name": "Final_ report.md"})));
    let (st, b, _) = send(s.client.put(s.url(&format!("/artifacts/{art}/name"))).bearer_auth(ADMIN_KEY).json(&json!({"name": "  "}))).await;
    assert_eq!((st, b["error"]["code"].as_str()), (400, Some("invalid_name")));
    let (st, b, _) = send(s.client.put(s.url(&format!("/artifacts/{art}/password"))).bearer_auth(ADMIN_KEY).json(&json!({"password": "short"}))).await;
    assert_eq!((st, b["error"]["code"].as_str()), (400, Some("invalid_password")));
    let (st, b, _) =
        send(s.client.put(s.url(&format!("/artifacts/{art}/password"))).bearer_auth(ADMIN_KEY).json(&json!({"password": "correct horse battery"}))).await;
    assert_eq!((st, b), (200, json!({"success": true})));
    let (_, other_key) = s.new_user("org_other");
    for req in [
        s.get(&other_key, &format!("/artifacts/{art}/download")),
        s.delete(&other_key, &format!("/artifacts/{art}")),
        s.get(&other_key, &format!("/artifacts/{art}/versions")),
    ] {
        let (st, b, _) = send(req).await;
        assert_eq!((st, b["error"]["code"].as_str()), (404, Some("artifact_not_found")));
    }
    let (st, b, _) = send(s.delete(ADMIN_KEY, &format!("/artifacts/{art}"))).await;
    assert_eq!((st, b), (200, json!({"deleted": true})));
    let (st, _, _) = send(s.delete(ADMIN_KEY, &format!("/artifacts/{art}"))).await;
    assert_eq!(st, 404);
    let resp = reqwest::get(&url).await.unwrap();
    assert_eq!(resp.status(), 404, "issued URLs stop working after delete");
}

fn chrono_now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a1_a5_two_step_download_local_disk() {
    two_step_download_suite(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a1_a5_two_step_download_s3() {
    two_step_download_suite(true).await;
}
