use super::*;
use crate::policy::Policy;

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

fn load(tests: &str) -> Result<(Policy, Vec<PolicyTest>), PolicyError> {
    let sources = [PolicySource {
        name: "p.toml".to_string(),
        text: format!("{POLICY}\n{tests}"),
    }];
    Ok((Policy::load(&sources)?, load_tests(&sources)?))
}

fn outcome(test: &str) -> TestOutcome {
    let (p, tests) = load(test).unwrap();
    run_test(&p, &tests[0])
}

#[test]
fn parses_every_field() {
    let p = load(
        "[[test]]\nname = \"n\"\nuser = \"dave\"\ngroups = [\"netops\"]\nhost = \"web-1\"\nargv = [\"/usr/sbin/ip\", \"link\"]\n\
         grant = { rule = \"net-debug\", caps = [\"net_raw\"], cmd = \"/usr/sbin/ip link\", run_as = \"invoker\", approvers = [\"b\"], break_glass = false }\n\
         run_as = \"dave\"\nexpect = \"allow\"\ncaps = [\"CAP_NET_RAW\"]\nrule = \"net-debug\"\n",
    )
    .unwrap();
    let (p, tests) = p;
    let t = &tests[0];
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

#[test]
fn cases_are_read_in_file_order_with_their_lines() {
    let sources = [
        PolicySource {
            name: "a.toml".to_string(),
            text: "[[test]]\nuser = \"a\"\nargv = [\"/bin/x\"]\nexpect = \"deny\"\n".to_string(),
        },
        PolicySource {
            name: "b.toml".to_string(),
            text: "\n[[rule]]\nname = \"r\"\n\n[[test]]\nuser = \"b\"\nargv = [\"/bin/y\"]\nexpect = \"allow\"\n".to_string(),
        },
    ];
    let tests = load_tests(&sources).unwrap();
    let at: Vec<(&str, usize, &str)> = tests
        .iter()
        .map(|t| (t.source.file.as_str(), t.source.line, t.user.as_str()))
        .collect();
    assert_eq!(at, [("a.toml", 1, "a"), ("b.toml", 5, "b")]);
    assert_eq!(tests[0].argv, ["/bin/x"]);
    assert_eq!(tests[1].label(), "b may run /bin/y");
    // A test key that is not an array of tables is refused here (the loader passes it over).
    for (text, want) in [
        ("test = 1\n", "t.toml:1: test: expected an array of tables, found an integer"),
        ("[test]\nuser = \"a\"\n", "t.toml:1: test: expected an array of tables, found a table; write [[test]], not [test]"),
        ("test = [\n  1,\n]\n", "t.toml:2: test: expected a table, found an integer"),
        ("[[test]]\nuser = \"a\"\nargv = [\"/bin/x\"]\nexpect = \"deny\"\nanything = { nested = 1 }\n", "t.toml:5: test[0]: unknown key \"anything\""),
    ] {
        let e = load_tests(&[PolicySource {
            name: "t.toml".to_string(),
            text: text.to_string(),
        }])
        .unwrap_err()
        .to_string();
        assert!(e.starts_with(want), "{text:?}\n got: {e}\nwant: {want}");
    }
}
