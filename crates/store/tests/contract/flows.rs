//! Flows: versioned saves, run transitions applied only from their `from` state, leases,
//! and node results written exactly once even when two instances race.

use std::collections::BTreeSet;

use futures::future::join_all;
use serde_json::json;
use store::*;

use super::fixtures::*;
use super::Backend;

fn flow_rec(id: &str, org: &str, user: &str) -> FlowRecord {
    FlowRecord {
        id: id.into(),
        organization_id: org.into(),
        owner_user_id: Some(user.into()),
        team_id: None,
        workbook_id: "wb_1".into(),
        name: "f".into(),
        description: None,
        version: 0,
        document: json!({"name": "f"}),
        created_by: user.into(),
        created_at: 1,
        updated_at: 1,
    }
}

fn run_rec(id: &str, flow: &FlowRecord) -> FlowRunRecord {
    FlowRunRecord {
        id: id.into(),
        flow_id: flow.id.clone(),
        flow_version: flow.version,
        workbook_id: flow.workbook_id.clone(),
        organization_id: flow.organization_id.clone(),
        user_id: flow.created_by.clone(),
        team_id: None,
        state: FlowRunState::Queued,
        inputs: json!({}),
        outputs: json!({}),
        error: None,
        credit_cost: 0.0,
        kill_requested: false,
        attempts: 0,
        created_at: 10,
        started_at: None,
        finished_at: None,
    }
}

fn node(run: &str, node: &str, cost: f64) -> FlowNodeResult {
    FlowNodeResult { run_id: run.into(), node_id: node.into(), status: "done".into(), output: json!({"text": node}), credit_cost: cost, created_at: 11 }
}

/// Saves make versions 1, 2, 3…; each version's document stays readable; delete hides the
/// flow and its id is not reused.
pub async fn versions_and_delete(b: &dyn Backend) {
    let s = b.open().await;
    let w = world(&*s).await;
    let f = flow_rec(&id("flow"), &w.org, &w.user.id);
    assert_eq!(s.save_flow(&f).await.unwrap().version, 1);
    let v2 = s.save_flow(&FlowRecord { document: json!({"name": "g"}), name: "g".into(), ..f.clone() }).await.unwrap();
    assert_eq!((v2.version, v2.name.as_str()), (2, "g"));
    assert_eq!(s.flow_version(&f.id, 1).await.unwrap().unwrap().document, json!({"name": "f"}));
    assert_eq!(s.flow_versions(&f.id).await.unwrap().iter().map(|v| v.version).collect::<Vec<_>>(), vec![2, 1]);
    assert_eq!(s.list_flows(&FlowOwner::User(w.user.id.clone())).await.unwrap().len(), 1);
    assert!(s.list_flows(&FlowOwner::Team("team_x".into())).await.unwrap().is_empty());
    assert!(s.delete_flow(&f.id, 5).await.unwrap());
    assert!(s.flow(&f.id).await.unwrap().is_none());
    assert!(matches!(s.save_flow(&f).await, Err(StoreError::Conflict(_))));
}

/// Concurrent saves of one flow on two instances: every version number once, no gap.
pub async fn concurrent_saves_make_distinct_versions(b: &dyn Backend) {
    let stores = two_stores(b).await;
    let w = world(&*stores[0]).await;
    let f = flow_rec(&id("flow"), &w.org, &w.user.id);
    stores[0].save_flow(&f).await.unwrap();
    let results = join_all((0..40).map(|i| {
        let (s, f) = (stores[i % 2].clone(), f.clone());
        async move { s.save_flow(&f).await }
    }))
    .await;
    let versions: Vec<i64> = results.into_iter().filter_map(Result::ok).map(|r| r.version).collect();
    let distinct: BTreeSet<i64> = versions.iter().copied().collect();
    assert_eq!(distinct.len(), versions.len(), "no duplicate version: {versions:?}");
    let stored: Vec<i64> = stores[0].flow_versions(&f.id).await.unwrap().iter().map(|v| v.version).collect();
    assert_eq!(stored.len(), versions.len() + 1, "every successful save stored one version");
    assert_eq!(stored.first().copied(), Some(stored.len() as i64), "versions have no gap: {stored:?}");
}

/// Claim leases a live run; transitions apply only from their `from` and only for the
/// lease owner; a kill moves a live run to TERMINATING; terminal runs are never claimed.
pub async fn claim_move_kill(b: &dyn Backend) {
    let s = b.open().await;
    let w = world(&*s).await;
    let f = s.save_flow(&flow_rec(&id("flow"), &w.org, &w.user.id)).await.unwrap();
    let r = run_rec(&id("run"), &f);
    s.create_flow_run(&r).await.unwrap();
    let c = s.claim_flow_run("w1", 100, 200).await.unwrap().expect("claimed");
    assert_eq!((c.id.as_str(), c.attempts), (r.id.as_str(), 1));
    assert!(s.claim_flow_run("w2", 150, 250).await.unwrap().is_none(), "leased");
    let end = FlowRunEnd { now: 120, log: vec!["Run started".into()], ..Default::default() };
    assert!(matches!(s.move_flow_run(&r.id, Some("w2"), FlowRunState::Queued, FlowRunState::Started, end.clone()).await, Err(StoreError::Refused { .. })));
    s.move_flow_run(&r.id, Some("w1"), FlowRunState::Queued, FlowRunState::Started, end.clone()).await.unwrap();
    assert!(matches!(s.move_flow_run(&r.id, Some("w1"), FlowRunState::Queued, FlowRunState::Started, end).await, Err(StoreError::Refused { .. })));
    assert_eq!(s.flow_log(&r.id).await.unwrap(), vec!["Run started".to_string()], "a refused move writes nothing");
    // An expired lease is claimed again.
    let again = s.claim_flow_run("w2", 300, 400).await.unwrap().expect("expired lease");
    assert_eq!((again.attempts, again.state), (2, FlowRunState::Started));
    let killed = s.request_flow_kill(&r.id).await.unwrap().unwrap();
    assert_eq!((killed.state, killed.kill_requested), (FlowRunState::Terminating, true));
    s.move_flow_run(&r.id, Some("w2"), FlowRunState::Terminating, FlowRunState::Terminated, FlowRunEnd { now: 310, ..Default::default() }).await.unwrap();
    let done = s.flow_run(&r.id).await.unwrap().unwrap();
    assert_eq!((done.state, done.finished_at), (FlowRunState::Terminated, Some(310)));
    assert!(s.claim_flow_run("w3", 10_000, 20_000).await.unwrap().is_none(), "terminal runs are never claimed");
    // A kill of a terminal run changes nothing.
    assert_eq!(s.request_flow_kill(&r.id).await.unwrap().unwrap().state, FlowRunState::Terminated);
}

/// Two instances commit the same nodes at once: each node once, its cost added once; a
/// writer without the lease writes nothing.
pub async fn node_results_are_written_once(b: &dyn Backend) {
    let stores = two_stores(b).await;
    let w = world(&*stores[0]).await;
    let f = stores[0].save_flow(&flow_rec(&id("flow"), &w.org, &w.user.id)).await.unwrap();
    let r = run_rec(&id("run"), &f);
    stores[0].create_flow_run(&r).await.unwrap();
    stores[0].claim_flow_run("owner", 1, 1_000_000).await.unwrap().unwrap();
    assert!(!stores[1].commit_flow_node("intruder", &node(&r.id, "x", 1.0), vec![]).await.unwrap());
    let results = join_all((0..60).map(|i| {
        let (s, n) = (stores[i % 2].clone(), node(&r.id, &format!("n{}", i % 10), 0.5));
        async move { s.commit_flow_node("owner", &n, vec![format!("Node {} finished", n.node_id)]).await.unwrap() }
    }))
    .await;
    assert_eq!(results.iter().filter(|x| **x).count(), 10, "each of the 10 nodes committed once");
    let stored = stores[0].flow_node_results(&r.id).await.unwrap();
    assert_eq!(stored.len(), 10);
    assert_eq!(stores[0].flow_run(&r.id).await.unwrap().unwrap().credit_cost, 5.0, "costs added once per node");
    assert_eq!(stores[0].flow_log(&r.id).await.unwrap().len(), 10, "log lines of refused commits are not written");
}
