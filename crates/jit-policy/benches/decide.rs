//! In-process micro-benchmarks of policy loading and decisions (issue 8, item 2).
//!
//! Policies of 10, 1 000 and 10 000 generated rules: a deterministic mix of users, groups,
//! hosts (exact names and `*`/`?`/`[..]` globs), command patterns (exact arguments, globs,
//! final `**`, the array form), run_as modes, capabilities and grant modes. The rule the
//! request matches is LAST, so every decision scans the whole list.
//!
//! `cargo bench -p jit-policy` (add `-- load` etc. to filter).

use divan::{black_box, Bencher};
use jit_policy::{decide, CapSet, Decision, GrantView, Policy, PolicySource, Request};
use std::ffi::OsStr;
use std::fmt::Write as _;
use std::time::Duration;

fn main() {
    divan::main();
}

const SIZES: &[usize] = &[10, 1_000, 10_000];

/// The matching rule, always last.
const TARGET: &str = "target-web-restart";

/// One filler rule. Some of them name `alice` and allow the request's host, so that the
/// decision has to look at their commands too; none matches the benchmarked commands.
fn filler(out: &mut String, i: usize) {
    let team = ["net", "db", "web", "ops", "sec", "app", "ci"][i % 7];
    writeln!(out, "[[rule]]\nname = \"{team}-{i:05}\"").unwrap();
    match i % 4 {
        0 => writeln!(out, "users = [\"alice\", \"u{:03}\"]", i % 311),
        1 => writeln!(out, "users = [\"u{:03}\", \"svc-{team}\"]", i % 311),
        2 => writeln!(out, "groups = [\"{team}ops\", \"g{:02}\"]", i % 53),
        _ => writeln!(out, "users = [\"u{:03}\"]\ngroups = [\"{team}\"]", i % 311),
    }
    .unwrap();
    match i % 5 {
        0 => writeln!(out, "hosts = [\"web-*\"]"),
        1 => writeln!(out, "hosts = [\"db-??\", \"db-[0-9][0-9][0-9]\"]"),
        2 => writeln!(out, "hosts = [\"{team}-{i}.example.com\"]"),
        3 => writeln!(out, "hosts = [\"app-[a-f]*\", \"ci-runner-?\"]"),
        _ => Ok(()), // every host
    }
    .unwrap();
    writeln!(
        out,
        "commands = [\n  \"/usr/bin/systemctl restart {team}{i}.service\",\n  \"/usr/bin/journalctl -u {team}{i}-? --since *\",\n  \"/usr/sbin/ip{} link set [a-z]*{i} **\",\n  [\"/usr/bin/printf\", \"%s with spaces {i}\\n\", \"*\"],\n]",
        if i.is_multiple_of(2) { "" } else { "6" }
    )
    .unwrap();
    match i % 3 {
        0 => writeln!(
            out,
            "run_as = \"root\"\ncapabilities = [\"CAP_NET_ADMIN\", \"net_raw\", \"CAP_SYS_NICE\"]"
        ),
        1 => writeln!(out, "capabilities = [\"CAP_DAC_READ_SEARCH\"]"),
        _ => writeln!(out, "run_as = \"postgres\""),
    }
    .unwrap();
    if i % 6 == 5 {
        writeln!(out, "grant = \"none\"").unwrap();
    } else {
        writeln!(
            out,
            "max_duration = \"{}m\"\nmin_approvals = {}",
            15 * (1 + i % 8),
            i % 3
        )
        .unwrap();
    }
    if i.is_multiple_of(2) {
        writeln!(out, "env_keep = [\"TERM\", \"LANG\"]\nno_new_privs = true").unwrap();
    }
    out.push('\n');
}

/// Policy text with `n` rules, the last one being [`TARGET`].
fn policy_text(n: usize) -> String {
    let mut out = String::with_capacity(n * 450);
    out.push_str("# generated for benchmarks\n\n");
    for i in 0..n - 1 {
        filler(&mut out, i);
    }
    writeln!(
        out,
        "[[rule]]\nname = \"{TARGET}\"\nusers = [\"alice\"]\ngroups = [\"webops\"]\nhosts = [\"web-*\", \"edge-[0-9]?\"]\ncommands = [\"/usr/bin/systemctl restart nginx.service\", \"/usr/sbin/ip **\"]\nrun_as = \"root\"\ncapabilities = [\"CAP_NET_ADMIN\", \"CAP_NET_BIND_SERVICE\"]\nmax_duration = \"1h\"\nmin_approvals = 1\nenv_keep = [\"TERM\"]"
    )
    .unwrap();
    out
}

fn sources(n: usize) -> Vec<PolicySource> {
    vec![PolicySource {
        name: "/etc/jitrun/policy.toml".to_string(),
        text: policy_text(n),
    }]
}

fn load(n: usize) -> Policy {
    let p = Policy::load(&sources(n)).expect("generated policy is valid");
    assert_eq!(p.rules.len(), n);
    p
}

fn groups() -> Vec<String> {
    ["alice", "users", "developers"].map(String::from).to_vec()
}

const GRANT_ARGV: &[&str] = &["restart", "nginx.service"];
/// No rule allows `stop`: denied (command_not_allowed) after scanning every rule.
const DENY_ARGV: &[&str] = &["stop", "nginx.service"];

fn request<'a>(groups: &'a [String], args: &'a [&'a OsStr]) -> Request<'a> {
    Request {
        user: "alice",
        groups,
        host: "web-042",
        program: OsStr::new("/usr/bin/systemctl"),
        args,
        run_as: None,
        rule: None,
    }
}

fn grant_view() -> GrantView {
    GrantView {
        id: "01JBENCH0000000000000000000".to_string(),
        rule: TARGET.to_string(),
        caps: Some(CapSet::parse_list(&["CAP_NET_ADMIN"]).unwrap()),
        cmd: None,
        run_as: None,
        lifetime: Duration::from_secs(1800),
        approvers: vec!["bob".to_string()],
        subject: "alice".to_string(),
        break_glass: false,
        sealed: false,
    }
}

fn os_args(argv: &[&'static str]) -> Vec<&'static OsStr> {
    argv.iter().map(|a| OsStr::new(*a)).collect()
}

fn check_allowed(d: &Decision<'_>) {
    assert!(
        matches!(d, Decision::Allow { rule, .. } if rule.name == TARGET),
        "{d:?}"
    );
}

fn check_denied(d: &Decision<'_>) {
    assert!(matches!(d, Decision::Deny(_)), "{d:?}");
}

/// Parse and validate the policy text.
#[divan::bench(args = SIZES, sample_count = 30, max_time = 1)]
fn load_policy(bencher: Bencher, n: usize) {
    let src = sources(n);
    bencher.bench(|| Policy::load(black_box(&src)).unwrap());
}

/// `decide()` with a grant for the last rule (policy already loaded).
#[divan::bench(args = SIZES, max_time = 0.5)]
fn decide_grant(bencher: Bencher, n: usize) {
    let policy = load(n);
    let groups = groups();
    let args = os_args(GRANT_ARGV);
    let req = request(&groups, &args);
    let grant = grant_view();
    check_allowed(&decide(&policy, &req, Some(&grant)));
    bencher.bench(|| decide(black_box(&policy), black_box(&req), Some(black_box(&grant))));
}

/// `decide()` without a grant for a command no rule allows (policy already loaded).
#[divan::bench(args = SIZES, max_time = 0.5)]
fn decide_deny(bencher: Bencher, n: usize) {
    let policy = load(n);
    let groups = groups();
    let args = os_args(DENY_ARGV);
    let req = request(&groups, &args);
    check_denied(&decide(&policy, &req, None));
    bencher.bench(|| decide(black_box(&policy), black_box(&req), None));
}

/// What jitrun does on every run: load the policy, then decide (grant path).
#[divan::bench(args = SIZES, sample_count = 30, max_time = 1)]
fn load_and_decide_grant(bencher: Bencher, n: usize) {
    let src = sources(n);
    let groups = groups();
    let args = os_args(GRANT_ARGV);
    let req = request(&groups, &args);
    let grant = grant_view();
    bencher.bench(|| {
        let policy = Policy::load(black_box(&src)).unwrap();
        let allowed = matches!(
            decide(&policy, black_box(&req), Some(black_box(&grant))),
            Decision::Allow { .. }
        );
        assert!(allowed);
    });
}

/// What jitrun does on every run: load the policy, then decide (deny path).
#[divan::bench(args = SIZES, sample_count = 30, max_time = 1)]
fn load_and_decide_deny(bencher: Bencher, n: usize) {
    let src = sources(n);
    let groups = groups();
    let args = os_args(DENY_ARGV);
    let req = request(&groups, &args);
    bencher.bench(|| {
        let policy = Policy::load(black_box(&src)).unwrap();
        let denied = matches!(decide(&policy, black_box(&req), None), Decision::Deny(_));
        assert!(denied);
    });
}
