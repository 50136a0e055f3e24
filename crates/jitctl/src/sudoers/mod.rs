//! `jitctl policy import-sudoers FILE [-o OUT]`: sudoers → jitrun policy that never allows
//! more than sudo did.
//!
//! 1. The file is parsed as sudo 1.9 parses it ([`grammar`], [`lex`]); a file `visudo -c`
//!    refuses is refused here, with the line, the column and visudo's message, and nothing is
//!    converted. Files it includes are checked the same way (not converted).
//! 2. Every command of every user specification becomes an [`Item`], with what applies to it
//!    in sudo: aliases expanded, the run-as list, tags and options carried forward from the
//!    command before it (sudo's grammar), and the `Defaults` that concern it.
//! 3. Each item converts to jitrun commands, or is left out with the reason ([`convert_item`]):
//!    a command with options (`CWD`, `CHROOT`, `TIMEOUT`, `NOTBEFORE`, ...), restrictive tags or
//!    restrictive `Defaults` (`noexec`, `requiretty`, `runchroot`, ...) is left out; where only a
//!    narrower form exists (fewer hosts, fewer run-as users, one-argument globs) that is written.
//! 4. sudo takes the *last* matching line, jitrun the *first* matching standing rule: the rules
//!    are written in reverse order, and a command is left out (or made to ask for a password)
//!    when a later line that may match the same request is stricter in a way its conversion
//!    does not reproduce ([`last_match`]).
//! 5. `Defaults targetpw`/`rootpw`/`runaspw` make sudo ask for another user's password: the rules
//!    that would ask for the invoker's instead are left out.
pub mod defaults;
pub mod grammar;
pub mod lex;
pub mod options;

use crate::cli::ImportSudoersArgs;
use crate::error::{io_error, CliError, Result};
use defaults::{Op, Setting};
use grammar::{AliasKind, Binding, Body, Cmnd, CmndKind, Entry, Member, Name, Runas};
use jit_policy::glob::{glob_match, has_meta};
use jit_policy::{
    env_known_safe, env_never_kept, valid_user_name, CommandPattern, Policy, PolicySource,
};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};

pub use grammar::SyntaxError;

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

type Aliases = HashMap<(AliasKind, String), AliasDef>;

#[derive(Debug, Clone)]
struct AliasDef {
    members: Vec<Member>,
    cmnds: Vec<Cmnd>,
}

/// Expand aliases in a member list (a negated alias negates its members).
fn expand(
    list: &[Member],
    kind: AliasKind,
    aliases: &Aliases,
    depth: usize,
) -> std::result::Result<Vec<Member>, String> {
    if depth > 32 {
        return Err(format!(
            "the {} aliases refer to each other in a loop (visudo warns about the cycle)",
            kind.keyword()
        ));
    }
    let mut out = Vec::new();
    for m in list {
        match &m.name {
            Name::Alias(a) => {
                let def = aliases.get(&(kind, a.clone())).ok_or_else(|| {
                    format!("{} {a} is used but never defined (visudo warns about it); sudo matches nothing for it: define it, or remove it", kind.keyword())
                })?;
                for x in expand(&def.members, kind, aliases, depth + 1)? {
                    out.push(Member {
                        neg: x.neg != m.neg,
                        name: x.name,
                    });
                }
            }
            _ => out.push(m.clone()),
        }
    }
    Ok(out)
}

fn expand_cmnd(
    c: &Cmnd,
    aliases: &Aliases,
    depth: usize,
) -> std::result::Result<Vec<Cmnd>, String> {
    if depth > 32 {
        return Err("the Cmnd_Alias definitions refer to each other in a loop (visudo warns about the cycle)".into());
    }
    let CmndKind::Alias(a) = &c.kind else {
        return Ok(vec![c.clone()]);
    };
    let def = aliases.get(&(AliasKind::Cmnd, a.clone())).ok_or_else(|| {
        format!("Cmnd_Alias {a} is used but never defined (visudo warns about it); sudo matches nothing for it: define it, or remove it")
    })?;
    let mut out = Vec::new();
    for inner in &def.cmnds {
        for mut x in expand_cmnd(inner, aliases, depth + 1)? {
            x.neg = x.neg != c.neg;
            out.push(x);
        }
    }
    Ok(out)
}

/// Where a `Defaults` setting applies.
#[derive(Debug, Clone)]
enum Scope {
    Global,
    Users(Vec<Member>),
    Hosts(Vec<Member>),
    Runas(Vec<Member>),
    Cmnds(Vec<Cmnd>),
}

/// A `Defaults` setting that changes what an item converts to.
#[derive(Debug, Clone)]
struct Effect {
    line: usize,
    scope: Scope,
    shown: String,
}

/// What the `Defaults` lines say that matters for conversion.
#[derive(Debug, Default)]
struct DefaultsFacts {
    env_keep: Vec<String>,
    env_keep_unchecked: Vec<String>,
    /// Settings that make sudo stricter than jitrun can be (`noexec`, `requiretty`, ...).
    restrictions: Vec<Effect>,
    /// `targetpw`, `rootpw`, `runaspw`: sudo asks for another user's password.
    other_password: Vec<Effect>,
    /// A global `runas_default`, the last one.
    runas_default: Option<String>,
    /// `runas_default` bound to users, hosts, run-as users or commands.
    bound_runas_default: Vec<Effect>,
}

/// `Defaults` settings that restrict what sudo runs, when set (to a value other than `*`).
const RESTRICTIVE: &[(&str, &str)] = &[
    (
        "noexec",
        "sudo stops the command from running other programs (NOEXEC)",
    ),
    (
        "intercept",
        "sudo checks every program the command runs against sudoers",
    ),
    ("requiretty", "sudo runs it only from a terminal"),
    ("runchroot", "sudo runs it in another root directory"),
    ("runcwd", "sudo runs it in another working directory"),
    ("command_timeout", "sudo ends it after a time"),
    (
        "apparmor_profile",
        "sudo confines it in an AppArmor profile",
    ),
    ("role", "sudo runs it in an SELinux role"),
    ("type", "sudo runs it in an SELinux type"),
    ("privs", "sudo limits its privileges"),
    ("limitprivs", "sudo limits its privileges"),
    (
        "runas_check_shell",
        "sudo runs it only as users with a valid shell",
    ),
];

fn setting_text(s: &Setting) -> String {
    let value = || {
        let v = s.value.clone().unwrap_or_default();
        if v.contains([' ', ',', ':', '=', '#', '"', '\\']) {
            format!("{v:?}")
        } else {
            v
        }
    };
    match &s.op {
        Op::Flag(true) => s.name.clone(),
        Op::Flag(false) => format!("!{}", s.name),
        Op::Set => format!("{}={}", s.name, value()),
        Op::Add => format!("{}+={}", s.name, value()),
        Op::Remove => format!("{}-={}", s.name, value()),
    }
}

fn scope_of(binding: &Binding, aliases: &Aliases) -> Scope {
    // An alias that cannot be expanded leaves the members as written: every overlap test is
    // conservative about names it does not know.
    let ex = |m: &Vec<Member>, k| expand(m, k, aliases, 0).unwrap_or_else(|_| m.clone());
    match binding {
        Binding::None => Scope::Global,
        Binding::User(m) => Scope::Users(ex(m, AliasKind::User)),
        Binding::Runas(m) => Scope::Runas(ex(m, AliasKind::Runas)),
        Binding::Host(m) => Scope::Hosts(ex(m, AliasKind::Host)),
        Binding::Cmnd(c) => Scope::Cmnds(
            c.iter()
                .flat_map(|c| expand_cmnd(c, aliases, 0).unwrap_or_else(|_| vec![c.clone()]))
                .collect(),
        ),
    }
}

fn defaults_facts(
    entries: &[Entry],
    aliases: &Aliases,
    lines: &[String],
    skip: &mut Vec<Skipped>,
) -> DefaultsFacts {
    let mut f = DefaultsFacts::default();
    for e in entries {
        let Body::Defaults { binding, settings } = &e.body else {
            continue;
        };
        let head = lines
            .get(e.line - 1)
            .and_then(|l| l.split_whitespace().next())
            .unwrap_or("Defaults");
        for s in settings {
            let shown = format!("{head} {}", setting_text(s));
            let effect = || Effect {
                line: e.line,
                scope: scope_of(binding, aliases),
                shown: shown.clone(),
            };
            let on = !matches!(s.op, Op::Flag(false));
            let name = s.name.as_str();
            let mut note = |why: String| {
                skip.push(Skipped {
                    line: e.line,
                    what: shown.clone(),
                    why,
                })
            };
            if name == "env_keep" {
                env_keep(s, binding, &mut f, &mut note);
            } else if matches!(name, "targetpw" | "rootpw" | "runaspw") && on {
                f.other_password.push(effect());
                note(format!("sudo then asks for {} password, which jitrun cannot: the rules that ask for a password and that this may concern are left out (listed below)", match name { "targetpw" => "the target user's", "rootpw" => "root's", _ => "the run-as default user's" }));
            } else if name == "runas_default" {
                match (binding, &s.value) {
                    (Binding::None, Some(v)) => f.runas_default = Some(v.clone()),
                    _ => f.bound_runas_default.push(effect()),
                }
                note("commands without a run-as list run as this user in sudo; the conversion uses it (a bound one leaves out the commands it may concern)".into());
            } else if let Some((_, why)) = RESTRICTIVE.iter().find(|(n, _)| *n == name) {
                let restricts = on && s.value.as_deref() != Some("*");
                if restricts {
                    f.restrictions.push(effect());
                    note(format!("{why}, which jitrun cannot: the commands this may concern are left out (listed below)"));
                } else {
                    note("nothing to convert (it does not restrict anything)".into());
                }
            } else {
                note(other_default_note(name, s));
            }
        }
    }
    f
}

fn other_default_note(name: &str, s: &Setting) -> String {
    match name {
        "env_reset" => "nothing to convert: jitrun always starts the command with a clean environment".into(),
        "secure_path" => format!("set secure_path = {:?} in /etc/jitrun/jitrun.toml instead", s.value.clone().unwrap_or_default()),
        "authenticate" if s.op == Op::Flag(false) => "sudo then asks for no password; the converted rules ask for one unless the line says NOPASSWD (stricter): set authenticate = false where you mean it".into(),
        _ => "this Defaults setting has no equivalent in jitrun policy".into(),
    }
}

fn env_keep(s: &Setting, binding: &Binding, f: &mut DefaultsFacts, note: &mut dyn FnMut(String)) {
    if !matches!(binding, Binding::None) {
        note("env_keep bound to users, hosts, run-as users or commands has no equivalent (env_keep is per rule): add it to the converted rules it concerns by hand".into());
        return;
    }
    let names: Vec<String> = s
        .value
        .as_deref()
        .unwrap_or("")
        .split_whitespace()
        .map(String::from)
        .collect();
    match s.op {
        Op::Flag(false) => {
            f.env_keep.clear();
            f.env_keep_unchecked.clear();
            return;
        }
        Op::Set => {
            f.env_keep.clear();
            f.env_keep_unchecked.clear();
        }
        Op::Remove => {
            f.env_keep.retain(|x| !names.contains(x));
            f.env_keep_unchecked.retain(|x| !names.contains(x));
            return;
        }
        _ => {}
    }
    for n in names {
        let valid = n
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && n.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !valid {
            note(format!("env_keep {n:?}: jitrun keeps variables by exact name only (no wildcards, no values)"));
        } else if env_never_kept(&n) {
            note(format!("env_keep {n:?}: jitrun never passes this variable to a privileged command (it lets the caller run code or choose files)"));
        } else if env_known_safe(&n) {
            if !f.env_keep.contains(&n) {
                f.env_keep.push(n);
            }
        } else if !f.env_keep_unchecked.contains(&n) {
            note(format!("env_keep {n:?} is not on jitrun's list of variables known to be safe: it is kept with env_keep_unchecked, which `jitctl policy check` flags; check that no program reads code or a path from it"));
            f.env_keep_unchecked.push(n);
        }
    }
}

/// One command of one user specification, with everything that applies to it.
#[derive(Debug, Clone)]
struct Item {
    line: usize,
    source: String,
    users: std::result::Result<Vec<Member>, String>,
    hosts: std::result::Result<Vec<Member>, String>,
    runas: std::result::Result<Option<Runas>, String>,
    /// sudo asks for a password (no NOPASSWD in force).
    password: bool,
    /// Restrictive tags in force (NOEXEC, INTERCEPT) and options, for messages.
    restricted: Vec<String>,
    /// Other tags that do not convert (SETENV, LOG_*, MAIL, FOLLOW).
    loose_tags: Vec<String>,
    cmnd: std::result::Result<Cmnd, String>,
}

fn source_lines(text: &str) -> Vec<String> {
    text.lines().map(|l| l.trim().to_string()).collect()
}

fn items(entries: &[Entry], aliases: &Aliases, text: &str) -> Vec<Item> {
    let lines = source_lines(text);
    let mut out = Vec::new();
    for e in entries {
        let Body::Spec { users, privileges } = &e.body else {
            continue;
        };
        let source = lines.get(e.line - 1).cloned().unwrap_or_default();
        let users = expand(users, AliasKind::User, aliases, 0);
        for p in privileges {
            let hosts = expand(&p.hosts, AliasKind::Host, aliases, 0);
            for cs in &p.cmnds {
                let runas = match &cs.runas {
                    None => Ok(None),
                    Some(r) => expand_runas(r, aliases).map(Some),
                };
                let mut restricted: Vec<String> =
                    cs.options.iter().map(|(o, v)| format!("{o}={v}")).collect();
                let mut loose_tags = Vec::new();
                for (tag, on) in &cs.tags.0 {
                    match (*tag, *on) {
                        ("EXEC", false) => restricted.push("NOEXEC".into()),
                        ("INTERCEPT", true) => restricted.push("INTERCEPT".into()),
                        ("SETENV", true)
                        | ("LOG_INPUT", true)
                        | ("LOG_OUTPUT", true)
                        | ("MAIL", true)
                        | ("FOLLOW", true) => loose_tags.push(tag.to_string()),
                        _ => {}
                    }
                }
                restricted.sort();
                loose_tags.sort();
                let password = cs.tags.get("PASSWD") != Some(false);
                let expanded = expand_cmnd(&cs.cmnd, aliases, 0);
                let cmnds: Vec<std::result::Result<Cmnd, String>> = match expanded {
                    Ok(list) => list.into_iter().map(Ok).collect(),
                    Err(e) => vec![Err(e)],
                };
                for cmnd in cmnds {
                    out.push(Item {
                        line: e.line,
                        source: source.clone(),
                        users: users.clone(),
                        hosts: hosts.clone(),
                        runas: runas.clone(),
                        password,
                        restricted: restricted.clone(),
                        loose_tags: loose_tags.clone(),
                        cmnd,
                    });
                }
            }
        }
    }
    out
}

fn expand_runas(r: &Runas, aliases: &Aliases) -> std::result::Result<Runas, String> {
    Ok(Runas {
        users: r
            .users
            .as_ref()
            .map(|u| expand(u, AliasKind::Runas, aliases, 0))
            .transpose()?,
        groups: r
            .groups
            .as_ref()
            .map(|g| expand(g, AliasKind::Runas, aliases, 0))
            .transpose()?,
    })
}

/// What one item converts to.
#[derive(Debug, Clone, Default)]
struct Converted {
    users: Vec<String>,
    groups: Vec<String>,
    hosts: Vec<String>,
    /// Run-as identities: "root", "invoker" or a user name.
    run_as: Vec<String>,
    words: Vec<String>,
    authenticate: bool,
    /// Nothing was narrowed: the jitrun rule matches every request the sudo item matches
    /// (globs in arguments count as narrowed: jitrun's stay within one argument and refuse "..").
    exact: bool,
    notes: Vec<String>,
}

fn cmnd_text(c: &Cmnd) -> String {
    let neg = if c.neg { "!" } else { "" };
    match &c.kind {
        CmndKind::All => format!("{neg}ALL"),
        CmndKind::Alias(a) => format!("{neg}{a}"),
        CmndKind::Command { path, args: None } => format!("{neg}{path}"),
        CmndKind::Command {
            path,
            args: Some(a),
        } => format!("{neg}{path} {a}"),
    }
}

/// A sudoers command → the words of a jitrun pattern (array form), or why not.
fn pattern(c: &Cmnd) -> std::result::Result<(Vec<String>, bool, Option<String>), String> {
    let (p, args) = match &c.kind {
        CmndKind::All => return Err("command ALL (any command) has no equivalent: jitrun rules list absolute program paths (a pattern for \"/**\" is refused); list the commands people need, or write a break-glass rule (grant = \"required\", min_approvals = 2) for the rare full-root session".into()),
        CmndKind::Alias(a) => return Err(format!("{a} is not a Cmnd_Alias this file defines")),
        CmndKind::Command { path, args } => (path, args),
    };
    if p == "sudoedit" {
        return Err("sudoedit has no equivalent: an editor run with privilege can start a shell; let the file's group edit it, or manage it with configuration management".into());
    }
    if p.starts_with('^') {
        return Err("regular expressions are not supported: jitrun program paths are exact and its argument patterns are globs within one argument; list the programs and argument lists out".into());
    }
    if p.ends_with('/') {
        return Err(format!("a directory ({p}: every program in it) has no equivalent: list its programs one by one"));
    }
    if has_meta(p.as_bytes()) {
        return Err(format!("a program path with wildcards ({p}) has no equivalent: jitrun rules name each program exactly; list them"));
    }
    if c.digest {
        return Err("digests have no equivalent: jitrun refuses targets that are not root-owned and root-writable only, which is its protection against a swapped binary; drop the digest to convert it".into());
    }
    let mut words = vec![p.clone()];
    let mut exact = true;
    let mut note = None;
    match args.as_deref() {
        None => words.push("**".to_string()),
        Some("\"\"") => {}
        Some(a) if a.starts_with('^') => return Err("regular expressions (in the arguments) are not supported: jitrun argument patterns are globs within one argument; list the argument lists out".into()),
        Some(a) => {
            let parts: Vec<&str> = a.split(' ').filter(|w| !w.is_empty()).collect();
            for (i, w) in parts.iter().enumerate() {
                if *w == "\"\"" {
                    return Err("\"\" among other arguments has no equivalent (sudo compares it as the text \"\")".into());
                }
                if has_meta(w.as_bytes()) {
                    exact = false;
                    note = Some("a '*' matches within one argument in jitrun (sudo's can span arguments), and never an argument with a \"..\" path component".to_string());
                }
                words.push(w.to_string());
                if *w == "*" && i + 1 == parts.len() {
                    words.push("**".to_string());
                }
            }
        }
    }
    CommandPattern::parse_words(&words).map_err(|e| e.to_string())?;
    Ok((words, exact, note))
}

fn convert_users(users: &[Member], c: &mut Converted) -> std::result::Result<(), String> {
    if let Some(m) = users.iter().find(|m| m.neg) {
        return Err(format!("the negated user {} has no equivalent; converting the rest would allow someone sudoers excludes", member_text(m)));
    }
    for m in users {
        match &m.name {
            Name::Word(u) if valid_user_name(u) => c.users.push(u.clone()),
            Name::Group(g)
                if !g.starts_with("%:") && !g.starts_with("%#") && valid_user_name(&g[1..]) =>
            {
                c.groups.push(g[1..].to_string())
            }
            Name::All => {
                c.exact = false;
                c.notes.push("user ALL (everyone) has no equivalent: jitrun rules name users or groups; name a group everyone concerned is in".into());
            }
            other => {
                c.exact = false;
                c.notes.push(format!("user {} is not converted (numeric ids, non-Unix groups, netgroups and names jitrun does not accept): name the users or groups", member_text(&Member { neg: false, name: other.clone() })));
            }
        }
    }
    if c.users.is_empty() && c.groups.is_empty() {
        return Err(c
            .notes
            .pop()
            .unwrap_or_else(|| "no user or group is left to convert".into()));
    }
    Ok(())
}

fn convert_hosts(hosts: &[Member], c: &mut Converted) -> std::result::Result<(), String> {
    if let Some(m) = hosts.iter().find(|m| m.neg) {
        return Err(format!("the negated host {} has no equivalent; converting the rest would allow hosts sudoers excludes", member_text(m)));
    }
    for m in hosts {
        match &m.name {
            Name::All => {
                c.hosts = vec!["*".into()];
                return Ok(());
            }
            Name::Word(h) if h.chars().all(|ch| ch.is_ascii_graphic()) => c.hosts.push(h.clone()),
            other => {
                c.exact = false;
                c.notes.push(format!("host {} is not converted: netgroups, IP addresses and networks are not host names; list the hosts' names", member_text(&Member { neg: false, name: other.clone() })));
            }
        }
    }
    if c.hosts.is_empty() {
        return Err("no host name is left in this host list (netgroups, IP addresses and networks are not host names)".into());
    }
    Ok(())
}

fn convert_runas(
    runas: &Option<Runas>,
    facts: &DefaultsFacts,
    c: &mut Converted,
) -> std::result::Result<(), String> {
    let Some(r) = runas else {
        c.run_as = vec![facts.runas_default.clone().unwrap_or_else(|| "root".into())];
        return Ok(());
    };
    let Some(users) = &r.users else {
        return Err("a run-as group only ((:group)) runs the command as yourself with another group; jitrun has no run-as group".into());
    };
    if r.groups.is_some() {
        c.exact = false;
        c.notes.push(
            "run-as groups are not converted: jitrun gives the run-as user its own groups".into(),
        );
    }
    if users.iter().any(|m| m.neg) {
        return Err("negated run-as users have no equivalent".into());
    }
    for m in users {
        match &m.name {
            Name::Myself => c.run_as.push("invoker".into()),
            Name::All => {
                c.exact = false;
                c.notes.push("run-as ALL is converted as root only: add rules with run_as = \"<user>\" for other target users".into());
                c.run_as.push("root".into());
            }
            Name::Word(u) if valid_user_name(u) && !u.starts_with('#') => c.run_as.push(u.clone()),
            other => {
                c.exact = false;
                c.notes.push(format!("run-as {} is not converted (groups, ids, netgroups and names jitrun does not accept): name the user", member_text(&Member { neg: false, name: other.clone() })));
            }
        }
    }
    let mut seen = BTreeSet::new();
    c.run_as.retain(|r| seen.insert(r.clone()));
    if c.run_as.is_empty() {
        return Err("no run-as user is left to convert".into());
    }
    Ok(())
}

fn member_text(m: &Member) -> String {
    let neg = if m.neg { "!" } else { "" };
    let n = match &m.name {
        Name::All => "ALL".into(),
        Name::Alias(a) | Name::Group(a) | Name::NetGroup(a) | Name::Address(a) | Name::Word(a) => {
            a.clone()
        }
        Name::Myself => "(yourself)".into(),
    };
    format!("{neg}{n}")
}

/// Convert one item, or say why not.
fn convert_item(item: &Item, facts: &DefaultsFacts) -> std::result::Result<Converted, String> {
    let cmnd = item.cmnd.as_ref().map_err(Clone::clone)?;
    if cmnd.neg {
        return Err("a negated command only takes away, and jitrun rules cannot express exceptions; earlier commands it may take away are left out (listed with this line)".into());
    }
    if let Some(r) = item.restricted.first() {
        let what = if r.contains('=') {
            "command options (CWD, CHROOT, TIMEOUT, NOTBEFORE/NOTAFTER, ROLE/TYPE) have no jitrun equivalent, and converting without them would allow more (an unchrooted command, no time limit); for time limits use grants (grant = \"required\", max_duration)"
        } else {
            "has no equivalent, and converting without it would allow more (jitrun's no_new_privs stops setuid gains, not exec)"
        };
        return Err(format!("{} applies to this command (sudo carries a command's run-as list, tags and options on to the commands after it in the same list): {what}", item.restricted.join(" ")));
    }
    let mut c = Converted {
        exact: true,
        authenticate: item.password,
        ..Converted::default()
    };
    convert_users(item.users.as_ref().map_err(Clone::clone)?, &mut c)?;
    convert_hosts(item.hosts.as_ref().map_err(Clone::clone)?, &mut c)?;
    convert_runas(item.runas.as_ref().map_err(Clone::clone)?, facts, &mut c)?;
    let (words, exact, note) = pattern(cmnd)?;
    c.words = words;
    c.exact &= exact;
    c.notes.extend(note);
    for t in &item.loose_tags {
        c.notes.push(format!("{t}: not converted (SETENV is never allowed, LOG_* input/output is not recorded, MAIL is not sent, FOLLOW has no meaning)"));
    }
    Ok(c)
}

// ---------------------------------------------------------------- overlap tests (conservative)

/// Could the two member lists name the same person? Unknown memberships (groups, netgroups,
/// ids, ALL, negations, names that did not expand) count as yes.
fn people_may_overlap(a: &[Member], b: &[Member]) -> bool {
    let plain = |l: &[Member]| -> Option<BTreeSet<String>> {
        l.iter()
            .map(|m| match (&m.name, m.neg) {
                (Name::Word(w), false) if !w.starts_with('#') => Some(w.clone()),
                _ => None,
            })
            .collect()
    };
    match (plain(a), plain(b)) {
        (Some(x), Some(y)) => !x.is_disjoint(&y),
        _ => true,
    }
}

fn hosts_may_overlap(a: &[Member], b: &[Member]) -> bool {
    let plain = |l: &[Member]| -> Option<BTreeSet<String>> {
        l.iter()
            .map(|m| match (&m.name, m.neg) {
                (Name::Word(w), false) if !has_meta(w.as_bytes()) => Some(w.to_ascii_lowercase()),
                _ => None,
            })
            .collect()
    };
    match (plain(a), plain(b)) {
        (Some(x), Some(y)) => !x.is_disjoint(&y),
        _ => true,
    }
}

/// The run-as users an item may run as: None = any (unknown); "" stands for the invoker.
fn runas_set(r: &Option<Runas>, facts: &DefaultsFacts) -> Option<BTreeSet<String>> {
    let Some(r) = r else {
        return Some([facts.runas_default.clone().unwrap_or_else(|| "root".into())].into());
    };
    let users = r.users.as_ref()?;
    users
        .iter()
        .map(|m| match (&m.name, m.neg) {
            (Name::Word(w), false) if !w.starts_with('#') => Some(w.clone()),
            _ => None,
        })
        .collect()
}

fn same_program(a: &str, b: &str) -> bool {
    if a == b {
        return true;
    }
    let base = |p: &str| p.rsplit('/').next().unwrap_or(p).to_string();
    // sudo matches a command by the file it names: /bin/ls and /usr/bin/ls are one file on a
    // merged-/usr system. The same base name counts as the same program.
    base(a) == base(b)
        || matches!((std::fs::canonicalize(a), std::fs::canonicalize(b)), (Ok(x), Ok(y)) if x == y)
}

/// Could sudo command `j` match a request that the converted words `i` allow?
fn cmnd_may_overlap(i: &[String], j: &Cmnd) -> bool {
    let (path, args) = match &j.kind {
        CmndKind::All | CmndKind::Alias(_) => return true,
        CmndKind::Command { path, args } => (path, args),
    };
    let program = &i[0];
    let path_hit = if path.starts_with('^') {
        true
    } else if path == "sudoedit" {
        false
    } else if path.ends_with('/') {
        program.starts_with(path.as_str())
            || same_program(
                path.trim_end_matches('/'),
                program.rsplit_once('/').map_or("", |(d, _)| d),
            )
    } else if has_meta(path.as_bytes()) {
        glob_match(path.as_bytes(), program.as_bytes())
            || glob_match(
                path.rsplit('/').next().unwrap_or("").as_bytes(),
                program.rsplit('/').next().unwrap_or("").as_bytes(),
            )
    } else {
        same_program(path, program)
    };
    if !path_hit {
        return false;
    }
    let words = &i[1..];
    match args.as_deref() {
        None => true,
        Some("\"\"") => words.is_empty() || words == ["**"],
        Some(a) => {
            let open = has_meta(a.as_bytes())
                || a.starts_with('^')
                || words.iter().any(|w| has_meta(w.as_bytes()));
            open || words.join(" ") == a.replace('\\', "")
        }
    }
}

fn item_may_overlap(i: &Item, ic: &Converted, j: &Item, facts: &DefaultsFacts) -> bool {
    let people = match (&i.users, &j.users) {
        (Ok(a), Ok(b)) => people_may_overlap(a, b),
        _ => true,
    };
    let hosts = match (&i.hosts, &j.hosts) {
        (Ok(a), Ok(b)) => hosts_may_overlap(a, b),
        _ => true,
    };
    let runas = match (&i.runas, &j.runas) {
        (Ok(a), Ok(b)) => match (runas_set(a, facts), runas_set(b, facts)) {
            (Some(x), Some(y)) => !x.is_disjoint(&y),
            _ => true,
        },
        _ => true,
    };
    let cmnd = match &j.cmnd {
        Ok(c) => cmnd_may_overlap(&ic.words, c),
        Err(_) => true,
    };
    people && hosts && runas && cmnd
}

fn scope_may_apply(scope: &Scope, i: &Item, ic: &Converted, facts: &DefaultsFacts) -> bool {
    match scope {
        Scope::Global => true,
        Scope::Users(m) => i.users.as_ref().map_or(true, |u| people_may_overlap(u, m)),
        Scope::Hosts(m) => i.hosts.as_ref().map_or(true, |h| hosts_may_overlap(h, m)),
        Scope::Runas(m) => {
            let target = Some(Runas {
                users: Some(m.clone()),
                groups: None,
            });
            match (
                i.runas.as_ref().map(|r| runas_set(r, facts)),
                runas_set(&target, facts),
            ) {
                (Ok(Some(x)), Some(y)) => !x.is_disjoint(&y),
                _ => true,
            }
        }
        Scope::Cmnds(c) => c.iter().any(|c| cmnd_may_overlap(&ic.words, c)),
    }
}

/// The `Defaults` effects that leave a converted item out: a restriction that may apply, or
/// another user's password when the item asks for one.
fn defaults_refusal(i: &Item, ic: &Converted, facts: &DefaultsFacts) -> Option<String> {
    if let Some(e) = facts
        .restrictions
        .iter()
        .find(|e| scope_may_apply(&e.scope, i, ic, facts))
    {
        return Some(format!(
            "line {} ({}) may apply to it: sudo is stricter there than a jitrun rule can be",
            e.line, e.shown
        ));
    }
    if i.runas.as_ref().is_ok_and(Option::is_none) {
        if let Some(e) = facts
            .bound_runas_default
            .iter()
            .find(|e| scope_may_apply(&e.scope, i, ic, facts))
        {
            return Some(format!(
                "line {} ({}) may change whom sudo runs it as (it has no run-as list)",
                e.line, e.shown
            ));
        }
    }
    if ic.authenticate {
        if let Some(e) = facts
            .other_password
            .iter()
            .find(|e| scope_may_apply(&e.scope, i, ic, facts))
        {
            return Some(format!("line {} ({}): sudo asks for another user's password here, and jitrun would ask for the invoker's own, which is weaker", e.line, e.shown));
        }
    }
    None
}

/// How a later item `j` is stricter than the converted `i`, if it is.
enum Stricter {
    No,
    /// It asks for a password where `i` does not: `i` can ask too.
    Password,
    /// A negation, a restriction, or another user's password: `i` must go.
    Other(&'static str),
}

fn stricter(j: &Item, jc: Option<&Converted>, ic: &Converted, facts: &DefaultsFacts) -> Stricter {
    let cmnd_neg = j.cmnd.as_ref().is_ok_and(|c| c.neg);
    if cmnd_neg {
        return Stricter::Other("it takes the command away (a negation)");
    }
    if !j.restricted.is_empty() {
        return Stricter::Other("it restricts the command (an option or NOEXEC/INTERCEPT)");
    }
    if j.password && !ic.authenticate {
        let other_pw = jc.is_none_or(|c| c.authenticate) && !facts.other_password.is_empty();
        return if other_pw {
            Stricter::Other("it asks for a password (another user's, with targetpw/rootpw/runaspw)")
        } else {
            Stricter::Password
        };
    }
    Stricter::No
}

/// sudo's last match: leave out (or make ask for a password) each converted item that a later,
/// stricter item may match as well, unless that later item was converted exactly (then the
/// reversed rule order gives it precedence in jitrun too).
fn last_match(
    items: &[Item],
    conv: &mut [Option<Converted>],
    facts: &DefaultsFacts,
    skip: &mut Vec<Skipped>,
) {
    for i in (0..items.len()).rev() {
        let Some(mut ic) = conv[i].clone() else {
            continue;
        };
        let mut drop_reason = None;
        for j in i + 1..items.len() {
            if !item_may_overlap(&items[i], &ic, &items[j], facts) {
                continue;
            }
            let jc = conv[j].as_ref();
            match stricter(&items[j], jc, &ic, facts) {
                Stricter::No => {}
                _ if jc.is_some_and(|c| c.exact)
                    && !items[j].cmnd.as_ref().is_ok_and(|c| c.neg) => {}
                Stricter::Password => {
                    ic.authenticate = true;
                    ic.notes.push(format!("asks for a password: line {} comes later, may match the same request and asks for one (sudo applies the last matching line)", items[j].line));
                }
                Stricter::Other(why) => {
                    drop_reason = Some(format!("line {} comes later and may match the same request ({why}); sudo applies the last matching line, and its conversion cannot take precedence here", items[j].line));
                    break;
                }
            }
        }
        match drop_reason {
            Some(why) => {
                skip.push(Skipped {
                    line: items[i].line,
                    what: cmnd_text(items[i].cmnd.as_ref().expect("converted")),
                    why,
                });
                conv[i] = None;
            }
            None => conv[i] = Some(ic),
        }
    }
}

// ---------------------------------------------------------------- rendering

#[derive(Debug, Default)]
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

fn toml_str(s: &str) -> String {
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

/// Group converted items into rules, in file order: an item joins the last rule made when it
/// has the same line, people, hosts, identity and password, else it starts a new one (so that
/// the order of rules is the order of the items).
fn group(items: &[Item], conv: &[Option<Converted>]) -> Vec<RuleOut> {
    let mut rules: Vec<RuleOut> = Vec::new();
    for (it, c) in items.iter().zip(conv) {
        let Some(c) = c else { continue };
        for ra in &c.run_as {
            let same = rules.last().is_some_and(|r| {
                r.line == it.line
                    && r.users == c.users
                    && r.groups == c.groups
                    && r.hosts == c.hosts
                    && &r.run_as == ra
                    && r.authenticate == c.authenticate
            });
            if !same {
                rules.push(RuleOut {
                    line: it.line,
                    source: it.source.clone(),
                    users: c.users.clone(),
                    groups: c.groups.clone(),
                    hosts: c.hosts.clone(),
                    run_as: ra.clone(),
                    authenticate: c.authenticate,
                    ..RuleOut::default()
                });
            }
            let r = rules.last_mut().expect("pushed");
            if !r.commands.contains(&c.words) {
                r.commands.push(c.words.clone());
            }
            r.notes.extend(c.notes.iter().cloned());
        }
    }
    rules
}

fn render(name: &str, rules: &[RuleOut], facts: &DefaultsFacts, skipped: &[Skipped]) -> String {
    let mut out = format!(
        "# Converted from {name} by `jitctl policy import-sudoers`.\n\
         # Every rule is standing access (grant = \"none\"), like sudoers: run `jitctl policy check`,\n\
         # then move rules to grant = \"required\" as people start using `jitctl request`.\n\
         # The rules are in reverse order of the lines they come from: sudo applies the last line\n\
         # that matches, jitrun the first standing rule. What could not be converted is listed at the end.\n"
    );
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    let prefix = rule_prefix(name);
    let mut named: Vec<(String, &RuleOut)> = Vec::new();
    for r in rules {
        let base = format!("{prefix}-{}", r.line);
        let n = seen.entry(base.clone()).or_insert(0);
        *n += 1;
        named.push((if *n == 1 { base } else { format!("{base}-{n}") }, r));
    }
    for (rule_name, r) in named.iter().rev() {
        out.push_str(&format!("\n# from {name}:{}: {}\n", r.line, r.source));
        for note in &r.notes {
            out.push_str(&format!("# note: {note}\n"));
        }
        out.push_str(&format!("[[rule]]\nname = {}\n", toml_str(rule_name)));
        if !r.users.is_empty() {
            out.push_str(&format!("users = {}\n", toml_list(&r.users)));
        }
        if !r.groups.is_empty() {
            out.push_str(&format!("groups = {}\n", toml_list(&r.groups)));
        }
        out.push_str(&format!("hosts = {}\ncommands = [\n", toml_list(&r.hosts)));
        for c in &r.commands {
            out.push_str(&format!("  {},\n", toml_list(c)));
        }
        out.push_str(&format!("]\nrun_as = {}\n", toml_str(&r.run_as)));
        if r.run_as == "root" {
            out.push_str(
                "capabilities = [\"ALL\"]  # sudo's root is full root; list fewer when you can\n",
            );
        }
        out.push_str(&format!(
            "grant = \"none\"\nauthenticate = {}\n",
            r.authenticate
        ));
        if !facts.env_keep.is_empty() {
            out.push_str(&format!("env_keep = {}\n", toml_list(&facts.env_keep)));
        }
        if !facts.env_keep_unchecked.is_empty() {
            out.push_str(&format!(
                "env_keep_unchecked = {}\n",
                toml_list(&facts.env_keep_unchecked)
            ));
        }
    }
    if !skipped.is_empty() {
        out.push_str(&format!("\n# Not converted ({}):\n", skipped.len()));
        for s in skipped {
            out.push_str(&format!("#   {name}:{}: {}: {}\n", s.line, s.what, s.why));
        }
    }
    out
}

/// Convert sudoers text; `name` is used in comments and messages. A text `visudo -c` would
/// refuse is refused ([`SyntaxError`]).
pub fn convert(name: &str, text: &str) -> std::result::Result<Conversion, SyntaxError> {
    let entries = grammar::parse(text)?;
    let mut skipped: Vec<Skipped> = Vec::new();
    let lines = source_lines(text);
    let mut aliases: Aliases = HashMap::new();
    for e in &entries {
        match &e.body {
            Body::Alias { kind, name, members, cmnds } => {
                aliases.insert((*kind, name.clone()), AliasDef { members: members.clone(), cmnds: cmnds.clone() });
            }
            Body::Include { dir, path } => skipped.push(Skipped {
                line: e.line,
                what: lines.get(e.line - 1).cloned().unwrap_or_default(),
                why: format!("{} is not followed: convert {path} with import-sudoers as well (into /etc/jitrun/policy.d/)", if *dir { "an include directory" } else { "an included file" }),
            }),
            _ => {}
        }
    }
    let facts = defaults_facts(&entries, &aliases, &lines, &mut skipped);
    let items = items(&entries, &aliases, text);
    let mut conv: Vec<Option<Converted>> = Vec::with_capacity(items.len());
    for it in &items {
        let c = convert_item(it, &facts).and_then(|c| match defaults_refusal(it, &c, &facts) {
            Some(why) => Err(why),
            None => Ok(c),
        });
        match c {
            Ok(c) => {
                for n in c.notes.iter().filter(|n| n.contains("not converted")) {
                    skipped.push(Skipped {
                        line: it.line,
                        what: it.cmnd.as_ref().map(cmnd_text).unwrap_or_default(),
                        why: format!("converted narrower: {n}"),
                    });
                }
                conv.push(Some(c));
            }
            Err(why) => {
                skipped.push(Skipped {
                    line: it.line,
                    what: it
                        .cmnd
                        .as_ref()
                        .map(cmnd_text)
                        .unwrap_or_else(|_| it.source.clone()),
                    why,
                });
                conv.push(None);
            }
        }
    }
    last_match(&items, &mut conv, &facts, &mut skipped);
    skipped.sort_by_key(|s| s.line);
    let rules = group(&items, &conv);
    Ok(Conversion {
        policy: render(name, &rules, &facts, &skipped),
        rules: rules.len(),
        skipped,
    })
}

/// The files a sudoers file includes, as visudo finds them: relative paths from the file's
/// directory; in an include directory, regular files whose names hold no '.' and do not end
/// in '~', in name order.
fn included_files(file: &Path, entries: &[Entry]) -> Vec<(PathBuf, bool)> {
    let dir = file.parent().unwrap_or(Path::new("/"));
    let mut out = Vec::new();
    for e in entries {
        let Body::Include { dir: is_dir, path } = &e.body else {
            continue;
        };
        let path = path.trim_matches('"');
        if path.contains("%h") {
            continue; // per-host names: visudo substitutes the host name; not checked here
        }
        let p = if path.starts_with('/') {
            PathBuf::from(path)
        } else {
            dir.join(path)
        };
        if !is_dir {
            out.push((p, true));
            continue;
        }
        let Ok(rd) = std::fs::read_dir(&p) else {
            continue;
        };
        let mut names: Vec<PathBuf> = rd
            .flatten()
            .map(|d| d.path())
            .filter(|f| {
                let n = f
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default();
                !n.contains('.') && !n.ends_with('~') && f.is_file()
            })
            .collect();
        names.sort();
        out.extend(names.into_iter().map(|n| (n, false)));
    }
    out
}

/// visudo -c checks the files a sudoers file includes too: so does import-sudoers (it does not
/// convert them). `depth` bounds include loops.
fn check_includes(file: &Path, text: &str, depth: usize) -> Result<()> {
    if depth > 128 {
        return Err(CliError(format!(
            "{}: too many levels of includes",
            file.display()
        )));
    }
    let entries = grammar::parse(text).map_err(|e| syntax(&file.display().to_string(), &e))?;
    for (inc, must_exist) in included_files(file, &entries) {
        let body = match std::fs::read(&inc) {
            Ok(b) => String::from_utf8_lossy(&b).into_owned(),
            Err(e) if must_exist => {
                return Err(CliError(format!(
                    "{}: {e}, included from {} (visudo -c refuses it too); nothing was converted",
                    inc.display(),
                    file.display()
                )))
            }
            Err(_) => continue,
        };
        check_includes(&inc, &body, depth + 1)?;
    }
    Ok(())
}

fn syntax(name: &str, e: &SyntaxError) -> CliError {
    CliError(format!("{name}:{}:{}: {} (visudo -c refuses this file too; fix it with visudo, then convert it again); nothing was converted", e.line, e.col, e.message))
}

pub fn run(args: &ImportSudoersArgs) -> Result<()> {
    let bytes = std::fs::read(&args.file).map_err(|e| io_error("cannot read", &args.file, &e))?;
    let name = args.file.display().to_string();
    let text = String::from_utf8(bytes).map_err(|e| {
        CliError(format!(
            "{name}: not UTF-8 (byte {}); nothing was converted",
            e.utf8_error().valid_up_to()
        ))
    })?;
    let conv = convert(&name, &text).map_err(|e| syntax(&name, &e))?;
    check_includes(&args.file, &text, 0)?;
    // The output must load: a converter bug must not produce a policy jitrun refuses.
    Policy::load(&[PolicySource { name: "converted policy".to_string(), text: conv.policy.clone() }])
        .map_err(|e| CliError(format!("internal error: the converted policy does not load ({e}); please report this with the sudoers file")))?;
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
mod tests;
