CREATE TABLE api_keys (
    id            TEXT PRIMARY KEY NOT NULL,
    owner         TEXT NOT NULL,
    display_name  TEXT NOT NULL,
    salt          TEXT NOT NULL,
    hash          TEXT NOT NULL,
    create_micros INTEGER NOT NULL,
    expire_micros INTEGER,
    revoke_micros INTEGER
) STRICT;
CREATE INDEX api_keys_owner ON api_keys (owner, id);
