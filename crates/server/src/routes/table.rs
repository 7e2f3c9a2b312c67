//! Every route of API.md with its spec id: the single list from which the 501 routes
//! are registered and the OpenAPI document is generated.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// Implemented by a handler in this crate.
    Now,
    /// In scope but not built yet: answers `501 not_implemented`.
    Pending,
    /// Reserved for later (API.md §1.6): `501`, `x-openloop-status: later`.
    Later,
}

#[derive(Debug, Clone, Copy)]
pub struct RouteSpec {
    pub id: &'static str,
    pub method: &'static str,
    /// Path relative to `/api/v1` (or absolute when `root`).
    pub path: &'static str,
    pub summary: &'static str,
    pub status: Status,
    /// Outside `/api/v1` (OAuth, voice, signed files).
    pub root: bool,
}

const fn r(id: &'static str, method: &'static str, path: &'static str, summary: &'static str, status: Status) -> RouteSpec {
    RouteSpec { id, method, path, summary, status, root: false }
}

const fn later(id: &'static str, method: &'static str, path: &'static str, summary: &'static str) -> RouteSpec {
    RouteSpec { id, method, path, summary, status: Status::Later, root: false }
}

const fn root_later(id: &'static str, method: &'static str, path: &'static str, summary: &'static str) -> RouteSpec {
    RouteSpec { id, method, path, summary, status: Status::Later, root: true }
}

use Status::Now;

#[rustfmt::skip]
pub const ROUTES: &[RouteSpec] = &[
    // Agents
    r("G1", "GET", "/agents", "List agents", Now),
    r("G2", "POST", "/agents", "Create an agent", Now),
    r("G3", "GET", "/agents/{agent_id}", "Retrieve an agent", Now),
    r("G4", "PATCH", "/agents/{agent_id}", "Update an agent", Now),
    r("G5", "DELETE", "/agents/{agent_id}", "Delete an agent", Now),
    r("G6", "GET", "/agents/{agent_id}/versions", "List agent versions", Now),
    r("G7", "GET", "/agents/{agent_id}/versions/{version_id}", "Retrieve an agent version with its changes", Now),
    r("G8", "PATCH", "/agents/{agent_id}/abilities", "Update agent abilities", Now),
    r("G9", "PATCH", "/agents/{agent_id}/incognito", "Set enforced incognito", Now),
    r("G10", "PATCH", "/agents/{agent_id}/skills", "Attach or detach skills", Now),
    r("G12", "GET", "/agents/{agent_id}/mcp-servers", "List MCP servers", Now),
    r("G13", "PUT", "/agents/{agent_id}/mcp-servers/{server_id}", "Attach an MCP server", Now),
    r("G14", "DELETE", "/agents/{agent_id}/mcp-servers/{server_id}", "Detach an MCP server", Now),
    later("G15", "GET", "/agents/{agent_id}/knowledge-sources", "List knowledge sources"),
    later("G16", "PUT", "/agents/{agent_id}/knowledge-sources/{connector_id}", "Attach a knowledge source"),
    later("G17", "DELETE", "/agents/{agent_id}/knowledge-sources/{connector_id}", "Detach a knowledge source"),
    r("G18", "PUT", "/agents/{agent_id}/subagents/{subagent_id}", "Attach a subagent", Now),
    r("G19", "DELETE", "/agents/{agent_id}/subagents/{subagent_id}", "Detach a subagent", Now),
    r("G20", "GET", "/agents/{agent_id}/triggers", "List triggers", Now),
    r("G21", "POST", "/agents/{agent_id}/triggers", "Create a trigger", Now),
    r("G22", "GET", "/agents/{agent_id}/triggers/{trigger_id}", "Retrieve a trigger", Now),
    r("G23", "PATCH", "/agents/{agent_id}/triggers/{trigger_id}", "Update a trigger", Now),
    r("G24", "DELETE", "/agents/{agent_id}/triggers/{trigger_id}", "Delete a trigger", Now),
    r("G25", "GET", "/agents/{agent_id}/triggers/{trigger_id}/webhook-url", "Trigger webhook URL", Now),
    r("G26", "GET", "/agents/{agent_id}/trigger-operators", "List trigger operators", Now),
    r("G27", "GET", "/agents/{agent_id}/triggers/{trigger_id}/runs", "List trigger runs", Now),
    r("G28", "GET", "/agents/{agent_id}/triggers/{trigger_id}/stats", "Trigger stats", Now),
    later("G29", "GET", "/agents/{agent_id}/app-rules", "List app rules"),
    later("EV1", "GET", "/agents/evaluation-options", "Agent evaluation options"),
    later("EV2", "GET", "/agents/{agent_id}/evaluation-config", "Agent evaluation config"),
    later("EV3", "PATCH", "/agents/{agent_id}/evaluation-config", "Update agent evaluation config"),
    later("EV4", "GET", "/agents/{agent_id}/evaluations", "List agent evaluations"),
    later("EV5", "GET", "/agents/{agent_id}/evaluations/metrics", "Agent evaluation metrics"),
    later("EV6", "POST", "/agents/{agent_id}/evaluations/run", "Run agent evaluations"),
    later("EV7", "GET", "/agents/{agent_id}/evaluations/{evaluation_id}", "Retrieve an agent evaluation"),
    // Sessions
    r("S1", "POST", "/agents/{agent_id}/sessions", "Create a session (stream: true → S2)", Now),
    r("S3", "GET", "/agents/{agent_id}/sessions", "List sessions", Now),
    r("S4", "GET", "/sessions/{session_id}", "Retrieve a session (stream=true → S5)", Now),
    r("S6", "PATCH", "/sessions/{session_id}", "Rename a session", Now),
    r("S7", "POST", "/sessions/{session_id}/messages", "Send a message (stream: true → S8)", Now),
    r("S9", "POST", "/sessions/{session_id}/cancel", "Cancel a session's run", Now),
    r("S10", "POST", "/sessions/{session_id}/files", "Upload a file to a session", Now),
    r("S11", "POST", "/sessions/{session_id}/approvals", "Resolve pending approvals", Now),
    r("S12", "GET", "/sessions/{session_id}/queue", "List queued messages", Now),
    r("S13", "POST", "/sessions/{session_id}/queue", "Queue a message", Now),
    r("S14", "PATCH", "/sessions/{session_id}/queue/{queued_message_id}", "Edit a queued message", Now),
    r("S15", "DELETE", "/sessions/{session_id}/queue/{queued_message_id}", "Delete a queued message", Now),
    r("S16", "POST", "/sessions/{session_id}/queue/{queued_message_id}/send", "Send a queued message now", Now),
    r("S17", "GET", "/sessions/{session_id}/access", "Session access", Now),
    r("S18", "PUT", "/sessions/{session_id}/access", "Change session access", Now),
    // Artifacts
    r("A1", "GET", "/agents/{agent_id}/artifacts", "List artifacts", Now),
    r("A2", "GET", "/artifacts/{artifact_id}/download", "Signed download URL for an artifact", Now),
    r("A3", "DELETE", "/artifacts/{artifact_id}", "Delete an artifact", Now),
    r("A4", "PUT", "/artifacts/{artifact_id}/name", "Rename an artifact", Now),
    r("A5", "GET", "/artifacts/{artifact_id}/versions", "List artifact versions", Now),
    r("A6", "GET", "/artifacts/{artifact_id}/access", "Artifact access", Now),
    r("A7", "PUT", "/artifacts/{artifact_id}/access", "Change artifact access", Now),
    r("A8", "PUT", "/artifacts/{artifact_id}/password", "Set an artifact password", Now),
    // Legacy interactions, flows, files, exports
    r("L1", "POST", "/start_agent", "Start or continue an agent interaction", Now),
    r("L2", "GET", "/agent_status/{interaction_id}", "Poll an agent interaction", Now),
    r("F1", "POST", "/start_pipeline", "Start a flow run", Now),
    r("F2", "GET", "/get_pl_run", "Flow run status", Now),
    r("F3", "POST", "/kill_pipeline", "Terminate a flow run", Now),
    r("F4", "GET", "/list_saved_items", "List saved flows", Now),
    r("F5", "GET", "/list_workbooks", "List workbooks", Now),
    r("F6", "GET", "/get_inputs", "Flow inputs", Now),
    r("F7", "GET", "/get_plrun_saved_item_map", "Recent runs per flow", Now),
    r("FL1", "GET", "/flows", "List saved flows (Openloop extension)", Now),
    r("FL2", "POST", "/flows", "Save a new flow (Openloop extension)", Now),
    r("FL3", "POST", "/flows/validate", "Validate a flow document (Openloop extension)", Now),
    r("FL8", "GET", "/flows/node-kinds", "The node library: each kind's configuration schema and ports (Openloop extension)", Now),
    r("FL4", "GET", "/flows/{flow_id}", "Get a flow and its document (Openloop extension)", Now),
    r("FL5", "PUT", "/flows/{flow_id}", "Save a new version of a flow (Openloop extension)", Now),
    r("FL6", "DELETE", "/flows/{flow_id}", "Delete a flow (Openloop extension)", Now),
    r("FL7", "GET", "/flows/{flow_id}/versions", "List a flow's versions (Openloop extension)", Now),
    r("WB1", "GET", "/workbooks", "List workbooks (Openloop extension)", Now),
    r("WB2", "POST", "/workbooks", "Create a workbook (Openloop extension)", Now),
    r("F8", "POST", "/upload_file", "Upload a flow file", Now),
    r("F9", "POST", "/upload_files", "Upload flow files", Now),
    r("F10", "POST", "/download_file", "Download a flow file", Now),
    r("F11", "POST", "/download_files", "Download flow files as ZIP", Now),
    r("E1", "POST", "/export_data", "Request a data export", Now),
    r("E2", "GET", "/export_status", "Data export status or CSV", Now),
    r("E3", "GET", "/get_audit_logs", "Audit logs", Now),
    // Models and tenancy
    r("M1", "GET", "/models", "List models", Now),
    r("M2", "POST", "/models/route", "Choose a model for a task", Now),
    r("X1", "GET", "/teams", "List teams", Now),
    r("X2", "GET", "/organizations", "List organizations", Now),
    r("K1", "GET", "/api-keys", "List your API keys (Openloop extension)", Now),
    r("K2", "POST", "/api-keys", "Create a personal API key; the secret is shown once (Openloop extension)", Now),
    r("K3", "DELETE", "/api-keys/{key_id}", "Revoke an API key (Openloop extension)", Now),
    // Tools for AI agents
    r("T1", "GET", "/tools", "Tool catalogue", Now),
    r("T2", "POST", "/tools/{tool_name}/invoke", "Invoke a tool", Now),
    r("T3", "POST", "/tools/mcp", "MCP server (Streamable HTTP)", Now),
    r("T4", "DELETE", "/tools/mcp", "End an MCP session", Now),
    // Inference passthrough
    r("C1", "POST", "/chat/completions", "Chat completion (stream: true → C2, Server-Sent Events)", Now),
    // Later families
    later("D1", "POST", "/decisions", "Decisions"),
    r("MC1", "GET", "/mcp/servers", "MCP connector catalogue", Now),
    r("MC2", "GET", "/mcp/servers/{server_id}", "MCP connector", Now),
    r("MC3", "GET", "/mcp/servers/{server_id}/accounts", "MCP connector accounts", Now),
    r("MC4", "GET", "/mcp/servers/{server_id}/tools", "MCP connector tools", Now),
    r("MC5", "GET", "/mcp/servers/{server_id}/resources", "MCP connector resources", Now),
    r("MC6", "GET", "/mcp/servers/{server_id}/resources/read", "Read an MCP resource", Now),
    r("MC7", "GET", "/mcp/servers/{server_id}/prompts", "MCP connector prompts", Now),
    r("MC8", "POST", "/mcp/servers/{server_id}/prompts/get", "Get an MCP prompt", Now),
    r("MC9", "POST", "/mcp/tools/call", "Call MCP connector tools", Now),
    r("MCX1", "POST", "/mcp/servers", "Register an MCP server (Openloop extension)", Now),
    r("MCX2", "PATCH", "/mcp/servers/{server_id}", "Update an MCP server (Openloop extension)", Now),
    r("MCX3", "DELETE", "/mcp/servers/{server_id}", "Remove an MCP server (Openloop extension)", Now),
    r("SK1", "GET", "/skills", "List skills", Now),
    r("SK2", "POST", "/skills", "Create a skill", Now),
    r("SK3", "PATCH", "/skills/{skill_id}", "Update a skill", Now),
    r("SK4", "GET", "/skills/{skill_id}/download", "Download a skill", Now),
    r("SK5", "DELETE", "/skills/{skill_id}", "Delete a skill", Now),
    r("SK6", "GET", "/skills/{skill_id}/access", "Skill access", Now),
    r("SK7", "PUT", "/skills/{skill_id}/access", "Change skill access", Now),
    r("SY1", "POST", "/skills/sync/plan", "Skill sync plan", Now),
    r("SY2", "POST", "/skills/sync/download", "Skill sync download", Now),
    later("EV8", "GET", "/evaluation-options", "Evaluation options"),
    later("EV9", "GET", "/evaluations", "List evaluations"),
    later("EV10", "POST", "/evaluations", "Create an evaluation"),
    later("EV11", "GET", "/evaluations/{evaluation_id}", "Retrieve an evaluation"),
    later("EV12", "PATCH", "/evaluations/{evaluation_id}", "Update an evaluation"),
    later("EV13", "DELETE", "/evaluations/{evaluation_id}", "Delete an evaluation"),
    later("EV14", "PUT", "/evaluations/{evaluation_id}/targets", "Set evaluation targets"),
    later("EV15", "POST", "/evaluations/{evaluation_id}/run", "Run an evaluation"),
    later("EV16", "GET", "/evaluations/{evaluation_id}/results", "List evaluation results"),
    later("EV17", "GET", "/evaluations/{evaluation_id}/results/{result_id}", "Retrieve an evaluation result"),
    later("EV18", "GET", "/evaluations/{evaluation_id}/metrics", "Evaluation metrics"),
    later("BR1", "POST", "/brain/search", "Brain search"),
    later("BR2", "GET", "/brain/sources", "List brain sources"),
    later("BR3", "POST", "/brain/sources", "Create a brain source"),
    later("BR4", "POST", "/brain/sources/{source_id}/sync", "Sync a brain source"),
    later("BR5", "GET", "/brain/sources/{source_id}/sync-runs", "Brain source sync runs"),
    later("BR6", "GET", "/brain/sources/{source_id}/issues", "Brain source issues"),
    later("BR7", "GET", "/brain/sources/{source_id}/children", "Brain source children"),
    later("BR8", "GET", "/brain/sources/{source_id}", "Retrieve a brain source"),
    later("BR9", "DELETE", "/brain/sources/{source_id}", "Delete a brain source"),
    later("BR10", "GET", "/brain/sources/{source_id}/estimate", "Brain source estimate"),
    later("BR11", "POST", "/brain/sources/{source_id}/approve", "Approve a brain source"),
    later("BR12", "GET", "/brain/sources/{source_id}/files", "List brain source files"),
    later("BR13", "POST", "/brain/sources/{source_id}/files", "Upload brain source files"),
    later("BR14", "DELETE", "/brain/sources/{source_id}/files/{file_id}", "Delete a brain source file"),
    later("W1", "POST", "/wiki/query", "Wiki query"),
    later("BP1", "GET", "/browser-profiles", "List browser profiles"),
    later("BP2", "POST", "/browser-profiles", "Create a browser profile"),
    later("BP3", "GET", "/browser-profiles/{profile_id}", "Retrieve a browser profile"),
    later("BP4", "PATCH", "/browser-profiles/{profile_id}", "Update a browser profile"),
    later("BP5", "DELETE", "/browser-profiles/{profile_id}", "Delete a browser profile"),
    later("BP6", "POST", "/browser-profiles/{profile_id}/cookies", "Import browser cookies"),
    root_later("O1", "POST", "/oauth/register", "OAuth client registration"),
    root_later("O2", "GET", "/oauth/authorize", "OAuth authorization"),
    root_later("O3", "POST", "/oauth/token", "OAuth token"),
    root_later("O4", "POST", "/oauth/revoke", "OAuth revocation"),
    root_later("V1", "POST", "/gummies/{agent_id}/voice/sessions", "Start a voice session"),
    root_later("V2", "POST", "/gummies/{agent_id}/voice/sessions/{voice_session_id}/end", "End a voice session"),
];
