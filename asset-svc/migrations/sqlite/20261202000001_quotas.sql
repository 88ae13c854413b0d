-- What each asset's versions hold, counted towards its owner's storage quota; maintained by commits.
ALTER TABLE assets ADD COLUMN stored_bytes INTEGER NOT NULL DEFAULT 0;
UPDATE assets SET stored_bytes = (SELECT COALESCE(SUM(total_size), 0) FROM versions WHERE versions.asset_id = assets.id);

-- The total size an upload's files declare, counted towards its creator's quota while it is open.
ALTER TABLE uploads ADD COLUMN declared_bytes INTEGER NOT NULL DEFAULT 0;
UPDATE uploads SET declared_bytes =
    (SELECT COALESCE(SUM(size), 0) FROM upload_files WHERE upload_files.upload_id = uploads.id);
CREATE INDEX uploads_open_by_creator ON uploads (creator) WHERE state = 'OPEN';
