-- The MCP server catalogue (MC1-MC9), as sqlite/0018_mcp_servers.sql.
CREATE TABLE mcp_servers (
    scope TEXT NOT NULL,
    id TEXT NOT NULL,
    organization_id TEXT NOT NULL,
    team_id TEXT,
    owner_user_id TEXT NOT NULL,
    config TEXT NOT NULL,
    secrets TEXT,
    status TEXT NOT NULL DEFAULT 'unknown',
    tool_count BIGINT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (scope, id)
);
