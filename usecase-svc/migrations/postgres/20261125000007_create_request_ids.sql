-- Idempotency keys of CreateMember, CreateAssetLink and CreateRelease, like `use_cases.request_id` for CreateUseCase:
-- a retry by the same caller (the row's creator) for the same use case finds what the first call made.
ALTER TABLE members ADD COLUMN request_id TEXT;
ALTER TABLE members ADD CONSTRAINT members_creator_request_id UNIQUE (use_case_id, creator, request_id);
ALTER TABLE asset_links ADD COLUMN request_id TEXT;
ALTER TABLE asset_links ADD CONSTRAINT asset_links_creator_request_id UNIQUE (use_case_id, creator, request_id);
ALTER TABLE releases ADD COLUMN request_id TEXT;
ALTER TABLE releases ADD CONSTRAINT releases_creator_request_id UNIQUE (use_case_id, creator, request_id);
