//! Steps 9–10: fork; the child becomes the target and execs the checked file; the parent,
//! fully root so the user cannot signal or trace it, keeps the command in its own cgroup,
//! forwards signals, hands the terminal over and back, and ends the whole process tree when
//! the grant expires (SIGTERM, then SIGKILL after `kill_grace`).

use crate::audit::EndReason;
use crate::command::Program;
use crate::elevate::{self, Plan};
use crate::identity::std_fd;
use crate::refusal::Refusal;
use crate::system::cgroup::{RunCgroup, SessionCgroup};
use crate::system::process::{self, Fork, WaitStatus};
use crate::system::{fs, signals, term};
use crate::watchdog::{Guard, Watchdog};
use std::ffi::CString;
use std::io::{Read, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::sync::atomic::{AtomicI32, Ordering};
use std::time::{Duration, Instant};
use time::OffsetDateTime;

/// Signals the supervisor handles (blocked, and taken with sigtimedwait).
const HANDLED: &[libc::c_int] = &[
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

pub struct Launch<'a> {
    pub program: Program,
    pub argv: Vec<CString>,
    pub envp: Vec<CString>,
    pub plan: Plan,
    /// The grant's `exp` (None for standing access).
    pub expires: Option<OffsetDateTime>,
    /// The grant to watch on the revocation list (None for standing access).
    pub revocation: Option<crate::watchdog::RevocationWatch>,
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

/// A standard descriptor on a terminal, if any (looked up each time: jitrun may be moved
/// between foreground and background while the command runs).
fn terminal() -> Option<BorrowedFd<'static>> {
    (0..=2).map(std_fd).find(|&fd| term::isatty(fd))
}

fn foreground_is(t: BorrowedFd<'_>, pgrp: libc::pid_t) -> bool {
    term::foreground(t).ok() == Some(pgrp)
}

fn child_main(launch: &Launch<'_>, go: OwnedFd, report: OwnedFd) -> ! {
    let mut report = std::fs::File::from(report);
    let _ = process::setpgid(0, 0);
    let mut byte = [0u8; 1];
    let mut go = std::fs::File::from(go);
    if go.read(&mut byte).map(|n| n != 1).unwrap_or(true) {
        process::exit_now(1); // the supervisor gave up before the start
    }
    signals::default_all();
    let _ = signals::unblock_all();
    if let Err(e) = elevate::become_target(&launch.plan) {
        let _ = report.write_all(format!("c{e}").as_bytes());
        process::exit_now(1);
    }
    if launch.program.is_script {
        let _ = fs::clear_cloexec(launch.program.fd.as_fd());
    }
    let e = process::exec_fd(launch.program.fd.as_fd(), &launch.argv, &launch.envp);
    let code = if e.raw_os_error() == Some(libc::ENOENT) {
        127
    } else {
        126
    };
    let _ = report.write_all(format!("x{code}:{e}").as_bytes());
    process::exit_now(code);
}

enum Phase {
    Running,
    Terminating { kill_at: Instant },
    Killed,
}

/// Run the command.
/// * `started(pid, containment)` runs once the child is set up and before it may exec (the
///   audit `elevate.start`); if it fails, the child is killed before it started.
/// * `supervisor_lost(pid, elapsed)` runs in the watchdog if the supervisor vanishes.
pub fn run(
    launch: Launch<'_>,
    started: impl FnOnce(i32, Containment) -> Result<(), Refusal>,
    supervisor_lost: impl FnOnce(i32, Duration),
) -> Result<Outcome, Refusal> {
    let fail = |what: &str, e: std::io::Error| Refusal::config("supervise", format!("{what}: {e}"));
    process::set_child_subreaper().map_err(|e| fail("cannot become a subreaper", e))?;
    signals::block(HANDLED).map_err(|e| fail("cannot block signals", e))?;
    let (go_r, go_w) = process::pipe().map_err(|e| fail("pipe", e))?;
    let (rep_r, rep_w) = process::pipe().map_err(|e| fail("pipe", e))?;
    let me = process::getpgrp();
    let hand_over_terminal = terminal().filter(|&t| foreground_is(t, me));

    // The command's cgroup exists before the fork, so that the child is born inside it. On a
    // host that has cgroup v2, failing to use it is a refusal, never a silent downgrade.
    let cgroup = match launch.session {
        Some(session) => session
            .command()
            .map_err(|e| fail("cannot create the command's cgroup", e))?,
        None => None,
    };
    let forked = match &cgroup {
        Some(cg) => match cg
            .open_dir()
            .and_then(|d| process::fork_into_cgroup(d.as_fd()))
        {
            Ok(f) => Ok((f, true)),
            Err(_) => process::fork().map(|f| (f, false)),
        },
        None => process::fork().map(|f| (f, false)),
    };
    let (forked, born_inside) = forked.map_err(|e| {
        if let Some(cg) = &cgroup {
            cg.remove();
        }
        fail("fork", e)
    })?;
    let child = match forked {
        Fork::Child => {
            drop(go_w);
            drop(rep_r);
            child_main(&launch, go_r, rep_w)
        }
        Fork::Parent(pid) => pid,
    };
    drop(go_r);
    drop(rep_w);
    // The command has its own copy of the checked file's descriptor: one less to hold here
    // (a caller's tiny RLIMIT_NOFILE must leave room for the watchdog's pipe and the pidfd).
    let Program {
        fd: program_fd,
        canonical: program_path,
        ..
    } = launch.program;
    drop(program_fd);
    let started_at = Instant::now();
    let supervisor = process::getpid();
    // The watchdog watches the command through this (Linux 5.3+): when the command exits, it
    // ends what the command left behind even while this supervisor is stopped.
    let command_exit = process::pidfd_open(child).ok();

    let abort = |r: Refusal, cgroup: Option<&RunCgroup>| {
        let _ = signals::kill(child, libc::SIGKILL);
        let _ = process::wait_blocking(child);
        cleanup(cgroup, child, supervisor);
        if let Some(t) = hand_over_terminal {
            let _ = term::set_foreground(t, me);
        }
        r
    };
    // Fully root: the invoking user can no longer signal or trace the supervisor.
    if let Err(e) = process::setresgid(0).and_then(|_| process::setresuid(0)) {
        return Err(abort(fail("cannot become fully root", e), cgroup.as_ref()));
    }
    let _ = process::setpgid(child, child);
    if let Some(cg) = &cgroup {
        if !born_inside {
            if let Err(e) = cg.add(child) {
                return Err(abort(
                    fail("cannot move the command into its cgroup", e),
                    cgroup.as_ref(),
                ));
            }
        }
    }
    let containment = if cgroup.is_some() {
        Containment::Cgroup
    } else {
        Containment::ProcessGroup
    };
    if let Some(t) = hand_over_terminal {
        let _ = term::set_foreground(t, child);
    }
    if let Err(r) = started(child, containment) {
        return Err(abort(r, cgroup.as_ref()));
    }
    let guard = Guard {
        cgroup: cgroup.as_ref(),
        child,
        supervisor,
        command_exit: command_exit.as_ref().map(|fd| fd.as_fd()),
        session: launch.session,
        expires: launch.expires,
        kill_grace: launch.kill_grace,
        revocation: launch.revocation.as_ref(),
        unneeded: &[go_w.as_raw_fd(), rep_r.as_raw_fd()],
    };
    let watchdog = match Watchdog::start(&guard, || supervisor_lost(child, started_at.elapsed())) {
        Ok(w) => {
            WATCHDOG_PID.store(w.pid(), Ordering::Relaxed);
            w
        }
        Err(e) => return Err(abort(fail("cannot start the watchdog", e), cgroup.as_ref())),
    };
    let mut go = std::fs::File::from(go_w);
    if let Err(e) = go.write_all(b"g") {
        watchdog.finish();
        return Err(abort(fail("cannot start the command", e), cgroup.as_ref()));
    }
    drop(go);

    // EOF means exec succeeded (the report pipe is close-on-exec).
    let mut report = String::new();
    let _ = std::fs::File::from(rep_r).read_to_string(&mut report);
    let mut error = None;
    let mut exec_code = None;
    let mut identity_failed = false;
    if let Some(rest) = report.strip_prefix('c') {
        error = Some(format!("could not take the granted identity: {rest}"));
        exec_code = Some(1);
        identity_failed = true;
    } else if let Some(rest) = report.strip_prefix('x') {
        let (code, msg) = rest.split_once(':').unwrap_or(("126", rest));
        error = Some(format!("cannot execute {}: {msg}", program_path.display()));
        exec_code = Some(code.parse().unwrap_or(126));
    }

    let mut phase = Phase::Running;
    let status = loop {
        match reap(child) {
            Ok(Some((_, WaitStatus::Stopped(sig)))) => {
                job_control_stop(child, sig);
                continue;
            }
            Ok(Some((_, st))) => break st,
            Ok(None) => {}
            Err(r) => {
                // Cannot wait for the command: end it (the watchdog would, too).
                terminate(cgroup.as_ref(), child, supervisor, libc::SIGKILL);
                watchdog.finish();
                return Err(r);
            }
        }
        let now = OffsetDateTime::now_utc();
        let timeout = match phase {
            Phase::Running => match launch.expires {
                Some(exp) if now >= exp => {
                    terminate(cgroup.as_ref(), child, supervisor, libc::SIGTERM);
                    phase = Phase::Terminating {
                        kill_at: Instant::now() + launch.kill_grace,
                    };
                    continue;
                }
                Some(exp) => to_std(exp - now).min(Duration::from_secs(60)),
                None => Duration::from_secs(3600),
            },
            Phase::Terminating { kill_at } => {
                let left = kill_at.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    terminate(cgroup.as_ref(), child, supervisor, libc::SIGKILL);
                    phase = Phase::Killed;
                    continue;
                }
                left
            }
            Phase::Killed => Duration::from_secs(1),
        };
        match signals::wait(HANDLED, timeout) {
            Ok(None) | Ok(Some(libc::SIGCHLD)) | Ok(Some(libc::SIGCONT)) | Err(_) => {}
            Ok(Some(sig)) => {
                let _ = signals::kill(child, sig);
            }
        }
    };

    cleanup(cgroup.as_ref(), child, supervisor);
    if let Some(t) = terminal() {
        if foreground_is(t, child) {
            let _ = term::set_foreground(t, me);
        }
    }
    let report = watchdog.finish();
    let exit_code = exec_code.unwrap_or(match status {
        WaitStatus::Exited(c) => c,
        WaitStatus::Signaled(s) | WaitStatus::Stopped(s) => 128 + s,
    });
    // Expired: we ended it, or the watchdog did while we were stopped.
    let past_exp = launch
        .expires
        .is_some_and(|exp| OffsetDateTime::now_utc() >= exp);
    let reason = if identity_failed {
        EndReason::SupervisorKilled
    } else if report.revoked {
        // The watchdog ended it: the grant appeared on the revocation list.
        EndReason::Revoked
    } else if !matches!(phase, Phase::Running)
        || (past_exp && matches!(status, WaitStatus::Signaled(_)))
    {
        EndReason::Expired
    } else if matches!(status, WaitStatus::Signaled(_)) {
        EndReason::Signal
    } else {
        EndReason::Exit
    };
    Ok(Outcome {
        pid: child,
        status,
        reason,
        duration: started_at.elapsed(),
        error,
        exit_code,
    })
}

fn to_std(d: time::Duration) -> Duration {
    Duration::from_millis(d.whole_milliseconds().clamp(0, u64::MAX as i128) as u64)
}

/// Reap every child that changed state; report the command's own change.
fn reap(child: i32) -> Result<Option<(i32, WaitStatus)>, Refusal> {
    let mut mine = None;
    loop {
        match process::wait_nohang(-1) {
            Ok(Some((pid, st))) if pid == child => mine = Some((pid, st)),
            Ok(Some(_)) => {} // an orphan of the command, re-parented to us (subreaper)
            Ok(None) => return Ok(mine),
            Err(e) if e.raw_os_error() == Some(libc::ECHILD) => return Ok(mine),
            Err(e) => return Err(Refusal::config("supervise", format!("waitpid: {e}"))),
        }
        if matches!(mine, Some((_, WaitStatus::Stopped(_)))) {
            return Ok(mine);
        }
    }
}

/// The command stopped. Reading the terminal from the background (SIGTTIN/SIGTTOU) while
/// jitrun itself is in the foreground (the shell's `fg` moved jitrun, not the command): hand
/// the terminal over and continue it. Otherwise (Ctrl-Z, or jitrun in the background): take
/// the terminal back and stop too, so the shell sees the job stop; when continued, give the
/// terminal back if jitrun is in the foreground, and continue the command. While jitrun is
/// stopped the watchdog keeps enforcing the grant's expiry. Without a terminal, a stop is
/// left to whoever sent it.
fn job_control_stop(child: i32, sig: libc::c_int) {
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
    if foreground_is(t, me) {
        let _ = term::set_foreground(t, child);
    }
    let _ = signals::kill(-child, libc::SIGCONT);
}

/// Signal everything the command started: the cgroup when there is one (setsid'd children
/// included), else its process group and the orphans re-parented to the supervisor (a child
/// subreaper). Called by the supervisor and by the watchdog, so the orphans are the
/// `supervisor`'s children, never the caller's.
pub fn terminate(cgroup: Option<&RunCgroup>, child: i32, supervisor: i32, sig: libc::c_int) {
    match cgroup {
        Some(cg) if sig == libc::SIGKILL => {
            let _ = cg.kill_all();
        }
        Some(cg) => {
            cg.signal_all(sig);
            cg.signal_all(libc::SIGCONT);
        }
        None => {
            let _ = signals::kill(-child, sig);
            let _ = signals::kill(child, sig);
            for pid in orphans(supervisor) {
                let _ = signals::kill(pid, sig);
            }
        }
    }
}

/// The watchdog is also a child of the supervisor; it is never one of the command's orphans.
static WATCHDOG_PID: AtomicI32 = AtomicI32::new(0);

/// Processes whose parent is `supervisor`: the command's orphans it adopted as a subreaper
/// (and the command itself), never the watchdog nor the process asking.
fn orphans(supervisor: i32) -> Vec<i32> {
    let not = [WATCHDOG_PID.load(Ordering::Relaxed), process::getpid()];
    let Ok(rd) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    rd.filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().to_str().and_then(|n| n.parse::<i32>().ok()))
        .filter(|&pid| {
            std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .ok()
                .and_then(|s| {
                    s.rsplit_once(')')
                        .and_then(|(_, rest)| rest.split_whitespace().nth(1)?.parse::<i32>().ok())
                })
                == Some(supervisor)
        })
        .filter(|pid| !not.contains(pid))
        .collect()
}

/// Nothing the command started outlives it: kill what is left and remove the cgroup.
fn cleanup(cgroup: Option<&RunCgroup>, child: i32, supervisor: i32) {
    match cgroup {
        Some(cg) => {
            if cg.is_populated() {
                let _ = cg.kill_all();
            }
            for _ in 0..200 {
                let _ = reap(child);
                if !cg.is_populated() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            cg.remove();
        }
        None => {
            let _ = signals::kill(-child, libc::SIGKILL);
            // Orphans keep arriving while their parents die: repeat until none is left.
            for _ in 0..200 {
                let left = orphans(supervisor);
                if left.is_empty() {
                    break;
                }
                for pid in left {
                    let _ = signals::kill(pid, libc::SIGKILL);
                }
                let _ = reap(child);
                std::thread::sleep(Duration::from_millis(5));
            }
            let _ = reap(child);
        }
    }
}
