//! The watchdog: a second root process, in its own session, that ends the command's
//! process tree at the grant's expiry even when the supervisor cannot.
//!
//! The supervisor stops itself when the command is stopped (Ctrl-Z), so that the shell sees
//! the job stop; a stopped supervisor enforces nothing, and the invoking user may continue
//! the command alone (SIGCONT is allowed within a session). The watchdog cannot be stopped or
//! signalled by the user (root, another session, no terminal), so expiry holds. If the
//! supervisor disappears without saying it is done (killed by a resource limit, a bug), the
//! watchdog kills the whole tree at once, removes the cgroup and logs `elevate.end` with
//! `supervisor_killed`: nothing runs unsupervised and nothing ends unlogged.

use crate::supervise::terminate;
use crate::system::cgroup::RunCgroup;
use crate::system::fs;
use crate::system::process::{self, Fork};
use std::io::{Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::time::{Duration, Instant};
use time::OffsetDateTime;

/// What the watchdog guards.
pub struct Guard<'a> {
    pub cgroup: Option<&'a RunCgroup>,
    pub child: libc::pid_t,
    pub expires: Option<OffsetDateTime>,
    pub kill_grace: Duration,
}

pub struct Watchdog {
    pid: libc::pid_t,
    tell: std::fs::File,
}

impl Watchdog {
    /// Fork the watchdog. `supervisor_lost` runs in the watchdog if the supervisor vanishes.
    pub fn start(guard: &Guard<'_>, supervisor_lost: impl FnOnce()) -> std::io::Result<Watchdog> {
        let (r, w) = process::pipe()?;
        match process::fork()? {
            Fork::Child => {
                drop(w);
                watch(guard, r, supervisor_lost)
            }
            Fork::Parent(pid) => Ok(Watchdog {
                pid,
                tell: std::fs::File::from(w),
            }),
        }
    }

    pub fn pid(&self) -> libc::pid_t {
        self.pid
    }

    /// The supervisor is done with the command: the watchdog exits.
    pub fn finish(mut self) {
        let _ = self.tell.write_all(b"d");
        drop(self.tell);
        let _ = process::wait_blocking(self.pid);
    }
}

fn watch(guard: &Guard<'_>, from_supervisor: OwnedFd, supervisor_lost: impl FnOnce()) -> ! {
    let mut from_supervisor = std::fs::File::from(from_supervisor);
    let _ = process::setsid();
    let _ = fs::std_fds_to_null();
    let mut kill_at: Option<Instant> = None;
    loop {
        let timeout = match (kill_at, guard.expires) {
            (Some(at), _) => at.saturating_duration_since(Instant::now()),
            (None, Some(exp)) => {
                let left = exp - OffsetDateTime::now_utc();
                Duration::from_millis(left.whole_milliseconds().clamp(0, 3_600_000) as u64)
            }
            (None, None) => Duration::from_secs(3600),
        };
        match fs::poll_readable(from_supervisor.as_fd(), timeout) {
            Ok(true) => {
                let mut byte = [0u8; 1];
                let done = from_supervisor
                    .read(&mut byte)
                    .map(|n| n == 1 && byte[0] == b'd')
                    .unwrap_or(false);
                if done {
                    process::exit_now(0);
                }
                break; // end of file: the supervisor is gone
            }
            Ok(false) => match kill_at {
                Some(at) if Instant::now() >= at => {
                    terminate(guard.cgroup, guard.child, libc::SIGKILL);
                    kill_at = Some(Instant::now() + Duration::from_secs(3600));
                }
                Some(_) => {}
                None if guard
                    .expires
                    .is_some_and(|exp| OffsetDateTime::now_utc() >= exp) =>
                {
                    terminate(guard.cgroup, guard.child, libc::SIGTERM);
                    kill_at = Some(Instant::now() + guard.kill_grace);
                }
                None => {}
            },
            Err(_) => break, // cannot watch: fail closed
        }
    }
    terminate(guard.cgroup, guard.child, libc::SIGKILL);
    supervisor_lost();
    if let Some(cg) = guard.cgroup {
        for _ in 0..500 {
            if !cg.is_populated() {
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        cg.remove();
    }
    process::exit_now(0)
}
