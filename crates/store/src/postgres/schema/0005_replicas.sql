-- What replicas share beyond the tables of 0001-0004.

-- Cross-replica notices (LISTEN/NOTIFY), delivered when the writing transaction commits,
-- in commit order. Payloads name what changed; readers read the content from the tables.

-- A session's event log grew: one notice per session and statement, with its last seq.
CREATE FUNCTION openloop_notify_events() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE r RECORD;
BEGIN
    FOR r IN SELECT session_id, max(seq) AS seq FROM new_events GROUP BY session_id LOOP
        PERFORM pg_notify('openloop_events', r.session_id || ' ' || r.seq);
    END LOOP;
    RETURN NULL;
END $$;
CREATE TRIGGER events_notify AFTER INSERT ON events
    REFERENCING NEW TABLE AS new_events
    FOR EACH STATEMENT EXECUTE FUNCTION openloop_notify_events();

-- A cancel was requested: the replica executing the run stops it.
CREATE FUNCTION openloop_notify_cancel() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('openloop_cancel', NEW.id);
    RETURN NULL;
END $$;
CREATE TRIGGER runs_notify_cancel AFTER UPDATE OF cancel_requested ON runs
    FOR EACH ROW WHEN (NEW.cancel_requested AND NOT OLD.cancel_requested)
    EXECUTE FUNCTION openloop_notify_cancel();

-- Rate-limit buckets shared by the replicas (GCRA): the theoretical arrival time per key.
CREATE TABLE rate_limits (
    key TEXT COLLATE "C" PRIMARY KEY,
    tat BIGINT NOT NULL
);
CREATE INDEX rate_limits_by_tat ON rate_limits(tat);
