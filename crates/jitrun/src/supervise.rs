//! Steps 9–10: fork; the child becomes the target and execs the checked file; the parent,
//! fully root so the user cannot signal or trace it, keeps the command in its own cgroup,
//! forwards signals, hands the terminal over and back, and ends the whole process tree when
//! the grant expires (SIGTERM, then SIGKILL after `kill_grace`).

use crate::audit::EndReason;
use crate::command::Program;
use crate::elevate::{self, Plan};
use crate::identity::std_fd;
use crate::refusal::Refusal;
use crate::system::cgroup::RunCgroup;
use crate::system::process::{self, Fork, WaitStatus};
use crate::system::{fs, signals, term};
use std::ffi::CString;
use std::io::{Read, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
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
    pub program: &'a Program,
    pub argv: Vec<CString>,
    pub envp: Vec<CString>,
    pub plan: Plan,
    /// The grant's `exp` (None for standing access).
    pub expires: Option<OffsetDateTime>,
    pub kill_grace: Duration,
    pub cgroup_name: &'a str,
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

/// A descriptor on the controlling terminal when jitrun is in its foreground.
fn foreground_tty() -> Option<BorrowedFd<'static>> {
    (0..=2)
        .map(std_fd)
        .find(|&fd| term::isatty(fd) && term::foreground(fd).ok() == Some(process::getpgrp()))
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

/// Run the command. `started` is called with the child's pid once it is set up and before
/// it may exec (the audit `elevate.start`); if it fails, the child is killed unstarted.
pub fn run(
    launch: &Launch<'_>,
    started: impl FnOnce(i32) -> Result<(), Refusal>,
) -> Result<Outcome, Refusal> {
    let fail = |what: &str, e: std::io::Error| Refusal::config("supervise", format!("{what}: {e}"));
    process::set_child_subreaper().map_err(|e| fail("cannot become a subreaper", e))?;
    signals::block(HANDLED).map_err(|e| fail("cannot block signals", e))?;
    let (go_r, go_w) = process::pipe().map_err(|e| fail("pipe", e))?;
    let (rep_r, rep_w) = process::pipe().map_err(|e| fail("pipe", e))?;
    let tty = foreground_tty();

    // The run's cgroup exists before the fork, so that the child is born inside it.
    let cgroup = RunCgroup::create(launch.cgroup_name).ok();
    let cgroup_dir = cgroup.as_ref().and_then(|cg| cg.open_dir().ok());
    let (forked, born_inside) = match cgroup_dir
        .as_ref()
        .map(|d| process::fork_into_cgroup(d.as_fd()))
    {
        Some(Ok(f)) => (f, true),
        _ => (process::fork().map_err(|e| fail("fork", e))?, false),
    };
    drop(cgroup_dir);
    let child = match forked {
        Fork::Child => {
            drop(go_w);
            drop(rep_r);
            child_main(launch, go_r, rep_w)
        }
        Fork::Parent(pid) => pid,
    };
    drop(go_r);
    drop(rep_w);
    let started_at = Instant::now();

    // Fully root: the invoking user can no longer signal or trace the supervisor.
    process::setresgid(0)
        .and_then(|_| process::setresuid(0))
        .map_err(|e| {
            let _ = signals::kill(child, libc::SIGKILL);
            fail("cannot become fully root", e)
        })?;
    let _ = process::setpgid(child, child);
    let cgroup = match cgroup {
        Some(cg) if born_inside || cg.add(child).is_ok() => Some(cg),
        Some(cg) => {
            cg.remove();
            None
        }
        None => None,
    };
    if let Some(t) = tty {
        let _ = term::set_foreground(t, child);
    }

    let abort = |r: Refusal| {
        let _ = signals::kill(child, libc::SIGKILL);
        let _ = process::wait_blocking(child);
        cleanup(cgroup.as_ref(), child);
        if let Some(t) = tty {
            let _ = term::set_foreground(t, process::getpgrp());
        }
        r
    };
    if let Err(r) = started(child) {
        return Err(abort(r));
    }
    let mut go = std::fs::File::from(go_w);
    if let Err(e) = go.write_all(b"g") {
        return Err(abort(fail("cannot start the command", e)));
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
        error = Some(format!(
            "cannot execute {}: {msg}",
            launch.program.canonical.display()
        ));
        exec_code = Some(code.parse().unwrap_or(126));
    }

    let mut phase = Phase::Running;
    let mut reason = EndReason::Exit;
    let status = loop {
        if let Some((_, st)) = reap(child)? {
            match st {
                WaitStatus::Stopped(_) => {
                    job_control_stop(tty, child);
                    continue;
                }
                other => break other,
            }
        }
        let now = OffsetDateTime::now_utc();
        let timeout = match phase {
            Phase::Running => match launch.expires {
                Some(exp) if now >= exp => {
                    reason = EndReason::Expired;
                    terminate(cgroup.as_ref(), child, libc::SIGTERM);
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
                    terminate(cgroup.as_ref(), child, libc::SIGKILL);
                    phase = Phase::Killed;
                    continue;
                }
                left
            }
            Phase::Killed => Duration::from_secs(1),
        };
        match signals::wait(HANDLED, timeout).map_err(|e| fail("waiting for signals", e))? {
            None | Some(libc::SIGCHLD) | Some(libc::SIGCONT) => {}
            Some(sig) => {
                let _ = signals::kill(child, sig);
            }
        }
    };

    cleanup(cgroup.as_ref(), child);
    if let Some(t) = tty {
        let _ = term::set_foreground(t, process::getpgrp());
    }
    let exit_code = exec_code.unwrap_or(match status {
        WaitStatus::Exited(c) => c,
        WaitStatus::Signaled(s) | WaitStatus::Stopped(s) => 128 + s,
    });
    if identity_failed {
        reason = EndReason::SupervisorKilled;
    } else if reason != EndReason::Expired {
        reason = match status {
            WaitStatus::Signaled(_) => EndReason::Signal,
            _ => EndReason::Exit,
        };
    }
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

/// The command stopped (Ctrl-Z): take the terminal back and stop too, so the shell sees
/// the job stop; when the shell continues us, give the terminal back and continue it.
fn job_control_stop(tty: Option<BorrowedFd<'static>>, child: i32) {
    let Some(t) = tty else { return };
    let _ = term::set_foreground(t, process::getpgrp());
    let _ = signals::kill(process::getpid(), libc::SIGSTOP);
    let _ = term::set_foreground(t, child);
    let _ = signals::kill(-child, libc::SIGCONT);
}

/// Signal everything the command started: the cgroup when there is one (setsid'd children
/// included), else its process group and the orphans re-parented to us.
fn terminate(cgroup: Option<&RunCgroup>, child: i32, sig: libc::c_int) {
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
            for pid in orphans() {
                let _ = signals::kill(pid, sig);
            }
        }
    }
}

/// Processes whose parent is this supervisor (re-parented orphans of the command).
fn orphans() -> Vec<i32> {
    let me = process::getpid();
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
                == Some(me)
        })
        .collect()
}

/// Nothing the command started outlives it: kill what is left and remove the cgroup.
fn cleanup(cgroup: Option<&RunCgroup>, child: i32) {
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
            for pid in orphans() {
                let _ = signals::kill(pid, libc::SIGKILL);
            }
            let _ = reap(child);
        }
    }
}
