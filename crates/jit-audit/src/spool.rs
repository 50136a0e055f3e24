//! The audit spool: when the syslog socket is missing or full, events wait here — as the
//! exact datagrams that would have been sent — and go out later, in order, once.
//!
//! One file per event in a root-only directory (`/var/lib/jitrun/spool/` for jitrun),
//! named `<unix nanoseconds>-<pid>-<counter>.dgram` so that names sort in event order; each
//! is written under a temporary name and renamed into place, so a reader never sees half an
//! event. [`Spool::flush`] takes an exclusive lock, sends the files in name order and
//! removes each right after it was sent; it stops at the first failure, so order holds.
//! An event is sent twice only if the process dies between the send and the removal.
//! [`Spool::try_flush`] does the same unless another process holds the lock: a setuid
//! program must never wait for a lock that a process its caller stopped could hold.

use crate::SyslogSink;
use nix::fcntl::OFlag;
use nix::sys::stat::Mode;
use nix::unistd::UnlinkatFlags;
use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};

/// Most events the spool holds; past it, nothing more is accepted (the caller decides).
pub const MAX_SPOOLED: usize = 10_000;
const SUFFIX: &str = ".dgram";
const LOCK: &str = ".lock";

#[derive(Debug, thiserror::Error)]
pub enum SpoolError {
    #[error("audit spool {path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    #[error(
        "audit spool {path} is full ({MAX_SPOOLED} events waiting); is the syslog daemon running?"
    )]
    Full { path: PathBuf },
    #[error("audit spool {path}: {why}")]
    Untrusted { path: PathBuf, why: String },
}

/// A spool directory, held open by descriptor.
#[derive(Debug)]
pub struct Spool {
    dir: OwnedFd,
    path: PathBuf,
}

static COUNTER: AtomicU32 = AtomicU32::new(0);

impl Spool {
    /// A directory the caller opened and checked (jitrun: through its trusted-file walk).
    pub fn from_dir(dir: OwnedFd, path: &Path) -> Spool {
        Spool {
            dir,
            path: path.to_owned(),
        }
    }

    /// Open an existing spool directory by path (for `jitctl audit flush`, run as root): it
    /// must be a directory owned by root that only root can write; Ok(None) if it is missing.
    pub fn open(path: &Path) -> Result<Option<Spool>, SpoolError> {
        use std::os::unix::fs::MetadataExt;
        let meta = match std::fs::symlink_metadata(path) {
            Ok(m) => m,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(source) => {
                return Err(SpoolError::Io {
                    path: path.to_owned(),
                    source,
                })
            }
        };
        if !meta.is_dir() || meta.uid() != 0 || meta.mode() & 0o022 != 0 {
            return Err(SpoolError::Untrusted {
                path: path.to_owned(),
                why: "not a directory owned by root and writable by root alone".into(),
            });
        }
        let dir = std::fs::File::open(path).map_err(|source| SpoolError::Io {
            path: path.to_owned(),
            source,
        })?;
        Ok(Some(Spool {
            dir: dir.into(),
            path: path.to_owned(),
        }))
    }

    fn io(&self, source: io::Error) -> SpoolError {
        SpoolError::Io {
            path: self.path.clone(),
            source,
        }
    }

    /// Names of the waiting events, in order.
    pub fn pending(&self) -> Result<Vec<String>, SpoolError> {
        let listing = format!("/proc/self/fd/{}", self.dir.as_raw_fd());
        let mut names: Vec<String> = std::fs::read_dir(listing)
            .map_err(|e| self.io(e))?
            .filter_map(|e| e.ok())
            .filter_map(|e| e.file_name().into_string().ok())
            .filter(|n| n.ends_with(SUFFIX) && !n.starts_with('.'))
            .collect();
        names.sort();
        Ok(names)
    }

    /// Keep one datagram for later.
    pub fn push(&self, datagram: &[u8]) -> Result<(), SpoolError> {
        if self.pending()?.len() >= MAX_SPOOLED {
            return Err(SpoolError::Full {
                path: self.path.clone(),
            });
        }
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let name = format!("{nanos:020}-{:010}-{n:04}{SUFFIX}", std::process::id());
        let tmp = format!(".{name}.tmp");
        let mut file = self
            .openat(
                &tmp,
                OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_EXCL,
                0o600,
            )
            .map_err(|e| self.io(e))?;
        let written = file.write_all(datagram).and_then(|_| file.sync_all());
        if let Err(e) = written.and_then(|_| self.rename(&tmp, &name)) {
            let _ = self.unlink(&tmp);
            return Err(self.io(e));
        }
        Ok(())
    }

    /// Send every waiting event to `sink`, in order, removing each once sent. Returns how many
    /// were sent; stops at the first that cannot be sent (the rest stay, in order). Waits for
    /// another flush to finish first.
    pub fn flush(&self, sink: &SyslogSink) -> Result<usize, SpoolError> {
        let lock = self.lock_file()?;
        lock_exclusive(&lock, true).map_err(|e| self.io(e))?;
        self.send_all(sink)
    }

    /// As [`Spool::flush`], but Ok(None) at once when another process is flushing (holds the
    /// lock): its events are on their way from there.
    pub fn try_flush(&self, sink: &SyslogSink) -> Result<Option<usize>, SpoolError> {
        let lock = self.lock_file()?;
        match lock_exclusive(&lock, false) {
            Ok(()) => self.send_all(sink).map(Some),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(None),
            Err(e) => Err(self.io(e)),
        }
    }

    fn lock_file(&self) -> Result<std::fs::File, SpoolError> {
        self.openat(LOCK, OFlag::O_RDWR | OFlag::O_CREAT, 0o600)
            .map_err(|e| self.io(e))
    }

    /// Send and remove the waiting events, in order (the caller holds the lock).
    fn send_all(&self, sink: &SyslogSink) -> Result<usize, SpoolError> {
        let mut sent = 0;
        for name in self.pending()? {
            let mut datagram = Vec::new();
            match self.openat(&name, OFlag::O_RDONLY, 0) {
                Ok(mut f) => f.read_to_end(&mut datagram).map_err(|e| self.io(e))?,
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue, // sent by another flush
                Err(e) => return Err(self.io(e)),
            };
            if sink.send(&datagram).is_err() {
                break;
            }
            self.unlink(&name).map_err(|e| self.io(e))?;
            sent += 1;
        }
        Ok(sent)
    }

    /// A file in the spool directory; never through a symbolic link.
    fn openat(&self, name: &str, flags: OFlag, mode: u32) -> io::Result<std::fs::File> {
        let flags = flags | OFlag::O_CLOEXEC | OFlag::O_NOFOLLOW;
        let fd = nix::fcntl::openat(&self.dir, name, flags, Mode::from_bits_truncate(mode))?;
        Ok(std::fs::File::from(fd))
    }

    fn rename(&self, from: &str, to: &str) -> io::Result<()> {
        Ok(nix::fcntl::renameat(&self.dir, from, &self.dir, to)?)
    }

    fn unlink(&self, name: &str) -> io::Result<()> {
        Ok(nix::unistd::unlinkat(
            &self.dir,
            name,
            UnlinkatFlags::NoRemoveDir,
        )?)
    }
}

/// An exclusive flock (std's `File::lock`), held until the file is closed; without `wait`,
/// `ErrorKind::WouldBlock` when another process holds it.
fn lock_exclusive(file: &std::fs::File, wait: bool) -> io::Result<()> {
    loop {
        let locked = if wait {
            file.lock()
        } else {
            file.try_lock().map_err(|e| match e {
                std::fs::TryLockError::WouldBlock => io::ErrorKind::WouldBlock.into(),
                std::fs::TryLockError::Error(e) => e,
            })
        };
        match locked {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            other => return other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::net::UnixDatagram;

    fn spool_in(dir: &Path) -> Spool {
        let fd: OwnedFd = std::fs::File::open(dir).unwrap().into();
        Spool::from_dir(fd, dir)
    }

    #[test]
    fn events_wait_and_go_out_in_order_once() {
        let tmp = std::env::temp_dir().join(format!("jit-spool-test-{}", std::process::id()));
        std::fs::create_dir_all(&tmp).unwrap();
        let spool = spool_in(&tmp);
        for i in 0..5 {
            spool.push(format!("event {i}").as_bytes()).unwrap();
        }
        assert_eq!(spool.pending().unwrap().len(), 5);

        let sock_path = tmp.join("log.sock");
        let receiver = UnixDatagram::bind(&sock_path).unwrap();
        let sink = SyslogSink::connect(&sock_path).unwrap();
        assert_eq!(spool.flush(&sink).unwrap(), 5);
        assert!(spool.pending().unwrap().is_empty());
        let mut buf = [0u8; 64];
        for i in 0..5 {
            let n = receiver.recv(&mut buf).unwrap();
            assert_eq!(&buf[..n], format!("event {i}").as_bytes());
        }
        // nothing is sent twice
        assert_eq!(spool.flush(&sink).unwrap(), 0);
        receiver.set_nonblocking(true).unwrap();
        assert!(receiver.recv(&mut buf).is_err());
        std::fs::remove_dir_all(&tmp).unwrap();
    }

    #[test]
    fn try_flush_does_not_wait_for_a_held_lock() {
        let tmp = std::env::temp_dir().join(format!("jit-spool-test3-{}", std::process::id()));
        std::fs::create_dir_all(&tmp).unwrap();
        let spool = spool_in(&tmp);
        spool.push(b"waiting").unwrap();
        let sock_path = tmp.join("log.sock");
        let _receiver = UnixDatagram::bind(&sock_path).unwrap();
        let sink = SyslogSink::connect(&sock_path).unwrap();
        let held = std::fs::File::create(tmp.join(LOCK)).unwrap();
        lock_exclusive(&held, true).unwrap();
        assert_eq!(spool.try_flush(&sink).unwrap(), None);
        assert_eq!(spool.pending().unwrap().len(), 1);
        drop(held);
        assert_eq!(spool.try_flush(&sink).unwrap(), Some(1));
        std::fs::remove_dir_all(&tmp).unwrap();
    }

    #[test]
    fn a_failed_send_keeps_the_rest_in_order() {
        let tmp = std::env::temp_dir().join(format!("jit-spool-test2-{}", std::process::id()));
        std::fs::create_dir_all(&tmp).unwrap();
        let spool = spool_in(&tmp);
        spool.push(b"first").unwrap();
        spool.push(b"second").unwrap();
        let sock_path = tmp.join("gone.sock");
        let receiver = UnixDatagram::bind(&sock_path).unwrap();
        let sink = SyslogSink::connect(&sock_path).unwrap();
        drop(receiver);
        std::fs::remove_file(&sock_path).unwrap();
        assert_eq!(spool.flush(&sink).unwrap(), 0);
        assert_eq!(spool.pending().unwrap().len(), 2);
        std::fs::remove_dir_all(&tmp).unwrap();
    }
}
