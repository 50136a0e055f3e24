//! The supervisor's loop while the command runs: reap (the command and the orphans it leaves
//! to the subreaper), follow its job-control stops, forward signals, and end the process tree
//! at the grant's expiry (SIGTERM, then SIGKILL after `kill_grace`). It waits in
//! `sigtimedwait` on the signals it handles; a pty relay would wait on its descriptors here
//! too.

use super::terminal::job_control_stop;
use super::Held;
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
    /// The supervisor began ending it at the grant's expiry.
    pub ended_at_expiry: bool,
}

/// Wait until the command has ended (exit or signal). An error means it cannot be waited for;
/// the caller ends it.
pub fn until_end(
    held: &Held,
    expires: Option<OffsetDateTime>,
    kill_grace: Duration,
) -> Result<Waited, Refusal> {
    let child = held.child;
    let mut phase = Phase::Running;
    loop {
        match reap(child)? {
            Some(WaitStatus::Stopped(sig)) => {
                job_control_stop(child, sig);
                continue;
            }
            Some(status) => {
                let ended_at_expiry = !matches!(phase, Phase::Running);
                return Ok(Waited {
                    status,
                    ended_at_expiry,
                });
            }
            None => {}
        }
        let now = OffsetDateTime::now_utc();
        let timeout = match phase {
            Phase::Running => match expires {
                Some(exp) if now >= exp => {
                    held.terminate(libc::SIGTERM);
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
        forward_signals(child, timeout);
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
