-- Every call that changed (or tried to change) something, as the gateway saw it.
CREATE TABLE audit_events (
    id           TEXT PRIMARY KEY NOT NULL,
    time_micros  INTEGER NOT NULL,
    principal    TEXT NOT NULL,
    method       TEXT NOT NULL,
    target       TEXT NOT NULL,
    code         TEXT NOT NULL,
    trace_id     TEXT NOT NULL
) STRICT;
CREATE INDEX audit_events_principal ON audit_events (principal, time_micros, id);
CREATE INDEX audit_events_target ON audit_events (target, time_micros, id);
