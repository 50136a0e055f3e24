/// Errors name the grant id (when known), the claim, and what to do next.
#[derive(Debug, thiserror::Error)]
pub enum GrantError {
    #[error("not a PASETO v4.public token: {0}")]
    Malformed(String),
    #[error("the token's footer has no usable \"kid\": {0}")]
    Footer(String),
    #[error("grant is signed by unknown key {kid}; this host trusts only the keys in /etc/jitrun/keys.d/ (ask your admin to install the broker's public key)")]
    UnknownKey { kid: String },
    #[error("the token's signature does not verify with key {kid} (or it is not a {kind} token): it was altered, forged, or minted for another purpose")]
    BadSignature { kid: String, kind: &'static str },
    #[error("grant {jti}: claim {claim}: {message}")]
    Claim {
        jti: String,
        claim: &'static str,
        message: String,
    },
    #[error("grant {jti} expired {ago} ago (at {exp}); request a new one: jitctl request {rule}")]
    Expired {
        jti: String,
        rule: String,
        exp: String,
        ago: String,
    },
    #[error("grant {jti} is not valid yet: it starts at {nbf} (in {wait}); wait, or ask for a grant that starts now")]
    NotYetValid {
        jti: String,
        nbf: String,
        wait: String,
    },
    #[error("grant {jti} is for user \"{sub}\", not \"{user}\"; grants are personal: run `jitctl request {rule}` as yourself")]
    WrongUser {
        jti: String,
        sub: String,
        user: String,
        rule: String,
    },
    #[error("grant {jti} is bound to uid {expected}, but you are uid {actual}")]
    WrongUid {
        jti: String,
        expected: u32,
        actual: u32,
    },
    #[error(
        "grant {jti} is valid on hosts {hosts:?}, not on \"{host}\"; request a grant for this host"
    )]
    WrongHost {
        jti: String,
        hosts: Vec<String>,
        host: String,
    },
    /// An attestation (`jitrun:attest:v1`) that is malformed, stale, or made for another
    /// request; `fault` classifies it, `field` names the payload field at fault.
    #[error("attestation {jti}: {field}: {message}")]
    Attestation {
        jti: String,
        fault: crate::attest::AttestFault,
        field: &'static str,
        message: String,
    },
    /// A revocation list (`jitrun:revocations:v1`) that is malformed or too old.
    #[error("revocation list: {field}: {message}")]
    Revocations {
        field: &'static str,
        message: String,
    },
    #[error("invalid key: {0}")]
    Key(String),
    #[error("{0}")]
    Sign(String),
}
