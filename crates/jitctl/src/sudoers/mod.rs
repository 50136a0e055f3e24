//! `jitctl policy import-sudoers FILE [-o OUT]`: sudoers → jitrun policy.
//!
//! Every converted rule is standing access (`grant = "none"`), as sudoers is, with a
//! `# from FILE:LINE: <original>` comment. What has no safe equivalent is left out and
//! listed (on standard error and in a comment at the end of the output): converting part
//! of a line never allows more than sudoers did; where only a narrower form exists (fewer
//! hosts, fewer run-as users) the narrower one is written and the difference listed.
//!
//! Mapping:
//! * users `alice` → `users`; `%group` → `groups`; `User_Alias` expanded.
//! * hosts `ALL` → `["*"]`; names as they are; `Host_Alias` expanded.
//! * run-as: none → `root`; `(user)` → `run_as = "user"` (one rule per run-as user);
//!   `(ALL)` → `root` only; `Runas_Alias` expanded.
//! * `root` → `capabilities = ["ALL"]` (sudo gives full root); other users: none.
//! * `NOPASSWD:` → `authenticate = false`; `PASSWD:` or no tag → `authenticate = true`.
//! * `/path` → `"/path **"` (sudo: any arguments); `/path ""` → `"/path"` (none);
//!   `/path a b` → exact arguments; a final `*` → `* **` (one or more); `Cmnd_Alias` expanded.
//! * `Defaults env_keep = / += / -= "A B"` → `env_keep` on every rule.
pub mod parse;

use crate::cli::ImportSudoersArgs;
use crate::error::{io_error, CliError, Result};
use jit_policy::valid_user_name;
use jit_policy::{CommandPattern, Policy, PolicySource};
use parse::{AliasKind, Cmnd, CmndSpec, Entry, Member};
use std::collections::{BTreeMap, BTreeSet};

/// Something not converted (or converted narrower), with where and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skipped {
    pub line: usize,
    pub what: String,
    pub why: String,
}

#[derive(Debug, Default)]
pub struct Conversion {
    /// The policy text.
    pub policy: String,
    pub rules: usize,
    pub skipped: Vec<Skipped>,
}

#[derive(Default)]
struct Aliases {
    user: BTreeMap<String, Vec<Member>>,
    runas: BTreeMap<String, Vec<Member>>,
    host: BTreeMap<String, Vec<Member>>,
    cmnd: BTreeMap<String, Vec<Cmnd>>,
}

fn is_alias_name(s: &str) -> bool {
    let mut c = s.chars();
    c.next().is_some_and(|f| f.is_ascii_uppercase())
        && c.all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
        && s != "ALL"
}

/// Expand aliases in a member list; negation flips through aliases.
fn expand(
    list: &[Member],
    table: &BTreeMap<String, Vec<Member>>,
    depth: usize,
) -> std::result::Result<Vec<Member>, String> {
    if depth > 32 {
        return Err("aliases nest too deep (a loop?)".into());
    }
    let mut out = Vec::new();
    for m in list {
        match table.get(&m.name) {
            Some(inner) if is_alias_name(&m.name) => {
                for x in expand(inner, table, depth + 1)? {
                    out.push(Member {
                        neg: x.neg != m.neg,
                        name: x.name,
                    });
                }
            }
            None if is_alias_name(&m.name) => {
                return Err(format!("alias {} is not defined", m.name))
            }
            _ => out.push(m.clone()),
        }
    }
    Ok(out)
}

fn expand_cmnds(
    c: &Cmnd,
    aliases: &Aliases,
    depth: usize,
) -> std::result::Result<Vec<Cmnd>, String> {
    if depth > 32 {
        return Err("aliases nest too deep (a loop?)".into());
    }
    if c.args.is_none() && is_alias_name(&c.program) {
        let inner = aliases
            .cmnd
            .get(&c.program)
            .ok_or_else(|| format!("Cmnd_Alias {} is not defined", c.program))?;
        let mut out = Vec::new();
        for i in inner {
            for mut x in expand_cmnds(i, aliases, depth + 1)? {
                x.neg = x.neg != c.neg;
                out.push(x);
            }
        }
        return Ok(out);
    }
    Ok(vec![c.clone()])
}

fn toml_str(s: &str) -> String {
    // TOML basic strings accept the same escapes as Rust's {:?} for what we write
    // (quotes, backslashes, control characters as \u{..} are not TOML: map them).
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => out.push_str(&format!("\\u{:04X}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn toml_list(items: &[String]) -> String {
    format!(
        "[{}]",
        items
            .iter()
            .map(|s| toml_str(s))
            .collect::<Vec<_>>()
            .join(", ")
    )
}

/// A sudoers command → a jitrun pattern (array form), or why not.
fn pattern(c: &Cmnd) -> std::result::Result<(Vec<String>, Option<String>), String> {
    let p = &c.program;
    if p == "ALL" {
        return Err("command ALL (any command) has no equivalent: jitrun rules list absolute program paths (a pattern for \"/**\" is refused); list the commands people need, or write a break-glass rule (grant = \"required\", min_approvals = 2) for the rare full-root session".into());
    }
    if p == "sudoedit" {
        return Err("sudoedit has no equivalent: an editor run with privilege can start a shell; let the file's group edit it, or manage it with configuration management".into());
    }
    if p.starts_with('^')
        || c.args
            .as_ref()
            .is_some_and(|a| a.iter().any(|w| w.starts_with('^')))
    {
        return Err("regular expressions have no equivalent: jitrun argument patterns are globs within one argument; write the allowed argument lists out".into());
    }
    if p.ends_with('/') {
        return Err(format!("a directory ({p}: every program in it) has no equivalent: list its programs one by one"));
    }
    if !p.starts_with('/') {
        return Err(format!("{p:?} is not an absolute path (nor a known alias)"));
    }
    if c.digest.is_some() {
        return Err("digests have no equivalent: jitrun refuses targets that are not root-owned and root-writable only, which is its protection against a swapped binary; drop the digest to convert it".into());
    }
    let mut words = vec![p.clone()];
    let mut note = None;
    match &c.args {
        None => words.push("**".to_string()),
        Some(args) => {
            for (i, a) in args.iter().enumerate() {
                if a == "*" && i + 1 == args.len() {
                    words.push("*".to_string());
                    words.push("**".to_string());
                } else {
                    if a.contains('*') {
                        note = Some("a '*' inside an argument matches within that argument only in jitrun (sudo's can span arguments)".to_string());
                    }
                    words.push(a.clone());
                }
            }
        }
    }
    CommandPattern::parse_words(&words).map_err(|e| e.to_string())?;
    Ok((words, note))
}

const RESTRICTIVE_TAGS: &[&str] = &["NOEXEC", "INTERCEPT"];
const IGNORED_TAGS: &[&str] = &[
    "NOPASSWD",
    "PASSWD",
    "EXEC",
    "NOSETENV",
    "NOLOG_INPUT",
    "NOLOG_OUTPUT",
    "NOMAIL",
    "NOINTERCEPT",
    "FOLLOW",
    "NOFOLLOW",
];

/// A restriction found in the file (see `convert`).
struct Forbidden {
    line: usize,
    /// A program, a directory ending in '/', or `ALL`.
    program: String,
    /// The users it concerns, unless `anyone`.
    users: Vec<String>,
    anyone: bool,
}

#[derive(Default)]
struct RuleOut {
    line: usize,
    source: String,
    users: Vec<String>,
    groups: Vec<String>,
    hosts: Vec<String>,
    run_as: String,
    authenticate: bool,
    commands: Vec<Vec<String>>,
    notes: BTreeSet<String>,
}

/// Rule names start with the file's base name (letters, digits, '.', '_', '-'), so that
/// the files of /etc/sudoers.d converted into policy.d never clash: `sudoers-12`, `10-ops-3`.
fn rule_prefix(path: &str) -> String {
    let base = path.rsplit('/').next().unwrap_or(path);
    let clean: String = base
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '-'
            }
        })
        .collect();
    if clean.is_empty() {
        "sudoers".to_string()
    } else {
        clean
    }
}

/// Convert sudoers text; `name` is used in comments and messages.
pub fn convert(name: &str, text: &str) -> Conversion {
    let mut skipped: Vec<Skipped> = Vec::new();
    let mut skip = |line: usize, what: &str, why: String| {
        skipped.push(Skipped {
            line,
            what: what.to_string(),
            why,
        })
    };
    let mut aliases = Aliases::default();
    let mut env_keep: Vec<String> = Vec::new();
    let mut rules: Vec<RuleOut> = Vec::new();
    // Programs (or directories ending in '/', or ALL) that a negation or a `Defaults!CMND
    // noexec` restricts somewhere: jitrun cannot express the exception, so they are left out
    // of every converted rule (sudo's "last match wins" could apply them to any line).
    let mut forbidden: Vec<Forbidden> = Vec::new();

    let lines: Vec<(parse::Line, std::result::Result<Vec<Entry>, String>)> =
        parse::logical_lines(text)
            .into_iter()
            .map(|l| {
                let e = parse::parse_line(&l.text);
                (l, e)
            })
            .collect();
    // Aliases first: sudoers may use an alias above its definition.
    for (_, entries) in &lines {
        for entry in entries.iter().flatten() {
            if let Entry::Alias {
                kind,
                name,
                members,
                cmnds,
            } = entry
            {
                let (name, members, cmnds) = (name.clone(), members.clone(), cmnds.clone());
                match kind {
                    AliasKind::User => aliases.user.insert(name, members),
                    AliasKind::Runas => aliases.runas.insert(name, members),
                    AliasKind::Host => aliases.host.insert(name, members),
                    AliasKind::Cmnd => {
                        aliases.cmnd.insert(name, cmnds);
                        None
                    }
                };
            }
        }
    }
    for (line, entries) in lines {
        let shown = line.text.clone();
        let entries = match entries {
            Ok(e) => e,
            Err(why) => {
                skip(
                    line.number,
                    &shown,
                    format!("cannot parse this line: {why}"),
                );
                continue;
            }
        };
        for entry in entries {
            match entry {
                Entry::Include { directive, path } => skip(
                    line.number,
                    &shown,
                    format!("{directive} is not followed: convert {path} with import-sudoers as well (into /etc/jitrun/policy.d/)"),
                ),
                Entry::Alias { .. } => {}
                Entry::Defaults { binding, settings } => {
                    // `Defaults!CMND noexec` restricts those commands wherever they are allowed.
                    if let Some(list) = binding.as_deref().and_then(|b| b.strip_prefix('!')) {
                        if settings.iter().any(|s| s == "noexec" || s == "intercept") {
                            for w in list.split(',') {
                                let c = parse::Cmnd {
                                    neg: false,
                                    digest: None,
                                    program: w.trim().to_string(),
                                    args: None,
                                };
                                for x in expand_cmnds(&c, &aliases, 0).unwrap_or_default() {
                                    forbidden.push(Forbidden {
                                        line: line.number,
                                        program: x.program,
                                        users: Vec::new(),
                                        anyone: true,
                                    });
                                }
                            }
                        }
                    }
                    for s in settings {
                        let what = match &binding {
                            Some(b) => format!("Defaults{b} {s}"),
                            None => format!("Defaults {s}"),
                        };
                        defaults(&s, binding.as_deref(), &mut env_keep, &mut |why| {
                            skip(line.number, &what, why)
                        });
                    }
                }
                Entry::Spec { users, parts } => {
                    let who = expand(&users, &aliases.user, 0).unwrap_or_default();
                    // Whom a negation may concern: the users named, or anyone when the line
                    // names a group, ALL or anything else whose members are unknown here.
                    let anyone = who.is_empty()
                        || who
                            .iter()
                            .any(|m| m.neg || !valid_user_name(&m.name) || m.name == "ALL");
                    let names: Vec<String> = who.iter().map(|m| m.name.clone()).collect();
                    for part in &parts {
                        for cs in &part.cmnds {
                            for x in expand_cmnds(&cs.cmnd, &aliases, 0).unwrap_or_default() {
                                if x.neg {
                                    forbidden.push(Forbidden {
                                        line: line.number,
                                        program: x.program,
                                        users: names.clone(),
                                        anyone,
                                    });
                                }
                            }
                        }
                    }
                    spec(&line.number, &shown, &users, &parts, &aliases, &mut rules, &mut skip);
                }
            }
        }
    }

    for r in &mut rules {
        r.commands.retain(|words| {
            let program = &words[0];
            let hit = forbidden.iter().find(|f| {
                let who = f.anyone
                    || !r.groups.is_empty()
                    || r.users.iter().any(|u| f.users.contains(u));
                let what = f.program == "ALL"
                    || f.program == *program
                    || (f.program.ends_with('/') && program.starts_with(f.program.as_str()));
                who && what
            });
            if let Some(f) = hit {
                skip(
                    r.line,
                    &words.join(" "),
                    format!("left out: line {} restricts {} (a negation or noexec) for people this rule may name, and jitrun rules cannot express exceptions", f.line, f.program),
                );
            }
            hit.is_none()
        });
    }
    rules.retain(|r| !r.commands.is_empty());

    // Render.
    let mut out = String::new();
    out.push_str(&format!(
        "# Converted from {name} by `jitctl policy import-sudoers`.\n\
         # Every rule is standing access (grant = \"none\"), like sudoers: run `jitctl policy check`,\n\
         # then move rules to grant = \"required\" as people start using `jitctl request`.\n\
         # What could not be converted is listed at the end.\n"
    ));
    let mut seen_names: BTreeMap<String, usize> = BTreeMap::new();
    let prefix = rule_prefix(name);
    for r in &rules {
        let base = format!("{prefix}-{}", r.line);
        let n = seen_names.entry(base.clone()).or_insert(0);
        *n += 1;
        let rule_name = if *n == 1 { base } else { format!("{base}-{n}") };
        out.push_str(&format!("\n# from {name}:{}: {}\n", r.line, r.source));
        for note in &r.notes {
            out.push_str(&format!("# note: {note}\n"));
        }
        out.push_str("[[rule]]\n");
        out.push_str(&format!("name = {}\n", toml_str(&rule_name)));
        if !r.users.is_empty() {
            out.push_str(&format!("users = {}\n", toml_list(&r.users)));
        }
        if !r.groups.is_empty() {
            out.push_str(&format!("groups = {}\n", toml_list(&r.groups)));
        }
        out.push_str(&format!("hosts = {}\n", toml_list(&r.hosts)));
        out.push_str("commands = [\n");
        for c in &r.commands {
            out.push_str(&format!("  {},\n", toml_list(c)));
        }
        out.push_str("]\n");
        out.push_str(&format!("run_as = {}\n", toml_str(&r.run_as)));
        if r.run_as == "root" {
            out.push_str(
                "capabilities = [\"ALL\"]  # sudo's root is full root; list fewer when you can\n",
            );
        }
        out.push_str("grant = \"none\"\n");
        out.push_str(&format!("authenticate = {}\n", r.authenticate));
        if !env_keep.is_empty() {
            out.push_str(&format!("env_keep = {}\n", toml_list(&env_keep)));
        }
    }
    if !skipped.is_empty() {
        out.push_str(&format!("\n# Not converted ({}):\n", skipped.len()));
        for s in &skipped {
            out.push_str(&format!("#   {name}:{}: {}: {}\n", s.line, s.what, s.why));
        }
    }
    Conversion {
        policy: out,
        rules: rules.len(),
        skipped,
    }
}

fn defaults(
    setting: &str,
    binding: Option<&str>,
    env_keep: &mut Vec<String>,
    skip: &mut dyn FnMut(String),
) {
    let (key, op, value) = if let Some((k, v)) = setting.split_once("+=") {
        (k.trim(), "+=", v.trim())
    } else if let Some((k, v)) = setting.split_once("-=") {
        (k.trim(), "-=", v.trim())
    } else if let Some((k, v)) = setting.split_once('=') {
        (k.trim(), "=", v.trim())
    } else {
        (setting.trim(), "", "")
    };
    if key != "env_keep" {
        let why = match key {
            "env_reset" => {
                "nothing to convert: jitrun always starts the command with a clean environment"
                    .to_string()
            }
            "secure_path" => {
                format!("set secure_path = {value} in /etc/jitrun/jitrun.toml instead")
            }
            _ => "this Defaults setting has no equivalent in jitrun policy".to_string(),
        };
        skip(why);
        return;
    }
    if let Some(b) = binding {
        skip(format!("env_keep bound to {b:?} has no equivalent (env_keep is per rule): add it to the converted rules it concerns by hand"));
        return;
    }
    if op.is_empty() {
        skip("env_keep without a value has no meaning here".into());
        return;
    }
    let names: Vec<String> = value
        .trim_matches('"')
        .split_whitespace()
        .map(String::from)
        .collect();
    if op == "=" {
        env_keep.clear();
    }
    for n in names {
        if op == "-=" {
            env_keep.retain(|x| *x != n);
            continue;
        }
        let valid = n
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && n.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !valid {
            skip(format!("env_keep {n:?}: jitrun keeps variables by exact name only (no wildcards, no values)"));
        } else if jit_policy::env_never_kept(&n) {
            skip(format!("env_keep {n:?}: jitrun never passes this variable to a privileged command (it lets the caller run code of their choice)"));
        } else if !env_keep.contains(&n) {
            env_keep.push(n);
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn spec(
    line: &usize,
    shown: &str,
    users: &[Member],
    parts: &[parse::HostPart],
    aliases: &Aliases,
    rules: &mut Vec<RuleOut>,
    skip: &mut dyn FnMut(usize, &str, String),
) {
    let line = *line;
    let users = match expand(users, &aliases.user, 0) {
        Ok(u) => u,
        Err(e) => return skip(line, shown, e),
    };
    if let Some(n) = users.iter().find(|m| m.neg) {
        return skip(line, shown, format!("the negated user {:?} has no equivalent; converting the rest would allow someone sudoers excludes", n.name));
    }
    let mut who_users = Vec::new();
    let mut who_groups = Vec::new();
    for m in &users {
        let n = &m.name;
        if n == "ALL" {
            skip(line, shown, "user ALL (everyone) has no equivalent: jitrun rules name users or groups; name a group everyone concerned is in".into());
        } else if let Some(g) = n.strip_prefix('%') {
            if g.starts_with(':') || g.starts_with('#') {
                skip(
                    line,
                    &format!("user {n}"),
                    "non-Unix groups and numeric group ids are not converted (name the group)"
                        .into(),
                );
            } else {
                who_groups.push(g.to_string());
            }
        } else if n.starts_with('#') || n.starts_with('+') {
            skip(
                line,
                &format!("user {n}"),
                "numeric user ids and netgroups are not converted (name the users)".into(),
            );
        } else if !valid_user_name(n) {
            skip(
                line,
                &format!("user {n}"),
                "not a user name jitrun policy accepts (letters, digits, '.', '_', '-')".into(),
            );
        } else {
            who_users.push(n.clone());
        }
    }
    if who_users.is_empty() && who_groups.is_empty() {
        return;
    }
    for part in parts {
        let hosts = match expand(&part.hosts, &aliases.host, 0) {
            Ok(h) => h,
            Err(e) => {
                skip(line, shown, e);
                continue;
            }
        };
        if let Some(n) = hosts.iter().find(|m| m.neg) {
            skip(line, shown, format!("the negated host {:?} has no equivalent; converting the rest would allow hosts sudoers excludes", n.name));
            continue;
        }
        let mut host_list = Vec::new();
        for h in &hosts {
            if h.name == "ALL" {
                host_list = vec!["*".to_string()];
                break;
            }
            let ip_like = h.name.contains('/')
                || h.name.contains(':')
                || h.name.chars().all(|c| c.is_ascii_digit() || c == '.');
            if h.name.starts_with('+') || ip_like {
                skip(line, &format!("host {}", h.name), "netgroups, IP addresses and networks are not host names: the converted rule leaves them out; list the hosts' names".into());
            } else {
                host_list.push(h.name.clone());
            }
        }
        if host_list.is_empty() {
            skip(
                line,
                shown,
                "no host name is left in this host list, so nothing of it is converted".into(),
            );
            continue;
        }
        // Expand commands; a negated command anywhere makes the part unconvertible.
        let mut expanded: Vec<(CmndSpec, Cmnd)> = Vec::new();
        let mut bad = None;
        for cs in &part.cmnds {
            match expand_cmnds(&cs.cmnd, aliases, 0) {
                Ok(list) => expanded.extend(list.into_iter().map(|c| (cs.clone(), c))),
                Err(e) => bad = Some(e),
            }
        }
        if let Some(e) = bad {
            skip(line, shown, e);
            continue;
        }
        if let Some((_, c)) = expanded.iter().find(|(_, c)| c.neg) {
            skip(line, shown, format!("the negated command {:?} has no equivalent; converting the rest would allow what sudoers forbids", c.program));
            continue;
        }
        for (cs, c) in expanded {
            let what = match &c.args {
                None => c.program.clone(),
                Some(a) if a.is_empty() => format!("{} \"\"", c.program),
                Some(a) => format!("{} {}", c.program, a.join(" ")),
            };
            if let Some(t) = cs
                .tags
                .iter()
                .find(|t| RESTRICTIVE_TAGS.contains(&t.as_str()))
            {
                skip(line, &what, format!("{t}: has no equivalent, and converting without it would allow more (jitrun sets no_new_privs, which stops setuid gains, not exec)"));
                continue;
            }
            if let Some(o) = cs.options.first() {
                skip(line, &what, format!("{o}: command options (CWD, CHROOT, TIMEOUT, NOTBEFORE/NOTAFTER, SELinux/AppArmor) have no equivalent; for time limits use grants (grant = \"required\", max_duration)"));
                continue;
            }
            let (words, note) = match pattern(&c) {
                Ok(p) => p,
                Err(why) => {
                    skip(line, &what, why);
                    continue;
                }
            };
            // Run-as users.
            let mut runas_users = vec!["root".to_string()];
            let mut notes: Vec<String> = note.into_iter().collect();
            if let Some(r) = &cs.runas {
                let (u, g) = match r.split_once(':') {
                    Some((u, g)) => (u.trim(), g.trim()),
                    None => (r.trim(), ""),
                };
                if u.is_empty() {
                    skip(
                        line,
                        &what,
                        format!("run-as group only ({r}) has no equivalent: jitrun runs as a user"),
                    );
                    continue;
                }
                if !g.is_empty() {
                    notes.push(format!("run-as groups ({g}) are not converted: jitrun gives the run-as user its own groups"));
                }
                let members: Vec<Member> = u
                    .split(',')
                    .map(|s| s.trim())
                    .filter(|s| !s.is_empty())
                    .map(|s| match s.strip_prefix('!') {
                        Some(n) => Member {
                            neg: true,
                            name: n.trim().to_string(),
                        },
                        None => Member {
                            neg: false,
                            name: s.to_string(),
                        },
                    })
                    .collect();
                let members = match expand(&members, &aliases.runas, 0) {
                    Ok(m) => m,
                    Err(e) => {
                        skip(line, &what, e);
                        continue;
                    }
                };
                if members.iter().any(|m| m.neg) {
                    skip(
                        line,
                        &what,
                        format!("negated run-as users ({r}) have no equivalent"),
                    );
                    continue;
                }
                runas_users.clear();
                for m in members {
                    if m.name == "ALL" {
                        notes.push("run-as ALL is converted as root only: add rules with run_as = \"<user>\" for other target users".to_string());
                        runas_users.push("root".to_string());
                    } else if m.name.starts_with('%')
                        || m.name.starts_with('#')
                        || m.name.starts_with('+')
                        || !valid_user_name(&m.name)
                    {
                        skip(
                            line,
                            &format!("{what} as {}", m.name),
                            "run-as groups, ids, netgroups and names jitrun policy does not accept are not converted (name the user)"
                                .into(),
                        );
                    } else {
                        runas_users.push(m.name);
                    }
                }
                runas_users.dedup();
            }
            for t in &cs.tags {
                if !IGNORED_TAGS.contains(&t.as_str()) {
                    notes.push(format!("{t}: not converted (jitrun has no equivalent; SETENV is never allowed, LOG_* I/O is not recorded, MAIL is not sent)"));
                }
            }
            let authenticate = !cs.tags.iter().any(|t| t == "NOPASSWD");
            for ra in runas_users {
                let existing = rules.iter_mut().find(|r| {
                    r.line == line
                        && r.hosts == host_list
                        && r.run_as == ra
                        && r.authenticate == authenticate
                });
                let r = match existing {
                    Some(r) => r,
                    None => {
                        rules.push(RuleOut {
                            line,
                            source: shown.to_string(),
                            users: who_users.clone(),
                            groups: who_groups.clone(),
                            hosts: host_list.clone(),
                            run_as: ra.clone(),
                            authenticate,
                            ..RuleOut::default()
                        });
                        rules.last_mut().expect("pushed")
                    }
                };
                if !r.commands.contains(&words) {
                    r.commands.push(words.clone());
                }
                r.notes.extend(notes.iter().cloned());
            }
        }
    }
}

pub fn run(args: &ImportSudoersArgs) -> Result<()> {
    let text =
        std::fs::read_to_string(&args.file).map_err(|e| io_error("cannot read", &args.file, &e))?;
    let name = args.file.display().to_string();
    let conv = convert(&name, &text);
    // The output must load: a converter bug must not produce a policy jitrun refuses.
    Policy::load(&[PolicySource {
        name: "converted policy".to_string(),
        text: conv.policy.clone(),
    }])
    .map_err(|e| CliError(format!("internal error: the converted policy does not load ({e}); please report this with the sudoers line")))?;
    match &args.output {
        Some(out) => {
            std::fs::write(out, &conv.policy).map_err(|e| io_error("cannot write", out, &e))?
        }
        None => print!("{}", conv.policy),
    }
    for s in &conv.skipped {
        eprintln!("{name}:{}: not converted: {}: {}", s.line, s.what, s.why);
    }
    eprintln!(
        "import-sudoers: {} rule(s) written, {} item(s) not converted",
        conv.rules,
        conv.skipped.len()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(text: &str) -> Policy {
        Policy::load(&[PolicySource {
            name: "out.toml".to_string(),
            text: text.to_string(),
        }])
        .unwrap_or_else(|e| panic!("{e}\n{text}"))
    }

    #[test]
    fn common_forms() {
        let src = "User_Alias ADMINS = alice, %wheel\nRunas_Alias DB = postgres\nHost_Alias WEB = web1, web2\nCmnd_Alias NET = /usr/sbin/ip link *, /usr/bin/ping\nDefaults env_keep += \"LANG TERM\"\nDefaults env_keep += \"LD_PRELOAD\"\n\nADMINS WEB = NOPASSWD: NET, /usr/bin/id \"\"\nbob ALL = (DB) /usr/bin/psql\n%sudo ALL=(ALL:ALL) ALL\n";
        let c = convert("sudoers", src);
        let p = load(&c.policy);
        assert_eq!(p.rules.len(), 2, "{}", c.policy);
        let a = &p.rules[0];
        assert_eq!(a.name, "sudoers-8");
        assert_eq!(a.users, ["alice"]);
        assert_eq!(a.groups, ["wheel"]);
        assert_eq!(a.hosts, ["web1", "web2"]);
        let cmds: Vec<String> = a.commands.iter().map(ToString::to_string).collect();
        assert_eq!(
            cmds,
            ["/usr/sbin/ip link * **", "/usr/bin/ping **", "/usr/bin/id"]
        );
        assert!(a.capabilities.is_all());
        assert!(!a.authenticate);
        assert_eq!(a.env_keep, ["LANG", "TERM"]);
        assert_eq!(a.grant, jit_policy::GrantMode::None);
        let b = &p.rules[1];
        assert_eq!(b.run_as, jit_policy::RunAs::User("postgres".into()));
        assert!(b.capabilities.is_empty());
        assert!(b.authenticate, "no NOPASSWD: sudo asks for a password");
        assert!(
            c.policy
                .contains("# from sudoers:8: ADMINS WEB = NOPASSWD: NET, /usr/bin/id \"\"\n"),
            "{}",
            c.policy
        );
        let whys: Vec<&str> = c.skipped.iter().map(|s| s.what.as_str()).collect();
        assert!(
            whys.contains(&"Defaults env_keep += \"LD_PRELOAD\""),
            "{whys:?}"
        );
        assert!(
            c.skipped
                .iter()
                .any(|s| s.line == 10 && s.why.starts_with("command ALL")),
            "{:?}",
            c.skipped
        );
        assert!(c.policy.contains("# Not converted (2):"), "{}", c.policy);
    }

    #[test]
    fn unsafe_partial_conversions_are_refused() {
        let src = "alice ALL = ALL, !/usr/bin/su\nbob ALL, !SRV = /usr/bin/id\nHost_Alias SRV = db1\ncarol ALL = NOEXEC: /usr/bin/less, CWD=/tmp /usr/bin/id, sudoedit /etc/hosts, /usr/bin/passwd ^[a-z]+$, /usr/local/bin/\ndave 10.0.0.0/8, web1 = /usr/bin/id\n";
        let c = convert("s", src);
        let p = load(&c.policy);
        // Only dave's rule, narrowed to web1.
        assert_eq!(p.rules.len(), 1, "{}", c.policy);
        assert_eq!(p.rules[0].hosts, ["web1"]);
        let lines: Vec<usize> = c.skipped.iter().map(|s| s.line).collect();
        assert_eq!(lines, [1, 2, 4, 4, 4, 4, 4, 5], "{:?}", c.skipped);
    }

    #[test]
    fn negations_elsewhere_remove_the_command_everywhere() {
        let src = "Cmnd_Alias PAGERS = /usr/bin/less\nDefaults!PAGERS noexec\nalice ALL = NOPASSWD: /usr/bin/systemctl, /usr/bin/less, /usr/bin/id\nalice ALL = !/usr/bin/systemctl stop sshd\n";
        let c = convert("s", src);
        let p = load(&c.policy);
        let cmds: Vec<String> = p.rules[0]
            .commands
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(cmds, ["/usr/bin/id **"]);
        let left: Vec<(usize, &str)> = c
            .skipped
            .iter()
            .map(|s| (s.line, s.what.as_str()))
            .collect();
        assert!(left.contains(&(3, "/usr/bin/systemctl **")), "{left:?}");
        assert!(left.contains(&(3, "/usr/bin/less **")), "{left:?}");
        assert!(c
            .skipped
            .iter()
            .any(|s| s.why.contains("line 4 restricts /usr/bin/systemctl")));
        // A negation for someone else does not touch the rule; aliases may come later.
        let c = convert("s", "alice ALL = NOPASSWD: /usr/bin/su www\nbob ALL = /usr/bin/id, !SU\nCmnd_Alias SU = /usr/bin/su\n%g ALL = NOPASSWD: /usr/bin/su www\n");
        let p = load(&c.policy);
        assert_eq!(p.rules.len(), 1, "{}", c.policy);
        assert_eq!(p.rules[0].users, ["alice"]);
    }

    #[test]
    fn names_are_per_file_and_validated() {
        let c = convert(
            "/etc/sudoers.d/10 ops",
            "al@x, bob ALL = (db@x, postgres) NOPASSWD: /usr/bin/psql\n",
        );
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
        let c = convert("sudoers", src);
        assert_eq!(c.rules, 0);
        assert_eq!(c.skipped.len(), 7, "{:?}", c.skipped);
        load(&c.policy);
    }
}
