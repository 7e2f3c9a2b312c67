"""A scriptable fake of an OpenAI-compatible Chat Completions provider, over real HTTP.

Standard library only (``http.server``). Endpoints:

- ``POST /v1/chat/completions``: ``"stream": true`` → ``text/event-stream`` chunks in OpenAI's
  format ending with ``data: [DONE]`` (usage in a final ``choices: []`` chunk when the request
  has ``stream_options.include_usage``); otherwise one ``chat.completion`` JSON object.
- ``GET /v1/models``: ``{"object": "list", "data": [{"id": "fake-model", "object": "model"}]}``.

Replies are scripted (:class:`Reply`) in FIFO queues. ``enqueue(..., match="tok")`` puts replies
in a queue used only for requests whose *last user message* contains ``tok`` (so a run left
over from another test cannot consume them); ``enqueue(...)`` without ``match`` feeds the
global FIFO. With nothing scripted the reply echoes ``"ok: <last user message text>"``.
Every request is recorded (:meth:`FakeOpenAI.requests`).
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

# The OPENAI_API_KEY servers in the suite are given for the fake; it must never leak into responses.
FAKE_OPENAI_KEY = "sk-fake"
USAGE = {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15}
MODELS = {"object": "list", "data": [{"id": "fake-model", "object": "model", "created": 0, "owned_by": "fake"}]}


@dataclass
class ToolCall:
    name: str
    arguments: Any = field(default_factory=dict)  # dict → JSON-encoded; str → sent verbatim
    id: str = ""
    arg_chunks: int = 1  # split the JSON arguments into this many stream deltas

    def args_json(self) -> str:
        return self.arguments if isinstance(self.arguments, str) else json.dumps(self.arguments)


@dataclass
class Reply:
    """One scripted answer. ``status`` ≥ 400 makes it an HTTP error with ``body``."""

    text: str | None = None
    chunks: list[str] | None = None  # text split into these stream deltas (joined for non-stream)
    tool_calls: list[ToolCall] = field(default_factory=list)
    status: int = 200
    body: Any = None  # error body: dict/list → JSON, str → sent as is
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0  # seconds before the first byte (status line) is sent
    finish_reason: str | None = None
    chunk_delay: float = 0.0  # seconds between streamed text deltas

    @property
    def full_text(self) -> str | None:
        if self.chunks is not None:
            return "".join(self.chunks)
        return self.text

    def text_deltas(self) -> list[str]:
        if self.chunks is not None:
            return list(self.chunks)
        return [self.text] if self.text else []


# -- constructors ---------------------------------------------------------------------------


def text(s: str, *, delay: float = 0.0) -> Reply:
    return Reply(text=s, delay=delay)


def chunks(parts: list[str], *, delay: float = 0.0, chunk_delay: float = 0.0) -> Reply:
    return Reply(chunks=list(parts), delay=delay, chunk_delay=chunk_delay)


def tool_call(name: str, arguments: Any = None, *, id: str = "", text: str | None = None, arg_chunks: int = 1,
              delay: float = 0.0) -> Reply:
    return Reply(text=text, tool_calls=[ToolCall(name, {} if arguments is None else arguments, id, arg_chunks)],
                 delay=delay)


def tool_calls(calls: list[ToolCall], *, text: str | None = None, delay: float = 0.0) -> Reply:
    return Reply(text=text, tool_calls=list(calls), delay=delay)


def error(status: int, body: Any = None, *, headers: dict[str, str] | None = None, delay: float = 0.0) -> Reply:
    if body is None:
        body = {"error": {"message": f"fake provider error {status}", "type": "server_error", "code": None}}
    return Reply(status=status, body=body, headers=dict(headers or {}), delay=delay)


# -- request helpers ------------------------------------------------------------------------


def message_text(msg: dict[str, Any]) -> str:
    content = msg.get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # content parts
        return "".join(p.get("text", "") for p in content if isinstance(p, dict))
    return ""


def last_user_text(body: dict[str, Any]) -> str:
    for msg in reversed(body.get("messages") or []):
        if isinstance(msg, dict) and msg.get("role") == "user":
            return message_text(msg)
    return ""


@dataclass
class RecordedRequest:
    method: str
    path: str
    headers: dict[str, str]  # names lower-cased
    body: Any

    @property
    def last_user_text(self) -> str:
        return last_user_text(self.body) if isinstance(self.body, dict) else ""


class FakeOpenAI:
    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self._lock = threading.Lock()
        self._fifo: list[Reply] = []
        self._matched: list[tuple[str, list[Reply]]] = []
        self._requests: list[RecordedRequest] = []
        fake = self

        class Handler(_Handler):
            owner = fake

        self.httpd = ThreadingHTTPServer((host, port), Handler)
        self.httpd.daemon_threads = True
        self._thread = threading.Thread(target=self.httpd.serve_forever, name="fake-openai", daemon=True)

    # -- lifecycle --------------------------------------------------------------------------

    def start(self) -> "FakeOpenAI":
        self._thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def __enter__(self) -> "FakeOpenAI":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    @property
    def url(self) -> str:
        host, port = self.httpd.server_address[:2]
        return f"http://{host}:{port}"

    @property
    def base_url(self) -> str:
        """What to put in ``OPENAI_BASE_URL``."""
        return f"{self.url}/v1"

    # -- scripting --------------------------------------------------------------------------

    def enqueue(self, *replies: Reply, match: str | None = None) -> None:
        with self._lock:
            if match is None:
                self._fifo.extend(replies)
                return
            for token, queue in self._matched:
                if token == match:
                    queue.extend(replies)
                    return
            self._matched.append((match, list(replies)))

    def pending(self, match: str | None = None) -> int:
        with self._lock:
            if match is None:
                return len(self._fifo)
            return sum(len(q) for t, q in self._matched if t == match)

    def reset(self) -> None:
        with self._lock:
            self._fifo.clear()
            self._matched.clear()
            self._requests.clear()

    def _next_reply(self, body: dict[str, Any]) -> Reply:
        user = last_user_text(body)
        with self._lock:
            for token, queue in self._matched:
                if queue and token in user:
                    return queue.pop(0)
            if self._fifo:
                return self._fifo.pop(0)
        return Reply(text=f"ok: {user}")

    # -- inspection -------------------------------------------------------------------------

    def requests(self, match: str | None = None, path: str = "/v1/chat/completions") -> list[RecordedRequest]:
        """Recorded requests to ``path``; with ``match``, those whose last user message contains it."""
        with self._lock:
            found = [r for r in self._requests if r.path == path]
        if match is not None:
            found = [r for r in found if match in r.last_user_text]
        return found

    def _record(self, req: RecordedRequest) -> None:
        with self._lock:
            self._requests.append(req)


class _Handler(BaseHTTPRequestHandler):
    owner: FakeOpenAI
    protocol_version = "HTTP/1.1"
    server_version = "FakeOpenAI/1.0"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - silence stderr
        pass

    # -- plumbing ---------------------------------------------------------------------------

    def _read_body(self) -> bytes:
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n else b""

    def _send_json(self, status: int, payload: Any, headers: dict[str, str] | None = None) -> None:
        data = payload.encode("utf-8") if isinstance(payload, str) else json.dumps(payload).encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)
        self.wfile.flush()

    def _chunk(self, data: bytes) -> None:
        self.wfile.write(f"{len(data):x}\r\n".encode("ascii") + data + b"\r\n")
        self.wfile.flush()

    def _event(self, payload: Any) -> None:
        data = payload if isinstance(payload, str) else json.dumps(payload)
        self._chunk(f"data: {data}\n\n".encode("utf-8"))

    # -- routes -----------------------------------------------------------------------------

    def do_GET(self) -> None:  # noqa: N802
        path = self.path.split("?", 1)[0]
        self.owner._record(RecordedRequest("GET", path, {k.lower(): v for k, v in self.headers.items()}, None))
        if path == "/v1/models":
            self._send_json(200, MODELS)
        else:
            self._send_json(404, {"error": {"message": f"no route {path}", "type": "invalid_request_error"}})

    def do_POST(self) -> None:  # noqa: N802
        path = self.path.split("?", 1)[0]
        raw = self._read_body()
        try:
            body: Any = json.loads(raw.decode("utf-8")) if raw else {}
        except ValueError:
            body = raw.decode("utf-8", "replace")
        self.owner._record(RecordedRequest("POST", path, {k.lower(): v for k, v in self.headers.items()}, body))
        if path != "/v1/chat/completions":
            self._send_json(404, {"error": {"message": f"no route {path}", "type": "invalid_request_error"}})
            return
        if not isinstance(body, dict):
            self._send_json(400, {"error": {"message": "body must be a JSON object", "type": "invalid_request_error"}})
            return
        reply = self.owner._next_reply(body)
        if reply.delay:
            time.sleep(reply.delay)
        if reply.status >= 400:
            self._send_json(reply.status, reply.body if reply.body is not None else {}, reply.headers)
            return
        model = body.get("model") or "fake-model"
        if body.get("stream"):
            include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
            self._stream(reply, model, include_usage)
        else:
            self._complete(reply, model)

    # -- reply rendering --------------------------------------------------------------------

    @staticmethod
    def _call_ids(reply: Reply) -> list[str]:
        return [c.id or f"call_{uuid.uuid4().hex[:24]}" for c in reply.tool_calls]

    @staticmethod
    def _finish(reply: Reply) -> str:
        return reply.finish_reason or ("tool_calls" if reply.tool_calls else "stop")

    def _complete(self, reply: Reply, model: str) -> None:
        message: dict[str, Any] = {"role": "assistant", "content": reply.full_text}
        if reply.tool_calls:
            message["tool_calls"] = [
                {"id": cid, "type": "function", "function": {"name": c.name, "arguments": c.args_json()}}
                for c, cid in zip(reply.tool_calls, self._call_ids(reply))
            ]
        self._send_json(
            200,
            {
                "id": f"chatcmpl-{uuid.uuid4().hex[:20]}",
                "object": "chat.completion",
                "created": int(time.time()),
                "model": model,
                "choices": [{"index": 0, "message": message, "finish_reason": self._finish(reply), "logprobs": None}],
                "usage": dict(USAGE),
            },
            reply.headers,
        )

    def _stream(self, reply: Reply, model: str, include_usage: bool) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Transfer-Encoding", "chunked")
        for k, v in reply.headers.items():
            self.send_header(k, v)
        self.end_headers()
        base = {"id": f"chatcmpl-{uuid.uuid4().hex[:20]}", "object": "chat.completion.chunk",
                "created": int(time.time()), "model": model}

        def chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
            return {**base, "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}]}

        try:
            self._event(chunk({"role": "assistant", "content": ""}))
            for i, piece in enumerate(reply.text_deltas()):
                if i and reply.chunk_delay:
                    time.sleep(reply.chunk_delay)
                self._event(chunk({"content": piece}))
            for index, (call, cid) in enumerate(zip(reply.tool_calls, self._call_ids(reply))):
                args = call.args_json()
                n = max(1, call.arg_chunks)
                size = max(1, -(-len(args) // n))
                pieces = [args[i : i + size] for i in range(0, len(args), size)] or [""]
                self._event(chunk({"tool_calls": [{"index": index, "id": cid, "type": "function",
                                                   "function": {"name": call.name, "arguments": pieces[0]}}]}))
                for piece in pieces[1:]:
                    self._event(chunk({"tool_calls": [{"index": index, "function": {"arguments": piece}}]}))
            self._event(chunk({}, self._finish(reply)))
            if include_usage:
                self._event({**base, "choices": [], "usage": dict(USAGE)})
            self._event("[DONE]")
            self._chunk(b"")  # terminating zero-length chunk
        except (BrokenPipeError, ConnectionResetError):
            pass
