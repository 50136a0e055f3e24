//! Ed25519 keys as PASERK strings (`k4.public.…`, `k4.secret.…`) and their ids (`k4.pid.…`).
use crate::GrantError;
use ct_codecs::{Base64UrlSafeNoPadding, Decoder};
use pasetors::keys::{AsymmetricKeyPair, AsymmetricPublicKey, AsymmetricSecretKey, Generate};
use pasetors::paserk::{FormatAsPaserk, Id};
use pasetors::version4::V4;
use std::collections::HashMap;
use zeroize::Zeroize;

/// Length of an Ed25519 public key.
pub const PUBLIC_KEY_LEN: usize = 32;
/// Length of a v4 secret key as PASERK carries it: the 32-byte seed, then the public key.
pub const SECRET_KEY_LEN: usize = 64;

const PUBLIC_PREFIX: &str = "k4.public.";
const SECRET_PREFIX: &str = "k4.secret.";

#[derive(Clone)]
pub struct PublicKey {
    key: AsymmetricPublicKey<V4>,
}

pub struct SecretKey {
    /// Zeroized on drop by pasetors.
    key: AsymmetricSecretKey<V4>,
}

/// Name the kind of PASERK a string is, for error messages, without echoing key material.
fn paserk_kind(s: &str) -> String {
    let mut parts = s.splitn(3, '.');
    match (parts.next(), parts.next(), parts.next()) {
        (Some(v), Some(t), Some(_))
            if v.len() <= 4 && t.len() <= 16 && !v.is_empty() && !t.is_empty() =>
        {
            format!("a {v}.{t} PASERK")
        }
        _ => "not a PASERK string".to_string(),
    }
}

impl PublicKey {
    /// Parse `k4.public.<base64url>` (surrounding whitespace, such as a file's final newline, is ignored).
    pub fn from_paserk(s: &str) -> Result<PublicKey, GrantError> {
        let s = s.trim_ascii();
        if !s.starts_with(PUBLIC_PREFIX) {
            return Err(GrantError::Key(format!(
                "expected a k4.public.… PASERK (an Ed25519 public key for PASETO v4), found {}",
                paserk_kind(s)
            )));
        }
        let key = AsymmetricPublicKey::<V4>::try_from(s).map_err(|_| {
            GrantError::Key("malformed k4.public PASERK: expected 32 bytes of unpadded base64url after \"k4.public.\"".into())
        })?;
        Ok(PublicKey { key })
    }

    /// From the raw 32 key bytes.
    pub fn from_bytes(bytes: &[u8]) -> Result<PublicKey, GrantError> {
        if bytes.len() != PUBLIC_KEY_LEN {
            return Err(GrantError::Key(format!(
                "an Ed25519 public key is {PUBLIC_KEY_LEN} bytes, not {}",
                bytes.len()
            )));
        }
        let key = AsymmetricPublicKey::<V4>::from(bytes)
            .map_err(|e| GrantError::Key(format!("{e:?}")))?;
        Ok(PublicKey { key })
    }

    /// The raw 32 key bytes.
    pub fn as_bytes(&self) -> &[u8] {
        self.key.as_bytes()
    }

    pub fn to_paserk(&self) -> String {
        let mut out = String::new();
        self.key
            .fmt(&mut out)
            .expect("formatting a PASERK into a String cannot fail");
        out
    }

    /// PASERK `k4.pid.…` of this key.
    pub fn kid(&self) -> String {
        let mut out = String::new();
        Id::from(&self.key)
            .fmt(&mut out)
            .expect("formatting a PASERK id into a String cannot fail");
        out
    }

    pub(crate) fn inner(&self) -> &AsymmetricPublicKey<V4> {
        &self.key
    }
}

impl PartialEq for PublicKey {
    fn eq(&self, other: &PublicKey) -> bool {
        self.as_bytes() == other.as_bytes()
    }
}

impl Eq for PublicKey {}

impl std::fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PublicKey({})", self.kid())
    }
}

/// Validate seed || public key and build the pasetors key. The all-zero seed is refused
/// here: it is a public constant (anyone could sign with it), and ed25519-compact panics on it.
fn secret_from_seed_and_public(bytes: &[u8]) -> Result<AsymmetricSecretKey<V4>, GrantError> {
    if bytes.len() != SECRET_KEY_LEN {
        return Err(GrantError::Key(format!(
            "a v4 secret key is {SECRET_KEY_LEN} bytes (seed then public key), not {}",
            bytes.len()
        )));
    }
    let seed_bits = bytes[..32].iter().fold(0u8, |acc, b| acc | b);
    if seed_bits == 0 {
        return Err(GrantError::Key(
            "the secret key's seed is all zeros: that key is public knowledge; generate a new one with `jitctl keygen`".into(),
        ));
    }
    AsymmetricSecretKey::<V4>::from(bytes).map_err(|_| {
        GrantError::Key(
            "the secret key's public half does not match its seed (the key is corrupt)".into(),
        )
    })
}

impl SecretKey {
    pub fn generate() -> Result<SecretKey, GrantError> {
        let pair = AsymmetricKeyPair::<V4>::generate()
            .map_err(|e| GrantError::Key(format!("cannot generate an Ed25519 key pair: {e:?}")))?;
        Ok(SecretKey { key: pair.secret })
    }

    /// Parse `k4.secret.<base64url of seed || public key>` (surrounding whitespace ignored).
    pub fn from_paserk(s: &str) -> Result<SecretKey, GrantError> {
        let s = s.trim_ascii();
        let Some(b64) = s.strip_prefix(SECRET_PREFIX) else {
            return Err(GrantError::Key(format!(
                "expected a k4.secret.… PASERK (an Ed25519 secret key for PASETO v4), found {}",
                paserk_kind(s)
            )));
        };
        let mut buf = [0u8; 96];
        let result = match Base64UrlSafeNoPadding::decode(&mut buf, b64, None) {
            Ok(bytes) => secret_from_seed_and_public(bytes),
            Err(_) => Err(GrantError::Key(
                "malformed k4.secret PASERK: expected 64 bytes of unpadded base64url after \"k4.secret.\"".into(),
            )),
        };
        buf.zeroize();
        Ok(SecretKey { key: result? })
    }

    /// From the raw 64 bytes: the 32-byte seed followed by the 32-byte public key.
    pub fn from_bytes(bytes: &[u8]) -> Result<SecretKey, GrantError> {
        Ok(SecretKey {
            key: secret_from_seed_and_public(bytes)?,
        })
    }

    pub fn to_paserk(&self) -> String {
        let mut out = String::new();
        self.key
            .fmt(&mut out)
            .expect("formatting a PASERK into a String cannot fail");
        out
    }

    pub fn public_key(&self) -> PublicKey {
        let key = AsymmetricPublicKey::<V4>::try_from(&self.key)
            .expect("the public half of a validated v4 secret key is a valid public key");
        PublicKey { key }
    }

    pub(crate) fn inner(&self) -> &AsymmetricSecretKey<V4> {
        &self.key
    }
}

impl std::fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretKey(<redacted>)")
    }
}

/// Trusted public keys by kid.
#[derive(Clone, Default)]
pub struct KeySet {
    keys: HashMap<String, PublicKey>,
}

impl KeySet {
    pub fn new() -> KeySet {
        KeySet::default()
    }
    pub fn insert(&mut self, key: PublicKey) {
        self.keys.insert(key.kid(), key);
    }
    pub fn get(&self, kid: &str) -> Option<&PublicKey> {
        self.keys.get(kid)
    }
    pub fn len(&self) -> usize {
        self.keys.len()
    }
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }
    /// The kids of the trusted keys, sorted (for messages and listings).
    pub fn kids(&self) -> Vec<&str> {
        let mut kids: Vec<&str> = self.keys.keys().map(String::as_str).collect();
        kids.sort_unstable();
        kids
    }
}

impl std::fmt::Debug for KeySet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_set().entries(self.kids()).finish()
    }
}
