//! Keyset listings (S3 sessions, A1 artifacts): rows sorted by (sort value, id), paged
//! strictly after a cursor, filtered in the query by reader and by the caller's filters.
//!
//! Expected orders are computed here from the records as the store reads them back
//! (`session`, `artifact`, `artifact_versions`), never from the listing itself.

use std::future::Future;

use serde_json::{json, Value};
use store::*;

use super::fixtures::*;
use super::Backend;

/// Rows per page: small, so every listing spans several pages.
const PAGE: usize = 3;

const ORDERS: [bool; 2] = [false, true];

/// Every row of a listing, fetched `PAGE` rows at a time, each page asked strictly after
/// the previous page's last (sort value, id), until a page comes back short.
async fn page_through<T, F, Fut>(desc: bool, mut fetch: F) -> Vec<(SortVal, String, T)>
where
    F: FnMut(PageWindow) -> Fut,
    Fut: Future<Output = Vec<(SortVal, String, T)>>,
{
    let mut rows = vec![];
    let mut after = None;
    for _ in 0..1000 {
        let page = fetch(PageWindow { after: after.clone(), limit: PAGE, desc }).await;
        assert!(page.len() <= PAGE, "a page holds at most `limit` rows, got {}", page.len());
        let full = page.len() == PAGE;
        if let Some((k, id, _)) = page.last() {
            after = Some((k.clone(), id.clone()));
        }
        rows.extend(page);
        if !full {
            return rows;
        }
    }
    panic!("paging did not end");
}

/// The whole session listing, paged; (sort value, id) of each row plus the record.
async fn page_sessions(s: &dyn Store, filter: &SessionFilter, sort: SessionSort, desc: bool) -> Vec<(SortVal, String, SessionRecord)> {
    page_through(desc, |page| async move { s.list_sessions(filter, sort, &page).await.unwrap().into_iter().map(|(k, r)| (k, r.id.clone(), r)).collect() }).await
}

/// The whole artifact listing, paged.
async fn page_artifacts(
    s: &dyn Store,
    filter: &ArtifactFilter,
    sort: ArtifactSort,
    desc: bool,
) -> Vec<(SortVal, String, (ArtifactRecord, ArtifactVersionRecord))> {
    page_through(
        desc,
        |page| async move { s.list_artifacts(filter, sort, &page).await.unwrap().into_iter().map(|(k, a, v)| (k, a.id.clone(), (a, v))).collect() },
    )
    .await
}

fn keys<T>(rows: &[(SortVal, String, T)]) -> Vec<(SortVal, String)> {
    rows.iter().map(|(k, id, _)| (k.clone(), id.clone())).collect()
}

/// The ids of a listing, sorted (for filters, where the order is checked elsewhere).
fn id_set<T>(rows: &[(SortVal, String, T)]) -> Vec<String> {
    let mut ids: Vec<String> = rows.iter().map(|(_, id, _)| id.clone()).collect();
    ids.sort();
    ids
}

fn sorted_ids(ids: &[&str]) -> Vec<String> {
    let mut v: Vec<String> = ids.iter().map(|s| s.to_string()).collect();
    v.sort();
    v
}

/// (key, id) pairs in listing order.
fn in_order(mut rows: Vec<(SortVal, String)>, desc: bool) -> Vec<(SortVal, String)> {
    rows.sort();
    if desc {
        rows.reverse();
    }
    rows
}

/// Whether `row` comes strictly after `cursor` in the listing's direction.
fn after_cursor(row: &(SortVal, String), cursor: &(SortVal, String), desc: bool) -> bool {
    if desc {
        row < cursor
    } else {
        row > cursor
    }
}

/// A session's sort value by the contract: created_at; lower(name, else the snapshot's
/// agent name, else ''); round(credit_cost × 10,000).
fn session_key(sort: SessionSort, r: &SessionRecord) -> SortVal {
    match sort {
        SessionSort::Created => SortVal::Int(r.created_at),
        SessionSort::Name => {
            let name = r.name.clone().or_else(|| r.agent_snapshot.get("name").and_then(Value::as_str).map(str::to_string)).unwrap_or_default();
            SortVal::Str(name.to_ascii_lowercase())
        }
        SessionSort::Credits => SortVal::Int((r.usage.get("credit_cost").and_then(Value::as_f64).unwrap_or(0.0) * 10_000.0).round() as i64),
    }
}

/// The listing `ids` must make under `sort`, from the sessions as stored now.
async fn expected_sessions(s: &dyn Store, ids: &[String], sort: SessionSort, desc: bool) -> Vec<(SortVal, String)> {
    let mut rows = vec![];
    for id in ids {
        let r = s.session(id).await.unwrap().expect("the session exists");
        rows.push((session_key(sort, &r), r.id));
    }
    in_order(rows, desc)
}

/// An artifact's sort value by the contract: its current version's created_at;
/// lower(custom name, else the current version's file name).
async fn artifact_key(s: &dyn Store, sort: ArtifactSort, id: &str) -> SortVal {
    let a = s.artifact(id).await.unwrap().expect("the artifact exists");
    let v = s.artifact_versions(id).await.unwrap().into_iter().find(|v| v.id == a.current_version_id).expect("the current version exists");
    match sort {
        ArtifactSort::Created => SortVal::Int(v.created_at),
        ArtifactSort::Name => SortVal::Str(a.custom_name.unwrap_or(v.filename).to_ascii_lowercase()),
    }
}

async fn expected_artifacts(s: &dyn Store, ids: &[String], sort: ArtifactSort, desc: bool) -> Vec<(SortVal, String)> {
    let mut rows = vec![];
    for id in ids {
        rows.push((artifact_key(s, sort, id).await, id.clone()));
    }
    in_order(rows, desc)
}

fn session_filter(agent_id: &str, reader: Reader) -> SessionFilter {
    SessionFilter { agent_id: agent_id.to_string(), reader, own_team: None, states: None, kind: None, creator: None, search: None, trigger_id: None }
}

fn artifact_filter(agent_id: &str, reader: Reader) -> ArtifactFilter {
    ArtifactFilter { agent_id: agent_id.to_string(), reader, session_id: None, search: None }
}

/// An agent whose name appears nowhere else in a test (search tests).
async fn named_agent(s: &dyn Store, owner: &User, name: &str) -> AgentRecord {
    let (mut a, _) = agent_records(owner, None);
    a.config.name = name.to_string();
    let v = version_of(&a, 1);
    s.create_agent(&a, &v).await.unwrap();
    a
}

/// A session record of `agent` created by `by` at `at`, with the snapshot naming the agent.
fn session_at(agent: &AgentRecord, by: &User, at: i64) -> SessionRecord {
    let mut r = session_record(agent, by, SessionState::Idle);
    r.created_at = at;
    r.updated_at = at;
    r
}

fn grant(kind: &str, principal: &str) -> (String, String, String) {
    (kind.to_string(), principal.to_string(), "viewer".to_string())
}

/// Asserts that every sort × direction pages through exactly `ids`, in (key, id) order,
/// each row carrying its sort value.
async fn assert_sessions_page(s: &dyn Store, filter: &SessionFilter, ids: &[String], what: &str) {
    for sort in [SessionSort::Created, SessionSort::Name, SessionSort::Credits] {
        for desc in ORDERS {
            let got = page_sessions(s, filter, sort, desc).await;
            let want = expected_sessions(s, ids, sort, desc).await;
            assert_eq!(keys(&got), want, "{what}: {sort:?} desc={desc} visits every session once, in (key, id) order");
            for (_, id, r) in &got {
                assert_eq!(Some(r), s.session(id).await.unwrap().as_ref(), "listed sessions read back in full");
            }
        }
    }
}

async fn assert_artifacts_page(s: &dyn Store, filter: &ArtifactFilter, ids: &[String], what: &str) {
    for sort in [ArtifactSort::Created, ArtifactSort::Name] {
        for desc in ORDERS {
            let got = page_artifacts(s, filter, sort, desc).await;
            let want = expected_artifacts(s, ids, sort, desc).await;
            assert_eq!(keys(&got), want, "{what}: {sort:?} desc={desc} visits every artifact once, in (key, id) order");
            for (_, id, (a, v)) in &got {
                assert_eq!(Some(a), s.artifact(id).await.unwrap().as_ref(), "listed artifacts read back in full");
                assert_eq!(v.id, a.current_version_id, "each artifact comes with its current version");
                assert_eq!(v.artifact_id, a.id);
            }
        }
    }
}

/// The number of distinct sort values among `ids` (to prove a fixture has ties).
async fn distinct_session_keys(s: &dyn Store, ids: &[String], sort: SessionSort) -> usize {
    let mut k: Vec<SortVal> = expected_sessions(s, ids, sort, false).await.into_iter().map(|(k, _)| k).collect();
    k.dedup();
    k.len()
}

pub async fn sessions_page_in_every_order(b: &dyn Backend) {
    let store = b.open().await;
    let s = &*store;
    let org = org(s, "Acme").await;
    let ada = user(s, &org).await;
    let bob = user(s, &org).await;
    let agent = agent(s, &ada, None).await;
    let other_agent = super::fixtures::agent(s, &ada, None).await;
    let t = now();

    // (created offset, name, credit cost): ties on every key, names differing only by
    // case, a non-ASCII name (ordered by bytes), unnamed sessions that list under the
    // agent's name, and usage without a credit cost.
    let specs: [(i64, Option<&str>, Option<f64>); 11] = [
        (1, Some("Alpha"), None),
        (1, Some("ALPHA"), Some(0.0012)),
        (1, None, Some(0.0012)),
        (2, Some("beta"), Some(0.5)),
        (3, Some("Émile"), Some(0.5)),
        (3, Some("zeta"), Some(1.25)),
        (4, None, Some(0.0)),
        (5, Some("alpha"), Some(2.0)),
        (5, Some("Mid"), Some(0.0012)),
        (6, Some("invoice HELPER"), Some(0.3333)),
        (7, Some("beta"), None),
    ];
    let mut readable = vec![];
    for (i, (at, name, credits)) in specs.into_iter().enumerate() {
        // Every third session is Bob's, shared with Ada.
        let by = if i % 3 == 2 { &bob } else { &ada };
        let mut r = session_at(&agent, by, t + at);
        r.name = name.map(str::to_string);
        r.usage = credits.map_or(json!({"input_tokens": 10}), |c| json!({"credit_cost": c, "input_tokens": 10}));
        s.create_session(&r, vec![]).await.unwrap();
        if by.id == bob.id {
            s.change_session_grants(&r.id, &[grant("person", &ada.id)], &[]).await.unwrap();
        }
        readable.push(r.id);
    }
    // No agent name in the snapshot and no name: listed under ''.
    let mut nameless = session_at(&agent, &ada, t + 2);
    nameless.agent_snapshot = json!({});
    s.create_session(&nameless, vec![]).await.unwrap();
    readable.push(nameless.id.clone());
    // Never listed for Ada: Bob's private session, and Ada's session of another agent.
    let private = session_at(&agent, &bob, t + 3);
    s.create_session(&private, vec![]).await.unwrap();
    let elsewhere = session_at(&other_agent, &ada, t + 3);
    s.create_session(&elsewhere, vec![]).await.unwrap();

    for sort in [SessionSort::Created, SessionSort::Name, SessionSort::Credits] {
        assert!(distinct_session_keys(s, &readable, sort).await < readable.len(), "the fixture has ties in {sort:?}");
    }
    let filter = session_filter(&agent.id, reader(&ada, &[]));
    assert_sessions_page(s, &filter, &readable, "Ada").await;

    // The cursor is a position, not a row: any (key, id) works, and an id sorts among
    // the rows with the same key.
    let cursors = [
        (SessionSort::Name, SortVal::Str("b".into()), String::new()),
        (SessionSort::Name, SortVal::Str("alpha".into()), readable[1].clone()),
        (SessionSort::Created, SortVal::Int(t + 1), readable[1].clone()),
        (SessionSort::Created, SortVal::Int(t + 4), "~".into()),
        (SessionSort::Credits, SortVal::Int(5000), String::new()),
    ];
    for (sort, k, id) in cursors {
        let cursor = (k, id);
        for desc in ORDERS {
            let page = PageWindow { after: Some(cursor.clone()), limit: 100, desc };
            let got: Vec<(SortVal, String)> = s.list_sessions(&filter, sort, &page).await.unwrap().into_iter().map(|(k, r)| (k, r.id)).collect();
            let want: Vec<(SortVal, String)> =
                expected_sessions(s, &readable, sort, desc).await.into_iter().filter(|row| after_cursor(row, &cursor, desc)).collect();
            assert_eq!(got, want, "{sort:?} desc={desc}: the rows strictly after {cursor:?}");
        }
    }

    // A limit cuts the listing: the first rows only.
    let first = s.list_sessions(&filter, SessionSort::Created, &PageWindow { after: None, limit: 1, desc: true }).await.unwrap();
    assert_eq!(first.len(), 1);
    assert_eq!(first[0].0, SortVal::Int(t + 7), "the newest session first");

    // Bob reads his own sessions (the shared ones and the private one), not Ada's.
    let bobs: Vec<String> =
        readable.iter().enumerate().filter(|(i, _)| i % 3 == 2 && *i < specs.len()).map(|(_, id)| id.clone()).chain([private.id.clone()]).collect();
    assert_sessions_page(s, &session_filter(&agent.id, reader(&bob, &[])), &bobs, "Bob").await;
}

pub async fn session_filters(b: &dyn Backend) {
    let store = b.open().await;
    let s = &*store;
    let org = org(s, "Acme").await;
    let ada = user(s, &org).await;
    let bob = user(s, &org).await;
    let carol = user(s, &org).await;
    let eve = user(s, &org).await;
    let ops = team(s, &org, "Ops").await;
    s.set_membership(&ops.id, &ada.id, "member").await.unwrap();
    let agent = named_agent(s, &ada, "Ledger Bot").await;
    let t = now();

    let create = |by: &User, at: i64, name: Option<&str>, state: SessionState, kind: &str| {
        let mut r = session_at(&agent, by, t + at);
        r.name = name.map(str::to_string);
        r.state = state;
        r.kind = kind.to_string();
        r
    };
    let report = create(&ada, 1, Some("Quarterly REPORT"), SessionState::Completed, "api");
    let tool = create(&ada, 2, None, SessionState::Idle, "tool");
    let shared = create(&bob, 3, Some("Shared report"), SessionState::Failed, "api");
    let private = create(&bob, 4, Some("Secret report: Invoice #42"), SessionState::Failed, "api");
    let by_team = create(&carol, 5, Some("Team notes"), SessionState::Cancelled, "flow");
    for r in [&report, &tool, &shared, &private, &by_team] {
        s.create_session(r, vec![]).await.unwrap();
    }
    s.change_session_grants(&shared.id, &[grant("person", &ada.id)], &[]).await.unwrap();
    s.change_session_grants(&by_team.id, &[grant("team", &ops.id)], &[]).await.unwrap();

    // A user message with mixed case, in a session whose name does not match.
    let asked = create(&ada, 6, Some("Plain"), SessionState::Idle, "api");
    let (mut msg, run) = turn(&asked);
    msg.content = Some("Please check Invoice #42".into());
    s.create_session_with_turn(&asked, new_turn(&msg, &run, admit_as(RunState::Processing))).await.unwrap().expect("admitted");
    // An assistant message written by the worker (`update_run` with content).
    let answered = create(&ada, 7, Some("Plain too"), SessionState::Idle, "api");
    let (msg2, run2) = turn(&answered);
    s.create_session_with_turn(&answered, new_turn(&msg2, &run2, admit_as(RunState::Processing))).await.unwrap().expect("admitted");
    let reply = assistant_message(&run2, "The TOTAL is 1,234 EUR");
    s.update_run(RunUpdate { message: Some(&reply), ..RunUpdate::new(&run2.id, None) }).await.unwrap().expect("written");
    // Bob's private session has a matching message too: still never Ada's.
    let (mut msg3, run3) = turn(&private);
    msg3.content = Some("the total is secret".into());
    s.start_turn(&private.id, new_turn(&msg3, &run3, admit_as(RunState::Queued))).await.unwrap().expect("admitted");

    let base = session_filter(&agent.id, reader(&ada, &[&ops]));
    let listed = |f: SessionFilter| async move { id_set(&page_sessions(s, &f, SessionSort::Created, false).await) };
    let all = sorted_ids(&[&report.id, &tool.id, &shared.id, &by_team.id, &asked.id, &answered.id]);
    assert_eq!(listed(base.clone()).await, all, "Ada's sessions and those shared with her or her team");

    let with = |f: &dyn Fn(&mut SessionFilter)| {
        let mut x = base.clone();
        f(&mut x);
        x
    };
    assert_eq!(
        listed(with(&|f| f.states = Some(vec![SessionState::Completed, SessionState::Failed]))).await,
        sorted_ids(&[&report.id, &shared.id]),
        "states: any of the listed ones"
    );
    assert_eq!(
        listed(with(&|f| f.states = Some(vec![SessionState::Processing]))).await,
        sorted_ids(&[&asked.id, &answered.id]),
        "the state written by the turn"
    );
    assert!(listed(with(&|f| f.states = Some(vec![]))).await.is_empty(), "no state: nothing");
    assert_eq!(listed(with(&|f| f.kind = Some("tool".into()))).await, sorted_ids(&[&tool.id]), "kind");
    assert_eq!(listed(with(&|f| f.kind = Some("flow".into()))).await, sorted_ids(&[&by_team.id]));
    assert!(listed(with(&|f| f.kind = Some("Tool".into()))).await.is_empty(), "kind matches exactly");
    assert_eq!(listed(with(&|f| f.creator = Some(bob.id.clone()))).await, sorted_ids(&[&shared.id]), "creator, among readable sessions only");
    assert_eq!(listed(with(&|f| f.creator = Some(eve.id.clone()))).await, Vec::<String>::new());

    // Search: a case-folded needle against the case-folded name or any message's text.
    let search = |needle: &str| {
        let needle = needle.to_string();
        with(&move |f| f.search = Some(needle.clone()))
    };
    assert_eq!(listed(search("report")).await, sorted_ids(&[&report.id, &shared.id]), "in the name, whatever its case");
    assert_eq!(listed(search("quarterly report")).await, sorted_ids(&[&report.id]));
    assert_eq!(listed(search("ledger b")).await, sorted_ids(&[&tool.id]), "an unnamed session by the agent's name");
    assert_eq!(listed(search("invoice #42")).await, sorted_ids(&[&asked.id]), "in a user message");
    assert_eq!(listed(search("total is 1,234")).await, sorted_ids(&[&answered.id]), "in an assistant message written by update_run");
    assert_eq!(listed(search("plain")).await, sorted_ids(&[&asked.id, &answered.id]));
    assert!(listed(search("nowhere")).await.is_empty());
    assert!(listed(search("secret")).await.is_empty(), "a session Ada cannot read never matches");
    assert_eq!(listed(search("%")).await, Vec::<String>::new(), "the needle is a plain substring, not a pattern");
    assert_eq!(listed(search("t_e")).await, Vec::<String>::new());
    let combined = with(&|f| {
        f.search = Some("report".into());
        f.states = Some(vec![SessionState::Failed]);
        f.creator = Some(bob.id.clone());
    });
    assert_eq!(listed(combined.clone()).await, sorted_ids(&[&shared.id]), "filters combine");
    // Filters and paging: every order of a filtered listing pages through it.
    assert_sessions_page(s, &search("report"), &[report.id.clone(), shared.id.clone()], "search").await;

    // Other readers.
    assert!(listed(session_filter(&agent.id, reader(&eve, &[]))).await.is_empty(), "Eve reads nothing");
    assert_eq!(
        listed(session_filter(&agent.id, reader(&ada, &[]))).await,
        sorted_ids(&[&report.id, &tool.id, &shared.id, &asked.id, &answered.id]),
        "without her team Ada no longer reads the team's share"
    );
    let bob_search = SessionFilter { search: Some("is secret".into()), ..session_filter(&agent.id, reader(&bob, &[])) };
    assert_eq!(listed(bob_search).await, sorted_ids(&[&private.id]), "its creator finds it, by a message of a later turn");
    // A grant removed takes the session out of the listing.
    s.change_session_grants(&shared.id, &[], &[("person".into(), ada.id.clone())]).await.unwrap();
    assert_eq!(listed(search("report")).await, sorted_ids(&[&report.id]));
}

pub async fn own_team_scopes_own_sessions(b: &dyn Backend) {
    let store = b.open().await;
    let s = &*store;
    let org = org(s, "Acme").await;
    let ada = user(s, &org).await;
    let bob = user(s, &org).await;
    let ops = team(s, &org, "Ops").await;
    let dev = team(s, &org, "Dev").await;
    let legacy = team(s, &org, "Legacy").await;
    for t in [&ops, &dev] {
        s.set_membership(&t.id, &ada.id, "member").await.unwrap();
    }
    let agent = agent(s, &ada, None).await;
    let t = now();
    let mk = |by: &User, team: Option<&Team>, at: i64| {
        let mut r = session_at(&agent, by, t + at);
        r.team_id = team.map(|x| x.id.clone());
        r
    };
    let personal = mk(&ada, None, 1);
    let in_ops = mk(&ada, Some(&ops), 2);
    let in_dev = mk(&ada, Some(&dev), 3);
    let in_legacy = mk(&ada, Some(&legacy), 4);
    let bob_to_ada = mk(&bob, Some(&legacy), 5);
    let bob_to_dev = mk(&bob, None, 6);
    let bob_private = mk(&bob, Some(&ops), 7);
    for r in [&personal, &in_ops, &in_dev, &in_legacy, &bob_to_ada, &bob_to_dev, &bob_private] {
        s.create_session(r, vec![]).await.unwrap();
    }
    s.change_session_grants(&bob_to_ada.id, &[grant("person", &ada.id)], &[]).await.unwrap();
    s.change_session_grants(&bob_to_dev.id, &[grant("team", &dev.id)], &[]).await.unwrap();

    let listed = |teams: &[&Team], own_team: Option<&Team>| {
        let f = SessionFilter { own_team: own_team.map(|x| x.id.clone()), ..session_filter(&agent.id, reader(&ada, teams)) };
        async move { id_set(&page_sessions(s, &f, SessionSort::Name, true).await) }
    };
    assert_eq!(
        listed(&[&ops, &dev], None).await,
        sorted_ids(&[&personal.id, &in_ops.id, &in_dev.id, &bob_to_ada.id, &bob_to_dev.id]),
        "no team scope: own personal sessions and those of the reader's teams, plus what is shared"
    );
    assert_eq!(
        listed(&[&ops, &dev], Some(&ops)).await,
        sorted_ids(&[&in_ops.id, &bob_to_ada.id, &bob_to_dev.id]),
        "a team scope: own sessions of that team only; shared ones still listed"
    );
    assert_eq!(listed(&[&ops, &dev], Some(&legacy)).await, sorted_ids(&[&in_legacy.id, &bob_to_ada.id, &bob_to_dev.id]));
    assert_eq!(listed(&[], None).await, sorted_ids(&[&personal.id, &bob_to_ada.id]), "without teams: personal sessions and person grants");
    assert_eq!(listed(&[&dev], None).await, sorted_ids(&[&personal.id, &in_dev.id, &bob_to_ada.id, &bob_to_dev.id]));
}

pub async fn rename_and_usage_move_sessions(b: &dyn Backend) {
    let store = b.open().await;
    let s = &*store;
    let w = world(s).await;
    let mut runs = vec![];
    for (name, credits) in [("Apple", 0.1), ("Banana", 0.2), ("Cherry", 0.3)] {
        let (sess, run) = session_with_run(s, &w.agent, &w.user, RunState::Processing).await;
        s.rename_session(&sess.id, name).await.unwrap();
        let usage = json!({"credit_cost": credits, "input_tokens": 100});
        s.update_run(RunUpdate { usage_delta: Some(&usage), ..RunUpdate::new(&run.id, None) }).await.unwrap().expect("written");
        runs.push((sess.id, run));
    }
    let [a, b_, c] = [runs[0].0.clone(), runs[1].0.clone(), runs[2].0.clone()];
    let filter = session_filter(&w.agent.id, reader(&w.user, &[]));
    let order = |sort: SessionSort| {
        let filter = filter.clone();
        async move { page_sessions(s, &filter, sort, false).await.into_iter().map(|(k, id, _)| (k, id)).collect::<Vec<_>>() }
    };
    let str_key = |v: &str| SortVal::Str(v.to_string());
    assert_eq!(order(SessionSort::Name).await, vec![(str_key("apple"), a.clone()), (str_key("banana"), b_.clone()), (str_key("cherry"), c.clone())]);
    assert_eq!(order(SessionSort::Credits).await, vec![(SortVal::Int(1000), a.clone()), (SortVal::Int(2000), b_.clone()), (SortVal::Int(3000), c.clone())]);

    // A rename moves the session in the name order.
    s.rename_session(&c, "aardvark").await.unwrap();
    assert_eq!(order(SessionSort::Name).await, vec![(str_key("aardvark"), c.clone()), (str_key("apple"), a.clone()), (str_key("banana"), b_.clone())]);
    // More usage moves it in the credits order.
    let more = json!({"credit_cost": 0.25});
    s.update_run(RunUpdate { usage_delta: Some(&more), ..RunUpdate::new(&runs[0].1.id, None) }).await.unwrap().expect("written");
    assert_eq!(order(SessionSort::Credits).await, vec![(SortVal::Int(2000), b_.clone()), (SortVal::Int(3000), c.clone()), (SortVal::Int(3500), a.clone())]);
    assert_sessions_page(s, &filter, &[a.clone(), b_.clone(), c.clone()], "after the moves").await;

    // Paging is by position: a session moved past the cursor shows up again on a later
    // page, one moved before it is not seen again.
    let first = s.list_sessions(&filter, SessionSort::Name, &PageWindow { after: None, limit: 2, desc: false }).await.unwrap();
    assert_eq!(first.iter().map(|(_, r)| r.id.clone()).collect::<Vec<_>>(), vec![c.clone(), a.clone()]);
    let cursor = (first[1].0.clone(), first[1].1.id.clone());
    s.rename_session(&c, "zucchini").await.unwrap();
    s.rename_session(&b_, "Aaron").await.unwrap();
    let next = s.list_sessions(&filter, SessionSort::Name, &PageWindow { after: Some(cursor), limit: 2, desc: false }).await.unwrap();
    assert_eq!(next.iter().map(|(k, r)| (k.clone(), r.id.clone())).collect::<Vec<_>>(), vec![(str_key("zucchini"), c.clone())]);
    assert_eq!(next[0].1.name.as_deref(), Some("zucchini"), "the row as renamed");
}

pub async fn artifacts_page_in_every_order(b: &dyn Backend) {
    let store = b.open().await;
    let s = &*store;
    let w = world(s).await;
    let s1 = idle_session(s, &w.agent, &w.user).await;
    let s2 = idle_session(s, &w.agent, &w.user).await;
    let t = now();
    // (session, stored file name, the version's file name, version time offset)
    let specs = [
        (&s1, "Report.csv", "Report.csv", 1),
        (&s1, "report.CSV", "report.CSV", 1),
        (&s2, "report.csv", "report.csv", 1),
        (&s1, "budget.xlsx", "Budget 2025.XLSX", 2),
        (&s2, "chart.png", "chart.png", 3),
        (&s1, "zeta.txt", "zeta.txt", 3),
        (&s2, "Émile.txt", "Émile.txt", 4),
        (&s2, "notes.txt", "notes.txt", 5),
    ];
    let mut ids = vec![];
    for (sess, stored, filename, at) in specs {
        let (a, mut v) = artifact_records(sess, stored);
        v.filename = filename.to_string();
        v.created_at = t + at;
        let (art, _) = s.add_artifact_version(&a, &v).await.unwrap();
        ids.push(art.id);
    }
    let (gone, mut gone_v) = artifact_records(&s1, "gone.csv");
    gone_v.created_at = t + 2;
    s.add_artifact_version(&gone, &gone_v).await.unwrap();
    assert!(s.delete_artifact(&gone.id, now()).await.unwrap());

    let filter = artifact_filter(&w.agent.id, reader(&w.user, &[]));
    for sort in [ArtifactSort::Created, ArtifactSort::Name] {
        let mut k: Vec<SortVal> = expected_artifacts(s, &ids, sort, false).await.into_iter().map(|(k, _)| k).collect();
        k.dedup();
        assert!(k.len() < ids.len(), "the fixture has ties in {sort:?}");
    }
    assert_artifacts_page(s, &filter, &ids, "initial").await;
    let name_of = |rows: &[(SortVal, String, (ArtifactRecord, ArtifactVersionRecord))], id: &str| {
        rows.iter().find(|(_, x, _)| x == id).map(|(k, _, (_, v))| (k.clone(), v.clone()))
    };
    let rows = page_artifacts(s, &filter, ArtifactSort::Name, false).await;
    assert_eq!(name_of(&rows, &ids[3]).map(|x| x.0), Some(SortVal::Str("budget 2025.xlsx".into())), "listed by the version's file name");

    // A new version moves the artifact to its time in the created order, and its file
    // name becomes the listed name.
    let (again, mut v2) = artifact_records(&s1, "Report.csv");
    v2.filename = "Report final.csv".into();
    v2.created_at = t + 10;
    let (art, v2) = s.add_artifact_version(&again, &v2).await.unwrap();
    assert_eq!(art.id, ids[0], "the version went to the existing artifact");
    let newest = s.list_artifacts(&filter, ArtifactSort::Created, &PageWindow { after: None, limit: 1, desc: true }).await.unwrap();
    assert_eq!(newest.len(), 1);
    assert_eq!((&newest[0].0, &newest[0].1.id, &newest[0].2), (&SortVal::Int(t + 10), &ids[0], &v2), "the newest version lists first");
    let rows = page_artifacts(s, &filter, ArtifactSort::Name, false).await;
    assert_eq!(name_of(&rows, &ids[0]).map(|x| x.0), Some(SortVal::Str("report final.csv".into())));
    assert_artifacts_page(s, &filter, &ids, "after a new version").await;

    // A custom name moves it in the name order; clearing it restores the file name.
    s.rename_artifact(&ids[5], Some("AAA Zeta")).await.unwrap();
    let first = s.list_artifacts(&filter, ArtifactSort::Name, &PageWindow { after: None, limit: 1, desc: false }).await.unwrap();
    assert_eq!((&first[0].0, &first[0].1.id), (&SortVal::Str("aaa zeta".into()), &ids[5]), "renamed first");
    assert_artifacts_page(s, &filter, &ids, "after a rename").await;
    // A version added to a renamed artifact keeps the custom name.
    let (again, mut v3) = artifact_records(&s1, "zeta.txt");
    v3.created_at = t + 11;
    s.add_artifact_version(&again, &v3).await.unwrap();
    let first = s.list_artifacts(&filter, ArtifactSort::Name, &PageWindow { after: None, limit: 1, desc: false }).await.unwrap();
    assert_eq!((&first[0].0, &first[0].1.id), (&SortVal::Str("aaa zeta".into()), &ids[5]), "the custom name stays listed");
    s.rename_artifact(&ids[5], None).await.unwrap();
    assert_artifacts_page(s, &filter, &ids, "after clearing the name").await;
    let rows = page_artifacts(s, &filter, ArtifactSort::Name, false).await;
    assert_eq!(name_of(&rows, &ids[5]).map(|x| x.0), Some(SortVal::Str("zeta.txt".into())), "listed by its file name again");

    // Deleted artifacts disappear from every order.
    assert!(s.delete_artifact(&ids[4], now()).await.unwrap());
    ids.remove(4);
    assert_artifacts_page(s, &filter, &ids, "after a delete").await;

    // Any (key, id) is a cursor.
    for (sort, cursor) in [
        (ArtifactSort::Name, (SortVal::Str("report".into()), String::new())),
        (ArtifactSort::Name, (SortVal::Str("report.csv".into()), ids[1].clone())),
        (ArtifactSort::Created, (SortVal::Int(t + 1), ids[1].clone())),
        (ArtifactSort::Created, (SortVal::Int(t + 4), "~".into())),
    ] {
        for desc in ORDERS {
            let page = PageWindow { after: Some(cursor.clone()), limit: 100, desc };
            let got: Vec<(SortVal, String)> = s.list_artifacts(&filter, sort, &page).await.unwrap().into_iter().map(|(k, a, _)| (k, a.id)).collect();
            let want: Vec<(SortVal, String)> =
                expected_artifacts(s, &ids, sort, desc).await.into_iter().filter(|row| after_cursor(row, &cursor, desc)).collect();
            assert_eq!(got, want, "{sort:?} desc={desc}: the rows strictly after {cursor:?}");
        }
    }
}

pub async fn artifact_filters_and_readers(b: &dyn Backend) {
    let store = b.open().await;
    let s = &*store;
    let org = org(s, "Acme").await;
    let ada = user(s, &org).await;
    let bob = user(s, &org).await;
    let eve = user(s, &org).await;
    let ops = team(s, &org, "Ops").await;
    s.set_membership(&ops.id, &ada.id, "member").await.unwrap();
    let agent = agent(s, &ada, None).await;
    let other_agent = super::fixtures::agent(s, &ada, None).await;

    let ada1 = idle_session(s, &agent, &ada).await;
    let ada2 = idle_session(s, &agent, &ada).await;
    let bob_shared = idle_session(s, &agent, &bob).await;
    let bob_private = idle_session(s, &agent, &bob).await;
    let ada_elsewhere = idle_session(s, &other_agent, &ada).await;
    s.change_session_grants(&bob_shared.id, &[grant("team", &ops.id)], &[]).await.unwrap();

    let add = |sess: &SessionRecord, name: &str| {
        let (a, v) = artifact_records(sess, name);
        async move { s.add_artifact_version(&a, &v).await.unwrap().0.id }
    };
    let inv42 = add(&ada1, "Invoice-42.pdf").await;
    let notes = add(&ada1, "notes.txt").await;
    let inv43 = add(&ada2, "INVOICE-43.pdf").await;
    let inv44 = add(&bob_shared, "invoice-44.pdf").await;
    let inv45 = add(&bob_private, "invoice-45.pdf").await;
    let _inv46 = add(&ada_elsewhere, "invoice-46.pdf").await;

    let base = artifact_filter(&agent.id, reader(&ada, &[&ops]));
    let listed = |f: ArtifactFilter| async move { id_set(&page_artifacts(s, &f, ArtifactSort::Created, true).await) };
    let with = |session: Option<&SessionRecord>, search: Option<&str>| ArtifactFilter {
        session_id: session.map(|x| x.id.clone()),
        search: search.map(str::to_string),
        ..base.clone()
    };
    assert_eq!(listed(base.clone()).await, sorted_ids(&[&inv42, &notes, &inv43, &inv44]), "Ada's and her team's shares, of this agent only");
    assert_eq!(listed(with(Some(&ada1), None)).await, sorted_ids(&[&inv42, &notes]), "one session");
    assert_eq!(listed(with(Some(&bob_shared), None)).await, sorted_ids(&[&inv44]));
    assert!(listed(with(Some(&bob_private), None)).await.is_empty(), "naming an unreadable session lists nothing");
    assert!(listed(with(Some(&ada_elsewhere), None)).await.is_empty(), "nor a session of another agent");
    assert_eq!(listed(with(None, Some("invoice"))).await, sorted_ids(&[&inv42, &inv43, &inv44]), "search, whatever the case of the name");
    assert_eq!(listed(with(None, Some("ice-4"))).await, sorted_ids(&[&inv42, &inv43, &inv44]), "a substring");
    assert_eq!(listed(with(Some(&ada2), Some("invoice"))).await, sorted_ids(&[&inv43]), "filters combine");
    assert!(listed(with(None, Some("%"))).await.is_empty(), "a plain substring, not a pattern");

    // The listed name is the custom name once set.
    s.rename_artifact(&notes, Some("Meeting MINUTES")).await.unwrap();
    assert_eq!(listed(with(None, Some("minutes"))).await, sorted_ids(&[&notes]));
    assert!(listed(with(None, Some("notes"))).await.is_empty(), "the file name no longer matches");
    assert_artifacts_page(s, &with(None, Some("invoice")), &[inv42.clone(), inv43.clone(), inv44.clone()], "search").await;

    // Other readers.
    assert!(listed(artifact_filter(&agent.id, reader(&eve, &[]))).await.is_empty(), "Eve reads nothing");
    assert_eq!(listed(artifact_filter(&agent.id, reader(&bob, &[]))).await, sorted_ids(&[&inv44, &inv45]));
    assert_eq!(listed(artifact_filter(&agent.id, reader(&ada, &[]))).await, sorted_ids(&[&inv42, &notes, &inv43]), "without the team, no share");
    s.change_session_grants(&bob_private.id, &[grant("organization", &org)], &[]).await.unwrap();
    assert_eq!(listed(artifact_filter(&agent.id, reader(&eve, &[]))).await, sorted_ids(&[&inv45]), "an organization grant");
    // Deleting removes it for everyone.
    assert!(s.delete_artifact(&inv45, now()).await.unwrap());
    assert!(listed(artifact_filter(&agent.id, reader(&eve, &[]))).await.is_empty());
    assert_eq!(listed(artifact_filter(&agent.id, reader(&bob, &[]))).await, sorted_ids(&[&inv44]));
}
