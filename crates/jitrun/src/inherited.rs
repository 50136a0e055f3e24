//! Step 1, part two: the process attributes a caller can set on herself that a setuid program
//! inherits (prctl(2), sched(7), setpriority(2), ioprio_set(2), proc(5), personality(2),
//! setitimer(2), set_mempolicy(2)). jitrun's supervisor and watchdog must keep time and get the
//! CPU whatever the caller chose: a caller's timer slack of an hour would let a command keep its
//! capabilities an hour past its grant, SCHED_IDLE would starve the watchdog, an armed
//! ITIMER_REAL would deliver SIGALRM when she chose. So every attribute that could hurt enforcement
//! is reset here, as root, before anything else runs; the ones a person plausibly chose for the
//! command (`nice`, `ionice`, `taskset`, `chrt -b/-i`, `choom`, timer slack) are given back to
//! the command in the child. docs/SECURITY.md ("Inherited process attributes") lists every
//! attribute, including the ones that are harmless or that the kernel clears itself.

use crate::refusal::Refusal;
use crate::system::attrs::{self, Sched, SCHED_BATCH, SCHED_IDLE, SCHED_OTHER};
use std::io;

/// What the caller had, for the command.
#[derive(Debug, Clone, Default)]
pub struct Inherited {
    timer_slack: Option<u64>,
    /// SCHED_OTHER / SCHED_BATCH / SCHED_IDLE and the nice value; real-time and deadline
    /// policies are not given back (the command runs SCHED_OTHER).
    sched: Option<Sched>,
    affinity: Option<Vec<u64>>,
    ioprio: Option<i32>,
    oom_score_adj: Option<i32>,
}

fn failed(what: &str, e: io::Error) -> Refusal {
    Refusal::config("harden", format!("cannot reset the inherited {what}: {e}"))
}

/// A reset that needs a privilege root may lack (a container without CAP_SYS_NICE, which
/// lowering a nice value needs): the person can run jitrun without the setting.
fn needs_privilege(what: &str, undo: &str, e: io::Error) -> Refusal {
    if matches!(e.raw_os_error(), Some(libc::EPERM) | Some(libc::EACCES)) {
        Refusal::deny(
            "resource_limit",
            format!("jitrun cannot reset your {what} on this host ({e}); run it without {undo}"),
        )
    } else {
        failed(what, e)
    }
}

/// The attributes that only the kernel's defaults make safe, for jitrun and the command alike.
/// Called first thing: an armed interval timer could fire at any later step.
pub fn reset_early() -> Result<(), Refusal> {
    attrs::clear_interval_timers().map_err(|e| failed("interval timers", e))?;
    if attrs::personality().map_err(|e| failed("personality", e))? != 0 {
        attrs::set_personality(0).map_err(|e| failed("personality", e))?;
    }
    attrs::default_mempolicy().map_err(|e| failed("NUMA memory policy", e))?;
    Ok(())
}

/// Reset what decides when and how fast jitrun runs; return the caller's values.
pub fn reset() -> Result<Inherited, Refusal> {
    let mut saved = Inherited {
        timer_slack: attrs::timer_slack().ok(),
        ..Inherited::default()
    };
    attrs::set_timer_slack(attrs::DEFAULT_TIMER_SLACK_NS)
        .map_err(|e| failed("timer slack (PR_SET_TIMERSLACK)", e))?;

    let sched = attrs::sched().map_err(|e| failed("scheduling policy", e))?;
    if [SCHED_OTHER, SCHED_BATCH, SCHED_IDLE].contains(&sched.policy) {
        saved.sched = Some(sched);
    }
    attrs::reset_sched().map_err(|e| {
        needs_privilege(
            "scheduling policy and nice value",
            "nice, chrt or uclampset",
            e,
        )
    })?;

    saved.affinity = attrs::affinity().ok();
    attrs::set_affinity(&[u64::MAX; 128]).map_err(|e| failed("CPU affinity", e))?;

    saved.ioprio = attrs::ioprio().ok();
    attrs::set_ioprio(0).map_err(|e| failed("I/O priority", e))?;

    let adj = attrs::oom_score_adj().map_err(|e| failed("OOM score adjustment", e))?;
    saved.oom_score_adj = Some(adj);
    lower_oom_score_adj(adj)?;
    Ok(saved)
}

/// Back to 0, or as close to it as the kernel allows without CAP_SYS_RESOURCE (which root may
/// lack in a container): down to the floor a privileged process set (systemd's for a user
/// session), never below. What a caller raised herself always comes off.
fn lower_oom_score_adj(adj: i32) -> Result<(), Refusal> {
    if adj <= 0 {
        return Ok(());
    }
    for v in (0..adj).step_by(50) {
        match attrs::set_oom_score_adj(v) {
            Ok(()) => return Ok(()),
            Err(e) if matches!(e.raw_os_error(), Some(libc::EACCES) | Some(libc::EPERM)) => {}
            Err(e) => return Err(failed("OOM score adjustment", e)),
        }
    }
    // Not even 50 below where it was: the caller raised it by less than that, if at all.
    Ok(())
}

impl Inherited {
    /// Give the caller's choices back (in the child, as root, before the identity changes).
    /// Best effort: a value that cannot be restored leaves the command with jitrun's default,
    /// which only ever gives it more, never less, of the machine than its caller asked for.
    pub fn restore(&self) {
        if let Some(ns) = self.timer_slack {
            let _ = attrs::set_timer_slack(ns);
        }
        if let Some(s) = self.sched {
            let _ = attrs::set_sched(s);
        }
        if let Some(mask) = &self.affinity {
            let _ = attrs::set_affinity(mask);
        }
        if let Some(v) = self.ioprio {
            let _ = attrs::set_ioprio(v);
        }
        if let Some(v) = self.oom_score_adj {
            let _ = attrs::set_oom_score_adj(v);
        }
    }
}
