-- Grant sources (a use case's members, an entitlement's buyer) whose grants changed and must be delivered to
-- asset-svc. Written in the same transaction as the change; `version` orders deliveries of one source.
CREATE TABLE grant_outbox (
    source  TEXT PRIMARY KEY,
    version BIGINT NOT NULL,
    pending BOOLEAN NOT NULL
);
CREATE INDEX grant_outbox_pending ON grant_outbox (source) WHERE pending;
