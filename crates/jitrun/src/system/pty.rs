//! Pseudo-terminals and terminal modes: the pty a command runs on, its window size, and the
//! caller's terminal put in raw mode and back.
//!
//! Through nix (`posix_openpt`, `grantpt`, `unlockpt`, termios), except three ioctls nix
//! has no safe wrapper for: `TIOCGPTPEER` (the slave opened from the master itself, never by
//! a path someone could swap), `TIOCSCTTY` and `TIOCGWINSZ`/`TIOCSWINSZ`.

use nix::fcntl::OFlag;
use nix::sys::termios::{self, SetArg, Termios};
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

/// A new pseudo-terminal: the master (jitrun's side) and the slave (the command's terminal).
pub struct Pty {
    pub master: OwnedFd,
    pub slave: OwnedFd,
}

/// Allocate a pty as root: both descriptors close-on-exec, the slave opened from the master
/// (`TIOCGPTPEER`, Linux 4.13+), then made root's with mode 0600 whatever the devpts mount
/// says (Debian mounts it `gid=5,mode=620`): no other process, of the run-as user or of the
/// `tty` group (`write`, `wall`), can open the session's terminal to read what is typed into
/// it or to write into the recording; the command uses it through the descriptors it is given
/// and through `/dev/tty`.
pub fn open() -> io::Result<Pty> {
    let master = nix::pty::posix_openpt(OFlag::O_RDWR | OFlag::O_NOCTTY | OFlag::O_CLOEXEC)?;
    nix::pty::grantpt(&master)?;
    nix::pty::unlockpt(&master)?;
    let flags = libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC;
    // SAFETY: TIOCGPTPEER takes its open flags as the integer argument and returns a new
    // descriptor (or -1); no memory is passed.
    let fd = unsafe { libc::ioctl(master.as_raw_fd(), libc::TIOCGPTPEER, flags) };
    let fd = super::check(fd)?;
    // SAFETY: `fd` was just returned by the kernel and is owned by nothing else.
    let slave = unsafe { OwnedFd::from_raw_fd(fd) };
    let root = (nix::unistd::Uid::from_raw(0), nix::unistd::Gid::from_raw(0));
    nix::unistd::fchown(&slave, Some(root.0), Some(root.1))?;
    super::fs::fchmod(slave.as_fd(), 0o600)?;
    Ok(Pty {
        master: master.into(),
        slave,
    })
}

/// Make the terminal on `fd` the controlling terminal of this process, a session leader
/// without one (right after `setsid`).
pub fn make_controlling(fd: BorrowedFd<'_>) -> io::Result<()> {
    // SAFETY: TIOCSCTTY takes an integer argument (0: do not steal the terminal from another
    // session); no memory is passed.
    let r = unsafe { libc::ioctl(fd.as_raw_fd(), libc::TIOCSCTTY, 0) };
    super::check(r).map(|_| ())
}

/// A terminal's size in character cells.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WindowSize {
    pub cols: u16,
    pub rows: u16,
    xpixel: u16,
    ypixel: u16,
}

impl WindowSize {
    pub fn new(cols: u16, rows: u16) -> WindowSize {
        WindowSize {
            cols,
            rows,
            xpixel: 0,
            ypixel: 0,
        }
    }
}

/// `TIOCGWINSZ`.
pub fn window_size(fd: BorrowedFd<'_>) -> io::Result<WindowSize> {
    let mut ws = libc::winsize {
        ws_row: 0,
        ws_col: 0,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: `ws` is a valid, writable winsize for the whole call.
    let r = unsafe { libc::ioctl(fd.as_raw_fd(), libc::TIOCGWINSZ, &mut ws) };
    super::check(r)?;
    Ok(WindowSize {
        cols: ws.ws_col,
        rows: ws.ws_row,
        xpixel: ws.ws_xpixel,
        ypixel: ws.ws_ypixel,
    })
}

/// `TIOCSWINSZ`: on a pty master, the kernel sends SIGWINCH to the slave's foreground group.
pub fn set_window_size(fd: BorrowedFd<'_>, size: WindowSize) -> io::Result<()> {
    let ws = libc::winsize {
        ws_row: size.rows,
        ws_col: size.cols,
        ws_xpixel: size.xpixel,
        ws_ypixel: size.ypixel,
    };
    // SAFETY: `ws` is a valid winsize for the whole call; the kernel only reads it.
    let r = unsafe { libc::ioctl(fd.as_raw_fd(), libc::TIOCSWINSZ, &ws) };
    super::check(r).map(|_| ())
}

/// A terminal's settings.
pub type Mode = Termios;

pub fn mode(fd: BorrowedFd<'_>) -> io::Result<Mode> {
    Ok(termios::tcgetattr(fd)?)
}

/// Set the terminal's settings once its pending output is written (`TCSADRAIN`). Interrupted
/// calls are repeated.
pub fn set_mode(fd: BorrowedFd<'_>, mode: &Mode) -> io::Result<()> {
    loop {
        match termios::tcsetattr(fd, SetArg::TCSADRAIN, mode) {
            Err(nix::errno::Errno::EINTR) => continue,
            other => return Ok(other?),
        }
    }
}

/// Raw mode, as `cfmakeraw(3)`: no echo, no line editing, no signals from keys, no flow
/// control, no output processing; every byte goes through as typed.
pub fn raw(mode: &Mode) -> Mode {
    let mut raw = mode.clone();
    termios::cfmakeraw(&mut raw);
    raw
}

/// The terminal's foreground process group, through any descriptor of it (the pty master
/// included: the slave's group).
pub fn foreground(fd: BorrowedFd<'_>) -> io::Result<libc::pid_t> {
    Ok(nix::unistd::tcgetpgrp(fd)?.as_raw())
}

/// Make `pgrp` the foreground group of the pty whose master is `fd` (the caller's controlling
/// terminal: it is the session leader of the pty's session).
pub fn set_foreground(fd: BorrowedFd<'_>, pgrp: libc::pid_t) -> io::Result<()> {
    Ok(nix::unistd::tcsetpgrp(
        fd,
        nix::unistd::Pid::from_raw(pgrp),
    )?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pty_is_roots_alone_and_carries_its_size() {
        if crate::system::process::geteuid() != 0 {
            return; // open() makes the slave root's: only root may (jitrun always is)
        }
        let pty = open().expect("a pty");
        let st = crate::system::fs::fstat(pty.slave.as_fd()).unwrap();
        assert_eq!((st.uid, st.mode & 0o777), (0, 0o600));
        let size = WindowSize::new(132, 43);
        set_window_size(pty.master.as_fd(), size).unwrap();
        assert_eq!(window_size(pty.slave.as_fd()).unwrap(), size);
        let m = mode(pty.slave.as_fd()).unwrap();
        let r = raw(&m);
        set_mode(pty.slave.as_fd(), &r).unwrap();
        let back = mode(pty.slave.as_fd()).unwrap();
        assert!(!back
            .local_flags
            .contains(nix::sys::termios::LocalFlags::ECHO));
        set_mode(pty.slave.as_fd(), &m).unwrap();
        assert_eq!(mode(pty.slave.as_fd()).unwrap().local_flags, m.local_flags);
    }
}
