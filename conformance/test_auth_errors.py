"""§2 authentication/identity, §3 error envelope, §1.3 JSON conventions, §9.2 item 7 limits."""

from __future__ import annotations

from typing import Any, Callable, Iterator

import httpx
import pytest

from gumloop import Gumloop
from gumloop.errors import APIStatusError

from _support import (
    Principal,
    RawResponse,
    assert_envelope,
    assert_http_error,
    assert_ok,
    expect_api_error,
    new_api_key,
    raw_request,
    token,
)

TEN_MIB = 10 * 1024 * 1024


# ---------------------------------------------------------------------------
# §2.1 credentials
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("method, path", [("GET", "/api/v1/agents"), ("POST", "/api/v1/agents"), ("GET", "/api/v1/models")])
def test_2_1_missing_api_key_is_401(anon: httpx.Client, method: str, path: str) -> None:
    resp = anon.request(method, path, json={"name": "x"} if method == "POST" else None)
    assert_http_error(resp, 401, "missing_api_key")


def test_2_1_invalid_api_key_is_401(anon: httpx.Client) -> None:
    for bearer in (new_api_key(), "garbage", "olk_short"):
        resp = anon.get("/api/v1/agents", headers={"Authorization": f"Bearer {bearer}"})
        assert_http_error(resp, 401, "invalid_api_key")


def test_2_1_invalid_api_key_via_sdk(server: Any) -> None:
    client = server.sdk(new_api_key(), user_id=server.admin_user_id)
    try:
        exc = expect_api_error(client.agents.list, status=401, code="invalid_api_key")
        assert exc.type == "authentication_error"
        assert exc.param is None and exc.details == {}
    finally:
        client.close()


def test_2_1_api_key_query_parameter(anon: httpx.Client, server: Any) -> None:
    resp = anon.get("/api/v1/agents", params={"api_key": server.admin_key})
    body = assert_ok(resp)
    assert isinstance(body.get("agents"), list)


def test_2_1_header_wins_over_query_key(anon: httpx.Client, server: Any) -> None:
    ok = anon.get(
        "/api/v1/agents", params={"api_key": new_api_key()}, headers={"Authorization": f"Bearer {server.admin_key}"}
    )
    assert_ok(ok)
    bad = anon.get(
        "/api/v1/agents", params={"api_key": server.admin_key}, headers={"Authorization": f"Bearer {new_api_key()}"}
    )
    assert_http_error(bad, 401, "invalid_api_key")


def test_2_2_revoked_key_is_rejected_immediately(server: Any) -> None:
    created = server.create_key(user=server.admin_user_id, name=f"revoke-{token()}")
    assert created["key_id"].startswith("key_") and created["secret"].startswith("olk_")
    with server.http(created["secret"]) as client:
        assert_ok(client.get("/agents"))
        server.revoke_key(created["key_id"])
        assert_http_error(client.get("/agents"), 401, "invalid_api_key")


def test_2_2_new_personal_key_acts_as_owner(server: Any) -> None:
    created = server.create_key(user=server.admin_user_id, name=f"second-{token()}")
    client = server.sdk(created["secret"])  # no user_id: acting user = key owner
    try:
        agent = client.agents.create(name=f"owner {token()}").agent
        if agent.creator is not None:
            assert agent.creator.id == server.admin_user_id
        assert agent.team_id is None
    finally:
        client.close()


# ---------------------------------------------------------------------------
# §2.3 acting user
# ---------------------------------------------------------------------------


def test_2_3_identity_mismatch_with_personal_key(server: Any, other_tenant: Principal, team_member: Principal) -> None:
    for user_id in (other_tenant.user_id, team_member.user_id, "usr_does_not_exist"):
        client = server.sdk(server.admin_key, user_id=user_id)
        try:
            exc = expect_api_error(client.agents.list, status=403, code="identity_mismatch")
            assert exc.type == "permission_error"
        finally:
            client.close()


def test_2_3_user_id_query_is_acting_user(server: Any, team_member: Principal) -> None:
    with server.http(server.admin_key) as client:
        assert_http_error(client.get("/agents", params={"user_id": team_member.user_id}), 403, "identity_mismatch")
        assert_ok(client.get("/agents", params={"user_id": server.admin_user_id}))


def test_2_3_team_key_without_user_is_user_id_required(server: Any) -> None:
    with server.http(server.team_key) as client:
        assert_http_error(client.get("/agents"), 400, "user_id_required")
        assert_http_error(client.get("/agents", params={"team_id": server.team_id}), 400, "user_id_required")
    client = server.sdk(server.team_key, team_id=server.team_id)
    try:
        expect_api_error(client.agents.list, status=400, code="user_id_required")
    finally:
        client.close()


def test_2_3_team_key_with_non_member_is_403(server: Any, org_outsider: Principal, other_tenant: Principal) -> None:
    for user_id in (org_outsider.user_id, other_tenant.user_id):
        client = server.sdk(server.team_key, user_id=user_id, team_id=server.team_id)
        try:
            expect_api_error(client.agents.list, status=403, code="not_team_member")
        finally:
            client.close()


def test_2_3_team_key_with_member_acts_as_member(server: Any, team_member: Principal) -> None:
    client = server.sdk(server.team_key, user_id=team_member.user_id, team_id=server.team_id)
    try:
        agent = client.agents.create(name=f"via team key {token()}").agent
        assert agent.team_id == server.team_id
        if agent.creator is not None:
            assert agent.creator.id == team_member.user_id
        # Only the creator (or a team admin) may update a team agent (§2.5), so the
        # member's own personal key being allowed to update it shows who created it.
        updated = team_member.client.agents.update(agent.id, description="creator edit")
        assert updated.agent.description == "creator edit"
    finally:
        client.close()


def test_2_5_other_tenants_agent_is_404_via_sdk(admin: Gumloop, other_tenant: Principal) -> None:
    agent = admin.agents.create(name=f"mine {token()}").agent
    with pytest.raises(APIStatusError) as info:
        other_tenant.client.agents.retrieve(agent.id)
    exc = info.value
    assert exc.status_code == 404
    assert exc.code == "agent_not_found"
    assert exc.type == "not_found_error"
    # §3.1: param is a field path or null; the path parameter's name is the only sensible non-null value.
    assert exc.param in (None, "agent_id")
    assert exc.details == {}
    assert isinstance(exc.body, dict) and isinstance(exc.body.get("error"), dict)
    assert exc.error == exc.body["error"]
    assert agent.id not in str(exc.details)


# ---------------------------------------------------------------------------
# §3 routes and methods
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/no-such-route", "/agents/", "/agents/x/no-such-subresource", "/v2/agents"])
def test_3_unknown_route_is_404_json(raw: httpx.Client, path: str) -> None:
    assert_http_error(raw.get(path), 404, "route_not_found")


def test_3_unknown_route_outside_api_is_json(anon: httpx.Client) -> None:
    assert_http_error(anon.get("/definitely-not-a-route"), 404, "route_not_found")


def test_3_wrong_method_is_405_with_allow(raw: httpx.Client) -> None:
    resp = raw.put("/agents", json={})
    assert_http_error(resp, 405, "method_not_allowed")
    allow = {m.strip().upper() for m in resp.headers.get("allow", "").split(",") if m.strip()}
    assert {"GET", "POST"} <= allow, resp.headers.get("allow")


def test_3_never_3xx(raw: httpx.Client) -> None:
    resp = raw.get("/agents/", follow_redirects=False)
    assert not 300 <= resp.status_code < 400, resp.status_code


# ---------------------------------------------------------------------------
# §1.3 JSON conventions
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("body", [b"{not json", b'{"name": "x"', b"\xff\xfe", b'{"name": "x",}'])
def test_1_3_malformed_json_is_invalid_json(raw: httpx.Client, body: bytes) -> None:
    resp = raw.post("/agents", content=body, headers={"Content-Type": "application/json"})
    assert_http_error(resp, 400, "invalid_json")


def test_1_3_malformed_json_on_patch(raw: httpx.Client, admin: Gumloop) -> None:
    agent = admin.agents.create(name=f"json {token()}").agent
    resp = raw.patch(f"/agents/{agent.id}", content=b"{", headers={"Content-Type": "application/json"})
    assert_http_error(resp, 400, "invalid_json")


@pytest.mark.parametrize(
    "body, param",
    [
        ({"name": 5}, "name"),
        ({"name": "ok", "description": ["not", "a", "string"]}, "description"),
        ({"name": "ok", "tools": {"not": "a list"}}, "tools"),
        ({"name": "ok", "incognito": "yes"}, "incognito"),
    ],
)
def test_3_wrong_types_are_invalid_request_naming_param(raw: httpx.Client, body: dict[str, Any], param: str) -> None:
    assert_http_error(raw.post("/agents", json=body), 400, "invalid_request", param=param)


def test_1_3_empty_body_with_json_type_on_get_is_ok(raw: httpx.Client) -> None:
    resp = raw.get("/agents", headers={"Content-Type": "application/json"})
    assert_ok(resp)
    resp = raw.request("GET", "/models", content=b"", headers={"Content-Type": "application/json"})
    assert_ok(resp)


def test_1_3_empty_body_with_json_type_on_post_reads_as_empty_object(raw: httpx.Client) -> None:
    resp = raw.post("/agents", content=b"", headers={"Content-Type": "application/json"})
    err = assert_http_error(resp, 400, None, param="name")
    assert err["code"] != "invalid_json", "an empty JSON body must be read as {}"


def test_1_3_unknown_fields_are_ignored(raw: httpx.Client) -> None:
    resp = raw.post("/agents", json={"name": f"extra {token()}", "no_such_field": {"x": 1}})
    assert_ok(resp, 201)


def test_1_3_text_plain_body_is_415(raw: httpx.Client) -> None:
    resp = raw.post("/agents", content=b'{"name": "x"}', headers={"Content-Type": "text/plain"})
    assert_http_error(resp, 415, "unsupported_media_type")


def test_1_3_form_body_is_415(raw: httpx.Client) -> None:
    resp = raw.post("/agents", content=b"name=x", headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert_http_error(resp, 415, "unsupported_media_type")


def test_1_3_plus_json_type_is_accepted(raw: httpx.Client) -> None:
    resp = raw.post(
        "/agents",
        content=f'{{"name": "plusjson {token()}"}}'.encode(),
        headers={"Content-Type": "application/vnd.conformance+json"},
    )
    assert_ok(resp, 201)


def test_1_3_json_with_charset_is_accepted(raw: httpx.Client) -> None:
    resp = raw.post(
        "/agents",
        content=f'{{"name": "charset {token()}"}}'.encode(),
        headers={"Content-Type": "application/json; charset=utf-8"},
    )
    assert_ok(resp, 201)


# ---------------------------------------------------------------------------
# §9.2 item 7 size limits
# ---------------------------------------------------------------------------


def _oversized_json(total: int) -> tuple[int, Callable[[], Iterator[bytes]]]:
    prefix = b'{"name": "big", "pad": "'
    suffix = b'"}'
    pad = total - len(prefix) - len(suffix)

    def chunks() -> Iterator[bytes]:
        yield prefix
        remaining = pad
        block = b"a" * 65536
        while remaining > 0:
            n = min(remaining, len(block))
            yield block[:n]
            remaining -= n
        yield suffix

    return total, chunks


def _auth_headers(server: Any) -> dict[str, str]:
    return {"Authorization": f"Bearer {server.admin_key}", "x-auth-key": server.admin_user_id}


def _check_413(resp: RawResponse) -> None:
    assert resp.status == 413, f"expected 413, got {resp.status}: {resp.body[:500]!r}"
    assert_envelope(resp.json(), 413, "payload_too_large")


def test_9_2_oversized_body_is_413(server: Any) -> None:
    size, chunks = _oversized_json(TEN_MIB + 64 * 1024)
    headers = {**_auth_headers(server), "Content-Type": "application/json", "Content-Length": str(size)}
    _check_413(raw_request(server.port, "POST", "/api/v1/agents", headers, chunks))


def test_9_2_oversized_chunked_body_is_413(server: Any) -> None:
    _, chunks = _oversized_json(TEN_MIB + 64 * 1024)

    def chunked() -> Iterator[bytes]:
        for c in chunks():
            yield f"{len(c):x}\r\n".encode() + c + b"\r\n"
        yield b"0\r\n\r\n"

    headers = {**_auth_headers(server), "Content-Type": "application/json", "Transfer-Encoding": "chunked"}
    _check_413(raw_request(server.port, "POST", "/api/v1/agents", headers, chunked))


def test_9_2_body_just_under_limit_is_not_413(raw: httpx.Client) -> None:
    body = b'{"name": "under limit ' + token().encode() + b'", "pad": "' + b"a" * (TEN_MIB - 4096) + b'"}'
    resp = raw.post("/agents", content=body, headers={"Content-Type": "application/json"})
    assert resp.status_code == 201, resp.text[:500]


def test_9_2_deep_json_nesting_is_invalid_request(raw: httpx.Client) -> None:
    depth = 100
    nested = '{"a":' * depth + "1" + "}" * depth
    body = f'{{"name": "deep {token()}", "metadata": {{"conf_custom": {nested}}}}}'
    resp = raw.post("/agents", content=body.encode(), headers={"Content-Type": "application/json"})
    assert_http_error(resp, 400, "invalid_request")


def test_9_2_long_query_string_is_invalid_request(raw: httpx.Client) -> None:
    resp = raw.get("/agents", params={"search": "q" * 9000})
    assert_http_error(resp, 400, "invalid_request")
