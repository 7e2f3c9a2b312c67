-- 0019_triggers: agent triggers (G20–G28) and their firings.
CREATE TABLE agent_triggers (
    id TEXT PRIMARY KEY,
    agent_id TEXT NOT NULL,
    organization_id TEXT NOT NULL,
    creator_user_id TEXT NOT NULL,
    type TEXT NOT NULL,
    name TEXT,
    prompt TEXT NOT NULL,
    cron_expression TEXT,
    run_at INTEGER,
    timezone TEXT,
    pass_raw_data INTEGER NOT NULL DEFAULT 0,
    enabled INTEGER NOT NULL,
    status TEXT NOT NULL,
    max_failures INTEGER,
    consecutive_failures INTEGER NOT NULL DEFAULT 0,
    integration TEXT,
    webhook_salt TEXT,
    next_fire_at INTEGER,
    last_run_at INTEGER,
    version INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);
CREATE INDEX agent_triggers_list ON agent_triggers(agent_id, created_at, id);
-- The scheduler's scan: only armed triggers are indexed.
CREATE INDEX agent_triggers_due ON agent_triggers(next_fire_at) WHERE next_fire_at IS NOT NULL AND enabled = 1;

CREATE TABLE agent_trigger_runs (
    id TEXT PRIMARY KEY,
    trigger_id TEXT NOT NULL,
    agent_id TEXT NOT NULL,
    source TEXT NOT NULL,
    delivery_key TEXT NOT NULL,
    session_id TEXT NOT NULL,
    input TEXT NOT NULL,
    state TEXT NOT NULL,
    error TEXT,
    scheduled_for INTEGER,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    -- One delivery (a scheduled time, a webhook delivery id) is one firing.
    UNIQUE (trigger_id, delivery_key)
);
CREATE INDEX agent_trigger_runs_list ON agent_trigger_runs(trigger_id, created_at, id);
CREATE INDEX agent_trigger_runs_pending ON agent_trigger_runs(created_at) WHERE state = 'pending';
