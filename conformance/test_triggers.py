"""Agent triggers (API.md §8.6, G20–G28) through the official SDK: every trigger method of
``client.agents`` (list/create/get/update/delete_trigger, get_trigger_webhook_url,
list_trigger_operators, list_trigger_runs, get_trigger_stats) against a server whose
model is the fake provider. Webhook deliveries go to the URL G21/G25 return, with a
plain HTTP client (the SDK has no delivery method: the sender is a third party).
"""

from __future__ import annotations

import json
import subprocess
import tempfile
import time
from datetime import datetime, timedelta, timezone
from typing import Any

import httpx
import pytest

from gumloop import Gumloop
from gumloop.types import (
    AgentTrigger,
    AgentTriggerCreateRequest,
    AgentTriggerUpdateRequest,
    IntegrationTriggerConfig,
)

from _support import OpenloopServer, Principal, expect_api_error, new_session_agent, run_gumloop_cli, wait_session


@pytest.fixture(scope="module")
def agent_id(llm_admin: Gumloop) -> str:
    return new_session_agent(llm_admin)


def wait_runs(client: Gumloop, agent_id: str, trigger_id: str, pred: Any, timeout: float = 20.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        runs = client.agents.list_trigger_runs(agent_id, trigger_id)
        if pred(runs):
            return runs
        if time.monotonic() > deadline:
            pytest.fail(f"trigger runs never matched: {runs!r}")
        time.sleep(0.1)


def test_g26_operators_describe_schedule_and_webhook(llm_admin: Gumloop, agent_id: str) -> None:
    ops = llm_admin.agents.list_trigger_operators(agent_id).operators
    assert [o.name for o in ops] == ["schedule", "webhook"]
    schedule = ops[0]
    assert schedule.display_name == "Schedule" and schedule.version
    params = {p.name: p for p in schedule.parameters}
    assert params["prompt"].required and not params["cron_expression"].required
    assert params["timezone"].default_value == "UTC"


def test_g21_g25_webhook_create_deliver_once_runs_and_stats(llm_admin: Gumloop, agent_id: str) -> None:
    created = llm_admin.agents.create_trigger(
        agent_id, type="webhook", name="orders", prompt="Order {{payload.order.id}} from {{payload.customer}}"
    ).trigger
    assert isinstance(created, AgentTrigger)
    assert (created.type, created.enabled, created.status, created.agent_id) == ("webhook", True, "active", agent_id)
    assert created.webhook_url and f"/hooks/v1/triggers/{created.id}?token=" in created.webhook_url

    url = llm_admin.agents.get_trigger_webhook_url(agent_id, created.id)
    assert (url.agent_id, url.trigger_id, url.webhook_url) == (agent_id, created.id, created.webhook_url)
    listed = llm_admin.agents.list_triggers(agent_id)
    assert listed.agent_id == agent_id
    assert created.id in [t.id for t in listed.triggers]
    assert all(t.webhook_url is None for t in listed.triggers), "webhook URLs never appear in lists"

    body = {"order": {"id": 7}, "customer": "Grace"}
    with httpx.Client(timeout=10) as http:
        first = http.post(created.webhook_url, json=body, headers={"Idempotency-Key": "delivery-1"})
        assert first.status_code == 202, first.text
        again = http.post(created.webhook_url, json=body, headers={"Idempotency-Key": "delivery-1"})
        assert again.status_code == 200, again.text
        assert again.json()["duplicate"] is True
        assert again.json()["session_id"] == first.json()["session_id"]
        wrong = http.post(created.webhook_url.replace("token=", "token=x"), json=body)
        assert wrong.status_code == 403
        assert wrong.json()["error"]["code"] == "signature_invalid"
    session_id = first.json()["session_id"]
    session = wait_session(llm_admin, session_id, {"completed"})
    assert session.messages[0].content == "Order 7 from Grace"

    runs = wait_runs(llm_admin, agent_id, created.id, lambda r: r.items and r.items[0].state == "completed")
    assert len(runs.items) == 1
    run = runs.items[0]
    assert run.interaction_id == session_id and run.gummie_trigger_run_id
    assert run.created_ts and run.finished_ts and run.duration_ms is not None and run.duration_ms >= 0
    assert llm_admin.agents.list_trigger_runs(agent_id, created.id, states=["failed"]).items == []
    assert [r.interaction_id for r in llm_admin.agents.list_trigger_runs(agent_id, created.id, states=["completed", "failed"]).items] == [session_id]

    # S3 filters by trigger; G1/G3 count the agent's enabled triggers.
    by_trigger = llm_admin.sessions.list(agent_id, trigger_id=created.id).sessions
    assert [s.id for s in by_trigger] == [session_id], by_trigger
    assert llm_admin.sessions.list(agent_id, trigger_id="trg_none").sessions == []
    assert llm_admin.agents.retrieve(agent_id).agent.active_trigger_count >= 1
    assert agent_id in [a.id for a in llm_admin.agents.list(has_triggers=True, page_size=100).agents]
    assert agent_id not in [a.id for a in llm_admin.agents.list(has_triggers=False, page_size=100).agents]

    stats = llm_admin.agents.get_trigger_stats(agent_id, created.id)
    assert stats.run_count == 1 and stats.last_run_ts
    assert stats.poll_credits == 0 and stats.total_credits == stats.run_credits

    deleted = llm_admin.agents.delete_trigger(agent_id, created.id)
    assert (deleted.agent_id, deleted.trigger_id, deleted.deleted) == (agent_id, created.id, True)
    expect_api_error(llm_admin.agents.get_trigger, agent_id, created.id, status=404, code="trigger_not_found", param="trigger_id")
    with httpx.Client(timeout=10) as http:
        assert http.post(created.webhook_url, json=body).status_code == 404


def test_g21_g23_schedule_crud_and_run_at_fires(llm_admin: Gumloop, agent_id: str) -> None:
    req = AgentTriggerCreateRequest(type="schedule", prompt="weekday digest", cron_expression="0 9 * * 1-5", timezone="Europe/Paris")
    sched = llm_admin.agents.create_trigger(agent_id, req).trigger
    assert (sched.cron_expression, sched.timezone, sched.enabled, sched.status) == ("0 9 * * 1-5", "Europe/Paris", True, "active")
    assert sched.webhook_url is None
    got = llm_admin.agents.get_trigger(agent_id, sched.id).trigger
    assert got.id == sched.id and got.prompt == "weekday digest"

    # Only the fields sent change.
    upd = llm_admin.agents.update_trigger(agent_id, sched.id, AgentTriggerUpdateRequest(name="digest", max_failures=3)).trigger
    assert (upd.name, upd.max_failures, upd.cron_expression, upd.timezone) == ("digest", 3, "0 9 * * 1-5", "Europe/Paris")
    paused = llm_admin.agents.update_trigger(agent_id, sched.id, enabled=False).trigger
    assert (paused.enabled, paused.status) == (False, "paused")
    resumed = llm_admin.agents.update_trigger(agent_id, sched.id, enabled=True, cron_expression="*/5 * * * *").trigger
    assert (resumed.enabled, resumed.status, resumed.cron_expression) == (True, "active", "*/5 * * * *")

    # A one-off schedule a couple of seconds ahead is fired by the server's scheduler.
    at = (datetime.now(timezone.utc) + timedelta(seconds=2)).strftime("%Y-%m-%dT%H:%M:%SZ")
    once = llm_admin.agents.create_trigger(agent_id, type="schedule", prompt="one-off", run_at=at).trigger
    runs = wait_runs(llm_admin, agent_id, once.id, lambda r: r.items and r.items[0].interaction_id)
    wait_session(llm_admin, runs.items[0].interaction_id, {"completed"})
    assert llm_admin.agents.get_trigger(agent_id, once.id).trigger.status == "completed"

    # Paging with page_size / cursor.
    page1 = llm_admin.agents.list_triggers(agent_id, page_size=1)
    assert len(page1.triggers) == 1 and page1.next_cursor
    page2 = llm_admin.agents.list_triggers(agent_id, page_size=1, cursor=page1.next_cursor)
    assert page2.triggers[0].id != page1.triggers[0].id

    for t in (sched, once):
        assert llm_admin.agents.delete_trigger(agent_id, t.id).deleted


def test_g21_bad_input_names_the_field(llm_admin: Gumloop, agent_id: str) -> None:
    create = llm_admin.agents.create_trigger
    expect_api_error(create, agent_id, type="schedule", prompt="x", cron_expression="99 * * * *", status=400, code="invalid_request", param="cron_expression")
    expect_api_error(
        create, agent_id, type="schedule", prompt="x", cron_expression="* * * * *", timezone="Nowhere/City", status=400, code="invalid_request", param="timezone"
    )
    expect_api_error(create, agent_id, type="schedule", prompt="x", run_at="not a date", status=400, code="invalid_request", param="run_at")
    expect_api_error(create, agent_id, type="webhook", prompt="  ", status=400, code="invalid_input", param="prompt")


def test_integration_triggers_are_stored_disabled(llm_admin: Gumloop, agent_id: str) -> None:
    cfg = IntegrationTriggerConfig(operator_name="gmail_new_email", parameters={"label": "inbox"})
    t = llm_admin.agents.create_trigger(agent_id, type="integration", prompt="triage", integration=cfg).trigger
    assert (t.type, t.enabled, t.status) == ("integration", False, "unavailable")
    assert t.integration is not None and t.integration.operator_name == "gmail_new_email"
    assert t.integration.parameters == {"label": "inbox"}
    expect_api_error(llm_admin.agents.update_trigger, agent_id, t.id, enabled=True, status=400, code="invalid_request", param="enabled")
    assert llm_admin.agents.delete_trigger(agent_id, t.id).deleted


def test_other_tenant_sees_404(llm_admin: Gumloop, llm_other_tenant: Principal, agent_id: str) -> None:
    t = llm_admin.agents.create_trigger(agent_id, type="webhook", prompt="x").trigger
    other = llm_other_tenant.client.agents
    for fn, args in [
        (other.list_triggers, (agent_id,)),
        (other.get_trigger, (agent_id, t.id)),
        (other.get_trigger_webhook_url, (agent_id, t.id)),
        (other.delete_trigger, (agent_id, t.id)),
        (other.list_trigger_runs, (agent_id, t.id)),
        (other.get_trigger_stats, (agent_id, t.id)),
        (other.list_trigger_operators, (agent_id,)),
    ]:
        expect_api_error(fn, *args, status=404, code="agent_not_found")
    expect_api_error(other.update_trigger, agent_id, t.id, enabled=False, status=404, code="agent_not_found")
    assert llm_admin.agents.get_trigger(agent_id, t.id).trigger.enabled
    llm_admin.agents.delete_trigger(agent_id, t.id)


def run_cli(srv: OpenloopServer, home: str, *args: str) -> subprocess.CompletedProcess[str]:
    """``gumloop agents triggers …`` headless."""
    return run_gumloop_cli(srv, home, *args, text=True, timeout=60)


def test_cli_triggers_commands(llm_server: OpenloopServer, agent_id: str) -> None:
    with tempfile.TemporaryDirectory(prefix="openloop-cli-") as home:
        def ok(*args: str) -> Any:
            proc = run_cli(llm_server, home, "agents", "triggers", *args, "--json")
            assert proc.returncode == 0, f"CLI {args} failed: {proc.stdout!r} {proc.stderr!r}"
            return json.loads(proc.stdout)

        created = ok("create", agent_id, "--args-json", json.dumps({"type": "webhook", "prompt": "cli {{payload.x}}"}))["trigger"]
        tid = created["id"]
        assert created["webhook_url"]
        assert tid in [t["id"] for t in ok("list", agent_id)["triggers"]]
        assert ok("get", agent_id, tid)["trigger"]["id"] == tid
        assert ok("webhook-url", agent_id, tid)["webhook_url"] == created["webhook_url"]
        assert [o["name"] for o in ok("catalog", agent_id)["operators"]] == ["schedule", "webhook"]
        assert ok("update", agent_id, tid, "--args-json", json.dumps({"enabled": False}))["trigger"]["enabled"] is False
        assert ok("runs", agent_id, tid, "--limit", "5")["items"] == []
        assert ok("stats", agent_id, tid)["run_count"] == 0
        assert ok("delete", agent_id, tid)["deleted"] is True
