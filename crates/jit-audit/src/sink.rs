//! The syslog socket: a unix datagram socket (default `/dev/log`).
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    #[error("audit socket {path}: {source}; is the syslog daemon running? (or set audit.fail_closed = false in /etc/jitrun/jitrun.toml)")]
    Socket { path: PathBuf, source: std::io::Error },
}

pub struct SyslogSink { /* std::os::unix::net::UnixDatagram, connected, CLOEXEC */ }

impl SyslogSink {
    /// Create an unbound datagram socket and connect it to `path`.
    pub fn connect(path: &Path) -> Result<SyslogSink, AuditError> { todo!() }
    /// Send one datagram (whole; no partial writes for datagrams). On ENOBUFS/EAGAIN retry a few
    /// times briefly; errors name the path.
    pub fn send(&self, datagram: &[u8]) -> Result<(), AuditError> { todo!() }
}
