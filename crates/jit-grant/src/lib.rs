//! jit-grant: PASETO v4.public tokens for jitrun (grants, attestations, revocation
//! lists), PASERK keys, and the claim checks a host makes. No network, no files:
//! callers hand over bytes.
//!
//! Token contract (docs/tokens.md): `v4.public.` payload, footer exactly as it arrives,
//! JSON `{"kid":"k4.pid.…"}` (mandatory), implicit assertion per kind
//! (`jitrun:grant:v1`, `jitrun:attest:v1`, `jitrun:revocations:v1`). The signature is
//! verified over the raw footer bytes; the footer is parsed only to read `kid`.

pub mod attest;
pub mod claims;
pub mod error;
pub mod keys;
pub mod revocations;
pub mod token;

#[cfg(test)]
mod vector_tests;

pub use attest::{
    is_lower_hex, AttestCheck, AttestFault, Attestation, VerifiedAttestation, ATTESTATION_LIFETIME,
    ATTESTATION_SKEW, ATTESTATION_VERSION, EMPTY_BODY_SHA256, MAX_ATTESTATION_LIFETIME,
};
pub use claims::{format_time, parse_time, CheckContext, Claims, CmdClaim, UNKNOWN_JTI};
pub use error::GrantError;
/// The workspace's one user-name check (jit-policy's), for the `run_as` claim: `.` and `..`
/// are refused, as in a policy.
pub use jit_policy::valid_user_name;
pub use keys::{KeySet, PublicKey, SecretKey};
pub use revocations::{RevocationList, Revoked, VerifiedRevocations};
pub use token::{
    decode_unverified, sign, sign_payload, verify, verify_payload, TokenKind, Unverified, Verified,
    VerifiedPayload, MAX_TOKEN_LEN,
};
