//! Ending what the command started, for the supervisor and the watchdog alike: the command's
//! cgroup when there is one (setsid'd children included), else its process group and the
//! orphans re-parented to the supervisor (a child subreaper).

use crate::system::cgroup::RunCgroup;
use crate::system::{process, signals};
use std::sync::atomic::{AtomicI32, Ordering};
use std::time::Duration;

/// The watchdog is also a child of the supervisor; it is never one of the command's orphans.
static WATCHDOG_PID: AtomicI32 = AtomicI32::new(0);

/// The supervisor's watchdog, once forked: left out of [`orphans`].
pub fn set_watchdog(pid: libc::pid_t) {
    WATCHDOG_PID.store(pid, Ordering::Relaxed);
}

/// On a pty, the command's monitor is the supervisor's child too, and one of jitrun's own
/// processes: it ends by itself when the command ends, reporting how.
static MONITOR_PID: AtomicI32 = AtomicI32::new(0);

/// The pty monitor, once forked: left out of [`orphans`].
pub fn set_monitor(pid: libc::pid_t) {
    MONITOR_PID.store(pid, Ordering::Relaxed);
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

/// Processes whose parent is `supervisor`: the command's orphans it adopted as a subreaper
/// (and the command itself), never the watchdog nor the process asking.
fn orphans(supervisor: i32) -> Vec<i32> {
    let not = [
        WATCHDOG_PID.load(Ordering::Relaxed),
        MONITOR_PID.load(Ordering::Relaxed),
        process::getpid(),
    ];
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

/// Nothing the command started outlives it: kill what is left and remove the cgroup (the
/// supervisor, which reaps; `reap` collects the command's changes of state meanwhile).
pub fn cleanup(cgroup: Option<&RunCgroup>, child: i32, supervisor: i32, reap: impl Fn()) {
    match cgroup {
        Some(cg) => {
            if cg.is_populated() {
                let _ = cg.kill_all();
            }
            for _ in 0..200 {
                reap();
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
                reap();
                std::thread::sleep(Duration::from_millis(5));
            }
            reap();
        }
    }
}

/// The watchdog ends a run alone: wait (up to 5 s) until the cgroup is empty, then remove it.
pub fn remove_when_empty(cgroup: &RunCgroup) {
    for _ in 0..500 {
        if !cgroup.is_populated() {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    cgroup.remove();
}
