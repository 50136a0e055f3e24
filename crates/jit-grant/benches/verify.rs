//! In-process micro-benchmarks of grant tokens (issue 8, item 2): what jitrun does with a
//! grant on every run (`verify`, then `Claims::check` and `Claims::view`), and `sign` for
//! comparison.
//!
//! `cargo bench -p jit-grant` (add `-- verify` etc. to filter).

use divan::{black_box, Bencher};
use jit_grant::{
    sign, verify, verify_payload, CheckContext, Claims, CmdClaim, KeySet, SecretKey, TokenKind,
};
use std::time::Duration;
use time::OffsetDateTime;

fn main() {
    divan::main();
}

/// A fresh Ed25519 key (Ed25519 timings do not depend on the key).
fn secret() -> SecretKey {
    SecretKey::generate().expect("a key")
}

fn iat() -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(1_767_225_600).unwrap() // 2026-01-01T00:00:00Z
}

/// A realistic grant: narrowed caps and command, approvals, ticket and reason.
fn claims() -> Claims {
    let iat = iat();
    Claims {
        iss: "jitctl@ca.example.com".to_string(),
        sub: "alice".to_string(),
        uid: Some(1000),
        hosts: vec!["web-*".to_string(), "edge-[0-9]?".to_string()],
        jti: "01JBENCH0000000000000000000".to_string(),
        iat,
        nbf: iat,
        exp: iat + Duration::from_secs(3600),
        rule: "net-debug".to_string(),
        caps: Some(vec!["CAP_NET_ADMIN".to_string(), "net_raw".to_string()]),
        cmd: Some(CmdClaim::One("/usr/sbin/ip link **".to_string())),
        run_as: Some("root".to_string()),
        approvers: vec!["bob".to_string(), "carol".to_string()],
        ticket: Some("INC-12345".to_string()),
        reason: Some("debugging packet loss on the web tier".to_string()),
        max_uses: None,
        break_glass: false,
        sealed: false,
    }
}

fn keys(key: &SecretKey) -> KeySet {
    let mut set = KeySet::new();
    set.insert(key.public_key());
    set
}

fn ctx() -> CheckContext<'static> {
    CheckContext {
        user: "alice",
        uid: 1000,
        host: "web-042",
        now: iat() + Duration::from_secs(600),
        clock_skew: Duration::from_secs(60),
    }
}

/// Signature check and claims parse (`verify`).
#[divan::bench(max_time = 0.5)]
fn verify_grant(bencher: Bencher) {
    let key = secret();
    let keys = keys(&key);
    let token = sign(&key, TokenKind::Grant, &claims()).unwrap();
    assert_eq!(
        verify(&token, &keys, TokenKind::Grant).unwrap().claims,
        claims()
    );
    bencher.bench(|| verify(black_box(&token), black_box(&keys), TokenKind::Grant).unwrap());
}

/// The signature check alone (`verify_payload`: no claims parse).
#[divan::bench(max_time = 0.5)]
fn verify_signature_only(bencher: Bencher) {
    let key = secret();
    let keys = keys(&key);
    let token = sign(&key, TokenKind::Grant, &claims()).unwrap();
    bencher
        .bench(|| verify_payload(black_box(&token), black_box(&keys), TokenKind::Grant).unwrap());
}

/// The claims parse alone (`Claims::from_json`).
#[divan::bench(max_time = 0.5)]
fn claims_from_json(bencher: Bencher) {
    let json = serde_json::to_string(&claims()).unwrap();
    bencher.bench(|| Claims::from_json(black_box(&json)).unwrap());
}

/// The host's checks: user, uid, host globs, times.
#[divan::bench(max_time = 0.5)]
fn claims_check(bencher: Bencher) {
    let claims = claims();
    let ctx = ctx();
    claims.check(&ctx).unwrap();
    bencher.bench(|| black_box(&claims).check(black_box(&ctx)).unwrap());
}

/// The view the policy decision needs (caps, cmd pattern, run_as parsed).
#[divan::bench(max_time = 0.5)]
fn claims_view(bencher: Bencher) {
    let claims = claims();
    bencher.bench(|| black_box(&claims).view().unwrap());
}

/// Signing, for comparison (jitctl / the issuer, not the host).
#[divan::bench(max_time = 0.5)]
fn sign_grant(bencher: Bencher) {
    let key = secret();
    let claims = claims();
    bencher.bench(|| sign(black_box(&key), TokenKind::Grant, black_box(&claims)).unwrap());
}
