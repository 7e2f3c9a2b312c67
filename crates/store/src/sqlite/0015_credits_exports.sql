-- Every credit spent: one row per model call (agent runs, flow nodes), written with the
-- work it pays for. Exports (E1 credit_logs) and cost columns are sums of these rows.
CREATE TABLE credit_ledger (
    id TEXT PRIMARY KEY,
    organization_id TEXT NOT NULL,
    user_id TEXT,
    team_id TEXT,
    created_at INTEGER NOT NULL,
    category TEXT NOT NULL,
    type TEXT NOT NULL,
    name TEXT NOT NULL,
    amount REAL NOT NULL,
    correlation_id TEXT,
    session_id TEXT,
    agent_id TEXT
);
CREATE INDEX credit_ledger_by_org ON credit_ledger (organization_id, created_at, id);
CREATE INDEX credit_ledger_by_session ON credit_ledger (session_id);

-- E1/E2 data exports: durable jobs claimed with a lease.
CREATE TABLE data_exports (
    id TEXT PRIMARY KEY,
    organization_id TEXT NOT NULL,
    requested_by TEXT NOT NULL,
    data_type TEXT NOT NULL,
    request TEXT NOT NULL,
    state TEXT NOT NULL,
    row_count INTEGER,
    error TEXT,
    blob_key TEXT,
    created_at INTEGER NOT NULL,
    started_at INTEGER,
    finished_at INTEGER,
    expires_at INTEGER,
    attempts INTEGER NOT NULL DEFAULT 0,
    lease_owner TEXT,
    lease_expires_at INTEGER
);
CREATE INDEX data_exports_live ON data_exports (created_at) WHERE state IN ('REQUESTED', 'IN_PROGRESS');
