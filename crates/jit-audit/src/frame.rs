//! Rendering an event as one syslog datagram.
use crate::Event;
use time::OffsetDateTime;

/// rsyslog's default maximum message size; a longer event is shortened by truncating the
/// longest `process.args` entries (marker `…[truncated N bytes]`, `jitrun.args_truncated` = true),
/// never split into two messages and never dropped.
pub const DEFAULT_MAX_MESSAGE: usize = 8192;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    Cee,
    Rfc5424,
}

#[derive(Debug, Clone)]
pub struct Framer {
    pub framing: Framing,
    /// `jitrun` or `jitbroker`.
    pub app_name: String,
    /// RFC 5424 HOSTNAME (the 3164 local form has none, as glibc's syslog(3)).
    pub hostname: String,
    pub pid: u32,
    pub sd_id: String,
    pub max_message: usize,
}

impl Framer {
    /// Whole datagram. `now` in UTC; the 3164 header uses local time (localtime_r), RFC 5424 uses
    /// RFC 3339 UTC with microseconds. The RFC 5424 MSG part is a one-line human summary.
    pub fn render(&self, event: &Event, now: OffsetDateTime) -> Vec<u8> { todo!() }
}
