//! Signal dispositions and masks.

use super::check;
use std::io;
use std::time::Duration;

/// Set every catchable signal to its default action and unblock all signals; then ignore
/// SIGPIPE so that a closed stderr is an error, not a silent death mid-decision.
pub fn reset_all() -> io::Result<()> {
    for sig in 1..libc::SIGRTMAX() {
        if sig == libc::SIGKILL || sig == libc::SIGSTOP {
            continue;
        }
        // SAFETY: installing SIG_DFL touches no Rust state; EINVAL for reserved signals
        // (used by the C library) is ignored.
        unsafe { libc::signal(sig, libc::SIG_DFL) };
    }
    unblock_all()?;
    // SAFETY: SIG_IGN for SIGPIPE touches no Rust state.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_IGN) };
    Ok(())
}

/// Back to the default action for every signal (in the child, right before exec).
pub fn default_all() {
    for sig in 1..libc::SIGRTMAX() {
        if sig == libc::SIGKILL || sig == libc::SIGSTOP {
            continue;
        }
        // SAFETY: as in `reset_all`.
        unsafe { libc::signal(sig, libc::SIG_DFL) };
    }
}

pub fn ignore(sig: libc::c_int) {
    // SAFETY: SIG_IGN touches no Rust state.
    unsafe { libc::signal(sig, libc::SIG_IGN) };
}

pub fn set_default(sig: libc::c_int) {
    // SAFETY: SIG_DFL touches no Rust state.
    unsafe { libc::signal(sig, libc::SIG_DFL) };
}

fn sigset(signals: &[libc::c_int]) -> libc::sigset_t {
    // SAFETY: all-zero bytes are a valid sigset_t; sigemptyset/sigaddset initialise it.
    let mut set: libc::sigset_t = unsafe { std::mem::zeroed() };
    // SAFETY: `set` is a valid sigset_t owned by this frame.
    unsafe {
        libc::sigemptyset(&mut set);
        for &s in signals {
            libc::sigaddset(&mut set, s);
        }
    }
    set
}

pub fn unblock_all() -> io::Result<()> {
    // SAFETY: all-zero bytes are a valid sigset_t; sigemptyset initialises it.
    let mut empty: libc::sigset_t = unsafe { std::mem::zeroed() };
    // SAFETY: `empty` is valid; the old mask is not requested (null).
    unsafe { libc::sigemptyset(&mut empty) };
    // SAFETY: as above.
    check(unsafe { libc::sigprocmask(libc::SIG_SETMASK, &empty, std::ptr::null_mut()) }).map(drop)
}

/// Block `signals` so that they queue for [`wait`].
pub fn block(signals: &[libc::c_int]) -> io::Result<()> {
    let set = sigset(signals);
    // SAFETY: `set` is a valid, initialised sigset_t; the old mask is not requested.
    check(unsafe { libc::sigprocmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) }).map(drop)
}

/// Wait up to `timeout` for one of `signals` (which must be blocked). None on time-out.
pub fn wait(signals: &[libc::c_int], timeout: Duration) -> io::Result<Option<libc::c_int>> {
    let set = sigset(signals);
    let ts = libc::timespec {
        tv_sec: timeout.as_secs().min(i64::MAX as u64) as libc::time_t,
        tv_nsec: timeout.subsec_nanos() as libc::c_long,
    };
    // SAFETY: `set` and `ts` are valid for the call; siginfo is not requested (null).
    let r = unsafe { libc::sigtimedwait(&set, std::ptr::null_mut(), &ts) };
    if r >= 0 {
        return Ok(Some(r));
    }
    let e = io::Error::last_os_error();
    match e.raw_os_error() {
        Some(libc::EAGAIN) | Some(libc::EINTR) => Ok(None),
        _ => Err(e),
    }
}

/// Send `sig` to process `pid` (negative: process group). ESRCH is not an error.
pub fn kill(pid: libc::pid_t, sig: libc::c_int) -> io::Result<()> {
    // SAFETY: kill takes integers and touches no memory.
    match check(unsafe { libc::kill(pid, sig) }) {
        Err(e) if e.raw_os_error() == Some(libc::ESRCH) => Ok(()),
        other => other.map(drop),
    }
}

/// `SIGTERM` etc.; real-time signals as `SIGRTMIN+N`; anything else as `signal N`.
pub fn name(sig: libc::c_int) -> String {
    if let Ok(s) = nix::sys::signal::Signal::try_from(sig) {
        return s.as_str().to_string();
    }
    if (libc::SIGRTMIN()..=libc::SIGRTMAX()).contains(&sig) {
        return format!("SIGRTMIN+{}", sig - libc::SIGRTMIN());
    }
    format!("signal {sig}")
}

#[cfg(test)]
mod tests {
    #[test]
    fn signal_names() {
        assert_eq!(super::name(libc::SIGTERM), "SIGTERM");
        assert_eq!(super::name(libc::SIGVTALRM), "SIGVTALRM");
        assert_eq!(super::name(libc::SIGPWR), "SIGPWR");
        assert_eq!(super::name(libc::SIGRTMIN() + 2), "SIGRTMIN+2");
        assert_eq!(super::name(200), "signal 200");
    }
}
