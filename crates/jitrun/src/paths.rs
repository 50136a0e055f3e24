//! Where jitrun's files live (DESIGN.md "Files"). Tests put their own files at these very
//! paths inside a private mount namespace; there is no other way to point jitrun elsewhere.

pub const SETTINGS: &str = "/etc/jitrun/jitrun.toml";
pub const POLICY: &str = "/etc/jitrun/policy.toml";
pub const POLICY_DIR: &str = "/etc/jitrun/policy.d";
pub const KEYS_DIR: &str = "/etc/jitrun/keys.d";
pub const STATE_DIR: &str = "/var/lib/jitrun";
/// Under the user's home directory (from passwd).
pub const GRANT_STORE: &str = ".local/state/jitrun/grants";
