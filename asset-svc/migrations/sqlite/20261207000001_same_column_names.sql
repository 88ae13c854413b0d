-- The same column names as on PostgreSQL, so both backends run one set of statements. Times stay integer
-- microseconds; indexes follow the renamed columns.
ALTER TABLE assets RENAME COLUMN create_micros TO create_time;
ALTER TABLE assets RENAME COLUMN update_micros TO update_time;
ALTER TABLE assets RENAME COLUMN archive_micros TO archive_time;
ALTER TABLE blobs RENAME COLUMN create_micros TO create_time;
ALTER TABLE uploads RENAME COLUMN create_micros TO create_time;
ALTER TABLE uploads RENAME COLUMN expire_micros TO expire_time;
ALTER TABLE versions RENAME COLUMN create_micros TO create_time;
ALTER TABLE versions RENAME COLUMN archive_micros TO archive_time;
ALTER TABLE aliases RENAME COLUMN update_micros TO update_time;
