-- Skills (API.md §8.10): versioned bundles of files whose bytes live in the blob store.
CREATE TABLE skills (
    id TEXT PRIMARY KEY,
    organization_id TEXT NOT NULL,
    team_id TEXT,
    owner_user_id TEXT NOT NULL,
    creator_user_id TEXT NOT NULL,
    name TEXT NOT NULL,
    description TEXT NOT NULL,
    current_version_id TEXT NOT NULL,
    major_version INTEGER NOT NULL,
    deleted_at INTEGER,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);
CREATE INDEX skills_by_org ON skills(organization_id, updated_at);

CREATE TABLE skill_versions (
    id TEXT PRIMARY KEY,
    skill_id TEXT NOT NULL REFERENCES skills(id),
    major_version INTEGER NOT NULL,
    name TEXT NOT NULL,
    description TEXT NOT NULL,
    instructions TEXT NOT NULL,
    content_hash TEXT NOT NULL,
    size INTEGER NOT NULL,
    file_count INTEGER NOT NULL,
    creator_user_id TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    UNIQUE (skill_id, major_version)
);

CREATE TABLE skill_files (
    version_id TEXT NOT NULL REFERENCES skill_versions(id),
    path TEXT NOT NULL,
    media_type TEXT NOT NULL,
    size INTEGER NOT NULL,
    blob_key TEXT NOT NULL,
    sha256 TEXT NOT NULL,
    PRIMARY KEY (version_id, path)
);

CREATE TABLE skill_grants (
    skill_id TEXT NOT NULL REFERENCES skills(id),
    kind TEXT NOT NULL,
    principal TEXT NOT NULL,
    role TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (skill_id, kind, principal)
);
