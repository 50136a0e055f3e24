//! The supervisor's loop while the command runs: reap (the command and the orphans it leaves
//! to the subreaper), follow its job-control stops, forward signals, and end the process tree
//! at the grant's expiry (SIGTERM, then SIGKILL after `kill_grace`). It waits in
//! `sigtimedwait` on the signals it handles, or, when the command has plumbing, in the
//! relay's `poll` (exec/relay.rs), which also takes those signals.

use super::terminal::job_control_stop;
use super::Held;
use crate::audit::EndReason;
use crate::refusal::Refusal;
use crate::system::process::{self, WaitStatus};
use crate::system::signals;
use std::time::{Duration, Instant};
use time::OffsetDateTime;

/// Signals the supervisor handles (blocked, and taken with sigtimedwait); its front takes the
/// same ones (`front.rs`).
pub const HANDLED: &[libc::c_int] = &[
    libc::SIGCHLD,
    libc::SIGINT,
    libc::SIGTERM,
    libc::SIGHUP,
    libc::SIGQUIT,
    libc::SIGUSR1,
    libc::SIGUSR2,
    libc::SIGWINCH,
    libc::SIGCONT,
    libc::SIGALRM,
];

enum Phase {
    Running,
    Terminating { kill_at: Instant },
    Killed,
}

/// How the command's run ended, as the loop saw it.
pub struct Waited {
    pub status: WaitStatus,
    /// The supervisor began ending it: at the grant's expiry (`Expired`), or because its
    /// session recording failed or reached its cap.
    pub ended_by: Option<EndReason>,
}

/// One wait of the loop: up to the given time, for a signal (and, with a relay, the
/// command's I/O). Some(reason) when the command must be ended (its recording says so).
pub type Wait<'w> = &'w mut dyn FnMut(Duration) -> Option<EndReason>;

/// The wait of a command without plumbing: signals only, passed on to it.
pub fn signals_only(child: i32) -> impl FnMut(Duration) -> Option<EndReason> {
    move |timeout| {
        forward_signals(child, timeout);
        None
    }
}

/// Wait until the command has ended (exit or signal). An error means it cannot be waited for;
/// the caller ends it.
pub fn until_end(
    held: &Held,
    expires: Option<OffsetDateTime>,
    kill_grace: Duration,
    wait: Wait<'_>,
) -> Result<Waited, Refusal> {
    let child = held.child;
    let mut phase = Phase::Running;
    let mut ended_by = None;
    loop {
        match reap(held.waited)? {
            Some(WaitStatus::Stopped(sig)) if held.waited == child => {
                job_control_stop(child, sig);
                continue;
            }
            Some(WaitStatus::Stopped(_)) => {
                // The pty monitor never stops by itself (its command's stops come as messages);
                // a root command may have sent it SIGSTOP: it goes on, the caller's terminal
                // stays as the relay keeps it.
                let _ = signals::kill(held.waited, libc::SIGCONT);
                continue;
            }
            Some(status) => return Ok(Waited { status, ended_by }),
            None => {}
        }
        let now = OffsetDateTime::now_utc();
        let timeout = match phase {
            Phase::Running => match expires {
                Some(exp) if now >= exp => {
                    held.terminate(libc::SIGTERM);
                    ended_by = Some(EndReason::Expired);
                    phase = Phase::Terminating {
                        kill_at: Instant::now() + kill_grace,
                    };
                    continue;
                }
                Some(exp) => to_std(exp - now).min(Duration::from_secs(60)),
                None => Duration::from_secs(3600),
            },
            Phase::Terminating { kill_at } => {
                let left = kill_at.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    held.terminate(libc::SIGKILL);
                    phase = Phase::Killed;
                    continue;
                }
                left
            }
            Phase::Killed => Duration::from_secs(1),
        };
        if let (Some(why), Phase::Running) = (wait(timeout), &phase) {
            held.terminate(libc::SIGTERM);
            ended_by = Some(why);
            phase = Phase::Terminating {
                kill_at: Instant::now() + kill_grace,
            };
        }
    }
}

/// Wait up to `timeout` for a handled signal; pass one the command should see on to it.
fn forward_signals(child: i32, timeout: Duration) {
    match signals::wait(HANDLED, timeout) {
        Ok(None) | Ok(Some(libc::SIGCHLD)) | Ok(Some(libc::SIGCONT)) | Err(_) => {}
        Ok(Some(sig)) => {
            let _ = signals::kill(child, sig);
        }
    }
}

fn to_std(d: time::Duration) -> Duration {
    Duration::from_millis(d.whole_milliseconds().clamp(0, u64::MAX as i128) as u64)
}

/// Reap every child that changed state; report the command's own change.
pub fn reap(child: i32) -> Result<Option<WaitStatus>, Refusal> {
    let mut mine = None;
    loop {
        match process::wait_nohang(-1) {
            Ok(Some((pid, st))) if pid == child => mine = Some(st),
            Ok(Some(_)) => {} // an orphan of the command, re-parented to us (subreaper)
            Ok(None) => return Ok(mine),
            Err(e) if e.raw_os_error() == Some(libc::ECHILD) => return Ok(mine),
            Err(e) => return Err(Refusal::config("supervise", format!("waitpid: {e}"))),
        }
        if matches!(mine, Some(WaitStatus::Stopped(_))) {
            return Ok(mine);
        }
    }
}
