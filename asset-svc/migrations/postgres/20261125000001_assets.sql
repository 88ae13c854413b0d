CREATE TABLE assets (
    id              UUID PRIMARY KEY,
    owner           TEXT NOT NULL,
    kind            TEXT NOT NULL,
    display_name    TEXT NOT NULL,
    description     TEXT NOT NULL DEFAULT '',
    cover_image_uri TEXT NOT NULL DEFAULT '',
    labels          JSONB NOT NULL DEFAULT '{}',
    model           JSONB,
    create_time     TIMESTAMPTZ NOT NULL,
    update_time     TIMESTAMPTZ NOT NULL,
    archive_time    TIMESTAMPTZ,
    revision        BIGINT NOT NULL,
    request_id      TEXT,
    CONSTRAINT assets_owner_request_id UNIQUE (owner, request_id)
);

-- Keyset pagination: one index per sort order, owner first.
CREATE INDEX assets_owner_create_time ON assets (owner, create_time, id);
CREATE INDEX assets_owner_display_name ON assets (owner, (display_name COLLATE "C"), id);
