-- Garbage collection looks for blobs by age.
CREATE INDEX blobs_create_time ON blobs (create_time);
