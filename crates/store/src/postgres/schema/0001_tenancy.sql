-- 0001_tenancy: organizations, users, teams, memberships, API keys, agents and their
-- versions, idempotency keys, MCP sessions, the readiness probe row, the audit log and
-- webhook endpoints/outbox. The final shape of sqlite/0001, 0002, 0006 (users_by_email),
-- 0009, 0010, 0016 and 0017 (tables only: the triggers are in 0004_triggers.sql).
-- Ids and names that are ordered or compared use COLLATE "C" (bytewise, like SQLite).
-- Agent configs and version snapshots are user-authored documents (tool schemas,
-- metadata): they stay TEXT so they come back with their keys in the order written
-- (JSONB would sort them); queries that look inside cast them to jsonb.

CREATE TABLE organizations (
    id TEXT COLLATE "C" PRIMARY KEY,
    name TEXT COLLATE "C" NOT NULL,
    created_at BIGINT NOT NULL
);

CREATE TABLE users (
    id TEXT COLLATE "C" PRIMARY KEY,
    organization_id TEXT COLLATE "C" NOT NULL REFERENCES organizations(id),
    email TEXT,
    first_name TEXT,
    last_name TEXT,
    org_role TEXT NOT NULL DEFAULT 'member',
    created_at BIGINT NOT NULL
);
-- user_by_email compares lower(email).
CREATE INDEX users_by_email ON users (organization_id, lower(email));

CREATE TABLE teams (
    id TEXT COLLATE "C" PRIMARY KEY,
    organization_id TEXT COLLATE "C" NOT NULL REFERENCES organizations(id),
    name TEXT COLLATE "C" NOT NULL,
    created_at BIGINT NOT NULL
);

CREATE TABLE team_members (
    team_id TEXT COLLATE "C" NOT NULL REFERENCES teams(id),
    user_id TEXT COLLATE "C" NOT NULL REFERENCES users(id),
    role TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (team_id, user_id)
);
CREATE INDEX team_members_by_user ON team_members (user_id);

CREATE TABLE api_keys (
    id TEXT COLLATE "C" PRIMARY KEY,
    secret_hash BYTEA NOT NULL UNIQUE,
    prefix TEXT NOT NULL,
    name TEXT,
    user_id TEXT COLLATE "C" REFERENCES users(id),
    team_id TEXT COLLATE "C" REFERENCES teams(id),
    created_by TEXT,
    created_at BIGINT NOT NULL,
    revoked_at BIGINT
);
CREATE INDEX api_keys_by_user ON api_keys (user_id, created_at, id);
CREATE INDEX api_keys_by_team ON api_keys (team_id, created_at, id);

CREATE TABLE agents (
    id TEXT COLLATE "C" PRIMARY KEY,
    owner_user_id TEXT COLLATE "C" NOT NULL,
    team_id TEXT COLLATE "C",
    creator_user_id TEXT COLLATE "C" NOT NULL,
    name TEXT COLLATE "C" NOT NULL,
    config TEXT NOT NULL,
    version BIGINT NOT NULL,
    is_active BOOLEAN NOT NULL,
    deleted_at BIGINT,
    created_at BIGINT NOT NULL,
    last_updated_at BIGINT NOT NULL,
    last_used_at BIGINT
);
CREATE INDEX agents_by_team ON agents (team_id) WHERE deleted_at IS NULL;
CREATE INDEX agents_by_owner ON agents (owner_user_id) WHERE deleted_at IS NULL;

CREATE TABLE agent_versions (
    id TEXT COLLATE "C" PRIMARY KEY,
    agent_id TEXT COLLATE "C" NOT NULL REFERENCES agents(id),
    major_version BIGINT NOT NULL,
    snapshot TEXT NOT NULL,
    creator_user_id TEXT COLLATE "C",
    created_at BIGINT NOT NULL,
    UNIQUE (agent_id, major_version)
);

CREATE TABLE idempotency_keys (
    scope TEXT COLLATE "C" PRIMARY KEY,
    fingerprint BYTEA NOT NULL,
    state TEXT NOT NULL,
    status BIGINT,
    body BYTEA,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE INDEX idempotency_keys_by_age ON idempotency_keys (created_at);

-- Sessions of Openloop's MCP server (API.md §10.4), bound to the API key that opened them.
CREATE TABLE mcp_sessions (
    id TEXT COLLATE "C" PRIMARY KEY,
    key_id TEXT COLLATE "C" NOT NULL,
    protocol_version TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    ended_at BIGINT
);

-- One row rewritten by /readyz to prove the database still takes writes.
CREATE TABLE _health (
    id BIGINT PRIMARY KEY,
    checked_at BIGINT NOT NULL
);

-- E3 audit log: written by triggers (0004_triggers.sql) in the same transaction as the
-- action, or explicitly for reads and failed authentication.
CREATE TABLE audit_log (
    id TEXT COLLATE "C" PRIMARY KEY,
    organization_id TEXT COLLATE "C" NOT NULL,
    created_at BIGINT NOT NULL,
    event_type TEXT COLLATE "C" NOT NULL,
    user_id TEXT COLLATE "C",
    source_ip TEXT COLLATE "C",
    user_agent TEXT,
    workspace_id TEXT COLLATE "C",
    entity_id TEXT COLLATE "C",
    details JSONB NOT NULL
);
CREATE INDEX audit_log_by_org ON audit_log (organization_id, created_at, id);

-- Webhooks (§11): endpoints (the global one from OPENLOOP_WEBHOOK_URL is team_id NULL)
-- and a durable outbox filled by triggers (0004_triggers.sql).
CREATE TABLE webhook_endpoints (
    id TEXT COLLATE "C" PRIMARY KEY,
    team_id TEXT COLLATE "C",
    url TEXT NOT NULL,
    created_at BIGINT NOT NULL
);

CREATE TABLE webhook_outbox (
    id TEXT COLLATE "C" PRIMARY KEY,
    endpoint_id TEXT COLLATE "C" NOT NULL,
    event_type TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    data JSONB NOT NULL,
    state TEXT NOT NULL DEFAULT 'pending',
    attempts BIGINT NOT NULL DEFAULT 0,
    next_attempt_at BIGINT NOT NULL,
    last_error TEXT,
    lease_owner TEXT,
    lease_expires_at BIGINT
);
CREATE INDEX webhook_outbox_due ON webhook_outbox (next_attempt_at) WHERE state = 'pending';
