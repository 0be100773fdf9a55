-- Federated identity credentials of apps and user-assigned identities, keyed by the owner's client id.
CREATE TABLE federated_credentials (
    owner_id TEXT NOT NULL,
    name_key TEXT NOT NULL,
    body     TEXT NOT NULL,
    PRIMARY KEY (owner_id, name_key)
);
