//! Grant claims and the checks a host makes on them.
use crate::GrantError;
use serde::{Deserialize, Serialize};
use std::time::Duration;
use time::OffsetDateTime;

/// `cmd`: one pattern string or an array of pattern strings (policy syntax).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum CmdClaim {
    One(String),
    Many(Vec<String>),
}

/// The claims of a grant (DESIGN.md table). Times are RFC 3339 (UTC when we write them;
/// any offset accepted when reading).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    pub iss: String,
    pub sub: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uid: Option<u32>,
    pub hosts: Vec<String>,
    pub jti: String,
    #[serde(with = "time::serde::rfc3339")]
    pub iat: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub nbf: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
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

impl Claims {
    /// `sub` = user (WrongUser), `uid` if present = uid (WrongUid), some `hosts` glob matches host
    /// (jit_policy::glob) (WrongHost), `nbf - skew <= now` and `iat - skew <= now` (NotYetValid),
    /// `now < exp` (Expired, with a human "3m" ago), `exp > iat` (Claim).
    pub fn check(&self, ctx: &CheckContext<'_>) -> Result<(), GrantError> { todo!() }

    /// The view jit-policy's decision needs (parses caps with CapSet::parse_list, cmd with
    /// CommandPattern::parse_str, run_as "invoker"/"root"/name). Errors are Claim errors naming the claim.
    pub fn view(&self) -> Result<jit_policy::GrantView, GrantError> { todo!() }

    /// Time left at `now` (zero if past).
    pub fn remaining(&self, now: OffsetDateTime) -> Duration { todo!() }
}
