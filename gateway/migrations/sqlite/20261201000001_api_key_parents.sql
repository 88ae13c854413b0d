-- The key a key was created with: revoking a key revokes every key made from it.
ALTER TABLE api_keys ADD COLUMN parent_id TEXT;
CREATE INDEX api_keys_parent ON api_keys (parent_id);
