//! jit-policy: the pure policy model of jitrun.
//!
//! Everything here works on bytes and values it is handed: no file system, no
//! privilege, no clock. `jitrun` (setuid) and `jitctl` (unprivileged) both load
//! policy through [`Policy::load`], so `jitctl policy check` sees exactly what
//! the host will see.

pub mod caps;
pub mod decide;
pub mod duration;
pub mod error;
pub mod explain;
pub mod glob;
pub mod pattern;
pub mod policy;
pub mod record;
pub mod settings;
pub mod snapshot;
pub mod snapshot_key;
pub mod test_case;

pub use caps::{CapSet, Capability};
pub use decide::{decide, Decision, Denial, DenyCode, GrantView, Request};
pub use duration::{format_duration, parse_duration};
pub use error::PolicyError;
pub use pattern::CommandPattern;
pub use policy::{
    env_known_safe, env_never_kept, valid_user_name, GrantMode, Policy, PolicySource, Rule,
    RuleLines, RunAs, SourceLoc, NEVER_KEPT_ENV, NEVER_KEPT_PREFIXES, SAFE_ENV,
};
pub use record::{parse_size, OnFailure, OnMaxBytes, RecordSettings};
pub use settings::{AuditFraming, AuditSettings, PamSettings, RevocationSettings, Settings};
pub use test_case::{Expect, PolicyTest, TestGrant, TestOutcome};
/// Edit distance between two strings (for "did you mean" hints).
pub use text::distance as edit_distance;

mod text;
mod toml_doc;
