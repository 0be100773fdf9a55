-- Envelope encryption: data keys, each wrapped (AES-256-GCM) by the key-encryption key kite is
-- started with. Values sealed under them name their data key; see src/seal.rs.
CREATE TABLE data_keys (
    id      TEXT PRIMARY KEY,
    wrapped TEXT NOT NULL
);
