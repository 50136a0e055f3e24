//! One rule: the model ([`Rule`] and its parts) and how a `[[rule]]` table becomes one.
//!
//! Errors read `file:LINE: rule "name": field: problem` (`rule[N]` with a 0-based index
//! within the file when the rule has no valid name yet). Besides the checks listed on
//! [`crate::Policy::load`], `env_keep` names only variables known to be safe to pass
//! ([`SAFE_ENV`](crate::names::SAFE_ENV)); `env_keep_unchecked` may name others, but never
//! one that lets the caller inject code into the privileged command
//! ([`env_never_kept`]: `LD_*`, `GCONV_PATH`, `BASH_ENV`, `GIT_*`, ...); `hosts` must not be
//! empty, and `commands` must list at least one command.

use crate::caps::CapSet;
use crate::error::PolicyError;
use crate::fields::{capabilities, choice, command_pattern, duration, names, Section};
use crate::names::{
    env_known_safe, env_never_kept, valid_env_name, valid_host_pattern, valid_lint_id,
    valid_rule_name, valid_user_name,
};
use crate::pattern::CommandPattern;
use crate::record::RecordSettings;
use crate::text::quote;
use crate::toml_doc::{Doc, Entry, Raw, Span};
use std::time::Duration;

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
    /// Longest `exp - iat` a grant for this rule may have. Default 1h.
    pub max_duration: Duration,
    pub min_approvals: u32,
    /// Variables kept from the caller: names on [`SAFE_ENV`](crate::names::SAFE_ENV) only.
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
    pub fn records(&self, settings: &RecordSettings) -> bool {
        self.record.unwrap_or(settings.default)
    }

    /// The variables this rule passes from the caller's environment (their values are checked
    /// by jitrun): `env_keep` names that are on [`SAFE_ENV`](crate::names::SAFE_ENV) and
    /// `env_keep_unchecked` names that [`env_never_kept`] does not refuse. The loader already
    /// enforces both; this is the same check again where the list is used.
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

// ---------------------------------------------------------------- [[rule]] → Rule

pub(crate) const RULE_KEYS: &[&str] = &[
    "name",
    "users",
    "groups",
    "hosts",
    "commands",
    "run_as",
    "capabilities",
    "grant",
    "max_duration",
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

/// One `[[rule]]` table; `index` (0-based within its file) names it until it has a valid
/// name; `source` is where its header is.
pub(crate) fn parse_rule<'e>(
    doc: &Doc<'_>,
    table: &'e [Entry],
    span: Span<'e>,
    index: usize,
    source: SourceLoc,
) -> Result<Rule, PolicyError> {
    // Every message names the rule: by its name when it has a valid one.
    let label = match table
        .iter()
        .find(|e| e.key == "name")
        .map(|e| &e.node.value)
    {
        Some(Raw::Str(n)) if valid_rule_name(n) => format!("rule {}", quote(n)),
        _ => format!("rule[{index}]"),
    };
    let t = Section::checked(doc, table, span, label, RULE_KEYS)?;
    let name = rule_name(&t)?;
    let (users, groups) = who(&t)?;
    let hosts = hosts(&t)?;
    let commands = commands(&t)?;
    let run_as = match t.get("run_as") {
        None => RunAs::Invoker,
        Some(e) => run_as(doc, e, &t.field("run_as"))?,
    };
    let capabilities = match t.get("capabilities") {
        None => CapSet::EMPTY,
        Some(e) => capabilities(
            doc,
            e,
            &t.field("capabilities"),
            "[\"CAP_NET_ADMIN\"]",
            run_as == RunAs::Root,
        )?,
    };
    let grant = match t.get("grant") {
        None => GrantMode::Required,
        Some(e) => choice(
            doc,
            e,
            &t.field("grant"),
            &[("required", GrantMode::Required), ("none", GrantMode::None)],
            "\"required\" (the default) or \"none\" (standing access)",
        )?,
    };
    let (max_duration, min_approvals) = (max_duration(&t)?, min_approvals(&t)?);
    let env_keep = env_names(&t, "env_keep", true)?;
    let env_keep_unchecked = env_names(&t, "env_keep_unchecked", false)?;
    let allow_risks = allow_risks(&t)?;
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
        min_approvals,
        env_keep,
        env_keep_unchecked,
        allow_risks,
        no_new_privs: t.flag("no_new_privs", true)?,
        authenticate: t.flag("authenticate", false)?,
        require_fresh_revocations: t.flag("require_fresh_revocations", false)?,
        record: t
            .get("record")
            .map(|_| t.flag("record", false))
            .transpose()?,
        record_input: t.flag("record_input", false)?,
        source,
        lines: lines(&t),
    })
}

fn rule_name(t: &Section<'_, '_>) -> Result<String, PolicyError> {
    let Some(e) = t.get("name") else {
        return Err(t.err(
            t.span,
            "name",
            "missing; every rule needs a unique name = \"...\" (letters, digits, '.', '_', '-')",
        ));
    };
    let n = t.doc.string(e, &t.field("name"))?;
    if !valid_rule_name(n) {
        return Err(t.bad(
            e,
            format!(
                "invalid rule name {}: use letters, digits, '.', '_' and '-' only",
                quote(n)
            ),
        ));
    }
    Ok(n.to_string())
}

/// `users` and `groups`: at least one name between them.
fn who(t: &Section<'_, '_>) -> Result<(Vec<String>, Vec<String>), PolicyError> {
    let list = |key: &str, what: &str| match t.get(key) {
        None => Ok(Vec::new()),
        Some(e) => names(t.doc, e, &t.field(key), "[\"alice\"]", what),
    };
    let users = list("users", "user")?;
    let groups = list("groups", "group")?;
    if users.is_empty() && groups.is_empty() {
        let sp = t
            .get("users")
            .or(t.get("groups"))
            .map_or(t.span, |e| Some(t.doc.entry_span(e)));
        return Err(t.err(
            sp,
            "users",
            "the rule names nobody; list at least one user or group (users = [\"alice\"] or groups = [\"netops\"])",
        ));
    }
    Ok((users, groups))
}

fn hosts(t: &Section<'_, '_>) -> Result<Vec<String>, PolicyError> {
    let Some(e) = t.get("hosts") else {
        return Ok(vec!["*".to_string()]);
    };
    let list = t.doc.strings(e, &t.field("hosts"), "[\"web-*\"]")?;
    if list.is_empty() {
        return Err(t.bad(
            e,
            "empty list: the rule would apply nowhere; omit hosts for every host, or list host names or globs",
        ));
    }
    list.into_iter()
        .map(|(h, sp)| {
            if valid_host_pattern(h) {
                Ok(h.to_string())
            } else {
                Err(t.err(
                    Some(sp),
                    "hosts",
                    format!("invalid host name or glob {}", quote(h)),
                ))
            }
        })
        .collect()
}

fn commands(t: &Section<'_, '_>) -> Result<Vec<CommandPattern>, PolicyError> {
    const EXAMPLE: &str = "e.g. commands = [\"/usr/sbin/ip **\", [\"/usr/bin/printf\", \"a b\"]]";
    let Some(e) = t.get("commands") else {
        return Err(t.err(
            t.span,
            "commands",
            "missing; list the commands this rule allows, e.g. commands = [\"/usr/sbin/ip **\"]",
        ));
    };
    let sp = Some(t.doc.entry_span(e));
    let items = match &e.node.value {
        Raw::Array(items) if items.is_empty() => {
            return Err(t.err(
                sp,
                "commands",
                format!("empty list: the rule would allow nothing; {EXAMPLE}"),
            ))
        }
        Raw::Array(items) => items,
        other => {
            return Err(t.err(
                sp,
                "commands",
                format!(
                    "expected an array of commands, found {}; {EXAMPLE}",
                    other.kind()
                ),
            ))
        }
    };
    let expected = format!("a string or an array of strings for each command; {EXAMPLE}");
    items
        .iter()
        .map(|n| command_pattern(t.doc, n, &t.field("commands"), &expected))
        .collect()
}

/// `run_as`: `"invoker"`, `"root"` or a user name (a rule's, or a `[[test]]` grant's).
pub(crate) fn run_as(doc: &Doc<'_>, e: &Entry, field: &str) -> Result<RunAs, PolicyError> {
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

fn max_duration(t: &Section<'_, '_>) -> Result<Duration, PolicyError> {
    let Some(e) = t.get("max_duration") else {
        return Ok(Duration::from_secs(3600));
    };
    let d = duration(t.doc, e, &t.field("max_duration"), "\"1h\" or \"30m\"")?;
    if d.is_zero() {
        return Err(t.bad(e, "must be longer than zero, e.g. \"30m\""));
    }
    Ok(d)
}

fn min_approvals(t: &Section<'_, '_>) -> Result<u32, PolicyError> {
    let Some(e) = t.get("min_approvals") else {
        return Ok(0);
    };
    let n = t.doc.integer(e, &t.field("min_approvals"))?;
    u32::try_from(n).map_err(|_| t.bad(e, format!("{n} is out of range: expected 0 or more")))
}

/// `env_keep` (`safe_only`: names on [`SAFE_ENV`](crate::names::SAFE_ENV)) or
/// `env_keep_unchecked` (any name that is not never kept, and not one that belongs in
/// `env_keep`).
fn env_names(t: &Section<'_, '_>, key: &str, safe_only: bool) -> Result<Vec<String>, PolicyError> {
    let Some(e) = t.get(key) else {
        return Ok(Vec::new());
    };
    let example = if safe_only {
        "[\"TERM\", \"LANG\"]"
    } else {
        "[\"APP_ENV\"]"
    };
    t.doc
        .strings(e, &t.field(key), example)?
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
            Err(t.err(Some(sp), key, why))
        })
        .collect()
}

fn allow_risks(t: &Section<'_, '_>) -> Result<Vec<String>, PolicyError> {
    let Some(e) = t.get("allow_risks") else {
        return Ok(Vec::new());
    };
    let mut out: Vec<String> = Vec::new();
    for (id, sp) in t
        .doc
        .strings(e, &t.field("allow_risks"), "[\"shell-escape\"]")?
    {
        if !valid_lint_id(id) {
            return Err(t.err(Some(sp), "allow_risks", format!("invalid lint id {}: lint ids look like \"shell-escape\" (jitctl policy check names them)", quote(id))));
        }
        if out.iter().any(|o| o == id) {
            return Err(t.err(
                Some(sp),
                "allow_risks",
                format!("{} is listed twice", quote(id)),
            ));
        }
        out.push(id.to_string());
    }
    Ok(out)
}

fn lines(t: &Section<'_, '_>) -> RuleLines {
    let commands = match t.get("commands").map(|e| &e.node.value) {
        Some(Raw::Array(items)) => items.iter().map(|n| t.doc.line(n.span.start)).collect(),
        _ => Vec::new(),
    };
    RuleLines {
        hosts: t.line_of("hosts"),
        run_as: t.line_of("run_as"),
        capabilities: t.line_of("capabilities"),
        grant: t.line_of("grant"),
        authenticate: t.line_of("authenticate"),
        record_input: t.line_of("record_input"),
        env_keep_unchecked: t.line_of("env_keep_unchecked"),
        allow_risks: t.line_of("allow_risks"),
        commands,
    }
}
