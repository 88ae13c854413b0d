-- A use case forked from a release records where it came from.
ALTER TABLE use_cases ADD COLUMN forked_from TEXT;

-- A use case offered on the marketplace; at most one per use case, re-used by every publish.
CREATE TABLE listings (
    id             UUID PRIMARY KEY,
    use_case_id    UUID NOT NULL UNIQUE REFERENCES use_cases (id),
    release_number BIGINT NOT NULL,
    active         BOOLEAN NOT NULL,
    content        JSONB NOT NULL,
    -- Lowercased words of the content's searchable text, space-separated with a leading space.
    search_text    TEXT NOT NULL,
    sort_name      TEXT NOT NULL,
    price_currency TEXT NOT NULL,
    price_units    BIGINT NOT NULL,
    price_nanos    INTEGER NOT NULL,
    seller         TEXT NOT NULL,
    create_time    TIMESTAMPTZ NOT NULL,
    publish_time   TIMESTAMPTZ NOT NULL,
    withdraw_time  TIMESTAMPTZ,
    FOREIGN KEY (use_case_id, release_number) REFERENCES releases (use_case_id, number)
);
CREATE INDEX listings_publish ON listings (active, publish_time, id);

-- A buyer's right to one release; never revoked.
CREATE TABLE entitlements (
    id                UUID PRIMARY KEY,
    buyer             TEXT NOT NULL,
    listing_id        UUID NOT NULL REFERENCES listings (id),
    use_case_id       UUID NOT NULL,
    release_number    BIGINT NOT NULL,
    price_currency    TEXT NOT NULL,
    price_units       BIGINT NOT NULL,
    price_nanos       INTEGER NOT NULL,
    payment_reference TEXT NOT NULL,
    seller            TEXT NOT NULL,
    create_time       TIMESTAMPTZ NOT NULL,
    request_id        TEXT,
    CONSTRAINT entitlements_one_per_release UNIQUE (buyer, use_case_id, release_number),
    CONSTRAINT entitlements_buyer_request_id UNIQUE (buyer, request_id)
);
CREATE INDEX entitlements_buyer ON entitlements (buyer, create_time, id);
CREATE INDEX entitlements_listing ON entitlements (listing_id, create_time, id);

-- What the built-in payment provider records instead of moving money; one row per idempotency key.
CREATE TABLE payment_ledger (
    id              UUID PRIMARY KEY,
    idempotency_key TEXT NOT NULL UNIQUE,
    payer           TEXT NOT NULL,
    payee           TEXT NOT NULL,
    currency        TEXT NOT NULL,
    units           BIGINT NOT NULL,
    nanos           INTEGER NOT NULL,
    create_time     TIMESTAMPTZ NOT NULL
);
