-- Assets a use case is composed of, each pinned to a version number or following an alias.
CREATE TABLE asset_links (
    id             UUID PRIMARY KEY,
    use_case_id    UUID NOT NULL REFERENCES use_cases (id),
    asset          TEXT NOT NULL,
    role           TEXT NOT NULL,
    pinned_version BIGINT,
    alias          TEXT,
    creator        TEXT NOT NULL,
    create_time    TIMESTAMPTZ NOT NULL,
    update_time    TIMESTAMPTZ NOT NULL,
    revision       BIGINT NOT NULL,
    CONSTRAINT asset_links_one_per_role UNIQUE (use_case_id, asset, role)
);
CREATE INDEX asset_links_use_case ON asset_links (use_case_id, create_time, id);
