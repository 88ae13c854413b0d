-- Every call that changed (or tried to change) something, as the gateway saw it.
CREATE TABLE audit_events (
    id        UUID PRIMARY KEY,
    time      TIMESTAMPTZ NOT NULL,
    principal TEXT NOT NULL,
    method    TEXT NOT NULL,
    -- Compared bytewise, so a resource and what it contains form one range.
    target    TEXT COLLATE "C" NOT NULL,
    code      TEXT NOT NULL,
    trace_id  TEXT NOT NULL
);
CREATE INDEX audit_events_principal ON audit_events (principal, time, id);
CREATE INDEX audit_events_target ON audit_events (target, time, id);
