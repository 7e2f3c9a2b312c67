"""§8.13 X1/X2 tenancy, §8.7 M1 models, and §2.4/§2.5 team scope, visibility and rights."""

from __future__ import annotations

from typing import Any, Callable

import httpx
import pytest

from gumloop import Gumloop
from gumloop.types import ModelListResponse, OrganizationsResponse, TeamsResponse

from _support import Principal, assert_ok, expect_api_error, token


def _create(client: Gumloop, **kwargs: Any):
    kwargs.setdefault("name", f"tenancy {token()}")
    return client.agents.create(**kwargs).agent


# ---------------------------------------------------------------------------
# X1 teams
# ---------------------------------------------------------------------------


def test_x1_teams_list(admin: Gumloop, server: Any, second_team: str) -> None:
    resp = admin.teams.list()
    assert isinstance(resp, TeamsResponse)
    ids = [t.id for t in resp.teams]
    assert server.team_id in ids and second_team in ids, ids
    for team in resp.teams:
        assert isinstance(team.name, str) and team.name
    names = [t.name for t in resp.teams]
    assert names == sorted(names) or names == sorted(names, key=str.casefold), f"teams ordered by name: {names}"


def test_x1_teams_excludes_teams_the_user_is_not_in(admin: Gumloop, foreign_team: str) -> None:
    assert foreign_team not in [t.id for t in admin.teams.list().teams]


def test_x1_team_key_sees_only_its_team(team_client: Gumloop, server: Any, second_team: str) -> None:
    resp = team_client.teams.list()
    assert [t.id for t in resp.teams] == [server.team_id]


def test_x1_team_id_query_is_validated(admin: Gumloop, server: Any, second_team: str, foreign_team: str) -> None:
    # The CLI passes team_id; it is validated but does not filter.
    resp = admin.teams.list(team_id=server.team_id)
    assert {server.team_id, second_team} <= {t.id for t in resp.teams}
    expect_api_error(admin.teams.list, team_id=foreign_team, status=404, code="team_not_found")
    expect_api_error(admin.teams.list, team_id="team_does_not_exist", status=404, code="team_not_found")


def test_x1_other_tenant_does_not_see_our_teams(other_tenant: Principal, server: Any) -> None:
    ids = [t.id for t in other_tenant.client.teams.list().teams]
    assert server.team_id not in ids


def test_x1_raw_shape(raw: httpx.Client) -> None:
    body = assert_ok(raw.get("/teams"))
    assert isinstance(body.get("teams"), list)
    for team in body["teams"]:
        assert set(team) >= {"id", "name"}


# ---------------------------------------------------------------------------
# X2 organizations
# ---------------------------------------------------------------------------


def test_x2_organizations_list(admin: Gumloop) -> None:
    resp = admin.organizations.list()
    assert isinstance(resp, OrganizationsResponse)
    assert "org_default" in [o.id for o in resp.organizations]


def test_x2_other_tenant_sees_only_its_organization(other_tenant: Principal) -> None:
    ids = [o.id for o in other_tenant.client.organizations.list().organizations]
    assert "org_default" not in ids
    assert other_tenant.org_id == "org_conf_other"
    assert ids == ["org_conf_other"], ids


def test_x2_team_key_not_supported(team_client: Gumloop) -> None:
    expect_api_error(team_client.organizations.list, status=403, code="team_key_not_supported")


# ---------------------------------------------------------------------------
# M1 models
# ---------------------------------------------------------------------------


def test_m1_models_list(admin: Gumloop) -> None:
    resp = admin.models.list()
    assert isinstance(resp, ModelListResponse)
    groups = resp.model_groups
    assert isinstance(groups, list) and groups
    for group in groups:
        assert isinstance(group.get("groupLabel"), str) and group["groupLabel"], group
        assert isinstance(group.get("options"), list), group
        for opt in group["options"]:
            assert isinstance(opt.get("value"), str) and opt["value"], opt
            assert opt.get("status") in ("available", "unavailable"), opt
            if "label" in opt:
                assert isinstance(opt["label"], str)


def test_m1_provider_groups_and_openloop_auto(admin: Gumloop) -> None:
    groups = {g["groupLabel"]: g for g in admin.models.list().model_groups}
    for label in ("OpenAI", "Anthropic", "Ollama", "Openloop"):
        assert label in groups, f"M1 must return group {label!r}; got {sorted(groups)}"
    assert "auto" in [o.get("value") for o in groups["Openloop"]["options"]]


def test_m1_unavailable_without_credentials(admin: Gumloop) -> None:
    # The suite starts the server without provider credentials or OLLAMA_HOST.
    groups = {g["groupLabel"]: g for g in admin.models.list().model_groups}
    for label in ("OpenAI", "Anthropic", "Ollama"):
        for opt in groups[label]["options"]:
            assert opt.get("status") == "unavailable", (label, opt)


def test_m1_team_key_and_team_id(team_client: Gumloop, admin: Gumloop, server: Any) -> None:
    assert team_client.models.list().model_groups
    assert admin.models.list(team_id=server.team_id).model_groups


# ---------------------------------------------------------------------------
# §2.4 team scope
# ---------------------------------------------------------------------------


def test_2_4_personal_key_with_foreign_team_is_team_not_found(admin: Gumloop, foreign_team: str) -> None:
    expect_api_error(admin.agents.list, team_id=foreign_team, status=404, code="team_not_found")
    expect_api_error(admin.agents.list, team_id="team_does_not_exist", status=404, code="team_not_found")


def test_2_4_team_key_with_other_team_is_team_mismatch(server: Any, second_team: str) -> None:
    client = server.sdk(server.team_key, user_id=server.admin_user_id, team_id=second_team)
    try:
        expect_api_error(client.agents.list, status=403, code="team_mismatch")
    finally:
        client.close()


def test_2_4_team_key_without_team_id_implies_its_team(server: Any, admin: Gumloop) -> None:
    tok = token()
    agent = _create(admin, name=f"implied {tok}", team_id=server.team_id)
    client = server.sdk(server.team_key, user_id=server.admin_user_id)  # no team_id
    try:
        assert [a.id for a in client.agents.list(search=tok).agents] == [agent.id]
        assert client.agents.retrieve(agent.id).agent.team_id == server.team_id
    finally:
        client.close()


def test_2_4_project_id_is_alias_of_team_id(raw: httpx.Client, admin: Gumloop, server: Any) -> None:
    tok = token()
    agent = _create(admin, name=f"project {tok}", team_id=server.team_id)
    body = assert_ok(raw.get("/agents", params={"search": tok, "project_id": server.team_id}))
    assert [a["id"] for a in body["agents"]] == [agent.id]


def test_2_4_team_scope_restricts_lookups(admin: Gumloop, server: Any) -> None:
    personal = _create(admin)
    scoped = server.sdk(server.admin_key, user_id=server.admin_user_id, team_id=server.team_id)
    try:
        expect_api_error(scoped.agents.retrieve, personal.id, status=404, code="agent_not_found")
    finally:
        scoped.close()


def test_2_4_team_key_cannot_see_personal_agents(admin: Gumloop, team_client: Gumloop) -> None:
    personal = _create(admin)
    expect_api_error(team_client.agents.retrieve, personal.id, status=404, code="agent_not_found")


# ---------------------------------------------------------------------------
# §2.5 visibility: another tenant's objects are 404, never 403
# ---------------------------------------------------------------------------

CROSS_TENANT_CALLS: list[tuple[str, Callable[[Gumloop, str, str], Any]]] = [
    ("G3 retrieve", lambda c, a, v: c.agents.retrieve(a)),
    ("G4 update", lambda c, a, v: c.agents.update(a, name="hijacked")),
    ("G5 delete", lambda c, a, v: c.agents.delete(a)),
    ("G6 list_versions", lambda c, a, v: c.agents.list_versions(a)),
    ("G7 get_version", lambda c, a, v: c.agents.get_version(a, v)),
    ("G8 update_abilities", lambda c, a, v: c.agents.update_abilities(a, web_search={"enabled": True})),
    ("G9 set_incognito", lambda c, a, v: c.agents.set_incognito(a, True)),
]


@pytest.fixture(scope="module")
def admin_agents(admin: Gumloop, server: Any) -> dict[str, tuple[str, str]]:
    out = {}
    for label, extra in (("personal", {}), ("team", {"team_id": server.team_id})):
        agent = _create(admin, **extra)
        version_id = admin.agents.list_versions(agent.id).versions[0].id
        out[label] = (agent.id, version_id)
    return out


@pytest.mark.parametrize("owner", ["personal", "team"])
@pytest.mark.parametrize("label, call", CROSS_TENANT_CALLS, ids=[c[0] for c in CROSS_TENANT_CALLS])
def test_2_5_other_tenant_gets_404(
    other_tenant: Principal,
    admin: Gumloop,
    admin_agents: dict[str, tuple[str, str]],
    owner: str,
    label: str,
    call: Callable[[Gumloop, str, str], Any],
) -> None:
    agent_id, version_id = admin_agents[owner]
    exc = expect_api_error(call, other_tenant.client, agent_id, version_id, status=404, code="agent_not_found")
    # Indistinguishable from an absent id (§2.5): same code, type, param and details.
    absent = expect_api_error(
        call, other_tenant.client, "agt_doesnotexist0000000000", version_id, status=404, code="agent_not_found"
    )
    assert exc.param == absent.param and exc.param in (None, "agent_id")
    assert exc.details == absent.details == {}
    # Nothing changed for the owner.
    agent = admin.agents.retrieve(agent_id).agent
    assert agent.name != "hijacked" and agent.incognito.enforced is False


def test_2_5_other_tenant_list_excludes_our_agents(other_tenant: Principal, admin_agents: dict[str, tuple[str, str]]) -> None:
    ids = {a.id for a in other_tenant.client.agents.list().agents}
    assert not ids & {agent_id for agent_id, _ in admin_agents.values()}


def test_2_5_cross_tenant_404_matches_absent_404(other_tenant: Principal, admin_agents: dict[str, tuple[str, str]]) -> None:
    agent_id, _ = admin_agents["personal"]
    foreign = expect_api_error(other_tenant.client.agents.retrieve, agent_id, status=404, code="agent_not_found")
    absent = expect_api_error(
        other_tenant.client.agents.retrieve, "agt_doesnotexist0000000000", status=404, code="agent_not_found"
    )
    # Existence in another tenant must not be observable: same shape, no id-specific details.
    assert foreign.body["error"]["type"] == absent.body["error"]["type"]
    assert foreign.param == absent.param
    assert foreign.details == absent.details == {}
    assert set(foreign.body) == set(absent.body) and set(foreign.body["error"]) == set(absent.body["error"])


def test_2_5_other_tenant_agents_invisible_to_admin(other_tenant: Principal, admin: Gumloop) -> None:
    theirs = _create(other_tenant.client)
    expect_api_error(admin.agents.retrieve, theirs.id, status=404, code="agent_not_found")
    assert theirs.id not in {a.id for a in admin.agents.list().agents}


@pytest.fixture(scope="module")
def team_agent_for_member(admin: Gumloop, server: Any, team_member: Principal) -> tuple[str, str]:
    """A team_conf agent created by the team admin; the member neither created it nor administers the team."""
    agent = _create(admin, team_id=server.team_id)
    return agent.id, admin.agents.list_versions(agent.id).versions[0].id


def test_2_5_team_member_can_read_team_agent(team_member: Principal, team_agent_for_member: tuple[str, str], server: Any) -> None:
    agent_id, _ = team_agent_for_member
    member = team_member.client
    agent = member.agents.retrieve(agent_id).agent
    assert agent.id == agent_id and agent.team_id == server.team_id
    listed = member.agents.list(team_id=server.team_id, search=agent.name)
    assert [a.id for a in listed.agents] == [agent_id]


MEMBER_FORBIDDEN_CALLS: list[tuple[str, Callable[[Gumloop, str, str], Any]]] = [
    ("G4 update", lambda c, a, v: c.agents.update(a, name="member edit")),
    ("G5 delete", lambda c, a, v: c.agents.delete(a)),
    ("G6 list_versions", lambda c, a, v: c.agents.list_versions(a)),
    ("G7 get_version", lambda c, a, v: c.agents.get_version(a, v)),
    ("G8 update_abilities", lambda c, a, v: c.agents.update_abilities(a, web_search={"enabled": True})),
    ("G9 set_incognito", lambda c, a, v: c.agents.set_incognito(a, True)),
]


@pytest.mark.parametrize("label, call", MEMBER_FORBIDDEN_CALLS, ids=[c[0] for c in MEMBER_FORBIDDEN_CALLS])
def test_2_5_team_member_without_update_right_gets_403(
    admin: Gumloop,
    team_member: Principal,
    team_agent_for_member: tuple[str, str],
    label: str,
    call: Callable[[Gumloop, str, str], Any],
) -> None:
    """Team agent: members read and use it; only the creator and team admins change it (permission_denied)."""
    agent_id, version_id = team_agent_for_member
    expect_api_error(call, team_member.client, agent_id, version_id, status=403, code="permission_denied")
    after = admin.agents.retrieve(agent_id).agent
    assert after.version == 1 and after.name != "member edit"


def test_2_5_team_member_can_update_own_team_agent(team_member: Principal, server: Any) -> None:
    member = team_member.client
    agent = _create(member, team_id=server.team_id)
    assert agent.team_id == server.team_id
    updated = member.agents.update(agent.id, description="mine")
    assert updated.agent.description == "mine"
    assert member.agents.delete(agent.id).deleted is True


def test_2_5_team_admin_can_update_members_agent(admin: Gumloop, team_member: Principal, server: Any) -> None:
    agent = _create(team_member.client, team_id=server.team_id)
    assert admin.agents.update(agent.id, description="admin edit").agent.description == "admin edit"


def test_2_5_member_personal_agents_invisible_to_team_admin(admin: Gumloop, team_member: Principal) -> None:
    agent = _create(team_member.client)
    expect_api_error(admin.agents.retrieve, agent.id, status=404, code="agent_not_found")


def test_2_5_org_outsider_cannot_see_team_agent(admin: Gumloop, org_outsider: Principal, server: Any) -> None:
    agent = _create(admin, team_id=server.team_id)
    expect_api_error(org_outsider.client.agents.retrieve, agent.id, status=404, code="agent_not_found")
    expect_api_error(org_outsider.client.agents.list, team_id=server.team_id, status=404, code="team_not_found")


# ---------------------------------------------------------------------------
# K1–K3 API keys (Openloop extension)
# ---------------------------------------------------------------------------


def test_k1_k3_personal_keys_create_list_revoke_and_isolation(server: Any, other_tenant: Principal, team_client: Gumloop) -> None:
    with server.http(server.admin_key, server.admin_user_id) as raw:
        r = raw.post("/api-keys", json={"name": f"k {token()}"})
        assert r.status_code == 201, r.text
        body = r.json()
        secret, key = body["secret"], body["api_key"]
        assert secret.startswith("olk_") and key["prefix"] == secret[:8] and key["revoked_at"] is None
        assert key["user_id"] == server.admin_user_id
        listed = raw.get("/api-keys").json()["api_keys"]
        assert any(k["id"] == key["id"] for k in listed)
        assert all("secret" not in k and secret not in str(k) for k in listed)
        # Bad input names the field.
        r = raw.post("/api-keys", json={"name": "x" * 257})
        assert r.status_code == 400 and r.json()["error"]["param"] == "name"
    # Another organization neither sees nor revokes it.
    with server.http(other_tenant.key, other_tenant.user_id) as other:
        assert all(k["id"] != key["id"] for k in other.get("/api-keys").json()["api_keys"])
        r = other.delete(f"/api-keys/{key['id']}")
        assert r.status_code == 404 and r.json()["error"]["code"] == "api_key_not_found"
    # A team key cannot mint keys.
    with server.http(server.team_key, server.admin_user_id) as team:
        r = team.post("/api-keys", json={})
        assert r.status_code == 403 and r.json()["error"]["code"] == "team_key_not_supported"
    with server.http(secret, server.admin_user_id) as new:
        assert new.get("/teams").status_code == 200
    with server.http(server.admin_key, server.admin_user_id) as raw:
        r = raw.delete(f"/api-keys/{key['id']}")
        assert r.status_code == 200 and r.json()["revoked_at"] is not None
        # Revoking again is idempotent.
        assert raw.delete(f"/api-keys/{key['id']}").status_code == 200
    with server.http(secret, server.admin_user_id) as new:
        assert new.get("/teams").status_code == 401
