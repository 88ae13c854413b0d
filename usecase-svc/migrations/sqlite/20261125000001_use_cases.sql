CREATE TABLE use_cases (
    id               TEXT PRIMARY KEY NOT NULL,
    owner            TEXT NOT NULL,
    display_name     TEXT NOT NULL,
    description      TEXT NOT NULL,
    cover_image_uri  TEXT NOT NULL,
    model_card       TEXT NOT NULL,
    inference_schema TEXT NOT NULL,
    version_label    TEXT NOT NULL,
    price_currency   TEXT NOT NULL,
    price_units      INTEGER NOT NULL,
    price_nanos      INTEGER NOT NULL,
    labels           TEXT NOT NULL,
    create_micros    INTEGER NOT NULL,
    update_micros    INTEGER NOT NULL,
    archive_micros   INTEGER,
    revision         INTEGER NOT NULL,
    request_id       TEXT,
    UNIQUE (owner, request_id)
) STRICT;

-- Who may do what with a use case; the creator is its first OWNER.
CREATE TABLE members (
    id            TEXT PRIMARY KEY NOT NULL,
    use_case_id   TEXT NOT NULL REFERENCES use_cases (id),
    principal     TEXT NOT NULL,
    role          TEXT NOT NULL,
    creator       TEXT NOT NULL,
    create_micros INTEGER NOT NULL,
    update_micros INTEGER NOT NULL,
    revision      INTEGER NOT NULL,
    UNIQUE (use_case_id, principal)
) STRICT;
CREATE INDEX members_principal ON members (principal, use_case_id);
