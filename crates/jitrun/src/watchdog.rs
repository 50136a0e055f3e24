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
//!
//! It also watches the revocation list (docs/broker.md): every 2 s it looks whether
//! `/var/lib/jitrun/revocations` changed (inode, size, mtime) and, when it did, verifies it
//! again; once the grant is on it, the command ends like at expiry (SIGTERM, `kill_grace`,
//! `cgroup.kill`) and the supervisor is told, so that `elevate.end` says `revoked`.

use crate::revocations::{self, Fingerprint, ListState};
use crate::supervise::terminate;
use crate::system::cgroup::RunCgroup;
use crate::system::fs;
use crate::system::process::{self, Fork};
use std::io::{Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::time::{Duration, Instant};
use time::OffsetDateTime;

/// How often the revocation list's file is looked at while a command runs.
pub const REVOCATION_POLL: Duration = Duration::from_secs(2);

/// The grant a run uses, to end the run when it is revoked.
#[derive(Debug, Clone)]
pub struct RevocationWatch {
    pub jti: String,
    /// The trusted broker keys the list is verified with.
    pub keys: jit_grant::KeySet,
}

/// What the watchdog guards.
pub struct Guard<'a> {
    pub cgroup: Option<&'a RunCgroup>,
    pub child: libc::pid_t,
    pub expires: Option<OffsetDateTime>,
    pub kill_grace: Duration,
    pub revocation: Option<&'a RevocationWatch>,
    /// Descriptors inherited from the supervisor that the watchdog has no use for: it closes
    /// them, so that a caller's tiny RLIMIT_NOFILE leaves room to read the revocation list.
    pub unneeded: &'a [std::os::fd::RawFd],
}

pub struct Watchdog {
    pid: libc::pid_t,
    tell: std::fs::File,
}

/// The watchdog's exit status when it ended the command because the grant was revoked
/// (no extra descriptor: a caller's tiny RLIMIT_NOFILE must not stop the watchdog).
const EXIT_REVOKED: i32 = 3;

/// What the watchdog did, as the supervisor learns when it finishes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Report {
    pub revoked: bool,
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

    /// The supervisor is done with the command: the watchdog exits, and says what it did.
    pub fn finish(mut self) -> Report {
        let _ = self.tell.write_all(b"d");
        drop(self.tell);
        Report {
            revoked: matches!(
                process::wait_blocking(self.pid),
                Ok(process::WaitStatus::Exited(EXIT_REVOKED))
            ),
        }
    }
}

/// Watches the revocation list for one grant.
struct RevocationCheck<'a> {
    watch: &'a RevocationWatch,
    seen: Option<Fingerprint>,
    next: Instant,
}

impl RevocationCheck<'_> {
    /// Is the grant revoked now? Reads and verifies the list only when its file changed
    /// since the last look (and always on the first).
    fn revoked(&mut self, first: bool) -> bool {
        self.next = Instant::now() + REVOCATION_POLL;
        let now = Fingerprint::now();
        if !first && now == self.seen {
            return false;
        }
        match revocations::load(&self.watch.keys) {
            ListState::Valid(list) => {
                self.seen = now;
                list.contains(&self.watch.jti)
            }
            // A list that vanished or cannot be verified revokes nothing; jitrun refuses new
            // runs of rules that need a fresh list.
            ListState::Missing | ListState::Invalid(_) => {
                self.seen = now;
                false
            }
            // Not read this time (out of descriptors): look again at the next tick.
            ListState::Unreadable(_) => false,
        }
    }
}

fn watch(guard: &Guard<'_>, from_supervisor: OwnedFd, supervisor_lost: impl FnOnce()) -> ! {
    let mut from_supervisor = std::fs::File::from(from_supervisor);
    let mut revoked = false;
    // The caller's RLIMIT_NOFILE (inherited, possibly tiny) must not keep the watchdog from
    // reading the revocation list: drop what it does not need, and raise the limit where the
    // kernel lets root (not in containers without CAP_SYS_RESOURCE).
    fs::close_inherited(guard.unneeded);
    if let Ok((_, hard)) = process::getrlimit(libc::RLIMIT_NOFILE) {
        let want = hard.max(256);
        let _ = process::setrlimit(libc::RLIMIT_NOFILE, want, want);
    }
    let _ = process::setsid();
    let _ = fs::std_fds_to_null();
    let mut kill_at: Option<Instant> = None;
    let mut revocation = guard.revocation.map(|watch| RevocationCheck {
        watch,
        seen: None,
        next: Instant::now(),
    });
    // The list may have changed between the decision and the start.
    if let Some(check) = revocation.as_mut() {
        if check.revoked(true) {
            revoked = true;
            terminate(guard.cgroup, guard.child, libc::SIGTERM);
            kill_at = Some(Instant::now() + guard.kill_grace);
        }
    }
    loop {
        let mut timeout = match (kill_at, guard.expires) {
            (Some(at), _) => at.saturating_duration_since(Instant::now()),
            (None, Some(exp)) => {
                let left = exp - OffsetDateTime::now_utc();
                Duration::from_millis(left.whole_milliseconds().clamp(0, 3_600_000) as u64)
            }
            (None, None) => Duration::from_secs(3600),
        };
        if let (None, Some(check)) = (kill_at, revocation.as_ref()) {
            timeout = timeout.min(check.next.saturating_duration_since(Instant::now()));
        }
        match fs::poll_readable(from_supervisor.as_fd(), timeout) {
            Ok(true) => {
                let mut byte = [0u8; 1];
                let done = from_supervisor
                    .read(&mut byte)
                    .map(|n| n == 1 && byte[0] == b'd')
                    .unwrap_or(false);
                if done {
                    process::exit_now(if revoked { EXIT_REVOKED } else { 0 });
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
                None => {
                    if let Some(check) = revocation.as_mut() {
                        if Instant::now() >= check.next && check.revoked(false) {
                            revoked = true;
                            terminate(guard.cgroup, guard.child, libc::SIGTERM);
                            kill_at = Some(Instant::now() + guard.kill_grace);
                        }
                    }
                }
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
