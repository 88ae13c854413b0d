-- Runs and their tasks. The document columns hold the whole record as JSON; the other columns exist to be
-- filtered, ordered and compared-and-swapped on. Times are integer microseconds.
CREATE TABLE runs (
    id               TEXT PRIMARY KEY,
    creator          TEXT NOT NULL,
    pipeline_asset   TEXT NOT NULL,
    pipeline_version TEXT NOT NULL,
    state            TEXT NOT NULL,
    backend          TEXT NOT NULL,
    create_time      INTEGER NOT NULL,
    request_id       TEXT,
    sequence         INTEGER NOT NULL,
    doc              TEXT NOT NULL,
    ir               TEXT NOT NULL
);
CREATE UNIQUE INDEX runs_request_id ON runs (creator, request_id) WHERE request_id IS NOT NULL;
CREATE INDEX runs_by_creator ON runs (creator, create_time, id);
CREATE INDEX runs_unfinished ON runs (state) WHERE state IN ('PENDING', 'RUNNING', 'CANCELING');

CREATE TABLE tasks (
    run_id   TEXT NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    path     TEXT NOT NULL,
    position INTEGER NOT NULL,
    doc      TEXT NOT NULL,
    PRIMARY KEY (run_id, path)
);
