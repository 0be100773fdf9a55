-- AKS-shaped managed clusters, keyed by lower-cased resource ID; `version` makes updates compare-and-swap.
CREATE TABLE managed_clusters (
    id_key  TEXT PRIMARY KEY,
    sub_id  TEXT NOT NULL,
    rg_key  TEXT NOT NULL,
    version BIGINT NOT NULL,
    body    TEXT NOT NULL
);
CREATE INDEX managed_clusters_by_group ON managed_clusters (sub_id, rg_key);
