CREATE TABLE use_cases (
    id               UUID PRIMARY KEY,
    owner            TEXT NOT NULL,
    display_name     TEXT NOT NULL,
    description      TEXT NOT NULL,
    cover_image_uri  TEXT NOT NULL,
    model_card       TEXT NOT NULL,
    inference_schema TEXT NOT NULL,
    version_label    TEXT NOT NULL,
    price_currency   TEXT NOT NULL,
    price_units      BIGINT NOT NULL,
    price_nanos      INTEGER NOT NULL,
    labels           JSONB NOT NULL,
    create_time      TIMESTAMPTZ NOT NULL,
    update_time      TIMESTAMPTZ NOT NULL,
    archive_time     TIMESTAMPTZ,
    revision         BIGINT NOT NULL,
    request_id       TEXT,
    CONSTRAINT use_cases_owner_request_id UNIQUE (owner, request_id)
);

-- Who may do what with a use case; the creator is its first OWNER.
CREATE TABLE members (
    id          UUID PRIMARY KEY,
    use_case_id UUID NOT NULL REFERENCES use_cases (id),
    principal   TEXT NOT NULL,
    role        TEXT NOT NULL,
    creator     TEXT NOT NULL,
    create_time TIMESTAMPTZ NOT NULL,
    update_time TIMESTAMPTZ NOT NULL,
    revision    BIGINT NOT NULL,
    CONSTRAINT members_use_case_principal UNIQUE (use_case_id, principal)
);
CREATE INDEX members_principal ON members (principal, use_case_id);
