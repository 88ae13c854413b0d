-- The asset versions each run read (IN: bound inputs and importers) and produced (OUT: registered outputs), so
-- lineage walks both ways through an index instead of reading every run.
CREATE TABLE run_lineage (
    run_id        TEXT NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    asset_version TEXT NOT NULL,
    direction     TEXT NOT NULL,
    port          TEXT NOT NULL,
    artifact_type TEXT NOT NULL,
    PRIMARY KEY (run_id, direction, port, asset_version)
);
CREATE INDEX run_lineage_by_version ON run_lineage (asset_version, direction);
