CREATE TABLE idempotency_keys (
    scope TEXT PRIMARY KEY,
    fingerprint BLOB NOT NULL,
    state TEXT NOT NULL,
    status INTEGER,
    body BLOB,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);
CREATE INDEX idempotency_keys_by_age ON idempotency_keys(created_at);
