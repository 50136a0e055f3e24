//! Tokens and claims through the public API.
use jit_grant::{
    decode_unverified, format_time, sign, sign_payload, verify, verify_payload, CheckContext,
    Claims, CmdClaim, GrantError, KeySet, PublicKey, SecretKey, TokenKind, MAX_TOKEN_LEN,
};
use jit_policy::{CapSet, RunAs};
use pasetors::keys::AsymmetricSecretKey;
use pasetors::version4::{PublicToken, V4};
use std::time::Duration;
use time::OffsetDateTime;

/// 2025-06-15T15:06:40Z.
fn t0() -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(1_750_000_000).unwrap()
}

fn mins(m: i64) -> time::Duration {
    time::Duration::minutes(m)
}

fn claims() -> Claims {
    Claims {
        iss: "broker-1".into(),
        sub: "alice".into(),
        uid: Some(1000),
        hosts: vec!["web-*".into(), "db-1".into()],
        jti: "01JXAMPLE0000000000000000A".into(),
        iat: t0(),
        nbf: t0(),
        exp: t0() + mins(60),
        rule: "net-debug".into(),
        caps: Some(vec!["CAP_NET_RAW".into()]),
        cmd: Some(CmdClaim::One("/usr/sbin/tcpdump -i * **".into())),
        run_as: Some("invoker".into()),
        approvers: vec!["bob".into()],
        ticket: Some("OPS-42".into()),
        reason: Some("debug packet loss".into()),
        max_uses: Some(3),
        break_glass: false,
    }
}

fn keyset(keys: &[&SecretKey]) -> KeySet {
    let mut set = KeySet::new();
    for k in keys {
        set.insert(k.public_key());
    }
    set
}

fn ctx(now: OffsetDateTime) -> CheckContext<'static> {
    CheckContext {
        user: "alice",
        uid: 1000,
        host: "web-3",
        now,
        clock_skew: Duration::from_secs(60),
    }
}

fn b64(bytes: &[u8]) -> String {
    use ct_codecs::{Base64UrlSafeNoPadding, Encoder};
    let mut buf = vec![0u8; bytes.len() * 4 / 3 + 4];
    Base64UrlSafeNoPadding::encode_to_str(&mut buf, bytes)
        .unwrap()
        .to_string()
}

// ---------------------------------------------------------------- keys

#[test]
fn keys_round_trip_as_paserk() {
    let sk = SecretKey::generate().unwrap();
    let pk = sk.public_key();
    let sk_text = sk.to_paserk();
    assert!(sk_text.starts_with("k4.secret."));
    assert!(pk.to_paserk().starts_with("k4.public."));
    assert!(pk.kid().starts_with("k4.pid."));
    assert_eq!(pk.kid().len(), "k4.pid.".len() + 44);
    let again = SecretKey::from_paserk(&format!("{sk_text}\n")).unwrap();
    assert_eq!(again.public_key(), pk);
    assert_eq!(
        PublicKey::from_paserk(&format!(" {}\n", pk.to_paserk())).unwrap(),
        pk
    );
    assert_eq!(format!("{sk:?}"), "SecretKey(<redacted>)");
    assert!(!format!("{pk:?}").contains(&pk.to_paserk()[10..]));
}

#[test]
fn bad_keys_are_refused_without_echoing_them() {
    let sk = SecretKey::generate().unwrap();
    let secret = sk.to_paserk();
    let err = PublicKey::from_paserk(&secret).unwrap_err();
    assert!(matches!(err, GrantError::Key(_)));
    assert!(err.to_string().contains("k4.secret PASERK"), "{err}");
    assert!(
        !err.to_string().contains(&secret[10..]),
        "secret echoed: {err}"
    );
    assert!(matches!(
        SecretKey::from_paserk("k4.secret.AAAA"),
        Err(GrantError::Key(_))
    ));
    assert!(matches!(
        SecretKey::from_paserk("k4.secret.!!!"),
        Err(GrantError::Key(_))
    ));
    assert!(matches!(
        PublicKey::from_paserk("k4.public.AAAA"),
        Err(GrantError::Key(_))
    ));
    assert!(matches!(
        PublicKey::from_paserk("garbage"),
        Err(GrantError::Key(_))
    ));
    assert!(matches!(
        PublicKey::from_bytes(&[1u8; 31]),
        Err(GrantError::Key(_))
    ));
}

#[test]
fn keyset_is_by_kid() {
    let (a, b) = (
        SecretKey::generate().unwrap(),
        SecretKey::generate().unwrap(),
    );
    let set = keyset(&[&a, &b]);
    assert_eq!(set.len(), 2);
    assert!(!set.is_empty());
    assert_eq!(set.get(&a.public_key().kid()), Some(&a.public_key()));
    assert!(set.get("k4.pid.nope").is_none());
    assert!(KeySet::new().is_empty());
}

// ---------------------------------------------------------------- tokens

#[test]
fn round_trip() {
    let sk = SecretKey::generate().unwrap();
    let c = claims();
    let token = sign(&sk, TokenKind::Grant, &c).unwrap();
    assert!(token.starts_with("v4.public."));
    let v = verify(&token, &keyset(&[&sk]), TokenKind::Grant).unwrap();
    assert_eq!(v.claims, c);
    assert_eq!(v.kid, sk.public_key().kid());
    assert_eq!(serde_json::from_str::<Claims>(&v.payload).unwrap(), c);
    // A trailing newline (a token file) is fine.
    assert!(verify(&format!("{token}\n"), &keyset(&[&sk]), TokenKind::Grant).is_ok());
}

#[test]
fn footer_is_compact_json_with_kid() {
    let sk = SecretKey::generate().unwrap();
    let token = sign(&sk, TokenKind::Grant, &claims()).unwrap();
    let u = decode_unverified(&token).unwrap();
    assert_eq!(
        u.footer,
        format!("{{\"kid\":\"{}\"}}", sk.public_key().kid())
    );
    assert_eq!(u.kid.as_deref(), Some(sk.public_key().kid().as_str()));
    assert_eq!(
        serde_json::from_str::<Claims>(&u.payload).unwrap(),
        claims()
    );
}

#[test]
fn we_write_utc_whole_seconds() {
    let mut c = claims();
    let offset = time::UtcOffset::from_hms(2, 0, 0).unwrap();
    c.iat = (t0() + time::Duration::milliseconds(750)).to_offset(offset);
    let json: serde_json::Value = serde_json::to_value(&c).unwrap();
    assert_eq!(json["iat"], "2025-06-15T15:06:40Z");
    assert_eq!(json["exp"], "2025-06-15T16:06:40Z");
    assert_eq!(format_time(c.iat), "2025-06-15T15:06:40Z");
    // Optional claims left out are not written.
    let mut bare = claims();
    (
        bare.uid,
        bare.caps,
        bare.cmd,
        bare.run_as,
        bare.ticket,
        bare.reason,
        bare.max_uses,
    ) = (None, None, None, None, None, None, None);
    let json = serde_json::to_value(&bare).unwrap();
    let keys: Vec<&str> = json
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    for absent in [
        "uid",
        "caps",
        "cmd",
        "run_as",
        "ticket",
        "reason",
        "max_uses",
        "break_glass",
    ] {
        assert!(!keys.contains(&absent), "{absent} written: {json}");
    }
}

#[test]
fn footer_with_spaces_from_another_implementation_verifies() {
    // Another implementation writes {"kid": "…"} with a space; the signature covers those
    // exact bytes, so re-serializing the footer would break verification.
    let sk = SecretKey::generate().unwrap();
    let kid = sk.public_key().kid();
    let footer = format!("{{\"kid\": \"{kid}\"}}");
    let payload = r#"{ "rule" : "net-debug", "sub":"alice", "jti":"01JSPACES",
        "iss":"other-impl", "hosts":["web-*"], "exp":"2025-06-15T18:06:40+02:00",
        "nbf":"2025-06-15T15:06:40Z", "iat":"2025-06-15T15:06:40.5Z", "unknown_claim": {"x": 1} }"#;
    let pasetors_key = AsymmetricSecretKey::<V4>::try_from(sk.to_paserk().as_str()).unwrap();
    let token = PublicToken::sign(
        &pasetors_key,
        payload.as_bytes(),
        Some(footer.as_bytes()),
        Some(b"jitrun:grant:v1"),
    )
    .unwrap();
    let v = verify(&token, &keyset(&[&sk]), TokenKind::Grant).unwrap();
    assert_eq!(v.kid, kid);
    assert_eq!(v.payload, payload);
    assert_eq!(v.claims.sub, "alice");
    assert_eq!(
        v.claims.exp,
        t0() + mins(60),
        "offset +02:00 read as the same instant"
    );
    assert_eq!(v.claims.iat, t0() + time::Duration::milliseconds(500));
    assert!(v.claims.approvers.is_empty() && !v.claims.break_glass && v.claims.caps.is_none());
    assert_eq!(decode_unverified(&token).unwrap().footer, footer);
}

#[test]
fn wrong_kind_fails() {
    let sk = SecretKey::generate().unwrap();
    let keys = keyset(&[&sk]);
    let attest = sign(&sk, TokenKind::Attestation, &claims()).unwrap();
    let err = verify(&attest, &keys, TokenKind::Grant).unwrap_err();
    assert!(
        matches!(err, GrantError::BadSignature { kind: "grant", .. }),
        "{err}"
    );
    assert!(verify(&attest, &keys, TokenKind::Attestation).is_ok());
    let grant = sign(&sk, TokenKind::Grant, &claims()).unwrap();
    for kind in [TokenKind::Attestation, TokenKind::Revocations] {
        assert!(matches!(
            verify(&grant, &keys, kind),
            Err(GrantError::BadSignature { .. })
        ));
    }
    let assertions: Vec<&[u8]> = [
        TokenKind::Grant,
        TokenKind::Attestation,
        TokenKind::Revocations,
    ]
    .map(|k| k.implicit_assertion())
    .to_vec();
    assert_eq!(
        assertions,
        [
            &b"jitrun:grant:v1"[..],
            b"jitrun:attest:v1",
            b"jitrun:revocations:v1"
        ]
    );
}

#[test]
fn other_payloads_sign_and_verify() {
    let sk = SecretKey::generate().unwrap();
    let token = sign_payload(&sk, TokenKind::Revocations, br#"{"revoked":["01J1"]}"#).unwrap();
    let v = verify_payload(&token, &keyset(&[&sk]), TokenKind::Revocations).unwrap();
    assert_eq!(v.payload, r#"{"revoked":["01J1"]}"#);
    assert!(matches!(
        sign_payload(&sk, TokenKind::Grant, b"not json"),
        Err(GrantError::Sign(_))
    ));
    // A revocation list is not a grant, even though the signature and key are good.
    let err = verify(&token, &keyset(&[&sk]), TokenKind::Grant).unwrap_err();
    assert!(matches!(err, GrantError::BadSignature { .. }), "{err}");
}

#[test]
fn tampered_payload_fails() {
    let sk = SecretKey::generate().unwrap();
    let keys = keyset(&[&sk]);
    let token = sign(&sk, TokenKind::Grant, &claims()).unwrap();
    let (_, rest) = token.split_at("v4.public.".len());
    let (body, footer) = rest.split_once('.').unwrap();
    // Keep the signature, change the payload (same length: "alice" -> "mallo").
    let untrusted = decode_unverified(&token).unwrap();
    let mut raw = untrusted.payload.replace("alice", "mallo").into_bytes();
    let orig = {
        use ct_codecs::{Base64UrlSafeNoPadding, Decoder};
        let mut buf = vec![0u8; body.len()];
        Base64UrlSafeNoPadding::decode(&mut buf, body, None)
            .unwrap()
            .to_vec()
    };
    raw.extend_from_slice(&orig[orig.len() - 64..]);
    let forged = format!("v4.public.{}.{footer}", b64(&raw));
    let err = verify(&forged, &keys, TokenKind::Grant).unwrap_err();
    assert!(matches!(err, GrantError::BadSignature { .. }), "{err}");
    // Flip one bit of the signature.
    let mut flipped = orig.clone();
    *flipped.last_mut().unwrap() ^= 1;
    let forged = format!("v4.public.{}.{footer}", b64(&flipped));
    assert!(matches!(
        verify(&forged, &keys, TokenKind::Grant),
        Err(GrantError::BadSignature { .. })
    ));
    // Another footer (same kid, different bytes) breaks the signature too.
    let spaced = b64(format!("{{\"kid\": \"{}\"}}", sk.public_key().kid()).as_bytes());
    let forged = format!("v4.public.{body}.{spaced}");
    assert!(matches!(
        verify(&forged, &keys, TokenKind::Grant),
        Err(GrantError::BadSignature { .. })
    ));
}

#[test]
fn unknown_kid_is_refused_without_trying_other_keys() {
    let signer = SecretKey::generate().unwrap();
    let trusted = SecretKey::generate().unwrap();
    let token = sign(&signer, TokenKind::Grant, &claims()).unwrap();
    let err = verify(&token, &keyset(&[&trusted]), TokenKind::Grant).unwrap_err();
    match &err {
        GrantError::UnknownKey { kid } => assert_eq!(kid, &signer.public_key().kid()),
        other => panic!("{other}"),
    }
    assert!(err.to_string().contains("/etc/jitrun/keys.d/"));

    // A token signed by a trusted key but naming another (unknown) kid is refused as
    // UnknownKey: the kid selects the key, no fallback to the others.
    let kid = signer.public_key().kid();
    let footer = format!("{{\"kid\":\"{kid}\"}}");
    let k = AsymmetricSecretKey::<V4>::try_from(trusted.to_paserk().as_str()).unwrap();
    let token = PublicToken::sign(
        &k,
        br#"{"a":1}"#,
        Some(footer.as_bytes()),
        Some(b"jitrun:grant:v1"),
    )
    .unwrap();
    assert!(matches!(
        verify(&token, &keyset(&[&trusted]), TokenKind::Grant),
        Err(GrantError::UnknownKey { .. })
    ));
    // Naming the trusted kid while signed by another key: bad signature.
    let footer = format!("{{\"kid\":\"{}\"}}", trusted.public_key().kid());
    let k = AsymmetricSecretKey::<V4>::try_from(signer.to_paserk().as_str()).unwrap();
    let token = PublicToken::sign(
        &k,
        br#"{"a":1}"#,
        Some(footer.as_bytes()),
        Some(b"jitrun:grant:v1"),
    )
    .unwrap();
    assert!(matches!(
        verify(&token, &keyset(&[&trusted, &signer]), TokenKind::Grant),
        Err(GrantError::BadSignature { .. })
    ));
}

fn hand_signed(sk: &SecretKey, payload: &[u8], footer: Option<&[u8]>) -> String {
    let k = AsymmetricSecretKey::<V4>::try_from(sk.to_paserk().as_str()).unwrap();
    PublicToken::sign(&k, payload, footer, Some(b"jitrun:grant:v1")).unwrap()
}

#[test]
fn footer_problems() {
    let sk = SecretKey::generate().unwrap();
    let keys = keyset(&[&sk]);
    let payload = serde_json::to_vec(&claims()).unwrap();
    for footer in [
        None,
        Some(&b"not json"[..]),
        Some(b"[1,2]"),
        Some(b"{\"kid\":5}"),
        Some(b"{\"kid\":\"\"}"),
        Some(b"{\"key\":\"k4.pid.x\"}"),
    ] {
        let token = hand_signed(&sk, &payload, footer);
        let err = verify(&token, &keys, TokenKind::Grant).unwrap_err();
        assert!(matches!(err, GrantError::Footer(_)), "{footer:?}: {err}");
    }
}

#[test]
fn malformed_tokens() {
    let keys = keyset(&[&SecretKey::generate().unwrap()]);
    for token in [
        "",
        "hello",
        "v4.local.AAAA",
        "v2.public.AAAA.AAAA",
        "v4.public.",
        "v4.public.AAAA",
        "v4.public.!!!!.eyJ9",
        "v4.public.a.b.c",
    ] {
        let err = verify(token, &keys, TokenKind::Grant).unwrap_err();
        assert!(matches!(err, GrantError::Malformed(_)), "{token:?}: {err}");
        assert!(decode_unverified(token).is_err(), "{token:?}");
    }
}

#[test]
fn oversized_token_is_refused_before_decoding() {
    let keys = keyset(&[&SecretKey::generate().unwrap()]);
    // Valid-looking but over the limit; and garbage over the limit: both Malformed by size.
    let big = format!("v4.public.{}", "A".repeat(MAX_TOKEN_LEN));
    for token in [big, "!".repeat(MAX_TOKEN_LEN + 1)] {
        let err = verify(&token, &keys, TokenKind::Grant).unwrap_err();
        assert!(
            matches!(&err, GrantError::Malformed(m) if m.contains("bytes")),
            "{err}"
        );
        assert!(matches!(
            decode_unverified(&token),
            Err(GrantError::Malformed(_))
        ));
    }
    // And we never mint one.
    let sk = SecretKey::generate().unwrap();
    let mut c = claims();
    c.reason = Some("x".repeat(MAX_TOKEN_LEN));
    assert!(matches!(
        sign(&sk, TokenKind::Grant, &c),
        Err(GrantError::Sign(_))
    ));
}

#[test]
fn claims_are_parsed_tolerantly_and_errors_name_the_claim() {
    let sk = SecretKey::generate().unwrap();
    let keys = keyset(&[&sk]);
    let base = serde_json::to_value(claims()).unwrap();

    let set = |name: &str, value: serde_json::Value| {
        let mut v = base.clone();
        v.as_object_mut().unwrap().insert(name.to_string(), value);
        serde_json::to_vec(&v).unwrap()
    };
    let without = |name: &str| {
        let mut v = base.clone();
        v.as_object_mut().unwrap().remove(name);
        serde_json::to_vec(&v).unwrap()
    };
    use serde_json::json;
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("sub", without("sub")),
        ("exp", without("exp")),
        ("hosts", set("hosts", json!("web-1"))),
        ("uid", set("uid", json!(-1))),
        ("iat", set("iat", json!("yesterday"))),
        ("nbf", set("nbf", json!(1_750_000_000))),
        ("caps", set("caps", json!("CAP_NET_RAW"))),
        ("cmd", set("cmd", json!(5))),
        ("break_glass", set("break_glass", json!("yes"))),
        ("max_uses", set("max_uses", json!(1.5))),
        ("approvers", set("approvers", json!([1]))),
        ("payload", b"[1, 2, 3]".to_vec()),
    ];
    for (claim, payload) in cases {
        let token = hand_signed(
            &sk,
            &payload,
            Some(format!("{{\"kid\":\"{}\"}}", sk.public_key().kid()).as_bytes()),
        );
        let err = verify(&token, &keys, TokenKind::Grant).unwrap_err();
        match &err {
            GrantError::Claim {
                claim: got, jti, ..
            } => {
                assert_eq!(*got, claim, "{err}");
                if claim != "payload" {
                    assert_eq!(jti, "01JXAMPLE0000000000000000A");
                }
            }
            other => panic!("{claim}: {other}"),
        }
    }
    // A claim given twice is refused (first-wins and last-wins parsers would disagree).
    let text = String::from_utf8(serde_json::to_vec(&base).unwrap()).unwrap();
    let doubled = text.replacen("\"sub\":\"alice\"", "\"sub\":\"alice\",\"sub\":\"root\"", 1);
    assert_ne!(doubled, text);
    let token = hand_signed(
        &sk,
        doubled.as_bytes(),
        Some(format!("{{\"kid\":\"{}\"}}", sk.public_key().kid()).as_bytes()),
    );
    let err = verify(&token, &keys, TokenKind::Grant).unwrap_err();
    assert!(
        matches!(&err, GrantError::Claim { claim: "payload", message, .. } if message.contains("duplicate")),
        "{err}"
    );
    // Unknown claims are ignored; key order and whitespace do not matter; null optional claims are absent.
    let mut v = base.clone();
    v.as_object_mut()
        .unwrap()
        .insert("zzz".into(), json!({"nested": true}));
    v.as_object_mut()
        .unwrap()
        .insert("uid".into(), serde_json::Value::Null);
    let payload = serde_json::to_vec(&v).unwrap();
    let pretty =
        serde_json::to_vec_pretty(&serde_json::from_slice::<serde_json::Value>(&payload).unwrap())
            .unwrap();
    let token = hand_signed(
        &sk,
        &pretty,
        Some(format!("{{\"kid\":\"{}\"}}", sk.public_key().kid()).as_bytes()),
    );
    let v = verify(&token, &keys, TokenKind::Grant).unwrap();
    assert_eq!(v.claims.uid, None);
    assert_eq!(v.payload.as_bytes(), &pretty[..]);
}

// ---------------------------------------------------------------- Claims::check

#[test]
fn check_accepts_a_good_grant() {
    let c = claims();
    c.check(&ctx(t0() + mins(1))).unwrap();
    // At nbf exactly, and one second before exp.
    c.check(&ctx(t0())).unwrap();
    c.check(&ctx(c.exp - time::Duration::seconds(1))).unwrap();
    // Second host pattern, exact.
    c.check(&CheckContext {
        host: "db-1",
        ..ctx(t0())
    })
    .unwrap();
    // No uid binding: any uid.
    let mut unbound = claims();
    unbound.uid = None;
    unbound
        .check(&CheckContext {
            uid: 4242,
            ..ctx(t0())
        })
        .unwrap();
    // nbf/iat slightly in the future: within the clock skew.
    let mut future = claims();
    future.iat = t0() + time::Duration::seconds(50);
    future.nbf = future.iat;
    future.check(&ctx(t0())).unwrap();
}

#[test]
fn check_wrong_user() {
    let err = claims()
        .check(&CheckContext {
            user: "mallory",
            ..ctx(t0())
        })
        .unwrap_err();
    assert!(
        matches!(&err, GrantError::WrongUser { sub, user, .. } if sub == "alice" && user == "mallory")
    );
    let text = err.to_string();
    assert!(
        text.contains("01JXAMPLE0000000000000000A") && text.contains("jitctl request net-debug"),
        "{text}"
    );
}

#[test]
fn check_wrong_uid() {
    let err = claims()
        .check(&CheckContext {
            uid: 1001,
            ..ctx(t0())
        })
        .unwrap_err();
    assert!(
        matches!(
            err,
            GrantError::WrongUid {
                expected: 1000,
                actual: 1001,
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn check_wrong_host() {
    for host in ["db-2", "db-10", "web", "xweb-1"] {
        let err = claims()
            .check(&CheckContext { host, ..ctx(t0()) })
            .unwrap_err();
        assert!(
            matches!(&err, GrantError::WrongHost { host: h, .. } if h == host),
            "{err}"
        );
        assert!(err.to_string().contains("request a grant for this host"));
    }
    let mut none = claims();
    none.hosts.clear();
    assert!(matches!(
        none.check(&ctx(t0())),
        Err(GrantError::WrongHost { .. })
    ));
}

#[test]
fn check_not_yet_valid() {
    let mut c = claims();
    c.nbf = t0() + mins(10);
    let err = c.check(&ctx(t0())).unwrap_err();
    match &err {
        GrantError::NotYetValid { nbf, wait, jti } => {
            assert_eq!(nbf, "2025-06-15T15:16:40Z");
            assert_eq!(wait, "10m");
            assert_eq!(jti, "01JXAMPLE0000000000000000A");
        }
        other => panic!("{other}"),
    }
    // Just past the skew.
    let mut c = claims();
    c.nbf = t0() + time::Duration::seconds(61);
    assert!(matches!(
        c.check(&ctx(t0())),
        Err(GrantError::NotYetValid { .. })
    ));
    // iat in the future is the same refusal.
    let mut c = claims();
    c.iat = t0() + mins(5);
    let err = c.check(&ctx(t0())).unwrap_err();
    assert!(
        matches!(&err, GrantError::NotYetValid { wait, .. } if wait == "5m"),
        "{err}"
    );
}

#[test]
fn check_expired() {
    let c = claims();
    // exp is strict: no skew, and now == exp is expired.
    for (now, ago) in [
        (c.exp, "0s"),
        (c.exp + mins(3), "3m"),
        (c.exp + mins(90), "1h30m"),
    ] {
        let err = c.check(&ctx(now)).unwrap_err();
        match &err {
            GrantError::Expired {
                ago: got,
                exp,
                rule,
                ..
            } => {
                assert_eq!(got, ago);
                assert_eq!(exp, "2025-06-15T16:06:40Z");
                assert_eq!(rule, "net-debug");
            }
            other => panic!("{other}"),
        }
        assert!(err.to_string().contains("jitctl request net-debug"));
    }
}

#[test]
fn check_inconsistent_claims() {
    let mut c = claims();
    c.exp = c.iat;
    assert!(matches!(
        c.check(&ctx(t0())),
        Err(GrantError::Claim { claim: "exp", .. })
    ));
    let mut c = claims();
    c.nbf = c.exp;
    assert!(matches!(
        c.check(&ctx(t0())),
        Err(GrantError::Claim { claim: "exp", .. })
    ));
    let mut c = claims();
    c.jti = " ".into();
    assert!(matches!(
        c.check(&ctx(t0())),
        Err(GrantError::Claim { claim: "jti", .. })
    ));
}

#[test]
fn remaining_time() {
    let c = claims();
    assert_eq!(c.remaining(t0()), Duration::from_secs(3600));
    assert_eq!(c.remaining(t0() + mins(59)), Duration::from_secs(60));
    assert_eq!(c.remaining(c.exp + mins(1)), Duration::ZERO);
}

// ---------------------------------------------------------------- Claims::view

#[test]
fn view_of_a_full_grant() {
    let v = claims().view().unwrap();
    assert_eq!(v.id, "01JXAMPLE0000000000000000A");
    assert_eq!(v.rule, "net-debug");
    assert_eq!(v.caps, Some(CapSet::parse_list(&["net_raw"]).unwrap()));
    let cmd = v.cmd.unwrap();
    assert_eq!(cmd.len(), 1);
    assert_eq!(cmd[0].program, "/usr/sbin/tcpdump");
    assert_eq!(cmd[0].args, vec!["-i", "*"]);
    assert!(cmd[0].rest);
    assert_eq!(v.run_as, Some(RunAs::Invoker));
    assert_eq!(v.lifetime, Duration::from_secs(3600));
    assert_eq!(v.approvers, vec!["bob"]);
    assert_eq!(v.subject, "alice");
    assert!(!v.break_glass);
}

#[test]
fn view_of_a_bare_grant_and_run_as_forms() {
    let mut c = claims();
    (c.caps, c.cmd, c.run_as) = (None, None, None);
    let v = c.view().unwrap();
    assert!(v.caps.is_none() && v.cmd.is_none() && v.run_as.is_none());
    c.run_as = Some("root".into());
    assert_eq!(c.view().unwrap().run_as, Some(RunAs::Root));
    c.run_as = Some("svc-backup".into());
    assert_eq!(
        c.view().unwrap().run_as,
        Some(RunAs::User("svc-backup".into()))
    );
    // cmd in array form: one pattern, word by word (arguments with spaces).
    c.cmd = Some(CmdClaim::Many(vec![
        "/usr/bin/printf".into(),
        "%s with spaces\n".into(),
        "*".into(),
    ]));
    let cmd = c.view().unwrap().cmd.unwrap();
    assert_eq!(cmd.len(), 1);
    assert_eq!(cmd[0].program, "/usr/bin/printf");
    assert_eq!(cmd[0].args, vec!["%s with spaces\n", "*"]);
    assert!(!cmd[0].rest);
}

#[test]
fn view_narrowing_errors_name_the_claim() {
    type Change = Box<dyn Fn(&mut Claims)>;
    let cases: Vec<(&str, Change)> = vec![
        (
            "caps",
            Box::new(|c: &mut Claims| c.caps = Some(vec!["CAP_NET_RAW".into(), "CAP_FLY".into()])),
        ),
        (
            "cmd",
            Box::new(|c: &mut Claims| c.cmd = Some(CmdClaim::One("tcpdump -i eth0".into()))),
        ),
        (
            "cmd",
            Box::new(|c: &mut Claims| c.cmd = Some(CmdClaim::One("/usr/bin/x ** extra".into()))),
        ),
        (
            "cmd",
            Box::new(|c: &mut Claims| c.cmd = Some(CmdClaim::Many(vec!["relative/prog".into()]))),
        ),
        (
            "run_as",
            Box::new(|c: &mut Claims| c.run_as = Some("bad name".into())),
        ),
        (
            "run_as",
            Box::new(|c: &mut Claims| c.run_as = Some("".into())),
        ),
        (
            "run_as",
            Box::new(|c: &mut Claims| c.run_as = Some("-rf".into())),
        ),
        // The workspace's one user-name check: a policy refuses these as run_as, so a
        // grant naming them is malformed (not merely a mismatch).
        (
            "run_as",
            Box::new(|c: &mut Claims| c.run_as = Some("..".into())),
        ),
        (
            "run_as",
            Box::new(|c: &mut Claims| c.run_as = Some(".".into())),
        ),
    ];
    for (claim, change) in cases {
        let mut c = claims();
        change(&mut c);
        let err = c.view().unwrap_err();
        match &err {
            GrantError::Claim {
                claim: got, jti, ..
            } => {
                assert_eq!(*got, claim, "{err}");
                assert_eq!(jti, "01JXAMPLE0000000000000000A");
            }
            other => panic!("{claim}: {other}"),
        }
        let text = err.to_string();
        assert!(
            text.contains("01JXAMPLE0000000000000000A") && text.contains(claim),
            "{text}"
        );
    }
}
