//! Signing and verification.
use crate::{Claims, GrantError, KeySet, PublicKey, SecretKey};
use pasetors::errors::Error as PasetoError;
use pasetors::token::UntrustedToken;
use pasetors::version4::{PublicToken, V4};
use pasetors::Public;

/// Longest token accepted (bytes). Longer input is refused before any decoding.
pub const MAX_TOKEN_LEN: usize = 64 * 1024;

/// The header of every token we accept.
pub const HEADER: &str = "v4.public.";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenKind {
    Grant,
    Attestation,
    Revocations,
}

impl TokenKind {
    /// The implicit assertion: `jitrun:grant:v1`, `jitrun:attest:v1`, `jitrun:revocations:v1`.
    pub fn implicit_assertion(self) -> &'static [u8] {
        match self {
            TokenKind::Grant => b"jitrun:grant:v1",
            TokenKind::Attestation => b"jitrun:attest:v1",
            TokenKind::Revocations => b"jitrun:revocations:v1",
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            TokenKind::Grant => "grant",
            TokenKind::Attestation => "attestation",
            TokenKind::Revocations => "revocation list",
        }
    }
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

/// A token of any kind whose signature has been checked; the payload is not interpreted
/// (attestations and revocation lists have their own payloads).
#[derive(Debug, Clone)]
pub struct VerifiedPayload {
    /// The payload exactly as signed.
    pub payload: String,
    pub kid: String,
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
pub fn sign(key: &SecretKey, kind: TokenKind, claims: &Claims) -> Result<String, GrantError> {
    let payload = serde_json::to_vec(claims)
        .map_err(|e| GrantError::Sign(format!("cannot encode the claims: {e}")))?;
    sign_payload(key, kind, &payload)
}

/// Sign an arbitrary JSON `payload` as a token of `kind`; footer `{"kid":"<k4.pid of key>"}`.
pub fn sign_payload(
    key: &SecretKey,
    kind: TokenKind,
    payload: &[u8],
) -> Result<String, GrantError> {
    if serde_json::from_slice::<serde_json::Value>(payload).is_err() {
        return Err(GrantError::Sign(
            "refusing to sign: the payload is not JSON".into(),
        ));
    }
    let footer = footer_for(&key.public_key().kid());
    sign_raw(key, payload, footer.as_bytes(), kind.implicit_assertion())
}

/// The compact footer we write.
fn footer_for(kid: &str) -> String {
    serde_json::json!({ "kid": kid }).to_string()
}

pub(crate) fn sign_raw(
    key: &SecretKey,
    payload: &[u8],
    footer: &[u8],
    implicit: &[u8],
) -> Result<String, GrantError> {
    let token = PublicToken::sign(
        key.inner(),
        payload,
        Some(footer).filter(|f| !f.is_empty()),
        Some(implicit),
    )
    .map_err(|e| GrantError::Sign(format!("cannot sign the token: {e:?}")))?;
    if token.len() > MAX_TOKEN_LEN {
        return Err(GrantError::Sign(format!(
            "the token would be {} bytes, more than the {MAX_TOKEN_LEN} bytes hosts accept; shorten the claims",
            token.len()
        )));
    }
    Ok(token)
}

/// Length limit, surrounding whitespace (a file's final newline), header, base64url.
pub(crate) fn parse_untrusted(token: &str) -> Result<UntrustedToken<Public, V4>, GrantError> {
    if token.len() > MAX_TOKEN_LEN {
        return Err(GrantError::Malformed(format!(
            "the token is {} bytes, more than the {MAX_TOKEN_LEN} bytes accepted",
            token.len()
        )));
    }
    let token = token.trim_ascii();
    if token.is_empty() {
        return Err(GrantError::Malformed("the token is empty".into()));
    }
    if !token.starts_with(HEADER) {
        let head: String = token.split('.').take(2).collect::<Vec<_>>().join(".");
        let shown: String = head.chars().take(24).collect();
        let what = match shown.as_str() {
            "v4.local" => "it is a v4.local (encrypted) token".to_string(),
            s if s.starts_with('v') && s.contains('.') && s.len() <= 12 => {
                format!("it is a {s} token")
            }
            _ => "it is not a PASETO token at all".to_string(),
        };
        return Err(GrantError::Malformed(format!(
            "{what}; jitrun tokens start with \"{HEADER}\""
        )));
    }
    UntrustedToken::<Public, V4>::try_from(token).map_err(|e| {
        GrantError::Malformed(match e {
            PasetoError::Base64 => "the token is not valid unpadded base64url".to_string(),
            PasetoError::TokenFormat => {
                format!(
                    "expected {HEADER}<payload and signature>.<footer>, with a non-empty payload"
                )
            }
            other => format!("{other:?}"),
        })
    })
}

/// The kid of a raw footer: JSON object with a string `kid`. Only read, never re-serialized.
fn kid_of(footer: &[u8]) -> Result<String, GrantError> {
    if footer.is_empty() {
        return Err(GrantError::Footer(
            "the token has no footer; jitrun tokens carry {\"kid\":\"k4.pid.…\"}".into(),
        ));
    }
    let value: serde_json::Value = serde_json::from_slice(footer)
        .map_err(|e| GrantError::Footer(format!("the footer is not JSON ({e})")))?;
    match value.get("kid") {
        Some(serde_json::Value::String(kid)) if !kid.is_empty() => Ok(kid.clone()),
        Some(serde_json::Value::String(_)) => Err(GrantError::Footer("\"kid\" is empty".into())),
        Some(_) => Err(GrantError::Footer("\"kid\" is not a string".into())),
        None if value.is_object() => Err(GrantError::Footer("the footer has no \"kid\"".into())),
        None => Err(GrantError::Footer("the footer is not a JSON object".into())),
    }
}

/// Check the signature over header, payload, the RAW footer bytes and the implicit assertion.
pub(crate) fn verify_signature(
    key: &PublicKey,
    token: &UntrustedToken<Public, V4>,
    implicit: &[u8],
    kid: &str,
    kind: TokenKind,
) -> Result<String, GrantError> {
    // footer None: pasetors then uses the token's own footer bytes, unparsed, in the PAE.
    match PublicToken::verify(key.inner(), token, None, Some(implicit)) {
        Ok(trusted) => Ok(trusted.payload().to_string()),
        Err(PasetoError::PayloadInvalidUtf8) => Err(GrantError::Malformed(
            "the signed payload is not UTF-8 (not a jitrun token)".into(),
        )),
        Err(PasetoError::Key) => Err(GrantError::Key(format!(
            "key {kid} is not a valid Ed25519 public key"
        ))),
        Err(_) => Err(GrantError::BadSignature {
            kid: kid.to_string(),
            kind: kind.name(),
        }),
    }
}

/// Verify any kind of token and return its payload unparsed: length ≤ MAX_TOKEN_LEN,
/// `v4.public.` prefix, footer JSON with a string `kid` (read only), kid in `keys` (else
/// UnknownKey, no trying other keys), signature over the raw footer with the kind's
/// implicit assertion.
pub fn verify_payload(
    token: &str,
    keys: &KeySet,
    kind: TokenKind,
) -> Result<VerifiedPayload, GrantError> {
    let untrusted = parse_untrusted(token)?;
    let kid = kid_of(untrusted.untrusted_footer())?;
    let Some(key) = keys.get(&kid) else {
        return Err(GrantError::UnknownKey { kid });
    };
    let payload = verify_signature(key, &untrusted, kind.implicit_assertion(), &kid, kind)?;
    Ok(VerifiedPayload { payload, kid })
}

/// Verify: length ≤ MAX_TOKEN_LEN, `v4.public.` prefix, footer present and JSON with a string `kid`
/// (parsed only to read it; the raw bytes are what is verified), kid in `keys` (else UnknownKey,
/// no trying other keys), signature with the kind's implicit assertion, then claims parsed
/// (tolerant of key order and whitespace; unknown claims ignored; wrong types → Claim error).
pub fn verify(token: &str, keys: &KeySet, kind: TokenKind) -> Result<Verified, GrantError> {
    let VerifiedPayload { payload, kid } = verify_payload(token, keys, kind)?;
    let claims = Claims::from_json(&payload)?;
    Ok(Verified {
        claims,
        kid,
        payload,
    })
}

/// Split and base64-decode without checking the signature.
pub fn decode_unverified(token: &str) -> Result<Unverified, GrantError> {
    let untrusted = parse_untrusted(token)?;
    let payload = String::from_utf8(untrusted.untrusted_payload().to_vec()).map_err(|_| {
        GrantError::Malformed("the payload is not UTF-8 (not a jitrun token)".into())
    })?;
    let footer = String::from_utf8(untrusted.untrusted_footer().to_vec())
        .map_err(|_| GrantError::Footer("the footer is not UTF-8".into()))?;
    let kid = kid_of(footer.as_bytes()).ok();
    Ok(Unverified {
        payload,
        footer,
        kid,
    })
}
