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

    let rec = session_record(&w.agent, &w.user, SessionState::Idle);
    assert!(s.create_session(&rec, vec![]).await.unwrap().is_empty(), "no events asked, none appended");
    assert_eq!(s.session(&rec.id).await.unwrap(), Some(rec.clone()), "the session reads back as written");
    assert!(s.messages(&rec.id).await.unwrap().is_empty());
    assert!(s.queued_messages(&rec.id).await.unwrap().is_empty());
    assert!(s.session_files(&rec.id).await.unwrap().is_empty());
    assert!(s.session_grants(&rec.id).await.unwrap().is_empty());
    assert!(all_events(s, &rec.id).await.is_empty());
    assert!(s.session("sess_missing").await.unwrap().is_none());

    // Events written with the session get seqs 1.. and move last_seq.
    let rec2 = session_record(&w.agent, &w.user, SessionState::Idle);
    let ev = s.create_session(&rec2, vec![event("data-note", 1), event("data-note", 2)]).await.unwrap();
    assert_seqs_follow(&ev, 0);
    assert!(ev.iter().all(|e| e.session_id == rec2.id && e.run_id.is_none() && e.kind == "data-note"));
    assert_eq!(all_events(s, &rec2.id).await, ev, "returned events are the stored ones");
    assert_eq!(s.session(&rec2.id).await.unwrap().unwrap().last_seq, 2);
}

pub async fn create_with_turn(b: &dyn Backend) {
    let store = b.open().await;
    let s = &*store;
    let w = world(s).await;

    // The engine passes an idle session without a current run; the rule decides.
    let rec = session_record(&w.agent, &w.user, SessionState::Idle);
    let (msg, run) = turn(&rec);
    let (rule, seen) = spy(admit_as(RunState::Queued));
    let written = s.create_session_with_turn(&rec, new_turn(&msg, &run, rule)).await.unwrap().expect("admitted");
    assert_eq!(seen.lock().unwrap().iter().map(|v| v.session_state).collect::<Vec<_>>(), vec![SessionState::Idle], "the rule ran once, on an idle session");
    assert_eq!((written.state, written.queue_position), (RunState::Queued, Some(1)), "a queued turn reports its place");
    let ev = written.events;
    assert_seqs_follow(&ev, 0);
    assert_eq!(ev[0].run_id.as_deref(), Some(run.id.as_str()), "the turn's events belong to its run");
    assert_eq!(ev[0].kind, "data-state");
    assert_eq!(ev[0].data, state_event("queued"));
    assert_eq!(all_events(s, &rec.id).await, ev, "returned events are the stored ones");

    let got = s.session(&rec.id).await.unwrap().expect("created");
    assert!(got.updated_at >= rec.updated_at);
    let expected = SessionRecord { state: SessionState::Queued, current_run_id: Some(run.id.clone()), last_seq: 1, updated_at: got.updated_at, ..rec.clone() };
    assert_eq!(got, expected, "the session takes the run's state and points at it");

    let msgs = s.messages(&rec.id).await.unwrap();
    assert_eq!(msgs.len(), 1);
    assert_eq!(msgs[0], MessageRecord { ord: msgs[0].ord, ..msg.clone() }, "the first message reads back (the store assigns ord)");

    let r = s.run(&run.id).await.unwrap().expect("the run exists");
    assert_eq!(r, RunRecord { state: RunState::Queued, ..run.clone() }, "the run reads back as written, in the rule's state");
    assert_eq!(s.first_event_of_run(&rec.id, &run.id).await.unwrap(), Some(1));

    let c = s.active_counts(&w.agent.id, &w.org).await.unwrap();
    assert_eq!((c.agent_queued, c.agent_processing, c.org_processing), (1, 0, 0), "a queued run counts as queued");
    assert_eq!(s.queue_position(&r).await.unwrap(), 1);

    // A turn whose run starts processing at once counts as processing, and has no place.
    let rec2 = session_record(&w.agent, &w.user, SessionState::Idle);
    let (msg2, run2) = turn(&rec2);
    let written = s.create_session_with_turn(&rec2, new_turn(&msg2, &run2, admit_as(RunState::Processing))).await.unwrap().expect("admitted");
    assert_eq!((written.state, written.queue_position), (RunState::Processing, None));
    assert_eq!(s.session(&rec2.id).await.unwrap().unwrap().state, SessionState::Processing);
    assert_eq!(s.run(&run2.id).await.unwrap().unwrap().state, RunState::Processing);
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

/// The admission rule runs inside the write, on the session's state and the counts of
/// the run's agent and organization as committed; whatever it refuses is not written,
/// not even the new session.
pub async fn admission_rule_decides_inside_the_write(b: &dyn Backend) {
    let store = b.open().await;
    let s = &*store;
    let w = world(s).await;
    let other_agent = agent(s, &w.user, None).await;
    let elsewhere = super::fixtures::org(s, "Elsewhere").await;
    let stranger = user(s, &elsewhere).await;
    let foreign_agent = agent(s, &stranger, None).await;

    // The agent: 1 processing, 2 queued; another agent of the org: 1 processing; an
    // agent of another organization: 1 processing (counted nowhere here).
    session_with_run(s, &w.agent, &w.user, RunState::Processing).await;
    session_with_run(s, &w.agent, &w.user, RunState::Queued).await;
    let (done, done_run) = session_with_run(s, &w.agent, &w.user, RunState::Queued).await;
    session_with_run(s, &other_agent, &w.user, RunState::Processing).await;
    session_with_run(s, &foreign_agent, &stranger, RunState::Processing).await;

    let view = |v: &AdmissionView| (v.session_state, v.counts.agent_processing, v.counts.org_processing, v.counts.agent_queued);

    // A new session: idle, with the counts.
    let rec = session_record(&w.agent, &w.user, SessionState::Idle);
    let (msg, run) = turn(&rec);
    let (rule, seen) = spy(admission(SlotLimits { agent: 2, org: 10 }, 10));
    let written = s.create_session_with_turn(&rec, new_turn(&msg, &run, rule)).await.unwrap().expect("a slot is free");
    assert_eq!(seen.lock().unwrap().iter().map(view).collect::<Vec<_>>(), vec![(SessionState::Idle, 1, 2, 2)]);
    assert_eq!((written.state, written.queue_position), (RunState::Processing, None), "the rule's decision is written");
    assert_eq!(s.run(&run.id).await.unwrap().unwrap().state, RunState::Processing);

    // An existing session: its current state (a cancelled turn), and the counts now.
    s.update_run(cancel(&done_run.id, RunState::Queued)).await.unwrap().expect("a queued run is cancelled");
    let (msg, run) = turn(&done);
    let (rule, seen) = spy(admission(SlotLimits { agent: 2, org: 10 }, 10));
    let written = s.start_turn(&done.id, new_turn(&msg, &run, rule)).await.unwrap().expect("queued");
    assert_eq!(seen.lock().unwrap().iter().map(view).collect::<Vec<_>>(), vec![(SessionState::Cancelled, 2, 3, 1)]);
    assert_eq!((written.state, written.queue_position), (RunState::Queued, Some(2)), "queued behind the older queued run");
    let got = s.session(&done.id).await.unwrap().unwrap();
    assert_eq!((got.state, got.current_run_id.as_deref()), (SessionState::Queued, Some(run.id.as_str())));
    assert_eq!(s.run(&run.id).await.unwrap().unwrap().state, RunState::Queued);

    // Refused: nothing at all is written, neither for a new session nor for an
    // existing one, and the refusal is the rule's.
    let counts_before = s.active_counts(&w.agent.id, &w.org).await.unwrap();
    for (rule, refusal) in [
        (admission(SlotLimits { agent: 2, org: 10 }, 0), Refusal::Full),
        (admission(SlotLimits { agent: 2, org: 10 }, 2), Refusal::Full),
        (Box::new(|_: &AdmissionView| Err(Refusal::NotAccepting(SessionState::Processing))) as AdmissionRule, Refusal::NotAccepting(SessionState::Processing)),
    ] {
        let rec = session_record(&w.agent, &w.user, SessionState::Idle);
        let (msg, run) = turn(&rec);
        let r = s.create_session_with_turn(&rec, new_turn(&msg, &run, rule)).await.unwrap();
        assert_eq!(r.err(), Some(refusal), "the rule's refusal is returned");
        assert!(s.session(&rec.id).await.unwrap().is_none(), "a refused new session is not written");
        assert!(s.messages(&rec.id).await.unwrap().is_empty());
        assert!(all_events(s, &rec.id).await.is_empty());
        assert!(s.run(&run.id).await.unwrap().is_none(), "nor its run");
    }
    let idle = idle_session(s, &w.agent, &w.user).await;
    let before = snapshot(s, &idle.id).await;
    let (msg, run) = turn(&idle);
    let r = s.start_turn(&idle.id, new_turn(&msg, &run, admission(SlotLimits { agent: 2, org: 10 }, 0))).await.unwrap();
    assert_eq!(r.err(), Some(Refusal::Full));
    assert_eq!(snapshot(s, &idle.id).await, before, "a refused turn writes nothing");
    assert!(s.run(&run.id).await.unwrap().is_none());
    let c = s.active_counts(&w.agent.id, &w.org).await.unwrap();
    assert_eq!(
        (c.agent_processing, c.org_processing, c.agent_queued),
        (counts_before.agent_processing, counts_before.org_processing, counts_before.agent_queued)
    );

    // The counts are those of the run's own agent and organization.
    let rec = session_record(&foreign_agent, &stranger, SessionState::Idle);
    let (msg, run) = turn(&rec);
    let (rule, seen) = spy(admit_as(RunState::Queued));
    s.create_session_with_turn(&rec, new_turn(&msg, &run, rule)).await.unwrap().expect("admitted");
    assert_eq!(seen.lock().unwrap().iter().map(view).collect::<Vec<_>>(), vec![(SessionState::Idle, 1, 1, 0)]);

    // Every admitted run is a job: 4 of the agent (the cancelled one is gone), 1 of the
    // other agent, 2 of the foreign one.
    let mut n = 0;
    while s.claim_run("w1", now(), far(), NO_LIMITS).await.unwrap().is_some() {
        n += 1;
    }
    assert_eq!(n, 7, "admitted turns are claimable, refused ones are not");
}

pub async fn create_conflict_writes_nothing(b: &dyn Backend) {
    let store = b.open().await;
    let s = &*store;
    let w = world(s).await;
    let rec = idle_session(s, &w.agent, &w.user).await;
    let before = snapshot(s, &rec.id).await;

    let mut dup = session_record(&w.agent, &w.user, SessionState::Idle);
    dup.id = rec.id.clone();
    let (msg, run) = turn(&dup);
    let r = s.create_session_with_turn(&dup, new_turn(&msg, &run, admit_as(RunState::Queued))).await;
    assert!(matches!(r, Err(StoreError::Conflict(_))), "a taken session id is a Conflict, got {r:?}");
    assert_eq!(snapshot(s, &rec.id).await, before, "the existing session is untouched");
    let again = s.create_session(&rec, vec![event("data-note", 0)]).await;
    assert!(matches!(again, Err(StoreError::Conflict(_))), "also without a turn, got {again:?}");
    assert_eq!(snapshot(s, &rec.id).await, before);
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
    for state in ACCEPTING {
        let rec = session_record(&w.agent, &w.user, state);
        s.create_session(&rec, vec![event("data-note", 0)]).await.unwrap();
        let (msg, run) = turn(&rec);
        let (rule, seen) = spy(admit_as(RunState::Processing));
        let written = s.start_turn(&rec.id, new_turn(&msg, &run, rule)).await.unwrap();
        let written = written.unwrap_or_else(|r| panic!("start_turn from {state} is accepted, got {r:?}"));
        assert_eq!(seen.lock().unwrap().iter().map(|v| v.session_state).collect::<Vec<_>>(), vec![state], "the rule sees the stored state");
        assert_eq!((written.state, written.queue_position), (RunState::Processing, None));
        let ev = written.events;
        assert_seqs_follow(&ev, 1);
        assert!(ev.iter().all(|e| e.run_id.as_deref() == Some(run.id.as_str())));
        let got = s.session(&rec.id).await.unwrap().unwrap();
        assert_eq!(got.state, SessionState::Processing, "the session takes the run's state");
        assert_eq!(got.current_run_id.as_deref(), Some(run.id.as_str()));
        assert_eq!(got.last_seq, 2);
        assert_eq!(s.run(&run.id).await.unwrap(), Some(RunRecord { state: RunState::Processing, ..run.clone() }));
        let msgs = s.messages(&rec.id).await.unwrap();
        assert_eq!(msgs.iter().map(|m| m.id.as_str()).collect::<Vec<_>>(), vec![msg.id.as_str()]);
    }
    // The claimable jobs are exactly the four accepted turns.
    let mut n = 0;
    while s.claim_run("w1", now(), far(), NO_LIMITS).await.unwrap().is_some() {
        n += 1;
    }
    assert_eq!(n, 4);

    // States the rule refuses: the refusal comes back, and nothing is written.
    for state in [SessionState::Queued, SessionState::Processing, SessionState::ApprovalRequired] {
        let rec = session_record(&w.agent, &w.user, state);
        s.create_session(&rec, vec![]).await.unwrap();
        let before = snapshot(s, &rec.id).await;
        let (msg, run) = turn(&rec);
        let r = s.start_turn(&rec.id, new_turn(&msg, &run, admit_as(RunState::Processing))).await.unwrap();
        assert_eq!(r.err(), Some(Refusal::NotAccepting(state)), "start_turn from {state} is refused");
        assert_eq!(snapshot(s, &rec.id).await, before, "a refused start_turn writes nothing");
        assert!(s.run(&run.id).await.unwrap().is_none(), "no run was written");
    }
    assert!(s.claim_run("w1", now(), far(), NO_LIMITS).await.unwrap().is_none(), "refused turns enqueue no job");
    let c = s.active_counts(&w.agent.id, &w.org).await.unwrap();
    assert_eq!((c.agent_queued, c.agent_processing), (0, 4));

    // An unknown session never accepts a turn (and its rule is not asked).
    let ghost = session_record(&w.agent, &w.user, SessionState::Idle);
    let (msg, run) = turn(&ghost);
    let (rule, seen) = spy(admit_as(RunState::Processing));
    let r = s.start_turn(&ghost.id, new_turn(&msg, &run, rule)).await;
    assert!(matches!(r, Err(StoreError::NotFound)), "start_turn on an unknown session: {r:?}");
    assert!(seen.lock().unwrap().is_empty());
    assert!(s.run(&run.id).await.unwrap().is_none());
    assert!(s.session(&ghost.id).await.unwrap().is_none(), "start_turn creates no session");

    // A second turn of a session: its message comes after the first one.
    let (rec, run1) = session_with_run(s, &w.agent, &w.user, RunState::Processing).await;
    s.claim_run("w1", now(), far(), NO_LIMITS).await.unwrap().expect("claimable");
    s.update_run(finish(&run1.id, "w1")).await.unwrap().expect("the owner finishes");
    let (msg2, _) = next_turn(s, &rec, RunState::Queued).await;
    let msgs = s.messages(&rec.id).await.unwrap();
    assert_eq!(msgs.len(), 2);
    assert_eq!(msgs[1].id, msg2.id, "messages are listed in order");
    assert!(msgs[0].ord < msgs[1].ord, "a later message has a larger ord");
    assert_eq!(s.session(&rec.id).await.unwrap().unwrap().state, SessionState::Queued);
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
    let delivering = |q: &QueuedMessageRecord| {
        let (mut msg, mut run) = turn(&rec);
        msg.id = q.id.clone();
        run.user_message_id = q.id.clone();
        let t = NewTurn { dequeue: Some(q.id.clone()), ..new_turn(&msg, &run, admit_as(RunState::Processing)) };
        (t, run)
    };
    let (t1, run) = delivering(&q1);
    s.start_turn(&rec.id, t1).await.unwrap().expect("delivered");
    assert_eq!(s.queued_messages(&rec.id).await.unwrap(), vec![q2.clone()], "the delivered message left the queue");
    assert_eq!(s.messages(&rec.id).await.unwrap()[0].id, q1.id);

    s.claim_run("w1", now(), far(), NO_LIMITS).await.unwrap().expect("claimable");
    s.update_run(finish(&run.id, "w1")).await.unwrap().expect("finished");

    // A queued message that is gone (delivered or deleted): Dequeued, nothing written.
    let before = snapshot(s, &rec.id).await;
    let (again, run) = delivering(&q1);
    assert_eq!(s.start_turn(&rec.id, again).await.unwrap().err(), Some(Refusal::Dequeued));
    assert_eq!(snapshot(s, &rec.id).await, before, "nothing written");
    assert!(s.run(&run.id).await.unwrap().is_none());

    // A queued message of another session is not delivered here.
    let other = idle_session(s, &w.agent, &w.user).await;
    let foreign = queued_message(&other.id, "elsewhere", now());
    assert!(s.enqueue_message(&foreign, 10).await.unwrap());
    let (steal, run) = delivering(&foreign);
    assert_eq!(s.start_turn(&rec.id, steal).await.unwrap().err(), Some(Refusal::Dequeued));
    assert_eq!(s.queued_messages(&other.id).await.unwrap(), vec![foreign], "the other session's queue is untouched");
    assert_eq!(snapshot(s, &rec.id).await, before);
    assert!(s.run(&run.id).await.unwrap().is_none());

    // A turn the rule refuses keeps its queued message queued.
    let (refused, _) = delivering(&q2);
    let refused = NewTurn { admit: Box::new(|_: &AdmissionView| Err(Refusal::Full)), ..refused };
    assert_eq!(s.start_turn(&rec.id, refused).await.unwrap().err(), Some(Refusal::Full));
    assert_eq!(snapshot(s, &rec.id).await, before, "the queued message stays");
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
        let mut r = session_record(&agent, by, SessionState::Idle);
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
        s.create_session(r, vec![]).await.unwrap();
    }
    let not_this_agent = session_record(&other_agent, &creator, SessionState::Idle);
    s.create_session(&not_this_agent, vec![]).await.unwrap();

    let g = |k: &str, p: &str, r: &str| (k.to_string(), p.to_string(), r.to_string());
    s.change_session_grants(&to_person.id, &[g("person", &grantee.id, "viewer")], &[]).await.unwrap();
    s.change_session_grants(&to_team.id, &[g("team", &ops.id, "viewer")], &[]).await.unwrap();
    s.change_session_grants(&to_org.id, &[g("organization", &org, "editor")], &[]).await.unwrap();

    let sees = |r: Reader| {
        let store = store.clone();
        let agent_id = agent.id.clone();
        async move { readable_sessions(&*store, &agent_id, &r).await.into_iter().map(|s| s.id).collect::<Vec<_>>() }
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
    let full = readable_sessions(s, &agent.id, &reader(&creator, &[])).await;
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
        let r = session_record(&w.agent, &w.user, SessionState::Idle);
        let (msg, mut run) = turn(&r);
        run.created_at = t + 10 + i;
        let written = s.create_session_with_turn(&r, new_turn(&msg, &run, admit_as(RunState::Queued))).await.unwrap().expect("queued");
        assert_eq!(written.queue_position, Some(i + 1), "the place reported at admission");
        runs.push(RunRecord { state: RunState::Queued, ..run });
    }
    for (i, r) in runs.iter().enumerate() {
        assert_eq!(s.queue_position(r).await.unwrap(), i as i64 + 1);
    }
    s.update_run(cancel(&runs[0].id, RunState::Queued)).await.unwrap().expect("a queued run is cancelled");
    assert_eq!(s.queue_position(&runs[1]).await.unwrap(), 1, "a cancelled run leaves the queue");
    assert_eq!(s.queue_position(&runs[2]).await.unwrap(), 2);

    // request_cancel flags the run.
    assert!(!s.run(&runs[1].id).await.unwrap().unwrap().cancel_requested);
    s.request_cancel(&runs[1].id).await.unwrap();
    assert!(s.run(&runs[1].id).await.unwrap().unwrap().cancel_requested);
    assert!(!s.run(&runs[2].id).await.unwrap().unwrap().cancel_requested);
}

/// The place a queued run is told is the order in which it will be served. Two
/// requests read the clock, then write in the other order (as concurrent requests do):
/// the run admitted first is claimed first, so it is place 1 and the other place 2.
pub async fn queue_places_follow_claim_order(b: &dyn Backend) {
    let store = b.open().await;
    let s = &*store;
    let w = world(s).await;
    let t = now();
    let admit = |stamp: i64| {
        let rec = session_record(&w.agent, &w.user, SessionState::Idle);
        let (mut msg, mut run) = turn(&rec);
        (msg.created_at, run.created_at) = (stamp, stamp);
        async move {
            let written = s.create_session_with_turn(&rec, new_turn(&msg, &run, admit_as(RunState::Queued))).await.unwrap().expect("queued");
            (written.queue_position, RunRecord { state: RunState::Queued, ..run })
        }
    };
    let (first_place, first) = admit(t + 10).await;
    let (second_place, second) = admit(t).await;
    let claimed: Vec<String> = [s.claim_run("w1", now(), far(), NO_LIMITS).await.unwrap(), s.claim_run("w1", now(), far(), NO_LIMITS).await.unwrap()]
        .into_iter()
        .map(|c| c.expect("claimable").run.id)
        .collect();
    assert_eq!(claimed, vec![first.id.clone(), second.id.clone()], "queued runs are served in admission order");
    assert_eq!((first_place, second_place), (Some(1), Some(2)), "the places told match the order of service");
}

pub async fn delete_idle_sessions_removes_every_trace(b: &dyn Backend) {
    let store = b.open().await;
    let s = &*store;
    let w = world(s).await;
    let t0 = now();

    // A finished session with a bit of everything.
    let (done, run) = session_with_run(s, &w.agent, &w.user, RunState::Processing).await;
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
    let (active, active_run) = session_with_run(s, &w.agent, &w.user, RunState::Queued).await;

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

/// `s` as a backend stores it: unchanged, or (PostgreSQL, which cannot store U+0000)
/// with every NUL replaced by U+FFFD.
fn stored_as(got: &str, written: &str) -> bool {
    got == written || got == written.replace('\0', "\u{FFFD}")
}

/// [`stored_as`] for every string and object key of a JSON value.
fn json_stored_as(got: &serde_json::Value, written: &serde_json::Value) -> bool {
    fn replaced(v: &serde_json::Value) -> serde_json::Value {
        match v {
            serde_json::Value::String(s) => serde_json::Value::String(s.replace('\0', "\u{FFFD}")),
            serde_json::Value::Array(a) => serde_json::Value::Array(a.iter().map(replaced).collect()),
            serde_json::Value::Object(o) => serde_json::Value::Object(o.iter().map(|(k, v)| (k.replace('\0', "\u{FFFD}"), replaced(v))).collect()),
            other => other.clone(),
        }
    }
    got == written || *got == replaced(written)
}

/// Text the server generates (model replies, tool output, fetched pages) may hold U+0000:
/// every write of it succeeds, and it reads back as written or with U+FFFD for NUL.
/// Searching for a NUL is no error either.
pub async fn text_with_nul_is_stored(b: &dyn Backend) {
    let store = b.open().await;
    let s = &*store;
    let w = world(s).await;

    let mut rec = session_record(&w.agent, &w.user, SessionState::Idle);
    rec.name = Some("Report\u{0}one".into());
    rec.metadata = json!({"source": "contract\u{0}test", "key\u{0}": ["a\u{0}", {"b\u{0}": "c\u{0}d"}]});
    let (mut msg, run) = turn(&rec);
    msg.content = Some("What is\u{0} the total?".into());
    msg.parts = json!([{"id": id("part"), "type": "text", "text": "What is\u{0} the total?"}]);
    s.create_session_with_turn(&rec, new_turn(&msg, &run, admit_as(RunState::Processing))).await.unwrap().expect("admitted");

    let got = s.session(&rec.id).await.unwrap().expect("created");
    assert!(stored_as(got.name.as_deref().unwrap(), rec.name.as_deref().unwrap()), "the name: {:?}", got.name);
    assert!(json_stored_as(&got.metadata, &rec.metadata), "the metadata: {}", got.metadata);
    let msgs = s.messages(&rec.id).await.unwrap();
    assert_eq!(msgs.len(), 1);
    assert!(stored_as(msgs[0].content.as_deref().unwrap(), msg.content.as_deref().unwrap()), "the content: {:?}", msgs[0].content);
    assert!(json_stored_as(&msgs[0].parts, &msg.parts), "the parts: {}", msgs[0].parts);

    // The worker's writes: a reply, a step's output, events, an error.
    s.claim_run("w1", now(), far(), NO_LIMITS).await.unwrap().expect("claimable");
    let reply = assistant_message(&run, "The page said \u{0}42\u{0}");
    let step =
        StepRecord { run_id: run.id.clone(), step: 0, call_id: "call\u{0}1".into(), state: "done".into(), output: json!({"page": "<html>\u{0}</html>"}) };
    let events = vec![json!({"type": "text-delta", "delta": "4\u{0}2"})];
    s.update_run(RunUpdate { message: Some(&reply), step: Some(&step), events, ..RunUpdate::new(&run.id, Some("w1")) })
        .await
        .unwrap()
        .expect("the holder writes");
    let failed = RunUpdate {
        transition: Some(Transition { from: RunState::Processing, to: RunState::Failed }),
        finish_reason: Some("error"),
        error_message: Some("tool failed: \u{0}"),
        events: vec![json!({"type": "error", "errorText": "tool failed: \u{0}"})],
        terminal: true,
        ..RunUpdate::new(&run.id, Some("w1"))
    };
    s.update_run(failed).await.unwrap().expect("the holder fails the run");

    let msgs = s.messages(&rec.id).await.unwrap();
    assert_eq!(msgs.len(), 2);
    assert!(stored_as(msgs[1].content.as_deref().unwrap(), reply.content.as_deref().unwrap()), "the reply: {:?}", msgs[1].content);
    assert!(json_stored_as(&msgs[1].parts, &reply.parts), "the reply's parts: {}", msgs[1].parts);
    let steps = s.run_steps(&run.id).await.unwrap();
    assert_eq!(steps.len(), 1);
    assert!(stored_as(&steps[0].call_id, &step.call_id));
    assert!(json_stored_as(&steps[0].output, &step.output), "the step's output: {}", steps[0].output);
    let got_run = s.run(&run.id).await.unwrap().unwrap();
    assert_eq!(got_run.state, RunState::Failed);
    assert!(stored_as(got_run.error_message.as_deref().unwrap(), "tool failed: \u{0}"), "the error: {:?}", got_run.error_message);
    let ev = all_events(s, &rec.id).await;
    assert!(json_stored_as(&ev[ev.len() - 2].data, &json!({"type": "text-delta", "delta": "4\u{0}2"})), "an event: {}", ev[ev.len() - 2].data);
    assert!(json_stored_as(&ev[ev.len() - 1].data, &json!({"type": "error", "errorText": "tool failed: \u{0}"})), "an event: {}", ev[ev.len() - 1].data);

    // A rename, a queued message and a file name.
    s.rename_session(&rec.id, "Renamed\u{0}").await.unwrap();
    assert!(stored_as(s.session(&rec.id).await.unwrap().unwrap().name.as_deref().unwrap(), "Renamed\u{0}"));
    assert!(s.enqueue_message(&queued_message(&rec.id, "later\u{0}", now()), 10).await.unwrap());
    assert!(stored_as(&s.queued_messages(&rec.id).await.unwrap()[0].input, "later\u{0}"));
    let file = SessionFileRecord {
        session_id: rec.id.clone(),
        file_name: "in\u{0}.txt".into(),
        media_type: "text/plain".into(),
        size: 1,
        blob_key: "k".into(),
        created_at: now(),
    };
    s.insert_session_file(&file).await.unwrap();
    assert!(stored_as(&s.session_files(&rec.id).await.unwrap()[0].file_name, &file.file_name));

    // Searches holding a NUL answer (whatever they match), never fail.
    let filter = |needle: &str| SessionFilter {
        agent_id: w.agent.id.clone(),
        reader: reader(&w.user, &[]),
        own_team: None,
        states: None,
        kind: None,
        creator: None,
        search: Some(needle.to_string()),
        trigger_id: None,
    };
    let page = PageWindow { after: None, limit: 100, desc: true };
    for needle in ["\u{0}", "renamed\u{0}", "total\u{0}"] {
        s.list_sessions(&filter(needle), SessionSort::Name, &page).await.unwrap();
    }
    let cursor = PageWindow { after: Some((SortVal::Str("renamed\u{0}".into()), "sess\u{0}".into())), limit: 100, desc: true };
    s.list_sessions(&filter("re"), SessionSort::Name, &cursor).await.unwrap();
    let artifacts =
        ArtifactFilter { agent_id: w.agent.id.clone(), reader: reader(&w.user, &[]), session_id: Some(rec.id.clone()), search: Some("\u{0}".into()) };
    s.list_artifacts(&artifacts, ArtifactSort::Name, &page).await.unwrap();
}
