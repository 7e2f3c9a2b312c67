"""§8.2 v1 sessions S1, S3, S4, S6, S7, S9–S16 (non-streaming), against ``llm_server`` whose
OpenAI-compatible provider is the fake of ``fake_openai.py`` (§6.1 states, §7.1 run loop,
§7.5 approvals, §7.8 usage, §8.0 Session/MessagePayload/… objects).

Calls go through the SDK (``client.sessions.*``); raw httpx (``llm_raw``) only for wire details
the SDK hides (201 vs 202, absent-vs-null keys, headers, bodies the SDK refuses to build).
Every scripted reply is keyed to a unique token in the user message (``enqueue(..., match=tok)``).
"""

from __future__ import annotations

import base64
import json
import time
from typing import Any

import httpx
import pytest

from gumloop import Gumloop
from gumloop.types import (
    SessionApprovalsResponse,
    SessionMessageReceipt,
    SessionQueuedMessageResponse,
    SessionResponse,
)

import fake_openai as fo
from _support import (
    AREQ_RE,
    MSG_RE,
    PART_ID_RE,
    QM_RE,
    SESS_RE,
    V1_TS_RE,
    OpenloopServer,
    Principal,
    assert_http_error,
    assert_ok,
    assistant_texts,
    cursor_seq,
    expect_api_error,
    new_session_agent,
    token,
    wait_session,
)
from fake_openai import FakeOpenAI, ToolCall

SESSION_STATES = {"idle", "queued", "processing", "approval_required", "completed", "failed", "cancelled"}
PART_TYPES = {"text", "reasoning", "tool_invocation", "file", "error"}
PART_FIELDS = {"id", "type", "text", "reasoning", "toolCallId", "toolName", "toolCallState", "result", "error", "file"}
UNKNOWN_SESSION = "sess_AAAAAAAAAAAAAAAAAAAAAA"
UNKNOWN_QM = "qm_AAAAAAAAAAAAAAAAAAAAAA"
UNKNOWN_AREQ = "areq_AAAAAAAAAAAAAAAAAAAAAA"


# ---------------------------------------------------------------------------
# Wire-shape helpers
# ---------------------------------------------------------------------------


def fmt(resp: httpx.Response) -> str:
    return f"{resp.request.method} {resp.request.url} -> {resp.status_code}: {resp.text[:2000]}"


def assert_part_json(part: dict[str, Any]) -> None:
    """§8.1.2 vocabulary and sanitized allow-list."""
    assert set(part) <= PART_FIELDS, f"part has fields outside the sanitized list: {part}"
    assert isinstance(part.get("id"), str) and PART_ID_RE.match(part["id"]), part
    assert part.get("type") in PART_TYPES, part
    for value in part.values():
        assert value is not None, f"absent part values are omitted, not null: {part}"


def assert_message_json(msg: dict[str, Any]) -> None:
    """§8.0 MessagePayload."""
    assert msg.get("role") in ("user", "assistant"), msg
    assert isinstance(msg.get("id"), str) and (MSG_RE.match(msg["id"]) or QM_RE.match(msg["id"])), msg
    assert msg.get("content") is None or isinstance(msg["content"], str), (
        f"MessagePayload.content is a string or null, never an array: {msg}"
    )
    if msg.get("created_at") is not None:
        assert V1_TS_RE.match(msg["created_at"]), f"created_at is RFC 3339 µs Z: {msg}"
    parts = msg.get("parts") or []
    assert isinstance(parts, list), msg
    for part in parts:
        assert_part_json(part)
    if msg["role"] == "user":
        assert isinstance(msg["content"], str) and msg["content"], f"user content = the text sent: {msg}"
        assert isinstance(msg.get("creator_id"), str) and msg["creator_id"], f"user messages carry creator_id: {msg}"
        assert all(p["type"] == "file" for p in parts), f"user parts are file parts (attachments) only: {msg}"
    else:
        assert msg.get("creator_id") is None, f"assistant creator_id is null: {msg}"
        texts = [p["text"] for p in parts if p["type"] == "text"]
        if texts:
            assert msg["content"] == "\n".join(texts), f"assistant content = its text parts joined with '\\n': {msg}"
        else:
            assert msg.get("content") in (None, ""), f"assistant without text parts has no content: {msg}"


def assert_session_json(s: dict[str, Any]) -> None:
    """§8.0 Session, structurally."""
    assert isinstance(s.get("id"), str) and s["id"], s
    assert isinstance(s.get("agent_id"), str) and s["agent_id"], s
    assert s.get("state") in SESSION_STATES, f"state is always present and one of §6.1: {s}"
    for key in ("messages", "agent_tools", "participants", "incognito"):
        if key in s:
            assert s[key] is not None, f"Session.{key} is never null: {s}"
    assert isinstance(s.get("messages", []), list), s
    assert isinstance(s.get("agent_tools", []), list), s
    assert isinstance(s.get("participants", {}), dict), s
    assert isinstance(s.get("incognito", False), bool), s
    if s.get("created_at") is not None:
        assert V1_TS_RE.match(s["created_at"]), f"created_at is RFC 3339 µs Z: {s}"
    for msg in s.get("messages", []):
        assert_message_json(msg)
    for tool in s.get("agent_tools", []):
        assert "secret_id" not in tool or tool["secret_id"] is None, f"secrets stripped: {tool}"


def session_body(resp: httpx.Response, status: int) -> dict[str, Any]:
    """A SessionResponse with the given status; validated by the SDK model too."""
    body = assert_ok(resp, status)
    assert isinstance(body.get("session"), dict), fmt(resp)
    assert_session_json(body["session"])
    SessionResponse.model_validate(body)
    if body["session"]["state"] != "queued":
        assert body.get("queue_position") is None, f"queue_position is set only when queued: {body}"
    return body


def raw_session(raw: httpx.Client, sid: str) -> dict[str, Any]:
    return session_body(raw.get(f"/sessions/{sid}"), 200)["session"]


def user_messages(session: Any) -> list[Any]:
    return [m for m in session.messages if m.role == "user"]


def wait_for(predicate: Any, what: str, timeout: float = 30.0, interval: float = 0.05) -> Any:
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(interval)
    pytest.fail(f"timed out after {timeout}s waiting for {what}")


def wait_assistants(client: Gumloop, sid: str, n: int, timeout: float = 30.0) -> Any:
    """Wait until the session is ``completed`` with ``n`` assistant messages."""

    def check() -> Any:
        s = client.sessions.retrieve(sid).session
        if s.state in ("failed", "cancelled", "approval_required", "idle"):
            pytest.fail(f"session {sid} reached {s.state!r} while waiting for {n} answers: {s.messages}")
        if s.state == "completed" and len([m for m in s.messages if m.role == "assistant"]) >= n:
            return s
        return None

    return wait_for(check, f"{n} assistant messages in {sid}", timeout)


def tool_parts(session: Any) -> list[dict[str, Any]]:
    return [p for m in session.messages if m.role == "assistant" for p in (m.parts or []) if p.get("type") == "tool_invocation"]


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


# ---------------------------------------------------------------------------
# Fixtures
# ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def agent(llm_admin: Gumloop) -> Any:
    """A personal agent of the bootstrap user, used where runs are quick."""
    return llm_admin.agents.create(name=f"sessions {token()}", model_name="gpt-4o-mini", system_prompt="Be brief.").agent


@pytest.fixture(scope="module")
def agent_id(agent: Any) -> str:
    return agent.id


@pytest.fixture(scope="module")
def other_agent_id(llm_other_tenant: Principal) -> str:
    return new_session_agent(llm_other_tenant.client)


@pytest.fixture(scope="module")
def other_session_id(llm_other_tenant: Principal, other_agent_id: str) -> str:
    return llm_other_tenant.client.sessions.create(other_agent_id).session.id


def new_approval_agent(client: Gumloop) -> str:
    """Every tool call asks (§7.5: metadata.tool_approval.default_mode = all)."""
    return new_session_agent(client, metadata={"tool_approval": {"default_mode": "all"}})


def approval_session(client: Gumloop, fake: FakeOpenAI, *, calls: int = 1, then: list[fo.Reply] | None = None) -> tuple[str, str]:
    """A session paused in ``approval_required`` on ``calls`` current_time calls; returns (sid, tok)."""
    aid = new_approval_agent(client)
    tok = token()
    fake.enqueue(fo.tool_calls([ToolCall("current_time") for _ in range(calls)], text="Checking."), *(then or []), match=tok)
    sid = client.sessions.create(aid, input=f"what time is it {tok}").session.id
    s = wait_session(client, sid)
    assert s.state == "approval_required", f"a current_time call under default_mode=all must ask (§7.5): {s}"
    return sid, tok


@pytest.fixture(scope="module")
def completed(llm_admin: Gumloop, fake_openai: FakeOpenAI, agent_id: str) -> dict[str, Any]:
    """A session of ``agent_id`` completed after one run answering "Hello world" in two deltas."""
    tok = token()
    text_in = f"Say hello {tok}"
    fake_openai.enqueue(fo.chunks(["Hello ", "world"]), match=tok)
    sid = llm_admin.sessions.create(agent_id, input=text_in).session.id
    s = wait_session(llm_admin, sid)
    assert s.state == "completed", s
    return {"id": sid, "input": text_in, "answer": "Hello world", "tok": tok}


# ---------------------------------------------------------------------------
# S1 create
# ---------------------------------------------------------------------------


def test_s1_without_input_is_201_idle(llm_admin: Gumloop, llm_raw: httpx.Client, llm_server: OpenloopServer, agent: Any) -> None:
    body = session_body(llm_raw.post(f"/agents/{agent.id}/sessions", json={}), 201)
    assert body.get("queue_position") is None, body
    s = body["session"]
    assert SESS_RE.match(s["id"]), f"generated session ids are sess_ + 22 base62 (§1.4): {s['id']!r}"
    assert s["state"] == "idle", s
    assert "messages" in s and s["messages"] == [], f"S1 without input: messages: [] (§8.2 S1): {s}"
    assert s["agent_id"] == agent.id, s
    assert s.get("name") == agent.name, f"name = the agent's name when none is given: {s}"
    assert s.get("type") == "api", s
    assert s.get("incognito") is False, s
    assert s.get("pending_approvals", []) == [], f"pending_approvals is [] unless approval_required: {s}"
    assert s.get("created_at") and V1_TS_RE.match(s["created_at"]), s

    # An empty body with Content-Type: application/json is {} (§1.3).
    empty = session_body(
        llm_raw.post(f"/agents/{agent.id}/sessions", content=b"", headers={"Content-Type": "application/json"}), 201
    )
    assert empty["session"]["state"] == "idle"

    # Through the SDK.
    created = llm_admin.sessions.create(agent.id)
    assert created.session.state == "idle" and created.session.messages == [] and created.queue_position is None
    again = llm_admin.sessions.retrieve(created.session.id).session
    assert again.state == "idle" and again.messages == [] and again.id == created.session.id


def test_s1_with_input_is_202_processing(
    llm_admin: Gumloop, llm_raw: httpx.Client, llm_server: OpenloopServer, fake_openai: FakeOpenAI
) -> None:
    aid = new_session_agent(llm_admin)
    tok = token()
    text_in = f"hello {tok}"
    fake_openai.enqueue(fo.text(f"answer {tok}", delay=1.0), match=tok)
    body = session_body(llm_raw.post(f"/agents/{aid}/sessions", json={"input": text_in}), 202)
    s = body["session"]
    assert s["state"] == "processing", s
    assert body.get("queue_position") is None, body
    assert len(s["messages"]) == 1, f"the user message is in messages: {s}"
    user = s["messages"][0]
    assert user["role"] == "user" and user["content"] == text_in, user
    assert user["creator_id"] == llm_server.admin_user_id, user
    assert user.get("parts") == [], f"a user message without attachments has parts: [] (§8.0): {user}"
    done = wait_session(llm_admin, s["id"])
    assert done.state == "completed", done
    assert assistant_texts(done) == [f"answer {tok}"], done.messages


def test_s1_message_alias_and_input_wins(llm_admin: Gumloop, fake_openai: FakeOpenAI) -> None:
    aid = new_session_agent(llm_admin)
    tok = token()
    fake_openai.enqueue(fo.text("alias ok", delay=0.5), match=f"alias {tok}")
    created = llm_admin.sessions.create(aid, message=f"alias {tok}")
    assert created.session.state == "processing", created
    assert [m.content for m in created.session.messages] == [f"alias {tok}"]
    both = llm_admin.sessions.create(aid, input=f"input wins {tok}", message=f"message loses {tok}")
    assert [m.content for m in both.session.messages] == [f"input wins {tok}"], "input wins if both are sent"
    assert assistant_texts(wait_session(llm_admin, created.session.id)) == ["alias ok"]
    wait_session(llm_admin, both.session.id)
    assert not fake_openai.requests(match=f"message loses {tok}")


def test_s1_caller_session_id_and_409(llm_admin: Gumloop, agent_id: str) -> None:
    sid = f"conf-{token(12)}_Sess"
    created = llm_admin.sessions.create(agent_id, session_id=sid)
    assert created.session.id == sid and created.session.state == "idle", created
    assert llm_admin.sessions.retrieve(sid).session.id == sid
    expect_api_error(llm_admin.sessions.create, agent_id, session_id=sid, status=409, code="session_already_exists")
    expect_api_error(
        llm_admin.sessions.create, agent_id, session_id=sid, input=f"x {token()}", status=409, code="session_already_exists"
    )
    # 128 characters is the longest valid id.
    long_id = "L" * 120 + token(8)
    assert llm_admin.sessions.create(agent_id, session_id=long_id).session.id == long_id


@pytest.mark.parametrize(
    "bad", ["", "has space", "a/b", "dot.ted", "ümlaut", "x" * 129, "semi;colon"], ids=lambda v: repr(v)[:20]
)
def test_s1_invalid_id(llm_admin: Gumloop, agent_id: str, bad: str) -> None:
    expect_api_error(llm_admin.sessions.create, agent_id, session_id=bad, status=400, code="invalid_id", param="session_id")


def test_s1_name_trimmed_and_invalid_name(llm_admin: Gumloop, agent_id: str) -> None:
    assert llm_admin.sessions.create(agent_id, name="  My session \t").session.name == "My session"
    exact = "n" * 256
    assert llm_admin.sessions.create(agent_id, name=exact).session.name == exact
    for bad in ("", "   ", "\t\n", "n" * 257):
        expect_api_error(llm_admin.sessions.create, agent_id, name=bad, status=400, code="invalid_name", param="name")


def test_s1_input_list_joined_with_newlines(llm_admin: Gumloop, fake_openai: FakeOpenAI) -> None:
    aid = new_session_agent(llm_admin)
    tok = token()
    items = [f"first {tok}", {"type": "text", "text": "second"}, {"type": "input_text", "text": "third"}]
    joined = f"first {tok}\nsecond\nthird"
    created = llm_admin.sessions.create(aid, input=items)
    assert [m.content for m in created.session.messages] == [joined], created.session.messages
    done = wait_session(llm_admin, created.session.id)
    assert done.state == "completed" and user_messages(done)[0].content == joined
    reqs = fake_openai.requests(match=tok)
    assert len(reqs) == 1 and reqs[0].last_user_text == joined, [r.body for r in reqs]


INVALID_INPUTS = [
    "",
    "   \n\t",
    [],
    ["   "],
    [{"type": "image_url", "image_url": {"url": "https://example.com/a.png"}}],
    ["fine", {"type": "input_image", "image_url": "https://example.com/a.png"}],
    [{"type": "file", "file_name": "a.txt"}],
]


@pytest.mark.parametrize("bad", INVALID_INPUTS, ids=[f"input{i}" for i in range(len(INVALID_INPUTS))])
def test_s1_invalid_input(llm_admin: Gumloop, agent_id: str, bad: Any) -> None:
    sid = f"conf-bad-input-{token(12)}"
    exc = expect_api_error(llm_admin.sessions.create, agent_id, input=bad, session_id=sid, status=400, code="invalid_input")
    assert exc.param is None or exc.param.startswith("input"), exc.body
    # Nothing was created.
    expect_api_error(llm_admin.sessions.retrieve, sid, status=404, code="session_not_found")


def test_s1_invalid_input_via_message_alias(llm_admin: Gumloop, agent_id: str) -> None:
    expect_api_error(llm_admin.sessions.create, agent_id, message="  ", status=400, code="invalid_input")


def test_s1_metadata_stored_not_echoed(llm_raw: httpx.Client, agent_id: str) -> None:
    tok = token(16)
    metadata = {"source": f"meta-{tok}", "nested": {"k": f"v-{tok}"}}
    resp = llm_raw.post(f"/agents/{agent_id}/sessions", json={"metadata": metadata})
    body = session_body(resp, 201)
    assert tok not in resp.text, f"metadata is stored (as metadata.client) but not echoed: {resp.text}"
    sid = body["session"]["id"]
    got = llm_raw.get(f"/sessions/{sid}")
    assert got.status_code == 200 and tok not in got.text, fmt(got)
    listed = llm_raw.get(f"/agents/{agent_id}/sessions", params={"page_size": 100})
    assert listed.status_code == 200 and tok not in listed.text, fmt(listed)


def test_s1_unknown_or_foreign_agent_is_404(llm_admin: Gumloop, other_agent_id: str) -> None:
    for aid in ("agt_AAAAAAAAAAAAAAAAAAAAAA", "nope", other_agent_id):
        expect_api_error(llm_admin.sessions.create, aid, status=404, code="agent_not_found")
        expect_api_error(llm_admin.sessions.create, aid, input=f"hi {token()}", status=404, code="agent_not_found")


def test_5_2_s1_idempotency_key_replays(llm_raw: httpx.Client, llm_admin: Gumloop, fake_openai: FakeOpenAI) -> None:
    aid = new_session_agent(llm_admin)
    tok = token()
    key = f"s1-{tok}"
    body = {"input": f"exactly once {tok}"}
    first = llm_raw.post(f"/agents/{aid}/sessions", json=body, headers={"Idempotency-Key": key})
    assert first.status_code == 202, fmt(first)
    assert first.headers.get("idempotent-replayed") is None, dict(first.headers)
    second = llm_raw.post(f"/agents/{aid}/sessions", json=body, headers={"Idempotency-Key": key})
    assert second.status_code == 202, fmt(second)
    assert second.headers.get("idempotent-replayed") == "true", dict(second.headers)
    assert second.json() == first.json(), "a replay returns the original body"
    sid = first.json()["session"]["id"]
    wait_session(llm_admin, sid)
    assert [s.id for s in llm_admin.sessions.list(aid).sessions] == [sid], "no second session"
    assert len(fake_openai.requests(match=tok)) == 1, "no new work"
    other = llm_raw.post(f"/agents/{aid}/sessions", json={"input": f"other {tok}"}, headers={"Idempotency-Key": key})
    assert_http_error(other, 409, "idempotency_key_reused")
    # Through the SDK's extra_headers.
    via_sdk = llm_admin.sessions.create(aid, input=f"exactly once {tok}", extra_headers={"Idempotency-Key": key})
    assert via_sdk.session.id == sid


@pytest.fixture(scope="module")
def limited_server(start_server: Any, fake_openai: FakeOpenAI) -> OpenloopServer:
    """One running run per agent (§6.1 queued state)."""
    return start_server(
        rate_limit=100_000,
        rate_window=60,
        extra_env={
            "OPENAI_BASE_URL": fake_openai.base_url,
            "OPENAI_API_KEY": fo.FAKE_OPENAI_KEY,
            "OPENLOOP_AGENT_MAX_CONCURRENCY": "1",
        },
    )


def test_s1_over_the_agent_limit_is_202_queued(limited_server: OpenloopServer, fake_openai: FakeOpenAI) -> None:
    srv = limited_server
    client = srv.sdk(srv.admin_key, user_id=srv.admin_user_id)
    try:
        aid = new_session_agent(client)
        tok = token()
        fake_openai.enqueue(fo.text("first done", delay=1.5), match=f"first {tok}")
        first = client.sessions.create(aid, input=f"first {tok}")
        assert first.session.state == "processing" and first.queue_position is None, first
        with srv.http(srv.admin_key, srv.admin_user_id) as raw:
            resp = raw.post(f"/agents/{aid}/sessions", json={"input": f"second {tok}"})
            body = assert_ok(resp, 202)
        assert body["session"]["state"] == "queued" and body.get("queue_position") == 1, body
        second = body["session"]["id"]
        third = client.sessions.create(aid, input=f"third {tok}")
        assert third.session.state == "queued" and third.queue_position == 2, third
        polled = client.sessions.retrieve(second)
        assert polled.session.state == "queued" and polled.queue_position == 1, polled
        # A queued session does not accept immediate messages (§6.1).
        expect_api_error(client.sessions.send, second, input="hurry", status=409, code="interaction_not_in_terminal_state")
        # Cancelling a queued run: cancelled, never reaches the model; the next one moves up.
        assert client.sessions.cancel(second).session.state == "cancelled"
        moved = client.sessions.retrieve(third.session.id)
        assert moved.session.state == "queued" and moved.queue_position == 1, moved
        done1 = wait_session(client, first.session.id)
        done3 = wait_session(client, third.session.id)
        assert done1.state == done3.state == "completed", (done1, done3)
        assert assistant_texts(done3) == [f"ok: third {tok}"]
        assert client.sessions.retrieve(second).session.state == "cancelled"
        assert not fake_openai.requests(match=f"second {tok}"), "a cancelled queued run never runs"
    finally:
        client.close()


# ---------------------------------------------------------------------------
# S3 list
# ---------------------------------------------------------------------------

S3_SUFFIXES = ["delta", "alpha", "echo", "charlie", "bravo"]


@pytest.fixture(scope="module")
def s3_set(llm_admin: Gumloop, fake_openai: FakeOpenAI) -> dict[str, Any]:
    """An agent with five idle sessions and one completed one; creation order ≠ name order."""
    aid = new_session_agent(llm_admin)
    tok = token()
    names: dict[str, str] = {}
    idle = []
    for suffix in S3_SUFFIXES:
        s = llm_admin.sessions.create(aid, name=f"S3 {tok} {suffix}").session
        names[s.id] = s.name
        idle.append(s.id)
    mtok = token()
    done = llm_admin.sessions.create(aid, name=f"S3 {tok} foxtrot", input=f"needle {mtok}").session
    names[done.id] = done.name
    assert wait_session(llm_admin, done.id).state == "completed"
    return {"agent": aid, "tok": tok, "mtok": mtok, "idle": idle, "completed": done.id, "names": names}


def list_all(client: Gumloop, aid: str, **params: Any) -> list[Any]:
    resp = client.sessions.list(aid, page_size=100, **params)
    assert resp.next_cursor is None, resp
    return resp.sessions


def test_s3_items_have_empty_messages(llm_raw: httpx.Client, s3_set: dict[str, Any]) -> None:
    body = assert_ok(llm_raw.get(f"/agents/{s3_set['agent']}/sessions"))
    assert set(body) >= {"sessions", "next_cursor"}, body
    assert body["next_cursor"] is None, body
    items = body["sessions"]
    assert {s["id"] for s in items} == set(s3_set["names"]), items
    for s in items:
        assert_session_json(s)
        assert s.get("messages", []) == [], f"S3 items carry messages: [] (§8.0): {s}"
        assert s["agent_id"] == s3_set["agent"]
    states = {s["id"]: s["state"] for s in items}
    assert states[s3_set["completed"]] == "completed"
    assert all(states[i] == "idle" for i in s3_set["idle"]), states


def test_s3_state_filter(llm_admin: Gumloop, s3_set: dict[str, Any]) -> None:
    aid = s3_set["agent"]
    assert {s.id for s in list_all(llm_admin, aid, state="idle")} == set(s3_set["idle"])
    assert {s.id for s in list_all(llm_admin, aid, state="completed")} == {s3_set["completed"]}
    assert {s.id for s in list_all(llm_admin, aid, state="idle,completed")} == set(s3_set["names"])
    assert {s.id for s in list_all(llm_admin, aid, state="completed,failed")} == {s3_set["completed"]}
    assert list_all(llm_admin, aid, state="failed") == []


@pytest.mark.parametrize("bad", ["bogus", "idle,bogus", "COMPLETED_X"])
def test_s3_invalid_state_is_invalid_request(llm_admin: Gumloop, s3_set: dict[str, Any], bad: str) -> None:
    expect_api_error(llm_admin.sessions.list, s3_set["agent"], state=bad, status=400, code="invalid_request")


def test_s3_search(llm_admin: Gumloop, s3_set: dict[str, Any]) -> None:
    aid, tok = s3_set["agent"], s3_set["tok"]
    by_name = {v: k for k, v in s3_set["names"].items()}
    assert [s.id for s in list_all(llm_admin, aid, search=f"{tok} alpha")] == [by_name[f"S3 {tok} alpha"]]
    assert {s.id for s in list_all(llm_admin, aid, search=tok)} == set(s3_set["names"])
    # Message text matches too.
    assert [s.id for s in list_all(llm_admin, aid, search=s3_set["mtok"])] == [s3_set["completed"]]
    # search_query is an alias (§4).
    assert [s.id for s in list_all(llm_admin, aid, search_query=f"{tok} echo")] == [by_name[f"S3 {tok} echo"]]
    assert list_all(llm_admin, aid, search=f"absent-{token()}") == []


def test_s3_sort_orders(llm_admin: Gumloop, s3_set: dict[str, Any]) -> None:
    aid = s3_set["agent"]
    everything = set(s3_set["names"])
    default = list_all(llm_admin, aid)
    newest = list_all(llm_admin, aid, sort_order="newest")
    oldest = list_all(llm_admin, aid, sort_order="oldest")
    assert [s.id for s in default] == [s.id for s in newest], "newest is the default"
    for listing in (newest, oldest):
        assert {s.id for s in listing} == everything and len(listing) == len(everything)
        assert all(s.created_at for s in listing), listing
    assert [s.created_at for s in newest] == sorted((s.created_at for s in newest), reverse=True)
    assert [s.created_at for s in oldest] == sorted(s.created_at for s in oldest)
    assert oldest[0].id == s3_set["idle"][0] and newest[0].id == s3_set["completed"]

    name_asc = [s.name for s in list_all(llm_admin, aid, sort_order="name_asc")]
    name_desc = [s.name for s in list_all(llm_admin, aid, sort_order="name_desc")]
    assert name_asc == sorted(s3_set["names"].values()), name_asc
    assert name_desc == sorted(s3_set["names"].values(), reverse=True), name_desc

    # Only the completed session has a cost.
    credits_desc = list_all(llm_admin, aid, sort_order="credits_desc")
    credits_asc = list_all(llm_admin, aid, sort_order="credits_asc")
    assert {s.id for s in credits_desc} == everything == {s.id for s in credits_asc}
    assert credits_desc[0].id == s3_set["completed"], [s.id for s in credits_desc]
    assert credits_asc[-1].id == s3_set["completed"], [s.id for s in credits_asc]


@pytest.mark.parametrize("sort_order", [None, "oldest", "name_asc", "credits_desc"])
def test_s3_pagination_walks_all_pages(llm_admin: Gumloop, s3_set: dict[str, Any], sort_order: str | None) -> None:
    aid = s3_set["agent"]
    full = [s.id for s in list_all(llm_admin, aid, sort_order=sort_order)]
    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        page = llm_admin.sessions.list(aid, page_size=2, cursor=cursor, sort_order=sort_order)
        pages += 1
        assert len(page.sessions) <= 2, page
        seen += [s.id for s in page.sessions]
        if page.next_cursor is None:
            break
        assert len(page.sessions) == 2, "only the last page may be short"
        cursor = page.next_cursor
        assert pages < 10, "pagination does not terminate"
    assert len(seen) == len(set(seen)), f"duplicates across pages: {seen}"
    assert seen == full, "pages concatenate to the unpaginated order"
    assert pages == 3


def test_s3_invalid_cursor(llm_admin: Gumloop, s3_set: dict[str, Any]) -> None:
    aid = s3_set["agent"]
    first = llm_admin.sessions.list(aid, page_size=2)
    assert first.next_cursor, first
    for cursor in ("garbage", first.next_cursor[:-2] + ("AA" if not first.next_cursor.endswith("AA") else "BB")):
        expect_api_error(llm_admin.sessions.list, aid, page_size=2, cursor=cursor, status=400, code="invalid_cursor")
    # The cursor binds the filters and the sort order.
    expect_api_error(
        llm_admin.sessions.list, aid, page_size=2, cursor=first.next_cursor, sort_order="name_asc",
        status=400, code="invalid_cursor",
    )
    expect_api_error(
        llm_admin.sessions.list, aid, page_size=2, cursor=first.next_cursor, state="idle", status=400, code="invalid_cursor"
    )


def test_s3_default_page_size_is_20(llm_admin: Gumloop) -> None:
    aid = new_session_agent(llm_admin)
    ids = {llm_admin.sessions.create(aid).session.id for _ in range(21)}
    first = llm_admin.sessions.list(aid)
    assert len(first.sessions) == 20 and first.next_cursor, (len(first.sessions), first.next_cursor)
    second = llm_admin.sessions.list(aid, cursor=first.next_cursor)
    assert len(second.sessions) == 1 and second.next_cursor is None
    assert {s.id for s in first.sessions} | {s.id for s in second.sessions} == ids


@pytest.mark.parametrize("bad", [0, 101, -1, "abc", "1.5", ""])
def test_s3_invalid_page_size(llm_admin: Gumloop, s3_set: dict[str, Any], bad: Any) -> None:
    expect_api_error(
        llm_admin.sessions.list, s3_set["agent"], page_size=bad, status=400, code="invalid_page_size", param="page_size"
    )


@pytest.mark.parametrize("bad", ["bogus", "name", "credits"])
def test_s3_invalid_sort(llm_admin: Gumloop, s3_set: dict[str, Any], bad: str) -> None:
    expect_api_error(llm_admin.sessions.list, s3_set["agent"], sort_order=bad, status=400, code="invalid_sort")


def test_s3_unknown_or_foreign_agent_is_404(llm_admin: Gumloop, other_agent_id: str) -> None:
    for aid in ("agt_AAAAAAAAAAAAAAAAAAAAAA", other_agent_id):
        expect_api_error(llm_admin.sessions.list, aid, status=404, code="agent_not_found")


def test_s3_lists_only_sessions_the_caller_may_read(
    llm_admin: Gumloop, llm_server: OpenloopServer, llm_team_member: Principal
) -> None:
    """A team agent's sessions are readable by their creator (and grantees) only (§2.5 rights)."""
    aid = new_session_agent(llm_admin, team_id=llm_server.team_id)
    mine = llm_admin.sessions.create(aid).session.id
    theirs = llm_team_member.client.sessions.create(aid).session.id
    assert {s.id for s in llm_admin.sessions.list(aid, page_size=100).sessions} == {mine}
    assert {s.id for s in llm_team_member.client.sessions.list(aid, page_size=100).sessions} == {theirs}
    # The member sees the team agent but not the admin's session in it: visible tenant, no right → 403.
    expect_api_error(llm_team_member.client.sessions.retrieve, mine, status=403, code="permission_denied")


# ---------------------------------------------------------------------------
# S4 retrieve
# ---------------------------------------------------------------------------


def test_s4_completed_transcript(llm_raw: httpx.Client, llm_server: OpenloopServer, completed: dict[str, Any]) -> None:
    body = session_body(llm_raw.get(f"/sessions/{completed['id']}"), 200)
    assert body.get("queue_position") is None
    s = body["session"]
    assert s["state"] == "completed", s
    assert s.get("pending_approvals", []) == [], f"pending_approvals is [] unless approval_required: {s}"
    msgs = s["messages"]
    assert [m["role"] for m in msgs] == ["user", "assistant"], msgs
    user, assistant = msgs
    assert user["content"] == completed["input"], user
    assert user["creator_id"] == llm_server.admin_user_id, user
    assert MSG_RE.match(user["id"]) and MSG_RE.match(assistant["id"]), msgs
    assert user.get("parts") == [], user
    assert assistant["content"] == completed["answer"], f"assistant content = its text parts joined: {assistant}"
    assert assistant.get("creator_id") is None, assistant
    texts = [p["text"] for p in assistant["parts"] if p["type"] == "text"]
    assert "".join(texts) == completed["answer"], assistant
    stamps = [m["created_at"] for m in msgs]
    assert all(stamps) and stamps == sorted(stamps), f"messages in chronological order with created_at: {msgs}"


def test_s4_usage(llm_admin: Gumloop, completed: dict[str, Any]) -> None:
    s = llm_admin.sessions.retrieve(completed["id"]).session
    assert s.usage is not None, "completed sessions carry usage (§7.8)"
    # One model call; the fake reports 10 prompt / 5 completion tokens.
    assert (s.usage.input_tokens, s.usage.output_tokens) == (10, 5), s.usage
    assert s.usage.credit_cost is not None and s.usage.credit_cost > 0, s.usage
    # No price table is configured: OPENLOOP_CREDITS_PER_1K_TOKENS = 1.0 → (10 + 5) / 1000.
    assert s.usage.credit_cost == pytest.approx(0.015), s.usage
    assert s.usage.tool_credit_cost == 0 and s.usage.flow_credit_cost == 0, s.usage


def test_s4_participants_creator_and_agent_snapshot(
    llm_admin: Gumloop, llm_server: OpenloopServer, agent: Any, completed: dict[str, Any]
) -> None:
    s = llm_admin.sessions.retrieve(completed["id"]).session
    admin = llm_server.admin_user_id
    assert s.agent_id == agent.id and s.agent_name == agent.name, s
    assert s.agent_team_id is None, "a personal agent has no team"
    assert s.agent_creator_user_id == admin, s
    assert isinstance(s.agent_tools, list)
    assert s.creator is not None and s.creator.id == admin, s.creator
    assert admin in s.participants, f"the creator is a participant: {s.participants}"
    assert isinstance(s.participants[admin], dict)
    assert s.type == "api" and s.incognito is False
    assert s.name == agent.name


def test_s4_not_visible_is_404(
    llm_admin: Gumloop,
    llm_other_tenant: Principal,
    llm_team_member: Principal,
    completed: dict[str, Any],
    other_session_id: str,
) -> None:
    expect_api_error(llm_other_tenant.client.sessions.retrieve, completed["id"], status=404, code="session_not_found")
    # A member of the admin's team cannot see the admin's personal session either.
    expect_api_error(llm_team_member.client.sessions.retrieve, completed["id"], status=404, code="session_not_found")
    expect_api_error(llm_admin.sessions.retrieve, other_session_id, status=404, code="session_not_found")
    expect_api_error(llm_admin.sessions.retrieve, UNKNOWN_SESSION, status=404, code="session_not_found")


# ---------------------------------------------------------------------------
# S6 rename
# ---------------------------------------------------------------------------


def test_s6_rename(llm_admin: Gumloop, llm_raw: httpx.Client, agent_id: str, fake_openai: FakeOpenAI) -> None:
    tok = token()
    sid = llm_admin.sessions.create(agent_id, input=f"rename me {tok}").session.id
    assert wait_session(llm_admin, sid).state == "completed"
    body = session_body(llm_raw.patch(f"/sessions/{sid}", json={"name": "  Renamed session  "}), 200)
    s = body["session"]
    assert s["name"] == "Renamed session", s
    assert len(s["messages"]) == 2, f"S6 answers the full SessionResponse (with the transcript): {s}"
    assert llm_admin.sessions.retrieve(sid).session.name == "Renamed session"
    via_sdk = llm_admin.sessions.update(sid, name=f"SDK name {tok}")
    assert via_sdk.session.name == f"SDK name {tok}" and via_sdk.session.state == "completed"


def test_s6_closed_body(llm_admin: Gumloop, llm_raw: httpx.Client, agent_id: str) -> None:
    sid = llm_admin.sessions.create(agent_id, name="closed body").session.id
    expect_api_error(llm_admin.sessions.update, sid, name="x", bogus=1, status=400, code="invalid_request", param="bogus")
    resp = llm_raw.patch(f"/sessions/{sid}", json={"name": "y", "state": "completed"})
    assert_http_error(resp, 400, "invalid_request", param="state")
    assert llm_admin.sessions.retrieve(sid).session.name == "closed body", "a rejected PATCH changes nothing"


def test_s6_invalid_name(llm_admin: Gumloop, llm_raw: httpx.Client, agent_id: str) -> None:
    sid = llm_admin.sessions.create(agent_id, name="before").session.id
    for bad in ("", "   ", "n" * 257):
        expect_api_error(llm_admin.sessions.update, sid, name=bad, status=400, code="invalid_name", param="name")
    # `name` is required; the spec lists invalid_name|invalid_request for S6.
    err = assert_http_error(llm_raw.patch(f"/sessions/{sid}", json={}), 400, None)
    assert err["code"] in ("invalid_request", "invalid_name"), err
    assert llm_admin.sessions.retrieve(sid).session.name == "before"


def test_s6_not_visible_is_404(llm_admin: Gumloop, other_session_id: str) -> None:
    expect_api_error(llm_admin.sessions.update, other_session_id, name="mine", status=404, code="session_not_found")
    expect_api_error(llm_admin.sessions.update, UNKNOWN_SESSION, name="mine", status=404, code="session_not_found")


# ---------------------------------------------------------------------------
# S7 send
# ---------------------------------------------------------------------------


def test_s7_send_from_idle(llm_admin: Gumloop, llm_raw: httpx.Client, fake_openai: FakeOpenAI) -> None:
    aid = new_session_agent(llm_admin)
    sid = llm_admin.sessions.create(aid).session.id
    tok = token()
    fake_openai.enqueue(fo.text(f"first reply {tok}", delay=0.5), match=tok)
    body = session_body(llm_raw.post(f"/sessions/{sid}/messages", json={"input": f"from idle {tok}"}), 202)
    s = body["session"]
    assert s["state"] == "processing", s
    assert s["messages"][-1]["role"] == "user" and s["messages"][-1]["content"] == f"from idle {tok}", s
    done = wait_session(llm_admin, sid)
    assert done.state == "completed" and assistant_texts(done) == [f"first reply {tok}"]


def test_s7_send_from_completed_appends_and_sums_usage(llm_admin: Gumloop, fake_openai: FakeOpenAI) -> None:
    aid = new_session_agent(llm_admin)
    tok = token()
    fake_openai.enqueue(fo.text("one"), match=f"q1 {tok}")
    fake_openai.enqueue(fo.text("two", delay=0.5), match=f"q2 {tok}")
    sid = llm_admin.sessions.create(aid, input=f"q1 {tok}").session.id
    assert wait_session(llm_admin, sid).state == "completed"
    sent = llm_admin.sessions.send(sid, input=f"q2 {tok}")
    assert isinstance(sent, SessionResponse) and sent.session.state == "processing", sent
    assert [m.content for m in user_messages(sent.session)] == [f"q1 {tok}", f"q2 {tok}"]
    done = wait_assistants(llm_admin, sid, 2)
    assert [m.role for m in done.messages] == ["user", "assistant", "user", "assistant"]
    assert assistant_texts(done) == ["one", "two"]
    assert (done.usage.input_tokens, done.usage.output_tokens) == (20, 10), "usage sums all runs (§7.8)"
    # The second call saw the whole transcript.
    second = fake_openai.requests(match=f"q2 {tok}")
    assert len(second) == 1
    assert "one" in [fo.message_text(m) for m in second[0].body["messages"] if m.get("role") == "assistant"]


def test_s7_send_from_failed(llm_admin: Gumloop, fake_openai: FakeOpenAI) -> None:
    aid = new_session_agent(llm_admin)
    tok = token()
    fake_openai.enqueue(fo.error(400), match=f"fail {tok}")
    sid = llm_admin.sessions.create(aid, input=f"fail {tok}").session.id
    assert wait_session(llm_admin, sid).state == "failed"
    sent = llm_admin.sessions.send(sid, input=f"retry {tok}")
    assert sent.session.state == "processing", sent
    done = wait_session(llm_admin, sid)
    assert done.state == "completed" and assistant_texts(done)[-1] == f"ok: retry {tok}", done.messages


def test_s7_while_processing_is_409(llm_admin: Gumloop, fake_openai: FakeOpenAI) -> None:
    aid = new_session_agent(llm_admin)
    tok = token()
    fake_openai.enqueue(fo.text("slow", delay=2.0), match=tok)
    sid = llm_admin.sessions.create(aid, input=f"busy {tok}").session.id
    expect_api_error(
        llm_admin.sessions.send, sid, input=f"too soon {token()}", status=409, code="interaction_not_in_terminal_state"
    )
    done = wait_session(llm_admin, sid)
    assert done.state == "completed" and len(user_messages(done)) == 1, done.messages


def test_s7_approval_responses_without_stream_is_400(llm_admin: Gumloop, agent_id: str) -> None:
    sid = llm_admin.sessions.create(agent_id).session.id
    expect_api_error(
        llm_admin.sessions.send,
        sid,
        input="with approvals",
        approval_responses=[{"action_request_id": UNKNOWN_AREQ, "action": "accept"}],
        status=400,
        code="approval_responses_not_supported",
    )
    assert llm_admin.sessions.retrieve(sid).session.state == "idle"


def test_s7_input_required(llm_raw: httpx.Client, llm_admin: Gumloop, agent_id: str) -> None:
    sid = llm_admin.sessions.create(agent_id).session.id
    for body in ({}, {"input": ""}, {"input": "  "}, {"message": "\n"}, {"input": [{"type": "image_url", "image_url": "x"}]}):
        assert_http_error(llm_raw.post(f"/sessions/{sid}/messages", json=body), 400, "invalid_input")
    assert llm_admin.sessions.retrieve(sid).session.state == "idle"


def test_s7_not_visible_is_404(llm_admin: Gumloop, other_session_id: str) -> None:
    for sid in (other_session_id, UNKNOWN_SESSION):
        expect_api_error(llm_admin.sessions.send, sid, input="hi", status=404, code="session_not_found")
        expect_api_error(
            llm_admin.sessions.send, sid, input="hi", delivery="queued", status=404, code="session_not_found"
        )


def test_s7_queued_receipt_on_idle_is_delivered_at_once(
    llm_admin: Gumloop, llm_raw: httpx.Client, fake_openai: FakeOpenAI
) -> None:
    aid = new_session_agent(llm_admin)
    sid = llm_admin.sessions.create(aid).session.id
    tok = token()
    resp = llm_raw.post(
        f"/sessions/{sid}/messages",
        json={"input": f"queued raw {tok}", "delivery": "queued"},
        headers={"Idempotency-Key": f"raw-{tok}"},
    )
    body = assert_ok(resp, 202)
    assert body.get("status") == "accepted", body
    assert isinstance(body.get("message_id"), str) and QM_RE.match(body["message_id"]), body
    SessionMessageReceipt.model_validate(body)
    done = wait_assistants(llm_admin, sid, 1)
    users = user_messages(done)
    assert [m.content for m in users] == [f"queued raw {tok}"]
    assert users[0].id == body["message_id"], "the queued message keeps its id in the transcript (§8.2 S7)"
    assert assistant_texts(done) == [f"ok: queued raw {tok}"]

    # Through the SDK (it adds an Idempotency-Key itself).
    receipt = llm_admin.sessions.send(sid, input=f"queued sdk {tok}", delivery="queued")
    assert isinstance(receipt, SessionMessageReceipt) and receipt.status == "accepted"
    assert QM_RE.match(receipt.message_id), receipt
    done = wait_assistants(llm_admin, sid, 2)
    assert user_messages(done)[-1].id == receipt.message_id


def test_s7_queued_same_idempotency_key_queues_once(
    llm_admin: Gumloop, llm_raw: httpx.Client, fake_openai: FakeOpenAI
) -> None:
    aid = new_session_agent(llm_admin)
    tok, qtok = token(), token()
    fake_openai.enqueue(fo.text("busy answer", delay=2.0), match=tok)
    sid = llm_admin.sessions.create(aid, input=f"busy {tok}").session.id
    key = f"conf-{tok}"
    first = llm_admin.sessions.send(sid, input=f"once {qtok}", delivery="queued", idempotency_key=key)
    second = llm_admin.sessions.send(sid, input=f"once {qtok}", delivery="queued", idempotency_key=key)
    assert first.message_id == second.message_id, (first, second)
    replay = llm_raw.post(
        f"/sessions/{sid}/messages", json={"input": f"once {qtok}", "delivery": "queued"}, headers={"Idempotency-Key": key}
    )
    assert assert_ok(replay, 202) == first.model_dump(), replay.text
    assert replay.headers.get("idempotent-replayed") == "true", dict(replay.headers)
    queue = llm_admin.sessions.list_queue(sid).queue
    assert [q.id for q in queue] == [first.message_id], queue
    # Same key, other body → 409.
    expect_api_error(
        llm_admin.sessions.send, sid, input=f"different {qtok}", delivery="queued", idempotency_key=key,
        status=409, code="idempotency_key_reused",
    )
    done = wait_assistants(llm_admin, sid, 2)
    assert [m.content for m in user_messages(done)].count(f"once {qtok}") == 1, done.messages
    assert len(fake_openai.requests(match=qtok)) == 1


def test_s7_queued_invalid_idempotency_key(llm_raw: httpx.Client, llm_admin: Gumloop, agent_id: str) -> None:
    sid = llm_admin.sessions.create(agent_id).session.id
    resp = llm_raw.post(
        f"/sessions/{sid}/messages", json={"input": "x", "delivery": "queued"}, headers={"Idempotency-Key": "has space"}
    )
    assert_http_error(resp, 400, "invalid_idempotency_key")


def test_s7_queued_with_attachments_is_400(llm_raw: httpx.Client, llm_admin: Gumloop, agent_id: str) -> None:
    """The SDK refuses this locally; on the wire it is 400 invalid_request (§8.2 S7)."""
    sid = llm_admin.sessions.create(agent_id).session.id
    uploaded = llm_admin.sessions.upload_file(sid, "q.txt", b"queued attachment")
    resp = llm_raw.post(
        f"/sessions/{sid}/messages",
        json={"input": "x", "delivery": "queued", "attachments": [{"file_name": uploaded.file_name}]},
        headers={"Idempotency-Key": f"att-{token()}"},
    )
    assert_http_error(resp, 400, "invalid_request")


def test_s7_queued_while_busy_is_delivered_after_the_run(llm_admin: Gumloop, fake_openai: FakeOpenAI) -> None:
    aid = new_session_agent(llm_admin)
    tok1, tok2 = token(), token()
    fake_openai.enqueue(fo.text("first answer", delay=1.5), match=tok1)
    fake_openai.enqueue(fo.text("second answer"), match=tok2)
    sid = llm_admin.sessions.create(aid, input=f"first {tok1}").session.id
    receipt = llm_admin.sessions.send(sid, input=f"second {tok2}", delivery="queued")
    assert receipt.status == "accepted"
    now = llm_admin.sessions.retrieve(sid).session
    assert now.state == "processing" and len(user_messages(now)) == 1, "a busy session keeps the message queued"
    queue = llm_admin.sessions.list_queue(sid).queue
    assert [(q.id, q.position, q.state) for q in queue] == [(receipt.message_id, 1, "queued")], queue
    done = wait_assistants(llm_admin, sid, 2)
    assert [m.role for m in done.messages] == ["user", "assistant", "user", "assistant"], done.messages
    assert [m.content for m in done.messages] == [f"first {tok1}", "first answer", f"second {tok2}", "second answer"]
    assert llm_admin.sessions.list_queue(sid).queue == []
    # The queued message ran after the first run: its context holds the first answer.
    req = fake_openai.requests(match=tok2)
    assert len(req) == 1
    assert "first answer" in [fo.message_text(m) for m in req[0].body["messages"] if m.get("role") == "assistant"]


def test_s7_from_approval_required_dismisses_asks(llm_admin: Gumloop, fake_openai: FakeOpenAI) -> None:
    sid, _ = approval_session(llm_admin, fake_openai)
    tok = token()
    sent = llm_admin.sessions.send(sid, input=f"never mind {tok}")
    assert sent.session.state == "processing", sent
    assert not sent.session.pending_approvals, "open asks are dismissed by a new turn (§6.1)"
    done = wait_session(llm_admin, sid)
    assert done.state == "completed" and assistant_texts(done)[-1] == f"ok: never mind {tok}"
    assert not done.pending_approvals
    expect_api_error(
        llm_admin.sessions.resolve_approvals, sid,
        approval_responses=[{"action_request_id": UNKNOWN_AREQ, "action": "accept"}],
        status=409, code="no_pending_approvals",
    )


# ---------------------------------------------------------------------------
# S9 cancel
# ---------------------------------------------------------------------------


def test_s9_cancel_while_processing(llm_admin: Gumloop, llm_raw: httpx.Client, fake_openai: FakeOpenAI) -> None:
    aid = new_session_agent(llm_admin)
    tok = token()
    fake_openai.enqueue(fo.text(f"too late {tok}", delay=2.5), match=tok)
    t0 = time.monotonic()
    sid = llm_admin.sessions.create(aid, input=f"cancel me {tok}").session.id
    wait_for(lambda: fake_openai.requests(match=tok), "the model call to start", timeout=10)
    started = time.monotonic()
    body = session_body(llm_raw.post(f"/sessions/{sid}/cancel", json={}), 200)
    assert time.monotonic() - started < 2.0, "cancel answers promptly"
    s = body["session"]
    assert (s["id"], s["agent_id"], s["state"]) == (sid, aid, "cancelled"), s
    assert s.get("messages", []) == [], f"S9 answers messages: [] (§8.2 S9): {s}"
    assert llm_admin.sessions.retrieve(sid).session.state == "cancelled"
    # After the model would have answered, the run is still stopped and nothing arrived.
    time.sleep(max(0.0, 3.2 - (time.monotonic() - t0)))
    later = llm_admin.sessions.retrieve(sid).session
    assert later.state == "cancelled", later
    assert [m.content for m in user_messages(later)] == [f"cancel me {tok}"], "the user message is kept"
    assert not any("too late" in t for t in assistant_texts(later)), later.messages
    assert len(fake_openai.requests(match=tok)) == 1, "the cancelled run made no further model calls"
    # A cancelled session accepts messages again.
    sent = llm_admin.sessions.send(sid, input=f"again {token()}")
    assert sent.session.state == "processing"
    done = wait_session(llm_admin, sid)
    assert done.state == "completed" and not any("too late" in t for t in assistant_texts(done))


def test_s9_cancel_idle_or_completed_is_unchanged(
    llm_admin: Gumloop, llm_raw: httpx.Client, agent_id: str, completed: dict[str, Any]
) -> None:
    idle = llm_admin.sessions.create(agent_id).session.id
    body = session_body(llm_raw.post(f"/sessions/{idle}/cancel", json={}), 200)
    assert body["session"]["state"] == "idle", body
    assert llm_admin.sessions.cancel(idle).session.state == "idle"
    assert llm_admin.sessions.retrieve(idle).session.state == "idle"
    assert llm_admin.sessions.cancel(completed["id"]).session.state == "completed"
    after = llm_admin.sessions.retrieve(completed["id"]).session
    assert after.state == "completed" and len(after.messages) == 2


def test_s9_cancel_approval_required(llm_admin: Gumloop, fake_openai: FakeOpenAI) -> None:
    sid, _ = approval_session(llm_admin, fake_openai)
    assert llm_admin.sessions.cancel(sid).session.state == "cancelled"
    s = llm_admin.sessions.retrieve(sid).session
    assert s.state == "cancelled" and not s.pending_approvals, s


def test_s9_not_visible_is_404(llm_admin: Gumloop, other_session_id: str) -> None:
    for sid in (other_session_id, UNKNOWN_SESSION):
        expect_api_error(llm_admin.sessions.cancel, sid, status=404, code="session_not_found")


# ---------------------------------------------------------------------------
# S10 files and S7 attachments
# ---------------------------------------------------------------------------


def test_s10_upload_file(llm_admin: Gumloop, llm_raw: httpx.Client, agent_id: str) -> None:
    sid = llm_admin.sessions.create(agent_id).session.id
    up = llm_admin.sessions.upload_file(sid, "notes.txt", b"hello world")
    assert up.file_name == "notes.txt" and up.size == 11, up
    assert (up.media_type or "").startswith("text/plain"), f"media_type defaults by extension: {up}"
    resp = llm_raw.post(f"/sessions/{sid}/files", json={"file_name": "data.json", "file_content": b64(b"{}")})
    body = assert_ok(resp, 201)
    assert body["file_name"] == "data.json" and body["size"] == 2 and body.get("media_type") == "application/json", body
    other = llm_admin.sessions.upload_file(sid, "blob.zzq", b"\x00\x01\x02")
    assert other.media_type == "application/octet-stream" and other.size == 3, other
    given = llm_admin.sessions.upload_file(sid, "page.bin", b"# hi", media_type="text/markdown")
    assert given.media_type == "text/markdown", "an explicit media_type is echoed"
    # Base64 padding is optional.
    unpadded = assert_ok(llm_raw.post(f"/sessions/{sid}/files", json={"file_name": "p.txt", "file_content": "aGVsbG8"}), 201)
    assert unpadded["size"] == 5, unpadded


def test_s10_name_collisions(llm_admin: Gumloop, agent_id: str) -> None:
    sid = llm_admin.sessions.create(agent_id).session.id
    names = [llm_admin.sessions.upload_file(sid, "report.txt", b"x").file_name for _ in range(3)]
    assert names == ["report.txt", "report (1).txt", "report (2).txt"], names
    bare = [llm_admin.sessions.upload_file(sid, "README", b"x").file_name for _ in range(2)]
    assert bare == ["README", "README (1)"], bare
    # Another session has its own names.
    sid2 = llm_admin.sessions.create(agent_id).session.id
    assert llm_admin.sessions.upload_file(sid2, "report.txt", b"x").file_name == "report.txt"


def test_s10_names_sanitized(llm_admin: Gumloop, agent_id: str) -> None:
    """§9.2 item 8: ``"*:<>?|`` become ``_``; Windows reserved stems get a ``_`` prefix."""
    sid = llm_admin.sessions.create(agent_id).session.id
    assert llm_admin.sessions.upload_file(sid, "what?.txt", b"x").file_name == "what_.txt"
    assert llm_admin.sessions.upload_file(sid, "CON.txt", b"x").file_name == "_CON.txt"


BAD_FILE_NAMES = ["../x", "a/b", "a\\b", "x\x00y", "", "   ", ".", "..", "/etc/passwd", "tab\there", "n" * 256]


@pytest.mark.parametrize("bad", BAD_FILE_NAMES, ids=[repr(n)[:16] for n in BAD_FILE_NAMES])
def test_s10_invalid_file_name(llm_admin: Gumloop, agent_id: str, bad: str) -> None:
    sid = llm_admin.sessions.create(agent_id).session.id
    expect_api_error(
        llm_admin.sessions.upload_file, sid, bad, b"x", status=400, code="invalid_file_name", param="file_name"
    )


def test_s10_invalid_file_content(llm_raw: httpx.Client, llm_admin: Gumloop, agent_id: str) -> None:
    sid = llm_admin.sessions.create(agent_id).session.id
    for content in ("!!!not base64!!!", "abc$", "a"):
        resp = llm_raw.post(f"/sessions/{sid}/files", json={"file_name": "bad.txt", "file_content": content})
        assert_http_error(resp, 400, "invalid_file_content")


def test_s10_upload_not_visible_is_404(llm_admin: Gumloop, other_session_id: str) -> None:
    for sid in (other_session_id, UNKNOWN_SESSION):
        expect_api_error(llm_admin.sessions.upload_file, sid, "a.txt", b"x", status=404, code="session_not_found")


def test_s7_attachment_reaches_the_model(llm_admin: Gumloop, fake_openai: FakeOpenAI) -> None:
    aid = new_session_agent(llm_admin)
    sid = llm_admin.sessions.create(aid).session.id
    secret = f"PINEAPPLE-{token()}"
    up = llm_admin.sessions.upload_file(sid, "facts.txt", f"The secret word is {secret}.\n".encode())
    tok = token()
    sent = llm_admin.sessions.send(sid, input=f"read the file {tok}", attachments=[{"file_name": up.file_name}])
    assert sent.session.state == "processing", sent
    user = user_messages(sent.session)[-1]
    files = [p for p in (user.parts or []) if p.get("type") == "file"]
    assert len(files) == 1, f"the attachment is a file part of the user message: {user}"
    assert files[0]["file"].get("file_name") == up.file_name and files[0]["file"].get("size") == up.size, files
    done = wait_session(llm_admin, sid)
    assert done.state == "completed", done
    reqs = [r for r in fake_openai.requests() if tok in json.dumps(r.body)]
    assert reqs, "the model was called for the message"
    assert secret in json.dumps(reqs[0].body), "a UTF-8 text attachment is inlined into the context (§7.1 item 2)"


def test_s7_unknown_attachment_is_400(llm_admin: Gumloop, agent_id: str) -> None:
    sid = llm_admin.sessions.create(agent_id).session.id
    ok = llm_admin.sessions.upload_file(sid, "ok.txt", b"fine").file_name
    expect_api_error(
        llm_admin.sessions.send, sid, input="x", attachments=[{"file_name": "nope.txt"}],
        status=400, code="invalid_attachment", param="attachments[0].file_name",
    )
    expect_api_error(
        llm_admin.sessions.send, sid, input="x", attachments=[{"file_name": ok}, {"file_name": "../ok.txt"}],
        status=400, code="invalid_attachment", param="attachments[1].file_name",
    )
    # Another session's file is not this session's.
    other = llm_admin.sessions.create(agent_id).session.id
    theirs = llm_admin.sessions.upload_file(other, "theirs.txt", b"x").file_name
    expect_api_error(
        llm_admin.sessions.send, sid, input="x", attachments=[{"file_name": theirs}],
        status=400, code="invalid_attachment", param="attachments[0].file_name",
    )
    s = llm_admin.sessions.retrieve(sid).session
    assert s.state == "idle" and s.messages == [], "a rejected message is not appended"


# ---------------------------------------------------------------------------
# S11 approvals
# ---------------------------------------------------------------------------


def test_s11_pending_approval_shape(llm_admin: Gumloop, llm_raw: httpx.Client, llm_server: OpenloopServer, fake_openai: FakeOpenAI) -> None:
    sid, _ = approval_session(llm_admin, fake_openai)
    try:
        s = raw_session(llm_raw, sid)
        assert s["state"] == "approval_required", s
        pending = s.get("pending_approvals")
        assert isinstance(pending, list) and len(pending) == 1, s
        ask = pending[0]
        assert ask["type"] == "tool_approval", ask
        assert isinstance(ask.get("action_request_id"), str) and AREQ_RE.match(ask["action_request_id"]), ask
        assert ask.get("tool_name") == "current_time", ask
        assert ask.get("recipient_user_id") == llm_server.admin_user_id, "recipient = the creator by default (§7.5)"
        parts = [p for m in s["messages"] if m["role"] == "assistant" for p in m.get("parts") or []]
        calls = [p for p in parts if p["type"] == "tool_invocation"]
        assert len(calls) == 1 and calls[0]["toolCallState"] == "awaiting_approval", parts
        assert calls[0]["toolName"] == "current_time", calls
    finally:
        llm_admin.sessions.cancel(sid)


def test_s11_accept_resumes_and_outcomes(llm_admin: Gumloop, fake_openai: FakeOpenAI) -> None:
    sid, tok = approval_session(llm_admin, fake_openai, calls=2, then=[fo.text("Done checking.")])
    s = llm_admin.sessions.retrieve(sid).session
    asks = s.pending_approvals or []
    assert len(asks) == 2 and all(a.type == "tool_approval" and a.tool_name == "current_time" for a in asks), asks
    a, b = asks[0].action_request_id, asks[1].action_request_id
    assert a != b

    # Duplicate ids in one call → 400, nothing resolved.
    expect_api_error(
        llm_admin.sessions.resolve_approvals, sid,
        approval_responses=[{"action_request_id": a, "action": "accept"}, {"action_request_id": a, "action": "reject"}],
        status=400, code="invalid_approval_response",
    )
    assert len(llm_admin.sessions.retrieve(sid).session.pending_approvals or []) == 2

    # Accept one; an unknown id does not fail the call.
    r1 = llm_admin.sessions.resolve_approvals(
        sid, approval_responses=[{"action_request_id": a, "action": "accept"}, {"action_request_id": UNKNOWN_AREQ, "action": "accept"}]
    )
    assert isinstance(r1, SessionApprovalsResponse)
    assert [(r.action_request_id, r.action, r.outcome) for r in r1.results] == [
        (a, "accept", "accepted"), (UNKNOWN_AREQ, "accept", "not_found")
    ], r1.results
    assert r1.session.state == "approval_required", "one ask remains open"
    assert [p.action_request_id for p in r1.session.pending_approvals or []] == [b]

    # Repeating a decision: the earlier one stands.
    r2 = llm_admin.sessions.resolve_approvals(sid, approval_responses=[{"action_request_id": a, "action": "reject"}])
    assert [(r.action_request_id, r.outcome) for r in r2.results] == [(a, "already_accepted")], r2.results
    assert r2.session.state == "approval_required"

    # Resolving the last ask resumes the run.
    r3 = llm_admin.sessions.resolve_approvals(sid, approval_responses=[{"action_request_id": b, "action": "accept"}])
    assert [(r.action_request_id, r.outcome) for r in r3.results] == [(b, "accepted")], r3.results
    assert r3.session.state != "approval_required" and not r3.session.pending_approvals, r3.session
    if r3.stream_cursor is not None:
        cursor_seq(r3.stream_cursor, sid)
    done = wait_session(llm_admin, sid)
    assert done.state == "completed", done
    assert assistant_texts(done)[-1].endswith("Done checking."), done.messages
    calls = tool_parts(done)
    assert len(calls) == 2 and all(c["toolCallState"] == "completed" for c in calls), calls
    assert all("result" in c["result"] for c in calls), calls
    # The model received both results.
    reqs = fake_openai.requests(match=tok)
    assert len(reqs) == 2, [r.body for r in reqs]
    tool_msgs = [m for m in reqs[1].body["messages"] if m.get("role") == "tool"]
    assert len(tool_msgs) == 2, reqs[1].body["messages"]
    # Afterwards nothing is pending.
    expect_api_error(
        llm_admin.sessions.resolve_approvals, sid, approval_responses=[{"action_request_id": a, "action": "accept"}],
        status=409, code="no_pending_approvals",
    )


def test_s11_reject_reaches_the_model(llm_admin: Gumloop, fake_openai: FakeOpenAI) -> None:
    sid, tok = approval_session(llm_admin, fake_openai, then=[fo.text("Understood, I will not check.")])
    ask = (llm_admin.sessions.retrieve(sid).session.pending_approvals or [None])[0]
    assert ask is not None
    reason = f"not now {token()}"
    r = llm_admin.sessions.resolve_approvals(
        sid, approval_responses=[{"action_request_id": ask.action_request_id, "action": "reject", "reason": reason}]
    )
    assert [(x.action_request_id, x.action, x.outcome) for x in r.results] == [(ask.action_request_id, "reject", "rejected")]
    done = wait_session(llm_admin, sid)
    assert done.state == "completed", done
    calls = tool_parts(done)
    assert len(calls) == 1 and calls[0]["toolCallState"] == "rejected", calls
    reqs = fake_openai.requests(match=tok)
    assert len(reqs) == 2, [q.body for q in reqs]
    tool_msgs = [fo.message_text(m) for m in reqs[1].body["messages"] if m.get("role") == "tool"]
    assert len(tool_msgs) == 1 and "Rejected by user" in tool_msgs[0], tool_msgs
    assert reason in tool_msgs[0], f"the reason is passed on (§7.5): {tool_msgs}"
    expect_api_error(
        llm_admin.sessions.resolve_approvals, sid,
        approval_responses=[{"action_request_id": ask.action_request_id, "action": "reject"}],
        status=409, code="no_pending_approvals",
    )


def test_s11_nothing_pending_is_409(llm_admin: Gumloop, agent_id: str, completed: dict[str, Any]) -> None:
    idle = llm_admin.sessions.create(agent_id).session.id
    for sid in (idle, completed["id"]):
        expect_api_error(
            llm_admin.sessions.resolve_approvals, sid,
            approval_responses=[{"action_request_id": UNKNOWN_AREQ, "action": "accept"}],
            status=409, code="no_pending_approvals",
        )


def test_s11_not_visible_is_404(llm_admin: Gumloop, other_session_id: str) -> None:
    for sid in (other_session_id, UNKNOWN_SESSION):
        expect_api_error(
            llm_admin.sessions.resolve_approvals, sid,
            approval_responses=[{"action_request_id": UNKNOWN_AREQ, "action": "accept"}],
            status=404, code="session_not_found",
        )


# ---------------------------------------------------------------------------
# S12–S16 session message queue
# ---------------------------------------------------------------------------


def assert_queued(q: Any, position: int, text: str) -> None:
    assert QM_RE.match(q.id), q
    assert (q.state, q.position, q.input) == ("queued", position, text), q
    for ts in (q.created_at, q.updated_at):
        assert ts is None or V1_TS_RE.match(ts), q


def test_s12_s15_queue_list_edit_delete(llm_admin: Gumloop, llm_raw: httpx.Client, fake_openai: FakeOpenAI) -> None:
    # approval_required neither drains the queue nor ends by itself: a stable place to queue.
    sid, _ = approval_session(llm_admin, fake_openai)
    try:
        assert llm_admin.sessions.list_queue(sid).queue == []
        r1 = llm_admin.sessions.queue_message(sid, "one")
        assert isinstance(r1, SessionQueuedMessageResponse)
        assert_queued(r1.queued_message, 1, "one")
        assert [q.id for q in r1.queue] == [r1.queued_message.id]
        raw2 = assert_ok(llm_raw.post(f"/sessions/{sid}/queue", json={"input": "two"}), 201)
        r2 = SessionQueuedMessageResponse.model_validate(raw2)
        assert_queued(r2.queued_message, 2, "two")
        r3 = llm_admin.sessions.queue_message(sid, "three")
        assert_queued(r3.queued_message, 3, "three")
        ids = [r1.queued_message.id, r2.queued_message.id, r3.queued_message.id]
        assert len(set(ids)) == 3

        listed = llm_admin.sessions.list_queue(sid).queue
        assert [(q.id, q.position, q.input) for q in listed] == list(zip(ids, [1, 2, 3], ["one", "two", "three"]))

        edited = llm_admin.sessions.edit_queued_message(sid, ids[1], "two, edited")
        assert_queued(edited.queued_message, 2, "two, edited")
        assert edited.queued_message.id == ids[1], "editing keeps the id and the position"
        assert [q.input for q in edited.queue] == ["one", "two, edited", "three"]

        after_delete = llm_admin.sessions.delete_queued_message(sid, ids[0])
        assert [(q.id, q.position) for q in after_delete.queue] == [(ids[1], 1), (ids[2], 2)], "renumbered"
        assert [(q.id, q.position) for q in llm_admin.sessions.list_queue(sid).queue] == [(ids[1], 1), (ids[2], 2)]

        # Deleted and unknown ids.
        for qid in (ids[0], UNKNOWN_QM):
            expect_api_error(llm_admin.sessions.edit_queued_message, sid, qid, "x", status=404, code="queued_message_not_found")
            expect_api_error(llm_admin.sessions.delete_queued_message, sid, qid, status=404, code="queued_message_not_found")
            expect_api_error(llm_admin.sessions.send_queued_message, sid, qid, status=404, code="queued_message_not_found")

        # Invalid input on S13/S14.
        expect_api_error(llm_admin.sessions.queue_message, sid, "   ", status=400, code="invalid_input")
        expect_api_error(llm_admin.sessions.edit_queued_message, sid, ids[1], "", status=400, code="invalid_input")
        assert len(llm_admin.sessions.list_queue(sid).queue) == 2
        # Still paused: approval_required does not drain the queue.
        assert llm_admin.sessions.retrieve(sid).session.state == "approval_required"
    finally:
        llm_admin.sessions.cancel(sid)


def test_s12_queue_of_another_session_is_not_found(llm_admin: Gumloop, agent_id: str, fake_openai: FakeOpenAI) -> None:
    sid, _ = approval_session(llm_admin, fake_openai)
    other = llm_admin.sessions.create(agent_id).session.id
    try:
        qid = llm_admin.sessions.queue_message(sid, "mine").queued_message.id
        expect_api_error(llm_admin.sessions.edit_queued_message, other, qid, "x", status=404, code="queued_message_not_found")
        expect_api_error(llm_admin.sessions.delete_queued_message, other, qid, status=404, code="queued_message_not_found")
    finally:
        llm_admin.sessions.cancel(sid)


def test_s12_not_visible_is_404(llm_admin: Gumloop, other_session_id: str) -> None:
    for sid in (other_session_id, UNKNOWN_SESSION):
        expect_api_error(llm_admin.sessions.list_queue, sid, status=404, code="session_not_found")
        expect_api_error(llm_admin.sessions.queue_message, sid, "x", status=404, code="session_not_found")


def test_s13_queue_full_at_21(llm_admin: Gumloop, fake_openai: FakeOpenAI) -> None:
    sid, _ = approval_session(llm_admin, fake_openai)
    try:
        for i in range(20):
            assert llm_admin.sessions.queue_message(sid, f"m{i}").queued_message.position == i + 1
        expect_api_error(llm_admin.sessions.queue_message, sid, "m20", status=409, code="queue_full")
        expect_api_error(llm_admin.sessions.send, sid, input="m20", delivery="queued", status=409, code="queue_full")
        queue = llm_admin.sessions.list_queue(sid).queue
        assert [q.input for q in queue] == [f"m{i}" for i in range(20)]
        assert [q.position for q in queue] == list(range(1, 21))
    finally:
        llm_admin.sessions.cancel(sid)


def test_s13_queue_while_busy_is_delivered_after_the_run(llm_admin: Gumloop, fake_openai: FakeOpenAI) -> None:
    aid = new_session_agent(llm_admin)
    tok1, tok2 = token(), token()
    fake_openai.enqueue(fo.text("busy done", delay=1.5), match=tok1)
    sid = llm_admin.sessions.create(aid, input=f"busy {tok1}").session.id
    r = llm_admin.sessions.queue_message(sid, f"later {tok2}")
    assert_queued(r.queued_message, 1, f"later {tok2}")
    assert llm_admin.sessions.retrieve(sid).session.state == "processing"
    done = wait_assistants(llm_admin, sid, 2)
    assert [m.content for m in done.messages] == [f"busy {tok1}", "busy done", f"later {tok2}", f"ok: later {tok2}"]
    assert llm_admin.sessions.list_queue(sid).queue == []


def test_s13_on_idle_session_drains_at_once(llm_admin: Gumloop, agent_id: str) -> None:
    sid = llm_admin.sessions.create(agent_id).session.id
    tok = token()
    llm_admin.sessions.queue_message(sid, f"drain {tok}")
    done = wait_assistants(llm_admin, sid, 1)
    assert [m.content for m in done.messages] == [f"drain {tok}", f"ok: drain {tok}"]
    assert llm_admin.sessions.list_queue(sid).queue == []


def test_s16_send_now_interrupts_the_active_run(
    llm_admin: Gumloop, llm_raw: httpx.Client, fake_openai: FakeOpenAI
) -> None:
    aid = new_session_agent(llm_admin)
    tok1, tok2 = token(), token()
    fake_openai.enqueue(fo.text(f"slow answer {tok1}", delay=2.5), match=tok1)
    t0 = time.monotonic()
    sid = llm_admin.sessions.create(aid, input=f"slow {tok1}").session.id
    qid = llm_admin.sessions.queue_message(sid, f"now {tok2}").queued_message.id
    wait_for(lambda: fake_openai.requests(match=tok1), "the first model call", timeout=10)
    body = session_body(llm_raw.post(f"/sessions/{sid}/queue/{qid}/send", json={}), 202)
    s = body["session"]
    assert s["state"] in ("processing", "queued"), s
    assert [m["content"] for m in s["messages"] if m["role"] == "user"] == [f"slow {tok1}", f"now {tok2}"], s
    assert llm_admin.sessions.list_queue(sid).queue == []
    done = wait_assistants(llm_admin, sid, 1)
    assert assistant_texts(done)[-1] == f"ok: now {tok2}", done.messages
    # Past the time the interrupted call would have answered: its text never lands.
    time.sleep(max(0.0, 3.2 - (time.monotonic() - t0)))
    final = llm_admin.sessions.retrieve(sid).session
    assert final.state == "completed"
    assert not any(f"slow answer {tok1}" in t for t in assistant_texts(final)), final.messages
    assert [m.content for m in user_messages(final)] == [f"slow {tok1}", f"now {tok2}"]
    assert len(fake_openai.requests(match=tok2)) == 1


def test_s16_via_sdk_on_approval_required(llm_admin: Gumloop, fake_openai: FakeOpenAI) -> None:
    sid, _ = approval_session(llm_admin, fake_openai)
    tok = token()
    qid = llm_admin.sessions.queue_message(sid, f"skip ahead {tok}").queued_message.id
    sent = llm_admin.sessions.send_queued_message(sid, qid)
    assert isinstance(sent, SessionResponse) and sent.session.state in ("processing", "queued"), sent
    done = wait_session(llm_admin, sid)
    assert done.state == "completed" and assistant_texts(done)[-1] == f"ok: skip ahead {tok}", done.messages
