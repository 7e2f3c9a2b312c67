"""§12 streaming (SSE): S2 ``sessions.stream`` / ``sessions.create(stream=True)``, S8
``sessions.stream_message`` / ``send(stream=True)``, S5 ``sessions.resume_stream``; framing,
event vocabulary, cursors and resumption (also across a server restart), disconnects.

Against ``llm_server`` (fake OpenAI provider). Event payload keys the SDK does not model
(``interaction_id``, ``delta``, ``state``, …) are read from ``StreamEvent.model_extra``.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from gumloop import Gumloop
from gumloop.types import StreamEvent

import fake_openai as fo
from _support import (
    SESS_RE,
    OpenloopServer,
    Principal,
    assert_ratelimit_headers,
    assistant_texts,
    cursor_seq,
    expect_api_error,
    new_session_agent,
    token,
    wait_session,
)
from fake_openai import FAKE_OPENAI_KEY, FakeOpenAI

EVENT_TYPES = {
    "start", "data-state", "start-step", "finish-step", "text-start", "text-delta", "text-end",
    "reasoning-start", "reasoning-delta", "reasoning-end", "tool-input-start", "tool-input-delta",
    "tool-input-available", "tool-output-available", "tool-output-error", "approval-required",
    "data-artifact", "error", "finish",
}


# ---------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------


def extra(ev: StreamEvent, key: str) -> Any:
    return (ev.model_extra or {}).get(key)


def collect(events: Iterator[StreamEvent], limit: int = 2000) -> list[StreamEvent]:
    out: list[StreamEvent] = []
    for ev in events:
        out.append(ev)
        if len(out) > limit:
            pytest.fail(f"stream did not end after {limit} events: {[e.type for e in out[-20:]]}")
    return out


def text_of(events: list[StreamEvent]) -> str:
    return "".join(extra(e, "delta") or "" for e in events if e.type == "text-delta")


def key(ev: StreamEvent) -> tuple[Any, ...]:
    """What identifies an event when comparing a replay with the original."""
    return (ev.type, ev.stream_cursor, extra(ev, "delta"), ev.finish_reason, ev.final)


def check_run_stream(events: list[StreamEvent], sid: str | None = None, *, reason: str = "stop") -> str:
    """A complete stream response of one run: start … finish (§12.2, §12.3, §12.4). Returns the session id."""
    assert events, "the stream yielded no events"
    types = [e.type for e in events]
    first, last = events[0], events[-1]
    assert first.type == "start", f"S2/S8 streams begin with start: {types}"
    iid = extra(first, "interaction_id")
    assert isinstance(iid, str) and iid, f"start carries interaction_id: {first}"
    if sid is None:
        assert SESS_RE.match(iid), f"interaction_id = the new session id: {iid!r}"
        sid = iid
    assert iid == sid, (iid, sid)
    if extra(first, "session_id") is not None:
        assert extra(first, "session_id") == sid, first
    seqs = []
    for ev in events:
        assert ev.type in EVENT_TYPES, f"unknown event type {ev.type!r}: {types}"
        seqs.append(cursor_seq(ev.stream_cursor, sid))
    assert all(a < b for a, b in zip(seqs, seqs[1:])), f"stream_cursor seq strictly increases: {seqs}"
    assert seqs[0] >= 1
    assert last.type == "finish" and last.final is True, f"the last event is finish with final: true: {types}"
    for ev in events[:-1]:
        assert ev.type != "finish" and ev.final is None, f"final appears only on the (single, last) finish: {types}"
    assert last.finish_reason == reason, f"finishReason {last.finish_reason!r}, expected {reason!r}: {last}"
    assert extra(last, "interaction_id") == sid, last
    if reason != "error":
        assert not any(e.error for e in events), f"no truthy 'error' outside failures (§12.2): {events}"
    # Text parts: every delta belongs to an opened text part.
    opened: set[str] = set()
    for ev in events:
        if ev.type == "text-start":
            opened.add(extra(ev, "id"))
        if ev.type == "text-delta":
            assert extra(ev, "id") in opened, f"text-delta before its text-start: {types}"
            assert isinstance(extra(ev, "delta"), str), ev
    return sid


def seq_of(ev: StreamEvent, sid: str) -> int:
    return cursor_seq(ev.stream_cursor, sid)


def parse_sse(body: str) -> list[tuple[str, dict[str, Any]]]:
    """Parse a complete SSE body strictly per §12.2; returns (event name, data) pairs."""
    assert "\r" not in body, "events are framed with \\n"
    assert body.endswith("\n\n"), f"the body ends after a complete event: {body[-200:]!r}"
    out = []
    for block in body[:-2].split("\n\n"):
        lines = block.split("\n")
        for line in lines:
            assert not line.startswith("id:") and not line.startswith("retry:"), f"no id:/retry: lines (§12.2): {block!r}"
        if all(line.startswith(":") for line in lines):
            continue  # keep-alive comment
        assert len(lines) == 2, f"each event is exactly 'event: <type>' + 'data: <json>': {block!r}"
        assert lines[0].startswith("event: ") and lines[1].startswith("data: "), block
        name = lines[0][len("event: "):]
        data = json.loads(lines[1][len("data: "):])
        assert isinstance(data, dict) and data.get("type") == name, f"data repeats the type: {block!r}"
        assert isinstance(data.get("stream_cursor"), str), f"every event carries stream_cursor: {block!r}"
        out.append((name, data))
    return out


def raw_stream(client: httpx.Client, method: str, path: str, **kwargs: Any) -> tuple[httpx.Response, str]:
    headers = {"Accept": "text/event-stream", **kwargs.pop("headers", {})}
    with client.stream(method, path, headers=headers, **kwargs) as resp:
        body = resp.read().decode("utf-8")
    return resp, body


class Background:
    """Consume a stream in a thread (for streams that end because of another request)."""

    def __init__(self, events: Iterator[StreamEvent]) -> None:
        self.events: list[StreamEvent] = []
        self.error: BaseException | None = None
        self._it = events
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            for ev in self._it:
                self.events.append(ev)
        except BaseException as exc:  # noqa: BLE001 - reported by join()
            self.error = exc

    def wait_for(self, type_: str, timeout: float = 15.0) -> StreamEvent:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for ev in list(self.events):
                if ev.type == type_:
                    return ev
            if self.error is not None:
                raise self.error
            time.sleep(0.02)
        pytest.fail(f"no {type_!r} event within {timeout}s: {[e.type for e in self.events]}")

    def join(self, timeout: float = 30.0) -> list[StreamEvent]:
        self._thread.join(timeout)
        assert not self._thread.is_alive(), f"stream still open after {timeout}s: {[e.type for e in self.events]}"
        if self.error is not None:
            raise self.error
        return self.events


# ---------------------------------------------------------------------------
# Fixtures
# ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def agent_id(llm_admin: Gumloop) -> str:
    return new_session_agent(llm_admin, system_prompt="Be brief.")


@pytest.fixture(scope="module")
def streamed(llm_admin: Gumloop, fake_openai: FakeOpenAI, agent_id: str) -> dict[str, Any]:
    """A session created with ``sessions.stream``, answered in five deltas; its complete event list."""
    tok = token()
    pieces = ["The ", "quick ", "brown ", "fox ", "jumps."]
    fake_openai.enqueue(fo.chunks(pieces), match=tok)
    events = collect(llm_admin.sessions.stream(agent_id, input=f"tell me {tok}"))
    sid = check_run_stream(events)
    return {"id": sid, "events": events, "text": "".join(pieces), "tok": tok}


# ---------------------------------------------------------------------------
# S2 stream create
# ---------------------------------------------------------------------------


def test_s2_stream_yields_start_deltas_finish(llm_admin: Gumloop, streamed: dict[str, Any]) -> None:
    events, sid = streamed["events"], streamed["id"]
    start, finish = events[0], events[-1]
    assert extra(start, "state") in ("processing", "queued"), start
    assert text_of(events) == streamed["text"], "the deltas concatenate to the final text"
    assert finish.finish_reason == "stop" and extra(finish, "state") == "completed", finish
    assert isinstance(extra(finish, "usage"), dict), f"finish carries usage: {finish}"
    types = [e.type for e in events]
    assert "text-start" in types and "text-end" in types, types
    assert types.index("text-start") < types.index("text-delta") < types.index("text-end"), types
    steps = [e for e in events if e.type == "finish-step"]
    assert "start-step" in types and steps, f"start-step/finish-step around the model call: {types}"
    usage = extra(steps[0], "usage")
    assert isinstance(usage, dict) and (usage.get("input_tokens"), usage.get("output_tokens")) == (10, 5), steps[0]
    # The stream and the stored transcript agree.
    s = llm_admin.sessions.retrieve(sid).session
    assert s.state == "completed" and assistant_texts(s) == [streamed["text"]], s.messages
    assert [m.content for m in s.messages if m.role == "user"] == [f"tell me {streamed['tok']}"]


def test_s2_create_with_stream_true(llm_admin: Gumloop, fake_openai: FakeOpenAI, agent_id: str) -> None:
    tok = token()
    fake_openai.enqueue(fo.chunks(["via ", "create"]), match=tok)
    events = collect(llm_admin.sessions.create(agent_id, input=f"create stream {tok}", name="Streamed", stream=True))
    sid = check_run_stream(events)
    assert text_of(events) == "via create"
    s = llm_admin.sessions.retrieve(sid).session
    assert s.name == "Streamed" and s.state == "completed" and assistant_texts(s) == ["via create"]


def test_s2_errors_before_the_stream_are_json(llm_admin: Gumloop, agent_id: str, llm_other_tenant: Principal) -> None:
    # S2 requires input.
    expect_api_error(lambda: collect(llm_admin.sessions.stream(agent_id)), status=400, code="invalid_input")
    expect_api_error(lambda: collect(llm_admin.sessions.stream(agent_id, input="   ")), status=400, code="invalid_input")
    expect_api_error(
        lambda: collect(llm_admin.sessions.stream(agent_id, input="x", name="  ")), status=400, code="invalid_name"
    )
    other_agent = new_session_agent(llm_other_tenant.client)
    for aid in ("agt_AAAAAAAAAAAAAAAAAAAAAA", other_agent):
        expect_api_error(lambda: collect(llm_admin.sessions.stream(aid, input="x")), status=404, code="agent_not_found")


def test_5_2_repeated_idempotency_key_on_a_stream_is_409(llm_admin: Gumloop, agent_id: str) -> None:
    """§5.2: SSE responses are not stored; a repeated S2 key → 409 idempotency_key_reused."""
    key = f"stream-{token()}"
    body = {"input": f"keyed stream {token()}"}
    first = collect(llm_admin.sessions.create(agent_id, body, stream=True, extra_headers={"Idempotency-Key": key}))
    check_run_stream(first)
    expect_api_error(
        lambda: collect(llm_admin.sessions.create(agent_id, body, stream=True, extra_headers={"Idempotency-Key": key})),
        status=409, code="idempotency_key_reused",
    )


# ---------------------------------------------------------------------------
# S8 stream a message
# ---------------------------------------------------------------------------


def test_s8_stream_message_continues_cursors(llm_admin: Gumloop, fake_openai: FakeOpenAI, agent_id: str) -> None:
    tok = token()
    fake_openai.enqueue(fo.chunks(["one"]), match=f"r1 {tok}")
    fake_openai.enqueue(fo.chunks(["two", " too"]), match=f"r2 {tok}")
    fake_openai.enqueue(fo.chunks(["three"]), match=f"r3 {tok}")
    run1 = collect(llm_admin.sessions.stream(agent_id, input=f"r1 {tok}"))
    sid = check_run_stream(run1)
    run2 = collect(llm_admin.sessions.stream_message(sid, input=f"r2 {tok}"))
    check_run_stream(run2, sid)
    assert text_of(run2) == "two too"
    run3 = collect(llm_admin.sessions.send(sid, input=f"r3 {tok}", stream=True))
    check_run_stream(run3, sid)
    assert text_of(run3) == "three"
    seqs = [seq_of(e, sid) for e in run1 + run2 + run3]
    assert all(a < b for a, b in zip(seqs, seqs[1:])), f"seq strictly increases across all runs of a session: {seqs}"
    s = llm_admin.sessions.retrieve(sid).session
    assert assistant_texts(s) == ["one", "two too", "three"]


def test_s8_on_idle_session(llm_admin: Gumloop, fake_openai: FakeOpenAI, agent_id: str) -> None:
    sid = llm_admin.sessions.create(agent_id).session.id
    tok = token()
    events = collect(llm_admin.sessions.stream_message(sid, input=f"first words {tok}"))
    check_run_stream(events, sid)
    assert text_of(events) == f"ok: first words {tok}"
    assert seq_of(events[0], sid) == 1, "a never-streamed session starts at seq 1"


def test_s8_while_processing_is_409_json(llm_admin: Gumloop, fake_openai: FakeOpenAI) -> None:
    aid = new_session_agent(llm_admin)
    tok = token()
    fake_openai.enqueue(fo.text("slow", delay=1.5), match=tok)
    sid = llm_admin.sessions.create(aid, input=f"busy {tok}").session.id
    expect_api_error(
        lambda: collect(llm_admin.sessions.stream_message(sid, input="now")),
        status=409, code="interaction_not_in_terminal_state",
    )
    assert wait_session(llm_admin, sid).state == "completed"


def test_stream_error_event_on_failure(llm_admin: Gumloop, fake_openai: FakeOpenAI, agent_id: str) -> None:
    tok = token()
    fake_openai.enqueue(fo.error(400, {"error": {"message": "bad request to provider", "type": "invalid_request_error"}}), match=tok)
    events = collect(llm_admin.sessions.stream(agent_id, input=f"fail {tok}"))
    sid = check_run_stream(events, reason="error")
    errors = [e for e in events if e.type == "error"]
    assert len(errors) == 1 and events[-2].type == "error", [e.type for e in events]
    err = errors[0]
    assert err.error_details is not None and err.error_details.get("code") == "provider_error", err
    assert isinstance(err.error, str) and err.error, "the SDK exposes error.message as .error"
    assert err.error_message and err.error_message.startswith("ProviderError: "), err
    assert FAKE_OPENAI_KEY not in json.dumps(err.model_dump()), "no credentials in errors"
    assert extra(events[-1], "state") == "failed"
    assert llm_admin.sessions.retrieve(sid).session.state == "failed"


# ---------------------------------------------------------------------------
# S5 resume
# ---------------------------------------------------------------------------


def test_s5_resume_from_mid_stream_cursor(llm_admin: Gumloop, streamed: dict[str, Any]) -> None:
    events, sid = streamed["events"], streamed["id"]
    deltas = [i for i, e in enumerate(events) if e.type == "text-delta"]
    assert len(deltas) >= 3, [e.type for e in events]
    k = deltas[1]
    replay = collect(llm_admin.sessions.resume_stream(sid, last_cursor=events[k].stream_cursor))
    assert [key(e) for e in replay] == [key(e) for e in events[k + 1:]], "exactly the later events, in order"
    assert text_of(replay) == "".join(extra(e, "delta") for e in events[k + 1:] if e.type == "text-delta")


def test_s5_resume_from_zero_replays_everything(llm_admin: Gumloop, streamed: dict[str, Any]) -> None:
    events, sid = streamed["events"], streamed["id"]
    replay = collect(llm_admin.sessions.resume_stream(sid, last_cursor=f"{sid}:0"))
    assert [key(e) for e in replay] == [key(e) for e in events]
    assert [e.model_dump() for e in replay] == [e.model_dump() for e in events], "replayed events are identical"


def test_s5_not_resumable_cursors(
    llm_admin: Gumloop, streamed: dict[str, Any], agent_id: str, llm_other_tenant: Principal
) -> None:
    sid = streamed["id"]
    last_cursor = streamed["events"][-1].stream_cursor
    last_seq = cursor_seq(last_cursor, sid)
    other_sid = llm_admin.sessions.create(agent_id).session.id
    foreign_agent = new_session_agent(llm_other_tenant.client)
    foreign_sid = llm_other_tenant.client.sessions.create(foreign_agent).session.id
    for bad in (
        "garbage",
        f"{sid}:abc",
        f"{sid}:",
        f"{sid}:-1",
        f"{other_sid}:1",
        f"{foreign_sid}:1",
        f"{sid}:{last_seq + 1000}",
    ):
        events = collect(llm_admin.sessions.resume_stream(sid, last_cursor=bad))
        assert len(events) == 1, f"{bad!r}: exactly one synthetic finish, got {[e.type for e in events]}"
        ev = events[0]
        assert (ev.type, ev.final, ev.finish_reason) == ("finish", True, "not_resumable"), f"{bad!r}: {ev}"
        assert ev.stream_cursor == last_cursor, f"synthetic events carry the last assigned cursor: {ev}"


def test_s5_other_tenants_session_is_404(llm_other_tenant: Principal, streamed: dict[str, Any]) -> None:
    sid = streamed["id"]
    expect_api_error(
        lambda: collect(llm_other_tenant.client.sessions.resume_stream(sid, last_cursor=f"{sid}:0")),
        status=404, code="session_not_found",
    )


def test_s5_after_finish_is_a_synthetic_finish(llm_admin: Gumloop, streamed: dict[str, Any], fake_openai: FakeOpenAI, agent_id: str) -> None:
    sid = streamed["id"]
    last = streamed["events"][-1]
    events = collect(llm_admin.sessions.resume_stream(sid, last_cursor=last.stream_cursor))
    assert len(events) == 1, [e.type for e in events]
    ev = events[0]
    assert (ev.type, ev.final, ev.finish_reason) == ("finish", True, "stop"), ev
    assert extra(ev, "state") == "completed" and ev.stream_cursor == last.stream_cursor, ev

    # A failed run repeats "error".
    tok = token()
    fake_openai.enqueue(fo.error(400), match=tok)
    failed = collect(llm_admin.sessions.stream(agent_id, input=f"fail {tok}"))
    fsid = check_run_stream(failed, reason="error")
    again = collect(llm_admin.sessions.resume_stream(fsid, last_cursor=failed[-1].stream_cursor))
    assert [(e.type, e.finish_reason, extra(e, "state")) for e in again] == [("finish", "error", "failed")], again


def test_s5_never_run_session_is_idle(llm_admin: Gumloop, agent_id: str) -> None:
    sid = llm_admin.sessions.create(agent_id).session.id
    events = collect(llm_admin.sessions.resume_stream(sid, last_cursor=f"{sid}:0"))
    assert len(events) == 1, [e.type for e in events]
    ev = events[0]
    assert (ev.type, ev.final, ev.finish_reason) == ("finish", True, "idle"), ev
    assert ev.stream_cursor == f"{sid}:0", "no event assigned yet → <session_id>:0"


def test_s5_without_last_cursor_replays_latest_run(
    llm_raw: httpx.Client, llm_admin: Gumloop, fake_openai: FakeOpenAI, agent_id: str
) -> None:
    tok = token()
    fake_openai.enqueue(fo.chunks(["first run"]), match=f"a {tok}")
    fake_openai.enqueue(fo.chunks(["second ", "run"]), match=f"b {tok}")
    run1 = collect(llm_admin.sessions.stream(agent_id, input=f"a {tok}"))
    sid = check_run_stream(run1)
    run2 = collect(llm_admin.sessions.stream_message(sid, input=f"b {tok}"))
    check_run_stream(run2, sid)
    resp, body = raw_stream(llm_raw, "GET", f"/sessions/{sid}", params={"stream": "true"})
    assert resp.status_code == 200, body[:2000]
    replay = parse_sse(body)
    assert [(d["type"], d["stream_cursor"]) for _, d in replay] == [(e.type, e.stream_cursor) for e in run2], (
        "without last_cursor: the latest run from its start"
    )


def test_s5_live_resume_and_concurrent_streams(llm_admin: Gumloop, fake_openai: FakeOpenAI) -> None:
    aid = new_session_agent(llm_admin)
    tok = token()
    fake_openai.enqueue(fo.chunks(["live ", "and ", "well"], delay=1.5), match=tok)
    sid = llm_admin.sessions.create(aid, input=f"live {tok}").session.id
    a = Background(llm_admin.sessions.resume_stream(sid, last_cursor=f"{sid}:0"))
    b = Background(llm_admin.sessions.resume_stream(sid, last_cursor=f"{sid}:0"))
    first, second = a.join(), b.join()
    check_run_stream(first, sid)
    assert text_of(first) == "live and well"
    assert [key(e) for e in first] == [key(e) for e in second], "concurrent streams receive the same events"


def test_disconnect_does_not_cancel_the_run(llm_admin: Gumloop, fake_openai: FakeOpenAI) -> None:
    aid = new_session_agent(llm_admin)
    tok = token()
    fake_openai.enqueue(fo.chunks(["still ", "here"], delay=1.5), match=tok)
    it = llm_admin.sessions.stream(aid, input=f"leave early {tok}")
    first = next(it)
    assert first.type == "start", first
    sid = extra(first, "interaction_id")
    it.close()  # closes the HTTP response mid-stream
    done = wait_session(llm_admin, sid)
    assert done.state == "completed" and assistant_texts(done) == ["still here"], done
    replay = collect(llm_admin.sessions.resume_stream(sid, last_cursor=f"{sid}:0"))
    check_run_stream(replay, sid)
    assert replay[0].stream_cursor == first.stream_cursor and text_of(replay) == "still here"


# ---------------------------------------------------------------------------
# Runs ended by S9 and S16
# ---------------------------------------------------------------------------


def test_s9_cancel_ends_the_stream_with_cancelled(llm_admin: Gumloop, fake_openai: FakeOpenAI) -> None:
    aid = new_session_agent(llm_admin)
    tok = token()
    fake_openai.enqueue(fo.text("never streamed", delay=2.0), match=tok)
    bg = Background(llm_admin.sessions.stream(aid, input=f"cancel stream {tok}"))
    start = bg.wait_for("start")
    sid = extra(start, "interaction_id")
    assert llm_admin.sessions.cancel(sid).session.state == "cancelled"
    events = bg.join(timeout=10)
    check_run_stream(events, sid, reason="cancelled")
    assert extra(events[-1], "state") == "cancelled"
    assert "never streamed" not in text_of(events)


def test_s16_interrupted_stream_finishes_with_interrupted(llm_admin: Gumloop, fake_openai: FakeOpenAI) -> None:
    aid = new_session_agent(llm_admin)
    tok = token()
    fake_openai.enqueue(fo.text("superseded", delay=2.0), match=tok)
    bg = Background(llm_admin.sessions.stream(aid, input=f"interrupt stream {tok}"))
    sid = extra(bg.wait_for("start"), "interaction_id")
    qid = llm_admin.sessions.queue_message(sid, f"jump the line {token()}").queued_message.id
    llm_admin.sessions.send_queued_message(sid, qid)
    events = bg.join(timeout=10)
    check_run_stream(events, sid, reason="interrupted")
    assert "superseded" not in text_of(events)
    assert wait_session(llm_admin, sid).state == "completed"


# ---------------------------------------------------------------------------
# Approvals over streams (S8 with approval_responses, S11 stream_cursor → S5)
# ---------------------------------------------------------------------------


def approval_agent(client: Gumloop) -> str:
    return new_session_agent(client, metadata={"tool_approval": {"default_mode": "all"}})


def test_s8_approval_required_then_stream_the_resumed_run(llm_admin: Gumloop, fake_openai: FakeOpenAI) -> None:
    aid = approval_agent(llm_admin)
    tok = token()
    fake_openai.enqueue(fo.tool_call("current_time", {}), fo.chunks(["It is ", "now."]), match=tok)
    paused = collect(llm_admin.sessions.stream(aid, input=f"time {tok}"))
    sid = check_run_stream(paused, reason="approval_required")
    types = [e.type for e in paused]
    assert extra(paused[-1], "state") == "approval_required", paused[-1]
    starts = [e for e in paused if e.type == "tool-input-start"]
    avail = [e for e in paused if e.type == "tool-input-available"]
    asks = [e for e in paused if e.type == "approval-required"]
    assert starts and avail and len(asks) == 1, types
    call_id = extra(avail[0], "toolCallId")
    assert extra(starts[0], "toolName") == "current_time" and extra(starts[0], "toolCallId") == call_id, starts[0]
    assert extra(avail[0], "toolName") == "current_time" and extra(avail[0], "input") == {}, avail[0]
    assert types.index("approval-required") == len(types) - 2, f"approval-required, then finish: {types}"
    pending = extra(asks[0], "pending_approvals")
    assert isinstance(pending, list) and len(pending) == 1 and pending[0].get("type") == "tool_approval", asks[0]
    assert extra(asks[0], "toolCallId") == call_id, asks[0]
    areq = pending[0]["action_request_id"]

    resumed = collect(
        llm_admin.sessions.stream_message(sid, approval_responses=[{"action_request_id": areq, "action": "accept"}])
    )
    check_run_stream(resumed, sid)
    assert seq_of(resumed[0], sid) > seq_of(paused[-1], sid)
    outputs = [e for e in resumed if e.type == "tool-output-available"]
    assert len(outputs) == 1 and extra(outputs[0], "toolCallId") == call_id, [e.type for e in resumed]
    assert text_of(resumed) == "It is now."
    assert llm_admin.sessions.retrieve(sid).session.state == "completed"


def test_s11_stream_cursor_resumes_with_s5(llm_admin: Gumloop, fake_openai: FakeOpenAI) -> None:
    aid = approval_agent(llm_admin)
    tok = token()
    fake_openai.enqueue(fo.tool_call("current_time", {}), fo.text("Approved and done.", delay=0.5), match=tok)
    paused = collect(llm_admin.sessions.stream(aid, input=f"time {tok}"))
    sid = check_run_stream(paused, reason="approval_required")
    s = llm_admin.sessions.retrieve(sid).session
    areq = (s.pending_approvals or [None])[0]
    assert areq is not None, s
    r = llm_admin.sessions.resolve_approvals(sid, approval_responses=[{"action_request_id": areq.action_request_id, "action": "accept"}])
    assert r.stream_cursor is not None, "S11 returns the stream_cursor to resume from"
    assert cursor_seq(r.stream_cursor, sid) >= seq_of(paused[-1], sid)
    resumed = collect(llm_admin.sessions.resume_stream(sid, last_cursor=r.stream_cursor))
    check_run_stream(resumed, sid)
    assert text_of(resumed) == "Approved and done."


# ---------------------------------------------------------------------------
# Wire framing (§12.2)
# ---------------------------------------------------------------------------


def test_sse_framing_raw(llm_raw: httpx.Client, llm_server: OpenloopServer, fake_openai: FakeOpenAI, agent_id: str) -> None:
    tok = token()
    fake_openai.enqueue(fo.chunks(["raw ", "frames ", "\"quoted\"\n"]), match=tok)
    resp, body = raw_stream(llm_raw, "POST", f"/agents/{agent_id}/sessions", json={"input": f"raw {tok}", "stream": True})
    assert resp.status_code == 200, body[:2000]
    ctype = resp.headers.get("content-type", "")
    assert ctype.replace(" ", "").lower() == "text/event-stream;charset=utf-8", ctype
    cache = {p.strip() for p in resp.headers.get("cache-control", "").lower().split(",")}
    assert {"no-cache", "no-transform"} <= cache, resp.headers.get("cache-control")
    assert resp.headers.get("x-accel-buffering") == "no", dict(resp.headers)
    assert resp.headers.get("x-request-id"), dict(resp.headers)
    assert_ratelimit_headers(resp, llm_server.rate_limit, llm_server.rate_window)
    events = parse_sse(body)
    names = [n for n, _ in events]
    assert names[0] == "start" and names[-1] == "finish", names
    assert events[-1][1].get("final") is True and events[-1][1].get("finishReason") == "stop", events[-1]
    assert all("final" not in d for _, d in events[:-1]), "final only on finish"
    sid = events[0][1]["interaction_id"]
    seqs = [cursor_seq(d["stream_cursor"], sid) for _, d in events]
    assert all(a < b for a, b in zip(seqs, seqs[1:])), seqs
    assert "".join(d["delta"] for n, d in events if n == "text-delta") == "raw frames \"quoted\"\n"


def test_sse_stream_is_selected_by_body_not_accept(llm_raw: httpx.Client, agent_id: str) -> None:
    """§12.1: SSE is selected by body ``stream: true``/query ``stream=true``, never by Accept alone."""
    resp = llm_raw.post(f"/agents/{agent_id}/sessions", json={}, headers={"Accept": "text/event-stream"})
    assert resp.status_code == 201 and "json" in resp.headers.get("content-type", ""), resp.text[:500]
    sid = resp.json()["session"]["id"]
    got = llm_raw.get(f"/sessions/{sid}", headers={"Accept": "text/event-stream"})
    assert got.status_code == 200 and "json" in got.headers.get("content-type", ""), got.text[:500]


# ---------------------------------------------------------------------------
# Resumption survives a restart (§12.4 Persistence)
# ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def restart_server(start_server: Callable[..., OpenloopServer], fake_openai: FakeOpenAI) -> OpenloopServer:
    return start_server(
        rate_limit=100_000,
        rate_window=60,
        extra_env={
            "OPENAI_BASE_URL": fake_openai.base_url,
            "OPENAI_API_KEY": FAKE_OPENAI_KEY,
            "OPENLOOP_RATE_LIMIT_UNAUTH_PER_MIN": "100000",
        },
    )


def test_s5_resume_after_restart(restart_server: OpenloopServer, fake_openai: FakeOpenAI) -> None:
    srv = restart_server
    tok = token()
    fake_openai.enqueue(fo.chunks(["per", "sis", "ted"]), match=tok)
    client = srv.sdk(srv.admin_key, user_id=srv.admin_user_id)
    try:
        aid = new_session_agent(client)
        events = collect(client.sessions.stream(aid, input=f"remember {tok}"))
        sid = check_run_stream(events)
    finally:
        client.close()

    srv.stop()
    srv.start()  # same data dir, new port

    client = srv.sdk(srv.admin_key, user_id=srv.admin_user_id)
    try:
        replay = collect(client.sessions.resume_stream(sid, last_cursor=f"{sid}:0"))
        assert [key(e) for e in replay] == [key(e) for e in events], "stored events replay after a restart"
        mid = collect(client.sessions.resume_stream(sid, last_cursor=events[1].stream_cursor))
        assert [key(e) for e in mid] == [key(e) for e in events[2:]]
        done = collect(client.sessions.resume_stream(sid, last_cursor=events[-1].stream_cursor))
        assert [(e.type, e.finish_reason, e.stream_cursor) for e in done] == [("finish", "stop", events[-1].stream_cursor)]
        s = client.sessions.retrieve(sid).session
        assert s.state == "completed" and assistant_texts(s) == ["persisted"]
    finally:
        client.close()
