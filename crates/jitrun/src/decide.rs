//! Step 6: verify the grant (signature, then every claim), then policy ∩ grant.
//!
//! Without `--grant`, standing access (`grant = "none"`) is tried first, then each file of
//! the user's grant store in name order; the first that authorises the command wins.

use crate::cli::{GrantSource, RunArgs};
use crate::command::Located;
use crate::identity::Invoker;
use crate::refusal::Refusal;
use crate::revocations::{self, ListState};
use crate::user_files;
use crate::uses;
use jit_grant::{CheckContext, Claims, GrantError, KeySet, TokenKind};
use jit_policy::{CapSet, Decision, Policy, Request, Rule, RunAs, Settings};
use std::ffi::{OsStr, OsString};
use time::OffsetDateTime;

/// A grant that was verified and used.
#[derive(Debug, Clone)]
pub struct UsedGrant {
    pub claims: Claims,
    pub kid: String,
}

/// What may run.
#[derive(Debug)]
pub struct Approved<'p> {
    pub rule: &'p Rule,
    /// The path the rule matched (the canonical one, or the one as found): the command's
    /// argv[0], so that a multi-call program (pgrep/pkill, busybox) acts as what was allowed.
    pub matched: std::path::PathBuf,
    pub caps: CapSet,
    pub run_as: RunAs,
    pub grant: Option<UsedGrant>,
}

impl Approved<'_> {
    /// When a command started at `start` must end (None: standing access, no end): the
    /// grant's `exp`; for a sealed grant, at the latest `start` + the rule's `max_duration`.
    pub fn ends_at(&self, start: OffsetDateTime) -> Option<OffsetDateTime> {
        let g = self.grant.as_ref()?;
        Some(g.claims.run_ends(start, self.rule.max_duration))
    }
}

/// What the person is told when the grant's time ended their command (`ended`: when it did).
pub fn expiry_message(g: &UsedGrant, ended: OffsetDateTime) -> String {
    let (jti, rule) = (&g.claims.jti, &g.claims.rule);
    if ended < g.claims.exp {
        return format!(
            "sealed grant {jti} runs a command for at most rule {rule}'s max_duration, which ended at {}; the command was ended. The grant is used up on this host",
            jit_grant::format_time(ended)
        );
    }
    format!(
        "grant {jti} expired at {}; the command was ended. Request a new grant: jitctl request {rule}",
        jit_grant::format_time(g.claims.exp)
    )
}

pub struct Inputs<'a> {
    pub policy: &'a Policy,
    /// The token `--grant` names, as [`read_grant`] read it (None without `--grant`).
    pub token: Option<&'a Result<String, Refusal>>,
    pub keys: &'a KeySet,
    pub settings: &'a Settings,
    pub invoker: &'a Invoker,
    pub host: &'a str,
    pub program: &'a Located,
    pub run: &'a RunArgs,
    /// `/var/lib/jitrun/revocations`, read once per run.
    pub revocations: &'a ListState,
    pub now: OffsetDateTime,
}

pub fn grant_code(e: &GrantError) -> &'static str {
    match e {
        GrantError::Malformed(_) | GrantError::Footer(_) => "grant_malformed",
        GrantError::UnknownKey { .. } => "grant_unknown_key",
        GrantError::BadSignature { .. } => "grant_bad_signature",
        GrantError::Expired { .. } => "grant_expired",
        GrantError::NotYetValid { .. } => "grant_not_yet_valid",
        GrantError::WrongUser { .. } => "grant_wrong_user",
        GrantError::WrongUid { .. } => "grant_wrong_uid",
        GrantError::WrongHost { .. } => "grant_wrong_host",
        GrantError::Claim { .. }
        | GrantError::Key(_)
        | GrantError::Sign(_)
        | GrantError::Attestation { .. }
        | GrantError::Revocations { .. } => "grant_invalid_claim",
    }
}

fn grant_refusal(e: GrantError) -> Refusal {
    Refusal::deny(grant_code(&e), e.to_string())
}

/// Verify a token's signature and claims for this caller and host.
pub fn verify_grant(token: &str, inp: &Inputs<'_>) -> Result<UsedGrant, Refusal> {
    let v = jit_grant::verify(token, inp.keys, TokenKind::Grant).map_err(grant_refusal)?;
    let ctx = CheckContext {
        user: &inp.invoker.name,
        uid: inp.invoker.uid,
        host: inp.host,
        now: inp.now,
        clock_skew: inp.settings.clock_skew,
    };
    v.claims.check(&ctx).map_err(grant_refusal)?;
    Ok(UsedGrant {
        claims: v.claims,
        kid: v.kid,
    })
}

fn policy_decide<'p>(
    inp: &Inputs<'p>,
    grant: Option<&jit_policy::GrantView>,
) -> Result<Approved<'p>, Refusal> {
    let args: Vec<&OsStr> = inp.run.command[1..]
        .iter()
        .map(OsString::as_os_str)
        .collect();
    let mut request = Request {
        user: &inp.invoker.name,
        groups: &inp.invoker.groups,
        host: inp.host,
        program: inp.program.canonical.as_os_str(),
        args: &args,
        run_as: inp.run.user.as_deref(),
        rule: inp.run.rule.as_deref(),
    };
    let mut decision = jit_policy::decide(inp.policy, &request, grant);
    let mut matched = &inp.program.canonical;
    if matches!(decision, Decision::Deny(_)) && inp.program.spelled != inp.program.canonical {
        // The rule may name the program as the user spelled it (/bin/ls on a merged-/usr host).
        request.program = inp.program.spelled.as_os_str();
        if let d @ Decision::Allow { .. } = jit_policy::decide(inp.policy, &request, grant) {
            decision = d;
            matched = &inp.program.spelled;
        }
    }
    match decision {
        Decision::Allow { rule, caps, run_as } => Ok(Approved {
            rule,
            matched: matched.clone(),
            caps,
            run_as,
            grant: None,
        }),
        Decision::Deny(d) => Err(Refusal::deny(d.code.as_str(), d.message).with_rule(d.rule)),
    }
}

fn with_grant<'p>(token: &str, inp: &Inputs<'p>) -> Result<Approved<'p>, Refusal> {
    let used = verify_grant(token, inp)?;
    revocations::check_not_revoked(
        inp.revocations,
        &used.claims.jti,
        &used.claims.rule,
        inp.now,
    )?;
    let view = used.claims.view().map_err(grant_refusal)?;
    let mut approved = policy_decide(inp, Some(&view))?;
    revocations::check_fresh(inp.revocations, approved.rule, inp.settings, inp.now)?;
    approved.grant = Some(used);
    Ok(approved)
}

/// Count one use of the grant, when it has `max_uses` (after authentication, so a wrong
/// password does not use one up).
pub fn consume_use(approved: &Approved<'_>) -> Result<(), Refusal> {
    if let Some(g) = &approved.grant {
        if let Some(max) = g.claims.max_uses {
            uses::consume(&g.claims.jti, max).map_err(|r| sealed_used_up(g, r))?;
        }
    }
    Ok(())
}

/// A sealed grant's one use on this host is spent: say so, and what to do instead.
fn sealed_used_up(g: &UsedGrant, r: Refusal) -> Refusal {
    if !g.claims.sealed || r.code != "grant_used_up" {
        return r;
    }
    Refusal::deny(
        "grant_used_up",
        format!(
            "sealed grant {} was already used on this host (each works once per host); use another grant of its batch, or jitctl request {} once the broker can be reached",
            g.claims.jti, g.claims.rule
        ),
    )
    .with_rule(Some(g.claims.rule.clone()))
}

/// Read the token `--grant` names (a file, as the invoker, or stdin), once: the policy cache
/// needs its rule claim before the decision, and a refusal to read it is reported by
/// [`decide`], in its place among the other refusals.
pub fn read_grant(run: &RunArgs, inv: &Invoker) -> Option<Result<String, Refusal>> {
    match &run.grant {
        Some(GrantSource::File(path)) => Some(
            user_files::read_as_user(inv, std::path::Path::new(path))
                .map_err(|m| Refusal::deny("grant_unreadable", format!("cannot read grant {m}"))),
        ),
        Some(GrantSource::Stdin) => {
            Some(user_files::read_stdin().map_err(|m| {
                Refusal::deny("grant_unreadable", format!("cannot read grant from {m}"))
            }))
        }
        None => None,
    }
}

/// The `rule` claim of a token, unverified: only to choose which rules to decode (a token
/// that lies about it fails verification, and a refusal is decided on the whole policy).
pub fn claimed_rule(token: &str) -> Option<String> {
    jit_grant::decode_unverified(token)
        .ok()
        .and_then(|u| serde_rule(&u.payload))
}

pub fn decide<'p>(inp: &Inputs<'p>) -> Result<Approved<'p>, Refusal> {
    decide_rule(inp)
}

fn decide_rule<'p>(inp: &Inputs<'p>) -> Result<Approved<'p>, Refusal> {
    match inp.token {
        Some(Ok(token)) => with_grant(token, inp),
        Some(Err(r)) => Err(r.clone()),
        None => {
            let standing = match policy_decide(inp, None) {
                Ok(a) => return Ok(a),
                Err(r) => r,
            };
            // Then the grants the user keeps. Report the failure of a grant for the rule the
            // policy pointed at, if there is one: "your grant expired" beats "you need a grant".
            let mut relevant: Option<Refusal> = None;
            for path in user_files::store_files(inp.invoker) {
                let Ok(token) = user_files::read_as_user(inp.invoker, &path) else {
                    continue;
                };
                match with_grant(&token, inp) {
                    Ok(a) => return Ok(a),
                    Err(e) => {
                        let for_rule = jit_grant::decode_unverified(&token)
                            .ok()
                            .and_then(|u| serde_rule(&u.payload))
                            .is_some_and(|r| Some(&r) == standing.rule.as_ref());
                        if for_rule && relevant.is_none() {
                            relevant = Some(Refusal {
                                message: format!("{} (from {})", e.message, path.display()),
                                ..e
                            });
                        }
                    }
                }
            }
            Err(relevant.unwrap_or(standing))
        }
    }
}

/// The `rule` claim of an unverified payload (only to choose which failure to report).
fn serde_rule(payload: &str) -> Option<String> {
    let v: serde_json::Value = serde_json::from_str(payload).ok()?;
    v.get("rule")?.as_str().map(str::to_string)
}
