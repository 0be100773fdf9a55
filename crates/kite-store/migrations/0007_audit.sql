-- The audit trail: append-only; rows leave only when older than the retention. The key columns are
-- lower case for case-insensitive filters; the body is the whole event as JSON.
CREATE TABLE audit_events (
    event_id      TEXT NOT NULL PRIMARY KEY,
    event_time    BIGINT NOT NULL,
    caller_key    TEXT NOT NULL,
    operation_key TEXT NOT NULL,
    resource_key  TEXT NOT NULL,
    status        TEXT NOT NULL,
    body          TEXT NOT NULL
);

CREATE INDEX audit_events_by_time ON audit_events (event_time, event_id);
