//! How a run ended (`jitrun.end_reason` and jitrun's exit status), from what the supervisor
//! saw: pure, so that every combination is tested here.

use super::spawn::ChildReport;
use crate::audit::EndReason;
use crate::system::process::WaitStatus;

/// What the supervisor knows once the command is gone.
#[derive(Debug, Clone, Copy)]
pub struct Seen<'a> {
    /// The command's last state (exit or signal).
    pub status: WaitStatus,
    /// What the child said before exec.
    pub report: &'a ChildReport,
    /// The watchdog ended the command because the grant was revoked.
    pub revoked: bool,
    /// The supervisor itself began ending it (SIGTERM at expiry, then SIGKILL).
    pub ended_at_expiry: bool,
    /// The supervisor ended it because its session recording failed or reached its cap
    /// (`RecordingFailed`, `RecordingLimit`).
    pub recording_end: Option<EndReason>,
    /// The grant's `exp` has passed (the watchdog may have ended it while the supervisor was
    /// stopped for job control).
    pub past_expiry: bool,
}

/// The reason and the exit status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct End {
    pub reason: EndReason,
    pub exit_code: i32,
}

/// The exit status is the command's (128 + the signal that ended it, as shells say), or the
/// child's own when the command never ran. The reason, in order: the identity could not be
/// taken (`supervisor_killed`: nothing ran), the grant was revoked, its recording ended it,
/// it expired (the supervisor ended it, or a signal ended it past `exp`), a signal, a plain
/// exit.
pub fn classify(seen: &Seen<'_>) -> End {
    let exit_code = match (seen.report, seen.status) {
        (ChildReport::IdentityFailed(_), _) => 1,
        (ChildReport::ExecFailed { code, .. }, _) => *code,
        (ChildReport::Started, WaitStatus::Exited(c)) => c,
        (ChildReport::Started, WaitStatus::Signaled(s) | WaitStatus::Stopped(s)) => 128 + s,
    };
    let signaled = matches!(seen.status, WaitStatus::Signaled(_));
    let reason = if matches!(seen.report, ChildReport::IdentityFailed(_)) {
        EndReason::SupervisorKilled
    } else if seen.revoked {
        EndReason::Revoked
    } else if let Some(r) = seen.recording_end {
        r
    } else if seen.ended_at_expiry || (seen.past_expiry && signaled) {
        EndReason::Expired
    } else if signaled {
        EndReason::Signal
    } else {
        EndReason::Exit
    };
    End { reason, exit_code }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seen(status: WaitStatus, report: &ChildReport) -> Seen<'_> {
        Seen {
            status,
            report,
            revoked: false,
            ended_at_expiry: false,
            recording_end: None,
            past_expiry: false,
        }
    }

    fn end(reason: EndReason, exit_code: i32) -> End {
        End { reason, exit_code }
    }

    #[test]
    fn a_command_that_ran_ends_with_its_own_status() {
        let ran = ChildReport::Started;
        let s = |st| classify(&seen(st, &ran));
        assert_eq!(s(WaitStatus::Exited(0)), end(EndReason::Exit, 0));
        assert_eq!(s(WaitStatus::Exited(3)), end(EndReason::Exit, 3));
        assert_eq!(s(WaitStatus::Signaled(9)), end(EndReason::Signal, 137));
        assert_eq!(s(WaitStatus::Signaled(15)), end(EndReason::Signal, 143));
    }

    #[test]
    fn expiry_is_the_supervisors_ending_or_a_signal_past_exp() {
        let ran = ChildReport::Started;
        let ended = Seen {
            ended_at_expiry: true,
            ..seen(WaitStatus::Signaled(15), &ran)
        };
        assert_eq!(classify(&ended), end(EndReason::Expired, 143));
        // A command that caught SIGTERM and exited on its own is still ended by expiry.
        let caught = Seen {
            ended_at_expiry: true,
            ..seen(WaitStatus::Exited(0), &ran)
        };
        assert_eq!(classify(&caught), end(EndReason::Expired, 0));
        // Killed by the watchdog while the supervisor was stopped: past exp, by a signal.
        let by_watchdog = Seen {
            past_expiry: true,
            ..seen(WaitStatus::Signaled(9), &ran)
        };
        assert_eq!(classify(&by_watchdog), end(EndReason::Expired, 137));
        // Exited by itself just after exp, nobody ended it: an exit.
        let on_its_own = Seen {
            past_expiry: true,
            ..seen(WaitStatus::Exited(0), &ran)
        };
        assert_eq!(classify(&on_its_own), end(EndReason::Exit, 0));
    }

    #[test]
    fn revocation_wins_over_expiry_and_signals() {
        let ran = ChildReport::Started;
        let revoked = Seen {
            revoked: true,
            past_expiry: true,
            ended_at_expiry: true,
            ..seen(WaitStatus::Signaled(15), &ran)
        };
        assert_eq!(classify(&revoked), end(EndReason::Revoked, 143));
    }

    #[test]
    fn a_recording_that_ended_the_command_says_so_unless_revoked() {
        let ran = ChildReport::Started;
        let failed = Seen {
            recording_end: Some(EndReason::RecordingFailed),
            past_expiry: true,
            ..seen(WaitStatus::Signaled(15), &ran)
        };
        assert_eq!(classify(&failed), end(EndReason::RecordingFailed, 143));
        let capped = Seen {
            recording_end: Some(EndReason::RecordingLimit),
            ..seen(WaitStatus::Exited(0), &ran)
        };
        assert_eq!(classify(&capped), end(EndReason::RecordingLimit, 0));
        let revoked = Seen {
            revoked: true,
            ..failed
        };
        assert_eq!(classify(&revoked), end(EndReason::Revoked, 143));
    }

    #[test]
    fn a_command_that_never_ran_says_why() {
        let identity = ChildReport::IdentityFailed("capset: EPERM".into());
        let revoked = Seen {
            revoked: true,
            ..seen(WaitStatus::Exited(1), &identity)
        };
        assert_eq!(classify(&revoked), end(EndReason::SupervisorKilled, 1));
        let missing = ChildReport::ExecFailed {
            code: 127,
            message: "No such file or directory".into(),
        };
        assert_eq!(
            classify(&seen(WaitStatus::Exited(127), &missing)),
            end(EndReason::Exit, 127)
        );
        let denied = ChildReport::ExecFailed {
            code: 126,
            message: "Permission denied".into(),
        };
        assert_eq!(
            classify(&seen(WaitStatus::Exited(126), &denied)),
            end(EndReason::Exit, 126)
        );
    }
}
