-- 0004_triggers: the webhook outbox triggers (sqlite/0017_webhooks.sql) and the audit
-- triggers (sqlite/audit_triggers.sql), on tables of 0001..0003.
--
-- Audit triggers read the acting user of the transaction from the settings
-- `openloop.audit_user_id`, `openloop.audit_source_ip` and `openloop.audit_user_agent`
-- (set for the transaction by PgStore::begin). No acting user (unset or empty): no
-- audit row, like SQLite's `WHEN EXISTS (SELECT 1 FROM temp.audit_ctx)`.

-- A new event id: 'evt_' and 22 lowercase hex digits (88 random bits), the shape of
-- SQLite's 'evt_' || lower(hex(randomblob(11))).
CREATE FUNCTION openloop_event_id() RETURNS text LANGUAGE sql VOLATILE AS $$
    SELECT 'evt_' || substr(md5(gen_random_uuid()::text), 1, 22)
$$;

-- The current time in microseconds since the epoch (wire::time::now_micros's unit), for
-- the rows whose SQLite trigger read julianday('now').
CREATE FUNCTION openloop_now_micros() RETURNS bigint LANGUAGE sql VOLATILE AS $$
    SELECT (extract(epoch FROM clock_timestamp()) * 1000000)::bigint
$$;

-- One audit row for the acting user of this transaction; nothing without one.
CREATE FUNCTION openloop_audit(p_org text, p_at bigint, p_event_type text, p_workspace_id text, p_entity_id text, p_details jsonb) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    uid text := NULLIF(current_setting('openloop.audit_user_id', true), '');
BEGIN
    IF uid IS NULL THEN
        RETURN;
    END IF;
    INSERT INTO audit_log (id, organization_id, created_at, event_type, user_id, source_ip, user_agent, workspace_id, entity_id, details)
    VALUES (openloop_event_id(), p_org, p_at, p_event_type, uid,
            NULLIF(current_setting('openloop.audit_source_ip', true), ''),
            NULLIF(current_setting('openloop.audit_user_agent', true), ''),
            p_workspace_id, p_entity_id, p_details);
END $$;

-- ---------------------------------------------------------------------------------
-- Webhooks (§11): one delivery per matching endpoint, in the transaction of the state
-- change; with no endpoint nothing is inserted.

CREATE FUNCTION openloop_webhook_session_state() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO webhook_outbox (id, endpoint_id, event_type, created_at, data, next_attempt_at)
    SELECT openloop_event_id(), w.id, 'session.' || NEW.state, NEW.updated_at,
           jsonb_build_object('session_id', NEW.id, 'agent_id', NEW.agent_id, 'team_id', NEW.team_id, 'state', NEW.state), NEW.updated_at
    FROM webhook_endpoints w WHERE w.team_id IS NULL OR w.team_id = NEW.team_id;
    RETURN NULL;
END $$;
CREATE TRIGGER webhook_session_state AFTER UPDATE OF state ON sessions
    FOR EACH ROW WHEN (NEW.state IS DISTINCT FROM OLD.state AND NEW.state IN ('completed', 'failed', 'cancelled', 'approval_required'))
    EXECUTE FUNCTION openloop_webhook_session_state();

CREATE FUNCTION openloop_webhook_flow_run_finished() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO webhook_outbox (id, endpoint_id, event_type, created_at, data, next_attempt_at)
    SELECT openloop_event_id(), w.id, 'flow_run.finished', COALESCE(NEW.finished_at, 0),
           jsonb_build_object('run_id', NEW.id, 'team_id', NEW.team_id, 'state', NEW.state), COALESCE(NEW.finished_at, 0)
    FROM webhook_endpoints w WHERE w.team_id IS NULL OR w.team_id = NEW.team_id;
    RETURN NULL;
END $$;
CREATE TRIGGER webhook_flow_run_finished AFTER UPDATE OF state ON flow_runs
    FOR EACH ROW WHEN (NEW.state IS DISTINCT FROM OLD.state AND NEW.state IN ('DONE', 'FAILED', 'TERMINATED'))
    EXECUTE FUNCTION openloop_webhook_flow_run_finished();

CREATE FUNCTION openloop_webhook_data_export_finished() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO webhook_outbox (id, endpoint_id, event_type, created_at, data, next_attempt_at)
    SELECT openloop_event_id(), w.id, 'data_export.finished', COALESCE(NEW.finished_at, 0),
           jsonb_build_object('data_export_id', NEW.id, 'state', NEW.state), COALESCE(NEW.finished_at, 0)
    FROM webhook_endpoints w WHERE w.team_id IS NULL;
    RETURN NULL;
END $$;
CREATE TRIGGER webhook_data_export_finished AFTER UPDATE OF state ON data_exports
    FOR EACH ROW WHEN (NEW.state IS DISTINCT FROM OLD.state AND NEW.state IN ('COMPLETED', 'FAILED'))
    EXECUTE FUNCTION openloop_webhook_data_export_finished();

-- ---------------------------------------------------------------------------------
-- Audit log (E3).

CREATE FUNCTION openloop_audit_api_key_created() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM openloop_audit(
        COALESCE((SELECT organization_id FROM users WHERE id = NEW.user_id), (SELECT organization_id FROM teams WHERE id = NEW.team_id), ''),
        NEW.created_at, 'api_key_created', NEW.team_id, NEW.id,
        jsonb_build_object('key_id', NEW.id, 'prefix', NEW.prefix, 'name', NEW.name, 'user_id', NEW.user_id, 'team_id', NEW.team_id));
    RETURN NULL;
END $$;
CREATE TRIGGER audit_api_key_created AFTER INSERT ON api_keys
    FOR EACH ROW EXECUTE FUNCTION openloop_audit_api_key_created();

CREATE FUNCTION openloop_audit_api_key_revoked() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM openloop_audit(
        COALESCE((SELECT organization_id FROM users WHERE id = NEW.user_id), (SELECT organization_id FROM teams WHERE id = NEW.team_id), ''),
        NEW.revoked_at, 'api_key_revoked', NEW.team_id, NEW.id,
        jsonb_build_object('key_id', NEW.id, 'prefix', NEW.prefix));
    RETURN NULL;
END $$;
CREATE TRIGGER audit_api_key_revoked AFTER UPDATE OF revoked_at ON api_keys
    FOR EACH ROW WHEN (OLD.revoked_at IS NULL AND NEW.revoked_at IS NOT NULL)
    EXECUTE FUNCTION openloop_audit_api_key_revoked();

CREATE FUNCTION openloop_audit_agent_created() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM openloop_audit(COALESCE((SELECT organization_id FROM users WHERE id = NEW.owner_user_id), ''),
        NEW.created_at, 'agent_created', NEW.team_id, NEW.id,
        jsonb_build_object('agent_id', NEW.id, 'name', NEW.name));
    RETURN NULL;
END $$;
CREATE TRIGGER audit_agent_created AFTER INSERT ON agents
    FOR EACH ROW EXECUTE FUNCTION openloop_audit_agent_created();

CREATE FUNCTION openloop_audit_agent_updated() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM openloop_audit(COALESCE((SELECT organization_id FROM users WHERE id = NEW.owner_user_id), ''),
        NEW.last_updated_at, 'agent_updated', NEW.team_id, NEW.id,
        jsonb_build_object('agent_id', NEW.id, 'name', NEW.name, 'version', NEW.version));
    RETURN NULL;
END $$;
CREATE TRIGGER audit_agent_updated AFTER UPDATE OF config, name, is_active ON agents
    FOR EACH ROW WHEN (NEW.deleted_at IS NULL AND (NEW.config IS DISTINCT FROM OLD.config OR NEW.name IS DISTINCT FROM OLD.name OR NEW.is_active IS DISTINCT FROM OLD.is_active))
    EXECUTE FUNCTION openloop_audit_agent_updated();

CREATE FUNCTION openloop_audit_agent_deleted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM openloop_audit(COALESCE((SELECT organization_id FROM users WHERE id = NEW.owner_user_id), ''),
        NEW.deleted_at, 'agent_deleted', NEW.team_id, NEW.id,
        jsonb_build_object('agent_id', NEW.id, 'name', NEW.name));
    RETURN NULL;
END $$;
CREATE TRIGGER audit_agent_deleted AFTER UPDATE OF deleted_at ON agents
    FOR EACH ROW WHEN (OLD.deleted_at IS NULL AND NEW.deleted_at IS NOT NULL)
    EXECUTE FUNCTION openloop_audit_agent_deleted();

CREATE FUNCTION openloop_audit_session_created() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM openloop_audit(NEW.organization_id, NEW.created_at, 'session_created', NEW.team_id, NEW.id,
        jsonb_build_object('session_id', NEW.id, 'agent_id', NEW.agent_id, 'type', NEW.type));
    RETURN NULL;
END $$;
CREATE TRIGGER audit_session_created AFTER INSERT ON sessions
    FOR EACH ROW EXECUTE FUNCTION openloop_audit_session_created();

-- Grant changes are recorded only for a grant whose session exists (SQLite joined it).
CREATE FUNCTION openloop_audit_access_granted() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE s RECORD;
BEGIN
    SELECT organization_id, team_id INTO s FROM sessions WHERE id = NEW.session_id;
    IF FOUND THEN
        PERFORM openloop_audit(s.organization_id, NEW.created_at, 'access_changed', s.team_id, NEW.session_id,
            jsonb_build_object('session_id', NEW.session_id, 'change', 'granted', 'kind', NEW.kind, 'principal', NEW.principal, 'role', NEW.role));
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER audit_access_granted AFTER INSERT ON session_grants
    FOR EACH ROW EXECUTE FUNCTION openloop_audit_access_granted();

CREATE FUNCTION openloop_audit_access_updated() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE s RECORD;
BEGIN
    SELECT organization_id, team_id INTO s FROM sessions WHERE id = NEW.session_id;
    IF FOUND THEN
        PERFORM openloop_audit(s.organization_id, openloop_now_micros(), 'access_changed', s.team_id, NEW.session_id,
            jsonb_build_object('session_id', NEW.session_id, 'change', 'role', 'kind', NEW.kind, 'principal', NEW.principal, 'role', NEW.role));
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER audit_access_updated AFTER UPDATE OF role ON session_grants
    FOR EACH ROW WHEN (NEW.role IS DISTINCT FROM OLD.role)
    EXECUTE FUNCTION openloop_audit_access_updated();

CREATE FUNCTION openloop_audit_access_revoked() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE s RECORD;
BEGIN
    SELECT organization_id, team_id INTO s FROM sessions WHERE id = OLD.session_id;
    IF FOUND THEN
        PERFORM openloop_audit(s.organization_id, openloop_now_micros(), 'access_changed', s.team_id, OLD.session_id,
            jsonb_build_object('session_id', OLD.session_id, 'change', 'revoked', 'kind', OLD.kind, 'principal', OLD.principal));
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER audit_access_revoked AFTER DELETE ON session_grants
    FOR EACH ROW EXECUTE FUNCTION openloop_audit_access_revoked();

CREATE FUNCTION openloop_audit_artifact_deleted() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE s RECORD;
BEGIN
    SELECT organization_id, team_id INTO s FROM sessions WHERE id = NEW.session_id;
    IF FOUND THEN
        PERFORM openloop_audit(s.organization_id, NEW.deleted_at, 'artifact_deleted', s.team_id, NEW.id,
            jsonb_build_object('artifact_id', NEW.id, 'session_id', NEW.session_id, 'file_name', NEW.stored_filename));
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER audit_artifact_deleted AFTER UPDATE OF deleted_at ON artifacts
    FOR EACH ROW WHEN (OLD.deleted_at IS NULL AND NEW.deleted_at IS NOT NULL)
    EXECUTE FUNCTION openloop_audit_artifact_deleted();

CREATE FUNCTION openloop_audit_flow_run_started() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM openloop_audit(NEW.organization_id, NEW.created_at, 'flow_run_started', NEW.team_id, NEW.id,
        jsonb_build_object('run_id', NEW.id, 'saved_item_id', NEW.flow_id, 'version', NEW.flow_version));
    RETURN NULL;
END $$;
CREATE TRIGGER audit_flow_run_started AFTER INSERT ON flow_runs
    FOR EACH ROW EXECUTE FUNCTION openloop_audit_flow_run_started();

CREATE FUNCTION openloop_audit_flow_run_killed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM openloop_audit(NEW.organization_id, openloop_now_micros(), 'flow_run_killed', NEW.team_id, NEW.id,
        jsonb_build_object('run_id', NEW.id, 'saved_item_id', NEW.flow_id, 'state', OLD.state));
    RETURN NULL;
END $$;
CREATE TRIGGER audit_flow_run_killed AFTER UPDATE OF kill_requested ON flow_runs
    FOR EACH ROW WHEN (NOT OLD.kill_requested AND NEW.kill_requested)
    EXECUTE FUNCTION openloop_audit_flow_run_killed();

CREATE FUNCTION openloop_audit_data_export_requested() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM openloop_audit(NEW.organization_id, NEW.created_at, 'data_export_requested', NULL, NEW.id,
        jsonb_build_object('data_export_id', NEW.id, 'data_type', NEW.data_type));
    RETURN NULL;
END $$;
CREATE TRIGGER audit_data_export_requested AFTER INSERT ON data_exports
    FOR EACH ROW EXECUTE FUNCTION openloop_audit_data_export_requested();
