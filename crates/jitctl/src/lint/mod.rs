//! Lint for `jitctl policy check`: policy that loads fine but hands out more than it looks
//! like. Every finding names the file, the line, a stable id, what goes wrong and what to
//! write instead. The ids and what each means are [`LINTS`] (and docs/policy.md, "Lint").
//!
//! A finding the admin has weighed is acknowledged in the rule itself, with
//! `allow_risks = ["shell-escape"]` (shown by `policy explain`), or silenced by a comment on
//! its line or the line above, naming the id and saying why:
//! `# jitctl-lint: allow(shell-escape) DBAs own the database; psql's \! runs as postgres`.
//! `--strict` fails on every finding that is neither.
//!
//! The program lists live in one data file, `data/shell-escapes.toml` ([`programs`]).
mod programs;

use jit_policy::glob::{glob_within, has_meta};
use jit_policy::pattern::path_glob;
use jit_policy::{Capability, CommandPattern, GrantMode, Policy, Rule, RunAs, Settings};
use programs::{data, identify, ConfigFrom, Identity};
use std::collections::HashMap;
use std::path::Path;

/// Every lint id, with what it flags (one line; docs/policy.md has the long form).
pub const LINTS: &[(&str, &str)] = &[
    (
        "standing-access",
        "grant = \"none\": usable at any time, without a grant or an approver",
    ),
    (
        "all-capabilities",
        "capabilities = [\"ALL\"] on a rule that is not break-glass",
    ),
    (
        "root-equivalent-capability",
        "a capability that is root in all but name (CAP_SETUID, CAP_SYS_ADMIN, …)",
    ),
    (
        "shell-with-privilege",
        "a shell or interpreter under privilege, or a runner that starts one",
    ),
    (
        "runs-any-command",
        "a runner (env, xargs, timeout, …) whose arguments are left open",
    ),
    (
        "shell-escape",
        "a program that can start a shell (an editor, a pager, find -exec, tar, …)",
    ),
    (
        "arbitrary-file",
        "a program that reads or writes the file an open argument names",
    ),
    (
        "glob-crosses-directories",
        "a glob in a path argument that also matches subdirectories",
    ),
    (
        "reads-caller-config",
        "a program that runs configuration the caller controls (git, ~/.ssh/config, …)",
    ),
    (
        "script-interpreter",
        "a script whose interpreter loads code from the caller's home",
    ),
    (
        "env-keep-unchecked",
        "a variable kept through env_keep_unchecked, not known to be safe",
    ),
    (
        "outside-secure-path",
        "a program outside the secure_path directories",
    ),
    ("never-matches", "a rule that can never allow anything"),
    (
        "shadowed",
        "a standing rule never chosen because an earlier one covers it",
    ),
    (
        "records-input",
        "record_input = true: passwords typed inside the session land in the recording",
    ),
    (
        "no-effect",
        "record_input = true on a rule that does not record",
    ),
    (
        "unused-allow-risk",
        "allow_risks names an id the rule has no finding for",
    ),
];

/// Capabilities that are root in all but name, with the reason. CAP_DAC_OVERRIDE is among
/// them only when the rule lists a program that writes files (see [`lint_rule`]).
const ROOT_EQUIVALENT: &[(&str, &str)] = &[
    ("CAP_SETUID", "setuid(0): it becomes root"),
    ("CAP_SETGID", "setgid/setgroups to any group: shadow (reads /etc/shadow), disk (writes the raw disks), root's group-writable files"),
    ("CAP_SYS_ADMIN", "mounts (a file of its own over /etc/shadow or a program root runs), namespaces, and dozens of other administrative operations: root in all but name"),
    ("CAP_SYS_MODULE", "loads kernel modules: its own code in the kernel"),
    ("CAP_SYS_PTRACE", "ptrace and /proc/PID/mem of every process, root's included: it injects code into them"),
    ("CAP_SYS_RAWIO", "/dev/mem, /dev/port and raw I/O: kernel memory and hardware"),
    ("CAP_SYS_BOOT", "kexec_load: it boots a kernel of its choosing"),
    ("CAP_CHOWN", "chown of any file: /etc/shadow, or a program root runs, becomes the caller's"),
    ("CAP_FOWNER", "chmod of any file: the setuid bit on a root-owned shell, /etc/shadow world-writable"),
    ("CAP_SETFCAP", "file capabilities on a program of its choosing, which then has them outside jitrun"),
    ("CAP_MKNOD", "device nodes for the disks in a directory it owns: the raw disk, read and write"),
];

const FILE_CAPS: &[&str] = &[
    "CAP_DAC_OVERRIDE",
    "CAP_DAC_READ_SEARCH",
    "CAP_FOWNER",
    "CAP_CHOWN",
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    Warning,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub file: String,
    pub line: usize,
    pub code: &'static str,
    pub message: String,
    pub severity: Severity,
    /// The rule lists this id in `allow_risks`.
    pub acknowledged: bool,
    /// The rule's name.
    pub rule: String,
}

/// What the linter needs besides the policy: secure_path, and where the programs are (`/`;
/// a test tree in tests).
pub struct Host<'a> {
    pub settings: &'a Settings,
    pub root: &'a Path,
}

fn base(program: &str) -> &str {
    program.rsplit('/').next().unwrap_or(program)
}

/// What the rule gives beyond the caller's own identity, or None.
fn privilege(rule: &Rule) -> Option<String> {
    let who = match &rule.run_as {
        RunAs::Invoker => None,
        RunAs::Root => Some("root".to_string()),
        RunAs::User(u) => Some(format!("user {u}")),
    };
    let caps = (!rule.capabilities.is_empty()).then(|| caps_text(rule.capabilities.to_string()));
    match (who, caps) {
        (None, None) => None,
        (Some(w), None) => Some(format!("the identity of {w}")),
        (None, Some(c)) => Some(c),
        (Some(w), Some(c)) => Some(format!("{c} as {w}")),
    }
}

/// What in the rule reaches other people's files: another identity, or a file capability.
fn file_privilege(rule: &Rule) -> Option<String> {
    let who = match &rule.run_as {
        RunAs::Invoker => None,
        RunAs::Root => Some("root's identity".to_string()),
        RunAs::User(u) => Some(format!("the identity of {u}")),
    };
    let caps: Vec<&str> = rule
        .capabilities
        .names()
        .into_iter()
        .filter(|n| FILE_CAPS.contains(n))
        .collect();
    match (who, caps.is_empty()) {
        (Some(w), _) if rule.capabilities.is_all() => Some(format!("{w} and every capability")),
        (Some(w), true) => Some(w),
        (Some(w), false) => Some(format!("{w} and {}", caps.join(", "))),
        (None, false) => Some(caps.join(", ")),
        (None, true) => None,
    }
}

fn caps_text(c: String) -> String {
    if c == "ALL" {
        "every capability (ALL)".to_string()
    } else {
        c
    }
}

fn open_args(c: &CommandPattern) -> bool {
    c.rest || c.args.iter().any(|a| has_meta(a.as_bytes()))
}

/// Characters a host name (or a glob for one) can hold.
fn host_glob_possible(h: &str) -> bool {
    h.chars()
        .all(|c| c.is_ascii_alphanumeric() || "-._*?[]!^".contains(c))
}

fn covers(a: &Rule, b: &Rule) -> bool {
    b.users.iter().all(|u| a.users.contains(u))
        && b.groups.iter().all(|g| a.groups.contains(g))
        && b.hosts.iter().all(|h| {
            a.hosts
                .iter()
                .any(|o| glob_within(h.as_bytes(), o.as_bytes()))
        })
        && b.commands
            .iter()
            .all(|c| a.commands.iter().any(|o| c.is_within(o)))
        && a.run_as == b.run_as
}

/// The findings of one rule: (line, id, message).
type Out = Vec<(usize, &'static str, String)>;

pub fn lint(policy: &Policy, settings: &Settings) -> Vec<Finding> {
    lint_on(
        policy,
        &Host {
            settings,
            root: Path::new("/"),
        },
    )
}

pub fn lint_on(policy: &Policy, host: &Host<'_>) -> Vec<Finding> {
    let secure: Vec<&str> = host.settings.secure_path_dirs().collect();
    let mut ids: HashMap<String, Identity> = HashMap::new();
    let mut all = Vec::new();
    for (i, rule) in policy.rules.iter().enumerate() {
        for c in &rule.commands {
            ids.entry(c.program.clone())
                .or_insert_with(|| identify(host.root, &c.program, &secure));
        }
        let mut out: Out = Vec::new();
        rule_findings(rule, &policy.rules[..i], &ids, host, &mut out);
        all.extend(finish(rule, out));
    }
    all
}

/// Findings as reported: acknowledged by `allow_risks` or not, plus `unused-allow-risk` for
/// every listed id the rule has no finding for.
fn finish(rule: &Rule, out: Out) -> Vec<Finding> {
    let finding = |line: usize, code: &'static str, message: String| Finding {
        file: rule.source.file.clone(),
        line: rule.line(line),
        code,
        message: format!("rule \"{}\": {message}", rule.name),
        severity: Severity::Warning,
        acknowledged: code != "unused-allow-risk" && rule.allow_risks.iter().any(|r| r == code),
        rule: rule.name.clone(),
    };
    let mut found: Vec<Finding> = out.into_iter().map(|(l, c, m)| finding(l, c, m)).collect();
    for id in &rule.allow_risks {
        if found.iter().any(|f| f.code == id) {
            continue;
        }
        let message = match LINTS.iter().find(|(l, _)| l == id) {
            Some(_) => format!("allow_risks lists \"{id}\", but the rule has no such finding; remove it, so that a later change that does bring this risk is not acknowledged unseen"),
            None => {
                let near = LINTS
                    .iter()
                    .map(|(l, _)| *l)
                    .min_by_key(|l| jit_policy::edit_distance(l, id))
                    .filter(|l| jit_policy::edit_distance(l, id) <= 3)
                    .map(|l| format!(" (did you mean \"{l}\"?)"))
                    .unwrap_or_default();
                format!("allow_risks lists \"{id}\", which is not a lint id{near}; the ids are listed by docs/policy.md")
            }
        };
        found.push(finding(
            rule.lines.allow_risks,
            "unused-allow-risk",
            message,
        ));
    }
    found
}

fn rule_findings(
    rule: &Rule,
    earlier: &[Rule],
    ids: &HashMap<String, Identity>,
    host: &Host<'_>,
    out: &mut Out,
) {
    rule_level(rule, out);
    recording_findings(rule, host.settings, out);
    capability_findings(rule, ids, out);
    let privs = privilege(rule);
    let files = file_privilege(rule);
    for (k, c) in rule.commands.iter().enumerate() {
        let line = rule.lines.commands.get(k).copied().unwrap_or(0);
        let id = &ids[&c.program];
        if let Some(p) = &privs {
            program_findings(
                &Cmd {
                    rule,
                    c,
                    id,
                    p,
                    line,
                },
                out,
            );
        }
        if let Some(f) = &files {
            file_findings(c, id, f, line, out);
        }
        secure_path_finding(c, host.settings, line, out);
    }
    if rule.grant == GrantMode::None {
        if let Some(a) = earlier
            .iter()
            .find(|a| a.grant == GrantMode::None && covers(a, rule))
        {
            out.push((0, "shadowed", format!("never chosen without --rule: the earlier standing rule \"{}\" ({}:{}) names the same people, hosts, identity and commands, and the first matching standing rule wins; merge the two or remove one", a.name, a.source.file, a.source.line)));
        }
    }
}

fn rule_level(rule: &Rule, out: &mut Out) {
    if rule.grant == GrantMode::None {
        out.push((
            rule.lines.grant,
            "standing-access",
            "grant = \"none\" is standing access: everyone it names may run its commands at any time, without a grant or an approver; set grant = \"required\" once people use `jitctl request`, and keep standing rules only while migrating from sudoers".to_string(),
        ));
    }
    if rule.capabilities.is_all() && (rule.grant == GrantMode::None || rule.min_approvals == 0) {
        let why = if rule.grant == GrantMode::None {
            "as standing access"
        } else {
            "with no approver (min_approvals = 0)"
        };
        out.push((
            rule.lines.capabilities,
            "all-capabilities",
            format!("capabilities = [\"ALL\"] is full root {why}; make it a break-glass rule: grant = \"required\" with min_approvals = 2 (a break-glass grant skips the approvers and is audited at alert severity), or list the capabilities the commands need"),
        ));
    }
    for h in &rule.hosts {
        if !host_glob_possible(h) {
            out.push((rule.lines.hosts, "never-matches", format!("host pattern {h:?} can never match a host name (letters, digits, '-', '.', '_'); IP addresses and netmasks are not host names: list the hosts' names")));
        }
    }
    for name in &rule.env_keep_unchecked {
        out.push((rule.lines.env_keep_unchecked, "env-keep-unchecked", format!("env_keep_unchecked passes {name} from the caller, which is not on jitrun's list of variables known to be safe: if any program the command runs reads code, a configuration file, a path or a program name from it (as GIT_CONFIG_PARAMETERS, PYTHONUSERBASE or OPENSSL_CONF do), the caller chooses what runs with the rule's privilege; drop it, or set the value in a wrapper script, or acknowledge it with allow_risks = [\"env-keep-unchecked\"] once you have checked every program")));
    }
}

fn recording_findings(rule: &Rule, settings: &Settings, out: &mut Out) {
    if !rule.record_input {
        return;
    }
    if rule.records(&settings.record) {
        out.push((
            rule.lines.record_input,
            "records-input",
            "record_input = true records everything typed in the session, passwords typed at a prompt inside it too (su, ssh, sudo, database clients); keep it off unless keystrokes are needed as evidence".to_string(),
        ));
    } else {
        out.push((
            rule.lines.record_input,
            "no-effect",
            "record_input = true has no effect: the rule does not record (set record = true, or record.default in the settings)".to_string(),
        ));
    }
}

fn capability_findings(rule: &Rule, ids: &HashMap<String, Identity>, out: &mut Out) {
    if rule.capabilities.is_all() {
        return; // all-capabilities says it
    }
    let names = rule.capabilities.names();
    for (cap, why) in ROOT_EQUIVALENT {
        if names.contains(cap) {
            out.push((rule.lines.capabilities, "root-equivalent-capability", format!("{cap} is root in all but name: {why}; whatever runs with it can make itself root. List a narrower capability, or make the rule break-glass (min_approvals = 2) and acknowledge it with allow_risks = [\"root-equivalent-capability\"]")));
        }
    }
    let dac = Capability::parse("CAP_DAC_OVERRIDE").expect("a known capability");
    if rule.capabilities.contains(dac) {
        if let Some(c) = rule
            .commands
            .iter()
            .find(|c| writer(&ids[&c.program]).is_some())
        {
            let name = writer(&ids[&c.program]).unwrap_or_default();
            out.push((rule.lines.capabilities, "root-equivalent-capability", format!("CAP_DAC_OVERRIDE with {name} (\"{c}\"), which writes files: it can write any file (/etc/shadow, /etc/sudoers.d, root's authorized_keys), which makes root; give the files it must write to a group the caller is in, or list CAP_DAC_READ_SEARCH if it only reads")));
        }
    }
}

/// When the program writes files: its name.
fn writer(id: &Identity) -> Option<String> {
    data()
        .files
        .iter()
        .find(|f| f.what.contains("writes") && id.is_any(&f.names))
        .map(|f| id.shown(&f.names).to_string())
}

/// One command of a rule, with what the linter knows about it.
struct Cmd<'a> {
    rule: &'a Rule,
    c: &'a CommandPattern,
    id: &'a Identity,
    /// What the rule gives beyond the caller's own identity ([`privilege`]).
    p: &'a str,
    line: usize,
}

fn program_findings(cmd: &Cmd<'_>, out: &mut Out) {
    let (c, id, p, line) = (cmd.c, cmd.id, cmd.p, cmd.line);
    let d = data();
    let shown = c.to_string();
    if id.is_any(&d.interpreters) {
        out.push((line, "shell-with-privilege", format!("\"{shown}\" hands {p} to {}, a shell or interpreter: it runs any code with them (and capabilities pass to everything it starts); list the programs the task needs instead", id.shown(&d.interpreters))));
    } else if id.is_any(&d.runners) {
        runner_findings(c, id, p, line, out);
    }
    for e in d.escape.iter().filter(|e| id.is_any(&e.names)) {
        if e.open_in(c) {
            let name = id.names.last().map_or("", String::as_str);
            let alias = if name == base(&c.program) {
                String::new()
            } else {
                format!(" ({} is {name})", c.program)
            };
            let fix = if e.interactive {
                "it offers the shell whatever its arguments: use a program without one (cat rather than a pager; for an edit, give the file's group write access rather than run an editor with privilege)"
            } else {
                "list the exact arguments the task needs (no `**`, no glob that can be an option)"
            };
            out.push((
                line,
                "shell-escape",
                format!(
                    "\"{shown}\"{alias} can start a shell ({}) that keeps {p}; {fix}",
                    e.how
                ),
            ));
            break;
        }
    }
    config_findings(cmd, out);
    script_findings(cmd, out);
}

fn runner_findings(c: &CommandPattern, id: &Identity, p: &str, line: usize, out: &mut Out) {
    let d = data();
    let shown = c.to_string();
    let name = id.shown(&d.runners);
    if open_args(c) {
        out.push((line, "runs-any-command", format!("\"{shown}\" leaves the arguments of {name}, which runs the command named in them, open: that is any command with {p}; fix every argument, or list the target program itself")));
    } else if let Some(t) = c.args.iter().find(|a| {
        a.starts_with('/') && {
            let n = base(a).to_string();
            let t = Identity {
                names: vec![n],
                ..Identity::default()
            };
            t.is_any(&d.interpreters) || t.is_any(&d.runners)
        }
    }) {
        out.push((line, "shell-with-privilege", format!("\"{shown}\" runs {t}, a shell, interpreter or runner, with {p}; list the program the task needs instead")));
    }
}

fn config_findings(cmd: &Cmd<'_>, out: &mut Out) {
    let (rule, c, id, p, line) = (cmd.rule, cmd.c, cmd.id, cmd.p, cmd.line);
    let invoker = rule.run_as == RunAs::Invoker;
    for cfg in data().config.iter().filter(|cfg| id.is_any(&cfg.names)) {
        let applies = match cfg.from {
            ConfigFrom::Cwd => true,
            ConfigFrom::Home => invoker,
        };
        if !applies {
            continue;
        }
        let whose = match cfg.from {
            ConfigFrom::Cwd => "from the working directory, which the caller chooses",
            ConfigFrom::Home => {
                "from the caller's home directory (run_as = \"invoker\" keeps HOME theirs)"
            }
        };
        let fix = match cfg.from {
            ConfigFrom::Cwd => "run it through a root-owned wrapper script that changes to a fixed, root-owned directory first (and for git sets GIT_CONFIG_NOSYSTEM and safe options), or do the task without it",
            ConfigFrom::Home => "run it as a dedicated user (run_as = \"USER\") whose home the caller cannot write, or through a wrapper that sets HOME to a root-owned directory",
        };
        out.push((
            line,
            "reads-caller-config",
            format!(
                "\"{c}\": {} reads {}, {whose}: settings there can run commands with {p}; {fix}",
                id.shown(&cfg.names),
                cfg.how
            ),
        ));
        return;
    }
}

fn script_findings(cmd: &Cmd<'_>, out: &mut Out) {
    let (rule, c, id, p, line) = (cmd.rule, cmd.c, cmd.id, cmd.p, cmd.line);
    let (Some(interp), Some(shown)) = (&id.interpreter, &id.interpreter_shown) else {
        return;
    };
    if rule.run_as != RunAs::Invoker {
        return;
    }
    let per_user = &data().per_user_code;
    let globs: Vec<String> = per_user.keys().cloned().collect();
    if !interp.is_any(&globs) {
        return;
    }
    let name = interp.shown(&globs);
    // `python3 -I` (isolated) and `-s` leave the user site directory out.
    let isolated = name.starts_with("python") || name.starts_with("pypy");
    let flags = id.interpreter_arg.as_deref().unwrap_or("");
    if isolated
        && flags.starts_with('-')
        && !flags.starts_with("--")
        && (flags.contains('I') || flags.contains('s'))
    {
        return;
    }
    let how = per_user
        .iter()
        .find(|(g, _)| jit_policy::glob::glob_match(g.as_bytes(), name.as_bytes()))
        .map_or("", |(_, h)| h.as_str());
    out.push((line, "script-interpreter", format!("{} is a script for {shown} ({name}), which loads {how} of the caller (run_as = \"invoker\" keeps HOME theirs): anything they put there runs with {p}; run it as a dedicated user (run_as = \"USER\"){}", c.program, if isolated { ", or start Python in isolated mode in the script's #! line (#!/usr/bin/python3 -I)" } else { "" })));
}

fn file_findings(c: &CommandPattern, id: &Identity, f: &str, line: usize, out: &mut Out) {
    let d = data();
    if let Some((files, arg)) = d
        .files
        .iter()
        .filter(|x| id.is_any(&x.names))
        .find_map(|x| x.open_argument(c).map(|a| (x, a)))
    {
        let name = id.shown(&files.names);
        let which = if arg == "**" {
            "`**` (any arguments) lets the caller name any file".to_string()
        } else {
            format!("the argument \"{arg}\" is open to any path")
        };
        out.push((line, "arbitrary-file", format!("\"{c}\": {name} {} the files its arguments name, and {which}: with {f} that includes /etc/shadow and the programs root runs; fix the path, or confine it to a directory of its own with a path glob such as \"path:/var/tmp/capture/*.pcap\"", files.what)));
        return;
    }
    if let Some(a) = c
        .args
        .iter()
        .find(|a| path_glob(a).is_none() && a.contains('/') && has_meta(a.as_bytes()))
    {
        let dir = a[..a.find(['*', '?', '[']).unwrap_or(a.len())]
            .rsplit_once('/')
            .map_or("", |(d, _)| d);
        out.push((line, "glob-crosses-directories", format!("\"{c}\": the glob \"{a}\" also matches paths in every subdirectory of {dir}/ (a `*` matches `/`), including through a symbolic link someone planted in a subdirectory they can write, with {f}; jitrun refuses \"..\" in it at run time, but write \"path:{a}\" to match the entries of {dir}/ alone")));
    }
}

fn secure_path_finding(c: &CommandPattern, settings: &Settings, line: usize, out: &mut Out) {
    let dir = c
        .program
        .rsplit_once('/')
        .map_or("/", |(d, _)| if d.is_empty() { "/" } else { d });
    if !settings.secure_path_dirs().any(|s| s == dir) {
        out.push((line, "outside-secure-path", format!("{} is outside the secure_path directories ({}): make sure it and every directory above it are owned by root and writable only by root, or install it in one of them", c.program, settings.secure_path)));
    }
}

/// Does `text` (a file's contents) silence `code` at `line` (1-based), by a
/// `jitctl-lint: allow(CODE)` comment on that line or the one above?
pub fn allowed_at(text: &str, line: usize, code: &str) -> bool {
    let marker = format!("jitctl-lint: allow({code})");
    let lines: Vec<&str> = text.lines().collect();
    [line, line.saturating_sub(1)]
        .iter()
        .filter(|&&l| l >= 1)
        .filter_map(|&l| lines.get(l - 1))
        .any(|l| l.find('#').is_some_and(|i| l[i..].contains(&marker)))
}

#[cfg(test)]
mod tests;
