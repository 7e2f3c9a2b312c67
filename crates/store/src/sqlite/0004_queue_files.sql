CREATE TABLE session_queue (
    id TEXT PRIMARY KEY,
    session_id TEXT NOT NULL REFERENCES sessions(id),
    input TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);
CREATE INDEX session_queue_by_session ON session_queue(session_id, created_at);

CREATE TABLE session_files (
    session_id TEXT NOT NULL REFERENCES sessions(id),
    file_name TEXT NOT NULL,
    media_type TEXT NOT NULL,
    size INTEGER NOT NULL,
    blob_key TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (session_id, file_name)
);
CREATE INDEX sessions_by_creator ON sessions(agent_id, creator_user_id, created_at);
