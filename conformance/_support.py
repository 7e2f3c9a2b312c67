"""Shared helpers for the Openloop conformance suite (no fixtures here; see conftest.py).

Everything in this module is plain Python so test modules can import it directly
(pytest's default ``prepend`` import mode puts this directory on ``sys.path``).
"""

from __future__ import annotations

import json
import os
import queue
import re
import secrets
import signal
import socket
import string
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any, Callable
from urllib.parse import urlsplit

import httpx
import pytest

from gumloop import Gumloop
from gumloop.errors import APIStatusError

BASE62 = string.ascii_letters + string.digits
LISTEN_RE = re.compile(r"^openloop listening on (http://127\.0\.0\.1:(\d+))\s*$")
ID_RE = {
    prefix: re.compile(rf"^{prefix}_[A-Za-z0-9]{{22}}$")
    for prefix in ("usr", "team", "org", "key", "agt", "agv")
}
V1_TS_RE = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z$")

# API.md §3.1: the error ``type`` is fixed by the status code.
ERROR_TYPE_BY_STATUS = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    405: "not_found_error",
    409: "conflict_error",
    413: "invalid_request_error",
    415: "invalid_request_error",
    429: "rate_limit_error",
    500: "api_error",
    501: "api_error",
    502: "api_error",
    503: "overloaded_error",
}

UNSET: Any = object()

# Environment variables that would change how the server or the SDK behaves if inherited
# from the caller's shell.
_SCRUBBED_ENV_PREFIXES = ("OPENLOOP_", "GUMLOOP_", "OPENAI_", "ANTHROPIC_", "GUMCP_")
_SCRUBBED_ENV_NAMES = ("OLLAMA_HOST", "TRACEPARENT", "TRACESTATE", "RUST_LOG")


def new_api_key() -> str:
    """An Openloop key secret: ``olk_`` + 43 base62 chars (API.md §2.2)."""
    return "olk_" + "".join(secrets.choice(BASE62) for _ in range(43))


def token(n: int = 10) -> str:
    """Lower-case random token used to make names unique per test run."""
    return "".join(secrets.choice(string.ascii_lowercase + string.digits) for _ in range(n))


def clean_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(_SCRUBBED_ENV_PREFIXES) and k not in _SCRUBBED_ENV_NAMES
    }
    env.update(extra or {})
    return env


def postgres_database() -> str | None:
    """A new, empty PostgreSQL database when the suite runs against PostgreSQL.

    ``OPENLOOP_TEST_DATABASE=postgres`` with ``OPENLOOP_TEST_POSTGRES_URL`` (an
    administrator URL; scripts/test sets both for its PostgreSQL pass).
    """
    if os.environ.get("OPENLOOP_TEST_DATABASE") != "postgres":
        return None
    admin = os.environ["OPENLOOP_TEST_POSTGRES_URL"]
    name = f"conformance_{os.getpid()}_{token(12)}"
    subprocess.run(["psql", admin, "-qc", f"CREATE DATABASE {name}"], check=True, capture_output=True)
    base, _, query = admin.partition("?")
    root = base.rsplit("/", 1)[0]
    return f"{root}/{name}" + (f"?{query}" if query else "")


def default_binary() -> str:
    return os.environ.get("OPENLOOP_BIN") or os.path.expanduser("~/.cache/openloop-target/debug/openloop")


# ---------------------------------------------------------------------------
# Server process management
# ---------------------------------------------------------------------------


class CliError(RuntimeError):
    pass


@dataclass
class OpenloopServer:
    binary: str
    data_dir: str
    env: dict[str, str]
    admin_user_id: str
    admin_key: str
    team_id: str
    team_key: str
    rate_limit: int
    rate_window: int
    url: str = ""
    process: subprocess.Popen | None = None
    stdout_lines: list[str] = field(default_factory=list)
    stderr_lines: list[str] = field(default_factory=list)
    _threads: list[threading.Thread] = field(default_factory=list)

    @property
    def api_url(self) -> str:
        return f"{self.url}/api/v1"

    @property
    def port(self) -> int:
        return int(urlsplit(self.url).port or 0)

    # -- lifecycle ---------------------------------------------------------

    def start(self, timeout: float = 30.0) -> None:
        if not os.path.isfile(self.binary) or not os.access(self.binary, os.X_OK):
            msg = f"openloop binary not found or not executable: {self.binary} (set OPENLOOP_BIN)"
            if os.environ.get("OPENLOOP_CONFORMANCE_SKIP_IF_MISSING"):
                pytest.skip(msg)
            pytest.fail(msg, pytrace=False)
        cmd = [self.binary, "serve", "--addr", "127.0.0.1:0", "--data-dir", self.data_dir]
        self.process = subprocess.Popen(
            cmd,
            env=self.env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            encoding="utf-8",
            errors="replace",
            bufsize=1,
        )
        ready: queue.Queue[str] = queue.Queue()

        def pump_stdout() -> None:
            assert self.process is not None and self.process.stdout is not None
            announced = False
            for line in self.process.stdout:
                self.stdout_lines.append(line.rstrip("\n"))
                if not announced:
                    m = LISTEN_RE.match(line.strip())
                    if m:
                        announced = True
                        ready.put(m.group(1))
            ready.put("")  # EOF: the process closed stdout (probably exited)

        def pump_stderr() -> None:
            assert self.process is not None and self.process.stderr is not None
            for line in self.process.stderr:
                self.stderr_lines.append(line.rstrip("\n"))
                if len(self.stderr_lines) > 5000:
                    del self.stderr_lines[:1000]

        for target in (pump_stdout, pump_stderr):
            t = threading.Thread(target=target, daemon=True)
            t.start()
            self._threads.append(t)

        try:
            url = ready.get(timeout=timeout)
        except queue.Empty:
            url = ""
        if not url:
            self.stop()
            pytest.fail(
                "openloop did not announce 'openloop listening on http://127.0.0.1:<port>' "
                f"within {timeout}s (exit code {self.process.returncode}).\n"
                f"stdout:\n{self._tail(self.stdout_lines)}\nstderr:\n{self._tail(self.stderr_lines)}",
                pytrace=False,
            )
        self.url = url

    def stop(self) -> None:
        proc = self.process
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)

    @staticmethod
    def _tail(lines: list[str], n: int = 40) -> str:
        return "\n".join(lines[-n:])

    def diagnostics(self) -> str:
        return f"--- openloop stderr (tail) ---\n{self._tail(self.stderr_lines)}"

    # -- CLI -----------------------------------------------------------------

    def cli(self, group: str, command: str, *args: str) -> dict[str, Any]:
        """Run ``openloop <group> <command> --data-dir D <args…>``; return its JSON object."""
        cmd = [self.binary, group, command, "--data-dir", self.data_dir, *args]
        proc = subprocess.run(
            cmd,
            env=self.env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=60,
        )
        if proc.returncode != 0:
            raise CliError(f"{' '.join(cmd)} exited {proc.returncode}\nstdout:{proc.stdout}\nstderr:{proc.stderr}")
        out = proc.stdout.strip()
        try:
            return json.loads(out)
        except ValueError:
            for line in reversed(out.splitlines()):
                line = line.strip()
                if line.startswith("{"):
                    return json.loads(line)
            raise CliError(f"{' '.join(cmd)} printed no JSON object: {proc.stdout!r}")

    def create_user(
        self,
        user_id: str,
        *,
        org: str | None = None,
        org_admin: bool = False,
        email: str | None = None,
        first_name: str | None = None,
        last_name: str | None = None,
    ) -> dict[str, Any]:
        args = ["--id", user_id, "--email", email or f"{user_id}@conformance.test"]
        if first_name:
            args += ["--first-name", first_name]
        if last_name:
            args += ["--last-name", last_name]
        if org:
            args += ["--org", org]
        if org_admin:
            args.append("--org-admin")
        return self.cli("users", "create", *args)

    def create_team(self, name: str, *, team_id: str | None = None, org: str | None = None) -> str:
        args = ["--name", name]
        if team_id:
            args += ["--id", team_id]
        if org:
            args += ["--org", org]
        return self.cli("teams", "create", *args)["team_id"]

    def add_member(self, team_id: str, user_id: str, role: str = "member") -> dict[str, Any]:
        return self.cli("teams", "add-member", "--team", team_id, "--user", user_id, "--role", role)

    def create_key(self, *, user: str | None = None, team: str | None = None, name: str = "conformance") -> dict[str, Any]:
        args = ["--user", user] if user else ["--team", team or ""]
        return self.cli("keys", "create", *args, "--name", name)

    def revoke_key(self, key_id: str) -> dict[str, Any]:
        return self.cli("keys", "revoke", key_id)

    # -- clients ---------------------------------------------------------------

    def sdk(self, key: str, user_id: str | None = None, team_id: str | None = None) -> Gumloop:
        return Gumloop(access_token=key, user_id=user_id, team_id=team_id, base_url=self.api_url, timeout=60.0)

    def http(self, key: str | None = None, user_id: str | None = None, **kwargs: Any) -> httpx.Client:
        headers = {}
        if key:
            headers["Authorization"] = f"Bearer {key}"
        if user_id:
            headers["x-auth-key"] = user_id
        return httpx.Client(base_url=self.api_url, headers=headers, timeout=60.0, **kwargs)


@dataclass
class Principal:
    """A user with a personal key and an SDK client acting as that user."""

    user_id: str
    key: str
    client: Gumloop
    org_id: str | None = None
    key_id: str | None = None


def launch_server(
    binary: str,
    data_dir: str,
    *,
    rate_limit: int,
    rate_window: int,
    extra_env: dict[str, str] | None = None,
) -> OpenloopServer:
    admin_key = new_api_key()
    team_key = new_api_key()
    database = postgres_database()
    if database and not (extra_env or {}).get("OPENLOOP_DATABASE_URL"):
        extra_env = {"OPENLOOP_DATABASE_URL": database, **(extra_env or {})}
    env = clean_env(
        {
            "OPENLOOP_BOOTSTRAP_USER_ID": "usr_conf_admin",
            "OPENLOOP_BOOTSTRAP_API_KEY": admin_key,
            "OPENLOOP_BOOTSTRAP_TEAM_ID": "team_conf",
            "OPENLOOP_BOOTSTRAP_TEAM_API_KEY": team_key,
            "OPENLOOP_LOG": "warn",
            "OPENLOOP_RATE_LIMIT_REQUESTS": str(rate_limit),
            "OPENLOOP_RATE_LIMIT_WINDOW_SECS": str(rate_window),
            **(extra_env or {}),
        }
    )
    server = OpenloopServer(
        binary=binary,
        data_dir=data_dir,
        env=env,
        admin_user_id="usr_conf_admin",
        admin_key=admin_key,
        team_id="team_conf",
        team_key=team_key,
        rate_limit=rate_limit,
        rate_window=rate_window,
    )
    server.start()
    return server


# ---------------------------------------------------------------------------
# Assertions
# ---------------------------------------------------------------------------


def _fmt(resp: httpx.Response) -> str:
    return f"{resp.request.method} {resp.request.url} -> {resp.status_code}: {resp.text[:2000]}"


def assert_envelope(body: Any, status: int, code: str | None, param: Any = UNSET, where: str = "") -> dict[str, Any]:
    """Check the v1 nested error envelope (API.md §3.1). Returns ``body["error"]``."""
    assert isinstance(body, dict), f"error body is not a JSON object: {body!r} {where}"
    err = body.get("error")
    assert isinstance(err, dict), f"expected nested error envelope, got {body!r} {where}"
    for key in ("code", "message", "type", "param", "details"):
        assert key in err, f"error envelope lacks {key!r}: {body!r} {where}"
    if code is not None:
        assert err["code"] == code, f"expected code {code!r}, got {err['code']!r}: {body!r} {where}"
    assert isinstance(err["message"], str) and err["message"], f"message must be a non-empty string: {body!r}"
    assert err["type"] == ERROR_TYPE_BY_STATUS[status], (
        f"status {status} needs type {ERROR_TYPE_BY_STATUS[status]!r}, got {err['type']!r}: {body!r} {where}"
    )
    assert isinstance(err["details"], dict), f"details must be an object (never null): {body!r} {where}"
    assert err["param"] is None or isinstance(err["param"], str), f"param must be str|null: {body!r}"
    if param is not UNSET:
        assert err["param"] == param, f"expected param {param!r}, got {err['param']!r}: {body!r} {where}"
    return err


def assert_http_error(resp: httpx.Response, status: int, code: str | None, param: Any = UNSET) -> dict[str, Any]:
    assert resp.status_code == status, f"expected HTTP {status}: {_fmt(resp)}"
    ctype = resp.headers.get("content-type", "")
    assert "json" in ctype, f"error responses are JSON, got content-type {ctype!r}: {_fmt(resp)}"
    try:
        body = resp.json()
    except ValueError:
        pytest.fail(f"error body is not JSON: {_fmt(resp)}")
    return assert_envelope(body, status, code, param, where=f"({resp.request.method} {resp.request.url.path})")


def expect_api_error(
    fn: Callable[..., Any], *args: Any, status: int, code: str | None, param: Any = UNSET, **kwargs: Any
) -> APIStatusError:
    """Call an SDK method and check the ``APIStatusError`` it must raise."""
    with pytest.raises(APIStatusError) as info:
        fn(*args, **kwargs)
    exc = info.value
    assert exc.status_code == status, f"expected HTTP {status}, got {exc.status_code}: {exc.body!r}"
    assert_envelope(exc.body, status, code, param)
    # The SDK's parsed fields mirror the envelope.
    assert exc.code == exc.body["error"]["code"]
    assert exc.type == ERROR_TYPE_BY_STATUS[status]
    assert exc.param == exc.body["error"]["param"]
    assert exc.details == exc.body["error"]["details"]
    assert str(exc) == exc.body["error"]["message"]
    return exc


def assert_ok(resp: httpx.Response, status: int = 200) -> Any:
    assert resp.status_code == status, f"expected HTTP {status}: {_fmt(resp)}"
    assert "application/json" in resp.headers.get("content-type", ""), _fmt(resp)
    return resp.json()


NEVER_NULL_AGENT_KEYS = ("is_active", "tools", "resources", "incognito", "metadata")


def assert_agent_json(agent: dict[str, Any], *, summary: bool = False) -> None:
    """Structural checks of a wire Agent object (API.md §8.0)."""
    assert isinstance(agent.get("id"), str) and agent["id"], agent
    assert isinstance(agent.get("name"), str) and 1 <= len(agent["name"]) <= 256, agent
    for key in NEVER_NULL_AGENT_KEYS:
        if key in agent:
            assert agent[key] is not None, f"Agent.{key} must never be null: {agent!r}"
    if summary:
        return
    assert isinstance(agent.get("is_active"), bool), f"is_active must be sent (SDK default is False): {agent!r}"
    assert isinstance(agent.get("tools", []), list), agent
    assert isinstance(agent.get("resources", []), list), agent
    incognito = agent.get("incognito", {"enforced": False})
    assert isinstance(incognito, dict) and isinstance(incognito.get("enforced"), bool), (
        f"incognito is an object {{enforced: bool}} in responses: {agent!r}"
    )
    assert isinstance(agent.get("metadata", {}), dict), agent
    if agent.get("created_at") is not None:
        assert V1_TS_RE.match(agent["created_at"]), f"created_at must be RFC 3339 µs Z: {agent['created_at']!r}"
    for tool in agent.get("tools", []):
        assert "secret_id" not in tool or tool["secret_id"] is None, f"secret references must be stripped: {tool!r}"


def assert_ratelimit_headers(resp: httpx.Response, limit: int, window: int) -> tuple[int, int]:
    """Check the §5.1 headers; return (remaining, reset)."""
    h = resp.headers
    for name in ("ratelimit-limit", "ratelimit-remaining", "ratelimit-reset", "ratelimit", "ratelimit-policy"):
        assert name in h, f"missing header {name!r} on {_fmt(resp)}; headers={dict(h)}"
    assert h["ratelimit-limit"].strip() == str(limit), dict(h)
    assert re.fullmatch(r"\d+", h["ratelimit-remaining"].strip()), dict(h)
    assert re.fullmatch(r"\d+", h["ratelimit-reset"].strip()), f"ratelimit-reset must be an integer delta: {dict(h)}"
    remaining = int(h["ratelimit-remaining"])
    reset = int(h["ratelimit-reset"])
    assert 0 <= remaining <= limit, dict(h)
    # A delta in seconds, never an epoch time.
    assert 0 <= reset <= window, f"ratelimit-reset {reset} is not a delta within the {window}s window"
    if remaining == 0:
        assert reset >= 1, f"ratelimit-reset must be >= 1 when remaining is 0: {dict(h)}"
    assert h["ratelimit-policy"].strip() == f'"default";q={limit};w={window}', dict(h)
    assert h["ratelimit"].strip() == f'"default";r={remaining};t={reset}', dict(h)
    return remaining, reset


# ---------------------------------------------------------------------------
# Raw HTTP (for bodies an ordinary client cannot send reliably)
# ---------------------------------------------------------------------------


@dataclass
class RawResponse:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body.decode("utf-8"))


def raw_request(
    port: int,
    method: str,
    path: str,
    headers: dict[str, str],
    body_chunks: Callable[[], Any],
    *,
    timeout: float = 30.0,
) -> RawResponse:
    """Send a request over a plain socket, writing the body from a background thread
    and reading the response concurrently. A server that answers (e.g. ``413``) and
    closes before reading the whole body makes ordinary clients fail with a broken pipe;
    this helper still returns the status it sent."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    head = f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n"
    head += "".join(f"{k}: {v}\r\n" for k, v in headers.items()) + "\r\n"

    def writer() -> None:
        try:
            sock.sendall(head.encode("latin-1"))
            for chunk in body_chunks():
                sock.sendall(chunk)
        except OSError:
            pass  # the server stopped reading: expected for oversized bodies

    t = threading.Thread(target=writer, daemon=True)
    t.start()
    data = b""
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            try:
                chunk = sock.recv(65536)
            except socket.timeout:
                break
            except OSError:
                break
            if not chunk:
                break
            data += chunk
            parsed = _try_parse_response(data)
            if parsed is not None:
                return parsed
    finally:
        try:
            sock.close()
        except OSError:
            pass
    parsed = _try_parse_response(data, eof=True)
    if parsed is None:
        pytest.fail(f"no complete HTTP response received for {method} {path}: {data[:500]!r}")
    return parsed


def _try_parse_response(data: bytes, eof: bool = False) -> RawResponse | None:
    while True:
        sep = data.find(b"\r\n\r\n")
        if sep < 0:
            return None
        head = data[:sep].decode("latin-1")
        lines = head.split("\r\n")
        status = int(lines[0].split()[1])
        headers = {}
        for line in lines[1:]:
            k, _, v = line.partition(":")
            headers[k.strip().lower()] = v.strip()
        rest = data[sep + 4 :]
        if 100 <= status < 200:  # interim response (e.g. 100 Continue): skip it
            data = rest
            continue
        if "content-length" in headers:
            n = int(headers["content-length"])
            if len(rest) >= n:
                return RawResponse(status, headers, rest[:n])
            return None
        if headers.get("transfer-encoding", "").lower() == "chunked":
            body, complete = _dechunk(rest)
            if complete:
                return RawResponse(status, headers, body)
            return None
        return RawResponse(status, headers, rest) if eof else None


def _dechunk(data: bytes) -> tuple[bytes, bool]:
    out = b""
    while True:
        nl = data.find(b"\r\n")
        if nl < 0:
            return out, False
        size = int(data[:nl].split(b";")[0], 16)
        if size == 0:
            return out, True
        if len(data) < nl + 2 + size + 2:
            return out, False
        out += data[nl + 2 : nl + 2 + size]
        data = data[nl + 2 + size + 2 :]


def run_gumloop_cli(
    srv: "OpenloopServer", home: str, *args: str, auth: str = "api_key", text: bool = False,
    extra_env: dict[str, str] | None = None, timeout: float = 120,
) -> subprocess.CompletedProcess[Any]:
    """The official ``gumloop`` CLI, headless: credentials from env (``GUMLOOP_API_KEY``, or
    ``GUMLOOP_ACCESS_TOKEN`` with ``auth="access_token"``), no keychain (the ``fail`` keyring
    backend), no update check, ``home`` as HOME and working directory."""
    script = os.path.join(os.path.dirname(sys.executable), "gumloop")
    cmd = [script] if os.access(script, os.X_OK) else [sys.executable, "-m", "gumloop.cli.main"]
    env = clean_env(
        {
            "HOME": home,
            "XDG_CONFIG_HOME": os.path.join(home, ".config"),
            "XDG_DATA_HOME": os.path.join(home, ".local", "share"),
            "PYTHON_KEYRING_BACKEND": "keyring.backends.fail.Keyring",
            "GUMLOOP_BASE_URL": srv.api_url,
            "GUMLOOP_USER_ID": srv.admin_user_id,
            "GUMLOOP_NO_UPDATE_CHECK": "1",
            "NO_COLOR": "1",
            "COLUMNS": "200",
            **(extra_env or {}),
        }
    )
    env["GUMLOOP_API_KEY" if auth == "api_key" else "GUMLOOP_ACCESS_TOKEN"] = srv.admin_key
    return subprocess.run([*cmd, *args], env=env, cwd=home, stdin=subprocess.DEVNULL, capture_output=True, text=text, timeout=timeout)


def unique_id(prefix: str = "conf") -> str:
    return f"{prefix}_{uuid.uuid4().hex[:16]}"


# ---------------------------------------------------------------------------
# Sessions (§8.2) and streams (§12): shared by test_sessions.py and test_streaming.py
# ---------------------------------------------------------------------------

# A catalogue model routed to OPENAI_BASE_URL (the fake provider on ``llm_server``).
SESSION_MODEL = "gpt-4o-mini"
SESS_RE = re.compile(r"^sess_[A-Za-z0-9]{22}$")
MSG_RE = re.compile(r"^msg_[A-Za-z0-9]{22}$")
QM_RE = re.compile(r"^qm_[A-Za-z0-9]{22}$")
AREQ_RE = re.compile(r"^areq_[A-Za-z0-9]{22}$")
PART_ID_RE = re.compile(r"^part_[A-Za-z0-9]{22}$")
# §6.4: stop polling on these.
SESSION_STOP_STATES = frozenset({"idle", "completed", "failed", "cancelled", "approval_required"})


def new_session_agent(client: Gumloop, **kwargs: Any) -> str:
    """Create an agent on the fake-provider server and return its id."""
    kwargs.setdefault("name", f"sessions {token()}")
    kwargs.setdefault("model_name", SESSION_MODEL)
    return client.agents.create(**kwargs).agent.id


def wait_session(
    client: Gumloop,
    session_id: str,
    states: Any = SESSION_STOP_STATES,
    *,
    timeout: float = 30.0,
    interval: float = 0.05,
) -> Any:
    """Poll S4 until ``session.state`` is in ``states``; return the ``Session``."""
    wanted = {states} if isinstance(states, str) else set(states)
    deadline = time.monotonic() + timeout
    while True:
        session = client.sessions.retrieve(session_id).session
        if session.state in wanted:
            return session
        if time.monotonic() > deadline:
            pytest.fail(f"session {session_id} still {session.state!r} after {timeout}s (waiting for {sorted(wanted)})")
        time.sleep(interval)


def cursor_seq(cursor: Any, session_id: str) -> int:
    """``<session_id>:<n>`` → n (asserting the format of §12.4)."""
    assert isinstance(cursor, str), f"stream_cursor must be a string: {cursor!r}"
    prefix = f"{session_id}:"
    assert cursor.startswith(prefix) and cursor[len(prefix):].isdigit(), (
        f"stream_cursor must be '<session_id>:<seq>' for {session_id}: {cursor!r}"
    )
    return int(cursor[len(prefix):])


def assistant_texts(session: Any) -> list[str]:
    """``content`` of every assistant message of a Session (SDK model), in order."""
    return [m.content or "" for m in session.messages if m.role == "assistant"]


# ---------------------------------------------------------------------------
# Tools for AI agents (§10): shared by test_tools.py and test_mcp.py
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class ToolSpec:
    """One row of the §10.1 catalogue."""

    name: str
    spec_id: str
    params: tuple[str, ...]
    required: tuple[str, ...]
    must_mention: tuple[str, ...]  # exact substrings the description MUST contain
    method: str
    path: str  # endpoint path relative to /api/v1, path parameters written as {}

    @property
    def read_only(self) -> bool:
        return self.name.startswith(("list_", "get_"))


_E1_PARAMS = (
    "data_type", "export_fields", "start_date", "end_date", "export_level", "workspace_ids",
    "include_all_workspaces", "include_personal_workspaces", "entity_ids", "category_filter",
)

# API.md §10.1, in catalogue order.
TOOL_CATALOGUE: tuple[ToolSpec, ...] = (
    ToolSpec("list_all_gumloop_agents", "G1", ("search", "team_id", "page_size", "cursor"), (),
             ("next_cursor",), "GET", "/agents"),
    ToolSpec("get_single_gumloop_agent_by_id", "G3", ("id",), ("id",), (), "GET", "/agents/{}"),
    ToolSpec("create_a_gumloop_session", "S1", ("agent_id", "input", "name", "session_id", "metadata"), ("agent_id",),
             ("201", "idle", "202", "processing", "queued", "get_single_gumloop_session_by_id",
              "create_a_gumloop_session_message"), "POST", "/agents/{}/sessions"),
    ToolSpec("list_all_gumloop_sessions", "S3", ("agent_id", "state", "search", "sort_order", "page_size", "cursor"),
             ("agent_id",), (), "GET", "/agents/{}/sessions"),
    ToolSpec("get_single_gumloop_session_by_id", "S4", ("id",), ("id",),
             ("poll", "completed", "failed", "approval_required", "pending_approvals"), "GET", "/sessions/{}"),
    ToolSpec("create_a_gumloop_session_message", "S7", ("session_id", "input", "attachments"), ("session_id", "input"),
             ("409", "interaction_not_in_terminal_state", "202"), "POST", "/sessions/{}/messages"),
    ToolSpec("create_a_gumloop_session_approval", "S11", ("session_id", "approval_responses"),
             ("session_id", "approval_responses"), ("action_request_id",), "POST", "/sessions/{}/approvals"),
    ToolSpec("create_a_gumloop_session_cancellation", "S9", ("session_id",), ("session_id",), (),
             "POST", "/sessions/{}/cancel"),
    ToolSpec("list_all_gumloop_artifacts", "A1",
             ("agent_id", "session_id", "search_query", "sort_order", "page_size", "cursor"), ("agent_id",),
             ("url", "GET", "without", "Authorization", "bytes"), "GET", "/agents/{}/artifacts"),
    ToolSpec("get_single_gumloop_artifact_download_by_id", "A2", ("id", "version_id"), ("id",),
             ("download_url", "GET", "Authorization"), "GET", "/artifacts/{}/download"),
    ToolSpec("create_a_gumloop_flow_run", "F1", ("saved_item_id", "inputs", "project_id"), ("saved_item_id",),
             ("run_id", "get_single_gumloop_flow_run_by_id", "DONE"), "POST", "/start_pipeline"),
    ToolSpec("get_single_gumloop_flow_run_by_id", "F2", ("id", "project_id"), ("id",),
             ("RUNNING", "DONE", "FAILED", "TERMINATED", "outputs"), "GET", "/get_pl_run"),
    ToolSpec("list_all_gumloop_flows", "F4", ("project_id",), (), (), "GET", "/list_saved_items"),
    ToolSpec("create_a_gumloop_export_datum", "E1", _E1_PARAMS, ("export_fields", "start_date", "end_date"),
             ("workspace_ids", "include_all_workspaces", "include_personal_workspaces", "entity_ids", "credit_logs",
              "400"), "POST", "/export_data"),
    ToolSpec("get_single_gumloop_data_export_by_id", "E2", ("id",), ("id",),
             ("REQUESTED", "IN_PROGRESS", "COMPLETED", "FAILED"), "GET", "/export_status"),
    ToolSpec("list_all_gumloop_models", "M1", (), (), (), "GET", "/models"),
)
TOOLS_BY_NAME = {t.name: t for t in TOOL_CATALOGUE}
TOOL_NAMES = [t.name for t in TOOL_CATALOGUE]
# §10.1: "for every tool, waiting `ratelimit-reset` seconds after a `429`".
EVERY_TOOL_MUST_MENTION = ("429", "ratelimit-reset")
MCP_PROTOCOL_VERSIONS = ("2025-06-18", "2025-03-26")


def invoke_tool(client: httpx.Client, name: str, arguments: Any = None, **kwargs: Any) -> httpx.Response:
    """§10.3 ``POST /api/v1/tools/{name}/invoke`` with ``arguments`` as the JSON body."""
    return client.post(f"/tools/{name}/invoke", json={} if arguments is None else arguments, **kwargs)


def fmt_resp(resp: httpx.Response) -> str:
    body = resp.request.content[:600] if resp.request.content else b""
    return f"{resp.request.method} {resp.request.url} body={body!r} -> {resp.status_code}: {resp.text[:2000]}"
