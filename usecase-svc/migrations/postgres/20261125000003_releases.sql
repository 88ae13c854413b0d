-- Immutable snapshots of a use case: every link frozen to an exact version and digest.
CREATE TABLE releases (
    id          UUID PRIMARY KEY,
    use_case_id UUID NOT NULL REFERENCES use_cases (id),
    number      BIGINT NOT NULL,
    description TEXT NOT NULL,
    links       JSONB NOT NULL,
    snapshot    JSONB NOT NULL,
    digest      TEXT NOT NULL,
    creator     TEXT NOT NULL,
    create_time TIMESTAMPTZ NOT NULL,
    CONSTRAINT releases_number UNIQUE (use_case_id, number)
);
