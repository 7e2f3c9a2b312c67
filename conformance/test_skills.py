"""§8.10 skills (SK1–SK7) and sync (SY1–SY2), §8.6 G10/G11, through the SDK (``client.skills.*``,
``client.sync.*``, ``client.agents.attach_skills/detach_skills/list_skills``) and the ``gumloop``
CLI's ``skills`` and ``sync`` commands.

The bundle SY2 returns is checked with the SDK's own validator (``gumloop.sync.bundle_validation``),
so the manifest, hashes and layout are the ones ``gumloop sync`` accepts.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path
from typing import Any

import httpx
import pytest

from gumloop import Gumloop
from gumloop.resources.sync import SyncBundleDownload
from gumloop.sync.bundle_validation import validate_sync_bundle
from gumloop.sync.hashing import compute_content_hash
from gumloop.types import SkillDownloadResponse, SkillListResponse, SkillResponse

from _support import OpenloopServer, Principal, expect_api_error, run_gumloop_cli, unique_id

SKILL_MD = """---
name: {name}
description: Summarise quarterly reports in three bullet points.
---

# Quarterly summaries

Always answer with exactly three bullet points.
"""


def skill_files(name: str, extra: str = "v1") -> dict[str, bytes]:
    return {
        "SKILL.md": SKILL_MD.format(name=name).encode(),
        "scripts/count.py": f"print('count {extra}')\n".encode(),
    }


def fetch_zip(url: str) -> dict[str, bytes]:
    resp = httpx.get(url, timeout=60.0, follow_redirects=True)
    assert resp.status_code == 200, resp.text
    assert resp.headers["content-type"].startswith("application/zip"), resp.headers
    with zipfile.ZipFile(io.BytesIO(resp.content)) as z:
        return {i.filename: z.read(i) for i in z.infolist() if not i.is_dir()}


@pytest.fixture(scope="module")
def created(admin: Gumloop) -> SkillResponse:
    name = unique_id("quarterly")
    return admin.skills.create(skill_files(name))


def test_sk2_create_reads_front_matter(created: SkillResponse) -> None:
    s = created.skill
    assert s.id.startswith("skill_") and s.name.startswith("quarterly"), s
    assert s.description == "Summarise quarterly reports in three bullet points."
    assert s.team_id == "" and s.major_version == 1 and s.version_id and s.is_deployed is True
    files = {f["path"]: f for f in s.metadata["files"]}
    assert set(files) == {"SKILL.md", "scripts/count.py"}
    assert s.metadata["content_hash"] == compute_content_hash(skill_files(s.name))


def test_sk1_lists_and_filters(admin: Gumloop, created: SkillResponse) -> None:
    listed = admin.skills.list(page_size=100)
    assert isinstance(listed, SkillListResponse)
    assert created.skill.id in [s.id for s in listed.skills]
    assert listed.total_count is not None and listed.total_count >= 1
    found = admin.skills.list(search_query=created.skill.name.upper())
    assert [s.id for s in found.skills] == [created.skill.id]
    assert admin.skills.list(related_server_id="srv_x").skills == []
    expect_api_error(lambda: admin.skills.list(sort_order="sideways"), status=400, code="invalid_sort", param="sort_order")


def test_sk3_update_makes_a_version_and_sk4_downloads_each(admin: Gumloop) -> None:
    name = unique_id("versioned")
    s1 = admin.skills.create(skill_files(name, "v1")).skill
    s2 = admin.skills.update(s1.id, skill_files(name, "v2")).skill
    assert (s2.id, s2.major_version) == (s1.id, 2) and s2.version_id != s1.version_id
    d = admin.skills.download(s1.id)
    assert isinstance(d, SkillDownloadResponse)
    assert d.media_type == "application/zip" and d.filename.endswith(".zip") and d.version_id == s2.version_id
    assert "/files/v1/skills/" in d.download_url
    assert fetch_zip(d.download_url)["scripts/count.py"] == b"print('count v2')\n"
    old = admin.skills.download(s1.id, version_id=s1.version_id)
    assert old.major_version == 1 and fetch_zip(old.download_url)["scripts/count.py"] == b"print('count v1')\n"
    expect_api_error(lambda: admin.skills.download(s1.id, version_id="skv_missing"), status=404, code="skill_version_not_found", param="version_id")
    # A tampered signature is refused.
    bad = d.download_url.replace("sig=", "sig=x")
    assert httpx.get(bad, timeout=30.0).status_code == 403


@pytest.mark.parametrize("bad", ["../evil.md", "/etc/passwd", "a\\b.md", "x/./y.md", "a/.gumloop.json"])
def test_sk2_bad_file_names_are_400(admin: Gumloop, bad: str) -> None:
    expect_api_error(lambda: admin.skills.create({bad: b"x", "SKILL.md": b"# ok"}), status=400, code="invalid_file_name", param="files")


def test_sk2_needs_files(raw: httpx.Client) -> None:
    resp = raw.post("skills", files={"team_id": (None, "")}, data={})
    assert resp.status_code == 400, resp.text
    assert resp.json()["error"]["param"] == "files"


def test_sk5_delete_then_404(admin: Gumloop) -> None:
    s = admin.skills.create(skill_files(unique_id("doomed"))).skill
    assert admin.skills.delete(s.id).deleted is True
    assert s.id not in [x.id for x in admin.skills.list(page_size=100).skills]
    expect_api_error(lambda: admin.skills.download(s.id), status=404, code="skill_not_found")
    expect_api_error(lambda: admin.skills.delete(s.id), status=404, code="skill_not_found")


def test_other_tenant_sees_404(admin: Gumloop, other_tenant: Principal, created: SkillResponse) -> None:
    sid = created.skill.id
    c = other_tenant.client
    expect_api_error(lambda: c.skills.download(sid), status=404, code="skill_not_found")
    expect_api_error(lambda: c.skills.update(sid, {"SKILL.md": b"# hijack"}), status=404, code="skill_not_found")
    expect_api_error(lambda: c.skills.delete(sid), status=404, code="skill_not_found")
    expect_api_error(lambda: c.skills.get_access(sid), status=404, code="skill_not_found")
    assert sid not in [s.id for s in c.skills.list().skills]


def test_sk6_sk7_access(admin: Gumloop, team_member: Principal) -> None:
    s = admin.skills.create(skill_files(unique_id("shared"))).skill
    access = admin.skills.get_access(s.id).access
    assert access.grants_visibility == "private" and access.link == "none"
    expect_api_error(lambda: team_member.client.skills.download(s.id), status=404, code="skill_not_found")
    changed = admin.skills.update_access(s.id, share=[{"type": "organization", "role": "viewer"}])
    assert changed.access.grants_visibility == "organization" and changed.access.organization_access.role == "viewer"
    # A viewer reads (download) but may not change it.
    assert team_member.client.skills.download(s.id).id == s.id
    expect_api_error(lambda: team_member.client.skills.update(s.id, {"SKILL.md": b"# no"}), status=403, code="permission_denied")
    expect_api_error(lambda: team_member.client.skills.get_access(s.id), status=403, code="permission_denied")
    back = admin.skills.update_access(s.id, remove=[{"type": "organization"}])
    assert back.access.grants_visibility == "private"
    expect_api_error(lambda: admin.skills.update_access(s.id, link={"mode": "anyone"}), status=501, code="not_implemented")


def test_g10_g11_attach_detach_list(admin: Gumloop, created: SkillResponse, other_tenant: Principal) -> None:
    agent = admin.agents.create(name=unique_id("skilled"), model_name="auto").agent
    sid = created.skill.id
    r = admin.agents.attach_skills(agent.id, [sid])
    assert (r.agent_id, r.skill_ids, r.attached, r.already_attached) == (agent.id, [sid], [sid], [])
    again = admin.agents.attach_skills(agent.id, sid)
    assert (again.attached, again.already_attached) == ([], [sid])
    assert [s.id for s in admin.agents.list_skills(agent.id).skills] == [sid]
    assert admin.agents.retrieve(agent.id).agent.skill_ids == [sid]
    expect_api_error(lambda: admin.agents.attach_skills(agent.id, ["skill_missing"]), status=404, code="skill_not_found", param="attach[0]")
    expect_api_error(lambda: other_tenant.client.agents.attach_skills(agent.id, [sid]), status=404, code="agent_not_found")
    d = admin.agents.detach_skills(agent.id, [sid, "skill_never"])
    assert (d.skill_ids, d.detached, d.already_detached) == ([], [sid], ["skill_never"])
    assert admin.agents.list_skills(agent.id).skills == []


def _validated(admin: Gumloop) -> Any:
    plan = admin.sync.plan()
    download = admin.sync.download()
    assert isinstance(download, SyncBundleDownload) and download.content_type == "application/zip"
    bundle = validate_sync_bundle(download, expected_organization_id=plan.organization.organization_id, plan_limits=plan.limits)
    return plan, bundle


def test_sy1_sy2_plan_and_bundle_validate(admin: Gumloop, created: SkillResponse, other_tenant: Principal) -> None:
    plan, bundle = _validated(admin)
    assert plan.skill_count == len(bundle.manifest.skills) and plan.manifest.hash == bundle.manifest.manifest.hash
    entry = next(s for s in bundle.manifest.skills if s.skill_id == created.skill.id)
    files = bundle.files_by_install_name[entry.install_name]
    assert files["SKILL.md"].startswith(b"---\nname: quarterly")
    assert entry.published_version_id == created.skill.version_id
    # Another organization's plan never contains it; naming a foreign organization is 404.
    other = other_tenant.client.sync.plan()
    assert other.organization.organization_id != plan.organization.organization_id
    expect_api_error(lambda: admin.sync.plan(organization_id="org_elsewhere"), status=404, code="organization_not_found", param="organization_id")


def test_sy1_requires_cli_version_header(raw: httpx.Client) -> None:
    resp = raw.post("skills/sync/plan", json={})
    assert resp.status_code == 400 and resp.json()["error"]["param"] == "X-Gumloop-CLI-Version", resp.text


# ---------------------------------------------------------------------------
# The gumloop CLI
# ---------------------------------------------------------------------------


def run_cli(srv: OpenloopServer, home: str, *args: str) -> subprocess.CompletedProcess[bytes]:
    # No coding agent on PATH: only the ~/.agents target below is detected.
    return run_gumloop_cli(srv, home, *args, extra_env={"PATH": os.path.dirname(sys.executable) + os.pathsep + "/usr/bin:/bin"})


def test_cli_skills_and_sync(server: OpenloopServer) -> None:
    with tempfile.TemporaryDirectory(prefix="openloop-cli-skills-") as home:
        name = unique_id("cli-skill")
        src = Path(home) / f"{name}.md"
        src.write_text("# CLI skill\n\nSay hello from the CLI.\n")
        proc = run_cli(server, home, "skills", "create", str(src), "--json")
        assert proc.returncode == 0, (proc.stdout, proc.stderr)
        skill = json.loads(proc.stdout)["skill"]
        assert skill["name"] == name and skill["description"] == "Say hello from the CLI.", skill

        src.write_text("# CLI skill\n\nSay hello again.\n")
        proc = run_cli(server, home, "skills", "update", skill["id"], str(src), "--json")
        assert proc.returncode == 0, (proc.stdout, proc.stderr)
        assert json.loads(proc.stdout)["skill"]["major_version"] == 2

        proc = run_cli(server, home, "skills", "list", "--search", name, "--json")
        assert proc.returncode == 0, (proc.stdout, proc.stderr)
        assert [s["id"] for s in json.loads(proc.stdout)["skills"]] == [skill["id"]]

        out_dir = os.path.join(home, "dl") + os.sep
        proc = run_cli(server, home, "skills", "download", skill["id"], "-o", out_dir, "--json")
        assert proc.returncode == 0, (proc.stdout, proc.stderr)
        meta = json.loads(proc.stdout)
        with zipfile.ZipFile(meta["path"]) as z:
            assert z.read(f"{name}.md") == b"# CLI skill\n\nSay hello again.\n"

        proc = run_cli(server, home, "skills", "access", skill["id"], "--json")
        assert proc.returncode == 0, (proc.stdout, proc.stderr)
        assert json.loads(proc.stdout)["access"]["grants_visibility"] == "private"

        # gumloop sync into the ~/.agents target.
        os.makedirs(os.path.join(home, ".agents"))
        proc = run_cli(server, home, "sync", "--once", "--non-interactive", "--json")
        assert proc.returncode == 0, (proc.stdout, proc.stderr)
        installed = Path(home) / ".agents" / "skills" / name / f"{name}.md"
        assert installed.read_bytes() == b"# CLI skill\n\nSay hello again.\n", list((Path(home) / ".agents" / "skills").iterdir())
        marker = json.loads((installed.parent / ".gumloop.json").read_text())
        assert marker["skill_id"] == skill["id"]

        # A second run is already current; a deleted skill is removed by the next sync.
        proc = run_cli(server, home, "sync", "--once", "--non-interactive", "--json")
        assert proc.returncode == 0, (proc.stdout, proc.stderr)
        proc = run_cli(server, home, "skills", "delete", skill["id"], "--json")
        assert proc.returncode == 0 and json.loads(proc.stdout)["deleted"] is True, (proc.stdout, proc.stderr)
        proc = run_cli(server, home, "sync", "--once", "--non-interactive", "--json")
        assert proc.returncode == 0, (proc.stdout, proc.stderr)
        assert not installed.exists()
