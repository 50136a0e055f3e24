//! `[[test]]` cases in policy files: who runs what, where, with which grant, and the
//! decision expected. `jitctl policy check` and `jitctl policy test` read them (typed, with
//! `file:LINE` errors, unknown keys refused) with [`load_tests`]; `jitctl policy test` runs
//! them ([`run_test`]) through the same [`decide`](crate::decide::decide) jitrun uses.
//! [`Policy::load`](crate::Policy::load), which jitrun calls, passes these tables over
//! without reading them: a broken test never keeps a host's rules from loading.
//!
//! ```toml
//! [[test]]
//! name = "alice may sniff with a grant"  # optional; shown by the runner
//! user = "alice"
//! groups = ["netops"]                    # the caller's groups; default []
//! host = "web-1"                         # default "localhost"
//! argv = ["/usr/bin/tcpdump", "-i", "eth0"]  # argv[0] an absolute path
//! grant = { rule = "net-debug", caps = ["net_raw"], cmd = "/usr/bin/tcpdump **", run_as = "invoker" }
//! run_as = "alice"                       # the -u option; default none
//! expect = "allow"                       # or "deny"
//! caps = ["CAP_NET_RAW"]                 # with allow: the exact final capabilities
//! rule = "net-debug"                     # the rule expected to allow (or to be named by the denial)
//! deny = "grant_required"                # with deny: the expected deny code
//! ```
//!
//! Without `grant` the case is decided as standing access (no grant at all). With a
//! `grant` table, a synthetic grant is built: valid now, for the test's user and host,
//! lasting the rule's `max_duration`, approved by `min_approvals` distinct approvers
//! (unless `approvers` lists them), for the rule `grant.rule` names, else the rule the
//! test expects (`rule`), else each rule that names the user, the host and the command
//! in turn (the first that allows wins, as with a grant store).

mod parse;
mod run;

pub use run::{decide_test, run_test, TestOutcome};

use crate::caps::CapSet;
use crate::decide::DenyCode;
use crate::error::PolicyError;
use crate::pattern::CommandPattern;
use crate::policy::{source_loc, tables, PolicySource};
use crate::rule::{RunAs, SourceLoc};
use crate::toml_doc::Doc;

/// Expected outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expect {
    Allow,
    Deny,
}

/// The `grant = { ... }` table of a test.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TestGrant {
    pub rule: Option<String>,
    pub caps: Option<CapSet>,
    pub cmd: Option<Vec<CommandPattern>>,
    pub run_as: Option<RunAs>,
    /// Default: `min_approvals` made-up approvers, enough for the rule.
    pub approvers: Option<Vec<String>>,
    pub break_glass: bool,
}

#[derive(Debug, Clone)]
pub struct PolicyTest {
    /// 1-based line of the `[[test]]` header.
    pub source: SourceLoc,
    pub name: Option<String>,
    pub user: String,
    pub groups: Vec<String>,
    pub host: String,
    pub argv: Vec<String>,
    pub grant: Option<TestGrant>,
    /// `-u USER`.
    pub run_as: Option<String>,
    pub expect: Expect,
    /// Expected final capabilities (allow only).
    pub caps: Option<CapSet>,
    /// Expected rule.
    pub rule: Option<String>,
    /// Expected deny code (deny only).
    pub deny: Option<DenyCode>,
}

impl PolicyTest {
    /// `name`, else a short description from the case itself.
    pub fn label(&self) -> String {
        if let Some(n) = &self.name {
            return n.clone();
        }
        let may = match self.expect {
            Expect::Allow => "may run",
            Expect::Deny => "may not run",
        };
        let with = if self.grant.is_some() {
            " (with a grant)"
        } else {
            ""
        };
        format!("{} {may} {}{with}", self.user, self.argv.join(" "))
    }
}

/// The `[[test]]` cases of the policy files, in file order, each checked (`file:LINE:
/// test[N]: field: problem`). Only the `test` tables are read: load the rules with
/// [`Policy::load`](crate::Policy::load), which also refuses unknown top-level keys.
pub fn load_tests(sources: &[PolicySource]) -> Result<Vec<PolicyTest>, PolicyError> {
    let mut tests = Vec::new();
    for src in sources {
        let (doc, root) = Doc::parse(&src.name, &src.text)?;
        for (index, (table, span)) in tables(&doc, &root, "test")?.into_iter().enumerate() {
            let source = source_loc(&doc, span);
            tests.push(parse::parse_test(&doc, table, span, index, source)?);
        }
    }
    Ok(tests)
}

#[cfg(test)]
mod tests;
