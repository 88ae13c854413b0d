-- Assets a use case is composed of, each pinned to a version number or following an alias.
CREATE TABLE asset_links (
    id             TEXT PRIMARY KEY NOT NULL,
    use_case_id    TEXT NOT NULL REFERENCES use_cases (id),
    asset          TEXT NOT NULL,
    role           TEXT NOT NULL,
    pinned_version INTEGER,
    alias          TEXT,
    creator        TEXT NOT NULL,
    create_micros  INTEGER NOT NULL,
    update_micros  INTEGER NOT NULL,
    revision       INTEGER NOT NULL,
    UNIQUE (use_case_id, asset, role)
) STRICT;
CREATE INDEX asset_links_use_case ON asset_links (use_case_id, create_micros, id);
