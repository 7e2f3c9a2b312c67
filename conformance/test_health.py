"""§9.3 health, §9.4 OpenAPI, and §9.2/§9.5 response headers."""

from __future__ import annotations

import httpx


def test_9_3_healthz(anon: httpx.Client) -> None:
    resp = anon.get("/healthz")
    assert resp.status_code == 200, resp.text
    assert resp.json() == {"status": "ok"}


def test_9_3_readyz(anon: httpx.Client) -> None:
    resp = anon.get("/readyz")
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body.get("status") == "ready", body
    assert body.get("checks") == {"database": "ok", "data_dir": "ok", "migrations": "ok"}, body


def test_9_4_openapi_is_public_and_3_1(anon: httpx.Client) -> None:
    resp = anon.get("/api/v1/openapi.json")
    assert resp.status_code == 200, resp.text
    assert "application/json" in resp.headers.get("content-type", "")
    doc = resp.json()
    assert isinstance(doc.get("openapi"), str) and doc["openapi"].startswith("3.1"), doc.get("openapi")
    paths = doc.get("paths")
    assert isinstance(paths, dict)
    # Paths are relative to the server URL ``<public>/api/v1``.
    for path in ("/agents", "/agents/{agent_id}", "/agents/{agent_id}/versions", "/models", "/teams", "/organizations"):
        assert path in paths, f"openapi paths lack {path}: {sorted(paths)[:50]}"
    assert {"get", "post"} <= set(paths["/agents"]), paths["/agents"]
    servers = doc.get("servers")
    assert isinstance(servers, list) and servers, doc.get("servers")
    assert servers[0]["url"].endswith("/api/v1"), servers


def test_9_4_openapi_security_schemes_and_operation_ids(anon: httpx.Client) -> None:
    doc = anon.get("/api/v1/openapi.json").json()
    schemes = doc.get("components", {}).get("securitySchemes", {})
    assert "bearerAuth" in schemes and "apiKeyQuery" in schemes, schemes
    assert schemes["apiKeyQuery"].get("in") == "query" and schemes["apiKeyQuery"].get("name") == "api_key", schemes
    assert doc["paths"]["/agents"]["get"].get("x-openloop-id") == "G1"
    assert doc["paths"]["/agents"]["post"].get("x-openloop-id") == "G2"


def test_9_2_security_headers_and_request_id(raw: httpx.Client) -> None:
    resp = raw.get("/agents", headers={"X-Request-Id": "conf-req-123"})
    assert resp.status_code == 200, resp.text
    assert resp.headers.get("x-content-type-options") == "nosniff"
    assert "no-store" in resp.headers.get("cache-control", "")
    assert resp.headers.get("x-request-id") == "conf-req-123"
    generated = raw.get("/agents", headers={"X-Request-Id": "bad id with spaces"})
    rid = generated.headers.get("x-request-id")
    assert rid and rid != "bad id with spaces"


def test_9_2_error_responses_carry_security_headers(anon: httpx.Client) -> None:
    resp = anon.get("/api/v1/agents")
    assert resp.status_code == 401
    assert resp.headers.get("x-content-type-options") == "nosniff"
    assert resp.headers.get("x-request-id")
