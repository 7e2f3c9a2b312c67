//! Black-box tests of the legacy flow files F8–F11 (flat errors, 207, streamed ZIP).

use base64::Engine as _;
use serde_json::{json, Value};
use testkit::{send, Server, ADMIN_KEY, ADMIN_USER, TEAM_ID, TEAM_KEY};

fn b64(d: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(d)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn f8_f11_upload_download_and_zip() {
    let s = Server::start(env!("CARGO_BIN_EXE_openloop").as_ref(), &[("OPENLOOP_MAX_UPLOAD_BYTES", "1000")]);
    let (st, b, _) = send(s.post(ADMIN_KEY, "/upload_file", json!({"file_name": "data.csv", "file_content": b64(b"a,b\n1,2\n")}))).await;
    assert_eq!((st, b), (200, json!({"success": true, "file_name": "data.csv"})));
    // Same name replaces.
    send(s.post(ADMIN_KEY, "/upload_file", json!({"file_name": "data.csv", "file_content": b64(b"a,b\n3,4\n")}))).await;
    for (body, status, error) in [
        (json!({"file_content": "eA=="}), 400, "file_name is required"),
        (json!({"file_name": "x.txt"}), 400, "file_content is required"),
        (json!({"file_name": "../x.txt", "file_content": "eA=="}), 400, "invalid_file_name"),
        (json!({"file_name": "x.txt", "file_content": "%%%"}), 400, "invalid_file_content"),
        (json!({"file_name": "x.bin", "file_content": b64(&[0u8; 2000])}), 413, "file_too_large"),
        (json!({"file_name": "x.txt", "file_content": "eA==", "user_id": "usr_other"}), 403, "forbidden"),
    ] {
        let (st, b, _) = send(s.post(ADMIN_KEY, "/upload_file", body.clone())).await;
        assert_eq!((st, b), (status, json!({"error": error})), "{body}");
    }
    let (st, _, _) = send(s.client.post(s.url("/upload_file")).json(&json!({}))).await;
    assert_eq!(st, 401);
    // Team key without identity.
    let (st, b, _) = send(s.post(TEAM_KEY, "/upload_file", json!({"file_name": "t.txt", "file_content": "eA=="}))).await;
    assert_eq!((st, b), (400, json!({"error": "project_id or user_id is required"})));
    let (st, _, _) =
        send(s.post(TEAM_KEY, "/upload_file", json!({"file_name": "t.txt", "file_content": "eA==", "project_id": TEAM_ID, "user_id": ADMIN_USER}))).await;
    assert_eq!(st, 200);

    // F9: partial success is 207; none is 400.
    let (st, b, _) = send(s.post(
        ADMIN_KEY,
        "/upload_files",
        json!({"files": [{"file_name": "one.txt", "file_content": b64(b"one")}, {"file_name": "a/b", "file_content": "eA=="}]}),
    ))
    .await;
    assert_eq!(st, 207, "{b}");
    assert_eq!(b["uploaded_files"], json!(["one.txt"]));
    assert_eq!(b["failed_files"][0]["file_name"], "a/b");
    let (st, b, _) = send(s.post(ADMIN_KEY, "/upload_files", json!({"files": [{"file_name": "a/b", "file_content": "eA=="}]}))).await;
    assert_eq!((st, b["error"].as_str()), (400, Some("all_uploads_failed")));
    let (st, b, _) = send(s.post(ADMIN_KEY, "/upload_files", json!({"files": []}))).await;
    assert_eq!((st, b), (400, json!({"error": "files is required"})));

    // F10.
    let resp = s.post(ADMIN_KEY, "/download_file", json!({"file_name": "data.csv"})).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "text/csv");
    assert!(resp.headers()["content-disposition"].to_str().unwrap().starts_with("attachment;"));
    assert_eq!(resp.bytes().await.unwrap().as_ref(), b"a,b\n3,4\n");
    let (st, b, _) = send(s.post(ADMIN_KEY, "/download_file", json!({"file_name": "nope.txt"}))).await;
    assert_eq!((st, b), (404, json!({"error": "file_not_found"})));
    let (st, b, _) = send(s.post(ADMIN_KEY, "/download_file", json!({"file_name": "data.csv", "run_id": "run_x"}))).await;
    assert_eq!((st, b), (404, json!({"error": "run_not_found"})));

    // F11: a valid ZIP with both entries; duplicates suffixed.
    let resp = s.post(ADMIN_KEY, "/download_files", json!({"file_names": ["data.csv", "one.txt", "data.csv"]})).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "application/zip");
    let zip = resp.bytes().await.unwrap();
    assert_eq!(&zip[..4], b"PK\x03\x04");
    let eocd = zip.len() - 22;
    assert_eq!(&zip[eocd..eocd + 4], b"PK\x05\x06");
    assert_eq!(u16::from_le_bytes([zip[eocd + 10], zip[eocd + 11]]), 3);
    let text = String::from_utf8_lossy(&zip);
    assert!(text.contains("data (1).csv") && text.contains("one.txt") && text.contains("a,b\n3,4\n"));
    let (st, b, _) = send(s.post(ADMIN_KEY, "/download_files", json!({"file_names": ["data.csv", "missing.txt"]}))).await;
    assert_eq!((st, b), (404, json!({"error": "file_not_found", "metadata": {"missing": ["missing.txt"]}})));
    let _: Value = Value::Null;
}
