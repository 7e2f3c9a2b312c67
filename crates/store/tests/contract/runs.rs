//! `RunStore`: claims, leases, heartbeats, step commits and the event log.

use serde_json::json;
use store::*;

use super::fixtures::*;
use super::Backend;

/// Everything a refused `update_run` must leave as it was.
#[derive(Debug, PartialEq)]
struct RunSnapshot {
    run: Option<RunRecord>,
    session: Option<SessionRecord>,
    messages: Vec<MessageRecord>,
    steps: Vec<StepRecord>,
    events: Vec<EventRecord>,
    queue: Vec<QueuedMessageRecord>,
}

async fn snapshot(s: &dyn Store, run: &RunRecord) -> RunSnapshot {
    RunSnapshot {
        run: s.run(&run.id).await.unwrap(),
        session: s.session(&run.session_id).await.unwrap(),
        messages: s.messages(&run.session_id).await.unwrap(),
        steps: s.run_steps(&run.id).await.unwrap(),
        events: all_events(s, &run.session_id).await,
        queue: s.queued_messages(&run.session_id).await.unwrap(),
    }
}

async fn counts(s: &dyn Store, w: &World) -> (i64, i64, i64) {
    let c = s.active_counts(&w.agent.id, &w.org).await.unwrap();
    (c.agent_queued, c.agent_processing, c.org_processing)
}

pub async fn claim_heartbeat_commit_finish(b: &dyn Backend) {
    let store = b.open().await;
    let s = &*store;
    let w = world(s).await;
    let (sess, run) = session_with_run(s, &w.agent, &w.user, RunState::Queued).await;
    assert_eq!(counts(s, &w).await, (1, 0, 0));

    let t = now();
    let c = s.claim_run("w1", t, t + 60 * SECOND, NO_LIMITS).await.unwrap().expect("a queued run is claimable");
    assert_eq!(c.run.id, run.id);
    assert_eq!(c.attempts, 1, "first claim");
    assert_eq!(c.run.attempts, 1);
    assert_eq!(c.run.state, RunState::Processing, "a claimed run is processing");
    assert_eq!(c.run.started_at, Some(t));
    assert_eq!(s.run(&run.id).await.unwrap().unwrap(), c.run, "the claimed run as returned is the stored one");
    assert_eq!(s.session(&sess.id).await.unwrap().unwrap().state, SessionState::Processing, "its session follows");
    assert_eq!(counts(s, &w).await, (0, 1, 1));
    assert!(s.claim_run("w2", t, t + 60 * SECOND, NO_LIMITS).await.unwrap().is_none(), "a leased run is not claimed again");

    assert!(s.heartbeat(&run.id, "w1", t + 120 * SECOND).await.unwrap(), "the owner extends its lease");
    assert!(!s.heartbeat(&run.id, "w2", t + 120 * SECOND).await.unwrap(), "another worker cannot");
    assert!(!s.heartbeat("run_missing", "w1", t).await.unwrap());

    // A step commit: message, step, usage and events in one write.
    let reply = assistant_message(&run, "The total is 1,234.50 EUR.");
    let step = StepRecord { run_id: run.id.clone(), step: 0, call_id: String::new(), state: "done".into(), output: json!({"text": "The total…"}) };
    let usage = json!({"input_tokens": 120, "output_tokens": 30, "cost": 0.0012});
    let ev = s
        .update_run(RunUpdate {
            message: Some(&reply),
            step: Some(&step),
            usage_delta: Some(&usage),
            events: vec![event("text-delta", 1), event("text-delta", 2)],
            ..RunUpdate::new(&run.id, Some("w1"))
        })
        .await
        .unwrap()
        .expect("the owner writes");
    assert_eq!(ev.iter().map(|e| e.seq).collect::<Vec<_>>(), vec![2, 3], "events follow the session's last seq");
    assert!(ev.iter().all(|e| e.run_id.as_deref() == Some(run.id.as_str()) && e.kind == "text-delta"));
    assert_eq!(s.run_steps(&run.id).await.unwrap(), vec![step.clone()]);
    let r = s.run(&run.id).await.unwrap().unwrap();
    assert_eq!(r.assistant_message_id.as_deref(), Some(reply.id.as_str()), "the first assistant message becomes the run's");
    assert_eq!(r.usage, usage, "usage is added to the run");
    assert_eq!(s.session(&sess.id).await.unwrap().unwrap().usage, usage, "and to the session");

    // The same message and step again (streaming): updated in place.
    let reply2 = MessageRecord { content: Some("The total is 1,234.50 EUR (incl. VAT).".into()), ..reply.clone() };
    let step2 = StepRecord { state: "done".into(), output: json!({"text": "final"}), ..step.clone() };
    s.update_run(RunUpdate { message: Some(&reply2), step: Some(&step2), usage_delta: Some(&usage), ..RunUpdate::new(&run.id, Some("w1")) })
        .await
        .unwrap()
        .expect("the owner writes");
    let msgs = s.messages(&sess.id).await.unwrap();
    assert_eq!(msgs.len(), 2, "user + assistant: an upsert adds no message");
    assert_eq!(msgs[1].id, reply.id);
    assert_eq!(msgs[1].content, reply2.content);
    assert!(msgs[0].ord < msgs[1].ord);
    assert_eq!(s.run_steps(&run.id).await.unwrap(), vec![step2.clone()]);
    let r = s.run(&run.id).await.unwrap().unwrap();
    assert_eq!(r.usage, json!({"input_tokens": 240, "output_tokens": 60, "cost": 0.0024}), "usage accumulates");

    // Finish.
    let ev = s.update_run(finish(&run.id, "w1")).await.unwrap().expect("the owner finishes");
    assert_eq!(ev.iter().map(|e| e.seq).collect::<Vec<_>>(), vec![4]);
    let r = s.run(&run.id).await.unwrap().unwrap();
    assert_eq!((r.state, r.finish_reason.as_deref()), (RunState::Completed, Some("stop")));
    assert!(r.finished_at.is_some());
    let got = s.session(&sess.id).await.unwrap().unwrap();
    assert_eq!((got.state, got.last_seq), (SessionState::Completed, 4));
    assert_eq!(counts(s, &w).await, (0, 0, 0), "a finished run frees its slot");
    assert!(!s.heartbeat(&run.id, "w1", far()).await.unwrap(), "a finished run has no lease");
    assert!(s.claim_run("w1", now(), far(), NO_LIMITS).await.unwrap().is_none(), "nor a job");
    assert!(s.expired_runs(far() + SECOND).await.unwrap().is_empty());
    assert!(s.update_run(RunUpdate { events: vec![event("late", 0)], ..RunUpdate::new(&run.id, Some("w1")) }).await.unwrap().is_none(), "the lease is gone");
}

pub async fn non_owner_writes_nothing(b: &dyn Backend) {
    let store = b.open().await;
    let s = &*store;
    let w = world(s).await;
    let (sess, run) = session_with_run(s, &w.agent, &w.user, RunState::Queued).await;
    let q = queued_message(&sess.id, "next", now());
    assert!(s.enqueue_message(&q, 10).await.unwrap());
    s.claim_run("w1", now(), far(), NO_LIMITS).await.unwrap().expect("claimable");
    let before = snapshot(s, &run).await;
    let counts_before = counts(s, &w).await;

    let reply = assistant_message(&run, "stolen");
    let step = StepRecord { run_id: run.id.clone(), step: 0, call_id: "call_1".into(), state: "done".into(), output: json!({"x": 1}) };
    let usage = json!({"input_tokens": 5});
    let every_change = |owner: Option<&'static str>, unleased: bool| RunUpdate {
        transition: Some(Transition { from: RunState::Processing, to: RunState::Failed }),
        finish_reason: Some("error"),
        error_message: Some("boom"),
        message: Some(&reply),
        step: Some(&step),
        usage_delta: Some(&usage),
        events: vec![event("error", 0)],
        terminal: true,
        only_if_unleased: unleased,
        release_job: true,
        dequeue: Some(q.id.as_str()),
        ..RunUpdate::new(&run.id, owner)
    };
    assert!(s.update_run(every_change(Some("w2"), false)).await.unwrap().is_none(), "another worker's write is refused");
    assert!(s.update_run(every_change(None, true)).await.unwrap().is_none(), "an only-if-unleased write to a leased run is refused");
    assert_eq!(snapshot(s, &run).await, before, "refused writes change nothing");
    assert_eq!(counts(s, &w).await, counts_before);
    assert!(s.heartbeat(&run.id, "w1", far()).await.unwrap(), "the owner still holds the lease");

    let r = s.update_run(RunUpdate { events: vec![], ..RunUpdate::new("run_missing", None) }).await;
    assert!(matches!(r, Ok(None) | Err(StoreError::NotFound)), "update_run of an unknown run: {r:?}");
}

pub async fn expiry_requeue_and_release(b: &dyn Backend) {
    let store = b.open().await;
    let s = &*store;
    let w = world(s).await;
    let (_, run) = session_with_run(s, &w.agent, &w.user, RunState::Queued).await;
    let t = now();

    s.claim_run("w1", t, t + 10 * SECOND, NO_LIMITS).await.unwrap().expect("claimable");
    assert!(s.expired_runs(t + 5 * SECOND).await.unwrap().is_empty(), "the lease runs until lease_until");
    assert_eq!(s.expired_runs(t + 11 * SECOND).await.unwrap(), vec![(run.id.clone(), 1)]);
    assert!(s.heartbeat(&run.id, "w1", t + 20 * SECOND).await.unwrap());
    assert!(s.expired_runs(t + 11 * SECOND).await.unwrap().is_empty(), "a heartbeat pushes expiry back");
    assert_eq!(s.expired_runs(t + 21 * SECOND).await.unwrap(), vec![(run.id.clone(), 1)]);

    // The reaper requeues it; it becomes claimable from available_at, by anyone.
    s.requeue_run(&run.id, t + 30 * SECOND).await.unwrap();
    assert!(s.expired_runs(t + 3600 * SECOND).await.unwrap().is_empty(), "a requeued run has no lease");
    assert!(s.claim_run("w2", t + 25 * SECOND, far(), NO_LIMITS).await.unwrap().is_none(), "not before available_at");
    let c = s.claim_run("w2", t + 30 * SECOND, far(), NO_LIMITS).await.unwrap().expect("claimable again");
    assert_eq!((c.run.id.as_str(), c.attempts), (run.id.as_str(), 2), "the second claim counts as attempt 2");
    assert_eq!(c.run.started_at, Some(t), "started_at is the first claim's");
    assert!(!s.heartbeat(&run.id, "w1", far()).await.unwrap(), "the old owner lost the lease");
    assert!(s.update_run(RunUpdate { events: vec![event("late", 0)], ..RunUpdate::new(&run.id, Some("w1")) }).await.unwrap().is_none());
    assert!(s.update_run(RunUpdate { events: vec![event("mine", 0)], ..RunUpdate::new(&run.id, Some("w2")) }).await.unwrap().is_some());
    assert_eq!(counts(s, &w).await, (0, 1, 1), "a reclaimed run is counted once");

    // Start-up recovery returns the restarting process's own leases (owner prefix), or
    // every lease with "".
    assert_eq!(s.release_all_leases("w3").await.unwrap(), 0, "another process's lease stays");
    assert_eq!(s.release_all_leases("w").await.unwrap(), 1);
    assert_eq!(s.release_all_leases("").await.unwrap(), 0);
    let c = s.claim_run("w3", t + 30 * SECOND, far(), NO_LIMITS).await.unwrap().expect("claimable after release");
    assert_eq!(c.attempts, 3);
    assert_eq!(counts(s, &w).await, (0, 1, 1));
}

pub async fn events_paging_and_purge(b: &dyn Backend) {
    let store = b.open().await;
    let s = &*store;
    let w = world(s).await;
    let (sess, run) = session_with_run(s, &w.agent, &w.user, RunState::Processing).await;
    let other = session_record(&w.agent, &w.user, SessionState::Idle);
    s.create_session(&other, vec![event("other", 0), event("other", 1)]).await.unwrap();

    // The turn wrote seq 1; 24 more in batches, administratively (no lease needed).
    for batch in 0..4 {
        let events = (0..6).map(|i| event("text-delta", batch * 6 + i)).collect();
        s.update_run(RunUpdate { events, ..RunUpdate::new(&run.id, None) }).await.unwrap().expect("written");
    }
    let page1 = s.events_after(&sess.id, 0, 10).await.unwrap();
    let page2 = s.events_after(&sess.id, 10, 10).await.unwrap();
    let page3 = s.events_after(&sess.id, 20, 10).await.unwrap();
    assert_eq!(page1.iter().map(|e| e.seq).collect::<Vec<_>>(), (1..=10).collect::<Vec<_>>());
    assert_eq!(page2.iter().map(|e| e.seq).collect::<Vec<_>>(), (11..=20).collect::<Vec<_>>());
    assert_eq!(page3.iter().map(|e| e.seq).collect::<Vec<_>>(), (21..=25).collect::<Vec<_>>());
    assert!(s.events_after(&sess.id, 25, 10).await.unwrap().is_empty());
    assert_eq!(page1[0].data, state_event("processing"));
    assert_eq!(page1[1].data, event("text-delta", 0), "event data reads back");
    assert_eq!(page3[4].data, event("text-delta", 23));
    assert!(page1.iter().chain(&page2).chain(&page3).all(|e| e.session_id == sess.id && e.run_id.as_deref() == Some(run.id.as_str())));
    assert_eq!(s.events_after(&other.id, 0, 100).await.unwrap().iter().map(|e| e.seq).collect::<Vec<_>>(), vec![1, 2], "seqs are per session");
    assert_eq!(s.session(&sess.id).await.unwrap().unwrap().last_seq, 25);
    assert_eq!(s.first_event_of_run(&sess.id, &run.id).await.unwrap(), Some(1));
    assert_eq!(s.first_event_of_run(&sess.id, "run_missing").await.unwrap(), None);

    // Retention: events of sessions whose latest run finished before `before` go.
    assert_eq!(s.purge_events(now() + 3600 * SECOND).await.unwrap(), 0, "the run is not finished");
    s.claim_run("w1", now(), far(), NO_LIMITS).await.unwrap().expect("claimable");
    s.update_run(finish(&run.id, "w1")).await.unwrap().expect("finished");
    let finished_at = s.run(&run.id).await.unwrap().unwrap().finished_at.unwrap();
    assert_eq!(s.purge_events(finished_at).await.unwrap(), 0, "not finished before `before`");
    assert_eq!(s.purge_events(now() + 3600 * SECOND).await.unwrap(), 26);
    assert!(s.events_after(&sess.id, 0, 100).await.unwrap().is_empty());
    let got = s.session(&sess.id).await.unwrap().unwrap();
    assert_eq!((got.purged_through, got.last_seq), (26, 26), "the purge is recorded");
    assert_eq!(s.events_after(&other.id, 0, 100).await.unwrap().len(), 2, "other sessions keep theirs");
    assert_eq!(s.purge_events(now() + 3600 * SECOND).await.unwrap(), 0, "nothing left to purge");

    // Seqs continue after a purge.
    let ev = s.update_run(RunUpdate { events: vec![event("late", 0)], ..RunUpdate::new(&run.id, None) }).await.unwrap().unwrap();
    assert_eq!(ev[0].seq, 27);
}

pub async fn cancel_only_if_unleased(b: &dyn Backend) {
    let store = b.open().await;
    let s = &*store;
    let w = world(s).await;

    // A queued run is cancelled at once.
    let (sess, run) = session_with_run(s, &w.agent, &w.user, RunState::Queued).await;
    let ev = s.update_run(cancel(&run.id, RunState::Queued)).await.unwrap().expect("a queued run is unleased");
    assert_eq!(ev.len(), 1);
    let r = s.run(&run.id).await.unwrap().unwrap();
    assert_eq!((r.state, r.finish_reason.as_deref()), (RunState::Cancelled, Some("cancelled")));
    assert!(r.finished_at.is_some());
    assert_eq!(s.session(&sess.id).await.unwrap().unwrap().state, SessionState::Cancelled);
    assert_eq!(counts(s, &w).await, (0, 0, 0), "a cancelled queued run leaves the counts");
    assert!(s.claim_run("w1", now(), far(), NO_LIMITS).await.unwrap().is_none(), "and the job queue");

    // A running one is not (whatever state the canceller read): the worker is told
    // instead (request_cancel).
    let (_, run2) = session_with_run(s, &w.agent, &w.user, RunState::Queued).await;
    s.claim_run("w1", now(), far(), NO_LIMITS).await.unwrap().expect("claimable");
    let before = snapshot(s, &run2).await;
    assert!(s.update_run(cancel(&run2.id, RunState::Queued)).await.unwrap().is_none(), "read while queued");
    assert!(s.update_run(cancel(&run2.id, RunState::Processing)).await.unwrap().is_none(), "read while processing");
    assert_eq!(snapshot(s, &run2).await, before, "a refused cancel writes nothing");
    assert_eq!(counts(s, &w).await, (0, 1, 1));
}

pub async fn pause_and_resume(b: &dyn Backend) {
    let store = b.open().await;
    let s = &*store;
    let w = world(s).await;
    let (sess, run) = session_with_run(s, &w.agent, &w.user, RunState::Queued).await;
    s.claim_run("w1", now(), far(), NO_LIMITS).await.unwrap().expect("claimable");

    // Pause for approval: the job goes, the run stays.
    let ask = StepRecord {
        run_id: run.id.clone(),
        step: 1,
        call_id: "call_send_email".into(),
        state: "awaiting".into(),
        output: json!({"approval": {"action_request_id": "areq_1", "type": "tool_approval"}}),
    };
    s.update_run(RunUpdate { step: Some(&ask), ..pause(&run.id, "w1") }).await.unwrap().expect("the owner pauses");
    assert_eq!(s.session(&sess.id).await.unwrap().unwrap().state, SessionState::ApprovalRequired);
    let r = s.run(&run.id).await.unwrap().unwrap();
    assert_eq!(r.state, RunState::ApprovalRequired);
    assert!(r.finished_at.is_none(), "a paused run is not finished");
    assert_eq!(counts(s, &w).await, (0, 0, 0), "a paused run holds no slot");
    assert!(!s.heartbeat(&run.id, "w1", far()).await.unwrap(), "nor a lease");
    assert!(s.claim_run("w2", now(), far(), NO_LIMITS).await.unwrap().is_none(), "nor a job");

    // Approvals are recorded while paused (no lease needed), then the run resumes.
    let decided = StepRecord { state: "approved".into(), ..ask.clone() };
    s.update_run(RunUpdate { step: Some(&decided), only_if_unleased: true, ..RunUpdate::new(&run.id, None) }).await.unwrap().expect("recorded");
    assert_eq!(s.run_steps(&run.id).await.unwrap(), vec![decided]);
    s.update_run(resume(&run.id)).await.unwrap().expect("resumed");
    assert_eq!(s.session(&sess.id).await.unwrap().unwrap().state, SessionState::Processing);
    assert_eq!(s.run(&run.id).await.unwrap().unwrap().state, RunState::Processing);
    assert_eq!(counts(s, &w).await, (0, 1, 1));
    let c = s.claim_run("w2", now(), far(), NO_LIMITS).await.unwrap().expect("the resumed run is claimable");
    assert_eq!((c.run.id.as_str(), c.run.state), (run.id.as_str(), RunState::Processing));
    assert_eq!(counts(s, &w).await, (0, 1, 1), "re-claiming a processing run counts it once");
    assert!(s.update_run(resume(&run.id)).await.unwrap().is_none(), "a resume while leased is refused");
    s.update_run(finish(&run.id, "w2")).await.unwrap().expect("finished");
    assert_eq!(counts(s, &w).await, (0, 0, 0));
}

/// A transition of a run that is no longer its session's current one moves the run
/// only: the session (and its gate) belong to the current run.
pub async fn session_state_follows_only_the_current_run(b: &dyn Backend) {
    let store = b.open().await;
    let s = &*store;
    let w = world(s).await;

    // Run 1 paused for approval; a new message starts run 2 anyway (the engine's §6.1
    // table accepts messages while approval is required).
    let (sess, run1) = session_with_run(s, &w.agent, &w.user, RunState::Processing).await;
    s.claim_run("w1", now(), far(), NO_LIMITS).await.unwrap().expect("claimable");
    s.update_run(pause(&run1.id, "w1")).await.unwrap().expect("paused");
    let (msg, run2) = turn(&sess);
    let any_state: AdmissionRule = Box::new(|_: &AdmissionView| Ok((RunState::Processing, vec![])));
    s.start_turn(&sess.id, new_turn(&msg, &run2, any_state)).await.unwrap().expect("accepted");
    assert_eq!(counts(s, &w).await, (0, 1, 1));

    // A late cancel of run 1 (the session is processing, not approval_required: no
    // matter, run 1 is not current) moves run 1 and leaves the session alone.
    let ev = s.update_run(cancel(&run1.id, RunState::ApprovalRequired)).await.unwrap().expect("run 1 is cancelled");
    assert!(ev.iter().all(|e| e.run_id.as_deref() == Some(run1.id.as_str())));
    assert_eq!(s.run(&run1.id).await.unwrap().unwrap().state, RunState::Cancelled);
    let got = s.session(&sess.id).await.unwrap().unwrap();
    assert_eq!(got.state, SessionState::Processing, "only the current run moves the session's state");
    assert_eq!(got.current_run_id.as_deref(), Some(run2.id.as_str()));
    assert_eq!(counts(s, &w).await, (0, 1, 1), "run 2 still holds its slot");

    // Run 2 moves the session.
    s.claim_run("w1", now(), far(), NO_LIMITS).await.unwrap().expect("run 2 is claimable");
    s.update_run(finish(&run2.id, "w1")).await.unwrap().expect("finished");
    assert_eq!(s.session(&sess.id).await.unwrap().unwrap().state, SessionState::Completed);
    // A late event-only write about run 1 changes no state.
    s.update_run(RunUpdate { events: vec![event("late", 0)], ..RunUpdate::new(&run1.id, None) }).await.unwrap().expect("written");
    assert_eq!(s.session(&sess.id).await.unwrap().unwrap().state, SessionState::Completed);
    assert_eq!(counts(s, &w).await, (0, 0, 0));
}

/// `RunUpdate::dequeue` removes a message of the run's own session only.
pub async fn dequeue_stays_in_the_runs_session(b: &dyn Backend) {
    let store = b.open().await;
    let s = &*store;
    let w = world(s).await;
    let (sess, run) = session_with_run(s, &w.agent, &w.user, RunState::Processing).await;
    let own = queued_message(&sess.id, "mine", now());
    assert!(s.enqueue_message(&own, 10).await.unwrap());
    let other = idle_session(s, &w.agent, &w.user).await;
    let foreign = queued_message(&other.id, "not yours", now());
    assert!(s.enqueue_message(&foreign, 10).await.unwrap());

    s.update_run(RunUpdate { dequeue: Some(foreign.id.as_str()), ..RunUpdate::new(&run.id, None) }).await.unwrap();
    assert_eq!(s.queued_messages(&other.id).await.unwrap(), vec![foreign.clone()], "another session's queued message is untouched");
    // Also along with a transition (a finishing worker draining the queue).
    s.claim_run("w1", now(), far(), NO_LIMITS).await.unwrap().expect("claimable");
    s.update_run(RunUpdate { dequeue: Some(foreign.id.as_str()), events: vec![event("note", 0)], ..RunUpdate::new(&run.id, Some("w1")) })
        .await
        .unwrap()
        .expect("written");
    assert_eq!(s.queued_messages(&other.id).await.unwrap(), vec![foreign.clone()]);
    s.update_run(RunUpdate { dequeue: Some(own.id.as_str()), ..finish(&run.id, "w1") }).await.unwrap().expect("written");
    assert!(s.queued_messages(&sess.id).await.unwrap().is_empty(), "the run's own queued message is removed");
    assert_eq!(s.queued_messages(&other.id).await.unwrap(), vec![foreign]);
}

/// A cancellation computed from a stale read (the API saw `processing`) that arrives
/// after the worker finished must not turn a completed run into a cancelled one: the
/// transition is refused and nothing is written.
pub async fn late_cancel_leaves_a_finished_run_alone(b: &dyn Backend) {
    let store = b.open().await;
    let s = &*store;
    let w = world(s).await;
    let (sess, run) = session_with_run(s, &w.agent, &w.user, RunState::Queued).await;
    s.claim_run("w1", now(), far(), NO_LIMITS).await.unwrap().expect("claimable");
    let stale = s.session(&sess.id).await.unwrap().unwrap();
    assert_eq!(stale.state, SessionState::Processing, "what the canceller reads");
    s.update_run(finish(&run.id, "w1")).await.unwrap().expect("finished");
    let before = snapshot(s, &run).await;

    let from = RunState::of_session(stale.state).expect("an active state");
    let r = s.update_run(cancel(&run.id, from)).await;
    assert!(is_refused(&r, RunState::Processing), "cancelling a finished run must be refused, got {r:?}");
    assert_eq!(snapshot(s, &run).await, before, "a finished run (and its session) stay as they ended");
    assert_eq!(counts(s, &w).await, (0, 0, 0));
}

/// A resumption computed from a stale read (the API saw `approval_required`) that
/// arrives after the run was cancelled must not bring the run back.
pub async fn late_resume_leaves_a_cancelled_run_alone(b: &dyn Backend) {
    let store = b.open().await;
    let s = &*store;
    let w = world(s).await;
    let (sess, run) = session_with_run(s, &w.agent, &w.user, RunState::Queued).await;
    s.claim_run("w1", now(), far(), NO_LIMITS).await.unwrap().expect("claimable");
    s.update_run(pause(&run.id, "w1")).await.unwrap().expect("paused");
    assert_eq!(s.session(&sess.id).await.unwrap().unwrap().state, SessionState::ApprovalRequired, "what the resumer reads");
    s.update_run(cancel(&run.id, RunState::ApprovalRequired)).await.unwrap().expect("cancelled");
    let before = snapshot(s, &run).await;

    let r = s.update_run(resume(&run.id)).await;
    let claimable = s.claim_run("w1", now(), far(), NO_LIMITS).await.unwrap();
    assert!(is_refused(&r, RunState::ApprovalRequired), "resuming a cancelled run must be refused, got {r:?}");
    assert!(claimable.is_none(), "a cancelled run must not be claimable again");
    assert_eq!(snapshot(s, &run).await, before);
    assert_eq!(counts(s, &w).await, (0, 0, 0));
}

/// A transition whose `from` no longer holds is refused as a whole: the run, its
/// session, the counts, the events, the transcript, the steps, the queue and the job
/// are as they were, and the next write's events follow on without a gap.
pub async fn refused_transition_writes_nothing(b: &dyn Backend) {
    let store = b.open().await;
    let s = &*store;
    let w = world(s).await;
    let (sess, run) = session_with_run(s, &w.agent, &w.user, RunState::Queued).await;
    let q = queued_message(&sess.id, "next", now());
    assert!(s.enqueue_message(&q, 10).await.unwrap());
    s.claim_run("w1", now(), far(), NO_LIMITS).await.unwrap().expect("claimable");
    let before = snapshot(s, &run).await;
    let counts_before = counts(s, &w).await;
    assert_eq!(counts_before, (0, 1, 1));

    let reply = assistant_message(&run, "not written");
    let step = StepRecord { run_id: run.id.clone(), step: 0, call_id: String::new(), state: "done".into(), output: json!({"x": 1}) };
    let usage = json!({"input_tokens": 5});
    // Every kind of change, from a state the run has left (queued) or never had.
    for from in [RunState::Queued, RunState::ApprovalRequired, RunState::Completed] {
        for to in [RunState::Cancelled, RunState::Failed, RunState::Processing] {
            let u = RunUpdate {
                transition: Some(Transition { from, to }),
                finish_reason: Some("error"),
                error_message: Some("boom"),
                message: Some(&reply),
                step: Some(&step),
                usage_delta: Some(&usage),
                events: vec![event("error", 0)],
                terminal: to.is_terminal(),
                dequeue: Some(q.id.as_str()),
                ..RunUpdate::new(&run.id, Some("w1"))
            };
            let r = s.update_run(u).await;
            assert!(is_refused(&r, from), "{from:?} → {to:?} on a processing run must be refused, got {r:?}");
            assert_eq!(snapshot(s, &run).await, before, "a refused transition writes nothing ({from:?} → {to:?})");
            assert_eq!(counts(s, &w).await, counts_before, "counts are unchanged ({from:?} → {to:?})");
        }
    }
    // Administrative writes (no lease) and only-if-unleased ones the same way.
    let r = s.update_run(RunUpdate { events: vec![event("x", 0)], ..cancel(&run.id, RunState::Queued) }).await;
    assert!(matches!(r, Ok(None)), "a leased run refuses an only-if-unleased write first, got {r:?}");
    let r = s.update_run(RunUpdate { transition: Some(Transition { from: RunState::Queued, to: RunState::Cancelled }), ..RunUpdate::new(&run.id, None) }).await;
    assert!(is_refused(&r, RunState::Queued), "got {r:?}");
    assert_eq!(snapshot(s, &run).await, before);
    assert_eq!(counts(s, &w).await, counts_before);

    // The worker still holds its lease and writes on; seqs follow without a gap.
    assert!(s.heartbeat(&run.id, "w1", far()).await.unwrap(), "the lease is untouched");
    let ev = s.update_run(finish(&run.id, "w1")).await.unwrap().expect("finished");
    assert_eq!(ev.iter().map(|e| e.seq).collect::<Vec<_>>(), vec![before.session.as_ref().unwrap().last_seq + 1]);
    assert_eq!(s.queued_messages(&sess.id).await.unwrap(), vec![q], "the queued message is still there");
    assert_eq!(counts(s, &w).await, (0, 0, 0));
    // A finished run refuses every transition.
    for from in RunState::ALL.into_iter().filter(|f| *f != RunState::Completed) {
        let r = s.update_run(RunUpdate { transition: Some(Transition { from, to: RunState::Cancelled }), ..RunUpdate::new(&run.id, None) }).await;
        assert!(is_refused(&r, from), "got {r:?}");
    }
    assert_eq!(s.run(&run.id).await.unwrap().unwrap().state, RunState::Completed);
}

/// An applied transition moves the run, its session (while current) and the counts
/// together, through every step of a run's life.
pub async fn applied_transition_moves_session_and_counts(b: &dyn Backend) {
    let store = b.open().await;
    let s = &*store;
    let w = world(s).await;
    let state_of = |sess: &SessionRecord, run: &RunRecord| {
        let (sess_id, run_id) = (sess.id.clone(), run.id.clone());
        async move { (s.run(&run_id).await.unwrap().unwrap().state, s.session(&sess_id).await.unwrap().unwrap().state) }
    };

    // queued → processing (claim) → approval_required → processing → failed.
    let (sess, run) = session_with_run(s, &w.agent, &w.user, RunState::Queued).await;
    assert_eq!(counts(s, &w).await, (1, 0, 0));
    s.claim_run("w1", now(), far(), NO_LIMITS).await.unwrap().expect("claimable");
    assert_eq!(state_of(&sess, &run).await, (RunState::Processing, SessionState::Processing));
    assert_eq!(counts(s, &w).await, (0, 1, 1));
    s.update_run(pause(&run.id, "w1")).await.unwrap().expect("paused");
    assert_eq!(state_of(&sess, &run).await, (RunState::ApprovalRequired, SessionState::ApprovalRequired));
    assert_eq!(counts(s, &w).await, (0, 0, 0), "a paused run is counted nowhere");
    s.update_run(resume(&run.id)).await.unwrap().expect("resumed");
    assert_eq!(state_of(&sess, &run).await, (RunState::Processing, SessionState::Processing));
    assert_eq!(counts(s, &w).await, (0, 1, 1));
    s.claim_run("w2", now(), far(), NO_LIMITS).await.unwrap().expect("claimable again");
    let fail = RunUpdate {
        transition: Some(Transition { from: RunState::Processing, to: RunState::Failed }),
        finish_reason: Some("error"),
        error_message: Some("the model is unavailable"),
        events: vec![state_event("failed")],
        terminal: true,
        ..RunUpdate::new(&run.id, Some("w2"))
    };
    let ev = s.update_run(fail).await.unwrap().expect("failed");
    assert_eq!(ev.len(), 1);
    assert_eq!(state_of(&sess, &run).await, (RunState::Failed, SessionState::Failed));
    let r = s.run(&run.id).await.unwrap().unwrap();
    assert_eq!((r.finish_reason.as_deref(), r.error_message.as_deref()), (Some("error"), Some("the model is unavailable")));
    assert!(r.finished_at.is_some());
    assert_eq!(counts(s, &w).await, (0, 0, 0));

    // queued → cancelled leaves the queued count; processing → cancelled the processing one.
    let (sess2, run2) = session_with_run(s, &w.agent, &w.user, RunState::Queued).await;
    let (sess3, run3) = session_with_run(s, &w.agent, &w.user, RunState::Processing).await;
    assert_eq!(counts(s, &w).await, (1, 1, 1));
    s.update_run(cancel(&run2.id, RunState::Queued)).await.unwrap().expect("cancelled");
    assert_eq!(state_of(&sess2, &run2).await, (RunState::Cancelled, SessionState::Cancelled));
    assert_eq!(counts(s, &w).await, (0, 1, 1));
    s.update_run(cancel(&run3.id, RunState::Processing)).await.unwrap().expect("an unclaimed processing run is cancelled");
    assert_eq!(state_of(&sess3, &run3).await, (RunState::Cancelled, SessionState::Cancelled));
    assert_eq!(counts(s, &w).await, (0, 0, 0));
    assert!(s.claim_run("w1", now(), far(), NO_LIMITS).await.unwrap().is_none(), "cancelled runs left the job queue");
}
