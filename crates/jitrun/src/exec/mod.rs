//! Steps 9–10, running the command: fork; the child becomes the target and execs the checked
//! file; the parent, fully root so the user cannot signal or trace it, keeps the command in its
//! own cgroup, forwards signals, hands the terminal over and back, and ends the whole process
//! tree when the grant expires (SIGTERM, then SIGKILL after `kill_grace`) or is revoked.
//!
//! * [`spawn`]: the command's process, up to exec, and what it reports back;
//!   [`elevate`]: the capability recipe it applies first;
//! * [`supervise`]: the supervisor's loop; [`terminal`]: the caller's terminal and job control;
//! * [`watchdog`]: the second root process that enforces expiry and revocation when the
//!   supervisor cannot; [`terminate`]: ending what the command started, for both;
//! * [`ending`]: how the run ended (pure); [`stale_runs`]: runs whose supervisor and watchdog
//!   both vanished, ended and logged by the next jitrun;
//! * [`plumbing`]: what the command's fds 0–2 are (jitrun's own, a pty of jitrun's, pipes);
//!   [`monitor`]: the session leader of the command's pty; [`relay`]: the supervisor's side
//!   of the pty and pipes, which feeds the session recording (crate::recording).

pub mod elevate;
mod ending;
mod monitor;
pub mod plumbing;
pub mod relay;
mod spawn;
pub mod stale_runs;
mod supervise;
mod terminal;
mod terminate;
pub mod watchdog;

use crate::audit::EndReason;
use crate::command::Program;
use crate::recording::{Recording, Report};
use crate::refusal::Refusal;
use crate::system::cgroup::{RunCgroup, SessionCgroup};
use crate::system::process::{self, WaitStatus};
use crate::system::{signals, term};
use elevate::Plan;
use monitor::Monitor;
use plumbing::{Plumbing, Want};
use relay::{Relay, Tail, TerminalRestore};
use std::ffi::CString;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};
use std::time::{Duration, Instant};
use time::OffsetDateTime;
use watchdog::{Guard, RevocationWatch, Watchdog};

/// Signals the supervisor takes (blocked, and waited for), and its front too (`front.rs`):
/// SIGCHLD, SIGCONT, and those passed on to the command.
pub use supervise::HANDLED;
pub use terminal::set_front;

pub struct Launch<'a> {
    pub program: Program,
    pub argv: Vec<CString>,
    pub envp: Vec<CString>,
    pub plan: Plan,
    pub enforce: Enforcement<'a>,
    pub io: Io<'a>,
}

/// How the command's standard descriptors are connected, and its recording.
pub struct Io<'a> {
    pub want: Want,
    /// The session recording, when the rule records (its file exists, its header is written).
    pub recording: Option<Recording<'a>>,
}

/// What the supervisor and the watchdog enforce while the command runs.
pub struct Enforcement<'a> {
    /// The grant's `exp` (None for standing access).
    pub expires: Option<OffsetDateTime>,
    /// The grant to watch on the revocation list (None for standing access).
    pub revocation: Option<RevocationWatch>,
    pub kill_grace: Duration,
    /// The run's cgroup, which jitrun itself already entered (None without cgroup v2).
    pub session: Option<&'a SessionCgroup>,
}

pub struct Outcome {
    pub pid: i32,
    pub status: WaitStatus,
    pub reason: EndReason,
    pub duration: Duration,
    /// Set when the command never started (credentials or exec failed).
    pub error: Option<String>,
    pub exit_code: i32,
    /// The finished recording, when the rule records.
    pub recording: Option<Report>,
    /// What the relay still has to do once `elevate.end` is logged (show the last output,
    /// put the caller's terminal back); dropped unfinished, it still puts the terminal back.
    pub tail: Option<Tail>,
}

/// How the command is kept together (`jitrun.containment` in `elevate.start`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Containment {
    /// Its own cgroup v2: `cgroup.kill` reaches everything, setsid'd children included.
    Cgroup,
    /// No usable cgroup v2 on this host: its process group plus the orphans we adopt.
    ProcessGroup,
}

impl Containment {
    pub fn as_str(self) -> &'static str {
        match self {
            Containment::Cgroup => "cgroup",
            Containment::ProcessGroup => "process_group",
        }
    }
}

/// The command once forked, and what holds it.
pub struct Held {
    /// The command.
    pub child: libc::pid_t,
    /// The process the supervisor waits for: the command, or on a pty its monitor (which ends
    /// as the command ends).
    pub waited: libc::pid_t,
    pub cgroup: Option<RunCgroup>,
    /// The supervisor's pid: whose adopted orphans to end without a cgroup.
    pub supervisor: libc::pid_t,
    /// jitrun's process group, and the terminal when that group had it at the start.
    pgrp: libc::pid_t,
    terminal: Option<BorrowedFd<'static>>,
}

impl Held {
    pub fn terminate(&self, sig: libc::c_int) {
        terminate::terminate(self.cgroup.as_ref(), self.child, self.supervisor, sig);
    }

    /// Nothing the command started outlives it; the terminal comes back to jitrun.
    fn clean_up(&self) {
        let reap = || {
            let _ = supervise::reap(self.child);
        };
        terminate::cleanup(self.cgroup.as_ref(), self.child, self.supervisor, reap);
        terminal::take_back(self.child, self.pgrp);
    }

    /// The run cannot go on: kill the command before it started, and say why.
    fn abort(&self, r: Refusal) -> Refusal {
        let _ = signals::kill(self.child, libc::SIGKILL);
        let _ = signals::kill(self.waited, libc::SIGKILL);
        let _ = process::wait_blocking(self.waited);
        terminate::cleanup(self.cgroup.as_ref(), self.child, self.supervisor, || {
            let _ = supervise::reap(self.child);
        });
        if let Some(t) = self.terminal {
            let _ = term::set_foreground(t, self.pgrp);
        }
        r
    }

    fn containment(&self) -> Containment {
        match self.cgroup {
            Some(_) => Containment::Cgroup,
            None => Containment::ProcessGroup,
        }
    }
}

fn fail(what: &str, e: std::io::Error) -> Refusal {
    Refusal::config("supervise", format!("{what}: {e}"))
}

/// Run the command.
/// * `started(pid, containment)` runs once the child is set up and before it may exec (the
///   audit `elevate.start`); if it fails, the child is killed before it started.
/// * `supervisor_lost(pid, elapsed)` runs in the watchdog if the supervisor vanishes.
pub fn run(
    mut launch: Launch<'_>,
    started: impl FnOnce(i32, Containment) -> Result<(), Refusal>,
    supervisor_lost: impl FnOnce(i32, Duration),
) -> Result<Outcome, Refusal> {
    let recording = launch.io.recording.take();
    let mut plumbing = Plumbing::new(launch.io.want)
        .map_err(|e| fail("cannot set up the command's terminal and pipes", e))?;
    let (held, spawned, monitor) = fork_command(&launch, plumbing.as_ref())?;
    if let Some(p) = plumbing.as_mut() {
        p.close_child_side();
    }
    let child = held.child;
    // The command has its own copy of the checked file's descriptor: one less to hold here
    // (a caller's tiny RLIMIT_NOFILE must leave room for the watchdog's pipe and the pidfd).
    drop(launch.program.fd);
    let started_at = Instant::now();
    // The watchdog watches the command through this (Linux 5.3+): when the command exits, it
    // ends what the command left behind even while this supervisor is stopped. (On a pty the
    // command is the monitor's child, and cannot be reaped before it was told to go.)
    let command_exit = process::pidfd_open(child).ok();
    // Fully root: the invoking user can no longer signal or trace the supervisor.
    if let Err(e) = process::setresgid(0).and_then(|_| process::setresuid(0)) {
        return Err(held.abort(fail("cannot become fully root", e)));
    }
    take_over(&held, spawned.born_inside)?;
    started(child, held.containment()).map_err(|r| held.abort(r))?;
    let mut relay = relay_of(&held, plumbing, monitor, recording)?;
    let restore = relay.as_ref().and_then(Relay::restore_point);
    let mut unneeded = vec![spawned.go.as_raw_fd(), spawned.report.as_raw_fd()];
    unneeded.extend(relay.as_ref().map(Relay::descriptors).unwrap_or_default());
    let command_exit = command_exit.as_ref().map(|fd| fd.as_fd());
    let lost = || supervisor_lost(child, started_at.elapsed());
    let enforce = &launch.enforce;
    let watchdog = start_watchdog(
        &held,
        enforce,
        command_exit,
        &unneeded,
        restore.as_ref(),
        lost,
    )?;
    if let Some(r) = relay.as_mut() {
        r.begin();
    }
    if let Err(e) = spawn::go(spawned.go) {
        watchdog.finish();
        return Err(held.abort(fail("cannot start the command", e)));
    }
    let report = spawn::report(spawned.report);
    let waited = match wait_for_end(&held, enforce, relay.as_mut()) {
        Ok(w) => w,
        Err(r) => {
            held.terminate(libc::SIGKILL);
            watchdog.finish();
            return Err(r);
        }
    };
    held.clean_up();
    if let Some(r) = relay.as_mut() {
        r.drain();
    }
    let end = classify(&waited, &report, watchdog.finish().revoked, enforce);
    let recording = relay
        .as_mut()
        .and_then(|r| r.finish_recording(end.exit_code));
    Ok(Outcome {
        pid: child,
        status: waited.status,
        reason: end.reason,
        duration: started_at.elapsed(),
        error: report.error(&launch.program.canonical),
        exit_code: end.exit_code,
        recording,
        tail: relay.map(Relay::into_tail),
    })
}

/// The relay of a command with plumbing (its recording in it), once `elevate.start` is logged.
fn relay_of<'r>(
    held: &Held,
    plumbing: Option<Plumbing>,
    monitor: Option<Monitor>,
    recording: Option<Recording<'r>>,
) -> Result<Option<Relay<'r>>, Refusal> {
    let Some(p) = plumbing else { return Ok(None) };
    Relay::new(p, monitor, held.child, recording, supervise::HANDLED)
        .map(Some)
        .map_err(|e| held.abort(fail("cannot relay the command's terminal", e)))
}

/// The supervisor's loop, waiting on signals alone or, with a relay, on its I/O too.
fn wait_for_end(
    held: &Held,
    enforce: &Enforcement<'_>,
    relay: Option<&mut Relay<'_>>,
) -> Result<supervise::Waited, Refusal> {
    let (expires, grace) = (enforce.expires, enforce.kill_grace);
    match relay {
        Some(r) => supervise::until_end(held, expires, grace, &mut |t| r.wait(t)),
        None => {
            let mut plain = supervise::signals_only(held.child);
            supervise::until_end(held, expires, grace, &mut plain)
        }
    }
}

/// How the run ended, from what the loop and the watchdog saw.
fn classify(
    waited: &supervise::Waited,
    report: &spawn::ChildReport,
    revoked: bool,
    enforce: &Enforcement<'_>,
) -> ending::End {
    ending::classify(&ending::Seen {
        status: waited.status,
        report,
        revoked,
        ended_at_expiry: waited.ended_by == Some(EndReason::Expired),
        recording_end: waited.ended_by.filter(|r| *r != EndReason::Expired),
        // Expired: we ended it, or the watchdog did while we were stopped.
        past_expiry: enforce
            .expires
            .is_some_and(|exp| OffsetDateTime::now_utc() >= exp),
    })
}

/// The supervisor's side first (a subreaper, its signals blocked), then the command, forked
/// into its cgroup, waiting for the go (on a pty, by the monitor the supervisor forks).
fn fork_command(
    launch: &Launch<'_>,
    plumbing: Option<&Plumbing>,
) -> Result<(Held, spawn::Spawned, Option<Monitor>), Refusal> {
    process::set_child_subreaper().map_err(|e| fail("cannot become a subreaper", e))?;
    signals::block(supervise::HANDLED).map_err(|e| fail("cannot block signals", e))?;
    let pgrp = process::getpgrp();
    let on_pty = plumbing.is_some_and(|p| p.pty.is_some());
    // On a pty the caller's terminal stays jitrun's: the command has its own.
    let terminal = terminal::ours(pgrp).filter(|_| !on_pty);
    let cgroup = command_cgroup(launch.enforce.session)?;
    let (spawned, monitor) = match plumbing {
        Some(p) if on_pty => {
            let (m, s) = monitor::spawn(launch, cgroup.as_ref(), p)?;
            terminate::set_monitor(m.pid);
            (s, Some(m))
        }
        Some(p) => (
            spawn::spawn(launch, cgroup.as_ref(), p.child_stdio())?,
            None,
        ),
        None => (spawn::spawn(launch, cgroup.as_ref(), [None; 3])?, None),
    };
    let held = Held {
        child: spawned.pid,
        waited: monitor.as_ref().map_or(spawned.pid, |m| m.pid),
        cgroup,
        supervisor: process::getpid(),
        pgrp,
        terminal,
    };
    Ok((held, spawned, monitor))
}

/// The watchdog, forked once `elevate.start` is logged and before the command may exec.
fn start_watchdog(
    held: &Held,
    enforce: &Enforcement<'_>,
    command_exit: Option<BorrowedFd<'_>>,
    unneeded: &[RawFd],
    terminal: Option<&TerminalRestore>,
    supervisor_lost: impl FnOnce(),
) -> Result<Watchdog, Refusal> {
    let guard = Guard {
        terminal,
        cgroup: held.cgroup.as_ref(),
        child: held.child,
        supervisor: held.supervisor,
        command_exit,
        session: enforce.session,
        expires: enforce.expires,
        kill_grace: enforce.kill_grace,
        revocation: enforce.revocation.as_ref(),
        unneeded,
    };
    let watchdog = Watchdog::start(&guard, supervisor_lost)
        .map_err(|e| held.abort(fail("cannot start the watchdog", e)))?;
    terminate::set_watchdog(watchdog.pid());
    Ok(watchdog)
}

/// The command's cgroup exists before the fork, so that the child is born inside it. On a
/// host that has cgroup v2, failing to use it is a refusal, never a silent downgrade.
fn command_cgroup(session: Option<&SessionCgroup>) -> Result<Option<RunCgroup>, Refusal> {
    match session {
        Some(session) => session
            .command()
            .map_err(|e| fail("cannot create the command's cgroup", e)),
        None => Ok(None),
    }
}

/// The command in its own process group, in its cgroup (moved there if it was not born
/// inside), with the terminal when jitrun had it.
fn take_over(held: &Held, born_inside: bool) -> Result<(), Refusal> {
    let _ = process::setpgid(held.child, held.child);
    if let (Some(cg), false) = (&held.cgroup, born_inside) {
        if let Err(e) = cg.add(held.child) {
            return Err(held.abort(fail("cannot move the command into its cgroup", e)));
        }
    }
    if let Some(t) = held.terminal {
        let _ = term::set_foreground(t, held.child);
    }
    Ok(())
}
