//! The caller's terminal while the command runs on it: handed to the command's process group
//! and back, and job control (Ctrl-Z, `fg`, `bg`) passed through. A pty relay, when there is
//! one, takes the command's side of this.

use crate::system::fs::std_fd;
use crate::system::{process, signals, term};
use std::os::fd::BorrowedFd;
use std::sync::atomic::{AtomicI32, Ordering};

/// The supervisor's front (`front.rs`; 0: none, the supervisor is the process the shell
/// started).
static FRONT: AtomicI32 = AtomicI32::new(0);

/// In the supervisor: the pid of its front, which stops and goes on with it.
pub fn set_front(pid: libc::pid_t) {
    FRONT.store(pid, Ordering::Relaxed);
}

/// The supervisor goes on after a job-control stop: so does its front (stopped with it),
/// however the supervisor was continued.
fn continue_front() {
    let front = FRONT.load(Ordering::Relaxed);
    if front > 0 {
        let _ = signals::kill(front, libc::SIGCONT);
    }
}

/// A standard descriptor on a terminal, if any (looked up each time: jitrun may be moved
/// between foreground and background while the command runs).
pub fn terminal() -> Option<BorrowedFd<'static>> {
    (0..=2).map(std_fd).find(|&fd| term::isatty(fd))
}

pub fn foreground_is(t: BorrowedFd<'_>, pgrp: libc::pid_t) -> bool {
    term::foreground(t).ok() == Some(pgrp)
}

/// The terminal, if jitrun's process group `me` is in its foreground: the command gets it.
pub fn ours(me: libc::pid_t) -> Option<BorrowedFd<'static>> {
    terminal().filter(|&t| foreground_is(t, me))
}

/// At the end: if the command's group still has the terminal, jitrun's group `me` takes it.
pub fn take_back(child: libc::pid_t, me: libc::pid_t) {
    if let Some(t) = terminal() {
        if foreground_is(t, child) {
            let _ = term::set_foreground(t, me);
        }
    }
}

/// The command stopped. Reading the terminal from the background (SIGTTIN/SIGTTOU) while
/// jitrun itself is in the foreground (the shell's `fg` moved jitrun, not the command): hand
/// the terminal over and continue it. Otherwise (Ctrl-Z, or jitrun in the background): take
/// the terminal back and stop too, so the shell sees the job stop (its front, which the shell
/// waits for, stops with it: `front.rs`); when continued, continue the front, give the
/// terminal back if jitrun is in the foreground, and continue the command. While jitrun is
/// stopped the watchdog keeps enforcing the grant's expiry. Without a terminal, a stop is
/// left to whoever sent it.
pub fn job_control_stop(child: i32, sig: libc::c_int) {
    let Some(t) = terminal() else { return };
    let me = process::getpgrp();
    if (sig == libc::SIGTTIN || sig == libc::SIGTTOU) && foreground_is(t, me) {
        let _ = term::set_foreground(t, child);
        let _ = signals::kill(-child, libc::SIGCONT);
        return;
    }
    if foreground_is(t, child) {
        let _ = term::set_foreground(t, me);
    }
    let _ = signals::kill(process::getpid(), libc::SIGSTOP);
    continue_front();
    if foreground_is(t, me) {
        let _ = term::set_foreground(t, child);
    }
    let _ = signals::kill(-child, libc::SIGCONT);
}
