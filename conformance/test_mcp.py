"""§10.4 Openloop's MCP server (Streamable HTTP, JSON responses) at ``/api/v1/tools/mcp``.

The official Python ``mcp`` client (``streamablehttp_client`` + ``ClientSession``, bearer key in
``headers``) drives initialize, tools/list and seed workflow 1 through tools/call; raw httpx checks
the transport rules (405 on GET, 401 with ``WWW-Authenticate``, 202 for notifications, session ids,
``Origin``, JSON-RPC error codes, protocol version negotiation, one quota unit per HTTP request).
"""

from __future__ import annotations

import json
import time
import warnings
from collections.abc import Callable
from typing import Any

import anyio
import httpx
import pytest

from gumloop import Gumloop

import fake_openai as fo
from _support import (
    MCP_PROTOCOL_VERSIONS,
    SESSION_MODEL,
    SESSION_STOP_STATES,
    TOOL_CATALOGUE,
    TOOL_NAMES,
    OpenloopServer,
    assert_envelope,
    assert_ratelimit_headers,
    fmt_resp,
    token,
)
from fake_openai import FAKE_OPENAI_KEY, FakeOpenAI

MCP_PATH = "/tools/mcp"
ACCEPT = "application/json, text/event-stream"
LATEST = MCP_PROTOCOL_VERSIONS[0]
REPORT = "MCP report \u2713\nline two\n"
REPORT_NAME = "mcp-report.txt"
UNKNOWN_SESSION = "sess_AAAAAAAAAAAAAAAAAAAAAA"
ALLOWED_ORIGIN = "http://app.conformance.test"
QUOTA = 5
QUOTA_WINDOW = 20


# ---------------------------------------------------------------------------
# Raw JSON-RPC over HTTP
# ---------------------------------------------------------------------------


def rpc(method: str, params: dict[str, Any] | None = None, id: int | str | None = 1) -> dict[str, Any]:
    msg: dict[str, Any] = {"jsonrpc": "2.0", "method": method}
    if params is not None:
        msg["params"] = params
    if id is not None:
        msg["id"] = id
    return msg


def init_params(version: str) -> dict[str, Any]:
    return {"protocolVersion": version, "capabilities": {}, "clientInfo": {"name": "openloop-conformance", "version": "1.0"}}


def mcp_post(client: httpx.Client, message: Any, *, session_id: str | None = None, version: str | None = None,
             headers: dict[str, str] | None = None) -> httpx.Response:
    h = {"Accept": ACCEPT, "Content-Type": "application/json"}
    if session_id:
        h["Mcp-Session-Id"] = session_id
    if version:
        h["MCP-Protocol-Version"] = version
    h.update(headers or {})
    return client.post(MCP_PATH, content=json.dumps(message).encode("utf-8"), headers=h)


def rpc_result(resp: httpx.Response, id: int | str = 1) -> Any:
    assert resp.status_code == 200, f"JSON-RPC requests answer 200: {fmt_resp(resp)}"
    assert resp.headers.get("content-type", "").startswith("application/json"), (
        f"responses are application/json (no SSE): {fmt_resp(resp)}"
    )
    body = resp.json()
    assert body.get("jsonrpc") == "2.0" and body.get("id") == id, body
    assert "error" not in body and "result" in body, f"expected a result: {body}"
    return body["result"]


def rpc_error(resp: httpx.Response, id: int | str = 1) -> dict[str, Any]:
    assert resp.status_code == 200, f"JSON-RPC errors travel in a 200 response: {fmt_resp(resp)}"
    body = resp.json()
    assert body.get("jsonrpc") == "2.0" and body.get("id") == id, body
    assert "result" not in body and isinstance(body.get("error"), dict), f"expected a JSON-RPC error: {body}"
    err = body["error"]
    assert isinstance(err.get("code"), int) and isinstance(err.get("message"), str), err
    return err


def initialize(client: httpx.Client, version: str = LATEST) -> tuple[str, dict[str, Any]]:
    """initialize + notifications/initialized; returns (Mcp-Session-Id, InitializeResult)."""
    resp = mcp_post(client, rpc("initialize", init_params(version)))
    result = rpc_result(resp)
    sid = resp.headers.get("mcp-session-id")
    assert sid and all(0x21 <= ord(c) <= 0x7E for c in sid), f"initialize returns Mcp-Session-Id: {dict(resp.headers)}"
    note = mcp_post(client, rpc("notifications/initialized", id=None), session_id=sid, version=result["protocolVersion"])
    assert note.status_code == 202 and note.content == b"", f"a notification answers 202 without body: {fmt_resp(note)}"
    return sid, result


def assert_call_result(result: dict[str, Any], status: int) -> dict[str, Any]:
    """§10.4 tools/call result; returns structuredContent."""
    assert set(result) >= {"content", "structuredContent", "isError"}, result
    structured = result["structuredContent"]
    assert isinstance(structured, dict) and {"status", "headers", "body"} <= set(structured), result
    assert structured["status"] == status, f"expected status {status}: {result}"
    assert result["isError"] is (status >= 400), f"isError = status >= 400: {result}"
    content = result["content"]
    assert isinstance(content, list) and content and content[0].get("type") == "text", result
    assert json.loads(content[0]["text"]) == {"status": structured["status"], "body": structured["body"]}, (
        f"the text content is the JSON of {{status, body}}: {content[0]['text'][:500]}"
    )
    assert isinstance(structured["headers"], dict), structured
    return structured


def lower_headers(structured: dict[str, Any]) -> dict[str, str]:
    return {str(k).lower(): str(v) for k, v in structured["headers"].items()}


# ---------------------------------------------------------------------------
# Official client
# ---------------------------------------------------------------------------


def mcp_url(srv: OpenloopServer) -> str:
    return f"{srv.api_url}{MCP_PATH}"


def with_client(srv: OpenloopServer, key: str, body: Callable[[Any, Any], Any]) -> Any:
    """Run ``await body(session, init_result)`` inside an official-client MCP session."""
    from mcp import ClientSession
    from mcp.client.streamable_http import streamablehttp_client

    async def main() -> Any:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            transport = streamablehttp_client(mcp_url(srv), headers={"Authorization": f"Bearer {key}"}, timeout=60)
        async with transport as (read, write, _get_session_id):
            async with ClientSession(read, write) as session:
                init = await session.initialize()
                return await body(session, init)

    return anyio.run(main)


def dump(model: Any) -> dict[str, Any]:
    return model.model_dump(mode="json", by_alias=True, exclude_none=True)


async def call(session: Any, name: str, args: dict[str, Any], status: int) -> dict[str, Any]:
    result = dump(await session.call_tool(name, args))
    result.setdefault("isError", False)
    return assert_call_result(result, status)


# ---------------------------------------------------------------------------
# Fixtures
# ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def mcp_listing(raw: httpx.Client) -> list[dict[str, Any]]:
    resp = raw.get("/tools", params={"format": "mcp"})
    assert resp.status_code == 200, fmt_resp(resp)
    return resp.json()["tools"]


@pytest.fixture(scope="module")
def mcp_quota_server(start_server: Callable[..., OpenloopServer]) -> OpenloopServer:
    return start_server(rate_limit=QUOTA, rate_window=QUOTA_WINDOW)


@pytest.fixture(scope="module")
def origin_server(start_server: Callable[..., OpenloopServer]) -> OpenloopServer:
    return start_server(rate_limit=100_000, extra_env={"OPENLOOP_CORS_ORIGINS": ALLOWED_ORIGIN})


@pytest.fixture(scope="module")
def mcp_agent(llm_admin: Gumloop) -> str:
    return llm_admin.agents.create(name=f"mcp {token()}", model_name=SESSION_MODEL).agent.id


# ---------------------------------------------------------------------------
# Official client: initialize, tools/list, seed workflow 1, 429
# ---------------------------------------------------------------------------


def test_10_4_official_client_initialize_and_list_tools(server: OpenloopServer, mcp_listing: list[dict[str, Any]]) -> None:
    async def body(session: Any, init: Any) -> Any:
        return init, await session.list_tools()

    init, listed = with_client(server, server.admin_key, body)
    # The client offers its newest version; the server answers one it supports (here its latest).
    assert init.protocolVersion == LATEST, init
    assert init.serverInfo.name == "openloop" and isinstance(init.serverInfo.version, str) and init.serverInfo.version
    assert init.capabilities.tools is not None and init.capabilities.tools.listChanged is False, init.capabilities
    tools = [dump(t) for t in listed.tools]
    assert [t["name"] for t in tools] == TOOL_NAMES, "tools/list: the 16 tools of §10.1 in catalogue order"
    for spec, tool, listed_item in zip(TOOL_CATALOGUE, tools, mcp_listing):
        for key in ("name", "title", "description", "inputSchema"):
            assert tool.get(key) == listed_item.get(key), f"{spec.name}.{key}: tools/list = GET /tools?format=mcp"
        ann = tool.get("annotations") or {}
        for key in ("readOnlyHint", "destructiveHint", "idempotentHint", "openWorldHint"):
            assert ann.get(key) == listed_item["annotations"][key], f"{spec.name}.annotations.{key}"
        assert ann.get("readOnlyHint") is spec.read_only and ann.get("openWorldHint") is False, (spec.name, ann)
    assert listed.nextCursor is None, "tools/list is unpaginated"


def test_10_4_official_client_seed_workflow_1(
    llm_server: OpenloopServer, mcp_agent: str, fake_openai: FakeOpenAI
) -> None:
    run_tok = token()
    fake_openai.enqueue(
        fo.tool_call("write_artifact", {"filename": REPORT_NAME, "content": REPORT}),
        fo.text(f"mcp report saved {run_tok}"),
        match=run_tok,
    )

    async def body(session: Any, init: Any) -> dict[str, Any]:
        created = await call(session, "create_a_gumloop_session",
                             {"agent_id": mcp_agent, "input": f"write it {run_tok}"}, 202)
        hdrs = lower_headers(created)
        for name in ("ratelimit-limit", "ratelimit-remaining", "ratelimit-reset"):
            assert name in hdrs, f"structuredContent.headers carries {name}: {created['headers']}"
        session_obj = created["body"]["session"]
        assert session_obj["state"] in ("processing", "queued"), created
        assert session_obj.get("type") == "tool", f"sessions created by tools have type 'tool': {session_obj}"
        sid = session_obj["id"]
        deadline = time.monotonic() + 60
        while True:
            polled = await call(session, "get_single_gumloop_session_by_id", {"id": sid}, 200)
            state = polled["body"]["session"]["state"]
            if state in SESSION_STOP_STATES:
                break
            assert time.monotonic() < deadline, f"session {sid} still {state}"
            await anyio.sleep(0.1)
        assert state == "completed", polled
        listed = await call(session, "list_all_gumloop_artifacts", {"agent_id": mcp_agent, "session_id": sid}, 200)
        # An endpoint error (here 404) is an isError result, not a protocol error.
        busy = await call(session, "get_single_gumloop_session_by_id", {"id": UNKNOWN_SESSION}, 404)
        assert_envelope(busy["body"], 404, "session_not_found")
        return {"sid": sid, "artifacts": listed["body"]["artifacts"]}

    out = with_client(llm_server, llm_server.admin_key, body)
    assert [a["filename"] for a in out["artifacts"]] == [REPORT_NAME], out
    download = httpx.get(out["artifacts"][0]["url"], timeout=30.0)
    assert download.status_code == 200, f"{download.status_code}: {download.text[:300]}"
    assert download.content == REPORT.encode("utf-8")
    assert fake_openai.pending(run_tok) == 0


def test_10_4_official_client_429_is_an_error_result(mcp_quota_server: OpenloopServer) -> None:
    srv = mcp_quota_server
    key = srv.create_key(user=srv.admin_user_id, name="mcp-client-quota")["secret"]

    async def body(session: Any, init: Any) -> list[dict[str, Any]]:
        seen = []
        for _ in range(QUOTA + 3):
            result = dump(await session.call_tool("list_all_gumloop_models", {}))
            result.setdefault("isError", False)
            seen.append(result)
            if result.get("structuredContent", {}).get("status") == 429:
                break
        return seen

    seen = with_client(srv, key, body)
    limited = seen[-1]
    structured = assert_call_result(limited, 429)
    assert all(r["structuredContent"]["status"] == 200 for r in seen[:-1]), seen
    assert_envelope(structured["body"], 429, "rate_limited")
    hdrs = lower_headers(structured)
    for name in ("ratelimit-limit", "ratelimit-remaining", "ratelimit-reset", "retry-after"):
        assert name in hdrs, f"a 429 result carries {name} in structuredContent.headers: {structured['headers']}"
    assert hdrs["ratelimit-limit"] == str(QUOTA) and hdrs["ratelimit-remaining"] == "0", hdrs
    assert int(hdrs["ratelimit-reset"]) >= 1 and hdrs["retry-after"] == hdrs["ratelimit-reset"], hdrs


# ---------------------------------------------------------------------------
# Raw transport rules
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("version", MCP_PROTOCOL_VERSIONS)
def test_10_4_protocol_versions_negotiate(raw: httpx.Client, mcp_listing: list[dict[str, Any]], version: str) -> None:
    sid, result = initialize(raw, version)
    assert result["protocolVersion"] == version, f"a supported version is echoed: {result}"
    assert result["serverInfo"]["name"] == "openloop" and isinstance(result["serverInfo"].get("version"), str), result
    assert result["capabilities"].get("tools", {}).get("listChanged") is False, result
    tools = rpc_result(mcp_post(raw, rpc("tools/list", {}, id=2), session_id=sid, version=version), 2)
    assert tools["tools"] == mcp_listing, "tools/list = GET /tools?format=mcp (unpaginated)"
    assert tools.get("nextCursor") is None, tools
    assert rpc_result(mcp_post(raw, rpc("ping", id="p-1"), session_id=sid, version=version), "p-1") == {}


def test_10_4_unsupported_version_gets_a_supported_one(raw: httpx.Client) -> None:
    result = rpc_result(mcp_post(raw, rpc("initialize", init_params("2099-01-01"))))
    assert result["protocolVersion"] in MCP_PROTOCOL_VERSIONS, result


def test_10_4_get_is_405(raw: httpx.Client) -> None:
    sid, _ = initialize(raw)
    resp = raw.get(MCP_PATH, headers={"Accept": "text/event-stream", "Mcp-Session-Id": sid})
    assert resp.status_code == 405, f"no server-initiated stream: {fmt_resp(resp)}"
    assert "POST" in resp.headers.get("allow", ""), dict(resp.headers)


@pytest.mark.parametrize("auth", [None, "Bearer olk_not_a_key", "Bearer " + "x" * 40])
def test_10_4_401_with_www_authenticate(anon: httpx.Client, auth: str | None) -> None:
    headers = {"Accept": ACCEPT, "Content-Type": "application/json"}
    if auth:
        headers["Authorization"] = auth
    resp = anon.post(f"/api/v1{MCP_PATH}", content=json.dumps(rpc("initialize", init_params(LATEST))), headers=headers)
    assert resp.status_code == 401, fmt_resp(resp)
    assert resp.headers.get("www-authenticate", "").startswith("Bearer"), dict(resp.headers)


def test_10_4_notifications_and_responses_are_202_without_body(raw: httpx.Client) -> None:
    sid, _ = initialize(raw)
    for message in (
        rpc("notifications/initialized", id=None),
        rpc("notifications/cancelled", {"requestId": 7, "reason": "test"}, id=None),
        {"jsonrpc": "2.0", "id": 99, "result": {}},
    ):
        resp = mcp_post(raw, message, session_id=sid, version=LATEST)
        assert resp.status_code == 202, f"{message}: {fmt_resp(resp)}"
        assert resp.content == b"", f"202 has no body: {fmt_resp(resp)}"


def test_10_4_unknown_session_id_is_404(raw: httpx.Client) -> None:
    resp = mcp_post(raw, rpc("tools/list", {}), session_id=f"mcp-unknown-{token(16)}", version=LATEST)
    assert resp.status_code == 404, fmt_resp(resp)


def test_10_4_delete_ends_the_session(raw: httpx.Client) -> None:
    sid, _ = initialize(raw)
    assert rpc_result(mcp_post(raw, rpc("ping"), session_id=sid, version=LATEST)) == {}
    resp = raw.delete(MCP_PATH, headers={"Mcp-Session-Id": sid, "MCP-Protocol-Version": LATEST})
    assert resp.status_code == 204 and resp.content == b"", fmt_resp(resp)
    after = mcp_post(raw, rpc("ping"), session_id=sid, version=LATEST)
    assert after.status_code == 404, f"an ended session id is unknown: {fmt_resp(after)}"


def test_10_4_sessions_are_per_key(server: OpenloopServer, raw: httpx.Client, other_tenant: Any) -> None:
    sid, _ = initialize(raw)
    with server.http(other_tenant.key) as other:
        resp = mcp_post(other, rpc("tools/list", {}), session_id=sid, version=LATEST)
        assert resp.status_code == 404, f"another key cannot use this MCP session: {fmt_resp(resp)}"


def test_10_4_unknown_method_is_32601(raw: httpx.Client) -> None:
    sid, _ = initialize(raw)
    for i, method in enumerate(("resources/list", "prompts/list", "tools/unknown", "completion/complete"), start=1):
        err = rpc_error(mcp_post(raw, rpc(method, {}, id=i), session_id=sid, version=LATEST), i)
        assert err["code"] == -32601, f"{method}: {err}"


def test_10_4_unknown_tool_is_32602(raw: httpx.Client) -> None:
    sid, _ = initialize(raw)
    err = rpc_error(mcp_post(raw, rpc("tools/call", {"name": "no_such_tool", "arguments": {}}, id=5),
                             session_id=sid, version=LATEST), 5)
    assert err["code"] == -32602, err


def test_10_4_disallowed_origin_is_403(raw: httpx.Client, origin_server: OpenloopServer) -> None:
    resp = mcp_post(raw, rpc("initialize", init_params(LATEST)), headers={"Origin": "http://evil.example"})
    assert resp.status_code == 403, f"no OPENLOOP_CORS_ORIGINS: every Origin is refused: {fmt_resp(resp)}"
    with origin_server.http(origin_server.admin_key) as client:
        ok = mcp_post(client, rpc("initialize", init_params(LATEST)), headers={"Origin": ALLOWED_ORIGIN})
        assert rpc_result(ok)["protocolVersion"] == LATEST
        bad = mcp_post(client, rpc("initialize", init_params(LATEST)), headers={"Origin": "http://evil.example"})
        assert bad.status_code == 403, fmt_resp(bad)


def test_10_4_tools_call_result_shape(raw: httpx.Client, server: OpenloopServer) -> None:
    sid, _ = initialize(raw)
    direct = raw.get("/models")
    assert direct.status_code == 200
    res = rpc_result(mcp_post(raw, rpc("tools/call", {"name": "list_all_gumloop_models", "arguments": {}}, id=3),
                              session_id=sid, version=LATEST), 3)
    structured = assert_call_result(res, 200)
    assert structured["body"] == direct.json(), "tools/call runs the endpoint (§10.3)"
    hdrs = lower_headers(structured)
    assert hdrs.get("ratelimit-limit") == str(server.rate_limit), structured["headers"]
    assert "ratelimit-remaining" in hdrs and "ratelimit-reset" in hdrs, structured["headers"]
    assert "retry-after" not in hdrs, "retry-after only when present (a 429)"

    missing = rpc_result(mcp_post(raw, rpc("tools/call", {"name": "get_single_gumloop_session_by_id",
                                                          "arguments": {"id": UNKNOWN_SESSION}}, id=4),
                                   session_id=sid, version=LATEST), 4)
    assert_envelope(assert_call_result(missing, 404)["body"], 404, "session_not_found")

    invalid = rpc_result(mcp_post(raw, rpc("tools/call", {"name": "create_a_gumloop_session", "arguments": {}}, id=6),
                                   session_id=sid, version=LATEST), 6)
    assert_envelope(assert_call_result(invalid, 400)["body"], 400, "invalid_request", param="agent_id")


def test_10_4_each_http_request_costs_one_unit_and_429_is_an_error_result(mcp_quota_server: OpenloopServer) -> None:
    srv = mcp_quota_server
    key = srv.create_key(user=srv.admin_user_id, name="mcp-raw-quota")["secret"]
    with srv.http(key) as client:
        remaining = []
        init = mcp_post(client, rpc("initialize", init_params(LATEST)))
        rpc_result(init)
        remaining.append(assert_ratelimit_headers(init, QUOTA, QUOTA_WINDOW)[0])
        sid = init.headers["mcp-session-id"]
        note = mcp_post(client, rpc("notifications/initialized", id=None), session_id=sid, version=LATEST)
        assert note.status_code == 202, fmt_resp(note)
        remaining.append(assert_ratelimit_headers(note, QUOTA, QUOTA_WINDOW)[0])
        ping = mcp_post(client, rpc("ping", id=2), session_id=sid, version=LATEST)
        rpc_result(ping, 2)
        remaining.append(assert_ratelimit_headers(ping, QUOTA, QUOTA_WINDOW)[0])
        for i, name in enumerate(("list_all_gumloop_models", "list_all_gumloop_agents"), start=3):
            resp = mcp_post(client, rpc("tools/call", {"name": name, "arguments": {}}, id=i), session_id=sid, version=LATEST)
            structured = assert_call_result(rpc_result(resp, i), 200)
            http_remaining = assert_ratelimit_headers(resp, QUOTA, QUOTA_WINDOW)[0]
            remaining.append(http_remaining)
            assert lower_headers(structured).get("ratelimit-remaining") == str(http_remaining), (
                f"the tool call is the same quota unit as its HTTP request: {structured['headers']} vs {http_remaining}"
            )
        assert remaining == [4, 3, 2, 1, 0], f"each MCP HTTP request costs one unit (§10.4): {remaining}"

        resp = mcp_post(client, rpc("tools/call", {"name": "list_all_gumloop_models", "arguments": {}}, id=9),
                        session_id=sid, version=LATEST)
        structured = assert_call_result(rpc_result(resp, 9), 429)
        assert_envelope(structured["body"], 429, "rate_limited")
        hdrs = lower_headers(structured)
        assert hdrs.get("ratelimit-limit") == str(QUOTA) and hdrs.get("ratelimit-remaining") == "0", hdrs
        assert "ratelimit-reset" in hdrs and int(hdrs["ratelimit-reset"]) >= 1, hdrs
        assert hdrs.get("retry-after") == hdrs["ratelimit-reset"], hdrs
