//! Concurrent writers on two store instances of one database: limits are never
//! exceeded, a contended transition has exactly one winner, and ordinals, versions and
//! sequence numbers are never duplicated or skipped.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::atomic::{AtomicI64, AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::future::join_all;
use serde_json::json;
use store::IdempotencyClaim::{InUse, New, Replay, Reused};
use store::*;

use super::fixtures::*;
use super::Backend;

/// Contenders per race.
const N: usize = 100;

fn assert_not_stuck(started: Instant, what: &str) {
    assert!(started.elapsed() < STUCK, "{what}: still not done after {STUCK:?}");
}

/// Many claimers on two instances, a backlog of queued runs for two agents of one
/// organization: no claim ever exceeds the agent or organization limit, and every run
/// is claimed exactly once.
pub async fn claim_run_respects_slot_limits(b: &dyn Backend) {
    const LIMITS: SlotLimits = SlotLimits { agent: 3, org: 5 };
    const RUNS: usize = 60;
    const CLAIMERS: usize = 50;
    let stores = two_stores(b).await;
    let w = world(&*stores[0]).await;
    let agent_b = agent(&*stores[0], &w.user, None).await;
    let agents = [w.agent.clone(), agent_b.clone()];

    let runs: Vec<RunRecord> = join_all((0..RUNS).map(|i| {
        let (s, a, u) = (stores[i % 2].clone(), agents[usize::from(i % 3 == 2)].clone(), w.user.clone());
        async move { session_with_run(&*s, &a, &u, RunState::Queued).await.1 }
    }))
    .await;
    let c = stores[1].active_counts(&agents[0].id, &w.org).await.unwrap();
    assert_eq!((c.agent_queued, c.agent_processing), (40, 0));

    // What the claimers hold right now, as they know it: incremented after a claim
    // returns, decremented before the finishing write, so it never exceeds what the
    // store holds. Any excess over a limit is the store's.
    struct Held {
        per_agent: HashMap<String, AtomicI64>,
        org: AtomicI64,
        max_agent: AtomicI64,
        max_org: AtomicI64,
        claimed: Mutex<HashSet<String>>,
        done: AtomicUsize,
    }
    let held = Arc::new(Held {
        per_agent: agents.iter().map(|a| (a.id.clone(), AtomicI64::new(0))).collect(),
        org: AtomicI64::new(0),
        max_agent: AtomicI64::new(0),
        max_org: AtomicI64::new(0),
        claimed: Mutex::new(HashSet::new()),
        done: AtomicUsize::new(0),
    });
    let org_id = w.org.clone();
    let started = Instant::now();
    race(&stores, CLAIMERS, |i, s| {
        let (held, org_id) = (held.clone(), org_id.clone());
        async move {
            let owner = format!("worker-{i}");
            while held.done.load(SeqCst) < RUNS {
                assert_not_stuck(started, "claiming the backlog");
                let t = now();
                let Some(c) = s.claim_run(&owner, t, t + 600 * SECOND, LIMITS).await.unwrap() else {
                    tokio::time::sleep(Duration::from_millis(2)).await;
                    continue;
                };
                assert!(held.claimed.lock().unwrap().insert(c.run.id.clone()), "run {} claimed twice", c.run.id);
                assert_eq!((c.run.state, c.attempts), (RunState::Processing, 1));
                let agent_n = held.per_agent[&c.run.agent_id].fetch_add(1, SeqCst) + 1;
                let org_n = held.org.fetch_add(1, SeqCst) + 1;
                held.max_agent.fetch_max(agent_n, SeqCst);
                held.max_org.fetch_max(org_n, SeqCst);
                assert!(agent_n <= LIMITS.agent, "{agent_n} runs of one agent processing at once (limit {})", LIMITS.agent);
                assert!(org_n <= LIMITS.org, "{org_n} runs of one organization processing at once (limit {})", LIMITS.org);
                let counts = s.active_counts(&c.run.agent_id, &org_id).await.unwrap();
                assert!(counts.agent_processing <= LIMITS.agent, "the store counts {} processing runs of one agent", counts.agent_processing);
                assert!(counts.org_processing <= LIMITS.org, "the store counts {} processing runs of the organization", counts.org_processing);
                tokio::time::sleep(Duration::from_millis(3)).await;
                held.per_agent[&c.run.agent_id].fetch_sub(1, SeqCst);
                held.org.fetch_sub(1, SeqCst);
                s.update_run(finish(&c.run.id, &owner)).await.unwrap().expect("the owner finishes its run");
                held.done.fetch_add(1, SeqCst);
            }
        }
    })
    .await;

    let claimed = held.claimed.lock().unwrap().clone();
    assert_eq!(claimed, runs.iter().map(|r| r.id.clone()).collect::<HashSet<_>>(), "every run was claimed exactly once");
    for r in &runs {
        assert_eq!(stores[0].run(&r.id).await.unwrap().unwrap().state, RunState::Completed);
    }
    for a in &agents {
        let c = stores[0].active_counts(&a.id, &w.org).await.unwrap();
        assert_eq!((c.agent_queued, c.agent_processing, c.org_processing), (0, 0, 0), "counts return to zero");
    }
    // The race did push against the limits (otherwise it proved nothing).
    assert!(held.max_agent.load(SeqCst) >= 2 && held.max_org.load(SeqCst) >= 3, "claimers never overlapped: the race tested nothing");
}

/// Workers claim queued runs while the API cancels them: each run is either claimed or
/// cancelled, never both, and the counts end at zero. Claimers take the oldest jobs;
/// cancellers walk all runs in scattered orders, each run being tried by one canceller
/// only (a second cancel of a cancelled run is another matter: see
/// `runs::late_cancel_leaves_a_finished_run_alone`). Claimers stop after N/2 claims so
/// that both sides win some runs.
pub async fn claim_and_cancel_are_exclusive(b: &dyn Backend) {
    let stores = two_stores(b).await;
    let w = world(&*stores[0]).await;
    let runs: Vec<RunRecord> = join_all((0..N).map(|i| {
        let (s, a, u) = (stores[i % 2].clone(), w.agent.clone(), w.user.clone());
        async move { session_with_run(&*s, &a, &u, RunState::Queued).await.1 }
    }))
    .await;
    let run_ids = Arc::new(runs.iter().map(|r| r.id.clone()).collect::<Vec<_>>());
    let tried: Arc<Vec<std::sync::atomic::AtomicBool>> = Arc::new((0..N).map(|_| Default::default()).collect());
    let claimed = Arc::new(Mutex::new(Vec::<(String, String)>::new()));
    let cancelled = Arc::new(Mutex::new(Vec::<String>::new()));
    let resolved = Arc::new(AtomicUsize::new(0));
    let budget = Arc::new(AtomicI64::new(N as i64 / 2));
    let started = Instant::now();

    // Half the contenders claim (and keep their leases), half cancel; each half spans
    // both store instances (contender i runs on store i % 2).
    race(&stores, N, |i, s| {
        let (run_ids, tried, claimed, cancelled, resolved, budget) =
            (run_ids.clone(), tried.clone(), claimed.clone(), cancelled.clone(), resolved.clone(), budget.clone());
        async move {
            if (i / 2) % 2 == 0 {
                let owner = format!("worker-{i}");
                while resolved.load(SeqCst) < N && budget.fetch_sub(1, SeqCst) > 0 {
                    assert_not_stuck(started, "claiming");
                    match s.claim_run(&owner, now(), far(), NO_LIMITS).await.unwrap() {
                        Some(c) => {
                            claimed.lock().unwrap().push((c.run.id, owner.clone()));
                            resolved.fetch_add(1, SeqCst);
                        }
                        None => {
                            budget.fetch_add(1, SeqCst);
                            tokio::time::sleep(Duration::from_millis(1)).await;
                        }
                    }
                }
            } else {
                // 37 is prime to N: a permutation of the runs, shifted per canceller.
                for k in (0..N).map(|k| (k * 37 + i * 7) % N) {
                    if tried[k].swap(true, SeqCst) {
                        continue;
                    }
                    if s.update_run(cancel(&run_ids[k], RunState::Queued)).await.unwrap().is_some() {
                        cancelled.lock().unwrap().push(run_ids[k].clone());
                        resolved.fetch_add(1, SeqCst);
                    }
                }
            }
        }
    })
    .await;

    let claimed = claimed.lock().unwrap().clone();
    let cancelled = cancelled.lock().unwrap().clone();
    let claimed_ids: HashSet<String> = claimed.iter().map(|(r, _)| r.clone()).collect();
    let cancelled_ids: HashSet<String> = cancelled.iter().cloned().collect();
    assert_eq!(claimed_ids.len(), claimed.len(), "a run was claimed twice");
    assert_eq!(cancelled_ids.len(), cancelled.len(), "a run was cancelled twice");
    let both: Vec<_> = claimed_ids.intersection(&cancelled_ids).collect();
    assert!(both.is_empty(), "{} runs both claimed and cancelled, e.g. {:?}", both.len(), both.first());
    assert_eq!(claimed_ids.len() + cancelled_ids.len(), N, "every run was claimed or cancelled");
    assert!(!claimed.is_empty() && !cancelled.is_empty(), "one side never won ({} claimed): the race tested nothing", claimed.len());

    for r in &cancelled_ids {
        assert_eq!(stores[0].run(r).await.unwrap().unwrap().state, RunState::Cancelled);
    }
    for (r, owner) in &claimed {
        assert_eq!(stores[1].run(r).await.unwrap().unwrap().state, RunState::Processing);
        stores[0].update_run(finish(r, owner)).await.unwrap().expect("the claimer still holds its lease");
    }
    let c = stores[1].active_counts(&w.agent.id, &w.org).await.unwrap();
    assert_eq!((c.agent_queued, c.agent_processing, c.org_processing), (0, 0, 0), "counts return to zero");
}

/// Many messages sent at once to one idle session: exactly one starts a turn, the
/// others are refused by their rule, which saw the winner's state.
pub async fn start_turn_has_one_winner(b: &dyn Backend) {
    let stores = two_stores(b).await;
    let w = world(&*stores[0]).await;
    let sess = idle_session(&*stores[0], &w.agent, &w.user).await;

    let results = race(&stores, N, |_, s| {
        let sess = sess.clone();
        async move {
            let (msg, run) = turn(&sess);
            let r = s.start_turn(&sess.id, new_turn(&msg, &run, admit_as(RunState::Processing))).await.unwrap();
            (msg, run, r)
        }
    })
    .await;
    let winners: Vec<_> = results.iter().filter(|(_, _, r)| r.is_ok()).collect();
    assert_eq!(winners.len(), 1, "exactly one start_turn succeeds");
    let (msg, run, written) = winners[0];
    assert_eq!(written.as_ref().unwrap().events.iter().map(|e| e.seq).collect::<Vec<_>>(), vec![1]);
    for (_, _, r) in &results {
        if let Err(refusal) = r {
            assert_eq!(refusal, &Refusal::NotAccepting(SessionState::Processing), "a loser's rule saw the winner's state");
        }
    }

    let s = &*stores[1];
    let got = s.session(&sess.id).await.unwrap().unwrap();
    assert_eq!((got.state, got.current_run_id.as_deref(), got.last_seq), (SessionState::Processing, Some(run.id.as_str()), 1));
    assert_eq!(s.messages(&sess.id).await.unwrap().into_iter().map(|m| m.id).collect::<Vec<_>>(), vec![msg.id.clone()], "only the winner's message");
    for (_, r, res) in &results {
        if res.is_err() {
            assert!(s.run(&r.id).await.unwrap().is_none(), "a loser's run was written");
        }
    }
    assert_eq!(s.claim_run("w1", now(), far(), NO_LIMITS).await.unwrap().map(|c| c.run.id), Some(run.id.clone()));
    assert!(s.claim_run("w1", now(), far(), NO_LIMITS).await.unwrap().is_none(), "losers enqueued no job");
    let c = s.active_counts(&w.agent.id, &w.org).await.unwrap();
    assert_eq!((c.agent_queued, c.agent_processing), (0, 1));
}

/// Many drains of one session's queue at once (each worker finishing a run drains):
/// the queued message is delivered once.
pub async fn dequeue_delivers_a_queued_message_once(b: &dyn Backend) {
    let stores = two_stores(b).await;
    let w = world(&*stores[0]).await;
    let sess = idle_session(&*stores[0], &w.agent, &w.user).await;
    let q = queued_message(&sess.id, "deliver me once", now());
    let q2 = queued_message(&sess.id, "and me later", now() + 1);
    assert!(stores[0].enqueue_message(&q, 10).await.unwrap());
    assert!(stores[0].enqueue_message(&q2, 10).await.unwrap());

    let results = race(&stores, N, |_, s| {
        let (sess, q) = (sess.clone(), q.clone());
        async move {
            // As `drain_queue` does: the message takes the queued id.
            let (mut msg, mut run) = turn(&sess);
            msg.id = q.id.clone();
            run.user_message_id = q.id.clone();
            let t = NewTurn { dequeue: Some(q.id.clone()), ..new_turn(&msg, &run, admit_as(RunState::Processing)) };
            match s.start_turn(&sess.id, t).await.unwrap() {
                Ok(_) => Some(run.id),
                Err(Refusal::NotAccepting(_) | Refusal::Dequeued) => None,
                Err(other) => panic!("unexpected refusal {other:?}"),
            }
        }
    })
    .await;
    let winners: Vec<String> = results.into_iter().flatten().collect();
    assert_eq!(winners.len(), 1, "the queued message is delivered exactly once");
    let s = &*stores[1];
    assert_eq!(s.queued_messages(&sess.id).await.unwrap(), vec![q2], "the delivered message left the queue, the other stays");
    assert_eq!(s.messages(&sess.id).await.unwrap().len(), 1);
    assert_eq!(s.session(&sess.id).await.unwrap().unwrap().current_run_id.as_ref(), Some(&winners[0]));
}

/// Many enqueues at once never overrun the queue's maximum, also while messages leave it.
pub async fn enqueue_message_never_exceeds_max(b: &dyn Backend) {
    const MAX: i64 = 10;
    let stores = two_stores(b).await;
    let w = world(&*stores[0]).await;
    let sess = idle_session(&*stores[0], &w.agent, &w.user).await;
    let t = now();

    let results = race(&stores, N, |i, s| {
        let sess_id = sess.id.clone();
        async move {
            let m = queued_message(&sess_id, &format!("message {i}"), t + i as i64);
            s.enqueue_message(&m, MAX).await.unwrap().then_some(m.id)
        }
    })
    .await;
    let accepted: Vec<String> = results.into_iter().flatten().collect();
    assert_eq!(accepted.len() as i64, MAX, "exactly MAX enqueues succeed");
    let listed: Vec<String> = stores[1].queued_messages(&sess.id).await.unwrap().into_iter().map(|m| m.id).collect();
    assert_eq!(listed.iter().collect::<BTreeSet<_>>(), accepted.iter().collect::<BTreeSet<_>>(), "the queue holds exactly the accepted messages");
    assert_eq!(listed.len(), accepted.len(), "each once");

    // Deletes and enqueues interleaved, with readers watching the length.
    let to_delete = Arc::new(accepted[..5].to_vec());
    let accepted2 = Arc::new(AtomicUsize::new(0));
    let over = Arc::new(AtomicUsize::new(0));
    race(&stores, N, |i, s| {
        let (sess_id, to_delete, accepted2, over) = (sess.id.clone(), to_delete.clone(), accepted2.clone(), over.clone());
        async move {
            if i % 20 == (i / 20) % 2 {
                // Deleters 0, 21, 40, 61, 80: on both instances.
                assert!(s.delete_queued_message(&sess_id, &to_delete[i / 20]).await.unwrap(), "a queued message is deleted");
            } else if i % 10 < 6 {
                let m = queued_message(&sess_id, "more", now());
                if s.enqueue_message(&m, MAX).await.unwrap() {
                    accepted2.fetch_add(1, SeqCst);
                }
            } else {
                let n = s.queued_messages(&sess_id).await.unwrap().len() as i64;
                if n > MAX {
                    over.fetch_add(1, SeqCst);
                }
            }
        }
    })
    .await;
    assert_eq!(over.load(SeqCst), 0, "a reader saw more than MAX queued messages");
    let listed = stores[0].queued_messages(&sess.id).await.unwrap();
    let ids: HashSet<&String> = listed.iter().map(|m| &m.id).collect();
    assert_eq!(ids.len(), listed.len(), "no message is listed twice");
    assert_eq!(listed.len(), MAX as usize - 5 + accepted2.load(SeqCst), "deleted and accepted messages add up");
    assert!(listed.len() as i64 <= MAX);
}

/// Many versions of one stored filename at once: versions 1..=N, no duplicate, no gap,
/// all on one artifact.
pub async fn add_artifact_version_has_no_gap(b: &dyn Backend) {
    let stores = two_stores(b).await;
    let w = world(&*stores[0]).await;
    let sess = idle_session(&*stores[0], &w.agent, &w.user).await;

    let results = race(&stores, N, |_, s| {
        let sess = sess.clone();
        async move {
            let (a, v) = artifact_records(&sess, "data.csv");
            let (art, ver) = s.add_artifact_version(&a, &v).await.unwrap();
            assert_eq!(ver.id, v.id);
            (art.id, ver)
        }
    })
    .await;
    let artifact_ids: HashSet<&String> = results.iter().map(|(a, _)| a).collect();
    assert_eq!(artifact_ids.len(), 1, "all versions went to one artifact, got {}", artifact_ids.len());
    let art_id = results[0].0.clone();
    let mut majors: Vec<i64> = results.iter().map(|(_, v)| v.major_version).collect();
    majors.sort();
    assert_eq!(majors, (1..=N as i64).collect::<Vec<_>>(), "versions 1..=N, no duplicate, no gap");

    let s = &*stores[1];
    let stored = s.artifact_versions(&art_id).await.unwrap();
    assert_eq!(stored.iter().map(|v| v.major_version).collect::<Vec<_>>(), (1..=N as i64).rev().collect::<Vec<_>>());
    let by_major: HashMap<i64, &ArtifactVersionRecord> = results.iter().map(|(_, v)| (v.major_version, v)).collect();
    for v in &stored {
        assert_eq!(&v, by_major.get(&v.major_version).unwrap(), "the stored version is the one returned");
    }
    assert_eq!(s.artifact(&art_id).await.unwrap().unwrap().current_version_id, by_major[&(N as i64)].id, "the last version is current");
}

/// Many requests with one idempotency key at once: exactly one runs.
pub async fn claim_idempotency_has_one_new(b: &dyn Backend) {
    let stores = two_stores(b).await;
    let t = now();
    let hour = 3600 * SECOND;

    let scope = id("idem");
    let claims = race(&stores, N, |_, s| {
        let scope = scope.clone();
        async move { s.claim_idempotency(&scope, b"fp", t, t - 24 * hour, t - hour).await.unwrap() }
    })
    .await;
    assert_eq!(claims.iter().filter(|c| **c == New).count(), 1, "exactly one New: {claims:?}");
    assert!(claims.iter().all(|c| *c == New || *c == InUse), "the others are InUse: {claims:?}");

    stores[0].complete_idempotency(&scope, 201, b"{}", t + 1).await.unwrap();
    let replays = race(&stores, N, |_, s| {
        let scope = scope.clone();
        async move { s.claim_idempotency(&scope, b"fp", t + 2, t - 24 * hour, t - hour).await.unwrap() }
    })
    .await;
    assert!(replays.iter().all(|c| *c == Replay { status: 201, body: b"{}".to_vec() }), "then everyone replays");

    // Two different requests racing on one key.
    let scope2 = id("idem");
    let claims = race(&stores, N, |i, s| {
        let scope2 = scope2.clone();
        async move {
            let fp: &[u8] = if i % 4 < 2 { b"fp-a" } else { b"fp-b" };
            (fp, s.claim_idempotency(&scope2, fp, t, t - 24 * hour, t - hour).await.unwrap())
        }
    })
    .await;
    let winners: Vec<_> = claims.iter().filter(|(_, c)| *c == New).collect();
    assert_eq!(winners.len(), 1, "exactly one New: {claims:?}");
    let won = winners[0].0;
    for (fp, c) in &claims {
        match c {
            New => {}
            InUse => assert_eq!(*fp, won, "InUse only for the winning request"),
            Reused => assert_ne!(*fp, won, "Reused only for the other request"),
            other => panic!("unexpected {other:?}"),
        }
    }
}

/// Many editors of one agent read version 1 and write at once: one wins, one version added.
pub async fn update_agent_has_one_winner(b: &dyn Backend) {
    let stores = two_stores(b).await;
    let w = world(&*stores[0]).await;

    let results = race(&stores, N, |i, s| {
        let a = w.agent.clone();
        async move {
            let mut next = a.clone();
            next.version = 2;
            next.config.name = format!("Edit {i}");
            let v = version_of(&next, 2);
            s.update_agent(&next, 1, &v).await.unwrap().then_some((next, v))
        }
    })
    .await;
    let winners: Vec<_> = results.into_iter().flatten().collect();
    assert_eq!(winners.len(), 1, "exactly one update_agent succeeds");
    let (next, v) = &winners[0];
    let s = &*stores[1];
    assert_eq!(s.agent(&w.agent.id).await.unwrap().as_ref(), Some(next), "the winner's state is stored");
    let versions = s.agent_versions(&w.agent.id).await.unwrap();
    assert_eq!(versions.iter().map(|v| v.major_version).collect::<Vec<_>>(), vec![2, 1], "no duplicate version");
    assert_eq!(&versions[0], v);
}

/// Many first sign-ins of one user at once: one creates.
pub async fn ensure_user_creates_once(b: &dyn Backend) {
    let stores = two_stores(b).await;
    let org = org(&*stores[0], "Acme").await;
    let u = user_record(&org);
    let created = race(&stores, N, |_, s| {
        let u = u.clone();
        async move { s.ensure_user(&u).await.unwrap() }
    })
    .await;
    assert_eq!(created.iter().filter(|c| **c).count(), 1, "exactly one ensure_user reports creating");
    assert_eq!(stores[1].count_users().await.unwrap(), 1);
    assert_eq!(stores[1].user(&u.id).await.unwrap(), Some(u));
}

/// Messages and events appended at once to several sessions, and within one session to
/// two turns (a finished one and the current one): ordinals are unique per session,
/// event seqs are 1..=n with no gap, upserts keep their message's ordinal, and no usage
/// increment is lost.
pub async fn message_ordinals_and_event_seqs_are_unique(b: &dyn Backend) {
    const SESSIONS: usize = 4;
    const WRITES: usize = 200;
    const OWNER: &str = "streamer";
    let stores = two_stores(b).await;
    let w = world(&*stores[0]).await;
    let s0 = &*stores[0];

    // Session 0 has a finished first turn (written to administratively) and a current one.
    let (first, old_run) = session_with_run(s0, &w.agent, &w.user, RunState::Processing).await;
    s0.claim_run("w0", now(), far(), NO_LIMITS).await.unwrap().expect("claimable");
    s0.update_run(finish(&old_run.id, "w0")).await.unwrap().expect("finished");
    let (_, run) = next_turn(s0, &first, RunState::Processing).await;
    let mut targets = vec![(first.id.clone(), run.id.clone())];
    for _ in 1..SESSIONS {
        let (sess, run) = session_with_run(s0, &w.agent, &w.user, RunState::Processing).await;
        targets.push((sess.id, run.id));
    }
    let mut n = 0;
    while s0.claim_run(OWNER, now(), far(), NO_LIMITS).await.unwrap().is_some() {
        n += 1;
    }
    assert_eq!(n, SESSIONS, "the current runs are held by the streamer");
    let streaming: Arc<Vec<MessageRecord>> = Arc::new(targets.iter().map(|(sess, run)| reply_in(sess, run, "streaming")).collect());
    let targets = Arc::new(targets);
    let old_run_id = old_run.id.clone();
    // Write i (on store i % 2) is the j-th write of session k, so every session is
    // written through both instances; every fifth write of a session updates its
    // streaming message, some others of session 0 are notes on its finished turn.
    let session_of = |i: usize| (i / 2) % SESSIONS;
    let nth = |i: usize| (i / (2 * SESSIONS)) * 2 + i % 2;
    let streams = move |i: usize| nth(i) % 5 == 0;
    let is_note = move |i: usize| !streams(i) && session_of(i) == 0 && nth(i) % 3 == 1;

    let results = race(&stores, WRITES, |i, s| {
        let (targets, streaming, old_run_id) = (targets.clone(), streaming.clone(), old_run_id.clone());
        async move {
            let k = session_of(i);
            let (session_id, run_id) = &targets[k];
            let usage = json!({"output_tokens": 1});
            let events = vec![event("text-delta", i), event("text-delta", i + 1000)];
            let r = if streams(i) {
                // The streaming assistant message of the current turn, updated in place.
                let m = MessageRecord { content: Some(format!("streaming {i}")), ..streaming[k].clone() };
                s.update_run(RunUpdate { message: Some(&m), usage_delta: Some(&usage), events, ..RunUpdate::new(run_id, Some(OWNER)) }).await
            } else if is_note(i) {
                // A late, administrative note on session 0's finished first turn.
                let m = reply_in(session_id, &old_run_id, &format!("note {i}"));
                s.update_run(RunUpdate { message: Some(&m), events, ..RunUpdate::new(&old_run_id, None) }).await
            } else {
                let m = reply_in(session_id, run_id, &format!("message {i}"));
                s.update_run(RunUpdate { message: Some(&m), usage_delta: Some(&usage), events, ..RunUpdate::new(run_id, Some(OWNER)) }).await
            };
            r.unwrap().expect("the writer holds the lease").len()
        }
    })
    .await;

    let mut events_per_session = [0i64; SESSIONS];
    let mut usage_per_session = [0i64; SESSIONS];
    for (i, n) in results.iter().enumerate() {
        events_per_session[session_of(i)] += *n as i64;
        if !is_note(i) {
            usage_per_session[session_of(i)] += 1;
        }
    }
    let s = &*stores[1];
    for (k, (session_id, run_id)) in targets.iter().enumerate() {
        let msgs = s.messages(session_id).await.unwrap();
        let ords: Vec<i64> = msgs.iter().map(|m| m.ord).collect();
        let unique: BTreeSet<i64> = ords.iter().copied().collect();
        assert_eq!(unique.len(), ords.len(), "session {k}: duplicate ordinals {ords:?}");
        assert!(ords.windows(2).all(|p| p[0] < p[1]), "session {k}: messages are listed by ordinal");
        let ids: HashSet<&String> = msgs.iter().map(|m| &m.id).collect();
        assert_eq!(ids.len(), msgs.len(), "session {k}: a message is listed twice");
        assert_eq!(msgs.iter().filter(|m| m.id == streaming[k].id).count(), 1, "session {k}: the streaming message exists once");
        let writes = (0..WRITES).filter(|i| session_of(*i) == k).count();
        let streamed = (0..WRITES).filter(|i| session_of(*i) == k && streams(*i)).count();
        let users = if k == 0 { 2 } else { 1 };
        assert_eq!(msgs.len(), users + 1 + writes - streamed, "session {k}: every appended message is there once");

        let events = all_events(s, session_id).await;
        let seqs: Vec<i64> = events.iter().map(|e| e.seq).collect();
        let last = s.session(session_id).await.unwrap().unwrap().last_seq;
        assert_eq!(seqs, (1..=last).collect::<Vec<_>>(), "session {k}: event seqs are 1..=last_seq without gap or duplicate");
        // Session 0: its first turn's state and finish events, its second turn's state event.
        let before = if k == 0 { 3 } else { 1 };
        assert_eq!(last, before + events_per_session[k], "session {k}: every event was appended once");

        let run = s.run(run_id).await.unwrap().unwrap();
        assert_eq!(run.usage["output_tokens"], json!(usage_per_session[k]), "session {k}: no usage increment is lost");
    }
    let msgs = s.messages(&targets[0].0).await.unwrap();
    assert!(msgs.iter().any(|m| m.run_id.as_deref() == Some(old_run.id.as_str()) && m.role == "assistant"), "the old turn got its notes");
}

/// The limits of the admission races: one agent may run 3, its organization 5.
const ADMIT_LIMITS: SlotLimits = SlotLimits { agent: 3, org: 5 };

/// What an admission race left, contender by contender.
struct Admitted {
    session: SessionRecord,
    run: RunRecord,
    outcome: std::result::Result<TurnWritten, Refusal>,
}

/// Checks, right after a contender's write, that the store's counts are within the
/// limits and the queue within its maximum.
async fn assert_within_limits(s: &dyn Store, agent_id: &str, org_id: &str, max_queue: i64) {
    let c = s.active_counts(agent_id, org_id).await.unwrap();
    assert!(c.agent_processing <= ADMIT_LIMITS.agent, "{} runs of the agent admitted as processing (limit {})", c.agent_processing, ADMIT_LIMITS.agent);
    assert!(c.org_processing <= ADMIT_LIMITS.org, "{} runs of the organization processing (limit {})", c.org_processing, ADMIT_LIMITS.org);
    assert!(c.agent_queued <= max_queue, "{} runs of the agent queued (max {max_queue})", c.agent_queued);
}

/// After an admission race: exactly `processing` runs were admitted as processing and
/// `queued` as queued, everything else was refused `Full` (or, for a session that was
/// already taken, `NotAccepting`) and left no trace; what was admitted is stored as
/// decided; the counts are exact.
async fn check_admissions(s: &dyn Store, results: &[Admitted], agent_id: &str, org_id: &str, processing: usize, queued: usize) {
    let admitted_as = |st: RunState| results.iter().filter(|a| matches!(&a.outcome, Ok(w) if w.state == st)).count();
    assert_eq!(admitted_as(RunState::Processing), processing, "runs admitted as processing");
    assert_eq!(admitted_as(RunState::Queued), queued, "runs admitted as queued");
    for a in results {
        match &a.outcome {
            Ok(w) => {
                assert_eq!(w.queue_position.is_some(), w.state == RunState::Queued, "a place is reported for queued runs only");
                assert_eq!(s.run(&a.run.id).await.unwrap().map(|r| r.state), Some(w.state), "the run is stored as admitted");
                let sess = s.session(&a.session.id).await.unwrap().expect("an admitted session exists");
                assert_eq!((sess.state, sess.current_run_id.as_deref()), (w.state.session_state(), Some(a.run.id.as_str())));
            }
            Err(Refusal::Full) => assert!(s.run(&a.run.id).await.unwrap().is_none(), "a refused run was written"),
            Err(Refusal::NotAccepting(st)) => {
                assert!(matches!(st, SessionState::Processing | SessionState::Queued), "refused from {st}");
                assert!(s.run(&a.run.id).await.unwrap().is_none(), "a refused run was written");
            }
            Err(other) => panic!("unexpected refusal {other:?}"),
        }
    }
    let c = s.active_counts(agent_id, org_id).await.unwrap();
    assert_eq!((c.agent_processing, c.agent_queued), (processing as i64, queued as i64), "the counts are the admitted runs");
}

/// The places reported to the queued runs of a race: 1..=n, each once.
fn assert_places_are_distinct(results: &[Admitted]) {
    let mut places: Vec<i64> = results.iter().filter_map(|a| a.outcome.as_ref().ok().and_then(|w| w.queue_position)).collect();
    places.sort();
    assert_eq!(places, (1..=places.len() as i64).collect::<Vec<_>>(), "queued runs are told distinct places 1..=n");
}

/// Many new sessions with a first message for one agent at once, on two instances: the
/// admission rule decides inside the write, so no more than the agent's limit start as
/// processing, the queue stops at its maximum, and nothing refused is written.
async fn race_new_sessions(b: &dyn Backend, n: usize, max_queue: i64) -> (World, [Arc<dyn Store>; 2], Vec<Admitted>) {
    let stores = two_stores(b).await;
    let w = world(&*stores[0]).await;
    let results = race(&stores, n, |_, s| {
        let (a, u, org) = (w.agent.clone(), w.user.clone(), w.org.clone());
        async move {
            let session = session_record(&a, &u, SessionState::Idle);
            let (msg, run) = turn(&session);
            let outcome = s.create_session_with_turn(&session, new_turn(&msg, &run, admission(ADMIT_LIMITS, max_queue))).await.unwrap();
            assert_within_limits(&*s, &a.id, &org, max_queue).await;
            Admitted { session, run, outcome }
        }
    })
    .await;
    (w, stores, results)
}

pub async fn admission_of_new_sessions_respects_limits(b: &dyn Backend) {
    const N: usize = 80;
    const MAX_QUEUE: i64 = 60;
    let (w, stores, results) = race_new_sessions(b, N, MAX_QUEUE).await;
    let full = results.iter().filter(|a| a.outcome.as_ref().err() == Some(&Refusal::Full)).count();
    assert_eq!(full, N - 3 - MAX_QUEUE as usize, "the rest is refused: no slot, queue full");
    for a in results.iter().filter(|a| a.outcome.is_err()) {
        assert!(stores[1].session(&a.session.id).await.unwrap().is_none(), "a refused new session was written");
    }
    check_admissions(&*stores[1], &results, &w.agent.id, &w.org, 3, MAX_QUEUE as usize).await;

    // Every admitted run is a job; the processing ones are claimable at once.
    let mut claimed = 0;
    while stores[0].claim_run("w1", now(), far(), ADMIT_LIMITS).await.unwrap().is_some() {
        claimed += 1;
    }
    assert_eq!(claimed, 3, "only the processing runs are claimable while their slots are taken");
}

/// As above, each queued run is told its place in the agent's queue when admitted:
/// places are distinct, 1..=n, since each admission is one serialised write.
pub async fn admission_reports_distinct_queue_places(b: &dyn Backend) {
    let (_, _, results) = race_new_sessions(b, 60, 1000).await;
    assert_eq!(results.iter().filter(|a| matches!(&a.outcome, Ok(w) if w.state == RunState::Queued)).count(), 57);
    assert_places_are_distinct(&results);
}

/// Many messages at once to many idle sessions of one agent (some sessions receiving
/// two), on two instances, while another agent of the organization holds 3 of its 5
/// slots: the organization's limit binds first (2 processing), each session admits at
/// most one turn, the queue stops at its maximum.
pub async fn admission_on_idle_sessions_respects_limits(b: &dyn Backend) {
    const SESSIONS: usize = 60;
    const N: usize = 80;
    const MAX_QUEUE: i64 = 40;
    let stores = two_stores(b).await;
    let w = world(&*stores[0]).await;
    let busy = agent(&*stores[0], &w.user, None).await;
    for _ in 0..3 {
        session_with_run(&*stores[0], &busy, &w.user, RunState::Processing).await;
    }
    let sessions: Arc<Vec<SessionRecord>> = Arc::new(
        join_all((0..SESSIONS).map(|i| {
            let (s, a, u) = (stores[i % 2].clone(), w.agent.clone(), w.user.clone());
            async move { idle_session(&*s, &a, &u).await }
        }))
        .await,
    );

    let results = race(&stores, N, |i, s| {
        let (sessions, agent_id, org) = (sessions.clone(), w.agent.id.clone(), w.org.clone());
        async move {
            let session = sessions[i % SESSIONS].clone();
            let (msg, run) = turn(&session);
            let outcome = s.start_turn(&session.id, new_turn(&msg, &run, admission(ADMIT_LIMITS, MAX_QUEUE))).await.unwrap();
            assert_within_limits(&*s, &agent_id, &org, MAX_QUEUE).await;
            Admitted { session, run, outcome }
        }
    })
    .await;

    let s = &*stores[1];
    check_admissions(s, &results, &w.agent.id, &w.org, 2, MAX_QUEUE as usize).await;
    for sess in sessions.iter() {
        let admitted = results.iter().filter(|a| a.session.id == sess.id && a.outcome.is_ok()).count();
        assert!(admitted <= 1, "session {} admitted {admitted} turns", sess.id);
        let got = s.session(&sess.id).await.unwrap().unwrap();
        if admitted == 0 {
            assert_eq!((got.state, got.current_run_id, got.last_seq), (SessionState::Idle, None, 0), "a session whose turns were refused is untouched");
        }
    }
    let c = s.active_counts(&busy.id, &w.org).await.unwrap();
    assert_eq!((c.agent_processing, c.org_processing, c.agent_queued), (3, 5, 0), "the organization is at its limit");
}

/// Workers claim (and finish) runs while messages keep arriving for two agents of one
/// organization, on two instances: at no time do more runs of an agent or of the
/// organization process than the limits allow, whether a run got its slot at admission
/// or at a claim, and every admitted run is eventually claimed and finished once.
pub async fn claims_and_admissions_respect_limits(b: &dyn Backend) {
    // Contenders i % 3 == 2 claim, the others accept.
    const ACCEPTERS: usize = 40;
    const TURNS: usize = 2;
    const CLAIMERS: usize = ACCEPTERS / 2;
    const MAX_QUEUE: i64 = 15;
    let stores = two_stores(b).await;
    let w = world(&*stores[0]).await;
    let other = agent(&*stores[0], &w.user, None).await;
    let agents = Arc::new([w.agent.clone(), other]);

    /// Runs known to be processing (a subset of the store's at every instant: added
    /// after the write that made them so, removed before the write that ends them).
    #[derive(Default)]
    struct Ledger {
        processing: HashMap<String, String>,
        gone: HashSet<String>,
        max_agent: i64,
        max_org: i64,
    }
    impl Ledger {
        fn add(&mut self, run: &RunRecord) {
            if self.gone.contains(&run.id) {
                return;
            }
            self.processing.insert(run.id.clone(), run.agent_id.clone());
            let agent_n = self.processing.values().filter(|a| **a == run.agent_id).count() as i64;
            let org_n = self.processing.len() as i64;
            self.max_agent = self.max_agent.max(agent_n);
            self.max_org = self.max_org.max(org_n);
            assert!(agent_n <= ADMIT_LIMITS.agent, "{agent_n} runs of one agent processing at once (limit {})", ADMIT_LIMITS.agent);
            assert!(org_n <= ADMIT_LIMITS.org, "{org_n} runs of the organization processing at once (limit {})", ADMIT_LIMITS.org);
        }
        fn end(&mut self, run_id: &str) {
            self.processing.remove(run_id);
            self.gone.insert(run_id.to_string());
        }
    }
    let ledger = Arc::new(Mutex::new(Ledger::default()));
    let admitted = Arc::new(Mutex::new(Vec::<(String, RunState)>::new()));
    let accepters_done = Arc::new(AtomicUsize::new(0));
    let finished = Arc::new(Mutex::new(HashSet::<String>::new()));
    let started = Instant::now();

    race(&stores, ACCEPTERS + CLAIMERS, |i, s| {
        let (agents, org, user) = (agents.clone(), w.org.clone(), w.user.clone());
        let (ledger, admitted, accepters_done, finished) = (ledger.clone(), admitted.clone(), accepters_done.clone(), finished.clone());
        async move {
            // Accepters and claimers interleave on both instances.
            if i % 3 != 2 {
                for k in 0..TURNS {
                    let a = &agents[(i + k) % 2];
                    let session = session_record(a, &user, SessionState::Idle);
                    let (msg, run) = turn(&session);
                    let outcome = s.create_session_with_turn(&session, new_turn(&msg, &run, admission(ADMIT_LIMITS, MAX_QUEUE))).await.unwrap();
                    if let Ok(wr) = &outcome {
                        admitted.lock().unwrap().push((run.id.clone(), wr.state));
                        if wr.state == RunState::Processing {
                            ledger.lock().unwrap().add(&run);
                        }
                    }
                    for a in agents.iter() {
                        assert_within_limits(&*s, &a.id, &org, MAX_QUEUE).await;
                    }
                    tokio::time::sleep(Duration::from_millis(1 + (i % 3) as u64)).await;
                }
                accepters_done.fetch_add(1, SeqCst);
            } else {
                let owner = format!("worker-{i}");
                loop {
                    assert_not_stuck(started, "claiming while admitting");
                    let done = accepters_done.load(SeqCst) == ACCEPTERS;
                    if done && finished.lock().unwrap().len() == admitted.lock().unwrap().len() {
                        break;
                    }
                    let t = now();
                    let Some(c) = s.claim_run(&owner, t, t + 600 * SECOND, ADMIT_LIMITS).await.unwrap() else {
                        tokio::time::sleep(Duration::from_millis(2)).await;
                        continue;
                    };
                    assert_eq!(c.run.state, RunState::Processing);
                    ledger.lock().unwrap().add(&c.run);
                    assert_within_limits(&*s, &c.run.agent_id, &org, MAX_QUEUE).await;
                    tokio::time::sleep(Duration::from_millis(2)).await;
                    ledger.lock().unwrap().end(&c.run.id);
                    s.update_run(finish(&c.run.id, &owner)).await.unwrap().expect("the owner finishes its run");
                    assert!(finished.lock().unwrap().insert(c.run.id.clone()), "run {} finished twice", c.run.id);
                }
            }
        }
    })
    .await;

    let admitted = admitted.lock().unwrap().clone();
    let finished = finished.lock().unwrap().clone();
    assert_eq!(finished, admitted.iter().map(|(r, _)| r.clone()).collect::<HashSet<_>>(), "every admitted run was claimed and finished once");
    for (r, _) in &admitted {
        assert_eq!(stores[1].run(r).await.unwrap().unwrap().state, RunState::Completed);
    }
    for a in agents.iter() {
        let c = stores[0].active_counts(&a.id, &w.org).await.unwrap();
        assert_eq!((c.agent_queued, c.agent_processing, c.org_processing), (0, 0, 0), "counts return to zero");
    }
    // The race did push against the limits (otherwise it proved nothing).
    let queued = admitted.iter().filter(|(_, st)| *st == RunState::Queued).count();
    let ledger = ledger.lock().unwrap();
    assert!(queued > 0, "no run had to queue: the race tested nothing");
    assert!(
        ledger.max_agent >= 2 && ledger.max_org >= 3,
        "runs never overlapped (agent {}, org {}): the race tested nothing",
        ledger.max_agent,
        ledger.max_org
    );
}
