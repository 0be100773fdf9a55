-- EKS Pod Identity associations: one per (cluster, namespace, service account), as EKS allows.
CREATE TABLE pod_identity_associations (
    association_id  TEXT NOT NULL PRIMARY KEY,
    cluster_key     TEXT NOT NULL,
    namespace       TEXT NOT NULL,
    service_account TEXT NOT NULL,
    body            TEXT NOT NULL,
    UNIQUE (cluster_key, namespace, service_account)
);
