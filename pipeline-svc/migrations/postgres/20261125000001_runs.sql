-- Runs and their tasks. The document columns hold the whole record as JSON; the other columns exist to be
-- filtered, ordered and compared-and-swapped on.
CREATE TABLE runs (
    id               UUID PRIMARY KEY,
    creator          TEXT NOT NULL,
    pipeline_asset   TEXT NOT NULL,
    pipeline_version TEXT NOT NULL,
    state            TEXT NOT NULL,
    backend          TEXT NOT NULL,
    create_time      TIMESTAMPTZ NOT NULL,
    request_id       TEXT,
    sequence         BIGINT NOT NULL,
    doc              TEXT NOT NULL,
    ir               TEXT NOT NULL
);
CREATE UNIQUE INDEX runs_request_id ON runs (creator, request_id) WHERE request_id IS NOT NULL;
CREATE INDEX runs_by_creator ON runs (creator, create_time, id);
CREATE INDEX runs_unfinished ON runs (state) WHERE state IN ('PENDING', 'RUNNING', 'CANCELING');

CREATE TABLE tasks (
    run_id   UUID NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    path     TEXT NOT NULL,
    position BIGINT NOT NULL,
    doc      TEXT NOT NULL,
    PRIMARY KEY (run_id, path)
);
