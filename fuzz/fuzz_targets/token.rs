//! Token decoding and verification never panic on any input, and nothing unsigned verifies.
#![no_main]
use jit_grant::{decode_unverified, verify, KeySet, SecretKey, TokenKind};
use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;

fn keys() -> &'static KeySet {
    static KEYS: OnceLock<KeySet> = OnceLock::new();
    KEYS.get_or_init(|| {
        let mut set = KeySet::new();
        set.insert(SecretKey::generate().expect("key").public_key());
        set
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(token) = std::str::from_utf8(data) else { return };
    let _ = decode_unverified(token);
    for kind in [TokenKind::Grant, TokenKind::Attestation, TokenKind::Revocations] {
        // The key was generated in this process: no input can carry a valid signature.
        assert!(verify(token, keys(), kind).is_err());
    }
});
