-- jitbroker store, version 4: the web pages (/ui/, signed in through OpenID Connect).

-- How an approver was identified: 'attestation' (jitctl on an enrolled host) or 'oidc' (the
-- web pages; host is then '').
ALTER TABLE approvals ADD COLUMN source TEXT NOT NULL DEFAULT 'attestation';

-- Sign-ins in progress: the state sent to the provider (only its hash), the nonce the ID token
-- must carry and the PKCE verifier, until the provider sends the browser back (or expires).
CREATE TABLE web_logins (
    state_sha256 TEXT PRIMARY KEY,
    nonce TEXT NOT NULL,
    pkce_verifier TEXT NOT NULL,
    return_to TEXT NOT NULL,
    expires INTEGER NOT NULL
);

-- Sessions of people signed in on the web pages. The browser holds the token; the store only
-- its hash. A session ends at sign-out, when an admin ends it, after `session_idle` without a
-- page loaded, and at `expires` (sign-in + `session_lifetime`) in any case.
CREATE TABLE web_sessions (
    id TEXT PRIMARY KEY,
    token_sha256 TEXT NOT NULL UNIQUE,
    csrf TEXT NOT NULL,
    user TEXT NOT NULL,
    groups TEXT NOT NULL,
    issuer TEXT NOT NULL,
    subject TEXT NOT NULL,
    created INTEGER NOT NULL,
    last_seen INTEGER NOT NULL,
    expires INTEGER NOT NULL,
    ended INTEGER,
    end_reason TEXT
);
CREATE INDEX web_sessions_user ON web_sessions(user);

-- A request's page shows its history: the audit rows about it and its grant.
CREATE INDEX audit_subject ON audit(subject);
