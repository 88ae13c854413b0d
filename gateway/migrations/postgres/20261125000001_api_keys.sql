CREATE TABLE api_keys (
    id           UUID PRIMARY KEY,
    owner        TEXT NOT NULL,
    display_name TEXT NOT NULL,
    salt         TEXT NOT NULL,
    hash         TEXT NOT NULL,
    create_time  TIMESTAMPTZ NOT NULL,
    expire_time  TIMESTAMPTZ,
    revoke_time  TIMESTAMPTZ
);
CREATE INDEX api_keys_owner ON api_keys (owner, id);
