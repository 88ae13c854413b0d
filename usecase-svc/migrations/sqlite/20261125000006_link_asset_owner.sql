-- Who owns each linked asset (asset ownership never changes): a use case passes on read access only to assets its
-- owners or editors own. Empty for links made before it was recorded; those pass on nothing.
ALTER TABLE asset_links ADD COLUMN asset_owner TEXT NOT NULL DEFAULT '';
