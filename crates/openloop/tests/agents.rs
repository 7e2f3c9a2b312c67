//! Black-box tests of §8.6 (G1–G9) against a spawned server.

use serde_json::{json, Value};
use testkit::{send, Server, ADMIN_KEY, TEAM_ID};

fn server() -> Server {
    Server::start(env!("CARGO_BIN_EXE_openloop").as_ref(), &[])
}

async fn create(s: &Server, body: Value) -> Value {
    let (st, b, _) = send(s.post(ADMIN_KEY, "/agents", body)).await;
    assert_eq!(st, 201, "{b}");
    b["agent"].clone()
}

#[tokio::test]
async fn g2_create_returns_201_and_g3_retrieves() {
    let s = server();
    let a = create(&s, json!({"name": "  Support  ", "model_name": "gpt-4o", "system_prompt": "Be kind"})).await;
    assert_eq!(a["name"], "Support");
    assert_eq!(a["version"], 1);
    assert_eq!(a["incognito"], json!({"enforced": false}));
    assert_eq!(a["team_id"], Value::Null);
    assert!(a["id"].as_str().unwrap().starts_with("agt_"));
    let (st, b, _) = send(s.get(ADMIN_KEY, &format!("/agents/{}", a["id"].as_str().unwrap()))).await;
    assert_eq!(st, 200);
    assert_eq!(b["agent"]["system_prompt"], "Be kind");
    assert!(b["agent"].get("last_used_at").is_some());
}

#[tokio::test]
async fn g2_validation_errors_name_the_field() {
    let s = server();
    for (body, code, param) in [
        (json!({}), "invalid_name", "name"),
        (json!({"name": "   "}), "invalid_name", "name"),
        (json!({"name": "x".repeat(257)}), "invalid_name", "name"),
        (json!({"name": 5}), "invalid_request", "name"),
        (json!({"name": "a", "model_name": "no-such-model"}), "invalid_model", "model_name"),
        (json!({"name": "a", "agent_id": "bad/id"}), "invalid_id", "agent_id"),
        (json!({"name": "a", "tools": [{"type": "web_fetch", "approval_mode": "sometimes"}]}), "invalid_request", "tools[0].approval_mode"),
        (json!({"name": "a", "metadata": {"tool_discovery": {"mode": "x"}}}), "invalid_request", "metadata.tool_discovery.mode"),
        (json!({"name": "a", "is_active": "yes"}), "invalid_request", "is_active"),
    ] {
        let (st, b, _) = send(s.post(ADMIN_KEY, "/agents", body.clone())).await;
        assert_eq!(st, 400, "{body} -> {b}");
        assert_eq!(b["error"]["code"], code, "{body} -> {b}");
        assert_eq!(b["error"]["param"], param, "{body} -> {b}");
        assert_eq!(b["error"]["type"], "invalid_request_error");
    }
    let (st, b, _) = send(s.post(ADMIN_KEY, "/agents", json!({"name": "a", "skill_ids": ["sk_1"]}))).await;
    assert_eq!((st, b["error"]["code"].as_str()), (501, Some("not_implemented")));
}

#[tokio::test]
async fn g2_caller_id_conflict_is_409() {
    let s = server();
    create(&s, json!({"name": "a", "agent_id": "my-agent"})).await;
    let (st, b, _) = send(s.post(ADMIN_KEY, "/agents", json!({"name": "b", "agent_id": "my-agent"}))).await;
    assert_eq!(st, 409);
    assert_eq!(b["error"]["code"], "agent_already_exists");
}

#[tokio::test]
async fn g1_sorts_filters_and_paginates_without_duplicates() {
    let s = server();
    for n in ["delta", "Alpha", "charlie", "bravo", "echo"] {
        create(&s, json!({"name": n})).await;
    }
    let (_, b, _) = send(s.get(ADMIN_KEY, "/agents?sort_order=name_asc")).await;
    let names: Vec<&str> = b["agents"].as_array().unwrap().iter().map(|a| a["name"].as_str().unwrap()).collect();
    assert_eq!(names, vec!["Alpha", "bravo", "charlie", "delta", "echo"]);
    assert_eq!(b["next_cursor"], Value::Null);

    let (_, b, _) = send(s.get(ADMIN_KEY, "/agents?search=HARL")).await;
    assert_eq!(b["agents"].as_array().unwrap().len(), 1);

    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            None => "/agents?page_size=2&sort_order=oldest".to_string(),
            Some(c) => format!("/agents?page_size=2&sort_order=oldest&cursor={c}"),
        };
        let (st, b, _) = send(s.get(ADMIN_KEY, &path)).await;
        assert_eq!(st, 200, "{b}");
        for a in b["agents"].as_array().unwrap() {
            seen.push(a["name"].as_str().unwrap().to_string());
        }
        match b["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => break,
        }
    }
    assert_eq!(seen, vec!["delta", "Alpha", "charlie", "bravo", "echo"]);

    let (_, b, _) = send(s.get(ADMIN_KEY, "/agents?page_size=2")).await;
    let c = b["next_cursor"].as_str().unwrap().to_string();
    // The cursor is bound to its filters and sort.
    let (st, b, _) = send(s.get(ADMIN_KEY, &format!("/agents?page_size=2&sort_order=oldest&cursor={c}"))).await;
    assert_eq!((st, b["error"]["code"].as_str()), (400, Some("invalid_cursor")));
    let (st, b, _) = send(s.get(ADMIN_KEY, &format!("/agents?page_size=2&cursor={}x", &c[..c.len() - 1]))).await;
    assert_eq!((st, b["error"]["code"].as_str()), (400, Some("invalid_cursor")));
    for bad in ["0", "101", "x", "2.5"] {
        let (st, b, _) = send(s.get(ADMIN_KEY, &format!("/agents?page_size={bad}"))).await;
        assert_eq!((st, b["error"]["code"].as_str(), b["error"]["param"].as_str()), (400, Some("invalid_page_size"), Some("page_size")));
    }
    let (st, b, _) = send(s.get(ADMIN_KEY, "/agents?sort_order=random")).await;
    assert_eq!((st, b["error"]["code"].as_str()), (400, Some("invalid_sort")));
    let (st, b, _) = send(s.get(ADMIN_KEY, "/agents?summary=maybe")).await;
    assert_eq!((st, b["error"]["param"].as_str()), (400, Some("summary")));
    let (_, b, _) = send(s.get(ADMIN_KEY, "/agents?summary=true")).await;
    let first = b["agents"][0].as_object().unwrap();
    assert!(first.contains_key("model_name") && !first.contains_key("tools") && !first.contains_key("metadata"));
}

#[tokio::test]
async fn g4_merges_metadata_replaces_lists_and_versions() {
    let s = server();
    let a = create(
        &s,
        json!({"name": "a", "metadata": {"fallback": {"enabled": true, "fallback_models": ["x"]}, "icon_url": "i"}, "tools": [{"type": "web_fetch"}]}),
    )
    .await;
    let id = a["id"].as_str().unwrap();
    let (st, b, _) = send(s.patch(
        ADMIN_KEY,
        &format!("/agents/{id}"),
        json!({"metadata": {"fallback": {"fallback_models": ["y", "z"]}, "icon_url": null}, "tools": [{"type": "human_input"}], "version": 1}),
    ))
    .await;
    assert_eq!(st, 200, "{b}");
    let ag = &b["agent"];
    assert_eq!(ag["metadata"], json!({"fallback": {"enabled": true, "fallback_models": ["y", "z"]}}));
    assert_eq!(ag["tools"], json!([{"type": "human_input"}]));
    assert_eq!(ag["abilities"], json!({"ask_question": {"enabled": true}}));
    assert_eq!(ag["version"], 2);

    // Stale version → 409 with the current version; nothing changes.
    let (st, b, _) = send(s.patch(ADMIN_KEY, &format!("/agents/{id}"), json!({"name": "zzz", "version": 1}))).await;
    assert_eq!(st, 409);
    assert_eq!(b["error"]["code"], "agent_version_conflict");
    assert_eq!(b["error"]["param"], "version");
    assert_eq!(b["error"]["details"]["current_version"], 2);

    // No-op: no new version.
    let (_, b, _) = send(s.patch(ADMIN_KEY, &format!("/agents/{id}"), json!({"name": "a"}))).await;
    assert_eq!(b["agent"]["version"], 2);

    // G6/G7: versions newest first; changes of v2 against v1.
    let (st, b, _) = send(s.get(ADMIN_KEY, &format!("/agents/{id}/versions"))).await;
    assert_eq!(st, 200);
    let versions = b["versions"].as_array().unwrap();
    assert_eq!(versions.iter().map(|v| v["major_version"].as_i64().unwrap()).collect::<Vec<_>>(), vec![2, 1]);
    assert_eq!(versions[0]["is_deployed"], true);
    let v2 = versions[0]["id"].as_str().unwrap();
    let v1 = versions[1]["id"].as_str().unwrap();
    let (_, b, _) = send(s.get(ADMIN_KEY, &format!("/agents/{id}/versions/{v2}"))).await;
    assert_eq!(b["changes"]["base_version_id"], v1);
    assert_eq!(b["version"]["composition"]["complete"], true);
    let tool_statuses: Vec<&str> = b["changes"]["tool_changes"].as_array().unwrap().iter().map(|c| c["status"].as_str().unwrap()).collect();
    assert_eq!(tool_statuses, vec!["added", "removed"]);
    let (_, b, _) = send(s.get(ADMIN_KEY, &format!("/agents/{id}/versions/{v1}"))).await;
    assert_eq!(b["changes"], Value::Null);
    let (st, b, _) = send(s.get(ADMIN_KEY, &format!("/agents/{id}/versions/agv_nope"))).await;
    assert_eq!((st, b["error"]["code"].as_str()), (404, Some("agent_version_not_found")));
}

#[tokio::test]
async fn g7_text_fields_diff_as_hunks() {
    let s = server();
    let a = create(&s, json!({"name": "a", "system_prompt": "line one\nline two\n", "model_name": "gpt-4o"})).await;
    let id = a["id"].as_str().unwrap();
    send(s.patch(ADMIN_KEY, &format!("/agents/{id}"), json!({"system_prompt": "line one\nline 2\n", "model_name": "gpt-4o-mini"}))).await;
    let (_, b, _) = send(s.get(ADMIN_KEY, &format!("/agents/{id}/versions"))).await;
    let v2 = b["versions"][0]["id"].as_str().unwrap().to_string();
    let (_, b, _) = send(s.get(ADMIN_KEY, &format!("/agents/{id}/versions/{v2}"))).await;
    let fc = b["changes"]["field_changes"].as_array().unwrap();
    let sp = fc.iter().find(|c| c["field"] == "system_prompt").unwrap();
    assert_eq!(sp["text_hunks"], json!([{"old_start": 1, "old_end": 2, "new_start": 1, "new_end": 2, "old_text": "line two\n", "new_text": "line 2\n"}]));
    let m = fc.iter().find(|c| c["field"] == "model_name").unwrap();
    assert_eq!((m["old_value"].as_str(), m["new_value"].as_str()), (Some("gpt-4o"), Some("gpt-4o-mini")));
}

#[tokio::test]
async fn g4_retire_and_g5_delete_hide_the_agent() {
    let s = server();
    let a = create(&s, json!({"name": "a"})).await;
    let id = a["id"].as_str().unwrap();
    let (st, b, _) = send(s.patch(ADMIN_KEY, &format!("/agents/{id}"), json!({"is_active": false}))).await;
    assert_eq!((st, &b["agent"]["is_active"]), (200, &json!(false)));
    let (st, _, _) = send(s.get(ADMIN_KEY, &format!("/agents/{id}"))).await;
    assert_eq!(st, 404);
    let (_, b, _) = send(s.get(ADMIN_KEY, "/agents")).await;
    assert_eq!(b["agents"].as_array().unwrap().len(), 0);

    let a = create(&s, json!({"name": "b"})).await;
    let id = a["id"].as_str().unwrap();
    let (st, b, _) = send(s.delete(ADMIN_KEY, &format!("/agents/{id}"))).await;
    assert_eq!((st, b), (200, json!({"agent_id": id, "deleted": true})));
    let (st, b, _) = send(s.delete(ADMIN_KEY, &format!("/agents/{id}"))).await;
    assert_eq!((st, b["error"]["code"].as_str()), (404, Some("agent_not_found")));
    let (st, b, _) = send(s.delete(ADMIN_KEY, "/agents/gumball")).await;
    assert_eq!((st, b["error"]["code"].as_str()), (403, Some("platform_agent_not_deletable")));
}

#[tokio::test]
async fn g8_abilities_and_g9_incognito_create_versions() {
    let s = server();
    let a = create(&s, json!({"name": "a"})).await;
    let id = a["id"].as_str().unwrap();
    let (st, b, _) = send(s.patch(
        ADMIN_KEY,
        &format!("/agents/{id}/abilities"),
        json!({"web_fetch": {"enabled": true}, "ask_question": {"enabled": false}, "tool_discovery": {"mode": "auto"}}),
    ))
    .await;
    assert_eq!(st, 200, "{b}");
    assert_eq!(b["abilities"], json!({"web_fetch": {"enabled": true}, "ask_question": {"enabled": false}, "tool_discovery": {"mode": "auto"}}));
    assert_eq!(b["version"], 2);
    let (st, b, _) = send(s.patch(ADMIN_KEY, &format!("/agents/{id}/abilities"), json!({"web_fetch": {"enabled": "yes"}}))).await;
    assert_eq!((st, b["error"]["param"].as_str()), (400, Some("web_fetch.enabled")));
    let (st, b, _) = send(s.patch(ADMIN_KEY, &format!("/agents/{id}/incognito"), json!({"enforced": true}))).await;
    assert_eq!((st, &b["agent"]["incognito"]["enforced"], &b["agent"]["version"]), (200, &json!(true), &json!(3)));
    let (st, b, _) = send(s.patch(ADMIN_KEY, &format!("/agents/{id}/incognito"), json!({}))).await;
    assert_eq!((st, b["error"]["param"].as_str()), (400, Some("enforced")));
}

#[tokio::test]
async fn tenant_isolation_other_tenants_agent_is_404() {
    let s = server();
    let a = create(&s, json!({"name": "mine"})).await;
    let id = a["id"].as_str().unwrap();
    let (_other_user, other_key) = s.new_user("org_other");
    for req in [
        s.get(&other_key, &format!("/agents/{id}")),
        s.patch(&other_key, &format!("/agents/{id}"), json!({"name": "x"})),
        s.delete(&other_key, &format!("/agents/{id}")),
        s.get(&other_key, &format!("/agents/{id}/versions")),
    ] {
        let (st, b, _) = send(req).await;
        assert_eq!((st, b["error"]["code"].as_str()), (404, Some("agent_not_found")));
    }
    let (_, b, _) = send(s.get(&other_key, "/agents")).await;
    assert_eq!(b["agents"], json!([]));
    // Later routes still check visibility first.
    let (st, b, _) = send(s.get(&other_key, &format!("/agents/{id}/knowledge-sources"))).await;
    assert_eq!((st, b["error"]["code"].as_str()), (404, Some("agent_not_found")));
    let (st, b, _) = send(s.get(ADMIN_KEY, &format!("/agents/{id}/knowledge-sources"))).await;
    assert_eq!((st, b["error"]["code"].as_str()), (501, Some("not_implemented")));
}

#[tokio::test]
async fn team_agents_are_shared_with_members_and_rights_apply() {
    let s = server();
    let a = create(&s, json!({"name": "team agent", "team_id": TEAM_ID})).await;
    assert_eq!(a["team_id"], TEAM_ID);
    let id = a["id"].as_str().unwrap();
    // Personal listing excludes it; team-scoped listing includes it.
    let (_, b, _) = send(s.get(ADMIN_KEY, "/agents")).await;
    assert_eq!(b["agents"], json!([]));
    let (_, b, _) = send(s.get(ADMIN_KEY, &format!("/agents?team_id={TEAM_ID}"))).await;
    assert_eq!(b["agents"][0]["id"], id);
    // A plain member can read but not update.
    let (member, member_key) = s.new_user("org_default");
    s.cli(&["teams", "add-member", "--team", TEAM_ID, "--user", &member]);
    let (st, _, _) = send(s.get(&member_key, &format!("/agents/{id}"))).await;
    assert_eq!(st, 200);
    let (st, b, _) = send(s.patch(&member_key, &format!("/agents/{id}"), json!({"name": "x"}))).await;
    assert_eq!((st, b["error"]["code"].as_str()), (403, Some("permission_denied")));
    // Team key acting as the member sees team agents only.
    let (st, b, _) = send(s.get(testkit::TEAM_KEY, "/agents").header("x-auth-key", &member)).await;
    assert_eq!(st, 200);
    assert_eq!(b["agents"][0]["id"], id);
}
