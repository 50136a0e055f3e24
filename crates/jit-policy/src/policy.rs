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
//! env_keep = ["TERM", "LANG"]
//! no_new_privs = true               # default true
//! authenticate = false              # default false
//!
//! [[test]]                          # for `jitctl policy test` (later); parsed and kept, not evaluated here
//! ...
//! ```
//! Unknown keys are errors (a typo must never silently widen or narrow access).

use crate::{CapSet, CommandPattern, PolicyError};
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

#[derive(Debug, Clone)]
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
    /// Environment variable names (validated: `[A-Za-z_][A-Za-z0-9_]*`).
    pub env_keep: Vec<String>,
    pub no_new_privs: bool,
    pub authenticate: bool,
    pub source: SourceLoc,
}

/// A `[[test]]` table, kept as raw TOML for `jitctl policy test` (a later issue evaluates it).
#[derive(Debug, Clone)]
pub struct PolicyTest {
    pub source: SourceLoc,
    pub table: toml::Table,
}

#[derive(Debug, Clone, Default)]
pub struct Policy {
    /// In load order.
    pub rules: Vec<Rule>,
    pub tests: Vec<PolicyTest>,
}

impl Policy {
    /// Parse and validate every source, in order; merge; reject duplicate rule names
    /// (naming both places). Validation: name non-empty `[A-Za-z0-9._-]+`; at least one of
    /// users/groups; every command pattern valid (absolute program path); run_as a valid
    /// user name if not invoker/root; capabilities parse; `ALL` only with run_as = "root";
    /// durations parse and are > 0; env_keep names valid. Errors carry file:line and field.
    pub fn load(sources: &[PolicySource]) -> Result<Policy, PolicyError> { todo!() }

    pub fn rule(&self, name: &str) -> Option<&Rule> { self.rules.iter().find(|r| r.name == name) }
}
