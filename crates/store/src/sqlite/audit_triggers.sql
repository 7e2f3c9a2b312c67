-- TEMP objects of the writer connection: the acting user of the current write job, and
-- the triggers that turn audited changes into audit rows in the same transaction.
CREATE TEMP TABLE IF NOT EXISTS audit_ctx (k INTEGER PRIMARY KEY CHECK (k = 1), user_id TEXT, source_ip TEXT, user_agent TEXT);

CREATE TEMP TRIGGER IF NOT EXISTS audit_api_key_created AFTER INSERT ON main.api_keys WHEN EXISTS (SELECT 1 FROM temp.audit_ctx) BEGIN
  INSERT INTO audit_log SELECT 'evt_' || lower(hex(randomblob(11))),
    COALESCE((SELECT organization_id FROM main.users WHERE id = NEW.user_id), (SELECT organization_id FROM main.teams WHERE id = NEW.team_id), ''),
    NEW.created_at, 'api_key_created', c.user_id, c.source_ip, c.user_agent, NEW.team_id, NEW.id,
    json_object('key_id', NEW.id, 'prefix', NEW.prefix, 'name', NEW.name, 'user_id', NEW.user_id, 'team_id', NEW.team_id) FROM temp.audit_ctx c;
END;
CREATE TEMP TRIGGER IF NOT EXISTS audit_api_key_revoked AFTER UPDATE OF revoked_at ON main.api_keys
  WHEN OLD.revoked_at IS NULL AND NEW.revoked_at IS NOT NULL AND EXISTS (SELECT 1 FROM temp.audit_ctx) BEGIN
  INSERT INTO audit_log SELECT 'evt_' || lower(hex(randomblob(11))),
    COALESCE((SELECT organization_id FROM main.users WHERE id = NEW.user_id), (SELECT organization_id FROM main.teams WHERE id = NEW.team_id), ''),
    NEW.revoked_at, 'api_key_revoked', c.user_id, c.source_ip, c.user_agent, NEW.team_id, NEW.id,
    json_object('key_id', NEW.id, 'prefix', NEW.prefix) FROM temp.audit_ctx c;
END;
CREATE TEMP TRIGGER IF NOT EXISTS audit_agent_created AFTER INSERT ON main.agents WHEN EXISTS (SELECT 1 FROM temp.audit_ctx) BEGIN
  INSERT INTO audit_log SELECT 'evt_' || lower(hex(randomblob(11))), COALESCE((SELECT organization_id FROM main.users WHERE id = NEW.owner_user_id), ''),
    NEW.created_at, 'agent_created', c.user_id, c.source_ip, c.user_agent, NEW.team_id, NEW.id,
    json_object('agent_id', NEW.id, 'name', NEW.name) FROM temp.audit_ctx c;
END;
CREATE TEMP TRIGGER IF NOT EXISTS audit_agent_updated AFTER UPDATE OF config, name, is_active ON main.agents
  WHEN NEW.deleted_at IS NULL AND (NEW.config IS NOT OLD.config OR NEW.name IS NOT OLD.name OR NEW.is_active IS NOT OLD.is_active)
   AND EXISTS (SELECT 1 FROM temp.audit_ctx) BEGIN
  INSERT INTO audit_log SELECT 'evt_' || lower(hex(randomblob(11))), COALESCE((SELECT organization_id FROM main.users WHERE id = NEW.owner_user_id), ''),
    NEW.last_updated_at, 'agent_updated', c.user_id, c.source_ip, c.user_agent, NEW.team_id, NEW.id,
    json_object('agent_id', NEW.id, 'name', NEW.name, 'version', NEW.version) FROM temp.audit_ctx c;
END;
CREATE TEMP TRIGGER IF NOT EXISTS audit_agent_deleted AFTER UPDATE OF deleted_at ON main.agents
  WHEN OLD.deleted_at IS NULL AND NEW.deleted_at IS NOT NULL AND EXISTS (SELECT 1 FROM temp.audit_ctx) BEGIN
  INSERT INTO audit_log SELECT 'evt_' || lower(hex(randomblob(11))), COALESCE((SELECT organization_id FROM main.users WHERE id = NEW.owner_user_id), ''),
    NEW.deleted_at, 'agent_deleted', c.user_id, c.source_ip, c.user_agent, NEW.team_id, NEW.id,
    json_object('agent_id', NEW.id, 'name', NEW.name) FROM temp.audit_ctx c;
END;
CREATE TEMP TRIGGER IF NOT EXISTS audit_session_created AFTER INSERT ON main.sessions WHEN EXISTS (SELECT 1 FROM temp.audit_ctx) BEGIN
  INSERT INTO audit_log SELECT 'evt_' || lower(hex(randomblob(11))), NEW.organization_id,
    NEW.created_at, 'session_created', c.user_id, c.source_ip, c.user_agent, NEW.team_id, NEW.id,
    json_object('session_id', NEW.id, 'agent_id', NEW.agent_id, 'type', NEW.type) FROM temp.audit_ctx c;
END;
CREATE TEMP TRIGGER IF NOT EXISTS audit_access_granted AFTER INSERT ON main.session_grants WHEN EXISTS (SELECT 1 FROM temp.audit_ctx) BEGIN
  INSERT INTO audit_log SELECT 'evt_' || lower(hex(randomblob(11))), s.organization_id,
    NEW.created_at, 'access_changed', c.user_id, c.source_ip, c.user_agent, s.team_id, NEW.session_id,
    json_object('session_id', NEW.session_id, 'change', 'granted', 'kind', NEW.kind, 'principal', NEW.principal, 'role', NEW.role)
    FROM temp.audit_ctx c JOIN main.sessions s ON s.id = NEW.session_id;
END;
CREATE TEMP TRIGGER IF NOT EXISTS audit_access_updated AFTER UPDATE OF role ON main.session_grants
  WHEN NEW.role IS NOT OLD.role AND EXISTS (SELECT 1 FROM temp.audit_ctx) BEGIN
  INSERT INTO audit_log SELECT 'evt_' || lower(hex(randomblob(11))), s.organization_id,
    CAST((julianday('now') - 2440587.5) * 86400000000 AS INTEGER), 'access_changed', c.user_id, c.source_ip, c.user_agent, s.team_id, NEW.session_id,
    json_object('session_id', NEW.session_id, 'change', 'role', 'kind', NEW.kind, 'principal', NEW.principal, 'role', NEW.role)
    FROM temp.audit_ctx c JOIN main.sessions s ON s.id = NEW.session_id;
END;
CREATE TEMP TRIGGER IF NOT EXISTS audit_access_revoked AFTER DELETE ON main.session_grants WHEN EXISTS (SELECT 1 FROM temp.audit_ctx) BEGIN
  INSERT INTO audit_log SELECT 'evt_' || lower(hex(randomblob(11))), s.organization_id,
    CAST((julianday('now') - 2440587.5) * 86400000000 AS INTEGER), 'access_changed', c.user_id, c.source_ip, c.user_agent, s.team_id, OLD.session_id,
    json_object('session_id', OLD.session_id, 'change', 'revoked', 'kind', OLD.kind, 'principal', OLD.principal)
    FROM temp.audit_ctx c JOIN main.sessions s ON s.id = OLD.session_id;
END;
CREATE TEMP TRIGGER IF NOT EXISTS audit_artifact_deleted AFTER UPDATE OF deleted_at ON main.artifacts
  WHEN OLD.deleted_at IS NULL AND NEW.deleted_at IS NOT NULL AND EXISTS (SELECT 1 FROM temp.audit_ctx) BEGIN
  INSERT INTO audit_log SELECT 'evt_' || lower(hex(randomblob(11))), s.organization_id,
    NEW.deleted_at, 'artifact_deleted', c.user_id, c.source_ip, c.user_agent, s.team_id, NEW.id,
    json_object('artifact_id', NEW.id, 'session_id', NEW.session_id, 'file_name', NEW.stored_filename)
    FROM temp.audit_ctx c JOIN main.sessions s ON s.id = NEW.session_id;
END;
CREATE TEMP TRIGGER IF NOT EXISTS audit_flow_run_started AFTER INSERT ON main.flow_runs WHEN EXISTS (SELECT 1 FROM temp.audit_ctx) BEGIN
  INSERT INTO audit_log SELECT 'evt_' || lower(hex(randomblob(11))), NEW.organization_id,
    NEW.created_at, 'flow_run_started', c.user_id, c.source_ip, c.user_agent, NEW.team_id, NEW.id,
    json_object('run_id', NEW.id, 'saved_item_id', NEW.flow_id, 'version', NEW.flow_version) FROM temp.audit_ctx c;
END;
CREATE TEMP TRIGGER IF NOT EXISTS audit_flow_run_killed AFTER UPDATE OF kill_requested ON main.flow_runs
  WHEN OLD.kill_requested = 0 AND NEW.kill_requested = 1 AND EXISTS (SELECT 1 FROM temp.audit_ctx) BEGIN
  INSERT INTO audit_log SELECT 'evt_' || lower(hex(randomblob(11))), NEW.organization_id,
    CAST((julianday('now') - 2440587.5) * 86400000000 AS INTEGER), 'flow_run_killed', c.user_id, c.source_ip, c.user_agent, NEW.team_id, NEW.id,
    json_object('run_id', NEW.id, 'saved_item_id', NEW.flow_id, 'state', OLD.state) FROM temp.audit_ctx c;
END;
CREATE TEMP TRIGGER IF NOT EXISTS audit_data_export_requested AFTER INSERT ON main.data_exports WHEN EXISTS (SELECT 1 FROM temp.audit_ctx) BEGIN
  INSERT INTO audit_log SELECT 'evt_' || lower(hex(randomblob(11))), NEW.organization_id,
    NEW.created_at, 'data_export_requested', c.user_id, c.source_ip, c.user_agent, NULL, NEW.id,
    json_object('data_export_id', NEW.id, 'data_type', NEW.data_type) FROM temp.audit_ctx c;
END;
