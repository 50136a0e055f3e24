//! The policy files: `/etc/jitrun/policy.toml` then `/etc/jitrun/policy.d/*.toml`
//! in name order (the caller reads them and hands over the bytes in that order).
//!
//! ```toml
//! [[rule]]
//! name = "net-debug"
//! users = ["alice"]                 # users and/or groups; at least one
//! groups = ["netops"]
//! hosts = ["web-*"]                 # default ["*"]
//! commands = ["/usr/sbin/ip **", ["/usr/bin/printf", "%s with spaces\n", "*"]]
//! run_as = "invoker"                # "invoker" (default) | "root" | a user name
//! capabilities = ["CAP_NET_ADMIN", "net_raw"]
//! grant = "required"                # default; "none" = standing access
//! max_duration = "1h"               # default "1h"
//! min_approvals = 0
//! env_keep = ["TERM", "LANG"]      # variables known to be safe (SAFE_ENV)
//! env_keep_unchecked = ["APP_ENV"] # others, vouched for by the admin (linted)
//! allow_risks = ["shell-escape"]    # lint findings the admin has weighed (jitctl)
//! no_new_privs = true               # default true
//! authenticate = false              # default false
//! require_fresh_revocations = false # default false; true: refuse grants while the host's
//!                                   # revocation list is missing, invalid or older than
//!                                   # settings revocations.max_age
//! record = true                     # default: settings record.default (false); record the
//!                                   # session (asciicast v2 + session.io events)
//! record_input = false              # default false; also record what is typed (passwords too)
//!
//! [[test]]                          # for `jitctl policy check` and `jitctl policy test`
//! user = "alice"                    # (crate::test_case); the loader passes these tables
//! argv = ["/usr/sbin/ip", "link"]   # over without reading them, so a broken test never
//! grant = { rule = "net-debug" }    # keeps a host's rules from loading
//! expect = "allow"
//! ```
//! Unknown keys are errors (a typo must never silently widen or narrow access). How a
//! `[[rule]]` table is read and checked: [`crate::rule`].

use crate::error::{Location, PolicyError};
use crate::rule::{parse_rule, Rule, SourceLoc};
use crate::toml_doc::{Doc, Entry, Raw, Span};
use std::collections::HashMap;

/// One file's bytes and the name to use in messages (normally its path).
#[derive(Debug, Clone)]
pub struct PolicySource {
    pub name: String,
    pub text: String,
}

#[derive(Debug, Clone, Default)]
pub struct Policy {
    /// In load order.
    pub rules: Vec<Rule>,
}

/// The top-level keys of a policy file.
const POLICY_KEYS: &[&str] = &["rule", "test"];

impl Policy {
    /// Parse and validate every source, in order; merge; reject duplicate rule names
    /// (naming both places). Validation: name non-empty `[A-Za-z0-9._-]+`; at least one of
    /// users/groups; every command pattern valid (absolute program path); run_as a valid
    /// user name if not invoker/root; capabilities parse; `ALL` only with run_as = "root";
    /// durations parse and are > 0; env_keep names valid. Errors carry file:line and field.
    ///
    /// `[[test]]` tables are not read here: [`crate::test_case::load_tests`] reads them
    /// (`jitctl policy check` and `jitctl policy test` do both).
    pub fn load(sources: &[PolicySource]) -> Result<Policy, PolicyError> {
        let mut policy = Policy::default();
        // Name → index in `policy.rules`: duplicate detection in O(1) per rule (a linear
        // search per rule made loading quadratic: ~50 million comparisons at 10 000 rules).
        let mut seen: HashMap<String, usize> = HashMap::new();
        for src in sources {
            let (doc, root) = Doc::parse(&src.name, &src.text)?;
            doc.check_keys(&root, POLICY_KEYS, "policy")?;
            for (index, (table, span)) in tables(&doc, &root, "rule")?.into_iter().enumerate() {
                let rule = parse_rule(&doc, table, span, index, source_loc(&doc, span))?;
                if let Some(&first) = seen.get(&rule.name) {
                    return Err(duplicate(&rule, &policy.rules[first]));
                }
                seen.insert(rule.name.clone(), policy.rules.len());
                policy.rules.push(rule);
            }
        }
        Ok(policy)
    }

    pub fn rule(&self, name: &str) -> Option<&Rule> {
        self.rules.iter().find(|r| r.name == name)
    }
}

fn duplicate(rule: &Rule, first: &Rule) -> PolicyError {
    let at = |r: &Rule| Location {
        file: r.source.file.clone(),
        line: r.source.line,
    };
    PolicyError::DuplicateRule {
        name: rule.name.clone(),
        at: at(rule),
        first: at(first),
    }
}

/// The `[[key]]` tables of one file (`[[rule]]` or `[[test]]`), in order, each with the
/// span of its header.
pub(crate) fn tables<'e>(
    doc: &Doc<'_>,
    root: &'e [Entry],
    key: &str,
) -> Result<Vec<(&'e [Entry], Span<'e>)>, PolicyError> {
    // TOML allows a key once per table: at most one entry.
    match root.iter().find(|e| e.key == key) {
        None => Ok(Vec::new()),
        Some(entry) => array_of_tables(doc, entry),
    }
}

/// Where a table's header is.
pub(crate) fn source_loc(doc: &Doc<'_>, span: Span<'_>) -> SourceLoc {
    SourceLoc {
        file: doc.name.to_string(),
        line: span.map_or(0, |s| doc.line(s.start)),
    }
}

/// `[[rule]]` / `[[test]]`: an array of tables, each with its span.
fn array_of_tables<'e>(
    doc: &Doc<'_>,
    entry: &'e Entry,
) -> Result<Vec<(&'e [Entry], Span<'e>)>, PolicyError> {
    let header = format!("[[{}]]", entry.key);
    let Raw::Array(items) = &entry.node.value else {
        let how = if matches!(entry.node.value, Raw::Table(_)) {
            format!(
                "write {header}, not [{}], so that there can be several",
                entry.key
            )
        } else {
            format!("write each one as a {header} table")
        };
        return Err(doc.err(
            doc.entry_span(entry),
            &entry.key,
            format!(
                "expected an array of tables, found {}; {how}",
                entry.node.value.kind()
            ),
        ));
    };
    items
        .iter()
        .map(|n| match &n.value {
            Raw::Table(t) => Ok((t.as_slice(), Some(&n.span))),
            other => Err(doc.err(
                &n.span,
                &entry.key,
                format!(
                    "expected a table, found {}; write each one as a {header} table",
                    other.kind()
                ),
            )),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::caps::CapSet;
    use crate::pattern::CommandPattern;
    use crate::rule::{GrantMode, RunAs, RULE_KEYS};
    use std::ffi::OsStr;
    use std::time::Duration;

    const NET: &str = "/etc/jitrun/policy.d/10-net.toml";

    fn src(name: &str, text: &str) -> PolicySource {
        PolicySource {
            name: name.to_string(),
            text: text.to_string(),
        }
    }

    fn load(text: &str) -> Result<Policy, PolicyError> {
        Policy::load(&[src(NET, text)])
    }

    fn err(text: &str) -> String {
        load(text).unwrap_err().to_string()
    }

    #[test]
    fn full_rule_and_defaults() {
        let p = load(
            r#"# network debugging
[[rule]]
name = "net-debug"
users = ["alice"]
groups = ["netops"]
hosts = ["web-*"]
commands = ["/usr/sbin/ip **", ["/usr/bin/printf", "%s with spaces\n", "*"]]
run_as = "invoker"
capabilities = ["CAP_NET_ADMIN", "net_raw"]
grant = "required"
max_duration = "1h30m"
min_approvals = 2
env_keep = ["TERM", "LANG"]
no_new_privs = false
authenticate = true
require_fresh_revocations = true
record = true
record_input = true

[[rule]]
name = "db.restart_1"
groups = ["dba"]
commands = ["/usr/bin/systemctl restart postgresql"]
"#,
        )
        .unwrap();
        assert_eq!(p.rules.len(), 2);
        let r = p.rule("net-debug").unwrap();
        assert_eq!(r.users, vec!["alice"]);
        assert_eq!(r.groups, vec!["netops"]);
        assert_eq!(r.hosts, vec!["web-*"]);
        assert_eq!(r.commands.len(), 2);
        assert_eq!(
            r.commands[0],
            CommandPattern::parse_str("/usr/sbin/ip **").unwrap()
        );
        assert_eq!(r.commands[1].args, vec!["%s with spaces\n", "*"]);
        assert_eq!(r.run_as, RunAs::Invoker);
        assert_eq!(r.capabilities.names(), vec!["CAP_NET_ADMIN", "CAP_NET_RAW"]);
        assert_eq!(r.grant, GrantMode::Required);
        assert_eq!(r.max_duration, Duration::from_secs(5400));
        assert_eq!(r.min_approvals, 2);
        assert_eq!(r.env_keep, vec!["TERM", "LANG"]);
        assert!(!r.no_new_privs);
        assert!(r.authenticate);
        assert!(r.require_fresh_revocations);
        assert_eq!((r.record, r.record_input), (Some(true), true));
        assert_eq!(r.lines.record_input, 18);
        assert_eq!(
            r.source,
            SourceLoc {
                file: NET.to_string(),
                line: 2
            }
        );

        // Defaults.
        let d = p.rule("db.restart_1").unwrap();
        assert!(d.users.is_empty());
        assert_eq!(d.hosts, vec!["*"]);
        assert_eq!(d.run_as, RunAs::Invoker);
        assert_eq!(d.capabilities, CapSet::EMPTY);
        assert_eq!(d.grant, GrantMode::Required);
        assert_eq!(d.max_duration, Duration::from_secs(3600));
        assert_eq!(d.min_approvals, 0);
        assert!(d.env_keep.is_empty());
        assert!(d.no_new_privs);
        assert!(!d.authenticate);
        assert!(!d.require_fresh_revocations);
        assert_eq!((d.record, d.record_input), (None, false));
        let mut settings = crate::record::RecordSettings::default();
        assert!(r.records(&settings) && !d.records(&settings));
        settings.default = true;
        assert!(d.records(&settings));
        assert_eq!(d.source.line, 20);
        assert!(d.commands[0].matches(
            OsStr::new("/usr/bin/systemctl"),
            &[OsStr::new("restart"), OsStr::new("postgresql")]
        ));
        assert!(p.rule("nope").is_none());
    }

    #[test]
    fn run_as_forms_and_all() {
        let p = load(
            "[[rule]]\nname = \"a\"\nusers = [\"u\"]\ncommands = [\"/bin/true\"]\nrun_as = \"root\"\ncapabilities = [\"ALL\"]\ngrant = \"none\"\n\
             [[rule]]\nname = \"b\"\nusers = [\"u\"]\ncommands = [\"/bin/true\"]\nrun_as = \"postgres\"\n",
        )
        .unwrap();
        assert_eq!(p.rules[0].run_as, RunAs::Root);
        assert!(p.rules[0].capabilities.is_all());
        assert_eq!(p.rules[0].grant, GrantMode::None);
        assert_eq!(p.rules[1].run_as, RunAs::User("postgres".to_string()));
    }

    #[test]
    fn unknown_capability_has_file_line_rule_and_field() {
        let text = "\n[[rule]]\nname = \"net-debug\"\nusers = [\"alice\"]\ncommands = [\"/usr/sbin/ip **\"]\n\ncapabilities = [\"CAP_NET_ADMIN\", \"CAP_NET_FOO\"]\n";
        assert_eq!(
            err(text),
            "/etc/jitrun/policy.d/10-net.toml:7: rule \"net-debug\": capabilities: unknown capability \"CAP_NET_FOO\" (names look like CAP_NET_ADMIN or net_admin)"
        );
        // In a multi-line array the line is the entry's own.
        let text = "[[rule]]\nname = \"n\"\nusers = [\"a\"]\ncommands = [\"/bin/x\"]\ncapabilities = [\n  \"net_admin\",\n  \"net_foo\",\n]\n";
        assert!(err(text).starts_with(&format!(
            "{NET}:7: rule \"n\": capabilities: unknown capability \"net_foo\""
        )));
    }

    #[test]
    fn unknown_keys() {
        let text = "[[rule]]\nname = \"net-debug\"\nusres = [\"alice\"]\n";
        assert_eq!(
            err(text),
            format!(
                "{NET}:3: rule \"net-debug\": unknown key \"usres\" (did you mean \"users\"?); valid keys: {}",
                RULE_KEYS.join(", ")
            )
        );
        // Without a usable name the rule is named by index.
        let text = "[[rule]]\nname = \"ok\"\nusers = [\"a\"]\ncommands = [\"/bin/x\"]\n\n[[rule]]\nnmae = \"x\"\n";
        let e = err(text);
        assert!(
            e.starts_with(&format!(
                "{NET}:7: rule[1]: unknown key \"nmae\" (did you mean \"name\"?)"
            )),
            "{e}"
        );
        let e = err("\n\n[[rules]]\nname = \"x\"\n");
        assert!(e.starts_with(&format!("{NET}:3: policy: unknown key \"rules\" (did you mean \"rule\"?); valid keys: rule, test")), "{e}");
        let e = err("version = 2\n");
        assert_eq!(
            e,
            format!("{NET}:1: policy: unknown key \"version\"; valid keys: rule, test")
        );
    }

    #[test]
    fn duplicate_rule_names_across_files() {
        let a = src(
            "/etc/jitrun/policy.toml",
            "[[rule]]\nname = \"db\"\nusers = [\"a\"]\ncommands = [\"/bin/x\"]\n",
        );
        let b = src(
            "/etc/jitrun/policy.d/20-db.toml",
            "# more\n\n[[rule]]\nname = \"other\"\nusers = [\"a\"]\ncommands = [\"/bin/x\"]\n\n[[rule]]\nname = \"db\"\ngroups = [\"g\"]\ncommands = [\"/bin/y\"]\n",
        );
        let e = Policy::load(&[a.clone(), b.clone()]).unwrap_err();
        assert_eq!(
            e,
            PolicyError::DuplicateRule {
                name: "db".to_string(),
                at: crate::error::Location {
                    file: "/etc/jitrun/policy.d/20-db.toml".to_string(),
                    line: 8
                },
                first: crate::error::Location {
                    file: "/etc/jitrun/policy.toml".to_string(),
                    line: 1
                },
            }
        );
        assert_eq!(
            e.to_string(),
            "/etc/jitrun/policy.d/20-db.toml:8: rule \"db\" is already defined at /etc/jitrun/policy.toml:1; rule names must be unique across policy.toml and policy.d/"
        );
        // Within one file too.
        let e = Policy::load(&[src("p.toml", &format!("{}\n{}", a.text, a.text))]).unwrap_err();
        assert!(
            e.to_string()
                .starts_with("p.toml:6: rule \"db\" is already defined at p.toml:1"),
            "{e}"
        );
        // Merge order is load order.
        let c = src(
            "c.toml",
            "[[rule]]\nname = \"z\"\nusers = [\"a\"]\ncommands = [\"/bin/x\"]\n",
        );
        let p = Policy::load(&[c, a]).unwrap();
        assert_eq!(
            p.rules.iter().map(|r| r.name.as_str()).collect::<Vec<_>>(),
            vec!["z", "db"]
        );
        assert_eq!(p.rules[1].source.file, "/etc/jitrun/policy.toml");
    }

    #[test]
    fn test_tables_are_passed_over() {
        // The loader never reads [[test]] tables: a broken one does not keep the rules from
        // loading on a host (jitctl policy check and policy test report it).
        let rule = "[[rule]]\nname = \"r\"\nusers = [\"a\"]\ncommands = [\"/bin/x\"]\n";
        for tests in [
            "[[test]]\nuser = \"a\"\nargv = [\"/bin/x\"]\nexpect = \"deny\"\n",
            "[[test]]\nuser = \"a\"\nanything = { nested = 1 }\n",
            "test = 1\n",
            "[test]\nexpect = \"maybe\"\n",
        ] {
            let p = load(&format!("{tests}\n{rule}")).unwrap();
            assert_eq!(p.rules.len(), 1, "{tests}");
        }
        // A TOML syntax error is still one, wherever it is.
        let e = err(&format!("{rule}\n[[test]]\nuser = \n"));
        assert!(e.starts_with(&format!("{NET}:7: TOML syntax: ")), "{e}");
    }

    #[test]
    fn rule_lines() {
        let p = load("[[rule]]\nname = \"r\"\nusers = [\"a\"]\ncommands = [\n  \"/bin/x\",\n  \"/bin/y\",\n]\ngrant = \"none\"\n").unwrap();
        let r = &p.rules[0];
        assert_eq!(r.lines.commands, [5, 6]);
        assert_eq!(r.lines.grant, 8);
        assert_eq!(r.lines.capabilities, 0);
        assert_eq!(r.line(r.lines.capabilities), 1);
    }

    fn rule_with(extra: &str) -> String {
        format!(
            "[[rule]]\nname = \"r\"\nusers = [\"alice\"]\ncommands = [\"/usr/bin/id\"]\n{extra}\n"
        )
    }

    #[test]
    fn validation_errors_name_field_and_line() {
        let cases: &[(&str, &str)] = &[
            ("[[rule]]\nusers = [\"a\"]\ncommands = [\"/bin/x\"]\n", ":1: rule[0]: name: missing"),
            ("[[rule]]\nname = \"bad name\"\nusers = [\"a\"]\n", ":2: rule[0]: name: invalid rule name \"bad name\""),
            ("[[rule]]\nname = \"\"\n", ":2: rule[0]: name: invalid rule name \"\""),
            ("[[rule]]\nname = 5\n", ":2: rule[0]: name: expected a string, found an integer"),
            ("[[rule]]\nname = \"r\"\ncommands = [\"/bin/x\"]\n", ":1: rule \"r\": users: the rule names nobody"),
            ("[[rule]]\nname = \"r\"\nusers = []\ngroups = []\n", ":3: rule \"r\": users: the rule names nobody"),
            ("[[rule]]\nname = \"r\"\nusers = \"alice\"\n", ":3: rule \"r\": users: expected an array of strings such as [\"alice\"], found a string"),
            ("[[rule]]\nname = \"r\"\nusers = [\"al ice\"]\n", ":3: rule \"r\": users: invalid user name \"al ice\""),
            ("[[rule]]\nname = \"r\"\ngroups = [\"1000\"]\n", ":3: rule \"r\": groups: invalid group name \"1000\""),
            ("[[rule]]\nname = \"r\"\nusers = [\"a\"]\n", ":1: rule \"r\": commands: missing"),
            ("[[rule]]\nname = \"r\"\nusers = [\"a\"]\ncommands = []\n", ":4: rule \"r\": commands: empty list"),
            ("[[rule]]\nname = \"r\"\nusers = [\"a\"]\ncommands = \"/bin/x\"\n", ":4: rule \"r\": commands: expected an array of commands, found a string"),
            ("[[rule]]\nname = \"r\"\nusers = [\"a\"]\ncommands = [\n\"/bin/x\",\n\"bin/y\",\n]\n", ":6: rule \"r\": commands: command \"bin/y\": the program \"bin/y\" must be an absolute path"),
            ("[[rule]]\nname = \"r\"\nusers = [\"a\"]\ncommands = [\"/sbin/ip ** link\"]\n", ":4: rule \"r\": commands: command \"/sbin/ip ** link\": \"**\" (any remaining arguments) may only be the last word"),
            ("[[rule]]\nname = \"r\"\nusers = [\"a\"]\ncommands = [[\"/bin/x\", 1]]\n", ":4: rule \"r\": commands: expected strings in a command array, found an integer"),
            ("[[rule]]\nname = \"r\"\nusers = [\"a\"]\ncommands = [3]\n", ":4: rule \"r\": commands: expected a string or an array of strings for each command"),
            ("[[rule]]\nname = \"r\"\nusers = [\"a\"]\nhosts = []\ncommands = [\"/bin/x\"]\n", ":4: rule \"r\": hosts: empty list"),
            ("[[rule]]\nname = \"r\"\nusers = [\"a\"]\nhosts = [\"web 1\"]\ncommands = [\"/bin/x\"]\n", ":4: rule \"r\": hosts: invalid host name or glob \"web 1\""),
        ];
        for (text, want) in cases {
            let e = err(text);
            assert!(
                e.starts_with(&format!("{NET}{want}")),
                "{text:?}\n got: {e}\nwant: {NET}{want}"
            );
        }
        let rule_cases: &[(&str, &str)] = &[
            ("run_as = \"Bad User\"", ":5: rule \"r\": run_as: invalid value \"Bad User\": expected \"invoker\", \"root\" or a user name"),
            ("run_as = true", ":5: rule \"r\": run_as: expected a string, found a boolean"),
            ("capabilities = [\"ALL\"]", ":5: rule \"r\": capabilities: \"ALL\" (every capability: full root, for break-glass) is only allowed with run_as = \"root\""),
            ("run_as = \"postgres\"\ncapabilities = [\"net_raw\", \"all\"]", ":6: rule \"r\": capabilities: \"ALL\""),
            ("capabilities = \"net_raw\"", ":5: rule \"r\": capabilities: expected an array of strings"),
            ("grant = \"optional\"", ":5: rule \"r\": grant: invalid value \"optional\": expected \"required\" (the default) or \"none\""),
            ("max_duration = \"0s\"", ":5: rule \"r\": max_duration: must be longer than zero"),
            ("max_duration = \"1 hour\"", ":5: rule \"r\": max_duration: \"1 hour\": no spaces allowed; expected a duration such as \"90s\", \"5m\" or \"1h30m\""),
            ("max_duration = 3600", ":5: rule \"r\": max_duration: expected a string such as \"1h\" or \"30m\", found an integer"),
            ("min_approvals = -1", ":5: rule \"r\": min_approvals: -1 is out of range: expected 0 or more"),
            ("min_approvals = \"2\"", ":5: rule \"r\": min_approvals: expected an integer, found a string"),
            ("env_keep = [\"TERM\", \"1BAD\"]", ":5: rule \"r\": env_keep: invalid variable name \"1BAD\""),
            ("env_keep = [\"LD_PRELOAD\"]", ":5: rule \"r\": env_keep: \"LD_PRELOAD\" is never kept"),
            ("env_keep = [\"BASH_ENV\"]", ":5: rule \"r\": env_keep: \"BASH_ENV\" is never kept"),
            ("env_keep = [\"TERM\", \"APP_ENV\"]", ":5: rule \"r\": env_keep: \"APP_ENV\" is not on the list of variables known to be safe to keep"),
            ("env_keep_unchecked = [\"GIT_CONFIG_PARAMETERS\"]", ":5: rule \"r\": env_keep_unchecked: \"GIT_CONFIG_PARAMETERS\" is never kept"),
            ("env_keep_unchecked = [\"LANG\"]", ":5: rule \"r\": env_keep_unchecked: \"LANG\" is known to be safe: list it in env_keep"),
            ("allow_risks = [\"Shell escape\"]", ":5: rule \"r\": allow_risks: invalid lint id \"Shell escape\""),
            ("allow_risks = [\"shell-escape\", \"shell-escape\"]", ":5: rule \"r\": allow_risks: \"shell-escape\" is listed twice"),
            ("no_new_privs = \"no\"", ":5: rule \"r\": no_new_privs: expected true or false, found a string"),
            ("authenticate = 1", ":5: rule \"r\": authenticate: expected true or false, found an integer"),
        ];
        for (extra, want) in rule_cases {
            let e = err(&rule_with(extra));
            assert!(
                e.starts_with(&format!("{NET}{want}")),
                "{extra:?}\n got: {e}\nwant: {NET}{want}"
            );
        }
        // Positive controls for the same fields.
        assert!(load(&rule_with("run_as = \"root\"\ncapabilities = [\"all\"]")).is_ok());
        let ok = load(&rule_with(
            "max_duration = \"500ms\"\nenv_keep = [\"LC_TIME\", \"TZ\"]\nenv_keep_unchecked = [\"_X1\"]\nallow_risks = [\"env-keep-unchecked\"]",
        ))
        .unwrap();
        assert_eq!(ok.rules[0].kept_env(), ["LC_TIME", "TZ", "_X1"]);
        assert_eq!(ok.rules[0].allow_risks, ["env-keep-unchecked"]);
        assert_eq!(ok.rules[0].lines.allow_risks, 8);
        assert!(load(&rule_with("run_as = \"svc-backup$\"")).is_ok());
    }

    #[test]
    fn structural_errors() {
        let e = err("[rule]\nname = \"r\"\n");
        assert!(e.starts_with(&format!("{NET}:1: rule: expected an array of tables, found a table; write [[rule]], not [rule]")), "{e}");
        let e = err("rule = [1]\n");
        assert!(
            e.starts_with(&format!(
                "{NET}:1: rule: expected a table, found an integer"
            )),
            "{e}"
        );
        let e = err("[[rule]]\nname = \"r\"\nusers = [\"a\" \"b\"]\ncommands = []\n");
        assert!(e.starts_with(&format!("{NET}:3: TOML syntax: ")), "{e}");
        // Inline tables in an array work like [[rule]] headers.
        let p =
            load("rule = [\n  { name = \"a\", users = [\"u\"], commands = [\"/bin/x\"] },\n]\n")
                .unwrap();
        assert_eq!(p.rules[0].source.line, 2);
        // An empty policy is valid.
        assert!(load("").unwrap().rules.is_empty());
        assert!(Policy::load(&[]).unwrap().rules.is_empty());
    }
}
