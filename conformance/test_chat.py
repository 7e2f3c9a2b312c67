"""C1/C2 ``chat.completions.create`` (unary and ``stream=True``) and M2 ``models.route``.

Against ``llm_server`` (fake OpenAI-compatible provider) through the SDK, which sends C1 to its
stream host (the same ``/api/v1`` here) and reads C2 as ``ChatStreamChunk`` SSE ending with
``data: [DONE]``; the plain ``server`` has no provider configured.
"""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from gumloop import Gumloop
from gumloop.errors import APIStatusError
from gumloop.spec import ChatResult, ChatStreamChunk

import fake_openai as fo
from _support import expect_api_error, token
from fake_openai import FakeOpenAI

WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather of a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}


def user(text: str) -> list[dict[str, Any]]:
    return [{"role": "system", "content": "Be brief."}, {"role": "user", "content": text}]


def test_c1_unary_completion(llm_admin: Gumloop, fake_openai: FakeOpenAI) -> None:
    tok = token()
    fake_openai.enqueue(fo.text("Hello there"), match=tok)
    result = llm_admin.chat.completions.create(model="gpt-4o-mini", messages=user(f"greet {tok}"), temperature=0.2, max_tokens=50)
    assert isinstance(result, ChatResult)
    assert result.object == "chat.completion" and result.id.startswith("chatcmpl-")
    assert result.model == "gpt-4o-mini"
    choice = result.choices[0]
    assert (choice.index, choice.message.role, choice.message.content, choice.finish_reason) == (0, "assistant", "Hello there", "stop")
    assert (result.usage.prompt_tokens, result.usage.completion_tokens, result.usage.total_tokens) == (10, 5, 15)
    # The provider got the conversation and the sampling options.
    sent = fake_openai.requests(match=tok)[-1].body
    assert sent["model"] == "gpt-4o-mini"
    assert [m["role"] for m in sent["messages"]] == ["system", "user"]
    assert sent["temperature"] == 0.2 and sent["max_tokens"] == 50


def test_c2_streamed_completion(llm_admin: Gumloop, fake_openai: FakeOpenAI) -> None:
    tok = token()
    fake_openai.enqueue(fo.chunks(["Hel", "lo ", "world"]), match=tok)
    chunks = list(llm_admin.chat.completions.create(model="gpt-4o-mini", messages=user(f"stream {tok}"), stream=True))
    assert chunks and all(isinstance(c, ChatStreamChunk) for c in chunks)
    assert len({c.id for c in chunks}) == 1 and chunks[0].id.startswith("chatcmpl-")
    assert all(c.object == "chat.completion.chunk" and c.model == "gpt-4o-mini" for c in chunks)
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "Hello world"
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finishes == ["stop"]
    # The last chunk carries the usage, after the finish.
    last = chunks[-1]
    assert last.choices == [] and last.usage is not None
    assert (last.usage.prompt_tokens, last.usage.completion_tokens, last.usage.total_tokens) == (10, 5, 15)
    assert last.usage.cost == pytest.approx(0.015)


def test_c2_wire_framing_ends_with_done(llm_raw: httpx.Client, fake_openai: FakeOpenAI) -> None:
    tok = token()
    fake_openai.enqueue(fo.text("framed"), match=tok)
    body = {"model": "gpt-4o-mini", "messages": user(f"frame {tok}"), "stream": True}
    with llm_raw.stream("POST", "/chat/completions", json=body) as resp:
        assert resp.status_code == 200
        assert resp.headers["content-type"].startswith("text/event-stream")
        data = [line[len("data: "):] for line in resp.iter_lines() if line.startswith("data: ")]
    assert data[-1] == "[DONE]"
    frames = [json.loads(d) for d in data[:-1]]
    assert all(f["object"] == "chat.completion.chunk" for f in frames)
    assert "".join(f["choices"][0]["delta"].get("content") or "" for f in frames if f["choices"]) == "framed"


def test_c1_tool_call_round_trip(llm_admin: Gumloop, fake_openai: FakeOpenAI) -> None:
    tok = token()
    fake_openai.enqueue(fo.tool_call("get_weather", {"city": "Paris"}, id="call_weather_1"), fo.text("Sunny in Paris"), match=tok)
    messages = user(f"weather in Paris? {tok}")
    first = llm_admin.chat.completions.create(model="gpt-4o-mini", messages=messages, tools=[WEATHER_TOOL])
    choice = first.choices[0]
    assert choice.finish_reason == "tool_calls"
    [call] = choice.message.tool_calls
    assert (call.id, call.type, call.function.name) == ("call_weather_1", "function", "get_weather")
    assert json.loads(call.function.arguments) == {"city": "Paris"}
    sent = fake_openai.requests(match=tok)[-1].body
    assert [t["function"]["name"] for t in sent["tools"]] == ["get_weather"]
    # Send the tool's result back.
    messages = messages + [
        {"role": "assistant", "content": None, "tool_calls": [call.model_dump()]},
        {"role": "tool", "tool_call_id": call.id, "content": "sunny, 21°C"},
    ]
    second = llm_admin.chat.completions.create(model="gpt-4o-mini", messages=messages, tools=[WEATHER_TOOL])
    assert (second.choices[0].message.content, second.choices[0].finish_reason) == ("Sunny in Paris", "stop")
    sent = fake_openai.requests(match=tok)[-1].body
    assistant = next(m for m in sent["messages"] if m["role"] == "assistant")
    assert assistant["tool_calls"][0]["id"] == "call_weather_1"
    assert json.loads(assistant["tool_calls"][0]["function"]["arguments"]) == {"city": "Paris"}
    tool = next(m for m in sent["messages"] if m["role"] == "tool")
    assert (tool["tool_call_id"], fo.message_text(tool)) == ("call_weather_1", "sunny, 21°C")


def test_c2_streamed_tool_call(llm_admin: Gumloop, fake_openai: FakeOpenAI) -> None:
    tok = token()
    fake_openai.enqueue(fo.tool_call("get_weather", {"city": "Lisbon"}, id="call_stream_1", arg_chunks=3), match=tok)
    chunks = list(llm_admin.chat.completions.create(model="gpt-4o-mini", messages=user(f"weather {tok}"), tools=[WEATHER_TOOL], stream=True))
    deltas = [tc for c in chunks if c.choices for tc in (c.choices[0].delta.tool_calls or [])]
    assert deltas[0].index == 0 and deltas[0].id == "call_stream_1" and deltas[0].function.name == "get_weather"
    assert all(d.index == 0 for d in deltas)
    assert json.loads("".join(d.function.arguments or "" for d in deltas)) == {"city": "Lisbon"}
    assert [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason] == ["tool_calls"]
    assert chunks[-1].usage is not None and chunks[-1].usage.total_tokens == 15


def test_c1_auto_model(llm_admin: Gumloop, fake_openai: FakeOpenAI) -> None:
    tok = token()
    result = llm_admin.chat.completions.create(model="auto", messages=user(f"auto {tok}"))
    assert result.model == "openai/gpt-4o-mini"
    assert result.choices[0].message.content == f"ok: auto {tok}"
    assert fake_openai.requests(match=tok)[-1].body["model"] == "gpt-4o-mini"


def test_c1_invalid_bodies_name_the_field(llm_raw: httpx.Client, llm_admin: Gumloop) -> None:
    cases = [
        ({"model": "gpt-4o-mini"}, "messages"),
        ({"model": "gpt-4o-mini", "messages": []}, "messages"),
        ({"model": "gpt-4o-mini", "messages": [{"role": "robot", "content": "x"}]}, "messages[0].role"),
        ({"model": "gpt-4o-mini", "messages": [{"role": "tool", "content": "x"}]}, "messages[0].tool_call_id"),
        ({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]}]},
         "messages[0].content[0].type"),
        ({"model": "gpt-4o-mini", "messages": user("x"), "temperature": "hot"}, "temperature"),
        ({"model": "gpt-4o-mini", "messages": user("x"), "n": 2}, "n"),
        ({"model": "gpt-4o-mini", "messages": user("x"), "tool_choice": "required", "tools": [WEATHER_TOOL]}, "tool_choice"),
    ]
    for body, param in cases:
        resp = llm_raw.post("/chat/completions", json=body)
        assert resp.status_code == 400, (body, resp.text)
        err = resp.json()["error"]
        assert (err["code"], err["param"], err["type"]) == ("invalid_request", param, "invalid_request_error"), (body, err)
    # Options the SDK sends but Openloop cannot honour.
    expect_api_error(llm_admin.chat.completions.create, model="gpt-4o-mini", messages=user("x"),
                     response_format={"type": "json_object"}, status=400, code="invalid_request", param="response_format")
    expect_api_error(llm_admin.chat.completions.create, model="gpt-4o-mini", messages=user("x"),
                     modalities=["text", "image"], status=400, code="invalid_request", param="modalities[1]")


def test_c1_unknown_model(llm_admin: Gumloop) -> None:
    expect_api_error(llm_admin.chat.completions.create, model="no-such-model-zz", messages=user("x"), status=400, code="invalid_model", param="model")
    # A stream is lazy: the error comes when it is read.
    expect_api_error(lambda: list(llm_admin.chat.completions.create(model="no-such-model-zz", messages=user("x"), stream=True)),
                     status=400, code="invalid_model", param="model")


def test_c1_provider_failure_is_502(llm_admin: Gumloop, fake_openai: FakeOpenAI) -> None:
    tok = token()
    fake_openai.enqueue(fo.error(400, {"error": {"message": "fake refuses", "type": "invalid_request_error"}}), match=tok)
    with pytest.raises(APIStatusError) as info:
        llm_admin.chat.completions.create(model="gpt-4o-mini", messages=user(f"fail {tok}"))
    assert info.value.status_code == 502
    assert info.value.code == "provider_error"
    assert "fake refuses" in str(info.value)
    assert fo.FAKE_OPENAI_KEY not in json.dumps(info.value.body)


def test_c1_without_a_provider(admin: Gumloop) -> None:
    for model in ("gpt-4o-mini", "auto"):
        exc = expect_api_error(admin.chat.completions.create, model=model, messages=user("x"), status=400, code="provider_not_configured", param="model")
        assert "provider" in str(exc).lower()


def test_m2_route(llm_admin: Gumloop) -> None:
    r = llm_admin.models.route(input="Summarise this report", models=["no-such-model-zz", "gpt-4o-mini", "anthropic/claude-3-5-haiku-latest"])
    assert r.router == "openloop"
    assert (r.route.model, r.route.fail_closed, r.route.fallback_models) == ("gpt-4o-mini", False, [])
    assert [(c.requested_model, c.status) for c in r.candidates] == [
        ("no-such-model-zz", "unknown"), ("gpt-4o-mini", "available"), ("anthropic/claude-3-5-haiku-latest", "unavailable"),
    ]
    default = llm_admin.models.route(message="Anything")
    assert (default.route.model, default.route.lane, default.route.fail_closed) == ("openai/gpt-4o-mini", "default", False)
    assert [c.requested_model for c in default.candidates] == ["auto"]


def test_m2_without_a_provider_fails_closed(admin: Gumloop) -> None:
    r = admin.models.route(input="x", models=["gpt-4o-mini"])
    assert (r.route.model, r.route.fail_closed) == ("gpt-4o-mini", True)
    assert r.candidates[0].status == "unavailable"


def test_m2_closed_body(llm_admin: Gumloop, llm_raw: httpx.Client) -> None:
    expect_api_error(llm_admin.models.route, input="x", bogus_field=1, status=400, code="invalid_request", param="bogus_field")
    resp = llm_raw.post("/models/route", json={"models": ["gpt-4o-mini"]})
    assert resp.status_code == 400 and resp.json()["error"]["param"] == "input", resp.text
    resp = llm_raw.post("/models/route", json={"input": 5})
    assert resp.status_code == 400 and resp.json()["error"]["param"] == "input", resp.text
