-- jitbroker store on PostgreSQL, version 5 (as ../0005_sealed_grants.sql): sealed break-glass
-- grants and the uses hosts report. The tokens are not kept, only their SHA-256.
CREATE TABLE sealed_grants (
    id TEXT PRIMARY KEY,
    batch TEXT NOT NULL,
    "user" TEXT NOT NULL,
    uid BIGINT,
    rule TEXT NOT NULL,
    hosts TEXT NOT NULL,
    iat BIGINT NOT NULL,
    exp BIGINT NOT NULL,
    reason TEXT NOT NULL,
    ticket TEXT,
    sealed_by TEXT NOT NULL,
    token_sha256 TEXT NOT NULL,
    revoked_at BIGINT,
    revoked_by TEXT,
    revoke_reason TEXT
);
CREATE INDEX sealed_grants_batch ON sealed_grants(batch);
CREATE INDEX sealed_grants_revoked ON sealed_grants(exp) WHERE revoked_at IS NOT NULL;

-- One row per grant and host: the primary key decides, across replicas, that a use reported
-- twice (or by two replicas at once) is recorded once.
CREATE TABLE sealed_uses (
    grant_id TEXT NOT NULL REFERENCES sealed_grants(id),
    host TEXT NOT NULL,
    at BIGINT NOT NULL,
    reported BIGINT NOT NULL,
    PRIMARY KEY (grant_id, host)
);
