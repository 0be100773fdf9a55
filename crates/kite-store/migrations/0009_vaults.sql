-- Key vaults, by their globally unique name (it is their DNS label); a soft-deleted vault keeps
-- its name until it is purged.
CREATE TABLE vaults (
    name_key TEXT PRIMARY KEY,
    sub_id   TEXT NOT NULL,
    rg_key   TEXT NOT NULL,
    deleted  BIGINT NOT NULL,
    version  BIGINT NOT NULL,
    body     TEXT NOT NULL
);
CREATE INDEX vaults_by_group ON vaults (sub_id, rg_key);

-- Secret versions. `value` is sealed (see src/seal.rs); `body` holds the attributes; `deleted`
-- holds the deletion (JSON) for every version of a soft-deleted secret, else NULL.
CREATE TABLE vault_secrets (
    vault_key TEXT NOT NULL,
    name_key  TEXT NOT NULL,
    version   TEXT NOT NULL,
    seq       BIGINT NOT NULL,
    body      TEXT NOT NULL,
    value     TEXT NOT NULL,
    deleted   TEXT,
    PRIMARY KEY (vault_key, name_key, version),
    UNIQUE (vault_key, name_key, seq)
);
