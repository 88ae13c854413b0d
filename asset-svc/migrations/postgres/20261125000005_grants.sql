-- Read grants derived by usecase-svc: each source (a use case or an entitlement) replaces its whole set at once.
CREATE TABLE grant_sources (
    source   TEXT PRIMARY KEY,
    sequence BIGINT NOT NULL
);

-- version_number 0 grants every version of the asset.
CREATE TABLE grants (
    source         TEXT NOT NULL REFERENCES grant_sources (source),
    principal      TEXT NOT NULL,
    asset_id       UUID NOT NULL,
    version_number BIGINT NOT NULL,
    PRIMARY KEY (source, principal, asset_id, version_number)
);
CREATE INDEX grants_reader ON grants (principal, asset_id, version_number);
