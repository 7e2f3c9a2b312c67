-- Results of a loop node's items, committed as each finishes, so a resumed run skips them.
CREATE TABLE flow_loop_items (
    run_id TEXT NOT NULL,
    node_id TEXT NOT NULL,
    idx INTEGER NOT NULL,
    output TEXT NOT NULL,
    credit_cost REAL NOT NULL DEFAULT 0,
    PRIMARY KEY (run_id, node_id, idx)
);
