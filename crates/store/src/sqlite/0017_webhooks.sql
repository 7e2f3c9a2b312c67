-- Webhooks (§11): endpoints (the global one from OPENLOOP_WEBHOOK_URL is team_id NULL)
-- and a durable outbox. Triggers enqueue one delivery per endpoint in the transaction
-- of the state change; with no endpoint they insert nothing.
CREATE TABLE webhook_endpoints (
    id TEXT PRIMARY KEY,
    team_id TEXT,
    url TEXT NOT NULL,
    created_at INTEGER NOT NULL
);

CREATE TABLE webhook_outbox (
    id TEXT PRIMARY KEY,
    endpoint_id TEXT NOT NULL,
    event_type TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    data TEXT NOT NULL,
    state TEXT NOT NULL DEFAULT 'pending',
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER NOT NULL,
    last_error TEXT,
    lease_owner TEXT,
    lease_expires_at INTEGER
);
CREATE INDEX webhook_outbox_due ON webhook_outbox (next_attempt_at) WHERE state = 'pending';

CREATE TRIGGER webhook_session_state AFTER UPDATE OF state ON sessions
  WHEN NEW.state != OLD.state AND NEW.state IN ('completed', 'failed', 'cancelled', 'approval_required') BEGIN
  INSERT INTO webhook_outbox (id, endpoint_id, event_type, created_at, data, next_attempt_at)
    SELECT 'evt_' || lower(hex(randomblob(11))), w.id, 'session.' || NEW.state, NEW.updated_at,
           json_object('session_id', NEW.id, 'agent_id', NEW.agent_id, 'team_id', NEW.team_id, 'state', NEW.state), NEW.updated_at
    FROM webhook_endpoints w WHERE w.team_id IS NULL OR w.team_id = NEW.team_id;
END;

CREATE TRIGGER webhook_flow_run_finished AFTER UPDATE OF state ON flow_runs
  WHEN NEW.state != OLD.state AND NEW.state IN ('DONE', 'FAILED', 'TERMINATED') BEGIN
  INSERT INTO webhook_outbox (id, endpoint_id, event_type, created_at, data, next_attempt_at)
    SELECT 'evt_' || lower(hex(randomblob(11))), w.id, 'flow_run.finished', COALESCE(NEW.finished_at, 0),
           json_object('run_id', NEW.id, 'team_id', NEW.team_id, 'state', NEW.state), COALESCE(NEW.finished_at, 0)
    FROM webhook_endpoints w WHERE w.team_id IS NULL OR w.team_id = NEW.team_id;
END;

CREATE TRIGGER webhook_data_export_finished AFTER UPDATE OF state ON data_exports
  WHEN NEW.state != OLD.state AND NEW.state IN ('COMPLETED', 'FAILED') BEGIN
  INSERT INTO webhook_outbox (id, endpoint_id, event_type, created_at, data, next_attempt_at)
    SELECT 'evt_' || lower(hex(randomblob(11))), w.id, 'data_export.finished', COALESCE(NEW.finished_at, 0),
           json_object('data_export_id', NEW.id, 'state', NEW.state), COALESCE(NEW.finished_at, 0)
    FROM webhook_endpoints w WHERE w.team_id IS NULL;
END;
