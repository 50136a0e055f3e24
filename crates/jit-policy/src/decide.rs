//! Decision = policy ∩ grant, with a reason a person can act on for every refusal.
//!
//! The grant's signature and time claims are checked by `jit-grant` before this runs;
//! here the (already verified) grant is seen through [`GrantView`].

use crate::caps::CapSet;
use crate::duration::format_duration;
use crate::glob::glob_match;
use crate::pattern::CommandPattern;
use crate::policy::Policy;
use crate::rule::{GrantMode, Rule, RunAs};
use crate::text::{command_line, os_word, quote, quoted_list};
use std::collections::BTreeSet;
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
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
    NoRule, // no rule names this user/group at all on this host
    CommandNotAllowed,
    HostNotAllowed,
    GrantRequired, // a rule matches but needs a grant and none was given/found
    GrantRuleUnknown,
    GrantRuleMismatch, // grant's rule does not allow this user/command/host
    GrantCommand, // grant's cmd narrowing does not cover this command, or is not within the rule
    GrantCaps,    // grant's caps not within the rule's
    RunAs,        // -u or grant run_as not allowed by the rule
    Duration,     // exp - iat > max_duration
    Approvals,    // too few approvers (requester excluded)
    Authenticate, // PAM authentication failed (decided by jitrun after the policy allows)
    Account,      // PAM account check refused (expired account or password, access rules)
}

impl DenyCode {
    /// The codes [`decide`] can return (not `Authenticate`/`Account`: jitrun decides those
    /// after the policy allows, with PAM).
    pub const ALL: [DenyCode; 11] = [
        DenyCode::NoRule,
        DenyCode::CommandNotAllowed,
        DenyCode::HostNotAllowed,
        DenyCode::GrantRequired,
        DenyCode::GrantRuleUnknown,
        DenyCode::GrantRuleMismatch,
        DenyCode::GrantCommand,
        DenyCode::GrantCaps,
        DenyCode::RunAs,
        DenyCode::Duration,
        DenyCode::Approvals,
    ];

    /// The code named by its snake_case name ([`DenyCode::as_str`]).
    pub fn parse(name: &str) -> Option<DenyCode> {
        DenyCode::ALL.into_iter().find(|c| c.as_str() == name)
    }

    /// snake_case name, e.g. `command_not_allowed`.
    pub fn as_str(self) -> &'static str {
        match self {
            DenyCode::NoRule => "no_rule",
            DenyCode::CommandNotAllowed => "command_not_allowed",
            DenyCode::HostNotAllowed => "host_not_allowed",
            DenyCode::GrantRequired => "grant_required",
            DenyCode::GrantRuleUnknown => "grant_rule_unknown",
            DenyCode::GrantRuleMismatch => "grant_rule_mismatch",
            DenyCode::GrantCommand => "grant_command",
            DenyCode::GrantCaps => "grant_caps",
            DenyCode::RunAs => "run_as",
            DenyCode::Duration => "duration",
            DenyCode::Approvals => "approvals",
            DenyCode::Authenticate => "authenticate",
            DenyCode::Account => "account",
        }
    }
}

impl std::fmt::Display for DenyCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
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
pub fn decide<'p>(
    policy: &'p Policy,
    request: &Request<'_>,
    grant: Option<&GrantView>,
) -> Decision<'p> {
    match grant {
        Some(g) => with_grant(policy, request, g),
        None => without_grant(policy, request),
    }
}

/// Rules that name this user (or one of the groups) and allow this host; for `jitrun -l`.
pub fn rules_for<'p>(
    policy: &'p Policy,
    user: &str,
    groups: &[String],
    host: &str,
) -> Vec<&'p Rule> {
    policy
        .rules
        .iter()
        .filter(|r| names_user(r, user, groups) && allows_host(r, host))
        .collect()
}

/// Does the rule name this user, or one of these groups?
pub fn names_user(rule: &Rule, user: &str, groups: &[String]) -> bool {
    rule.users.iter().any(|u| u == user) || rule.groups.iter().any(|g| groups.contains(g))
}

/// Does one of the rule's host globs match `host`?
pub fn allows_host(rule: &Rule, host: &str) -> bool {
    rule.hosts
        .iter()
        .any(|h| glob_match(h.as_bytes(), host.as_bytes()))
}

/// Does one of the rule's command patterns match?
pub fn allows_command(rule: &Rule, program: &OsStr, args: &[&OsStr]) -> bool {
    rule.commands.iter().any(|c| c.matches(program, args))
}

/// When `rule` refuses the command only because one of its globs would match an argument
/// holding a `..` path component: what to tell the person (starts with "; ").
pub fn dotdot_note(rule: &Rule, program: &OsStr, args: &[&OsStr]) -> Option<String> {
    let arg = rule
        .commands
        .iter()
        .find_map(|c| c.dotdot_refusal(program, args))?;
    Some(format!(
        "; the argument {} has a \"..\" path component, which a glob never matches (it would climb out of the directory the rule names): give the path without \"..\"",
        os_word(arg)
    ))
}

/// The user name an identity stands for, given the invoker's name.
pub fn run_as_name<'a>(run_as: &'a RunAs, invoker: &'a str) -> &'a str {
    match run_as {
        RunAs::Invoker => invoker,
        RunAs::Root => "root",
        RunAs::User(u) => u,
    }
}

fn denial(code: DenyCode, rule: Option<&Rule>, message: String) -> Denial {
    Denial {
        code,
        message,
        rule: rule.map(|r| r.name.clone()),
    }
}

/// `User("root")` and `Root` are the same identity.
fn same_identity(a: &RunAs, b: &RunAs) -> bool {
    let norm = |r: &RunAs| match r {
        RunAs::User(u) if u == "root" => RunAs::Root,
        other => other.clone(),
    };
    norm(a) == norm(b)
}

fn describe(run_as: &RunAs, invoker: &str) -> String {
    match run_as {
        RunAs::Invoker => format!("the invoking user ({invoker})"),
        RunAs::Root => "root".to_string(),
        RunAs::User(u) => u.clone(),
    }
}

fn rule_name(rule: &Rule) -> String {
    quote(&rule.name)
}

/// `-u` against the resolved identity.
fn check_dash_u(
    rule: &Rule,
    identity: &RunAs,
    request: &Request<'_>,
    grant_id: Option<&str>,
) -> Result<(), Denial> {
    match request.run_as {
        Some(wanted) if wanted != run_as_name(identity, request.user) => {
            Err(dash_u_denial(rule, identity, request, wanted, grant_id))
        }
        _ => Ok(()),
    }
}

fn dash_u_denial(
    rule: &Rule,
    identity: &RunAs,
    request: &Request<'_>,
    wanted: &str,
    grant_id: Option<&str>,
) -> Denial {
    let source = match grant_id {
        Some(id) => format!("grant {id} for rule {}", rule_name(rule)),
        None => format!("rule {}", rule_name(rule)),
    };
    denial(
        DenyCode::RunAs,
        Some(rule),
        format!(
            "{source} runs commands as {}, not as {}; leave out -u, or use -u {}",
            describe(identity, request.user),
            quote(wanted),
            run_as_name(identity, request.user)
        ),
    )
}

// ---------------------------------------------------------------- with a grant

/// The grant's checks in order; the first that fails is the reason.
fn with_grant<'p>(policy: &'p Policy, request: &Request<'_>, g: &GrantView) -> Decision<'p> {
    let checked = granted_rule(policy, request, g).and_then(|rule| {
        check_grant_cmd(rule, request, g)?;
        let caps = granted_caps(rule, g)?;
        check_grant_run_as(rule, request, g)?;
        check_dash_u(rule, &rule.run_as, request, Some(&g.id))?;
        check_lifetime(rule, g)?;
        check_approvals(rule, g)?;
        Ok((rule, caps))
    });
    match checked {
        Ok((rule, caps)) => Decision::Allow {
            rule,
            caps,
            run_as: rule.run_as.clone(),
        },
        Err(d) => Decision::Deny(d),
    }
}

/// The rule the grant names: it exists, is the one `--rule` names (when given), and names
/// the caller, allows this host and allows this command.
fn granted_rule<'p>(
    policy: &'p Policy,
    request: &Request<'_>,
    g: &GrantView,
) -> Result<&'p Rule, Denial> {
    let id = &g.id;
    let Some(rule) = policy.rule(&g.rule) else {
        return Err(denial(
            DenyCode::GrantRuleUnknown,
            None,
            format!(
                "grant {id} is for rule {}, which the policy on {} does not define; request a grant for a rule that jitrun -l lists",
                quote(&g.rule),
                request.host
            ),
        ));
    };
    let r = rule_name(rule);
    let mismatch = |message: String| Err(denial(DenyCode::GrantRuleMismatch, Some(rule), message));
    if let Some(wanted) = request.rule.filter(|wanted| *wanted != g.rule) {
        return mismatch(format!("grant {id} is for rule {r}, not rule {} (--rule); leave out --rule or use a grant for that rule", quote(wanted)));
    }
    if !names_user(rule, request.user, request.groups) {
        return mismatch(format!(
            "grant {id} is for rule {r}, which does not name {} or any of their groups; request a grant for a rule that does (jitrun -l lists them)",
            request.user
        ));
    }
    if !allows_host(rule, request.host) {
        return mismatch(format!(
            "grant {id} is for rule {r}, which does not allow host {} (hosts: {}); run it on a host the rule covers",
            request.host,
            rule.hosts.join(", ")
        ));
    }
    if !allows_command(rule, request.program, request.args) {
        let cmd = command_line(request.program, request.args);
        let why = dotdot_note(rule, request.program, request.args).unwrap_or_default();
        return mismatch(format!(
            "grant {id} is for rule {r}, which does not allow {cmd}{why}; request a grant for a rule that does (jitrun -l lists them)"
        ));
    }
    Ok(rule)
}

/// The grant's `cmd`, when it has one: every pattern within one of the rule's commands, and
/// one of them matching this command.
fn check_grant_cmd(rule: &Rule, request: &Request<'_>, g: &GrantView) -> Result<(), Denial> {
    let Some(patterns) = &g.cmd else {
        return Ok(());
    };
    let (id, r) = (&g.id, rule_name(rule));
    let refuse = |message: String| Err(denial(DenyCode::GrantCommand, Some(rule), message));
    if let Some(wide) = patterns
        .iter()
        .find(|p| !rule.commands.iter().any(|o| p.is_within(o)))
    {
        return refuse(format!(
            "grant {id} allows {}, which is not within the commands of rule {r}; request a new grant for commands the rule allows",
            quote(&wide.to_string())
        ));
    }
    if patterns
        .iter()
        .any(|p| p.matches(request.program, request.args))
    {
        return Ok(());
    }
    let cmd = command_line(request.program, request.args);
    let list: Vec<String> = patterns.iter().map(ToString::to_string).collect();
    refuse(if list.is_empty() {
        format!("grant {id} allows no command at all; request a new grant for {cmd}")
    } else {
        format!(
            "grant {id} is limited to {}, which does not cover {cmd}; run one of those or request a grant for this command",
            quoted_list(&list)
        )
    })
}

/// The capabilities: the grant's `caps` (a subset of the rule's), else the rule's.
fn granted_caps(rule: &Rule, g: &GrantView) -> Result<CapSet, Denial> {
    match g.caps {
        Some(asked) if !asked.is_subset(rule.capabilities) => Err(denial(
            DenyCode::GrantCaps,
            Some(rule),
            format!(
                "grant {} asks for {}, beyond rule {} ({}); request a grant within the rule's capabilities",
                g.id,
                asked.difference(rule.capabilities),
                rule_name(rule),
                rule.capabilities
            ),
        )),
        Some(asked) => Ok(asked.intersect(rule.capabilities)),
        None => Ok(rule.capabilities),
    }
}

/// The grant's `run_as`, when it has one, is the rule's identity.
fn check_grant_run_as(rule: &Rule, request: &Request<'_>, g: &GrantView) -> Result<(), Denial> {
    match &g.run_as {
        Some(asked) if !same_identity(asked, &rule.run_as) => Err(denial(
            DenyCode::RunAs,
            Some(rule),
            format!(
                "grant {} asks to run as {}, but rule {} runs commands as {}; request a grant without run_as",
                g.id,
                describe(asked, request.user),
                rule_name(rule),
                describe(&rule.run_as, request.user)
            ),
        )),
        _ => Ok(()),
    }
}

fn check_lifetime(rule: &Rule, g: &GrantView) -> Result<(), Denial> {
    if g.lifetime <= rule.max_duration {
        return Ok(());
    }
    Err(denial(
        DenyCode::Duration,
        Some(rule),
        format!(
            "grant {} lasts {}, longer than rule {} allows (max_duration {}); request a shorter grant",
            g.id,
            format_duration(g.lifetime),
            rule_name(rule),
            format_duration(rule.max_duration)
        ),
    ))
}

/// Distinct approvers other than the requester, at least `min_approvals` (break-glass
/// grants need none).
fn check_approvals(rule: &Rule, g: &GrantView) -> Result<(), Denial> {
    if g.break_glass {
        return Ok(());
    }
    let approvers: BTreeSet<&str> = g
        .approvers
        .iter()
        .map(String::as_str)
        .filter(|a| *a != g.subject)
        .collect();
    if approvers.len() as u64 >= u64::from(rule.min_approvals) {
        return Ok(());
    }
    Err(denial(
        DenyCode::Approvals,
        Some(rule),
        format!(
            "grant {} has {} approval(s), rule {} needs {} (the requester does not count)",
            g.id,
            approvers.len(),
            rule_name(rule),
            rule.min_approvals
        ),
    ))
}

// ---------------------------------------------------------------- without a grant

/// Narrow the rules step by step (named by `--rule`, naming the caller, allowing this host,
/// this command, standing); the step that leaves none gives the most specific reason.
fn without_grant<'p>(policy: &'p Policy, request: &Request<'_>) -> Decision<'p> {
    let rule = candidates(policy, request)
        .and_then(|c| naming_the_caller(c, request))
        .and_then(|n| allowing_the_host(n, request))
        .and_then(|h| allowing_the_command(h, request))
        .and_then(standing)
        .and_then(|s| with_identity(s, request));
    match rule {
        Ok(rule) => Decision::Allow {
            rule,
            caps: rule.capabilities,
            run_as: rule.run_as.clone(),
        },
        Err(d) => Decision::Deny(d),
    }
}

/// The rule `--rule` names, else every rule.
fn candidates<'p>(policy: &'p Policy, request: &Request<'_>) -> Result<Vec<&'p Rule>, Denial> {
    let Some(name) = request.rule else {
        return Ok(policy.rules.iter().collect());
    };
    match policy.rule(name) {
        Some(r) => Ok(vec![r]),
        None => Err(denial(
            DenyCode::NoRule,
            None,
            format!(
                "there is no rule {} (--rule); jitrun -l lists the rules you may use",
                quote(name)
            ),
        )),
    }
}

fn naming_the_caller<'p>(
    candidates: Vec<&'p Rule>,
    request: &Request<'_>,
) -> Result<Vec<&'p Rule>, Denial> {
    let user = request.user;
    let named: Vec<&'p Rule> = candidates
        .iter()
        .copied()
        .filter(|r| names_user(r, user, request.groups))
        .collect();
    if !named.is_empty() {
        return Ok(named);
    }
    Err(match request.rule {
        Some(_) => denial(
            DenyCode::NoRule,
            candidates.first().copied(),
            format!(
                "rule {} does not name {user} or any of their groups; jitrun -l lists what you may run",
                rule_name(candidates[0])
            ),
        ),
        None => denial(
            DenyCode::NoRule,
            None,
            format!(
                "no rule lets {user} run {} on {}; jitrun -l lists what you may run",
                command_line(request.program, request.args),
                request.host
            ),
        ),
    })
}

fn allowing_the_host<'p>(
    named: Vec<&'p Rule>,
    request: &Request<'_>,
) -> Result<Vec<&'p Rule>, Denial> {
    let here: Vec<&'p Rule> = named
        .iter()
        .copied()
        .filter(|r| allows_host(r, request.host))
        .collect();
    if !here.is_empty() {
        return Ok(here);
    }
    let closest = named[0];
    Err(denial(
        DenyCode::HostNotAllowed,
        Some(closest),
        format!(
            "no rule lets {} run commands on {} (rule {} covers hosts {}); use a host the rules cover",
            request.user,
            request.host,
            rule_name(closest),
            closest.hosts.join(", ")
        ),
    ))
}

/// The rules that allow the command; when none does, the reason names the closest rule: one
/// that refuses only because of a `..` argument, else one that lists the same program.
fn allowing_the_command<'p>(
    here: Vec<&'p Rule>,
    request: &Request<'_>,
) -> Result<Vec<&'p Rule>, Denial> {
    let (program, args) = (request.program, request.args);
    let full: Vec<&'p Rule> = here
        .iter()
        .copied()
        .filter(|r| allows_command(r, program, args))
        .collect();
    if !full.is_empty() {
        return Ok(full);
    }
    let (user, host) = (request.user, request.host);
    let cmd = command_line(program, args);
    let refuse = |rule: &Rule, message: String| {
        Err(denial(DenyCode::CommandNotAllowed, Some(rule), message))
    };
    if let Some((r, why)) = here
        .iter()
        .find_map(|r| dotdot_note(r, program, args).map(|w| (*r, w)))
    {
        return refuse(r, format!("no rule lets {user} run {cmd} on {host}{why}"));
    }
    let closest = here.iter().copied().find_map(|r| {
        r.commands
            .iter()
            .find(|c| c.program.as_bytes() == program.as_bytes())
            .map(|c| (r, c))
    });
    match closest {
        Some((r, c)) => refuse(r, format!(
            "no rule lets {user} run {cmd} on {host}; closest: rule {} allows {}; jitrun -l lists what you may run",
            rule_name(r),
            quote(&c.to_string())
        )),
        None => refuse(here[0], format!(
            "no rule lets {user} run {cmd} on {host} (rule {} does not list it); jitrun -l lists what you may run",
            rule_name(here[0])
        )),
    }
}

/// The standing rules (`grant = "none"`) among those that allow the command; none means a
/// grant is required, for the first of them.
fn standing(full: Vec<&Rule>) -> Result<Vec<&Rule>, Denial> {
    let standing: Vec<&Rule> = full
        .iter()
        .copied()
        .filter(|r| r.grant == GrantMode::None)
        .collect();
    if !standing.is_empty() {
        return Ok(standing);
    }
    let names: Vec<&str> = full.iter().map(|r| r.name.as_str()).collect();
    let message = if names.len() == 1 {
        format!(
            "rule {} allows this only with a grant; run: jitctl request {}",
            quote(names[0]),
            names[0]
        )
    } else {
        format!(
            "rules {} allow this only with a grant; run: jitctl request {} (or request one of the others)",
            quoted_list(&names),
            names[0]
        )
    };
    Err(denial(DenyCode::GrantRequired, Some(full[0]), message))
}

/// The first standing rule; with -u, the first whose identity is the one asked for.
fn with_identity<'p>(standing: Vec<&'p Rule>, request: &Request<'_>) -> Result<&'p Rule, Denial> {
    let Some(wanted) = request.run_as else {
        return Ok(standing[0]);
    };
    standing
        .iter()
        .copied()
        .find(|r| run_as_name(&r.run_as, request.user) == wanted)
        .ok_or_else(|| dash_u_denial(standing[0], &standing[0].run_as, request, wanted, None))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::PolicySource;
    use std::os::unix::ffi::OsStrExt;

    const POLICY: &str = r#"
[[rule]]
name = "net-debug"
users = ["alice"]
groups = ["netops"]
hosts = ["web-*"]
commands = ["/usr/sbin/ip **", "/usr/bin/tcpdump -i *"]
capabilities = ["net_admin", "net_raw"]

[[rule]]
name = "db"
groups = ["dba"]
commands = ["/usr/bin/systemctl restart postgresql"]
run_as = "root"
capabilities = ["CAP_SYS_NICE"]
min_approvals = 2
max_duration = "4h"

[[rule]]
name = "logs"
users = ["alice"]
commands = ["/usr/bin/journalctl **"]
grant = "none"

[[rule]]
name = "logs-again"
users = ["alice"]
commands = ["/usr/bin/journalctl **"]
grant = "none"

[[rule]]
name = "pg"
users = ["bob"]
commands = ["/usr/bin/psql **"]
run_as = "postgres"
grant = "none"

[[rule]]
name = "pg-root"
users = ["bob"]
commands = ["/usr/bin/psql **"]
run_as = "root"
grant = "none"

[[rule]]
name = "mfa"
users = ["carol"]
commands = ["/usr/bin/id"]
grant = "none"
authenticate = true

[[rule]]
name = "break"
users = ["alice"]
commands = ["/usr/sbin/reboot"]
run_as = "root"
capabilities = ["ALL"]
min_approvals = 1
"#;

    fn policy() -> Policy {
        Policy::load(&[PolicySource {
            name: "policy.toml".to_string(),
            text: POLICY.to_string(),
        }])
        .unwrap()
    }

    struct Ask {
        user: &'static str,
        groups: Vec<String>,
        host: &'static str,
        argv: Vec<&'static str>,
        run_as: Option<&'static str>,
        rule: Option<&'static str>,
    }

    fn ask(user: &'static str, host: &'static str, argv: &[&'static str]) -> Ask {
        Ask {
            user,
            groups: vec![user.to_string()],
            host,
            argv: argv.to_vec(),
            run_as: None,
            rule: None,
        }
    }

    impl Ask {
        fn groups(mut self, g: &[&str]) -> Ask {
            self.groups = g.iter().map(|s| s.to_string()).collect();
            self
        }
        fn u(mut self, u: &'static str) -> Ask {
            self.run_as = Some(u);
            self
        }
        fn rule(mut self, r: &'static str) -> Ask {
            self.rule = Some(r);
            self
        }
        fn decide<'p>(&self, p: &'p Policy, g: Option<&GrantView>) -> Decision<'p> {
            let args: Vec<&OsStr> = self.argv[1..].iter().map(OsStr::new).collect();
            let req = Request {
                user: self.user,
                groups: &self.groups,
                host: self.host,
                program: OsStr::new(self.argv[0]),
                args: &args,
                run_as: self.run_as,
                rule: self.rule,
            };
            decide(p, &req, g)
        }
    }

    fn grant(rule: &str, subject: &str) -> GrantView {
        GrantView {
            id: "01JTEST".to_string(),
            rule: rule.to_string(),
            caps: None,
            cmd: None,
            run_as: None,
            lifetime: Duration::from_secs(1800),
            approvers: vec!["oncall".to_string(), "lead".to_string()],
            subject: subject.to_string(),
            break_glass: false,
        }
    }

    fn allowed<'p>(d: Decision<'p>) -> (&'p Rule, CapSet, RunAs) {
        match d {
            Decision::Allow { rule, caps, run_as } => (rule, caps, run_as),
            Decision::Deny(d) => panic!("denied: {d:?}"),
        }
    }

    fn denied(d: Decision<'_>, code: DenyCode) -> Denial {
        match d {
            Decision::Deny(d) => {
                assert_eq!(d.code, code, "{}", d.message);
                d
            }
            Decision::Allow { rule, .. } => panic!("allowed by {}", rule.name),
        }
    }

    fn caps(names: &[&str]) -> CapSet {
        CapSet::parse_list(names).unwrap()
    }

    #[test]
    fn deny_codes_are_snake_case() {
        let all = [
            (DenyCode::NoRule, "no_rule"),
            (DenyCode::CommandNotAllowed, "command_not_allowed"),
            (DenyCode::HostNotAllowed, "host_not_allowed"),
            (DenyCode::GrantRequired, "grant_required"),
            (DenyCode::GrantRuleUnknown, "grant_rule_unknown"),
            (DenyCode::GrantRuleMismatch, "grant_rule_mismatch"),
            (DenyCode::GrantCommand, "grant_command"),
            (DenyCode::GrantCaps, "grant_caps"),
            (DenyCode::RunAs, "run_as"),
            (DenyCode::Duration, "duration"),
            (DenyCode::Approvals, "approvals"),
            (DenyCode::Authenticate, "authenticate"),
            (DenyCode::Account, "account"),
        ];
        for (code, s) in all {
            assert_eq!(code.as_str(), s);
            assert_eq!(code.to_string(), s);
        }
    }

    #[test]
    fn no_rule() {
        let p = policy();
        let d = denied(
            ask("mallory", "web-1", &["/usr/bin/cat"]).decide(&p, None),
            DenyCode::NoRule,
        );
        assert_eq!(
            d.message,
            "no rule lets mallory run /usr/bin/cat on web-1; jitrun -l lists what you may run"
        );
        assert_eq!(d.rule, None);
        // A group the user is not in does not count; --rule naming an unknown rule.
        let d = denied(
            ask("alice", "web-1", &["/usr/bin/id"])
                .rule("nope")
                .decide(&p, None),
            DenyCode::NoRule,
        );
        assert!(
            d.message.contains("there is no rule \"nope\""),
            "{}",
            d.message
        );
        let d = denied(
            ask("carol", "web-1", &["/usr/bin/journalctl"])
                .rule("logs")
                .decide(&p, None),
            DenyCode::NoRule,
        );
        assert!(
            d.message.starts_with("rule \"logs\" does not name carol"),
            "{}",
            d.message
        );
        assert_eq!(d.rule.as_deref(), Some("logs"));
    }

    #[test]
    fn host_not_allowed() {
        let p = policy();
        let d = denied(
            ask("dave", "db-1", &["/usr/sbin/ip", "link"])
                .groups(&["dave", "netops"])
                .decide(&p, None),
            DenyCode::HostNotAllowed,
        );
        assert_eq!(d.rule.as_deref(), Some("net-debug"));
        assert!(
            d.message.contains("on db-1") && d.message.contains("web-*"),
            "{}",
            d.message
        );
    }

    #[test]
    fn command_not_allowed_names_the_closest_rule() {
        let p = policy();
        let d = denied(
            ask("alice", "web-1", &["/usr/bin/tcpdump", "-w", "x"]).decide(&p, None),
            DenyCode::CommandNotAllowed,
        );
        assert_eq!(d.rule.as_deref(), Some("net-debug"));
        assert_eq!(
            d.message,
            "no rule lets alice run /usr/bin/tcpdump -w x on web-1; closest: rule \"net-debug\" allows \"/usr/bin/tcpdump -i *\"; jitrun -l lists what you may run"
        );
        let d = denied(
            ask("alice", "web-1", &["/usr/bin/cat"]).decide(&p, None),
            DenyCode::CommandNotAllowed,
        );
        assert!(
            d.message
                .starts_with("no rule lets alice run /usr/bin/cat on web-1"),
            "{}",
            d.message
        );
        // Hostile bytes in argv are escaped in the message.
        let args = [OsStr::from_bytes(b"\x1b]0;pwned\x07\xff")];
        let req = Request {
            user: "alice",
            groups: &[],
            host: "web-1",
            program: OsStr::new("/usr/bin/cat"),
            args: &args,
            run_as: None,
            rule: None,
        };
        let d = denied(decide(&p, &req, None), DenyCode::CommandNotAllowed);
        assert!(
            !d.message.contains('\x1b') && d.message.contains("\\xff"),
            "{}",
            d.message
        );
    }

    #[test]
    fn a_dotdot_argument_is_refused_with_the_reason() {
        let p = Policy::load(&[PolicySource {
            name: "p.toml".into(),
            text: "[[rule]]\nname = \"logs\"\nusers = [\"alice\"]\ncommands = [\"/usr/bin/cat /var/log/*\"]\ncapabilities = [\"dac_read_search\"]\ngrant = \"none\"\n".into(),
        }])
        .unwrap();
        allowed(ask("alice", "h", &["/usr/bin/cat", "/var/log/syslog"]).decide(&p, None));
        let d = denied(
            ask("alice", "h", &["/usr/bin/cat", "/var/log/../../etc/shadow"]).decide(&p, None),
            DenyCode::CommandNotAllowed,
        );
        assert_eq!(d.rule.as_deref(), Some("logs"));
        assert!(
            d.message.starts_with("no rule lets alice run /usr/bin/cat /var/log/../../etc/shadow on h; the argument /var/log/../../etc/shadow has a \"..\" path component, which a glob never matches"),
            "{}",
            d.message
        );
        let g = grant("logs", "alice");
        let d = denied(
            ask(
                "alice",
                "h",
                &["/usr/bin/cat", "/var/log/x/../../../etc/shadow"],
            )
            .decide(&p, Some(&g)),
            DenyCode::GrantRuleMismatch,
        );
        assert!(
            d.message.contains("has a \"..\" path component"),
            "{}",
            d.message
        );
    }

    #[test]
    fn grant_required() {
        let p = policy();
        let d = denied(
            ask("alice", "web-1", &["/usr/sbin/ip", "link"]).decide(&p, None),
            DenyCode::GrantRequired,
        );
        assert_eq!(
            d.message,
            "rule \"net-debug\" allows this only with a grant; run: jitctl request net-debug"
        );
        assert_eq!(d.rule.as_deref(), Some("net-debug"));
        // Group membership is enough to be named.
        let d = denied(
            ask(
                "erin",
                "db-1",
                &["/usr/bin/systemctl", "restart", "postgresql"],
            )
            .groups(&["dba"])
            .decide(&p, None),
            DenyCode::GrantRequired,
        );
        assert!(d.message.contains("jitctl request db"), "{}", d.message);
    }

    #[test]
    fn standing_access_invoker() {
        let p = policy();
        let (rule, c, run_as) =
            allowed(ask("alice", "db-1", &["/usr/bin/journalctl", "-u", "x"]).decide(&p, None));
        assert_eq!(rule.name, "logs", "first matching rule in load order");
        assert_eq!(c, CapSet::EMPTY);
        assert_eq!(run_as, RunAs::Invoker);
        // --rule picks another matching standing rule.
        let (rule, ..) = allowed(
            ask("alice", "db-1", &["/usr/bin/journalctl"])
                .rule("logs-again")
                .decide(&p, None),
        );
        assert_eq!(rule.name, "logs-again");
        // -u with the invoker's own name is the same identity.
        let (rule, _, run_as) = allowed(
            ask("alice", "db-1", &["/usr/bin/journalctl"])
                .u("alice")
                .decide(&p, None),
        );
        assert_eq!((rule.name.as_str(), run_as), ("logs", RunAs::Invoker));
        let d = denied(
            ask("alice", "db-1", &["/usr/bin/journalctl"])
                .u("root")
                .decide(&p, None),
            DenyCode::RunAs,
        );
        assert_eq!(
            d.message,
            "rule \"logs\" runs commands as the invoking user (alice), not as \"root\"; leave out -u, or use -u alice"
        );
    }

    #[test]
    fn standing_access_named_user_and_root() {
        let p = policy();
        let (rule, _, run_as) = allowed(ask("bob", "h", &["/usr/bin/psql"]).decide(&p, None));
        assert_eq!(
            (rule.name.as_str(), run_as),
            ("pg", RunAs::User("postgres".to_string()))
        );
        let (rule, _, run_as) = allowed(
            ask("bob", "h", &["/usr/bin/psql"])
                .u("postgres")
                .decide(&p, None),
        );
        assert_eq!(
            (rule.name.as_str(), run_as),
            ("pg", RunAs::User("postgres".to_string()))
        );
        // -u root selects the standing rule that runs as root.
        let (rule, _, run_as) = allowed(
            ask("bob", "h", &["/usr/bin/psql", "-l"])
                .u("root")
                .decide(&p, None),
        );
        assert_eq!((rule.name.as_str(), run_as), ("pg-root", RunAs::Root));
        let d = denied(
            ask("bob", "h", &["/usr/bin/psql"])
                .u("alice")
                .decide(&p, None),
            DenyCode::RunAs,
        );
        assert_eq!(d.rule.as_deref(), Some("pg"));
        assert!(
            d.message
                .contains("runs commands as postgres, not as \"alice\""),
            "{}",
            d.message
        );
    }

    #[test]
    fn authenticate_rule_is_allowed_by_policy() {
        // PAM runs in jitrun after the policy allows; the decision carries the rule, whose
        // `authenticate` flag tells jitrun to ask.
        let p = policy();
        let (r, _, _) = allowed(ask("carol", "h", &["/usr/bin/id"]).decide(&p, None));
        assert_eq!(r.name, "mfa");
        assert!(r.authenticate);
    }

    #[test]
    fn grant_allows_and_narrows() {
        let p = policy();
        let g = grant("net-debug", "alice");
        let (rule, c, run_as) =
            allowed(ask("alice", "web-1", &["/usr/sbin/ip", "link"]).decide(&p, Some(&g)));
        assert_eq!(rule.name, "net-debug");
        assert_eq!(c, caps(&["net_admin", "net_raw"]));
        assert_eq!(run_as, RunAs::Invoker);
        // Narrowed caps.
        let mut g2 = g.clone();
        g2.caps = Some(caps(&["net_raw"]));
        let (_, c, _) = allowed(ask("alice", "web-1", &["/usr/sbin/ip"]).decide(&p, Some(&g2)));
        assert_eq!(c, caps(&["net_raw"]));
        // Narrowed command.
        let mut g3 = g.clone();
        g3.cmd = Some(vec![
            CommandPattern::parse_str("/usr/sbin/ip link show *").unwrap()
        ]);
        allowed(
            ask("alice", "web-1", &["/usr/sbin/ip", "link", "show", "eth0"]).decide(&p, Some(&g3)),
        );
        // Explicit run_as equal to the rule's; -u with the invoker's name.
        let mut g4 = g.clone();
        g4.run_as = Some(RunAs::Invoker);
        allowed(
            ask("alice", "web-1", &["/usr/sbin/ip"])
                .u("alice")
                .decide(&p, Some(&g4)),
        );
        // Via a group.
        let gd = grant("net-debug", "dave");
        allowed(
            ask("dave", "web-9", &["/usr/bin/tcpdump", "-i", "eth0"])
                .groups(&["netops"])
                .decide(&p, Some(&gd)),
        );
        // A grant for a standing rule works too (the rule named by the grant is used).
        let gl = grant("logs-again", "alice");
        let (rule, ..) = allowed(ask("alice", "x", &["/usr/bin/journalctl"]).decide(&p, Some(&gl)));
        assert_eq!(rule.name, "logs-again");
        // Root with approvals; User("root") in the grant is the same identity.
        let mut gr = grant("db", "erin");
        gr.run_as = Some(RunAs::User("root".to_string()));
        let (rule, c, run_as) = allowed(
            ask(
                "erin",
                "db-1",
                &["/usr/bin/systemctl", "restart", "postgresql"],
            )
            .groups(&["dba"])
            .u("root")
            .decide(&p, Some(&gr)),
        );
        assert_eq!((rule.name.as_str(), run_as), ("db", RunAs::Root));
        assert_eq!(c, caps(&["sys_nice"]));
        // Lifetime exactly max_duration is fine.
        let mut gx = g.clone();
        gx.lifetime = Duration::from_secs(3600);
        allowed(ask("alice", "web-1", &["/usr/sbin/ip"]).decide(&p, Some(&gx)));
    }

    #[test]
    fn grant_rule_unknown() {
        let p = policy();
        let d = denied(
            ask("alice", "web-1", &["/usr/sbin/ip"]).decide(&p, Some(&grant("gone", "alice"))),
            DenyCode::GrantRuleUnknown,
        );
        assert!(
            d.message.starts_with(
                "grant 01JTEST is for rule \"gone\", which the policy on web-1 does not define"
            ),
            "{}",
            d.message
        );
        assert_eq!(d.rule, None);
    }

    #[test]
    fn grant_rule_mismatch() {
        let p = policy();
        let g = grant("net-debug", "alice");
        let d = denied(
            ask("alice", "web-1", &["/usr/bin/cat"]).decide(&p, Some(&g)),
            DenyCode::GrantRuleMismatch,
        );
        assert_eq!(
            d.message,
            "grant 01JTEST is for rule \"net-debug\", which does not allow /usr/bin/cat; request a grant for a rule that does (jitrun -l lists them)"
        );
        assert_eq!(d.rule.as_deref(), Some("net-debug"));
        let d = denied(
            ask("alice", "db-1", &["/usr/sbin/ip"]).decide(&p, Some(&g)),
            DenyCode::GrantRuleMismatch,
        );
        assert!(
            d.message
                .contains("does not allow host db-1 (hosts: web-*)"),
            "{}",
            d.message
        );
        let d = denied(
            ask("bob", "web-1", &["/usr/sbin/ip"]).decide(&p, Some(&grant("net-debug", "bob"))),
            DenyCode::GrantRuleMismatch,
        );
        assert!(d.message.contains("does not name bob"), "{}", d.message);
        let d = denied(
            ask("alice", "web-1", &["/usr/sbin/ip"])
                .rule("logs")
                .decide(&p, Some(&g)),
            DenyCode::GrantRuleMismatch,
        );
        assert!(
            d.message.contains("not rule \"logs\" (--rule)"),
            "{}",
            d.message
        );
    }

    #[test]
    fn grant_command() {
        let p = policy();
        let mut g = grant("net-debug", "alice");
        g.cmd = Some(vec![
            CommandPattern::parse_str("/usr/sbin/ip link show *").unwrap()
        ]);
        let d = denied(
            ask("alice", "web-1", &["/usr/sbin/ip", "addr"]).decide(&p, Some(&g)),
            DenyCode::GrantCommand,
        );
        assert_eq!(
            d.message,
            "grant 01JTEST is limited to \"/usr/sbin/ip link show *\", which does not cover /usr/sbin/ip addr; run one of those or request a grant for this command"
        );
        // A narrowing that is not within the rule is refused even for a command it matches.
        g.cmd = Some(vec![
            CommandPattern::parse_str("/usr/sbin/ip addr").unwrap(),
            CommandPattern::parse_str("/usr/bin/tcpdump **").unwrap(),
        ]);
        let d = denied(
            ask("alice", "web-1", &["/usr/sbin/ip", "addr"]).decide(&p, Some(&g)),
            DenyCode::GrantCommand,
        );
        assert!(d.message.contains("allows \"/usr/bin/tcpdump **\", which is not within the commands of rule \"net-debug\""), "{}", d.message);
        g.cmd = Some(vec![]);
        let d = denied(
            ask("alice", "web-1", &["/usr/sbin/ip"]).decide(&p, Some(&g)),
            DenyCode::GrantCommand,
        );
        assert!(d.message.contains("allows no command"), "{}", d.message);
    }

    #[test]
    fn grant_caps() {
        let p = policy();
        let mut g = grant("net-debug", "alice");
        g.caps = Some(caps(&["net_admin", "sys_admin"]));
        let d = denied(
            ask("alice", "web-1", &["/usr/sbin/ip"]).decide(&p, Some(&g)),
            DenyCode::GrantCaps,
        );
        assert!(
            d.message.starts_with("grant 01JTEST asks for CAP_SYS_ADMIN, beyond rule \"net-debug\" (CAP_NET_ADMIN, CAP_NET_RAW)"),
            "{}",
            d.message
        );
    }

    #[test]
    fn grant_run_as() {
        let p = policy();
        let mut g = grant("net-debug", "alice");
        g.run_as = Some(RunAs::Root);
        let d = denied(
            ask("alice", "web-1", &["/usr/sbin/ip"]).decide(&p, Some(&g)),
            DenyCode::RunAs,
        );
        assert!(
            d.message.starts_with("grant 01JTEST asks to run as root, but rule \"net-debug\" runs commands as the invoking user (alice)"),
            "{}",
            d.message
        );
        let g = grant("net-debug", "alice");
        let d = denied(
            ask("alice", "web-1", &["/usr/sbin/ip"])
                .u("root")
                .decide(&p, Some(&g)),
            DenyCode::RunAs,
        );
        assert!(
            d.message
                .contains("not as \"root\"; leave out -u, or use -u alice"),
            "{}",
            d.message
        );
        let gr = grant("db", "erin");
        let d = denied(
            ask(
                "erin",
                "db-1",
                &["/usr/bin/systemctl", "restart", "postgresql"],
            )
            .groups(&["dba"])
            .u("erin")
            .decide(&p, Some(&gr)),
            DenyCode::RunAs,
        );
        assert!(d.message.contains("use -u root"), "{}", d.message);
    }

    #[test]
    fn grant_duration() {
        let p = policy();
        let mut g = grant("net-debug", "alice");
        g.lifetime = Duration::from_secs(7200);
        let d = denied(
            ask("alice", "web-1", &["/usr/sbin/ip"]).decide(&p, Some(&g)),
            DenyCode::Duration,
        );
        assert!(
            d.message.starts_with(
                "grant 01JTEST lasts 2h, longer than rule \"net-debug\" allows (max_duration 1h)"
            ),
            "{}",
            d.message
        );
        // Break-glass does not lift the duration limit.
        g.break_glass = true;
        denied(
            ask("alice", "web-1", &["/usr/sbin/ip"]).decide(&p, Some(&g)),
            DenyCode::Duration,
        );
    }

    #[test]
    fn grant_approvals() {
        let p = policy();
        let mut g = grant("db", "erin");
        g.approvers = vec!["bob".to_string(), "bob".to_string(), "erin".to_string()];
        let a = ask(
            "erin",
            "db-1",
            &["/usr/bin/systemctl", "restart", "postgresql"],
        )
        .groups(&["dba"]);
        let d = denied(a.decide(&p, Some(&g)), DenyCode::Approvals);
        assert_eq!(
            d.message,
            "grant 01JTEST has 1 approval(s), rule \"db\" needs 2 (the requester does not count)"
        );
        g.approvers.push("carol".to_string());
        allowed(a.decide(&p, Some(&g)));
        // Break-glass needs no approvals.
        let mut b = grant("break", "alice");
        b.approvers.clear();
        denied(
            ask("alice", "h", &["/usr/sbin/reboot"]).decide(&p, Some(&b)),
            DenyCode::Approvals,
        );
        b.break_glass = true;
        let (_, c, run_as) = allowed(ask("alice", "h", &["/usr/sbin/reboot"]).decide(&p, Some(&b)));
        assert!(c.is_all());
        assert_eq!(run_as, RunAs::Root);
    }

    #[test]
    fn grant_on_authenticate_rule() {
        let p = policy();
        let (r, _, _) =
            allowed(ask("carol", "h", &["/usr/bin/id"]).decide(&p, Some(&grant("mfa", "carol"))));
        assert_eq!(r.name, "mfa");
        assert!(r.authenticate);
    }

    #[test]
    fn listing() {
        let p = policy();
        let names = |v: Vec<&Rule>| v.into_iter().map(|r| r.name.clone()).collect::<Vec<_>>();
        assert_eq!(
            names(rules_for(&p, "alice", &[], "web-1")),
            vec!["net-debug", "logs", "logs-again", "break"]
        );
        assert_eq!(
            names(rules_for(&p, "alice", &[], "db-1")),
            vec!["logs", "logs-again", "break"]
        );
        assert_eq!(
            names(rules_for(&p, "dave", &["netops".to_string()], "web-2")),
            vec!["net-debug"]
        );
        assert!(rules_for(&p, "dave", &["netops".to_string()], "db-2").is_empty());
        assert!(rules_for(&p, "mallory", &[], "web-1").is_empty());
    }
}
