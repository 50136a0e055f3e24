//! Attestations (`jitrun:attest:v1`, docs/broker.md): "uid N = alice, groups …, on host H,
//! asks for METHOD PATH with a body hashing to …", signed by the host key. `jitrun attest`
//! writes them; the broker verifies and checks them. Hashing happens in the callers (this
//! crate has no hash dependency): they hand over the lowercase hex SHA-256 of the body.
use crate::claims::{format_time, rfc3339_utc};
use crate::token::{sign_payload, verify_payload, TokenKind};
use crate::{GrantError, KeySet, SecretKey};
use serde::{Deserialize, Serialize};
use std::time::Duration;
use time::OffsetDateTime;

/// The payload version we write and accept.
pub const ATTESTATION_VERSION: u32 = 1;
/// Lifetime `jitrun attest` gives an attestation (`exp = iat + 60s`).
pub const ATTESTATION_LIFETIME: Duration = Duration::from_secs(60);
/// Longest lifetime (`exp - iat`) the broker accepts.
pub const MAX_ATTESTATION_LIFETIME: Duration = Duration::from_secs(300);
/// Clock skew the broker tolerates on `iat`.
pub const ATTESTATION_SKEW: Duration = Duration::from_secs(60);
/// The SHA-256 of the empty body (what GET requests are bound to).
pub const EMPTY_BODY_SHA256: &str =
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

/// What kind of problem an attestation has; the broker turns it into an error code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttestFault {
    /// Malformed or inconsistent payload (bad version, jti, hash format, exp ≤ iat).
    Invalid,
    /// `now ≥ exp`.
    Expired,
    /// `iat` further in the future than the skew allows.
    NotYetValid,
    /// `exp - iat` longer than accepted.
    TooLong,
    /// Made for another method, path, body or host than the request it came with.
    Mismatch,
}

impl AttestFault {
    /// Stable snake_case code (used in the broker's JSON errors).
    pub fn code(self) -> &'static str {
        match self {
            AttestFault::Invalid => "attestation_invalid",
            AttestFault::Expired => "attestation_expired",
            AttestFault::NotYetValid => "attestation_not_yet_valid",
            AttestFault::TooLong => "attestation_too_long",
            AttestFault::Mismatch => "attestation_mismatch",
        }
    }
}

/// The attestation payload (all fields required; unknown fields are ignored).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attestation {
    pub v: u32,
    /// The caller's user name (from passwd, by real uid).
    pub sub: String,
    pub uid: u32,
    /// Names of the caller's primary and supplementary groups, sorted, unique.
    pub groups: Vec<String>,
    pub host: String,
    #[serde(with = "rfc3339_utc")]
    pub iat: OffsetDateTime,
    #[serde(with = "rfc3339_utc")]
    pub exp: OffsetDateTime,
    /// 128 random bits, 32 lowercase hex.
    pub jti: String,
    /// HTTP method, upper case.
    pub method: String,
    /// Request path without query string.
    pub path: String,
    /// Lowercase hex SHA-256 of the exact body bytes.
    pub body_sha256: String,
}

/// What the verifier knows about the request the attestation came with.
#[derive(Debug, Clone)]
pub struct AttestCheck<'a> {
    pub now: OffsetDateTime,
    /// Tolerance for `iat` in the future; `exp` is strict.
    pub clock_skew: Duration,
    /// Longest accepted `exp - iat`.
    pub max_lifetime: Duration,
    pub method: &'a str,
    pub path: &'a str,
    /// Lowercase hex SHA-256 of the received body.
    pub body_sha256: &'a str,
    /// The name the signing key is enrolled under.
    pub host: &'a str,
}

/// A verified attestation with the kid of the host key that signed it.
#[derive(Debug, Clone)]
pub struct VerifiedAttestation {
    pub attestation: Attestation,
    pub kid: String,
    /// The payload exactly as signed.
    pub payload: String,
}

/// `s` is exactly `len` lowercase hex digits.
pub fn is_lower_hex(s: &str, len: usize) -> bool {
    s.len() == len && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

fn gap(later: OffsetDateTime, earlier: OffsetDateTime) -> Duration {
    Duration::try_from(later - earlier).unwrap_or(Duration::ZERO)
}

impl Attestation {
    fn fault(&self, fault: AttestFault, field: &'static str, message: String) -> GrantError {
        GrantError::Attestation {
            jti: self.jti.clone(),
            fault,
            field,
            message,
        }
    }

    /// Parse a payload: tolerant of key order, whitespace and unknown fields; a missing
    /// field, a wrong type or a duplicate field is an error naming what is wrong.
    pub fn from_json(payload: &str) -> Result<Attestation, GrantError> {
        serde_json::from_str(payload).map_err(|e| {
            let jti = serde_json::from_str::<serde_json::Value>(payload)
                .ok()
                .and_then(|v| v.get("jti").and_then(|j| j.as_str()).map(str::to_string))
                .unwrap_or_else(|| crate::UNKNOWN_JTI.to_string());
            GrantError::Attestation {
                jti,
                fault: AttestFault::Invalid,
                field: "payload",
                message: format!("{e}; it was not made by a compatible `jitrun attest`"),
            }
        })
    }

    /// The payload as we write it (compact JSON, times UTC whole seconds).
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("an attestation always serializes")
    }

    /// Sign with the host key as a `jitrun:attest:v1` token.
    pub fn sign(&self, key: &SecretKey) -> Result<String, GrantError> {
        sign_payload(key, TokenKind::Attestation, self.to_json().as_bytes())
    }

    /// Verify the signature (kid must be in `keys`, the enrolled host keys) and parse the
    /// payload. The claims are NOT checked yet: call [`Attestation::check`].
    pub fn verify(token: &str, keys: &KeySet) -> Result<VerifiedAttestation, GrantError> {
        let verified = verify_payload(token, keys, TokenKind::Attestation)?;
        let attestation = Attestation::from_json(&verified.payload)?;
        Ok(VerifiedAttestation {
            attestation,
            kid: verified.kid,
            payload: verified.payload,
        })
    }

    /// Self-consistency first (v, jti, sub, hash format, exp > iat, lifetime), then time
    /// (`iat - skew ≤ now < exp`), then the binding to the request (host, method, path,
    /// body hash). Each failure names the field.
    pub fn check(&self, ctx: &AttestCheck<'_>) -> Result<(), GrantError> {
        use AttestFault::*;
        if self.v != ATTESTATION_VERSION {
            return Err(self.fault(
                Invalid,
                "v",
                format!(
                    "version {} is not the supported {ATTESTATION_VERSION}; update jitrun on the host",
                    self.v
                ),
            ));
        }
        if !is_lower_hex(&self.jti, 32) {
            return Err(self.fault(
                Invalid,
                "jti",
                "not 32 lowercase hex digits; it was not made by a compatible `jitrun attest`"
                    .into(),
            ));
        }
        if self.sub.is_empty() {
            return Err(self.fault(Invalid, "sub", "the user name is empty".into()));
        }
        if !is_lower_hex(&self.body_sha256, 64) {
            return Err(self.fault(
                Invalid,
                "body_sha256",
                "not 64 lowercase hex digits (a SHA-256)".into(),
            ));
        }
        if self.exp <= self.iat {
            return Err(self.fault(
                Invalid,
                "exp",
                format!(
                    "expiry {} is not after the issue time {}",
                    format_time(self.exp),
                    format_time(self.iat)
                ),
            ));
        }
        let lifetime = gap(self.exp, self.iat);
        if lifetime > ctx.max_lifetime {
            return Err(self.fault(
                TooLong,
                "exp",
                format!(
                    "valid for {}, longer than the {} accepted",
                    jit_policy::format_duration(lifetime),
                    jit_policy::format_duration(ctx.max_lifetime)
                ),
            ));
        }
        let skew = time::Duration::try_from(ctx.clock_skew).unwrap_or(time::Duration::MAX);
        if self.iat > ctx.now.checked_add(skew).unwrap_or(ctx.now) {
            return Err(self.fault(
                NotYetValid,
                "iat",
                format!(
                    "issued at {}, {} ahead of this clock; check the clocks (NTP) of the host and the broker",
                    format_time(self.iat),
                    jit_policy::format_duration(gap(self.iat, ctx.now))
                ),
            ));
        }
        if ctx.now >= self.exp {
            return Err(self.fault(
                Expired,
                "exp",
                format!(
                    "expired {} ago (at {}); attestations live {}s, make a new one (run the command again)",
                    jit_policy::format_duration(gap(ctx.now, self.exp)),
                    format_time(self.exp),
                    ATTESTATION_LIFETIME.as_secs()
                ),
            ));
        }
        let bindings: [(&'static str, &str, &str); 4] = [
            ("host", &self.host, ctx.host),
            ("method", &self.method, ctx.method),
            ("path", &self.path, ctx.path),
            ("body_sha256", &self.body_sha256, ctx.body_sha256),
        ];
        for (field, attested, actual) in bindings {
            if attested != actual {
                let message = if field == "host" {
                    format!("the attestation says host {attested:?}, but its key is enrolled for host {actual:?}; set the host name in /etc/jitrun/jitrun.toml or re-enroll the host")
                } else {
                    format!("made for {attested:?}, but the request has {actual:?}; an attestation is good for one request only")
                };
                return Err(self.fault(Mismatch, field, message));
            }
        }
        Ok(())
    }

    /// Time left at `now` (zero if past): how long the broker must remember the jti.
    pub fn remaining(&self, now: OffsetDateTime) -> Duration {
        gap(self.exp, now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t0() -> OffsetDateTime {
        OffsetDateTime::from_unix_timestamp(1_750_000_000).unwrap()
    }

    const BODY: &str = "0b2f3c4d5e6f708192a3b4c5d6e7f8090a1b2c3d4e5f60718293a4b5c6d7e8f9";

    fn att() -> Attestation {
        Attestation {
            v: 1,
            sub: "alice".into(),
            uid: 1000,
            groups: vec!["alice".into(), "netops".into()],
            host: "web-3".into(),
            iat: t0(),
            exp: t0() + time::Duration::seconds(60),
            jti: "0123456789abcdef0123456789abcdef".into(),
            method: "POST".into(),
            path: "/v1/requests".into(),
            body_sha256: BODY.into(),
        }
    }

    fn ctx(now: OffsetDateTime) -> AttestCheck<'static> {
        AttestCheck {
            now,
            clock_skew: ATTESTATION_SKEW,
            max_lifetime: MAX_ATTESTATION_LIFETIME,
            method: "POST",
            path: "/v1/requests",
            body_sha256: BODY,
            host: "web-3",
        }
    }

    fn fault_of(r: Result<(), GrantError>) -> (AttestFault, &'static str, String) {
        match r {
            Err(e @ GrantError::Attestation { .. }) => {
                let text = e.to_string();
                let GrantError::Attestation { fault, field, .. } = e else {
                    unreachable!()
                };
                (fault, field, text)
            }
            other => panic!("expected an attestation error, got {other:?}"),
        }
    }

    #[test]
    fn round_trip_sign_verify_check() {
        let key = SecretKey::generate().unwrap();
        let mut keys = KeySet::new();
        keys.insert(key.public_key());
        let token = att().sign(&key).unwrap();
        let v = Attestation::verify(&token, &keys).unwrap();
        assert_eq!(v.attestation, att());
        assert_eq!(v.kid, key.public_key().kid());
        v.attestation
            .check(&ctx(t0() + time::Duration::seconds(10)))
            .unwrap();
        // Not a grant, nor a revocation list.
        assert!(matches!(
            crate::verify_payload(&token, &keys, TokenKind::Grant),
            Err(GrantError::BadSignature { .. })
        ));
        // A grant-kind token with the same payload is not an attestation.
        let grant_kind = sign_payload(&key, TokenKind::Grant, att().to_json().as_bytes()).unwrap();
        assert!(matches!(
            Attestation::verify(&grant_kind, &keys),
            Err(GrantError::BadSignature { .. })
        ));
    }

    #[test]
    fn payload_as_written() {
        let json: serde_json::Value = serde_json::from_str(&att().to_json()).unwrap();
        assert_eq!(json["iat"], "2025-06-15T15:06:40Z");
        assert_eq!(json["exp"], "2025-06-15T15:07:40Z");
        assert_eq!(json["v"], 1);
        assert_eq!(json.as_object().unwrap().len(), 11);
    }

    #[test]
    fn parsing_is_tolerant_but_complete() {
        let spaced = r#"{ "body_sha256": "0b2f3c4d5e6f708192a3b4c5d6e7f8090a1b2c3d4e5f60718293a4b5c6d7e8f9",
          "path": "/v1/requests", "method": "POST", "jti": "0123456789abcdef0123456789abcdef",
          "exp": "2025-06-15T17:07:40+02:00", "iat": "2025-06-15T15:06:40Z", "host": "web-3",
          "groups": ["alice", "netops"], "uid": 1000, "sub": "alice", "v": 1, "extra": true }"#;
        assert_eq!(Attestation::from_json(spaced).unwrap(), att());
        let mut missing: serde_json::Value = serde_json::from_str(&att().to_json()).unwrap();
        missing.as_object_mut().unwrap().remove("body_sha256");
        let e = Attestation::from_json(&missing.to_string()).unwrap_err();
        assert!(e.to_string().contains("body_sha256"), "{e}");
        assert!(e.to_string().contains("0123456789abcdef"), "{e}");
        let dup = att().to_json().replacen("{", r#"{"sub":"root","#, 1);
        let e = Attestation::from_json(&dup).unwrap_err();
        assert!(e.to_string().contains("duplicate field"), "{e}");
        let wrong = att().to_json().replace("\"uid\":1000", "\"uid\":\"1000\"");
        assert!(Attestation::from_json(&wrong).is_err());
    }

    #[test]
    fn time_checks() {
        let a = att();
        // Up to the skew in the future is fine; beyond it is not.
        a.check(&ctx(t0() - time::Duration::seconds(60))).unwrap();
        let (f, field, text) = fault_of(a.check(&ctx(t0() - time::Duration::seconds(61))));
        assert_eq!((f, field), (AttestFault::NotYetValid, "iat"));
        assert!(text.contains("1s ahead"), "{text}");
        // exp is strict.
        a.check(&ctx(t0() + time::Duration::seconds(59))).unwrap();
        let (f, field, text) = fault_of(a.check(&ctx(t0() + time::Duration::seconds(60))));
        assert_eq!((f, field), (AttestFault::Expired, "exp"));
        assert!(text.contains("expired 0s ago"), "{text}");
        // Lifetime.
        let mut long = att();
        long.exp = t0() + time::Duration::seconds(301);
        let (f, field, _) = fault_of(long.check(&ctx(t0())));
        assert_eq!((f, field), (AttestFault::TooLong, "exp"));
        long.exp = t0() + time::Duration::seconds(300);
        long.check(&ctx(t0())).unwrap();
        let mut backwards = att();
        backwards.exp = t0();
        assert_eq!(
            fault_of(backwards.check(&ctx(t0()))).0,
            AttestFault::Invalid
        );
    }

    #[test]
    fn binding_checks_name_the_field() {
        let a = att();
        let now = t0();
        for (field, c) in [
            (
                "host",
                AttestCheck {
                    host: "web-4",
                    ..ctx(now)
                },
            ),
            (
                "method",
                AttestCheck {
                    method: "GET",
                    ..ctx(now)
                },
            ),
            (
                "path",
                AttestCheck {
                    path: "/v1/requests/01J/approve",
                    ..ctx(now)
                },
            ),
            (
                "body_sha256",
                AttestCheck {
                    body_sha256: EMPTY_BODY_SHA256,
                    ..ctx(now)
                },
            ),
        ] {
            let (f, got, text) = fault_of(a.check(&c));
            assert_eq!((f, got), (AttestFault::Mismatch, field));
            assert!(text.contains(field), "{text}");
        }
    }

    #[test]
    fn malformed_fields() {
        let now = t0();
        type Change = fn(&mut Attestation);
        let cases: [(&str, Change); 4] = [
            ("v", |a| a.v = 2),
            ("jti", |a| a.jti = "0123456789ABCDEF0123456789ABCDEF".into()),
            ("sub", |a| a.sub.clear()),
            ("body_sha256", |a| a.body_sha256 = "abc".into()),
        ];
        for (field, change) in cases {
            let mut a = att();
            change(&mut a);
            let (f, got, _) = fault_of(a.check(&ctx(now)));
            assert_eq!((f, got), (AttestFault::Invalid, field));
        }
        att().check(&ctx(now)).unwrap();
    }
}
