//! Triggers on a real SQLite store with a manual clock: schedules fire on time, once per
//! due time across restarts and competing engines, a missed window fires once, and a
//! webhook delivery starts exactly one session however often it is retried. No sleeping:
//! the test moves the clock and calls the scheduler's tick itself.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use engine::clock::{Clock, ManualClock};
use engine::tenancy::NewUser;
use engine::{Caller, Engine, EngineConfig, KeyInfo, KeyKind, ModelCatalogue, Signer};
use serde_json::json;
use store::{PageWindow, ScheduleAdvance, TriggerRunRecord};
use wire::triggers::{AgentTriggerCreateRequest, AgentTriggerUpdateRequest, TriggerType};

struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn temp_dir() -> TempDir {
    let dir = std::env::temp_dir().join(format!("openloop-triggers-{}", wire::ids::random_base62(12)));
    std::fs::create_dir_all(&dir).expect("temp dir");
    TempDir(dir)
}

async fn engine_at(dir: &TempDir, clock: Arc<ManualClock>) -> Arc<Engine> {
    let url = format!("sqlite://{}", dir.0.join("openloop.db").display());
    let store = Arc::new(store::sqlite::SqliteStore::open(&url).await.expect("store"));
    let signer = Signer::new(vec![("k1".into(), vec![7u8; 32])]);
    let config = EngineConfig { public_url: "http://openloop.test".into(), ..EngineConfig::default() };
    Arc::new(Engine::new(store, signer, ModelCatalogue::new(vec![], &[], None), config).with_clock(clock))
}

async fn caller(e: &Engine) -> Caller {
    let user = e
        .create_user(NewUser { id: Some("usr_trig".into()), organization_id: None, email: None, first_name: None, last_name: None, org_admin: false })
        .await
        .expect("user");
    let key = KeyInfo { id: "key_test".into(), kind: KeyKind::Personal { user_id: user.id.clone() }, created_by: None };
    e.resolve_caller(&key, None, None).await.expect("caller")
}

fn schedule(cron: &str, tz: &str) -> AgentTriggerCreateRequest {
    AgentTriggerCreateRequest {
        kind: TriggerType::Schedule,
        prompt: "Daily report for {{trigger.name}}".into(),
        name: Some("daily".into()),
        cron_expression: Some(cron.into()),
        run_at: None,
        timezone: Some(tz.into()),
        pass_raw_data: None,
        enabled: None,
        max_failures: None,
        integration: None,
    }
}

/// Moves the manual clock to the next whole minute plus `extra`.
fn to_next_minute(clock: &ManualClock, extra: Duration) {
    let now = clock.now_micros();
    let next = (now / 60_000_000 + 1) * 60_000_000;
    clock.advance(Duration::from_micros((next - now) as u64) + extra);
}

async fn runs(e: &Engine, trigger_id: &str) -> Vec<store::TriggerRunView> {
    e.store
        .list_trigger_runs(trigger_id, None, &PageWindow { after: None, limit: 1000, desc: false })
        .await
        .expect("runs")
        .into_iter()
        .map(|(_, v)| v)
        .collect()
}

#[tokio::test]
async fn schedule_fires_on_time_once_per_due_time_and_survives_restart() {
    let dir = temp_dir();
    let clock = Arc::new(ManualClock::new());
    let e = engine_at(&dir, clock.clone()).await;
    let c = caller(&e).await;
    let agent = e.create_agent(&c, json!({"name": "Reporter"})).await.expect("agent");
    let t = e.create_trigger(&c, &agent.id, schedule("* * * * *", "Europe/Paris")).await.expect("trigger").trigger;
    assert_eq!(t.status.as_deref(), Some("active"));
    let next = t.next_run_at.clone().expect("armed");

    // Not due yet: nothing fires.
    assert_eq!(e.tick_triggers().await, 0);
    assert!(runs(&e, &t.id).await.is_empty());

    // Due: exactly one firing, however many ticks (and engines) look.
    to_next_minute(&clock, Duration::from_secs(1));
    let other = engine_at(&dir, clock.clone()).await;
    let (a, b) = tokio::join!(e.tick_triggers(), other.tick_triggers());
    assert_eq!(a + b, 1, "two engines over one store fire a due time once");
    assert_eq!(e.tick_triggers().await, 0);
    let fired = runs(&e, &t.id).await;
    assert_eq!(fired.len(), 1);
    assert_eq!(fired[0].run.state, "started");
    assert_eq!(wire::time::v1(fired[0].run.scheduled_for.expect("scheduled")), next);
    assert_eq!(fired[0].run.input, "Daily report for daily");
    let session = e.store.session(&fired[0].run.session_id).await.expect("read").expect("the firing's session exists");
    assert_eq!(session.agent_id, agent.id);
    let after = e.store.trigger(&t.id).await.unwrap().unwrap();
    assert!(after.next_fire_at.unwrap() > clock.now_micros(), "moved to the next future time");

    // Restart: a new engine over the same store neither repeats nor loses the schedule.
    drop(other);
    let restarted = engine_at(&dir, clock.clone()).await;
    assert_eq!(restarted.tick_triggers().await, 0, "nothing due right after the firing");
    to_next_minute(&clock, Duration::from_secs(1));
    assert_eq!(restarted.tick_triggers().await, 1, "the next minute fires on the restarted engine");
    assert_eq!(runs(&restarted, &t.id).await.len(), 2);

    // Disabled: no more firings; re-enabled: armed again for the future only.
    let upd = AgentTriggerUpdateRequest { enabled: Some(false), ..Default::default() };
    let paused = e.update_trigger(&c, &agent.id, &t.id, upd).await.expect("pause").trigger;
    assert_eq!((paused.enabled, paused.status.as_deref(), paused.next_run_at.as_deref()), (false, Some("paused"), None));
    to_next_minute(&clock, Duration::from_secs(1));
    assert_eq!(e.tick_triggers().await, 0);
}

#[tokio::test]
async fn missed_windows_fire_once_then_move_to_the_next_future_time() {
    let dir = temp_dir();
    let clock = Arc::new(ManualClock::new());
    let e = engine_at(&dir, clock.clone()).await;
    let c = caller(&e).await;
    let agent = e.create_agent(&c, json!({"name": "Hourly"})).await.expect("agent");
    let t = e.create_trigger(&c, &agent.id, schedule("0 * * * *", "UTC")).await.expect("trigger").trigger;
    drop(e);

    // The server is "down" for five hours and a bit: five windows pass.
    clock.advance(Duration::from_secs(5 * 3600 + 600));
    let e = engine_at(&dir, clock.clone()).await;
    assert_eq!(e.tick_triggers().await, 1, "the missed windows collapse into one firing");
    assert_eq!(e.tick_triggers().await, 0);
    let fired = runs(&e, &t.id).await;
    assert_eq!(fired.len(), 1);
    let stored = e.store.trigger(&t.id).await.unwrap().unwrap();
    let next = stored.next_fire_at.unwrap();
    assert!(next > clock.now_micros() && next - clock.now_micros() <= 3600 * 1_000_000, "next is the coming hour");
}

#[tokio::test]
async fn a_firing_claimed_by_a_process_that_died_is_started_once_on_recovery() {
    let dir = temp_dir();
    let clock = Arc::new(ManualClock::new());
    let e = engine_at(&dir, clock.clone()).await;
    let c = caller(&e).await;
    let agent = e.create_agent(&c, json!({"name": "Crashy"})).await.expect("agent");
    let t = e.create_trigger(&c, &agent.id, schedule("* * * * *", "UTC")).await.expect("trigger").trigger;
    to_next_minute(&clock, Duration::from_secs(1));
    // A process claims the due time and stops before starting the session.
    let rec = e.store.trigger(&t.id).await.unwrap().unwrap();
    let due = rec.next_fire_at.unwrap();
    let now = clock.now_micros();
    let run = TriggerRunRecord {
        id: "trr_crashed".into(),
        trigger_id: t.id.clone(),
        agent_id: agent.id.clone(),
        source: "schedule".into(),
        delivery_key: format!("at:{due}"),
        session_id: "sess_trg_crashed".into(),
        input: "from the crashed claim".into(),
        state: "pending".into(),
        error: None,
        scheduled_for: Some(due),
        created_at: now,
        updated_at: now,
    };
    let advance = ScheduleAdvance { next_fire_at: Some(due + 60_000_000), status: None };
    assert!(e.store.claim_trigger_fire(&t.id, due, &advance, &run).await.unwrap());
    assert!(!e.store.claim_trigger_fire(&t.id, due, &advance, &run).await.unwrap(), "a due time is claimed once");
    drop(e);

    let restarted = engine_at(&dir, clock.clone()).await;
    assert_eq!(restarted.tick_triggers().await, 0, "too recent to be presumed dead");
    // 61 s later the next minute is due and the pending firing is presumed dead.
    clock.advance(Duration::from_secs(61));
    assert_eq!(restarted.tick_triggers().await, 2, "the next minute fires and the stale pending firing is started");
    assert_eq!(restarted.tick_triggers().await, 0, "each only once");
    let crashed = restarted.store.trigger_run("trr_crashed").await.unwrap().unwrap();
    assert_eq!(crashed.state, "started");
    assert!(restarted.store.session("sess_trg_crashed").await.unwrap().is_some());
}

#[tokio::test]
async fn a_webhook_delivery_starts_one_session_however_often_it_is_retried() {
    let dir = temp_dir();
    let clock = Arc::new(ManualClock::new());
    let e = engine_at(&dir, clock.clone()).await;
    let c = caller(&e).await;
    let agent = e.create_agent(&c, json!({"name": "Hooked"})).await.expect("agent");
    let req = AgentTriggerCreateRequest {
        kind: TriggerType::Webhook,
        prompt: "New order {{payload.order.id}} from {{payload.customer}}".into(),
        name: None,
        cron_expression: None,
        run_at: None,
        timezone: None,
        pass_raw_data: Some(true),
        enabled: None,
        max_failures: None,
        integration: None,
    };
    let t = e.create_trigger(&c, &agent.id, req).await.expect("webhook").trigger;
    let url = t.webhook_url.clone().expect("create returns the URL");
    let token = url.split("token=").nth(1).expect("token in the URL").to_string();
    assert!(url.starts_with(&format!("http://openloop.test/hooks/v1/triggers/{}", t.id)));

    let body = br#"{"order": {"id": 42}, "customer": "Ada"}"#;
    let (fresh, first) = e.deliver_trigger_webhook(&t.id, Some(&token), Some("dlv-1"), body).await.expect("delivered");
    assert!(fresh && !first.duplicate && first.state == "started");
    let (fresh, again) = e.deliver_trigger_webhook(&t.id, Some(&token), Some("dlv-1"), body).await.expect("retried");
    assert!(!fresh && again.duplicate);
    assert_eq!((again.run_id.as_str(), again.session_id.as_deref()), (first.run_id.as_str(), first.session_id.as_deref()));
    // A restarted engine still recognises the delivery.
    let restarted = engine_at(&dir, clock.clone()).await;
    let (fresh, third) = restarted.deliver_trigger_webhook(&t.id, Some(&token), Some("dlv-1"), body).await.expect("retried after restart");
    assert!(!fresh && third.run_id == first.run_id);
    // Another delivery is another session.
    let (fresh, second) = e.deliver_trigger_webhook(&t.id, Some(&token), Some("dlv-2"), body).await.expect("second");
    assert!(fresh && second.session_id != first.session_id);

    let fired = runs(&e, &t.id).await;
    assert_eq!(fired.len(), 2);
    let msgs = e.store.messages(first.session_id.as_deref().unwrap()).await.unwrap();
    let text = msgs[0].content.clone().unwrap_or_default();
    assert!(text.starts_with("New order 42 from Ada"), "{text}");
    assert!(text.contains("\"customer\": \"Ada\""), "raw data appended: {text}");

    // Wrong token: refused; deleted trigger: gone.
    let err = e.deliver_trigger_webhook(&t.id, Some("k1.bad"), None, body).await.expect_err("bad token");
    assert_eq!(err.code, "signature_invalid");
    e.delete_trigger(&c, &agent.id, &t.id).await.expect("deleted");
    let err = e.deliver_trigger_webhook(&t.id, Some(&token), Some("dlv-3"), body).await.expect_err("deleted trigger");
    assert_eq!(err.code, "trigger_not_found");
}

#[tokio::test]
async fn deleting_the_agent_stops_its_schedules() {
    let dir = temp_dir();
    let clock = Arc::new(ManualClock::new());
    let e = engine_at(&dir, clock.clone()).await;
    let c = caller(&e).await;
    let agent = e.create_agent(&c, json!({"name": "Doomed"})).await.expect("agent");
    let t = e.create_trigger(&c, &agent.id, schedule("* * * * *", "UTC")).await.expect("trigger").trigger;
    e.delete_agent(&c, &agent.id).await.expect("agent deleted");
    to_next_minute(&clock, Duration::from_secs(1));
    assert_eq!(e.tick_triggers().await, 0);
    assert!(runs(&e, &t.id).await.is_empty());
}

#[tokio::test]
async fn run_at_fires_once_and_completes() {
    let dir = temp_dir();
    let clock = Arc::new(ManualClock::new());
    let e = engine_at(&dir, clock.clone()).await;
    let c = caller(&e).await;
    let agent = e.create_agent(&c, json!({"name": "Once"})).await.expect("agent");
    let at = wire::time::v1(clock.now_micros() + 90_000_000);
    let mut req = schedule("* * * * *", "UTC");
    req.cron_expression = None;
    req.run_at = Some(at.clone());
    let t = e.create_trigger(&c, &agent.id, req).await.expect("trigger").trigger;
    assert_eq!(t.run_at.as_deref(), Some(at.as_str()));
    clock.advance(Duration::from_secs(91));
    assert_eq!(e.tick_triggers().await, 1);
    clock.advance(Duration::from_secs(3600));
    assert_eq!(e.tick_triggers().await, 0);
    let done = e.get_trigger(&c, &agent.id, &t.id).await.unwrap().trigger;
    assert_eq!((done.status.as_deref(), done.next_run_at.as_deref()), (Some("completed"), None));
}
