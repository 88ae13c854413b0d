-- Immutable snapshots of a use case: every link frozen to an exact version and digest.
CREATE TABLE releases (
    id            TEXT PRIMARY KEY NOT NULL,
    use_case_id   TEXT NOT NULL REFERENCES use_cases (id),
    number        INTEGER NOT NULL,
    description   TEXT NOT NULL,
    links         TEXT NOT NULL,
    snapshot      TEXT NOT NULL,
    digest        TEXT NOT NULL,
    creator       TEXT NOT NULL,
    create_micros INTEGER NOT NULL,
    UNIQUE (use_case_id, number)
) STRICT;
