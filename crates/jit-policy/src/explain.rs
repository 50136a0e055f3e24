//! `jitctl policy explain`: the decision [`decide`] makes, and for every rule the first
//! reason it does not apply. The decision itself always comes from [`decide`] (jitrun's
//! path is untouched); the per-rule reasons are computed beside it, in the order
//! [`decide`] checks things: who, host, command, grant, run-as, authentication.

use crate::decide::{allows_command, allows_host, dotdot_note, names_user, run_as_name};
use crate::decide::{decide, Decision, GrantView, Request};
use crate::policy::Policy;
use crate::rule::{GrantMode, Rule};
use crate::text::{command_line, quote};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// The rule that allowed the request.
    Chosen,
    /// It matches, but another rule was chosen (named here).
    NotChosen(String),
    /// The first reason it does not apply.
    NoMatch(String),
}

#[derive(Debug, Clone)]
pub struct RuleReport<'p> {
    pub rule: &'p Rule,
    pub verdict: Verdict,
}

#[derive(Debug, Clone)]
pub struct Explanation<'p> {
    pub decision: Decision<'p>,
    /// Every rule, in load order.
    pub rules: Vec<RuleReport<'p>>,
}

fn list(items: &[String]) -> String {
    if items.is_empty() {
        "none".to_string()
    } else {
        items.join(", ")
    }
}

/// The first reason `rule` does not apply to `request` (None: it applies).
pub fn first_mismatch(
    rule: &Rule,
    request: &Request<'_>,
    grant: Option<&GrantView>,
) -> Option<String> {
    if !names_user(rule, request.user, request.groups) {
        return Some(format!(
            "does not name user {} or any of their groups ({}) (users: {}; groups: {})",
            request.user,
            list(request.groups),
            list(&rule.users),
            list(&rule.groups)
        ));
    }
    if !allows_host(rule, request.host) {
        return Some(format!(
            "does not allow host {} (hosts: {})",
            request.host,
            rule.hosts.join(", ")
        ));
    }
    if !allows_command(rule, request.program, request.args) {
        let shown: Vec<String> = rule
            .commands
            .iter()
            .map(|c| quote(&c.to_string()))
            .collect();
        return Some(format!(
            "no command pattern matches {} (commands: {}){}",
            command_line(request.program, request.args),
            shown.join(", "),
            dotdot_note(rule, request.program, request.args).unwrap_or_default()
        ));
    }
    if let Some(wanted) = request.rule {
        if wanted != rule.name {
            return Some(format!("--rule names rule {}", quote(wanted)));
        }
    }
    match grant {
        Some(g) if g.rule != rule.name => {
            return Some(format!(
                "the grant is for rule {}, not this one",
                quote(&g.rule)
            ))
        }
        None if rule.grant == GrantMode::Required => {
            return Some(format!(
                "needs a grant (grant = \"required\"); run: jitctl request {}",
                rule.name
            ))
        }
        _ => {}
    }
    if let Some(wanted) = request.run_as {
        if wanted != run_as_name(&rule.run_as, request.user) {
            return Some(format!(
                "runs commands as {}, not as {} (-u)",
                run_as_name(&rule.run_as, request.user),
                quote(wanted)
            ));
        }
    }
    None
}

/// Decide `request` with [`decide`] and explain every rule.
pub fn explain<'p>(
    policy: &'p Policy,
    request: &Request<'_>,
    grant: Option<&GrantView>,
) -> Explanation<'p> {
    let decision = decide(policy, request, grant);
    let chosen = match &decision {
        Decision::Allow { rule, .. } => Some(*rule),
        Decision::Deny(_) => None,
    };
    let rules = policy
        .rules
        .iter()
        .map(|rule| {
            let verdict = if chosen.is_some_and(|c| std::ptr::eq(c, rule)) {
                Verdict::Chosen
            } else if let Some(why) = first_mismatch(rule, request, grant) {
                Verdict::NoMatch(why)
            } else {
                match (&decision, chosen) {
                    (_, Some(c)) => Verdict::NotChosen(format!(
                        "matches too, but rule {} comes first in load order",
                        quote(&c.name)
                    )),
                    // It applies by the checks above, yet the decision refused: the refusal
                    // (a grant claim, approvals, duration) is the reason.
                    (Decision::Deny(d), None) => Verdict::NoMatch(d.message.clone()),
                    (Decision::Allow { .. }, None) => unreachable!("Allow always names its rule"),
                }
            };
            RuleReport { rule, verdict }
        })
        .collect();
    Explanation { decision, rules }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::PolicySource;
    use std::ffi::OsStr;
    use std::time::Duration;

    fn policy() -> Policy {
        Policy::load(&[PolicySource {
            name: "p.toml".to_string(),
            text: r#"
[[rule]]
name = "net"
groups = ["netops"]
hosts = ["web-*"]
commands = ["/usr/sbin/ip **"]
capabilities = ["net_admin"]

[[rule]]
name = "ip-standing"
users = ["alice"]
commands = ["/usr/sbin/ip link"]
grant = "none"

[[rule]]
name = "ip-standing-2"
users = ["alice"]
commands = ["/usr/sbin/ip **"]
grant = "none"

[[rule]]
name = "pg"
users = ["bob"]
commands = ["/usr/bin/psql **"]
run_as = "postgres"
grant = "none"
"#
            .to_string(),
        }])
        .unwrap()
    }

    fn req<'a>(user: &'a str, groups: &'a [String], args: &'a [&'a OsStr]) -> Request<'a> {
        Request {
            user,
            groups,
            host: "web-1",
            program: OsStr::new("/usr/sbin/ip"),
            args,
            run_as: None,
            rule: None,
        }
    }

    #[test]
    fn every_rule_gets_a_reason() {
        let p = policy();
        let args = [OsStr::new("link")];
        let e = explain(&p, &req("alice", &[], &args), None);
        assert!(matches!(e.decision, Decision::Allow { rule, .. } if rule.name == "ip-standing"));
        let v: Vec<_> = e
            .rules
            .iter()
            .map(|r| (r.rule.name.as_str(), r.verdict.clone()))
            .collect();
        assert_eq!(v[0].1, Verdict::NoMatch("does not name user alice or any of their groups (none) (users: none; groups: netops)".to_string()));
        assert_eq!(v[1].1, Verdict::Chosen);
        assert_eq!(
            v[2].1,
            Verdict::NotChosen(
                "matches too, but rule \"ip-standing\" comes first in load order".to_string()
            )
        );
        assert_eq!(
            v[3].1,
            Verdict::NoMatch(
                "does not name user alice or any of their groups (none) (users: bob; groups: none)"
                    .to_string()
            )
        );

        // A netops member: the grant-required rule needs a grant.
        let groups = ["netops".to_string()];
        let e = explain(&p, &req("dave", &groups, &args), None);
        assert!(matches!(e.decision, Decision::Deny(_)));
        assert_eq!(
            e.rules[0].verdict,
            Verdict::NoMatch(
                "needs a grant (grant = \"required\"); run: jitctl request net".to_string()
            )
        );
        // With a grant for it.
        let g = GrantView {
            id: "g".to_string(),
            rule: "net".to_string(),
            caps: None,
            cmd: None,
            run_as: None,
            lifetime: Duration::from_secs(60),
            approvers: vec![],
            subject: "dave".to_string(),
            break_glass: false,
        };
        let e = explain(&p, &req("dave", &groups, &args), Some(&g));
        assert_eq!(e.rules[0].verdict, Verdict::Chosen);
        // A grant that is too long: the decision's refusal is the reason.
        let mut long = g.clone();
        long.lifetime = Duration::from_secs(7200);
        let e = explain(&p, &req("dave", &groups, &args), Some(&long));
        assert!(
            matches!(&e.rules[0].verdict, Verdict::NoMatch(m) if m.contains("longer than rule")),
            "{:?}",
            e.rules[0].verdict
        );
        // Host and command reasons.
        let mut r = req("dave", &groups, &args);
        r.host = "db-1";
        let e = explain(&p, &r, Some(&g));
        assert_eq!(
            e.rules[0].verdict,
            Verdict::NoMatch("does not allow host db-1 (hosts: web-*)".to_string())
        );
        let args2 = [OsStr::new("addr")];
        let e = explain(&p, &req("alice", &[], &args2), None);
        assert_eq!(
            e.rules[1].verdict,
            Verdict::NoMatch(
                "no command pattern matches /usr/sbin/ip addr (commands: \"/usr/sbin/ip link\")"
                    .to_string()
            )
        );
        // -u.
        let mut r = req("alice", &[], &args);
        r.run_as = Some("root");
        let e = explain(&p, &r, None);
        assert_eq!(
            e.rules[1].verdict,
            Verdict::NoMatch("runs commands as alice, not as \"root\" (-u)".to_string())
        );
    }
}
