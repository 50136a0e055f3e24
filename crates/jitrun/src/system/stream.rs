//! What the terminal relay and the pty monitor need from the kernel: `poll` for reading and
//! writing, reads and writes that repeat on EINTR, non-blocking descriptors, descriptors put
//! on 0–2 in the command's process, a `signalfd` for the supervisor's signals, closing all
//! but a few descriptors, and ending a process with the signal another one died of.
//!
//! Through nix, except `close_range`, which nix lacks.

use nix::fcntl::{FcntlArg, OFlag};
use nix::poll::{PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::time::Duration;

/// What to wait for on one descriptor.
#[derive(Debug, Clone, Copy)]
pub struct Interest<'a> {
    pub fd: BorrowedFd<'a>,
    pub read: bool,
    pub write: bool,
}

/// What one descriptor is ready for. `hangup` and `error` count as readable (a read then
/// says what happened: end of file or the error) and as writable (a write does).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Ready {
    pub readable: bool,
    pub writable: bool,
}

/// Wait up to `timeout` for any of `set`; what each is ready for. EINTR is a time-out.
pub fn poll(set: &[Interest<'_>], timeout: Duration) -> io::Result<Vec<Ready>> {
    let mut pfds: Vec<PollFd<'_>> = set
        .iter()
        .map(|i| {
            let mut flags = PollFlags::empty();
            flags.set(PollFlags::POLLIN, i.read);
            flags.set(PollFlags::POLLOUT, i.write);
            PollFd::new(i.fd, flags)
        })
        .collect();
    let ms = PollTimeout::try_from(timeout.as_millis().min(i32::MAX as u128))
        .unwrap_or(PollTimeout::MAX);
    match nix::poll::poll(&mut pfds, ms) {
        Err(nix::errno::Errno::EINTR) => Ok(vec![Ready::default(); set.len()]),
        Err(e) => Err(e.into()),
        Ok(_) => Ok(pfds
            .iter()
            .zip(set)
            .map(|(p, i)| {
                let r = p.revents().unwrap_or(PollFlags::empty());
                let gone =
                    r.intersects(PollFlags::POLLHUP | PollFlags::POLLERR | PollFlags::POLLNVAL);
                Ready {
                    readable: i.read && (r.contains(PollFlags::POLLIN) || gone),
                    writable: i.write && (r.contains(PollFlags::POLLOUT) || gone),
                }
            })
            .collect()),
    }
}

/// read(2), repeated on EINTR.
pub fn read(fd: BorrowedFd<'_>, buf: &mut [u8]) -> io::Result<usize> {
    loop {
        match nix::unistd::read(fd, buf) {
            Err(nix::errno::Errno::EINTR) => continue,
            other => return Ok(other?),
        }
    }
}

/// write(2), repeated on EINTR.
pub fn write(fd: BorrowedFd<'_>, buf: &[u8]) -> io::Result<usize> {
    loop {
        match nix::unistd::write(fd, buf) {
            Err(nix::errno::Errno::EINTR) => continue,
            other => return Ok(other?),
        }
    }
}

/// Set `O_NONBLOCK` on a descriptor jitrun made itself (a pty master, a pipe): never on one
/// it shares with other processes (the caller's terminal), whose open file description the
/// flag would change for them too.
pub fn set_nonblocking(fd: BorrowedFd<'_>) -> io::Result<()> {
    let flags = OFlag::from_bits_retain(nix::fcntl::fcntl(fd, FcntlArg::F_GETFL)?);
    nix::fcntl::fcntl(fd, FcntlArg::F_SETFL(flags | OFlag::O_NONBLOCK))?;
    Ok(())
}

/// A close-on-exec duplicate, numbered 3 or above.
pub fn dup_cloexec(fd: BorrowedFd<'_>) -> io::Result<OwnedFd> {
    let new = nix::fcntl::fcntl(fd, FcntlArg::F_DUPFD_CLOEXEC(3))?;
    // SAFETY: `new` was just returned by fcntl(F_DUPFD_CLOEXEC) and is owned by nothing else.
    Ok(unsafe { OwnedFd::from_raw_fd(new) })
}

/// Make standard descriptor `target` (0, 1 or 2) a copy of `fd`, kept across exec.
pub fn dup_onto_std(fd: BorrowedFd<'_>, target: RawFd) -> io::Result<()> {
    if fd.as_raw_fd() == target {
        // dup2 onto itself would keep close-on-exec; a copy of a std descriptor never has it.
        return Ok(());
    }
    Ok(match target {
        0 => nix::unistd::dup2_stdin(fd),
        1 => nix::unistd::dup2_stdout(fd),
        2 => nix::unistd::dup2_stderr(fd),
        _ => return Err(io::Error::from_raw_os_error(libc::EBADF)),
    }?)
}

/// Close every descriptor from 3 up but those in `keep`.
///
/// # Safety
///
/// As for [`super::fs::close_inherited`]: only in a forked process that never again uses or
/// drops the Rust objects owning the descriptors it closes, and ends with exec or `_exit`.
pub unsafe fn close_all_but(keep: &[RawFd]) {
    let mut keep: Vec<RawFd> = keep.iter().copied().filter(|&fd| fd > 2).collect();
    keep.sort_unstable();
    let mut from: RawFd = 3;
    for fd in keep.into_iter().chain([RawFd::MAX]) {
        if fd > from {
            let last = if fd == RawFd::MAX {
                u32::MAX
            } else {
                (fd - 1) as u32
            };
            // SAFETY: close_range takes integers only; the caller guarantees that nothing
            // uses the descriptors it closes (see # Safety).
            unsafe { libc::syscall(libc::SYS_close_range, from as u32, last, 0u32) };
        }
        from = fd.saturating_add(1);
    }
}

/// The signals the supervisor handles, read from a descriptor (they stay blocked, so they
/// arrive nowhere else): `poll` waits for them together with the relay's descriptors.
pub struct Signals(SignalFd);

impl Signals {
    pub fn new(signals: &[libc::c_int]) -> io::Result<Signals> {
        let mut set = SigSet::empty();
        for &s in signals {
            set.add(Signal::try_from(s)?);
        }
        let flags = SfdFlags::SFD_NONBLOCK | SfdFlags::SFD_CLOEXEC;
        Ok(Signals(SignalFd::with_flags(&set, flags)?))
    }

    /// The next pending signal, if any.
    pub fn next(&self) -> io::Result<Option<libc::c_int>> {
        Ok(self.0.read_signal()?.map(|si| si.ssi_signo as libc::c_int))
    }
}

impl AsFd for Signals {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.0.as_fd()
    }
}

/// End this process with signal `sig` (the one the command died of), so that its parent
/// sees the same status; `_exit(128 + sig)` if the signal does not end it (SIGCHLD, say).
pub fn die_of(sig: libc::c_int) -> ! {
    super::signals::set_default(sig);
    if let Ok(s) = Signal::try_from(sig) {
        let mut set = SigSet::empty();
        set.add(s);
        let _ = set.thread_unblock();
        let _ = nix::sys::signal::kill(nix::unistd::getpid(), s);
    }
    super::process::exit_now(128 + sig)
}

/// Unblock `sig` (blocked since start) for as long as `f` runs, then block it again: how the
/// supervisor lets the stop signal it sends its own process group stop it.
pub fn with_unblocked<T>(sig: libc::c_int, f: impl FnOnce() -> T) -> io::Result<T> {
    let mut set = SigSet::empty();
    set.add(Signal::try_from(sig)?);
    set.thread_unblock()?;
    let out = f();
    set.thread_block()?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn poll_reports_readable_and_writable_ends() {
        let (r, w) = crate::system::process::pipe().unwrap();
        let set = [
            Interest {
                fd: r.as_fd(),
                read: true,
                write: false,
            },
            Interest {
                fd: w.as_fd(),
                read: false,
                write: true,
            },
        ];
        let ready = poll(&set, Duration::from_millis(0)).unwrap();
        assert_eq!(ready[0], Ready::default());
        assert!(ready[1].writable);
        assert_eq!(write(w.as_fd(), b"hi").unwrap(), 2);
        let ready = poll(&set, Duration::from_millis(0)).unwrap();
        assert!(ready[0].readable);
        let mut buf = [0u8; 8];
        assert_eq!(read(r.as_fd(), &mut buf).unwrap(), 2);
        drop(w);
        let only_r = [Interest {
            fd: r.as_fd(),
            read: true,
            write: false,
        }];
        let ready = poll(&only_r, Duration::from_millis(0)).unwrap();
        assert!(ready[0].readable, "end of file is readable");
        assert_eq!(read(r.as_fd(), &mut buf).unwrap(), 0);
    }

    #[test]
    fn nonblocking_reads_say_would_block() {
        let (r, _w) = crate::system::process::pipe().unwrap();
        set_nonblocking(r.as_fd()).unwrap();
        let e = read(r.as_fd(), &mut [0u8; 4]).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::WouldBlock);
        let d = dup_cloexec(r.as_fd()).unwrap();
        assert!(d.as_raw_fd() >= 3);
    }
}
