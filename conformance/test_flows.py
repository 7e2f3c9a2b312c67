"""Flows (API.md §8.4, F1–F7) through the official SDKs: the Python ``GumloopClient``
(``run_flow`` / ``get_run_status`` with ``base_url`` set after construction) and the npm
``gumloop`` package's ``GumloopClient`` (``runFlow`` / ``getRunStatus`` with its axios
``baseURL`` set), against a server whose models are the fake provider.

Flow documents are saved through Openloop's management extension (``POST /flows``).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
import warnings
from typing import Any

import httpx
import pytest

from gumloop import Gumloop, GumloopClient

from _support import OpenloopServer, SESSION_MODEL, fmt_resp, invoke_tool, new_session_agent, token
from fake_openai import FakeOpenAI, Reply

JS_DIR = os.path.join(os.path.dirname(__file__), "js")


def save_flow(raw: httpx.Client, doc: dict[str, Any], **extra: Any) -> str:
    resp = raw.post("/flows", json={"document": doc, **extra})
    assert resp.status_code == 201, fmt_resp(resp)
    return resp.json()["saved_item_id"]


def py_client(server: OpenloopServer, key: str | None = None, user_id: str | None = None, project_id: str | None = None) -> GumloopClient:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        client = GumloopClient(api_key=key or server.admin_key, user_id=user_id or server.admin_user_id, project_id=project_id)
    # GumloopClient ignores GUMLOOP_BASE_URL: callers set base_url after construction.
    client.base_url = f"{server.url}/api/v1"
    return client


@pytest.fixture(scope="module")
def flow_agent(llm_admin: Gumloop) -> str:
    return new_session_agent(llm_admin)


@pytest.fixture(scope="module")
def summary_flow(llm_raw: httpx.Client, flow_agent: str) -> str:
    """topic → (llm ‖ agent) → template; outputs text and agent."""
    return save_flow(llm_raw, {
        "name": f"summary {token()}",
        "description": "conformance flow",
        "inputs": [{"name": "topic", "data_type": "string", "description": "what to write about"}],
        "nodes": [
            {"id": "draft", "kind": "llm", "model": SESSION_MODEL, "prompt": "flowdraft {{topic}}"},
            {"id": "helper", "kind": "agent", "agent_id": flow_agent, "prompt": "flowagent {{topic}}"},
            {"id": "final", "kind": "template", "template": "{{draft}} | {{helper}}"},
        ],
        "outputs": [{"output_name": "text", "from": "final"}, {"output_name": "agent", "from": "helper"}],
    })


def test_f1_f2_python_gumloopclient_runs_a_flow(llm_server: OpenloopServer, summary_flow: str, fake_openai: FakeOpenAI) -> None:
    fake_openai.enqueue(Reply(text="draft about owls"), match="flowdraft owls")
    fake_openai.enqueue(Reply(text="agent about owls"), match="flowagent owls")
    with py_client(llm_server) as client:
        outputs = client.run_flow(summary_flow, {"topic": "owls"}, poll_interval=0.05, timeout=60)
        assert outputs == {"text": "draft about owls | agent about owls", "agent": "agent about owls"}


def test_f2_get_run_status_shape(llm_server: OpenloopServer, llm_raw: httpx.Client, summary_flow: str) -> None:
    resp = llm_raw.post("/start_pipeline", json={"saved_item_id": summary_flow, "user_id": llm_server.admin_user_id,
                                                 "pipeline_inputs": [{"input_name": "topic", "value": "bats"}]})
    assert resp.status_code == 200, fmt_resp(resp)
    started = resp.json()
    assert set(started) >= {"run_id", "saved_item_id", "workbook_id", "url"}
    assert started["url"].endswith(f"/api/v1/get_pl_run?run_id={started['run_id']}")
    with py_client(llm_server) as client:
        deadline = time.time() + 60
        while True:
            status = client.get_run_status(started["run_id"])
            assert status["state"] in ("QUEUED", "STARTED", "RUNNING", "DONE"), status
            if status["state"] == "DONE" or time.time() > deadline:
                break
            time.sleep(0.05)
    assert status["state"] == "DONE", status
    assert set(status) >= {"run_id", "saved_item_id", "workbook_id", "user_id", "state", "outputs", "created_ts", "finished_ts", "log", "credit_cost"}
    assert status["outputs"]["text"] == "ok: flowdraft bats | ok: flowagent bats"
    assert status["log"][0] == "Run started" and status["log"][-1] == "Run finished", status["log"]
    assert status["created_ts"].endswith("+00:00") and status["finished_ts"].endswith("+00:00")
    assert status["credit_cost"] > 0


def test_f1_failed_flow_raises_with_the_log(llm_server: OpenloopServer, llm_raw: httpx.Client, fake_openai: FakeOpenAI) -> None:
    flow = save_flow(llm_raw, {"name": "fails", "nodes": [{"id": "x", "kind": "llm", "model": SESSION_MODEL, "prompt": "flowfail please"}]})
    fake_openai.enqueue(Reply(status=400, body={"error": {"message": "bad request from fake"}}), match="flowfail please")
    with py_client(llm_server) as client, pytest.raises(RuntimeError) as err:
        client.run_flow(flow, {}, poll_interval=0.05, timeout=60)
    assert "Flow execution failed" in str(err.value) and "node x (llm) failed" in str(err.value), err.value


def test_f1_errors_reach_the_sdk_as_http_errors(llm_server: OpenloopServer) -> None:
    with py_client(llm_server) as client, pytest.raises(httpx.HTTPStatusError) as err:
        client.run_flow("flow_does_not_exist", {"a": 1})
    assert err.value.response.status_code == 404
    assert err.value.response.json() == {"error": "flow_not_found"}


def test_f1_team_flow_with_project_id(llm_server: OpenloopServer, llm_raw: httpx.Client) -> None:
    flow = save_flow(llm_raw, {"name": "team flow", "inputs": [{"name": "who"}],
                               "nodes": [{"id": "t", "kind": "template", "template": "hello {{who}}"}],
                               "outputs": [{"output_name": "greeting", "from": "t"}]}, team_id=llm_server.team_id)
    with py_client(llm_server, key=llm_server.team_key, project_id=llm_server.team_id) as client:
        assert client.run_flow(flow, {"who": "team"}, poll_interval=0.05, timeout=60) == {"greeting": "hello team"}
    # Not in the personal workspace.
    with py_client(llm_server) as client, pytest.raises(httpx.HTTPStatusError) as err:
        client.run_flow(flow, {"who": "me"})
    assert err.value.response.status_code == 404


def run_js(args: dict[str, Any]) -> dict[str, Any]:
    assert shutil.which("node"), "node is required (CI installs it)"
    assert os.path.isdir(os.path.join(JS_DIR, "node_modules", "gumloop")), "run `npm ci` in conformance/js (the harness does)"
    out = subprocess.run(["node", "run_flow.js", json.dumps(args)], cwd=JS_DIR, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_js_sdk_run_flow_and_get_run_status(llm_server: OpenloopServer, llm_raw: httpx.Client, summary_flow: str,
                                             fake_openai: FakeOpenAI) -> None:
    fake_openai.enqueue(Reply(text="js draft"), match="flowdraft from js")
    fake_openai.enqueue(Reply(text="js agent"), match="flowagent from js")
    base = {"base_url": f"{llm_server.url}/api/v1", "api_key": llm_server.admin_key, "user_id": llm_server.admin_user_id}
    result = run_js({**base, "action": "run", "flow_id": summary_flow, "inputs": {"topic": "from js"}})
    assert result == {"outputs": {"text": "js draft | js agent", "agent": "js agent"}}, result
    # getRunStatus of the latest run of that flow (F7 finds it).
    resp = llm_raw.get("/get_plrun_saved_item_map", params={"saved_item_id": summary_flow})
    run_id = resp.json()[summary_flow][0]["run_id"]
    status = run_js({**base, "action": "status", "run_id": run_id})["status"]
    assert status["state"] == "DONE" and status["outputs"]["text"] == "js draft | js agent", status
    # Errors surface as axios errors with the flat body.
    err = run_js({**base, "action": "run", "flow_id": "flow_missing", "inputs": {}})
    assert err["status"] == 404 and err["body"] == {"error": "flow_not_found"}, err


def test_f3_kill_pipeline_terminates(llm_server: OpenloopServer, llm_raw: httpx.Client, flow_agent: str,
                                      fake_openai: FakeOpenAI) -> None:
    flow = save_flow(llm_raw, {"name": "long", "nodes": [{"id": "slow", "kind": "agent", "agent_id": flow_agent, "prompt": "flowkill wait"}]})
    fake_openai.enqueue(Reply(text="late", delay=30), match="flowkill wait")
    run_id = llm_raw.post("/start_pipeline", json={"saved_item_id": flow}).json()["run_id"]
    resp = llm_raw.post("/kill_pipeline", json={"run_id": run_id})
    assert resp.status_code == 200 and resp.json() == {"success": True, "run_id": run_id}, fmt_resp(resp)
    state = llm_raw.get("/get_pl_run", params={"run_id": run_id}).json()["state"]
    assert state in ("TERMINATING", "TERMINATED")
    deadline = time.time() + 30
    while state != "TERMINATED" and time.time() < deadline:
        time.sleep(0.05)
        state = llm_raw.get("/get_pl_run", params={"run_id": run_id}).json()["state"]
    assert state == "TERMINATED"
    with py_client(llm_server) as client:
        assert client.get_run_status(run_id)["log"][-1] == "Run terminated"


def test_f4_to_f7_shapes(llm_server: OpenloopServer, llm_raw: httpx.Client, summary_flow: str) -> None:
    items = llm_raw.get("/list_saved_items").json()["saved_items"]
    mine = next(i for i in items if i["saved_item_id"] == summary_flow)
    assert set(mine) == {"saved_item_id", "name", "description", "created_ts"} and mine["description"] == "conformance flow"
    books = llm_raw.get("/list_workbooks").json()["workbooks"]
    book = next(b for b in books if any(i["saved_item_id"] == summary_flow for i in b["saved_items"]))
    assert set(book) == {"workbook_id", "name", "description", "created_ts", "saved_items"}
    inputs = llm_raw.get("/get_inputs", params={"saved_item_id": summary_flow}).json()
    assert inputs == {"inputs": [{"name": "topic", "data_type": "string", "description": "what to write about"}]}
    by_book = llm_raw.get("/get_plrun_saved_item_map", params={"workbook_id": book["workbook_id"]}).json()
    runs = by_book[summary_flow]
    assert 1 <= len(runs) <= 10 and set(runs[0]) == {"run_id", "state", "created_ts", "finished_ts", "user_id"}
    assert [r["created_ts"] for r in runs] == sorted((r["created_ts"] for r in runs), reverse=True)
    for path, params, body in [
        ("/get_inputs", {}, {"error": "saved_item_id is required"}),
        ("/get_plrun_saved_item_map", {}, {"error": "workbook_id or saved_item_id is required"}),
        ("/get_plrun_saved_item_map", {"workbook_id": "wb_nope"}, {"error": "workbook_not_found"}),
        ("/get_inputs", {"saved_item_id": "nope"}, {"error": "flow_not_found"}),
    ]:
        resp = llm_raw.get(path, params=params)
        assert resp.json() == body, fmt_resp(resp)


def test_flow_tools_run_for_real(llm_server: OpenloopServer, llm_raw: httpx.Client, summary_flow: str) -> None:
    started = invoke_tool(llm_raw, "create_a_gumloop_flow_run", {"saved_item_id": summary_flow, "inputs": {"topic": "tools"}})
    assert started.status_code == 200, fmt_resp(started)
    run_id = started.json()["run_id"]
    deadline = time.time() + 60
    while True:
        got = invoke_tool(llm_raw, "get_single_gumloop_flow_run_by_id", {"id": run_id})
        assert got.status_code == 200, fmt_resp(got)
        if got.json()["state"] == "DONE" or time.time() > deadline:
            break
        time.sleep(0.05)
    assert got.json()["outputs"]["text"] == "ok: flowdraft tools | ok: flowagent tools"
    listed = invoke_tool(llm_raw, "list_all_gumloop_flows", {})
    assert any(i["saved_item_id"] == summary_flow for i in listed.json()["saved_items"])
