"""§5.1 rate limits: headers on every authenticated response; 429 once the quota is spent."""

from __future__ import annotations

import time
from typing import Any, Callable

import httpx
import pytest

from _support import (
    OpenloopServer,
    assert_http_error,
    assert_ok,
    assert_ratelimit_headers,
    expect_api_error,
)

# ---------------------------------------------------------------------------
# Headers on the main server (quota configured by conftest.MAIN_RATE_LIMIT)
# ---------------------------------------------------------------------------


def test_5_1_headers_on_success(raw: httpx.Client, server: OpenloopServer) -> None:
    resp = raw.get("/agents")
    assert resp.status_code == 200, resp.text
    assert_ratelimit_headers(resp, server.rate_limit, server.rate_window)


def test_5_1_headers_on_created(raw: httpx.Client, server: OpenloopServer) -> None:
    resp = raw.post("/agents", json={"name": "ratelimit headers on 201"})
    assert resp.status_code == 201, resp.text
    assert_ratelimit_headers(resp, server.rate_limit, server.rate_window)


@pytest.mark.parametrize(
    "method, path, params, status",
    [
        ("GET", "/agents/agt_doesnotexist0000000000", None, 404),
        ("GET", "/agents", {"page_size": "0"}, 400),
        ("POST", "/agents", None, 400),
    ],
)
def test_5_1_headers_on_errors(
    raw: httpx.Client, server: OpenloopServer, method: str, path: str, params: Any, status: int
) -> None:
    resp = raw.request(method, path, params=params, json={} if method == "POST" else None)
    assert resp.status_code == status, resp.text
    assert_ratelimit_headers(resp, server.rate_limit, server.rate_window)


def test_5_1_headers_with_team_key(server: OpenloopServer) -> None:
    with server.http(server.team_key, server.admin_user_id) as client:
        resp = client.get("/agents", params={"team_id": server.team_id})
        assert resp.status_code == 200, resp.text
        assert_ratelimit_headers(resp, server.rate_limit, server.rate_window)


def test_5_1_reset_is_a_delta_not_an_epoch(raw: httpx.Client, server: OpenloopServer) -> None:
    resp = raw.get("/models")
    reset = int(resp.headers["ratelimit-reset"])
    assert reset < 10**6, "ratelimit-reset must be seconds from now, not a Unix timestamp"
    assert reset <= server.rate_window


def test_5_1_health_and_openapi_carry_no_quota_cost(anon: httpx.Client) -> None:
    for path in ("/healthz", "/readyz", "/api/v1/openapi.json"):
        assert anon.get(path).status_code == 200, path


# ---------------------------------------------------------------------------
# 429 on a server with a tiny quota (5 requests per 60 s per key)
# ---------------------------------------------------------------------------


def fresh_client(srv: OpenloopServer) -> httpx.Client:
    """A new personal key of the bootstrap user: a fresh bucket (one policy per API key)."""
    key = srv.create_key(user=srv.admin_user_id, name="ratelimit")["secret"]
    return srv.http(key, srv.admin_user_id)


def test_5_1_quota_exhausted_is_429(rate_limited_server: OpenloopServer) -> None:
    srv = rate_limited_server
    with fresh_client(srv) as client:
        remaining = []
        for _ in range(5):
            resp = client.get("/agents")
            assert resp.status_code == 200, resp.text
            remaining.append(assert_ratelimit_headers(resp, 5, 60)[0])
        assert remaining == [4, 3, 2, 1, 0]
        resp = client.get("/agents")
        err = assert_http_error(resp, 429, "rate_limited", param=None)
        rem, reset = assert_ratelimit_headers(resp, 5, 60)
        assert rem == 0 and reset >= 1
        assert resp.headers.get("retry-after", "").strip() == str(reset), dict(resp.headers)
        assert err["details"] == {"policy": "default", "limit": 5, "remaining": 0, "reset": reset}, err
        # Still limited: the limiter never queues or delays; it answers at once.
        started = time.monotonic()
        again = client.get("/agents")
        assert again.status_code == 429
        assert time.monotonic() - started < 5


def test_5_1_429_via_sdk(rate_limited_server: OpenloopServer) -> None:
    srv = rate_limited_server
    key = srv.create_key(user=srv.admin_user_id, name="ratelimit-sdk")["secret"]
    client = srv.sdk(key, user_id=srv.admin_user_id)
    try:
        for _ in range(5):
            client.models.list()
        exc = expect_api_error(client.agents.list, status=429, code="rate_limited")
        assert exc.type == "rate_limit_error"
        assert exc.param is None
        assert exc.details.get("policy") == "default"
        assert exc.details.get("limit") == 5
        assert exc.details.get("remaining") == 0
        assert isinstance(exc.details.get("reset"), int) and 1 <= exc.details["reset"] <= 60
    finally:
        client.close()


def test_5_1_error_responses_count_against_quota(rate_limited_server: OpenloopServer) -> None:
    srv = rate_limited_server
    with fresh_client(srv) as client:
        for expected in (4, 3, 2, 1, 0):
            resp = client.get("/agents/agt_doesnotexist0000000000")
            assert resp.status_code == 404, resp.text
            assert assert_ratelimit_headers(resp, 5, 60)[0] == expected
        assert_http_error(client.get("/agents"), 429, "rate_limited")


def test_5_1_quota_is_per_key(rate_limited_server: OpenloopServer) -> None:
    srv = rate_limited_server
    with fresh_client(srv) as spent:
        for _ in range(5):
            assert spent.get("/models").status_code == 200
        assert spent.get("/models").status_code == 429
        with fresh_client(srv) as other:
            resp = other.get("/models")
            assert resp.status_code == 200, resp.text
            assert assert_ratelimit_headers(resp, 5, 60)[0] == 4
        with srv.http(srv.team_key, srv.admin_user_id) as team:
            assert team.get("/models", params={"team_id": srv.team_id}).status_code == 200


def test_5_1_unlimited_endpoints_after_exhaustion(rate_limited_server: OpenloopServer) -> None:
    srv = rate_limited_server
    with fresh_client(srv) as client:
        for _ in range(6):
            client.get("/models")
        assert client.get("/models").status_code == 429
        with httpx.Client(base_url=srv.url, timeout=30.0, headers=dict(client.headers)) as same_key:
            for _ in range(10):
                assert same_key.get("/healthz").status_code == 200
                assert same_key.get("/readyz").status_code == 200
                assert same_key.get("/api/v1/openapi.json").status_code == 200


def test_5_1_retry_after_is_honoured(start_server: Callable[..., OpenloopServer]) -> None:
    """GCRA refills continuously: after Retry-After seconds the next request is allowed."""
    srv = start_server(rate_limit=2, rate_window=2)
    with srv.http(srv.admin_key, srv.admin_user_id) as client:
        assert client.get("/models").status_code == 200
        assert client.get("/models").status_code == 200
        limited = client.get("/models")
        assert_http_error(limited, 429, "rate_limited")
        _, reset = assert_ratelimit_headers(limited, 2, 2)
        retry_after = int(limited.headers["retry-after"])
        assert 1 <= retry_after <= 2 and retry_after == reset
        time.sleep(retry_after + 0.25)
        resp = client.get("/models")
        assert resp.status_code == 200, resp.text
        assert_ok(resp)
