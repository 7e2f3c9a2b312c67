-- Sessions of Openloop's MCP server (API.md §10.4), bound to the API key that opened them.
CREATE TABLE mcp_sessions (
    id TEXT PRIMARY KEY,
    key_id TEXT NOT NULL,
    protocol_version TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    ended_at INTEGER
);
