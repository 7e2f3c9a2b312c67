"""A real MCP server for the tests (PyPI ``mcp``'s FastMCP over Streamable HTTP).

``python mcp_fixture_server.py PORT [TOKEN]`` serves ``http://127.0.0.1:PORT/mcp``;
``python mcp_fixture_server.py stdio`` speaks MCP on stdin/stdout instead. With
TOKEN, every request must carry ``Authorization: Bearer TOKEN`` (401 otherwise), so the
tests can show that registered headers reach the server. Tools:

- ``add_note(text)``: a write tool (no ``readOnlyHint``); appends to an in-memory list.
- ``list_notes()``: ``readOnlyHint: true``.
- ``fail()``: always raises (an ``isError`` result).

Plus a resource ``notes://all`` and a prompt ``summarize(topic)``. Every tool call is
also appended to ``calls.log`` next to this file's ``CALL_LOG`` env path when set.
"""

from __future__ import annotations

import json
import os
import sys

import uvicorn
from mcp.server.fastmcp import FastMCP
from mcp.types import ToolAnnotations

STDIO = sys.argv[1] == "stdio"
PORT = 0 if STDIO else int(sys.argv[1])
TOKEN = sys.argv[2] if len(sys.argv) > 2 else ""
CALL_LOG = os.environ.get("CALL_LOG", "")

mcp = FastMCP("notes", host="127.0.0.1", port=PORT, log_level="WARNING")
NOTES: list[str] = []


def _log(name: str, args: dict) -> None:
    if CALL_LOG:
        with open(CALL_LOG, "a", encoding="utf-8") as f:
            f.write(json.dumps({"tool": name, "arguments": args}) + "\n")


@mcp.tool(description="Add a note to the notebook.")
def add_note(text: str) -> str:
    _log("add_note", {"text": text})
    NOTES.append(text)
    return f"added note #{len(NOTES)}: {text}"


@mcp.tool(description="List the notes in the notebook.", annotations=ToolAnnotations(readOnlyHint=True))
def list_notes() -> str:
    _log("list_notes", {})
    return json.dumps(NOTES)


@mcp.tool(description="A tool that always fails.")
def fail() -> str:
    _log("fail", {})
    raise RuntimeError("the fail tool failed on purpose")


@mcp.resource("notes://all", name="all_notes", description="Every note, one per line.", mime_type="text/plain")
def all_notes() -> str:
    return "\n".join(NOTES) or "(no notes)"


@mcp.prompt(description="Ask for a summary of a topic.")
def summarize(topic: str) -> str:
    return f"Please summarize what we know about {topic}."


def main() -> None:
    if STDIO:
        mcp.run(transport="stdio")
        return
    app = mcp.streamable_http_app()
    if TOKEN:
        inner = app

        async def app(scope, receive, send):  # type: ignore[no-redef]
            if scope["type"] == "http":
                headers = dict(scope.get("headers") or [])
                if headers.get(b"authorization", b"").decode() != f"Bearer {TOKEN}":
                    await send({"type": "http.response.start", "status": 401, "headers": [(b"content-type", b"text/plain")]})
                    await send({"type": "http.response.body", "body": b"missing or wrong bearer token"})
                    return
            await inner(scope, receive, send)

    uvicorn.run(app, host="127.0.0.1", port=PORT, log_level="warning")


if __name__ == "__main__":
    main()
