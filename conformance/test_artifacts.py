"""§8.3 artifacts A1–A8, §7.7 ``write_artifact``, §9.2 item 5 signed URLs, and the CLI's two-step
``gumloop artifacts download`` (§1.1), against a dedicated server whose OpenAI-compatible provider is
the fake of ``fake_openai.py``.

Artifacts are created the only way the API allows: a scripted model reply calls the built-in
``write_artifact`` tool during a run (§7.4, §7.7). Calls go through the SDK (``client.artifacts.*``);
httpx only for wire details and for step 2 of the download, which is always a *new*, credential-less
``httpx.get``/``httpx.head`` of the signed URL.

The server is started with known ``OPENLOOP_SIGNING_KEYS`` so the tests can check the exact §9.2
item 5 signature (HMAC-SHA256 over ``GET\\n<path>\\n<exp>\\n<kid>``), key rotation and
``signature_expired`` (an expired link cannot be obtained otherwise: the TTL is at least 60 s).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import re
import secrets
import subprocess
import tempfile
import time
import unicodedata
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit

import httpx
import pytest

from gumloop import Gumloop
from gumloop.types import (
    Artifact,
    ArtifactDeletedResponse,
    ArtifactDownloadResponse,
    ArtifactListResponse,
    ArtifactNameResponse,
    ArtifactPasswordResponse,
    ArtifactVersionsResponse,
)

import fake_openai as fo
from _support import (
    V1_TS_RE,
    OpenloopServer,
    Principal,
    assert_http_error,
    assert_ok,
    expect_api_error,
    new_session_agent,
    run_gumloop_cli,
    token,
    wait_session,
)
from fake_openai import FakeOpenAI, ToolCall

ART_RE = re.compile(r"^art_[A-Za-z0-9]{22}$")
VER_RE = re.compile(r"^ver_[A-Za-z0-9]{22}$")
SIG_RE = re.compile(r"^[A-Za-z0-9_-]+$")  # base64url, no padding
UNKNOWN_ARTIFACT = "art_AAAAAAAAAAAAAAAAAAAAAA"
UNKNOWN_VERSION = "ver_AAAAAAAAAAAAAAAAAAAAAA"
UNKNOWN_AGENT = "agt_AAAAAAAAAAAAAAAAAAAAAA"
DEFAULT_TTL = 900  # OPENLOOP_SIGNED_URL_TTL_SECS default (§9.2 item 5)

# Known signing keys: the first signs, every configured key verifies (§9.2 item 5 rotation).
SIGNING_KEYS = {"kconfA": secrets.token_bytes(32), "kconfB": secrets.token_bytes(32)}
SIGNING_SPEC = ",".join(f"{kid}:{base64.b64encode(secret).decode()}" for kid, secret in SIGNING_KEYS.items())

REPORT_V1 = "# Report\n\nfirst draft\n"
REPORT_V2 = "# Report\n\nfinal text \u2713 with UTF-8 \u00e9\n"
NOTES = ["notes v1", "notes version two, longer", "notes v3!"]
BINARY = bytes(range(256)) + b"\x00\xff\r\n\x1a" + secrets.token_bytes(700)
BIN_TYPE = "application/vnd.openloop.conformance"
UNICODE_NAME = "r\u00e9sum\u00e9 2026 \u2713.txt"
OTHER_REPORT = "report of another session\n"

# Pagination corpus: 15 + 8 artifacts whose name order differs from their creation order.
WORDS = ["delta", "alpha", "echo", "charlie", "bravo"]
PAGER_P1 = [f"{WORDS[i % 5]}-{i:02d}.txt" for i in range(15)]
PAGER_P2 = [f"{WORDS[(i + 2) % 5]}-{i + 15:02d}.txt" for i in range(8)]


# ---------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------


def fmt(resp: httpx.Response) -> str:
    return f"{resp.request.method} {resp.request.url} -> {resp.status_code}: {resp.text[:1500]}"


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def write_call(filename: str, content: str, *, media_type: str | None = None, encoding: str | None = None) -> ToolCall:
    args: dict[str, Any] = {"filename": filename, "content": content}
    if media_type is not None:
        args["media_type"] = media_type
    if encoding is not None:
        args["encoding"] = encoding
    return ToolCall("write_artifact", args)


def run_writes(
    client: Gumloop,
    fake: FakeOpenAI,
    steps: list[list[ToolCall]],
    *,
    agent_id: str | None = None,
    session_id: str | None = None,
) -> tuple[str, Any]:
    """One run whose model steps are ``steps`` (each a list of tool calls), then a text answer.

    Starts a new session of ``agent_id`` (S1) or continues ``session_id`` (S7); waits for
    ``completed`` and returns ``(session_id, session)``."""
    tok = token()
    fake.enqueue(*[fo.tool_calls(calls) for calls in steps], fo.text(f"saved {tok}"), match=tok)
    text = f"please save the files {tok}"
    if session_id is None:
        assert agent_id is not None
        sid = client.sessions.create(agent_id, input=text).session.id
    else:
        sid = session_id
        client.sessions.send(sid, input=text)
    s = wait_session(client, sid)
    assert s.state == "completed", f"a run calling write_artifact must complete: {s}"
    assert fake.pending(tok) == 0, "every scripted step was consumed"
    return sid, s


def tool_parts(session: Any, name: str = "write_artifact") -> list[dict[str, Any]]:
    return [
        p
        for m in session.messages
        if m.role == "assistant"
        for p in (m.parts or [])
        if p.get("type") == "tool_invocation" and p.get("toolName") == name
    ]


def file_parts(session: Any) -> list[dict[str, Any]]:
    return [p["file"] for m in session.messages if m.role == "assistant" for p in (m.parts or []) if p.get("type") == "file"]


def list_all(client: Gumloop, agent_id: str, **kwargs: Any) -> list[Artifact]:
    resp = client.artifacts.list(agent_id, page_size=100, **kwargs)
    assert resp.next_cursor is None, f"fewer than 100 artifacts fit one page: {resp.next_cursor!r}"
    return resp.artifacts


def by_stored_name(items: list[Artifact]) -> dict[str, Artifact]:
    out: dict[str, Artifact] = {}
    for a in items:
        stored = a.metadata.get("stored_filename")
        assert stored not in out, f"one artifact per stored filename in a session: {items}"
        out[stored] = a
    return out


def fetch(url: str, *, method: str = "GET", headers: dict[str, str] | None = None) -> httpx.Response:
    """Step 2 of the download: a fresh client without credentials (no Authorization, no cookies)."""
    return httpx.request(method, url, headers=headers, timeout=30.0, follow_redirects=False)


def split_signed(url: str) -> tuple[str, str, dict[str, str]]:
    """``(origin, raw path, query params)`` of a signed URL."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}", parts.path, dict(parse_qsl(parts.query, keep_blank_values=True))


def hmac_sig(secret: bytes, path: str, exp: str, kid: str) -> str:
    digest = hmac.new(secret, f"GET\n{path}\n{exp}\n{kid}".encode("utf-8"), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def forge(origin: str, path: str, exp: int | str, kid: str = "kconfA", secret: bytes | None = None) -> str:
    secret = SIGNING_KEYS[kid] if secret is None else secret
    sig = hmac_sig(secret, path, str(exp), kid)
    return f"{origin}{path}?{urlencode({'exp': str(exp), 'kid': kid, 'sig': sig})}"


def disposition_filename(value: str) -> str:
    """The decoded ``filename*=UTF-8''…`` parameter of an ``attachment`` Content-Disposition."""
    params = [p.strip() for p in value.split(";")]
    assert params[0].lower() == "attachment", f"artifacts are always attachments (§9.2 item 11): {value!r}"
    ext = [p for p in params[1:] if p.lower().startswith("filename*=")]
    assert len(ext) == 1, f"Content-Disposition needs one RFC 5987 filename*=: {value!r}"
    raw = ext[0].split("=", 1)[1]
    assert raw.upper().startswith("UTF-8''"), f"filename* must be UTF-8'' encoded: {value!r}"
    encoded = raw[len("UTF-8''") :]
    assert all(ord(c) < 128 and c not in ' ";' for c in encoded), f"filename* value must be percent-encoded: {value!r}"
    return unquote(encoded, encoding="utf-8", errors="strict")


def assert_bytes_response(resp: httpx.Response, data: bytes, media_type: str, filename: str) -> None:
    """§8.3 step 2 and §9.2 item 5 success headers."""
    assert resp.status_code == 200, fmt(resp)
    assert resp.content == data, f"exact bytes expected ({len(data)}), got {len(resp.content)}: {resp.content[:80]!r}"
    h = resp.headers
    assert h.get("content-type") == media_type, f"Content-Type = the media type: {dict(h)}"
    assert h.get("content-length") == str(len(data)), f"Content-Length: {dict(h)}"
    assert "content-disposition" in h, dict(h)
    assert disposition_filename(h["content-disposition"]) == filename, dict(h)
    etag = h.get("etag")
    assert etag and re.fullmatch(r'"[^"]+"', etag), f"ETag must be strong (no W/): {dict(h)}"
    cache = h.get("cache-control", "")
    m = re.fullmatch(r"private,\s*max-age=(\d+)", cache.strip())
    assert m, f"Cache-Control: private, max-age=<seconds to exp>: {dict(h)}"
    assert 0 < int(m.group(1)) <= DEFAULT_TTL, dict(h)
    assert h.get("referrer-policy") == "no-referrer", dict(h)
    assert h.get("x-content-type-options") == "nosniff", dict(h)
    assert "set-cookie" not in h, dict(h)


# ---------------------------------------------------------------------------
# Server, principals
# ---------------------------------------------------------------------------


def _llm_env(fake: FakeOpenAI, **extra: str) -> dict[str, str]:
    return {
        "OPENAI_BASE_URL": fake.base_url,
        "OPENAI_API_KEY": fo.FAKE_OPENAI_KEY,
        "OPENLOOP_RATE_LIMIT_UNAUTH_PER_MIN": "100000",
        "OPENLOOP_RATE_LIMIT_FILES_PER_MIN": "100000",
        **extra,
    }


@pytest.fixture(scope="module")
def artifact_server(start_server: Callable[..., OpenloopServer], fake_openai: FakeOpenAI) -> OpenloopServer:
    return start_server(
        rate_limit=100_000, rate_window=60, extra_env=_llm_env(fake_openai, OPENLOOP_SIGNING_KEYS=SIGNING_SPEC)
    )


@pytest.fixture(scope="module")
def client(artifact_server: OpenloopServer) -> Iterator[Gumloop]:
    c = artifact_server.sdk(artifact_server.admin_key, user_id=artifact_server.admin_user_id)
    yield c
    c.close()


@pytest.fixture(scope="module")
def raw(artifact_server: OpenloopServer) -> Iterator[httpx.Client]:
    with artifact_server.http(artifact_server.admin_key, artifact_server.admin_user_id) as c:
        yield c


def _principal(srv: OpenloopServer, user_id: str, *, org: str, org_admin: bool = False, team: str | None = None) -> Principal:
    created = srv.create_user(user_id, org=org, org_admin=org_admin, first_name="Art", last_name=user_id)
    if team:
        srv.add_member(team, user_id, role="member")
    key = srv.create_key(user=user_id, name=user_id)
    return Principal(user_id, key["secret"], srv.sdk(key["secret"], user_id=user_id), org_id=created.get("organization_id"))


@pytest.fixture(scope="module")
def other(artifact_server: OpenloopServer) -> Iterator[Principal]:
    """A user of another organization (another tenant)."""
    p = _principal(artifact_server, "usr_art_other", org="org_art_other", org_admin=True)
    yield p
    p.client.close()


@pytest.fixture(scope="module")
def member(artifact_server: OpenloopServer) -> Iterator[Principal]:
    """A plain member of the bootstrap user's team (same organization)."""
    p = _principal(artifact_server, "usr_art_member", org="org_default", team=artifact_server.team_id)
    yield p
    p.client.close()


# ---------------------------------------------------------------------------
# Corpora
# ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def corpus(client: Gumloop, fake_openai: FakeOpenAI) -> dict[str, Any]:
    """A personal agent with two sessions; read-only for the tests.

    Session ``sid``, run 1: ``report.md`` v1, ``data.bin`` (base64), the Unicode-named file (one
    step, parallel calls), then ``notes.txt`` three times (three steps → three versions).
    Run 2 (S7): ``report.md`` v2. Session ``sid2``: its own ``report.md``."""
    aid = new_session_agent(client, name=f"artifacts {token()}")
    sid, run1 = run_writes(
        client,
        fake_openai,
        [
            [
                write_call("report.md", REPORT_V1),
                write_call("data.bin", b64(BINARY), media_type=BIN_TYPE, encoding="base64"),
                write_call(UNICODE_NAME, "unicode name\n", media_type="text/plain"),
            ],
            [write_call("notes.txt", NOTES[0], media_type="text/plain")],
            [write_call("notes.txt", NOTES[1], media_type="text/plain")],
            [write_call("notes.txt", NOTES[2], media_type="text/plain", encoding="text")],
        ],
        agent_id=aid,
    )
    _, run2 = run_writes(client, fake_openai, [[write_call("report.md", REPORT_V2)]], session_id=sid)
    sid2, _ = run_writes(client, fake_openai, [[write_call("report.md", OTHER_REPORT)]], agent_id=aid)
    items = by_stored_name(list_all(client, aid, session_id=sid))
    other_items = by_stored_name(list_all(client, aid, session_id=sid2))
    return {
        "agent": aid,
        "sid": sid,
        "sid2": sid2,
        "run1": run1,
        "run2": run2,
        "items": items,
        "other_report": other_items.get("report.md"),
    }


def item(corpus: dict[str, Any], name: str) -> Artifact:
    found = corpus["items"].get(name)
    assert found is not None, f"{name!r} not listed in session {corpus['sid']}: {sorted(corpus['items'])}"
    return found


@pytest.fixture(scope="module")
def pager(client: Gumloop, fake_openai: FakeOpenAI) -> dict[str, Any]:
    """An agent with 23 single-version artifacts in two sessions (15 + 8), each session written in
    one step of parallel calls."""
    aid = new_session_agent(client, name=f"artifact pages {token()}")
    p1, _ = run_writes(client, fake_openai, [[write_call(n, f"content of {n}") for n in PAGER_P1]], agent_id=aid)
    p2, _ = run_writes(client, fake_openai, [[write_call(n, f"content of {n}") for n in PAGER_P2]], agent_id=aid)
    return {"agent": aid, "p1": p1, "p2": p2}


@pytest.fixture(scope="module")
def scratch_agent(client: Gumloop) -> str:
    """An agent for tests that change artifacts (rename, delete, password)."""
    return new_session_agent(client, name=f"artifact scratch {token()}")


def scratch(client: Gumloop, fake: FakeOpenAI, agent_id: str, steps: list[list[ToolCall]]) -> dict[str, Artifact]:
    sid, _ = run_writes(client, fake, steps, agent_id=agent_id)
    return by_stored_name(list_all(client, agent_id, session_id=sid))


# ---------------------------------------------------------------------------
# §7.7 write_artifact
# ---------------------------------------------------------------------------


def test_7_7_write_artifact_file_parts_match_listing(corpus: dict[str, Any]) -> None:
    calls = tool_parts(corpus["run1"])
    assert len(calls) == 6 and all(c["toolCallState"] == "completed" for c in calls), calls
    files = file_parts(corpus["run1"])
    assert len(files) == 6, f"one file part per successful write_artifact (§7.7): {files}"
    for f in files:
        assert set(f) >= {"artifact_id", "version_id", "filename", "media_type", "size"}, f
        assert ART_RE.match(f["artifact_id"]) and VER_RE.match(f["version_id"]), f
    notes = [f for f in files if f["filename"] == "notes.txt"]
    assert len(notes) == 3, files
    assert len({f["artifact_id"] for f in notes}) == 1, f"same filename in the session = same artifact: {notes}"
    assert len({f["version_id"] for f in notes}) == 3, f"each write is a new version: {notes}"
    assert [f["size"] for f in notes] == [len(n.encode()) for n in NOTES], notes
    listed = item(corpus, "notes.txt")
    assert listed.id == notes[0]["artifact_id"] and listed.version_id == notes[-1]["version_id"], (listed, notes)
    data = next(f for f in files if f["filename"] == "data.bin")
    assert data["size"] == len(BINARY) and data["media_type"] == BIN_TYPE, data
    assert data["artifact_id"] == item(corpus, "data.bin").id
    # Run 2 wrote report.md again: a new version of the same artifact.
    report_files = [f for f in files if f["filename"] == "report.md"]
    run2_files = file_parts(corpus["run2"])[len(files):]
    assert [f["filename"] for f in run2_files] == ["report.md"], run2_files
    assert run2_files[0]["artifact_id"] == report_files[0]["artifact_id"], (report_files, run2_files)
    assert run2_files[0]["version_id"] != report_files[0]["version_id"]


def test_7_7_tool_errors_and_sanitized_names(client: Gumloop, fake_openai: FakeOpenAI, scratch_agent: str) -> None:
    sid, s = run_writes(
        client,
        fake_openai,
        [
            [write_call("broken.bin", "%%% not base64 %%%", encoding="base64")],
            [write_call("../escape.txt", "nope")],
            # "*:<>?| become _ (a single letter before ':' would be a drive path: rejected).
            [write_call("ab:c*d?.txt", "sanitized")],
        ],
        agent_id=scratch_agent,
    )
    calls = tool_parts(s)
    assert [c["toolCallState"] for c in calls] == ["error", "error", "completed"], (
        f"bad base64 and a path name are tool errors, not run failures (§7.7, §9.2 item 8): {calls}"
    )
    for c in calls[:2]:
        assert isinstance(c["result"].get("result"), str) and c["result"]["result"], f"error string in result.result: {c}"
    listed = list_all(client, scratch_agent, session_id=sid)
    assert [a.filename for a in listed] == ["ab_c_d_.txt"], f'"*:<>?| become _; failed writes are not listed: {listed}'
    assert listed[0].metadata.get("stored_filename") == "ab_c_d_.txt", listed[0]
    assert fetch(listed[0].url).content == b"sanitized"


# ---------------------------------------------------------------------------
# A1 list
# ---------------------------------------------------------------------------


def test_a1_items(client: Gumloop, raw: httpx.Client, artifact_server: OpenloopServer, corpus: dict[str, Any]) -> None:
    resp = raw.get(f"/agents/{corpus['agent']}/artifacts", params={"session_id": corpus["sid"]})
    body = assert_ok(resp)
    assert isinstance(body.get("artifacts"), list) and "next_cursor" in body and body["next_cursor"] is None, body
    ArtifactListResponse.model_validate(body)
    expected = {
        "report.md": (REPORT_V2.encode(), 2, None),
        "data.bin": (BINARY, 1, BIN_TYPE),
        UNICODE_NAME: (b"unicode name\n", 1, "text/plain"),
        "notes.txt": (NOTES[2].encode(), 3, "text/plain"),
    }
    assert sorted(a["filename"] for a in body["artifacts"]) == sorted(expected), body
    for a in body["artifacts"]:
        data, major, media_type = expected[a["filename"]]
        assert ART_RE.match(a["id"]) and VER_RE.match(a["version_id"]), a
        assert a["major_version"] == major, f"major_version counts versions 1, 2, … (§7.7): {a}"
        assert a["agent_id"] == corpus["agent"] and a["session_id"] == corpus["sid"], a
        assert isinstance(a.get("created_at"), str) and V1_TS_RE.match(a["created_at"]), a
        meta = a.get("metadata")
        assert isinstance(meta, dict), f"metadata is never null: {a}"
        assert meta.get("size") == len(data), a
        assert meta.get("stored_filename") == a["filename"], a
        assert isinstance(meta.get("media_type"), str) and meta["media_type"], a
        if media_type:
            assert meta["media_type"] == media_type, f"the media_type given to write_artifact is kept: {a}"
        assert isinstance(a.get("url"), str), a
        assert a["url"].startswith(f"{artifact_server.url}/files/v1/artifacts/{a['id']}/versions/{a['version_id']}/"), (
            f"url = signed URL of the current version (§9.2 item 5): {a['url']}"
        )
        _, _, q = split_signed(a["url"])
        assert abs(int(q["exp"]) - (int(time.time()) + DEFAULT_TTL)) <= 30, f"each url is freshly signed: {a['url']}"
        creator = a.get("creator") or {}
        assert creator.get("id") == artifact_server.admin_user_id, f"creator = the session's user: {a}"
    # Through the SDK.
    sdk = client.artifacts.list(corpus["agent"], session_id=corpus["sid"])
    assert sorted(a.id for a in sdk.artifacts) == sorted(a["id"] for a in body["artifacts"])
    assert sdk.next_cursor is None


def test_a1_url_serves_current_bytes_without_credentials(corpus: dict[str, Any]) -> None:
    expected = {
        "report.md": REPORT_V2.encode(),
        "data.bin": BINARY,
        UNICODE_NAME: b"unicode name\n",
        "notes.txt": NOTES[2].encode(),
    }
    for name, data in expected.items():
        a = item(corpus, name)
        resp = fetch(a.url)
        assert_bytes_response(resp, data, a.metadata["media_type"], name)


def test_a1_session_filter_and_interaction_id_alias(client: Gumloop, corpus: dict[str, Any]) -> None:
    other = corpus["other_report"]
    assert other is not None and other.session_id == corpus["sid2"], other
    assert other.id != item(corpus, "report.md").id, "same filename in another session = another artifact"
    assert other.major_version == 1
    assert fetch(other.url).content == OTHER_REPORT.encode()
    everything = {a.id for a in list_all(client, corpus["agent"])}
    assert everything == {a.id for a in corpus["items"].values()} | {other.id}, everything
    assert [a.id for a in list_all(client, corpus["agent"], session_id=corpus["sid2"])] == [other.id]
    # interaction_id is an alias of session_id (older SDKs send it), passed through the SDK's **kwargs.
    alias = client.artifacts.list(corpus["agent"], interaction_id=corpus["sid2"], page_size=100)
    assert [a.id for a in alias.artifacts] == [other.id], alias


def test_a1_default_page_size_is_20(client: Gumloop, pager: dict[str, Any]) -> None:
    first = client.artifacts.list(pager["agent"])
    assert len(first.artifacts) == 20, f"A1 defaults to page_size=20 (§4): {len(first.artifacts)}"
    assert isinstance(first.next_cursor, str) and first.next_cursor, first.next_cursor
    second = client.artifacts.list(pager["agent"], cursor=first.next_cursor)
    assert len(second.artifacts) == 3 and second.next_cursor is None, second
    ids = [a.id for a in first.artifacts + second.artifacts]
    assert len(set(ids)) == 23


def _walk(client: Gumloop, agent_id: str, page_size: int, **kwargs: Any) -> tuple[list[Artifact], list[int]]:
    got: list[Artifact] = []
    sizes: list[int] = []
    cursor = None
    for _ in range(50):
        page = client.artifacts.list(agent_id, page_size=page_size, cursor=cursor, **kwargs)
        got += page.artifacts
        sizes.append(len(page.artifacts))
        cursor = page.next_cursor
        if cursor is None:
            return got, sizes
    pytest.fail("pagination did not end")


@pytest.mark.parametrize("sort", ["newest", "oldest", "name_asc", "name_desc"])
def test_a1_sort_orders_and_walk_all_pages(client: Gumloop, pager: dict[str, Any], sort: str) -> None:
    full = client.artifacts.list(pager["agent"], sort_order=sort, page_size=100)
    assert full.next_cursor is None and len(full.artifacts) == 23, full
    names = [a.filename for a in full.artifacts]
    stamps = [a.created_at for a in full.artifacts]
    if sort == "name_asc":
        assert names == sorted(names), names
    elif sort == "name_desc":
        assert names == sorted(names, reverse=True), names
    elif sort == "newest":
        assert stamps == sorted(stamps, reverse=True), stamps
    else:
        assert stamps == sorted(stamps), stamps
    walked, sizes = _walk(client, pager["agent"], 7, sort_order=sort)
    assert sizes == [7, 7, 7, 2], sizes
    assert [a.id for a in walked] == [a.id for a in full.artifacts], "pages concatenate to the full, stable order"


def test_a1_default_sort_is_newest(client: Gumloop, pager: dict[str, Any]) -> None:
    default = [a.id for a in client.artifacts.list(pager["agent"], page_size=100).artifacts]
    newest = [a.id for a in client.artifacts.list(pager["agent"], page_size=100, sort_order="newest").artifacts]
    assert default == newest


def test_a1_paging_within_a_session(client: Gumloop, pager: dict[str, Any]) -> None:
    walked, sizes = _walk(client, pager["agent"], 4, session_id=pager["p1"], sort_order="name_asc")
    assert sizes == [4, 4, 4, 3], sizes
    assert [a.filename for a in walked] == sorted(PAGER_P1)
    assert {a.session_id for a in walked} == {pager["p1"]}


def test_a1_search_query(client: Gumloop, pager: dict[str, Any]) -> None:
    want = sorted(n for n in PAGER_P1 + PAGER_P2 if "alpha" in n)
    got = client.artifacts.list(pager["agent"], search_query="alpha", sort_order="name_asc", page_size=100)
    assert [a.filename for a in got.artifacts] == want, got
    walked, _ = _walk(client, pager["agent"], 2, search_query="alpha", sort_order="name_asc")
    assert [a.filename for a in walked] == want
    exact = client.artifacts.list(pager["agent"], search_query="-07.txt")
    assert [a.filename for a in exact.artifacts] == [PAGER_P1[7]], exact
    both = client.artifacts.list(pager["agent"], search_query="alpha", session_id=pager["p2"], page_size=100)
    assert sorted(a.filename for a in both.artifacts) == sorted(n for n in PAGER_P2 if "alpha" in n), both
    none = client.artifacts.list(pager["agent"], search_query="no-such-artifact-name")
    assert none.artifacts == [] and none.next_cursor is None


@pytest.mark.parametrize("bad", [0, 101, -1, "abc", "1.5"], ids=str)
def test_a1_invalid_page_size(client: Gumloop, pager: dict[str, Any], bad: Any) -> None:
    expect_api_error(
        client.artifacts.list, pager["agent"], page_size=bad, status=400, code="invalid_page_size", param="page_size"
    )


@pytest.mark.parametrize("bad", ["bogus", "credits_desc", "name", "created_at"])
def test_a1_invalid_sort(client: Gumloop, pager: dict[str, Any], bad: str) -> None:
    expect_api_error(client.artifacts.list, pager["agent"], sort_order=bad, status=400, code="invalid_sort")


def test_a1_invalid_cursor(client: Gumloop, pager: dict[str, Any], corpus: dict[str, Any]) -> None:
    aid = pager["agent"]
    first = client.artifacts.list(aid, page_size=5, sort_order="name_asc")
    cursor = first.next_cursor
    assert cursor, first
    # The untouched cursor works.
    assert len(client.artifacts.list(aid, page_size=5, sort_order="name_asc", cursor=cursor).artifacts) == 5
    tampered = cursor[:-1] + ("A" if cursor[-1] != "A" else "B")
    session_cursor = client.sessions.list(aid, page_size=1).next_cursor
    assert session_cursor, "the pager agent has two sessions"
    cases: list[tuple[str, dict[str, Any]]] = [
        ("garbage", {"cursor": "not-a-cursor", "page_size": 5, "sort_order": "name_asc"}),
        ("tampered", {"cursor": tampered, "page_size": 5, "sort_order": "name_asc"}),
        ("other sort", {"cursor": cursor, "page_size": 5, "sort_order": "name_desc"}),
        ("other page_size", {"cursor": cursor, "page_size": 6, "sort_order": "name_asc"}),
        ("other session filter", {"cursor": cursor, "page_size": 5, "sort_order": "name_asc", "session_id": pager["p1"]}),
        ("other search", {"cursor": cursor, "page_size": 5, "sort_order": "name_asc", "search_query": "a"}),
        ("S3 cursor", {"cursor": session_cursor, "page_size": 1}),
    ]
    for what, kwargs in cases:
        try:
            expect_api_error(client.artifacts.list, aid, status=400, code="invalid_cursor", **kwargs)
        except AssertionError as exc:
            raise AssertionError(f"{what}: {exc}") from None
    # Another agent (path id) with the same filters.
    expect_api_error(
        client.artifacts.list,
        corpus["agent"],
        cursor=cursor,
        page_size=5,
        sort_order="name_asc",
        status=400,
        code="invalid_cursor",
    )


def test_a1_unknown_or_foreign_agent_is_404(client: Gumloop, other: Principal, corpus: dict[str, Any]) -> None:
    expect_api_error(client.artifacts.list, UNKNOWN_AGENT, status=404, code="agent_not_found")
    gone = new_session_agent(client, name=f"deleted {token()}")
    client.agents.delete(gone)
    expect_api_error(client.artifacts.list, gone, status=404, code="agent_not_found")
    expect_api_error(other.client.artifacts.list, corpus["agent"], status=404, code="agent_not_found")
    expect_api_error(
        other.client.artifacts.list, corpus["agent"], session_id=corpus["sid"], status=404, code="agent_not_found"
    )


# ---------------------------------------------------------------------------
# A2 download + step 2 (signed URL)
# ---------------------------------------------------------------------------


def test_a2_download_metadata_and_signed_url(
    client: Gumloop, raw: httpx.Client, artifact_server: OpenloopServer, corpus: dict[str, Any]
) -> None:
    a = item(corpus, "report.md")
    resp = raw.get(f"/artifacts/{a.id}/download")
    body = assert_ok(resp)
    ArtifactDownloadResponse.model_validate(body)
    dl = client.artifacts.download(a.id)
    assert isinstance(dl, ArtifactDownloadResponse)
    assert dl.filename == "report.md" and dl.size == len(REPORT_V2.encode()), dl
    assert dl.media_type == a.metadata["media_type"], dl
    before = int(time.time())
    origin, path, q = split_signed(dl.download_url)
    assert origin == artifact_server.url, f"built from OPENLOOP_PUBLIC_URL (default: the listen URL): {dl.download_url}"
    assert path == f"/files/v1/artifacts/{a.id}/versions/{a.version_id}/report.md", dl.download_url
    assert set(q) == {"exp", "kid", "sig"}, dl.download_url
    assert q["exp"].isdigit() and before + DEFAULT_TTL - 30 <= int(q["exp"]) <= before + DEFAULT_TTL + 30, (
        f"exp = issue time + {DEFAULT_TTL}s: {q['exp']} (now {before})"
    )
    assert q["kid"] == "kconfA", f"the first configured key signs: {q}"
    assert SIG_RE.match(q["sig"]), q
    assert q["sig"] == hmac_sig(SIGNING_KEYS["kconfA"], path, q["exp"], q["kid"]), (
        "sig = base64url(HMAC-SHA256(key, 'GET\\n' + path + '\\n' + exp + '\\n' + kid)) (§9.2 item 5)"
    )
    assert_bytes_response(fetch(dl.download_url), REPORT_V2.encode(), dl.media_type or "", "report.md")
    # Also the body keys on the wire.
    assert body["filename"] == "report.md" and body["size"] == len(REPORT_V2.encode()), body


def test_a2_binary_base64_round_trip(client: Gumloop, corpus: dict[str, Any]) -> None:
    a = item(corpus, "data.bin")
    dl = client.artifacts.download(a.id)
    assert (dl.filename, dl.media_type, dl.size) == ("data.bin", BIN_TYPE, len(BINARY)), dl
    resp = fetch(dl.download_url)
    assert_bytes_response(resp, BINARY, BIN_TYPE, "data.bin")
    assert hashlib.sha256(resp.content).hexdigest() == hashlib.sha256(BINARY).hexdigest()


def test_a2_unicode_filename_is_percent_encoded(client: Gumloop, corpus: dict[str, Any]) -> None:
    a = item(corpus, UNICODE_NAME)
    dl = client.artifacts.download(a.id)
    assert dl.filename == UNICODE_NAME, dl
    assert dl.download_url.isascii(), f"the filename segment is percent-encoded: {dl.download_url}"
    _, path, _ = split_signed(dl.download_url)
    assert unquote(path.rsplit("/", 1)[1]) == UNICODE_NAME, path
    assert_bytes_response(fetch(dl.download_url), b"unicode name\n", "text/plain", UNICODE_NAME)


def test_a2_older_versions(client: Gumloop, corpus: dict[str, Any]) -> None:
    a = item(corpus, "notes.txt")
    versions = client.artifacts.list_versions(a.id).versions
    assert len(versions) == 3, versions
    etags = set()
    for v, content in zip(reversed(versions), NOTES):
        dl = client.artifacts.download(a.id, version_id=v.version_id)
        assert dl.size == len(content.encode()) and dl.filename == "notes.txt", (v, dl)
        _, path, _ = split_signed(dl.download_url)
        assert f"/versions/{v.version_id}/" in path, f"download_url names the requested version: {dl.download_url}"
        resp = fetch(dl.download_url)
        assert_bytes_response(resp, content.encode(), "text/plain", "notes.txt")
        etags.add(resp.headers["etag"])
        assert fetch(dl.download_url).headers["etag"] == resp.headers["etag"], "the ETag is stable per version"
    assert len(etags) == 3, f"ETag is per version: {etags}"
    # Default = current version.
    current = client.artifacts.download(a.id)
    assert fetch(current.download_url).content == NOTES[2].encode()
    # report.md v1 (written in an earlier run) is still downloadable.
    r = item(corpus, "report.md")
    old = client.artifacts.list_versions(r.id).versions[-1]
    assert fetch(client.artifacts.download(r.id, version_id=old.version_id).download_url).content == REPORT_V1.encode()


def test_a2_unknown_version_is_404(client: Gumloop, corpus: dict[str, Any]) -> None:
    a = item(corpus, "notes.txt")
    expect_api_error(client.artifacts.download, a.id, version_id=UNKNOWN_VERSION, status=404, code="artifact_version_not_found")
    # A version of another artifact is not a version of this one.
    foreign = item(corpus, "data.bin").version_id
    expect_api_error(client.artifacts.download, a.id, version_id=foreign, status=404, code="artifact_version_not_found")
    expect_api_error(client.artifacts.download, UNKNOWN_ARTIFACT, status=404, code="artifact_not_found")
    expect_api_error(client.artifacts.download, "nope", status=404, code="artifact_not_found")


def test_signed_url_ignores_authorization(client: Gumloop, artifact_server: OpenloopServer, corpus: dict[str, Any]) -> None:
    a = item(corpus, "report.md")
    url = client.artifacts.download(a.id).download_url
    for auth in ("Bearer olk_definitely_not_a_valid_key", f"Bearer {artifact_server.admin_key}"):
        resp = fetch(url, headers={"Authorization": auth, "x-auth-key": "usr_nobody", "Cookie": "session=abc"})
        assert resp.status_code == 200 and resp.content == REPORT_V2.encode(), f"credentials are not read: {fmt(resp)}"
        assert "ratelimit-limit" not in resp.headers, f"no key quota on /files/v1: {dict(resp.headers)}"


def test_signed_url_range(client: Gumloop, corpus: dict[str, Any]) -> None:
    url = client.artifacts.download(item(corpus, "data.bin").id).download_url
    n = len(BINARY)
    full_etag = fetch(url).headers.get("etag")
    ranges = [
        ("bytes=0-4", 0, 4),
        ("bytes=250-300", 250, 300),
        (f"bytes={n - 10}-", n - 10, n - 1),
        ("bytes=-3", n - 3, n - 1),
        (f"bytes=5-{n + 100}", 5, n - 1),  # the last position is clamped to the size
    ]
    for header, lo, hi in ranges:
        resp = fetch(url, headers={"Range": header})
        assert resp.status_code == 206, f"Range {header}: {fmt(resp)}"
        assert resp.content == BINARY[lo : hi + 1], f"Range {header}: {len(resp.content)} bytes"
        assert resp.headers.get("content-range") == f"bytes {lo}-{hi}/{n}", f"Range {header}: {dict(resp.headers)}"
        assert resp.headers.get("content-length") == str(hi - lo + 1), dict(resp.headers)
        assert resp.headers.get("etag") == full_etag, dict(resp.headers)
    # RFC 9110 §14.2: a Range with a unit the server does not understand MUST be ignored.
    resp = fetch(url, headers={"Range": "items=0-4"})
    assert resp.status_code == 200 and resp.content == BINARY, fmt(resp)
    for header in (f"bytes={n}-", f"bytes={n + 10}-{n + 20}"):
        resp = fetch(url, headers={"Range": header})
        assert resp.status_code == 416, f"unsatisfiable {header}: {fmt(resp)}"
        assert resp.headers.get("content-range") == f"bytes */{n}", (
            f"416 carries Content-Range: bytes */<size> (RFC 9110 §15.5.17): {dict(resp.headers)}"
        )


def test_signed_url_head(client: Gumloop, corpus: dict[str, Any]) -> None:
    url = client.artifacts.download(item(corpus, "data.bin").id).download_url
    get = fetch(url)
    head = fetch(url, method="HEAD")
    assert head.status_code == 200 and head.content == b"", fmt(head)
    for name in ("content-type", "content-length", "etag", "content-disposition"):
        assert head.headers.get(name) == get.headers.get(name), f"HEAD mirrors GET's {name}: {dict(head.headers)}"
    origin, path, q = split_signed(url)
    bad = fetch(f"{origin}{path}?exp={q['exp']}&kid={q['kid']}&sig=AAAA", method="HEAD")
    assert bad.status_code == 403, f"HEAD verifies as GET: {fmt(bad)}"


TRICKY_NAME = "50% off #1 (a+b) [x]; y & z,\u00e9.txt"
LARGE = secrets.token_bytes(1536 * 1024 + 7)


def test_signed_url_tricky_name_empty_and_large(client: Gumloop, fake_openai: FakeOpenAI, scratch_agent: str) -> None:
    """Reserved URL characters in the filename, a 0-byte artifact, and a 1.5 MiB one (ranges across chunks)."""
    arts = scratch(
        client,
        fake_openai,
        scratch_agent,
        [
            [
                write_call(TRICKY_NAME, "tricky", media_type="text/plain"),
                write_call("empty.txt", "", media_type="text/plain"),
                write_call("large.bin", b64(LARGE), media_type="application/octet-stream", encoding="base64"),
            ]
        ],
    )
    assert sorted(arts) == sorted([TRICKY_NAME, "empty.txt", "large.bin"]), sorted(arts)
    tricky = client.artifacts.download(arts[TRICKY_NAME].id)
    assert tricky.filename == TRICKY_NAME, tricky
    _, path, _ = split_signed(tricky.download_url)
    segment = path.rsplit("/", 1)[1]
    assert segment.isascii() and not any(c in segment for c in " #?[]") and re.fullmatch(r"(?:[^%]|%[0-9A-Fa-f]{2})*", segment), (
        f"the filename segment is percent-encoded (space, #, ?, %, non-ASCII): {segment!r}"
    )
    assert unquote(segment) == TRICKY_NAME, segment
    assert_bytes_response(fetch(tricky.download_url), b"tricky", "text/plain", TRICKY_NAME)

    empty = client.artifacts.download(arts["empty.txt"].id)
    assert empty.size == 0, empty
    assert_bytes_response(fetch(empty.download_url), b"", "text/plain", "empty.txt")
    resp = fetch(empty.download_url, headers={"Range": "bytes=0-0"})
    assert resp.status_code == 416, f"no byte of an empty artifact is satisfiable: {fmt(resp)}"

    large = client.artifacts.download(arts["large.bin"].id)
    assert large.size == len(LARGE), large
    resp = fetch(large.download_url)
    assert resp.status_code == 200 and resp.content == LARGE, f"{len(resp.content)} bytes of {len(LARGE)}"
    n = len(LARGE)
    for lo, hi in ((1_000_000, 1_000_099), (65_530, 131_080), (n - 70_000, n - 1), (0, n - 1)):
        r = fetch(large.download_url, headers={"Range": f"bytes={lo}-{hi}"})
        assert r.status_code == 206 and r.content == LARGE[lo : hi + 1], (
            f"Range {lo}-{hi}: {r.status_code}, {len(r.content)} bytes"
        )
        assert r.headers.get("content-range") == f"bytes {lo}-{hi}/{n}", dict(r.headers)


# ---------------------------------------------------------------------------
# §9.2 item 5: tampering, expiry, rotation, public URL
# ---------------------------------------------------------------------------


def _tampered(url: str, what: str, corpus: dict[str, Any], client: Gumloop) -> str:
    origin, path, q = split_signed(url)
    _, _files, _v1, _artifacts, art_id, _versions, ver_id, name = path.split("/")
    query = f"exp={q['exp']}&kid={q['kid']}&sig={q['sig']}"
    flip = "A" if q["sig"][0] != "A" else "B"
    if what == "sig_modified":
        return f"{origin}{path}?exp={q['exp']}&kid={q['kid']}&sig={flip}{q['sig'][1:]}"
    if what == "sig_truncated":
        return f"{origin}{path}?exp={q['exp']}&kid={q['kid']}&sig={q['sig'][:-2]}"
    if what == "sig_missing":
        return f"{origin}{path}?exp={q['exp']}&kid={q['kid']}"
    if what == "sig_empty":
        return f"{origin}{path}?exp={q['exp']}&kid={q['kid']}&sig="
    if what == "query_dropped":
        return f"{origin}{path}"
    if what == "exp_extended":
        return f"{origin}{path}?exp={int(q['exp']) + 3600}&kid={q['kid']}&sig={q['sig']}"
    if what == "exp_malformed":
        return f"{origin}{path}?exp=soon&kid={q['kid']}&sig={q['sig']}"
    if what == "kid_unknown":
        return f"{origin}{path}?exp={q['exp']}&kid=knope&sig={q['sig']}"
    if what == "kid_other_configured":
        return f"{origin}{path}?exp={q['exp']}&kid=kconfB&sig={q['sig']}"
    if what == "artifact_swapped":
        other_id = item(corpus, "data.bin").id
        return f"{origin}/files/v1/artifacts/{other_id}/versions/{ver_id}/{name}?{query}"
    if what == "retarget_other_artifact":
        other = item(corpus, "data.bin")
        return f"{origin}/files/v1/artifacts/{other.id}/versions/{other.version_id}/data.bin?{query}"
    if what == "version_swapped":
        older = client.artifacts.list_versions(art_id).versions[-1].version_id
        assert older != ver_id
        return f"{origin}/files/v1/artifacts/{art_id}/versions/{older}/{name}?{query}"
    if what == "filename_changed":
        return f"{origin}/files/v1/artifacts/{art_id}/versions/{ver_id}/other.txt?{query}"
    if what == "filename_case":
        return f"{origin}/files/v1/artifacts/{art_id}/versions/{ver_id}/{name.upper()}?{query}"
    if what == "filename_extra_segment":
        return f"{origin}/files/v1/artifacts/{art_id}/versions/{ver_id}/{name}/x?{query}"
    raise AssertionError(what)


TAMPER_CASES = [
    "sig_modified",
    "sig_truncated",
    "sig_missing",
    "sig_empty",
    "query_dropped",
    "exp_extended",
    "exp_malformed",
    "kid_unknown",
    "kid_other_configured",
    "artifact_swapped",
    "retarget_other_artifact",
    "version_swapped",
    "filename_changed",
    "filename_case",
]


@pytest.mark.parametrize("what", TAMPER_CASES)
def test_signed_url_tampering_is_403_signature_invalid(client: Gumloop, corpus: dict[str, Any], what: str) -> None:
    a = item(corpus, "notes.txt")
    url = client.artifacts.download(a.id).download_url
    assert fetch(url).status_code == 200, "the untouched URL works"
    bad = _tampered(url, what, corpus, client)
    assert bad != url
    resp = fetch(bad)
    # A path the file route does not match at all could be a 404; every case here keeps the route shape.
    assert_http_error(resp, 403, "signature_invalid")
    assert resp.content.find(b"notes v") < 0, "no bytes leak on a failed signature"
    assert resp.headers.get("cache-control") == "no-store", (
        f"JSON responses send Cache-Control: no-store (§9.2 item 3): {dict(resp.headers)}"
    )
    assert resp.headers.get("x-content-type-options") == "nosniff", dict(resp.headers)


def test_signed_url_expired(client: Gumloop, artifact_server: OpenloopServer, corpus: dict[str, Any]) -> None:
    url = client.artifacts.download(item(corpus, "notes.txt").id).download_url
    origin, path, _ = split_signed(url)
    now = int(time.time())
    resp = fetch(forge(origin, path, now - 120))
    assert_http_error(resp, 403, "signature_expired")
    resp = fetch(forge(origin, path, now - 3600, kid="kconfB"))
    assert_http_error(resp, 403, "signature_expired")
    # A correctly signed, unexpired URL with an exp the server never issued is valid: the URL is the grant.
    ok = fetch(forge(origin, path, now + 120))
    assert ok.status_code == 200 and ok.content == NOTES[2].encode(), fmt(ok)
    m = re.fullmatch(r"private,\s*max-age=(\d+)", ok.headers.get("cache-control", ""))
    assert m and 100 <= int(m.group(1)) <= 120, f"max-age = seconds to exp: {dict(ok.headers)}"
    # Signed with a key the server does not have (kid known).
    resp = fetch(forge(origin, path, now + 120, secret=secrets.token_bytes(32)))
    assert_http_error(resp, 403, "signature_invalid")


def test_signed_url_any_configured_key_verifies(client: Gumloop, corpus: dict[str, Any]) -> None:
    url = client.artifacts.download(item(corpus, "data.bin").id).download_url
    origin, path, q = split_signed(url)
    resp = fetch(forge(origin, path, q["exp"], kid="kconfB"))
    assert resp.status_code == 200 and resp.content == BINARY, f"a second configured key verifies (rotation): {fmt(resp)}"


@pytest.fixture(scope="module")
def public_url_server(start_server: Callable[..., OpenloopServer], fake_openai: FakeOpenAI) -> OpenloopServer:
    return start_server(
        rate_limit=100_000,
        rate_window=60,
        extra_env=_llm_env(fake_openai, OPENLOOP_PUBLIC_URL="https://files.conformance.example/"),
    )


def test_signed_url_built_from_public_url_not_host(public_url_server: OpenloopServer, fake_openai: FakeOpenAI) -> None:
    srv = public_url_server
    c = srv.sdk(srv.admin_key, user_id=srv.admin_user_id)
    try:
        aid = new_session_agent(c)
        sid, _ = run_writes(c, fake_openai, [[write_call("pub.txt", "public url")]], agent_id=aid)
        [a] = list_all(c, aid, session_id=sid)
        assert a.url.startswith("https://files.conformance.example/files/v1/artifacts/"), a.url
        with srv.http(srv.admin_key, srv.admin_user_id) as h:
            resp = h.get(f"/artifacts/{a.id}/download", headers={"Host": "evil.example:4444", "X-Forwarded-Host": "evil.example"})
            body = assert_ok(resp)
        url = body["download_url"]
        assert url.startswith("https://files.conformance.example/files/v1/artifacts/"), f"never from the request Host: {url}"
        assert "evil" not in url
        _, path, q = split_signed(url)
        # The signature covers the path only, so the same path and query work on the real listener.
        got = fetch(f"{srv.url}{path}?exp={q['exp']}&kid={q['kid']}&sig={q['sig']}")
        assert got.status_code == 200 and got.content == b"public url", fmt(got)
    finally:
        c.close()


# ---------------------------------------------------------------------------
# A5 versions
# ---------------------------------------------------------------------------


def test_a5_versions_newest_first_one_current(client: Gumloop, raw: httpx.Client, corpus: dict[str, Any]) -> None:
    a = item(corpus, "notes.txt")
    body = assert_ok(raw.get(f"/artifacts/{a.id}/versions"))
    assert isinstance(body.get("versions"), list), body
    assert "next_cursor" not in body, f"A5 is unpaginated, without next_cursor (§4): {body}"
    ArtifactVersionsResponse.model_validate(body)
    versions = client.artifacts.list_versions(a.id).versions
    assert [v.major_version for v in versions] == [3, 2, 1], versions
    stamps = [v.created_ts for v in versions]
    assert all(isinstance(t, str) and V1_TS_RE.match(t) for t in stamps), f"created_ts is v1 format (§1.5): {stamps}"
    assert stamps == sorted(stamps, reverse=True), f"newest first: {stamps}"
    assert [v.is_current for v in versions] == [True, False, False], f"exactly one is_current: {versions}"
    assert versions[0].version_id == a.version_id
    run1_notes = [f["version_id"] for f in file_parts(corpus["run1"]) if f["filename"] == "notes.txt"]
    assert [v.version_id for v in versions] == list(reversed(run1_notes)), (versions, run1_notes)
    for v, content in zip(versions, reversed(NOTES)):
        assert VER_RE.match(v.version_id), v
        assert v.filename == "notes.txt" and v.media_type == "text/plain" and v.size == len(content.encode()), v
    single = client.artifacts.list_versions(item(corpus, "data.bin").id).versions
    assert len(single) == 1 and single[0].is_current is True and single[0].major_version == 1, single
    report = client.artifacts.list_versions(item(corpus, "report.md").id).versions
    assert [v.major_version for v in report] == [2, 1] and [v.is_current for v in report] == [True, False], report
    assert [v.size for v in report] == [len(REPORT_V2.encode()), len(REPORT_V1.encode())], report
    expect_api_error(client.artifacts.list_versions, UNKNOWN_ARTIFACT, status=404, code="artifact_not_found")


# ---------------------------------------------------------------------------
# A4 rename
# ---------------------------------------------------------------------------


def test_a4_rename_and_reset(client: Gumloop, raw: httpx.Client, fake_openai: FakeOpenAI, scratch_agent: str) -> None:
    arts = scratch(client, fake_openai, scratch_agent, [[write_call("draft.md", "# draft\n")]])
    a = arts["draft.md"]
    renamed = client.artifacts.rename(a.id, "  Final Report.md \t")
    assert isinstance(renamed, ArtifactNameResponse) and renamed.name == "Final Report.md", renamed
    [listed] = list_all(client, scratch_agent, session_id=a.session_id)
    assert listed.filename == "Final Report.md", f"filename = the display name: {listed}"
    assert listed.metadata.get("stored_filename") == "draft.md", f"the stored name is unchanged: {listed}"
    assert listed.version_id == a.version_id and listed.major_version == a.major_version, "renaming is not a new version"
    dl = client.artifacts.download(a.id)
    assert dl.filename == "Final Report.md", f"A2 returns the display filename: {dl}"
    assert fetch(dl.download_url).content == b"# draft\n"
    assert [x.id for x in client.artifacts.list(scratch_agent, search_query="Final Report", page_size=100).artifacts] == [a.id], (
        "search_query matches the filename (display name)"
    )
    # null resets to the stored name.
    reset = client.artifacts.rename(a.id, None)
    assert reset.name is None, reset
    body = assert_ok(raw.put(f"/artifacts/{a.id}/name", json={"name": None}))
    assert body == {"name": None}, f"A4 answers {{\"name\": null}} after a reset: {body}"
    [listed] = list_all(client, scratch_agent, session_id=a.session_id)
    assert listed.filename == "draft.md", listed
    assert client.artifacts.download(a.id).filename == "draft.md"
    # Raw body of a rename.
    body = assert_ok(raw.put(f"/artifacts/{a.id}/name", json={"name": "wire.md"}))
    assert body == {"name": "wire.md"}, body


def test_a4_rename_sanitizes(client: Gumloop, fake_openai: FakeOpenAI, scratch_agent: str) -> None:
    a = scratch(client, fake_openai, scratch_agent, [[write_call("s.txt", "s")]])["s.txt"]
    cases = {
        'ab:c?d*"e<f>g|h.md': "ab_c_d__e_f_g_h.md",
        "CON.txt": "_CON.txt",
        "e\u0301t\u00e9.txt": unicodedata.normalize("NFC", "e\u0301t\u00e9.txt"),
        "n" * 255: "n" * 255,
    }
    for given, want in cases.items():
        got = client.artifacts.rename(a.id, given)
        assert got.name == want, f"rename({given!r}) → {want!r} (§9.2 item 8 sanitizing), got {got.name!r}"
        assert client.artifacts.download(a.id).filename == want


def test_a4_invalid_names(client: Gumloop, raw: httpx.Client, fake_openai: FakeOpenAI, scratch_agent: str) -> None:
    a = scratch(client, fake_openai, scratch_agent, [[write_call("keep.txt", "k")]])["keep.txt"]
    for bad in ("", "   ", "\t\n", "x" * 257):
        expect_api_error(client.artifacts.rename, a.id, bad, status=400, code="invalid_name", param="name")
    # Path-like names: A4 lists invalid_name; §9.2 item 8 calls the same rule invalid_file_name.
    for bad in ("a/b.md", "a\\b.md", "..", "bad\x00name.txt", "C:evil.txt"):
        with pytest.raises(Exception) as info:
            client.artifacts.rename(a.id, bad)
        exc = info.value
        assert getattr(exc, "status_code", None) == 400 and exc.code in ("invalid_name", "invalid_file_name"), (bad, exc)
    # The key is required; a non-string is invalid.
    assert_http_error(raw.put(f"/artifacts/{a.id}/name", json={}), 400, "invalid_request")
    resp = raw.put(f"/artifacts/{a.id}/name", json={"name": 42})
    assert resp.status_code == 400, fmt(resp)
    # Nothing changed.
    [listed] = list_all(client, scratch_agent, session_id=a.session_id)
    assert listed.filename == "keep.txt", listed
    expect_api_error(client.artifacts.rename, UNKNOWN_ARTIFACT, "x.md", status=404, code="artifact_not_found")


# ---------------------------------------------------------------------------
# A3 delete
# ---------------------------------------------------------------------------


def test_a3_delete(client: Gumloop, raw: httpx.Client, fake_openai: FakeOpenAI, scratch_agent: str) -> None:
    arts = scratch(
        client,
        fake_openai,
        scratch_agent,
        [[write_call("gone.txt", "old")], [write_call("gone.txt", "new")], [write_call("stays.txt", "stays")]],
    )
    a, keep = arts["gone.txt"], arts["stays.txt"]
    versions = client.artifacts.list_versions(a.id).versions
    old_url = client.artifacts.download(a.id, version_id=versions[-1].version_id).download_url
    cur_url = client.artifacts.download(a.id).download_url
    list_url = a.url
    assert fetch(old_url).content == b"old" and fetch(cur_url).content == b"new"

    deleted = client.artifacts.delete(a.id)
    assert isinstance(deleted, ArtifactDeletedResponse) and deleted.deleted is True, deleted
    # Repeat → 404 (raw: the exact body of the first call is checked through the SDK model above).
    assert_http_error(raw.delete(f"/artifacts/{a.id}"), 404, "artifact_not_found")
    expect_api_error(client.artifacts.delete, a.id, status=404, code="artifact_not_found")
    expect_api_error(client.artifacts.download, a.id, status=404, code="artifact_not_found")
    expect_api_error(client.artifacts.list_versions, a.id, status=404, code="artifact_not_found")
    expect_api_error(client.artifacts.rename, a.id, "x.txt", status=404, code="artifact_not_found")
    expect_api_error(client.artifacts.set_password, a.id, "long enough pw", status=404, code="artifact_not_found")
    listed = [x.id for x in list_all(client, scratch_agent, session_id=a.session_id)]
    assert listed == [keep.id], "deleted artifacts are not listed"
    # Issued URLs (every version) stop working: valid signature, deleted artifact → 404.
    for url in (old_url, cur_url, list_url):
        assert_http_error(fetch(url), 404, "artifact_not_found")
        assert fetch(url, method="HEAD").status_code == 404
    # The other artifact is untouched.
    assert fetch(keep.url).content == b"stays"
    expect_api_error(client.artifacts.delete, UNKNOWN_ARTIFACT, status=404, code="artifact_not_found")


def test_a3_delete_raw_body(client: Gumloop, raw: httpx.Client, fake_openai: FakeOpenAI, scratch_agent: str) -> None:
    a = scratch(client, fake_openai, scratch_agent, [[write_call("raw-delete.txt", "x")]])["raw-delete.txt"]
    assert assert_ok(raw.delete(f"/artifacts/{a.id}")) == {"deleted": True}


# ---------------------------------------------------------------------------
# A8 password, A6/A7 access
# ---------------------------------------------------------------------------


def test_a8_set_password(client: Gumloop, raw: httpx.Client, fake_openai: FakeOpenAI, scratch_agent: str) -> None:
    a = scratch(client, fake_openai, scratch_agent, [[write_call("locked.txt", "secret bytes")]])["locked.txt"]
    for good in ("correct horse battery", "8charsok", "p" * 256):
        res = client.artifacts.set_password(a.id, good)
        assert isinstance(res, ArtifactPasswordResponse) and res.success is True, res
    assert assert_ok(raw.put(f"/artifacts/{a.id}/password", json={"password": "another one"})) == {"success": True}
    for bad in ("short", "7chars!", "", "p" * 257):
        expect_api_error(client.artifacts.set_password, a.id, bad, status=400, code="invalid_password")
    resp = raw.put(f"/artifacts/{a.id}/password", json={"password": 12345678})
    assert resp.status_code == 400, fmt(resp)
    # Signed URLs are unaffected by a password.
    dl = client.artifacts.download(a.id)
    assert fetch(dl.download_url).content == b"secret bytes"
    assert "another one" not in json.dumps(client.artifacts.list(scratch_agent, page_size=100).model_dump())
    expect_api_error(client.artifacts.set_password, UNKNOWN_ARTIFACT, "long enough", status=404, code="artifact_not_found")


def test_a7_link_modes_are_501(client: Gumloop, corpus: dict[str, Any]) -> None:
    """A7 = S18; public link modes are later (S18: ``link.mode`` other than ``none`` → 501)."""
    a = item(corpus, "data.bin")
    expect_api_error(client.artifacts.update_access, a.id, link={"mode": "anyone"}, status=501, code="not_implemented")


def test_a6_get_access_as_s17(client: Gumloop, fake_openai: FakeOpenAI, scratch_agent: str) -> None:
    a = scratch(client, fake_openai, scratch_agent, [[write_call("access.txt", "a")]])["access.txt"]
    access = client.artifacts.get_access(a.id).access
    assert access.password_protected is False
    client.artifacts.set_password(a.id, "a long password")
    assert client.artifacts.get_access(a.id).access.password_protected is True, "password_protected reflects A8"


def test_a7_password_link_without_password_is_400(client: Gumloop, fake_openai: FakeOpenAI, scratch_agent: str) -> None:
    a = scratch(client, fake_openai, scratch_agent, [[write_call("nopw.txt", "a")]])["nopw.txt"]
    expect_api_error(client.artifacts.update_access, a.id, link={"mode": "password"}, status=400, code="invalid_request")


# ---------------------------------------------------------------------------
# Visibility (§2.5)
# ---------------------------------------------------------------------------


def test_other_tenant_gets_404(client: Gumloop, other: Principal, fake_openai: FakeOpenAI, corpus: dict[str, Any]) -> None:
    a = item(corpus, "report.md")
    oc = other.client
    expect_api_error(oc.artifacts.download, a.id, status=404, code="artifact_not_found")
    expect_api_error(oc.artifacts.download, a.id, version_id=a.version_id, status=404, code="artifact_not_found")
    expect_api_error(oc.artifacts.list_versions, a.id, status=404, code="artifact_not_found")
    expect_api_error(oc.artifacts.delete, a.id, status=404, code="artifact_not_found")
    expect_api_error(oc.artifacts.rename, a.id, "hijack.md", status=404, code="artifact_not_found")
    expect_api_error(oc.artifacts.set_password, a.id, "long enough pw", status=404, code="artifact_not_found")
    # Nothing happened to it.
    assert client.artifacts.download(a.id).filename == "report.md"
    # And the other way round: the other tenant's artifact is invisible to the bootstrap user.
    oaid = new_session_agent(oc)
    osid, _ = run_writes(oc, fake_openai, [[write_call("theirs.txt", "theirs")]], agent_id=oaid)
    [theirs] = list_all(oc, oaid, session_id=osid)
    assert fetch(theirs.url).content == b"theirs"
    expect_api_error(client.artifacts.download, theirs.id, status=404, code="artifact_not_found")
    expect_api_error(client.artifacts.delete, theirs.id, status=404, code="artifact_not_found")
    expect_api_error(client.artifacts.list_versions, theirs.id, status=404, code="artifact_not_found")
    expect_api_error(client.artifacts.list, oaid, status=404, code="agent_not_found")
    assert [x.id for x in list_all(oc, oaid)] == [theirs.id]


def test_team_member_cannot_read_another_users_session_artifacts(
    client: Gumloop, member: Principal, artifact_server: OpenloopServer, fake_openai: FakeOpenAI
) -> None:
    """Artifact read = readers of its session (§2.5): a team agent is visible to the member, the
    admin's session in it is not readable → 403 permission_denied; the list omits it."""
    aid = new_session_agent(client, team_id=artifact_server.team_id)
    sid, _ = run_writes(client, fake_openai, [[write_call("team-admin.txt", "admin's")]], agent_id=aid)
    [mine] = list_all(client, aid, session_id=sid)
    msid, _ = run_writes(member.client, fake_openai, [[write_call("team-member.txt", "member's")]], agent_id=aid)
    [theirs] = list_all(member.client, aid, session_id=msid)
    assert {a.id for a in list_all(member.client, aid)} == {theirs.id}, "A1 lists only artifacts the caller may read"
    assert fetch(member.client.artifacts.download(theirs.id).download_url).content == b"member's"
    mc = member.client
    expect_api_error(mc.artifacts.download, mine.id, status=403, code="permission_denied")
    expect_api_error(mc.artifacts.list_versions, mine.id, status=403, code="permission_denied")
    expect_api_error(mc.artifacts.delete, mine.id, status=403, code="permission_denied")
    expect_api_error(mc.artifacts.rename, mine.id, "x.txt", status=403, code="permission_denied")
    assert fetch(mine.url).content == b"admin's", "the admin's artifact is intact"


def test_team_scope(
    client: Gumloop, artifact_server: OpenloopServer, fake_openai: FakeOpenAI, corpus: dict[str, Any]
) -> None:
    """§2.4: a team_id scope restricts lookups to that team; unknown teams are 404 team_not_found;
    a team key reaches only the team's objects. A2–A5 accept team_id (§8.3)."""
    srv = artifact_server
    taid = new_session_agent(client, team_id=srv.team_id)
    tsid, _ = run_writes(client, fake_openai, [[write_call("team.txt", "team bytes")]], agent_id=taid)
    [team_art] = list_all(client, taid, session_id=tsid)
    personal = item(corpus, "report.md")
    scoped = srv.sdk(srv.admin_key, user_id=srv.admin_user_id, team_id=srv.team_id)
    team_key = srv.sdk(srv.team_key, user_id=srv.admin_user_id)
    try:
        for c in (scoped, team_key):
            assert fetch(c.artifacts.download(team_art.id).download_url).content == b"team bytes"
            assert [v.version_id for v in c.artifacts.list_versions(team_art.id).versions] == [team_art.version_id]
            assert [a.id for a in c.artifacts.list(taid, page_size=100).artifacts] == [team_art.id]
            expect_api_error(c.artifacts.download, personal.id, status=404, code="artifact_not_found")
            expect_api_error(c.artifacts.list_versions, personal.id, status=404, code="artifact_not_found")
            expect_api_error(c.artifacts.rename, personal.id, "x.md", status=404, code="artifact_not_found")
            expect_api_error(c.artifacts.delete, personal.id, status=404, code="artifact_not_found")
            expect_api_error(c.artifacts.list, corpus["agent"], status=404, code="agent_not_found")
        # Explicit team_id through the SDK methods' own parameter / **kwargs.
        assert client.artifacts.download(team_art.id, team_id=srv.team_id).filename == "team.txt"
        expect_api_error(client.artifacts.download, personal.id, team_id=srv.team_id, status=404, code="artifact_not_found")
        expect_api_error(client.artifacts.list_versions, personal.id, team_id=srv.team_id, status=404, code="artifact_not_found")
        for fn, args in (
            (client.artifacts.download, (personal.id,)),
            (client.artifacts.list_versions, (personal.id,)),
            (client.artifacts.delete, (personal.id,)),
            (client.artifacts.rename, (personal.id, "x.md")),
        ):
            expect_api_error(fn, *args, team_id="team_no_such_team", status=404, code="team_not_found")
        # Untouched by all of the above.
        assert client.artifacts.download(personal.id).filename == "report.md"
    finally:
        scoped.close()
        team_key.close()


def test_signed_url_wrong_method_is_405(client: Gumloop, corpus: dict[str, Any]) -> None:
    url = client.artifacts.download(item(corpus, "data.bin").id).download_url
    for method in ("POST", "PUT", "DELETE"):
        resp = fetch(url, method=method)
        assert_http_error(resp, 405, "method_not_allowed")
        allow = {m.strip().upper() for m in resp.headers.get("allow", "").split(",")}
        assert "GET" in allow, f"405 carries Allow: {dict(resp.headers)}"
    assert fetch(url).content == BINARY, "still served after the refused methods"


# ---------------------------------------------------------------------------
# The gumloop CLI (§1.1): A2 then an unauthenticated GET of the signed URL
# ---------------------------------------------------------------------------


def run_cli(srv: OpenloopServer, home: str, *args: str, auth: str = "api_key") -> subprocess.CompletedProcess[bytes]:
    return run_gumloop_cli(srv, home, *args, auth=auth, timeout=60)


def test_cli_artifacts_download(artifact_server: OpenloopServer, client: Gumloop, corpus: dict[str, Any]) -> None:
    with tempfile.TemporaryDirectory(prefix="openloop-cli-") as home:
        # Into a directory: the file gets the server's filename.
        out_dir = os.path.join(home, "downloads") + os.sep
        report = item(corpus, "report.md")
        proc = run_cli(artifact_server, home, "artifacts", "download", report.id, "-o", out_dir, "--json")
        assert proc.returncode == 0, f"CLI failed ({proc.returncode}): {proc.stdout!r} {proc.stderr!r}"
        meta = json.loads(proc.stdout)
        path = Path(out_dir) / "report.md"
        assert meta["path"] == str(path) and meta["bytes"] == len(REPORT_V2.encode()), meta
        assert meta["filename"] == "report.md" and meta["media_type"] == report.metadata["media_type"], meta
        assert path.read_bytes() == REPORT_V2.encode()

        # Binary to stdout, authenticating with GUMLOOP_ACCESS_TOKEN.
        data = item(corpus, "data.bin")
        proc = run_cli(artifact_server, home, "artifacts", "download", data.id, "-o", "-", auth="access_token")
        assert proc.returncode == 0, f"CLI failed ({proc.returncode}): {proc.stderr!r}"
        assert proc.stdout == BINARY, f"stdout must be the exact bytes ({len(proc.stdout)} vs {len(BINARY)})"

        # An older version into an explicit file name.
        notes = item(corpus, "notes.txt")
        v1 = client.artifacts.list_versions(notes.id).versions[-1].version_id
        target = os.path.join(home, "old-notes.txt")
        proc = run_cli(artifact_server, home, "artifacts", "download", notes.id, "--version-id", v1, "-o", target)
        assert proc.returncode == 0, f"CLI failed ({proc.returncode}): {proc.stdout!r} {proc.stderr!r}"
        assert Path(target).read_bytes() == NOTES[0].encode()

        # Errors surface as failures, not files.
        proc = run_cli(artifact_server, home, "artifacts", "download", UNKNOWN_ARTIFACT, "-o", out_dir, "--json")
        assert proc.returncode != 0, proc
        assert b"artifact_not_found" in proc.stdout + proc.stderr, (proc.stdout, proc.stderr)
        assert sorted(os.listdir(out_dir)) == ["report.md"], os.listdir(out_dir)
