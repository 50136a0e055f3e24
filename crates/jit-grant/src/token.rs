//! Signing and verification.
use crate::{Claims, GrantError, KeySet, SecretKey};

/// Longest token accepted (bytes). Longer input is refused before any decoding.
pub const MAX_TOKEN_LEN: usize = 64 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenKind {
    Grant,
    Attestation,
    Revocations,
}

impl TokenKind {
    /// The implicit assertion: `jitrun:grant:v1`, `jitrun:attest:v1`, `jitrun:revocations:v1`.
    pub fn implicit_assertion(self) -> &'static [u8] { todo!() }
    pub fn name(self) -> &'static str { todo!() }
}

/// A token whose signature has been checked (claims NOT yet checked against time/user/host:
/// call [`Claims::check`]).
#[derive(Debug, Clone)]
pub struct Verified {
    pub claims: Claims,
    pub kid: String,
    /// The claims JSON exactly as signed.
    pub payload: String,
}

/// Decoded without verification (for `jitctl grant show` without a key, and `jitrun -l`
/// to explain why a stored file is not a valid grant).
#[derive(Debug, Clone)]
pub struct Unverified {
    pub payload: String,
    pub footer: String,
    pub kid: Option<String>,
}

/// Sign `claims` as a token of `kind`; footer `{"kid":"<k4.pid of key>"}`.
pub fn sign(key: &SecretKey, kind: TokenKind, claims: &Claims) -> Result<String, GrantError> { todo!() }

/// Verify: length ≤ MAX_TOKEN_LEN, `v4.public.` prefix, footer present and JSON with a string `kid`
/// (parsed only to read it; the raw bytes are what is verified), kid in `keys` (else UnknownKey,
/// no trying other keys), signature with the kind's implicit assertion, then claims parsed
/// (tolerant of key order and whitespace; unknown claims ignored; wrong types → Claim error).
pub fn verify(token: &str, keys: &KeySet, kind: TokenKind) -> Result<Verified, GrantError> { todo!() }

/// Split and base64-decode without checking the signature.
pub fn decode_unverified(token: &str) -> Result<Unverified, GrantError> { todo!() }
