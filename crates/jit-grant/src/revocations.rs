//! Revocation lists (`jitrun:revocations:v1`, docs/broker.md): signed by the broker's
//! signing key (the one that signs grants), with their own issue time and a sequence
//! number that increases with every change. Entries stay until their grant's `exp`.
use crate::claims::{format_time, rfc3339_utc};
use crate::token::{sign_payload, verify_payload, TokenKind};
use crate::{GrantError, KeySet, SecretKey};
use serde::{Deserialize, Serialize};
use std::time::Duration;
use time::OffsetDateTime;

/// One revoked grant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Revoked {
    /// The grant's id.
    pub jti: String,
    /// The grant's own expiry: after it the entry may leave the list.
    #[serde(with = "rfc3339_utc")]
    pub exp: OffsetDateTime,
    /// When it was revoked.
    #[serde(with = "rfc3339_utc")]
    pub at: OffsetDateTime,
    pub reason: String,
}

/// The revocation list payload.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RevocationList {
    /// The broker id.
    pub iss: String,
    #[serde(with = "rfc3339_utc")]
    pub iat: OffsetDateTime,
    pub seq: u64,
    pub revoked: Vec<Revoked>,
}

/// A verified revocation list with the kid of the key that signed it.
#[derive(Debug, Clone)]
pub struct VerifiedRevocations {
    pub list: RevocationList,
    pub kid: String,
    /// The payload exactly as signed.
    pub payload: String,
}

impl RevocationList {
    /// Parse a payload: tolerant of key order, whitespace and unknown fields; a missing
    /// field, a wrong type or a duplicate field is an error.
    pub fn from_json(payload: &str) -> Result<RevocationList, GrantError> {
        serde_json::from_str(payload).map_err(|e| GrantError::Revocations {
            field: "payload",
            message: format!("{e}; it was not written by a compatible jitbroker"),
        })
    }

    /// The payload as we write it (compact JSON, times UTC whole seconds).
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("a revocation list always serializes")
    }

    /// Sign with the broker's key as a `jitrun:revocations:v1` token.
    pub fn sign(&self, key: &SecretKey) -> Result<String, GrantError> {
        sign_payload(key, TokenKind::Revocations, self.to_json().as_bytes())
    }

    /// Verify with the trusted broker keys (`/etc/jitrun/keys.d/`) and parse.
    pub fn verify(token: &str, keys: &KeySet) -> Result<VerifiedRevocations, GrantError> {
        let verified = verify_payload(token, keys, TokenKind::Revocations)?;
        let list = RevocationList::from_json(&verified.payload)?;
        Ok(VerifiedRevocations {
            list,
            kid: verified.kid,
            payload: verified.payload,
        })
    }

    /// The entry for grant `jti`, if it is revoked.
    pub fn find(&self, jti: &str) -> Option<&Revoked> {
        self.revoked.iter().find(|r| r.jti == jti)
    }

    /// Is grant `jti` on the list?
    pub fn contains(&self, jti: &str) -> bool {
        self.find(jti).is_some()
    }

    /// How old the list is at `now` (zero if issued in the future).
    pub fn age(&self, now: OffsetDateTime) -> Duration {
        Duration::try_from(now - self.iat).unwrap_or(Duration::ZERO)
    }

    /// Was it issued more than `max_age` before `now`?
    pub fn is_older_than(&self, now: OffsetDateTime, max_age: Duration) -> bool {
        self.age(now) > max_age
    }

    /// An error saying the list is too old, for callers that refuse stale lists.
    pub fn stale_error(&self, now: OffsetDateTime, max_age: Duration) -> GrantError {
        GrantError::Revocations {
            field: "iat",
            message: format!(
                "list {} from {} was issued at {}, {} ago, older than revocations.max_age {}; run `jitctl revocations sync` (as root) or check its timer",
                self.seq,
                self.iss,
                format_time(self.iat),
                jit_policy::format_duration(self.age(now)),
                jit_policy::format_duration(max_age)
            ),
        }
    }

    /// Drop the entries whose grant has expired at `now` (they can no longer be used).
    pub fn prune(&mut self, now: OffsetDateTime) {
        self.revoked.retain(|r| r.exp > now);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t0() -> OffsetDateTime {
        OffsetDateTime::from_unix_timestamp(1_750_000_000).unwrap()
    }

    fn list() -> RevocationList {
        RevocationList {
            iss: "broker-1".into(),
            iat: t0(),
            seq: 42,
            revoked: vec![
                Revoked {
                    jti: "01JA0000000000000000000000".into(),
                    exp: t0() + time::Duration::minutes(30),
                    at: t0() - time::Duration::minutes(1),
                    reason: "left the team".into(),
                },
                Revoked {
                    jti: "01JB0000000000000000000000".into(),
                    exp: t0() + time::Duration::minutes(90),
                    at: t0(),
                    reason: "incident over".into(),
                },
            ],
        }
    }

    #[test]
    fn round_trip_and_kind() {
        let key = SecretKey::generate().unwrap();
        let mut keys = KeySet::new();
        keys.insert(key.public_key());
        let token = list().sign(&key).unwrap();
        let v = RevocationList::verify(&token, &keys).unwrap();
        assert_eq!(v.list, list());
        assert_eq!(v.kid, key.public_key().kid());
        assert!(matches!(
            crate::verify_payload(&token, &keys, TokenKind::Grant),
            Err(GrantError::BadSignature { .. })
        ));
        let as_attestation =
            sign_payload(&key, TokenKind::Attestation, list().to_json().as_bytes()).unwrap();
        assert!(matches!(
            RevocationList::verify(&as_attestation, &keys),
            Err(GrantError::BadSignature { .. })
        ));
        let other = SecretKey::generate().unwrap();
        assert!(matches!(
            RevocationList::verify(&list().sign(&other).unwrap(), &keys),
            Err(GrantError::UnknownKey { .. })
        ));
    }

    #[test]
    fn payload_as_documented() {
        let json: serde_json::Value = serde_json::from_str(&list().to_json()).unwrap();
        assert_eq!(json["iat"], "2025-06-15T15:06:40Z");
        assert_eq!(json["seq"], 42);
        assert_eq!(json["revoked"][0]["exp"], "2025-06-15T15:36:40Z");
        assert_eq!(json["revoked"][0]["at"], "2025-06-15T15:05:40Z");
        assert_eq!(json["revoked"][1]["reason"], "incident over");
        let spaced =
            r#"{"revoked": [], "seq": 1, "iat": "2025-06-15T17:06:40+02:00", "iss": "b", "x": 0}"#;
        let parsed = RevocationList::from_json(spaced).unwrap();
        assert_eq!((parsed.iat, parsed.seq), (t0(), 1));
        let e =
            RevocationList::from_json(r#"{"iss":"b","iat":"2025-06-15T15:06:40Z","revoked":[]}"#)
                .unwrap_err();
        assert!(e.to_string().contains("seq"), "{e}");
        let e = RevocationList::from_json(
            r#"{"iss":"b","iat":"2025-06-15T15:06:40Z","seq":-1,"revoked":[]}"#,
        )
        .unwrap_err();
        assert!(e.to_string().contains("revocation list"), "{e}");
    }

    #[test]
    fn contains_and_find() {
        let l = list();
        assert!(l.contains("01JA0000000000000000000000"));
        assert!(l.contains("01JB0000000000000000000000"));
        assert!(!l.contains("01JC0000000000000000000000"));
        assert!(!l.contains(""));
        assert_eq!(
            l.find("01JB0000000000000000000000").unwrap().reason,
            "incident over"
        );
    }

    #[test]
    fn age_and_staleness() {
        let l = list();
        let max = Duration::from_secs(600);
        assert!(!l.is_older_than(t0() + time::Duration::seconds(600), max));
        assert!(l.is_older_than(t0() + time::Duration::seconds(601), max));
        assert!(!l.is_older_than(t0() - time::Duration::seconds(5), max));
        assert_eq!(l.age(t0() - time::Duration::seconds(5)), Duration::ZERO);
        let text = l
            .stale_error(t0() + time::Duration::seconds(3600), max)
            .to_string();
        assert!(text.contains("1h ago") && text.contains("10m"), "{text}");
    }

    #[test]
    fn prune_drops_expired_grants_only() {
        let mut l = list();
        l.prune(t0() + time::Duration::minutes(30));
        assert!(!l.contains("01JA0000000000000000000000"));
        assert!(l.contains("01JB0000000000000000000000"));
        l.prune(t0() + time::Duration::minutes(91));
        assert!(l.revoked.is_empty());
    }
}
