-- jitbroker store on PostgreSQL, version 4 (as ../0004_web_sessions.sql): the web pages.
-- Several replicas share these tables: a sign-in started on one replica finishes on any other
-- (its state is taken with DELETE … RETURNING: once, whichever replica the browser comes back
-- to), and every replica finds, touches and ends the same sessions.

ALTER TABLE approvals ADD COLUMN source TEXT NOT NULL DEFAULT 'attestation';

CREATE TABLE web_logins (
    state_sha256 TEXT PRIMARY KEY,
    nonce TEXT NOT NULL,
    pkce_verifier TEXT NOT NULL,
    return_to TEXT NOT NULL,
    expires BIGINT NOT NULL
);
CREATE INDEX web_logins_expires ON web_logins(expires);

CREATE TABLE web_sessions (
    id TEXT PRIMARY KEY,
    token_sha256 TEXT NOT NULL UNIQUE,
    csrf TEXT NOT NULL,
    "user" TEXT NOT NULL,
    groups TEXT NOT NULL,
    issuer TEXT NOT NULL,
    subject TEXT NOT NULL,
    created BIGINT NOT NULL,
    last_seen BIGINT NOT NULL,
    expires BIGINT NOT NULL,
    ended BIGINT,
    end_reason TEXT
);
CREATE INDEX web_sessions_user ON web_sessions("user");

CREATE INDEX audit_subject ON audit(subject);
