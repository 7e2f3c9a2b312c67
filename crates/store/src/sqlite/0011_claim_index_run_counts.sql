-- Claiming walks ready jobs in id order without sorting them (O(1) whatever the backlog).
DROP INDEX IF EXISTS jobs_by_state;
CREATE INDEX jobs_ready ON jobs(id) WHERE state = 'ready';
CREATE INDEX jobs_leased ON jobs(lease_expires_at) WHERE state = 'leased';

-- Active run counts per agent and per organization, kept in the transactions that change
-- a run's state, so limit checks read one row instead of counting runs.
CREATE TABLE run_counts (
    scope TEXT NOT NULL,
    key TEXT NOT NULL,
    state TEXT NOT NULL,
    n INTEGER NOT NULL,
    PRIMARY KEY (scope, key, state)
) WITHOUT ROWID;
INSERT INTO run_counts (scope, key, state, n)
    SELECT 'agent', agent_id, state, COUNT(*) FROM runs WHERE state IN ('queued', 'processing') GROUP BY agent_id, state;
INSERT INTO run_counts (scope, key, state, n)
    SELECT 'org', organization_id, state, COUNT(*) FROM runs WHERE state IN ('queued', 'processing') GROUP BY organization_id, state;
CREATE INDEX runs_queued ON runs(agent_id, created_at, id) WHERE state = 'queued';
