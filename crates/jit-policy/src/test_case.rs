//! `[[test]]` cases in policy files: who runs what, where, with which grant, and the
//! decision expected. They are parsed (typed, with `file:LINE` errors, unknown keys
//! refused) whenever policy is loaded, so `jitctl policy check` and jitrun agree on what
//! a valid file is, but only `jitctl policy test` evaluates them, through the same
//! [`decide`] jitrun uses.
//!
//! ```toml
//! [[test]]
//! name = "alice may sniff with a grant"  # optional; shown by the runner
//! user = "alice"
//! groups = ["netops"]                    # the caller's groups; default []
//! host = "web-1"                         # default "localhost"
//! argv = ["/usr/bin/tcpdump", "-i", "eth0"]  # argv[0] an absolute path
//! grant = { rule = "net-debug", caps = ["net_raw"], cmd = "/usr/bin/tcpdump **", run_as = "invoker" }
//! run_as = "alice"                       # the -u option; default none
//! expect = "allow"                       # or "deny"
//! caps = ["CAP_NET_RAW"]                 # with allow: the exact final capabilities
//! rule = "net-debug"                     # the rule expected to allow (or to be named by the denial)
//! deny = "grant_required"                # with deny: the expected deny code
//! ```
//!
//! Without `grant` the case is decided as standing access (no grant at all). With a
//! `grant` table, a synthetic grant is built: valid now, for the test's user and host,
//! lasting the rule's `max_duration`, approved by `min_approvals` distinct approvers
//! (unless `approvers` lists them), for the rule `grant.rule` names, else the rule the
//! test expects (`rule`), else each rule that names the user, the host and the command
//! in turn (the first that allows wins, as with a grant store).

use crate::decide::{allows_command, allows_host, names_user};
use crate::policy::{valid_rule_name, valid_user_name, SourceLoc};
use crate::text::quote;
use crate::toml_doc::{Doc, Entry, Raw};
use crate::{decide, CapSet, CommandPattern, Decision, DenyCode, GrantView, Policy};
use crate::{PolicyError, Request, RunAs};
use std::ffi::OsStr;
use std::ops::Range;

/// Expected outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expect {
    Allow,
    Deny,
}

/// The `grant = { ... }` table of a test.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TestGrant {
    pub rule: Option<String>,
    pub caps: Option<CapSet>,
    pub cmd: Option<Vec<CommandPattern>>,
    pub run_as: Option<RunAs>,
    /// Default: `min_approvals` made-up approvers, enough for the rule.
    pub approvers: Option<Vec<String>>,
    pub break_glass: bool,
    /// A sealed break-glass grant (implies `break_glass`), valid for the rule's
    /// `sealed_validity`.
    pub sealed: bool,
}

#[derive(Debug, Clone)]
pub struct PolicyTest {
    /// 1-based line of the `[[test]]` header.
    pub source: SourceLoc,
    pub name: Option<String>,
    pub user: String,
    pub groups: Vec<String>,
    pub host: String,
    pub argv: Vec<String>,
    pub grant: Option<TestGrant>,
    /// `-u USER`.
    pub run_as: Option<String>,
    pub expect: Expect,
    /// Expected final capabilities (allow only).
    pub caps: Option<CapSet>,
    /// Expected rule.
    pub rule: Option<String>,
    /// Expected deny code (deny only).
    pub deny: Option<DenyCode>,
}

impl PolicyTest {
    /// `name`, else a short description from the case itself.
    pub fn label(&self) -> String {
        match &self.name {
            Some(n) => n.clone(),
            None => format!(
                "{} {} {}{}",
                self.user,
                match self.expect {
                    Expect::Allow => "may run",
                    Expect::Deny => "may not run",
                },
                self.argv.join(" "),
                if self.grant.is_some() {
                    " (with a grant)"
                } else {
                    ""
                }
            ),
        }
    }
}

const TEST_KEYS: &[&str] = &[
    "name", "user", "groups", "host", "argv", "grant", "run_as", "expect", "caps", "rule", "deny",
];
const GRANT_KEYS: &[&str] = &[
    "rule",
    "caps",
    "cmd",
    "run_as",
    "approvers",
    "break_glass",
    "sealed",
];

fn parse_run_as(doc: &Doc<'_>, e: &Entry, field: &str) -> Result<RunAs, PolicyError> {
    match doc.string(e, field)? {
        "invoker" => Ok(RunAs::Invoker),
        "root" => Ok(RunAs::Root),
        u if valid_user_name(u) => Ok(RunAs::User(u.to_string())),
        u => Err(doc.err(
            doc.entry_span(e),
            field,
            format!(
                "invalid value {}: expected \"invoker\", \"root\" or a user name",
                quote(u)
            ),
        )),
    }
}

fn parse_caps(doc: &Doc<'_>, e: &Entry, field: &str) -> Result<CapSet, PolicyError> {
    let list = doc.strings(e, field, "[\"CAP_NET_RAW\"]")?;
    let mut set = CapSet::EMPTY;
    for (c, sp) in &list {
        set.0 |= CapSet::parse_list(&[c])
            .map_err(|err| doc.locate(err, *sp, field))?
            .0;
    }
    Ok(set)
}

fn parse_cmd(doc: &Doc<'_>, e: &Entry, field: &str) -> Result<Vec<CommandPattern>, PolicyError> {
    let sp = doc.entry_span(e);
    let one = |n: &crate::toml_doc::Node| -> Result<CommandPattern, PolicyError> {
        crate::policy::parse_pattern_node(
            doc,
            n,
            sp,
            field,
            "a command pattern (a string or an array of strings)",
        )
    };
    match &e.node.value {
        // One pattern: a string, or an array of words (the array form) ...
        Raw::Str(_) => Ok(vec![one(&e.node)?]),
        Raw::Array(items) if items.iter().all(|n| matches!(n.value, Raw::Str(_))) => {
            // ... an array of strings is ambiguous: the claim's syntax says a string or an
            // array of strings is ONE pattern, so it is read as the array form.
            Ok(vec![one(&e.node)?])
        }
        // Several patterns: an array of arrays.
        Raw::Array(items) => items.iter().map(one).collect(),
        other => Err(doc.err(
            sp,
            field,
            format!(
                "expected a command pattern such as \"/usr/sbin/ip link **\", found {}",
                other.kind()
            ),
        )),
    }
}

fn parse_grant(doc: &Doc<'_>, e: &Entry, label: &str) -> Result<TestGrant, PolicyError> {
    let field = |k: &str| format!("{label}: grant.{k}");
    let table = match &e.node.value {
        Raw::Table(t) => t,
        other => {
            return Err(doc.err(
                doc.entry_span(e),
                &format!("{label}: grant"),
                format!(
                    "expected a table such as {{ rule = \"net-debug\" }}, found {}; leave grant out to test standing access (no grant)",
                    other.kind()
                ),
            ))
        }
    };
    doc.check_keys(table, GRANT_KEYS, &format!("{label}: grant"))?;
    let mut g = TestGrant::default();
    for entry in table {
        let f = field(&entry.key);
        match entry.key.as_str() {
            "rule" => g.rule = Some(doc.string(entry, &f)?.to_string()),
            "caps" => g.caps = Some(parse_caps(doc, entry, &f)?),
            "cmd" => g.cmd = Some(parse_cmd(doc, entry, &f)?),
            "run_as" => g.run_as = Some(parse_run_as(doc, entry, &f)?),
            "approvers" => {
                g.approvers = Some(
                    doc.strings(entry, &f, "[\"bob\", \"carol\"]")?
                        .into_iter()
                        .map(|(s, _)| s.to_string())
                        .collect(),
                )
            }
            "break_glass" => g.break_glass = doc.boolean(entry, &f)?,
            "sealed" => g.sealed = doc.boolean(entry, &f)?,
            _ => unreachable!("keys were checked"),
        }
    }
    Ok(g)
}

pub(crate) fn parse_test(
    doc: &Doc<'_>,
    table: &[Entry],
    span: Option<&Range<usize>>,
    index: usize,
    source: SourceLoc,
) -> Result<PolicyTest, PolicyError> {
    let get = |key: &str| table.iter().find(|e| e.key == key);
    let name = match get("name") {
        Some(e) => Some(doc.string(e, &format!("test[{index}]: name"))?.to_string()),
        None => None,
    };
    let label = match &name {
        Some(n) => format!("test {}", quote(n)),
        None => format!("test[{index}]"),
    };
    let field = |key: &str| format!("{label}: {key}");
    doc.check_keys(table, TEST_KEYS, &label)?;
    let required = |key: &str, example: &str| {
        get(key).ok_or_else(|| {
            doc.err(
                span,
                &field(key),
                format!("missing; every test needs {key} = {example}"),
            )
        })
    };

    let e = required("user", "\"alice\"")?;
    let user = doc.string(e, &field("user"))?;
    if !valid_user_name(user) {
        return Err(doc.err(
            doc.entry_span(e),
            &field("user"),
            format!("invalid user name {}", quote(user)),
        ));
    }
    let groups = match get("groups") {
        None => Vec::new(),
        Some(e) => doc
            .strings(e, &field("groups"), "[\"netops\"]")?
            .into_iter()
            .map(|(g, sp)| {
                if valid_user_name(g) {
                    Ok(g.to_string())
                } else {
                    Err(doc.err(
                        sp,
                        &field("groups"),
                        format!("invalid group name {}", quote(g)),
                    ))
                }
            })
            .collect::<Result<_, _>>()?,
    };
    let host = match get("host") {
        None => "localhost".to_string(),
        Some(e) => {
            let h = doc.string(e, &field("host"))?;
            if h.is_empty()
                || !h.chars().all(|c| c.is_ascii_graphic())
                || h.contains(['*', '?', '['])
            {
                return Err(doc.err(
                    doc.entry_span(e),
                    &field("host"),
                    format!(
                        "invalid host name {}: a test runs on one host, so no globs",
                        quote(h)
                    ),
                ));
            }
            h.to_string()
        }
    };
    let e = required("argv", "[\"/usr/sbin/ip\", \"link\"]")?;
    let argv: Vec<String> = doc
        .strings(e, &field("argv"), "[\"/usr/sbin/ip\", \"link\"]")?
        .into_iter()
        .map(|(s, _)| s.to_string())
        .collect();
    match argv.first() {
        None => {
            return Err(doc.err(
                doc.entry_span(e),
                &field("argv"),
                "empty: give at least the program, e.g. [\"/usr/sbin/ip\", \"link\"]",
            ))
        }
        Some(p) if !p.starts_with('/') => {
            return Err(doc.err(
                doc.entry_span(e),
                &field("argv"),
                format!(
                    "the program {} must be an absolute path, as jitrun resolves it (tests do not search secure_path)",
                    quote(p)
                ),
            ))
        }
        Some(_) => {}
    }
    let grant = match get("grant") {
        None => None,
        Some(e) => Some(parse_grant(doc, e, &label)?),
    };
    let run_as = match get("run_as") {
        None => None,
        Some(e) => {
            let u = doc.string(e, &field("run_as"))?;
            if !valid_user_name(u) {
                return Err(doc.err(
                    doc.entry_span(e),
                    &field("run_as"),
                    format!("invalid user name {} (this is the -u option)", quote(u)),
                ));
            }
            Some(u.to_string())
        }
    };
    let e = required("expect", "\"allow\" or \"deny\"")?;
    let expect = match doc.string(e, &field("expect"))? {
        "allow" => Expect::Allow,
        "deny" => Expect::Deny,
        other => {
            return Err(doc.err(
                doc.entry_span(e),
                &field("expect"),
                format!(
                    "invalid value {}: expected \"allow\" or \"deny\"",
                    quote(other)
                ),
            ))
        }
    };
    let caps = match get("caps") {
        None => None,
        Some(e) => {
            if expect == Expect::Deny {
                return Err(doc.err(
                    doc.entry_span(e),
                    &field("caps"),
                    "expected capabilities only make sense with expect = \"allow\"",
                ));
            }
            Some(parse_caps(doc, e, &field("caps"))?)
        }
    };
    let rule = match get("rule") {
        None => None,
        Some(e) => {
            let r = doc.string(e, &field("rule"))?;
            if !valid_rule_name(r) {
                return Err(doc.err(
                    doc.entry_span(e),
                    &field("rule"),
                    format!("invalid rule name {}", quote(r)),
                ));
            }
            Some(r.to_string())
        }
    };
    let deny = match get("deny") {
        None => None,
        Some(e) => {
            let code = doc.string(e, &field("deny"))?;
            if expect == Expect::Allow {
                return Err(doc.err(
                    doc.entry_span(e),
                    &field("deny"),
                    "an expected deny code only makes sense with expect = \"deny\"",
                ));
            }
            Some(DenyCode::parse(code).ok_or_else(|| {
                doc.err(
                    doc.entry_span(e),
                    &field("deny"),
                    format!(
                        "unknown deny code {}; known codes: {}",
                        quote(code),
                        DenyCode::ALL
                            .iter()
                            .map(|c| c.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                )
            })?)
        }
    };
    Ok(PolicyTest {
        source,
        name,
        user: user.to_string(),
        groups,
        host,
        argv,
        grant,
        run_as,
        expect,
        caps,
        rule,
        deny,
    })
}

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
    let (lifetime, needed) =
        policy
            .rule(rule)
            .map_or((std::time::Duration::from_secs(60), 0), |r| {
                let lifetime = match (g.sealed, r.sealed_validity) {
                    (true, Some(validity)) => validity,
                    _ => r.max_duration,
                };
                (lifetime, r.min_approvals)
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
        break_glass: g.break_glass || g.sealed,
        sealed: g.sealed,
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
    let decision = decide_test(policy, t);
    let mut problems: Vec<String> = Vec::new();
    let got = match &decision {
        Decision::Allow { rule, caps, run_as } => {
            if t.expect == Expect::Deny {
                problems.push("expected deny, got allow".to_string());
            }
            if let Some(want) = t.caps {
                if want != *caps {
                    problems.push(format!("expected capabilities {want}, got {caps}"));
                }
            }
            if let Some(want) = &t.rule {
                if *want != rule.name {
                    problems.push(format!(
                        "expected rule {}, got rule {}",
                        quote(want),
                        quote(&rule.name)
                    ));
                }
            }
            format!(
                "allowed by rule {} as {} with {caps}",
                quote(&rule.name),
                run_as_text(run_as)
            )
        }
        Decision::Deny(d) => {
            if t.expect == Expect::Allow {
                problems.push("expected allow, got deny".to_string());
            }
            if let Some(want) = t.deny {
                if want != d.code {
                    problems.push(format!("expected deny code {want}, got {}", d.code));
                }
            }
            if t.expect == Expect::Deny {
                if let Some(want) = &t.rule {
                    if d.rule.as_deref() != Some(want.as_str()) {
                        problems.push(format!(
                            "expected the denial to name rule {}, it names {}",
                            quote(want),
                            d.rule.as_deref().map_or("no rule".to_string(), quote)
                        ));
                    }
                }
            }
            format!("denied ({}): {}", d.code, d.message)
        }
    };
    TestOutcome {
        passed: problems.is_empty(),
        got,
        mismatch: (!problems.is_empty()).then(|| problems.join("; ")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::PolicySource;

    const POLICY: &str = r#"
[[rule]]
name = "net-debug"
groups = ["netops"]
hosts = ["web-*"]
commands = ["/usr/sbin/ip **", "/usr/bin/tcpdump -i * **"]
capabilities = ["net_admin", "net_raw"]
min_approvals = 1

[[rule]]
name = "logs"
users = ["alice"]
commands = ["/usr/bin/journalctl **"]
grant = "none"

[[rule]]
name = "root-reboot"
users = ["alice"]
commands = ["/usr/sbin/reboot"]
run_as = "root"
capabilities = ["ALL"]
min_approvals = 2
"#;

    fn load(tests: &str) -> Result<Policy, PolicyError> {
        Policy::load(&[PolicySource {
            name: "p.toml".to_string(),
            text: format!("{POLICY}\n{tests}"),
        }])
    }

    fn outcome(test: &str) -> TestOutcome {
        let p = load(test).unwrap();
        run_test(&p, &p.tests[0])
    }

    #[test]
    fn parses_every_field() {
        let p = load(
            "[[test]]\nname = \"n\"\nuser = \"dave\"\ngroups = [\"netops\"]\nhost = \"web-1\"\nargv = [\"/usr/sbin/ip\", \"link\"]\n\
             grant = { rule = \"net-debug\", caps = [\"net_raw\"], cmd = \"/usr/sbin/ip link\", run_as = \"invoker\", approvers = [\"b\"], break_glass = false }\n\
             run_as = \"dave\"\nexpect = \"allow\"\ncaps = [\"CAP_NET_RAW\"]\nrule = \"net-debug\"\n",
        )
        .unwrap();
        let t = &p.tests[0];
        assert_eq!(t.source.line, 24);
        assert_eq!(t.name.as_deref(), Some("n"));
        assert_eq!((t.user.as_str(), t.host.as_str()), ("dave", "web-1"));
        assert_eq!(t.groups, ["netops"]);
        let g = t.grant.as_ref().unwrap();
        assert_eq!(g.rule.as_deref(), Some("net-debug"));
        assert_eq!(g.caps.unwrap().names(), ["CAP_NET_RAW"]);
        assert_eq!(g.cmd.as_ref().unwrap()[0].to_string(), "/usr/sbin/ip link");
        assert_eq!(g.approvers.as_deref(), Some(&["b".to_string()][..]));
        assert_eq!(t.run_as.as_deref(), Some("dave"));
        assert_eq!(t.expect, Expect::Allow);
        assert!(run_test(&p, t).passed, "{:?}", run_test(&p, t));
    }

    #[test]
    fn errors_have_file_line_and_field() {
        let cases: &[(&str, &str)] = &[
            ("[[test]]\nuser = \"a\"\nargv = [\"/bin/x\"]\nexpect = \"allow\"\nexpct = 1\n", ":28: test[0]: unknown key \"expct\" (did you mean \"expect\"?)"),
            ("[[test]]\nuser = \"a\"\nargv = [\"/bin/x\"]\n", ":24: test[0]: expect: missing"),
            ("[[test]]\nname = \"t\"\nuser = \"a\"\nargv = [\"x\"]\nexpect = \"deny\"\n", ":27: test \"t\": argv: the program \"x\" must be an absolute path"),
            ("[[test]]\nuser = \"a\"\nargv = [\"/bin/x\"]\nexpect = \"maybe\"\n", ":27: test[0]: expect: invalid value \"maybe\""),
            ("[[test]]\nuser = \"a\"\nargv = [\"/bin/x\"]\nexpect = \"deny\"\ncaps = [\"net_raw\"]\n", ":28: test[0]: caps: expected capabilities only make sense with expect = \"allow\""),
            ("[[test]]\nuser = \"a\"\nargv = [\"/bin/x\"]\nexpect = \"deny\"\ndeny = \"nope\"\n", ":28: test[0]: deny: unknown deny code \"nope\"; known codes: no_rule,"),
            ("[[test]]\nuser = \"a\"\nargv = [\"/bin/x\"]\nexpect = \"deny\"\ngrant = { rul = \"x\" }\n", ":28: test[0]: grant: unknown key \"rul\" (did you mean \"rule\"?)"),
            ("[[test]]\nuser = \"a\"\nargv = [\"/bin/x\"]\nexpect = \"deny\"\ngrant = { caps = [\"net_foo\"] }\n", ":28: test[0]: grant.caps: unknown capability \"net_foo\""),
            ("[[test]]\nuser = \"a\"\nargv = [\"/bin/x\"]\nexpect = \"deny\"\ngrant = \"none\"\n", ":28: test[0]: grant: expected a table"),
            ("[[test]]\nuser = \"a\"\nhost = \"web-*\"\nargv = [\"/bin/x\"]\nexpect = \"deny\"\n", ":26: test[0]: host: invalid host name \"web-*\""),
        ];
        for (text, want) in cases {
            let e = load(text).unwrap_err().to_string();
            assert!(
                e.starts_with(&format!("p.toml{want}")),
                "{text:?}\n got: {e}\nwant: p.toml{want}"
            );
        }
    }

    #[test]
    fn standing_and_grant_cases_pass_and_fail() {
        // Standing access.
        let o = outcome("[[test]]\nuser = \"alice\"\nargv = [\"/usr/bin/journalctl\", \"-f\"]\nexpect = \"allow\"\nrule = \"logs\"\ncaps = []\n");
        assert!(o.passed, "{o:?}");
        assert_eq!(
            o.got,
            "allowed by rule \"logs\" as the invoker with no capabilities"
        );
        // A grant-required rule without a grant.
        let o = outcome("[[test]]\nuser = \"dave\"\ngroups = [\"netops\"]\nhost = \"web-1\"\nargv = [\"/usr/sbin/ip\"]\nexpect = \"deny\"\ndeny = \"grant_required\"\nrule = \"net-debug\"\n");
        assert!(o.passed, "{o:?}");
        // With a grant whose rule is found from the command; narrowed caps.
        let o = outcome("[[test]]\nuser = \"dave\"\ngroups = [\"netops\"]\nhost = \"web-1\"\nargv = [\"/usr/bin/tcpdump\", \"-i\", \"eth0\"]\ngrant = { caps = [\"net_raw\"] }\nexpect = \"allow\"\ncaps = [\"net_raw\"]\n");
        assert!(o.passed, "{o:?}");
        // Wrong expectation: the runner says what differs.
        let o = outcome("[[test]]\nuser = \"dave\"\ngroups = [\"netops\"]\nhost = \"web-1\"\nargv = [\"/usr/sbin/ip\"]\ngrant = {}\nexpect = \"allow\"\ncaps = [\"net_raw\"]\n");
        assert!(!o.passed);
        assert_eq!(
            o.mismatch.as_deref(),
            Some("expected capabilities CAP_NET_RAW, got CAP_NET_ADMIN, CAP_NET_RAW")
        );
        let o = outcome("[[test]]\nuser = \"dave\"\ngroups = [\"netops\"]\nhost = \"db-1\"\nargv = [\"/usr/sbin/ip\"]\ngrant = {}\nexpect = \"allow\"\n");
        assert!(!o.passed);
        assert!(o.got.starts_with("denied (host_not_allowed)"), "{o:?}");
        assert_eq!(o.mismatch.as_deref(), Some("expected allow, got deny"));
        // Approvals: the default grant has enough; an explicit list may not.
        let o = outcome("[[test]]\nuser = \"alice\"\nargv = [\"/usr/sbin/reboot\"]\ngrant = { rule = \"root-reboot\" }\nexpect = \"allow\"\ncaps = [\"ALL\"]\n");
        assert!(o.passed, "{o:?}");
        let o = outcome("[[test]]\nuser = \"alice\"\nargv = [\"/usr/sbin/reboot\"]\ngrant = { rule = \"root-reboot\", approvers = [\"bob\", \"alice\"] }\nexpect = \"deny\"\ndeny = \"approvals\"\n");
        assert!(o.passed, "{o:?}");
        let o = outcome("[[test]]\nuser = \"alice\"\nargv = [\"/usr/sbin/reboot\"]\ngrant = { rule = \"root-reboot\", approvers = [], break_glass = true }\nexpect = \"allow\"\n");
        assert!(o.passed, "{o:?}");
        // Deny code mismatch.
        let o = outcome("[[test]]\nuser = \"alice\"\nargv = [\"/usr/sbin/reboot\"]\nexpect = \"deny\"\ndeny = \"no_rule\"\n");
        assert!(!o.passed);
        assert_eq!(
            o.mismatch.as_deref(),
            Some("expected deny code no_rule, got grant_required")
        );
        // -u is checked.
        let o = outcome("[[test]]\nuser = \"alice\"\nargv = [\"/usr/bin/journalctl\"]\nrun_as = \"root\"\nexpect = \"deny\"\ndeny = \"run_as\"\n");
        assert!(o.passed, "{o:?}");
    }
}
