"""Self-tests of the fake OpenAI-compatible provider (``fake_openai.py``), so a failure in
test_interactions.py can be blamed on the server rather than on the fake. No Openloop involved."""

from __future__ import annotations

import json
import time
from typing import Any, Iterator

import httpx
import pytest

import fake_openai as fo
from fake_openai import FakeOpenAI


@pytest.fixture()
def fake() -> Iterator[FakeOpenAI]:
    with FakeOpenAI() as f:
        yield f


def chat(fake: FakeOpenAI, text: str, **extra: Any) -> httpx.Response:
    body = {"model": "gpt-4o-mini", "messages": [{"role": "system", "content": "s"}, {"role": "user", "content": text}], **extra}
    return httpx.post(f"{fake.base_url}/chat/completions", json=body, headers={"Authorization": "Bearer sk-x"}, timeout=10)


def sse_events(resp: httpx.Response) -> list[Any]:
    assert resp.headers["content-type"].startswith("text/event-stream")
    events: list[Any] = []
    for block in resp.text.split("\n\n"):
        if not block.strip():
            continue
        assert block.startswith("data: "), block
        data = block[len("data: "):]
        events.append(data if data == "[DONE]" else json.loads(data))
    return events


def test_models_and_unknown_route(fake: FakeOpenAI) -> None:
    resp = httpx.get(f"{fake.base_url}/models")
    assert resp.status_code == 200
    assert resp.json()["object"] == "list" and resp.json()["data"][0] == {
        "id": "fake-model", "object": "model", "created": 0, "owned_by": "fake"}
    assert httpx.get(f"{fake.url}/nope").status_code == 404


def test_default_echo_non_stream_and_recording(fake: FakeOpenAI) -> None:
    resp = chat(fake, "hello")
    assert resp.status_code == 200
    body = resp.json()
    assert body["object"] == "chat.completion"
    assert body["choices"][0]["message"] == {"role": "assistant", "content": "ok: hello"}
    assert body["choices"][0]["finish_reason"] == "stop"
    assert body["usage"]["prompt_tokens"] == 10 and body["usage"]["completion_tokens"] == 5
    (req,) = fake.requests()
    assert req.headers["authorization"] == "Bearer sk-x" and req.last_user_text == "hello"


def test_stream_text_chunks_with_and_without_usage(fake: FakeOpenAI) -> None:
    fake.enqueue(fo.chunks(["a", "b", "c"]), fo.text("x"))
    events = sse_events(chat(fake, "q", stream=True, stream_options={"include_usage": True}))
    assert events[-1] == "[DONE]"
    assert "".join(e["choices"][0]["delta"].get("content") or "" for e in events[:-1] if e["choices"]) == "abc"
    assert events[-2]["choices"] == [] and events[-2]["usage"]["prompt_tokens"] == 10
    assert events[-3]["choices"][0]["finish_reason"] == "stop"
    events = sse_events(chat(fake, "q", stream=True))
    assert all("usage" not in e for e in events[:-1]), events


def test_stream_tool_calls_arguments_in_pieces(fake: FakeOpenAI) -> None:
    fake.enqueue(fo.tool_calls([fo.ToolCall("f", {"a": 1, "b": "two"}, id="call_1", arg_chunks=3),
                                fo.ToolCall("g", {}, id="call_2")], text="thinking"))
    events = sse_events(chat(fake, "q", stream=True))
    calls: dict[int, dict[str, str]] = {}
    for e in events[:-1]:
        for tc in e["choices"][0]["delta"].get("tool_calls", []):
            c = calls.setdefault(tc["index"], {"id": "", "name": "", "args": ""})
            c["id"] = tc.get("id", c["id"])
            c["name"] = tc.get("function", {}).get("name", c["name"])
            c["args"] += tc.get("function", {}).get("arguments", "")
    assert calls == {0: {"id": "call_1", "name": "f", "args": json.dumps({"a": 1, "b": "two"})},
                     1: {"id": "call_2", "name": "g", "args": "{}"}}
    assert events[-2]["choices"][0]["finish_reason"] == "tool_calls"
    # Non-stream form of the same reply.
    fake.enqueue(fo.tool_call("f", {"a": 1}, id="call_3", text="t"))
    msg = chat(fake, "q").json()["choices"][0]["message"]
    assert msg["content"] == "t"
    assert msg["tool_calls"] == [{"id": "call_3", "type": "function", "function": {"name": "f", "arguments": '{"a": 1}'}}]


def test_errors_delay_and_match_queues(fake: FakeOpenAI) -> None:
    fake.enqueue(fo.text("for tok"), match="tok")
    fake.enqueue(fo.error(503, {"error": {"message": "down"}}, headers={"retry-after": "0"}), fo.text("fifo"))
    resp = chat(fake, "plain")
    assert resp.status_code == 503 and resp.json() == {"error": {"message": "down"}}
    assert resp.headers["retry-after"] == "0"
    assert chat(fake, "has tok inside").json()["choices"][0]["message"]["content"] == "for tok"
    assert chat(fake, "plain").json()["choices"][0]["message"]["content"] == "fifo"
    assert chat(fake, "tok again").json()["choices"][0]["message"]["content"] == "ok: tok again"
    fake.enqueue(fo.text("late", delay=0.3))
    t0 = time.monotonic()
    assert chat(fake, "x").json()["choices"][0]["message"]["content"] == "late"
    assert time.monotonic() - t0 >= 0.3
    assert len(fake.requests(match="tok")) == 2 and fake.pending() == 0
