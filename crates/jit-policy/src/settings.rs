//! `/etc/jitrun/jitrun.toml`: every key optional; unknown keys are errors.
//!
//! ```toml
//! host = "web-1"            # default: uname nodename (the caller fills it in)
//! clock_skew = "60s"
//! secure_path = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
//! kill_grace = "5s"
//! [audit]
//! framing = "cee"           # "cee" (RFC 3164 header + @cee: JSON) | "rfc5424"
//! socket = "/dev/log"
//! fail_closed = true
//! sd_id = "jitrun@32473"
//! ```

use crate::PolicyError;
use std::time::Duration;

pub const DEFAULT_SECURE_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuditFraming {
    Cee,
    Rfc5424,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditSettings {
    pub framing: AuditFraming,
    pub socket: String,
    pub fail_closed: bool,
    /// RFC 5424 SD-ID; validated (SD-NAME chars, `name@number` form for private ids).
    pub sd_id: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// None = use the kernel's node name.
    pub host: Option<String>,
    pub clock_skew: Duration,
    /// Colon-separated, every entry absolute.
    pub secure_path: String,
    pub kill_grace: Duration,
    pub audit: AuditSettings,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            host: None,
            clock_skew: Duration::from_secs(60),
            secure_path: DEFAULT_SECURE_PATH.to_string(),
            kill_grace: Duration::from_secs(5),
            audit: AuditSettings {
                framing: AuditFraming::Cee,
                socket: "/dev/log".to_string(),
                fail_closed: true,
                sd_id: "jitrun@32473".to_string(),
            },
        }
    }
}

impl Settings {
    /// Parse the file's text; `name` is used in messages (file:line: field: problem).
    pub fn parse(name: &str, text: &str) -> Result<Settings, PolicyError> { todo!() }

    /// The entries of `secure_path`.
    pub fn secure_path_dirs(&self) -> impl Iterator<Item = &str> { self.secure_path.split(':').filter(|s| !s.is_empty()) }
}
