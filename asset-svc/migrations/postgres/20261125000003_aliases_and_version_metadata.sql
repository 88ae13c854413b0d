ALTER TABLE versions ADD COLUMN metrics JSONB NOT NULL DEFAULT '{}';
ALTER TABLE versions ADD COLUMN archive_time TIMESTAMPTZ;
ALTER TABLE versions ADD COLUMN revision BIGINT NOT NULL DEFAULT 1;

-- Movable names on versions: at most one version per alias per asset.
CREATE TABLE aliases (
    asset_id       UUID NOT NULL REFERENCES assets (id),
    alias          TEXT NOT NULL,
    version_number BIGINT NOT NULL,
    protected      BOOLEAN NOT NULL,
    update_time    TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (asset_id, alias)
);
