//! The controlling terminal: who is in the foreground, and handing it over.

use super::check;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};

pub fn isatty(fd: BorrowedFd<'_>) -> bool {
    // SAFETY: isatty takes an integer and touches no memory.
    unsafe { libc::isatty(fd.as_raw_fd()) == 1 }
}

/// The foreground process group of the terminal on `fd`.
pub fn foreground(fd: BorrowedFd<'_>) -> io::Result<libc::pid_t> {
    // SAFETY: integer argument only.
    let r = unsafe { libc::tcgetpgrp(fd.as_raw_fd()) };
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

/// Make `pgrp` the foreground process group. SIGTTOU is ignored around the call so that a
/// supervisor in the background can take the terminal back.
pub fn set_foreground(fd: BorrowedFd<'_>, pgrp: libc::pid_t) -> io::Result<()> {
    super::signals::ignore(libc::SIGTTOU);
    // SAFETY: integer arguments only.
    let r = check(unsafe { libc::tcsetpgrp(fd.as_raw_fd(), pgrp) }).map(drop);
    super::signals::set_default(libc::SIGTTOU);
    r
}
