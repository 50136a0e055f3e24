-- jitbroker store, version 2.

-- Syslog events waiting to be sent: written in the transaction of their audit row, sent in id
-- order by the syslog thread, deleted once sent (so a stalled syslog or a restart loses none).
CREATE TABLE syslog_outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    audit_id INTEGER NOT NULL REFERENCES audit(id),
    type TEXT NOT NULL,
    datagram BLOB NOT NULL
);

-- Revocations of grants the store has no row for (lost with the machine, or issued by an
-- earlier store): on the revocation list until exp like every other revocation.
CREATE TABLE revoked_unknown (
    jti TEXT PRIMARY KEY,
    exp INTEGER NOT NULL,
    revoked_at INTEGER NOT NULL,
    revoked_by TEXT NOT NULL,
    revoke_reason TEXT NOT NULL,
    user TEXT,
    rule TEXT
);

-- /readyz writes here: a store that cannot take a write is not ready.
CREATE TABLE readiness (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    at INTEGER NOT NULL
);
