CREATE TABLE artifacts (
    id TEXT PRIMARY KEY,
    session_id TEXT NOT NULL REFERENCES sessions(id),
    agent_id TEXT NOT NULL,
    creator_user_id TEXT NOT NULL,
    stored_filename TEXT NOT NULL,
    custom_name TEXT,
    current_version_id TEXT NOT NULL,
    password_hash TEXT,
    deleted_at INTEGER,
    created_at INTEGER NOT NULL
);
CREATE UNIQUE INDEX artifacts_live_name ON artifacts(session_id, stored_filename) WHERE deleted_at IS NULL;
CREATE INDEX artifacts_by_agent ON artifacts(agent_id, created_at);

CREATE TABLE artifact_versions (
    id TEXT PRIMARY KEY,
    artifact_id TEXT NOT NULL REFERENCES artifacts(id),
    major_version INTEGER NOT NULL,
    filename TEXT NOT NULL,
    media_type TEXT NOT NULL,
    size INTEGER NOT NULL,
    blob_key TEXT NOT NULL,
    etag TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    UNIQUE (artifact_id, major_version)
);
