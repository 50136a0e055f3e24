//! Ed25519 keys as PASERK strings (`k4.public.…`, `k4.secret.…`) and their ids (`k4.pid.…`).
use crate::GrantError;
use std::collections::HashMap;

#[derive(Clone)]
pub struct PublicKey { /* wraps pasetors AsymmetricPublicKey<V4> */ }
pub struct SecretKey { /* wraps pasetors AsymmetricSecretKey<V4>; zeroized on drop by pasetors */ }

impl PublicKey {
    pub fn from_paserk(s: &str) -> Result<PublicKey, GrantError> { todo!() }
    pub fn to_paserk(&self) -> String { todo!() }
    /// PASERK `k4.pid.…` of this key.
    pub fn kid(&self) -> String { todo!() }
}

impl SecretKey {
    pub fn generate() -> Result<SecretKey, GrantError> { todo!() }
    pub fn from_paserk(s: &str) -> Result<SecretKey, GrantError> { todo!() }
    pub fn to_paserk(&self) -> String { todo!() }
    pub fn public_key(&self) -> PublicKey { todo!() }
}

impl std::fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result { f.write_str("SecretKey(<redacted>)") }
}

/// Trusted public keys by kid.
#[derive(Clone, Default)]
pub struct KeySet {
    keys: HashMap<String, PublicKey>,
}

impl KeySet {
    pub fn new() -> KeySet { KeySet::default() }
    pub fn insert(&mut self, key: PublicKey) { self.keys.insert(key.kid(), key); }
    pub fn get(&self, kid: &str) -> Option<&PublicKey> { self.keys.get(kid) }
    pub fn len(&self) -> usize { self.keys.len() }
    pub fn is_empty(&self) -> bool { self.keys.is_empty() }
}
