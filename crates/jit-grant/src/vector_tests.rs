//! The official PASETO v4.public and PASERK k4.public / k4.secret / k4.pid test vectors
//! (paseto-standard/test-vectors), committed under tests/vectors/. These run against the
//! crate's own signing/verification path, below the kid/KeySet layer that the vectors
//! (whose footers carry arbitrary kids) cannot satisfy.
use crate::token::{sign_raw, verify_signature};
use crate::{verify, GrantError, KeySet, PublicKey, SecretKey, TokenKind};
use serde_json::Value;

fn hex(s: &str) -> Vec<u8> {
    assert!(s.len().is_multiple_of(2), "odd hex length");
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex"))
        .collect()
}

fn load(name: &str) -> Vec<Value> {
    let text = match name {
        "v4" => include_str!("../tests/vectors/v4.json"),
        "k4.public" => include_str!("../tests/vectors/k4.public.json"),
        "k4.secret" => include_str!("../tests/vectors/k4.secret.json"),
        "k4.pid" => include_str!("../tests/vectors/k4.pid.json"),
        other => panic!("no vector file {other}"),
    };
    let doc: Value = serde_json::from_str(text).expect("vector file is JSON");
    doc["tests"].as_array().expect("tests array").clone()
}

fn s<'a>(v: &'a Value, field: &str) -> &'a str {
    v[field]
        .as_str()
        .unwrap_or_else(|| panic!("{}: {field} missing", v["name"]))
}

/// The vectors spell the flag "expect-fail" (one PASERK vector says "expectfail").
fn expect_fail(v: &Value) -> bool {
    v["expect-fail"]
        .as_bool()
        .or_else(|| v["expectfail"].as_bool())
        .unwrap_or(false)
}

/// Verify a raw token with one public key and an implicit assertion, as `verify` does
/// once it has found the key: returns (payload, raw footer).
fn verify_with_key(
    token: &str,
    key: &PublicKey,
    implicit: &[u8],
) -> Result<(String, Vec<u8>), GrantError> {
    let untrusted = crate::token::parse_untrusted(token)?;
    let footer = untrusted.untrusted_footer().to_vec();
    let payload = verify_signature(
        key,
        &untrusted,
        implicit,
        "test-vector-kid",
        TokenKind::Grant,
    )?;
    Ok((payload, footer))
}

#[test]
fn v4_public_success_vectors_sign_and_verify() {
    let mut seen = 0;
    for v in load("v4")
        .iter()
        .filter(|v| s(v, "name").starts_with("4-S-"))
    {
        seen += 1;
        assert!(!expect_fail(v));
        let name = s(v, "name");
        let secret = SecretKey::from_bytes(&hex(s(v, "secret-key"))).unwrap();
        let public = PublicKey::from_bytes(&hex(s(v, "public-key"))).unwrap();
        assert_eq!(
            secret.public_key(),
            public,
            "{name}: public half of the secret key"
        );
        let (payload, footer, implicit) =
            (s(v, "payload"), s(v, "footer"), s(v, "implicit-assertion"));

        // Ed25519 is deterministic: signing reproduces the vector's token byte for byte.
        let token = sign_raw(
            &secret,
            payload.as_bytes(),
            footer.as_bytes(),
            implicit.as_bytes(),
        )
        .unwrap();
        assert_eq!(token, s(v, "token"), "{name}: signed token");

        let (got_payload, got_footer) =
            verify_with_key(s(v, "token"), &public, implicit.as_bytes()).unwrap();
        assert_eq!(got_payload, payload, "{name}: payload");
        assert_eq!(got_footer, footer.as_bytes(), "{name}: footer");

        // The implicit assertion is bound: a different one fails.
        let err = verify_with_key(s(v, "token"), &public, b"jitrun:grant:v1").unwrap_err();
        assert!(
            matches!(err, GrantError::BadSignature { .. }),
            "{name}: {err}"
        );
    }
    assert_eq!(seen, 3);
}

#[test]
fn v4_expect_fail_vectors_fail() {
    let mut seen = 0;
    for v in load("v4").iter().filter(|v| expect_fail(v)) {
        seen += 1;
        let name = s(v, "name");
        let token = s(v, "token");
        let implicit = s(v, "implicit-assertion").as_bytes();
        // Every key the vector offers, used as a v4 public key where it has the size of one.
        let mut keys = Vec::new();
        for field in ["public-key", "key"] {
            if let Some(h) = v[field].as_str() {
                keys.push(PublicKey::from_bytes(&hex(h)).unwrap());
            }
        }
        assert!(!keys.is_empty(), "{name}: no key");
        for key in &keys {
            assert!(
                verify_with_key(token, key, implicit).is_err(),
                "{name} verified with {key:?}"
            );
            let mut set = KeySet::new();
            set.insert(key.clone());
            assert!(verify(token, &set, TokenKind::Grant).is_err(), "{name}");
        }
    }
    assert_eq!(seen, 4);
}

#[test]
fn v4_local_vectors_are_not_accepted_as_public() {
    for v in load("v4")
        .iter()
        .filter(|v| s(v, "name").starts_with("4-E-"))
    {
        let err = crate::decode_unverified(s(v, "token")).unwrap_err();
        assert!(
            matches!(err, GrantError::Malformed(_)),
            "{}: {err}",
            s(v, "name")
        );
        assert!(err.to_string().contains("v4.local"), "{err}");
    }
}

const B64URL: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/// Set the lowest unused bit of the last character: lenient base64 decoders yield the same
/// bytes, strict ones refuse. None when the encoding has no unused bits.
fn non_canonical(part: &str) -> Option<String> {
    if part.len().is_multiple_of(4) {
        return None;
    }
    let (head, last) = part.split_at(part.len() - 1);
    let index = B64URL
        .iter()
        .position(|&c| c == last.as_bytes()[0])
        .unwrap();
    assert_eq!(index & 1, 0, "canonical encodings have zero unused bits");
    Some(format!("{head}{}", B64URL[index | 1] as char))
}

#[test]
fn non_canonical_base64_is_refused() {
    // 4-F-4 is this attack on a local token; here the same on the public vectors.
    let mut tried = 0;
    for v in load("v4")
        .iter()
        .filter(|v| s(v, "name").starts_with("4-S-"))
    {
        let public = PublicKey::from_bytes(&hex(s(v, "public-key"))).unwrap();
        let implicit = s(v, "implicit-assertion").as_bytes();
        let token = s(v, "token");
        assert!(verify_with_key(token, &public, implicit).is_ok());
        let mut parts: Vec<String> = token.split('.').map(str::to_string).collect();
        for i in 2..parts.len() {
            if let Some(bad) = non_canonical(&parts[i]) {
                let original = std::mem::replace(&mut parts[i], bad);
                let tampered = parts.join(".");
                assert!(
                    verify_with_key(&tampered, &public, implicit).is_err(),
                    "{tampered}"
                );
                parts[i] = original;
                tried += 1;
            }
        }
    }
    assert!(tried >= 3, "{tried}");
}

#[test]
fn paserk_k4_public_vectors() {
    let tests = load("k4.public");
    assert_eq!(tests.len(), 3);
    for v in &tests {
        let name = s(v, "name");
        let bytes = hex(s(v, "key"));
        let key = PublicKey::from_bytes(&bytes).unwrap();
        assert_eq!(key.to_paserk(), s(v, "paserk"), "{name}");
        let parsed = PublicKey::from_paserk(s(v, "paserk")).unwrap();
        assert_eq!(parsed.as_bytes(), &bytes[..], "{name}");
        assert_eq!(parsed, key);
        // Wrong type or version is refused.
        assert!(SecretKey::from_paserk(s(v, "paserk")).is_err(), "{name}");
        let k2 = s(v, "paserk").replacen("k4.", "k2.", 1);
        assert!(PublicKey::from_paserk(&k2).is_err(), "{name}");
    }
}

#[test]
fn paserk_k4_secret_vectors() {
    let tests = load("k4.secret");
    assert_eq!(tests.len(), 3);
    for v in &tests {
        let name = s(v, "name");
        let bytes = hex(s(v, "key"));
        let seed = hex(s(v, "secret-key-seed"));
        assert_eq!(&bytes[..32], &seed[..], "{name}: key = seed || public key");
        if seed.iter().all(|&b| b == 0) {
            // k4.secret-1: the all-zero seed. Its PASERK encoding is well-formed, but the
            // key is public knowledge (anyone can sign with it) and ed25519-compact panics
            // on it, so we refuse it with an error instead of accepting it.
            for err in [
                SecretKey::from_bytes(&bytes).unwrap_err(),
                SecretKey::from_paserk(s(v, "paserk")).unwrap_err(),
            ] {
                assert!(
                    matches!(&err, GrantError::Key(m) if m.contains("all zeros")),
                    "{name}: {err}"
                );
            }
            // Its public half still round-trips as a k4.public.
            let public = PublicKey::from_bytes(&hex(s(v, "public-key"))).unwrap();
            assert_eq!(PublicKey::from_paserk(&public.to_paserk()).unwrap(), public);
            continue;
        }
        let key = SecretKey::from_bytes(&bytes).unwrap();
        assert_eq!(key.to_paserk(), s(v, "paserk"), "{name}");
        let parsed = SecretKey::from_paserk(s(v, "paserk")).unwrap();
        assert_eq!(parsed.to_paserk(), s(v, "paserk"), "{name}");
        assert_eq!(
            parsed.public_key().as_bytes(),
            &hex(s(v, "public-key"))[..],
            "{name}"
        );
        // A secret key is never accepted where a public one is expected.
        assert!(PublicKey::from_paserk(s(v, "paserk")).is_err(), "{name}");
        // Seed and public half must belong together.
        let mut mismatched = bytes.clone();
        mismatched[63] ^= 1;
        assert!(SecretKey::from_bytes(&mismatched).is_err(), "{name}");
    }
}

#[test]
fn paserk_k4_pid_vectors() {
    let tests = load("k4.pid");
    assert_eq!(tests.len(), 5);
    for v in &tests {
        let name = s(v, "name");
        let bytes = hex(s(v, "key"));
        if expect_fail(v) {
            assert!(PublicKey::from_bytes(&bytes).is_err(), "{name}");
            continue;
        }
        let key = PublicKey::from_bytes(&bytes).unwrap();
        assert_eq!(key.kid(), s(v, "paserk"), "{name}");
    }
}
