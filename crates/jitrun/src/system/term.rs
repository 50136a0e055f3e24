//! The controlling terminal: who is in the foreground, and handing it over.

use nix::unistd::Pid;
use std::io;
use std::os::fd::BorrowedFd;

pub fn isatty(fd: BorrowedFd<'_>) -> bool {
    nix::unistd::isatty(fd).unwrap_or(false)
}

/// The foreground process group of the terminal on `fd`.
pub fn foreground(fd: BorrowedFd<'_>) -> io::Result<libc::pid_t> {
    Ok(nix::unistd::tcgetpgrp(fd)?.as_raw())
}

/// Make `pgrp` the foreground process group. SIGTTOU is ignored around the call so that a
/// supervisor in the background can take the terminal back.
pub fn set_foreground(fd: BorrowedFd<'_>, pgrp: libc::pid_t) -> io::Result<()> {
    super::signals::ignore(libc::SIGTTOU);
    let r = nix::unistd::tcsetpgrp(fd, Pid::from_raw(pgrp));
    super::signals::set_default(libc::SIGTTOU);
    Ok(r?)
}
