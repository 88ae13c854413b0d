-- Grant sources (a use case's members, an entitlement's buyer) whose grants changed and must be delivered to
-- asset-svc. Written in the same transaction as the change; `version` orders deliveries of one source.
CREATE TABLE grant_outbox (
    source  TEXT PRIMARY KEY NOT NULL,
    version INTEGER NOT NULL,
    pending INTEGER NOT NULL
) STRICT;
CREATE INDEX grant_outbox_pending ON grant_outbox (source) WHERE pending;
