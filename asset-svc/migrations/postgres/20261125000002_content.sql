ALTER TABLE assets ADD COLUMN version_count BIGINT NOT NULL DEFAULT 0;

-- Content-addressed blobs present in the blob store.
CREATE TABLE blobs (
    sha256      TEXT PRIMARY KEY,
    size        BIGINT NOT NULL,
    create_time TIMESTAMPTZ NOT NULL
);

CREATE TABLE uploads (
    id             UUID PRIMARY KEY,
    asset_id       UUID NOT NULL REFERENCES assets (id),
    creator        TEXT NOT NULL,
    state          TEXT NOT NULL,
    description    TEXT NOT NULL,
    labels         JSONB NOT NULL,
    create_time    TIMESTAMPTZ NOT NULL,
    expire_time    TIMESTAMPTZ NOT NULL,
    version_number BIGINT,
    request_id     TEXT,
    CONSTRAINT uploads_request_id UNIQUE (asset_id, creator, request_id)
);
CREATE INDEX uploads_state_expire ON uploads (state, expire_time);

CREATE TABLE upload_files (
    upload_id UUID NOT NULL REFERENCES uploads (id) ON DELETE CASCADE,
    path      TEXT NOT NULL,
    size      BIGINT NOT NULL,
    sha256    TEXT NOT NULL,
    complete  BOOLEAN NOT NULL,
    PRIMARY KEY (upload_id, path)
);
CREATE INDEX upload_files_sha256 ON upload_files (sha256);

CREATE TABLE versions (
    id              UUID PRIMARY KEY,
    asset_id        UUID NOT NULL REFERENCES assets (id),
    number          BIGINT NOT NULL,
    state           TEXT NOT NULL,
    manifest_digest TEXT NOT NULL,
    total_size      BIGINT NOT NULL,
    description     TEXT NOT NULL,
    labels          JSONB NOT NULL,
    lineage         JSONB NOT NULL,
    creator         TEXT NOT NULL,
    create_time     TIMESTAMPTZ NOT NULL,
    CONSTRAINT versions_asset_number UNIQUE (asset_id, number)
);

CREATE TABLE version_files (
    version_id UUID NOT NULL REFERENCES versions (id) ON DELETE CASCADE,
    path       TEXT NOT NULL,
    size       BIGINT NOT NULL,
    sha256     TEXT NOT NULL,
    PRIMARY KEY (version_id, path)
);
CREATE INDEX version_files_sha256 ON version_files (sha256);
