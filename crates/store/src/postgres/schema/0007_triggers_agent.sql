-- 0007_triggers_agent: agent triggers (G20–G28) and their firings (sqlite/0019_triggers.sql).
CREATE TABLE agent_triggers (
    id TEXT COLLATE "C" PRIMARY KEY,
    agent_id TEXT COLLATE "C" NOT NULL,
    organization_id TEXT COLLATE "C" NOT NULL,
    creator_user_id TEXT COLLATE "C" NOT NULL,
    type TEXT NOT NULL,
    name TEXT,
    prompt TEXT NOT NULL,
    cron_expression TEXT,
    run_at BIGINT,
    timezone TEXT,
    pass_raw_data BOOLEAN NOT NULL DEFAULT FALSE,
    enabled BOOLEAN NOT NULL,
    status TEXT NOT NULL,
    max_failures BIGINT,
    consecutive_failures BIGINT NOT NULL DEFAULT 0,
    integration TEXT,
    webhook_salt TEXT,
    next_fire_at BIGINT,
    last_run_at BIGINT,
    version BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE INDEX agent_triggers_list ON agent_triggers (agent_id, created_at, id);
CREATE INDEX agent_triggers_due ON agent_triggers (next_fire_at) WHERE next_fire_at IS NOT NULL AND enabled;

CREATE TABLE agent_trigger_runs (
    id TEXT COLLATE "C" PRIMARY KEY,
    trigger_id TEXT COLLATE "C" NOT NULL,
    agent_id TEXT COLLATE "C" NOT NULL,
    source TEXT NOT NULL,
    delivery_key TEXT COLLATE "C" NOT NULL,
    session_id TEXT COLLATE "C" NOT NULL,
    input TEXT NOT NULL,
    state TEXT NOT NULL,
    error TEXT,
    scheduled_for BIGINT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    UNIQUE (trigger_id, delivery_key)
);
CREATE INDEX agent_trigger_runs_list ON agent_trigger_runs (trigger_id, created_at, id);
CREATE INDEX agent_trigger_runs_pending ON agent_trigger_runs (created_at) WHERE state = 'pending';
