-- Outputs of succeeded tasks by their KFP-style fingerprint, per creator (a cache is never shared between users),
-- for runs that opt into caching.
CREATE TABLE task_cache (
    creator     TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    run_id      UUID NOT NULL,
    task_path   TEXT NOT NULL,
    outputs     TEXT NOT NULL,
    create_time TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (creator, fingerprint, run_id, task_path)
);
CREATE INDEX task_cache_lookup ON task_cache (creator, fingerprint, create_time);
