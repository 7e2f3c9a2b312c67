-- One row rewritten by /readyz to prove the database still takes writes.
CREATE TABLE _health (id INTEGER PRIMARY KEY, checked_at INTEGER NOT NULL);
