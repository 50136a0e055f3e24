-- jitbroker store, version 1. Times are unix seconds (UTC); JSON columns hold arrays/objects.
CREATE TABLE requests (
    id TEXT PRIMARY KEY,
    user TEXT NOT NULL,
    uid INTEGER NOT NULL,
    host TEXT NOT NULL,
    rule TEXT NOT NULL,
    cmd TEXT,
    ttl_secs INTEGER NOT NULL,
    reason TEXT NOT NULL,
    ticket TEXT,
    run_as TEXT,
    hosts TEXT NOT NULL,
    break_glass INTEGER NOT NULL,
    state TEXT NOT NULL,
    created INTEGER NOT NULL,
    expires INTEGER NOT NULL,
    needed_approvals INTEGER NOT NULL,
    needed_groups TEXT NOT NULL,
    denied_by TEXT,
    deny_reason TEXT,
    grant_id TEXT
);
CREATE INDEX requests_user ON requests(user);
CREATE INDEX requests_state ON requests(state, expires);

CREATE TABLE approvals (
    request_id TEXT NOT NULL REFERENCES requests(id),
    user TEXT NOT NULL,
    host TEXT NOT NULL,
    at INTEGER NOT NULL,
    comment TEXT,
    PRIMARY KEY (request_id, user)
);

CREATE TABLE grants (
    id TEXT PRIMARY KEY,
    request_id TEXT NOT NULL REFERENCES requests(id),
    user TEXT NOT NULL,
    rule TEXT NOT NULL,
    hosts TEXT NOT NULL,
    iat INTEGER NOT NULL,
    exp INTEGER NOT NULL,
    token TEXT NOT NULL,
    break_glass INTEGER NOT NULL,
    revoked_at INTEGER,
    revoked_by TEXT,
    revoke_reason TEXT
);
CREATE INDEX grants_user ON grants(user);

CREATE TABLE hosts (
    name TEXT PRIMARY KEY,
    public_key TEXT NOT NULL,
    kid TEXT NOT NULL UNIQUE,
    state TEXT NOT NULL,
    created INTEGER NOT NULL,
    retired INTEGER
);

CREATE TABLE enrollment_tokens (
    token_sha256 TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    expires INTEGER NOT NULL
);

-- jti of accepted attestations, kept until their exp (replays are refused).
CREATE TABLE seen_attestations (
    jti TEXT PRIMARY KEY,
    exp INTEGER NOT NULL
);

-- The current signed revocation list (one row).
CREATE TABLE revocation_list (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    seq INTEGER NOT NULL,
    iat INTEGER NOT NULL,
    content TEXT NOT NULL,
    token TEXT NOT NULL
);

-- Append-only, hash-chained: hash = sha256(prev_hash || canonical JSON of the row).
CREATE TABLE audit (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id TEXT NOT NULL UNIQUE,
    at INTEGER NOT NULL,
    type TEXT NOT NULL,
    actor TEXT NOT NULL,
    host TEXT NOT NULL,
    subject TEXT NOT NULL,
    data TEXT NOT NULL,
    prev_hash TEXT NOT NULL,
    hash TEXT NOT NULL
);
CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit
BEGIN SELECT RAISE(ABORT, 'the audit table is append-only'); END;
CREATE TRIGGER audit_no_delete BEFORE DELETE ON audit
BEGIN SELECT RAISE(ABORT, 'the audit table is append-only'); END;

-- Webhook deliveries (at least once): written in the transaction of the state change.
CREATE TABLE outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    delivery_id TEXT NOT NULL UNIQUE,
    url TEXT NOT NULL,
    event_id TEXT NOT NULL,
    event_type TEXT NOT NULL,
    body TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_ms INTEGER NOT NULL,
    delivered_at INTEGER,
    failed_at INTEGER,
    last_error TEXT
);
CREATE INDEX outbox_due ON outbox(delivered_at, failed_at, next_attempt_ms);
