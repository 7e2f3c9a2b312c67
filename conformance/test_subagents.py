"""Subagents (G18–G19, SDK ``agents.attach_subagent`` / ``detach_subagent``): an attached
agent becomes a tool of its parent. A call runs the child in its own session (type
``subagent``) as the user who started the parent's run, and its answer comes back to the
parent's model as the tool result.
"""

from __future__ import annotations

import json
from typing import Any

import httpx

import fake_openai as fo
from _support import SESSION_MODEL, expect_api_error, token, wait_session
from fake_openai import FakeOpenAI, ToolCall
from gumloop import Gumloop


def new_agent(client: Gumloop, name: str, **kwargs: Any) -> str:
    return client.agents.create(name=name, model_name=SESSION_MODEL, **kwargs).agent.id


def test_g18_g19_attach_detach(llm_admin: Gumloop, llm_other_tenant: Any) -> None:
    parent = new_agent(llm_admin, f"parent {token()}")
    child = new_agent(llm_admin, f"child {token()}")
    r = llm_admin.agents.attach_subagent(parent, child)
    assert (r.agent_id, r.subagent_ids, r.changed) == (parent, [child], True), r
    again = llm_admin.agents.attach_subagent(parent, child)
    assert (again.subagent_ids, again.changed) == ([child], False), "attach is idempotent"
    meta = llm_admin.agents.retrieve(parent).agent.metadata
    assert meta.subagent.allowed_gummie_ids == [child], meta
    expect_api_error(llm_admin.agents.attach_subagent, parent, parent, status=400, code="invalid_request")
    expect_api_error(llm_admin.agents.attach_subagent, parent, "agt_missing", status=404, code="agent_not_found")
    foreign = new_agent(llm_other_tenant.client, f"foreign {token()}")
    expect_api_error(llm_admin.agents.attach_subagent, parent, foreign, status=404, code="agent_not_found")
    expect_api_error(llm_other_tenant.client.agents.attach_subagent, parent, child, status=404, code="agent_not_found")
    d = llm_admin.agents.detach_subagent(parent, child)
    assert (d.subagent_ids, d.changed) == ([], True), d
    assert not llm_admin.agents.detach_subagent(parent, child).changed, "detach is idempotent"


def test_parent_delegates_and_gets_the_childs_answer(llm_admin: Gumloop, llm_raw: httpx.Client, fake_openai: FakeOpenAI) -> None:
    tok, child_tok = token(), token()
    child_name = f"researcher {token()}"
    parent = new_agent(llm_admin, f"parent {token()}")
    child = new_agent(llm_admin, child_name, description="Finds facts")
    llm_admin.agents.attach_subagent(parent, child)
    tool_name = "subagent__" + child_name.replace(" ", "_")
    fake_openai.enqueue(
        fo.tool_calls([ToolCall(tool_name, {"input": f"find the fact {child_tok}"})], text="Asking the researcher."),
        fo.text(f"The researcher says: fact 42 {tok}"),
        match=tok,
    )
    fake_openai.enqueue(fo.text(f"fact 42 ({child_tok})"), match=child_tok)
    sid = llm_admin.sessions.create(parent, input=f"delegate this {tok}").session.id
    done = wait_session(llm_admin, sid)
    assert done.state == "completed", done
    offered = {t["function"]["name"]: t["function"] for t in fake_openai.requests(match=tok)[0].body.get("tools", [])}
    assert tool_name in offered and "Finds facts" in offered[tool_name]["description"], offered
    assert offered[tool_name]["parameters"]["required"] == ["input"]
    parts = [p for m in done.messages if m.role == "assistant" for p in (m.parts or []) if p.get("type") == "tool_invocation"]
    assert len(parts) == 1 and parts[0]["toolCallState"] == "completed", parts
    result = parts[0]["result"]
    result = result.get("result", result) if isinstance(result, dict) else result
    assert f"fact 42 ({child_tok})" in json.dumps(result), result
    # The child ran in its own session of type subagent, as the parent's user.
    child_sessions = llm_admin.sessions.list(child, type="subagent").sessions
    assert len(child_sessions) == 1, child_sessions
    cs = llm_admin.sessions.retrieve(child_sessions[0].id).session
    assert cs.state == "completed" and (cs.messages[-1].content or "").endswith(f"fact 42 ({child_tok})"), cs
    raw_child = llm_raw.get(f"/sessions/{cs.id}").json()["session"]
    assert raw_child["type"] == "subagent", raw_child
    parent_creator = llm_raw.get(f"/sessions/{sid}").json()["session"]["creator"]["id"]
    assert parent_creator and raw_child["creator"]["id"] == parent_creator, "the child runs as the parent's session user"
    # The parent's model got the child's answer as the tool result.
    second = fake_openai.requests(match=tok)[1].body["messages"]
    tool_msgs = [fo.message_text(m) for m in second if m.get("role") == "tool"]
    assert len(tool_msgs) == 1 and f"fact 42 ({child_tok})" in tool_msgs[0], tool_msgs


def test_detached_or_deleted_child_is_not_offered(llm_admin: Gumloop, fake_openai: FakeOpenAI) -> None:
    parent = new_agent(llm_admin, f"parent {token()}")
    child = new_agent(llm_admin, f"gone {token()}")
    llm_admin.agents.attach_subagent(parent, child)
    llm_admin.agents.delete(child)
    tok = token()
    fake_openai.enqueue(fo.text(f"ok {tok}"), match=tok)
    wait_session(llm_admin, llm_admin.sessions.create(parent, input=f"hi {tok}").session.id)
    names = {t["function"]["name"] for t in fake_openai.requests(match=tok)[0].body.get("tools", [])}
    assert not any(n.startswith("subagent__") for n in names), names


def test_delegation_chain_is_limited_to_three(llm_admin: Gumloop, fake_openai: FakeOpenAI) -> None:
    """A → B → C → D runs (depths 1–3); D's delegation to E is refused and D's model hears why."""
    names = [f"chain{c} {token()}" for c in "ABCDE"]
    ids = [new_agent(llm_admin, n) for n in names]
    for parent, child in zip(ids, ids[1:]):
        llm_admin.agents.attach_subagent(parent, child)
    toks = [token() for _ in names]
    for i in range(4):
        child_tool = "subagent__" + names[i + 1].replace(" ", "_")
        fake_openai.enqueue(
            fo.tool_calls([ToolCall(child_tool, {"input": f"go {toks[i + 1]}"})]),
            fo.text(f"done {toks[i]}"),
            match=toks[i],
        )
    sid = llm_admin.sessions.create(ids[0], input=f"start {toks[0]}").session.id
    done = wait_session(llm_admin, sid, timeout=60)
    assert done.state == "completed", done
    assert not fake_openai.requests(match=toks[4]), "E never ran"
    d_second = fake_openai.requests(match=toks[3])[1].body["messages"]
    tool_msgs = [fo.message_text(m) for m in d_second if m.get("role") == "tool"]
    assert len(tool_msgs) == 1 and "depth limit" in tool_msgs[0], tool_msgs
    # The refusal is D's tool error; D, C, B and A all finished.
    for i in range(4):
        assert len(fake_openai.requests(match=toks[i])) == 2, i
