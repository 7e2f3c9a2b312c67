"""MCP servers as agent tools: the SDK's ``mcp.*`` group (MC1–MC9), registration (the
Openloop extension ``POST/PATCH/DELETE /mcp/servers``, and ``openloop mcp``), and
``agents.list/attach/detach_mcp_server`` (G12–G14), against a real MCP server (PyPI
``mcp``'s FastMCP over Streamable HTTP, started here) that requires a bearer token.

An agent with the server attached offers its tools to the model; the fake provider calls
them, the calls reach the server, and results come back in the transcript. Under
``approval_mode: write`` a tool marked ``readOnlyHint`` runs without asking and a write
tool asks first.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

import fake_openai as fo
from _support import OpenloopServer, SESSION_MODEL, assert_http_error, clean_env, expect_api_error, run_gumloop_cli, token, wait_session
from conftest import MAIN_RATE_LIMIT, MAIN_RATE_WINDOW, make_other_tenant
from fake_openai import FAKE_OPENAI_KEY, FakeOpenAI, ToolCall
from gumloop import Gumloop

HERE = Path(__file__).resolve().parent
MCP_TOKEN = "mcp-secret-" + token(16)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def call_log(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("mcp") / "calls.log"


@pytest.fixture(scope="module")
def notes_port(call_log: Path) -> Iterator[int]:
    """The FastMCP fixture server on 127.0.0.1 (requires ``Bearer MCP_TOKEN``)."""
    port = _free_port()
    env = dict(os.environ, CALL_LOG=str(call_log))
    proc = subprocess.Popen([sys.executable, str(HERE / "mcp_fixture_server.py"), str(port), MCP_TOKEN], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 30
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                break
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                err = proc.stderr.read().decode() if proc.stderr else ""
                proc.kill()
                pytest.fail(f"the FastMCP fixture server did not start: {err}")
            time.sleep(0.1)
    yield port
    proc.kill()
    proc.wait(timeout=10)


@pytest.fixture(scope="module")
def mcp_llm_server(start_server: Callable[..., OpenloopServer], fake_openai: FakeOpenAI, notes_port: int) -> OpenloopServer:
    """A server with the fake provider, allowed to reach the local MCP server (SSRF allow-list)."""
    return start_server(
        rate_limit=MAIN_RATE_LIMIT,
        rate_window=MAIN_RATE_WINDOW,
        extra_env={
            "OPENAI_BASE_URL": fake_openai.base_url,
            "OPENAI_API_KEY": FAKE_OPENAI_KEY,
            "OPENLOOP_SSRF_ALLOWLIST": f"127.0.0.1:{notes_port}",
            "OPENLOOP_RATE_LIMIT_UNAUTH_PER_MIN": "100000",
        },
    )


@pytest.fixture(scope="module")
def sdk(mcp_llm_server: OpenloopServer) -> Iterator[Gumloop]:
    client = mcp_llm_server.sdk(mcp_llm_server.admin_key, user_id=mcp_llm_server.admin_user_id)
    yield client
    client.close()


@pytest.fixture(scope="module")
def http(mcp_llm_server: OpenloopServer) -> Iterator[httpx.Client]:
    with mcp_llm_server.http(mcp_llm_server.admin_key, mcp_llm_server.admin_user_id) as client:
        yield client


@pytest.fixture(scope="module")
def notes(http: httpx.Client, notes_port: int) -> dict[str, Any]:
    """The fixture server registered as ``notes`` with its bearer token."""
    r = http.post("/mcp/servers", json={
        "id": "notes", "name": "Notes", "url": f"http://127.0.0.1:{notes_port}/mcp",
        "headers": {"Authorization": f"Bearer {MCP_TOKEN}"}, "description": "A notebook",
    })
    assert r.status_code == 201, r.text
    assert MCP_TOKEN not in r.text, "registered credentials are never echoed"
    return r.json()["server"]


def logged_calls(call_log: Path) -> list[dict[str, Any]]:
    if not call_log.exists():
        return []
    return [json.loads(line) for line in call_log.read_text().splitlines() if line.strip()]


# ---------------------------------------------------------------------------
# Registration (Openloop extension)
# ---------------------------------------------------------------------------


def test_register_shape_and_secrets_never_returned(notes: dict[str, Any], http: httpx.Client, notes_port: int) -> None:
    assert notes["server_id"] == "notes" and notes["name"] == "Notes" and notes["type"] == "http"
    assert notes["mcp_url"] == f"http://127.0.0.1:{notes_port}/mcp"
    assert notes["header_names"] == ["Authorization"]
    assert notes["gumloop_auth_url"] == ""
    listed = http.get("/mcp/servers")
    assert listed.status_code == 200 and MCP_TOKEN not in listed.text


def test_register_bad_inputs(http: httpx.Client, notes: dict[str, Any], notes_port: int) -> None:
    url = f"http://127.0.0.1:{notes_port}/mcp"
    assert_http_error(http.post("/mcp/servers", json={"id": "notes", "name": "again", "url": url}), 409, "mcp_server_already_exists", "id")
    assert_http_error(http.post("/mcp/servers", json={"name": "x"}), 400, "invalid_request", "url")
    assert_http_error(http.post("/mcp/servers", json={"name": "x", "url": "ftp://example.com/mcp"}), 400, "invalid_request", "url")
    assert_http_error(http.post("/mcp/servers", json={"name": "x", "url": "http://user:pw@example.com/mcp"}), 400, "invalid_request", "url")
    # Not on the allow-list: a private address is refused at registration (SSRF policy).
    assert_http_error(http.post("/mcp/servers", json={"name": "x", "url": "http://10.1.2.3:9999/mcp"}), 400, "invalid_request", "url")
    assert_http_error(http.post("/mcp/servers", json={"name": "", "url": url}), 400, "invalid_request", "name")
    assert_http_error(http.post("/mcp/servers", json={"name": "x", "url": url, "id": "bad/id"}), 400, "invalid_request", "id")
    assert_http_error(http.post("/mcp/servers", json={"name": "x", "url": url, "headers": {"Bad Header": "v"}}), 400, "invalid_request")
    assert_http_error(http.post("/mcp/servers", json={"name": "x", "url": url, "headers": {"X-A": "a\r\nb"}}), 400, "invalid_request")
    assert_http_error(http.post("/mcp/servers", json={"name": "x", "url": url, "nope": 1}), 400, "invalid_request", "nope")
    # stdio servers need the operator's consent.
    assert_http_error(http.post("/mcp/servers", json={"name": "x", "command": ["python", "-V"]}), 403, "permission_denied", "command")


def test_patch_and_delete(http: httpx.Client, notes_port: int) -> None:
    url = f"http://127.0.0.1:{notes_port}/mcp"
    sid = f"tmp-{token(6).lower()}"
    assert http.post("/mcp/servers", json={"id": sid, "name": "Temp", "url": url}).status_code == 201
    # Without the token the server answers 401: a clear 502 naming the server.
    assert_http_error(http.get(f"/mcp/servers/{sid}/tools"), 502, "mcp_server_error")
    r = http.patch(f"/mcp/servers/{sid}", json={"name": "Temp 2", "headers": {"Authorization": f"Bearer {MCP_TOKEN}"}})
    assert r.status_code == 200 and r.json()["server"]["name"] == "Temp 2" and MCP_TOKEN not in r.text, r.text
    assert http.get(f"/mcp/servers/{sid}/tools").status_code == 200
    assert_http_error(http.patch(f"/mcp/servers/{sid}", json={"url": "gopher://x"}), 400, "invalid_request", "url")
    d = http.delete(f"/mcp/servers/{sid}")
    assert d.status_code == 200 and d.json() == {"server_id": sid, "deleted": True}
    assert_http_error(http.get(f"/mcp/servers/{sid}"), 404, "mcp_server_not_found")
    assert_http_error(http.delete(f"/mcp/servers/{sid}"), 404, "mcp_server_not_found")


def test_other_tenant_sees_nothing(mcp_llm_server: OpenloopServer, notes: dict[str, Any]) -> None:
    other = make_other_tenant(mcp_llm_server)
    try:
        assert other.client.mcp.list_servers().servers == []
        expect_api_error(other.client.mcp.get_server, "notes", status=404, code="mcp_server_not_found")
        res = other.client.mcp.execute("notes", "list_notes")
        assert res.results[0].status == "error" and res.results[0].error["code"] == "mcp_server_not_found"
    finally:
        other.client.close()


# ---------------------------------------------------------------------------
# MC1–MC9 through the SDK
# ---------------------------------------------------------------------------


def test_mc1_mc2_mc3(sdk: Gumloop, notes: dict[str, Any]) -> None:
    servers = sdk.mcp.list_servers().servers
    assert "notes" in [s.server_id for s in servers]
    got = sdk.mcp.get_server("notes").server
    assert got.server_id == "notes" and got.status == "connected" and got.tool_count == 3, got
    accounts = sdk.mcp.list_accounts("notes")
    assert accounts.server_id == "notes" and [a.id for a in accounts.accounts] == ["default"]
    assert accounts.accounts[0].is_default
    expect_api_error(sdk.mcp.get_server, "nope", status=404, code="mcp_server_not_found")


def test_mc4_tools_with_annotations(sdk: Gumloop, notes: dict[str, Any]) -> None:
    tools = {t.name: t for t in sdk.mcp.list_tools("notes").tools}
    assert set(tools) == {"add_note", "list_notes", "fail"}, tools
    assert tools["add_note"].tool_call_id == "notes/add_note"
    assert tools["add_note"].input_schema["properties"]["text"]["type"] == "string"
    assert tools["add_note"].description == "Add a note to the notebook."


def test_mc5_mc6_resources(sdk: Gumloop, notes: dict[str, Any]) -> None:
    sdk.mcp.execute("notes", "add_note", {"text": "resource check"})
    resources = sdk.mcp.list_resources("notes").resources
    assert [r.uri for r in resources] == ["notes://all"], resources
    assert resources[0].mime_type == "text/plain"
    read = sdk.mcp.get_resource("notes", "notes://all")
    assert read.uri == "notes://all" and "resource check" in (read.text or ""), read


def test_mc7_mc8_prompts(sdk: Gumloop, notes: dict[str, Any]) -> None:
    prompts = sdk.mcp.list_prompts("notes").prompts
    assert [p.name for p in prompts] == ["summarize"]
    assert [a.name for a in prompts[0].arguments] == ["topic"] and prompts[0].arguments[0].required
    got = sdk.mcp.get_prompt("notes", "summarize", {"topic": "otters"})
    assert got.name == "summarize" and got.messages and got.messages[0].role == "user"
    assert "otters" in got.messages[0].content.get("text", ""), got.messages


def test_mc9_execute_and_execute_many(sdk: Gumloop, notes: dict[str, Any], http: httpx.Client, call_log: Path) -> None:
    tok = token()
    one = sdk.mcp.execute("notes", "add_note", {"text": f"direct {tok}"}, ref="r1")
    assert len(one.results) == 1 and one.results[0].ref == "r1" and one.results[0].status == "success", one
    assert f"direct {tok}" in one.results[0].content[0]
    assert {"tool": "add_note", "arguments": {"text": f"direct {tok}"}} in logged_calls(call_log), "the call reached the server"
    many = sdk.mcp.execute_many([
        {"server_id": "notes", "tool_name": "list_notes"},
        {"server_id": "notes", "tool_name": "fail"},
        {"server_id": "missing", "tool_name": "x"},
    ])
    assert [r.ref for r in many.results] == ["0", "1", "2"]
    assert many.results[0].status == "success" and f"direct {tok}" in many.results[0].decoded_content[0]
    assert many.results[1].status == "error" and "on purpose" in many.results[1].error["message"], many.results[1]
    assert many.results[2].status == "error" and many.results[2].error["code"] == "mcp_server_not_found"
    # Raw: 207 when some calls failed, 200 when all succeeded; 1–5 calls.
    assert http.post("/mcp/tools/call", json={"calls": [{"server_id": "notes", "tool_name": "fail"}]}).status_code == 207
    assert http.post("/mcp/tools/call", json={"calls": [{"server_id": "notes", "tool_name": "list_notes"}]}).status_code == 200
    assert_http_error(http.post("/mcp/tools/call", json={"calls": []}), 400, "invalid_request", "calls")
    six = [{"server_id": "notes", "tool_name": "list_notes"}] * 6
    assert_http_error(http.post("/mcp/tools/call", json={"calls": six}), 400, "invalid_request", "calls")
    assert_http_error(http.post("/mcp/tools/call", json={"calls": [{"server_id": "notes"}]}), 400, "invalid_request")
    bad_account = {"calls": [{"server_id": "notes", "tool_name": "list_notes", "account": "acct_x"}]}
    assert_http_error(http.post("/mcp/tools/call", json=bad_account), 400, "invalid_request", "calls[0].account")


# ---------------------------------------------------------------------------
# G12–G14 and agents using the server's tools
# ---------------------------------------------------------------------------


def new_agent(sdk: Gumloop, **kwargs: Any) -> str:
    return sdk.agents.create(name=f"mcp {token()}", model_name=SESSION_MODEL, **kwargs).agent.id


def test_g12_g13_g14(sdk: Gumloop, notes: dict[str, Any]) -> None:
    aid = new_agent(sdk)
    assert sdk.agents.list_mcp_servers(aid).mcp_servers == []
    att = sdk.agents.attach_mcp_server(aid, "notes", approval_mode="write", restricted_tools=["add_note", "list_notes"])
    assert att.agent_id == aid and att.created and att.mcp_server.server_id == "notes", att
    assert att.mcp_server.type == "mcp_server" and att.mcp_server.approval_mode == "write"
    again = sdk.agents.attach_mcp_server(aid, "notes", approval_mode="all")
    assert not again.created and again.mcp_server.approval_mode == "all" and again.version == att.version + 1
    listed = sdk.agents.list_mcp_servers(aid).mcp_servers
    assert [(m.server_id, m.approval_mode) for m in listed] == [("notes", "all")]
    assert [t.type for t in sdk.agents.retrieve(aid).agent.tools or [] if t.type == "mcp_server"] == ["mcp_server"]
    expect_api_error(sdk.agents.attach_mcp_server, aid, "missing", status=404, code="mcp_server_not_found")
    expect_api_error(sdk.agents.attach_mcp_server, aid, "notes", approval_mode="sometimes", status=400, code="invalid_request")
    det = sdk.agents.detach_mcp_server(aid, "notes")
    assert det.detached and det.server_id == "notes"
    assert not sdk.agents.detach_mcp_server(aid, "notes").detached, "detach is idempotent"
    assert sdk.agents.list_mcp_servers(aid).mcp_servers == []
    expect_api_error(sdk.agents.list_mcp_servers, "agt_missing", status=404, code="agent_not_found")


def test_agent_calls_read_only_tool_without_approval(
    sdk: Gumloop, notes: dict[str, Any], fake_openai: FakeOpenAI, call_log: Path
) -> None:
    aid = new_agent(sdk)
    sdk.agents.attach_mcp_server(aid, "notes", approval_mode="write")
    tok = token()
    sdk.mcp.execute("notes", "add_note", {"text": f"seed {tok}"})
    fake_openai.enqueue(fo.tool_calls([ToolCall("notes__list_notes")], text="Looking."), fo.text(f"Found it {tok}."), match=tok)
    sid = sdk.sessions.create(aid, input=f"what notes are there {tok}").session.id
    done = wait_session(sdk, sid)
    assert done.state == "completed", f"readOnlyHint skips approval under write mode: {done}"
    reqs = fake_openai.requests(match=tok)
    offered = {t["function"]["name"]: t["function"] for t in reqs[0].body.get("tools", [])}
    assert {"notes__add_note", "notes__list_notes", "notes__fail"} <= set(offered), offered
    assert offered["notes__add_note"]["parameters"]["properties"]["text"]["type"] == "string"
    tool_msgs = [fo.message_text(m) for m in reqs[1].body["messages"] if m.get("role") == "tool"]
    assert len(tool_msgs) == 1 and f"seed {tok}" in tool_msgs[0], tool_msgs
    parts = [p for m in done.messages if m.role == "assistant" for p in (m.parts or []) if p.get("type") == "tool_invocation"]
    assert len(parts) == 1 and parts[0]["toolCallState"] == "completed", parts
    assert f"seed {tok}" in json.dumps(parts[0]["result"]), "the result is in the transcript"


def test_agent_write_tool_asks_then_reaches_server(
    sdk: Gumloop, notes: dict[str, Any], fake_openai: FakeOpenAI, call_log: Path
) -> None:
    aid = new_agent(sdk)
    sdk.agents.attach_mcp_server(aid, "notes", approval_mode="write")
    tok = token()
    fake_openai.enqueue(
        fo.tool_calls([ToolCall("notes__add_note", {"text": f"from agent {tok}"})], text="Adding."),
        fo.text(f"Added {tok}."),
        match=tok,
    )
    sid = sdk.sessions.create(aid, input=f"note this {tok}").session.id
    paused = wait_session(sdk, sid)
    assert paused.state == "approval_required", f"a write tool asks under write mode: {paused}"
    assert not [c for c in logged_calls(call_log) if c["arguments"].get("text") == f"from agent {tok}"], "nothing ran before approval"
    ask = paused.pending_approvals[0]
    sdk.sessions.resolve_approvals(sid, approval_responses=[{"action_request_id": ask.action_request_id, "action": "accept"}])
    done = wait_session(sdk, sid)
    assert done.state == "completed", done
    assert {"tool": "add_note", "arguments": {"text": f"from agent {tok}"}} in logged_calls(call_log)
    assert (done.messages[-1].content or "").endswith(f"Added {tok}."), done.messages[-1]


def test_restricted_tools_and_disabled_entry(sdk: Gumloop, notes: dict[str, Any], fake_openai: FakeOpenAI) -> None:
    aid = new_agent(sdk)
    sdk.agents.attach_mcp_server(aid, "notes", restricted_tools=["list_notes"])
    tok = token()
    fake_openai.enqueue(fo.text(f"ok {tok}"), match=tok)
    wait_session(sdk, sdk.sessions.create(aid, input=f"hi {tok}").session.id)
    names = {t["function"]["name"] for t in fake_openai.requests(match=tok)[0].body.get("tools", [])}
    assert "notes__list_notes" in names and "notes__add_note" not in names, names
    sdk.agents.attach_mcp_server(aid, "notes", is_disabled=True)
    tok2 = token()
    fake_openai.enqueue(fo.text(f"ok {tok2}"), match=tok2)
    wait_session(sdk, sdk.sessions.create(aid, input=f"hi {tok2}").session.id)
    names = {t["function"]["name"] for t in fake_openai.requests(match=tok2)[0].body.get("tools", [])}
    assert not any(n.startswith("notes__") for n in names), names


# ---------------------------------------------------------------------------
# CLI: openloop mcp add|list|tools|remove
# ---------------------------------------------------------------------------


def test_cli_add_list_tools_remove(mcp_llm_server: OpenloopServer, notes_port: int) -> None:
    env = clean_env({
        "OPENLOOP_URL": mcp_llm_server.url,
        "OPENLOOP_API_KEY": mcp_llm_server.admin_key,
        "GUMLOOP_USER_ID": mcp_llm_server.admin_user_id,
        "NOTES_TOKEN": f"Bearer {MCP_TOKEN}",
    })

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([mcp_llm_server.binary, "mcp", *args], env=env, capture_output=True, text=True, timeout=60)

    sid = f"cli-{token(6).lower()}"
    add = cli("add", "CLI notes", f"http://127.0.0.1:{notes_port}/mcp", "--id", sid, "--header-env", "Authorization=NOTES_TOKEN")
    assert add.returncode == 0, add.stderr
    assert json.loads(add.stdout)["server_id"] == sid and MCP_TOKEN not in add.stdout + add.stderr
    listed = cli("list")
    assert listed.returncode == 0 and sid in [s["server_id"] for s in json.loads(listed.stdout)["servers"]]
    tools = cli("tools", sid)
    assert tools.returncode == 0, tools.stderr
    assert {t["name"] for t in json.loads(tools.stdout)["tools"]} == {"add_note", "list_notes", "fail"}
    dup = cli("add", "again", f"http://127.0.0.1:{notes_port}/mcp", "--id", sid)
    assert dup.returncode == 1 and "already registered" in dup.stderr, dup.stderr
    rm = cli("remove", sid)
    assert rm.returncode == 0 and json.loads(rm.stdout)["deleted"] is True
    missing = cli("remove", sid)
    assert missing.returncode == 1 and "does not exist" in missing.stderr


# ---------------------------------------------------------------------------
# stdio servers (operator opt-in)
# ---------------------------------------------------------------------------


def test_stdio_server_when_allowed(start_server: Callable[..., OpenloopServer], tmp_path: Path) -> None:
    srv = start_server(rate_limit=MAIN_RATE_LIMIT, rate_window=MAIN_RATE_WINDOW, extra_env={"OPENLOOP_MCP_ALLOW_STDIO": "true"})
    log = tmp_path / "stdio-calls.log"
    with srv.http(srv.admin_key, srv.admin_user_id) as http:
        r = http.post("/mcp/servers", json={
            "id": "local-notes", "name": "Local notes", "command": [sys.executable, str(HERE / "mcp_fixture_server.py"), "stdio"],
            "env": {"CALL_LOG": str(log)},
        })
        assert r.status_code == 201, r.text
        server = r.json()["server"]
        assert server["type"] == "stdio" and server["mcp_url"] is None and str(log) not in r.text, server
        tools = http.get("/mcp/servers/local-notes/tools")
        assert tools.status_code == 200 and {t["name"] for t in tools.json()["tools"]} == {"add_note", "list_notes", "fail"}
        res = http.post("/mcp/tools/call", json={"calls": [{"server_id": "local-notes", "tool_name": "add_note", "arguments": {"text": "over stdio"}}]})
        assert res.status_code == 200 and "over stdio" in res.json()["results"][0]["content"][0], res.text
    assert {"tool": "add_note", "arguments": {"text": "over stdio"}} in logged_calls(log), "the child process got the call and its env"


# ---------------------------------------------------------------------------
# The gumloop CLI's `mcp` commands against Openloop
# ---------------------------------------------------------------------------


def test_gumloop_cli_mcp_commands(mcp_llm_server: OpenloopServer, notes: dict[str, Any], tmp_path: Path) -> None:
    home = str(tmp_path)

    def ok(*args: str) -> Any:
        proc = run_gumloop_cli(mcp_llm_server, home, "mcp", *args, "--json", text=True)
        assert proc.returncode == 0, f"gumloop mcp {args}: {proc.stdout} {proc.stderr}"
        return json.loads(proc.stdout)

    listed = ok("list")
    ids = [s["server_id"] for s in (listed["servers"] if isinstance(listed, dict) else listed)]
    assert "notes" in ids, listed
    got = ok("get", "notes")
    assert (got.get("server") or got)["server_id"] == "notes", got
    assert "default" in json.dumps(ok("accounts", "notes"))
    assert "add_note" in json.dumps(ok("tools", "notes"))
    tok = token()
    called = ok("call", "notes", "add_note", "--args-json", json.dumps({"text": f"cli {tok}"}))
    assert called["results"][0]["status"] == "success" and f"cli {tok}" in json.dumps(called), called
    assert "notes://all" in json.dumps(ok("resources", "notes"))
    assert f"cli {tok}" in json.dumps(ok("resource", "notes", "notes://all"))
    assert "summarize" in json.dumps(ok("prompts", "notes"))
    rendered = ok("prompt", "notes", "summarize", "--args-json", json.dumps({"topic": "otters"}))
    assert "otters" in json.dumps(rendered), rendered
