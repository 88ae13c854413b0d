-- Garbage collection looks for blobs by age.
CREATE INDEX blobs_create ON blobs (create_micros);
