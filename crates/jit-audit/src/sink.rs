//! The syslog socket: a unix datagram socket (default `/dev/log`).
//!
//! Every datagram carries `SCM_CREDENTIALS` naming the sender's **effective** uid and gid.
//! Without them the kernel attaches the real ones: a setuid-root `jitrun` still has its
//! caller's real uid until it switches to full root, so its refusals would reach syslog as if
//! the caller had sent them, and a receiver that trusts jitrun's events only from uid 0
//! (docs/audit.md, "Trusting the sender") would have to throw them away. The kernel accepts
//! a uid the process holds as real, effective or saved uid (anything else needs CAP_SETUID),
//! so this claims nothing the process does not have.
use nix::sys::socket::{sendmsg, ControlMessage, MsgFlags, UnixCredentials};
use std::io::{ErrorKind, IoSlice};
use std::os::fd::AsRawFd;
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
            match self.send_once(datagram) {
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

    /// One `sendmsg` of the whole datagram with the sender's effective credentials.
    fn send_once(&self, datagram: &[u8]) -> std::io::Result<usize> {
        let creds = effective_credentials();
        let cmsg = [ControlMessage::ScmCredentials(&creds)];
        let iov = [IoSlice::new(datagram)];
        sendmsg::<()>(
            self.socket.as_raw_fd(),
            &iov,
            &cmsg,
            MsgFlags::empty(),
            None,
        )
        .map_err(std::io::Error::from)
    }
}

/// This process's pid (read at each send: the sink may be used after a fork) with its
/// effective uid and gid.
fn effective_credentials() -> UnixCredentials {
    UnixCredentials::from(libc::ucred {
        pid: nix::unistd::getpid().as_raw(),
        uid: nix::unistd::geteuid().as_raw(),
        gid: nix::unistd::getegid().as_raw(),
    })
}
