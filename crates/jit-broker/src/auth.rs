//! Attestation auth (docs/broker.md): `Authorization: JitAttest <token>`, signed by an
//! enrolled, not retired host key; fresh; bound to this request's method, path and body;
//! never seen before.
use crate::audit_chain::sha256_hex;
use crate::broker::{Actor, Broker};
use crate::error::ApiError;
use crate::model::HostState;
use crate::store::{bookkeeping, read, Tx};
use jit_grant::{
    decode_unverified, AttestCheck, Attestation, GrantError, KeySet, PublicKey, ATTESTATION_SKEW,
    MAX_ATTESTATION_LIFETIME,
};
use time::OffsetDateTime;

/// An HTTP call as auth needs it.
pub struct Call {
    pub method: String,
    pub path: String,
    pub authorization: Option<String>,
    pub content_type: Option<String>,
    pub body: axum::body::Bytes,
}

/// An attestation whose signature, binding and freshness were checked, not yet recorded in
/// the replay table ([`Verified::remember`]).
pub struct Verified {
    pub caller: Caller,
    jti: String,
    exp: OffsetDateTime,
}

impl Verified {
    /// Record the jti (inside the caller's transaction); a replay is refused.
    pub fn remember(&self, tx: &mut dyn Tx) -> Result<(), ApiError> {
        if tx.remember_attestation(&self.jti, self.exp)? {
            Ok(())
        } else {
            Err(ApiError::unauthorized(
                "attestation_replayed",
                format!("attestation {} was already used; every call needs a new one (jitctl makes one per call)", self.jti),
            ))
        }
    }
}

/// How the broker knows who acts. The same authorization code decides for every source
/// (workflow.rs, grants.rs, roles.rs); the audit trail records which one it was.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Identity {
    /// An attestation signed by `jitrun attest` on an enrolled host (jitctl, the API).
    Attestation { host: String, uid: u32 },
    /// A session of the web pages, signed in through the OpenID Connect provider.
    Oidc { issuer: String, subject: String },
}

impl Identity {
    pub fn source(&self) -> &'static str {
        match self {
            Identity::Attestation { .. } => "attestation",
            Identity::Oidc { .. } => "oidc",
        }
    }
}

/// The authenticated caller: user name and groups, and how they were established.
#[derive(Debug, Clone)]
pub struct Caller {
    pub user: String,
    pub groups: Vec<String>,
    pub identity: Identity,
}

impl Caller {
    /// The attested host, or "" for a person signed in on the web pages (no host vouches).
    pub fn host(&self) -> &str {
        match &self.identity {
            Identity::Attestation { host, .. } => host,
            Identity::Oidc { .. } => "",
        }
    }

    pub fn uid(&self) -> Option<u32> {
        match &self.identity {
            Identity::Attestation { uid, .. } => Some(*uid),
            Identity::Oidc { .. } => None,
        }
    }

    pub fn actor(&self) -> Actor {
        Actor {
            user: self.user.clone(),
            uid: self.uid(),
            host: self.host().to_string(),
            identity: Some(self.identity_json()),
        }
    }

    /// What the audit trail records about the identity: `{"source": "attestation", "user",
    /// "uid", "host", "groups"}` or `{"source": "oidc", "issuer", "subject", "user", "groups"}`.
    pub fn identity_json(&self) -> serde_json::Value {
        match &self.identity {
            Identity::Attestation { host, uid } => serde_json::json!({
                "source": "attestation", "user": self.user, "uid": uid, "host": host,
                "groups": self.groups,
            }),
            Identity::Oidc { issuer, subject } => serde_json::json!({
                "source": "oidc", "issuer": issuer, "subject": subject, "user": self.user,
                "groups": self.groups,
            }),
        }
    }
}

fn grant_error(e: GrantError) -> ApiError {
    match e {
        GrantError::Attestation { fault, .. } => {
            ApiError::unauthorized(fault.code(), e.to_string())
        }
        GrantError::BadSignature { .. } => ApiError::unauthorized(
            "attestation_bad_signature",
            format!("the attestation's signature does not verify: {e}"),
        ),
        other => ApiError::unauthorized(
            "attestation_invalid",
            format!("the attestation is not usable: {other}"),
        ),
    }
}

/// The token from the Authorization header.
fn token(call: &Call) -> Result<&str, ApiError> {
    let Some(value) = call.authorization.as_deref() else {
        return Err(ApiError::unauthorized(
            "attestation_missing",
            "no attestation: send `Authorization: JitAttest <token>` (jitctl does this with `jitrun attest`)",
        ));
    };
    match value.split_once(' ') {
        Some((scheme, token))
            if scheme.eq_ignore_ascii_case("JitAttest") && !token.trim().is_empty() =>
        {
            Ok(token.trim())
        }
        _ => Err(ApiError::unauthorized(
            "attestation_missing",
            "the Authorization header is not `JitAttest <token>`",
        )),
    }
}

/// Verify the call's attestation against the enrolled hosts and remember its jti.
pub fn authenticate(b: &Broker, call: &Call, now: OffsetDateTime) -> Result<Caller, ApiError> {
    let verified = verify(b, call, None, now)?;
    bookkeeping(b.store.as_ref(), |tx| verified.remember(tx))?;
    Ok(verified.caller)
}

/// Verify the call's attestation against the enrolled hosts (or, for enrollment with a
/// token, against `new_host`: the key and name being enrolled), writing nothing.
pub fn verify(
    b: &Broker,
    call: &Call,
    new_host: Option<(&PublicKey, &str)>,
    now: OffsetDateTime,
) -> Result<Verified, ApiError> {
    let token = token(call)?;
    let kid = decode_unverified(token)
        .map_err(grant_error)?
        .kid
        .ok_or_else(|| {
            ApiError::unauthorized("attestation_invalid", "the attestation's footer has no kid")
        })?;
    let (key, host_name) = match new_host {
        Some((key, name)) if key.kid() == kid => (key.clone(), name.to_string()),
        Some(_) => {
            return Err(ApiError::unauthorized(
                "attestation_invalid",
                "to enroll with a token, sign the attestation with the host key being enrolled (the public_key in the body)",
            ))
        }
        None => {
            let host = read(b.store.as_ref(), |tx| Ok(tx.host_by_kid(&kid)?))?;
            let Some(host) = host else {
                return Err(ApiError::unauthorized(
                    "unknown_host",
                    format!("the attestation is signed by host key {kid}, which is not enrolled; enroll the host: `jitbroker host add NAME KEY` on the broker, with the key from /etc/jitrun/host.pub"),
                ));
            };
            if host.state == HostState::Retired {
                return Err(ApiError::unauthorized(
                    "host_retired",
                    format!("host {} (key {kid}) is retired; enroll it again with a new key", host.name),
                ));
            }
            let key = PublicKey::from_paserk(&host.public_key)
                .map_err(|e| ApiError::internal(format!("host {}: stored key unusable: {e}", host.name)))?;
            (key, host.name)
        }
    };
    let mut keys = KeySet::new();
    keys.insert(key);
    let verified = Attestation::verify(token, &keys).map_err(grant_error)?;
    let a = verified.attestation;
    let body_sha256 = sha256_hex(&call.body);
    a.check(&AttestCheck {
        now,
        clock_skew: ATTESTATION_SKEW,
        max_lifetime: MAX_ATTESTATION_LIFETIME,
        method: &call.method,
        path: &call.path,
        body_sha256: &body_sha256,
        host: &host_name,
    })
    .map_err(grant_error)?;
    let mut groups = a.groups;
    groups.sort();
    groups.dedup();
    Ok(Verified {
        caller: Caller {
            user: a.sub,
            groups,
            identity: Identity::Attestation {
                host: a.host,
                uid: a.uid,
            },
        },
        jti: a.jti,
        exp: a.exp,
    })
}
