"""§10 tools for AI agents: the catalogue (§10.1), its listing in four formats (§10.2) and invocation
(§10.3), checked black-box over HTTP, with LangChain as the agent framework on the client side.

Seed workflow 1 runs end to end through invocations alone: a scripted LangChain agent loop
(``ChatOpenAI`` bound to the openai-format catalogue, talking to a *second* fake provider whose replies
the test enqueues) asks for each tool call; the test executes it with ``POST /tools/{name}/invoke`` and
feeds the response back as a ``ToolMessage``. The Openloop agent the tools start runs on ``llm_server``,
whose own fake provider is scripted to call the built-in ``write_artifact`` tool (§7.7).
"""

from __future__ import annotations

import copy
import json
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import jsonschema
import pytest

from gumloop import Gumloop

import fake_openai as fo
from _support import (
    EVERY_TOOL_MUST_MENTION,
    SESSION_MODEL,
    SESSION_STOP_STATES,
    TOOL_CATALOGUE,
    TOOL_NAMES,
    TOOLS_BY_NAME,
    OpenloopServer,
    Principal,
    assert_envelope,
    assert_http_error,
    assert_ratelimit_headers,
    fmt_resp,
    invoke_tool,
    token,
    wait_session,
)
from fake_openai import FAKE_OPENAI_KEY, FakeOpenAI

FORMATS = ("native", "openai", "anthropic", "mcp")
CONDITIONAL_KEYWORDS = ("if", "then", "else", "allOf")
E1_TOOL = "create_a_gumloop_export_datum"
E1_SCOPE_FIELDS = ("workspace_ids", "include_all_workspaces", "include_personal_workspaces", "entity_ids")
SPEC_ID_HEADER = "openloop-tool-spec-id"
UNKNOWN_SESSION = "sess_AAAAAAAAAAAAAAAAAAAAAA"
UNKNOWN_AGENT = "agt_AAAAAAAAAAAAAAAAAAAAAA"

REPORT = "# Quarterly report\n\nrevenue up \u2713, caf\u00e9 costs down\n"
REPORT_NAME = "report.md"


# ---------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------


def fetch_tools(client: httpx.Client, fmt: str | None) -> list[dict[str, Any]]:
    resp = client.get("/tools", params=None if fmt is None else {"format": fmt})
    assert resp.status_code == 200, f"expected HTTP 200: {fmt_resp(resp)}"
    assert "application/json" in resp.headers.get("content-type", ""), fmt_resp(resp)
    body = resp.json()
    assert isinstance(body, dict) and body.get("format") == (fmt or "native"), (
        f"the listing is {{'format', 'tools'}} and echoes the format (§10.2): {fmt_resp(resp)}"
    )
    tools = body.get("tools")
    assert isinstance(tools, list), fmt_resp(resp)
    return tools


def item_parts(fmt: str, item: dict[str, Any]) -> tuple[str, str, dict[str, Any]]:
    """(name, description, schema) of one listed tool in ``fmt``."""
    if fmt == "openai":
        fn = item["function"]
        return fn["name"], fn["description"], fn["parameters"]
    key = {"native": "parameters", "anthropic": "input_schema", "mcp": "inputSchema"}[fmt]
    return item["name"], item["description"], item[key]


def walk(node: Any, path: str = "$") -> Iterator[tuple[str, Any]]:
    yield path, node
    if isinstance(node, dict):
        for k, v in node.items():
            yield from walk(v, f"{path}.{k}")
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from walk(v, f"{path}[{i}]")


def pointer_target(doc: Any, ref: str) -> Any:
    """The node a local ``#/…`` JSON pointer names, or None."""
    node = doc
    for part in ref[2:].split("/") if ref != "#/" else []:
        part = part.replace("~1", "/").replace("~0", "~")
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            return None
    return node


def strip_conditionals(schema: Any) -> Any:
    if isinstance(schema, dict):
        return {k: strip_conditionals(v) for k, v in schema.items() if k not in CONDITIONAL_KEYWORDS}
    if isinstance(schema, list):
        return [strip_conditionals(v) for v in schema]
    return schema


def norm_path(path: str) -> str:
    """``/api/v1/agents/{agent_id}/sessions`` → ``/agents/{}/sessions``."""
    if path.startswith("/api/v1/"):
        path = path[len("/api/v1"):]
    out = []
    for seg in path.split("/"):
        out.append("{}" if seg.startswith("{") and seg.endswith("}") else seg)
    return "/".join(out)


def assert_spec_id(resp: httpx.Response, spec_id: str) -> None:
    assert resp.headers.get(SPEC_ID_HEADER) == spec_id, (
        f"tool responses carry Openloop-Tool-Spec-Id: {spec_id} (§10.3); headers={dict(resp.headers)}: {fmt_resp(resp)}"
    )


def invoke_ok(client: httpx.Client, name: str, args: dict[str, Any], status: int = 200) -> dict[str, Any]:
    resp = invoke_tool(client, name, args)
    assert resp.status_code == status, f"expected HTTP {status}: {fmt_resp(resp)}"
    assert_spec_id(resp, TOOLS_BY_NAME[name].spec_id)
    return resp.json()


def session_count(client: httpx.Client, agent_id: str) -> int:
    resp = client.get(f"/agents/{agent_id}/sessions", params={"page_size": "100"})
    assert resp.status_code == 200, fmt_resp(resp)
    return len(resp.json()["sessions"])


def new_agent(client: Gumloop, **kwargs: Any) -> str:
    kwargs.setdefault("name", f"tools {token()}")
    return client.agents.create(**kwargs).agent.id


def lc_model(fake: FakeOpenAI, tools: list[dict[str, Any]]) -> Any:
    from langchain_openai import ChatOpenAI

    llm = ChatOpenAI(model="gpt-4o-mini", base_url=fake.base_url, api_key=FAKE_OPENAI_KEY, max_retries=0, timeout=60)
    return llm.bind_tools(tools)


class ScriptedToolLoop:
    """A LangChain agent loop whose model decisions are scripted by the test, one step at a time.

    ``call(name, args)`` enqueues a tool call on the LangChain-side fake provider, lets ``ChatOpenAI``
    fetch it, executes the call with ``POST /tools/{name}/invoke`` and appends the ``ToolMessage``."""

    def __init__(self, fake: FakeOpenAI, tools: list[dict[str, Any]], openloop: httpx.Client, goal: str) -> None:
        from langchain_core.messages import HumanMessage

        self.fake = fake
        self.tok = token()
        self.model = lc_model(fake, tools)
        self.openloop = openloop
        self.messages: list[Any] = [HumanMessage(f"{goal} [{self.tok}]")]
        self.results: list[tuple[str, str]] = []  # (tool_call_id, content) fed back to the model

    def call(self, name: str, args: dict[str, Any]) -> httpx.Response:
        from langchain_core.messages import ToolMessage

        self.fake.enqueue(fo.tool_call(name, args), match=self.tok)
        ai = self.model.invoke(self.messages)
        assert len(ai.tool_calls) == 1, f"the scripted step is one tool call: {ai!r}"
        call = ai.tool_calls[0]
        assert call["name"] == name and call["args"] == args, call
        self.messages.append(ai)
        resp = invoke_tool(self.openloop, call["name"], call["args"])
        content = json.dumps({"status": resp.status_code, "body": resp.json()})
        self.messages.append(ToolMessage(content=content, tool_call_id=call["id"]))
        self.results.append((call["id"], content))
        return resp

    def answer(self, text: str) -> str:
        self.fake.enqueue(fo.text(text), match=self.tok)
        ai = self.model.invoke(self.messages)
        assert ai.content == text and not ai.tool_calls, ai
        return ai.content


# ---------------------------------------------------------------------------
# Fixtures
# ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def listings(raw: httpx.Client) -> dict[str, list[dict[str, Any]]]:
    return {fmt: fetch_tools(raw, fmt) for fmt in FORMATS}


@pytest.fixture(scope="module")
def lc_fake() -> Iterator[FakeOpenAI]:
    """The LangChain side's model: a second fake provider, separate from the Openloop agents' one."""
    with FakeOpenAI() as fake:
        yield fake


@pytest.fixture(scope="module")
def tools_agent(admin: Gumloop) -> str:
    """An agent on the main server (no provider: only runs that never start are used here)."""
    return new_agent(admin)


@pytest.fixture(scope="module")
def llm_agent(llm_admin: Gumloop) -> str:
    """An agent on ``llm_server`` whose model is the session's fake provider."""
    return new_agent(llm_admin, model_name=SESSION_MODEL)


# ---------------------------------------------------------------------------
# §10.2 listing
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", FORMATS)
def test_10_1_catalogue_names_and_order(listings: dict[str, list[dict[str, Any]]], fmt: str) -> None:
    names = [item_parts(fmt, item)[0] for item in listings[fmt]]
    assert names == TOOL_NAMES, f"{fmt}: the 16 tools of §10.1 in catalogue order; got {names}"


def test_10_2_default_format_is_native(raw: httpx.Client, server: OpenloopServer,
                                       listings: dict[str, list[dict[str, Any]]]) -> None:
    resp = raw.get("/tools")
    assert resp.status_code == 200, fmt_resp(resp)
    assert resp.json() == {"format": "native", "tools": listings["native"]}, fmt_resp(resp)
    assert_ratelimit_headers(resp, server.rate_limit, server.rate_window)


@pytest.mark.parametrize("value", ["bogus", "", "json_schema"])
def test_10_2_unknown_format_is_400(raw: httpx.Client, value: str) -> None:
    assert_http_error(raw.get("/tools", params={"format": value}), 400, "invalid_request", param="format")


def test_10_2_listing_needs_a_key(anon: httpx.Client) -> None:
    assert_http_error(anon.get("/api/v1/tools"), 401, "missing_api_key")
    assert_http_error(anon.get("/api/v1/tools", headers={"Authorization": "Bearer olk_nope"}), 401, "invalid_api_key")


def test_10_2_native_items(listings: dict[str, list[dict[str, Any]]]) -> None:
    for spec, item in zip(TOOL_CATALOGUE, listings["native"]):
        assert {"name", "description", "parameters", "spec_id", "method", "path"} <= set(item), item
        assert item["spec_id"] == spec.spec_id, f"{spec.name}: spec_id {spec.spec_id}: {item}"
        assert item["method"] == spec.method, f"{spec.name}: method {spec.method}: {item}"
        assert isinstance(item["path"], str) and norm_path(item["path"]) == spec.path, (
            f"{spec.name}: the endpoint path is {spec.path} (path parameters in braces): {item['path']!r}"
        )


def test_10_2_openai_items(listings: dict[str, list[dict[str, Any]]]) -> None:
    for item in listings["openai"]:
        assert item.get("type") == "function", item
        fn = item.get("function")
        assert isinstance(fn, dict) and {"name", "description", "parameters"} <= set(fn), item


def test_10_2_anthropic_items(listings: dict[str, list[dict[str, Any]]]) -> None:
    for item in listings["anthropic"]:
        assert {"name", "description", "input_schema"} <= set(item), item


def test_10_2_mcp_items_and_annotations(listings: dict[str, list[dict[str, Any]]]) -> None:
    for spec, item in zip(TOOL_CATALOGUE, listings["mcp"]):
        assert {"name", "title", "description", "inputSchema", "annotations"} <= set(item), item
        assert isinstance(item["title"], str) and item["title"].strip(), item
        ann = item["annotations"]
        assert isinstance(ann, dict), item
        for key in ("readOnlyHint", "destructiveHint", "idempotentHint", "openWorldHint"):
            assert isinstance(ann.get(key), bool), f"{spec.name}: annotations.{key} is a bool: {ann}"
        assert ann["openWorldHint"] is False, f"{spec.name}: openWorldHint is false: {ann}"
        assert ann["readOnlyHint"] is spec.read_only, (
            f"{spec.name}: readOnlyHint is {spec.read_only} (true exactly for list/get tools): {ann}"
        )
        if spec.read_only:
            assert ann["destructiveHint"] is False, f"a read-only tool is not destructive: {spec.name}: {ann}"


@pytest.mark.parametrize("fmt", FORMATS)
def test_10_2_schemas_are_closed_objects(listings: dict[str, list[dict[str, Any]]], fmt: str) -> None:
    for spec, item in zip(TOOL_CATALOGUE, listings[fmt]):
        _, _, schema = item_parts(fmt, item)
        where = f"{fmt} {spec.name}"
        assert isinstance(schema, dict), where
        assert schema.get("type") == "object", f"{where}: type object: {schema}"
        assert isinstance(schema.get("properties"), dict), f"{where}: properties: {schema}"
        assert isinstance(schema.get("required"), list), f"{where}: required (a list, also when empty): {schema}"
        assert schema.get("additionalProperties") is False, f"{where}: additionalProperties false: {schema}"
        assert set(schema["properties"]) == set(spec.params), (
            f"{where}: parameters of §10.1 are {sorted(spec.params)}, got {sorted(schema['properties'])}"
        )
        assert sorted(schema["required"]) == sorted(spec.required), (
            f"{where}: required of §10.1 are {sorted(spec.required)}, got {schema['required']}"
        )
        assert len(set(schema["required"])) == len(schema["required"]), f"{where}: duplicate required: {schema}"
        jsonschema.Draft202012Validator.check_schema(schema)
        for path, node in walk(schema):
            ref = node.get("$ref") if isinstance(node, dict) else None
            if isinstance(ref, str):
                assert ref.startswith("#/"), f"{where}: a tool schema is self-contained: {path}.$ref = {ref!r}"
                assert pointer_target(schema, ref) is not None, (
                    f"{where}: {path}.$ref {ref!r} does not resolve inside the tool schema"
                )
        for prop, sub in schema["properties"].items():
            assert isinstance(sub, dict), f"{where}.{prop}: a schema object: {sub!r}"


@pytest.mark.parametrize("fmt", FORMATS)
def test_10_1_descriptions_carry_required_text(listings: dict[str, list[dict[str, Any]]], fmt: str) -> None:
    missing = []
    for spec, item in zip(TOOL_CATALOGUE, listings[fmt]):
        _, description, _ = item_parts(fmt, item)
        assert isinstance(description, str) and description.strip(), f"{fmt} {spec.name}: a description"
        for needle in spec.must_mention + EVERY_TOOL_MUST_MENTION:
            if needle not in description:
                missing.append(f"{spec.name}: {needle!r}")
    assert not missing, f"{fmt}: descriptions lack the exact substrings of §10.1: {missing}"


def test_10_2_formats_describe_the_same_tools(listings: dict[str, list[dict[str, Any]]]) -> None:
    native = {item_parts("native", i)[0]: item_parts("native", i) for i in listings["native"]}
    for fmt in ("openai", "anthropic", "mcp"):
        for item in listings[fmt]:
            name, description, schema = item_parts(fmt, item)
            _, n_desc, n_schema = native[name]
            assert description == n_desc, f"{fmt} {name}: same description as native"
            if fmt != "openai":
                assert schema == n_schema, f"{fmt} {name}: same schema as native\n{json.dumps(schema)}\n{json.dumps(n_schema)}"
                continue
            # OpenAI: the native schema without conditional keywords. Properties whose native schema
            # has none must be identical; the others only lose those keywords.
            assert schema.get("required") == n_schema.get("required"), (name, schema.get("required"))
            assert set(schema["properties"]) == set(n_schema["properties"]), name
            for prop, sub in n_schema["properties"].items():
                if sub == strip_conditionals(sub):
                    assert schema["properties"][prop] == sub, (
                        f"openai {name}.{prop}: same as native\n{json.dumps(schema['properties'][prop])}\n{json.dumps(sub)}"
                    )
            top = {k: v for k, v in n_schema.items() if k not in CONDITIONAL_KEYWORDS + ("properties", "$defs")}
            assert {k: schema.get(k) for k in top} == top, f"openai {name}: same top-level keywords as native"


def e1_schema(listings: dict[str, list[dict[str, Any]]], fmt: str) -> dict[str, Any]:
    for item in listings[fmt]:
        name, _, schema = item_parts(fmt, item)
        if name == E1_TOOL:
            return schema
    pytest.fail(f"{E1_TOOL} is not listed in {fmt}")


@pytest.mark.parametrize("fmt", ["native", "anthropic", "mcp"])
def test_10_1_e1_schema_encodes_the_scoping_rule(listings: dict[str, list[dict[str, Any]]], fmt: str) -> None:
    schema = e1_schema(listings, fmt)
    all_of = schema.get("allOf")
    assert isinstance(all_of, list) and all_of, f"{fmt}: the scoping rule is an allOf of if/then (§10.1): {schema}"
    assert any(isinstance(s, dict) and "if" in s and "then" in s and "anyOf" in json.dumps(s["then"]) for s in all_of), (
        f"{fmt}: allOf: [{{if: data_type != credit_logs, then: {{anyOf: [...]}}}}]: {json.dumps(all_of)}"
    )
    validator = jsonschema.Draft202012Validator(schema)
    base = {"export_fields": ["agent_id"], "start_date": "2026-01-01", "end_date": "2026-02-01"}

    def ok(extra: dict[str, Any]) -> bool:
        return validator.is_valid({**base, **extra})

    # data_type defaults to workflows: the rule applies when it is absent.
    assert not ok({}), f"{fmt}: no scope field and no data_type must be invalid"
    assert not ok({"data_type": "agents"}), f"{fmt}: agents without a scope field must be invalid"
    assert ok({"data_type": "credit_logs"}), f"{fmt}: credit_logs needs no scope field"
    assert not ok({"data_type": "agents", "workspace_ids": []}), f"{fmt}: workspace_ids needs minItems 1"
    assert not ok({"data_type": "agents", "entity_ids": []}), f"{fmt}: entity_ids needs minItems 1"
    assert not ok({"data_type": "agents", "include_all_workspaces": False}), f"{fmt}: const true"
    assert not ok({"data_type": "agents", "include_personal_workspaces": False}), f"{fmt}: const true"
    assert ok({"data_type": "agents", "workspace_ids": ["team_conf"]}), fmt
    assert ok({"data_type": "agents", "entity_ids": ["agt_x"]}), fmt
    assert ok({"data_type": "agent_interactions", "include_all_workspaces": True}), fmt
    assert ok({"include_personal_workspaces": True}), fmt


def test_10_1_openai_format_has_no_conditional_keywords(listings: dict[str, list[dict[str, Any]]]) -> None:
    found = []
    for item in listings["openai"]:
        name, _, schema = item_parts("openai", item)
        for path, node in walk(schema):
            if isinstance(node, dict):
                for key in CONDITIONAL_KEYWORDS:
                    if key in node and not path.endswith(".properties"):
                        found.append(f"{name}: {path}.{key}")
    assert not found, f"the OpenAI format omits if/then/else/allOf (§10.1): {found}"
    described = item_parts("openai", next(i for i in listings["openai"] if i["function"]["name"] == E1_TOOL))[1]
    for field in E1_SCOPE_FIELDS + ("credit_logs",):
        assert field in described, f"the OpenAI format relies on the description for the scoping rule: {field}"


# ---------------------------------------------------------------------------
# LangChain accepts the openai format
# ---------------------------------------------------------------------------


def test_10_2_langchain_convert_to_openai_tool(listings: dict[str, list[dict[str, Any]]]) -> None:
    from langchain_core.utils.function_calling import convert_to_openai_tool

    for item in listings["openai"]:
        converted = convert_to_openai_tool(item)
        assert converted["type"] == "function", converted
        for key in ("name", "description", "parameters"):
            assert converted["function"][key] == item["function"][key], (item["function"]["name"], key)


def test_10_2_langchain_bind_tools_sends_the_catalogue(
    listings: dict[str, list[dict[str, Any]]], lc_fake: FakeOpenAI
) -> None:
    from langchain_core.messages import HumanMessage

    tok = token()
    lc_fake.enqueue(fo.text(f"bound {tok}"), match=tok)
    reply = lc_model(lc_fake, listings["openai"]).invoke([HumanMessage(f"which tools? {tok}")])
    assert reply.content == f"bound {tok}", reply
    sent = lc_fake.requests(match=tok)
    assert len(sent) == 1, sent
    tools = sent[0].body.get("tools")
    assert [t["function"]["name"] for t in tools] == TOOL_NAMES, tools
    for got, item in zip(tools, listings["openai"]):
        assert got["function"]["parameters"] == item["function"]["parameters"], got["function"]["name"]
        assert got["function"]["description"] == item["function"]["description"], got["function"]["name"]


# ---------------------------------------------------------------------------
# §10.3 invocation: seed workflow 1 through a LangChain agent loop
# ---------------------------------------------------------------------------


def test_10_3_seed_workflow_1_langchain_agent_loop(
    llm_server: OpenloopServer,
    llm_raw: httpx.Client,
    llm_agent: str,
    fake_openai: FakeOpenAI,
    lc_fake: FakeOpenAI,
) -> None:
    tools = fetch_tools(llm_raw, "openai")
    assert [t["function"]["name"] for t in tools] == TOOL_NAMES
    loop = ScriptedToolLoop(lc_fake, tools, llm_raw, "Ask the reporting agent for the quarterly report and fetch it")

    # The Openloop agent's own model: write the artifact, then answer.
    run_tok = token()
    fake_openai.enqueue(
        fo.tool_call("write_artifact", {"filename": REPORT_NAME, "content": REPORT}),
        fo.text(f"report saved {run_tok}"),
        match=run_tok,
    )

    # 1. Start the session with input → 202, processing or queued.
    created = loop.call("create_a_gumloop_session", {"agent_id": llm_agent, "input": f"write the report {run_tok}"})
    assert created.status_code == 202, f"S1 with input answers 202 (§6.1): {fmt_resp(created)}"
    assert_spec_id(created, "S1")
    assert_ratelimit_headers(created, llm_server.rate_limit, llm_server.rate_window)
    session = created.json()["session"]
    sid = session["id"]
    assert session["state"] in ("processing", "queued"), created.json()
    assert session["agent_id"] == llm_agent, session
    assert session.get("type") == "tool", f"sessions created by tools have type 'tool' (§10.3): {session}"
    assert any(m.get("role") == "user" and run_tok in (m.get("content") or "") for m in session["messages"]), session

    # 2. Poll S4 through the tool until a stop state (§6.4).
    deadline = time.monotonic() + 60
    polls = 0
    while True:
        polled = loop.call("get_single_gumloop_session_by_id", {"id": sid})
        polls += 1
        assert polled.status_code == 200, fmt_resp(polled)
        assert_spec_id(polled, "S4")
        state = polled.json()["session"]["state"]
        if state in SESSION_STOP_STATES:
            break
        assert state in ("processing", "queued"), polled.json()
        assert time.monotonic() < deadline, f"session {sid} still {state} after 60 s"
        time.sleep(0.1)
    final = polled.json()["session"]
    assert state == "completed", f"the scripted run completes: {final}"
    assert final.get("type") == "tool", final
    assert any(f"report saved {run_tok}" in (m.get("content") or "") for m in final["messages"]), final

    # 3. List the session's artifacts (A1) through the tool.
    listed = loop.call("list_all_gumloop_artifacts", {"agent_id": llm_agent, "session_id": sid})
    assert listed.status_code == 200, fmt_resp(listed)
    assert_spec_id(listed, "A1")
    artifacts = listed.json()["artifacts"]
    assert [a["filename"] for a in artifacts] == [REPORT_NAME], listed.json()
    assert artifacts[0]["session_id"] == sid, artifacts

    # 4. Plain GET of the signed url, no Authorization header → exactly the bytes the agent wrote.
    download = httpx.get(artifacts[0]["url"], timeout=30.0)
    assert "authorization" not in {k.lower() for k in download.request.headers}
    assert download.status_code == 200, f"{download.status_code}: {download.text[:500]}"
    assert download.content == REPORT.encode("utf-8"), download.content

    assert loop.answer("Here is the quarterly report.") == "Here is the quarterly report."
    # Every tool result went back to the model: the last request carries each ToolMessage.
    last = lc_fake.requests(match=loop.tok)[-1].body["messages"]
    fed = [(m.get("tool_call_id"), m.get("content")) for m in last if m.get("role") == "tool"]
    assert fed == loop.results, "each invocation's result was fed back as a ToolMessage"
    assert len(fed) == polls + 2
    assert fake_openai.pending(run_tok) == 0, "the Openloop agent consumed its scripted steps"


# ---------------------------------------------------------------------------
# §10.3 invocation: status and body of the endpoint, headers, identity
# ---------------------------------------------------------------------------


def test_10_3_create_without_input_is_201_idle(raw: httpx.Client, server: OpenloopServer, tools_agent: str) -> None:
    resp = invoke_tool(raw, "create_a_gumloop_session", {"agent_id": tools_agent, "name": "tool stub"})
    assert resp.status_code == 201, f"S1 without input answers 201 (§6.1): {fmt_resp(resp)}"
    assert_spec_id(resp, "S1")
    assert_ratelimit_headers(resp, server.rate_limit, server.rate_window)
    body = resp.json()
    session = body["session"]
    assert session["state"] == "idle" and session["messages"] == [], body
    assert body.get("queue_position") is None, body
    assert session["name"] == "tool stub", session
    assert session.get("type") == "tool", f"sessions created by tools have type 'tool' (§10.3): {session}"
    # The same session through the endpoint itself.
    direct = raw.get(f"/sessions/{session['id']}")
    assert direct.status_code == 200, fmt_resp(direct)
    assert direct.json()["session"]["type"] == "tool", direct.json()
    listed = raw.get(f"/agents/{tools_agent}/sessions", params={"type": "tool", "page_size": "100"})
    assert session["id"] in [s["id"] for s in listed.json()["sessions"]], listed.json()
    api_only = raw.get(f"/agents/{tools_agent}/sessions", params={"type": "api", "page_size": "100"})
    assert session["id"] not in [s["id"] for s in api_only.json()["sessions"]], api_only.json()


def test_10_3_response_is_exactly_the_endpoints(raw: httpx.Client, tools_agent: str) -> None:
    sid = invoke_ok(raw, "create_a_gumloop_session", {"agent_id": tools_agent}, 201)["session"]["id"]
    cases = [
        ("get_single_gumloop_session_by_id", {"id": sid}, f"/sessions/{sid}", None),
        ("get_single_gumloop_agent_by_id", {"id": tools_agent}, f"/agents/{tools_agent}", None),
        ("list_all_gumloop_models", {}, "/models", None),
        ("list_all_gumloop_sessions", {"agent_id": tools_agent, "page_size": 5}, f"/agents/{tools_agent}/sessions",
         {"page_size": "5"}),
        ("get_single_gumloop_session_by_id", {"id": UNKNOWN_SESSION}, f"/sessions/{UNKNOWN_SESSION}", None),
        ("get_single_gumloop_agent_by_id", {"id": UNKNOWN_AGENT}, f"/agents/{UNKNOWN_AGENT}", None),
    ]
    for name, args, path, params in cases:
        via_tool = invoke_tool(raw, name, args)
        direct = raw.get(path, params=params)
        assert via_tool.status_code == direct.status_code, f"{fmt_resp(via_tool)}\nvs {fmt_resp(direct)}"
        assert via_tool.json() == direct.json(), f"{fmt_resp(via_tool)}\nvs {fmt_resp(direct)}"
        assert_spec_id(via_tool, TOOLS_BY_NAME[name].spec_id)
    assert_http_error(invoke_tool(raw, "get_single_gumloop_session_by_id", {"id": UNKNOWN_SESSION}), 404,
                      "session_not_found")


def test_10_3_s7_while_processing_is_409(
    llm_raw: httpx.Client, llm_admin: Gumloop, llm_agent: str, fake_openai: FakeOpenAI
) -> None:
    tok = token()
    fake_openai.enqueue(fo.text(f"slow answer {tok}", delay=4.0), match=tok)
    created = invoke_ok(llm_raw, "create_a_gumloop_session", {"agent_id": llm_agent, "input": f"take your time {tok}"},
                        202)
    sid = created["session"]["id"]
    try:
        resp = invoke_tool(llm_raw, "create_a_gumloop_session_message", {"session_id": sid, "input": f"more {tok}"})
        assert_http_error(resp, 409, "interaction_not_in_terminal_state")
        assert_spec_id(resp, "S7")
    finally:
        final = wait_session(llm_admin, sid, timeout=60)
    assert final.state == "completed", final
    user_texts = [m.content for m in final.messages if m.role == "user"]
    assert user_texts == [f"take your time {tok}"], f"the rejected message was not appended: {user_texts}"
    # Once completed, the same invocation is accepted (202).
    fake_openai.enqueue(fo.text(f"second {tok}"), match=f"again {tok}")
    again = invoke_ok(llm_raw, "create_a_gumloop_session_message", {"session_id": sid, "input": f"again {tok}"}, 202)
    assert again["session"]["state"] in ("processing", "queued"), again
    assert wait_session(llm_admin, sid, timeout=60).state == "completed"


def test_10_3_idempotency_key_replays(raw: httpx.Client, tools_agent: str) -> None:
    before = session_count(raw, tools_agent)
    key = f"tools-{token()}"
    args = {"agent_id": tools_agent, "name": f"idem {key}"}
    first = invoke_tool(raw, "create_a_gumloop_session", args, headers={"Idempotency-Key": key})
    assert first.status_code == 201, fmt_resp(first)
    second = invoke_tool(raw, "create_a_gumloop_session", args, headers={"Idempotency-Key": key})
    assert second.status_code == 201, fmt_resp(second)
    assert second.json() == first.json(), "a replay returns the original body (§5.2)"
    assert second.headers.get("idempotent-replayed") == "true", dict(second.headers)
    assert_spec_id(second, "S1")
    assert session_count(raw, tools_agent) == before + 1, "a replay does no new work"


INVALID_ARGUMENTS = [
    pytest.param("create_a_gumloop_session", {}, "agent_id", id="s1-missing-agent_id"),
    pytest.param("create_a_gumloop_session", {"agent_id": ["agt_x"]}, "agent_id", id="s1-agent_id-wrong-type"),
    pytest.param("create_a_gumloop_session", {"agent_id": "AGENT", "input": "hi", "colour": "red"}, "colour",
                 id="s1-unknown-argument"),
    pytest.param("create_a_gumloop_session", {"agent_id": "AGENT", "input": "hi", "name": 7}, "name",
                 id="s1-name-wrong-type"),
    pytest.param("create_a_gumloop_session", {"agent_id": "AGENT", "input": "hi", "metadata": "x"}, "metadata",
                 id="s1-metadata-wrong-type"),
    pytest.param("create_a_gumloop_session", {"agent_id": "AGENT", "input": 42}, "input", id="s1-input-wrong-type"),
    pytest.param("create_a_gumloop_session_message", {"session_id": "SESSION"}, "input", id="s7-missing-input"),
    pytest.param("create_a_gumloop_session_message", {"session_id": "SESSION", "input": "hi", "delivery": "queued"},
                 "delivery", id="s7-unknown-argument"),
    pytest.param("create_a_gumloop_session_approval",
                 {"session_id": "SESSION", "approval_responses": [{"action_request_id": "areq_x", "action": "maybe"}]},
                 "approval_responses[0].action", id="s11-nested-enum"),
    pytest.param("list_all_gumloop_agents", {"page_size": "ten"}, "page_size", id="g1-page_size-wrong-type"),
    pytest.param("get_single_gumloop_session_by_id", {"id": 5}, "id", id="s4-id-wrong-type"),
    pytest.param("get_single_gumloop_session_by_id", {}, "id", id="s4-missing-id"),
]


@pytest.mark.parametrize("name, arguments, param", INVALID_ARGUMENTS)
def test_10_3_invalid_arguments_are_400_and_nothing_runs(
    raw: httpx.Client, tools_agent: str, name: str, arguments: dict[str, Any], param: str
) -> None:
    sid = invoke_ok(raw, "create_a_gumloop_session", {"agent_id": tools_agent}, 201)["session"]["id"]
    args = json.loads(json.dumps(arguments).replace('"AGENT"', json.dumps(tools_agent)).replace('"SESSION"', json.dumps(sid)))
    before = session_count(raw, tools_agent)
    resp = invoke_tool(raw, name, args)
    assert_http_error(resp, 400, "invalid_request", param=param)
    assert session_count(raw, tools_agent) == before, "an invalid invocation creates nothing (§10.3)"
    after = raw.get(f"/sessions/{sid}").json()["session"]
    assert after["state"] == "idle" and after["messages"] == [], f"an invalid invocation runs nothing: {after}"


def test_10_3_body_must_be_an_object(raw: httpx.Client) -> None:
    for body in ([], "x", 3):
        resp = raw.post("/tools/list_all_gumloop_models/invoke", json=body)
        assert resp.status_code == 400, fmt_resp(resp)
        assert_envelope(resp.json(), 400, None)


def test_10_3_unknown_tool_is_404(raw: httpx.Client) -> None:
    for name in ("no_such_tool", "LIST_ALL_GUMLOOP_MODELS", "write_artifact"):
        assert_http_error(invoke_tool(raw, name, {}), 404, "tool_not_found")


def test_10_3_invoke_needs_a_key(anon: httpx.Client) -> None:
    resp = anon.post("/api/v1/tools/list_all_gumloop_models/invoke", json={})
    assert_http_error(resp, 401, "missing_api_key")


@pytest.mark.parametrize(
    "name, arguments, method, path, params, body",
    [
        pytest.param("list_all_gumloop_flows", {}, "GET", "/list_saved_items", {}, None, id="F4"),
        pytest.param("get_single_gumloop_flow_run_by_id", {"id": "run_AAAAAAAAAAAAAAAAAAAAAA"}, "GET", "/get_pl_run",
                     {"run_id": "run_AAAAAAAAAAAAAAAAAAAAAA"}, None, id="F2"),
        pytest.param("create_a_gumloop_flow_run", {"saved_item_id": "flow_AAAAAAAAAAAAAAAAAAAAAA"}, "POST",
                     "/start_pipeline", None, {"saved_item_id": "flow_AAAAAAAAAAAAAAAAAAAAAA"}, id="F1"),
        pytest.param("get_single_gumloop_data_export_by_id", {"id": "dex_AAAAAAAAAAAAAAAAAAAAAA"}, "GET",
                     "/export_status", {"data_export_id": "dex_AAAAAAAAAAAAAAAAAAAAAA", "user_id": "ADMIN"}, None,
                     id="E2"),
    ],
)
def test_10_3_legacy_tools_answer_what_their_endpoint_answers(
    raw: httpx.Client, server: OpenloopServer, name: str, arguments: dict[str, Any], method: str, path: str,
    params: dict[str, str] | None, body: dict[str, Any] | None,
) -> None:
    """F/E tools pass their endpoint's status and (flat, §3.2) body through unchanged, whatever it is today."""
    if params and params.get("user_id") == "ADMIN":
        params = {**params, "user_id": server.admin_user_id}
    via_tool = invoke_tool(raw, name, arguments)
    direct = raw.request(method, path, params=params, json=body)
    assert via_tool.status_code == direct.status_code, f"{fmt_resp(via_tool)}\nvs endpoint {fmt_resp(direct)}"
    assert via_tool.json() == direct.json(), f"{fmt_resp(via_tool)}\nvs endpoint {fmt_resp(direct)}"
    assert_spec_id(via_tool, TOOLS_BY_NAME[name].spec_id)
    if via_tool.status_code >= 400:
        assert isinstance(via_tool.json().get("error"), str), f"legacy tools keep flat errors (§3.2): {fmt_resp(via_tool)}"


def test_10_3_other_tenant_sees_404(server: OpenloopServer, raw: httpx.Client, other_tenant: Principal,
                                    tools_agent: str) -> None:
    sid = invoke_ok(raw, "create_a_gumloop_session", {"agent_id": tools_agent}, 201)["session"]["id"]
    with server.http(other_tenant.key, other_tenant.user_id) as other:
        for name, args, code in [
            ("get_single_gumloop_session_by_id", {"id": sid}, "session_not_found"),
            ("create_a_gumloop_session_message", {"session_id": sid, "input": "hijack"}, "session_not_found"),
            ("create_a_gumloop_session_cancellation", {"session_id": sid}, "session_not_found"),
            ("get_single_gumloop_agent_by_id", {"id": tools_agent}, "agent_not_found"),
            ("list_all_gumloop_sessions", {"agent_id": tools_agent}, "agent_not_found"),
            ("list_all_gumloop_artifacts", {"agent_id": tools_agent}, "agent_not_found"),
            ("create_a_gumloop_session", {"agent_id": tools_agent, "input": "hijack"}, "agent_not_found"),
        ]:
            resp = invoke_tool(other, name, args)
            assert_http_error(resp, 404, code)
            assert_spec_id(resp, TOOLS_BY_NAME[name].spec_id)
    after = raw.get(f"/sessions/{sid}").json()["session"]
    assert after["state"] == "idle" and after["messages"] == [], after


# ---------------------------------------------------------------------------
# §10.3 + §5.1: one quota unit per invocation; 429 passes through, nothing is retried
# ---------------------------------------------------------------------------

QUOTA = 5
QUOTA_WINDOW = 20  # GCRA refills one unit every 4 s: a burst of invocations sees exact decrements


@pytest.fixture(scope="module")
def quota_server(start_server: Callable[..., OpenloopServer], fake_openai: FakeOpenAI) -> OpenloopServer:
    return start_server(
        rate_limit=QUOTA,
        rate_window=QUOTA_WINDOW,
        extra_env={"OPENAI_BASE_URL": fake_openai.base_url, "OPENAI_API_KEY": FAKE_OPENAI_KEY},
    )


def test_10_3_quota_one_unit_per_invocation_and_429(quota_server: OpenloopServer, fake_openai: FakeOpenAI) -> None:
    srv = quota_server
    with srv.http(srv.admin_key, srv.admin_user_id) as admin_http:
        created = admin_http.post("/agents", json={"name": f"quota {token()}", "model_name": SESSION_MODEL})
        assert created.status_code == 201, fmt_resp(created)
        agent_id = created.json()["agent"]["id"]
    key = srv.create_key(user=srv.admin_user_id, name="tools-quota")["secret"]
    tok_ok, tok_limited = token(), token()
    fake_openai.enqueue(fo.text(f"fine {tok_ok}"), match=tok_ok)
    with srv.http(key, srv.admin_user_id) as client:
        remaining = []
        sid = None
        for name, args, status in [
            ("list_all_gumloop_models", {}, 200),
            ("create_a_gumloop_session", {"agent_id": agent_id, "input": f"count me {tok_ok}"}, 202),
            ("get_single_gumloop_session_by_id", {"id": "SID"}, 200),
            ("list_all_gumloop_sessions", {"agent_id": agent_id}, 200),
            ("list_all_gumloop_agents", {}, 200),
        ]:
            if args.get("id") == "SID":
                args = {"id": sid}
            resp = invoke_tool(client, name, args)
            assert resp.status_code == status, fmt_resp(resp)
            if name == "create_a_gumloop_session":
                sid = resp.json()["session"]["id"]
            remaining.append(assert_ratelimit_headers(resp, QUOTA, QUOTA_WINDOW)[0])
        assert remaining == [4, 3, 2, 1, 0], f"each invocation costs exactly one unit (§10.3): {remaining}"

        limited = invoke_tool(client, "create_a_gumloop_session", {"agent_id": agent_id, "input": f"drop me {tok_limited}"})
        err = assert_http_error(limited, 429, "rate_limited", param=None)
        rem, reset = assert_ratelimit_headers(limited, QUOTA, QUOTA_WINDOW)
        assert rem == 0 and reset >= 1, dict(limited.headers)
        assert limited.headers.get("retry-after", "").strip() == str(reset), dict(limited.headers)
        assert err["details"] == {"policy": "default", "limit": QUOTA, "remaining": 0, "reset": reset}, err

    # Nothing was queued or retried for the caller: past Retry-After, still no second session, no model call.
    time.sleep(reset + 1.5)
    with srv.http(srv.admin_key, srv.admin_user_id) as admin_http:
        resp = admin_http.get(f"/agents/{agent_id}/sessions", params={"page_size": "100"})
        assert resp.status_code == 200, fmt_resp(resp)
        assert [s["id"] for s in resp.json()["sessions"]] == [sid], resp.json()
    assert fake_openai.requests(match=tok_limited) == [], "the limited invocation reached no model"
