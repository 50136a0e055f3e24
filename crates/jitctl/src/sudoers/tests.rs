use super::*;

fn load(text: &str) -> Policy {
    Policy::load(&[PolicySource {
        name: "out.toml".to_string(),
        text: text.to_string(),
    }])
    .unwrap_or_else(|e| panic!("{e}\n{text}"))
}

fn ok(src: &str) -> Conversion {
    convert("s", src).unwrap_or_else(|e| panic!("{e:?}"))
}

fn refused(src: &str) -> SyntaxError {
    convert("s", src).expect_err("visudo refuses this")
}

fn commands(p: &Policy, rule: usize) -> Vec<String> {
    p.rules[rule]
        .commands
        .iter()
        .map(ToString::to_string)
        .collect()
}

#[test]
fn common_forms() {
    let src = "User_Alias ADMINS = alice, %wheel\nRunas_Alias DB = postgres\nHost_Alias WEB = web1, web2\nCmnd_Alias NET = /usr/sbin/ip link *, /usr/bin/ping\nDefaults env_keep += \"LANG TERM APP_MODE\"\nDefaults env_keep += \"LD_PRELOAD\"\n\nADMINS WEB = NOPASSWD: NET, /usr/bin/id \"\"\nbob ALL = (DB) /usr/bin/psql\n%sudo ALL=(ALL:ALL) ALL\n";
    let c = ok(src);
    let p = load(&c.policy);
    assert_eq!(p.rules.len(), 2, "{}", c.policy);
    // Reverse order: line 9 first.
    let (a, b) = (&p.rules[1], &p.rules[0]);
    assert_eq!(a.name, "s-8");
    assert_eq!(a.users, ["alice"]);
    assert_eq!(a.groups, ["wheel"]);
    assert_eq!(a.hosts, ["web1", "web2"]);
    assert_eq!(
        commands(&p, 1),
        ["/usr/sbin/ip link * **", "/usr/bin/ping **", "/usr/bin/id"]
    );
    assert!(a.capabilities.is_all());
    // NOPASSWD, but %sudo's later ALL line (a password) may concern the same people.
    assert!(a.authenticate);
    assert!(
        c.policy
            .contains("# note: asks for a password: line 10 comes later"),
        "{}",
        c.policy
    );
    assert_eq!(a.env_keep, ["LANG", "TERM"]);
    assert_eq!(a.env_keep_unchecked, ["APP_MODE"]);
    assert_eq!(a.grant, jit_policy::GrantMode::None);
    assert_eq!(b.run_as, jit_policy::RunAs::User("postgres".into()));
    assert!(b.capabilities.is_empty());
    assert!(b.authenticate, "no NOPASSWD: sudo asks for a password");
    assert!(
        c.policy
            .contains("# from s:8: ADMINS WEB = NOPASSWD: NET, /usr/bin/id \"\"\n"),
        "{}",
        c.policy
    );
    let whats: Vec<&str> = c.skipped.iter().map(|s| s.what.as_str()).collect();
    assert!(
        whats.contains(&"Defaults env_keep+=LD_PRELOAD"),
        "{whats:?}"
    );
    assert!(
        c.skipped
            .iter()
            .any(|s| s.line == 10 && s.why.starts_with("command ALL")),
        "{:?}",
        c.skipped
    );
}

#[test]
fn the_issues_examples_convert_safely_or_are_refused() {
    // Options carry forward: neither command converts (they would lose NOTBEFORE/NOTAFTER).
    let c =
        ok("user0 ALL = NOTBEFORE=20170214083000Z NOTAFTER=20170301083000Z /usr/bin/id, /bin/ls\n");
    assert_eq!(c.rules, 0);
    assert!(
        c.skipped
            .iter()
            .any(|s| s.what == "/bin/ls" && s.why.contains("NOTBEFORE=20170214083000Z")),
        "{:?}",
        c.skipped
    );
    let c = ok("alice ALL = CHROOT=/jail /usr/bin/id, /usr/bin/who\n");
    assert_eq!(c.rules, 0);
    assert!(c
        .skipped
        .iter()
        .any(|s| s.what == "/usr/bin/who" && s.why.contains("CHROOT=/jail")));
    // What visudo refuses, with its line, column and message.
    let e =
        refused("user0 ALL = TIMEOUT=7dd4h10m30s /usr/bin/id, /usr/bin/who, TIMEOUT=0 /bin/ls\n");
    assert_eq!(
        (e.line, e.col, e.message.as_str()),
        (1, 21, "invalid timeout value")
    );
    let e = refused("User_Alias A = alice\nA ALL = /usr/bin/id\nUser_Alias A = bob\n");
    assert_eq!(
        (e.line, e.message.as_str()),
        (3, "Alias \"A\" already defined")
    );
    let e = refused("%\n");
    assert_eq!((e.line, e.col, e.message.as_str()), (1, 1, "empty group"));
    // Last match: alice's own line (a password) comes later and wins in sudo, and first in jitrun.
    let c = ok("%admins ALL = NOPASSWD: /usr/bin/id\nalice ALL = PASSWD: /usr/bin/id\n");
    let p = load(&c.policy);
    assert_eq!(p.rules[0].users, ["alice"]);
    assert!(p.rules[0].authenticate);
    assert_eq!(p.rules[1].groups, ["admins"]);
    // targetpw: the rule that would ask for the invoker's password is left out.
    let c = ok("Defaults targetpw\nalice ALL = /usr/bin/id\nbob ALL = NOPASSWD: /usr/bin/id\n");
    let p = load(&c.policy);
    assert_eq!(p.rules.len(), 1);
    assert_eq!(p.rules[0].users, ["bob"]);
    assert!(c
        .skipped
        .iter()
        .any(|s| s.line == 2 && s.why.contains("another user's password")));
    // Clear messages.
    let c = ok("alice ALL = ^/usr/bin/(who|w)$\nalice ALL = /usr/bin/[!-]*\nalice ALL = /usr/bin/who ^-[a-z]$\n");
    assert!(
        c.skipped[0]
            .why
            .starts_with("regular expressions are not supported"),
        "{:?}",
        c.skipped
    );
    assert!(
        c.skipped[1]
            .why
            .starts_with("a program path with wildcards"),
        "{:?}",
        c.skipped
    );
    assert!(c.skipped[2]
        .why
        .starts_with("regular expressions (in the arguments) are not supported"));
    assert!(c
        .skipped
        .iter()
        .all(|s| !s.why.contains("Paren") && !s.why.contains("Bang")));
    // () is "as yourself".
    let p = load(&ok("alice ALL = () /usr/bin/id\n").policy);
    assert_eq!(p.rules[0].run_as, jit_policy::RunAs::Invoker);
    assert!(p.rules[0].capabilities.is_empty());
}

#[test]
fn a_later_stricter_line_wins_as_in_sudo() {
    // A later ALL line asking for a password may concern anyone in %admins (group membership
    // is unknown here): the earlier NOPASSWD rule asks for a password too.
    let c = ok("alice ALL = NOPASSWD: /usr/bin/id\n%admins ALL = (ALL:ALL) ALL\n");
    let p = load(&c.policy);
    assert_eq!(p.rules.len(), 1);
    assert!(p.rules[0].authenticate, "{}", c.policy);
    assert!(c.policy.contains("line 2 comes later"), "{}", c.policy);
    // A later negation (sudo: denied) removes the command; an earlier one does not matter.
    let c = ok("alice ALL = /usr/bin/systemctl, /usr/bin/id\nalice ALL = !/usr/bin/systemctl\n");
    assert_eq!(commands(&load(&c.policy), 0), ["/usr/bin/id **"]);
    assert!(c
        .skipped
        .iter()
        .any(|s| s.what == "/usr/bin/systemctl" && s.why.contains("line 2 comes later")));
    let c = ok("alice ALL = !/usr/bin/systemctl\nalice ALL = /usr/bin/systemctl\n");
    assert_eq!(commands(&load(&c.policy), 0), ["/usr/bin/systemctl **"]);
    // A later line with an option: the earlier command is left out.
    let c = ok("alice ALL = NOPASSWD: /usr/bin/id\nalice ALL = CWD=/ /usr/bin/id\n");
    assert_eq!(c.rules, 0, "{}", c.policy);
    // Someone else's later line does not touch it; nor does another program.
    let c =
        ok("alice ALL = NOPASSWD: /usr/bin/id\nbob ALL = !/usr/bin/id\nalice ALL = /usr/bin/who\n");
    let p = load(&c.policy);
    assert_eq!(p.rules.len(), 2);
    assert!(!p.rules[1].authenticate);
    // A later exactly-converted stricter line takes precedence by order.
    let c = ok("alice ALL = NOPASSWD: /usr/bin/id\nalice ALL = PASSWD: /usr/bin/id -u\n");
    let p = load(&c.policy);
    assert_eq!(commands(&p, 0), ["/usr/bin/id -u"]);
    assert!(p.rules[0].authenticate && !p.rules[1].authenticate);
}

#[test]
fn restrictive_defaults_leave_out_what_they_concern() {
    let src = "Cmnd_Alias PAGERS = /usr/bin/less\nDefaults!PAGERS noexec\nDefaults:bob requiretty\nalice ALL = NOPASSWD: /usr/bin/less, /usr/bin/id\nbob ALL = NOPASSWD: /usr/bin/who\ncarol ALL = NOPASSWD: /usr/bin/who\n";
    let c = ok(src);
    let p = load(&c.policy);
    let all: Vec<String> = (0..p.rules.len()).flat_map(|i| commands(&p, i)).collect();
    assert_eq!(all, ["/usr/bin/who **", "/usr/bin/id **"], "{}", c.policy);
    assert_eq!(p.rules[0].users, ["carol"]);
    assert!(c.skipped.iter().any(|s| s.line == 4
        && s.what == "/usr/bin/less"
        && s.why.contains("Defaults!PAGERS noexec")));
    assert!(c
        .skipped
        .iter()
        .any(|s| s.line == 5 && s.why.contains("requiretty")));
    // runcwd=* lets the user choose: no restriction. runas_default changes the default identity.
    let c = ok("Defaults runcwd=*\nDefaults runas_default=svc\nalice ALL = /usr/bin/id\n");
    let p = load(&c.policy);
    assert_eq!(p.rules[0].run_as, jit_policy::RunAs::User("svc".into()));
}

#[test]
fn unsafe_partial_conversions_are_refused() {
    let src = "alice ALL = ALL, !/usr/bin/su\nbob ALL, !SRV = /usr/bin/id\nHost_Alias SRV = db1\ncarol ALL = NOEXEC: /usr/bin/less, EXEC: CWD=/tmp /usr/bin/id, sudoedit /etc/hosts, /usr/bin/passwd ^[a-z]+$, /usr/local/bin/\ndave 10.0.0.0/8, web1 = /usr/bin/id\n";
    let e = refused(src);
    assert_eq!(
        e.message, "syntax error",
        "CWD after a tag: visudo's grammar wants options first"
    );
    let src = src.replace("EXEC: CWD=/tmp /usr/bin/id", "CWD=/tmp EXEC: /usr/bin/id");
    let c = ok(&src);
    let p = load(&c.policy);
    assert_eq!(p.rules.len(), 1, "{}", c.policy);
    assert_eq!(p.rules[0].hosts, ["web1"]);
    let lines: Vec<usize> = c.skipped.iter().map(|s| s.line).collect();
    assert_eq!(lines, [1, 1, 2, 4, 4, 4, 4, 4, 5], "{:?}", c.skipped);
}

#[test]
fn names_are_per_file_and_validated() {
    let c = convert(
        "/etc/sudoers.d/10 ops",
        "al@x, bob ALL = (db@x, postgres) NOPASSWD: /usr/bin/psql\n",
    )
    .unwrap();
    let p = load(&c.policy);
    assert_eq!(p.rules[0].name, "10-ops-1");
    assert_eq!(p.rules[0].users, ["bob"]);
    assert_eq!(
        p.rules[0].run_as,
        jit_policy::RunAs::User("postgres".into())
    );
    assert_eq!(c.skipped.len(), 2, "{:?}", c.skipped);
    assert_eq!(rule_prefix("/x/"), "sudoers");
}

#[test]
fn debian_default_sudoers() {
    let src = "Defaults\tenv_reset\nDefaults\tmail_badpass\nDefaults\tsecure_path=\"/usr/local/sbin:/usr/bin\"\nDefaults\tuse_pty\nroot\tALL=(ALL:ALL) ALL\n%sudo\tALL=(ALL:ALL) ALL\n@includedir /etc/sudoers.d\n";
    let c = ok(src);
    assert_eq!(c.rules, 0);
    assert_eq!(c.skipped.len(), 7, "{:?}", c.skipped);
    load(&c.policy);
}

#[test]
fn what_visudo_refuses_is_refused() {
    for (src, line, msg) in [
        (
            "alice ALL = NOPASSWD: CWD=/tmp /bin/id\n",
            1,
            "syntax error",
        ),
        ("alice ALL = FOO /bin/id\n", 1, "syntax error"),
        ("Defaults foo\n", 1, "unknown defaults entry \"foo\""),
        (
            "alice ALL = bin/id\n",
            1,
            "expected a fully-qualified path name",
        ),
        (
            "alice ALL = CWD=tmp /bin/id\n",
            1,
            "values for \"CWD\" must start with a '/', '~', or '*'",
        ),
        (
            "alice ALL = NOTBEFORE=2017 /bin/id\n",
            1,
            "invalid notbefore value",
        ),
        (
            "User_Alias CWD = alice\n",
            1,
            "syntax error, reserved word CWD used as an alias name",
        ),
        ("alice ALL=(bob,) /bin/id\n", 1, "syntax error"),
        ("alice ALL=/bin/id,\n", 1, "syntax error"),
        ("alice ALL = sha224:abc /bin/id\n", 1, "syntax error"),
        ("alice ALL = /usr/bin/ls a:b\n", 1, "syntax error"),
        ("Defaults env_keep=\"\"\n", 1, "empty string"),
        (
            "Defaults passwd_tries=abc\n",
            1,
            "value \"abc\" is invalid for option \"passwd_tries\"",
        ),
        (
            "alice ALL = /usr/bin/who ^-[a-z]\n",
            1,
            "unterminated regular expression",
        ),
        ("alice ALL = /bin/id\r\n", 1, "syntax error"),
        (
            "alice ALL = /bin/id\nbob ALL = APPARMOR_PROFILE=x /bin/id\n",
            2,
            "syntax error",
        ),
    ] {
        let e = refused(src);
        assert_eq!((e.line, e.message.as_str()), (line, msg), "{src:?}");
    }
    for src in [
        "alice ALL = (root) CWD=/ NOPASSWD: /bin/id\n",
        "alice ALL = /usr/bin/env FOO=bar, /bin/ls a=b\n",
        "alice ALL = /bin/id # comment\n",
        "alice ALL=(:wheel) /bin/id\nalice ALL=(:) /bin/id\n",
        "%:grp ALL=/bin/id\n%#100 ALL=/bin/id\n#1000 ALL=/bin/id\n+ng ALL=/bin/id\n",
        "alice 10.0.0.1, 10.0.0.0/8, 10.0.0.0/255.0.0.0, ::1, web*, +ng = /bin/id\n",
        "alice ALL = !!/bin/id\nalice !!ALL = /bin/id\n",
        "alice ALL = /bin/id \\\n  -u\n",
        "Cmnd_Alias X = /bin/id : Y = /bin/ls\nalice ALL = X, Y\n",
        "alice ALL = /bin/id\nalice ALL = UNDEF\n",
        "alice ALL = /bin/id",
        "User_Alias A = alice\nHost_Alias A = h1\n",
    ] {
        assert!(convert("s", src).is_ok(), "{src:?}");
    }
}
