//! Agent triggers (G20–G28) over HTTP against the real binary: CRUD, a webhook delivery
//! (retried with the same delivery id: one session), a `run_at` schedule fired by the
//! server's own scheduler, run history and stats, errors naming their field, tenant
//! isolation. The cron arithmetic, missed windows and claim races are tested with a
//! manual clock in `crates/engine/tests/triggers.rs` and the store contract.

use std::time::Duration;

use serde_json::{json, Value};
use testkit::fake_llm::{FakeLlm, Reply};
use testkit::{create_agent, send, start_with_fake, Server, ADMIN_KEY};

fn bin() -> &'static std::path::Path {
    env!("CARGO_BIN_EXE_openloop").as_ref()
}

async fn runs_until(s: &Server, agent: &str, trigger: &str, want: impl Fn(&Value) -> bool) -> Value {
    let mut last = Value::Null;
    for _ in 0..300 {
        let (st, b, _) = send(s.get(ADMIN_KEY, &format!("/agents/{agent}/triggers/{trigger}/runs"))).await;
        assert_eq!(st, 200, "{b}");
        if want(&b) {
            return b;
        }
        last = b;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("runs never matched: {last}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn g20_g28_crud_webhook_schedule_runs_and_stats() {
    let fake = FakeLlm::start().await;
    fake.set_default(Reply::text("done"));
    let s = start_with_fake(bin(), &fake, &[("OPENLOOP_LOG", "error")]);
    let agent = create_agent(&s, json!({"name": "triggered", "model_name": "gpt-4o-mini"})).await;
    let base = format!("/agents/{agent}/triggers");

    // G26: the operators this server fires.
    let (st, ops, _) = send(s.get(ADMIN_KEY, &format!("/agents/{agent}/trigger-operators"))).await;
    assert_eq!(st, 200, "{ops}");
    let names: Vec<&str> = ops["operators"].as_array().unwrap().iter().map(|o| o["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["schedule", "webhook"]);

    // G21 webhook: the URL comes back once, on create.
    let (st, created, _) =
        send(s.post(ADMIN_KEY, &base, json!({"type": "webhook", "name": "orders", "prompt": "Order {{payload.order.id}} for {{payload.customer}}"}))).await;
    assert_eq!(st, 201, "{created}");
    let hook = created["trigger"].clone();
    let hook_id = hook["id"].as_str().unwrap().to_string();
    let url = hook["webhook_url"].as_str().expect("webhook_url on create").to_string();
    assert!(url.starts_with(&format!("{}/hooks/v1/triggers/{hook_id}?token=", s.base_url)), "{url}");
    assert_eq!((hook["type"].as_str(), hook["enabled"].as_bool(), hook["status"].as_str()), (Some("webhook"), Some(true), Some("active")));

    // G21 schedule (cron) and G22.
    let (st, sched, _) =
        send(s.post(ADMIN_KEY, &base, json!({"type": "schedule", "prompt": "daily digest", "cron_expression": "0 9 * * 1-5", "timezone": "Europe/Paris"})))
            .await;
    assert_eq!(st, 201, "{sched}");
    let sched_id = sched["trigger"]["id"].as_str().unwrap().to_string();
    assert!(sched["trigger"].get("webhook_url").is_none());
    assert!(sched["trigger"]["next_run_at"].is_string());
    let (st, got, _) = send(s.get(ADMIN_KEY, &format!("{base}/{sched_id}"))).await;
    assert_eq!(st, 200);
    assert_eq!((got["trigger"]["cron_expression"].as_str(), got["trigger"]["timezone"].as_str()), (Some("0 9 * * 1-5"), Some("Europe/Paris")));

    // G20: both, no webhook URLs in lists; keyset pages.
    let (st, list, _) = send(s.get(ADMIN_KEY, &format!("{base}?page_size=1"))).await;
    assert_eq!(st, 200, "{list}");
    assert_eq!(list["agent_id"], agent.as_str());
    assert_eq!(list["triggers"].as_array().unwrap().len(), 1);
    assert!(list["triggers"][0].get("webhook_url").is_none(), "never in lists");
    let cursor = list["next_cursor"].as_str().expect("a second page").to_string();
    let (_, page2, _) = send(s.get(ADMIN_KEY, &format!("{base}?page_size=1&cursor={cursor}"))).await;
    assert_eq!(page2["triggers"].as_array().unwrap().len(), 1);
    assert!(page2["next_cursor"].is_null());
    assert_ne!(list["triggers"][0]["id"], page2["triggers"][0]["id"]);

    // G25: the same URL on demand.
    let (st, u, _) = send(s.get(ADMIN_KEY, &format!("{base}/{hook_id}/webhook-url"))).await;
    assert_eq!(st, 200);
    assert_eq!(
        (u["agent_id"].as_str(), u["trigger_id"].as_str(), u["webhook_url"].as_str()),
        (Some(agent.as_str()), Some(hook_id.as_str()), Some(url.as_str()))
    );

    // A delivery, then its retry with the same id: one session.
    let client = reqwest::Client::new();
    let body = json!({"order": {"id": 42}, "customer": "Ada"});
    let r = client.post(&url).header("Idempotency-Key", "evt_1").json(&body).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 202);
    let first: Value = r.json().await.unwrap();
    assert_eq!((first["duplicate"].as_bool(), first["state"].as_str()), (Some(false), Some("started")), "{first}");
    let session = first["session_id"].as_str().unwrap().to_string();
    let r = client.post(&url).header("Idempotency-Key", "evt_1").json(&body).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let again: Value = r.json().await.unwrap();
    assert_eq!((again["duplicate"].as_bool(), again["session_id"].as_str()), (Some(true), Some(session.as_str())));
    // The session runs the rendered prompt.
    let (st, sess, _) = send(s.get(ADMIN_KEY, &format!("/sessions/{session}"))).await;
    assert_eq!(st, 200, "{sess}");
    assert_eq!(sess["session"]["messages"][0]["content"], "Order 42 for Ada");

    // Wrong token, unknown trigger.
    let bad = url.replace("token=", "token=x");
    let r = client.post(&bad).json(&body).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 403);
    let err: Value = r.json().await.unwrap();
    assert_eq!(err["error"]["code"], "signature_invalid");
    let r = client.post(format!("{}/hooks/v1/triggers/trg_nope?token=a.b", s.base_url)).json(&body).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 404);

    // G27 / G28 after the session completes.
    let runs = runs_until(&s, &agent, &hook_id, |b| b["items"][0]["state"] == "completed").await;
    let items = runs["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{runs}");
    assert_eq!(items[0]["interaction_id"], session.as_str());
    assert!(items[0]["gummie_trigger_run_id"].is_string() && items[0]["finished_ts"].is_string() && items[0]["message_id"].is_string());
    let (_, filtered, _) = send(s.get(ADMIN_KEY, &format!("{base}/{hook_id}/runs?state=failed"))).await;
    assert_eq!(filtered["items"].as_array().unwrap().len(), 0);
    let (st, stats, _) = send(s.get(ADMIN_KEY, &format!("{base}/{hook_id}/stats"))).await;
    assert_eq!(st, 200, "{stats}");
    assert_eq!(stats["run_count"], 1);
    assert!(stats["last_run_ts"].is_string());
    assert_eq!(stats["poll_credits"], 0.0);

    // A run_at schedule fired by the server's scheduler.
    let at = chrono::Utc::now() + chrono::Duration::seconds(2);
    let (st, once, _) =
        send(s.post(ADMIN_KEY, &base, json!({"type": "schedule", "prompt": "one-off", "run_at": at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)}))).await;
    assert_eq!(st, 201, "{once}");
    let once_id = once["trigger"]["id"].as_str().unwrap().to_string();
    let runs = runs_until(&s, &agent, &once_id, |b| b["items"].as_array().is_some_and(|i| !i.is_empty())).await;
    assert_eq!(runs["items"][0]["source"], "schedule");
    let (_, done, _) = send(s.get(ADMIN_KEY, &format!("{base}/{once_id}"))).await;
    assert_eq!(done["trigger"]["status"], "completed");

    // G23: only the fields sent change; disabling stops deliveries.
    let (st, upd, _) = send(s.patch(ADMIN_KEY, &format!("{base}/{sched_id}"), json!({"name": "weekday digest", "timezone": "America/New_York"}))).await;
    assert_eq!(st, 200, "{upd}");
    assert_eq!(
        (upd["trigger"]["name"].as_str(), upd["trigger"]["cron_expression"].as_str(), upd["trigger"]["timezone"].as_str()),
        (Some("weekday digest"), Some("0 9 * * 1-5"), Some("America/New_York"))
    );
    let (st, off, _) = send(s.patch(ADMIN_KEY, &format!("{base}/{hook_id}"), json!({"enabled": false}))).await;
    assert_eq!(st, 200);
    assert_eq!((off["trigger"]["enabled"].as_bool(), off["trigger"]["status"].as_str()), (Some(false), Some("paused")));
    let r = client.post(&url).json(&body).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 409);

    // G24: deleted, then 404 everywhere.
    let (st, del, _) = send(s.delete(ADMIN_KEY, &format!("{base}/{hook_id}"))).await;
    assert_eq!(st, 200);
    assert_eq!(del, json!({"agent_id": agent, "trigger_id": hook_id, "deleted": true}));
    let (st, e, _) = send(s.get(ADMIN_KEY, &format!("{base}/{hook_id}"))).await;
    assert_eq!((st, e["error"]["code"].as_str()), (404, Some("trigger_not_found")));
    let r = client.post(&url).json(&body).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn g21_bad_input_names_the_field_and_other_tenants_see_404() {
    let s = Server::start(bin(), &[("OPENLOOP_LOG", "error")]);
    let agent = create_agent(&s, json!({"name": "strict"})).await;
    let base = format!("/agents/{agent}/triggers");
    let cases = [
        (json!({"type": "schedule", "prompt": "x", "cron_expression": "61 * * * *"}), "cron_expression"),
        (json!({"type": "schedule", "prompt": "x", "cron_expression": "* * * *"}), "cron_expression"),
        (json!({"type": "schedule", "prompt": "x", "cron_expression": "* * * * *", "timezone": "Mars/Olympus"}), "timezone"),
        (json!({"type": "schedule", "prompt": "x"}), "cron_expression"),
        (json!({"type": "schedule", "prompt": "x", "run_at": "2001-01-01T00:00:00Z"}), "run_at"),
        (json!({"type": "schedule", "prompt": "x", "run_at": "someday"}), "run_at"),
        (json!({"type": "cron", "prompt": "x"}), "type"),
        (json!({"type": "webhook", "prompt": "x", "cron_expression": "* * * * *"}), "cron_expression"),
        (json!({"type": "webhook", "prompt": "  "}), "prompt"),
        (json!({"type": "webhook"}), "prompt"),
        (json!({"type": "webhook", "prompt": "x", "max_failures": 0}), "max_failures"),
        (json!({"type": "integration", "prompt": "x"}), "integration"),
        (json!({"type": "integration", "prompt": "x", "enabled": true, "integration": {"operator_name": "gmail_new_email"}}), "enabled"),
    ];
    for (body, param) in cases {
        let (st, e, _) = send(s.post(ADMIN_KEY, &base, body.clone())).await;
        assert_eq!(st, 400, "{body} → {e}");
        assert_eq!(e["error"]["param"], param, "{body} → {e}");
    }
    // Integration triggers are stored, disabled and say why they cannot fire.
    let (st, integ, _) = send(s.post(
        ADMIN_KEY,
        &base,
        json!({"type": "integration", "prompt": "x", "integration": {"operator_name": "gmail_new_email", "parameters": {"label": "inbox"}}}),
    ))
    .await;
    assert_eq!(st, 201, "{integ}");
    assert_eq!((integ["trigger"]["enabled"].as_bool(), integ["trigger"]["status"].as_str()), (Some(false), Some("unavailable")));
    assert_eq!(integ["trigger"]["integration"]["parameters"]["label"], "inbox");
    let tid = integ["trigger"]["id"].as_str().unwrap();
    let (st, e, _) = send(s.patch(ADMIN_KEY, &format!("{base}/{tid}"), json!({"enabled": true}))).await;
    assert_eq!((st, e["error"]["param"].as_str()), (400, Some("enabled")), "{e}");
    let (st, e, _) = send(s.patch(ADMIN_KEY, &format!("{base}/{tid}"), json!({"cron_expression": "* * * * *"}))).await;
    assert_eq!((st, e["error"]["param"].as_str()), (400, Some("cron_expression")), "{e}");
    let (st, e, _) = send(s.get(ADMIN_KEY, &format!("{base}/{tid}/runs?state=bogus"))).await;
    assert_eq!((st, e["error"]["param"].as_str()), (400, Some("state")), "{e}");

    // Another organization's user: the agent and the trigger are 404.
    let (_, other_key) = s.new_user("org_other");
    for path in
        [base.clone(), format!("{base}/{tid}"), format!("{base}/{tid}/runs"), format!("{base}/{tid}/stats"), format!("/agents/{agent}/trigger-operators")]
    {
        let (st, e, _) = send(s.get(&other_key, &path)).await;
        assert_eq!((st, e["error"]["code"].as_str()), (404, Some("agent_not_found")), "{path}: {e}");
    }
    let (st, _, _) = send(s.delete(&other_key, &format!("{base}/{tid}"))).await;
    assert_eq!(st, 404);
    // A trigger id under another agent is 404 too.
    let other_agent = create_agent(&s, json!({"name": "other"})).await;
    let (st, e, _) = send(s.get(ADMIN_KEY, &format!("/agents/{other_agent}/triggers/{tid}"))).await;
    assert_eq!((st, e["error"]["code"].as_str()), (404, Some("trigger_not_found")));
    let (st, _, _) = send(s.get(ADMIN_KEY, "/agents/agt_missing/triggers")).await;
    assert_eq!(st, 404);
}
