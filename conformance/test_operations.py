"""What an operator sees (an Openloop extension, issue "a server operators can see into"):
``/metrics`` in the Prometheus text format, parsed by the Prometheus project's own Python
parser, and a failed session that says why on the session object itself."""

from __future__ import annotations

import time

import httpx
from gumloop import Gumloop
from prometheus_client.parser import text_string_to_metric_families

from _support import SESSION_MODEL, OpenloopServer, token, wait_session


def scrape(server: OpenloopServer) -> dict[str, list]:
    """``/metrics`` parsed: family name → its samples."""
    resp = httpx.get(f"{server.url}/metrics", timeout=10)
    assert resp.status_code == 200, resp.text
    assert resp.headers["content-type"].startswith("text/plain"), resp.headers
    return {f.name: list(f.samples) for f in text_string_to_metric_families(resp.text)}


def total(families: dict[str, list], sample: str, **labels: str) -> float:
    return sum(
        s.value
        for samples in families.values()
        for s in samples
        if s.name == sample and all(s.labels.get(k) == v for k, v in labels.items())
    )


def test_metrics_parse_and_move_when_runs_happen(llm_server: OpenloopServer, llm_admin: Gumloop) -> None:
    before = scrape(llm_server)
    completed_before = total(before, "openloop_runs_finished_total", state="completed")

    agent_id = llm_admin.agents.create(name=f"metrics {token()}", model_name=SESSION_MODEL).agent.id
    for i in range(3):
        sid = llm_admin.sessions.create(agent_id, input=f"count me {i}").session.id
        assert wait_session(llm_admin, sid).state in ("idle", "completed")

    after = scrape(llm_server)
    assert total(after, "openloop_runs_finished_total", state="completed") >= completed_before + 3
    # Request rate and latency by route template (not by raw path: ids stay out of labels).
    route = "/api/v1/agents/{agent_id}/sessions"
    assert total(after, "openloop_http_requests_total", route=route, method="POST", status="2xx") >= 3
    assert total(after, "openloop_http_request_duration_seconds_count", route=route, method="POST") >= 3
    assert not any("agt_" in s.labels.get("route", "") for samples in after.values() for s in samples)
    # Runs by state and queue depth, step durations, provider latency, DB write latency.
    for state in ("queued", "processing"):
        assert any(s.labels.get("state") == state for s in after["openloop_runs_active"]), after["openloop_runs_active"]
    assert total(after, "openloop_step_seconds_count", kind="model", provider="openai") >= 3
    assert total(after, "openloop_provider_open_seconds_count", provider="openai") >= 3
    assert total(after, "openloop_run_duration_seconds_count", state="completed") >= 3
    assert total(after, "openloop_db_write_seconds_count") > total(before, "openloop_db_write_seconds_count")
    assert "openloop_sse_readers" in after


def test_a_failed_session_says_why(server: OpenloopServer, admin: Gumloop, raw: httpx.Client) -> None:
    # The main conformance server has no model provider: the run fails at its first call.
    agent_id = admin.agents.create(name=f"no provider {token()}", model_name=SESSION_MODEL).agent.id
    sid = admin.sessions.create(agent_id, input="hello").session.id
    assert wait_session(admin, sid).state == "failed"

    body = raw.get(f"/sessions/{sid}").json()
    error = body["session"].get("error")
    assert error and error["class"] == "ProviderNotConfigured", body["session"]
    assert "OPENAI_API_KEY" in error["message"], error

    # The seed's agent_status says the same, as class and message.
    started = raw.post("/start_agent", json={"gummie_id": agent_id, "message": "hello again", "user_id": server.admin_user_id})
    assert started.status_code == 202, started.text
    iid = started.json()["interaction_id"]
    for _ in range(300):
        status = raw.get(f"/agent_status/{iid}", params={"user_id": server.admin_user_id}).json()
        if status["state"] != "ASYNC_PROCESSING":
            break
        time.sleep(0.05)
    assert status["state"] == "FAILED", status
    assert status["error"]["class"] == "ProviderNotConfigured", status
    assert status["error_message"].startswith("ProviderNotConfigured: "), status
