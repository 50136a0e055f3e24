//! Attestations and revocation lists signed by pyseto, an independent PASETO implementation
//! (tests/vectors/pyseto.json, written by tests/vectors/make_pyseto_vectors.py): footer
//! `{"kid": "…"}` with a space, indented payloads in another key order, offsets and fractions.
//! The reverse direction (pyseto verifying what we sign) is in tests/broker/.
use jit_grant::{
    AttestCheck, AttestFault, Attestation, GrantError, KeySet, PublicKey, RevocationList,
    EMPTY_BODY_SHA256,
};
use std::time::Duration;
use time::OffsetDateTime;

struct Vectors {
    public: PublicKey,
    kid: String,
    attestation: String,
    revocations: String,
}

fn vectors() -> Vectors {
    let doc: serde_json::Value = serde_json::from_str(include_str!("vectors/pyseto.json")).unwrap();
    let s = |k: &str| doc[k].as_str().unwrap().to_string();
    Vectors {
        public: PublicKey::from_paserk(&s("public")).unwrap(),
        kid: s("kid"),
        attestation: s("attestation"),
        revocations: s("revocations"),
    }
}

fn keys(v: &Vectors) -> KeySet {
    let mut keys = KeySet::new();
    keys.insert(v.public.clone());
    keys
}

#[test]
fn pyseto_kid_is_ours() {
    let v = vectors();
    assert_eq!(v.public.kid(), v.kid);
}

#[test]
fn attestation_signed_by_pyseto_verifies_and_checks() {
    let v = vectors();
    let verified = Attestation::verify(&v.attestation, &keys(&v)).unwrap();
    assert_eq!(verified.kid, v.kid);
    let a = &verified.attestation;
    assert_eq!(
        (a.sub.as_str(), a.uid, a.host.as_str()),
        ("alice", 1000, "web-3")
    );
    assert_eq!(a.groups, ["alice", "netops", "oncall"]);
    assert_eq!(a.jti, "00112233445566778899aabbccddeeff");
    // 15:06:40.25Z .. 17:07:40+02:00 = 15:07:40Z
    let iat = OffsetDateTime::from_unix_timestamp(1_750_000_000).unwrap();
    assert_eq!(a.iat, iat + time::Duration::milliseconds(250));
    assert_eq!(a.exp, iat + time::Duration::seconds(60));
    let ctx = AttestCheck {
        now: iat + time::Duration::seconds(30),
        clock_skew: Duration::from_secs(60),
        max_lifetime: Duration::from_secs(300),
        method: "GET",
        path: "/v1/requests",
        body_sha256: EMPTY_BODY_SHA256,
        host: "web-3",
    };
    a.check(&ctx).unwrap();
    let e = a
        .check(&AttestCheck {
            now: iat + time::Duration::seconds(60),
            ..ctx
        })
        .unwrap_err();
    assert!(
        matches!(
            e,
            GrantError::Attestation {
                fault: AttestFault::Expired,
                ..
            }
        ),
        "{e:?}"
    );
    // Not a revocation list.
    assert!(matches!(
        RevocationList::verify(&v.attestation, &keys(&v)),
        Err(GrantError::BadSignature { .. })
    ));
}

#[test]
fn revocation_list_signed_by_pyseto_verifies() {
    let v = vectors();
    let verified = RevocationList::verify(&v.revocations, &keys(&v)).unwrap();
    let list = verified.list;
    assert_eq!((list.iss.as_str(), list.seq), ("pyseto-broker", 7));
    assert!(list.contains("01JXAMPLE0000000000000000A"));
    assert!(!list.contains("01JXAMPLE0000000000000000B"));
    let entry = list.find("01JXAMPLE0000000000000000A").unwrap();
    assert_eq!(entry.reason, "left the team");
    // 18:00+02:00 = 16:00Z
    assert_eq!(entry.exp.unix_timestamp(), 1_750_003_200);
    let iat = OffsetDateTime::from_unix_timestamp(1_750_000_000).unwrap();
    assert!(!list.is_older_than(iat + time::Duration::minutes(5), Duration::from_secs(300)));
    assert!(list.is_older_than(iat + time::Duration::minutes(6), Duration::from_secs(300)));
    assert!(matches!(
        Attestation::verify(&v.revocations, &keys(&v)),
        Err(GrantError::BadSignature { .. })
    ));
}
