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
//! sealed_validity = "30d"           # default unset: sealed break-glass grants refused
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
//! [[test]]                          # for `jitctl policy test`: parsed and checked here,
//! user = "alice"                    # evaluated by `jitctl policy test`, never by jitrun
//! argv = ["/usr/sbin/ip", "link"]
//! grant = { rule = "net-debug" }
//! expect = "allow"
//! ```
//! Unknown keys are errors (a typo must never silently widen or narrow access).
//!
//! Errors read `file:LINE: rule "name": field: problem` (`rule[N]` with a 0-based
//! index within the file when the rule has no valid name yet).
//!
//! Besides the checks listed on [`Policy::load`], `env_keep` names only variables known to
//! be safe to pass ([`SAFE_ENV`]); `env_keep_unchecked` may name others, but never one
//! that lets the caller inject code into the privileged command ([`env_never_kept`]:
//! `LD_*`, `GCONV_PATH`, `BASH_ENV`, `GIT_*`, ...); `hosts` must not be empty, and
//! `commands` must list at least one command.

use crate::error::Location;
use crate::test_case::{parse_test, PolicyTest};
use crate::text::quote;
use crate::toml_doc::{Doc, Entry, Raw};
use crate::{parse_duration, CapSet, CommandPattern, PolicyError};
use std::collections::HashMap;
use std::ops::Range;
use std::time::Duration;

/// One file's bytes and the name to use in messages (normally its path).
#[derive(Debug, Clone)]
pub struct PolicySource {
    pub name: String,
    pub text: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceLoc {
    pub file: String,
    /// 1-based line of the `[[rule]]` header.
    pub line: usize,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RunAs {
    Invoker,
    Root,
    User(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GrantMode {
    /// A valid grant token is needed (the default).
    Required,
    /// Standing access: no token (migration from sudoers; flagged by the linter).
    None,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    pub name: String,
    pub users: Vec<String>,
    pub groups: Vec<String>,
    /// Host globs; default `["*"]`.
    pub hosts: Vec<String>,
    pub commands: Vec<CommandPattern>,
    pub run_as: RunAs,
    pub capabilities: CapSet,
    pub grant: GrantMode,
    /// Longest `exp - iat` a grant for this rule may have, and the longest a command may run
    /// on a sealed grant. Default 1h.
    pub max_duration: Duration,
    /// Longest `exp - iat` a sealed break-glass grant (claim `sealed`) for this rule may have;
    /// None (the default): sealed grants are refused.
    pub sealed_validity: Option<Duration>,
    pub min_approvals: u32,
    /// Variables kept from the caller: names on [`SAFE_ENV`] only.
    pub env_keep: Vec<String>,
    /// Variables kept from the caller that are not known to be safe (never one that
    /// [`env_never_kept`] names): the admin's explicit escape hatch, which the linter flags.
    pub env_keep_unchecked: Vec<String>,
    /// Lint ids the admin has acknowledged for this rule (`jitctl policy check --strict`
    /// passes them; `policy explain` shows them). No effect on decisions.
    pub allow_risks: Vec<String>,
    pub no_new_privs: bool,
    pub authenticate: bool,
    /// Refuse grants for this rule while `/var/lib/jitrun/revocations` is missing, invalid,
    /// or older than settings `revocations.max_age` (deny code `revocations_stale`).
    pub require_fresh_revocations: bool,
    /// `record`: `None` when the rule does not say (then the settings' `record.default`).
    pub record: Option<bool>,
    /// `record_input`: also record what is typed to the command.
    pub record_input: bool,
    pub source: SourceLoc,
    /// Where some keys were written, for the linter's messages.
    pub lines: RuleLines,
}

/// 1-based lines of some of a rule's keys (0 when the key is not written: then the
/// `[[rule]]` header's line, [`SourceLoc::line`], is the one to report).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RuleLines {
    pub hosts: usize,
    pub run_as: usize,
    pub capabilities: usize,
    pub grant: usize,
    pub authenticate: usize,
    pub record_input: usize,
    pub env_keep_unchecked: usize,
    pub allow_risks: usize,
    /// One per entry of `commands`, in order.
    pub commands: Vec<usize>,
}

impl Rule {
    /// Whether runs under this rule are recorded: its `record`, else the settings' default.
    pub fn records(&self, settings: &crate::RecordSettings) -> bool {
        self.record.unwrap_or(settings.default)
    }

    /// The variables this rule passes from the caller's environment (their values are checked
    /// by jitrun): `env_keep` names that are on [`SAFE_ENV`] and `env_keep_unchecked` names
    /// that [`env_never_kept`] does not refuse. The loader already enforces both; this is the
    /// same check again where the list is used.
    pub fn kept_env(&self) -> Vec<String> {
        let safe = self.env_keep.iter().filter(|n| env_known_safe(n));
        let unchecked = self.env_keep_unchecked.iter();
        safe.chain(unchecked)
            .filter(|n| valid_env_name(n) && !env_never_kept(n))
            .cloned()
            .collect()
    }

    /// The line of a key (see [`RuleLines`]), else the rule's header line.
    pub fn line(&self, key_line: usize) -> usize {
        if key_line > 0 {
            key_line
        } else {
            self.source.line
        }
    }
}

#[derive(Debug, Clone, Default)]
pub struct Policy {
    /// In load order.
    pub rules: Vec<Rule>,
    /// `[[test]]` cases, typed (see [`crate::test_case`]); jitrun never evaluates them.
    pub tests: Vec<PolicyTest>,
}

impl Policy {
    /// Parse and validate every source, in order; merge; reject duplicate rule names
    /// (naming both places). Validation: name non-empty `[A-Za-z0-9._-]+`; at least one of
    /// users/groups; every command pattern valid (absolute program path); run_as a valid
    /// user name if not invoker/root; capabilities parse; `ALL` only with run_as = "root";
    /// durations parse and are > 0; env_keep names valid. Errors carry file:line and field.
    pub fn load(sources: &[PolicySource]) -> Result<Policy, PolicyError> {
        let mut policy = Policy::default();
        // Name → index in `policy.rules`: duplicate detection in O(1) per rule (a linear
        // search per rule made loading quadratic: ~50 million comparisons at 10 000 rules).
        let mut seen: HashMap<String, usize> = HashMap::new();
        for src in sources {
            let (doc, root) = Doc::parse(&src.name, &src.text)?;
            doc.check_keys(&root, &["rule", "test"], "policy")?;
            for entry in &root {
                let tables = array_of_tables(&doc, entry)?;
                for (index, (table, span)) in tables.into_iter().enumerate() {
                    let source = SourceLoc {
                        file: src.name.clone(),
                        line: span.map_or(0, |s| doc.line(s.start)),
                    };
                    if entry.key == "rule" {
                        let rule = parse_rule(&doc, table, span, index, source)?;
                        if let Some(&first) = seen.get(&rule.name) {
                            let first = &policy.rules[first];
                            return Err(PolicyError::DuplicateRule {
                                name: rule.name.clone(),
                                at: Location {
                                    file: rule.source.file.clone(),
                                    line: rule.source.line,
                                },
                                first: Location {
                                    file: first.source.file.clone(),
                                    line: first.source.line,
                                },
                            });
                        }
                        seen.insert(rule.name.clone(), policy.rules.len());
                        policy.rules.push(rule);
                    } else {
                        policy
                            .tests
                            .push(parse_test(&doc, table, span, index, source)?);
                    }
                }
            }
        }
        Ok(policy)
    }

    pub fn rule(&self, name: &str) -> Option<&Rule> {
        self.rules.iter().find(|r| r.name == name)
    }
}

type Span<'e> = Option<&'e Range<usize>>;

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
            Raw::Table(t) => Ok((t.as_slice(), n.span.as_ref())),
            other => Err(doc.err(
                n.span.as_ref().or(doc.entry_span(entry)),
                &entry.key,
                format!(
                    "expected a table, found {}; write each one as a {header} table",
                    other.kind()
                ),
            )),
        })
        .collect()
}

const RULE_KEYS: &[&str] = &[
    "name",
    "users",
    "groups",
    "hosts",
    "commands",
    "run_as",
    "capabilities",
    "grant",
    "max_duration",
    "sealed_validity",
    "min_approvals",
    "env_keep",
    "env_keep_unchecked",
    "no_new_privs",
    "authenticate",
    "require_fresh_revocations",
    "record",
    "record_input",
    "allow_risks",
];

/// `max_duration` when a rule does not set it.
pub const DEFAULT_MAX_DURATION: Duration = Duration::from_secs(3600);

/// A rule's duration key (`max_duration`, `sealed_validity`): a string such as "30m", longer
/// than zero; None when the key is absent.
fn rule_duration(
    doc: &Doc<'_>,
    entry: Option<&Entry>,
    field: &str,
) -> Result<Option<Duration>, PolicyError> {
    let Some(e) = entry else {
        return Ok(None);
    };
    let sp = doc.entry_span(e);
    let text = match &e.node.value {
        Raw::Str(s) => s.as_str(),
        other => {
            return Err(doc.err(
                sp,
                field,
                format!(
                    "expected a string such as \"1h\" or \"30m\", found {}",
                    other.kind()
                ),
            ))
        }
    };
    let d = parse_duration(text).map_err(|err| doc.locate(err, sp, field))?;
    if d.is_zero() {
        return Err(doc.err(sp, field, "must be longer than zero, e.g. \"30m\""));
    }
    Ok(Some(d))
}

/// Rule names: `[A-Za-z0-9._-]+`.
pub(crate) fn valid_rule_name(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// User and group names as shadow-utils accepts them: `[A-Za-z0-9._-]`, optionally a
/// final `$`, not starting with `-`, not all digits (a number would be read as an id),
/// at most 256 bytes.
pub fn valid_user_name(s: &str) -> bool {
    let body = s.strip_suffix('$').unwrap_or(s);
    !body.is_empty()
        && s.len() <= 256
        && !body.starts_with('-')
        && body
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
        && !body.bytes().all(|b| b.is_ascii_digit())
        && body != "."
        && body != ".."
}

/// Environment variable names: `[A-Za-z_][A-Za-z0-9_]*`.
pub(crate) fn valid_env_name(s: &str) -> bool {
    let mut b = s.bytes();
    b.next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == b'_')
        && b.all(|c| c.is_ascii_alphanumeric() || c == b'_')
}

/// Variables known to be safe to pass to a privileged command: their values are terminal
/// sizes and names, locale names and time-zone names (jitrun refuses locale and TZ values
/// that are paths), which no program reads code, configuration or a file name from. These
/// are the only names `env_keep` accepts; anything else needs `env_keep_unchecked`.
pub const SAFE_ENV: &[&str] = &[
    "TERM",
    "COLORTERM",
    "COLUMNS",
    "LINES",
    "NO_COLOR",
    "LANG",
    "LANGUAGE",
    "LC_ALL",
    "LC_ADDRESS",
    "LC_COLLATE",
    "LC_CTYPE",
    "LC_IDENTIFICATION",
    "LC_MEASUREMENT",
    "LC_MESSAGES",
    "LC_MONETARY",
    "LC_NAME",
    "LC_NUMERIC",
    "LC_PAPER",
    "LC_TELEPHONE",
    "LC_TIME",
    "TZ",
];

/// Is `name` on [`SAFE_ENV`]?
pub fn env_known_safe(name: &str) -> bool {
    SAFE_ENV.contains(&name)
}

/// Prefixes of variables never passed to a privileged command (see [`NEVER_KEPT_ENV`]):
/// the dynamic loader's, git's (`GIT_CONFIG_PARAMETERS` runs `core.fsmonitor`, `GIT_DIR`
/// picks the repository and its hooks), interpreters' start-up and module paths, less's
/// (`LESSOPEN`, `LESSEDIT`, `LESS=+!sh`), systemd's pager and editor (`SYSTEMD_PAGER`,
/// `SYSTEMD_PAGERSECURE=0`), the XDG directories programs read configuration and plugins
/// from, and OpenSSL's configuration and engines.
pub const NEVER_KEPT_PREFIXES: &[&str] = &[
    "LD_", "GIT_", "PYTHON", "PERL", "RUBY", "NODE_", "LESS", "SYSTEMD_", "XDG_", "OPENSSL_",
    "SSL_", "KRB5", "GTK_", "QT_", "GIO_", "DYLD_",
];

/// Variables never passed to a privileged command, whatever a rule says: they make the
/// dynamic loader, the C library, a shell, an interpreter, an editor, a pager or another
/// program run code or read configuration, data or credentials of the caller's choosing,
/// or choose which program runs (an ambient-capability exec is not AT_SECURE, so the C
/// library trusts its environment). Together with [`NEVER_KEPT_PREFIXES`]. The policy
/// loader refuses them in `env_keep` and `env_keep_unchecked`, and jitrun drops them even
/// if a rule got through.
pub const NEVER_KEPT_ENV: &[&str] = &[
    "PATH",
    "HOME",
    "SHELL",
    "IFS",
    "CDPATH",
    "FPATH",
    "BASH_ENV",
    "ENV",
    "SHELLOPTS",
    "BASHOPTS",
    "PS1",
    "PS2",
    "PS3",
    "PS4",
    "PROMPT_COMMAND",
    "HISTFILE",
    "INPUTRC",
    "ZDOTDIR",
    "GCONV_PATH",
    "GETCONF_DIR",
    "LOCPATH",
    "NLSPATH",
    "TZDIR",
    "HOSTALIASES",
    "LOCALDOMAIN",
    "RES_OPTIONS",
    "RESOLV_HOST_CONF",
    "NIS_PATH",
    "MALLOC_CHECK_",
    "MALLOC_TRACE",
    "GLIBC_TUNABLES",
    "TMPDIR",
    "TMP",
    "TEMP",
    "TERMINFO",
    "TERMINFO_DIRS",
    "TERMCAP",
    "TERMPATH",
    "JAVA_TOOL_OPTIONS",
    "_JAVA_OPTIONS",
    "JDK_JAVA_OPTIONS",
    "CLASSPATH",
    "EDITOR",
    "VISUAL",
    "SUDO_EDITOR",
    "SUDO_ASKPASS",
    "SSH_ASKPASS",
    "SSH_AUTH_SOCK",
    "PAGER",
    "MANPAGER",
    "MANOPT",
    "MANPATH",
    "MANROFFOPT",
    "BROWSER",
    "VIMINIT",
    "EXINIT",
    "MYVIMRC",
    "VIMRUNTIME",
    "EMACSLOADPATH",
    "MAKEFLAGS",
    "MFLAGS",
    "MAKEFILES",
    "CURL_HOME",
    "WGETRC",
    "NETRC",
    "GNUPGHOME",
    "DBUS_SESSION_BUS_ADDRESS",
    "XAUTHORITY",
    "KUBECONFIG",
    "DOCKER_HOST",
    "DOCKER_CONFIG",
    "PSQLRC",
    "PGPASSFILE",
    "PGSERVICEFILE",
    "MYSQL_HOME",
    "SQLITE_HISTORY",
    "GDBHISTFILE",
];

/// Is `name` one of the variables never passed to a command ([`NEVER_KEPT_ENV`] and
/// [`NEVER_KEPT_PREFIXES`])?
pub fn env_never_kept(name: &str) -> bool {
    NEVER_KEPT_ENV.contains(&name) || NEVER_KEPT_PREFIXES.iter().any(|p| name.starts_with(p))
}

/// Host names or globs: printable, no whitespace.
fn valid_host_pattern(s: &str) -> bool {
    !s.is_empty() && s.len() <= 255 && s.chars().all(|c| c.is_ascii_graphic())
}

fn parse_rule(
    doc: &Doc<'_>,
    table: &[Entry],
    span: Span<'_>,
    index: usize,
    source: SourceLoc,
) -> Result<Rule, PolicyError> {
    let get = |key: &str| table.iter().find(|e| e.key == key);

    // Every message names the rule: by its name when it has a valid one.
    let name_entry = get("name");
    let label = match name_entry.map(|e| &e.node.value) {
        Some(Raw::Str(n)) if valid_rule_name(n) => format!("rule {}", quote(n)),
        _ => format!("rule[{index}]"),
    };
    let field = |key: &str| format!("{label}: {key}");
    doc.check_keys(table, RULE_KEYS, &label)?;
    let name = match name_entry {
        None => {
            return Err(doc.err(
                span,
                &field("name"),
                "missing; every rule needs a unique name = \"...\" (letters, digits, '.', '_', '-')",
            ));
        }
        Some(e) => {
            let n = doc.string(e, &field("name"))?;
            if !valid_rule_name(n) {
                return Err(doc.err(
                    doc.entry_span(e),
                    &field("name"),
                    format!(
                        "invalid rule name {}: use letters, digits, '.', '_' and '-' only",
                        quote(n)
                    ),
                ));
            }
            n.to_string()
        }
    };

    let names = |key: &str, what: &str| -> Result<Vec<String>, PolicyError> {
        let Some(e) = get(key) else {
            return Ok(Vec::new());
        };
        doc.strings(e, &field(key), "[\"alice\"]")?
            .into_iter()
            .map(|(n, sp)| {
                if valid_user_name(n) {
                    Ok(n.to_string())
                } else {
                    Err(doc.err(sp, &field(key), format!("invalid {what} name {}", quote(n))))
                }
            })
            .collect()
    };
    let users = names("users", "user")?;
    let groups = names("groups", "group")?;
    if users.is_empty() && groups.is_empty() {
        let sp = get("users")
            .or(get("groups"))
            .map_or(span, |e| doc.entry_span(e));
        return Err(doc.err(
            sp,
            &field("users"),
            "the rule names nobody; list at least one user or group (users = [\"alice\"] or groups = [\"netops\"])",
        ));
    }

    let hosts = match get("hosts") {
        None => vec!["*".to_string()],
        Some(e) => {
            let list = doc.strings(e, &field("hosts"), "[\"web-*\"]")?;
            if list.is_empty() {
                return Err(doc.err(
                    doc.entry_span(e),
                    &field("hosts"),
                    "empty list: the rule would apply nowhere; omit hosts for every host, or list host names or globs",
                ));
            }
            list.into_iter()
                .map(|(h, sp)| {
                    if valid_host_pattern(h) {
                        Ok(h.to_string())
                    } else {
                        Err(doc.err(
                            sp,
                            &field("hosts"),
                            format!("invalid host name or glob {}", quote(h)),
                        ))
                    }
                })
                .collect::<Result<_, _>>()?
        }
    };

    let commands = match get("commands") {
        None => return Err(doc.err(
            span,
            &field("commands"),
            "missing; list the commands this rule allows, e.g. commands = [\"/usr/sbin/ip **\"]",
        )),
        Some(e) => parse_commands(doc, e, &field("commands"))?,
    };

    let run_as = match get("run_as") {
        None => RunAs::Invoker,
        Some(e) => match doc.string(e, &field("run_as"))? {
            "invoker" => RunAs::Invoker,
            "root" => RunAs::Root,
            u if valid_user_name(u) => RunAs::User(u.to_string()),
            u => {
                return Err(doc.err(
                    doc.entry_span(e),
                    &field("run_as"),
                    format!(
                        "invalid value {}: expected \"invoker\", \"root\" or a user name",
                        quote(u)
                    ),
                ))
            }
        },
    };

    let capabilities = match get("capabilities") {
        None => CapSet::EMPTY,
        Some(e) => {
            let list = doc.strings(e, &field("capabilities"), "[\"CAP_NET_ADMIN\"]")?;
            let mut set = CapSet::EMPTY;
            for (c, sp) in &list {
                let one = CapSet::parse_list(&[c])
                    .map_err(|err| doc.locate(err, *sp, &field("capabilities")))?;
                if c.eq_ignore_ascii_case("ALL") && run_as != RunAs::Root {
                    return Err(doc.err(
                        *sp,
                        &field("capabilities"),
                        "\"ALL\" (every capability: full root, for break-glass) is only allowed with run_as = \"root\"; list the capabilities the commands need instead",
                    ));
                }
                set.0 |= one.0;
            }
            set
        }
    };

    let grant = match get("grant") {
        None => GrantMode::Required,
        Some(e) => match doc.string(e, &field("grant"))? {
            "required" => GrantMode::Required,
            "none" => GrantMode::None,
            g => {
                return Err(doc.err(
                    doc.entry_span(e),
                    &field("grant"),
                    format!("invalid value {}: expected \"required\" (the default) or \"none\" (standing access)", quote(g)),
                ))
            }
        },
    };

    let max_duration = rule_duration(doc, get("max_duration"), &field("max_duration"))?
        .unwrap_or(DEFAULT_MAX_DURATION);
    let sealed_validity = rule_duration(doc, get("sealed_validity"), &field("sealed_validity"))?;

    let min_approvals = match get("min_approvals") {
        None => 0,
        Some(e) => {
            let n = doc.integer(e, &field("min_approvals"))?;
            u32::try_from(n).map_err(|_| {
                doc.err(
                    doc.entry_span(e),
                    &field("min_approvals"),
                    format!("{n} is out of range: expected 0 or more"),
                )
            })?
        }
    };

    let env_keep = env_names(doc, get("env_keep"), &field("env_keep"), true)?;
    let env_keep_unchecked = env_names(
        doc,
        get("env_keep_unchecked"),
        &field("env_keep_unchecked"),
        false,
    )?;
    let allow_risks = match get("allow_risks") {
        None => Vec::new(),
        Some(e) => {
            let mut out: Vec<String> = Vec::new();
            for (id, sp) in doc.strings(e, &field("allow_risks"), "[\"shell-escape\"]")? {
                let valid = !id.is_empty()
                    && id
                        .bytes()
                        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
                if !valid {
                    return Err(doc.err(sp, &field("allow_risks"), format!("invalid lint id {}: lint ids look like \"shell-escape\" (jitctl policy check names them)", quote(id))));
                }
                if out.iter().any(|o| o == id) {
                    return Err(doc.err(
                        sp,
                        &field("allow_risks"),
                        format!("{} is listed twice", quote(id)),
                    ));
                }
                out.push(id.to_string());
            }
            out
        }
    };

    let flag = |key: &str, default: bool| match get(key) {
        None => Ok(default),
        Some(e) => doc.boolean(e, &field(key)),
    };
    let no_new_privs = flag("no_new_privs", true)?;
    let authenticate = flag("authenticate", false)?;
    let require_fresh_revocations = flag("require_fresh_revocations", false)?;
    let record = get("record")
        .map(|e| doc.boolean(e, &field("record")))
        .transpose()?;
    let record_input = flag("record_input", false)?;

    let line_of = |key: &str| get(key).map_or(0, |e| doc.loc(doc.entry_span(e)).line);
    let commands_entry = get("commands");
    let command_lines = match commands_entry.map(|e| &e.node.value) {
        Some(Raw::Array(items)) => items
            .iter()
            .map(|n| {
                doc.loc(
                    n.span
                        .as_ref()
                        .or(commands_entry.and_then(|e| doc.entry_span(e))),
                )
                .line
            })
            .collect(),
        _ => Vec::new(),
    };
    let lines = RuleLines {
        hosts: line_of("hosts"),
        run_as: line_of("run_as"),
        capabilities: line_of("capabilities"),
        grant: line_of("grant"),
        authenticate: line_of("authenticate"),
        record_input: line_of("record_input"),
        env_keep_unchecked: line_of("env_keep_unchecked"),
        allow_risks: line_of("allow_risks"),
        commands: command_lines,
    };

    Ok(Rule {
        name,
        users,
        groups,
        hosts,
        commands,
        run_as,
        capabilities,
        grant,
        max_duration,
        sealed_validity,
        min_approvals,
        env_keep,
        env_keep_unchecked,
        allow_risks,
        no_new_privs,
        authenticate,
        require_fresh_revocations,
        record,
        record_input,
        source,
        lines,
    })
}

/// `env_keep` (`safe_only`: names on [`SAFE_ENV`]) or `env_keep_unchecked` (any name
/// that is not never kept, and not one that belongs in `env_keep`).
fn env_names(
    doc: &Doc<'_>,
    entry: Option<&Entry>,
    field: &str,
    safe_only: bool,
) -> Result<Vec<String>, PolicyError> {
    let Some(e) = entry else {
        return Ok(Vec::new());
    };
    let example = if safe_only {
        "[\"TERM\", \"LANG\"]"
    } else {
        "[\"APP_ENV\"]"
    };
    doc.strings(e, field, example)?
        .into_iter()
        .map(|(v, sp)| {
            let why = if !valid_env_name(v) {
                format!("invalid variable name {}: expected [A-Za-z_][A-Za-z0-9_]*", quote(v))
            } else if env_never_kept(v) {
                format!("{} is never kept: it would let the caller run code of their choice, or make the command read configuration, files or credentials of the caller's choosing, in the privileged command", quote(v))
            } else if safe_only && !env_known_safe(v) {
                format!("{} is not on the list of variables known to be safe to keep (terminal, locale and time-zone names: see docs/policy.md); if the command needs it and you have checked that no program it runs reads code, configuration or a path from it, list it in env_keep_unchecked instead (jitctl policy check then warns with env-keep-unchecked)", quote(v))
            } else if !safe_only && env_known_safe(v) {
                format!("{} is known to be safe: list it in env_keep", quote(v))
            } else {
                return Ok(v.to_string());
            };
            Err(doc.err(sp, field, why))
        })
        .collect()
}

fn parse_commands(
    doc: &Doc<'_>,
    e: &Entry,
    field: &str,
) -> Result<Vec<CommandPattern>, PolicyError> {
    const EXAMPLE: &str = "e.g. commands = [\"/usr/sbin/ip **\", [\"/usr/bin/printf\", \"a b\"]]";
    let Raw::Array(items) = &e.node.value else {
        return Err(doc.err(
            doc.entry_span(e),
            field,
            format!(
                "expected an array of commands, found {}; {EXAMPLE}",
                e.node.value.kind()
            ),
        ));
    };
    if items.is_empty() {
        return Err(doc.err(
            doc.entry_span(e),
            field,
            format!("empty list: the rule would allow nothing; {EXAMPLE}"),
        ));
    }
    items
        .iter()
        .map(|n| {
            parse_pattern_node(
                doc,
                n,
                doc.entry_span(e),
                field,
                &format!("a string or an array of strings for each command; {EXAMPLE}"),
            )
        })
        .collect()
}

/// One command pattern: a string (`"/usr/sbin/ip **"`) or an array of words (the array form,
/// for arguments with spaces). `expected` says what was expected when it is neither.
pub(crate) fn parse_pattern_node(
    doc: &Doc<'_>,
    n: &crate::toml_doc::Node,
    fallback: Option<&Range<usize>>,
    field: &str,
    expected: &str,
) -> Result<CommandPattern, PolicyError> {
    let sp = n.span.as_ref().or(fallback);
    let parsed = match &n.value {
        Raw::Str(s) => CommandPattern::parse_str(s),
        Raw::Array(words) => {
            let words = words
                .iter()
                .map(|w| match &w.value {
                    Raw::Str(s) => Ok(s.as_str()),
                    other => Err(doc.err(
                        w.span.as_ref().or(sp),
                        field,
                        format!(
                            "expected strings in a command array, found {}",
                            other.kind()
                        ),
                    )),
                })
                .collect::<Result<Vec<_>, _>>()?;
            CommandPattern::parse_words(&words)
        }
        other => {
            return Err(doc.err(
                sp,
                field,
                format!("expected {expected}, found {}", other.kind()),
            ))
        }
    };
    parsed.map_err(|err| doc.locate(err, sp, field))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::OsStr;

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
sealed_validity = "30d"
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
        assert_eq!(r.sealed_validity, Some(Duration::from_secs(30 * 86400)));
        assert_eq!(r.min_approvals, 2);
        assert_eq!(r.env_keep, vec!["TERM", "LANG"]);
        assert!(!r.no_new_privs);
        assert!(r.authenticate);
        assert!(r.require_fresh_revocations);
        assert_eq!((r.record, r.record_input), (Some(true), true));
        assert_eq!(r.lines.record_input, 19);
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
        assert_eq!(d.sealed_validity, None);
        assert_eq!(d.min_approvals, 0);
        assert!(d.env_keep.is_empty());
        assert!(d.no_new_privs);
        assert!(!d.authenticate);
        assert!(!d.require_fresh_revocations);
        assert_eq!((d.record, d.record_input), (None, false));
        let mut settings = crate::RecordSettings::default();
        assert!(r.records(&settings) && !d.records(&settings));
        settings.default = true;
        assert!(d.records(&settings));
        assert_eq!(d.source.line, 21);
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
    fn tests_are_typed() {
        let p = load(
            "[[rule]]\nname = \"r\"\nusers = [\"a\"]\ncommands = [\"/bin/x\"]\n\n[[test]]\nuser = \"a\"\nargv = [\"/bin/x\"]\nexpect = \"deny\"\n",
        )
        .unwrap();
        assert_eq!(p.tests.len(), 1);
        let t = &p.tests[0];
        assert_eq!(
            t.source,
            SourceLoc {
                file: NET.to_string(),
                line: 6
            }
        );
        assert_eq!(t.user, "a");
        assert_eq!(t.argv, ["/bin/x"]);
        // Unknown keys are refused like in rules.
        let e = err("[[test]]\nuser = \"a\"\nargv = [\"/bin/x\"]\nexpect = \"deny\"\nanything = { nested = 1 }\n");
        assert!(
            e.starts_with(&format!("{NET}:5: test[0]: unknown key \"anything\"")),
            "{e}"
        );
        let e = err("test = 1\n");
        assert!(
            e.starts_with(&format!(
                "{NET}:1: test: expected an array of tables, found an integer"
            )),
            "{e}"
        );
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
            ("sealed_validity = \"0s\"", ":5: rule \"r\": sealed_validity: must be longer than zero"),
            ("sealed_validity = 30", ":5: rule \"r\": sealed_validity: expected a string such as \"1h\" or \"30m\", found an integer"),
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

    #[test]
    fn name_validators() {
        for ok in ["alice", "a.b", "_svc", "svc-1", "ALICE", "host$", "a1"] {
            assert!(valid_user_name(ok), "{ok}");
        }
        for bad in ["", "-x", "12", "a b", "a:b", "a/b", "$", ".", "..", "é"] {
            assert!(!valid_user_name(bad), "{bad}");
        }
        assert!(valid_env_name("LANG") && valid_env_name("_") && valid_env_name("A_1"));
        assert!(
            !valid_env_name("")
                && !valid_env_name("1A")
                && !valid_env_name("A-B")
                && !valid_env_name("A=B")
        );
        assert!(
            valid_rule_name("net-debug.v2_x")
                && !valid_rule_name("net debug")
                && !valid_rule_name("")
        );
    }
}
