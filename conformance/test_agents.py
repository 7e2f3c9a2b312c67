"""§8.6 Agents G1–G9 (plus the §4 list rules and §5.2 idempotency on G2)."""

from __future__ import annotations

import secrets
import string
from typing import Any

import httpx
import pytest

from gumloop import Gumloop
from gumloop.errors import APIStatusError
from gumloop.types import (
    AgentAbilitiesResponse,
    AgentDeleteResponse,
    AgentListResponse,
    AgentResponse,
    AgentVersionResponse,
    AgentVersionsResponse,
)

from _support import (
    ID_RE,
    V1_TS_RE,
    assert_agent_json,
    assert_http_error,
    assert_ok,
    expect_api_error,
    token,
)

SUMMARY_KEYS = {
    "id",
    "name",
    "model_name",
    "team_id",
    "is_active",
    "created_at",
    "last_used_at",
    "last_updated_at",
    "creator",
}


def new_name(prefix: str = "conf") -> str:
    return f"{prefix} {token()}"


def create(client: Gumloop, **kwargs: Any):
    kwargs.setdefault("name", new_name())
    return client.agents.create(**kwargs).agent


def get_json(raw: httpx.Client, agent_id: str, **params: Any) -> dict[str, Any]:
    body = assert_ok(raw.get(f"/agents/{agent_id}", params=params))
    assert set(body) >= {"agent"}, body
    return body["agent"]


def subset(actual: dict[str, Any], expected: dict[str, Any]) -> dict[str, Any]:
    return {k: actual.get(k) for k in expected}


# ---------------------------------------------------------------------------
# G1 list
# ---------------------------------------------------------------------------

# Creation order differs from name order so the sort orders are distinguishable.
G1_SUFFIXES = ["delta", "alpha", "echo", "charlie", "golf", "bravo", "foxtrot"]


@pytest.fixture(scope="module")
def g1_set(admin: Gumloop) -> dict[str, Any]:
    tok = token(12)
    created = []
    for suffix in G1_SUFFIXES:
        agent = admin.agents.create(name=f"G1 {tok} {suffix}").agent
        created.append(agent)
    return {
        "token": tok,
        "creation_order": [a.id for a in created],
        "name_order": [a.id for a in sorted(created, key=lambda a: a.name)],
        "names": {a.id: a.name for a in created},
    }


def walk(client: Gumloop, page_size: int, **filters: Any) -> list[AgentListResponse]:
    pages: list[AgentListResponse] = []
    cursor = None
    for _ in range(50):
        page = client.agents.list(page_size=page_size, cursor=cursor, **filters)
        pages.append(page)
        cursor = page.next_cursor
        if cursor is None:
            return pages
    pytest.fail("pagination did not terminate after 50 pages")


def test_g1_list_returns_agent_list_response(admin: Gumloop, g1_set: dict[str, Any]) -> None:
    resp = admin.agents.list()
    assert isinstance(resp, AgentListResponse)
    ids = [a.id for a in resp.agents]
    assert set(g1_set["creation_order"]) <= set(ids)
    # Opt-in paging: without page_size/cursor the full list comes back.
    assert resp.next_cursor is None


def test_g1_list_raw_shape(raw: httpx.Client, g1_set: dict[str, Any]) -> None:
    body = assert_ok(raw.get("/agents", params={"search": g1_set["token"]}))
    assert set(body) >= {"agents", "next_cursor"}, body
    assert body["next_cursor"] is None
    assert isinstance(body["agents"], list) and len(body["agents"]) == len(G1_SUFFIXES)
    for agent in body["agents"]:
        assert_agent_json(agent)
        assert agent.get("team_id") is None


def test_g1_search_is_case_insensitive_substring(admin: Gumloop, g1_set: dict[str, Any]) -> None:
    resp = admin.agents.list(search=g1_set["token"].upper())
    assert sorted(a.id for a in resp.agents) == sorted(g1_set["creation_order"])
    one = admin.agents.list(search=f"{g1_set['token']} ECH")
    assert [a.name for a in one.agents] == [f"G1 {g1_set['token']} echo"]
    none = admin.agents.list(search=f"{g1_set['token']}-no-such-agent")
    assert none.agents == [] and none.next_cursor is None


@pytest.mark.parametrize(
    "sort_order, expected_key",
    [
        ("newest", "newest"),
        ("oldest", "oldest"),
        ("name_asc", "name_asc"),
        ("name_desc", "name_desc"),
    ],
)
def test_g1_sort_order(admin: Gumloop, g1_set: dict[str, Any], sort_order: str, expected_key: str) -> None:
    expected = {
        "newest": list(reversed(g1_set["creation_order"])),
        "oldest": list(g1_set["creation_order"]),
        "name_asc": list(g1_set["name_order"]),
        "name_desc": list(reversed(g1_set["name_order"])),
    }[expected_key]
    resp = admin.agents.list(search=g1_set["token"], sort_order=sort_order)
    assert [a.id for a in resp.agents] == expected, [g1_set["names"].get(a.id) for a in resp.agents]


def test_g1_default_sort_is_newest(admin: Gumloop, g1_set: dict[str, Any]) -> None:
    resp = admin.agents.list(search=g1_set["token"])
    assert [a.id for a in resp.agents] == list(reversed(g1_set["creation_order"]))


@pytest.mark.parametrize("sort_order", ["newest", "oldest", "name_asc", "name_desc"])
def test_g1_cursor_pagination_walks_all_pages(admin: Gumloop, g1_set: dict[str, Any], sort_order: str) -> None:
    full = [a.id for a in admin.agents.list(search=g1_set["token"], sort_order=sort_order).agents]
    pages = walk(admin, 3, search=g1_set["token"], sort_order=sort_order)
    assert [len(p.agents) for p in pages] == [3, 3, 1]
    for page in pages[:-1]:
        assert isinstance(page.next_cursor, str) and page.next_cursor
    assert pages[-1].next_cursor is None
    walked = [a.id for p in pages for a in p.agents]
    assert len(walked) == len(set(walked)), "duplicates across pages"
    assert walked == full


def test_g1_page_size_boundaries_accepted(admin: Gumloop, g1_set: dict[str, Any]) -> None:
    pages = walk(admin, 1, search=g1_set["token"])
    assert [len(p.agents) for p in pages] == [1] * len(G1_SUFFIXES)
    big = admin.agents.list(search=g1_set["token"], page_size=100)
    assert len(big.agents) == len(G1_SUFFIXES) and big.next_cursor is None


def test_g1_invalid_page_size_sdk(admin: Gumloop) -> None:
    exc = expect_api_error(admin.agents.list, page_size=0, status=400, code="invalid_page_size", param="page_size")
    assert exc.param == "page_size"


@pytest.mark.parametrize("value", ["0", "101", "x", "-1", "1.5", ""])
def test_g1_invalid_page_size_is_400(raw: httpx.Client, value: str) -> None:
    resp = raw.get("/agents", params={"page_size": value})
    assert_http_error(resp, 400, "invalid_page_size", param="page_size")


@pytest.mark.parametrize("value", ["random", "credits_desc", "NEWEST_FIRST"])
def test_g1_invalid_sort_is_400(raw: httpx.Client, value: str) -> None:
    assert_http_error(raw.get("/agents", params={"sort_order": value}), 400, "invalid_sort")


def test_g1_invalid_sort_sdk(admin: Gumloop) -> None:
    expect_api_error(admin.agents.list, sort_order="sideways", status=400, code="invalid_sort")


@pytest.mark.parametrize("cursor", ["garbage", "not a cursor!!", "AAAA", "eyJ4IjoxfQ"])
def test_g1_garbage_cursor_is_invalid_cursor(raw: httpx.Client, cursor: str) -> None:
    assert_http_error(raw.get("/agents", params={"cursor": cursor, "page_size": 3}), 400, "invalid_cursor")


def _first_cursor(admin: Gumloop, g1_set: dict[str, Any], **extra: Any) -> str:
    page = admin.agents.list(search=g1_set["token"], page_size=3, **extra)
    assert page.next_cursor, "expected a next_cursor on the first page of 7 agents"
    return page.next_cursor


def test_g1_tampered_cursor_is_invalid_cursor(admin: Gumloop, g1_set: dict[str, Any]) -> None:
    cursor = _first_cursor(admin, g1_set)
    alphabet = string.ascii_letters + string.digits + "-_"
    for pos in (len(cursor) // 2, 0, len(cursor) - 2):
        replacement = secrets.choice([c for c in alphabet if c != cursor[pos]])
        tampered = cursor[:pos] + replacement + cursor[pos + 1 :]
        expect_api_error(
            admin.agents.list,
            search=g1_set["token"],
            page_size=3,
            cursor=tampered,
            status=400,
            code="invalid_cursor",
        )
    # Truncated and extended cursors are malformed too.
    expect_api_error(
        admin.agents.list, search=g1_set["token"], page_size=3, cursor=cursor[:-4], status=400, code="invalid_cursor"
    )
    expect_api_error(
        admin.agents.list, search=g1_set["token"], page_size=3, cursor=cursor + "AAAA", status=400, code="invalid_cursor"
    )


def test_g1_cursor_is_bound_to_filters(admin: Gumloop, g1_set: dict[str, Any]) -> None:
    cursor = _first_cursor(admin, g1_set)
    # Another search filter.
    expect_api_error(
        admin.agents.list,
        search=g1_set["token"] + " a",
        page_size=3,
        cursor=cursor,
        status=400,
        code="invalid_cursor",
    )
    # Another sort order.
    expect_api_error(
        admin.agents.list,
        search=g1_set["token"],
        sort_order="name_asc",
        page_size=3,
        cursor=cursor,
        status=400,
        code="invalid_cursor",
    )
    # Another page size.
    expect_api_error(
        admin.agents.list, search=g1_set["token"], page_size=4, cursor=cursor, status=400, code="invalid_cursor"
    )
    # The same cursor with the original parameters still works.
    page = admin.agents.list(search=g1_set["token"], page_size=3, cursor=cursor)
    assert len(page.agents) == 3


def test_g1_cursor_is_bound_to_endpoint(admin: Gumloop, raw: httpx.Client, g1_set: dict[str, Any]) -> None:
    cursor = _first_cursor(admin, g1_set)
    agent_id = g1_set["creation_order"][0]
    resp = raw.get(f"/agents/{agent_id}/versions", params={"cursor": cursor, "page_size": 3})
    assert_http_error(resp, 400, "invalid_cursor")


def test_g1_summary_true_items_carry_only_summary_fields(raw: httpx.Client, admin: Gumloop, g1_set: dict[str, Any]) -> None:
    body = assert_ok(raw.get("/agents", params={"search": g1_set["token"], "summary": "true"}))
    assert len(body["agents"]) == len(G1_SUFFIXES)
    for item in body["agents"]:
        assert {"id", "name"} <= set(item), item
        extra = set(item) - SUMMARY_KEYS
        assert not extra, f"summary items must omit non-summary keys, got {sorted(extra)}"
        assert_agent_json(item, summary=True)
        # is_active is a summary field, and the SDK reads an omitted is_active as False.
        assert item.get("is_active") is True, item
    # The SDK parses summary items.
    resp = admin.agents.list(search=g1_set["token"], summary=True)
    assert len(resp.agents) == len(G1_SUFFIXES)


@pytest.mark.parametrize("value", ["TRUE", "1", "false", "0", "False"])
def test_g1_query_booleans_accepted(raw: httpx.Client, value: str) -> None:
    assert_ok(raw.get("/agents", params={"summary": value}))


def test_g1_invalid_query_boolean_is_invalid_request(raw: httpx.Client) -> None:
    assert_http_error(raw.get("/agents", params={"summary": "maybe"}), 400, "invalid_request", param="summary")


def test_g1_include_last_updated(raw: httpx.Client, g1_set: dict[str, Any]) -> None:
    body = assert_ok(
        raw.get(
            "/agents",
            params={"search": g1_set["token"], "include_last_updated": "true", "include_last_used": "true"},
        )
    )
    for item in body["agents"]:
        assert "last_updated_at" in item and "last_used_at" in item, item
        if item["last_updated_at"] is not None:
            assert V1_TS_RE.match(item["last_updated_at"]), item


def test_g1_unknown_filters_are_ignored(admin: Gumloop, g1_set: dict[str, Any]) -> None:
    resp = admin.agents.list(search=g1_set["token"], no_such_filter="x")
    assert len(resp.agents) == len(G1_SUFFIXES)


def test_g1_without_team_id_lists_personal_agents_only(admin: Gumloop, server: Any) -> None:
    tok = token()
    personal = create(admin, name=f"scope {tok} personal")
    team_agent = create(admin, name=f"scope {tok} team", team_id=server.team_id)
    assert team_agent.team_id == server.team_id
    personal_ids = [a.id for a in admin.agents.list(search=tok).agents]
    assert personal_ids == [personal.id]
    team_ids = [a.id for a in admin.agents.list(search=tok, team_id=server.team_id).agents]
    assert team_ids == [team_agent.id]


def test_g1_team_key_lists_the_teams_agents(admin: Gumloop, team_client: Gumloop, server: Any) -> None:
    tok = token()
    create(admin, name=f"teamkey {tok} personal")
    team_agent = create(admin, name=f"teamkey {tok} team", team_id=server.team_id)
    ids = [a.id for a in team_client.agents.list(search=tok).agents]
    assert ids == [team_agent.id]


# ---------------------------------------------------------------------------
# G2 create
# ---------------------------------------------------------------------------


def test_g2_create_returns_201_agent_response(raw: httpx.Client, server: Any) -> None:
    name = new_name("g2")
    resp = raw.post("/agents", json={"name": name})
    body = assert_ok(resp, 201)
    assert set(body) >= {"agent"}, body
    agent = body["agent"]
    assert_agent_json(agent)
    assert ID_RE["agt"].match(agent["id"]), agent["id"]
    assert agent["name"] == name
    assert agent["model_name"] == "auto"  # omitted model_name → auto
    assert agent["is_active"] is True
    assert agent.get("tools", []) == []
    assert agent.get("resources", []) == []
    assert agent.get("incognito", {"enforced": False}) == {"enforced": False}
    assert agent.get("metadata", {}) == {}
    assert agent["version"] == 1
    assert agent.get("team_id") is None
    assert agent.get("type") == "custom"
    assert agent.get("skill_ids", []) == []
    assert agent.get("active_trigger_count", 0) == 0
    assert isinstance(agent.get("created_at"), str) and V1_TS_RE.match(agent["created_at"]), agent
    if agent.get("creator") is not None:
        assert agent["creator"].get("id") == server.admin_user_id, agent


def test_g2_sdk_create_returns_agent_response(admin: Gumloop, catalogue_model: str) -> None:
    name = new_name("g2sdk")
    resp = admin.agents.create(
        name=name,
        description="A conformance agent",
        system_prompt="You are terse.",
        model_name=catalogue_model,
        incognito=True,
        metadata={"icon_url": "https://example.test/icon.png", "tool_discovery": {"mode": "auto"}},
    )
    assert isinstance(resp, AgentResponse)
    agent = resp.agent
    assert agent.name == name
    assert agent.description == "A conformance agent"
    assert agent.system_prompt == "You are terse."
    assert agent.model_name == catalogue_model
    assert agent.is_active is True
    assert agent.incognito.enforced is True
    assert agent.version == 1
    assert agent.metadata.icon_url == "https://example.test/icon.png"
    assert agent.metadata.tool_discovery is not None and agent.metadata.tool_discovery.mode == "auto"
    again = admin.agents.retrieve(agent.id).agent
    assert again.incognito.enforced is True and again.model_name == catalogue_model


def test_g2_name_is_trimmed(admin: Gumloop) -> None:
    name = new_name("trim")
    agent = create(admin, name=f"   {name}  ")
    assert agent.name == name


def test_g2_name_256_chars_accepted(admin: Gumloop) -> None:
    name = ("n" * 240) + token(16)
    assert len(name) == 256
    assert create(admin, name=name).name == name


@pytest.mark.parametrize("name", ["", "   ", "\t\n", "x" * 257])
def test_g2_invalid_name(admin: Gumloop, name: str) -> None:
    expect_api_error(admin.agents.create, name=name, status=400, code="invalid_name", param="name")


def test_g2_missing_name_is_400(raw: httpx.Client) -> None:
    err = assert_http_error(raw.post("/agents", json={"description": "no name"}), 400, None, param="name")
    # The spec names invalid_name for the name rule; invalid_request is the generic
    # validation code. Either identifies the missing required field.
    assert err["code"] in ("invalid_name", "invalid_request"), err


def test_g2_wrong_type_is_invalid_request(raw: httpx.Client) -> None:
    assert_http_error(raw.post("/agents", json={"name": 5}), 400, "invalid_request", param="name")


@pytest.mark.parametrize("model", ["no-such-provider/xyz", "openai/definitely-not-a-model-xyz", "bogus"])
def test_g2_invalid_model(admin: Gumloop, model: str) -> None:
    expect_api_error(
        admin.agents.create, name=new_name(), model_name=model, status=400, code="invalid_model", param="model_name"
    )


def test_g2_explicit_auto_model_accepted(admin: Gumloop) -> None:
    assert create(admin, model_name="auto").model_name == "auto"


def test_g2_caller_supplied_agent_id(admin: Gumloop) -> None:
    agent_id = f"conf-agent_{token(12)}"
    agent = create(admin, agent_id=agent_id)
    assert agent.id == agent_id
    assert admin.agents.retrieve(agent_id).agent.id == agent_id


def test_g2_agent_id_128_chars_accepted(admin: Gumloop) -> None:
    agent_id = "a" * 112 + token(16)
    assert len(agent_id) == 128
    assert create(admin, agent_id=agent_id).id == agent_id


def test_g2_duplicate_agent_id_is_409(admin: Gumloop) -> None:
    agent_id = f"dup_{token(12)}"
    create(admin, agent_id=agent_id)
    expect_api_error(
        admin.agents.create, name=new_name(), agent_id=agent_id, status=409, code="agent_already_exists"
    )


@pytest.mark.parametrize("agent_id", ["has space", "slash/id", "dot.id", "ü-umlaut", "x" * 129])
def test_g2_invalid_agent_id(admin: Gumloop, agent_id: str) -> None:
    expect_api_error(
        admin.agents.create, name=new_name(), agent_id=agent_id, status=400, code="invalid_id", param="agent_id"
    )


def test_g2_team_agent_via_team_id(admin: Gumloop, server: Any) -> None:
    agent = create(admin, team_id=server.team_id)
    assert agent.team_id == server.team_id
    assert admin.agents.retrieve(agent.id).agent.team_id == server.team_id


def test_g2_team_key_creates_in_its_team(team_client: Gumloop, server: Any) -> None:
    agent = create(team_client)
    assert agent.team_id == server.team_id


def test_g2_team_id_body_wins_over_query(raw: httpx.Client, server: Any, second_team: str) -> None:
    resp = raw.post("/agents", params={"team_id": server.team_id}, json={"name": new_name(), "team_id": second_team})
    assert assert_ok(resp, 201)["agent"]["team_id"] == second_team


def test_g2_unknown_team_is_team_not_found(admin: Gumloop, foreign_team: str) -> None:
    expect_api_error(admin.agents.create, name=new_name(), team_id=foreign_team, status=404, code="team_not_found")
    expect_api_error(
        admin.agents.create, name=new_name(), team_id="team_does_not_exist", status=404, code="team_not_found"
    )


def test_g2_tools_kept_and_secrets_stripped(raw: httpx.Client) -> None:
    tools = [
        {"type": "conf_unknown_tool", "name": "kept verbatim", "metadata": {"k": [1, 2]}},
        {"type": "mcp_server", "name": "custom mcp", "secret_id": "sec_conformance_secret"},
    ]
    body = assert_ok(raw.post("/agents", json={"name": new_name(), "tools": tools}), 201)
    got = body["agent"]["tools"]
    assert len(got) == 2, got
    assert subset(got[0], tools[0]) == tools[0]
    assert got[1].get("type") == "mcp_server" and got[1].get("name") == "custom mcp"
    assert got[1].get("secret_id") is None, "secret references must be stripped from responses"
    assert "sec_conformance_secret" not in raw.get(f"/agents/{body['agent']['id']}").text


def test_g2_metadata_unknown_sections_kept(admin: Gumloop, raw: httpx.Client) -> None:
    metadata = {"icon_url": "https://example.test/x.png", "conf_custom": {"nested": {"a": [1, {"b": None}]}}}
    agent = create(admin, metadata=metadata)
    got = get_json(raw, agent.id)["metadata"]
    assert got.get("icon_url") == metadata["icon_url"]
    assert got.get("conf_custom") == metadata["conf_custom"]


@pytest.mark.parametrize(
    "body, param",
    [
        ({"tools": [{"type": "gumcp_server", "approval_mode": "sometimes"}]}, "tools[0].approval_mode"),
        ({"tools": [{"type": "x"}, {"type": "gumcp_server", "credential_mode": "nobody"}]}, "tools[1].credential_mode"),
        ({"metadata": {"tool_discovery": {"mode": "bogus"}}}, "metadata.tool_discovery.mode"),
        ({"metadata": {"artifacts": {"default_access": "everyone"}}}, "metadata.artifacts.default_access"),
    ],
)
def test_g2_enumerated_fields_validated(raw: httpx.Client, body: dict[str, Any], param: str) -> None:
    resp = raw.post("/agents", json={"name": new_name(), **body})
    assert_http_error(resp, 400, "invalid_request", param=param)


def test_g2_skill_ids_not_implemented(admin: Gumloop) -> None:
    expect_api_error(admin.agents.create, name=new_name(), skill_ids=["skl_x"], status=501, code="not_implemented")


def test_g2_is_active_false_creates_retired_agent(raw: httpx.Client) -> None:
    body = assert_ok(raw.post("/agents", json={"name": new_name(), "is_active": False}), 201)
    assert body["agent"]["is_active"] is False
    assert_http_error(raw.get(f"/agents/{body['agent']['id']}"), 404, "agent_not_found")


def test_g2_idempotency_key_replays(raw: httpx.Client, admin: Gumloop) -> None:
    key = f"conf-idem-{token(16)}"
    name = new_name("idem")
    first = raw.post("/agents", json={"name": name}, headers={"Idempotency-Key": key})
    body = assert_ok(first, 201)
    second = raw.post("/agents", json={"name": name}, headers={"Idempotency-Key": key})
    assert second.status_code == 201, second.text
    assert second.json() == body
    assert second.headers.get("idempotent-replayed") == "true"
    assert [a.id for a in admin.agents.list(search=name).agents] == [body["agent"]["id"]]


def test_g2_idempotency_key_reused_with_other_body_is_409(raw: httpx.Client) -> None:
    key = f"conf-idem-{token(16)}"
    assert_ok(raw.post("/agents", json={"name": new_name()}, headers={"Idempotency-Key": key}), 201)
    resp = raw.post("/agents", json={"name": new_name()}, headers={"Idempotency-Key": key})
    assert_http_error(resp, 409, "idempotency_key_reused")


@pytest.mark.parametrize("key", ["has space", "x" * 257, "tab\tkey"])
def test_g2_invalid_idempotency_key(raw: httpx.Client, key: str) -> None:
    resp = raw.post("/agents", json={"name": new_name()}, headers={"Idempotency-Key": key})
    assert_http_error(resp, 400, "invalid_idempotency_key")


# ---------------------------------------------------------------------------
# G3 retrieve
# ---------------------------------------------------------------------------


def test_g3_retrieve(admin: Gumloop, raw: httpx.Client) -> None:
    created = create(admin, description="d", system_prompt="p")
    resp = admin.agents.retrieve(created.id)
    assert isinstance(resp, AgentResponse)
    agent = resp.agent
    assert (agent.id, agent.name, agent.description, agent.system_prompt) == (
        created.id,
        created.name,
        "d",
        "p",
    )
    assert agent.version == 1 and agent.is_active is True
    wire = get_json(raw, created.id)
    assert_agent_json(wire)
    for key in ("last_used_at", "last_updated_at", "abilities", "version"):
        assert key in wire, f"G3 must include {key}: {sorted(wire)}"
    assert wire["version"] == 1
    assert wire["abilities"] is None or isinstance(wire["abilities"], dict)


def test_g3_unknown_agent_is_404(admin: Gumloop) -> None:
    exc = expect_api_error(admin.agents.retrieve, "agt_doesnotexist0000000000", status=404, code="agent_not_found")
    assert exc.details == {}


@pytest.mark.parametrize("alias", ["gumball", "analytics"])
def test_g3_platform_aliases_are_404_until_implemented(admin: Gumloop, alias: str) -> None:
    expect_api_error(admin.agents.retrieve, alias, status=404, code="agent_not_found")


def test_g3_team_agent_visible_to_member_without_team_id(admin: Gumloop, server: Any) -> None:
    agent = create(admin, team_id=server.team_id)
    assert admin.agents.retrieve(agent.id).agent.team_id == server.team_id


# ---------------------------------------------------------------------------
# G4 update
# ---------------------------------------------------------------------------


def test_g4_update_fields_and_version(admin: Gumloop) -> None:
    agent = create(admin)
    new = new_name("renamed")
    updated = admin.agents.update(agent.id, name=new, description="new description")
    assert isinstance(updated, AgentResponse)
    assert updated.agent.name == new
    assert updated.agent.description == "new description"
    assert updated.agent.version == 2
    assert admin.agents.retrieve(agent.id).agent.version == 2


def test_g4_metadata_merge(admin: Gumloop, raw: httpx.Client, catalogue_model: str) -> None:
    agent = create(
        admin,
        metadata={
            "icon_url": "https://example.test/a.png",
            "compaction": {"context_limit": 1000, "summary_model": "auto"},
            "fallback": {"enabled": True, "fallback_models": [catalogue_model, "auto"]},
            "voice": {"enabled": True, "voice": "alloy"},
            "conf_custom": {"a": 1, "b": 2},
            "suggested_prompts": [{"title": "t1", "message": "m1"}, {"title": "t2", "message": "m2"}],
        },
    )
    admin.agents.update(
        agent.id,
        metadata={
            "compaction": {"context_limit": 2000, "summary_model": None},
            "fallback": {"fallback_models": ["auto"]},
            "voice": None,
            "conf_custom": {"b": None, "c": 3},
            "suggested_prompts": [{"title": "t3", "message": "m3"}],
        },
    )
    md = get_json(raw, agent.id)["metadata"]
    assert md.get("icon_url") == "https://example.test/a.png", "untouched sections stay"
    assert md["compaction"].get("context_limit") == 2000, "objects merge recursively"
    assert md["compaction"].get("summary_model") is None, "null deletes a key"
    assert md["fallback"].get("enabled") is True, "sibling keys of a merged object stay"
    assert md["fallback"].get("fallback_models") == ["auto"], "arrays are replaced, not merged"
    assert md.get("voice") is None, "null deletes a whole section"
    assert md.get("conf_custom") == {"a": 1, "c": 3}, "unknown sections merge too"
    prompts = md.get("suggested_prompts")
    assert [(p["title"], p["message"]) for p in prompts] == [("t3", "m3")]


def test_g4_tools_list_replaced(admin: Gumloop, raw: httpx.Client) -> None:
    first = [{"type": "trigger_creation", "approval_mode": "off"}, {"type": "skill_creation", "approval_mode": "all"}]
    agent = create(admin, tools=first)
    assert [subset(t, first[i]) for i, t in enumerate(get_json(raw, agent.id)["tools"])] == first
    second = [{"type": "app_rule_creation", "approval_mode": "write"}]
    updated = admin.agents.update(agent.id, tools=second)
    assert len(updated.agent.tools) == 1
    tools = get_json(raw, agent.id)["tools"]
    assert [subset(t, second[0]) for t in tools] == second
    admin.agents.update(agent.id, tools=[])
    assert get_json(raw, agent.id).get("tools", []) == []


def test_g4_resources_list_replaced(admin: Gumloop) -> None:
    agent = create(admin, resources=[{"kind": "a"}, {"kind": "b"}])
    updated = admin.agents.update(agent.id, resources=[{"kind": "c"}])
    assert [r.get("kind") for r in updated.agent.resources] == ["c"]


def test_g4_null_leaves_fields_unchanged(admin: Gumloop, raw: httpx.Client) -> None:
    agent = create(admin, description="keep me", system_prompt="keep prompt")
    body = assert_ok(raw.patch(f"/agents/{agent.id}", json={"description": None, "system_prompt": None, "name": None}))
    assert body["agent"]["description"] == "keep me"
    assert body["agent"]["system_prompt"] == "keep prompt"
    assert body["agent"]["name"] == agent.name
    assert body["agent"]["version"] == 1, "a no-op must not create a version"


def test_g4_empty_string_clears_description(admin: Gumloop) -> None:
    agent = create(admin, description="to be cleared")
    updated = admin.agents.update(agent.id, description="")
    assert updated.agent.description in ("", None)
    assert updated.agent.version == 2


def test_g4_noop_creates_no_version(admin: Gumloop, raw: httpx.Client) -> None:
    agent = create(admin, description="same")
    same = admin.agents.update(agent.id, name=agent.name, description="same")
    assert same.agent.version == 1
    empty = assert_ok(raw.patch(f"/agents/{agent.id}", json={}))
    assert empty["agent"]["version"] == 1
    assert [v.major_version for v in admin.agents.list_versions(agent.id).versions] == [1]


def test_g4_version_match_succeeds(admin: Gumloop) -> None:
    agent = create(admin)
    updated = admin.agents.update(agent.id, name=new_name(), version=1)
    assert updated.agent.version == 2


def test_g4_version_conflict_is_409(admin: Gumloop) -> None:
    agent = create(admin)
    admin.agents.update(agent.id, description="bump")  # now version 2
    exc = expect_api_error(
        admin.agents.update,
        agent.id,
        name="should not apply",
        version=1,
        status=409,
        code="agent_version_conflict",
        param="version",
    )
    assert exc.details.get("current_version") == 2
    assert isinstance(exc.details["current_version"], int)
    after = admin.agents.retrieve(agent.id).agent
    assert after.name == agent.name and after.version == 2, "nothing changes on conflict"


def test_g4_is_active_false_retires_agent(admin: Gumloop, raw: httpx.Client) -> None:
    tok = token()
    agent = create(admin, name=f"retire {tok}")
    resp = admin.agents.update(agent.id, is_active=False)
    assert resp.agent.is_active is False
    assert admin.agents.list(search=tok).agents == []
    expect_api_error(admin.agents.retrieve, agent.id, status=404, code="agent_not_found")
    expect_api_error(admin.agents.update, agent.id, name="x", status=404, code="agent_not_found")
    expect_api_error(admin.agents.delete, agent.id, status=404, code="agent_not_found")
    expect_api_error(admin.agents.list_versions, agent.id, status=404, code="agent_not_found")


def test_g4_invalid_name(admin: Gumloop) -> None:
    agent = create(admin)
    expect_api_error(admin.agents.update, agent.id, name="   ", status=400, code="invalid_name", param="name")
    expect_api_error(admin.agents.update, agent.id, name="y" * 257, status=400, code="invalid_name", param="name")


def test_g4_invalid_model(admin: Gumloop) -> None:
    agent = create(admin)
    expect_api_error(
        admin.agents.update, agent.id, model_name="nope/nope", status=400, code="invalid_model", param="model_name"
    )


def test_g4_wrong_type_is_invalid_request(admin: Gumloop, raw: httpx.Client) -> None:
    agent = create(admin)
    assert_http_error(raw.patch(f"/agents/{agent.id}", json={"tools": "not a list"}), 400, "invalid_request", param="tools")
    assert_http_error(
        raw.patch(f"/agents/{agent.id}", json={"metadata": {"tool_discovery": {"mode": "sometimes"}}}),
        400,
        "invalid_request",
        param="metadata.tool_discovery.mode",
    )


def test_g4_unknown_agent_is_404(admin: Gumloop) -> None:
    expect_api_error(admin.agents.update, "agt_doesnotexist0000000000", name="x", status=404, code="agent_not_found")


def test_g4_transfer_to_team(admin: Gumloop, server: Any) -> None:
    agent = create(admin)
    moved = admin.agents.update(agent.id, team_id=server.team_id)
    assert moved.agent.team_id == server.team_id
    assert moved.agent.version == 2
    latest = admin.agents.list_versions(agent.id).versions[0]
    detail = admin.agents.get_version(agent.id, latest.id)
    assert detail.changes is not None
    changed = {c.field: c for c in detail.changes.field_changes}
    assert "team_id" in changed, detail.changes
    assert getattr(changed["team_id"], "new_value", None) == server.team_id


def test_g4_transfer_to_foreign_team_is_403(admin: Gumloop, foreign_team: str) -> None:
    agent = create(admin)
    expect_api_error(admin.agents.update, agent.id, team_id=foreign_team, status=403, code="permission_denied")
    assert admin.agents.retrieve(agent.id).agent.team_id is None


# ---------------------------------------------------------------------------
# G5 delete
# ---------------------------------------------------------------------------


def test_g5_delete_then_404(admin: Gumloop, raw: httpx.Client) -> None:
    tok = token()
    agent = create(admin, name=f"delete {tok}")
    resp = admin.agents.delete(agent.id)
    assert isinstance(resp, AgentDeleteResponse)
    assert resp.agent_id == agent.id and resp.deleted is True
    expect_api_error(admin.agents.retrieve, agent.id, status=404, code="agent_not_found")
    expect_api_error(admin.agents.delete, agent.id, status=404, code="agent_not_found")
    assert admin.agents.list(search=tok).agents == []


def test_g5_delete_raw_body(admin: Gumloop, raw: httpx.Client) -> None:
    agent = create(admin)
    # The SDK sends Content-Type: application/json with no body on DELETE.
    resp = raw.delete(f"/agents/{agent.id}", headers={"Content-Type": "application/json"})
    body = assert_ok(resp, 200)
    assert body.get("agent_id") == agent.id and body.get("deleted") is True, body


@pytest.mark.parametrize("alias", ["gumball", "analytics"])
def test_g5_platform_agent_not_deletable(admin: Gumloop, alias: str) -> None:
    expect_api_error(admin.agents.delete, alias, status=403, code="platform_agent_not_deletable")


# ---------------------------------------------------------------------------
# G6 list versions
# ---------------------------------------------------------------------------


def _agent_with_versions(admin: Gumloop, n: int):
    agent = create(admin)
    for i in range(2, n + 1):
        admin.agents.update(agent.id, description=f"revision {i}")
    return agent


def test_g6_list_versions_newest_first(admin: Gumloop, raw: httpx.Client) -> None:
    agent = _agent_with_versions(admin, 3)
    resp = admin.agents.list_versions(agent.id)
    assert isinstance(resp, AgentVersionsResponse)
    assert [v.major_version for v in resp.versions] == [3, 2, 1]
    assert resp.next_cursor is None
    for v in resp.versions:
        assert ID_RE["agv"].match(v.id), v.id
        assert v.agent_id == agent.id
        assert v.name == agent.name
    assert resp.versions[0].is_deployed is True
    assert all(v.is_deployed is not True for v in resp.versions[1:])
    body = assert_ok(raw.get(f"/agents/{agent.id}/versions"))
    assert set(body) >= {"versions", "next_cursor"}
    for v in body["versions"]:
        if v.get("created_at") is not None:
            assert V1_TS_RE.match(v["created_at"]), v


def test_g6_pagination(admin: Gumloop) -> None:
    agent = _agent_with_versions(admin, 3)
    first = admin.agents.list_versions(agent.id, page_size=2)
    assert [v.major_version for v in first.versions] == [3, 2]
    assert first.next_cursor
    second = admin.agents.list_versions(agent.id, page_size=2, cursor=first.next_cursor)
    assert [v.major_version for v in second.versions] == [1]
    assert second.next_cursor is None


def test_g6_default_page_size_is_20(admin: Gumloop) -> None:
    agent = _agent_with_versions(admin, 22)
    first = admin.agents.list_versions(agent.id)
    assert [v.major_version for v in first.versions] == list(range(22, 2, -1))
    assert first.next_cursor
    rest = admin.agents.list_versions(agent.id, cursor=first.next_cursor)
    assert [v.major_version for v in rest.versions] == [2, 1]
    assert rest.next_cursor is None


def test_g6_sort_order_is_invalid_sort(admin: Gumloop, raw: httpx.Client) -> None:
    agent = create(admin)
    assert_http_error(raw.get(f"/agents/{agent.id}/versions", params={"sort_order": "newest"}), 400, "invalid_sort")


@pytest.mark.parametrize("value", ["0", "101", "x"])
def test_g6_invalid_page_size(admin: Gumloop, raw: httpx.Client, value: str) -> None:
    agent = create(admin)
    resp = raw.get(f"/agents/{agent.id}/versions", params={"page_size": value})
    assert_http_error(resp, 400, "invalid_page_size", param="page_size")


def test_g6_garbage_cursor(admin: Gumloop) -> None:
    agent = create(admin)
    expect_api_error(admin.agents.list_versions, agent.id, cursor="garbage", status=400, code="invalid_cursor")


def test_g6_cursor_bound_to_agent(admin: Gumloop) -> None:
    a = _agent_with_versions(admin, 3)
    b = _agent_with_versions(admin, 3)
    cursor = admin.agents.list_versions(a.id, page_size=2).next_cursor
    assert cursor
    expect_api_error(
        admin.agents.list_versions, b.id, page_size=2, cursor=cursor, status=400, code="invalid_cursor"
    )


def test_g6_unknown_agent(admin: Gumloop) -> None:
    expect_api_error(admin.agents.list_versions, "agt_doesnotexist0000000000", status=404, code="agent_not_found")


# ---------------------------------------------------------------------------
# G7 version detail
# ---------------------------------------------------------------------------


def _versions(admin: Gumloop, agent_id: str) -> dict[int, str]:
    return {v.major_version: v.id for v in admin.agents.list_versions(agent_id).versions}


def test_g7_version_one_has_composition_and_null_changes(admin: Gumloop, raw: httpx.Client) -> None:
    agent = create(admin, description="desc", system_prompt="prompt")
    v1 = _versions(admin, agent.id)[1]
    resp = admin.agents.get_version(agent.id, v1)
    assert isinstance(resp, AgentVersionResponse)
    assert resp.changes is None
    version = resp.version
    assert version.id == v1 and version.agent_id == agent.id and version.major_version == 1
    comp = version.composition
    assert comp.complete is True
    assert comp.schema_version == 1
    assert comp.name == agent.name
    assert comp.model_name == "auto"
    assert comp.description == "desc" and comp.system_prompt == "prompt"
    assert comp.tools == [] and comp.resources == [] and comp.metadata == {}
    body = assert_ok(raw.get(f"/agents/{agent.id}/versions/{v1}"))
    assert "changes" in body and body["changes"] is None
    wire = body["version"]["composition"]
    for key in ("tools", "resources", "metadata"):
        assert wire.get(key, []) is not None, f"composition.{key} never null"


def test_g7_system_prompt_change_has_text_hunks(admin: Gumloop, raw: httpx.Client) -> None:
    agent = create(admin, system_prompt="line one\nline two\nline three")
    admin.agents.update(agent.id, system_prompt="line one\nline 2\nline three")
    versions = _versions(admin, agent.id)
    resp = admin.agents.get_version(agent.id, versions[2])
    changes = resp.changes
    assert changes is not None
    assert changes.base_version_id == versions[1]
    assert isinstance(changes.attachment_changes_complete, bool)
    assert resp.version.composition.system_prompt == "line one\nline 2\nline three"
    body = assert_ok(raw.get(f"/agents/{agent.id}/versions/{versions[2]}"))
    wire = body["changes"]
    for key in ("field_changes", "tool_changes", "skill_changes", "knowledge_source_changes"):
        assert isinstance(wire.get(key), list), f"changes.{key} must be a list: {wire}"
    prompt_changes = [c for c in wire["field_changes"] if c.get("field") == "system_prompt"]
    assert len(prompt_changes) == 1, wire["field_changes"]
    change = prompt_changes[0]
    assert change.get("status") == "modified"
    hunks = change.get("text_hunks")
    assert isinstance(hunks, list) and len(hunks) == 1, change
    hunk = hunks[0]
    for key in ("old_start", "old_end", "new_start", "new_end", "old_text", "new_text"):
        assert key in hunk and hunk[key] is not None, f"hunk key {key} required and non-null: {hunk}"
    assert (hunk["old_start"], hunk["old_end"], hunk["new_start"], hunk["new_end"]) == (1, 2, 1, 2), hunk
    assert hunk["old_text"].rstrip("\n") == "line two"
    assert hunk["new_text"].rstrip("\n") == "line 2"
    assert [c.get("field") for c in wire["field_changes"]] == ["system_prompt"], "only the changed field is listed"


def test_g7_description_change_is_text_change(admin: Gumloop) -> None:
    agent = create(admin, description="alpha")
    admin.agents.update(agent.id, description="beta")
    versions = _versions(admin, agent.id)
    changes = admin.agents.get_version(agent.id, versions[2]).changes
    assert changes is not None
    [change] = [c for c in changes.field_changes if c.field == "description"]
    assert hasattr(change, "text_hunks") and change.text_hunks, change


def test_g7_model_change_is_value_change(admin: Gumloop, catalogue_model: str) -> None:
    agent = create(admin)
    admin.agents.update(agent.id, model_name=catalogue_model)
    versions = _versions(admin, agent.id)
    changes = admin.agents.get_version(agent.id, versions[2]).changes
    assert changes is not None
    [change] = [c for c in changes.field_changes if c.field == "model_name"]
    assert change.status == "modified"
    assert change.old_value == "auto" and change.new_value == catalogue_model


def test_g7_name_change_is_value_change(admin: Gumloop) -> None:
    agent = create(admin)
    new = new_name("renamed")
    admin.agents.update(agent.id, name=new)
    versions = _versions(admin, agent.id)
    detail = admin.agents.get_version(agent.id, versions[2])
    assert detail.version.name == new and detail.version.composition.name == new
    [change] = [c for c in detail.changes.field_changes if c.field == "name"]
    assert (change.old_value, change.new_value) == (agent.name, new)


def test_g7_tool_added_change(admin: Gumloop) -> None:
    agent = create(admin)
    admin.agents.update(agent.id, tools=[{"type": "trigger_creation", "approval_mode": "off"}])
    versions = _versions(admin, agent.id)
    changes = admin.agents.get_version(agent.id, versions[2]).changes
    assert changes is not None
    assert len(changes.tool_changes) == 1, changes.tool_changes
    tool_change = changes.tool_changes[0]
    assert tool_change.status == "added"
    assert isinstance(tool_change.identity, dict) and tool_change.identity


def test_g7_unknown_version_is_404(admin: Gumloop) -> None:
    agent = create(admin)
    expect_api_error(
        admin.agents.get_version, agent.id, "agv_doesnotexist000000000", status=404, code="agent_version_not_found"
    )


def test_g7_version_of_other_agent_is_404(admin: Gumloop) -> None:
    a = create(admin)
    b = create(admin)
    va = _versions(admin, a.id)[1]
    expect_api_error(admin.agents.get_version, b.id, va, status=404, code="agent_version_not_found")


def test_g7_unknown_agent_is_404(admin: Gumloop) -> None:
    a = create(admin)
    va = _versions(admin, a.id)[1]
    expect_api_error(admin.agents.get_version, "agt_doesnotexist0000000000", va, status=404, code="agent_not_found")


# ---------------------------------------------------------------------------
# G8 abilities
# ---------------------------------------------------------------------------


def test_g8_update_abilities(admin: Gumloop) -> None:
    agent = create(admin)
    resp = admin.agents.update_abilities(
        agent.id, web_search={"enabled": True, "provider": "exa"}, ask_question={"enabled": False}
    )
    assert isinstance(resp, AgentAbilitiesResponse)
    assert resp.agent_id == agent.id
    assert resp.abilities.web_search is not None and resp.abilities.web_search.enabled is True
    assert resp.abilities.web_search.provider == "exa"
    assert resp.abilities.ask_question is not None and resp.abilities.ask_question.enabled is False
    assert resp.version == 2
    # Only the abilities sent change.
    resp2 = admin.agents.update_abilities(agent.id, tool_discovery={"mode": "enabled"})
    assert resp2.abilities.tool_discovery is not None and resp2.abilities.tool_discovery.mode == "enabled"
    assert resp2.abilities.web_search is not None and resp2.abilities.web_search.enabled is True
    assert resp2.abilities.ask_question is not None and resp2.abilities.ask_question.enabled is False
    assert resp2.version == 3
    after = admin.agents.retrieve(agent.id).agent
    assert after.version == 3
    assert after.abilities is not None and after.abilities.web_search is not None
    assert after.abilities.web_search.enabled is True


def test_g8_raw_response_shape(admin: Gumloop, raw: httpx.Client) -> None:
    agent = create(admin)
    body = assert_ok(raw.patch(f"/agents/{agent.id}/abilities", json={"web_fetch": {"enabled": True}}))
    assert body.get("agent_id") == agent.id
    assert isinstance(body.get("abilities"), dict) and body["abilities"]["web_fetch"]["enabled"] is True
    assert body.get("version") == 2


def test_g8_version_conflict_is_409(admin: Gumloop) -> None:
    agent = create(admin)
    admin.agents.update(agent.id, description="bump")
    exc = expect_api_error(
        admin.agents.update_abilities,
        agent.id,
        web_search={"enabled": True},
        version=1,
        status=409,
        code="agent_version_conflict",
        param="version",
    )
    assert exc.details.get("current_version") == 2


def test_g8_invalid_ability_value(admin: Gumloop, raw: httpx.Client) -> None:
    agent = create(admin)
    resp = raw.patch(f"/agents/{agent.id}/abilities", json={"tool_discovery": {"mode": "bogus"}})
    assert_http_error(resp, 400, "invalid_request", param="tool_discovery.mode")


def test_g8_unknown_agent(admin: Gumloop) -> None:
    expect_api_error(
        admin.agents.update_abilities,
        "agt_doesnotexist0000000000",
        web_search={"enabled": True},
        status=404,
        code="agent_not_found",
    )


# ---------------------------------------------------------------------------
# G9 incognito
# ---------------------------------------------------------------------------


def test_g9_set_incognito(admin: Gumloop) -> None:
    agent = create(admin)
    assert agent.incognito.enforced is False
    resp = admin.agents.set_incognito(agent.id, True)
    assert isinstance(resp, AgentResponse)
    assert resp.agent.incognito.enforced is True
    assert resp.agent.version == 2
    assert admin.agents.retrieve(agent.id).agent.incognito.enforced is True
    versions = _versions(admin, agent.id)
    changes = admin.agents.get_version(agent.id, versions[2]).changes
    assert changes is not None
    assert "incognito" in [c.field for c in changes.field_changes], changes.field_changes
    off = admin.agents.set_incognito(agent.id, False)
    assert off.agent.incognito.enforced is False and off.agent.version == 3


def test_g9_same_value_is_noop(admin: Gumloop) -> None:
    agent = create(admin)
    resp = admin.agents.set_incognito(agent.id, False)
    assert resp.agent.incognito.enforced is False
    assert resp.agent.version == 1


@pytest.mark.parametrize("body, param", [({}, "enforced"), ({"enforced": "yes"}, "enforced"), ({"enforced": None}, "enforced")])
def test_g9_invalid_body(admin: Gumloop, raw: httpx.Client, body: dict[str, Any], param: str) -> None:
    agent = create(admin)
    assert_http_error(raw.patch(f"/agents/{agent.id}/incognito", json=body), 400, "invalid_request", param=param)


def test_g9_unknown_agent(admin: Gumloop) -> None:
    expect_api_error(admin.agents.set_incognito, "agt_doesnotexist0000000000", True, status=404, code="agent_not_found")


# ---------------------------------------------------------------------------
# AsyncGumloop uses the same routes (§1.1)
# ---------------------------------------------------------------------------


def test_async_client_g2_g3_g4_g5(server: Any) -> None:
    import asyncio

    from gumloop import AsyncGumloop

    async def scenario() -> None:
        async with AsyncGumloop(
            access_token=server.admin_key, user_id=server.admin_user_id, base_url=server.api_url
        ) as client:
            created = (await client.agents.create(name=new_name("async"))).agent
            assert (await client.agents.retrieve(created.id)).agent.name == created.name
            updated = (await client.agents.update(created.id, description="async", version=1)).agent
            assert updated.version == 2
            listed = await client.agents.list(search=created.name)
            assert [a.id for a in listed.agents] == [created.id]
            assert (await client.agents.delete(created.id)).deleted is True
            with pytest.raises(APIStatusError) as info:
                await client.agents.retrieve(created.id)
            assert info.value.status_code == 404 and info.value.code == "agent_not_found"

    asyncio.run(scenario())
