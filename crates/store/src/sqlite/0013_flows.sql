-- Flows (saved items), their versions, workbooks, flow runs, per-node results and logs.
CREATE TABLE workbooks (
    id TEXT PRIMARY KEY,
    organization_id TEXT NOT NULL,
    owner_user_id TEXT,
    team_id TEXT,
    name TEXT NOT NULL,
    description TEXT,
    created_at INTEGER NOT NULL
);
CREATE INDEX workbooks_by_owner ON workbooks (team_id, owner_user_id, created_at);

CREATE TABLE flows (
    id TEXT PRIMARY KEY,
    organization_id TEXT NOT NULL,
    owner_user_id TEXT,
    team_id TEXT,
    workbook_id TEXT NOT NULL,
    name TEXT NOT NULL,
    description TEXT,
    version INTEGER NOT NULL,
    document TEXT NOT NULL,
    created_by TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    deleted_at INTEGER
);
CREATE INDEX flows_by_owner ON flows (team_id, owner_user_id, created_at);
CREATE INDEX flows_by_workbook ON flows (workbook_id);

CREATE TABLE flow_versions (
    flow_id TEXT NOT NULL,
    version INTEGER NOT NULL,
    document TEXT NOT NULL,
    created_by TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (flow_id, version)
);

CREATE TABLE flow_runs (
    id TEXT PRIMARY KEY,
    flow_id TEXT NOT NULL,
    flow_version INTEGER NOT NULL,
    workbook_id TEXT NOT NULL,
    organization_id TEXT NOT NULL,
    user_id TEXT NOT NULL,
    team_id TEXT,
    state TEXT NOT NULL,
    inputs TEXT NOT NULL,
    outputs TEXT NOT NULL DEFAULT '{}',
    error TEXT,
    credit_cost REAL NOT NULL DEFAULT 0,
    kill_requested INTEGER NOT NULL DEFAULT 0,
    attempts INTEGER NOT NULL DEFAULT 0,
    lease_owner TEXT,
    lease_expires_at INTEGER,
    created_at INTEGER NOT NULL,
    started_at INTEGER,
    finished_at INTEGER
);
-- Claim order: live runs oldest first (terminal states are never scanned).
CREATE INDEX flow_runs_live ON flow_runs (created_at) WHERE state IN ('QUEUED', 'STARTED', 'RUNNING', 'TERMINATING');
CREATE INDEX flow_runs_by_flow ON flow_runs (flow_id, created_at);

-- One row per node of a run: written once (the primary key refuses a second write).
CREATE TABLE flow_node_results (
    run_id TEXT NOT NULL,
    node_id TEXT NOT NULL,
    status TEXT NOT NULL,
    output TEXT NOT NULL,
    credit_cost REAL NOT NULL DEFAULT 0,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (run_id, node_id)
);

CREATE TABLE flow_run_log (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id TEXT NOT NULL,
    line TEXT NOT NULL
);
CREATE INDEX flow_run_log_by_run ON flow_run_log (run_id, id);
