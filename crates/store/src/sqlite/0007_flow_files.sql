CREATE TABLE flow_files (
    namespace TEXT NOT NULL,
    file_name TEXT NOT NULL,
    media_type TEXT NOT NULL,
    size INTEGER NOT NULL,
    blob_key TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (namespace, file_name)
);
