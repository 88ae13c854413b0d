CREATE TABLE assets (
    id                  TEXT PRIMARY KEY NOT NULL,
    owner               TEXT NOT NULL,
    kind                TEXT NOT NULL,
    display_name        TEXT NOT NULL,
    description         TEXT NOT NULL DEFAULT '',
    cover_image_uri     TEXT NOT NULL DEFAULT '',
    labels              TEXT NOT NULL DEFAULT '{}',
    model               TEXT,
    -- Microseconds since the epoch: integers sort correctly, RFC 3339 text with varying precision does not.
    create_micros       INTEGER NOT NULL,
    update_micros       INTEGER NOT NULL,
    archive_micros      INTEGER,
    revision            INTEGER NOT NULL,
    request_id          TEXT,
    UNIQUE (owner, request_id)
) STRICT;

CREATE INDEX assets_owner_create ON assets (owner, create_micros, id);
CREATE INDEX assets_owner_display_name ON assets (owner, display_name, id);
