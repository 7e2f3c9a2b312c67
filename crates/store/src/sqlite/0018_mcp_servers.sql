-- The MCP server catalogue (MC1-MC9): one row per (workspace, id). Secrets are
-- encrypted by the engine before they reach this table.
CREATE TABLE mcp_servers (
    scope TEXT NOT NULL,
    id TEXT NOT NULL,
    organization_id TEXT NOT NULL,
    team_id TEXT,
    owner_user_id TEXT NOT NULL,
    config TEXT NOT NULL,
    secrets TEXT,
    status TEXT NOT NULL DEFAULT 'unknown',
    tool_count INTEGER,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (scope, id)
) WITHOUT ROWID;
