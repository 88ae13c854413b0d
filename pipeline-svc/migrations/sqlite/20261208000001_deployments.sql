-- Deployments of use cases on this server: what each runs (the document) and when it was made. Their replicas'
-- status is live, never stored.
CREATE TABLE deployments (
    id          TEXT PRIMARY KEY,
    use_case    TEXT NOT NULL,
    create_time INTEGER NOT NULL,
    doc         TEXT NOT NULL
);
CREATE INDEX deployments_by_use_case ON deployments (use_case, create_time);
