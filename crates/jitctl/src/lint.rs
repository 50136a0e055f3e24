//! Lint for `jitctl policy check`: policy that loads fine but is probably not what the
//! admin wants. Every finding names the file, the line, a stable code, and what to do.
//!
//! | code | when |
//! |---|---|
//! | `standing-access` | `grant = "none"` |
//! | `shell-with-privilege` | a shell or interpreter (data file) under capabilities or another identity |
//! | `runs-any-command` | a runner (`env`, `xargs`, `nice`, …) whose arguments are left open |
//! | `shell-escape` | `**` after a program that can spawn a shell (`vi`, `less`, `find`, …) |
//! | `all-capabilities` | `capabilities = ["ALL"]` on a rule that is not break-glass |
//! | `outside-secure-path` | a program outside the settings' `secure_path` directories |
//! | `never-matches` | a rule that can never allow anything (an impossible host) |
//! | `shadowed` | a standing rule never chosen because an earlier one covers it |
//!
//! The program lists live in one data file, `data/shell-escapes.toml`.
//!
//! A finding the admin has weighed is silenced by a comment on its line, or on the
//! line just above it, naming the code and saying why:
//! `# jitctl-lint: allow(shell-escape) DBAs own the database; psql's \! runs as postgres`.
use jit_policy::glob::{glob_match, glob_within, has_meta};
use jit_policy::{CommandPattern, GrantMode, Policy, Rule, RunAs, Settings};
use std::collections::BTreeMap;
use std::sync::OnceLock;

const DATA: &str = include_str!("../data/shell-escapes.toml");

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Data {
    interpreters: Vec<String>,
    runners: Vec<String>,
    escapes: BTreeMap<String, Escape>,
}

#[derive(Debug, serde::Deserialize)]
#[serde(untagged)]
enum Escape {
    How(String),
    Words { how: String, words: Vec<String> },
}

impl Escape {
    fn how(&self) -> &str {
        match self {
            Escape::How(h) | Escape::Words { how: h, .. } => h,
        }
    }
    /// Does this pattern (which ends in `**`) leave the escape open?
    fn open_in(&self, c: &CommandPattern) -> bool {
        match self {
            Escape::How(_) => true,
            Escape::Words { words, .. } => {
                let fixed_word = c
                    .args
                    .iter()
                    .any(|a| !a.starts_with('-') && !has_meta(a.as_bytes()));
                !fixed_word || c.args.iter().any(|a| words.contains(a))
            }
        }
    }
}

fn data() -> &'static Data {
    static D: OnceLock<Data> = OnceLock::new();
    D.get_or_init(|| toml::from_str(DATA).expect("data/shell-escapes.toml is valid (unit-tested)"))
}

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
}

fn base(program: &str) -> &str {
    program.rsplit('/').next().unwrap_or(program)
}

fn in_list(list: &[String], name: &str) -> bool {
    list.iter()
        .any(|p| glob_match(p.as_bytes(), name.as_bytes()))
}

pub fn is_interpreter(program: &str) -> bool {
    in_list(&data().interpreters, base(program))
}

fn is_runner(program: &str) -> bool {
    in_list(&data().runners, base(program))
}

fn escape(program: &str) -> Option<&'static Escape> {
    data().escapes.get(base(program))
}

/// What the rule gives beyond the caller's own identity, or None.
fn privilege(rule: &Rule) -> Option<String> {
    let who = match &rule.run_as {
        RunAs::Invoker => None,
        RunAs::Root => Some("root".to_string()),
        RunAs::User(u) => Some(format!("user {u}")),
    };
    let caps = (!rule.capabilities.is_empty()).then(|| rule.capabilities.to_string());
    match (who, caps) {
        (None, None) => None,
        (Some(w), None) => Some(format!("the identity of {w}")),
        (None, Some(c)) => Some(caps_text(c)),
        (Some(w), Some(c)) => Some(format!("{} as {w}", caps_text(c))),
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

pub fn lint(policy: &Policy, settings: &Settings) -> Vec<Finding> {
    let mut out = Vec::new();
    let secure: Vec<&str> = settings.secure_path_dirs().collect();
    for (i, rule) in policy.rules.iter().enumerate() {
        let mut warn = |line: usize, code: &'static str, message: String| {
            out.push(Finding {
                file: rule.source.file.clone(),
                line: rule.line(line),
                code,
                message: format!("rule \"{}\": {message}", rule.name),
                severity: Severity::Warning,
            })
        };
        if rule.grant == GrantMode::None {
            warn(
                rule.lines.grant,
                "standing-access",
                "grant = \"none\" is standing access: everyone it names may run its commands at any time, without a grant or an approver; set grant = \"required\" once people use `jitctl request`, and keep standing rules only while migrating from sudoers".to_string(),
            );
        }
        if rule.capabilities.is_all() && (rule.grant == GrantMode::None || rule.min_approvals == 0)
        {
            let why = if rule.grant == GrantMode::None {
                "as standing access"
            } else {
                "with no approver (min_approvals = 0)"
            };
            warn(
                rule.lines.capabilities,
                "all-capabilities",
                format!("capabilities = [\"ALL\"] is full root {why}; make it a break-glass rule: grant = \"required\" with min_approvals = 2 (a break-glass grant skips the approvers and is audited at alert severity), or list the capabilities the commands need"),
            );
        }
        if rule.record_input {
            if rule.records(&settings.record) {
                warn(
                    rule.lines.record_input,
                    "records-input",
                    "record_input = true records everything typed in the session, passwords typed at a prompt inside it too (su, ssh, sudo, database clients); keep it off unless keystrokes are needed as evidence".to_string(),
                );
            } else {
                warn(
                    rule.lines.record_input,
                    "no-effect",
                    "record_input = true has no effect: the rule does not record (set record = true, or record.default in the settings)".to_string(),
                );
            }
        }
        for h in &rule.hosts {
            if !host_glob_possible(h) {
                warn(
                    rule.lines.hosts,
                    "never-matches",
                    format!("host pattern {h:?} can never match a host name (letters, digits, '-', '.', '_'); IP addresses and netmasks are not host names: list the hosts' names"),
                );
            }
        }
        let privs = privilege(rule);
        for (k, c) in rule.commands.iter().enumerate() {
            let line = rule.lines.commands.get(k).copied().unwrap_or(0);
            let shown = c.to_string();
            if let Some(p) = &privs {
                if is_interpreter(&c.program) {
                    warn(line, "shell-with-privilege", format!("\"{shown}\" hands {p} to {}, a shell or interpreter: it runs any code with them (and capabilities pass to everything it starts); list the programs the task needs instead", c.program));
                } else if is_runner(&c.program) {
                    if open_args(c) {
                        warn(line, "runs-any-command", format!("\"{shown}\" leaves the arguments of {}, which runs the command named in them, open: that is any command with {p}; fix every argument, or list the target program itself", c.program));
                    } else if let Some(t) = c
                        .args
                        .iter()
                        .find(|a| a.starts_with('/') && (is_interpreter(a) || is_runner(a)))
                    {
                        warn(line, "shell-with-privilege", format!("\"{shown}\" runs {t}, a shell, interpreter or runner, with {p}; list the program the task needs instead"));
                    }
                } else if let Some(esc) = escape(&c.program) {
                    if c.rest && esc.open_in(c) {
                        warn(line, "shell-escape", format!("\"{shown}\": {} with ** (any arguments) can start a shell ({}) that keeps {p}; list the exact arguments the task needs", base(&c.program), esc.how()));
                    }
                }
            }
            let dir = c
                .program
                .rsplit_once('/')
                .map_or("/", |(d, _)| if d.is_empty() { "/" } else { d });
            if !secure.contains(&dir) {
                warn(line, "outside-secure-path", format!("{} is outside the secure_path directories ({}): make sure it and every directory above it are owned by root and writable only by root, or install it in one of them", c.program, settings.secure_path));
            }
        }
        if rule.grant == GrantMode::None {
            if let Some(a) = policy.rules[..i]
                .iter()
                .find(|a| a.grant == GrantMode::None && covers(a, rule))
            {
                warn(0, "shadowed", format!("never chosen without --rule: the earlier standing rule \"{}\" ({}:{}) names the same people, hosts, identity and commands, and the first matching standing rule wins; merge the two or remove one", a.name, a.source.file, a.source.line));
            }
        }
    }
    out
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
mod tests {
    use super::*;
    use jit_policy::PolicySource;

    #[test]
    fn allow_comments() {
        let text = "a\n# jitctl-lint: allow(standing-access) migration until May\ngrant = \"none\"\nx = 1 # jitctl-lint: allow(shadowed)\n";
        assert!(allowed_at(text, 3, "standing-access"));
        assert!(allowed_at(text, 2, "standing-access"));
        assert!(!allowed_at(text, 3, "shadowed"));
        assert!(allowed_at(text, 4, "shadowed"));
        assert!(!allowed_at(text, 1, "standing-access"));
        assert!(
            !allowed_at("jitctl-lint: allow(x)\n", 1, "x"),
            "only in a comment"
        );
    }

    fn findings(text: &str) -> Vec<(usize, &'static str)> {
        let p = Policy::load(&[PolicySource {
            name: "p.toml".to_string(),
            text: text.to_string(),
        }])
        .unwrap();
        lint(&p, &Settings::default())
            .into_iter()
            .map(|f| (f.line, f.code))
            .collect()
    }

    #[test]
    fn data_file_parses() {
        let d = data();
        assert!(d.interpreters.iter().any(|i| i == "python*"));
        assert!(d.runners.iter().any(|i| i == "env"));
        assert!(d.escapes.contains_key("less") && d.escapes.contains_key("find"));
        assert!(is_interpreter("/usr/bin/python3.11"));
        let ip = escape("/usr/sbin/ip").unwrap();
        let open = |p: &str| ip.open_in(&CommandPattern::parse_str(p).unwrap());
        assert!(
            open("/usr/sbin/ip **") && open("/usr/sbin/ip -s **") && open("/usr/sbin/ip netns **")
        );
        assert!(!open("/usr/sbin/ip link **") && !open("/usr/sbin/ip -s link **"));
        assert!(!is_interpreter("/usr/bin/ip"));
    }

    #[test]
    fn a_clean_rule_has_no_findings() {
        assert_eq!(
            findings("[[rule]]\nname = \"n\"\nusers = [\"a\"]\ncommands = [\"/usr/sbin/ip link **\", \"/usr/bin/less /var/log/syslog\"]\ncapabilities = [\"net_admin\"]\nmin_approvals = 1\n"),
            []
        );
        // Without privilege, shells and escapes give nothing away.
        assert_eq!(
            findings("[[rule]]\nname = \"n\"\nusers = [\"a\"]\ncommands = [\"/usr/bin/bash **\", \"/usr/bin/less **\"]\n"),
            []
        );
    }

    #[test]
    fn each_lint_fires_at_its_line() {
        let text = "[[rule]]\nname = \"n\"\nusers = [\"a\"]\ncommands = [\n  \"/usr/bin/bash **\",\n  \"/usr/bin/env **\",\n  \"/usr/bin/env /usr/bin/python3 x.py\",\n  \"/usr/bin/vim **\",\n  \"/usr/bin/vim /etc/hosts\",\n  \"/opt/tool/bin/x\",\n]\nrun_as = \"root\"\ncapabilities = [\"ALL\"]\ngrant = \"none\"\nhosts = [\"10.0.0.0/8\"]\nauthenticate = true\n";
        assert_eq!(
            findings(text),
            [
                (14, "standing-access"),
                (13, "all-capabilities"),
                (15, "never-matches"),
                (5, "shell-with-privilege"),
                (6, "runs-any-command"),
                (7, "shell-with-privilege"),
                (8, "shell-escape"),
                (10, "outside-secure-path"),
            ]
        );
    }

    #[test]
    fn all_capabilities_with_approvers_is_break_glass() {
        assert_eq!(
            findings("[[rule]]\nname = \"bg\"\nusers = [\"a\"]\ncommands = [\"/usr/sbin/reboot\"]\nrun_as = \"root\"\ncapabilities = [\"ALL\"]\nmin_approvals = 2\n"),
            []
        );
        assert_eq!(
            findings("[[rule]]\nname = \"bg\"\nusers = [\"a\"]\ncommands = [\"/usr/sbin/reboot\"]\nrun_as = \"root\"\ncapabilities = [\"ALL\"]\n"),
            [(6, "all-capabilities")]
        );
    }

    #[test]
    fn recording_input() {
        let rule = "[[rule]]\nname = \"r\"\nusers = [\"a\"]\ncommands = [\"/usr/bin/true\"]\n";
        assert_eq!(findings(&format!("{rule}record = true\n")), []);
        assert_eq!(
            findings(&format!("{rule}record = true\nrecord_input = true\n")),
            [(6, "records-input")]
        );
        assert_eq!(
            findings(&format!("{rule}record_input = true\n")),
            [(5, "no-effect")]
        );
    }

    #[test]
    fn shadowed_standing_rules() {
        let text = "[[rule]]\nname = \"a\"\nusers = [\"u\", \"v\"]\ncommands = [\"/usr/bin/journalctl **\"]\ngrant = \"none\"\n\n[[rule]]\nname = \"b\"\nusers = [\"u\"]\nhosts = [\"web-*\"]\ncommands = [\"/usr/bin/journalctl -u *\"]\ngrant = \"none\"\n";
        assert_eq!(
            findings(text),
            [
                (5, "standing-access"),
                (12, "standing-access"),
                (7, "shadowed")
            ]
        );
        // A different identity, or someone the first does not name, is not shadowed.
        let text2 = text.replace("users = [\"u\"]\nhosts", "users = [\"w\"]\nhosts");
        assert!(!findings(&text2).iter().any(|f| f.1 == "shadowed"));
        let text3 = text.replace(
            "hosts = [\"web-*\"]",
            "hosts = [\"web-*\"]\nrun_as = \"root\"",
        );
        assert!(!findings(&text3).iter().any(|f| f.1 == "shadowed"));
    }
}
