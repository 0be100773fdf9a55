-- Portable SQL: the same statements run on SQLite and PostgreSQL.
-- Each row keeps the columns queries need plus the object itself as JSON in `body`.
CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

CREATE TABLE resource_groups (
    sub_id   TEXT NOT NULL,
    name_key TEXT NOT NULL,
    body     TEXT NOT NULL,
    PRIMARY KEY (sub_id, name_key)
);

CREATE TABLE identities (
    id_key TEXT PRIMARY KEY,
    sub_id TEXT NOT NULL,
    rg_key TEXT NOT NULL,
    body   TEXT NOT NULL
);
CREATE INDEX identities_by_group ON identities (sub_id, rg_key);

CREATE TABLE principals (
    object_id TEXT PRIMARY KEY,
    app_id    TEXT NOT NULL UNIQUE,
    name_key  TEXT NOT NULL,
    body      TEXT NOT NULL
);
CREATE INDEX principals_by_name ON principals (name_key);

CREATE TABLE applications (
    app_id   TEXT PRIMARY KEY,
    name_key TEXT NOT NULL UNIQUE,
    version  BIGINT NOT NULL,
    body     TEXT NOT NULL
);

CREATE TABLE role_definitions (
    id       TEXT PRIMARY KEY,
    name_key TEXT NOT NULL UNIQUE,
    body     TEXT NOT NULL
);

CREATE TABLE role_assignments (
    name         TEXT PRIMARY KEY,
    scope_key    TEXT NOT NULL,
    -- '{sub}/{rg}' (lower case) when the scope is a resource group or below it, else ''
    rg_key       TEXT NOT NULL,
    principal_id TEXT NOT NULL,
    role_id      TEXT NOT NULL,
    body         TEXT NOT NULL,
    UNIQUE (principal_id, role_id, scope_key)
);
CREATE INDEX role_assignments_by_scope ON role_assignments (scope_key);
CREATE INDEX role_assignments_by_group ON role_assignments (rg_key);

CREATE TABLE signing_keys (
    kid        TEXT PRIMARY KEY,
    created_at BIGINT NOT NULL,
    body       TEXT NOT NULL
);
