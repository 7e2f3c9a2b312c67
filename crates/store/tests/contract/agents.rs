//! `AgentStore`: agents and their versions.

use store::*;

use super::fixtures::*;
use super::Backend;

pub async fn create_get_and_conflict(b: &dyn Backend) {
    let store = b.open().await;
    let s = &*store;
    let org = org(s, "Acme").await;
    let ada = user(s, &org).await;

    let (a, v1) = agent_records(&ada, None);
    s.create_agent(&a, &v1).await.unwrap();
    assert_eq!(s.agent(&a.id).await.unwrap(), Some(a.clone()), "the agent reads back as written (config included)");
    assert_eq!(s.agent_versions(&a.id).await.unwrap(), vec![v1.clone()], "creating writes the first version");
    assert_eq!(s.agent_version(&a.id, &v1.id).await.unwrap(), Some(v1.clone()));
    assert!(s.agent("agt_missing").await.unwrap().is_none());

    // A taken id is a Conflict and writes nothing (neither agent nor version).
    let (mut dup, mut dup_v) = agent_records(&ada, None);
    dup.id = a.id.clone();
    dup.config.name = "Impostor".into();
    dup_v.agent_id = a.id.clone();
    assert!(matches!(s.create_agent(&dup, &dup_v).await, Err(StoreError::Conflict(_))), "a duplicate agent id is a Conflict");
    assert_eq!(s.agent(&a.id).await.unwrap(), Some(a.clone()), "the original agent is untouched");
    assert_eq!(s.agent_versions(&a.id).await.unwrap(), vec![v1.clone()], "no version was added");
    assert!(s.agent_version(&a.id, &dup_v.id).await.unwrap().is_none());

    // Still a Conflict once the agent is deleted: ids are never reused.
    assert!(s.delete_agent(&a.id, now()).await.unwrap());
    assert!(matches!(s.create_agent(&dup, &dup_v).await, Err(StoreError::Conflict(_))), "a deleted agent's id is still taken");

    // A version is found only under its own agent.
    let other = agent(s, &ada, None).await;
    assert!(s.agent_version(&other.id, &v1.id).await.unwrap().is_none());

    // touch_agent_used records the last use.
    let at = now();
    s.touch_agent_used(&other.id, at).await.unwrap();
    assert_eq!(s.agent(&other.id).await.unwrap().unwrap().last_used_at, Some(at));
}

pub async fn tenant_listing_and_delete(b: &dyn Backend) {
    let store = b.open().await;
    let s = &*store;
    let org = org(s, "Acme").await;
    let ada = user(s, &org).await;
    let bob = user(s, &org).await;
    let ops = team(s, &org, "Ops").await;

    let personal = agent(s, &ada, None).await;
    let team_agent = agent(s, &ada, Some(&ops.id)).await;
    let bobs = agent(s, &bob, None).await;
    let (mut inactive, v) = agent_records(&ada, None);
    inactive.is_active = false;
    s.create_agent(&inactive, &v).await.unwrap();

    let ids = |v: Vec<AgentRecord>| {
        let mut v: Vec<String> = v.into_iter().map(|a| a.id).collect();
        v.sort();
        v
    };
    assert_eq!(ids(s.agents_in_tenant(&Tenant::Personal(ada.id.clone())).await.unwrap()), vec![personal.id.clone()], "personal: own live agents only");
    assert_eq!(ids(s.agents_in_tenant(&Tenant::Team(ops.id.clone())).await.unwrap()), vec![team_agent.id.clone()], "team: the team's agents");
    assert_eq!(ids(s.agents_in_tenant(&Tenant::Personal(bob.id.clone())).await.unwrap()), vec![bobs.id.clone()]);
    assert!(s.agents_in_tenant(&Tenant::Team("team_missing".into())).await.unwrap().is_empty());

    let at = now();
    assert!(s.delete_agent(&personal.id, at).await.unwrap());
    assert!(!s.delete_agent(&personal.id, at + 1).await.unwrap(), "deleting twice reports false");
    assert!(!s.delete_agent("agt_missing", at).await.unwrap());
    let deleted = s.agent(&personal.id).await.unwrap().expect("a deleted agent is still readable");
    assert_eq!(deleted.deleted_at, Some(at), "the first deletion time is kept");
    assert!(s.agents_in_tenant(&Tenant::Personal(ada.id.clone())).await.unwrap().is_empty(), "deleted agents are not listed");
}

pub async fn update_checks_the_version(b: &dyn Backend) {
    let store = b.open().await;
    let s = &*store;
    let w = world(s).await;
    let a = w.agent.clone();
    let v1 = s.agent_versions(&a.id).await.unwrap().remove(0);

    let mut next = a.clone();
    next.version = 2;
    next.config.name = "Renamed".into();
    next.last_updated_at = now();
    let v2 = version_of(&next, 2);
    assert!(s.update_agent(&next, 1, &v2).await.unwrap(), "the expected version matches: written");
    assert_eq!(s.agent(&a.id).await.unwrap(), Some(next.clone()));

    // A writer that read version 1 is refused and writes nothing.
    let mut stale = a.clone();
    stale.version = 2;
    stale.config.name = "Lost update".into();
    let stale_v = version_of(&stale, 2);
    assert!(!s.update_agent(&stale, 1, &stale_v).await.unwrap(), "a stale expected version is refused");
    assert_eq!(s.agent(&a.id).await.unwrap(), Some(next.clone()), "the refused update changed nothing");
    assert!(s.agent_version(&a.id, &stale_v.id).await.unwrap().is_none(), "the refused update added no version");

    let mut third = next.clone();
    third.version = 3;
    third.is_active = false;
    let v3 = version_of(&third, 3);
    assert!(s.update_agent(&third, 2, &v3).await.unwrap());
    assert_eq!(s.agent_versions(&a.id).await.unwrap(), vec![v3.clone(), v2.clone(), v1.clone()], "versions, newest first");

    // Deleted agents cannot be updated.
    assert!(s.delete_agent(&a.id, now()).await.unwrap());
    let mut after = third.clone();
    after.version = 4;
    let v4 = version_of(&after, 4);
    assert!(!s.update_agent(&after, 3, &v4).await.unwrap(), "a deleted agent is not updated");
    assert_eq!(s.agent(&a.id).await.unwrap().unwrap().version, 3);
    assert_eq!(s.agent_versions(&a.id).await.unwrap().len(), 3);
    assert!(!s.update_agent(&AgentRecord { id: "agt_missing".into(), ..after.clone() }, 3, &v4).await.unwrap(), "an unknown agent is not updated");
}

/// An update whose version cannot be written (its id is taken) fails as a whole.
pub async fn failed_update_writes_nothing(b: &dyn Backend) {
    let store = b.open().await;
    let s = &*store;
    let w = world(s).await;
    let a = w.agent.clone();
    let v1 = s.agent_versions(&a.id).await.unwrap().remove(0);

    let mut next = a.clone();
    next.version = 2;
    next.config.name = "Renamed".into();
    let mut clash = version_of(&next, 2);
    clash.id = v1.id.clone();
    let r = s.update_agent(&next, 1, &clash).await;
    assert!(matches!(r, Err(StoreError::Conflict(_))), "a version id clash is a Conflict, got {r:?}");
    assert_eq!(s.agent(&a.id).await.unwrap(), Some(a.clone()), "the agent row was rolled back with the version");
    assert_eq!(s.agent_versions(&a.id).await.unwrap(), vec![v1.clone()]);

    // The same update with a fresh version id then succeeds.
    let v2 = version_of(&next, 2);
    assert!(s.update_agent(&next, 1, &v2).await.unwrap());
}
