//! Decision = policy ∩ grant, with a reason a person can act on for every refusal.
//!
//! The grant's signature and time claims are checked by `jit-grant` before this runs;
//! here the (already verified) grant is seen through [`GrantView`].

use crate::{CapSet, CommandPattern, Policy, RunAs, Rule};
use std::ffi::OsStr;
use std::time::Duration;

/// Who asks to run what, where.
#[derive(Debug, Clone)]
pub struct Request<'a> {
    pub user: &'a str,
    /// Names of the caller's groups (primary and supplementary).
    pub groups: &'a [String],
    pub host: &'a str,
    /// Canonical absolute path of the program jitrun resolved.
    pub program: &'a OsStr,
    /// argv[1..].
    pub args: &'a [&'a OsStr],
    /// `-u USER` if given.
    pub run_as: Option<&'a str>,
    /// `--rule NAME` if given.
    pub rule: Option<&'a str>,
}

/// The parts of a verified grant that the decision needs.
#[derive(Debug, Clone)]
pub struct GrantView {
    pub id: String,
    pub rule: String,
    pub caps: Option<CapSet>,
    pub cmd: Option<Vec<CommandPattern>>,
    pub run_as: Option<RunAs>,
    /// `exp - iat`.
    pub lifetime: Duration,
    pub approvers: Vec<String>,
    /// The requester (`sub`): never counts as an approver.
    pub subject: String,
    pub break_glass: bool,
}

/// Machine-readable refusal reason, stable (written to audit as `jitrun.deny_code`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DenyCode {
    NoRule,          // no rule names this user/group at all on this host
    CommandNotAllowed,
    HostNotAllowed,
    GrantRequired,   // a rule matches but needs a grant and none was given/found
    GrantRuleUnknown,
    GrantRuleMismatch, // grant's rule does not allow this user/command/host
    GrantCommand,    // grant's cmd narrowing does not cover this command, or is not within the rule
    GrantCaps,       // grant's caps not within the rule's
    RunAs,           // -u or grant run_as not allowed by the rule
    Duration,        // exp - iat > max_duration
    Approvals,       // too few approvers (requester excluded)
    Authenticate,    // rule asks for authentication (not available yet)
}

impl DenyCode {
    /// snake_case name, e.g. `command_not_allowed`.
    pub fn as_str(self) -> &'static str { todo!() }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Denial {
    pub code: DenyCode,
    /// One sentence, no trailing period needed, naming the rule/grant and what to do next,
    /// e.g. `grant 01J… is for rule "net-debug", which does not allow /usr/bin/cat; request a grant for a rule that does (jitrun -l lists them)`.
    pub message: String,
    /// The rule concerned, when one is.
    pub rule: Option<String>,
}

#[derive(Debug, Clone)]
pub enum Decision<'p> {
    Allow {
        rule: &'p Rule,
        /// rule ∩ grant.
        caps: CapSet,
        /// Resolved: from -u, else grant run_as, else rule run_as.
        run_as: RunAs,
    },
    Deny(Denial),
}

/// Decide one request.
///
/// * With a grant: the rule is the one the grant's `rule` claim names (must exist, and must match
///   user-or-group, host and command, with grant=required or none). Then: grant `cmd` (if any)
///   must match the command AND each grant pattern must be within some rule pattern; grant `caps`
///   ⊆ rule caps (effective = grant caps, else rule caps); grant `run_as` must equal the rule's
///   run_as (or the rule's is a user and the grant says the same user); `-u` must equal the resolved
///   identity (`-u root` for Root, `-u <invoker name>` for Invoker); lifetime ≤ max_duration;
///   approvers (distinct, minus the subject) ≥ min_approvals unless break_glass.
/// * Without a grant: the first rule in load order (or the one `request.rule` names) that matches
///   user-or-group, host and command AND has `grant = none`. If rules match but all need a grant →
///   GrantRequired naming them ("rule \"net-debug\" allows this with a grant; run `jitctl request net-debug`").
/// * `authenticate = true` on the chosen rule → Deny(Authenticate) (PAM is a later issue).
/// * Most specific reason wins: when nothing matches, say whether no rule names the user, the host
///   is not allowed, or the command is not allowed (naming the closest rule).
pub fn decide<'p>(policy: &'p Policy, request: &Request<'_>, grant: Option<&GrantView>) -> Decision<'p> { todo!() }

/// Rules that name this user (or one of the groups) and allow this host; for `jitrun -l`.
pub fn rules_for<'p>(policy: &'p Policy, user: &str, groups: &[String], host: &str) -> Vec<&'p Rule> { todo!() }
