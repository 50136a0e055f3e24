//! jit-policy: the pure policy model of jitrun.
//!
//! Everything here works on bytes and values it is handed: no file system, no
//! privilege, no clock. `jitrun` (setuid) and `jitctl` (unprivileged) both load
//! policy through [`Policy::load`], so `jitctl policy check` sees exactly what
//! the host will see. `[[test]]` cases are read apart, by [`test_case::load_tests`]
//! (jitctl only): the loader jitrun runs never reads them.
//!
//! Modules, from the leaves up: `names`, `text`, `error`, `glob` (no imports from the
//! crate); `caps`, `duration`, `pattern` (values); `toml_doc` (TOML with lines) and
//! `fields` (typed fields); `rule`, `policy`, `settings`, `record` (loading); `decide`,
//! `explain`, `snapshot` (using a policy); `test_case` (`[[test]]` cases, on top).

pub mod caps;
pub mod decide;
pub mod duration;
pub mod error;
pub mod explain;
pub mod glob;
pub mod names;
pub mod pattern;
pub mod policy;
pub mod record;
pub mod rule;
pub mod settings;
pub mod snapshot;
pub mod snapshot_key;
pub mod test_case;

pub use caps::{CapSet, Capability};
pub use decide::{decide, Decision, Denial, DenyCode, GrantView, Request};
pub use duration::{format_duration, parse_duration};
pub use error::PolicyError;
pub use names::{
    env_known_safe, env_never_kept, valid_rule_name, valid_user_name, NEVER_KEPT_ENV,
    NEVER_KEPT_PREFIXES, SAFE_ENV,
};
pub use pattern::CommandPattern;
pub use policy::{Policy, PolicySource};
pub use record::{parse_size, OnFailure, OnMaxBytes, RecordSettings};
pub use rule::{GrantMode, Rule, RuleLines, RunAs, SourceLoc};
pub use settings::{AuditFraming, AuditSettings, PamSettings, RevocationSettings, Settings};
pub use test_case::{load_tests, Expect, PolicyTest, TestGrant, TestOutcome};
/// Edit distance between two strings (for "did you mean" hints).
pub use text::distance as edit_distance;

mod fields;
mod text;
mod toml_doc;
