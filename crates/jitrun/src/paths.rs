//! Where jitrun's files live (docs/admin-guide.md, "Files"). Tests put their own files at
//! these very paths inside a private mount namespace; there is no other way to point jitrun
//! elsewhere.

pub const SETTINGS: &str = "/etc/jitrun/jitrun.toml";
pub const POLICY: &str = "/etc/jitrun/policy.toml";
pub const POLICY_DIR: &str = "/etc/jitrun/policy.d";
pub const KEYS_DIR: &str = "/etc/jitrun/keys.d";
pub const STATE_DIR: &str = "/var/lib/jitrun";
/// This host's attestation key (PASERK k4.secret; root, 0600).
pub const HOST_KEY: &str = "/etc/jitrun/host.key";
/// The broker's signed revocation list, written by `jitctl revocations sync`.
pub const REVOCATIONS: &str = "/var/lib/jitrun/revocations";
/// Under the user's home directory (from passwd).
pub const GRANT_STORE: &str = ".local/state/jitrun/grants";
/// Session recordings (`<session id>.cast`; root, 0700).
pub const SESSIONS_DIR: &str = "/var/log/jitrun/sessions";
