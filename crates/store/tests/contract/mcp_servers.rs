//! `McpServerStore`: the MCP server catalogue.

use serde_json::json;
use store::*;

use super::fixtures::*;
use super::Backend;

fn record(scope: &str, id: &str, at: i64) -> McpServerRecord {
    McpServerRecord {
        scope: scope.to_string(),
        id: id.to_string(),
        organization_id: "org_a".into(),
        team_id: scope.strip_prefix("team:").map(str::to_string),
        owner_user_id: "usr_a".into(),
        config: json!({"name": id, "url": "https://mcp.example.com/mcp", "header_names": ["Authorization"]}),
        secrets: Some("k1.sealed".into()),
        status: "unknown".into(),
        tool_count: None,
        created_at: at,
        updated_at: at,
    }
}

pub async fn crud_scopes_and_optimistic_update(b: &dyn Backend) {
    let store = b.open().await;
    let s = &*store;
    let t0 = now();
    let team = format!("team:{}", id("team"));
    let me = format!("user:{}", id("usr"));

    // Ids are unique per workspace, not globally: `gmail` in two workspaces.
    assert!(s.create_mcp_server(&record(&team, "gmail", t0)).await.unwrap());
    assert!(s.create_mcp_server(&record(&me, "gmail", t0)).await.unwrap());
    assert!(!s.create_mcp_server(&record(&team, "gmail", t0 + 1)).await.unwrap(), "a second (scope, id) is refused");
    assert!(s.create_mcp_server(&record(&team, "a-first", t0)).await.unwrap());
    let listed: Vec<String> = s.mcp_servers(&team).await.unwrap().into_iter().map(|r| r.id).collect();
    assert_eq!(listed, vec!["a-first".to_string(), "gmail".to_string()], "listed by id, only the workspace's own");
    assert_eq!(s.mcp_servers(&me).await.unwrap().len(), 1);
    assert!(s.mcp_servers("team:nobody").await.unwrap().is_empty());
    let got = s.mcp_server(&team, "gmail").await.unwrap().expect("stored");
    assert_eq!(got, record(&team, "gmail", t0), "stored as written");
    assert!(s.mcp_server(&team, "missing").await.unwrap().is_none());

    // Updates apply only at the expected version (updated_at).
    let mut next = got.clone();
    next.config = json!({"name": "Gmail"});
    next.secrets = None;
    next.updated_at = t0 + 10;
    assert!(s.update_mcp_server(&next, t0).await.unwrap());
    let mut stale = got.clone();
    stale.config = json!({"name": "lost"});
    stale.updated_at = t0 + 20;
    assert!(!s.update_mcp_server(&stale, t0).await.unwrap(), "an update from a stale read is refused");
    let now_stored = s.mcp_server(&team, "gmail").await.unwrap().unwrap();
    assert_eq!((now_stored.config, now_stored.secrets, now_stored.updated_at), (json!({"name": "Gmail"}), None, t0 + 10));

    // Status is recorded without counting as an update; a missing tool count keeps the old one.
    s.set_mcp_server_status(&team, "gmail", "connected", Some(3)).await.unwrap();
    s.set_mcp_server_status(&team, "gmail", "error", None).await.unwrap();
    let st = s.mcp_server(&team, "gmail").await.unwrap().unwrap();
    assert_eq!((st.status.as_str(), st.tool_count, st.updated_at), ("error", Some(3), t0 + 10));

    assert!(s.delete_mcp_server(&team, "gmail").await.unwrap());
    assert!(!s.delete_mcp_server(&team, "gmail").await.unwrap(), "deleting twice reports nothing deleted");
    assert!(s.mcp_server(&team, "gmail").await.unwrap().is_none());
    assert!(s.mcp_server(&me, "gmail").await.unwrap().is_some(), "the other workspace's entry is untouched");
}

pub async fn concurrent_registrations_have_one_winner(b: &dyn Backend) {
    let stores = two_stores(b).await;
    let scope = format!("team:{}", id("team"));
    let t0 = now();
    let tasks: Vec<_> = (0..8)
        .map(|i| {
            let s = stores[i % 2].clone();
            let rec = record(&scope, "shared", t0 + i as i64);
            tokio::spawn(async move { s.create_mcp_server(&rec).await.unwrap() })
        })
        .collect();
    let mut wins = 0;
    for t in tasks {
        if t.await.unwrap() {
            wins += 1;
        }
    }
    assert_eq!(wins, 1, "exactly one registration of one id wins");
    // Concurrent updates from the same read: one applies.
    let cur = stores[0].mcp_server(&scope, "shared").await.unwrap().unwrap();
    let tasks: Vec<_> = (0..6)
        .map(|i| {
            let s = stores[i % 2].clone();
            let mut next = cur.clone();
            next.config = json!({"name": format!("v{i}")});
            next.updated_at = cur.updated_at + 1 + i as i64;
            let expected = cur.updated_at;
            tokio::spawn(async move { s.update_mcp_server(&next, expected).await.unwrap() })
        })
        .collect();
    let mut applied = 0;
    for t in tasks {
        if t.await.unwrap() {
            applied += 1;
        }
    }
    assert_eq!(applied, 1, "one of the updates made from the same read applies");
}
