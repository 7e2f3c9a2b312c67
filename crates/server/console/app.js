// Openloop console: plain ES modules, no build step (the server embeds this file).
// The API key lives in sessionStorage only: never in a URL, a cookie or the page.

const KEY = "openloop.api_key";
const main = document.getElementById("main");
const nav = document.getElementById("nav");
const statusEl = document.getElementById("status");
let stopStream = null;

class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

function apiKey() {
  return sessionStorage.getItem(KEY);
}

async function api(method, path, body, { signingIn = false } = {}) {
  const headers = { Authorization: `Bearer ${apiKey()}` };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const r = await fetch(`/api/v1${path}`, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  const text = await r.text();
  let data = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch {
    data = null;
  }
  if (!r.ok) {
    const e = data && data.error;
    const msg = (e && (e.message || e)) || r.statusText;
    // A key that stopped working (revoked) sends the user back to sign in.
    if (r.status === 401 && !signingIn) signOut();
    throw new ApiError(r.status, typeof msg === "string" ? msg : JSON.stringify(msg));
  }
  return data;
}

// Tiny DOM helper: h("div", {class: "x"}, child, "text").
function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else if (k === "class") el.className = v;
    // Through the CSSOM: the content security policy refuses style attributes.
    else if (k === "style") Object.assign(el.style, v);
    else el.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children.flat()) {
    if (c === undefined || c === null || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

function say(text) {
  statusEl.textContent = text;
  statusEl.classList.add("show");
  clearTimeout(say.t);
  say.t = setTimeout(() => statusEl.classList.remove("show"), 2500);
}

function show(title, ...content) {
  if (stopStream) {
    stopStream();
    stopStream = null;
  }
  main.replaceChildren(h("h1", {}, title), ...content);
  document.title = `${title} · Openloop`;
  main.focus();
}

function errorBox(e) {
  return h("p", { class: "error", role: "alert" }, e.message || String(e));
}

function signOut() {
  sessionStorage.removeItem(KEY);
  nav.hidden = true;
  location.hash = "#/signin";
}

// ---------------------------------------------------------------- sign in

function signInView() {
  nav.hidden = true;
  const input = h("input", { id: "api-key", type: "password", autocomplete: "off", required: true, spellcheck: "false" });
  const err = h("div");
  const form = h(
    "form",
    { class: "card", "aria-labelledby": "signin-title" },
    h("label", { for: "api-key" }, "API key"),
    input,
    h("p", { class: "muted" }, "The key stays in this browser tab (session storage) and is sent only in the Authorization header."),
    h("button", { type: "submit" }, "Sign in"),
    err,
  );
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    sessionStorage.setItem(KEY, input.value.trim());
    try {
      await api("GET", "/teams", undefined, { signingIn: true });
      nav.hidden = false;
      location.hash = "#/agents";
    } catch (e) {
      sessionStorage.removeItem(KEY);
      err.replaceChildren(errorBox(e.status === 401 ? new Error("That key was not accepted.") : e));
    }
  });
  show("Sign in", form);
  main.querySelector("h1").id = "signin-title";
  input.focus();
}

// ---------------------------------------------------------------- agents

async function agentsView() {
  const list = h("div", { class: "card" }, h("p", { class: "muted" }, "Loading…"));
  const name = h("input", { id: "agent-name", required: true, maxlength: "256" });
  const model = h("input", { id: "agent-model", value: "gpt-4o-mini", required: true });
  const prompt = h("textarea", { id: "agent-prompt" });
  const approval = h(
    "select",
    { id: "agent-approval" },
    h("option", { value: "off" }, "off: tools run without asking"),
    h("option", { value: "all" }, "all: every tool call waits for approval"),
    h("option", { value: "write" }, "write: tools that change things wait"),
  );
  const err = h("div");
  const form = h(
    "form",
    { class: "card", "aria-label": "New agent" },
    h("h2", {}, "New agent"),
    h("label", { for: "agent-name" }, "Name"),
    name,
    h("label", { for: "agent-model" }, "Model"),
    model,
    h("label", { for: "agent-prompt" }, "System prompt"),
    prompt,
    h("label", { for: "agent-approval" }, "Tool approval"),
    approval,
    h("button", { type: "submit" }, "Create agent"),
    err,
  );
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    try {
      const body = { name: name.value, model_name: model.value, metadata: { tool_approval: { default_mode: approval.value } } };
      if (prompt.value.trim()) body.system_prompt = prompt.value;
      const r = await api("POST", "/agents", body);
      say(`Agent ${r.agent.name} created`);
      location.hash = `#/agents/${r.agent.id}`;
    } catch (e) {
      err.replaceChildren(errorBox(e));
    }
  });
  show("Agents", list, form);
  try {
    const r = await api("GET", "/agents?page_size=100");
    if (!r.agents.length) {
      list.replaceChildren(h("p", {}, "No agents yet: create one below."));
      return;
    }
    list.replaceChildren(
      h(
        "table",
        {},
        h("thead", {}, h("tr", {}, h("th", { scope: "col" }, "Name"), h("th", { scope: "col" }, "Model"), h("th", { scope: "col" }, "Id"))),
        h(
          "tbody",
          {},
          r.agents.map((a) => h("tr", {}, h("td", {}, h("a", { href: `#/agents/${a.id}` }, a.name)), h("td", {}, a.model_name || ""), h("td", { class: "muted" }, a.id))),
        ),
      ),
    );
  } catch (e) {
    list.replaceChildren(errorBox(e));
  }
}

async function agentView(id) {
  const info = h("div", { class: "card" }, h("p", { class: "muted" }, "Loading…"));
  const input = h("textarea", { id: "session-input", required: true });
  const err = h("div");
  const form = h(
    "form",
    { class: "card", "aria-label": "Start a session" },
    h("h2", {}, "Start a session"),
    h("label", { for: "session-input" }, "Message"),
    input,
    h("button", { type: "submit" }, "Send"),
    err,
  );
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    try {
      const r = await api("POST", `/agents/${encodeURIComponent(id)}/sessions`, { input: input.value });
      location.hash = `#/sessions/${r.session.id}`;
    } catch (e) {
      err.replaceChildren(errorBox(e));
    }
  });
  const sessions = h("div", { class: "card" });
  const search = h("input", { id: "session-search", type: "search" });
  const searchForm = h("form", { role: "search", "aria-label": "Search sessions" }, h("label", { for: "session-search" }, "Search sessions"), search);
  const edit = h("section", { class: "card", "aria-label": "Edit agent" });
  const versions = h("section", { class: "card", "aria-label": "Versions" });
  show("Agent", info, form, h("h2", {}, "Sessions"), searchForm, sessions, edit, versions);
  const listSessions = async () => {
    const q = search.value.trim() ? `&search=${encodeURIComponent(search.value.trim())}` : "";
    const r = await api("GET", `/agents/${encodeURIComponent(id)}/sessions?page_size=50${q}`);
    sessions.replaceChildren(
      r.sessions.length
        ? h(
            "ul",
            {},
            r.sessions.map((s) => h("li", {}, h("a", { href: `#/sessions/${s.id}` }, s.name || s.id), " ", h("span", { class: "muted" }, s.state))),
          )
        : h("p", { class: "muted" }, search.value ? "No session matches." : "No sessions yet."),
    );
  };
  searchForm.addEventListener("submit", (ev) => {
    ev.preventDefault();
    listSessions().catch((e) => sessions.replaceChildren(errorBox(e)));
  });
  try {
    const a = (await api("GET", `/agents/${encodeURIComponent(id)}`)).agent;
    main.querySelector("h1").textContent = a.name;
    document.title = `${a.name} · Openloop`;
    info.replaceChildren(
      h("p", {}, h("strong", {}, "Model: "), a.model_name || ""),
      a.system_prompt ? h("p", {}, h("strong", {}, "System prompt: "), a.system_prompt) : null,
      h("p", { class: "muted" }, a.id),
    );
    await listSessions();
    edit.replaceChildren(...editForm(a));
    versions.replaceChildren(...(await versionsList(a)));
  } catch (e) {
    info.replaceChildren(errorBox(e));
  }
}

function editForm(a) {
  const model = h("input", { id: "edit-model", value: a.model_name || "" });
  const prompt = h("textarea", { id: "edit-prompt" });
  prompt.value = a.system_prompt || "";
  const mode = ((a.metadata || {}).tool_approval || {}).default_mode || "off";
  const approval = h("select", { id: "edit-approval" }, ["off", "all", "write"].map((m) => h("option", { value: m, selected: m === mode }, m)));
  const web = h("input", { id: "edit-web-fetch", type: "checkbox", checked: (a.tools || []).some((t) => t.name === "web_fetch" || t.type === "web_fetch") });
  const err = h("div");
  const form = h(
    "form",
    { "aria-label": "Edit agent" },
    h("label", { for: "edit-model" }, "Model"),
    model,
    h("label", { for: "edit-prompt" }, "System prompt"),
    prompt,
    h("label", { for: "edit-approval" }, "Tool approval"),
    approval,
    h("label", { for: "edit-web-fetch", class: "check" }, web, " Allow web_fetch"),
    h("button", { type: "submit" }, "Save changes"),
    err,
  );
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const metadata = Object.assign({}, a.metadata || {}, { tool_approval: Object.assign({}, (a.metadata || {}).tool_approval || {}, { default_mode: approval.value }) });
    const tools = (a.tools || []).filter((t) => t.name !== "web_fetch" && t.type !== "web_fetch");
    if (web.checked) tools.push({ type: "web_fetch" });
    try {
      const r = await api("PATCH", `/agents/${encodeURIComponent(a.id)}`, { model_name: model.value, system_prompt: prompt.value, metadata, tools, version: a.version });
      say(`Saved as version ${r.agent.version}`);
      route();
    } catch (e) {
      err.replaceChildren(errorBox(e));
    }
  });
  return [h("h2", {}, "Edit"), form];
}

async function versionsList(a) {
  const r = await api("GET", `/agents/${encodeURIComponent(a.id)}/versions`);
  const detail = h("div", { "aria-live": "polite" });
  const items = r.versions.map((v) => {
    const b = h("button", { type: "button", class: "link" }, `Version ${v.major_version}`);
    b.addEventListener("click", async () => {
      const d = await api("GET", `/agents/${encodeURIComponent(a.id)}/versions/${encodeURIComponent(v.id)}`);
      detail.replaceChildren(changesView(v, d.changes));
    });
    return h("li", {}, b, h("span", { class: "muted" }, ` ${v.created_at}`));
  });
  return [h("h2", {}, "Versions"), h("ul", {}, items), detail];
}

function changesView(v, changes) {
  if (!changes) return h("p", { class: "muted" }, `Version ${v.major_version} is the first.`);
  const rows = [];
  for (const c of changes.field_changes || []) {
    if (c.text_hunks) {
      for (const hk of c.text_hunks) rows.push(h("tr", {}, h("td", {}, c.field), h("td", { class: "del" }, hk.old_text), h("td", { class: "ins" }, hk.new_text)));
    } else {
      rows.push(h("tr", {}, h("td", {}, c.field), h("td", { class: "del" }, JSON.stringify(c.old_value)), h("td", { class: "ins" }, JSON.stringify(c.new_value))));
    }
  }
  for (const t of changes.tool_changes || []) {
    rows.push(h("tr", {}, h("td", {}, `tool ${JSON.stringify(t.identity)} (${t.status})`), h("td", { class: "del" }, JSON.stringify(t.old_value)), h("td", { class: "ins" }, JSON.stringify(t.new_value))));
  }
  return h(
    "table",
    { class: "diff", "aria-label": `Changes in version ${v.major_version}` },
    h("thead", {}, h("tr", {}, h("th", { scope: "col" }, "Field"), h("th", { scope: "col" }, "Before"), h("th", { scope: "col" }, "After"))),
    h("tbody", {}, rows.length ? rows : h("tr", {}, h("td", { colspan: "3" }, "No changes."))),
  );
}

// ---------------------------------------------------------------- sessions

function partView(p) {
  if (p.type === "text") return h("div", {}, p.text || "");
  if (p.type === "tool_invocation") {
    // `result` carries the call's `args` and, once it ran, its `result`.
    const r = p.result || {};
    const args = r.args !== undefined && r.args !== null ? JSON.stringify(r.args) : "";
    const result = r.result !== undefined && r.result !== null ? JSON.stringify(r.result) : "";
    return h("div", { class: "tool" }, `⚙ ${p.toolName}(${args}) · ${p.toolCallState || ""}`, result ? h("div", {}, `→ ${result}`) : null);
  }
  if (p.type === "file") return h("div", { class: "tool" }, `📄 ${p.filename || p.name || "file"}`);
  if (p.type === "error") return h("div", { class: "error" }, p.error || "error");
  return null;
}

function messageView(m) {
  const parts = Array.isArray(m.parts) && m.parts.length ? m.parts.map(partView) : [m.content || ""];
  return h("div", { class: `msg ${m.role}` }, h("span", { class: "role" }, m.role), ...parts);
}

const ACTIVE = ["queued", "processing"];

async function sessionView(id) {
  const head = h("p", { class: "muted" }, "Loading…");
  const transcript = h("div", { class: "transcript", "aria-live": "polite", "aria-label": "Transcript" });
  const actions = h("div");
  show("Session", head, transcript, actions);
  let s;
  try {
    s = (await api("GET", `/sessions/${encodeURIComponent(id)}`)).session;
  } catch (e) {
    head.replaceChildren(errorBox(e));
    return;
  }
  const active = ACTIVE.includes(s.state);
  head.replaceChildren(h("span", { class: "state", id: "session-state" }, s.state), " · ", h("a", { href: `#/agents/${s.agent_id}` }, "agent"), h("span", { class: "muted" }, ` · ${s.id}`));
  let messages = s.messages || [];
  // While a run executes, its reply is rebuilt from the stream (from the run's start).
  if (active && messages.length && messages[messages.length - 1].role === "assistant") messages = messages.slice(0, -1);
  transcript.replaceChildren(...messages.map(messageView));

  if (s.state === "approval_required" && (s.pending_approvals || []).length) {
    actions.append(approvalsView(s));
  }
  if (active) {
    const live = h("div", { class: "msg assistant", id: "live-reply" }, h("span", { class: "role" }, "assistant"));
    const text = h("div", { class: "live-text" });
    live.append(text);
    transcript.append(live);
    const cancel = h("button", { type: "button", class: "danger" }, "Cancel run");
    cancel.addEventListener("click", async () => {
      try {
        await api("POST", `/sessions/${encodeURIComponent(id)}/cancel`, {});
        say("Cancelled");
      } catch (e) {
        actions.append(errorBox(e));
      }
    });
    actions.append(cancel, queueView(id));
    stopStream = follow(id, (ev) => {
      if (ev.type === "text-delta") text.append(ev.delta || "");
      else if (ev.type === "tool-input-available") live.append(h("div", { class: "tool" }, `⚙ ${ev.toolName}(${JSON.stringify(ev.input)})`));
      else if (ev.type === "tool-output-available") live.append(h("div", { class: "tool" }, `→ ${JSON.stringify(ev.output)}`));
      else if (ev.final) setTimeout(() => route(), 50);
    });
  } else {
    actions.append(followUpForm(id));
  }
  actions.append(artifactsView(s));
}

// ---------------------------------------------------------------- artifacts

function artifactsView(s) {
  const box = h("section", { class: "card", "aria-label": "Files" }, h("h2", {}, "Files"), h("p", { class: "muted" }, "Loading…"));
  (async () => {
    try {
      const r = await api("GET", `/agents/${encodeURIComponent(s.agent_id)}/artifacts?session_id=${encodeURIComponent(s.id)}&page_size=100`);
      const rows = r.artifacts.map((a) => {
        const preview = h("div");
        const dl = h("button", { type: "button", class: "secondary" }, "Download");
        dl.addEventListener("click", async () => {
          // A signed, short-lived URL: it carries a signature, never the API key.
          const d = await api("GET", `/artifacts/${encodeURIComponent(a.id)}/download`);
          const link = h("a", { href: d.download_url, download: d.filename });
          document.body.append(link);
          link.click();
          link.remove();
        });
        const pv = h("button", { type: "button", class: "secondary" }, "Preview");
        pv.addEventListener("click", async () => {
          const d = await api("GET", `/artifacts/${encodeURIComponent(a.id)}/download`);
          preview.replaceChildren(await previewOf(d));
        });
        return h("li", {}, h("div", { class: "row" }, h("span", {}, a.filename), h("span", { class: "muted" }, `${a.metadata ? a.metadata.size : ""} bytes`), pv, dl), preview);
      });
      box.replaceChildren(h("h2", {}, "Files"), rows.length ? h("ul", {}, rows) : h("p", { class: "muted" }, "No files."));
    } catch (e) {
      box.replaceChildren(h("h2", {}, "Files"), errorBox(e));
    }
  })();
  return box;
}

async function previewOf(d) {
  if (d.media_type.startsWith("image/")) return h("img", { src: d.download_url, alt: d.filename, style: { maxWidth: "100%" } });
  const textual = d.media_type.startsWith("text/") || d.media_type === "application/json";
  if (!textual) return h("p", { class: "muted" }, `No preview for ${d.media_type}.`);
  const r = await fetch(d.download_url, { headers: { Range: "bytes=0-65535" } });
  const body = await r.text();
  if (d.media_type === "text/csv") {
    const lines = body.split(/\r?\n/).filter(Boolean).slice(0, 20);
    return h("table", { class: "preview" }, lines.map((l, i) => h("tr", {}, l.split(",").map((c) => h(i ? "td" : "th", {}, c)))));
  }
  return h("pre", { class: "tool preview" }, body.slice(0, 4000));
}

// ---------------------------------------------------------------- flows

async function flowsView() {
  const list = h("div", { class: "card" }, h("p", { class: "muted" }, "Loading…"));
  show("Flows", list);
  try {
    const r = await api("GET", "/flows");
    list.replaceChildren(
      r.flows.length
        ? h("ul", {}, r.flows.map((f) => h("li", {}, h("a", { href: `#/flows/${f.saved_item_id}` }, f.name), h("span", { class: "muted" }, ` v${f.version}`))))
        : h("p", { class: "muted" }, "No saved flows (push one with openloop flows push, or POST /api/v1/flows)."),
    );
  } catch (e) {
    list.replaceChildren(errorBox(e));
  }
}

async function flowView(id) {
  const info = h("div", { class: "card" }, h("p", { class: "muted" }, "Loading…"));
  const runBox = h("section", { class: "card", "aria-label": "Run", "aria-live": "polite" });
  show("Flow", info, runBox);
  let f;
  try {
    f = await api("GET", `/flows/${encodeURIComponent(id)}`);
  } catch (e) {
    info.replaceChildren(errorBox(e));
    return;
  }
  main.querySelector("h1").textContent = f.name;
  const doc = f.document || {};
  const nodes = doc.nodes || doc.steps || [];
  const inputs = (doc.inputs || []).map((d) => {
    const field = h("input", { id: `in-${d.name}`, name: d.name });
    return { d, field, el: h("div", {}, h("label", { for: `in-${d.name}` }, `${d.name}${d.data_type ? ` (${d.data_type})` : ""}`), field) };
  });
  const form = h("form", { "aria-label": "Run the flow" }, inputs.map((i) => i.el), h("button", { type: "submit" }, "Run flow"));
  const history = h("div");
  (async () => {
    try {
      const m = await api("GET", `/get_plrun_saved_item_map?saved_item_id=${encodeURIComponent(f.saved_item_id)}`);
      const runs = m[f.saved_item_id] || [];
      history.replaceChildren(
        h("h2", {}, "Recent runs"),
        runs.length
          ? h(
              "ul",
              {},
              runs.map((r) => {
                const b = h("button", { type: "button", class: "link" }, `${r.state} · ${r.created_ts}`);
                b.addEventListener("click", () => watchRun(r.run_id, runBox));
                return h("li", {}, b);
              }),
            )
          : h("p", { class: "muted" }, "No runs yet."),
      );
    } catch (e) {
      history.replaceChildren(errorBox(e));
    }
  })();
  info.replaceChildren(
    h("p", { class: "muted" }, `${f.saved_item_id} · version ${f.version}`),
    h("h2", {}, "Nodes"),
    h(
      "ol",
      { "aria-label": "Nodes and their inputs" },
      nodes.map((n) => {
        const wires = Object.entries(n.inputs || {}).map(([port, from]) => `${port} ← ${typeof from === "string" ? from : JSON.stringify(from)}`);
        const after = (n.after || []).length ? [`after ${[].concat(n.after).join(", ")}`] : [];
        return h("li", {}, h("strong", {}, n.id || n.name || "?"), " ", h("span", { class: "muted" }, n.kind || n.type || ""), [...wires, ...after].length ? h("div", { class: "muted" }, [...wires, ...after].join(" · ")) : null);
      }),
    ),
    h("h2", {}, "Run"),
    form,
    history,
  );
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const pipeline_inputs = inputs.map(({ d, field }) => {
      let value = field.value;
      if (["list", "object", "number", "boolean"].includes(d.data_type)) {
        try {
          value = JSON.parse(field.value);
        } catch {
          /* sent as text; the server names the bad input */
        }
      }
      return { input_name: d.name, value };
    });
    try {
      const r = await api("POST", "/start_pipeline", { saved_item_id: f.saved_item_id, pipeline_inputs });
      watchRun(r.run_id, runBox);
    } catch (e) {
      runBox.replaceChildren(errorBox(e));
    }
  });
}

function watchRun(runId, box) {
  let stopped = false;
  const kill = h("button", { type: "button", class: "danger" }, "Kill run");
  kill.addEventListener("click", () => api("POST", "/kill_pipeline", { run_id: runId }).catch((e) => box.append(errorBox(e))));
  const tick = async () => {
    if (stopped) return;
    try {
      const r = await api("GET", `/get_pl_run?run_id=${encodeURIComponent(runId)}`);
      const done = ["DONE", "FAILED", "TERMINATED"].includes(r.state);
      box.replaceChildren(
        h("h2", {}, "Run ", h("span", { class: "state", id: "run-state" }, r.state)),
        h("p", { class: "muted" }, runId),
        h("ol", { class: "log" }, (r.log || []).map((l) => h("li", {}, l))),
        done ? h("div", {}, h("h2", {}, "Outputs"), h("pre", { class: "tool", id: "run-outputs" }, JSON.stringify(r.outputs || {}, null, 2))) : kill,
      );
      if (!done) setTimeout(tick, 500);
    } catch (e) {
      box.replaceChildren(errorBox(e));
    }
  };
  stopStream = () => {
    stopped = true;
  };
  tick();
}

function approvalsView(s) {
  const box = h("div", { class: "approval", role: "group", "aria-label": "Pending approvals" }, h("h2", {}, "Waiting for your approval"));
  for (const pa of s.pending_approvals) {
    if (pa.type === "human_input") {
      box.append(questionsForm(s, pa));
      continue;
    }
    const decide = async (action) => {
      try {
        await api("POST", `/sessions/${encodeURIComponent(s.id)}/approvals`, { approval_responses: [{ action_request_id: pa.action_request_id, action }] });
        say(action === "accept" ? "Approved" : "Rejected");
        route();
      } catch (e) {
        box.append(errorBox(e));
      }
    };
    box.append(
      h(
        "div",
        { class: "row" },
        h("span", {}, `${pa.tool_name || pa.type}${pa.reason ? ` — ${pa.reason}` : ""}`),
        h("button", { type: "button", onclick: () => decide("accept") }, "Approve"),
        h("button", { type: "button", class: "secondary", onclick: () => decide("reject") }, "Reject"),
      ),
    );
  }
  return box;
}

// A human_input ask: one labelled field per question, answered inline.
function questionsForm(s, pa) {
  const fields = (pa.questions || []).map((q, i) => {
    const id = `q-${i}`;
    let input;
    if (q.type === "boolean") input = h("input", { id, type: "checkbox" });
    else if (q.type === "select") input = h("select", { id }, (q.options || []).map((o) => h("option", { value: o }, o)));
    else input = h("input", { id, type: q.type === "number" ? "number" : "text", required: q.required !== false });
    return { q, input, el: h("div", {}, h("label", { for: id }, q.label || q.name), input) };
  });
  const err = h("div");
  const form = h("form", { "aria-label": pa.title || "Questions" }, h("h3", {}, pa.title || "The agent asks"), fields.map((f) => f.el), h("button", { type: "submit" }, "Answer"), err);
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const values = {};
    for (const { q, input } of fields) {
      values[q.name] = q.type === "boolean" ? input.checked : q.type === "number" ? Number(input.value) : input.value;
    }
    try {
      await api("POST", `/sessions/${encodeURIComponent(s.id)}/approvals`, {
        approval_responses: [{ action_request_id: pa.action_request_id, action: "accept", response: { values } }],
      });
      say("Answered");
      route();
    } catch (e) {
      err.replaceChildren(errorBox(e));
    }
  });
  return form;
}

// While a run executes, messages wait in the session's queue (S7 `delivery: queued`) and
// are delivered in order when it ends; queued ones can be deleted (S15).
function queueView(id) {
  const list = h("ul", { "aria-label": "Queued messages" });
  const input = h("textarea", { id: "queue-input", required: true });
  const err = h("div");
  const form = h("form", { class: "card", "aria-label": "Queue a message" }, h("label", { for: "queue-input" }, "Queue a message for after this run"), input, h("button", { type: "submit" }, "Queue"), err, list);
  const load = async () => {
    try {
      const q = await api("GET", `/sessions/${encodeURIComponent(id)}/queue`);
      list.replaceChildren(
        ...(q.queue || []).map((m) => {
          const del = h("button", { type: "button", class: "link", "aria-label": `Delete queued message ${m.id}` }, "delete");
          del.addEventListener("click", async () => {
            await api("DELETE", `/sessions/${encodeURIComponent(id)}/queue/${encodeURIComponent(m.id)}`).catch((e) => err.replaceChildren(errorBox(e)));
            load();
          });
          return h("li", {}, `${typeof m.input === "string" ? m.input : m.content || JSON.stringify(m.input)} `, del);
        }),
      );
    } catch (e) {
      err.replaceChildren(errorBox(e));
    }
  };
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    try {
      await api("POST", `/sessions/${encodeURIComponent(id)}/messages`, { input: input.value, delivery: "queued" });
      input.value = "";
      say("Queued");
      load();
    } catch (e) {
      err.replaceChildren(errorBox(e));
    }
  });
  load();
  return form;
}

function followUpForm(id) {
  const input = h("textarea", { id: "followup-input", required: true });
  const err = h("div");
  const form = h("form", { class: "card", "aria-label": "Send a message" }, h("label", { for: "followup-input" }, "Message"), input, h("button", { type: "submit" }, "Send"), err);
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    try {
      await api("POST", `/sessions/${encodeURIComponent(id)}/messages`, { input: input.value });
      route();
    } catch (e) {
      err.replaceChildren(errorBox(e));
    }
  });
  return form;
}

// Server-sent events over fetch (EventSource cannot send an Authorization header).
// Without a cursor the server replays the latest run from its start.
function follow(id, onEvent) {
  const ctrl = new AbortController();
  (async () => {
    try {
      const r = await fetch(`/api/v1/sessions/${encodeURIComponent(id)}?stream=true`, { headers: { Authorization: `Bearer ${apiKey()}` }, signal: ctrl.signal });
      const reader = r.body.getReader();
      const dec = new TextDecoder();
      let buf = "";
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buf += dec.decode(value, { stream: true });
        let i;
        while ((i = buf.indexOf("\n\n")) >= 0) {
          const block = buf.slice(0, i);
          buf = buf.slice(i + 2);
          const data = block.split("\n").filter((l) => l.startsWith("data: ")).map((l) => l.slice(6)).join("\n");
          if (!data) continue;
          try {
            onEvent(JSON.parse(data));
          } catch {
            /* not JSON: keep-alive text */
          }
        }
      }
    } catch (e) {
      if (e.name !== "AbortError") say(`Stream ended: ${e.message}`);
    }
  })();
  return () => ctrl.abort();
}

// ---------------------------------------------------------------- API keys

async function keysView() {
  const list = h("div", { class: "card" }, h("p", { class: "muted" }, "Loading…"));
  const created = h("div", { "aria-live": "polite" });
  const name = h("input", { id: "key-name", maxlength: "256" });
  const err = h("div");
  const form = h("form", { class: "card", "aria-label": "New API key" }, h("h2", {}, "New API key"), h("label", { for: "key-name" }, "Label"), name, h("button", { type: "submit" }, "Create key"), err);
  const load = async () => {
    try {
      const r = await api("GET", "/api-keys");
      list.replaceChildren(
        h(
          "table",
          {},
          h("thead", {}, h("tr", {}, ["Label", "Starts with", "Created", "State", ""].map((t) => h("th", { scope: "col" }, t)))),
          h(
            "tbody",
            {},
            r.api_keys.map((k) => {
              const revoke = h("button", { type: "button", class: "danger", "aria-label": `Revoke ${k.name || k.prefix}` }, "Revoke");
              revoke.addEventListener("click", async () => {
                if (!confirm(`Revoke the key ${k.name || k.prefix}…? Clients using it stop working at once.`)) return;
                try {
                  await api("DELETE", `/api-keys/${encodeURIComponent(k.id)}`);
                  say("Key revoked");
                  load();
                } catch (e) {
                  list.append(errorBox(e));
                }
              });
              return h(
                "tr",
                {},
                h("td", {}, k.name || ""),
                h("td", {}, h("code", {}, `${k.prefix}…`)),
                h("td", {}, k.created_at),
                h("td", {}, k.revoked_at ? `revoked ${k.revoked_at}` : "active"),
                h("td", {}, k.revoked_at ? "" : revoke),
              );
            }),
          ),
        ),
      );
    } catch (e) {
      list.replaceChildren(errorBox(e));
    }
  };
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    try {
      const r = await api("POST", "/api-keys", { name: name.value });
      name.value = "";
      // Shown once: not stored anywhere by the console, gone when this page changes.
      created.replaceChildren(
        h(
          "div",
          { class: "approval", role: "alert" },
          h("p", {}, h("strong", {}, "Copy this key now: it is not shown again.")),
          h("code", { id: "new-key-secret" }, r.secret),
        ),
      );
      load();
    } catch (e) {
      err.replaceChildren(errorBox(e));
    }
  });
  show("API keys", created, list, form);
  load();
}

// ---------------------------------------------------------------- usage, exports, audit (admins)

async function whoAmI() {
  const keys = (await api("GET", "/api-keys")).api_keys;
  const mine = keys.find((k) => k.user_id);
  const orgs = (await api("GET", "/organizations")).organizations;
  return { userId: mine ? mine.user_id : null, orgId: orgs.length ? orgs[0].id : null };
}

function isoDay(d) {
  return d.toISOString().slice(0, 10);
}

async function exportCsv(userId, body) {
  const r = await api("POST", "/export_data", Object.assign({ user_id: userId }, body));
  const id = r.data_export_id;
  for (let i = 0; i < 600; i++) {
    const s = await api("GET", `/export_status?user_id=${encodeURIComponent(userId)}&data_export_id=${encodeURIComponent(id)}`);
    if (s.state === "COMPLETED") {
      const f = await fetch(`/api/v1/export_status?user_id=${encodeURIComponent(userId)}&data_export_id=${encodeURIComponent(id)}&download=true`, {
        headers: { Authorization: `Bearer ${apiKey()}` },
      });
      return { id, csv: await f.text() };
    }
    if (s.state === "FAILED") throw new Error(s.error || "the export failed");
    await new Promise((res) => setTimeout(res, 300));
  }
  throw new Error("the export did not finish in time");
}

// RFC 4180 enough for exported CSV: quoted fields with doubled quotes, commas, newlines.
function parseCsv(text) {
  const rows = [];
  let row = [];
  let field = "";
  let quoted = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (quoted) {
      if (c === '"' && text[i + 1] === '"') {
        field += '"';
        i++;
      } else if (c === '"') quoted = false;
      else field += c;
    } else if (c === '"') quoted = true;
    else if (c === ",") {
      row.push(field);
      field = "";
    } else if (c === "\n") {
      row.push(field);
      rows.push(row);
      row = [];
      field = "";
    } else if (c !== "\r") field += c;
  }
  if (field || row.length) {
    row.push(field);
    rows.push(row);
  }
  return rows;
}

async function adminView() {
  const usage = h("section", { class: "card", "aria-label": "Usage" }, h("h2", {}, "Credits"), h("p", { class: "muted" }, "Loading…"));
  const exportsBox = h("section", { class: "card", "aria-label": "Data exports" });
  const audit = h("section", { class: "card", "aria-label": "Audit log" }, h("h2", {}, "Audit log"), h("p", { class: "muted" }, "Loading…"));
  show("Usage and audit", usage, exportsBox, audit);
  let me;
  try {
    me = await whoAmI();
  } catch (e) {
    usage.replaceChildren(errorBox(e));
    return;
  }
  const end = new Date(Date.now() + 86400000);
  const start = new Date(Date.now() - 30 * 86400000);
  // Credits per day and per agent or flow, from the organization's credit ledger (E1).
  (async () => {
    try {
      const { csv } = await exportCsv(me.userId, {
        data_type: "credit_logs",
        export_fields: ["timestamp", "category", "name", "amount"],
        start_date: isoDay(start),
        end_date: isoDay(end),
      });
      const rows = parseCsv(csv).slice(1);
      const byDay = new Map();
      const byName = new Map();
      for (const [ts, category, name, amount] of rows) {
        const a = Number(amount) || 0;
        const day = String(ts).slice(0, 10);
        byDay.set(day, (byDay.get(day) || 0) + a);
        const k = `${name} (${category})`;
        byName.set(k, (byName.get(k) || 0) + a);
      }
      const days = [...byDay.entries()].sort();
      const max = Math.max(0.0001, ...days.map(([, v]) => v));
      usage.replaceChildren(
        h("h2", {}, "Credits, last 30 days"),
        days.length
          ? h(
              "div",
              { class: "bars", role: "img", "aria-label": `Credits per day: ${days.map(([d, v]) => `${d} ${v.toFixed(3)}`).join(", ")}` },
              days.map(([d, v]) =>
                h(
                  "div",
                  { class: "col", title: `${d}: ${v.toFixed(4)} credits` },
                  h("span", { class: "val" }, v.toFixed(3)),
                  h("div", { class: "bar", style: { height: `${Math.max(2, (v / max) * 100)}%` } }),
                  h("span", { class: "day" }, d.slice(5)),
                ),
              ),
            )
          : h("p", { class: "muted" }, "No credits spent yet."),
        h(
          "table",
          { "aria-label": "Credits per agent or flow" },
          h("thead", {}, h("tr", {}, h("th", { scope: "col" }, "Agent or flow"), h("th", { scope: "col" }, "Credits"))),
          h("tbody", {}, [...byName.entries()].sort((a, b) => b[1] - a[1]).map(([k, v]) => h("tr", {}, h("td", {}, k), h("td", {}, v.toFixed(4))))),
        ),
      );
    } catch (e) {
      usage.replaceChildren(h("h2", {}, "Credits"), errorBox(e.status === 403 ? new Error("Usage needs an organization admin's key.") : e));
    }
  })();
  // Data exports (E1/E2): request, wait, download the CSV.
  const type = h("select", { id: "export-type" }, ["agent_interactions", "agents", "workflows", "credit_logs"].map((t) => h("option", { value: t }, t)));
  const err = h("div");
  const out = h("div", { "aria-live": "polite" });
  const form = h("form", { "aria-label": "New data export" }, h("label", { for: "export-type" }, "Data type"), type, h("button", { type: "submit" }, "Export CSV"), err, out);
  const FIELDS = {
    agent_interactions: ["interaction_id", "agent_name", "interaction_created_ts", "credit_cost", "message_count"],
    agents: ["agent_id", "agent_name", "agent_model", "agent_created_ts"],
    workflows: ["workbook_name", "run_id", "credit_cost", "pl_run_created_ts"],
    credit_logs: ["timestamp", "category", "name", "amount", "balance"],
  };
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    err.replaceChildren();
    out.replaceChildren(h("p", { class: "muted" }, "Exporting…"));
    try {
      const { id, csv } = await exportCsv(me.userId, {
        data_type: type.value,
        export_fields: FIELDS[type.value],
        start_date: isoDay(start),
        end_date: isoDay(end),
        include_all_workspaces: true,
      });
      const url = URL.createObjectURL(new Blob([csv], { type: "text/csv" }));
      out.replaceChildren(h("p", {}, `${parseCsv(csv).length - 1} rows · `, h("a", { href: url, download: `${id}.csv`, id: "export-download" }, `Download ${id}.csv`)));
    } catch (e) {
      out.replaceChildren();
      err.replaceChildren(errorBox(e));
    }
  });
  exportsBox.replaceChildren(h("h2", {}, "Data exports"), form);
  // The audit log (E3), newest first.
  try {
    const q = `organization_id=${encodeURIComponent(me.orgId)}&user_id=${encodeURIComponent(me.userId)}&start_time=${start.toISOString()}&end_time=${end.toISOString()}&page_size=50`;
    const r = await api("GET", `/get_audit_logs?${q}`);
    audit.replaceChildren(
      h("h2", {}, `Audit log (${r.total_count} events, last 30 days)`),
      h(
        "table",
        {},
        h("thead", {}, h("tr", {}, ["Time", "Event", "User", "Source IP"].map((t) => h("th", { scope: "col" }, t)))),
        h("tbody", {}, r.audit_logs.map((e) => h("tr", {}, h("td", {}, e.timestamp), h("td", {}, e.event_type), h("td", {}, e.user_id || ""), h("td", {}, e.source_ip || "")))),
      ),
    );
  } catch (e) {
    audit.replaceChildren(h("h2", {}, "Audit log"), errorBox(e.status === 403 ? new Error("The audit log needs an organization admin's key.") : e));
  }
}

// ---------------------------------------------------------------- router

function route() {
  const hash = location.hash.replace(/^#/, "") || "/agents";
  if (!apiKey()) return signInView();
  nav.hidden = false;
  const parts = hash.split("/").filter(Boolean).map(decodeURIComponent);
  if (parts[0] === "signin") return signInView();
  if (parts[0] === "agents" && parts[1]) return agentView(parts[1]);
  if (parts[0] === "sessions" && parts[1]) return sessionView(parts[1]);
  if (parts[0] === "flows" && parts[1]) return flowView(parts[1]);
  if (parts[0] === "flows") return flowsView();
  if (parts[0] === "keys") return keysView();
  if (parts[0] === "admin") return adminView();
  return agentsView();
}

document.getElementById("signout").addEventListener("click", signOut);
window.addEventListener("hashchange", route);
route();
