-- jitbroker store, version 5.

-- Sealed break-glass grants (`jitbroker break-glass seal`): issued in batches, kept offline,
-- single use per host. The tokens themselves are not kept, only their hash.
CREATE TABLE sealed_grants (
    id TEXT PRIMARY KEY,
    batch TEXT NOT NULL,
    user TEXT NOT NULL,
    uid INTEGER,
    rule TEXT NOT NULL,
    hosts TEXT NOT NULL,
    iat INTEGER NOT NULL,
    exp INTEGER NOT NULL,
    reason TEXT NOT NULL,
    ticket TEXT,
    sealed_by TEXT NOT NULL,
    token_sha256 TEXT NOT NULL,
    revoked_at INTEGER,
    revoked_by TEXT,
    revoke_reason TEXT
);
CREATE INDEX sealed_grants_batch ON sealed_grants(batch);
-- The revocation list names the revoked ones until their exp.
CREATE INDEX sealed_grants_revoked ON sealed_grants(exp) WHERE revoked_at IS NOT NULL;

-- Uses of sealed grants, as hosts report them (jitctl revocations sync/watch): one per grant
-- and host; `at` is when the host used it, `reported` when the broker heard of it.
CREATE TABLE sealed_uses (
    grant_id TEXT NOT NULL REFERENCES sealed_grants(id),
    host TEXT NOT NULL,
    at INTEGER NOT NULL,
    reported INTEGER NOT NULL,
    PRIMARY KEY (grant_id, host)
);
