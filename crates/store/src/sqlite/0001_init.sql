CREATE TABLE organizations (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    created_at INTEGER NOT NULL
);

CREATE TABLE users (
    id TEXT PRIMARY KEY,
    organization_id TEXT NOT NULL REFERENCES organizations(id),
    email TEXT,
    first_name TEXT,
    last_name TEXT,
    org_role TEXT NOT NULL DEFAULT 'member',
    created_at INTEGER NOT NULL
);

CREATE TABLE teams (
    id TEXT PRIMARY KEY,
    organization_id TEXT NOT NULL REFERENCES organizations(id),
    name TEXT NOT NULL,
    created_at INTEGER NOT NULL
);

CREATE TABLE team_members (
    team_id TEXT NOT NULL REFERENCES teams(id),
    user_id TEXT NOT NULL REFERENCES users(id),
    role TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (team_id, user_id)
);
CREATE INDEX team_members_by_user ON team_members(user_id);

CREATE TABLE api_keys (
    id TEXT PRIMARY KEY,
    secret_hash BLOB NOT NULL UNIQUE,
    prefix TEXT NOT NULL,
    name TEXT,
    user_id TEXT REFERENCES users(id),
    team_id TEXT REFERENCES teams(id),
    created_by TEXT,
    created_at INTEGER NOT NULL,
    revoked_at INTEGER
);

CREATE TABLE agents (
    id TEXT PRIMARY KEY,
    owner_user_id TEXT NOT NULL,
    team_id TEXT,
    creator_user_id TEXT NOT NULL,
    name TEXT NOT NULL,
    config TEXT NOT NULL,
    version INTEGER NOT NULL,
    is_active INTEGER NOT NULL,
    deleted_at INTEGER,
    created_at INTEGER NOT NULL,
    last_updated_at INTEGER NOT NULL,
    last_used_at INTEGER
);
CREATE INDEX agents_by_team ON agents(team_id) WHERE deleted_at IS NULL;
CREATE INDEX agents_by_owner ON agents(owner_user_id) WHERE deleted_at IS NULL;

CREATE TABLE agent_versions (
    id TEXT PRIMARY KEY,
    agent_id TEXT NOT NULL REFERENCES agents(id),
    major_version INTEGER NOT NULL,
    snapshot TEXT NOT NULL,
    creator_user_id TEXT,
    created_at INTEGER NOT NULL,
    UNIQUE (agent_id, major_version)
);
