"""The web console at ``/``, driven in headless Chromium (Debian's ``chromium`` package)
through Playwright from PyPI: sign in, create an agent, start a session and watch the
streamed reply appear, answer an approval, follow up, sign out. Screenshots of each
screen go to ``docs/console/``. No API key may appear in a URL, the served HTML or a log
line.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Iterator

import pytest

from _support import OpenloopServer
from fake_openai import FakeOpenAI, chunks, text, tool_call

CHROMIUM = os.environ.get("OPENLOOP_CHROMIUM", "/usr/bin/chromium")
SHOTS = Path(__file__).resolve().parent.parent / "docs" / "console"


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    if not os.path.exists(CHROMIUM):
        pytest.fail(f"{CHROMIUM} not found: install Debian's chromium (apt-get install chromium) or set OPENLOOP_CHROMIUM", pytrace=False)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(
            executable_path=CHROMIUM,
            headless=True,
            args=["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync"],
        )
        yield b
        b.close()


def shot(page: object, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)  # type: ignore[attr-defined]


def test_console_signs_in_streams_a_reply_answers_an_approval_and_keeps_the_key_secret(
    browser: object, llm_server: OpenloopServer, fake_openai: FakeOpenAI
) -> None:
    key = llm_server.admin_key
    fake_openai.enqueue(chunks(["Hello ", "from ", "the ", "console."], chunk_delay=0.6), match="hi console")
    fake_openai.enqueue(tool_call("current_time", {}), text("It is time."), match="what time is it, console")
    fake_openai.enqueue(text("Follow-up answered."), match="and one more thing")
    fake_openai.enqueue(text("Queued answered."), match="queued after this")
    ctx = browser.new_context(viewport={"width": 1100, "height": 800})  # type: ignore[attr-defined]
    page = ctx.new_page()
    urls: list[str] = []
    page.on("request", lambda r: urls.append(r.url))

    # Sign in: a wrong key is refused, the right one lands on the agents list.
    page.goto(llm_server.url + "/")
    page.get_by_label("API key").fill("olk_" + "x" * 43)
    page.get_by_role("button", name="Sign in").click()
    page.get_by_role("alert").wait_for()
    assert "not accepted" in page.get_by_role("alert").inner_text()
    shot(page, "01-sign-in")
    page.get_by_label("API key").fill(key)
    page.get_by_role("button", name="Sign in").click()
    page.get_by_role("heading", name="Agents").wait_for()

    # Create an agent (no approvals), start a session, watch the reply stream in.
    page.get_by_label("Name", exact=True).fill("Console agent")
    page.get_by_label("System prompt").fill("Be brief.")
    shot(page, "02-agents")
    page.get_by_role("button", name="Create agent").click()
    page.get_by_role("heading", name="Console agent").wait_for()
    page.get_by_label("Message", exact=True).fill("hi console")
    page.get_by_role("button", name="Send").click()
    page.wait_for_url(re.compile(r"#/sessions/"))
    # The reply appears piece by piece while the run is still processing.
    page.locator("#live-reply", has_text="Hello").wait_for()
    assert page.locator("#session-state").inner_text() in ("queued", "processing")
    assert "console." not in page.locator("#live-reply").inner_text()
    shot(page, "03-session-streaming")
    # A message queued while the run executes is delivered after it.
    page.get_by_label("Queue a message for after this run").fill("queued after this")
    page.get_by_role("button", name="Queue", exact=True).click()
    page.get_by_role("list", name="Queued messages").get_by_text("queued after this").wait_for()
    page.get_by_text("Queued answered.").wait_for(timeout=20_000)
    page.locator("#session-state", has_text="completed").wait_for(timeout=20_000)
    assert "Hello from the console." in page.locator(".transcript").inner_text()

    # A reload re-renders the finished transcript from the server.
    page.reload()
    page.locator("#session-state", has_text="completed").wait_for()
    assert "Hello from the console." in page.locator(".transcript").inner_text()

    # A follow-up message in the same session.
    page.get_by_label("Message", exact=True).fill("and one more thing")
    page.get_by_role("button", name="Send").click()
    page.get_by_text("Follow-up answered.").wait_for(timeout=20_000)
    page.locator("#session-state", has_text="completed").wait_for(timeout=20_000)
    shot(page, "04-session-completed")

    # An agent whose tools wait for approval: approve inline, the run finishes.
    page.get_by_role("link", name="Agents").click()
    page.get_by_role("heading", name="Agents").wait_for()
    page.get_by_label("Name", exact=True).fill("Careful agent")
    page.get_by_label("Tool approval").select_option("all")
    page.get_by_role("button", name="Create agent").click()
    page.get_by_role("heading", name="Careful agent").wait_for()
    page.get_by_label("Message", exact=True).fill("what time is it, console")
    page.get_by_role("button", name="Send").click()
    page.locator("#session-state", has_text="approval_required").wait_for(timeout=20_000)
    page.get_by_role("group", name="Pending approvals").wait_for()
    shot(page, "05-approval")
    page.get_by_role("button", name="Approve").click()
    page.locator("#session-state", has_text="completed").wait_for(timeout=20_000)
    assert "It is time." in page.locator(".transcript").inner_text()
    assert "current_time" in page.locator(".transcript").inner_text()

    # The agent page lists its sessions.
    page.get_by_role("link", name="agent", exact=True).click()
    page.get_by_role("heading", name="Careful agent").wait_for()
    page.get_by_text("completed").first.wait_for()

    # The key never appears in a URL, the served HTML or a log line.
    html = page.content()
    assert key not in html
    assert all(key not in u for u in urls), [u for u in urls if key in u]
    assert all(key not in line for line in llm_server.stdout_lines + llm_server.stderr_lines)
    for path in ("/", "/console/app.js", "/console/app.css"):
        resp = page.request.get(llm_server.url + path)
        assert resp.status == 200 and key not in resp.text()
        assert "default-src 'none'" in resp.headers["content-security-policy"]

    # Sign out forgets the key: back to the sign-in form.
    page.get_by_role("button", name="Sign out").click()
    page.get_by_label("API key").wait_for()
    assert page.evaluate("sessionStorage.length") == 0
    ctx.close()


def sign_in(browser: object, server: OpenloopServer) -> tuple[object, object]:
    ctx = browser.new_context(viewport={"width": 1100, "height": 800}, accept_downloads=True)  # type: ignore[attr-defined]
    page = ctx.new_page()
    page.goto(server.url + "/")
    page.get_by_label("API key").fill(server.admin_key)
    page.get_by_role("button", name="Sign in").click()
    page.get_by_role("heading", name="Agents").wait_for()
    return ctx, page


def test_console_previews_and_downloads_a_file_and_runs_a_flow(browser: object, llm_server: OpenloopServer, fake_openai: FakeOpenAI) -> None:
    fake_openai.enqueue(
        tool_call("write_artifact", {"filename": "notes.txt", "content": "console notes, line one"}),
        text("Saved the notes."),
        match="write the console notes",
    )
    with llm_server.http(llm_server.admin_key, llm_server.admin_user_id) as raw:
        doc = {
            "name": "Console greeting",
            "inputs": [{"name": "topic", "data_type": "string"}],
            "nodes": [{"id": "greet", "kind": "template", "template": "Hello, {{topic}}!"}],
            "outputs": [{"output_name": "greeting", "from": "greet"}],
        }
        r = raw.post("/flows", json={"document": doc})
        assert r.status_code == 201, r.text
        flow_id = r.json()["saved_item_id"]
    ctx, page = sign_in(browser, llm_server)

    # A session whose agent writes a file: preview it, download it through its signed URL.
    page.get_by_label("Name", exact=True).fill("Writer agent")
    page.get_by_role("button", name="Create agent").click()
    page.get_by_role("heading", name="Writer agent").wait_for()
    page.get_by_label("Message", exact=True).fill("write the console notes")
    page.get_by_role("button", name="Send").click()
    page.locator("#session-state", has_text="completed").wait_for(timeout=20_000)
    files = page.get_by_role("region", name="Files")
    files.get_by_text("notes.txt").wait_for()
    files.get_by_role("button", name="Preview").click()
    files.locator("pre", has_text="console notes, line one").wait_for()
    shot(page, "06-files")
    with page.expect_download() as info:
        files.get_by_role("button", name="Download").click()
    download = info.value
    assert download.suggested_filename == "notes.txt"
    assert Path(download.path()).read_text() == "console notes, line one"
    assert llm_server.admin_key not in download.url

    # A saved flow: run it with inputs, watch it finish, read its outputs.
    page.get_by_role("link", name="Flows").click()
    page.get_by_role("link", name="Console greeting").click()
    page.get_by_role("heading", name="Console greeting").wait_for()
    page.get_by_label("topic").fill("browser")
    page.get_by_role("button", name="Run flow").click()
    page.locator("#run-state", has_text="DONE").wait_for(timeout=20_000)
    assert '"greeting": "Hello, browser!"' in page.locator("#run-outputs").inner_text()
    shot(page, "07-flow-run")
    assert flow_id in page.url
    ctx.close()


def test_console_creates_and_revokes_an_api_key(browser: object, llm_server: OpenloopServer) -> None:
    ctx, page = sign_in(browser, llm_server)
    page.get_by_role("link", name="API keys").click()
    page.get_by_role("heading", name="API keys").wait_for()
    page.get_by_label("Label").fill("console key")
    page.get_by_role("button", name="Create key").click()
    secret = page.locator("#new-key-secret").inner_text()
    assert secret.startswith("olk_") and len(secret) == 47
    assert secret not in page.url
    # The new key works until it is revoked.
    with llm_server.http(secret, llm_server.admin_user_id) as raw:
        assert raw.get("/teams").status_code == 200
    page.get_by_role("cell", name="console key", exact=True).wait_for()
    shot(page, "08-api-keys")
    page.once("dialog", lambda d: d.accept())
    page.get_by_role("button", name="Revoke console key").click()
    page.get_by_text("revoked", exact=False).first.wait_for()
    with llm_server.http(secret, llm_server.admin_user_id) as raw:
        assert raw.get("/teams").status_code == 401
    # The secret is shown once: after a reload only its prefix is listed.
    page.reload()
    page.get_by_role("cell", name="console key", exact=True).wait_for()
    assert secret not in page.content()
    ctx.close()


def test_console_edits_an_agent_shows_version_diffs_searches_sessions_and_admin_pages(
    browser: object, llm_server: OpenloopServer, fake_openai: FakeOpenAI
) -> None:
    fake_openai.enqueue(text("Noted."), match="remember the pelican")
    ctx, page = sign_in(browser, llm_server)
    page.get_by_label("Name", exact=True).fill("Editable agent")
    page.get_by_label("System prompt").fill("Answer in English.")
    page.get_by_role("button", name="Create agent").click()
    page.get_by_role("heading", name="Editable agent").wait_for()
    agent_url = page.url
    # Edit: a new version whose diff shows the prompt's old and new text.
    edit = page.get_by_role("region", name="Edit agent")
    edit.get_by_label("System prompt").fill("Answer in French.")
    edit.get_by_label("Tool approval").select_option("write")
    edit.get_by_role("button", name="Save changes").click()
    page.get_by_role("button", name="Version 2").click()
    diff = page.get_by_role("table", name="Changes in version 2")
    diff.wait_for()
    assert "English" in diff.inner_text() and "French" in diff.inner_text()
    shot(page, "09-agent-versions")
    # Sessions: one to find by search.
    page.get_by_label("Message", exact=True).fill("remember the pelican")
    page.get_by_role("button", name="Send").click()
    page.locator("#session-state", has_text="completed").wait_for(timeout=20_000)
    page.goto(agent_url)
    # S3's search matches the session's name (else its agent's).
    page.get_by_role("searchbox", name="Search sessions").fill("editable")
    page.get_by_role("searchbox", name="Search sessions").press("Enter")
    page.locator("a[href^='#/sessions/']").first.wait_for()
    page.get_by_role("searchbox", name="Search sessions").fill("no-such-words-here")
    page.get_by_role("searchbox", name="Search sessions").press("Enter")
    page.get_by_text("No session matches.").wait_for()
    # Usage (credits from the ledger), a data export, the audit log.
    page.get_by_role("link", name="Usage and audit").click()
    page.get_by_role("heading", name="Credits, last 30 days").wait_for(timeout=20_000)
    page.get_by_role("table", name="Credits per agent or flow").locator("tbody tr").first.wait_for()
    page.get_by_role("heading", name=re.compile(r"Audit log \(\d+ events")).wait_for()
    assert "agent_created" in page.get_by_role("region", name="Audit log").inner_text()
    page.get_by_label("Data type").select_option("agents")
    page.get_by_role("button", name="Export CSV").click()
    page.locator("#export-download").wait_for(timeout=20_000)
    with page.expect_download() as info:
        page.locator("#export-download").click()
    assert "Editable agent" in Path(info.value.path()).read_text()
    shot(page, "10-usage-and-audit")
    ctx.close()


def test_console_answers_an_agents_questions_inline(browser: object, llm_server: OpenloopServer, fake_openai: FakeOpenAI) -> None:
    ask = {"title": "Trip details", "questions": [{"name": "city", "label": "Which city?", "type": "text"}]}
    fake_openai.enqueue(tool_call("human_input", ask), text("Booked for the city you named."), match="plan my console trip")
    with llm_server.http(llm_server.admin_key, llm_server.admin_user_id) as raw:
        r = raw.post("/agents", json={"name": "Asking agent", "model_name": "gpt-4o-mini", "tools": [{"type": "human_input"}]})
        assert r.status_code == 201, r.text
        agent_id = r.json()["agent"]["id"]
    ctx, page = sign_in(browser, llm_server)
    page.goto(f"{llm_server.url}/#/agents/{agent_id}")
    page.get_by_label("Message", exact=True).fill("plan my console trip")
    page.get_by_role("button", name="Send").click()
    page.locator("#session-state", has_text="approval_required").wait_for(timeout=20_000)
    page.get_by_role("form", name="Trip details").wait_for()
    page.get_by_label("Which city?").fill("Lisbon")
    shot(page, "11-question")
    page.get_by_role("button", name="Answer").click()
    page.locator("#session-state", has_text="completed").wait_for(timeout=20_000)
    assert "Booked for the city you named." in page.locator(".transcript").inner_text()
    # The answer reached the model as the tool's result.
    last = fake_openai.requests(match="plan my console trip")[-1]
    assert "Lisbon" in str(last.body["messages"]), last.body["messages"]
    ctx.close()
