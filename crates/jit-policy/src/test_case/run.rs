//! Running a `[[test]]` case: the decision jitrun would make, compared with the expected one.

use super::{Expect, PolicyTest, TestGrant};
use crate::caps::CapSet;
use crate::decide::{
    allows_command, allows_host, decide, names_user, Decision, Denial, GrantView, Request,
};
use crate::policy::Policy;
use crate::rule::{Rule, RunAs};
use crate::text::quote;
use std::ffi::OsStr;
use std::time::Duration;

/// What one case did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TestOutcome {
    pub passed: bool,
    /// What the decision was, e.g. `allowed by rule "net-debug" as the invoker with CAP_NET_RAW`
    /// or `denied (grant_required): rule "x" allows this only with a grant; ...`.
    pub got: String,
    /// When failed: what differs from the expectation.
    pub mismatch: Option<String>,
}

/// The synthetic grant of a case for one rule.
fn grant_view(policy: &Policy, t: &PolicyTest, g: &TestGrant, rule: &str) -> GrantView {
    let (lifetime, needed) = policy.rule(rule).map_or((Duration::from_secs(60), 0), |r| {
        (r.max_duration, r.min_approvals)
    });
    GrantView {
        id: "test-grant".to_string(),
        rule: rule.to_string(),
        caps: g.caps,
        cmd: g.cmd.clone(),
        run_as: g.run_as.clone(),
        lifetime,
        approvers: g
            .approvers
            .clone()
            .unwrap_or_else(|| (1..=needed).map(|i| format!("approver-{i}")).collect()),
        subject: t.user.clone(),
        break_glass: g.break_glass,
    }
}

/// Decide a case through [`decide`], as jitrun would.
pub fn decide_test<'p>(policy: &'p Policy, t: &PolicyTest) -> Decision<'p> {
    let args: Vec<&OsStr> = t.argv[1..].iter().map(OsStr::new).collect();
    let request = Request {
        user: &t.user,
        groups: &t.groups,
        host: &t.host,
        program: OsStr::new(&t.argv[0]),
        args: &args,
        run_as: t.run_as.as_deref(),
        rule: None,
    };
    let Some(g) = &t.grant else {
        return decide(policy, &request, None);
    };
    if let Some(rule) = g.rule.as_deref().or(t.rule.as_deref()) {
        return decide(policy, &request, Some(&grant_view(policy, t, g, rule)));
    }
    // Each rule that could be meant, in load order; the first that allows wins, else the
    // first refusal.
    let mut first: Option<Decision<'p>> = None;
    for r in policy.rules.iter().filter(|r| {
        names_user(r, &t.user, &t.groups)
            && allows_host(r, &t.host)
            && allows_command(r, request.program, &args)
    }) {
        let d = decide(policy, &request, Some(&grant_view(policy, t, g, &r.name)));
        if matches!(d, Decision::Allow { .. }) {
            return d;
        }
        first.get_or_insert(d);
    }
    first.unwrap_or_else(|| {
        // No rule covers the command: decide without a grant for the most specific reason.
        decide(policy, &request, None)
    })
}

fn run_as_text(r: &RunAs) -> String {
    match r {
        RunAs::Invoker => "the invoker".to_string(),
        RunAs::Root => "root".to_string(),
        RunAs::User(u) => u.clone(),
    }
}

/// Run one case.
pub fn run_test(policy: &Policy, t: &PolicyTest) -> TestOutcome {
    let (got, problems) = match &decide_test(policy, t) {
        Decision::Allow { rule, caps, run_as } => (
            format!(
                "allowed by rule {} as {} with {caps}",
                quote(&rule.name),
                run_as_text(run_as)
            ),
            allow_mismatches(t, rule, *caps),
        ),
        Decision::Deny(d) => (
            format!("denied ({}): {}", d.code, d.message),
            deny_mismatches(t, d),
        ),
    };
    TestOutcome {
        passed: problems.is_empty(),
        got,
        mismatch: (!problems.is_empty()).then(|| problems.join("; ")),
    }
}

/// How an allow differs from what the case expects.
fn allow_mismatches(t: &PolicyTest, rule: &Rule, caps: CapSet) -> Vec<String> {
    let mut problems = Vec::new();
    if t.expect == Expect::Deny {
        problems.push("expected deny, got allow".to_string());
    }
    if let Some(want) = t.caps.filter(|want| *want != caps) {
        problems.push(format!("expected capabilities {want}, got {caps}"));
    }
    if let Some(want) = t.rule.as_ref().filter(|want| **want != rule.name) {
        problems.push(format!(
            "expected rule {}, got rule {}",
            quote(want),
            quote(&rule.name)
        ));
    }
    problems
}

/// How a denial differs from what the case expects.
fn deny_mismatches(t: &PolicyTest, d: &Denial) -> Vec<String> {
    let mut problems = Vec::new();
    if t.expect == Expect::Allow {
        problems.push("expected allow, got deny".to_string());
    }
    if let Some(want) = t.deny.filter(|want| *want != d.code) {
        problems.push(format!("expected deny code {want}, got {}", d.code));
    }
    let wanted_rule = t.rule.as_deref().filter(|_| t.expect == Expect::Deny);
    if let Some(want) = wanted_rule.filter(|want| d.rule.as_deref() != Some(*want)) {
        problems.push(format!(
            "expected the denial to name rule {}, it names {}",
            quote(want),
            d.rule.as_deref().map_or("no rule".to_string(), quote)
        ));
    }
    problems
}
