-- IAM users and their long-term access keys. No secret is stored: a key's secret is derived from
-- the STS master key and its access key ID, so a row holds only the owner, the key ID and its status.
CREATE TABLE iam_users (
    name_key TEXT PRIMARY KEY,
    body     TEXT NOT NULL
);

CREATE TABLE iam_access_keys (
    access_key_id TEXT PRIMARY KEY,
    user_key      TEXT NOT NULL,
    body          TEXT NOT NULL
);

CREATE INDEX iam_access_keys_by_user ON iam_access_keys (user_key);
