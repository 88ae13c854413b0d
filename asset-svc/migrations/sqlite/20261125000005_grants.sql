-- Read grants derived by usecase-svc: each source (a use case or an entitlement) replaces its whole set at once.
CREATE TABLE grant_sources (
    source   TEXT PRIMARY KEY NOT NULL,
    sequence INTEGER NOT NULL
) STRICT;

-- version_number 0 grants every version of the asset.
CREATE TABLE grants (
    source         TEXT NOT NULL REFERENCES grant_sources (source),
    principal      TEXT NOT NULL,
    asset_id       TEXT NOT NULL,
    version_number INTEGER NOT NULL,
    PRIMARY KEY (source, principal, asset_id, version_number)
) STRICT;
CREATE INDEX grants_reader ON grants (principal, asset_id, version_number);
