-- The same column names as on PostgreSQL, so both backends run one set of statements. Times stay integer
-- microseconds; indexes follow the renamed columns.
ALTER TABLE api_keys RENAME COLUMN create_micros TO create_time;
ALTER TABLE api_keys RENAME COLUMN expire_micros TO expire_time;
ALTER TABLE api_keys RENAME COLUMN revoke_micros TO revoke_time;
ALTER TABLE audit_events RENAME COLUMN time_micros TO time;
