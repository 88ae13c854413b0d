-- The same column names as on PostgreSQL, so both backends run one set of statements. Times stay integer
-- microseconds; indexes follow the renamed columns.
ALTER TABLE use_cases RENAME COLUMN create_micros TO create_time;
ALTER TABLE use_cases RENAME COLUMN update_micros TO update_time;
ALTER TABLE use_cases RENAME COLUMN archive_micros TO archive_time;
ALTER TABLE members RENAME COLUMN create_micros TO create_time;
ALTER TABLE members RENAME COLUMN update_micros TO update_time;
ALTER TABLE asset_links RENAME COLUMN create_micros TO create_time;
ALTER TABLE asset_links RENAME COLUMN update_micros TO update_time;
ALTER TABLE releases RENAME COLUMN create_micros TO create_time;
ALTER TABLE listings RENAME COLUMN create_micros TO create_time;
ALTER TABLE listings RENAME COLUMN publish_micros TO publish_time;
ALTER TABLE listings RENAME COLUMN withdraw_micros TO withdraw_time;
ALTER TABLE entitlements RENAME COLUMN create_micros TO create_time;
ALTER TABLE payment_ledger RENAME COLUMN create_micros TO create_time;
