"""How many of the official SDK's public methods work against this server: every public
method of ``Gumloop`` (sync; ``AsyncGumloop`` mirrors it), ``GumloopClient`` and
``gumloop.OAuth``, mapped to the routes it calls (API.md Appendix A, plus ``mcp.close``,
which calls none). A method works when every route it calls is implemented, i.e. its
operation in the served OpenAPI document carries no ``x-openloop-status``. The README's
compatibility section states the figure this test computes.
"""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import httpx
from gumloop import Gumloop, GumloopClient, OAuth

README = Path(__file__).resolve().parent.parent / "README.md"

# SDK method → the spec ids of the routes it calls ([] = no HTTP call).
SDK_ROUTES: dict[str, list[str]] = {
    "GumloopClient.run_flow": ["F1", "F2"],
    "GumloopClient.get_run_status": ["F2"],
    "GumloopClient.close": [],
    "agents.list": ["G1"],
    "agents.create": ["G2"],
    "agents.retrieve": ["G3"],
    "agents.update": ["G4"],
    "agents.delete": ["G5"],
    "agents.list_versions": ["G6"],
    "agents.get_version": ["G7"],
    "agents.update_abilities": ["G8"],
    "agents.set_incognito": ["G9"],
    "agents.attach_skills": ["G10"],
    "agents.detach_skills": ["G10"],
    "agents.list_skills": ["G11"],
    "agents.list_mcp_servers": ["G12"],
    "agents.attach_mcp_server": ["G13"],
    "agents.detach_mcp_server": ["G14"],
    "agents.list_knowledge_sources": ["G15"],
    "agents.attach_knowledge_source": ["G16"],
    "agents.detach_knowledge_source": ["G17"],
    "agents.attach_subagent": ["G18"],
    "agents.detach_subagent": ["G19"],
    "agents.list_triggers": ["G20"],
    "agents.create_trigger": ["G21"],
    "agents.get_trigger": ["G22"],
    "agents.update_trigger": ["G23"],
    "agents.delete_trigger": ["G24"],
    "agents.get_trigger_webhook_url": ["G25"],
    "agents.list_trigger_operators": ["G26"],
    "agents.list_trigger_runs": ["G27"],
    "agents.get_trigger_stats": ["G28"],
    "agents.list_app_rules": ["G29"],
    "agents.get_evaluation_options": ["EV1"],
    "agents.get_evaluation_config": ["EV2"],
    "agents.update_evaluation_config": ["EV3"],
    "agents.list_evaluations": ["EV4"],
    "agents.get_evaluation_metrics": ["EV5"],
    "agents.run_evaluations": ["EV6"],
    "agents.get_evaluation": ["EV7"],
    "models.list": ["M1"],
    "models.route": ["M2"],
    "sessions.list": ["S3"],
    "sessions.create": ["S1", "S2"],
    "sessions.stream": ["S2"],
    "sessions.retrieve": ["S4"],
    "sessions.resume_stream": ["S5"],
    "sessions.update": ["S6"],
    "sessions.send": ["S7", "S8"],
    "sessions.stream_message": ["S8"],
    "sessions.cancel": ["S9"],
    "sessions.upload_file": ["S10"],
    "sessions.resolve_approvals": ["S11"],
    "sessions.list_queue": ["S12"],
    "sessions.queue_message": ["S13"],
    "sessions.edit_queued_message": ["S14"],
    "sessions.delete_queued_message": ["S15"],
    "sessions.send_queued_message": ["S16"],
    "sessions.get_access": ["S17"],
    "sessions.update_access": ["S18"],
    "artifacts.list": ["A1"],
    "artifacts.download": ["A2"],
    "artifacts.delete": ["A3"],
    "artifacts.rename": ["A4"],
    "artifacts.list_versions": ["A5"],
    "artifacts.get_access": ["A6"],
    "artifacts.update_access": ["A7"],
    "artifacts.set_password": ["A8"],
    "chat.completions.create": ["C1", "C2"],
    "decisions.create": ["D1"],
    "mcp.list_servers": ["MC1"],
    "mcp.get_server": ["MC2"],
    "mcp.list_accounts": ["MC3"],
    "mcp.list_tools": ["MC4"],
    "mcp.list_resources": ["MC5"],
    "mcp.get_resource": ["MC6"],
    "mcp.list_prompts": ["MC7"],
    "mcp.get_prompt": ["MC8"],
    "mcp.execute": ["MC9"],
    "mcp.execute_many": ["MC9"],
    "skills.list": ["SK1"],
    "skills.create": ["SK2"],
    "skills.update": ["SK3"],
    "skills.download": ["SK4"],
    "skills.delete": ["SK5"],
    "skills.get_access": ["SK6"],
    "skills.update_access": ["SK7"],
    "sync.plan": ["SY1"],
    "sync.download": ["SY2"],
    "evaluations.options": ["EV8"],
    "evaluations.list": ["EV9"],
    "evaluations.create": ["EV10"],
    "evaluations.retrieve": ["EV11"],
    "evaluations.update": ["EV12"],
    "evaluations.delete": ["EV13"],
    "evaluations.set_targets": ["EV14"],
    "evaluations.run": ["EV15"],
    "evaluations.list_results": ["EV16"],
    "evaluations.get_result": ["EV17"],
    "evaluations.metrics": ["EV18"],
    "brain.search": ["BR1"],
    "brain.list_sources": ["BR2"],
    "brain.create_source": ["BR3"],
    "brain.sync_source": ["BR4"],
    "brain.list_sync_runs": ["BR5"],
    "brain.list_source_issues": ["BR6"],
    "brain.list_source_children": ["BR7"],
    "brain.get_source": ["BR8"],
    "brain.delete_source": ["BR9"],
    "brain.get_estimate": ["BR10"],
    "brain.approve_source": ["BR11"],
    "brain.list_files": ["BR12"],
    "brain.upload_files": ["BR13"],
    "brain.delete_file": ["BR14"],
    "wiki.query": ["W1"],
    "voice.start": ["V1"],
    "voice.end": ["V2"],
    "browser_profiles.list": ["BP1"],
    "browser_profiles.create": ["BP2"],
    "browser_profiles.get": ["BP3"],
    "browser_profiles.update": ["BP4"],
    "browser_profiles.delete": ["BP5"],
    "browser_profiles.import_cookies": ["BP6"],
    "teams.list": ["X1"],
    "organizations.list": ["X2"],
    "oauth.register_client": ["O1"],
    "oauth.build_authorization_url": ["O2"],
    "oauth.exchange_code": ["O3"],
    "oauth.refresh_token": ["O3"],
    "oauth.revoke": ["O4"],
    "close": [],
    "mcp.close": [],
}


def sdk_methods() -> set[str]:
    found: set[str] = set()
    client = Gumloop(api_key="x", base_url="http://127.0.0.1:9/api/v1")

    def walk(obj: object, prefix: str, depth: int) -> None:
        for name, val in inspect.getmembers(obj):
            if name.startswith("_"):
                continue
            if inspect.ismethod(val) or inspect.isfunction(val):
                found.add(prefix + name)
            elif depth < 2 and type(val).__module__.startswith("gumloop.resources"):
                walk(val, f"{prefix}{name}.", depth + 1)

    walk(client, "", 0)
    client.close()
    for cls, prefix in ((GumloopClient, "GumloopClient."), (OAuth, "oauth.")):
        found |= {prefix + n for n, v in inspect.getmembers(cls) if not n.startswith("_") and inspect.isfunction(v)}
    return found


# Ids that are another route's variant (API.md): C2 = C1 with `stream`, S2 = S1 streamed,
# S5 = S4 with `stream=true`, S8 = S7 streamed, G11 = SK1 with `agent_id`.
ALIASES = {"C2": "C1", "S2": "S1", "S5": "S4", "S8": "S7", "G11": "SK1"}


def implemented_ids(anon: httpx.Client) -> tuple[set[str], set[str]]:
    doc = anon.get("/api/v1/openapi.json").json()
    now, later = set(), set()
    for ops in doc["paths"].values():
        for op in ops.values():
            if not isinstance(op, dict) or "operationId" not in op:
                continue
            spec_id = op["operationId"].split("_")[0]
            (later if "x-openloop-status" in op else now).add(spec_id)
    for alias, base in ALIASES.items():
        (now if base in now else later).add(alias)
    return now, later - now


def test_every_sdk_method_is_mapped() -> None:
    methods = sdk_methods()
    assert not methods - set(SDK_ROUTES), f"SDK methods missing from the map: {sorted(methods - set(SDK_ROUTES))}"
    assert not set(SDK_ROUTES) - methods, f"mapped methods the SDK lacks: {sorted(set(SDK_ROUTES) - methods)}"


def test_readme_states_the_working_count(anon: httpx.Client) -> None:
    now, later = implemented_ids(anon)
    unknown = {i for ids in SDK_ROUTES.values() for i in ids} - now - later
    assert not unknown, f"spec ids without an operation in the OpenAPI document: {sorted(unknown)}"
    working = sorted(m for m, ids in SDK_ROUTES.items() if all(i in now for i in ids))
    missing = sorted(m for m in SDK_ROUTES if m not in working)
    text = README.read_text(encoding="utf-8")
    m = re.search(r"\*\*(\d+) of the SDK's (\d+) public methods work\*\*", text)
    assert m, "README.md states **N of the SDK's M public methods work**"
    assert (int(m.group(1)), int(m.group(2))) == (len(working), len(SDK_ROUTES)), (
        f"README says {m.group(1)} of {m.group(2)}; measured {len(working)} of {len(SDK_ROUTES)}; not working: {missing}"
    )
