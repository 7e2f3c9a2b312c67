CREATE TABLE session_grants (
    session_id TEXT NOT NULL REFERENCES sessions(id),
    kind TEXT NOT NULL,
    principal TEXT NOT NULL,
    role TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (session_id, kind, principal)
);
CREATE INDEX users_by_email ON users(organization_id, email);
