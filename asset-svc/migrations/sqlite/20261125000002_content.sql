ALTER TABLE assets ADD COLUMN version_count INTEGER NOT NULL DEFAULT 0;

-- Content-addressed blobs present in the blob store.
CREATE TABLE blobs (
    sha256       TEXT PRIMARY KEY NOT NULL,
    size         INTEGER NOT NULL,
    create_micros INTEGER NOT NULL
) STRICT;

CREATE TABLE uploads (
    id             TEXT PRIMARY KEY NOT NULL,
    asset_id       TEXT NOT NULL REFERENCES assets (id),
    creator        TEXT NOT NULL,
    state          TEXT NOT NULL,
    description    TEXT NOT NULL,
    labels         TEXT NOT NULL,
    create_micros  INTEGER NOT NULL,
    expire_micros  INTEGER NOT NULL,
    version_number INTEGER,
    request_id     TEXT,
    UNIQUE (asset_id, creator, request_id)
) STRICT;
CREATE INDEX uploads_state_expire ON uploads (state, expire_micros);

CREATE TABLE upload_files (
    upload_id TEXT NOT NULL REFERENCES uploads (id) ON DELETE CASCADE,
    path      TEXT NOT NULL,
    size      INTEGER NOT NULL,
    sha256    TEXT NOT NULL,
    complete  INTEGER NOT NULL,
    PRIMARY KEY (upload_id, path)
) STRICT;
CREATE INDEX upload_files_sha256 ON upload_files (sha256);

CREATE TABLE versions (
    id              TEXT PRIMARY KEY NOT NULL,
    asset_id        TEXT NOT NULL REFERENCES assets (id),
    number          INTEGER NOT NULL,
    state           TEXT NOT NULL,
    manifest_digest TEXT NOT NULL,
    total_size      INTEGER NOT NULL,
    description     TEXT NOT NULL,
    labels          TEXT NOT NULL,
    lineage         TEXT NOT NULL,
    creator         TEXT NOT NULL,
    create_micros   INTEGER NOT NULL,
    UNIQUE (asset_id, number)
) STRICT;

CREATE TABLE version_files (
    version_id TEXT NOT NULL REFERENCES versions (id) ON DELETE CASCADE,
    path       TEXT NOT NULL,
    size       INTEGER NOT NULL,
    sha256     TEXT NOT NULL,
    PRIMARY KEY (version_id, path)
) STRICT;
CREATE INDEX version_files_sha256 ON version_files (sha256);
