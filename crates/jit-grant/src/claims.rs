//! Grant claims and the checks a host makes on them.
use crate::GrantError;
use jit_policy::{valid_user_name, CapSet, CommandPattern, GrantView, RunAs};
use serde::{Deserialize, Serialize};
use std::time::Duration;
use time::format_description::well_known::Rfc3339;
use time::{OffsetDateTime, UtcOffset};

/// `cmd`: ONE command pattern in the policy's syntax (docs/tokens.md, "Claims"):
/// either the string form (`"/usr/sbin/ip link **"`, split on ASCII whitespace) or the
/// array form (`["/usr/bin/printf", "%s with spaces\n", "*"]`, one element per word, for
/// arguments that contain spaces).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum CmdClaim {
    /// The string form.
    One(String),
    /// The array form: the words of one pattern.
    Many(Vec<String>),
}

impl CmdClaim {
    /// Parse into the pattern it denotes (policy syntax).
    pub fn pattern(&self) -> Result<CommandPattern, jit_policy::PolicyError> {
        match self {
            CmdClaim::One(s) => CommandPattern::parse_str(s),
            CmdClaim::Many(words) => CommandPattern::parse_words(words),
        }
    }
}

/// The claims of a grant (docs/tokens.md, "Claims"). Times are RFC 3339 (UTC when we write them;
/// any offset accepted when reading).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    pub iss: String,
    pub sub: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uid: Option<u32>,
    pub hosts: Vec<String>,
    pub jti: String,
    #[serde(with = "rfc3339_utc")]
    pub iat: OffsetDateTime,
    #[serde(with = "rfc3339_utc")]
    pub nbf: OffsetDateTime,
    #[serde(with = "rfc3339_utc")]
    pub exp: OffsetDateTime,
    pub rule: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub caps: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cmd: Option<CmdClaim>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_as: Option<String>,
    #[serde(default)]
    pub approvers: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ticket: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_uses: Option<u32>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub break_glass: bool,
}

/// UTC, whole seconds (truncated), RFC 3339.
fn rfc3339_utc_seconds(t: OffsetDateTime) -> Result<String, time::error::Format> {
    let t = t.to_offset(UtcOffset::UTC);
    t.replace_nanosecond(0).unwrap_or(t).format(&Rfc3339)
}

/// RFC 3339 in UTC with whole seconds, as we write times: `2025-01-31T12:00:00Z`.
/// Sub-second parts are dropped (truncated), any offset is converted to UTC.
pub fn format_time(t: OffsetDateTime) -> String {
    rfc3339_utc_seconds(t).unwrap_or_else(|_| format!("{t}"))
}

/// Parse an RFC 3339 time with any offset (`Z`, `+02:00`, fractional seconds allowed).
pub fn parse_time(s: &str) -> Result<OffsetDateTime, String> {
    OffsetDateTime::parse(s, &Rfc3339).map_err(|e| {
        format!("expected an RFC 3339 time such as \"2025-01-31T12:00:00Z\", got {s:?} ({e})")
    })
}

/// serde `with` module: read RFC 3339 with any offset, write UTC whole seconds.
pub mod rfc3339_utc {
    use serde::{Deserialize, Deserializer, Serializer};
    use time::OffsetDateTime;

    pub fn serialize<S: Serializer>(t: &OffsetDateTime, s: S) -> Result<S::Ok, S::Error> {
        let text = super::rfc3339_utc_seconds(*t).map_err(serde::ser::Error::custom)?;
        s.serialize_str(&text)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<OffsetDateTime, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        super::parse_time(&text).map_err(serde::de::Error::custom)
    }
}

/// Stands for the grant id in messages about a token whose `jti` cannot be read.
pub const UNKNOWN_JTI: &str = "(without id)";

type ClaimCheck = fn(&serde_json::Value) -> Result<(), serde_json::Error>;

fn is<T: serde::de::DeserializeOwned>(v: &serde_json::Value) -> Result<(), serde_json::Error> {
    T::deserialize(v).map(drop)
}

fn is_time(v: &serde_json::Value) -> Result<(), serde_json::Error> {
    rfc3339_utc::deserialize(v).map(drop)
}

/// Every claim we read: name, required, type check.
const CLAIM_TYPES: &[(&str, bool, ClaimCheck)] = &[
    ("jti", true, is::<String>),
    ("iss", true, is::<String>),
    ("sub", true, is::<String>),
    ("uid", false, is::<Option<u32>>),
    ("hosts", true, is::<Vec<String>>),
    ("iat", true, is_time),
    ("nbf", true, is_time),
    ("exp", true, is_time),
    ("rule", true, is::<String>),
    ("caps", false, is::<Option<Vec<String>>>),
    ("cmd", false, is::<Option<CmdClaim>>),
    ("run_as", false, is::<Option<String>>),
    ("approvers", false, is::<Vec<String>>),
    ("ticket", false, is::<Option<String>>),
    ("reason", false, is::<Option<String>>),
    ("max_uses", false, is::<Option<u32>>),
    ("break_glass", false, is::<bool>),
];

/// What the host knows when it checks a grant.
#[derive(Debug, Clone)]
pub struct CheckContext<'a> {
    pub user: &'a str,
    pub uid: u32,
    pub host: &'a str,
    pub now: OffsetDateTime,
    /// Tolerance for `iat`/`nbf` in the future. `exp` is strict.
    pub clock_skew: Duration,
}

/// `later - earlier` as a std Duration, zero when `later` is not after `earlier`.
fn positive_gap(later: OffsetDateTime, earlier: OffsetDateTime) -> Duration {
    Duration::try_from(later - earlier).unwrap_or(Duration::ZERO)
}

impl Claims {
    fn claim_error(&self, claim: &'static str, message: impl Into<String>) -> GrantError {
        GrantError::Claim {
            jti: self.jti.clone(),
            claim,
            message: message.into(),
        }
    }

    /// `sub` = user (WrongUser), `uid` if present = uid (WrongUid), some `hosts` glob matches host
    /// (jit_policy::glob) (WrongHost), `nbf - skew <= now` and `iat - skew <= now` (NotYetValid),
    /// `now < exp` (Expired, with a human "3m" ago), `exp > iat` (Claim).
    ///
    /// The self-consistency of the claims (`jti` non-empty, `exp > iat`, `exp > nbf`) is
    /// checked first: a malformed grant is reported as such whoever presents it.
    pub fn check(&self, ctx: &CheckContext<'_>) -> Result<(), GrantError> {
        if self.jti.trim().is_empty() {
            return Err(self.claim_error(
                "jti",
                "the grant id is empty; the issuer is broken, ask your admin",
            ));
        }
        if self.exp <= self.iat {
            return Err(self.claim_error(
                "exp",
                format!(
                    "expiry {} is not after issue time {} (iat); this grant can never be valid, request a new one",
                    format_time(self.exp),
                    format_time(self.iat)
                ),
            ));
        }
        if self.exp <= self.nbf {
            return Err(self.claim_error(
                "exp",
                format!(
                    "expiry {} is not after the start {} (nbf); this grant can never be valid, request a new one",
                    format_time(self.exp),
                    format_time(self.nbf)
                ),
            ));
        }
        if self.sub != ctx.user {
            return Err(GrantError::WrongUser {
                jti: self.jti.clone(),
                sub: self.sub.clone(),
                user: ctx.user.to_string(),
                rule: self.rule.clone(),
            });
        }
        if let Some(expected) = self.uid {
            if expected != ctx.uid {
                return Err(GrantError::WrongUid {
                    jti: self.jti.clone(),
                    expected,
                    actual: ctx.uid,
                });
            }
        }
        let host = ctx.host.as_bytes();
        if !self
            .hosts
            .iter()
            .any(|pattern| jit_policy::glob::glob_match(pattern.as_bytes(), host))
        {
            return Err(GrantError::WrongHost {
                jti: self.jti.clone(),
                hosts: self.hosts.clone(),
                host: ctx.host.to_string(),
            });
        }
        let skew = time::Duration::try_from(ctx.clock_skew).unwrap_or(time::Duration::MAX);
        let start = self.nbf.max(self.iat);
        let latest_now = ctx.now.checked_add(skew).unwrap_or(ctx.now);
        if start > latest_now {
            return Err(GrantError::NotYetValid {
                jti: self.jti.clone(),
                nbf: format_time(start),
                wait: jit_policy::format_duration(positive_gap(start, ctx.now)),
            });
        }
        if ctx.now >= self.exp {
            return Err(GrantError::Expired {
                jti: self.jti.clone(),
                rule: self.rule.clone(),
                exp: format_time(self.exp),
                ago: jit_policy::format_duration(positive_gap(ctx.now, self.exp)),
            });
        }
        Ok(())
    }

    /// The view jit-policy's decision needs (parses caps with CapSet::parse_list, cmd with
    /// CommandPattern::parse_str, run_as "invoker"/"root"/name). Errors are Claim errors naming the claim.
    ///
    /// `cmd` in its array form is one pattern given word by word (CommandPattern::parse_words).
    pub fn view(&self) -> Result<GrantView, GrantError> {
        let caps = match &self.caps {
            None => None,
            Some(names) => Some(CapSet::parse_list(names).map_err(|e| {
                self.claim_error(
                    "caps",
                    format!("{e}; this grant cannot be used, request a new one with valid capability names"),
                )
            })?),
        };
        let cmd = match &self.cmd {
            None => None,
            Some(claim) => Some(vec![claim.pattern().map_err(|e| {
                self.claim_error("cmd", format!("{e}; this grant cannot be used, request a new one with a valid command pattern"))
            })?]),
        };
        let run_as = match self.run_as.as_deref() {
            None => None,
            Some("invoker") => Some(RunAs::Invoker),
            Some("root") => Some(RunAs::Root),
            Some(name) if valid_user_name(name) => Some(RunAs::User(name.to_string())),
            Some(name) => {
                return Err(self.claim_error(
                    "run_as",
                    format!("{name:?} is not \"invoker\", \"root\" or a valid user name; this grant cannot be used, request a new one"),
                ))
            }
        };
        Ok(GrantView {
            id: self.jti.clone(),
            rule: self.rule.clone(),
            caps,
            cmd,
            run_as,
            lifetime: positive_gap(self.exp, self.iat),
            approvers: self.approvers.clone(),
            subject: self.sub.clone(),
            break_glass: self.break_glass,
        })
    }

    /// Parse the claims JSON of a token: tolerant of key order and whitespace, unknown
    /// claims ignored; a missing claim or one of the wrong type is a Claim error naming it.
    ///
    /// A claim we read that appears twice is refused: parsers that keep the first and
    /// parsers that keep the last would disagree about what was granted.
    pub fn from_json(payload: &str) -> Result<Claims, GrantError> {
        // Parsed straight from the text (not via a map), so duplicate claims are errors.
        let direct_error = match serde_json::from_str::<Claims>(payload) {
            Ok(claims) => return Ok(claims),
            Err(e) => e,
        };
        // Diagnose, to name the claim at fault.
        let value: serde_json::Value =
            serde_json::from_str(payload).map_err(|e| GrantError::Claim {
                jti: UNKNOWN_JTI.to_string(),
                claim: "payload",
                message: format!(
                    "the claims are not valid JSON ({e}); the token is not a jitrun grant"
                ),
            })?;
        let serde_json::Value::Object(map) = &value else {
            return Err(GrantError::Claim {
                jti: UNKNOWN_JTI.to_string(),
                claim: "payload",
                message: "the claims are not a JSON object; the token is not a jitrun grant".into(),
            });
        };
        let jti = match map.get("jti") {
            Some(serde_json::Value::String(s)) => s.clone(),
            _ => UNKNOWN_JTI.to_string(),
        };
        // Find the first claim that is missing or of the wrong type, to name it.
        for &(claim, required, check) in CLAIM_TYPES {
            match map.get(claim) {
                None if required => {
                    return Err(GrantError::Claim {
                        jti,
                        claim,
                        message: "missing; the token is not a jitrun grant (or was minted by an incompatible issuer)".into(),
                    })
                }
                None => {}
                Some(v) => {
                    if let Err(e) = check(v) {
                        return Err(GrantError::Claim {
                            jti,
                            claim,
                            message: format!("{e}; the issuer wrote an invalid grant, request a new one"),
                        });
                    }
                }
            }
        }
        Err(GrantError::Claim {
            jti,
            claim: "payload",
            message: format!(
                "{direct_error}; the issuer wrote an invalid grant, request a new one"
            ),
        })
    }

    /// Time left at `now` (zero if past).
    pub fn remaining(&self, now: OffsetDateTime) -> Duration {
        positive_gap(self.exp, now)
    }
}
