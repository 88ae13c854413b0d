-- Idempotency keys of CreateMember, CreateAssetLink and CreateRelease, like `use_cases.request_id` for CreateUseCase:
-- a retry by the same caller (the row's creator) for the same use case finds what the first call made.
ALTER TABLE members ADD COLUMN request_id TEXT;
CREATE UNIQUE INDEX members_creator_request_id ON members (use_case_id, creator, request_id);
ALTER TABLE asset_links ADD COLUMN request_id TEXT;
CREATE UNIQUE INDEX asset_links_creator_request_id ON asset_links (use_case_id, creator, request_id);
ALTER TABLE releases ADD COLUMN request_id TEXT;
CREATE UNIQUE INDEX releases_creator_request_id ON releases (use_case_id, creator, request_id);
