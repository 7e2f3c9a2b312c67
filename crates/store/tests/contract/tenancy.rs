//! `TenancyStore`: organizations, users, teams, memberships, API keys, MCP sessions.

use store::*;

use super::fixtures::*;
use super::Backend;

pub async fn organizations_users_teams(b: &dyn Backend) {
    let store = b.open().await;
    let s = &*store;

    // ensure_organization inserts only when absent.
    let org = id("org");
    s.ensure_organization(&org, "Acme").await.unwrap();
    s.ensure_organization(&org, "Renamed").await.unwrap();
    let o = s.organization(&org).await.unwrap().expect("the organization exists");
    assert_eq!((o.id.as_str(), o.name.as_str()), (org.as_str(), "Acme"), "a second ensure_organization changes nothing");
    assert!(s.organization("org_missing").await.unwrap().is_none());

    // ensure_user: created once, later calls change nothing and say so.
    let mut ada = user_record(&org);
    ada.email = Some("Ada.Lovelace@Example.com".into());
    assert!(s.ensure_user(&ada).await.unwrap(), "first ensure_user creates");
    let mut changed = ada.clone();
    changed.first_name = Some("Augusta".into());
    changed.org_role = "admin".into();
    assert!(!s.ensure_user(&changed).await.unwrap(), "second ensure_user reports it did not create");
    assert_eq!(s.user(&ada.id).await.unwrap(), Some(ada.clone()), "the stored user is the first one, unchanged");
    assert!(s.user("usr_missing").await.unwrap().is_none());

    let bob = user(s, &org).await;
    let mut found = s.users_by_ids(&[bob.id.clone(), "usr_missing".into(), ada.id.clone()]).await.unwrap();
    found.sort_by(|a, b| a.id.cmp(&b.id));
    let mut expected = vec![ada.clone(), bob.clone()];
    expected.sort_by(|a, b| a.id.cmp(&b.id));
    assert_eq!(found, expected, "users_by_ids returns the existing users and skips unknown ids");
    assert!(s.users_by_ids(&[]).await.unwrap().is_empty());

    // Emails match case-insensitively, within one organization.
    assert_eq!(s.user_by_email(&org, "ada.lovelace@example.com").await.unwrap(), Some(ada.clone()));
    assert_eq!(s.user_by_email(&org, "ADA.LOVELACE@EXAMPLE.COM").await.unwrap(), Some(ada.clone()));
    let other_org = super::fixtures::org(s, "Other").await;
    assert!(s.user_by_email(&other_org, "ada.lovelace@example.com").await.unwrap().is_none(), "another organization's user is not found");
    assert!(s.user_by_email(&org, "nobody@example.com").await.unwrap().is_none());

    assert_eq!(s.organizations_of_user(&ada.id).await.unwrap(), vec![o.clone()]);
    assert!(s.organizations_of_user("usr_missing").await.unwrap().is_empty());
    assert_eq!(s.count_users().await.unwrap(), 2);

    // Teams and memberships.
    let zeta = Team { id: id("team"), organization_id: org.clone(), name: "Zeta".into(), created_at: now() };
    assert!(s.ensure_team(&zeta).await.unwrap());
    assert!(!s.ensure_team(&Team { name: "Renamed".into(), ..zeta.clone() }).await.unwrap(), "second ensure_team reports it did not create");
    assert_eq!(s.team(&zeta.id).await.unwrap(), Some(zeta.clone()), "the stored team is the first one, unchanged");
    assert!(s.team("team_missing").await.unwrap().is_none());
    let alpha = team(s, &org, "Alpha").await;

    assert!(s.membership(&zeta.id, &ada.id).await.unwrap().is_none());
    s.set_membership(&zeta.id, &ada.id, "member").await.unwrap();
    assert_eq!(s.membership(&zeta.id, &ada.id).await.unwrap().as_deref(), Some("member"));
    s.set_membership(&zeta.id, &ada.id, "admin").await.unwrap();
    assert_eq!(s.membership(&zeta.id, &ada.id).await.unwrap().as_deref(), Some("admin"), "set_membership replaces the role");
    s.set_membership(&alpha.id, &ada.id, "member").await.unwrap();
    assert!(s.membership(&zeta.id, &bob.id).await.unwrap().is_none());

    let teams = s.teams_of_user(&ada.id).await.unwrap();
    assert_eq!(teams, vec![(alpha.clone(), "member".to_string()), (zeta.clone(), "admin".to_string())], "teams of a user, ordered by name, with the role");
    assert!(s.teams_of_user(&bob.id).await.unwrap().is_empty());

    s.ping().await.unwrap();
}

pub async fn api_keys(b: &dyn Backend) {
    let store = b.open().await;
    let s = &*store;
    let org = org(s, "Acme").await;
    let ada = user(s, &org).await;
    let ops = team(s, &org, "Ops").await;
    let t = now();

    let personal = ApiKey {
        id: id("key"),
        secret_hash: id("hash").into_bytes(),
        prefix: "sk_live_".into(),
        name: Some("CI".into()),
        user_id: Some(ada.id.clone()),
        team_id: None,
        created_by: Some(ada.id.clone()),
        created_at: t,
        revoked_at: None,
    };
    let team_key = ApiKey {
        id: id("key"),
        secret_hash: id("hash").into_bytes(),
        prefix: "sk_team_".into(),
        name: None,
        user_id: None,
        team_id: Some(ops.id.clone()),
        created_by: Some(ada.id.clone()),
        created_at: t + 1,
        revoked_at: None,
    };
    s.insert_api_key(&personal).await.unwrap();
    s.insert_api_key(&team_key).await.unwrap();

    assert_eq!(s.api_key_by_hash(&personal.secret_hash).await.unwrap(), Some(personal.clone()));
    assert_eq!(s.api_key_by_hash(&team_key.secret_hash).await.unwrap(), Some(team_key.clone()));
    assert!(s.api_key_by_hash(b"unknown-hash").await.unwrap().is_none());

    // A key's id and its secret hash are unique.
    let same_id = ApiKey { secret_hash: id("hash").into_bytes(), ..personal.clone() };
    assert!(matches!(s.insert_api_key(&same_id).await, Err(StoreError::Conflict(_))), "a duplicate key id is a Conflict");
    let same_hash = ApiKey { id: id("key"), ..personal.clone() };
    assert!(matches!(s.insert_api_key(&same_hash).await, Err(StoreError::Conflict(_))), "a duplicate secret hash is a Conflict");
    assert_eq!(s.api_key_by_hash(&personal.secret_hash).await.unwrap(), Some(personal.clone()), "the failed inserts changed nothing");

    assert_eq!(s.list_api_keys(Some(&ada.id), None).await.unwrap(), vec![personal.clone()]);
    assert_eq!(s.list_api_keys(None, Some(&ops.id)).await.unwrap(), vec![team_key.clone()]);
    assert_eq!(s.list_api_keys(None, None).await.unwrap(), vec![personal.clone(), team_key.clone()], "all keys, oldest first");
    assert!(s.list_api_keys(Some("usr_missing"), None).await.unwrap().is_empty());

    // Revocation happens once; a revoked key is still found by hash (callers check revoked_at).
    let at = now();
    assert!(s.revoke_api_key(&personal.id, at).await.unwrap());
    assert!(!s.revoke_api_key(&personal.id, at + 1).await.unwrap(), "revoking twice reports false");
    assert!(!s.revoke_api_key("key_missing", at).await.unwrap());
    let revoked = s.api_key_by_hash(&personal.secret_hash).await.unwrap().expect("a revoked key is still found");
    assert_eq!(revoked.revoked_at, Some(at), "the first revocation time is kept");
    assert_eq!(s.api_key_by_hash(&team_key.secret_hash).await.unwrap().unwrap().revoked_at, None, "other keys are untouched");
}

pub async fn mcp_sessions(b: &dyn Backend) {
    let store = b.open().await;
    let s = &*store;
    let m = McpSessionRecord { id: id("mcp"), key_id: id("key"), protocol_version: "2025-06-18".into(), created_at: now() };
    s.create_mcp_session(&m).await.unwrap();
    let got = s.mcp_session(&m.id).await.unwrap().expect("an open MCP session is found");
    assert_eq!((got.id, got.key_id, got.protocol_version, got.created_at), (m.id.clone(), m.key_id.clone(), m.protocol_version.clone(), m.created_at));
    assert!(s.mcp_session("mcp_missing").await.unwrap().is_none());
    assert!(s.end_mcp_session(&m.id, now()).await.unwrap());
    assert!(s.mcp_session(&m.id).await.unwrap().is_none(), "an ended MCP session is not found");
    assert!(!s.end_mcp_session(&m.id, now()).await.unwrap(), "ending twice reports false");
    assert!(!s.end_mcp_session("mcp_missing", now()).await.unwrap());
}
