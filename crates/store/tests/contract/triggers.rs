//! `TriggerStore`: agent triggers, the scheduler's conditional claim and firings.

use std::sync::Arc;

use store::*;

use super::fixtures::*;
use super::Backend;

fn trigger_record(agent: &AgentRecord, user: &User, next_fire_at: Option<i64>) -> TriggerRecord {
    let t = now();
    TriggerRecord {
        id: id("trg"),
        agent_id: agent.id.clone(),
        organization_id: user.organization_id.clone(),
        creator_user_id: user.id.clone(),
        kind: "schedule".into(),
        name: Some("every minute".into()),
        prompt: "report".into(),
        cron_expression: Some("* * * * *".into()),
        run_at: None,
        timezone: Some("UTC".into()),
        pass_raw_data: false,
        enabled: true,
        status: "active".into(),
        max_failures: None,
        consecutive_failures: 0,
        integration: None,
        webhook_salt: None,
        next_fire_at,
        last_run_at: None,
        version: 1,
        created_at: t,
        updated_at: t,
    }
}

fn firing(t: &TriggerRecord, key: &str) -> TriggerRunRecord {
    let at = now();
    TriggerRunRecord {
        id: id("trr"),
        trigger_id: t.id.clone(),
        agent_id: t.agent_id.clone(),
        source: "schedule".into(),
        delivery_key: key.into(),
        session_id: id("sess"),
        input: "report".into(),
        state: "pending".into(),
        error: None,
        scheduled_for: None,
        created_at: at,
        updated_at: at,
    }
}

fn all() -> PageWindow {
    PageWindow { after: None, limit: 1000, desc: true }
}

pub async fn crud_listing_and_due(b: &dyn Backend) {
    let store = b.open().await;
    let s = &*store;
    let w = world(s).await;
    let due_at = now() - SECOND;
    let mut a = trigger_record(&w.agent, &w.user, Some(due_at));
    s.create_trigger(&a).await.unwrap();
    assert_eq!(s.trigger(&a.id).await.unwrap(), Some(a.clone()), "reads back as written");
    assert!(matches!(s.create_trigger(&a).await, Err(StoreError::Conflict(_))), "a taken id is a Conflict");
    let mut later = trigger_record(&w.agent, &w.user, Some(now() + 3600 * SECOND));
    later.created_at = a.created_at + 1;
    s.create_trigger(&later).await.unwrap();

    // Keyset pages in (created_at, id) order.
    let first = s.list_triggers(&w.agent.id, &PageWindow { after: None, limit: 1, desc: false }).await.unwrap();
    assert_eq!(first.iter().map(|(_, t)| t.id.clone()).collect::<Vec<_>>(), vec![a.id.clone()]);
    let after = Some((first[0].0.clone(), first[0].1.id.clone()));
    let second = s.list_triggers(&w.agent.id, &PageWindow { after, limit: 10, desc: false }).await.unwrap();
    assert_eq!(second.iter().map(|(_, t)| t.id.clone()).collect::<Vec<_>>(), vec![later.id.clone()]);

    // Only armed, due schedules of live agents are due.
    let due = s.due_triggers(now(), 10).await.unwrap();
    assert_eq!(due.iter().map(|t| t.id.clone()).collect::<Vec<_>>(), vec![a.id.clone()]);

    // Updates are conditional on the version; next_fire_at only when rescheduling.
    let mut edited = a.clone();
    edited.prompt = "new prompt".into();
    edited.next_fire_at = Some(1);
    edited.version = 2;
    assert!(s.update_trigger(&edited, 1, false).await.unwrap());
    let read = s.trigger(&a.id).await.unwrap().unwrap();
    assert_eq!((read.prompt.as_str(), read.next_fire_at, read.version), ("new prompt", Some(due_at), 2), "next_fire_at kept");
    edited.version = 3;
    assert!(!s.update_trigger(&edited, 1, true).await.unwrap(), "a stale version writes nothing");
    a = s.trigger(&a.id).await.unwrap().unwrap();
    a.enabled = false;
    a.next_fire_at = None;
    a.version = 3;
    assert!(s.update_trigger(&a, 2, true).await.unwrap());
    assert!(s.due_triggers(now(), 10).await.unwrap().is_empty(), "disabled triggers are not due");

    // Deleted agents' triggers are not due.
    let mut b2 = trigger_record(&w.agent, &w.user, Some(due_at));
    b2.id = id("trg");
    s.create_trigger(&b2).await.unwrap();
    assert_eq!(s.due_triggers(now(), 10).await.unwrap().len(), 1);
    assert_eq!(s.active_trigger_counts(std::slice::from_ref(&w.agent.id)).await.unwrap(), vec![(w.agent.id.clone(), 2)]);
    assert!(s.delete_agent(&w.agent.id, now()).await.unwrap());
    assert!(s.due_triggers(now(), 10).await.unwrap().is_empty(), "a deleted agent's schedules stop");

    assert!(s.delete_trigger(&b2.id).await.unwrap());
    assert!(!s.delete_trigger(&b2.id).await.unwrap());
    assert!(s.trigger(&b2.id).await.unwrap().is_none());
}

pub async fn deliveries_are_recorded_once_and_settle(b: &dyn Backend) {
    let store = b.open().await;
    let s = &*store;
    let w = world(s).await;
    let mut t = trigger_record(&w.agent, &w.user, None);
    t.kind = "webhook".into();
    t.max_failures = Some(2);
    s.create_trigger(&t).await.unwrap();

    let one = firing(&t, "id:1");
    let (stored, fresh) = s.record_trigger_delivery(&one).await.unwrap();
    assert!(fresh);
    assert_eq!(stored, one);
    let mut retry = firing(&t, "id:1");
    retry.session_id = id("sess");
    let (stored, fresh) = s.record_trigger_delivery(&retry).await.unwrap();
    assert!(!fresh, "the same delivery key is the same firing");
    assert_eq!(stored.id, one.id);
    assert_eq!(stored.session_id, one.session_id);
    assert_eq!(s.trigger(&t.id).await.unwrap().unwrap().last_run_at, Some(one.created_at));

    // Pending firings are found for recovery; settling moves them once.
    assert_eq!(s.pending_trigger_runs(now() + SECOND, 10).await.unwrap().len(), 1);
    s.settle_trigger_run(&one.id, true, None, now()).await.unwrap();
    s.settle_trigger_run(&one.id, false, Some("late"), now()).await.unwrap();
    let read = s.trigger_run(&one.id).await.unwrap().unwrap();
    assert_eq!((read.state.as_str(), read.error.as_deref()), ("started", None), "a settled firing is not settled again");
    assert!(s.pending_trigger_runs(now() + SECOND, 10).await.unwrap().is_empty());

    // max_failures consecutive failures disable the trigger.
    for key in ["id:2", "id:3"] {
        let f = firing(&t, key);
        s.record_trigger_delivery(&f).await.unwrap();
        s.settle_trigger_run(&f.id, false, Some("refused"), now()).await.unwrap();
    }
    let read = s.trigger(&t.id).await.unwrap().unwrap();
    assert_eq!((read.enabled, read.status.as_str(), read.consecutive_failures), (false, "failed", 2));

    // Listing: newest first, filtered by shown state; stats count them.
    let listed = s.list_trigger_runs(&t.id, None, &all()).await.unwrap();
    assert_eq!(listed.len(), 3);
    assert!(listed.windows(2).all(|p| (&p[0].0, &p[0].1.run.id) >= (&p[1].0, &p[1].1.run.id)), "newest first");
    let failed = s.list_trigger_runs(&t.id, Some(&["failed".to_string()]), &all()).await.unwrap();
    assert_eq!(failed.len(), 2);
    let pending = s.list_trigger_runs(&t.id, Some(&["pending".to_string()]), &all()).await.unwrap();
    assert_eq!(pending.len(), 1, "a started firing without a session shows as pending");
    let stats = s.trigger_stats(&t.id).await.unwrap();
    assert_eq!((stats.run_count, stats.failed_count, stats.credits), (3, 2, 0.0));
    assert!(stats.last_run_at.is_some());

    assert!(s.delete_trigger(&t.id).await.unwrap());
    assert!(s.list_trigger_runs(&t.id, None, &all()).await.unwrap().is_empty(), "a deleted trigger's firings go with it");
}

/// Two stores (processes, replicas) claim the same due time: exactly one wins, and only
/// the winner's firing is recorded.
pub async fn concurrent_claims_have_one_winner(b: &dyn Backend) {
    let stores = two_stores(b).await;
    let s = &*stores[0];
    let w = world(s).await;
    for round in 0..10 {
        let due = now() - SECOND;
        let t = trigger_record(&w.agent, &w.user, Some(due));
        s.create_trigger(&t).await.unwrap();
        let advance = ScheduleAdvance { next_fire_at: Some(due + 60 * SECOND), status: None };
        let mut tasks = Vec::new();
        for i in 0..8 {
            let store: Arc<dyn Store> = stores[i % 2].clone();
            let (t, advance) = (t.clone(), advance.clone());
            tasks.push(tokio::spawn(async move {
                let mut run = firing(&t, &format!("at:{due}"));
                run.id = format!("trr_{round}_{i}");
                store.claim_trigger_fire(&t.id, due, &advance, &run).await.unwrap()
            }));
        }
        let mut wins = 0;
        for task in tasks {
            if tokio::time::timeout(STUCK, task).await.expect("not stuck").unwrap() {
                wins += 1;
            }
        }
        assert_eq!(wins, 1, "round {round}: exactly one claimer wins");
        let runs = s.list_trigger_runs(&t.id, None, &all()).await.unwrap();
        assert_eq!(runs.len(), 1, "round {round}: one firing recorded");
        let read = s.trigger(&t.id).await.unwrap().unwrap();
        assert_eq!(read.next_fire_at, Some(due + 60 * SECOND));
        assert_eq!(read.last_run_at, Some(runs[0].1.run.created_at));
    }
}
