CREATE TABLE sessions (
    id TEXT PRIMARY KEY,
    agent_id TEXT NOT NULL,
    creator_user_id TEXT NOT NULL,
    team_id TEXT,
    organization_id TEXT NOT NULL,
    type TEXT NOT NULL,
    name TEXT,
    state TEXT NOT NULL,
    metadata TEXT NOT NULL DEFAULT '{}',
    agent_snapshot TEXT NOT NULL DEFAULT '{}',
    usage TEXT NOT NULL DEFAULT '{}',
    last_seq INTEGER NOT NULL DEFAULT 0,
    current_run_id TEXT,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);
CREATE INDEX sessions_by_agent ON sessions(agent_id, created_at);

CREATE TABLE messages (
    id TEXT PRIMARY KEY,
    session_id TEXT NOT NULL REFERENCES sessions(id),
    ord INTEGER NOT NULL,
    run_id TEXT,
    role TEXT NOT NULL,
    content TEXT,
    parts TEXT NOT NULL DEFAULT '[]',
    creator_id TEXT,
    created_at INTEGER NOT NULL,
    UNIQUE (session_id, ord)
);

CREATE TABLE runs (
    id TEXT PRIMARY KEY,
    session_id TEXT NOT NULL REFERENCES sessions(id),
    agent_id TEXT NOT NULL,
    organization_id TEXT NOT NULL,
    user_message_id TEXT NOT NULL,
    assistant_message_id TEXT,
    state TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    cancel_requested INTEGER NOT NULL DEFAULT 0,
    finish_reason TEXT,
    error_message TEXT,
    usage TEXT NOT NULL DEFAULT '{}',
    created_at INTEGER NOT NULL,
    started_at INTEGER,
    finished_at INTEGER
);
CREATE INDEX runs_by_agent_state ON runs(agent_id, state);
CREATE INDEX runs_by_org_state ON runs(organization_id, state);
CREATE INDEX runs_by_session ON runs(session_id, created_at);

CREATE TABLE run_steps (
    run_id TEXT NOT NULL,
    step INTEGER NOT NULL,
    call_id TEXT NOT NULL,
    state TEXT NOT NULL,
    output TEXT,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (run_id, step, call_id)
) WITHOUT ROWID;

CREATE TABLE jobs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id TEXT NOT NULL UNIQUE,
    state TEXT NOT NULL,
    lease_owner TEXT,
    lease_expires_at INTEGER,
    attempts INTEGER NOT NULL DEFAULT 0,
    available_at INTEGER NOT NULL,
    created_at INTEGER NOT NULL
);
CREATE INDEX jobs_by_state ON jobs(state, available_at);

CREATE TABLE events (
    session_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    run_id TEXT,
    type TEXT NOT NULL,
    data TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (session_id, seq)
) WITHOUT ROWID;
