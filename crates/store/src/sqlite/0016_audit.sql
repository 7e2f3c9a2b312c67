-- E3 audit log: written by triggers (on the writer connection, see audit.rs) in the same
-- transaction as the action, or explicitly for reads and failed authentication.
CREATE TABLE audit_log (
    id TEXT PRIMARY KEY,
    organization_id TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    event_type TEXT NOT NULL,
    user_id TEXT,
    source_ip TEXT,
    user_agent TEXT,
    workspace_id TEXT,
    entity_id TEXT,
    details TEXT NOT NULL
);
CREATE INDEX audit_log_by_org ON audit_log (organization_id, created_at, id);
