ALTER TABLE versions ADD COLUMN metrics TEXT NOT NULL DEFAULT '{}';
ALTER TABLE versions ADD COLUMN archive_micros INTEGER;
ALTER TABLE versions ADD COLUMN revision INTEGER NOT NULL DEFAULT 1;

-- Movable names on versions: at most one version per alias per asset.
CREATE TABLE aliases (
    asset_id       TEXT NOT NULL REFERENCES assets (id),
    alias          TEXT NOT NULL,
    version_number INTEGER NOT NULL,
    protected      INTEGER NOT NULL,
    update_micros  INTEGER NOT NULL,
    PRIMARY KEY (asset_id, alias)
) STRICT;
