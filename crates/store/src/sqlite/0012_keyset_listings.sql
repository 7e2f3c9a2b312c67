-- S3 and A1 page in SQL: every sort order has an index that serves it, so a page costs
-- the same whatever the number of sessions or artifacts.
CREATE INDEX sessions_list_created ON sessions(agent_id, created_at, id);
CREATE INDEX sessions_list_name ON sessions(agent_id, lower(COALESCE(name, json_extract(agent_snapshot, '$.name'), '')), id);
CREATE INDEX sessions_list_credits ON sessions(agent_id, CAST(round(COALESCE(json_extract(usage, '$.credit_cost'), 0) * 10000) AS INTEGER), id);
DROP INDEX sessions_by_agent;

-- The current version's time and the listed name, kept on the artifact row.
ALTER TABLE artifacts ADD COLUMN listed_at INTEGER NOT NULL DEFAULT 0;
ALTER TABLE artifacts ADD COLUMN listed_name TEXT NOT NULL DEFAULT '';
UPDATE artifacts SET
    listed_at = COALESCE((SELECT v.created_at FROM artifact_versions v WHERE v.id = artifacts.current_version_id), created_at),
    listed_name = lower(COALESCE(custom_name, (SELECT v.filename FROM artifact_versions v WHERE v.id = artifacts.current_version_id), stored_filename));
CREATE INDEX artifacts_list_created ON artifacts(agent_id, listed_at, id) WHERE deleted_at IS NULL;
CREATE INDEX artifacts_list_name ON artifacts(agent_id, listed_name, id) WHERE deleted_at IS NULL;

-- Assistant messages keep their text in `content` too, so search reads one column.
UPDATE messages SET content = (
    SELECT group_concat(json_extract(p.value, '$.text'), char(10)) FROM json_each(messages.parts) p WHERE json_extract(p.value, '$.type') = 'text'
) WHERE role = 'assistant' AND content IS NULL;
