-- A use case forked from a release records where it came from.
ALTER TABLE use_cases ADD COLUMN forked_from TEXT;

-- A use case offered on the marketplace; at most one per use case, re-used by every publish.
CREATE TABLE listings (
    id             TEXT PRIMARY KEY NOT NULL,
    use_case_id    TEXT NOT NULL UNIQUE REFERENCES use_cases (id),
    release_number INTEGER NOT NULL,
    active         INTEGER NOT NULL,
    content        TEXT NOT NULL,
    -- Lowercased words of the content's searchable text, space-separated with a leading space.
    search_text    TEXT NOT NULL,
    sort_name      TEXT NOT NULL,
    price_currency TEXT NOT NULL,
    price_units    INTEGER NOT NULL,
    price_nanos    INTEGER NOT NULL,
    seller         TEXT NOT NULL,
    create_micros  INTEGER NOT NULL,
    publish_micros INTEGER NOT NULL,
    withdraw_micros INTEGER,
    FOREIGN KEY (use_case_id, release_number) REFERENCES releases (use_case_id, number)
) STRICT;
CREATE INDEX listings_publish ON listings (active, publish_micros, id);

-- A buyer's right to one release; never revoked.
CREATE TABLE entitlements (
    id                TEXT PRIMARY KEY NOT NULL,
    buyer             TEXT NOT NULL,
    listing_id        TEXT NOT NULL REFERENCES listings (id),
    use_case_id       TEXT NOT NULL,
    release_number    INTEGER NOT NULL,
    price_currency    TEXT NOT NULL,
    price_units       INTEGER NOT NULL,
    price_nanos       INTEGER NOT NULL,
    payment_reference TEXT NOT NULL,
    seller            TEXT NOT NULL,
    create_micros     INTEGER NOT NULL,
    request_id        TEXT,
    UNIQUE (buyer, use_case_id, release_number),
    UNIQUE (buyer, request_id)
) STRICT;
CREATE INDEX entitlements_buyer ON entitlements (buyer, create_micros, id);
CREATE INDEX entitlements_listing ON entitlements (listing_id, create_micros, id);

-- What the built-in payment provider records instead of moving money; one row per idempotency key.
CREATE TABLE payment_ledger (
    id              TEXT PRIMARY KEY NOT NULL,
    idempotency_key TEXT NOT NULL UNIQUE,
    payer           TEXT NOT NULL,
    payee           TEXT NOT NULL,
    currency        TEXT NOT NULL,
    units           INTEGER NOT NULL,
    nanos           INTEGER NOT NULL,
    create_micros   INTEGER NOT NULL
) STRICT;
