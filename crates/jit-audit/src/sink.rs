//! The syslog socket: a unix datagram socket (default `/dev/log`).
use std::io::ErrorKind;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The default syslog socket.
pub const DEFAULT_SOCKET: &str = "/dev/log";

/// How long one send may block on a full receive queue before it counts as `EAGAIN`.
pub const SEND_TIMEOUT: Duration = Duration::from_millis(250);

/// Pauses between attempts after `ENOBUFS`/`EAGAIN` (so at most 5 attempts, ~1.3 s worst case).
const RETRY_PAUSES_MS: [u64; 4] = [5, 10, 20, 40];

#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    #[error("audit socket {path}: {source}; is the syslog daemon running?")]
    Socket {
        path: PathBuf,
        source: std::io::Error,
    },
}

impl AuditError {
    /// The socket path the error is about.
    pub fn path(&self) -> &Path {
        match self {
            AuditError::Socket { path, .. } => path,
        }
    }
}

/// A connected, unbound unix datagram socket (close-on-exec, as std creates every socket).
#[derive(Debug)]
pub struct SyslogSink {
    socket: UnixDatagram,
    path: PathBuf,
}

impl SyslogSink {
    /// Create an unbound datagram socket and connect it to `path`.
    pub fn connect(path: &Path) -> Result<SyslogSink, AuditError> {
        let err = |source| AuditError::Socket {
            path: path.to_owned(),
            source,
        };
        let socket = UnixDatagram::unbound().map_err(err)?;
        socket.connect(path).map_err(err)?;
        socket.set_write_timeout(Some(SEND_TIMEOUT)).map_err(err)?;
        Ok(SyslogSink {
            socket,
            path: path.to_owned(),
        })
    }

    /// The socket path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Send one datagram (whole; no partial writes for datagrams). On ENOBUFS/EAGAIN retry a few
    /// times briefly; errors name the path.
    ///
    /// A send interrupted by a signal is repeated. When the syslog daemon was restarted
    /// (`ECONNREFUSED`/`ENOTCONN`: the socket file was recreated) the socket is reconnected
    /// to the path once, as glibc's syslog(3) does.
    pub fn send(&self, datagram: &[u8]) -> Result<(), AuditError> {
        let err = |source| AuditError::Socket {
            path: self.path.clone(),
            source,
        };
        let mut pauses = RETRY_PAUSES_MS.iter();
        let mut reconnected = false;
        loop {
            match self.socket.send(datagram) {
                Ok(n) if n == datagram.len() => return Ok(()),
                Ok(n) => {
                    return Err(err(std::io::Error::other(format!(
                        "short datagram write ({n} of {} bytes)",
                        datagram.len()
                    ))))
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e)
                    if e.kind() == ErrorKind::WouldBlock
                        || e.kind() == ErrorKind::TimedOut
                        || e.raw_os_error() == Some(libc::ENOBUFS) =>
                {
                    match pauses.next() {
                        Some(ms) => std::thread::sleep(Duration::from_millis(*ms)),
                        None => return Err(err(e)),
                    }
                }
                Err(e)
                    if !reconnected
                        && matches!(
                            e.raw_os_error(),
                            Some(libc::ECONNREFUSED) | Some(libc::ENOTCONN)
                        ) =>
                {
                    reconnected = true;
                    self.socket.connect(&self.path).map_err(err)?;
                }
                Err(e) => return Err(err(e)),
            }
        }
    }
}
