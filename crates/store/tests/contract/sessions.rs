//! `SessionStore`: sessions, turns, the message queue, files and sharing grants.

use serde_json::json;
use store::*;

use super::fixtures::*;
use super::Backend;

/// What a refused write must leave as it was.
#[derive(Debug, PartialEq)]
struct SessionSnapshot {
    session: Option<SessionRecord>,
    messages: Vec<MessageRecord>,
    queue: Vec<QueuedMessageRecord>,
    events: Vec<EventRecord>,
}

async fn snapshot(s: &dyn Store, id: &str) -> SessionSnapshot {
    SessionSnapshot {
        session: s.session(id).await.unwrap(),
        messages: s.messages(id).await.unwrap(),
        queue: s.queued_messages(id).await.unwrap(),
        events: all_events(s, id).await,
    }
}

fn assert_seqs_follow(events: &[EventRecord], after: i64) {
    let seqs: Vec<i64> = events.iter().map(|e| e.seq).collect();
    let expected: Vec<i64> = (after + 1..=after + events.len() as i64).collect();
    assert_eq!(seqs, expected, "events get consecutive seqs after the session's last one");
}

pub async fn create_without_turn(b: &dyn Backend) {
    let store = b.open().await;
    let s = &*store;
    let w = world(s).await;

    let rec = session_record(&w.agent, &w.user, "idle");
    assert!(s.create_session(&rec, None, vec![]).await.unwrap().is_empty(), "no events asked, none appended");
    assert_eq!(s.session(&rec.id).await.unwrap(), Some(rec.clone()), "the session reads back as written");
    assert!(s.messages(&rec.id).await.unwrap().is_empty());
    assert!(s.queued_messages(&rec.id).await.unwrap().is_empty());
    assert!(s.session_files(&rec.id).await.unwrap().is_empty());
    assert!(s.session_grants(&rec.id).await.unwrap().is_empty());
    assert!(all_events(s, &rec.id).await.is_empty());
    assert!(s.session("sess_missing").await.unwrap().is_none());

    // Events written with the session get seqs 1.. and move last_seq.
    let rec2 = session_record(&w.agent, &w.user, "idle");
    let ev = s.create_session(&rec2, None, vec![event("data-note", 1), event("data-note", 2)]).await.unwrap();
    assert_seqs_follow(&ev, 0);
    assert!(ev.iter().all(|e| e.session_id == rec2.id && e.run_id.is_none() && e.kind == "data-note"));
    assert_eq!(all_events(s, &rec2.id).await, ev, "returned events are the stored ones");
    assert_eq!(s.session(&rec2.id).await.unwrap().unwrap().last_seq, 2);
}

pub async fn create_with_turn(b: &dyn Backend) {
    let store = b.open().await;
    let s = &*store;
    let w = world(s).await;

    let mut rec = session_record(&w.agent, &w.user, "queued");
    let (msg, run) = turn(&rec, "queued");
    rec.current_run_id = Some(run.id.clone());
    let ev = s.create_session(&rec, Some((&msg, &run)), vec![state_event("queued")]).await.unwrap();
    assert_seqs_follow(&ev, 0);
    assert_eq!(ev[0].run_id.as_deref(), Some(run.id.as_str()), "the turn's events belong to its run");
    assert_eq!(ev[0].kind, "data-state");
    assert_eq!(ev[0].data, state_event("queued"));

    let got = s.session(&rec.id).await.unwrap().expect("created");
    assert_eq!(got, SessionRecord { last_seq: 1, ..rec.clone() });

    let msgs = s.messages(&rec.id).await.unwrap();
    assert_eq!(msgs.len(), 1);
    assert_eq!(msgs[0], MessageRecord { ord: msgs[0].ord, ..msg.clone() }, "the first message reads back (the store assigns ord)");

    let r = s.run(&run.id).await.unwrap().expect("the run exists");
    assert_eq!(r, run, "the run reads back as written");
    assert_eq!(s.first_event_of_run(&rec.id, &run.id).await.unwrap(), Some(1));

    let c = s.active_counts(&w.agent.id, &w.org).await.unwrap();
    assert_eq!((c.agent_queued, c.agent_processing, c.org_processing), (1, 0, 0), "a queued run counts as queued");
    assert_eq!(s.queue_position(&run).await.unwrap(), 1);

    // A turn whose run starts processing at once counts as processing.
    let (_, run2) = session_with_run(s, &w.agent, &w.user, "processing").await;
    let c = s.active_counts(&w.agent.id, &w.org).await.unwrap();
    assert_eq!((c.agent_queued, c.agent_processing, c.org_processing), (1, 1, 1));

    // Both runs are claimable jobs.
    let mut claimed = vec![];
    while let Some(cl) = s.claim_run("w1", now(), far(), NO_LIMITS).await.unwrap() {
        claimed.push(cl.run.id);
    }
    claimed.sort();
    let mut expected = vec![run.id.clone(), run2.id.clone()];
    expected.sort();
    assert_eq!(claimed, expected, "creating a session with a turn enqueues its run");
}

pub async fn create_conflict_writes_nothing(b: &dyn Backend) {
    let store = b.open().await;
    let s = &*store;
    let w = world(s).await;
    let rec = idle_session(s, &w.agent, &w.user).await;
    let before = snapshot(s, &rec.id).await;

    let mut dup = session_record(&w.agent, &w.user, "queued");
    dup.id = rec.id.clone();
    let (msg, run) = turn(&dup, "queued");
    dup.current_run_id = Some(run.id.clone());
    let r = s.create_session(&dup, Some((&msg, &run)), vec![state_event("queued")]).await;
    assert!(matches!(r, Err(StoreError::Conflict(_))), "a taken session id is a Conflict, got {r:?}");
    assert_eq!(snapshot(s, &rec.id).await, before, "the existing session is untouched");
    assert!(s.run(&run.id).await.unwrap().is_none(), "the turn's run was not written");
    assert!(s.claim_run("w1", now(), far(), NO_LIMITS).await.unwrap().is_none(), "no job was enqueued");
    let c = s.active_counts(&w.agent.id, &w.org).await.unwrap();
    assert_eq!((c.agent_queued, c.agent_processing), (0, 0), "counts are unchanged");
}

pub async fn start_turn_only_from_allowed_states(b: &dyn Backend) {
    let store = b.open().await;
    let s = &*store;
    let w = world(s).await;

    // Accepting states: the turn is written and the session follows its run.
    for state in ["idle", "completed", "failed", "cancelled"] {
        let rec = session_record(&w.agent, &w.user, state);
        s.create_session(&rec, None, vec![event("data-note", 0)]).await.unwrap();
        let (msg, run) = turn(&rec, "processing");
        let ev = s.start_turn(&rec.id, ACCEPTING, &msg, &run, vec![state_event("processing")], None).await.unwrap();
        let ev = ev.unwrap_or_else(|| panic!("start_turn from {state} is accepted"));
        assert_seqs_follow(&ev, 1);
        assert!(ev.iter().all(|e| e.run_id.as_deref() == Some(run.id.as_str())));
        let got = s.session(&rec.id).await.unwrap().unwrap();
        assert_eq!(got.state, "processing", "the session takes the run's state");
        assert_eq!(got.current_run_id.as_deref(), Some(run.id.as_str()));
        assert_eq!(got.last_seq, 2);
        assert_eq!(s.run(&run.id).await.unwrap(), Some(run.clone()));
        let msgs = s.messages(&rec.id).await.unwrap();
        assert_eq!(msgs.iter().map(|m| m.id.as_str()).collect::<Vec<_>>(), vec![msg.id.as_str()]);
    }
    // The claimable jobs are exactly the four accepted turns.
    let mut n = 0;
    while s.claim_run("w1", now(), far(), NO_LIMITS).await.unwrap().is_some() {
        n += 1;
    }
    assert_eq!(n, 4);

    // Other states, or a state outside `from_states`: None, and nothing written.
    for (state, from) in [("queued", ACCEPTING), ("processing", ACCEPTING), ("idle", &["completed", "failed"][..])] {
        let rec = session_record(&w.agent, &w.user, state);
        s.create_session(&rec, None, vec![]).await.unwrap();
        let before = snapshot(s, &rec.id).await;
        let (msg, run) = turn(&rec, "processing");
        let r = s.start_turn(&rec.id, from, &msg, &run, vec![state_event("processing")], None).await.unwrap();
        assert!(r.is_none(), "start_turn from {state} with {from:?} is refused");
        assert_eq!(snapshot(s, &rec.id).await, before, "a refused start_turn writes nothing");
        assert!(s.run(&run.id).await.unwrap().is_none(), "no run was written");
    }
    assert!(s.claim_run("w1", now(), far(), NO_LIMITS).await.unwrap().is_none(), "refused turns enqueue no job");
    let c = s.active_counts(&w.agent.id, &w.org).await.unwrap();
    assert_eq!((c.agent_queued, c.agent_processing), (0, 4));

    // An unknown session never accepts a turn.
    let ghost = session_record(&w.agent, &w.user, "idle");
    let (msg, run) = turn(&ghost, "processing");
    let r = s.start_turn(&ghost.id, ACCEPTING, &msg, &run, vec![], None).await;
    assert!(matches!(r, Ok(None) | Err(StoreError::NotFound)), "start_turn on an unknown session: {r:?}");
    assert!(s.run(&run.id).await.unwrap().is_none());

    // A second turn of a session: its message comes after the first one.
    let (rec, run1) = session_with_run(s, &w.agent, &w.user, "processing").await;
    s.claim_run("w1", now(), far(), NO_LIMITS).await.unwrap().expect("claimable");
    s.update_run(finish(&run1.id, "w1")).await.unwrap().expect("the owner finishes");
    let (msg2, run2) = turn(&rec, "queued");
    s.start_turn(&rec.id, ACCEPTING, &msg2, &run2, vec![state_event("queued")], None).await.unwrap().expect("completed accepts a turn");
    let msgs = s.messages(&rec.id).await.unwrap();
    assert_eq!(msgs.len(), 2);
    assert_eq!(msgs[1].id, msg2.id, "messages are listed in order");
    assert!(msgs[0].ord < msgs[1].ord, "a later message has a larger ord");
    assert_eq!(s.session(&rec.id).await.unwrap().unwrap().state, "queued");
}

pub async fn start_turn_dequeues_atomically(b: &dyn Backend) {
    let store = b.open().await;
    let s = &*store;
    let w = world(s).await;
    let rec = idle_session(s, &w.agent, &w.user).await;
    let t = now();
    let q1 = queued_message(&rec.id, "first", t);
    let q2 = queued_message(&rec.id, "second", t + 1);
    assert!(s.enqueue_message(&q1, 10).await.unwrap());
    assert!(s.enqueue_message(&q2, 10).await.unwrap());

    // Delivering q1 (the engine reuses the queued id as the message id).
    let (mut msg, run) = turn(&rec, "processing");
    msg.id = q1.id.clone();
    let run = RunRecord { user_message_id: q1.id.clone(), ..run };
    s.start_turn(&rec.id, ACCEPTING, &msg, &run, vec![], Some(&q1.id)).await.unwrap().expect("delivered");
    assert_eq!(s.queued_messages(&rec.id).await.unwrap(), vec![q2.clone()], "the delivered message left the queue");
    assert_eq!(s.messages(&rec.id).await.unwrap()[0].id, q1.id);

    s.claim_run("w1", now(), far(), NO_LIMITS).await.unwrap().expect("claimable");
    s.update_run(finish(&run.id, "w1")).await.unwrap().expect("finished");

    // A queued message that is gone (delivered or deleted): None, nothing written.
    let before = snapshot(s, &rec.id).await;
    let (msg, run) = turn(&rec, "processing");
    assert!(s.start_turn(&rec.id, ACCEPTING, &msg, &run, vec![state_event("processing")], Some(&q1.id)).await.unwrap().is_none());
    assert_eq!(snapshot(s, &rec.id).await, before, "nothing written");
    assert!(s.run(&run.id).await.unwrap().is_none());

    // A queued message of another session is not delivered here.
    let other = idle_session(s, &w.agent, &w.user).await;
    let foreign = queued_message(&other.id, "elsewhere", now());
    assert!(s.enqueue_message(&foreign, 10).await.unwrap());
    let (msg, run) = turn(&rec, "processing");
    assert!(s.start_turn(&rec.id, ACCEPTING, &msg, &run, vec![], Some(&foreign.id)).await.unwrap().is_none());
    assert_eq!(s.queued_messages(&other.id).await.unwrap(), vec![foreign], "the other session's queue is untouched");
    assert_eq!(snapshot(s, &rec.id).await, before);
}

pub async fn queue_respects_max_edit_delete(b: &dyn Backend) {
    let store = b.open().await;
    let s = &*store;
    let w = world(s).await;
    let rec = idle_session(s, &w.agent, &w.user).await;
    let other = idle_session(s, &w.agent, &w.user).await;
    let t = now();
    let q: Vec<_> = (0..4).map(|i| queued_message(&rec.id, &format!("message {i}"), t + i)).collect();

    for m in &q[..3] {
        assert!(s.enqueue_message(m, 3).await.unwrap());
    }
    assert!(!s.enqueue_message(&q[3], 3).await.unwrap(), "a full queue refuses");
    assert_eq!(s.queued_messages(&rec.id).await.unwrap(), q[..3].to_vec(), "send order; the refused one was not written");
    assert!(s.enqueue_message(&queued_message(&other.id, "elsewhere", t), 3).await.unwrap(), "the limit is per session");

    // Edit: by id within the session.
    assert!(s.edit_queued_message(&rec.id, &q[1].id, "edited", t + 100).await.unwrap());
    let list = s.queued_messages(&rec.id).await.unwrap();
    assert_eq!(list[1], QueuedMessageRecord { input: "edited".into(), updated_at: t + 100, ..q[1].clone() }, "edit changes input and updated_at only");
    assert_eq!(list.iter().map(|m| m.id.clone()).collect::<Vec<_>>(), q[..3].iter().map(|m| m.id.clone()).collect::<Vec<_>>(), "order is kept");
    assert!(!s.edit_queued_message(&other.id, &q[1].id, "hijack", t + 101).await.unwrap(), "not through another session");
    assert!(!s.edit_queued_message(&rec.id, "qm_missing", "x", t + 101).await.unwrap());
    assert_eq!(s.queued_messages(&rec.id).await.unwrap()[1].input, "edited");

    // Delete frees a place.
    assert!(!s.delete_queued_message(&other.id, &q[0].id).await.unwrap(), "not through another session");
    assert!(s.delete_queued_message(&rec.id, &q[0].id).await.unwrap());
    assert!(!s.delete_queued_message(&rec.id, &q[0].id).await.unwrap(), "deleting twice reports false");
    assert!(s.enqueue_message(&q[3], 3).await.unwrap(), "room again after a delete");
    let ids: Vec<String> = s.queued_messages(&rec.id).await.unwrap().into_iter().map(|m| m.id).collect();
    assert_eq!(ids, vec![q[1].id.clone(), q[2].id.clone(), q[3].id.clone()]);
    assert_eq!(s.queued_messages(&other.id).await.unwrap().len(), 1);
}

pub async fn grants_and_readers(b: &dyn Backend) {
    let store = b.open().await;
    let s = &*store;
    let org = org(s, "Acme").await;
    let creator = user(s, &org).await;
    let owner = user(s, &org).await;
    let grantee = user(s, &org).await;
    let teammate = user(s, &org).await;
    let colleague = user(s, &org).await;
    let ops = team(s, &org, "Ops").await;
    s.set_membership(&ops.id, &teammate.id, "member").await.unwrap();
    let elsewhere = super::fixtures::org(s, "Elsewhere").await;
    let outsider = user(s, &elsewhere).await;

    let agent = agent(s, &creator, None).await;
    let other_agent = agent_of(s, &creator).await;
    let t = now();
    let mk = |by: &User, i: i64| {
        let mut r = session_record(&agent, by, "idle");
        r.created_at = t + i;
        r.updated_at = t + i;
        r
    };
    let own = mk(&creator, 1);
    let to_person = mk(&owner, 2);
    let to_team = mk(&owner, 3);
    let to_org = mk(&owner, 4);
    let private = mk(&owner, 5);
    for r in [&own, &to_person, &to_team, &to_org, &private] {
        s.create_session(r, None, vec![]).await.unwrap();
    }
    let not_this_agent = session_record(&other_agent, &creator, "idle");
    s.create_session(&not_this_agent, None, vec![]).await.unwrap();

    let g = |k: &str, p: &str, r: &str| (k.to_string(), p.to_string(), r.to_string());
    s.change_session_grants(&to_person.id, &[g("person", &grantee.id, "viewer")], &[]).await.unwrap();
    s.change_session_grants(&to_team.id, &[g("team", &ops.id, "viewer")], &[]).await.unwrap();
    s.change_session_grants(&to_org.id, &[g("organization", &org, "editor")], &[]).await.unwrap();

    let sees = |r: Reader| {
        let store = store.clone();
        let agent_id = agent.id.clone();
        async move { store.sessions_of_agent(&agent_id, &r).await.unwrap().into_iter().map(|s| s.id).collect::<Vec<_>>() }
    };
    assert_eq!(sees(reader(&creator, &[])).await, vec![to_org.id.clone(), own.id.clone()], "creator: own sessions and org grants, newest first");
    assert_eq!(sees(reader(&grantee, &[])).await, vec![to_org.id.clone(), to_person.id.clone()], "grantee by person");
    assert_eq!(sees(reader(&teammate, &[&ops])).await, vec![to_org.id.clone(), to_team.id.clone()], "grantee by team");
    assert_eq!(sees(reader(&colleague, &[])).await, vec![to_org.id.clone()], "grantee by organization only");
    assert_eq!(
        sees(reader(&owner, &[])).await,
        vec![private.id.clone(), to_org.id.clone(), to_team.id.clone(), to_person.id.clone()],
        "the creator sees all of theirs"
    );
    assert!(sees(reader(&outsider, &[])).await.is_empty(), "another organization sees nothing");
    let full = s.sessions_of_agent(&agent.id, &reader(&creator, &[])).await.unwrap();
    assert_eq!(full[1], own, "listed sessions read back in full");

    // Upserts replace the role; removals apply after upserts, atomically.
    s.change_session_grants(&to_person.id, &[g("person", &grantee.id, "editor")], &[]).await.unwrap();
    assert_eq!(s.session_grants(&to_person.id).await.unwrap(), vec![g("person", &grantee.id, "editor")], "one grant per principal");
    s.change_session_grants(&to_person.id, &[g("team", &ops.id, "viewer")], &[("person".to_string(), grantee.id.clone())]).await.unwrap();
    assert_eq!(s.session_grants(&to_person.id).await.unwrap(), vec![g("team", &ops.id, "viewer")]);
    assert_eq!(sees(reader(&grantee, &[])).await, vec![to_org.id.clone()], "a removed grant no longer reads");
    assert_eq!(sees(reader(&teammate, &[&ops])).await, vec![to_org.id.clone(), to_team.id.clone(), to_person.id.clone()]);
    s.change_session_grants(&private.id, &[g("person", &grantee.id, "viewer")], &[("person".to_string(), grantee.id.clone())]).await.unwrap();
    assert!(s.session_grants(&private.id).await.unwrap().is_empty(), "upsert then remove of the same principal leaves nothing");
    s.change_session_grants(&private.id, &[], &[("person".to_string(), "usr_missing".to_string())]).await.unwrap();
}

async fn agent_of(s: &dyn Store, u: &User) -> AgentRecord {
    super::fixtures::agent(s, u, None).await
}

pub async fn files_rename_cancel_queue_position(b: &dyn Backend) {
    let store = b.open().await;
    let s = &*store;
    let w = world(s).await;
    let rec = idle_session(s, &w.agent, &w.user).await;
    let t = now();

    let f = |name: &str, at: i64| SessionFileRecord {
        session_id: rec.id.clone(),
        file_name: name.to_string(),
        media_type: "text/plain".into(),
        size: 12,
        blob_key: format!("sessions/{}/{name}", rec.id),
        created_at: at,
    };
    s.insert_session_file(&f("notes.txt", t)).await.unwrap();
    s.insert_session_file(&f("data.csv", t + 1)).await.unwrap();
    let dup = s.insert_session_file(&f("notes.txt", t + 2)).await;
    assert!(matches!(dup, Err(StoreError::Conflict(_))), "a session file name is unique, got {dup:?}");
    assert_eq!(s.session_files(&rec.id).await.unwrap(), vec![f("notes.txt", t), f("data.csv", t + 1)], "files in upload order, unchanged by the conflict");

    s.rename_session(&rec.id, "Quarterly numbers").await.unwrap();
    assert_eq!(s.session(&rec.id).await.unwrap().unwrap().name.as_deref(), Some("Quarterly numbers"));

    // Queue positions among the agent's queued runs, oldest first.
    let mut runs = vec![];
    for i in 0..3 {
        let mut r = session_record(&w.agent, &w.user, "queued");
        let (msg, mut run) = turn(&r, "queued");
        run.created_at = t + 10 + i;
        r.current_run_id = Some(run.id.clone());
        s.create_session(&r, Some((&msg, &run)), vec![]).await.unwrap();
        runs.push(run);
    }
    for (i, r) in runs.iter().enumerate() {
        assert_eq!(s.queue_position(r).await.unwrap(), i as i64 + 1);
    }
    s.update_run(cancel(&runs[0].id)).await.unwrap().expect("a queued run is cancelled");
    assert_eq!(s.queue_position(&runs[1]).await.unwrap(), 1, "a cancelled run leaves the queue");
    assert_eq!(s.queue_position(&runs[2]).await.unwrap(), 2);

    // request_cancel flags the run.
    assert!(!s.run(&runs[1].id).await.unwrap().unwrap().cancel_requested);
    s.request_cancel(&runs[1].id).await.unwrap();
    assert!(s.run(&runs[1].id).await.unwrap().unwrap().cancel_requested);
    assert!(!s.run(&runs[2].id).await.unwrap().unwrap().cancel_requested);
}

pub async fn delete_idle_sessions_removes_every_trace(b: &dyn Backend) {
    let store = b.open().await;
    let s = &*store;
    let w = world(s).await;
    let t0 = now();

    // A finished session with a bit of everything.
    let (done, run) = session_with_run(s, &w.agent, &w.user, "processing").await;
    s.claim_run("w1", now(), far(), NO_LIMITS).await.unwrap().expect("claimable");
    let step = StepRecord { run_id: run.id.clone(), step: 0, call_id: String::new(), state: "done".into(), output: json!({"text": "hi"}) };
    let reply = assistant_message(&run, "hi");
    s.update_run(RunUpdate { message: Some(&reply), step: Some(&step), ..RunUpdate::new(&run.id, Some("w1")) }).await.unwrap().unwrap();
    s.update_run(finish(&run.id, "w1")).await.unwrap().unwrap();
    let (art, ver) = artifact_records(&done, "out.csv");
    let (art, _) = s.add_artifact_version(&art, &ver).await.unwrap();
    assert!(s.enqueue_message(&queued_message(&done.id, "later", now()), 10).await.unwrap());
    s.insert_session_file(&SessionFileRecord {
        session_id: done.id.clone(),
        file_name: "in.txt".into(),
        media_type: "text/plain".into(),
        size: 1,
        blob_key: "k".into(),
        created_at: now(),
    })
    .await
    .unwrap();
    s.change_session_grants(&done.id, &[("person".into(), w.user.id.clone(), "viewer".into())], &[]).await.unwrap();
    let idle = idle_session(s, &w.agent, &w.user).await;
    // An active session is never deleted, however old.
    let (active, active_run) = session_with_run(s, &w.agent, &w.user, "queued").await;

    assert_eq!(s.delete_idle_sessions(t0 - 10 * SECOND).await.unwrap(), 0, "nothing is that old");
    assert_eq!(s.delete_idle_sessions(now() + 3600 * SECOND).await.unwrap(), 2, "the finished and the idle session go");

    assert!(s.session(&done.id).await.unwrap().is_none());
    assert!(s.session(&idle.id).await.unwrap().is_none());
    assert!(s.messages(&done.id).await.unwrap().is_empty());
    assert!(s.run(&run.id).await.unwrap().is_none());
    assert!(s.run_steps(&run.id).await.unwrap().is_empty());
    assert!(all_events(s, &done.id).await.is_empty());
    assert!(s.queued_messages(&done.id).await.unwrap().is_empty());
    assert!(s.session_files(&done.id).await.unwrap().is_empty());
    assert!(s.session_grants(&done.id).await.unwrap().is_empty());
    assert!(s.artifact(&art.id).await.unwrap().is_none());
    assert!(s.artifact_versions(&art.id).await.unwrap().is_empty());

    assert!(s.session(&active.id).await.unwrap().is_some(), "the active session stays");
    assert_eq!(s.claim_run("w2", now(), far(), NO_LIMITS).await.unwrap().map(|c| c.run.id), Some(active_run.id.clone()));
    assert_eq!(s.delete_idle_sessions(now() + 3600 * SECOND).await.unwrap(), 0);
}
