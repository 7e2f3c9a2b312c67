ALTER TABLE sessions ADD COLUMN purged_through INTEGER NOT NULL DEFAULT 0;
CREATE INDEX runs_finished ON runs(finished_at) WHERE finished_at IS NOT NULL;
