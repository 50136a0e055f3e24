//! Signal dispositions and masks.
//!
//! Through nix, except for what it lacks: dispositions of every signal number including the
//! real-time ones (nix's `Signal` has none of them), and `sigtimedwait`.

use nix::sys::signal::{self as nix_signal, SigHandler, SigSet, SigmaskHow, Signal};
use nix::unistd::Pid;
use std::io;
use std::time::Duration;

fn signal(sig: libc::c_int) -> io::Result<Signal> {
    Ok(Signal::try_from(sig)?)
}

/// Every catchable signal number, real-time ones included, to `handler` (SIG_DFL or SIG_IGN).
fn set_all(handler: libc::sighandler_t) {
    for sig in 1..libc::SIGRTMAX() {
        if sig == libc::SIGKILL || sig == libc::SIGSTOP {
            continue;
        }
        // SAFETY: installing SIG_DFL or SIG_IGN runs no handler code and touches no Rust
        // state; EINVAL for numbers the C library reserves is ignored.
        unsafe { libc::signal(sig, handler) };
    }
}

/// Set every catchable signal to its default action and unblock all signals; then ignore
/// SIGPIPE so that a closed stderr is an error, not a silent death mid-decision.
pub fn reset_all() -> io::Result<()> {
    set_all(libc::SIG_DFL);
    unblock_all()?;
    ignore(libc::SIGPIPE);
    Ok(())
}

/// Back to the default action for every signal (in the child, right before exec).
pub fn default_all() {
    set_all(libc::SIG_DFL);
}

fn set_handler(sig: libc::c_int, handler: SigHandler) {
    if let Ok(sig) = signal(sig) {
        // SAFETY: SIG_IGN and SIG_DFL run no handler code and touch no Rust state.
        let _ = unsafe { nix_signal::signal(sig, handler) };
    }
}

pub fn ignore(sig: libc::c_int) {
    set_handler(sig, SigHandler::SigIgn);
}

pub fn set_default(sig: libc::c_int) {
    set_handler(sig, SigHandler::SigDfl);
}

fn sigset(signals: &[libc::c_int]) -> io::Result<SigSet> {
    let mut set = SigSet::empty();
    for &s in signals {
        set.add(signal(s)?);
    }
    Ok(set)
}

pub fn unblock_all() -> io::Result<()> {
    Ok(nix_signal::sigprocmask(
        SigmaskHow::SIG_SETMASK,
        Some(&SigSet::empty()),
        None,
    )?)
}

/// Block `signals` so that they queue for [`wait`].
pub fn block(signals: &[libc::c_int]) -> io::Result<()> {
    let set = sigset(signals)?;
    Ok(nix_signal::sigprocmask(
        SigmaskHow::SIG_BLOCK,
        Some(&set),
        None,
    )?)
}

/// Wait up to `timeout` for one of `signals` (which must be blocked). None on time-out.
/// Hand-written: nix has `sigwait` only, without a time-out.
pub fn wait(signals: &[libc::c_int], timeout: Duration) -> io::Result<Option<libc::c_int>> {
    let set = sigset(signals)?;
    let ts = libc::timespec {
        tv_sec: timeout.as_secs().min(i64::MAX as u64) as libc::time_t,
        tv_nsec: timeout.subsec_nanos() as libc::c_long,
    };
    // SAFETY: `set` and `ts` are valid for the call; siginfo is not requested (null).
    let r = unsafe { libc::sigtimedwait(set.as_ref(), std::ptr::null_mut(), &ts) };
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
    match nix_signal::kill(Pid::from_raw(pid), signal(sig)?) {
        Err(nix::errno::Errno::ESRCH) => Ok(()),
        other => Ok(other?),
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
