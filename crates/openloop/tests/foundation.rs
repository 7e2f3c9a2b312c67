//! Black-box tests of §2 (auth), §3 (errors), §5 (rate limits), §8.13, §8.7 and §9.

use serde_json::{json, Value};
use testkit::{send, Server, ADMIN_KEY, ADMIN_USER, TEAM_ID, TEAM_KEY};

fn bin() -> &'static std::path::Path {
    env!("CARGO_BIN_EXE_openloop").as_ref()
}

#[tokio::test]
async fn auth_missing_invalid_query_key_and_identity_rules() {
    let s = Server::start(bin(), &[]);
    let (st, b, _) = send(s.client.get(s.url("/agents"))).await;
    assert_eq!((st, b["error"]["code"].as_str(), b["error"]["type"].as_str()), (401, Some("missing_api_key"), Some("authentication_error")));
    let (st, b, _) = send(s.get("olk_nope", "/agents")).await;
    assert_eq!((st, b["error"]["code"].as_str()), (401, Some("invalid_api_key")));
    let (st, _, _) = send(s.client.get(s.url(&format!("/agents?api_key={ADMIN_KEY}")))).await;
    assert_eq!(st, 200);
    let (st, b, _) = send(s.get(ADMIN_KEY, "/agents").header("x-auth-key", "usr_someone_else")).await;
    assert_eq!((st, b["error"]["code"].as_str()), (403, Some("identity_mismatch")));
    let (st, _, _) = send(s.get(ADMIN_KEY, "/agents").header("x-auth-key", ADMIN_USER)).await;
    assert_eq!(st, 200);
    let (st, b, _) = send(s.get(TEAM_KEY, "/agents")).await;
    assert_eq!((st, b["error"]["code"].as_str()), (400, Some("user_id_required")));
    let (st, b, _) = send(s.get(TEAM_KEY, "/agents").header("x-auth-key", "usr_stranger")).await;
    assert_eq!((st, b["error"]["code"].as_str()), (403, Some("not_team_member")));
    let (st, b, _) = send(s.get(TEAM_KEY, "/agents?team_id=team_other").header("x-auth-key", ADMIN_USER)).await;
    assert_eq!((st, b["error"]["code"].as_str()), (403, Some("team_mismatch")));
    let (st, b, _) = send(s.get(ADMIN_KEY, "/agents?team_id=team_unknown")).await;
    assert_eq!((st, b["error"]["code"].as_str()), (404, Some("team_not_found")));
    // Revocation is immediate.
    let (user, key) = s.new_user("org_default");
    let (st, _, _) = send(s.get(&key, "/agents")).await;
    assert_eq!(st, 200);
    let keys = s.cli(&["keys", "list", "--user", &user]);
    let key_id = keys["keys"][0]["key_id"].as_str().unwrap().to_string();
    assert!(keys.to_string().find(&key).is_none(), "keys list must never print secrets");
    s.cli(&["keys", "revoke", &key_id]);
    let (st, _, _) = send(s.get(&key, "/agents")).await;
    assert_eq!(st, 401);
}

#[tokio::test]
async fn errors_bad_bodies_routes_and_methods() {
    let s = Server::start(bin(), &[("OPENLOOP_MAX_BODY_BYTES", "4096")]);
    let (st, b, _) = send(s.client.post(s.url("/agents")).bearer_auth(ADMIN_KEY).header("content-type", "application/json").body("{not json")).await;
    assert_eq!((st, b["error"]["code"].as_str()), (400, Some("invalid_json")));
    let (st, b, _) = send(s.client.post(s.url("/agents")).bearer_auth(ADMIN_KEY).header("content-type", "application/json").body("[1,2]")).await;
    assert_eq!((st, b["error"]["code"].as_str()), (400, Some("invalid_request")));
    let (st, b, _) = send(s.client.post(s.url("/agents")).bearer_auth(ADMIN_KEY).header("content-type", "text/plain").body("{\"name\":\"a\"}")).await;
    assert_eq!((st, b["error"]["code"].as_str()), (415, Some("unsupported_media_type")));
    let (st, b, _) = send(s.post(ADMIN_KEY, "/agents", json!({"name": "x".repeat(5000)}))).await;
    assert_eq!((st, b["error"]["code"].as_str()), (413, Some("payload_too_large")));
    let deep = "[".repeat(70) + &"]".repeat(70);
    let (st, b, _) = send(
        s.client
            .post(s.url("/agents"))
            .bearer_auth(ADMIN_KEY)
            .header("content-type", "application/json")
            .body(format!("{{\"name\":\"a\",\"resources\":{deep}}}")),
    )
    .await;
    assert_eq!((st, b["error"]["code"].as_str()), (400, Some("invalid_request")));
    // Empty body with a JSON content type on GET is fine (the SDK sends it).
    let (st, _, _) = send(s.client.get(s.url("/agents")).bearer_auth(ADMIN_KEY).header("content-type", "application/json")).await;
    assert_eq!(st, 200);
    let (st, b, _) = send(s.get(ADMIN_KEY, "/nope")).await;
    assert_eq!((st, b["error"]["code"].as_str()), (404, Some("route_not_found")));
    let (st, b, _) = send(s.get(ADMIN_KEY, "/agents/")).await;
    assert_eq!((st, b["error"]["code"].as_str()), (404, Some("route_not_found")));
    let (st, b, h) = send(s.client.put(s.url("/agents")).bearer_auth(ADMIN_KEY)).await;
    assert_eq!((st, b["error"]["code"].as_str()), (405, Some("method_not_allowed")));
    assert_eq!(h["allow"], "GET, POST");
    let (st, b, _) = send(s.get(ADMIN_KEY, "/brain/sources")).await;
    assert_eq!((st, b["error"]["code"].as_str()), (501, Some("not_implemented")));
    let (st, _, _) = send(s.client.get(s.url("/brain/sources"))).await;
    assert_eq!(st, 401, "later routes authenticate first");
    let (st, b, _) = send(s.client.get(s.url(&format!("/agents?api_key={ADMIN_KEY}&{}", "x=y&".repeat(2100))))).await;
    assert_eq!((st, b["error"]["code"].as_str()), (400, Some("invalid_request")));
}

#[tokio::test]
async fn rate_limit_headers_and_429() {
    let s = Server::start(bin(), &[("OPENLOOP_RATE_LIMIT_REQUESTS", "3"), ("OPENLOOP_RATE_LIMIT_WINDOW_SECS", "60")]);
    let (_, _, h) = send(s.get(ADMIN_KEY, "/agents")).await;
    assert_eq!(h["ratelimit-limit"], "3");
    assert_eq!(h["ratelimit-remaining"], "2");
    let reset: u64 = h["ratelimit-reset"].to_str().unwrap().parse().unwrap();
    assert!((1..=60).contains(&reset), "reset is a delta in seconds: {reset}");
    assert_eq!(h["ratelimit-policy"], "\"default\";q=3;w=60");
    assert_eq!(h["ratelimit"], format!("\"default\";r=2;t={reset}"));
    // Errors carry the headers too.
    let (st, _, h) = send(s.get(ADMIN_KEY, "/agents/agt_missing")).await;
    assert_eq!((st, h["ratelimit-remaining"].to_str().unwrap()), (404, "1"));
    send(s.get(ADMIN_KEY, "/agents")).await;
    let (st, b, h) = send(s.get(ADMIN_KEY, "/agents")).await;
    assert_eq!(st, 429);
    assert_eq!(b["error"]["code"], "rate_limited");
    assert_eq!(b["error"]["type"], "rate_limit_error");
    assert_eq!(b["error"]["details"]["policy"], "default");
    assert_eq!(b["error"]["details"]["limit"], 3);
    assert_eq!(b["error"]["details"]["remaining"], 0);
    let retry: u64 = h["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=60).contains(&retry));
    assert_eq!(h["ratelimit-remaining"], "0");
    // Another key has its own quota.
    let (st, _, _) = send(s.get(TEAM_KEY, "/agents").header("x-auth-key", ADMIN_USER)).await;
    assert_eq!(st, 200);
}

#[tokio::test]
async fn x1_teams_x2_organizations_m1_models() {
    let s = Server::start(bin(), &[]);
    let (st, b, _) = send(s.get(ADMIN_KEY, "/teams")).await;
    assert_eq!((st, b), (200, json!({"teams": [{"id": TEAM_ID, "name": TEAM_ID}]})));
    let (st, b, _) = send(s.get(ADMIN_KEY, "/organizations")).await;
    assert_eq!(st, 200);
    assert_eq!(b["organizations"][0]["id"], "org_default");
    let (st, b, _) = send(s.get(TEAM_KEY, "/organizations").header("x-auth-key", ADMIN_USER)).await;
    assert_eq!((st, b["error"]["code"].as_str()), (403, Some("team_key_not_supported")));
    let (st, b, _) = send(s.get(ADMIN_KEY, "/models")).await;
    assert_eq!(st, 200);
    let groups = b["model_groups"].as_array().unwrap();
    let labels: Vec<&str> = groups.iter().map(|g| g["groupLabel"].as_str().unwrap()).collect();
    assert_eq!(labels, vec!["OpenAI", "Anthropic", "Ollama", "Openloop"]);
    assert_eq!(groups[3]["options"][0]["value"], "auto");
    assert_eq!(groups[0]["options"][0]["status"], "unavailable");
}

#[tokio::test]
async fn health_openapi_docs_and_graceful_shutdown() {
    let mut s = Server::start(bin(), &[]);
    let (st, b, _) = send(s.client.get(format!("{}/healthz", s.base_url))).await;
    assert_eq!((st, b), (200, json!({"status": "ok"})));
    let (st, b, _) = send(s.client.get(format!("{}/readyz", s.base_url))).await;
    assert_eq!((st, &b["checks"]["database"]), (200, &json!("ok")));
    let (st, doc, h) = send(s.client.get(s.url("/openapi.json"))).await;
    assert_eq!(st, 200);
    assert!(doc["openapi"].as_str().unwrap().starts_with("3.1"));
    assert_eq!(doc["paths"]["/agents"]["post"]["x-openloop-id"], "G2");
    assert_eq!(doc["paths"]["/brain/sources"]["get"]["x-openloop-status"], "later");
    assert!(doc["components"]["schemas"]["Agent"].is_object());
    assert_eq!(h["x-content-type-options"], "nosniff");
    let resp = s.client.get(format!("{}/docs", s.base_url)).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert!(resp.text().await.unwrap().contains("openapi.json"));
    assert_eq!(s.terminate(), Some(0));
}

#[tokio::test]
async fn bootstrap_is_idempotent_across_restarts_and_first_start_prints_credentials() {
    let mut s = Server::start(bin(), &[]);
    let (st, _, _) = send(s.get(ADMIN_KEY, "/agents")).await;
    assert_eq!(st, 200);
    s.restart();
    let (st, _, _) = send(s.get(ADMIN_KEY, "/agents")).await;
    assert_eq!(st, 200);

    // No bootstrap, empty database: a first admin is created and printed once.
    let dir = tempfile::tempdir().unwrap();
    let mut child = std::process::Command::new(bin())
        .args(["serve", "--addr", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path())
        .env("OPENLOOP_LOG", "warn")
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut lines = std::io::BufRead::lines(std::io::BufReader::new(stdout));
    let mut token = None;
    let mut url = None;
    for line in lines.by_ref() {
        let line = line.unwrap();
        if let Some(t) = line.trim().strip_prefix("GUMLOOP_ACCESS_TOKEN=") {
            token = Some(t.to_string());
        }
        if let Some(u) = line.strip_prefix("openloop listening on ") {
            url = Some(u.to_string());
            break;
        }
    }
    let (token, url) = (token.expect("first start prints a key"), url.unwrap());
    let resp = reqwest::Client::new().get(format!("{url}/api/v1/organizations")).bearer_auth(&token).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    let _ = child.kill();
    let _ = child.wait();
    // The database holds only the hash.
    let db = std::fs::read(dir.path().join("openloop.db")).unwrap();
    assert!(db.windows(token.len()).all(|w| w != token.as_bytes()), "secret stored in clear");
}

#[tokio::test]
async fn invalid_configuration_exits_2_naming_the_setting() {
    let out = std::process::Command::new(bin()).args(["serve", "--addr", "nonsense"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("OPENLOOP_ADDR"));
    let out = std::process::Command::new(bin()).args(["serve"]).env("OPENLOOP_DATABASE_URL", "mysql://x").output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let _: Value = Value::Null;
}

#[tokio::test]
async fn readyz_reports_an_unwritable_data_dir() {
    let s = Server::start(bin(), &[]);
    let (st, b, _) = send(s.client.get(s.url("").replace("/api/v1", "/readyz"))).await;
    assert_eq!((st, b["checks"]["data_dir"].as_str()), (200, Some("ok")), "{b}");
    // Root ignores permission bits; the immutable attribute stops even root's writes.
    let dir = s.data_dir.to_string_lossy().to_string();
    let locked = std::process::Command::new("chattr").args(["+i", &dir]).status().is_ok_and(|st| st.success());
    if !locked {
        eprintln!("skipped: chattr +i is not available on this filesystem, so a read-only data dir cannot be simulated");
        return;
    }
    let (st, b, h) = send(s.client.get(s.url("").replace("/api/v1", "/readyz"))).await;
    let _ = std::process::Command::new("chattr").args(["-i", &dir]).status();
    assert_eq!((st, b["checks"]["data_dir"].as_str()), (503, Some("error")), "{b}");
    assert!(h.contains_key("retry-after"));
    let (st, _, _) = send(s.client.get(s.url("").replace("/api/v1", "/readyz"))).await;
    assert_eq!(st, 200, "ready again once writable");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nul_characters_are_refused_naming_where_they_are() {
    // PostgreSQL cannot store U+0000; Openloop refuses it in every request, on every backend.
    let s = Server::start(bin(), &[]);
    let (st, b, _) = send(s.post(ADMIN_KEY, "/agents", json!({"name": "bad\u{0}name", "model_name": "gpt-4o-mini"}))).await;
    assert_eq!((st, b["error"]["code"].as_str(), b["error"]["param"].as_str()), (400, Some("invalid_name"), Some("name")), "{b}");
    let (st, b, _) = send(s.post(ADMIN_KEY, "/agents", json!({"name": "ok", "model_name": "gpt-4o-mini", "metadata": {"tags": ["x\u{0}"]}}))).await;
    assert_eq!((st, b["error"]["param"].as_str()), (400, Some("metadata.tags[0]")), "{b}");
    let (st, b, _) = send(s.get(ADMIN_KEY, "/agents?search_query=%00")).await;
    assert_eq!((st, b["error"]["param"].as_str()), (400, Some("search_query")), "{b}");
    let (st, b, _) = send(s.get(ADMIN_KEY, "/agents/agt_%00")).await;
    assert_eq!((st, b["error"]["code"].as_str()), (400, Some("invalid_request")), "{b}");
    // A literal backslash-u sequence is text like any other.
    let (st, b, _) = send(s.post(ADMIN_KEY, "/agents", json!({"name": "escaped \\u0000 is fine", "model_name": "gpt-4o-mini"}))).await;
    assert_eq!(st, 201, "{b}");
}
