"""Fixtures for the Openloop conformance suite.

One Openloop server is started per test session (``server``), configured per the
contract in README.md; a factory (``start_server``) starts extra servers, e.g. with a
tiny rate limit for the 429 tests. Extra principals (a second tenant, a team member,
an organization member outside the team, a second team) are created through the
``openloop`` CLI against the running server's data directory.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from gumloop import Gumloop

from _support import OpenloopServer, Principal, default_binary, launch_server
from fake_openai import FAKE_OPENAI_KEY, FakeOpenAI

# The main server's quota is set high so the suite itself never trips it; the 429
# behaviour is tested against separate servers from ``start_server``.
MAIN_RATE_LIMIT = 100_000
MAIN_RATE_WINDOW = 60


@pytest.fixture(scope="session", autouse=True)
def _scrub_sdk_env() -> Iterator[None]:
    """The SDK reads GUMLOOP_* variables as defaults; keep the caller's shell out of it."""
    saved = {k: v for k, v in os.environ.items() if k.startswith(("GUMLOOP_", "GUMCP_", "TRACEPARENT"))}
    for k in saved:
        del os.environ[k]
    yield
    os.environ.update(saved)


def _tempdir(prefix: str) -> str:
    return tempfile.mkdtemp(prefix=prefix)


@pytest.fixture(scope="session")
def server() -> Iterator[OpenloopServer]:
    data_dir = _tempdir("openloop-conf-")
    try:
        srv = launch_server(
            default_binary(),
            data_dir,
            rate_limit=MAIN_RATE_LIMIT,
            rate_window=MAIN_RATE_WINDOW,
            # Unauthenticated requests are limited per IP (60/min by default); the auth tests
            # send a handful, but keep them clear of that limit too.
            extra_env={"OPENLOOP_RATE_LIMIT_UNAUTH_PER_MIN": "100000"},
        )
    except BaseException:
        shutil.rmtree(data_dir, ignore_errors=True)
        raise
    try:
        yield srv
    finally:
        srv.stop()
        shutil.rmtree(data_dir, ignore_errors=True)


@pytest.fixture(scope="session")
def start_server() -> Iterator[Callable[..., OpenloopServer]]:
    """Factory: ``start_server(rate_limit=5, rate_window=60)`` → a fresh server in its own data dir."""
    started: list[tuple[OpenloopServer, str]] = []

    def factory(*, rate_limit: int = 5, rate_window: int = 60, extra_env: dict[str, str] | None = None) -> OpenloopServer:
        data_dir = _tempdir("openloop-conf-extra-")
        try:
            srv = launch_server(
                default_binary(), data_dir, rate_limit=rate_limit, rate_window=rate_window, extra_env=extra_env
            )
        except BaseException:
            shutil.rmtree(data_dir, ignore_errors=True)
            raise
        started.append((srv, data_dir))
        return srv

    yield factory
    for srv, data_dir in started:
        srv.stop()
        shutil.rmtree(data_dir, ignore_errors=True)


@pytest.fixture(scope="session")
def rate_limited_server(start_server: Callable[..., OpenloopServer]) -> OpenloopServer:
    """A server allowing 5 requests per 60 s per key."""
    return start_server(rate_limit=5, rate_window=60)


# ---------------------------------------------------------------------------
# Principals and clients on the main server
# ---------------------------------------------------------------------------


@pytest.fixture(scope="session")
def admin(server: OpenloopServer) -> Iterator[Gumloop]:
    """SDK client of the bootstrap user (organization admin of org_default, admin of team_conf)."""
    client = server.sdk(server.admin_key, user_id=server.admin_user_id)
    yield client
    client.close()


@pytest.fixture(scope="session")
def raw(server: OpenloopServer) -> Iterator[httpx.Client]:
    """httpx client authenticated as the bootstrap user (base URL ``…/api/v1``)."""
    with server.http(server.admin_key, server.admin_user_id) as client:
        yield client


@pytest.fixture(scope="session")
def anon(server: OpenloopServer) -> Iterator[httpx.Client]:
    """httpx client without credentials, rooted at the server origin (not ``/api/v1``)."""
    with httpx.Client(base_url=server.url, timeout=60.0) as client:
        yield client


@pytest.fixture(scope="session")
def team_client(server: OpenloopServer) -> Iterator[Gumloop]:
    """SDK client using the bootstrap *team* key, acting as the bootstrap user."""
    client = server.sdk(server.team_key, user_id=server.admin_user_id, team_id=server.team_id)
    yield client
    client.close()


def make_other_tenant(server: OpenloopServer) -> Principal:
    """A user in another organization (another tenant) with its own personal key."""
    created = server.create_user(
        "usr_conf_other", org="org_conf_other", org_admin=True, first_name="Other", last_name="Tenant"
    )
    assert created["user_id"] == "usr_conf_other", created
    key = server.create_key(user="usr_conf_other", name="other-tenant")
    client = server.sdk(key["secret"], user_id="usr_conf_other")
    return Principal("usr_conf_other", key["secret"], client, org_id=created.get("organization_id"), key_id=key["key_id"])


def make_team_member(server: OpenloopServer) -> Principal:
    """A plain ``member`` of team_conf (same organization), with a personal key."""
    created = server.create_user("usr_conf_member", org="org_default", first_name="Team", last_name="Member")
    server.add_member(server.team_id, "usr_conf_member", role="member")
    key = server.create_key(user="usr_conf_member", name="member")
    client = server.sdk(key["secret"], user_id="usr_conf_member")
    return Principal("usr_conf_member", key["secret"], client, org_id=created.get("organization_id"), key_id=key["key_id"])


@pytest.fixture(scope="session")
def other_tenant(server: OpenloopServer) -> Iterator[Principal]:
    """A user in another organization (another tenant) with its own personal key."""
    principal = make_other_tenant(server)
    yield principal
    principal.client.close()


@pytest.fixture(scope="session")
def team_member(server: OpenloopServer) -> Iterator[Principal]:
    """A plain ``member`` of team_conf (same organization), with a personal key."""
    principal = make_team_member(server)
    yield principal
    principal.client.close()


@pytest.fixture(scope="session")
def org_outsider(server: OpenloopServer) -> Iterator[Principal]:
    """A user of org_default who is *not* a member of team_conf."""
    created = server.create_user("usr_conf_outsider", org="org_default")
    key = server.create_key(user="usr_conf_outsider", name="outsider")
    client = server.sdk(key["secret"], user_id="usr_conf_outsider")
    yield Principal("usr_conf_outsider", key["secret"], client, org_id=created.get("organization_id"), key_id=key["key_id"])
    client.close()


@pytest.fixture(scope="session")
def second_team(server: OpenloopServer) -> str:
    """A second team in org_default of which the bootstrap user is an admin."""
    team_id = server.create_team("Aardvark Conformance", team_id="team_conf_b", org="org_default")
    server.add_member(team_id, server.admin_user_id, role="admin")
    return team_id


@pytest.fixture(scope="session")
def foreign_team(server: OpenloopServer) -> str:
    """A team in org_default that the bootstrap user does not belong to."""
    return server.create_team("Zebra Conformance", team_id="team_conf_foreign", org="org_default")


@pytest.fixture(scope="session")
def catalogue_model(admin: Gumloop) -> str:
    """A model value from the M1 catalogue other than ``auto``."""
    groups = admin.models.list().model_groups
    values = [
        opt.get("value")
        for group in groups
        for opt in group.get("options", [])
        if isinstance(opt, dict) and opt.get("value") not in (None, "auto")
    ]
    if not values:
        pytest.fail(f"M1 catalogue has no model besides 'auto': {groups!r}")
    return values[0]


# ---------------------------------------------------------------------------
# A server whose OpenAI-compatible provider is the fake of fake_openai.py
# ---------------------------------------------------------------------------


@pytest.fixture(scope="session")
def fake_openai() -> Iterator[FakeOpenAI]:
    """The session's fake OpenAI-compatible provider (real HTTP on 127.0.0.1)."""
    with FakeOpenAI() as fake:
        yield fake


@pytest.fixture(scope="session")
def llm_server(start_server: Callable[..., OpenloopServer], fake_openai: FakeOpenAI) -> OpenloopServer:
    """A server with ``OPENAI_BASE_URL=<fake>/v1`` and ``OPENAI_API_KEY=sk-fake``.

    Separate from ``server`` so the main server keeps its "no provider configured" catalogue.
    """
    return start_server(
        rate_limit=MAIN_RATE_LIMIT,
        rate_window=MAIN_RATE_WINDOW,
        extra_env={
            "OPENAI_BASE_URL": fake_openai.base_url,
            "OPENAI_API_KEY": FAKE_OPENAI_KEY,
            "OPENLOOP_RATE_LIMIT_UNAUTH_PER_MIN": "100000",
        },
    )


@pytest.fixture(scope="session")
def llm_admin(llm_server: OpenloopServer) -> Iterator[Gumloop]:
    """SDK client of the bootstrap user on ``llm_server``."""
    client = llm_server.sdk(llm_server.admin_key, user_id=llm_server.admin_user_id)
    yield client
    client.close()


@pytest.fixture(scope="session")
def llm_raw(llm_server: OpenloopServer) -> Iterator[httpx.Client]:
    """httpx on ``llm_server``'s ``/api/v1`` as the bootstrap user (Bearer + ``x-auth-key``, like the SDK)."""
    with llm_server.http(llm_server.admin_key, llm_server.admin_user_id) as client:
        yield client


@pytest.fixture(scope="session")
def llm_other_tenant(llm_server: OpenloopServer) -> Iterator[Principal]:
    principal = make_other_tenant(llm_server)
    yield principal
    principal.client.close()


@pytest.fixture(scope="session")
def llm_team_member(llm_server: OpenloopServer) -> Iterator[Principal]:
    principal = make_team_member(llm_server)
    yield principal
    principal.client.close()


def pytest_runtest_makereport(item: pytest.Item, call: Any) -> None:  # noqa: D401
    """Attach the server's stderr tail to failing tests' reports."""
    if call.when == "call" and call.excinfo is not None:
        funcargs = getattr(item, "funcargs", {}) or {}
        for name in ("server", "llm_server", "artifact_server"):
            srv = funcargs.get(name)
            if isinstance(srv, OpenloopServer):
                item.add_report_section("call", f"openloop ({name})", srv.diagnostics())
